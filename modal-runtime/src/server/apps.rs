//! Apps on the control plane: creation, function registration, stopping, liveness and log fan-out.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::state::{AppRec, FunctionRec, State, StopReason, environment};
use super::store::{AppRow, FunctionRow, LogRow, Op};
use crate::ids::new_id;
use crate::model::{AppState, FunctionDef, LogBatch, LogEntry, LogSource};
use crate::wire;

/// An ephemeral app whose client sent no heartbeat for this long is stopped.
const EPHEMERAL_REAP_AFTER: Duration = Duration::from_secs(60);

/// An app to create for a run.
pub(crate) struct NewApp {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) environment: String,
    pub(crate) state: Option<AppState>,
    pub(crate) tags: BTreeMap<String, String>,
}

impl State {
    pub(crate) fn app_create(&mut self, new: NewApp) -> Result<String, Status> {
        let state = match new.state {
            Some(s @ (AppState::Ephemeral | AppState::Detached)) => s,
            _ => {
                return Err(Status::invalid_argument(
                    "an app is created ephemeral or detached",
                ));
            }
        };
        let app_id = new_id("ap-");
        tracing::info!(%app_id, name = %new.name, "app created");
        let mut app = AppRec::new(new.name, environment(&new.environment), state, self.clock);
        app.description = new.description;
        app.tags = new.tags;
        self.apps.insert(app_id.clone(), app);
        self.save_app(&app_id);
        Ok(app_id)
    }

    /// Queues the app's current row for the store.
    pub(crate) fn save_app(&mut self, app_id: &str) {
        let Some(app) = self.apps.get(app_id) else {
            return;
        };
        let row = AppRow {
            id: app_id.to_owned(),
            name: app.name.clone(),
            environment: app.environment.clone(),
            state: wire::app_state_code(app.state),
            tags_json: serde_json::to_string(&app.tags).unwrap_or_else(|_| "{}".into()),
            created_at: app.created_at_ms,
            stopped_at: app.stopped_at_ms,
            deployed_version: app.deployed_version,
        };
        self.record(Op::UpsertApp(row));
    }

    /// Queues a function's current row for the store.
    pub(crate) fn save_function(&mut self, function_id: &str) {
        let Some(f) = self.functions.get(function_id) else {
            return;
        };
        let row = FunctionRow {
            id: function_id.to_owned(),
            app_id: f.app_id.clone(),
            tag: f.def.tag.clone(),
            definition: wire::encode_definition(&f.def),
            version: f.version,
        };
        self.record(Op::UpsertFunction(row));
    }

    /// Creates or updates the app's functions from their definitions; returns tag → id.
    pub(crate) fn register_functions(
        &mut self,
        app_id: &str,
        defs: Vec<FunctionDef>,
        version: i64,
    ) -> Result<HashMap<String, String>, Status> {
        let app = self
            .apps
            .get(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        let environment = app.environment.clone();
        for def in &defs {
            let problems = def.problems();
            if !problems.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "function `{}`: {}",
                    def.tag,
                    problems.join("; ")
                )));
            }
            self.check_named_secrets(def, &environment)?;
            self.check_volume_mounts(&def.volumes)?;
            self.check_image(def)?;
        }
        let mut function_ids = HashMap::new();
        for def in defs {
            let def = self.seal_definition(def)?;
            let existing = self.apps.get(app_id).and_then(|app| {
                app.functions
                    .iter()
                    .find(|id| {
                        self.functions
                            .get(*id)
                            .is_some_and(|f| f.def.tag == def.tag)
                    })
                    .cloned()
            });
            let id = existing.unwrap_or_else(|| new_id("fu-"));
            function_ids.insert(def.tag.clone(), id.clone());
            match self.functions.get_mut(&id) {
                Some(f) => {
                    f.def = def;
                    f.version = version;
                    f.retired = false;
                    self.refresh_variants(&id);
                }
                None => {
                    let rec = FunctionRec::new(app_id.to_owned(), def, version, self.clock.unix_ms);
                    self.functions.insert(id.clone(), rec);
                    if let Some(app) = self.apps.get_mut(app_id) {
                        app.functions.push(id.clone());
                    }
                }
            }
            self.save_function(&id);
            self.arm_schedule(&id);
            self.dirty.insert(id);
        }
        Ok(function_ids)
    }

    /// Registers the functions of a running app; returns tag → id.
    pub(crate) fn app_publish(
        &mut self,
        app_id: &str,
        defs: Vec<FunctionDef>,
    ) -> Result<HashMap<String, String>, Status> {
        self.running_app(app_id)?;
        self.register_functions(app_id, defs, 0)
    }

    pub(crate) fn running_app(&self, app_id: &str) -> Result<&AppRec, Status> {
        let app = self
            .apps
            .get(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        if !app.is_live() {
            return Err(Status::failed_precondition(format!(
                "app {app_id} ({}) is stopped",
                app.name
            )));
        }
        Ok(app)
    }

    pub(crate) fn app_heartbeat(&mut self, app_id: &str) -> Result<(), Status> {
        let now = self.clock.now;
        let app = self
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        app.last_heartbeat = now;
        Ok(())
    }

    /// Stops the app: no new inputs, every unfinished input ends cancelled, every container stops.
    /// The returned receiver fires once the last container is gone.
    pub(crate) fn app_stop(
        &mut self,
        app_id: &str,
        why: &str,
    ) -> Result<oneshot::Receiver<()>, Status> {
        let (tx, rx) = oneshot::channel();
        let Some(app) = self.apps.get_mut(app_id) else {
            return Err(Status::not_found(format!("app {app_id} not found")));
        };
        app.stop_waiters.push(tx);
        if app.state != AppState::Stopped {
            app.state = AppState::Stopping;
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
    pub(crate) fn check_app_done(&mut self, app_id: &str) {
        if self.tasks.values().any(|t| t.app_id == app_id) {
            return;
        }
        let unix_ms = self.clock.unix_ms;
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        if app.state != AppState::Stopping && app.state != AppState::Stopped {
            return;
        }
        app.state = AppState::Stopped;
        app.stopped_at_ms.get_or_insert(unix_ms);
        for sub in app.log_subscribers.drain(..) {
            let _ = sub.send(LogBatch {
                entries: Vec::new(),
                app_done: true,
            });
        }
        for w in app.stop_waiters.drain(..) {
            let _ = w.send(());
        }
        tracing::info!(%app_id, "app stopped");
        self.save_app(app_id);
        self.drop_ephemeral_volumes(app_id);
    }

    pub(crate) fn subscribe_logs(
        &mut self,
        app_id: &str,
        tx: mpsc::UnboundedSender<LogBatch>,
    ) -> Result<(), Status> {
        let app = self
            .apps
            .get_mut(app_id)
            .ok_or_else(|| Status::not_found(format!("app {app_id} not found")))?;
        if app.state == AppState::Stopped {
            let _ = tx.send(LogBatch {
                entries: Vec::new(),
                app_done: true,
            });
        } else {
            app.log_subscribers.push(tx);
        }
        Ok(())
    }

    /// Sends log lines of one container to its app's subscribers, tagged with what it was running.
    pub(crate) fn emit_task_logs(&mut self, task_id: &str, lines: Vec<(LogSource, String, i64)>) {
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
            .map(|(source, data, timestamp_ms)| LogEntry {
                function_id: task.function_id.clone(),
                function_tag: function.def.tag.clone(),
                task_id: task_id.to_owned(),
                input_id: input_id.clone(),
                source,
                data,
                timestamp_ms,
            })
            .collect();
        let app_id = task.app_id.clone();
        self.send_logs(&app_id, entries);
    }

    /// Keeps log lines for `modal app logs` (a standalone control plane only).
    fn keep_logs(&mut self, app_id: &str, entries: &[LogEntry]) {
        if !self.durable || entries.is_empty() {
            return;
        }
        let rows = entries
            .iter()
            .map(|e| LogRow {
                app_id: app_id.to_owned(),
                timestamp_ms: e.timestamp_ms,
                function_id: e.function_id.clone(),
                function_tag: e.function_tag.clone(),
                task_id: e.task_id.clone(),
                input_id: e.input_id.clone(),
                source: wire::log_source_code(e.source),
                data: e.data.clone(),
            })
            .collect();
        self.record(Op::AppendLogs(rows));
    }

    /// A line the platform writes about a function (a retry, a timeout, a crashed container).
    pub(crate) fn system_log(&mut self, function_id: &str, task_id: &str, data: String) {
        let Some(function) = self.functions.get(function_id) else {
            return;
        };
        let entry = LogEntry {
            function_id: function_id.to_owned(),
            function_tag: function.def.tag.clone(),
            task_id: task_id.to_owned(),
            input_id: String::new(),
            source: LogSource::System,
            data,
            timestamp_ms: self.clock.unix_ms,
        };
        let app_id = function.app_id.clone();
        self.send_logs(&app_id, vec![entry]);
    }

    fn send_logs(&mut self, app_id: &str, entries: Vec<LogEntry>) {
        self.keep_logs(app_id, &entries);
        let Some(app) = self.apps.get_mut(app_id) else {
            return;
        };
        let batch = LogBatch {
            entries,
            app_done: false,
        };
        app.log_subscribers
            .retain(|s| s.send(batch.clone()).is_ok());
    }

    /// Periodic work: stop idle containers past their scale-down window, reap ephemeral apps
    /// whose client stopped sending heartbeats.
    pub(crate) fn housekeeping(&mut self) {
        let now = self.clock.now;
        let stale: Vec<String> = self
            .apps
            .iter()
            .filter(|(_, a)| {
                a.state == AppState::Ephemeral
                    && now.duration_since(a.last_heartbeat) > EPHEMERAL_REAP_AFTER
            })
            .map(|(id, _)| id.clone())
            .collect();
        for app_id in stale {
            tracing::warn!(%app_id, "no heartbeat from the app's client; stopping it");
            let _ = self.app_stop(&app_id, "its client stopped sending heartbeats");
        }
        self.scale_down();
        self.prune();
        // Containers that have gone idle since (a cancel, a timeout) may give way to waiting
        // work, or retire when a deploy outdated them.
        self.recheck_waiting();
        self.retire_outdated();
    }
}
