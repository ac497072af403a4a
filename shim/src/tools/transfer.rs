//! The `transfer` tool: copy files between this machine and a host.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, Request, Response, TransferRequest};

use super::attrs::remote_path;
use super::{TransferDirection, expect, failure, local_path, require, require_host, success};
use crate::server::SshMcp;

/// The `transfer` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// `upload`: local_path to remote_path. `download`: remote_path to local_path.
    pub direction: TransferDirection,
    /// Path on this machine: absolute, relative to the MCP server's working directory, or starting with `~/`.
    pub local_path: String,
    /// Path on the host: absolute, or relative to the remote user's home (`~/` works too).
    pub remote_path: String,
    /// Copy a directory and everything in it. Default false (a single file).
    #[serde(default)]
    pub recursive: bool,
    /// Continue partial files left by an interrupted transfer instead of starting over. Default false.
    #[serde(default)]
    pub resume: bool,
    /// Compare SHA-256 of every file on both ends afterwards. Default false.
    #[serde(default)]
    pub verify: bool,
    /// Copy what symlinks in the source point to, instead of skipping them. Default false.
    #[serde(default)]
    pub follow_symlinks: bool,
}

impl TransferArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<TransferRequest, Error> {
        require_host(&self.host)?;
        require("remote_path", &self.remote_path, "the path on the host")?;
        Ok(TransferRequest {
            host: self.host,
            direction: self.direction.into(),
            local_path: local_path::resolve("local_path", &self.local_path)?,
            remote_path: remote_path(&self.remote_path),
            recursive: self.recursive,
            resume: self.resume,
            verify: self.verify,
            follow_symlinks: self.follow_symlinks,
        })
    }
}

/// The `transfer` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TransferResult {
    /// Which way the files moved.
    pub direction: TransferDirection,
    /// The local path, made absolute.
    pub local_path: String,
    /// The remote path as sent to the host.
    pub remote_path: String,
    /// Files copied.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes moved over the connection (less than the files' total on resume).
    pub bytes: u64,
    /// Bytes already in place from an earlier, interrupted transfer.
    pub resumed_bytes: u64,
    /// Symlinks and special files skipped, each with why.
    pub skipped: Vec<String>,
    /// true when every file's SHA-256 matched on both ends; null when `verify` was not asked.
    pub verified: Option<bool>,
    /// Notes, e.g. why verification could not run.
    pub notes: Vec<String>,
    /// Wall-clock time of the transfer, in milliseconds.
    pub duration_ms: u64,
}

#[tool_router(router = transfer_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "transfer",
        description = "Copy a file, or with `recursive` a directory tree, between this machine \
            and a remote host over SFTP, like scp. `direction` \"upload\" copies `local_path` \
            to `remote_path`; \"download\" copies `remote_path` to `local_path`. A relative \
            `local_path` is relative to the MCP server's working directory; `~/` is the local \
            home. Remote paths are absolute or relative to the remote user's home. Existing \
            destination files are overwritten; each file is written to a temporary name and \
            renamed into place when complete, and keeps its mode and mtime. `resume` continues \
            partial files from an interrupted transfer; `verify` compares SHA-256 on both ends \
            afterwards. Symlinks in the source are skipped and reported unless \
            `follow_symlinks`. Sends MCP progress notifications (bytes) when the call has a \
            progressToken. The daemon may refuse local paths outside its allowed roots \
            (`policy_denied`).",
        annotations(
            title = "Copy files to or from a host",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<TransferResult>()
    )]
    async fn transfer(
        &self,
        Parameters(args): Parameters<TransferArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let direction = args.direction;
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let (local_path, remote_path) = (request.local_path.clone(), request.remote_path.clone());
        let reply = self.forward(Request::Transfer(request), &context).await;
        match expect(reply, "transfer", |response| match response {
            Response::Transfer(done) => Some(done),
            _ => None,
        }) {
            Ok(done) => {
                let result = TransferResult {
                    direction,
                    local_path,
                    remote_path,
                    files: done.files,
                    dirs: done.dirs,
                    bytes: done.bytes,
                    resumed_bytes: done.resumed_bytes,
                    skipped: done.skipped,
                    verified: done.verified,
                    notes: done.notes,
                    duration_ms: done.duration_ms,
                };
                let text = render(&result);
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

/// A summary line, then skipped paths and notes, for clients that show only
/// text.
fn render(result: &TransferResult) -> String {
    let (verb, from, to) = match result.direction {
        TransferDirection::Upload => ("uploaded", &result.local_path, &result.remote_path),
        TransferDirection::Download => ("downloaded", &result.remote_path, &result.local_path),
    };
    let mut text = format!(
        "{verb} {from} to {to}: {} file(s), {} dir(s), {} bytes in {} ms",
        result.files, result.dirs, result.bytes, result.duration_ms
    );
    if result.resumed_bytes > 0 {
        let _ = write!(text, " ({} bytes resumed)", result.resumed_bytes);
    }
    match result.verified {
        Some(true) => text.push_str("; SHA-256 verified"),
        Some(false) => text.push_str("; SHA-256 MISMATCH"),
        None => {}
    }
    text.push('\n');
    for skipped in &result.skipped {
        let _ = writeln!(text, "skipped: {skipped}");
    }
    for note in &result.notes {
        let _ = writeln!(text, "note: {note}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_are_made_absolute_and_remote_tilde_expanded() {
        let json = serde_json::json!({
            "host": "h", "direction": "download", "local_path": "out/x",
            "remote_path": "~/x", "recursive": true,
        });
        let request = serde_json::from_value::<TransferArgs>(json)
            .unwrap()
            .into_request()
            .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            request.local_path,
            cwd.join("out/x").to_string_lossy().as_ref()
        );
        assert_eq!(request.remote_path, "x");
        assert_eq!(request.direction, sshmcp_proto::Direction::Download);
        assert!(request.recursive && !request.resume && !request.verify);
    }

    #[test]
    fn an_unknown_direction_is_refused_naming_the_choices() {
        let json = serde_json::json!({
            "host": "h", "direction": "sideways", "local_path": "/a", "remote_path": "b",
        });
        let err = serde_json::from_value::<TransferArgs>(json).unwrap_err();
        assert!(err.to_string().contains("upload"), "{err}");
    }

    #[test]
    fn text_summarises_and_lists_skips_and_notes() {
        let result = TransferResult {
            direction: TransferDirection::Upload,
            local_path: "/l".into(),
            remote_path: "r".into(),
            files: 2,
            dirs: 1,
            bytes: 10,
            resumed_bytes: 0,
            skipped: vec!["a symlink: link".into()],
            verified: Some(true),
            notes: vec![],
            duration_ms: 5,
        };
        assert_eq!(
            render(&result),
            "uploaded /l to r: 2 file(s), 1 dir(s), 10 bytes in 5 ms; SHA-256 verified\n\
             skipped: a symlink: link\n"
        );
    }
}
