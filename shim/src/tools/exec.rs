//! The `exec` tool: run a command on a host, as `ssh host 'command'` would.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    DEFAULT_MAX_FRAME, Error, ExecOutput, ExecRequest, Gap, JobStarted, MAX_CACHE_SECS,
    MAX_TIMEOUT_SECS, OnTimeout, Request, Response, max_output_per_stream,
};

use super::arguments::Int;
use super::{Effect, Tool, fits_one_frame};
use crate::encoding::{Encoding, encode};

/// The most output per stream one reply can carry: both streams travel in
/// one frame.
const MAX_OUTPUT: u64 = max_output_per_stream(DEFAULT_MAX_FRAME);

/// The `exec` tool.
pub struct Exec;

/// The `exec` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecArgs {
    pub host: String,
    pub command: String,
    pub stdin: Option<String>,
    #[schemars(extend("default" = ExecRequest::DEFAULT_TIMEOUT_SECS))]
    pub timeout_secs: Option<Int<1, MAX_TIMEOUT_SECS>>,
    /// Per stream: head and tail.
    #[schemars(extend("default" = ExecRequest::MCP_MAX_OUTPUT))]
    pub max_output_bytes: Option<Int<0, MAX_OUTPUT>>,
    /// For read-only commands.
    pub cache_secs: Option<Int<1, MAX_CACHE_SECS>>,
    /// Return a `job_id` at once.
    #[serde(default)]
    pub background: bool,
    pub on_timeout: Option<OnTimeout>,
    /// Job that survives disconnects and restarts.
    #[serde(default)]
    pub detach: bool,
    /// Keep ANSI escapes.
    #[serde(default)]
    pub raw: bool,
    #[serde(default)]
    pub sudo: bool,
    pub sudo_user: Option<String>,
}

/// The `exec` tool's `structuredContent`: the daemon's [`ExecOutput`] with
/// each stream as text when it is UTF-8, else as base64, which JSON
/// strings can carry and raw bytes cannot.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ExecResult {
    pub exit_code: Option<u32>,
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_encoding: Encoding,
    pub stderr_encoding: Encoding,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub truncated: bool,
    pub duration_ms: u64,
    /// Set when the command runs on as a job: the call returned first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::schema::object")]
    pub job: Option<Job>,
}

/// A command that runs on as a job: its id, for `job_output` and
/// `job_signal`, and why the call returned before it ended.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Job {
    pub job_id: String,
    pub reason: String,
}

impl Tool for Exec {
    const NAME: &'static str = "exec";
    const DESCRIPTION: &'static str = "Run a shell command on a host like `ssh host 'cmd'` \
        (no TTY, fresh shell per call). A non-zero exit_code is a result, not an error.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    const CACHEABLE: bool = true;
    const BLOCKS: &'static [&'static str] = &["stdout", "stderr"];
    type Args = ExecArgs;
    type Output = ExecResult;
    type Asked = Shown;

    fn request(args: ExecArgs) -> Result<(Request, Shown), Error> {
        let stdin = args.stdin.map(String::into_bytes);
        let input = args.command.len() + stdin.as_ref().map_or(0, Vec::len);
        fits_one_frame(
            "exec",
            "`command` plus `stdin`",
            input,
            "Copy large input to the host with `transfer` and redirect from it",
        )?;
        let shown = Shown::asked(args.raw, args.max_output_bytes);
        let request = ExecRequest {
            stop_after_secs: None,
            background: args.background,
            detach: args.detach,
            on_timeout: args.on_timeout.unwrap_or_default(),
            cache_secs: args.cache_secs.map(|Int(secs)| secs),
            host: args.host,
            command: args.command,
            stdin,
            timeout_secs: args.timeout_secs.map(|Int(secs)| secs),
            max_output_bytes: Some(shown.max_output),
            sudo: args.sudo,
            sudo_user: args.sudo_user,
        };
        Ok((Request::Exec(request), shown))
    }

    fn answer(shown: Shown, response: Response) -> Option<ExecResult> {
        match response {
            Response::Exec(output) => Some(present(output, shown)),
            _ => None,
        }
    }

    /// How to go on with a command that runs on as a job, unless the
    /// daemon's reason (in the fields' line) already says.
    fn note(result: &ExecResult) -> Option<String> {
        let Job { job_id, reason } = result.job.as_ref()?;
        if reason.contains("job_output") {
            return None;
        }
        Some(format!(
            "job {job_id} runs on ({reason}): read its output with job_output, stop it with \
             job_signal"
        ))
    }
}

/// How the caller asked for output to be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// Bytes as the command wrote them: escape sequences and redraws kept.
    pub raw: bool,
    /// The `max_output_bytes` sent, for the marker's advice.
    pub max_output: u64,
}

impl Shown {
    /// As an MCP call asks: `raw`, and its `max_output_bytes` or the MCP
    /// default, which is also what the daemon is asked to keep.
    pub fn asked(raw: bool, max_output_bytes: Option<Int<0, MAX_OUTPUT>>) -> Shown {
        Shown {
            raw,
            max_output: max_output_bytes.map_or(ExecRequest::MCP_MAX_OUTPUT, |Int(bytes)| bytes),
        }
    }
}

impl Default for Shown {
    fn default() -> Self {
        Shown {
            raw: false,
            max_output: ExecRequest::MCP_MAX_OUTPUT,
        }
    }
}

/// The structured result, from the daemon's bytes.
pub(crate) fn present(output: ExecOutput, shown: Shown) -> ExecResult {
    // A job that runs on may be mid-character at the end of what it wrote.
    let running = output.job.as_ref().map(|job| job.job_id.as_str());
    let (stdout, stdout_encoding) =
        stream_text(output.stdout, output.stdout_gap, "stdout", running, shown);
    let (stderr, stderr_encoding) =
        stream_text(output.stderr, output.stderr_gap, "stderr", running, shown);
    ExecResult {
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
        job: output
            .job
            .map(|JobStarted { job_id, reason }| Job { job_id, reason }),
    }
}

/// One stream as text a model reads: cleaned of terminal escapes (unless
/// raw), and with a marker where output was left out that says how much
/// and how to get it. Binary output is base64 of the kept bytes (head then
/// tail); `truncated` and the byte counts say that some was left out.
pub(crate) fn stream_text(
    bytes: Vec<u8>,
    gap: Option<Gap>,
    stream: &str,
    job: Option<&str>,
    shown: Shown,
) -> (String, Encoding) {
    let screen = |text: String| {
        if shown.raw {
            text
        } else {
            crate::terminal::screen_text(&text)
        }
    };
    let Some(gap) = gap else {
        let (text, encoding) = encode(bytes, job.is_some());
        return match encoding {
            Encoding::Utf8 => (screen(text), encoding),
            Encoding::Base64 => (text, encoding),
        };
    };
    let at = usize::try_from(gap.at)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let head = &bytes[..at];
    // The cut may have split a character: its continuation bytes (at most
    // three) open the tail.
    let mut tail = &bytes[at..];
    for _ in 0..3 {
        match tail.split_first() {
            Some((byte, rest)) if (0x80..0xc0).contains(byte) => tail = rest,
            _ => break,
        }
    }
    let (head_text, head_encoding) = encode(head.to_vec(), true);
    let (tail_text, tail_encoding) = encode(tail.to_vec(), job.is_some());
    if head_encoding == Encoding::Base64 || tail_encoding == Encoding::Base64 {
        let (text, _) = encode(bytes, false);
        return (text, Encoding::Base64);
    }
    let mut text = screen(head_text);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&marker(stream, gap, job, shown.max_output));
    text.push_str(&screen(tail_text));
    (text, Encoding::Utf8)
}

/// The line that stands where output was left out.
fn marker(stream: &str, Gap { at, bytes }: Gap, job: Option<&str>, max_output: u64) -> String {
    let how = match job {
        Some(job_id) => format!("job_output job_id={job_id} {stream}_offset={at}"),
        None if max_output < MAX_OUTPUT => format!(
            "rerun with a larger max_output_bytes (up to {MAX_OUTPUT}), or with background=true \
             and page job_output"
        ),
        None => "rerun with background=true and page job_output, or redirect to a file and \
                 read_file it"
            .to_string(),
    };
    format!(
        "[... {bytes} bytes of {stream} left out (offsets {at}-{}); to read them: {how} ...]\n",
        at + bytes
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::text;

    fn args(json: serde_json::Value) -> Result<Request, Error> {
        let args = crate::tools::arguments::parse::<ExecArgs>("exec", json)?;
        Ok(Exec::request(args)?.0)
    }

    fn output(stdout: &[u8], stdout_bytes: u64) -> ExecOutput {
        ExecOutput {
            job: None,
            exit_code: Some(0),
            signal: None,
            stdout: stdout.to_vec(),
            stderr: Vec::new(),
            stdout_gap: None,
            stderr_gap: None,
            stdout_bytes,
            stderr_bytes: 0,
            truncated: (stdout.len() as u64) < stdout_bytes,
            duration_ms: 12,
        }
    }

    #[test]
    fn arguments_pass_through_with_stdin_as_bytes_and_numbers_from_strings() {
        let request = args(serde_json::json!({
            "host": "web1", "command": "cat", "stdin": "héllo",
            "timeout_secs": "5", "max_output_bytes": 10,
        }))
        .unwrap();
        assert_eq!(
            request,
            Request::Exec(ExecRequest {
                stop_after_secs: None,
                detach: false,
                background: false,
                on_timeout: Default::default(),
                cache_secs: None,
                host: "web1".into(),
                command: "cat".into(),
                stdin: Some("héllo".as_bytes().to_vec()),
                timeout_secs: Some(5),
                max_output_bytes: Some(10),
                sudo: false,
                sudo_user: None,
            })
        );
    }

    fn present_default(output: ExecOutput) -> ExecResult {
        present(output, Shown::default())
    }

    #[test]
    fn the_default_output_budget_is_the_mcp_one() {
        let request = args(serde_json::json!({ "host": "h", "command": "ls" })).unwrap();
        let Request::Exec(request) = request else {
            panic!("{request:?}")
        };
        assert_eq!(request.max_output_bytes, Some(ExecRequest::MCP_MAX_OUTPUT));
    }

    #[test]
    fn left_out_output_is_marked_between_head_and_tail_with_how_to_get_it() {
        let mut cut = output(b"head\n\xe2\x9c", 100);
        cut.stdout.extend_from_slice(b"\x93tail\n");
        cut.stdout_gap = Some(Gap { at: 7, bytes: 87 });
        let result = present_default(cut.clone());
        assert_eq!(
            result.stdout,
            format!(
                "head\n[... 87 bytes of stdout left out (offsets 7-94); to read them: rerun \
                 with a larger max_output_bytes (up to {MAX_OUTPUT}), or with background=true \
                 and page job_output ...]\ntail\n"
            )
        );
        // A job that runs on is read on with job_output from the gap.
        cut.job = Some(JobStarted {
            job_id: "j-1".into(),
            reason: "background".into(),
        });
        let result = present_default(cut);
        assert!(
            result
                .stdout
                .contains("to read them: job_output job_id=j-1 stdout_offset=7 ..."),
            "{}",
            result.stdout
        );
    }

    #[test]
    fn terminal_escapes_are_cleaned_unless_raw() {
        let coloured = output(b"\x1b[32mok\x1b[0m\n 10%\r100%\n", 24);
        assert_eq!(present_default(coloured.clone()).stdout, "ok\n100%\n");
        let raw = Shown {
            raw: true,
            ..Shown::default()
        };
        assert_eq!(
            present(coloured, raw).stdout,
            "\x1b[32mok\x1b[0m\n 10%\r100%\n"
        );
    }

    #[test]
    fn background_and_on_timeout_pass_through() {
        let request = args(serde_json::json!({
            "host": "web1", "command": "make", "background": true,
        }))
        .unwrap();
        assert!(matches!(
            request,
            Request::Exec(ExecRequest {
                background: true,
                on_timeout: OnTimeout::Kill,
                ..
            })
        ));
        let request = args(serde_json::json!({
            "host": "web1", "command": "make", "on_timeout": "background", "timeout_secs": 1,
        }))
        .unwrap();
        assert!(matches!(
            request,
            Request::Exec(ExecRequest {
                background: false,
                on_timeout: OnTimeout::Background,
                timeout_secs: Some(1),
                ..
            })
        ));
        let err = args(serde_json::json!({ "host": "h", "command": "ls", "on_timeout": "wait" }))
            .unwrap_err();
        assert!(
            err.message
                .starts_with("exec: `on_timeout`: unknown variant `wait`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_job_is_never_cached() {
        let prepared = crate::tools::prepare_call::<Exec>(
            serde_json::json!({
                "host": "h", "command": "make", "background": true, "cache_secs": 60,
            })
            .as_object()
            .cloned()
            .unwrap(),
        );
        let err = prepared.err().expect("refused");
        assert!(err.message.contains("`cache_secs`"), "{}", err.message);
    }

    fn job_output(reason: &str) -> ExecOutput {
        ExecOutput {
            job: Some(JobStarted {
                job_id: "j-7".into(),
                reason: reason.into(),
            }),
            exit_code: None,
            truncated: false,
            ..output(b"partial\n", 8)
        }
    }

    #[test]
    fn a_command_that_became_a_job_gives_its_id_and_reason() {
        let result = present_default(job_output("timed out after 1s"));
        let value = serde_json::to_value(&result).unwrap();
        assert_eq!(
            value["job"],
            serde_json::json!({ "job_id": "j-7", "reason": "timed out after 1s" })
        );
        assert_eq!(value["exit_code"], serde_json::Value::Null);
        let done = serde_json::to_value(present_default(output(b"ok\n", 3))).unwrap();
        assert!(done.get("job").is_none(), "{done}");
    }

    #[test]
    fn a_reason_that_says_how_to_read_the_job_needs_no_note() {
        let reason = "started in the background as job j-7; read its output with job_output";
        let rendered =
            crate::tools::answer::<Exec>(Shown::default(), Response::Exec(job_output(reason)))
                .unwrap();
        assert_eq!(
            rendered.text.matches("job_output").count(),
            1,
            "{}",
            rendered.text
        );
        assert_eq!(rendered.structured["job"]["reason"], reason);
    }

    #[test]
    fn the_text_of_a_job_says_it_runs_on_and_how_to_read_it() {
        let rendered = crate::tools::answer::<Exec>(
            Shown::default(),
            Response::Exec(job_output("background")),
        )
        .unwrap();
        assert_eq!(rendered.structured["job"]["job_id"], "j-7");
        assert_eq!(
            rendered.text,
            "exit_code=null signal=null stderr=\"\" stdout_encoding=utf8 stderr_encoding=utf8 \
             stdout_bytes=8 stderr_bytes=0 truncated=false duration_ms=12 \
             job={\"job_id\":\"j-7\",\"reason\":\"background\"}\n\
             job j-7 runs on (background): read its output with job_output, stop it with \
             job_signal\n\
             --- stdout ---\npartial\n"
        );
        let finished =
            crate::tools::answer::<Exec>(Shown::default(), Response::Exec(output(b"ok\n", 3)))
                .unwrap();
        assert!(!finished.text.contains("job"), "{}", finished.text);
    }

    #[test]
    fn a_zero_timeout_is_refused_naming_the_argument_and_range() {
        let err = args(serde_json::json!({ "host": "h", "command": "true", "timeout_secs": 0 }))
            .unwrap_err();
        assert!(
            err.message
                .contains("`timeout_secs`: expected an integer from 1 to 86400"),
            "{}",
            err.message
        );
    }

    #[test]
    fn stdin_too_large_for_one_frame_is_refused_naming_it() {
        let big = "x".repeat(DEFAULT_MAX_FRAME);
        let err =
            args(serde_json::json!({ "host": "h", "command": "cat", "stdin": big })).unwrap_err();
        assert!(err.message.contains("`stdin`"), "{}", err.message);
    }

    #[test]
    fn unknown_arguments_are_refused() {
        let err = args(serde_json::json!({ "host": "web1", "command": "ls", "cwd": "/tmp" }))
            .unwrap_err();
        assert!(err.message.contains("cwd"), "{}", err.message);
    }

    #[test]
    fn binary_output_is_base64_and_says_so() {
        let result = present_default(output(&[0xff, 0x00, 0xfe], 3));
        assert_eq!(result.stdout, "/wD+");
        assert_eq!(result.stdout_encoding, Encoding::Base64);
        assert_eq!(result.stderr_encoding, Encoding::Utf8);
    }

    #[test]
    fn text_has_every_field_then_the_output() {
        let result = present_default(output(b"hello\n", 1000));
        assert!(result.truncated);
        assert_eq!(
            text::render(&result, Exec::BLOCKS).unwrap(),
            "exit_code=0 signal=null stderr=\"\" stdout_encoding=utf8 stderr_encoding=utf8 \
             stdout_bytes=1000 stderr_bytes=0 truncated=true duration_ms=12\n\
             --- stdout ---\nhello\n"
        );
    }

    #[test]
    fn structured_result_has_every_field_of_the_contract() {
        let result = present_default(output(b"ok\n", 3));
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
