//! What every part of the daemon shares while it runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Instant;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::files::policy::LocalPolicy;
use crate::pool::HostPool;
use crate::stats::Registry;

/// The daemon's shared state, one per process.
pub struct Daemon {
    pub config: Config,
    /// Which local paths clients may have the daemon read and write.
    pub policy: LocalPolicy,
    /// The config file in force; `None` for built-in defaults.
    pub config_path: Option<PathBuf>,
    pub socket: PathBuf,
    pub pool: HostPool,
    pub registry: Arc<Registry>,
    pub started: Instant,
    /// Client connections open now.
    pub clients: AtomicU32,
    /// Bounds requests in progress across all clients.
    pub inflight: Semaphore,
    /// Cancelled when the daemon begins to shut down.
    pub shutdown: CancellationToken,
}
