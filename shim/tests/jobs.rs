//! Jobs end to end, from where an MCP client stands: `exec` with
//! `background` or `on_timeout: "background"`, then `job_output`,
//! `job_signal` and `jobs`, over the real shim's stdio, the real daemon
//! behind it, a real sshd behind that.
//!
//! A job belongs to the daemon: a shim that exits leaves it running, and
//! another shim reads it to its end.

use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, structured, text};

/// How long the shim may take to exit once its stdin is closed.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Long-polls `job_output` makes at most before a test gives up on a job.
const MAX_POLLS: usize = 60;

/// Hosts, a daemon for them, and a shim that has done the MCP handshake.
fn setup(hosts: usize) -> (Fleet, Daemon, McpClient) {
    let fleet = Fleet::start(hosts);
    let daemon = Daemon::start(&fleet, "");
    let mcp = shim(&daemon);
    (fleet, daemon, mcp)
}

/// A new shim for `daemon`, past its MCP handshake.
fn shim(daemon: &Daemon) -> McpClient {
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    mcp
}

/// Starts `command` on host1 with `background: true`; its job id.
fn background(mcp: &McpClient, daemon: &Daemon, command: &str) -> String {
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": command, "background": true }),
    );
    let out = structured(&result, daemon);
    assert_eq!(out["exit_code"], Value::Null, "{out}");
    assert!(text(&result).contains("job_output"), "{result}");
    out["job"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {out}"))
        .to_string()
}

/// What reading a job to its end gave.
struct Read {
    stdout: String,
    stderr: String,
    /// Every page, in order.
    pages: Vec<Value>,
}

impl Read {
    /// The last page: the job's end.
    fn last(&self) -> &Value {
        self.pages.last().expect("a page")
    }
}

/// Reads `job` from the start until it is no longer running, long-polling
/// up to `wait_secs` a page, each page from where the last one ended.
fn read_to_end(mcp: &McpClient, daemon: &Daemon, job: &str, wait_secs: u64) -> Read {
    let mut read = Read {
        stdout: String::new(),
        stderr: String::new(),
        pages: Vec::new(),
    };
    let (mut stdout_offset, mut stderr_offset) = (0, 0);
    for _ in 0..MAX_POLLS {
        let page = structured(
            &mcp.call_tool(
                "job_output",
                json!({
                    "job_id": job, "stdout_offset": stdout_offset,
                    "stderr_offset": stderr_offset, "wait_secs": wait_secs,
                }),
            ),
            daemon,
        );
        assert_eq!(page["job_id"], job, "{page}");
        assert_eq!(page["stdout_offset"], stdout_offset, "{page}");
        assert_eq!(page["stderr_offset"], stderr_offset, "{page}");
        assert_eq!(page["stdout_encoding"], "utf8", "{page}");
        read.stdout
            .push_str(page["stdout"].as_str().expect("stdout"));
        read.stderr
            .push_str(page["stderr"].as_str().expect("stderr"));
        let next = |key: &str| {
            page[key]
                .as_u64()
                .unwrap_or_else(|| panic!("{key}: {page}"))
        };
        let (next_stdout, next_stderr) = (next("next_stdout_offset"), next("next_stderr_offset"));
        assert!(
            next_stdout >= stdout_offset && next_stderr >= stderr_offset,
            "offsets go back: {page}"
        );
        (stdout_offset, stderr_offset) = (next_stdout, next_stderr);
        let done = page["state"] != "running" && page["truncated"] == false;
        read.pages.push(page);
        if done {
            assert_eq!(stdout_offset, read.stdout.len() as u64);
            assert_eq!(stderr_offset, read.stderr.len() as u64);
            return read;
        }
    }
    panic!(
        "job {job} still runs after {MAX_POLLS} polls: {:?}",
        read.pages.last()
    );
}

/// The job `job` as `jobs` lists it.
fn listed(mcp: &McpClient, daemon: &Daemon, job: &str) -> Value {
    let jobs = structured(&mcp.call_tool("jobs", json!({})), daemon);
    jobs["jobs"]
        .as_array()
        .expect("`jobs` is an array")
        .iter()
        .find(|j| j["job_id"] == job)
        .unwrap_or_else(|| panic!("`jobs` lists no {job}: {jobs}"))
        .clone()
}

#[test]
fn a_background_job_is_read_to_its_end_by_long_polling() {
    let (_fleet, daemon, mcp) = setup(1);
    let job = background(
        &mcp,
        &daemon,
        "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 1; done; exit 3",
    );
    let read = read_to_end(&mcp, &daemon, &job, 10);
    assert_eq!(read.stdout, "line1\nline2\nline3\n");
    assert_eq!(read.stderr, "err1\nerr2\nerr3\n");
    let last = read.last();
    assert_eq!(last["state"], "exited", "{last}");
    assert_eq!(last["exit_code"], 3, "{last}");
    assert_eq!(last["signal"], Value::Null, "{last}");
    let with_output = read
        .pages
        .iter()
        .filter(|page| page["stdout"] != "")
        .count();
    assert!(
        with_output >= 2,
        "long-polling answers as output comes, not only at the end: {:?}",
        read.pages
    );
    // Read again from an offset: the rest of the output, and the end.
    let tail = structured(
        &mcp.call_tool(
            "job_output",
            json!({ "job_id": job, "stdout_offset": 6, "stderr_offset": 10 }),
        ),
        &daemon,
    );
    assert_eq!(tail["stdout"], "line2\nline3\n", "{tail}");
    assert_eq!(tail["stderr"], "err3\n", "{tail}");
    assert_eq!(tail["next_stdout_offset"], 18, "{tail}");
}

#[test]
fn a_new_shim_reads_to_the_end_a_job_an_exited_shim_started() {
    let (_fleet, daemon, first) = setup(1);
    let job = background(&first, &daemon, "echo begun; sleep 3; echo done");
    let early = structured(
        &first.call_tool("job_output", json!({ "job_id": job, "wait_secs": 5 })),
        &daemon,
    );
    assert_eq!(early["state"], "running", "{early}");
    first.close_stdin();
    assert!(
        first.wait_exit(EXIT_TIMEOUT).is_some(),
        "the first shim did not exit; stderr:\n{}",
        first.stderr()
    );
    let second = shim(&daemon);
    let read = read_to_end(&second, &daemon, &job, 10);
    assert_eq!(read.stdout, "begun\ndone\n");
    assert_eq!(read.last()["state"], "exited", "{:?}", read.pages);
    assert_eq!(read.last()["exit_code"], 0, "{:?}", read.pages);
}

#[test]
fn a_command_past_its_timeout_runs_on_as_a_job_that_finishes() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = mcp.call_tool(
        "exec",
        json!({
            "host": "host1", "command": "echo start; sleep 3; echo end",
            "timeout_secs": 1, "on_timeout": "background",
        }),
    );
    let out = structured(&result, &daemon);
    assert_eq!(out["exit_code"], Value::Null, "{out}");
    let job = out["job"]["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job in {out}"))
        .to_string();
    assert!(
        out["job"]["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{out}"
    );
    assert!(text(&result).contains("job_output"), "{result}");
    let read = read_to_end(&mcp, &daemon, &job, 10);
    assert_eq!(read.stdout, "start\nend\n");
    assert_eq!(read.last()["state"], "exited", "{:?}", read.pages);
    assert_eq!(read.last()["exit_code"], 0, "{:?}", read.pages);
}

#[test]
fn job_signal_term_kills_a_job() {
    let (_fleet, daemon, mcp) = setup(1);
    let job = background(&mcp, &daemon, "sleep 100");
    let signalled = structured(
        &mcp.call_tool("job_signal", json!({ "job_id": job, "signal": "TERM" })),
        &daemon,
    );
    assert_eq!(signalled["job_id"], job, "{signalled}");
    assert!(
        signalled["state"] == "killed" || signalled["state"] == "running",
        "{signalled}"
    );
    let read = read_to_end(&mcp, &daemon, &job, 10);
    let last = read.last();
    assert_eq!(last["state"], "killed", "{last}");
    assert_eq!(last["signal"], "TERM", "{last}");
    assert_eq!(listed(&mcp, &daemon, &job)["state"], "killed");
}

#[test]
fn jobs_lists_every_job_with_its_host_command_and_state() {
    let (_fleet, daemon, mcp) = setup(2);
    let sleeper = background(&mcp, &daemon, "sleep 100");
    let quick = background(&mcp, &daemon, "echo hi");
    read_to_end(&mcp, &daemon, &quick, 10);

    let running = listed(&mcp, &daemon, &sleeper);
    assert_eq!(running["host"], "host1", "{running}");
    assert_eq!(running["command"], "sleep 100", "{running}");
    assert_eq!(running["state"], "running", "{running}");
    assert!(
        running["started"].as_u64().is_some_and(|s| s > 0),
        "{running}"
    );
    let done = listed(&mcp, &daemon, &quick);
    assert_eq!(done["state"], "exited", "{done}");
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(done["bytes"], 3, "{done}");

    let other = structured(&mcp.call_tool("jobs", json!({ "host": "host2" })), &daemon);
    assert_eq!(other["jobs"], json!([]), "{other}");

    // A batch reads and signals jobs, but does not list them.
    let batch = structured(
        &mcp.call_tool(
            "batch",
            json!({ "calls": [
                { "tool": "job_output", "arguments": { "job_id": quick } },
                { "tool": "job_signal", "arguments": { "job_id": sleeper, "signal": "KILL" } },
                { "tool": "jobs", "arguments": {} },
            ]}),
        ),
        &daemon,
    );
    let results = batch["results"].as_array().expect("results");
    assert_eq!(results[0]["ok"], true, "{batch}");
    assert_eq!(results[0]["result"]["stdout"], "hi\n", "{batch}");
    assert_eq!(results[1]["ok"], true, "{batch}");
    assert_eq!(results[2]["ok"], false, "{batch}");
    assert!(
        results[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("`jobs` cannot be batched")),
        "{batch}"
    );
    let read = read_to_end(&mcp, &daemon, &sleeper, 10);
    assert_eq!(read.last()["signal"], "KILL", "{:?}", read.pages);
}

#[test]
fn an_unknown_job_is_an_error_result_that_says_so() {
    let (_fleet, daemon, mcp) = setup(1);
    let result = mcp.call_tool("job_output", json!({ "job_id": "j-nope-1" }));
    assert_eq!(result["isError"], true, "{result}");
    let message = text(&result);
    assert!(message.contains("j-nope-1"), "{message}\n{}", daemon.log());
}

#[test]
fn a_detached_job_outlives_its_shim_and_a_daemon_restart() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let job = {
        let mcp = shim(&daemon);
        let result = mcp.call_tool(
            "exec",
            json!({ "host": "host1", "command": "sleep 1; echo green", "detach": true }),
        );
        let out = structured(&result, &daemon);
        assert!(text(&result).contains("detached"), "{result}");
        let job = out["job"]["job_id"].as_str().expect("a job id").to_string();
        assert_eq!(listed(&mcp, &daemon, &job)["detached"], true);
        mcp.close_stdin();
        mcp.wait_exit(EXIT_TIMEOUT);
        job
    };
    daemon.kill();
    daemon.restart();
    let mcp = shim(&daemon);
    let read = read_to_end(&mcp, &daemon, &job, 5);
    assert_eq!(read.stdout, "green\n");
    assert_eq!(read.last()["state"], "exited", "{}", read.last());
    assert_eq!(read.last()["exit_code"], 0, "{}", read.last());
}
