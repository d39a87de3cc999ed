//! Apps on the control plane: creation, function registration, stopping, liveness and log fan-out.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::state::{AppRec, FunctionRec, State, StopReason};
use crate::ids::new_id;
use crate::wire::pb;

/// An ephemeral app whose client sent no heartbeat for this long is stopped.
const EPHEMERAL_REAP_AFTER: Duration = Duration::from_secs(60);

impl State {
    pub(super) fn app_create(&mut self, req: pb::AppCreateRequest) -> Result<String, Status> {
        let state = match pb::AppState::try_from(req.state) {
            Ok(s @ (pb::AppState::Ephemeral | pb::AppState::Detached)) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "an app is created ephemeral or detached",
                ));
            }
        };
        let app_id = new_id("ap-");
        tracing::info!(%app_id, name = %req.name, "app created");
        self.apps.insert(
            app_id.clone(),
            AppRec {
                name: req.name,
                state,
                functions: Vec::new(),
                log_subscribers: Vec::new(),
                stop_waiters: Vec::new(),
                last_heartbeat: Instant::now(),
            },
        );
        Ok(app_id)
    }

    pub(super) fn app_publish(
        &mut self,
        req: pb::AppPublishRequest,
    ) -> Result<pb::AppPublishResponse, Status> {
        let app = self.running_app(&req.app_id)?;
        let mut function_ids = std::collections::HashMap::new();
        let mut new_functions = Vec::new();
        for def in req.functions {
            if def.tag.is_empty() || def.binary_path.is_empty() || def.binary_hash.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "function definition `{}` lacks a tag, binary path or binary hash",
                    def.tag
                )));
            }
            let existing = app.functions.iter().find(|id| {
                self.functions
                    .get(*id)
                    .is_some_and(|f| f.def.tag == def.tag)
            });
            let id = existing.cloned().unwrap_or_else(|| new_id("fu-"));
            function_ids.insert(def.tag.clone(), id.clone());
            new_functions.push((id, def));
        }
        for (id, def) in new_functions {
            match self.functions.get_mut(&id) {
                Some(f) => f.def = def,
                None => {
                    self.functions.insert(
                        id.clone(),
                        FunctionRec {
                            app_id: req.app_id.clone(),
                            def,
                            queue: VecDeque::new(),
                            tasks: Vec::new(),
                            exec_ewma: None,
                            startup_ewma: None,
                        },
                    );
                    if let Some(app) = self.apps.get_mut(&req.app_id) {
                        app.functions.push(id.clone());
                    }
                }
            }
            self.dirty.insert(id);
        }
        Ok(pb::AppPublishResponse { function_ids })
    }

    fn running_app(&self, app_id: &str) -> Result<&AppRec, Status> {
        let app = self
            .apps
            .get(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        if matches!(app.state, pb::AppState::Stopping | pb::AppState::Stopped) {
            return Err(Status::failed_precondition(format!(
                "app {app_id} ({}) is stopped",
                app.name
            )));
        }
        Ok(app)
    }

    pub(super) fn app_heartbeat(&mut self, app_id: &str) -> Result<(), Status> {
        let app = self
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        app.last_heartbeat = Instant::now();
        Ok(())
    }

    /// Stops the app: no new inputs, every unfinished input ends cancelled, every container stops.
    /// The returned receiver fires once the last container is gone.
    pub(super) fn app_stop(
        &mut self,
        app_id: &str,
        why: &str,
    ) -> Result<oneshot::Receiver<()>, Status> {
        let (tx, rx) = oneshot::channel();
        let Some(app) = self.apps.get_mut(app_id) else {
            return Err(Status::not_found(format!("app {app_id} not found")));
        };
        app.stop_waiters.push(tx);
        if app.state != pb::AppState::Stopped {
            app.state = pb::AppState::Stopping;
            tracing::info!(%app_id, why, "stopping app");
        }
        let calls: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| c.app_id == app_id)
            .map(|(id, _)| id.clone())
            .collect();
        for call_id in calls {
            let _ = self.call_cancel(&call_id, false, "the app was stopped");
        }
        let tasks: Vec<String> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.app_id == app_id)
            .map(|(id, _)| id.clone())
            .collect();
        for task_id in tasks {
            self.stop_task(&task_id, StopReason::AppStopped, 2000);
        }
        self.check_app_done(app_id);
        Ok(rx)
    }

    /// Marks a stopping app stopped once none of its containers is left.
    pub(super) fn check_app_done(&mut self, app_id: &str) {
        if self.tasks.values().any(|t| t.app_id == app_id) {
            return;
        }
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        if app.state != pb::AppState::Stopping && app.state != pb::AppState::Stopped {
            return;
        }
        app.state = pb::AppState::Stopped;
        for sub in app.log_subscribers.drain(..) {
            let _ = sub.send(pb::LogBatch {
                entries: Vec::new(),
                app_done: true,
            });
        }
        for w in app.stop_waiters.drain(..) {
            let _ = w.send(());
        }
        tracing::info!(%app_id, "app stopped");
    }

    pub(super) fn subscribe_logs(
        &mut self,
        app_id: &str,
        tx: mpsc::UnboundedSender<pb::LogBatch>,
    ) -> Result<(), Status> {
        let app = self
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        if app.state == pb::AppState::Stopped {
            let _ = tx.send(pb::LogBatch {
                entries: Vec::new(),
                app_done: true,
            });
        } else {
            app.log_subscribers.push(tx);
        }
        Ok(())
    }

    /// Sends log lines of one container to its app's subscribers, tagged with what it was running.
    pub(super) fn emit_task_logs(
        &mut self,
        task_id: &str,
        lines: Vec<(pb::LogSource, String, i64)>,
    ) {
        let Some(task) = self.tasks.get(task_id) else {
            return;
        };
        let Some(function) = self.functions.get(&task.function_id) else {
            return;
        };
        let input_id = match task.running.as_slice() {
            [one] => one.clone(),
            _ => String::new(),
        };
        let entries = lines
            .into_iter()
            .map(|(source, data, timestamp_ms)| pb::LogEntry {
                function_id: task.function_id.clone(),
                function_tag: function.def.tag.clone(),
                task_id: task_id.to_owned(),
                input_id: input_id.clone(),
                source: source as i32,
                data,
                timestamp_ms,
            })
            .collect();
        let app_id = task.app_id.clone();
        self.send_logs(&app_id, entries);
    }

    /// A line the platform writes about a function (a retry, a timeout, a crashed container).
    pub(super) fn system_log(&mut self, function_id: &str, task_id: &str, data: String) {
        let Some(function) = self.functions.get(function_id) else {
            return;
        };
        let entry = pb::LogEntry {
            function_id: function_id.to_owned(),
            function_tag: function.def.tag.clone(),
            task_id: task_id.to_owned(),
            input_id: String::new(),
            source: pb::LogSource::System as i32,
            data,
            timestamp_ms: chrono::Utc::now().timestamp_millis(),
        };
        let app_id = function.app_id.clone();
        self.send_logs(&app_id, vec![entry]);
    }

    fn send_logs(&mut self, app_id: &str, entries: Vec<pb::LogEntry>) {
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let batch = pb::LogBatch {
            entries,
            app_done: false,
        };
        app.log_subscribers
            .retain(|s| s.send(batch.clone()).is_ok());
    }

    /// Periodic work: stop idle containers past their scale-down window, reap ephemeral apps
    /// whose client stopped sending heartbeats.
    pub(super) fn housekeeping(&mut self, now: Instant) {
        let stale: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, a)| {
                a.state == pb::AppState::Ephemeral
                    && now.duration_since(a.last_heartbeat) > EPHEMERAL_REAP_AFTER
            })
            .map(|(id, _)| id.clone())
            .collect();
        for app_id in stale {
            tracing::warn!(%app_id, "no heartbeat from the app's client; stopping it");
            let _ = self.app_stop(&app_id, "its client stopped sending heartbeats");
        }
        self.scale_down(now);
    }
}
