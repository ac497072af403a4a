//! The `list_dir` tool: a remote directory's entries, like `ls -l`.

use std::fmt::Write as _;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{DirListing, Error, FileStat, ListDirRequest, Request, Response};

use super::attrs::{FileType, ls_line, octal_mode, remote_path};
use super::{expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// Entries listed when the caller does not say: enough for any directory a
/// model reads whole, small enough not to flood its context.
const DEFAULT_MAX_ENTRIES: u32 = 1000;

/// The most entries one call may ask for; larger trees are listed a
/// subdirectory at a time.
const MAX_ENTRIES: u32 = 100_000;

/// Lines of the text rendering; `structuredContent` has every entry.
const TEXT_LINES: usize = 200;

/// The `list_dir` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDirArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote directory: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// List subdirectories' contents too (symlinked directories are listed, not entered). Default false.
    #[serde(default)]
    pub recursive: bool,
    /// Stop after this many entries and set `truncated`. Default 1000, at most 100000.
    #[schemars(range(min = 1, max = 100_000), extend("default" = 1000))]
    pub max_entries: Option<u32>,
}

impl ListDirArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<ListDirRequest, Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote directory to list")?;
        let max_entries = self.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        if !(1..=MAX_ENTRIES).contains(&max_entries) {
            return Err(Error::bad_request(format!(
                "`max_entries` is {max_entries}; give 1 to {MAX_ENTRIES}, and list large trees \
                 one subdirectory at a time"
            )));
        }
        Ok(ListDirRequest {
            host: self.host,
            path: remote_path(&self.path),
            recursive: self.recursive,
            max_entries: Some(max_entries),
        })
    }
}

/// The `list_dir` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ListDirResult {
    /// The directory as asked.
    pub path: String,
    /// The entries, sorted by path; `.` and `..` are left out.
    pub entries: Vec<Entry>,
    /// `max_entries` was reached before the listing was complete.
    pub truncated: bool,
}

/// One directory entry.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Entry {
    /// Path relative to the listed directory (`sub/file` in a recursive listing).
    pub path: String,
    /// What the entry is: file, dir, symlink or other (device, socket, FIFO).
    #[serde(rename = "type")]
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits as an octal string, e.g. "0644".
    pub mode: String,
    /// Last modification, in seconds since the Unix epoch.
    pub mtime: u64,
    /// Where a symlink points, when the entry is one; else null.
    pub link_target: Option<String>,
}

impl From<FileStat> for Entry {
    fn from(stat: FileStat) -> Self {
        Entry {
            path: stat.path,
            kind: stat.kind.into(),
            size: stat.size,
            mode: octal_mode(stat.mode),
            mtime: stat.mtime,
            link_target: stat.link_target,
        }
    }
}

#[tool_router(router = list_dir_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "list_dir",
        description = "List a directory on a remote host over SFTP, like `ls -l`: each entry's \
            path (relative to the directory), type (file, dir, symlink, other), size, octal \
            mode, modification time (Unix seconds) and symlink target, sorted by path. \
            `recursive` lists the whole tree below it (symlinked directories are not entered). \
            At most `max_entries` (default 1000) are returned; `truncated` says whether there \
            were more. The text rendering shows the first 200 entries; structuredContent has \
            them all. Paths are absolute or relative to the remote user's home. Changes nothing.",
        annotations(
            title = "List a remote directory",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<ListDirResult>()
    )]
    async fn list_dir(
        &self,
        Parameters(args): Parameters<ListDirArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let max_entries = request.max_entries.unwrap_or(DEFAULT_MAX_ENTRIES);
        let reply = self
            .forward_read_only(Request::ListDir(request), &context)
            .await;
        match expect(reply, "list_dir", |response| match response {
            Response::ListDir(listing) => Some(listing),
            _ => None,
        }) {
            Ok(listing) => {
                let text = render(&listing, max_entries);
                let result = ListDirResult {
                    path: listing.path,
                    entries: listing.entries.into_iter().map(Entry::from).collect(),
                    truncated: listing.truncated,
                };
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

/// A header and up to [`TEXT_LINES`] `ls -l` lines.
fn render(listing: &DirListing, max_entries: u32) -> String {
    let count = listing.entries.len();
    let mut text = format!(
        "{}: {count} entr{}{}\n",
        listing.path,
        if count == 1 { "y" } else { "ies" },
        if listing.truncated {
            format!(
                " (truncated at max_entries={max_entries}; list a subdirectory or raise \
                 max_entries)"
            )
        } else {
            String::new()
        }
    );
    for stat in listing.entries.iter().take(TEXT_LINES) {
        text.push_str(&ls_line(
            stat.kind.into(),
            stat.mode,
            stat.size,
            stat.mtime,
            &stat.path,
            stat.link_target.as_deref(),
        ));
        text.push('\n');
    }
    if count > TEXT_LINES {
        let _ = writeln!(
            text,
            "... {} more entries in structuredContent",
            count - TEXT_LINES
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::FileKind;

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

    #[test]
    fn max_entries_defaults_and_is_bounded() {
        let args = |max_entries| ListDirArgs {
            host: "h".into(),
            path: "/srv".into(),
            recursive: true,
            max_entries,
        };
        assert_eq!(args(None).into_request().unwrap().max_entries, Some(1000));
        for bad in [0, MAX_ENTRIES + 1] {
            let err = args(Some(bad)).into_request().unwrap_err();
            assert!(err.message.contains("`max_entries`"), "{}", err.message);
        }
    }

    #[test]
    fn entries_carry_type_octal_mode_and_link_target() {
        let entry = Entry::from(stat("l", FileKind::Symlink));
        assert_eq!(
            serde_json::to_value(entry).unwrap(),
            serde_json::json!({
                "path": "l", "type": "symlink", "size": 5, "mode": "0755", "mtime": 0,
                "link_target": "target",
            })
        );
    }

    #[test]
    fn text_is_ls_like_and_capped() {
        let listing = DirListing {
            path: "/srv".into(),
            entries: (0..TEXT_LINES + 5)
                .map(|i| stat(&format!("f{i:03}"), FileKind::File))
                .collect(),
            truncated: true,
        };
        let text = render(&listing, 205);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "/srv: 205 entries (truncated at max_entries=205; list a subdirectory or \
                 raise max_entries)"
            )
        );
        assert_eq!(
            lines.next(),
            Some("-rwxr-xr-x          5 1970-01-01 00:00 f000")
        );
        assert_eq!(
            text.lines().last(),
            Some("... 5 more entries in structuredContent")
        );
        assert_eq!(text.lines().count(), TEXT_LINES + 2);
    }
}
