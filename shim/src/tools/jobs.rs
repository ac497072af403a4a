//! The job tools: `job_output` reads a job's output by offset (waiting
//! for more if asked), `job_signal` stops it, `jobs` lists them. A job is
//! a command `exec` left running (`background`, or `on_timeout:
//! "background"`); it belongs to the daemon, so any shim may read it.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    DEFAULT_MAX_FRAME, Error, ExecRequest, JobInfo, JobOutputRequest, JobSignalRequest, JobState,
    MAX_JOB_WAIT_SECS, Request, Response, max_output_per_stream,
};

use super::arguments::Int;
use super::{Effect, Tool};
use crate::encoding::{Encoding, encode};

/// The most output per stream one page can carry: both streams travel in
/// one frame.
const MAX_PAGE: u64 = max_output_per_stream(DEFAULT_MAX_FRAME);

/// The `job_output` tool.
pub struct JobOutput;

/// The `job_output` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobOutputArgs {
    pub job_id: String,
    /// From a previous `next_stdout_offset`.
    pub stdout_offset: Option<Int<0, { u64::MAX }>>,
    pub stderr_offset: Option<Int<0, { u64::MAX }>>,
    /// Wait this long for new output or the end.
    pub wait_secs: Option<Int<0, MAX_JOB_WAIT_SECS>>,
    /// Per stream.
    #[schemars(extend("default" = ExecRequest::MCP_MAX_OUTPUT))]
    pub max_bytes: Option<Int<1, MAX_PAGE>>,
    /// Keep ANSI escapes.
    #[serde(default)]
    pub raw: bool,
}

/// The `job_output` tool's `structuredContent`: the daemon's page with
/// each stream as text when it is UTF-8, else as base64, as `exec` gives
/// them.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JobOutputResult {
    pub job_id: String,
    pub state: JobState,
    pub exit_code: Option<u32>,
    pub signal: Option<String>,
    pub stdout: String,
    pub stderr: String,
    pub stdout_encoding: Encoding,
    pub stderr_encoding: Encoding,
    pub stdout_offset: u64,
    pub stderr_offset: u64,
    pub next_stdout_offset: u64,
    pub next_stderr_offset: u64,
    pub truncated: bool,
}

impl Tool for JobOutput {
    const NAME: &'static str = "job_output";
    const DESCRIPTION: &'static str = "Read a job's output from offsets (0 at first, then the \
        next_* offsets), waiting up to wait_secs for more, until state is not running.";
    const EFFECT: Effect = Effect::READS;
    const BLOCKS: &'static [&'static str] = &["stdout", "stderr"];
    type Args = JobOutputArgs;
    type Output = JobOutputResult;
    type Asked = Asked;

    fn request(args: JobOutputArgs) -> Result<(Request, Asked), Error> {
        let request = JobOutputRequest {
            as_exec: None,
            job_id: args.job_id,
            stdout_offset: args.stdout_offset.map(|Int(offset)| offset),
            stderr_offset: args.stderr_offset.map(|Int(offset)| offset),
            wait_secs: args.wait_secs.map(|Int(secs)| secs),
            max_bytes: Some(
                args.max_bytes
                    .map_or(ExecRequest::MCP_MAX_OUTPUT, |Int(bytes)| bytes),
            ),
        };
        let asked = Asked {
            raw: args.raw,
            stdout_from: request.stdout_offset.unwrap_or(0),
            stderr_from: request.stderr_offset.unwrap_or(0),
        };
        Ok((Request::JobOutput(request), asked))
    }

    fn answer(asked: Asked, response: Response) -> Option<JobOutputResult> {
        match response {
            Response::JobOutput(page) => Some(page_result(page, asked)),
            _ => None,
        }
    }
}

/// What a `job_output` call asked for, to show its page.
#[derive(Debug, Clone, Copy, Default)]
pub struct Asked {
    /// Keep terminal escapes.
    pub raw: bool,
    /// The offsets asked for.
    pub stdout_from: u64,
    pub stderr_from: u64,
}

/// The structured page, from the daemon's bytes.
///
/// While more may follow (the job runs, or the page was cut), a page may
/// end inside a character; that partial character is left for the next
/// page, its next offset moved back to it, rather than turning the page
/// into base64. Once the job has ended and nothing was cut, the last page
/// is shown whole, as base64 if it must be.
fn page_result(page: sshmcp_proto::JobOutput, asked: Asked) -> JobOutputResult {
    let more = page.state == JobState::Running || page.truncated;
    let (mut stdout, stdout_encoding, stdout_left) = encode_page(page.stdout, more, asked.raw);
    let (mut stderr, stderr_encoding, stderr_left) = encode_page(page.stderr, more, asked.raw);
    // Text that starts past the asked offset says what the spool dropped.
    for (text, encoding, from, at, stream) in [
        (
            &mut stdout,
            stdout_encoding,
            asked.stdout_from,
            page.stdout_offset,
            "stdout",
        ),
        (
            &mut stderr,
            stderr_encoding,
            asked.stderr_from,
            page.stderr_offset,
            "stderr",
        ),
    ] {
        if at > from && encoding == Encoding::Utf8 {
            text.insert_str(
                0,
                &format!(
                    "[... {} bytes of {stream} before offset {at} were dropped: the job's \
                     spool keeps its newest [jobs] spool_bytes ...]\n",
                    at - from
                ),
            );
        }
    }
    JobOutputResult {
        job_id: page.job_id,
        state: page.state,
        exit_code: page.exit_code,
        signal: page.signal,
        stdout,
        stderr,
        stdout_encoding,
        stderr_encoding,
        stdout_offset: page.stdout_offset,
        stderr_offset: page.stderr_offset,
        next_stdout_offset: page.next_stdout_offset.saturating_sub(stdout_left),
        next_stderr_offset: page.next_stderr_offset.saturating_sub(stderr_left),
        truncated: page.truncated,
    }
}

/// `bytes` encoded as [`encode`] does, with how many bytes at its end it
/// left out (a character split by the page's end, when `cut`); text is
/// cleaned of terminal escapes unless `raw`.
fn encode_page(bytes: Vec<u8>, cut: bool, raw: bool) -> (String, Encoding, u64) {
    let len = bytes.len();
    let (text, encoding) = encode(bytes, cut);
    match encoding {
        Encoding::Utf8 => {
            let left = (len - text.len()) as u64;
            let text = if raw {
                text
            } else {
                crate::terminal::screen_text(&text)
            };
            (text, encoding, left)
        }
        Encoding::Base64 => (text, encoding, 0),
    }
}

/// The `job_signal` tool.
pub struct JobSignal;

/// The signals a job may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum Signal {
    #[serde(rename = "INT")]
    Int,
    #[serde(rename = "TERM")]
    Term,
    #[serde(rename = "KILL")]
    Kill,
    #[serde(rename = "HUP")]
    Hup,
}

impl Signal {
    const ALL: [Signal; 4] = [Signal::Int, Signal::Term, Signal::Kill, Signal::Hup];

    /// Its name, as the daemon takes it.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "INT",
            Signal::Term => "TERM",
            Signal::Kill => "KILL",
            Signal::Hup => "HUP",
        }
    }
}

/// A signal by name, as `kill` takes them: `TERM`, `term`, `SIGTERM`.
impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl de::Visitor<'_> for Name {
            type Value = Signal;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of INT, TERM, KILL, HUP")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Signal, E> {
                let upper = name.trim().to_ascii_uppercase();
                let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
                Signal::ALL
                    .into_iter()
                    .find(|signal| signal.name() == bare)
                    .ok_or_else(|| {
                        E::custom(format_args!(
                            "expected one of INT, TERM, KILL, HUP, got {name:?}"
                        ))
                    })
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// The `job_signal` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSignalArgs {
    pub job_id: String,
    pub signal: Signal,
}

/// The `job_signal` tool's `structuredContent`: the job's state after the
/// signal.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JobSignalResult {
    pub job_id: String,
    pub state: JobState,
}

impl Tool for JobSignal {
    const NAME: &'static str = "job_signal";
    const DESCRIPTION: &'static str = "Send a signal to a job's processes; TERM asks it to \
        stop, KILL forces it.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    type Args = JobSignalArgs;
    type Output = JobSignalResult;
    /// The job, for the result.
    type Asked = String;

    fn request(args: JobSignalArgs) -> Result<(Request, String), Error> {
        let request = JobSignalRequest {
            job_id: args.job_id.clone(),
            signal: args.signal.name().to_string(),
        };
        Ok((Request::JobSignal(request), args.job_id))
    }

    fn answer(job_id: String, response: Response) -> Option<JobSignalResult> {
        match response {
            Response::JobState(state) => Some(JobSignalResult { job_id, state }),
            _ => None,
        }
    }
}

/// The `jobs` tool.
pub struct Jobs;

/// The `jobs` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobsArgs {
    pub host: Option<String>,
}

/// The `jobs` tool's `structuredContent`: the daemon's jobs, oldest
/// first.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct JobsResult {
    pub jobs: Vec<JobInfo>,
}

impl Tool for Jobs {
    const NAME: &'static str = "jobs";
    const DESCRIPTION: &'static str = "The daemon's jobs (every host's, or one host's), \
        oldest first; `started` is Unix seconds.";
    const EFFECT: Effect = Effect {
        open_world: false,
        ..Effect::READS
    };
    type Args = JobsArgs;
    type Output = JobsResult;
    type Asked = ();

    fn request(args: JobsArgs) -> Result<(Request, ()), Error> {
        Ok((Request::Jobs { host: args.host }, ()))
    }

    fn answer((): (), response: Response) -> Option<JobsResult> {
        match response {
            Response::Jobs(jobs) => Some(JobsResult { jobs }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde_json::{Value, json};
    use sshmcp_proto::ErrorKind;

    use super::*;
    use crate::tools::{arguments, text};

    fn prepared<T: Tool>(args: Value) -> Result<Request, Error> {
        let args = arguments::parse::<T::Args>(T::NAME, args)?;
        let (request, _) = T::request(args)?;
        request.validate(DEFAULT_MAX_FRAME)?;
        Ok(request)
    }

    fn page(state: JobState, stdout: &[u8], next_stdout_offset: u64) -> sshmcp_proto::JobOutput {
        sshmcp_proto::JobOutput {
            exec: None,
            result: None,
            job_id: "j1".into(),
            state,
            exit_code: (state == JobState::Exited).then_some(0),
            signal: None,
            stdout: stdout.to_vec(),
            stderr: Vec::new(),
            stdout_offset: next_stdout_offset - stdout.len() as u64,
            stderr_offset: 0,
            next_stdout_offset,
            next_stderr_offset: 0,
            truncated: false,
        }
    }

    #[test]
    fn job_output_arguments_pass_through_with_numbers_from_strings() {
        let request = prepared::<JobOutput>(json!({
            "job_id": "j-1", "stdout_offset": "120", "stderr_offset": 7,
            "wait_secs": "30", "max_bytes": 4096,
        }))
        .unwrap();
        assert_eq!(
            request,
            Request::JobOutput(JobOutputRequest {
                as_exec: None,
                job_id: "j-1".into(),
                stdout_offset: Some(120),
                stderr_offset: Some(7),
                wait_secs: Some(30),
                max_bytes: Some(4096),
            })
        );
        let bare = prepared::<JobOutput>(json!({ "job_id": "j-1" })).unwrap();
        assert_eq!(
            bare,
            Request::JobOutput(JobOutputRequest {
                job_id: "j-1".into(),
                max_bytes: Some(ExecRequest::MCP_MAX_OUTPUT),
                ..Default::default()
            })
        );
    }

    #[test]
    fn job_output_refuses_a_long_wait_a_zero_page_and_a_bad_id_naming_them() {
        let err = prepared::<JobOutput>(json!({ "job_id": "j", "wait_secs": 61 })).unwrap_err();
        assert_eq!(
            err.message,
            "job_output: `wait_secs`: expected an integer from 0 to 60, got 61"
        );
        let err = prepared::<JobOutput>(json!({ "job_id": "j", "max_bytes": 0 })).unwrap_err();
        assert!(err.message.contains("`max_bytes`"), "{}", err.message);
        let err = prepared::<JobOutput>(json!({ "job_id": "../x" })).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("`job_id`"), "{}", err.message);
        let err = prepared::<JobOutput>(json!({ "stdout_offset": 0 })).unwrap_err();
        assert!(err.message.contains("`job_id`"), "{}", err.message);
    }

    #[test]
    fn job_signal_takes_signal_names_as_kill_does() {
        for name in ["TERM", "term", "SIGTERM", " sigterm "] {
            let request = prepared::<JobSignal>(json!({ "job_id": "j1", "signal": name })).unwrap();
            assert_eq!(
                request,
                Request::JobSignal(JobSignalRequest {
                    job_id: "j1".into(),
                    signal: "TERM".into(),
                }),
                "{name}"
            );
        }
        let err = prepared::<JobSignal>(json!({ "job_id": "j1", "signal": "STOP" })).unwrap_err();
        assert_eq!(
            err.message,
            "job_signal: `signal`: expected one of INT, TERM, KILL, HUP, got \"STOP\""
        );
    }

    #[test]
    fn jobs_takes_an_optional_host() {
        assert_eq!(
            prepared::<Jobs>(json!({})).unwrap(),
            Request::Jobs { host: None }
        );
        assert_eq!(
            prepared::<Jobs>(json!({ "host": "web1" })).unwrap(),
            Request::Jobs {
                host: Some("web1".into())
            }
        );
        let err = prepared::<Jobs>(json!({ "host": "web1", "state": "running" })).unwrap_err();
        assert!(err.message.contains("`state`"), "{}", err.message);
    }

    #[test]
    fn a_page_has_every_field_of_the_contract() {
        let result = page_result(page(JobState::Exited, b"done\n", 5), Asked::default());
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({
                "job_id": "j1", "state": "exited", "exit_code": 0, "signal": null,
                "stdout": "done\n", "stderr": "",
                "stdout_encoding": "utf8", "stderr_encoding": "utf8",
                "stdout_offset": 0, "stderr_offset": 0,
                "next_stdout_offset": 5, "next_stderr_offset": 0, "truncated": false,
            })
        );
    }

    #[test]
    fn a_page_from_past_the_asked_offset_says_what_the_spool_dropped() {
        let result = page_result(page(JobState::Running, b"tick 2\n", 14), Asked::default());
        assert!(
            result.stdout.starts_with(
                "[... 7 bytes of stdout before offset 7 were dropped: the job's spool keeps"
            ),
            "{}",
            result.stdout
        );
        assert!(
            result.stdout.ends_with("...]\ntick 2\n"),
            "{}",
            result.stdout
        );
    }

    #[test]
    fn a_pages_text_has_every_field_then_the_output() {
        let mut running = page(JobState::Running, b"tick 2\n", 14);
        running.stderr = b"warn\n".to_vec();
        running.next_stderr_offset = 5;
        let asked = Asked {
            stdout_from: 7,
            ..Asked::default()
        };
        let result = page_result(running, asked);
        assert_eq!(
            text::render(&result, JobOutput::BLOCKS).unwrap(),
            "job_id=j1 state=running exit_code=null signal=null stdout_encoding=utf8 \
             stderr_encoding=utf8 stdout_offset=7 stderr_offset=0 next_stdout_offset=14 \
             next_stderr_offset=5 truncated=false\n\
             --- stdout ---\ntick 2\n\
             --- stderr ---\nwarn\n"
        );
    }

    #[test]
    fn a_character_split_by_a_running_pages_end_is_left_for_the_next_page() {
        let mut bytes = "ab✓".as_bytes().to_vec();
        bytes.pop();
        let result = page_result(page(JobState::Running, &bytes, 4), Asked::default());
        assert_eq!(result.stdout, "ab");
        assert_eq!(result.stdout_encoding, Encoding::Utf8);
        assert_eq!(result.next_stdout_offset, 2, "the split bytes come again");
    }

    #[test]
    fn the_last_page_of_an_ended_job_is_shown_whole() {
        let mut bytes = "ab✓".as_bytes().to_vec();
        bytes.pop();
        let result = page_result(page(JobState::Exited, &bytes, 4), Asked::default());
        assert_eq!(result.stdout_encoding, Encoding::Base64);
        assert_eq!(STANDARD.decode(&result.stdout).unwrap(), bytes);
        assert_eq!(result.next_stdout_offset, 4);
        let binary = page_result(page(JobState::Running, &[0xff, 0x00], 2), Asked::default());
        assert_eq!(binary.stdout, "/wA=");
        assert_eq!(binary.next_stdout_offset, 2);
    }

    #[test]
    fn a_signal_answers_with_the_jobs_state() {
        let result = JobSignal::answer("j1".into(), Response::JobState(JobState::Killed)).unwrap();
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            json!({ "job_id": "j1", "state": "killed" })
        );
        assert_eq!(
            text::render(&result, JobSignal::BLOCKS).unwrap(),
            "job_id=j1 state=killed\n"
        );
        assert!(JobSignal::answer("j1".into(), Response::Ok).is_none());
    }

    fn job(id: &str, state: JobState, command: &str, exit_code: Option<u32>) -> JobInfo {
        JobInfo {
            detached: false,
            job_id: id.into(),
            host: "web1".into(),
            kind: sshmcp_proto::JobKind::Command,
            command: command.into(),
            state,
            started: 1_700_000_000,
            runtime_ms: 2_500,
            bytes: 42,
            exit_code,
        }
    }

    #[test]
    fn jobs_are_a_table_with_one_line_per_job() {
        let result = Jobs::answer(
            (),
            Response::Jobs(vec![
                job("j1", JobState::Exited, "make -j2", Some(0)),
                job("j2", JobState::Running, "sleep 100", None),
            ]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&result).unwrap()["jobs"][1],
            json!({
                "job_id": "j2", "host": "web1", "kind": "command", "command": "sleep 100",
                "state": "running",
                "started": 1_700_000_000, "runtime_ms": 2500, "bytes": 42, "exit_code": null,
                "detached": false,
            })
        );
        assert_eq!(
            text::render(&result, Jobs::BLOCKS).unwrap(),
            "jobs (2): job_id host kind command state started runtime_ms bytes exit_code \
             detached\n\
             j1 web1 command \"make -j2\" exited 1700000000 2500 42 0 false\n\
             j2 web1 command \"sleep 100\" running 1700000000 2500 42 - false\n"
        );
        let none = Jobs::answer((), Response::Jobs(vec![])).unwrap();
        assert_eq!(text::render(&none, Jobs::BLOCKS).unwrap(), "jobs=[]\n");
    }
}
