//! The audit log's format and its verification, shared by the daemon that
//! writes it and `sshmcpctl audit`, which checks and shows it.
//!
//! The log is JSON lines, one [`Record`] per request. Every line is sealed
//! twice with HMAC-SHA256 under a 32-byte [`Key`] the daemon keeps beside
//! it (`audit.key`, mode 0600):
//!
//! - `mac`, the last field, is the HMAC of the line's bytes up to the comma
//!   that precedes it (the line is `BODY,"mac":"<64 hex>"}`), so an edited
//!   line is named as such, on its own;
//! - `prev` is the HMAC of the previous record's whole line (without its
//!   newline), so deleting, inserting or reordering lines breaks the chain.
//!   The very first record's `prev` is the HMAC of the empty string
//!   ([`genesis`]). The chain runs on across rotation: a new file's first
//!   `prev` is the HMAC of the last line of the file rotated away.
//!
//! `audit.head` ([`Head`]) holds the newest record's `seq` and the HMAC of
//! its line, rewritten after each record, so removing the newest lines is
//! found too. Without the key nobody can forge a line, a `mac` or a `prev`;
//! whoever can read the key can, which is why it stays owner-only and is
//! never logged.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The log's file name in the daemon's state directory, unless `[audit]
/// path` names another.
pub const LOG_FILE: &str = "audit.jsonl";
/// The key's file name in the daemon's state directory.
pub const KEY_FILE: &str = "audit.key";
/// The head's file name in the daemon's state directory.
pub const HEAD_FILE: &str = "audit.head";
/// Bytes in a key.
pub const KEY_LEN: usize = 32;

/// What ends every sealed line after its body: `,"mac":"` + 64 hex + `"}`.
const MAC_PREFIX: &[u8] = b",\"mac\":\"";
const MAC_SUFFIX_LEN: usize = MAC_PREFIX.len() + 64 + 2;

/// The daemon's own state directory: systemd's `$STATE_DIRECTORY`, else
/// `$XDG_STATE_HOME/sshmcp`, else `~/.local/state/sshmcp`. The daemon keeps
/// the log, its key and its head there; `sshmcpctl` looks there when no
/// daemon answers to say where they are.
pub fn state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY")
        && let Some(first) = std::env::split_paths(&dir).next()
    {
        return Some(first);
    }
    let base = match std::env::var_os("XDG_STATE_HOME") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(base.join("sshmcp"))
}

/// An HMAC-SHA256 value: a record's `mac`, its `prev`, the head's.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lower-case hex, as the log writes it.
    pub fn hex(&self) -> String {
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from(HEX[usize::from(byte >> 4)]));
            text.push(char::from(HEX[usize::from(byte & 15)]));
        }
        text
    }

    /// Read 64 hex digits (either case).
    pub fn parse_hex(text: &str) -> Option<Digest> {
        let text = text.as_bytes();
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
        }
        Some(Digest(bytes))
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// The secret every `mac`, `prev` and head is computed with.
#[derive(Clone)]
pub struct Key {
    /// Keyed once; each HMAC starts from a clone, which spares hashing the
    /// key's pads for every record.
    keyed: Hmac<Sha256>,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(…)")
    }
}

/// A key file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("cannot read the audit key {}: {source}", path.display())]
    Read {
        /// The key file.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// The file is not a key: it holds other than [`KEY_LEN`] bytes.
    #[error("the audit key {} holds {len} bytes, not {KEY_LEN}", path.display())]
    Length {
        /// The key file.
        path: PathBuf,
        /// Bytes it holds.
        len: usize,
    },
}

impl Key {
    /// A key from its 32 bytes.
    pub fn new(bytes: &[u8; KEY_LEN]) -> Key {
        Key {
            keyed: <Hmac<Sha256> as KeyInit>::new_from_slice(bytes)
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
        }
    }

    /// Read the key file at `path` (32 raw bytes).
    pub fn load(path: &Path) -> Result<Key, KeyError> {
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: path.to_owned(),
            source,
        })?;
        let bytes: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| KeyError::Length {
            path: path.to_owned(),
            len: bytes.len(),
        })?;
        Ok(Key::new(&bytes))
    }

    /// HMAC-SHA256 of `bytes` under this key.
    pub fn hmac(&self, bytes: &[u8]) -> Digest {
        let mut mac = self.keyed.clone();
        mac.update(bytes);
        Digest(mac.finalize().into_bytes().into())
    }
}

/// The `prev` of a log's very first record: the HMAC of nothing.
pub fn genesis(key: &Key) -> Digest {
    key.hmac(b"")
}

/// How a request was judged before it ran.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Let through (no rule refused it).
    #[default]
    Allow,
    /// Refused before it ran; `rule` says by what.
    Deny,
    /// Let through after the user confirmed it.
    Confirmed,
}

impl Verdict {
    /// As the log writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Deny => "deny",
            Verdict::Confirmed => "confirmed",
        }
    }
}

/// Who sent a request: what the socket and the caller's Hello said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caller {
    /// The caller's uid, from the socket's peer credentials.
    pub uid: Option<u32>,
    /// The caller's process id, from the socket's peer credentials.
    pub pid: Option<i32>,
    /// The caller's executable (`/proc/PID/exe` when it connected).
    pub exe: Option<String>,
    /// The binary its Hello named (`sshmcp`, `sshmcpctl`, ...).
    pub binary: String,
    /// The MCP client's name, when the caller is the shim.
    pub mcp_client: Option<String>,
    /// The MCP client's version, when the caller is the shim.
    pub mcp_client_version: Option<String>,
}

/// One request, as the log keeps it: who, what, on which host, how it was
/// judged and how it ended. Never contents: no file data, stdin, command
/// output, passwords or environment values.
///
/// Fields that do not apply to a request are left out of its line; `host`
/// and `rule` are written as `null` when there is none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// 1, 2, ... across rotated files.
    pub seq: u64,
    /// When the request finished: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Who sent it.
    pub caller: Caller,
    /// The operation (`exec`, `write_file`, ...).
    pub tool: String,
    /// The host alias it named.
    pub host: Option<String>,
    /// `exec`'s and `shell_exec`'s command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// `exec` ran through sudo.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sudo: bool,
    /// The user sudo ran the command as, when not root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// The shell (`shell_exec`, `shell_close`, and what `shell_open` opened).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell_id: Option<String>,
    /// The job (`job_signal`, and what an `exec` left running).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The signal `job_signal` sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// The remote path (file operations; `rename`'s source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `rename`'s destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The local path of a `transfer` or `sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// The remote path of a `transfer` or `sync`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_path: Option<String>,
    /// `upload` or `download`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    /// `shell_open`'s starting directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// The names (never the values) of the variables `shell_open` set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_names: Vec<String>,
    /// Options that change what the request does: `recursive`, `delete`,
    /// `dry_run`, `append`, `overwrite`, `background`, `detach`, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// How many calls a batch refused as a whole carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calls: Option<u64>,
    /// `allow`, `deny` or `confirmed`.
    pub decision: Verdict,
    /// The rule that decided; `null` when nothing but the default did.
    pub rule: Option<String>,
    /// `ok`, or the error's kind (`not_found`, `policy_denied`, ...).
    pub result: String,
    /// The error's message, cut to [`MAX_ERROR_CHARS`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The command's exit status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u32>,
    /// Bytes moved: output written by a command, bytes written, read or
    /// transferred.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// How long the request took, from its arrival to its reply.
    pub duration_ms: u64,
    /// Requests not recorded between the previous record and this one,
    /// because the log could not be written.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unrecorded: u64,
    /// HMAC of the previous record's line (hex).
    pub prev: String,
    /// HMAC of this line up to `,"mac"` (hex). Written by [`seal`], never
    /// by serde.
    #[serde(default, skip_serializing)]
    pub mac: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Longest error message a record keeps, in characters.
pub const MAX_ERROR_CHARS: usize = 300;

/// A record made into its line.
pub struct Sealed {
    /// The line, newline included, ready for one `write`.
    pub line: Vec<u8>,
    /// HMAC of the line without its newline: the next record's `prev`,
    /// and what the head holds.
    pub chain: Digest,
}

/// Seal `record` (its `prev` already set; its `mac` is ignored) into its
/// line.
pub fn seal(key: &Key, record: &Record) -> Result<Sealed, serde_json::Error> {
    let mut line = serde_json::to_vec(record)?;
    // The body is the object without its closing brace; `mac` closes it.
    line.pop();
    let mac = key.hmac(&line);
    line.extend_from_slice(MAC_PREFIX);
    line.extend_from_slice(mac.hex().as_bytes());
    line.extend_from_slice(b"\"}");
    let chain = key.hmac(&line);
    line.push(b'\n');
    Ok(Sealed { line, chain })
}

/// `audit.head`: the newest record's `seq` and the HMAC of its line. A
/// fixed 86 bytes (`SEQ MAC\n`, the seq zero-padded to 20 digits), so the
/// daemon rewrites it in place with one write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The newest record's `seq`.
    pub seq: u64,
    /// HMAC of its line.
    pub chain: Digest,
}

impl Head {
    /// Bytes in a head file.
    pub const LEN: usize = 86;

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        format!("{:020} {}\n", self.seq, self.chain.hex()).into_bytes()
    }

    /// Read a head file's bytes.
    pub fn parse(bytes: &[u8]) -> Option<Head> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (seq, chain) = text.strip_suffix('\n')?.split_once(' ')?;
        Some(Head {
            seq: seq.parse().ok()?,
            chain: Digest::parse_hex(chain)?,
        })
    }

    /// Read the head file at `path`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> io::Result<Option<Head>> {
        match std::fs::read(path) {
            Ok(bytes) => Head::parse(&bytes).map(Some).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not an audit head", path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// `time` as RFC 3339 in UTC with milliseconds: `2025-06-01T12:00:00.123Z`.
pub fn timestamp(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = crate::civil_date(secs / 86_400);
    let of_day = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3_600,
        of_day % 3_600 / 60,
        of_day % 60,
        since.subsec_millis()
    )
}

/// Where the daemon moves a log that reached `[audit] max_bytes`: the
/// log's name followed by the first `seq` it holds, zero-padded so that
/// names sort in log order (`audit.jsonl.000000000001`).
pub fn rotated_path(log: &Path, first_seq: u64) -> PathBuf {
    let mut name = log.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{first_seq:012}"));
    log.with_file_name(name)
}

/// The first `seq` a rotated file of `log` holds, from its name.
fn rotated_seq(log: &Path, file: &Path) -> Option<u64> {
    let base = log.file_name()?.to_str()?;
    let name = file.file_name()?.to_str()?;
    let digits = name.strip_prefix(base)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `log`'s rotated files, oldest first, then `log` itself if it exists:
/// the order its records were written in.
pub fn log_files(log: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = match log.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut rotated: Vec<(u64, PathBuf)> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|entry| {
                let path = dir.join(entry.ok()?.file_name());
                Some((rotated_seq(log, &path)?, path))
            })
            .collect(),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    rotated.sort();
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, path)| path).collect();
    if log.exists() {
        files.push(log.to_owned());
    }
    Ok(files)
}

/// Files named on a command line, put in log order: rotated files by the
/// `seq` in their names, then the others (the live log) in the order
/// given. A shell's `audit.jsonl*` lists the live log first.
pub fn in_log_order(files: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut keyed: Vec<(u64, usize, PathBuf)> = files
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let seq = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|name| {
                    let (base, _) = name.rsplit_once('.')?;
                    rotated_seq(&path.with_file_name(base), &path)
                })
                .unwrap_or(u64::MAX);
            (seq, i, path)
        })
        .collect();
    keyed.sort();
    keyed.into_iter().map(|(_, _, path)| path).collect()
}

/// What a broken log shows, named by [`Verifier`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingKind {
    /// A line is not what the daemon wrote.
    Edited,
    /// Records are missing from within the log (`seq` jumps).
    Deleted,
    /// A line the daemon did not write here: it does not chain onto the
    /// record before it, or its `seq` repeats or goes back.
    Inserted,
    /// The log is cut short: a partial last line, or it ends before the
    /// record the head names.
    Truncated,
    /// No record verifies with the key given: the wrong key.
    WrongKey,
}

impl FindingKind {
    /// As findings name it.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Edited => "edited",
            FindingKind::Deleted => "deleted",
            FindingKind::Inserted => "inserted",
            FindingKind::Truncated => "truncated",
            FindingKind::WrongKey => "wrong key",
        }
    }
}

/// The first thing wrong with a log: where, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What happened.
    pub kind: FindingKind,
    /// The file it was found in.
    pub file: String,
    /// The line it was found at (1-based), in `file`.
    pub line: u64,
    /// The `seq` of the record there, when it has a readable one.
    pub seq: Option<u64>,
    /// What exactly is wrong.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}:{}", self.kind.as_str(), self.file, self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// What a good log held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Summary {
    /// Records checked.
    pub records: u64,
    /// The first and last `seq` checked, when there were any.
    pub seqs: Option<(u64, u64)>,
    /// Files checked.
    pub files: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: u64, noun: &str| {
            if n == 1 {
                format!("1 {noun}")
            } else {
                format!("{n} {noun}s")
            }
        };
        write!(f, "ok: {}", plural(self.records, "record"))?;
        if let Some((first, last)) = self.seqs {
            write!(f, ", seq {first}–{last}")?;
        }
        write!(f, ", {}", plural(self.files, "file"))
    }
}

/// A line of the log that verified: an authentic record in its place.
#[derive(Debug, Clone, Copy)]
struct Good {
    seq: u64,
    chain: Digest,
    file: usize,
    line: u64,
}

/// A line that did not verify, judged once the line after it is seen
/// (was it put in, or changed in place?).
#[derive(Debug, Clone)]
struct Suspect {
    seq: Option<u64>,
    /// It parsed as a record (its MAC is what failed).
    parsed: bool,
    /// It ends where a record could not: a line cut short.
    cut: bool,
    terminated: bool,
    file: usize,
    line: u64,
}

/// A line read back: an authentic record, or why not.
enum Opened {
    Authentic {
        seq: u64,
        prev: String,
        chain: Digest,
    },
    Forged {
        seq: u64,
        parsed: bool,
    },
    /// Not a record at all; `cut` when it is one cut short.
    Unreadable {
        cut: bool,
    },
}

fn open(key: &Key, line: &[u8]) -> Opened {
    let record = match serde_json::from_slice::<Record>(line) {
        Ok(record) => record,
        Err(e) => return Opened::Unreadable { cut: e.is_eof() },
    };
    let forged = Opened::Forged {
        seq: record.seq,
        parsed: true,
    };
    let Some(body_len) = line.len().checked_sub(MAC_SUFFIX_LEN) else {
        return forged;
    };
    let (body, suffix) = line.split_at(body_len);
    let Some(mac) = suffix
        .strip_prefix(MAC_PREFIX)
        .and_then(|rest| rest.strip_suffix(b"\"}"))
        .and_then(|hex| Digest::parse_hex(std::str::from_utf8(hex).ok()?))
    else {
        return forged;
    };
    if key.hmac(body) != mac {
        return forged;
    }
    Opened::Authentic {
        seq: record.seq,
        prev: record.prev,
        chain: key.hmac(line),
    }
}

/// The `seq` and chain HMAC of `line` (without its newline) when it is a
/// record sealed with `key`; `None` when it is not.
pub fn authentic(key: &Key, line: &[u8]) -> Option<(u64, Digest)> {
    match open(key, line) {
        Opened::Authentic { seq, chain, .. } => Some((seq, chain)),
        Opened::Forged { .. } | Opened::Unreadable { .. } => None,
    }
}

/// The `seq` `line` claims, if it reads as a record at all.
pub fn record_seq(line: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Record>(line).ok().map(|r| r.seq)
}

/// Checks a log's lines in order, across its files, and names the first
/// one that is wrong.
///
/// Feed it [`Verifier::file`] before each file's lines, then each line
/// ([`Verifier::line`]), then [`Verifier::finish`]. A line that does not
/// verify is judged by the line after it: if that one chains onto the
/// record before, the bad line was inserted; else it was edited in place.
pub struct Verifier<'k> {
    key: &'k Key,
    head: Option<Head>,
    /// The lines begin the log (the first record must be seq 1, chained
    /// onto [`genesis`]), rather than somewhere in its middle.
    from_start: bool,
    files: Vec<String>,
    lines_in_file: u64,
    last: Option<Good>,
    suspect: Option<Suspect>,
    records: u64,
    first_seq: Option<u64>,
}

impl<'k> Verifier<'k> {
    /// A verifier under `key`, checking the end of the log against `head`
    /// when given. With `from_start`, the lines must begin at the log's
    /// first record.
    pub fn new(key: &'k Key, head: Option<Head>, from_start: bool) -> Self {
        Verifier {
            key,
            head,
            from_start,
            files: Vec::new(),
            lines_in_file: 0,
            last: None,
            suspect: None,
            records: 0,
            first_seq: None,
        }
    }

    /// The lines that follow come from the file `name`.
    pub fn file(&mut self, name: &str) {
        self.files.push(name.to_owned());
        self.lines_in_file = 0;
    }

    /// The next line, without its newline; `terminated` when a newline
    /// followed it.
    pub fn line(&mut self, bytes: &[u8], terminated: bool) -> Result<(), Finding> {
        self.lines_in_file += 1;
        let file = self.files.len().saturating_sub(1);
        let line = self.lines_in_file;
        let opened = open(self.key, bytes);
        if let Some(suspect) = self.suspect.take() {
            return Err(self.judge(suspect, Some(&opened)));
        }
        match opened {
            Opened::Authentic { seq, prev, chain } => {
                self.authentic(seq, &prev, chain, file, line)?;
            }
            Opened::Forged { seq, parsed } => {
                self.suspect = Some(Suspect {
                    seq: Some(seq),
                    parsed,
                    cut: false,
                    terminated,
                    file,
                    line,
                });
            }
            Opened::Unreadable { cut } => {
                self.suspect = Some(Suspect {
                    seq: None,
                    parsed: false,
                    cut,
                    terminated,
                    file,
                    line,
                });
            }
        }
        Ok(())
    }

    /// Every line has been fed: check the end against the head.
    pub fn finish(mut self) -> Result<Summary, Finding> {
        if let Some(suspect) = self.suspect.take() {
            return Err(self.judge(suspect, None));
        }
        if let Some(head) = self.head {
            let last_seq = self.last.map_or(0, |l| l.seq);
            if head.seq > last_seq {
                let (file, line) = match self.last {
                    Some(last) => (self.file_name(last.file), last.line),
                    None => (
                        self.files
                            .last()
                            .cloned()
                            .unwrap_or_else(|| "the log".into()),
                        0,
                    ),
                };
                let missing = range(last_seq + 1, head.seq);
                return Err(Finding {
                    kind: FindingKind::Truncated,
                    file,
                    line,
                    seq: self.last.map(|l| l.seq),
                    detail: format!(
                        "the log ends at seq {last_seq} but audit.head says the newest record \
                         is seq {}; {missing} missing from its end",
                        head.seq
                    ),
                });
            }
        }
        Ok(Summary {
            records: self.records,
            seqs: self.first_seq.zip(self.last.map(|l| l.seq)),
            files: self.files.len() as u64,
        })
    }

    fn file_name(&self, index: usize) -> String {
        self.files.get(index).cloned().unwrap_or_default()
    }

    /// An authentic record at `file:line`: is it in its place?
    fn authentic(
        &mut self,
        seq: u64,
        prev: &str,
        chain: Digest,
        file: usize,
        line: u64,
    ) -> Result<(), Finding> {
        let finding = |kind, detail: String| Finding {
            kind,
            file: self.file_name(file),
            line,
            seq: Some(seq),
            detail,
        };
        let prev = Digest::parse_hex(prev);
        match self.last {
            None if self.from_start && seq > 1 => {
                return Err(finding(
                    FindingKind::Deleted,
                    format!(
                        "the log starts at seq {seq}; {} missing before it",
                        range(1, seq - 1)
                    ),
                ));
            }
            None if self.from_start && (seq == 0 || prev != Some(genesis(self.key))) => {
                return Err(finding(
                    FindingKind::Inserted,
                    "the first record does not chain onto the start of a log".into(),
                ));
            }
            None => {}
            Some(last) if seq > last.seq + 1 => {
                return Err(finding(
                    FindingKind::Deleted,
                    format!(
                        "seq jumps from {} to {seq}; {} missing before it",
                        last.seq,
                        range(last.seq + 1, seq - 1)
                    ),
                ));
            }
            Some(last) if seq <= last.seq => {
                return Err(finding(
                    FindingKind::Inserted,
                    format!(
                        "seq {seq} repeats or goes back after seq {} ({}:{})",
                        last.seq,
                        self.file_name(last.file),
                        last.line
                    ),
                ));
            }
            Some(last) if prev != Some(last.chain) => {
                return Err(finding(
                    FindingKind::Inserted,
                    format!(
                        "this record does not chain onto the record before it (seq {}, {}:{})",
                        last.seq,
                        self.file_name(last.file),
                        last.line
                    ),
                ));
            }
            Some(_) => {}
        }
        if let Some(head) = self.head
            && head.seq == seq
            && head.chain != chain
        {
            return Err(finding(
                FindingKind::Edited,
                "the line does not match the HMAC audit.head holds for it".into(),
            ));
        }
        self.records += 1;
        self.first_seq.get_or_insert(seq);
        self.last = Some(Good {
            seq,
            chain,
            file,
            line,
        });
        Ok(())
    }

    /// Name what a line that did not verify is, from the line after it
    /// (`None`: it was the last line).
    fn judge(&self, suspect: Suspect, next: Option<&Opened>) -> Finding {
        let file = self.file_name(suspect.file);
        let found = |kind, detail: String| Finding {
            kind,
            file: file.clone(),
            line: suspect.line,
            seq: suspect.seq,
            detail,
        };
        let before = match self.last {
            Some(last) => format!("seq {}", last.seq),
            None => "the start of the log".to_string(),
        };
        let after_last = |seq: Option<u64>| match (seq, self.last) {
            (Some(seq), Some(last)) => seq <= last.seq,
            _ => false,
        };
        let chains_onto_last = |prev: &str| match self.last {
            Some(last) => Digest::parse_hex(prev) == Some(last.chain),
            None => self.from_start && Digest::parse_hex(prev) == Some(genesis(self.key)),
        };
        match next {
            // A record cut short mid-file: the daemon went on after a crash
            // of the machine cut its newest line.
            _ if suspect.cut && suspect.terminated => found(
                FindingKind::Truncated,
                "the line is cut short: it is not a whole record".into(),
            ),
            // Two lines in a row that do not verify, before any that did:
            // the key is not this log's.
            Some(Opened::Forged { parsed: true, .. }) if suspect.parsed && self.last.is_none() => {
                found(
                    FindingKind::WrongKey,
                    "no record verifies with this key; is it this log's audit.key?".into(),
                )
            }
            Some(Opened::Authentic { prev, seq, .. })
                if chains_onto_last(prev) || suspect.seq.is_some_and(|s| s == *seq) =>
            {
                found(
                    FindingKind::Inserted,
                    format!(
                        "the daemon did not write this line: the record after it chains directly \
                         onto {before}"
                    ),
                )
            }
            _ if after_last(suspect.seq) => found(
                FindingKind::Inserted,
                format!("its seq repeats or goes back after {before}"),
            ),
            None if !suspect.terminated => found(
                FindingKind::Truncated,
                "the last line is cut short: it is not a whole record".into(),
            ),
            None if self
                .head
                .is_some_and(|head| Some(head.seq) == self.last.map(|l| l.seq)) =>
            {
                found(
                    FindingKind::Inserted,
                    format!(
                        "the daemon did not write this line: audit.head names {before} as the \
                         newest record"
                    ),
                )
            }
            _ if !suspect.parsed => found(
                FindingKind::Edited,
                "the line is not a whole record; it was changed after it was written".into(),
            ),
            _ => found(
                FindingKind::Edited,
                "the line does not match its MAC; it was changed after it was written".into(),
            ),
        }
    }
}

/// `record 5 is` or `records 5–9 are`.
fn range(first: u64, last: u64) -> String {
    if first == last {
        format!("record {first} is")
    } else {
        format!("records {first}–{last} are")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::new(&[7u8; KEY_LEN])
    }

    fn record(seq: u64, prev: Digest) -> Record {
        Record {
            seq,
            time: timestamp(SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(seq)),
            caller: Caller {
                uid: Some(1000),
                pid: Some(42),
                binary: "sshmcp".into(),
                ..Caller::default()
            },
            tool: "exec".into(),
            host: Some("web1".into()),
            command: Some(format!("echo {seq}")),
            result: "ok".into(),
            prev: prev.hex(),
            ..Record::default()
        }
    }

    /// `n` chained lines (without newlines) and the head after them.
    fn log(key: &Key, n: u64) -> (Vec<Vec<u8>>, Head) {
        let mut prev = genesis(key);
        let mut lines = Vec::new();
        for seq in 1..=n {
            let sealed = seal(key, &record(seq, prev)).unwrap();
            let mut line = sealed.line;
            line.pop();
            lines.push(line);
            prev = sealed.chain;
        }
        (
            lines,
            Head {
                seq: n,
                chain: prev,
            },
        )
    }

    fn verify(key: &Key, lines: &[Vec<u8>], head: Option<Head>) -> Result<Summary, Finding> {
        let mut verifier = Verifier::new(key, head, true);
        verifier.file("audit.jsonl");
        for line in lines {
            verifier.line(line, true)?;
        }
        verifier.finish()
    }

    #[test]
    fn a_sealed_line_ends_with_its_mac_and_parses_back() {
        let key = key();
        let sealed = seal(&key, &record(1, genesis(&key))).unwrap();
        let text = std::str::from_utf8(&sealed.line).unwrap();
        assert!(text.starts_with("{\"seq\":1,\"time\":\"1970-01-01T00:00:00.001Z\","));
        assert!(text.ends_with("\"}\n"), "{text}");
        let parsed: Record = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.mac.len(), 64);
        assert_eq!(parsed.command.as_deref(), Some("echo 1"));
        assert!(
            !text.contains("\"sudo\""),
            "false flags are left out: {text}"
        );
    }

    #[test]
    fn an_intact_chain_verifies_with_a_summary() {
        let key = key();
        let (lines, head) = log(&key, 5);
        let summary = verify(&key, &lines, Some(head)).unwrap();
        assert_eq!(summary.to_string(), "ok: 5 records, seq 1–5, 1 file");
    }

    #[test]
    fn an_edited_line_is_named_edited() {
        let key = key();
        let (mut lines, head) = log(&key, 5);
        lines[2] = String::from_utf8(lines[2].clone())
            .unwrap()
            .replace("echo 3", "echo X")
            .into_bytes();
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Edited, "{finding}");
        assert_eq!((finding.line, finding.seq), (3, Some(3)));
        assert!(
            finding
                .to_string()
                .starts_with("edited at audit.jsonl:3 (seq 3): ")
        );
    }

    #[test]
    fn a_deleted_middle_line_is_named_deleted() {
        let key = key();
        let (mut lines, head) = log(&key, 5);
        lines.remove(2);
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Deleted, "{finding}");
        assert_eq!((finding.line, finding.seq), (3, Some(4)));
        assert!(finding.detail.contains("record 3 is missing"), "{finding}");
    }

    #[test]
    fn a_forged_line_is_named_inserted() {
        let key = key();
        let (mut lines, head) = log(&key, 5);
        let forger = Key::new(&[9u8; KEY_LEN]);
        let forged = seal(&forger, &record(3, genesis(&forger))).unwrap().line;
        lines.insert(2, forged[..forged.len() - 1].to_vec());
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Inserted, "{finding}");
        assert_eq!(finding.line, 3);
    }

    #[test]
    fn a_copied_line_is_named_inserted() {
        let key = key();
        let (mut lines, head) = log(&key, 5);
        lines.insert(3, lines[1].clone());
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Inserted, "{finding}");
        assert_eq!((finding.line, finding.seq), (4, Some(2)));
    }

    #[test]
    fn a_cut_last_line_is_named_truncated() {
        let key = key();
        let (lines, head) = log(&key, 5);
        let mut verifier = Verifier::new(&key, Some(head), true);
        verifier.file("audit.jsonl");
        for line in &lines[..4] {
            verifier.line(line, true).unwrap();
        }
        verifier.line(&lines[4][..40], false).unwrap();
        let finding = verifier.finish().unwrap_err();
        assert_eq!(finding.kind, FindingKind::Truncated, "{finding}");
        assert_eq!(finding.line, 5);
    }

    #[test]
    fn a_line_cut_by_a_crash_and_written_after_is_named_truncated() {
        let key = key();
        let (mut lines, head) = log(&key, 4);
        lines[2].truncate(50);
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Truncated, "{finding}");
        assert_eq!((finding.line, finding.seq), (3, None));
    }

    #[test]
    fn a_deleted_last_line_is_found_by_the_head() {
        let key = key();
        let (lines, head) = log(&key, 5);
        let finding = verify(&key, &lines[..4], Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Truncated, "{finding}");
        assert_eq!((finding.line, finding.seq), (4, Some(4)));
        assert!(finding.detail.contains("record 5 is missing"), "{finding}");
        assert!(
            verify(&key, &lines[..4], None).is_ok(),
            "only the head sees it"
        );
    }

    #[test]
    fn an_edited_last_line_is_named_edited() {
        let key = key();
        let (mut lines, head) = log(&key, 3);
        lines[2] = String::from_utf8(lines[2].clone())
            .unwrap()
            .replace("\"ok\"", "\"not_found\"")
            .into_bytes();
        let finding = verify(&key, &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Edited, "{finding}");
        assert_eq!(finding.line, 3);
    }

    #[test]
    fn a_log_missing_its_first_records_is_named_deleted_only_from_the_start() {
        let key = key();
        let (lines, head) = log(&key, 5);
        let finding = verify(&key, &lines[2..], Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::Deleted, "{finding}");
        assert!(
            finding.detail.contains("records 1–2 are missing"),
            "{finding}"
        );
        let mut middle = Verifier::new(&key, Some(head), false);
        middle.file("audit.jsonl.000000000003");
        for line in &lines[2..] {
            middle.line(line, true).unwrap();
        }
        assert_eq!(
            middle.finish().unwrap().to_string(),
            "ok: 3 records, seq 3–5, 1 file"
        );
    }

    #[test]
    fn the_chain_runs_across_files() {
        let key = key();
        let (lines, head) = log(&key, 6);
        let mut verifier = Verifier::new(&key, Some(head), true);
        for (i, chunk) in lines.chunks(2).enumerate() {
            verifier.file(&format!("f{i}"));
            for line in chunk {
                verifier.line(line, true).unwrap();
            }
        }
        assert_eq!(
            verifier.finish().unwrap().to_string(),
            "ok: 6 records, seq 1–6, 3 files"
        );
    }

    #[test]
    fn the_wrong_key_is_named_as_such() {
        let (lines, head) = log(&key(), 3);
        let finding = verify(&Key::new(&[1u8; KEY_LEN]), &lines, Some(head)).unwrap_err();
        assert_eq!(finding.kind, FindingKind::WrongKey, "{finding}");
    }

    #[test]
    fn heads_round_trip_at_a_fixed_size() {
        let head = Head {
            seq: 42,
            chain: key().hmac(b"x"),
        };
        let bytes = head.encode();
        assert_eq!(bytes.len(), Head::LEN);
        assert_eq!(Head::parse(&bytes), Some(head));
        assert_eq!(Head::parse(b"42 zz\n"), None);
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_717_243_200_123);
        assert_eq!(timestamp(at), "2024-06-01T12:00:00.123Z");
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn rotated_files_sort_in_log_order() {
        let log = Path::new("/s/audit.jsonl");
        assert_eq!(
            rotated_path(log, 17),
            Path::new("/s/audit.jsonl.000000000017")
        );
        let given = vec![
            PathBuf::from("/s/audit.jsonl"),
            PathBuf::from("/s/audit.jsonl.000000000100"),
            PathBuf::from("/s/audit.jsonl.000000000017"),
        ];
        assert_eq!(
            in_log_order(given),
            vec![
                PathBuf::from("/s/audit.jsonl.000000000017"),
                PathBuf::from("/s/audit.jsonl.000000000100"),
                PathBuf::from("/s/audit.jsonl"),
            ]
        );
    }
}
