//! Detached jobs (`exec` with `detach: true`): the command runs on the
//! host under `setsid`, its output goes to a spool directory on the host,
//! and the daemon only watches. The job outlives a dropped connection and
//! a daemon restart: the daemon keeps a record of each one in its state
//! directory and, after a restart, reads the spool again from the start.
//!
//! On the host, `${XDG_STATE_HOME:-$HOME/.local/state}/sshmcp/jobs/ID/`
//! holds `cmd` (the command line), `in` (its stdin), `seg` (the segment
//! size), `out.N` and `err.N` (its output, in segments of `seg` bytes:
//! segment N holds the stream's bytes from N × seg; once segment N starts,
//! N−2 is deleted, so the host keeps at most `[jobs] spool_bytes` a stream
//! however long the job runs and whether or not a daemon watches), `pid`
//! (the command's process group, for signals), `wpid` (the watcher that
//! records the end) and, once the command ended, `exit` (its status; 128+N
//! when signal N ended it). The job is `lost` only when the host says so:
//! the directory is gone, or the watcher is gone without having written
//! `exit`. A poll that asks for bytes the host has deleted gets the oldest
//! ones kept, and the daemon's spool records the hole.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use russh::Sig;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, ErrorKind, JobState};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Job;
use crate::command::{self, Command};
use crate::files::transfer::shell_quote as quote;
use crate::pool::Host;
use crate::state::Daemon;

/// The most bytes of each stream one poll brings back.
const POLL_BYTES: u64 = 1024 * 1024;
/// Polls start this often after output, and slow down to `POLL_SLOWEST`
/// while nothing changes.
const POLL_FASTEST: Duration = Duration::from_millis(200);
const POLL_SLOWEST: Duration = Duration::from_secs(2);
/// While the host cannot be reached, try again this often at most.
const RETRY_SLOWEST: Duration = Duration::from_secs(10);
/// Limit on one remote step (launch, poll, signal, clean-up).
const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Exit statuses the launch script uses for its own failures.
const NO_SETSID: u32 = 97;
const NO_SPOOL: u32 = 98;

/// What the daemon remembers of a detached job across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub host: String,
    /// The spool directory on the host, absolute.
    pub dir: String,
    /// The command as `jobs` shows it.
    pub command: String,
    pub started_unix: u64,
}

/// The file of records.
#[derive(Serialize, Deserialize)]
struct Records {
    jobs: Vec<Record>,
}

/// The daemon's own state directory (shared with the audit log, whose
/// verifier in `sshmcpctl` finds it the same way).
pub use sshmcp_proto::audit::state_dir;

/// The records of detached jobs, in `jobs.toml` in the state directory:
/// written whole (to a temporary file, then renamed) whenever one starts or
/// goes.
pub struct Store {
    path: Option<PathBuf>,
    records: std::sync::Mutex<Vec<Record>>,
}

impl Store {
    /// The store at `dir/jobs.toml`, with what it holds now. An unreadable
    /// store is logged and started afresh: jobs in it are not found again,
    /// and their spools stay on their hosts.
    pub fn open(dir: Option<&Path>) -> Store {
        let path = dir.map(|dir| dir.join("jobs.toml"));
        let records = path.as_deref().map_or_else(Vec::new, |path| {
            match std::fs::read_to_string(path) {
                Ok(text) => match toml::from_str::<Records>(&text) {
                    Ok(file) => file.jobs,
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "unreadable job records, ignored: {e}");
                        Vec::new()
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => {
                    tracing::warn!(path = %path.display(), "cannot read job records: {e}");
                    Vec::new()
                }
            }
        });
        Store {
            path,
            records: std::sync::Mutex::new(records),
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn add(&self, record: Record) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records.push(record);
        self.save(&records);
    }

    pub fn remove(&self, id: &str) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let before = records.len();
        records.retain(|r| r.id != id);
        if records.len() != before {
            self.save(&records);
        }
    }

    fn save(&self, records: &[Record]) {
        let Some(path) = &self.path else {
            return;
        };
        if let Err(e) = write_atomically(path, records) {
            tracing::warn!(
                path = %path.display(),
                "cannot save job records (detached jobs will not be found after a restart): {e}"
            );
        }
    }
}

fn write_atomically(path: &Path, records: &[Record]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    let text = toml::to_string(&Records {
        jobs: records.to_vec(),
    })
    .map_err(std::io::Error::other)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Run a short helper script on `host`, its output capped at `max`.
async fn step(
    host: &Arc<Host>,
    line: &str,
    stdin: &[u8],
    max: u64,
) -> Result<sshmcp_proto::ExecOutput, Error> {
    command::run(
        Command {
            host,
            line,
            stdin,
            timeout: STEP_TIMEOUT,
            max_output: max,
            started: Instant::now(),
            progress: None,
            sudo: None,
        },
        &CancellationToken::new(),
    )
    .await
}

/// Start `line` detached on `host` as job `id`, with `stdin`, its output
/// kept on the host in segments of `segment` bytes (two a stream at most);
/// answers the spool directory.
pub async fn launch(
    host: &Arc<Host>,
    id: &str,
    line: &str,
    stdin: &[u8],
    segment: u64,
) -> Result<String, Error> {
    // The watcher: feeds each stream through a segment writer (`seg`: a
    // `head -c` per segment, deleting the one before the last), starts the
    // command in a session of its own (so signals to its group spare the
    // watcher and the writers), waits for it, gives the writers a moment
    // to drain (a child of the command may hold its output open), and
    // records the status.
    let watcher = r#"d=$1; S=$(cat "$d/seg")
seg() {
  i=0
  while :; do
    head -c "$S" > "$d/$1.$i"
    n=$(($(wc -c < "$d/$1.$i")))
    [ "$n" -gt 0 ] || { rm -f "$d/$1.$i"; break; }
    [ "$n" -lt "$S" ] && break
    i=$((i + 1))
    [ "$i" -ge 2 ] && rm -f "$d/$1.$((i - 2))"
  done
}
mkfifo "$d/out.p" "$d/err.p" || exit 1
seg out <"$d/out.p" & w1=$!
seg err <"$d/err.p" & w2=$!
setsid sh -c 'echo $$ > "$1/pid"; exec "${SHELL:-/bin/sh}" -c "$(cat "$1/cmd")"' sh "$d" <"$d/in" >"$d/out.p" 2>"$d/err.p" &
wait $!; st=$?
(sleep 2; kill $w1 $w2 2>/dev/null) & k=$!
wait $w1 $w2; kill $k 2>/dev/null
rm -f "$d/out.p" "$d/err.p"
echo $st > "$d/exit.tmp" && mv "$d/exit.tmp" "$d/exit""#;
    let script = format!(
        r#"umask 077
command -v setsid >/dev/null 2>&1 || {{ echo 'setsid is not installed on this host' >&2; exit {NO_SETSID}; }}
d="${{XDG_STATE_HOME:-$HOME/.local/state}}/sshmcp/jobs/{id}"
mkdir -p "$d" && printf '%s' {cmd} > "$d/cmd" && echo {segment} > "$d/seg" && cat > "$d/in" || exit {NO_SPOOL}
setsid sh -c {watcher} sshmcp-job "$d" </dev/null >/dev/null 2>&1 &
echo $! > "$d/wpid"
printf 'sshmcp-job %s\n' "$d""#,
        cmd = quote(line),
        watcher = quote(watcher),
    );
    let alias = &host.resolved.alias;
    let out = step(host, &script, stdin, 64 * 1024).await?;
    let said = String::from_utf8_lossy(&out.stderr);
    let said = said.trim();
    match out.exit_code {
        Some(0) => {}
        Some(NO_SETSID) => {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "cannot detach on {alias}: `setsid` is not installed there (util-linux); \
                     run the command without detach"
                ),
            ));
        }
        code => {
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!(
                    "cannot start a detached job on {alias}: the spool directory could not be \
                     made (exit {code:?}: {said})"
                ),
            ));
        }
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("sshmcp-job "))
        .filter(|dir| dir.starts_with('/') && !dir.contains('\n'))
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Unreachable,
                format!("{alias} did not say where the detached job's spool is"),
            )
        })
}

/// Where a detached job stands on its host.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Running,
    /// Exited with this status (128+N for signal N).
    Ended(u32),
    /// The watcher is gone without a status: ended unrecorded.
    Vanished,
    /// The spool directory is gone.
    Gone,
}

/// One poll's answer: the new bytes of each stream and where the job
/// stands. The bytes were read after the status, so once it ended they
/// are complete.
#[derive(Debug)]
struct Poll {
    out: Vec<u8>,
    err: Vec<u8>,
    /// Stream offsets the bytes start at: past the asked ones when the host
    /// had deleted those.
    out_at: u64,
    err_at: u64,
    /// More output was there than one poll brings.
    more: bool,
    seen: Seen,
}

async fn poll(host: &Arc<Host>, dir: &str, out_at: u64, err_at: u64) -> Result<Poll, Error> {
    // `at STREAM OFFSET` finds where to read: the file `f`, the offset `o`
    // in it, the stream offset `st` and the count `n`; `m` says more
    // remains. A job from before segments (no `seg`) has one file a stream.
    let script = format!(
        r#"d={dir}
[ -d "$d" ] || {{ echo 'sshmcp-poll gone'; exit 0; }}
ex=-; [ -f "$d/exit" ] && ex=$(cat "$d/exit")
al=1; [ "$ex" = - ] && {{ kill -0 "$(cat "$d/wpid" 2>/dev/null)" 2>/dev/null || al=0; }}
S=$(cat "$d/seg" 2>/dev/null); m=0
at() {{
  st=$2; f=; o=0; n=0
  if [ -z "$S" ]; then
    f="$d/$1"; [ -f "$f" ] || return 0
    t=$(($(wc -c < "$f"))); [ "$st" -gt "$t" ] && st=$t
    o=$st; n=$((t - st))
  else
    lo=; hi=
    for p in "$d/$1".[0-9]*; do
      [ -f "$p" ] || continue; k=${{p##*.}}
      {{ [ -z "$lo" ] || [ "$k" -lt "$lo" ]; }} && lo=$k
      {{ [ -z "$hi" ] || [ "$k" -gt "$hi" ]; }} && hi=$k
    done
    [ -n "$hi" ] || return 0
    [ "$st" -lt $((lo * S)) ] && st=$((lo * S))
    k=$((st / S)); [ "$k" -gt "$hi" ] && k=$hi
    f="$d/$1.$k"; o=$((st - k * S))
    sz=0; [ -f "$f" ] && sz=$(($(wc -c < "$f")))
    n=$((sz - o)); [ "$n" -lt 0 ] && n=0
    [ "$k" -lt "$hi" ] && m=1
  fi
  [ "$n" -gt {max} ] && {{ n={max}; m=1; }}
  return 0
}}
at out {out_at}; fo=$f; oo=$o; no=$n; so=$st
at err {err_at}; fe=$f; oe=$o; ne=$n; se=$st
echo "sshmcp-poll $no $ne $ex $al $so $se $m"
[ "$no" -gt 0 ] && tail -c +$((oo + 1)) "$fo" | head -c "$no"
[ "$ne" -gt 0 ] && tail -c +$((oe + 1)) "$fe" | head -c "$ne"
exit 0"#,
        dir = quote(dir),
        max = POLL_BYTES,
    );
    let out = step(host, &script, &[], 2 * POLL_BYTES + 256).await?;
    parse_poll(&out.stdout).ok_or_else(|| {
        Error::new(
            ErrorKind::Unreachable,
            format!(
                "{} answered a detached job's poll with something unexpected",
                host.resolved.alias
            ),
        )
    })
}

/// The poll script's answer: a header line, then exactly the bytes it
/// announced. Anything else is refused (a segment deleted while it was
/// read comes back short, and is asked again).
fn parse_poll(bytes: &[u8]) -> Option<Poll> {
    let end = bytes.iter().take(256).position(|b| *b == b'\n')?;
    let header = std::str::from_utf8(&bytes[..end]).ok()?;
    let mut words = header.split(' ');
    if words.next()? != "sshmcp-poll" {
        return None;
    }
    let first = words.next()?;
    if first == "gone" {
        return Some(Poll {
            out: Vec::new(),
            err: Vec::new(),
            out_at: 0,
            err_at: 0,
            more: false,
            seen: Seen::Gone,
        });
    }
    let no: usize = first.parse().ok()?;
    let ne: usize = words.next()?.parse().ok()?;
    let ex = words.next()?;
    let alive = words.next()? == "1";
    let out_at: u64 = words.next()?.parse().ok()?;
    let err_at: u64 = words.next()?.parse().ok()?;
    let more = words.next()? == "1";
    if words.next().is_some() {
        return None;
    }
    let body = &bytes[end + 1..];
    if body.len() != no.checked_add(ne)? {
        return None;
    }
    let seen = match ex {
        "-" if alive => Seen::Running,
        "-" => Seen::Vanished,
        code => Seen::Ended(code.trim().parse().ok()?),
    };
    Some(Poll {
        out: body[..no].to_vec(),
        err: body[no..].to_vec(),
        out_at,
        err_at,
        more,
        seen,
    })
}

/// Send `signal` to the job's process group.
async fn signal(host: &Arc<Host>, dir: &str, signal: &str) -> Result<(), Error> {
    let script = format!(
        r#"d={dir}; i=0
while [ ! -s "$d/pid" ] && [ -f "$d/wpid" ] && [ ! -f "$d/exit" ] && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done
[ -s "$d/pid" ] && kill -{signal} -"$(cat "$d/pid")" 2>/dev/null; exit 0"#,
        dir = quote(dir),
    );
    step(host, &script, &[], 4096).await.map(|_| ())
}

/// Remove the job's spool directory from its host (best effort).
pub async fn remove(host: &Arc<Host>, dir: &str) {
    let script = format!("rm -rf -- {}", quote(dir));
    if let Err(e) = step(host, &script, &[], 4096).await {
        tracing::debug!(host = %host.resolved.alias, "cannot remove a detached job's spool: {}", e.message);
    }
}

/// The name of a signal from its number, for statuses 128+N.
fn signal_name(n: u32) -> Option<&'static str> {
    Some(match n {
        1 => "HUP",
        2 => "INT",
        9 => "KILL",
        15 => "TERM",
        _ => return None,
    })
}

/// Watch a detached job until it ends (or the daemon stops): pull its
/// output into the job's spool, pass signals on, and record how it ended.
pub async fn watch(
    job: Arc<Job>,
    dir: String,
    daemon: Weak<Daemon>,
    mut signals: mpsc::Receiver<Sig>,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::ZERO;
    let mut signalled: Option<u32> = None;
    let mut vanished_once = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            Some(sig) = signals.recv() => {
                let (name, number) = match sig {
                    Sig::INT => ("INT", 2),
                    Sig::KILL => ("KILL", 9),
                    Sig::HUP => ("HUP", 1),
                    _ => ("TERM", 15),
                };
                if let Some(host) = host_of(&daemon, &job.host) {
                    match signal(&host, &dir, name).await {
                        Ok(()) => signalled = Some(number),
                        Err(e) => tracing::info!(job = %job.id, "cannot signal: {}", e.message),
                    }
                }
                wait = Duration::ZERO;
                continue;
            }
            () = shutdown.cancelled() => return,
        }
        let Some(host) = host_of(&daemon, &job.host) else {
            // The host left the config: nothing to poll any more.
            job.finish(JobState::Lost, None, None);
            return;
        };
        let (out_at, err_at) = job.totals();
        match poll(&host, &dir, out_at, err_at).await {
            Ok(polled) => {
                let holes = [
                    polled.out_at.saturating_sub(out_at),
                    polled.err_at.saturating_sub(err_at),
                ];
                let news = !polled.out.is_empty() || !polled.err.is_empty();
                if news || holes != [0, 0] {
                    job.update(|i| {
                        // Bytes the host deleted before they were read.
                        i.stdout.skip(holes[0]);
                        i.stderr.skip(holes[1]);
                        i.stdout.push(&polled.out);
                        i.stderr.push(&polled.err);
                    });
                }
                match polled.seen {
                    Seen::Running => {}
                    _ if polled.more => {}
                    Seen::Ended(status) => {
                        let by_us = signalled.filter(|n| status == 128 + n);
                        let signal = by_us.and_then(signal_name).map(str::to_owned);
                        let state = if signal.is_some() {
                            JobState::Killed
                        } else {
                            JobState::Exited
                        };
                        let code = signal.is_none().then_some(status);
                        job.finish(state, code, signal);
                        return;
                    }
                    // The watcher writes `exit` and then ends: a poll that
                    // looked between the two sees it gone; look again.
                    Seen::Vanished if !vanished_once => vanished_once = true,
                    Seen::Vanished | Seen::Gone => {
                        tracing::info!(job = %job.id, seen = ?polled.seen, "detached job lost");
                        job.finish(JobState::Lost, None, None);
                        return;
                    }
                }
                wait = if polled.more || vanished_once {
                    Duration::ZERO
                } else if news {
                    POLL_FASTEST
                } else {
                    (wait * 2).clamp(POLL_FASTEST, POLL_SLOWEST)
                };
            }
            Err(e) => {
                tracing::debug!(job = %job.id, "cannot poll: {}", e.message);
                wait = (wait * 2).clamp(POLL_SLOWEST, RETRY_SLOWEST);
            }
        }
    }
}

fn host_of(daemon: &Weak<Daemon>, alias: &str) -> Option<Arc<Host>> {
    daemon.upgrade()?.pool.host(alias).ok()
}

/// Seconds since the epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poll_answer_is_taken_only_when_it_is_exactly_what_it_announced() {
        let polled = parse_poll(b"sshmcp-poll 3 2 - 1 40 7 1\nabcde").unwrap();
        assert_eq!(
            (polled.out.as_slice(), polled.err.as_slice()),
            (&b"abc"[..], &b"de"[..])
        );
        assert_eq!((polled.out_at, polled.err_at, polled.more), (40, 7, true));
        assert_eq!(polled.seen, Seen::Running);
        assert_eq!(
            parse_poll(b"sshmcp-poll 0 0 143 1 0 0 0\n").unwrap().seen,
            Seen::Ended(143)
        );
        assert_eq!(
            parse_poll(b"sshmcp-poll 0 0 - 0 0 0 0\n").unwrap().seen,
            Seen::Vanished
        );
        assert_eq!(parse_poll(b"sshmcp-poll gone\n").unwrap().seen, Seen::Gone);
        for bad in [
            &b"sshmcp-poll 3 2 - 1 0 0 0\nabcd"[..],
            b"sshmcp-poll 3 2 - 1 0 0 0\nabcdef",
            b"sshmcp-poll x 2 - 1 0 0 0\n",
            b"sshmcp-poll 0 0 - 1\n",
            b"sshmcp-poll 0 0 - 1 0 x 0\n",
            b"sshmcp-poll 0 0 - 1 0 0 0 extra\n",
            b"hello\n",
            b"sshmcp-poll 0 0 nope 1 0 0 0\n",
            b"sshmcp-poll 18446744073709551615 1 - 1 0 0 0\n",
            b"",
        ] {
            assert!(
                parse_poll(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn records_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(Some(dir.path()));
        let record = Record {
            id: "j1-1".into(),
            host: "web1".into(),
            dir: "/home/u/.local/state/sshmcp/jobs/j1-1".into(),
            command: "make".into(),
            started_unix: 1,
        };
        store.add(record.clone());
        assert_eq!(Store::open(Some(dir.path())).records(), vec![record]);
        store.remove("j1-1");
        assert!(Store::open(Some(dir.path())).records().is_empty());
    }
}
