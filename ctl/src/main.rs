//! `sshmcpctl`: the admin tool for `sshmcpd`.
//!
//! One run is one request: connect to the daemon's socket, send the request
//! the subcommand names, print the reply as text or (`--json`) as the proto
//! type in JSON. Exit 0 on success; when the request fails print
//! `sshmcpctl: <why>` to stderr, leave stdout empty and exit 1. Usage
//! errors exit 2, as with every clap program.

mod audit;
mod cli;
mod human;
mod render;
mod table;
mod top;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use sshmcp_proto::client::{ClientError, DaemonClient};
use sshmcp_proto::{ClientInfo, DEFAULT_MAX_FRAME, Request, Response};

use crate::cli::{CacheAction, Cli, Command};

/// How long `audit` waits for a daemon to say where its log is.
const AUDIT_ASK: Duration = Duration::from_secs(3);

/// Why a run failed; printed as `sshmcpctl: <this>`.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Not running, refused, disconnected: the client's message says which
    /// and what to do.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The daemon answered with a typed error.
    #[error("{}: {}", .0.kind.as_str(), .0.message)]
    Daemon(sshmcp_proto::Error),
    #[error(
        "sshmcpd did not answer `{op}` within {secs}s; it may be stuck or overloaded \
         (its log says more), or retry with a longer --timeout"
    )]
    Timeout { op: &'static str, secs: u64 },
    #[error(
        "sshmcpd answered `{op}` with an unexpected {got} reply; \
         are sshmcpctl and sshmcpd the same version?"
    )]
    UnexpectedReply { op: &'static str, got: &'static str },
    #[error("cannot write the reply as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot write to stdout: {0}")]
    Stdout(std::io::Error),
    /// `audit verify` found the log broken, or an audit file could not be
    /// read.
    #[error(transparent)]
    Audit(#[from] audit::AuditError),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("sshmcpctl: {failure}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Result<(), Failure> {
    let sockets = match &cli.socket {
        Some(socket) => vec![socket.clone()],
        None => sshmcp_proto::client_socket_candidates(),
    };
    // One request at a time: a single thread is all ctl needs.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Runtime)?;
    let timeout = Duration::from_secs(cli.timeout);
    if let Command::Top { interval, count } = cli.command {
        return runtime.block_on(top(&sockets, interval, count, timeout, cli.json));
    }
    if let Command::Audit { action } = &cli.command {
        // A daemon that answers says where its log is; without one, the
        // default place is read. Either way the log is read from disk.
        let status = runtime.block_on(ask(&sockets, Request::Status, timeout.min(AUDIT_ASK)));
        let daemon = match status {
            Ok(Response::Status(status)) => Some(*status.audit),
            _ => None,
        };
        return Ok(audit::run(action, daemon.as_ref(), cli.json)?);
    }
    let response = runtime.block_on(ask(&sockets, cli.command.request(), timeout))?;
    let output = reply_text(&cli.command, response, cli.json)?;

    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(output.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // `sshmcpctl hosts | head -1` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(Failure::Stdout),
    }
}

/// Connect, send `request`, and wait up to `timeout` for its reply.
async fn ask(
    sockets: &[PathBuf],
    request: Request,
    timeout: Duration,
) -> Result<Response, Failure> {
    let client = connect(sockets).await?;
    send(&client, request, timeout).await
}

/// Connect to the first of `sockets` where the daemon answers.
async fn connect(sockets: &[PathBuf]) -> Result<DaemonClient, Failure> {
    let me = ClientInfo {
        binary: "sshmcpctl".to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        mcp_client: None,
        mcp_client_version: None,
        // `warm` may connect: let a daemon without an agent use ours.
        ssh_auth_sock: std::env::var("SSH_AUTH_SOCK").ok(),
    };
    Ok(DaemonClient::connect_first(sockets, me, DEFAULT_MAX_FRAME).await?)
}

/// `sshmcpctl top`: one connection, a `Stats` request per redraw.
async fn top(
    sockets: &[PathBuf],
    interval: Duration,
    count: Option<u64>,
    timeout: Duration,
    json: bool,
) -> Result<(), Failure> {
    let client = connect(sockets).await?;
    let mut previous: Option<(sshmcp_proto::Stats, std::time::Instant)> = None;
    let mut drawn = 0u64;
    loop {
        let stats = match send(&client, Request::Stats, timeout).await? {
            Response::Stats(stats) => *stats,
            other => {
                return Err(Failure::UnexpectedReply {
                    op: "stats",
                    got: other.name(),
                });
            }
        };
        let now = std::time::Instant::now();
        let text = if json {
            to_json(&stats)?
        } else {
            let (before, seconds) = match &previous {
                Some((p, at)) => (Some(p), now.duration_since(*at).as_secs_f64()),
                None => (None, 0.0),
            };
            format!("{}{}", top::CLEAR, top::frame(before, &stats, seconds))
        };
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            result => result.map_err(Failure::Stdout)?,
        }
        drop(stdout);
        drawn += 1;
        if count.is_some_and(|n| drawn >= n) {
            return Ok(());
        }
        previous = Some((stats, now));
        tokio::time::sleep(interval).await;
    }
}

/// Send `request` on `client` and wait up to `timeout` for its reply.
async fn send(
    client: &DaemonClient,
    request: Request,
    timeout: Duration,
) -> Result<Response, Failure> {
    let op = request.op_name();
    let reply = tokio::time::timeout(timeout, client.request(request))
        .await
        .map_err(|_| Failure::Timeout {
            op,
            secs: timeout.as_secs(),
        })??;
    reply.map_err(Failure::Daemon)
}

/// The reply as the text or JSON to print, checked against what was asked.
fn reply_text(command: &Command, response: Response, json: bool) -> Result<String, Failure> {
    let text = match (command, response) {
        (Command::Status, Response::Status(status)) if json => to_json(&status)?,
        (Command::Status, Response::Status(status)) => render::status(&status),
        (Command::Stats, Response::Stats(stats)) if json => to_json(&stats)?,
        (Command::Stats, Response::Stats(stats)) => render::stats(&stats),
        (Command::Hosts, Response::Hosts(hosts)) if json => to_json(&hosts)?,
        (Command::Hosts, Response::Hosts(hosts)) => render::hosts(&hosts),
        (Command::Warm { .. } | Command::Drain { .. }, Response::Ok) if json => {
            "{\"ok\":true}\n".to_string()
        }
        (Command::Warm { .. } | Command::Drain { .. }, Response::Ok) => "ok\n".to_string(),
        (Command::Reload, Response::Reloaded(summary)) if json => {
            to_json(&serde_json::json!({ "reloaded": summary }))?
        }
        (Command::Reload, Response::Reloaded(summary)) => format!("reloaded: {summary}\n"),
        (Command::Cache { action: None }, Response::Cache(cache)) if json => to_json(&cache)?,
        (Command::Cache { action: None }, Response::Cache(cache)) => render::cache(&cache),
        (
            Command::Cache {
                action: Some(CacheAction::Clear { .. }),
            },
            Response::CacheCleared(dropped),
        ) if json => to_json(&serde_json::json!({ "dropped": dropped }))?,
        (
            Command::Cache {
                action: Some(CacheAction::Clear { host }),
            },
            Response::CacheCleared(dropped),
        ) => render::cache_cleared(dropped, host.as_deref()),
        (Command::Jobs { .. }, Response::Jobs(jobs)) if json => to_json(&jobs)?,
        (Command::Jobs { .. }, Response::Jobs(jobs)) => render::jobs(&jobs, terminal_width()),
        (Command::Shells { .. }, Response::Shells(shells)) if json => to_json(&shells)?,
        (Command::Shells { .. }, Response::Shells(shells)) => {
            render::shells(&shells, terminal_width())
        }
        (command, other) => {
            return Err(Failure::UnexpectedReply {
                op: command.request().op_name(),
                got: other.name(),
            });
        }
    };
    Ok(text)
}

/// How wide a line may be: `$COLUMNS` when the shell exports it, else
/// 100, so a table fits most terminals.
fn terminal_width() -> usize {
    std::env::var("COLUMNS")
        .ok()
        .and_then(|columns| columns.trim().parse().ok())
        .filter(|&columns: &usize| columns >= 40)
        .unwrap_or(100)
}

fn to_json<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, Failure> {
    Ok(serde_json::to_string(value)? + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::{ConnState, ErrorKind, HostList, HostState};

    #[test]
    fn a_daemon_error_prints_its_kind_then_its_message() {
        let failure = Failure::Daemon(sshmcp_proto::Error::new(
            ErrorKind::HostUnknown,
            "no host `web9` in ~/.ssh/config; add a Host block for it",
        ));
        assert_eq!(
            failure.to_string(),
            "host_unknown: no host `web9` in ~/.ssh/config; add a Host block for it"
        );
    }

    #[test]
    fn warm_and_drain_print_ok() {
        let warm = Command::Warm {
            host: "web1".into(),
        };
        assert_eq!(
            reply_text(&warm, Response::Ok, false).ok().as_deref(),
            Some("ok\n")
        );
        assert_eq!(
            reply_text(&warm, Response::Ok, true).ok().as_deref(),
            Some("{\"ok\":true}\n")
        );
    }

    #[test]
    fn json_is_the_proto_type_on_one_line() {
        let hosts = HostList {
            ssh_config: "/home/deploy/.ssh/config".into(),
            hosts: vec![HostState {
                access: "full".into(),
                alias: "web1".into(),
                hostname: "10.0.0.5".into(),
                port: 22,
                user: "deploy".into(),
                state: ConnState::Connected,
                connections: 1,
                channels_busy: 0,
                channels_idle: 10,
                last_error: None,
            }],
        };
        assert_eq!(
            reply_text(&Command::Hosts, Response::Hosts(hosts), true)
                .ok()
                .as_deref(),
            Some(
                "{\"ssh_config\":\"/home/deploy/.ssh/config\",\"hosts\":[{\"alias\":\"web1\",\"hostname\":\"10.0.0.5\",\"port\":22,\"user\":\"deploy\",\
                 \"state\":\"connected\",\"connections\":1,\"channels_busy\":0,\
                 \"channels_idle\":10,\"last_error\":null,\"access\":\"full\"}]}\n"
            )
        );
    }

    fn cache_clear(host: Option<&str>) -> Command {
        Command::Cache {
            action: Some(CacheAction::Clear {
                host: host.map(str::to_string),
            }),
        }
    }

    #[test]
    fn cache_prints_the_counters_or_the_proto_type() {
        let show = Command::Cache { action: None };
        let stats = sshmcp_proto::CacheStats {
            enabled: true,
            entries: 2,
            hits: 3,
            misses: 1,
            ..Default::default()
        };
        let text = reply_text(&show, Response::Cache(stats.clone()), false).expect("text");
        assert!(text.starts_with("enabled        yes\n"), "{text}");
        assert!(text.contains("\nhit rate       75.0%\n"), "{text}");
        let json = reply_text(&show, Response::Cache(stats), true).expect("json");
        assert!(json.ends_with("}\n") && json.lines().count() == 1, "{json}");
        assert!(
            json.starts_with("{\"enabled\":true,\"entries\":2,\"bytes\":0,"),
            "{json}"
        );
    }

    #[test]
    fn cache_clear_prints_what_it_dropped() {
        assert_eq!(
            reply_text(&cache_clear(None), Response::CacheCleared(7), false)
                .ok()
                .as_deref(),
            Some("dropped 7 cached answers\n")
        );
        assert_eq!(
            reply_text(&cache_clear(Some("web1")), Response::CacheCleared(1), false)
                .ok()
                .as_deref(),
            Some("dropped 1 cached answer of web1\n")
        );
        assert_eq!(
            reply_text(&cache_clear(Some("web1")), Response::CacheCleared(7), true)
                .ok()
                .as_deref(),
            Some("{\"dropped\":7}\n")
        );
    }

    #[test]
    fn a_cache_reply_of_the_wrong_kind_is_an_error() {
        let cleared = reply_text(
            &Command::Cache { action: None },
            Response::CacheCleared(1),
            true,
        );
        assert!(matches!(
            cleared,
            Err(Failure::UnexpectedReply {
                op: "cache",
                got: "CacheCleared"
            })
        ));
        let counters = reply_text(
            &cache_clear(None),
            Response::Cache(Default::default()),
            false,
        );
        assert!(matches!(
            counters,
            Err(Failure::UnexpectedReply {
                op: "cache_clear",
                got: "Cache"
            })
        ));
    }

    #[test]
    fn jobs_print_a_table_or_the_proto_type() {
        let jobs = vec![sshmcp_proto::JobInfo {
            detached: false,
            job_id: "j1".into(),
            host: "web1".into(),
            kind: sshmcp_proto::JobKind::Command,
            command: "sleep 100".into(),
            state: sshmcp_proto::JobState::Running,
            started: 1_700_000_000,
            runtime_ms: 65_000,
            bytes: 2048,
            exit_code: None,
        }];
        let command = Command::Jobs { host: None };
        let text = reply_text(&command, Response::Jobs(jobs.clone()), false).expect("text");
        assert!(text.starts_with("ID  HOST  STATE"), "{text}");
        assert!(text.contains("sleep 100"), "{text}");
        assert_eq!(
            reply_text(&command, Response::Jobs(jobs), true)
                .ok()
                .as_deref(),
            Some(
                "[{\"job_id\":\"j1\",\"host\":\"web1\",\"kind\":\"command\",\
                 \"command\":\"sleep 100\",\
                 \"state\":\"running\",\"started\":1700000000,\"runtime_ms\":65000,\
                 \"bytes\":2048,\"exit_code\":null,\"detached\":false}]\n"
            )
        );
        assert_eq!(
            reply_text(&command, Response::Jobs(vec![]), false)
                .ok()
                .as_deref(),
            Some("no jobs\n")
        );
        assert_eq!(
            reply_text(&command, Response::Jobs(vec![]), true)
                .ok()
                .as_deref(),
            Some("[]\n")
        );
    }

    #[test]
    fn a_reply_of_the_wrong_kind_is_an_error() {
        let failure = reply_text(&Command::Status, Response::Ok, false);
        assert!(matches!(
            failure,
            Err(Failure::UnexpectedReply {
                op: "status",
                got: "Ok"
            })
        ));
    }
}
