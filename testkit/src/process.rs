//! Child processes the kit owns: they die, with their descendants, when
//! their owner is dropped, and no wait on them is unbounded.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use crate::exit_cleanup;
use crate::wait::Backoff;

/// Runs `cmd` to completion like [`Command::output`], but within `timeout`:
/// past it the program (and anything it started) is killed and the call
/// panics naming the command and showing its stderr so far.
///
/// Tests use it to run `ssh`, `sshmcpctl` and other programs that must not
/// hang a test run. Stdin is `/dev/null`. The exit status is returned, not
/// judged.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = OwnedChild::spawn(cmd);
    let stdout = read_in_background(child.child.stdout.take());
    let stderr = read_in_background(child.child.stderr.take());
    let Some(status) = child.wait_until(deadline) else {
        child.kill();
        let partial = stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        panic!(
            "`{}` did not finish within {timeout:?}; its stderr:\n{}",
            child.what,
            String::from_utf8_lossy(&partial)
        );
    };
    // A descendant that outlives the program may still hold the pipes open.
    let remaining = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let collect = |rx: mpsc::Receiver<Vec<u8>>, name: &str| {
        rx.recv_timeout(remaining).unwrap_or_else(|_| {
            panic!(
                "`{}` exited ({status}) but something it started still holds its {name} open",
                child.what
            )
        })
    };
    let stdout = collect(stdout, "stdout");
    let stderr = collect(stderr, "stderr");
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Reads a pipe to its end on a thread; the bytes arrive on the channel.
fn read_in_background(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = tx.send(bytes);
    });
    rx
}

/// How many lines of a log panic messages show.
const TAIL_LINES: usize = 40;

/// The last lines of a log, for panic messages.
pub(crate) fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

/// Renders a command for messages: program and arguments.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// A child process that is killed, with all its descendants, when dropped.
///
/// All reaping goes through this type so that the at-exit safety net only
/// ever signals pids that are still ours (an unreaped child's pid cannot be
/// reused).
#[derive(Debug)]
pub(crate) struct OwnedChild {
    pub(crate) child: Child,
    pub(crate) what: String,
    status: Option<ExitStatus>,
}

impl OwnedChild {
    /// Spawns `cmd`, panicking with the command line if it cannot start.
    pub(crate) fn spawn(cmd: &mut Command) -> OwnedChild {
        let what = describe(cmd);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{what}`: {e}"));
        exit_cleanup::track_process(child.id());
        OwnedChild {
            child,
            what,
            status: None,
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has exited, without blocking.
    pub(crate) fn status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            match self.child.try_wait() {
                Ok(Some(status)) => self.reaped(status),
                Ok(None) => {}
                Err(e) => panic!("cannot check on `{}`: {e}", self.what),
            }
        }
        self.status
    }

    pub(crate) fn is_running(&mut self) -> bool {
        self.status().is_none()
    }

    /// Waits for the process to exit until `deadline`; `None` if it is still
    /// running then.
    pub(crate) fn wait_until(&mut self, deadline: Instant) -> Option<ExitStatus> {
        let mut backoff = Backoff::new(Duration::from_millis(20));
        loop {
            if let Some(status) = self.status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            backoff.sleep();
        }
    }

    /// Sends `signal` to the process if it is still running.
    pub(crate) fn signal(&mut self, signal: libc::c_int) {
        if self.is_running() {
            send_signal(self.pid(), signal);
        }
    }

    /// Kills the process and its descendants with SIGKILL and reaps it.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.status() {
            return status;
        }
        kill_tree(self.pid(), true);
        match self.child.wait() {
            Ok(status) => {
                self.reaped(status);
                status
            }
            Err(e) => panic!("cannot reap `{}` after killing it: {e}", self.what),
        }
    }

    fn reaped(&mut self, status: ExitStatus) {
        self.status = Some(status);
        exit_cleanup::forget_process(self.pid());
    }
}

impl Drop for OwnedChild {
    fn drop(&mut self) {
        if self.status.is_none() {
            kill_tree(self.pid(), true);
            if let Ok(status) = self.child.wait() {
                self.reaped(status);
            }
        }
    }
}

pub(crate) fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Kills the descendants of `root` (and `root` itself if `include_root`)
/// with SIGKILL.
///
/// Everything is frozen with SIGSTOP first, so that nothing forks while the
/// tree is being walked and no descendant is reparented away before it is
/// found; `root` is continued afterwards when it is spared.
pub(crate) fn kill_tree(root: u32, include_root: bool) {
    send_signal(root, libc::SIGSTOP);
    let mut frozen: HashSet<u32> = HashSet::new();
    for _ in 0..10 {
        let fresh: Vec<u32> = descendants(root)
            .into_iter()
            .filter(|pid| frozen.insert(*pid))
            .collect();
        if fresh.is_empty() {
            break;
        }
        for pid in fresh {
            send_signal(pid, libc::SIGSTOP);
        }
    }
    for pid in frozen {
        send_signal(pid, libc::SIGKILL);
    }
    if include_root {
        send_signal(root, libc::SIGKILL);
    } else {
        send_signal(root, libc::SIGCONT);
    }
}

/// The processes whose parent is `pid`.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    children_by_parent().remove(&pid).unwrap_or_default()
}

/// Every process below `root` in the process tree.
pub(crate) fn descendants(root: u32) -> Vec<u32> {
    let tree = children_by_parent();
    let mut found = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        if let Some(children) = tree.get(&pid) {
            for &child in children {
                found.push(child);
                todo.push(child);
            }
        }
    }
    found
}

fn children_by_parent() -> HashMap<u32, Vec<u32>> {
    let mut tree: HashMap<u32, Vec<u32>> = HashMap::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return tree;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if let Some(ppid) = parent_from_stat(&stat) {
            tree.entry(ppid).or_default().push(pid);
        }
    }
    tree
}

/// Whether `pid` is alive: it exists and is not a zombie waiting to be
/// reaped.
pub(crate) fn is_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| state_from_stat(&stat))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// The state letter from a `/proc/PID/stat` line (`R`, `S`, `Z`, …).
fn state_from_stat(stat: &str) -> Option<char> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().next()?.chars().next()
}

/// The parent pid from a `/proc/PID/stat` line: `pid (comm) state ppid ...`,
/// where comm may itself contain spaces and parentheses.
fn parent_from_stat(stat: &str) -> Option<u32> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_is_read_after_a_command_name_with_parentheses() {
        let stat = "4242 (sshd: a (b) c) S 17 4242 4242 0 -1";
        assert_eq!(parent_from_stat(stat), Some(17));
        assert_eq!(state_from_stat(stat), Some('S'));
    }
}
