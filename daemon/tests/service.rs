//! The daemon as a service: systemd notifications and watchdog, socket
//! activation, reload on SIGHUP, a graceful SIGTERM, pinned workers and the
//! memory cap.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{REPLY_TIMEOUT, connect, exec, exec_ok, exec_request, request, within};
use sshmcp_proto::{ConnState, ErrorKind, HostState, Request, Response, Stats};
use sshmcp_testkit::{Daemon, DaemonOptions, Fleet, wait_for};

/// Longest wait for any one notification or state change.
const WAIT: Duration = Duration::from_secs(20);

/// A fake service manager: the datagram socket `NOTIFY_SOCKET` names.
struct NotifySocket {
    socket: UnixDatagram,
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("a read timeout");
        NotifySocket {
            socket,
            _dir: dir,
            path,
        }
    }

    /// Reads messages until one contains `line`; returns every message
    /// read, that one last. Panics after [`WAIT`].
    fn wait_for_line(&self, line: &str, daemon: &Daemon) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.socket.recv(&mut buf) {
                let message = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = message.lines().any(|l| l == line);
                seen.push(message);
                if done {
                    return seen;
                }
            }
        }
        panic!(
            "no `{line}` from the daemon within {WAIT:?}; got {seen:?}\nlog:\n{}",
            daemon.log()
        );
    }
}

async fn hosts(client: &sshmcp_proto::client::DaemonClient) -> Vec<HostState> {
    match request(client, Request::Hosts).await {
        Ok(Response::Hosts(sshmcp_proto::HostList { hosts, .. })) => hosts,
        other => panic!("hosts failed: {other:?}"),
    }
}

async fn stats(client: &sshmcp_proto::client::DaemonClient) -> Stats {
    match request(client, Request::Stats).await {
        Ok(Response::Stats(stats)) => *stats,
        other => panic!("stats failed: {other:?}"),
    }
}

#[test]
fn notify_socket_gets_ready_watchdog_reload_and_stopping() {
    let fleet = Fleet::start(1);
    let notify = NotifySocket::bind();
    let daemon = Daemon::start_with(
        &fleet,
        "",
        DaemonOptions {
            env: vec![
                (
                    "NOTIFY_SOCKET".into(),
                    notify.path.to_string_lossy().into_owned(),
                ),
                ("WATCHDOG_USEC".into(), "200000".into()),
            ],
            ..DaemonOptions::default()
        },
    );
    let first = notify.wait_for_line("READY=1", &daemon);
    assert!(
        first
            .last()
            .unwrap()
            .contains("STATUS=serving 0 clients; 1 hosts"),
        "{first:?}"
    );
    notify.wait_for_line("WATCHDOG=1", &daemon);
    notify.wait_for_line("WATCHDOG=1", &daemon);

    daemon.signal(libc::SIGHUP);
    let reload = notify.wait_for_line("RELOADING=1", &daemon);
    assert!(
        reload
            .last()
            .unwrap()
            .lines()
            .any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reload:?}"
    );
    notify.wait_for_line("READY=1", &daemon);

    daemon.signal(libc::SIGTERM);
    notify.wait_for_line("STOPPING=1", &daemon);
    let status = daemon.wait_exit(WAIT).expect("the daemon exits on SIGTERM");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread")]
async fn socket_activation_serves_the_inherited_listener_and_leaves_it_in_place() {
    let fleet = Fleet::start(1);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("activated.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let daemon = Daemon::start_with(
        &fleet,
        "",
        DaemonOptions {
            listener: Some(listener),
            ..DaemonOptions::default()
        },
    );
    let client = connect(&path).await;
    match request(&client, Request::Status).await {
        Ok(Response::Status(status)) => assert_eq!(Path::new(&status.socket), path),
        other => panic!("status failed: {other:?}"),
    }
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo activated")).await;
    assert_eq!(out.stdout, b"activated\n");
    assert!(
        !daemon.dir().join("sock/sshmcpd.sock").exists(),
        "the daemon bound its own socket as well"
    );
    drop(client);

    let status = daemon.terminate();
    assert!(status.success(), "{status}\n{}", daemon.log());
    assert!(
        path.exists(),
        "the daemon removed a socket it did not create"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn own_socket_is_removed_at_shutdown() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    assert!(daemon.socket().exists());
    assert!(daemon.terminate().success());
    assert!(!daemon.socket().exists());
}

/// The fleet's ssh_config without the `Host <alias>` block.
fn remove_host_block(ssh_config: &Path, alias: &str) {
    let text = std::fs::read_to_string(ssh_config).expect("read the ssh_config");
    let mut kept = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Host ") {
            skipping = name.trim() == alias;
        }
        if !skipping {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    std::fs::write(ssh_config, kept).expect("write the ssh_config");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_adds_and_removes_hosts_and_keeps_unchanged_ones_warm() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "[pool]\nwarm = [\"host1\"]\n");
    wait_for(
        || fleet.server(0).accepted_logins() == 1,
        WAIT,
        "host1 to be warmed up",
    );
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host2", "true")).await;

    fleet.add_alias("added", 1, &["StrictHostKeyChecking yes"]);
    remove_host_block(fleet.ssh_config_path(), "host2");
    daemon.signal(libc::SIGHUP);

    let deadline = Instant::now() + WAIT;
    loop {
        let names: Vec<String> = hosts(&client).await.into_iter().map(|h| h.alias).collect();
        if names == ["host1", "added"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "hosts after reload: {names:?}\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let host1 = hosts(&client).await.remove(0);
    assert_eq!(host1.state, ConnState::Connected);
    let out = exec_ok(&daemon, &client, exec_request("added", "echo new")).await;
    assert_eq!(out.stdout, b"new\n");
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    assert_eq!(
        fleet.server(0).accepted_logins(),
        1,
        "host1's warm connection was replaced by the reload"
    );
    let err = exec(&client, exec_request("host2", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::HostUnknown);
    let log = daemon.log();
    assert!(
        log.contains("added: added; removed: host2; changed: none"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_config_is_refused_by_reload_and_the_old_one_stays() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    match request(&client, Request::Reload).await {
        Ok(Response::Reloaded(summary)) => {
            assert!(summary.contains("1 hosts; added: none"), "{summary}")
        }
        other => panic!("reload failed: {other:?}"),
    }
    let mut config = std::fs::read_to_string(daemon.config_path()).unwrap();
    config.push_str("\n[limits]\nmax_inflihgt = 3\n");
    std::fs::write(daemon.config_path(), config).unwrap();
    fleet.add_alias("later", 0, &[]);

    let err = request(&client, Request::Reload).await.unwrap_err();
    assert!(err.message.contains("max_inflihgt"), "{}", err.message);
    assert!(
        err.message.contains("previous config stays"),
        "{}",
        err.message
    );
    let names: Vec<String> = hosts(&client).await.into_iter().map(|h| h.alias).collect();
    assert_eq!(names, ["host1"]);
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    assert!(daemon.log().contains("reload refused"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_a_running_exec_finish_then_exits_cleanly() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = Arc::new(connect(daemon.socket()).await);
    let flag_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(flag_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let flag = flag_dir.path().join("go");
    let command = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; echo finished",
        flag.display()
    );
    let running = {
        let client = client.clone();
        tokio::spawn(async move { exec(&client, exec_request("host1", &command)).await })
    };
    let deadline = Instant::now() + WAIT;
    while hosts(&client).await[0].channels_busy == 0 {
        assert!(Instant::now() < deadline, "the exec never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.signal(libc::SIGTERM);
    wait_for(
        || daemon.log().contains("shutting down"),
        WAIT,
        "the daemon to begin shutting down",
    );
    assert!(daemon.is_running(), "exited with an exec in flight");
    std::fs::write(&flag, "").unwrap();
    let out = within(REPLY_TIMEOUT, "the exec's reply", running)
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("exec failed during shutdown: {e:?}\n{}", daemon.log()));
    assert_eq!(out.stdout, b"finished\n");
    let status = daemon.wait_exit(WAIT).expect("the daemon exits");
    assert!(status.success(), "{status}");
    assert!(!daemon.socket().exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_threads_are_pinned_one_cpu_each() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[daemon]\npin = \"auto\"\n");
    let client = connect(daemon.socket()).await;
    let threads = stats(&client).await.resources.threads;
    let workers: Vec<_> = threads
        .iter()
        .filter(|t| {
            t.name
                .strip_prefix("sshmcpd-w")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .collect();
    assert!(!workers.is_empty(), "{threads:?}");
    let mut cpus = Vec::new();
    for worker in &workers {
        let cpu: usize = worker.allowed_cpus.parse().unwrap_or_else(|_| {
            panic!(
                "worker {} may run on `{}`, not one CPU",
                worker.tid, worker.allowed_cpus
            )
        });
        cpus.push(cpu);
    }
    cpus.sort_unstable();
    cpus.dedup();
    assert_eq!(
        cpus.len(),
        workers.len(),
        "two workers share a CPU: {workers:?}"
    );
    // Blocking-pool threads are not pinned.
    let main = threads.iter().find(|t| t.name == "sshmcpd").unwrap();
    assert!(
        main.allowed_cpus.contains(['-', ',']) || workers.len() == 1,
        "{main:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn near_the_memory_cap_large_work_is_refused_and_the_daemon_recovers() {
    const OUTPUT: u64 = 4 << 20;
    const CALLS: usize = 16;
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[daemon]\nmemory_limit = \"64M\"\n");
    let client = Arc::new(connect(daemon.socket()).await);
    let flag_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(flag_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let flag = flag_dir.path().join("go");
    // Each call holds its reservation until the flag appears, then writes
    // its full allowance: refusals do not depend on how fast anything runs.
    let command = format!(
        "while [ ! -e {} ]; do sleep 0.05; done; head -c {OUTPUT} /dev/zero",
        flag.display()
    );
    let (tx, mut replies) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..CALLS {
        let client = client.clone();
        let tx = tx.clone();
        let mut request = exec_request("host1", &command);
        request.max_output_bytes = Some(OUTPUT);
        tokio::spawn(async move {
            let _ = tx.send(exec(&client, request).await);
        });
    }
    drop(tx);
    let mut results = Vec::new();
    let first = within(WAIT, "a first reply", replies.recv()).await.unwrap();
    let refused = first.as_ref().unwrap_err();
    assert_eq!(refused.kind, ErrorKind::Overloaded, "{refused:?}");
    assert!(refused.retriable);
    assert!(
        refused.message.contains("memory_limit = 64M"),
        "{}",
        refused.message
    );
    results.push(first);
    std::fs::write(&flag, "").unwrap();
    while let Some(result) = within(REPLY_TIMEOUT, "the remaining replies", replies.recv()).await {
        results.push(result);
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let overloaded = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.kind == ErrorKind::Overloaded))
        .count();
    assert_eq!(ok + overloaded, CALLS, "{results:?}");
    assert!(ok >= 1 && overloaded >= 1, "{ok} ok, {overloaded} refused");
    for out in results.iter().flatten() {
        assert_eq!(out.stdout.len() as u64, OUTPUT);
    }

    let resources = stats(&client).await.resources;
    assert_eq!(resources.memory_limit_bytes, 64 << 20);
    assert!(
        resources.peak_rss_bytes < 64 << 20,
        "peak RSS {} went over the cap",
        resources.peak_rss_bytes
    );
    assert!(resources.memory_refusals >= overloaded as u64);
    // Still serving, and large work is admitted again once the work ends.
    let mut request = exec_request("host1", &format!("head -c {OUTPUT} /dev/zero"));
    request.max_output_bytes = Some(OUTPUT);
    let deadline = Instant::now() + WAIT;
    loop {
        match exec(&client, request.clone()).await {
            Ok(out) => {
                assert_eq!(out.stdout.len() as u64, OUTPUT);
                break;
            }
            Err(e) if e.kind == ErrorKind::Overloaded && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("large exec still refused: {e:?}\n{}", daemon.log()),
        }
    }
}
