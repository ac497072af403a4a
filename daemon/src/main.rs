//! `sshmcpd`: the sshmcp daemon. It keeps warm SSH connections to the
//! user's hosts and serves every MCP shim and `sshmcpctl` over one Unix
//! socket.

mod config;
mod connection;
mod dispatch;
mod files;
mod hosts;
mod ops;
mod pool;
mod server;
mod state;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

use clap::Parser;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use config::Config;
use hosts::HostTable;
use pool::{HostPool, PoolSettings};
use state::Daemon;
use stats::{Recorder, Registry};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// The sshmcp daemon: warm SSH connections shared by every MCP client.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Config file (TOML). Default: $XDG_CONFIG_HOME/sshmcp/config.toml,
    /// then /etc/sshmcp/config.toml, else built-in defaults.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Socket path (overrides the config and SSHMCP_SOCKET).
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Validate the config and the ssh config, print the effective config, and exit.
    #[arg(long)]
    check_config: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("sshmcpd=info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sshmcpd: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    let config_path = args.config.or_else(Config::default_path);
    let config = match &config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let ssh_config_path = config
        .ssh
        .config
        .clone()
        .unwrap_or_else(HostTable::default_path);
    let table = HostTable::load(&ssh_config_path).map_err(|e| e.to_string())?;
    for alias in &config.pool.warm {
        if !table.aliases().contains(alias) {
            return Err(format!(
                "[pool] warm names `{alias}`, which is not a Host alias in {}",
                ssh_config_path.display()
            ));
        }
    }
    let socket = args
        .socket
        .or_else(|| config.daemon.socket.clone())
        .unwrap_or_else(sshmcp_proto::default_socket_path);

    if args.check_config {
        println!(
            "# config: {}",
            config_path
                .as_ref()
                .map_or("built-in defaults".into(), |p| p.display().to_string())
        );
        println!(
            "# ssh config: {} ({} hosts)",
            ssh_config_path.display(),
            table.aliases().len()
        );
        println!("# socket: {}", socket.display());
        print!("{}", config.to_toml());
        return Ok(());
    }

    let workers = match config.daemon.worker_threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("sshmcpd-worker")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;

    let registry = Arc::new(Registry::default());
    metrics::set_global_recorder(Recorder(registry.clone()))
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;

    runtime.block_on(async move {
        let listener = server::bind(&socket).map_err(|e| e.to_string())?;
        let pool = HostPool::new(&table, PoolSettings::from_config(&config), registry.clone());
        let policy = files::policy::LocalPolicy::from_config(&config, config_path.as_deref());
        let daemon = Arc::new(Daemon {
            policy,
            inflight: Semaphore::new(config.limits.max_inflight as usize),
            config,
            config_path,
            socket: socket.clone(),
            pool,
            registry,
            started: Instant::now(),
            clients: AtomicU32::new(0),
            shutdown: CancellationToken::new(),
        });
        tracing::info!(
            socket = %socket.display(),
            hosts = table.aliases().len(),
            ssh_config = %table.path().display(),
            "sshmcpd {} listening",
            env!("CARGO_PKG_VERSION")
        );
        spawn_warmup(&daemon);
        spawn_reaper(&daemon);
        let accept = tokio::spawn(server::accept_loop(daemon.clone(), listener));
        wait_for_signal().await;
        tracing::info!("shutting down");
        daemon.shutdown.cancel();
        let _ = accept.await;
        let _ = std::fs::remove_file(&socket);
        let grace = Instant::now() + SHUTDOWN_GRACE;
        while daemon.inflight.available_permits() < daemon.config.limits.max_inflight as usize
            && Instant::now() < grace
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.pool.close_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    })
}

fn spawn_warmup(daemon: &Arc<Daemon>) {
    for alias in daemon.config.pool.warm.clone() {
        let daemon = daemon.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            match daemon.pool.warm(&alias, deadline).await {
                Ok(()) => tracing::info!(host = %alias, "warmed up"),
                Err(e) => tracing::warn!(host = %alias, "warm-up failed: {}", e.message),
            }
        });
    }
}

fn spawn_reaper(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    let every = (Duration::from_secs(daemon.config.pool.idle_timeout_secs) / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => daemon.pool.reap_idle(),
                () = daemon.shutdown.cancelled() => break,
            }
        }
    });
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop the daemon with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
