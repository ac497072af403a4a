//! SFTP sessions that stay open on pooled connections and are shared.
//!
//! Each session is an `sftp` subsystem channel holding one session slot on
//! its connection for as long as it lives. Many operations share one
//! session at once: SFTP requests carry ids, so reads and writes of many
//! files are pipelined over it. A host gets more sessions (up to
//! `[pool] sftp_sessions`) when every open one is busy, so parallel work
//! spreads over several `sftp-server` processes and connections. Sessions
//! idle past the idle timeout are closed by the reaper, which frees their
//! connection to be reaped in turn.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use russh_sftp::client::RawSftpSession;
use russh_sftp::client::rawsession::Limits;
use sshmcp_proto::{Error, ErrorKind};
use tokio::sync::Semaphore;

use super::{Host, Lease};

/// How long a file operation may wait for an SFTP session (which may
/// mean connecting).
pub const SESSION_WAIT: Duration = Duration::from_secs(60);

/// How long one SFTP request may take before the session is presumed dead.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Open file handles per session. OpenSSH's sftp-server numbers handles by
/// slot and sends the number as a 4-byte string, which russh-sftp decodes
/// as UTF-8: numbers from 128 up would not survive, so stay below them.
const HANDLES_PER_SESSION: usize = 100;

/// Bytes per read or write request when the server does not say
/// (`limits@openssh.com`); the SFTP spec promises 32 KiB at least.
const DEFAULT_IO_LEN: u32 = 32 * 1024;

/// Cap on our own request size: larger ones only add latency per request
/// (the SSH channel splits them into 32 KiB packets anyway).
const MAX_IO_LEN: u32 = 64 * 1024;

/// The SFTP sessions of one host.
#[derive(Default)]
pub(super) struct SftpSlots {
    sessions: std::sync::Mutex<Vec<Arc<SftpSession>>>,
    /// Single flight for opening a new session.
    opening: tokio::sync::Mutex<()>,
}

/// One open SFTP session on a pooled connection.
pub struct SftpSession {
    raw: RawSftpSession,
    id: u64,
    /// Bytes per read request.
    pub read_len: u32,
    /// Bytes per write request.
    pub write_len: u32,
    /// The server supports `posix-rename@openssh.com` (atomic replace).
    pub posix_rename: bool,
    /// The server supports `fsync@openssh.com`.
    pub fsync: bool,
    /// The server supports `statvfs@openssh.com`.
    pub statvfs: bool,
    /// Bounds open file handles (see [`HANDLES_PER_SESSION`]).
    pub handles: Semaphore,
    users: AtomicUsize,
    broken: AtomicBool,
    /// Milliseconds since `epoch` when the last user let go.
    last_used_ms: AtomicU64,
    epoch: Instant,
    lease: Lease,
}

impl SftpSession {
    /// The raw protocol session, for requests.
    pub fn raw(&self) -> &RawSftpSession {
        &self.raw
    }

    /// Mark the session unusable (its channel or connection failed); the
    /// next request opens a fresh one.
    pub fn mark_broken(&self) {
        self.broken.store(true, Ordering::Release);
    }

    fn is_usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire) && self.lease.conn.is_alive()
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_used_ms.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(last)
    }
}

/// A share of an SFTP session, held for the length of one operation.
pub struct Sftp {
    session: Arc<SftpSession>,
}

impl std::ops::Deref for Sftp {
    type Target = SftpSession;
    fn deref(&self) -> &SftpSession {
        &self.session
    }
}

impl Sftp {
    /// Another share of the same session (e.g. for a background close).
    pub fn share(&self) -> Sftp {
        self.session.users.fetch_add(1, Ordering::AcqRel);
        Sftp {
            session: self.session.clone(),
        }
    }
}

impl Drop for Sftp {
    fn drop(&mut self) {
        let s = &self.session;
        s.last_used_ms
            .store(s.epoch.elapsed().as_millis() as u64, Ordering::Release);
        s.users.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Host {
    /// A share of an SFTP session on this host, opening one (and a
    /// connection) when needed. Sessions are shared: a new one opens only
    /// when every open one is in use and the host has fewer than
    /// `[pool] sftp_sessions`.
    pub async fn sftp(self: &Arc<Self>, deadline: Instant) -> Result<Sftp, Error> {
        let host = self;
        let alias = self.resolved.alias.as_str();
        let max = self.shared.settings.sftp_sessions.max(1) as usize;
        loop {
            if let Some(share) = host.pick_sftp(max, false) {
                return Ok(share);
            }
            let _opening = match tokio::time::timeout_at(deadline.into(), host.sftp.opening.lock())
                .await
            {
                Ok(guard) => guard,
                Err(_) => {
                    // Someone else is still opening; take any live session.
                    return host.pick_sftp(max, true).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Timeout,
                            format!("no SFTP session to {alias} became available in time; retry"),
                        )
                    });
                }
            };
            if let Some(share) = host.pick_sftp(max, false) {
                return Ok(share);
            }
            let session = Arc::new(self.open_sftp(deadline).await?);
            host.sftp_sessions().push(session);
        }
    }

    async fn open_sftp(self: &Arc<Self>, deadline: Instant) -> Result<SftpSession, Error> {
        let alias = self.resolved.alias.as_str();
        let (lease, channel) = self.session(deadline).await?;
        let lost = |what: &str, e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::Unreachable,
                format!(
                    "cannot start SFTP on {alias} ({what}: {e}); retry, and check that the server enables the sftp subsystem"
                ),
            )
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, channel.request_subsystem(true, "sftp")).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(lost("subsystem request", &e)),
            Err(_) => return Err(lost("subsystem request", &"timed out")),
        }
        let config = russh_sftp::client::Config {
            // A reply to a full-size read, plus headers.
            max_packet_len: 512 * 1024,
            request_timeout_secs: REQUEST_TIMEOUT.as_secs(),
            ..Default::default()
        };
        let mut raw = RawSftpSession::new_with_config(channel.into_stream(), config);
        let version = match tokio::time::timeout(remaining, raw.init()).await {
            Ok(Ok(version)) => version,
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Unreachable,
                    format!(
                        "the SFTP server on {alias} did not start ({e}); check its `Subsystem sftp` line"
                    ),
                ));
            }
            Err(_) => return Err(lost("init", &"timed out")),
        };
        let has = |name: &str| version.extensions.contains_key(name);
        let (mut read_len, mut write_len) = (DEFAULT_IO_LEN, DEFAULT_IO_LEN);
        if has(russh_sftp::extensions::LIMITS)
            && let Ok(Ok(limits)) = tokio::time::timeout(remaining, raw.limits()).await
        {
            let clamp = |n: u64| (n.min(MAX_IO_LEN as u64) as u32).max(DEFAULT_IO_LEN);
            if limits.max_read_len > 0 {
                read_len = clamp(limits.max_read_len);
            }
            if limits.max_write_len > 0 {
                write_len = clamp(limits.max_write_len);
            }
            raw.set_limits(Limits::from(limits));
        }
        let id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            host = alias,
            sftp = id,
            read_len,
            write_len,
            "SFTP session open"
        );
        let epoch = Instant::now();
        Ok(SftpSession {
            raw,
            id,
            read_len,
            write_len,
            posix_rename: has("posix-rename@openssh.com"),
            fsync: has(russh_sftp::extensions::FSYNC),
            statvfs: has(russh_sftp::extensions::STATVFS),
            handles: Semaphore::new(HANDLES_PER_SESSION),
            users: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
            last_used_ms: AtomicU64::new(0),
            epoch,
            lease,
        })
    }

    fn sftp_sessions(&self) -> std::sync::MutexGuard<'_, Vec<Arc<SftpSession>>> {
        self.sftp.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The least used live session when one is free or no more may be
    /// opened (or `any`), dropping dead ones on the way.
    fn pick_sftp(&self, max: usize, any: bool) -> Option<Sftp> {
        let mut sessions = self.sftp_sessions();
        sessions.retain(|s| s.is_usable());
        let best = sessions
            .iter()
            .min_by_key(|s| s.users.load(Ordering::Acquire))?;
        let free = best.users.load(Ordering::Acquire) == 0;
        if free || any || sessions.len() >= max {
            best.users.fetch_add(1, Ordering::AcqRel);
            return Some(Sftp {
                session: best.clone(),
            });
        }
        None
    }

    /// Close SFTP sessions nobody has used for `timeout`.
    pub(super) fn reap_idle_sftp(&self, timeout: Duration) {
        let reaped: Vec<_> = {
            let mut sessions = self.sftp_sessions();
            let (idle, keep) = sessions.drain(..).partition(|s| {
                !s.is_usable() || (s.users.load(Ordering::Acquire) == 0 && s.idle_for() >= timeout)
            });
            *sessions = keep;
            idle
        };
        for session in reaped {
            tracing::debug!(host = %self.resolved.alias, sftp = session.id, "closing idle SFTP session");
            let _ = session.raw.close_session();
        }
    }

    /// Close every SFTP session (drain, shutdown); ones in use close when
    /// their last user lets go.
    pub(super) fn close_sftp(&self) {
        for session in std::mem::take(&mut *self.sftp_sessions()) {
            session.mark_broken();
            if session.users.load(Ordering::Acquire) == 0 {
                let _ = session.raw.close_session();
            }
        }
    }
}
