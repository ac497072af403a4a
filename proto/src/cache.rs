//! The response cache's and batches' share of the protocol.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{Reply, Request, Response};

/// Longest `max_age_secs` or `cache_secs` a request may give: a day.
pub const MAX_CACHE_SECS: u64 = 86_400;

/// Most calls one [`BatchRequest`] may carry.
pub const MAX_BATCH_CALLS: usize = 256;

/// Most calls of one batch that run at once.
pub const MAX_BATCH_CONCURRENCY: u32 = 64;

/// An answer served from the daemon's cache rather than the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cached {
    /// How old the answer is: milliseconds since the host gave it (or last
    /// confirmed it unchanged).
    pub age_ms: u64,
    /// The answer, as the host gave it. Shared with the cache's entry, so
    /// serving it copies nothing (on the wire it is the `Response` itself).
    pub response: Arc<Response>,
}

/// Several requests in one, run concurrently; answered in call order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// The calls: host requests only (no admin requests, no batches), 1 to
    /// [`MAX_BATCH_CALLS`].
    #[serde(deserialize_with = "calls")]
    pub calls: Vec<Request>,
    /// Calls running at once, 1 to [`MAX_BATCH_CONCURRENCY`]. Default
    /// [`DEFAULT_CONCURRENCY`](Self::DEFAULT_CONCURRENCY) (8).
    pub concurrency: Option<u32>,
    /// After a call fails, start no more (those already running finish);
    /// the ones not started answer `None`.
    pub stop_on_error: bool,
}

impl BatchRequest {
    /// Default `concurrency`.
    pub const DEFAULT_CONCURRENCY: u32 = 8;
}

/// `calls` as decoded, with room reserved for at most a few up front (the
/// rest grows as calls are actually decoded): serde would reserve up to
/// 1 MiB for whatever length a frame claims, in a frame of a few bytes.
fn calls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Request>, D::Error> {
    struct Calls;
    impl<'de> serde::de::Visitor<'de> for Calls {
        type Value = Vec<Request>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of requests")
        }

        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Self::Value, A::Error> {
            let mut calls = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(16));
            while let Some(call) = seq.next_element()? {
                calls.push(call);
            }
            Ok(calls)
        }
    }
    d.deserialize_seq(Calls)
}

/// What a batch's calls came to, in call order: `None` for a call not
/// started because an earlier one failed under `stop_on_error`.
pub type BatchReplies = Vec<Option<Reply>>;

/// The cache's counters and contents (answer to `Cache`; part of `Stats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheStats {
    /// `[cache] enabled`.
    pub enabled: bool,
    /// Entries held now.
    pub entries: u64,
    /// Bytes the entries take, counted against `max_bytes`.
    pub bytes: u64,
    /// `[cache] max_bytes` in force (lower while memory is high).
    pub max_bytes: u64,
    /// `[cache] max_entries`.
    pub max_entries: u64,
    /// Answers served from the cache.
    pub hits: u64,
    /// Cacheable requests that went to the host.
    pub misses: u64,
    /// Hits confirmed with a cheap `stat` first (size and mtime unchanged).
    pub revalidations: u64,
    /// Entries pushed out to make room.
    pub evictions: u64,
    /// Entries dropped because a change made them stale, by reason.
    pub invalidations: Vec<Count>,
    /// Per host: entries, bytes, hits and misses.
    pub hosts: Vec<CacheScope>,
    /// Per op: entries, bytes, hits and misses.
    pub ops: Vec<CacheScope>,
}

/// A named count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// What was counted (`write_file`, `exec`, `reload`, ...).
    pub name: String,
    /// How many.
    pub count: u64,
}

/// The cache's share of one host or one op.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheScope {
    /// The host alias or op name.
    pub name: String,
    /// Entries held now.
    pub entries: u64,
    /// Bytes they take.
    pub bytes: u64,
    /// Answers served from the cache.
    pub hits: u64,
    /// Cacheable requests that went to the host.
    pub misses: u64,
}

impl CacheStats {
    /// Hits over hits and misses, 0 to 1; `None` before any lookup.
    pub fn hit_rate(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}
