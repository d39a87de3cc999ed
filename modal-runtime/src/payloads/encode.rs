//! Values encoded for sending: in memory while small, straight into a payload file of this
//! process's store (a program beside its control plane) or outbox (a container) once larger
//! than the inline limit, so that a large value is never whole in memory a second time.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use super::{Stored, hosted, inline_max, mounted};
use crate::codec::{self, CodecError};

/// A value encoded for sending: its bytes, or the file of this process's store (a program
/// beside its control plane) or outbox (a container) they went to, when they are larger than
/// [`inline_max`].
#[derive(Debug)]
pub(crate) enum Encoded {
    Inline(Vec<u8>),
    Stored(Stored),
}

/// Makes the file a large encoding goes to: `(file, its path)`; its name is the payload's
/// handle.
type NewFile<'a> = &'a dyn Fn() -> std::io::Result<(std::fs::File, PathBuf)>;

/// Encodes `value`: in memory up to [`inline_max`] bytes, then straight into a new file of
/// this process's store or outbox (no copy of the whole in memory). A file that cannot be
/// written is removed and the value encoded in memory instead (the cause in the log).
pub(crate) fn encode<T: Serialize + std::any::Any>(value: &T) -> Result<Encoded, CodecError> {
    // Where this process writes large encodings: its store's `objects/`, or its outbox.
    if let Some(store) = hosted() {
        return encode_with(value, &|| store.new_file());
    }
    if let Some(outbox) = mounted() {
        return encode_with(value, &|| outbox.new_file());
    }
    codec::encode(value).map(Encoded::Inline)
}

/// [`encode`] with large encodings written to the file `make` makes (a spare it reuses may
/// be longer: it is cut to the encoding's length).
fn encode_with<T: Serialize + std::any::Any>(
    value: &T,
    make: NewFile<'_>,
) -> Result<Encoded, CodecError> {
    let mut spill = Spill {
        make,
        buf: Vec::new(),
        file: None,
        no_file: false,
        written: 0,
    };
    let encoded = codec::encode_to(value, &mut spill);
    let written = spill.written;
    let Some((mut w, path)) = spill.file.take() else {
        return encoded.map(|()| Encoded::Inline(spill.buf));
    };
    let finished = encoded
        .map_err(|e| e.to_string())
        .and_then(|()| w.flush().map_err(|e| e.to_string()))
        .and_then(|()| w.get_ref().set_len(written).map_err(|e| e.to_string()));
    let handle = path.file_name().map(|n| n.to_string_lossy().into_owned());
    match (finished, handle) {
        (Ok(()), Some(handle)) => Ok(Encoded::Stored(Stored {
            handle,
            size: written,
        })),
        (finished, _) => {
            let _ = std::fs::remove_file(&path);
            let why = finished
                .err()
                .unwrap_or_else(|| "a file without a name".into());
            tracing::warn!(
                "cannot write payload {}, encoding it in memory: {why}",
                path.display()
            );
            codec::encode(value).map(Encoded::Inline)
        }
    }
}

/// A writer that keeps the first [`inline_max`] bytes in memory and moves to a file past them.
struct Spill<'a> {
    make: NewFile<'a>,
    buf: Vec<u8>,
    file: Option<(std::io::BufWriter<std::fs::File>, PathBuf)>,
    /// The file could not be made: everything stays in memory.
    no_file: bool,
    written: u64,
}

impl Write for Spill<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.written += data.len() as u64;
        if self.file.is_none() {
            if self.no_file || self.buf.len() + data.len() <= inline_max() {
                self.buf.extend_from_slice(data);
                return Ok(data.len());
            }
            let (file, path) = match (self.make)() {
                Ok(made) => made,
                Err(e) => {
                    tracing::warn!("cannot make a payload file, encoding in memory: {e}");
                    self.no_file = true;
                    self.buf.extend_from_slice(data);
                    return Ok(data.len());
                }
            };
            let w = std::io::BufWriter::with_capacity(64 << 10, file);
            // Named first: a failed write below still has its file removed.
            let buf = std::mem::take(&mut self.buf);
            self.file = Some((w, path));
            if let Some((w, _)) = self.file.as_mut() {
                w.write_all(&buf)?;
            }
        }
        if let Some((w, _)) = self.file.as_mut() {
            w.write_all(data)?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.file.as_mut() {
            Some((w, _)) => w.flush(),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("encode-test-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_large_value_is_encoded_straight_into_a_file_of_the_same_bytes() {
        let dir = temp_dir();
        let make = || {
            let path = dir.join(format!("{:032x}", fastrand::u128(..)));
            Ok((std::fs::File::create_new(&path)?, path))
        };
        let read = |s: &Stored| std::fs::read(dir.join(&s.handle)).unwrap();
        let small = serde_bytes::ByteBuf::from(vec![7u8; 100]);
        assert!(matches!(
            encode_with(&small, &make).unwrap(),
            Encoded::Inline(b) if b == codec::encode(&small).unwrap()
        ));
        let large = serde_bytes::ByteBuf::from(vec![9u8; inline_max() + 1]);
        let Encoded::Stored(stored) = encode_with(&large, &make).unwrap() else {
            panic!("a value over the limit goes to a file");
        };
        assert_eq!(read(&stored), codec::encode(&large).unwrap());
        // A value of many small writes (a plain `Vec<u8>` is encoded byte by byte) too.
        let many = vec![3u8; inline_max() + 10];
        let Encoded::Stored(stored) = encode_with(&many, &make).unwrap() else {
            panic!("a value over the limit goes to a file");
        };
        assert_eq!(read(&stored), codec::encode(&many).unwrap());
        // A longer file reused: cut to the value.
        let spare = dir.join("spare");
        std::fs::write(&spare, vec![1u8; 3 * inline_max()]).unwrap();
        let reuse = || {
            let file = std::fs::OpenOptions::new().write(true).open(&spare)?;
            Ok((file, spare.clone()))
        };
        let Encoded::Stored(stored) = encode_with(&large, &reuse).unwrap() else {
            panic!("a value over the limit goes to a file");
        };
        assert_eq!(read(&stored), codec::encode(&large).unwrap());
        // No file to be had: in memory instead.
        let none = || Err(std::io::Error::other("no room"));
        assert!(matches!(
            encode_with(&large, &none).unwrap(),
            Encoded::Inline(_)
        ));
        let _ = std::fs::remove_dir_all(dir);
    }
}
