//! Files as streams of chunks (`BinaryChunk`: the first carries the content's digest), for
//! executables and volume files, in both directions; payloads as streams of chunks whose last
//! carries the digest of all (it is computed as they are sent), and the refusal that asks for
//! an upload again.

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

/// Set on a refusal of a payload handle the control plane does not have as an upload (it
/// restarted, or the call's input was done with): the client uploads the payload again.
const UPLOAD_AGAIN_HEADER: &str = "modal-upload-again";

/// A refusal that asks the client to upload its payload again.
pub(crate) fn upload_again(message: String) -> tonic::Status {
    let mut status = tonic::Status::failed_precondition(message);
    status.metadata_mut().insert(
        UPLOAD_AGAIN_HEADER,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

/// Whether a refusal asks for the payload to be uploaded again (see [`upload_again`]).
pub(crate) fn asks_to_upload_again(status: &tonic::Status) -> bool {
    status.metadata().contains_key(UPLOAD_AGAIN_HEADER)
}

/// The chunks of a payload in memory: slices of it (no copy), then an empty chunk carrying the
/// blake3 digest of all of them.
pub(crate) fn payload_chunks(bytes: bytes::Bytes) -> PayloadChunks {
    let hash = blake3::hash(&bytes).to_hex().to_string();
    let mut chunks: Vec<pb::BinaryChunk> = (0..bytes.len())
        .step_by(BINARY_CHUNK)
        .map(|at| pb::BinaryChunk {
            hash: String::new(),
            data: bytes.slice(at..(at + BINARY_CHUNK).min(bytes.len())),
        })
        .collect();
    chunks.push(pb::BinaryChunk {
        hash,
        data: bytes::Bytes::new(),
    });
    futures::stream::iter(chunks)
}

/// What [`payload_chunks`] makes.
pub(crate) type PayloadChunks = futures::stream::Iter<std::vec::IntoIter<pb::BinaryChunk>>;

/// Uploads `p` when it is past the inline limit and still inline (`send`: the upload request of
/// the client or the container), naming the upload in it instead of its bytes; on a refusal `p`
/// stays as it was.
pub(crate) async fn upload_large<F, Fut>(p: &mut pb::Payload, send: F) -> Result<(), tonic::Status>
where
    F: FnOnce(PayloadChunks) -> Fut,
    Fut: Future<Output = Result<tonic::Response<pb::StoredPayload>, tonic::Status>>,
{
    if p.stored.is_some() || p.data.len() <= crate::payloads::inline_max() {
        return Ok(());
    }
    let stored = send(payload_chunks(p.data.clone())).await?;
    p.stored = Some(stored.into_inner());
    p.data = bytes::Bytes::new();
    Ok(())
}

/// The chunks of a payload file, hashed as they are read; the last, empty, carries the digest.
pub(crate) fn payload_file_chunks(
    file: tokio::fs::File,
) -> impl Stream<Item = std::io::Result<pb::BinaryChunk>> + Send + 'static {
    futures::stream::unfold(
        Some((file, blake3::Hasher::new())),
        move |state| async move {
            let (mut file, mut hasher) = state?;
            let mut buf = vec![0u8; BINARY_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => {
                    let hash = hasher.finalize().to_hex().to_string();
                    let last = pb::BinaryChunk {
                        hash,
                        data: bytes::Bytes::new(),
                    };
                    Some((Ok(last), None))
                }
                Ok(n) => {
                    buf.truncate(n);
                    hasher.update(&buf);
                    let chunk = pb::BinaryChunk {
                        hash: String::new(),
                        data: buf.into(),
                    };
                    Some((Ok(chunk), Some((file, hasher))))
                }
                Err(e) => Some((Err(e), None)),
            }
        },
    )
}

/// Receives a payload of `size` bytes (as its handle announced) into memory.
pub(crate) async fn receive_payload_bytes<S>(chunks: S, size: u64) -> Result<bytes::Bytes, String>
where
    S: Stream<Item = Result<pb::BinaryChunk, tonic::Status>> + Unpin,
{
    let mut data = bytes::BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
    let got = receive_payload(chunks, &mut data).await?;
    if got != size {
        return Err(format!("it came with {got} bytes, {size} were announced"));
    }
    Ok(data.freeze())
}

/// Where a received payload's bytes go, in order.
pub(crate) trait PayloadSink {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = Result<(), String>> + Send;
}

impl PayloadSink for bytes::BytesMut {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = Result<(), String>> + Send {
        self.extend_from_slice(data);
        std::future::ready(Ok(()))
    }
}

impl PayloadSink for Vec<u8> {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = Result<(), String>> + Send {
        self.extend_from_slice(data);
        std::future::ready(Ok(()))
    }
}

impl PayloadSink for tokio::io::BufWriter<tokio::fs::File> {
    fn write(&mut self, data: &[u8]) -> impl Future<Output = Result<(), String>> + Send {
        use tokio::io::AsyncWriteExt;
        async move {
            self.write_all(data)
                .await
                .map_err(|e| format!("cannot write the payload: {e}"))
        }
    }
}

/// Receives a payload's chunks into `sink`, checking them against the digest the last one
/// carries; returns the number of bytes. A stream that ends without its digest, or whose bytes
/// hash to another, is refused (the sink then holds a part, which the caller discards).
pub(crate) async fn receive_payload<S>(
    mut chunks: S,
    sink: &mut impl PayloadSink,
) -> Result<u64, String>
where
    S: Stream<Item = Result<pb::BinaryChunk, tonic::Status>> + Unpin,
{
    use futures::StreamExt;
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|s| format!("the transfer broke off: {}", s.message()))?;
        if !chunk.hash.is_empty() {
            let got = hasher.finalize().to_hex().to_string();
            if got != chunk.hash {
                return Err(format!(
                    "the payload's {size} bytes hash to {got}, not to the {} it was sent with",
                    chunk.hash
                ));
            }
            if chunks.next().await.is_some() {
                return Err("chunks came after the payload's digest".into());
            }
            return Ok(size);
        }
        hasher.update(&chunk.data);
        size += chunk.data.len() as u64;
        sink.write(&chunk.data).await?;
    }
    Err(format!(
        "the transfer ended after {size} bytes, without the payload's digest"
    ))
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    async fn received(chunks: Vec<pb::BinaryChunk>) -> Result<Vec<u8>, String> {
        let mut got = Vec::new();
        let stream = futures::stream::iter(chunks.into_iter().map(Ok));
        let size = receive_payload(stream, &mut got).await?;
        assert_eq!(size, got.len() as u64);
        Ok(got)
    }

    fn payload(len: usize) -> bytes::Bytes {
        (0..len)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into()
    }

    #[tokio::test]
    async fn a_payload_goes_through_in_chunks_and_its_digest() {
        for len in [0, 1, BINARY_CHUNK, 2 * BINARY_CHUNK + 7] {
            let data = payload(len);
            let chunks: Vec<_> = payload_chunks(data.clone()).collect().await;
            assert_eq!(chunks.len(), len.div_ceil(BINARY_CHUNK) + 1);
            assert!(chunks.iter().all(|c| c.data.len() <= BINARY_CHUNK));
            assert_eq!(received(chunks).await.unwrap(), data);
        }
    }

    #[tokio::test]
    async fn a_file_is_sent_with_the_digest_of_what_was_read() {
        let data = payload(BINARY_CHUNK + 3);
        let path = std::env::temp_dir().join(format!("modal-chunks-{}", crate::ids::new_id("")));
        std::fs::write(&path, &data).unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let chunks: Vec<_> = payload_file_chunks(file)
            .map(|c| c.unwrap())
            .collect()
            .await;
        let _ = std::fs::remove_file(&path);
        let from_memory: Vec<_> = payload_chunks(data.clone()).collect().await;
        assert_eq!(
            chunks.last().map(|c| &c.hash),
            from_memory.last().map(|c| &c.hash)
        );
        assert_eq!(received(chunks).await.unwrap(), data);
    }

    #[tokio::test]
    async fn a_changed_truncated_or_overlong_transfer_is_refused() {
        let data = payload(3 * BINARY_CHUNK);
        let chunks: Vec<_> = payload_chunks(data).collect().await;
        let mut changed = chunks.clone();
        changed[1].data = payload(BINARY_CHUNK - 1);
        let err = received(changed).await.unwrap_err();
        assert!(err.contains("hash to"), "{err}");
        let truncated = chunks[..chunks.len() - 1].to_vec();
        let err = received(truncated).await.unwrap_err();
        assert!(err.contains("without the payload's digest"), "{err}");
        let mut overlong = chunks.clone();
        overlong.push(chunks[0].clone());
        let err = received(overlong).await.unwrap_err();
        assert!(err.contains("after the payload's digest"), "{err}");
        let broken = futures::stream::iter(vec![
            Ok(chunks[0].clone()),
            Err(tonic::Status::unavailable("gone")),
        ]);
        let err = receive_payload(broken, &mut Vec::new()).await.unwrap_err();
        assert!(err.contains("broke off: gone"), "{err}");
    }
}
