//! Authentication through an ssh-agent: the daemon has none of its own, so
//! it uses the one the MCP client's shim passes along in its Hello.

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sshmcp_testkit::{Daemon, Fleet, McpClient, ShimOptions, output_within, test_user};

/// A throwaway ssh-agent holding the fleet's key; killed on drop.
struct Agent {
    socket: std::path::PathBuf,
    pid: String,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start_with(key: &std::path::Path) -> Agent {
        let dir = tempfile::tempdir().expect("agent dir");
        let socket = dir.path().join("agent.sock");
        let out = output_within(
            Command::new("ssh-agent").arg("-a").arg(&socket),
            Duration::from_secs(10),
        );
        assert!(out.status.success(), "ssh-agent failed: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let pid = text
            .split("SSH_AGENT_PID=")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .expect("ssh-agent prints its pid")
            .to_string();
        let added = output_within(
            Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", &socket),
            Duration::from_secs(10),
        );
        assert!(added.status.success(), "ssh-add failed: {added:?}");
        Agent {
            socket,
            pid,
            _dir: dir,
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(&self.pid).status();
    }
}

/// An alias for the fleet's server with no usable identity file: only an
/// agent can log in to it.
fn add_agent_only_alias(fleet: &Fleet) {
    let server = fleet.server(0);
    fleet.append_ssh_config(&format!(
        "\nHost agentonly\n    HostName {}\n    Port {}\n    User {}\n    IdentityFile /nonexistent/key\n    UserKnownHostsFile {}\n",
        server.addr(),
        server.port(),
        test_user().name(),
        fleet.known_hosts_path().display(),
    ));
}

#[test]
fn a_daemon_without_an_agent_authenticates_with_the_callers_agent() {
    let fleet = Fleet::start(1);
    add_agent_only_alias(&fleet);
    let agent = Agent::start_with(fleet.key().path());
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start_with(
        daemon.socket(),
        ShimOptions {
            env: vec![("SSH_AUTH_SOCK".into(), agent.socket.display().to_string())],
            ..ShimOptions::default()
        },
    );
    mcp.initialize();
    let result = mcp.call_tool(
        "exec",
        json!({"host": "agentonly", "command": "echo via-agent"}),
    );
    assert_eq!(
        result["isError"],
        json!(false),
        "{result}\n{}",
        daemon.log()
    );
    assert_eq!(result["structuredContent"]["stdout"], "via-agent\n");
}

#[test]
fn without_any_agent_the_same_host_fails_auth_with_advice() {
    let fleet = Fleet::start(1);
    add_agent_only_alias(&fleet);
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let result = mcp.call_tool("exec", json!({"host": "agentonly", "command": "true"}));
    assert_eq!(result["isError"], json!(true), "{result}");
    let text = result["content"][0]["text"].as_str().unwrap_or_default();
    assert!(text.contains("auth_failed"), "{text}");
    assert!(text.contains("ssh-add"), "{text}");
}
