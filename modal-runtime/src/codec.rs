//! The payload codec: bincode 2 (serde), behind a format tag so it can be swapped later.

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The format every payload this build writes is in.
pub(crate) const FORMAT: PayloadFormat = PayloadFormat::Bincode;

/// Formats a payload can be in; the wire carries the tag next to the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PayloadFormat {
    Bincode,
    /// A tag this build does not know (from a newer peer): relayed, refused where it is read.
    Other(i32),
}

/// A value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("cannot encode value: {0}")]
    Encode(String),
    #[error("cannot decode value: {0}")]
    Decode(String),
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes into `writer` (a large byte string goes to it in one write).
pub(crate) fn encode_to<T: Serialize + ?Sized, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, writer, config())
        .map(drop)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if read != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - read));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v: (i64, String, Vec<u8>) = (7, "x".into(), vec![1, 2, 3]);
        let bytes = encode(&v).unwrap();
        assert_eq!(decode::<(i64, String, Vec<u8>)>(&bytes).unwrap(), v);
    }

    #[test]
    fn wrong_type_is_an_error() {
        let bytes = encode(&("a string",)).unwrap();
        assert!(decode::<(i64, i64)>(&bytes).is_err());
        let bytes = encode(&(1u8, 2u8)).unwrap();
        assert!(matches!(
            decode::<(u8,)>(&bytes),
            Err(CodecError::Trailing(1))
        ));
    }
}
