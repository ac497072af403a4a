//! Every request's arguments, checked once before any work starts.
//!
//! The daemon runs [`Request::validate`] on each request it receives, so an
//! argument that could hurt a shared connection (a NUL byte in a command
//! makes sshd drop the whole connection, with every other client's channels
//! on it; a NUL in a path kills the shared SFTP session) or overflow a
//! deadline never reaches an op. The shim runs the same check before it
//! sends, so a model sees the same message either way. Each error names the
//! argument and its allowed range.

use crate::{
    Error, MAX_BATCH_CALLS, MAX_BATCH_CONCURRENCY, MAX_CACHE_SECS, MAX_JOB_WAIT_SECS,
    MAX_SHELL_ENV, Request,
};

/// Bytes of a reply frame kept for everything but its payload (paths,
/// counters, framing), so a reply whose data fills the rest still fits.
pub const REPLY_HEADROOM: usize = 64 * 1024;

/// Longest `command`: Linux refuses a single argument (the shell's `-c`
/// string) of 128 KiB or more with E2BIG, and OpenSSH drops the whole
/// connection for a request near its 256 KiB packet limit.
pub const MAX_COMMAND_BYTES: usize = 128 * 1024 - 1;

/// Longest remote or local path (Linux's PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;

/// Longest host alias.
pub const MAX_HOST_BYTES: usize = 255;

/// Longest `sudo_user`: Linux's login name limit.
pub const MAX_USER_BYTES: usize = 32;

/// Longest `exec` `timeout_secs`: one day.
pub const MAX_TIMEOUT_SECS: u64 = 86_400;

/// Most entries one `list_dir` may return.
pub const MAX_LIST_ENTRIES: u32 = 100_000;

/// Highest permission mode (`0o7777`: setuid, setgid, sticky, rwx x3).
pub const MAX_MODE: u32 = 0o7777;

/// Highest file offset (SFTP servers keep offsets in a signed 64-bit off_t).
pub const MAX_OFFSET: u64 = i64::MAX as u64;

/// The most output bytes per stream an `exec` reply can carry when frames
/// are at most `max_frame` bytes: both streams travel in one reply.
pub const fn max_output_per_stream(max_frame: usize) -> u64 {
    (max_frame.saturating_sub(REPLY_HEADROOM) / 2) as u64
}

/// The most file bytes one `read_file` reply can carry.
pub const fn max_read_per_reply(max_frame: usize) -> u64 {
    max_frame.saturating_sub(REPLY_HEADROOM) as u64
}

impl Request {
    /// Check every argument against its documented range; `max_frame` is
    /// the frame limit the reply must fit in. The error is `BadRequest`
    /// naming the op, the argument and what is allowed.
    pub fn validate(&self, max_frame: usize) -> Result<(), Error> {
        let op = self.op_name();
        if let Some(host) = self.host() {
            check_host(op, host)?;
        }
        match self {
            Request::Exec(req) => {
                check_command(
                    op,
                    &req.command,
                    "pass long scripts on `stdin` to `sh -s` instead",
                )?;
                if let Some(secs) = req.timeout_secs {
                    check_range(op, "timeout_secs", secs, 1, MAX_TIMEOUT_SECS, " (seconds)")?;
                }
                if let Some(secs) = req.cache_secs {
                    check_range(op, "cache_secs", secs, 1, MAX_CACHE_SECS, " (seconds)")?;
                    if req.background || req.detach || req.on_timeout != crate::OnTimeout::Kill {
                        return Err(bad(
                            op,
                            "`cache_secs` is for quick read-only commands; drop it with \
                             `background` or `on_timeout`",
                        ));
                    }
                    if req.sudo {
                        return Err(bad(
                            op,
                            "`cache_secs` cannot be used with `sudo`: sudo'd commands always \
                             run; drop one of them",
                        ));
                    }
                }
                if let Some(secs) = req.stop_after_secs {
                    check_range(
                        op,
                        "stop_after_secs",
                        secs,
                        1,
                        MAX_TIMEOUT_SECS,
                        " (seconds)",
                    )?;
                    if req.detach {
                        return Err(bad(
                            op,
                            "`stop_after_secs` cannot be used with `detach`: a detached job \
                             runs until it ends or is signalled; use `background` instead",
                        ));
                    }
                }
                if req.detach && req.sudo {
                    return Err(bad(
                        op,
                        "`detach` cannot be used with `sudo`: a detached job has no one to \
                         answer sudo; run it with `background` instead (it outlives the call \
                         but not the daemon)",
                    ));
                }
                if let Some(user) = &req.sudo_user {
                    check_sudo_user(op, user, req.sudo)?;
                }
                if let Some(bytes) = req.max_output_bytes {
                    let most = max_output_per_stream(max_frame);
                    check_range(
                        op,
                        "max_output_bytes",
                        bytes,
                        0,
                        most,
                        " (bytes per stream that fit in one reply)",
                    )?;
                }
            }
            Request::Stat(req) => {
                check_remote(op, "path", &req.path)?;
                check_age(op, req.max_age_secs)?;
            }
            Request::ListDir(req) => {
                check_remote(op, "path", &req.path)?;
                check_age(op, req.max_age_secs)?;
                if let Some(max) = req.max_entries {
                    check_range(
                        op,
                        "max_entries",
                        u64::from(max),
                        1,
                        u64::from(MAX_LIST_ENTRIES),
                        "",
                    )?;
                }
            }
            Request::ReadFile(req) => {
                check_remote(op, "path", &req.path)?;
                check_age(op, req.max_age_secs)?;
                check_range(op, "offset", req.offset, 0, MAX_OFFSET, " (bytes)")?;
                if let Some(length) = req.length {
                    check_range(op, "length", length, 0, MAX_OFFSET, " (bytes)")?;
                }
            }
            Request::WriteFile(req) => {
                check_remote(op, "path", &req.path)?;
                if req.path.ends_with('/') {
                    return Err(bad(
                        op,
                        format_args!("`{}` ends in `/`; name the file to write", req.path),
                    ));
                }
                if let Some(mode) = req.mode {
                    check_mode(op, mode)?;
                }
            }
            Request::Mkdir(req) => {
                check_remote(op, "path", &req.path)?;
                if let Some(mode) = req.mode {
                    check_mode(op, mode)?;
                }
            }
            Request::Remove(req) => {
                check_remote(op, "path", &req.path)?;
                let trimmed = req.path.trim_end_matches('/');
                if trimmed.is_empty() || matches!(trimmed, "." | ".." | "~") {
                    return Err(bad(
                        op,
                        format_args!(
                            "refusing to remove `{}`; name what to remove below it",
                            req.path
                        ),
                    ));
                }
            }
            Request::Rename(req) => {
                check_remote(op, "from", &req.from)?;
                check_remote(op, "to", &req.to)?;
            }
            Request::Transfer(req) => {
                check_path(op, "local_path", &req.local_path)?;
                check_remote(op, "remote_path", &req.remote_path)?;
                check_job_after(op, req.job_after_secs)?;
            }
            Request::Sync(req) => {
                check_path(op, "local_dir", &req.local_dir)?;
                check_remote(op, "remote_dir", &req.remote_dir)?;
                check_job_after(op, req.job_after_secs)?;
            }
            Request::Batch(batch) => {
                if batch.calls.is_empty() || batch.calls.len() > MAX_BATCH_CALLS {
                    return Err(bad(
                        op,
                        format_args!(
                            "`calls` has {} calls; pass 1 to {MAX_BATCH_CALLS}",
                            batch.calls.len()
                        ),
                    ));
                }
                if let Some(n) = batch.concurrency {
                    check_range(
                        op,
                        "concurrency",
                        u64::from(n),
                        1,
                        u64::from(MAX_BATCH_CONCURRENCY),
                        "",
                    )?;
                }
                for (i, call) in batch.calls.iter().enumerate() {
                    if call.is_admin() || matches!(call, Request::Batch(_) | Request::Warm { .. }) {
                        return Err(bad(
                            op,
                            format_args!(
                                "calls[{i}] is `{}`, which a batch cannot carry; batch host \
                                 operations only",
                                call.op_name()
                            ),
                        ));
                    }
                    let job_after = match call {
                        Request::Transfer(req) => req.job_after_secs,
                        Request::Sync(req) => req.job_after_secs,
                        _ => None,
                    };
                    if job_after.is_some() {
                        return Err(bad(
                            op,
                            format_args!(
                                "calls[{i}] sets `job_after_secs`, which a batch cannot carry \
                                 (its answer is one reply); send that call on its own"
                            ),
                        ));
                    }
                    call.validate(max_frame)
                        .map_err(|e| hint(e, &format!("in calls[{i}]")))?;
                }
            }
            Request::CacheClear { host: Some(host) }
            | Request::Jobs { host: Some(host) }
            | Request::Shells { host: Some(host) } => check_host(op, host)?,
            Request::ShellOpen(req) => {
                if let Some(cwd) = &req.cwd {
                    check_remote(op, "cwd", cwd)?;
                }
                check_env(op, &req.env)?;
            }
            Request::ShellExec(req) => {
                check_shell_id(op, &req.shell_id)?;
                check_command(
                    op,
                    &req.command,
                    "write long scripts to a file (write_file) and run that",
                )?;
                if let Some(secs) = req.timeout_secs {
                    check_range(op, "timeout_secs", secs, 1, MAX_TIMEOUT_SECS, " (seconds)")?;
                }
                if let Some(bytes) = req.max_output_bytes {
                    let most = max_output_per_stream(max_frame);
                    check_range(
                        op,
                        "max_output_bytes",
                        bytes,
                        0,
                        most,
                        " (bytes per stream)",
                    )?;
                }
                if let Some(user) = &req.sudo_user {
                    check_sudo_user(op, user, req.sudo)?;
                }
            }
            Request::ShellClose(req) => check_shell_id(op, &req.shell_id)?,
            Request::JobOutput(req) => {
                check_job_id(op, &req.job_id)?;
                if let Some(secs) = req.wait_secs {
                    check_range(op, "wait_secs", secs, 0, MAX_JOB_WAIT_SECS, " (seconds)")?;
                }
                // With `as_exec` the reply carries the streams twice: the
                // daemon shortens the page to make room.
                let most = max_output_per_stream(max_frame);
                if let Some(bytes) = req.max_bytes {
                    check_range(op, "max_bytes", bytes, 1, most, " (bytes per stream)")?;
                }
                if let Some(bytes) = req.as_exec {
                    check_range(op, "as_exec", bytes, 0, most, " (bytes per stream)")?;
                }
            }
            Request::JobSignal(req) => {
                check_job_id(op, &req.job_id)?;
                if !matches!(req.signal.as_str(), "INT" | "TERM" | "KILL" | "HUP") {
                    return Err(bad(
                        op,
                        format_args!(
                            "`signal` {:?} is not one of INT, TERM, KILL, HUP",
                            req.signal
                        ),
                    ));
                }
            }
            Request::Status
            | Request::Stats
            | Request::Hosts
            | Request::Warm { .. }
            | Request::Drain { .. }
            | Request::Reload
            | Request::Cache
            | Request::CacheClear { host: None }
            | Request::Jobs { host: None }
            | Request::Shells { host: None } => {}
        }
        Ok(())
    }
}

/// A job id as the daemon makes them: short, printable ASCII.
fn check_job_id(op: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad(
            op,
            format_args!("`job_id` {id:?} is not a job id; `jobs` lists them"),
        ));
    }
    Ok(())
}

/// A command line: not blank, no NUL, short enough for one argument;
/// `instead` says what to do with a longer one.
fn check_command(op: &str, command: &str, instead: &str) -> Result<(), Error> {
    if command.trim().is_empty() {
        return Err(bad(
            op,
            "`command` is empty; pass the shell command line to run",
        ));
    }
    check_text(op, "command", command, MAX_COMMAND_BYTES).map_err(|e| hint(e, instead))
}

/// A shell id as the daemon makes them: short, printable ASCII.
fn check_shell_id(op: &str, id: &str) -> Result<(), Error> {
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(bad(
            op,
            format_args!("`shell_id` {id:?} is not a shell id; shell_open returns one"),
        ));
    }
    Ok(())
}

/// Variables for a new shell: names a shell can assign
/// (`[A-Za-z_][A-Za-z0-9_]*`), values without NUL, a bounded number, and
/// all of it within one command line.
fn check_env(op: &str, env: &std::collections::BTreeMap<String, String>) -> Result<(), Error> {
    if env.len() > MAX_SHELL_ENV {
        return Err(bad(
            op,
            format_args!(
                "`env` sets {} variables; at most {MAX_SHELL_ENV} may be set",
                env.len()
            ),
        ));
    }
    let mut bytes = 0;
    for (name, value) in env {
        let mut chars = name.chars();
        let assignable = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !assignable || name.len() > 255 {
            return Err(bad(
                op,
                format_args!(
                    "`env` name {name:?} is not a variable name; use letters, digits and `_`, \
                     not starting with a digit (at most 255)"
                ),
            ));
        }
        check_text(op, &format!("env.{name}"), value, MAX_COMMAND_BYTES)?;
        bytes += name.len() + value.len();
    }
    if bytes > MAX_COMMAND_BYTES {
        return Err(bad(
            op,
            format_args!(
                "`env` holds {bytes} bytes of names and values; the most allowed is \
                 {MAX_COMMAND_BYTES}"
            ),
        ));
    }
    Ok(())
}

/// `max_age_secs`, when given, is 0 to [`MAX_CACHE_SECS`].
fn check_age(op: &str, age: Option<u64>) -> Result<(), Error> {
    match age {
        Some(secs) => check_range(op, "max_age_secs", secs, 0, MAX_CACHE_SECS, " (seconds)"),
        None => Ok(()),
    }
}

fn bad(op: &str, what: impl std::fmt::Display) -> Error {
    Error::bad_request(format!("{op}: {what}"))
}

fn hint(mut error: Error, what_to_do: &str) -> Error {
    error.message = format!("{}; {what_to_do}", error.message);
    error
}

/// `job_after_secs`, when set: 0 (a job at once) to the longest timeout.
fn check_job_after(op: &str, secs: Option<u64>) -> Result<(), Error> {
    match secs {
        Some(secs) => check_range(
            op,
            "job_after_secs",
            secs,
            0,
            MAX_TIMEOUT_SECS,
            " (seconds)",
        ),
        None => Ok(()),
    }
}

fn check_range(
    op: &str,
    name: &str,
    value: u64,
    low: u64,
    high: u64,
    unit: &str,
) -> Result<(), Error> {
    if (low..=high).contains(&value) {
        return Ok(());
    }
    Err(bad(
        op,
        format_args!("`{name}` = {value} is out of range; use {low} to {high}{unit}"),
    ))
}

fn check_mode(op: &str, mode: u32) -> Result<(), Error> {
    if mode <= MAX_MODE {
        return Ok(());
    }
    Err(bad(
        op,
        format_args!(
            "`mode` = {mode:o} (octal) is not a permission mode; use 0 to 7777 octal, e.g. 644"
        ),
    ))
}

/// A string argument: no NUL byte (it ends the string on the far side, or
/// breaks the connection), at most `max` bytes.
fn check_text(op: &str, name: &str, value: &str, max: usize) -> Result<(), Error> {
    if let Some(at) = value.find('\0') {
        return Err(bad(
            op,
            format_args!("`{name}` contains a NUL byte at byte {at}; remove it"),
        ));
    }
    if value.len() > max {
        return Err(bad(
            op,
            format_args!(
                "`{name}` is {} bytes long; the most allowed is {max}",
                value.len()
            ),
        ));
    }
    Ok(())
}

fn check_path(op: &str, name: &str, value: &str) -> Result<(), Error> {
    check_text(op, name, value, MAX_PATH_BYTES)
}

/// A remote path: a path, and not empty (SFTP would take `` as the home
/// directory, which nobody means).
fn check_remote(op: &str, name: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(bad(
            op,
            format_args!("`{name}` is empty; pass a remote path"),
        ));
    }
    check_path(op, name, value)
}

/// A user name for `sudo -u`: a plain login name (`[a-z_][a-z0-9_.-]*`, at
/// most [`MAX_USER_BYTES`]), which also keeps it free of anything a shell
/// or sudo would read as syntax (`#uid`, `-option`, quotes).
fn check_user(op: &str, user: &str) -> Result<(), Error> {
    let mut chars = user.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if !plain || user.len() > MAX_USER_BYTES {
        return Err(bad(
            op,
            format_args!(
                "`sudo_user` = {user:?} is not a user name; use a login name such as \
                 \"postgres\" (lowercase letters, digits, `_`, `.`, `-`, not starting with a \
                 digit, `.` or `-`, at most {MAX_USER_BYTES} characters)"
            ),
        ));
    }
    Ok(())
}

/// `sudo_user`: a plain user name, and asked for together with `sudo`
/// rather than implying it (running as someone else should be asked for
/// in so many words).
fn check_sudo_user(op: &str, user: &str, sudo: bool) -> Result<(), Error> {
    check_user(op, user)?;
    if !sudo {
        return Err(bad(
            op,
            format_args!(
                "`sudo_user` = {user:?} needs `sudo: true`; set both to run the command as {user}"
            ),
        ));
    }
    Ok(())
}

/// A host alias: what an ssh config `Host` line can name, so no control
/// characters or whitespace.
fn check_host(op: &str, host: &str) -> Result<(), Error> {
    if host.is_empty() {
        return Err(bad(
            op,
            "`host` is empty; pass a Host alias from the ssh config",
        ));
    }
    check_text(op, "host", host, MAX_HOST_BYTES)?;
    if host.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            op,
            format_args!(
                "`host` = {:?} contains whitespace or control characters; pass a Host alias \
                 from the ssh config",
                host
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DEFAULT_MAX_FRAME, ErrorKind, ExecRequest, ReadFileRequest, StatRequest};

    fn exec(command: &str) -> ExecRequest {
        ExecRequest {
            stop_after_secs: None,
            detach: false,
            background: false,
            on_timeout: Default::default(),
            cache_secs: None,
            host: "web1".into(),
            command: command.into(),
            stdin: None,
            timeout_secs: None,
            max_output_bytes: None,
            sudo: false,
            sudo_user: None,
        }
    }

    fn check(request: Request) -> Result<(), Error> {
        request.validate(DEFAULT_MAX_FRAME)
    }

    #[test]
    fn a_timeout_past_a_day_is_a_bad_request_naming_the_range() {
        let mut req = exec("true");
        req.timeout_secs = Some(1 << 63);
        let err = check(Request::Exec(req)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("`timeout_secs`"), "{}", err.message);
        assert!(err.message.contains("1 to 86400"), "{}", err.message);
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        let mut req = exec("true");
        req.timeout_secs = Some(0);
        assert!(check(Request::Exec(req)).is_err());
    }

    #[test]
    fn max_output_bytes_of_u64_max_is_a_bad_request_not_overloaded() {
        let mut req = exec("true");
        req.max_output_bytes = Some(u64::MAX);
        let err = check(Request::Exec(req)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(
            err.message.contains("`max_output_bytes`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_command_with_a_nul_byte_is_refused() {
        let err = check(Request::Exec(exec("echo a\0b"))).unwrap_err();
        assert!(err.message.contains("NUL"), "{}", err.message);
    }

    #[test]
    fn a_command_past_128_kib_is_refused_with_what_to_do() {
        let err = check(Request::Exec(exec(&"x".repeat(MAX_COMMAND_BYTES + 1)))).unwrap_err();
        assert!(err.message.contains("stdin"), "{}", err.message);
        assert!(check(Request::Exec(exec(&"x".repeat(MAX_COMMAND_BYTES)))).is_ok());
    }

    #[test]
    fn a_path_with_a_nul_byte_is_refused() {
        let req = StatRequest {
            max_age_secs: None,
            host: "web1".into(),
            path: "/etc/\0passwd".into(),
            follow_symlinks: false,
        };
        let err = check(Request::Stat(req)).unwrap_err();
        assert!(err.message.contains("`path`"), "{}", err.message);
    }

    #[test]
    fn an_offset_past_the_signed_range_is_refused() {
        let req = ReadFileRequest {
            max_age_secs: None,
            host: "web1".into(),
            path: "/x".into(),
            offset: u64::MAX,
            length: None,
        };
        assert!(check(Request::ReadFile(req)).is_err());
    }

    #[test]
    fn a_host_with_a_newline_is_refused() {
        let err = check(Request::Warm {
            host: "web1\nforged".into(),
        })
        .unwrap_err();
        assert!(err.message.contains("`host`"), "{}", err.message);
    }

    #[test]
    fn ordinary_requests_pass() {
        let mut req = exec("uname -a; echo 'multi\nline'");
        req.timeout_secs = Some(MAX_TIMEOUT_SECS);
        req.max_output_bytes = Some(0);
        assert!(check(Request::Exec(req)).is_ok());
        assert!(check(Request::Status).is_ok());
    }

    #[test]
    fn sudo_user_takes_plain_user_names_only() {
        let as_user = |user: &str| {
            let mut req = exec("id");
            req.sudo = true;
            req.sudo_user = Some(user.into());
            check(Request::Exec(req))
        };
        assert!(as_user("postgres").is_ok());
        assert!(as_user("_www-data.1").is_ok());
        for bad in [
            "",
            "Root",
            "-u",
            "#0",
            "a b",
            "x'y",
            "1abc",
            &"a".repeat(33),
        ] {
            let err = as_user(bad).unwrap_err();
            assert!(
                err.message.contains("`sudo_user`"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn sudo_user_without_sudo_is_refused_saying_to_set_both() {
        let mut req = exec("id");
        req.sudo_user = Some("postgres".into());
        let err = check(Request::Exec(req)).unwrap_err();
        assert!(err.message.contains("`sudo: true`"), "{}", err.message);
    }

    #[test]
    fn a_sudo_exec_cannot_be_cached() {
        let mut req = exec("id");
        req.sudo = true;
        req.cache_secs = Some(10);
        let err = check(Request::Exec(req)).unwrap_err();
        assert!(err.message.contains("`sudo`"), "{}", err.message);
    }
}
