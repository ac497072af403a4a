//! The `remove` tool: delete a remote file, symlink or directory.

use schemars::JsonSchema;
use serde::Deserialize;
use sshmcp_proto::{Error, RemoveRequest, RemoveResult, Request, Response};

use super::attrs::remote_path;
use super::{Effect, Tool};

/// The `remove` tool.
pub struct Remove;

/// The `remove` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoveArgs {
    pub host: String,
    pub path: String,
    /// Like `rm -r`.
    #[serde(default)]
    pub recursive: bool,
}

impl Tool for Remove {
    const NAME: &'static str = "remove";
    const DESCRIPTION: &'static str = "Delete a remote file, symlink (not its target) or empty \
        directory; a tree with `recursive`. No undo.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    type Args = RemoveArgs;
    type Output = RemoveResult;
    type Asked = ();

    fn request(args: RemoveArgs) -> Result<(Request, ()), Error> {
        // `Request::validate` refuses the home, its parent and the root.
        let request = RemoveRequest {
            host: args.host,
            path: remote_path(&args.path),
            recursive: args.recursive,
        };
        Ok((Request::Remove(request), ()))
    }

    fn answer((): (), response: Response) -> Option<RemoveResult> {
        match response {
            Response::Remove(removed) => Some(removed),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::check;

    #[test]
    fn home_and_root_and_their_parent_are_refused() {
        for path in ["~", "~/", ".", "/", "./", "//", "..", "../"] {
            let args = RemoveArgs {
                host: "h".into(),
                path: path.into(),
                recursive: true,
            };
            let err = Remove::request(args)
                .and_then(|(request, ())| check(&request))
                .unwrap_err();
            assert!(err.message.contains("refusing"), "{path}: {}", err.message);
        }
    }
}
