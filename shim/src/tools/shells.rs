//! The shell tools: `shell_open` starts a persistent shell on a host,
//! `shell_exec` runs commands in it (as typed at its prompt, so `cd`,
//! variables and functions carry over), `shell_close` ends it. A shell
//! belongs to the daemon, so any shim may use a shell another opened.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    DEFAULT_MAX_FRAME, Error, ExecRequest, MAX_TIMEOUT_SECS, Request, Response, ShellCloseRequest,
    ShellExecOutput, ShellExecRequest, ShellOpenRequest, ShellOpened, max_output_per_stream,
};

use super::arguments::Int;
use super::exec::{ExecResult, Shown, present};
use super::{Effect, Tool};

/// The most output per stream one reply can carry: both streams travel in
/// one frame.
const MAX_OUTPUT: u64 = max_output_per_stream(DEFAULT_MAX_FRAME);

/// The `shell_open` tool.
pub struct ShellOpen;

/// The `shell_open` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellOpenArgs {
    pub host: String,
    /// Default: home.
    pub cwd: Option<String>,
    /// To export.
    pub env: Option<BTreeMap<String, String>>,
}

impl Tool for ShellOpen {
    const NAME: &'static str = "shell_open";
    const DESCRIPTION: &'static str = "Open a persistent shell (/bin/sh, no TTY) on a host \
        for shell_exec; cd, variables and functions persist. Closed when idle (default 30 \
        min).";
    const EFFECT: Effect = Effect::CHANGES;
    type Args = ShellOpenArgs;
    type Output = ShellOpened;
    type Asked = ();

    fn request(args: ShellOpenArgs) -> Result<(Request, ()), Error> {
        let request = ShellOpenRequest {
            host: args.host,
            cwd: args.cwd,
            env: args.env.unwrap_or_default(),
        };
        Ok((Request::ShellOpen(request), ()))
    }

    fn answer((): (), response: Response) -> Option<ShellOpened> {
        match response {
            Response::ShellOpened(opened) => Some(opened),
            _ => None,
        }
    }
}

/// The `shell_exec` tool.
pub struct ShellExec;

/// The `shell_exec` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellExecArgs {
    pub shell_id: String,
    pub command: String,
    /// Waiting for a busy shell included.
    #[schemars(extend("default" = ExecRequest::DEFAULT_TIMEOUT_SECS))]
    pub timeout_secs: Option<Int<1, MAX_TIMEOUT_SECS>>,
    /// As exec's.
    #[schemars(extend("default" = ExecRequest::MCP_MAX_OUTPUT))]
    pub max_output_bytes: Option<Int<0, MAX_OUTPUT>>,
    /// In the shell's cwd, without its variables.
    #[serde(default)]
    pub sudo: bool,
    pub sudo_user: Option<String>,
    /// Keep ANSI escapes.
    #[serde(default)]
    pub raw: bool,
}

/// The `shell_exec` tool's `structuredContent`: `exec`'s result, and where
/// the shell is after the command.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ShellExecResult {
    #[serde(flatten)]
    pub exec: ExecResult,
    /// The shell's working directory; null once the shell has ended.
    pub cwd: Option<String>,
    /// Set when the command ended the shell (`exit`): why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
}

impl Tool for ShellExec {
    const NAME: &'static str = "shell_exec";
    const DESCRIPTION: &'static str = "Run a command in a shell_open shell as at its prompt \
        (stdin /dev/null): exec's result plus cwd. On timeout it gets INT; the shell stays. One \
        command at a time; others wait.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    const BLOCKS: &'static [&'static str] = &["stdout", "stderr"];
    type Args = ShellExecArgs;
    type Output = ShellExecResult;
    type Asked = Shown;

    fn request(args: ShellExecArgs) -> Result<(Request, Shown), Error> {
        let shown = Shown::asked(args.raw, args.max_output_bytes);
        let request = ShellExecRequest {
            shell_id: args.shell_id,
            command: args.command,
            timeout_secs: args.timeout_secs.map(|Int(secs)| secs),
            max_output_bytes: Some(shown.max_output),
            sudo: args.sudo,
            sudo_user: args.sudo_user,
        };
        Ok((Request::ShellExec(request), shown))
    }

    fn answer(shown: Shown, response: Response) -> Option<ShellExecResult> {
        match response {
            Response::ShellExec(done) => {
                let ShellExecOutput {
                    output,
                    cwd,
                    closed,
                } = *done;
                Some(ShellExecResult {
                    exec: present(output, shown),
                    cwd,
                    closed,
                })
            }
            _ => None,
        }
    }
}

/// The `shell_close` tool.
pub struct ShellClose;

/// The `shell_close` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ShellCloseArgs {
    pub shell_id: String,
}

/// The `shell_close` tool's `structuredContent`. The daemon answers a
/// plain `Ok`; the id, as sent, says which shell is closed now.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ShellCloseResult {
    pub shell_id: String,
}

impl Tool for ShellClose {
    const NAME: &'static str = "shell_close";
    const DESCRIPTION: &'static str = "Close a shell_open shell; what it still runs gets HUP.";
    const EFFECT: Effect = Effect {
        destructive: true,
        idempotent: true,
        ..Effect::CHANGES
    };
    type Args = ShellCloseArgs;
    type Output = ShellCloseResult;
    type Asked = String;

    fn request(args: ShellCloseArgs) -> Result<(Request, String), Error> {
        let request = ShellCloseRequest {
            shell_id: args.shell_id.clone(),
        };
        Ok((Request::ShellClose(request), args.shell_id))
    }

    fn answer(shell_id: String, response: Response) -> Option<ShellCloseResult> {
        matches!(response, Response::Ok).then_some(ShellCloseResult { shell_id })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use sshmcp_proto::{ErrorKind, ExecOutput};

    use super::*;
    use crate::tools::{arguments, text};

    fn prepared<T: Tool>(args: Value) -> Result<Request, Error> {
        let args = arguments::parse::<T::Args>(T::NAME, args)?;
        let (request, _) = T::request(args)?;
        request.validate(DEFAULT_MAX_FRAME)?;
        Ok(request)
    }

    #[test]
    fn shell_open_passes_cwd_and_env_through() {
        let request = prepared::<ShellOpen>(json!({
            "host": "web1", "cwd": "~/src", "env": { "RUST_LOG": "debug" },
        }))
        .unwrap();
        assert_eq!(
            request,
            Request::ShellOpen(ShellOpenRequest {
                host: "web1".into(),
                cwd: Some("~/src".into()),
                env: [("RUST_LOG".to_string(), "debug".to_string())].into(),
            })
        );
        let err =
            prepared::<ShellOpen>(json!({ "host": "web1", "env": { "A-B": "1" } })).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(
            err.message.contains("`env` name \"A-B\""),
            "{}",
            err.message
        );
        let err = prepared::<ShellOpen>(json!({ "host": "web1", "env": { "A": 1 } })).unwrap_err();
        assert!(err.message.contains("`env.A`"), "{}", err.message);
    }

    #[test]
    fn shell_exec_takes_exec_defaults_and_numbers_from_strings() {
        let request = prepared::<ShellExec>(json!({
            "shell_id": "s1-1", "command": "make", "timeout_secs": "600",
        }))
        .unwrap();
        assert_eq!(
            request,
            Request::ShellExec(ShellExecRequest {
                shell_id: "s1-1".into(),
                command: "make".into(),
                timeout_secs: Some(600),
                max_output_bytes: Some(ExecRequest::MCP_MAX_OUTPUT),
                sudo: false,
                sudo_user: None,
            })
        );
        let err =
            prepared::<ShellExec>(json!({ "shell_id": "s1-1", "command": "ls", "stdin": "x" }))
                .unwrap_err();
        assert!(err.message.contains("`stdin`"), "{}", err.message);
    }

    #[test]
    fn shell_exec_passes_sudo_through_and_wants_it_for_sudo_user() {
        let request = prepared::<ShellExec>(json!({
            "shell_id": "s1-1", "command": "id", "sudo": true, "sudo_user": "postgres",
        }))
        .unwrap();
        let Request::ShellExec(req) = request else {
            panic!("{request:?}")
        };
        assert!(req.sudo);
        assert_eq!(req.sudo_user.as_deref(), Some("postgres"));
        let err = prepared::<ShellExec>(json!({
            "shell_id": "s1-1", "command": "id", "sudo_user": "postgres",
        }))
        .unwrap_err();
        assert!(err.message.contains("`sudo: true`"), "{}", err.message);
    }

    #[test]
    fn a_shell_exec_result_is_execs_with_the_cwd() {
        let done = ShellExecOutput {
            output: ExecOutput {
                job: None,
                exit_code: Some(0),
                signal: None,
                stdout: b"hi\n".to_vec(),
                stderr: Vec::new(),
                stdout_gap: None,
                stderr_gap: None,
                stdout_bytes: 3,
                stderr_bytes: 0,
                truncated: false,
                duration_ms: 4,
            },
            cwd: Some("/srv/my app".into()),
            closed: None,
        };
        let result =
            ShellExec::answer(Shown::default(), Response::ShellExec(Box::new(done))).unwrap();
        let value = serde_json::to_value(&result).unwrap();
        assert_eq!(value["cwd"], "/srv/my app");
        assert_eq!(value["exit_code"], 0);
        assert!(value.get("closed").is_none(), "{value}");
        assert_eq!(
            text::render(&result, ShellExec::BLOCKS).unwrap(),
            "exit_code=0 signal=null stderr=\"\" stdout_encoding=utf8 stderr_encoding=utf8 \
             stdout_bytes=3 stderr_bytes=0 truncated=false duration_ms=4 cwd=\"/srv/my app\"\n\
             --- stdout ---\nhi\n"
        );
    }

    #[test]
    fn shell_close_answers_with_the_id() {
        let result = ShellClose::answer("s1-1".into(), Response::Ok).unwrap();
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({ "shell_id": "s1-1" })
        );
        assert!(ShellClose::answer("s1-1".into(), Response::Ok).is_some());
        let opened = ShellOpened {
            shell_id: "s1-1".into(),
            cwd: "/home/me".into(),
        };
        assert!(ShellClose::answer("s1-1".into(), Response::ShellOpened(opened)).is_none());
    }
}
