//! The `transfer` tool: copy files between this machine and a host.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Direction, Error, Request, Response, TransferRequest, TransferResult};

use super::attrs::remote_path;
use super::{Effect, Tool, local_path};

/// The `transfer` tool.
pub struct Transfer;

/// The `transfer` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferArgs {
    pub host: String,
    /// upload: local to remote.
    pub direction: Direction,
    pub local_path: String,
    pub remote_path: String,
    #[serde(default)]
    pub recursive: bool,
    /// Continue a broken transfer.
    #[serde(default)]
    pub resume: bool,
    /// Check SHA-256 of both ends.
    #[serde(default)]
    pub verify: bool,
    /// Copy symlinks' targets, not skip them.
    #[serde(default)]
    pub follow_symlinks: bool,
}

/// The `transfer` tool's `structuredContent`: the daemon's
/// [`TransferResult`], after the paths as they were sent (the local one
/// made absolute).
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct TransferReport {
    pub direction: Direction,
    pub local_path: String,
    pub remote_path: String,
    #[serde(flatten)]
    pub copied: TransferResult,
}

/// What the report says about the call besides the daemon's answer.
pub struct Paths {
    direction: Direction,
    local_path: String,
    remote_path: String,
}

impl Paths {
    /// The paths `request` names.
    pub fn of(request: &TransferRequest) -> Paths {
        Paths {
            direction: request.direction,
            local_path: request.local_path.clone(),
            remote_path: request.remote_path.clone(),
        }
    }
}

impl Tool for Transfer {
    const NAME: &'static str = "transfer";
    const DESCRIPTION: &'static str = "Copy a file (a tree with `recursive`) between this \
        machine and a host, like scp; overwrites. A relative `local_path` starts in sshmcp's \
        cwd.";
    const EFFECT: Effect = Effect {
        destructive: true,
        idempotent: true,
        ..Effect::CHANGES
    };
    type Args = TransferArgs;
    type Output = TransferReport;
    type Asked = Paths;

    fn request(args: TransferArgs) -> Result<(Request, Paths), Error> {
        let request = TransferRequest {
            host: args.host,
            direction: args.direction,
            local_path: local_path::resolve("local_path", &args.local_path)?,
            remote_path: remote_path(&args.remote_path),
            recursive: args.recursive,
            resume: args.resume,
            verify: args.verify,
            follow_symlinks: args.follow_symlinks,
            job_after_secs: None,
        };
        Ok((Request::Transfer(request.clone()), Paths::of(&request)))
    }

    fn answer(paths: Paths, response: Response) -> Option<TransferReport> {
        match response {
            Response::Transfer(copied) => Some(TransferReport {
                direction: paths.direction,
                local_path: paths.local_path,
                remote_path: paths.remote_path,
                copied,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::arguments::parse;
    use crate::tools::text;

    #[test]
    fn local_paths_are_made_absolute_and_remote_tilde_expanded() {
        let json = serde_json::json!({
            "host": "h", "direction": "download", "local_path": "out/x",
            "remote_path": "~/x", "recursive": true,
        });
        let (request, _) = Transfer::request(parse("transfer", json).unwrap()).unwrap();
        let Request::Transfer(request) = request else {
            panic!("not a transfer request");
        };
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            request.local_path,
            cwd.join("out/x").to_string_lossy().as_ref()
        );
        assert_eq!(request.remote_path, "x");
        assert_eq!(request.direction, Direction::Download);
        assert!(request.recursive && !request.resume && !request.verify);
    }

    #[test]
    fn an_unknown_direction_is_refused_naming_the_choices() {
        let json = serde_json::json!({
            "host": "h", "direction": "sideways", "local_path": "/a", "remote_path": "b",
        });
        let err = parse::<TransferArgs>("transfer", json).unwrap_err();
        assert!(err.message.contains("`direction`"), "{}", err.message);
        assert!(err.message.contains("upload"), "{}", err.message);
    }

    #[test]
    fn the_report_is_the_paths_then_the_daemons_answer() {
        let report = TransferReport {
            direction: Direction::Upload,
            local_path: "/l".into(),
            remote_path: "r".into(),
            copied: TransferResult {
                files: 2,
                dirs: 1,
                bytes: 10,
                resumed_bytes: 0,
                skipped: vec!["a symlink: link".into()],
                verified: Some(true),
                notes: vec![],
                duration_ms: 5,
            },
        };
        assert_eq!(
            text::render(&report, Transfer::BLOCKS).unwrap(),
            "direction=upload local_path=/l remote_path=r files=2 dirs=1 bytes=10 \
             resumed_bytes=0 verified=true notes=[] duration_ms=5\n\
             skipped (1):\n\
             a symlink: link\n"
        );
    }
}
