//! The MCP tools, one file each. Every tool forwards one request to the
//! daemon and turns its reply into a tool result: `structuredContent` that
//! matches the tool's `outputSchema`, plus a short text rendering for
//! clients and models that read only text.
//!
//! Failures of the call (the daemon's typed errors, an unreachable daemon,
//! bad arguments) are tool results with `isError: true` and a message that
//! says what to do, never JSON-RPC errors: the model sees them and can act.
//! They carry no `structuredContent`, so they need no place in the schema.

pub mod exec;
pub mod hosts;

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;
use sshmcp_proto::Error;
use sshmcp_proto::client::ClientError;

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
