//! Log lines of an app's containers and of the platform, as they stream to the app's client.

/// Who wrote a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogSource {
    Stdout,
    Stderr,
    /// The platform, about a container or an input (a retry, a timeout, a crash).
    System,
}

/// One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogEntry {
    pub(crate) function_id: String,
    pub(crate) function_tag: String,
    pub(crate) task_id: String,
    /// The input the container was running, when that is known.
    pub(crate) input_id: String,
    pub(crate) source: LogSource,
    pub(crate) data: String,
    pub(crate) timestamp_ms: i64,
}

/// Lines sent together; the last batch of an app says that it is done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogBatch {
    pub(crate) entries: Vec<LogEntry>,
    /// The app stopped and every container is gone.
    pub(crate) app_done: bool,
}
