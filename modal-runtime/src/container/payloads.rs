//! The container's side of the payload store: stored inputs mapped from the store; results and
//! generator items were encoded straight into the container's outbox when large
//! (`crate::payloads::encode`), and one that stayed in memory must fit in a message.

use std::sync::Weak;

use crate::model::{CallResult, InputItem, Payload, ResultStatus};
use crate::payloads::{Encoded, mounted};

/// The id of the store this container reaches (empty: none), for its hello.
pub(super) fn store_id() -> String {
    mounted().map(|m| m.store_id.clone()).unwrap_or_default()
}

/// An input with its stored payload loaded, and, when it was mapped from its file, what tells
/// whether anything here still holds its bytes (user code may keep a `Bytes` argument past the
/// call: the control plane must then never write over the file). One that cannot be loaded
/// keeps its handle and fails where it is read, the cause in the container's log.
pub(super) fn load(mut item: InputItem) -> (InputItem, Option<Weak<()>>) {
    let Some(stored) = item.input.stored.take() else {
        return (item, None);
    };
    let loaded = match mounted() {
        Some(m) => m.map(&stored).map_err(|e| e.to_string()),
        None => Err("this container was given no payload store".to_owned()),
    };
    match loaded {
        Ok((bytes, watch)) => {
            item.input.data = bytes;
            return (item, Some(watch));
        }
        Err(e) => {
            tracing::error!(
                "cannot load the payload of input {} ({}): {e}",
                item.input_id,
                stored.handle
            );
            item.input.stored = Some(stored);
        }
    }
    (item, None)
}

/// Why bytes that stayed in memory cannot be sent, if they cannot: a message has a limit.
fn too_large(len: usize) -> Option<String> {
    // Room for the message around them.
    (len > crate::wire::MAX_MESSAGE_BYTES - (64 << 10)).then(|| match mounted() {
        Some(_) => format!(
            "the value is {len} bytes: too large for a message, and the payload outbox refused it (the container's log says why; on the oci runtime no file of a container may be larger than its /tmp: raise the function's `ephemeral_disk`)"
        ),
        None => format!(
            "the value is {len} bytes, too large for a message, and this container reaches no payload store (its worker does not run beside the control plane)"
        ),
    })
}

/// A generator item as it is sent.
pub(super) fn item(encoded: Encoded) -> Result<Payload, String> {
    match encoded {
        Encoded::Stored(stored) => Ok(Payload::in_store(stored)),
        Encoded::Inline(bytes) => match too_large(bytes.len()) {
            Some(why) => Err(why),
            None => Ok(Payload::new(bytes)),
        },
    }
}

/// A result as it is sent: one whose value cannot be sent is the failure that says so.
pub(super) fn fit(result: CallResult) -> CallResult {
    let why = result
        .data
        .as_ref()
        .filter(|p| p.stored.is_none())
        .and_then(|p| too_large(p.data.len()));
    match why {
        None => result,
        Some(why) => CallResult {
            attempt: result.attempt,
            ..CallResult::failure(
                ResultStatus::InternalFailure,
                format!("cannot return the result: {why}"),
                &result.task_id,
            )
        },
    }
}
