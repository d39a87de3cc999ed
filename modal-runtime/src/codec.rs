//! The payload codec: bincode 2 (serde), behind a format tag so it can be swapped later. A
//! plain `Vec<u8>` (alone, or as the one argument) has the encoding of a byte string, which
//! serde would move byte by byte: it is encoded and decoded as one byte string instead. A
//! `Bytes` (alone, or as the one argument) decoded from shared bytes is a slice of them: no copy.

use std::any::{Any, TypeId};

use bytes::Bytes;
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

/// The bytes of a value encoded as one byte string: a `Vec<u8>` or a `Bytes`, or a one-tuple
/// of one.
fn byte_string<T: Any>(value: &T) -> Option<&[u8]> {
    let any: &dyn Any = value;
    any.downcast_ref::<Vec<u8>>()
        .or_else(|| any.downcast_ref::<(Vec<u8>,)>().map(|t| &t.0))
        .map(Vec::as_slice)
        .or_else(|| {
            any.downcast_ref::<Bytes>()
                .or_else(|| any.downcast_ref::<(Bytes,)>().map(|t| &t.0))
                .map(Bytes::as_ref)
        })
}

/// [`encode`] for any type (no byte-string fast path: a type that may borrow is not `Any`).
pub(crate) fn encode_plain<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

pub(crate) fn encode<T: Serialize + Any>(value: &T) -> Result<Vec<u8>, CodecError> {
    let encoded = match byte_string(value) {
        Some(bytes) => bincode::serde::encode_to_vec(serde_bytes::Bytes::new(bytes), config()),
        None => bincode::serde::encode_to_vec(value, config()),
    };
    encoded.map_err(|e| CodecError::Encode(e.to_string()))
}

/// Encodes into `writer` (a large byte string goes to it in one write).
pub(crate) fn encode_to<T: Serialize + Any, W: std::io::Write>(
    value: &T,
    writer: &mut W,
) -> Result<(), CodecError> {
    let encoded = match byte_string(value) {
        Some(bytes) => {
            bincode::serde::encode_into_std_write(serde_bytes::Bytes::new(bytes), writer, config())
        }
        None => bincode::serde::encode_into_std_write(value, writer, config()),
    };
    encoded
        .map(drop)
        .map_err(|e| CodecError::Encode(e.to_string()))
}

/// Whether `T` is `V` or a one-tuple of one.
fn is_alone_or_one_tuple_of<T: Any, V: Any>() -> bool {
    let wanted = TypeId::of::<T>();
    wanted == TypeId::of::<V>() || wanted == TypeId::of::<(V,)>()
}

/// `value`, or `(value,)`, as the `T` it is (see [`is_alone_or_one_tuple_of`]).
fn as_alone_or_one_tuple<T: Any, V: Any>(value: V) -> Option<T> {
    let boxed: Box<dyn Any> = if TypeId::of::<T>() == TypeId::of::<V>() {
        Box::new(value)
    } else {
        Box::new((value,))
    };
    boxed.downcast::<T>().ok().map(|t| *t)
}

pub(crate) fn decode<T: DeserializeOwned + Any>(bytes: &[u8]) -> Result<T, CodecError> {
    if is_alone_or_one_tuple_of::<T, Vec<u8>>() {
        let bytes = decode_exact::<serde_bytes::ByteBuf>(bytes)?.into_vec();
        if let Some(value) = as_alone_or_one_tuple(bytes) {
            return Ok(value);
        }
    }
    decode_exact(bytes)
}

/// [`decode`] from shared bytes: a `Bytes` (or a one-tuple of one) is a slice of `source`, not a
/// copy (a payload mapped from its file stays mapped while the value lives).
pub(crate) fn decode_shared<T: DeserializeOwned + Any>(source: &Bytes) -> Result<T, CodecError> {
    if is_alone_or_one_tuple_of::<T, Bytes>()
        && let Some(value) = as_alone_or_one_tuple(byte_string_in(source)?)
    {
        return Ok(value);
    }
    decode(source)
}

/// The contents of the byte string `source` encodes (its length, then its bytes), as a slice.
fn byte_string_in(source: &Bytes) -> Result<Bytes, CodecError> {
    let (len, read): (u64, usize) = bincode::decode_from_slice(source, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|len| read.checked_add(len))
        .filter(|end| *end <= source.len())
        .ok_or_else(|| {
            CodecError::Decode(format!(
                "a byte string of {len} bytes in {} bytes",
                source.len() - read
            ))
        })?;
    if end != source.len() {
        return Err(CodecError::Trailing(source.len() - end));
    }
    Ok(source.slice(read..end))
}

/// [`decode`] for any type (no byte-string fast path: a type that may borrow is not `Any`).
pub(crate) fn decode_exact<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
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
    fn a_plain_byte_vector_is_a_byte_string_both_ways() {
        let v: Vec<u8> = (0..=255).cycle().take(100_000).collect();
        let fast = encode(&v).unwrap();
        let slow = bincode::serde::encode_to_vec(&v, config()).unwrap();
        assert_eq!(
            fast, slow,
            "the same encoding as serde's element by element"
        );
        assert_eq!(encode(&(v.clone(),)).unwrap(), slow);
        let mut written = Vec::new();
        encode_to(&(v.clone(),), &mut written).unwrap();
        assert_eq!(written, slow);
        assert_eq!(decode::<Vec<u8>>(&slow).unwrap(), v);
        assert_eq!(decode::<(Vec<u8>,)>(&slow).unwrap().0, v);
        let (slow_decoded, _): (Vec<u8>, usize) =
            bincode::serde::decode_from_slice(&fast, config()).unwrap();
        assert_eq!(slow_decoded, v);
        assert!(matches!(
            decode::<Vec<u8>>(&[slow.as_slice(), &[1]].concat()),
            Err(CodecError::Trailing(1))
        ));
    }

    #[test]
    fn shared_bytes_decode_as_a_slice_of_their_source() {
        // Lengths on both sides of the varint's one- and three-byte forms.
        for len in [0usize, 1, 250, 251, 70_000] {
            let data = Bytes::from((0..len).map(|i| i as u8).collect::<Vec<u8>>());
            let source = Bytes::from(encode(&data).unwrap());
            assert_eq!(
                source,
                bincode::serde::encode_to_vec(data.as_ref().to_vec(), config()).unwrap(),
                "the encoding of a Vec<u8> with the same bytes"
            );
            assert_eq!(encode(&(data.clone(),)).unwrap(), source);
            let decoded: Bytes = decode_shared(&source).unwrap();
            assert_eq!(decoded, data);
            if len > 0 {
                let at = decoded.as_ptr() as usize;
                let within = source.as_ptr() as usize..source.as_ptr() as usize + source.len();
                assert!(within.contains(&at), "no copy");
            }
            assert_eq!(decode_shared::<(Bytes,)>(&source).unwrap().0, data);
            // Other types from shared bytes decode as from a slice.
            assert_eq!(decode_shared::<Vec<u8>>(&source).unwrap(), data.to_vec());
        }
        let source = Bytes::from(encode(&Bytes::from_static(b"abc")).unwrap());
        let longer = Bytes::from([source.as_ref(), &[9]].concat());
        assert!(matches!(
            decode_shared::<Bytes>(&longer),
            Err(CodecError::Trailing(1))
        ));
        let shorter = source.slice(..source.len() - 1);
        assert!(matches!(
            decode_shared::<Bytes>(&shorter),
            Err(CodecError::Decode(m)) if m.contains("3 bytes in 2")
        ));
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
