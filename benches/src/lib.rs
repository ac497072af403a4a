//! Shared pieces of the benchmarks: latency samples and the tables they
//! print. Every benchmark runs the OpenSSH comparison in the same process
//! and prints ratios, so figures from different machines stay comparable.

use std::time::{Duration, Instant};

/// Latency samples of one path.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Time `iters` runs of `op`.
    pub fn measure(iters: usize, mut op: impl FnMut()) -> Samples {
        let mut samples = Samples::default();
        for _ in 0..iters {
            let start = Instant::now();
            op();
            samples.push(start.elapsed());
        }
        samples
    }

    pub fn push(&mut self, sample: Duration) {
        self.0.push(sample);
    }

    /// The value at quantile `q` (nearest rank).
    pub fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort();
        if sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    pub fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub fn p95(&self) -> Duration {
        self.quantile(0.95)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

/// Print one row per path with p50, p95 and the p50 ratio to `baseline`.
pub fn print_table(rows: &[(&str, &Samples)], baseline: &Samples) {
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(4);
    println!(
        "| {:width$} | {:>5} | {:>9} | {:>9} | {:>14} |",
        "path", "n", "p50 ms", "p95 ms", "p50 / baseline"
    );
    println!(
        "|-{}-|------:|----------:|----------:|---------------:|",
        "-".repeat(width)
    );
    for (name, samples) in rows {
        let ratio = samples.p50().as_secs_f64() / baseline.p50().as_secs_f64().max(1e-9);
        println!(
            "| {name:width$} | {:>5} | {:>9} | {:>9} | {:>13.2}x |",
            samples.len(),
            ms(samples.p50()),
            ms(samples.p95()),
            ratio
        );
    }
}

/// One line comparing two figures as a ratio, with the goal beside it.
pub fn percent_line(what: &str, ours: Duration, theirs: Duration, goal: &str) -> String {
    let ratio = ours.as_secs_f64() / theirs.as_secs_f64().max(1e-9);
    let goal = if goal.is_empty() {
        String::new()
    } else {
        format!(" ({goal})")
    };
    format!(
        "{what}: {ratio:.2}x = {} ms / {} ms{goal}",
        ms(ours),
        ms(theirs)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_use_nearest_rank() {
        let mut s = Samples::default();
        for ms in 1..=100 {
            s.push(Duration::from_millis(ms));
        }
        assert_eq!(s.p50(), Duration::from_millis(50));
        assert_eq!(s.p95(), Duration::from_millis(95));
    }
}
