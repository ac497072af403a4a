//! The wire contract between `sshmcpd`, the `sshmcp` shim and `sshmcpctl`.
//!
//! This crate is the only vocabulary the three binaries share. It holds the
//! frame types, the requests and replies, the help text `sshmcpctl` shows
//! for the requests it sends ([`help!`]), and (behind the `client` feature)
//! an async client for the daemon's socket.
//!
//! Speaking the protocol takes five steps:
//!
//! 1. Connect to the daemon's Unix stream socket (`--socket`, or the first
//!    of [`client_socket_candidates`] that answers). The daemon admits only
//!    its own uid.
//! 2. Frames in both directions are a 4-byte big-endian length followed by a
//!    bincode (2.0, standard config, serde) payload; [`FrameReader`] and
//!    [`FrameWriter`] speak it over any byte stream (both ends use them), on
//!    top of [`encode`] and [`decode`]. A frame may not
//!    exceed the daemon's `max_frame` (default [`DEFAULT_MAX_FRAME`]).
//! 3. Send [`ClientFrame::Hello`] first; the daemon answers
//!    [`DaemonFrame::Welcome`], or [`DaemonFrame::Goodbye`] with an error that
//!    names both versions when [`PROTO_VERSION`]s differ.
//! 4. Send any number of [`ClientFrame::Request`]s, each with an id unique on
//!    this connection. Replies may come out of order: zero or more
//!    [`DaemonFrame::Progress`] / [`DaemonFrame::Output`] events, then exactly
//!    one [`DaemonFrame::Done`] carrying a [`Reply`].
//! 5. [`ClientFrame::Cancel`] abandons a request (a cancelled exec kills its
//!    remote process); its `Done` still arrives, with [`ErrorKind::Cancelled`]
//!    when the work was cut short.
//!
//! Garbage, truncated or oversized frames get a `Goodbye` where one can still
//! be sent, then the daemon closes that one connection.

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

#[cfg(feature = "audit")]
pub mod audit;
mod cache;
#[cfg(feature = "client")]
pub mod client;
mod codec;
mod error;
mod exec;
mod files;
mod framed;
mod jobs;
mod shells;
mod socket;
mod state;
mod validate;

pub use cache::{
    BatchReplies, BatchRequest, CacheScope, CacheStats, Cached, Count, MAX_BATCH_CALLS,
    MAX_BATCH_CONCURRENCY, MAX_CACHE_SECS,
};
pub use codec::{CodecError, MAX_PAYLOAD, decode, encode};
pub use error::{Error, ErrorKind};
pub use exec::{ExecOutput, ExecRequest, Gap, OutputStream};
pub use files::{
    DirListing, Direction, FileContent, FileKind, FileStat, ListDirRequest, MkdirRequest,
    ReadFileRequest, RemoveRequest, RemoveResult, RenameRequest, StatRequest, SyncAction,
    SyncChange, SyncRequest, SyncResult, TransferRequest, TransferResult, WriteFileRequest,
    WriteResult,
};
pub use framed::{FrameError, FrameReader, FrameWriter};
pub use jobs::{
    JobInfo, JobKind, JobOutput, JobOutputRequest, JobResult, JobSignalRequest, JobStarted,
    JobState, MAX_JOB_WAIT_SECS, OnTimeout,
};
pub use shells::{
    MAX_SHELL_ENV, ShellCloseRequest, ShellExecOutput, ShellExecRequest, ShellInfo,
    ShellOpenRequest, ShellOpened, ShellState,
};
pub use socket::{SOCKET_ENV, SYSTEM_SOCKET, client_socket_candidates, daemon_socket_path};
pub use state::{
    AuditStatus, ConnState, HostList, HostState, HostStats, OpStats, Resources, Stats, Status,
    ThreadInfo,
};
pub use validate::{
    MAX_COMMAND_BYTES, MAX_HOST_BYTES, MAX_LIST_ENTRIES, MAX_MODE, MAX_OFFSET, MAX_PATH_BYTES,
    MAX_TIMEOUT_SECS, MAX_USER_BYTES, REPLY_HEADROOM, max_output_per_stream, max_read_per_reply,
};

/// Bumped whenever a frame's layout changes; both ends must agree.
pub const PROTO_VERSION: u32 = 6;

/// Default `[daemon] max_frame`, the upper bound on one frame's payload, and
/// the limit clients assume. More data than fits takes several requests
/// (`read_file`'s `offset`, `write_file`'s `append`) or a transfer.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Who is calling: named in the daemon's log of requests and in a version
/// mismatch's error. Past `[daemon] max_clients` only a `binary` of
/// `sshmcpctl` is let in, and only for admin requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The calling binary (`sshmcp`, `sshmcpctl`, ...).
    pub binary: String,
    /// The calling binary's version.
    pub version: String,
    /// The MCP client's name from its `initialize`, when the caller is the shim.
    pub mcp_client: Option<String>,
    /// The MCP client's version from its `initialize`, when the caller is
    /// the shim (for the audit log).
    pub mcp_client_version: Option<String>,
    /// The caller's `SSH_AUTH_SOCK`, so a daemon started before login (with
    /// no agent of its own) can authenticate through the caller's agent.
    pub ssh_auth_sock: Option<String>,
}

/// First frame from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The client's [`PROTO_VERSION`].
    pub proto_version: u32,
    /// Who is calling.
    pub client: ClientInfo,
}

/// The daemon's answer to a matching [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    /// The daemon's [`PROTO_VERSION`].
    pub proto_version: u32,
    /// The daemon's package version.
    pub daemon_version: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Must be the first frame on a connection.
    Hello(Hello),
    /// Start a request.
    Request {
        /// Chosen by the client; not in use on this connection (a reused id
        /// is answered with [`ErrorKind::BadRequest`]). Every frame about
        /// this request carries it.
        id: u64,
        /// What to do.
        request: Request,
    },
    /// Abandon request `id`. Unknown or finished ids are ignored.
    Cancel {
        /// The request to abandon.
        id: u64,
    },
    /// The answer to the daemon's [`DaemonFrame::Confirm`] for request
    /// `id`. Unknown ids, and answers nobody asked for, are ignored.
    Confirmed {
        /// The request it is about.
        id: u64,
        /// The person allowed it.
        allowed: bool,
        /// Why not, when not (shown in the refusal; at most 300 bytes
        /// are kept).
        note: Option<String>,
    },
}

/// What the daemon asks the person to confirm before a request runs
/// (`confirm` rules in `[policy.hosts]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The host it would run on.
    pub host: String,
    /// The tool (op) asked for.
    pub tool: String,
    /// What it would do: the command line, or the paths.
    pub what: String,
    /// The rule that asks for confirmation.
    pub rule: String,
}

/// Frames the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonFrame {
    /// Answer to a matching `Hello`.
    Welcome(Welcome),
    /// How far request `id` has got. Advisory: throttled, and dropped
    /// rather than wait for a slow reader.
    Progress {
        /// The request it is about.
        id: u64,
        /// How far.
        progress: Progress,
    },
    /// A sample of request `id`'s output while it runs: a running `exec`
    /// sends its latest bytes (at most 1 KiB) at most every 100 ms, for
    /// showing progress. Advisory, like `Progress`: the whole output comes
    /// in `Done`; clients may ignore these.
    Output {
        /// The request it is about.
        id: u64,
        /// Which stream the bytes came from.
        stream: OutputStream,
        /// The bytes, raw.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The final reply to request `id`; nothing about `id` follows it.
    Done {
        /// The request it answers.
        id: u64,
        /// Its outcome.
        reply: Reply,
    },
    /// The daemon is closing this connection, and why: a malformed or
    /// oversized frame, no `Hello` first, a version mismatch, a peer of
    /// another uid, too many clients.
    Goodbye(Error),
    /// Request `id` needs the person's confirmation before it runs: answer
    /// with [`ClientFrame::Confirmed`]. A client that cannot ask answers
    /// `allowed: false`; one that does not answer in time is taken to
    /// have declined.
    Confirm {
        /// The request it is about.
        id: u64,
        /// What to show the person.
        confirmation: Confirmation,
    },
}

/// Progress of a long request (`transfer`, `sync`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units done so far (bytes, for transfer and sync).
    pub done: u64,
    /// Units expected in all, when known.
    pub total: Option<u64>,
    /// A short human-readable note (`3 of 10 files, 512 of 4096 bytes`).
    pub message: Option<String>,
}

/// The outcome of a request.
pub type Reply = Result<Response, Error>;

/// The help text of the requests `sshmcpctl` sends, written once: each is
/// the doc of its [`Request`] variant (`#[doc = help!(status)]`) and the
/// `--help` of the `sshmcpctl` subcommand that sends it
/// (`about = sshmcp_proto::help!(status)`).
///
/// `help!(status)` expands to a string literal, not a constant, because a
/// doc attribute takes only a literal or a macro that makes one (as do
/// derives that copy docs, such as schemars'). The first paragraph is the
/// summary; later ones, after a blank line, are detail for `--help`.
///
/// The names are `status`, `stats`, `hosts`, `warm`, `drain`, `reload`,
/// `cache`, `cache_clear`, `jobs`, `shells`, and `host` for their host argument.
#[macro_export]
macro_rules! help {
    (status) => {
        "Daemon version, pid, uptime, socket and health."
    };
    (stats) => {
        "Per-host pool counters, per-op latency percentiles and the daemon's resource use."
    };
    (hosts) => {
        "Configured hosts with their pool state."
    };
    (warm) => {
        "Open a connection to a host now, so the next call finds it warm."
    };
    (drain) => {
        "Close a host's idle connections; busy ones close when their work ends."
    };
    (reload) => {
        "Re-read the config and the ssh config, as SIGHUP does.\n\n\
         Unchanged hosts stay warm, removed ones close, new ones are added. A bad new config \
         is refused and the old one stays in force."
    };
    (cache) => {
        "The response cache: entries, bytes of its budget, hits, misses, hit rate, evictions and \
         invalidations, per host and per op."
    };
    (cache_clear) => {
        "Drop cached answers: every host's, or one host's.\n\n\
         The next read of what was dropped goes to the host."
    };
    (jobs) => {
        "Jobs the daemon runs (exec with background or on_timeout): host, command, state, \
         runtime, bytes."
    };
    (shells) => {
        "Persistent shells the daemon keeps (shell_open): id, host, cwd, state, age, idle time, \
         commands run."
    };
    (host) => {
        "Host alias from the SSH client config."
    };
}

/// Year, month and day of `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days on or after the epoch): for the ISO times
/// the shim shows and the audit log writes, without a date crate.
pub fn civil_date(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// What a client can ask of the daemon. The docs of the requests
/// `sshmcpctl` sends are its subcommands' help too (see [`help!`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    #[doc = help!(status)]
    Status,
    #[doc = help!(stats)]
    Stats,
    #[doc = help!(hosts)]
    Hosts,
    /// Run a command on a host through the remote user's shell; answer its
    /// exit status and output.
    Exec(ExecRequest),
    #[doc = help!(warm)]
    Warm {
        #[doc = help!(host)]
        host: String,
    },
    #[doc = help!(drain)]
    Drain {
        #[doc = help!(host)]
        host: String,
    },
    /// What a remote path is: type, size, mode, mtime.
    Stat(StatRequest),
    /// A remote directory's entries, optionally recursive.
    ListDir(ListDirRequest),
    /// Bytes of a remote file, from an offset.
    ReadFile(ReadFileRequest),
    /// Atomically replace (or append to) a remote file.
    WriteFile(WriteFileRequest),
    /// Make a remote directory.
    Mkdir(MkdirRequest),
    /// Delete a remote file, symlink or directory.
    Remove(RemoveRequest),
    /// Move or rename a remote path.
    Rename(RenameRequest),
    /// Copy a file or directory tree between this machine and a host.
    Transfer(TransferRequest),
    /// One-way directory sync between this machine and a host.
    Sync(SyncRequest),
    #[doc = help!(reload)]
    Reload,
    /// Several host requests in one, run concurrently, answered in order.
    Batch(BatchRequest),
    #[doc = help!(cache)]
    Cache,
    #[doc = help!(cache_clear)]
    CacheClear {
        /// Only this host's entries; every host's when `None`.
        host: Option<String>,
    },
    /// A page of a job's output, waiting for more if asked.
    JobOutput(JobOutputRequest),
    /// Send a signal to a job.
    JobSignal(JobSignalRequest),
    #[doc = help!(jobs)]
    Jobs {
        /// Only this host's jobs; every host's when `None`.
        host: Option<String>,
    },
    /// Start a persistent shell on a host.
    ShellOpen(ShellOpenRequest),
    /// Run a command in a persistent shell.
    ShellExec(ShellExecRequest),
    /// End a persistent shell.
    ShellClose(ShellCloseRequest),
    #[doc = help!(shells)]
    Shells {
        /// Only this host's shells; every host's when `None`.
        host: Option<String>,
    },
}

impl Request {
    /// Short stable name of the operation, for stats, logs and error
    /// messages.
    pub fn op_name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Stats => "stats",
            Request::Hosts => "hosts",
            Request::Exec(_) => "exec",
            Request::Warm { .. } => "warm",
            Request::Drain { .. } => "drain",
            Request::Stat(_) => "stat",
            Request::ListDir(_) => "list_dir",
            Request::ReadFile(_) => "read_file",
            Request::WriteFile(_) => "write_file",
            Request::Mkdir(_) => "mkdir",
            Request::Remove(_) => "remove",
            Request::Rename(_) => "rename",
            Request::Transfer(_) => "transfer",
            Request::Sync(_) => "sync",
            Request::Reload => "reload",
            Request::Batch(_) => "batch",
            Request::Cache => "cache",
            Request::CacheClear { .. } => "cache_clear",
            Request::JobOutput(_) => "job_output",
            Request::JobSignal(_) => "job_signal",
            Request::Jobs { .. } => "jobs",
            Request::ShellOpen(_) => "shell_open",
            Request::ShellExec(_) => "shell_exec",
            Request::ShellClose(_) => "shell_close",
            Request::Shells { .. } => "shells",
        }
    }

    /// Admin requests inspect and steer the daemon rather than work on a
    /// host: they skip the daemon's request limits, so an overloaded daemon
    /// can still be inspected, and are all that `sshmcpctl`'s reserved
    /// connections may send.
    pub fn is_admin(&self) -> bool {
        matches!(
            self,
            Request::Status
                | Request::Stats
                | Request::Hosts
                | Request::Drain { .. }
                | Request::Reload
                | Request::Cache
                | Request::CacheClear { .. }
                | Request::Jobs { .. }
                | Request::Shells { .. }
        )
    }

    /// The host the request targets, if any.
    pub fn host(&self) -> Option<&str> {
        match self {
            Request::Exec(req) => Some(&req.host),
            Request::Stat(req) => Some(&req.host),
            Request::ListDir(req) => Some(&req.host),
            Request::ReadFile(req) => Some(&req.host),
            Request::WriteFile(req) => Some(&req.host),
            Request::Mkdir(req) => Some(&req.host),
            Request::Remove(req) => Some(&req.host),
            Request::Rename(req) => Some(&req.host),
            Request::Transfer(req) => Some(&req.host),
            Request::Sync(req) => Some(&req.host),
            Request::Warm { host } | Request::Drain { host } => Some(host),
            Request::ShellOpen(req) => Some(&req.host),
            Request::Status
            | Request::Stats
            | Request::Hosts
            | Request::Reload
            | Request::Batch(_)
            | Request::Cache
            | Request::CacheClear { .. }
            | Request::JobOutput(_)
            | Request::JobSignal(_)
            | Request::Jobs { .. }
            | Request::ShellExec(_)
            | Request::ShellClose(_)
            | Request::Shells { .. } => None,
        }
    }
}

/// Successful replies: each [`Request`] has one kind of answer, named
/// after it, or [`Response::Ok`] when there is nothing to say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// The daemon's version, pid, uptime, socket and health (answers `Status`).
    Status(Status),
    /// Pool counters, op latencies, the cache and resource use (answers
    /// `Stats`).
    Stats(Box<Stats>),
    /// The ssh config in use and every host in it with its pool state, in
    /// config order (answers `Hosts`).
    Hosts(HostList),
    /// How the command ended and what it wrote (answers `Exec`).
    Exec(ExecOutput),
    /// The request succeeded and has nothing to return (warm, drain, mkdir,
    /// rename).
    Ok,
    /// What the path is (answers `Stat`).
    Stat(FileStat),
    /// The directory's entries (answers `ListDir`).
    ListDir(DirListing),
    /// The bytes read (answers `ReadFile`).
    ReadFile(FileContent),
    /// What the write did (answers `WriteFile`).
    WriteFile(WriteResult),
    /// What was removed (answers `Remove`).
    Remove(RemoveResult),
    /// What was copied (answers `Transfer`).
    Transfer(TransferResult),
    /// What the sync changed, or would change (answers `Sync`).
    Sync(SyncResult),
    /// What a reload changed, in one line (answers `Reload`).
    Reloaded(String),
    /// An answer from the daemon's cache, with its age (answers `Stat`,
    /// `ListDir`, `ReadFile`, and `Exec` with `cache_secs`).
    Cached(Cached),
    /// Each call's outcome, in call order (answers `Batch`).
    Batch(BatchReplies),
    /// The cache's counters (answers `Cache`).
    Cache(CacheStats),
    /// How many cached answers were dropped (answers `CacheClear`).
    CacheCleared(u64),
    /// A page of a job's output (answers `JobOutput`).
    JobOutput(JobOutput),
    /// The call runs on as a job (answers `Transfer` and `Sync` with
    /// `job_after_secs`, once that has passed).
    JobStarted(JobStarted),
    /// The job's state after the signal (answers `JobSignal`).
    JobState(JobState),
    /// The jobs, oldest first (answers `Jobs`).
    Jobs(Vec<JobInfo>),
    /// The shell started (answers `ShellOpen`).
    ShellOpened(ShellOpened),
    /// How the command ended, what it wrote, and where the shell is now
    /// (answers `ShellExec`). Boxed: the largest answer, it would size
    /// every frame.
    ShellExec(Box<ShellExecOutput>),
    /// The open shells, oldest first (answers `Shells`).
    Shells(Vec<ShellInfo>),
}

impl Response {
    /// The variant's name, for messages about an unexpected reply.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Status(_) => "Status",
            Response::Stats(_) => "Stats",
            Response::Hosts(_) => "Hosts",
            Response::Cached(_) => "Cached",
            Response::Batch(_) => "Batch",
            Response::Cache(_) => "Cache",
            Response::CacheCleared(_) => "CacheCleared",
            Response::JobOutput(_) => "JobOutput",
            Response::JobStarted(_) => "JobStarted",
            Response::JobState(_) => "JobState",
            Response::Jobs(_) => "Jobs",
            Response::ShellOpened(_) => "ShellOpened",
            Response::ShellExec(_) => "ShellExec",
            Response::Shells(_) => "Shells",
            Response::Exec(_) => "Exec",
            Response::Ok => "Ok",
            Response::Stat(_) => "Stat",
            Response::ListDir(_) => "ListDir",
            Response::ReadFile(_) => "ReadFile",
            Response::WriteFile(_) => "WriteFile",
            Response::Remove(_) => "Remove",
            Response::Transfer(_) => "Transfer",
            Response::Sync(_) => "Sync",
            Response::Reloaded(_) => "Reloaded",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_bincode() {
        let frame = ClientFrame::Request {
            id: 7,
            request: Request::Exec(ExecRequest {
                stop_after_secs: None,
                detach: false,
                background: false,
                on_timeout: Default::default(),
                cache_secs: None,
                host: "web1".into(),
                command: "uname -a".into(),
                stdin: Some(vec![0, 159, 146, 150]),
                timeout_secs: Some(5),
                max_output_bytes: None,
                sudo: false,
                sudo_user: None,
            }),
        };
        let bytes = encode(&frame).unwrap();
        assert_eq!(decode::<ClientFrame>(&bytes).unwrap(), frame);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = encode(&ClientFrame::Cancel { id: 1 }).unwrap();
        bytes.push(0);
        assert!(decode::<ClientFrame>(&bytes).is_err());
    }

    #[test]
    fn unknown_variant_is_an_error_not_a_panic() {
        assert!(decode::<ClientFrame>(&[200, 1, 2, 3]).is_err());
        assert!(decode::<ClientFrame>(&[]).is_err());
    }
}
