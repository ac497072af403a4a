//! `sshmcpctl audit verify` and `sshmcpctl audit tail`: the audit log, read
//! from disk. Where the log, its key and its head are comes from the
//! running daemon's `status` when one answers (its `[audit] path` may be
//! anywhere), else from the daemon's default state directory.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sshmcp_proto::AuditStatus;
use sshmcp_proto::audit::{self as format, Finding, Head, Key, Record, Verdict, Verifier};

use crate::cli::AuditAction;
use crate::human;

/// How often `tail -f` looks for new records.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);
/// Longest command or path a tail line shows.
const SHOWN: usize = 120;

/// Why an audit subcommand failed; a broken log is one of these.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The log is not what the daemon wrote.
    #[error("{0}")]
    Broken(Finding),
    #[error(
        "no audit log at {}; the daemon writes one from its start unless [audit] enabled = false",
        .0.display()
    )]
    NoLog(PathBuf),
    #[error("{0}; --key FILE names another")]
    Key(#[from] format::KeyError),
    #[error(
        "{} is missing, so records removed from the log's end would go unnoticed; pass --head \
         FILE, or --no-head to check the chain alone",
        .0.display()
    )]
    NoHead(PathBuf),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "no audit log to look at: no daemon answered and there is no state directory \
         (STATE_DIRECTORY, XDG_STATE_HOME or HOME); name the files"
    )]
    NoPlace,
    #[error("cannot write to stdout: {0}")]
    Stdout(io::Error),
}

/// Where the log, its key and its head are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub log: PathBuf,
    pub key: PathBuf,
    pub head: PathBuf,
}

impl Location {
    /// As the running daemon's status says (`daemon`), else the default
    /// state directory's files.
    pub fn find(daemon: Option<&AuditStatus>) -> Result<Location, AuditError> {
        let dir = format::state_dir();
        let in_dir = |name: &str| dir.as_ref().map(|dir| dir.join(name));
        let said = |path: Option<&String>| path.map(PathBuf::from);
        let daemon = daemon.cloned().unwrap_or_default();
        Ok(Location {
            log: said(daemon.path.as_ref())
                .or_else(|| in_dir(format::LOG_FILE))
                .ok_or(AuditError::NoPlace)?,
            key: said(daemon.key.as_ref())
                .or_else(|| in_dir(format::KEY_FILE))
                .ok_or(AuditError::NoPlace)?,
            head: said(daemon.head.as_ref())
                .or_else(|| in_dir(format::HEAD_FILE))
                .ok_or(AuditError::NoPlace)?,
        })
    }
}

/// Run `action`; `daemon` is the running daemon's audit status, if one
/// answered.
pub fn run(
    action: &AuditAction,
    daemon: Option<&AuditStatus>,
    json: bool,
) -> Result<(), AuditError> {
    let mut out = io::stdout().lock();
    let result = match action {
        AuditAction::Verify {
            files,
            key,
            head,
            no_head,
        } => {
            let location = Location::find(daemon);
            let summary = verify(
                files,
                key.as_deref(),
                (!no_head).then_some(head.as_deref()),
                location,
            )?;
            let text = if json {
                serde_json::json!({
                    "ok": true,
                    "records": summary.records,
                    "first_seq": summary.seqs.map(|(first, _)| first),
                    "last_seq": summary.seqs.map(|(_, last)| last),
                    "files": summary.files,
                })
                .to_string()
            } else {
                summary.to_string()
            };
            writeln!(out, "{text}")
        }
        AuditAction::Tail { lines, follow } => {
            let location = Location::find(daemon)?;
            tail(&location.log, *lines, *follow, json, &mut out)
        }
    };
    match result.and_then(|()| out.flush()) {
        // `sshmcpctl audit tail | head -1` is not a failure.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(AuditError::Stdout),
    }
}

/// Check `files` (else the located log and its rotated files) with the
/// key, and against the head unless `head` is `None` (`--no-head`).
fn verify(
    files: &[PathBuf],
    key: Option<&Path>,
    head: Option<Option<&Path>>,
    location: Result<Location, AuditError>,
) -> Result<format::Summary, AuditError> {
    let located = |pick: fn(Location) -> PathBuf| location.as_ref().map(|l| pick(l.clone()));
    let from_start = files.is_empty();
    let files = if from_start {
        let log = located(|l| l.log).map_err(|_| AuditError::NoPlace)?;
        let files = format::log_files(&log).map_err(|source| AuditError::Read {
            path: log.clone(),
            source,
        })?;
        if files.is_empty() {
            return Err(AuditError::NoLog(log));
        }
        files
    } else {
        format::in_log_order(files.to_vec())
    };
    let key = match key {
        Some(path) => Key::load(path)?,
        None => Key::load(&located(|l| l.key).map_err(|_| AuditError::NoPlace)?)?,
    };
    let head = match head {
        None => None,
        Some(path) => {
            let path = match path {
                Some(path) => path.to_owned(),
                None => located(|l| l.head).map_err(|_| AuditError::NoPlace)?,
            };
            match Head::load(&path) {
                Ok(Some(head)) => Some(head),
                Ok(None) => return Err(AuditError::NoHead(path)),
                Err(source) => return Err(AuditError::Read { path, source }),
            }
        }
    };
    let mut verifier = Verifier::new(&key, head, from_start);
    for file in &files {
        verifier.file(&file.display().to_string());
        feed(&mut verifier, file)?;
    }
    verifier.finish().map_err(AuditError::Broken)
}

/// Every line of `path`, in order, to `verifier`.
fn feed(verifier: &mut Verifier<'_>, path: &Path) -> Result<(), AuditError> {
    let cannot = |source| AuditError::Read {
        path: path.to_owned(),
        source,
    };
    let file = File::open(path).map_err(cannot)?;
    if !file.metadata().map_err(cannot)?.is_file() {
        return Err(cannot(io::Error::other("not a regular file")));
    }
    let mut reader = BufReader::with_capacity(256 << 10, file);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).map_err(cannot)? == 0 {
            return Ok(());
        }
        let terminated = line.last() == Some(&b'\n');
        if terminated {
            line.pop();
        }
        verifier
            .line(&line, terminated)
            .map_err(AuditError::Broken)?;
    }
}

/// The newest `count` records of `log` and its rotated files, then with
/// `follow` each new one as it is written.
fn tail(
    log: &Path,
    count: usize,
    follow: bool,
    json: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let files = format::log_files(log)?;
    let mut shown: Vec<Vec<u8>> = Vec::new();
    for file in files.iter().rev() {
        if shown.len() >= count {
            break;
        }
        let mut older = last_lines(file, count - shown.len())?;
        older.append(&mut shown);
        shown = older;
    }
    for line in &shown {
        show(out, line, json)?;
    }
    out.flush()?;
    if follow {
        follow_log(log, json, out)?;
    }
    Ok(())
}

/// The last `count` whole lines of `path` (a partial line being written is
/// not one yet), read from the end.
fn last_lines(path: &Path, count: usize) -> io::Result<Vec<Vec<u8>>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if count == 0 || len == 0 {
        return Ok(Vec::new());
    }
    let mut window = 64u64 << 10;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        let end = buf.iter().rposition(|&b| b == b'\n').map_or(0, |at| at + 1);
        let whole = &buf[..end];
        let mut lines: Vec<&[u8]> = whole.split(|&b| b == b'\n').collect();
        lines.pop();
        // The window's first line may begin before it: only whole when the
        // window reaches the file's start.
        let complete = if start == 0 {
            lines.len()
        } else {
            lines.len().saturating_sub(1)
        };
        if complete >= count || start == 0 {
            let keep = complete.min(count);
            return Ok(lines[lines.len() - keep..]
                .iter()
                .map(|line| line.to_vec())
                .collect());
        }
        window *= 4;
    }
}

/// Show records as `log` grows, following it across rotations until
/// interrupted: a file rotated away is read to its end, then every file
/// rotated after it, then the new log, so no record is skipped however
/// many rotations pass between two looks.
fn follow_log(log: &Path, json: bool, out: &mut impl Write) -> io::Result<()> {
    let (mut file, mut at) = loop {
        match File::open(log) {
            Ok(file) => {
                let len = file.metadata()?.len();
                // Start after the last whole line: a record being written
                // is shown once it is whole.
                let at = last_newline_end(&file, len)?;
                break (file, at);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => std::thread::sleep(FOLLOW_EVERY),
            Err(e) => return Err(e),
        }
    };
    let mut partial = Vec::new();
    loop {
        read_new(&mut file, &mut at, &mut partial, json, out)?;
        let reading = identity(&file.metadata()?);
        let live = std::fs::metadata(log).ok().map(|m| identity(&m));
        if live.is_some() && live != Some(reading) {
            // Rotated away: what reached it before the rename is read
            // above, or now; the file after it starts from its first line.
            read_new(&mut file, &mut at, &mut partial, json, out)?;
            if let Some(next) = file_after(log, reading)? {
                file = next;
                at = 0;
                partial.clear();
                continue;
            }
        }
        out.flush()?;
        std::thread::sleep(FOLLOW_EVERY);
    }
}

/// A file's identity, which a rename keeps.
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// The file of `log` that follows the one with identity `id`: the next
/// rotated file, or the live log; `None` while it is not there yet.
fn file_after(log: &Path, id: (u64, u64)) -> io::Result<Option<File>> {
    let files = format::log_files(log)?;
    let next = files
        .iter()
        .position(|f| std::fs::metadata(f).is_ok_and(|m| identity(&m) == id))
        .map_or(files.len().saturating_sub(1), |i| i + 1);
    match files.get(next).map(File::open) {
        Some(Ok(file)) => Ok(Some(file)),
        Some(Err(e)) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(None),
    }
}

/// Where the bytes after the last newline of `file` (`len` long) begin.
fn last_newline_end(file: &File, len: u64) -> io::Result<u64> {
    let mut window = 64u64 << 10;
    loop {
        let start = len.saturating_sub(window);
        let mut buf = vec![0u8; (len - start) as usize];
        file.read_exact_at(&mut buf, start)?;
        match buf.iter().rposition(|&b| b == b'\n') {
            Some(at) => return Ok(start + at as u64 + 1),
            None if start == 0 => return Ok(0),
            None => window *= 4,
        }
    }
}

/// Show the whole lines written to `file` since `at`.
fn read_new(
    file: &mut File,
    at: &mut u64,
    partial: &mut Vec<u8>,
    json: bool,
    out: &mut impl Write,
) -> io::Result<()> {
    let len = file.metadata()?.len();
    if len < *at {
        // Cut back (a failed write the daemon undid): go on from its end.
        *at = len;
        partial.clear();
    }
    if len == *at {
        return Ok(());
    }
    file.seek(SeekFrom::Start(*at))?;
    let mut fresh = Vec::new();
    file.take(len - *at).read_to_end(&mut fresh)?;
    *at += fresh.len() as u64;
    partial.extend_from_slice(&fresh);
    let Some(end) = partial.iter().rposition(|&b| b == b'\n') else {
        return Ok(());
    };
    let rest = partial.split_off(end + 1);
    for line in partial.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        show(out, line, json)?;
    }
    *partial = rest;
    Ok(())
}

/// One record: as written with `--json`, else as [`human`] puts it.
fn show(out: &mut impl Write, line: &[u8], json: bool) -> io::Result<()> {
    if json {
        out.write_all(line)?;
        return out.write_all(b"\n");
    }
    match serde_json::from_slice::<Record>(line) {
        Ok(record) => writeln!(out, "{}", human_line(&record)),
        Err(_) => writeln!(out, "? {}", String::from_utf8_lossy(line)),
    }
}

/// A record in one line: when, who, what on which host, how it was
/// judged, how it ended and how long it took.
pub fn human_line(record: &Record) -> String {
    let caller = &record.caller;
    let mut who = caller.binary.clone();
    if let Some(client) = &caller.mcp_client {
        match &caller.mcp_client_version {
            Some(version) => who.push_str(&format!(" ({client} {version})")),
            None => who.push_str(&format!(" ({client})")),
        }
    }
    if let Some(pid) = caller.pid {
        who.push_str(&format!(" pid {pid}"));
    }
    let mut action = record.tool.clone();
    if let Some(host) = &record.host {
        action.push_str(&format!(" {host}"));
    }
    let decision = match (&record.decision, &record.rule) {
        (verdict, Some(rule)) => format!("{} ({rule})", verdict.as_str()),
        (Verdict::Allow, None) => "allow".into(),
        (verdict, None) => verdict.as_str().into(),
    };
    let mut result = record.result.clone();
    let mut notes = Vec::new();
    if let Some(code) = record.exit_code {
        notes.push(format!("exit {code}"));
    }
    if let Some(bytes) = record.bytes {
        notes.push(human::bytes(bytes));
    }
    if let Some(error) = &record.error {
        notes.push(shorten(error));
    }
    if !notes.is_empty() {
        result.push_str(&format!(" ({})", notes.join(", ")));
    }
    let mut parts = vec![record.time.clone(), who, action];
    if let Some(what) = what(record) {
        parts.push(what);
    }
    parts.extend([
        decision,
        result,
        human::latency(record.duration_ms.saturating_mul(1_000)),
    ]);
    parts.join("  ")
}

/// What the request named: its command or paths, shell, job, signal.
fn what(record: &Record) -> Option<String> {
    let mut what = Vec::new();
    if let Some(user) = &record.sudo_user {
        what.push(format!("sudo -u {user}"));
    } else if record.sudo {
        what.push("sudo".into());
    }
    if let Some(shell) = &record.shell_id {
        what.push(format!("shell {shell}"));
    }
    if let Some(command) = &record.command {
        what.push(format!("{:?}", shorten(command)));
    }
    match (
        &record.local_path,
        &record.remote_path,
        record.direction.as_deref(),
    ) {
        (Some(local), Some(remote), Some("download")) => {
            what.push(format!("{} <- {}", shorten(local), shorten(remote)));
        }
        (Some(local), Some(remote), _) => {
            what.push(format!("{} -> {}", shorten(local), shorten(remote)));
        }
        _ => {}
    }
    if let Some(path) = &record.path {
        match &record.to {
            Some(to) => what.push(format!("{} -> {}", shorten(path), shorten(to))),
            None => what.push(shorten(path)),
        }
    }
    if let Some(cwd) = &record.cwd {
        what.push(format!("in {}", shorten(cwd)));
    }
    if !record.env_names.is_empty() {
        what.push(format!("env {}", record.env_names.join(",")));
    }
    if let Some(job) = &record.job_id {
        what.push(format!("job {job}"));
    }
    if let Some(signal) = &record.signal {
        what.push(format!("SIG{signal}"));
    }
    if !record.flags.is_empty() {
        what.push(format!("[{}]", record.flags.join(",")));
    }
    if let Some(calls) = record.calls {
        what.push(human::count(calls, "call"));
    }
    (!what.is_empty()).then(|| what.join(" "))
}

/// `text` cut to [`SHOWN`] characters.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_as_one_line() {
        let record = Record {
            seq: 7,
            time: "2025-06-01T12:00:00.123Z".into(),
            caller: format::Caller {
                uid: Some(1000),
                pid: Some(4242),
                binary: "sshmcp".into(),
                mcp_client: Some("claude-code".into()),
                mcp_client_version: Some("1.2.0".into()),
                ..format::Caller::default()
            },
            tool: "exec".into(),
            host: Some("web1".into()),
            command: Some("uname -a".into()),
            result: "ok".into(),
            exit_code: Some(0),
            bytes: Some(120),
            duration_ms: 12,
            ..Record::default()
        };
        assert_eq!(
            human_line(&record),
            "2025-06-01T12:00:00.123Z  sshmcp (claude-code 1.2.0) pid 4242  exec web1  \
             \"uname -a\"  allow  ok (exit 0, 120 B)  12.0ms"
        );
    }

    #[test]
    fn a_refusal_names_its_rule_and_error() {
        let record = Record {
            time: "t".into(),
            caller: format::Caller {
                binary: "sshmcpctl".into(),
                ..format::Caller::default()
            },
            tool: "write_file".into(),
            host: Some("web1".into()),
            path: Some("/etc/motd".into()),
            decision: Verdict::Deny,
            rule: Some("audit.on_failure".into()),
            result: "policy_denied".into(),
            error: Some("no".into()),
            ..Record::default()
        };
        assert_eq!(
            human_line(&record),
            "t  sshmcpctl  write_file web1  /etc/motd  deny (audit.on_failure)  \
             policy_denied (no)  0µs"
        );
    }

    #[test]
    fn the_last_lines_skip_a_partial_one() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\npart").expect("write the log");
        assert_eq!(
            last_lines(&path, 2).expect("read"),
            vec![b"b".to_vec(), b"c".to_vec()]
        );
        assert_eq!(last_lines(&path, 9).expect("read").len(), 3);
    }
}
