//! `status` and `stats`: what the daemon says about itself.

use std::sync::atomic::Ordering;

use sshmcp_proto::{PROTO_VERSION, Stats, Status};

use crate::state::Daemon;

pub fn status(daemon: &Daemon) -> Status {
    Status {
        daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        proto_version: PROTO_VERSION,
        pid: std::process::id(),
        uptime_ms: daemon.started.elapsed().as_millis() as u64,
        socket: daemon.socket.display().to_string(),
        config: daemon.config_path.as_ref().map(|p| p.display().to_string()),
        clients: daemon.clients.load(Ordering::Relaxed),
        hosts: daemon.pool.aliases().len() as u32,
        connections: daemon.pool.connection_count(),
        degraded: match daemon.degraded_reasons() {
            reasons if reasons.is_empty() => None,
            reasons => Some(reasons.join("; ")),
        },
    }
}

pub fn stats(daemon: &Daemon) -> Stats {
    Stats {
        uptime_ms: daemon.started.elapsed().as_millis() as u64,
        clients: daemon.clients.load(Ordering::Relaxed),
        hosts: daemon.pool.host_stats(),
        ops: daemon.registry.op_stats(),
        resources: crate::resources::collect(&daemon.memory),
    }
}
