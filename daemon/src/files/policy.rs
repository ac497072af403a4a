//! Which local paths a client may have the daemon read or write.
//!
//! The daemon runs as the user and can read the user's private keys; a
//! client must not be able to ship them off the machine by asking for an
//! upload. Local paths are allowed only inside `[policy] local_roots`
//! (default: the home directory), and never inside `~/.ssh`, `~/.gnupg`,
//! the daemon's own config, or `[policy] local_deny`. Paths are judged
//! after resolving symlinks, so a link inside a root that points at
//! `~/.ssh` is refused too.

use std::path::{Component, Path, PathBuf};

use sshmcp_proto::{Error, ErrorKind};

use crate::config::Config;

/// The rules, with every path made absolute and canonical where it exists.
#[derive(Debug, Clone)]
pub struct LocalPolicy {
    roots: Vec<PathBuf>,
    deny: Vec<PathBuf>,
}

impl LocalPolicy {
    /// The policy `config` describes, for a daemon whose config file is
    /// `config_path`.
    pub fn from_config(config: &Config, config_path: Option<&Path>) -> Self {
        let home = home_dir();
        let expand = |p: &Path| -> PathBuf {
            match (p.strip_prefix("~"), &home) {
                (Ok(rest), Some(home)) => home.join(rest),
                _ => p.to_path_buf(),
            }
        };
        let roots: Vec<PathBuf> = match &config.policy.local_roots {
            Some(roots) => roots.iter().map(|p| expand(p)).collect(),
            None => home.iter().cloned().collect(),
        };
        let mut deny: Vec<PathBuf> = config.policy.local_deny.iter().map(|p| expand(p)).collect();
        if let Some(home) = &home {
            deny.push(home.join(".ssh"));
            deny.push(home.join(".gnupg"));
            deny.push(home.join(".config/sshmcp"));
        }
        if let Some(path) = config_path {
            deny.push(path.to_path_buf());
        }
        deny.push(PathBuf::from("/etc/sshmcp"));
        LocalPolicy {
            roots: roots.iter().map(|p| canonical_or_lexical(p)).collect(),
            deny: deny.iter().map(|p| canonical_or_lexical(p)).collect(),
        }
    }

    /// A policy from explicit lists (tests).
    #[cfg(test)]
    pub fn new(roots: Vec<PathBuf>, deny: Vec<PathBuf>) -> Self {
        LocalPolicy {
            roots: roots.iter().map(|p| canonical_or_lexical(p)).collect(),
            deny: deny.iter().map(|p| canonical_or_lexical(p)).collect(),
        }
    }

    /// Check `path` (from a client) and return it resolved: symlinks in the
    /// part that exists are followed, `.` and `..` are refused.
    pub fn check(&self, path: &str, what: &str) -> Result<PathBuf, Error> {
        let given = Path::new(path);
        if !given.is_absolute() {
            return Err(Error::bad_request(format!(
                "{what}: local path `{path}` is not absolute; pass an absolute path (the MCP shim resolves relative ones against its working directory)"
            )));
        }
        if given
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(Error::bad_request(format!(
                "{what}: local path `{path}` contains `.` or `..`; pass it in plain form"
            )));
        }
        let resolved = canonical_or_lexical(given);
        self.check_resolved(&resolved, path, what)?;
        Ok(resolved)
    }

    /// Check an already resolved path (e.g. a symlink target met while
    /// walking a tree).
    pub fn check_resolved(&self, resolved: &Path, shown: &str, what: &str) -> Result<(), Error> {
        if let Some(denied) = self.deny.iter().find(|d| resolved.starts_with(d)) {
            return Err(Error::new(
                ErrorKind::PolicyDenied,
                format!(
                    "{what}: local path `{shown}` is inside {}, which the daemon never reads or writes for clients (keys and its own config live there)",
                    denied.display()
                ),
            ));
        }
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            let roots: Vec<String> = self.roots.iter().map(|r| r.display().to_string()).collect();
            return Err(Error::new(
                ErrorKind::PolicyDenied,
                format!(
                    "{what}: local path `{shown}` is outside the daemon's [policy] local_roots ({}); use a path inside them, or add a root to the daemon's config",
                    if roots.is_empty() {
                        "none configured".to_string()
                    } else {
                        roots.join(", ")
                    }
                ),
            ));
        }
        Ok(())
    }
}

/// The home directory of the user the daemon runs as.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

/// `path` with symlinks resolved in its longest existing prefix and the
/// rest appended as given.
fn canonical_or_lexical(path: &Path) -> PathBuf {
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = existing.canonicalize() {
            let mut out = real;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return path.to_path_buf(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_denials() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("home");
        std::fs::create_dir_all(root.join(".ssh")).unwrap();
        std::fs::create_dir_all(root.join("work")).unwrap();
        std::fs::write(root.join(".ssh/id_ed25519"), "secret").unwrap();
        std::os::unix::fs::symlink(root.join(".ssh"), root.join("work/keys")).unwrap();
        let policy = LocalPolicy::new(vec![root.clone()], vec![root.join(".ssh")]);
        let ok = |p: &Path| policy.check(p.to_str().unwrap(), "upload");

        assert!(ok(&root.join("work/a.txt")).is_ok());
        assert!(
            ok(&root.join("work/new/dir/b.txt")).is_ok(),
            "missing parts are fine"
        );
        let err = ok(&root.join(".ssh/id_ed25519")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PolicyDenied);
        assert!(err.message.contains(".ssh"), "{}", err.message);
        let err = ok(&root.join("work/keys/id_ed25519")).unwrap_err();
        assert_eq!(
            err.kind,
            ErrorKind::PolicyDenied,
            "a symlink into .ssh is followed"
        );
        let err = ok(Path::new("/etc/passwd")).unwrap_err();
        assert!(err.message.contains("local_roots"), "{}", err.message);
        let err = policy.check("work/a.txt", "upload").unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        let dotdot = format!("{}/work/../.ssh/id_ed25519", root.display());
        assert_eq!(
            policy.check(&dotdot, "upload").unwrap_err().kind,
            ErrorKind::BadRequest
        );
    }

    #[test]
    fn default_policy_is_home_without_keys() {
        let config = Config::default();
        let policy = LocalPolicy::from_config(&config, None);
        if let Some(home) = home_dir() {
            let key = home.join(".ssh/id_ed25519");
            assert_eq!(
                policy
                    .check(key.to_str().unwrap(), "upload")
                    .unwrap_err()
                    .kind,
                ErrorKind::PolicyDenied
            );
            let gpg = home.join(".gnupg/private-keys-v1.d/x");
            assert!(policy.check(gpg.to_str().unwrap(), "upload").is_err());
        }
    }
}
