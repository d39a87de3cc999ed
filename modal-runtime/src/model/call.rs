//! A call's data: payloads, the result of an attempt, and the inputs and outputs a container
//! exchanges with the control plane.

use bytes::Bytes;

use crate::codec::{self, PayloadFormat};
use crate::error::{Error, FailureKind, RemoteFailure};
pub(crate) use crate::payloads::Stored;
use crate::registry::Outcome;

/// Encoded bytes with the format they are in (the control plane relays them unread); a large
/// one is kept in the payload store and `stored` names it (`data` is then empty until the
/// receiver loads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Payload {
    pub(crate) format: PayloadFormat,
    pub(crate) data: Bytes,
    pub(crate) stored: Option<Stored>,
}

impl Payload {
    /// Bytes in this build's format.
    pub(crate) fn new(data: impl Into<Bytes>) -> Self {
        Payload {
            format: codec::FORMAT,
            data: data.into(),
            stored: None,
        }
    }

    /// A payload of this build's format kept in the payload store.
    pub(crate) fn in_store(stored: Stored) -> Self {
        Payload {
            format: codec::FORMAT,
            data: Bytes::new(),
            stored: Some(stored),
        }
    }

    /// The bytes, when this build can decode their format and they are here.
    pub(crate) fn readable(&self) -> Result<&Bytes, String> {
        if let Some(s) = &self.stored {
            Err(format!(
                "payload {} ({} bytes) is in the payload store and was not loaded",
                s.handle, s.size
            ))
        } else if self.format == codec::FORMAT {
            Ok(&self.data)
        } else {
            Err(format!(
                "payload format {:?} is not supported by this build (it reads {:?})",
                self.format,
                codec::FORMAT
            ))
        }
    }
}

impl Default for Payload {
    fn default() -> Self {
        Payload::new(Bytes::new())
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ResultStatus {
    Success,
    /// The function returned its own error value (`Err(e)`).
    UserError,
    Panic,
    /// The attempt ran past the function's timeout; its container was stopped.
    Timeout,
    /// The input was cancelled.
    Cancelled,
    /// The container could not start the function.
    InitFailure,
    /// The platform failed: a crashed container, an impossible request.
    InternalFailure,
    /// The input could not be decoded as the function's arguments (never retried).
    InvalidInput,
    /// The container was killed for using more memory than its limit.
    OutOfMemory,
}

impl ResultStatus {
    /// The kind of failure a caller sees (`None` for success).
    pub(crate) fn failure_kind(self) -> Option<FailureKind> {
        Some(match self {
            ResultStatus::Success => return None,
            ResultStatus::UserError => FailureKind::UserError,
            ResultStatus::Panic => FailureKind::Panic,
            ResultStatus::Timeout => FailureKind::Timeout,
            ResultStatus::Cancelled => FailureKind::Cancelled,
            ResultStatus::InitFailure => FailureKind::InitFailure,
            ResultStatus::InternalFailure => FailureKind::Internal,
            ResultStatus::InvalidInput => FailureKind::InvalidInput,
            ResultStatus::OutOfMemory => FailureKind::OutOfMemory,
        })
    }

    /// A word for logs.
    pub(crate) fn word(self) -> &'static str {
        match self {
            ResultStatus::Success => "success",
            ResultStatus::UserError => "user error",
            ResultStatus::Panic => "panic",
            ResultStatus::Timeout => "timeout",
            ResultStatus::Cancelled => "cancelled",
            ResultStatus::InitFailure => "init failure",
            ResultStatus::InternalFailure => "internal failure",
            ResultStatus::InvalidInput => "invalid input",
            ResultStatus::OutOfMemory => "out of memory",
        }
    }
}

/// The result of one attempt of an input (the final one is what the caller gets).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CallResult {
    pub(crate) status: ResultStatus,
    /// On success the return value; on a user error the error value when its type is serde.
    pub(crate) data: Option<Payload>,
    pub(crate) message: String,
    /// Rust type name of the user's error type.
    pub(crate) error_type: String,
    /// Panic location `file:line:column`.
    pub(crate) location: String,
    pub(crate) backtrace: String,
    /// The container that produced it, when one did.
    pub(crate) task_id: String,
    /// Zero-based attempt number.
    pub(crate) attempt: u32,
}

impl CallResult {
    /// A successful result holding `data`.
    pub(crate) fn success(data: Payload) -> Self {
        CallResult {
            data: Some(data),
            ..CallResult::failure(ResultStatus::Success, "", "")
        }
    }

    /// A failure with a message and no payload.
    pub(crate) fn failure(status: ResultStatus, message: impl Into<String>, task_id: &str) -> Self {
        CallResult {
            status,
            data: None,
            message: message.into(),
            error_type: String::new(),
            location: String::new(),
            backtrace: String::new(),
            task_id: task_id.to_owned(),
            attempt: 0,
        }
    }
}

impl CallResult {
    /// What a container reports for an input, from the function's outcome.
    pub(crate) fn from_outcome(outcome: Outcome, task_id: &str) -> Self {
        let failure = |status, message| CallResult::failure(status, message, task_id);
        match outcome {
            Outcome::Success(data) => CallResult {
                task_id: task_id.to_owned(),
                ..CallResult::success(Payload::new(data))
            },
            Outcome::Stored { handle, size } => CallResult {
                task_id: task_id.to_owned(),
                ..CallResult::success(Payload::in_store(Stored { handle, size }))
            },
            Outcome::UserError {
                type_name,
                message,
                payload,
            } => CallResult {
                error_type: type_name.to_owned(),
                data: payload.map(Payload::new),
                ..failure(ResultStatus::UserError, message)
            },
            Outcome::BadInput(message) => failure(
                ResultStatus::InvalidInput,
                format!("cannot decode the arguments: {message}"),
            ),
            Outcome::BadOutput(message) => failure(
                ResultStatus::InternalFailure,
                format!("cannot encode the return value: {message}"),
            ),
            Outcome::Panic {
                message,
                location,
                backtrace,
            } => CallResult {
                location,
                backtrace,
                ..failure(ResultStatus::Panic, message)
            },
        }
    }

    /// The encoded value of a successful result, or the failure it describes, for `function`.
    pub(crate) fn into_value(self, function: &str) -> Result<Bytes, Error> {
        let non_empty = |s: String| if s.is_empty() { None } else { Some(s) };
        let failure = |kind, message| RemoteFailure {
            kind,
            function: function.to_owned(),
            message,
            error_type: None,
            location: None,
            backtrace: None,
            task_id: non_empty(self.task_id.clone()),
            attempt: self.attempt,
            payload: None,
        };
        let Some(kind) = self.status.failure_kind() else {
            return match self.data.as_ref().map(Payload::readable) {
                Some(Ok(bytes)) => Ok(bytes.clone()),
                Some(Err(m)) => Err(failure(FailureKind::Internal, m).into()),
                None => Err(failure(FailureKind::Internal, "missing payload".into()).into()),
            };
        };
        Err(RemoteFailure {
            error_type: non_empty(self.error_type.clone()),
            location: non_empty(self.location.clone()),
            backtrace: non_empty(self.backtrace.clone()),
            payload: self.data.clone().map(|p| p.data),
            ..failure(kind, self.message.clone())
        }
        .into())
    }
}

/// An input sent to a container.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputItem {
    pub(crate) input_id: String,
    pub(crate) input: Payload,
    pub(crate) attempt: u32,
    /// For a class: the method called.
    pub(crate) method: String,
    /// Inputs with the same batch id are one call of a batched function.
    pub(crate) batch_id: String,
}

/// What a container reports for an input it ran.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputItem {
    pub(crate) input_id: String,
    pub(crate) result: CallResult,
    /// How long the input's code ran in the container, when it said.
    pub(crate) run: Option<std::time::Duration>,
    /// The container still holds the input's bytes mapped from its payload file.
    pub(crate) input_kept: bool,
}

/// One result of a map, by the position of its input.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MapOutput {
    pub(crate) idx: u64,
    pub(crate) result: CallResult,
}

/// What a generator's caller receives: items as they come, then how it ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum GeneratorEvent {
    Item(Payload),
    /// The last event (on success, `data` holds the item count).
    Done(CallResult),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undecodable_input_is_an_invalid_input_the_caller_is_told_about() {
        let r = CallResult::from_outcome(Outcome::BadInput("unexpected end".into()), "ta-1");
        assert_eq!(r.status, ResultStatus::InvalidInput);
        let err = r.into_value("square").expect_err("a failure");
        assert_eq!(err.failure_kind(), Some(FailureKind::InvalidInput));
        let shown = err.to_string();
        assert!(
            shown.contains("`square` could not read its arguments in container ta-1")
                && shown.contains("argument types"),
            "{shown}"
        );
    }
}
