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
//! Every task is a daemon job and its task id is the job id, so the task
//! outlives this shim and any shim answers for it (`job_output`,
//! `job_signal` and `jobs` see it too).
//!
//! An `exec` call goes to the daemon with `on_timeout: "background"` and
//! [`Tasks::after`] as its timeout: a command that ends sooner is answered
//! by the daemon exactly as a plain `exec` is, one that runs on is a job
//! already. The call's own `timeout_secs` goes along as `stop_after_secs`,
//! so the daemon stops the job then, as `exec` stops a command, whether or
//! not this shim still runs. How to show the output is all this shim
//! keeps; another shim shows the result as a plain `exec` with default
//! options does.
//!
//! A `transfer` or `sync` call goes with `job_after_secs` = [`Tasks::after`]:
//! the daemon runs it as a job and answers its result if it ends sooner,
//! its job if not. The job's output is its progress, and its result (with
//! the request it ran) says how to show it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rmcp::model::{
    CallToolResponse, CallToolResult, CreateTaskResult, DetailedTask, JsonObject, Task,
    TaskPayload, TaskStatus,
};
use rmcp::service::RequestContext;
use rmcp::task_manager::DEFAULT_POLL_INTERVAL_MS;
use rmcp::{ErrorData, RoleServer};
use sshmcp_proto::{
    Error, ErrorKind, ExecOutput, ExecRequest, JobInfo, JobKind, JobOutput, JobOutputRequest,
    JobResult, JobSignalRequest, JobState, MAX_TIMEOUT_SECS, OnTimeout, Request, Response,
};

use super::attrs::iso_time;
use super::exec::Exec;
use super::sync::{DirSync, Dirs};
use super::transfer::{Paths, Transfer};
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
    /// The call's `timeout_secs`, past which the daemon stops the job;
    /// `None` with `on_timeout: "background"`, or for a job another shim
    /// started.
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

impl SshMcp {
    /// Call `tool` (one of [`TASK_TOOLS`]) for a client that takes tasks.
    pub(crate) async fn call_as_task(
        &self,
        tool: &str,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        if tool == <Transfer as Tool>::NAME {
            self.op_task::<Transfer>(arguments, context).await
        } else if tool == <DirSync as Tool>::NAME {
            self.op_task::<DirSync>(arguments, context).await
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
        req.stop_after_secs = task.timeout_secs;
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
        self.tasks().remember(&job.job_id, task);
        let now = iso_time(unix_now());
        let task = Task::new(job.job_id.clone(), TaskStatus::Working, now.clone(), now)
            .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
            .with_status_message(format!("runs on {host} as job {}", job.job_id));
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// A `transfer` or `sync` call, becoming a job-backed task if it runs
    /// past [`Tasks::after`].
    async fn op_task<T: Tool>(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResponse {
        let (mut request, asked) = match prepare::<T>(arguments.clone()) {
            Ok(prepared) => prepared,
            Err(error) => return failure(&error).into(),
        };
        let after = Some(self.tasks().after);
        let host = match &mut request {
            Request::Transfer(req) => {
                req.job_after_secs = after;
                req.host.clone()
            }
            Request::Sync(req) => {
                req.job_after_secs = after;
                req.host.clone()
            }
            _ => return self.run::<T>(arguments, context).await.into(),
        };
        let job = match self.forward(request, &context).await {
            Ok(Ok(Response::JobStarted(job))) => job,
            Ok(Ok(response)) => return rendered(answer::<T>(asked, response)).into(),
            // The daemon's job limits are reached: the call can still run
            // as a plain one, as without tasks.
            Ok(Err(error)) if error.kind == ErrorKind::Overloaded => {
                return self.run::<T>(arguments, context).await.into();
            }
            Ok(Err(error)) => return failure(&error).into(),
            Err(error) => return unavailable(&error).into(),
        };
        let now = iso_time(unix_now());
        let task = Task::new(job.job_id.clone(), TaskStatus::Working, now.clone(), now)
            .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
            .with_status_message(format!(
                "{} with {host} runs as job {}",
                T::NAME,
                job.job_id
            ));
        CallToolResponse::Task(CreateTaskResult::new(task))
    }

    /// `tasks/get`: where task `id` is, with its result once it has one.
    pub(crate) async fn task_state(&self, id: &str) -> Result<DetailedTask, ErrorData> {
        let daemon = self.daemon_link();
        let info = job_info(daemon, id).await?;
        let created = iso_time(info.started);
        if info.state == JobState::Running {
            let status = if info.kind != JobKind::Command {
                let latest = latest_line(daemon, id).await?;
                format!("{}: {latest}", info.command)
            } else {
                format!(
                    "runs on {} as job {id}: {} s so far, {} bytes of output",
                    info.host,
                    info.runtime_ms / 1000,
                    info.bytes
                )
            };
            let working = Task::new(id, TaskStatus::Working, created, iso_time(unix_now()))
                .with_poll_interval_ms(DEFAULT_POLL_INTERVAL_MS)
                .with_status_message(status);
            return Ok(DetailedTask::new(working, TaskPayload::Working));
        }
        let ended = iso_time(info.started + info.runtime_ms / 1000);
        let base = Task::new(id, TaskStatus::Working, created, ended);
        let task = self.tasks().exec(id);
        let end = page(daemon, id, [u64::MAX; 2], 1, Some(task.max_output)).await?;
        let cancelled = info.state == JobState::Killed && (task.cancelled || end.result.is_some());
        let payload = if cancelled {
            TaskPayload::Cancelled
        } else {
            let result = match end.result {
                Some(result) => operation_result(*result),
                None => exec_task_result(&info, task, end.exec)?,
            };
            TaskPayload::Completed {
                result: result_object(&result)?,
            }
        };
        Ok(DetailedTask::new(base, payload))
    }

    /// `tasks/cancel`: stop task `id`. A job is sent TERM, then KILL; a
    /// task of this shim has its call cancelled. Either way the task's
    /// state says when it has stopped.
    pub(crate) async fn cancel_task_by_id(&self, id: &str) -> Result<(), ErrorData> {
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
        job_info(self.daemon_link(), id).await.map(|_| ())
    }
}

/// What `exec` would have answered for the command of ended job `info`:
/// its output and how it ended; the timeout error when the deadline
/// stopped it; the connection error when the daemon lost it.
fn exec_task_result(
    info: &JobInfo,
    task: ExecTask,
    output: Option<Box<ExecOutput>>,
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
    let output = output.ok_or_else(|| {
        ErrorData::internal_error("sshmcpd did not answer a job's output as an exec's", None)
    })?;
    Ok(rendered(answer::<Exec>(
        task.asked,
        Response::Exec(*output),
    )))
}

/// What `transfer` or `sync` would have answered, from how the job that
/// ran it ended.
fn operation_result(result: JobResult) -> CallToolResult {
    rendered(match result {
        JobResult::Transfer { request, done } => {
            answer::<Transfer>(Paths::of(&request), Response::Transfer(done))
        }
        JobResult::Sync { request, done } => {
            answer::<DirSync>(Dirs::of(&request), Response::Sync(done))
        }
        JobResult::Failed(error) => Err(error),
    })
}

/// The newest progress line of an operation's job, from the end of its
/// output.
async fn latest_line(daemon: &DaemonLink, job_id: &str) -> Result<String, ErrorData> {
    const TAIL: u64 = 256;
    let end = page(daemon, job_id, [u64::MAX; 2], 1, None).await?;
    let from = end.next_stdout_offset.saturating_sub(TAIL);
    let tail = page(daemon, job_id, [from, u64::MAX], TAIL, None).await?;
    let text = String::from_utf8_lossy(&tail.stdout);
    Ok(text
        .lines()
        .rfind(|line| !line.trim().is_empty())
        .unwrap_or("starting")
        .to_string())
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
/// most `max_bytes` a stream, without waiting; with `as_exec`, also the
/// streams as an `exec` answers them, up to that many bytes each.
async fn page(
    daemon: &DaemonLink,
    job_id: &str,
    [stdout_offset, stderr_offset]: [u64; 2],
    max_bytes: u64,
    as_exec: Option<u64>,
) -> Result<JobOutput, ErrorData> {
    let request = Request::JobOutput(JobOutputRequest {
        job_id: job_id.to_string(),
        stdout_offset: Some(stdout_offset),
        stderr_offset: Some(stderr_offset),
        wait_secs: None,
        max_bytes: Some(max_bytes),
        as_exec,
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
}
