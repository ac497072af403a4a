//! The MCP tools. Each is a [`Tool`]: how its arguments become one daemon
//! request, and how the daemon's answer becomes its result. Everything
//! else is shared, in [`SshMcp::run`]: reading the arguments, checking them
//! as the daemon would (`Request::validate`), forwarding with cancel and
//! progress, and turning the outcome into a tool result whose
//! `structuredContent` matches the tool's `outputSchema` and whose text
//! carries the same fields, compact, for models that read only text.
//!
//! Failures of the call (the daemon's typed errors, an unreachable daemon,
//! bad arguments) are tool results with `isError: true` and a message that
//! says what to do, never JSON-RPC errors: the model sees them and can act.
//! They carry no `structuredContent`, so they need no place in the schema.

pub mod arguments;
pub mod attrs;
pub mod exec;
pub mod hosts;
pub mod list_dir;
pub mod local_path;
pub mod mkdir;
pub mod read_file;
pub mod remove;
pub mod rename;
pub mod schema;
pub mod selection;
pub mod stat;
pub mod sync;
pub mod text;
pub mod transfer;
pub mod write_file;

use std::future::Future;
use std::pin::Pin;

use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, JsonObject, ToolAnnotations};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sshmcp_proto::client::ClientError;
use sshmcp_proto::{DEFAULT_MAX_FRAME, Error, Request, Response, max_read_per_reply};

use crate::server::SshMcp;

/// The most file data one request or reply may carry: what fits in one
/// frame to the daemon beside the rest of the message. A request too large
/// would be refused by the client before it is sent, without naming the
/// argument at fault, so the tools check their data against this first.
const MAX_FRAME_DATA: u64 = max_read_per_reply(DEFAULT_MAX_FRAME);

/// One MCP tool over one daemon request.
pub trait Tool: 'static {
    /// The name clients call it by.
    const NAME: &'static str;
    /// What it does and when to use it, for the model: once, briefly.
    const DESCRIPTION: &'static str;
    /// What it does to the world, for the client's annotations.
    const EFFECT: Effect;
    /// String fields of the result shown as blocks of text (command
    /// output, file content) rather than as `key=value`.
    const BLOCKS: &'static [&'static str] = &[];
    /// Its arguments. Unknown ones are refused (`deny_unknown_fields`), so
    /// a model that guesses at an option hears that it does not exist.
    type Args: DeserializeOwned + JsonSchema;
    /// Its result, as `structuredContent`.
    type Output: Serialize + JsonSchema;
    /// What [`Tool::answer`] needs from the call besides the daemon's
    /// response (the encoding asked for, the paths sent).
    type Asked: Send;
    /// The daemon request for `args`, or what is wrong with them. What
    /// `Request::validate` checks is left to it: it runs on every request
    /// before it is sent.
    fn request(args: Self::Args) -> Result<(Request, Self::Asked), Error>;
    /// The result, from the daemon's response; `None` when the response is
    /// not the kind this request gets.
    fn answer(asked: Self::Asked, response: Response) -> Option<Self::Output>;
}

/// What a tool does to the world: MCP's tool annotations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effect {
    /// It changes nothing.
    pub read_only: bool,
    /// It may overwrite or delete, not only add.
    pub destructive: bool,
    /// Calling it again with the same arguments changes nothing more.
    pub idempotent: bool,
    /// It reaches the user's hosts, not only the local daemon.
    pub open_world: bool,
}

impl Effect {
    /// Reads a host and changes nothing.
    pub const READS: Effect = Effect {
        read_only: true,
        destructive: false,
        idempotent: true,
        open_world: true,
    };

    /// Changes a host by adding to it; tools that may also overwrite or
    /// delete say `destructive`.
    pub const CHANGES: Effect = Effect {
        read_only: false,
        destructive: false,
        idempotent: false,
        open_world: true,
    };
}

/// Every tool, in the order `--help` lists them.
pub fn all() -> Vec<ToolRoute<SshMcp>> {
    vec![
        route::<hosts::Hosts>(),
        route::<exec::Exec>(),
        route::<stat::Stat>(),
        route::<list_dir::ListDir>(),
        route::<read_file::ReadFile>(),
        route::<write_file::WriteFile>(),
        route::<mkdir::Mkdir>(),
        route::<remove::Remove>(),
        route::<rename::Rename>(),
        route::<transfer::Transfer>(),
        route::<sync::DirSync>(),
    ]
}

/// Tool `T` as rmcp lists and calls it.
fn route<T: Tool>() -> ToolRoute<SshMcp> {
    let effect = T::EFFECT;
    let annotations = ToolAnnotations::new()
        .read_only(effect.read_only)
        .destructive(effect.destructive)
        .idempotent(effect.idempotent)
        .open_world(effect.open_world);
    let tool = rmcp::model::Tool::new(T::NAME, T::DESCRIPTION, schema::input::<T::Args>())
        .with_raw_output_schema(schema::output::<T::Output>())
        .with_annotations(annotations);
    ToolRoute::new_dyn(tool, call::<T>)
}

/// A call of tool `T`, as rmcp hands it over.
fn call<T: Tool>(
    call: ToolCallContext<'_, SshMcp>,
) -> Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send + '_>> {
    let ToolCallContext {
        service,
        arguments,
        request_context,
        ..
    } = call;
    Box::pin(async move {
        let result = service
            .run::<T>(arguments.unwrap_or_default(), request_context)
            .await;
        Ok(result.into())
    })
}

impl SshMcp {
    /// The one path every tool call takes, from its arguments to its result.
    async fn run<T: Tool>(
        &self,
        arguments: JsonObject,
        context: RequestContext<RoleServer>,
    ) -> CallToolResult {
        let (request, asked) = match prepare::<T>(arguments) {
            Ok(call) => call,
            Err(error) => return failure(&error),
        };
        let reply = if T::EFFECT.read_only {
            self.forward_read_only(request, &context).await
        } else {
            self.forward(request, &context).await
        };
        match reply {
            Ok(Ok(response)) => {
                let name = response.name();
                match T::answer(asked, response) {
                    Some(output) => success(&output, T::BLOCKS),
                    None => failure(&Error::internal(format!(
                        "sshmcpd answered a {} request with a {name} response",
                        T::NAME
                    ))),
                }
            }
            Ok(Err(error)) => failure(&error),
            Err(error) => unavailable(&error),
        }
    }
}

/// The daemon request for a call of `T` with `arguments`, checked; or
/// what is wrong with the arguments, naming the one at fault.
fn prepare<T: Tool>(arguments: JsonObject) -> Result<(Request, T::Asked), Error> {
    let args = arguments::parse(T::NAME, Value::Object(arguments))?;
    let (request, asked) = T::request(args)?;
    check(&request)?;
    Ok((request, asked))
}

/// What the daemon would refuse, refused before it is sent, with the same
/// message.
fn check(request: &Request) -> Result<(), Error> {
    request.validate(DEFAULT_MAX_FRAME)
}

/// Refuse data (`what`, in `op`'s arguments) that cannot travel in one
/// frame, saying what to do instead.
fn fits_one_frame(op: &str, what: &str, bytes: usize, instead: &str) -> Result<(), Error> {
    if bytes as u64 <= MAX_FRAME_DATA {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "{op}: {what} is {bytes} bytes; one call carries at most {MAX_FRAME_DATA}. {instead}"
    )))
}

/// A successful result: `output` as `structuredContent`, and as text.
fn success(output: &impl Serialize, blocks: &[&str]) -> CallToolResult {
    let encoded = serde_json::to_value(output)
        .and_then(|structured| Ok((structured, text::render(output, blocks)?)));
    match encoded {
        Ok((structured, text)) => {
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

#[cfg(test)]
mod tests {
    use sshmcp_proto::ErrorKind;

    use super::*;

    #[test]
    fn every_tool_has_object_schemas_and_a_short_description() {
        for route in all() {
            let tool = &route.attr;
            assert_eq!(tool.input_schema["type"], "object", "{}", tool.name);
            let output = tool.output_schema.as_ref().expect("an output schema");
            assert_eq!(output["type"], "object", "{}", tool.name);
            let description = tool.description.as_deref().unwrap_or_default();
            assert!(
                !description.is_empty() && description.len() <= 300,
                "{}: {} characters",
                tool.name,
                description.len()
            );
            assert!(!description.contains("~/.ssh/config"), "{}", tool.name);
        }
    }

    #[test]
    fn an_empty_host_is_refused_naming_it_and_validate_runs() {
        let stat = |host: &str, path: &str| {
            Request::Stat(sshmcp_proto::StatRequest {
                max_age_secs: None,
                host: host.into(),
                path: path.into(),
                follow_symlinks: false,
            })
        };
        let err = check(&stat(" ", "/x")).unwrap_err();
        assert!(err.message.contains("`host`"), "{}", err.message);
        let err = check(&stat("h", "/a\0b")).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(err.message.contains("NUL"), "{}", err.message);
        assert!(check(&stat("h", "/etc/hosts")).is_ok());
    }
}
