//! `hosts`: the configured hosts with their pool state.

use sshmcp_proto::{Error, HostState};

use super::{Context, Op};

/// The `Hosts` request.
pub struct Hosts;

impl Op for Hosts {
    type Output = Vec<HostState>;

    async fn run(self, ctx: &Context<'_>) -> Result<Vec<HostState>, Error> {
        Ok(ctx.daemon.pool.host_states())
    }
}
