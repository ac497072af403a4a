//! The warm connection pool, keyed by host alias.
//!
//! Each [`Host`] has its own small lock over its connections; nothing that
//! spans hosts is ever held across network I/O, so hosts connect in
//! parallel. A cold host gets exactly one connect at a time (single
//! flight): the first caller starts it on a task of its own and every
//! caller waits on the host's [`Notify`] for a free session slot. A
//! connection carries up to `sessions_per_connection` session channels;
//! when all are busy the pool opens another connection, up to
//! `max_per_host`, and past that callers wait until their deadline and get
//! `Overloaded`.

pub mod connect;
mod jump;
pub mod sftp;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use russh::ChannelOpenFailure;
use russh::client::Msg;
use sshmcp_proto::{ConnState, Error, ErrorKind, HostState, HostStats};
use tokio::sync::{Notify, Semaphore};

use crate::config::Config;
use crate::hosts::HostTable;
use crate::hosts::ssh_config::ResolvedHost;
use crate::stats::{Registry, names};
use connect::{ConnectOptions, SshHandle};

tokio::task_local! {
    /// When the current request's time in queues runs out, set by the
    /// dispatcher. The request's first checkout takes it, so the waits for
    /// the daemon's, the host's and the pool's free slots add up to at most
    /// `queue_timeout_ms`; later checkouts of the same request (a transfer's
    /// verify step) get a queue timeout of their own.
    pub static QUEUE_DEADLINE: std::cell::Cell<Option<Instant>>;
}

/// A session channel on a pooled connection.
pub type SessionChannel = russh::Channel<Msg>;

/// Pool-wide settings, from `[pool]` and `[ssh]`.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub sessions_per_connection: u32,
    pub max_per_host: u32,
    pub max_inflight_per_host: u32,
    pub idle_timeout: Duration,
    pub breaker_failures: u32,
    pub breaker_cooldown: Duration,
    pub connect_timeout: Duration,
    pub keepalive: Duration,
    pub channel_open_timeout: Duration,
    /// How long a request may wait for a busy host's free slot.
    pub queue_timeout: Duration,
    pub warm: HashSet<String>,
    /// SFTP sessions a host may have open at once.
    pub sftp_sessions: u32,
    overrides: HashMap<String, (Option<u32>, Option<u32>)>,
}

impl PoolSettings {
    pub fn from_config(config: &Config) -> Self {
        PoolSettings {
            sessions_per_connection: config.pool.sessions_per_connection,
            max_per_host: config.pool.max_per_host,
            max_inflight_per_host: config.limits.max_inflight_per_host,
            idle_timeout: Duration::from_secs(config.pool.idle_timeout_secs),
            breaker_failures: config.pool.breaker_failures.max(1),
            breaker_cooldown: Duration::from_secs(config.pool.breaker_cooldown_secs),
            connect_timeout: Duration::from_secs(config.ssh.connect_timeout_secs),
            keepalive: Duration::from_secs(config.ssh.keepalive_secs),
            channel_open_timeout: Duration::from_secs(config.ssh.channel_open_timeout_secs),
            queue_timeout: config.queue_timeout(),
            warm: config.pool.warm.iter().cloned().collect(),
            sftp_sessions: config.pool.sftp_sessions,
            overrides: config
                .pool
                .hosts
                .iter()
                .map(|(alias, o)| (alias.clone(), (o.sessions_per_connection, o.max_per_host)))
                .collect(),
        }
    }
}

/// The daemon's SSH connections to every configured host.
pub struct HostPool {
    hosts: RwLock<HashMap<String, Arc<Host>>>,
    /// Aliases in config order, for listings.
    order: RwLock<Vec<String>>,
    /// ProxyJump hops that are not themselves configured aliases.
    jumps: RwLock<Vec<Arc<Host>>>,
    shared: Arc<Shared>,
}

/// What every host's connect task needs from the pool.
struct Shared {
    settings: PoolSettings,
    registry: Arc<Registry>,
    /// The most recent caller's `SSH_AUTH_SOCK`, used when the daemon has
    /// no agent of its own.
    caller_agent: Mutex<Option<PathBuf>>,
    next_conn_id: AtomicU64,
}

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
    via: Mutex<Option<Result<Arc<Host>, Error>>>,
    /// Open SFTP sessions, shared by file operations.
    sftp: sftp::SftpSlots,
    shared: Arc<Shared>,
}

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

/// One SSH connection and the session channels it carries.
pub struct Connection {
    id: u64,
    handle: SshHandle,
    busy: AtomicU32,
    /// Lowered when the server refuses a channel below our configured cap.
    cap: AtomicU32,
    dead: AtomicBool,
    last_used: Mutex<Instant>,
    /// The slot on the jump host's connection that carries this one.
    _tunnel: Option<Lease>,
}

impl Connection {
    fn is_alive(&self) -> bool {
        !self.dead.load(Ordering::Acquire) && !self.handle.is_closed()
    }

    fn has_room(&self) -> bool {
        self.busy.load(Ordering::Acquire) < self.cap.load(Ordering::Acquire)
    }

    fn idle_for(&self) -> Duration {
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
    fn note_refusal(&self, alias: &str, reason: &str) {
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

    fn close(self: &Arc<Self>) {
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
    conn: Arc<Connection>,
    /// A session channel was opened on this slot.
    holds_channel: bool,
}

/// How long a freed slot waits for the server to confirm it has processed
/// the channel's close before it is reused anyway.
const RELEASE_BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

impl Drop for Lease {
    fn drop(&mut self) {
        // OpenSSH frees a session's MaxSessions slot only after it has
        // processed our CHANNEL_CLOSE and reaped the session, a moment after
        // we have seen the channel close: a slot reused at once is refused
        // (CONNECT_FAILED). A global request sent now is answered only after
        // everything before it, the close included, has been processed, so
        // the slot counts as busy until that reply arrives.
        if self.holds_channel
            && self.conn.is_alive()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let host = self.host.clone();
            let conn = self.conn.clone();
            runtime.spawn(async move {
                let _ =
                    tokio::time::timeout(RELEASE_BARRIER_TIMEOUT, conn.handle.send_ping()).await;
                host.release(&conn);
            });
            return;
        }
        self.host.release(&self.conn);
    }
}

/// Why opening a channel on a leased connection failed.
enum OpenFailure {
    /// The connection is gone or wedged: retry on a fresh one.
    Dead(String),
    /// The server refused a session channel (OpenSSH says CONNECT_FAILED
    /// past MaxSessions): retry on another slot or connection.
    Refused(String),
    Other(Error),
}

impl HostPool {
    pub fn new(table: &HostTable, settings: PoolSettings, registry: Arc<Registry>) -> Self {
        let shared = Arc::new(Shared {
            settings,
            registry,
            caller_agent: Mutex::new(None),
            next_conn_id: AtomicU64::new(1),
        });
        let pool = HostPool {
            hosts: RwLock::new(HashMap::new()),
            order: RwLock::new(Vec::new()),
            jumps: RwLock::new(Vec::new()),
            shared,
        };
        pool.set_hosts(table);
        pool
    }

    /// Replace the host list: unchanged hosts keep their connections,
    /// removed hosts are closed, new ones start cold.
    pub fn set_hosts(&self, table: &HostTable) {
        let mut hosts = self.hosts.write().unwrap_or_else(|p| p.into_inner());
        let mut fresh = HashMap::new();
        for alias in table.aliases() {
            let resolved = table.resolve(alias);
            let host = match hosts.remove(alias) {
                Some(existing) if existing.resolved == resolved => existing,
                _ => Arc::new(Host::new(resolved, self.shared.clone())),
            };
            fresh.insert(alias.clone(), host);
        }
        for (_, removed) in hosts.drain() {
            removed.drain();
        }
        let mut jumps = Vec::new();
        for host in fresh.values() {
            let via = host
                .resolved
                .proxy_jump
                .as_deref()
                .map(|spec| self.jump_host(table, &fresh, spec, 0, &mut jumps));
            *host.via.lock().unwrap_or_else(|p| p.into_inner()) = via;
        }
        for old in std::mem::replace(
            &mut *self.jumps.write().unwrap_or_else(|p| p.into_inner()),
            jumps,
        ) {
            old.drain();
        }
        *hosts = fresh;
        *self.order.write().unwrap_or_else(|p| p.into_inner()) = table.aliases().to_vec();
    }

    /// The host that ProxyJump `spec` reaches the target through: a
    /// configured alias shares that alias's pooled connections; any other
    /// hop gets a host of its own, resolved through the ssh config.
    fn jump_host(
        &self,
        table: &HostTable,
        known: &HashMap<String, Arc<Host>>,
        spec: &str,
        depth: u32,
        jumps: &mut Vec<Arc<Host>>,
    ) -> Result<Arc<Host>, Error> {
        if depth >= 8 {
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "ProxyJump chain through `{spec}` is longer than 8 hops or loops back on \
                     itself; fix ProxyJump in the ssh config"
                ),
            ));
        }
        let (before, hop) = jump::last_hop(spec)?;
        let plain = before.is_none() && hop.user.is_none() && hop.port.is_none();
        if let Some(host) = known.get(&hop.host).filter(|_| plain) {
            if let Some(own) = &host.resolved.proxy_jump {
                // Only to refuse loops; the alias's own route is set apart.
                self.jump_host(table, known, own, depth + 1, jumps)?;
            }
            return Ok(host.clone());
        }
        let mut resolved = table.resolve(&hop.host);
        if let Some(user) = hop.user {
            resolved.user = user;
        }
        if let Some(port) = hop.port {
            resolved.port = port;
        }
        if before.is_some() {
            resolved.proxy_jump = before;
        }
        let host = Arc::new(Host::new(resolved, self.shared.clone()));
        let via = host
            .resolved
            .proxy_jump
            .as_deref()
            .map(|spec| self.jump_host(table, known, spec, depth + 1, jumps));
        *host.via.lock().unwrap_or_else(|p| p.into_inner()) = via;
        jumps.push(host.clone());
        Ok(host)
    }

    /// Remember a caller's agent socket for hosts the daemon cannot
    /// authenticate to with its own.
    pub fn offer_caller_agent(&self, socket: Option<&str>) {
        if let Some(socket) = socket.filter(|s| !s.is_empty()) {
            *self
                .shared
                .caller_agent
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(PathBuf::from(socket));
        }
    }

    /// The host for `alias`, or `HostUnknown` naming the known ones.
    pub fn host(&self, alias: &str) -> Result<Arc<Host>, Error> {
        if let Some(host) = self
            .hosts
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(alias)
        {
            return Ok(host.clone());
        }
        let known = self.aliases();
        let list = if known.is_empty() {
            "none are configured".to_string()
        } else {
            format!("known hosts: {}", known.join(", "))
        };
        Err(Error::new(
            ErrorKind::HostUnknown,
            format!(
                "unknown host `{alias}`: it is not a Host alias in the ssh config ({list}). \
                 Add a `Host {alias}` block to the ssh config, or use one of the known aliases"
            ),
        ))
    }

    pub fn aliases(&self) -> Vec<String> {
        self.order.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn all_hosts(&self) -> Vec<Arc<Host>> {
        let hosts = self.hosts.read().unwrap_or_else(|p| p.into_inner());
        self.aliases()
            .iter()
            .filter_map(|a| hosts.get(a).cloned())
            .collect()
    }

    /// Open a session channel on `alias`, waiting at most until `deadline`
    /// for a slot. A connection found dead is replaced and the open retried
    /// once on a fresh one; a refused open (the server's MaxSessions) is
    /// retried on another slot or connection until the deadline.
    pub async fn session(
        &self,
        alias: &str,
        deadline: Instant,
    ) -> Result<(Lease, SessionChannel), Error> {
        let host = self.host(alias)?;
        let mut dead_retries = 1;
        let mut refusals: u32 = 0;
        loop {
            let mut lease = host.checkout(deadline).await?;
            match lease.open_channel().await {
                Ok(channel) => {
                    lease.holds_channel = true;
                    return Ok((lease, channel));
                }
                Err(OpenFailure::Dead(why)) if dead_retries > 0 => {
                    dead_retries -= 1;
                    tracing::info!(
                        host = alias,
                        conn = lease.conn.id,
                        "connection found dead ({why}); retrying on a fresh one"
                    );
                    host.retire(&lease.conn);
                }
                Err(OpenFailure::Dead(why)) => {
                    host.retire(&lease.conn);
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

    /// Make sure `alias` has a live connection.
    pub async fn warm(&self, alias: &str, deadline: Instant) -> Result<(), Error> {
        self.host(alias)?.checkout(deadline).await.map(drop)
    }

    /// Close `alias`'s idle connections and stop leasing its busy ones.
    pub fn drain(&self, alias: &str) -> Result<(), Error> {
        self.host(alias)?.drain();
        Ok(())
    }

    /// Close connections idle past the timeout; warm hosts keep one.
    pub fn reap_idle(&self) {
        for host in self.all_hosts() {
            let keep_one = self.shared.settings.warm.contains(&host.resolved.alias);
            host.reap_idle(self.shared.settings.idle_timeout, keep_one);
        }
        for hop in self.jumps.read().unwrap_or_else(|p| p.into_inner()).iter() {
            hop.reap_idle(self.shared.settings.idle_timeout, false);
        }
    }

    /// Close everything (shutdown).
    pub fn close_all(&self) {
        for host in self.all_hosts() {
            host.drain();
        }
        for hop in self.jumps.read().unwrap_or_else(|p| p.into_inner()).iter() {
            hop.drain();
        }
    }

    pub fn host_states(&self) -> Vec<HostState> {
        self.all_hosts().iter().map(|h| h.state()).collect()
    }

    pub fn host_stats(&self) -> Vec<HostStats> {
        let registry = &self.shared.registry;
        self.all_hosts()
            .iter()
            .map(|host| {
                let state = host.state();
                let alias = &host.resolved.alias;
                HostStats {
                    connects: registry.counter_total(names::CONNECTS, "host", alias),
                    reconnects: registry.counter_total(names::RECONNECTS, "host", alias),
                    connect_failures: registry.counter_total(
                        names::CONNECT_FAILURES,
                        "host",
                        alias,
                    ),
                    alias: state.alias,
                    connections: state.connections,
                    channels_busy: state.channels_busy,
                    channels_idle: state.channels_idle,
                }
            })
            .collect()
    }

    pub fn connection_count(&self) -> u32 {
        self.all_hosts().iter().map(|h| h.state().connections).sum()
    }
}

impl Host {
    fn new(resolved: ResolvedHost, shared: Arc<Shared>) -> Self {
        let settings = &shared.settings;
        let (cap, max) = settings
            .overrides
            .get(&resolved.alias)
            .copied()
            .unwrap_or((None, None));
        Host {
            session_cap: cap.unwrap_or(settings.sessions_per_connection),
            max_conns: max.unwrap_or(settings.max_per_host),
            inflight: Semaphore::new(settings.max_inflight_per_host as usize),
            state: Mutex::new(Slots::default()),
            changed: Notify::new(),
            via: Mutex::new(None),
            sftp: sftp::SftpSlots::default(),
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
    async fn checkout(self: &Arc<Self>, deadline: Instant) -> Result<Lease, Error> {
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
                    return Ok(Lease {
                        host: self.clone(),
                        conn: conn.clone(),
                        holds_channel: false,
                    });
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
                    slots.conns.push(Arc::new(Connection {
                        id,
                        handle,
                        busy: AtomicU32::new(0),
                        cap: AtomicU32::new(self.session_cap),
                        dead: AtomicBool::new(false),
                        last_used: Mutex::new(Instant::now()),
                        _tunnel: tunnel,
                    }));
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
    fn release(&self, conn: &Connection) {
        *conn.last_used.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if conn.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            conn.cap.store(self.session_cap, Ordering::Release);
        }
        self.changed.notify_waiters();
    }

    /// Take a dead connection out of service.
    fn retire(&self, conn: &Arc<Connection>) {
        conn.dead.store(true, Ordering::Release);
        let mut slots = self.slots();
        slots.conns.retain(|c| c.id != conn.id);
        slots.replacing = true;
    }

    fn drain(&self) {
        self.close_sftp();
        let conns = std::mem::take(&mut self.slots().conns);
        for conn in conns {
            conn.close();
        }
        self.changed.notify_waiters();
    }

    fn reap_idle(&self, timeout: Duration, keep_one: bool) {
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

    fn state(&self) -> HostState {
        let slots = self.slots();
        let live: Vec<_> = slots.conns.iter().filter(|c| c.is_alive()).collect();
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

impl Lease {
    async fn open_channel(&self) -> Result<SessionChannel, OpenFailure> {
        let timeout = self.host.shared.settings.channel_open_timeout;
        match tokio::time::timeout(timeout, self.conn.handle.channel_open_session()).await {
            Err(_) => Err(OpenFailure::Dead(format!(
                "opening a channel took longer than {}s",
                timeout.as_secs()
            ))),
            Ok(Ok(channel)) => Ok(channel),
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

/// Failures that say the host is down or unreachable (worth a breaker),
/// as opposed to trust or auth problems that retrying will not fix.
fn is_network_failure(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unreachable | ErrorKind::ConnectTimeout)
}
