//! The two MCP revisions the shim speaks, and MCP Tasks, from where a
//! client stands: raw JSON-RPC over the real shim's stdio, the real daemon
//! behind it, a real sshd behind that.
//!
//! A 2025-11-25 client begins with `initialize`. A 2026-07-28 client may
//! ask `server/discover`, never initializes, and sends its protocol version
//! and capabilities in every request's `_meta`. A client that declares the
//! tasks extension (`io.modelcontextprotocol/tasks`) gets a task for an
//! `exec`, `transfer` or `sync` call that runs past the shim's task window
//! (a second by default), and polls `tasks/get` until the task carries the
//! call's result.

use std::fs;
use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{
    Daemon, Fleet, McpClient, ShimOptions, SshServer, structured, test_user, unique_digits,
    wait_for,
};

/// The revision without `initialize`.
const MODERN: &str = "2026-07-28";

/// The newest revision with `initialize`.
const LEGACY: &str = "2025-11-25";

/// The tasks extension's identifier.
const TASKS: &str = "io.modelcontextprotocol/tasks";

/// Polls of `tasks/get` a test makes at most before it gives up on a task.
const MAX_POLLS: usize = 120;

/// How long a remote process may take to appear, or to disappear.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the shim may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// One host and a daemon for it.
fn setup() -> (Fleet, Daemon) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    (fleet, daemon)
}

/// A test's MCP client over one shim: a 2026-07-28 one, whose requests all
/// carry `meta`, or a 2025-11-25 one (no `meta`) past `initialize`.
struct Client {
    mcp: McpClient,
    meta: Option<Value>,
}

impl Client {
    /// A 2026-07-28 client, declaring the tasks extension when `tasks`.
    fn modern(daemon: &Daemon, tasks: bool) -> Client {
        Client::modern_with(daemon, tasks, ShimOptions::default())
    }

    fn modern_with(daemon: &Daemon, tasks: bool, options: ShimOptions) -> Client {
        let capabilities = if tasks {
            json!({ "extensions": { TASKS: {} } })
        } else {
            json!({})
        };
        Client {
            mcp: McpClient::start_with(daemon.socket(), options),
            meta: Some(json!({
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": capabilities,
                "io.modelcontextprotocol/clientInfo": { "name": "sshmcp-revisions", "version": "1" },
            })),
        }
    }

    /// A 2025-11-25 client past its handshake, which declared
    /// `capabilities`; the `initialize` result too.
    fn legacy(daemon: &Daemon, capabilities: Value) -> (Client, Value) {
        let mcp = McpClient::start(daemon.socket());
        let response = mcp.request(
            "initialize",
            json!({
                "protocolVersion": LEGACY,
                "capabilities": capabilities,
                "clientInfo": { "name": "sshmcp-revisions", "version": "1" },
            }),
        );
        let initialized = response["result"].clone();
        assert!(initialized.is_object(), "initialize failed: {response}");
        mcp.send_notification("notifications/initialized", Value::Null);
        (Client { mcp, meta: None }, initialized)
    }

    /// The whole response to `method` with `params` (and the client's
    /// `_meta`, beside any the params carry).
    fn request(&self, method: &str, mut params: Value) -> Value {
        if let Some(Value::Object(meta)) = &self.meta {
            for (key, value) in meta {
                params["_meta"][key] = value.clone();
            }
        }
        self.mcp.request(method, params)
    }

    /// The result of `method`, which must not fail.
    fn result(&self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(
            response.get("error").is_none(),
            "`{method}` failed: {response}\nshim stderr:\n{}",
            self.mcp.stderr()
        );
        response["result"].clone()
    }

    /// The result of calling `tool` with `args`: a tool result, or a task.
    fn call(&self, tool: &str, args: Value) -> Value {
        self.result("tools/call", json!({ "name": tool, "arguments": args }))
    }

    /// The id of the task that calling `tool` with `args` made.
    fn call_as_task(&self, tool: &str, args: Value) -> String {
        let created = self.call(tool, args);
        assert_eq!(created["resultType"], "task", "not a task: {created}");
        assert_eq!(created["status"], "working", "{created}");
        assert!(created["pollIntervalMs"].is_u64(), "{created}");
        created["taskId"]
            .as_str()
            .unwrap_or_else(|| panic!("no taskId: {created}"))
            .to_string()
    }

    /// Task `task_id` once it is no longer working, polled as its
    /// `pollIntervalMs` asks.
    fn wait_task(&self, task_id: &str) -> Value {
        for _ in 0..MAX_POLLS {
            let task = self.result("tasks/get", json!({ "taskId": task_id }));
            assert_eq!(task["taskId"], task_id, "{task}");
            if task["status"] != "working" {
                return task;
            }
            let interval = task["pollIntervalMs"].as_u64().unwrap_or(1000);
            thread::sleep(Duration::from_millis(interval.min(1000)));
        }
        panic!("task {task_id} still works after {MAX_POLLS} polls");
    }
}

/// The tool result a completed task carries.
fn completed(task: &Value) -> &Value {
    assert_eq!(task["status"], "completed", "{task}");
    &task["result"]
}

/// The text of a tool result.
fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|block| block["text"].as_str())
        .collect()
}

/// A `sleep` long enough that only a stop ends it, with digits unique to
/// the call, and the pgrep pattern that finds it on the host.
fn unique_sleep() -> (String, String) {
    let digits = unique_digits();
    (
        format!("sleep 1000.{digits}"),
        format!("sleep 1000[.]{digits}"),
    )
}

fn wait_remote_start(server: &SshServer, pattern: &str) {
    wait_for(
        || !server.pids_of_user_matching(pattern).is_empty(),
        REMOTE_TIMEOUT,
        "the remote command to start",
    );
}

fn wait_remote_end(server: &SshServer, pattern: &str) {
    wait_for(
        || server.pids_of_user_matching(pattern).is_empty(),
        REMOTE_TIMEOUT,
        "the remote command to end",
    );
}

/// The job ids the `jobs` tool lists.
fn job_ids(client: &Client, daemon: &Daemon) -> Vec<String> {
    let jobs = structured(&client.call("jobs", json!({})), daemon);
    jobs["jobs"]
        .as_array()
        .expect("`jobs` is an array")
        .iter()
        .filter_map(|job| job["job_id"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_2025_11_25_client_initializes_lists_tools_and_runs_exec() {
    let (_fleet, daemon) = setup();
    let (client, initialized) = Client::legacy(&daemon, json!({}));
    assert_eq!(initialized["protocolVersion"], LEGACY, "{initialized}");
    assert_eq!(initialized["serverInfo"]["name"], "sshmcp", "{initialized}");
    assert!(
        initialized["capabilities"]["tools"].is_object(),
        "{initialized}"
    );
    let tools = client.result("tools/list", json!({}));
    assert!(
        tools["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|tool| tool["name"] == "exec"),
        "{tools}"
    );
    let result = client.call("exec", json!({ "host": "host1", "command": "echo legacy" }));
    assert_eq!(structured(&result, &daemon)["stdout"], "legacy\n");
    assert!(
        result.get("resultType").is_none(),
        "a 2025-11-25 result carries no resultType: {result}"
    );
}

#[test]
fn a_2026_07_28_client_discovers_then_runs_exec_without_initialize() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    let discovered = client.result("server/discover", json!({}));
    let versions = discovered["supportedVersions"]
        .as_array()
        .expect("versions");
    for version in [LEGACY, MODERN] {
        assert!(versions.contains(&json!(version)), "{discovered}");
    }
    assert!(
        discovered["capabilities"]["tools"].is_object(),
        "{discovered}"
    );
    assert!(
        discovered["capabilities"]["extensions"][TASKS].is_object(),
        "tasks are offered: {discovered}"
    );
    assert_eq!(
        discovered["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "sshmcp",
        "{discovered}"
    );
    assert!(discovered["instructions"].is_string(), "{discovered}");

    let tools = client.result("tools/list", json!({}));
    assert_eq!(tools["resultType"], "complete", "{tools}");
    assert!(
        tools["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .any(|tool| tool["name"] == "exec"),
        "{tools}"
    );
    let result = client.call("exec", json!({ "host": "host1", "command": "echo modern" }));
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(structured(&result, &daemon)["stdout"], "modern\n");
}

#[test]
fn a_2026_07_28_request_without_its_meta_is_refused_naming_what_is_missing() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    client.result("tools/list", json!({}));
    let response = client.mcp.request("tools/list", json!({}));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("io.modelcontextprotocol/protocolVersion"),
        "{message}"
    );
}

#[test]
fn a_running_exec_sends_progress_to_a_2026_07_28_client() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    let result = client.result(
        "tools/call",
        json!({
            "name": "exec",
            "arguments": {
                "host": "host1",
                "command": "for i in 1 2 3 4; do echo step $i; sleep 0.3; done",
            },
            "_meta": { "progressToken": "modern-1" },
        }),
    );
    assert_eq!(structured(&result, &daemon)["exit_code"], 0);
    // Each notification is written before the response that ends its call.
    let progress: Vec<Value> =
        std::iter::from_fn(|| client.mcp.next_message_timeout(Duration::ZERO))
            .filter(|message| {
                message["method"] == "notifications/progress"
                    && message["params"]["progressToken"] == "modern-1"
            })
            .collect();
    assert!(
        !progress.is_empty(),
        "a command that prints for a second sends progress as it runs"
    );
    for message in &progress {
        let line = message["params"]["message"].as_str().unwrap_or_default();
        assert!(line.starts_with("step "), "{message}");
    }
}

#[test]
fn a_cancelled_2026_07_28_call_stops_the_remote_command() {
    let (fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    let (command, pattern) = unique_sleep();
    let mut call = json!({
        "jsonrpc": "2.0", "id": 4242, "method": "tools/call",
        "params": { "name": "exec", "arguments": { "host": "host1", "command": command } },
    });
    call["params"]["_meta"] = client.meta.clone().expect("a 2026-07-28 client");
    client.mcp.send_raw(&call.to_string());
    wait_remote_start(fleet.server(0), &pattern);
    client.mcp.send_notification(
        "notifications/cancelled",
        json!({ "requestId": 4242, "reason": "the test cancelled it" }),
    );
    wait_remote_end(fleet.server(0), &pattern);
}

#[test]
fn a_client_without_tasks_waits_for_a_long_exec_as_before() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    let result = client.call(
        "exec",
        json!({ "host": "host1", "command": "sleep 2; echo waited" }),
    );
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(structured(&result, &daemon)["stdout"], "waited\n");
}

#[test]
fn a_long_exec_becomes_a_task_whose_id_is_its_job_and_which_completes_with_its_output() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, true);
    let task_id = client.call_as_task(
        "exec",
        json!({ "host": "host1", "command": "sleep 2; echo done" }),
    );
    assert!(
        job_ids(&client, &daemon).contains(&task_id),
        "the task is the daemon's job {task_id}"
    );
    let task = client.wait_task(&task_id);
    let result = completed(&task);
    let out = structured(result, &daemon);
    assert_eq!(out["stdout"], "done\n", "{out}");
    assert_eq!(out["exit_code"], 0, "{out}");
    assert!(result_text(result).contains("done"), "{result}");
}

#[test]
fn a_quick_exec_from_a_client_that_takes_tasks_is_answered_at_once() {
    let (_fleet, daemon) = setup();
    // A window no quick command can miss, however slow the machine.
    let client = Client::modern_with(
        &daemon,
        true,
        ShimOptions {
            env: vec![("SSHMCP_TASK_AFTER_SECS".into(), "30".into())],
            ..ShimOptions::default()
        },
    );
    let result = client.call("exec", json!({ "host": "host1", "command": "echo quick" }));
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(structured(&result, &daemon)["stdout"], "quick\n");
    assert_eq!(
        job_ids(&client, &daemon),
        Vec::<String>::new(),
        "a command answered at once leaves no job behind"
    );
}

#[test]
fn at_the_daemons_job_limit_a_long_exec_runs_as_a_plain_call() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[jobs]\nmax_per_host = 1\n");
    let client = Client::modern(&daemon, true);
    let (command, pattern) = unique_sleep();
    client.call_as_task("exec", json!({ "host": "host1", "command": command }));
    wait_remote_start(fleet.server(0), &pattern);
    let result = client.call(
        "exec",
        json!({ "host": "host1", "command": "sleep 2; echo without a job" }),
    );
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(structured(&result, &daemon)["stdout"], "without a job\n");
}

#[test]
fn a_2025_11_25_client_that_declared_tasks_gets_a_task_for_a_long_exec() {
    let (_fleet, daemon) = setup();
    let (client, initialized) = Client::legacy(&daemon, json!({ "extensions": { TASKS: {} } }));
    assert!(
        initialized["capabilities"]["extensions"][TASKS].is_object(),
        "{initialized}"
    );
    let task_id = client.call_as_task(
        "exec",
        json!({ "host": "host1", "command": "sleep 2; echo legacy task" }),
    );
    let task = client.wait_task(&task_id);
    assert_eq!(
        structured(completed(&task), &daemon)["stdout"],
        "legacy task\n"
    );
}

#[test]
fn tasks_cancel_stops_an_exec_task_and_the_task_ends_cancelled() {
    let (fleet, daemon) = setup();
    let client = Client::modern(&daemon, true);
    let (command, pattern) = unique_sleep();
    let task_id = client.call_as_task("exec", json!({ "host": "host1", "command": command }));
    wait_remote_start(fleet.server(0), &pattern);
    let ack = client.result("tasks/cancel", json!({ "taskId": task_id }));
    assert_eq!(ack["resultType"], "complete", "{ack}");
    let task = client.wait_task(&task_id);
    assert_eq!(task["status"], "cancelled", "{task}");
    wait_remote_end(fleet.server(0), &pattern);
}

#[test]
fn an_exec_task_that_outlives_its_timeout_is_stopped_and_reports_the_timeout() {
    let (fleet, daemon) = setup();
    let client = Client::modern(&daemon, true);
    let (command, pattern) = unique_sleep();
    let task_id = client.call_as_task(
        "exec",
        json!({ "host": "host1", "command": command, "timeout_secs": 3 }),
    );
    let task = client.wait_task(&task_id);
    let result = completed(&task);
    assert_eq!(result["isError"], true, "{result}");
    let text = result_text(result);
    assert!(
        text.starts_with("timeout: ") && text.contains("timeout_secs=3"),
        "{text}"
    );
    wait_remote_end(fleet.server(0), &pattern);
}

#[test]
fn an_exec_task_started_by_one_shim_is_read_to_its_end_by_another() {
    let (_fleet, daemon) = setup();
    let first = Client::modern(&daemon, true);
    let task_id = first.call_as_task(
        "exec",
        json!({ "host": "host1", "command": "sleep 2; echo from the first shim" }),
    );
    first.mcp.close_stdin();
    assert!(
        first.mcp.wait_exit(EXIT_TIMEOUT).is_some(),
        "the first shim exits"
    );

    let second = Client::modern(&daemon, true);
    let task = second.wait_task(&task_id);
    assert_eq!(
        structured(completed(&task), &daemon)["stdout"],
        "from the first shim\n"
    );
}

#[test]
fn an_exec_tasks_result_is_the_one_a_plain_exec_gives() {
    let (_fleet, daemon) = setup();
    let output = "seq 1 5000; seq 1 400 >&2; exit 4";
    let args =
        |command: String| json!({ "host": "host1", "command": command, "max_output_bytes": 2000 });
    let plain = Client::modern(&daemon, false).call("exec", args(output.to_string()));
    let client = Client::modern(&daemon, true);
    let task_id = client.call_as_task("exec", args(format!("sleep 2; {output}")));
    let task = client.wait_task(&task_id);
    let as_task = completed(&task);

    let without_duration = |result: &Value| {
        let mut out = structured(result, &daemon);
        out.as_object_mut()
            .expect("an object")
            .remove("duration_ms");
        out
    };
    let expected = without_duration(&plain);
    assert!(
        expected["stdout"]
            .as_str()
            .is_some_and(|s| s.contains("bytes of stdout left out")),
        "the output is long enough to be cut: {expected}"
    );
    assert_eq!(without_duration(as_task), expected);
}

#[test]
fn a_transfer_from_a_client_that_takes_tasks_runs_as_a_task() {
    let fleet = Fleet::start(1);
    let local = tempfile::Builder::new()
        .prefix("sshmcp-revisions-")
        .tempdir()
        .expect("create the local test directory");
    let daemon = Daemon::start(
        &fleet,
        &format!(
            "[policy]\nlocal_roots = [{}]\n",
            json!(local.path().display().to_string())
        ),
    );
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let source = local.path().join("data.bin");
    fs::write(&source, &content).expect("write the local file");
    let remote = test_user().scratch_dir();
    let target = remote.path().join("data.bin");
    // Every call a task at once, however quick the copy.
    let client = Client::modern_with(
        &daemon,
        true,
        ShimOptions {
            env: vec![("SSHMCP_TASK_AFTER_SECS".into(), "0".into())],
            ..ShimOptions::default()
        },
    );
    let task_id = client.call_as_task(
        "transfer",
        json!({
            "host": "host1", "direction": "upload",
            "local_path": source.display().to_string(),
            "remote_path": target.display().to_string(),
        }),
    );
    let task = client.wait_task(&task_id);
    let report = structured(completed(&task), &daemon);
    assert_eq!(report["files"], 1, "{report}");
    assert_eq!(report["bytes"], content.len(), "{report}");
    assert_eq!(fs::read(&target).expect("the uploaded file"), content);
}

#[test]
fn a_transfer_task_outlives_the_shim_that_started_it() {
    let fleet = Fleet::start(1);
    let local = tempfile::Builder::new()
        .prefix("sshmcp-revisions-")
        .tempdir()
        .expect("create the local test directory");
    let daemon = Daemon::start(
        &fleet,
        &format!(
            "[policy]\nlocal_roots = [{}]\n",
            json!(local.path().display().to_string())
        ),
    );
    let content: Vec<u8> = (0..64 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    let source = local.path().join("big.bin");
    fs::write(&source, &content).expect("write the local file");
    let remote = test_user().scratch_dir();
    let target = remote.path().join("big.bin");
    let options = || ShimOptions {
        env: vec![("SSHMCP_TASK_AFTER_SECS".into(), "0".into())],
        ..ShimOptions::default()
    };
    let first = Client::modern_with(&daemon, true, options());
    let task_id = first.call_as_task(
        "transfer",
        json!({
            "host": "host1", "direction": "upload",
            "local_path": source.display().to_string(),
            "remote_path": target.display().to_string(),
        }),
    );
    first.mcp.close_stdin();
    assert!(
        first.mcp.wait_exit(EXIT_TIMEOUT).is_some(),
        "the first shim exits"
    );
    let second = Client::modern_with(&daemon, true, options());
    let task = second.wait_task(&task_id);
    let report = structured(completed(&task), &daemon);
    assert_eq!(report["files"], 1, "{report}");
    assert_eq!(report["bytes"], content.len(), "{report}");
    assert_eq!(
        report["remote_path"],
        target.display().to_string(),
        "{report}"
    );
    assert!(fs::read(&target).expect("the uploaded file") == content);
}

#[test]
fn an_exec_tasks_timeout_holds_after_its_shim_is_gone() {
    let (fleet, daemon) = setup();
    let first = Client::modern(&daemon, true);
    let (command, pattern) = unique_sleep();
    let task_id = first.call_as_task(
        "exec",
        json!({ "host": "host1", "command": command, "timeout_secs": 3 }),
    );
    first.mcp.close_stdin();
    assert!(
        first.mcp.wait_exit(EXIT_TIMEOUT).is_some(),
        "the first shim exits"
    );
    // The daemon stops the command at its timeout, with no shim to ask.
    wait_remote_end(fleet.server(0), &pattern);
    let second = Client::modern(&daemon, true);
    let task = second.wait_task(&task_id);
    let result = completed(&task);
    assert_eq!(structured(result, &daemon)["signal"], "TERM", "{result}");
}

#[test]
fn tasks_get_of_an_unknown_task_is_an_invalid_params_error() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, true);
    let response = client.request("tasks/get", json!({ "taskId": "no-such-task" }));
    assert_eq!(response["error"]["code"], -32602, "{response}");
    let message = response["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no-such-task"), "{message}");
}

#[test]
fn tasks_are_refused_to_a_client_that_did_not_declare_them() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, false);
    let response = client.request("tasks/get", json!({ "taskId": "j1-1" }));
    assert_eq!(response["error"]["code"], -32021, "{response}");
}

#[test]
fn tasks_result_and_tasks_list_are_not_methods_of_the_tasks_extension() {
    let (_fleet, daemon) = setup();
    let client = Client::modern(&daemon, true);
    for method in ["tasks/result", "tasks/list"] {
        let response = client.request(method, json!({ "taskId": "j1-1" }));
        assert_eq!(response["error"]["code"], -32601, "{method}: {response}");
    }
}
