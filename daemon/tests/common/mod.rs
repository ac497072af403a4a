//! Shared helpers for the daemon's end-to-end tests: a protocol client on
//! the daemon's socket, bounded waits, and markers that find a test's own
//! remote processes.

#![allow(dead_code)]

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ClientFrame, ClientInfo, DaemonFrame, Error, ExecOutput, ExecRequest, Hello, HostStats,
    PROTO_VERSION, Reply, Request, Response, decode, encode,
};
use sshmcp_testkit::{Daemon, SshServer, unique_digits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

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

/// How long the daemon may take to answer one raw frame.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// A client that writes frames by hand, to send what the real client never
/// would.
pub struct RawClient {
    pub stream: UnixStream,
}

impl RawClient {
    pub async fn connect(daemon: &Daemon) -> RawClient {
        let stream = UnixStream::connect(daemon.socket())
            .await
            .expect("connect to the daemon's socket");
        RawClient { stream }
    }

    /// Connects and completes the handshake.
    pub async fn connect_with_hello(daemon: &Daemon) -> RawClient {
        let mut raw = RawClient::connect(daemon).await;
        raw.send(&hello(PROTO_VERSION)).await;
        match raw.read().await {
            Some(DaemonFrame::Welcome(welcome)) => assert_eq!(welcome.proto_version, PROTO_VERSION),
            other => panic!("expected Welcome, got {other:?}"),
        }
        raw
    }

    pub async fn write_bytes(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .await
            .expect("write to the daemon");
    }

    pub async fn send(&mut self, frame: &ClientFrame) {
        let payload = encode(frame).expect("encode a client frame");
        let len = u32::try_from(payload.len()).expect("frame fits a u32 length");
        let mut bytes = len.to_be_bytes().to_vec();
        bytes.extend_from_slice(&payload);
        self.write_bytes(&bytes).await;
    }

    /// The next frame from the daemon; `None` once it has closed the
    /// connection.
    pub async fn read(&mut self) -> Option<DaemonFrame> {
        let read = async {
            let mut header = [0u8; 4];
            if self.stream.read_exact(&mut header).await.is_err() {
                return None;
            }
            let mut payload = vec![0u8; u32::from_be_bytes(header) as usize];
            self.stream
                .read_exact(&mut payload)
                .await
                .expect("the daemon sends whole frames");
            Some(decode::<DaemonFrame>(&payload).expect("the daemon sends valid frames"))
        };
        within(FRAME_TIMEOUT, "a frame from the daemon", read).await
    }

    /// Reads the daemon's parting `Goodbye`, then checks that it closed the
    /// connection.
    pub async fn expect_goodbye(&mut self) -> Error {
        let bye = match self.read().await {
            Some(DaemonFrame::Goodbye(error)) => error,
            other => panic!("expected Goodbye, got {other:?}"),
        };
        assert_eq!(
            self.read().await,
            None,
            "the daemon should close the connection after Goodbye ({bye:?})"
        );
        bye
    }
}

pub fn hello(proto_version: u32) -> ClientFrame {
    ClientFrame::Hello(Hello {
        proto_version,
        client: ClientInfo {
            binary: "raw-test-client".into(),
            version: "9.9.9".into(),
            ..ClientInfo::default()
        },
    })
}

/// The daemon still serves a well-behaved client, and runs commands for it.
pub async fn assert_daemon_serves(daemon: &Daemon, client: &sshmcp_proto::client::DaemonClient) {
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
    let out = exec_ok(daemon, client, exec_request("host1", "echo alive")).await;
    assert_eq!(out.stdout, b"alive\n");
    let fresh = connect(daemon.socket()).await;
    let out = exec_ok(daemon, &fresh, exec_request("host1", "echo new")).await;
    assert_eq!(out.stdout, b"new\n");
}
