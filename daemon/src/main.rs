//! `sshmcpd`: the sshmcp daemon. It keeps warm SSH connections to the
//! user's hosts and serves every MCP shim and `sshmcpctl` over one Unix
//! socket.

mod audit;
mod cache;
mod command;
mod config;
mod connection;
mod dispatch;
mod files;
mod gate;
mod health;
mod hosts;
mod jobs;
mod memory;
mod metrics_http;
mod ops;
mod output;
mod policy;
mod pool;
mod progress;
mod rate;
mod reload;
mod resources;
mod runtime;
mod server;
mod shells;
mod state;
mod stats;
mod sudo;
mod systemd;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;

use config::Config;
use memory::Memory;
use pool::{HostPool, PoolSettings};
use reload::Loaded;
use state::Daemon;
use stats::Registry;

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
    raise_fd_limit();
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
    let Loaded {
        config,
        ssh_config_path,
        table,
    } = reload::load(config_path.as_deref())?;
    let socket = args
        .socket
        .or_else(|| config.daemon.socket.clone())
        .unwrap_or_else(sshmcp_proto::daemon_socket_path);

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

    // Before any thread exists: the socket systemd passed, if any.
    let inherited = systemd::inherited_listener()?;
    let runtime = runtime::build(config.daemon.worker_threads, &config.daemon.pin)
        .map_err(|e| format!("cannot start the runtime: {e}"))?;

    let registry = Arc::new(Registry::default());
    let metrics_addr = config.metrics.listen_addr();
    let scrape = stats::install(registry.clone(), metrics_addr.is_some())?;
    let memory = Memory::new(config.daemon.memory_limit.0);

    runtime.block_on(async move {
        let mut signals = Signals::install()?;
        let metrics_listener = match metrics_addr {
            Some(addr) => Some(metrics_http::bind(addr).await?),
            None => None,
        };
        // A socket systemd passed is systemd's to remove; one we bind is ours.
        let (listener, socket, owned) = match inherited {
            Some(std_listener) => {
                let path = std_listener
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(PathBuf::from))
                    .unwrap_or(socket);
                let listener = tokio::net::UnixListener::from_std(std_listener)
                    .map_err(|e| format!("cannot use the socket systemd passed: {e}"))?;
                tracing::info!(socket = %path.display(), "using the socket passed by systemd");
                (listener, path, false)
            }
            None => (
                server::bind(&socket).map_err(|e| e.to_string())?,
                socket,
                true,
            ),
        };
        let pool = HostPool::new(&table, PoolSettings::from_config(&config), registry.clone());
        let warm = config.pool.warm.clone();
        let daemon = Daemon::new(
            config,
            config_path,
            socket.clone(),
            pool,
            registry,
            memory.clone(),
        );
        tracing::info!(
            socket = %socket.display(),
            hosts = table.aliases().len(),
            ssh_config = %table.path().display(),
            memory_limit = %memory::mib(memory.limit()),
            "sshmcpd {} listening",
            env!("CARGO_PKG_VERSION")
        );
        daemon.spawn_warmup(warm);
        daemon.jobs.restore(&daemon);
        spawn_reaper(&daemon);
        tokio::spawn(memory.watch(daemon.shutdown.clone()));
        health::spawn_sampler(&daemon);
        if let (Some(listener), Some(handle)) = (metrics_listener, scrape) {
            tokio::spawn(metrics_http::serve(daemon.clone(), listener, handle));
        }
        let accept = tokio::spawn(server::accept_loop(daemon.clone(), listener));
        systemd::ready(&daemon);
        systemd::spawn_heartbeat(&daemon);
        while let Signal::Reload = signals.next().await {
            let _ = reload::reload(&daemon).await;
        }
        tracing::info!("shutting down");
        systemd::stopping();
        daemon.shutdown.cancel();
        let _ = accept.await;
        if owned {
            let _ = std::fs::remove_file(&socket);
        }
        let max_inflight = daemon.config().limits.max_inflight as usize;
        let grace = Instant::now() + SHUTDOWN_GRACE;
        while daemon.inflight.available_permits() < max_inflight && Instant::now() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        daemon.pool.close_all();
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(())
    })
}

/// Every pooled connection is a descriptor: take all the hard limit
/// allows, and say how many, since running out shows up far from here.
fn raise_fd_limit() {
    match resources::raise_fd_limit() {
        Ok(raise) => tracing::info!(
            limit = raise.after,
            was = raise.before,
            "open-file limit (soft RLIMIT_NOFILE) set to the hard limit"
        ),
        Err(e) => tracing::warn!("cannot raise the open-file limit (RLIMIT_NOFILE): {e}"),
    }
}

fn spawn_reaper(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    let every = (Duration::from_secs(daemon.config().pool.idle_timeout_secs) / 4)
        .clamp(Duration::from_secs(1), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    daemon.pool.reap_idle();
                    let spools = daemon.jobs.reap();
                    jobs::Jobs::clean_up(&daemon, spools);
                    if let Some(rates) = &daemon.host_rates {
                        rates.tidy();
                    }
                }
                () = daemon.shutdown.cancelled() => break,
            }
        }
    });
}

enum Signal {
    Reload,
    Stop,
}

/// SIGTERM/SIGINT (stop) and SIGHUP (reload), installed once so that no
/// signal is missed while a reload runs.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, name: &str| {
            signal(kind).map_err(|e| format!("cannot install the {name} handler: {e}"))
        };
        Ok(Signals {
            term: install(SignalKind::terminate(), "SIGTERM")?,
            int: install(SignalKind::interrupt(), "SIGINT")?,
            hup: install(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}
