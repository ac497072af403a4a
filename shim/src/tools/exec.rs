//! The `exec` tool: run a command on a host, as `ssh host 'command'` would.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{DEFAULT_MAX_FRAME, Error, ExecOutput, ExecRequest, Request, Response};

use super::{failure, success, unavailable};
use crate::encoding::{Encoding, encode};
use crate::server::SshMcp;

/// The most `command` and `stdin` together may hold. A request must fit in
/// one frame to the daemon, and a frame too large for the daemon closes the
/// shim's shared connection, failing every other call in flight with it; so
/// the shim refuses such a request itself. The margin covers the host name
/// and the frame's own encoding.
const MAX_INPUT_BYTES: usize = DEFAULT_MAX_FRAME - 64 * 1024;

/// The `exec` tool's arguments. Unknown arguments are refused, so a model
/// that guesses at an option (`cwd`, `env`, `sudo`) hears that it does not
/// exist instead of having it silently ignored.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Command line, run by the remote user's shell (as with `ssh host 'command'`).
    pub command: String,
    /// Text fed to the command's standard input, which is then closed (default: empty).
    pub stdin: Option<String>,
    /// Seconds the command may run before it is killed. Default 60.
    #[schemars(range(min = 1), extend("default" = 60))]
    pub timeout_secs: Option<u64>,
    /// Bytes of stdout, and of stderr, to return; the rest is counted and dropped. Default 1 MiB.
    #[schemars(extend("default" = 1048576))]
    pub max_output_bytes: Option<u64>,
}

impl ExecArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    /// Only the checks that need no knowledge of the hosts are made here;
    /// the daemon judges the rest (unknown hosts, its own limits).
    pub fn into_request(self) -> Result<ExecRequest, Error> {
        if self.host.trim().is_empty() {
            return Err(Error::bad_request(
                "`host` is empty: pass a host alias from the `hosts` tool",
            ));
        }
        if self.command.trim().is_empty() {
            return Err(Error::bad_request(
                "`command` is empty: pass the command line to run",
            ));
        }
        let input_bytes = self.command.len() + self.stdin.as_ref().map_or(0, String::len);
        if input_bytes > MAX_INPUT_BYTES {
            return Err(Error::bad_request(format!(
                "`command` and `stdin` hold {input_bytes} bytes together; the limit is \
                 {MAX_INPUT_BYTES}. Send less input per call"
            )));
        }
        if self.timeout_secs == Some(0) {
            return Err(Error::bad_request(
                "`timeout_secs` must be at least 1 (or left out for the default of 60)",
            ));
        }
        Ok(ExecRequest {
            host: self.host,
            command: self.command,
            stdin: self.stdin.map(String::into_bytes),
            timeout_secs: self.timeout_secs,
            max_output_bytes: self.max_output_bytes,
        })
    }
}

/// The `exec` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ExecResult {
    /// Exit status, or null when the command did not exit normally (see `signal`).
    pub exit_code: Option<u32>,
    /// Name of the signal that killed the command (`TERM`, `KILL`, ...), else null.
    pub signal: Option<String>,
    /// Standard output, encoded as `stdout_encoding` says.
    pub stdout: String,
    /// Standard error, encoded as `stderr_encoding` says.
    pub stderr: String,
    /// `utf8`: `stdout` is the text. `base64`: it was not UTF-8; `stdout` is base64 of its bytes.
    pub stdout_encoding: Encoding,
    /// As `stdout_encoding`, for `stderr`.
    pub stderr_encoding: Encoding,
    /// Total bytes the command wrote to stdout, including any dropped.
    pub stdout_bytes: u64,
    /// Total bytes the command wrote to stderr, including any dropped.
    pub stderr_bytes: u64,
    /// Some output was dropped because it exceeded `max_output_bytes`.
    pub truncated: bool,
    /// Wall-clock time of the call, in milliseconds.
    pub duration_ms: u64,
}

#[tool_router(router = exec_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "exec",
        description = "Run a shell command on a remote host over SSH and return its exit status \
            and output. `host` is a host alias from the user's ~/.ssh/config (the `hosts` tool \
            lists them); authentication uses the user's ssh-agent and keys, and host keys are \
            checked against known_hosts. The command runs non-interactively (no TTY) through \
            the remote user's shell, exactly like `ssh host 'command'`: pipes, redirections, \
            `&&` and variables work, and each call starts a fresh shell, so `cd` or exported \
            variables do not carry over to the next call. It is killed if it runs longer than \
            `timeout_secs` (default 60). stdout and stderr come back separately, each up to \
            `max_output_bytes` (default 1 MiB); `truncated` says whether anything was dropped. \
            Output that is not valid UTF-8 is returned as base64 (see `stdout_encoding`). A \
            non-zero exit code is a normal result, not a tool error; tool errors mean the \
            command could not be run or did not finish (unknown host, unreachable, \
            authentication or host key failure, timeout) and say what to do. Connections are pooled, so repeated calls to a host \
            are fast.",
        annotations(
            title = "Run a command over SSH",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<ExecResult>()
    )]
    async fn exec(
        &self,
        Parameters(args): Parameters<ExecArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        match self.forward(Request::Exec(request), &context).await {
            Ok(Ok(Response::Exec(output))) => {
                let (result, text) = present(output);
                success(&result, text)
            }
            Ok(Ok(other)) => failure(&Error::internal(format!(
                "sshmcpd answered an exec request with {other:?}"
            ))),
            Ok(Err(error)) => failure(&error),
            Err(error) => unavailable(&error),
        }
    }
}

/// The structured result and its text rendering, from the daemon's bytes.
fn present(output: ExecOutput) -> (ExecResult, String) {
    let stdout_cut = (output.stdout.len() as u64) < output.stdout_bytes;
    let stderr_cut = (output.stderr.len() as u64) < output.stderr_bytes;
    let (stdout, stdout_encoding) = encode(output.stdout, stdout_cut);
    let (stderr, stderr_encoding) = encode(output.stderr, stderr_cut);
    let result = ExecResult {
        exit_code: output.exit_code,
        signal: output.signal,
        stdout,
        stderr,
        stdout_encoding,
        stderr_encoding,
        stdout_bytes: output.stdout_bytes,
        stderr_bytes: output.stderr_bytes,
        truncated: output.truncated,
        duration_ms: output.duration_ms,
    };
    let mut text = String::new();
    match (&result.exit_code, &result.signal) {
        (Some(code), _) => {
            let _ = write!(text, "exit code {code}");
        }
        (None, Some(signal)) => {
            let _ = write!(text, "killed by signal {signal}");
        }
        (None, None) => text.push_str("no exit status"),
    }
    let _ = writeln!(text, " ({} ms)", result.duration_ms);
    let streams = [
        (
            "stdout",
            &result.stdout,
            result.stdout_encoding,
            result.stdout_bytes,
            stdout_cut,
        ),
        (
            "stderr",
            &result.stderr,
            result.stderr_encoding,
            result.stderr_bytes,
            stderr_cut,
        ),
    ];
    for (name, content, encoding, total, cut) in streams {
        if total == 0 {
            continue;
        }
        let _ = write!(text, "--- {name}");
        if encoding == Encoding::Base64 {
            text.push_str(" (not UTF-8, base64)");
        }
        if cut {
            let _ = write!(text, " (truncated: the command wrote {total} bytes)");
        }
        text.push_str(" ---\n");
        text.push_str(content);
        if !content.ends_with('\n') {
            text.push('\n');
        }
    }
    if result.stdout_bytes == 0 && result.stderr_bytes == 0 {
        text.push_str("(no output)\n");
    }
    (result, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(host: &str, command: &str, timeout_secs: Option<u64>) -> ExecArgs {
        ExecArgs {
            host: host.into(),
            command: command.into(),
            stdin: None,
            timeout_secs,
            max_output_bytes: None,
        }
    }

    fn output(stdout: &[u8], stdout_bytes: u64) -> ExecOutput {
        ExecOutput {
            exit_code: Some(0),
            signal: None,
            stdout: stdout.to_vec(),
            stderr: Vec::new(),
            stdout_bytes,
            stderr_bytes: 0,
            truncated: (stdout.len() as u64) < stdout_bytes,
            duration_ms: 12,
        }
    }

    #[test]
    fn empty_host_is_refused_naming_the_argument() {
        let err = args("  ", "true", None).into_request().unwrap_err();
        assert_eq!(err.kind, sshmcp_proto::ErrorKind::BadRequest);
        assert!(err.message.contains("`host`"), "{}", err.message);
    }

    #[test]
    fn empty_command_is_refused_naming_the_argument() {
        let err = args("web1", "", None).into_request().unwrap_err();
        assert!(err.message.contains("`command`"), "{}", err.message);
    }

    #[test]
    fn zero_timeout_is_refused_naming_the_argument() {
        let err = args("web1", "true", Some(0)).into_request().unwrap_err();
        assert!(err.message.contains("`timeout_secs`"), "{}", err.message);
    }

    #[test]
    fn stdin_too_large_for_one_frame_is_refused() {
        let mut exec = args("web1", "cat", None);
        exec.stdin = Some("x".repeat(DEFAULT_MAX_FRAME));
        let err = exec.into_request().unwrap_err();
        assert!(err.message.contains("`stdin`"), "{}", err.message);
    }

    #[test]
    fn valid_arguments_pass_through_with_stdin_as_bytes() {
        let mut exec = args("web1", "cat", Some(5));
        exec.stdin = Some("héllo".into());
        exec.max_output_bytes = Some(10);
        assert_eq!(
            exec.into_request().unwrap(),
            ExecRequest {
                host: "web1".into(),
                command: "cat".into(),
                stdin: Some("héllo".as_bytes().to_vec()),
                timeout_secs: Some(5),
                max_output_bytes: Some(10),
            }
        );
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let json = serde_json::json!({ "host": "web1", "command": "ls", "cwd": "/tmp" });
        let err = serde_json::from_value::<ExecArgs>(json).unwrap_err();
        assert!(err.to_string().contains("cwd"), "{err}");
    }

    #[test]
    fn binary_output_is_base64_and_says_so() {
        let (result, text) = present(output(&[0xff, 0x00, 0xfe], 3));
        assert_eq!(result.stdout, "/wD+");
        assert_eq!(result.stdout_encoding, Encoding::Base64);
        assert_eq!(result.stderr_encoding, Encoding::Utf8);
        assert!(
            text.contains("--- stdout (not UTF-8, base64) ---\n/wD+\n"),
            "{text}"
        );
    }

    #[test]
    fn text_shows_exit_code_output_and_truncation() {
        let (result, text) = present(output(b"hello\n", 1000));
        assert!(result.truncated);
        assert_eq!(result.stdout_bytes, 1000);
        assert!(text.starts_with("exit code 0 (12 ms)\n"), "{text}");
        assert!(
            text.contains("--- stdout (truncated: the command wrote 1000 bytes) ---\nhello\n"),
            "{text}"
        );
        assert!(!text.contains("stderr"), "{text}");
    }

    #[test]
    fn a_killed_command_reports_its_signal() {
        let mut killed = output(b"", 0);
        killed.exit_code = None;
        killed.signal = Some("KILL".into());
        let (result, text) = present(killed);
        assert_eq!(result.exit_code, None);
        assert!(text.starts_with("killed by signal KILL"), "{text}");
        assert!(text.contains("(no output)"), "{text}");
    }

    #[test]
    fn structured_result_has_every_field_of_the_contract() {
        let (result, _) = present(output(b"ok\n", 3));
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({
                "exit_code": 0, "signal": null, "stdout": "ok\n", "stderr": "",
                "stdout_encoding": "utf8", "stderr_encoding": "utf8",
                "stdout_bytes": 3, "stderr_bytes": 0, "truncated": false,
                "duration_ms": 12,
            })
        );
    }
}
