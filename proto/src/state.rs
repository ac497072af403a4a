//! What the daemon reports about itself and its pool.

use serde::{Deserialize, Serialize};

/// Answer to [`crate::Request::Status`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// The daemon's package version.
    pub daemon_version: String,
    /// The daemon's [`PROTO_VERSION`](crate::PROTO_VERSION).
    pub proto_version: u32,
    /// The daemon's process id.
    pub pid: u32,
    /// Milliseconds since the daemon started.
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
    /// The audit log. Boxed: inline, it would make `Status` the largest
    /// reply, and every frame in memory that large.
    pub audit: Box<AuditStatus>,
}

/// The audit log's state (part of [`Status`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditStatus {
    /// Requests are recorded (`[audit] enabled`).
    pub enabled: bool,
    /// The log file, when the daemon has a place for it.
    pub path: Option<String>,
    /// The key its records are sealed with (`audit.key`).
    pub key: Option<String>,
    /// The file holding the newest record's seq and HMAC (`audit.head`).
    pub head: Option<String>,
    /// Records written since the daemon started.
    pub records: u64,
    /// The newest record's seq; 0 before the first.
    pub last_seq: u64,
    /// `deny` or `allow` (`[audit] on_failure`).
    pub on_failure: String,
    /// `None` while writes succeed; else why the last one failed.
    pub error: Option<String>,
}

/// A host's connection state as a whole. Named in text formats (JSON) as
/// [`ConnState::as_str`] names it; bincode carries the variant index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
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
    /// Stable kebab-case name (`circuit-open`), as JSON and `sshmcpctl hosts`
    /// show it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnState::Cold => "cold",
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::CircuitOpen => "circuit-open",
        }
    }
}

/// The configured hosts and where they were read from (answer to `Hosts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct HostList {
    /// The ssh config file the daemon read its hosts from (`[ssh] config`,
    /// else `~/.ssh/config` of the daemon's user).
    pub ssh_config: String,
    /// Every `Host` alias in it, in file order.
    pub hosts: Vec<HostState>,
}

/// One configured host with its pool state (part of [`HostList`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "json-schema", derive(schemars::JsonSchema))]
pub struct HostState {
    /// The `Host` alias requests name it by.
    pub alias: String,
    /// Where connections go: the ssh config's `HostName`, else the alias.
    pub hostname: String,
    /// TCP port; 22 unless the ssh config names another.
    pub port: u16,
    /// Remote login name; the local user's unless the ssh config names one.
    pub user: String,
    /// The host's connection state as a whole.
    pub state: ConnState,
    /// Live SSH connections.
    pub connections: u32,
    /// Session channels in use.
    pub channels_busy: u32,
    /// Free session slots on live connections.
    pub channels_idle: u32,
    /// The most recent failure, if the host has failed since it last worked.
    pub last_error: Option<String>,
    /// What the daemon's policy lets the asking client do there: `full`,
    /// `read-only` or `deny` (`[policy.hosts]`, `[[policy.callers]]`).
    #[serde(default)]
    pub access: String,
}

/// One host's counters (part of [`Stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostStats {
    /// The `Host` alias.
    pub alias: String,
    /// Live SSH connections.
    pub connections: u32,
    /// Session channels in use.
    pub channels_busy: u32,
    /// Free session slots on live connections.
    pub channels_idle: u32,
    /// Successful connects since start.
    pub connects: u64,
    /// Connects that replaced a connection found dead.
    pub reconnects: u64,
    /// Connect attempts that failed.
    pub connect_failures: u64,
}

/// One operation's counters and latency percentiles since start, all hosts
/// together (part of [`Stats`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    /// The operation, as [`Request::op_name`](crate::Request::op_name) names it.
    pub op: String,
    /// Requests finished, failed ones included.
    pub count: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Median latency, in microseconds.
    pub p50_us: u64,
    /// 95th percentile latency, in microseconds.
    pub p95_us: u64,
    /// 99th percentile latency, in microseconds.
    pub p99_us: u64,
    /// Slowest request, in microseconds.
    pub max_us: u64,
}

/// Answer to [`crate::Request::Stats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Client connections open now.
    pub clients: u32,
    /// Per-host pool counters, one per configured host.
    pub hosts: Vec<HostStats>,
    /// Per-operation counters, one per operation run since start.
    pub ops: Vec<OpStats>,
    /// The daemon process's memory, threads and descriptors.
    pub resources: Resources,
    /// The response cache.
    pub cache: crate::CacheStats,
}

/// What the daemon process uses, against its limits (part of [`Stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Resident set size now, in bytes.
    pub rss_bytes: u64,
    /// Highest resident set size since start (VmHWM).
    pub peak_rss_bytes: u64,
    /// `[daemon] memory_limit` in force (after clamping to physical memory).
    pub memory_limit_bytes: u64,
    /// Above this RSS the daemon is degraded and refuses new large work.
    pub memory_high_watermark_bytes: u64,
    /// Bytes reserved by large work in progress (exec output, transfers).
    pub memory_reserved_bytes: u64,
    /// Large work refused for memory since start.
    pub memory_refusals: u64,
    /// Memory the allocator (mimalloc) has committed now.
    pub allocator_committed_bytes: u64,
    /// The most memory the allocator has had committed since start.
    pub allocator_peak_committed_bytes: u64,
    /// CPU time the process has spent in user mode, in milliseconds.
    pub cpu_user_ms: u64,
    /// CPU time the process has spent in the kernel, in milliseconds.
    pub cpu_system_ms: u64,
    /// Open file descriptors.
    pub open_fds: u64,
    /// The soft limit on open file descriptors (RLIMIT_NOFILE).
    pub max_fds: u64,
    /// The system's 1, 5 and 15 minute load averages, in thousandths.
    pub load_average_milli: [u64; 3],
    /// The process's threads.
    pub threads: Vec<ThreadInfo>,
}

/// One thread of the daemon (part of [`Resources`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// The kernel's thread id.
    pub tid: u32,
    /// The kernel's name for it (at most 15 bytes).
    pub name: String,
    /// The CPU it last ran on.
    pub cpu: u32,
    /// The CPUs it may run on, as a kernel CPU list (`0-3,8`).
    pub allowed_cpus: String,
}
