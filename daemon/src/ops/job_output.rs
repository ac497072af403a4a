//! `job_output`: a page of a job's output, long-polling for more if asked.

use sshmcp_proto::{Error, ExecRequest, JobOutput, JobOutputRequest};

use super::{Context, Op};

impl Op for JobOutputRequest {
    type Output = JobOutput;

    /// Both streams' pages (and the `as_exec` answer), held twice more on
    /// the way out.
    fn reservation(&self, max_frame: usize) -> u64 {
        (page_bytes(self, max_frame) + self.as_exec.unwrap_or(0)).saturating_mul(2 * 3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<JobOutput, Error> {
        let job = ctx.daemon.jobs.get(&self.job_id)?;
        let max = page_bytes(&self, ctx.daemon.config().daemon.max_frame);
        Ok(job.output(&self, max, ctx.cancel).await)
    }
}

/// Bytes per stream in one page: as asked, else exec's default, within
/// what one reply carries beside the `as_exec` answer.
fn page_bytes(req: &JobOutputRequest, max_frame: usize) -> u64 {
    let room = sshmcp_proto::max_output_per_stream(max_frame);
    req.max_bytes
        .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT)
        .min(room.saturating_sub(req.as_exec.unwrap_or(0)))
}
