//! The remote side of file work: SFTP requests with errors that name the
//! host, the path and what to do, plus the building blocks every file op
//! shares (stat, listing, walking, pipelined reads and writes, atomic
//! replace).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;

use futures_util::stream::{FuturesOrdered, FuturesUnordered};
use futures_util::{Stream, StreamExt};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use sshmcp_proto::{Error, ErrorKind, FileKind, FileStat};

use crate::pool::sftp::Sftp;

/// Requests kept in flight on one file: enough to keep a loopback or LAN
/// link busy (64 × 64 KiB = 4 MiB in flight) without hogging the session.
pub const PIPELINE_DEPTH: usize = 64;

/// One host's SFTP session, with the host's name for messages.
pub struct Remote<'a> {
    pub sftp: &'a Sftp,
    pub host: &'a str,
}

/// A file handle that is closed when done with. `close` reports errors;
/// a handle dropped unclosed is closed in the background.
pub struct Handle<'a> {
    remote: &'a Remote<'a>,
    pub id: String,
    closed: bool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Handle<'_> {
    pub async fn close(mut self) -> Result<(), SftpError> {
        self.closed = true;
        self.remote
            .sftp
            .raw()
            .close(self.id.clone())
            .await
            .map(drop)
    }
}

impl Drop for Handle<'_> {
    fn drop(&mut self) {
        if !self.closed {
            // Close without waiting for the reply.
            let share = self.remote.sftp.share();
            let id = std::mem::take(&mut self.id);
            tokio::spawn(async move {
                let _ = share.raw().close(id).await;
            });
        }
    }
}

/// One directory's entries as [`Remote::list`] returns them.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<(String, FileAttributes)>,
    /// Names left out: not usable as one path component.
    pub suspect: Vec<SuspectName>,
}

/// A tree as [`Remote::walk_reporting`] returns it: the entries it takes,
/// and every entry it left out or did not enter, each with why (a suspect
/// name, a directory that loops, one too deep).
#[derive(Debug, Default)]
pub struct Walk {
    /// Relative paths, directories before their contents.
    pub entries: Vec<(String, FileAttributes)>,
    /// Stopped at the limit.
    pub truncated: bool,
    /// Every entry left out or not entered, with why: suspect names,
    /// directories that loop, directories too deep. Each is written for a
    /// `skipped` list.
    pub left_out: Vec<Skipped>,
}

/// How many directory levels below its top a walk enters. The last guard
/// against a loop no check sees (a bind mount of a parent, a server whose
/// `realpath` resolves no links): real trees are far shallower, and what
/// lies below is named in `skipped`, not silently dropped.
pub const MAX_DEPTH: usize = 64;

/// Why a walk, local or remote, found a directory and did not enter it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotEntered {
    /// It resolves to a directory the walk is already inside, `to`
    /// (relative to the top, empty for the top itself): entering it would
    /// never end.
    Loop { to: String },
    /// It is more than [`MAX_DEPTH`] levels down.
    TooDeep,
}

impl NotEntered {
    /// The `skipped` entry for the directory at `rel`; short, as a
    /// language model reads it.
    pub fn note(&self, rel: &str) -> String {
        match self {
            NotEntered::Loop { to } => {
                let to = if to.is_empty() { "." } else { to };
                format!("`{rel}`: symlink loops back to `{to}`; skipped")
            }
            NotEntered::TooDeep => {
                format!("`{rel}`: deeper than {MAX_DEPTH} directory levels; not entered")
            }
        }
    }
}

/// Something [`Remote::walk_reporting`] left out or did not enter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// A listed name that cannot be one path component.
    Suspect(SuspectName),
    /// The directory at `rel`, relative to the top.
    NotEntered { rel: String, why: NotEntered },
}

/// Written for a `skipped` list.
impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::Suspect(name) => name.fmt(f),
            Skipped::NotEntered { rel, why } => f.write_str(&why.note(rel)),
        }
    }
}

/// A directory a remote walk is to list, with the directories above it.
struct Pending {
    rel: String,
    /// Its ancestors by canonical path (the top first), for loop checks.
    above: Arc<Vec<Ancestor>>,
}

/// A directory a remote walk is inside.
#[derive(Clone)]
struct Ancestor {
    /// Where the server's `realpath` says it is.
    canonical: String,
    rel: String,
}

/// A name a server listed that cannot be one path component: joined onto
/// a local path it would point somewhere else (`../x`, `/etc/x`, `a/b`),
/// or nowhere (empty, a NUL byte). It is left out and reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspectName {
    /// The directory that listed it, relative to the walked root (empty:
    /// the root itself).
    pub dir: String,
    pub name: String,
    pub why: &'static str,
}

/// Written for a `skipped` list, which a language model reads: short, with
/// the name escaped so a NUL or newline shows as such.
impl std::fmt::Display for SuspectName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`", self.name.escape_debug())?;
        if !self.dir.is_empty() {
            write!(f, " in `{}`", self.dir)?;
        }
        write!(
            f,
            ": the server sent a suspect name ({}); skipped",
            self.why
        )
    }
}

/// What one listed name is.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A plain name: one path component.
    Plain,
    /// `.` or `..` as a directory: in every listing, not news.
    SelfOrParent,
    /// Anything else that is not one path component, and why.
    Suspect(&'static str),
}

/// Judge a listed name as OpenSSH's `sftp` does (`Server sent suspect
/// path`), and more strictly: a name is used only if it is exactly one
/// ordinary path component.
fn judge_name(name: &str, attrs: &FileAttributes) -> Verdict {
    if name.is_empty() {
        Verdict::Suspect("empty")
    } else if name.contains('/') {
        Verdict::Suspect("contains `/`")
    } else if name.contains('\0') {
        Verdict::Suspect("contains NUL")
    } else if name == "." || name == ".." {
        // A server that gives no type for them is taken at its word too:
        // only a `.` or `..` that claims to be something else is news.
        if attrs.permissions.is_none() || kind_of(attrs) == FileKind::Dir {
            Verdict::SelfOrParent
        } else {
            Verdict::Suspect("`.` or `..` that is not a directory")
        }
    } else {
        Verdict::Plain
    }
}

impl<'a> Remote<'a> {
    pub fn new(sftp: &'a Sftp, host: &'a str) -> Self {
        Remote { sftp, host }
    }

    /// Turn an SFTP failure on `path` during `what` into an error that says
    /// what to do. Session-level failures mark the session broken so the
    /// next request gets a fresh one.
    pub fn error(&self, what: &str, path: &str, error: SftpError) -> Error {
        let host = self.host;
        match error {
            SftpError::Status(status) => match status.status_code {
                StatusCode::NoSuchFile => Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "{what}: {host}:{path} does not exist (or a parent is not a directory); check the path with list_dir on its parent"
                    ),
                ),
                StatusCode::PermissionDenied => Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "{what}: permission denied on {host}:{path}; the remote user cannot do this there, pick a path it owns"
                    ),
                ),
                StatusCode::OpUnsupported => Error::new(
                    ErrorKind::IoError,
                    format!("{what}: the SFTP server on {host} does not support this ({path})"),
                ),
                StatusCode::Eof => Error::new(
                    ErrorKind::IoError,
                    format!("{what}: unexpected end of file on {host}:{path}"),
                ),
                _ => {
                    let detail =
                        if status.error_message.is_empty() || status.error_message == "Failure" {
                            String::from("the server gave no reason")
                        } else {
                            status.error_message.clone()
                        };
                    Error::new(
                        ErrorKind::IoError,
                        format!(
                            "{what}: {host}:{path} failed ({detail}); it may be the wrong type, already exist, or the disk may be full"
                        ),
                    )
                }
            },
            SftpError::Timeout => {
                self.sftp.mark_broken();
                Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{what}: {host} did not answer an SFTP request for {path} within {}s; the connection may be stalled, retry",
                        crate::pool::sftp::REQUEST_TIMEOUT.as_secs()
                    ),
                )
            }
            SftpError::Limited(why) => Error::new(
                ErrorKind::IoError,
                format!("{what}: {host}:{path}: the server's SFTP limits refused it ({why})"),
            ),
            other => {
                self.sftp.mark_broken();
                Error::new(
                    ErrorKind::Unreachable,
                    format!(
                        "{what}: lost the SFTP session to {host} while working on {path} ({other}); retry"
                    ),
                )
            }
        }
    }

    /// `lstat`, or `stat` when following symlinks; `Ok(None)` when the path
    /// does not exist.
    pub async fn try_stat(
        &self,
        path: &str,
        follow: bool,
    ) -> Result<Option<FileAttributes>, Error> {
        let raw = self.sftp.raw();
        let result = if follow {
            raw.stat(path).await
        } else {
            raw.lstat(path).await
        };
        match result {
            Ok(attrs) => Ok(Some(attrs.attrs)),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => Ok(None),
            Err(e) => Err(self.error("stat", path, e)),
        }
    }

    /// The attributes of `path`, which must exist.
    pub async fn stat(&self, path: &str, follow: bool) -> Result<FileAttributes, Error> {
        match self.try_stat(path, follow).await? {
            Some(attrs) => Ok(attrs),
            None => Err(self.error(
                "stat",
                path,
                SftpError::Status(russh_sftp::protocol::Status {
                    id: 0,
                    status_code: StatusCode::NoSuchFile,
                    error_message: String::new(),
                    language_tag: String::new(),
                }),
            )),
        }
    }

    /// Where a symlink points.
    pub async fn readlink(&self, path: &str) -> Option<String> {
        let name = self.sftp.raw().readlink(path).await.ok()?;
        name.files.into_iter().next().map(|f| f.filename)
    }

    /// The entries of directory `path` (without `.` and `..`), unsorted;
    /// names unsafe as a path component are left out (see [`Remote::list`]).
    pub async fn read_dir(&self, path: &str) -> Result<Vec<(String, FileAttributes)>, Error> {
        self.list(path).await.map(|listing| listing.entries)
    }

    /// The entries of directory `path`, unsorted, with the names that were
    /// left out as suspect. Every caller joins these names onto a path, so
    /// this is the one place they are checked: a compromised server that
    /// lists `../../.ssh/authorized_keys` must not steer where a download
    /// lands (OpenSSH's `sftp` refuses such names the same way).
    pub async fn list(&self, path: &str) -> Result<Listing, Error> {
        let raw = self.sftp.raw();
        let _permit = self.handle_permit().await?;
        let handle = match raw.opendir(path).await {
            Ok(handle) => handle.handle,
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                return Err(self.not_a_dir_or_missing(path).await);
            }
            Err(e) => return Err(self.error("list", path, e)),
        };
        let mut listing = Listing::default();
        let result = loop {
            match raw.readdir(handle.clone()).await {
                Ok(name) => {
                    for file in name.files {
                        match judge_name(&file.filename, &file.attrs) {
                            Verdict::Plain => listing.entries.push((file.filename, file.attrs)),
                            Verdict::SelfOrParent => {}
                            Verdict::Suspect(why) => listing.suspect.push(SuspectName {
                                dir: String::new(),
                                name: file.filename,
                                why,
                            }),
                        }
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
                Err(e) => break Err(self.error("list", path, e)),
            }
        };
        let _ = raw.close(handle).await;
        result.map(|()| listing)
    }

    /// NotFound for a missing path, WrongType for one that is not a directory.
    async fn not_a_dir_or_missing(&self, path: &str) -> Error {
        match self.try_stat(path, true).await {
            Ok(Some(attrs)) if kind_of(&attrs) != FileKind::Dir => Error::new(
                ErrorKind::WrongType,
                format!(
                    "{}:{path} is a {}, not a directory; use stat or read_file for it",
                    self.host,
                    kind_of(&attrs).as_str()
                ),
            ),
            Ok(_) => Error::new(
                ErrorKind::NotFound,
                format!(
                    "{}:{path} does not exist; check the path with list_dir on its parent",
                    self.host
                ),
            ),
            Err(e) => e,
        }
    }

    /// Every path under `root` (relative, `/`-separated), directories
    /// before their contents, symlinks not followed. Stops after `limit`
    /// entries and says so. Suspect names and directories that loop are
    /// left out, directories too deep are not entered (see
    /// [`Remote::walk_reporting`]).
    pub async fn walk(
        &self,
        root: &str,
        limit: usize,
    ) -> Result<(Vec<(String, FileAttributes)>, bool), Error> {
        self.walk_reporting(root, limit)
            .await
            .map(|walk| (walk.entries, walk.truncated))
    }

    /// [`Remote::walk`], with what was left out or not entered on the way,
    /// for callers that report what they skipped. Directories are listed
    /// concurrently.
    ///
    /// Loops: SFTP gives no inode to recognise a directory met twice, so
    /// each directory's canonical path comes from the server's `realpath`,
    /// asked alongside its listing (no extra wait). One whose canonical
    /// path is an ancestor's is a link back up the tree: OpenSSH lists a
    /// link as a link, never entered, but another server may list it as
    /// the directory it leads to. It is left out, as the link it is, with a
    /// note. Only ancestors count: a second link to a directory elsewhere
    /// is no loop. A `realpath` that resolves no links (or lies), or a bind
    /// mount of a parent, which loops with no link at all, still ends at
    /// [`MAX_DEPTH`]; a directory that deep stays listed, not entered, so
    /// a sync with `delete` does not take its counterpart for an extra.
    pub async fn walk_reporting(&self, root: &str, limit: usize) -> Result<Walk, Error> {
        let mut walk = Walk::default();
        let top = Pending {
            rel: String::new(),
            above: Arc::default(),
        };
        let mut pending: VecDeque<Pending> = VecDeque::from([top]);
        let mut listing = FuturesUnordered::new();
        loop {
            while listing.len() < 8
                && let Some(dir) = pending.pop_front()
            {
                let path = join(root, &dir.rel);
                listing.push(async move {
                    let (listed, canonical) = tokio::join!(self.list(&path), self.canonical(&path));
                    (dir, listed, canonical)
                });
            }
            let Some((dir, listed, canonical)) = listing.next().await else {
                break;
            };
            let looped = canonical
                .as_ref()
                .and_then(|c| dir.above.iter().find(|a| a.canonical == *c));
            if let Some(to) = looped {
                // Its parent listed it as a directory: it goes as a link.
                if let Some(at) = walk.entries.iter().rposition(|(rel, _)| *rel == dir.rel) {
                    walk.entries.remove(at);
                }
                let why = NotEntered::Loop { to: to.rel.clone() };
                walk.left_out
                    .push(Skipped::NotEntered { rel: dir.rel, why });
                continue;
            }
            let Listing {
                mut entries,
                suspect,
            } = listed?;
            walk.left_out.extend(suspect.into_iter().map(|s| {
                Skipped::Suspect(SuspectName {
                    dir: dir.rel.clone(),
                    ..s
                })
            }));
            let above = match canonical {
                Some(canonical) => {
                    let mut above = Vec::clone(&dir.above);
                    above.push(Ancestor {
                        canonical,
                        rel: dir.rel.clone(),
                    });
                    Arc::new(above)
                }
                None => dir.above,
            };
            // How many levels below the top the entries are.
            let depth = if dir.rel.is_empty() {
                1
            } else {
                dir.rel.matches('/').count() + 2
            };
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, attrs) in entries {
                if walk.entries.len() >= limit {
                    walk.truncated = true;
                    break;
                }
                let path = if dir.rel.is_empty() {
                    name
                } else {
                    format!("{}/{name}", dir.rel)
                };
                if kind_of(&attrs) == FileKind::Dir {
                    if depth > MAX_DEPTH {
                        walk.left_out.push(Skipped::NotEntered {
                            rel: path.clone(),
                            why: NotEntered::TooDeep,
                        });
                    } else {
                        pending.push_back(Pending {
                            rel: path.clone(),
                            above: Arc::clone(&above),
                        });
                    }
                }
                walk.entries.push((path, attrs));
            }
            if walk.truncated {
                break;
            }
        }
        Ok(walk)
    }

    /// Where the server says `path` is, links resolved (OpenSSH's
    /// `realpath` resolves them); `None` when it does not say.
    async fn canonical(&self, path: &str) -> Option<String> {
        let name = self.sftp.raw().realpath(path).await.ok()?;
        name.files.into_iter().next().map(|f| f.filename)
    }

    /// Wait for a free file handle on this session.
    pub async fn handle_permit(&self) -> Result<tokio::sync::SemaphorePermit<'a>, Error> {
        self.sftp
            .handles
            .acquire()
            .await
            .map_err(|_| Error::internal("SFTP session closed while waiting for a file handle"))
    }

    /// Open `path` with `flags`, creating it with `attrs` when asked.
    pub async fn open(
        &'a self,
        what: &str,
        path: &str,
        flags: OpenFlags,
        attrs: FileAttributes,
    ) -> Result<Handle<'a>, Error> {
        let permit = self.handle_permit().await?;
        match self.sftp.raw().open(path, flags, attrs).await {
            Ok(handle) => Ok(Handle {
                remote: self,
                id: handle.handle,
                closed: false,
                _permit: permit,
            }),
            Err(e) => Err(self.error(what, path, e)),
        }
    }

    /// Read `len` bytes from `offset` (fewer at end of file), pipelined,
    /// handing each piece to `sink` in order. Returns bytes read.
    pub async fn read_range<F>(
        &self,
        handle: &Handle<'_>,
        path: &str,
        offset: u64,
        len: u64,
        mut sink: impl FnMut(u64, Vec<u8>) -> F,
    ) -> Result<u64, Error>
    where
        F: Future<Output = Result<(), Error>>,
    {
        let raw = self.sftp.raw();
        let chunk = self.sftp.read_len as u64;
        let end = offset.saturating_add(len);
        let mut next = offset;
        let mut inflight = FuturesOrdered::new();
        let mut done = 0u64;
        let mut eof = false;
        loop {
            while !eof && inflight.len() < PIPELINE_DEPTH && next < end {
                let want = chunk.min(end - next);
                inflight.push_back(read_at(raw, &handle.id, next, want));
                next += want;
            }
            let Some((at, want, result)) = inflight.next().await else {
                break;
            };
            match result {
                Ok(data) => {
                    let got = data.data.len() as u64;
                    if got == 0 {
                        eof = true;
                        continue;
                    }
                    done += got;
                    sink(at, data.data).await?;
                    if got < want && !eof {
                        // A short read, not at EOF: ask for the rest before
                        // anything later is handed on, to keep order.
                        inflight.push_front(read_at(raw, &handle.id, at + got, want - got));
                    }
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => eof = true,
                Err(e) => return Err(self.error("read", path, e)),
            }
        }
        Ok(done)
    }

    /// Write everything `source` yields (offset, bytes) to `handle`, with up
    /// to [`PIPELINE_DEPTH`] writes in flight; `written` hears of each
    /// acknowledged piece. Returns bytes written.
    pub async fn write_stream<S>(
        &self,
        handle: &Handle<'_>,
        path: &str,
        mut source: S,
        written: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, Error>
    where
        S: Stream<Item = Result<(u64, Vec<u8>), Error>> + Unpin,
    {
        let raw = self.sftp.raw();
        let mut inflight = FuturesUnordered::new();
        let mut total = 0u64;
        let mut exhausted = false;
        loop {
            // Acknowledgements first, so new writes are sent (polled) as
            // soon as they are queued and the window stays full.
            tokio::select! {
                biased;
                Some(result) = inflight.next(), if !inflight.is_empty() => match result {
                    Ok(len) => {
                        total += len;
                        written(len);
                    }
                    Err(e) => return Err(self.write_error(path, e).await),
                },
                item = source.next(), if !exhausted && inflight.len() < PIPELINE_DEPTH => match item {
                    Some(Ok((offset, data))) => {
                        let len = data.len() as u64;
                        let write = raw.write(handle.id.clone(), offset, data);
                        inflight.push(async move { write.await.map(|_| len) });
                    }
                    Some(Err(e)) => return Err(e),
                    None => exhausted = true,
                },
                else => break,
            }
        }
        Ok(total)
    }

    /// A failed write, with a check for a full disk (OpenSSH reports ENOSPC
    /// only as a generic failure).
    pub async fn write_error(&self, path: &str, error: SftpError) -> Error {
        if let SftpError::Status(s) = &error
            && s.status_code == StatusCode::Failure
            && let Some(free) = self.free_bytes(parent(path)).await
            && free < 1024 * 1024
        {
            return Error::new(
                ErrorKind::NoSpace,
                format!(
                    "write: no space left on {}'s filesystem for {path} ({free} bytes free); free some space or write elsewhere",
                    self.host
                ),
            );
        }
        self.error("write", path, error)
    }

    /// Bytes free to the user on the filesystem holding `path`, when the
    /// server can tell (`statvfs@openssh.com`).
    pub async fn free_bytes(&self, path: &str) -> Option<u64> {
        if !self.sftp.statvfs {
            return None;
        }
        let vfs = self.sftp.raw().statvfs(path).await.ok()?;
        Some(vfs.blocks_avail.saturating_mul(vfs.fragment_size))
    }

    /// Rename `from` to `to`, replacing `to` atomically where the server
    /// supports `posix-rename@openssh.com`.
    pub async fn rename_over(&self, from: &str, to: &str) -> Result<(), Error> {
        let raw = self.sftp.raw();
        if self.sftp.posix_rename {
            let mut data = Vec::with_capacity(8 + from.len() + to.len());
            for s in [from, to] {
                data.extend_from_slice(&(s.len() as u32).to_be_bytes());
                data.extend_from_slice(s.as_bytes());
            }
            return match raw.extended("posix-rename@openssh.com", data).await {
                Ok(Packet::Status(s)) if s.status_code == StatusCode::Ok => Ok(()),
                Ok(Packet::Status(s)) => Err(self.error("rename", to, SftpError::Status(s))),
                Ok(_) => Err(Error::internal(format!(
                    "rename: unexpected reply from {}'s SFTP server",
                    self.host
                ))),
                Err(e) => Err(self.error("rename", to, e)),
            };
        }
        // Plain SFTP rename refuses an existing target: remove it first
        // (not atomic; only servers without posix-rename take this path).
        if let Err(SftpError::Status(s)) = raw.rename(from, to).await {
            if s.status_code == StatusCode::NoSuchFile {
                return Err(self.error("rename", from, SftpError::Status(s)));
            }
            let _ = raw.remove(to).await;
            raw.rename(from, to)
                .await
                .map_err(|e| self.error("rename", to, e))?;
        }
        Ok(())
    }

    /// Create `path` and any missing parents; existing directories are fine.
    pub async fn mkdir_all(&self, path: &str, mode: Option<u32>) -> Result<u64, Error> {
        let mut missing = Vec::new();
        let mut at = path.trim_end_matches('/').to_string();
        loop {
            match self.try_stat(&at, true).await? {
                Some(attrs) if kind_of(&attrs) == FileKind::Dir => break,
                Some(attrs) => {
                    return Err(Error::new(
                        ErrorKind::WrongType,
                        format!(
                            "mkdir: {}:{at} exists and is a {}, not a directory",
                            self.host,
                            kind_of(&attrs).as_str()
                        ),
                    ));
                }
                None => missing.push(at.clone()),
            }
            match at.rfind('/') {
                Some(0) | None => break,
                Some(i) => at.truncate(i),
            }
        }
        let made = missing.len() as u64;
        for dir in missing.into_iter().rev() {
            self.mkdir(&dir, mode).await.or_else(|e| {
                // Lost a race with another creator: fine.
                if e.kind == ErrorKind::IoError {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        }
        Ok(made)
    }

    /// Create one directory.
    pub async fn mkdir(&self, path: &str, mode: Option<u32>) -> Result<(), Error> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = mode;
        self.sftp
            .raw()
            .mkdir(path, attrs)
            .await
            .map(drop)
            .map_err(|e| self.error("mkdir", path, e))
    }

    /// Remove a file or symlink.
    pub async fn remove_file(&self, path: &str) -> Result<(), Error> {
        self.sftp
            .raw()
            .remove(path)
            .await
            .map(drop)
            .map_err(|e| self.error("remove", path, e))
    }

    /// Remove an empty directory.
    pub async fn remove_dir(&self, path: &str) -> Result<(), Error> {
        self.sftp
            .raw()
            .rmdir(path)
            .await
            .map(drop)
            .map_err(|e| self.error("remove", path, e))
    }

    /// Remove `path` and, when it is a directory, everything in it
    /// (symlinks are removed, never followed). Returns (files, dirs).
    ///
    /// A tree deeper than [`MAX_DEPTH`] is refused before anything goes:
    /// its depth may be a loop (a bind mount of a parent), and removing
    /// through one removes what it leads to.
    pub async fn remove_tree(&self, path: &str) -> Result<(u64, u64), Error> {
        let walk = self.walk_reporting(path, usize::MAX).await?;
        let mut unlink: Vec<&str> = Vec::new();
        for skipped in &walk.left_out {
            match skipped {
                Skipped::NotEntered {
                    rel,
                    why: NotEntered::TooDeep,
                } => {
                    return Err(Error::new(
                        ErrorKind::IoError,
                        format!(
                            "remove: {host}:{path} goes deeper than {MAX_DEPTH} directory levels (to `{rel}`), which may be a loop such as a bind mount; nothing was removed. Remove {host}:{deep} first if it is real",
                            host = self.host,
                            deep = join(path, rel),
                        ),
                    ));
                }
                // A link the server listed as a directory: unlinking it
                // leaves what it leads to alone.
                Skipped::NotEntered {
                    rel,
                    why: NotEntered::Loop { .. },
                } => unlink.push(rel),
                Skipped::Suspect(_) => {}
            }
        }
        let mut files = 0;
        let mut removals = FuturesUnordered::new();
        let mut dirs = Vec::new();
        let listed = walk
            .entries
            .iter()
            .map(|(rel, attrs)| (rel.as_str(), kind_of(attrs)));
        let links = unlink.into_iter().map(|rel| (rel, FileKind::Symlink));
        for (rel, kind) in listed.chain(links) {
            let full = join(path, rel);
            if kind == FileKind::Dir {
                dirs.push(full);
            } else {
                files += 1;
                removals.push(async move { self.remove_file(&full).await });
                if removals.len() >= PIPELINE_DEPTH
                    && let Some(result) = removals.next().await
                {
                    result?;
                }
            }
        }
        while let Some(result) = removals.next().await {
            result?;
        }
        // Deepest first.
        dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
        for dir in &dirs {
            self.remove_dir(dir).await?;
        }
        self.remove_dir(path).await?;
        Ok((files, dirs.len() as u64 + 1))
    }

    /// Set mode and/or mtime on a path.
    pub async fn set_times_mode(
        &self,
        path: &str,
        mode: Option<u32>,
        mtime: Option<u32>,
    ) -> Result<(), Error> {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = mode;
        if let Some(mtime) = mtime {
            attrs.atime = Some(mtime);
            attrs.mtime = Some(mtime);
        }
        self.sftp
            .raw()
            .setstat(path, attrs)
            .await
            .map(drop)
            .map_err(|e| self.error("setstat", path, e))
    }
}

/// One read request, remembering where it was for.
async fn read_at(
    raw: &russh_sftp::client::RawSftpSession,
    handle: &str,
    at: u64,
    want: u64,
) -> (u64, u64, Result<russh_sftp::protocol::Data, SftpError>) {
    (at, want, raw.read(handle, at, want as u32).await)
}

/// What kind of file the attributes describe.
pub fn kind_of(attrs: &FileAttributes) -> FileKind {
    match attrs.permissions.map(|p| p & 0o170000) {
        Some(0o040000) => FileKind::Dir,
        Some(0o100000) => FileKind::File,
        Some(0o120000) => FileKind::Symlink,
        Some(_) => FileKind::Other,
        None => FileKind::Other,
    }
}

/// SFTP attributes as the protocol's [`FileStat`].
pub fn file_stat(path: String, attrs: &FileAttributes, link_target: Option<String>) -> FileStat {
    FileStat {
        path,
        kind: kind_of(attrs),
        size: attrs.size.unwrap_or(0),
        mode: attrs.permissions.unwrap_or(0) & 0o7777,
        mtime: attrs.mtime.unwrap_or(0) as u64,
        uid: attrs.uid,
        gid: attrs.gid,
        link_target,
    }
}

/// `root` and a relative path, joined with `/`.
pub fn join(root: &str, rel: &str) -> String {
    if rel.is_empty() {
        root.to_string()
    } else if root.is_empty() {
        rel.to_string()
    } else if root.ends_with('/') {
        format!("{root}{rel}")
    } else {
        format!("{root}/{rel}")
    }
}

/// The directory holding `path` (`.` for a bare name).
pub fn parent(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

/// The last component of `path`.
pub fn file_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// A temporary name next to `path`, unique to this daemon and call.
pub fn temp_name(path: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = parent(path);
    let name = file_name(path);
    join(
        if dir == "." { "" } else { dir },
        &format!(".{name}.sshmcp-{}-{n}.tmp", std::process::id()),
    )
}

/// The name a transfer's partial file has next to `path`: fixed, so that
/// `resume` can find what an interrupted transfer left.
pub fn partial_name(path: &str) -> String {
    let dir = parent(path);
    let name = file_name(path);
    join(
        if dir == "." { "" } else { dir },
        &format!(".{name}.sshmcp-partial"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_and_join() {
        assert_eq!(parent("/a/b/c.txt"), "/a/b");
        assert_eq!(parent("/c.txt"), "/");
        assert_eq!(parent("c.txt"), ".");
        assert_eq!(parent("a/b/"), "a");
        assert_eq!(file_name("/a/b/c.txt"), "c.txt");
        assert_eq!(file_name("a/b/"), "b");
        assert_eq!(join("/a", "b/c"), "/a/b/c");
        assert_eq!(join("/", "b"), "/b");
        assert_eq!(join("/a", ""), "/a");
        assert_eq!(partial_name("/x/y.bin"), "/x/.y.bin.sshmcp-partial");
        assert_eq!(partial_name("y.bin"), ".y.bin.sshmcp-partial");
        assert!(temp_name("/x/y").starts_with("/x/.y.sshmcp-"));
    }

    #[test]
    fn listed_names_must_be_one_plain_component() {
        let mut file = FileAttributes::empty();
        file.permissions = Some(0o100644);
        let mut dir = FileAttributes::empty();
        dir.permissions = Some(0o040755);
        let untyped = FileAttributes::empty();
        assert_eq!(judge_name("notes.txt", &file), Verdict::Plain);
        assert_eq!(judge_name("..hidden", &file), Verdict::Plain);
        assert_eq!(judge_name(".", &dir), Verdict::SelfOrParent);
        assert_eq!(judge_name("..", &untyped), Verdict::SelfOrParent);
        for name in ["", "../../x", "/tmp/x", "a/b", "nul\0x"] {
            assert!(
                matches!(judge_name(name, &file), Verdict::Suspect(_)),
                "{name:?}"
            );
        }
        assert!(matches!(judge_name("..", &file), Verdict::Suspect(_)));
        let shown = SuspectName {
            dir: "sub".into(),
            name: "a\0b".into(),
            why: "contains NUL",
        }
        .to_string();
        assert_eq!(
            shown,
            "`a\\0b` in `sub`: the server sent a suspect name (contains NUL); skipped"
        );
    }
}
