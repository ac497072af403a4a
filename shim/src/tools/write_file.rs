//! The `write_file` tool: replace or append to a remote file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, Request, Response, WriteFileRequest, WriteResult};

use super::attrs::{parse_mode, remote_path};
use super::{ContentEncoding, MAX_FRAME_DATA, expect, failure, require, require_host, success};
use crate::server::SshMcp;

/// The `write_file` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote file: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// The new content, encoded as `encoding` says.
    pub content: String,
    /// `utf8` (default): `content` is text. `base64`: `content` is standard base64 of the bytes.
    #[serde(default)]
    pub encoding: ContentEncoding,
    /// Permission bits as an octal string, e.g. "0644" or "755". Default: the old file's, else 0644 less the umask.
    pub mode: Option<String>,
    /// Append to the file instead of replacing it. Default false.
    #[serde(default)]
    pub append: bool,
    /// Create missing parent directories. Default false.
    #[serde(default)]
    pub create_dirs: bool,
}

impl WriteFileArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<WriteFileRequest, Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote file to write")?;
        let data = match self.encoding {
            ContentEncoding::Utf8 => self.content.into_bytes(),
            ContentEncoding::Base64 => STANDARD.decode(self.content.trim()).map_err(|err| {
                Error::bad_request(format!(
                    "`content` is not valid base64 ({err}); with `encoding` \"base64\" pass \
                     standard base64, or use `encoding` \"utf8\" for text"
                ))
            })?,
        };
        if data.len() > MAX_FRAME_DATA {
            return Err(Error::bad_request(format!(
                "`content` holds {} bytes; one write takes at most {MAX_FRAME_DATA}. Write the \
                 file locally and upload it with `transfer`",
                data.len()
            )));
        }
        let mode = self
            .mode
            .as_deref()
            .map(|mode| parse_mode("mode", mode))
            .transpose()?;
        Ok(WriteFileRequest {
            host: self.host,
            path: remote_path(&self.path),
            data,
            mode,
            append: self.append,
            create_dirs: self.create_dirs,
        })
    }
}

/// The `write_file` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct WriteFileResult {
    /// The file as asked.
    pub path: String,
    /// Bytes written.
    pub bytes_written: u64,
    /// The file did not exist before.
    pub created: bool,
}

impl From<WriteResult> for WriteFileResult {
    fn from(write: WriteResult) -> Self {
        WriteFileResult {
            path: write.path,
            bytes_written: write.bytes_written,
            created: write.created,
        }
    }
}

#[tool_router(router = write_file_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "write_file",
        description = "Write a file on a remote host over SFTP. By default the file is replaced \
            atomically: the bytes go to a temporary file next to it that is renamed over it \
            only when complete, so readers never see a half-written file and a failed write \
            leaves the old one intact. `append` adds to the end instead. `content` is text \
            (`encoding` \"utf8\", the default) or base64 of binary bytes (`encoding` \
            \"base64\"). `mode` sets permission bits as an octal string (\"0644\", \"755\"); \
            by default a replaced file keeps its mode. `create_dirs` makes missing parent \
            directories. One call writes at most about 16 MB; upload larger files with \
            `transfer`. Paths are absolute or relative to the remote user's home. Overwrites \
            without asking.",
        annotations(
            title = "Write a remote file",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = false,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<WriteFileResult>()
    )]
    async fn write_file(
        &self,
        Parameters(args): Parameters<WriteFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let append = args.append;
        let request = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let reply = self.forward(Request::WriteFile(request), &context).await;
        match expect(reply, "write_file", |response| match response {
            Response::WriteFile(write) => Some(write),
            _ => None,
        }) {
            Ok(write) => {
                let result = WriteFileResult::from(write);
                let text = render(&result, append);
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

/// One line for clients that show only text.
fn render(write: &WriteFileResult, append: bool) -> String {
    let (verb, how) = match (append, write.created) {
        (_, true) => ("wrote", "new file"),
        (true, false) => ("appended", "to the existing file"),
        (false, false) => ("wrote", "replaced the old content"),
    };
    format!(
        "{verb} {} bytes to {} ({how})",
        write.bytes_written, write.path
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(content: &str, encoding: ContentEncoding, mode: Option<&str>) -> WriteFileArgs {
        WriteFileArgs {
            host: "h".into(),
            path: "~/f".into(),
            content: content.into(),
            encoding,
            mode: mode.map(Into::into),
            append: false,
            create_dirs: true,
        }
    }

    #[test]
    fn base64_content_is_decoded_and_the_mode_parsed() {
        let request = args("/wAB", ContentEncoding::Base64, Some("755"))
            .into_request()
            .unwrap();
        assert_eq!(request.data, [0xff, 0, 1]);
        assert_eq!(request.mode, Some(0o755));
        assert_eq!(request.path, "f");
        assert!(request.create_dirs);
    }

    #[test]
    fn bad_base64_and_bad_modes_are_refused_naming_the_argument() {
        let err = args("not base64!", ContentEncoding::Base64, None)
            .into_request()
            .unwrap_err();
        assert!(err.message.contains("`content`"), "{}", err.message);
        let err = args("x", ContentEncoding::Utf8, Some("rw-r--r--"))
            .into_request()
            .unwrap_err();
        assert!(err.message.contains("`mode`"), "{}", err.message);
    }

    #[test]
    fn content_too_large_for_one_frame_points_to_transfer() {
        let big = "x".repeat(MAX_FRAME_DATA + 1);
        let err = args(&big, ContentEncoding::Utf8, None)
            .into_request()
            .unwrap_err();
        assert!(err.message.contains("`transfer`"), "{}", err.message);
    }

    #[test]
    fn text_says_what_happened_to_the_file() {
        let write = WriteFileResult {
            path: "/f".into(),
            bytes_written: 3,
            created: false,
        };
        assert_eq!(
            render(&write, true),
            "appended 3 bytes to /f (to the existing file)"
        );
        assert_eq!(
            render(&write, false),
            "wrote 3 bytes to /f (replaced the old content)"
        );
    }
}
