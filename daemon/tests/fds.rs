//! File descriptors: a daemon that runs out of them says so, never blames
//! a host key; it takes the hard open-file limit at start; and `status`
//! reports it degraded while descriptors run short.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{REPLY_TIMEOUT, connect, eventually, exec_ok, exec_request, request, within};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{ErrorKind, Request, Response};
use sshmcp_testkit::{Daemon, DaemonOptions, Fleet};

/// Long enough that a few hundred handshakes on a small machine finish
/// before any deadline: every failure must come from descriptors.
const PATIENT: &str = "[ssh]\nconnect_timeout_secs = 120\n\n[limits]\nqueue_timeout_ms = 120000\n";

fn daemon_with_nofile(fleet: &Fleet, extra_toml: &str, soft: u64, hard: u64) -> Daemon {
    Daemon::start_with(
        fleet,
        extra_toml,
        DaemonOptions {
            nofile: Some((soft, hard)),
            ..DaemonOptions::default()
        },
    )
}

/// Descriptors the daemon process has open now, as the kernel lists them.
fn open_fds(daemon: &Daemon) -> usize {
    let dir = format!("/proc/{}/fd", daemon.pid());
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .count()
}

async fn status_health(client: &DaemonClient) -> Option<String> {
    match request(client, Request::Status).await {
        Ok(Response::Status(status)) => status.degraded,
        other => panic!("Status failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn running_out_of_descriptors_is_reported_as_such_never_as_an_unknown_host_key() {
    const ALIASES: usize = 240;
    // Far fewer descriptors than aliases: each live connection holds one.
    const LIMIT: u64 = 96;
    // 80 aliases per server connect at once: more unauthenticated
    // connections than sshd's default MaxStartups (10:30:100) lets through.
    let fleet = Fleet::builder()
        .servers(3)
        .max_startups("100:30:200")
        .start();
    let aliases: Vec<String> = (0..ALIASES).map(|i| format!("many{i}")).collect();
    for (i, alias) in aliases.iter().enumerate() {
        fleet.add_alias(alias, i % 3, &["StrictHostKeyChecking yes"]);
    }
    let daemon = daemon_with_nofile(&fleet, PATIENT, LIMIT, LIMIT);
    let client = connect(daemon.socket()).await;

    let calls: Vec<_> = aliases
        .iter()
        .map(|host| {
            let call = client.start(Request::Warm { host: host.clone() });
            call.unwrap_or_else(|e| panic!("cannot send Warm {host}: {e}"))
        })
        .collect();
    let mut failures = Vec::new();
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for (alias, call) in aliases.iter().zip(calls) {
        match within(REPLY_TIMEOUT, "a Warm reply", call.reply()).await {
            Ok(Ok(_)) => *by_kind.entry("ok").or_default() += 1,
            Ok(Err(error)) => {
                *by_kind.entry(error.kind.as_str()).or_default() += 1;
                failures.push((alias.clone(), error));
            }
            Err(e) => panic!("Warm {alias} lost its connection: {e}"),
        }
    }
    eprintln!("warming {ALIASES} aliases with {LIMIT} descriptors: {by_kind:?}");
    let mut shown = std::collections::HashSet::new();
    for (alias, error) in &failures {
        if shown.insert(error.kind) {
            eprintln!("  e.g. {alias}: {}", error.message);
        }
    }

    assert!(
        !failures.is_empty(),
        "{ALIASES} connections cannot fit in {LIMIT} descriptors: {by_kind:?}"
    );
    for (alias, error) in &failures {
        assert_ne!(error.kind, ErrorKind::HostKeyUnknown, "{alias}: {error:?}");
        assert!(
            error.message.contains("Too many open files")
                || error.message.contains("out of file descriptors"),
            "{alias} failed for another reason than descriptors: {error:?}"
        );
    }

    // With the connections drained, a host that failed works again.
    for alias in &aliases {
        let drain = Request::Drain {
            host: alias.clone(),
        };
        if let Err(e) = request(&client, drain).await {
            panic!("Drain {alias} failed: {e:?}");
        }
    }
    eventually(
        || open_fds(&daemon) < (LIMIT / 2) as usize,
        Duration::from_secs(30),
        "the drained connections to close their descriptors",
    )
    .await;
    let (failed, _) = &failures[0];
    let out = exec_ok(&daemon, &client, exec_request(failed, "echo back")).await;
    assert_eq!(out.stdout, b"back\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn soft_open_file_limit_is_raised_to_the_hard_limit_at_start() {
    let fleet = Fleet::start(1);
    let daemon = daemon_with_nofile(&fleet, "", 1024, 4096);
    let limits_path = format!("/proc/{}/limits", daemon.pid());
    let limits = std::fs::read_to_string(&limits_path)
        .unwrap_or_else(|e| panic!("cannot read {limits_path}: {e}"));
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no open-file limit in {limits_path}:\n{limits}"));
    let figures: Vec<&str> = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .collect();
    assert_eq!(figures[..2], ["4096", "4096"], "{line}");

    let client = connect(daemon.socket()).await;
    match request(&client, Request::Stats).await {
        Ok(Response::Stats(stats)) => assert_eq!(stats.resources.max_fds, 4096),
        other => panic!("Stats failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn status_is_degraded_while_descriptors_run_short_and_healthy_again_after() {
    const LIMIT: u64 = 128;
    let fleet = Fleet::start(1);
    let daemon = daemon_with_nofile(&fleet, "", LIMIT, LIMIT);
    let client = connect(daemon.socket()).await;
    assert_eq!(status_health(&client).await, None, "healthy at start");

    // Every client connection is a descriptor in the daemon: fill up to
    // 95% of the limit, past the 90% at which it is degraded.
    let target = (LIMIT * 95 / 100) as usize;
    let mut crowd = Vec::new();
    while open_fds(&daemon) < target {
        crowd.push(connect(daemon.socket()).await);
    }
    let degraded = status_health(&client)
        .await
        .unwrap_or_else(|| panic!("healthy with {} descriptors open", open_fds(&daemon)));
    assert!(degraded.contains("file descriptors"), "{degraded}");
    assert!(degraded.contains(&format!("limit {LIMIT}")), "{degraded}");

    drop(crowd);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match status_health(&client).await {
            None => break,
            Some(why) if tokio::time::Instant::now() >= deadline => {
                panic!("still degraded 30s after the clients left: {why}")
            }
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
