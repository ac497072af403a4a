//! The `sync` tool: make one directory match another, one way.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, Request, Response, SyncAction, SyncChange, SyncRequest};

use super::attrs::remote_path;
use super::{TransferDirection, expect, failure, local_path, require, require_host, success};
use crate::server::SshMcp;

/// Changes listed in the text rendering; `structuredContent` has more.
const TEXT_CHANGES: usize = 100;

/// The `sync` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// `upload`: make remote_dir match local_dir. `download`: make local_dir match remote_dir.
    pub direction: TransferDirection,
    /// Directory on this machine: absolute, relative to the MCP server's working directory, or starting with `~/`.
    pub local_dir: String,
    /// Directory on the host: absolute, or relative to the remote user's home (`~/` works too).
    pub remote_dir: String,
    /// Also delete destination files and directories that are not in the source. Default false.
    #[serde(default)]
    pub delete: bool,
    /// Only report what would change; change nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Compare files by SHA-256 instead of size and modification time (slower, reads every file). Default false.
    #[serde(default)]
    pub checksum: bool,
}

impl SyncArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<SyncRequest, Error> {
        require_host(&self.host)?;
        require("remote_dir", &self.remote_dir, "the directory on the host")?;
        Ok(SyncRequest {
            host: self.host,
            direction: self.direction.into(),
            local_dir: local_path::resolve("local_dir", &self.local_dir)?,
            remote_dir: remote_path(&self.remote_dir),
            delete: self.delete,
            dry_run: self.dry_run,
            checksum: self.checksum,
        })
    }
}

/// What a sync step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
// Inline in the schemas: some MCP clients do not follow `$ref`.
#[schemars(inline)]
pub enum Action {
    /// A directory missing at the destination is made.
    Mkdir,
    /// A file missing at the destination is copied.
    Create,
    /// A file that differs is copied over.
    Update,
    /// A destination path not in the source is deleted (with `delete`).
    Delete,
}

impl From<SyncAction> for Action {
    fn from(action: SyncAction) -> Self {
        match action {
            SyncAction::Mkdir => Action::Mkdir,
            SyncAction::Create => Action::Create,
            SyncAction::Update => Action::Update,
            SyncAction::Delete => Action::Delete,
        }
    }
}

/// One planned or made change.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Change {
    /// What is done to the path.
    pub action: Action,
    /// The path, relative to the synced directories.
    pub path: String,
    /// Bytes to move (create, update); 0 otherwise.
    pub bytes: u64,
}

impl From<SyncChange> for Change {
    fn from(change: SyncChange) -> Self {
        Change {
            action: change.action.into(),
            path: change.path,
            bytes: change.bytes,
        }
    }
}

/// The `sync` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SyncResult {
    /// Which way the sync went.
    pub direction: TransferDirection,
    /// The local directory, made absolute.
    pub local_dir: String,
    /// The remote directory as sent to the host.
    pub remote_dir: String,
    /// Nothing was changed: `changes` is the plan.
    pub dry_run: bool,
    /// The changes, in order (at most 1000; see `changes_truncated`).
    pub changes: Vec<Change>,
    /// There were more changes than `changes` lists; the counts cover them all.
    pub changes_truncated: bool,
    /// Every change counted: created + updated + deleted + dirs_created. 0 means the destination already matched.
    pub total_changes: u64,
    /// Files copied that the destination lacked.
    pub created: u64,
    /// Files copied over ones that differed.
    pub updated: u64,
    /// Destination paths deleted (with `delete`).
    pub deleted: u64,
    /// Directories made at the destination.
    pub dirs_created: u64,
    /// Files already the same at both ends.
    pub unchanged: u64,
    /// Bytes moved (with `dry_run`: to move).
    pub bytes: u64,
    /// Symlinks and special files skipped, each with why.
    pub skipped: Vec<String>,
    /// Wall-clock time of the sync, in milliseconds.
    pub duration_ms: u64,
}

#[tool_router(router = sync_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "sync",
        description = "Make a destination directory match a source directory, one way, \
            copying only files that are missing or differ (like `rsync -r` without deltas). \
            `direction` \"upload\" makes `remote_dir` match `local_dir`; \"download\" makes \
            `local_dir` match `remote_dir`. Files differ when size or mtime differ, or with \
            `checksum` when their SHA-256 differs. `delete` also removes destination files \
            that are not in the source. `dry_run` returns the plan and changes nothing: use it \
            first when `delete` is on. Returns the changes (up to 1000 listed) and counts; \
            `total_changes` 0 means the directories already matched. A relative `local_dir` \
            is relative to the MCP server's working directory; remote paths are absolute or \
            relative to the remote user's home. Sends MCP progress notifications when the \
            call has a progressToken. The daemon may refuse local paths outside its allowed \
            roots (`policy_denied`).",
        annotations(
            title = "Sync a directory with a host",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<SyncResult>()
    )]
    async fn sync(
        &self,
        Parameters(args): Parameters<SyncArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let direction = args.direction;
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let (local_dir, remote_dir) = (request.local_dir.clone(), request.remote_dir.clone());
        let reply = self.forward(Request::Sync(request), &context).await;
        match expect(reply, "sync", |response| match response {
            Response::Sync(done) => Some(done),
            _ => None,
        }) {
            Ok(done) => {
                let result = SyncResult {
                    direction,
                    local_dir,
                    remote_dir,
                    dry_run: done.dry_run,
                    changes: done.changes.into_iter().map(Change::from).collect(),
                    changes_truncated: done.changes_truncated,
                    total_changes: done.created + done.updated + done.deleted + done.dirs_created,
                    created: done.created,
                    updated: done.updated,
                    deleted: done.deleted,
                    dirs_created: done.dirs_created,
                    unchanged: done.unchanged,
                    bytes: done.bytes,
                    skipped: done.skipped,
                    duration_ms: done.duration_ms,
                };
                let text = render(&result);
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

/// A summary line, then the changes and skipped paths, for clients that
/// show only text.
fn render(result: &SyncResult) -> String {
    let (from, to) = match result.direction {
        TransferDirection::Upload => (&result.local_dir, &result.remote_dir),
        TransferDirection::Download => (&result.remote_dir, &result.local_dir),
    };
    let mut text = if result.dry_run {
        format!("dry run, nothing changed: syncing {from} to {to} would make ")
    } else {
        format!("synced {from} to {to}: ")
    };
    if result.total_changes == 0 {
        let _ = write!(
            text,
            "no changes ({} file(s) already the same)",
            result.unchanged
        );
    } else {
        let _ = write!(
            text,
            "{} change(s): {} created, {} updated, {} deleted, {} dir(s) made, {} unchanged, \
             {} bytes",
            result.total_changes,
            result.created,
            result.updated,
            result.deleted,
            result.dirs_created,
            result.unchanged,
            result.bytes
        );
    }
    let _ = writeln!(text, " ({} ms)", result.duration_ms);
    for change in result.changes.iter().take(TEXT_CHANGES) {
        let action = match change.action {
            Action::Mkdir => "mkdir ",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        };
        let _ = writeln!(text, "{action} {}", change.path);
    }
    let unlisted = result.total_changes.saturating_sub(TEXT_CHANGES as u64);
    if unlisted > 0 {
        let _ = writeln!(text, "... and {unlisted} more");
    }
    for skipped in &result.skipped {
        let _ = writeln!(text, "skipped: {skipped}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(changes: Vec<Change>, dry_run: bool) -> SyncResult {
        SyncResult {
            direction: TransferDirection::Download,
            local_dir: "/l".into(),
            remote_dir: "r".into(),
            dry_run,
            total_changes: changes.len() as u64,
            changes,
            changes_truncated: false,
            created: 1,
            updated: 0,
            deleted: 1,
            dirs_created: 0,
            unchanged: 3,
            bytes: 7,
            skipped: vec![],
            duration_ms: 2,
        }
    }

    #[test]
    fn a_dry_run_says_nothing_changed_and_lists_the_plan() {
        let changes = vec![
            Change {
                action: Action::Create,
                path: "a".into(),
                bytes: 7,
            },
            Change {
                action: Action::Delete,
                path: "old".into(),
                bytes: 0,
            },
        ];
        assert_eq!(
            render(&result(changes, true)),
            "dry run, nothing changed: syncing r to /l would make 2 change(s): 1 created, \
             0 updated, 1 deleted, 0 dir(s) made, 3 unchanged, 7 bytes (2 ms)\n\
             create a\ndelete old\n"
        );
    }

    #[test]
    fn an_unchanged_sync_says_so() {
        let mut unchanged = result(vec![], false);
        (unchanged.created, unchanged.deleted) = (0, 0);
        assert_eq!(
            render(&unchanged),
            "synced r to /l: no changes (3 file(s) already the same) (2 ms)\n"
        );
    }

    #[test]
    fn actions_serialize_in_lowercase() {
        assert_eq!(serde_json::to_value(Action::Mkdir).unwrap(), "mkdir");
        assert_eq!(
            serde_json::to_value(TransferDirection::Upload).unwrap(),
            "upload"
        );
    }
}
