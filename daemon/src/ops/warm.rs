//! `warm` and `drain`: open a host's connection ahead of use, or close
//! its idle ones.

use std::time::Instant;

use sshmcp_proto::Error;

use crate::state::Daemon;

pub async fn warm(daemon: &Daemon, host: &str) -> Result<(), Error> {
    let deadline = Instant::now() + daemon.config().queue_timeout();
    daemon.pool.warm(host, deadline).await
}

pub fn drain(daemon: &Daemon, host: &str) -> Result<(), Error> {
    daemon.pool.drain(host)
}
