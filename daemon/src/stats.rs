//! The in-process `metrics` recorder that answers `Stats` requests.
//!
//! Ops and the pool report through the `metrics` facade (`counter!`,
//! `histogram!`); this recorder keeps every series in memory so a snapshot
//! with p50/p95/p99 can be taken at any time without an external exporter.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

/// Metric names used across the daemon.
pub mod names {
    /// Histogram of request durations in microseconds; labels `op`, `host`.
    pub const OP_DURATION_US: &str = "sshmcp_op_duration_us";
    /// Counter of failed requests; labels `op`, `host`.
    pub const OP_ERRORS: &str = "sshmcp_op_errors_total";
    /// Counter of successful connects; label `host`.
    pub const CONNECTS: &str = "sshmcp_pool_connects_total";
    /// Counter of connects that replaced a dead connection; label `host`.
    pub const RECONNECTS: &str = "sshmcp_pool_reconnects_total";
    /// Counter of failed connect attempts; label `host`.
    pub const CONNECT_FAILURES: &str = "sshmcp_pool_connect_failures_total";
    /// Session channels a server refused (retried on another slot).
    pub const CHANNEL_REFUSALS: &str = "sshmcp_pool_channel_refusals_total";
}

/// Every series the daemon has recorded since start.
#[derive(Default)]
pub struct Registry {
    counters: RwLock<HashMap<Key, Arc<AtomicU64>>>,
    histograms: RwLock<HashMap<Key, Arc<LatencyHistogram>>>,
}

/// Adapter installed as the global `metrics` recorder.
pub struct Recorder(pub Arc<Registry>);

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(get_or_insert(&self.0.counters, key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(get_or_insert(&self.0.histograms, key))
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
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        if rank == total {
            return self.max.load(Ordering::Relaxed);
        }
        let mut seen = 0;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket.load(Ordering::Relaxed);
            if seen >= rank {
                return Self::value_of(index).min(self.max.load(Ordering::Relaxed));
            }
        }
        self.max.load(Ordering::Relaxed)
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
        let recorder = Recorder(registry.clone());
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
}
