//! Jobs: commands the daemon runs on after the call that started them has
//! returned (`exec` with `background`, or `on_timeout: "background"`).
//!
//! A job belongs to the daemon, not to the client that started it: its
//! runner task owns the session channel, keeps each stream's output in a
//! bounded spool on disk (past `[jobs] spool_bytes` the oldest part goes,
//! and a read from before it says so; see [`spool`]), and any client of the daemon's user can
//! page its output by offset, wait for more, or signal it. A finished job
//! stays readable for `[jobs] retention_secs`.
//!
//! A detached job (`detach`) runs on the host under `setsid` with its output
//! spooled there; its runner here only watches and pulls the output into
//! the same spool, so both kinds read alike (see [`detached`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use russh::{ChannelMsg, Sig};
use sshmcp_proto::{
    Error, ErrorKind, ExecOutput, JobInfo, JobKind, JobOutput, JobOutputRequest, JobResult,
    JobState, OutputStream,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::JobsSection;
use crate::output::Kept;
use crate::pool::Host;
use crate::state::Daemon;
use crate::sudo::{self, Conversation};

mod detached;
mod spool;
mod work;

use spool::Spool;

pub use detached::state_dir;
pub use work::Work;

/// How long a signalled job gets to end before `job_signal` answers.
const SIGNAL_WAIT: Duration = Duration::from_secs(2);

/// Longest command line kept for `jobs`.
const COMMAND_SHOWN: usize = 200;

/// Every job of the daemon.
pub struct Jobs {
    table: Mutex<BTreeMap<u64, Arc<Job>>>,
    next: AtomicU64,
    /// Distinguishes this daemon's ids from an earlier one's.
    prefix: String,
    settings: Mutex<JobsSection>,
    /// Told the host's alias when a job ends: what it did on the host is
    /// news to the response cache.
    on_end: Arc<dyn Fn(&str) + Send + Sync>,
    /// Records of detached jobs, kept across restarts.
    store: detached::Store,
    /// Where jobs' output is spooled, when on disk.
    spools: Option<std::path::PathBuf>,
}

/// One job.
pub struct Job {
    pub id: String,
    pub host: String,
    kind: JobKind,
    command: String,
    started_unix: u64,
    started: Instant,
    inner: Mutex<Inner>,
    /// Moves whenever output arrives or the state changes.
    changed: watch::Sender<u64>,
    signals: mpsc::Sender<Sig>,
    on_end: Arc<dyn Fn(&str) + Send + Sync>,
    /// The exchange with sudo when the command runs through it.
    sudo: Option<Arc<Conversation>>,
    /// The spool directory on the host, for a detached job.
    detached: Option<String>,
}

struct Inner {
    stdout: Spool,
    stderr: Spool,
    state: JobState,
    exit_code: Option<u32>,
    signal: Option<String>,
    ended: Option<Instant>,
    /// How a job of a `transfer` or `sync` ended.
    result: Option<JobResult>,
}

/// `state_dir/spool`, emptied: the jobs whose output an earlier daemon
/// spooled there ended with it (detached ones are read again from their
/// hosts). `None`, and spools in memory, when it cannot be made.
fn spool_dir(state_dir: &std::path::Path) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = state_dir.join("spool");
    let _ = std::fs::remove_dir_all(&dir);
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
    {
        Ok(()) => Some(dir),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), "cannot make the job spool directory, spooling in memory: {e}");
            None
        }
    }
}

impl Jobs {
    /// The daemon's jobs, with the records of detached ones kept in
    /// `state_dir` (none kept when `None`).
    pub fn new(
        settings: &JobsSection,
        state_dir: Option<&std::path::Path>,
        on_end: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Self {
        // Random, so that ids differ between this daemon and an earlier one
        // (whose detached jobs it may find again), and between daemons
        // sharing a remote account (detached spools are named by id).
        let mut seed = [0u8; 4];
        if getrandom::fill(&mut seed).is_err() {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos() ^ d.as_secs() as u32);
            seed = (nanos ^ std::process::id().rotate_left(16)).to_le_bytes();
        }
        let prefix = format!("{:08x}", u32::from_le_bytes(seed));
        let store = detached::Store::open(state_dir);
        // Should a restored job share the prefix, go on past its number.
        let next = store
            .records()
            .iter()
            .filter_map(|r| {
                r.id.strip_prefix(&format!("j{prefix}-"))?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .map_or(1, |n| n + 1);
        Jobs {
            table: Mutex::new(BTreeMap::new()),
            next: AtomicU64::new(next),
            prefix,
            settings: Mutex::new(settings.clone()),
            on_end,
            store,
            spools: state_dir.and_then(spool_dir),
        }
    }

    /// The limits refuse one more running job on `alias`.
    fn check_limits(&self, settings: &JobsSection, alias: &str) -> Result<(), Error> {
        let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let running = table.values().filter(|j| j.is_running());
        let (all, here) = running.fold((0u32, 0u32), |(all, here), j| {
            (all + 1, here + u32::from(j.host == alias))
        });
        if all >= settings.max_running || here >= settings.max_per_host {
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "{here} jobs run on {alias} and {all} in all, at the limit of [jobs] \
                     max_per_host = {} / max_running = {}; wait for one to end (`jobs`), \
                     stop one with `job_signal`, or raise the limit",
                    settings.max_per_host, settings.max_running
                ),
            ));
        }
        Ok(())
    }

    /// Where job `id`'s `stream` is spooled, when on disk.
    fn spool_path(&self, id: &str, stream: &str) -> Option<std::path::PathBuf> {
        Some(self.spools.as_ref()?.join(format!("{id}.{stream}")))
    }

    /// A new job's table entry, running, with nothing written yet.
    #[allow(clippy::too_many_arguments)]
    fn insert(
        &self,
        key: u64,
        id: String,
        host: String,
        kind: JobKind,
        command: &str,
        started_unix: u64,
        signals: mpsc::Sender<Sig>,
        sudo: Option<Arc<Conversation>>,
        detached: Option<String>,
    ) -> Arc<Job> {
        let cap = self.settings().spool_bytes.0 as usize;
        let stdout = Spool::new(cap, self.spool_path(&id, "out"));
        let stderr = Spool::new(cap, self.spool_path(&id, "err"));
        let job = Arc::new(Job {
            id,
            host,
            kind,
            command: command.chars().take(COMMAND_SHOWN).collect(),
            started_unix,
            started: Instant::now(),
            inner: Mutex::new(Inner {
                stdout,
                stderr,
                state: JobState::Running,
                exit_code: None,
                signal: None,
                ended: None,
                result: None,
            }),
            changed: watch::Sender::new(0),
            signals,
            on_end: self.on_end.clone(),
            sudo,
            detached,
        });
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, job.clone());
        job
    }

    /// Run `line` on `host` as a detached job, fed `stdin`: it runs on the
    /// host under `setsid`, spooled there, and `daemon` watches it.
    pub async fn start_detached(
        &self,
        daemon: &Arc<Daemon>,
        host: &Arc<Host>,
        line: &str,
        stdin: &[u8],
    ) -> Result<Arc<Job>, Error> {
        let settings = self.settings();
        let alias = host.resolved.alias.clone();
        self.check_limits(&settings, &alias)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = format!("j{}-{n}", self.prefix);
        let segment = (settings.spool_bytes.0 / 2).max(1);
        let dir = detached::launch(host, &id, line, stdin, segment).await?;
        let record = detached::Record {
            id: id.clone(),
            host: alias,
            dir,
            command: line.chars().take(COMMAND_SHOWN).collect(),
            started_unix: detached::now_unix(),
        };
        self.store.add(record.clone());
        let job = self.watch(daemon, n, record);
        tracing::info!(job = %job.id, host = %job.host, "detached job started");
        Ok(job)
    }

    /// Find the detached jobs an earlier daemon started and watch them
    /// again: their output is read from the host's spool from the start.
    pub fn restore(&self, daemon: &Arc<Daemon>) {
        for record in self.store.records() {
            let key = self.next.fetch_add(1, Ordering::Relaxed);
            tracing::info!(job = %record.id, host = %record.host, "watching a detached job again");
            self.watch(daemon, key, record);
        }
    }

    fn watch(&self, daemon: &Arc<Daemon>, key: u64, record: detached::Record) -> Arc<Job> {
        let (signals, signal_rx) = mpsc::channel(4);
        let job = self.insert(
            key,
            record.id,
            record.host,
            JobKind::Command,
            &record.command,
            record.started_unix,
            signals,
            None,
            Some(record.dir.clone()),
        );
        tokio::spawn(detached::watch(
            job.clone(),
            record.dir,
            Arc::downgrade(daemon),
            signal_rx,
            daemon.shutdown.clone(),
        ));
        job
    }

    /// Some job runs on `alias` now.
    pub fn running_on(&self, alias: &str) -> bool {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|j| j.host == alias && j.is_running())
    }

    /// Apply a reloaded `[jobs]` to jobs started from now on.
    pub fn configure(&self, settings: &JobsSection) {
        *self.settings.lock().unwrap_or_else(|p| p.into_inner()) = settings.clone();
    }

    fn settings(&self) -> JobsSection {
        self.settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Run `line` on `host` as a job: open a session channel (waiting at
    /// most until `deadline`), start the command, and hand it to a runner
    /// task that outlives the caller. `shutdown` stops it with the daemon.
    /// With `sudo`, `line` is the conversation's and the runner talks to
    /// sudo. With `stop_after`, the runner stops the command once the job
    /// has run that long (TERM, then KILL), as a timeout stops a command.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        &self,
        host: &Arc<Host>,
        line: &str,
        stdin: Vec<u8>,
        sudo: Option<Arc<Conversation>>,
        deadline: Instant,
        stop_after: Option<Duration>,
        shutdown: &CancellationToken,
    ) -> Result<Arc<Job>, Error> {
        let settings = self.settings();
        let alias = host.resolved.alias.clone();
        self.check_limits(&settings, &alias)?;
        let (lease, channel) = host.session(deadline).await?;
        let (reader, writer) = channel.split();
        if let Err(e) = writer.exec(true, line.as_bytes()).await {
            let _ = writer.close().await;
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!("lost the connection to {alias} while starting the job: {e}"),
            ));
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (signals, signal_rx) = mpsc::channel(4);
        let shown = sudo.as_ref().map_or_else(|| line.to_owned(), |s| s.shown());
        let job = self.insert(
            n,
            format!("j{}-{n}", self.prefix),
            alias,
            JobKind::Command,
            &shown,
            detached::now_unix(),
            signals,
            sudo,
            None,
        );
        tokio::spawn(run(
            job.clone(),
            lease,
            reader,
            writer,
            stdin,
            signal_rx,
            stop_after,
            shutdown.clone(),
        ));
        tracing::info!(job = %job.id, host = %job.host, "job started");
        Ok(job)
    }

    /// The job called `id`.
    pub fn get(&self, id: &str) -> Result<Arc<Job>, Error> {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|j| j.id == id)
            .cloned()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    format!(
                        "no job {id}: it never existed here or ended more than [jobs] \
                         retention_secs ago; `jobs` lists the ones kept"
                    ),
                )
            })
    }

    /// Forget a job (an `exec` that finished before its timeout does not
    /// leave one behind).
    pub fn forget(&self, job: &Job) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, j| j.id != job.id);
    }

    /// The jobs, oldest first; one host's when `host` is given.
    pub fn list(&self, host: Option<&str>) -> Vec<JobInfo> {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|j| host.is_none_or(|h| j.host == h))
            .map(|j| j.info())
            .collect()
    }

    /// Drop finished jobs past their retention; answers the detached ones
    /// among them as (host, spool directory), for removing from the host.
    pub fn reap(&self) -> Vec<(String, String)> {
        let keep = Duration::from_secs(self.settings().retention_secs);
        let mut gone = Vec::new();
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, j| {
                let kept = j.ended().is_none_or(|t| t.elapsed() < keep);
                if !kept && let Some(dir) = &j.detached {
                    gone.push((j.id.clone(), j.host.clone(), dir.clone()));
                }
                kept
            });
        gone.into_iter()
            .map(|(id, host, dir)| {
                self.store.remove(&id);
                (host, dir)
            })
            .collect()
    }

    /// Remove the spools of reaped detached jobs from their hosts.
    pub fn clean_up(daemon: &Arc<Daemon>, spools: Vec<(String, String)>) {
        for (alias, dir) in spools {
            let Ok(host) = daemon.pool.host(&alias) else {
                continue;
            };
            tokio::spawn(async move { detached::remove(&host, &dir).await });
        }
    }
}

impl Job {
    fn ended(&self) -> Option<Instant> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).ended
    }

    pub fn is_running(&self) -> bool {
        self.state() == JobState::Running
    }

    pub fn state(&self) -> JobState {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).state
    }

    fn info(&self) -> JobInfo {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let runtime = inner.ended.unwrap_or_else(Instant::now) - self.started;
        JobInfo {
            detached: self.detached.is_some(),
            job_id: self.id.clone(),
            host: self.host.clone(),
            kind: self.kind,
            command: self.command.clone(),
            state: inner.state,
            started: self.started_unix,
            runtime_ms: runtime.as_millis() as u64,
            bytes: inner.stdout.total + inner.stderr.total,
            exit_code: inner.exit_code,
        }
    }

    /// A page of output from the asked offsets, waiting up to `wait` for
    /// something new when there is nothing past them and the job runs.
    pub async fn output(
        &self,
        req: &JobOutputRequest,
        max_bytes: u64,
        cancel: &CancellationToken,
    ) -> JobOutput {
        let (out_at, err_at) = (
            req.stdout_offset.unwrap_or(0),
            req.stderr_offset.unwrap_or(0),
        );
        let wait = Duration::from_secs(req.wait_secs.unwrap_or(0));
        let mut changed = self.changed.subscribe();
        let until = Instant::now() + wait;
        loop {
            let nothing_new = {
                let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                inner.state == JobState::Running
                    && inner.stdout.total <= out_at
                    && inner.stderr.total <= err_at
            };
            if !nothing_new {
                break;
            }
            tokio::select! {
                result = tokio::time::timeout_at(until.into(), changed.changed()) => {
                    if !matches!(result, Ok(Ok(()))) {
                        break;
                    }
                }
                () = cancel.cancelled() => break,
            }
        }
        let exec = req.as_exec.map(|max| Box::new(self.as_exec(max as usize)));
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let max = max_bytes as usize;
        let (stdout, stdout_offset, out_cut) = inner.stdout.read(out_at, max);
        let (stderr, stderr_offset, err_cut) = inner.stderr.read(err_at, max);
        JobOutput {
            job_id: self.id.clone(),
            state: inner.state,
            exit_code: inner.exit_code,
            signal: inner.signal.clone(),
            next_stdout_offset: stdout_offset + stdout.len() as u64,
            next_stderr_offset: stderr_offset + stderr.len() as u64,
            stdout,
            stderr,
            stdout_offset,
            stderr_offset,
            truncated: out_cut || err_cut,
            exec,
            result: inner.result.clone().map(Box::new),
        }
    }

    /// Both streams as the answer of an `exec` that waited for the job,
    /// up to `max` bytes each; its duration is the job's runtime.
    pub fn as_exec(&self, max: usize) -> ExecOutput {
        let [stdout, stderr] = self.kept(max);
        let (exit_code, signal) = self.ending();
        let runtime = self.ended().unwrap_or_else(Instant::now) - self.started;
        ExecOutput {
            duration_ms: runtime.as_millis() as u64,
            ..crate::output::exec_output(stdout, stderr, exit_code, signal, self.started)
        }
    }

    /// Both streams as an `exec` that waited for its job answers them, up
    /// to `max` bytes each.
    pub fn kept(&self, max: usize) -> [Kept; 2] {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        [&inner.stdout, &inner.stderr].map(|spool| {
            let (bytes, gap) = spool.head_tail(max);
            Kept {
                bytes,
                gap,
                total: spool.total,
            }
        })
    }

    /// How it ended: exit code and signal.
    pub fn ending(&self) -> (Option<u32>, Option<String>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.exit_code, inner.signal.clone())
    }

    /// Wait until the job ends or `until` passes; true when it ended.
    pub async fn wait_until(&self, until: Instant, cancel: &CancellationToken) -> bool {
        self.wait_sampling(until, cancel, |_, _| {}).await
    }

    /// As [`wait_until`](Self::wait_until), passing the newest bytes (at
    /// most 1 KiB) of each stream to `sample` whenever some arrive: an
    /// exec that waits for its job shows its output as it runs.
    pub async fn wait_sampling(
        &self,
        until: Instant,
        cancel: &CancellationToken,
        mut sample: impl FnMut(OutputStream, &[u8]),
    ) -> bool {
        const SAMPLE: u64 = 1024;
        let mut changed = self.changed.subscribe();
        let mut seen = [0u64; 2];
        loop {
            let news: Vec<(OutputStream, Vec<u8>)> = {
                let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
                let streams = [
                    (OutputStream::Stdout, &inner.stdout),
                    (OutputStream::Stderr, &inner.stderr),
                ];
                streams
                    .into_iter()
                    .zip(&mut seen)
                    .filter(|((_, spool), seen)| spool.total > **seen)
                    .map(|((stream, spool), seen)| {
                        let from = spool.total.saturating_sub(SAMPLE).max(*seen);
                        *seen = spool.total;
                        (stream, spool.read(from, SAMPLE as usize).0)
                    })
                    .collect()
            };
            for (stream, bytes) in news {
                sample(stream, &bytes);
            }
            if !self.is_running() {
                return true;
            }
            tokio::select! {
                result = tokio::time::timeout_at(until.into(), changed.changed()) => {
                    if !matches!(result, Ok(Ok(()))) {
                        return !self.is_running();
                    }
                }
                () = cancel.cancelled() => return false,
            }
        }
    }

    /// Send `signal` (INT, TERM, KILL, HUP) to the job's process group and
    /// wait a moment for it to end; answers the state then.
    pub async fn signal(&self, signal: &str) -> Result<JobState, Error> {
        if !self.is_running() {
            return Ok(self.state());
        }
        let sig = match signal {
            "INT" => Sig::INT,
            "TERM" => Sig::TERM,
            "KILL" => Sig::KILL,
            _ => Sig::HUP,
        };
        // A signal sent in the moment before sshd has the command's
        // process is lost: send it again while the job runs on.
        let until = Instant::now() + SIGNAL_WAIT;
        while Instant::now() < until {
            if self.signals.send(sig.clone()).await.is_err() {
                break;
            }
            let step = (Instant::now() + SIGNAL_WAIT / 4).min(until);
            if self.wait_until(step, &CancellationToken::new()).await {
                break;
            }
        }
        Ok(self.state())
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()));
        self.changed.send_modify(|v| *v += 1);
    }

    /// Bytes written so far to stdout and stderr.
    fn totals(&self) -> (u64, u64) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.stdout.total, inner.stderr.total)
    }

    /// Record how the job ended, and tell whoever waits.
    fn finish(&self, state: JobState, exit_code: Option<u32>, signal: Option<String>) {
        tracing::info!(job = %self.id, state = ?state, exit_code, "job ended");
        self.update(|i| {
            i.state = state;
            i.exit_code = exit_code;
            i.signal = signal;
            i.ended = Some(Instant::now());
        });
        (self.on_end)(&self.host);
    }
}

/// The runner: feed stdin, spool output, pass signals on, and record how
/// the command ended. Owns the channel and its pool lease until then.
#[allow(clippy::too_many_arguments)]
async fn run(
    job: Arc<Job>,
    lease: crate::pool::Lease,
    mut reader: russh::ChannelReadHalf,
    writer: russh::ChannelWriteHalf<russh::client::Msg>,
    stdin: Vec<u8>,
    mut signals: mpsc::Receiver<Sig>,
    stop_after: Option<Duration>,
    shutdown: CancellationToken,
) {
    let feeder = sudo::feed(job.sudo.as_deref(), &writer, &stdin);
    tokio::pin!(feeder);
    let mut feeding = true;
    // TERM once the job has run `stop_after` (its runtime, as `jobs`
    // counts it), KILL a grace period later, as a timeout does.
    let mut stopping = stop_after.map(|after| (job.started + after, Sig::TERM));
    let (mut exit_code, mut signal) = (None, None);
    loop {
        tokio::select! {
            result = &mut feeder, if feeding => {
                feeding = false;
                if let Err(e) = result {
                    tracing::debug!(job = %job.id, "stdin not fully delivered: {e}");
                }
            }
            msg = sudo::receive(job.sudo.as_deref(), &mut reader) => match msg {
                Some(ChannelMsg::Data { data }) => job.update(|i| i.stdout.push(&data)),
                Some(ChannelMsg::ExtendedData { data, ext: 1 }) => job.update(|i| i.stderr.push(&data)),
                Some(ChannelMsg::ExitStatus { exit_status }) => exit_code = Some(exit_status),
                Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                    signal = Some(crate::command::signal_label(&signal_name));
                }
                Some(ChannelMsg::Close) | None => break,
                Some(_) => {}
            },
            Some(sig) = signals.recv() => {
                let _ = writer.signal(sig).await;
            }
            () = sleep_until(stopping.as_ref().map(|(at, _)| *at)) => {
                if let Some((_, sig)) = stopping.take() {
                    tracing::info!(job = %job.id, "job ran past stop_after_secs, stopping it ({sig:?})");
                    let _ = writer.signal(sig.clone()).await;
                    if matches!(sig, Sig::TERM) {
                        stopping = Some((Instant::now() + crate::command::SIGNAL_GRACE, Sig::KILL));
                    }
                }
            }
            () = shutdown.cancelled() => {
                let _ = writer.signal(Sig::TERM).await;
                break;
            }
        }
    }
    let _ = writer.close().await;
    drop(lease);
    let state = match (exit_code, &signal) {
        (_, Some(_)) => JobState::Killed,
        (Some(_), None) => JobState::Exited,
        (None, None) => JobState::Lost,
    };
    job.finish(state, exit_code, signal);
}

/// Sleep until `at`, or forever without one.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::Gap;

    use super::*;

    #[test]
    fn an_exec_answer_from_a_spool_keeps_head_and_tail() {
        let mut spool = Spool::new(100, None);
        spool.push(b"0123456789");
        assert_eq!(spool.head_tail(10), (b"0123456789".to_vec(), None));
        assert_eq!(
            spool.head_tail(4),
            (b"0189".to_vec(), Some(Gap { at: 2, bytes: 6 }))
        );
        // Once the spool has dropped the head, only the tail is left.
        let mut small = Spool::new(4, None);
        small.push(b"0123456789");
        assert_eq!(
            small.head_tail(4),
            (b"89".to_vec(), Some(Gap { at: 0, bytes: 8 }))
        );
    }

    #[test]
    fn a_spool_keeps_the_newest_bytes_and_says_what_was_dropped() {
        let mut spool = Spool::new(4, None);
        spool.push(b"abc");
        spool.push(b"def");
        assert_eq!(spool.total, 6);
        assert_eq!(spool.dropped(), 2);
        // From 0: the oldest kept byte is at 2, and the gap is reported.
        assert_eq!(spool.read(0, 10), (b"cdef".to_vec(), 2, true));
        assert_eq!(spool.read(4, 10), (b"ef".to_vec(), 4, false));
        assert_eq!(spool.read(4, 1), (b"e".to_vec(), 4, true));
        assert_eq!(spool.read(6, 10), (Vec::new(), 6, false));
        // Past the end: nothing, at the end.
        assert_eq!(spool.read(99, 10), (Vec::new(), 6, false));
    }
}
