//! `warm`: connect a host now, so the next call finds it warm.

use std::time::Instant;

use sshmcp_proto::Error;

use super::{Context, Op};

/// The `Warm` request; its host is the one the dispatcher resolved.
pub struct Warm;

impl Op for Warm {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        let deadline = Instant::now() + ctx.daemon.config().queue_timeout();
        ctx.host()?.warm(deadline).await
    }
}
