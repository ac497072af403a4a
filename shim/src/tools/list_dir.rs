//! The `list_dir` tool: a remote directory's entries, like `ls -l`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, ListDirRequest, MAX_CACHE_SECS, MAX_LIST_ENTRIES, Request, Response};

use super::arguments::Int;
use super::attrs::{PathAttrs, remote_path};
use super::{Effect, Tool};

/// Entries listed when the caller does not say: about the output budget
/// `exec` keeps (16 KiB of text, at some 50 bytes a row), enough for most
/// directories a model reads whole. (The daemon's own default, for
/// `sshmcpctl` and scripts, is 10,000.)
const DEFAULT_MAX_ENTRIES: u64 = 300;

/// The `list_dir` tool.
pub struct ListDir;

/// The `list_dir` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDirArgs {
    pub host: String,
    pub path: String,
    #[serde(default)]
    pub recursive: bool,
    #[schemars(extend("default" = DEFAULT_MAX_ENTRIES))]
    pub max_entries: Option<Int<1, { MAX_LIST_ENTRIES as u64 }>>,
    pub max_age_secs: Option<Int<0, MAX_CACHE_SECS>>,
}

/// The `list_dir` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ListDirResult {
    pub path: String,
    pub entries: Vec<PathAttrs>,
    pub truncated: bool,
}

impl Tool for ListDir {
    const NAME: &'static str = "list_dir";
    const DESCRIPTION: &'static str = "List a remote directory, sorted by path; `recursive` for \
        the tree (symlinks not entered).";
    const EFFECT: Effect = Effect::READS;
    const CACHEABLE: bool = true;
    type Args = ListDirArgs;
    type Output = ListDirResult;
    type Asked = ();

    fn request(args: ListDirArgs) -> Result<(Request, ()), Error> {
        let Int(max_entries) = args.max_entries.unwrap_or(Int(DEFAULT_MAX_ENTRIES));
        let request = ListDirRequest {
            max_age_secs: args.max_age_secs.map(|Int(secs)| secs),
            host: args.host,
            path: remote_path(&args.path),
            recursive: args.recursive,
            // In range: `Int` took it from 1 to MAX_LIST_ENTRIES, a u32.
            max_entries: Some(u32::try_from(max_entries).unwrap_or(MAX_LIST_ENTRIES)),
        };
        Ok((Request::ListDir(request), ()))
    }

    fn answer((): (), response: Response) -> Option<ListDirResult> {
        match response {
            Response::ListDir(listing) => Some(ListDirResult {
                path: listing.path,
                entries: listing.entries.into_iter().map(PathAttrs::from).collect(),
                truncated: listing.truncated,
            }),
            _ => None,
        }
    }

    /// How to see the rest of a listing that was cut.
    fn note(result: &ListDirResult) -> Option<String> {
        result.truncated.then(|| {
            format!(
                "cut at {} entries: raise max_entries (up to {MAX_LIST_ENTRIES}) or list a \
                 subdirectory",
                result.entries.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use sshmcp_proto::{DirListing, FileKind, FileStat};

    use super::*;
    use crate::tools::text;

    fn stat(path: &str, kind: FileKind) -> FileStat {
        FileStat {
            path: path.into(),
            kind,
            size: 5,
            mode: 0o755,
            mtime: 0,
            uid: None,
            gid: None,
            link_target: (kind == FileKind::Symlink).then(|| "target".into()),
        }
    }

    fn listing(entries: Vec<FileStat>) -> ListDirResult {
        let response = Response::ListDir(DirListing {
            path: "/srv".into(),
            entries,
            truncated: true,
        });
        ListDir::answer((), response).unwrap()
    }

    #[test]
    fn max_entries_defaults_to_about_the_output_budget() {
        let args = ListDirArgs {
            host: "h".into(),
            path: "/srv".into(),
            recursive: true,
            max_entries: None,
            max_age_secs: None,
        };
        let (request, ()) = ListDir::request(args).unwrap();
        assert!(matches!(
            request,
            Request::ListDir(ListDirRequest {
                max_entries: Some(300),
                ..
            })
        ));
    }

    #[test]
    fn entries_carry_type_octal_mode_and_link_target() {
        let result = listing(vec![stat("l", FileKind::Symlink)]);
        assert_eq!(
            serde_json::to_value(&result.entries[0]).unwrap(),
            serde_json::json!({
                "path": "l", "type": "symlink", "size": 5, "mode": "0755", "mtime": 0,
                "link_target": "target",
            })
        );
    }

    #[test]
    fn text_is_a_table_of_every_entry() {
        let result = listing(vec![
            stat("a", FileKind::File),
            stat("l", FileKind::Symlink),
        ]);
        assert_eq!(
            text::render(&result, ListDir::BLOCKS).unwrap(),
            "path=/srv truncated=true\n\
             entries (2): path type size mode mtime link_target\n\
             a file 5 0755 0 -\n\
             l symlink 5 0755 0 target\n"
        );
    }
}
