//! Containers and workers on the control plane: the scheduling pass (feed ready containers,
//! start new ones), container lifecycle from start request to exit, and worker bookkeeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::Status;

use super::scheduler::{self, Load, Placement, Request};
use super::state::{InputState, Reservation, State, StopReason, TaskRec, TaskState, Timer};
use crate::ids::new_id;
use crate::wire::{self, pb};

const EWMA_ALPHA: f64 = 0.2;

fn ewma(prev: Option<Duration>, sample: Duration) -> Duration {
    match prev {
        None => sample,
        Some(p) => p.mul_f64(1.0 - EWMA_ALPHA) + sample.mul_f64(EWMA_ALPHA),
    }
}

fn describe_exit(code: Option<i32>, signal: Option<i32>) -> String {
    match (code, signal) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(9)) => "SIGKILL".into(),
        (None, Some(15)) => "SIGTERM".into(),
        (None, Some(s)) => format!("signal {s}"),
        (None, None) => "its worker went away".into(),
    }
}

impl State {
    /// One scheduling pass over the functions whose queues or containers changed.
    pub(super) fn schedule(&mut self, now: Instant) {
        if self.dirty.is_empty() {
            return;
        }
        let dirty: Vec<String> = self.dirty.drain().collect();
        for function_id in dirty {
            self.dispatch(&function_id, now);
            self.autoscale(&function_id, now);
        }
    }

    /// Sends queued inputs to the function's ready containers, least loaded first.
    fn dispatch(&mut self, function_id: &str, now: Instant) {
        let Some(f) = self.functions.get_mut(function_id) else {
            return;
        };
        if f.queue.is_empty() {
            return;
        }
        if let Some(batch) = f.def.batch {
            self.dispatch_batches(function_id, batch, now);
            return;
        }
        let concurrency = f.concurrency();
        let version = f.version;
        let single_use = f.def.single_use_containers;
        let slots = if single_use {
            1
        } else {
            concurrency + scheduler::prefetch_depth(f.exec_ewma)
        };
        let mut batches: HashMap<String, Vec<pb::InputItem>> = HashMap::new();
        let mut started = Vec::new();
        loop {
            let best = f
                .tasks
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|t| (id, t)))
                .filter(|(_, t)| t.accepting() && t.version == version && t.load() < slots)
                .min_by_key(|(_, t)| t.load())
                .map(|(id, _)| id.clone());
            let Some(task_id) = best else { break };
            let Some(input_id) = f.queue.pop_front() else {
                break;
            };
            let Some(input) = self.inputs.get_mut(&input_id) else {
                continue;
            };
            if input.state != InputState::Queued {
                continue;
            }
            let Some(task) = self.tasks.get_mut(&task_id) else {
                continue;
            };
            if task.running.len() < concurrency {
                task.running.push(input_id.clone());
                started.push((input_id.clone(), task_id.clone()));
            } else {
                task.prefetched.push_back(input_id.clone());
                input.state = InputState::Prefetched(task_id.clone());
            }
            if single_use {
                task.stop = Some(StopReason::SingleUse);
            }
            batches.entry(task_id).or_default().push(pb::InputItem {
                input_id,
                input: Some(input.payload.clone()),
                attempt: input.attempt,
                method_name: input.method.clone(),
                batch_id: String::new(),
            });
        }
        for (input_id, task_id) in started {
            self.input_started(&input_id, &task_id, now);
        }
        for (task_id, items) in batches {
            if let Some(tx) = self.tasks.get(&task_id).and_then(|t| t.tx.as_ref()) {
                let _ = tx.send(pb::ContainerCommand {
                    command: Some(pb::container_command::Command::Inputs(pb::InputBatch {
                        items,
                    })),
                });
            }
        }
    }

    /// A batched function: a batch goes to an idle container once `max_batch_size` inputs wait,
    /// or once the oldest has waited `wait_ms`.
    fn dispatch_batches(&mut self, function_id: &str, cfg: pb::BatchConfig, now: Instant) {
        let size = usize::try_from(cfg.max_batch_size.max(1)).unwrap_or(1);
        let wait = Duration::from_millis(u64::from(cfg.wait_ms));
        loop {
            let Some(f) = self.functions.get_mut(function_id) else {
                return;
            };
            while let Some(front) = f.queue.front() {
                if self
                    .inputs
                    .get(front)
                    .is_some_and(|i| i.state == InputState::Queued)
                {
                    break;
                }
                f.queue.pop_front();
            }
            let Some(oldest) = f
                .queue
                .front()
                .and_then(|id| self.inputs.get(id))
                .map(|i| i.queued_at)
            else {
                return;
            };
            if f.queue.len() < size && now.duration_since(oldest) < wait {
                self.set_timer(
                    oldest + wait,
                    Timer::BatchDue {
                        function_id: function_id.to_owned(),
                    },
                );
                return;
            }
            let version = f.version;
            let idle = f
                .tasks
                .iter()
                .find(|id| {
                    self.tasks
                        .get(*id)
                        .is_some_and(|t| t.accepting() && t.version == version && t.load() == 0)
                })
                .cloned();
            let Some(task_id) = idle else { return };
            let batch_id = new_id("bt-");
            let mut items = Vec::new();
            while items.len() < size {
                let Some(input_id) = f.queue.pop_front() else {
                    break;
                };
                let Some(input) = self.inputs.get(&input_id) else {
                    continue;
                };
                if input.state != InputState::Queued {
                    continue;
                }
                items.push(pb::InputItem {
                    input_id,
                    input: Some(input.payload.clone()),
                    attempt: input.attempt,
                    method_name: input.method.clone(),
                    batch_id: batch_id.clone(),
                });
            }
            if let Some(task) = self.tasks.get_mut(&task_id) {
                task.running
                    .extend(items.iter().map(|i| i.input_id.clone()));
            }
            for item in &items {
                self.input_started(&item.input_id, &task_id, now);
            }
            if let Some(tx) = self.tasks.get(&task_id).and_then(|t| t.tx.as_ref()) {
                let _ = tx.send(pb::ContainerCommand {
                    command: Some(pb::container_command::Command::Inputs(pb::InputBatch {
                        items,
                    })),
                });
            }
        }
    }

    /// Starts as many containers as the autoscaler asks for and the workers can hold.
    fn autoscale(&mut self, function_id: &str, now: Instant) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let app_running = self
            .apps
            .get(&f.app_id)
            .is_some_and(|a| !matches!(a.state, pb::AppState::Stopping | pb::AppState::Stopped));
        if !app_running {
            return;
        }
        let mut load = Load {
            queued: f.queue.len(),
            in_containers: 0,
            ready: 0,
            starting: 0,
            concurrency: f.def.batch.map_or(f.target_concurrency(), |b| {
                usize::try_from(b.max_batch_size.max(1)).unwrap_or(1)
            }),
            exec: f.exec_ewma,
            startup: f.startup_ewma,
            min_containers: usize::try_from(
                f.def.autoscaler.map(|a| a.min_containers).unwrap_or(0),
            )
            .unwrap_or(0),
            max_containers: f
                .def
                .autoscaler
                .and_then(|a| a.max_containers)
                .and_then(|m| usize::try_from(m).ok()),
            buffer_containers: usize::try_from(
                f.def.autoscaler.map(|a| a.buffer_containers).unwrap_or(0),
            )
            .unwrap_or(0),
        };
        for t in f.tasks.iter().filter_map(|id| self.tasks.get(id)) {
            load.in_containers += t.load();
            if t.stop.is_some() {
                continue;
            }
            match t.state {
                TaskState::Ready => load.ready += 1,
                TaskState::Starting => load.starting += 1,
            }
        }
        let wanted = scheduler::containers_to_start(&load);
        if wanted == 0 {
            return;
        }
        let resources = f.def.resources.unwrap_or_default();
        let request = Request {
            milli_cpu: if resources.milli_cpu == 0 {
                scheduler::DEFAULT_MILLI_CPU
            } else {
                resources.milli_cpu
            },
            memory_mb: if resources.memory_mb == 0 {
                scheduler::DEFAULT_MEMORY_MB
            } else {
                resources.memory_mb
            },
            gpu: f
                .def
                .gpu
                .iter()
                .map(|g| (g.kind.clone(), g.count))
                .collect(),
        };
        for _ in 0..wanted {
            match scheduler::place(&request, &self.worker_views()) {
                Placement::On { worker, gpus } => {
                    self.start_task(function_id, &worker, &request, gpus, now)
                }
                Placement::Wait => {
                    // Idle containers of other functions give way to waiting work.
                    if let Some(victim) = self.idle_victim(function_id, !request.gpu.is_empty()) {
                        tracing::debug!(task_id = %victim, %function_id, "stopping an idle container to make room");
                        self.stop_task(&victim, StopReason::Idle, 500);
                    }
                    break;
                }
                Placement::Never(why) => {
                    self.fail_queued(
                        function_id,
                        pb::ResultStatus::InternalFailure,
                        &why,
                        "",
                        false,
                        now,
                    );
                    break;
                }
            }
        }
    }

    /// The longest-idle container of another function that can go without dropping below that
    /// function's `min_containers`; one holding GPUs when GPUs are what is missing.
    fn idle_victim(&self, for_function: &str, needs_gpus: bool) -> Option<String> {
        self.tasks
            .iter()
            .filter(|(_, t)| {
                t.function_id != for_function
                    && (!needs_gpus || !t.reservation.gpus.is_empty())
                    && t.state == TaskState::Ready
                    && t.stop.is_none()
                    && t.load() == 0
            })
            .filter(|(_, t)| {
                let Some(f) = self.functions.get(&t.function_id) else {
                    return false;
                };
                let min = f.def.autoscaler.map(|a| a.min_containers).unwrap_or(0) as usize;
                let live = f
                    .tasks
                    .iter()
                    .filter(|id| self.tasks.get(*id).is_some_and(|t| t.stop.is_none()))
                    .count();
                live > min
            })
            .min_by_key(|(_, t)| t.idle_since)
            .map(|(id, _)| id.clone())
    }

    fn start_task(
        &mut self,
        function_id: &str,
        worker_id: &str,
        request: &Request,
        gpus: Vec<u32>,
        now: Instant,
    ) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let Some(app) = self.apps.get(&f.app_id) else {
            return;
        };
        let secret_env = match self.open_named_secrets(&f.def, &app.environment) {
            Ok(env) => env,
            Err(why) => {
                let msg = format!("cannot start a container: {why}");
                self.fail_queued(
                    function_id,
                    pb::ResultStatus::InitFailure,
                    &msg,
                    "",
                    false,
                    now,
                );
                return;
            }
        };
        let task_id = new_id("ta-");
        let (token_id, token_secret) = if self.auth.is_enabled() {
            self.auth.issue_container_token(&task_id, &f.app_id)
        } else {
            (String::new(), String::new())
        };
        let spec = pb::ContainerSpec {
            task_id: task_id.clone(),
            app_id: f.app_id.clone(),
            app_name: app.name.clone(),
            function_id: function_id.to_owned(),
            definition: Some(f.def.clone()),
            server_url: self.server_url.clone(),
            gpu_indices: gpus.clone(),
            secret_env: secret_env.into_iter().collect(),
            token_id,
            token_secret,
        };
        let app_id = f.app_id.clone();
        let version = f.version;
        let startup = Duration::from_secs(u64::from(f.def.startup_timeout_secs.max(1)));
        let Some(worker) = self.workers.get_mut(worker_id) else {
            return;
        };
        worker.used_milli_cpu += request.milli_cpu;
        worker.used_memory_mb += request.memory_mb;
        worker.busy_gpus.extend(gpus.iter().copied());
        let _ = worker.tx.send(pb::WorkerCommand {
            command: Some(pb::worker_command::Command::Start(pb::StartContainer {
                spec: Some(spec),
            })),
        });
        if let Some(f) = self.functions.get_mut(function_id) {
            f.tasks.push(task_id.clone());
        }
        self.tasks.insert(
            task_id.clone(),
            TaskRec {
                function_id: function_id.to_owned(),
                app_id,
                worker_id: worker_id.to_owned(),
                state: TaskState::Starting,
                tx: None,
                running: Vec::new(),
                prefetched: Default::default(),
                created: now,
                idle_since: now,
                served: 0,
                stop: None,
                reservation: Reservation {
                    milli_cpu: request.milli_cpu,
                    memory_mb: request.memory_mb,
                    gpus,
                },
                version,
                ready_at_ms: 0,
            },
        );
        tracing::debug!(%task_id, %function_id, %worker_id, "starting container");
        self.set_timer(now + startup, Timer::StartupDeadline { task_id });
    }

    /// Asks a container to stop: the container itself first, its worker after `grace_ms`.
    pub(super) fn stop_task(&mut self, task_id: &str, reason: StopReason, grace_ms: u32) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.stop.is_none() || reason == StopReason::Timeout || reason == StopReason::AppStopped
        {
            task.stop = Some(reason.clone());
        }
        if let Some(tx) = &task.tx {
            let _ = tx.send(pb::ContainerCommand {
                command: Some(pb::container_command::Command::Shutdown(
                    pb::ContainerShutdown {
                        reason: format!("{reason:?}"),
                    },
                )),
            });
        }
        if let Some(w) = self.workers.get(&task.worker_id) {
            let _ = w.tx.send(pb::WorkerCommand {
                command: Some(pb::worker_command::Command::Stop(pb::StopContainer {
                    task_id: task_id.to_owned(),
                    grace_ms,
                })),
            });
        }
    }

    /// Ends the current attempt of every queued input of a function with `status`.
    /// With `retry`, each may be retried per the function's policy; otherwise the result is final.
    pub(super) fn fail_queued(
        &mut self,
        function_id: &str,
        status: pb::ResultStatus,
        message: &str,
        task_id: &str,
        retry: bool,
        now: Instant,
    ) {
        let Some(f) = self.functions.get_mut(function_id) else {
            return;
        };
        let queued: Vec<String> = f.queue.drain(..).collect();
        for input_id in queued {
            let result = wire::failure(status, message, task_id);
            if retry {
                self.attempt_ended(&input_id, result, now);
            } else {
                self.finish_input(&input_id, result);
            }
        }
    }

    pub(super) fn container_hello(
        &mut self,
        hello: pb::ContainerHello,
        tx: mpsc::UnboundedSender<pb::ContainerCommand>,
    ) -> Result<(), Status> {
        let now = Instant::now();
        let task = self.tasks.get(&hello.task_id).ok_or_else(|| {
            Status::not_found(format!(
                "container {} is not known to this control plane",
                hello.task_id
            ))
        })?;
        if task.state != TaskState::Starting {
            return Err(Status::already_exists(format!(
                "container {} is already connected",
                hello.task_id
            )));
        }
        let function_id = task.function_id.clone();
        let expected = self
            .functions
            .get(&function_id)
            .map(|f| f.def.binary_hash.clone())
            .unwrap_or_default();
        if hello.binary_hash != expected {
            let msg = format!(
                "the container's binary (blake3 {}) differs from the one registered for the app (blake3 {expected})",
                short(&hello.binary_hash)
            );
            self.container_init_failure(&hello.task_id, &msg);
            return Err(Status::failed_precondition(msg));
        }
        let Some(task) = self.tasks.get_mut(&hello.task_id) else {
            return Ok(());
        };
        task.state = TaskState::Ready;
        task.ready_at_ms = super::state::now_ms();
        task.tx = Some(tx);
        task.idle_since = now;
        let startup = now.duration_since(task.created);
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.startup_ewma = Some(ewma(f.startup_ewma, startup));
        }
        if task.stop.is_some() {
            let reason = task.stop.clone().unwrap_or(StopReason::AppStopped);
            self.stop_task(&hello.task_id, reason, 0);
        }
        self.dirty.insert(function_id);
        Ok(())
    }

    pub(super) fn container_outputs(&mut self, task_id: &str, items: Vec<pb::OutputItem>) {
        let now = Instant::now();
        let Some(function_id) = self.tasks.get(task_id).map(|t| t.function_id.clone()) else {
            return;
        };
        let concurrency = self
            .functions
            .get(&function_id)
            .map(|f| f.concurrency())
            .unwrap_or(1);
        for item in items {
            let Some(input) = self.inputs.get(&item.input_id) else {
                continue;
            };
            let InputState::Running { task, started } = &input.state else {
                continue;
            };
            if task != task_id {
                continue;
            }
            let exec = now.duration_since(*started);
            if let Some(f) = self.functions.get_mut(&function_id) {
                f.exec_ewma = Some(ewma(f.exec_ewma, exec));
            }
            let mut promote = Vec::new();
            if let Some(t) = self.tasks.get_mut(task_id) {
                t.running.retain(|i| *i != item.input_id);
                t.served += 1;
                while t.running.len() < concurrency {
                    let Some(next) = t.prefetched.pop_front() else {
                        break;
                    };
                    t.running.push(next.clone());
                    promote.push(next);
                }
                if t.load() == 0 {
                    t.idle_since = now;
                }
            }
            for next in promote {
                self.input_started(&next, task_id, now);
            }
            let mut result = item.result.unwrap_or_default();
            result.task_id = task_id.to_owned();
            self.attempt_ended(&item.input_id, result, now);
        }
        self.dirty.insert(function_id);
        let drained = self.tasks.get(task_id).is_some_and(|t| {
            t.load() == 0 && matches!(t.stop, Some(StopReason::Requested | StopReason::SingleUse))
        });
        if drained {
            let reason = self
                .tasks
                .get(task_id)
                .and_then(|t| t.stop.clone())
                .unwrap_or(StopReason::Requested);
            self.stop_task(task_id, reason, 2000);
        }
        self.retire_if_outdated(task_id);
    }

    pub(super) fn container_init_failure(&mut self, task_id: &str, message: &str) {
        let now = Instant::now();
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.stop = Some(StopReason::InitFailure);
        let function_id = task.function_id.clone();
        let assigned: Vec<String> = task
            .running
            .drain(..)
            .chain(task.prefetched.drain(..))
            .collect();
        self.system_log(
            &function_id,
            task_id,
            format!("container {task_id} could not start the function: {message}"),
        );
        for input_id in assigned {
            let r = wire::failure(pb::ResultStatus::InitFailure, message, task_id);
            self.attempt_ended(&input_id, r, now);
        }
        if !self.has_other_ready_task(&function_id, task_id) {
            self.fail_queued(
                &function_id,
                pb::ResultStatus::InitFailure,
                message,
                task_id,
                true,
                now,
            );
        }
        self.stop_task(task_id, StopReason::InitFailure, 1000);
    }

    fn has_other_ready_task(&self, function_id: &str, task_id: &str) -> bool {
        self.tasks.iter().any(|(id, t)| {
            id != task_id
                && t.function_id == function_id
                && t.state == TaskState::Ready
                && t.stop.is_none()
        })
    }

    pub(super) fn container_disconnected(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.tx = None;
        if task.stop.is_none() {
            // It left without being asked: make sure the process is gone too.
            tracing::warn!(%task_id, "container disconnected unexpectedly");
            let worker = task.worker_id.clone();
            if let Some(w) = self.workers.get(&worker) {
                let _ = w.tx.send(pb::WorkerCommand {
                    command: Some(pb::worker_command::Command::Stop(pb::StopContainer {
                        task_id: task_id.to_owned(),
                        grace_ms: 1000,
                    })),
                });
            }
        }
    }

    pub(super) fn startup_deadline(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.state != TaskState::Starting {
            return;
        }
        let secs = self
            .functions
            .get(&task.function_id)
            .map(|f| f.def.startup_timeout_secs)
            .unwrap_or(0);
        let msg = format!("the container did not connect within the startup timeout of {secs} s");
        self.stop_task(task_id, StopReason::StartupTimeout(msg), 0);
    }

    /// A container process is gone: release what it held and settle its inputs.
    pub(super) fn task_exited(
        &mut self,
        task_id: &str,
        code: Option<i32>,
        signal: Option<i32>,
        note: Option<String>,
    ) {
        let now = Instant::now();
        let Some(task) = self.tasks.remove(task_id) else {
            return;
        };
        self.auth.revoke_container_token(task_id);
        if let Some(w) = self.workers.get_mut(&task.worker_id) {
            w.used_milli_cpu = w.used_milli_cpu.saturating_sub(task.reservation.milli_cpu);
            w.used_memory_mb = w.used_memory_mb.saturating_sub(task.reservation.memory_mb);
            for g in &task.reservation.gpus {
                w.busy_gpus.remove(g);
            }
        }
        let function_id = task.function_id.clone();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.tasks.retain(|t| t != task_id);
        }
        let how = note.unwrap_or_else(|| describe_exit(code, signal));
        // Inputs that were only waiting inside the container go back to the front of the queue.
        let mut requeue: Vec<String> = task.prefetched.iter().cloned().collect();
        match &task.stop {
            Some(
                StopReason::Timeout
                | StopReason::AppStopped
                | StopReason::Idle
                | StopReason::Redeployed
                | StopReason::Requested,
            ) => {
                requeue.extend(task.running.iter().cloned());
            }
            _ => {
                let msg = format!(
                    "container {task_id} exited unexpectedly ({how}) while running the input"
                );
                for input_id in &task.running {
                    let r = wire::failure(pb::ResultStatus::InternalFailure, msg.clone(), task_id);
                    self.attempt_ended(input_id, r, now);
                }
            }
        }
        if let Some(f) = self.functions.get_mut(&function_id) {
            for input_id in requeue.into_iter().rev() {
                if let Some(input) = self.inputs.get_mut(&input_id) {
                    input.state = InputState::Queued;
                    input.queued_at = now;
                    f.queue.push_front(input_id);
                }
            }
        }
        // A container that never became ready fails the waiting inputs (as an init failure,
        // each retried per its policy) rather than being restarted for ever.
        let never_ready = match (&task.state, &task.stop) {
            (_, Some(StopReason::StartupTimeout(msg))) => {
                Some(format!("container {task_id}: {msg}"))
            }
            (TaskState::Starting, None) => Some(format!(
                "container {task_id} exited ({how}) before it connected to the control plane; its output is in the app's logs"
            )),
            (TaskState::Ready, None) => {
                self.system_log(
                    &function_id,
                    task_id,
                    format!("container {task_id} exited unexpectedly ({how})"),
                );
                None
            }
            _ => None,
        };
        if let Some(msg) = never_ready {
            self.system_log(&function_id, task_id, msg.clone());
            if !self.has_other_ready_task(&function_id, task_id) {
                self.fail_queued(
                    &function_id,
                    pb::ResultStatus::InitFailure,
                    &msg,
                    task_id,
                    true,
                    now,
                );
            }
        }
        tracing::debug!(%task_id, %how, "container exited");
        self.dirty.insert(function_id);
        // The capacity it held may let waiting work start.
        self.recheck_waiting();
        let app_id = task.app_id;
        self.check_app_done(&app_id);
        self.check_recreate(&app_id);
    }

    /// Puts every function with queued inputs into the next scheduling pass.
    pub(super) fn recheck_waiting(&mut self) {
        let waiting = self
            .functions
            .iter()
            .filter(|(_, f)| !f.queue.is_empty())
            .map(|(id, _)| id.clone());
        self.dirty.extend(waiting);
    }

    /// Stops containers idle past their scale-down window, keeping `min_containers`.
    pub(super) fn scale_down(&mut self, now: Instant) {
        let mut to_stop = Vec::new();
        for f in self.functions.values() {
            let window = Duration::from_secs(u64::from(
                f.def
                    .autoscaler
                    .map(|a| a.scaledown_window_secs)
                    .unwrap_or(60)
                    .max(1),
            ));
            let min = usize::try_from(f.def.autoscaler.map(|a| a.min_containers).unwrap_or(0))
                .unwrap_or(0);
            let live: Vec<&TaskRec> = f
                .tasks
                .iter()
                .filter_map(|id| self.tasks.get(id))
                .filter(|t| t.stop.is_none())
                .collect();
            let mut remaining = live.len();
            let mut idle: Vec<(&String, &TaskRec)> = f
                .tasks
                .iter()
                .filter_map(|id| self.tasks.get(id).map(|t| (id, t)))
                .filter(|(_, t)| {
                    t.stop.is_none()
                        && t.state == TaskState::Ready
                        && t.load() == 0
                        && now.duration_since(t.idle_since) >= window
                })
                .collect();
            idle.sort_by_key(|(_, t)| t.idle_since);
            for (id, _) in idle {
                if remaining <= min {
                    break;
                }
                remaining -= 1;
                to_stop.push(id.clone());
            }
        }
        for id in to_stop {
            tracing::debug!(task_id = %id, "scaling down idle container");
            self.stop_task(&id, StopReason::Idle, 2000);
        }
    }
}

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}
