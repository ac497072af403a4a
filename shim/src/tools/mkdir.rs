//! The `mkdir` tool: make a remote directory.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, MkdirRequest, Request, Response};

use super::attrs::{parse_mode, remote_path};
use super::{expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// The `mkdir` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote directory to make: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// Make missing parent directories too, and succeed if the directory already exists (like `mkdir -p`). Default false.
    #[serde(default)]
    pub parents: bool,
    /// Permission bits as an octal string, e.g. "0755" or "700". Default 0755 less the umask.
    pub mode: Option<String>,
}

impl MkdirArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<MkdirRequest, Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote directory to make")?;
        let mode = self
            .mode
            .as_deref()
            .map(|mode| parse_mode("mode", mode))
            .transpose()?;
        Ok(MkdirRequest {
            host: self.host,
            path: remote_path(&self.path),
            parents: self.parents,
            mode,
        })
    }
}

/// The `mkdir` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MkdirResult {
    /// The directory, which now exists.
    pub path: String,
}

#[tool_router(router = mkdir_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "mkdir",
        description = "Make a directory on a remote host over SFTP. Without `parents` the \
            parent must exist and the directory must not (an existing one is an \
            `already_exists` error); with `parents` missing parents are made too and an \
            existing directory is fine, like `mkdir -p`. `mode` sets permission bits as an \
            octal string (default 0755 less the umask). Paths are absolute or relative to the \
            remote user's home.",
        annotations(
            title = "Make a remote directory",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<MkdirResult>()
    )]
    async fn mkdir(
        &self,
        Parameters(args): Parameters<MkdirArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let path = request.path.clone();
        let reply = self.forward(Request::Mkdir(request), &context).await;
        match expect(reply, "mkdir", |response| {
            matches!(response, Response::Ok).then_some(())
        }) {
            Ok(()) => {
                let text = format!("directory {path} exists now");
                success(&MkdirResult { path }, text)
            }
            Err(result) => result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_parsed_and_tilde_expanded() {
        let request = MkdirArgs {
            host: "h".into(),
            path: "~/a/b".into(),
            parents: true,
            mode: Some("0700".into()),
        }
        .into_request()
        .unwrap();
        assert_eq!(
            request,
            MkdirRequest {
                host: "h".into(),
                path: "a/b".into(),
                parents: true,
                mode: Some(0o700),
            }
        );
    }
}
