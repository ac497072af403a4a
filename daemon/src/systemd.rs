//! What the daemon tells systemd, and what it takes from it.
//!
//! All of it is optional: without `NOTIFY_SOCKET` the notifications are
//! no-ops, without `LISTEN_FDS` the daemon binds its own socket, and
//! without `WATCHDOG_USEC` there is no watchdog. A unit with `Type=notify`
//! learns the daemon is ready only once its socket is listening.

use std::os::fd::{FromRawFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::state::Daemon;

/// Send `states` to the service manager, if there is one; failures are
/// logged, never fatal.
pub fn notify(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The daemon is serving: `READY=1` plus a status line.
pub fn ready(daemon: &Daemon) {
    let line = status_line(daemon);
    notify(&[NotifyState::Ready, NotifyState::Status(&line)]);
}

/// A reload begins: `RELOADING=1` with the monotonic time systemd ≥ 253
/// requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(e) => {
            tracing::warn!("cannot read the monotonic clock: {e}");
            notify(&[NotifyState::Reloading]);
        }
    }
}

pub fn stopping() {
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// What `systemctl status` shows while the daemon runs.
pub fn status_line(daemon: &Daemon) -> String {
    let clients = daemon.clients.open();
    let hosts = daemon.pool.aliases().len();
    let connections = daemon.pool.connection_count();
    let warming = daemon.warming.load(std::sync::atomic::Ordering::Relaxed);
    let warming = if warming > 0 {
        format!("warming {warming} hosts; ")
    } else {
        String::new()
    };
    let health = match crate::health::reasons(daemon) {
        reasons if reasons.is_empty() => String::new(),
        reasons => format!("; degraded: {}", reasons.join("; ")),
    };
    format!(
        "{warming}serving {clients} clients; {hosts} hosts, {connections} SSH connections{health}"
    )
}

/// The listening socket systemd passed (socket activation), if any. The
/// descriptor is made non-blocking, as tokio requires.
pub fn inherited_listener() -> Result<Option<std::os::unix::net::UnixListener>, String> {
    let fds: Vec<RawFd> = sd_notify::listen_fds()
        .map_err(|e| format!("bad socket activation environment (LISTEN_FDS/LISTEN_PID): {e}"))?
        .collect();
    let Some(&fd) = fds.first() else {
        return Ok(None);
    };
    if fds.len() > 1 {
        tracing::warn!(
            count = fds.len(),
            "systemd passed several sockets; serving the first only"
        );
    }
    let mut kind: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: fd is ours by the socket activation protocol; `kind` and
    // `len` are valid for the write getsockopt makes.
    let got = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TYPE,
            (&raw mut kind).cast(),
            &raw mut len,
        )
    };
    if got != 0 || kind != libc::SOCK_STREAM {
        return Err(format!(
            "the socket systemd passed (fd {fd}) is not a stream socket; \
             use ListenStream= in the .socket unit"
        ));
    }
    // SAFETY: the descriptor was handed to this process to own.
    let listener = unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) };
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("cannot make the inherited socket non-blocking: {e}"))?;
    Ok(Some(listener))
}

/// Keep the service manager informed while the daemon runs: `STATUS=`
/// when it changes and, when `WATCHDOG_USEC` is set, `WATCHDOG=1` at half
/// that interval. The task runs on the runtime that serves requests, so a
/// wedged runtime stops pinging and systemd restarts the daemon.
pub fn spawn_heartbeat(daemon: &Arc<Daemon>) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    let watchdog = sd_notify::watchdog_enabled();
    let every = match watchdog {
        Some(interval) => {
            tracing::info!(
                interval_ms = interval.as_millis() as u64,
                "systemd watchdog enabled"
            );
            (interval / 2).clamp(Duration::from_millis(10), STATUS_EVERY)
        }
        None => STATUS_EVERY,
    };
    let daemon = daemon.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        let mut last_status = String::new();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = daemon.shutdown.cancelled() => break,
            }
            let line = status_line(&daemon);
            let mut states = Vec::with_capacity(2);
            if watchdog.is_some() {
                states.push(NotifyState::Watchdog);
            }
            if line != last_status {
                states.push(NotifyState::Status(&line));
            }
            if !states.is_empty() {
                notify(&states);
            }
            last_status.clone_from(&line);
        }
    });
}

/// How often the status line is refreshed when there is no watchdog.
const STATUS_EVERY: Duration = Duration::from_secs(5);
