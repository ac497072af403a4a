//! The connection pool end to end: reuse, session limits, overload, parallel
//! connects and reconnects, observed from sshd's side and through `Stats`.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::{connect, eventually, exec, exec_ok, exec_request, host_stats, request, within};
use sshmcp_proto::{ConnState, ErrorKind, ExecOutput, Request, Response};
use sshmcp_testkit::{Daemon, Fleet, test_user};

/// Runs `n` copies of `command` on `host` at once over one client
/// connection and returns every result, in order.
async fn concurrent_execs(
    client: &Arc<sshmcp_proto::client::DaemonClient>,
    host: &str,
    command: &str,
    n: usize,
) -> Vec<Result<ExecOutput, sshmcp_proto::Error>> {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            let request = exec_request(host, command);
            tokio::spawn(async move { exec(&client, request).await })
        })
        .collect();
    let mut results = Vec::with_capacity(n);
    for task in tasks {
        results.push(task.await.expect("exec task"));
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn sequential_execs_ride_one_connection() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    for i in 0..100 {
        let out = exec_ok(
            &daemon,
            &client,
            exec_request("host1", &format!("echo {i}")),
        )
        .await;
        assert_eq!(out.stdout, format!("{i}\n").as_bytes());
    }
    assert_eq!(
        fleet.server(0).accepted_logins(),
        1,
        "{}",
        fleet.server(0).log()
    );
    let stats = host_stats(&client, "host1").await;
    assert_eq!(stats.connects, 1, "{stats:?}");
    assert_eq!(stats.connections, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_execs_share_connections_up_to_the_session_limit() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = Arc::new(connect(daemon.socket()).await);
    let results = concurrent_execs(&client, "host1", "sleep 0.5; echo done", 50).await;
    for result in &results {
        let out = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?}\ndaemon log:\n{}", daemon.log()));
        assert_eq!(out.stdout, b"done\n");
    }
    let logins = fleet.server(0).accepted_logins();
    assert!(
        logins <= 5,
        "50 execs at 10 sessions per connection took {logins} connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn smaller_server_session_limit_is_respected_with_a_matching_pool_setting() {
    let fleet = Fleet::builder().max_sessions(4).start();
    let daemon = Daemon::start(&fleet, "[pool]\nsessions_per_connection = 4\n");
    let client = Arc::new(connect(daemon.socket()).await);
    let results = concurrent_execs(&client, "host1", "sleep 0.5; echo done", 12).await;
    for result in &results {
        let out = result
            .as_ref()
            .unwrap_or_else(|e| panic!("{e:?}\ndaemon log:\n{}", daemon.log()));
        assert_eq!(out.stdout, b"done\n");
    }
    let logins = fleet.server(0).accepted_logins();
    assert!(
        logins <= 3,
        "12 execs at 4 sessions per connection took {logins} connections"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_the_pool_limits_get_overloaded_instead_of_queueing() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[pool]\nmax_per_host = 1\nsessions_per_connection = 2\n\n\
         [limits]\nqueue_timeout_ms = 500\n",
    );
    let client = Arc::new(connect(daemon.socket()).await);
    // Warm first, so that the two slots exist before the burst.
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    let results = concurrent_execs(&client, "host1", "sleep 3; echo done", 4).await;

    let succeeded = results.iter().filter(|r| r.is_ok()).count();
    let overloaded: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    for error in &overloaded {
        assert_eq!(error.kind, ErrorKind::Overloaded, "{error:?}");
        assert!(error.retriable, "{error:?}");
    }
    assert_eq!(
        succeeded, 2,
        "1 connection x 2 sessions serve two `sleep 3` at once; the other two should \
         have been refused after queue_timeout_ms = 500, got {results:?}"
    );
    assert_eq!(overloaded.len(), 2, "{results:?}");
    assert_eq!(fleet.server(0).accepted_logins(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_connect_in_parallel_while_one_host_hangs() {
    let fleet = Fleet::start(10);
    // Accepts TCP connections (the kernel completes the handshake) but never
    // says a word: an SSH server that hangs before its banner.
    let black_hole = TcpListener::bind("127.0.0.1:0").expect("bind the black hole");
    let port = black_hole.local_addr().expect("black hole address").port();
    fleet.append_ssh_config(&format!(
        "Host blackhole\n\
         \x20   HostName 127.0.0.1\n\
         \x20   Port {port}\n\
         \x20   User {user}\n\
         \x20   IdentityFile {key}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   UserKnownHostsFile {known_hosts}\n\
         \x20   ConnectTimeout 15\n",
        user = test_user().name(),
        key = fleet.key().path().display(),
        known_hosts = fleet.known_hosts_path().display(),
    ));
    let daemon = Daemon::start(&fleet, "");
    let client = Arc::new(connect(daemon.socket()).await);

    let hung = {
        let client = client.clone();
        tokio::spawn(async move { exec(&client, exec_request("blackhole", "true")).await })
    };
    let mut connecting = false;
    for _ in 0..200 {
        if black_hole_state(&client).await == ConnState::Connecting {
            connecting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        connecting,
        "the daemon never started connecting to blackhole"
    );

    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let client = client.clone();
            let alias = fleet.alias(i);
            tokio::spawn(async move {
                let out = exec(&client, exec_request(&alias, "echo $((6*7))")).await;
                (alias, out)
            })
        })
        .collect();
    for task in tasks {
        let (alias, out) = task.await.expect("exec task");
        let out = out.unwrap_or_else(|e| panic!("{alias}: {e:?}\n{}", daemon.log()));
        assert_eq!(out.stdout, b"42\n", "{alias}");
    }
    assert!(
        !hung.is_finished(),
        "the exec to the hanging host finished before the ten others did"
    );
    assert_eq!(black_hole_state(&client).await, ConnState::Connecting);

    let err = within(Duration::from_secs(60), "the black hole's exec", hung)
        .await
        .expect("exec task")
        .expect_err("a host that never answers cannot run commands");
    assert_eq!(err.kind, ErrorKind::ConnectTimeout, "{err:?}");
    assert!(err.retriable, "{err:?}");
    drop(black_hole);
}

async fn black_hole_state(client: &sshmcp_proto::client::DaemonClient) -> ConnState {
    match request(client, Request::Hosts).await {
        Ok(Response::Hosts(sshmcp_proto::HostList { hosts, .. })) => {
            hosts
                .iter()
                .find(|h| h.alias == "blackhole")
                .expect("blackhole is a configured host")
                .state
        }
        other => panic!("Hosts failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_after_a_server_restart_reconnects() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;

    fleet.server(0).restart();
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo back")).await;
    assert_eq!(out.stdout, b"back\n");

    assert_eq!(fleet.server(0).accepted_logins(), 2);
    let stats = host_stats(&client, "host1").await;
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert_eq!(stats.connections, 1, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_after_the_connection_is_cut_reconnects() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;

    let server = fleet.server(0);
    server.kill_connections();
    eventually(
        || server.connection_count() == 0,
        Duration::from_secs(10),
        "sshd to drop its connections",
    )
    .await;
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo back")).await;
    assert_eq!(out.stdout, b"back\n");

    let stats = host_stats(&client, "host1").await;
    assert_eq!(stats.connects, 2, "{stats:?}");
    assert!(stats.reconnects >= 1, "{stats:?}");
}
