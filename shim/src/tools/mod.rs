//! The MCP tools, one file each. Every tool forwards one request to the
//! daemon and turns its reply into a tool result: `structuredContent` that
//! matches the tool's `outputSchema`, plus a short text rendering for
//! clients and models that read only text.
//!
//! Failures of the call (the daemon's typed errors, an unreachable daemon,
//! bad arguments) are tool results with `isError: true` and a message that
//! says what to do, never JSON-RPC errors: the model sees them and can act.
//! They carry no `structuredContent`, so they need no place in the schema.

pub mod attrs;
pub mod exec;
pub mod hosts;
pub mod list_dir;
pub mod local_path;
pub mod mkdir;
pub mod read_file;
pub mod remove;
pub mod rename;
pub mod stat;
pub mod sync;
pub mod transfer;
pub mod write_file;

use rmcp::model::{CallToolResult, ContentBlock};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sshmcp_proto::client::ClientError;
use sshmcp_proto::{DEFAULT_MAX_FRAME, Direction, Error, Reply, Response};

/// The most file data one request or reply may carry. Both must fit in one
/// frame to the daemon (a frame too large closes the shim's shared
/// connection, failing every other call in flight with it); the margin
/// covers the paths and the frame's own encoding.
const MAX_FRAME_DATA: usize = DEFAULT_MAX_FRAME - 64 * 1024;

/// How file content travels in a tool's arguments or result, as the
/// caller asks for it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
// Inline in the schemas: some MCP clients do not follow `$ref`.
#[schemars(inline)]
pub enum ContentEncoding {
    /// Text, as UTF-8.
    #[default]
    Utf8,
    /// Standard base64 of the bytes: for binary content.
    Base64,
}

/// Which way `transfer` and `sync` move files, as their arguments name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
// Inline in the schemas: some MCP clients do not follow `$ref`.
#[schemars(inline)]
pub enum TransferDirection {
    /// From this machine to the host.
    Upload,
    /// From the host to this machine.
    Download,
}

impl From<TransferDirection> for Direction {
    fn from(direction: TransferDirection) -> Self {
        match direction {
            TransferDirection::Upload => Direction::Upload,
            TransferDirection::Download => Direction::Download,
        }
    }
}

/// Refuse an empty required argument, naming it and saying what it wants.
fn require(name: &str, value: &str, wanted: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::bad_request(format!(
            "`{name}` is empty: pass {wanted}"
        )));
    }
    Ok(())
}

/// Refuse an empty `host`.
fn require_host(host: &str) -> Result<(), Error> {
    require("host", host, "a host alias from the `hosts` tool")
}

/// The daemon's answer as the response the tool expects (`pick` returns
/// `None` for any other), or the tool result that says why there is none.
fn expect<T>(
    reply: Result<Reply, ClientError>,
    op: &str,
    pick: impl FnOnce(Response) -> Option<T>,
) -> Result<T, CallToolResult> {
    match reply {
        Ok(Ok(response)) => {
            let name = response.name();
            pick(response).ok_or_else(|| {
                failure(&Error::internal(format!(
                    "sshmcpd answered a {op} request with a {name} response"
                )))
            })
        }
        Ok(Err(error)) => Err(failure(&error)),
        Err(error) => Err(unavailable(&error)),
    }
}

/// A successful result: `value` as `structuredContent`, `text` as content.
fn success(value: &impl Serialize, text: String) -> CallToolResult {
    match serde_json::to_value(value) {
        Ok(structured) => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
            result.structured_content = Some(structured);
            result
        }
        Err(err) => failure(&Error::internal(format!(
            "sshmcp could not encode the result: {err}"
        ))),
    }
}

/// A failed call, as the daemon (or the shim's own checks) described it.
/// The kind comes first so a model can tell the failures apart at a glance.
fn failure(error: &Error) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "{}: {}",
        error.kind.as_str(),
        error.message
    ))])
}

/// The daemon could not be asked at all (not running, refused, gone). The
/// message already says how to start it or where it was looked for.
fn unavailable(error: &ClientError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}
