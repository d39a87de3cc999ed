//! What the control plane and its workers and containers tell each other: a worker's capacity,
//! a container to start or stop, what happened to it, and commands on a container's stream.

use std::collections::BTreeMap;

use super::{CallResult, FunctionDef, InputItem, LogSource};

/// A GPU a worker offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GpuDevice {
    pub(crate) index: u32,
    pub(crate) name: String,
    pub(crate) memory_mb: u64,
    /// Declared in configuration rather than discovered.
    pub(crate) declared: bool,
}

/// What a worker offers when it registers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkerInfo {
    pub(crate) hostname: String,
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    pub(crate) gpus: Vec<GpuDevice>,
    /// Its container runtime, for messages.
    pub(crate) runtime: String,
    /// What placement constraints are matched against (`region`, `cloud`, `preemptible`).
    pub(crate) labels: BTreeMap<String, String>,
    /// The Slurm job it runs in, when it is a pilot.
    pub(crate) slurm_job_id: Option<String>,
}

/// A worker in `modal worker list`, or a pilot job that is to start one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WorkerSummary {
    /// Empty for a pilot job whose worker has not connected yet.
    pub(crate) worker_id: String,
    pub(crate) hostname: String,
    pub(crate) slurm_job_id: Option<String>,
    /// `ready` (running containers), `idle`, or `pending: REASON` for a pilot job.
    pub(crate) state: String,
    pub(crate) milli_cpu: u32,
    pub(crate) memory_mb: u32,
    pub(crate) used_milli_cpu: u32,
    pub(crate) used_memory_mb: u32,
    pub(crate) gpus: Vec<String>,
    pub(crate) busy_gpus: u32,
    pub(crate) containers: u32,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) runtime: String,
}

/// Where a function's containers may run (`region = …`, `cloud = …`, `nonpreemptible = true`),
/// matched against the labels of workers (`modal worker --label region=eu-west`) and of Slurm
/// partitions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Constraints {
    /// Any of these regions (empty: any region).
    pub(crate) regions: Vec<String>,
    /// This cloud (none: any).
    pub(crate) cloud: Option<String>,
    /// Only on machines labelled `preemptible=false`.
    pub(crate) nonpreemptible: bool,
}

impl Constraints {
    /// Whether there is anything to match.
    pub(crate) fn is_empty(&self) -> bool {
        self.regions.is_empty() && self.cloud.is_none() && !self.nonpreemptible
    }

    /// The constraints that `labels` do not meet, each as written in the function's
    /// definition (`region = "eu-west"`); empty when they are all met. A machine without a
    /// `preemptible` label is not preemptible (machines of one's own are not taken back).
    pub(crate) fn unmet(&self, labels: &BTreeMap<String, String>) -> Vec<String> {
        let mut unmet = Vec::new();
        if !self.regions.is_empty()
            && !labels
                .get("region")
                .is_some_and(|r| self.regions.iter().any(|want| want == r))
        {
            unmet.push(match self.regions.as_slice() {
                [one] => format!("region = \"{one}\""),
                many => format!("region = {many:?}"),
            });
        }
        if let Some(cloud) = &self.cloud
            && labels.get("cloud") != Some(cloud)
        {
            unmet.push(format!("cloud = \"{cloud}\""));
        }
        if self.nonpreemptible && labels.get("preemptible").is_some_and(|p| p == "true") {
            unmet.push("nonpreemptible = true".to_owned());
        }
        unmet
    }
}

/// `k=v, k=v` (`no labels` for none), for messages.
pub(crate) fn describe_labels(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no labels".to_owned();
    }
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses `KEY=VALUE` (a worker's `--label`): a key of letters, digits, `-`, `_` and `.`.
#[cfg_attr(not(feature = "cli"), allow(dead_code))] // The `modal` command's flags.
pub(crate) fn parse_label(text: &str) -> Result<(String, String), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("label `{text}`: expected KEY=VALUE, e.g. region=eu-west"))?;
    let key = key.trim();
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(format!(
            "label `{text}`: the key must be letters, digits, `-`, `_` or `.`"
        ));
    }
    Ok((key.to_owned(), value.trim().to_owned()))
}

/// A container for a worker to start.
#[derive(Clone, PartialEq)]
pub(crate) struct ContainerSpec {
    pub(crate) task_id: String,
    pub(crate) app_id: String,
    pub(crate) app_name: String,
    pub(crate) function_id: String,
    pub(crate) definition: FunctionDef,
    /// Where the container connects back to.
    pub(crate) server_url: String,
    /// GPU indices reserved for it.
    pub(crate) gpu_indices: Vec<u32>,
    /// Its secrets, opened: injected as environment variables, never logged.
    pub(crate) secret_env: super::function::SecretValues,
    /// Its own credentials, valid while it lives and scoped to its app.
    pub(crate) token_id: String,
    pub(crate) token_secret: String,
}

impl std::fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("task_id", &self.task_id)
            .field("app_id", &self.app_id)
            .field("app_name", &self.app_name)
            .field("function_id", &self.function_id)
            .field("definition", &self.definition)
            .field("server_url", &self.server_url)
            .field("gpu_indices", &self.gpu_indices)
            .field("secret_env", &self.secret_env)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// What the control plane asks of a worker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkerCommand {
    Start(Box<ContainerSpec>),
    /// Stop a container: kill it after `grace_ms` (0 = now).
    Stop {
        task_id: String,
        grace_ms: u32,
    },
}

/// One line a container wrote, as its worker captured it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkerLogLine {
    pub(crate) task_id: String,
    pub(crate) source: LogSource,
    pub(crate) data: String,
    pub(crate) timestamp_ms: i64,
}

/// What a worker reports.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WorkerEvent {
    /// A container's process is gone (exit code, or the signal that ended it), with what its
    /// journal said when it kept one.
    Exited {
        task_id: String,
        exit_code: Option<i32>,
        signal: Option<i32>,
        /// Set when the kernel killed it for using more memory than its limit: what happened.
        out_of_memory: Option<String>,
        journal: Option<InputsSeen>,
    },
    /// A container could not be started at all.
    SpawnFailed {
        task_id: String,
        message: String,
    },
    Logs(Vec<WorkerLogLine>),
}

/// The inputs a container started, and those that returned, by its journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct InputsSeen {
    pub(crate) started: Vec<String>,
    pub(crate) ended: Vec<String>,
    /// The results it kept of inputs that returned (small ones).
    pub(crate) results: Vec<(String, CallResult)>,
}

/// The first message on a container's stream: who it is and what it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ContainerHello {
    pub(crate) task_id: String,
    /// Its own executable's digest.
    pub(crate) binary_hash: String,
    pub(crate) app_name: String,
    pub(crate) function_tag: String,
    /// It will say when its `enter` hooks ran; until then it takes no input. An older build
    /// does not, and is ready at its hello.
    pub(crate) sends_ready: bool,
}

/// What the control plane sends down a container's stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ContainerCommand {
    /// Inputs to run, in order.
    Inputs(Vec<InputItem>),
    Cancel(Vec<String>),
    /// Finish nothing more; exit now.
    Shutdown(String),
}
