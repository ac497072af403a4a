//! Jobs that run an operation of the daemon rather than a command: a
//! `transfer` or `sync` sent with `job_after_secs` carries on as a job
//! once that has passed, so a call that outlives its client (an MCP task,
//! a shim that exits) is the daemon's to finish.
//!
//! The job's stdout is its progress, a line at most every second
//! (`12 of 40 files, 3.1 of 9.0 MB`); its `result` says how it ended.
//! `job_signal` cancels the operation, which then cleans up as a
//! cancelled call does (partial files removed).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use russh::Sig;
use sshmcp_proto::{
    DaemonFrame, Direction, Error, ErrorKind, JobKind, JobResult, JobState, SyncRequest,
    TransferRequest,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Job, Jobs, detached};
use crate::ops::{Caller, Context, Op};
use crate::pool::Host;
use crate::progress::Reporter;
use crate::state::Daemon;

/// Fewest seconds between two progress lines in the job's output.
const LINE_EVERY: Duration = Duration::from_secs(1);

/// An operation a job runs.
pub enum Work {
    Transfer(TransferRequest),
    Sync(SyncRequest),
}

impl Work {
    fn kind(&self) -> JobKind {
        match self {
            Work::Transfer(_) => JobKind::Transfer,
            Work::Sync(_) => JobKind::Sync,
        }
    }

    /// The operation as `jobs` shows it, in place of a command line.
    fn shown(&self) -> String {
        let arrow = |direction: Direction| match direction {
            Direction::Upload => "->",
            Direction::Download => "<-",
        };
        match self {
            Work::Transfer(req) => format!(
                "transfer {} {} {}:{}",
                req.local_path,
                arrow(req.direction),
                req.host,
                req.remote_path
            ),
            Work::Sync(req) => format!(
                "sync {} {} {}:{}{}",
                req.local_dir,
                arrow(req.direction),
                req.host,
                req.remote_dir,
                if req.dry_run { " (dry run)" } else { "" }
            ),
        }
    }

    /// Run the operation as a call of `ctx` would.
    async fn run(self, ctx: &Context<'_>) -> Result<JobResult, Error> {
        match self {
            Work::Transfer(request) => {
                let done = request.clone().run(ctx).await?;
                Ok(JobResult::Transfer { request, done })
            }
            Work::Sync(request) => {
                let done = request.clone().run(ctx).await?;
                Ok(JobResult::Sync { request, done })
            }
        }
    }
}

impl Jobs {
    /// Start `work` on `host` as a job for `caller`: it runs in a task of
    /// the daemon's, not of the call that started it.
    pub fn start_work(
        &self,
        daemon: Arc<Daemon>,
        host: Arc<Host>,
        caller: Caller,
        work: Work,
    ) -> Result<Arc<Job>, Error> {
        let settings = self.settings();
        let alias = host.resolved.alias.clone();
        self.check_limits(&settings, &alias)?;
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (signals, signal_rx) = mpsc::channel(4);
        let job = self.insert(
            n,
            format!("j{}-{n}", self.prefix),
            alias,
            work.kind(),
            &work.shown(),
            detached::now_unix(),
            signals,
            None,
            None,
        );
        tokio::spawn(run(job.clone(), daemon, host, caller, work, signal_rx));
        tracing::info!(job = %job.id, host = %job.host, "job started");
        Ok(job)
    }
}

impl Job {
    /// How the job's operation ended, once it has.
    pub fn result(&self) -> Option<JobResult> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .result
            .clone()
    }

    /// What the job runs.
    pub fn kind(&self) -> JobKind {
        self.kind
    }
}

/// The runner: the operation, its progress into the job's stdout, and
/// signals (or the daemon stopping) cancelling it.
async fn run(
    job: Arc<Job>,
    daemon: Arc<Daemon>,
    host: Arc<Host>,
    caller: Caller,
    work: Work,
    mut signals: mpsc::Receiver<Sig>,
) {
    let cancel = CancellationToken::new();
    let (outgoing, mut progress) = mpsc::channel(16);
    let reporter = Reporter::new(0, outgoing);
    let ctx = Context {
        daemon: &daemon,
        id: 0,
        caller: &caller,
        cancel: &cancel,
        progress: &reporter,
        started: Instant::now(),
        host: Some(host),
    };
    let running = work.run(&ctx);
    tokio::pin!(running);
    let mut stopped_by: Option<&'static str> = None;
    let mut last_line: Option<Instant> = None;
    let shutdown = daemon.shutdown.clone();
    let result = loop {
        tokio::select! {
            result = &mut running => break result,
            Some(frame) = progress.recv() => {
                if let DaemonFrame::Progress { progress, .. } = frame
                    && last_line.is_none_or(|t| t.elapsed() >= LINE_EVERY)
                {
                    last_line = Some(Instant::now());
                    let line = match progress.message {
                        Some(message) => format!("{message}\n"),
                        None => format!("{} bytes\n", progress.done),
                    };
                    job.update(|i| i.stdout.push(line.as_bytes()));
                }
            }
            Some(sig) = signals.recv() => {
                stopped_by.get_or_insert(signal_name(&sig));
                cancel.cancel();
            }
            () = shutdown.cancelled(), if !cancel.is_cancelled() => {
                stopped_by.get_or_insert("TERM");
                cancel.cancel();
            }
        }
    };
    let (state, exit_code, signal, result) = match result {
        Ok(result) => (JobState::Exited, Some(0), None, result),
        Err(error) if error.kind == ErrorKind::Cancelled && stopped_by.is_some() => (
            JobState::Killed,
            None,
            stopped_by.map(str::to_owned),
            JobResult::Failed(error),
        ),
        Err(error) => {
            let line = format!("failed: {}\n", error.message);
            job.update(|i| i.stderr.push(line.as_bytes()));
            (JobState::Exited, Some(1), None, JobResult::Failed(error))
        }
    };
    job.update(|i| i.result = Some(result));
    job.finish(state, exit_code, signal);
}

fn signal_name(sig: &Sig) -> &'static str {
    match sig {
        Sig::INT => "INT",
        Sig::KILL => "KILL",
        Sig::HUP => "HUP",
        _ => "TERM",
    }
}
