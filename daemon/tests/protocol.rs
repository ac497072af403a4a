//! The socket protocol end to end: bad input ends one connection only,
//! replies come out of order, and only the daemon's own user gets in.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    FRAME_TIMEOUT, MarkedSleep, RawClient, assert_daemon_serves, connect, eventually, exec_ok,
    exec_request, hello, within,
};
use sshmcp_proto::client::{Call, Event};
use sshmcp_proto::{
    ClientFrame, ClientInfo, DaemonFrame, ErrorKind, PROTO_VERSION, Reply, Request, Response,
    encode,
};
use sshmcp_testkit::{Daemon, Fleet, bin_path, output_within, test_user, wait_for};
use tokio::io::AsyncWriteExt;

/// The uid of `nobody`, a user that is not the daemon's.
const NOBODY: u32 = 65534;

#[tokio::test(flavor = "multi_thread")]
async fn garbage_frame_gets_a_goodbye_and_closes_only_that_connection() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;
    exec_ok(&daemon, &good, exec_request("host1", "true")).await;

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    raw.write_bytes(&[0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 0xff, 0x00, 0x13, 0x37])
        .await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");

    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_instead_of_hello_gets_a_goodbye() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;

    let mut raw = RawClient::connect(&daemon).await;
    raw.write_bytes(&[0, 0, 0, 5, 0xfa, 0xce, 0xb0, 0x0c, 0x42])
        .await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");
    assert!(bye.message.contains("Hello"), "{bye:?}");

    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_length_header_gets_a_goodbye_naming_max_frame() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    raw.write_bytes(&[0xff, 0xff, 0xff, 0xff]).await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");
    assert!(bye.message.contains("max_frame"), "{bye:?}");

    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn truncated_frame_ends_that_connection_only() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    raw.write_bytes(&[0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .await;
    raw.stream
        .shutdown()
        .await
        .expect("half-close the raw client");
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");
    drop(raw);

    // The same, but the client vanishes without waiting for an answer.
    let mut raw = RawClient::connect_with_hello(&daemon).await;
    raw.write_bytes(&[0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        .await;
    drop(raw);

    assert_daemon_serves(&daemon, &good).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn version_mismatch_gets_a_goodbye_naming_both_versions() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");

    let mut raw = RawClient::connect(&daemon).await;
    raw.send(&hello(999)).await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::VersionMismatch, "{bye:?}");
    assert!(bye.message.contains("999"), "{bye:?}");
    assert!(
        bye.message.contains(&format!("v{PROTO_VERSION}")),
        "{bye:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_before_hello_gets_a_goodbye() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");

    let mut raw = RawClient::connect(&daemon).await;
    raw.send(&ClientFrame::Request {
        id: 1,
        request: Request::Status,
    })
    .await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");
    assert!(bye.message.contains("Hello"), "{bye:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn second_hello_gets_a_goodbye() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    raw.send(&hello(PROTO_VERSION)).await;
    let bye = raw.expect_goodbye().await;
    assert_eq!(bye.kind, ErrorKind::BadRequest, "{bye:?}");
    assert!(bye.message.contains("Hello"), "{bye:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_already_in_flight_is_refused_without_closing() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    let sleeper = MarkedSleep::new();
    let long = ClientFrame::Request {
        id: 7,
        request: Request::Exec(sshmcp_proto::ExecRequest {
            timeout_secs: Some(2),
            ..exec_request("host1", &sleeper.command)
        }),
    };
    raw.send(&long).await;
    raw.send(&ClientFrame::Request {
        id: 7,
        request: Request::Status,
    })
    .await;
    match raw.read().await {
        Some(DaemonFrame::Done {
            id: 7,
            reply: Err(error),
        }) => {
            assert_eq!(error.kind, ErrorKind::BadRequest, "{error:?}");
            assert!(error.message.contains("id 7"), "{error:?}");
        }
        other => panic!("expected the duplicate to be refused, got {other:?}"),
    }
    match raw.read().await {
        Some(DaemonFrame::Done {
            id: 7,
            reply: Err(error),
        }) => {
            assert_eq!(error.kind, ErrorKind::Timeout, "{error:?}");
        }
        other => panic!("expected the first request's Done, got {other:?}"),
    }
}

/// Reads `call`'s events until its `Done`, bounded.
async fn done(call: &mut Call) -> Reply {
    loop {
        let event = within(FRAME_TIMEOUT, "a reply event", call.next_event())
            .await
            .expect("daemon answers");
        if let Event::Done(reply) = event {
            return reply;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replies_come_back_in_the_order_requests_finish() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    // The slow command waits for a file only the test creates, so "fast
    // finishes first" does not depend on timing.
    let scratch = test_user().scratch_dir();
    let flag = scratch.path().join("go");
    let slow_command = format!(
        "while [ ! -e '{}' ]; do sleep 0.05; done; echo slow",
        flag.display()
    );

    let mut slow = client
        .start(Request::Exec(exec_request("host1", &slow_command)))
        .expect("send the slow exec");
    let mut fast = client
        .start(Request::Exec(exec_request("host1", "echo fast")))
        .expect("send the fast exec");
    assert!(slow.id() < fast.id());

    match done(&mut fast).await {
        Ok(Response::Exec(out)) => assert_eq!(out.stdout, b"fast\n"),
        other => panic!("fast exec: {other:?}\n{}", daemon.log()),
    }
    let early = tokio::time::timeout(Duration::ZERO, slow.next_event()).await;
    assert!(early.is_err(), "the slow exec answered early: {early:?}");

    std::fs::write(&flag, "").expect("create the flag file");
    match done(&mut slow).await {
        Ok(Response::Exec(out)) => assert_eq!(out.stdout, b"slow\n"),
        other => panic!("slow exec: {other:?}\n{}", daemon.log()),
    }
}

#[test]
fn socket_is_owner_only_in_an_owner_only_directory() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let socket = std::fs::metadata(daemon.socket()).expect("socket exists");
    assert_eq!(
        socket.mode() & 0o777,
        0o600,
        "socket mode {:o}",
        socket.mode()
    );
    let dir = std::fs::metadata(daemon.socket().parent().expect("socket dir")).unwrap();
    assert_eq!(dir.mode() & 0o777, 0o700, "directory mode {:o}", dir.mode());
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    assert_eq!(socket.uid(), me);
    assert_eq!(dir.uid(), me);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

#[test]
fn a_client_of_another_uid_is_refused_even_when_the_socket_is_open_to_all() {
    // SAFETY: getuid cannot fail.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("skipped: only root can run sshmcpctl as uid {NOBODY}");
        return;
    }
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let socket = daemon.socket();
    // Undo every file-system protection, so only the daemon's own peer
    // check stands between `nobody` and the daemon.
    chmod(daemon.dir(), 0o755);
    chmod(socket.parent().expect("socket dir"), 0o777);
    chmod(socket, 0o666);

    // The refusal must reach the client every time, not only when the
    // client wins a race against the daemon closing the connection.
    for attempt in 1..=10 {
        let output = output_within(
            Command::new(bin_path("sshmcpctl"))
                .arg("--socket")
                .arg(socket)
                .arg("status")
                .env_remove("SSHMCP_SOCKET")
                .current_dir("/")
                .uid(NOBODY)
                .gid(NOBODY),
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "nobody got in: {stderr}");
        assert!(output.stdout.is_empty());
        assert!(
            stderr.contains(&format!("uid {NOBODY}")) && stderr.contains("refused"),
            "attempt {attempt}: sshmcpctl should say uid {NOBODY} was refused, said: {stderr}"
        );
    }
    wait_for(
        || daemon.log().contains("refused a client"),
        Duration::from_secs(10),
        "the daemon to log the refusal",
    );
    assert!(
        daemon.log().contains(&format!("uid {NOBODY}")),
        "{}",
        daemon.log()
    );
    assert!(daemon.is_running());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_past_max_clients_is_refused_with_a_goodbye() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[daemon]\nmax_clients = 1\n");
    // The test kit's readiness probe holds the one slot until the daemon
    // has seen it close.
    let first = common::connect_when_free(daemon.socket()).await;
    // A round trip proves the daemon counts `first` as served.
    assert!(matches!(
        common::request(&first, Request::Status).await,
        Ok(Response::Status(_))
    ));

    let mut raw = RawClient::connect(&daemon).await;
    let payload = encode(&hello(PROTO_VERSION)).expect("encode Hello");
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&payload);
    // The daemon may already have refused and closed: that write may fail.
    let _ = raw.stream.write_all(&bytes).await;
    match raw.read().await {
        Some(DaemonFrame::Goodbye(bye)) => {
            assert!(bye.message.contains("max_clients"), "{bye:?}");
        }
        other => panic!(
            "a client past [daemon] max_clients should get a Goodbye saying so, got {other:?}"
        ),
    }
    drop(raw);

    drop(first);
    let mut admitted = None;
    for _ in 0..100 {
        let info = ClientInfo {
            binary: "daemon-tests".into(),
            ..ClientInfo::default()
        };
        if let Ok(client) =
            sshmcp_proto::client::DaemonClient::connect(daemon.socket(), info, 1 << 20).await
        {
            admitted = Some(client);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let second = admitted.expect("a client is admitted once the first one left");
    assert!(matches!(
        common::request(&second, Request::Status).await,
        Ok(Response::Status(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_vanishes_mid_request_does_not_disturb_others() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let good = connect(daemon.socket()).await;
    exec_ok(&daemon, &good, exec_request("host1", "true")).await;
    let server = fleet.server(0);

    let mut raw = RawClient::connect_with_hello(&daemon).await;
    let sleeper = MarkedSleep::new();
    raw.send(&ClientFrame::Request {
        id: 1,
        request: Request::Exec(exec_request("host1", &sleeper.command)),
    })
    .await;
    eventually(
        || !sleeper.pids(server).is_empty(),
        Duration::from_secs(30),
        "the vanishing client's command to start",
    )
    .await;
    drop(raw);

    assert_daemon_serves(&daemon, &good).await;
    // Nobody is left to read its result, so its command is stopped.
    eventually(
        || sleeper.pids(server).is_empty(),
        Duration::from_secs(15),
        "the vanished client's remote command to be stopped",
    )
    .await;
}
