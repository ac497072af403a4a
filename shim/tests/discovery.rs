//! How a shim launched by an MCP host finds the daemon. Hosts start it with
//! only HOME, LOGNAME, PATH, SHELL, TERM and USER in its environment (the
//! MCP SDKs' stdio clients pass nothing else), so it cannot rely on
//! `XDG_RUNTIME_DIR` to say where a per-user daemon listens.

mod common;

use std::path::PathBuf;

use common::SessionRuntimeDir;
use serde_json::{Value, json};
use sshmcp_testkit::{Fleet, McpClient, ShimOptions};

/// The text of a tool result that must be an error.
fn error_text(result: &Value) -> String {
    assert_eq!(
        result["isError"],
        json!(true),
        "expected an error: {result}"
    );
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {result}"))
        .to_string()
}

#[test]
fn a_shim_with_only_the_sdk_environment_finds_the_daemon_in_the_session_runtime_dir() {
    let runtime = SessionRuntimeDir::take();
    let fleet = Fleet::start(1);
    let daemon = common::daemon_at(&runtime.socket(), &fleet);
    let mcp = McpClient::start_like_an_sdk_host(ShimOptions::default());
    mcp.initialize();
    let result = mcp.call_tool("exec", json!({ "host": "host1", "command": "echo found" }));
    assert_eq!(
        result["structuredContent"]["stdout"],
        "found\n",
        "{result}\nshim stderr:\n{}\ndaemon log:\n{}",
        mcp.stderr(),
        daemon.log()
    );
}

#[test]
fn without_a_daemon_the_error_lists_every_socket_path_tried() {
    let runtime = SessionRuntimeDir::take();
    let xdg = tempfile::tempdir().expect("create a temporary directory");
    let mcp = McpClient::start_like_an_sdk_host(ShimOptions {
        env: vec![("XDG_RUNTIME_DIR".into(), xdg.path().display().to_string())],
        ..ShimOptions::default()
    });
    mcp.initialize();
    let message = error_text(&mcp.call_tool("hosts", json!({})));
    assert!(message.contains("not running"), "{message}");
    for tried in [
        xdg.path().join("sshmcp/sshmcpd.sock"),
        runtime.socket(),
        PathBuf::from(sshmcp_proto::SYSTEM_SOCKET),
    ] {
        assert!(
            message.contains(&tried.display().to_string()),
            "{} is not among the paths tried: {message}",
            tried.display()
        );
    }
}

#[test]
fn an_explicit_socket_is_the_only_path_tried() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let socket = dir.path().join("sshmcpd.sock");
    let mcp = McpClient::start(&socket);
    mcp.initialize();
    let message = error_text(&mcp.call_tool("hosts", json!({})));
    assert!(message.contains(&socket.display().to_string()), "{message}");
    assert!(
        !message.contains(sshmcp_proto::SYSTEM_SOCKET),
        "the system socket was tried despite --socket: {message}"
    );
}
