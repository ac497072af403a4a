//! The audit log (`[audit]`): one sealed JSON line for every request that
//! touches a host or changes something, written by the dispatcher after
//! the op ran and before its reply goes out; the record of a read follows
//! its reply (see [`AuditLog::after_reply`]). The line's format and the
//! chain that makes a rewrite show (`mac`, `prev`, `audit.head`) live in
//! `sshmcp_proto::audit`, shared with `sshmcpctl audit verify`; this is
//! the writer.
//!
//! Writes are one `write` of a whole line to a file opened `O_APPEND`,
//! under one mutex, so concurrent requests still make one unbroken chain.
//! There is no fsync per record: a record costs a few microseconds, not a
//! disk flush, and what a crash of the daemon leaves is whole lines (the
//! kernel has them); a crash of the machine may lose the newest records or
//! cut the last one, which `verify` then names as truncated.
//!
//! When a write fails (disk full, unwritable), the failure is kept, logged
//! and shown by `status`; with `on_failure = "deny"` requests that change
//! things are refused until a write succeeds again, and every request
//! retries, so the log recovers by itself once there is room.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use sshmcp_proto::audit::{self as format, Digest, Head, KEY_LEN, Key, Record, Verdict};
use sshmcp_proto::{Error, ErrorKind, Reply, Request, Response};

use crate::config::ByteSize;
use crate::ops::Caller;

/// The smallest `max_bytes`: a file must hold a few records.
const MIN_MAX_BYTES: u64 = 4 << 10;
/// How often a log that keeps failing is warned about.
const WARN_EVERY: Duration = Duration::from_secs(60);
/// Longest command line kept, as long as validation lets one be.
const MAX_COMMAND: usize = sshmcp_proto::MAX_COMMAND_BYTES;
/// Longest path, alias, id or name kept; a refused request may carry
/// longer ones, which are cut.
const MAX_FIELD: usize = sshmcp_proto::MAX_PATH_BYTES;

/// `[audit]`: where the log goes and what happens when it cannot be
/// written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Record requests at all.
    pub enabled: bool,
    /// The log file; default `audit.jsonl` in the daemon's state directory.
    pub path: Option<PathBuf>,
    /// Past this size the log is renamed `audit.jsonl.<first seq>` and a
    /// new one started. Rotated files are never deleted by the daemon.
    pub max_bytes: ByteSize,
    /// When the log cannot be written: `"deny"` refuses requests that
    /// change things until it can; `"allow"` runs them and logs a warning.
    pub on_failure: OnFailure,
}

impl Default for AuditSection {
    fn default() -> Self {
        AuditSection {
            enabled: true,
            path: None,
            max_bytes: ByteSize(64 << 20),
            on_failure: OnFailure::Deny,
        }
    }
}

/// `[audit] on_failure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Refuse requests that change things while the log cannot be written.
    Deny,
    /// Run them anyway; the failure is logged.
    Allow,
}

impl OnFailure {
    fn as_str(self) -> &'static str {
        match self {
            OnFailure::Deny => "deny",
            OnFailure::Allow => "allow",
        }
    }
}

impl AuditSection {
    pub fn validate(&self) -> Result<(), String> {
        if self.max_bytes.0 < MIN_MAX_BYTES {
            return Err(format!(
                "audit.max_bytes = {} is below 4K; a log file must hold a few records",
                self.max_bytes
            ));
        }
        if let Some(path) = &self.path
            && !path.is_absolute()
            && !path.starts_with("~")
        {
            return Err(format!(
                "audit.path = `{}` is not an absolute path; write it as /... or ~/...",
                path.display()
            ));
        }
        Ok(())
    }

    /// The log's file: `path` (`~/` is the home directory), else
    /// `audit.jsonl` in `state_dir`.
    fn log_path(&self, state_dir: Option<&Path>) -> Option<PathBuf> {
        match &self.path {
            Some(path) => match path.strip_prefix("~") {
                Ok(rest) => std::env::var_os("HOME").map(|home| Path::new(&home).join(rest)),
                Err(_) => Some(path.clone()),
            },
            None => state_dir.map(|dir| dir.join(format::LOG_FILE)),
        }
    }
}

/// How the dispatcher judged a request before its op ran: the default
/// lets it through; a check that refuses it (validation, an unknown host,
/// a rate limit, a failing audit log, a policy rule) says so with the rule
/// that decided. The audit record carries it as `decision` and `rule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub rule: Option<String>,
}

impl Decision {
    /// Refused by `rule` (`limits.client_rps`, `validation`, ...).
    pub fn deny(rule: impl Into<String>) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            rule: Some(rule.into()),
        }
    }
}

/// Where the dispatcher's checks leave their [`Decision`] while the
/// request makes its way to its op; read once the reply is known.
#[derive(Debug, Default)]
pub struct DecisionSlot(Mutex<Decision>);

impl DecisionSlot {
    pub fn set(&self, decision: Decision) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = decision;
    }

    /// Refused by `rule`.
    pub fn deny(&self, rule: &str) {
        self.set(Decision::deny(rule));
    }

    pub fn into_inner(self) -> Decision {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// A request on its way, with what its record says about it so far
/// (taken before the request is consumed); [`AuditLog::record`] completes
/// and writes it.
pub struct Pending {
    record: Record,
    /// A batch is recorded only when refused as a whole: its calls are
    /// each recorded on their own.
    batch: bool,
    /// A read of a host's files ([`is_read`]).
    read: bool,
}

/// The audit log: its place, its settings (a reload changes all but the
/// path), and the writer.
pub struct AuditLog {
    paths: Option<Paths>,
    enabled: AtomicBool,
    deny: AtomicBool,
    max_bytes: AtomicU64,
    /// The last write failed: read without the lock on every request that
    /// may be refused for it.
    failing: AtomicBool,
    writer: Mutex<Writer>,
}

/// The log and the files kept beside its chain.
#[derive(Debug, Clone)]
struct Paths {
    log: PathBuf,
    key: PathBuf,
    head: PathBuf,
}

impl AuditLog {
    /// The log `section` describes, with its key and head in `state_dir`
    /// (beside the log when there is none). Nothing is opened yet.
    pub fn new(section: &AuditSection, state_dir: Option<&Path>) -> AuditLog {
        let paths = section.log_path(state_dir).and_then(|log| {
            let dir = state_dir
                .map(Path::to_path_buf)
                .or_else(|| log.parent().map(Path::to_path_buf))?;
            Some(Paths {
                key: dir.join(format::KEY_FILE),
                head: dir.join(format::HEAD_FILE),
                log,
            })
        });
        let log = AuditLog {
            paths,
            enabled: AtomicBool::new(false),
            deny: AtomicBool::new(false),
            max_bytes: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            writer: Mutex::new(Writer::default()),
        };
        log.configure(section);
        log
    }

    /// Apply a reloaded `[audit]` (all of it but `path`, which the
    /// chain's files are tied to until a restart).
    pub fn configure(&self, section: &AuditSection) {
        self.enabled.store(section.enabled, Ordering::Relaxed);
        self.deny
            .store(section.on_failure == OnFailure::Deny, Ordering::Relaxed);
        self.max_bytes.store(section.max_bytes.0, Ordering::Relaxed);
    }

    /// Record the daemon's start: the log's first write, so a log that
    /// cannot be written is known before the first request runs.
    pub fn record_start(&self) {
        if !self.enabled.load(Ordering::Relaxed) {
            return;
        }
        let pid = std::process::id();
        let record = Record {
            caller: format::Caller {
                uid: Some(crate::connection::current_uid()),
                pid: i32::try_from(pid).ok(),
                exe: executable(pid),
                binary: "sshmcpd".into(),
                ..format::Caller::default()
            },
            tool: "start".into(),
            result: "ok".into(),
            ..Record::default()
        };
        self.write(record);
    }

    /// What the record of `request` says before it runs; `None` when it is
    /// not recorded: the log is off, or the request only looks at the
    /// daemon (status, stats, hosts, cache counters, the job and shell
    /// lists, a job's output), touching no host and changing nothing.
    pub fn begin(&self, caller: &Caller, request: &Request) -> Option<Pending> {
        if !self.enabled.load(Ordering::Relaxed) || !recorded(request) {
            return None;
        }
        let mut record = Record {
            caller: format::Caller {
                uid: caller.uid,
                pid: caller.pid,
                exe: caller.exe.clone(),
                binary: caller.binary.clone(),
                mcp_client: caller.mcp_client.clone(),
                mcp_client_version: caller.mcp_client_version.clone(),
            },
            tool: request.op_name().into(),
            host: request.host().map(|h| clip(h, MAX_FIELD)),
            ..Record::default()
        };
        describe(&mut record, request);
        Some(Pending {
            batch: matches!(request, Request::Batch(_)),
            read: is_read(request),
            record,
        })
    }

    /// Why `request` may not run now, if it may not: it would change
    /// something while the log cannot be written and `on_failure` is
    /// `"deny"`.
    pub fn refusal(&self, request: &Request) -> Option<Error> {
        if !self.failing.load(Ordering::Relaxed)
            || !self.enabled.load(Ordering::Relaxed)
            || !self.deny.load(Ordering::Relaxed)
            || !changes_things(request)
        {
            return None;
        }
        let why = self.failure().unwrap_or_else(|| "a write failed".into());
        Some(Error::new(
            ErrorKind::PolicyDenied,
            format!(
                "{why}; [audit] on_failure = \"deny\" refuses {} until the audit log can be \
                 written. Free space there (every request retries, so it recovers by itself), or \
                 set [audit] on_failure = \"allow\" and reload",
                request.op_name()
            ),
        ))
    }

    /// Complete `pending` with how the request was judged and how it
    /// ended, and write it: before the reply goes out, or just after it
    /// when [`AuditLog::after_reply`] says so.
    pub fn record(&self, pending: Pending, decision: Decision, reply: &Reply, took: Duration) {
        if pending.batch && reply.is_ok() {
            return;
        }
        let mut record = pending.record;
        record.decision = decision.verdict;
        record.rule = decision.rule;
        record.duration_ms = took.as_millis() as u64;
        match reply {
            Ok(response) => {
                record.result = "ok".into();
                outcome(&mut record, response);
            }
            Err(error) => {
                record.result = error.kind.as_str().into();
                record.error = Some(clip_chars(&error.message, format::MAX_ERROR_CHARS));
            }
        }
        self.write(record);
    }

    /// Whether `pending` may be recorded once its reply is on its way: a
    /// read ([`is_read`]), unless the last write failed. While it does,
    /// every record is written before its reply, so the read that brings
    /// the log back has done so when it is answered.
    pub fn after_reply(&self, pending: &Pending) -> bool {
        pending.read && !self.failing.load(Ordering::Relaxed)
    }

    /// Why the log cannot be written now; `None` when the last write
    /// succeeded.
    pub fn failure(&self) -> Option<String> {
        if !self.failing.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().error.clone()
    }

    /// The log as `status` shows it.
    pub fn status(&self) -> sshmcp_proto::AuditStatus {
        let show = |path: Option<&PathBuf>| path.map(|p| p.display().to_string());
        let writer = self.lock();
        sshmcp_proto::AuditStatus {
            enabled: self.enabled.load(Ordering::Relaxed),
            path: show(self.paths.as_ref().map(|p| &p.log)),
            key: show(self.paths.as_ref().map(|p| &p.key)),
            head: show(self.paths.as_ref().map(|p| &p.head)),
            records: writer.written,
            last_seq: writer.position.map_or(0, |position| position.next_seq - 1),
            on_failure: if self.deny.load(Ordering::Relaxed) {
                OnFailure::Deny.as_str().into()
            } else {
                OnFailure::Allow.as_str().into()
            },
            error: self
                .failing
                .load(Ordering::Relaxed)
                .then(|| writer.error.clone())
                .flatten(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stamp, chain, seal and append `record`; on failure keep why.
    fn write(&self, mut record: Record) {
        record.time = format::timestamp(SystemTime::now());
        let max_bytes = self.max_bytes.load(Ordering::Relaxed);
        let mut writer = self.lock();
        let result = match &self.paths {
            Some(paths) => writer.append(paths, record, max_bytes),
            None => Err(Failure::lost(
                "no place for the audit log: set [audit] path, or HOME, XDG_STATE_HOME or \
                 STATE_DIRECTORY for the daemon's state directory"
                    .into(),
            )),
        };
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    writer.warned = None;
                    tracing::info!(
                        unrecorded = writer.failures,
                        "the audit log is written again"
                    );
                    writer.failures = 0;
                }
            }
            Err(failure) => {
                if failure.lost {
                    writer.unrecorded += 1;
                }
                writer.failures += 1;
                self.failing.store(true, Ordering::Relaxed);
                let due = writer.warned.is_none_or(|at| at.elapsed() >= WARN_EVERY);
                if due {
                    let deny = self.deny.load(Ordering::Relaxed);
                    tracing::warn!(
                        failures = writer.failures,
                        "{}; {}",
                        failure.message,
                        if deny {
                            "requests that change things are refused until it can be written \
                             ([audit] on_failure = \"deny\")"
                        } else {
                            "requests run unrecorded ([audit] on_failure = \"allow\")"
                        }
                    );
                    writer.warned = Some(Instant::now());
                }
                writer.error = Some(failure.message);
            }
        }
    }
}

/// Whether `request` is recorded: all but what only looks at the daemon.
fn recorded(request: &Request) -> bool {
    match request {
        Request::Status
        | Request::Stats
        | Request::Hosts
        | Request::Cache
        | Request::Jobs { .. }
        | Request::Shells { .. }
        | Request::JobOutput(_) => false,
        Request::Exec(_)
        | Request::Warm { .. }
        | Request::Drain { .. }
        | Request::Stat(_)
        | Request::ListDir(_)
        | Request::ReadFile(_)
        | Request::WriteFile(_)
        | Request::Mkdir(_)
        | Request::Remove(_)
        | Request::Rename(_)
        | Request::Transfer(_)
        | Request::Sync(_)
        | Request::Reload
        | Request::Batch(_)
        | Request::CacheClear { .. }
        | Request::JobSignal(_)
        | Request::ShellOpen(_)
        | Request::ShellExec(_)
        | Request::ShellClose(_) => true,
    }
}

/// Whether `request` only reads a host's files (`stat`, `list_dir`,
/// `read_file`): its record may be written just after its reply rather
/// than before, so the reply of one answered from the cache is not held
/// back for a file write. Anything else, above all whatever may change a
/// host, is in the log before its reply goes out. Either way a
/// connection's records are written before its next reply.
fn is_read(request: &Request) -> bool {
    matches!(
        request,
        Request::Stat(_) | Request::ListDir(_) | Request::ReadFile(_)
    )
}

/// Whether `request` changes things (on a host, or a command's life), so
/// that a failing log with `on_failure = "deny"` refuses it. `exec` counts:
/// nothing tells what a command does. Reads and the daemon's own steering
/// (warm, drain, reload, cache clear, closing a shell) still run.
fn changes_things(request: &Request) -> bool {
    match request {
        Request::Exec(_)
        | Request::ShellOpen(_)
        | Request::ShellExec(_)
        | Request::WriteFile(_)
        | Request::Mkdir(_)
        | Request::Remove(_)
        | Request::Rename(_)
        | Request::Transfer(_)
        | Request::Sync(_)
        | Request::JobSignal(_) => true,
        Request::Status
        | Request::Stats
        | Request::Hosts
        | Request::Warm { .. }
        | Request::Drain { .. }
        | Request::Stat(_)
        | Request::ListDir(_)
        | Request::ReadFile(_)
        | Request::Reload
        | Request::Batch(_)
        | Request::Cache
        | Request::CacheClear { .. }
        | Request::JobOutput(_)
        | Request::Jobs { .. }
        | Request::ShellClose(_)
        | Request::Shells { .. } => false,
    }
}

/// What `request` does, as the record keeps it: commands, paths, ids,
/// names and flags; never data, stdin or environment values.
fn describe(record: &mut Record, request: &Request) {
    let field = |text: &str| Some(clip(text, MAX_FIELD));
    let mut flags: Vec<&str> = Vec::new();
    match request {
        Request::Exec(req) => {
            record.command = Some(clip(&req.command, MAX_COMMAND));
            record.sudo = req.sudo;
            record.sudo_user = req.sudo_user.as_deref().and_then(field);
            flags.extend(flags_on([
                (req.background, "background"),
                (req.detach, "detach"),
            ]));
        }
        Request::Stat(req) => record.path = field(&req.path),
        Request::ListDir(req) => {
            record.path = field(&req.path);
            if req.recursive {
                flags.push("recursive");
            }
        }
        Request::ReadFile(req) => record.path = field(&req.path),
        Request::WriteFile(req) => {
            record.path = field(&req.path);
            flags.extend(flags_on([
                (req.append, "append"),
                (req.create_dirs, "create_dirs"),
            ]));
        }
        Request::Mkdir(req) => {
            record.path = field(&req.path);
            if req.parents {
                flags.push("parents");
            }
        }
        Request::Remove(req) => {
            record.path = field(&req.path);
            if req.recursive {
                flags.push("recursive");
            }
        }
        Request::Rename(req) => {
            record.path = field(&req.from);
            record.to = field(&req.to);
            if req.overwrite {
                flags.push("overwrite");
            }
        }
        Request::Transfer(req) => {
            record.direction = Some(req.direction.as_str().into());
            record.local_path = field(&req.local_path);
            record.remote_path = field(&req.remote_path);
            flags.extend(flags_on([
                (req.recursive, "recursive"),
                (req.resume, "resume"),
                (req.follow_symlinks, "follow_symlinks"),
            ]));
        }
        Request::Sync(req) => {
            record.direction = Some(req.direction.as_str().into());
            record.local_path = field(&req.local_dir);
            record.remote_path = field(&req.remote_dir);
            flags.extend(flags_on([
                (req.delete, "delete"),
                (req.dry_run, "dry_run"),
                (req.checksum, "checksum"),
            ]));
        }
        Request::JobSignal(req) => {
            record.job_id = field(&req.job_id);
            record.signal = field(&req.signal);
        }
        Request::ShellOpen(req) => {
            record.cwd = req.cwd.as_deref().and_then(field);
            record.env_names = req.env.keys().map(|name| clip(name, MAX_FIELD)).collect();
        }
        Request::ShellExec(req) => {
            record.shell_id = field(&req.shell_id);
            record.command = Some(clip(&req.command, MAX_COMMAND));
            record.sudo = req.sudo;
            record.sudo_user = req.sudo_user.as_deref().and_then(field);
        }
        Request::ShellClose(req) => record.shell_id = field(&req.shell_id),
        Request::Batch(batch) => record.calls = Some(batch.calls.len() as u64),
        Request::Status
        | Request::Stats
        | Request::Hosts
        | Request::Warm { .. }
        | Request::Drain { .. }
        | Request::Reload
        | Request::Cache
        | Request::CacheClear { .. }
        | Request::JobOutput(_)
        | Request::Jobs { .. }
        | Request::Shells { .. } => {}
    }
    record.flags = flags.into_iter().map(str::to_owned).collect();
}

/// The names of the flags that are on.
fn flags_on<const N: usize>(
    flags: [(bool, &'static str); N],
) -> impl Iterator<Item = &'static str> {
    flags
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
}

/// What the reply says that the record keeps: exit status, bytes moved,
/// the shell or job it left.
fn outcome(record: &mut Record, response: &Response) {
    match response {
        Response::Cached(cached) => outcome(record, &cached.response),
        Response::Exec(out) => {
            record.exit_code = out.exit_code;
            record.bytes = Some(out.stdout_bytes + out.stderr_bytes);
            record.job_id = out.job.as_ref().map(|job| clip(&job.job_id, MAX_FIELD));
        }
        Response::ShellExec(done) => {
            record.exit_code = done.output.exit_code;
            record.bytes = Some(done.output.stdout_bytes + done.output.stderr_bytes);
        }
        Response::ShellOpened(opened) => record.shell_id = Some(clip(&opened.shell_id, MAX_FIELD)),
        Response::WriteFile(written) => record.bytes = Some(written.bytes_written),
        Response::ReadFile(content) => record.bytes = Some(content.data.len() as u64),
        Response::Transfer(done) => record.bytes = Some(done.bytes),
        Response::Sync(done) => record.bytes = Some(done.bytes),
        _ => {}
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), saying
/// how long it was.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…[{} bytes in all]", &text[..end], text.len())
}

/// `text` cut to at most `max` characters.
fn clip_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The executable of process `pid`, as `/proc` names it.
pub fn executable(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .map(|path| path.display().to_string())
}

/// Where the chain goes on: the next record's `seq` and `prev`.
#[derive(Debug, Clone, Copy)]
struct Position {
    next_seq: u64,
    prev: Digest,
}

/// The open log file.
struct LogFile {
    file: File,
    /// Bytes in it, as written here; a failed write is cut back to this.
    len: u64,
    /// A regular file (not `/dev/full`, a FIFO, ...): only these rotate.
    regular: bool,
    /// The first `seq` it holds, which names it when it is rotated.
    first_seq: Option<u64>,
    /// It ends in a partial line (a crash mid-write): the next record
    /// starts on a line of its own.
    torn: bool,
    /// A failed write could not be cut back: try again before the next.
    dirty: bool,
}

/// The writer's state, behind the log's one mutex.
#[derive(Default)]
struct Writer {
    key: Option<Key>,
    log: Option<LogFile>,
    head: Option<File>,
    position: Option<Position>,
    /// Records written since start.
    written: u64,
    /// Records lost since the last one written.
    unrecorded: u64,
    /// Failures since the log last worked.
    failures: u64,
    error: Option<String>,
    warned: Option<Instant>,
}

/// A write that did not happen.
struct Failure {
    message: String,
    /// The record is lost (not only the head behind it).
    lost: bool,
}

impl Failure {
    fn lost(message: String) -> Failure {
        Failure {
            message,
            lost: true,
        }
    }
}

impl Writer {
    fn append(&mut self, paths: &Paths, mut record: Record, max_bytes: u64) -> Result<(), Failure> {
        let key = self.key(paths).map_err(Failure::lost)?;
        let position = match self.position {
            Some(position) => position,
            None => {
                let position = find_position(paths, &key);
                self.position = Some(position);
                position
            }
        };
        let cannot_write = |e: io::Error| {
            Failure::lost(format!(
                "cannot write the audit log {}: {e}",
                paths.log.display()
            ))
        };
        if self.log.is_none() {
            self.log = Some(open_log(&paths.log).map_err(cannot_write)?);
        }
        record.seq = position.next_seq;
        record.prev = position.prev.hex();
        record.unrecorded = self.unrecorded;
        let sealed = format::seal(&key, &record)
            .map_err(|e| Failure::lost(format!("cannot encode an audit record: {e}")))?;
        self.rotate(paths, sealed.line.len() as u64, max_bytes, record.seq)
            .map_err(cannot_write)?;
        let Some(log) = self.log.as_mut() else {
            return Err(Failure::lost("the audit log is not open".into()));
        };
        if log.dirty {
            log.file.set_len(log.len).map_err(cannot_write)?;
            log.dirty = false;
        }
        let written = if log.torn {
            let mut line = Vec::with_capacity(sealed.line.len() + 1);
            line.push(b'\n');
            line.extend_from_slice(&sealed.line);
            log.file.write_all(&line).map(|()| line.len())
        } else {
            log.file.write_all(&sealed.line).map(|()| sealed.line.len())
        };
        match written {
            Ok(n) => {
                log.len += n as u64;
                log.torn = false;
                log.first_seq.get_or_insert(record.seq);
                self.written += 1;
                self.unrecorded = 0;
            }
            Err(e) => {
                // A partial line would glue itself to the next record.
                if log.regular && log.file.set_len(log.len).is_err() {
                    log.dirty = true;
                }
                return Err(cannot_write(e));
            }
        }
        self.position = Some(Position {
            next_seq: record.seq + 1,
            prev: sealed.chain,
        });
        let head = Head {
            seq: record.seq,
            chain: sealed.chain,
        };
        self.write_head(&paths.head, &head).map_err(|e| Failure {
            message: format!(
                "cannot write the audit head {}: {e}; removing the newest records would go unnoticed",
                paths.head.display()
            ),
            lost: false,
        })
    }

    /// The key, read or made on first use.
    fn key(&mut self, paths: &Paths) -> Result<Key, String> {
        if let Some(key) = &self.key {
            return Ok(key.clone());
        }
        let key = load_or_make_key(paths)?;
        self.key = Some(key.clone());
        Ok(key)
    }

    /// Move a full log aside as `audit.jsonl.<first seq>` and start a new
    /// one, when a line of `len` bytes would take it past `max_bytes`.
    fn rotate(&mut self, paths: &Paths, len: u64, max_bytes: u64, seq: u64) -> io::Result<()> {
        let Some(log) = &self.log else {
            return Ok(());
        };
        if !log.regular || log.len == 0 || log.len + len <= max_bytes {
            return Ok(());
        }
        // Named by its first record; one whose first line is unreadable by
        // its last, which still sorts it before the file that follows.
        let first = log.first_seq.unwrap_or(seq - 1);
        let rotated = format::rotated_path(&paths.log, first);
        if rotated.exists() {
            tracing::warn!(
                rotated = %rotated.display(),
                "not rotating the audit log: a file of that name exists, and rotated files are \
                 never replaced"
            );
            return Ok(());
        }
        if let Err(e) = std::fs::rename(&paths.log, &rotated) {
            tracing::warn!(log = %paths.log.display(), "cannot rotate the audit log: {e}");
            return Ok(());
        }
        self.log = None;
        self.log = Some(open_log(&paths.log)?);
        Ok(())
    }

    /// Rewrite the head in place: one write of a fixed size.
    fn write_head(&mut self, path: &Path, head: &Head) -> io::Result<()> {
        if self.head.is_none() {
            let file = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)?;
            if file.metadata()?.len() > Head::LEN as u64 {
                file.set_len(Head::LEN as u64)?;
            }
            self.head = Some(file);
        }
        let Some(file) = &self.head else {
            return Ok(());
        };
        let written = file.write_all_at(&head.encode(), 0);
        if written.is_err() {
            self.head = None;
        }
        written
    }
}

/// Read the key, or make one (32 bytes from the OS's CSPRNG, mode 0600)
/// when there is none and no log a lost key would orphan.
fn load_or_make_key(paths: &Paths) -> Result<Key, String> {
    match Key::load(&paths.key) {
        Ok(key) => return Ok(key),
        Err(format::KeyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.to_string()),
    }
    let has_records = paths.head.exists()
        || format::log_files(&paths.log)
            .unwrap_or_default()
            .iter()
            .any(|file| std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() > 0));
    if has_records {
        return Err(format!(
            "the audit key {} is missing but the audit log {} has records; restore the key, or \
             move the log, its rotated files and {} away to start a new log",
            paths.key.display(),
            paths.log.display(),
            paths.head.display()
        ));
    }
    let mut bytes = [0u8; KEY_LEN];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot make an audit key: {e}"))?;
    let cannot = |e: io::Error| format!("cannot create the audit key {}: {e}", paths.key.display());
    if let Some(dir) = paths.key.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(cannot)?;
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&paths.key)
    {
        Ok(mut file) => {
            file.write_all(&bytes).map_err(|e| {
                let _ = std::fs::remove_file(&paths.key);
                cannot(e)
            })?;
            tracing::info!(key = %paths.key.display(), "made a new audit key");
            Ok(Key::new(&bytes))
        }
        // Another daemon made it first.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            Key::load(&paths.key).map_err(|e| e.to_string())
        }
        Err(e) => Err(cannot(e)),
    }
}

/// Open the log for appending (creating it and its directory, owner-only).
fn open_log(path: &Path) -> io::Result<LogFile> {
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)?;
    let meta = file.metadata()?;
    let regular = meta.is_file();
    let len = if regular { meta.len() } else { 0 };
    let (first_seq, torn) = if len > 0 {
        let mut last = [0u8; 1];
        let reader = File::open(path)?;
        reader.read_exact_at(&mut last, len - 1)?;
        (first_seq(&reader), last[0] != b'\n')
    } else {
        (None, false)
    };
    Ok(LogFile {
        file,
        len,
        regular,
        first_seq,
        torn,
        dirty: false,
    })
}

/// The `seq` of the first record in `file`, if it has a readable one.
fn first_seq(file: &File) -> Option<u64> {
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    let mut buf = vec![0u8; 64 << 10];
    let n = file.read_at(&mut buf, 0).ok()?;
    let line = buf[..n].split(|&b| b == b'\n').next()?;
    serde_json::from_slice::<Seq>(line).ok().map(|s| s.seq)
}

/// Where the chain goes on, from the log's newest whole line and the head.
/// When they disagree (lines removed from the end, the newest edited), the
/// chain goes on from the head, so the break stays where `verify` finds it;
/// a head behind the log (a crash between the two writes) is only stale.
fn find_position(paths: &Paths, key: &Key) -> Position {
    let head = match Head::load(&paths.head) {
        Ok(head) => head,
        Err(e) => {
            tracing::error!(head = %paths.head.display(), "unreadable audit head, ignored: {e}");
            None
        }
    };
    let newest = newest_line(&paths.log).unwrap_or_else(|e| {
        tracing::error!(log = %paths.log.display(), "cannot read the audit log's end: {e}");
        None
    });
    let from_head = |head: Head| Position {
        next_seq: head.seq + 1,
        prev: head.chain,
    };
    let broken = |what: String| {
        tracing::error!(
            log = %paths.log.display(),
            "{what}; the chain goes on from audit.head, and `sshmcpctl audit verify` names the break"
        );
    };
    match (newest, head) {
        (None, None) => Position {
            next_seq: 1,
            prev: format::genesis(key),
        },
        (None, Some(head)) => {
            broken(format!(
                "the audit log has no records but audit.head names seq {}",
                head.seq
            ));
            from_head(head)
        }
        (Some(line), head) => match (format::authentic(key, &line), head) {
            (Some((seq, _)), Some(head)) if head.seq > seq => {
                broken(format!(
                    "the audit log ends at seq {seq} but audit.head names seq {}: records were \
                     removed from its end",
                    head.seq
                ));
                from_head(head)
            }
            (Some((seq, chain)), Some(head)) if head.seq == seq && head.chain != chain => {
                broken(format!(
                    "the audit log's newest record (seq {seq}) is not the one audit.head names"
                ));
                from_head(head)
            }
            (Some((seq, chain)), _) => Position {
                next_seq: seq + 1,
                prev: chain,
            },
            (None, Some(head)) => {
                broken("the audit log's newest line is not a record this key sealed".into());
                from_head(head)
            }
            (None, None) => {
                tracing::error!(
                    log = %paths.log.display(),
                    "the audit log's newest line is not a record this key sealed and there is no \
                     audit.head; the chain goes on from that line as it is"
                );
                Position {
                    next_seq: format::record_seq(&line).map_or(1, |seq| seq + 1),
                    prev: key.hmac(&line),
                }
            }
        },
    }
}

/// The newest whole line (without its newline) of the log and its rotated
/// files, skipping a partial line a crash left at the end; only regular
/// files are read (`/dev/full` reads zeros forever).
fn newest_line(log: &Path) -> io::Result<Option<Vec<u8>>> {
    for path in format::log_files(log)?.iter().rev() {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        if let Some(line) = last_whole_line(&file, meta.len())? {
            return Ok(Some(line));
        }
    }
    Ok(None)
}

/// The last newline-terminated line of `file` (`len` bytes long).
fn last_whole_line(file: &File, len: u64) -> io::Result<Option<Vec<u8>>> {
    let mut window = 64u64 << 10;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        let end = buf.iter().rposition(|&b| b == b'\n');
        let begin = end.and_then(|end| buf[..end].iter().rposition(|&b| b == b'\n'));
        match (end, begin) {
            (Some(end), Some(begin)) => return Ok(Some(buf[begin + 1..end].to_vec())),
            (Some(end), None) if start == 0 => return Ok(Some(buf[..end].to_vec())),
            (None, _) if start == 0 => return Ok(None),
            _ => window *= 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(dir: &Path, max_bytes: u64) -> AuditSection {
        AuditSection {
            path: Some(dir.join("log").join(format::LOG_FILE)),
            max_bytes: ByteSize(max_bytes),
            ..AuditSection::default()
        }
    }

    fn exec_record(n: usize) -> Record {
        Record {
            tool: "exec".into(),
            host: Some("web1".into()),
            command: Some(format!("echo {n}")),
            result: "ok".into(),
            ..Record::default()
        }
    }

    /// Every line of the log and its rotated files, checked as `verify`
    /// checks them.
    fn verify(dir: &Path, log: &Path) -> Result<format::Summary, format::Finding> {
        let key = Key::load(&dir.join(format::KEY_FILE)).unwrap();
        let head = Head::load(&dir.join(format::HEAD_FILE)).unwrap();
        let mut verifier = format::Verifier::new(&key, head, true);
        for file in format::log_files(log).unwrap() {
            verifier.file(&file.display().to_string());
            let text = std::fs::read(&file).unwrap();
            for line in text.split_inclusive(|&b| b == b'\n') {
                let terminated = line.ends_with(b"\n");
                verifier.line(line.strip_suffix(b"\n").unwrap_or(line), terminated)?;
            }
        }
        verifier.finish()
    }

    #[test]
    fn records_from_many_threads_make_one_chain_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let section = section(dir.path(), 8 << 10);
        let audit = std::sync::Arc::new(AuditLog::new(&section, Some(dir.path())));
        audit.record_start();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let audit = audit.clone();
                std::thread::spawn(move || {
                    for n in 0..250 {
                        audit.write(exec_record(t * 1000 + n));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let log = section.log_path(None).unwrap();
        let summary = verify(dir.path(), &log).unwrap();
        assert_eq!(summary.records, 1001);
        assert!(summary.files >= 3, "{summary}");
        assert_eq!(audit.status().records, 1001);
        let mode = std::fs::metadata(dir.path().join(format::KEY_FILE))
            .unwrap()
            .permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }

    #[test]
    fn a_restarted_writer_goes_on_with_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        let section = section(dir.path(), 64 << 20);
        for _ in 0..3 {
            let audit = AuditLog::new(&section, Some(dir.path()));
            audit.record_start();
            audit.write(exec_record(1));
        }
        let log = section.log_path(None).unwrap();
        assert_eq!(
            verify(dir.path(), &log).unwrap().to_string(),
            "ok: 6 records, seq 1–6, 1 file"
        );
    }

    #[test]
    fn lines_removed_while_stopped_stay_a_break_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let section = section(dir.path(), 64 << 20);
        let log = section.log_path(None).unwrap();
        let audit = AuditLog::new(&section, Some(dir.path()));
        for n in 0..4 {
            audit.write(exec_record(n));
        }
        drop(audit);
        let text = std::fs::read_to_string(&log).unwrap();
        let kept: Vec<&str> = text.lines().take(3).collect();
        std::fs::write(&log, kept.join("\n") + "\n").unwrap();
        let audit = AuditLog::new(&section, Some(dir.path()));
        audit.write(exec_record(9));
        let finding = verify(dir.path(), &log).unwrap_err();
        assert_eq!(finding.kind, format::FindingKind::Deleted, "{finding}");
        assert_eq!(finding.seq, Some(5), "{finding}");
    }

    #[test]
    fn a_write_that_fails_is_cut_back_and_counted_in_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let section = AuditSection {
            path: Some("/dev/full".into()),
            ..AuditSection::default()
        };
        let audit = AuditLog::new(&section, Some(dir.path()));
        audit.record_start();
        let failure = audit.failure().expect("writing /dev/full fails");
        assert!(
            failure.contains("/dev/full") && failure.contains("No space left on device"),
            "{failure}"
        );
        let exec = Request::Exec(sshmcp_proto::ExecRequest {
            host: "web1".into(),
            command: "true".into(),
            ..Default::default()
        });
        let refusal = audit.refusal(&exec).expect("exec is refused");
        assert_eq!(refusal.kind, ErrorKind::PolicyDenied);
        assert!(
            refusal.message.contains("on_failure = \"allow\""),
            "{refusal:?}"
        );
        audit.configure(&AuditSection {
            on_failure: OnFailure::Allow,
            ..section
        });
        assert!(audit.refusal(&exec).is_none(), "allow lets it run");
        assert_eq!(audit.lock().unrecorded, 1);
    }

    #[test]
    fn secrets_in_the_request_are_not_described() {
        let mut record = Record::default();
        let request = Request::ShellOpen(sshmcp_proto::ShellOpenRequest {
            host: "web1".into(),
            cwd: Some("/srv".into()),
            env: [("TOKEN".to_string(), "hunter2".to_string())].into(),
        });
        describe(&mut record, &request);
        let line = serde_json::to_string(&record).unwrap();
        assert!(line.contains("\"env_names\":[\"TOKEN\"]"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn errors_are_cut_to_300_characters() {
        let long = "é".repeat(400);
        let cut = clip_chars(&long, format::MAX_ERROR_CHARS);
        assert_eq!(cut.chars().count(), 301);
        assert!(cut.ends_with('…'));
        assert_eq!(clip("abcdef", 3), "abc…[6 bytes in all]");
    }
}
