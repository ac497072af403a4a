//! The `write_file` tool: replace or append to a remote file.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use schemars::JsonSchema;
use serde::Deserialize;
use sshmcp_proto::{Error, Request, Response, WriteFileRequest, WriteResult};

use super::attrs::{parse_mode, remote_path};
use super::{Effect, Tool, fits_one_frame};
use crate::encoding::Encoding;

/// The `write_file` tool.
pub struct WriteFile;

/// The `write_file` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFileArgs {
    pub host: String,
    pub path: String,
    pub content: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// Octal, e.g. "0644".
    pub mode: Option<String>,
    #[serde(default)]
    pub append: bool,
    #[serde(default)]
    pub create_dirs: bool,
}

impl Tool for WriteFile {
    const NAME: &'static str = "write_file";
    const DESCRIPTION: &'static str = "Write a remote file, replacing it atomically (or \
        `append`). `transfer` big files.";
    const EFFECT: Effect = Effect {
        destructive: true,
        ..Effect::CHANGES
    };
    type Args = WriteFileArgs;
    type Output = WriteResult;
    type Asked = ();

    fn request(args: WriteFileArgs) -> Result<(Request, ()), Error> {
        let data = match args.encoding {
            Encoding::Utf8 => args.content.into_bytes(),
            Encoding::Base64 => STANDARD.decode(args.content.trim()).map_err(|err| {
                Error::bad_request(format!(
                    "write_file: `content` is not valid base64 ({err}); with `encoding` \
                     \"base64\" pass standard base64, or use `encoding` \"utf8\" for text"
                ))
            })?,
        };
        fits_one_frame(
            "write_file",
            "`content`",
            data.len(),
            "Upload the file with `transfer`, or write it in parts with `append`",
        )?;
        let request = WriteFileRequest {
            host: args.host,
            path: remote_path(&args.path),
            data,
            mode: args
                .mode
                .as_deref()
                .map(|mode| parse_mode("mode", mode))
                .transpose()?,
            append: args.append,
            create_dirs: args.create_dirs,
        };
        Ok((Request::WriteFile(request), ()))
    }

    fn answer((): (), response: Response) -> Option<WriteResult> {
        match response {
            Response::WriteFile(written) => Some(written),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::MAX_FRAME_DATA;

    fn request(content: &str, encoding: Encoding, mode: Option<&str>) -> Result<Request, Error> {
        let args = WriteFileArgs {
            host: "h".into(),
            path: "~/f".into(),
            content: content.into(),
            encoding,
            mode: mode.map(Into::into),
            append: false,
            create_dirs: true,
        };
        Ok(WriteFile::request(args)?.0)
    }

    #[test]
    fn base64_content_is_decoded_and_the_mode_parsed() {
        let Request::WriteFile(request) = request("/wAB", Encoding::Base64, Some("755")).unwrap()
        else {
            panic!("not a write_file request");
        };
        assert_eq!(request.data, [0xff, 0, 1]);
        assert_eq!(request.mode, Some(0o755));
        assert_eq!(request.path, "f");
        assert!(request.create_dirs);
    }

    #[test]
    fn bad_base64_and_bad_modes_are_refused_naming_the_argument() {
        let err = request("not base64!", Encoding::Base64, None).unwrap_err();
        assert!(err.message.contains("`content`"), "{}", err.message);
        let err = request("x", Encoding::Utf8, Some("rw-r--r--")).unwrap_err();
        assert!(err.message.contains("`mode`"), "{}", err.message);
    }

    #[test]
    fn content_too_large_for_one_frame_points_to_transfer() {
        let big = "x".repeat(MAX_FRAME_DATA as usize + 1);
        let err = request(&big, Encoding::Utf8, None).unwrap_err();
        assert!(err.message.contains("`transfer`"), "{}", err.message);
    }
}
