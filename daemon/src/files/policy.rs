//! Which local paths a client may have the daemon read or write.
//!
//! The daemon runs as the user and can read the user's private keys; a
//! client must not be able to ship them off the machine by asking for an
//! upload. Local paths are allowed only inside `[policy] local_roots`
//! (default: the home directory), and never inside `~/.ssh`, `~/.gnupg`,
//! the daemon's own config, or `[policy] local_deny`. Paths are judged
//! after resolving symlinks, so a link inside a root that points at
//! `~/.ssh` is refused too.
//!
//! Downloads check every path they write, not only the directory asked
//! for: the names in a tree come from the server, and a local symlink in
//! the destination tree, or a `.ssh` directory in a tree copied into `~`,
//! would otherwise carry a write where the client could not ask for one.
//! Uploads likewise check every entry of the local tree they read (see
//! `local::walk`): an upload of `~` must not carry `~/.ssh` along. Both
//! judge a path with [`LocalPolicy::refusal`] and skip what it refuses,
//! with a note, instead of failing the whole tree.

use std::collections::HashMap;
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
        match self.refusal(&resolved) {
            None => Ok(resolved),
            Some(Refused::Denied(denied)) => Err(Error::new(
                ErrorKind::PolicyDenied,
                format!(
                    "{what}: local path `{path}` is inside {}, which the daemon never reads or writes for clients (keys and its own config live there)",
                    denied.display()
                ),
            )),
            // Outside every root: `refusal` gives nothing else.
            Some(_) => {
                let roots: Vec<String> =
                    self.roots.iter().map(|r| r.display().to_string()).collect();
                Err(Error::new(
                    ErrorKind::PolicyDenied,
                    format!(
                        "{what}: local path `{path}` is outside the daemon's [policy] local_roots ({}); use a path inside them, or add a root to the daemon's config",
                        if roots.is_empty() {
                            "none configured".to_string()
                        } else {
                            roots.join(", ")
                        }
                    ),
                ))
            }
        }
    }

    /// Why the policy refuses `resolved` (a path with its symlinks
    /// resolved), if it does: inside a denied path, or outside every root.
    /// The one judgement behind every local path the daemon touches.
    pub fn refusal(&self, resolved: &Path) -> Option<Refused> {
        if let Some(denied) = self.denied(resolved) {
            return Some(Refused::Denied(denied.to_path_buf()));
        }
        if !self.roots.iter().any(|r| resolved.starts_with(r)) {
            return Some(Refused::OutsideRoots(resolved.to_path_buf()));
        }
        None
    }

    /// The denied path that `resolved` is inside, if any.
    fn denied(&self, resolved: &Path) -> Option<&Path> {
        self.deny
            .iter()
            .find(|d| resolved.starts_with(d))
            .map(PathBuf::as_path)
    }

    /// The denied path that removing `resolved` would remove or reach
    /// into: one it is inside, or one inside it.
    pub fn denied_removal(&self, resolved: &Path) -> Option<&Path> {
        self.deny
            .iter()
            .find(|d| resolved.starts_with(d) || d.starts_with(resolved))
            .map(PathBuf::as_path)
    }
}

/// Why one local path in a tree (a download's destination, an upload's
/// source) is refused. The texts follow the relative path in a `skipped`
/// list; [`Refused::note`] writes the whole entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("not a plain relative path")]
    NotPlain,
    /// Out of the directory a download writes into.
    #[error("it resolves to {} through a symlink, outside {}", .0.display(), .1.display())]
    OutsideRoot(PathBuf, PathBuf),
    /// Out of `[policy] local_roots` (a symlink an upload follows).
    #[error("it resolves to {} through a symlink, outside [policy] local_roots", .0.display())]
    OutsideRoots(PathBuf),
    #[error("it is inside {}, which the daemon never reads or writes for clients", .0.display())]
    Denied(PathBuf),
}

impl Refused {
    /// The `skipped` entry for `rel`, refused for this reason.
    pub fn note(&self, rel: &str, is_dir: bool) -> String {
        let tail = if is_dir { " with everything in it" } else { "" };
        format!("{rel}: {self}; skipped{tail}")
    }
}

/// The relative paths left out of one tree: refused by the policy, or (in
/// an upload's local tree) not entered because they loop or lie too deep.
/// A directory left out takes everything under it along: what lies there
/// was neither read nor written, so it is never compared, and never taken
/// for an extra to delete.
#[derive(Debug, Default)]
pub struct LeftOutPaths(Vec<String>);

impl LeftOutPaths {
    pub fn insert(&mut self, rel: String) {
        self.0.push(rel);
    }

    /// Whether `rel`, or a directory above it, was left out.
    pub fn contains(&self, rel: &str) -> bool {
        self.0.iter().any(|gone| {
            rel.strip_prefix(gone.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }
}

/// The local destinations of one download, each checked before anything
/// is written: it must resolve, as the disk stands, under the directory
/// the client named and clear of the denied paths (which may lie under a
/// root: `~/.ssh` under `~`). A refused directory refuses everything under
/// it, without a note of its own.
#[derive(Debug)]
pub struct DownloadTargets<'a> {
    policy: &'a LocalPolicy,
    root: PathBuf,
    /// `root` resolved: where everything must land.
    resolved_root: PathBuf,
    /// Admitted directories by relative path, resolved: a tree's files
    /// then cost no symlink resolution of their own.
    dirs: HashMap<String, PathBuf>,
    refused: LeftOutPaths,
}

impl<'a> DownloadTargets<'a> {
    /// Destinations under `root`, a directory the policy already allowed.
    pub fn new(policy: &'a LocalPolicy, root: &Path) -> Self {
        let resolved_root = canonical_or_lexical(root);
        DownloadTargets {
            policy,
            root: root.to_path_buf(),
            dirs: HashMap::from([(String::new(), resolved_root.clone())]),
            resolved_root,
            refused: LeftOutPaths::default(),
        }
    }

    /// The local path for `rel` (`/`-separated, built from names a server
    /// listed), or `None` after noting in `skipped` why nothing may be
    /// written there. Parents must come before their contents.
    pub fn admit(&mut self, rel: &str, is_dir: bool, skipped: &mut Vec<String>) -> Option<PathBuf> {
        if self.refused(rel) {
            return None;
        }
        match self.check(rel, is_dir) {
            Ok(resolved) => {
                if is_dir {
                    self.dirs.insert(rel.to_string(), resolved);
                }
                Some(self.root.join(rel))
            }
            Err(why) => {
                skipped.push(why.note(rel, is_dir));
                self.refused.insert(rel.to_string());
                None
            }
        }
    }

    /// Whether `rel`, or a directory above it, was refused.
    pub fn refused(&self, rel: &str) -> bool {
        self.refused.contains(rel)
    }

    /// The refused paths, once every destination has been admitted.
    pub fn into_refused(self) -> LeftOutPaths {
        self.refused
    }

    /// Where `rel` resolves, if it may be written. A file's last component
    /// is not followed: downloads put files in place by rename, which
    /// replaces a symlink there instead of writing through it.
    fn check(&self, rel: &str, is_dir: bool) -> Result<PathBuf, Refused> {
        // The listing already refuses such names; this check must not
        // depend on it.
        if rel
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == ".." || part.contains('\0'))
        {
            return Err(Refused::NotPlain);
        }
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let parent = match self.dirs.get(parent) {
            Some(resolved) => resolved.clone(),
            None => canonical_or_lexical(&self.root.join(parent)),
        };
        let path = parent.join(name);
        let resolved = if is_dir {
            path.canonicalize().unwrap_or(path)
        } else {
            path
        };
        if !resolved.starts_with(&self.resolved_root) {
            return Err(Refused::OutsideRoot(resolved, self.resolved_root.clone()));
        }
        // Under the root, which the policy allowed, it is inside
        // `local_roots` too; what remains are the denied paths, which may
        // lie under a root.
        match self.policy.refusal(&resolved) {
            Some(why) => Err(why),
            None => Ok(resolved),
        }
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
    fn download_targets_stay_under_the_root_and_out_of_denied_paths() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(home.join("dest")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, home.join("dest/link")).unwrap();
        std::os::unix::fs::symlink(outside.join("x"), home.join("dest/file-link")).unwrap();
        let policy = LocalPolicy::new(vec![home.clone()], vec![home.join(".ssh")]);
        let mut skipped = Vec::new();

        let mut targets = DownloadTargets::new(&policy, &home.join("dest"));
        let mut admit = |rel: &str, is_dir: bool| targets.admit(rel, is_dir, &mut skipped);
        assert_eq!(admit("a", true), Some(home.join("dest/a")));
        assert_eq!(admit("a/b.txt", false), Some(home.join("dest/a/b.txt")));
        assert_eq!(admit("link", true), None);
        assert_eq!(admit("link/f", false), None, "under a refused directory");
        assert_eq!(
            admit("file-link", false),
            Some(home.join("dest/file-link")),
            "a file's own symlink is replaced, not followed"
        );
        assert_eq!(admit("../x", false), None);
        assert_eq!(skipped.len(), 2, "{skipped:?}");
        assert!(
            skipped[0].starts_with("link: it resolves to "),
            "{skipped:?}"
        );
        assert!(
            skipped[0].ends_with("skipped with everything in it"),
            "{skipped:?}"
        );
        assert_eq!(skipped[1], "../x: not a plain relative path; skipped");

        skipped.clear();
        let mut targets = DownloadTargets::new(&policy, &home);
        assert_eq!(targets.admit(".ssh", true, &mut skipped), None);
        assert_eq!(
            targets.admit(".ssh/authorized_keys", false, &mut skipped),
            None
        );
        assert!(targets.refused(".ssh/authorized_keys"));
        assert!(!targets.refused(".sshx"));
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("never reads or writes"), "{skipped:?}");
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
