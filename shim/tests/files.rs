//! The file tools end to end, from where an MCP client stands: JSON-RPC over
//! the real shim's stdio, the real daemon behind it, a real sshd (and its
//! SFTP server) behind that.
//!
//! Each test gets one local directory, which is the daemon's only allowed
//! local root and the shim's working directory and `$HOME`, and one
//! scratch directory on the host.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sshmcp_testkit::{
    Daemon, Fleet, McpClient, ShimOptions, error_text, structured, test_user, wait_for,
};
use tempfile::TempDir;

/// A host, a daemon that may touch only `local`, and a shim working in
/// `local`, with a scratch directory on the host.
struct Setup {
    _fleet: Fleet,
    daemon: Daemon,
    mcp: McpClient,
    local: TempDir,
    remote: TempDir,
}

fn setup() -> Setup {
    let fleet = Fleet::start(1);
    let local = tempfile::Builder::new()
        .prefix("sshmcp-files-")
        .tempdir()
        .expect("create the local test directory");
    let daemon = Daemon::start(
        &fleet,
        &format!(
            "[policy]\nlocal_roots = [{}]\n",
            json!(local.path().display().to_string())
        ),
    );
    let mcp = McpClient::start_with(
        daemon.socket(),
        ShimOptions {
            cwd: Some(local.path().to_path_buf()),
            env: vec![("HOME".into(), local.path().display().to_string())],
            ..ShimOptions::default()
        },
    );
    mcp.initialize();
    let remote = test_user().scratch_dir();
    Setup {
        _fleet: fleet,
        daemon,
        mcp,
        local,
        remote,
    }
}

impl Setup {
    /// An absolute path in the host's scratch directory.
    fn remote(&self, name: &str) -> String {
        self.remote.path().join(name).display().to_string()
    }

    /// A path in the local directory.
    fn local(&self, name: &str) -> PathBuf {
        self.local.path().join(name)
    }

    /// Calls `tool` on host1 (`args` without `host`) and returns the
    /// `structuredContent` of a result that must not be an error.
    fn call(&self, tool: &str, args: Value) -> Value {
        let result = self.mcp.call_tool(tool, with_host(args));
        structured(&result, &self.daemon)
    }

    /// Calls `tool` on host1 and returns the text of a result that must be
    /// an error.
    fn fail(&self, tool: &str, args: Value) -> String {
        error_text(&self.mcp.call_tool(tool, with_host(args)))
    }
}

fn with_host(mut args: Value) -> Value {
    args["host"] = json!("host1");
    args
}

/// Every byte value, several times: content that is not UTF-8.
fn binary_content() -> Vec<u8> {
    (0..=255u8).cycle().take(1000).collect()
}

/// Writes `files` (relative path, content) under `root`, making directories.
fn write_tree(root: &Path, files: &[(&str, &[u8])]) {
    for (path, content) in files {
        let path = root.join(path);
        fs::create_dir_all(path.parent().expect("a file has a parent"))
            .unwrap_or_else(|e| panic!("mkdir for {}: {e}", path.display()));
        fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// The paths of the entries of a `list_dir` result.
fn entry_paths(listing: &Value) -> Vec<String> {
    listing["entries"]
        .as_array()
        .unwrap_or_else(|| panic!("no entries: {listing}"))
        .iter()
        .map(|e| e["path"].as_str().expect("entry path").to_string())
        .collect()
}

#[test]
fn text_written_is_read_back_as_utf8() {
    let s = setup();
    let path = s.remote("notes/hello.txt");
    let written = s.call(
        "write_file",
        json!({ "path": path, "content": "héllo\nwörld\n", "create_dirs": true }),
    );
    assert_eq!(written["bytes_written"], 14, "{written}");
    assert_eq!(written["created"], true, "{written}");

    let read = s.call("read_file", json!({ "path": path }));
    assert_eq!(read["content"], "héllo\nwörld\n", "{read}");
    assert_eq!(read["encoding"], "utf8", "{read}");
    assert_eq!(read["size"], 14, "{read}");
    assert_eq!(read["truncated"], false, "{read}");
    // What the write left is what the read got, from the daemon's cache,
    // and a page of it is cut from the same answer.
    assert_eq!(read["cached"], true, "{read}");
    let page = s.call(
        "read_file",
        json!({ "path": path, "offset": 7, "length": 4 }),
    );
    assert_eq!(page["content"], "wör", "{page}");
    assert_eq!(page["cached"], true, "{page}");
    assert_eq!(page["truncated"], true, "{page}");

    let appended = s.call(
        "write_file",
        json!({ "path": path, "content": "more\n", "append": true }),
    );
    assert_eq!(appended["created"], false, "{appended}");
    let read = s.call("read_file", json!({ "path": path }));
    assert_eq!(read["content"], "héllo\nwörld\nmore\n", "{read}");
}

#[test]
fn binary_content_round_trips_byte_exact_through_base64() {
    let s = setup();
    let path = s.remote("blob.bin");
    let bytes = binary_content();
    s.call(
        "write_file",
        json!({ "path": path, "content": STANDARD.encode(&bytes), "encoding": "base64" }),
    );
    assert_eq!(
        fs::read(&path).expect("the written file is on the host"),
        bytes
    );

    // Asked for text, the bytes are not UTF-8: they come back as base64.
    let read = s.call("read_file", json!({ "path": path }));
    assert_eq!(read["encoding"], "base64", "{read}");
    let content = read["content"].as_str().expect("content is a string");
    assert_eq!(STANDARD.decode(content).expect("valid base64"), bytes);

    let read = s.call(
        "read_file",
        json!({ "path": path, "encoding": "base64", "offset": 10, "length": 20 }),
    );
    let content = read["content"].as_str().expect("content is a string");
    assert_eq!(
        STANDARD.decode(content).expect("valid base64"),
        &bytes[10..30]
    );
    assert_eq!(read["offset"], 10, "{read}");
    assert_eq!(read["bytes_returned"], 20, "{read}");
    assert_eq!(read["truncated"], true, "{read}");
    assert_eq!(read["next_offset"], 30, "{read}");
}

#[test]
fn stat_reports_type_size_mode_and_mtime() {
    let s = setup();
    let path = s.remote("script.sh");
    s.call(
        "write_file",
        json!({ "path": path, "content": "#!/bin/sh\n", "mode": "0750" }),
    );
    let stat = s.call("stat", json!({ "path": path }));
    assert_eq!(stat["type"], "file", "{stat}");
    assert_eq!(stat["size"], 10, "{stat}");
    assert_eq!(stat["mode"], "0750", "{stat}");
    assert!(stat["mtime"].as_u64().is_some_and(|t| t > 0), "{stat}");
    assert!(
        stat["mtime_iso"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{stat}"
    );

    let dir = s.call("stat", json!({ "path": s.remote("") }));
    assert_eq!(dir["type"], "dir", "{dir}");
}

#[test]
fn list_dir_lists_recursively_and_stops_at_max_entries() {
    let s = setup();
    for name in ["a.txt", "sub/b.txt", "sub/deeper/c.txt"] {
        s.call(
            "write_file",
            json!({ "path": s.remote(name), "content": name, "create_dirs": true }),
        );
    }
    let top = s.call("list_dir", json!({ "path": s.remote("") }));
    assert_eq!(entry_paths(&top), ["a.txt", "sub"], "{top}");
    assert_eq!(top["truncated"], false, "{top}");
    let sub = &top["entries"][1];
    assert_eq!(sub["type"], "dir", "{top}");

    let all = s.call(
        "list_dir",
        json!({ "path": s.remote(""), "recursive": true }),
    );
    assert_eq!(
        entry_paths(&all),
        [
            "a.txt",
            "sub",
            "sub/b.txt",
            "sub/deeper",
            "sub/deeper/c.txt"
        ],
        "{all}"
    );
    let first = &all["entries"][0];
    assert_eq!(first["size"], 5, "{all}");
    assert!(
        first["mode"].as_str().is_some_and(|m| m.len() == 4),
        "{all}"
    );

    let cut = s.call(
        "list_dir",
        json!({ "path": s.remote(""), "recursive": true, "max_entries": 2 }),
    );
    assert_eq!(entry_paths(&cut).len(), 2, "{cut}");
    assert_eq!(cut["truncated"], true, "{cut}");
}

#[test]
fn mkdir_rename_and_remove_change_the_remote_tree() {
    let s = setup();
    let deep = s.remote("x/y/z");
    s.call("mkdir", json!({ "path": deep, "parents": true }));
    assert!(Path::new(&deep).is_dir(), "mkdir made nothing");
    // With `parents`, an existing directory is fine.
    s.call("mkdir", json!({ "path": deep, "parents": true }));
    let message = s.fail("mkdir", json!({ "path": deep }));
    assert!(message.starts_with("already_exists"), "{message}");

    s.call(
        "write_file",
        json!({ "path": s.remote("x/y/z/f"), "content": "f" }),
    );
    s.call(
        "write_file",
        json!({ "path": s.remote("other"), "content": "o" }),
    );
    let renamed = s.call(
        "rename",
        json!({ "from": s.remote("x/y"), "to": s.remote("moved") }),
    );
    assert_eq!(renamed["to"], s.remote("moved"), "{renamed}");
    assert!(Path::new(&s.remote("moved/z/f")).is_file());
    assert!(!Path::new(&s.remote("x/y")).exists());

    let message = s.fail(
        "rename",
        json!({ "from": s.remote("moved/z/f"), "to": s.remote("other") }),
    );
    assert!(message.starts_with("already_exists"), "{message}");
    s.call(
        "rename",
        json!({ "from": s.remote("moved/z/f"), "to": s.remote("other"), "overwrite": true }),
    );
    assert_eq!(fs::read_to_string(s.remote("other")).expect("other"), "f");

    s.call(
        "write_file",
        json!({ "path": s.remote("moved/z/g"), "content": "g" }),
    );
    let message = s.fail("remove", json!({ "path": s.remote("moved") }));
    assert!(message.contains("moved"), "{message}");
    let removed = s.call(
        "remove",
        json!({ "path": s.remote("moved"), "recursive": true }),
    );
    assert_eq!(removed["files"], 1, "{removed}");
    assert_eq!(removed["dirs"], 2, "{removed}");
    assert!(!Path::new(&s.remote("moved")).exists());
}

#[test]
fn a_tree_uploads_and_downloads_with_relative_local_paths() {
    let s = setup();
    let bytes = binary_content();
    write_tree(
        s.local.path(),
        &[
            ("src/top.txt", b"top\n"),
            ("src/bin/data", &bytes),
            ("src/bin/empty/.keep", b""),
        ],
    );
    fs::set_permissions(s.local("src/top.txt"), fs::Permissions::from_mode(0o640)).expect("chmod");

    let up = s.call(
        "transfer",
        json!({
            "direction": "upload", "local_path": "src", "remote_path": s.remote("up"),
            "recursive": true,
        }),
    );
    assert_eq!(up["files"], 3, "{up}");
    assert_eq!(up["bytes"], 4 + bytes.len(), "{up}");
    assert_eq!(
        up["local_path"],
        s.local("src").display().to_string(),
        "the relative local path resolves against the shim's working directory: {up}"
    );
    assert_eq!(
        fs::read(s.remote("up/bin/data")).expect("uploaded file"),
        bytes
    );
    let stat = s.call("stat", json!({ "path": s.remote("up/top.txt") }));
    assert_eq!(stat["mode"], "0640", "the mode is kept: {stat}");

    let down = s.call(
        "transfer",
        json!({
            "direction": "download", "local_path": "./back", "remote_path": s.remote("up"),
            "recursive": true, "verify": true,
        }),
    );
    assert_eq!(down["files"], 3, "{down}");
    assert_eq!(down["verified"], true, "{down}");
    assert_eq!(
        fs::read(s.local("back/bin/data")).expect("downloaded"),
        bytes
    );
    assert_eq!(
        fs::read_to_string(s.local("back/top.txt")).expect("downloaded"),
        "top\n"
    );
    assert!(s.local("back/bin/empty/.keep").is_file());

    let single = s.call(
        "transfer",
        json!({
            "direction": "download", "local_path": "~/single.txt",
            "remote_path": s.remote("up/top.txt"),
        }),
    );
    assert_eq!(single["files"], 1, "{single}");
    assert_eq!(
        single["local_path"],
        s.local("single.txt").display().to_string(),
        "~/ resolves against the shim's HOME: {single}"
    );
    assert_eq!(
        fs::read_to_string(s.local("single.txt")).expect("downloaded"),
        "top\n"
    );
}

#[test]
fn sync_plans_on_dry_run_applies_and_then_finds_nothing_to_do() {
    let s = setup();
    write_tree(
        s.local.path(),
        &[
            ("site/index.html", b"<h1>hi</h1>\n"),
            ("site/css/a.css", b"a{}\n"),
        ],
    );
    let remote_dir = s.remote("site");
    let args = |dry_run: bool| {
        json!({
            "direction": "upload", "local_dir": "site", "remote_dir": remote_dir,
            "delete": true, "dry_run": dry_run,
        })
    };

    let plan = s.call("sync", args(true));
    assert_eq!(plan["dry_run"], true, "{plan}");
    assert_eq!(plan["created"], 2, "{plan}");
    assert!(
        plan["total_changes"].as_u64().is_some_and(|n| n >= 2),
        "{plan}"
    );
    let planned: Vec<&str> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "create")
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert!(planned.contains(&"index.html"), "{plan}");
    assert!(planned.contains(&"css/a.css"), "{plan}");
    assert!(
        !Path::new(&remote_dir).exists(),
        "a dry run changed the host"
    );

    let done = s.call("sync", args(false));
    assert_eq!(done["created"], 2, "{done}");
    assert_eq!(
        fs::read_to_string(s.remote("site/css/a.css")).expect("synced file"),
        "a{}\n"
    );

    let again = s.call("sync", args(false));
    assert_eq!(again["total_changes"], 0, "{again}");
    assert_eq!(again["unchanged"], 2, "{again}");

    // A file gone from the source goes from the destination too.
    fs::remove_file(s.local("site/css/a.css")).expect("remove a local file");
    let pruned = s.call("sync", args(false));
    assert_eq!(pruned["deleted"], 1, "{pruned}");
    assert!(!Path::new(&s.remote("site/css/a.css")).exists());
}

#[test]
fn a_download_dry_run_changes_nothing_locally() {
    let s = setup();
    s.call(
        "write_file",
        json!({ "path": s.remote("pages/index.html"), "content": "hi", "create_dirs": true }),
    );
    let plan = s.call(
        "sync",
        json!({
            "direction": "download", "local_dir": "pages", "remote_dir": s.remote("pages"),
            "dry_run": true,
        }),
    );
    assert_eq!(plan["created"], 1, "{plan}");
    assert_eq!(
        plan["changes"][0]["path"], ".",
        "the root comes first: {plan}"
    );
    assert_eq!(plan["changes"][1]["path"], "index.html", "{plan}");
    assert!(
        !s.local("pages").exists(),
        "a dry run made the local directory"
    );
}

#[test]
fn a_large_upload_sends_progress_notifications() {
    const SIZE: usize = 6 * 1024 * 1024;
    let s = setup();
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    fs::write(s.local("big.bin"), &data).expect("write the local file");

    let (result, progress) = s.mcp.call_tool_with_progress(
        "transfer",
        with_host(json!({
            "direction": "upload", "local_path": "big.bin", "remote_path": s.remote("big.bin"),
        })),
        json!("upload-1"),
    );
    let out = structured(&result, &s.daemon);
    assert_eq!(out["bytes"], SIZE, "{out}");
    assert!(
        !progress.is_empty(),
        "no notifications/progress for a {SIZE}-byte upload"
    );
    let mut last = -1.0;
    for params in &progress {
        assert_eq!(params["progressToken"], "upload-1", "{params}");
        let done = params["progress"].as_f64().expect("progress is a number");
        assert!(done > last, "progress must grow: {progress:?}");
        last = done;
        if let Some(total) = params["total"].as_f64() {
            assert!(done <= total, "{params}");
        }
    }
    assert_eq!(fs::read(s.remote("big.bin")).expect("uploaded"), data);
}

#[test]
fn a_cancelled_transfer_stops_and_leaves_nothing_behind() {
    /// Large enough that the upload is still running when the cancel
    /// arrives; sparse, so it costs no local disk.
    const SIZE: u64 = 2 * 1024 * 1024 * 1024;
    const WAIT: Duration = Duration::from_secs(30);
    let s = setup();
    fs::File::create(s.local("huge.bin"))
        .and_then(|file| file.set_len(SIZE))
        .expect("create a sparse local file");

    let call = json!({
        "jsonrpc": "2.0",
        "id": 7001,
        "method": "tools/call",
        "params": {
            "name": "transfer",
            "arguments": with_host(json!({
                "direction": "upload", "local_path": "huge.bin",
                "remote_path": s.remote("huge.bin"),
            })),
            "_meta": { "progressToken": "huge" },
        },
    });
    s.mcp.send_raw(&call.to_string());
    // Something appears on the host once the upload is under way.
    let scratch = s.remote.path();
    let has_files = || fs::read_dir(scratch).is_ok_and(|mut entries| entries.next().is_some());
    wait_for(has_files, WAIT, "the upload to start writing on the host");

    s.mcp.send_notification(
        "notifications/cancelled",
        json!({ "requestId": 7001, "reason": "the test cancelled it" }),
    );

    wait_for(
        || !has_files(),
        WAIT,
        "the cancelled upload's files to be gone from the host",
    );
    // The connection the cancelled call used still serves calls.
    let listing = s.call("list_dir", json!({ "path": s.remote("") }));
    assert_eq!(listing["entries"], json!([]), "{listing}");
}

#[test]
fn tools_list_marks_read_only_and_destructive_file_tools() {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let mcp = McpClient::start(&dir.path().join("no-daemon.sock"));
    mcp.initialize();
    let tools = mcp.list_tools();
    let tool = |name: &str| -> Value {
        tools["tools"]
            .as_array()
            .expect("`tools` is an array")
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no tool `{name}` in {tools}"))
            .clone()
    };
    let contract: &[(&str, &[&str])] = &[
        ("stat", &["host", "path"]),
        ("list_dir", &["host", "path"]),
        ("read_file", &["host", "path"]),
        ("write_file", &["host", "path", "content"]),
        ("mkdir", &["host", "path"]),
        ("remove", &["host", "path"]),
        ("rename", &["host", "from", "to"]),
        (
            "transfer",
            &["host", "direction", "local_path", "remote_path"],
        ),
        ("sync", &["host", "direction", "local_dir", "remote_dir"]),
    ];
    for (name, required) in contract {
        let tool = tool(name);
        let schema = &tool["inputSchema"];
        let listed = schema["required"]
            .as_array()
            .unwrap_or_else(|| panic!("{name} has no `required`: {tool}"));
        let mut listed: Vec<&str> = listed.iter().filter_map(Value::as_str).collect();
        listed.sort_unstable();
        let mut want = required.to_vec();
        want.sort_unstable();
        assert_eq!(listed, want, "{name}: {tool}");
        assert_eq!(tool["outputSchema"]["type"], "object", "{name}: {tool}");
        // Absent, a hint has its default in the MCP spec: open world.
        assert!(
            tool["annotations"].get("openWorldHint").is_none(),
            "{name}: {tool}"
        );
    }
    // A read-only tool says so; the other hints mean nothing for it.
    for name in ["stat", "list_dir", "read_file"] {
        let annotations = &tool(name)["annotations"];
        assert_eq!(
            annotations,
            &json!({ "readOnlyHint": true }),
            "{name}: {annotations}"
        );
    }
    // Absent, `readOnlyHint` is false; a tool that changes things always
    // says whether it is destructive.
    for name in ["write_file", "remove", "rename", "transfer", "sync"] {
        let annotations = &tool(name)["annotations"];
        assert!(
            annotations.get("readOnlyHint").is_none(),
            "{name}: {annotations}"
        );
        assert_eq!(
            annotations["destructiveHint"], true,
            "{name}: {annotations}"
        );
    }
    let mkdir = &tool("mkdir")["annotations"];
    assert_eq!(mkdir, &json!({ "destructiveHint": false }), "{mkdir}");
}

#[test]
fn a_missing_path_is_an_error_result_naming_it() {
    let s = setup();
    let missing = s.remote("no-such-file");
    for tool in ["stat", "read_file", "list_dir"] {
        let message = s.fail(tool, json!({ "path": missing }));
        assert!(message.starts_with("not_found"), "{tool}: {message}");
        assert!(message.contains(&missing), "{tool}: {message}");
    }
}

#[test]
fn an_unknown_host_is_an_error_result_naming_it() {
    let s = setup();
    let result = s.mcp.call_tool(
        "stat",
        json!({ "host": "nosuchhost", "path": "/etc/hostname" }),
    );
    let message = error_text(&result);
    assert!(message.contains("nosuchhost"), "{message}");
    assert!(message.contains("host1"), "{message}");
}

#[test]
fn bad_arguments_are_error_results_naming_them() {
    let s = setup();
    let message = s.fail(
        "read_file",
        json!({ "path": s.remote("x"), "encoding": "hex" }),
    );
    assert!(message.contains("hex"), "{message}");
    let message = s.fail(
        "write_file",
        json!({ "path": s.remote("x"), "content": "x", "encoding": "latin1" }),
    );
    assert!(message.contains("latin1"), "{message}");
    let message = s.fail(
        "write_file",
        json!({ "path": s.remote("x"), "content": "x", "mode": "rw-r--r--" }),
    );
    assert!(message.contains("`mode`"), "{message}");
    let message = s.fail("stat", json!({ "path": s.remote("x"), "recursive": true }));
    assert!(message.contains("recursive"), "{message}");
    let message = s.fail(
        "transfer",
        json!({ "direction": "sideways", "local_path": "a", "remote_path": "b" }),
    );
    assert!(message.contains("sideways"), "{message}");
}

#[test]
fn a_local_path_outside_the_daemons_roots_is_refused() {
    let s = setup();
    let message = s.fail(
        "transfer",
        json!({
            "direction": "download", "local_path": "/etc/sshmcp-test-never-written",
            "remote_path": s.remote("x"),
        }),
    );
    assert!(message.starts_with("policy_denied"), "{message}");
    assert!(!Path::new("/etc/sshmcp-test-never-written").exists());
}
