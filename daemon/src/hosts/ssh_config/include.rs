//! `Include`: which files a line pulls in, found the way ssh finds them
//! (glob(3) with `GLOB_TILDE`, relative paths under `~/.ssh`), and how deep
//! Includes may nest.

use std::borrow::Cow;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::SshConfigError;
use super::local_user::home_of;
use super::parse::{Item, Line, Parser};

/// OpenSSH gives up on Includes nested deeper than this (`READCONF_MAX_DEPTH`).
pub(super) const MAX_INCLUDE_DEPTH: usize = 16;

impl Parser<'_> {
    /// `Include`: each argument is a glob; relative ones live in `~/.ssh`.
    /// Matching files are parsed now, whether or not the surrounding block
    /// will ever apply, exactly as ssh parses them ("parse only").
    pub(super) fn parse_include(
        &mut self,
        args: &[String],
        at: Line<'_>,
        depth: usize,
    ) -> Result<Item, SshConfigError> {
        let mut files = Vec::new();
        for arg in args {
            if arg.is_empty() {
                return Err(at.error("Include has an empty file name"));
            }
            let pattern = if arg.starts_with('/') || arg.starts_with('~') {
                Cow::Borrowed(arg.as_str())
            } else {
                Cow::Owned(format!("~/.ssh/{arg}"))
            };
            for path in glob(&glob_tilde(&pattern, &self.local.home)) {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(SshConfigError::IncludeTooDeep {
                        path: at.path.to_owned(),
                        line: at.number,
                    });
                }
                if let Some(items) = self.read_file(&path, depth + 1)? {
                    files.push(items);
                }
            }
        }
        Ok(Item::Include(files))
    }
}

/// glob(3)'s `GLOB_TILDE` for Include: `~` is the home directory, `~name`
/// that user's; an unknown user is left as written (and matches nothing).
fn glob_tilde<'p>(pattern: &'p str, home: &Path) -> Cow<'p, str> {
    let Some(after) = pattern.strip_prefix('~') else {
        return Cow::Borrowed(pattern);
    };
    let (user, rest) = match after.find('/') {
        Some(slash) => after.split_at(slash),
        None => (after, ""),
    };
    let home = if user.is_empty() {
        home.to_owned()
    } else {
        let Some(home) = home_of(user) else {
            return Cow::Borrowed(pattern);
        };
        home
    };
    Cow::Owned(format!("{}{rest}", home.to_string_lossy()))
}

/// Expand an Include pattern like glob(3) without flags: `*`, `?` and
/// `[...]` in any path component, leading dots matched only explicitly,
/// only existing paths, sorted bytewise (glob's order in the C locale).
fn glob(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from(if pattern.starts_with('/') {
        "/"
    } else {
        "."
    })];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if component.contains(['*', '?', '[']) {
            for dir in &found {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.as_bytes();
                    let hidden = name.first() == Some(&b'.') && !component.starts_with('.');
                    if !hidden && fnmatch(component.as_bytes(), name) {
                        next.push(dir.join(OsStr::from_bytes(name)));
                    }
                }
            }
        } else {
            let literal = unescape(component);
            next.extend(found.iter().map(|dir| dir.join(&literal)));
        }
        found = next;
    }
    found.retain(|path| fs::symlink_metadata(path).is_ok());
    found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    found.dedup();
    found
}

/// A literal glob component: backslash makes the next character literal.
fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    out
}

/// fnmatch(3) for one path component: `*`, `?`, `[...]` (with `!`/`^`
/// negation and ranges), `\` escapes.
fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            backtrack = Some((p, n));
            continue;
        }
        if let Some(width) = match_one(&pattern[p.min(pattern.len())..], name[n]) {
            p += width;
            n += 1;
            continue;
        }
        match backtrack {
            Some((star_p, star_n)) => {
                p = star_p;
                n = star_n + 1;
                backtrack = Some((star_p, star_n + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Does the first pattern element (not `*`) match `c`? Returns its width.
fn match_one(pattern: &[u8], c: u8) -> Option<usize> {
    match *pattern.first()? {
        b'?' => Some(1),
        b'\\' if pattern.len() > 1 => (pattern[1] == c).then_some(2),
        b'[' => match bracket(pattern, c) {
            Some((true, width)) => Some(width),
            Some((false, _)) => None,
            // No closing bracket: a literal `[`.
            None => (c == b'[').then_some(1),
        },
        literal => (literal == c).then_some(1),
    }
}

/// A `[...]` class at the start of `pattern`: whether `c` is in it and the
/// class's width; `None` if the class is not closed.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let low = *pattern.get(i)?;
        if low == b']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            let high = pattern[i + 2];
            matched |= low <= c && c <= high;
            i += 3;
        } else {
            matched |= low == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    use crate::hosts::ssh_config::fixtures::{alice, write_config};
    use crate::hosts::ssh_config::{LocalUser, SshConfig};

    #[test]
    fn include_with_wildcard_pulls_in_matching_files_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("conf.d");
        fs::create_dir(&conf_d).unwrap();
        write_config(
            &conf_d.join("20-b.conf"),
            "Host b\n  Port 2\nHost web\n  User from-b\n",
        );
        write_config(
            &conf_d.join("10-a.conf"),
            "Host a\n  Port 1\nHost web\n  User from-a\n",
        );
        write_config(&conf_d.join(".hidden"), "Host hidden\n");
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {}/*.conf\n", conf_d.display()));
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.aliases(), vec!["a", "web", "b"]);
        assert_eq!(config.resolve("a").port, 1);
        assert_eq!(config.resolve("b").port, 2);
        assert_eq!(config.resolve("web").user, "from-a");
    }

    #[test]
    fn include_takes_several_patterns_and_character_classes() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["x1", "x2", "y"] {
            write_config(&dir.path().join(name), &format!("Host {name}\n"));
        }
        let root = dir.path().display();
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {root}/y {root}/x[!1]\n"));
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.aliases(), vec!["y", "x2"]);
    }

    #[test]
    fn relative_include_resolves_against_dot_ssh() {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir(home.path().join(".ssh")).unwrap();
        write_config(&home.path().join(".ssh/extra"), "Host extra\n  Port 2200\n");
        let local = LocalUser {
            home: home.path().to_owned(),
            ..alice()
        };
        let config =
            SshConfig::parse_str_as("Include extra\n", Path::new("/test/config"), local).unwrap();
        assert_eq!(config.resolve("extra").port, 2200);
        let config =
            SshConfig::parse_str("Include ~/.ssh/extra\n", Path::new("x"), home.path()).unwrap();
        assert_eq!(config.resolve("extra").port, 2200);
    }

    #[test]
    fn include_inside_a_host_block_applies_only_when_that_block_matches() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "Port 2200\n");
        let main = dir.path().join("config");
        write_config(
            &main,
            &format!(
                "Host web\n  Include {}\nHost *\n  Port 2222\n",
                extra.display()
            ),
        );
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.resolve("web").port, 2200);
        assert_eq!(config.resolve("other").port, 2222);
    }

    #[test]
    fn host_block_inside_an_included_file_ends_with_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "User included\nHost elsewhere\n  User elsewhere\n");
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {}\nPort 2200\n", extra.display()));
        let host = SshConfig::load_as(&main, alice()).unwrap().resolve("web");
        assert_eq!(host.user, "included");
        assert_eq!(
            host.port, 2200,
            "the includer's state is restored after the Include"
        );
    }

    #[test]
    fn missing_include_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        let root = dir.path().display();
        write_config(
            &main,
            &format!("Include {root}/nope {root}/none.d/*\nPort 2200\n"),
        );
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.resolve("x").port, 2200);
    }

    #[test]
    fn include_recursion_is_an_error_even_in_a_block_that_never_matches() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        write_config(
            &main,
            &format!("Host never\n  Include {}\n", main.display()),
        );
        let error = SshConfig::load_as(&main, alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::IncludeTooDeep { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn included_file_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "Port 2200\n");
        fs::set_permissions(&extra, fs::Permissions::from_mode(0o666)).unwrap();
        let text = format!("Include {}\n", extra.display());
        let error = SshConfig::parse_str_as(&text, Path::new("x"), alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::InsecurePermissions { .. }),
            "{error}"
        );
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "\n\nPort nope\n");
        let text = format!("Include {}\n", extra.display());
        let message = SshConfig::parse_str_as(&text, Path::new("x"), alice())
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!("{}, line 3:", extra.display())),
            "{message}"
        );
    }

    #[test]
    fn glob_wildcards_follow_fnmatch() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[!a-c]x", b"bx"));
        assert!(fnmatch(b"\\*", b"*"));
        assert!(!fnmatch(b"\\*", b"a"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"[", b"["));
    }
}
