//! The `sync` tool: make one directory match another, one way.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Direction, Error, Request, Response, SyncRequest, SyncResult};

use super::attrs::remote_path;
use super::{Effect, Tool, local_path};

/// The `sync` tool.
pub struct DirSync;

/// The `sync` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncArgs {
    pub host: String,
    /// upload: make remote_dir match local_dir.
    pub direction: Direction,
    pub local_dir: String,
    pub remote_dir: String,
    /// Also delete what the source lacks.
    #[serde(default)]
    pub delete: bool,
    #[serde(default)]
    pub dry_run: bool,
    /// By SHA-256, not size and mtime.
    #[serde(default)]
    pub checksum: bool,
}

/// The `sync` tool's `structuredContent`: the daemon's [`SyncResult`],
/// after the directories as they were sent (the local one made absolute)
/// and the count of all changes (0: they already matched).
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct SyncReport {
    pub direction: Direction,
    pub local_dir: String,
    pub remote_dir: String,
    pub total_changes: u64,
    #[serde(flatten)]
    pub synced: SyncResult,
}

/// What the report says about the call besides the daemon's answer.
pub struct Dirs {
    direction: Direction,
    local_dir: String,
    remote_dir: String,
}

impl Dirs {
    /// The directories `request` names.
    pub fn of(request: &SyncRequest) -> Dirs {
        Dirs {
            direction: request.direction,
            local_dir: request.local_dir.clone(),
            remote_dir: request.remote_dir.clone(),
        }
    }
}

impl Tool for DirSync {
    const NAME: &'static str = "sync";
    const DESCRIPTION: &'static str = "One-way sync of a directory between this machine and a \
        host, copying what differs (like `rsync -r`). Try `dry_run` before `delete`.";
    const EFFECT: Effect = Effect {
        destructive: true,
        idempotent: true,
        ..Effect::CHANGES
    };
    type Args = SyncArgs;
    type Output = SyncReport;
    type Asked = Dirs;

    fn request(args: SyncArgs) -> Result<(Request, Dirs), Error> {
        let request = SyncRequest {
            host: args.host,
            direction: args.direction,
            local_dir: local_path::resolve("local_dir", &args.local_dir)?,
            remote_dir: remote_path(&args.remote_dir),
            delete: args.delete,
            dry_run: args.dry_run,
            checksum: args.checksum,
            job_after_secs: None,
        };
        Ok((Request::Sync(request.clone()), Dirs::of(&request)))
    }

    fn answer(dirs: Dirs, response: Response) -> Option<SyncReport> {
        match response {
            Response::Sync(synced) => Some(SyncReport {
                direction: dirs.direction,
                local_dir: dirs.local_dir,
                remote_dir: dirs.remote_dir,
                total_changes: synced.created
                    + synced.updated
                    + synced.deleted
                    + synced.dirs_created,
                synced,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::{SyncAction, SyncChange};

    use super::*;
    use crate::tools::text;

    #[test]
    fn a_dry_run_report_counts_and_lists_the_plan() {
        let dirs = Dirs {
            direction: Direction::Download,
            local_dir: "/l".into(),
            remote_dir: "r".into(),
        };
        let synced = SyncResult {
            dry_run: true,
            changes: vec![
                SyncChange {
                    action: SyncAction::Create,
                    path: "a".into(),
                    bytes: 7,
                },
                SyncChange {
                    action: SyncAction::Delete,
                    path: "old".into(),
                    bytes: 0,
                },
            ],
            changes_truncated: false,
            created: 1,
            updated: 0,
            deleted: 1,
            dirs_created: 0,
            unchanged: 3,
            bytes: 7,
            skipped: vec![],
            duration_ms: 2,
        };
        let report = DirSync::answer(dirs, Response::Sync(synced)).unwrap();
        assert_eq!(report.total_changes, 2);
        assert_eq!(
            text::render(&report, DirSync::BLOCKS).unwrap(),
            "direction=download local_dir=/l remote_dir=r total_changes=2 dry_run=true \
             changes_truncated=false created=1 updated=0 deleted=1 dirs_created=0 unchanged=3 \
             bytes=7 skipped=[] duration_ms=2\n\
             changes (2): action path bytes\n\
             create a 7\n\
             delete old 0\n"
        );
    }
}
