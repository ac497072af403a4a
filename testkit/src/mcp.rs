//! An MCP client for tests: drives the `sshmcp` shim over stdio.

use std::collections::{HashMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::bin_path;
use crate::process::{OwnedChild, tail};
use crate::sync::lock;

/// The environment the MCP SDKs' stdio clients (Python, TypeScript, and so
/// the Inspector and most hosts) pass to a server they launch when not told
/// otherwise: these variables of their own, and nothing else.
pub const SDK_HOST_ENV: [&str; 6] = ["HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER"];

/// The MCP protocol revision the client asks for.
const PROTOCOL_VERSION: &str = "2025-06-18";
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to launch the shim for an [`McpClient`], beyond `--socket`.
#[derive(Debug, Clone, Default)]
pub struct ShimOptions {
    /// Working directory (the shim resolves relative local paths against
    /// it); the test's own by default.
    pub cwd: Option<PathBuf>,
    /// Environment variables to set, after the kit's defaults
    /// (`RUST_LOG=sshmcp=debug`; no `SSH_AUTH_SOCK`, no `SSHMCP_SOCKET`).
    pub env: Vec<(String, String)>,
    /// More command-line arguments.
    pub args: Vec<String>,
}

/// An MCP client speaking JSON-RPC 2.0 to the `sshmcp` shim over its stdin
/// and stdout, as MCP clients do (one JSON message per line).
///
/// It exists to test the product from where users stand, and it polices the
/// shim while doing so: every line the shim writes to stdout must be a
/// JSON-RPC 2.0 object, because anything else breaks real MCP clients. A
/// violation fails the next call on this client (or its drop). And the text
/// of every tool result must carry every field of its `structuredContent`
/// (models read the text, clients the structure): a result that does not
/// fails the call that got it.
///
/// Responses are matched to requests by id, so several threads may call
/// concurrently; notifications and requests from the shim are queued for
/// [`McpClient::next_message_timeout`]. Every wait is bounded (30 s by
/// default, see [`McpClient::set_timeout`]). The shim is killed on drop.
#[derive(Debug)]
pub struct McpClient {
    process: Mutex<OwnedChild>,
    stdin: Mutex<Option<ChildStdin>>,
    inbox: Arc<Inbox>,
    stderr: Arc<Mutex<String>>,
    next_id: AtomicU64,
    timeout: Duration,
}

/// What the reader thread has received, shared with the caller's threads.
#[derive(Debug, Default)]
struct Inbox {
    state: Mutex<InboxState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct InboxState {
    /// Responses by JSON-encoded id.
    responses: HashMap<String, Value>,
    /// Notifications and requests from the shim, in arrival order.
    messages: VecDeque<Value>,
    /// Lines on stdout that are not JSON-RPC 2.0 messages.
    violations: Vec<String>,
    /// The shim closed its stdout.
    closed: bool,
}

impl McpClient {
    /// Starts `sshmcp --socket <socket>` with default options.
    pub fn start(socket: &Path) -> McpClient {
        McpClient::start_with(socket, ShimOptions::default())
    }

    /// Starts `sshmcp --socket <socket>` with a working directory,
    /// environment or arguments of the test's choosing.
    pub fn start_with(socket: &Path, options: ShimOptions) -> McpClient {
        let mut cmd = Command::new(bin_path("sshmcp"));
        cmd.arg("--socket")
            .arg(socket)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSHMCP_SOCKET")
            .env("RUST_LOG", "sshmcp=debug");
        McpClient::spawn(cmd, options)
    }

    /// Starts `sshmcp` as an MCP host configured with just its command
    /// would: no `--socket`, and only the [`SDK_HOST_ENV`] variables of the
    /// test's own environment, plus `options.env`. So no `XDG_RUNTIME_DIR`
    /// and no `SSHMCP_SOCKET`, unless `options.env` sets them.
    pub fn start_like_an_sdk_host(options: ShimOptions) -> McpClient {
        let mut cmd = Command::new(bin_path("sshmcp"));
        cmd.env_clear().envs(
            SDK_HOST_ENV
                .iter()
                .filter_map(|name| Some((name, std::env::var_os(name)?))),
        );
        McpClient::spawn(cmd, options)
    }

    fn spawn(mut cmd: Command, options: ShimOptions) -> McpClient {
        cmd.args(&options.args)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(cwd) = &options.cwd {
            cmd.current_dir(cwd);
        }
        let mut process = OwnedChild::spawn(&mut cmd);
        let stdin = process.child.stdin.take().expect("stdin is piped");
        set_nonblocking(&stdin);
        let stdout = process.child.stdout.take().expect("stdout is piped");
        let stderr_pipe = process.child.stderr.take().expect("stderr is piped");

        let inbox = Arc::new(Inbox::default());
        let reader_inbox = Arc::clone(&inbox);
        thread::spawn(move || read_messages(stdout, &reader_inbox));
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_sink = Arc::clone(&stderr);
        thread::spawn(move || collect_stderr(stderr_pipe, &stderr_sink));

        McpClient {
            process: Mutex::new(process),
            stdin: Mutex::new(Some(stdin)),
            inbox,
            stderr,
            next_id: AtomicU64::new(1),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Changes how long each call waits for the shim (default 30 s).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// The MCP handshake: `initialize` (protocol 2025-06-18, client
    /// `sshmcp-tests`), then the `notifications/initialized` notification.
    /// Returns the `initialize` result (server info, capabilities).
    pub fn initialize(&self) -> Value {
        let result = self.expect_result(
            "initialize",
            json!({
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": { "name": "sshmcp-tests", "version": env!("CARGO_PKG_VERSION") },
            }),
        );
        self.send_notification("notifications/initialized", Value::Null);
        result
    }

    /// The `tools/list` result (an object with a `tools` array).
    pub fn list_tools(&self) -> Value {
        self.expect_result("tools/list", json!({}))
    }

    /// Calls tool `name` with `args` and returns the `result` object. A tool
    /// that fails returns a result with `isError: true`; only a JSON-RPC
    /// error (a protocol-level failure) panics.
    pub fn call_tool(&self, name: &str, args: Value) -> Value {
        let result = self.expect_result("tools/call", json!({ "name": name, "arguments": args }));
        assert_text_carries_structured_content(name, &result);
        result
    }

    /// Calls tool `name` with `args` and `_meta.progressToken` set to
    /// `token`, and returns the `result` object together with the params of
    /// every `notifications/progress` for that token that arrived before it,
    /// in order. Other messages stay queued for
    /// [`McpClient::next_message_timeout`].
    pub fn call_tool_with_progress(
        &self,
        name: &str,
        args: Value,
        token: Value,
    ) -> (Value, Vec<Value>) {
        let result = self.expect_result(
            "tools/call",
            json!({ "name": name, "arguments": args, "_meta": { "progressToken": token } }),
        );
        assert_text_carries_structured_content(name, &result);
        // The shim writes each notification before the response that ends
        // its call, and the reader thread queues lines in order, so every
        // one of them is queued by now.
        let mut state = lock(&self.inbox.state);
        let (progress, others): (VecDeque<Value>, VecDeque<Value>) =
            state.messages.drain(..).partition(|message| {
                message["method"] == "notifications/progress"
                    && message["params"]["progressToken"] == token
            });
        state.messages = others;
        let progress = progress
            .into_iter()
            .map(|mut message| message["params"].take())
            .collect();
        (result, progress)
    }

    /// Sends a request and returns the whole response, `error` included.
    /// `params` of `Value::Null` are left out.
    pub fn request(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut message = json!({ "jsonrpc": "2.0", "id": id, "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        self.send_raw(&message.to_string());
        self.wait_response(&json!(id).to_string(), method)
    }

    /// Waits for the response with `id` to a request sent with
    /// [`McpClient::send_raw`], and returns all of it, `error` included.
    pub fn response_to(&self, id: &Value) -> Value {
        self.wait_response(&id.to_string(), "a raw request")
    }

    /// Sends a notification (no reply expected). `params` of `Value::Null`
    /// are left out.
    pub fn send_notification(&self, method: &str, params: Value) {
        let mut message = json!({ "jsonrpc": "2.0", "method": method });
        if !params.is_null() {
            message["params"] = params;
        }
        self.send_raw(&message.to_string());
    }

    /// Writes `line` and a newline to the shim's stdin as is: for malformed
    /// input, batches, hand-picked ids.
    pub fn send_raw(&self, line: &str) {
        self.check_stdout();
        let mut bytes = line.as_bytes().to_vec();
        bytes.push(b'\n');
        let mut stdin = lock(&self.stdin);
        let Some(pipe) = stdin.as_mut() else {
            panic!("send_raw after close_stdin: {line}");
        };
        let deadline = Instant::now() + self.timeout;
        if let Err(e) = write_all_until(pipe, &bytes, deadline) {
            drop(stdin);
            panic!(
                "cannot write to the shim's stdin ({e}); exit status {:?}; stderr:\n{}",
                lock(&self.process).status(),
                tail(&self.stderr())
            );
        }
    }

    /// The next notification or request from the shim, waiting at most
    /// `timeout`; `None` if none came.
    pub fn next_message_timeout(&self, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        let mut state = lock(&self.inbox.state);
        loop {
            if let Some(message) = state.messages.pop_front() {
                return Some(message);
            }
            if !state.violations.is_empty() {
                drop(state);
                self.check_stdout();
                return None;
            }
            let now = Instant::now();
            if state.closed || now >= deadline {
                return None;
            }
            state = self
                .inbox
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Closes the shim's stdin, which is how an MCP client ends the session.
    pub fn close_stdin(&self) {
        lock(&self.stdin).take();
    }

    /// Waits at most `timeout` for the shim to exit.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        lock(&self.process).wait_until(Instant::now() + timeout)
    }

    /// What the shim wrote to stderr so far.
    pub fn stderr(&self) -> String {
        lock(&self.stderr).clone()
    }

    /// The shim's process id.
    pub fn pid(&self) -> u32 {
        lock(&self.process).pid()
    }

    fn expect_result(&self, method: &str, params: Value) -> Value {
        let mut response = self.request(method, params);
        if let Some(error) = response.get("error") {
            panic!(
                "`{method}` failed with a JSON-RPC error: {error}; shim stderr:\n{}",
                tail(&self.stderr())
            );
        }
        match response.get_mut("result") {
            Some(result) => result.take(),
            None => panic!("`{method}` got a response with neither result nor error: {response}"),
        }
    }

    fn wait_response(&self, id: &str, method: &str) -> Value {
        let deadline = Instant::now() + self.timeout;
        let mut state = lock(&self.inbox.state);
        loop {
            if let Some(response) = state.responses.remove(id) {
                return response;
            }
            let failure = if !state.violations.is_empty() {
                Some(String::new())
            } else if state.closed {
                Some(format!(
                    "the shim closed stdout before answering `{method}` (id {id})"
                ))
            } else if Instant::now() >= deadline {
                Some(format!(
                    "no answer to `{method}` (id {id}) within {:?}",
                    self.timeout
                ))
            } else {
                None
            };
            if let Some(failure) = failure {
                drop(state);
                self.check_stdout();
                panic!(
                    "{failure}; shim exit status {:?}; stderr:\n{}",
                    lock(&self.process).status(),
                    tail(&self.stderr())
                );
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            state = self
                .inbox
                .changed
                .wait_timeout(state, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Panics if the shim wrote anything but JSON-RPC to stdout.
    fn check_stdout(&self) {
        let violations = lock(&self.inbox.state).violations.clone();
        if !violations.is_empty() {
            panic!(
                "the shim wrote non-MCP output to stdout:\n{}\nstderr:\n{}",
                violations.join("\n"),
                tail(&self.stderr())
            );
        }
    }
}

impl Drop for McpClient {
    fn drop(&mut self) {
        lock(&self.process).kill();
        if !thread::panicking() {
            self.check_stdout();
        }
    }
}

/// Panics unless the text content of tool `tool`'s `result` names every
/// field of its `structuredContent` and shows every value (strings as they
/// are or JSON-escaped, numbers and booleans as JSON writes them).
fn assert_text_carries_structured_content(tool: &str, result: &Value) {
    let Some(structured) = result.get("structuredContent").filter(|s| !s.is_null()) else {
        return;
    };
    let text: String = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|block| block["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let mut missing = Vec::new();
    missing_from(&text, "", structured, &mut missing);
    assert!(
        missing.is_empty(),
        "the text of a `{tool}` result lacks {} of its structuredContent: {}\n--- text\n{text}",
        missing.len(),
        missing.join(", ")
    );
}

/// Adds to `missing` each field name under `value` (named `key`) that
/// `text` does not show, and each value it does not show.
fn missing_from(text: &str, key: &str, value: &Value, missing: &mut Vec<String>) {
    if !key.is_empty() && !text.contains(key) {
        missing.push(format!("field `{key}`"));
    }
    let shown = match value {
        Value::Object(fields) => {
            for (key, value) in fields {
                missing_from(text, key, value, missing);
            }
            return;
        }
        Value::Array(items) => {
            for item in items {
                missing_from(text, key, item, missing);
            }
            return;
        }
        Value::Null => return,
        Value::String(s) => {
            let escaped = Value::from(s.as_str()).to_string();
            text.contains(s.as_str()) || text.contains(&escaped[1..escaped.len() - 1])
        }
        other => text.contains(&other.to_string()),
    };
    if !shown {
        missing.push(format!("`{key}` = {value}"));
    }
}

/// The reader thread: sorts each stdout line into responses, messages or
/// violations.
fn read_messages(stdout: impl Read, inbox: &Inbox) {
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let read = reader.read_line(&mut line);
        let mut state = lock(&inbox.state);
        match read {
            Ok(0) => {
                state.closed = true;
                inbox.changed.notify_all();
                return;
            }
            Ok(_) => match classify(line.trim_end_matches(['\n', '\r'])) {
                Ok(Incoming::Response(id, message)) => {
                    state.responses.insert(id, message);
                }
                Ok(Incoming::Message(message)) => state.messages.push_back(message),
                Err(violation) => state.violations.push(violation),
            },
            Err(e) => {
                state.violations.push(format!("unreadable stdout: {e}"));
                state.closed = true;
                inbox.changed.notify_all();
                return;
            }
        }
        inbox.changed.notify_all();
    }
}

enum Incoming {
    /// A response, keyed by its JSON-encoded id.
    Response(String, Value),
    /// A notification or a request from the shim.
    Message(Value),
}

fn classify(line: &str) -> Result<Incoming, String> {
    let message: Value =
        serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line:?}"))?;
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(format!("not a JSON-RPC 2.0 message: {line}"));
    }
    let is_response = message.get("method").is_none()
        && (message.get("result").is_some() || message.get("error").is_some());
    match message.get("id") {
        Some(id) if is_response => Ok(Incoming::Response(id.to_string(), message)),
        _ if message.get("method").is_some() => Ok(Incoming::Message(message)),
        _ => Err(format!(
            "neither a request, a notification nor a response: {line}"
        )),
    }
}

fn collect_stderr(stderr: impl Read, sink: &Mutex<String>) {
    let mut reader = BufReader::new(stderr);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => lock(sink).push_str(&String::from_utf8_lossy(&buf)),
        }
    }
}

/// Makes writes to the pipe fail with `WouldBlock` instead of blocking, so
/// that a shim that stops reading cannot hang a test.
fn set_nonblocking(pipe: &ChildStdin) {
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl(2) on a descriptor we own; no memory is passed.
    let ok = unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
    };
    assert!(
        ok,
        "cannot make the shim's stdin non-blocking: {}",
        io::Error::last_os_error()
    );
}

/// Writes all of `bytes` to the non-blocking `pipe`, waiting for room until
/// `deadline`.
fn write_all_until(pipe: &mut ChildStdin, mut bytes: &[u8], deadline: Instant) -> io::Result<()> {
    while !bytes.is_empty() {
        match pipe.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the shim stopped reading its stdin",
                    ));
                }
                let mut poll = libc::pollfd {
                    fd: pipe.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                };
                let millis =
                    libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
                // SAFETY: one valid pollfd for the duration of the call.
                unsafe {
                    libc::poll(&mut poll, 1, millis);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `structuredContent` of a tool result that must not be an error; on
/// failure the panic shows the result and the daemon's log.
pub fn structured(result: &serde_json::Value, daemon: &crate::Daemon) -> serde_json::Value {
    assert_eq!(
        result["isError"],
        serde_json::json!(false),
        "the call failed: {result}\ndaemon log:\n{}",
        daemon.log()
    );
    result["structuredContent"].clone()
}

/// The text of a tool result that must be an error (`isError: true`,
/// and no `structuredContent`).
pub fn error_text(result: &serde_json::Value) -> String {
    assert_eq!(
        result["isError"],
        serde_json::json!(true),
        "expected an error result: {result}"
    );
    assert!(
        result
            .get("structuredContent")
            .is_none_or(serde_json::Value::is_null),
        "an error result carries no structuredContent: {result}"
    );
    text(result)
}

/// The text of a tool result, all its text blocks together.
pub fn text(result: &serde_json::Value) -> String {
    let blocks: Vec<&str> = result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|block| block["text"].as_str())
        .collect();
    assert!(!blocks.is_empty(), "no text content: {result}");
    blocks.concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_result_whose_text_shows_every_field_passes() {
        let result = json!({
            "content": [{ "type": "text", "text": "exit_code=0 signal=null path=\"a b\"\nentries (1): name\nx\n" }],
            "structuredContent": { "exit_code": 0, "signal": null, "path": "a b", "entries": [{ "name": "x" }] },
        });
        assert_text_carries_structured_content("t", &result);
    }

    #[test]
    #[should_panic(expected = "`size` = 5")]
    fn a_tool_result_whose_text_leaves_a_value_out_fails() {
        let result = json!({
            "content": [{ "type": "text", "text": "path=x size=" }],
            "structuredContent": { "path": "x", "size": 5 },
        });
        assert_text_carries_structured_content("t", &result);
    }

    #[test]
    fn stdout_lines_are_sorted_by_kind() {
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":7,"result":{}}"#),
            Ok(Incoming::Response(id, _)) if id == "7"
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{}}"#),
            Ok(Incoming::Message(_))
        ));
        assert!(matches!(
            classify(r#"{"jsonrpc":"2.0","id":"s1","method":"ping"}"#),
            Ok(Incoming::Message(_))
        ));
        assert!(classify("starting sshmcp...").is_err());
        assert!(classify("").is_err());
        assert!(classify(r#"{"id":1,"result":{}}"#).is_err());
    }
}
