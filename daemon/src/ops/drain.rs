//! `drain`: close a host's idle connections; busy ones close when their
//! work ends.

use sshmcp_proto::Error;

use super::{Context, Op};

/// The `Drain` request; its host is the one the dispatcher resolved.
pub struct Drain;

impl Op for Drain {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        ctx.host()?.drain();
        Ok(())
    }
}
