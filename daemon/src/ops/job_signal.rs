//! `job_signal`: INT, TERM, KILL or HUP to a job's process group.

use sshmcp_proto::{Error, JobSignalRequest, JobState};

use super::{Context, Op};

impl Op for JobSignalRequest {
    type Output = JobState;

    async fn run(self, ctx: &Context<'_>) -> Result<JobState, Error> {
        ctx.daemon
            .jobs
            .get(&self.job_id)?
            .signal(&self.signal)
            .await
    }
}
