//! Shared helpers for the daemon's end-to-end tests: a protocol client on
//! the daemon's socket, bounded waits, and markers that find a test's own
//! remote processes.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ClientInfo, Error, ExecOutput, ExecRequest, HostStats, Reply, Request, Response,
};
use sshmcp_testkit::{Daemon, SshServer, unique_digits};

/// The longest any single reply from the daemon may take in these tests.
/// Far above what any request needs; it only turns a hang into a failure.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

pub async fn connect(socket: &Path) -> DaemonClient {
    DaemonClient::connect(
        socket,
        ClientInfo {
            binary: "daemon-tests".into(),
            version: "0".into(),
            ..ClientInfo::default()
        },
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .expect("connect to the daemon")
}

pub fn exec_request(host: &str, command: &str) -> ExecRequest {
    ExecRequest {
        host: host.into(),
        command: command.into(),
        stdin: None,
        timeout_secs: None,
        max_output_bytes: None,
    }
}

pub async fn exec(client: &DaemonClient, request: ExecRequest) -> Result<ExecOutput, Error> {
    match self::request(client, Request::Exec(request)).await {
        Ok(Response::Exec(out)) => Ok(out),
        Ok(other) => panic!("unexpected response {other:?}"),
        Err(e) => Err(e),
    }
}

/// Sends `request` and waits (at most [`REPLY_TIMEOUT`]) for its reply.
pub async fn request(client: &DaemonClient, request: Request) -> Reply {
    within(REPLY_TIMEOUT, "the daemon's reply", client.request(request))
        .await
        .expect("daemon answers")
}

/// Runs an exec that must succeed; on failure the panic shows the daemon's
/// log.
pub async fn exec_ok(daemon: &Daemon, client: &DaemonClient, request: ExecRequest) -> ExecOutput {
    let what = format!("{} on {}", request.command, request.host);
    exec(client, request)
        .await
        .unwrap_or_else(|e| panic!("exec `{what}` failed: {e:?}\ndaemon log:\n{}", daemon.log()))
}

/// Runs an exec that must fail, and returns its error.
pub async fn exec_err(client: &DaemonClient, request: ExecRequest) -> Error {
    let what = format!("{} on {}", request.command, request.host);
    match exec(client, request).await {
        Ok(out) => panic!("exec `{what}` succeeded but should have failed: {out:?}"),
        Err(e) => e,
    }
}

/// The pool counters of host `alias`, from a `Stats` request.
pub async fn host_stats(client: &DaemonClient, alias: &str) -> HostStats {
    match request(client, Request::Stats).await {
        Ok(Response::Stats(stats)) => stats
            .hosts
            .into_iter()
            .find(|h| h.alias == alias)
            .unwrap_or_else(|| panic!("Stats lists no host {alias}")),
        other => panic!("Stats failed: {other:?}"),
    }
}

/// Awaits `future` for at most `limit`, panicking with `what` otherwise.
pub async fn within<F: Future>(limit: Duration, what: &str, future: F) -> F::Output {
    tokio::time::timeout(limit, future)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}

/// Polls `cond` without blocking the runtime until it holds, or panics
/// after `limit` naming `what` was awaited.
pub async fn eventually(mut cond: impl FnMut() -> bool, limit: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(5);
    loop {
        if cond() {
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// A remote command that sleeps for a very long time and is found again
/// with [`remote_sleepers`]: `sleep 1000.<digits>`, where the fraction is
/// unique to the call, so the marker is in the sleeping process's own
/// command line (and in its shell's, if the shell stays).
pub struct MarkedSleep {
    pub command: String,
    pattern: String,
}

impl MarkedSleep {
    pub fn new() -> MarkedSleep {
        let digits = unique_digits();
        MarkedSleep {
            command: format!("sleep 1000.{digits}"),
            pattern: format!("sleep 1000[.]{digits}"),
        }
    }

    /// Pids of the test user's live processes that carry this marker.
    pub fn pids(&self, server: &SshServer) -> Vec<u32> {
        server.pids_of_user_matching(&self.pattern)
    }
}
