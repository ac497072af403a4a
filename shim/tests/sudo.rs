//! `exec` and `shell_exec` with `sudo` from where an MCP client stands: the real shim's
//! stdio, the real daemon behind it, a real sshd and the host's real sudo
//! behind that. Needs root to give the test account sudo rights (see
//! `sshmcp_testkit::test_sudo`); skips otherwise, saying why.

use serde_json::json;
use sshmcp_testkit::{Daemon, Fleet, McpClient, TestSudo, error_text, structured, test_sudo};

/// A daemon whose `[sudo.hosts]` give host1 the test account's password
/// (from a file the password command reads), and a shim past its
/// handshake; `None`, saying why, when sudo cannot be set up here.
struct PasswordSetup {
    sudo: &'static TestSudo,
    _dir: tempfile::TempDir,
    _fleet: Fleet,
    daemon: Daemon,
    mcp: McpClient,
}

fn with_password() -> Option<PasswordSetup> {
    let sudo = match test_sudo() {
        Ok(sudo) => sudo,
        Err(why) => {
            eprintln!("skipping: {why}");
            return None;
        }
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let password = dir.path().join("password");
    std::fs::write(&password, format!("{}\n", sudo.password())).expect("write the password");
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        &format!(
            "[sudo.hosts.\"host*\"]\npassword_command = \"cat '{}'\"\n",
            password.display()
        ),
    );
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    Some(PasswordSetup {
        sudo,
        _dir: dir,
        _fleet: fleet,
        daemon,
        mcp,
    })
}

#[test]
fn exec_with_sudo_runs_the_command_as_root_with_the_configured_password() {
    let Some(PasswordSetup {
        sudo,
        _dir,
        _fleet,
        daemon,
        mcp,
    }) = with_password()
    else {
        return;
    };

    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "id -u", "sudo": true }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout"], "0\n", "{out}");
    assert_eq!(out["stderr"], "", "{out}");
    assert!(!result.to_string().contains(sudo.password()), "{result}");

    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "id -un", "sudo": true,
                "sudo_user": sudo.nopasswd_user() }),
    );
    assert_eq!(structured(&result, &daemon)["stdout"], "sshmcp-nopw\n");
}

#[test]
fn sudo_user_without_sudo_is_refused_saying_to_set_both() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": "id", "sudo_user": "postgres" }),
    );
    let text = error_text(&result);
    assert!(text.contains("`sudo: true`"), "{text}");
}

#[test]
fn shell_exec_with_sudo_runs_the_command_as_root_in_the_shells_directory() {
    let Some(PasswordSetup {
        sudo,
        _dir,
        _fleet,
        daemon,
        mcp,
    }) = with_password()
    else {
        return;
    };
    let opened = mcp.call_tool("shell_open", json!({ "host": "host1", "cwd": "/tmp" }));
    let shell = structured(&opened, &daemon)["shell_id"]
        .as_str()
        .expect("a shell_id")
        .to_string();

    let result = mcp.call_tool(
        "shell_exec",
        json!({ "shell_id": shell, "command": "id -u; pwd", "sudo": true }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["stdout"], "0\n/tmp\n", "{out}");
    assert_eq!(out["stderr"], "", "{out}");
    assert_eq!(out["cwd"], "/tmp", "{out}");
    assert!(!result.to_string().contains(sudo.password()), "{result}");
}
