//! The shim driven by the official MCP Python SDK client, as MCP hosts drive
//! it: the SDK launches the shim over stdio, negotiates the protocol,
//! validates every `structuredContent` against the tool's `outputSchema`,
//! and keeps many calls in flight on one session.
//!
//! Each test starts real sshd servers and a daemon, then runs one scenario
//! of `tests/python/sdk_client.py`, which exits 0 when the scenario holds.
//! The SDK (`pip install mcp`) is installed by `scripts/test`; without it
//! these tests fail and say so, rather than pass without testing anything.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::SessionRuntimeDir;
use sshmcp_testkit::{Daemon, Fleet, bin_path, output_within, test_user};

/// How long one scenario may take: Python and the SDK start in about a
/// second; the slowest scenario is twenty remote commands.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(120);

/// How long `python3 -c 'import mcp'` may take.
const IMPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the scenario's daemon is and how the SDK reaches it.
enum Target<'a> {
    /// The shim is given `--socket PATH`.
    Socket(&'a Path),
    /// The shim is launched bare, as the README's `mcpServers` entry does,
    /// and has to find the daemon by itself.
    Bare,
}

/// Runs `scenario` of the SDK client against host1 and returns its stdout;
/// panics with its output and the daemon's log if it fails.
fn run_scenario(scenario: &str, target: Target<'_>, daemon: &Daemon, extra: &[&str]) -> String {
    require_the_sdk();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .arg(scenario)
        .arg("--shim")
        .arg(bin_path("sshmcp"))
        .args(["--host", "host1"])
        .args(extra)
        // The SDK passes these on to the shim only if they are not
        // already trimmed; keep the test's own out of the way regardless.
        .env_remove("SSHMCP_SOCKET")
        .env_remove("SSH_AUTH_SOCK");
    if let Target::Socket(socket) = target {
        cmd.arg("--socket").arg(socket);
    }
    let output = output_within(&mut cmd, SCENARIO_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the Python SDK scenario `{scenario}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}\n--- daemon log\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    stdout
}

/// Panics, saying how to fix it, unless `python3` can import the SDK.
fn require_the_sdk() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let on_path = std::env::var_os("PATH").is_some_and(|path| {
            std::env::split_paths(&path).any(|dir| dir.join("python3").is_file())
        });
        if !on_path {
            return Err("python3 is not on PATH".to_string());
        }
        let import = output_within(
            Command::new("python3").args(["-c", "import mcp"]),
            IMPORT_TIMEOUT,
        );
        if import.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&import.stderr);
            Err(format!(
                "python3 cannot import the MCP Python SDK (`mcp`): {}",
                stderr.lines().last().unwrap_or("no reason given")
            ))
        }
    });
    if let Err(problem) = checked {
        panic!(
            "{problem}. These tests need it: run scripts/test, which installs it, or \
             `python3 -m pip install 'mcp>=1.20'`"
        );
    }
}

/// One host and a daemon for it.
fn setup() -> (Fleet, Daemon) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    (fleet, daemon)
}

#[test]
fn the_sdk_initializes_and_lists_every_tool_with_input_and_output_schemas() {
    let (_fleet, daemon) = setup();
    run_scenario("tools", Target::Socket(daemon.socket()), &daemon, &[]);
}

#[test]
fn exec_gives_the_sdk_structured_content_that_matches_its_schema() {
    let (_fleet, daemon) = setup();
    run_scenario("exec", Target::Socket(daemon.socket()), &daemon, &[]);
}

#[test]
fn an_unknown_host_is_an_error_result_naming_the_known_hosts() {
    let (_fleet, daemon) = setup();
    run_scenario(
        "unknown-host",
        Target::Socket(daemon.socket()),
        &daemon,
        &[],
    );
}

#[test]
fn a_file_written_through_the_sdk_reads_back_stats_and_lists() {
    let (_fleet, daemon) = setup();
    let remote = test_user().scratch_dir();
    let remote_dir = remote.path().display().to_string();
    run_scenario(
        "files",
        Target::Socket(daemon.socket()),
        &daemon,
        &["--remote-dir", &remote_dir],
    );
}

#[test]
fn batch_and_cached_results_match_their_schemas_in_the_sdk() {
    let (_fleet, daemon) = setup();
    let remote = test_user().scratch_dir();
    let remote_dir = remote.path().display().to_string();
    run_scenario(
        "batch-and-cache",
        Target::Socket(daemon.socket()),
        &daemon,
        &["--remote-dir", &remote_dir],
    );
}

#[test]
fn twenty_concurrent_calls_on_one_sdk_session_all_succeed() {
    let (_fleet, daemon) = setup();
    let out = run_scenario("concurrent", Target::Socket(daemon.socket()), &daemon, &[]);
    assert!(out.contains("20 concurrent calls, no errors"), "{out}");
}

#[test]
fn the_readme_entry_finds_a_session_daemon_through_the_sdk_trimmed_environment() {
    let runtime = SessionRuntimeDir::take();
    let fleet = Fleet::start(1);
    let daemon = common::daemon_at(&runtime.socket(), &fleet);
    run_scenario("exec", Target::Bare, &daemon, &[]);
}

#[test]
fn the_sdk_client_speaks_2026_07_28_through_discover_without_initialize() {
    let (_fleet, daemon) = setup();
    let out = run_scenario("modern", Target::Socket(daemon.socket()), &daemon, &[]);
    assert!(out.contains("progress notifications"), "{out}");
}

#[test]
fn a_long_exec_runs_as_a_task_for_the_sdk_client_declaring_the_tasks_extension() {
    let (_fleet, daemon) = setup();
    let out = run_scenario("tasks", Target::Socket(daemon.socket()), &daemon, &[]);
    assert!(out.contains("completed"), "{out}");
}

/// A daemon whose policy wants `echo` confirmed on host1.
fn confirming() -> (Fleet, Daemon) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[policy.hosts.host1]\nconfirm_commands = [[\"echo\"]]\n",
    );
    (fleet, daemon)
}

#[test]
fn a_command_the_policy_wants_confirmed_runs_once_the_person_allows_it() {
    let (_fleet, daemon) = confirming();
    run_scenario(
        "confirm-allow",
        Target::Socket(daemon.socket()),
        &daemon,
        &[],
    );
}

#[test]
fn a_command_the_person_declines_or_denies_does_not_run() {
    let (_fleet, daemon) = confirming();
    run_scenario(
        "confirm-declined",
        Target::Socket(daemon.socket()),
        &daemon,
        &[],
    );
    run_scenario(
        "confirm-deny",
        Target::Socket(daemon.socket()),
        &daemon,
        &[],
    );
}

#[test]
fn a_client_without_elicitation_is_refused_saying_confirmation_was_required() {
    let (_fleet, daemon) = confirming();
    run_scenario(
        "confirm-unsupported",
        Target::Socket(daemon.socket()),
        &daemon,
        &[],
    );
}
