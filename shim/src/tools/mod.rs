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
//!
//! The daemon may answer a read from its cache (`Response::Cached`); the
//! tool then answers as it would from the host, and its result adds
//! `cached: true` and `age_ms`. The `batch` tool prepares and answers each
//! of its calls along the same path ([`Prepared`]), so a call in a batch
//! is checked and reported exactly as it would be on its own.

pub mod arguments;
pub mod attrs;
pub mod batch;
pub mod exec;
pub mod hosts;
pub mod jobs;
pub mod list_dir;
pub mod local_path;
pub mod mkdir;
pub mod read_file;
pub mod remove;
pub mod rename;
pub mod schema;
pub mod selection;
pub mod shells;
pub mod stat;
pub mod sync;
pub mod tasks;
pub mod text;
pub mod transfer;
pub mod write_file;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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
use sshmcp_proto::{Cached, DEFAULT_MAX_FRAME, Error, Request, Response, max_read_per_reply};

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
    /// The daemon may answer it from its cache: its output schema declares
    /// `cached` and `age_ms`, which such results carry.
    const CACHEABLE: bool = false;
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
    /// A line of guidance for the model about this result, shown in its
    /// text after the fields (what to call next); none by default.
    fn note(_output: &Self::Output) -> Option<String> {
        None
    }
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

    /// The effect as MCP's tool annotations, each hint given only where
    /// it says what its default in the MCP spec does not (every tool is
    /// listed in every session, so every word costs context): read-only
    /// when it is (default: not), and then nothing more, as the other hints
    /// mean nothing for such a tool; otherwise always whether it is
    /// destructive (default: yes), which clients ask confirmation on, and
    /// idempotent when it is (default: not); open-world when it is not
    /// (default: it is).
    fn annotations(self) -> ToolAnnotations {
        let changes = !self.read_only;
        ToolAnnotations::from_raw(
            None,
            self.read_only.then_some(true),
            changes.then_some(self.destructive),
            (changes && self.idempotent).then_some(true),
            (!self.open_world).then_some(false),
        )
    }
}

/// How a batch prepares a call of one tool from its arguments.
type Prepare = fn(JsonObject) -> Result<Prepared, Error>;

/// A tool as the shim knows it.
struct Listed {
    name: &'static str,
    /// The tool as rmcp lists and calls it.
    route: fn() -> ToolRoute<SshMcp>,
    /// How a batch prepares a call of it; `None` for the tools a batch
    /// cannot carry.
    prepare: Option<Prepare>,
}

impl Listed {
    /// A tool whose calls a batch may carry: one that works on a host or
    /// a job.
    const fn batchable<T: Tool>() -> Listed {
        Listed {
            name: T::NAME,
            route: route::<T>,
            prepare: Some(prepare_call::<T>),
        }
    }
}

/// Every tool, in the order `--help` lists them. `hosts` and `jobs` ask
/// the daemon about itself (admin requests, which a daemon's batch
/// refuses), and `batch` holds calls rather than being one: a batch
/// carries none of them. Nor does it carry the shell tools: a shell runs
/// one command at a time, and a batch's calls have no order to take turns
/// in.
const TOOLS: [Listed; 18] = [
    Listed {
        name: hosts::Hosts::NAME,
        route: route::<hosts::Hosts>,
        prepare: None,
    },
    Listed::batchable::<exec::Exec>(),
    Listed::batchable::<stat::Stat>(),
    Listed::batchable::<list_dir::ListDir>(),
    Listed::batchable::<read_file::ReadFile>(),
    Listed::batchable::<write_file::WriteFile>(),
    Listed::batchable::<mkdir::Mkdir>(),
    Listed::batchable::<remove::Remove>(),
    Listed::batchable::<rename::Rename>(),
    Listed::batchable::<transfer::Transfer>(),
    Listed::batchable::<sync::DirSync>(),
    Listed {
        name: batch::NAME,
        route: batch::route,
        prepare: None,
    },
    Listed::batchable::<jobs::JobOutput>(),
    Listed::batchable::<jobs::JobSignal>(),
    Listed {
        name: jobs::Jobs::NAME,
        route: route::<jobs::Jobs>,
        prepare: None,
    },
    Listed {
        name: shells::ShellOpen::NAME,
        route: route::<shells::ShellOpen>,
        prepare: None,
    },
    Listed {
        name: shells::ShellExec::NAME,
        route: route::<shells::ShellExec>,
        prepare: None,
    },
    Listed {
        name: shells::ShellClose::NAME,
        route: route::<shells::ShellClose>,
        prepare: None,
    },
];

/// Every tool, in the order `--help` lists them.
pub fn all() -> Vec<ToolRoute<SshMcp>> {
    TOOLS.iter().map(|tool| (tool.route)()).collect()
}

/// Tool `T` as rmcp lists and calls it.
fn route<T: Tool>() -> ToolRoute<SshMcp> {
    let output = if T::CACHEABLE {
        schema::output::<Answered<T::Output>>()
    } else {
        schema::output::<T::Output>()
    };
    let tool = rmcp::model::Tool::new(T::NAME, T::DESCRIPTION, schema::input::<T::Args>())
        .with_raw_output_schema(output)
        .with_annotations(T::EFFECT.annotations());
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
            Ok(Ok(response)) => match answer::<T>(asked, response) {
                Ok(result) => success(result),
                Err(error) => failure(&error),
            },
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

/// `T`'s result from the daemon's response to its request: the tool's
/// output, with `cached` and `age_ms` when the daemon's cache answered.
fn answer<T: Tool>(asked: T::Asked, response: Response) -> Result<Rendered, Error> {
    let (response, cache) = match response {
        Response::Cached(Cached { age_ms, response }) if T::CACHEABLE => (
            Arc::unwrap_or_clone(response),
            Some(FromCache {
                cached: true,
                age_ms,
            }),
        ),
        response => (response, None),
    };
    let name = response.name();
    let output = T::answer(asked, response).ok_or_else(|| {
        Error::internal(format!(
            "sshmcpd answered a {} request with a {name} response",
            T::NAME
        ))
    })?;
    let note = T::note(&output);
    let mut rendered = Rendered::new(&Answered { output, cache }, T::BLOCKS)?;
    if let Some(note) = note {
        rendered.add_note(&note);
    }
    Ok(rendered)
}

/// A call of some tool made ready for the daemon: its request, checked,
/// and how the daemon's response becomes the tool's result.
pub struct Prepared {
    pub request: Request,
    /// The tool changes nothing, so a call cut off by a daemon restart may
    /// simply be asked again.
    pub read_only: bool,
    pub answer: Answer,
}

/// How the daemon's response to a [`Prepared`] call becomes its result.
pub struct Answer(Box<dyn FnOnce(Response) -> Result<Rendered, Error> + Send>);

impl Answer {
    /// The call's result, or why `response` does not answer it.
    pub fn to(self, response: Response) -> Result<Rendered, Error> {
        (self.0)(response)
    }
}

/// A call of `T` with `arguments`, prepared as [`SshMcp::run`] prepares
/// one.
fn prepare_call<T: Tool>(arguments: JsonObject) -> Result<Prepared, Error> {
    let (request, asked) = prepare::<T>(arguments)?;
    Ok(Prepared {
        request,
        read_only: T::EFFECT.read_only,
        answer: Answer(Box::new(move |response| answer::<T>(asked, response))),
    })
}

/// A tool's output as its result carries it: with where it came from when
/// the daemon's cache answered, as the tool made it otherwise.
#[derive(Serialize, JsonSchema)]
struct Answered<O> {
    #[serde(flatten)]
    output: O,
    #[serde(flatten)]
    cache: Option<FromCache>,
}

/// What a result from the daemon's cache adds: that it is one, and how
/// old the answer is.
#[derive(Serialize, JsonSchema)]
struct FromCache {
    cached: bool,
    age_ms: u64,
}

/// A successful call's result: its `structuredContent`, and its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub structured: JsonObject,
    pub text: String,
}

impl Rendered {
    /// `output` as `structuredContent` and as text; `blocks` names its
    /// string fields shown as blocks of text.
    fn new(output: &impl Serialize, blocks: &[&str]) -> Result<Rendered, Error> {
        let (text, value) = text::render_with_value(output, blocks).map_err(unencodable)?;
        Ok(Rendered {
            structured: object(value)?,
            text,
        })
    }

    /// `note` as a line of its own after the fields' line, before any
    /// lists and blocks of output.
    fn add_note(&mut self, note: &str) {
        let at = self.text.find('\n').map_or(self.text.len(), |i| i + 1);
        self.text.insert_str(at, &format!("{note}\n"));
    }
}

/// `output` as `structuredContent`, which MCP wants to be an object.
fn structured(output: &impl Serialize) -> Result<JsonObject, Error> {
    object(serde_json::to_value(output).map_err(unencodable)?)
}

/// `value` as `structuredContent`, which MCP wants to be an object.
fn object(value: Value) -> Result<JsonObject, Error> {
    match value {
        Value::Object(object) => Ok(object),
        other => Err(unencodable(format_args!("{other} is not an object"))),
    }
}

/// A result that could not be written as JSON: a bug of the shim's.
fn unencodable(why: impl std::fmt::Display) -> Error {
    Error::internal(format!("sshmcp could not encode the result: {why}"))
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

/// A successful call's result, for the client.
fn success(result: Rendered) -> CallToolResult {
    let mut call = CallToolResult::success(vec![ContentBlock::text(result.text)]);
    call.structured_content = Some(Value::Object(result.structured));
    call
}

/// A failed call, as the daemon (or the shim's own checks) described it.
/// The kind comes first so a model can tell the failures apart at a glance.
fn failure(error: &Error) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error_line(error))])
}

/// An error as one line: its kind, then its message.
fn error_line(error: &Error) -> String {
    format!("{}: {}", error.kind.as_str(), error.message)
}

/// The daemon could not be asked at all (not running, refused, gone). The
/// message already says how to start it or where it was looked for.
fn unavailable(error: &ClientError) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(error.to_string())])
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sshmcp_proto::{ErrorKind, ExecOutput, FileKind, FileStat};

    use super::*;

    /// The names of the tools the daemon may answer from its cache.
    const CACHEABLE: [&str; 4] = ["exec", "stat", "list_dir", "read_file"];

    fn etc_hosts() -> Response {
        Response::Stat(FileStat {
            path: "/etc/hosts".into(),
            kind: FileKind::File,
            size: 221,
            mode: 0o644,
            mtime: 0,
            uid: Some(0),
            gid: Some(0),
            link_target: None,
        })
    }

    fn cached(age_ms: u64, response: Response) -> Response {
        Response::Cached(Cached {
            age_ms,
            response: Arc::new(response),
        })
    }

    fn object(value: Value) -> JsonObject {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_cached_answer_is_the_tools_result_with_cached_and_age_ms() {
        let result = answer::<stat::Stat>((), cached(1500, etc_hosts())).unwrap();
        let fresh = answer::<stat::Stat>((), etc_hosts()).unwrap();
        let mut expected = fresh.structured.clone();
        expected.insert("cached".into(), json!(true));
        expected.insert("age_ms".into(), json!(1500));
        assert_eq!(result.structured, expected);
        assert_eq!(
            result.text,
            fresh.text.replace('\n', " cached=true age_ms=1500\n"),
            "the text carries both fields too"
        );
    }

    #[test]
    fn an_answer_from_the_host_says_nothing_of_the_cache() {
        let result = answer::<stat::Stat>((), etc_hosts()).unwrap();
        assert!(!result.structured.contains_key("cached"), "{result:?}");
        assert!(!result.structured.contains_key("age_ms"), "{result:?}");
        assert!(!result.text.contains("cached"), "{}", result.text);
    }

    #[test]
    fn a_cached_command_says_so_before_its_output() {
        let output = Response::Exec(ExecOutput {
            job: None,
            exit_code: Some(0),
            signal: None,
            stdout: b"Linux\n".to_vec(),
            stderr: Vec::new(),
            stdout_gap: None,
            stderr_gap: None,
            stdout_bytes: 6,
            stderr_bytes: 0,
            truncated: false,
            duration_ms: 12,
        });
        let result = answer::<exec::Exec>(exec::Shown::default(), cached(40, output)).unwrap();
        assert_eq!(result.structured["cached"], true);
        assert_eq!(
            result.text,
            "exit_code=0 signal=null stderr=\"\" stdout_encoding=utf8 stderr_encoding=utf8 \
             stdout_bytes=6 stderr_bytes=0 truncated=false duration_ms=12 cached=true age_ms=40\n\
             --- stdout ---\nLinux\n"
        );
    }

    #[test]
    fn a_cached_answer_to_a_tool_never_cached_is_an_internal_error() {
        let err = answer::<mkdir::Mkdir>("/d".into(), cached(1, Response::Ok)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::Internal);
        assert!(err.message.contains("Cached"), "{}", err.message);
    }

    #[test]
    fn only_the_cacheable_tools_declare_cached_and_age_ms() {
        for route in all() {
            let tool = &route.attr;
            let schema = tool.output_schema.as_ref().expect("an output schema");
            let properties = schema["properties"].as_object().expect("properties");
            if CACHEABLE.contains(&tool.name.as_ref()) {
                assert_eq!(properties["cached"], json!({ "type": "boolean" }));
                assert_eq!(properties["age_ms"], json!({ "type": "integer" }));
                assert!(schema.get("required").is_none(), "{}", tool.name);
            } else {
                assert!(!properties.contains_key("cached"), "{}", tool.name);
                assert!(!properties.contains_key("age_ms"), "{}", tool.name);
            }
        }
    }

    #[test]
    fn reads_take_max_age_secs_from_zero_to_a_day() {
        let age = |request: Request| match request {
            Request::Stat(req) => req.max_age_secs,
            Request::ListDir(req) => req.max_age_secs,
            Request::ReadFile(req) => req.max_age_secs,
            other => panic!("not a read: {other:?}"),
        };
        let preparers: [Prepare; 3] = [
            prepare_call::<stat::Stat>,
            prepare_call::<list_dir::ListDir>,
            prepare_call::<read_file::ReadFile>,
        ];
        for prepare in preparers {
            let args =
                |age: Value| object(json!({ "host": "h", "path": "/p", "max_age_secs": age }));
            assert_eq!(age(prepare(args(json!(0))).unwrap().request), Some(0));
            assert_eq!(age(prepare(args(json!("600"))).unwrap().request), Some(600));
            let absent = object(json!({ "host": "h", "path": "/p" }));
            assert_eq!(age(prepare(absent).unwrap().request), None);
            let err = prepare(args(json!(86_401))).err().expect("refused");
            assert!(
                err.message
                    .contains("`max_age_secs`: expected an integer from 0 to 86400, got 86401"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn exec_takes_cache_secs_from_one_second_to_a_day() {
        let args =
            |secs: Value| object(json!({ "host": "h", "command": "uname -a", "cache_secs": secs }));
        let prepared = prepare_call::<exec::Exec>(args(json!("60"))).unwrap();
        assert!(matches!(
            prepared.request,
            Request::Exec(sshmcp_proto::ExecRequest {
                cache_secs: Some(60),
                ..
            })
        ));
        for bad in [json!(0), json!(86_401), json!("soon")] {
            let err = prepare_call::<exec::Exec>(args(bad.clone()))
                .err()
                .expect("refused");
            assert!(
                err.message
                    .starts_with("exec: `cache_secs`: expected an integer from 1 to 86400"),
                "{bad}: {}",
                err.message
            );
        }
    }

    #[test]
    fn annotations_give_each_hint_only_where_it_differs_from_its_default() {
        let hints = |name: &str| {
            let route = all().into_iter().find(|r| r.name() == name).expect(name);
            serde_json::to_value(route.attr.annotations).unwrap()
        };
        assert_eq!(hints("stat"), json!({ "readOnlyHint": true }));
        assert_eq!(
            hints("hosts"),
            json!({ "readOnlyHint": true, "openWorldHint": false })
        );
        assert_eq!(hints("exec"), json!({ "destructiveHint": true }));
        assert_eq!(hints("batch"), json!({ "destructiveHint": true }));
        assert_eq!(hints("mkdir"), json!({ "destructiveHint": false }));
        assert_eq!(
            hints("sync"),
            json!({ "destructiveHint": true, "idempotentHint": true })
        );
    }

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
