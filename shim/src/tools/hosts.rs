//! The `hosts` tool: which hosts the model may name, and how warm each is.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;
use sshmcp_proto::client::ClientError;
use sshmcp_proto::{ConnState, Error, HostState, Request, Response};

use super::{failure, success, unavailable};
use crate::server::SshMcp;

/// The `hosts` tool's `structuredContent`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct HostsResult {
    /// The hosts in the SSH client config.
    pub hosts: Vec<Host>,
}

/// One configured host and its pool state.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Host {
    /// The name to pass as `host` to the other tools.
    pub alias: String,
    /// The address connected to (`HostName`).
    pub hostname: String,
    pub port: u16,
    /// The remote user logged in as.
    pub user: String,
    pub state: PoolState,
    /// Live SSH connections to this host.
    pub connections: u32,
    /// Sessions running a command or transfer now.
    pub channels_busy: u32,
    /// Free session slots on live connections: a call can start at once.
    pub channels_idle: u32,
    /// The latest failure, when the host has failed since it last worked.
    pub last_error: Option<String>,
}

/// A host's connection state, as the daemon's pool sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PoolState {
    /// No connection; the next call connects first.
    Cold,
    /// A connection is being made.
    Connecting,
    /// At least one live connection: calls start without a handshake.
    Connected,
    /// Connects failed repeatedly; calls fail fast until a cooldown ends.
    CircuitOpen,
}

impl PoolState {
    /// The state's name, as in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PoolState::Cold => "cold",
            PoolState::Connecting => "connecting",
            PoolState::Connected => "connected",
            PoolState::CircuitOpen => "circuit-open",
        }
    }
}

impl From<ConnState> for PoolState {
    fn from(state: ConnState) -> Self {
        match state {
            ConnState::Cold => PoolState::Cold,
            ConnState::Connecting => PoolState::Connecting,
            ConnState::Connected => PoolState::Connected,
            ConnState::CircuitOpen => PoolState::CircuitOpen,
        }
    }
}

impl From<HostState> for Host {
    fn from(host: HostState) -> Self {
        Host {
            alias: host.alias,
            hostname: host.hostname,
            port: host.port,
            user: host.user,
            state: host.state.into(),
            connections: host.connections,
            channels_busy: host.channels_busy,
            channels_idle: host.channels_idle,
            last_error: host.last_error,
        }
    }
}

#[tool_router(router = hosts_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "hosts",
        description = "List the SSH hosts this server can reach: the hosts configured in the \
            user's OpenSSH client config (~/.ssh/config), with the hostname, port and user each \
            resolves to, and the state of its warm connection pool (cold, connecting, \
            connected, circuit-open; live connections; busy and idle sessions; the latest \
            connection error). Pass an `alias` from this list as the `host` argument of the \
            other tools. Reads the local daemon's state only: it never connects to a host.",
        annotations(
            title = "List SSH hosts",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        ),
        output_schema = schema_for_output::<HostsResult>()
    )]
    async fn hosts(&self, context: RequestContext<RoleServer>) -> CallToolResult {
        let mut reply = self.forward(Request::Hosts, &context).await;
        // Listing hosts changes nothing, so a call cut off by a daemon
        // restart can simply be asked again on the new connection.
        if matches!(reply, Err(ClientError::Disconnected(_))) {
            reply = self.forward(Request::Hosts, &context).await;
        }
        match reply {
            Ok(Ok(Response::Hosts(hosts))) => {
                let result = HostsResult {
                    hosts: hosts.into_iter().map(Host::from).collect(),
                };
                let text = render(&result);
                success(&result, text)
            }
            Ok(Ok(other)) => failure(&Error::internal(format!(
                "sshmcpd answered a hosts request with {other:?}"
            ))),
            Ok(Err(error)) => failure(&error),
            Err(error) => unavailable(&error),
        }
    }
}

/// One line per host, for clients that show only text.
fn render(result: &HostsResult) -> String {
    if result.hosts.is_empty() {
        return "No hosts are configured in the SSH client config (~/.ssh/config).".to_string();
    }
    let mut text = String::new();
    for host in &result.hosts {
        let _ = write!(
            text,
            "{}: {}@{}:{} {}, {} connection(s), {} busy / {} idle session(s)",
            host.alias,
            host.user,
            host.hostname,
            host.port,
            host.state.as_str(),
            host.connections,
            host.channels_busy,
            host.channels_idle,
        );
        if let Some(error) = &host.last_error {
            let _ = write!(text, "; last error: {error}");
        }
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn pool_states_serialize_as_the_daemon_names_them() {
        for state in [
            ConnState::Cold,
            ConnState::Connecting,
            ConnState::Connected,
            ConnState::CircuitOpen,
        ] {
            let pool_state = PoolState::from(state);
            assert_eq!(pool_state.as_str(), state.as_str());
            assert_eq!(
                serde_json::to_value(pool_state).unwrap(),
                serde_json::json!(state.as_str())
            );
        }
    }

    #[test]
    fn structured_hosts_have_every_field_of_the_contract() {
        let result = HostsResult {
            hosts: vec![host("web1", ConnState::CircuitOpen, Some("refused")).into()],
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
    fn text_has_one_line_per_host_with_its_last_error() {
        let result = HostsResult {
            hosts: vec![
                host("web1", ConnState::Connected, None).into(),
                host("db", ConnState::CircuitOpen, Some("connection refused")).into(),
            ],
        };
        let text = render(&result);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.starts_with("web1: alice@web1.example.com:22 connected"));
        assert!(text.contains("circuit-open"), "{text}");
        assert!(text.contains("last error: connection refused"), "{text}");
    }

    #[test]
    fn no_hosts_says_where_they_would_come_from() {
        assert!(render(&HostsResult { hosts: vec![] }).contains("~/.ssh/config"));
    }
}
