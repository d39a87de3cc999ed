//! Workers on the control plane: registration, what they report (exits, logs), their capacity
//! as the scheduler sees it, and container listings and stops asked for by users.

use std::collections::{HashMap, HashSet};

use tokio::sync::mpsc;
use tonic::Status;

use super::scheduler::{GpuView, WorkerView};
use super::state::{State, StopReason, TaskState, WorkerRec};
use crate::ids::new_id;
use crate::model::{
    Constraints, ContainerSummary, LogSource, WorkerCommand, WorkerEvent, WorkerInfo,
    WorkerSummary, describe_labels,
};

impl State {
    /// The workers that take new containers and whose labels meet `constraints`.
    pub(crate) fn worker_views(&self, constraints: &Constraints) -> Vec<WorkerView> {
        let mut views: Vec<WorkerView> = self
            .workers
            .iter()
            .filter(|(_, w)| !w.retiring && constraints.unmet(&w.info.labels).is_empty())
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
                idle_since: Some(self.clock.now),
                retiring: false,
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
            if let Some(task) = self.tasks.get_mut(&task_id)
                && task.stop.is_none()
            {
                task.stop = Some(StopReason::WorkerLost);
            }
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
                worker_id: t.worker_id.clone(),
                worker_host: self
                    .workers
                    .get(&t.worker_id)
                    .map(|w| w.info.hostname.clone())
                    .unwrap_or_default(),
            })
            .collect();
        containers.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        containers
    }

    /// Why no worker, and no pilot job, can ever meet `constraints` (naming them and what is
    /// offered); `None` when some can, or when no worker is connected and none is submitted
    /// (one may connect later).
    pub(crate) fn unmeetable(&self, constraints: &Constraints) -> Option<String> {
        if constraints.is_empty() {
            return None;
        }
        let mut unmet: Vec<String> = Vec::new();
        let mut offered: Vec<String> = Vec::new();
        for (id, w) in &self.workers {
            let missing = constraints.unmet(&w.info.labels);
            if missing.is_empty() {
                return None;
            }
            unmet.extend(missing);
            offered.push(format!("worker {id} ({})", describe_labels(&w.info.labels)));
        }
        match &self.pilot_offer {
            Some(offer) => {
                if offer.meeting(constraints).is_some() {
                    return None;
                }
                for p in &offer.partitions {
                    unmet.extend(constraints.unmet(&p.labels));
                    offered.push(format!(
                        "Slurm partition {} ({})",
                        p.name.as_deref().unwrap_or("(default)"),
                        describe_labels(&p.labels)
                    ));
                }
            }
            None if self.workers.is_empty() => return None,
            None => {}
        }
        unmet.sort();
        unmet.dedup();
        offered.sort();
        Some(format!(
            "no worker or Slurm partition meets {}; offered: {}",
            unmet.join(" and "),
            offered.join(", ")
        ))
    }

    /// `modal worker list`: the connected workers, by id.
    pub(crate) fn worker_list(&self) -> Vec<WorkerSummary> {
        let mut list: Vec<WorkerSummary> = self
            .workers
            .iter()
            .map(|(id, w)| {
                let containers = self.tasks.values().filter(|t| t.worker_id == *id).count();
                WorkerSummary {
                    worker_id: id.clone(),
                    hostname: w.info.hostname.clone(),
                    slurm_job_id: w.info.slurm_job_id.clone(),
                    state: if w.retiring {
                        "retiring"
                    } else if containers > 0 {
                        "ready"
                    } else {
                        "idle"
                    }
                    .to_owned(),
                    milli_cpu: w.info.milli_cpu,
                    memory_mb: w.info.memory_mb,
                    used_milli_cpu: w.used_milli_cpu,
                    used_memory_mb: w.used_memory_mb,
                    gpus: w.info.gpus.iter().map(|g| g.name.clone()).collect(),
                    busy_gpus: u32::try_from(w.busy_gpus.len()).unwrap_or(u32::MAX),
                    containers: u32::try_from(containers).unwrap_or(u32::MAX),
                    labels: w.info.labels.clone(),
                    runtime: w.info.runtime.clone(),
                }
            })
            .collect();
        list.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        list.extend(self.pending_pilots.iter().cloned());
        list
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
