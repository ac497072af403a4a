//! `hosts`: configured hosts with their pool state.

use sshmcp_proto::HostState;

use crate::state::Daemon;

pub fn run(daemon: &Daemon) -> Vec<HostState> {
    daemon.pool.host_states()
}
