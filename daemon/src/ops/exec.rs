//! `exec`: run a command on a host, as `ssh host 'command'` would.

use std::time::Duration;

use sshmcp_proto::{Error, ExecOutput, ExecRequest};

use super::{Context, Op};
use crate::command::{self, Command};

impl Op for ExecRequest {
    type Output = ExecOutput;

    /// Both streams may be kept in full, and the reply holds them twice
    /// more on its way out (encoded, then in the socket's write buffer).
    fn reservation(&self, max_frame: usize) -> u64 {
        max_output(self, max_frame).saturating_mul(2 * 3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<ExecOutput, Error> {
        // `Request::validate` has checked the arguments: the timeout is
        // within a day and the output cap fits one reply.
        let max_frame = ctx.daemon.config().daemon.max_frame;
        let command = Command {
            host: ctx.host()?,
            line: &self.command,
            stdin: self.stdin.as_deref().unwrap_or_default(),
            timeout: Duration::from_secs(
                self.timeout_secs
                    .unwrap_or(ExecRequest::DEFAULT_TIMEOUT_SECS),
            ),
            max_output: max_output(&self, max_frame),
            started: ctx.started,
        };
        command::run(command, ctx.cancel).await
    }
}

/// The bytes per stream `req` keeps, within what one reply frame carries.
fn max_output(req: &ExecRequest, max_frame: usize) -> u64 {
    req.max_output_bytes
        .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT)
        .min(sshmcp_proto::max_output_per_stream(max_frame))
}
