//! Persistent shells end to end, from where an MCP client stands:
//! `shell_open`, `shell_exec` and `shell_close` over the real shim's stdio,
//! the real daemon behind it, a real sshd behind that.
//!
//! A shell belongs to the daemon: a shim that exits leaves it open, and
//! another shim goes on using it.

use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, error_text, structured, text};

/// How long the shim may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// A host, a daemon for it, and a shim that has done the MCP handshake.
fn setup() -> (Fleet, Daemon, McpClient) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let mcp = shim(&daemon);
    (fleet, daemon, mcp)
}

/// A new shim for `daemon`, past its MCP handshake.
fn shim(daemon: &Daemon) -> McpClient {
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    mcp
}

/// `shell_exec` of `command` in `shell`, which must succeed.
fn run(mcp: &McpClient, daemon: &Daemon, shell: &str, command: &str) -> Value {
    structured(
        &mcp.call_tool(
            "shell_exec",
            json!({ "shell_id": shell, "command": command }),
        ),
        daemon,
    )
}

#[test]
fn a_shell_keeps_its_directory_and_variables_between_calls() {
    let (_fleet, daemon, mcp) = setup();
    let opened = mcp.call_tool(
        "shell_open",
        json!({ "host": "host1", "cwd": "/tmp", "env": { "STAGE": "test run" } }),
    );
    let shell = structured(&opened, &daemon);
    assert_eq!(shell["cwd"], "/tmp", "{shell}");
    assert!(text(&opened).contains("shell_id="), "{opened}");
    let id = shell["shell_id"].as_str().expect("a shell_id").to_string();

    let made = run(&mcp, &daemon, &id, "cd \"$(mktemp -d)\" && COUNT=1");
    let dir = made["cwd"].as_str().expect("a cwd").to_string();
    assert!(dir.starts_with("/tmp/"), "{made}");
    assert_eq!(made["exit_code"], 0, "{made}");

    let result = mcp.call_tool(
        "shell_exec",
        json!({ "shell_id": id, "command": "echo \"$STAGE $((COUNT + 1))\"; pwd" }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout"], format!("test run 2\n{dir}\n"), "{out}");
    assert_eq!(out["cwd"], dir.as_str(), "{out}");
    let rendered = text(&result);
    assert!(
        rendered.starts_with("exit_code=0 ") && rendered.contains(&format!("cwd={dir}")),
        "{rendered}"
    );
    assert!(
        rendered.contains("--- stdout ---\ntest run 2\n"),
        "{rendered}"
    );

    let closed = structured(
        &mcp.call_tool("shell_close", json!({ "shell_id": id })),
        &daemon,
    );
    assert_eq!(closed["shell_id"], id.as_str(), "{closed}");
    let again = mcp.call_tool("shell_exec", json!({ "shell_id": id, "command": "pwd" }));
    let message = error_text(&again);
    assert!(
        message.starts_with("not_found: ") && message.contains("closed with shell_close"),
        "{message}"
    );
}

#[test]
fn a_shell_outlives_the_shim_that_opened_it() {
    let (_fleet, daemon, first) = setup();
    let shell = structured(
        &first.call_tool("shell_open", json!({ "host": "host1" })),
        &daemon,
    );
    let id = shell["shell_id"].as_str().expect("a shell_id").to_string();
    run(&first, &daemon, &id, "cd /tmp && LEFT_BY=first");
    first.close_stdin();
    assert!(
        first.wait_exit(EXIT_TIMEOUT).is_some(),
        "the first shim did not exit; stderr:\n{}",
        first.stderr()
    );
    let second = shim(&daemon);
    let out = run(&second, &daemon, &id, "echo \"$LEFT_BY\"");
    assert_eq!(out["stdout"], "first\n", "{out}");
    assert_eq!(out["cwd"], "/tmp", "{out}");
}

#[test]
fn a_command_that_ends_the_shell_says_so_and_a_timeout_does_not() {
    let (_fleet, daemon, mcp) = setup();
    let shell = structured(
        &mcp.call_tool("shell_open", json!({ "host": "host1", "cwd": "/tmp" })),
        &daemon,
    );
    let id = shell["shell_id"].as_str().expect("a shell_id").to_string();
    let slow = mcp.call_tool(
        "shell_exec",
        json!({ "shell_id": id, "command": "sleep 60", "timeout_secs": 1 }),
    );
    let message = error_text(&slow);
    assert!(
        message.starts_with("timeout: ") && message.contains("still open, in /tmp"),
        "{message}"
    );
    let result = mcp.call_tool(
        "shell_exec",
        json!({ "shell_id": id, "command": "echo bye; exit 4" }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], 4, "{out}");
    assert_eq!(out["stdout"], "bye\n", "{out}");
    assert_eq!(out["cwd"], Value::Null, "{out}");
    assert!(
        out["closed"]
            .as_str()
            .is_some_and(|why| why.contains("exited with status 4")),
        "{out}"
    );
    assert!(text(&result).contains("closed="), "{result}");
}

#[test]
fn shell_output_is_cleaned_for_the_model_unless_raw_is_asked() {
    let (_fleet, daemon, mcp) = setup();
    let opened = structured(
        &mcp.call_tool("shell_open", json!({ "host": "host1" })),
        &daemon,
    );
    let id = opened["shell_id"].as_str().expect("a shell_id").to_string();
    let colour = r"printf '\033[31mred\033[0m\n'";
    let clean = run(&mcp, &daemon, &id, colour);
    assert_eq!(clean["stdout"], "red\n", "{clean}");
    let raw = structured(
        &mcp.call_tool(
            "shell_exec",
            json!({ "shell_id": id, "command": colour, "raw": true }),
        ),
        &daemon,
    );
    assert_eq!(raw["stdout"], "\u{1b}[31mred\u{1b}[0m\n", "{raw}");
}
