//! Which hosts exist and how to reach them: OpenSSH client config and
//! known_hosts.

pub mod known_hosts;
pub mod ssh_config;

use std::path::{Path, PathBuf};

use ssh_config::{ResolvedHost, SshConfig, SshConfigError};

/// The hosts a client may name: the concrete `Host` aliases of the ssh
/// config. Anything else is `HostUnknown`, so a client cannot reach hosts
/// the user never configured.
pub struct HostTable {
    config: SshConfig,
    aliases: Vec<String>,
    path: PathBuf,
}

impl HostTable {
    /// Read the ssh config at `path` (a missing file means no hosts).
    pub fn load(path: &Path) -> Result<HostTable, SshConfigError> {
        let config = SshConfig::load(path)?;
        for warning in config.warnings() {
            tracing::warn!(config = %path.display(), "{warning}");
        }
        Ok(HostTable {
            aliases: config.aliases(),
            config,
            path: path.to_owned(),
        })
    }

    /// The ssh config's default location, `~/.ssh/config`.
    pub fn default_path() -> PathBuf {
        let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
        Path::new(&home).join(".ssh/config")
    }

    pub fn aliases(&self) -> &[String] {
        &self.aliases
    }

    pub fn resolve(&self, alias: &str) -> ResolvedHost {
        self.config.resolve(alias)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}
