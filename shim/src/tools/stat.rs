//! The `stat` tool: what a remote path is.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, FileStat, Request, Response, StatRequest};

use super::attrs::{FileType, iso_time, ls_mode, octal_mode, remote_path};
use super::{expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// The `stat` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote path: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// Describe what a symlink points to instead of the link itself. Default false.
    #[serde(default)]
    pub follow_symlinks: bool,
}

impl StatArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<StatRequest, Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote path to describe")?;
        Ok(StatRequest {
            host: self.host,
            path: remote_path(&self.path),
            follow_symlinks: self.follow_symlinks,
        })
    }
}

/// The `stat` tool's `structuredContent`: one path's attributes.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StatResult {
    /// The path as asked.
    pub path: String,
    /// What the path is: file, dir, symlink or other (device, socket, FIFO).
    #[serde(rename = "type")]
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits as an octal string, e.g. "0644".
    pub mode: String,
    /// Last modification, in seconds since the Unix epoch.
    pub mtime: u64,
    /// Last modification as ISO 8601 UTC, e.g. "2024-05-01T12:34:56Z".
    pub mtime_iso: String,
    /// Owner's numeric user id, when the server says.
    pub uid: Option<u32>,
    /// Owner's numeric group id, when the server says.
    pub gid: Option<u32>,
    /// Where a symlink points, when the path is one; else null.
    pub link_target: Option<String>,
}

impl From<FileStat> for StatResult {
    fn from(stat: FileStat) -> Self {
        StatResult {
            path: stat.path,
            kind: stat.kind.into(),
            size: stat.size,
            mode: octal_mode(stat.mode),
            mtime: stat.mtime,
            mtime_iso: iso_time(stat.mtime),
            uid: stat.uid,
            gid: stat.gid,
            link_target: stat.link_target,
        }
    }
}

#[tool_router(router = stat_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "stat",
        description = "Describe a path on a remote host over SFTP: its type (file, dir, symlink, \
            other), size in bytes, permission bits (octal string such as \"0644\"), \
            modification time (Unix seconds and ISO 8601 UTC), owner uid/gid and, for a \
            symlink, its target. `follow_symlinks` describes what a symlink points to instead. \
            Paths are absolute or relative to the remote user's home. A missing path is a \
            `not_found` tool error, so this also answers \"does it exist?\". Changes nothing.",
        annotations(
            title = "Describe a remote path",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<StatResult>()
    )]
    async fn stat(
        &self,
        Parameters(args): Parameters<StatArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let reply = self
            .forward_read_only(Request::Stat(request), &context)
            .await;
        match expect(reply, "stat", |response| match response {
            Response::Stat(stat) => Some(stat),
            _ => None,
        }) {
            Ok(stat) => {
                let text = render(&stat);
                success(&StatResult::from(stat), text)
            }
            Err(result) => result,
        }
    }
}

/// One line for clients that show only text.
fn render(stat: &FileStat) -> String {
    let kind = FileType::from(stat.kind);
    let mut text = format!(
        "{}: {}, {} bytes, mode {} ({}), modified {}",
        stat.path,
        kind.as_str(),
        stat.size,
        octal_mode(stat.mode),
        ls_mode(kind, stat.mode),
        iso_time(stat.mtime),
    );
    if let (Some(uid), Some(gid)) = (stat.uid, stat.gid) {
        let _ = write!(text, ", uid {uid} gid {gid}");
    }
    if let Some(target) = &stat.link_target {
        let _ = write!(text, ", -> {target}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::FileKind;

    #[test]
    fn structured_stat_has_every_field_of_the_contract() {
        let stat = FileStat {
            path: "/etc/hosts".into(),
            kind: FileKind::File,
            size: 221,
            mode: 0o644,
            mtime: 1_714_566_896,
            uid: Some(0),
            gid: Some(0),
            link_target: None,
        };
        assert_eq!(
            render(&stat),
            "/etc/hosts: file, 221 bytes, mode 0644 (-rw-r--r--), modified \
             2024-05-01T12:34:56Z, uid 0 gid 0"
        );
        assert_eq!(
            serde_json::to_value(StatResult::from(stat)).unwrap(),
            serde_json::json!({
                "path": "/etc/hosts", "type": "file", "size": 221, "mode": "0644",
                "mtime": 1_714_566_896, "mtime_iso": "2024-05-01T12:34:56Z",
                "uid": 0, "gid": 0, "link_target": null,
            })
        );
    }

    #[test]
    fn tilde_paths_and_empty_arguments() {
        let args = |host: &str, path: &str| StatArgs {
            host: host.into(),
            path: path.into(),
            follow_symlinks: false,
        };
        assert_eq!(args("h", "~/x").into_request().unwrap().path, "x");
        let err = args("h", "").into_request().unwrap_err();
        assert!(err.message.contains("`path`"), "{}", err.message);
        let err = args(" ", "/x").into_request().unwrap_err();
        assert!(err.message.contains("`host`"), "{}", err.message);
    }
}
