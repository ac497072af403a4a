//! The local side of transfers: walking trees, reading and writing files on
//! blocking threads (so disk waits never stall the runtime), and local
//! errors that name the path and what to do.

use std::fs::{File, FileTimes, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use sshmcp_proto::{Error, ErrorKind, FileKind};
use tokio::sync::mpsc;

use super::policy::{LocalPolicy, Refused};
use super::remote::{MAX_DEPTH, NotEntered};

/// One entry of a local tree.
#[derive(Debug, Clone)]
pub struct LocalEntry {
    /// Relative to the walked root, `/`-separated.
    pub rel: String,
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
}

/// A local I/O failure as a protocol error.
pub fn error(what: &str, path: &Path, e: &std::io::Error) -> Error {
    let shown = path.display();
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::new(
            ErrorKind::NotFound,
            format!("{what}: local path {shown} does not exist; check the path"),
        ),
        std::io::ErrorKind::PermissionDenied => Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "{what}: permission denied on local path {shown}; the daemon's user cannot do this there"
            ),
        ),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Error::new(
            ErrorKind::NoSpace,
            format!(
                "{what}: no space left for local path {shown}; free some space or pick another destination"
            ),
        ),
        std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory => Error::new(
            ErrorKind::WrongType,
            format!("{what}: local path {shown} has the wrong type ({e})"),
        ),
        _ => Error::new(
            ErrorKind::IoError,
            format!("{what}: local path {shown}: {e}"),
        ),
    }
}

/// Kind and attributes of `meta`.
pub fn entry(rel: String, meta: &std::fs::Metadata) -> LocalEntry {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        FileKind::Dir
    } else if ft.is_file() {
        FileKind::File
    } else if ft.is_symlink() {
        FileKind::Symlink
    } else {
        FileKind::Other
    };
    LocalEntry {
        rel,
        kind,
        size: meta.len(),
        mode: meta.mode() & 0o7777,
        mtime: meta.mtime().max(0) as u64,
    }
}

/// A local tree as [`walk`] found it: the entries it takes, and every
/// entry it left out, each with why (the policy refuses it, a symlink that
/// loops, a directory too deep).
#[derive(Debug, Default)]
pub struct LocalTree {
    /// What the walk takes: directories before their contents, sorted.
    pub entries: Vec<LocalEntry>,
    /// Every entry left out, with why: what the policy refuses, symlinks
    /// that loop, directories too deep. A directory left out was not
    /// entered: nothing under it was read or listed.
    pub left_out: Vec<(LocalEntry, LeftOut)>,
}

/// Why [`walk`] left an entry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    Refused(Refused),
    NotEntered(NotEntered),
}

impl LeftOut {
    /// The `skipped` entry for `rel`.
    pub fn note(&self, rel: &str, is_dir: bool) -> String {
        match self {
            LeftOut::Refused(why) => why.note(rel, is_dir),
            LeftOut::NotEntered(why) => why.note(rel),
        }
    }
}

/// A directory [`walk`] is to list.
struct Pending {
    rel: String,
    /// Where it resolves: the path the policy judges its entries by, at no
    /// symlink resolution per entry.
    resolved: PathBuf,
    /// It and the directories above it, for loop checks.
    inside: Vec<Ancestor>,
}

/// A directory [`walk`] is inside.
#[derive(Clone)]
struct Ancestor {
    /// Device and inode: the same directory, whatever path reached it.
    id: (u64, u64),
    rel: String,
}

fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Every entry under `root`, a directory the policy allowed, symlinks
/// followed only with `follow`. Each entry is judged by the policy where
/// it resolves, before it is entered or read: `root` may be `~`, and
/// `~/.ssh` must not come along. Symlinks not followed and special files
/// come back as such; callers report and skip them.
///
/// A followed symlink to a directory the walk is inside (`dir/loop ->
/// ..`) is left out, not entered: entering it would never end. Only
/// ancestors count: a second link to a directory elsewhere is no loop,
/// and is copied again as `cp -rL` does. A directory more than
/// [`MAX_DEPTH`] levels down is left out too. A loop with no symlink in
/// it (a bind mount of a parent) is an error: a sync that deleted the
/// copy of such a directory would delete through it.
pub fn walk(
    root: &Path,
    follow: bool,
    policy: &LocalPolicy,
    what: &str,
) -> Result<LocalTree, Error> {
    let mut tree = LocalTree::default();
    let resolved_root = root.canonicalize().map_err(|e| error(what, root, &e))?;
    let root_meta = std::fs::metadata(root).map_err(|e| error(what, root, &e))?;
    let mut stack = vec![Pending {
        rel: String::new(),
        resolved: resolved_root,
        inside: vec![Ancestor {
            id: identity(&root_meta),
            rel: String::new(),
        }],
    }];
    while let Some(Pending {
        rel,
        resolved: resolved_dir,
        inside,
    }) = stack.pop()
    {
        let dir = if rel.is_empty() {
            root.to_path_buf()
        } else {
            root.join(&rel)
        };
        let mut names = Vec::new();
        for item in std::fs::read_dir(&dir).map_err(|e| error(what, &dir, &e))? {
            let item = item.map_err(|e| error(what, &dir, &e))?;
            let Some(name) = item.file_name().to_str().map(str::to_string) else {
                return Err(Error::new(
                    ErrorKind::BadRequest,
                    format!(
                        "{what}: {} holds a name that is not UTF-8 ({:?}); rename it first",
                        dir.display(),
                        item.file_name()
                    ),
                ));
            };
            names.push(name);
        }
        names.sort();
        // How many levels below the top the entries are.
        let depth = inside.len();
        let mut subdirs = Vec::new();
        for name in names {
            let path = dir.join(&name);
            let mut resolved = resolved_dir.join(&name);
            let rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let mut meta = std::fs::symlink_metadata(&path).map_err(|e| error(what, &path, &e))?;
            let link = meta.file_type().is_symlink();
            if link && follow {
                resolved = path.canonicalize().map_err(|e| error(what, &path, &e))?;
                meta = std::fs::metadata(&path).map_err(|e| error(what, &path, &e))?;
            }
            let e = entry(rel.clone(), &meta);
            if let Some(why) = policy.refusal(&resolved) {
                tree.left_out.push((e, LeftOut::Refused(why)));
                continue;
            }
            if e.kind == FileKind::Dir {
                let id = identity(&meta);
                if let Some(again) = inside.iter().find(|a| a.id == id) {
                    if !link {
                        return Err(cycle(what, &path, root, &again.rel));
                    }
                    let why = NotEntered::Loop {
                        to: again.rel.clone(),
                    };
                    tree.left_out.push((e, LeftOut::NotEntered(why)));
                    continue;
                }
                if depth > MAX_DEPTH {
                    tree.left_out
                        .push((e, LeftOut::NotEntered(NotEntered::TooDeep)));
                    continue;
                }
                let mut below = inside.clone();
                below.push(Ancestor {
                    id,
                    rel: rel.clone(),
                });
                subdirs.push(Pending {
                    rel,
                    resolved,
                    inside: below,
                });
            }
            tree.entries.push(e);
        }
        // Depth first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(tree)
}

/// A directory that is one of its own ancestors with no symlink between.
fn cycle(what: &str, path: &Path, root: &Path, ancestor: &str) -> Error {
    let again = if ancestor.is_empty() {
        root.to_path_buf()
    } else {
        root.join(ancestor)
    };
    Error::new(
        ErrorKind::IoError,
        format!(
            "{what}: local directory {} is {} again (a bind mount?), so the tree never ends; unmount it or pick a directory without it",
            path.display(),
            again.display()
        ),
    )
}

/// Stream `path` from `start` in `chunk`-byte pieces on a blocking
/// thread; the receiver yields (offset, bytes) in order, then ends.
pub fn read_chunks(
    path: PathBuf,
    start: u64,
    chunk: usize,
    depth: usize,
) -> mpsc::Receiver<Result<(u64, Vec<u8>), Error>> {
    let (tx, rx) = mpsc::channel(depth);
    tokio::task::spawn_blocking(move || {
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                let _ = tx.blocking_send(Err(error("upload", &path, &e)));
                return;
            }
        };
        let mut offset = start;
        if start > 0 {
            use std::io::Seek;
            if let Err(e) = file.seek(std::io::SeekFrom::Start(start)) {
                let _ = tx.blocking_send(Err(error("upload", &path, &e)));
                return;
            }
        }
        loop {
            let mut buf = vec![0u8; chunk];
            let mut filled = 0;
            while filled < chunk {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(error("upload", &path, &e)));
                        return;
                    }
                }
            }
            if filled == 0 {
                return;
            }
            buf.truncate(filled);
            let len = filled as u64;
            if tx.blocking_send(Ok((offset, buf))).is_err() {
                return; // The transfer stopped.
            }
            offset += len;
            if filled < chunk {
                return;
            }
        }
    });
    rx
}

/// A local file being written on a blocking thread: pieces go in by
/// channel, the thread writes each at its offset.
pub struct Writer {
    tx: Option<mpsc::Sender<(u64, Vec<u8>)>>,
    done: tokio::task::JoinHandle<Result<File, Error>>,
}

impl Writer {
    /// Open `path` for writing: appended to from `start` when resuming,
    /// else created empty (mode 0600 until finished).
    pub fn open(path: PathBuf, start: u64, depth: usize) -> Result<Writer, Error> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(start == 0)
            .mode(0o600)
            .open(&path)
            .map_err(|e| error("download", &path, &e))?;
        if start > 0 {
            file.set_len(start)
                .map_err(|e| error("download", &path, &e))?;
        }
        let (tx, mut rx) = mpsc::channel::<(u64, Vec<u8>)>(depth);
        let done = tokio::task::spawn_blocking(move || {
            while let Some((offset, data)) = rx.blocking_recv() {
                file.write_all_at(&data, offset)
                    .map_err(|e| error("download", &path, &e))?;
            }
            Ok(file)
        });
        Ok(Writer { tx: Some(tx), done })
    }

    /// Queue `data` for `offset`; waits when the disk is behind.
    pub async fn write(&self, offset: u64, data: Vec<u8>) -> Result<(), Error> {
        match &self.tx {
            Some(tx) if tx.send((offset, data)).await.is_ok() => Ok(()),
            // The thread stopped: its result says why.
            _ => Err(Error::new(
                ErrorKind::IoError,
                "download: the local writer stopped early",
            )),
        }
    }

    /// Wait for every queued piece to be written; the file comes back.
    pub async fn finish(mut self) -> Result<File, Error> {
        self.tx.take();
        match (&mut self.done).await {
            Ok(result) => result,
            Err(e) => Err(Error::internal(format!("local writer thread failed: {e}"))),
        }
    }
}

/// Give a finished local file its mode and times.
pub fn finish_file(file: &File, path: &Path, mode: u32, mtime: u64) -> Result<(), Error> {
    let when = UNIX_EPOCH + Duration::from_secs(mtime);
    file.set_times(FileTimes::new().set_modified(when).set_accessed(when))
        .map_err(|e| error("download", path, &e))?;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| error("download", path, &e))
}

/// Set a local directory's mode and mtime.
pub fn finish_dir(path: &Path, mode: Option<u32>, mtime: Option<u64>) -> Result<(), Error> {
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| error("download", path, &e))?;
    }
    if let Some(mtime) = mtime {
        let when = UNIX_EPOCH + Duration::from_secs(mtime);
        let dir = File::open(path).map_err(|e| error("download", path, &e))?;
        dir.set_times(FileTimes::new().set_modified(when).set_accessed(when))
            .map_err(|e| error("download", path, &e))?;
    }
    Ok(())
}

/// SHA-256 of a local file, hex.
pub fn sha256_file(path: &Path) -> Result<String, Error> {
    use sha2::{Digest, Sha256};
    let mut file = File::open(path).map_err(|e| error("verify", path, &e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| error("verify", path, &e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}
