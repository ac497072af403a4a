//! What a cached answer is keyed by, what a change touches, and the path
//! rules both use.

use std::sync::Arc;

use sshmcp_proto::{ExecRequest, Request};

use crate::policy::{Effect, effect};

/// The op a cached answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Stat,
    ListDir,
    ReadFile,
    Exec,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Stat, Kind::ListDir, Kind::ReadFile, Kind::Exec];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Stat => "stat",
            Kind::ListDir => "list_dir",
            Kind::ReadFile => "read_file",
            Kind::Exec => "exec",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// One cacheable request: the host's alias and login (an answer is never
/// served to another identity), and everything in the request that shapes
/// the answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub alias: Arc<str>,
    pub identity: Arc<str>,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum What {
    Stat {
        path: String,
        follow: bool,
    },
    ListDir {
        path: String,
        recursive: bool,
        max_entries: Option<u32>,
    },
    ReadFile {
        path: String,
        offset: u64,
        length: Option<u64>,
    },
    Exec {
        command: String,
        stdin: Vec<u8>,
        timeout_secs: Option<u64>,
        max_output_bytes: Option<u64>,
    },
}

impl What {
    pub fn kind(&self) -> Kind {
        match self {
            What::Stat { .. } => Kind::Stat,
            What::ListDir { .. } => Kind::ListDir,
            What::ReadFile { .. } => Kind::ReadFile,
            What::Exec { .. } => Kind::Exec,
        }
    }

    /// The remote path the answer describes (none for an exec).
    pub fn path(&self) -> Option<&str> {
        match self {
            What::Stat { path, .. } | What::ListDir { path, .. } | What::ReadFile { path, .. } => {
                Some(path)
            }
            What::Exec { .. } => None,
        }
    }

    /// Bytes the key itself takes.
    pub fn bytes(&self) -> usize {
        match self {
            What::Stat { path, .. } | What::ListDir { path, .. } | What::ReadFile { path, .. } => {
                path.len()
            }
            What::Exec { command, stdin, .. } => command.len() + stdin.len(),
        }
    }
}

/// What the cache does with a request.
pub enum Class {
    /// A read it may answer: its key, and the oldest answer the caller
    /// accepts (`None`: the kind's default; `Some(0)`: go to the host).
    Read {
        what: What,
        max_age_secs: Option<u64>,
    },
    /// A change to the given remote paths and everything below them.
    Change {
        reason: &'static str,
        paths: Vec<String>,
    },
    /// A command that may change anything on the host.
    ChangeAll { reason: &'static str },
    /// Neither: not the cache's business.
    Other,
}

/// How `request` relates to the cache.
pub fn classify(request: &Request) -> Class {
    use sshmcp_proto::Direction::Upload;
    let read = |what, max_age_secs| Class::Read { what, max_age_secs };
    let change = |reason, paths: &[&String]| Class::Change {
        reason,
        paths: paths.iter().map(|p| normalize(p)).collect(),
    };
    match request {
        Request::Stat(r) if cacheable_path(&r.path) => read(
            What::Stat {
                path: normalize(&r.path),
                follow: r.follow_symlinks,
            },
            r.max_age_secs,
        ),
        Request::ListDir(r) if cacheable_path(&r.path) => read(
            What::ListDir {
                path: normalize(&r.path),
                recursive: r.recursive,
                max_entries: r.max_entries,
            },
            r.max_age_secs,
        ),
        Request::ReadFile(r) if cacheable_path(&r.path) => read(
            What::ReadFile {
                path: normalize(&r.path),
                offset: r.offset,
                length: r.length,
            },
            r.max_age_secs,
        ),
        Request::Exec(
            r @ ExecRequest {
                cache_secs: Some(secs),
                // Validation refuses `cache_secs` with `sudo`; a sudo'd
                // command is never kept even if one got here.
                sudo: false,
                ..
            },
        ) => read(
            What::Exec {
                command: r.command.clone(),
                stdin: r.stdin.clone().unwrap_or_default(),
                timeout_secs: r.timeout_secs,
                max_output_bytes: r.max_output_bytes,
            },
            Some(*secs),
        ),
        // What the parser shows a command to change (nothing, or named
        // files) is all it drops; through sudo it is anything.
        Request::Exec(r) => match effect(&r.command) {
            _ if r.sudo => Class::ChangeAll { reason: "exec" },
            Effect::Nothing => Class::Other,
            Effect::Paths(paths) => change("exec", &paths.iter().collect::<Vec<_>>()),
            Effect::Anything => Class::ChangeAll { reason: "exec" },
        },
        Request::WriteFile(r) => change("write_file", &[&r.path]),
        Request::Mkdir(r) => change("mkdir", &[&r.path]),
        Request::Remove(r) => change("remove", &[&r.path]),
        Request::Rename(r) => change("rename", &[&r.from, &r.to]),
        Request::Transfer(r) if r.direction == Upload => change("transfer", &[&r.remote_path]),
        Request::Sync(r) if r.direction == Upload && !r.dry_run => change("sync", &[&r.remote_dir]),
        _ => Class::Other,
    }
}

/// Kernel views that change by themselves: never cached.
const LIVE_TREES: [&str; 3] = ["/proc", "/sys", "/dev"];

/// Whether answers about `path` may be cached at all.
pub fn cacheable_path(path: &str) -> bool {
    let path = normalize(path);
    !LIVE_TREES.iter().any(|tree| related(tree, &path))
}

/// `path` with `//`, `/./` and a trailing `/` folded, so one file has one
/// spelling. `..` is left alone: after a symlink it is not the parent.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let parts: Vec<&str> = path
        .split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect();
    match (absolute, parts.is_empty()) {
        (true, _) => format!("/{}", parts.join("/")),
        (false, true) => ".".to_string(),
        (false, false) => parts.join("/"),
    }
}

/// One of `a` and `b` is the other or lies below it: a change to one may
/// change what was cached about the other (a listing shows its entries, a
/// directory's stat its mtime, a removed tree takes its files with it).
pub fn related(a: &str, b: &str) -> bool {
    below_or_same(a, b) || below_or_same(b, a)
}

/// `path` is `root` or inside it.
fn below_or_same(root: &str, path: &str) -> bool {
    if root == "/" {
        return path.starts_with('/');
    }
    if root == "." {
        return !path.starts_with('/');
    }
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_file_has_one_spelling() {
        assert_eq!(normalize("/etc//hosts/"), "/etc/hosts");
        assert_eq!(normalize("/etc/./hosts"), "/etc/hosts");
        assert_eq!(normalize("./notes.txt"), "notes.txt");
        assert_eq!(normalize("a/../b"), "a/../b");
        assert_eq!(normalize("/"), "/");
        assert_eq!(normalize("."), ".");
        assert_eq!(normalize(""), ".");
    }

    #[test]
    fn related_paths_are_ancestors_descendants_or_the_same() {
        assert!(related("/a", "/a"));
        assert!(related("/a", "/a/b/c"));
        assert!(related("/a/b/c", "/a"));
        assert!(!related("/a", "/ab"));
        assert!(!related("/a/b", "/a/c"));
        assert!(related("/", "/x"));
        assert!(related(".", "notes"));
        assert!(!related(".", "/etc"));
    }

    #[test]
    fn live_kernel_trees_are_never_cached() {
        assert!(!cacheable_path("/proc/loadavg"));
        assert!(!cacheable_path("/sys"));
        assert!(!cacheable_path("//dev/./null"));
        assert!(cacheable_path("/devices"));
        assert!(cacheable_path("/etc/os-release"));
    }

    #[test]
    fn only_upload_transfers_and_real_syncs_change_the_host() {
        use sshmcp_proto::{Direction, SyncRequest, TransferRequest};
        let transfer = |direction| {
            Request::Transfer(TransferRequest {
                job_after_secs: None,
                host: "h".into(),
                direction,
                local_path: "/tmp/x".into(),
                remote_path: "/srv/x".into(),
                recursive: true,
                resume: false,
                verify: false,
                follow_symlinks: false,
            })
        };
        assert!(matches!(
            classify(&transfer(Direction::Download)),
            Class::Other
        ));
        assert!(
            matches!(classify(&transfer(Direction::Upload)), Class::Change { paths, .. } if paths == ["/srv/x"])
        );
        let sync = Request::Sync(SyncRequest {
            job_after_secs: None,
            host: "h".into(),
            direction: Direction::Upload,
            local_dir: "/tmp/d".into(),
            remote_dir: "/srv/d".into(),
            delete: true,
            dry_run: true,
            checksum: false,
        });
        assert!(matches!(classify(&sync), Class::Other));
    }
}
