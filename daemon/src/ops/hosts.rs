//! `hosts`: the ssh config in use and its hosts with their pool state.

use sshmcp_proto::{Error, HostList};

use super::{Context, Op};

/// The `Hosts` request.
pub struct Hosts;

impl Op for Hosts {
    type Output = HostList;

    async fn run(self, ctx: &Context<'_>) -> Result<HostList, Error> {
        let config = ctx.daemon.config();
        Ok(HostList {
            ssh_config: crate::reload::ssh_config_path(&config)
                .display()
                .to_string(),
            hosts: {
                let policy = ctx.daemon.host_policy();
                let caller = crate::gate::caller_id(ctx.caller);
                let mut hosts = ctx.daemon.pool.host_states();
                for host in &mut hosts {
                    host.access = policy.host(&host.alias, &caller).access.to_string();
                }
                hosts
            },
        })
    }
}
