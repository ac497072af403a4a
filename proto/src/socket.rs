//! Where the daemon's socket is: one rule, used by the daemon that binds it
//! and by the shim and ctl that look for it, so the two sides agree.
//!
//! The daemon binds one path: `SSHMCP_SOCKET`, else
//! `$XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock`, else, for a user whose login
//! session has a runtime directory, `/run/user/$UID/sshmcp/sshmcpd.sock`,
//! else the system instance's `/run/sshmcp/sshmcpd.sock`.
//!
//! A client cannot trust its own environment to say which of these the
//! daemon chose: MCP hosts start the shim with only HOME, LOGNAME, PATH,
//! SHELL, TERM and USER (the MCP SDKs' stdio clients pass nothing else), so a
//! shim started by one never sees `XDG_RUNTIME_DIR`. Clients therefore try
//! every place a daemon of theirs could be, in the daemon's order, and
//! connect to the first that answers.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the socket path for every binary.
pub const SOCKET_ENV: &str = "SSHMCP_SOCKET";

/// The system instance's socket (`sshmcpd-system.socket`).
pub const SYSTEM_SOCKET: &str = "/run/sshmcp/sshmcpd.sock";

/// The socket's path inside a user's runtime directory.
const IN_RUNTIME_DIR: &str = "sshmcp/sshmcpd.sock";

/// Where logind puts each logged-in user's runtime directory; what
/// `XDG_RUNTIME_DIR` names in a login session.
const USER_RUNTIME_ROOT: &str = "/run/user";

/// The path the daemon binds when neither `--socket` nor its config names
/// one. See the module doc for the order.
pub fn daemon_socket_path() -> PathBuf {
    daemon_socket_path_in(&Environment::current())
}

/// Every path a client tries when `--socket` is not given, in order: just
/// `SSHMCP_SOCKET` when it is set (an explicit choice is not second-guessed),
/// else the runtime directory from `XDG_RUNTIME_DIR`, the login session's
/// `/run/user/$UID`, and the system instance's path.
pub fn client_socket_candidates() -> Vec<PathBuf> {
    client_socket_candidates_in(&Environment::current())
}

/// What the choice depends on, gathered once so the rule can be tested
/// without touching the process's environment.
#[derive(Debug, Clone, Default)]
struct Environment {
    socket: Option<OsString>,
    xdg_runtime_dir: Option<OsString>,
    uid: u32,
    /// `/run/user/$UID` exists, is a directory and belongs to `uid`.
    user_runtime_dir_is_ours: bool,
}

impl Environment {
    fn current() -> Self {
        let uid = current_uid();
        let ours = std::fs::metadata(user_runtime_dir(uid))
            .is_ok_and(|meta| meta.is_dir() && meta.uid() == uid);
        Environment {
            socket: non_empty_var(SOCKET_ENV),
            xdg_runtime_dir: non_empty_var("XDG_RUNTIME_DIR"),
            uid,
            user_runtime_dir_is_ours: ours,
        }
    }
}

fn daemon_socket_path_in(env: &Environment) -> PathBuf {
    if let Some(socket) = &env.socket {
        return socket.into();
    }
    if let Some(dir) = &env.xdg_runtime_dir {
        return Path::new(dir).join(IN_RUNTIME_DIR);
    }
    // Started outside a login session's environment (from cron, a bare
    // `sudo -u`, an MCP host): the session's runtime directory is still the
    // place its user's clients look first. Only one logind made for us,
    // though; anything else there is not ours to create sockets in.
    if env.user_runtime_dir_is_ours {
        return user_runtime_dir(env.uid).join(IN_RUNTIME_DIR);
    }
    SYSTEM_SOCKET.into()
}

fn client_socket_candidates_in(env: &Environment) -> Vec<PathBuf> {
    if let Some(socket) = &env.socket {
        return vec![socket.into()];
    }
    let mut candidates = Vec::with_capacity(3);
    if let Some(dir) = &env.xdg_runtime_dir {
        candidates.push(Path::new(dir).join(IN_RUNTIME_DIR));
    }
    // Listed whether or not the directory exists, so that a "not running"
    // error shows every place that was looked at.
    let session = user_runtime_dir(env.uid).join(IN_RUNTIME_DIR);
    if !candidates.contains(&session) {
        candidates.push(session);
    }
    candidates.push(SYSTEM_SOCKET.into());
    candidates
}

fn user_runtime_dir(uid: u32) -> PathBuf {
    Path::new(USER_RUNTIME_ROOT).join(uid.to_string())
}

fn non_empty_var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(socket: Option<&str>, xdg: Option<&str>, ours: bool) -> Environment {
        Environment {
            socket: socket.map(OsString::from),
            xdg_runtime_dir: xdg.map(OsString::from),
            uid: 1000,
            user_runtime_dir_is_ours: ours,
        }
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn sshmcp_socket_is_the_only_candidate_and_the_daemons_path() {
        let env = env(Some("/tmp/x.sock"), Some("/run/user/1000"), true);
        assert_eq!(client_socket_candidates_in(&env), paths(&["/tmp/x.sock"]));
        assert_eq!(daemon_socket_path_in(&env), PathBuf::from("/tmp/x.sock"));
    }

    #[test]
    fn a_login_session_daemon_binds_its_runtime_dir_and_clients_look_there_first() {
        let env = env(None, Some("/run/user/1000"), true);
        assert_eq!(
            daemon_socket_path_in(&env),
            PathBuf::from("/run/user/1000/sshmcp/sshmcpd.sock")
        );
        assert_eq!(
            client_socket_candidates_in(&env),
            paths(&["/run/user/1000/sshmcp/sshmcpd.sock", SYSTEM_SOCKET])
        );
    }

    #[test]
    fn a_client_with_a_trimmed_environment_still_looks_in_the_session_runtime_dir() {
        let env = env(None, None, false);
        assert_eq!(
            client_socket_candidates_in(&env),
            paths(&["/run/user/1000/sshmcp/sshmcpd.sock", SYSTEM_SOCKET])
        );
    }

    #[test]
    fn an_unusual_runtime_dir_is_tried_before_the_session_one() {
        let env = env(None, Some("/tmp/rt"), true);
        assert_eq!(
            client_socket_candidates_in(&env),
            paths(&[
                "/tmp/rt/sshmcp/sshmcpd.sock",
                "/run/user/1000/sshmcp/sshmcpd.sock",
                SYSTEM_SOCKET
            ])
        );
    }

    #[test]
    fn a_daemon_without_xdg_runtime_dir_binds_the_session_dir_only_when_it_is_ours() {
        assert_eq!(
            daemon_socket_path_in(&env(None, None, true)),
            PathBuf::from("/run/user/1000/sshmcp/sshmcpd.sock")
        );
        assert_eq!(
            daemon_socket_path_in(&env(None, None, false)),
            PathBuf::from(SYSTEM_SOCKET)
        );
    }

    #[test]
    fn where_the_daemon_binds_is_always_among_the_client_candidates() {
        for socket in [None, Some("/tmp/x.sock")] {
            for xdg in [None, Some("/run/user/1000"), Some("/tmp/rt")] {
                for ours in [false, true] {
                    let env = env(socket, xdg, ours);
                    let bound = daemon_socket_path_in(&env);
                    assert!(
                        client_socket_candidates_in(&env).contains(&bound),
                        "{env:?}: {}",
                        bound.display()
                    );
                }
            }
        }
    }
}
