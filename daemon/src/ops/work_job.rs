//! `transfer` and `sync` with `job_after_secs`: the operation starts as a
//! daemon job, and the call waits that long for it. One that ends sooner
//! is answered exactly as a plain call; one that runs on is answered with
//! its job, whose `job_output` carries its progress and, at the end, its
//! result.

use std::time::Duration;

use sshmcp_proto::{Error, ErrorKind, JobResult, JobStarted, Response};

use super::Context;
use crate::jobs::Work;

/// Run `work` as a job, waiting up to `after_secs` for it to end.
pub async fn run(ctx: &Context<'_>, work: Work, after_secs: u64) -> Result<Response, Error> {
    let daemon = ctx
        .daemon
        .arc()
        .ok_or_else(|| Error::internal("the daemon is shutting down"))?;
    let jobs = &ctx.daemon.jobs;
    let job = jobs.start_work(daemon, ctx.host()?.clone(), ctx.caller.clone(), work)?;
    let until = ctx.started + Duration::from_secs(after_secs);
    if after_secs > 0 && job.wait_until(until, ctx.cancel).await {
        let result = job.result();
        jobs.forget(&job);
        return match result {
            Some(JobResult::Transfer { done, .. }) => Ok(Response::Transfer(done)),
            Some(JobResult::Sync { done, .. }) => Ok(Response::Sync(done)),
            Some(JobResult::Failed(error)) => Err(error),
            None => Err(Error::internal("an operation's job ended without a result")),
        };
    }
    if ctx.cancel.is_cancelled() {
        let _ = job.signal("TERM").await;
        jobs.forget(&job);
        return Err(Error::new(
            ErrorKind::Cancelled,
            format!("{} on {} was cancelled", job.kind().as_str(), job.host),
        ));
    }
    let reason = format!(
        "runs on as job {id} (it outlives this call, not a daemon restart); job_output \
         {id} shows its progress and, once it ends, its result; job_signal stops it",
        id = job.id
    );
    Ok(Response::JobStarted(JobStarted {
        job_id: job.id.clone(),
        reason,
    }))
}
