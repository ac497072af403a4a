//! Frames over a byte stream, for both ends: a 4-byte big-endian length,
//! then a bincode payload decoded with [`decode`]'s limits. The daemon's
//! connections and the client read and write through these two types, so
//! the framing rules live in one place.
//!
//! Each side keeps one buffer and reuses it: a frame is encoded straight
//! behind its length and written with one call, and a frame read whole is
//! decoded where it lies. A buffer that grew for a large frame is given
//! back once that frame is done.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;

use serde::{Serialize, de::DeserializeOwned};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::codec::encode_into;
use crate::{CodecError, decode};

/// Bytes of the length in front of each payload.
const HEADER: usize = 4;
/// Room a reader asks the stream to fill at once: a typical reply arrives
/// in one read.
const READ_ROOM: usize = 16 * 1024;
/// Frames up to this size get room for all of their bytes as soon as
/// their length is read; a larger claim gets room as its bytes arrive.
const ROOM_AT_ONCE: usize = 64 * 1024;
/// Largest buffer kept between frames; a larger one (grown for a large
/// frame) is let go once it is empty.
const KEEP: usize = 256 * 1024;

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
    read: R,
    /// Bytes read: `buf[start..end]` is not yet consumed.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max_frame: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Frames of at most `max_frame` payload bytes from `read`.
    pub fn new(read: R, max_frame: usize) -> Self {
        FrameReader {
            read,
            buf: Vec::new(),
            start: 0,
            end: 0,
            max_frame,
        }
    }

    /// Change the frame limit (the daemon raises it after the Hello).
    pub fn set_max_frame(&mut self, max_frame: usize) {
        self.max_frame = max_frame;
    }

    /// The next frame, decoded as `T`; `None` once the stream has ended
    /// between frames. Cancel-safe: bytes read stay for the next call.
    pub async fn next<T: DeserializeOwned>(&mut self) -> Option<Result<T, FrameError>> {
        loop {
            let have = self.end - self.start;
            let mut wanted = HEADER;
            if have >= HEADER {
                let mut len = [0u8; HEADER];
                len.copy_from_slice(&self.buf[self.start..self.start + HEADER]);
                let len = u32::from_be_bytes(len) as usize;
                if len > self.max_frame {
                    return Some(Err(FrameError::TooLarge {
                        max_frame: self.max_frame,
                    }));
                }
                wanted = HEADER + len;
                if have >= wanted {
                    let payload = &self.buf[self.start + HEADER..self.start + wanted];
                    let frame = decode(payload).map_err(FrameError::from);
                    self.consumed(wanted);
                    return Some(frame);
                }
            }
            self.make_room(wanted);
            let read = &mut self.read;
            let mut room = ReadBuf::new(&mut self.buf[self.end..]);
            match poll_fn(|cx| Pin::new(&mut *read).poll_read(cx, &mut room)).await {
                Ok(()) if room.filled().is_empty() => {
                    return if have == 0 {
                        None
                    } else {
                        Some(Err(FrameError::Io(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("the stream ended {have} bytes into a frame"),
                        ))))
                    };
                }
                Ok(()) => self.end += room.filled().len(),
                Err(e) => return Some(Err(FrameError::Io(e))),
            }
        }
    }

    /// Drop `n` bytes from the front; an empty buffer starts over, and
    /// one grown past [`KEEP`] is let go.
    fn consumed(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
            if self.buf.len() > KEEP {
                self.buf = Vec::new();
            }
        }
    }

    /// Room behind the unread bytes: at least [`READ_ROOM`], and for a
    /// frame of `wanted` bytes in all: all of it up to [`ROOM_AT_ONCE`],
    /// beyond that doubling with what has come. A length is only a claim,
    /// so a large one gets room as its bytes arrive, not all at once.
    fn make_room(&mut self, wanted: usize) {
        let have = self.end - self.start;
        let need = (have + READ_ROOM).max(wanted.min((2 * have).max(ROOM_AT_ONCE)));
        if self.start + need <= self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = have;
        }
        if need > self.buf.len() {
            self.buf.resize(need, 0);
        }
    }
}

/// Writes frames to a byte stream.
pub struct FrameWriter<W> {
    write: W,
    /// The frame being written: its length, then its payload.
    buf: Vec<u8>,
    max_frame: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Frames of at most `max_frame` payload bytes to `write`.
    pub fn new(write: W, max_frame: usize) -> Self {
        FrameWriter {
            write,
            buf: Vec::new(),
            max_frame,
        }
    }

    /// Encode `frame` and write it.
    pub async fn send<T: Serialize>(&mut self, frame: &T) -> Result<(), FrameError> {
        self.begin();
        let result = match encode_into(frame, &mut self.buf) {
            Ok(()) => self.write_buf().await,
            Err(e) => Err(e.into()),
        };
        self.done();
        result
    }

    /// Write a payload [`encode`](crate::encode) has already made (a client
    /// checks a request's size before queueing it).
    pub async fn send_payload(&mut self, payload: Vec<u8>) -> Result<(), FrameError> {
        self.begin();
        self.buf.extend_from_slice(&payload);
        let result = self.write_buf().await;
        self.done();
        result
    }

    /// Start a frame: room for its length, the payload to follow.
    fn begin(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
    }

    /// Put the payload's length in front of it and write the frame.
    async fn write_buf(&mut self) -> Result<(), FrameError> {
        let len = self.buf.len() - HEADER;
        let header = u32::try_from(len)
            .ok()
            .filter(|_| len <= self.max_frame)
            .ok_or(FrameError::TooLarge {
                max_frame: self.max_frame,
            })?;
        self.buf[..HEADER].copy_from_slice(&header.to_be_bytes());
        write_all(&mut self.write, &self.buf)
            .await
            .map_err(FrameError::Io)
    }

    /// The frame is over, written or not: a buffer grown past [`KEEP`]
    /// for it is let go.
    fn done(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP {
            self.buf = Vec::new();
        }
    }
}

/// Write all of `bytes`, then flush.
async fn write_all<W: AsyncWrite + Unpin>(write: &mut W, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut *write).poll_write(cx, bytes)).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        bytes = &bytes[n..];
    }
    poll_fn(|cx| Pin::new(&mut *write).poll_flush(cx)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode;

    /// Frames of many sizes, written one after another and read back
    /// through a pipe that hands over a few bytes at a time.
    #[tokio::test]
    async fn frames_of_every_size_come_back_whole_through_small_reads() {
        let (client, server) = tokio::io::duplex(7);
        let sizes = [
            0usize,
            1,
            3,
            4,
            5,
            100,
            READ_ROOM - 5,
            READ_ROOM,
            70_000,
            300_000,
        ];
        let writer = tokio::spawn(async move {
            let mut frames = FrameWriter::new(client, 1 << 20);
            for size in sizes {
                frames.send(&vec![7u8; size]).await.unwrap();
            }
        });
        let mut frames = FrameReader::new(server, 1 << 20);
        for size in sizes {
            let got: Vec<u8> = frames.next().await.unwrap().unwrap();
            assert_eq!(got.len(), size);
            assert!(got.iter().all(|&b| b == 7));
        }
        assert!(frames.next::<Vec<u8>>().await.is_none());
        writer.await.unwrap();
        assert!(frames.buf.len() <= KEEP, "the big frame's buffer was kept");
    }

    #[tokio::test]
    async fn a_length_over_the_limit_is_refused_before_it_is_read() {
        let (mut client, server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, &[0, 1, 0, 0])
            .await
            .unwrap();
        let mut frames = FrameReader::new(server, 1000);
        let err = frames.next::<Vec<u8>>().await.unwrap().unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max_frame: 1000 }),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_frame_says_so() {
        let (mut client, server) = tokio::io::duplex(64);
        let payload = encode(&vec![1u8; 20]).unwrap();
        let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&payload[..10]);
        tokio::io::AsyncWriteExt::write_all(&mut client, &bytes)
            .await
            .unwrap();
        drop(client);
        let mut frames = FrameReader::new(server, 1000);
        let err = frames.next::<Vec<u8>>().await.unwrap().unwrap_err();
        assert!(
            err.to_string().contains("ended 14 bytes into a frame"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_claimed_length_gets_room_only_as_its_bytes_arrive() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut bytes = (8u32 << 20).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        tokio::io::AsyncWriteExt::write_all(&mut client, &bytes)
            .await
            .unwrap();
        drop(client);
        let mut frames = FrameReader::new(server, 16 << 20);
        let err = frames.next::<Vec<u8>>().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("14 bytes into a frame"), "{err}");
        assert!(
            frames.buf.len() <= ROOM_AT_ONCE,
            "{} bytes",
            frames.buf.len()
        );
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_not_written() {
        let (client, _server) = tokio::io::duplex(64);
        let mut frames = FrameWriter::new(client, 10);
        let err = frames.send(&vec![0u8; 11]).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { max_frame: 10 }),
            "{err}"
        );
        // What was encoded for it is not kept.
        frames.send(&vec![0u8; 2 * KEEP]).await.unwrap_err();
        assert!(frames.buf.capacity() <= KEEP);
    }
}
