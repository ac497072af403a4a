//! `sync`: make a destination directory match a source directory, one way,
//! moving only what differs.
//!
//! Files differ when size or mtime (whole seconds) differ, or with
//! `checksum` when their SHA-256 differs. Missing directories are created,
//! changed files are replaced atomically (temp name + rename) with the
//! source's mode and mtime, and destination extras are deleted only with
//! `delete`. Symlinks and special files are reported and skipped. With
//! `dry_run` the plan comes back and nothing is touched.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use sshmcp_proto::{
    Direction, Error, ErrorKind, FileKind, SyncAction, SyncChange, SyncRequest, SyncResult,
};
use tokio_util::sync::CancellationToken;

use super::{Context, Op};
use crate::files::local;
use crate::files::policy::{DownloadTargets, LeftOutPaths, LocalPolicy};
use crate::files::remote::{self, Remote};
use crate::files::transfer::{
    Engine, FileJob, Plan, TempMode, finish_dirs, make_dirs, remote_sha256,
};
use std::sync::Arc;

use crate::pool::Host;

/// What one side holds at a relative path.
#[derive(Debug, Clone, Copy)]
struct Meta {
    kind: FileKind,
    size: u64,
    mode: u32,
    mtime: u64,
}

impl Meta {
    fn of(e: &local::LocalEntry) -> Meta {
        Meta {
            kind: e.kind,
            size: e.size,
            mode: e.mode,
            mtime: e.mtime,
        }
    }
}

impl Op for SyncRequest {
    type Output = SyncResult;

    async fn run(self, ctx: &Context<'_>) -> Result<SyncResult, Error> {
        let req = self;
        let policy = ctx.daemon.policy();
        let local_dir = policy.check(&req.local_dir, "sync")?;
        let engine = Engine::new(ctx.host()?, &ctx.daemon.memory, ctx.progress);
        let work = sync(&engine, &req, &local_dir, &policy, ctx.cancel, ctx.started);
        let cancelled = format!(
            "sync with {} was cancelled; files already replaced stay replaced, partial ones were removed",
            req.host
        );
        engine.unless_cancelled(work, ctx.cancel, cancelled).await
    }
}

async fn sync(
    engine: &Engine<'_>,
    req: &SyncRequest,
    local_dir: &Path,
    policy: &LocalPolicy,
    cancel: &CancellationToken,
    started: Instant,
) -> Result<SyncResult, Error> {
    let upload = req.direction == Direction::Upload;
    let sftp = engine.sftp().await?;
    let remote = Remote::new(&sftp, engine.alias);

    // Both listings, concurrently.
    let local_side = {
        let root = local_dir.to_path_buf();
        let policy = policy.clone();
        let must_exist = upload;
        tokio::task::spawn_blocking(move || list_local(&root, &policy, must_exist))
    };
    // Names the server listed that cannot be a path component: reported
    // in either direction, never used.
    let mut skipped = Vec::new();
    let remote_side = list_remote(&remote, &req.remote_dir, !upload, &mut skipped);
    let (local_side, remote_side) = tokio::join!(local_side, remote_side);
    let local_side =
        local_side.map_err(|e| Error::internal(format!("local listing failed: {e}")))??;
    let remote_side = remote_side?;
    // Local paths left out: an upload's the walk did not read (the policy
    // refuses them, or they loop or lie too deep), a download's
    // destinations the policy may not write. They are not compared, so
    // `delete` never takes their counterparts for extras.
    let mut left_out = LeftOutPaths::default();
    // An upload of `~` leaves `~/.ssh` home and says so. In a download's
    // destination an entry left out stays listed (it was not entered), for
    // the removal check below to keep it and say why.
    let local_side = local_side.map(|tree| {
        let mut listed: BTreeMap<String, Meta> = tree
            .entries
            .iter()
            .map(|e| (e.rel.clone(), Meta::of(e)))
            .collect();
        for (e, why) in tree.left_out {
            if upload {
                skipped.push(why.note(&e.rel, e.kind == FileKind::Dir));
                left_out.insert(e.rel);
            } else {
                listed.insert(e.rel.clone(), Meta::of(&e));
            }
        }
        listed
    });
    let (src, dst) = if upload {
        (local_side, remote_side)
    } else {
        (remote_side, local_side)
    };
    // Only the destination may be missing (the source was checked).
    let make_root = dst.is_none();
    let (mut src, dst) = (src.unwrap_or_default(), dst.unwrap_or_default());
    // A download checks each local path it would write before planning it:
    // a symlink in the local tree or a `.ssh` in the remote one must not
    // carry a write out of the directory or into a denied path.
    if !upload {
        let mut targets = DownloadTargets::new(policy, local_dir);
        src.retain(|rel, s| match s.kind {
            FileKind::Dir | FileKind::File => targets
                .admit(rel, s.kind == FileKind::Dir, &mut skipped)
                .is_some(),
            _ => !targets.refused(rel),
        });
        left_out = targets.into_refused();
    }
    let (src, dst) = (&src, &dst);

    let mut result = SyncResult {
        dry_run: req.dry_run,
        changes: Vec::new(),
        changes_truncated: false,
        created: 0,
        updated: 0,
        deleted: 0,
        dirs_created: 0,
        unchanged: 0,
        bytes: 0,
        skipped,
        duration_ms: 0,
    };
    let mut changes = Vec::new();
    if make_root {
        changes.push((SyncAction::Mkdir, String::new(), 0));
    }
    let mut deletes: Vec<(String, FileKind)> = Vec::new();
    let mut maybe_same = Vec::new();
    for (rel, s) in src {
        let d = dst.get(rel);
        match s.kind {
            FileKind::Dir => match d.map(|d| d.kind) {
                Some(FileKind::Dir) => {}
                None => changes.push((SyncAction::Mkdir, rel.clone(), 0)),
                Some(other) if req.delete => {
                    deletes.push((rel.clone(), other));
                    changes.push((SyncAction::Mkdir, rel.clone(), 0));
                }
                Some(other) => result.skipped.push(format!(
                    "{rel}: a directory in the source but a {} at the destination; pass delete: true to replace it",
                    other.as_str()
                )),
            },
            FileKind::File => match d {
                None => changes.push((SyncAction::Create, rel.clone(), s.size)),
                Some(d) if d.kind == FileKind::File => {
                    if d.size != s.size || (!req.checksum && d.mtime != s.mtime) {
                        changes.push((SyncAction::Update, rel.clone(), s.size));
                    } else if req.checksum {
                        maybe_same.push(rel.clone());
                    } else {
                        result.unchanged += 1;
                    }
                }
                Some(d) if req.delete => {
                    deletes.push((rel.clone(), d.kind));
                    changes.push((SyncAction::Create, rel.clone(), s.size));
                }
                Some(d) => result.skipped.push(format!(
                    "{rel}: a file in the source but a {} at the destination; pass delete: true to replace it",
                    d.kind.as_str()
                )),
            },
            FileKind::Symlink => result
                .skipped
                .push(format!("{rel}: symlink, not synced")),
            FileKind::Other => result
                .skipped
                .push(format!("{rel}: not a regular file, not synced")),
        }
    }
    if req.checksum && !maybe_same.is_empty() {
        let differ = checksum_differs(engine.host, req, local_dir, &maybe_same, cancel).await?;
        for rel in maybe_same {
            if differ.contains(&rel) {
                let size = src.get(&rel).map_or(0, |m| m.size);
                changes.push((SyncAction::Update, rel, size));
            } else {
                result.unchanged += 1;
            }
        }
    }
    if req.delete {
        for (rel, d) in dst {
            // A path left out is left as it is, not treated as an extra.
            if src.contains_key(rel) || left_out.contains(rel) {
                continue;
            }
            // Inside a directory that goes anyway: covered by it.
            if deletes
                .iter()
                .any(|(gone, kind)| *kind == FileKind::Dir && rel.starts_with(&format!("{gone}/")))
            {
                continue;
            }
            deletes.push((rel.clone(), d.kind));
        }
    }
    if !upload {
        // Removing is writing: nothing in or holding a denied path goes
        // (syncing into `~` must not empty `~/.ssh`).
        deletes.retain(|(rel, _)| {
            let Some(denied) = policy.denied_removal(&local_dir.join(rel)) else {
                return true;
            };
            result.skipped.push(format!(
                "{rel}: holds or is inside {}, which the daemon never writes for clients; not deleted",
                denied.display()
            ));
            changes.retain(|(_, changed, _)| changed != rel);
            false
        });
    }
    changes.sort_by(|a, b| a.1.cmp(&b.1));

    for (action, _, bytes) in &changes {
        match action {
            SyncAction::Mkdir => result.dirs_created += 1,
            SyncAction::Create => result.created += 1,
            SyncAction::Update => result.updated += 1,
            SyncAction::Delete => {}
        }
        result.bytes += bytes;
    }
    result.deleted = deletes.len() as u64;
    let listed = deletes
        .iter()
        .map(|(rel, _)| (SyncAction::Delete, rel.clone(), 0))
        .chain(changes.iter().cloned());
    for (action, path, bytes) in listed {
        if result.changes.len() >= SyncResult::MAX_LISTED_CHANGES {
            result.changes_truncated = true;
            break;
        }
        result.changes.push(SyncChange {
            action,
            // The synced directory itself.
            path: if path.is_empty() { ".".into() } else { path },
            bytes,
        });
    }
    if req.dry_run {
        result.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(result);
    }

    // Deletions first (they may clear the way for a type change), deepest
    // first.
    deletes.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.matches('/').count()));
    for (rel, kind) in &deletes {
        if upload {
            let path = remote::join(&req.remote_dir, rel);
            if *kind == FileKind::Dir {
                remote.remove_tree(&path).await?;
            } else {
                remote.remove_file(&path).await?;
            }
        } else {
            let path = local_dir.join(rel);
            let removed = if *kind == FileKind::Dir {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| local::error("sync (delete)", &path, &e))?;
        }
    }

    if make_root {
        if upload {
            remote.mkdir_all(&req.remote_dir, None).await?;
        } else {
            std::fs::create_dir_all(local_dir).map_err(|e| local::error("sync", local_dir, &e))?;
        }
    }
    let mut plan = Plan::default();
    for (action, rel, _) in &changes {
        let Some(s) = src.get(rel) else { continue };
        let local = local_dir.join(rel);
        let remote_path = remote::join(&req.remote_dir, rel);
        match action {
            SyncAction::Mkdir => plan.dirs.push((remote_path, local, s.mode, s.mtime)),
            SyncAction::Create | SyncAction::Update => plan.files.push(FileJob {
                local,
                remote: remote_path,
                size: s.size,
                mode: s.mode,
                mtime: s.mtime,
            }),
            SyncAction::Delete => {}
        }
    }
    drop(sftp);
    let total: u64 = plan.files.iter().map(|f| f.size).sum();
    engine.expect(total, plan.files.len() as u64);
    make_dirs(engine, &plan, upload).await?;
    engine
        .run_jobs(&plan.files, upload, TempMode::Unique)
        .await?;
    finish_dirs(engine, &plan, upload).await;
    result.duration_ms = started.elapsed().as_millis() as u64;
    Ok(result)
}

/// The local tree; `None` when the directory is missing and may be
/// created.
fn list_local(
    root: &Path,
    policy: &LocalPolicy,
    must_exist: bool,
) -> Result<Option<local::LocalTree>, Error> {
    match std::fs::metadata(root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::WrongType,
                format!("sync: local path {} is not a directory", root.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(None);
        }
        Err(e) => return Err(local::error("sync", root, &e)),
    }
    local::walk(root, false, policy, "sync").map(Some)
}

/// The remote tree by relative path; `None` when the directory is missing
/// and may be created.
async fn list_remote(
    remote: &Remote<'_>,
    root: &str,
    must_exist: bool,
    skipped: &mut Vec<String>,
) -> Result<Option<BTreeMap<String, Meta>>, Error> {
    match remote.try_stat(root, true).await? {
        Some(attrs) if remote::kind_of(&attrs) == FileKind::Dir => {}
        Some(attrs) => {
            return Err(Error::new(
                ErrorKind::WrongType,
                format!(
                    "sync: {}:{root} is a {}, not a directory",
                    remote.host,
                    remote::kind_of(&attrs).as_str()
                ),
            ));
        }
        None if must_exist => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "sync: {}:{root} does not exist; check the path with list_dir",
                    remote.host
                ),
            ));
        }
        None => return Ok(None),
    }
    let walk = remote.walk_reporting(root, usize::MAX).await?;
    skipped.extend(walk.left_out.iter().map(ToString::to_string));
    Ok(Some(
        walk.entries
            .into_iter()
            .map(|(rel, attrs)| {
                (
                    rel,
                    Meta {
                        kind: remote::kind_of(&attrs),
                        size: attrs.size.unwrap_or(0),
                        mode: attrs.permissions.unwrap_or(0) & 0o7777,
                        mtime: attrs.mtime.unwrap_or(0) as u64,
                    },
                )
            })
            .collect(),
    ))
}

/// Which of `rels` (same size at both ends) have different SHA-256.
async fn checksum_differs(
    host: &Arc<Host>,
    req: &SyncRequest,
    local_dir: &Path,
    rels: &[String],
    cancel: &CancellationToken,
) -> Result<std::collections::HashSet<String>, Error> {
    let paths: Vec<String> = rels
        .iter()
        .map(|r| remote::join(&req.remote_dir, r))
        .collect();
    let Some(remote_sums) = remote_sha256(host, &paths, cancel).await? else {
        return Err(Error::new(
            ErrorKind::IoError,
            format!(
                "sync: checksum needs sha256sum on {}, which it does not have; sync without checksum (size and mtime) instead",
                req.host
            ),
        ));
    };
    let locals: Vec<_> = rels.iter().map(|r| local_dir.join(r)).collect();
    let local_sums = tokio::task::spawn_blocking(move || {
        locals
            .iter()
            .map(|p| local::sha256_file(p))
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| Error::internal(format!("hashing failed: {e}")))??;
    let remote_by_rel: HashMap<&String, &String> = rels
        .iter()
        .zip(&paths)
        .filter_map(|(rel, p)| remote_sums.get(p).map(|s| (rel, s)))
        .collect();
    Ok(rels
        .iter()
        .zip(local_sums)
        .filter(|(rel, sum)| remote_by_rel.get(rel).map(|s| s.as_str()) != Some(sum.as_str()))
        .map(|(rel, _)| rel.clone())
        .collect())
}
