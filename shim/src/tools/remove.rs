//! The `remove` tool: delete a remote file, symlink or directory.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, RemoveRequest, Request, Response};

use super::attrs::remote_path;
use super::{expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// The `remove` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote path to delete: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// Delete a directory and everything in it (like `rm -r`). Without it only files, symlinks and empty directories are removed. Default false.
    #[serde(default)]
    pub recursive: bool,
}

impl RemoveArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<RemoveRequest, Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote path to delete")?;
        let path = remote_path(&self.path);
        // `~`, `.` and `/` name the home or the root: never what a model
        // means to delete, and ruinous if it does not mean it.
        if matches!(path.trim_end_matches('/'), "" | "." | "..") {
            return Err(Error::bad_request(format!(
                "`path` is {:?}, the remote home or root directory; refusing to remove it",
                self.path
            )));
        }
        Ok(RemoveRequest {
            host: self.host,
            path,
            recursive: self.recursive,
        })
    }
}

/// The `remove` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RemoveResult {
    /// The path as asked, which no longer exists.
    pub path: String,
    /// Files and symlinks removed.
    pub files: u64,
    /// Directories removed.
    pub dirs: u64,
}

#[tool_router(router = remove_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "remove",
        description = "Delete a file, symlink or directory on a remote host over SFTP. A \
            symlink is removed itself, never what it points to. A directory must be empty \
            unless `recursive` is true, which deletes it and everything in it (like `rm -r`). \
            Returns how many files and directories were removed. There is no undo. Paths are \
            absolute or relative to the remote user's home; the home and root directories \
            themselves are refused.",
        annotations(
            title = "Delete a remote path",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<RemoveResult>()
    )]
    async fn remove(
        &self,
        Parameters(args): Parameters<RemoveArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let reply = self.forward(Request::Remove(request), &context).await;
        match expect(reply, "remove", |response| match response {
            Response::Remove(removed) => Some(removed),
            _ => None,
        }) {
            Ok(removed) => {
                let text = format!(
                    "removed {}: {} file(s), {} director{}",
                    removed.path,
                    removed.files,
                    removed.dirs,
                    if removed.dirs == 1 { "y" } else { "ies" }
                );
                let result = RemoveResult {
                    path: removed.path,
                    files: removed.files,
                    dirs: removed.dirs,
                };
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
    fn home_and_root_are_refused() {
        for path in ["~", "~/", ".", "/", "./", "//"] {
            let err = RemoveArgs {
                host: "h".into(),
                path: path.into(),
                recursive: true,
            }
            .into_request()
            .unwrap_err();
            assert!(err.message.contains("refusing"), "{path}: {}", err.message);
        }
    }
}
