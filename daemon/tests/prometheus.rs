//! The Prometheus endpoint (`[metrics] listen`): what a scrape exports,
//! checked by `promtool`; the packaged alert rules and their unit tests;
//! that the rules and the Grafana dashboard only use exported series; that
//! hostile clients cannot keep a scrape from succeeding; and that a
//! `listen` other machines could reach is refused unless allowed.
//!
//! `promtool` comes from Debian's `prometheus` package, which
//! `scripts/test` installs; without it these tests fail rather than skip.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{connect, exec, exec_err, exec_ok, exec_request, request, within};
use sshmcp_proto::{ErrorKind, ReadFileRequest, Request, Response, StatRequest};
use sshmcp_testkit::{Daemon, Fleet, bin_path, free_port, output_within, test_user};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one HTTP exchange with the endpoint may take.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// `promtool`, or a failure that says how to get it.
fn promtool() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("promtool"))
        .find(|path| path.is_file())
        .unwrap_or_else(|| {
            panic!(
                "promtool is not installed: install Debian's `prometheus` package \
                 (`apt-get install prometheus`; scripts/test installs it)"
            )
        })
}

/// Runs `promtool args...` (with `stdin` as its input, if given) and
/// fails the test, showing its output, unless it exits 0.
fn promtool_ok(args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new(promtool());
    cmd.args(args)
        .current_dir(repo_file("packaging/prometheus"));
    let output = match stdin {
        // output_within gives the child no stdin; promtool's run is short.
        Some(file) => cmd
            .stdin(std::fs::File::open(file).expect("open promtool's input"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run promtool"),
        None => output_within(&mut cmd, Duration::from_secs(60)),
    };
    assert!(
        output.status.success(),
        "promtool {args:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// One HTTP exchange: sends `request` as is and returns everything the
/// endpoint answers until it closes the connection.
async fn http(addr: SocketAddr, request: &[u8]) -> String {
    within(HTTP_TIMEOUT, "an answer from /metrics", async {
        let mut stream = TcpStream::connect(addr).await.expect("connect to /metrics");
        stream.write_all(request).await.expect("send the request");
        let mut answer = Vec::new();
        stream
            .read_to_end(&mut answer)
            .await
            .expect("read the answer");
        String::from_utf8(answer).expect("a UTF-8 answer")
    })
    .await
}

/// `GET /metrics`, which must succeed; returns the body.
async fn scrape(addr: SocketAddr) -> String {
    let answer = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {answer:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nConnection: close"), "{head}");
    body.to_string()
}

/// The status line of the answer to `request`.
async fn status_of(addr: SocketAddr, request: &[u8]) -> String {
    let answer = http(addr, request).await;
    answer.lines().next().unwrap_or_default().to_string()
}

/// Every series name a scrape exports (`_bucket`, `_sum` and `_count` of
/// histograms included), and each histogram's own name.
fn exported_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| match line.strip_prefix("# TYPE ") {
            Some(typed) => typed.split(' ').next(),
            None if line.starts_with('#') || line.is_empty() => None,
            None => line.split(['{', ' ']).next(),
        })
        .map(str::to_string)
        .collect()
}

/// Every `sshmcp_...` identifier in `text`.
fn metric_names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("sshmcp_") {
        let preceded = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        if !preceded {
            names.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    names
}

/// The PromQL of every query in a Grafana dashboard (`expr`, and the
/// template variables' `query`).
fn dashboard_queries(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", serde_json::Value::String(q)) => {
                        out.push(q.clone());
                    }
                    _ => dashboard_queries(value, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| dashboard_queries(v, out)),
        _ => {}
    }
}

fn assert_all_exported(what: &str, used: &BTreeSet<String>, exported: &BTreeSet<String>) {
    let missing: Vec<_> = used.difference(exported).collect();
    assert!(
        missing.is_empty(),
        "{what} uses series the daemon does not export: {missing:?}\nexported: {exported:?}"
    );
    assert!(!used.is_empty(), "{what} uses no sshmcp_ series at all");
}

fn stat(path: &str) -> Request {
    Request::Stat(StatRequest {
        host: "host1".into(),
        path: path.into(),
        follow_symlinks: false,
        max_age_secs: None,
    })
}

/// A daemon with `/metrics` on, serving `host1` and `dead` (a port nothing
/// listens on), and the endpoint's address.
fn start(fleet: &Fleet, extra_toml: &str) -> (Daemon, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port([127, 0, 0, 1].into())));
    let config = format!("[metrics]\nlisten = \"{addr}\"\n\n{extra_toml}");
    (Daemon::start(fleet, &config), addr)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scrape_exports_requests_errors_pool_memory_and_cache_as_promtool_wants() {
    let fleet = Fleet::start(1);
    let dead_port = free_port([127, 0, 0, 1].into());
    fleet.append_ssh_config(&format!(
        "Host dead\n    HostName 127.0.0.1\n    Port {dead_port}\n    User {}\n",
        test_user().name()
    ));
    // A tight per-client rate, so that a burst is limited.
    let (daemon, addr) = start(&fleet, "[limits]\nclient_rps = 2\nclient_burst = 40\n");
    let client = connect(daemon.socket()).await;

    let out = exec_ok(&daemon, &client, exec_request("host1", "echo hi")).await;
    assert_eq!(out.stdout, b"hi\n");
    let missing = "/nonexistent/sshmcp-prometheus-test";
    let err = request(&client, stat(missing)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    // The same file twice: the second read may come from the cache.
    for _ in 0..2 {
        let read = Request::ReadFile(ReadFileRequest {
            host: "host1".into(),
            path: "/etc/hostname".into(),
            offset: 0,
            length: None,
            max_age_secs: None,
        });
        request(&client, read).await.expect("read /etc/hostname");
    }
    // Connects to `dead` fail until its breaker opens.
    for _ in 0..4 {
        let err = exec_err(&client, exec_request("dead", "true")).await;
        assert_eq!(err.kind, ErrorKind::Unreachable, "{err:?}");
    }
    // A burst from another client runs into its rate limit.
    let burst = connect(daemon.socket()).await;
    let mut limited = 0;
    for _ in 0..60 {
        if exec(&burst, exec_request("host1", "true")).await.is_err() {
            limited += 1;
        }
    }
    assert!(limited > 0, "60 requests at once were never rate limited");
    // More than 5% failed on a host's or the daemon's account.
    let why = match request(&client, Request::Status).await {
        Ok(Response::Status(status)) => status.degraded.expect("degraded"),
        other => panic!("Status failed: {other:?}"),
    };
    assert!(why.contains("error rate"), "{why}");
    assert!(why.contains("circuit open for dead"), "{why}");

    let text = scrape(addr).await;
    for series in [
        "# HELP sshmcp_requests_total ",
        "# TYPE sshmcp_requests_total counter",
        "sshmcp_requests_total{op=\"exec\",host=\"host1\"} ",
        "# TYPE sshmcp_request_duration_seconds histogram",
        "sshmcp_request_duration_seconds_bucket{op=\"exec\",host=\"host1\",le=\"0.00005\"} ",
        "sshmcp_request_duration_seconds_bucket{op=\"exec\",host=\"host1\",le=\"60\"} ",
        "sshmcp_request_duration_seconds_bucket{op=\"exec\",host=\"host1\",le=\"+Inf\"} ",
        "sshmcp_request_duration_seconds_count{op=\"stat\",host=\"host1\"} ",
        "sshmcp_request_errors_total{op=\"stat\",host=\"host1\",kind=\"not_found\"} 1\n",
        "sshmcp_request_errors_total{op=\"exec\",host=\"dead\",kind=\"unreachable\"} 4\n",
        "sshmcp_rate_limited_total{scope=\"client\"} ",
        "sshmcp_pool_connects_total{host=\"host1\"} ",
        "sshmcp_pool_connect_failures_total{host=\"dead\"} ",
        "sshmcp_pool_connections{host=\"host1\"} ",
        "sshmcp_pool_channels_busy{host=\"host1\"} ",
        "sshmcp_pool_channels_idle{host=\"host1\"} ",
        "sshmcp_pool_utilization{host=\"host1\"} ",
        "sshmcp_pool_breaker_open{host=\"host1\"} 0\n",
        "sshmcp_pool_breaker_open{host=\"dead\"} 1\n",
        "sshmcp_memory_rss_bytes ",
        "sshmcp_memory_limit_bytes ",
        "sshmcp_memory_reserved_bytes ",
        "sshmcp_memory_refusals_total 0\n",
        "sshmcp_open_fds ",
        "sshmcp_max_fds ",
        "sshmcp_threads ",
        "sshmcp_clients ",
        "sshmcp_shells_open 0\n",
        "sshmcp_up 1\n",
        "sshmcp_cache_entries ",
        "sshmcp_cache_bytes ",
        "sshmcp_cache_max_bytes ",
        "sshmcp_cache_hits_total ",
        "sshmcp_cache_misses_total ",
        "sshmcp_cache_evictions_total ",
    ] {
        assert!(
            text.contains(series),
            "no `{series}` in the scrape:\n{text}"
        );
    }
    assert!(
        !text.contains("sshmcp_op_duration_us"),
        "the registry's microsecond histogram is not exported:\n{text}"
    );
    assert!(
        !text.contains("quantile="),
        "histograms are exported as histograms, not summaries:\n{text}"
    );

    let dir = tempfile::tempdir().expect("a temporary directory");
    let scraped = dir.path().join("metrics.txt");
    std::fs::write(&scraped, &text).expect("write the scrape");
    promtool_ok(&["check", "metrics"], Some(&scraped));

    // The rules and the dashboard use only series a scrape has.
    let exported = exported_names(&text);
    for rules in ["sshmcp-rules.yml", "sshmcp-rules.test.yml"] {
        let path = repo_file(&format!("packaging/prometheus/{rules}"));
        let yaml = std::fs::read_to_string(&path).expect("read the rules");
        assert_all_exported(rules, &metric_names_in(&yaml), &exported);
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_file("packaging/grafana/sshmcp.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let mut queries = Vec::new();
    dashboard_queries(&dashboard, &mut queries);
    let used: BTreeSet<String> = queries.iter().flat_map(|q| metric_names_in(q)).collect();
    assert_all_exported("the Grafana dashboard", &used, &exported);
    assert!(
        queries
            .iter()
            .any(|q| q.contains("histogram_quantile(0.99") && q.contains("by (op, le)")),
        "the dashboard shows p99 latency per op"
    );

    // Only GET and HEAD of /metrics.
    let head = http(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
    assert_eq!(
        status_of(addr, b"GET / HTTP/1.1\r\n\r\n").await,
        "HTTP/1.1 404 Not Found"
    );
    assert_eq!(
        status_of(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await,
        "HTTP/1.1 405 Method Not Allowed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    let checked = promtool_ok(&["check", "rules", "sshmcp-rules.yml"], None);
    let said = String::from_utf8_lossy(&checked.stdout);
    assert!(said.contains("SUCCESS: 6 rules found"), "{said}");
    promtool_ok(&["test", "rules", "sshmcp-rules.test.yml"], None);
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_clients_do_not_keep_a_scrape_from_succeeding() {
    let fleet = Fleet::start(1);
    let (daemon, addr) = start(&fleet, "");

    // 50 connections that say nothing.
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(TcpStream::connect(addr).await.expect("connect"));
    }
    // Garbage, and a head that never ends.
    assert_eq!(
        status_of(addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n").await,
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        status_of(addr, &[b'x'; 9000]).await,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    let endless = tokio::spawn(async move {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nX-Endless: ")
            .await
            .expect("send the request line");
        let filler = [b'a'; 4096];
        // Until the endpoint gives up on us and the writes fail.
        for _ in 0..100_000 {
            if stream.write_all(&filler).await.is_err() {
                return;
            }
        }
        panic!("the endpoint read 400 MiB of one request head");
    });
    within(HTTP_TIMEOUT, "the endless head to be cut off", endless)
        .await
        .expect("the endless client");

    let text = scrape(addr).await;
    assert!(text.contains("sshmcp_up 1\n"), "{text}");

    // Silent clients are answered 408 and let go after 5 s.
    for mut silent in idle {
        let mut answer = String::new();
        within(
            HTTP_TIMEOUT,
            "a silent client to be let go",
            silent.read_to_string(&mut answer),
        )
        .await
        .expect("read the answer");
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer:?}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Past the endpoint's 64 connections, 503 at once rather than a
    // queue; a scrape works again once the crowd leaves.
    let mut crowd = Vec::new();
    for _ in 0..70 {
        crowd.push(TcpStream::connect(addr).await.expect("connect"));
    }
    assert_eq!(
        status_of(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await,
        "HTTP/1.1 503 Service Unavailable"
    );
    drop(crowd);
    let deadline = tokio::time::Instant::now() + HTTP_TIMEOUT;
    loop {
        let status = status_of(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still `{status}` after the crowd left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(daemon.is_running(), "the daemon died:\n{}", daemon.log());
}

/// Runs `sshmcpd` with `metrics` as its `[metrics]` table; it must exit
/// with an error, whose text is returned.
fn refused_start(metrics: &str) -> String {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ssh_config = dir.path().join("ssh_config");
    std::fs::write(&ssh_config, "").expect("write an ssh config");
    let config = dir.path().join("config.toml");
    let text = format!(
        "[daemon]\nsocket = \"{}\"\n\n[ssh]\nconfig = \"{}\"\n\n[metrics]\n{metrics}\n",
        dir.path().join("sshmcpd.sock").display(),
        ssh_config.display()
    );
    std::fs::write(&config, text).expect("write the config");
    let output = output_within(
        Command::new(bin_path("sshmcpd"))
            .arg("--config")
            .arg(&config),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "sshmcpd started:\n{stderr}");
    stderr
}

#[test]
fn a_listen_address_others_can_reach_is_refused_unless_allowed() {
    let err = refused_start("listen = \"0.0.0.0:9464\"\n");
    assert!(
        err.contains("metrics.listen = \"0.0.0.0:9464\"") && err.contains("allow_remote = true"),
        "{err}"
    );
    let err = refused_start("listen = \"localhost\"\n");
    assert!(err.contains("not an IP address and port"), "{err}");

    // An address already taken is a start-up error naming the key.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a port");
    let addr = taken.local_addr().expect("its address");
    let err = refused_start(&format!("listen = \"{addr}\"\n"));
    assert!(
        err.contains(&format!("[metrics] listen = \"{addr}\"")),
        "{err}"
    );
}
