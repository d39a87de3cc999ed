//! The container's side of the payload store: stored inputs mapped from the store, results and
//! generator items larger than the inline limit written to the container's outbox.

use std::sync::OnceLock;

use crate::model::{CallResult, InputItem, Payload, ResultStatus};
use crate::payloads::{self, Mounted, Stored};

fn mounted() -> Option<&'static Mounted> {
    static MOUNTED: OnceLock<Option<Mounted>> = OnceLock::new();
    MOUNTED.get_or_init(Mounted::from_env).as_ref()
}

/// The id of the store this container reaches (empty: none), for its hello.
pub(super) fn store_id() -> String {
    mounted().map(|m| m.store_id.clone()).unwrap_or_default()
}

/// An input with its stored payload loaded; one that cannot be loaded keeps its handle and
/// fails where it is read, the cause in the container's log.
pub(super) fn load(mut item: InputItem) -> InputItem {
    let Some(stored) = item.input.stored.clone() else {
        return item;
    };
    let loaded = match mounted() {
        Some(m) => m.map(&stored).map_err(|e| e.to_string()),
        None => Err("this container was given no payload store".to_owned()),
    };
    match loaded {
        Ok(bytes) => {
            item.input.data = bytes;
            item.input.stored = None;
        }
        Err(e) => tracing::error!(
            "cannot load the payload of input {} ({}): {e}",
            item.input_id,
            stored.handle
        ),
    }
    item
}

/// Encoded bytes as a payload: in the outbox when they are large and there is one, in the
/// message otherwise (or when writing fails, the cause in the log); an error when they fit
/// neither.
pub(super) fn spill(bytes: bytes::Bytes) -> Result<Payload, String> {
    let len = bytes.len();
    let mut failed = None;
    if len > payloads::inline_max()
        && let Some(m) = mounted()
    {
        match m.put(&bytes) {
            Ok(handle) => {
                return Ok(Payload::in_store(Stored {
                    handle,
                    size: len as u64,
                }));
            }
            Err(e) => {
                tracing::warn!(
                    "cannot write {len} bytes to the payload outbox, sending them inline: {e}"
                );
                failed = Some(e);
            }
        }
    }
    // Room for the message around it.
    if len > crate::wire::MAX_MESSAGE_BYTES - (64 << 10) {
        return Err(match failed {
            Some(e) => format!(
                "the value is {len} bytes: too large for a message, and the payload store refused it ({e}); the most a payload may be is {} bytes",
                payloads::MAX_BYTES
            ),
            None => format!(
                "the value is {len} bytes, too large for a message, and this container reaches no payload store (its worker does not run beside the control plane)"
            ),
        });
    }
    Ok(Payload::new(bytes))
}

/// A result whose value goes through the outbox when it is large; one that can go nowhere is
/// the failure that says so.
pub(super) fn spill_result(mut result: CallResult) -> CallResult {
    let Some(p) = result.data.take() else {
        return result;
    };
    if p.stored.is_some() {
        result.data = Some(p);
        return result;
    }
    match spill(p.data) {
        Ok(p) => {
            result.data = Some(p);
            result
        }
        Err(e) => CallResult {
            attempt: result.attempt,
            ..CallResult::failure(
                ResultStatus::InternalFailure,
                format!("cannot return the result: {e}"),
                &result.task_id,
            )
        },
    }
}
