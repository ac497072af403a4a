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
use sshmcp_proto::{ClientInfo, DEFAULT_MAX_FRAME, Error, ErrorKind, Progress, Reply, Request};
use tokio::sync::Mutex;

/// How long a cancelled call waits for the daemon to confirm the cancel.
/// Long enough for the `Cancel` frame to reach the daemon and the remote
/// process to be signalled; short enough that an MCP client shutting the
/// shim down is not kept waiting.
pub const CANCEL_GRACE: Duration = Duration::from_millis(500);

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
        mcp_client: Option<String>,
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
        mcp_client: &Option<String>,
    ) -> Result<Arc<DaemonClient>, ClientError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        *slot = None;
        let info = ClientInfo {
            binary: env!("CARGO_PKG_NAME").to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            mcp_client: mcp_client.clone(),
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
    mut call: Call,
    cancelled: impl Future<Output = ()>,
    mut on_progress: impl FnMut(Progress),
) -> Result<Reply, ClientError> {
    tokio::select! {
        reply = done(&mut call, &mut on_progress) => reply,
        () = cancelled => {
            call.cancel();
            match tokio::time::timeout(CANCEL_GRACE, done(&mut call, &mut on_progress)).await {
                Ok(reply) => reply,
                Err(_) => Ok(Err(Error::new(
                    ErrorKind::Cancelled,
                    "the call was cancelled; sshmcpd did not confirm in time",
                ))),
            }
        }
    }
}

/// The call's final reply, passing progress events on and skipping output.
async fn done(
    call: &mut Call,
    on_progress: &mut impl FnMut(Progress),
) -> Result<Reply, ClientError> {
    loop {
        match call.next_event().await? {
            Event::Done(reply) => return Ok(reply),
            Event::Progress(progress) => on_progress(progress),
            Event::Output { .. } => {}
        }
    }
}
