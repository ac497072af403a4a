//! `sshmcpctl` end to end: the real binary against a real daemon serving
//! real sshd hosts, judged by its exit code, stdout and stderr.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, bin_path, output_within, wait_for};

/// How long one `sshmcpctl` run may take. Far above what any run needs; it
/// only turns a hang into a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a drained connection may take to close.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// `sshmcpctl` with no socket from the test's own environment.
fn sshmcpctl() -> Command {
    let mut cmd = Command::new(bin_path("sshmcpctl"));
    cmd.env_remove("SSHMCP_SOCKET");
    cmd
}

/// Runs `sshmcpctl --socket <socket> <args>`, bounded.
fn ctl(socket: &Path, args: &[&str]) -> Output {
    output_within(
        sshmcpctl().arg("--socket").arg(socket).args(args),
        RUN_TIMEOUT,
    )
}

/// Runs a command that must succeed and returns its stdout; on failure the
/// panic shows its stderr and the daemon's log.
fn ctl_ok(daemon: &Daemon, args: &[&str]) -> String {
    succeeded(ctl(daemon.socket(), args), daemon)
}

/// The stdout of a run that must have succeeded quietly.
fn succeeded(output: Output, daemon: &Daemon) -> String {
    assert!(
        output.status.success(),
        "sshmcpctl failed ({}): {}\ndaemon log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    assert!(
        output.stderr.is_empty(),
        "sshmcpctl succeeded but wrote to stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("sshmcpctl prints UTF-8")
}

/// Runs a command that must succeed with `--json` and parses its stdout.
fn ctl_json(daemon: &Daemon, args: &[&str]) -> Value {
    let stdout = ctl_ok(daemon, &[&["--json"], args].concat());
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("sshmcpctl --json {args:?} printed no JSON ({e}): {stdout}"))
}

/// Runs a command that must fail with exit code 1, print nothing on
/// stdout, and say why on stderr; returns the stderr.
fn ctl_fails(socket: &Path, args: &[&str]) -> String {
    let output = ctl(socket, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "sshmcpctl {args:?} should exit 1; stdout: {}; stderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.stdout.is_empty(),
        "a failed sshmcpctl {args:?} printed to stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8(output.stderr).expect("sshmcpctl prints UTF-8")
}

/// The cells of the first line of `text` whose first cell is `first`.
fn row<'a>(text: &'a str, first: &str) -> Vec<&'a str> {
    text.lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells.first() == Some(&first))
        .unwrap_or_else(|| panic!("no row `{first}` in:\n{text}"))
}

/// The value of the `key  value` line of `sshmcpctl status`.
fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|line| {
            let (k, value) = line.split_once(' ')?;
            (k == key).then(|| value.trim())
        })
        .unwrap_or_else(|| panic!("no `{key}` in status:\n{status}"))
}

/// The cell in column `column` of the row `first` of the table in `text`
/// whose header row starts with `header`.
fn cell(text: &str, header: &str, first: &str, column: &str) -> String {
    let at = row(text, header)
        .iter()
        .position(|h| *h == column)
        .unwrap_or_else(|| panic!("no {column} column in:\n{text}"));
    row(text, first)
        .get(at)
        .unwrap_or_else(|| panic!("row `{first}` has no {column} cell in:\n{text}"))
        .to_string()
}

/// The STATE column of `sshmcpctl hosts` for `alias`.
fn host_state(daemon: &Daemon, alias: &str) -> String {
    cell(&ctl_ok(daemon, &["hosts"]), "ALIAS", alias, "STATE")
}

#[test]
fn status_shows_pid_version_socket_and_health() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let status = ctl_ok(&daemon, &["status"]);
    assert_eq!(field(&status, "pid"), daemon.pid().to_string(), "{status}");
    assert_eq!(
        field(&status, "version"),
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );
    assert_eq!(
        field(&status, "socket"),
        daemon.socket().display().to_string(),
        "{status}"
    );
    assert_eq!(field(&status, "health"), "healthy", "{status}");
}

#[test]
fn json_status_has_the_pid() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let status = ctl_json(&daemon, &["status"]);
    assert_eq!(status["pid"], json!(daemon.pid()), "{status}");
}

#[test]
fn hosts_are_cold_until_warmed_and_not_connected_after_a_drain() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "");
    let hosts = ctl_ok(&daemon, &["hosts"]);
    assert_eq!(cell(&hosts, "ALIAS", "host1", "STATE"), "cold", "{hosts}");
    assert_eq!(cell(&hosts, "ALIAS", "host2", "STATE"), "cold", "{hosts}");

    assert_eq!(ctl_ok(&daemon, &["warm", "host1"]), "ok\n");
    assert_eq!(host_state(&daemon, "host1"), "connected");
    assert_eq!(host_state(&daemon, "host2"), "cold");

    assert_eq!(ctl_ok(&daemon, &["drain", "host1"]), "ok\n");
    wait_for(
        || host_state(&daemon, "host1") != "connected",
        DRAIN_TIMEOUT,
        "host1 to leave `connected` after a drain",
    );
}

#[test]
fn stats_count_one_connect_for_several_execs() {
    const EXECS: usize = 3;
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    for _ in 0..EXECS {
        let result = mcp.call_tool("exec", json!({ "host": "host1", "command": "true" }));
        assert_eq!(result["isError"], false, "{result}\n{}", daemon.log());
    }

    let stats = ctl_ok(&daemon, &["stats"]);
    assert_eq!(cell(&stats, "HOST", "host1", "CONNECTS"), "1", "{stats}");
    assert_eq!(
        cell(&stats, "OP", "exec", "COUNT"),
        EXECS.to_string(),
        "{stats}"
    );
}

#[test]
fn json_stats_have_hosts_and_ops() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    ctl_ok(&daemon, &["warm", "host1"]);
    let stats = ctl_json(&daemon, &["stats"]);
    let hosts = stats["hosts"].as_array().expect("`hosts` is an array");
    assert!(hosts.iter().any(|h| h["alias"] == "host1"), "{stats}");
    let ops = stats["ops"].as_array().expect("`ops` is an array");
    assert!(ops.iter().any(|op| op["op"] == "warm"), "{stats}");
}

#[test]
fn the_socket_comes_from_sshmcp_socket_when_not_given() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let output = output_within(
        sshmcpctl()
            .arg("status")
            .env("SSHMCP_SOCKET", daemon.socket())
            .env_remove("XDG_RUNTIME_DIR"),
        RUN_TIMEOUT,
    );
    let status = succeeded(output, &daemon);
    assert_eq!(field(&status, "pid"), daemon.pid().to_string(), "{status}");
}

#[test]
fn the_default_socket_is_under_xdg_runtime_dir() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start_with_config_text(&format!(
        "[ssh]\nconfig = {}\n",
        json!(fleet.ssh_config_path().display().to_string())
    ));
    let runtime_dir = daemon.dir().join("runtime");
    assert_eq!(
        daemon.socket(),
        runtime_dir.join("sshmcp").join("sshmcpd.sock")
    );
    let output = output_within(
        sshmcpctl()
            .arg("status")
            .env("XDG_RUNTIME_DIR", &runtime_dir),
        RUN_TIMEOUT,
    );
    let status = succeeded(output, &daemon);
    assert_eq!(field(&status, "pid"), daemon.pid().to_string(), "{status}");
}

#[test]
fn without_a_daemon_it_exits_1_and_says_how_to_start_it() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let stderr = ctl_fails(&dir.path().join("sshmcpd.sock"), &["status"]);
    assert!(stderr.contains("sshmcpd is not running"), "{stderr}");
    assert!(stderr.contains("Start it"), "{stderr}");
}

#[test]
fn warming_an_unknown_host_fails_with_host_unknown() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let stderr = ctl_fails(daemon.socket(), &["warm", "nosuchhost"]);
    assert!(stderr.contains("host_unknown"), "{stderr}");
    assert!(stderr.contains("nosuchhost"), "{stderr}");
}

#[test]
fn cache_shows_its_counters_and_cache_clear_says_what_it_dropped() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let text = ctl_ok(&daemon, &["cache"]);
    assert_eq!(field(&text, "enabled"), "yes", "{text}");
    assert_eq!(
        field(&text, "entries").split(' ').next(),
        Some("0"),
        "{text}"
    );
    let cache = ctl_json(&daemon, &["cache"]);
    assert_eq!(cache["enabled"], true, "{cache}");
    assert_eq!(cache["hits"], 0, "{cache}");

    assert_eq!(
        ctl_ok(&daemon, &["cache", "clear"]),
        "dropped 0 cached answers\n"
    );
    assert_eq!(
        ctl_ok(&daemon, &["cache", "clear", "host1"]),
        "dropped 0 cached answers of host1\n"
    );
    assert_eq!(
        ctl_json(&daemon, &["cache", "clear", "host1"]),
        json!({ "dropped": 0 })
    );

    let stats = ctl_ok(&daemon, &["stats"]);
    assert!(stats.contains("\ncache  0 entries, "), "{stats}");
    let stats = ctl_json(&daemon, &["stats"]);
    assert_eq!(stats["cache"]["enabled"], true, "{stats}");
}

#[test]
fn jobs_lists_a_running_job_as_a_table_and_as_json() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    assert_eq!(ctl_ok(&daemon, &["jobs"]), "no jobs\n");
    assert_eq!(ctl_json(&daemon, &["jobs"]), json!([]));

    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "sleep 100", "background": true }),
    );
    assert_eq!(result["isError"], false, "{result}\n{}", daemon.log());
    let job = result["structuredContent"]["job"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {result}"))
        .to_string();

    let jobs = ctl_ok(&daemon, &["jobs"]);
    assert!(
        jobs.starts_with("ID ") && jobs.lines().next().is_some_and(|h| h.ends_with("COMMAND")),
        "{jobs}"
    );
    assert_eq!(cell(&jobs, "ID", &job, "HOST"), "host1", "{jobs}");
    assert_eq!(cell(&jobs, "ID", &job, "STATE"), "running", "{jobs}");
    assert_eq!(cell(&jobs, "ID", &job, "EXIT"), "-", "{jobs}");
    assert!(jobs.contains("sleep 100"), "{jobs}");
    let on_host1 = ctl_ok(&daemon, &["jobs", "host1"]);
    assert_eq!(
        cell(&on_host1, "ID", &job, "STATE"),
        "running",
        "{on_host1}"
    );

    let listed = ctl_json(&daemon, &["jobs"]);
    assert_eq!(listed[0]["job_id"], job, "{listed}");
    assert_eq!(listed[0]["command"], "sleep 100", "{listed}");
    assert_eq!(listed[0]["state"], "running", "{listed}");

    let signalled = mcp.call_tool("job_signal", json!({ "job_id": job, "signal": "KILL" }));
    assert_eq!(signalled["isError"], false, "{signalled}");
}

#[test]
fn shells_lists_an_open_shell_as_a_table_and_as_json() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    assert_eq!(ctl_ok(&daemon, &["shells"]), "no shells\n");

    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let opened = mcp.call_tool("shell_open", json!({ "host": "host1", "cwd": "/tmp" }));
    assert_eq!(opened["isError"], false, "{opened}\n{}", daemon.log());
    let shell = opened["structuredContent"]["shell_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no shell_id in {opened}"))
        .to_string();
    let ran = mcp.call_tool(
        "shell_exec",
        json!({ "shell_id": shell, "command": "cd /" }),
    );
    assert_eq!(ran["isError"], false, "{ran}");

    let shells = ctl_ok(&daemon, &["shells"]);
    assert!(
        shells.starts_with("ID ") && shells.lines().next().is_some_and(|h| h.ends_with("CWD")),
        "{shells}"
    );
    assert_eq!(cell(&shells, "ID", &shell, "HOST"), "host1", "{shells}");
    assert_eq!(cell(&shells, "ID", &shell, "STATE"), "idle", "{shells}");
    assert!(
        row(&shells, &shell).last().is_some_and(|cwd| *cwd == "/"),
        "{shells}"
    );

    let listed = ctl_json(&daemon, &["shells", "host1"]);
    assert_eq!(listed[0]["shell_id"], shell, "{listed}");
    assert_eq!(listed[0]["cwd"], "/", "{listed}");
    assert_eq!(listed[0]["state"], "idle", "{listed}");
    assert_eq!(listed[0]["commands"], 1, "{listed}");
}
