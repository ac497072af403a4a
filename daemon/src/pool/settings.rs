//! The pool's settings, gathered from `[pool]`, `[limits]` and `[ssh]` of
//! the daemon's config once per (re)load.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use crate::config::Config;

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
    /// Per-host `[pool.hosts.ALIAS]` overrides of sessions per connection
    /// and connections per host.
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

    /// Session channels per connection and connections at most for
    /// `alias`: its `[pool.hosts]` overrides, else the pool-wide values.
    pub(super) fn host_limits(&self, alias: &str) -> (u32, u32) {
        let (cap, max) = self.overrides.get(alias).copied().unwrap_or((None, None));
        (
            cap.unwrap_or(self.sessions_per_connection),
            max.unwrap_or(self.max_per_host),
        )
    }
}
