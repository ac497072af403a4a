//! `shell_close`: end a persistent shell.

use sshmcp_proto::{Error, ShellCloseRequest};

use super::{Context, Op};

impl Op for ShellCloseRequest {
    type Output = ();

    async fn run(self, ctx: &Context<'_>) -> Result<(), Error> {
        ctx.daemon.shells.close(&self.shell_id).await
    }
}
