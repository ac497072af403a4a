//! Local paths (`transfer`, `sync`) as the daemon wants them: absolute.
//!
//! The daemon runs elsewhere, with its own working directory, so a relative
//! path means nothing to it. The shim was started by the MCP client, in the
//! directory the user works in, so it resolves relative paths against its
//! own working directory and `~` against its `$HOME`. It does not
//! canonicalize: the daemon checks its policy on the real path itself, and
//! resolving symlinks here would hide what the caller named.
//!
//! The daemon refuses `.` and `..` in local paths. `.` is dropped here.
//! A leading `..` of a relative path steps out of the working directory,
//! which is a physical path (getcwd has no symlinks in it), so it is
//! resolved here; any other `..` is left for the daemon to refuse, since
//! the directory before it may be a symlink.

use std::io;
use std::path::{Component, Path, PathBuf};

use sshmcp_proto::Error;

/// `path` (the value of argument `argument`) made absolute against the
/// shim's working directory and home.
pub fn resolve(argument: &str, path: &str) -> Result<String, Error> {
    resolve_in(
        argument,
        path,
        std::env::current_dir,
        std::env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(PathBuf::from),
    )
}

/// [`resolve`] with the working directory and home given.
fn resolve_in(
    argument: &str,
    path: &str,
    cwd: impl FnOnce() -> io::Result<PathBuf>,
    home: Option<PathBuf>,
) -> Result<String, Error> {
    if path.trim().is_empty() {
        return Err(Error::bad_request(format!(
            "`{argument}` is empty: pass a local path (absolute, relative to sshmcp's working \
             directory, or starting with ~/)"
        )));
    }
    let (base, rest) = if path == "~" || path.starts_with("~/") {
        let home = home.ok_or_else(|| {
            Error::bad_request(format!(
                "`{argument}` starts with ~ but sshmcp has no HOME; give an absolute path"
            ))
        })?;
        (home, path.get(2..).unwrap_or(""))
    } else if path.starts_with('~') {
        return Err(Error::bad_request(format!(
            "`{argument}` is {path:?}: ~user is not expanded; give an absolute path"
        )));
    } else if Path::new(path).is_absolute() {
        return Ok(path.to_string());
    } else {
        let cwd = cwd().map_err(|err| {
            Error::bad_request(format!(
                "`{argument}` is relative, but sshmcp cannot tell its working directory \
                 ({err}); give an absolute path"
            ))
        })?;
        (cwd, path)
    };
    let from_cwd = !path.starts_with('~');
    let mut resolved = base;
    let mut leading = true;
    for component in Path::new(rest).components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if leading && from_cwd => {
                resolved.pop();
            }
            other => {
                leading = false;
                resolved.push(other);
            }
        }
    }
    resolved.into_os_string().into_string().map_err(|resolved| {
        Error::bad_request(format!(
            "`{argument}` resolves to {}, which is not valid UTF-8; give an absolute path",
            resolved.to_string_lossy()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve_at(path: &str) -> Result<String, Error> {
        resolve_in(
            "local_path",
            path,
            || Ok(PathBuf::from("/work/project")),
            Some(PathBuf::from("/home/alice")),
        )
    }

    #[test]
    fn absolute_paths_pass_through_untouched() {
        assert_eq!(resolve_at("/srv/./data/../x").unwrap(), "/srv/./data/../x");
    }

    #[test]
    fn relative_paths_resolve_against_the_working_directory() {
        assert_eq!(resolve_at("build/out").unwrap(), "/work/project/build/out");
        assert_eq!(resolve_at("./a/./b/").unwrap(), "/work/project/a/b");
        assert_eq!(resolve_at("../sibling").unwrap(), "/work/sibling");
        assert_eq!(resolve_at("./../../x").unwrap(), "/x");
        assert_eq!(resolve_at("a/../b").unwrap(), "/work/project/a/../b");
        assert_eq!(resolve_at("~/../x").unwrap(), "/home/alice/../x");
        assert_eq!(resolve_at(".").unwrap(), "/work/project");
    }

    #[test]
    fn tilde_expands_to_home() {
        assert_eq!(resolve_at("~").unwrap(), "/home/alice");
        assert_eq!(resolve_at("~/notes.txt").unwrap(), "/home/alice/notes.txt");
    }

    #[test]
    fn other_users_homes_and_empty_paths_are_refused_naming_the_argument() {
        for path in ["~bob/x", "", "  "] {
            let err = resolve_at(path).unwrap_err();
            assert!(
                err.message.contains("`local_path`"),
                "{path}: {}",
                err.message
            );
        }
    }

    #[test]
    fn tilde_without_home_is_refused() {
        let err = resolve_in("local_dir", "~/x", || Ok(PathBuf::from("/")), None).unwrap_err();
        assert!(err.message.contains("HOME"), "{}", err.message);
    }
}
