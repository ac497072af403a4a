//! Persistent shells against real sshd: state that carries between calls,
//! commands interrupted without losing the shell, output that cannot fake
//! the end of a command, shells that end (exit, idle, close) and say why,
//! limits, and shells shared by clients and run in parallel.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{MarkedSleep, connect, eventually, request, within};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    Error, ErrorKind, Request, Response, ShellCloseRequest, ShellExecOutput, ShellExecRequest,
    ShellInfo, ShellOpenRequest, ShellOpened, ShellState,
};
use sshmcp_testkit::{Daemon, Fleet};

async fn open_with(
    client: &DaemonClient,
    cwd: Option<&str>,
    env: &[(&str, &str)],
) -> Result<ShellOpened, Error> {
    let req = ShellOpenRequest {
        host: "host1".into(),
        cwd: cwd.map(Into::into),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    match request(client, Request::ShellOpen(req)).await {
        Ok(Response::ShellOpened(opened)) => Ok(opened),
        Ok(other) => panic!("shell_open: {other:?}"),
        Err(e) => Err(e),
    }
}

async fn open(client: &DaemonClient) -> String {
    open_with(client, None, &[])
        .await
        .expect("shell_open")
        .shell_id
}

fn exec_request(shell: &str, command: &str, timeout_secs: Option<u64>) -> Request {
    Request::ShellExec(ShellExecRequest {
        shell_id: shell.into(),
        command: command.into(),
        timeout_secs,
        ..Default::default()
    })
}

async fn try_sh(
    client: &DaemonClient,
    shell: &str,
    command: &str,
) -> Result<ShellExecOutput, Error> {
    match request(client, exec_request(shell, command, None)).await {
        Ok(Response::ShellExec(out)) => Ok(*out),
        Ok(other) => panic!("shell_exec: {other:?}"),
        Err(e) => Err(e),
    }
}

async fn sh(client: &DaemonClient, shell: &str, command: &str) -> ShellExecOutput {
    try_sh(client, shell, command)
        .await
        .unwrap_or_else(|e| panic!("shell_exec `{command}`: {e:?}"))
}

/// Stdout of `command` in `shell`, which must succeed.
async fn stdout(client: &DaemonClient, shell: &str, command: &str) -> String {
    let out = sh(client, shell, command).await;
    assert_eq!(out.output.exit_code, Some(0), "`{command}`: {out:?}");
    String::from_utf8(out.output.stdout).expect("UTF-8")
}

async fn timed_out(client: &DaemonClient, shell: &str, command: &str) -> Error {
    match request(client, exec_request(shell, command, Some(1))).await {
        Err(e) => e,
        other => panic!("`{command}` should have timed out: {other:?}"),
    }
}

async fn close(client: &DaemonClient, shell: &str) -> Result<(), Error> {
    let req = ShellCloseRequest {
        shell_id: shell.into(),
    };
    match request(client, Request::ShellClose(req)).await {
        Ok(Response::Ok) => Ok(()),
        Ok(other) => panic!("shell_close: {other:?}"),
        Err(e) => Err(e),
    }
}

async fn shells(client: &DaemonClient) -> Vec<ShellInfo> {
    match request(client, Request::Shells { host: None }).await {
        Ok(Response::Shells(list)) => list,
        other => panic!("shells: {other:?}"),
    }
}

fn setup(config: &str) -> (Fleet, Daemon) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, config);
    (fleet, daemon)
}

#[tokio::test(flavor = "multi_thread")]
async fn cwd_variables_and_functions_carry_over_between_calls() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let opened = open_with(&client, Some("/tmp"), &[("GREETING", "it's a \"test\"")])
        .await
        .expect("shell_open");
    assert_eq!(opened.cwd, "/tmp");
    let id = &opened.shell_id;
    let made = sh(
        &client,
        id,
        "cd \"$(mktemp -d)\" && mkdir 'my dir' && cd 'my dir' && COUNT=41 && export SEEN=yes \
         && twice() { echo \"$1$1\"; }",
    )
    .await;
    assert_eq!(made.output.exit_code, Some(0), "{made:?}");
    let cwd = made.cwd.expect("the shell's cwd");
    assert!(
        cwd.starts_with("/tmp/") && cwd.ends_with("/my dir"),
        "{cwd}"
    );
    assert_eq!(
        stdout(
            &client,
            id,
            "pwd; echo $((COUNT + 1)) \"$SEEN\" \"$GREETING\"; twice ab; sh -c 'echo $SEEN'"
        )
        .await,
        format!("{cwd}\n42 yes it's a \"test\"\nabab\nyes\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_past_its_timeout_is_interrupted_and_the_shell_keeps_its_state() {
    let (fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let dir = sh(&client, &id, "cd \"$(mktemp -d)\" && KEPT=1").await.cwd;
    let dir = dir.expect("a cwd");
    let sleeper = MarkedSleep::new();
    let err = timed_out(&client, &id, &format!("{}; echo never", sleeper.command)).await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.message.contains("timeout_secs=1"), "{}", err.message);
    assert!(err.message.contains("interrupted (INT)"), "{}", err.message);
    assert!(
        err.message.contains(&format!("still open, in {dir}")),
        "{}",
        err.message
    );
    assert!(
        sleeper.pids(fleet.server(0)).is_empty(),
        "the sleep is gone"
    );
    // A loop of builtins has no process of its own to signal; INT to the
    // shell ends it all the same.
    let err = timed_out(&client, &id, "while :; do :; done").await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert_eq!(
        stdout(&client, &id, "pwd; echo $KEPT").await,
        format!("{dir}\n1\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_ignores_int_and_term_costs_the_shell_and_says_so() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let err = timed_out(&client, &id, "trap '' INT TERM; sleep 60").await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(
        err.message.contains("did not stop on INT or TERM"),
        "{}",
        err.message
    );
    let err = try_sh(&client, &id, "pwd").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(err.message.contains("shell_open"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_command_is_interrupted_and_the_shell_stays() {
    let (fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let sleeper = MarkedSleep::new();
    let call = client
        .start(exec_request(&id, &sleeper.command, None))
        .expect("send the shell_exec");
    let server = fleet.server(0);
    eventually(
        || !sleeper.pids(server).is_empty(),
        Duration::from_secs(30),
        "the sleep to start",
    )
    .await;
    call.cancel();
    let reply = within(Duration::from_secs(60), "the reply", call.reply())
        .await
        .expect("daemon answers");
    let err = reply.expect_err("a cancelled command fails");
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert!(err.message.contains("still open"), "{}", err.message);
    assert!(sleeper.pids(server).is_empty(), "the sleep is gone");
    assert_eq!(stdout(&client, &id, "echo alive").await, "alive\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn output_that_looks_like_a_marker_is_output() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let fake = "0123456789abcdef0123456789abcdef";
    let forged =
        format!("sshmcp-start-{fake}\nsshmcp-end-{fake} 0 /forged sshmcp-end-{fake}\nsshmcp-end-");
    let out = sh(
        &client,
        &id,
        &format!("printf '%s\\n' '{forged}'; printf '%s' '{forged}' >&2; echo after"),
    )
    .await;
    assert_eq!(
        String::from_utf8(out.output.stdout).unwrap(),
        format!("{forged}\nafter\n")
    );
    assert_eq!(String::from_utf8(out.output.stderr).unwrap(), forged);
    assert_ne!(out.cwd.as_deref(), Some("/forged"));
    // Tracing shows the shell's own lines, which never spell a marker.
    let traced = sh(&client, &id, "set -x; echo traced; set +x").await;
    assert_eq!(traced.output.stdout, b"traced\n");
    assert_eq!(stdout(&client, &id, "echo next").await, "next\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_reading_stdin_reads_end_of_file() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    assert_eq!(
        stdout(&client, &id, "cat; read line; echo \"read: $?\"").await,
        "read: 1\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_syntax_error_is_a_failed_command_not_a_lost_shell() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    sh(&client, &id, "cd /tmp").await;
    let out = sh(&client, &id, "if then fi (").await;
    assert_eq!(out.output.exit_code, Some(2), "{out:?}");
    assert!(!out.output.stderr.is_empty(), "{out:?}");
    assert_eq!(out.cwd.as_deref(), Some("/tmp"));
    assert_eq!(stdout(&client, &id, "echo ok").await, "ok\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_ends_the_shell_with_its_output_and_says_so() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let out = sh(&client, &id, "echo bye; exit 3").await;
    assert_eq!(out.output.stdout, b"bye\n");
    assert_eq!(out.output.exit_code, Some(3));
    assert_eq!(out.cwd, None);
    let closed = out.closed.expect("the shell says it closed");
    assert!(closed.contains("exited with status 3"), "{closed}");
    let err = try_sh(&client, &id, "echo again").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(
        err.message
            .contains("exited with status 3 during a command"),
        "{}",
        err.message
    );
    assert!(shells(&client).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_shell_is_closed_after_idle_secs() {
    let (_fleet, daemon) = setup("[shells]\nidle_secs = 1\n");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let mut gone = false;
    for _ in 0..600 {
        if shells(&client).await.is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the idle shell was never closed");
    let err = try_sh(&client, &id, "pwd").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(
        err.message.contains("[shells] idle_secs"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shells_run_their_commands_in_parallel() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let (waiter, setter) = (open(&client).await, open(&client).await);
    let dir = stdout(&client, &setter, "mktemp -d").await;
    let flag = format!("{}/flag", dir.trim());
    // The waiter ends only once the setter has run: one at a time, it
    // would wait out its timeout instead.
    let waiting = client
        .start(Request::ShellExec(ShellExecRequest {
            shell_id: waiter.clone(),
            command: format!("while [ ! -e '{flag}' ]; do sleep 0.05; done; echo seen"),
            timeout_secs: Some(120),
            ..Default::default()
        }))
        .expect("send");
    eventually_busy(&client, &waiter).await;
    assert_eq!(
        stdout(&client, &setter, &format!("touch '{flag}'; echo set")).await,
        "set\n"
    );
    let reply = within(Duration::from_secs(150), "the waiter", waiting.reply())
        .await
        .expect("daemon answers");
    match reply {
        Ok(Response::ShellExec(out)) => assert_eq!(out.output.stdout, b"seen\n"),
        other => panic!("{other:?}"),
    }
}

/// Waits until `shell` runs a command.
async fn eventually_busy(client: &DaemonClient, shell: &str) {
    for _ in 0..600 {
        let list = shells(client).await;
        if list
            .iter()
            .any(|s| s.shell_id == shell && s.state == ShellState::Busy)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("shell {shell} never got busy");
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_share_a_shell_one_command_at_a_time() {
    let (_fleet, daemon) = setup("");
    let first = connect(daemon.socket()).await;
    let id = open(&first).await;
    let mut clients = vec![first];
    for _ in 0..2 {
        clients.push(connect(daemon.socket()).await);
    }
    let mut calls = Vec::new();
    for client in &clients {
        for _ in 0..5 {
            // Two steps with a process between them: were two commands to
            // overlap, both would read the same count.
            let command = "n=$((${n:-0} + 1)); sleep 0; echo $n";
            calls.push(stdout(client, &id, command));
        }
    }
    let mut seen: Vec<u32> = futures_util::future::join_all(calls)
        .await
        .iter()
        .map(|out| out.trim().parse().expect("a count"))
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, (1..=15).collect::<Vec<u32>>());
    let info = shells(&clients[2]).await;
    assert_eq!(info.len(), 1);
    assert_eq!(info[0].commands, 15);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_on_a_busy_shell_waits_its_turn_until_its_timeout() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let blocked = client
        .start(Request::ShellExec(ShellExecRequest {
            shell_id: id.clone(),
            command: "while :; do sleep 1; done".into(),
            timeout_secs: Some(600),
            ..Default::default()
        }))
        .expect("send");
    eventually_busy(&client, &id).await;
    let err = timed_out(&client, &id, "echo late").await;
    assert_eq!(err.kind, ErrorKind::Overloaded, "{err:?}");
    assert!(err.message.contains("busy"), "{}", err.message);
    // Closing the shell ends the command that holds it.
    close(&client, &id).await.expect("shell_close");
    let reply = within(Duration::from_secs(60), "the blocked call", blocked.reply())
        .await
        .expect("daemon answers");
    let err = reply.expect_err("the command was cut short");
    assert_eq!(err.kind, ErrorKind::Cancelled, "{err:?}");
    assert!(err.message.contains("shell_close"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_refuse_a_shell_naming_them_and_shell_close() {
    let (_fleet, daemon) = setup("[shells]\nmax_per_host = 2\nmax_total = 3\n");
    let client = connect(daemon.socket()).await;
    let first = open(&client).await;
    open(&client).await;
    let err = open_with(&client, None, &[]).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Overloaded, "{err:?}");
    assert!(err.message.contains("max_per_host = 2"), "{}", err.message);
    assert!(err.message.contains("shell_close"), "{}", err.message);
    close(&client, &first).await.expect("shell_close");
    open(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_shell_is_gone_with_what_it_left_running() {
    let (fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let id = open(&client).await;
    let sleeper = MarkedSleep::new();
    sh(&client, &id, &format!("{} &", sleeper.command)).await;
    let server = fleet.server(0);
    eventually(
        || !sleeper.pids(server).is_empty(),
        Duration::from_secs(30),
        "the background sleep to start",
    )
    .await;
    close(&client, &id).await.expect("shell_close");
    eventually(
        || sleeper.pids(server).is_empty(),
        Duration::from_secs(30),
        "the background sleep to get HUP",
    )
    .await;
    let err = try_sh(&client, &id, "pwd").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(
        err.message.contains("closed with shell_close"),
        "{}",
        err.message
    );
    let again = close(&client, &id).await.unwrap_err();
    assert_eq!(again.kind, ErrorKind::NotFound, "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shell_in_a_missing_directory_is_refused_naming_it() {
    let (_fleet, daemon) = setup("");
    let client = connect(daemon.socket()).await;
    let err = open_with(&client, Some("/no/such/dir"), &[])
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert!(err.message.contains("/no/such/dir"), "{}", err.message);
    assert!(shells(&client).await.is_empty());
    // `~` is the remote home, as in ssh.
    let home = open_with(&client, Some("~"), &[])
        .await
        .expect("shell_open");
    assert_eq!(
        stdout(&client, &home.shell_id, "echo \"$HOME\"")
            .await
            .trim(),
        home.cwd
    );
}
