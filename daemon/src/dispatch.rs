//! The one place every request passes through: validation, rate and
//! concurrency limits, the response cache, memory admission, metrics, the
//! request log and the audit log wrap each op alike, so ops stay plain. A
//! batch is its calls, each passing through here as if sent alone.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use sshmcp_proto::{BatchRequest, Error, ErrorKind, Reply, Request, Response};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::audit::{Decision, DecisionSlot, Pending};
use crate::jobs::Work;
use crate::ops::{self, Caller, Op};
use crate::progress::Reporter;
use crate::state::Daemon;
use crate::stats::names;
use sshmcp_proto::audit::Verdict;

/// Run request `id` to completion (or cancellation) and account for it.
pub async fn dispatch(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> Reply {
    let (reply, settle) = answer(daemon, caller, id, request, cancel, progress).await;
    settle.done(daemon, &reply);
    reply
}

/// [`dispatch`], leaving what need not hold its reply back to [`Settle`]:
/// the connection sends the reply first and settles right after.
pub async fn answer(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
) -> (Reply, Settle) {
    let started = Instant::now();
    let op = request.op_name();
    let host = request.host().unwrap_or("-").to_string();
    // The audit record is begun before the request is consumed; the checks
    // on the way leave their decision for it.
    let pending = daemon.audit.begin(caller, &request);
    let decision = DecisionSlot::default();
    let reply = match daemon.audit.refusal(&request) {
        Some(refused) => {
            decision.deny("audit.on_failure");
            Err(refused)
        }
        None => {
            admit(
                daemon, caller, id, request, cancel, progress, started, &decision,
            )
            .await
        }
    };
    let elapsed = started.elapsed();
    // What may change a host is in the log before its reply goes out; a
    // read's record may follow it.
    let settle = match pending {
        Some(pending) if daemon.audit.after_reply(&pending) => {
            Settle(Some((pending, decision.into_inner(), elapsed)))
        }
        Some(pending) => {
            daemon
                .audit
                .record(pending, decision.into_inner(), &reply, elapsed);
            Settle(None)
        }
        None => Settle(None),
    };
    metrics::histogram!(names::OP_DURATION_US, "op" => op, "host" => host.clone())
        .record(elapsed.as_micros() as f64);
    metrics::histogram!(names::REQUEST_DURATION, "op" => op, "host" => host.clone())
        .record(elapsed.as_secs_f64());
    metrics::counter!(names::REQUESTS, "op" => op, "host" => host.clone()).increment(1);
    match &reply {
        Ok(response) => {
            let cached = matches!(response, Response::Cached(_));
            tracing::debug!(op, host, us = elapsed.as_micros() as u64, cached, caller = %caller.binary, pid = ?caller.pid, mcp_client = ?caller.mcp_client, "ok")
        }
        Err(error) => {
            let kind = error.kind.as_str();
            metrics::counter!(names::OP_ERRORS, "op" => op, "host" => host.clone()).increment(1);
            metrics::counter!(names::REQUEST_ERRORS, "op" => op, "host" => host.clone(), "kind" => kind)
                .increment(1);
            tracing::info!(op, host, us = elapsed.as_micros() as u64, caller = %caller.binary, pid = ?caller.pid, mcp_client = ?caller.mcp_client, kind, "failed");
        }
    }
    (reply, settle)
}

/// What is left of a request once its reply is decided: the audit record
/// of a read (`AuditLog::after_reply`), written by [`Settle::done`]
/// once the reply is on its way. Everything else a request leaves (its
/// counters, the records of what may change a host) is done before.
pub struct Settle(Option<(Pending, Decision, Duration)>);

impl Settle {
    /// Whether nothing is left to do.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Write the deferred record, for `reply`.
    pub fn done(self, daemon: &Daemon, reply: &Reply) {
        if let Some((pending, decision, elapsed)) = self.0 {
            daemon.audit.record(pending, decision, reply, elapsed);
        }
    }
}

/// [`dispatch`] for a call inside a batch (boxed: a batch dispatches).
fn dispatch_call<'a>(
    daemon: &'a Daemon,
    caller: &'a Caller,
    id: u64,
    request: Request,
    cancel: &'a CancellationToken,
    progress: &'a Reporter,
) -> Pin<Box<dyn Future<Output = Reply> + Send + 'a>> {
    Box::pin(dispatch(daemon, caller, id, request, cancel, progress))
}

/// Check the request, resolve its host, take the limits' slots and run it.
/// A check that refuses it says so in `decision`.
#[allow(clippy::too_many_arguments)]
async fn admit(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    request: Request,
    cancel: &CancellationToken,
    progress: &Reporter,
    started: Instant,
    decision: &DecisionSlot,
) -> Reply {
    let max_frame = daemon.config().daemon.max_frame;
    request
        .validate(max_frame)
        .inspect_err(|_| decision.deny("validation"))?;
    let request = match request {
        Request::Batch(calls) => {
            return batch(daemon, caller, id, calls, cancel, progress, max_frame).await;
        }
        request => request,
    };
    let host = match request.host() {
        Some(alias) => Some(
            daemon
                .pool
                .host(alias)
                .inspect_err(|_| decision.deny("ssh.config hosts"))?,
        ),
        None => None,
    };
    if !request.is_admin()
        && let Some(rate) = &caller.rate
    {
        rate.check(daemon.config().limits.client_rps)
            .inspect_err(|_| {
                metrics::counter!(names::RATE_LIMITED, "scope" => "client").increment(1);
                decision.deny("limits.client_rps");
            })?;
    }
    // The policy judges what the request would do before anything answers
    // it (the cache included).
    let asker = crate::gate::Asker { progress, cancel };
    match crate::gate::check(daemon, caller, host.as_ref(), &request, asker).await {
        Ok(allowed) => decision.set(crate::audit::Decision {
            verdict: if allowed.confirmed {
                Verdict::Confirmed
            } else {
                Verdict::Allow
            },
            rule: allowed.rule,
        }),
        Err(refused) => {
            if let Some(rule) = &refused.rule {
                decision.deny(rule);
            }
            return Err(refused.error);
        }
    }
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
    // The cache answers what it can before the request queues for a slot.
    let hold_back = daemon.memory.is_degraded();
    let live = ctx.host.as_ref().is_some_and(|h| {
        let alias = &h.resolved.alias;
        daemon.jobs.running_on(alias) || daemon.shells.busy_on(alias)
    });
    let cache = daemon.cache.clone();
    cache
        .around(ctx.host.as_ref(), hold_back, live, request, |request| {
            limited(&ctx, request, started, decision)
        })
        .await
}

/// Take the concurrency limits' slots and run the request.
async fn limited(
    ctx: &ops::Context<'_>,
    request: Request,
    started: Instant,
    decision: &DecisionSlot,
) -> Reply {
    let daemon = ctx.daemon;
    host_rate(daemon, ctx.host.as_deref()).inspect_err(|_| decision.deny("limits.host_rps"))?;
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
        .scope(Cell::new(Some(queue_deadline)), run(ctx, request))
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
        Request::Stats => op(ctx, ops::Stats)
            .await
            .map(|stats| Response::Stats(Box::new(stats))),
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
        Request::Transfer(mut req) if req.job_after_secs.is_some() => {
            let after = req.job_after_secs.take().unwrap_or_default();
            ops::work_job::run(ctx, Work::Transfer(req), after).await
        }
        Request::Sync(mut req) if req.job_after_secs.is_some() => {
            let after = req.job_after_secs.take().unwrap_or_default();
            ops::work_job::run(ctx, Work::Sync(req), after).await
        }
        Request::Transfer(req) => op(ctx, req).await.map(Response::Transfer),
        Request::Sync(req) => op(ctx, req).await.map(Response::Sync),
        Request::Cache => Ok(Response::Cache(ctx.daemon.cache.stats())),
        Request::CacheClear { host } => {
            if let Some(alias) = &host {
                ctx.daemon.pool.host(alias)?;
            }
            Ok(Response::CacheCleared(
                ctx.daemon.cache.clear(host.as_deref(), "clear"),
            ))
        }
        Request::Batch(_) => Err(Error::internal("a batch reached the op match")),
        Request::JobOutput(req) => op(ctx, req).await.map(Response::JobOutput),
        Request::JobSignal(req) => op(ctx, req).await.map(Response::JobState),
        Request::Jobs { host } => Ok(Response::Jobs(ctx.daemon.jobs.list(host.as_deref()))),
        Request::ShellOpen(req) => op(ctx, req).await.map(Response::ShellOpened),
        Request::ShellExec(req) => op(ctx, req)
            .await
            .map(|done| Response::ShellExec(Box::new(done))),
        Request::ShellClose(req) => op(ctx, req).await.map(|()| Response::Ok),
        Request::Shells { host } => Ok(Response::Shells(ctx.daemon.shells.list(host.as_deref()))),
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

/// The host's requests-per-second bucket: work that reaches the host
/// (not answers from the cache) takes a token.
fn host_rate(daemon: &Daemon, host: Option<&crate::pool::Host>) -> Result<(), Error> {
    if let (Some(rates), Some(host)) = (&daemon.host_rates, host) {
        rates
            .check(&host.resolved.alias, daemon.config().limits.host_rps)
            .inspect_err(|_| {
                metrics::counter!(names::RATE_LIMITED, "scope" => "host").increment(1);
            })?;
    }
    Ok(())
}

/// Run a batch's calls, up to its concurrency at once, each as if sent
/// alone; answer their outcomes in call order. One progress stream counts
/// the calls done. A reply too large for one frame has its largest
/// results replaced by errors that say to call them alone.
async fn batch(
    daemon: &Daemon,
    caller: &Caller,
    id: u64,
    batch: BatchRequest,
    cancel: &CancellationToken,
    progress: &Reporter,
    max_frame: usize,
) -> Reply {
    let total = batch.calls.len();
    let concurrency = batch
        .concurrency
        .unwrap_or(BatchRequest::DEFAULT_CONCURRENCY)
        .max(1) as usize;
    let quiet = Reporter::silent();
    let mut results: Vec<Option<Reply>> = vec![None; total];
    let mut pending = batch.calls.into_iter().enumerate();
    let mut running = FuturesUnordered::new();
    let (mut done, mut failed) = (0u64, false);
    loop {
        while running.len() < concurrency && !(batch.stop_on_error && failed) {
            let Some((i, call)) = pending.next() else {
                break;
            };
            let call = dispatch_call(daemon, caller, id, call, cancel, &quiet);
            running.push(async move { (i, call.await) });
        }
        let Some((i, reply)) = running.next().await else {
            break;
        };
        failed |= reply.is_err();
        results[i] = Some(reply);
        done += 1;
        progress.report(done, Some(total as u64), || {
            format!("{done} of {total} calls done")
        });
    }
    fit_one_frame(&mut results, max_frame);
    Ok(Response::Batch(results))
}

/// Replace the largest results with errors until the batch's reply fits
/// in one frame.
fn fit_one_frame(results: &mut [Option<Reply>], max_frame: usize) {
    let budget = max_frame.saturating_sub(sshmcp_proto::REPLY_HEADROOM);
    let mut sizes: Vec<(usize, usize)> = results
        .iter()
        .enumerate()
        .map(|(i, r)| (sshmcp_proto::encode(r).map_or(0, |b| b.len()), i))
        .collect();
    let mut total: usize = sizes.iter().map(|(n, _)| n).sum();
    sizes.sort_unstable_by(|a, b| b.cmp(a));
    for (size, i) in sizes {
        if total <= budget {
            break;
        }
        results[i] = Some(Err(Error::new(
            ErrorKind::Overloaded,
            format!(
                "this call's result ({size} bytes) did not fit in the batch's reply beside the \
                 others; make this call on its own"
            ),
        )));
        total -= size;
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
