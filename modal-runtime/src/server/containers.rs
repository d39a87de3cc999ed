//! Container lifecycle on the control plane, from the start request to the exit: starting one
//! on a worker, its hello, its outputs, an init failure, a lost stream, the start-up deadline,
//! stopping it, and settling its inputs when its process is gone.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tonic::Status;

use super::scheduler::Request;
use super::state::{InputState, Reservation, State, StopReason, TaskRec, TaskState, Timer};
use crate::ids::new_id;
use crate::model::{
    CallResult, ContainerCommand, ContainerHello, ContainerSpec, InputsSeen, OutputItem,
    ResultStatus, WorkerCommand,
};
use crate::task_env;

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

fn short(hash: &str) -> &str {
    hash.get(..16).unwrap_or(hash)
}

/// Why the control plane stopped a container, for the dashboard.
fn stop_reason_text(r: &StopReason) -> String {
    match r {
        StopReason::Idle => "idle past its scale-down window".into(),
        StopReason::AppStopped => "its app stopped".into(),
        StopReason::Timeout => "an input timed out".into(),
        StopReason::StartupTimeout(why) => why.clone(),
        StopReason::InitFailure => "its start failed".into(),
        StopReason::Cancelled => "an input it ran was cancelled".into(),
        StopReason::SingleUse => "it served its one input".into(),
        StopReason::Redeployed => "a newer version was deployed".into(),
        StopReason::Requested => "stopped on request".into(),
        StopReason::WorkerLost => "its worker went away".into(),
    }
}

/// The least time a container that mounts volumes gets to exit cleanly (its `exit` hooks get
/// up to 10 s of it, then it commits its volumes).
const VOLUME_COMMIT_GRACE_MS: u32 = 30_000;

impl State {
    /// Asks `worker_id` to start a container of the function with the reserved resources.
    pub(crate) fn start_task(
        &mut self,
        function_id: &str,
        worker_id: &str,
        request: &Request,
        gpus: Vec<u32>,
    ) {
        let now = self.clock.now;
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let Some(app) = self.apps.get(&f.app_id) else {
            return;
        };
        let secret_env = match self.open_secrets(&f.def, &app.environment) {
            Ok(env) => env,
            Err(why) => {
                let msg = format!("cannot start a container: {why}");
                self.fail_queued(function_id, ResultStatus::InitFailure, &msg, "", false);
                return;
            }
        };
        let task_id = new_id("ta-");
        let (token_id, token_secret) =
            self.auth
                .issue_container_token(&task_id, &f.app_id, f.def.restrict_modal_access);
        let spec = ContainerSpec {
            task_id: task_id.clone(),
            app_id: f.app_id.clone(),
            app_name: app.name.clone(),
            function_id: function_id.to_owned(),
            definition: f.def.shareable(),
            server_url: self.server_url.clone(),
            gpu_indices: gpus.clone(),
            secret_env: secret_env.into(),
            token_id,
            token_secret,
        };
        let app_id = f.app_id.clone();
        let version = f.version;
        let startup = f.def.startup_timeout();
        let Some(worker) = self.workers.get_mut(worker_id) else {
            return;
        };
        worker.used_milli_cpu += request.milli_cpu;
        worker.used_memory_mb += request.memory_mb;
        worker.busy_gpus.extend(gpus.iter().copied());
        worker.idle_since = None;
        let _ = worker.tx.send(WorkerCommand::Start(Box::new(spec)));
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
    pub(crate) fn stop_task(&mut self, task_id: &str, reason: StopReason, grace_ms: u32) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        if task.stop.is_none() || reason == StopReason::Timeout || reason == StopReason::AppStopped
        {
            task.stop = Some(reason.clone());
        }
        task.send(ContainerCommand::Shutdown(format!("{reason:?}")));
        // A clean stop of a container with volumes gives it time to commit them.
        let mounts_volumes = self
            .functions
            .get(&task.function_id)
            .is_some_and(|f| !f.def.volumes.is_empty());
        let grace_ms = if grace_ms > 0 && mounts_volumes {
            grace_ms.max(VOLUME_COMMIT_GRACE_MS)
        } else {
            grace_ms
        };
        if let Some(w) = self.workers.get(&task.worker_id) {
            let _ = w.tx.send(WorkerCommand::Stop {
                task_id: task_id.to_owned(),
                grace_ms,
            });
        }
    }

    /// Ends the current attempt of every queued input of a function with `status`.
    /// With `retry`, each may be retried per the function's policy; otherwise the result is final.
    pub(crate) fn fail_queued(
        &mut self,
        function_id: &str,
        status: ResultStatus,
        message: &str,
        task_id: &str,
        retry: bool,
    ) {
        let Some(f) = self.functions.get_mut(function_id) else {
            return;
        };
        let queued: Vec<String> = f.queue.drain(..).collect();
        for input_id in queued {
            let result = CallResult::failure(status, message, task_id);
            if retry {
                self.attempt_ended(&input_id, result);
            } else {
                self.finish_input(&input_id, result);
            }
        }
    }

    pub(crate) fn container_hello(
        &mut self,
        hello: ContainerHello,
        tx: mpsc::UnboundedSender<ContainerCommand>,
    ) -> Result<(), Status> {
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
        task.tx = Some(tx);
        if let Some(reason) = task.stop.clone() {
            // Asked to stop while it was starting (its app stopped, a deadline passed).
            self.stop_task(&hello.task_id, reason, 0);
        } else if hello.sends_ready {
            // No input until its `enter` hooks ran; the start-up deadline still runs.
            task.state = TaskState::Entering;
        } else {
            self.container_ready(&hello.task_id);
        }
        Ok(())
    }

    /// The container built its instance and ran its `enter` hooks: it takes inputs from now.
    pub(crate) fn container_ready(&mut self, task_id: &str) {
        let (now, unix_ms) = (self.clock.now, self.clock.unix_ms);
        let Some(task) = self
            .tasks
            .get_mut(task_id)
            .filter(|t| t.state != TaskState::Ready)
        else {
            return;
        };
        task.state = TaskState::Ready;
        task.ready_at_ms = unix_ms;
        task.idle_since = now;
        let startup = now.duration_since(task.created);
        let stop = task.stop.clone();
        let function_id = task.function_id.clone();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.startup_ewma = Some(ewma(f.startup_ewma, startup));
        }
        if let Some(reason) = stop {
            self.stop_task(task_id, reason, 0);
        }
        self.dirty.insert(function_id);
    }

    pub(crate) fn container_outputs(&mut self, task_id: &str, items: Vec<OutputItem>) {
        let now = self.clock.now;
        let Some(function_id) = self.tasks.get(task_id).map(|t| t.function_id.clone()) else {
            return;
        };
        let concurrency = self
            .functions
            .get(&function_id)
            .map_or(1, |f| f.def.concurrency());
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
                if let Some(run) = item.run {
                    f.run_ewma = Some(ewma(f.run_ewma, run));
                }
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
                self.input_started(&next, task_id);
            }
            if let Some(input) = self.inputs.get_mut(&item.input_id) {
                input.mapping = input.mapping.after_output(item.input_kept);
            }
            let mut result = item.result;
            result.task_id = task_id.to_owned();
            self.attempt_ended(&item.input_id, result);
        }
        self.dirty.insert(function_id);
        let drained = self
            .tasks
            .get(task_id)
            .filter(|t| t.load() == 0)
            .and_then(|t| match &t.stop {
                Some(r @ (StopReason::Requested | StopReason::SingleUse)) => Some(r.clone()),
                _ => None,
            });
        if let Some(reason) = drained {
            self.stop_task(task_id, reason, 2000);
        }
        self.retire_if_outdated(task_id);
    }

    /// Puts inputs that never started back at the front of their function's queue, in their
    /// order, without counting an attempt.
    fn requeue_at_front(&mut self, function_id: &str, input_ids: Vec<String>, now: Instant) {
        for input_id in &input_ids {
            self.clear_deadline(input_id);
        }
        let Some(f) = self.functions.get_mut(function_id) else {
            return;
        };
        for input_id in input_ids.into_iter().rev() {
            if let Some(input) = self.inputs.get_mut(&input_id) {
                input.state = InputState::Queued;
                input.queued_at = now;
                f.queue.push_front(input_id);
            }
        }
    }

    /// The container must exit (a cancelled input it cannot interrupt): no input goes to it
    /// any more, the ones it had not started go back to the queue, and it is stopped; inputs
    /// still running in it go back to the queue when it exits.
    pub(crate) fn container_leaving(&mut self, task_id: &str, reason: &str) {
        let now = self.clock.now;
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        let function_id = task.function_id.clone();
        let waiting: Vec<String> = task.prefetched.drain(..).collect();
        tracing::debug!(%task_id, reason, "container leaves");
        self.requeue_at_front(&function_id, waiting, now);
        self.stop_task(task_id, StopReason::Cancelled, 2000);
        self.dirty.insert(function_id);
    }

    pub(crate) fn container_init_failure(&mut self, task_id: &str, message: &str) {
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
            let r = CallResult::failure(ResultStatus::InitFailure, message, task_id);
            self.attempt_ended(&input_id, r);
        }
        if !self.has_other_ready_task(&function_id, task_id) {
            self.fail_queued(
                &function_id,
                ResultStatus::InitFailure,
                message,
                task_id,
                true,
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

    pub(crate) fn container_disconnected(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get_mut(task_id) else {
            return;
        };
        task.tx = None;
        if task.stop.is_none() {
            // It left without being asked: make sure the process is gone too.
            tracing::warn!(%task_id, "container disconnected unexpectedly");
            if let Some(w) = self.workers.get(&task.worker_id) {
                let _ = w.tx.send(WorkerCommand::Stop {
                    task_id: task_id.to_owned(),
                    grace_ms: 1000,
                });
            }
        }
    }

    pub(crate) fn startup_deadline(&mut self, task_id: &str) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        if task.state == TaskState::Ready {
            return;
        }
        let secs = self
            .functions
            .get(&task.function_id)
            .map_or(0, |f| f.def.startup_timeout_secs);
        let what = match task.state {
            TaskState::Entering => "run its `enter` hooks",
            _ => "connected",
        };
        let msg = format!(
            "the container had not {what} within the startup timeout of {secs} s (it covers connecting and the `enter` hooks)"
        );
        self.stop_task(task_id, StopReason::StartupTimeout(msg), 0);
    }

    /// A container process is gone: release what it held and settle its inputs. With its
    /// journal (`seen`), an input it never started goes back to the queue without counting an
    /// attempt, and one it started counts one (failed), whatever the control plane thought it
    /// was doing; without one, its running inputs fail and its prefetched ones go back.
    pub(crate) fn task_exited(
        &mut self,
        task_id: &str,
        code: Option<i32>,
        signal: Option<i32>,
        note: Option<String>,
        seen: Option<InputsSeen>,
    ) {
        let how = note.unwrap_or_else(|| describe_exit(code, signal));
        self.settle_exit(task_id, how, false, seen);
    }

    /// The kernel killed the container for using more memory than its limit (`message` says
    /// so, naming the limit): the input it was running fails as out of memory (retried per its
    /// policy); what it had not started goes back to the queue.
    pub(crate) fn task_out_of_memory(
        &mut self,
        task_id: &str,
        message: String,
        seen: Option<InputsSeen>,
    ) {
        self.settle_exit(task_id, message, true, seen);
    }

    /// `how`: how the container ended, for messages; `out_of_memory`: it was killed for want
    /// of memory (`how` says so; its running inputs then fail as `OutOfMemory`).
    fn settle_exit(
        &mut self,
        task_id: &str,
        how: String,
        out_of_memory: bool,
        seen: Option<InputsSeen>,
    ) {
        let now = self.clock.now;
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
        if !self.tasks.values().any(|t| t.worker_id == task.worker_id)
            && let Some(w) = self.workers.get_mut(&task.worker_id)
        {
            w.idle_since = Some(now);
        }
        let function_id = task.function_id.clone();
        if let Some(f) = self.functions.get_mut(&function_id) {
            f.tasks.retain(|t| t != task_id);
        }
        let function_tag = self
            .functions
            .get(&function_id)
            .map(|f| f.def.tag.clone())
            .unwrap_or_default();
        let ended_at_ms = self.clock.unix_ms;
        if let Some(app) = self.apps.get_mut(&task.app_id) {
            if app.recent_exits.len() == super::state::RECENT_EXITS {
                app.recent_exits.pop_front();
            }
            app.recent_exits.push_back(super::state::ExitedContainer {
                task_id: task_id.to_owned(),
                function_tag,
                worker_id: task.worker_id.clone(),
                how: how.clone(),
                reason: task.stop.as_ref().map(stop_reason_text).unwrap_or_default(),
                ended_at_ms,
            });
        }
        let stopped_on_purpose = matches!(
            task.stop,
            Some(
                StopReason::Timeout
                    | StopReason::AppStopped
                    | StopReason::Idle
                    | StopReason::Redeployed
                    | StopReason::Requested
                    | StopReason::Cancelled,
            )
        );
        let mut requeue = Vec::new();
        let mut failed = Vec::new();
        let mut kept = Vec::new();
        if stopped_on_purpose {
            // Stopped by the control plane: what it held runs again elsewhere.
            requeue.extend(task.running.iter().chain(&task.prefetched).cloned());
        } else {
            let crashed = if out_of_memory {
                format!("{how} while running the input")
            } else {
                format!("container {task_id} exited unexpectedly ({how}) while running the input")
            };
            let lost = format!(
                "container {task_id} exited unexpectedly ({how}) after the input returned, before its result reached the control plane"
            );
            // The journal as sets, looked up once per input (it may name thousands).
            let mut journal = seen.map(|s| {
                (
                    s.started.into_iter().collect::<HashSet<_>>(),
                    s.ended.into_iter().collect::<HashSet<_>>(),
                    s.results.into_iter().collect::<HashMap<_, _>>(),
                )
            });
            let held = task.running.iter().map(|i| (i, false));
            for (input_id, prefetched) in held.chain(task.prefetched.iter().map(|i| (i, true))) {
                // The journal names attempts: an earlier attempt in this container says nothing
                // about this one.
                let attempt = self.inputs.get(input_id).map_or(0, |i| i.attempt);
                let key = task_env::journal_key(input_id, attempt);
                match journal.as_mut() {
                    // It never started there: it never ran.
                    Some((started, _, _)) if !started.contains(&key) => {
                        requeue.push(input_id.clone());
                    }
                    // It returned and the journal kept its result: that is its result.
                    Some((_, _, results)) if results.contains_key(&key) => {
                        if let Some(r) = results.remove(&key) {
                            kept.push((input_id.clone(), r));
                        }
                    }
                    Some((_, ended, _)) if ended.contains(&key) => {
                        failed.push((input_id.clone(), lost.clone()));
                    }
                    Some(_) => failed.push((input_id.clone(), crashed.clone())),
                    None if prefetched => requeue.push(input_id.clone()),
                    None => failed.push((input_id.clone(), crashed.clone())),
                }
            }
        }
        let crash_status = if out_of_memory {
            ResultStatus::OutOfMemory
        } else {
            ResultStatus::InternalFailure
        };
        for (input_id, msg) in failed {
            let r = CallResult::failure(crash_status, msg, task_id);
            self.attempt_ended(&input_id, r);
        }
        for (input_id, mut r) in kept {
            r.task_id = task_id.to_owned();
            self.attempt_ended(&input_id, r);
        }
        self.requeue_at_front(&function_id, requeue, now);
        // A container that never became ready fails the waiting inputs (as an init failure,
        // each retried per its policy) rather than being restarted for ever.
        let never_ready = match (&task.state, &task.stop) {
            (_, Some(StopReason::StartupTimeout(msg))) => {
                Some(format!("container {task_id}: {msg}"))
            }
            (TaskState::Starting, None) => Some(format!(
                "container {task_id} exited ({how}) before it connected to the control plane; its output is in the app's logs"
            )),
            (TaskState::Entering, None) => Some(format!(
                "container {task_id} exited ({how}) while running its `enter` hooks; its output is in the app's logs"
            )),
            (TaskState::Ready, None) => {
                let line = if out_of_memory {
                    how.clone()
                } else {
                    format!("container {task_id} exited unexpectedly ({how})")
                };
                self.system_log(&function_id, task_id, line);
                None
            }
            _ => None,
        };
        if let Some(msg) = never_ready {
            self.system_log(&function_id, task_id, msg.clone());
            if !self.has_other_ready_task(&function_id, task_id) {
                self.fail_queued(&function_id, ResultStatus::InitFailure, &msg, task_id, true);
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
}
