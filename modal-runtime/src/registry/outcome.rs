//! What running a function produces: its `Outcome` (a value, a user error, a panic…), how
//! arguments, results, generator items and batches are encoded into outcomes, and how the
//! container invokes a function.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What running a function produced, before it goes on the wire.
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The encoded return value.
    Success(Vec<u8>),
    /// The encoded return value, written to a file of the payload store (`handle`) as it was
    /// encoded (it is large).
    Stored { handle: String, size: u64 },
    /// The function returned `Err(e)`.
    UserError {
        type_name: &'static str,
        message: String,
        /// `e` encoded, when its type is serde.
        payload: Option<Vec<u8>>,
    },
    /// The input could not be decoded as the function's arguments.
    BadInput(String),
    /// The return value could not be encoded.
    BadOutput(String),
    /// The function panicked (caught where it ran).
    Panic {
        message: String,
        location: String,
        backtrace: String,
    },
}

/// A boxed future of a batched function's outcomes, one per input of the batch.
#[doc(hidden)]
pub type BatchFuture = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'static>>;

/// Where a generator puts its items (each encoded as it is produced).
#[doc(hidden)]
#[derive(Clone)]
pub struct GeneratorSink {
    pub(crate) send:
        std::sync::Arc<dyn Fn(crate::payloads::Encoded) -> Result<(), String> + Send + Sync>,
}

impl GeneratorSink {
    /// Sends one item; `Err` when the item cannot be encoded or nobody reads any more.
    pub fn send<T: serde::Serialize + 'static>(&self, item: &T) -> Result<(), String> {
        let encoded = crate::payloads::encode(item).map_err(|e| e.to_string())?;
        (self.send)(encoded)
    }
}

/// A boxed future of an async function's outcome.
#[doc(hidden)]
pub type OutcomeFuture = Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>;

/// Formats an encoded return value for display.
#[doc(hidden)]
pub type ResultFormatter = fn(&[u8]) -> String;

/// Arguments and return values cross process boundaries, so they must be owned serde types.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be an argument or result of a modal function",
    label = "not an owned serde type",
    note = "arguments and results travel between processes: they must implement `serde::Serialize` and `serde::de::DeserializeOwned` and be `Send + 'static`"
)]
pub trait RemoteValue: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> RemoteValue for T {}

/// Compile-time check of an argument type.
pub fn assert_remote_arg<T: RemoteValue>() {}
/// Compile-time check of a return type.
pub fn assert_remote_value<T: RemoteValue>() {}

/// Decodes a function's argument tuple (a [`Bytes`](crate::Bytes) argument without a copy).
pub fn decode_args<A: DeserializeOwned + 'static>(bytes: &Bytes) -> Result<A, String> {
    crate::codec::decode_shared(bytes).map_err(|e| e.to_string())
}

/// Encodes a return value.
pub fn encode_value<T: Serialize + 'static>(value: &T) -> Outcome {
    match crate::payloads::encode(value) {
        Ok(crate::payloads::Encoded::Inline(b)) => Outcome::Success(b),
        Ok(crate::payloads::Encoded::Stored(s)) => Outcome::Stored {
            handle: s.handle,
            size: s.size,
        },
        Err(e) => Outcome::BadOutput(e.to_string()),
    }
}

/// Sends every item of a sync generator; the outcome counts them.
pub fn drain_iter<T: Serialize + 'static>(
    items: impl IntoIterator<Item = T>,
    sink: &GeneratorSink,
) -> Outcome {
    let mut n = 0u64;
    for item in items {
        if let Err(e) = sink.send(&item) {
            return Outcome::BadOutput(e);
        }
        n += 1;
    }
    encode_value(&n)
}

/// Sends every item of an async generator; the outcome counts them.
pub async fn drain_stream<T: Serialize + 'static>(
    items: impl futures::Stream<Item = T>,
    sink: &GeneratorSink,
) -> Outcome {
    use futures::StreamExt;
    let mut items = std::pin::pin!(items);
    let mut n = 0u64;
    while let Some(item) = items.next().await {
        if let Err(e) = sink.send(&item) {
            return Outcome::BadOutput(e);
        }
        n += 1;
    }
    encode_value(&n)
}

/// Decodes each input of a batch as the one-argument tuple `(T,)`.
pub fn decode_batch<T: DeserializeOwned + 'static>(
    inputs: &[Bytes],
) -> Result<Vec<T>, Vec<Outcome>> {
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        match decode_args::<(T,)>(input) {
            Ok((t,)) => out.push(t),
            Err(e) => {
                return Err(inputs
                    .iter()
                    .map(|_| Outcome::BadInput(e.clone()))
                    .collect());
            }
        }
    }
    Ok(out)
}

/// One outcome per input from a batched function's results (their count is checked by the
/// container).
pub fn batch_values<R: Serialize + 'static>(values: Vec<R>) -> Vec<Outcome> {
    values.iter().map(encode_value).collect()
}

/// The same outcome for every input of a batch.
pub fn batch_failed(n: usize, outcome: &Outcome) -> Vec<Outcome> {
    vec![outcome.clone(); n]
}
