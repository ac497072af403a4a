//! `sshmcpctl top`: the daemon's stats redrawn in place at an interval,
//! with request rates and the cache's hit rate computed between two samples.

use sshmcp_proto::{CacheStats, Stats};

use crate::table::{Align, Table};
use crate::{human, render};

/// Clear the screen and put the cursor home (ANSI).
pub const CLEAR: &str = "\x1b[H\x1b[2J";

/// One screen: the header with memory and the cache (its hit rate since
/// `previous`), hosts, and ops with their rate since `previous` (taken
/// `seconds` earlier).
pub fn frame(previous: Option<&Stats>, current: &Stats, seconds: f64) -> String {
    let r = &current.resources;
    let mut out = format!(
        "sshmcpd  up {}  {}  memory {} of {} (peak {})  fds {}/{}\n{}\n\n",
        human::uptime(current.uptime_ms),
        human::count(current.clients.into(), "client"),
        human::bytes(r.rss_bytes),
        human::bytes(r.memory_limit_bytes),
        human::bytes(r.peak_rss_bytes),
        r.open_fds,
        r.max_fds,
        cache_line(previous.map(|p| &p.cache), &current.cache),
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

/// `cache  hit rate 80.0%  1204 entries  12.3 MiB of 256.0 MiB`, the hit
/// rate counting only the lookups since `previous` (`-` without one, or
/// when there were none).
fn cache_line(previous: Option<&CacheStats>, current: &CacheStats) -> String {
    if !current.enabled {
        return "cache  disabled".to_string();
    }
    let rate = previous.and_then(|p| {
        render::hit_rate(
            current.hits.saturating_sub(p.hits),
            current.misses.saturating_sub(p.misses),
        )
    });
    format!(
        "cache  hit rate {}  {}  {}",
        human::percent(rate),
        human::count(current.entries, "entry"),
        render::budget(current),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::{OpStats, Resources};

    fn stats(count: u64) -> Stats {
        Stats {
            cache: CacheStats {
                enabled: true,
                entries: 1204,
                bytes: 12_897_484,
                max_bytes: 256 << 20,
                hits: count * 3,
                misses: count,
                ..CacheStats::default()
            },
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

    #[test]
    fn the_cache_hit_rate_counts_the_last_interval_only() {
        let mut before = stats(100);
        before.cache.hits = 0;
        let text = frame(Some(&before), &stats(150), 2.0);
        // 450 hits, 50 misses since `before`; 75% since the start.
        assert_eq!(
            text.lines().nth(1),
            Some("cache  hit rate 90.0%  1204 entries  12.3 MiB of 256.0 MiB"),
            "{text}"
        );
        assert_eq!(text.lines().nth(2), Some(""), "{text}");
    }

    #[test]
    fn the_cache_has_no_hit_rate_without_lookups_or_when_off() {
        let first = frame(None, &stats(7), 0.0);
        assert!(
            first.contains("\ncache  hit rate -  1204 entries"),
            "{first}"
        );
        let idle = frame(Some(&stats(7)), &stats(7), 2.0);
        assert!(idle.contains("\ncache  hit rate -  1204 entries"), "{idle}");
        let mut off = stats(7);
        off.cache = CacheStats::default();
        let off = frame(None, &off, 0.0);
        assert!(off.contains("fds 12/1024\ncache  disabled\n\n"), "{off}");
    }

    fn exec_line(text: &str) -> Vec<&str> {
        text.lines()
            .find(|l| l.starts_with("exec"))
            .map(|l| l.split_whitespace().collect())
            .unwrap_or_default()
    }
}
