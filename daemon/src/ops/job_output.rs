//! `job_output`: a page of a job's output, long-polling for more if asked.

use sshmcp_proto::{Error, ExecRequest, JobOutput, JobOutputRequest};

use super::{Context, Op};

impl Op for JobOutputRequest {
    type Output = JobOutput;

    /// Both streams' pages, held twice more on the way out.
    fn reservation(&self, max_frame: usize) -> u64 {
        page_bytes(self, max_frame).saturating_mul(2 * 3)
    }

    async fn run(self, ctx: &Context<'_>) -> Result<JobOutput, Error> {
        let job = ctx.daemon.jobs.get(&self.job_id)?;
        let max = page_bytes(&self, ctx.daemon.config().daemon.max_frame);
        Ok(job.output(&self, max, ctx.cancel).await)
    }
}

/// Bytes per stream in one page: as asked, else exec's default, within
/// what one reply carries.
fn page_bytes(req: &JobOutputRequest, max_frame: usize) -> u64 {
    req.max_bytes
        .unwrap_or(ExecRequest::DEFAULT_MAX_OUTPUT)
        .min(sshmcp_proto::max_output_per_stream(max_frame))
}
