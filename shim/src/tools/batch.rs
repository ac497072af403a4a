//! The `batch` tool: several calls of the other tools in one, which the
//! daemon runs concurrently and answers in call order.
//!
//! Each call is prepared exactly as its tool prepares one on its own: its
//! arguments read with the tool's own types, its request checked by
//! `Request::validate`. A call refused there is not sent and its result
//! says why, so one bad call does not sink the others; under
//! `stop_on_error` the calls after it are skipped, as the daemon skips the
//! calls after one that fails. The calls that pass go to the daemon in one
//! `Request::Batch`, and each reply is put back in its call's place.

use std::future::Future;
use std::pin::Pin;

use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResponse, CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sshmcp_proto::{
    BatchReplies, BatchRequest, DEFAULT_MAX_FRAME, Error, MAX_BATCH_CALLS, MAX_BATCH_CONCURRENCY,
    Request, Response, encode,
};

use super::arguments::{self, Int};
use super::{
    Answer, Effect, Listed, Prepare, Prepared, Rendered, TOOLS, check, error_line, failure, schema,
    structured, success, text, unavailable, unencodable,
};
use crate::server::SshMcp;

/// The name clients call it by.
pub const NAME: &str = "batch";

const DESCRIPTION: &str =
    "Run calls of other tools (not hosts, jobs) concurrently; results in call order.";

/// It may carry any host tool's call, writes and commands included.
const EFFECT: Effect = Effect {
    destructive: true,
    ..Effect::CHANGES
};

/// What a call skipped under `stop_on_error` says instead of a result.
const SKIPPED: &str = "skipped: an earlier call failed and stop_on_error is set";

/// The `batch` tool's arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchArgs {
    #[schemars(length(min = 1, max = MAX_BATCH_CALLS))]
    pub calls: Vec<Call>,
    #[schemars(extend("default" = BatchRequest::DEFAULT_CONCURRENCY))]
    pub concurrency: Option<Int<1, { MAX_BATCH_CONCURRENCY as u64 }>>,
    #[serde(default)]
    pub stop_on_error: bool,
}

/// One call in a batch: a tool, and its arguments as `tools/call` takes
/// them.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Call {
    pub tool: String,
    #[schemars(schema_with = "schema::object")]
    pub arguments: JsonObject,
}

/// The `batch` tool's `structuredContent`: what each call came to, in
/// call order.
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct BatchResult {
    pub results: Vec<CallResult>,
}

/// What one call came to: its tool's `structuredContent` when it
/// succeeded, else its error (`kind: message`).
#[derive(Debug, PartialEq, Serialize, JsonSchema)]
pub struct CallResult {
    pub tool: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::object")]
    pub result: Option<JsonObject>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "String")]
    pub error: Option<String>,
}

/// What one call came to: its result, or its error as one line.
type Outcome = Result<Rendered, String>;

/// One call of a batch, before the daemon answers.
struct Slot {
    tool: String,
    state: State,
}

enum State {
    /// In the batch request: the daemon's reply becomes its outcome.
    Sent(Answer),
    /// Not sent; its outcome is already known.
    Settled(Outcome),
}

/// A batch made ready: what to send, and where each reply goes.
struct Plan {
    /// The calls to send, in call order.
    requests: Vec<Request>,
    /// Every call to send changes nothing.
    read_only: bool,
    slots: Vec<Slot>,
}

/// The `batch` tool as rmcp lists and calls it.
pub fn route() -> ToolRoute<SshMcp> {
    let tool = rmcp::model::Tool::new(NAME, DESCRIPTION, schema::input::<BatchArgs>())
        .with_raw_output_schema(schema::output::<BatchResult>())
        .with_annotations(EFFECT.annotations());
    ToolRoute::new_dyn(tool, call)
}

/// A call of `batch`, as rmcp hands it over.
fn call(
    call: ToolCallContext<'_, SshMcp>,
) -> Pin<Box<dyn Future<Output = Result<CallToolResponse, ErrorData>> + Send + '_>> {
    let ToolCallContext {
        service,
        arguments,
        request_context,
        ..
    } = call;
    Box::pin(async move {
        let result = run(service, arguments.unwrap_or_default(), request_context).await;
        Ok(result.into())
    })
}

/// The path a batch takes, from its arguments to its result.
async fn run(
    service: &SshMcp,
    arguments: JsonObject,
    context: RequestContext<RoleServer>,
) -> CallToolResult {
    let args = match parse(arguments) {
        Ok(args) => args,
        Err(error) => return failure(&error),
    };
    let Plan {
        requests,
        read_only,
        slots,
    } = plan(args.calls, args.stop_on_error, &|name| {
        offered(service, name)
    });
    let replies = if requests.is_empty() {
        Vec::new()
    } else {
        let request = Request::Batch(BatchRequest {
            calls: requests,
            // In range: `Int` took it from 1 to MAX_BATCH_CONCURRENCY, a u32.
            concurrency: args
                .concurrency
                .map(|Int(n)| u32::try_from(n).unwrap_or(MAX_BATCH_CONCURRENCY)),
            stop_on_error: args.stop_on_error,
        });
        if let Err(error) = check(&request).and_then(|()| fits(&request)) {
            return failure(&error);
        }
        let reply = if read_only {
            service.forward_read_only(request, &context).await
        } else {
            service.forward(request, &context).await
        };
        match reply {
            Ok(Ok(Response::Batch(replies))) => replies,
            Ok(Ok(other)) => {
                return failure(&Error::internal(format!(
                    "sshmcpd answered a batch request with a {} response",
                    other.name()
                )));
            }
            Ok(Err(error)) => return failure(&error),
            Err(error) => return unavailable(&error),
        }
    };
    match settle(slots, replies).and_then(present) {
        Ok(result) => success(result),
        Err(error) => failure(&error),
    }
}

/// The batch's arguments, with as many calls as one batch may carry.
fn parse(arguments: JsonObject) -> Result<BatchArgs, Error> {
    let args: BatchArgs = arguments::parse(NAME, Value::Object(arguments))?;
    let count = args.calls.len();
    if !(1..=MAX_BATCH_CALLS).contains(&count) {
        return Err(Error::bad_request(format!(
            "{NAME}: `calls` has {count} calls; pass 1 to {MAX_BATCH_CALLS}"
        )));
    }
    Ok(args)
}

/// How a batch prepares a call of a tool, by name, or why it cannot.
type Offered<'a> = &'a dyn Fn(&str) -> Result<Prepare, String>;

/// How a batch prepares a call of tool `name` on `service`, or why it
/// cannot: no such tool, one `--tools` leaves out, or one a batch cannot
/// carry.
fn offered(service: &SshMcp, name: &str) -> Result<Prepare, String> {
    if name == NAME {
        return Err(format!(
            "a batch cannot carry `{NAME}`; put its calls in this one"
        ));
    }
    match TOOLS.iter().find(|tool| tool.name == name) {
        Some(Listed {
            prepare: Some(prepare),
            ..
        }) if service.offers(name) => Ok(*prepare),
        Some(Listed {
            prepare: Some(_), ..
        }) => Err(format!(
            "tool `{name}` is not offered: sshmcp was started with `--tools {}`",
            service.selection().unwrap_or_default()
        )),
        Some(_) => Err(format!("`{name}` cannot be batched; call it on its own")),
        None => {
            let takes: Vec<&str> = TOOLS
                .iter()
                .filter(|tool| tool.prepare.is_some() && service.offers(tool.name))
                .map(|tool| tool.name)
                .collect();
            Err(format!(
                "no tool `{name}`; a batch takes {}",
                takes.join(", ")
            ))
        }
    }
}

/// Each call prepared as its tool prepares one; see the module doc.
fn plan(calls: Vec<Call>, stop_on_error: bool, offered: Offered<'_>) -> Plan {
    let mut plan = Plan {
        requests: Vec::new(),
        read_only: true,
        slots: Vec::with_capacity(calls.len()),
    };
    let mut refused = false;
    for (i, Call { tool, arguments }) in calls.into_iter().enumerate() {
        let state = if refused && stop_on_error {
            State::Settled(Err(SKIPPED.to_string()))
        } else {
            match prepare(i, &tool, arguments, offered) {
                Ok(Prepared {
                    request,
                    read_only,
                    answer,
                }) => {
                    plan.requests.push(request);
                    plan.read_only &= read_only;
                    State::Sent(answer)
                }
                Err(error) => {
                    refused = true;
                    State::Settled(Err(error_line(&error)))
                }
            }
        };
        plan.slots.push(Slot { tool, state });
    }
    plan
}

/// Call `i` of the batch, of `tool` with `arguments`, prepared; or why
/// not, naming the call.
fn prepare(
    i: usize,
    tool: &str,
    arguments: JsonObject,
    offered: Offered<'_>,
) -> Result<Prepared, Error> {
    let name_the_call = |mut error: Error| {
        error.message = format!("calls[{i}]: {}", error.message);
        error
    };
    let prepare = offered(tool).map_err(|why| name_the_call(Error::bad_request(why)))?;
    prepare(arguments).map_err(name_the_call)
}

/// The batch fits in one frame to the daemon; else what to do. (The
/// client would refuse it too, but could only say "send less data".)
fn fits(request: &Request) -> Result<(), Error> {
    // One that cannot be encoded at all is the client's to report.
    let bytes = encode(request).map_or(0, |frame| frame.len());
    if bytes <= DEFAULT_MAX_FRAME {
        return Ok(());
    }
    Err(Error::bad_request(format!(
        "{NAME}: its calls come to {bytes} bytes, more than one request carries \
         ({DEFAULT_MAX_FRAME}); split them into smaller batches"
    )))
}

/// Each call's outcome, in call order: the daemon's `replies` (one per
/// call sent, in order) put back in their places.
fn settle(slots: Vec<Slot>, replies: BatchReplies) -> Result<Vec<(String, Outcome)>, Error> {
    let sent = slots
        .iter()
        .filter(|slot| matches!(slot.state, State::Sent(_)))
        .count();
    if replies.len() != sent {
        return Err(Error::internal(format!(
            "sshmcpd answered {} of the batch's {sent} calls",
            replies.len()
        )));
    }
    let mut replies = replies.into_iter();
    let outcomes = slots
        .into_iter()
        .map(|Slot { tool, state }| {
            let outcome = match state {
                State::Settled(outcome) => outcome,
                State::Sent(answer) => match replies.next().flatten() {
                    None => Err(SKIPPED.to_string()),
                    Some(Ok(response)) => answer.to(response).map_err(|e| error_line(&e)),
                    Some(Err(error)) => Err(error_line(&error)),
                },
            };
            (tool, outcome)
        })
        .collect();
    Ok(outcomes)
}

/// The batch's result: every call's outcome, in the structure and as
/// text, one block per call headed by its place, tool and `ok`.
fn present(outcomes: Vec<(String, Outcome)>) -> Result<Rendered, Error> {
    let mut text = format!("results ({}):\n", outcomes.len());
    let mut results = Vec::with_capacity(outcomes.len());
    for (i, (tool, outcome)) in outcomes.into_iter().enumerate() {
        let (result, error, block) = match outcome {
            Ok(Rendered { structured, text }) => (Some(structured), None, text),
            Err(error) => (None, Some(error), String::new()),
        };
        let head = CallResult {
            tool,
            ok: result.is_some(),
            result: None,
            error,
        };
        let line = text::render(&head, &[]).map_err(unencodable)?;
        text.push_str(&format!("[{i}] {line}{block}"));
        results.push(CallResult { result, ..head });
    }
    Ok(Rendered {
        structured: structured(&BatchResult { results })?,
        text,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sshmcp_proto::{ErrorKind, ExecOutput, FileKind, FileStat};

    use super::*;

    /// Every tool is offered, as without `--tools`.
    fn every_tool(name: &str) -> Result<Prepare, String> {
        let service = SshMcp::new(
            Vec::new(),
            crate::tools::all(),
            None,
            tokio_util::sync::CancellationToken::new(),
            tokio::sync::mpsc::channel(1).0,
        );
        offered(&service, name)
    }

    fn calls(calls: Value) -> Vec<Call> {
        let args: BatchArgs = arguments::parse(NAME, json!({ "calls": calls })).unwrap();
        args.calls
    }

    fn errors(plan: &Plan) -> Vec<Option<&str>> {
        plan.slots
            .iter()
            .map(|slot| match &slot.state {
                State::Settled(Err(error)) => Some(error.as_str()),
                _ => None,
            })
            .collect()
    }

    fn stat_call(path: &str) -> Value {
        json!({ "tool": "stat", "arguments": { "host": "h", "path": path } })
    }

    fn exec_output(stdout: &str) -> Response {
        Response::Exec(ExecOutput {
            job: None,
            exit_code: Some(0),
            signal: None,
            stdout: stdout.as_bytes().to_vec(),
            stderr: Vec::new(),
            stdout_gap: None,
            stderr_gap: None,
            stdout_bytes: stdout.len() as u64,
            stderr_bytes: 0,
            truncated: false,
            duration_ms: 3,
        })
    }

    #[test]
    fn each_call_is_prepared_as_its_tool_prepares_one() {
        let plan = plan(
            calls(json!([
                { "tool": "exec", "arguments": { "host": "h", "command": "uname", "cache_secs": "60" } },
                stat_call("/etc"),
            ])),
            false,
            &every_tool,
        );
        assert_eq!(errors(&plan), [None, None]);
        assert!(!plan.read_only, "exec changes things");
        assert!(matches!(
            &plan.requests[0],
            Request::Exec(exec) if exec.command == "uname" && exec.cache_secs == Some(60)
        ));
        assert!(matches!(&plan.requests[1], Request::Stat(stat) if stat.path == "/etc"));
    }

    #[test]
    fn only_reads_are_a_read_only_batch() {
        let plan = plan(
            calls(json!([stat_call("/a"), stat_call("/b")])),
            false,
            &every_tool,
        );
        assert!(plan.read_only);
    }

    #[test]
    fn a_call_with_bad_arguments_is_refused_alone_naming_the_call_and_argument() {
        let plan = plan(
            calls(json!([
                stat_call("/a"),
                { "tool": "exec", "arguments": { "host": "h", "command": "ls", "timeout_secs": 0 } },
                stat_call("/b"),
            ])),
            false,
            &every_tool,
        );
        let errors = errors(&plan);
        assert_eq!(errors[0], None);
        assert_eq!(errors[2], None);
        let error = errors[1].expect("calls[1] is refused");
        assert!(
            error.starts_with("bad_request: calls[1]: exec: `timeout_secs`: expected an integer"),
            "{error}"
        );
        assert_eq!(plan.requests.len(), 2, "the bad call is not sent");
    }

    #[test]
    fn unknown_nested_and_host_list_calls_are_refused_naming_the_call() {
        let plan = plan(
            calls(json!([
                { "tool": "shell", "arguments": {} },
                { "tool": "batch", "arguments": { "calls": [] } },
                { "tool": "hosts", "arguments": {} },
                { "tool": "jobs", "arguments": {} },
            ])),
            false,
            &every_tool,
        );
        assert!(plan.requests.is_empty());
        let errors = errors(&plan);
        for (i, error) in errors.iter().enumerate() {
            let error = error.unwrap_or_else(|| panic!("calls[{i}] is refused"));
            assert!(
                error.starts_with(&format!("bad_request: calls[{i}]: ")),
                "{error}"
            );
        }
        assert!(errors[0].unwrap().contains("`shell`"));
        assert!(errors[1].unwrap().contains("`batch`"));
        assert!(errors[2].unwrap().contains("`hosts`"));
        assert!(errors[3].unwrap().contains("`jobs` cannot be batched"));
    }

    #[test]
    fn a_batch_may_read_and_signal_jobs() {
        let plan = plan(
            calls(json!([
                { "tool": "job_output", "arguments": { "job_id": "j1", "wait_secs": 5 } },
                { "tool": "job_output", "arguments": { "job_id": "j2" } },
            ])),
            false,
            &every_tool,
        );
        assert_eq!(errors(&plan), [None, None]);
        assert!(plan.read_only, "reading jobs changes nothing");
        assert!(matches!(
            &plan.requests[0],
            Request::JobOutput(read) if read.job_id == "j1" && read.wait_secs == Some(5)
        ));
        let plan = plan_of(json!([
            { "tool": "job_signal", "arguments": { "job_id": "j1", "signal": "KILL" } },
        ]));
        assert!(!plan.read_only);
        assert!(matches!(
            &plan.requests[0],
            Request::JobSignal(signal) if signal.signal == "KILL"
        ));
    }

    fn plan_of(calls_json: Value) -> Plan {
        plan(calls(calls_json), false, &every_tool)
    }

    #[test]
    fn a_tool_left_out_by_tools_is_refused_with_the_reason() {
        let service = SshMcp::new(
            Vec::new(),
            crate::tools::selection::select("files").unwrap(),
            Some("files".into()),
            tokio_util::sync::CancellationToken::new(),
            tokio::sync::mpsc::channel(1).0,
        );
        let files_only = |name: &str| offered(&service, name);
        let plan = plan(
            calls(json!([{ "tool": "exec", "arguments": { "host": "h", "command": "ls" } }])),
            false,
            &files_only,
        );
        let error = errors(&plan)[0].expect("exec is refused");
        assert!(
            error.contains("calls[0]") && error.contains("--tools files"),
            "{error}"
        );
    }

    #[test]
    fn under_stop_on_error_the_calls_after_a_refused_one_are_skipped() {
        let plan = plan(
            calls(json!([stat_call("/a"), stat_call(""), stat_call("/c")])),
            true,
            &every_tool,
        );
        let errors = errors(&plan);
        assert_eq!(errors[0], None);
        assert!(
            errors[1].is_some_and(|e| e.contains("calls[1]")),
            "{errors:?}"
        );
        assert_eq!(errors[2], Some(SKIPPED));
        assert_eq!(plan.requests.len(), 1);
    }

    #[test]
    fn too_many_or_no_calls_are_refused_naming_the_limit() {
        for count in [0, MAX_BATCH_CALLS + 1] {
            let calls = vec![stat_call("/a"); count];
            let args = json!({ "calls": calls }).as_object().cloned().unwrap();
            let error = parse(args).unwrap_err();
            assert_eq!(
                error.message,
                format!("batch: `calls` has {count} calls; pass 1 to {MAX_BATCH_CALLS}")
            );
        }
    }

    #[test]
    fn a_batch_too_large_for_one_frame_is_refused_saying_to_split_it() {
        let content = "x".repeat(DEFAULT_MAX_FRAME / 2);
        let write = |path: &str| {
            json!({ "tool": "write_file",
                    "arguments": { "host": "h", "path": path, "content": content } })
        };
        let plan = plan(calls(json!([write("/a"), write("/b")])), false, &every_tool);
        assert_eq!(errors(&plan), [None, None], "each call fits on its own");
        let request = Request::Batch(BatchRequest {
            calls: plan.requests,
            concurrency: None,
            stop_on_error: false,
        });
        let error = fits(&request).unwrap_err();
        assert!(
            error.message.ends_with("split them into smaller batches"),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_bad_concurrency_is_refused_naming_it() {
        let args = json!({ "calls": [stat_call("/a")], "concurrency": 65 });
        let error = parse(args.as_object().cloned().unwrap()).unwrap_err();
        assert!(
            error
                .message
                .starts_with("batch: `concurrency`: expected an integer from 1 to 64"),
            "{}",
            error.message
        );
    }

    /// Plans `calls` and settles them with `replies`.
    fn outcome(calls_json: Value, stop_on_error: bool, replies: BatchReplies) -> Rendered {
        let plan = plan(calls(calls_json), stop_on_error, &every_tool);
        present(settle(plan.slots, replies).unwrap()).unwrap()
    }

    #[test]
    fn replies_go_back_in_call_order_around_refused_calls() {
        let rendered = outcome(
            json!([
                { "tool": "exec", "arguments": { "host": "h", "command": "echo a" } },
                stat_call(""),
                stat_call("/missing"),
            ]),
            false,
            vec![
                Some(Ok(exec_output("a\n"))),
                Some(Err(Error::new(
                    ErrorKind::NotFound,
                    "no such path: /missing",
                ))),
            ],
        );
        let results = &rendered.structured["results"];
        assert_eq!(results[0]["tool"], "exec");
        assert_eq!(results[0]["ok"], true);
        assert_eq!(results[0]["result"]["stdout"], "a\n");
        assert!(results[0].get("error").is_none());
        assert_eq!(results[1]["ok"], false);
        assert!(results[1].get("result").is_none());
        assert!(
            results[1]["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("bad_request: calls[1]: stat: `path` is empty")),
            "{results}"
        );
        assert_eq!(results[2]["tool"], "stat");
        assert_eq!(results[2]["error"], "not_found: no such path: /missing");
    }

    #[test]
    fn calls_the_daemon_did_not_start_are_skipped() {
        let rendered = outcome(
            json!([stat_call("/missing"), stat_call("/b")]),
            true,
            vec![
                Some(Err(Error::new(
                    ErrorKind::NotFound,
                    "no such path: /missing",
                ))),
                None,
            ],
        );
        assert_eq!(
            Value::Object(rendered.structured),
            json!({ "results": [
                { "tool": "stat", "ok": false, "error": "not_found: no such path: /missing" },
                { "tool": "stat", "ok": false, "error": SKIPPED },
            ]})
        );
        assert_eq!(
            rendered.text,
            "results (2):\n\
             [0] tool=stat ok=false error=\"not_found: no such path: /missing\"\n\
             [1] tool=stat ok=false \
             error=\"skipped: an earlier call failed and stop_on_error is set\"\n"
        );
    }

    #[test]
    fn text_has_one_block_per_call_with_its_tools_own_text() {
        let stat = Response::Stat(FileStat {
            path: "/b".into(),
            kind: FileKind::Dir,
            size: 4096,
            mode: 0o755,
            mtime: 0,
            uid: None,
            gid: None,
            link_target: None,
        });
        let rendered = outcome(
            json!([
                { "tool": "exec", "arguments": { "host": "h", "command": "echo a" } },
                stat_call("/b"),
            ]),
            false,
            vec![Some(Ok(exec_output("a\n"))), Some(Ok(stat))],
        );
        assert_eq!(
            rendered.text,
            "results (2):\n\
             [0] tool=exec ok=true\n\
             exit_code=0 signal=null stderr=\"\" stdout_encoding=utf8 stderr_encoding=utf8 \
             stdout_bytes=2 stderr_bytes=0 truncated=false duration_ms=3\n\
             --- stdout ---\na\n\
             [1] tool=stat ok=true\n\
             path=/b type=dir size=4096 mode=0755 mtime=0 link_target=null \
             mtime_iso=1970-01-01T00:00:00Z uid=null gid=null\n"
        );
    }

    #[test]
    fn a_reply_count_that_does_not_match_is_an_internal_error() {
        let plan = plan(calls(json!([stat_call("/a")])), false, &every_tool);
        let error = settle(plan.slots, Vec::new()).expect_err("an error");
        assert_eq!(error.kind, ErrorKind::Internal);
    }
}
