//! The pool's housekeeping: warm-up at start, the idle reaper, and the
//! per-host circuit breaker.

mod common;

use std::time::Duration;

use common::{connect, exec, exec_request, request};
use sshmcp_proto::{ConnState, ErrorKind, HostState, Request, Response};
use sshmcp_testkit::{Daemon, Fleet, wait_for};

async fn host_state(client: &sshmcp_proto::client::DaemonClient, alias: &str) -> HostState {
    match request(client, Request::Hosts).await {
        Ok(Response::Hosts(sshmcp_proto::HostList { hosts, .. })) => hosts
            .into_iter()
            .find(|h| h.alias == alias)
            .expect("host listed"),
        other => panic!("hosts failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn hosts_listed_under_warm_are_connected_at_start_without_a_request() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "[pool]\nwarm = [\"host1\"]\n");
    wait_for(
        || fleet.server(0).accepted_logins() == 1,
        Duration::from_secs(10),
        "the warm host to be connected",
    );
    let client = connect(daemon.socket()).await;
    // sshd logs the login a moment before the daemon has the connection in
    // its pool: wait for the pool to say so too.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while host_state(&client, "host1").await.state != ConnState::Connected
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        host_state(&client, "host1").await.state,
        ConnState::Connected
    );
    assert_eq!(host_state(&client, "host2").await.state, ConnState::Cold);
    assert_eq!(fleet.server(1).accepted_logins(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[pool]\nidle_timeout_secs = 1\n");
    let client = connect(daemon.socket()).await;
    exec(&client, exec_request("host1", "true")).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if host_state(&client, "host1").await.connections == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "idle connection never reaped\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(daemon.log().contains("closing idle connection"));
    // The next call simply connects again.
    exec(&client, exec_request("host1", "true")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn repeated_connect_failures_open_the_circuit_breaker() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[pool]\nbreaker_failures = 2\nbreaker_cooldown_secs = 60\n",
    );
    fleet.server(0).stop();
    let client = connect(daemon.socket()).await;
    for _ in 0..2 {
        let err = exec(&client, exec_request("host1", "true"))
            .await
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
        assert!(!err.message.contains("circuit breaker"), "{}", err.message);
    }
    let err = exec(&client, exec_request("host1", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unreachable);
    assert!(err.retriable);
    assert!(err.message.contains("circuit breaker"), "{}", err.message);
    assert_eq!(
        host_state(&client, "host1").await.state,
        ConnState::CircuitOpen
    );
}
