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

    pub fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    /// p50, p95 and p99 with one sort, for large sample sets.
    pub fn percentiles(&self) -> [Duration; 3] {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        [0.50, 0.95, 0.99].map(|q| nearest_rank(&sorted, q))
    }

    /// Add every sample of `other`.
    pub fn extend(&mut self, other: Samples) {
        self.0.extend(other.0);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The value at quantile `q` of `sorted` (nearest rank); zero when empty.
fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Microseconds with one decimal, for tables of fast paths.
pub fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Print a markdown table: the first column left-aligned, the others
/// right-aligned (they hold figures), every column as wide as its widest
/// cell so the text lines up as well as it renders.
pub fn print_markdown(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.len());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                let w = widths.get(i).copied().unwrap_or(0);
                if i == 0 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(headers.iter().map(|h| h.to_string()).collect());
    let rule: Vec<String> = widths
        .iter()
        .enumerate()
        .map(|(i, w)| {
            if i == 0 {
                "-".repeat(w + 2)
            } else {
                format!("{}:", "-".repeat(w + 1))
            }
        })
        .collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        line(row.clone());
    }
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// sequence on every machine, so a scripted workload is the same in every
/// run without an external crate.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Prng {
        Prng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift: unbiased enough for workload scripts.
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
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
        assert_eq!(s.p99(), Duration::from_millis(99));
        let [p50, p95, p99] = s.percentiles();
        assert_eq!(
            (p50, p95, p99),
            (s.p50(), s.p95(), Duration::from_millis(99))
        );
    }

    #[test]
    fn prng_is_deterministic_and_bounded() {
        let (mut a, mut b) = (Prng::new(7), Prng::new(7));
        for _ in 0..1000 {
            let x = a.below(10);
            assert_eq!(x, b.below(10));
            assert!(x < 10);
        }
    }
}
