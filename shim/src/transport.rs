//! The MCP transport over stdio: rmcp's own, with the shim's limit on one
//! message in front of it, and an answer for every message over it.
//!
//! A request over [`MAX_MESSAGE_BYTES`] gets a JSON-RPC error with its own
//! id (null when the id could not be read) whose message names the limit,
//! and a line on stderr; the session goes on. A notification over it only
//! gets the line on stderr, since JSON-RPC forbids answering one.

use std::future::Future;
use std::io;

use rmcp::RoleServer;
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::line_limit::{LineLimit, MAX_MESSAGE_BYTES, Oversized};
use crate::line_writer::{self, LineWriter};
use crate::outline::Outline;

/// JSON-RPC's "Invalid Request": the message was not accepted as a request.
const INVALID_REQUEST: i64 = -32600;

/// stdio for the MCP session: reads requests from `R`, writes to `W`.
pub struct StdioTransport<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> {
    rmcp: AsyncRwTransport<RoleServer, LineLimit<R>, LineWriter<W>>,
    oversized: mpsc::UnboundedReceiver<Oversized>,
    /// The shim's own writer on stdout, beside rmcp's.
    out: LineWriter<W>,
    /// An answer being written, and how much of it is out. It lives here,
    /// not in a local of `receive`, because rmcp polls `receive` in a
    /// `select!` and drops it whenever something else is ready first: the
    /// next call picks the line up where the last one stopped.
    answer: Option<(Vec<u8>, usize)>,
}

impl<R, W> StdioTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub fn new(read: R, write: W) -> Self {
        let (dropped, oversized) = mpsc::unbounded_channel();
        let (rmcp_out, out) = line_writer::pair(write);
        let read = LineLimit::new(read, MAX_MESSAGE_BYTES, dropped);
        // The limit is enforced in front of rmcp, where it can be answered;
        // rmcp's own would only drop the line unanswered.
        let rmcp = AsyncRwTransport::new_server(read, rmcp_out).with_max_line_length(usize::MAX);
        StdioTransport {
            rmcp,
            oversized,
            out,
            answer: None,
        }
    }

    /// Say on stderr what was dropped, and queue the client's answer.
    fn report(&mut self, oversized: &Oversized) {
        eprintln!("sshmcp: {}", log_line(oversized));
        if let Some(answer) = answer(oversized) {
            let mut line = answer.to_string().into_bytes();
            line.push(b'\n');
            self.answer = Some((line, 0));
        }
    }

    /// Write out the queued answer, if any. Cancel-safe: see `answer`.
    async fn write_answer(&mut self) -> io::Result<()> {
        while let Some((line, written)) = &mut self.answer {
            if *written < line.len() {
                match self.out.write(&line[*written..]).await? {
                    0 => return Err(io::ErrorKind::WriteZero.into()),
                    n => *written += n,
                }
            } else {
                self.out.flush().await?;
                self.answer = None;
            }
        }
        Ok(())
    }
}

impl<R, W> Transport<RoleServer> for StdioTransport<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.rmcp.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            // stdout is gone, so is the client: end the session as rmcp
            // does when its own writes fail.
            if self.write_answer().await.is_err() {
                return None;
            }
            let oversized = tokio::select! {
                biased;
                Some(oversized) = self.oversized.recv() => oversized,
                message = self.rmcp.receive() => match message {
                    Some(message) => return Some(message),
                    // The input ended, perhaps right after a line over the
                    // limit: answer it before saying so.
                    None => match self.oversized.try_recv() {
                        Ok(oversized) => oversized,
                        Err(_) => return None,
                    },
                },
            };
            self.report(&oversized);
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.rmcp.close().await
    }
}

/// The JSON-RPC error for a request over the limit; `None` for messages
/// that must not be answered.
fn answer(oversized: &Oversized) -> Option<Value> {
    let (id, what) = match &oversized.outline {
        Outline::Request { id, method } => (id.clone(), request_name(method.as_deref())),
        Outline::NoReply => return None,
        Outline::Unknown => (Value::Null, "message".to_string()),
    };
    Some(json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": INVALID_REQUEST,
            "message": format!(
                "the {what} is {} bytes, over sshmcp's limit of {} for one message, so it was \
                 not read. Send less per call: write_file with `append: true` in parts, or \
                 `transfer` a local file",
                oversized.bytes,
                limit_text(),
            ),
            "data": { "message_bytes": oversized.bytes, "limit_bytes": MAX_MESSAGE_BYTES },
        },
    }))
}

/// What stderr is told about a message over the limit.
fn log_line(oversized: &Oversized) -> String {
    let (what, outcome) = match &oversized.outline {
        Outline::Request { id, method } => (
            format!("{} (id {id})", request_name(method.as_deref())),
            "answered it with an error",
        ),
        Outline::NoReply => ("notification or response".to_string(), "nothing to answer"),
        Outline::Unknown => (
            "message, id unreadable,".to_string(),
            "answered with an error with a null id",
        ),
    };
    format!(
        "dropped a {} byte {what} from the MCP client: over the {} limit for one message; {outcome}",
        oversized.bytes,
        limit_text(),
    )
}

fn request_name(method: Option<&str>) -> String {
    match method {
        Some(method) => format!("{method} request"),
        None => "request".to_string(),
    }
}

fn limit_text() -> String {
    format!("{} MiB", MAX_MESSAGE_BYTES / (1024 * 1024))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oversized(outline: Outline) -> Oversized {
        Oversized {
            bytes: 20_000_000,
            outline,
        }
    }

    #[test]
    fn a_request_is_answered_with_its_id_and_the_limit() {
        let answer = answer(&oversized(Outline::Request {
            id: json!("call-3"),
            method: Some("tools/call".into()),
        }))
        .expect("a request is answered");
        assert_eq!(answer["id"], "call-3");
        assert_eq!(answer["error"]["code"], INVALID_REQUEST);
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("tools/call request"), "{message}");
        assert!(message.contains("16 MiB"), "{message}");
        assert!(message.contains("20000000 bytes"), "{message}");
    }

    #[test]
    fn an_unreadable_message_is_answered_with_a_null_id() {
        let answer = answer(&oversized(Outline::Unknown)).expect("answered");
        assert_eq!(answer.get("id"), Some(&Value::Null));
    }

    #[test]
    fn a_notification_is_not_answered() {
        assert_eq!(answer(&oversized(Outline::NoReply)), None);
    }
}
