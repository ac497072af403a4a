//! Jobs: commands the daemon runs on after the call that started them has
//! returned, whose output is kept (spooled) to be read by offset.

use serde::{Deserialize, Serialize};

/// Longest `wait_secs` a `JobOutput` request may long-poll.
pub const MAX_JOB_WAIT_SECS: u64 = 60;

/// What `exec` does when a call reaches its `timeout_secs`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// TERM, then KILL, the command's process group (the default).
    #[default]
    Kill,
    /// Keep it running as a job and answer with its `job_id`.
    Background,
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Still running.
    Running,
    /// Exited by itself (see `exit_code`).
    Exited,
    /// Ended by a signal (see `signal`).
    Killed,
    /// The daemon lost track of it (its connection died and it was not
    /// detached, or the host no longer has it).
    Lost,
}

/// A job's handle in an `exec` answer: the call returned, the command
/// runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStarted {
    /// Read it with `JobOutput`, stop it with `JobSignal`.
    pub job_id: String,
    /// Why the call returned before the command ended.
    pub reason: String,
}

/// `job_output`: a page of a job's output, waiting for more if asked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutputRequest {
    /// The job.
    pub job_id: String,
    /// Byte offset in the job's stdout to read from (default 0).
    pub stdout_offset: Option<u64>,
    /// Byte offset in the job's stderr to read from (default 0).
    pub stderr_offset: Option<u64>,
    /// When nothing is new past the offsets and the job runs, wait up to
    /// this many seconds (at most [`MAX_JOB_WAIT_SECS`]) for output or the
    /// end. Default 0: answer at once.
    pub wait_secs: Option<u64>,
    /// Most bytes per stream in this answer.
    pub max_bytes: Option<u64>,
    /// Also answer the job's streams as an `exec` that waited for it would
    /// (`JobOutput::exec`): each whole when it fits in this many bytes,
    /// else its head and its tail around a gap.
    #[serde(default)]
    pub as_exec: Option<u64>,
}

/// A page of a job's output and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobOutput {
    /// The job.
    pub job_id: String,
    /// Where it is in its life.
    pub state: JobState,
    /// Exit status, once it exited.
    pub exit_code: Option<u32>,
    /// The signal that ended it, if one did.
    pub signal: Option<String>,
    /// Stdout from the asked offset (or the oldest kept byte past it).
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    /// Stderr from the asked offset (or the oldest kept byte past it).
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// Offset of `stdout`'s first byte in the whole stream.
    pub stdout_offset: u64,
    /// Offset of `stderr`'s first byte in the whole stream.
    pub stderr_offset: u64,
    /// Where the next page of stdout starts.
    pub next_stdout_offset: u64,
    /// Where the next page of stderr starts.
    pub next_stderr_offset: u64,
    /// Output between the asked offsets and what is returned was dropped
    /// from the spool (over its cap), or more remains past this page.
    pub truncated: bool,
    /// The streams as an `exec` answer, when asked (`as_exec`); its `job`
    /// is `None` and its duration the job's runtime.
    pub exec: Option<Box<crate::ExecOutput>>,
    /// How a `transfer` or `sync` job ended, once it has (`None` for a
    /// command, whose output and exit status say it).
    pub result: Option<Box<JobResult>>,
}

/// How a job that ran an operation rather than a command ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobResult {
    /// What the transfer copied.
    Transfer {
        /// The transfer the job ran.
        request: crate::TransferRequest,
        /// What it copied.
        done: crate::TransferResult,
    },
    /// What the sync changed.
    Sync {
        /// The sync the job ran.
        request: crate::SyncRequest,
        /// What it changed.
        done: crate::SyncResult,
    },
    /// Why it failed (a cancelled one says so).
    Failed(crate::Error),
}

/// `job_signal`: send a signal to a job's process group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSignalRequest {
    /// The job.
    pub job_id: String,
    /// `INT`, `TERM`, `KILL` or `HUP`.
    pub signal: String,
}

/// What a job runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// A command: an `exec` with `background`, `detach`, or one that ran
    /// past its timeout with `on_timeout: "background"`.
    #[default]
    Command,
    /// A `transfer` that ran past its `job_after_secs`.
    Transfer,
    /// A `sync` that ran past its `job_after_secs`.
    Sync,
}

impl JobKind {
    /// The kind in a word, as tools name it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Command => "command",
            JobKind::Transfer => "transfer",
            JobKind::Sync => "sync",
        }
    }
}

/// One job, as `jobs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct JobInfo {
    /// Its id.
    pub job_id: String,
    /// The host alias it runs on.
    pub host: String,
    /// What it runs.
    pub kind: JobKind,
    /// The command line (cut short); for an operation, the operation as
    /// `transfer LOCAL -> host:REMOTE`.
    pub command: String,
    /// Where it is in its life.
    pub state: JobState,
    /// When it started, seconds since the Unix epoch.
    pub started: u64,
    /// How long it has run (or ran), in milliseconds.
    pub runtime_ms: u64,
    /// Bytes it has written to stdout and stderr together.
    pub bytes: u64,
    /// Exit status, once it exited.
    pub exit_code: Option<u32>,
    /// It runs detached on the host (`detach`), spooled there.
    pub detached: bool,
}
