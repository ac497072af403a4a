//! Persistent shells: one `/bin/sh` per shell on a host, kept by the
//! daemon between calls, so `cd`, exported variables and functions carry
//! from one command to the next.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ExecOutput;

/// Most variables `shell_open` may set.
pub const MAX_SHELL_ENV: usize = 256;

/// `shell_open`: start a shell on `host`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOpenRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Directory to start in: absolute, `~` or `~/...`, or relative to the
    /// remote user's home. Default: the home.
    pub cwd: Option<String>,
    /// Variables to export into the shell: names `[A-Za-z_][A-Za-z0-9_]*`,
    /// values without NUL, at most [`MAX_SHELL_ENV`] of them.
    pub env: BTreeMap<String, String>,
}

/// A shell that `shell_open` started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ShellOpened {
    /// Its id, for `shell_exec` and `shell_close`.
    pub shell_id: String,
    /// Its working directory, as the shell sees it (`$PWD`).
    pub cwd: String,
}

/// `shell_exec`: run a command in a shell, as if typed at its prompt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellExecRequest {
    /// The shell, from `shell_open`.
    pub shell_id: String,
    /// Command line for the shell; not empty, at most
    /// [`MAX_COMMAND_BYTES`](crate::MAX_COMMAND_BYTES), no NUL byte. It
    /// reads `/dev/null` as its standard input.
    pub command: String,
    /// Wall-clock limit in seconds, 1 to [`MAX_TIMEOUT_SECS`](crate::MAX_TIMEOUT_SECS),
    /// counted from the request's arrival (waiting for a busy shell
    /// included); on expiry the command is interrupted (INT, then TERM)
    /// and the shell stays. Default
    /// [`ExecRequest::DEFAULT_TIMEOUT_SECS`](crate::ExecRequest::DEFAULT_TIMEOUT_SECS).
    pub timeout_secs: Option<u64>,
    /// Bytes kept per stream, as `exec`'s `max_output_bytes`.
    pub max_output_bytes: Option<u64>,
    /// Run the command through `sudo` inside the shell, as root or as
    /// `sudo_user`, answering sudo's password prompt from the host's
    /// `[sudo.hosts]` password command as `exec` does. It starts in the
    /// shell's working directory, but as a fresh `sh -c` of the target
    /// user: sudo resets the environment, so the shell's variables and
    /// functions do not reach it, and what it changes (`cd`, variables)
    /// does not reach the shell, which is as it was after the command.
    #[serde(default)]
    pub sudo: bool,
    /// Whom `sudo` runs the command as (default root): a plain user name,
    /// at most [`MAX_USER_BYTES`](crate::MAX_USER_BYTES). Needs `sudo`.
    #[serde(default)]
    pub sudo_user: Option<String>,
}

/// What a command in a shell left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellExecOutput {
    /// Its exit status and output, as `exec` answers them.
    pub output: ExecOutput,
    /// The shell's working directory after the command; `None` when the
    /// shell ended.
    pub cwd: Option<String>,
    /// Set when the command ended the shell (`exit`, a signal): why, and
    /// that the shell id is no longer valid.
    pub closed: Option<String>,
}

/// `shell_close`: end a shell (HUP to it and what it left running).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellCloseRequest {
    /// The shell, from `shell_open`.
    pub shell_id: String,
}

/// Whether a shell runs a command now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ShellState {
    /// Waiting for a command.
    Idle,
    /// Running a command.
    Busy,
}

/// One open shell, as `shells` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct ShellInfo {
    /// Its id.
    pub shell_id: String,
    /// The host alias it runs on.
    pub host: String,
    /// Its working directory after its last command.
    pub cwd: String,
    /// Whether it runs a command now.
    pub state: ShellState,
    /// When it was opened, seconds since the Unix epoch.
    pub opened: u64,
    /// How long it has been open, in milliseconds.
    pub open_ms: u64,
    /// How long since its last command ended (0 while busy), in
    /// milliseconds.
    pub idle_ms: u64,
    /// Commands it has run.
    pub commands: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_MAX_FRAME, Error, ErrorKind, Request};

    fn open(env: &[(&str, &str)]) -> Result<(), Error> {
        Request::ShellOpen(ShellOpenRequest {
            host: "web1".into(),
            cwd: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .validate(DEFAULT_MAX_FRAME)
    }

    fn exec(shell_id: &str, command: &str) -> Result<(), Error> {
        Request::ShellExec(ShellExecRequest {
            shell_id: shell_id.into(),
            command: command.into(),
            ..Default::default()
        })
        .validate(DEFAULT_MAX_FRAME)
    }

    #[test]
    fn env_names_are_shell_variable_names_and_values_may_hold_anything_but_nul() {
        assert!(open(&[("PATH", "/x"), ("_a1", "it's\n$(not run)")]).is_ok());
        for name in ["", "1A", "A-B", "A B", "Ä", "A=B", "$A"] {
            let err = open(&[(name, "v")]).unwrap_err();
            assert_eq!(err.kind, ErrorKind::BadRequest);
            assert!(
                err.message.contains("`env` name"),
                "{name}: {}",
                err.message
            );
        }
        let err = open(&[("A", "x\0y")]).unwrap_err();
        assert!(err.message.contains("`env.A`"), "{}", err.message);
        assert!(err.message.contains("NUL"), "{}", err.message);
    }

    #[test]
    fn too_many_variables_are_refused_naming_the_limit() {
        let names: Vec<String> = (0..=MAX_SHELL_ENV).map(|i| format!("V{i}")).collect();
        let env: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
        let err = open(&env).unwrap_err();
        assert!(err.message.contains("at most 256"), "{}", err.message);
    }

    #[test]
    fn shell_exec_checks_its_id_and_command() {
        assert!(exec("s1-2", "cd /tmp").is_ok());
        let err = exec("../x", "ls").unwrap_err();
        assert!(err.message.contains("`shell_id`"), "{}", err.message);
        let err = exec("s1-2", "  ").unwrap_err();
        assert!(
            err.message.contains("`command` is empty"),
            "{}",
            err.message
        );
        let err = exec("s1-2", "a\0b").unwrap_err();
        assert!(err.message.contains("NUL"), "{}", err.message);
    }

    #[test]
    fn shell_exec_takes_sudo_user_only_with_sudo_and_only_plain_names() {
        let sudo = |sudo: bool, user: &str| {
            Request::ShellExec(ShellExecRequest {
                shell_id: "s1-2".into(),
                command: "id".into(),
                sudo,
                sudo_user: Some(user.into()),
                ..Default::default()
            })
            .validate(DEFAULT_MAX_FRAME)
        };
        assert!(sudo(true, "postgres").is_ok());
        let err = sudo(false, "postgres").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("`sudo: true`"), "{}", err.message);
        for user in ["#0", "-s", "Root", "a b", "it's"] {
            let err = sudo(true, user).unwrap_err();
            assert!(
                err.message.contains("`sudo_user`"),
                "{user}: {}",
                err.message
            );
        }
    }

    #[test]
    fn shells_are_an_admin_request_and_shell_open_targets_its_host() {
        assert!(Request::Shells { host: None }.is_admin());
        let open = Request::ShellOpen(ShellOpenRequest {
            host: "web1".into(),
            ..Default::default()
        });
        assert_eq!(open.host(), Some("web1"));
        assert!(!open.is_admin());
    }
}
