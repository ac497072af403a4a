//! `sshmcpctl top`: the daemon's stats redrawn in place at an interval,
//! with request rates computed between two samples.

use sshmcp_proto::Stats;

use crate::human;
use crate::table::{Align, Table};

/// Clear the screen and put the cursor home (ANSI).
pub const CLEAR: &str = "\x1b[H\x1b[2J";

/// One screen: the header, hosts, ops with their rate since `previous`
/// (taken `seconds` earlier), and memory.
pub fn frame(previous: Option<&Stats>, current: &Stats, seconds: f64) -> String {
    let r = &current.resources;
    let mut out = format!(
        "sshmcpd  up {}  {}  memory {} of {} (peak {})  fds {}/{}\n\n",
        human::uptime(current.uptime_ms),
        human::count(current.clients.into(), "client"),
        human::bytes(r.rss_bytes),
        human::bytes(r.memory_limit_bytes),
        human::bytes(r.peak_rss_bytes),
        r.open_fds,
        r.max_fds,
    );
    let mut hosts = Table::new(&[
        ("HOST", Align::Left),
        ("CONNS", Align::Right),
        ("BUSY", Align::Right),
        ("IDLE", Align::Right),
        ("FAILURES", Align::Right),
    ]);
    for host in &current.hosts {
        hosts.row([
            host.alias.clone(),
            host.connections.to_string(),
            host.channels_busy.to_string(),
            host.channels_idle.to_string(),
            host.connect_failures.to_string(),
        ]);
    }
    if current.hosts.is_empty() {
        out.push_str("no hosts configured\n");
    } else {
        out.push_str(&hosts.render());
    }
    out.push('\n');
    let mut ops = Table::new(&[
        ("OP", Align::Left),
        ("OPS/S", Align::Right),
        ("COUNT", Align::Right),
        ("ERRORS", Align::Right),
        ("P50", Align::Right),
        ("P99", Align::Right),
    ]);
    for op in &current.ops {
        let rate = previous
            .and_then(|p| p.ops.iter().find(|o| o.op == op.op))
            .map_or(op.count, |before| op.count.saturating_sub(before.count));
        let rate = match previous {
            Some(_) if seconds > 0.0 => format!("{:.1}", rate as f64 / seconds),
            _ => "-".to_string(),
        };
        let latency = |us| {
            if op.count == 0 {
                "-".to_string()
            } else {
                human::latency(us)
            }
        };
        ops.row([
            op.op.clone(),
            rate,
            op.count.to_string(),
            op.errors.to_string(),
            latency(op.p50_us),
            latency(op.p99_us),
        ]);
    }
    if current.ops.is_empty() {
        out.push_str("no requests served yet\n");
    } else {
        out.push_str(&ops.render());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::{OpStats, Resources};

    fn stats(count: u64) -> Stats {
        Stats {
            cache: Default::default(),
            uptime_ms: 61_000,
            clients: 2,
            hosts: vec![],
            ops: vec![OpStats {
                op: "exec".into(),
                count,
                errors: 0,
                p50_us: 1_500,
                p95_us: 2_000,
                p99_us: 3_000,
                max_us: 4_000,
            }],
            resources: Resources {
                rss_bytes: 20 << 20,
                peak_rss_bytes: 30 << 20,
                memory_limit_bytes: 28 << 30,
                open_fds: 12,
                max_fds: 1024,
                ..Resources::default()
            },
        }
    }

    #[test]
    fn rates_come_from_the_difference_between_samples() {
        let text = frame(Some(&stats(100)), &stats(150), 2.0);
        assert!(
            text.starts_with(
                "sshmcpd  up 1m 1s  2 clients  memory 20.0 MiB of 28.0 GiB (peak 30.0 MiB)  fds 12/1024\n"
            ),
            "{text}"
        );
        assert_eq!(exec_line(&text)[..3], ["exec", "25.0", "150"], "{text}");
    }

    #[test]
    fn the_first_frame_has_no_rate_yet() {
        assert_eq!(
            exec_line(&frame(None, &stats(7), 0.0))[..3],
            ["exec", "-", "7"]
        );
    }

    fn exec_line(text: &str) -> Vec<&str> {
        text.lines()
            .find(|l| l.starts_with("exec"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default()
    }
}
