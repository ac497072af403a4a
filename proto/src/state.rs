//! What the daemon reports about itself and its pool.

use serde::{Deserialize, Serialize};

/// Answer to [`crate::Request::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub daemon_version: String,
    pub proto_version: u32,
    pub pid: u32,
    pub uptime_ms: u64,
    /// The socket the daemon listens on.
    pub socket: String,
    /// The config file in force, if any (`None`: built-in defaults).
    pub config: Option<String>,
    /// Client connections open now.
    pub clients: u32,
    /// Hosts in the SSH client config.
    pub hosts: u32,
    /// SSH connections open now, all hosts together.
    pub connections: u32,
    /// `None` when healthy, else why not.
    pub degraded: Option<String>,
}

/// A host's connection state as a whole. Named in text formats (JSON) as
/// [`ConnState::as_str`] names it; bincode carries the variant index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnState {
    /// No connection and none being made.
    Cold,
    /// A connection is being made.
    Connecting,
    /// At least one live connection.
    Connected,
    /// Repeated connect failures: calls fail fast until the cooldown ends.
    CircuitOpen,
}

impl ConnState {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Cold => "cold",
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::CircuitOpen => "circuit-open",
        }
    }
}

/// One configured host with its pool state (answer to `Hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub alias: String,
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub state: ConnState,
    /// Live SSH connections.
    pub connections: u32,
    /// Session channels in use.
    pub channels_busy: u32,
    /// Free session slots on live connections.
    pub channels_idle: u32,
    /// The most recent failure, if the host has failed since it last worked.
    pub last_error: Option<String>,
}

/// One host's counters (part of [`Stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    pub alias: String,
    pub connections: u32,
    pub channels_busy: u32,
    pub channels_idle: u32,
    /// Successful connects since start.
    pub connects: u64,
    /// Connects that replaced a connection found dead.
    pub reconnects: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
}

/// One operation's counters and latency percentiles, in microseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    pub op: String,
    pub count: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// Answer to [`crate::Request::Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub uptime_ms: u64,
    pub clients: u32,
    pub hosts: Vec<HostStats>,
    pub ops: Vec<OpStats>,
}
