//! Requests-per-second limits, per client connection and per host: token
//! buckets (GCRA, from `governor`) in front of the concurrency limits.
//! Over a limit is `Overloaded`, saying when the next request would pass.

use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use sshmcp_proto::{Error, ErrorKind};

use crate::config::LimitsSection;

/// One client connection's bucket (`[limits] client_rps`).
pub struct ClientRate(DefaultDirectRateLimiter);

impl std::fmt::Debug for ClientRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientRate")
    }
}

/// Every host's bucket (`[limits] host_rps`), shared by all clients.
pub struct HostRates(DefaultKeyedRateLimiter<String>);

fn quota(rps: u32, burst: u32) -> Option<Quota> {
    let rps = NonZeroU32::new(rps)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rps);
    Some(Quota::per_second(rps).allow_burst(burst))
}

impl ClientRate {
    /// The bucket for a new connection; `None` when the limit is off.
    pub fn new(limits: &LimitsSection) -> Option<Self> {
        quota(limits.client_rps, limits.client_burst).map(|q| ClientRate(RateLimiter::direct(q)))
    }

    /// Take a token, or say when the next one comes.
    pub fn check(&self, rps: u32) -> Result<(), Error> {
        self.0.check().map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            over(
                "this client",
                rps,
                "[limits] client_rps",
                wait.as_millis() as u64 + 1,
            )
        })
    }
}

impl HostRates {
    /// The buckets for all hosts; `None` when the limit is off.
    pub fn new(limits: &LimitsSection) -> Option<Self> {
        quota(limits.host_rps, limits.host_burst).map(|q| HostRates(RateLimiter::keyed(q)))
    }

    /// Take a token of `alias`'s bucket, or say when the next one comes.
    pub fn check(&self, alias: &str, rps: u32) -> Result<(), Error> {
        self.0.check_key(&alias.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            over(alias, rps, "[limits] host_rps", wait.as_millis() as u64 + 1)
        })
    }

    /// Forget buckets that are full again (housekeeping).
    pub fn tidy(&self) {
        self.0.retain_recent();
    }
}

fn over(who: &str, rps: u32, knob: &str, retry_ms: u64) -> Error {
    Error::new(
        ErrorKind::Overloaded,
        format!(
            "{who} is over its rate limit of {rps} requests per second; retry after {retry_ms} ms, \
             or raise {knob}"
        ),
    )
    .retry_after(retry_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_bucket_says_when_to_retry() {
        let limits = LimitsSection {
            client_rps: 2,
            client_burst: 3,
            ..LimitsSection::default()
        };
        let rate = ClientRate::new(&limits).expect("limit on");
        for _ in 0..3 {
            rate.check(2).expect("within the burst");
        }
        let err = rate.check(2).expect_err("past the burst");
        assert_eq!(err.kind, ErrorKind::Overloaded);
        let retry = err.retry_after_ms.expect("a retry-after");
        assert!((1..=501).contains(&retry), "{retry}");
        assert!(
            err.message.contains(&format!("retry after {retry} ms")),
            "{}",
            err.message
        );
        assert!(err.message.contains("client_rps"), "{}", err.message);
    }

    #[test]
    fn hosts_have_buckets_of_their_own_and_zero_turns_limits_off() {
        let limits = LimitsSection {
            host_rps: 1,
            host_burst: 1,
            ..LimitsSection::default()
        };
        let rates = HostRates::new(&limits).expect("limit on");
        rates.check("a", 1).expect("a's first");
        rates.check("b", 1).expect("b's first");
        assert!(rates.check("a", 1).is_err());
        assert!(ClientRate::new(&LimitsSection::default()).is_none());
        assert!(HostRates::new(&LimitsSection::default()).is_none());
    }
}
