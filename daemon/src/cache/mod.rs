//! The response cache (being built).

use sshmcp_proto::CacheStats;

/// The daemon's response cache.
#[derive(Default)]
pub struct Cache {}

impl Cache {
    /// Counters and contents, for `Cache`, `Stats` and `/metrics`.
    pub fn stats(&self) -> CacheStats {
        CacheStats::default()
    }
}
