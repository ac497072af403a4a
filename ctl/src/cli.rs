//! Command-line arguments. Each subcommand's doc comment is its `--help`
//! text and matches the doc of the [`Request`] it sends.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use sshmcp_proto::Request;

/// Admin tool for sshmcpd, the sshmcp daemon: status, stats, hosts, warm,
/// drain, reload and a live view (top).
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
    /// Daemon version, pid, uptime, socket and health.
    Status,
    /// Per-host pool counters and per-op latency percentiles.
    Stats,
    /// Configured hosts with their pool state.
    Hosts,
    /// Open a connection to a host now, so the next call finds it warm.
    Warm {
        /// Host alias from the SSH client config
        host: String,
    },
    /// Close a host's idle connections; busy ones close when their work ends.
    Drain {
        /// Host alias from the SSH client config
        host: String,
    },
    /// Re-read the config and the ssh config, as SIGHUP does: unchanged
    /// hosts stay warm, removed ones close, new ones are added. A bad new
    /// config is refused and the old one stays in force.
    Reload,
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
            Command::Top { .. } => Request::Stats,
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
    fn warm_without_a_host_is_a_usage_error() {
        assert!(Cli::try_parse_from(["sshmcpctl", "warm"]).is_err());
    }

    #[test]
    fn a_zero_timeout_is_refused() {
        assert!(Cli::try_parse_from(["sshmcpctl", "--timeout", "0", "status"]).is_err());
    }
}
