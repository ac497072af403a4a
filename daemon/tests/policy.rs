//! The host policy in the dispatcher, against real sshd: read-only and
//! closed hosts, remote roots that `..` and symlinks cannot leave, caller
//! rules, `hosts` showing each host's access, and many clients at once
//! getting each their own verdicts. (The command parser's bypass corpus is
//! in `daemon/src/policy/tests.rs`.)

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use common::{connect, exec, exec_request, request};
use sshmcp_proto::client::{DaemonClient, Event};
use sshmcp_proto::{
    ClientInfo, Error, ErrorKind, ReadFileRequest, Request, Response, ShellOpenRequest,
    WriteFileRequest,
};
use sshmcp_testkit::{Daemon, Fleet, test_user};

fn read(path: &str) -> Request {
    Request::ReadFile(ReadFileRequest {
        host: "host1".into(),
        path: path.into(),
        ..Default::default()
    })
}

fn write(path: &str) -> Request {
    Request::WriteFile(WriteFileRequest {
        host: "host1".into(),
        path: path.into(),
        data: b"x".to_vec(),
        mode: None,
        append: false,
        create_dirs: false,
    })
}

async fn denied(client: &DaemonClient, req: Request) -> Error {
    let what = format!("{req:?}");
    match request(client, req).await {
        Err(e) if e.kind == ErrorKind::PolicyDenied => e,
        other => panic!("{what} should be refused by the policy: {other:?}"),
    }
}

async fn access_of(client: &DaemonClient, alias: &str) -> String {
    match request(client, Request::Hosts).await {
        Ok(Response::Hosts(list)) => list
            .hosts
            .into_iter()
            .find(|h| h.alias == alias)
            .map(|h| h.access)
            .unwrap(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_host_runs_what_reads_and_refuses_the_rest_naming_the_rule() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[policy.hosts.\"host*\"]\naccess = \"read-only\"\n");
    let client = connect(daemon.socket()).await;
    assert_eq!(access_of(&client, "host1").await, "read-only");

    let out = exec(
        &client,
        exec_request("host1", "uname -s && ls / | head -n 3"),
    )
    .await
    .unwrap();
    assert_eq!(out.exit_code, Some(0), "{out:?}");

    for command in [
        "rm -rf /tmp/x",
        "ls; rm -rf /tmp/x",
        "echo $(rm -rf /tmp/x)",
        "env rm -rf /tmp/x",
        "find /tmp -delete",
        "sh -c 'rm -rf /tmp/x'",
    ] {
        let e = match exec(&client, exec_request("host1", command)).await {
            Err(e) => e,
            Ok(out) => panic!("{command} ran: {out:?}"),
        };
        assert_eq!(e.kind, ErrorKind::PolicyDenied, "{command}: {e:?}");
        assert!(e.message.contains("host1"), "{command}: {}", e.message);
        assert!(
            e.message.contains("policy.hosts.\"host*\""),
            "{command}: {}",
            e.message
        );
    }
    // sudo is a wrapper: what it runs is judged.
    let mut sudo = exec_request("host1", "rm -f /tmp/x");
    sudo.sudo = true;
    assert_eq!(
        exec(&client, sudo).await.unwrap_err().kind,
        ErrorKind::PolicyDenied
    );

    let home = test_user().scratch_dir();
    std::fs::write(home.path().join("note"), "hello").unwrap();
    let path = home.path().join("note").display().to_string();
    assert!(matches!(
        request(&client, read(&path)).await,
        Ok(Response::ReadFile(_))
    ));
    let e = denied(&client, write(&path)).await;
    assert!(e.message.contains("read-only"), "{}", e.message);
    assert_eq!(
        std::fs::read_to_string(home.path().join("note")).unwrap(),
        "hello"
    );
    let e = denied(
        &client,
        Request::ShellOpen(ShellOpenRequest {
            host: "host1".into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(e.message.contains("shell"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_host_refuses_everything_and_says_so() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[policy.hosts.host1]\naccess = \"deny\"\n");
    let client = connect(daemon.socket()).await;
    assert_eq!(access_of(&client, "host1").await, "deny");
    let e = exec(&client, exec_request("host1", "true"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}");
    assert!(
        e.message.contains("policy.hosts.\"host1\""),
        "{}",
        e.message
    );
    denied(&client, read("/etc/hostname")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_roots_hold_against_dot_dot_and_symlinks() {
    let fleet = Fleet::start(1);
    let root = test_user().scratch_dir();
    let outside = test_user().scratch_dir();
    std::fs::write(root.path().join("in.txt"), "inside").unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.path().join("link")).unwrap();
    let daemon = Daemon::start(
        &fleet,
        &format!(
            "[policy.hosts.host1]\nremote_roots = [\"{}\"]\nremote_deny = [\"{}/private\"]\n",
            root.path().display(),
            root.path().display()
        ),
    );
    let client = connect(daemon.socket()).await;
    let r = |rel: &str| format!("{}/{rel}", root.path().display());
    assert!(matches!(
        request(&client, read(&r("in.txt"))).await,
        Ok(Response::ReadFile(_))
    ));
    let outside_name = outside.path().file_name().unwrap().to_str().unwrap();
    for sneaky in [
        r(&format!("../{outside_name}/secret.txt")),
        r("link/secret.txt"),
        outside.path().join("secret.txt").display().to_string(),
    ] {
        let e = denied(&client, read(&sneaky)).await;
        assert!(
            e.message.contains("remote_roots"),
            "{sneaky}: {}",
            e.message
        );
    }
    // A new file under a symlink out is refused before it is written.
    denied(&client, write(&r("link/new.txt"))).await;
    assert!(!outside.path().join("new.txt").exists());
    // Inside the root, writes go through; not inside a denied part of it.
    assert!(matches!(
        request(&client, write(&r("made.txt"))).await,
        Ok(Response::WriteFile(_))
    ));
    std::fs::create_dir(root.path().join("private")).unwrap();
    let e = denied(&client, write(&r("private/x"))).await;
    assert!(e.message.contains("remote_deny"), "{}", e.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_caller_rule_makes_one_mcp_client_read_only_everywhere() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[[policy.callers]]\nmcp_client = \"careful-*\"\naccess = \"read-only\"\n",
    );
    let careful = DaemonClient::connect(
        daemon.socket(),
        ClientInfo {
            binary: "sshmcp".into(),
            version: "0".into(),
            mcp_client: Some("careful-agent".into()),
            ..ClientInfo::default()
        },
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .unwrap();
    let other = connect(daemon.socket()).await;
    assert_eq!(access_of(&careful, "host1").await, "read-only");
    assert_eq!(access_of(&other, "host1").await, "full");
    let e = exec(
        &careful,
        exec_request("host1", "touch /tmp/sshmcp-policy-x"),
    )
    .await
    .unwrap_err();
    assert!(e.message.contains("policy.callers"), "{}", e.message);
    let out = exec(&other, exec_request("host1", "echo ok"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn many_clients_at_once_each_get_their_own_verdicts() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[policy.hosts.host1]\nallow_commands = [[\"echo\"]]\ndeny_commands = [[\"echo\", \"forbidden\"]]\n",
    );
    let mut tasks = Vec::new();
    for c in 0..4 {
        let client = connect(daemon.socket()).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..10 {
                let (command, allowed) = match (c + i) % 3 {
                    0 => (format!("echo hello{c}-{i}"), true),
                    1 => (format!("echo forbidden {c}-{i}"), false),
                    _ => (format!("rm -f /tmp/none-{c}-{i}"), false),
                };
                let reply = exec(&client, exec_request("host1", &command)).await;
                match (allowed, reply) {
                    (true, Ok(out)) => {
                        assert_eq!(out.stdout, format!("hello{c}-{i}\n").into_bytes())
                    }
                    (false, Err(e)) => assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}"),
                    (allowed, other) => panic!("{command} (allowed: {allowed}): {other:?}"),
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmation_goes_to_the_client_and_its_answer_decides() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[policy.hosts.host1]\nconfirm = true\n");
    let client = connect(daemon.socket()).await;
    let home = test_user().scratch_dir();
    let path = |name: &str| home.path().join(name).display().to_string();

    // Allowed: the write goes through once the client says so.
    let mut call = client.start(write(&path("yes"))).unwrap();
    match call.next_event().await.unwrap() {
        Event::Confirm(asked) => {
            assert_eq!(
                (asked.host.as_str(), asked.tool.as_str()),
                ("host1", "write_file")
            );
            assert!(asked.what.contains(&path("yes")), "{asked:?}");
            assert!(asked.rule.contains("confirm"), "{asked:?}");
            call.confirm(true, None);
        }
        other => panic!("expected a confirmation: {other:?}"),
    }
    assert!(matches!(
        call.reply().await.unwrap(),
        Ok(Response::WriteFile(_))
    ));
    assert!(home.path().join("yes").exists());

    // Refused, with the client's reason in the error.
    let mut call = client.start(write(&path("no"))).unwrap();
    assert!(matches!(
        call.next_event().await.unwrap(),
        Event::Confirm(_)
    ));
    call.confirm(false, Some("not today".into()));
    let e = call.reply().await.unwrap().unwrap_err();
    assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}");
    assert!(e.message.contains("not today"), "{}", e.message);
    assert!(!home.path().join("no").exists());

    // The audit says who decided what: the allowed write as confirmed,
    // the refused one as denied by the rule.
    let log = daemon.dir().join("state/sshmcp/audit.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let writes: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|r: &serde_json::Value| r["tool"] == "write_file")
        .collect();
    assert_eq!(writes.len(), 2, "{text}");
    assert_eq!(writes[0]["decision"], "confirmed", "{}", writes[0]);
    assert_eq!(writes[1]["decision"], "deny", "{}", writes[1]);
    assert_eq!(writes[1]["rule"], "policy.hosts.\"host1\".confirm = true");

    // A client that cannot ask declines; reads are not asked about.
    let e = denied(&client, write(&path("quiet"))).await;
    assert!(e.message.contains("confirmation"), "{}", e.message);
    // (The confirmed write's own bytes, kept by the cache.)
    assert!(matches!(
        request(&client, read(&path("yes"))).await,
        Ok(Response::Cached(c)) if matches!(*c.response, Response::ReadFile(_))
    ));
    // A call in a batch cannot be put to anyone.
    let batch = Request::Batch(sshmcp_proto::BatchRequest {
        calls: vec![write(&path("batched"))],
        concurrency: None,
        stop_on_error: false,
    });
    match request(&client, batch).await {
        Ok(Response::Batch(replies)) => {
            let e = replies[0].clone().unwrap().unwrap_err();
            assert!(e.message.contains("batch"), "{}", e.message);
        }
        other => panic!("{other:?}"),
    }
}
