//! The `rename` tool: move a remote path.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, RenameRequest, Request, Response};

use super::attrs::remote_path;
use super::{expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// The `rename` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote path to move: absolute, or relative to the remote user's home (`~/` works too).
    pub from: String,
    /// New remote path, on the same host.
    pub to: String,
    /// Replace `to` if it exists. Default false: an existing `to` is an `already_exists` error.
    #[serde(default)]
    pub overwrite: bool,
}

impl RenameArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<RenameRequest, Error> {
        require_host(&self.host)?;
        require("from", &self.from, "the remote path to move")?;
        require("to", &self.to, "the new remote path")?;
        Ok(RenameRequest {
            host: self.host,
            from: remote_path(&self.from),
            to: remote_path(&self.to),
            overwrite: self.overwrite,
        })
    }
}

/// The `rename` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RenameResult {
    /// The old path, which no longer exists.
    pub from: String,
    /// The new path.
    pub to: String,
}

#[tool_router(router = rename_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "rename",
        description = "Move or rename a file, symlink or directory on a remote host over SFTP, \
            within that host. If `to` exists the call fails with `already_exists` unless \
            `overwrite` is true, which replaces it (atomically where the server supports it). \
            Paths are absolute or relative to the remote user's home.",
        annotations(
            title = "Move a remote path",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<RenameResult>()
    )]
    async fn rename(
        &self,
        Parameters(args): Parameters<RenameArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let result = RenameResult {
            from: request.from.clone(),
            to: request.to.clone(),
        };
        let reply = self.forward(Request::Rename(request), &context).await;
        match expect(reply, "rename", |response| {
            matches!(response, Response::Ok).then_some(())
        }) {
            Ok(()) => {
                let text = format!("renamed {} to {}", result.from, result.to);
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_paths_are_required_and_named() {
        let args = |from: &str, to: &str| RenameArgs {
            host: "h".into(),
            from: from.into(),
            to: to.into(),
            overwrite: false,
        };
        let err = args("", "b").into_request().unwrap_err();
        assert!(err.message.contains("`from`"), "{}", err.message);
        let err = args("a", " ").into_request().unwrap_err();
        assert!(err.message.contains("`to`"), "{}", err.message);
        assert_eq!(args("~/a", "/b").into_request().unwrap().from, "a");
    }
}
