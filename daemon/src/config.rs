//! The daemon's own config file (TOML), separate from the OpenSSH client
//! config that names the hosts.
//!
//! Every key has a default, so the daemon runs with no file at all. Unknown
//! keys are errors that name the key and its line, because a misspelt limit
//! silently ignored is worse than a daemon that refuses to start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole config file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub daemon: DaemonSection,
    pub ssh: SshSection,
    pub pool: PoolSection,
    pub limits: LimitsSection,
    pub policy: PolicySection,
}

/// `[daemon]`: the process itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// Socket path; default from `SSHMCP_SOCKET` / `$XDG_RUNTIME_DIR`.
    pub socket: Option<PathBuf>,
    /// Tokio worker threads; 0 means one per allowed CPU.
    pub worker_threads: usize,
    /// Largest frame accepted or sent on the socket, in bytes.
    pub max_frame: usize,
    /// Client connections served at once; more are refused with a Goodbye.
    pub max_clients: usize,
}

impl Default for DaemonSection {
    fn default() -> Self {
        DaemonSection {
            socket: None,
            worker_threads: 0,
            max_frame: sshmcp_proto::DEFAULT_MAX_FRAME,
            max_clients: 1024,
        }
    }
}

/// `[ssh]`: where hosts come from and defaults the ssh_config does not set.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostOverride {
    pub sessions_per_connection: Option<u32>,
    pub max_per_host: Option<u32>,
}

/// `[limits]`: bounds that turn overload into `Overloaded`, never a queue
/// that grows without end.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Requests in progress at once, all clients and hosts together.
    pub max_inflight: u32,
    /// Requests in progress (running or waiting for a channel) per host.
    pub max_inflight_per_host: u32,
    /// How long a request may wait for a slot before `Overloaded`.
    pub queue_timeout_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            max_inflight: 1024,
            max_inflight_per_host: 256,
            queue_timeout_ms: 10_000,
        }
    }
}

/// `[policy]`: what clients may ask the daemon to do on this machine.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Local directories that transfers and syncs may read and write.
    /// Default: the user's home. `~/.ssh`, `~/.gnupg` and the daemon's own
    /// config are refused even inside a root.
    pub local_roots: Option<Vec<PathBuf>>,
    /// More local paths to refuse, inside the roots.
    pub local_deny: Vec<PathBuf>,
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
                "limits.max_inflight_per_host",
                self.limits.max_inflight_per_host,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(format!("{key} must be at least 1"));
            }
        }
        if self.daemon.max_frame < 64 * 1024 {
            return Err("daemon.max_frame must be at least 65536 bytes".into());
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
        for (alias, host) in &self.pool.hosts {
            if host.sessions_per_connection == Some(0) || host.max_per_host == Some(0) {
                return Err(format!("pool.hosts.{alias}: limits must be at least 1"));
            }
        }
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
    fn per_host_overrides_parse() {
        let config = Config::parse("[pool.hosts.web1]\nsessions_per_connection = 4\n").unwrap();
        assert_eq!(config.pool.hosts["web1"].sessions_per_connection, Some(4));
    }
}
