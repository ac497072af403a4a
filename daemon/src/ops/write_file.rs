//! `write_file`: replace a remote file atomically (temporary file, fsync,
//! rename over the target), or append to it, cutting it back on failure.

use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sshmcp_proto::{Error, ErrorKind, FileKind, WriteFileRequest, WriteResult};

use super::{Context, Op};
use crate::files::on_sftp;
use crate::files::remote::{self, Remote, kind_of};

impl Op for WriteFileRequest {
    type Output = WriteResult;

    /// The request's bytes are already here; the pieces in flight copy
    /// them once more.
    fn reservation(&self, _max_frame: usize) -> u64 {
        self.data.len() as u64
    }

    async fn run(self, ctx: &Context<'_>) -> Result<WriteResult, Error> {
        let req = self;
        // Not retried: a write that reached the server must not run twice.
        on_sftp!(ctx.host()?, retry = false, |remote| write_on(&remote, &req))
    }
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
