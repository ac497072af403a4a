//! The `stat` tool: what a remote path is.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, FileStat, MAX_CACHE_SECS, Request, Response, StatRequest};

use super::arguments::Int;
use super::attrs::{PathAttrs, iso_time, remote_path};
use super::{Effect, Tool};

/// The `stat` tool.
pub struct Stat;

/// The `stat` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StatArgs {
    pub host: String,
    pub path: String,
    #[serde(default)]
    pub follow_symlinks: bool,
    pub max_age_secs: Option<Int<0, MAX_CACHE_SECS>>,
}

/// The `stat` tool's `structuredContent`: a path's attributes, its mtime
/// also as an ISO 8601 time, and its owner.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct StatResult {
    #[serde(flatten)]
    pub attrs: PathAttrs,
    pub mtime_iso: String,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

impl From<FileStat> for StatResult {
    fn from(stat: FileStat) -> Self {
        let (mtime_iso, uid, gid) = (iso_time(stat.mtime), stat.uid, stat.gid);
        StatResult {
            attrs: stat.into(),
            mtime_iso,
            uid,
            gid,
        }
    }
}

impl Tool for Stat {
    const NAME: &'static str = "stat";
    const DESCRIPTION: &'static str = "Stat a remote path, like `stat`; `not_found` if \
        missing.";
    const EFFECT: Effect = Effect::READS;
    const CACHEABLE: bool = true;
    type Args = StatArgs;
    type Output = StatResult;
    type Asked = ();

    fn request(args: StatArgs) -> Result<(Request, ()), Error> {
        let request = StatRequest {
            max_age_secs: args.max_age_secs.map(|Int(secs)| secs),
            host: args.host,
            path: remote_path(&args.path),
            follow_symlinks: args.follow_symlinks,
        };
        Ok((Request::Stat(request), ()))
    }

    fn answer((): (), response: Response) -> Option<StatResult> {
        match response {
            Response::Stat(stat) => Some(stat.into()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::FileKind;

    use super::*;
    use crate::tools::text;

    #[test]
    fn structured_stat_has_every_field_of_the_contract_and_so_has_the_text() {
        let stat = StatResult::from(FileStat {
            path: "/etc/hosts".into(),
            kind: FileKind::File,
            size: 221,
            mode: 0o644,
            mtime: 1_714_566_896,
            uid: Some(0),
            gid: Some(0),
            link_target: None,
        });
        assert_eq!(
            serde_json::to_value(&stat).unwrap(),
            serde_json::json!({
                "path": "/etc/hosts", "type": "file", "size": 221, "mode": "0644",
                "mtime": 1_714_566_896, "mtime_iso": "2024-05-01T12:34:56Z",
                "uid": 0, "gid": 0, "link_target": null,
            })
        );
        assert_eq!(
            text::render(&stat, Stat::BLOCKS).unwrap(),
            "path=/etc/hosts type=file size=221 mode=0644 mtime=1714566896 link_target=null \
             mtime_iso=2024-05-01T12:34:56Z uid=0 gid=0\n"
        );
    }

    #[test]
    fn tilde_paths_are_made_home_relative() {
        let args = StatArgs {
            host: "h".into(),
            path: "~/x".into(),
            follow_symlinks: false,
            max_age_secs: None,
        };
        let (request, ()) = Stat::request(args).unwrap();
        assert!(matches!(request, Request::Stat(StatRequest { path, .. }) if path == "x"));
    }
}
