//! `exec` end to end: a real sshd, the real daemon, the wire protocol.

mod common;

use common::{connect, exec, exec_request};
use sshmcp_testkit::{Daemon, Fleet};

#[tokio::test(flavor = "multi_thread")]
async fn exec_returns_exit_code_and_both_streams() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let out = exec(&client, exec_request("host1", "echo out; echo err >&2; exit 3"))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", daemon.log()));
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.exit_code, Some(3));
    assert!(!out.truncated);
}
