//! Hostile and careless clients: frames built to exhaust memory, clients
//! that never read, arguments out of range or able to break a shared SSH
//! connection, forged log lines, a full house of clients. Each must cost
//! only the client that sent it, never the daemon or another client.

mod common;

use std::time::{Duration, Instant};

use common::{
    RawClient, assert_daemon_serves, connect, eventually, exec_err, exec_ok, exec_request, hello,
    within,
};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ClientFrame, ClientInfo, ErrorKind, Hello, PROTO_VERSION, ReadFileRequest, Request, Response,
    StatRequest, encode,
};
use sshmcp_testkit::{Daemon, Fleet, bin_path, output_within};
use tokio::io::AsyncWriteExt;

/// Resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024
}

/// A frame with `payload` behind its 4-byte big-endian length.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

async fn status_ok(client: &DaemonClient) {
    match common::request(client, Request::Status).await {
        Ok(Response::Status(_)) => {}
        other => panic!("Status failed: {other:?}"),
    }
}

/// What a test that measures what a hostile client costs starts from: a
/// fleet, a daemon with `config` on it, a well-behaved client the daemon
/// has served, and the daemon's resident memory then, in MiB.
async fn baseline(config: &str) -> (Fleet, Daemon, DaemonClient, u64) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, config);
    let good = connect(daemon.socket()).await;
    status_ok(&good).await;
    let before = rss_mib(daemon.pid());
    (fleet, daemon, good, before)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eleven_byte_hello_claiming_a_2_pow_62_byte_string_gets_a_goodbye() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;

    // Hello (variant 0), proto_version 2, then the caller's binary name: a
    // string whose length (0xFD: a u64 follows) is 2^62.
    let mut payload = vec![0x00, 0x02, 0xFD];
    payload.extend_from_slice(&(1u64 << 62).to_le_bytes());
    assert_eq!(payload.len(), 11);
    let mut raw = RawClient::connect(&daemon).await;
    raw.write_bytes(&framed(&payload)).await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");

    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seven_byte_frame_claiming_a_gibibyte_leaves_the_daemon_small() {
    let (_fleet, daemon, good, before) = baseline("").await;

    // Hello, proto_version 2, a string of 2^30 bytes (0xFC: a u32 follows).
    let mut payload = vec![0x00, 0x02, 0xFC];
    payload.extend_from_slice(&(1u32 << 30).to_le_bytes());
    assert_eq!(payload.len(), 7);
    for _ in 0..8 {
        let mut raw = RawClient::connect(&daemon).await;
        raw.write_bytes(&framed(&payload)).await;
        raw.expect_goodbye().await;
    }
    let after = rss_mib(daemon.pid());
    assert!(
        after < before + 64,
        "daemon RSS went from {before} MiB to {after} MiB after frames claiming 1 GiB each"
    );
    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_never_reads_its_replies_cannot_grow_the_daemon() {
    let (_fleet, daemon, good, before) = baseline("").await;

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    let mut sent = 0u64;
    let started = Instant::now();
    // Write 200,000 Status requests, 1,000 to a write, and never read. A
    // daemon that stops reading makes the writes block: that is the point,
    // so a write that makes no progress for 2 s ends the flood.
    while sent < 200_000 && started.elapsed() < Duration::from_secs(60) {
        let mut batch = Vec::new();
        for id in sent..sent + 1000 {
            let frame = ClientFrame::Request {
                id,
                request: Request::Status,
            };
            batch.extend(framed(&encode(&frame).expect("encode Status")));
        }
        match tokio::time::timeout(Duration::from_secs(2), raw.stream.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(e)) => panic!("the daemon closed the connection: {e}"),
            Err(_) => break,
        }
    }
    let during = rss_mib(daemon.pid());
    eprintln!("wrote {sent} unread Status requests; daemon RSS {before} MiB -> {during} MiB");
    assert!(
        sent < 200_000,
        "the daemon kept reading all {sent} requests although none of the replies were read"
    );
    assert!(
        during < before + 64,
        "daemon RSS grew from {before} MiB to {during} MiB for a client that does not read"
    );
    // Another client is served meanwhile.
    within(
        Duration::from_secs(10),
        "Status beside a stalled client",
        status_ok(&good),
    )
    .await;
    drop(raw);
    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unread_exec_replies_count_against_the_memory_cap() {
    let (_fleet, daemon, good, before) = baseline("[limits]\nmax_inflight_per_client = 16\n").await;

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    for id in 0..64 {
        let mut exec = exec_request("host1", "head -c 1048576 /dev/zero");
        exec.max_output_bytes = Some(1 << 20);
        let frame = framed(
            &encode(&ClientFrame::Request {
                id,
                request: Request::Exec(exec),
            })
            .expect("encode Exec"),
        );
        // Once 16 are in flight the daemon stops reading: stop writing then.
        if tokio::time::timeout(Duration::from_secs(2), raw.stream.write_all(&frame))
            .await
            .is_err()
        {
            break;
        }
    }
    let reserved = || async {
        match common::request(&good, Request::Stats).await {
            Ok(Response::Stats(stats)) => stats.resources.memory_reserved_bytes,
            other => panic!("Stats failed: {other:?}"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = reserved().await;
    while seen < 8 << 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        seen = reserved().await;
    }
    let during = rss_mib(daemon.pid());
    eprintln!(
        "unread 1 MiB exec replies: {} MiB reserved, RSS {before} MiB -> {during} MiB",
        seen >> 20
    );
    assert!(
        seen >= 8 << 20,
        "replies waiting for a client that does not read should be counted as reserved memory; \
         stats say {seen} bytes"
    );
    assert!(
        during < before + 16 * 3 + 32,
        "daemon RSS grew from {before} MiB to {during} MiB with 16 unread 1 MiB replies"
    );
    drop(raw);
    eventually(
        || daemon.is_running(),
        Duration::from_secs(1),
        "the daemon to still run",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while reserved().await > 1 << 20 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reserved().await <= 1 << 20,
        "reservations are released once the client is gone"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_range_numbers_are_bad_requests_naming_the_argument_and_its_range() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;

    let mut exec = exec_request("host1", "true");
    exec.timeout_secs = Some(1 << 63);
    let err = exec_err(&client, exec).await;
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("`timeout_secs`"), "{}", err.message);
    assert!(err.message.contains("1 to 86400"), "{}", err.message);

    let mut exec = exec_request("host1", "true");
    exec.max_output_bytes = Some(u64::MAX);
    let err = exec_err(&client, exec).await;
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(
        err.message.contains("`max_output_bytes`"),
        "{}",
        err.message
    );

    let read = Request::ReadFile(ReadFileRequest {
        max_age_secs: None,
        host: "host1".into(),
        path: "/etc/hostname".into(),
        offset: u64::MAX,
        length: None,
    });
    let err = common::request(&client, read).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("`offset`"), "{}", err.message);

    assert_daemon_serves(&daemon, &client).await;
}

/// A daemon whose connection to `host1` runs one client's command that
/// outlives the bad request another client, `bad`, is about to send on
/// the same pooled connection.
struct LongExecBeside {
    _fleet: Fleet,
    daemon: Daemon,
    _others: DaemonClient,
    bad: DaemonClient,
    /// The command's call, for [`survived`].
    running: sshmcp_proto::client::Call,
}

async fn long_exec_beside_a_bad_client() -> LongExecBeside {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let others = connect(daemon.socket()).await;
    let bad = connect(daemon.socket()).await;
    exec_ok(&daemon, &others, exec_request("host1", "true")).await;
    let running = others
        .start(Request::Exec(exec_request(
            "host1",
            "sleep 1; echo survived",
        )))
        .expect("start a long exec");
    LongExecBeside {
        _fleet: fleet,
        daemon,
        _others: others,
        bad,
        running,
    }
}

async fn survived(mut call: sshmcp_proto::client::Call, daemon: &Daemon) {
    let reply = within(Duration::from_secs(30), "the long exec's reply", async {
        loop {
            match call.next_event().await {
                Ok(sshmcp_proto::client::Event::Done(reply)) => return reply,
                Ok(_) => continue,
                Err(e) => panic!("lost the daemon: {e}"),
            }
        }
    })
    .await;
    match reply {
        Ok(Response::Exec(out)) => assert_eq!(out.stdout, b"survived\n"),
        other => panic!(
            "another client's exec on the same connection failed: {other:?}\ndaemon log:\n{}",
            daemon.log()
        ),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_with_a_nul_byte_is_refused_and_other_execs_on_the_connection_finish() {
    let s = long_exec_beside_a_bad_client().await;

    let err = exec_err(&s.bad, exec_request("host1", "echo a\0b")).await;
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("NUL"), "{}", err.message);
    survived(s.running, &s.daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_over_128_kib_is_refused_and_other_execs_on_the_connection_finish() {
    let s = long_exec_beside_a_bad_client().await;

    let command = format!("echo {}", "x".repeat(300 * 1024));
    let err = exec_err(&s.bad, exec_request("host1", &command)).await;
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("`command`"), "{}", err.message);
    assert!(err.message.contains("stdin"), "{}", err.message);
    survived(s.running, &s.daemon).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_byte_in_a_remote_path_is_refused_and_the_shared_sftp_session_survives() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let read = || {
        // Straight to the host (not the cache): the session is the point.
        Request::ReadFile(ReadFileRequest {
            max_age_secs: Some(0),
            host: "host1".into(),
            path: "/etc/hostname".into(),
            offset: 0,
            length: None,
        })
    };
    assert!(matches!(
        common::request(&client, read()).await,
        Ok(Response::ReadFile(_))
    ));
    let bad = Request::Stat(StatRequest {
        max_age_secs: None,
        host: "host1".into(),
        path: "/etc/\0hostname".into(),
        follow_symlinks: false,
    });
    let err = common::request(&client, bad).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("NUL"), "{}", err.message);
    // Many reads at once over the same shared session, straight after.
    let reads: Vec<_> = (0..16)
        .map(|_| client.start(read()).expect("start a read"))
        .collect();
    for call in reads {
        let reply = within(Duration::from_secs(30), "a read_file reply", call.reply())
            .await
            .expect("the daemon answers");
        assert!(matches!(reply, Ok(Response::ReadFile(_))), "{reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_name_with_a_newline_cannot_forge_a_log_line() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let info = ClientInfo {
        mcp_client_version: None,
        binary: "evil\nFORGED-LINE refused a client".into(),
        version: "1".into(),
        mcp_client: Some("host\nFORGED-LINE too".into()),
        ssh_auth_sock: None,
    };
    let client = DaemonClient::connect(daemon.socket(), info, sshmcp_proto::DEFAULT_MAX_FRAME)
        .await
        .expect("connect");
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    let _ = exec_err(&client, exec_request("no-such-host", "true")).await;
    let log = daemon.log();
    assert!(
        log.contains("FORGED-LINE"),
        "the caller should be logged:\n{log}"
    );
    assert!(
        !log.lines().any(|line| line.starts_with("FORGED-LINE")),
        "a caller's name started a log line of its own:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sshmcpctl_is_served_when_max_clients_ordinary_clients_are_connected() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[daemon]\nmax_clients = 2\n");
    let first = common::connect_when_free(daemon.socket()).await;
    let second = common::connect_when_free(daemon.socket()).await;
    status_ok(&first).await;
    status_ok(&second).await;

    // A third ordinary client is turned away.
    let mut raw = RawClient::connect(&daemon).await;
    raw.send(&hello(PROTO_VERSION)).await;
    let bye = raw.expect_goodbye().await;
    assert!(bye.message.contains("max_clients"), "{bye:?}");

    // The admin tool gets in, for admin requests only.
    let ctl = output_within(
        std::process::Command::new(bin_path("sshmcpctl"))
            .arg("--socket")
            .arg(daemon.socket())
            .arg("status"),
        Duration::from_secs(30),
    );
    assert!(
        ctl.status.success(),
        "sshmcpctl status failed with max_clients taken: {}\ndaemon log:\n{}",
        String::from_utf8_lossy(&ctl.stderr),
        daemon.log()
    );
    let admin = DaemonClient::connect(
        daemon.socket(),
        ClientInfo {
            binary: "sshmcpctl".into(),
            version: "0".into(),
            ..ClientInfo::default()
        },
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .expect("sshmcpctl is let in past max_clients");
    status_ok(&admin).await;
    let err = exec_err(&admin, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::Overloaded, "{err:?}");
    assert!(err.message.contains("admin"), "{}", err.message);
}

/// A small deterministic generator (xorshift64*), so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// A payload that is random, or a valid frame's encoding mutated: bytes
/// flipped, cut short, grown, or with a length prefix made huge.
fn hostile_payload(rng: &mut Rng, valid: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(4) {
        0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        _ => {
            let mut bytes = valid[rng.below(valid.len() as u64) as usize].clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len() as u64) as usize;
                match rng.below(4) {
                    0 if !bytes.is_empty() => bytes[at] = rng.next() as u8,
                    1 => bytes.truncate(at),
                    2 => bytes.insert(at, [0xFB, 0xFC, 0xFD, 0xFE][rng.below(4) as usize]),
                    _ => bytes.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
                }
            }
            bytes
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thousands_of_random_and_mutated_frames_leave_the_daemon_serving() {
    let (_fleet, daemon, good, before) = baseline("").await;

    let valid: Vec<Vec<u8>> = [
        hello(PROTO_VERSION),
        ClientFrame::Hello(Hello {
            proto_version: PROTO_VERSION,
            client: ClientInfo {
                mcp_client_version: None,
                binary: "x".into(),
                version: "y".into(),
                mcp_client: Some("z".into()),
                ssh_auth_sock: Some("/tmp/agent".into()),
            },
        }),
        ClientFrame::Request {
            id: 1,
            request: Request::Exec(exec_request("host1", "echo hi")),
        },
        ClientFrame::Request {
            id: 2,
            request: Request::Status,
        },
        ClientFrame::Cancel { id: 1 },
    ]
    .iter()
    .map(|frame| encode(frame).expect("encode"))
    .collect();

    let mut rng = Rng(0x5EED_2026_1129);
    let frames = 3000;
    for i in 0..frames {
        // Half of the connections say Hello properly first, so the hostile
        // frame reaches the request path too.
        let mut raw = if i % 2 == 0 {
            RawClient::connect_with_hello(&daemon).await
        } else {
            RawClient::connect(&daemon).await
        };
        let payload = hostile_payload(&mut rng, &valid);
        let mut bytes = framed(&payload);
        if rng.below(16) == 0 {
            // A length header that lies about the payload.
            bytes[..4].copy_from_slice(&(rng.next() as u32).to_be_bytes());
        }
        // The daemon may close first; then the write fails, which is fine.
        let _ = raw.stream.write_all(&bytes).await;
        let _ = raw.stream.shutdown().await;
        // Read whatever comes back (a Goodbye, a reply) until it closes.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let mut sink = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw.stream, &mut sink).await;
        })
        .await;
    }
    let after = rss_mib(daemon.pid());
    eprintln!("{frames} hostile frames: daemon RSS {before} MiB -> {after} MiB");
    assert!(
        after < before + 64,
        "daemon RSS grew from {before} MiB to {after} MiB"
    );
    assert_daemon_serves(&daemon, &good).await;
}

#[test]
fn a_socket_directory_open_to_others_is_tightened_and_the_log_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sockets = dir.path().join("open");
    std::fs::create_dir(&sockets).expect("create the socket directory");
    std::fs::set_permissions(&sockets, std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    let socket = sockets.join("sshmcpd.sock");
    let daemon =
        Daemon::start_with_config_text(&format!("[daemon]\nsocket = \"{}\"\n", socket.display()));
    let mode = std::fs::metadata(&sockets)
        .expect("the socket directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "mode {mode:o}");
    let log = daemon.log();
    assert!(
        log.contains("changed its mode to 0700"),
        "the daemon should say it tightened the directory:\n{log}"
    );
}
