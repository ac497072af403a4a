//! Framing: a 4-byte big-endian length, then a bincode payload.

use serde::{Serialize, de::DeserializeOwned};

/// The one bincode configuration both ends use.
const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// A payload that could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// bincode could not encode the value.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The payload is not a valid encoding of the expected type, or claims
    /// more memory than its size allows.
    #[error("malformed frame: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The value ended this many bytes before the payload did.
    #[error("malformed frame: {0} unexpected trailing bytes")]
    Trailing(usize),
    /// The payload, of this many bytes, is over [`MAX_PAYLOAD`].
    #[error("frame of {0} bytes is larger than any frame this protocol allows")]
    TooLarge(usize),
}

/// Encode one frame's payload.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, CONFIG)?)
}

/// Encode one frame's payload onto the end of `buf`.
pub(crate) fn encode_into<T: Serialize>(value: &T, buf: &mut Vec<u8>) -> Result<(), CodecError> {
    bincode::serde::encode_into_std_write(value, buf, CONFIG)?;
    Ok(())
}

/// How many bytes bincode may claim while decoding a payload, per byte of
/// the payload. bincode claims a value's size in memory before it
/// allocates (a string's claimed length, 8 bytes for a `u64`), and a `u64`
/// that is 1 byte on the wire claims 8: so 8 per byte admits every valid
/// frame, while a length prefix that promises more than the frame holds
/// is refused before anything is allocated.
const CLAIM_PER_BYTE: usize = 8;

/// Decode one frame's payload; every byte must be used.
///
/// Nothing a payload says can make the decoder allocate more than a small
/// multiple of the payload's own size: an 11-byte frame that claims a
/// 2^62-byte string is a decode error, not an allocation. bincode's limit
/// is a type parameter, so it is picked from a few steps (each 16 times the
/// last) by the payload's size.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    const KIB: usize = 1024;
    let (value, used) = match bytes.len() {
        n if n <= 4 * KIB => decode_limited::<T, { 4 * KIB * CLAIM_PER_BYTE }>(bytes)?,
        n if n <= 64 * KIB => decode_limited::<T, { 64 * KIB * CLAIM_PER_BYTE }>(bytes)?,
        n if n <= 1024 * KIB => decode_limited::<T, { 1024 * KIB * CLAIM_PER_BYTE }>(bytes)?,
        n if n <= 16384 * KIB => decode_limited::<T, { 16384 * KIB * CLAIM_PER_BYTE }>(bytes)?,
        _ => decode_limited::<T, { MAX_PAYLOAD * CLAIM_PER_BYTE }>(bytes)?,
    };
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// The largest payload [`decode`] accepts: the ceiling of `max_frame`.
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

fn decode_limited<T: DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> Result<(T, usize), CodecError> {
    if bytes.len() > MAX_PAYLOAD {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bincode::serde::decode_from_slice(
        bytes,
        CONFIG.with_limit::<LIMIT>(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload for `Vec<u8>` or `String`: a varint length (bincode's
    /// `0xFD` prefix: a u64 follows) and no data.
    fn claims(len: u64) -> Vec<u8> {
        let mut payload = vec![0xFD];
        payload.extend_from_slice(&len.to_le_bytes());
        payload
    }

    #[test]
    fn a_string_claiming_two_to_the_62_bytes_is_refused_without_allocating() {
        let err = decode::<String>(&claims(1 << 62)).unwrap_err();
        assert!(err.to_string().contains("malformed frame"), "{err}");
    }

    #[test]
    fn a_short_frame_claiming_a_gibibyte_is_refused() {
        // 7 bytes: 0xFC (a u32 follows) and 2^30.
        let mut payload = vec![0xFC];
        payload.extend_from_slice(&(1u32 << 30).to_le_bytes());
        payload.extend_from_slice(&[0, 0]);
        assert_eq!(payload.len(), 7);
        assert!(decode::<Vec<u8>>(&payload).is_err());
    }

    #[test]
    fn many_small_integers_still_decode() {
        // Each u64 is one byte on the wire but claims eight: the worst
        // ratio a valid frame can have.
        let value: Vec<u64> = (0..100_000).map(|i| i % 100).collect();
        let bytes = encode(&value).unwrap();
        assert_eq!(decode::<Vec<u64>>(&bytes).unwrap(), value);
    }

    #[test]
    fn a_string_longer_than_its_frame_is_an_error() {
        let mut payload = claims(100);
        payload.extend_from_slice(b"short");
        assert!(decode::<String>(&payload).is_err());
    }
}
