//! What the control plane and its workers and containers tell each other: a worker's capacity,
//! a container to start or stop, what happened to it, and commands on a container's stream.

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
