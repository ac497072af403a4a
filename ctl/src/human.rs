//! Numbers as people read them: `2h 3m 4s` for spans, `3.4ms` for latencies,
//! `12.3 MiB` for sizes, `86.5%` for rates.

/// A span of whole seconds, from the largest non-zero unit down to seconds:
/// `45s`, `3m 0s`, `2h 3m 4s`, `1d 0h 0m 5s`.
pub fn seconds(total: u64) -> String {
    let days = total / 86_400;
    let hours = total % 86_400 / 3_600;
    let minutes = total % 3_600 / 60;
    let secs = total % 60;
    if days > 0 {
        format!("{days}d {hours}h {minutes}m {secs}s")
    } else if hours > 0 {
        format!("{hours}h {minutes}m {secs}s")
    } else if minutes > 0 {
        format!("{minutes}m {secs}s")
    } else {
        format!("{secs}s")
    }
}

/// The daemon's uptime, counted in whole seconds as `uptime(1)` does.
pub fn uptime(ms: u64) -> String {
    seconds(ms / 1_000)
}

/// A latency with about three significant digits: `812µs`, `3.4ms`,
/// `812.3ms`, `1.20s`, and past a minute `2m 5s`.
pub fn latency(us: u64) -> String {
    if us < 1_000 {
        return format!("{us}µs");
    }
    // Integer rounding: floats would print 0.1 steps inexactly.
    let tenths_ms = (us + 50) / 100;
    if tenths_ms < 10_000 {
        return format!("{}.{}ms", tenths_ms / 10, tenths_ms % 10);
    }
    let hundredths_s = (us + 5_000) / 10_000;
    if hundredths_s < 6_000 {
        return format!("{}.{:02}s", hundredths_s / 100, hundredths_s % 100);
    }
    seconds((us + 500_000) / 1_000_000)
}

/// A size in binary units with one decimal: `512 B`, `3.0 KiB`,
/// `12.3 MiB`, `28.0 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut unit = 0;
    let mut scale = 1024u64;
    while unit + 1 < UNITS.len() && n >= scale * 1024 {
        scale *= 1024;
        unit += 1;
    }
    // Integer rounding to tenths, as `latency` does.
    let tenths = (u128::from(n) * 10 + u128::from(scale) / 2) / u128::from(scale);
    format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit])
}

/// A rate of 0 to 1 as a percentage with one decimal, `86.5%`; `-` when
/// there is none yet (a hit rate before any lookup).
pub fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(rate) => format!("{:.1}%", rate * 100.0),
        None => "-".to_string(),
    }
}

/// `1 client`, `2 clients`; `misses` and `entries` too.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        return format!("1 {noun}");
    }
    let consonant_y = noun
        .strip_suffix('y')
        .filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u']));
    match consonant_y {
        Some(stem) => format!("{n} {stem}ies"),
        None if noun.ends_with(['s', 'x']) || noun.ends_with("ch") || noun.ends_with("sh") => {
            format!("{n} {noun}es")
        }
        None => format!("{n} {noun}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024), "3.0 KiB");
        assert_eq!(bytes(12_897_484), "12.3 MiB");
        assert_eq!(bytes(28 << 30), "28.0 GiB");
    }

    #[test]
    fn spans_start_at_the_largest_non_zero_unit() {
        assert_eq!(seconds(0), "0s");
        assert_eq!(seconds(45), "45s");
        assert_eq!(seconds(180), "3m 0s");
        assert_eq!(seconds(7_384), "2h 3m 4s");
        assert_eq!(seconds(3_600), "1h 0m 0s");
        assert_eq!(seconds(86_405), "1d 0h 0m 5s");
        assert_eq!(seconds(90_061), "1d 1h 1m 1s");
    }

    #[test]
    fn uptime_counts_whole_seconds() {
        assert_eq!(uptime(0), "0s");
        assert_eq!(uptime(999), "0s");
        assert_eq!(uptime(59_999), "59s");
        assert_eq!(uptime(7_384_250), "2h 3m 4s");
    }

    #[test]
    fn latencies_below_a_millisecond_are_whole_microseconds() {
        assert_eq!(latency(0), "0µs");
        assert_eq!(latency(812), "812µs");
        assert_eq!(latency(999), "999µs");
    }

    #[test]
    fn latencies_below_a_second_are_milliseconds_to_a_tenth() {
        assert_eq!(latency(1_000), "1.0ms");
        assert_eq!(latency(3_400), "3.4ms");
        assert_eq!(latency(3_449), "3.4ms");
        assert_eq!(latency(3_450), "3.5ms");
        assert_eq!(latency(812_345), "812.3ms");
        assert_eq!(latency(999_949), "999.9ms");
    }

    #[test]
    fn latencies_that_round_up_move_to_the_next_unit() {
        assert_eq!(latency(999_950), "1.00s");
        assert_eq!(latency(59_994_999), "59.99s");
        assert_eq!(latency(59_995_000), "1m 0s");
    }

    #[test]
    fn latencies_of_seconds_have_two_decimals_then_become_spans() {
        assert_eq!(latency(1_200_000), "1.20s");
        assert_eq!(latency(12_345_678), "12.35s");
        assert_eq!(latency(125_400_000), "2m 5s");
    }

    #[test]
    fn rates_are_percentages_to_a_tenth_or_a_dash() {
        assert_eq!(percent(None), "-");
        assert_eq!(percent(Some(0.0)), "0.0%");
        assert_eq!(percent(Some(0.8653)), "86.5%");
        assert_eq!(percent(Some(1.0)), "100.0%");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(0, "client"), "0 clients");
        assert_eq!(count(1, "client"), "1 client");
        assert_eq!(count(2, "client"), "2 clients");
        assert_eq!(count(1, "miss"), "1 miss");
        assert_eq!(count(2, "miss"), "2 misses");
        assert_eq!(count(0, "entry"), "0 entries");
        assert_eq!(count(3, "key"), "3 keys");
        assert_eq!(count(2, "cached answer"), "2 cached answers");
    }
}
