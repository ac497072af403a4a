//! The one place every request passes through: limits, metrics and the
//! request log wrap each op alike, so ops stay plain.

use std::cell::Cell;
use std::time::{Duration, Instant};

use sshmcp_proto::{Error, ErrorKind, Reply, Request, Response};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;

use crate::ops;
use crate::ops::progress::Reporter;
use crate::state::Daemon;
use crate::stats::names;

/// Who sent a request, for logs.
#[derive(Debug, Clone)]
pub struct Caller {
    pub pid: Option<i32>,
    pub binary: String,
    pub mcp_client: Option<String>,
}

/// Run `request` to completion (or cancellation) and account for it.
pub async fn dispatch(
    daemon: &Daemon,
    caller: &Caller,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> Reply {
    let started = Instant::now();
    let op = request.op_name();
    let host = request.host().unwrap_or("-").to_string();
    let reply = run(daemon, request, cancel, progress).await;
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

async fn run(
    daemon: &Daemon,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> Reply {
    request.validate(daemon.config().daemon.max_frame)?;
    // Admin requests skip the limits so an overloaded daemon can still be
    // inspected.
    match request {
        Request::Status => return Ok(Response::Status(ops::status::status(daemon))),
        Request::Stats => return Ok(Response::Stats(ops::status::stats(daemon))),
        Request::Hosts => return Ok(Response::Hosts(ops::hosts::run(daemon))),
        Request::Drain { host } => return ops::warm::drain(daemon, &host).map(|()| Response::Ok),
        Request::Reload => return ops::reload::run(daemon).await.map(Response::Reloaded),
        _ => {}
    }
    // One queue deadline for the whole request: the daemon's limit, the
    // host's limit and the pool's first free slot share it, so a request
    // never waits more than queue_timeout_ms in all.
    let wait = daemon.config().queue_timeout();
    let queue_deadline = Instant::now() + wait;
    let _global = acquire(
        &daemon.inflight,
        queue_deadline,
        wait,
        "the daemon",
        "[limits] max_inflight",
    )
    .await?;
    let host = match request.host() {
        Some(alias) => Some(daemon.pool.host(alias)?),
        None => None,
    };
    let _per_host = match &host {
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
        .scope(
            Cell::new(Some(queue_deadline)),
            run_op(daemon, request, cancel, progress),
        )
        .await
}

/// The op itself, once admitted.
async fn run_op(
    daemon: &Daemon,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> Reply {
    match request {
        Request::Exec(exec) => {
            // Both streams may be kept in full, and the reply holds them
            // twice more on its way out (encoded, then in the socket's
            // write buffer): reserve all of it before running.
            let limit = exec
                .max_output_bytes
                .unwrap_or(sshmcp_proto::ExecRequest::DEFAULT_MAX_OUTPUT);
            let _memory = daemon.memory.admit(limit.saturating_mul(2 * 3))?;
            ops::exec::run(&daemon.pool, exec, daemon.config().daemon.max_frame, cancel)
                .await
                .map(Response::Exec)
        }
        Request::Warm { host } => ops::warm::warm(daemon, &host).await.map(|()| Response::Ok),
        Request::Status
        | Request::Stats
        | Request::Hosts
        | Request::Drain { .. }
        | Request::Reload => Err(Error::internal("admin request reached the limited path")),
        Request::Stat(req) => ops::files::stat(&daemon.pool, req)
            .await
            .map(Response::Stat),
        Request::ListDir(req) => ops::files::list_dir(&daemon.pool, req)
            .await
            .map(Response::ListDir),
        Request::ReadFile(req) => {
            // The bytes read, then twice more on the way out.
            let max_frame = daemon.config().daemon.max_frame;
            let most = req
                .length
                .unwrap_or(sshmcp_proto::ReadFileRequest::DEFAULT_MAX_READ)
                .min(max_frame as u64);
            let _memory = daemon.memory.admit(most.saturating_mul(3))?;
            ops::files::read_file(&daemon.pool, req, max_frame)
                .await
                .map(Response::ReadFile)
        }
        Request::WriteFile(req) => {
            // The request's bytes are already here; the pieces in flight
            // copy them once more.
            let _memory = daemon.memory.admit(req.data.len() as u64)?;
            ops::files::write_file(&daemon.pool, req)
                .await
                .map(Response::WriteFile)
        }
        Request::Mkdir(req) => ops::files::mkdir(&daemon.pool, req)
            .await
            .map(|()| Response::Ok),
        Request::Remove(req) => ops::files::remove(&daemon.pool, req)
            .await
            .map(Response::Remove),
        Request::Rename(req) => ops::files::rename(&daemon.pool, req)
            .await
            .map(|()| Response::Ok),
        Request::Transfer(req) => ops::transfer::run(daemon, req, cancel, progress)
            .await
            .map(Response::Transfer),
        Request::Sync(req) => ops::sync::run(daemon, req, cancel, progress)
            .await
            .map(Response::Sync),
    }
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
