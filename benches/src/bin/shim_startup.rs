//! Shim start-up: how soon a freshly spawned `sshmcp` answers `initialize`,
//! how much memory it holds then, and how large its binary is. MCP clients
//! start one shim per session, so these are felt at every start.
//!
//! Run with `cargo run --release -p sshmcp-benches --bin shim_startup [PATH]`;
//! PATH defaults to `target/dist/sshmcp` (built by
//! `cargo build --profile dist -p sshmcp`), else `target/release/sshmcp`.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use sshmcp_benches::Samples;

const RUNS: usize = 200;

fn main() {
    let binary = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .or_else(|| {
            ["target/dist/sshmcp", "target/release/sshmcp"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
        })
        .expect("no shim binary: build it with `cargo build --profile dist -p sshmcp`");
    let size = std::fs::metadata(&binary).expect("shim binary").len();
    let initialize = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}}"#;

    let mut latency = Samples::default();
    let mut rss_kib = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        let mut child = Command::new(&binary)
            .arg("--socket")
            .arg("/nonexistent/sshmcpd.sock")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the shim");
        let mut stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        writeln!(stdin, "{initialize}").expect("write initialize");
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the reply");
        latency.push(start.elapsed());
        assert!(line.contains("\"serverInfo\""), "unexpected reply: {line}");
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        if let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
        {
            rss_kib.push(kib);
        }
        drop(stdin);
        let _ = child.wait();
    }
    rss_kib.sort_unstable();
    let median_rss = rss_kib.get(rss_kib.len() / 2).copied().unwrap_or(0);
    println!("shim {}", binary.display());
    println!(
        "binary size: {:.2} MiB (budget < 3 MiB)",
        size as f64 / (1024.0 * 1024.0)
    );
    println!(
        "spawn -> initialize answered: p50 {:.2} ms, p95 {:.2} ms over {RUNS} runs (budget < 5 ms)",
        latency.p50().as_secs_f64() * 1e3,
        latency.p95().as_secs_f64() * 1e3
    );
    println!(
        "RSS after initialize: median {:.2} MiB (budget < 4 MiB)",
        median_rss as f64 / 1024.0
    );
}
