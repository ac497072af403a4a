//! ProxyJump: hosts reached through a pooled connection to a jump host.

mod common;

use common::{connect, exec, exec_request, request};
use sshmcp_proto::{ErrorKind, Request, Response};
use sshmcp_testkit::{Daemon, Fleet};

#[tokio::test(flavor = "multi_thread")]
async fn a_host_behind_a_jump_host_is_reached_through_the_jump_hosts_pooled_connection() {
    let fleet = Fleet::start(2);
    fleet.add_alias("behind", 1, &["ProxyJump host1"]);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;

    for _ in 0..3 {
        let out = exec(&client, exec_request("behind", "echo through"))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
        assert_eq!(out.stdout, b"through\n");
    }
    let direct = exec(&client, exec_request("host1", "echo direct"))
        .await
        .unwrap();
    assert_eq!(direct.stdout, b"direct\n");

    // One connection to the jump host carried the tunnel and the direct
    // exec; one connection to the target rode the tunnel.
    assert_eq!(fleet.server(0).accepted_logins(), 1);
    assert_eq!(fleet.server(1).accepted_logins(), 1);
    let Ok(Response::Stats(stats)) = request(&client, Request::Stats).await else {
        panic!("stats failed");
    };
    let connects = |alias: &str| {
        stats
            .hosts
            .iter()
            .find(|h| h.alias == alias)
            .map(|h| h.connects)
    };
    assert_eq!(connects("host1"), Some(1));
    assert_eq!(connects("behind"), Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jump_host_that_cannot_reach_the_target_is_a_clear_error() {
    let fleet = Fleet::start(2);
    fleet.add_alias("behind", 1, &["ProxyJump host1"]);
    let daemon = Daemon::start(&fleet, "");
    fleet.server(1).stop();
    let client = connect(daemon.socket()).await;
    let err = exec(&client, exec_request("behind", "true"))
        .await
        .expect_err("the target is down");
    assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    assert!(err.message.contains("jump host host1"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_jump_loop_is_refused_not_followed() {
    let fleet = Fleet::start(1);
    fleet.append_ssh_config("\nHost loopa\n    ProxyJump loopb\nHost loopb\n    ProxyJump loopa\n");
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let err = exec(&client, exec_request("loopa", "true"))
        .await
        .expect_err("a loop cannot connect");
    assert!(err.message.contains("loops back"), "{}", err.message);
}
