//! `exec` end to end: a real sshd, the real daemon, the wire protocol.

mod common;

use std::time::Duration;

use common::{MarkedSleep, connect, eventually, exec, exec_err, exec_ok, exec_request, within};
use sshmcp_proto::client::Event;
use sshmcp_proto::{ErrorKind, ExecRequest, Gap, Request, Response};
use sshmcp_testkit::{Daemon, Fleet};

/// How long a stopped remote process may take to disappear.
const GONE_TIMEOUT: Duration = Duration::from_secs(15);

#[tokio::test(flavor = "multi_thread")]
async fn exec_returns_exit_code_and_both_streams() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec(
        &client,
        exec_request("host1", "echo out; echo err >&2; exit 3"),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn stdin_is_delivered_to_the_command() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            stdin: Some(b"hello from stdin\n\0\xff".to_vec()),
            ..exec_request("host1", "cat")
        },
    )
    .await;
    assert_eq!(out.stdout, b"hello from stdin\n\0\xff");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn large_stdin_arrives_whole() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let stdin: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            stdin: Some(stdin),
            ..exec_request("host1", "wc -c")
        },
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "4194304");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn non_utf8_output_comes_back_byte_for_byte() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        exec_request("host1", r"printf '\377\376'; printf '\200' >&2"),
    )
    .await;
    assert_eq!(out.stdout, [0xff, 0xfe]);
    assert_eq!(out.stderr, [0x80]);
    assert_eq!(out.stdout_bytes, 2);
    assert_eq!(out.stderr_bytes, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_output_bytes_keeps_head_and_tail_of_each_stream_and_counts_everything() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            max_output_bytes: Some(4),
            ..exec_request("host1", "printf abcdefghij; printf 0123456789xyz >&2")
        },
    )
    .await;
    assert_eq!(out.stdout, b"abij");
    assert_eq!(out.stderr, b"01yz");
    assert_eq!(out.stdout_gap, Some(Gap { at: 2, bytes: 6 }));
    assert_eq!(out.stderr_gap, Some(Gap { at: 2, bytes: 9 }));
    assert_eq!(out.stdout_bytes, 10);
    assert_eq!(out.stderr_bytes, 13);
    assert!(out.truncated);
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn output_within_the_cap_is_not_truncated() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            max_output_bytes: Some(4),
            ..exec_request("host1", "printf abcd; printf 0123 >&2")
        },
    )
    .await;
    assert_eq!(out.stdout, b"abcd");
    assert_eq!(out.stderr, b"0123");
    assert_eq!((out.stdout_gap, out.stderr_gap), (None, None));
    assert!(!out.truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn huge_output_is_capped_at_the_default_and_never_buffered() {
    const TOTAL: u64 = 200 * 1024 * 1024;
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            timeout_secs: Some(600),
            ..exec_request("host1", &format!("head -c {TOTAL} /dev/zero"))
        },
    )
    .await;
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.stdout.len() as u64, ExecRequest::DEFAULT_MAX_OUTPUT);
    assert!(out.stdout.iter().all(|b| *b == 0));
    assert_eq!(out.stdout_bytes, TOTAL);
    assert!(out.truncated);

    let peak = peak_rss_bytes(daemon.pid());
    assert!(
        peak < 100 * 1024 * 1024,
        "the daemon's peak RSS was {} MiB while streaming {} MiB of output",
        peak / (1024 * 1024),
        TOTAL / (1024 * 1024)
    );
}

/// VmHWM (peak resident set size) of process `pid`, in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value in kB");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_by_signal_reports_the_signal() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec_ok(&daemon, &client, exec_request("host1", "kill -TERM $$")).await;
    assert_eq!(out.signal.as_deref(), Some("TERM"));
    assert_eq!(out.exit_code, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_command_is_a_bad_request() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    for command in ["", "  \t\n"] {
        let err = exec_err(&client, exec_request("host1", command)).await;
        assert_eq!(err.kind, ErrorKind::BadRequest, "{command:?}: {err:?}");
        assert!(err.message.contains("command"), "{err:?}");
        assert!(!err.retriable);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_timeout_is_a_bad_request() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let err = exec_err(
        &client,
        ExecRequest {
            timeout_secs: Some(0),
            ..exec_request("host1", "true")
        },
    )
    .await;
    assert_eq!(err.kind, ErrorKind::BadRequest, "{err:?}");
    assert!(err.message.contains("timeout_secs"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_is_refused_naming_the_known_ones() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let err = exec_err(&client, exec_request("nosuchhost", "true")).await;
    assert_eq!(err.kind, ErrorKind::HostUnknown, "{err:?}");
    assert!(err.message.contains("nosuchhost"), "{err:?}");
    assert!(err.message.contains("host1"), "{err:?}");
    assert!(err.message.contains("host2"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn timeout_stops_the_command_and_kills_the_remote_process() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let sleeper = MarkedSleep::new();
    let err = exec_err(
        &client,
        ExecRequest {
            timeout_secs: Some(1),
            ..exec_request("host1", &sleeper.command)
        },
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.message.contains("timeout_secs"), "{err:?}");
    assert!(err.retriable);
    let server = fleet.server(0);
    eventually(
        || sleeper.pids(server).is_empty(),
        GONE_TIMEOUT,
        "the timed-out remote command to be gone",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_the_command_and_kills_the_remote_process() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let sleeper = MarkedSleep::new();
    let server = fleet.server(0);
    let call = client
        .start(Request::Exec(exec_request("host1", &sleeper.command)))
        .expect("send the exec");
    eventually(
        || !sleeper.pids(server).is_empty(),
        Duration::from_secs(30),
        "the remote command to start",
    )
    .await;

    call.cancel();
    let reply = within(
        Duration::from_secs(60),
        "the cancelled exec's reply",
        call.reply(),
    )
    .await
    .expect("daemon answers");
    let err = reply.expect_err("a cancelled exec fails");
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    eventually(
        || sleeper.pids(server).is_empty(),
        GONE_TIMEOUT,
        "the cancelled remote command to be gone",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelled_exec_leaves_the_connection_usable() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let sleeper = MarkedSleep::new();
    let mut call = client
        .start(Request::Exec(exec_request("host1", &sleeper.command)))
        .expect("send the exec");
    eventually(
        || !sleeper.pids(fleet.server(0)).is_empty(),
        Duration::from_secs(30),
        "the remote command to start",
    )
    .await;
    call.cancel();
    loop {
        match within(
            Duration::from_secs(60),
            "the cancelled exec's events",
            call.next_event(),
        )
        .await
        .expect("daemon answers")
        {
            Event::Done(reply) => {
                assert_eq!(reply.expect_err("cancelled").kind, ErrorKind::Cancelled);
                break;
            }
            Event::Progress(_) | Event::Output { .. } | Event::Confirm(_) => {}
        }
    }
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo still here")).await;
    assert_eq!(out.stdout, b"still here\n");
    match common::request(&client, Request::Stats).await {
        Ok(Response::Stats(stats)) => {
            let host = stats
                .hosts
                .iter()
                .find(|h| h.alias == "host1")
                .expect("host1");
            assert_eq!(host.connects, 1, "{stats:?}");
        }
        other => panic!("Stats failed: {other:?}"),
    }
}
