//! Stored payloads at the control plane's edges. Containers: results a container wrote to its
//! outbox taken into the payload store (checked, moved out of the container's reach), stored
//! inputs loaded for a container that cannot reach the store. Clients: stored payloads accepted
//! from the client in this process (it writes the store itself) and as uploads made here
//! (`transfers.rs`); a large inline input from any other kept in the store; results handed by
//! handle to a client that downloads them, loaded for one that cannot.

use tonic::{Request, Status};

use super::transfers::Transfers;
use crate::model::{CallResult, ContainerCommand, OutputItem, Payload, ResultStatus};
use crate::payloads::Store;
use crate::wire::Reader;

/// Who sent a client request, as far as payloads go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// The client in this process (see [`crate::payloads::InProcess`]): it reaches the store.
    InProcess,
    /// A client elsewhere that uploads and downloads large payloads by handle.
    Downloads,
    /// A client elsewhere that sends and receives every payload inline.
    Inline,
}

/// The caller of a request.
pub(super) fn caller<T>(req: &Request<T>) -> Caller {
    if req
        .extensions()
        .get::<crate::payloads::InProcess>()
        .is_some()
    {
        Caller::InProcess
    } else if req
        .metadata()
        .contains_key(crate::wire::PAYLOAD_DOWNLOADS_HEADER)
    {
        Caller::Downloads
    } else {
        Caller::Inline
    }
}

/// A client's input as the control plane keeps it: a stored one from the client in this
/// process, or one uploaded here for this call (`call`: its id, when it may be sent again); a
/// large inline one is kept in the store.
pub(super) fn client_input(
    store: Option<&Store>,
    transfers: &Transfers,
    caller: Caller,
    call: Option<&str>,
    p: Payload,
) -> Result<Payload, Status> {
    if let Some(stored) = &p.stored {
        let here = store.is_none_or(|s| s.has(&stored.handle));
        return if caller == Caller::InProcess
            || (here && transfers.claim_upload(&stored.handle, stored.size, call))
        {
            Ok(p)
        } else {
            Err(crate::wire::upload_again(format!(
                "payload {} was not uploaded here, was named by another call already, or waited more than {} s for its call: upload it again",
                stored.handle,
                super::transfers::KEPT_FOR.as_secs()
            )))
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

/// A result as a client receives it (see [`load_for_client`]).
pub(super) fn for_client(
    store: Option<&Store>,
    transfers: &Transfers,
    caller: Caller,
    mut result: CallResult,
    reader: Reader,
) -> CallResult {
    if let Some(p) = result.data.as_mut() {
        load_for_client(store, transfers, caller, p, reader);
    }
    result
}

/// A payload as a client receives it. The client in this process reads the store itself; one
/// elsewhere that downloads gets the handle (as the `Only` reader, the file is its own: removed
/// once downloaded, or after a while); any other gets the bytes inline (as the `Only` reader,
/// the file goes once read). A failure to load leaves the handle, which the client reports it
/// cannot read; the cause is here.
pub(super) fn load_for_client(
    store: Option<&Store>,
    transfers: &Transfers,
    caller: Caller,
    p: &mut Payload,
    reader: Reader,
) {
    let Some(store) = store else {
        return;
    };
    match caller {
        Caller::InProcess => {}
        Caller::Downloads => {
            if let Some(stored) = &p.stored
                && reader == Reader::Only
            {
                transfers.hand_over(&stored.handle);
            }
        }
        Caller::Inline => {
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
    }
}

/// A payload a container uploaded (a container elsewhere), or announced in its outbox, moved
/// into the store.
fn take(
    store: Option<&Store>,
    transfers: &Transfers,
    task_id: &str,
    mut p: Payload,
) -> Result<Payload, String> {
    let Some(announced) = p.stored.take() else {
        return Ok(p);
    };
    if transfers.claim_upload(&announced.handle, announced.size, None) {
        p.stored = Some(announced);
        return Ok(p);
    }
    let store = store.ok_or_else(|| {
        format!(
            "the container named payload {}, which it did not upload, and it was given no outbox",
            announced.handle
        )
    })?;
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
    transfers: &Transfers,
    task_id: &str,
    mut item: OutputItem,
) -> OutputItem {
    if let Some(p) = item.result.data.take() {
        match take(store, transfers, task_id, p) {
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
pub(super) fn take_item(
    store: Option<&Store>,
    transfers: &Transfers,
    task_id: &str,
    p: Payload,
) -> Payload {
    if p.stored.is_none() {
        return p;
    }
    let announced = p.clone();
    take(store, transfers, task_id, p).unwrap_or_else(|e| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stored;

    #[test]
    fn a_client_elsewhere_names_only_its_own_uploads() {
        let t = Transfers::default();
        let named = |handle: &str| {
            Payload::in_store(Stored {
                handle: handle.into(),
                size: 5,
            })
        };
        let refused = client_input(None, &t, Caller::Downloads, None, named("0123")).unwrap_err();
        assert!(
            refused.message().contains("was not uploaded here"),
            "{refused:?}"
        );
        assert!(crate::wire::asks_to_upload_again(&refused));
        t.hold_upload("0123", 5);
        assert!(client_input(None, &t, Caller::Downloads, None, named("0123")).is_ok());
        assert!(
            client_input(None, &t, Caller::Downloads, None, named("0123")).is_err(),
            "one call per upload"
        );
        // The client in this process writes the store itself.
        assert!(client_input(None, &t, Caller::InProcess, None, named("4567")).is_ok());
    }

    #[test]
    fn a_call_sent_again_uploads_again_once_its_upload_is_gone() {
        let dir = std::env::temp_dir().join(format!("stored-test-{}", crate::ids::new_id("")));
        let store = Store::open(&dir).unwrap();
        let t = Transfers::default();
        let stored = store.put(b"hello").unwrap();
        t.hold_upload(&stored.handle, stored.size);
        let named = || Payload::in_store(stored.clone());
        let sent = |call| client_input(Some(&store), &t, Caller::Downloads, Some(call), named());
        assert!(sent("fc-1").is_ok());
        assert!(
            sent("fc-1").is_ok(),
            "the same call, sent again, names its upload again"
        );
        // The call's input was done with: the file went.
        store.remove(std::slice::from_ref(&stored.handle));
        let refused = sent("fc-1").unwrap_err();
        assert!(crate::wire::asks_to_upload_again(&refused), "{refused:?}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
