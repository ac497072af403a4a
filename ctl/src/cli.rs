//! Command-line arguments. A subcommand that sends a [`Request`] shows that
//! request's doc as its help: the text lives once, in proto's
//! [`help!`](sshmcp_proto::help!). `top` and `audit` have their own.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sshmcp_proto::{Request, help};

/// Admin tool for sshmcpd, the sshmcp daemon: status, stats, hosts, warm,
/// drain, reload, the response cache, jobs, shells, a live view (top) and
/// the audit log.
///
/// Exits 0 on success, 1 when the request fails (the reason on stderr), 2 on
/// usage errors.
#[derive(Debug, Parser)]
#[command(name = "sshmcpctl", version)]
pub struct Cli {
    /// The daemon's socket [default: $SSHMCP_SOCKET, else the first that
    /// answers of $XDG_RUNTIME_DIR/sshmcp/sshmcpd.sock,
    /// /run/user/$UID/sshmcp/sshmcpd.sock and /run/sshmcp/sshmcpd.sock]
    #[arg(long, global = true, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the reply as one line of JSON instead of text
    #[arg(long, global = true)]
    pub json: bool,

    /// Seconds to wait for the daemon's reply
    #[arg(
        long,
        global = true,
        value_name = "SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

/// One subcommand, one request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    #[command(about = summary(help!(status)), long_about = details(help!(status)))]
    Status,
    #[command(about = summary(help!(stats)), long_about = details(help!(stats)))]
    Stats,
    #[command(about = summary(help!(hosts)), long_about = details(help!(hosts)))]
    Hosts,
    #[command(about = summary(help!(warm)), long_about = details(help!(warm)))]
    Warm {
        #[arg(help = summary(help!(host)))]
        host: String,
    },
    #[command(about = summary(help!(drain)), long_about = details(help!(drain)))]
    Drain {
        #[arg(help = summary(help!(host)))]
        host: String,
    },
    #[command(about = summary(help!(reload)), long_about = details(help!(reload)))]
    Reload,
    // `cache` shows the counters, `cache clear` drops entries.
    #[command(about = summary(help!(cache)), long_about = details(help!(cache)))]
    Cache {
        #[command(subcommand)]
        action: Option<CacheAction>,
    },
    #[command(about = summary(help!(jobs)), long_about = details(help!(jobs)))]
    Jobs {
        /// Host alias from the SSH client config [default: every host]
        #[arg(value_name = "HOST")]
        host: Option<String>,
    },
    #[command(about = summary(help!(shells)), long_about = details(help!(shells)))]
    Shells {
        /// Host alias from the SSH client config [default: every host]
        #[arg(value_name = "HOST")]
        host: Option<String>,
    },
    /// Live view of the pool, request rates, latency and memory, redrawn
    /// every --interval seconds until interrupted (or --count redraws).
    Top {
        /// Seconds between redraws
        #[arg(long, value_name = "SECS", default_value = "2", value_parser = positive_seconds)]
        interval: std::time::Duration,
        /// Stop after this many redraws
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// The audit log: check that nobody rewrote it, or show its newest
    /// records.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
}

/// What `sshmcpctl audit` does. The log, its key and its head are where the
/// running daemon's `status` says, else in the daemon's default state
/// directory ($STATE_DIRECTORY, $XDG_STATE_HOME/sshmcp or
/// ~/.local/state/sshmcp).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum AuditAction {
    /// Check the audit log's hash chain and name the first bad record.
    ///
    /// Every line's MAC, the chain of `prev` HMACs across the rotated files
    /// in order, the seq numbers and the end against audit.head. Exits 0
    /// with a one-line summary when the log is intact; exits 1 naming the
    /// file, line and seq of the first record that was edited, deleted,
    /// inserted or truncated.
    Verify {
        /// Log files to check, in any order [default: the log and its rotated files]
        #[arg(value_name = "FILE")]
        files: Vec<PathBuf>,
        /// The key the log was sealed with [default: audit.key in the state directory]
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// The head naming the newest record [default: audit.head in the state directory]
        #[arg(long, value_name = "FILE", conflicts_with = "no_head")]
        head: Option<PathBuf>,
        /// Check the chain without the head (for older files on their own)
        #[arg(long)]
        no_head: bool,
    },
    /// Show the newest records, one line each (--json: as written).
    Tail {
        /// How many records
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
        lines: usize,
        /// Go on showing new records as they are written, across
        /// rotations, until interrupted
        #[arg(short = 'f', long)]
        follow: bool,
    },
}

/// What `sshmcpctl cache` does besides showing the counters.
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum CacheAction {
    #[command(about = summary(help!(cache_clear)), long_about = details(help!(cache_clear)))]
    Clear {
        /// Host alias from the SSH client config [default: every host]
        #[arg(value_name = "HOST")]
        host: Option<String>,
    },
}

/// A proto help text shown the way clap shows a doc comment: the first
/// paragraph, without its final period, in the command list and `-h`...
fn summary(text: &'static str) -> &'static str {
    let first = text.split_once("\n\n").map_or(text, |(first, _)| first);
    first.strip_suffix('.').unwrap_or(first)
}

/// ...and the whole text in `--help`, when there is more than the summary.
fn details(text: &'static str) -> Option<&'static str> {
    text.contains("\n\n").then_some(text)
}

fn positive_seconds(text: &str) -> Result<std::time::Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && (0.05..=86_400.0).contains(&secs) => {
            Ok(std::time::Duration::from_secs_f64(secs))
        }
        _ => Err(format!(
            "`{text}` is not a number of seconds from 0.05 to 86400"
        )),
    }
}

impl Command {
    /// The request this subcommand sends.
    pub fn request(&self) -> Request {
        match self {
            Command::Status => Request::Status,
            Command::Stats => Request::Stats,
            Command::Hosts => Request::Hosts,
            Command::Warm { host } => Request::Warm { host: host.clone() },
            Command::Drain { host } => Request::Drain { host: host.clone() },
            Command::Reload => Request::Reload,
            Command::Cache { action: None } => Request::Cache,
            Command::Cache {
                action: Some(CacheAction::Clear { host }),
            } => Request::CacheClear { host: host.clone() },
            Command::Jobs { host } => Request::Jobs { host: host.clone() },
            Command::Shells { host } => Request::Shells { host: host.clone() },
            Command::Top { .. } => Request::Stats,
            // Where the log is, when a daemon answers.
            Command::Audit { .. } => Request::Status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_may_follow_the_subcommand() {
        let cli = Cli::try_parse_from(["sshmcpctl", "warm", "web1", "--json", "--socket", "/s"])
            .expect("valid arguments");
        assert!(cli.json);
        assert_eq!(cli.socket, Some(PathBuf::from("/s")));
        assert_eq!(cli.timeout, 10);
        assert_eq!(
            cli.command.request(),
            Request::Warm {
                host: "web1".into()
            }
        );
    }

    #[test]
    fn a_request_subcommand_lists_its_proto_summary_and_shows_the_rest_in_long_help() {
        let mut cli = Cli::command();
        let list = cli.render_help().to_string();
        assert!(
            list.contains("reload  Re-read the config and the ssh config, as SIGHUP does\n"),
            "{list}"
        );
        let reload = cli
            .find_subcommand_mut("reload")
            .expect("a reload subcommand");
        let long = reload.render_long_help().to_string();
        assert!(
            long.contains("as SIGHUP does.\n\nUnchanged hosts stay warm"),
            "{long}"
        );
    }

    fn request(args: &[&str]) -> Request {
        Cli::try_parse_from([&["sshmcpctl"], args].concat())
            .expect("valid arguments")
            .command
            .request()
    }

    #[test]
    fn cache_and_cache_clear_send_their_requests() {
        assert_eq!(request(&["cache"]), Request::Cache);
        assert_eq!(request(&["cache", "--json"]), Request::Cache);
        assert_eq!(
            request(&["cache", "clear"]),
            Request::CacheClear { host: None }
        );
        assert_eq!(
            request(&["cache", "clear", "web1", "--json"]),
            Request::CacheClear {
                host: Some("web1".into())
            }
        );
        assert!(Cli::try_parse_from(["sshmcpctl", "cache", "web1"]).is_err());
        assert!(Cli::try_parse_from(["sshmcpctl", "cache", "clear", "a", "b"]).is_err());
    }

    #[test]
    fn cache_and_cache_clear_take_their_help_from_proto() {
        let mut cli = Cli::command();
        let list = cli.render_help().to_string();
        assert!(
            list.contains(&format!("cache   {}\n", summary(help!(cache)))),
            "{list}"
        );
        let cache = cli
            .find_subcommand_mut("cache")
            .expect("a cache subcommand");
        let list = cache.render_help().to_string();
        assert!(
            list.contains("clear  Drop cached answers: every host's, or one host's\n"),
            "{list}"
        );
        let clear = cache
            .find_subcommand_mut("clear")
            .expect("a cache clear subcommand");
        let long = clear.render_long_help().to_string();
        assert!(
            long.contains("one host's.\n\nThe next read of what was dropped goes to the host."),
            "{long}"
        );
    }

    #[test]
    fn jobs_sends_its_request_for_every_host_or_one() {
        assert_eq!(request(&["jobs"]), Request::Jobs { host: None });
        assert_eq!(
            request(&["jobs", "web1", "--json"]),
            Request::Jobs {
                host: Some("web1".into())
            }
        );
        assert!(Cli::try_parse_from(["sshmcpctl", "jobs", "a", "b"]).is_err());
    }

    #[test]
    fn shells_sends_its_request_for_every_host_or_one() {
        assert_eq!(request(&["shells"]), Request::Shells { host: None });
        assert_eq!(
            request(&["shells", "web1"]),
            Request::Shells {
                host: Some("web1".into())
            }
        );
    }

    #[test]
    fn jobs_takes_its_help_from_proto() {
        let mut cli = Cli::command();
        let list = cli.render_help().to_string();
        assert!(
            list.contains(&format!("jobs    {}\n", summary(help!(jobs)))),
            "{list}"
        );
    }

    #[test]
    fn audit_verify_takes_files_and_where_the_key_and_head_are() {
        let cli = Cli::try_parse_from([
            "sshmcpctl",
            "audit",
            "verify",
            "a.jsonl",
            "b.jsonl",
            "--key",
            "/k",
            "--head",
            "/h",
        ])
        .expect("valid arguments");
        assert_eq!(
            cli.command,
            Command::Audit {
                action: AuditAction::Verify {
                    files: vec!["a.jsonl".into(), "b.jsonl".into()],
                    key: Some("/k".into()),
                    head: Some("/h".into()),
                    no_head: false,
                }
            }
        );
        assert!(
            Cli::try_parse_from(["sshmcpctl", "audit", "verify", "--head", "/h", "--no-head"])
                .is_err()
        );
    }

    #[test]
    fn audit_tail_shows_twenty_records_unless_told() {
        let tail = |args: &[&str]| {
            Cli::try_parse_from([&["sshmcpctl", "audit", "tail"], args].concat())
                .expect("valid arguments")
                .command
        };
        assert_eq!(
            tail(&[]),
            Command::Audit {
                action: AuditAction::Tail {
                    lines: 20,
                    follow: false
                }
            }
        );
        assert_eq!(
            tail(&["-n", "5", "-f", "--json"]),
            Command::Audit {
                action: AuditAction::Tail {
                    lines: 5,
                    follow: true
                }
            }
        );
    }

    #[test]
    fn warm_without_a_host_is_a_usage_error() {
        assert!(Cli::try_parse_from(["sshmcpctl", "warm"]).is_err());
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        assert!(Cli::try_parse_from(["sshmcpctl", "--timeout", "0", "status"]).is_err());
    }
}
