//! Moving file contents between this machine and a host: one file at a
//! time or many in parallel over the host's shared SFTP sessions.
//!
//! Every file lands under a temporary name next to its destination and is
//! renamed into place only when complete, with the source's mode and mtime.
//! A transfer's temporary name is fixed (`.NAME.sshmcp-partial`) so that a
//! later `resume` finds what a broken connection left; it is removed on
//! cancel and on errors that are not the connection's fault.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use russh_sftp::protocol::{FileAttributes, OpenFlags};
use sshmcp_proto::{Error, ErrorKind};
use tokio_util::sync::CancellationToken;

use super::local::{self, Writer};
use super::remote::{self, PIPELINE_DEPTH, Remote};
use crate::memory::Memory;
use crate::pool::Host;
use crate::pool::sftp::{SESSION_WAIT, Sftp};
use crate::progress::Reporter;

/// Files moved at once in a tree transfer or sync.
pub const PARALLEL_FILES: usize = 32;

/// One file to move.
#[derive(Debug, Clone)]
pub struct FileJob {
    pub local: PathBuf,
    pub remote: String,
    pub size: u64,
    pub mode: u32,
    pub mtime: u64,
}

/// How a file's temporary name is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TempMode {
    /// The fixed partial name; continue it when `resume` and it is there.
    Partial { resume: bool },
    /// A name unique to this call (sync: nothing to resume).
    Unique,
}

/// What moving one file did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Moved {
    pub bytes: u64,
    pub resumed: u64,
}

/// A temporary file that must go if the transfer is abandoned.
enum Temp {
    Local(PathBuf),
    /// A file on the host, with the session it is created through: a
    /// removal sent on that session is handled after the creating open,
    /// even when the open's reply has not come back yet.
    Remote(String, Sftp),
}

/// Shared state of one transfer or sync: counters for progress and the
/// temporary files in flight.
pub struct Engine<'a> {
    /// The host files move to or from.
    pub host: &'a Arc<Host>,
    /// Its alias, for messages.
    pub alias: &'a str,
    memory: &'a Arc<Memory>,
    progress: &'a Reporter,
    done: AtomicU64,
    total: AtomicU64,
    files_done: AtomicU64,
    files_total: AtomicU64,
    temps: Mutex<Vec<(u64, Temp)>>,
    next_temp: AtomicU64,
}

impl<'a> Engine<'a> {
    pub fn new(host: &'a Arc<Host>, memory: &'a Arc<Memory>, progress: &'a Reporter) -> Self {
        Engine {
            host,
            alias: host.resolved.alias.as_str(),
            memory,
            progress,
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            files_done: AtomicU64::new(0),
            files_total: AtomicU64::new(0),
            temps: Mutex::new(Vec::new()),
            next_temp: AtomicU64::new(0),
        }
    }

    /// A share of the host's SFTP session.
    pub async fn sftp(&self) -> Result<Sftp, Error> {
        self.host.sftp(Instant::now() + SESSION_WAIT).await
    }

    /// Run `work`; when the client cancels first, remove the temporary
    /// files in flight and answer `Cancelled` with `message`.
    pub async fn unless_cancelled<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, Error>>,
        cancel: &CancellationToken,
        message: String,
    ) -> Result<T, Error> {
        tokio::select! {
            result = work => result,
            () = cancel.cancelled() => {
                self.discard_temps().await;
                Err(Error::new(ErrorKind::Cancelled, message))
            }
        }
    }

    /// Bytes and files expected in all, for progress.
    pub fn expect(&self, bytes: u64, files: u64) {
        self.total.store(bytes, Ordering::Relaxed);
        self.files_total.store(files, Ordering::Relaxed);
        self.report(true);
    }

    fn advance(&self, bytes: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.report(false);
    }

    fn report(&self, now: bool) {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let message = || {
            format!(
                "{} of {} files, {} of {} bytes",
                self.files_done.load(Ordering::Relaxed),
                self.files_total.load(Ordering::Relaxed),
                done,
                total
            )
        };
        if now {
            self.progress.report_now(done, Some(total), message);
        } else {
            self.progress.report(done, Some(total), message);
        }
    }

    /// Note a temporary file for [`Self::discard_temps`], before the
    /// request that creates it is sent; the number releases it.
    fn hold(&self, temp: Temp) -> u64 {
        let id = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.temps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, temp));
        id
    }

    /// The temporary file `id`, no longer the engine's to discard; `None`
    /// when a cancel discarded it already.
    fn release(&self, id: u64) -> Option<Temp> {
        let mut temps = self.temps.lock().unwrap_or_else(|p| p.into_inner());
        let at = temps.iter().position(|(held, _)| *held == id)?;
        Some(temps.swap_remove(at).1)
    }

    /// Remove every temporary file still in flight (after a cancel).
    pub async fn discard_temps(&self) {
        let temps = std::mem::take(&mut *self.temps.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, temp) in temps {
            match temp {
                Temp::Local(path) => {
                    let _ = std::fs::remove_file(path);
                }
                Temp::Remote(path, sftp) => {
                    let remove = sftp.raw().remove(path);
                    let _ = tokio::time::timeout(Duration::from_secs(5), remove).await;
                }
            }
        }
    }

    /// Move `jobs` with up to [`PARALLEL_FILES`] at once; the first failure
    /// stops the rest. Returns the sum of what moved.
    pub async fn run_jobs(
        &self,
        jobs: &[FileJob],
        upload: bool,
        temp: TempMode,
    ) -> Result<Moved, Error> {
        let mut pending = jobs.iter();
        let mut running = FuturesUnordered::new();
        let mut sum = Moved::default();
        loop {
            while running.len() < PARALLEL_FILES
                && let Some(job) = pending.next()
            {
                running.push(self.move_file(job, upload, temp));
            }
            let Some(result) = running.next().await else {
                break;
            };
            let moved = result?;
            sum.bytes += moved.bytes;
            sum.resumed += moved.resumed;
        }
        Ok(sum)
    }

    async fn move_file(&self, job: &FileJob, upload: bool, temp: TempMode) -> Result<Moved, Error> {
        // A file's buffers: the pieces in flight plus those queued between
        // the disk thread and the session, at most.
        let buffers = (2 * PIPELINE_DEPTH as u64 * 64 * 1024).min(job.size + 64 * 1024);
        let _memory = self.memory.admit(buffers)?;
        if upload {
            self.upload_file(job, temp).await
        } else {
            self.download_file(job, temp).await
        }
    }

    /// Copy one local file to the host.
    pub async fn upload_file(&self, job: &FileJob, temp_mode: TempMode) -> Result<Moved, Error> {
        let sftp = self.sftp().await?;
        let remote = Remote::new(&sftp, self.alias);
        let temp = match temp_mode {
            TempMode::Partial { .. } => remote::partial_name(&job.remote),
            TempMode::Unique => remote::temp_name(&job.remote),
        };
        let mut start = 0;
        if temp_mode == (TempMode::Partial { resume: true })
            && let Some(attrs) = remote.try_stat(&temp, false).await?
            && remote::kind_of(&attrs) == sshmcp_proto::FileKind::File
            && attrs.size.unwrap_or(u64::MAX) <= job.size
        {
            start = attrs.size.unwrap_or(0);
        }
        let mut flags = OpenFlags::WRITE | OpenFlags::CREATE;
        if start == 0 {
            flags |= OpenFlags::TRUNCATE;
        }
        let mut attrs = FileAttributes::empty();
        attrs.permissions = Some(0o600);
        // Held before the open is sent: a cancel while it is in flight
        // still removes what it creates.
        let held = self.hold(Temp::Remote(temp.clone(), sftp.share()));
        let handle = match remote.open("upload", &temp, flags, attrs).await {
            Ok(handle) => handle,
            Err(e) => {
                self.release(held);
                return Err(e);
            }
        };
        self.advance(0);
        let mut chunks = local::read_chunks(
            job.local.clone(),
            start,
            sftp.write_len as usize,
            PIPELINE_DEPTH,
        );
        let source = futures_util::stream::poll_fn(move |cx| chunks.poll_recv(cx));
        let result = async {
            let bytes = remote
                .write_stream(&handle, &job.remote, source, &|n| self.advance(n))
                .await?;
            let mut attrs = FileAttributes::empty();
            attrs.permissions = Some(job.mode);
            attrs.atime = Some(job.mtime as u32);
            attrs.mtime = Some(job.mtime as u32);
            remote
                .sftp
                .raw()
                .fsetstat(handle.id.clone(), attrs)
                .await
                .map_err(|e| remote.error("upload (set mode and mtime)", &job.remote, e))?;
            Ok::<u64, Error>(bytes)
        }
        .await;
        let closed = handle.close().await;
        let result = match (result, closed) {
            (Ok(bytes), Ok(())) => remote.rename_over(&temp, &job.remote).await.map(|()| bytes),
            (Err(e), _) => Err(e),
            (Ok(_), Err(e)) => Err(remote.write_error(&job.remote, e).await),
        };
        let held = self.release(held);
        match result {
            Ok(bytes) => {
                self.files_done.fetch_add(1, Ordering::Relaxed);
                Ok(Moved {
                    bytes,
                    resumed: start,
                })
            }
            Err(e) => Err(self.failed(e, held, temp_mode, &job.remote).await),
        }
    }

    /// Copy one remote file to this machine.
    pub async fn download_file(&self, job: &FileJob, temp_mode: TempMode) -> Result<Moved, Error> {
        let sftp = self.sftp().await?;
        let remote = Remote::new(&sftp, self.alias);
        let temp = local_temp(&job.local, temp_mode);
        let mut start = 0;
        if temp_mode == (TempMode::Partial { resume: true })
            && let Ok(meta) = std::fs::symlink_metadata(&temp)
            && meta.is_file()
            && meta.len() <= job.size
        {
            start = meta.len();
        }
        let handle = remote
            .open(
                "download",
                &job.remote,
                OpenFlags::READ,
                FileAttributes::empty(),
            )
            .await?;
        let writer = Writer::open(temp.clone(), start, PIPELINE_DEPTH)?;
        let held = self.hold(Temp::Local(temp.clone()));
        self.advance(0);
        let read = remote
            .read_range(
                &handle,
                &job.remote,
                start,
                job.size.saturating_sub(start),
                |offset, data| {
                    self.advance(data.len() as u64);
                    writer.write(offset, data)
                },
            )
            .await;
        let _ = handle.close().await;
        let finished = writer.finish().await;
        let result = match (read, finished) {
            (Ok(bytes), Ok(file)) => local::finish_file(&file, &temp, job.mode, job.mtime)
                .and_then(|()| {
                    std::fs::rename(&temp, &job.local)
                        .map_err(|e| local::error("download", &job.local, &e))
                })
                .map(|()| bytes),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
        let held = self.release(held);
        match result {
            Ok(bytes) => {
                self.files_done.fetch_add(1, Ordering::Relaxed);
                Ok(Moved {
                    bytes,
                    resumed: start,
                })
            }
            Err(e) => Err(self.failed(e, held, temp_mode, &job.remote).await),
        }
    }

    /// Clean up after a failed file: a broken connection keeps the partial
    /// file for `resume`; anything else removes it.
    async fn failed(&self, error: Error, temp: Option<Temp>, mode: TempMode, shown: &str) -> Error {
        let connection = matches!(error.kind, ErrorKind::Unreachable | ErrorKind::Timeout);
        if connection && matches!(mode, TempMode::Partial { .. }) {
            return Error {
                message: format!(
                    "{}. The part already copied of {shown} is kept; run the same transfer with resume: true to continue it",
                    error.message
                ),
                ..error
            };
        }
        match temp {
            Some(Temp::Local(path)) => {
                let _ = std::fs::remove_file(path);
            }
            Some(Temp::Remote(path, sftp)) if !connection => {
                let remove = sftp.raw().remove(path);
                let _ = tokio::time::timeout(Duration::from_secs(5), remove).await;
            }
            Some(Temp::Remote(..)) | None => {}
        }
        error
    }
}

/// The temporary name for a local destination.
pub fn local_temp(dest: &Path, mode: TempMode) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let file = match mode {
        TempMode::Partial { .. } => format!(".{name}.sshmcp-partial"),
        TempMode::Unique => {
            use std::sync::atomic::AtomicU64;
            static NEXT: AtomicU64 = AtomicU64::new(0);
            format!(
                ".{name}.sshmcp-{}-{}.tmp",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            )
        }
    };
    dest.with_file_name(file)
}

/// SHA-256 of remote files by `sha256sum` on the host, in order; `None`
/// when the host has no `sha256sum`.
pub async fn remote_sha256(
    host: &Arc<Host>,
    paths: &[String],
    cancel: &CancellationToken,
) -> Result<Option<HashMap<String, String>>, Error> {
    let mut sums = HashMap::new();
    let mut batch: Vec<&String> = Vec::new();
    let mut len = 0;
    let mut batches = Vec::new();
    for path in paths {
        if len + path.len() > 32 * 1024 && !batch.is_empty() {
            batches.push(std::mem::take(&mut batch));
            len = 0;
        }
        len += path.len() + 3;
        batch.push(path);
    }
    if !batch.is_empty() {
        batches.push(batch);
    }
    for batch in batches {
        let mut command = String::from("command -v sha256sum >/dev/null || exit 127; sha256sum --");
        for path in &batch {
            command.push(' ');
            command.push_str(&shell_quote(path));
        }
        let out = crate::command::run(
            crate::command::Command {
                host,
                line: &command,
                stdin: &[],
                timeout: Duration::from_secs(3600),
                max_output: ((batch.len() * 200) as u64).max(4096),
                started: Instant::now(),
                progress: None,
                sudo: None,
            },
            cancel,
        )
        .await?;
        if out.exit_code == Some(127) {
            return Ok(None);
        }
        if out.exit_code != Some(0) {
            return Err(Error::new(
                ErrorKind::IoError,
                format!(
                    "verify: sha256sum on {} failed: {}",
                    host.resolved.alias,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            ));
        }
        let text = String::from_utf8_lossy(&out.stdout);
        for (line, path) in text.lines().zip(&batch) {
            let hex = line.trim_start_matches('\\');
            sums.insert((*path).clone(), hex.chars().take(64).collect());
        }
    }
    Ok(Some(sums))
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A planned tree copy.
#[derive(Default)]
pub struct Plan {
    /// Destination directories to create, parents first, with the source's
    /// mode and mtime to set at the end.
    pub dirs: Vec<(String, PathBuf, u32, u64)>,
    pub files: Vec<FileJob>,
    pub skipped: Vec<String>,
}

/// Create the destination directories, parents first.
pub async fn make_dirs(engine: &Engine<'_>, plan: &Plan, upload: bool) -> Result<(), Error> {
    if plan.dirs.is_empty() {
        return Ok(());
    }
    if upload {
        let sftp = engine.sftp().await?;
        let remote = Remote::new(&sftp, engine.alias);
        for (dst, ..) in &plan.dirs {
            if remote.try_stat(dst, true).await?.is_none() {
                remote.mkdir(dst, Some(0o700)).await?;
            }
        }
    } else {
        for (_, dst, ..) in &plan.dirs {
            std::fs::create_dir_all(dst).map_err(|e| local::error("download", dst, &e))?;
        }
    }
    Ok(())
}

/// Give destination directories their source's mode and mtime, deepest
/// first (creating files inside a directory changes its mtime).
pub async fn finish_dirs(engine: &Engine<'_>, plan: &Plan, upload: bool) {
    let mut dirs: Vec<_> = plan.dirs.iter().collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0.matches('/').count()));
    if upload {
        let Ok(sftp) = engine.sftp().await else {
            return;
        };
        let remote = Remote::new(&sftp, engine.alias);
        for (dst, _, mode, mtime) in dirs {
            let _ = remote
                .set_times_mode(dst, Some(*mode), Some(*mtime as u32))
                .await;
        }
    } else {
        for (_, dst, mode, mtime) in dirs {
            let _ = local::finish_dir(dst, Some(*mode), Some(*mtime));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_quotes_and_spaces() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn temp_names_sit_next_to_the_destination() {
        let p = local_temp(Path::new("/x/y.bin"), TempMode::Partial { resume: false });
        assert_eq!(p, Path::new("/x/.y.bin.sshmcp-partial"));
        let u = local_temp(Path::new("/x/y.bin"), TempMode::Unique);
        assert!(u.to_str().unwrap().starts_with("/x/.y.bin.sshmcp-"));
    }
}
