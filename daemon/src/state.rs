//! What every part of the daemon shares while it runs.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::audit::AuditLog;
use crate::cache::Cache;
use crate::config::Config;
use crate::files::policy::LocalPolicy;
use crate::jobs::Jobs;
use crate::memory::Memory;
use crate::pool::HostPool;
use crate::rate::HostRates;
use crate::shells::Shells;
use crate::stats::Registry;
use crate::sudo::Passwords;

/// Connections kept beyond `[daemon] max_clients` for `sshmcpctl`, so an
/// admin can still see what a full daemon is doing. They may only send
/// admin requests.
pub const ADMIN_SLOTS: usize = 4;

/// Slots for client connections: `[daemon] max_clients` of them, and
/// [`ADMIN_SLOTS`] more for admins once those are taken. A connection holds
/// its slot as a semaphore permit for as long as it lives, so a task that
/// ends any way at all (a panic included) gives it back.
pub struct ClientSlots {
    regular: Arc<Semaphore>,
    admin: Arc<Semaphore>,
    max: usize,
}

/// One connection's slot; dropping it frees the slot.
pub struct ClientSlot {
    /// Past `max_clients`: the connection may send admin requests only.
    pub admin_only: bool,
    _permit: OwnedSemaphorePermit,
}

impl ClientSlots {
    fn new(max_clients: usize) -> Self {
        ClientSlots {
            regular: Arc::new(Semaphore::new(max_clients)),
            admin: Arc::new(Semaphore::new(ADMIN_SLOTS)),
            max: max_clients,
        }
    }

    /// A slot for a new connection: a regular one while any is free, else
    /// an admin one; `None` when every slot is taken.
    pub fn take(&self) -> Option<ClientSlot> {
        let slot = |admin_only| {
            move |_permit| ClientSlot {
                admin_only,
                _permit,
            }
        };
        (self.regular.clone().try_acquire_owned().map(slot(false)))
            .or_else(|_| self.admin.clone().try_acquire_owned().map(slot(true)))
            .ok()
    }

    /// Connections open now.
    pub fn open(&self) -> u32 {
        let regular = self.max - self.regular.available_permits();
        let admin = ADMIN_SLOTS - self.admin.available_permits();
        (regular + admin) as u32
    }
}

/// The daemon's shared state, one per process.
pub struct Daemon {
    /// The config in force; replaced whole on reload (SIGHUP,
    /// `sshmcpctl reload`). Read it through [`Daemon::config`].
    config: RwLock<Arc<Config>>,
    /// The host policy of the config in force, compiled with it.
    host_policy: RwLock<Arc<crate::policy::Policy>>,
    /// The config file in force; `None` for built-in defaults.
    pub config_path: Option<PathBuf>,
    pub socket: PathBuf,
    pub pool: HostPool,
    pub registry: Arc<Registry>,
    pub memory: Arc<Memory>,
    /// Answers kept for reads that can be served again.
    pub cache: Arc<Cache>,
    /// Commands running on after their calls returned.
    pub jobs: Jobs,
    /// Persistent shells (`shell_open`).
    pub shells: Shells,
    /// Sudo passwords from the hosts' password commands, kept briefly.
    pub sudo: Arc<Passwords>,
    /// Per-host requests-per-second buckets, when `[limits] host_rps` is set.
    pub host_rates: Option<HostRates>,
    /// The record of every request that touches a host or changes something.
    pub audit: AuditLog,
    pub started: Instant,
    /// Client connections open now, each holding a slot.
    pub clients: ClientSlots,
    /// Hosts being warmed up now.
    pub warming: AtomicU32,
    /// Bounds requests in progress across all clients.
    pub inflight: Semaphore,
    /// Cancelled when the daemon begins to shut down.
    pub shutdown: CancellationToken,
    /// Serialises reloads (SIGHUP and `Reload` requests).
    pub reload_lock: tokio::sync::Mutex<()>,
    /// This daemon, for work that outlives a borrowed `&Daemon` (warm-ups
    /// a reload starts).
    me: Weak<Daemon>,
}

impl Daemon {
    pub fn new(
        config: Config,
        config_path: Option<PathBuf>,
        socket: PathBuf,
        pool: HostPool,
        registry: Arc<Registry>,
        memory: Arc<Memory>,
    ) -> Arc<Daemon> {
        let cache = Arc::new(Cache::new(
            &config.cache,
            memory.limit(),
            sshmcp_proto::max_read_per_reply(config.daemon.max_frame),
        ));
        let host_rates = HostRates::new(&config.limits);
        let audit = AuditLog::new(&config.audit, crate::jobs::state_dir().as_deref());
        audit.record_start();
        let ended = cache.clone();
        let jobs = Jobs::new(
            &config.jobs,
            crate::jobs::state_dir().as_deref(),
            Arc::new(move |alias: &str| ended.host_changed(alias, "job")),
        );
        let changed = cache.clone();
        let shells = Shells::new(
            &config.shells,
            Arc::new(move |alias: &str| changed.host_changed(alias, "shell_exec")),
        );
        let shed = cache.clone();
        memory.register_shedder_first("response cache", Box::new(move || shed.shed()));
        Arc::new_cyclic(|me| Daemon {
            me: me.clone(),
            inflight: Semaphore::new(config.limits.max_inflight as usize),
            clients: ClientSlots::new(config.daemon.max_clients),
            host_policy: RwLock::new(Arc::new(crate::policy::Policy::new(&config.policy))),
            config: RwLock::new(Arc::new(config)),
            config_path,
            socket,
            pool,
            registry,
            memory,
            cache,
            host_rates,
            audit,
            jobs,
            shells,
            sudo: Arc::default(),
            started: Instant::now(),
            warming: AtomicU32::new(0),
            shutdown: CancellationToken::new(),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// This daemon as an `Arc`, for tasks that outlive the caller's borrow.
    pub fn arc(&self) -> Option<Arc<Daemon>> {
        self.me.upgrade()
    }

    /// Connect `aliases` now, each on its own task.
    pub fn spawn_warmup(&self, aliases: Vec<String>) {
        for alias in aliases {
            let Some(daemon) = self.arc() else {
                return;
            };
            daemon.warming.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                match daemon.pool.warm(&alias, deadline).await {
                    Ok(()) => tracing::info!(host = %alias, "warmed up"),
                    Err(e) => tracing::warn!(host = %alias, "warm-up failed: {}", e.message),
                }
                daemon.warming.fetch_sub(1, Ordering::Relaxed);
            });
        }
    }

    /// Which local paths clients may have the daemon read and write, as
    /// the config in force says.
    pub fn policy(&self) -> LocalPolicy {
        LocalPolicy::from_config(&self.config(), self.config_path.as_deref())
    }

    /// The config in force now. Cheap (one `Arc` clone); hold it for the
    /// length of one decision, not across a reload.
    pub fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Put `config` in force (after a reload validated it).
    pub fn set_config(&self, config: Config) {
        let policy = Arc::new(crate::policy::Policy::new(&config.policy));
        *self.host_policy.write().unwrap_or_else(|p| p.into_inner()) = policy;
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
    }

    /// The host policy in force (`[policy.hosts]`, `[[policy.callers]]`).
    pub fn host_policy(&self) -> Arc<crate::policy::Policy> {
        self.host_policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the daemon is not healthy; empty when it is.
    pub fn degraded_reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(memory) = self.memory.degraded_reason() {
            reasons.push(memory);
        }
        if let Some(fds) = crate::resources::FdUsage::now().degraded_reason() {
            reasons.push(fds);
        }
        if let Some(audit) = self.audit.failure() {
            reasons.push(format!("audit log failing: {audit}"));
        }
        let open: Vec<String> = self
            .pool
            .host_states()
            .into_iter()
            .filter(|h| h.state == sshmcp_proto::ConnState::CircuitOpen)
            .map(|h| h.alias)
            .collect();
        if !open.is_empty() {
            reasons.push(format!("circuit open for {}", open.join(", ")));
        }
        reasons
    }
}
