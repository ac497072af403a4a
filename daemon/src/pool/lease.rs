//! A pooled SSH connection and the session slots leased on it.
//!
//! A [`Lease`] is one slot, held for the length of one operation. Giving
//! it back is where the pool meets OpenSSH's MaxSessions: a slot whose
//! channel was closed is not free until the server says so (the release
//! barrier below), and a server that refuses a channel lowers the
//! connection's cap for a while.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelOpenFailure;
use sshmcp_proto::{Error, ErrorKind};

use super::SessionChannel;
use super::connect::SshHandle;
use super::host::Host;

/// One SSH connection and the session channels it carries.
pub struct Connection {
    pub(super) id: u64,
    pub(super) handle: SshHandle,
    /// Leased session slots.
    pub(super) busy: AtomicU32,
    /// Slots whose channel we have closed but the server may not have let
    /// go yet; they count against the cap until a ping flushes them.
    pub(super) lingering: AtomicU32,
    /// A flush of the lingering slots is under way.
    flushing: AtomicBool,
    /// Lowered when the server refuses a channel below our configured cap.
    pub(super) cap: AtomicU32,
    pub(super) dead: AtomicBool,
    pub(super) last_used: Mutex<Instant>,
    /// The slot on the jump host's connection that carries this one.
    _tunnel: Option<Lease>,
}

impl Connection {
    /// A fresh connection with no slot leased; `tunnel` is the jump host's
    /// slot that carries it, if any.
    pub(super) fn new(id: u64, handle: SshHandle, cap: u32, tunnel: Option<Lease>) -> Connection {
        Connection {
            id,
            handle,
            busy: AtomicU32::new(0),
            lingering: AtomicU32::new(0),
            flushing: AtomicBool::new(false),
            cap: AtomicU32::new(cap),
            dead: AtomicBool::new(false),
            last_used: Mutex::new(Instant::now()),
            _tunnel: tunnel,
        }
    }

    pub(super) fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && !self.handle.is_closed()
    }

    pub(super) fn has_room(&self) -> bool {
        self.busy.load(Ordering::Acquire) + self.lingering.load(Ordering::Acquire)
            < self.cap.load(Ordering::Acquire)
    }

    /// Free every lingering slot once the server has confirmed it: a
    /// global request sent now is answered only after everything before it
    /// (the closes included) has been processed. One ping frees them all;
    /// concurrent calls share the flush under way.
    pub(super) fn flush_lingering(self: &Arc<Self>, host: &Arc<Host>) {
        if self.lingering.load(Ordering::Acquire) == 0 || self.flushing.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.flushing.store(false, Ordering::Release);
            return;
        };
        let conn = self.clone();
        let host = host.clone();
        runtime.spawn(async move {
            let closed = conn.lingering.load(Ordering::Acquire);
            let _ = tokio::time::timeout(RELEASE_BARRIER_TIMEOUT, conn.handle.send_ping()).await;
            conn.lingering.fetch_sub(closed, Ordering::AcqRel);
            conn.flushing.store(false, Ordering::Release);
            host.notify_slot_freed();
        });
    }

    pub(super) fn idle_for(&self) -> Duration {
        self.last_used
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// The server refused a session channel while `busy` of ours were
    /// counted on this connection: its MaxSessions (or what it still holds
    /// from closes it has not yet processed) is below our cap, so stop
    /// asking above what it has just accepted. The cap comes back when the
    /// connection next goes idle, so a passing refusal costs nothing lasting.
    pub(super) fn note_refusal(&self, alias: &str, reason: &str) {
        if self.lingering.load(Ordering::Acquire) > 0 {
            // The server may still hold slots we have closed: not a sign
            // of a lower MaxSessions. The caller flushes them.
            return;
        }
        let busy = self.busy.load(Ordering::Acquire);
        let lowered = busy.saturating_sub(1).max(1);
        let before = self.cap.fetch_min(lowered, Ordering::AcqRel);
        if lowered < before {
            tracing::info!(
                host = alias,
                conn = self.id,
                cap = lowered,
                "server refused a session channel ({reason}); retrying on another slot"
            );
        }
    }

    pub(super) fn close(self: &Arc<Self>) {
        self.dead.store(true, Ordering::Release);
        let conn = self.clone();
        tokio::spawn(async move {
            let bye = conn
                .handle
                .disconnect(russh::Disconnect::ByApplication, "", "en");
            let _ = tokio::time::timeout(Duration::from_secs(2), bye).await;
        });
    }
}

/// A session slot on a connection, held for the length of one operation.
/// Dropping it frees the slot and wakes waiters: at once when no channel
/// was opened on it, else once the server has let the channel go.
pub struct Lease {
    host: Arc<Host>,
    pub(super) conn: Arc<Connection>,
    /// A session channel was opened on this slot.
    holds_channel: bool,
}

/// How long a flush waits for the server to confirm it has processed the
/// closes before the lingering slots are reused anyway.
const RELEASE_BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for Lease {
    fn drop(&mut self) {
        // OpenSSH frees a session's MaxSessions slot only after it has
        // processed our CHANNEL_CLOSE and reaped the session, a moment after
        // we have seen the channel close: a slot reused at once can be
        // refused (CONNECT_FAILED). So a slot that carried a channel lingers,
        // counted against the cap, until a ping flushes it. Flushing once
        // half the cap lingers (or when a checkout finds no room) costs one
        // round trip per several calls instead of one per call.
        if self.holds_channel && self.conn.is_alive() {
            self.conn.lingering.fetch_add(1, Ordering::AcqRel);
            self.host.release(&self.conn);
            let cap = self.conn.cap.load(Ordering::Acquire);
            if self.conn.lingering.load(Ordering::Acquire) * 2 >= cap.max(1) {
                self.conn.flush_lingering(&self.host);
            }
            return;
        }
        self.host.release(&self.conn);
    }
}

/// Why opening a channel on a leased connection failed.
pub(super) enum OpenFailure {
    /// The connection is gone or wedged: retry on a fresh one.
    Dead(String),
    /// The server refused a session channel (OpenSSH says CONNECT_FAILED
    /// past MaxSessions): retry on another slot or connection.
    Refused(String),
    Other(Error),
}

impl Lease {
    /// A slot on `conn`, already counted in its `busy`.
    pub(super) fn new(host: Arc<Host>, conn: Arc<Connection>) -> Lease {
        Lease {
            host,
            conn,
            holds_channel: false,
        }
    }

    /// Open a session channel on the leased slot; from then on, giving the
    /// slot back waits for the server to let the channel go.
    pub(super) async fn open_channel(&mut self) -> Result<SessionChannel, OpenFailure> {
        let timeout = self.host.shared.settings.channel_open_timeout;
        match tokio::time::timeout(timeout, self.conn.handle.channel_open_session()).await {
            Err(_) => Err(OpenFailure::Dead(format!(
                "opening a channel took longer than {}s",
                timeout.as_secs()
            ))),
            Ok(Ok(channel)) => {
                self.holds_channel = true;
                Ok(channel)
            }
            Ok(Err(russh::Error::ChannelOpenFailure(failure))) => {
                Err(OpenFailure::Refused(refusal_reason(&failure)))
            }
            Ok(Err(e)) if self.conn.handle.is_closed() => Err(OpenFailure::Dead(e.to_string())),
            Ok(Err(
                e @ (russh::Error::SendError
                | russh::Error::Disconnect
                | russh::Error::HUP
                | russh::Error::ConnectionTimeout
                | russh::Error::KeepaliveTimeout
                | russh::Error::IO(_)),
            )) => Err(OpenFailure::Dead(e.to_string())),
            Ok(Err(e)) => Err(OpenFailure::Other(Error::new(
                ErrorKind::Internal,
                format!(
                    "cannot open a session channel to {}: {e}",
                    self.host.resolved.alias
                ),
            ))),
        }
    }
}

/// A refused channel open's reason, as the server gave it.
fn refusal_reason(failure: &ChannelOpenFailure) -> String {
    match failure {
        ChannelOpenFailure::AdministrativelyProhibited => "administratively prohibited".into(),
        ChannelOpenFailure::ConnectFailed => "connect failed: no more sessions".into(),
        ChannelOpenFailure::UnknownChannelType => "unknown channel type".into(),
        ChannelOpenFailure::ResourceShortage => "resource shortage".into(),
        ChannelOpenFailure::Other { code, reason } => {
            format!("code {code}: {}", reason.escape_debug())
        }
    }
}
