//! `exec` and `shell_exec` with `sudo` against a real sshd and the host's
//! real sudo: the test account may become `sshmcp-nopw` without a password
//! and root with one (see `sshmcp_testkit::test_sudo`). These tests need
//! root to set that up, and skip otherwise, saying why.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{connect, exec, exec_err, exec_ok, exec_request, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    Error, ErrorKind, ExecRequest, JobOutput, JobOutputRequest, JobSignalRequest, JobState,
    Request, Response, ShellExecOutput, ShellExecRequest, ShellOpenRequest,
};
use sshmcp_testkit::{Daemon, Fleet, TestSudo, test_sudo, unique_digits};

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

/// `command` on host1 through sudo, as `user` (root when `None`).
fn sudo_exec(command: &str, user: Option<&str>) -> ExecRequest {
    ExecRequest {
        sudo: true,
        sudo_user: user.map(str::to_owned),
        ..exec_request("host1", command)
    }
}

/// A local file holding a password, and the daemon config whose password
/// command for host1 prints it (and counts its runs in `runs`).
struct PasswordFile {
    dir: tempfile::TempDir,
}

impl PasswordFile {
    fn new(password: &str) -> PasswordFile {
        let file = PasswordFile {
            dir: tempfile::tempdir().expect("a temporary directory"),
        };
        file.set(password);
        file
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    fn runs_path(&self) -> PathBuf {
        self.dir.path().join("runs")
    }

    fn set(&self, password: &str) {
        std::fs::write(self.path(), format!("{password}\n")).expect("write the password file");
    }

    /// How many times the password command ran.
    fn runs(&self) -> usize {
        std::fs::read_to_string(self.runs_path())
            .unwrap_or_default()
            .lines()
            .count()
    }

    fn config(&self) -> String {
        format!(
            "[sudo.hosts.\"host1\"]\npassword_command = \"echo run >> '{}'; cat '{}'\"\n",
            self.runs_path().display(),
            self.path().display()
        )
    }
}

/// The test sudo, a password file holding its password, and a daemon
/// whose `password_command` reads that file; `None` (the test skips)
/// where the test sudo is not set up.
async fn with_password() -> Option<(
    &'static TestSudo,
    PasswordFile,
    (Fleet, Daemon, DaemonClient),
)> {
    let sudo = sudo_or_skip()?;
    let password = PasswordFile::new(sudo.password());
    let started = start(&password.config()).await;
    Some((sudo, password, started))
}

async fn start(config: &str) -> (Fleet, Daemon, DaemonClient) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, config);
    let client = connect(daemon.socket()).await;
    (fleet, daemon, client)
}

#[tokio::test(flavor = "multi_thread")]
async fn passwordless_sudo_runs_the_command_as_the_sudo_user() {
    let Some(sudo) = sudo_or_skip() else { return };
    let (_fleet, daemon, client) = start("").await;
    let out = exec_ok(
        &daemon,
        &client,
        sudo_exec("id -un", Some(sudo.nopasswd_user())),
    )
    .await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "sshmcp-nopw\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(out.exit_code, Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_that_needs_a_password_without_one_configured_names_the_config_to_add() {
    if sudo_or_skip().is_none() {
        return;
    }
    let (_fleet, _daemon, client) = start("").await;
    let err = exec_err(&client, sudo_exec("id -u", None)).await;
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err:?}");
    assert!(
        err.message.contains("needs a password")
            && err
                .message
                .contains("[sudo.hosts.\"host1\"] password_command"),
        "{}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_commands_own_sudo_like_complaint_is_its_output_not_an_error() {
    let Some(sudo) = sudo_or_skip() else { return };
    let (_fleet, daemon, client) = start("").await;
    let out = exec_ok(
        &daemon,
        &client,
        sudo_exec(
            "echo 'sudo: a password is required' >&2; exit 1",
            Some(sudo.nopasswd_user()),
        ),
    )
    .await;
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "sudo: a password is required\n"
    );
    assert_eq!(out.exit_code, Some(1));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_command_lets_sudo_run_the_command_as_root() {
    let Some((_sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let out = exec_ok(&daemon, &client, sudo_exec("id -u; echo done >&2", None)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "done\n",
        "sudo's prompt is not in stderr"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_passes_the_callers_stdin_to_the_command() {
    let Some((_sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            stdin: Some(b"first line\nsecond\0line\n".to_vec()),
            ..sudo_exec("id -u >&2; cat", None)
        },
    )
    .await;
    assert_eq!(out.stdout, b"first line\nsecond\0line\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "0\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_is_one_attempt_and_the_command_does_not_run() {
    let Some(sudo) = sudo_or_skip() else { return };
    let password = PasswordFile::new("not-the-password");
    let (_fleet, _daemon, client) = start(&password.config()).await;
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let ran = scratch.path().join("ran");
    // The right password on stdin: were stdin fed to sudo before it had
    // started the command, its second attempt would take it and succeed.
    let err = exec_err(
        &client,
        ExecRequest {
            stdin: Some(format!("{}\n", sudo.password()).into_bytes()),
            ..sudo_exec(&format!("touch '{}'", ran.display()), None)
        },
    )
    .await;
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err:?}");
    assert!(
        err.message.contains("refused the password") && err.message.contains("password_command"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("not-the-password"), "{}", err.message);
    assert!(!ran.exists(), "the command ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn after_a_wrong_password_the_fixed_password_command_is_used() {
    let Some(sudo) = sudo_or_skip() else { return };
    let password = PasswordFile::new("not-the-password");
    let (_fleet, daemon, client) =
        start(&format!("[sudo]\ncache_secs = 600\n{}", password.config())).await;
    exec_err(&client, sudo_exec("id -u", None)).await;
    password.set(sudo.password());
    let out = exec_ok(&daemon, &client, sudo_exec("id -u", None)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    assert_eq!(password.runs(), 2, "the refused password was not kept");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_sudo_execs_run_the_password_command_once() {
    let Some((_sudo, password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let calls = (0..8).map(|i| exec(&client, sudo_exec(&format!("echo {i}; id -u"), None)));
    let outs = futures_util::future::join_all(calls).await;
    for (i, out) in outs.into_iter().enumerate() {
        let out = out.unwrap_or_else(|e| panic!("call {i}: {e:?}\n{}", daemon.log()));
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n0\n"));
    }
    assert_eq!(password.runs(), 1);
    // Within `cache_secs` (default 300) the kept password serves again.
    exec_ok(&daemon, &client, sudo_exec("true", None)).await;
    assert_eq!(password.runs(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_cache_secs_0_the_password_command_runs_every_time() {
    let Some(sudo) = sudo_or_skip() else { return };
    let password = PasswordFile::new(sudo.password());
    let (_fleet, daemon, client) =
        start(&format!("[sudo]\ncache_secs = 0\n{}", password.config())).await;
    for _ in 0..2 {
        exec_ok(&daemon, &client, sudo_exec("true", None)).await;
    }
    assert_eq!(password.runs(), 2);
}

/// For 3 s, check every process's argv and environment for `secret`
/// (panicking if one holds it); answers whether a command line holding
/// `marker` was seen meanwhile.
async fn scan_proc(secret: &[u8], marker: &[u8]) -> bool {
    let mut saw_the_command = false;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for (pid, file, bytes) in proc_files() {
            assert!(
                find(&bytes, secret).is_none(),
                "the password is in /proc/{pid}/{file}"
            );
            saw_the_command |= file == "cmdline" && find(&bytes, marker).is_some();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    saw_the_command
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_is_in_no_result_log_command_line_or_environment() {
    let Some((sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let marker = format!("3.{}", unique_digits());
    let secret = sudo.password().as_bytes();
    let scan = scan_proc(secret, marker.as_bytes());
    let command = format!("sleep {marker}; id -u");
    let (out, saw_the_command) = tokio::join!(exec(&client, sudo_exec(&command, None)), scan);
    assert!(saw_the_command, "the scan never saw the sudo'd command run");
    let out = out.unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log()));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
    assert!(find(&out.stdout, secret).is_none() && find(&out.stderr, secret).is_none());
    let log = daemon.log();
    assert!(log.contains("ran the sudo password command"), "{log}");
    assert!(
        !log.contains(sudo.password()),
        "the password is in the daemon's log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sudo_command_past_its_timeout_is_stopped() {
    let Some((_sudo, _password, (_fleet, _daemon, client))) = with_password().await else {
        return;
    };
    // Two processes: sudo passes the TERM on to one, the relay to both.
    let marker = format!("1000.{}", unique_digits());
    let err = exec_err(
        &client,
        ExecRequest {
            timeout_secs: Some(2),
            ..sudo_exec(&format!("sleep {marker}; true"), None)
        },
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sudo_command_that_ignores_term_is_killed_at_its_timeout() {
    let Some(sudo) = sudo_or_skip() else { return };
    let (_fleet, _daemon, client) = start("").await;
    let marker = format!("1000.{}", unique_digits());
    let err = exec_err(
        &client,
        ExecRequest {
            timeout_secs: Some(1),
            ..sudo_exec(
                &format!("trap '' TERM; sleep {marker}; true"),
                Some(sudo.nopasswd_user()),
            )
        },
    )
    .await;
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn job_signal_stops_a_sudo_job_and_its_processes() {
    let Some((_sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let marker = format!("1000.{}", unique_digits());
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            background: true,
            ..sudo_exec(&format!("sleep {marker}; true"), None)
        },
    )
    .await;
    let job = out.job.expect("a job").job_id;
    let req = JobSignalRequest {
        job_id: job.clone(),
        signal: "TERM".into(),
    };
    match request(&client, Request::JobSignal(req)).await {
        Ok(Response::JobState(state)) => assert_eq!(state, JobState::Killed),
        other => panic!("job_signal: {other:?}"),
    }
    let page = job_output_until_done(&client, &job).await;
    assert_eq!(page.signal.as_deref(), Some("TERM"), "{page:?}");
    gone(&marker).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_sudo_job_runs_and_is_read_with_job_output() {
    let Some((_sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let out = exec_ok(
        &daemon,
        &client,
        ExecRequest {
            background: true,
            ..sudo_exec("sleep 0.5; id -u", None)
        },
    )
    .await;
    let job = out.job.expect("a job").job_id;
    let page = job_output_until_done(&client, &job).await;
    assert_eq!(String::from_utf8_lossy(&page.stdout), "0\n");
    assert_eq!(String::from_utf8_lossy(&page.stderr), "");
    assert_eq!((page.state, page.exit_code), (JobState::Exited, Some(0)));
    match request(&client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => {
            let shown = jobs
                .iter()
                .find(|j| j.job_id == job)
                .expect("the job is listed");
            assert_eq!(shown.command, "sudo sleep 0.5; id -u");
        }
        other => panic!("jobs: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_sudo_job_with_a_wrong_password_fails_the_call() {
    if sudo_or_skip().is_none() {
        return;
    }
    let password = PasswordFile::new("not-the-password");
    let (_fleet, _daemon, client) = start(&password.config()).await;
    let err = exec_err(
        &client,
        ExecRequest {
            background: true,
            ..sudo_exec("id -u", None)
        },
    )
    .await;
    assert!(
        err.message.contains("refused the password"),
        "{}",
        err.message
    );
    match request(&client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => assert!(jobs.is_empty(), "{jobs:?}"),
        other => panic!("jobs: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_takes_a_new_password_command() {
    let Some(sudo) = sudo_or_skip() else { return };
    let (_fleet, daemon, client) = start("").await;
    exec_err(&client, sudo_exec("id -u", None)).await;
    let password = PasswordFile::new(sudo.password());
    append(daemon.config_path(), &password.config());
    match request(&client, Request::Reload).await {
        Ok(Response::Reloaded(_)) => {}
        other => panic!("reload: {other:?}"),
    }
    let out = exec_ok(&daemon, &client, sudo_exec("id -u", None)).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "0\n");
}

/// Waits until no process on the machine has `marker` in its command line.
async fn gone(marker: &str) {
    let running = || {
        proc_files()
            .iter()
            .any(|(_, file, bytes)| *file == "cmdline" && find(bytes, marker.as_bytes()).is_some())
    };
    common::eventually(
        || !running(),
        Duration::from_secs(15),
        "the command's processes to end",
    )
    .await;
}

/// Long-poll `job` until it has ended; its whole output in one page.
async fn job_output_until_done(client: &DaemonClient, job: &str) -> JobOutput {
    for _ in 0..30 {
        let req = JobOutputRequest {
            as_exec: None,
            job_id: job.into(),
            stdout_offset: Some(0),
            stderr_offset: Some(0),
            wait_secs: Some(5),
            max_bytes: None,
        };
        let page = match request(client, Request::JobOutput(req)).await {
            Ok(Response::JobOutput(page)) => page,
            other => panic!("job_output: {other:?}"),
        };
        if page.state != JobState::Running {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not end");
}

fn append(path: &Path, text: &str) {
    let mut config = std::fs::read_to_string(path).expect("read the daemon's config");
    config.push_str(text);
    std::fs::write(path, config).expect("write the daemon's config");
}

/// Every process's command line and environment: (pid, file, bytes).
fn proc_files() -> Vec<(String, &'static str, Vec<u8>)> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return files;
    };
    for entry in entries.flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        for file in ["cmdline", "environ"] {
            // A process may end between listing and reading.
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                files.push((pid.clone(), file, bytes));
            }
        }
    }
    files
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A shell on host1 that has changed to /tmp, and set a variable.
async fn shell_in_tmp(client: &DaemonClient) -> String {
    let req = ShellOpenRequest {
        host: "host1".into(),
        ..Default::default()
    };
    let shell = match request(client, Request::ShellOpen(req)).await {
        Ok(Response::ShellOpened(opened)) => opened.shell_id,
        other => panic!("shell_open: {other:?}"),
    };
    let out = in_shell(client, plain(&shell, "cd /tmp && STAGE=kept"))
        .await
        .expect("cd /tmp");
    assert_eq!(out.cwd.as_deref(), Some("/tmp"), "{out:?}");
    shell
}

/// `command` in `shell`, as typed at its prompt.
fn plain(shell: &str, command: &str) -> ShellExecRequest {
    ShellExecRequest {
        shell_id: shell.into(),
        command: command.into(),
        ..Default::default()
    }
}

/// `command` in `shell` through sudo, as `user` (root when `None`).
fn sudo_in(shell: &str, command: &str, user: Option<&str>) -> ShellExecRequest {
    ShellExecRequest {
        sudo: true,
        sudo_user: user.map(str::to_owned),
        ..plain(shell, command)
    }
}

async fn in_shell(client: &DaemonClient, req: ShellExecRequest) -> Result<ShellExecOutput, Error> {
    match request(client, Request::ShellExec(req)).await {
        Ok(Response::ShellExec(out)) => Ok(*out),
        Ok(other) => panic!("shell_exec: {other:?}"),
        Err(e) => Err(e),
    }
}

/// The shell is where it was and keeps its variables.
async fn assert_shell_kept(client: &DaemonClient, shell: &str) {
    let out = in_shell(client, plain(shell, "pwd; echo \"$STAGE\""))
        .await
        .expect("the shell still runs commands");
    assert_eq!(String::from_utf8_lossy(&out.output.stdout), "/tmp\nkept\n");
    assert_eq!(out.cwd.as_deref(), Some("/tmp"));
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_in_a_shell_runs_as_root_in_its_directory_without_its_variables() {
    let Some((_sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let shell = shell_in_tmp(&client).await;
    let out = in_shell(
        &client,
        sudo_in(
            &shell,
            "id -u; pwd; echo \"[$STAGE]\"; cd / && STAGE=root",
            None,
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log()));
    assert_eq!(String::from_utf8_lossy(&out.output.stdout), "0\n/tmp\n[]\n");
    assert_eq!(String::from_utf8_lossy(&out.output.stderr), "");
    assert_eq!(out.output.exit_code, Some(0));
    assert_eq!(out.cwd.as_deref(), Some("/tmp"));
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn passwordless_sudo_in_a_shell_runs_as_the_sudo_user() {
    let Some(sudo) = sudo_or_skip() else { return };
    let (_fleet, daemon, client) = start("").await;
    let shell = shell_in_tmp(&client).await;
    let out = in_shell(
        &client,
        sudo_in(&shell, "id -un; exit 3", Some(sudo.nopasswd_user())),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log()));
    assert_eq!(String::from_utf8_lossy(&out.output.stdout), "sshmcp-nopw\n");
    assert_eq!(out.output.exit_code, Some(3), "{out:?}");
    assert_eq!(out.closed, None, "`exit` ends the sudo'd sh, not the shell");
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_password_command_with_a_nopasswd_user_in_a_shell_is_not_run() {
    let Some((sudo, password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let shell = shell_in_tmp(&client).await;
    let out = in_shell(
        &client,
        sudo_in(&shell, "id -un; cat", Some(sudo.nopasswd_user())),
    )
    .await
    .unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log()));
    assert_eq!(String::from_utf8_lossy(&out.output.stdout), "sshmcp-nopw\n");
    assert_eq!(password.runs(), 0, "sudo did not ask");
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_password_in_a_shell_is_in_no_output_command_line_or_environment() {
    let Some((sudo, _password, (_fleet, daemon, client))) = with_password().await else {
        return;
    };
    let shell = shell_in_tmp(&client).await;
    // A shell that traces its commands must not trace the password either.
    in_shell(&client, plain(&shell, "set -x"))
        .await
        .expect("set -x");
    let marker = format!("3.{}", unique_digits());
    let secret = sudo.password().as_bytes();
    let scan = scan_proc(secret, marker.as_bytes());
    let command = format!("sleep {marker}; id -u; echo done >&2");
    let (out, saw_the_command) =
        tokio::join!(in_shell(&client, sudo_in(&shell, &command, None)), scan);
    assert!(saw_the_command, "the scan never saw the sudo'd command run");
    let out = out.unwrap_or_else(|e| panic!("{e:?}\n{}", daemon.log()));
    assert_eq!(String::from_utf8_lossy(&out.output.stdout), "0\n");
    let stderr = String::from_utf8_lossy(&out.output.stderr);
    assert!(
        stderr.starts_with("done\n"),
        "sudo's prompt is not in stderr: {stderr}"
    );
    assert!(
        find(&out.output.stdout, secret).is_none() && find(&out.output.stderr, secret).is_none()
    );
    let traced = in_shell(&client, plain(&shell, "set +x; echo after"))
        .await
        .expect("set +x");
    assert!(find(&traced.output.stderr, secret).is_none(), "{traced:?}");
    assert!(
        !daemon.log().contains(sudo.password()),
        "the password is in the daemon's log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_in_a_shell_fails_the_call_and_keeps_the_shell() {
    if sudo_or_skip().is_none() {
        return;
    }
    let password = PasswordFile::new("not-the-password");
    let (_fleet, _daemon, client) = start(&password.config()).await;
    let shell = shell_in_tmp(&client).await;
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let ran = scratch.path().join("ran");
    let err = in_shell(
        &client,
        sudo_in(&shell, &format!("touch '{}'", ran.display()), None),
    )
    .await
    .expect_err("a wrong password fails the call");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err:?}");
    assert!(
        err.message.contains("refused the password") && err.message.contains("still open"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("not-the-password"), "{}", err.message);
    assert!(!ran.exists(), "the command ran");
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sudo_in_a_shell_without_a_password_command_names_the_config_to_add() {
    if sudo_or_skip().is_none() {
        return;
    }
    let (_fleet, _daemon, client) = start("").await;
    let shell = shell_in_tmp(&client).await;
    let err = in_shell(&client, sudo_in(&shell, "id -u", None))
        .await
        .expect_err("sudo needs a password");
    assert_eq!(err.kind, ErrorKind::PermissionDenied, "{err:?}");
    assert!(
        err.message.contains("needs a password")
            && err
                .message
                .contains("[sudo.hosts.\"host1\"] password_command"),
        "{}",
        err.message
    );
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sudo_command_in_a_shell_past_its_timeout_is_stopped_and_the_shell_stays() {
    let Some((_sudo, _password, (_fleet, _daemon, client))) = with_password().await else {
        return;
    };
    let shell = shell_in_tmp(&client).await;
    // It ignores INT: the TERM two seconds later, passed on by sudo's
    // relay, stops it, and the shell waits for that.
    let marker = format!("1000.{}", unique_digits());
    let err = in_shell(
        &client,
        ShellExecRequest {
            timeout_secs: Some(1),
            ..sudo_in(&shell, &format!("trap '' INT; sleep {marker}; true"), None)
        },
    )
    .await
    .expect_err("the command runs past its timeout");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(
        err.message.contains("INT, then TERM") && err.message.contains("still open"),
        "{}",
        err.message
    );
    gone(&marker).await;
    assert_shell_kept(&client, &shell).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shell_sudo_still_waiting_for_its_password_at_the_timeout_keeps_the_shell() {
    if sudo_or_skip().is_none() {
        return;
    }
    let (_fleet, _daemon, client) =
        start("[sudo.hosts.\"host1\"]\npassword_command = \"sleep 20; echo late\"\n").await;
    let shell = shell_in_tmp(&client).await;
    let err = in_shell(
        &client,
        ShellExecRequest {
            timeout_secs: Some(2),
            ..sudo_in(&shell, "id -u", None)
        },
    )
    .await
    .expect_err("sudo is still waiting");
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(
        err.message.contains("did not start the command") && err.message.contains("still open"),
        "{}",
        err.message
    );
    assert_shell_kept(&client, &shell).await;
}
