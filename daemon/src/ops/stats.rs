//! `stats`: per-host pool counters, per-op latency percentiles and the
//! process's resources.

use sshmcp_proto::Error;

use super::{Context, Op};

/// The `Stats` request.
pub struct Stats;

impl Op for Stats {
    type Output = sshmcp_proto::Stats;

    async fn run(self, ctx: &Context<'_>) -> Result<sshmcp_proto::Stats, Error> {
        let daemon = ctx.daemon;
        Ok(sshmcp_proto::Stats {
            cache: daemon.cache.stats(),
            uptime_ms: daemon.started.elapsed().as_millis() as u64,
            clients: daemon.clients.open(),
            hosts: daemon.pool.host_stats(),
            ops: daemon.registry.op_stats(),
            resources: crate::resources::collect(&daemon.memory),
        })
    }
}
