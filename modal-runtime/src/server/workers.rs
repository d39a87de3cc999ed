//! Workers on the control plane: registration, what they report (exits, logs), their capacity
//! as the scheduler sees it, and container listings and stops asked for by users.

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;
use tonic::Status;

use super::scheduler::{GpuView, WorkerView};
use super::state::{State, StopReason, TaskState, WorkerRec};
use crate::ids::new_id;
use crate::model::{ContainerSummary, LogSource, WorkerCommand, WorkerEvent, WorkerInfo};

impl State {
    pub(crate) fn worker_views(&self) -> Vec<WorkerView> {
        let mut views: Vec<WorkerView> = self
            .workers
            .iter()
            .map(|(id, w)| WorkerView {
                id: id.clone(),
                milli_cpu: w.info.milli_cpu,
                memory_mb: w.info.memory_mb,
                used_milli_cpu: w.used_milli_cpu,
                used_memory_mb: w.used_memory_mb,
                gpus: w
                    .info
                    .gpus
                    .iter()
                    .map(|g| GpuView {
                        index: g.index,
                        name: g.name.clone(),
                        memory_mb: g.memory_mb,
                        busy: w.busy_gpus.contains(&g.index),
                    })
                    .collect(),
            })
            .collect();
        views.sort_by(|a, b| a.id.cmp(&b.id));
        views
    }

    pub(crate) fn worker_register(
        &mut self,
        info: WorkerInfo,
        tx: mpsc::UnboundedSender<WorkerCommand>,
    ) -> String {
        let worker_id = new_id("wk-");
        tracing::info!(%worker_id, host = %info.hostname, cpu = info.milli_cpu, mem = info.memory_mb, gpus = info.gpus.len(), "worker registered");
        self.workers.insert(
            worker_id.clone(),
            WorkerRec {
                tx,
                info,
                used_milli_cpu: 0,
                used_memory_mb: 0,
                busy_gpus: HashSet::new(),
            },
        );
        let waiting: Vec<String> = self
            .functions
            .iter()
            .filter(|(_, f)| !f.queue.is_empty() || f.def.autoscaler.min_containers > 0)
            .map(|(id, _)| id.clone())
            .collect();
        self.dirty.extend(waiting);
        worker_id
    }

    pub(crate) fn worker_event(&mut self, _worker_id: &str, event: WorkerEvent) {
        match event {
            WorkerEvent::Exited {
                task_id,
                exit_code,
                signal,
                out_of_memory,
                journal,
            } => match out_of_memory {
                Some(message) => self.task_out_of_memory(&task_id, message, journal),
                None => self.task_exited(&task_id, exit_code, signal, None, journal),
            },
            WorkerEvent::SpawnFailed { task_id, message } => {
                // Handled as a container that never became ready: the waiting inputs fail
                // (retried per their policy) unless another container of the function serves.
                if let Some(task) = self.tasks.get_mut(&task_id) {
                    let msg = format!("could not start a container: {message}");
                    task.stop = Some(StopReason::StartupTimeout(msg));
                }
                self.task_exited(&task_id, None, None, Some(message), None);
            }
            WorkerEvent::Logs(lines) => {
                let mut by_task: HashMap<String, Vec<(LogSource, String, i64)>> = HashMap::new();
                for line in lines {
                    by_task.entry(line.task_id).or_default().push((
                        line.source,
                        line.data,
                        line.timestamp_ms,
                    ));
                }
                for (task_id, lines) in by_task {
                    self.emit_task_logs(&task_id, lines);
                }
            }
        }
    }

    pub(crate) fn worker_disconnected(&mut self, worker_id: &str) {
        if self.workers.remove(worker_id).is_none() {
            return;
        }
        tracing::warn!(%worker_id, "worker disconnected");
        let tasks: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.worker_id == worker_id)
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in tasks {
            self.task_exited(
                &task_id,
                None,
                None,
                Some(format!("worker {worker_id} disconnected")),
                None,
            );
        }
    }

    /// Containers of an app (every app for `""`) in an environment (every one for `""`).
    pub(crate) fn container_list(&self, app_id: &str, environment: &str) -> Vec<ContainerSummary> {
        let mut containers: Vec<ContainerSummary> = self
            .tasks
            .iter()
            .filter(|(_, t)| app_id.is_empty() || t.app_id == app_id)
            .filter(|(_, t)| {
                environment.is_empty()
                    || self
                        .apps
                        .get(&t.app_id)
                        .is_some_and(|a| a.environment == environment)
            })
            .map(|(id, t)| ContainerSummary {
                task_id: id.clone(),
                app_id: t.app_id.clone(),
                app_name: self
                    .apps
                    .get(&t.app_id)
                    .map(|a| a.name.clone())
                    .unwrap_or_default(),
                function_tag: self
                    .functions
                    .get(&t.function_id)
                    .map(|f| f.def.tag.clone())
                    .unwrap_or_default(),
                started_at_ms: if t.state == TaskState::Ready {
                    t.ready_at_ms
                } else {
                    0
                },
                running_inputs: u32::try_from(t.running.len()).unwrap_or(u32::MAX),
            })
            .collect();
        containers.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        containers
    }

    /// `modal container stop`: graceful lets current inputs finish; otherwise the container is
    /// stopped now and its inputs run elsewhere.
    pub(crate) fn container_stop(&mut self, task_id: &str, graceful: bool) -> Result<(), Status> {
        let task = self
            .tasks
            .get_mut(task_id)
            .ok_or_else(|| Status::not_found(format!("container {task_id} is not running")))?;
        if graceful && task.load() > 0 {
            task.stop = Some(StopReason::Requested);
            return Ok(());
        }
        self.stop_task(
            task_id,
            StopReason::Requested,
            if graceful { 2000 } else { 0 },
        );
        Ok(())
    }
}
