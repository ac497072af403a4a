//! The socket: created owner-only, accepted from with a client limit, and
//! removed again on the way out.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;

use crate::connection;
use crate::state::Daemon;

/// Why the daemon could not listen.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("cannot create socket directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "socket directory {} is owned by uid {owner}, not by this user (uid {me}); \
         choose another path with --socket or SSHMCP_SOCKET",
        dir.display()
    )]
    DirOwner { dir: PathBuf, owner: u32, me: u32 },
    #[error("another sshmcpd is already listening on {}; stop it first (`sshmcpctl status` shows its pid)", path.display())]
    InUse { path: PathBuf },
    #[error("cannot listen on {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Bind `path` as a 0600 socket inside a 0700 directory we own.
pub fn bind(path: &Path) -> Result<UnixListener, ListenError> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ListenError::Dir {
            dir: dir.to_owned(),
            source,
        })?;
    let me = connection::current_uid();
    let meta = std::fs::metadata(dir).map_err(|source| ListenError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    if meta.uid() != me {
        return Err(ListenError::DirOwner {
            dir: dir.to_owned(),
            owner: meta.uid(),
            me,
        });
    }
    if meta.mode() & 0o077 != 0 {
        // Someone (or an older umask) left the directory open to others:
        // tighten it, and say so, since it may surprise whoever set it.
        tracing::warn!(
            dir = %dir.display(),
            mode = format!("{:o}", meta.mode() & 0o7777),
            "socket directory was accessible to other users; changed its mode to 0700"
        );
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| ListenError::Dir {
                dir: dir.to_owned(),
                source,
            },
        )?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ListenError::InUse {
                path: path.to_owned(),
            });
        }
        // A stale socket from a daemon that did not exit cleanly.
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|source| ListenError::Bind {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ListenError::Bind {
            path: path.to_owned(),
            source,
        }
    })?;
    Ok(listener)
}

/// Accept clients until shutdown; each is served on its own task.
pub async fn accept_loop(daemon: Arc<Daemon>, listener: UnixListener) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = daemon.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, _)) => {
                tokio::spawn(connection::serve(daemon.clone(), stream));
            }
            Err(e) => {
                // Out of fds or similar: back off briefly rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
