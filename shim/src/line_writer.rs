//! stdout shared by rmcp and the shim's own answers, one whole line at a
//! time.
//!
//! rmcp owns the writer it is given, and the shim has answers rmcp cannot
//! write (a JSON-RPC error with a null id, for a message too large to read).
//! Both write through a [`LineWriter`] over the same stdout; a writer takes
//! its turn at its first byte of a line and gives it up after its newline,
//! so lines never interleave. Only the writer whose turn it is touches
//! stdout at all, which also matters because a tokio pipe wakes only the
//! last task that found it full.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use tokio::io::AsyncWrite;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::PollSemaphore;

/// One of the writers sharing an output.
pub struct LineWriter<W> {
    out: Arc<Mutex<W>>,
    turns: PollSemaphore,
    /// Held from this writer's first byte of a line until its newline.
    turn: Option<OwnedSemaphorePermit>,
}

/// Two writers sharing `out`.
pub fn pair<W>(out: W) -> (LineWriter<W>, LineWriter<W>) {
    let out = Arc::new(Mutex::new(out));
    let turns = PollSemaphore::new(Arc::new(Semaphore::new(1)));
    let writer = |out: &Arc<Mutex<W>>| LineWriter {
        out: out.clone(),
        turns: turns.clone(),
        turn: None,
    };
    (writer(&out), writer(&out))
}

impl<W> LineWriter<W> {
    /// Wait for this writer's turn, if it does not have it yet.
    fn poll_turn(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.turn.is_none() {
            match ready!(self.turns.poll_acquire(cx)) {
                Some(permit) => self.turn = Some(permit),
                // The semaphore is never closed; should it be, the output is
                // as good as gone.
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        }
        Poll::Ready(Ok(()))
    }

    fn out(&self) -> std::sync::MutexGuard<'_, W> {
        // Only the writer holding the turn locks it, and a panic in a write
        // leaves nothing half-changed in the handle itself.
        self.out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LineWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        ready!(this.poll_turn(cx))?;
        let written = ready!(Pin::new(&mut *this.out()).poll_write(cx, buf))?;
        if written > 0 && buf[written - 1] == b'\n' {
            this.turn = None;
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mid_line = this.turn.is_some();
        ready!(this.poll_turn(cx))?;
        ready!(Pin::new(&mut *this.out()).poll_flush(cx))?;
        if !mid_line {
            this.turn = None;
        }
        Poll::Ready(Ok(()))
    }

    /// Flushes only: the other writer may still have lines to write, and
    /// stdout closes when the process ends.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn lines_from_two_writers_never_interleave() {
        // A pipe smaller than one line, so each line is written in pieces.
        let (out, mut read) = tokio::io::duplex(7);
        let (mut a, mut b) = pair(out);
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            read.read_to_string(&mut text).await.map(|_| text)
        });
        let write_a = async {
            for _ in 0..20 {
                a.write_all(b"aaaaaaaaaaaaaaaaaaaa\n").await?;
                a.flush().await?;
            }
            io::Result::Ok(())
        };
        let write_b = async {
            for _ in 0..20 {
                b.write_all(b"bbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n").await?;
                b.flush().await?;
            }
            io::Result::Ok(())
        };
        let (wrote_a, wrote_b) = tokio::join!(write_a, write_b);
        wrote_a.expect("writer a");
        wrote_b.expect("writer b");
        drop((a, b));
        let text = reader.await.expect("reader task").expect("reading");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 40, "{text}");
        for line in lines {
            assert!(
                line == "aaaaaaaaaaaaaaaaaaaa" || line == "bbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
                "interleaved: {line:?}"
            );
        }
    }
}
