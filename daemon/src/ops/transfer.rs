//! `transfer`: copy a file or (with `recursive`) a directory between this
//! machine and a host.
//!
//! Destinations: for a single file, an existing directory (or a path
//! ending in `/`) receives the file under its own name; otherwise the path
//! names the file. For a directory, the destination path becomes the copy
//! (created if missing, like `cp -r src dest` with a new `dest`).
//! Missing parent directories are created.

use std::path::Path;

use sshmcp_proto::{Direction, Error, ErrorKind, FileKind, TransferRequest, TransferResult};
use tokio_util::sync::CancellationToken;

use super::{Context, Op};
use crate::files::local;
use crate::files::policy::{DownloadTargets, LocalPolicy};
use crate::files::remote::{self, Remote};
use crate::files::transfer::{
    Engine, FileJob, Plan, TempMode, finish_dirs, make_dirs, remote_sha256,
};

impl Op for TransferRequest {
    type Output = TransferResult;

    async fn run(self, ctx: &Context<'_>) -> Result<TransferResult, Error> {
        transfer(ctx, self).await
    }
}

async fn transfer(ctx: &Context<'_>, req: TransferRequest) -> Result<TransferResult, Error> {
    let (cancel, started) = (ctx.cancel, ctx.started);
    let policy = ctx.daemon.policy();
    let local = policy.check(&req.local_path, "transfer")?;
    let engine = Engine::new(ctx.host()?, &ctx.daemon.memory, ctx.progress);
    let work = async {
        let plan = match req.direction {
            Direction::Upload => plan_upload(&policy, &engine, &req, &local).await?,
            Direction::Download => plan_download(&policy, &engine, &req, &local).await?,
        };
        let total: u64 = plan.files.iter().map(|f| f.size).sum();
        engine.expect(total, plan.files.len() as u64);
        let upload = req.direction == Direction::Upload;
        make_dirs(&engine, &plan, upload).await?;
        let moved = engine
            .run_jobs(
                &plan.files,
                upload,
                TempMode::Partial { resume: req.resume },
            )
            .await?;
        finish_dirs(&engine, &plan, upload).await;
        let mut notes = Vec::new();
        let verified = if req.verify {
            verify(&engine, &plan.files, cancel, &mut notes).await?
        } else {
            None
        };
        Ok::<_, Error>(TransferResult {
            files: plan.files.len() as u64,
            dirs: plan.dirs.len() as u64,
            bytes: moved.bytes,
            resumed_bytes: moved.resumed,
            skipped: plan.skipped,
            verified,
            notes,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    };
    let cancelled = format!(
        "transfer to/from {} was cancelled; partial files were removed",
        req.host
    );
    engine.unless_cancelled(work, cancel, cancelled).await
}

async fn plan_upload(
    policy: &LocalPolicy,
    engine: &Engine<'_>,
    req: &TransferRequest,
    local: &Path,
) -> Result<Plan, Error> {
    let meta = std::fs::metadata(local).map_err(|e| local::error("upload", local, &e))?;
    let sftp = engine.sftp().await?;
    let remote = Remote::new(&sftp, engine.alias);
    let mut plan = Plan::default();
    if meta.is_file() {
        let existing = remote.try_stat(&req.remote_path, true).await?;
        let into_dir = req.remote_path.ends_with('/')
            || existing.as_ref().map(remote::kind_of) == Some(FileKind::Dir);
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = if into_dir {
            remote::join(&req.remote_path, &name)
        } else {
            req.remote_path.clone()
        };
        let parent = remote::parent(&dest);
        if parent != "." && parent != "/" {
            remote.mkdir_all(parent, None).await?;
        }
        let e = local::entry(String::new(), &meta);
        plan.files.push(FileJob {
            local: local.to_path_buf(),
            remote: dest,
            size: e.size,
            mode: e.mode,
            mtime: e.mtime,
        });
        return Ok(plan);
    }
    if !meta.is_dir() {
        return Err(Error::new(
            ErrorKind::WrongType,
            format!(
                "upload: {} is not a regular file or directory",
                local.display()
            ),
        ));
    }
    if !req.recursive {
        return Err(Error::bad_request(format!(
            "upload: {} is a directory; pass recursive: true to copy it and everything in it",
            local.display()
        )));
    }
    let root = local.to_path_buf();
    let policy = policy.clone();
    let follow = req.follow_symlinks;
    let tree = tokio::task::spawn_blocking(move || local::walk(&root, follow, &policy, "upload"))
        .await
        .map_err(|e| Error::internal(format!("local walk failed: {e}")))??;
    plan.skipped.extend(
        tree.left_out
            .iter()
            .map(|(e, why)| why.note(&e.rel, e.kind == FileKind::Dir)),
    );
    remote.mkdir_all(&req.remote_path, None).await?;
    let root_entry = local::entry(String::new(), &meta);
    plan.dirs.push((
        req.remote_path.clone(),
        local.to_path_buf(),
        root_entry.mode,
        root_entry.mtime,
    ));
    for e in tree.entries {
        let src = local.join(&e.rel);
        let dst = remote::join(&req.remote_path, &e.rel);
        match e.kind {
            FileKind::Dir => plan.dirs.push((dst, src, e.mode, e.mtime)),
            FileKind::File => plan.files.push(FileJob {
                local: src,
                remote: dst,
                size: e.size,
                mode: e.mode,
                mtime: e.mtime,
            }),
            FileKind::Symlink => plan.skipped.push(format!(
                "{}: symlink, not copied (pass follow_symlinks: true to copy what it points to)",
                e.rel
            )),
            FileKind::Other => plan
                .skipped
                .push(format!("{}: not a regular file, not copied", e.rel)),
        }
    }
    Ok(plan)
}

async fn plan_download(
    policy: &LocalPolicy,
    engine: &Engine<'_>,
    req: &TransferRequest,
    local: &Path,
) -> Result<Plan, Error> {
    let sftp = engine.sftp().await?;
    let remote = Remote::new(&sftp, engine.alias);
    let attrs = remote.stat(&req.remote_path, true).await?;
    let mut plan = Plan::default();
    let kind = remote::kind_of(&attrs);
    if kind == FileKind::File {
        let into_dir = local.is_dir();
        let dest = if into_dir {
            local.join(remote::file_name(&req.remote_path))
        } else {
            local.to_path_buf()
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| local::error("download", parent, &e))?;
        }
        plan.files.push(FileJob {
            local: dest,
            remote: req.remote_path.clone(),
            size: attrs.size.unwrap_or(0),
            mode: attrs.permissions.unwrap_or(0o644) & 0o7777,
            mtime: attrs.mtime.unwrap_or(0) as u64,
        });
        return Ok(plan);
    }
    if kind != FileKind::Dir {
        return Err(Error::new(
            ErrorKind::WrongType,
            format!(
                "download: {}:{} is a {}, not a regular file or directory",
                req.host,
                req.remote_path,
                kind.as_str()
            ),
        ));
    }
    if !req.recursive {
        return Err(Error::bad_request(format!(
            "download: {}:{} is a directory; pass recursive: true to copy it and everything in it",
            req.host, req.remote_path
        )));
    }
    let walk = remote.walk_reporting(&req.remote_path, usize::MAX).await?;
    plan.skipped
        .extend(walk.left_out.iter().map(ToString::to_string));
    std::fs::create_dir_all(local).map_err(|e| local::error("download", local, &e))?;
    plan.dirs.push((
        req.remote_path.clone(),
        local.to_path_buf(),
        attrs.permissions.unwrap_or(0o755) & 0o7777,
        attrs.mtime.unwrap_or(0) as u64,
    ));
    let mut targets = DownloadTargets::new(policy, local);
    for (rel, mut attrs) in walk.entries {
        if targets.refused(&rel) {
            continue;
        }
        let src = remote::join(&req.remote_path, &rel);
        let mut kind = remote::kind_of(&attrs);
        if kind == FileKind::Symlink && req.follow_symlinks {
            if let Some(target) = remote.try_stat(&src, true).await? {
                attrs = target;
                kind = remote::kind_of(&attrs);
            }
            if kind == FileKind::Dir {
                plan.skipped.push(format!(
                    "{rel}: symlink to a directory, not entered (transfer it on its own)"
                ));
                continue;
            }
        }
        let mode = attrs.permissions.unwrap_or(0) & 0o7777;
        let mtime = attrs.mtime.unwrap_or(0) as u64;
        match kind {
            FileKind::Dir => {
                if let Some(dst) = targets.admit(&rel, true, &mut plan.skipped) {
                    plan.dirs.push((src, dst, mode, mtime));
                }
            }
            FileKind::File => {
                if let Some(dst) = targets.admit(&rel, false, &mut plan.skipped) {
                    plan.files.push(FileJob {
                        local: dst,
                        remote: src,
                        size: attrs.size.unwrap_or(0),
                        mode,
                        mtime,
                    });
                }
            }
            FileKind::Symlink => plan.skipped.push(format!(
                "{rel}: symlink, not copied (pass follow_symlinks: true to copy what it points to)"
            )),
            FileKind::Other => plan
                .skipped
                .push(format!("{rel}: not a regular file, not copied")),
        }
    }
    Ok(plan)
}

/// Compare SHA-256 of every file on both ends. `None` (with a note) when
/// the host has no `sha256sum`; an error naming the first file that differs.
async fn verify(
    engine: &Engine<'_>,
    files: &[FileJob],
    cancel: &CancellationToken,
    notes: &mut Vec<String>,
) -> Result<Option<bool>, Error> {
    let paths: Vec<String> = files.iter().map(|f| f.remote.clone()).collect();
    let host = engine.alias;
    let Some(remote_sums) = remote_sha256(engine.host, &paths, cancel).await? else {
        notes.push(format!(
            "not verified: {host} has no sha256sum command (install coreutils there to verify)"
        ));
        return Ok(None);
    };
    for job in files {
        let path = job.local.clone();
        let local_sum = tokio::task::spawn_blocking(move || local::sha256_file(&path))
            .await
            .map_err(|e| Error::internal(format!("hashing failed: {e}")))??;
        let remote_sum = remote_sums.get(&job.remote).cloned().unwrap_or_default();
        if local_sum != remote_sum {
            return Err(Error::new(
                ErrorKind::IoError,
                format!(
                    "verify: {} (sha256 {local_sum}) and {host}:{} (sha256 {remote_sum}) differ; transfer it again without resume",
                    job.local.display(),
                    job.remote
                ),
            ));
        }
    }
    notes.push(format!("{} files verified by SHA-256", files.len()));
    Ok(Some(true))
}
