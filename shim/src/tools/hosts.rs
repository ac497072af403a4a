//! The `hosts` tool: which hosts the model may name, and how warm each is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, HostState, Request, Response};

use super::{Effect, Tool};

/// The `hosts` tool.
pub struct Hosts;

/// The `hosts` tool takes no arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostsArgs {}

/// The `hosts` tool's `structuredContent`: the daemon's answer, in an
/// object as MCP wants.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HostsResult {
    pub hosts: Vec<HostState>,
}

impl Tool for Hosts {
    const NAME: &'static str = "hosts";
    const DESCRIPTION: &'static str = "List the hosts in the daemon's ssh config and their \
        pool state. Use an `alias` as `host` in the other tools.";
    const EFFECT: Effect = Effect {
        open_world: false,
        ..Effect::READS
    };
    type Args = HostsArgs;
    type Output = HostsResult;
    type Asked = ();

    fn request(HostsArgs {}: HostsArgs) -> Result<(Request, ()), Error> {
        Ok((Request::Hosts, ()))
    }

    fn answer((): (), response: Response) -> Option<HostsResult> {
        match response {
            Response::Hosts(hosts) => Some(HostsResult { hosts }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::ConnState;

    use super::*;
    use crate::tools::text;

    fn host(alias: &str, state: ConnState, last_error: Option<&str>) -> HostState {
        HostState {
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
        let result = HostsResult {
            hosts: vec![host("web1", ConnState::CircuitOpen, Some("refused"))],
        };
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({ "hosts": [{
                "alias": "web1", "hostname": "web1.example.com", "port": 22,
                "user": "alice", "state": "circuit-open", "connections": 1,
                "channels_busy": 2, "channels_idle": 8, "last_error": "refused",
            }]})
        );
    }

    #[test]
    fn text_is_a_table_with_one_line_per_host() {
        let result = HostsResult {
            hosts: vec![
                host("web1", ConnState::Connected, None),
                host("db", ConnState::CircuitOpen, Some("connection refused")),
            ],
        };
        assert_eq!(
            text::render(&result, Hosts::BLOCKS).unwrap(),
            "hosts (2): alias hostname port user state connections channels_busy \
             channels_idle last_error\n\
             web1 web1.example.com 22 alice connected 1 2 8 -\n\
             db db.example.com 22 alice circuit-open 1 2 8 \"connection refused\"\n"
        );
    }

    #[test]
    fn no_hosts_is_an_empty_list() {
        let result = HostsResult { hosts: vec![] };
        assert_eq!(text::render(&result, &[]).unwrap(), "hosts=[]\n");
    }
}
