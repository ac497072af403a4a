//! `shell_exec`: run a command in a persistent shell, as if typed at its
//! prompt; with `sudo`, through sudo inside the shell (see `sudo.rs`).

use sshmcp_proto::{Error, ExecRequest, ShellExecOutput, ShellExecRequest};

use super::{Context, Op};
use crate::sudo::Place;

impl Op for ShellExecRequest {
    type Output = ShellExecOutput;

    /// As `exec`'s: both streams may be kept in full, and the reply holds
    /// them twice more on its way out.
    fn reservation(&self, max_frame: usize) -> u64 {
        max_output(self, max_frame).saturating_mul(2 * 3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<ShellExecOutput, Error> {
        let shell = ctx.daemon.shells.get(&self.shell_id)?;
        let max = max_output(&self, ctx.daemon.config().daemon.max_frame);
        let sudo = if self.sudo {
            let config = ctx.daemon.config();
            Some(ctx.daemon.sudo.conversation(
                &config.sudo,
                &shell.host,
                &self.command,
                self.sudo_user.as_deref(),
                Place::Shell,
            )?)
        } else {
            None
        };
        shell
            .exec(self, sudo, max, ctx.started, ctx.cancel, ctx.progress)
            .await
    }
}

/// The bytes per stream `req` keeps: as asked, else exec's default, within
/// what one reply frame carries.
fn max_output(req: &ShellExecRequest, max_frame: usize) -> u64 {
    req.max_output_bytes
        .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT)
        .min(sshmcp_proto::max_output_per_stream(max_frame))
}
