//! `modal::Error`: everything a call, a run or a lookup can fail with, said plainly.

use std::fmt;
use std::time::Duration;

/// An error's text followed by those of the errors that caused it (`a: b: c`).
pub(crate) fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

use serde::de::DeserializeOwned;

/// Result type of the modal API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A remote call ended without a value: see [`RemoteFailure`].
    #[error("{0}")]
    Remote(Box<RemoteFailure>),
    /// The app or one of its functions is misconfigured; nothing was started.
    #[error("app `{app}` cannot start:\n  - {}", errors.join("\n  - "))]
    InvalidApp {
        /// The app's name.
        app: String,
        /// One line per problem.
        errors: Vec<String>,
    },
    /// The control plane could not be reached.
    #[error("cannot reach the control plane at {url}: {message}")]
    Connect {
        /// Where it was looked for.
        url: String,
        /// Why the connection failed.
        message: String,
    },
    /// The control plane refused or failed a request.
    #[error("control plane: {0}")]
    ControlPlane(String),
    /// A function was called while its app is not running.
    #[error(
        "function `{function}` cannot be called: app `{app}` is not running (start it with `APP.run()` or a `#[modal::local_entrypoint]`, or call `.local()`)"
    )]
    NotRunning {
        /// The app the function belongs to.
        app: String,
        /// The function's tag.
        function: String,
    },
    /// `FunctionCall::get` gave up waiting.
    #[error("no result within {0:?}")]
    GetTimeout(Duration),
    /// The call's result is gone (already read with `clear`, or expired).
    #[error("the result of call {0} is no longer available")]
    OutputExpired(String),
    /// Arguments or a result could not be (de)serialized.
    #[error("{0}")]
    Serialization(String),
    /// Invalid use of the API or the command line.
    #[error("{0}")]
    Invalid(String),
    /// GPU work failed: no driver, no device, a kernel that does not compile, a cuBLAS error.
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    /// An entrypoint failed with an error of its own type (its display text).
    #[error("{0}")]
    Other(String),
    /// A file operation failed (in a function's code with `?`, or on a volume's files).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Why a remote call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The function returned `Err(e)`.
    UserError,
    /// The function panicked.
    Panic,
    /// The attempt ran past the function's `timeout`; its container was stopped.
    Timeout,
    /// The call was cancelled.
    Cancelled,
    /// The container could not start the function.
    InitFailure,
    /// The platform failed (a crashed container, an undecodable payload, an impossible request).
    Internal,
    /// The arguments could not be decoded as the function's: the caller's types and the
    /// function's disagree. Never retried.
    InvalidInput,
    /// The container was killed for using more memory than its `memory` limit (retried per
    /// `retries`).
    OutOfMemory,
}

/// The details of a failed remote call.
#[derive(Debug, Clone)]
pub struct RemoteFailure {
    /// What kind of failure it was.
    pub kind: FailureKind,
    /// The function's tag.
    pub function: String,
    /// The error's display text, the panic message, or the platform's explanation.
    pub message: String,
    /// The user error's Rust type name.
    pub error_type: Option<String>,
    /// `file:line:column` of a panic.
    pub location: Option<String>,
    /// The backtrace of a panic, when one was captured.
    pub backtrace: Option<String>,
    /// The container (`ta-…`) that produced the failure, when one did.
    pub task_id: Option<String>,
    /// Zero-based number of the attempt that failed last.
    pub attempt: u32,
    pub(crate) payload: Option<bytes::Bytes>,
}

impl fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let f_name = &self.function;
        let container = match &self.task_id {
            Some(t) if !t.is_empty() => format!(" in container {t}"),
            _ => String::new(),
        };
        match self.kind {
            FailureKind::UserError => {
                let ty = self
                    .error_type
                    .as_deref()
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default();
                write!(
                    f,
                    "function `{f_name}` returned an error{ty}{container}: {}",
                    self.message
                )?
            }
            FailureKind::Panic => {
                let at = self
                    .location
                    .as_deref()
                    .map(|l| format!(" at {l}"))
                    .unwrap_or_default();
                write!(
                    f,
                    "function `{f_name}` panicked{container}{at}: {}",
                    self.message
                )?
            }
            FailureKind::Timeout => write!(
                f,
                "function `{f_name}` timed out{container}: {}",
                self.message
            )?,
            FailureKind::Cancelled => write!(f, "call to `{f_name}` was cancelled")?,
            FailureKind::InitFailure => write!(
                f,
                "function `{f_name}` could not start{container}: {}",
                self.message
            )?,
            FailureKind::Internal => write!(
                f,
                "internal failure running `{f_name}`{container}: {}",
                self.message
            )?,
            FailureKind::InvalidInput => write!(
                f,
                "`{f_name}` could not read its arguments{container}: {} (check that the caller's argument types match the function's)",
                self.message
            )?,
            FailureKind::OutOfMemory => write!(
                f,
                "`{f_name}` ran out of memory: {} (raise the function's `memory` limit)",
                self.message
            )?,
        }
        if self.attempt > 0 {
            write!(f, " (after {} attempts)", self.attempt + 1)?;
        }
        Ok(())
    }
}

impl Error {
    /// The remote failure, if this is one.
    pub fn remote(&self) -> Option<&RemoteFailure> {
        match self {
            Error::Remote(r) => Some(r),
            _ => None,
        }
    }

    /// The kind of remote failure, if this is one.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.remote().map(|r| r.kind)
    }

    /// The function's own error value, decoded as `E`, when it returned `Err(e)` with a serde `E`.
    ///
    /// ```
    /// # fn f(err: modal::Error) {
    /// #[derive(serde::Deserialize, Debug)]
    /// enum MyError { NotFound(String) }
    /// if let Some(MyError::NotFound(what)) = err.user_error::<MyError>() {
    ///     eprintln!("missing: {what}");
    /// }
    /// # }
    /// ```
    pub fn user_error<E: DeserializeOwned>(&self) -> Option<E> {
        let r = self.remote()?;
        if r.kind != FailureKind::UserError {
            return None;
        }
        crate::codec::decode_exact(r.payload.as_ref()?).ok()
    }
}

impl From<RemoteFailure> for Error {
    fn from(r: RemoteFailure) -> Self {
        Error::Remote(Box::new(r))
    }
}
