//! `drain`: close a host's idle connections; busy ones close when their
//! work ends.

use sshmcp_proto::Error;

use super::{Context, Op};

/// The `Drain` request.
pub struct Drain {
    /// Host alias.
    pub host: String,
}

impl Op for Drain {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        ctx.daemon.pool.drain(&self.host)
    }
}
