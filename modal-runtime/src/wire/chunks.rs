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

/// A read error met while uploading, kept for after the request.
pub(crate) type ReadError = Arc<Mutex<Option<std::io::Error>>>;

/// The chunks of `file` for an upload: a read error ends the stream early (the receiver then
/// refuses the upload for its digest) and is kept in the returned cell, to be told instead.
pub(crate) fn upload_chunks(
    file: tokio::fs::File,
    hash: String,
) -> (
    impl Stream<Item = pb::BinaryChunk> + Send + 'static,
    ReadError,
) {
    use futures::StreamExt;
    let error: ReadError = Arc::default();
    let keep = Arc::clone(&error);
    let stream = file_chunks(file, hash).scan((), move |(), item| {
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
    (stream, error)
}

/// The read error an upload met, if any.
pub(crate) fn take_read_error(error: &ReadError) -> Option<std::io::Error> {
    error.lock().ok().and_then(|mut e| e.take())
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
