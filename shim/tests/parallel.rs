//! Parallel tool calls, as MCP hosts send them, against an sshd left at
//! OpenSSH's default limits (`MaxSessions 10`, `MaxStartups 10:30:100`, as
//! the kit leaves them): every call succeeds, however many are in flight,
//! and the daemon's file descriptors and memory come back down afterwards.

use std::thread;
use std::time::Duration;

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, wait_for};

/// One sshd at OpenSSH's defaults.
fn default_fleet() -> Fleet {
    Fleet::start(1)
}

/// Runs `exec` with a command whose output names the call, and returns
/// why it failed, if it did.
fn exec_failure(mcp: &McpClient, host: &str, tag: &str) -> Option<String> {
    let result = mcp.call_tool(
        "exec",
        json!({ "host": host, "command": format!("echo {tag}") }),
    );
    let content = &result["structuredContent"];
    if result["isError"] != json!(false) {
        return Some(format!("{tag}: {result}"));
    }
    if content["stdout"] != json!(format!("{tag}\n")) || content["exit_code"] != json!(0) {
        return Some(format!("{tag}: unexpected result {content}"));
    }
    None
}

#[test]
fn fifty_concurrent_execs_through_one_shim_all_succeed_at_default_max_sessions() {
    let fleet = default_fleet();
    let daemon = Daemon::start(&fleet, "");
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let host = fleet.alias(0);

    let failures: Vec<String> = thread::scope(|scope| {
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let (mcp, host) = (&mcp, &host);
                scope.spawn(move || exec_failure(mcp, host, &format!("call-{i}")))
            })
            .collect();
        calls
            .into_iter()
            .filter_map(|call| call.join().expect("a call thread panicked"))
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of 50 parallel execs failed:\n{}\ndaemon log:\n{}",
        failures.len(),
        failures.join("\n"),
        daemon.log()
    );
}

/// Open file descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| dir.count())
        .unwrap_or_else(|e| panic!("cannot list /proc/{pid}/fd: {e}"))
}

/// Resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// The pool's open connections to the first host, from `hosts`.
fn pooled_connections(mcp: &McpClient) -> Value {
    let result = mcp.call_tool("hosts", json!({}));
    result["structuredContent"]["hosts"][0]["connections"].clone()
}

#[test]
fn twenty_shims_making_two_hundred_execs_each_see_no_error_and_leave_nothing_behind() {
    const SHIMS: usize = 20;
    const CALLS: usize = 200;
    let fleet = default_fleet();
    // Idle connections close after 2 s, so the pool shrinks back to what it
    // was before the load and the daemon's fds can be compared.
    let daemon = Daemon::start(&fleet, "[pool]\nidle_timeout_secs = 2\n");
    let host = fleet.alias(0);
    let pid = daemon.pid();

    // Baseline: one shim has connected and made a call, then gone, and the
    // pool has let its connection go.
    {
        let mcp = McpClient::start(daemon.socket());
        mcp.initialize();
        assert_eq!(exec_failure(&mcp, &host, "warm-up"), None);
        wait_for(
            || pooled_connections(&mcp) == json!(0),
            Duration::from_secs(30),
            "the warm-up connection to close",
        );
    }
    let fds_before = fd_count(pid);
    let rss_before = rss_kib(pid);

    let failures: Vec<String> = thread::scope(|scope| {
        let shims: Vec<_> = (0..SHIMS)
            .map(|s| {
                let (socket, host) = (daemon.socket(), &host);
                scope.spawn(move || {
                    let mcp = McpClient::start(socket);
                    mcp.initialize();
                    (0..CALLS)
                        .filter_map(|c| exec_failure(&mcp, host, &format!("shim{s}-call{c}")))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        shims
            .into_iter()
            .flat_map(|shim| shim.join().expect("a shim thread panicked"))
            .collect()
    });
    let rss_peak = rss_kib(pid);
    assert!(
        failures.is_empty(),
        "{} of {} execs failed:\n{}\ndaemon log:\n{}",
        failures.len(),
        SHIMS * CALLS,
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        daemon.log()
    );

    // Every shim has exited and every connection has idled out: the daemon
    // holds no more descriptors than before the load.
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    wait_for(
        || pooled_connections(&mcp) == json!(0),
        Duration::from_secs(30),
        "the pool to close its idle connections",
    );
    drop(mcp);
    wait_for(
        || fd_count(pid) <= fds_before,
        Duration::from_secs(10),
        "the daemon's fds to come back down",
    );
    let rss_after = rss_kib(pid);
    eprintln!(
        "{} execs by {SHIMS} shims: 0 errors; daemon fds {fds_before} before, {} after; \
         RSS {rss_before} KiB before, {rss_peak} KiB at the end of the load, {rss_after} KiB after",
        SHIMS * CALLS,
        fd_count(pid),
    );
    // The allocator may keep some of what the load used; a leak of even a
    // few KiB per call would show as far more than this over 4,000 calls.
    assert!(
        rss_after <= rss_before + 32 * 1024,
        "daemon RSS grew from {rss_before} KiB to {rss_after} KiB over the load"
    );
}
