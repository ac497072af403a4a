//! The file side: SFTP operations on a host, transfers between this machine
//! and a host, and one-way directory sync.
//!
//! Remote paths are as the SFTP server sees them: absolute, or relative to
//! the remote user's home. Local paths (transfer, sync) must be absolute by
//! the time they reach the daemon; the shim resolves relative ones against
//! its own working directory. The daemon checks local paths against its
//! `[policy] local_roots`.

use serde::{Deserialize, Serialize};

/// What a directory entry or path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
// JSON (MCP results) names it as `as_str` does; bincode carries the variant index.
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A device, socket or FIFO.
    Other,
}

impl FileKind {
    /// Stable lowercase name, as MCP results show it.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Other => "other",
        }
    }
}

/// `stat`: what a remote path is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote path: absolute, or relative to the remote user's home.
    pub path: String,
    /// Describe a symlink's target instead of the link itself.
    pub follow_symlinks: bool,
    /// Oldest cached answer acceptable, in seconds, 0 to
    /// [`MAX_CACHE_SECS`](crate::MAX_CACHE_SECS); 0 goes to the host. Default:
    /// the daemon's `[cache]` TTL for the kind.
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

/// The attributes of one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// The path as asked (stat) or relative to the listed directory (list_dir).
    pub path: String,
    /// What the path is.
    pub kind: FileKind,
    /// Size in bytes (of the link itself, for an unfollowed symlink).
    pub size: u64,
    /// Permission bits (`0o644`), without the file-type bits.
    pub mode: u32,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// Owner's numeric user id, when the server reports it.
    pub uid: Option<u32>,
    /// Owner's numeric group id, when the server reports it.
    pub gid: Option<u32>,
    /// Where a symlink points, when the path is one.
    pub link_target: Option<String>,
}

/// `list_dir`: a directory's entries, optionally recursive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListDirRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote directory: absolute, or relative to the remote user's home.
    pub path: String,
    /// Descend into subdirectories (symlinked directories are listed, not entered).
    pub recursive: bool,
    /// Stop after this many entries and set `truncated`: 1 to
    /// [`MAX_LIST_ENTRIES`](crate::MAX_LIST_ENTRIES). Default
    /// [`DEFAULT_MAX_ENTRIES`](Self::DEFAULT_MAX_ENTRIES) (10 000).
    pub max_entries: Option<u32>,
    /// Oldest cached answer acceptable, in seconds, 0 to
    /// [`MAX_CACHE_SECS`](crate::MAX_CACHE_SECS); 0 goes to the host. Default:
    /// the daemon's `[cache]` TTL for the kind.
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

impl ListDirRequest {
    /// Default `max_entries`.
    pub const DEFAULT_MAX_ENTRIES: u32 = 10_000;
}

/// A directory listing. Entries are sorted by path; `.` and `..` are left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirListing {
    /// The directory as asked.
    pub path: String,
    /// The entries, each `path` relative to the directory.
    pub entries: Vec<FileStat>,
    /// `max_entries` was reached before the listing was complete.
    pub truncated: bool,
}

/// `read_file`: bytes of a remote file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadFileRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote file: absolute, or relative to the remote user's home.
    pub path: String,
    /// Byte offset to start reading at, 0 to [`MAX_OFFSET`](crate::MAX_OFFSET).
    pub offset: u64,
    /// How many bytes to read at most. Default
    /// [`DEFAULT_MAX_READ`](Self::DEFAULT_MAX_READ) (1 MiB); never more than
    /// [`max_read_per_reply`](crate::max_read_per_reply) of the daemon's
    /// `max_frame`, whatever is asked.
    pub length: Option<u64>,
    /// Oldest cached answer acceptable, in seconds, 0 to
    /// [`MAX_CACHE_SECS`](crate::MAX_CACHE_SECS); 0 goes to the host. Default:
    /// the daemon's `[cache]` TTL for the kind.
    #[serde(default)]
    pub max_age_secs: Option<u64>,
}

impl ReadFileRequest {
    /// Default `length`; the reply's `truncated` says when the file goes on.
    pub const DEFAULT_MAX_READ: u64 = 1024 * 1024;
}

/// A remote file's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileContent {
    /// The file as asked.
    pub path: String,
    /// The bytes read, raw.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// The offset `data` starts at.
    pub offset: u64,
    /// The file's whole size, in bytes.
    pub size: u64,
    /// The file goes on past the returned bytes.
    pub truncated: bool,
}

/// `write_file`: replace (or append to) a remote file. Replacement is
/// atomic: the bytes go to a temporary file in the same directory, which is
/// renamed over the target only once complete, so a failed write leaves the
/// old file intact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteFileRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote file: absolute, or relative to the remote user's home.
    pub path: String,
    /// The bytes to write, raw.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    /// Permission bits for the file, at most [`MAX_MODE`](crate::MAX_MODE);
    /// default: the old file's, else 0o644.
    pub mode: Option<u32>,
    /// Append to the file instead of replacing it. On failure the file is
    /// cut back to its old length.
    pub append: bool,
    /// Create missing parent directories.
    pub create_dirs: bool,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct WriteResult {
    /// The file as asked.
    pub path: String,
    /// Bytes written (all of `data`).
    pub bytes_written: u64,
    /// The file did not exist before.
    pub created: bool,
}

/// `mkdir`: make a remote directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MkdirRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote directory to make: absolute, or relative to the remote user's
    /// home.
    pub path: String,
    /// Create missing parents too, and succeed when the directory exists.
    pub parents: bool,
    /// Permission bits, at most [`MAX_MODE`](crate::MAX_MODE), less the
    /// server's umask; default: the server's (usually 0o755).
    pub mode: Option<u32>,
}

/// `remove`: delete a remote file, symlink or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote path to delete: absolute, or relative to the remote user's
    /// home (which itself, as `.` or `~`, is refused).
    pub path: String,
    /// Remove a directory and everything in it. Without it, only files,
    /// symlinks and empty directories are removed.
    pub recursive: bool,
}

/// What a remove did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct RemoveResult {
    /// The path as asked.
    pub path: String,
    /// Files and symlinks removed.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
}

/// `rename`: move a remote path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenameRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Remote path to move.
    pub from: String,
    /// Remote path to move it to.
    pub to: String,
    /// Replace `to` when it exists (atomically, where the server supports
    /// `posix-rename@openssh.com`).
    pub overwrite: bool,
}

/// Which way bytes move.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
// JSON (MCP results) names it as `as_str` does; bincode carries the variant index.
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Local to remote.
    Upload,
    /// Remote to local.
    Download,
}

impl Direction {
    /// Stable lowercase name, as MCP results show it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// `transfer`: copy a file (or, with `recursive`, a directory) between
/// this machine and a host. Each file goes to a temporary name next to its
/// destination and is renamed into place when complete; mode and mtime are
/// preserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Which way the bytes move.
    pub direction: Direction,
    /// Absolute local path, inside the daemon's `[policy] local_roots`.
    pub local_path: String,
    /// Remote path: absolute, or relative to the remote user's home.
    pub remote_path: String,
    /// Copy a directory and everything in it.
    pub recursive: bool,
    /// Continue a partial file left by an interrupted transfer.
    pub resume: bool,
    /// Compare SHA-256 of each file on both ends afterwards.
    pub verify: bool,
    /// Follow symlinks in the source instead of reporting and skipping them.
    pub follow_symlinks: bool,
    /// Run as a daemon job once it has run this many seconds (0: at
    /// once): the answer is then `JobStarted`, and `JobOutput` reads the
    /// job's progress lines and, once it ends, its result. Not in a batch.
    #[serde(default)]
    pub job_after_secs: Option<u64>,
}

/// What a transfer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct TransferResult {
    /// Files copied.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes moved over the connection (less than the total on resume).
    pub bytes: u64,
    /// Bytes already in place from an earlier, interrupted transfer.
    pub resumed_bytes: u64,
    /// Symlinks and special files skipped, with why.
    pub skipped: Vec<String>,
    /// `Some(true)` when every file's SHA-256 matched (a mismatch fails the
    /// request); `None` when not asked, or when the host has no `sha256sum`
    /// (`notes` says so).
    pub verified: Option<bool>,
    /// Notes for the caller, e.g. why verification could not run.
    pub notes: Vec<String>,
    /// Time the whole transfer took.
    pub duration_ms: u64,
}

/// `sync`: make the destination directory match the source, moving only
/// what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRequest {
    /// Host alias from the SSH client config.
    pub host: String,
    /// Which way the sync goes: upload makes the remote directory match the
    /// local one, download the other way round.
    pub direction: Direction,
    /// Absolute local directory, inside the daemon's `[policy] local_roots`.
    pub local_dir: String,
    /// Remote directory: absolute, or relative to the remote user's home.
    pub remote_dir: String,
    /// Delete destination files that are not in the source.
    pub delete: bool,
    /// Return the plan without changing anything.
    pub dry_run: bool,
    /// Compare same-size files by SHA-256 instead of by mtime (needs
    /// `sha256sum` on the host).
    pub checksum: bool,
    /// Run as a daemon job once it has run this many seconds, as
    /// [`TransferRequest::job_after_secs`].
    #[serde(default)]
    pub job_after_secs: Option<u64>,
}

/// One step of a sync plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
// JSON (MCP results) names it as `as_str` does; bincode carries the variant index.
#[serde(rename_all = "lowercase")]
pub enum SyncAction {
    /// A directory missing at the destination.
    Mkdir,
    /// A file missing at the destination.
    Create,
    /// A file that differs.
    Update,
    /// A destination path not in the source (with `delete`).
    Delete,
}

impl SyncAction {
    /// Stable lowercase name, as MCP results show it.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncAction::Mkdir => "mkdir",
            SyncAction::Create => "create",
            SyncAction::Update => "update",
            SyncAction::Delete => "delete",
        }
    }
}

/// A planned or done change, by path relative to the synced directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SyncChange {
    /// What is (or would be) done.
    pub action: SyncAction,
    /// Relative to the synced directories; `.` is the directory itself.
    pub path: String,
    /// Bytes to move (create, update); 0 otherwise.
    pub bytes: u64,
}

impl SyncResult {
    /// The most changes one result lists; the counts cover them all.
    pub const MAX_LISTED_CHANGES: usize = 1000;
}

/// What a sync did, or with `dry_run` would do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct SyncResult {
    /// Nothing was changed: the result is the plan.
    pub dry_run: bool,
    /// The changes: deletions first, then the rest by path; at most
    /// [`MAX_LISTED_CHANGES`](Self::MAX_LISTED_CHANGES).
    pub changes: Vec<SyncChange>,
    /// More changes were made than `changes` lists.
    pub changes_truncated: bool,
    /// Files created at the destination.
    pub created: u64,
    /// Files replaced because they differed.
    pub updated: u64,
    /// Destination paths deleted (with `delete`).
    pub deleted: u64,
    /// Directories created at the destination.
    pub dirs_created: u64,
    /// Files already the same at both ends.
    pub unchanged: u64,
    /// Bytes moved (or to move).
    pub bytes: u64,
    /// Symlinks and special files skipped, with why.
    pub skipped: Vec<String>,
    /// Time the whole sync took.
    pub duration_ms: u64,
}
