//! Small waiting and port helpers shared by the kit and by tests.

use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Polls `cond` until it returns true, or panics after `timeout` with a
/// message naming `what` was awaited.
///
/// Polling starts at 1 ms and backs off to 50 ms, so short waits stay short
/// without spinning on long ones.
pub fn wait_for(mut cond: impl FnMut() -> bool, timeout: Duration, what: &str) {
    let deadline = Instant::now() + timeout;
    let mut backoff = Backoff::new(Duration::from_millis(50));
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        backoff.sleep();
    }
}

/// A TCP port on `addr` that was free a moment ago: bound with port 0, read
/// back and released. Someone else may take it before the caller binds it,
/// so callers retry on "address in use".
pub fn free_port(addr: IpAddr) -> u16 {
    let listener = TcpListener::bind((addr, 0))
        .unwrap_or_else(|e| panic!("cannot bind a free port on {addr}: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("cannot read the port bound on {addr}: {e}"))
        .port()
}

/// Sleeps with a growing pause: 1 ms doubling to `max`. Used by the kit's
/// polling loops.
pub(crate) struct Backoff {
    pause: Duration,
    max: Duration,
}

impl Backoff {
    pub(crate) fn new(max: Duration) -> Self {
        Backoff {
            pause: Duration::from_millis(1),
            max,
        }
    }

    pub(crate) fn sleep(&mut self) {
        thread::sleep(self.pause);
        self.pause = (self.pause * 2).min(self.max);
    }
}

/// A string of digits no other test (in this or a parallel test process)
/// uses, for finding a test's own remote processes with
/// [`SshServer::pids_of_user_matching`](crate::SshServer::pids_of_user_matching).
pub fn unique_digits() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{}{:09}{}",
        std::process::id(),
        nanos,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
