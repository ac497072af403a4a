//! Frames over a byte stream, for both ends: a 4-byte big-endian length,
//! then a bincode payload decoded with [`decode`]'s limits. The daemon's
//! connections and the client read and write through these two types, so
//! the framing rules live in one place.

use futures_util::{SinkExt, StreamExt};
use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

use crate::{CodecError, decode, encode, frame_codec};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length header announced more than the frame limit.
    #[error("frame larger than the {max_frame}-byte frame limit")]
    TooLarge {
        /// The limit in force.
        max_frame: usize,
    },
    /// The stream broke, or ended inside a frame.
    #[error("truncated or unreadable frame ({0})")]
    Io(std::io::Error),
    /// The payload is not a valid frame of the expected kind.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

/// Reads frames of one kind from a byte stream.
pub struct FrameReader<R> {
    inner: FramedRead<R, LengthDelimitedCodec>,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames of at most `max_frame` payload bytes from `read`.
    pub fn new(read: R, max_frame: usize) -> Self {
        FrameReader {
            inner: FramedRead::new(read, frame_codec(max_frame)),
            max_frame,
        }
    }

    /// Change the frame limit (the daemon raises it after the Hello).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.inner.decoder_mut().set_max_frame_length(max_frame);
        self.max_frame = max_frame;
    }

    /// The next frame, decoded as `T`; `None` once the stream has ended
    /// between frames.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, FrameError>> {
        let bytes = match self.inner.next().await? {
            Ok(bytes) => bytes,
            // The codec reports an oversized length header as InvalidData.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Some(Err(FrameError::TooLarge {
                    max_frame: self.max_frame,
                }));
            }
            Err(e) => return Some(Err(FrameError::Io(e))),
        };
        Some(decode(&bytes).map_err(FrameError::from))
    }
}

/// Writes frames to a byte stream.
pub struct FrameWriter<W> {
    inner: FramedWrite<W, LengthDelimitedCodec>,
    max_frame: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Frames of at most `max_frame` payload bytes to `write`.
    pub fn new(write: W, max_frame: usize) -> Self {
        FrameWriter {
            inner: FramedWrite::new(write, frame_codec(max_frame)),
            max_frame,
        }
    }

    /// Encode `frame` and write it.
    pub async fn send<T: Serialize>(&mut self, frame: &T) -> Result<(), FrameError> {
        let payload = encode(frame)?;
        self.send_payload(payload).await
    }

    /// Write a payload [`encode`] has already made (a client checks a
    /// request's size before queueing it).
    pub async fn send_payload(&mut self, payload: Vec<u8>) -> Result<(), FrameError> {
        if payload.len() > self.max_frame {
            return Err(FrameError::TooLarge {
                max_frame: self.max_frame,
            });
        }
        self.inner
            .send(bytes::Bytes::from(payload))
            .await
            .map_err(FrameError::Io)
    }
}
