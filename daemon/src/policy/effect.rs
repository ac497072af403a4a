//! What a command line may change on the host, for the response cache: an
//! uncached `exec` that the parser shows to change nothing, or only some
//! named files, need not make the cache forget everything it knows of the
//! host.
//!
//! The reading is the policy's own (brush-parser, literal words only), and
//! it errs the same way: whatever it cannot prove is [`Effect::Anything`].
//! Besides the built-in read-only set, the commands whose writes it names
//! are few and common in agents' edits: `sed -i`, `tee`, `touch`, `mkdir`,
//! `rm`, and output redirections (`>`, `>>`) to literal paths. Their paths
//! are as written: relative ones are below the login directory, where the
//! exec runs, unless the line also moves with `cd` (then it is anything).

use super::{Node, line, sed};

/// What running a command line may change on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing: every command is of the built-in read-only set.
    Nothing,
    /// These paths (and whatever is below them), as written; `deep` when
    /// the line may also make their missing parents (`mkdir`).
    Paths { paths: Vec<String>, deep: bool },
    /// Anything: the line is more than the parser can vouch for.
    Anything,
}

/// What `line` may change when run, as the remote login shell will read it.
pub fn effect(line: &str) -> Effect {
    let Ok(parsed) = line::parse(line) else {
        return Effect::Anything;
    };
    let mut paths = Vec::new();
    for written in &parsed.written {
        match written {
            Some(path) => paths.push(path.clone()),
            None => return Effect::Anything,
        }
    }
    let mut moves = false;
    let mut deep = false;
    for command in &parsed.commands {
        let node = Node::command(command);
        if node.read_only(&[]).is_ok() {
            moves |= matches!(node.name.as_str(), "cd" | "pushd" | "popd");
            continue;
        }
        if !node.trusted || command.glob.is_some() {
            return Effect::Anything;
        }
        deep |= node.name == "mkdir";
        match writes(&node.name, node.words.get(1..).unwrap_or_default()) {
            Some(files) => paths.extend(files),
            None => return Effect::Anything,
        }
    }
    // `~` is the home only where the shell expanded it; which one a word
    // held is gone after quote removal.
    let unclear = |path: &String| path.is_empty() || path.starts_with('~');
    let relative = |path: &String| !path.starts_with('/');
    match paths.as_slice() {
        [] => Effect::Nothing,
        _ if paths.iter().any(unclear) => Effect::Anything,
        _ if moves && paths.iter().any(relative) => Effect::Anything,
        _ => Effect::Paths { paths, deep },
    }
}

/// Commands whose output depends only on their operands (files, or
/// strings taken for files at no harm) and their input, with the short
/// option letters and long options that would make them reach further
/// (follow links inside a tree, read a list of names from a file). Not
/// `stat`: `stat -f` reports the whole file system's free space.
const READERS: [(&str, &str, &[&str]); 15] = [
    ("cat", "", &[]),
    ("head", "", &[]),
    ("tail", "fF", &["follow", "retry"]),
    ("wc", "", &["files0-from"]),
    ("ls", "L", &["dereference"]),
    (
        "grep",
        "frRd",
        &[
            "file",
            "recursive",
            "dereference-recursive",
            "directories",
            "exclude-from",
        ],
    ),
    ("md5sum", "c", &["check"]),
    ("sha1sum", "c", &["check"]),
    ("sha256sum", "c", &["check"]),
    ("sha512sum", "c", &["check"]),
    ("cut", "", &[]),
    ("nl", "", &[]),
    ("echo", "", &[]),
    ("true", "", &[]),
    ("false", "", &[]),
];

/// The paths a read-only `line`'s output depends on, when the parser can
/// name them all: the operands of commands from [`READERS`] and the files
/// of `<` redirections, as written (relative ones below the login
/// directory). Every word that is not an option counts, so a pattern or a
/// count is taken for a path too: that only drops an answer more often.
/// `None` when anything could reach past them (another command, a glob,
/// `cd`, `~`, a following option).
pub fn reads(line: &str) -> Option<Vec<String>> {
    let parsed = line::parse(line).ok()?;
    if !parsed.written.is_empty() {
        return None;
    }
    let mut paths = parsed.read.iter().cloned().collect::<Option<Vec<_>>>()?;
    for command in &parsed.commands {
        let node = Node::command(command);
        if command.glob.is_some()
            || !node.trusted
            || !node.children.is_empty()
            || node.read_only(&[]).is_err()
        {
            return None;
        }
        let (_, letters, longs) = READERS.iter().find(|(name, ..)| *name == node.name)?;
        let mut operands = 0;
        for word in node.words.iter().skip(1) {
            if let Some(long) = word.strip_prefix("--") {
                let (name, value) = long.split_once('=').unwrap_or((long, ""));
                if longs.contains(&name) {
                    return None;
                }
                if !value.is_empty() {
                    paths.push(value.to_owned());
                }
            } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
                if cluster.chars().any(|c| letters.contains(c)) {
                    return None;
                }
            } else {
                operands += 1;
                paths.push(word.clone());
            }
        }
        // `ls` alone lists where it runs.
        if node.name == "ls" && operands == 0 {
            paths.push(".".to_owned());
        }
    }
    if paths.iter().any(|p| p.is_empty() || p.starts_with('~')) {
        return None;
    }
    Some(paths)
}

/// The paths `name` run with `args` writes, when it is one of the writers
/// read here and every option is understood.
fn writes(name: &str, args: &[String]) -> Option<Vec<String>> {
    match name {
        "tee" => operands(args, "aip", "", &["append", "ignore-interrupts"], &[]),
        "touch" => operands(
            args,
            "acfhm",
            "dtr",
            &["no-create", "no-dereference"],
            &["date", "reference", "time"],
        ),
        "mkdir" => operands(args, "pv", "m", &["parents", "verbose"], &["mode"]),
        "rm" => operands(
            args,
            "dfiIrRv",
            "",
            &[
                "dir",
                "force",
                "recursive",
                "verbose",
                "one-file-system",
                "preserve-root",
                "no-preserve-root",
            ],
            &[],
        ),
        "sed" => sed_in_place(args),
        _ => None,
    }
}

/// The operands of a command whose short options are the letters of
/// `flags` (clustered) and of `valued` (taking a value, attached or next),
/// and whose long options are `long_flags` and `long_valued` (`--name=V`
/// or `--name V`), spelled in full. Anything else is not understood.
fn operands(
    args: &[String],
    flags: &str,
    valued: &str,
    long_flags: &[&str],
    long_valued: &[&str],
) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            out.extend(rest.cloned());
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, _)) if long_valued.contains(&name) => {}
                None if long_flags.contains(&long) => {}
                None if long_valued.contains(&long) => {
                    rest.next()?;
                }
                _ => return None,
            }
            continue;
        }
        let Some(cluster) = arg.strip_prefix('-').filter(|c| !c.is_empty()) else {
            out.push(arg.clone());
            continue;
        };
        for (at, c) in cluster.char_indices() {
            if valued.contains(c) {
                if at + 1 == cluster.len() {
                    rest.next()?;
                }
                break;
            }
            if !flags.contains(c) {
                return None;
            }
        }
    }
    Some(out)
}

/// The files `sed -i` rewrites (with their backups), when its script is
/// one that writes nothing else.
fn sed_in_place(args: &[String]) -> Option<Vec<String>> {
    let sed = sed::invocation(args).ok()?;
    let (_, suffix) = sed.in_place?;
    let mut files = sed.files;
    if sed.scripts.iter().any(|script| sed::check(script).is_err())
        || suffix.contains(['*', '/'])
        || files.is_empty()
    {
        return None;
    }
    let backups: Vec<String> = match suffix.as_str() {
        "" => Vec::new(),
        _ => files.iter().map(|f| format!("{f}{suffix}")).collect(),
    };
    files.extend(backups);
    Some(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(line: &str) -> Vec<String> {
        match effect(line) {
            Effect::Paths { paths, .. } => paths,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn read_only_lines_change_nothing() {
        for line in [
            "grep -c key /srv/app/a.conf || true",
            "cat /etc/os-release",
            "ls -la /var/log | head -n 5",
            "cd /srv && git status",
            "sed -n 1,5p notes.txt",
            "cat x 2>/dev/null",
            "wc -c < /etc/hosts",
        ] {
            assert_eq!(effect(line), Effect::Nothing, "{line}");
        }
    }

    #[test]
    fn named_writes_are_their_paths() {
        assert_eq!(
            paths("sed -i 's/^mode = .*/mode = v2/' /srv/a.conf"),
            ["/srv/a.conf"]
        );
        assert_eq!(
            paths("sed -i.bak -e s/a/b/ x y"),
            ["x", "y", "x.bak", "y.bak"]
        );
        // `-ie` is the suffix `e`; the script is the first operand.
        assert_eq!(paths("sed -ie s/a/b/ f"), ["f", "fe"]);
        // Long options may be abbreviated, as GNU sed allows; `--` ends
        // them.
        assert_eq!(paths("sed -i --in=.bak --expr=s/a/b/ f"), ["f", "f.bak"]);
        assert_eq!(paths("sed -i -e s/a/b/ -- -f"), ["-f"]);
        assert_eq!(
            paths("echo 'event 3' >> /srv/logs/app.log"),
            ["/srv/logs/app.log"]
        );
        assert_eq!(paths("grep x a | tee -a out.txt"), ["out.txt"]);
        assert_eq!(
            paths("mkdir -p /srv/d/sub && touch /srv/d/sub/f"),
            ["/srv/d/sub", "/srv/d/sub/f"]
        );
        assert_eq!(paths("rm -rf -- /srv/old"), ["/srv/old"]);
        assert_eq!(paths("touch -d yesterday f"), ["f"]);
        assert_eq!(paths("cd /srv && echo x > /srv/abs"), ["/srv/abs"]);
    }

    #[test]
    fn only_mkdir_may_make_parents() {
        let deep = |line: &str| match effect(line) {
            Effect::Paths { deep, .. } => deep,
            other => panic!("{line}: {other:?}"),
        };
        assert!(deep("mkdir -p /srv/a/b/c"));
        assert!(deep("touch /srv/x && mkdir /srv/y"));
        assert!(!deep("echo x >> /srv/a/b/c"));
        assert!(!deep("sed -i s/a/b/ /srv/f && rm -rf /srv/old"));
    }

    #[test]
    fn what_a_read_only_line_reads_is_named_when_it_can_be() {
        let reads = |line: &str| reads(line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(reads("cat /etc/os-release"), ["/etc/os-release"]);
        assert_eq!(reads("wc -c < /srv/b.conf"), ["/srv/b.conf"]);
        assert_eq!(reads("head -n 3 src/main.rs"), ["3", "src/main.rs"]);
        assert_eq!(reads("ls -la"), ["."]);
        assert_eq!(
            reads("grep -c --max-count=9 key a b | wc -l"),
            ["9", "key", "a", "b"]
        );
        for line in [
            "cat *.conf",
            "cd /srv && cat a",
            "cat ~/a",
            "ls -L /srv",
            "grep -r key /srv",
            "grep -f pats a",
            "tail -f log",
            "sha256sum -c sums",
            "wc --files0-from=list",
            "uname -a",
            "stat -f /srv",
            "ps aux",
            "timeout 5 cat a",
            "cat a > b",
            "cat $(echo a)",
        ] {
            assert_eq!(super::reads(line), None, "{line}");
        }
    }

    #[test]
    fn what_cannot_be_named_is_anything() {
        for line in [
            "rm -rf /srv/*.log",
            "sed -i s/a/b/w/tmp/x f",
            "sed -i s/a/b/",
            "sed -f script.sed -i f",
            "sed --s -i s/a/b/ f",
            "sed -i --line-length",
            "cp a b",
            "echo x > ~/f",
            "cd /srv && echo x > rel",
            "echo $(id) > f",
            "env rm -f x",
            "./rm x",
            "python3 -c 'open(\"x\",\"w\")'",
            "echo x >&3",
            "tee --output-error=warn f",
            "touch --dat=now f",
            "mkdir -Z d",
            "git pull",
        ] {
            assert_eq!(effect(line), Effect::Anything, "{line}");
        }
    }
}
