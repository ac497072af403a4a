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

    /// A read of the whole of the file at `path` (normalized): what a
    /// write keeps, and what pages are cut from.
    pub fn whole_file(path: String) -> What {
        What::ReadFile {
            path,
            offset: 0,
            length: None,
        }
    }

    /// The same question with a relative path (below the login directory)
    /// spelled from `home`, so both spellings of a file share one answer.
    pub fn rebased(self, home: &str) -> What {
        let at = |path: String| rebase(&path, home).unwrap_or(path);
        match self {
            What::Stat { path, follow } => What::Stat {
                path: at(path),
                follow,
            },
            What::ListDir {
                path,
                recursive,
                max_entries,
            } => What::ListDir {
                path: at(path),
                recursive,
                max_entries,
            },
            What::ReadFile {
                path,
                offset,
                length,
            } => What::ReadFile {
                path: at(path),
                offset,
                length,
            },
            exec @ What::Exec { .. } => exec,
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
    /// A change to the given remote paths and everything below them; `deep`
    /// when it may also make missing parents. `content` is what a
    /// `write_file` leaves in its file, when it replaces one small enough
    /// to keep.
    Change {
        reason: &'static str,
        paths: Vec<String>,
        deep: bool,
        content: Option<Content>,
    },
    /// A command that may change anything on the host.
    ChangeAll { reason: &'static str },
    /// Neither: not the cache's business.
    Other,
}

/// A file's whole content as a `write_file` left it.
pub struct Content {
    /// The path as the write asked for it.
    pub path: String,
    /// The path the answer is kept under.
    pub key_path: String,
    pub data: Vec<u8>,
}

/// The most a `write_file` may write for the cache to keep what it wrote
/// (a read right after it is answered without asking the host).
pub const WRITE_THROUGH_MAX: usize = 256 * 1024;

/// How `request` relates to the cache.
pub fn classify(request: &Request) -> Class {
    use sshmcp_proto::Direction::Upload;
    let read = |what, max_age_secs| Class::Read { what, max_age_secs };
    let change = |reason, paths: &[&String], deep| Class::Change {
        reason,
        paths: paths.iter().map(|p| normalize(p)).collect(),
        deep,
        content: None,
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
            Effect::Paths { paths, deep } => {
                change("exec", &paths.iter().collect::<Vec<_>>(), deep)
            }
            Effect::Anything => Class::ChangeAll { reason: "exec" },
        },
        Request::WriteFile(r) => Class::Change {
            reason: "write_file",
            paths: vec![normalize(&r.path)],
            deep: r.create_dirs,
            content: (!r.append && r.data.len() <= WRITE_THROUGH_MAX).then(|| Content {
                path: r.path.clone(),
                key_path: normalize(&r.path),
                data: r.data.clone(),
            }),
        },
        Request::Mkdir(r) => change("mkdir", &[&r.path], r.parents),
        Request::Remove(r) => change("remove", &[&r.path], false),
        Request::Rename(r) => change("rename", &[&r.from, &r.to], false),
        // What an upload makes above its target is not known here.
        Request::Transfer(r) if r.direction == Upload => {
            change("transfer", &[&r.remote_path], true)
        }
        Request::Sync(r) if r.direction == Upload && !r.dry_run => {
            change("sync", &[&r.remote_dir], true)
        }
        _ => Class::Other,
    }
}

/// `path` (normalized), when relative, as below `home` (absolute).
pub fn rebase(path: &str, home: &str) -> Option<String> {
    match path {
        _ if path.starts_with('/') => None,
        "." => Some(normalize(home)),
        _ => Some(normalize(&format!("{home}/{path}"))),
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

/// How far above itself a cached answer sees a change: a file's bytes
/// only its own (and a removed or renamed tree above it, which is always
/// seen); a `stat` of a directory its entries (made or removed ones move
/// its mtime); a listing its entries' entries too (an entry's mtime is in
/// the listing); a recursive listing or a command anything below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Itself,
    Children,
    Grandchildren,
    All,
}

impl Reach {
    /// How many names below itself an answer sees.
    fn levels(self) -> usize {
        match self {
            Reach::Itself => 0,
            Reach::Children => 1,
            Reach::Grandchildren => 2,
            Reach::All => usize::MAX,
        }
    }

    /// How far an answer of this `what` sees.
    pub fn of(what: &What) -> Reach {
        match what {
            What::ReadFile { .. } => Reach::Itself,
            What::Stat { .. } => Reach::Children,
            What::ListDir {
                recursive: false, ..
            } => Reach::Grandchildren,
            What::ListDir {
                recursive: true, ..
            }
            | What::Exec { .. } => Reach::All,
        }
    }
}

/// Whether a change to `changed` may change an answer about `path` that
/// sees `reach` below itself: `changed` is the path or above it, or lies
/// within its reach below. A `deep` change may also have made missing
/// directories above `changed`, so any answer above it may differ.
pub fn touches(changed: &str, path: &str, reach: Reach, deep: bool) -> bool {
    below_or_same(changed, path)
        || depth_below(path, changed).is_some_and(|depth| deep || depth <= reach.levels())
}

/// How many names `path` goes below `root`, when it is `root` or inside it.
fn depth_below(root: &str, path: &str) -> Option<usize> {
    if !below_or_same(root, path) {
        return None;
    }
    let rest = match root {
        "/" | "." => path,
        _ => &path[root.len()..],
    };
    Some(
        rest.split('/')
            .filter(|name| !name.is_empty() && (root != "." || *name != "."))
            .count(),
    )
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
    fn a_change_reaches_answers_above_it_only_as_far_as_they_see() {
        let f = "/srv/d/sub/f";
        // The file itself, and a tree above it removed or renamed.
        assert!(touches(f, f, Reach::Itself, false));
        assert!(touches("/srv/d", f, Reach::Itself, false));
        assert!(!touches("/srv/d/sub/g", f, Reach::Itself, false));
        // Its directory's mtime and entries; the listing above shows that
        // directory's mtime; nothing further up.
        assert!(touches(f, "/srv/d/sub", Reach::Children, false));
        assert!(!touches(f, "/srv/d", Reach::Children, false));
        assert!(touches(f, "/srv/d", Reach::Grandchildren, false));
        assert!(!touches(f, "/srv", Reach::Grandchildren, false));
        assert!(touches(f, "/", Reach::All, false));
        // A change that may make missing parents reaches everything above.
        assert!(touches(f, "/srv", Reach::Children, true));
        assert!(touches(f, "/", Reach::Itself, true));
        assert!(!touches(f, "/srv/other", Reach::All, true));
        // Relative paths are below the home, `.`.
        assert!(touches("notes.txt", ".", Reach::Children, false));
        assert!(!touches("a/b/c", ".", Reach::Grandchildren, false));
        assert!(touches("a/b", ".", Reach::Grandchildren, false));
        assert!(!touches("a/b", "/", Reach::All, true));
    }

    #[test]
    fn relative_paths_are_rebased_below_the_home() {
        assert_eq!(
            rebase("notes.txt", "/home/u").as_deref(),
            Some("/home/u/notes.txt")
        );
        assert_eq!(rebase(".", "/home/u").as_deref(), Some("/home/u"));
        assert_eq!(rebase("a/../b", "/").as_deref(), Some("/a/../b"));
        assert_eq!(rebase("/etc/hosts", "/home/u"), None);
        let what = What::ListDir {
            path: "src".into(),
            recursive: true,
            max_entries: Some(5),
        };
        assert_eq!(
            what.rebased("/srv"),
            What::ListDir {
                path: "/srv/src".into(),
                recursive: true,
                max_entries: Some(5),
            }
        );
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
