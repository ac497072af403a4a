//! The shim's one connection to `sshmcpd`, shared by every tool call.
//!
//! It is made on the first tool call, not at startup, so `initialize` is
//! answered without touching the socket and an MCP client that only lists
//! tools never wakes the daemon. When the daemon restarts, the next call
//! finds the old connection closed and makes a new one.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sshmcp_proto::client::{Call, ClientError, DaemonClient, Event};
use sshmcp_proto::{
    ClientInfo, Confirmation, DEFAULT_MAX_FRAME, Error, ErrorKind, Progress, Reply, Request,
};
use tokio::sync::Mutex;

/// How long a cancelled call waits for the daemon to confirm the cancel.
/// Long enough for the `Cancel` frame to reach the daemon and the remote
/// process to be signalled; short enough that an MCP client shutting the
/// shim down is not kept waiting.
pub const CANCEL_GRACE: Duration = Duration::from_millis(500);

/// The MCP client the shim serves, as its `initialize` named it; the
/// daemon's request log and audit log name it.
#[derive(Debug, Clone)]
pub struct McpClient {
    pub name: String,
    pub version: String,
}

/// A lazily made, shared, self-renewing connection to the daemon.
pub struct DaemonLink {
    /// Where to look for the daemon, in order; looked through again on
    /// every reconnect, as a restarted daemon may listen elsewhere.
    sockets: Vec<PathBuf>,
    /// The live connection, if any. Held across connecting, so concurrent
    /// first calls wait for one connect instead of racing to make several.
    client: Mutex<Option<Arc<DaemonClient>>>,
}

impl DaemonLink {
    pub fn new(sockets: Vec<PathBuf>) -> Self {
        DaemonLink {
            sockets,
            client: Mutex::new(None),
        }
    }

    /// Send `request`, connecting first when there is no live connection.
    /// `mcp_client` names the MCP client, for the daemon's stats and audit
    /// log; it is only used when a connection is made.
    pub async fn start(
        &self,
        request: Request,
        mcp_client: Option<McpClient>,
    ) -> Result<Call, ClientError> {
        let client = self.connected(&mcp_client).await?;
        match client.start(request.clone()) {
            // The connection died after it was last checked (the daemon
            // restarted). The request never left this process, so sending it
            // on a fresh connection is safe even for a command.
            Err(ClientError::Disconnected(_)) => {
                self.forget(&client).await;
                self.connected(&mcp_client).await?.start(request)
            }
            started => started,
        }
    }

    /// The live connection, made now if there is none or the last one closed.
    async fn connected(
        &self,
        mcp_client: &Option<McpClient>,
    ) -> Result<Arc<DaemonClient>, ClientError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let info = ClientInfo {
            binary: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            mcp_client: mcp_client.as_ref().map(|client| client.name.clone()),
            mcp_client_version: mcp_client.as_ref().map(|client| client.version.clone()),
            ssh_auth_sock: std::env::var("SSH_AUTH_SOCK")
                .ok()
                .filter(|sock| !sock.is_empty()),
        };
        let client =
            Arc::new(DaemonClient::connect_first(&self.sockets, info, DEFAULT_MAX_FRAME).await?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Drop `client` if it is still the shared one, so the next call reconnects.
    async fn forget(&self, client: &Arc<DaemonClient>) {
        let mut slot = self.client.lock().await;
        if slot.as_ref().is_some_and(|live| Arc::ptr_eq(live, client)) {
            *slot = None;
        }
    }
}

/// Wait for `call`'s reply, handing each progress event to `on_progress`
/// as it arrives, or, if `cancelled` completes first, tell the daemon to
/// abandon the call (a cancelled exec kills its remote process, a cancelled
/// transfer stops) and give it [`CANCEL_GRACE`] to confirm. Either way the
/// call is finished when this returns: nothing is left waiting on the
/// connection.
///
/// `on_progress` runs on the path that reads the reply, so it must not
/// wait: hand the event on (a channel, a watch) and return.
pub async fn finish(
    call: Call,
    cancelled: impl Future<Output = ()>,
    on_progress: impl FnMut(Progress),
) -> Result<Reply, ClientError> {
    let cannot = |_: Confirmation| -> Asked {
        Box::pin(std::future::ready((
            false,
            Some("this call cannot ask anyone for confirmation".to_owned()),
        )))
    };
    finish_asking(call, cancelled, on_progress, &cannot).await
}

/// The person's answer to a confirmation: allowed, and why not.
pub type Asked = std::pin::Pin<Box<dyn Future<Output = (bool, Option<String>)> + Send>>;

/// [`finish`], putting what the daemon wants confirmed to `ask`.
pub async fn finish_asking(
    mut call: Call,
    cancelled: impl Future<Output = ()>,
    mut on_progress: impl FnMut(Progress),
    ask: &(dyn Fn(Confirmation) -> Asked + Send + Sync),
) -> Result<Reply, ClientError> {
    tokio::select! {
        reply = done(&mut call, &mut on_progress, ask) => reply,
        () = cancelled => {
            call.cancel();
            let rest = done(&mut call, &mut on_progress, ask);
            match tokio::time::timeout(CANCEL_GRACE, rest).await {
                Ok(reply) => reply,
                Err(_) => Ok(Err(Error::new(
                    ErrorKind::Cancelled,
                    "the call was cancelled; sshmcpd did not confirm in time",
                ))),
            }
        }
    }
}

/// The call's final reply, passing progress events on. Samples of a
/// running command's output become progress too, with the latest line as
/// the message (MCP hosts show it, and reset their idle timeout on it).
async fn done(
    call: &mut Call,
    on_progress: &mut impl FnMut(Progress),
    ask: &(dyn Fn(Confirmation) -> Asked + Send + Sync),
) -> Result<Reply, ClientError> {
    let mut seen = 0u64;
    loop {
        match call.next_event().await? {
            Event::Done(reply) => return Ok(reply),
            Event::Confirm(confirmation) => {
                let (allowed, note) = ask(confirmation).await;
                call.confirm(allowed, note);
            }
            Event::Progress(progress) => on_progress(progress),
            Event::Output { data, .. } => {
                seen += data.len() as u64;
                on_progress(Progress {
                    done: seen,
                    total: None,
                    message: latest_line(&data),
                });
            }
        }
    }
}

/// The last non-blank line of `data`, as text a person can read: invalid
/// UTF-8 replaced, escape sequences and control characters dropped, what a
/// carriage return redrew kept, cut to [`MAX_LINE`] characters.
fn latest_line(data: &[u8]) -> Option<String> {
    const MAX_LINE: usize = 200;
    let text = String::from_utf8_lossy(data);
    let line = text
        .split('\n')
        .map(|line| {
            line.rsplit('\r')
                .find(|part| !part.trim().is_empty())
                .unwrap_or("")
        })
        .rfind(|line| !line.trim().is_empty())?;
    let mut clean = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI (`ESC [ ... final`) or a two-character escape.
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
            } else {
                chars.next();
            }
        } else if !c.is_control() {
            clean.push(c);
        }
    }
    let clean = clean.trim();
    (!clean.is_empty()).then(|| clean.chars().take(MAX_LINE).collect())
}

#[cfg(test)]
mod output_tests {
    use super::latest_line;

    #[test]
    fn the_latest_line_is_clean_text() {
        assert_eq!(latest_line(b"one\ntwo\n"), Some("two".into()));
        assert_eq!(latest_line(b"one\n\n  \n"), Some("one".into()));
        assert_eq!(
            latest_line(b"\x1b[1;32mPASS\x1b[0m test_a\n"),
            Some("PASS test_a".into())
        );
        assert_eq!(latest_line(b"10%\r50%\r100%"), Some("100%".into()));
        assert_eq!(latest_line(b"\n\n"), None);
        assert_eq!(latest_line(&[b'x'; 500]).map(|l| l.len()), Some(200));
    }
}
