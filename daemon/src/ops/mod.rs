//! One file per operation, each an [`Op`]: what it needs from the request,
//! the memory it may hold, and how it runs. Ops know nothing of sockets,
//! limits, metrics or logs: the dispatcher wraps them all alike, so what
//! wraps every op (and, next, the cache, policy and audit) lives there once.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use sshmcp_proto::Error;
use tokio_util::sync::CancellationToken;

use crate::pool::Host;
use crate::progress::Reporter;
use crate::state::Daemon;

mod drain;
mod exec;
mod hosts;
mod job_output;
mod job_signal;
mod list_dir;
mod mkdir;
mod read_file;
mod reload;
mod remove;
mod rename;
mod shell_close;
mod shell_exec;
mod shell_open;
mod stat;
mod stats;
mod status;
mod sync;
mod transfer;
mod warm;
pub mod work_job;
mod write_file;

pub use drain::Drain;
pub use hosts::Hosts;
pub use reload::Reload;
pub use stats::Stats;
pub use status::Status;
pub use warm::Warm;

/// Who sent a request, for logs and the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The calling user, from the socket's peer credentials.
    pub uid: Option<u32>,
    /// The calling process, from the socket's peer credentials.
    pub pid: Option<i32>,
    /// The calling process's executable (`/proc/PID/exe` when it connected).
    pub exe: Option<String>,
    /// The calling binary, from its Hello (escaped, cut short).
    pub binary: String,
    /// The MCP client's name, when the caller is the shim.
    pub mcp_client: Option<String>,
    /// The MCP client's version, when the caller is the shim.
    pub mcp_client_version: Option<String>,
    /// The connection's requests-per-second bucket, when limited.
    pub rate: Option<Arc<crate::rate::ClientRate>>,
}

/// What the dispatcher hands every op: who asked, how to stop, where
/// progress goes, and the host already resolved.
pub struct Context<'a> {
    /// The daemon's shared state.
    pub daemon: &'a Daemon,
    /// The request's id on its connection.
    pub id: u64,
    /// Who sent the request.
    pub caller: &'a Caller,
    /// Cancelled when the client cancels or goes away.
    pub cancel: &'a CancellationToken,
    /// Progress events for the client.
    pub progress: &'a Reporter,
    /// When the request arrived; durations count from here.
    pub started: Instant,
    /// The host the request targets, resolved once by the dispatcher.
    pub host: Option<Arc<Host>>,
}

impl Context<'_> {
    /// The request's host, resolved by the dispatcher; an op that targets
    /// a host always has one.
    pub fn host(&self) -> Result<&Arc<Host>, Error> {
        self.host
            .as_ref()
            .ok_or_else(|| Error::internal("a host op reached its op without a resolved host"))
    }
}

/// One operation of the daemon.
pub trait Op: Sized {
    /// What a successful run returns.
    type Output;

    /// Bytes of memory this op may hold at once (its buffers and its reply
    /// on the way out), reserved under the memory cap before it runs; 0 for
    /// small work. `max_frame` bounds what one reply can carry.
    fn reservation(&self, _max_frame: usize) -> u64 {
        0
    }

    /// Run the op to its end, or until `ctx.cancel` fires.
    fn run(self, ctx: &Context<'_>) -> impl Future<Output = Result<Self::Output, Error>> + Send;
}
