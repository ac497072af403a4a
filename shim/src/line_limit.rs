//! The limit on one message from the MCP client, enforced in front of rmcp
//! so that a message over it can be answered.
//!
//! rmcp drops a line over its own 16 MiB limit and says so only through
//! `tracing`, which the shim does not print: the client's request got no
//! answer and waited forever. This reader takes that job over. It passes
//! rmcp whole lines only, and a line over the limit never reaches rmcp: it
//! is dropped as it arrives (so it costs no memory beyond the limit) while
//! [`OutlineScanner`] picks out its id, and then reported as
//! [`Oversized`] to whoever answers the client.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::mpsc;

use crate::outline::{Outline, OutlineScanner};

/// The most one message may take, newline not counted: rmcp's own default
/// and the daemon's default frame, so whatever fits one fits the other.
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How much is read from stdin at a time: a pipe's default capacity.
const READ_CHUNK: usize = 64 * 1024;

/// Once handed on, a buffer this large is freed rather than kept for the
/// next line: one huge message should not pin its size in memory.
const KEEP_CAPACITY: usize = 1024 * 1024;

/// A message that was over the limit and was dropped unread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    /// Its size, newline not counted.
    pub bytes: usize,
    /// What it was, as far as its bytes showed.
    pub outline: Outline,
}

/// Reads lines from `inner` and passes on those within `limit`; see the
/// module doc.
pub struct LineLimit<R> {
    inner: R,
    limit: usize,
    chunk: Box<[u8]>,
    /// The line being read, until its newline arrives.
    line: Vec<u8>,
    /// Whole lines for the reader above, and how much of them it has taken.
    ready: Vec<u8>,
    taken: usize,
    /// While the rest of a line over the limit goes by: its size so far.
    dropping: Option<usize>,
    outline: OutlineScanner,
    oversized: mpsc::UnboundedSender<Oversized>,
}

impl<R> LineLimit<R> {
    /// Each line over `limit` is reported on `oversized` once its newline
    /// has arrived.
    pub fn new(inner: R, limit: usize, oversized: mpsc::UnboundedSender<Oversized>) -> Self {
        LineLimit {
            inner,
            limit,
            chunk: vec![0; READ_CHUNK].into_boxed_slice(),
            line: Vec::new(),
            ready: Vec::new(),
            taken: 0,
            dropping: None,
            outline: OutlineScanner::default(),
            oversized,
        }
    }

    /// Sort freshly read bytes into whole lines, the line in progress, and
    /// dropped bytes.
    fn sort(&mut self, bytes: &[u8]) {
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            let (content, ends_line) = match piece.strip_suffix(b"\n") {
                Some(content) => (content, true),
                None => (piece, false),
            };
            self.outline.feed(content);
            match &mut self.dropping {
                Some(size) => *size += content.len(),
                None if self.line.len() + content.len() > self.limit => {
                    self.dropping = Some(self.line.len() + content.len());
                    self.line = Vec::new();
                }
                None => self.line.extend_from_slice(content),
            }
            if ends_line {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let outline = std::mem::take(&mut self.outline).outline();
        match self.dropping.take() {
            Some(bytes) => {
                // Nobody left to tell only once the transport is gone, and
                // then the session is over anyway.
                let _ = self.oversized.send(Oversized { bytes, outline });
            }
            None => {
                self.line.push(b'\n');
                if self.ready.is_empty() {
                    std::mem::swap(&mut self.ready, &mut self.line);
                } else {
                    self.ready.extend_from_slice(&self.line);
                    self.line.clear();
                }
            }
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LineLimit<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        // Until a whole line is ready, read on: returning nothing would
        // read as the end of input.
        while this.taken == this.ready.len() {
            let mut read = ReadBuf::new(&mut this.chunk);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let got = read.filled().len();
            if got == 0 {
                // End of input. A line without its newline is not a message
                // (rmcp would not deliver it either), so it goes too.
                return Poll::Ready(Ok(()));
            }
            let chunk = std::mem::take(&mut this.chunk);
            this.sort(&chunk[..got]);
            this.chunk = chunk;
        }
        let n = buf.remaining().min(this.ready.len() - this.taken);
        buf.put_slice(&this.ready[this.taken..this.taken + n]);
        this.taken += n;
        if this.taken == this.ready.len() {
            this.taken = 0;
            if this.ready.capacity() > KEEP_CAPACITY {
                this.ready = Vec::new();
            } else {
                this.ready.clear();
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    use super::*;

    /// Everything `input` yields through a [`LineLimit`] of `limit`, read a
    /// few bytes at a time, and what it reported.
    async fn through(input: &[u8], limit: usize) -> (String, Vec<Oversized>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut reader = LineLimit::new(input, limit, tx);
        let mut out = Vec::new();
        let mut small = [0; 5];
        loop {
            let n = reader.read(&mut small).await.expect("reading from memory");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&small[..n]);
        }
        drop(reader);
        let mut reports = Vec::new();
        while let Some(report) = rx.recv().await {
            reports.push(report);
        }
        (
            String::from_utf8(out).expect("utf-8 in, utf-8 out"),
            reports,
        )
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lines_within_the_limit_pass_whole_and_a_longer_one_is_reported() {
        let long = format!(r#"{{"method":"m","params":"{}","id":5}}"#, "x".repeat(40));
        let input = format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n");
        let (out, reports) = through(input.as_bytes(), 32).await;
        assert_eq!(out, "{\"a\":1}\n{\"b\":2}\n");
        assert_eq!(
            reports,
            vec![Oversized {
                bytes: long.len(),
                outline: Outline::Request {
                    id: json!(5),
                    method: Some("m".into())
                },
            }]
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_line_exactly_at_the_limit_passes() {
        let (out, reports) = through(b"12345678\n", 8).await;
        assert_eq!(out, "12345678\n");
        assert!(reports.is_empty());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_last_line_without_a_newline_is_not_passed_on() {
        let (out, reports) = through(b"{\"a\":1}\n{\"b\"", 32).await;
        assert_eq!(out, "{\"a\":1}\n");
        assert!(reports.is_empty());
    }
}
