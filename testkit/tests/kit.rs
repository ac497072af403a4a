//! The kit's own checks: OpenSSH's `ssh` can use what the kit sets up.

use std::process::Output;
use std::time::Duration;

use sshmcp_testkit::{Fleet, SshServer, SshServerOptions, output_within, test_user};

const SSH_TIMEOUT: Duration = Duration::from_secs(20);

fn ssh(fleet: &Fleet, alias: &str, command: &str) -> Output {
    output_within(fleet.ssh(alias).arg(command), SSH_TIMEOUT)
}

fn assert_ok(output: &Output, fleet: &Fleet, i: usize) {
    assert!(
        output.status.success(),
        "ssh failed ({}): {}\nsshd log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        fleet.server(i).log()
    );
}

#[test]
fn ssh_reaches_every_host_of_a_fleet() {
    let fleet = Fleet::start(2);
    for i in 0..2 {
        let output = ssh(&fleet, &fleet.alias(i), "echo ok");
        assert_ok(&output, &fleet, i);
        assert_eq!(String::from_utf8_lossy(&output.stdout), "ok\n");
    }
    assert_eq!(fleet.alias(0), "host1");
    assert_ne!(fleet.server(0).addr(), fleet.server(1).addr());
}

#[test]
fn remote_commands_run_as_the_test_user() {
    let fleet = Fleet::start(1);
    let output = ssh(&fleet, "host1", "id -un; echo $HOME");
    assert_ok(&output, &fleet, 0);
    let user = test_user();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}\n{}\n", user.name(), user.home().display())
    );
    assert_eq!(fleet.server(0).accepted_logins(), 1);
}

#[test]
fn restarted_server_keeps_address_port_and_host_key() {
    let fleet = Fleet::start(1);
    let server = fleet.server(0);
    let (port, key) = (server.port(), server.host_key_public());
    server.stop();
    assert!(!server.is_running());
    assert!(
        !ssh(&fleet, "host1", "true").status.success(),
        "ssh to a stopped server succeeded"
    );
    server.restart();
    assert!(server.is_running());
    assert_eq!((server.port(), server.host_key_public()), (port, key));
    let output = ssh(&fleet, "host1", "echo ok");
    assert_ok(&output, &fleet, 0);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "ok\n");
}

#[test]
fn changed_host_key_is_refused_by_ssh() {
    let fleet = Fleet::start(1);
    let old_key = fleet.server(0).host_key_public();
    let new_key = fleet.server(0).restart_with_new_host_key();
    assert_ne!(old_key, new_key);

    let output = ssh(&fleet, "host1", "echo ok");
    assert!(!output.status.success(), "ssh accepted a changed host key");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("REMOTE HOST IDENTIFICATION HAS CHANGED"),
        "unexpected ssh error: {stderr}"
    );

    fleet.write_known_hosts();
    assert_ok(&ssh(&fleet, "host1", "true"), &fleet, 0);
}

#[test]
fn stopped_server_takes_its_connections_and_remote_processes_with_it() {
    let fleet = Fleet::start(1);
    let server = fleet.server(0);
    let token = format!("sleep 3{}", std::process::id() % 10_000 + 10_000);
    let mut session = fleet.ssh("host1");
    session.arg(format!("{token} </dev/null >/dev/null 2>&1"));
    let session = std::thread::spawn(move || output_within(&mut session, SSH_TIMEOUT));
    sshmcp_testkit::wait_for(
        || !server.pids_of_user_matching(&token).is_empty(),
        Duration::from_secs(10),
        "the remote sleep to start",
    );
    assert_eq!(server.connection_count(), 1);

    server.stop();

    assert!(server.pids_of_user_matching(&token).is_empty());
    let output = session.join().expect("ssh thread");
    assert!(!output.status.success(), "ssh survived its server");
}

#[test]
fn killed_connections_leave_the_server_accepting() {
    let fleet = Fleet::start(1);
    let server = fleet.server(0);
    let token = format!("sleep 4{}", std::process::id() % 10_000 + 10_000);
    let mut session = fleet.ssh("host1");
    session.arg(&token);
    let session = std::thread::spawn(move || output_within(&mut session, SSH_TIMEOUT));
    sshmcp_testkit::wait_for(
        || server.connection_count() == 1 && !server.pids_of_user_matching(&token).is_empty(),
        Duration::from_secs(10),
        "the ssh session to start",
    );

    server.kill_connections();

    assert!(!session.join().expect("ssh thread").status.success());
    assert!(server.is_running());
    assert_ok(&ssh(&fleet, "host1", "true"), &fleet, 0);
}

#[test]
fn max_sessions_and_extra_lines_reach_sshd_config() {
    let server = SshServer::start(SshServerOptions {
        max_sessions: Some(3),
        extra_config: vec!["ClientAliveInterval 7".into()],
        ..SshServerOptions::default()
    });
    let config = std::fs::read_to_string(server.dir().join("sshd_config")).expect("config");
    assert!(config.contains("MaxSessions 3\n"), "{config}");
    assert!(!config.contains("MaxStartups"), "{config}");
    assert!(config.contains("ClientAliveInterval 7\n"), "{config}");
    assert!(server.known_hosts_line().starts_with(&format!(
        "[{}]:{} ssh-ed25519 AAAA",
        server.addr(),
        server.port()
    )));
}

#[test]
fn server_waits_out_a_briefly_taken_port() {
    let addr: std::net::IpAddr = "127.0.0.251".parse().expect("address");
    let squatter = std::net::TcpListener::bind((addr, 0)).expect("bind");
    let port = squatter.local_addr().expect("addr").port();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(squatter);
    });
    let server = SshServer::start(SshServerOptions {
        listen_addr: Some(addr),
        port: Some(port),
        ..SshServerOptions::default()
    });
    release.join().expect("release thread");
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert!(
        server.log().contains("Address already in use"),
        "{}",
        server.log()
    );
}

#[test]
fn test_user_can_write_in_a_scratch_dir() {
    let fleet = Fleet::start(1);
    let scratch = test_user().scratch_dir();
    let file = scratch.path().join("written-remotely");
    let output = ssh(&fleet, "host1", &format!("echo hi > {}", file.display()));
    assert_ok(&output, &fleet, 0);
    assert_eq!(std::fs::read_to_string(&file).expect("remote file"), "hi\n");
}
