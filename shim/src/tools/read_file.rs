//! The `read_file` tool: bytes of a remote file, as text when they are text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rmcp::handler::server::tool::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{Error, FileContent, ReadFileRequest, Request, Response};

use super::attrs::remote_path;
use super::{ContentEncoding, MAX_FRAME_DATA, expect, failure, require, require_host, success};
use crate::encoding::{Encoding, encode};
use crate::server::SshMcp;

/// The `read_file` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    /// Host alias from the user's SSH config, as listed by the `hosts` tool.
    pub host: String,
    /// Remote file: absolute, or relative to the remote user's home (`~/` works too).
    pub path: String,
    /// Byte offset to start reading at. Default 0.
    #[schemars(extend("default" = 0))]
    pub offset: Option<u64>,
    /// Bytes to read at most. Default 1 MiB (1048576); at most about 16 MB per call.
    pub length: Option<u64>,
    /// `utf8` (default): the content as text, falling back to base64 when the bytes are not UTF-8. `base64`: always base64.
    #[serde(default)]
    pub encoding: ContentEncoding,
}

impl ReadFileArgs {
    /// The request for the daemon, or what is wrong with the arguments.
    pub fn into_request(self) -> Result<(ReadFileRequest, ContentEncoding), Error> {
        require_host(&self.host)?;
        require("path", &self.path, "the remote file to read")?;
        if let Some(length) = self.length
            && length > MAX_FRAME_DATA as u64
        {
            return Err(Error::bad_request(format!(
                "`length` is {length}; one call reads at most {MAX_FRAME_DATA} bytes. Read in \
                 pieces with `offset`, or copy the file here with `transfer`"
            )));
        }
        let request = ReadFileRequest {
            host: self.host,
            path: remote_path(&self.path),
            offset: self.offset.unwrap_or(0),
            length: self.length,
        };
        Ok((request, self.encoding))
    }
}

/// The `read_file` tool's `structuredContent`.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReadFileResult {
    /// The file as asked.
    pub path: String,
    /// The bytes read, encoded as `encoding` says.
    pub content: String,
    /// `utf8`: `content` is the text. `base64`: `content` is standard base64 of the bytes (asked for, or the bytes were not UTF-8).
    pub encoding: Encoding,
    /// The byte offset `content` starts at.
    pub offset: u64,
    /// The file's whole size in bytes.
    pub size: u64,
    /// How many of the file's bytes `content` holds.
    pub bytes_returned: u64,
    /// The file goes on past the returned bytes.
    pub truncated: bool,
    /// Where to continue reading (pass as `offset`) when `truncated`; else null.
    pub next_offset: Option<u64>,
}

#[tool_router(router = read_file_router, vis = "pub(crate)")]
impl SshMcp {
    #[tool(
        name = "read_file",
        description = "Read a file on a remote host over SFTP. Returns up to `length` bytes \
            (default 1 MiB) from `offset` (default 0), the file's whole `size`, and \
            `truncated` with `next_offset` when there is more: call again with that offset to \
            go on. With `encoding` \"utf8\" (the default) the content is the text; if the \
            bytes are not valid UTF-8 (a binary file) they come back as base64 instead and \
            `encoding` in the result says \"base64\", so nothing is lost. With \"base64\" the \
            content is always base64. For large files, copy them here with `transfer`. Paths \
            are absolute or relative to the remote user's home. Changes nothing.",
        annotations(
            title = "Read a remote file",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        ),
        output_schema = schema_for_output::<ReadFileResult>()
    )]
    async fn read_file(
        &self,
        Parameters(args): Parameters<ReadFileArgs>,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (request, encoding) = match args.into_request() {
            Ok(request) => request,
            Err(error) => return failure(&error),
        };
        let reply = self
            .forward_read_only(Request::ReadFile(request), &context)
            .await;
        match expect(reply, "read_file", |response| match response {
            Response::ReadFile(content) => Some(content),
            _ => None,
        }) {
            Ok(content) => {
                let (result, text) = present(content, encoding);
                success(&result, text)
            }
            Err(result) => result,
        }
    }
}

/// The structured result and its text rendering, from the daemon's bytes.
fn present(content: FileContent, requested: ContentEncoding) -> (ReadFileResult, String) {
    let read = content.data.len() as u64;
    let (text, encoding, returned) = match requested {
        ContentEncoding::Base64 => (STANDARD.encode(&content.data), Encoding::Base64, read),
        // A read cut short of the end may split the last character; `encode`
        // then leaves that character for the next read.
        ContentEncoding::Utf8 => match encode(content.data, content.truncated) {
            (text, Encoding::Utf8) => {
                let returned = text.len() as u64;
                (text, Encoding::Utf8, returned)
            }
            (text, Encoding::Base64) => (text, Encoding::Base64, read),
        },
    };
    let truncated = content.truncated || returned < read;
    let next_offset = truncated.then_some(content.offset + returned);
    let result = ReadFileResult {
        path: content.path,
        content: text,
        encoding,
        offset: content.offset,
        size: content.size,
        bytes_returned: returned,
        truncated,
        next_offset,
    };
    let mut rendered = String::new();
    if encoding == Encoding::Base64 {
        rendered.push_str(&format!(
            "{}: {returned} bytes, base64{}:\n",
            result.path,
            if requested == ContentEncoding::Utf8 {
                " (not UTF-8)"
            } else {
                ""
            }
        ));
    }
    rendered.push_str(&result.content);
    if let Some(next) = next_offset {
        if !rendered.ends_with('\n') {
            rendered.push('\n');
        }
        rendered.push_str(&format!(
            "[truncated: bytes {}..{} of {}; call again with offset={next} for more]",
            result.offset,
            result.offset + returned,
            result.size
        ));
    } else if result.size == 0 {
        rendered.push_str(&format!("({} is empty)", result.path));
    }
    (result, rendered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(data: &[u8], offset: u64, size: u64) -> FileContent {
        FileContent {
            path: "/f".into(),
            data: data.to_vec(),
            offset,
            size,
            truncated: offset + (data.len() as u64) < size,
        }
    }

    #[test]
    fn text_comes_back_as_is() {
        let (result, text) = present(content(b"hello\n", 0, 6), ContentEncoding::Utf8);
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({
                "path": "/f", "content": "hello\n", "encoding": "utf8", "offset": 0,
                "size": 6, "bytes_returned": 6, "truncated": false, "next_offset": null,
            })
        );
        assert_eq!(text, "hello\n");
    }

    #[test]
    fn binary_asked_as_utf8_comes_back_as_base64_and_says_so() {
        let (result, text) = present(content(&[0xff, 0, 1], 0, 3), ContentEncoding::Utf8);
        assert_eq!(result.encoding, Encoding::Base64);
        assert_eq!(result.content, "/wAB");
        assert_eq!(result.bytes_returned, 3);
        assert!(text.contains("(not UTF-8)"), "{text}");
    }

    #[test]
    fn base64_is_given_when_asked_even_for_text() {
        let (result, _) = present(content(b"hi", 0, 2), ContentEncoding::Base64);
        assert_eq!(
            (result.content.as_str(), result.encoding),
            ("aGk=", Encoding::Base64)
        );
    }

    #[test]
    fn a_character_split_by_the_length_is_left_for_the_next_read() {
        let bytes = "ab✓".as_bytes();
        let (result, text) = present(content(&bytes[..3], 10, 20), ContentEncoding::Utf8);
        assert_eq!(result.content, "ab");
        assert_eq!(result.bytes_returned, 2);
        assert!(result.truncated);
        assert_eq!(result.next_offset, Some(12));
        assert!(
            text.ends_with("call again with offset=12 for more]"),
            "{text}"
        );
    }

    #[test]
    fn too_long_a_length_is_refused_with_advice() {
        let args = ReadFileArgs {
            host: "h".into(),
            path: "/f".into(),
            offset: None,
            length: Some(u64::MAX),
            encoding: ContentEncoding::Utf8,
        };
        let err = args.into_request().unwrap_err();
        assert!(err.message.contains("`transfer`"), "{}", err.message);
    }

    #[test]
    fn an_unknown_encoding_is_refused_naming_the_choices() {
        let json = serde_json::json!({ "host": "h", "path": "/f", "encoding": "hex" });
        let err = serde_json::from_value::<ReadFileArgs>(json).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
