//! The `read_file` tool: bytes of a remote file, as text when they are text.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::{
    Error, ExecRequest, FileContent, MAX_CACHE_SECS, MAX_OFFSET, ReadFileRequest, Request, Response,
};

use super::arguments::Int;
use super::attrs::remote_path;
use super::{Effect, MAX_FRAME_DATA, Tool};
use crate::encoding::{Encoding, encode};

/// The `read_file` tool.
pub struct ReadFile;

/// The `read_file` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFileArgs {
    pub host: String,
    pub path: String,
    pub offset: Option<Int<0, MAX_OFFSET>>,
    #[schemars(extend("default" = ExecRequest::MCP_MAX_OUTPUT))]
    pub length: Option<Int<0, MAX_FRAME_DATA>>,
    /// base64: even for text.
    #[serde(default)]
    pub encoding: Encoding,
    pub max_age_secs: Option<Int<0, MAX_CACHE_SECS>>,
}

/// The `read_file` tool's `structuredContent`: the daemon's
/// [`FileContent`] with the bytes as text when they are UTF-8 (and asked
/// for so), else as base64.
#[derive(Debug, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ReadFileResult {
    pub path: String,
    pub content: String,
    pub encoding: Encoding,
    pub offset: u64,
    pub size: u64,
    pub bytes_returned: u64,
    pub truncated: bool,
    /// Where to go on reading when `truncated`.
    pub next_offset: Option<u64>,
}

impl Tool for ReadFile {
    const NAME: &'static str = "read_file";
    const DESCRIPTION: &'static str = "Read `length` bytes of a remote file from `offset`, non-UTF-8 as base64; if truncated, go on at `next_offset`. `transfer` big files.";
    const EFFECT: Effect = Effect::READS;
    const CACHEABLE: bool = true;
    const BLOCKS: &'static [&'static str] = &["content"];
    type Args = ReadFileArgs;
    type Output = ReadFileResult;
    type Asked = Encoding;

    fn request(args: ReadFileArgs) -> Result<(Request, Encoding), Error> {
        let request = ReadFileRequest {
            max_age_secs: args.max_age_secs.map(|Int(secs)| secs),
            host: args.host,
            path: remote_path(&args.path),
            offset: args.offset.map_or(0, |Int(offset)| offset),
            // The output budget a model reads well; `next_offset` pages on.
            length: Some(
                args.length
                    .map_or(ExecRequest::MCP_MAX_OUTPUT, |Int(length)| length),
            ),
        };
        Ok((Request::ReadFile(request), args.encoding))
    }

    fn answer(asked: Encoding, response: Response) -> Option<ReadFileResult> {
        match response {
            Response::ReadFile(content) => Some(present(content, asked)),
            _ => None,
        }
    }
}

/// The structured result, from the daemon's bytes.
fn present(content: FileContent, asked: Encoding) -> ReadFileResult {
    let read = content.data.len() as u64;
    let (text, encoding, returned) = match asked {
        Encoding::Base64 => (STANDARD.encode(&content.data), Encoding::Base64, read),
        // A read cut short of the end may split the last character; `encode`
        // then leaves that character for the next read.
        Encoding::Utf8 => match encode(content.data, content.truncated) {
            (text, Encoding::Utf8) => {
                let returned = text.len() as u64;
                (text, Encoding::Utf8, returned)
            }
            (text, Encoding::Base64) => (text, Encoding::Base64, read),
        },
    };
    let truncated = content.truncated || returned < read;
    ReadFileResult {
        path: content.path,
        content: text,
        encoding,
        offset: content.offset,
        size: content.size,
        bytes_returned: returned,
        truncated,
        next_offset: truncated.then_some(content.offset + returned),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::text;

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
        let result = present(content(b"hello\n", 0, 6), Encoding::Utf8);
        assert_eq!(
            serde_json::to_value(&result).unwrap(),
            serde_json::json!({
                "path": "/f", "content": "hello\n", "encoding": "utf8", "offset": 0,
                "size": 6, "bytes_returned": 6, "truncated": false, "next_offset": null,
            })
        );
        assert_eq!(
            text::render(&result, ReadFile::BLOCKS).unwrap(),
            "path=/f encoding=utf8 offset=0 size=6 bytes_returned=6 truncated=false \
             next_offset=null\n--- content ---\nhello\n"
        );
    }

    #[test]
    fn binary_asked_as_utf8_comes_back_as_base64_and_says_so() {
        let result = present(content(&[0xff, 0, 1], 0, 3), Encoding::Utf8);
        assert_eq!(result.encoding, Encoding::Base64);
        assert_eq!(result.content, "/wAB");
        assert_eq!(result.bytes_returned, 3);
    }

    #[test]
    fn base64_is_given_when_asked_even_for_text() {
        let result = present(content(b"hi", 0, 2), Encoding::Base64);
        assert_eq!(
            (result.content.as_str(), result.encoding),
            ("aGk=", Encoding::Base64)
        );
    }

    #[test]
    fn a_character_split_by_the_length_is_left_for_the_next_read() {
        let bytes = "ab✓".as_bytes();
        let result = present(content(&bytes[..3], 10, 20), Encoding::Utf8);
        assert_eq!(result.content, "ab");
        assert_eq!(result.bytes_returned, 2);
        assert!(result.truncated);
        assert_eq!(result.next_offset, Some(12));
    }

    #[test]
    fn too_long_a_length_is_refused_naming_it_and_the_most_one_call_reads() {
        let json = serde_json::json!({ "host": "h", "path": "/f", "length": u64::MAX });
        let err = crate::tools::arguments::parse::<ReadFileArgs>("read_file", json).unwrap_err();
        assert!(
            err.message.contains(&format!(
                "`length`: expected an integer from 0 to {MAX_FRAME_DATA}"
            )),
            "{}",
            err.message
        );
    }

    #[test]
    fn offset_has_no_maximum_past_what_json_numbers_hold() {
        let schema = crate::tools::schema::input::<ReadFileArgs>();
        assert_eq!(
            schema["properties"]["offset"],
            serde_json::json!({ "type": "integer", "minimum": 0 })
        );
    }

    #[test]
    fn an_unknown_encoding_is_refused_naming_the_choices() {
        let json = serde_json::json!({ "host": "h", "path": "/f", "encoding": "hex" });
        let err = serde_json::from_value::<ReadFileArgs>(json).unwrap_err();
        assert!(err.to_string().contains("base64"), "{err}");
    }
}
