//! The `hosts` tool: which hosts the model may name, and how warm each is.

use schemars::JsonSchema;
use serde::Deserialize;
use sshmcp_proto::{Error, HostList, Request, Response};

use super::{Effect, Tool};

/// The `hosts` tool.
pub struct Hosts;

/// The `hosts` tool takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostsArgs {}

impl Tool for Hosts {
    const NAME: &'static str = "hosts";
    const DESCRIPTION: &'static str = "The hosts you may use, with pool state; pass an \
        `alias` as `host`.";
    const EFFECT: Effect = Effect {
        open_world: false,
        ..Effect::READS
    };
    type Args = HostsArgs;
    type Output = HostList;
    type Asked = ();

    fn request(HostsArgs {}: HostsArgs) -> Result<(Request, ()), Error> {
        Ok((Request::Hosts, ()))
    }

    fn answer((): (), response: Response) -> Option<HostList> {
        match response {
            Response::Hosts(list) => Some(list),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::{ConnState, HostState};

    use super::*;
    use crate::tools::text;

    fn host(alias: &str, state: ConnState, last_error: Option<&str>) -> HostState {
        HostState {
            access: "full".into(),
            alias: alias.into(),
            hostname: format!("{alias}.example.com"),
            port: 22,
            user: "alice".into(),
            state,
            connections: 1,
            channels_busy: 2,
            channels_idle: 8,
            last_error: last_error.map(Into::into),
        }
    }

    #[test]
    fn structured_hosts_have_every_field_of_the_contract() {
        let result = HostList {
            ssh_config: "/home/alice/.ssh/config".into(),
            hosts: vec![host("web1", ConnState::CircuitOpen, Some("refused"))],
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({ "ssh_config": "/home/alice/.ssh/config", "hosts": [{
                "alias": "web1", "hostname": "web1.example.com", "port": 22,
                "user": "alice", "state": "circuit-open", "connections": 1,
                "channels_busy": 2, "channels_idle": 8, "last_error": "refused",
                "access": "full",
            }]})
        );
    }

    #[test]
    fn text_is_a_table_with_one_line_per_host() {
        let result = HostList {
            ssh_config: "/home/alice/.ssh/config".into(),
            hosts: vec![
                host("web1", ConnState::Connected, None),
                host("db", ConnState::CircuitOpen, Some("connection refused")),
            ],
        };
        assert_eq!(
            text::render(&result, Hosts::BLOCKS).unwrap(),
            "ssh_config=/home/alice/.ssh/config\n\
             hosts (2): alias hostname port user state connections channels_busy \
             channels_idle last_error access\n\
             web1 web1.example.com 22 alice connected 1 2 8 - full\n\
             db db.example.com 22 alice circuit-open 1 2 8 \"connection refused\" full\n"
        );
    }

    #[test]
    fn no_hosts_is_an_empty_list() {
        let result = HostList {
            ssh_config: "/etc/ssh/hosts".into(),
            hosts: vec![],
        };
        assert_eq!(
            text::render(&result, &[]).unwrap(),
            "ssh_config=/etc/ssh/hosts hosts=[]\n"
        );
    }
}
