//! Whether the daemon is healthy, and if not, why: what `sshmcpctl status`
//! says after `degraded:`.
//!
//! Beside what [`Daemon::degraded_reasons`] finds (memory above 90% of
//! the cap, descriptors running short, open circuit breakers), the daemon
//! is degraded when, over the last minute, more than 5% of requests failed
//! on the daemon's or a host's account, the p99 latency of quick ops passed
//! 5 s, or the cache answered under 70% of at least 100 lookups; and when a
//! host's pool has more than 90% of its session slots busy. The minute is a
//! rolling window: a task samples the registry's totals every
//! [`SAMPLE_EVERY`] and each check compares now against the newest sample
//! at least [`WINDOW`] old.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sshmcp_proto::HostState;

use crate::state::Daemon;
use crate::stats::{LatencyHistogram, names};

/// How far back the rates are taken.
const WINDOW: Duration = Duration::from_secs(60);
/// How often the window's totals are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Above this share of failed requests the daemon is degraded.
const MAX_ERROR_RATE: f64 = 0.05;
/// Above this p99 latency (microseconds) of quick ops it is degraded.
const MAX_P99_US: u64 = 5_000_000;
/// Fewer requests than this in the window say nothing about rates.
const MIN_REQUESTS: u64 = 20;
/// Below this share of cache hits it is degraded...
const MIN_CACHE_HIT_RATE: f64 = 0.70;
/// ...once the window holds this many lookups.
const MIN_CACHE_LOOKUPS: u64 = 100;
/// Above this busy share of a host's session slots it is degraded.
const MAX_POOL_UTILIZATION: f64 = 0.90;

/// Error kinds that are the caller's doing (a missing path, a refused
/// request), not the daemon's or a host's failure: they do not count
/// towards the error rate. `packaging/prometheus/sshmcp-rules.yml` leaves
/// out the same kinds.
pub const CALLER_ERROR_KINDS: [&str; 9] = [
    "host_unknown",
    "not_found",
    "permission_denied",
    "policy_denied",
    "cancelled",
    "bad_request",
    "version_mismatch",
    "already_exists",
    "wrong_type",
];

/// Ops whose time is the caller's command, data or calls, not the
/// daemon's: left out of the latency check (and of the rules' too).
pub const LONG_OPS: [&str; 4] = ["exec", "transfer", "sync", "batch"];

/// The samples the window is taken from; one daemon per process.
static RECENT: Mutex<Window> = Mutex::new(Window {
    samples: VecDeque::new(),
});

/// Every reason the daemon is degraded now; empty when it is healthy.
pub fn reasons(daemon: &Daemon) -> Vec<String> {
    let mut reasons = daemon.degraded_reasons();
    let recent = RECENT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .since(&Totals::now(daemon));
    reasons.extend(recent.reasons());
    reasons.extend(pool_reason(&daemon.pool.host_states()));
    reasons
}

/// Sample the totals every [`SAMPLE_EVERY`] until shutdown.
pub fn spawn_sampler(daemon: &Arc<Daemon>) {
    let daemon = daemon.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let totals = Totals::now(&daemon);
                    RECENT
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Instant::now(), totals);
                }
                () = daemon.shutdown.cancelled() => break,
            }
        }
    });
}

/// Counts since start, as the registry and the cache keep them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: u64,
    /// Failed requests, callers' mistakes left out.
    failures: u64,
    /// Bucket counts of quick ops' latencies (see [`LatencyHistogram`]).
    latency: Vec<u64>,
    cache_hits: u64,
    cache_misses: u64,
}

impl Totals {
    fn now(daemon: &Daemon) -> Totals {
        let registry = &daemon.registry;
        let cache = daemon.cache.stats();
        Totals {
            requests: registry.counter_sum(names::REQUESTS, "op", |_| true),
            failures: registry.counter_sum(names::REQUEST_ERRORS, "kind", |kind| {
                !CALLER_ERROR_KINDS.contains(&kind)
            }),
            latency: registry
                .histogram_counts(names::OP_DURATION_US, "op", |op| !LONG_OPS.contains(&op)),
            cache_hits: cache.hits,
            cache_misses: cache.misses,
        }
    }

    /// What happened between `earlier` and `self`.
    fn minus(&self, earlier: &Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(earlier.requests),
            failures: self.failures.saturating_sub(earlier.failures),
            latency: self
                .latency
                .iter()
                .enumerate()
                .map(|(i, n)| n.saturating_sub(earlier.latency.get(i).copied().unwrap_or(0)))
                .collect(),
            cache_hits: self.cache_hits.saturating_sub(earlier.cache_hits),
            cache_misses: self.cache_misses.saturating_sub(earlier.cache_misses),
        }
    }

    /// Why these counts (over the window) make the daemon degraded.
    fn reasons(&self) -> Vec<String> {
        let mut reasons = Vec::new();
        if self.requests >= MIN_REQUESTS
            && self.failures as f64 > self.requests as f64 * MAX_ERROR_RATE
        {
            reasons.push(format!(
                "error rate {:.0}% over the last minute ({} of {} requests failed; \
                 callers' mistakes such as not_found not counted), above {:.0}%",
                percent(self.failures, self.requests),
                self.failures,
                self.requests,
                MAX_ERROR_RATE * 100.0
            ));
        }
        let timed: u64 = self.latency.iter().sum();
        let p99 = LatencyHistogram::quantile_of(&self.latency, 0.99);
        if timed >= MIN_REQUESTS && p99 > MAX_P99_US {
            reasons.push(format!(
                "p99 latency {:.1} s over the last minute, above {} s (exec, transfer, sync \
                 and batch not counted)",
                p99 as f64 / 1e6,
                MAX_P99_US / 1_000_000
            ));
        }
        let lookups = self.cache_hits + self.cache_misses;
        if lookups >= MIN_CACHE_LOOKUPS
            && (self.cache_hits as f64) < lookups as f64 * MIN_CACHE_HIT_RATE
        {
            reasons.push(format!(
                "cache hit rate {:.0}% over the last minute ({} of {} lookups), below {:.0}%",
                percent(self.cache_hits, lookups),
                self.cache_hits,
                lookups,
                MIN_CACHE_HIT_RATE * 100.0
            ));
        }
        reasons
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    part as f64 * 100.0 / whole as f64
}

/// Totals sampled over time: the newest sample at least [`WINDOW`] old
/// (the baseline) and every one after it.
#[derive(Debug)]
struct Window {
    samples: VecDeque<(Instant, Totals)>,
}

impl Window {
    fn push(&mut self, at: Instant, totals: Totals) {
        self.samples.push_back((at, totals));
        while self
            .samples
            .get(1)
            .is_some_and(|(next, _)| at.duration_since(*next) >= WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// What happened between the baseline and `now` (since start before
    /// the first sample).
    fn since(&self, now: &Totals) -> Totals {
        match self.samples.front() {
            Some((_, baseline)) => now.minus(baseline),
            None => now.clone(),
        }
    }
}

/// The hosts with more than 90% of their session slots busy.
fn pool_reason(hosts: &[HostState]) -> Option<String> {
    let full: Vec<String> = hosts
        .iter()
        .filter_map(|h| {
            let slots = h.channels_busy + h.channels_idle;
            let used = f64::from(h.channels_busy) / f64::from(slots.max(1));
            (slots > 0 && used > MAX_POOL_UTILIZATION).then(|| {
                format!(
                    "{} ({} of {} channels busy)",
                    h.alias, h.channels_busy, slots
                )
            })
        })
        .collect();
    (!full.is_empty()).then(|| {
        format!(
            "pool above {:.0}% busy for {}",
            MAX_POOL_UTILIZATION * 100.0,
            full.join(", ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::ConnState;

    fn totals(requests: u64, failures: u64) -> Totals {
        Totals {
            requests,
            failures,
            ..Totals::default()
        }
    }

    #[test]
    fn the_window_compares_against_the_newest_sample_a_minute_old() {
        let start = Instant::now();
        let mut window = Window {
            samples: VecDeque::new(),
        };
        assert_eq!(window.since(&totals(5, 1)), totals(5, 1), "since start");
        for step in 0..=12u64 {
            let at = start + SAMPLE_EVERY * step as u32;
            window.push(at, totals(step * 100, step));
        }
        // At 120 s the baseline is the sample at 60 s.
        assert_eq!(window.samples.len(), 7);
        assert_eq!(window.since(&totals(1300, 13)), totals(700, 7));
    }

    #[test]
    fn errors_above_five_percent_degrade_once_there_are_enough_requests() {
        assert!(totals(100, 5).reasons().is_empty());
        let reasons = totals(100, 6).reasons();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("error rate 6%"), "{reasons:?}");
        assert!(reasons[0].contains("6 of 100 requests"), "{reasons:?}");
        assert!(totals(10, 10).reasons().is_empty(), "too few to judge");
    }

    #[test]
    fn a_slow_p99_of_quick_ops_degrades() {
        let registry = Arc::new(crate::stats::Registry::default());
        let recorder = crate::stats::Recorder::new(registry.clone(), None);
        let record = |op: &'static str, us: f64, times| {
            metrics::with_local_recorder(&recorder, || {
                for _ in 0..times {
                    metrics::histogram!(names::OP_DURATION_US, "op" => op).record(us);
                }
            });
        };
        record("stat", 1_000.0, 98);
        record("exec", 60e6, 50);
        let latency = |registry: &crate::stats::Registry| Totals {
            latency: registry
                .histogram_counts(names::OP_DURATION_US, "op", |op| !LONG_OPS.contains(&op)),
            ..Totals::default()
        };
        assert!(
            latency(&registry).reasons().is_empty(),
            "exec is not counted"
        );
        record("read_file", 8e6, 2);
        let reasons = latency(&registry).reasons();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].starts_with("p99 latency 8."), "{reasons:?}");
    }

    #[test]
    fn a_low_cache_hit_rate_degrades_only_with_enough_lookups() {
        let cache = |hits, misses| Totals {
            cache_hits: hits,
            cache_misses: misses,
            ..Totals::default()
        };
        assert!(cache(10, 80).reasons().is_empty(), "under 100 lookups");
        assert!(cache(70, 30).reasons().is_empty());
        let reasons = cache(60, 40).reasons();
        assert!(
            reasons[0].contains("cache hit rate 60%") && reasons[0].contains("60 of 100"),
            "{reasons:?}"
        );
    }

    #[test]
    fn a_pool_past_nine_tenths_busy_is_named() {
        let host = |alias: &str, busy, idle| HostState {
            access: "full".into(),
            alias: alias.into(),
            hostname: alias.into(),
            port: 22,
            user: "me".into(),
            state: ConnState::Connected,
            connections: 1,
            channels_busy: busy,
            channels_idle: idle,
            last_error: None,
        };
        assert_eq!(pool_reason(&[host("a", 9, 1), host("b", 0, 0)]), None);
        assert_eq!(
            pool_reason(&[host("a", 10, 0), host("b", 19, 1)]).as_deref(),
            Some("pool above 90% busy for a (10 of 10 channels busy), b (19 of 20 channels busy)")
        );
    }

    #[test]
    fn the_packaged_rules_and_dashboard_leave_out_the_same_kinds_and_ops() {
        let rules = include_str!("../../packaging/prometheus/sshmcp-rules.yml");
        let dashboard = include_str!("../../packaging/grafana/sshmcp.json");
        let kinds = format!("kind!~\"{}\"", CALLER_ERROR_KINDS.join("|"));
        assert!(rules.contains(&kinds), "the rules should have {kinds}");
        assert!(
            dashboard.contains(&kinds.replace('"', "\\\"")),
            "the dashboard should have {kinds}"
        );
        let ops = format!("op!~\"{}\"", LONG_OPS.join("|"));
        assert!(rules.contains(&ops), "the rules should have {ops}");
    }
}
