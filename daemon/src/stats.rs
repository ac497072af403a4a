//! The daemon's `metrics` recorder: the in-process [`Registry`] that
//! answers `Stats` requests and health checks, and, when `[metrics] listen`
//! is set, the Prometheus recorder that `/metrics` renders.
//!
//! Ops and the pool report through the `metrics` facade (`counter!`,
//! `histogram!`, `gauge!`); [`Recorder`] hands each series to both. The
//! registry keeps counters and microsecond histograms in memory so a
//! snapshot with p50/p95/p99 can be taken at any time without an external
//! exporter; Prometheus gets every series in base units (seconds), its
//! histograms with fixed buckets.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit,
};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

/// Metric names used across the daemon. Those under "registry only" feed
/// `sshmcpctl stats` and are not exported to Prometheus, which has their
/// labelled, base-unit twins.
pub mod names {
    // Registry only.
    /// Histogram of request durations in microseconds; labels `op`, `host`.
    pub const OP_DURATION_US: &str = "sshmcp_op_duration_us";
    /// Counter of failed requests; labels `op`, `host`.
    pub const OP_ERRORS: &str = "sshmcp_op_errors_total";

    // Recorded by the dispatcher for every request.
    /// Counter of requests finished, failed ones included; labels `op`, `host`.
    pub const REQUESTS: &str = "sshmcp_requests_total";
    /// Counter of failed requests; labels `op`, `host` and `kind`
    /// (`ErrorKind::as_str`).
    pub const REQUEST_ERRORS: &str = "sshmcp_request_errors_total";
    /// Histogram of request durations in seconds; labels `op`, `host`.
    /// Prometheus only (the registry has [`OP_DURATION_US`]).
    pub const REQUEST_DURATION: &str = "sshmcp_request_duration_seconds";
    /// Counter of requests refused by a rate limit; label `scope`
    /// (`client` or `host`).
    pub const RATE_LIMITED: &str = "sshmcp_rate_limited_total";

    // Recorded by the pool.
    /// Counter of successful connects; label `host`.
    pub const CONNECTS: &str = "sshmcp_pool_connects_total";
    /// Counter of connects that replaced a dead connection; label `host`.
    pub const RECONNECTS: &str = "sshmcp_pool_reconnects_total";
    /// Counter of failed connect attempts; label `host`.
    pub const CONNECT_FAILURES: &str = "sshmcp_pool_connect_failures_total";
    /// Session channels a server refused (retried on another slot).
    pub const CHANNEL_REFUSALS: &str = "sshmcp_pool_channel_refusals_total";

    // Set from the daemon's state before each `/metrics` scrape.
    /// Gauge: 1 while the daemon serves.
    pub const UP: &str = "sshmcp_up";
    /// Gauge: 1, labelled with the daemon's `version`.
    pub const BUILD_INFO: &str = "sshmcp_build_info";
    /// Gauge: live SSH connections; label `host`.
    pub const POOL_CONNECTIONS: &str = "sshmcp_pool_connections";
    /// Gauge: session channels in use; label `host`.
    pub const POOL_CHANNELS_BUSY: &str = "sshmcp_pool_channels_busy";
    /// Gauge: free session slots on live connections; label `host`.
    pub const POOL_CHANNELS_IDLE: &str = "sshmcp_pool_channels_idle";
    /// Gauge: busy / (busy + idle) channels, 0 with no connection; label `host`.
    pub const POOL_UTILIZATION: &str = "sshmcp_pool_utilization";
    /// Gauge: 1 while the host's circuit breaker is open; label `host`.
    pub const POOL_BREAKER_OPEN: &str = "sshmcp_pool_breaker_open";
    /// Gauge: requests in progress, all clients and hosts together.
    pub const REQUESTS_IN_FLIGHT: &str = "sshmcp_requests_in_flight";
    /// Gauge: client connections open.
    pub const CLIENTS: &str = "sshmcp_clients";
    /// Gauge: persistent shells open.
    pub const SHELLS_OPEN: &str = "sshmcp_shells_open";
    /// Gauge: resident set size in bytes.
    pub const MEMORY_RSS: &str = "sshmcp_memory_rss_bytes";
    /// Gauge: `[daemon] memory_limit` in force, in bytes.
    pub const MEMORY_LIMIT: &str = "sshmcp_memory_limit_bytes";
    /// Gauge: RSS above which the daemon is degraded (90% of the limit).
    pub const MEMORY_HIGH_WATERMARK: &str = "sshmcp_memory_high_watermark_bytes";
    /// Gauge: bytes reserved by large work in progress.
    pub const MEMORY_RESERVED: &str = "sshmcp_memory_reserved_bytes";
    /// Counter: large work refused for memory.
    pub const MEMORY_REFUSALS: &str = "sshmcp_memory_refusals_total";
    /// Gauge: open file descriptors.
    pub const OPEN_FDS: &str = "sshmcp_open_fds";
    /// Gauge: the soft limit on open file descriptors.
    pub const MAX_FDS: &str = "sshmcp_max_fds";
    /// Gauge: the process's threads.
    pub const THREADS: &str = "sshmcp_threads";
    /// Gauge: answers held by the response cache.
    pub const CACHE_ENTRIES: &str = "sshmcp_cache_entries";
    /// Gauge: bytes the cached answers take.
    pub const CACHE_BYTES: &str = "sshmcp_cache_bytes";
    /// Gauge: `[cache] max_bytes` in force (lower while memory is high).
    pub const CACHE_MAX_BYTES: &str = "sshmcp_cache_max_bytes";
    /// Gauge: `[cache] max_entries`.
    pub const CACHE_MAX_ENTRIES: &str = "sshmcp_cache_max_entries";
    /// Counter: answers served from the cache.
    pub const CACHE_HITS: &str = "sshmcp_cache_hits_total";
    /// Counter: cacheable requests that went to the host.
    pub const CACHE_MISSES: &str = "sshmcp_cache_misses_total";
    /// Counter: hits confirmed with a `stat` first.
    pub const CACHE_REVALIDATIONS: &str = "sshmcp_cache_revalidations_total";
    /// Counter: entries pushed out to make room.
    pub const CACHE_EVICTIONS: &str = "sshmcp_cache_evictions_total";
}

/// Upper bounds (seconds) of [`names::REQUEST_DURATION`]'s buckets: 50 µs
/// (a cached answer) to 60 s (a long exec or transfer).
pub const REQUEST_DURATION_BUCKETS: [f64; 19] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Install the daemon's global recorder over `registry`, with a Prometheus
/// recorder beside it when `prometheus` is set, and describe every series.
/// Returns the handle `/metrics` renders with.
pub fn install(
    registry: Arc<Registry>,
    prometheus: bool,
) -> Result<Option<PrometheusHandle>, String> {
    let prometheus = prometheus.then(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::REQUEST_DURATION.into()),
                &REQUEST_DURATION_BUCKETS,
            )
            .map(PrometheusBuilder::build_recorder)
            .map_err(|e| format!("cannot set up the Prometheus recorder: {e}"))
    });
    let prometheus = prometheus.transpose()?;
    let handle = prometheus.as_ref().map(PrometheusRecorder::handle);
    metrics::set_global_recorder(Recorder::new(registry, prometheus))
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    describe();
    Ok(handle)
}

/// The `# HELP` text of every exported series.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    use names::*;
    describe_counter!(
        REQUESTS,
        "Requests finished, failed ones included, by op and host."
    );
    describe_counter!(
        REQUEST_ERRORS,
        "Requests that failed, by op, host and error kind."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its reply, by op and host."
    );
    describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by scope.");
    describe_counter!(CONNECTS, "SSH connections established, by host.");
    describe_counter!(
        RECONNECTS,
        "Connections that replaced one found dead, by host."
    );
    describe_counter!(CONNECT_FAILURES, "Connect attempts that failed, by host.");
    describe_counter!(
        CHANNEL_REFUSALS,
        "Session channels a server refused (retried elsewhere), by host."
    );
    describe_gauge!(UP, "1 while the daemon serves.");
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the label names the daemon's version."
    );
    describe_gauge!(POOL_CONNECTIONS, "Live SSH connections, by host.");
    describe_gauge!(POOL_CHANNELS_BUSY, "Session channels in use, by host.");
    describe_gauge!(
        POOL_CHANNELS_IDLE,
        "Free session slots on live connections, by host."
    );
    describe_gauge!(
        POOL_UTILIZATION,
        "Busy share of the session slots on live connections (0 to 1), by host."
    );
    describe_gauge!(
        POOL_BREAKER_OPEN,
        "1 while the host's circuit breaker is open (calls fail fast)."
    );
    describe_gauge!(REQUESTS_IN_FLIGHT, "Requests in progress.");
    describe_gauge!(CLIENTS, "Client connections open.");
    describe_gauge!(SHELLS_OPEN, "Persistent shells open (shell_open).");
    describe_gauge!(MEMORY_RSS, Unit::Bytes, "Resident set size.");
    describe_gauge!(MEMORY_LIMIT, Unit::Bytes, "[daemon] memory_limit in force.");
    describe_gauge!(
        MEMORY_HIGH_WATERMARK,
        Unit::Bytes,
        "RSS above which the daemon is degraded and refuses large work."
    );
    describe_gauge!(
        MEMORY_RESERVED,
        Unit::Bytes,
        "Memory reserved by large work in progress."
    );
    describe_counter!(MEMORY_REFUSALS, "Large work refused for memory.");
    describe_gauge!(OPEN_FDS, "Open file descriptors.");
    describe_gauge!(
        MAX_FDS,
        "Soft limit on open file descriptors (RLIMIT_NOFILE)."
    );
    describe_gauge!(THREADS, "Threads of the daemon process.");
    describe_gauge!(CACHE_ENTRIES, "Answers held by the response cache.");
    describe_gauge!(CACHE_BYTES, Unit::Bytes, "Bytes the cached answers take.");
    describe_gauge!(
        CACHE_MAX_BYTES,
        Unit::Bytes,
        "[cache] max_bytes in force (lower while memory is high)."
    );
    describe_gauge!(CACHE_MAX_ENTRIES, "[cache] max_entries.");
    describe_counter!(CACHE_HITS, "Answers served from the cache.");
    describe_counter!(CACHE_MISSES, "Cacheable requests that went to the host.");
    describe_counter!(
        CACHE_REVALIDATIONS,
        "Cache hits confirmed with a stat of the file first."
    );
    describe_counter!(CACHE_EVICTIONS, "Cache entries pushed out to make room.");
}

/// Every series the daemon has recorded since start.
#[derive(Default)]
pub struct Registry {
    counters: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    histograms: RwLock<HashMap<Key, Arc<LatencyHistogram>>>,
}

/// The global `metrics` recorder: every series goes to the [`Registry`]
/// and, when `/metrics` is on, to Prometheus, except the few each leaves
/// out (see [`to_registry`] and [`to_prometheus`]).
pub struct Recorder {
    registry: Arc<Registry>,
    prometheus: Option<PrometheusRecorder>,
}

impl Recorder {
    /// A recorder over `registry`, with `prometheus` beside it when
    /// `/metrics` is on.
    pub fn new(registry: Arc<Registry>, prometheus: Option<PrometheusRecorder>) -> Recorder {
        Recorder {
            registry,
            prometheus,
        }
    }

    /// The Prometheus recorder, if it takes series `name`.
    fn prometheus_for(&self, name: &str) -> Option<&PrometheusRecorder> {
        self.prometheus.as_ref().filter(|_| to_prometheus(name))
    }
}

/// The registry keeps microseconds; the seconds histogram is Prometheus'.
fn to_registry(name: &str) -> bool {
    name != names::REQUEST_DURATION
}

/// Prometheus wants base units and has labelled twins of the registry's
/// per-op series (`promtool` rejects a `_us` name).
fn to_prometheus(name: &str) -> bool {
    name != names::OP_DURATION_US && name != names::OP_ERRORS
}

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        if let Some(p) = self.prometheus_for(name.as_str()) {
            p.describe_counter(name, unit, text);
        }
    }

    fn describe_gauge(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        if let Some(p) = self.prometheus_for(name.as_str()) {
            p.describe_gauge(name, unit, text);
        }
    }

    fn describe_histogram(&self, name: KeyName, unit: Option<Unit>, text: SharedString) {
        if let Some(p) = self.prometheus_for(name.as_str()) {
            p.describe_histogram(name, unit, text);
        }
    }

    fn register_counter(&self, key: &Key, meta: &Metadata<'_>) -> Counter {
        let ours = to_registry(key.name())
            .then(|| Counter::from_arc(get_or_insert(&self.registry.counters, key)));
        let theirs = self
            .prometheus_for(key.name())
            .map(|p| p.register_counter(key, meta));
        match (ours, theirs) {
            (Some(a), Some(b)) => Counter::from_arc(Arc::new(Both(a, b))),
            (one, other) => one.or(other).unwrap_or_else(Counter::noop),
        }
    }

    /// Gauges are Prometheus' only: nothing in the registry reads them.
    fn register_gauge(&self, key: &Key, meta: &Metadata<'_>) -> Gauge {
        self.prometheus_for(key.name())
            .map_or_else(Gauge::noop, |p| p.register_gauge(key, meta))
    }

    fn register_histogram(&self, key: &Key, meta: &Metadata<'_>) -> Histogram {
        let ours = to_registry(key.name())
            .then(|| Histogram::from_arc(get_or_insert(&self.registry.histograms, key)));
        let theirs = self
            .prometheus_for(key.name())
            .map(|p| p.register_histogram(key, meta));
        match (ours, theirs) {
            (Some(a), Some(b)) => Histogram::from_arc(Arc::new(Both(a, b))),
            (one, other) => one.or(other).unwrap_or_else(Histogram::noop),
        }
    }
}

/// One series' handles in two recorders; every update goes to both.
struct Both<H>(H, H);

impl CounterFn for Both<Counter> {
    fn increment(&self, value: u64) {
        self.0.increment(value);
        self.1.increment(value);
    }

    fn absolute(&self, value: u64) {
        self.0.absolute(value);
        self.1.absolute(value);
    }
}

impl HistogramFn for Both<Histogram> {
    fn record(&self, value: f64) {
        self.0.record(value);
        self.1.record(value);
    }
}

fn get_or_insert<T: Default>(map: &RwLock<HashMap<Key, Arc<T>>>, key: &Key) -> Arc<T> {
    if let Some(found) = map.read().unwrap_or_else(|p| p.into_inner()).get(key) {
        return found.clone();
    }
    map.write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key.clone())
        .or_default()
        .clone()
}

fn label<'k>(key: &'k Key, name: &str) -> Option<&'k str> {
    key.labels().find(|l| l.key() == name).map(|l| l.value())
}

impl Registry {
    /// Sum of counter `name` over every series whose `label` equals `value`.
    pub fn counter_total(&self, name: &str, label_name: &str, value: &str) -> u64 {
        self.counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| k.name() == name && label(k, label_name) == Some(value))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Sum of counter `name` over every series whose `label` passes `keep`
    /// (a series without the label passes `""`).
    pub fn counter_sum(&self, name: &str, label_name: &str, keep: impl Fn(&str) -> bool) -> u64 {
        self.counters
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| k.name() == name && keep(label(k, label_name).unwrap_or("")))
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Histogram `name`'s bucket counts, summed over every series whose
    /// `label` passes `keep`; read them with [`LatencyHistogram::quantile_of`].
    pub fn histogram_counts(
        &self,
        name: &str,
        label_name: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Vec<u64> {
        let mut counts = vec![0; OCTAVES * SUB_BUCKETS];
        for (_, hist) in self
            .histograms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(k, _)| k.name() == name && keep(label(k, label_name).unwrap_or("")))
        {
            for (sum, bucket) in counts.iter_mut().zip(&hist.buckets) {
                *sum += bucket.load(Ordering::Relaxed);
            }
        }
        counts
    }

    /// Per-op counts, errors and latency percentiles, all hosts merged,
    /// sorted by op name.
    pub fn op_stats(&self) -> Vec<sshmcp_proto::OpStats> {
        let mut merged: HashMap<String, LatencyHistogram> = HashMap::new();
        for (key, hist) in self
            .histograms
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if key.name() != names::OP_DURATION_US {
                continue;
            }
            let op = label(key, "op").unwrap_or("?").to_string();
            merged.entry(op).or_default().merge_from(hist);
        }
        let mut ops: Vec<_> = merged
            .into_iter()
            .map(|(op, hist)| sshmcp_proto::OpStats {
                errors: self.counter_total(names::OP_ERRORS, "op", &op),
                count: hist.count(),
                p50_us: hist.quantile(0.50),
                p95_us: hist.quantile(0.95),
                p99_us: hist.quantile(0.99),
                max_us: hist.max.load(Ordering::Relaxed),
                op,
            })
            .collect();
        ops.sort_by(|a, b| a.op.cmp(&b.op));
        ops
    }
}

/// Sub-buckets per power of two: relative error below 1/8 (12.5 %), then
/// halved again by reporting each bucket's midpoint.
const SUB_BUCKETS: usize = 8;
/// Powers of two covered: 1 µs up to 2^40 µs (about 12 days).
const OCTAVES: usize = 40;

/// A lock-free log-linear histogram of microsecond values.
pub struct LatencyHistogram {
    buckets: Vec<AtomicU64>,
    max: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: (0..OCTAVES * SUB_BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            max: AtomicU64::new(0),
        }
    }
}

impl LatencyHistogram {
    fn bucket_of(value: u64) -> usize {
        if value < SUB_BUCKETS as u64 {
            return value as usize;
        }
        let octave = 63 - value.leading_zeros() as usize; // >= 3
        let shift = octave - 3;
        let sub = ((value >> shift) as usize) & (SUB_BUCKETS - 1);
        ((octave - 2) * SUB_BUCKETS + sub).min(OCTAVES * SUB_BUCKETS - 1)
    }

    /// The midpoint of bucket `index`'s value range.
    fn value_of(index: usize) -> u64 {
        if index < SUB_BUCKETS {
            return index as u64;
        }
        let octave = index / SUB_BUCKETS + 2;
        let sub = (index % SUB_BUCKETS) as u64;
        let shift = octave - 3;
        let low = (SUB_BUCKETS as u64 + sub) << shift;
        low + ((1u64 << shift) >> 1)
    }

    pub fn record_us(&self, value: u64) {
        self.buckets[Self::bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.max.fetch_max(value, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| b.load(Ordering::Relaxed)).sum()
    }

    fn merge_from(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.buckets.iter().zip(&other.buckets) {
            mine.fetch_add(theirs.load(Ordering::Relaxed), Ordering::Relaxed);
        }
        self.max
            .fetch_max(other.max.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// The value at quantile `q` (0..=1), never above the recorded max.
    pub fn quantile(&self, q: f64) -> u64 {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let max = self.max.load(Ordering::Relaxed);
        let total: u64 = counts.iter().sum();
        if total > 0 && ((q * total as f64).ceil() as u64).clamp(1, total) == total {
            return max;
        }
        Self::quantile_of(&counts, q).min(max)
    }

    /// The value at quantile `q` (0..=1) of bucket `counts` such as
    /// [`Registry::histogram_counts`] returns (or the difference of two):
    /// the midpoint of the bucket it falls in; 0 when there are none.
    pub fn quantile_of(counts: &[u64], q: f64) -> u64 {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value_of(index);
            }
        }
        Self::value_of(counts.len().saturating_sub(1))
    }
}

impl metrics::HistogramFn for LatencyHistogram {
    fn record(&self, value: f64) {
        self.record_us(value.max(0.0) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_bucket_error() {
        let hist = LatencyHistogram::default();
        for v in 1..=1000 {
            hist.record_us(v);
        }
        for (q, exact) in [(0.5, 500.0), (0.95, 950.0), (0.99, 990.0)] {
            let got = hist.quantile(q) as f64;
            assert!((got - exact).abs() / exact < 0.07, "q{q}: {got} vs {exact}");
        }
        assert_eq!(hist.quantile(1.0), 1000);
    }

    #[test]
    fn small_and_huge_values_land_in_range() {
        let hist = LatencyHistogram::default();
        hist.record_us(0);
        hist.record_us(u64::MAX);
        assert_eq!(hist.count(), 2);
    }

    #[test]
    fn op_stats_merge_hosts_and_count_errors() {
        let registry = Arc::new(Registry::default());
        let recorder = Recorder::new(registry.clone(), None);
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!(names::OP_DURATION_US, "op" => "exec", "host" => "a").record(100.0);
            metrics::histogram!(names::OP_DURATION_US, "op" => "exec", "host" => "b").record(300.0);
            metrics::counter!(names::OP_ERRORS, "op" => "exec", "host" => "b").increment(1);
        });
        let ops = registry.op_stats();
        assert_eq!(ops.len(), 1);
        assert_eq!(ops[0].count, 2);
        assert_eq!(ops[0].errors, 1);
        assert_eq!(ops[0].max_us, 300);
    }

    #[test]
    fn every_series_reaches_both_recorders_in_its_own_units() {
        let registry = Arc::new(Registry::default());
        let prometheus = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(names::REQUEST_DURATION.into()),
                &REQUEST_DURATION_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = prometheus.handle();
        let recorder = Recorder::new(registry.clone(), Some(prometheus));
        metrics::with_local_recorder(&recorder, || {
            describe();
            let labels = [("op", "stat"), ("host", "a")];
            metrics::counter!(names::REQUESTS, &labels).increment(2);
            metrics::counter!(names::REQUEST_ERRORS, "op" => "stat", "host" => "a", "kind" => "not_found")
                .increment(1);
            metrics::histogram!(names::REQUEST_DURATION, &labels).record(0.003);
            metrics::histogram!(names::OP_DURATION_US, &labels).record(3000.0);
            metrics::counter!(names::OP_ERRORS, &labels).increment(1);
            metrics::gauge!(names::UP).set(1.0);
        });
        assert_eq!(registry.counter_total(names::REQUESTS, "op", "stat"), 2);
        assert_eq!(
            registry.counter_sum(names::REQUEST_ERRORS, "kind", |k| k == "not_found"),
            1
        );
        assert_eq!(registry.op_stats()[0].count, 1, "the µs histogram stays");
        let counts = registry.histogram_counts(names::REQUEST_DURATION, "op", |_| true);
        assert_eq!(counts.iter().sum::<u64>(), 0, "no seconds in the registry");

        let text = handle.render();
        for line in [
            "# HELP sshmcp_requests_total Requests finished",
            "sshmcp_requests_total{op=\"stat\",host=\"a\"} 2",
            "sshmcp_request_errors_total{op=\"stat\",host=\"a\",kind=\"not_found\"} 1",
            "# TYPE sshmcp_request_duration_seconds histogram",
            "sshmcp_request_duration_seconds_bucket{op=\"stat\",host=\"a\",le=\"0.005\"} 1",
            "sshmcp_up 1",
        ] {
            assert!(text.contains(line), "no `{line}` in\n{text}");
        }
        assert!(!text.contains(names::OP_DURATION_US), "{text}");
        assert!(!text.contains(names::OP_ERRORS), "{text}");
    }

    #[test]
    fn quantiles_of_summed_counts() {
        let hist = LatencyHistogram::default();
        for v in 1..=100 {
            hist.record_us(v * 1000);
        }
        let counts: Vec<u64> = hist
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        let p99 = LatencyHistogram::quantile_of(&counts, 0.99) as f64;
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.07, "{p99}");
        assert_eq!(LatencyHistogram::quantile_of(&[0; 4], 0.99), 0);
    }
}
