//! Tool calls as MCP Tasks: the `io.modelcontextprotocol/tasks` extension
//! (SEP-2663) as rmcp models it.
//!
//! Task creation is the server's choice, made per request. When a request
//! declares the extension among its client capabilities (in its `_meta` on
//! 2026-07-28, at `initialize` before), an `exec`, `transfer` or `sync`
//! call still running after [`Tasks::after`] seconds is answered with a
//! task (`CreateTaskResult`) instead of keeping the client waiting; a call
//! that ends sooner is answered as it always is. The client polls
//! `tasks/get`, which carries the call's own result once the task is
//! terminal, and may send `tasks/cancel`. SEP-2663 has neither
//! `tasks/result` nor `tasks/list`: rmcp answers both `-32601`, as the SEP
//! requires.
//!
//! An `exec` task is a daemon job and its task id is the job id, so the
//! task outlives this shim and any shim answers for it (`job_output`,
//! `job_signal` and `jobs` see it too). The call goes to the daemon as an
//! `exec` with `on_timeout: "background"` and [`Tasks::after`] as its
//! timeout: a command that ends sooner is answered by the daemon exactly
//! as a plain `exec` is, one that runs on is a job already. What only the
//! call knew, how to show the output and its own `timeout_secs`, this shim
//! keeps: it stops the job at that timeout as `exec` stops a command, and
//! another shim shows the result as a plain `exec` with default options
//! does and keeps no deadline.
//!
//! A `transfer` or `sync` task runs in this shim (rmcp's `TaskManager`),
//! since the daemon keeps no jobs of those: it ends with the shim, as a call
//! in flight does.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rmcp::model::{
    CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, JsonObject, Task,
    TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::{DEFAULT_POLL_INTERVAL_MS, TaskExit, TaskManager, TaskOptions};
use rmcp::{ErrorData, RoleServer};
use sshmcp_proto::{
    Error, ErrorKind, ExecOutput, ExecRequest, Gap, JobInfo, JobOutput, JobOutputRequest,
    JobSignalRequest, JobState, MAX_TIMEOUT_SECS, OnTimeout, Progress, Request, Response,
};
use tokio::sync::watch;
use tokio::task::JoinError;
use tokio_util::sync::CancellationToken;

use super::attrs::iso_time;
use super::exec::Exec;
use super::sync::DirSync;
use super::transfer::Transfer;
use super::{Rendered, Tool, answer, failure, prepare, success, unavailable};
use crate::daemon::{self, DaemonLink};
use crate::server::SshMcp;

/// How long, by default, a call runs before it becomes a task: long enough
/// that quick calls are answered as before, short enough that no client
/// times out waiting.
pub const DEFAULT_AFTER_SECS: u64 = 1;

/// The environment variable that sets [`Tasks::after`] (whole seconds; 0
/// makes every call of the task tools from a client that takes tasks a
/// task at once).
pub const AFTER_ENV: &str = "SSHMCP_TASK_AFTER_SECS";

/// The tools whose calls may become tasks: the ones that can run long.
const TASK_TOOLS: [&str; 3] = [
    <Exec as Tool>::NAME,
    <Transfer as Tool>::NAME,
    <DirSync as Tool>::NAME,
];

/// The tasks of one shim.
#[derive(Clone)]
pub struct Tasks {
    /// Seconds a call runs before it becomes a task.
    after: u64,
    /// `transfer` and `sync` calls running as tasks of this shim.
    held: TaskManager,
    /// The `exec` tasks this shim started or cancelled, by job id.
    execs: Arc<Mutex<HashMap<String, ExecTask>>>,
}

/// What a shim knows of an `exec` task beyond what the daemon's job says.
#[derive(Clone, Default)]
struct ExecTask {
    /// How the call asked for its output to be shown.
    asked: <Exec as Tool>::Asked,
    /// Bytes kept per stream, as the call sent `max_output_bytes`.
    max_output: u64,
    /// The call's `timeout_secs`, past which the job is stopped; `None`
    /// with `on_timeout: "background"`, or for a job another shim started.
    timeout_secs: Option<u64>,
    /// Stopped by this shim's `tasks/cancel`: a job that ends `killed`
    /// is otherwise a command that a signal ended.
    cancelled: bool,
}

impl ExecTask {
    /// What is assumed of a job this shim did not start: a plain `exec`
    /// with default options, no deadline.
    fn unknown() -> Self {
        ExecTask {
            max_output: ExecRequest::MCP_MAX_OUTPUT,
            ..ExecTask::default()
        }
    }
}

impl Tasks {
    /// Tasks made of calls that run over `after` seconds.
    pub fn new(after: u64) -> Self {
        Tasks {
            after,
            held: TaskManager::new(),
            execs: Arc::default(),
        }
    }

    fn exec(&self, job_id: &str) -> ExecTask {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(job_id)
            .cloned()
            .unwrap_or_else(ExecTask::unknown)
    }

    fn remember(&self, job_id: &str, task: ExecTask) {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job_id.to_string(), task);
    }

    fn mark_cancelled(&self, job_id: &str) {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(job_id.to_string())
            .or_insert_with(ExecTask::unknown)
            .cancelled = true;
    }
}

/// [`Tasks::after`] from [`AFTER_ENV`]'s value, if set.
pub fn after_from(value: Option<&OsStr>) -> Result<u64, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_AFTER_SECS);
    };
    value
        .to_str()
        .and_then(|secs| secs.trim().parse::<u64>().ok())
        .filter(|secs| *secs <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| {
            format!(
                "{AFTER_ENV}={} is not a number of seconds from 0 to {MAX_TIMEOUT_SECS}",
                value.to_string_lossy()
            )
        })
}

/// Whether the request's client takes tasks: it declares the extension,
/// in this request's `_meta` or, for a session that began with
/// `initialize`, there.
pub fn client_takes_tasks(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|capabilities| capabilities.supports_tasks())
}

/// Whether a call of `tool` may become a task.
pub fn may_become_task(tool: &str) -> bool {
    TASK_TOOLS.contains(&tool)
}

/// Where [`SshMcp::forward`] sends the progress of a call that runs as a
/// task of this shim: into the task's status message, which `tasks/get`
/// shows, rather than to the request's progress token, whose request has
/// been answered.
#[derive(Clone)]
pub struct StatusSink(pub watch::Sender<Option<Progress>>);

impl SshMcp {
    /// Call `tool` (one of [`TASK_TOOLS`]) for a client that takes tasks.
    pub(crate) async fn call_as_task(
        &self,
        tool: &str,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        if tool == <Transfer as Tool>::NAME {
            self.held_task::<Transfer>(arguments, context).await
        } else if tool == <DirSync as Tool>::NAME {
            self.held_task::<DirSync>(arguments, context).await
        } else {
            self.exec_task(arguments, context).await
        }
    }

    /// `exec`, becoming a job-backed task if it runs past [`Tasks::after`].
    async fn exec_task(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let after = self.tasks().after;
        let (mut req, asked) = match prepare::<Exec>(arguments.clone()) {
            Ok((Request::Exec(req), asked)) => (req, asked),
            // Refused: the plain call says why.
            _ => return self.run::<Exec>(arguments, context).await.into(),
        };
        let timeout = req
            .timeout_secs
            .unwrap_or(ExecRequest::DEFAULT_TIMEOUT_SECS);
        // A background call answers at once, a cached one from the cache,
        // and one whose timeout comes first cannot run past `after`.
        if req.background || req.detach || req.cache_secs.is_some() || timeout <= after {
            return self.run::<Exec>(arguments, context).await.into();
        }
        let task = ExecTask {
            asked,
            max_output: req
                .max_output_bytes
                .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT),
            timeout_secs: (req.on_timeout == OnTimeout::Kill).then_some(timeout),
            cancelled: false,
        };
        // sudo must start the command within the call's timeout, which a
        // timeout of `after` would cut short: such a call is a task at once.
        if after == 0 || req.sudo {
            req.background = true;
        } else {
            req.on_timeout = OnTimeout::Background;
            req.timeout_secs = Some(after);
        }
        let host = req.host.clone();
        let job = match self.forward(Request::Exec(req), &context).await {
            Ok(Ok(Response::Exec(ExecOutput { job: Some(job), .. }))) => job,
            Ok(Ok(response)) => return rendered(answer::<Exec>(task.asked, response)).into(),
            // The daemon's job limits are reached (or it is busy): the
            // command can still run as a plain call, as without tasks.
            Ok(Err(error)) if error.kind == ErrorKind::Overloaded => {
                return self.run::<Exec>(arguments, context).await.into();
            }
            Ok(Err(error)) => return failure(&error).into(),
            Err(error) => return unavailable(&error).into(),
        };
        if let Some(secs) = task.timeout_secs {
            self.keep_deadline(job.job_id.clone(), secs);
        }
        self.tasks().remember(&job.job_id, task);
        let now = iso_time(unix_now());
        let task = Task::new(job.job_id.clone(), TaskStatus::Working, now.clone(), now)
            .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
            .with_status_message(format!("runs on {host} as job {}", job.job_id));
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// Stop job `job_id` once it has run `timeout_secs`, as `exec` stops a
    /// command at its timeout, for as long as this shim runs.
    fn keep_deadline(&self, job_id: String, timeout_secs: u64) {
        let daemon = self.daemon_link().clone();
        tokio::spawn(async move {
            while let Ok(Some(left)) = enforce_deadline(&daemon, &job_id, timeout_secs).await {
                tokio::time::sleep(left).await;
            }
        });
    }

    /// A `transfer` or `sync` call, becoming a task of this shim if it runs
    /// past [`Tasks::after`].
    async fn held_task<T: Tool>(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        if let Err(error) = prepare::<T>(arguments.clone()) {
            return failure(&error).into();
        }
        // The call runs on past its request, so it gets a cancel of its
        // own, and its progress goes to the task.
        let cancel = CancellationToken::new();
        let (status, mut progress) = watch::channel(None);
        let mut call = context.clone();
        call.ct = cancel.clone();
        call.extensions.insert(StatusSink(status));
        let shim = self.clone();
        let mut running = tokio::spawn(async move { shim.run::<T>(arguments, call).await });
        let after = self.tasks().after;
        if after > 0 {
            tokio::select! {
                joined = &mut running => return ended::<T>(joined).into(),
                () = context.ct.cancelled() => {
                    cancel.cancel();
                    return ended::<T>(running.await).into();
                }
                () = tokio::time::sleep(Duration::from_secs(after)) => {}
            }
        }
        let options = TaskOptions::new()
            // Kept while this shim runs: a long sync must not be failed
            // for its age.
            .with_ttl_ms(None)
            .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
            .with_status_message(format!(
                "{} runs in this sshmcp process, and ends with it",
                T::NAME
            ));
        let task = self.tasks().held.spawn(options, move |task| {
            Box::pin(async move {
                loop {
                    tokio::select! {
                        joined = &mut running => return Ok(ended::<T>(joined)),
                        () = task.cancelled() => {
                            cancel.cancel();
                            let _ = running.await;
                            return Err(TaskExit::Cancelled);
                        }
                        Ok(()) = progress.changed() => {
                            if let Some(update) = progress.borrow_and_update().as_ref() {
                                task.set_status_message(status_line(update));
                            }
                        }
                    }
                }
            })
        });
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// `tasks/get`: where task `id` is, with its result once it has one.
    pub(crate) async fn task_state(&self, id: &str) -> Result<DetailedTask, ErrorData> {
        match self.tasks().held.get_task(id) {
            Ok(task) => Ok(task),
            Err(_) => self.exec_task_state(id).await,
        }
    }

    /// `tasks/cancel`: stop task `id`. A job is sent TERM, then KILL; a
    /// task of this shim has its call cancelled. Either way the task's
    /// state says when it has stopped.
    pub(crate) async fn cancel_task_by_id(&self, id: &str) -> Result<(), ErrorData> {
        if self.tasks().held.cancel_task(id).is_ok() {
            return Ok(());
        }
        let daemon = self.daemon_link();
        if job_info(daemon, id).await?.state == JobState::Running {
            self.tasks().mark_cancelled(id);
            stop(daemon, id).await?;
        }
        Ok(())
    }

    /// `tasks/update`: no task of this shim asks for input, so there is
    /// nothing to deliver; SEP-2663 has unknown keys ignored.
    pub(crate) async fn update_task_by_id(&self, id: &str) -> Result<(), ErrorData> {
        if self.tasks().held.get_task(id).is_ok() {
            return Ok(());
        }
        job_info(self.daemon_link(), id).await.map(|_| ())
    }

    /// The state of `exec` task `id`, read from its job.
    async fn exec_task_state(&self, id: &str) -> Result<DetailedTask, ErrorData> {
        let daemon = self.daemon_link();
        let task = self.tasks().exec(id);
        if let Some(secs) = task.timeout_secs {
            enforce_deadline(daemon, id, secs).await?;
        }
        let info = job_info(daemon, id).await?;
        let created = iso_time(info.started);
        if info.state == JobState::Running {
            let working = Task::new(id, TaskStatus::Working, created, iso_time(unix_now()))
                .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
                .with_status_message(format!(
                    "runs on {} as job {id}: {} s so far, {} bytes of output",
                    info.host,
                    info.runtime_ms / 1000,
                    info.bytes
                ));
            return Ok(DetailedTask::new(working, TaskPayload::Working));
        }
        let ended = iso_time(info.started + info.runtime_ms / 1000);
        let base = Task::new(id, TaskStatus::Working, created, ended);
        let payload = if info.state == JobState::Killed && task.cancelled {
            TaskPayload::Cancelled
        } else {
            let result = exec_task_result(daemon, &info, task).await?;
            TaskPayload::Completed {
                result: result_object(&result)?,
            }
        };
        Ok(DetailedTask::new(base, payload))
    }
}

/// What `exec` would have answered for the command of ended job `info`:
/// its output and how it ended; the timeout error when the deadline
/// stopped it; the connection error when the daemon lost it.
async fn exec_task_result(
    daemon: &DaemonLink,
    info: &JobInfo,
    task: ExecTask,
) -> Result<CallToolResult, ErrorData> {
    let host = &info.host;
    let job_id = &info.job_id;
    let timed_out = task
        .timeout_secs
        .filter(|secs| info.runtime_ms >= secs * 1000);
    match (info.state, timed_out) {
        (JobState::Lost, _) => {
            return Ok(failure(&Error::new(
                ErrorKind::Unreachable,
                format!(
                    "the connection to {host} ended before the command of job {job_id} \
                     reported an exit status; the command may or may not have completed"
                ),
            )));
        }
        (JobState::Killed, Some(secs)) => {
            return Ok(failure(&Error::new(
                ErrorKind::Timeout,
                format!(
                    "command on {host} ran past timeout_secs={secs} and was stopped (TERM, then \
                     KILL); job_output reads what job {job_id} wrote. Raise timeout_secs, or \
                     use on_timeout: \"background\" to let it run on"
                ),
            )));
        }
        _ => {}
    }
    let output = exec_output(daemon, job_id, task.max_output, info.runtime_ms).await?;
    Ok(rendered(answer::<Exec>(task.asked, Response::Exec(output))))
}

/// Ended job `job_id`'s output as `exec` answers a command: each stream
/// whole when it fits in `max` bytes, else its head and its tail, the
/// first half of `max` from its start and the second from its end (only
/// the tail once the job's spool has dropped the head), as the daemon
/// keeps an `exec`'s output.
async fn exec_output(
    daemon: &DaemonLink,
    job_id: &str,
    max: u64,
    duration_ms: u64,
) -> Result<ExecOutput, ErrorData> {
    // Where the streams end, and how the job ended.
    let end = page(daemon, job_id, [u64::MAX; 2], 1).await?;
    let totals = [end.next_stdout_offset, end.next_stderr_offset];
    let tail_cap = max / 2;
    let mut kept: [Vec<u8>; 2] = Default::default();
    let mut whole = totals.map(|total| total == 0);
    if max > 0 {
        let first = page(daemon, job_id, [0, 0], max).await?;
        let heads = [
            (first.stdout, first.stdout_offset),
            (first.stderr, first.stderr_offset),
        ];
        for (i, (mut bytes, start)) in heads.into_iter().enumerate() {
            whole[i] = start == 0 && totals[i] <= max;
            if !whole[i] {
                // The spool dropped the head when the read starts later.
                bytes.truncate(if start == 0 {
                    (max - tail_cap) as usize
                } else {
                    0
                });
            }
            kept[i] = bytes;
        }
    }
    let tails = if tail_cap > 0 && whole.contains(&false) {
        let from = |i: usize| {
            if whole[i] {
                totals[i]
            } else {
                totals[i].saturating_sub(tail_cap)
            }
        };
        let tails = page(daemon, job_id, [from(0), from(1)], tail_cap).await?;
        [
            (tails.stdout, tails.stdout_offset),
            (tails.stderr, tails.stderr_offset),
        ]
    } else {
        totals.map(|total| (Vec::new(), total))
    };
    let mut gaps = [None, None];
    for (i, (tail, tail_start)) in tails.into_iter().enumerate() {
        if !whole[i] {
            let at = kept[i].len() as u64;
            gaps[i] = Some(Gap {
                at,
                bytes: tail_start.saturating_sub(at),
            });
            kept[i].extend(tail);
        }
    }
    let [stdout, stderr] = kept;
    let [stdout_gap, stderr_gap] = gaps;
    Ok(ExecOutput {
        exit_code: end.exit_code,
        signal: end.signal,
        truncated: stdout_gap.is_some() || stderr_gap.is_some(),
        stdout,
        stderr,
        stdout_gap,
        stderr_gap,
        stdout_bytes: totals[0],
        stderr_bytes: totals[1],
        duration_ms,
        job: None,
    })
}

/// Stop job `job_id` if it still runs after `timeout_secs`; otherwise how
/// long until it has run that long (`None` once it has ended).
async fn enforce_deadline(
    daemon: &DaemonLink,
    job_id: &str,
    timeout_secs: u64,
) -> Result<Option<Duration>, ErrorData> {
    let info = job_info(daemon, job_id).await?;
    if info.state != JobState::Running {
        return Ok(None);
    }
    let limit_ms = timeout_secs.saturating_mul(1000);
    if info.runtime_ms < limit_ms {
        return Ok(Some(Duration::from_millis(limit_ms - info.runtime_ms)));
    }
    stop(daemon, job_id).await?;
    Ok(None)
}

/// TERM, then KILL if it still runs: how `exec` stops a command.
async fn stop(daemon: &DaemonLink, job_id: &str) -> Result<(), ErrorData> {
    for signal in ["TERM", "KILL"] {
        let request = Request::JobSignal(JobSignalRequest {
            job_id: job_id.to_string(),
            signal: signal.to_string(),
        });
        match ask(daemon, request).await? {
            Response::JobState(JobState::Running) => {}
            Response::JobState(_) => return Ok(()),
            other => return Err(unexpected("job_signal", &other)),
        }
    }
    Ok(())
}

/// Job `job_id` as `jobs` lists it; an unknown task when there is none.
async fn job_info(daemon: &DaemonLink, job_id: &str) -> Result<JobInfo, ErrorData> {
    match ask(daemon, Request::Jobs { host: None }).await? {
        Response::Jobs(jobs) => jobs
            .into_iter()
            .find(|job| job.job_id == job_id)
            .ok_or_else(|| {
                ErrorData::invalid_params(
                    format!(
                        "no task {job_id}: no such job (a task of another sshmcp process ends \
                         with it; a job is kept [jobs] retention_secs after it ends)"
                    ),
                    None,
                )
            }),
        other => Err(unexpected("jobs", &other)),
    }
}

/// A page of job `job_id`'s output from `offsets` (stdout, stderr), at
/// most `max_bytes` a stream, without waiting.
async fn page(
    daemon: &DaemonLink,
    job_id: &str,
    [stdout_offset, stderr_offset]: [u64; 2],
    max_bytes: u64,
) -> Result<JobOutput, ErrorData> {
    let request = Request::JobOutput(JobOutputRequest {
        job_id: job_id.to_string(),
        stdout_offset: Some(stdout_offset),
        stderr_offset: Some(stderr_offset),
        wait_secs: None,
        max_bytes: Some(max_bytes),
    });
    match ask(daemon, request).await? {
        Response::JobOutput(page) => Ok(page),
        other => Err(unexpected("job_output", &other)),
    }
}

/// The daemon's answer to `request`, which no MCP request waits on: a
/// task's state is read, or its job signalled, to the end.
async fn ask(daemon: &DaemonLink, request: Request) -> Result<Response, ErrorData> {
    let unavailable = |error: sshmcp_proto::client::ClientError| {
        ErrorData::internal_error(error.to_string(), None)
    };
    let call = daemon.start(request, None).await.map_err(unavailable)?;
    match daemon::finish(call, std::future::pending(), |_| {}).await {
        Ok(Ok(response)) => Ok(response),
        Ok(Err(error)) if error.kind == ErrorKind::NotFound => {
            Err(ErrorData::invalid_params(error.message, None))
        }
        Ok(Err(error)) => Err(ErrorData::internal_error(
            format!("{}: {}", error.kind.as_str(), error.message),
            None,
        )),
        Err(error) => Err(unavailable(error)),
    }
}

fn unexpected(op: &str, response: &Response) -> ErrorData {
    ErrorData::internal_error(
        format!(
            "sshmcpd answered a {op} request with a {} response",
            response.name()
        ),
        None,
    )
}

/// A call's result, rendered or failed.
fn rendered(result: Result<Rendered, Error>) -> CallToolResult {
    match result {
        Ok(result) => success(result),
        Err(error) => failure(&error),
    }
}

/// The result of a call of `T` that ran as a tokio task.
fn ended<T: Tool>(joined: Result<CallToolResult, JoinError>) -> CallToolResult {
    joined.unwrap_or_else(|error| {
        failure(&Error::internal(format!(
            "the {} call stopped: {error}",
            T::NAME
        )))
    })
}

/// A result as the JSON object a completed task carries.
fn result_object(result: &CallToolResult) -> Result<JsonObject, ErrorData> {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(object)) => Ok(object),
        _ => Err(ErrorData::internal_error(
            "sshmcp could not encode a task's result",
            None,
        )),
    }
}

/// A progress update as a task's status message.
fn status_line(progress: &Progress) -> String {
    match (&progress.message, progress.total) {
        (Some(message), _) => message.clone(),
        (None, Some(total)) => format!("{} of {total} bytes", progress.done),
        (None, None) => format!("{} bytes", progress.done),
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_task_window_is_read_from_the_environment() {
        assert_eq!(after_from(None), Ok(DEFAULT_AFTER_SECS));
        assert_eq!(after_from(Some(OsStr::new("0"))), Ok(0));
        assert_eq!(after_from(Some(OsStr::new(" 30 "))), Ok(30));
        for bad in ["", "-1", "1.5", "soon", "86401"] {
            let err = after_from(Some(OsStr::new(bad))).unwrap_err();
            assert!(err.contains(AFTER_ENV), "{bad}: {err}");
        }
    }

    #[test]
    fn only_the_tools_that_can_run_long_become_tasks() {
        for tool in ["exec", "transfer", "sync"] {
            assert!(may_become_task(tool), "{tool}");
        }
        for tool in ["stat", "read_file", "batch", "job_output", "hosts"] {
            assert!(!may_become_task(tool), "{tool}");
        }
    }

    #[test]
    fn a_status_line_is_the_progress_message_or_the_counts() {
        let progress = |message: Option<&str>, total| Progress {
            done: 512,
            total,
            message: message.map(str::to_string),
        };
        assert_eq!(
            status_line(&progress(Some("3 of 10 files"), Some(4096))),
            "3 of 10 files"
        );
        assert_eq!(
            status_line(&progress(None, Some(4096))),
            "512 of 4096 bytes"
        );
        assert_eq!(status_line(&progress(None, None)), "512 bytes");
    }
}
