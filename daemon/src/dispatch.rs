//! The one place every request passes through: limits, metrics and the
//! request log wrap each op alike, so ops stay plain.

use std::cell::Cell;
use std::time::{Duration, Instant};

use sshmcp_proto::{Error, ErrorKind, Reply, Request, Response};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::ops::{self, Caller, Op};
use crate::progress::Reporter;
use crate::state::Daemon;
use crate::stats::names;

/// Run request `id` to completion (or cancellation) and account for it.
pub async fn dispatch(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> Reply {
    let started = Instant::now();
    let op = request.op_name();
    let host = request.host().unwrap_or("-").to_string();
    let reply = admit(daemon, caller, id, request, cancel, progress, started).await;
    let elapsed = started.elapsed();
    metrics::histogram!(names::OP_DURATION_US, "op" => op, "host" => host.clone())
        .record(elapsed.as_micros() as f64);
    match &reply {
        Ok(_) => {
            tracing::debug!(op, host, us = elapsed.as_micros() as u64, caller = %caller.binary, pid = ?caller.pid, mcp_client = ?caller.mcp_client, "ok")
        }
        Err(error) => {
            metrics::counter!(names::OP_ERRORS, "op" => op, "host" => host.clone()).increment(1);
            tracing::info!(op, host, us = elapsed.as_micros() as u64, caller = %caller.binary, pid = ?caller.pid, mcp_client = ?caller.mcp_client, kind = error.kind.as_str(), "failed");
        }
    }
    reply
}

/// Check the request, resolve its host, take the limits' slots and run it.
async fn admit(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
    started: Instant,
) -> Reply {
    request.validate(daemon.config().daemon.max_frame)?;
    let host = match request.host() {
        Some(alias) => Some(daemon.pool.host(alias)?),
        None => None,
    };
    let ctx = ops::Context {
        daemon,
        id,
        caller,
        cancel,
        progress,
        started,
        host,
    };
    // Admin requests skip the limits so an overloaded daemon can still be
    // inspected (their connection's own bound still applies).
    if request.is_admin() {
        return run(&ctx, request).await;
    }
    // One queue deadline for the whole request: the daemon's limit, the
    // host's limit and the pool's first free slot share it, so a request
    // never waits more than queue_timeout_ms in all.
    let wait = daemon.config().queue_timeout();
    let queue_deadline = started + wait;
    let _global = acquire(
        &daemon.inflight,
        queue_deadline,
        wait,
        "the daemon",
        "[limits] max_inflight",
    )
    .await?;
    let _per_host = match &ctx.host {
        Some(host) => Some(
            acquire(
                &host.inflight,
                queue_deadline,
                wait,
                &host.resolved.alias,
                "[limits] max_inflight_per_host",
            )
            .await?,
        ),
        None => None,
    };
    crate::pool::QUEUE_DEADLINE
        .scope(Cell::new(Some(queue_deadline)), run(&ctx, request))
        .await
}

/// The one match from request to op and from op output to response. What
/// an op logs carries the request's id and caller.
async fn run(ctx: &ops::Context<'_>, request: Request) -> Reply {
    let span = tracing::debug_span!("request", id = ctx.id, caller = %ctx.caller.binary);
    match_op(ctx, request).instrument(span).await
}

async fn match_op(ctx: &ops::Context<'_>, request: Request) -> Reply {
    match request {
        Request::Status => op(ctx, ops::Status).await.map(Response::Status),
        Request::Stats => op(ctx, ops::Stats).await.map(Response::Stats),
        Request::Hosts => op(ctx, ops::Hosts).await.map(Response::Hosts),
        Request::Reload => op(ctx, ops::Reload).await.map(Response::Reloaded),
        Request::Warm { .. } => op(ctx, ops::Warm).await.map(|()| Response::Ok),
        Request::Drain { .. } => op(ctx, ops::Drain).await.map(|()| Response::Ok),
        Request::Exec(req) => op(ctx, req).await.map(Response::Exec),
        Request::Stat(req) => op(ctx, req).await.map(Response::Stat),
        Request::ListDir(req) => op(ctx, req).await.map(Response::ListDir),
        Request::ReadFile(req) => op(ctx, req).await.map(Response::ReadFile),
        Request::WriteFile(req) => op(ctx, req).await.map(Response::WriteFile),
        Request::Mkdir(req) => op(ctx, req).await.map(|()| Response::Ok),
        Request::Remove(req) => op(ctx, req).await.map(Response::Remove),
        Request::Rename(req) => op(ctx, req).await.map(|()| Response::Ok),
        Request::Transfer(req) => op(ctx, req).await.map(Response::Transfer),
        Request::Sync(req) => op(ctx, req).await.map(Response::Sync),
        Request::Batch(_) | Request::Cache | Request::CacheClear { .. } => {
            Err(Error::bad_request("not built yet"))
        }
    }
}

/// Reserve what `op` declares under the memory cap, then run it.
async fn op<O: Op>(ctx: &ops::Context<'_>, op: O) -> Result<O::Output, Error> {
    let bytes = op.reservation(ctx.daemon.config().daemon.max_frame);
    let _memory = match bytes {
        0 => None,
        bytes => Some(ctx.daemon.memory.admit(bytes)?),
    };
    op.run(ctx).await
}

async fn acquire<'a>(
    semaphore: &'a Semaphore,
    deadline: Instant,
    wait: Duration,
    what: &str,
    knob: &str,
) -> Result<SemaphorePermit<'a>, Error> {
    match tokio::time::timeout_at(deadline.into(), semaphore.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Error::new(
            ErrorKind::Overloaded,
            format!(
                "{what} is at its request limit and no slot freed up within {}ms; retry shortly, \
                 or raise {knob}",
                wait.as_millis()
            ),
        )),
    }
}
