//! The warm connection pool, keyed by host alias.
//!
//! Each [`Host`] has its own small lock over its connections; nothing that
//! spans hosts is ever held across network I/O, so hosts connect in
//! parallel. A cold host gets exactly one connect at a time (single
//! flight): the first caller starts it on a task of its own and every
//! caller waits on the host's [`Notify`](tokio::sync::Notify) for a free
//! session slot. A connection carries up to `sessions_per_connection`
//! session channels; when all are busy the pool opens another connection,
//! up to `max_per_host`, and past that callers wait until their deadline
//! and get `Overloaded`.
//!
//! Here: the host table and what callers ask of the whole pool. One
//! host's slots and connects live in `host`, a connection and its leased
//! slots in `lease`, the settings in `settings`.

pub mod connect;
mod host;
mod lease;
mod settings;
pub mod sftp;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use russh::client::Msg;
use sshmcp_proto::{Error, ErrorKind, HostState, HostStats};

use crate::hosts::HostTable;
use crate::hosts::ssh_config::JumpHop;
use crate::stats::{Registry, names};
pub use host::Host;
pub use lease::Lease;
pub use settings::PoolSettings;

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
                .split_last()
                .map(|(hop, before)| self.jump_host(table, &fresh, before, hop, 0, &mut jumps));
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

    /// The host that ProxyJump's last `hop` (after the hops `before` it)
    /// reaches the target through: a configured alias shares that alias's
    /// pooled connections; any other hop gets a host of its own, resolved
    /// through the ssh config.
    fn jump_host(
        &self,
        table: &HostTable,
        known: &HashMap<String, Arc<Host>>,
        before: &[JumpHop],
        hop: &JumpHop,
        depth: u32,
        jumps: &mut Vec<Arc<Host>>,
    ) -> Result<Arc<Host>, Error> {
        if depth >= 8 {
            let spec = before
                .iter()
                .chain([hop])
                .map(JumpHop::to_string)
                .collect::<Vec<_>>()
                .join(",");
            return Err(Error::new(
                ErrorKind::BadRequest,
                format!(
                    "ProxyJump chain through `{spec}` is longer than 8 hops or loops back on \
                     itself; fix ProxyJump in the ssh config"
                ),
            ));
        }
        let plain = before.is_empty() && hop.user.is_none() && hop.port.is_none();
        if let Some(host) = known.get(&hop.host).filter(|_| plain) {
            if let Some((own_hop, own_before)) = host.resolved.proxy_jump.split_last() {
                // Only to refuse loops; the alias's own route is set apart.
                self.jump_host(table, known, own_before, own_hop, depth + 1, jumps)?;
            }
            return Ok(host.clone());
        }
        let mut resolved = table.resolve(&hop.host);
        if let Some(user) = &hop.user {
            resolved.user = user.clone();
        }
        if let Some(port) = hop.port {
            resolved.port = port;
        }
        if !before.is_empty() {
            resolved.proxy_jump = before.to_vec();
        }
        let host = Arc::new(Host::new(resolved, self.shared.clone()));
        let via = host
            .resolved
            .proxy_jump
            .split_last()
            .map(|(hop, before)| self.jump_host(table, known, before, hop, depth + 1, jumps));
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

    /// Make sure `alias` has a live connection.
    pub async fn warm(&self, alias: &str, deadline: Instant) -> Result<(), Error> {
        self.host(alias)?.warm(deadline).await
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
