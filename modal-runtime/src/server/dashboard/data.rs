//! What the dashboard's pages show, taken from the control plane's state in one pass each:
//! apps, an app's functions (counts, latency, rate), containers, deployments and schedules, a
//! call's inputs and result. Never a secret's value.

use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) use super::super::state::{AttemptRec, ExitedContainer};
use super::super::state::{CallKind, State, TaskState};
use crate::model::{AppState, CallResult, Deployment, ResultStatus};

/// How far back an app's failures count on the apps page.
const FAILURES_WITHIN: Duration = Duration::from_secs(3600);
/// What an app page's numbers and plots cover.
pub(crate) const RECENT: Duration = Duration::from_secs(300);
/// Bars in a function's plot.
pub(crate) const BARS: usize = 30;

/// A row of the apps page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppRow {
    pub(crate) app_id: String,
    pub(crate) name: String,
    pub(crate) state: AppState,
    pub(crate) environment: String,
    pub(crate) tags: BTreeMap<String, String>,
    /// The deployed version, 0 for an app never deployed.
    pub(crate) version: i64,
    pub(crate) created_at_ms: i64,
    pub(crate) stopped_at_ms: Option<i64>,
    pub(crate) functions: usize,
    pub(crate) containers: usize,
    pub(crate) failures_last_hour: usize,
}

/// A function (or class) of an app, with what its inputs did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FunctionRow {
    pub(crate) function_id: String,
    pub(crate) tag: String,
    pub(crate) is_class: bool,
    pub(crate) gpu: String,
    pub(crate) queued: usize,
    pub(crate) running: usize,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) p50: Option<Duration>,
    pub(crate) p99: Option<Duration>,
    pub(crate) per_second: f64,
    /// Inputs finished per slice of [`RECENT`], oldest first.
    pub(crate) series: Vec<u32>,
    /// When its schedule fires next (Unix ms).
    pub(crate) next_fire_ms: Option<i64>,
}

/// A container of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerRow {
    pub(crate) task_id: String,
    pub(crate) function_tag: String,
    pub(crate) worker: String,
    pub(crate) gpus: Vec<u32>,
    pub(crate) state: &'static str,
    pub(crate) started_at_ms: i64,
    pub(crate) running_inputs: usize,
}

/// An app's page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AppPage {
    pub(crate) app: AppRow,
    pub(crate) functions: Vec<FunctionRow>,
    pub(crate) containers: Vec<ContainerRow>,
    pub(crate) history: Vec<Deployment>,
    /// When the page's numbers were taken (Unix ms).
    pub(crate) now_ms: i64,
    /// Containers that ended, newest first, with how and why.
    pub(crate) exited: Vec<ExitedContainer>,
}

/// A call's page.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallPage {
    pub(crate) call_id: String,
    pub(crate) app_id: String,
    pub(crate) function_tag: String,
    pub(crate) kind: &'static str,
    pub(crate) created_at_ms: i64,
    pub(crate) inputs_total: u64,
    pub(crate) inputs_done: u64,
    /// A unary call's result, once it has one.
    pub(crate) result: Option<CallResult>,
    /// A unary call's attempts as they ended.
    pub(crate) attempts: Vec<AttemptRec>,
}

/// A named secret, and the apps whose functions ask for it (never its values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretRow {
    pub(crate) name: String,
    pub(crate) environment: String,
    pub(crate) keys: Vec<String>,
    pub(crate) updated_at_ms: i64,
    pub(crate) used_by: Vec<String>,
}

/// The objects page: secrets and volumes (images come from the image store).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Objects {
    pub(crate) secrets: Vec<SecretRow>,
    pub(crate) volumes: Vec<crate::model::volume::VolumeSummary>,
}

/// What a result's status is called on the pages.
pub(crate) fn status_name(s: ResultStatus) -> &'static str {
    match s {
        ResultStatus::Success => "succeeded",
        ResultStatus::UserError => "error",
        ResultStatus::Panic => "panicked",
        ResultStatus::Timeout => "timed out",
        ResultStatus::Cancelled => "cancelled",
        ResultStatus::InitFailure => "init failure",
        ResultStatus::InternalFailure => "internal failure",
        ResultStatus::InvalidInput => "invalid input",
        ResultStatus::OutOfMemory => "out of memory",
    }
}

impl State {
    /// An app's row; `containers`: how many it runs.
    fn app_row(&self, app_id: &str, containers: usize) -> Option<AppRow> {
        let a = self.apps.get(app_id)?;
        let now = self.clock.now;
        let failures = a
            .functions
            .iter()
            .filter_map(|f| self.functions.get(f))
            .map(|f| f.stats.failed_within(now, FAILURES_WITHIN))
            .sum();
        Some(AppRow {
            app_id: app_id.to_owned(),
            name: a.name.clone(),
            state: a.state,
            environment: a.environment.clone(),
            tags: a.tags.clone(),
            version: a.deployed_version,
            created_at_ms: a.created_at_ms,
            stopped_at_ms: a.stopped_at_ms,
            functions: a
                .functions
                .iter()
                .filter(|f| self.functions.get(*f).is_some_and(|f| !f.retired))
                .count(),
            containers,
            failures_last_hour: failures,
        })
    }

    /// The apps page: every app, newest first.
    pub(crate) fn dashboard_apps(&self) -> Vec<AppRow> {
        let mut containers: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::new();
        for t in self.tasks.values() {
            *containers.entry(t.app_id.as_str()).or_default() += 1;
        }
        let mut rows: Vec<AppRow> = self
            .apps
            .keys()
            .filter_map(|id| self.app_row(id, containers.get(id.as_str()).copied().unwrap_or(0)))
            .collect();
        rows.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then(a.app_id.cmp(&b.app_id))
        });
        rows
    }

    /// An app's page; `None` for an unknown app.
    pub(crate) fn dashboard_app(&self, app_id: &str) -> Option<AppPage> {
        let running = self.tasks.values().filter(|t| t.app_id == app_id).count();
        let app = self.app_row(app_id, running)?;
        let rec = self.apps.get(app_id)?;
        let now = self.clock.now;
        let functions = rec
            .functions
            .iter()
            .filter_map(|id| self.functions.get(id).map(|f| (id, f)))
            .filter(|(_, f)| !f.retired)
            .map(|(id, f)| {
                let window = f.stats.window(now, RECENT);
                let tasks: Vec<_> = f.tasks.iter().filter_map(|t| self.tasks.get(t)).collect();
                FunctionRow {
                    function_id: id.clone(),
                    tag: f.def.tag.clone(),
                    is_class: f.def.is_class,
                    gpu: f
                        .def
                        .gpu
                        .iter()
                        .map(|g| format!("{}:{}", g.kind, g.count))
                        .collect::<Vec<_>>()
                        .join(" or "),
                    queued: f.queue.len(),
                    running: tasks.iter().map(|t| t.running.len()).sum(),
                    succeeded: f.stats.succeeded,
                    failed: f.stats.failed,
                    p50: window.p50,
                    p99: window.p99,
                    per_second: window.per_second,
                    series: f.stats.series(now, RECENT, BARS),
                    next_fire_ms: self.schedules.get(id).map(|(_, next)| *next),
                }
            })
            .collect();
        let mut containers: Vec<ContainerRow> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.app_id == app_id)
            .map(|(id, t)| ContainerRow {
                task_id: id.clone(),
                function_tag: self
                    .functions
                    .get(&t.function_id)
                    .map(|f| f.def.tag.clone())
                    .unwrap_or_default(),
                worker: self
                    .workers
                    .get(&t.worker_id)
                    .map(|w| format!("{} ({})", t.worker_id, w.info.hostname))
                    .unwrap_or_else(|| t.worker_id.clone()),
                gpus: t.reservation.gpus.clone(),
                state: match (&t.stop, t.state) {
                    (Some(_), _) => "stopping",
                    (None, TaskState::Starting) => "starting",
                    (None, TaskState::Entering) => "entering",
                    (None, TaskState::Ready) if t.load() > 0 => "busy",
                    (None, TaskState::Ready) => "idle",
                },
                started_at_ms: t.ready_at_ms,
                running_inputs: t.running.len(),
            })
            .collect();
        containers.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Some(AppPage {
            app,
            functions,
            containers,
            history: rec.history.clone(),
            now_ms: self.clock.unix_ms,
            exited: rec.recent_exits.iter().rev().cloned().collect(),
        })
    }

    /// The objects page's secrets (names, keys and users, never values) and volumes.
    pub(crate) fn dashboard_objects(&self) -> Objects {
        let secrets = self
            .secret_list("")
            .into_iter()
            .map(|s| {
                let mut used_by: Vec<String> = self
                    .functions
                    .values()
                    .filter(|f| !f.retired)
                    .filter(|f| {
                        f.def.named_secrets.iter().any(|n| {
                            n.name == s.name
                                && (n.environment.is_empty() || n.environment == s.environment)
                        })
                    })
                    .filter_map(|f| self.apps.get(&f.app_id))
                    .filter(|a| a.environment == s.environment)
                    .map(|a| a.name.clone())
                    .collect();
                used_by.sort();
                used_by.dedup();
                SecretRow {
                    name: s.name,
                    environment: s.environment,
                    keys: s.keys,
                    updated_at_ms: s.updated_at_ms,
                    used_by,
                }
            })
            .collect();
        Objects {
            secrets,
            volumes: self.volume_list(""),
        }
    }

    /// A call's page; `None` for a call the control plane does not hold (a `remote` call is
    /// forgotten once its result reached its caller).
    pub(crate) fn dashboard_call(&self, call_id: &str) -> Option<CallPage> {
        let c = self.calls.get(call_id)?;
        let (kind, result) = match &c.kind {
            CallKind::Unary {
                result, spawned, ..
            } => (if *spawned { "spawn" } else { "remote" }, result.clone()),
            CallKind::Map { .. } => ("map", None),
            CallKind::Generator { .. } => ("generator", None),
        };
        let unfinished = u64::try_from(c.unfinished.len()).unwrap_or(u64::MAX);
        Some(CallPage {
            call_id: call_id.to_owned(),
            app_id: c.app_id.clone(),
            function_tag: self
                .functions
                .get(&c.function_id)
                .map(|f| f.def.tag.clone())
                .unwrap_or_default(),
            kind,
            created_at_ms: c.created_at_ms,
            inputs_total: c.inputs_total,
            inputs_done: c.inputs_total.saturating_sub(unfinished),
            result,
            attempts: c.attempts.clone(),
        })
    }
}
