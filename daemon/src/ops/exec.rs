//! `exec`: run a command on a host, as `ssh host 'command'` would; with
//! `background`, or `on_timeout: "background"` once it runs past its
//! timeout, the command runs on as a daemon job; with `sudo`, through sudo
//! (see `sudo.rs`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sshmcp_proto::{Error, ErrorKind, ExecOutput, ExecRequest, JobStarted, OnTimeout};

use super::{Context, Op};
use crate::command::{self, Command};
use crate::jobs::Job;
use crate::sudo::{Conversation, Place};

impl Op for ExecRequest {
    type Output = ExecOutput;

    /// Both streams may be kept in full, and the reply holds them twice
    /// more on its way out (encoded, then in the socket's write buffer).
    fn reservation(&self, max_frame: usize) -> u64 {
        max_output(self, max_frame).saturating_mul(2 * 3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<ExecOutput, Error> {
        // `Request::validate` has checked the arguments: the timeout is
        // within a day and the output cap fits one reply.
        let max_frame = ctx.daemon.config().daemon.max_frame;
        let timeout = Duration::from_secs(
            self.timeout_secs
                .unwrap_or(ExecRequest::DEFAULT_TIMEOUT_SECS),
        );
        if self.detach {
            return detached(ctx, self).await;
        }
        if self.background || self.on_timeout == OnTimeout::Background {
            return as_job(ctx, self, timeout, max_frame).await;
        }
        let sudo = conversation(ctx, &self)?;
        let command = Command {
            host: ctx.host()?,
            line: sudo
                .as_ref()
                .map_or(self.command.as_str(), Conversation::line),
            stdin: self.stdin.as_deref().unwrap_or_default(),
            timeout,
            max_output: max_output(&self, max_frame),
            started: ctx.started,
            progress: Some(ctx.progress),
            sudo: sudo.as_ref(),
        };
        command::run(command, ctx.cancel).await
    }
}

/// Start the command as a detached job and answer at once with its id.
async fn detached(ctx: &Context<'_>, req: ExecRequest) -> Result<ExecOutput, Error> {
    let daemon = ctx
        .daemon
        .arc()
        .ok_or_else(|| Error::internal("the daemon is shutting down"))?;
    let job = ctx
        .daemon
        .jobs
        .start_detached(
            &daemon,
            ctx.host()?,
            &req.command,
            req.stdin.as_deref().unwrap_or_default(),
        )
        .await?;
    let reason = format!(
        "started detached as job {} (it outlives lost connections and daemon restarts); read \
         its output with job_output, stop it with job_signal",
        job.id
    );
    Ok(output(ctx, &job, 0, Some(reason)))
}

/// Run the command as a job: answer at once (`background`), or when it
/// ends within the timeout (as a plain exec would), or at the timeout with
/// what it wrote so far and the job that carries on.
async fn as_job(
    ctx: &Context<'_>,
    req: ExecRequest,
    timeout: Duration,
    max_frame: usize,
) -> Result<ExecOutput, Error> {
    let host = ctx.host()?;
    let queue = ctx.daemon.config().queue_timeout();
    let sudo = conversation(ctx, &req)?.map(Arc::new);
    let job = ctx
        .daemon
        .jobs
        .start(
            host,
            sudo.as_deref()
                .map_or(req.command.as_str(), Conversation::line),
            req.stdin.clone().unwrap_or_default(),
            sudo.clone(),
            Instant::now() + queue,
            req.stop_after_secs.map(Duration::from_secs),
            &ctx.daemon.shutdown,
        )
        .await?;
    // A sudo that refuses fails this call, even a background one, rather
    // than leaving a job that failed for a reason its output hides.
    if let Some(sudo) = &sudo
        && let Err(e) = sudo.settle(ctx.started + timeout, ctx.cancel).await
    {
        let _ = job.signal("KILL").await;
        ctx.daemon.jobs.forget(&job);
        return Err(e);
    }
    let max = max_output(&req, max_frame) as usize;
    if req.background {
        let reason = format!(
            "started in the background as job {}; read its output with job_output, stop it \
             with job_signal",
            job.id
        );
        return Ok(output(ctx, &job, 0, Some(reason)));
    }
    let sample = |stream, bytes: &[u8]| ctx.progress.output(stream, bytes);
    if job
        .wait_sampling(ctx.started + timeout, ctx.cancel, sample)
        .await
    {
        let ended = output(ctx, &job, max, None);
        ctx.daemon.jobs.forget(&job);
        if ended.exit_code.is_none() && ended.signal.is_none() {
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!(
                    "the connection to {} ended before the command reported an exit status; \
                     the command may or may not have completed",
                    job.host
                ),
            ));
        }
        return Ok(ended);
    }
    if ctx.cancel.is_cancelled() {
        for signal in ["TERM", "KILL"] {
            if job.signal(signal).await? != sshmcp_proto::JobState::Running {
                break;
            }
        }
        ctx.daemon.jobs.forget(&job);
        return Err(Error::new(
            ErrorKind::Cancelled,
            format!(
                "command on {} was cancelled and stopped (TERM, then KILL)",
                job.host
            ),
        ));
    }
    let secs = timeout.as_secs();
    let reason = format!(
        "ran past timeout_secs={secs} and runs on as job {}; read the rest with job_output \
         (from the offsets after what is shown here), stop it with job_signal",
        job.id
    );
    Ok(output(ctx, &job, max, Some(reason)))
}

/// An exec answer from what `job` has written (up to `max` bytes a
/// stream), naming the job when it carries on.
fn output(ctx: &Context<'_>, job: &Job, max: usize, carries_on: Option<String>) -> ExecOutput {
    let [stdout, stderr] = job.kept(max);
    let (exit_code, signal) = job.ending();
    ExecOutput {
        job: carries_on.map(|reason| JobStarted {
            job_id: job.id.clone(),
            reason,
        }),
        ..crate::output::exec_output(stdout, stderr, exit_code, signal, ctx.started)
    }
}

/// The exchange with sudo, when `req` runs its command through it.
fn conversation(ctx: &Context<'_>, req: &ExecRequest) -> Result<Option<Conversation>, Error> {
    if !req.sudo {
        return Ok(None);
    }
    let alias = &ctx.host()?.resolved.alias;
    let config = ctx.daemon.config();
    ctx.daemon
        .sudo
        .conversation(
            &config.sudo,
            alias,
            &req.command,
            req.sudo_user.as_deref(),
            Place::Login,
        )
        .map(Some)
}

/// The bytes per stream `req` keeps, within what one reply frame carries.
fn max_output(req: &ExecRequest, max_frame: usize) -> u64 {
    req.max_output_bytes
        .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT)
        .min(sshmcp_proto::max_output_per_stream(max_frame))
}
