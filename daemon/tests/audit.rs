//! The audit log against real sshd: what each request leaves in it, what
//! it never holds, and what happens when it cannot be written. The chain
//! is checked with `sshmcp_proto::audit::Verifier`, the code
//! `sshmcpctl audit verify` runs (its own tests break the log on purpose).

mod common;

use std::path::{Path, PathBuf};

use common::{connect, exec, exec_err, exec_ok, exec_request, request};
use serde_json::Value;
use sshmcp_proto::audit::{self as format, Head, Key, Verifier};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    BatchRequest, ErrorKind, ExecRequest, ReadFileRequest, Request, Response, ShellOpenRequest,
    StatRequest, WriteFileRequest,
};
use sshmcp_testkit::{Daemon, Fleet, TestSudo, test_sudo, test_user, unique_digits};

/// The daemon's state directory, where the test kit points it.
fn state_dir(daemon: &Daemon) -> PathBuf {
    daemon.dir().join("state").join("sshmcp")
}

fn log_path(daemon: &Daemon) -> PathBuf {
    state_dir(daemon).join(format::LOG_FILE)
}

/// Every line of the log and its rotated files, in order.
fn lines(log: &Path) -> Vec<String> {
    format::log_files(log)
        .expect("list the audit log's files")
        .iter()
        .flat_map(|file| {
            std::fs::read_to_string(file)
                .unwrap_or_else(|e| panic!("read {}: {e}", file.display()))
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every record so far, as JSON.
fn records(daemon: &Daemon) -> Vec<Value> {
    lines(&log_path(daemon))
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The records once `done` holds of them, or after 30 s, for a record
/// that no reply tells the arrival of.
async fn records_when(daemon: &Daemon, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let records = records(daemon);
        if done(&records) || std::time::Instant::now() >= deadline {
            return records;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The newest record of `tool`.
fn last_of(daemon: &Daemon, tool: &str) -> Value {
    records(daemon)
        .into_iter()
        .rev()
        .find(|r| r["tool"] == tool)
        .unwrap_or_else(|| {
            panic!(
                "no `{tool}` record in:\n{}",
                lines(&log_path(daemon)).join("\n")
            )
        })
}

/// The chain of the daemon's log, checked from its first record to the
/// head, as `sshmcpctl audit verify` checks it.
fn verify(daemon: &Daemon) -> Result<format::Summary, format::Finding> {
    let dir = state_dir(daemon);
    let key = Key::load(&dir.join(format::KEY_FILE)).expect("the audit key");
    let head = Head::load(&dir.join(format::HEAD_FILE)).expect("the audit head");
    let mut verifier = Verifier::new(&key, head, true);
    for file in format::log_files(&log_path(daemon)).expect("list the log's files") {
        verifier.file(&file.display().to_string());
        let text = std::fs::read(&file).expect("read a log file");
        for line in text.split_inclusive(|&b| b == b'\n') {
            let terminated = line.ends_with(b"\n");
            verifier.line(line.strip_suffix(b"\n").unwrap_or(line), terminated)?;
        }
    }
    verifier.finish()
}

async fn start(config: &str) -> (Fleet, Daemon, DaemonClient) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, config);
    let client = connect(daemon.socket()).await;
    (fleet, daemon, client)
}

fn stat(path: &str) -> Request {
    Request::Stat(StatRequest {
        host: "host1".into(),
        path: path.into(),
        ..Default::default()
    })
}

fn write_file(path: &str, data: &[u8]) -> Request {
    Request::WriteFile(WriteFileRequest {
        host: "host1".into(),
        path: path.into(),
        data: data.to_vec(),
        mode: None,
        append: false,
        create_dirs: false,
    })
}

/// Wait until the records of every request `client` has had answered are
/// written: a read's record follows its reply, but always comes before the
/// connection's next reply (`status` is not recorded itself).
async fn settled(client: &DaemonClient) {
    status(client).await;
}

async fn status(client: &DaemonClient) -> sshmcp_proto::Status {
    match request(client, Request::Status).await {
        Ok(Response::Status(status)) => status,
        other => panic!("status: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_is_recorded_with_who_ran_what_where_and_how_it_ended_before_its_reply() {
    let (_fleet, daemon, client) = start("").await;
    let out = exec_ok(
        &daemon,
        &client,
        exec_request("host1", "printf abc; exit 3"),
    )
    .await;
    assert_eq!(out.exit_code, Some(3));
    // Read at once: the record is on disk before the reply is sent.
    let record = last_of(&daemon, "exec");
    assert_eq!(record["host"], "host1", "{record}");
    assert_eq!(record["command"], "printf abc; exit 3", "{record}");
    assert_eq!(record["decision"], "allow", "{record}");
    // What rule let it through is the policy's to say.
    assert!(
        record["rule"].is_null() || record["rule"].is_string(),
        "{record}"
    );
    assert_eq!(record["result"], "ok", "{record}");
    assert_eq!(record["exit_code"], 3, "{record}");
    assert_eq!(record["bytes"], 3, "{record}");
    assert!(record["duration_ms"].is_u64(), "{record}");
    let caller = &record["caller"];
    // SAFETY: getuid cannot fail and has no preconditions.
    assert_eq!(caller["uid"], unsafe { libc::getuid() }, "{record}");
    assert_eq!(caller["pid"], std::process::id(), "{record}");
    let exe = std::env::current_exe().expect("the test's executable");
    assert_eq!(caller["exe"], exe.display().to_string(), "{record}");
    assert_eq!(caller["binary"], "daemon-tests", "{record}");
    assert_eq!(caller["mcp_client"], Value::Null, "{record}");
    let time = record["time"].as_str().expect("a time");
    assert!(
        time.len() == 24 && time.ends_with('Z') && time.as_bytes()[19] == b'.',
        "RFC 3339 UTC with milliseconds: {time}"
    );
    assert_eq!(record["prev"].as_str().map(str::len), Some(64), "{record}");
    assert_eq!(record["mac"].as_str().map(str::len), Some(64), "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_log_begins_with_the_daemons_start_and_numbers_records_from_one() {
    let (_fleet, daemon, client) = start("").await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    let records = records(&daemon);
    assert_eq!(records[0]["tool"], "start", "{records:?}");
    assert_eq!(records[0]["caller"]["binary"], "sshmcpd");
    assert_eq!(records[0]["caller"]["pid"], daemon.pid());
    let seqs: Vec<u64> = records.iter().filter_map(|r| r["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=records.len() as u64).collect::<Vec<_>>());
    let summary = verify(&daemon).expect("an intact chain");
    assert_eq!(summary.records, records.len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_operations_are_recorded_with_their_paths_and_sizes() {
    let (_fleet, daemon, client) = start("").await;
    let dir = test_user().scratch_dir();
    let path = format!("{}/notes.txt", dir.path().display());
    request(&client, write_file(&path, b"12345"))
        .await
        .expect("write_file");
    let written = last_of(&daemon, "write_file");
    assert_eq!(written["path"], path.as_str(), "{written}");
    assert_eq!(written["bytes"], 5, "{written}");
    assert_eq!(written["result"], "ok", "{written}");

    request(&client, stat(&path)).await.expect("stat");
    settled(&client).await;
    let stat_ok = last_of(&daemon, "stat");
    assert_eq!(stat_ok["path"], path.as_str(), "{stat_ok}");
    assert_eq!(stat_ok["result"], "ok", "{stat_ok}");

    let missing = format!("{}/missing", dir.path().display());
    let err = request(&client, stat(&missing))
        .await
        .expect_err("a missing path");
    assert_eq!(err.kind, ErrorKind::NotFound);
    settled(&client).await;
    let stat_missing = last_of(&daemon, "stat");
    assert_eq!(stat_missing["path"], missing.as_str(), "{stat_missing}");
    assert_eq!(stat_missing["result"], "not_found", "{stat_missing}");
    assert_eq!(stat_missing["decision"], "allow", "{stat_missing}");
    assert!(
        stat_missing["error"]
            .as_str()
            .is_some_and(|e| e.contains("missing")),
        "{stat_missing}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_in_parallel_are_all_recorded_before_the_connections_next_reply() {
    const READS: usize = 40;
    let (_fleet, daemon, client) = start("").await;
    let dir = test_user().scratch_dir();
    let path = format!("{}/read-me.txt", dir.path().display());
    request(&client, write_file(&path, b"abc"))
        .await
        .expect("write_file");
    let before = records(&daemon).len();
    // Misses and hits of the cache, all in flight on one connection.
    let reads = (0..READS).map(|n| {
        let read = match n % 3 {
            0 => stat(&path),
            1 => Request::ReadFile(ReadFileRequest {
                host: "host1".into(),
                path: path.clone(),
                ..ReadFileRequest::default()
            }),
            _ => stat(&format!("{path}.missing-{n}")),
        };
        request(&client, read)
    });
    futures_util::future::join_all(reads).await;
    settled(&client).await;
    let records = records(&daemon);
    let new = &records[before..];
    assert_eq!(new.len(), READS, "{new:?}");
    assert!(
        new.iter()
            .all(|r| r["tool"] == "stat" || r["tool"] == "read_file"),
        "{new:?}"
    );
    verify(&daemon).unwrap_or_else(|finding| panic!("{finding}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_whose_client_hung_up_are_still_recorded() {
    const READS: usize = 20;
    let (_fleet, daemon, client) = start("").await;
    let before = records(&daemon).len();
    // Sent, and the connection closed before any reply is read.
    let mut raw = common::RawClient::connect_with_hello(&daemon).await;
    for id in 0..READS as u64 {
        raw.send(&sshmcp_proto::ClientFrame::Request {
            id: id + 1,
            request: stat("/"),
        })
        .await;
    }
    drop(raw);
    // Their records come as the daemon finishes them; no reply waits.
    let stats = |records: &[Value]| {
        records[before..]
            .iter()
            .filter(|r| r["tool"] == "stat")
            .count()
    };
    let records = records_when(&daemon, |records| stats(records) == READS).await;
    assert_eq!(stats(&records), READS, "{records:?}");
    settled(&client).await;
    verify(&daemon).unwrap_or_else(|finding| panic!("{finding}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reads_record_does_not_wait_for_a_client_that_does_not_read_its_reply() {
    let (_fleet, daemon, client) = start("").await;
    let dir = test_user().scratch_dir();
    let path = format!("{}/big.bin", dir.path().display());
    // Far more than a Unix socket's buffer holds.
    let data = vec![b'x'; 8 << 20];
    request(&client, write_file(&path, &data))
        .await
        .expect("write_file");
    let before = records(&daemon).len();
    let mut raw = common::RawClient::connect_with_hello(&daemon).await;
    raw.send(&sshmcp_proto::ClientFrame::Request {
        id: 1,
        request: Request::ReadFile(ReadFileRequest {
            host: "host1".into(),
            path: path.clone(),
            ..ReadFileRequest::default()
        }),
    })
    .await;
    // The reply is stuck in the socket; the record is written anyway.
    let read = |records: &[Value]| {
        records[before..]
            .iter()
            .any(|r| r["tool"] == "read_file" && r["path"] == path.as_str())
    };
    let records = records_when(&daemon, read).await;
    assert!(
        read(&records),
        "no read_file record while its reply waits: {records:?}"
    );
    drop(raw);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_by_validation_is_recorded_as_denied_with_its_rule() {
    let (_fleet, daemon, client) = start("").await;
    let err = exec_err(&client, exec_request("host1", "echo a\0b")).await;
    assert_eq!(err.kind, ErrorKind::BadRequest);
    let record = last_of(&daemon, "exec");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["rule"], "validation", "{record}");
    assert_eq!(record["result"], "bad_request", "{record}");
    assert_eq!(record["command"], "echo a\u{0}b", "{record}");
    let error = record["error"].as_str().expect("an error message");
    assert!(
        error.chars().count() <= format::MAX_ERROR_CHARS + 1,
        "{error}"
    );

    let err = exec_err(&client, exec_request("nowhere", "true")).await;
    assert_eq!(err.kind, ErrorKind::HostUnknown);
    let record = last_of(&daemon, "exec");
    assert_eq!(record["host"], "nowhere", "{record}");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["result"], "host_unknown", "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_request_is_recorded_as_denied_by_the_limit() {
    let (_fleet, daemon, client) = start("[limits]\nclient_rps = 1\nclient_burst = 1\n").await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    let err = exec_err(&client, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::Overloaded);
    let record = last_of(&daemon, "exec");
    assert_eq!(record["decision"], "deny", "{record}");
    assert_eq!(record["rule"], "limits.client_rps", "{record}");
    assert_eq!(record["result"], "overloaded", "{record}");
}

#[tokio::test(flavor = "multi_thread")]
async fn looking_at_the_daemon_leaves_no_record() {
    let (_fleet, daemon, client) = start("").await;
    let before = records(&daemon).len();
    for looking in [
        Request::Status,
        Request::Stats,
        Request::Hosts,
        Request::Cache,
        Request::Jobs { host: None },
        Request::Shells { host: None },
    ] {
        request(&client, looking).await.expect("an answer");
    }
    assert_eq!(records(&daemon).len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_records_each_call_and_not_itself() {
    let (_fleet, daemon, client) = start("").await;
    let reply = request(
        &client,
        Request::Batch(BatchRequest {
            calls: vec![Request::Exec(exec_request("host1", "echo one")), stat("/")],
            concurrency: None,
            stop_on_error: false,
        }),
    )
    .await;
    assert!(matches!(reply, Ok(Response::Batch(_))), "{reply:?}");
    let tools: Vec<Value> = records(&daemon).iter().map(|r| r["tool"].clone()).collect();
    assert!(
        tools.contains(&"exec".into()) && tools.contains(&"stat".into()),
        "{tools:?}"
    );
    assert!(!tools.contains(&"batch".into()), "{tools:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn contents_stdin_output_and_env_values_never_reach_the_log() {
    let (_fleet, daemon, client) = start("").await;
    let marker = unique_digits();
    let content = format!("file-content-{marker}");
    let stdin = format!("stdin-secret-{marker}");
    let env_value = format!("env-value-{marker}");
    let dir = test_user().scratch_dir();
    let path = format!("{}/secret.txt", dir.path().display());

    request(&client, write_file(&path, content.as_bytes()))
        .await
        .expect("write_file");
    let read = request(
        &client,
        Request::ReadFile(ReadFileRequest {
            host: "host1".into(),
            path: path.clone(),
            ..Default::default()
        }),
    )
    .await;
    // The write's own bytes, kept by the cache.
    assert!(
        matches!(&read, Ok(Response::Cached(c)) if matches!(*c.response, Response::ReadFile(_))),
        "{read:?}"
    );
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            stdin: Some(stdin.clone().into_bytes()),
            ..exec_request(
                "host1",
                "cat >/dev/null; echo b3V0cHV0LXNlY3JldA== | base64 -d",
            )
        },
    )
    .await;
    assert_eq!(out.stdout, b"output-secret");
    let opened = request(
        &client,
        Request::ShellOpen(ShellOpenRequest {
            host: "host1".into(),
            env: [("SSHMCP_AUDIT_TOKEN".to_string(), env_value.clone())].into(),
            ..Default::default()
        }),
    )
    .await;
    assert!(matches!(opened, Ok(Response::ShellOpened(_))), "{opened:?}");

    let log = lines(&log_path(&daemon)).join("\n");
    for secret in [&content, &stdin, &env_value, &"output-secret".to_string()] {
        assert!(
            !log.contains(secret.as_str()),
            "`{secret}` is in the audit log:\n{log}"
        );
    }
    let shell_open = last_of(&daemon, "shell_open");
    assert_eq!(
        shell_open["env_names"],
        serde_json::json!(["SSHMCP_AUDIT_TOKEN"]),
        "{shell_open}"
    );
}

/// sudo as the test machine has it, or `None` (after saying why) when
/// this run cannot set it up.
fn sudo_or_skip() -> Option<&'static TestSudo> {
    match test_sudo() {
        Ok(sudo) => Some(sudo),
        Err(why) => {
            eprintln!("skipping: {why}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sudo_password_never_reaches_the_log() {
    let Some(sudo) = sudo_or_skip() else { return };
    let secrets = tempfile::tempdir().expect("a temporary directory");
    let password_file = secrets.path().join("password");
    std::fs::write(&password_file, format!("{}\n", sudo.password())).expect("write the password");
    let config = format!(
        "[sudo.hosts.\"host1\"]\npassword_command = \"cat '{}'\"\n",
        password_file.display()
    );
    let (_fleet, daemon, client) = start(&config).await;
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            sudo: true,
            ..exec_request("host1", "id -u")
        },
    )
    .await;
    assert_eq!(out.stdout, b"0\n");
    let record = last_of(&daemon, "exec");
    assert_eq!(record["sudo"], true, "{record}");
    let log = lines(&log_path(&daemon)).join("\n");
    assert!(
        !log.contains(sudo.password()),
        "the sudo password is in the audit log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn records_from_four_clients_in_parallel_make_one_chain() {
    const CLIENTS: usize = 4;
    const CALLS: usize = 25;
    let (_fleet, daemon, _client) = start("").await;
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = connect(daemon.socket()).await;
        tasks.push(tokio::spawn(async move {
            let calls =
                (0..CALLS).map(|n| exec(&client, exec_request("host1", &format!("echo {c}-{n}"))));
            futures_util::future::join_all(calls).await
        }));
    }
    for task in tasks {
        for out in task.await.expect("a client's calls") {
            out.expect("every call succeeds");
        }
    }
    let summary = verify(&daemon).unwrap_or_else(|finding| panic!("{finding}"));
    let execs = records(&daemon)
        .iter()
        .filter(|r| r["tool"] == "exec")
        .count();
    assert_eq!(execs, CLIENTS * CALLS);
    assert_eq!(summary.records, records(&daemon).len() as u64);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chain_goes_on_across_a_restart() {
    let (_fleet, daemon, client) = start("").await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    drop(client);
    daemon.restart();
    let client = connect(daemon.socket()).await;
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    let summary = verify(&daemon).unwrap_or_else(|finding| panic!("{finding}"));
    let starts = records(&daemon)
        .iter()
        .filter(|r| r["tool"] == "start")
        .count();
    assert_eq!(starts, 2);
    assert_eq!(summary.records, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_log_with_deny_refuses_changes_and_still_serves_reads() {
    let (_fleet, _daemon, client) = start("[audit]\npath = \"/dev/full\"\n").await;
    let err = exec_err(&client, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::PolicyDenied, "{err:?}");
    for says in [
        "/dev/full",
        "No space left on device",
        "on_failure = \"allow\"",
    ] {
        assert!(err.message.contains(says), "{says}: {}", err.message);
    }
    let written = request(&client, write_file("/tmp/never", b"x")).await;
    assert!(
        matches!(&written, Err(e) if e.kind == ErrorKind::PolicyDenied),
        "{written:?}"
    );
    let served = request(&client, stat("/")).await;
    assert!(matches!(served, Ok(Response::Stat(_))), "{served:?}");

    let status = status(&client).await;
    let error = status.audit.error.expect("the audit log is failing");
    assert!(error.contains("No space left on device"), "{error}");
    assert_eq!(status.audit.path.as_deref(), Some("/dev/full"));
    assert!(
        status
            .degraded
            .is_some_and(|why| why.contains("audit log failing")),
        "a failing audit log makes the daemon degraded"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwritable_log_with_allow_still_runs_changes() {
    let (_fleet, daemon, client) =
        start("[audit]\npath = \"/dev/full\"\non_failure = \"allow\"\n").await;
    let out = exec_ok(&daemon, &client, exec_request("host1", "echo ran")).await;
    assert_eq!(out.stdout, b"ran\n");
    let status = status(&client).await;
    assert!(status.audit.error.is_some(), "{:?}", status.audit);
    assert_eq!(status.audit.on_failure, "allow");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_that_could_not_be_written_recovers_by_itself_and_counts_what_it_missed() {
    let place = tempfile::tempdir().expect("a temporary directory");
    // A file where the log's directory should be: the log cannot be made
    // (ENOTDIR), even by root, until it is gone.
    let blocker = place.path().join("logs");
    std::fs::write(&blocker, "").expect("write the blocker");
    let log = blocker.join("audit.jsonl");
    let config = format!("[audit]\npath = \"{}\"\n", log.display());
    let (_fleet, daemon, client) = start(&config).await;
    let err = exec_err(&client, exec_request("host1", "true")).await;
    assert_eq!(err.kind, ErrorKind::PolicyDenied, "{err:?}");
    assert!(
        err.message.contains(&log.display().to_string()),
        "{}",
        err.message
    );

    std::fs::remove_file(&blocker).expect("remove the blocker");
    // The next request retries: a read, which runs anyway, brings it back.
    request(&client, stat("/")).await.expect("stat");
    exec_ok(&daemon, &client, exec_request("host1", "true")).await;
    assert_eq!(status(&client).await.audit.error, None);
    let text = std::fs::read_to_string(&log).expect("the log exists now");
    let first: Value = serde_json::from_str(text.lines().next().expect("a record")).expect("JSON");
    assert_eq!(first["tool"], "stat", "{first}");
    assert_eq!(
        first["unrecorded"], 2,
        "the start and the refused exec: {first}"
    );
}
