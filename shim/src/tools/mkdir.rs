//! The `mkdir` tool: make a remote directory.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, MkdirRequest, Request, Response};

use super::attrs::{parse_mode, remote_path};
use super::{Effect, Tool};

/// The `mkdir` tool.
pub struct Mkdir;

/// The `mkdir` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirArgs {
    pub host: String,
    pub path: String,
    /// Like `mkdir -p`.
    #[serde(default)]
    pub parents: bool,
    /// Octal, e.g. "0755".
    pub mode: Option<String>,
}

/// The `mkdir` tool's `structuredContent`. The daemon answers a plain `Ok`;
/// the path, as sent, says which directory exists now.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct MkdirResult {
    pub path: String,
}

impl Tool for Mkdir {
    const NAME: &'static str = "mkdir";
    const DESCRIPTION: &'static str = "Make a remote directory; an existing one is \
        `already_exists` unless `parents`.";
    const EFFECT: Effect = Effect::CHANGES;
    type Args = MkdirArgs;
    type Output = MkdirResult;
    type Asked = String;

    fn request(args: MkdirArgs) -> Result<(Request, String), Error> {
        let request = MkdirRequest {
            host: args.host,
            path: remote_path(&args.path),
            parents: args.parents,
            mode: args
                .mode
                .as_deref()
                .map(|mode| parse_mode("mode", mode))
                .transpose()?,
        };
        let path = request.path.clone();
        Ok((Request::Mkdir(request), path))
    }

    fn answer(path: String, response: Response) -> Option<MkdirResult> {
        matches!(response, Response::Ok).then_some(MkdirResult { path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_is_parsed_and_tilde_expanded() {
        let args = MkdirArgs {
            host: "h".into(),
            path: "~/a/b".into(),
            parents: true,
            mode: Some("0700".into()),
        };
        let (request, path) = Mkdir::request(args).unwrap();
        assert_eq!(
            request,
            Request::Mkdir(MkdirRequest {
                host: "h".into(),
                path: "a/b".into(),
                parents: true,
                mode: Some(0o700),
            })
        );
        assert_eq!(path, "a/b");
    }
}
