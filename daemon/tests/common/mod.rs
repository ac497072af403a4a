//! Shared helpers for the daemon's end-to-end tests: a protocol client on
//! the daemon's socket, bounded waits, markers that find a test's own
//! remote processes, and the host, requests and trees the file tests share.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ClientFrame, ClientInfo, DaemonFrame, Direction, Error, ExecOutput, ExecRequest, Hello,
    HostStats, PROTO_VERSION, Reply, Request, Response, SyncRequest, SyncResult, TransferRequest,
    TransferResult, decode, encode,
};
use sshmcp_testkit::{Daemon, DaemonOptions, Fleet, SshServer, bin_path, test_user, unique_digits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The longest any single reply from the daemon may take in these tests.
/// Far above what any request needs; it only turns a hang into a failure.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// [`connect`], waiting while the daemon is full: a connection that just
/// closed (such as the test kit's readiness probe) holds its client slot
/// until the daemon has seen it go.
pub async fn connect_when_free(socket: &Path) -> DaemonClient {
    for _ in 0..200 {
        let info = ClientInfo {
            binary: "daemon-tests".into(),
            version: "0".into(),
            ..ClientInfo::default()
        };
        match DaemonClient::connect(socket, info, sshmcp_proto::DEFAULT_MAX_FRAME).await {
            Ok(client) => return client,
            Err(sshmcp_proto::client::ClientError::Refused(e))
                if e.kind == sshmcp_proto::ErrorKind::Overloaded =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("connect to the daemon: {e:?}"),
        }
    }
    panic!("the daemon stayed full for 10 s");
}

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
        stop_after_secs: None,
        detach: false,
        background: false,
        on_timeout: Default::default(),
        cache_secs: None,
        host: host.into(),
        command: command.into(),
        stdin: None,
        timeout_secs: None,
        max_output_bytes: None,
        sudo: false,
        sudo_user: None,
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
/// A page of `job`'s output from the offsets given, waiting up to `wait`
/// seconds for something new.
pub async fn job_page(
    client: &DaemonClient,
    job: &str,
    out: u64,
    err: u64,
    wait: u64,
) -> sshmcp_proto::JobOutput {
    let req = sshmcp_proto::JobOutputRequest {
        as_exec: None,
        job_id: job.into(),
        stdout_offset: Some(out),
        stderr_offset: Some(err),
        wait_secs: Some(wait),
        max_bytes: None,
    };
    match request(client, Request::JobOutput(req)).await {
        Ok(Response::JobOutput(page)) => page,
        other => panic!("job_output: {other:?}"),
    }
}

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

/// An SFTP server of the test's own in place of OpenSSH's: a file in a
/// fresh directory the test user's sshd session can read (the build
/// directory may sit under a home that user cannot enter), and the
/// `Subsystem sftp` command that runs it.
pub struct SftpSubsystem {
    command: String,
    _dir: tempfile::TempDir,
}

impl SftpSubsystem {
    /// The testkit's program `name` (see [`bin_path`]), run as it is.
    pub fn testkit_program(name: &str) -> SftpSubsystem {
        let program = std::fs::read(bin_path(name))
            .unwrap_or_else(|e| panic!("cannot read the testkit's {name}: {e}"));
        let (dir, path) = readable_file(name, &program, 0o755);
        SftpSubsystem {
            command: path.display().to_string(),
            _dir: dir,
        }
    }

    /// OpenSSH's own sftp-server logging each request it serves (`-l
    /// INFO`) to the file returned beside it, for tests that count what
    /// reached the server.
    pub fn logging_openssh() -> (SftpSubsystem, PathBuf) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("open the directory to the test user");
        let log = dir.path().join("sftp-server.log");
        let subsystem = SftpSubsystem {
            command: format!(
                "/usr/lib/openssh/sftp-server -e -l INFO 2>>{}",
                log.display()
            ),
            _dir: dir,
        };
        (subsystem, log)
    }

    /// A perl script, run by `/usr/bin/perl`.
    pub fn perl_script(name: &str, text: &str) -> SftpSubsystem {
        let (dir, path) = readable_file(name, text.as_bytes(), 0o644);
        SftpSubsystem {
            command: format!("/usr/bin/perl {}", path.display()),
            _dir: dir,
        }
    }
}

/// `contents` as `name`, with `mode`, in a fresh directory anyone may enter.
fn readable_file(name: &str, contents: &[u8], mode: u32) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("open the directory to the test user");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {name}: {e}"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {name}: {e}"));
    (dir, path)
}

/// A daemon serving one host, `host1`, a client connected to it, and a
/// fresh directory on that host that the test user owns: what the file
/// tests start from. Fields drop in order: the daemon goes before the
/// fleet it connects to, the fleet before the SFTP server its sshd runs.
pub struct ScratchHost {
    pub daemon: Daemon,
    pub client: DaemonClient,
    _fleet: Fleet,
    _sftp: Option<SftpSubsystem>,
    /// The directory on the host.
    pub remote: tempfile::TempDir,
}

impl ScratchHost {
    /// A daemon with `config` (TOML added to the fleet's) and `options`,
    /// whose host's sshd runs `sftp`, or OpenSSH's sftp-server when `None`.
    pub async fn start(
        sftp: Option<SftpSubsystem>,
        config: &str,
        options: DaemonOptions,
    ) -> ScratchHost {
        let mut fleet = Fleet::builder();
        if let Some(sftp) = &sftp {
            fleet = fleet.sshd_config_line(&format!("Subsystem sftp {}", sftp.command));
        }
        let fleet = fleet.start();
        let daemon = Daemon::start_with(&fleet, config, options);
        let client = connect(daemon.socket()).await;
        ScratchHost {
            daemon,
            client,
            _fleet: fleet,
            _sftp: sftp,
            remote: test_user().scratch_dir(),
        }
    }

    /// `rel` in the directory on the host.
    pub fn r(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote.path().display())
    }

    /// Runs `command` on the host, in the directory there, and returns its
    /// stdout; it must exit 0.
    pub async fn sh(&self, command: &str) -> String {
        let command = format!("cd '{}' && {command}", self.remote.path().display());
        let out = exec_ok(&self.daemon, &self.client, exec_request("host1", &command)).await;
        assert_eq!(out.exit_code, Some(0), "{command}: {out:?}");
        String::from_utf8(out.stdout).expect("UTF-8 output")
    }

    /// A transfer that must succeed; on failure the panic shows the
    /// daemon's log.
    pub async fn transfer_ok(&self, req: TransferRequest) -> TransferResult {
        let what = format!("{req:?}");
        match request(&self.client, Request::Transfer(req)).await {
            Ok(Response::Transfer(t)) => t,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }

    /// A sync that must succeed; on failure the panic shows the daemon's
    /// log.
    pub async fn sync_ok(&self, req: SyncRequest) -> SyncResult {
        let what = format!("{req:?}");
        match request(&self.client, Request::Sync(req)).await {
            Ok(Response::Sync(s)) => s,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }
}

/// An upload of `local` to `remote` on `host1` with every option off: not
/// recursive, no resume, no verify, symlinks not followed. Tests turn on
/// what they need.
pub fn upload(local: &Path, remote: &str) -> TransferRequest {
    TransferRequest {
        job_after_secs: None,
        host: "host1".into(),
        direction: Direction::Upload,
        local_path: local.to_str().expect("a UTF-8 local path").into(),
        remote_path: remote.into(),
        recursive: false,
        resume: false,
        verify: false,
        follow_symlinks: false,
    }
}

/// [`upload`], the other way.
pub fn download(remote: &str, local: &Path) -> TransferRequest {
    TransferRequest {
        direction: Direction::Download,
        ..upload(local, remote)
    }
}

/// A sync of the local directory `local` to `remote` on `host1`, with every
/// option off: no delete, no dry run, no checksum.
pub fn sync_up(local: &Path, remote: &str) -> SyncRequest {
    SyncRequest {
        job_after_secs: None,
        host: "host1".into(),
        direction: Direction::Upload,
        local_dir: local.to_str().expect("a UTF-8 local path").into(),
        remote_dir: remote.into(),
        delete: false,
        dry_run: false,
        checksum: false,
    }
}

/// [`sync_up`], the other way.
pub fn sync_down(remote: &str, local: &Path) -> SyncRequest {
    SyncRequest {
        direction: Direction::Download,
        ..sync_up(local, remote)
    }
}

/// Every path under the local directory `root`, relative; symlinks are
/// listed, not entered.
pub fn local_tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let rel = path.strip_prefix(root).expect("a path under the root");
            out.insert(rel.display().to_string());
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    out
}

/// `paths` as a set, to compare with a tree.
pub fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}
