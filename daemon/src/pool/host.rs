//! One host's connections: leasing a free session slot (connecting when
//! none is free, one connect at a time), connecting directly or through a
//! jump host, the circuit breaker, and giving slots back.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sshmcp_proto::{ConnState, Error, ErrorKind, HostState};
use tokio::sync::{Notify, Semaphore};

use super::connect::{self, ConnectOptions, SshHandle};
use super::lease::{Connection, Lease, OpenFailure};
use super::sftp::SftpSlots;
use super::{QUEUE_DEADLINE, SessionChannel, Shared};
use crate::hosts::ssh_config::ResolvedHost;
use crate::stats::names;

/// One host's connections and their bookkeeping.
pub struct Host {
    pub resolved: ResolvedHost,
    session_cap: u32,
    max_conns: u32,
    state: Mutex<Slots>,
    /// Woken whenever a slot frees up, a connection arrives or a connect fails.
    changed: Notify,
    /// Bounds requests running or waiting on this host.
    pub inflight: Semaphore,
    /// The ProxyJump host this one is reached through, or why it cannot be.
    pub(super) via: Mutex<Option<Result<Arc<Host>, Error>>>,
    /// Open SFTP sessions, shared by file operations.
    pub(super) sftp: SftpSlots,
    pub(super) shared: Arc<Shared>,
}

/// A host's connections and what it knows about connecting to it.
#[derive(Default)]
struct Slots {
    conns: Vec<Arc<Connection>>,
    connecting: bool,
    /// A connection was found dead since the last successful connect.
    replacing: bool,
    /// Bumped on every failed connect, so waiters learn of the failure.
    failure_epoch: u64,
    consecutive_failures: u32,
    last_error: Option<Error>,
    circuit_open_until: Option<Instant>,
}

impl Host {
    /// Open a session channel on this host, waiting at most until `deadline`
    /// for a slot. A connection found dead is replaced and the open retried
    /// once on a fresh one; a refused open (the server's MaxSessions) is
    /// retried on another slot or connection until the deadline.
    pub async fn session(
        self: &Arc<Self>,
        deadline: Instant,
    ) -> Result<(Lease, SessionChannel), Error> {
        let alias = self.resolved.alias.as_str();
        let mut dead_retries = 1;
        let mut refusals: u32 = 0;
        loop {
            let mut lease = self.checkout(deadline).await?;
            match lease.open_channel().await {
                Ok(channel) => return Ok((lease, channel)),
                Err(OpenFailure::Dead(why)) if dead_retries > 0 => {
                    dead_retries -= 1;
                    tracing::info!(
                        host = alias,
                        conn = lease.conn.id,
                        "connection found dead ({why}); retrying on a fresh one"
                    );
                    self.retire(&lease.conn);
                }
                Err(OpenFailure::Dead(why)) => {
                    self.retire(&lease.conn);
                    return Err(Error::new(
                        ErrorKind::Unreachable,
                        format!("connection to {alias} died twice in a row ({why}); retry later"),
                    ));
                }
                Err(OpenFailure::Refused(reason)) => {
                    refusals += 1;
                    metrics::counter!(names::CHANNEL_REFUSALS, "host" => alias.to_string())
                        .increment(1);
                    lease.conn.note_refusal(alias, &reason);
                    // The server may still hold slots we have closed: have
                    // them confirmed before the retry (a no-op when none).
                    lease.conn.flush_lingering(self);
                    drop(lease);
                    // Slots free up as other calls finish; back off a little
                    // (2, 4, 8 ... 64 ms) so a burst does not spin on them.
                    let pause = Duration::from_millis(1 << refusals.min(6));
                    if Instant::now() + pause >= deadline {
                        return Err(Error::new(
                            ErrorKind::Overloaded,
                            format!(
                                "{alias} refused {refusals} session channel(s) ({reason}) until the \
                                 request's time ran out; its sshd MaxSessions is lower than the \
                                 load. Retry shortly, or lower [pool] sessions_per_connection \
                                 for it"
                            ),
                        ));
                    }
                    tokio::time::sleep(pause).await;
                }
                Err(OpenFailure::Other(error)) => return Err(error),
            }
        }
    }

    pub(super) fn new(resolved: ResolvedHost, shared: Arc<Shared>) -> Self {
        let settings = &shared.settings;
        let (session_cap, max_conns) = settings.host_limits(&resolved.alias);
        Host {
            session_cap,
            max_conns,
            inflight: Semaphore::new(settings.max_inflight_per_host as usize),
            state: Mutex::new(Slots::default()),
            changed: Notify::new(),
            via: Mutex::new(None),
            sftp: SftpSlots::default(),
            resolved,
            shared,
        }
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait for a free session slot, connecting when needed. A connect in
    /// progress is waited for until `deadline`; a host whose every slot is
    /// busy at `max_per_host` only until the queue timeout, then the
    /// caller gets `Overloaded` rather than joining an ever longer queue.
    pub(super) async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Error> {
        let start_epoch = self.slots().failure_epoch;
        let admission_deadline = QUEUE_DEADLINE
            .try_with(std::cell::Cell::take)
            .ok()
            .flatten();
        let queue_deadline = deadline.min(
            admission_deadline
                .unwrap_or_else(|| Instant::now() + self.shared.settings.queue_timeout),
        );
        loop {
            let wait_until;
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut slots = self.slots();
                if slots.conns.iter().any(|c| !c.is_alive()) {
                    slots.conns.retain(|c| c.is_alive());
                    slots.replacing = true;
                }
                let best = slots
                    .conns
                    .iter()
                    .filter(|c| c.has_room())
                    .min_by_key(|c| c.busy.load(Ordering::Acquire));
                if let Some(conn) = best {
                    conn.busy.fetch_add(1, Ordering::AcqRel);
                    return Ok(Lease::new(self.clone(), conn.clone()));
                }
                // No room: slots the server may already have let go become
                // free once a ping confirms it.
                for conn in &slots.conns {
                    conn.flush_lingering(self);
                }
                if slots.failure_epoch > start_epoch
                    && let Some(error) = &slots.last_error
                {
                    return Err(error.clone());
                }
                if let Some(until) = slots.circuit_open_until {
                    if Instant::now() < until {
                        return Err(self.circuit_open_error(&slots, until));
                    }
                    slots.circuit_open_until = None;
                }
                if !slots.connecting && (slots.conns.len() as u32) < self.max_conns {
                    slots.connecting = true;
                    self.clone().spawn_connect();
                }
                wait_until = if slots.connecting {
                    deadline
                } else {
                    queue_deadline
                };
            }
            if tokio::time::timeout_at(wait_until.into(), notified)
                .await
                .is_err()
            {
                return Err(self.wait_timeout_error());
            }
        }
    }

    /// Start one connect attempt on a task of its own. The boxed future's
    /// declared `Send` breaks the type cycle checkout -> connect -> jump
    /// host checkout that ProxyJump creates.
    fn spawn_connect(self: Arc<Self>) {
        let attempt: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            Box::pin(self.connect_once());
        tokio::spawn(attempt);
    }

    /// One connect attempt; wakes every waiter when done, success or not.
    async fn connect_once(self: Arc<Self>) {
        let settings = &self.shared.settings;
        let options = ConnectOptions {
            timeout: self
                .resolved
                .connect_timeout
                .unwrap_or(settings.connect_timeout),
            keepalive: Some(
                self.resolved
                    .server_alive_interval
                    .unwrap_or(settings.keepalive),
            ),
            keepalive_max: self.resolved.server_alive_count_max.max(1) as usize,
            fallback_agent: self
                .shared
                .caller_agent
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        };
        let alias = self.resolved.alias.clone();
        let started = Instant::now();
        let via = self.via.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let result = match via {
            None => connect::establish(&self.resolved, &options)
                .await
                .map(|handle| (handle, None)),
            Some(Err(error)) => Err(error),
            Some(Ok(jump)) => self
                .connect_through(&jump, &options)
                .await
                .map(|(handle, lease)| (handle, Some(lease))),
        };
        {
            let mut slots = self.slots();
            slots.connecting = false;
            match result {
                Ok((handle, tunnel)) => {
                    let id = self.shared.next_conn_id.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(host = %alias, conn = id, ms = started.elapsed().as_millis() as u64, "connected");
                    metrics::counter!(names::CONNECTS, "host" => alias.clone()).increment(1);
                    if std::mem::take(&mut slots.replacing) {
                        metrics::counter!(names::RECONNECTS, "host" => alias.clone()).increment(1);
                    }
                    slots.conns.push(Arc::new(Connection::new(
                        id,
                        handle,
                        self.session_cap,
                        tunnel,
                    )));
                    slots.consecutive_failures = 0;
                    slots.last_error = None;
                }
                Err(error) => {
                    tracing::warn!(host = %alias, "connect failed: {}", error.message);
                    metrics::counter!(names::CONNECT_FAILURES, "host" => alias.clone())
                        .increment(1);
                    slots.failure_epoch += 1;
                    slots.consecutive_failures += 1;
                    if slots.consecutive_failures >= settings.breaker_failures
                        && is_network_failure(error.kind)
                    {
                        slots.circuit_open_until = Some(Instant::now() + settings.breaker_cooldown);
                    }
                    slots.last_error = Some(error);
                }
            }
        }
        self.changed.notify_waiters();
    }

    /// Reach this host through a direct-tcpip channel on a pooled
    /// connection to `jump`, and hold that channel's slot for as long as
    /// the connection lives.
    async fn connect_through(
        &self,
        jump: &Arc<Host>,
        options: &ConnectOptions,
    ) -> Result<(SshHandle, Lease), Error> {
        let deadline = Instant::now() + options.timeout;
        let lease = jump.checkout(deadline).await?;
        let target = &self.resolved;
        let open = lease.conn.handle.channel_open_direct_tcpip(
            target.hostname.clone(),
            u32::from(target.port),
            "127.0.0.1",
            0,
        );
        let channel = match tokio::time::timeout_at(deadline.into(), open).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                return Err(Error::new(
                    ErrorKind::Unreachable,
                    format!(
                        "jump host {} could not open a tunnel to {}:{} for {}: {e}; check that \
                         the jump host can reach it and allows TCP forwarding",
                        jump.resolved.alias, target.hostname, target.port, target.alias
                    ),
                ));
            }
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::ConnectTimeout,
                    format!(
                        "jump host {} did not open a tunnel to {} in time",
                        jump.resolved.alias, target.alias
                    ),
                ));
            }
        };
        let handle = connect::establish_over(target, options, channel.into_stream()).await?;
        Ok((handle, lease))
    }

    fn circuit_open_error(&self, slots: &Slots, until: Instant) -> Error {
        let last = slots
            .last_error
            .as_ref()
            .map(|e| e.message.as_str())
            .unwrap_or("unknown");
        Error::new(
            ErrorKind::Unreachable,
            format!(
                "{} failed to connect {} times in a row, so calls fail fast for another {}s \
                 (circuit breaker). Last error: {last}",
                self.resolved.alias,
                slots.consecutive_failures,
                until.saturating_duration_since(Instant::now()).as_secs() + 1
            ),
        )
    }

    fn wait_timeout_error(&self) -> Error {
        let slots = self.slots();
        if slots.connecting && slots.conns.is_empty() {
            return Error::new(
                ErrorKind::ConnectTimeout,
                format!(
                    "still connecting to {} when the request's time ran out; retry, or raise \
                     the request's timeout",
                    self.resolved.alias
                ),
            );
        }
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "all session channels to {} are busy ({} connections x {} sessions, \
                 [pool] max_per_host = {}); retry shortly, or raise the pool limits",
                self.resolved.alias,
                slots.conns.len(),
                self.session_cap,
                self.max_conns
            ),
        )
    }

    /// Give a lease's slot back and wake whoever waits for one.
    pub(super) fn release(&self, conn: &Connection) {
        *conn.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if conn.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.cap.store(self.session_cap, Ordering::Release);
        }
        self.notify_slot_freed();
    }

    /// Wake whoever waits for a slot.
    pub(super) fn notify_slot_freed(&self) {
        self.changed.notify_waiters();
    }

    /// Take a dead connection out of service.
    pub(super) fn retire(&self, conn: &Arc<Connection>) {
        conn.dead.store(true, Ordering::Release);
        let mut slots = self.slots();
        slots.conns.retain(|c| c.id != conn.id);
        slots.replacing = true;
    }

    /// Make sure this host has a live connection.
    pub async fn warm(self: &Arc<Self>, deadline: Instant) -> Result<(), Error> {
        self.checkout(deadline).await.map(drop)
    }

    /// Close this host's idle connections and stop leasing its busy ones.
    pub fn drain(&self) {
        self.close_sftp();
        let conns = std::mem::take(&mut self.slots().conns);
        for conn in conns {
            conn.close();
        }
        self.changed.notify_waiters();
    }

    pub(super) fn reap_idle(&self, timeout: Duration, keep_one: bool) {
        self.reap_idle_sftp(timeout);
        let mut slots = self.slots();
        let mut keep = if keep_one { 1 } else { 0 };
        let mut reaped = Vec::new();
        slots.conns.retain(|conn| {
            let idle = conn.busy.load(Ordering::Acquire) == 0 && conn.idle_for() >= timeout;
            if !idle || !conn.is_alive() {
                return conn.is_alive();
            }
            if keep > 0 {
                keep -= 1;
                return true;
            }
            reaped.push(conn.clone());
            false
        });
        drop(slots);
        for conn in reaped {
            tracing::info!(host = %self.resolved.alias, conn = conn.id, "closing idle connection");
            conn.close();
        }
    }

    pub(super) fn state(&self) -> HostState {
        let slots = self.slots();
        let live: Vec<_> = slots.conns.iter().filter(|c| c.is_alive()).collect();
        // Lingering slots (closed, not yet confirmed) count as idle: a ping
        // frees them as soon as a call needs one.
        let busy: u32 = live.iter().map(|c| c.busy.load(Ordering::Acquire)).sum();
        let capacity: u32 = live.iter().map(|c| c.cap.load(Ordering::Acquire)).sum();
        let state = if !live.is_empty() {
            ConnState::Connected
        } else if slots.circuit_open_until.is_some_and(|t| Instant::now() < t) {
            ConnState::CircuitOpen
        } else if slots.connecting {
            ConnState::Connecting
        } else {
            ConnState::Cold
        };
        HostState {
            access: String::new(),
            alias: self.resolved.alias.clone(),
            hostname: self.resolved.hostname.clone(),
            port: self.resolved.port,
            user: self.resolved.user.clone(),
            state,
            connections: live.len() as u32,
            channels_busy: busy,
            channels_idle: capacity.saturating_sub(busy),
            last_error: slots.last_error.as_ref().map(|e| e.message.clone()),
        }
    }
}

/// Failures that say the host is down or unreachable (worth a breaker),
/// as opposed to trust or auth problems that retrying will not fix.
fn is_network_failure(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unreachable | ErrorKind::ConnectTimeout)
}
