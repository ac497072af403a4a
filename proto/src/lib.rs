//! The wire contract between `sshmcpd`, the `sshmcp` shim and `sshmcpctl`.
//!
//! This crate is the only vocabulary the three binaries share. It holds the
//! frame types, the requests and replies, and (behind the `client` feature)
//! an async client for the daemon's socket.
//!
//! Speaking the protocol takes five steps:
//!
//! 1. Connect to the daemon's Unix stream socket (`--socket`, or the first
//!    of [`client_socket_candidates`] that answers). The daemon admits only
//!    its own uid.
//! 2. Frames in both directions are a 4-byte big-endian length followed by a
//!    bincode (2.0, standard config, serde) payload; see [`frame_codec`],
//!    [`encode`] and [`decode`]. A frame may not exceed the daemon's
//!    `max_frame` (default [`DEFAULT_MAX_FRAME`]).
//! 3. Send [`ClientFrame::Hello`] first; the daemon answers
//!    [`DaemonFrame::Welcome`], or [`DaemonFrame::Goodbye`] with an error that
//!    names both versions when [`PROTO_VERSION`]s differ.
//! 4. Send any number of [`ClientFrame::Request`]s, each with an id unique on
//!    this connection. Replies may come out of order: zero or more
//!    [`DaemonFrame::Progress`] / [`DaemonFrame::Output`] events, then exactly
//!    one [`DaemonFrame::Done`] carrying a [`Reply`].
//! 5. [`ClientFrame::Cancel`] abandons a request (a cancelled exec kills its
//!    remote process); its `Done` still arrives, with [`ErrorKind::Cancelled`].
//!
//! Garbage, truncated or oversized frames get a `Goodbye` where one can still
//! be sent, then the daemon closes that one connection.

use serde::{Deserialize, Serialize};

#[cfg(feature = "client")]
pub mod client;
mod codec;
mod error;
mod exec;
mod files;
mod socket;
mod state;
mod validate;

pub use codec::{CodecError, MAX_PAYLOAD, decode, encode, frame_codec};
pub use error::{Error, ErrorKind};
pub use exec::{ExecOutput, ExecRequest, OutputStream};
pub use files::{
    DirListing, Direction, FileContent, FileKind, FileStat, ListDirRequest, MkdirRequest,
    ReadFileRequest, RemoveRequest, RemoveResult, RenameRequest, StatRequest, SyncAction,
    SyncChange, SyncRequest, SyncResult, TransferRequest, TransferResult, WriteFileRequest,
    WriteResult,
};
pub use socket::{SOCKET_ENV, SYSTEM_SOCKET, client_socket_candidates, daemon_socket_path};
pub use state::{ConnState, HostState, HostStats, OpStats, Resources, Stats, Status, ThreadInfo};
pub use validate::{
    MAX_COMMAND_BYTES, MAX_HOST_BYTES, MAX_LIST_ENTRIES, MAX_MODE, MAX_OFFSET, MAX_PATH_BYTES,
    MAX_TIMEOUT_SECS, REPLY_HEADROOM, max_output_per_stream, max_read_per_reply,
};

/// Bumped whenever a frame's layout changes; both ends must agree.
pub const PROTO_VERSION: u32 = 2;

/// Default upper bound on one frame's payload; larger data moves in chunks.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// Who is calling: shown in stats and written to the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The calling binary (`sshmcp`, `sshmcpctl`, ...).
    pub binary: String,
    /// The calling binary's version.
    pub version: String,
    /// The MCP client's name from its `initialize`, when the caller is the shim.
    pub mcp_client: Option<String>,
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
    /// Start a request; `id` must not be in use on this connection.
    Request { id: u64, request: Request },
    /// Abandon request `id`. Unknown or finished ids are ignored.
    Cancel { id: u64 },
}

/// Frames the daemon sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonFrame {
    /// Answer to a matching `Hello`.
    Welcome(Welcome),
    /// How far request `id` has got.
    Progress { id: u64, progress: Progress },
    /// A chunk of a streaming request's output.
    Output {
        id: u64,
        stream: OutputStream,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// The final reply to request `id`.
    Done { id: u64, reply: Reply },
    /// The daemon is closing this connection, and why (bad frame, version
    /// mismatch, refused peer, shutdown).
    Goodbye(Error),
}

/// Progress of a long request such as a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Units done so far (bytes, files, ...).
    pub done: u64,
    /// Units expected in all, when known.
    pub total: Option<u64>,
    /// A short human-readable note.
    pub message: Option<String>,
}

/// The outcome of a request.
pub type Reply = Result<Response, Error>;

/// What a client can ask of the daemon. Each variant's doc is also the help
/// text of the matching `sshmcpctl` subcommand or MCP tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Daemon version, pid, uptime, socket and health.
    Status,
    /// Per-host pool counters and per-op latency percentiles.
    Stats,
    /// Configured hosts with their pool state.
    Hosts,
    /// Run a command on a host.
    Exec(ExecRequest),
    /// Open a connection to a host now, so the next call finds it warm.
    Warm { host: String },
    /// Close a host's idle connections; busy ones close when their work ends.
    Drain { host: String },
    /// What a remote path is: type, size, mode, mtime.
    Stat(StatRequest),
    /// A remote directory's entries.
    ListDir(ListDirRequest),
    /// Bytes of a remote file.
    ReadFile(ReadFileRequest),
    /// Atomically replace (or append to) a remote file.
    WriteFile(WriteFileRequest),
    /// Make a remote directory.
    Mkdir(MkdirRequest),
    /// Delete a remote path.
    Remove(RemoveRequest),
    /// Move a remote path.
    Rename(RenameRequest),
    /// Copy files between this machine and a host.
    Transfer(TransferRequest),
    /// One-way directory sync between this machine and a host.
    Sync(SyncRequest),
    /// Re-read the config and the ssh config, as SIGHUP does: unchanged
    /// hosts stay warm, removed ones close, new ones are added. A bad new
    /// config is refused and the old one stays in force.
    Reload,
}

impl Request {
    /// Short stable name of the operation, for stats and audit.
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
        }
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
            Request::Status | Request::Stats | Request::Hosts | Request::Reload => None,
        }
    }
}

/// Successful replies, one variant per [`Request`] kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Status(Status),
    Stats(Stats),
    Hosts(Vec<HostState>),
    Exec(ExecOutput),
    /// The request succeeded and has nothing to return (warm, drain, mkdir,
    /// rename).
    Ok,
    Stat(FileStat),
    ListDir(DirListing),
    ReadFile(FileContent),
    WriteFile(WriteResult),
    Remove(RemoveResult),
    Transfer(TransferResult),
    Sync(SyncResult),
    /// What a reload changed, in one line.
    Reloaded(String),
}

impl Response {
    /// The variant's name, for messages about an unexpected reply.
    pub fn name(&self) -> &'static str {
        match self {
            Response::Status(_) => "Status",
            Response::Stats(_) => "Stats",
            Response::Hosts(_) => "Hosts",
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
                host: "web1".into(),
                command: "uname -a".into(),
                stdin: Some(vec![0, 159, 146, 150]),
                timeout_secs: Some(5),
                max_output_bytes: None,
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
