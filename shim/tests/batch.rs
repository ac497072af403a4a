//! The `batch` tool and the daemon's response cache end to end, from where
//! an MCP client stands: JSON-RPC over the real shim's stdio, the real
//! daemon behind it, real sshd servers behind that.
//!
//! The kit's [`McpClient`] checks on every call that the text of the
//! result carries every field of its `structuredContent`, each call's
//! result inside a batch included.

use std::fs;
use std::thread;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, ShimOptions, structured, test_user};
use tempfile::TempDir;

/// What a call skipped under `stop_on_error` says.
const SKIPPED: &str = "skipped: an earlier call failed and stop_on_error is set";

/// Cache lifetimes long enough that no answer expires while a test runs,
/// however slow the machine.
const LONG_CACHE: &str = "[cache]\nstat_ttl_secs = 600\nlist_dir_ttl_secs = 600\n\
                          read_file_ttl_secs = 600\nread_file_fresh_ms = 600000\n";

/// Two hosts, a daemon for them, a shim that has done the MCP handshake,
/// and a scratch directory the hosts' user can read (the hosts run on
/// this machine, so a file written here is a file on both of them).
struct Setup {
    _fleet: Fleet,
    daemon: Daemon,
    mcp: McpClient,
    scratch: TempDir,
}

fn setup() -> Setup {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, LONG_CACHE);
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    Setup {
        _fleet: fleet,
        daemon,
        mcp,
        scratch: test_user().scratch_dir(),
    }
}

impl Setup {
    /// The scratch directory's absolute path.
    fn dir(&self) -> String {
        self.scratch.path().display().to_string()
    }

    /// An absolute path in the scratch directory.
    fn path(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    /// Writes `content` to `name` in the scratch directory; returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.path(name);
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {path}: {e}"));
        path
    }

    /// Calls `tool` and returns the `structuredContent` of a result that
    /// must not be an error.
    fn call(&self, tool: &str, args: Value) -> Value {
        structured(&self.mcp.call_tool(tool, args), &self.daemon)
    }

    /// Calls `batch` with `args` and returns its `results`.
    fn batch(&self, args: Value) -> Vec<Value> {
        results(&self.call("batch", args))
    }
}

/// The `results` of a batch's `structuredContent`.
fn results(batch: &Value) -> Vec<Value> {
    batch["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no `results` array: {batch}"))
        .clone()
}

/// A call for a batch.
fn call(tool: &str, arguments: Value) -> Value {
    json!({ "tool": tool, "arguments": arguments })
}

/// The `result` of a call in a batch that must have succeeded.
fn ok(result: &Value) -> &Value {
    assert_eq!(result["ok"], true, "the call failed: {result}");
    assert!(result.get("error").is_none(), "{result}");
    &result["result"]
}

/// The `error` of a call in a batch that must have failed.
fn error(result: &Value) -> &str {
    assert_eq!(result["ok"], false, "the call succeeded: {result}");
    assert!(result.get("result").is_none(), "{result}");
    result["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no `error` string: {result}"))
}

#[test]
fn a_batch_across_two_hosts_answers_every_call_in_order_with_its_own_outcome() {
    let s = setup();
    let note = s.file("note.txt", "hello batch\n");
    let results = s.batch(json!({ "calls": [
        call("exec", json!({ "host": "host1", "command": "echo from-host1" })),
        call("stat", json!({ "host": "host2", "path": s.path("missing") })),
        call("read_file", json!({ "host": "host2", "path": note })),
    ]}));
    assert_eq!(results.len(), 3, "{results:?}");
    let tools: Vec<&Value> = results.iter().map(|r| &r["tool"]).collect();
    assert_eq!(tools, ["exec", "stat", "read_file"]);
    let exec = ok(&results[0]);
    assert_eq!(exec["stdout"], "from-host1\n", "{exec}");
    assert_eq!(exec["exit_code"], 0, "{exec}");
    let missing = error(&results[1]);
    assert!(missing.starts_with("not_found: "), "{missing}");
    assert_eq!(ok(&results[2])["content"], "hello batch\n");
}

#[test]
fn the_text_of_a_batch_has_one_block_per_call() {
    let s = setup();
    let result = s.mcp.call_tool(
        "batch",
        json!({ "calls": [
            call("exec", json!({ "host": "host1", "command": "echo first" })),
            call("stat", json!({ "host": "host2", "path": s.path("missing") })),
        ]}),
    );
    let text = result["content"][0]["text"].as_str().expect("a text block");
    let first = text.find("[0] tool=exec ok=true").expect(text);
    let second = text.find("[1] tool=stat ok=false error=").expect(text);
    assert!(first < text.find("first\n").expect(text), "{text}");
    assert!(text.find("first\n").expect(text) < second, "{text}");
}

#[test]
fn under_stop_on_error_the_calls_after_a_failure_are_skipped() {
    let s = setup();
    let note = s.file("note.txt", "x");
    let results = s.batch(json!({
        "concurrency": 1,
        "stop_on_error": true,
        "calls": [
            call("stat", json!({ "host": "host1", "path": s.path("missing") })),
            call("exec", json!({ "host": "host1", "command": "echo never" })),
            call("read_file", json!({ "host": "host2", "path": note })),
        ],
    }));
    assert!(error(&results[0]).starts_with("not_found: "), "{results:?}");
    assert_eq!(error(&results[1]), SKIPPED);
    assert_eq!(error(&results[2]), SKIPPED);
    assert_eq!(results[2]["tool"], "read_file");
}

#[test]
fn without_stop_on_error_a_failure_stops_nothing() {
    let s = setup();
    let results = s.batch(json!({
        "concurrency": 1,
        "calls": [
            call("exec", json!({ "host": "host1", "command": "exit 1" })),
            call("stat", json!({ "host": "host1", "path": s.path("missing") })),
            call("exec", json!({ "host": "host2", "command": "echo still" })),
        ],
    }));
    assert_eq!(
        ok(&results[0])["exit_code"],
        1,
        "a non-zero exit is a result"
    );
    assert!(error(&results[1]).starts_with("not_found: "));
    assert_eq!(ok(&results[2])["stdout"], "still\n");
}

#[test]
fn a_call_with_bad_arguments_or_an_unknown_tool_fails_alone() {
    let s = setup();
    let results = s.batch(json!({ "calls": [
        call("exec", json!({ "host": "host1", "command": "echo a" })),
        call("exec", json!({ "host": "host1", "command": "true", "timeout_secs": 0 })),
        call("shell", json!({ "host": "host1" })),
        call("hosts", json!({})),
        call("exec", json!({ "host": "host2", "command": "echo b" })),
    ]}));
    assert_eq!(ok(&results[0])["stdout"], "a\n");
    let bad = error(&results[1]);
    assert!(
        bad.starts_with("bad_request: calls[1]: exec: `timeout_secs`"),
        "{bad}"
    );
    let unknown = error(&results[2]);
    assert!(
        unknown.starts_with("bad_request: calls[2]: no tool `shell`"),
        "{unknown}"
    );
    let hosts = error(&results[3]);
    assert!(
        hosts.contains("calls[3]") && hosts.contains("`hosts`"),
        "{hosts}"
    );
    assert_eq!(ok(&results[4])["stdout"], "b\n");
}

#[test]
fn a_batch_without_calls_is_an_error_naming_the_limit() {
    let s = setup();
    let result = s.mcp.call_tool("batch", json!({ "calls": [] }));
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().expect("a text block");
    assert!(
        text.contains("`calls` has 0 calls; pass 1 to 256"),
        "{text}"
    );
}

#[test]
fn a_batch_cannot_call_a_tool_left_out_by_tools() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start_with(
        daemon.socket(),
        ShimOptions {
            args: vec!["--tools".into(), "files".into()],
            ..ShimOptions::default()
        },
    );
    mcp.initialize();
    let scratch = test_user().scratch_dir();
    let batch = structured(
        &mcp.call_tool(
            "batch",
            json!({ "calls": [
                call("exec", json!({ "host": "host1", "command": "echo no" })),
                call("stat", json!({ "host": "host1", "path": scratch.path().display().to_string() })),
            ]}),
        ),
        &daemon,
    );
    let results = results(&batch);
    let refused = error(&results[0]);
    assert!(
        refused.contains("calls[0]") && refused.contains("--tools files"),
        "{refused}"
    );
    assert_eq!(ok(&results[1])["type"], "dir");
}

#[test]
fn a_batch_reports_progress_as_its_calls_finish() {
    let s = setup();
    let (result, progress) = s.mcp.call_tool_with_progress(
        "batch",
        json!({ "calls": [
            call("exec", json!({ "host": "host1", "command": "echo 1" })),
            call("exec", json!({ "host": "host2", "command": "echo 2" })),
        ]}),
        json!("batch-1"),
    );
    structured(&result, &s.daemon);
    assert!(
        !progress.is_empty(),
        "no notifications/progress for a batch"
    );
    for params in &progress {
        assert_eq!(params["total"], 2.0, "{params}");
    }
}

#[test]
fn a_repeated_stat_is_answered_from_the_cache_with_its_age() {
    let s = setup();
    let args = json!({ "host": "host1", "path": s.dir() });
    let first = s.call("stat", args.clone());
    assert!(first.get("cached").is_none(), "{first}");
    assert!(first.get("age_ms").is_none(), "{first}");
    let again = s.mcp.call_tool("stat", args);
    let second = structured(&again, &s.daemon);
    assert_eq!(second["cached"], true, "{second}");
    assert!(second["age_ms"].is_u64(), "{second}");
    assert_eq!(second["mtime"], first["mtime"], "{second}");
    let text = again["content"][0]["text"].as_str().expect("a text block");
    assert!(text.contains("cached=true age_ms="), "{text}");
}

#[test]
fn a_repeated_read_file_is_answered_from_the_cache() {
    let s = setup();
    let note = s.file("note.txt", "cache me\n");
    let args = json!({ "host": "host2", "path": note });
    let first = s.call("read_file", args.clone());
    assert!(first.get("cached").is_none(), "{first}");
    let second = s.call("read_file", args);
    assert_eq!(second["cached"], true, "{second}");
    assert!(second["age_ms"].is_u64(), "{second}");
    assert_eq!(second["content"], "cache me\n");
}

#[test]
fn max_age_secs_zero_reads_the_host_afresh() {
    let s = setup();
    let args = json!({ "host": "host1", "path": s.dir() });
    s.call("stat", args.clone());
    let mut fresh = args;
    fresh["max_age_secs"] = json!(0);
    let second = s.call("stat", fresh);
    assert!(second.get("cached").is_none(), "{second}");
    assert!(second.get("age_ms").is_none(), "{second}");
}

#[test]
fn cached_results_inside_a_batch_say_so() {
    let s = setup();
    let stat = json!({ "host": "host1", "path": s.dir() });
    s.call("stat", stat.clone());
    let mut fresh = stat.clone();
    fresh["max_age_secs"] = json!("0");
    let results = s.batch(json!({ "calls": [call("stat", stat), call("stat", fresh)] }));
    let cached = ok(&results[0]);
    assert_eq!(cached["cached"], true, "{cached}");
    assert!(cached["age_ms"].is_u64(), "{cached}");
    let uncached = ok(&results[1]);
    assert!(uncached.get("cached").is_none(), "{uncached}");
}

#[test]
fn an_exec_with_cache_secs_is_answered_from_the_cache() {
    let s = setup();
    let args = json!({ "host": "host1", "command": "date +%s%N", "cache_secs": 600 });
    let first = s.call("exec", args.clone());
    assert!(first.get("cached").is_none(), "{first}");
    let second = s.call("exec", args);
    assert_eq!(second["cached"], true, "{second}");
    assert_eq!(
        second["stdout"], first["stdout"],
        "the command did not run again"
    );
}

#[test]
fn an_exec_without_cache_secs_always_runs() {
    let s = setup();
    let args = json!({ "host": "host1", "command": "date +%s%N" });
    let first = s.call("exec", args.clone());
    let second = s.call("exec", args);
    assert!(second.get("cached").is_none(), "{second}");
    assert_ne!(second["stdout"], first["stdout"]);
}

#[test]
fn many_batches_through_several_shims_at_once_all_come_back_right() {
    const SHIMS: usize = 4;
    const BATCHES: usize = 10;
    let s = setup();
    let note = s.file("note.txt", "shared\n");
    let missing = s.path("missing");
    let failures: Vec<String> = thread::scope(|scope| {
        let shims: Vec<_> = (0..SHIMS)
            .map(|shim| {
                let (s, note, missing) = (&s, &note, &missing);
                scope.spawn(move || {
                    let mcp = McpClient::start(s.daemon.socket());
                    mcp.initialize();
                    let mcp = &mcp;
                    thread::scope(|scope| {
                        let batches: Vec<_> = (0..BATCHES)
                            .map(|b| {
                                scope.spawn(move || {
                                    batch_failure(mcp, &format!("s{shim}b{b}"), note, missing)
                                })
                            })
                            .collect();
                        batches
                            .into_iter()
                            .filter_map(|batch| batch.join().expect("a batch thread panicked"))
                            .collect::<Vec<_>>()
                    })
                })
            })
            .collect();
        shims
            .into_iter()
            .flat_map(|shim| shim.join().expect("a shim thread panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} batches went wrong:\n{}\ndaemon log:\n{}",
        failures.len(),
        SHIMS * BATCHES,
        failures.join("\n"),
        s.daemon.log()
    );
}

/// Runs one batch of an exec on each host, a read and a failing stat,
/// tagged `tag`; returns what went wrong, if anything.
fn batch_failure(mcp: &McpClient, tag: &str, note: &str, missing: &str) -> Option<String> {
    let result = mcp.call_tool(
        "batch",
        json!({ "calls": [
            call("exec", json!({ "host": "host1", "command": format!("echo {tag}-1") })),
            call("read_file", json!({ "host": "host2", "path": note })),
            call("stat", json!({ "host": "host1", "path": missing })),
            call("exec", json!({ "host": "host2", "command": format!("echo {tag}-2") })),
        ]}),
    );
    if result["isError"] != json!(false) {
        return Some(format!("{tag}: {result}"));
    }
    let results = results(&result["structuredContent"]);
    let right = results.len() == 4
        && results[0]["result"]["stdout"] == format!("{tag}-1\n")
        && results[1]["result"]["content"] == "shared\n"
        && results[2]["ok"] == false
        && results[2]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("not_found: "))
        && results[3]["result"]["stdout"] == format!("{tag}-2\n");
    (!right).then(|| format!("{tag}: {results:?}"))
}
