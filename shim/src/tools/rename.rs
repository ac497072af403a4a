//! The `rename` tool: move a remote path.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, RenameRequest, Request, Response};

use super::attrs::remote_path;
use super::{Effect, Tool};

/// The `rename` tool.
pub struct Rename;

/// The `rename` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameArgs {
    pub host: String,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub overwrite: bool,
}

/// The `rename` tool's `structuredContent`. The daemon answers a plain
/// `Ok`; the paths, as sent, say what moved where.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct RenameResult {
    pub from: String,
    pub to: String,
}

impl Tool for Rename {
    const NAME: &'static str = "rename";
    const DESCRIPTION: &'static str = "Move a remote path within its host; an existing `to` is \
        `already_exists` unless `overwrite`.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    type Args = RenameArgs;
    type Output = RenameResult;
    type Asked = RenameResult;

    fn request(args: RenameArgs) -> Result<(Request, RenameResult), Error> {
        let request = RenameRequest {
            host: args.host,
            from: remote_path(&args.from),
            to: remote_path(&args.to),
            overwrite: args.overwrite,
        };
        let moved = RenameResult {
            from: request.from.clone(),
            to: request.to.clone(),
        };
        Ok((Request::Rename(request), moved))
    }

    fn answer(moved: RenameResult, response: Response) -> Option<RenameResult> {
        matches!(response, Response::Ok).then_some(moved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::check;

    #[test]
    fn both_paths_are_required_and_named() {
        let request = |from: &str, to: &str| {
            let args = RenameArgs {
                host: "h".into(),
                from: from.into(),
                to: to.into(),
                overwrite: false,
            };
            Rename::request(args).and_then(|(request, moved)| {
                check(&request)?;
                Ok(moved)
            })
        };
        let err = request("", "b").unwrap_err();
        assert!(err.message.contains("`from`"), "{}", err.message);
        let err = request("a", " ").unwrap_err();
        assert!(err.message.contains("`to`"), "{}", err.message);
        assert_eq!(request("~/a", "/b").unwrap().from, "a");
    }
}
