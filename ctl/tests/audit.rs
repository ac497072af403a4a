//! `sshmcpctl audit` end to end: a real daemon writes its audit log for
//! calls made through the real shim against real sshd; `verify` judges the
//! log and copies of it broken on purpose, `tail` shows it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sshmcp_testkit::{Daemon, Fleet, McpClient, bin_path, output_within};

/// How long one `sshmcpctl` run may take. Far above what any run needs; it
/// only turns a hang into a failure.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// `sshmcpctl --socket <daemon's> <args>`, with no socket or state
/// directory from the test's own environment.
fn sshmcpctl(daemon: &Daemon, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin_path("sshmcpctl"));
    cmd.env_remove("SSHMCP_SOCKET")
        .env_remove("STATE_DIRECTORY")
        .arg("--socket")
        .arg(daemon.socket())
        .args(args);
    cmd
}

fn run(daemon: &Daemon, args: &[&str]) -> Output {
    output_within(&mut sshmcpctl(daemon, args), RUN_TIMEOUT)
}

/// The stdout of a run that must succeed quietly.
fn ctl_ok(daemon: &Daemon, args: &[&str]) -> String {
    let output = run(daemon, args);
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "sshmcpctl {args:?} failed ({}): {}\ndaemon log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    String::from_utf8(output.stdout).expect("sshmcpctl prints UTF-8")
}

/// The stderr of a run that must exit 1 with nothing on stdout.
fn ctl_fails(daemon: &Daemon, args: &[&str]) -> String {
    let output = run(daemon, args);
    assert_eq!(
        output.status.code(),
        Some(1),
        "sshmcpctl {args:?} should exit 1; stdout: {}; stderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty(), "{output:?}");
    String::from_utf8(output.stderr).expect("sshmcpctl prints UTF-8")
}

fn state_dir(daemon: &Daemon) -> PathBuf {
    daemon.dir().join("state").join("sshmcp")
}

/// A daemon for one host and a shim talking to it.
fn start(config: &str) -> (Fleet, Daemon, McpClient) {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, config);
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    (fleet, daemon, mcp)
}

/// Run `echo <word>` on host1 through the shim.
fn echo(daemon: &Daemon, mcp: &McpClient, word: &str) {
    let result = mcp.call_tool(
        "exec",
        json!({ "host": "host1", "command": format!("echo {word}") }),
    );
    assert_eq!(result["isError"], false, "{result}\n{}", daemon.log());
}

/// The log and its head copied to a directory of the test's own, to be
/// broken there; `edit` changes the copy's lines.
struct Copy {
    dir: tempfile::TempDir,
    key: PathBuf,
}

impl Copy {
    fn of(daemon: &Daemon, edit: impl FnOnce(&mut Vec<String>)) -> Copy {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let state = state_dir(daemon);
        let text = std::fs::read_to_string(state.join("audit.jsonl")).expect("the audit log");
        std::fs::copy(state.join("audit.head"), dir.path().join("audit.head"))
            .expect("copy the head");
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        edit(&mut lines);
        let mut text = lines.join("\n");
        text.push('\n');
        std::fs::write(dir.path().join("audit.jsonl"), text).expect("write the copy");
        Copy {
            dir,
            key: state.join("audit.key"),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    /// `sshmcpctl audit verify` of the copy: its stderr, as it must fail.
    fn verify_fails(&self, daemon: &Daemon) -> String {
        ctl_fails(
            daemon,
            &[
                "audit",
                "verify",
                "--key",
                &self.key.display().to_string(),
                "--head",
                &self.dir.path().join("audit.head").display().to_string(),
                &self.log().display().to_string(),
            ],
        )
    }
}

/// A daemon whose log holds its start and five execs, `echo 1` to `echo 5`
/// (seq 2 to 6).
fn six_records() -> (Fleet, Daemon, McpClient) {
    let (fleet, daemon, mcp) = start("");
    for n in 1..=5 {
        echo(&daemon, &mcp, &n.to_string());
    }
    (fleet, daemon, mcp)
}

#[test]
fn verify_says_ok_with_a_summary_for_the_daemons_log() {
    let (_fleet, daemon, _mcp) = six_records();
    assert_eq!(
        ctl_ok(&daemon, &["audit", "verify"]),
        "ok: 6 records, seq 1–6, 1 file\n"
    );
    let json: Value =
        serde_json::from_str(&ctl_ok(&daemon, &["--json", "audit", "verify"])).expect("JSON");
    assert_eq!(
        json,
        json!({ "ok": true, "records": 6, "first_seq": 1, "last_seq": 6, "files": 1 })
    );
}

#[test]
fn verify_finds_the_log_in_the_state_directory_when_no_daemon_answers() {
    let (_fleet, daemon, _mcp) = six_records();
    let output = output_within(
        Command::new(bin_path("sshmcpctl"))
            .env_remove("SSHMCP_SOCKET")
            .env_remove("STATE_DIRECTORY")
            .env("XDG_STATE_HOME", daemon.dir().join("state"))
            .args(["--socket", "/nonexistent/sshmcpd.sock", "audit", "verify"]),
        RUN_TIMEOUT,
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "ok: 6 records, seq 1–6, 1 file\n"
    );
}

#[test]
fn verify_names_an_edited_line() {
    let (_fleet, daemon, _mcp) = six_records();
    let copy = Copy::of(&daemon, |lines| {
        lines[2] = lines[2].replace("echo 2", "echo 9");
    });
    let finding = copy.verify_fails(&daemon);
    let place = format!("edited at {}:3 (seq 3): ", copy.log().display());
    assert!(
        finding.starts_with(&format!("sshmcpctl: {place}")),
        "{finding}"
    );
}

#[test]
fn verify_names_a_deleted_middle_line() {
    let (_fleet, daemon, _mcp) = six_records();
    let copy = Copy::of(&daemon, |lines| {
        lines.remove(2);
    });
    let finding = copy.verify_fails(&daemon);
    assert_eq!(
        finding,
        format!(
            "sshmcpctl: deleted at {}:3 (seq 4): seq jumps from 2 to 4; record 3 is missing \
             before it\n",
            copy.log().display()
        )
    );
}

#[test]
fn verify_names_an_inserted_forged_line() {
    let (_fleet, daemon, _mcp) = six_records();
    let copy = Copy::of(&daemon, |lines| {
        let forged = lines[3].replace("echo 3", "rm -rf /srv");
        lines.insert(3, forged);
    });
    let finding = copy.verify_fails(&daemon);
    let place = format!("inserted at {}:4 (seq 4): ", copy.log().display());
    assert!(
        finding.starts_with(&format!("sshmcpctl: {place}")),
        "{finding}"
    );
}

#[test]
fn verify_names_a_cut_last_line_truncated() {
    let (_fleet, daemon, _mcp) = six_records();
    let copy = Copy::of(&daemon, |lines| {
        let last = lines.pop().expect("a last line");
        lines.push(last[..last.len() / 2].to_owned());
    });
    // The copy ends without its newline, as a cut file does.
    let text = std::fs::read_to_string(copy.log()).expect("the copy");
    std::fs::write(copy.log(), text.trim_end_matches('\n')).expect("cut the copy");
    let finding = copy.verify_fails(&daemon);
    assert_eq!(
        finding,
        format!(
            "sshmcpctl: truncated at {}:6: the last line is cut short: it is not a whole record\n",
            copy.log().display()
        )
    );
}

#[test]
fn verify_names_a_deleted_last_line_truncated_by_the_head() {
    let (_fleet, daemon, _mcp) = six_records();
    let copy = Copy::of(&daemon, |lines| {
        lines.pop();
    });
    let finding = copy.verify_fails(&daemon);
    assert_eq!(
        finding,
        format!(
            "sshmcpctl: truncated at {}:5 (seq 5): the log ends at seq 5 but audit.head says the \
             newest record is seq 6; record 6 is missing from its end\n",
            copy.log().display()
        )
    );
}

#[test]
fn rotated_files_verify_together_and_a_break_in_a_middle_one_is_named() {
    let (_fleet, daemon, mcp) = start("[audit]\nmax_bytes = \"4K\"\n");
    for n in 0..30 {
        echo(&daemon, &mcp, &format!("rotation-{n}"));
    }
    let log = state_dir(&daemon).join("audit.jsonl");
    let files = sshmcp_files(&log);
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        assert!(std::fs::metadata(file).expect("a log file").len() <= 4096);
    }
    assert_eq!(
        ctl_ok(&daemon, &["audit", "verify"]),
        format!("ok: 31 records, seq 1–31, {} files\n", files.len())
    );

    let copies = tempfile::tempdir().expect("a temporary directory");
    let copied: Vec<PathBuf> = files
        .iter()
        .map(|file| {
            let to = copies.path().join(file.file_name().expect("a file name"));
            std::fs::copy(file, &to).expect("copy a log file");
            to
        })
        .collect();
    let middle = &copied[1];
    let text = std::fs::read_to_string(middle).expect("the middle file");
    let line = text.lines().nth(1).expect("a second line");
    let edited = line.replacen("rotation-", "rotation-9", 1);
    std::fs::write(middle, text.replacen(line, &edited, 1)).expect("edit the copy");
    // Named in the order a shell's `audit.jsonl*` gives them.
    let mut args: Vec<String> = ["audit", "verify", "--key"]
        .map(str::to_owned)
        .into_iter()
        .chain([state_dir(&daemon).join("audit.key").display().to_string()])
        .chain(["--no-head".to_string()])
        .collect();
    let mut names: Vec<String> = copied.iter().map(|p| p.display().to_string()).collect();
    names.sort();
    args.extend(names);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let finding = ctl_fails(&daemon, &args);
    assert!(
        finding.starts_with(&format!(
            "sshmcpctl: edited at {}:2 (seq ",
            middle.display()
        )),
        "{finding}"
    );
}

/// The log's files in log order, as the daemon names them.
fn sshmcp_files(log: &Path) -> Vec<PathBuf> {
    let dir = log.parent().expect("the log's directory");
    let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list the state directory")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit.jsonl."))
        })
        .collect();
    rotated.sort();
    rotated.push(log.to_owned());
    rotated
}

#[test]
fn tail_shows_the_newest_records_as_lines_or_as_written() {
    let (_fleet, daemon, mcp) = start("");
    for word in ["first", "second", "third"] {
        echo(&daemon, &mcp, word);
    }
    let text = ctl_ok(&daemon, &["audit", "tail", "-n", "2"]);
    let shown: Vec<&str> = text.lines().collect();
    assert_eq!(shown.len(), 2, "{text}");
    assert!(
        shown[0].contains("exec host1  \"echo second\"  allow  ok (exit 0, 7 B)"),
        "{text}"
    );
    assert!(shown[1].contains("\"echo third\""), "{text}");

    let raw = ctl_ok(&daemon, &["--json", "audit", "tail", "-n", "2"]);
    let log = std::fs::read_to_string(state_dir(&daemon).join("audit.jsonl")).expect("the log");
    let newest: Vec<&str> = log.lines().rev().take(2).collect();
    assert_eq!(raw, format!("{}\n{}\n", newest[1], newest[0]));
}

#[test]
fn records_name_the_mcp_client_and_its_version() {
    let (_fleet, daemon, mcp) = start("");
    echo(&daemon, &mcp, "hello");
    let raw = ctl_ok(&daemon, &["--json", "audit", "tail", "-n", "1"]);
    let record: Value = serde_json::from_str(&raw).expect("a JSON record");
    let caller = &record["caller"];
    assert_eq!(caller["binary"], "sshmcp", "{record}");
    assert_eq!(caller["mcp_client"], "sshmcp-tests", "{record}");
    assert_eq!(
        caller["mcp_client_version"],
        env!("CARGO_PKG_VERSION"),
        "{record}"
    );
    assert!(
        caller["exe"]
            .as_str()
            .is_some_and(|exe| exe.ends_with("/sshmcp")),
        "{record}"
    );
}

#[test]
fn tail_follows_new_records_across_a_rotation() {
    let (_fleet, daemon, mcp) = start("[audit]\nmax_bytes = \"4K\"\n");
    let mut tail = sshmcpctl(&daemon, &["audit", "tail", "-f", "-n", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sshmcpctl audit tail -f");
    let stdout = tail.stdout.take().expect("a piped stdout");
    let (lines, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // The follower has opened the log once a record written now shows.
    let deadline = Instant::now() + RUN_TIMEOUT;
    let mut shown = Vec::new();
    while !shown
        .iter()
        .any(|l: &String| l.contains("\"echo follow-0\""))
    {
        echo(&daemon, &mcp, "follow-0");
        if let Ok(line) = seen.recv_timeout(Duration::from_millis(500)) {
            shown.push(line);
        }
        assert!(Instant::now() < deadline, "tail -f showed nothing");
    }
    for i in 1..30 {
        echo(&daemon, &mcp, &format!("follow-{i}"));
    }
    while !shown.iter().any(|l| l.contains("\"echo follow-29\"")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(line) => shown.push(line),
            Err(_) => panic!("tail -f stopped before follow-29:\n{}", shown.join("\n")),
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    let rotated = sshmcp_files(&state_dir(&daemon).join("audit.jsonl")).len() - 1;
    assert!(rotated >= 2, "the log rotated while followed");
    for i in 1..30 {
        let word = format!("\"echo follow-{i}\"");
        assert_eq!(
            shown.iter().filter(|l| l.contains(&word)).count(),
            1,
            "{word} shown once:\n{}",
            shown.join("\n")
        );
    }
}

#[test]
fn status_shows_the_audit_log() {
    let (_fleet, daemon, _mcp) = start("");
    let status = ctl_ok(&daemon, &["status"]);
    let line = status
        .lines()
        .find(|l| l.starts_with("audit "))
        .unwrap_or_else(|| panic!("no audit line in:\n{status}"));
    let log = state_dir(&daemon).join("audit.jsonl");
    assert!(
        line.contains(&format!("ok, 1 record written to {}", log.display())),
        "{line}"
    );
}

#[test]
fn status_says_the_audit_log_is_failing_and_why() {
    let (_fleet, daemon, _mcp) = start("[audit]\npath = \"/dev/full\"\n");
    let status = ctl_ok(&daemon, &["status"]);
    assert!(
        status.contains(
            "audit        failing: cannot write the audit log /dev/full: No space left on device"
        ),
        "{status}"
    );
}
