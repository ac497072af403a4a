//! The MCP tools end to end, from where an MCP client stands: JSON-RPC over
//! the real shim's stdio, the real daemon behind it, a real sshd behind that.
//!
//! The kit's [`McpClient`] also checks on every call that the shim writes
//! nothing but JSON-RPC to stdout, and that the text of every tool result
//! carries every field of its `structuredContent`.

use std::thread;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sshmcp_testkit::{
    Daemon, Fleet, McpClient, ShimOptions, SshServer, error_text, structured, text, unique_digits,
    wait_for,
};

/// How long a remote process may take to appear, or to disappear.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the shim may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The protocol revision the kit's client asks for at `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// The client name the kit's client sends at `initialize`.
const CLIENT_NAME: &str = "sshmcp-tests";

/// `n` hosts, a daemon for them, and a shim that has done the MCP handshake.
fn setup(n: usize) -> (Fleet, Daemon, McpClient) {
    let fleet = Fleet::start(n);
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    (fleet, daemon, mcp)
}

/// A socket path in a fresh directory where nothing listens.
fn dead_socket() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let socket = dir.path().join("sshmcpd.sock");
    (dir, socket)
}

fn exec(mcp: &McpClient, host: &str, command: &str) -> Value {
    mcp.call_tool("exec", json!({ "host": host, "command": command }))
}

/// The tool names of a `tools/list` result, sorted.
fn sorted_names(tools: &Value) -> Vec<&str> {
    let mut names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("`tools` is an array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    names
}

/// A tool of the `tools/list` result, by name.
fn tool<'a>(tools: &'a Value, name: &str) -> &'a Value {
    tools["tools"]
        .as_array()
        .expect("`tools` is an array")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tool `{name}` in {tools}"))
}

/// The pool state the `hosts` tool reports for `alias`.
fn host_state(mcp: &McpClient, daemon: &Daemon, alias: &str) -> String {
    let hosts = structured(&mcp.call_tool("hosts", json!({})), daemon);
    hosts["hosts"]
        .as_array()
        .expect("`hosts` is an array")
        .iter()
        .find(|h| h["alias"] == alias)
        .unwrap_or_else(|| panic!("`hosts` lists no {alias}: {hosts}"))["state"]
        .as_str()
        .expect("`state` is a string")
        .to_string()
}

/// Calls `exec` of `sleep 1000.<digits unique to the call>` on host1 as
/// request `id`, without waiting for its answer, and waits until the sleep
/// runs on `server`. Returns the pgrep pattern that finds the sleep.
fn start_remote_sleep(mcp: &McpClient, server: &SshServer, id: u64) -> String {
    let digits = unique_digits();
    let call = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {
            "name": "exec",
            "arguments": { "host": "host1", "command": format!("sleep 1000.{digits}") },
        },
    });
    mcp.send_raw(&call.to_string());
    let pattern = format!("sleep 1000[.]{digits}");
    wait_for(
        || !server.pids_of_user_matching(&pattern).is_empty(),
        REMOTE_TIMEOUT,
        "the remote sleep to start",
    );
    pattern
}

#[test]
fn initialize_names_the_server_and_offers_tools() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    let init = mcp.initialize();
    assert_eq!(init["serverInfo"]["name"], "sshmcp", "{init}");
    assert!(
        init["serverInfo"]["version"]
            .as_str()
            .is_some_and(|v| !v.is_empty()),
        "{init}"
    );
    assert!(init["capabilities"]["tools"].is_object(), "{init}");
    assert_eq!(init["protocolVersion"], PROTOCOL_VERSION, "{init}");
}

#[test]
fn tools_list_has_every_tool_with_schemas_and_annotations() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let tools = mcp.list_tools();

    let names = sorted_names(&tools);
    assert_eq!(
        names,
        [
            "batch",
            "exec",
            "hosts",
            "job_output",
            "job_signal",
            "jobs",
            "list_dir",
            "mkdir",
            "read_file",
            "remove",
            "rename",
            "shell_close",
            "shell_exec",
            "shell_open",
            "stat",
            "sync",
            "transfer",
            "write_file"
        ],
        "{tools}"
    );

    for name in names {
        let tool = tool(&tools, name);
        assert!(tool["inputSchema"].is_object(), "{name}: {tool}");
        assert!(tool["outputSchema"].is_object(), "{name}: {tool}");
        assert!(tool["annotations"].is_object(), "{name}: {tool}");
    }

    let hosts = tool(&tools, "hosts");
    assert_eq!(hosts["annotations"]["readOnlyHint"], true, "{hosts}");

    // Hints are given only where they differ from the MCP spec's defaults:
    // exec is not read-only and is open-world by default.
    let exec = tool(&tools, "exec");
    assert_eq!(
        exec["annotations"],
        json!({ "destructiveHint": true }),
        "{exec}"
    );
    let batch = tool(&tools, "batch");
    assert_eq!(
        batch["annotations"],
        json!({ "destructiveHint": true }),
        "{batch}"
    );
    let required = exec["inputSchema"]["required"]
        .as_array()
        .unwrap_or_else(|| panic!("exec's inputSchema has no `required`: {exec}"));
    for argument in ["host", "command"] {
        assert!(
            required.contains(&json!(argument)),
            "exec must require `{argument}`: {exec}"
        );
    }
}

/// The tools offered before the job tools: `tools/list` with these alone
/// (as `--tools` naming them gives it) must stay within
/// [`TOOLS_LIST_BUDGET`].
const FIRST_TOOLS: [&str; 12] = [
    "hosts",
    "exec",
    "stat",
    "list_dir",
    "read_file",
    "write_file",
    "mkdir",
    "remove",
    "rename",
    "transfer",
    "sync",
    "batch",
];

/// The most `tools/list` may take of a model's context, in characters of
/// its JSON `result`, with the [`FIRST_TOOLS`] offered: about 2,500 tokens.
/// (It was 10,000 until `exec` took `sudo`, `sudo_user`, `detach` and
/// `raw`, some 200 characters.)
const TOOLS_LIST_BUDGET: usize = 10_250;

/// The most it may take with every tool offered, the job and shell tools
/// included (the three shell tools take about 2,100 characters).
const FULL_TOOLS_LIST_BUDGET: usize = 15_000;

/// The size of a `tools/list` result, in characters, and of each part of
/// its tools.
fn list_size(tools: &Value) -> (usize, [(&'static str, usize); 3]) {
    let mut parts = [("outputSchema", 0), ("inputSchema", 0), ("description", 0)];
    for tool in tools["tools"].as_array().expect("`tools` is an array") {
        for (part, total) in &mut parts {
            *total += tool[*part].to_string().chars().count();
        }
    }
    (tools.to_string().chars().count(), parts)
}

#[test]
fn tools_list_fits_its_budget() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let all = mcp.list_tools();
    let mut first = all.clone();
    first["tools"]
        .as_array_mut()
        .expect("`tools` is an array")
        .retain(|tool| FIRST_TOOLS.iter().any(|name| tool["name"] == *name));
    assert_eq!(
        first["tools"].as_array().map(Vec::len),
        Some(FIRST_TOOLS.len()),
        "{all}"
    );
    let (size, parts) = list_size(&first);
    println!("tools/list of the first 12 tools: {size} characters ({parts:?})");
    let (full, full_parts) = list_size(&all);
    let count = all["tools"].as_array().map_or(0, Vec::len);
    println!("tools/list of all {count} tools: {full} characters ({full_parts:?})");
    assert!(
        size <= TOOLS_LIST_BUDGET,
        "tools/list of the first 12 tools is {size} characters, over the budget of \
         {TOOLS_LIST_BUDGET}: {parts:?}"
    );
    assert!(
        full <= FULL_TOOLS_LIST_BUDGET,
        "tools/list is {full} characters, over the budget of {FULL_TOOLS_LIST_BUDGET}: \
         {full_parts:?}"
    );
}

#[test]
fn input_schemas_give_every_argument_one_plain_type() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let tools = mcp.list_tools();
    for tool in tools["tools"].as_array().expect("`tools` is an array") {
        let schema = &tool["inputSchema"];
        for noise in ["$schema", "$defs", "title"] {
            assert!(
                schema.get(noise).is_none(),
                "{}: {noise} in {schema}",
                tool["name"]
            );
        }
        let properties = schema["properties"].as_object().expect("properties");
        for (name, property) in properties {
            let what = format!("{}.{name}: {property}", tool["name"]);
            assert!(property["type"].is_string(), "{what}");
            for noise in ["format", "$ref", "anyOf", "oneOf", "nullable", "title"] {
                assert!(property.get(noise).is_none(), "{what}");
            }
        }
    }
    let exec = tool(&tools, "exec");
    assert_eq!(
        exec["inputSchema"]["properties"]["timeout_secs"],
        json!({ "type": "integer", "minimum": 1, "maximum": 86_400, "default": 60 }),
        "{exec}"
    );
}

#[test]
fn numbers_sent_as_strings_are_taken() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "printf abcdef", "timeout_secs": "5",
                "max_output_bytes": "2" }),
    );
    let out = structured(&result, &daemon);
    let stdout = out["stdout"].as_str().unwrap();
    assert!(
        stdout.starts_with("a\n[... 4 bytes") && stdout.ends_with("...]\nf"),
        "{out}"
    );
}

#[test]
fn a_bad_number_is_an_error_result_naming_the_argument_and_its_range() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "true", "timeout_secs": "abc" }),
    );
    let message = error_text(&result);
    assert!(
        message.contains("`timeout_secs`: expected an integer from 1 to 86400, got \"abc\""),
        "{message}"
    );
}

#[test]
fn a_tools_profile_lists_and_serves_only_its_tools() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start_with(
        &socket,
        ShimOptions {
            args: vec!["--tools".into(), "read-only".into()],
            ..ShimOptions::default()
        },
    );
    mcp.initialize();
    let tools = mcp.list_tools();
    let names = sorted_names(&tools);
    assert_eq!(
        names,
        [
            "hosts",
            "job_output",
            "jobs",
            "list_dir",
            "read_file",
            "stat"
        ],
        "{tools}"
    );

    let response = mcp.request(
        "tools/call",
        json!({ "name": "exec", "arguments": { "host": "host1", "command": "true" } }),
    );
    let message = response["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {response}"));
    assert!(message.contains("`exec`"), "{message}");
    assert!(message.contains("--tools read-only"), "{message}");
    assert!(message.contains("read_file"), "{message}");
}

#[test]
fn tools_named_one_by_one_are_the_only_ones_listed() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start_with(
        &socket,
        ShimOptions {
            args: vec!["--tools=exec,read_file".into()],
            ..ShimOptions::default()
        },
    );
    mcp.initialize();
    let tools = mcp.list_tools();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .expect("`tools` is an array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["exec", "read_file"], "{tools}");
}

#[test]
fn an_unknown_name_in_tools_stops_the_shim_listing_the_known_ones() {
    let output = std::process::Command::new(sshmcp_testkit::bin_path("sshmcp"))
        .args(["--tools", "exec,shell"])
        .output()
        .expect("run sshmcp");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`shell`"), "{stderr}");
    assert!(
        stderr.contains("read-only") && stderr.contains("list_dir"),
        "{stderr}"
    );
}

#[test]
fn hosts_lists_every_host_and_shows_it_connected_after_an_exec() {
    let (_fleet, daemon, mcp) = setup(2);
    let result = mcp.call_tool("hosts", json!({}));
    let hosts = structured(&result, &daemon);
    let aliases: Vec<&str> = hosts["hosts"]
        .as_array()
        .expect("`hosts` is an array")
        .iter()
        .filter_map(|h| h["alias"].as_str())
        .collect();
    assert_eq!(aliases, ["host1", "host2"], "{hosts}");
    for host in hosts["hosts"].as_array().expect("`hosts` is an array") {
        assert!(host["state"].is_string(), "{host}");
    }
    assert!(text(&result).contains("host1"), "{result}");

    structured(&exec(&mcp, "host1", "true"), &daemon);
    assert_eq!(host_state(&mcp, &daemon, "host1"), "connected");
}

#[test]
fn exec_returns_output_exit_code_and_a_text_rendering() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = exec(&mcp, "host1", "echo hi");
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], 0, "{out}");
    assert_eq!(out["stdout"], "hi\n", "{out}");
    assert_eq!(out["stderr"], "", "{out}");
    assert_eq!(out["stdout_encoding"], "utf8", "{out}");
    assert_eq!(out["truncated"], false, "{out}");
    assert!(out["duration_ms"].is_u64(), "{out}");
    assert!(text(&result).contains("hi"), "{result}");
}

#[test]
fn a_non_zero_exit_code_is_a_result_not_a_tool_error() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = exec(&mcp, "host1", "echo oops >&2; exit 3");
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], 3, "{out}");
    assert_eq!(out["stderr"], "oops\n", "{out}");
    assert!(text(&result).contains("exit_code=3"), "{result}");
}

#[test]
fn non_utf8_output_is_base64_of_the_exact_bytes() {
    let (_fleet, daemon, mcp) = setup(1);
    let out = structured(&exec(&mcp, "host1", r"printf '\377\376\000ab'"), &daemon);
    assert_eq!(out["stdout_encoding"], "base64", "{out}");
    let stdout = out["stdout"].as_str().expect("`stdout` is a string");
    assert_eq!(
        STANDARD.decode(stdout).expect("`stdout` is valid base64"),
        [0xff, 0xfe, 0x00, b'a', b'b']
    );
    assert_eq!(out["stderr_encoding"], "utf8", "{out}");
}

#[test]
fn stdin_is_fed_to_the_command() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "cat", "stdin": "héllo\nwörld\n" }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout"], "héllo\nwörld\n", "{out}");
}

#[test]
fn output_past_max_output_bytes_keeps_head_and_tail_around_a_marker() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "printf abcdefgh", "max_output_bytes": 4 }),
    );
    let out = structured(&result, &daemon);
    let stdout = out["stdout"].as_str().unwrap();
    assert!(
        stdout.starts_with("ab\n[... 4 bytes of stdout left out (offsets 2-6)"),
        "{out}"
    );
    assert!(stdout.ends_with("...]\ngh"), "{out}");
    assert_eq!(out["stdout_bytes"], 8, "{out}");
    assert_eq!(out["truncated"], true, "{out}");
    assert!(
        text(&result).contains("bytes of stdout left out"),
        "{result}"
    );
}

#[test]
fn by_default_a_flood_of_output_is_cut_to_the_budget_with_head_and_tail() {
    let (_fleet, daemon, mcp) = setup(1);
    // 20,000 numbered lines: 108,894 bytes.
    let result = mcp.call_tool("exec", json!({ "host": "host1", "command": "seq 1 20000" }));
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout_bytes"], 108_894, "{}", out["stdout_bytes"]);
    let stdout = out["stdout"].as_str().unwrap();
    assert!(stdout.starts_with("1\n2\n3\n"), "{}", &stdout[..40]);
    assert!(
        stdout.ends_with("19999\n20000\n"),
        "{}",
        &stdout[stdout.len() - 40..]
    );
    // 16 KiB kept: the first 8 KiB and the last 8 KiB.
    let left_out = 108_894 - 16 * 1024;
    let marker = format!(
        "[... {left_out} bytes of stdout left out (offsets 8192-{})",
        8192 + left_out
    );
    assert!(stdout.contains(&marker), "{}", &stdout[8000..8600]);
    // What the model reads stays near the budget: the kept bytes and one line.
    assert!(
        text(&result).len() < 16 * 1024 + 600,
        "{}",
        text(&result).len()
    );
}

#[test]
fn terminal_escapes_and_redraws_are_cleaned_unless_raw_is_asked() {
    let (_fleet, daemon, mcp) = setup(1);
    let command = r"printf '\033[1;31merror\033[0m: bad\n 10%%\r 55%%\r100%%\n'";
    let result = mcp.call_tool("exec", json!({ "host": "host1", "command": command }));
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout"], "error: bad\n100%\n", "{out}");
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": command, "raw": true }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(
        out["stdout"], "\u{1b}[1;31merror\u{1b}[0m: bad\n 10%\r 55%\r100%\n",
        "{out}"
    );
}

#[test]
fn unknown_host_is_an_error_result_naming_the_known_hosts() {
    let (_fleet, _daemon, mcp) = setup(2);
    let message = error_text(&exec(&mcp, "nosuchhost", "true"));
    assert!(message.contains("nosuchhost"), "{message}");
    assert!(
        message.contains("host1") && message.contains("host2"),
        "{message}"
    );
}

#[test]
fn a_command_past_its_timeout_is_an_error_result_that_says_so() {
    let (_fleet, _daemon, mcp) = setup(1);
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "sleep 30", "timeout_secs": 1 }),
    );
    let message = error_text(&result);
    assert!(message.contains("timeout"), "{message}");
}

#[test]
fn an_empty_command_is_an_error_result_naming_the_argument() {
    let (_fleet, _daemon, mcp) = setup(1);
    let message = error_text(&exec(&mcp, "host1", ""));
    assert!(message.contains("`command`"), "{message}");
}

#[test]
fn an_unknown_argument_is_an_error_result_naming_it() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "ls", "cwd": "/tmp" }),
    );
    let message = error_text(&result);
    assert!(message.contains("cwd"), "{message}");
}

#[test]
fn an_unknown_tool_is_a_json_rpc_error_listing_the_tools() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let response = mcp.request(
        "tools/call",
        json!({ "name": "no_such_tool", "arguments": {} }),
    );
    assert!(response.get("result").is_none(), "{response}");
    let message = response["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {response}"));
    assert!(message.contains("no_such_tool"), "{message}");
    assert!(
        message.contains("exec") && message.contains("sync"),
        "{message}"
    );
}

#[test]
fn without_a_daemon_exec_says_how_to_start_it() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let message = error_text(&exec(&mcp, "host1", "true"));
    assert!(message.contains("not running"), "{message}");
    assert!(message.contains("sshmcpd"), "{message}");
    assert!(message.contains("Start it"), "{message}");
}

#[test]
fn a_daemon_started_after_the_shim_serves_the_next_call() {
    let fleet = Fleet::start(1);
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    error_text(&exec(&mcp, "host1", "true"));

    let daemon = Daemon::start_with_config_text(&format!(
        "[daemon]\nsocket = {}\n\n[ssh]\nconfig = {}\n",
        json!(socket.display().to_string()),
        json!(fleet.ssh_config_path().display().to_string()),
    ));

    let out = structured(&exec(&mcp, "host1", "echo up"), &daemon);
    assert_eq!(out["stdout"], "up\n");
}

#[test]
fn calls_after_a_daemon_restart_reconnect_transparently() {
    let (_fleet, daemon, mcp) = setup(1);
    let before = structured(&exec(&mcp, "host1", "echo before"), &daemon);
    assert_eq!(before["stdout"], "before\n");

    daemon.restart();

    let after = structured(&exec(&mcp, "host1", "echo after"), &daemon);
    assert_eq!(after["stdout"], "after\n");
}

#[test]
fn a_cancelled_call_kills_the_remote_command() {
    let (fleet, _daemon, mcp) = setup(1);
    let server = fleet.server(0);
    let pattern = start_remote_sleep(&mcp, server, 4242);

    mcp.send_notification(
        "notifications/cancelled",
        json!({ "requestId": 4242, "reason": "the test cancelled it" }),
    );

    wait_for(
        || server.pids_of_user_matching(&pattern).is_empty(),
        REMOTE_TIMEOUT,
        "the cancelled remote sleep to end",
    );
}

#[test]
fn shim_exits_cleanly_when_stdin_closes() {
    let (_fleet, daemon, mcp) = setup(1);
    structured(&exec(&mcp, "host1", "true"), &daemon);
    mcp.close_stdin();
    let status = mcp.wait_exit(EXIT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "shim exit status {status:?}; stderr:\n{}",
        mcp.stderr()
    );
}

#[test]
fn shim_exits_cleanly_when_stdin_closes_without_a_daemon() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    error_text(&exec(&mcp, "host1", "true"));
    mcp.close_stdin();
    let status = mcp.wait_exit(EXIT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "shim exit status {status:?}; stderr:\n{}",
        mcp.stderr()
    );
}

#[test]
fn closing_stdin_mid_call_stops_the_remote_command_and_exits_cleanly() {
    let (fleet, _daemon, mcp) = setup(1);
    let server = fleet.server(0);
    let pattern = start_remote_sleep(&mcp, server, 4343);

    mcp.close_stdin();

    let status = mcp.wait_exit(EXIT_TIMEOUT);
    assert!(
        status.is_some_and(|s| s.success()),
        "shim exit status {status:?}; stderr:\n{}",
        mcp.stderr()
    );
    wait_for(
        || server.pids_of_user_matching(&pattern).is_empty(),
        REMOTE_TIMEOUT,
        "the remote sleep to end after the shim shut down",
    );
}

#[test]
fn concurrent_calls_share_pooled_connections() {
    const CALLS: usize = 20;
    /// OpenSSH's default `MaxSessions`: channels one connection carries.
    const SESSIONS_PER_CONNECTION: usize = 10;
    let (fleet, daemon, mcp) = setup(1);
    let outputs: Vec<Value> = thread::scope(|scope| {
        let calls: Vec<_> = (0..CALLS)
            .map(|i| {
                let mcp = &mcp;
                scope.spawn(move || exec(mcp, "host1", &format!("sleep 0.2; echo {i}")))
            })
            .collect();
        calls
            .into_iter()
            .map(|call| call.join().expect("call thread"))
            .collect()
    });
    for (i, result) in outputs.iter().enumerate() {
        let out = structured(result, &daemon);
        assert_eq!(out["stdout"], format!("{i}\n"), "call {i}: {out}");
    }
    let logins = fleet.server(0).accepted_logins();
    assert!(
        logins <= CALLS.div_ceil(SESSIONS_PER_CONNECTION),
        "{CALLS} concurrent calls made {logins} SSH logins"
    );
}

#[test]
fn the_mcp_client_name_reaches_the_daemon() {
    let (_fleet, daemon, mcp) = setup(1);
    structured(&exec(&mcp, "host1", "true"), &daemon);
    let log = daemon.log();
    assert!(
        log.contains(CLIENT_NAME),
        "the daemon's log never names the MCP client `{CLIENT_NAME}`:\n{log}"
    );
}

/// How long the shim's stderr may take to reach the test.
const STDERR_TIMEOUT: Duration = Duration::from_secs(10);

/// One byte past the 16 MiB the shim takes in one message.
const OVERSIZED: usize = 16 * 1024 * 1024 + 1;

/// A `write_file` call whose content alone is over the size limit.
fn oversized_write_file() -> Value {
    json!({
        "name": "write_file",
        "arguments": { "host": "host1", "path": "/tmp/big", "content": "x".repeat(OVERSIZED) },
    })
}

#[test]
fn a_request_over_the_size_limit_gets_a_json_rpc_error_naming_the_limit() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let response = mcp.request("tools/call", oversized_write_file());
    assert_eq!(response["error"]["code"], -32600, "{response}");
    let message = response["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("not a JSON-RPC error: {response}"));
    assert!(message.contains("16 MiB"), "{message}");
    assert!(message.contains("tools/call"), "{message}");
}

#[test]
fn an_oversized_request_with_its_id_written_last_is_answered_with_that_id() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    // The TypeScript SDK's order: the id comes after the bulk of the message.
    let line = format!(
        r#"{{"method":"tools/call","params":{},"jsonrpc":"2.0","id":"late-id"}}"#,
        oversized_write_file()
    );
    mcp.send_raw(&line);
    let response = mcp.response_to(&json!("late-id"));
    assert!(response["error"]["message"].is_string(), "{response}");
}

#[test]
fn after_an_oversized_request_the_shim_says_so_on_stderr_and_keeps_serving() {
    let (_dir, socket) = dead_socket();
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    mcp.request("tools/call", oversized_write_file());
    assert!(mcp.list_tools()["tools"].is_array());
    // stderr is read on its own thread, so it may lag behind stdout.
    wait_for(
        || mcp.stderr().contains("over the 16 MiB limit"),
        STDERR_TIMEOUT,
        "the shim's stderr to mention the dropped request",
    );
}

#[test]
fn a_running_exec_reports_its_latest_line_as_progress() {
    let (_fleet, daemon, mcp) = setup(1);
    let (result, progress) = mcp.call_tool_with_progress(
        "exec",
        json!({
            "host": "host1",
            "command": "for i in 1 2 3 4; do printf '\\033[32mstep %s\\033[0m\\n' $i; sleep 0.3; done",
        }),
        json!("exec-1"),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(
        progress.len() >= 2,
        "a command that prints for a second sends progress as it runs: {progress:?}"
    );
    let mut last = -1.0;
    for params in &progress {
        let done = params["progress"].as_f64().expect("progress is a number");
        assert!(done > last, "progress must grow: {progress:?}");
        last = done;
        let message = params["message"].as_str().expect("a message");
        assert!(
            message.starts_with("step "),
            "the latest line, without escapes: {message:?}"
        );
    }
}

#[test]
fn an_exec_that_may_become_a_job_reports_its_output_as_progress_too() {
    let (_fleet, daemon, mcp) = setup(1);
    let (result, progress) = mcp.call_tool_with_progress(
        "exec",
        json!({
            "host": "host1",
            "command": "for i in 1 2 3 4; do echo step $i; sleep 0.3; done",
            "on_timeout": "background",
            "timeout_secs": 30,
        }),
        json!("exec-2"),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(
        progress.len() >= 2,
        "a job-backed exec sends progress as it runs: {progress:?}"
    );
    for params in &progress {
        let message = params["message"].as_str().expect("a message");
        assert!(message.starts_with("step "), "{message:?}");
    }
}
