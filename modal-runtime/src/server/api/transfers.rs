//! Large payloads of clients in other processes, moved in chunks checked against their blake3
//! digest: an upload is kept until a call names it, a result handed over by its handle until
//! it is downloaded; either goes after [`KEPT_FOR`] (a client that died mid-way leaks nothing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::{Api, BoxStream, guard};
use crate::payloads::Store;
use crate::wire::{self, pb};

/// How long an upload waits for its call, and a handed-over result for its download.
pub(crate) const KEPT_FOR: Duration = Duration::from_secs(600);
/// How often payloads kept past [`KEPT_FOR`] are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// Why a payload file is held here, by handle, with when it stops being held.
#[derive(Default)]
pub(crate) struct Transfers {
    held: Mutex<HashMap<String, (Instant, Held)>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    /// Uploaded (this many bytes), not named by a call or an output yet.
    Upload(u64),
    /// Named by the call of this id, which owns it: the same call sent again (a retried
    /// request) may name it again. Forgotten, not removed, at its time.
    Claimed(String),
    /// A result its one reader, a client elsewhere, is to download (then it goes).
    Handoff,
}

impl Transfers {
    /// Holds an upload of `size` bytes until a call or an output names it.
    pub(super) fn hold_upload(&self, handle: &str, size: u64) {
        self.hold(handle, Held::Upload(size));
    }

    fn hold(&self, handle: &str, held: Held) {
        self.lock()
            .insert(handle.to_owned(), (Instant::now() + KEPT_FOR, held));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Held)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes an upload of `size` bytes for what names it: true if it was one (it is theirs
    /// now). A call (`by`: its id) may name it again when it is sent again.
    pub(super) fn claim_upload(&self, handle: &str, size: u64, by: Option<&str>) -> bool {
        let mut held = self.lock();
        let claimed = match (held.get(handle), by) {
            (Some((_, Held::Upload(uploaded))), _) => *uploaded == size,
            (Some((_, Held::Claimed(call))), Some(by)) => call == by,
            _ => false,
        };
        if claimed {
            match by {
                Some(call) => {
                    let until = Instant::now() + KEPT_FOR;
                    held.insert(handle.to_owned(), (until, Held::Claimed(call.to_owned())));
                }
                None => {
                    held.remove(handle);
                }
            }
        }
        claimed
    }

    /// Holds a result until its client downloads it.
    pub(super) fn hand_over(&self, handle: &str) {
        self.hold(handle, Held::Handoff);
    }

    /// Takes a handed-over result for its download: true if it was one.
    fn take_handoff(&self, handle: &str) -> bool {
        let mut held = self.lock();
        match held.get(handle) {
            Some((_, Held::Handoff)) => held.remove(handle).is_some(),
            _ => false,
        }
    }

    /// Forgets what was held past its time; returns the handles of those nobody owns (an
    /// upload no call named, a result nobody downloaded), to be removed.
    fn expired(&self, now: Instant) -> Vec<String> {
        let mut gone = Vec::new();
        self.lock().retain(|handle, (until, held)| {
            let keep = *until > now;
            if !keep && !matches!(held, Held::Claimed(_)) {
                gone.push(handle.clone());
            }
            keep
        });
        gone
    }
}

/// Removes a handed-over result once its download went through whole; one cut short is held
/// again, so that the client may download it again.
struct AfterDownload {
    store: Arc<Store>,
    transfers: Arc<Transfers>,
    handle: String,
    whole: bool,
}

impl Drop for AfterDownload {
    fn drop(&mut self) {
        if self.whole {
            self.store.remove(std::slice::from_ref(&self.handle));
        } else {
            self.transfers.hand_over(&self.handle);
        }
    }
}

/// Flushes an upload's file and cuts it to its size (a reused spare may be longer).
async fn finish_upload(
    mut writer: tokio::io::BufWriter<tokio::fs::File>,
    size: u64,
) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    writer.flush().await?;
    writer.into_inner().set_len(size).await
}

impl Api {
    fn payload_store(&self) -> Result<Arc<Store>, Status> {
        self.payloads.clone().ok_or_else(|| {
            Status::failed_precondition(
                "this control plane keeps no payload store: send payloads inline",
            )
        })
    }

    pub(super) async fn payload_upload(
        &self,
        req: Request<Streaming<pb::BinaryChunk>>,
    ) -> Result<Response<pb::StoredPayload>, Status> {
        guard::principal_of(&req)?;
        let store = self.payload_store()?;
        let (file, path) = store
            .new_file()
            .map_err(|e| Status::internal(format!("cannot make a payload file: {e}")))?;
        // Written off the async threads (the embedded control plane has only one).
        let mut writer = tokio::io::BufWriter::with_capacity(
            wire::BINARY_CHUNK,
            tokio::fs::File::from_std(file),
        );
        let received = match wire::receive_payload(req.into_inner(), &mut writer).await {
            Ok(size) => finish_upload(writer, size)
                .await
                .map(|()| size)
                .map_err(|e| format!("cannot write the payload: {e}")),
            Err(why) => Err(why),
        };
        let handle = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match received {
            Ok(size) => {
                self.transfers.hold_upload(&handle, size);
                Ok(Response::new(pb::StoredPayload { handle, size }))
            }
            Err(why) => {
                let _ = std::fs::remove_file(&path);
                Err(Status::data_loss(format!(
                    "the payload upload was refused: {why}"
                )))
            }
        }
    }

    pub(super) async fn payload_download(
        &self,
        req: Request<pb::PayloadDownloadRequest>,
    ) -> Result<Response<BoxStream<pb::BinaryChunk>>, Status> {
        guard::principal_of(&req)?;
        let store = self.payload_store()?;
        let handle = req.into_inner().handle;
        let file = store.open_payload(&handle).map_err(|e| {
            Status::not_found(format!(
                "payload {handle} is not here ({e}): it was read already, or its call's result expired"
            ))
        })?;
        let mut after = self.transfers.take_handoff(&handle).then(|| AfterDownload {
            store,
            transfers: Arc::clone(&self.transfers),
            handle,
            whole: false,
        });
        let chunks = wire::payload_file_chunks(tokio::fs::File::from_std(file)).map(move |c| {
            let c = c.map_err(|e| Status::internal(format!("cannot read the payload: {e}")))?;
            // The last chunk carries the digest: the download went through whole.
            if !c.hash.is_empty()
                && let Some(after) = after.as_mut()
            {
                after.whole = true;
            }
            Ok(c)
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    /// Removes, now and then, the uploads no call named and the results no client downloaded
    /// in [`KEPT_FOR`].
    pub(crate) async fn sweep_transfers(self) {
        let Some(store) = self.payloads.clone() else {
            return;
        };
        loop {
            tokio::time::sleep(SWEEP_EVERY).await;
            let gone = self.transfers.expired(Instant::now());
            if !gone.is_empty() {
                tracing::info!(
                    "removed {} payloads that no call named or no client downloaded in {} s",
                    gone.len(),
                    KEPT_FOR.as_secs()
                );
                store.remove(&gone);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_claimed_once_and_a_handoff_is_not_an_upload() {
        let t = Transfers::default();
        t.hold_upload("a", 5);
        t.hand_over("b");
        assert!(!t.claim_upload("b", 0, None), "a result is not an upload");
        assert!(
            !t.claim_upload("a", 6, None),
            "an upload is claimed at its size"
        );
        assert!(t.claim_upload("a", 5, None));
        assert!(!t.claim_upload("a", 5, None), "claimed once");
        assert!(!t.take_handoff("a"));
        assert!(t.take_handoff("b"));
        assert!(!t.take_handoff("b"));
    }

    #[test]
    fn a_call_sent_again_names_its_upload_again() {
        let t = Transfers::default();
        t.hold_upload("a", 5);
        assert!(t.claim_upload("a", 5, Some("fc-1")));
        assert!(
            t.claim_upload("a", 5, Some("fc-1")),
            "the same call, sent again"
        );
        assert!(!t.claim_upload("a", 5, Some("fc-2")), "another call");
        assert!(!t.claim_upload("a", 5, None));
    }

    #[test]
    fn what_was_held_past_its_time_is_given_up() {
        let t = Transfers::default();
        t.hold_upload("a", 1);
        t.hand_over("b");
        t.hold_upload("c", 1);
        assert!(t.claim_upload("c", 1, Some("fc-1")));
        assert!(t.expired(Instant::now()).is_empty());
        let mut gone = t.expired(Instant::now() + KEPT_FOR + Duration::from_secs(1));
        gone.sort();
        assert_eq!(
            gone,
            ["a", "b"],
            "a claimed upload is its call's: forgotten, not removed"
        );
        assert!(
            !t.claim_upload("a", 1, None),
            "an expired upload is not claimable"
        );
        assert!(!t.claim_upload("c", 1, Some("fc-1")), "forgotten");
    }
}
