//! Large payloads between this client and a control plane in another process: an argument past
//! the inline limit is uploaded in chunks before the call that names it, a result kept in the
//! control plane's store is downloaded by its handle; each transfer is checked against its
//! blake3 digest, and neither travels as one message. A client in the control plane's process
//! reads and writes the store itself.

use super::{Api, Client};
use crate::error::{Error, Result};
use crate::wire::{self, pb};

impl Client {
    /// An encoded argument tuple as it is sent: uploaded first when large and the control
    /// plane is elsewhere.
    pub(crate) async fn staged(&self, input: pb::Payload) -> Result<pb::Payload> {
        if self.embedded {
            return Ok(input);
        }
        upload_large(&self.api, input).await
    }

    /// A received result with its value's bytes here (see [`Client::fetch`]).
    pub(crate) async fn fetched(&self, mut result: pb::CallResult) -> Result<pb::CallResult> {
        if let Some(p) = result.data.as_mut() {
            self.fetch(p).await?;
        }
        Ok(result)
    }

    /// A received payload with its bytes here: one kept in the store of a control plane
    /// elsewhere is downloaded by its handle.
    pub(crate) async fn fetch(&self, p: &mut pb::Payload) -> Result<()> {
        if self.embedded {
            return Ok(());
        }
        let Some(stored) = p.stored.take() else {
            return Ok(());
        };
        p.data = download(&self.api, &stored).await?;
        Ok(())
    }
}

/// Uploads a payload past the inline limit; the payload then names the upload. A control plane
/// that keeps no payload store gets it inline.
async fn upload_large(api: &Api, mut p: pb::Payload) -> Result<pb::Payload> {
    let sent = wire::upload_large(&mut p, |chunks| {
        let mut api = api.clone();
        async move { api.payload_upload(chunks).await }
    })
    .await;
    match sent {
        Ok(()) => Ok(p),
        Err(s) if s.code() == tonic::Code::FailedPrecondition => Ok(p),
        Err(s) => Err(Error::ControlPlane(format!(
            "cannot upload a payload of {} bytes: {}",
            p.data.len(),
            s.message()
        ))),
    }
}

/// Downloads tried before giving up: a download cut short is held for another one.
const DOWNLOAD_TRIES: u32 = 3;

async fn download(api: &Api, stored: &pb::StoredPayload) -> Result<bytes::Bytes> {
    let mut tried = 0;
    loop {
        tried += 1;
        let downloaded = match api
            .clone()
            .payload_download(pb::PayloadDownloadRequest {
                handle: stored.handle.clone(),
            })
            .await
        {
            Ok(chunks) => wire::receive_payload_bytes(chunks.into_inner(), stored.size).await,
            // Gone (read already, or expired): another try finds nothing either.
            Err(s) if s.code() == tonic::Code::NotFound => {
                return Err(Error::ControlPlane(format!(
                    "cannot download payload {}: {}",
                    stored.handle,
                    s.message()
                )));
            }
            Err(s) => Err(s.message().to_owned()),
        };
        match downloaded {
            Ok(data) => return Ok(data),
            Err(e) if tried >= DOWNLOAD_TRIES => {
                return Err(Error::ControlPlane(format!(
                    "cannot download payload {} (tried {tried} times): {e}",
                    stored.handle
                )));
            }
            Err(e) => {
                tracing::warn!("downloading payload {} again: {e}", stored.handle);
                tokio::time::sleep(std::time::Duration::from_millis(100 << tried)).await;
            }
        }
    }
}
