//! stdin that reports when the MCP client closes it.
//!
//! Closing stdin is how an MCP client tells a stdio server to shut down,
//! and the client follows up with SIGTERM within a couple of seconds. rmcp
//! on its own would give calls still in flight five seconds to finish,
//! long enough to be killed before a running command is cancelled. Knowing
//! the moment stdin closes lets the shim cancel them in time instead.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

/// A reader that cancels `closed` at end of input or on a read error.
pub struct WatchedStdin<R> {
    inner: R,
    closed: CancellationToken,
}

impl<R> WatchedStdin<R> {
    pub fn new(inner: R, closed: CancellationToken) -> Self {
        WatchedStdin { inner, closed }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WatchedStdin<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        match &polled {
            // A read that had room and got nothing is end of input.
            Poll::Ready(Ok(())) if buf.filled().len() == before && buf.remaining() > 0 => {
                this.closed.cancel();
            }
            Poll::Ready(Err(_)) => this.closed.cancel(),
            _ => {}
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn end_of_input_cancels_the_token_but_data_does_not() {
        let closed = CancellationToken::new();
        let mut stdin = WatchedStdin::new(&b"{}\n"[..], closed.clone());
        let mut line = [0; 3];
        stdin.read_exact(&mut line).await.unwrap();
        assert!(!closed.is_cancelled());
        assert_eq!(stdin.read(&mut line).await.unwrap(), 0);
        assert!(closed.is_cancelled());
    }
}
