//! The shim driven by the MCP Inspector's CLI (`@modelcontextprotocol/
//! inspector --cli`, from npm), as a developer checking an MCP server
//! drives it: `tools/list`, and `tools/call` with arguments typed on a
//! command line (`--tool-arg timeout_secs=5`, which the CLI sends as a
//! number only when the schema says a plain `integer`). Its client checks
//! every `structuredContent` against the tool's `outputSchema`, and it
//! complains on stderr about schema constructs that its validator does not
//! know (`format: "uint64"`) or that other clients reject (a field typed
//! `["integer", "null"]`). Any complaint fails the test.
//!
//! `scripts/test` installs the CLI into `target/mcp-inspector`; npm picks
//! the newest release this machine's Node runs (0.15 on Node 20, 2.x on
//! Node 22). Without Node or the CLI these tests fail and say so, rather
//! than pass without testing anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, bin_path, output_within, test_user};

/// How long one CLI run may take: Node starts in well under a second, and
/// a call is one remote command or file operation.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// The Inspector's executable, as `scripts/test` installs it.
fn inspector() -> PathBuf {
    let installed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/mcp-inspector/node_modules/.bin/mcp-inspector");
    let node = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join("node").is_file()));
    if !node {
        panic!(
            "node is not on PATH. These tests run the MCP Inspector's CLI: run scripts/test, \
             which installs Node (npm) and the CLI"
        );
    }
    if !installed.is_file() {
        panic!(
            "the MCP Inspector's CLI is not installed at {}. Run scripts/test, which installs \
             it with `npm install --prefix target/mcp-inspector @modelcontextprotocol/inspector`",
            installed.display()
        );
    }
    installed
}

/// Runs the CLI against the shim on `socket` with `args` after the shim's
/// own, and returns its JSON answer; panics if it fails or prints anything
/// on stderr (the warnings this test is about).
fn run(socket: &Path, args: &[&str], daemon: Option<&Daemon>) -> Value {
    let mut cmd = Command::new(inspector());
    cmd.arg("--cli")
        .arg(bin_path("sshmcp"))
        .arg("--socket")
        .arg(socket)
        .args(args);
    let output = output_within(&mut cmd, RUN_TIMEOUT);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let daemon_log = daemon.map(Daemon::log).unwrap_or_default();
    assert!(
        output.status.success(),
        "the Inspector failed ({}) on {args:?}:\n--- stdout\n{stdout}\n--- stderr\n{stderr}\
         \n--- daemon log\n{daemon_log}",
        output.status
    );
    assert!(
        stderr.trim().is_empty(),
        "the Inspector warned on {args:?}:\n{stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the Inspector printed no JSON ({e}) on {args:?}:\n{stdout}"))
}

/// `tools/call` of `tool` with `key=value` arguments, which must succeed;
/// returns its `structuredContent`.
fn call(daemon: &Daemon, tool: &str, arguments: &[&str]) -> Value {
    let mut args = vec!["--method", "tools/call", "--tool-name", tool];
    for argument in arguments {
        args.extend(["--tool-arg", argument]);
    }
    let result = run(daemon.socket(), &args, Some(daemon));
    assert_ne!(result["isError"], true, "{tool} failed: {result}");
    result["structuredContent"].clone()
}

/// One host and a daemon for it.
fn setup() -> (Fleet, Daemon) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    (fleet, daemon)
}

#[test]
fn tools_list_has_every_tool_and_no_schema_warnings() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let listed = run(
        &dir.path().join("no-daemon.sock"),
        &["--method", "tools/list"],
        None,
    );
    let tools = listed["tools"].as_array().expect("`tools` is an array");
    assert_eq!(tools.len(), 18, "{listed}");
}

#[test]
fn exec_takes_its_arguments_as_the_cli_sends_them() {
    let (_fleet, daemon) = setup();
    let out = call(
        &daemon,
        "exec",
        &[
            "host=host1",
            "command=echo hi",
            "timeout_secs=5",
            "max_output_bytes=100",
        ],
    );
    assert_eq!(out["stdout"], "hi\n", "{out}");
    assert_eq!(out["exit_code"], 0, "{out}");
}

#[test]
fn hosts_result_matches_its_schema() {
    let (fleet, daemon) = setup();
    let out = call(&daemon, "hosts", &[]);
    assert_eq!(out["hosts"][0]["alias"], "host1", "{out}");
    // The result names the ssh config the daemon read, not a guess.
    assert_eq!(
        out["ssh_config"],
        fleet.ssh_config_path().display().to_string(),
        "{out}"
    );
}

#[test]
fn file_tools_take_numbers_flags_and_modes_from_the_command_line() {
    let (_fleet, daemon) = setup();
    let remote = test_user().scratch_dir();
    let path = remote.path().join("sub/note.txt").display().to_string();
    let dir = remote.path().display().to_string();
    let written = call(
        &daemon,
        "write_file",
        &[
            "host=host1",
            &format!("path={path}"),
            "content=hello inspector",
            "mode=0640",
            "create_dirs=true",
        ],
    );
    assert_eq!(written["bytes_written"], 15, "{written}");
    let read = call(
        &daemon,
        "read_file",
        &[
            "host=host1",
            &format!("path={path}"),
            "offset=6",
            "length=3",
        ],
    );
    assert_eq!(read["content"], "ins", "{read}");
    assert_eq!(read["next_offset"], 9, "{read}");
    let stat = call(&daemon, "stat", &["host=host1", &format!("path={path}")]);
    assert_eq!(stat["mode"], "0640", "{stat}");
    let listing = call(
        &daemon,
        "list_dir",
        &[
            "host=host1",
            &format!("path={dir}"),
            "recursive=true",
            "max_entries=5",
        ],
    );
    assert_eq!(
        listing["entries"].as_array().map(Vec::len),
        Some(2),
        "{listing}"
    );
}

#[test]
fn batch_and_cached_results_match_their_schemas() {
    let fleet = Fleet::start(2);
    // Long enough that the stat in the batch is still cached for the stat
    // after it, however slowly the CLI starts.
    let daemon = Daemon::start(&fleet, "[cache]\nstat_ttl_secs = 600\n");
    let remote = test_user().scratch_dir();
    let dir = remote.path().display().to_string();
    // The exec goes to host1: a command that may change things makes the
    // daemon forget what it cached of its host.
    let calls = json!([
        { "tool": "exec", "arguments": { "host": "host1", "command": "echo hi" } },
        { "tool": "stat", "arguments": { "host": "host2", "path": dir } },
        { "tool": "stat", "arguments": { "host": "host2", "path": format!("{dir}/missing") } },
    ]);
    let batch = call(
        &daemon,
        "batch",
        &[&format!("calls={calls}"), "concurrency=2"],
    );
    let results = batch["results"].as_array().expect("`results` is an array");
    assert_eq!(results[0]["result"]["stdout"], "hi\n", "{batch}");
    assert_eq!(results[1]["result"]["type"], "dir", "{batch}");
    assert_eq!(results[2]["ok"], false, "{batch}");
    let again = call(&daemon, "stat", &["host=host2", &format!("path={dir}")]);
    assert_eq!(again["cached"], true, "{again}");
    assert!(again["age_ms"].is_u64(), "{again}");
}
