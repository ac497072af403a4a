//! The daemon's own config file (TOML), separate from the OpenSSH client
//! config that names the hosts.
//!
//! Every key has a default, so the daemon runs with no file at all. Unknown
//! keys are errors that name the key and its line, because a misspelt limit
//! silently ignored is worse than a daemon that refuses to start.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonSection,
    pub ssh: SshSection,
    pub pool: PoolSection,
    pub limits: LimitsSection,
    pub policy: PolicySection,
    pub cache: CacheSection,
    pub metrics: MetricsSection,
    pub jobs: JobsSection,
    pub shells: ShellsSection,
    pub sudo: SudoSection,
    pub audit: crate::audit::AuditSection,
}

/// `[daemon]`: the process itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// Socket path; default from `SSHMCP_SOCKET`, `$XDG_RUNTIME_DIR`,
    /// `/run/user/$UID` or `/run/sshmcp` (see `sshmcp_proto::daemon_socket_path`).
    pub socket: Option<PathBuf>,
    /// Tokio worker threads; 0 means one per allowed CPU.
    pub worker_threads: usize,
    /// Largest frame accepted or sent on the socket, in bytes.
    pub max_frame: usize,
    /// Client connections served at once; more are refused with a Goodbye.
    pub max_clients: usize,
    /// Which CPUs the worker threads are pinned to: `"auto"` (one worker
    /// per allowed CPU), `"off"`, `"largest-l3"` (the CPUs sharing the
    /// largest L3 cache, e.g. the V-Cache CCD of an X3D part), or a list
    /// of CPU numbers.
    pub pin: Pin,
    /// Memory the daemon may use: bytes, or a string such as `"28G"` or
    /// `"512M"`. Clamped to physical memory.
    pub memory_limit: ByteSize,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            socket: None,
            worker_threads: 0,
            max_frame: sshmcp_proto::DEFAULT_MAX_FRAME,
            max_clients: 1024,
            pin: Pin::Auto,
            memory_limit: ByteSize(DEFAULT_MEMORY_LIMIT),
        }
    }
}

/// The default `[daemon] memory_limit`: 28 GiB.
pub const DEFAULT_MEMORY_LIMIT: u64 = 28 << 30;

/// `[daemon] pin`: where worker threads run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pin {
    /// One worker per allowed CPU, each pinned to its CPU.
    Auto,
    /// No pinning; the kernel schedules workers freely.
    Off,
    /// The allowed CPUs that share the largest L3 cache.
    LargestL3,
    /// Exactly these CPUs (those outside the allowed set are skipped).
    Cpus(Vec<usize>),
}

impl Serialize for Pin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Pin::Auto => s.serialize_str("auto"),
            Pin::Off => s.serialize_str("off"),
            Pin::LargestL3 => s.serialize_str("largest-l3"),
            Pin::Cpus(cpus) => cpus.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Pin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Mode(String),
            Cpus(Vec<usize>),
        }
        let raw = Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "daemon.pin must be \"auto\", \"off\", \"largest-l3\" or a list of CPU numbers",
            )
        })?;
        match raw {
            Raw::Mode(mode) => match mode.as_str() {
                "auto" => Ok(Pin::Auto),
                "off" => Ok(Pin::Off),
                "largest-l3" => Ok(Pin::LargestL3),
                other => Err(serde::de::Error::custom(format!(
                    "daemon.pin = \"{other}\" is not a mode; use \"auto\", \"off\", \"largest-l3\" \
                     or a list of CPU numbers"
                ))),
            },
            Raw::Cpus(cpus) if cpus.is_empty() => Err(serde::de::Error::custom(
                "daemon.pin = [] names no CPU; list CPUs or use \"auto\" or \"off\"",
            )),
            Raw::Cpus(cpus) => Ok(Pin::Cpus(cpus)),
        }
    }
}

/// A size in bytes, written in the config as an integer or as a string
/// with a binary unit suffix (`"512M"`, `"28G"`, `"1T"`; `K`/`KiB`/`KB`
/// alike, all powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `"28G"`, `"512MiB"`, `"1048576"`.
    pub fn parse(text: &str) -> Result<ByteSize, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size; write e.g. 28G, 512M or a byte count"))?;
        let shift = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 0,
            "K" | "KB" | "KIB" => 10,
            "M" | "MB" | "MIB" => 20,
            "G" | "GB" | "GIB" => 30,
            "T" | "TB" | "TIB" => 40,
            other => {
                return Err(format!(
                    "`{text}`: unknown unit `{other}`; use K, M, G or T (powers of 1024)"
                ));
            }
        };
        number
            .checked_mul(1 << shift)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
            if self.0 >= 1 << shift && self.0.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }
        match Raw::deserialize(d).map_err(|_| {
            serde::de::Error::custom("expected a byte count or a size such as \"28G\"")
        })? {
            Raw::Bytes(n) => Ok(ByteSize(n)),
            Raw::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

/// `[ssh]`: where hosts come from and defaults the ssh_config does not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSection {
    /// OpenSSH client config; default `~/.ssh/config`.
    pub config: Option<PathBuf>,
    /// Connect timeout when the host sets no `ConnectTimeout`.
    pub connect_timeout_secs: u64,
    /// Keepalive interval when the host sets no `ServerAliveInterval`.
    pub keepalive_secs: u64,
    /// How long opening a channel on a live connection may take.
    pub channel_open_timeout_secs: u64,
}

impl Default for SshSection {
    fn default() -> Self {
        SshSection {
            config: None,
            connect_timeout_secs: 10,
            keepalive_secs: 15,
            channel_open_timeout_secs: 10,
        }
    }
}

/// `[pool]`: how connections are shared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSection {
    /// Hosts connected at start and kept warm.
    pub warm: Vec<String>,
    /// Session channels per connection; keep at or below the server's
    /// `MaxSessions` (OpenSSH default 10).
    pub sessions_per_connection: u32,
    /// Connections per host at most.
    pub max_per_host: u32,
    /// Idle connections are closed after this long (warm hosts keep one).
    pub idle_timeout_secs: u64,
    /// Consecutive connect failures that open a host's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls fast before trying again.
    pub breaker_cooldown_secs: u64,
    /// SFTP sessions a host may have open at once; file operations share
    /// them, and parallel transfers spread over them.
    pub sftp_sessions: u32,
    /// Per-host overrides, keyed by alias.
    pub hosts: BTreeMap<String, HostOverride>,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            warm: Vec::new(),
            sessions_per_connection: 10,
            max_per_host: 8,
            idle_timeout_secs: 600,
            breaker_failures: 3,
            breaker_cooldown_secs: 30,
            sftp_sessions: 4,
            hosts: BTreeMap::new(),
        }
    }
}

/// `[pool.hosts.ALIAS]`: one host's pool settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostOverride {
    pub sessions_per_connection: Option<u32>,
    pub max_per_host: Option<u32>,
}

/// `[limits]`: bounds that turn overload into `Overloaded`, never a queue
/// that grows without end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Requests in progress at once, all clients and hosts together.
    pub max_inflight: u32,
    /// Requests in progress (running or waiting for a channel) per host.
    pub max_inflight_per_host: u32,
    /// How long a request may wait for a slot before `Overloaded`.
    pub queue_timeout_ms: u64,
    /// Requests one client connection may have in progress, counting those
    /// whose replies it has not read yet. Past it the daemon stops reading
    /// that connection until replies drain, so a client that never reads
    /// cannot grow the daemon.
    pub max_inflight_per_client: u32,
    /// Requests per second one client connection may start, on average
    /// (a token bucket); 0 turns the limit off.
    pub client_rps: u32,
    /// Requests one client may start at once before `client_rps` applies.
    pub client_burst: u32,
    /// Requests per second all clients together may start on one host; 0
    /// turns the limit off.
    pub host_rps: u32,
    /// Requests a host may get at once before `host_rps` applies.
    pub host_burst: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_inflight: 1024,
            max_inflight_per_host: 256,
            queue_timeout_ms: 10_000,
            max_inflight_per_client: 256,
            client_rps: 0,
            client_burst: 100,
            host_rps: 0,
            host_burst: 200,
        }
    }
}

/// `[cache]`: the response cache for `stat`, `list_dir`, `read_file` and
/// opted-in `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Serve answers from the cache at all.
    pub enabled: bool,
    /// Bytes the cached answers may take, inside `[daemon] memory_limit`
    /// (at most an eighth of it, whatever is set here).
    pub max_bytes: ByteSize,
    /// Most answers held at once.
    pub max_entries: u64,
    /// How long a `stat` answer is served, in seconds.
    pub stat_ttl_secs: u64,
    /// How long a `list_dir` answer is served, in seconds.
    pub list_dir_ttl_secs: u64,
    /// How long a `read_file` answer is kept, in seconds; past
    /// `read_file_fresh_ms` each hit is first confirmed with a `stat`.
    pub read_file_ttl_secs: u64,
    /// How long a `read_file` answer is served without a `stat`, in
    /// milliseconds: changes made outside sshmcp show after at most this.
    pub read_file_fresh_ms: u64,
    /// Longest `cache_secs` an `exec` may ask for.
    pub exec_max_ttl_secs: u64,
}

impl Default for CacheSection {
    fn default() -> Self {
        CacheSection {
            enabled: true,
            max_bytes: ByteSize(256 << 20),
            max_entries: 10_000,
            stat_ttl_secs: 10,
            list_dir_ttl_secs: 10,
            read_file_ttl_secs: 300,
            read_file_fresh_ms: 1000,
            exec_max_ttl_secs: 3600,
        }
    }
}

/// `[jobs]`: commands that run on after their call returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsSection {
    /// How long a finished job stays readable, in seconds.
    pub retention_secs: u64,
    /// Jobs running at once on one host.
    pub max_per_host: u32,
    /// Jobs running at once in all.
    pub max_running: u32,
    /// Output kept per stream of a job; past it the oldest part goes.
    pub spool_bytes: ByteSize,
}

impl Default for JobsSection {
    fn default() -> Self {
        JobsSection {
            retention_secs: 3600,
            max_per_host: 8,
            max_running: 64,
            spool_bytes: ByteSize(4 << 20),
        }
    }
}

/// `[sudo]`: where the password comes from when an `exec` with `sudo`
/// meets a host whose sudo asks for one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SudoSection {
    /// How long a password from a password command is kept in memory, in
    /// seconds (at most a day); 0 runs the command for every sudo'd exec.
    pub cache_secs: u64,
    /// Per host: a Host alias, or a pattern where `*` matches any run of
    /// characters. An exact alias wins over patterns, a longer pattern
    /// over a shorter one.
    pub hosts: BTreeMap<String, SudoHost>,
}

impl Default for SudoSection {
    fn default() -> Self {
        SudoSection {
            cache_secs: 300,
            hosts: BTreeMap::new(),
        }
    }
}

/// `[sudo.hosts."PATTERN"]`: one host's (or pattern's) sudo settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SudoHost {
    /// A command the daemon runs locally (`sh -c`, no stdin) whose first
    /// line of output is the sudo password, e.g. `pass show hosts/web1`.
    pub password_command: String,
}

impl SudoSection {
    /// The entry for `alias` with its key: the exact alias, else the
    /// longest matching pattern (the first in key order among equals).
    pub fn host(&self, alias: &str) -> Option<(&str, &SudoHost)> {
        if let Some((key, host)) = self.hosts.get_key_value(alias) {
            return Some((key, host));
        }
        self.hosts
            .iter()
            .filter(|(key, _)| key.contains('*') && glob_matches(key, alias))
            .fold(
                None,
                |best: Option<(&String, &SudoHost)>, (key, host)| match best {
                    Some((b, _)) if b.len() >= key.len() => best,
                    _ => Some((key, host)),
                },
            )
            .map(|(key, host)| (key.as_str(), host))
    }

    fn validate(&self) -> Result<(), String> {
        if self.cache_secs > 86_400 {
            return Err(format!(
                "sudo.cache_secs = {} is more than a day (86400); passwords are kept in memory \
                 only briefly",
                self.cache_secs
            ));
        }
        for (key, host) in &self.hosts {
            if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "sudo.hosts.{key:?}: not a Host alias or pattern; write an alias such as \
                     \"web1\" or a pattern with `*` such as \"db-*\""
                ));
            }
            if host.password_command.trim().is_empty() {
                return Err(format!(
                    "sudo.hosts.\"{key}\".password_command is empty; write a command that \
                     prints the password, e.g. \"pass show hosts/{key}\""
                ));
            }
        }
        Ok(())
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of
/// characters (none included) and everything else for itself.
pub(crate) fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// `[shells]`: persistent shells (`shell_open`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellsSection {
    /// A shell that has run no command for this many seconds is closed.
    pub idle_secs: u64,
    /// Shells open at once on one host.
    pub max_per_host: u32,
    /// Shells open at once in all.
    pub max_total: u32,
}

impl Default for ShellsSection {
    fn default() -> Self {
        ShellsSection {
            idle_secs: 1800,
            max_per_host: 8,
            max_total: 64,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Address to serve `/metrics` on (`127.0.0.1:9464`); off when unset.
    pub listen: Option<String>,
    /// Let `listen` be an address other hosts can reach.
    pub allow_remote: bool,
}

impl MetricsSection {
    /// The address `/metrics` is served on, if any (validated at load).
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen.as_deref().and_then(|l| l.parse().ok())
    }

    /// `listen` must be an IP address and port, and a loopback one unless
    /// `allow_remote` is set: `/metrics` has no authentication.
    fn validate(&self) -> Result<(), String> {
        let Some(listen) = &self.listen else {
            return Ok(());
        };
        let addr: SocketAddr = listen.parse().map_err(|_| {
            format!(
                "metrics.listen = \"{listen}\" is not an IP address and port; write e.g. \
                 \"127.0.0.1:9464\" or \"[::1]:9464\", or remove the key to turn /metrics off"
            )
        })?;
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(format!(
                "metrics.listen = \"{listen}\" is reachable from other machines and /metrics has \
                 no authentication; listen on a loopback address such as \"127.0.0.1:9464\", or \
                 set metrics.allow_remote = true to serve it there anyway"
            ));
        }
        Ok(())
    }
}

/// `[policy]`: what clients may ask the daemon to do on this machine.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Local directories that transfers and syncs may read and write.
    /// Default: the user's home. `~/.ssh`, `~/.gnupg` and the daemon's own
    /// config are refused even inside a root.
    pub local_roots: Option<Vec<PathBuf>>,
    /// More local paths to refuse, inside the roots.
    pub local_deny: Vec<PathBuf>,
    /// Per host: a Host alias, or a pattern where `*` matches any run of
    /// characters. An exact alias wins over patterns, a longer pattern over
    /// a shorter one; hosts without an entry have full access.
    pub hosts: BTreeMap<String, crate::policy::HostRules>,
    /// Rules that lower what some callers may do on some hosts.
    pub callers: Vec<crate::policy::CallerRule>,
}

/// A config file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Where the config comes from when `--config` is not given:
    /// `$XDG_CONFIG_HOME/sshmcp/config.toml`, then `~/.config/...`, then
    /// `/etc/sshmcp/config.toml`; `None` means built-in defaults.
    pub fn default_path() -> Option<PathBuf> {
        let user_dir = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".config")));
        user_dir
            .map(|dir| dir.join("sshmcp/config.toml"))
            .into_iter()
            .chain(std::iter::once(PathBuf::from("/etc/sshmcp/config.toml")))
            .find(|path| path.is_file())
    }

    /// Read and validate the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text).map_err(|message| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        })
    }

    /// Parse and validate config text; the error names the key and line.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| describe_toml_error(text, &e))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            (
                "pool.sessions_per_connection",
                self.pool.sessions_per_connection,
            ),
            ("pool.max_per_host", self.pool.max_per_host),
            ("pool.sftp_sessions", self.pool.sftp_sessions),
            ("limits.max_inflight", self.limits.max_inflight),
            (
                "limits.max_inflight_per_client",
                self.limits.max_inflight_per_client,
            ),
            (
                "limits.max_inflight_per_host",
                self.limits.max_inflight_per_host,
            ),
            ("jobs.max_per_host", self.jobs.max_per_host),
            ("jobs.max_running", self.jobs.max_running),
            ("shells.max_per_host", self.shells.max_per_host),
            ("shells.max_total", self.shells.max_total),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if self.daemon.memory_limit.0 < 32 << 20 {
            return Err(format!(
                "daemon.memory_limit = {} is below the 32M the daemon needs to run",
                self.daemon.memory_limit
            ));
        }
        if self.daemon.max_frame < 64 * 1024 || self.daemon.max_frame > sshmcp_proto::MAX_PAYLOAD {
            return Err(format!(
                "daemon.max_frame must be between 65536 and {} bytes",
                sshmcp_proto::MAX_PAYLOAD
            ));
        }
        if self.cache.max_entries == 0 {
            return Err("cache.max_entries must be at least 1".into());
        }
        if self.shells.idle_secs == 0 {
            return Err("shells.idle_secs must be at least 1 second".into());
        }
        if self.ssh.connect_timeout_secs == 0 || self.ssh.channel_open_timeout_secs == 0 {
            return Err("ssh timeouts must be at least 1 second".into());
        }
        for path in self
            .policy
            .local_roots
            .iter()
            .flatten()
            .chain(&self.policy.local_deny)
        {
            if !path.is_absolute() && !path.starts_with("~") {
                return Err(format!(
                    "policy: `{}` is not an absolute path; write it as /... or ~/...",
                    path.display()
                ));
            }
        }
        for (pattern, rules) in &self.policy.hosts {
            rules.validate(pattern)?;
        }
        for (index, caller) in self.policy.callers.iter().enumerate() {
            caller.validate(index)?;
        }
        for (alias, host) in &self.pool.hosts {
            if host.sessions_per_connection == Some(0) || host.max_per_host == Some(0) {
                return Err(format!("pool.hosts.{alias}: limits must be at least 1"));
            }
        }
        self.metrics.validate()?;
        self.sudo.validate()?;
        self.audit.validate()?;
        Ok(())
    }

    /// The effective config as TOML, for `--check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    pub fn queue_timeout(&self) -> Duration {
        Duration::from_millis(self.limits.queue_timeout_ms)
    }
}

/// Turn a TOML error into one line naming the line number and the problem
/// (for unknown keys, the key).
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().to_string();
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.get(span.clone()).unwrap_or("").trim();
            if snippet.is_empty() {
                format!("line {line}: {message}")
            } else {
                format!("line {line}: `{snippet}`: {message}")
            }
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Access, CallerRule, HostRules};

    #[test]
    fn empty_file_gives_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.pool.sessions_per_connection, 10);
        assert_eq!(config.daemon.max_frame, sshmcp_proto::DEFAULT_MAX_FRAME);
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = Config::parse("[pool]\nmax_per_host = 2\nmax_per_hots = 3\n").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("max_per_hots"), "{err}");
    }

    #[test]
    fn unknown_section_is_an_error() {
        let err = Config::parse("[pol]\nwarm = []\n").unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        assert!(err.contains("pol"), "{err}");
    }

    #[test]
    fn zero_limits_are_rejected() {
        let err = Config::parse("[pool]\nsessions_per_connection = 0\n").unwrap_err();
        assert!(err.contains("pool.sessions_per_connection"), "{err}");
    }

    #[test]
    fn memory_limit_takes_bytes_or_a_size_with_a_unit() {
        let config = Config::parse("[daemon]\nmemory_limit = \"512M\"\n").unwrap();
        assert_eq!(config.daemon.memory_limit, ByteSize(512 << 20));
        let config = Config::parse("[daemon]\nmemory_limit = 68719476736\n").unwrap();
        assert_eq!(config.daemon.memory_limit, ByteSize(64 << 30));
        assert_eq!(Config::default().daemon.memory_limit.to_string(), "28G");
        let err = Config::parse("[daemon]\nmemory_limit = \"12Q\"\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("unknown unit"),
            "{err}"
        );
        let err = Config::parse("[daemon]\nmemory_limit = \"1M\"\n").unwrap_err();
        assert!(err.contains("daemon.memory_limit"), "{err}");
    }

    #[test]
    fn pin_takes_a_mode_or_a_cpu_list() {
        let pin =
            |text: &str| Config::parse(&format!("[daemon]\npin = {text}\n")).map(|c| c.daemon.pin);
        assert_eq!(pin("\"auto\""), Ok(Pin::Auto));
        assert_eq!(pin("\"off\""), Ok(Pin::Off));
        assert_eq!(pin("\"largest-l3\""), Ok(Pin::LargestL3));
        assert_eq!(pin("[0, 2]"), Ok(Pin::Cpus(vec![0, 2])));
        let err = pin("\"fast\"").unwrap_err();
        assert!(err.contains("line 2") && err.contains("fast"), "{err}");
        assert!(pin("[]").is_err());
    }

    #[test]
    fn the_effective_config_parses_back_to_itself() {
        let config = Config::parse(
            "[daemon]\npin = [1, 3]\nmemory_limit = \"3G\"\n[pool]\nwarm = [\"a\"]\n",
        )
        .unwrap();
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn the_packaged_example_config_is_valid_and_all_defaults() {
        let text = include_str!("../../packaging/config.example.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
        // Uncommenting every `key = value` line still parses, so the
        // documented keys and defaults are the real ones.
        let uncommented: String = text
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(rest) if rest.contains(" = ") || rest.starts_with('[') => rest,
                _ => line,
            })
            .map(|line| line.to_owned() + "\n")
            .collect();
        let mut expected = Config::default();
        expected.daemon.socket = Some("/run/user/1000/sshmcp/sshmcpd.sock".into());
        expected.ssh.config = Some("/home/me/.ssh/config".into());
        expected.metrics.listen = Some("127.0.0.1:9464".into());
        expected.audit.path = Some("/home/me/.local/state/sshmcp/audit.jsonl".into());
        expected.pool.hosts.insert(
            "some-alias".into(),
            HostOverride {
                sessions_per_connection: Some(4),
                max_per_host: None,
            },
        );
        expected.sudo.hosts.insert(
            "some-alias".into(),
            SudoHost {
                password_command: "pass show hosts/some-alias".into(),
            },
        );
        let argv = |words: &[&str]| words.iter().map(|w| w.to_string()).collect::<Vec<_>>();
        expected.policy.hosts.insert(
            "some-alias".into(),
            HostRules {
                access: Access::ReadOnly,
                allow_commands: vec![argv(&["systemctl", "restart", "nginx"])],
                deny_commands: vec![argv(&["rm"]), argv(&["systemctl", "stop"])],
                confirm: false,
                confirm_commands: vec![argv(&["reboot"])],
                remote_roots: argv(&["/srv/app", "/var/log"]),
                remote_deny: argv(&["/srv/app/secrets"]),
            },
        );
        expected.policy.callers.push(CallerRule {
            mcp_client: Some("claude-desktop".into()),
            executable: None,
            hosts: argv(&["*"]),
            access: Access::ReadOnly,
        });
        assert_eq!(Config::parse(&uncommented), Ok(expected));
    }

    #[test]
    fn policy_hosts_and_callers_parse_with_their_defaults() {
        let config = Config::parse(
            "[policy]\nlocal_deny = [\"~/secrets\"]\n\
             [policy.hosts.\"web*\"]\naccess = \"read-only\"\n\
             allow_commands = [[\"systemctl\", \"restart\", \"nginx\"]]\n\
             [policy.hosts.db1]\ndeny_commands = [[\"rm\"]]\nconfirm = true\n\
             remote_roots = [\"/srv/db\"]\n\
             [[policy.callers]]\nmcp_client = \"claude-desktop\"\naccess = \"deny\"\n\
             [[policy.callers]]\nexecutable = \"/opt/agents/*\"\nhosts = [\"db*\"]\n\
             access = \"read-only\"\n",
        )
        .unwrap();
        let policy = &config.policy;
        assert_eq!(policy.local_deny, [PathBuf::from("~/secrets")]);
        assert_eq!(policy.hosts["web*"].access, Access::ReadOnly);
        assert_eq!(
            policy.hosts["web*"].allow_commands[0],
            ["systemctl", "restart", "nginx"]
        );
        assert_eq!(policy.hosts["db1"].access, Access::Full, "the default");
        assert!(policy.hosts["db1"].confirm);
        assert_eq!(policy.callers[0].hosts, ["*"], "every host by default");
        assert_eq!(
            policy.callers[1].executable.as_deref(),
            Some("/opt/agents/*")
        );
        assert_eq!(policy.callers[1].access, Access::ReadOnly);
        assert_eq!(Config::parse(&config.to_toml()).unwrap(), config);
    }

    #[test]
    fn policy_mistakes_are_named_by_their_key() {
        for (text, key) in [
            (
                "[policy.hosts.web1]\nallow_commands = [[]]\n",
                "policy.hosts.\"web1\".allow_commands[0] is empty",
            ),
            (
                "[policy.hosts.web1]\ndeny_commands = [[\"rm\"], [\"git\", \"\"]]\n",
                "policy.hosts.\"web1\".deny_commands[1] has an empty word",
            ),
            (
                "[policy.hosts.web1]\nallow_commands = [[\"systemctl status\"]]\n",
                "write each word separately",
            ),
            (
                "[policy.hosts.web1]\ndeny_commands = [[\"/bin/rm\"]]\n",
                "name the command, not its path",
            ),
            (
                "[policy.hosts.web1]\nallow_commands = [[\"sudo\", \"reboot\"]]\n",
                "looks through to the command it runs",
            ),
            (
                "[policy.hosts.web1]\nremote_roots = [\"srv/app\"]\n",
                "policy.hosts.\"web1\".remote_roots[0] = \"srv/app\" is not an absolute path",
            ),
            (
                "[policy.hosts.web1]\nremote_deny = [\"/srv/../etc\"]\n",
                "policy.hosts.\"web1\".remote_deny[0]",
            ),
            (
                "[policy.hosts.\"\"]\naccess = \"deny\"\n",
                "not a Host alias or pattern",
            ),
            ("[policy.hosts.web1]\naccess = \"readonly\"\n", "readonly"),
            ("[policy.hosts.web1]\nallow = [[\"ls\"]]\n", "allow"),
            (
                "[[policy.callers]]\naccess = \"deny\"\n",
                "policy.callers[0] names no caller",
            ),
            ("[[policy.callers]]\nmcp_client = \"x\"\n", "access"),
            (
                "[[policy.callers]]\nmcp_client = \"x\"\nhosts = []\naccess = \"deny\"\n",
                "policy.callers[0].hosts is empty",
            ),
            (
                "[[policy.callers]]\nexecutable = \" \"\naccess = \"deny\"\n",
                "policy.callers[0].executable is empty",
            ),
        ] {
            let err = Config::parse(text).unwrap_err();
            assert!(err.contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn per_host_overrides_parse() {
        let config = Config::parse("[pool.hosts.web1]\nsessions_per_connection = 4\n").unwrap();
        assert_eq!(config.pool.hosts["web1"].sessions_per_connection, Some(4));
    }

    #[test]
    fn a_sudo_password_command_is_found_by_alias_then_by_the_longest_pattern() {
        let config = Config::parse(
            "[sudo]\ncache_secs = 0\n\
             [sudo.hosts.\"*\"]\npassword_command = \"any\"\n\
             [sudo.hosts.\"db-*\"]\npassword_command = \"db\"\n\
             [sudo.hosts.\"db-main\"]\npassword_command = \"main\"\n",
        )
        .unwrap();
        let found = |alias: &str| {
            config
                .sudo
                .host(alias)
                .map(|(k, h)| (k, h.password_command.as_str()))
        };
        assert_eq!(found("db-main"), Some(("db-main", "main")));
        assert_eq!(found("db-2"), Some(("db-*", "db")));
        assert_eq!(found("web1"), Some(("*", "any")));
        assert_eq!(Config::default().sudo.host("web1"), None);
        assert_eq!(Config::default().sudo.cache_secs, 300);
    }

    #[test]
    fn glob_patterns_match_runs_of_characters() {
        assert!(glob_matches("web*", "web1"));
        assert!(glob_matches("web*", "web"));
        assert!(glob_matches("*-prod", "db-prod"));
        assert!(glob_matches("a*b*c", "aXbYc"));
        assert!(!glob_matches("a*b*c", "aXcYb"));
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(!glob_matches("web1", "web12"));
    }

    #[test]
    fn a_sudo_host_without_a_password_command_is_refused() {
        let err = Config::parse("[sudo.hosts.web1]\npassword_command = \" \"\n").unwrap_err();
        assert!(
            err.contains("sudo.hosts.\"web1\".password_command"),
            "{err}"
        );
        let err = Config::parse("[sudo.hosts.web1]\ncommand = \"x\"\n").unwrap_err();
        assert!(err.contains("command"), "{err}");
        let err = Config::parse("[sudo]\ncache_secs = 100000\n").unwrap_err();
        assert!(err.contains("sudo.cache_secs"), "{err}");
    }

    #[test]
    fn metrics_listen_is_loopback_unless_remote_is_allowed() {
        let metrics =
            |text: &str| Config::parse(&format!("[metrics]\n{text}\n")).map(|c| c.metrics);
        let local = metrics("listen = \"127.0.0.1:9464\"").unwrap();
        assert_eq!(local.listen_addr(), Some(([127, 0, 0, 1], 9464).into()));
        assert!(metrics("listen = \"[::1]:9464\"").is_ok());
        assert_eq!(
            Config::default().metrics.listen_addr(),
            None,
            "off by default"
        );

        let err = metrics("listen = \"0.0.0.0:9464\"").unwrap_err();
        assert!(err.contains("metrics.listen = \"0.0.0.0:9464\""), "{err}");
        assert!(err.contains("metrics.allow_remote = true"), "{err}");
        assert!(metrics("listen = \"0.0.0.0:9464\"\nallow_remote = true").is_ok());

        let err = metrics("listen = \"localhost:9464\"").unwrap_err();
        assert!(err.contains("not an IP address and port"), "{err}");
        assert!(metrics("listen = \"127.0.0.1\"").is_err(), "no port");
    }
}
