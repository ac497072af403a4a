//! The MCP server: what the client sees at `initialize` (or
//! `server/discover`), and the bridge from a tool call to a daemon request.
//!
//! rmcp speaks both lifecycles over stdio: the 2025-11-25 one (and older),
//! which begins with `initialize`, and the 2026-07-28 one, where a client
//! may ask `server/discover` and then sends every request with its
//! protocol version and capabilities in `_meta`, no `initialize` at all.
//! Nothing here depends on which: what a request needs to know of its
//! client (its name, whether it takes tasks) comes from
//! `RequestContext`, which reads the request's `_meta` first and the
//! `initialize` parameters after.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::{ToolRoute, ToolRouter};
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams, GetTaskResult,
    Implementation, ProgressNotificationParam, ProgressToken, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};
use sshmcp_proto::client::ClientError;
use sshmcp_proto::{Error, ErrorKind, Progress, Reply, Request};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::daemon::{self, DaemonLink, McpClient};
use crate::tools;
use crate::tools::tasks::{self, Tasks};

/// Told to the model at `initialize`: what this server is for, in brief,
/// and what holds for every tool.
const INSTRUCTIONS: &str = "\
sshmcp runs commands and works with files on the user's SSH hosts, through a local daemon that \
keeps connections warm. `hosts` lists them; pass an alias as `host`. Remote paths are absolute \
or relative to the remote home. Everything runs with the remote user's rights: prefer \
read-only tools unless the user asked for a change. Reads may be answered from the daemon's \
cache, and then say `cached` and `age_ms`; `max_age_secs: 0` reads the host afresh. `batch` \
runs many independent calls at once.";

/// How long calls still in flight when stdin closes may go on before they
/// are cancelled. A quick command finishes and is answered; a long one is
/// cancelled on the daemon well before the client's follow-up SIGTERM
/// (MCP SDKs send it about two seconds after closing stdin).
const STDIN_CLOSED_GRACE: Duration = Duration::from_secs(1);

/// The shim's MCP service. rmcp shares it between all in-flight requests;
/// a clone (cheap: it is all shared handles) carries a call that runs on as
/// a task of this shim.
#[derive(Clone)]
pub struct SshMcp {
    daemon: Arc<DaemonLink>,
    tool_router: Arc<ToolRouter<Self>>,
    /// The `--tools` the shim was started with, if any, for the error that
    /// answers a call of a tool it leaves out.
    selection: Option<String>,
    /// Cancelled when the client closes stdin, which means "shut down".
    stdin_closed: CancellationToken,
    /// Calls that run on as MCP tasks.
    tasks: Tasks,
    /// Never sent on: it exists to be dropped. rmcp's request tasks, and
    /// the calls running as tasks of this shim, hold the service, so once
    /// every clone of this sender is gone, every tool call has finished
    /// (and sent its cancel, if it had to) and the process may exit without
    /// cutting one off.
    _running: mpsc::Sender<()>,
}

impl SshMcp {
    /// The service offering `tools`, chosen by `--tools selection` (every
    /// tool when `selection` is `None`).
    pub fn new(
        sockets: Vec<PathBuf>,
        tools: Vec<ToolRoute<Self>>,
        selection: Option<String>,
        stdin_closed: CancellationToken,
        running: mpsc::Sender<()>,
    ) -> Self {
        let mut tool_router = ToolRouter::new();
        for tool in tools {
            tool_router.add_route(tool);
        }
        SshMcp {
            daemon: Arc::new(DaemonLink::new(sockets)),
            tool_router: Arc::new(tool_router),
            selection,
            stdin_closed,
            tasks: Tasks::new(tasks::DEFAULT_AFTER_SECS),
            _running: running,
        }
    }

    /// The service, with calls that run over `secs` seconds becoming tasks
    /// for clients that take them.
    pub fn with_task_after(mut self, secs: u64) -> Self {
        self.tasks = Tasks::new(secs);
        self
    }

    /// The connection to the daemon.
    pub(crate) fn daemon_link(&self) -> &Arc<DaemonLink> {
        &self.daemon
    }

    /// Calls running as tasks.
    pub(crate) fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Whether tool `name` is offered: it exists and `--tools` takes it in.
    pub(crate) fn offers(&self, name: &str) -> bool {
        self.tool_router.has_route(name)
    }

    /// The `--tools` the shim was started with, if any.
    pub(crate) fn selection(&self) -> Option<&str> {
        self.selection.as_deref()
    }

    /// Why there is no tool `name` to call: it does not exist, or `--tools`
    /// left it out. Either way the message lists what can be called.
    fn no_such_tool(&self, name: &str) -> ErrorData {
        let offered: Vec<String> = self
            .tool_router
            .list_all()
            .into_iter()
            .map(|tool| tool.name.into_owned())
            .collect();
        let offered = offered.join(", ");
        let exists = tools::all().iter().any(|tool| tool.name() == name);
        let message = match &self.selection {
            Some(selection) if exists => format!(
                "tool `{name}` is not offered: sshmcp was started with `--tools {selection}`, \
                 which offers {offered}"
            ),
            _ => format!("unknown tool `{name}`; the tools are {offered}"),
        };
        ErrorData::invalid_params(message, None)
    }

    /// Send `request` to the daemon and wait for its reply. When the MCP
    /// client cancels the tool call, or shuts the shim down by closing stdin
    /// and the call does not finish within [`STDIN_CLOSED_GRACE`], the
    /// daemon's request is cancelled too. When the tool call carries a
    /// `progressToken`, the daemon's progress events for the request become
    /// MCP `notifications/progress`; when it runs as a task of this shim,
    /// they become the task's status message.
    pub(crate) async fn forward(
        &self,
        request: Request,
        context: &RequestContext<RoleServer>,
    ) -> Result<Reply, ClientError> {
        let mcp_client = context.client_info().map(|client| McpClient {
            name: client.name.clone(),
            version: client.version.clone(),
        });
        // Connecting can take a while (a stuck daemon has seconds to answer
        // the handshake); nothing has been sent yet, so a cancel here just
        // stops waiting.
        let call = tokio::select! {
            call = self.daemon.start(request, mcp_client) => call?,
            () = self.abandoned(context) => {
                return Ok(Err(Error::new(ErrorKind::Cancelled, "the call was cancelled")));
            }
        };
        let ask = crate::confirm::asker(context);
        let Some(token) = context.meta.get_progress_token() else {
            return daemon::finish_asking(call, self.abandoned(context), |_| {}, &ask).await;
        };
        // Only the latest progress is kept: a client slow to read its
        // notifications sees fewer of them, and the reply waits at most for
        // the one notification being written when it arrives.
        let (latest, updates) = watch::channel(None);
        let on_progress = move |progress| {
            latest.send_replace(Some(progress));
        };
        let reply = daemon::finish_asking(call, self.abandoned(context), on_progress, &ask);
        let (reply, ()) =
            tokio::join!(reply, notify_progress(context.peer.clone(), token, updates));
        reply
    }

    /// [`forward`](Self::forward) for requests that change nothing: one
    /// cut off by a daemon restart is simply asked again on a new connection.
    pub(crate) async fn forward_read_only(
        &self,
        request: Request,
        context: &RequestContext<RoleServer>,
    ) -> Result<Reply, ClientError> {
        match self.forward(request.clone(), context).await {
            Err(ClientError::Disconnected(_)) => self.forward(request, context).await,
            reply => reply,
        }
    }

    /// Completes when nobody wants the call's answer any more.
    fn abandoned(&self, context: &RequestContext<RoleServer>) -> impl Future<Output = ()> {
        let cancelled = context.ct.clone();
        let stdin_closed = self.stdin_closed.clone();
        async move {
            tokio::select! {
                () = cancelled.cancelled() => {}
                () = async {
                    stdin_closed.cancelled().await;
                    tokio::time::sleep(STDIN_CLOSED_GRACE).await;
                } => {}
            }
        }
    }
}

/// Send each progress update of one call to the MCP client as
/// `notifications/progress`, until the call is done (its sender dropped).
/// MCP wants `progress` to grow with every notification, so an update that
/// does not advance is left out.
async fn notify_progress(
    peer: Peer<RoleServer>,
    token: ProgressToken,
    mut updates: watch::Receiver<Option<Progress>>,
) {
    let mut sent: Option<u64> = None;
    while updates.changed().await.is_ok() {
        let Some(progress) = updates.borrow_and_update().clone() else {
            continue;
        };
        if sent.is_some_and(|sent| progress.done <= sent) {
            continue;
        }
        sent = Some(progress.done);
        let mut param = ProgressNotificationParam::new(token.clone(), progress.done as f64);
        if let Some(total) = progress.total {
            param = param.with_total(total as f64);
        }
        if let Some(message) = progress.message {
            param = param.with_message(message);
        }
        // The client is gone: nobody is left to tell.
        if peer.notify_progress(param).await.is_err() {
            return;
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SshMcp {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new(
                env!("CARGO_PKG_NAME"),
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(INSTRUCTIONS)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !self.tool_router.has_route(&request.name) {
            return Err(self.no_such_tool(&request.name));
        }
        if tasks::may_become_task(&request.name) && tasks::client_takes_tasks(&context) {
            let arguments = request.arguments.unwrap_or_default();
            return Ok(self.call_as_task(&request.name, arguments, context).await);
        }
        let call = ToolCallContext::new(self, request, context);
        self.tool_router.call(call).await
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.task_state(&request.task_id)
            .await
            .map(GetTaskResult::new)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.cancel_task_by_id(&request.task_id).await
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.update_task_by_id(&request.task_id).await
    }
}
