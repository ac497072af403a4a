//! `shell_open`: start a persistent shell on a host.

use sshmcp_proto::{Error, ShellOpenRequest, ShellOpened};

use super::{Context, Op};

impl Op for ShellOpenRequest {
    type Output = ShellOpened;

    async fn run(self, ctx: &Context<'_>) -> Result<ShellOpened, Error> {
        ctx.daemon
            .shells
            .open(
                ctx.host()?,
                &self,
                ctx.started,
                ctx.cancel,
                &ctx.daemon.shutdown,
            )
            .await
    }
}
