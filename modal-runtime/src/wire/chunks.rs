//! Files as streams of chunks (`BinaryChunk`: the first carries the content's digest), for
//! executables and volume files, in both directions.

use std::sync::{Arc, Mutex};

use futures::Stream;
use tokio::io::AsyncReadExt;

use super::{BINARY_CHUNK, pb};

/// The chunks of `file`; the first carries `hash` (an empty file is one empty chunk).
pub(crate) fn file_chunks(
    file: tokio::fs::File,
    hash: String,
) -> impl Stream<Item = std::io::Result<pb::BinaryChunk>> + Send + 'static {
    futures::stream::unfold(Some((file, true)), move |state| {
        let hash = hash.clone();
        async move {
            let (mut file, first) = state?;
            let mut buf = vec![0u8; BINARY_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) if !first => None,
                Ok(n) => {
                    buf.truncate(n);
                    let chunk = pb::BinaryChunk {
                        hash: if first { hash } else { String::new() },
                        data: buf.into(),
                    };
                    Some((Ok(chunk), Some((file, false))))
                }
                // The error is the last item.
                Err(e) => Some((Err(e), None)),
            }
        }
    })
}

/// Digests asked about in one request of a file store (each 64 characters: about 70 KiB).
pub(crate) const DIGEST_CHECK_BATCH: usize = 1000;

/// A read error met while uploading, kept for after the request.
type ReadError = Arc<Mutex<Option<std::io::Error>>>;

/// What an upload met reading its file, told after the request (see [`open_upload`]).
pub(crate) struct UploadCheck {
    error: ReadError,
    path: std::path::PathBuf,
}

impl UploadCheck {
    /// The request's result, or the read error that cut the upload short (which is why the
    /// receiver refused it), naming the file.
    pub(crate) fn result<T>(
        self,
        sent: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, crate::error::Error> {
        if let Some(e) = self.error.lock().ok().and_then(|mut e| e.take()) {
            return Err(unreadable(&self.path, e));
        }
        Ok(sent?.into_inner())
    }
}

fn unreadable(path: &std::path::Path, e: std::io::Error) -> crate::error::Error {
    crate::error::Error::Invalid(format!("cannot read {}: {e}", path.display()))
}

/// The file at `path` as upload chunks announced by its digest `hash`, and the check to apply
/// to the request's result: a read error ends the stream early and is what the check returns.
///
/// ```ignore
/// let (chunks, check) = wire::open_upload(&path, &hash).await?;
/// check.result(api.volume_blob_upload(chunks).await)?;
/// ```
pub(crate) async fn open_upload(
    path: &std::path::Path,
    hash: &str,
) -> Result<
    (
        impl Stream<Item = pb::BinaryChunk> + Send + 'static + use<>,
        UploadCheck,
    ),
    crate::error::Error,
> {
    use futures::StreamExt;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| unreadable(path, e))?;
    let error: ReadError = Arc::default();
    let keep = Arc::clone(&error);
    let chunks = file_chunks(file, hash.to_owned()).scan((), move |(), item| {
        futures::future::ready(match item {
            Ok(chunk) => Some(chunk),
            Err(e) => {
                if let Ok(mut slot) = keep.lock() {
                    *slot = Some(e);
                }
                None
            }
        })
    });
    let check = UploadCheck {
        error,
        path: path.to_path_buf(),
    };
    Ok((chunks, check))
}

/// Writes the chunks of a download to `to` (through a temporary file beside it, renamed once
/// whole), checking that the content hashes to `hash`.
pub(crate) async fn receive_to_file(
    mut chunks: impl Stream<Item = Result<pb::BinaryChunk, tonic::Status>> + Unpin,
    hash: &str,
    to: &std::path::Path,
) -> Result<(), String> {
    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    let name = to
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // A new file of a name nobody could have prepared (never through a link that is there).
    let tmp = to.with_file_name(format!(".{name}.{}.modal-part", crate::ids::new_id("")));
    let io = |e: std::io::Error| format!("cannot write {}: {e}", to.display());
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .await
        .map_err(io)?;
    let mut hasher = blake3::Hasher::new();
    let result: Result<(), String> = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|s| s.message().to_owned())?;
            hasher.update(&chunk.data);
            file.write_all(&chunk.data).await.map_err(io)?;
        }
        file.flush().await.map_err(io)?;
        let got = hasher.finalize().to_hex().to_string();
        if got != hash {
            return Err(format!(
                "the download of {} hashes to {got}, not {hash}",
                to.display()
            ));
        }
        tokio::fs::rename(&tmp, to).await.map_err(io)
    }
    .await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    result
}
