//! The `exec` operation's request and result.

use serde::{Deserialize, Serialize};

/// Run `command` on `host` through the remote user's shell, as `ssh host
/// command` would.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Command line, interpreted by the remote user's shell; not empty, at
    /// most [`MAX_COMMAND_BYTES`](crate::MAX_COMMAND_BYTES), no NUL byte.
    pub command: String,
    /// Bytes fed to the command's standard input, which is then closed.
    #[serde(with = "serde_bytes")]
    pub stdin: Option<Vec<u8>>,
    /// Wall-clock limit in seconds, 1 to [`MAX_TIMEOUT_SECS`](crate::MAX_TIMEOUT_SECS);
    /// on expiry the remote process group gets TERM, then KILL. Default
    /// [`DEFAULT_TIMEOUT_SECS`](Self::DEFAULT_TIMEOUT_SECS) (60).
    pub timeout_secs: Option<u64>,
    /// Bytes kept per stream: when a stream writes more, its first half
    /// and its last half are kept and the middle is counted and dropped
    /// (the output's [`Gap`] says where). At most
    /// [`max_output_per_stream`](crate::max_output_per_stream) of the
    /// daemon's `max_frame`. Default [`DEFAULT_MAX_OUTPUT`](Self::DEFAULT_MAX_OUTPUT)
    /// (1 MiB); MCP clients get [`MCP_MAX_OUTPUT`](Self::MCP_MAX_OUTPUT).
    pub max_output_bytes: Option<u64>,
    /// Serve this command's result from the daemon's cache for up to this
    /// many seconds (1 to [`MAX_CACHE_SECS`](crate::MAX_CACHE_SECS)): only
    /// for commands that change nothing, such as `uname -a`. Without it the
    /// command always runs, and counts as a change to the host.
    #[serde(default)]
    pub cache_secs: Option<u64>,
    /// Start the command as a job and answer at once with its `job_id`.
    #[serde(default)]
    pub background: bool,
    /// What to do when the call reaches `timeout_secs`: kill the command
    /// (default) or keep it running as a job.
    #[serde(default)]
    pub on_timeout: crate::OnTimeout,
    /// Start the command as a detached job (implies `background`): it runs
    /// under `setsid` on the host with its output spooled there, so it
    /// outlives a dropped connection and a daemon restart.
    #[serde(default)]
    pub detach: bool,
    /// Run the command through `sudo` on the host, as root or as
    /// `sudo_user`. The daemon answers sudo's password prompt from the
    /// host's `[sudo.hosts]` password command, if one is configured; a
    /// sudo'd command is never served from the cache.
    #[serde(default)]
    pub sudo: bool,
    /// Whom `sudo` runs the command as (default root): a plain user name,
    /// at most [`MAX_USER_BYTES`](crate::MAX_USER_BYTES). Needs `sudo`.
    #[serde(default)]
    pub sudo_user: Option<String>,
    /// A job this call becomes (`on_timeout: "background"`) is stopped as a
    /// timeout stops a command (TERM, then KILL) once it has run this many
    /// seconds in all, 1 to [`MAX_TIMEOUT_SECS`](crate::MAX_TIMEOUT_SECS);
    /// without it the job runs until it ends. The daemon keeps this
    /// deadline, so it holds when the caller is gone.
    #[serde(default)]
    pub stop_after_secs: Option<u64>,
}

impl ExecRequest {
    /// Default `timeout_secs`.
    pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
    /// Default `max_output_bytes`.
    pub const DEFAULT_MAX_OUTPUT: u64 = 1024 * 1024;
    /// The shim's default `max_output_bytes`: what a model reads well in
    /// one result (MCP hosts warn at about 10k tokens of a tool result).
    pub const MCP_MAX_OUTPUT: u64 = 16 * 1024;
}

/// Where a stream's kept bytes skip over output that was left out: they
/// are the stream's first `at` bytes, then its last ones; `bytes` were
/// dropped in between (stream offsets `at` to `at + bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Kept bytes before the gap (also the stream offset where it starts).
    pub at: u64,
    /// Bytes left out.
    pub bytes: u64,
}

/// Which output stream a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What a finished command left behind. Output is raw bytes: nothing is
/// lost to UTF-8 decoding on the way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecOutput {
    /// Exit status, when the command exited normally.
    pub exit_code: Option<u32>,
    /// Signal name (`TERM`, `KILL`, ...) when the command was killed by one.
    pub signal: Option<String>,
    /// Standard output: whole, or its head and tail within
    /// `max_output_bytes` when `stdout_gap` is set.
    #[serde(with = "serde_bytes")]
    pub stdout: Vec<u8>,
    /// Standard error, kept as `stdout` is.
    #[serde(with = "serde_bytes")]
    pub stderr: Vec<u8>,
    /// Where `stdout` skips output that was left out, if it does.
    pub stdout_gap: Option<Gap>,
    /// Where `stderr` skips output that was left out, if it does.
    pub stderr_gap: Option<Gap>,
    /// Total bytes the command wrote to standard output.
    pub stdout_bytes: u64,
    /// Total bytes the command wrote to standard error.
    pub stderr_bytes: u64,
    /// Some output was dropped because it exceeded `max_output_bytes`
    /// (or, for a job's first answer, because the spool had dropped it).
    pub truncated: bool,
    /// Time from the request's arrival to the command's end (or to the
    /// answer, for a command that became a job).
    pub duration_ms: u64,
    /// Set when the command runs on as a job: the call returned first.
    pub job: Option<crate::JobStarted>,
}
