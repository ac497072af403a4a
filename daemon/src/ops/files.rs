//! The single-path file operations: stat, list_dir, read_file, write_file,
//! mkdir, remove, rename. Each runs on a shared SFTP session of the host's
//! pool; the read-only ones are retried once on a fresh session when the
//! first one turns out to be dead.

use std::time::Instant;

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sshmcp_proto::{
    DirListing, Error, ErrorKind, FileContent, FileKind, FileStat, ListDirRequest, MkdirRequest,
    ReadFileRequest, RemoveRequest, RemoveResult, RenameRequest, StatRequest, WriteFileRequest,
    WriteResult,
};

use crate::files::remote::{self, Remote, file_stat, kind_of};
use crate::pool::HostPool;
use crate::pool::sftp::SESSION_WAIT;

/// Run `$body` with `$remote` bound to a [`Remote`] on a fresh share of the
/// host's SFTP session; when it fails because the session died, run it once
/// more on a new one (only for operations that are safe to repeat).
macro_rules! on_sftp {
    ($pool:expr, $host:expr, retry = $retry:expr, |$remote:ident| $body:expr) => {{
        let deadline = Instant::now() + SESSION_WAIT;
        let mut tries = if $retry { 2 } else { 1 };
        loop {
            tries -= 1;
            let sftp = $pool.sftp($host, deadline).await?;
            let $remote = Remote::new(&sftp, $host);
            match $body.await {
                Err(e) if tries > 0 && session_died(&e) => {
                    tracing::info!(host = $host, "SFTP session died; retrying on a fresh one");
                    continue;
                }
                result => break result,
            }
        }
    }};
}

fn session_died(error: &Error) -> bool {
    matches!(error.kind, ErrorKind::Unreachable | ErrorKind::Timeout)
}

fn non_empty(what: &str, name: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::bad_request(format!(
            "{what}: `{name}` is empty; pass a remote path"
        )));
    }
    Ok(())
}

pub async fn stat(pool: &HostPool, req: StatRequest) -> Result<FileStat, Error> {
    non_empty("stat", "path", &req.path)?;
    on_sftp!(pool, &req.host, retry = true, |remote| async {
        let attrs = remote.stat(&req.path, req.follow_symlinks).await?;
        let link = if kind_of(&attrs) == FileKind::Symlink {
            remote.readlink(&req.path).await
        } else {
            None
        };
        Ok(file_stat(req.path.clone(), &attrs, link))
    })
}

pub async fn list_dir(pool: &HostPool, req: ListDirRequest) -> Result<DirListing, Error> {
    non_empty("list_dir", "path", &req.path)?;
    let max = req
        .max_entries
        .unwrap_or(ListDirRequest::DEFAULT_MAX_ENTRIES) as usize;
    if max == 0 {
        return Err(Error::bad_request(
            "list_dir: `max_entries` must be at least 1",
        ));
    }
    on_sftp!(pool, &req.host, retry = true, |remote| async {
        let (mut entries, truncated) = if req.recursive {
            remote.walk(&req.path, max).await?
        } else {
            let mut all = remote.read_dir(&req.path).await?;
            all.sort_by(|a, b| a.0.cmp(&b.0));
            let truncated = all.len() > max;
            all.truncate(max);
            (all, truncated)
        };
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(entries.len());
        for (rel, attrs) in entries {
            let link = if kind_of(&attrs) == FileKind::Symlink {
                remote.readlink(&remote::join(&req.path, &rel)).await
            } else {
                None
            };
            out.push(file_stat(rel, &attrs, link));
        }
        Ok(DirListing {
            path: req.path.clone(),
            entries: out,
            truncated,
        })
    })
}

pub async fn read_file(
    pool: &HostPool,
    req: ReadFileRequest,
    max_frame: usize,
) -> Result<FileContent, Error> {
    non_empty("read_file", "path", &req.path)?;
    let most = sshmcp_proto::max_read_per_reply(max_frame);
    let want = req
        .length
        .unwrap_or(ReadFileRequest::DEFAULT_MAX_READ)
        .min(most);
    on_sftp!(pool, &req.host, retry = true, |remote| async {
        let attrs = remote.stat(&req.path, true).await?;
        if kind_of(&attrs) != FileKind::File {
            return Err(Error::new(
                ErrorKind::WrongType,
                format!(
                    "read_file: {}:{} is a {}, not a regular file; use list_dir or stat",
                    req.host,
                    req.path,
                    kind_of(&attrs).as_str()
                ),
            ));
        }
        let handle = remote
            .open(
                "read_file",
                &req.path,
                OpenFlags::READ,
                FileAttributes::empty(),
            )
            .await?;
        let size = match remote.sftp.raw().fstat(handle.id.clone()).await {
            Ok(a) => a.attrs.size.unwrap_or(0),
            Err(e) => return Err(remote.error("read_file", &req.path, e)),
        };
        let mut data = Vec::with_capacity(want.min(size.saturating_sub(req.offset)) as usize);
        if req.offset < size {
            remote
                .read_range(&handle, &req.path, req.offset, want, |_, piece| {
                    data.extend_from_slice(&piece);
                    std::future::ready(Ok(()))
                })
                .await?;
        }
        let _ = handle.close().await;
        let end = req.offset + data.len() as u64;
        Ok(FileContent {
            path: req.path.clone(),
            offset: req.offset,
            size,
            truncated: end < size,
            data,
        })
    })
}

pub async fn write_file(pool: &HostPool, req: WriteFileRequest) -> Result<WriteResult, Error> {
    non_empty("write_file", "path", &req.path)?;
    if req.path.ends_with('/') {
        return Err(Error::bad_request(format!(
            "write_file: `{}` ends in `/`; name the file to write",
            req.path
        )));
    }
    if let Some(mode) = req.mode
        && mode > 0o7777
    {
        return Err(Error::bad_request(format!(
            "write_file: mode {mode:o} is not a permission mode; pass bits like 0644"
        )));
    }
    // Not retried: a write that reached the server must not run twice.
    on_sftp!(pool, &req.host, retry = false, |remote| write_on(
        &remote, &req
    ))
}

async fn write_on(remote: &Remote<'_>, req: &WriteFileRequest) -> Result<WriteResult, Error> {
    if req.create_dirs {
        let dir = remote::parent(&req.path);
        if dir != "." && dir != "/" {
            remote.mkdir_all(dir, None).await?;
        }
    }
    // Write through a symlink to its target, as `cat > link` would.
    let mut target = req.path.clone();
    let mut existing = remote.try_stat(&target, false).await?;
    if existing.as_ref().map(kind_of) == Some(FileKind::Symlink) {
        if let Ok(name) = remote.sftp.raw().realpath(target.clone()).await
            && let Some(real) = name.files.into_iter().next()
        {
            target = real.filename;
        }
        existing = remote.try_stat(&target, true).await?;
    }
    if let Some(attrs) = &existing
        && kind_of(attrs) != FileKind::File
    {
        return Err(Error::new(
            ErrorKind::WrongType,
            format!(
                "write_file: {}:{} is a {}; write_file only replaces regular files",
                remote.host,
                req.path,
                kind_of(attrs).as_str()
            ),
        ));
    }
    let created = existing.is_none();
    if req.append {
        return append(remote, req, &target, existing.and_then(|a| a.size)).await;
    }
    let mode = req
        .mode
        .or_else(|| {
            existing
                .as_ref()
                .and_then(|a| a.permissions)
                .map(|p| p & 0o7777)
        })
        .unwrap_or(0o644);
    let temp = remote::temp_name(&target);
    let mut attrs = FileAttributes::empty();
    attrs.permissions = Some(0o600);
    let handle = remote
        .open(
            "write_file",
            &temp,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::EXCLUDE,
            attrs,
        )
        .await
        .map_err(|e| in_dir_error(e, remote, &target))?;
    let written = async {
        let chunk = remote.sftp.write_len as usize;
        let pieces = req
            .data
            .chunks(chunk)
            .enumerate()
            .map(|(i, piece)| Ok(((i * chunk) as u64, piece.to_vec())));
        let n = remote
            .write_stream(
                &handle,
                &target,
                futures_util::stream::iter(pieces),
                &|_| {},
            )
            .await?;
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(mode);
        remote
            .sftp
            .raw()
            .fsetstat(handle.id.clone(), attrs)
            .await
            .map_err(|e| remote.error("write_file (set mode)", &target, e))?;
        if remote.sftp.fsync {
            remote
                .sftp
                .raw()
                .fsync(handle.id.clone())
                .await
                .map_err(|e| remote.error("write_file (fsync)", &target, e))?;
        }
        Ok::<u64, Error>(n)
    }
    .await;
    let closed = handle.close().await;
    let outcome = match (written, closed) {
        (Ok(n), Ok(())) => remote.rename_over(&temp, &target).await.map(|()| n),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(remote.write_error(&target, e).await),
    };
    match outcome {
        Ok(n) => Ok(WriteResult {
            path: req.path.clone(),
            bytes_written: n,
            created,
        }),
        Err(e) => {
            // The old file was never touched; drop the half-written copy.
            let _ = remote.sftp.raw().remove(temp).await;
            Err(e)
        }
    }
}

/// A temp file that cannot be created: say whether the directory is missing.
fn in_dir_error(error: Error, remote: &Remote<'_>, target: &str) -> Error {
    if error.kind == ErrorKind::NotFound {
        return Error::new(
            ErrorKind::NotFound,
            format!(
                "write_file: directory {}:{} does not exist; pass create_dirs: true or mkdir it first",
                remote.host,
                remote::parent(target)
            ),
        );
    }
    error
}

/// Append `req.data`; on failure cut the file back to its old length.
async fn append(
    remote: &Remote<'_>,
    req: &WriteFileRequest,
    target: &str,
    old_size: Option<u64>,
) -> Result<WriteResult, Error> {
    let mut attrs = FileAttributes::empty();
    attrs.permissions = Some(req.mode.unwrap_or(0o644));
    let handle = remote
        .open(
            "write_file (append)",
            target,
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::APPEND,
            attrs,
        )
        .await
        .map_err(|e| in_dir_error(e, remote, target))?;
    let base = old_size.unwrap_or(0);
    let chunk = remote.sftp.write_len as usize;
    let mut pieces = req.data.chunks(chunk).enumerate();
    // One write in flight at a time keeps appended pieces in order.
    let mut written = 0u64;
    let mut failure = None;
    for (i, piece) in pieces.by_ref() {
        let at = base + (i * chunk) as u64;
        if let Err(e) = remote
            .sftp
            .raw()
            .write(handle.id.clone(), at, piece.to_vec())
            .await
        {
            failure = Some(remote.write_error(target, e).await);
            break;
        }
        written += piece.len() as u64;
    }
    if failure.is_none()
        && let Some(mode) = req.mode
    {
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(mode);
        if let Err(e) = remote.sftp.raw().fsetstat(handle.id.clone(), attrs).await {
            failure = Some(remote.error("write_file (set mode)", target, e));
        }
    }
    if let Some(error) = failure {
        let mut cut = FileAttributes::empty();
        cut.size = Some(base);
        let _ = remote.sftp.raw().fsetstat(handle.id.clone(), cut).await;
        let _ = handle.close().await;
        return Err(error);
    }
    handle
        .close()
        .await
        .map_err(|e| remote.error("write_file (append)", target, e))?;
    Ok(WriteResult {
        path: req.path.clone(),
        bytes_written: written,
        created: old_size.is_none(),
    })
}

pub async fn mkdir(pool: &HostPool, req: MkdirRequest) -> Result<(), Error> {
    non_empty("mkdir", "path", &req.path)?;
    on_sftp!(pool, &req.host, retry = true, |remote| async {
        if req.parents {
            return remote.mkdir_all(&req.path, req.mode).await.map(drop);
        }
        match remote.mkdir(&req.path, req.mode).await {
            Ok(()) => Ok(()),
            Err(e) => match remote.try_stat(&req.path, false).await {
                Ok(Some(attrs)) => Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "mkdir: {}:{} already exists (a {}); pass parents: true to accept an existing directory",
                        req.host,
                        req.path,
                        kind_of(&attrs).as_str()
                    ),
                )),
                _ if e.kind == ErrorKind::NotFound => Err(Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "mkdir: the parent of {}:{} does not exist; pass parents: true to create it",
                        req.host, req.path
                    ),
                )),
                _ => Err(e),
            },
        }
    })
}

pub async fn remove(pool: &HostPool, req: RemoveRequest) -> Result<RemoveResult, Error> {
    non_empty("remove", "path", &req.path)?;
    let trimmed = req.path.trim_end_matches('/');
    if trimmed.is_empty() || trimmed == "." || trimmed == "~" {
        return Err(Error::bad_request(format!(
            "remove: refusing to remove `{}`; name what to remove below it",
            req.path
        )));
    }
    on_sftp!(pool, &req.host, retry = false, |remote| async {
        let attrs = remote.stat(&req.path, false).await?;
        if kind_of(&attrs) != FileKind::Dir {
            remote.remove_file(&req.path).await?;
            return Ok(RemoveResult {
                path: req.path.clone(),
                files: 1,
                dirs: 0,
            });
        }
        if !req.recursive {
            let entries = remote.read_dir(&req.path).await?;
            if !entries.is_empty() {
                return Err(Error::new(
                    ErrorKind::WrongType,
                    format!(
                        "remove: {}:{} is a directory with {} entries; pass recursive: true to remove it and everything in it",
                        req.host,
                        req.path,
                        entries.len()
                    ),
                ));
            }
            remote.remove_dir(&req.path).await?;
            return Ok(RemoveResult {
                path: req.path.clone(),
                files: 0,
                dirs: 1,
            });
        }
        let (files, dirs) = remote.remove_tree(&req.path).await?;
        Ok(RemoveResult {
            path: req.path.clone(),
            files,
            dirs,
        })
    })
}

pub async fn rename(pool: &HostPool, req: RenameRequest) -> Result<(), Error> {
    non_empty("rename", "from", &req.from)?;
    non_empty("rename", "to", &req.to)?;
    on_sftp!(pool, &req.host, retry = false, |remote| async {
        remote.stat(&req.from, false).await?;
        if let Some(attrs) = remote.try_stat(&req.to, false).await? {
            if !req.overwrite {
                return Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "rename: {}:{} already exists (a {}); pass overwrite: true to replace it",
                        req.host,
                        req.to,
                        kind_of(&attrs).as_str()
                    ),
                ));
            }
            return remote.rename_over(&req.from, &req.to).await;
        }
        remote
            .sftp
            .raw()
            .rename(req.from.clone(), req.to.clone())
            .await
            .map(drop)
            .map_err(|e| remote.error("rename", &req.to, e))
    })
}
