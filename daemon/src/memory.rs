//! The memory cap: admission for large work, and a watchdog on RSS.
//!
//! `[daemon] memory_limit` bounds what the daemon may use. Work that needs
//! a large buffer (exec output, file transfers) asks [`Memory::admit`] for
//! its bytes first and holds the [`MemoryPermit`] while it runs; the
//! permits together may not exceed the large-work budget (half the cap).
//! A watchdog samples RSS: above the high watermark (90% of the cap) the
//! daemon is degraded, sheds what it can (every registered shedder, then
//! the allocator's free pages) and refuses new large work, until RSS falls
//! below the low watermark (75%). Refusals are `Overloaded`, so callers
//! retry. systemd's `MemoryHigh`/`MemoryMax` stay the outer fence.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sshmcp_proto::{Error, ErrorKind};
use tokio_util::sync::CancellationToken;

use crate::config::ByteSize;

/// How often the watchdog samples RSS.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// Something that can give memory back when the daemon is near its cap
/// (a cache dropping entries); returns the bytes it freed, roughly.
pub type Shedder = Box<dyn Fn() -> u64 + Send + Sync>;

/// The daemon's memory budget and its current use.
pub struct Memory {
    limit: u64,
    high: u64,
    low: u64,
    budget: u64,
    reserved: AtomicU64,
    rss: AtomicU64,
    degraded: AtomicBool,
    refused: AtomicU64,
    shedders: Mutex<Vec<(&'static str, Shedder)>>,
}

/// Bytes reserved for one piece of large work; released when dropped.
#[must_use = "the reservation is released when the permit is dropped"]
pub struct MemoryPermit {
    memory: Arc<Memory>,
    bytes: u64,
}

impl Drop for MemoryPermit {
    fn drop(&mut self) {
        self.memory.reserved.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// The figures `Stats` reports about the cap.
#[derive(Debug, Clone, Copy)]
pub struct MemorySnapshot {
    pub limit: u64,
    pub high_watermark: u64,
    pub reserved: u64,
    pub refused: u64,
}

impl Memory {
    /// A cap of `configured` bytes, clamped to physical memory (with a
    /// warning when that lowers it).
    pub fn new(configured: u64) -> Arc<Memory> {
        let physical = physical_memory();
        let limit = match physical {
            Some(phys) if phys < configured => {
                tracing::warn!(
                    "[daemon] memory_limit = {} is more than this machine's {} of memory; \
                     using {} instead",
                    ByteSize(configured),
                    mib(phys),
                    mib(phys)
                );
                phys
            }
            _ => configured,
        };
        let memory = Arc::new(Memory::with_limit(limit));
        memory.register_shedder(
            "allocator",
            Box::new(|| {
                let before = current_rss().unwrap_or(0);
                // SAFETY: mi_collect has no preconditions; `true` also
                // returns the free pages it holds to the OS.
                unsafe { libmimalloc_sys::mi_collect(true) };
                before.saturating_sub(current_rss().unwrap_or(before))
            }),
        );
        memory
    }

    fn with_limit(limit: u64) -> Memory {
        Memory {
            limit,
            high: limit / 10 * 9,
            low: limit / 4 * 3,
            budget: limit / 2,
            reserved: AtomicU64::new(0),
            rss: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            shedders: Mutex::new(Vec::new()),
        }
    }

    /// The cap in force, in bytes.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Reserve `bytes` for a piece of large work, or refuse with
    /// `Overloaded` (retriable) when the daemon is near its cap or the
    /// large-work budget is spent.
    pub fn admit(self: &Arc<Self>, bytes: u64) -> Result<MemoryPermit, Error> {
        let rss = self.rss.load(Ordering::Acquire);
        if self.degraded.load(Ordering::Acquire) {
            return Err(self.refuse(
                bytes,
                format!(
                    "its memory use ({}) passed the high watermark ({}, 90% of [daemon] \
                     memory_limit = {})",
                    mib(rss),
                    mib(self.high),
                    ByteSize(self.limit)
                ),
            ));
        }
        let mut reserved = self.reserved.load(Ordering::Acquire);
        loop {
            // RSS already holds part of what is reserved, so the two are not
            // added up: the budget bounds reservations, the watchdog RSS.
            let after = reserved.saturating_add(bytes);
            if after > self.budget {
                return Err(self.refuse(
                    bytes,
                    format!(
                        "{} is already reserved by work in progress, against a budget of {} \
                         for large work under [daemon] memory_limit = {}",
                        mib(reserved),
                        mib(self.budget),
                        ByteSize(self.limit)
                    ),
                ));
            }
            match self.reserved.compare_exchange_weak(
                reserved,
                after,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Ok(MemoryPermit {
                        memory: self.clone(),
                        bytes,
                    });
                }
                Err(now) => reserved = now,
            }
        }
    }

    /// Count `bytes` that are already allocated (a reply waiting for its
    /// client to read it) against the budget. Never refuses: the memory is
    /// in use whatever is decided, and counting it makes new large work
    /// wait for it instead.
    pub fn hold(self: &Arc<Self>, bytes: u64) -> MemoryPermit {
        self.reserved.fetch_add(bytes, Ordering::AcqRel);
        MemoryPermit {
            memory: self.clone(),
            bytes,
        }
    }

    fn refuse(&self, bytes: u64, why: String) -> Error {
        self.refused.fetch_add(1, Ordering::Relaxed);
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "sshmcpd refused work needing up to {}: {why}. Retry shortly, ask for less \
                 (e.g. a smaller max_output_bytes), or raise [daemon] memory_limit",
                mib(bytes)
            ),
        )
    }

    /// Register something that frees memory when the daemon is near its cap.
    pub fn register_shedder(&self, name: &'static str, shed: Shedder) {
        self.shedders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, shed));
    }

    /// Memory is above the high watermark and not yet back under the low.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Acquire)
    }

    /// Register `shed` to run before the shedders already registered: what
    /// is cheapest to lose (the response cache) goes first.
    pub fn register_shedder_first(&self, name: &'static str, shed: Shedder) {
        self.shedders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(0, (name, shed));
    }

    /// Why the daemon is degraded on memory's account, if it is.
    pub fn degraded_reason(&self) -> Option<String> {
        self.degraded.load(Ordering::Acquire).then(|| {
            format!(
                "memory high: {} in use, above 90% of the {} cap; new large work is refused",
                mib(self.rss.load(Ordering::Acquire)),
                mib(self.limit)
            )
        })
    }

    pub fn snapshot(&self) -> MemorySnapshot {
        MemorySnapshot {
            limit: self.limit,
            high_watermark: self.high,
            reserved: self.reserved.load(Ordering::Acquire),
            refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Take one RSS sample and act on it.
    pub fn sample(&self) {
        let Some(rss) = current_rss() else {
            return;
        };
        self.observe(rss);
    }

    fn observe(&self, rss: u64) {
        self.rss.store(rss, Ordering::Release);
        let degraded = self.degraded.load(Ordering::Acquire);
        if !degraded && rss >= self.high {
            self.degraded.store(true, Ordering::Release);
            tracing::warn!(
                rss = rss,
                limit = self.limit,
                "memory above the high watermark ({} of {}): shedding and refusing new large work",
                mib(rss),
                mib(self.limit)
            );
            self.shed();
        } else if degraded && rss < self.low {
            self.degraded.store(false, Ordering::Release);
            tracing::info!(
                rss = rss,
                "memory back below the low watermark ({}): accepting large work again",
                mib(self.low)
            );
        } else if degraded {
            self.shed();
        }
    }

    fn shed(&self) {
        for (name, shed) in self
            .shedders
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let freed = shed();
            tracing::info!(shedder = name, freed, "shed memory");
        }
    }

    /// Sample RSS until shutdown.
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sample(),
                () = shutdown.cancelled() => break,
            }
        }
    }
}

/// A size for messages: `57.6 MiB`, `21.2 GiB`.
pub fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / f64::from(1 << 30))
    } else {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// Physical memory in bytes.
pub fn physical_memory() -> Option<u64> {
    // SAFETY: sysconf has no preconditions.
    let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
    u64::try_from(pages).ok().map(|p| p * page_size())
}

/// This process's resident set size, from `/proc/self/statm`.
pub fn current_rss() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * page_size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_share_half_the_cap_and_are_returned_on_drop() {
        let memory = Arc::new(Memory::with_limit(100 << 20));
        memory.observe(10 << 20);
        let first = memory.admit(30 << 20).unwrap();
        let err = memory.admit(30 << 20).err().unwrap();
        assert_eq!(err.kind, ErrorKind::Overloaded);
        assert!(err.retriable);
        assert!(
            err.message.contains("memory_limit = 100M"),
            "{}",
            err.message
        );
        drop(first);
        assert!(memory.admit(30 << 20).is_ok());
    }

    #[test]
    fn high_rss_degrades_until_it_falls_below_the_low_watermark() {
        let memory = Arc::new(Memory::with_limit(100 << 20));
        let shed = Arc::new(AtomicU64::new(0));
        let counter = shed.clone();
        memory.register_shedder(
            "test",
            Box::new(move || {
                counter.fetch_add(1, Ordering::Relaxed);
                0
            }),
        );
        memory.observe(95 << 20);
        assert!(memory.degraded_reason().is_some());
        assert_eq!(shed.load(Ordering::Relaxed), 1);
        assert!(memory.admit(1).is_err());
        memory.observe(80 << 20);
        assert!(memory.degraded_reason().is_some(), "between the watermarks");
        memory.observe(70 << 20);
        assert!(memory.degraded_reason().is_none());
        assert!(memory.admit(1 << 20).is_ok());
    }

    #[test]
    fn rss_is_readable() {
        assert!(current_rss().unwrap() > 0);
    }
}
