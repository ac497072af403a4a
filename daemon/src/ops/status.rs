//! `status`: version, pid, uptime, socket, health (see `crate::health`)
//! and the audit log, in one line's worth each.

use sshmcp_proto::{Error, PROTO_VERSION};

use super::{Context, Op};

/// The `Status` request.
pub struct Status;

impl Op for Status {
    type Output = sshmcp_proto::Status;

    async fn run(self, ctx: &Context<'_>) -> Result<sshmcp_proto::Status, Error> {
        let daemon = ctx.daemon;
        Ok(sshmcp_proto::Status {
            daemon_version: env!("CARGO_PKG_VERSION").to_string(),
            proto_version: PROTO_VERSION,
            pid: std::process::id(),
            uptime_ms: daemon.started.elapsed().as_millis() as u64,
            socket: daemon.socket.display().to_string(),
            config: daemon.config_path.as_ref().map(|p| p.display().to_string()),
            clients: daemon.clients.open(),
            hosts: daemon.pool.aliases().len() as u32,
            connections: daemon.pool.connection_count(),
            degraded: match crate::health::reasons(daemon) {
                reasons if reasons.is_empty() => None,
                reasons => Some(reasons.join("; ")),
            },
            audit: Box::new(daemon.audit.status()),
        })
    }
}
