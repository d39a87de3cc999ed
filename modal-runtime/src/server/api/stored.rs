//! Stored payloads at the control plane's edges. Containers: results a container wrote to its
//! outbox taken into the payload store (checked, moved out of the container's reach), stored
//! inputs loaded for a container that cannot reach the store. Clients: stored payloads accepted
//! only from the client in this process (it writes the store itself); a large inline input from
//! any other kept in the store; results loaded for a client that cannot reach the store.

use tonic::{Request, Status};

use crate::model::{CallResult, ContainerCommand, OutputItem, Payload, ResultStatus};
use crate::payloads::Store;
use crate::wire::Reader;

/// Whether a request came from the client in this process (see [`crate::payloads::InProcess`]).
pub(super) fn in_process<T>(req: &Request<T>) -> bool {
    req.extensions()
        .get::<crate::payloads::InProcess>()
        .is_some()
}

/// A client's input as the control plane keeps it.
pub(super) fn client_input(
    store: Option<&Store>,
    in_process: bool,
    p: Payload,
) -> Result<Payload, Status> {
    if p.stored.is_some() {
        return if in_process {
            Ok(p)
        } else {
            Err(Status::invalid_argument(
                "a stored payload is accepted only from a client in the control plane's process; send it inline",
            ))
        };
    }
    match store {
        Some(store) if p.data.len() > crate::payloads::inline_max() => match store.put(&p.data) {
            Ok(stored) => Ok(Payload {
                format: p.format,
                data: bytes::Bytes::new(),
                stored: Some(stored),
            }),
            Err(e) => {
                tracing::warn!("cannot keep an input in the payload store, it stays inline: {e}");
                Ok(p)
            }
        },
        _ => Ok(p),
    }
}

/// A result as a client receives it: loaded when the client cannot reach the store (`Only`:
/// this client is its one reader, and the file goes once read).
pub(super) fn for_client(
    store: Option<&Store>,
    in_process: bool,
    mut result: CallResult,
    reader: Reader,
) -> CallResult {
    if let Some(p) = result.data.as_mut() {
        load_for_client(store, in_process, p, reader);
    }
    result
}

/// A payload as a client receives it: loaded when the client cannot reach the store (a failure
/// to load leaves the handle, which the client reports it cannot read; the cause is here).
pub(super) fn load_for_client(
    store: Option<&Store>,
    in_process: bool,
    p: &mut Payload,
    reader: Reader,
) {
    let Some(store) = store.filter(|_| !in_process) else {
        return;
    };
    let Some(stored) = p.stored.take() else {
        return;
    };
    match store.read(&stored) {
        Ok(data) => {
            p.data = data;
            if reader == Reader::Only {
                store.remove(std::slice::from_ref(&stored.handle));
            }
        }
        Err(e) => {
            tracing::warn!("cannot load payload {} for a client: {e}", stored.handle);
            p.stored = Some(stored);
        }
    }
}

/// A payload a container announced in its outbox, moved into the store.
fn take(store: Option<&Store>, task_id: &str, mut p: Payload) -> Result<Payload, String> {
    let Some(announced) = p.stored.take() else {
        return Ok(p);
    };
    let store = store.ok_or("the container sent a stored payload but was given no store")?;
    p.stored = Some(
        store
            .adopt(task_id, &announced.handle, announced.size)
            .map_err(|e| format!("cannot take its payload file {}: {e}", announced.handle))?,
    );
    store.give_spare(task_id);
    Ok(p)
}

/// An output whose result went through the outbox; one that cannot be taken fails its attempt
/// (an internal failure: the input runs again when its retries allow).
pub(super) fn take_output(
    store: Option<&Store>,
    task_id: &str,
    mut item: OutputItem,
) -> OutputItem {
    if let Some(p) = item.result.data.take() {
        match take(store, task_id, p) {
            Ok(p) => item.result.data = Some(p),
            Err(e) => {
                tracing::warn!(task_id, input_id = %item.input_id, "{e}");
                item.result = CallResult {
                    attempt: item.result.attempt,
                    ..CallResult::failure(
                        ResultStatus::InternalFailure,
                        format!("the container's result was lost: {e}"),
                        task_id,
                    )
                };
            }
        }
    }
    item
}

/// A generator item that went through the outbox; one that cannot be taken is passed on as
/// announced, and its reader says it cannot read it.
pub(super) fn take_item(store: Option<&Store>, task_id: &str, p: Payload) -> Payload {
    if p.stored.is_none() {
        return p;
    }
    let announced = p.clone();
    take(store, task_id, p).unwrap_or_else(|e| {
        tracing::warn!(task_id, "a generator item: {e}");
        announced
    })
}

/// Inputs for a container that cannot reach the store (`store`: the store to load them from),
/// their stored payloads loaded.
pub(super) fn inline_inputs(store: Option<&Store>, cmd: ContainerCommand) -> ContainerCommand {
    let mut items = match (store, cmd) {
        (Some(_), ContainerCommand::Inputs(items)) => items,
        (_, cmd) => return cmd,
    };
    let Some(store) = store else {
        return ContainerCommand::Inputs(items);
    };
    for item in &mut items {
        if let Some(stored) = &item.input.stored {
            match store.read(stored) {
                Ok(data) => {
                    item.input.data = data;
                    item.input.stored = None;
                }
                // The container says it cannot read the input; the cause is here.
                Err(e) => {
                    tracing::warn!(input_id = %item.input_id, "cannot load a stored input: {e}")
                }
            }
        }
    }
    ContainerCommand::Inputs(items)
}
