//! Host keys and credentials end to end: unknown, learned and changed host
//! keys, and identity files the daemon cannot use.

mod common;

use common::{connect, exec_err, exec_ok, exec_request};
use sshmcp_proto::ErrorKind;
use sshmcp_testkit::{ClientKey, Daemon, Fleet};

/// The base64 blob of an OpenSSH public key line `type blob [comment]`.
fn key_blob(public: &str) -> String {
    public
        .split_whitespace()
        .nth(1)
        .expect("public key has a base64 part")
        .to_owned()
}

fn read_known_hosts(fleet: &Fleet) -> String {
    std::fs::read_to_string(fleet.known_hosts_path()).expect("read known_hosts")
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_host_key_is_refused_with_its_fingerprint() {
    let fleet = Fleet::start(1);
    std::fs::write(fleet.known_hosts_path(), "").expect("empty known_hosts");
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let err = exec_err(&client, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::HostKeyUnknown, "{err:?}");
    assert!(err.message.contains("SHA256:"), "{err:?}");
    assert!(err.message.contains("accept-new"), "{err:?}");
    assert!(!err.retriable, "{err:?}");
    assert_eq!(fleet.server(0).accepted_logins(), 0);
    assert_eq!(
        read_known_hosts(&fleet),
        "",
        "a refused key must not be recorded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn accept_new_records_an_unknown_host_key_and_connects() {
    let fleet = Fleet::start(1);
    std::fs::write(fleet.known_hosts_path(), "").expect("empty known_hosts");
    // A second alias: the kit's own says `yes`, and the first value wins.
    fleet.add_alias("trusting", 0, &["StrictHostKeyChecking accept-new"]);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;

    let out = exec_ok(&daemon, &client, exec_request("trusting", "echo in")).await;
    assert_eq!(out.stdout, b"in\n");

    let server = fleet.server(0);
    let known = read_known_hosts(&fleet);
    let line = known
        .lines()
        .find(|l| l.contains(&key_blob(&server.host_key_public())))
        .unwrap_or_else(|| panic!("the server's key is not in known_hosts:\n{known}"));
    assert!(
        line.starts_with(&format!("[{}]:{} ", server.addr(), server.port())),
        "{line}"
    );

    // The recorded key is now trusted by the strict alias too.
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo strict")).await;
    assert_eq!(out.stdout, b"strict\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn changed_host_key_is_refused_loudly_every_time_even_with_accept_new() {
    let fleet = Fleet::start(1);
    // A second alias: the kit's own says `yes`, and the first value wins.
    fleet.add_alias("trusting", 0, &["StrictHostKeyChecking accept-new"]);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    exec_ok(&daemon, &client, exec_request("trusting", "true")).await;
    let known_before = read_known_hosts(&fleet);

    let new_key = fleet.server(0).restart_with_new_host_key();

    for alias in ["host1", "trusting", "host1", "trusting"] {
        let err = exec_err(&client, exec_request(alias, "true")).await;
        assert_eq!(err.kind, ErrorKind::HostKeyMismatch, "{alias}: {err:?}");
        assert!(err.message.contains("CHANGED"), "{alias}: {err:?}");
        assert!(err.message.contains("SHA256:"), "{alias}: {err:?}");
        assert!(!err.retriable, "{alias}: {err:?}");
    }
    let known_after = read_known_hosts(&fleet);
    assert_eq!(known_after, known_before, "known_hosts must not change");
    assert!(!known_after.contains(&key_blob(&new_key)));
    assert_eq!(
        fleet.server(0).accepted_logins(),
        2,
        "no login may happen past a changed key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypted_identity_file_fails_auth_with_advice_to_use_ssh_add() {
    let key = ClientKey::generate_with_passphrase("correct horse battery staple");
    let fleet = Fleet::builder().key(key).start();
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let err = exec_err(&client, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::AuthFailed, "{err:?}");
    assert!(err.message.contains("ssh-add"), "{err:?}");
    assert!(
        err.message
            .contains(&fleet.key().path().display().to_string()),
        "the message should name the key file: {err:?}"
    );
    assert_eq!(fleet.server(0).accepted_logins(), 0);
}
