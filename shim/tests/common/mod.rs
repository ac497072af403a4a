//! Helpers for the shim's tests that need the real per-user runtime
//! directory, where MCP hosts' shims look for the daemon.

use std::fs::DirBuilder;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde_json::json;
use sshmcp_testkit::{Daemon, Fleet};

/// Tests that look at the real `/run/user/$UID` take turns: one binds a
/// daemon there that another must not find.
static SESSION_RUNTIME_DIR: Mutex<()> = Mutex::new(());

/// The login session's runtime directory for the test's user, made for the
/// test if it is missing (as it is for root outside a login session), and
/// put back as it was afterwards.
pub struct SessionRuntimeDir {
    dir: PathBuf,
    created_dir: bool,
    created_sshmcp: bool,
    _turn: MutexGuard<'static, ()>,
}

impl SessionRuntimeDir {
    pub fn take() -> SessionRuntimeDir {
        let turn = SESSION_RUNTIME_DIR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // SAFETY: getuid cannot fail and has no preconditions.
        let uid = unsafe { libc::getuid() };
        let dir = PathBuf::from(format!("/run/user/{uid}"));
        let created_dir = !dir.exists();
        if created_dir {
            DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot create {} for this test ({e}); run the tests as root or in \
                         a login session",
                        dir.display()
                    )
                });
        }
        let socket = dir.join("sshmcp/sshmcpd.sock");
        // The tests need the place to themselves; a stale socket is fine
        // (the daemon replaces it), a live daemon is not.
        assert!(
            UnixStream::connect(&socket).is_err(),
            "an sshmcpd is listening at {}: stop it to run this test",
            socket.display()
        );
        SessionRuntimeDir {
            created_sshmcp: !dir.join("sshmcp").exists(),
            dir,
            created_dir,
            _turn: turn,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("sshmcp/sshmcpd.sock")
    }
}

impl Drop for SessionRuntimeDir {
    fn drop(&mut self) {
        // Best effort: a leftover empty directory under /run is harmless.
        // The test's daemon may have been killed before removing its socket.
        if self.created_sshmcp {
            let _ = std::fs::remove_dir_all(self.dir.join("sshmcp"));
        } else {
            let _ = std::fs::remove_file(self.socket());
        }
        if self.created_dir {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// A daemon for `fleet` listening at `socket`.
pub fn daemon_at(socket: &Path, fleet: &Fleet) -> Daemon {
    Daemon::start_with_config_text(&format!(
        "[daemon]\nsocket = {}\n\n[ssh]\nconfig = {}\n",
        json!(socket.display().to_string()),
        json!(fleet.ssh_config_path().display().to_string()),
    ))
}
