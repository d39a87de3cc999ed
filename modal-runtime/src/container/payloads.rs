//! The container's side of the payload store: stored inputs mapped from the store; results and
//! generator items were encoded straight into the container's outbox when large
//! (`crate::payloads::encode`). A container that reaches no store (its worker is on another
//! machine) downloads its stored inputs by handle and uploads its large values before the
//! output that names them.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::{Duration, Instant};

use crate::model::{CallResult, InputItem, Payload, ResultStatus};
use crate::payloads::{Encoded, mounted};
use crate::wire::{self, pb};

/// The container's client of the control plane.
pub(super) type Stub = pb::container_api_client::ContainerApiClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, wire::AuthHeaders>,
>;

/// Downloads, by handle, the stored inputs a container that reaches no store was sent; one that
/// cannot be downloaded keeps its handle and fails where it is read, the cause in the log.
/// Each download's time goes into `took`, by input (it is the input's work, done here).
pub(super) async fn download_stored(
    stub: &Stub,
    items: &mut [InputItem],
    took: &mut HashMap<String, Duration>,
) {
    if mounted().is_some() {
        return;
    }
    for item in items {
        let Some(stored) = item.input.stored.clone() else {
            continue;
        };
        let began = Instant::now();
        let request = pb::PayloadDownloadRequest {
            handle: stored.handle.clone(),
        };
        let downloaded = match stub.clone().payload_download(request).await {
            Ok(chunks) => wire::receive_payload_bytes(chunks.into_inner(), stored.size).await,
            Err(s) => Err(s.message().to_owned()),
        };
        took.insert(item.input_id.clone(), began.elapsed());
        match downloaded {
            Ok(data) => {
                item.input.data = data;
                item.input.stored = None;
            }
            Err(e) => tracing::error!(
                "cannot download the payload of input {} ({}): {e}",
                item.input_id,
                stored.handle
            ),
        }
    }
}

/// In a container that reaches no store: uploads each large value that stayed in memory, which
/// its output then names by handle. One that can be neither uploaded nor sent in a message is
/// the reason given (see [`upload_outputs`]).
async fn upload(stub: &Stub, p: &mut pb::Payload) -> Result<(), String> {
    let sent = wire::upload_large(p, |chunks| {
        let mut stub = stub.clone();
        async move { stub.payload_upload(chunks).await }
    })
    .await;
    match sent {
        Ok(()) => Ok(()),
        Err(s) => match too_large_for_a_message(p.data.len()) {
            Some(why) => Err(format!("{why}, and its upload failed: {}", s.message())),
            // It still fits in a message.
            None => Ok(()),
        },
    }
}

/// Uploads the large values of outputs and generator items, in a container that reaches no
/// store (an upload's time counts in its output's run time: it is the input's work, done here).
/// An output whose value can be neither uploaded nor sent fails its input with the reason; an
/// item that cannot is not sent, and its input then fails saying so (`lost`: by input, until
/// its output comes).
pub(super) async fn upload_outputs(
    stub: &Stub,
    items: &mut [(String, Vec<pb::Payload>)],
    outputs: &mut [pb::OutputItem],
    lost: &mut HashMap<String, String>,
) {
    // A container that reaches the store uploads nothing and loses no item.
    if mounted().is_some() && lost.is_empty() {
        return;
    }
    if mounted().is_none() {
        for (input_id, list) in items.iter_mut() {
            let mut kept = Vec::with_capacity(list.len());
            for mut p in std::mem::take(list) {
                match upload(stub, &mut p).await {
                    Ok(()) => kept.push(p),
                    Err(why) => {
                        tracing::error!("a generator item of input {input_id} is lost: {why}");
                        lost.entry(input_id.clone())
                            .or_insert(format!("one of its generator items was lost: {why}"));
                    }
                }
            }
            *list = kept;
        }
    }
    for output in outputs {
        let Some(result) = output.result.as_mut() else {
            continue;
        };
        if let Some(why) = lost.remove(&output.input_id) {
            let failed = CallResult {
                attempt: result.attempt,
                ..CallResult::failure(ResultStatus::InternalFailure, why, &result.task_id)
            };
            output.result = Some(failed.into());
            continue;
        }
        if mounted().is_some() {
            continue;
        }
        let Some(p) = result.data.as_mut() else {
            continue;
        };
        let began = Instant::now();
        let uploaded = upload(stub, p).await;
        let took = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX);
        output.run_us = output.run_us.saturating_add(took);
        if let Err(why) = uploaded {
            let failed = CallResult {
                attempt: result.attempt,
                ..CallResult::failure(
                    ResultStatus::InternalFailure,
                    format!("cannot return the result: {why}"),
                    &result.task_id,
                )
            };
            output.result = Some(failed.into());
        }
    }
}

/// The id of the store this container reaches (empty: none), for its hello.
pub(super) fn store_id() -> String {
    mounted().map(|m| m.store_id.clone()).unwrap_or_default()
}

/// An input with its stored payload mapped from the store, and what tells whether anything
/// here still holds its bytes (user code may keep a `Bytes` argument past the call: the control
/// plane must then never write over the file). One that cannot be mapped keeps its handle and
/// fails where it is read, the cause in the container's log; a container without a store
/// downloads it instead ([`download_stored`]).
pub(super) fn load(mut item: InputItem) -> (InputItem, Option<Weak<()>>) {
    let Some(store) = mounted() else {
        return (item, None);
    };
    let Some(stored) = item.input.stored.take() else {
        return (item, None);
    };
    match store.map(&stored).map_err(|e| e.to_string()) {
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

/// Whether `len` bytes are too many for a message (with room for the message around them).
fn too_large_for_a_message(len: usize) -> Option<String> {
    (len > crate::wire::MAX_MESSAGE_BYTES - (64 << 10))
        .then(|| format!("the value is {len} bytes: too large for a message"))
}

/// Why bytes that stayed in memory cannot be sent, if they cannot. A container that reaches no
/// store uploads them instead (see [`upload_outputs`]).
fn too_large(len: usize) -> Option<String> {
    mounted()?;
    too_large_for_a_message(len).map(|why| format!(
        "{why}, and the payload outbox refused it (the container's log says why; on the oci runtime no file of a container may be larger than its /tmp: raise the function's `ephemeral_disk`)"
    ))
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
