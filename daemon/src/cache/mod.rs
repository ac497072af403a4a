//! The response cache: answers `stat`, `list_dir`, `read_file` (and `exec`
//! calls that opt in with `cache_secs`) from memory when that is safe, and
//! forgets what a change made through the daemon touched.
//!
//! It wraps ops in the dispatcher ([`Cache::around`]); no op knows of it.
//!
//! **Never stale after a change made through sshmcp.** Every change
//! (`write_file`, `mkdir`, `remove`, `rename`, upload `transfer` and
//! `sync`) drops, once it has run, each of the host's entries whose path is
//! the changed path, below it, or above it as far as that answer sees
//! ([`key::touches`]: a directory's `stat` its entries, a listing their
//! entries too; every ancestor for a change that may make parents),
//! compared both as written and as the server resolves it (`realpath`,
//! asked while the op runs), so a home-relative spelling or a symlinked
//! directory cannot hide an entry. A `write_file` that replaces a small
//! file keeps what it wrote as the file's read, unless another change on
//! the host overlapped it. A change drops the host's cached `exec`s too:
//! those whose inputs it touches when the parser could name them (`cat
//! FILE`, `ls DIR`, `wc -l < FILE`, kept as written and as resolved), every
//! one otherwise. An `exec` without
//! `cache_secs` is read by the policy's parser: one it shows to change
//! nothing drops nothing, one whose writes it can name (`sed -i`, `tee`,
//! `>>`, ...) is a change to those paths, and any other (or a job) may
//! change anything, so it moves the host's epoch: every older entry is
//! fetched anew before it is served (a `stat` of size and mtime would miss
//! a rewrite that keeps both).
//! A fetch that was in flight while a change landed does not store its
//! answer (the host's generation moved under it). A change whose op was
//! abandoned half way moves the epoch as well.
//!
//! **Changes made elsewhere** show within the TTLs: `stat` and `list_dir`
//! answers live `[cache] stat_ttl_secs` / `list_dir_ttl_secs`; a
//! `read_file` answer older than `read_file_fresh_ms` is confirmed with a
//! `stat` (size and mtime) first. SFTP mtimes have 1-second resolution, so
//! a file whose mtime was within two seconds of the read could change again
//! without its mtime moving: such a "racy" answer is read anew instead.
//!
//! **Bounded.** Entries weigh their bytes, and at least `max_bytes /
//! max_entries`, so both bounds hold with one weight; the store
//! (`quick_cache`, S3-FIFO) evicts past them. Under memory pressure the
//! cache is the first thing shed, and stores nothing until memory is back.
//! Concurrent identical misses make one remote call: the others wait for
//! its answer.

mod key;

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use quick_cache::Lifecycle;
use quick_cache::sync::Cache as Store;
use sshmcp_proto::{
    CacheScope, CacheStats, Cached, Count, Error, ErrorKind, FileContent, FileKind,
    ReadFileRequest, Reply, Request, Response,
};

use crate::config::CacheSection;
use crate::files::remote;
use crate::pool::Host;
use crate::pool::sftp::SESSION_WAIT;

pub use key::Kind;
use key::{Class, Content, Key, Reach, What};

/// Bytes an entry costs beyond its answer and key (the entry, the store's
/// slot, the answer's own fields).
const ENTRY_OVERHEAD: u64 = 256;

/// A `read_file` answer whose file changed this close to the read (in
/// seconds) could change again without its mtime moving.
const RACY_SECS: u64 = 2;

/// How long a miss waits for a `stat` or `realpath` it asks on the side.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

type EntryStore = Store<Key, Arc<Entry>, Weight, RandomState, Evictions>;

/// The daemon's response cache.
pub struct Cache {
    store: RwLock<Arc<EntryStore>>,
    settings: RwLock<Settings>,
    hosts: Mutex<HashMap<Arc<str>, Arc<HostCache>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    revalidations: AtomicU64,
    evictions: Arc<AtomicU64>,
    invalidations: Mutex<BTreeMap<&'static str, u64>>,
    clock: Instant,
}

#[derive(Debug, Clone)]
struct Settings {
    enabled: bool,
    /// Store nothing new (memory is high); set per request.
    hold_back: bool,
    max_bytes: u64,
    max_entries: u64,
    stat_ttl: Duration,
    list_dir_ttl: Duration,
    read_file_ttl: Duration,
    read_file_fresh: Duration,
    exec_max_ttl: Duration,
    /// The most one `read_file` reply carries (from `max_frame`).
    max_read: u64,
}

impl Settings {
    fn from(section: &CacheSection, memory_limit: u64, max_read: u64) -> Self {
        Settings {
            max_read,
            enabled: section.enabled,
            hold_back: false,
            max_bytes: section.max_bytes.0.min(memory_limit / 8),
            max_entries: section.max_entries.max(1),
            stat_ttl: Duration::from_secs(section.stat_ttl_secs),
            list_dir_ttl: Duration::from_secs(section.list_dir_ttl_secs),
            read_file_ttl: Duration::from_secs(section.read_file_ttl_secs),
            read_file_fresh: Duration::from_millis(section.read_file_fresh_ms),
            exec_max_ttl: Duration::from_secs(section.exec_max_ttl_secs),
        }
    }

    fn ttl(&self, kind: Kind, asked: Option<u64>) -> Duration {
        match kind {
            Kind::Stat => self.stat_ttl,
            Kind::ListDir => self.list_dir_ttl,
            Kind::ReadFile => self.read_file_ttl,
            Kind::Exec => Duration::from_secs(asked.unwrap_or(0)).min(self.exec_max_ttl),
        }
    }

    /// The least weight an entry has, so `max_entries` holds through the
    /// byte bound.
    fn min_weight(&self) -> u64 {
        (self.max_bytes / self.max_entries).max(1)
    }

    fn store(&self, evictions: Arc<AtomicU64>) -> EntryStore {
        let options = quick_cache::OptionsBuilder::new()
            .estimated_items_capacity(self.max_entries.min(1 << 20) as usize)
            .weight_capacity(self.max_bytes.max(1))
            .build()
            .expect("cache options are valid");
        Store::with_options(
            options,
            Weight {
                min: self.min_weight(),
            },
            RandomState::new(),
            Evictions(evictions),
        )
    }
}

/// An entry's weight: its bytes, at least `min`.
#[derive(Clone)]
struct Weight {
    min: u64,
}

impl quick_cache::Weighter<Key, Arc<Entry>> for Weight {
    fn weight(&self, _: &Key, entry: &Arc<Entry>) -> u64 {
        entry.bytes.max(self.min)
    }
}

/// Counts what the store evicts to make room.
#[derive(Clone)]
struct Evictions(Arc<AtomicU64>);

impl Lifecycle<Key, Arc<Entry>> for Evictions {
    type RequestState = ();

    fn on_evict(&self, (): &mut (), _: Key, _: Arc<Entry>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// An answer as the cache keeps it: a hit hands out the same response.
type Kept = Result<Arc<Response>, Error>;

/// One cached answer.
struct Entry {
    reply: Kept,
    /// The path as the server resolved it (absolute), when it could.
    resolved: Option<String>,
    /// For an `exec`: the paths its output depends on, as written and as
    /// resolved, when the parser could name them all (else any change to
    /// the host drops it).
    inputs: Option<Vec<String>>,
    /// When the host gave the answer, on the cache's clock (ms).
    fetched_ms: u64,
    /// When the answer was last known good: fetched or confirmed (ms).
    checked_ms: AtomicU64,
    /// The host's epoch when the answer was last known good.
    epoch: AtomicU64,
    /// For `read_file`: the file's size and mtime when it was read, and
    /// whether the mtime was too recent to trust.
    file: Option<Signature>,
    ttl: Duration,
    bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    size: u64,
    mtime: u64,
    racy: bool,
}

/// What the cache keeps per host.
#[derive(Default)]
struct HostCache {
    /// Moves with every change; a fetch stores its answer only if it did
    /// not move while the fetch ran.
    generation: AtomicU64,
    /// Moves when anything on the host may have changed (an `exec`).
    epoch: AtomicU64,
    /// Changes running on the host now.
    changes_running: AtomicU64,
    /// Whose login directory relative paths are below, and where it is.
    home: Mutex<Option<(String, String)>>,
    /// Held to move `generation` and drop entries, and to store an answer:
    /// a change and a store never interleave.
    changing: Mutex<()>,
    hits: [AtomicU64; 4],
    misses: [AtomicU64; 4],
}

/// What to do with an entry found in the store.
enum Verdict {
    Serve,
    Confirm,
    Refetch,
}

impl Default for Cache {
    fn default() -> Self {
        Cache::new(
            &CacheSection::default(),
            u64::MAX,
            sshmcp_proto::max_read_per_reply(sshmcp_proto::DEFAULT_MAX_FRAME),
        )
    }
}

impl Cache {
    /// A cache configured by `[cache]`, its budget within `memory_limit`;
    /// `max_read` is the most one `read_file` reply carries.
    pub fn new(section: &CacheSection, memory_limit: u64, max_read: u64) -> Self {
        let settings = Settings::from(section, memory_limit, max_read);
        let evictions = Arc::new(AtomicU64::new(0));
        Cache {
            store: RwLock::new(Arc::new(settings.store(evictions.clone()))),
            settings: RwLock::new(settings),
            hosts: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            revalidations: AtomicU64::new(0),
            evictions,
            invalidations: Mutex::new(BTreeMap::new()),
            clock: Instant::now(),
        }
    }

    /// Apply a reloaded `[cache]`: TTLs at once; a new size bound starts
    /// an empty store.
    pub fn configure(&self, section: &CacheSection, memory_limit: u64, max_read: u64) {
        let new = Settings::from(section, memory_limit, max_read);
        let mut settings = self.settings.write().unwrap_or_else(|p| p.into_inner());
        if (new.max_bytes, new.max_entries, new.enabled)
            != (settings.max_bytes, settings.max_entries, settings.enabled)
        {
            let dropped = self.current().len() as u64;
            *self.store.write().unwrap_or_else(|p| p.into_inner()) =
                Arc::new(new.store(self.evictions.clone()));
            self.count_invalidations("reload", dropped);
        }
        *settings = new;
    }

    fn current(&self) -> Arc<EntryStore> {
        self.store.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn settings(&self) -> Settings {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    fn host(&self, alias: &str) -> Arc<HostCache> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(host) = hosts.get(alias) {
            return host.clone();
        }
        let host = Arc::new(HostCache::default());
        hosts.insert(Arc::from(alias), host.clone());
        host
    }

    /// Something changed `alias` behind the requests the cache saw (a job
    /// ended there): every older entry is fetched anew before it is served.
    pub fn host_changed(&self, alias: &str, reason: &'static str) {
        let state = self.host(alias);
        let _changing = state.changing.lock().unwrap_or_else(|p| p.into_inner());
        state.generation.fetch_add(1, Ordering::AcqRel);
        state.epoch.fetch_add(1, Ordering::AcqRel);
        self.count_invalidations(reason, 1);
    }

    /// Run `request` (on `host`, when it targets one) through `run`,
    /// answering it from the cache when that is safe and dropping what it
    /// changes. While `hold_back` (memory is high) nothing new is stored;
    /// while `live` (a job runs on the host and may change anything at any
    /// moment) reads neither use nor fill the cache.
    pub async fn around<F, Fut>(
        &self,
        host: Option<&Arc<Host>>,
        hold_back: bool,
        live: bool,
        request: Request,
        run: F,
    ) -> Reply
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Reply>,
    {
        let mut settings = self.settings();
        let Some(host) = host.filter(|_| settings.enabled) else {
            return run(request).await;
        };
        settings.hold_back = hold_back;
        match key::classify(&request) {
            Class::Read { .. } if live => run(request).await,
            Class::Read { what, max_age_secs } => {
                let relative = what.path().is_some_and(|p| !p.starts_with('/'));
                let home = if relative {
                    self.home(host, true).await
                } else {
                    None
                };
                let what = match home {
                    Some(home) => what.rebased(&home),
                    None => what,
                };
                // A home of `/` puts `proc/...` in a kernel view.
                if what.path().is_some_and(|p| !key::cacheable_path(p)) {
                    return run(request).await;
                }
                let key = key_of(host, what);
                self.read(host, &settings, key, max_age_secs, request, run)
                    .await
            }
            Class::Change {
                reason,
                mut paths,
                deep,
                content,
            } => {
                // Answers about relative paths are kept under the home
                // (once it is known), so the change names both spellings.
                let home = self.home(host, false).await;
                if let Some(home) = &home {
                    let rebased: Vec<String> =
                        paths.iter().filter_map(|p| key::rebase(p, home)).collect();
                    paths.extend(rebased);
                }
                // What a write leaves is kept only where a read would be.
                let content = content
                    .filter(|c| !live && !hold_back && c.data.len() as u64 <= settings.max_read)
                    .map(|c| Content {
                        key_path: home
                            .as_deref()
                            .and_then(|home| key::rebase(&c.key_path, home))
                            .unwrap_or(c.key_path),
                        ..c
                    });
                self.change(host, &settings, reason, paths, deep, content, run(request))
                    .await
            }
            Class::ChangeAll { reason } => {
                let moved = Moved::new(self, &host.resolved.alias, reason);
                let reply = run(request).await;
                moved.finish();
                reply
            }
            Class::Other => run(request).await,
        }
    }

    async fn read<F, Fut>(
        &self,
        host: &Arc<Host>,
        settings: &Settings,
        key: Key,
        max_age_secs: Option<u64>,
        request: Request,
        run: F,
    ) -> Reply
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Reply>,
    {
        let kind = key.what.kind();
        let state = self.host(&key.alias);
        let store = self.current();
        // `max_age_secs: 0` goes straight to the host, and what it says
        // replaces the entry; otherwise a miss holds the key's guard, so
        // identical misses wait for this one's answer.
        let guard = if max_age_secs == Some(0) && kind != Kind::Exec {
            None
        } else if let Some(part) = self.part_of_whole(settings, &state, &store, &key, max_age_secs)
        {
            return part;
        } else {
            loop {
                match store.get_value_or_guard_async(&key).await {
                    Ok(entry) => match self.judge(settings, &state, &entry, kind, max_age_secs) {
                        Verdict::Serve => return self.hit(&state, kind, &entry),
                        Verdict::Confirm => {
                            let epoch = state.epoch.load(Ordering::Acquire);
                            if self.confirm(host, &key, &entry).await {
                                entry.checked_ms.store(self.now_ms(), Ordering::Release);
                                entry.epoch.fetch_max(epoch, Ordering::AcqRel);
                                self.revalidations.fetch_add(1, Ordering::Relaxed);
                                return self.hit(&state, kind, &entry);
                            }
                            store.remove_if(&key, |e| Arc::ptr_eq(e, &entry));
                        }
                        Verdict::Refetch => {
                            store.remove_if(&key, |e| Arc::ptr_eq(e, &entry));
                        }
                    },
                    Err(guard) => break Some(guard),
                }
            }
        };
        self.fetch(
            host,
            settings,
            &state,
            &store,
            key,
            max_age_secs,
            guard,
            request,
            run,
        )
        .await
    }

    /// A miss: ask the host (with whatever the entry needs asked on the
    /// side), answer, and store the answer if nothing changed meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn fetch<'s, F, Fut>(
        &self,
        host: &Arc<Host>,
        settings: &Settings,
        state: &HostCache,
        store: &'s EntryStore,
        key: Key,
        max_age_secs: Option<u64>,
        guard: Option<Guard<'s>>,
        request: Request,
        run: F,
    ) -> Reply
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Reply>,
    {
        let kind = key.what.kind();
        state.misses[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.misses.fetch_add(1, Ordering::Relaxed);
        let generation = state.generation.load(Ordering::Acquire);
        let epoch = state.epoch.load(Ordering::Acquire);
        let fetched_ms = self.now_ms();
        let mut inputs = None;
        let (reply, resolved, file) = match key.what.path() {
            // Only an exec names no path.
            None => {
                let reply;
                (reply, inputs) = tokio::join!(run(request), exec_inputs(host, &key.what));
                (reply, None, None)
            }
            Some(path) if kind == Kind::ReadFile => {
                // The file's signature is taken before the read, so a change
                // racing the read can only make the entry look older.
                let (file, resolved) =
                    tokio::join!(file_signature(host, path), resolve(host, path));
                (run(request).await, resolved, file)
            }
            Some(path) => {
                let (reply, resolved) = tokio::join!(run(request), resolve(host, path));
                (reply, resolved, None)
            }
        };
        // A missing path resolves through its directory, so a change made
        // under another spelling of it still finds the entry.
        let resolved = match (resolved, &reply, key.what.path()) {
            (None, Err(e), Some(path)) if e.kind == ErrorKind::NotFound => {
                resolve_existing(host, path).await
            }
            (resolved, _, _) => resolved,
        };
        if settings.hold_back || !Self::storable(&key, &reply, resolved.as_deref(), file) {
            return reply;
        }
        let entry = Arc::new(Entry {
            bytes: ENTRY_OVERHEAD + key.what.bytes() as u64 + reply_bytes(reply.as_ref()),
            reply: reply.clone().map(Arc::new),
            resolved,
            inputs,
            fetched_ms,
            checked_ms: AtomicU64::new(fetched_ms),
            epoch: AtomicU64::new(epoch),
            file: file.flatten(),
            ttl: settings.ttl(kind, max_age_secs),
        });
        let _changing = state.changing.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation.load(Ordering::Acquire) == generation {
            match guard {
                Some(guard) => {
                    let _ = guard.insert(entry);
                }
                None => put(store, key, entry),
            }
        }
        reply
    }

    /// Whether `reply` may be kept at all.
    fn storable(
        key: &Key,
        reply: &Reply,
        resolved: Option<&str>,
        file: Option<Option<Signature>>,
    ) -> bool {
        if resolved.is_some_and(|r| !key::cacheable_path(r)) {
            return false;
        }
        match reply {
            Err(e) => e.kind == ErrorKind::NotFound && key.what.kind() != Kind::Exec,
            // Devices, sockets and FIFOs change by themselves.
            Ok(Response::Stat(stat)) => stat.kind != FileKind::Other,
            Ok(Response::ReadFile(content)) => {
                // Kept only with a signature that matches what was read.
                matches!(file, Some(Some(sig)) if sig.size == content.size)
            }
            Ok(Response::Exec(out)) => out.signal.is_none(),
            Ok(Response::ListDir(_)) => true,
            Ok(_) => false,
        }
    }

    fn judge(
        &self,
        settings: &Settings,
        state: &HostCache,
        entry: &Entry,
        kind: Kind,
        max_age_secs: Option<u64>,
    ) -> Verdict {
        let now = self.now_ms();
        if now.saturating_sub(entry.fetched_ms) >= entry.ttl.as_millis() as u64 {
            return Verdict::Refetch;
        }
        let age =
            Duration::from_millis(now.saturating_sub(entry.checked_ms.load(Ordering::Acquire)));
        let current = entry.epoch.load(Ordering::Acquire) >= state.epoch.load(Ordering::Acquire);
        let young = match (kind, max_age_secs) {
            (_, Some(secs)) => age <= Duration::from_secs(secs),
            (Kind::ReadFile, None) => age <= settings.read_file_fresh,
            (_, None) => true,
        };
        // Past an epoch move (an exec or a job may have rewritten the file
        // keeping its size and mtime) only a fresh read is safe; an answer
        // that is merely old is confirmed by a stat of size and mtime.
        match (current, young, kind) {
            (true, true, _) => Verdict::Serve,
            (true, false, Kind::ReadFile) if entry.reply.is_ok() => match entry.file {
                Some(sig) if !sig.racy => Verdict::Confirm,
                _ => Verdict::Refetch,
            },
            _ => Verdict::Refetch,
        }
    }

    /// The file behind a `read_file` entry has the size and mtime it had
    /// when it was read.
    async fn confirm(&self, host: &Arc<Host>, key: &Key, entry: &Entry) -> bool {
        let (Some(path), Some(sig)) = (key.what.path(), entry.file) else {
            return false;
        };
        matches!(file_signature(host, path).await, Some(Some(now)) if now.size == sig.size && now.mtime == sig.mtime && !now.racy)
    }

    /// The login directory of `host`'s login, below which relative paths
    /// are: known once the server has been asked (`realpath .`), which a
    /// `learn`ing call does first (once per login).
    async fn home(&self, host: &Arc<Host>, learn: bool) -> Option<String> {
        let state = self.host(&host.resolved.alias);
        let who = identity(host);
        if let Some((whose, home)) = &*state.home.lock().unwrap_or_else(|p| p.into_inner())
            && *whose == who
        {
            return Some(home.clone());
        }
        if !learn {
            return None;
        }
        let home = resolve(host, ".").await.filter(|h| h.starts_with('/'))?;
        *state.home.lock().unwrap_or_else(|p| p.into_inner()) = Some((who, home.clone()));
        Some(home)
    }

    /// A `read_file` of part of a file (the shim's pages), answered from a
    /// kept read of the whole file when that one may be served as it is.
    fn part_of_whole(
        &self,
        settings: &Settings,
        state: &HostCache,
        store: &EntryStore,
        key: &Key,
        max_age_secs: Option<u64>,
    ) -> Option<Reply> {
        let What::ReadFile {
            path,
            offset,
            length,
        } = &key.what
        else {
            return None;
        };
        if *offset == 0 && length.is_none() {
            return None;
        }
        let whole = Key {
            what: What::whole_file(path.clone()),
            ..key.clone()
        };
        let entry = store.get(&whole)?;
        let Ok(Response::ReadFile(content)) = entry.reply.as_deref() else {
            return None;
        };
        let judged = self.judge(settings, state, &entry, Kind::ReadFile, max_age_secs);
        if content.truncated || !matches!(judged, Verdict::Serve) {
            return None;
        }
        // As the op cuts it: from `offset`, at most `length`, never past
        // the end.
        let start = (*offset).min(content.size);
        let end = offset
            .saturating_add(length.unwrap_or(ReadFileRequest::DEFAULT_MAX_READ))
            .min(content.size)
            .max(start);
        let part = FileContent {
            path: content.path.clone(),
            data: content.data[start as usize..end as usize].to_vec(),
            offset: *offset,
            size: content.size,
            truncated: end < content.size,
        };
        let part = Ok(Arc::new(Response::ReadFile(part)));
        Some(self.answer(state, Kind::ReadFile, &entry, part))
    }

    fn hit(&self, state: &HostCache, kind: Kind, entry: &Entry) -> Reply {
        self.answer(state, kind, entry, entry.reply.clone())
    }

    /// `reply`, from `entry`, as a hit.
    fn answer(&self, state: &HostCache, kind: Kind, entry: &Entry, reply: Kept) -> Reply {
        state.hits[kind.index()].fetch_add(1, Ordering::Relaxed);
        self.hits.fetch_add(1, Ordering::Relaxed);
        let age_ms = self
            .now_ms()
            .saturating_sub(entry.checked_ms.load(Ordering::Acquire));
        match reply {
            Ok(response) => Ok(Response::Cached(Cached { age_ms, response })),
            // An error has no `cached` flag: its message says it.
            Err(mut e) => {
                e.message = format!(
                    "{} (answered from the cache, {age_ms} ms old; max_age_secs: 0 asks the host)",
                    e.message
                );
                Err(e)
            }
        }
    }

    /// Run a change to `paths` on `host`, then drop what it touched. What a
    /// write left in its file (`content`) is kept as that file's read when
    /// no other change on the host ran alongside it.
    #[allow(clippy::too_many_arguments)]
    async fn change(
        &self,
        host: &Arc<Host>,
        settings: &Settings,
        reason: &'static str,
        paths: Vec<String>,
        deep: bool,
        content: Option<Content>,
        work: impl Future<Output = Reply>,
    ) -> Reply {
        let moved = Moved::new(self, &host.resolved.alias, reason);
        // Where the server puts each path, asked while the change runs:
        // the path itself (through a symlink), and its directory (which
        // still resolves when the path is gone).
        let resolving = futures_util::future::join_all(paths.iter().map(|path| async move {
            let dir = remote::parent(path);
            let (itself, dir) = tokio::join!(resolve(host, path), resolve(host, dir));
            (
                itself,
                dir.map(|d| remote::join(&d, remote::file_name(path))),
            )
        }));
        let (reply, resolved) = tokio::join!(work, resolving);
        let mut scope = Vec::new();
        let mut first = None;
        for (path, (itself, via_dir)) in paths.iter().zip(resolved) {
            if itself.is_none() && via_dir.is_none() {
                // Neither existed before the change (a new directory tree):
                // resolve what exists now, or its nearest ancestor.
                scope.extend(resolve_existing(host, path).await);
            }
            first = first.or_else(|| itself.clone().or_else(|| via_dir.clone()));
            scope.extend(itself);
            scope.extend(via_dir);
        }
        scope.extend(paths);
        let written = match (&reply, content) {
            (Ok(Response::WriteFile(_)), Some(content)) => {
                let what = What::whole_file(content.key_path.clone());
                Some((key_of(host, what), self.written(settings, content, first)))
            }
            _ => None,
        };
        moved.forget(scope, deep, written);
        reply
    }

    /// The entry a read of the whole file would make right after a write
    /// of `content`: its mtime is this second's, so past
    /// `read_file_fresh_ms` it is read anew rather than confirmed.
    fn written(
        &self,
        settings: &Settings,
        content: Content,
        resolved: Option<String>,
    ) -> Arc<Entry> {
        let size = content.data.len() as u64;
        // The key holds the path once more.
        let key_bytes = content.path.len() as u64;
        let reply: Kept = Ok(Arc::new(Response::ReadFile(FileContent {
            path: content.path,
            data: content.data,
            offset: 0,
            size,
            truncated: false,
        })));
        let now = self.now_ms();
        let entry = Entry {
            bytes: ENTRY_OVERHEAD + key_bytes + reply_bytes(reply.as_deref()),
            reply,
            resolved,
            inputs: None,
            fetched_ms: now,
            checked_ms: AtomicU64::new(now),
            // Set when it is stored.
            epoch: AtomicU64::new(0),
            file: Some(Signature {
                size,
                mtime: 0,
                racy: true,
            }),
            ttl: settings.ttl(Kind::ReadFile, None),
        };
        Arc::new(entry)
    }

    /// Drop the host's entries a change to `scope` (`deep`: and to missing
    /// directories above it) may have changed; returns how many went.
    fn drop_related(&self, alias: &str, scope: &[String], deep: bool) -> u64 {
        self.remove_where(|key, entry| {
            &*key.alias == alias
                && match key.what.path() {
                    // An exec whose inputs are known goes only when one of
                    // them changed.
                    None => entry.inputs.as_ref().is_none_or(|inputs| {
                        inputs
                            .iter()
                            .any(|input| scope.iter().any(|changed| key::related(changed, input)))
                    }),
                    Some(path) => {
                        let reach = Reach::of(&key.what);
                        scope.iter().any(|changed| {
                            key::touches(changed, path, reach, deep)
                                || entry
                                    .resolved
                                    .as_deref()
                                    .is_some_and(|r| key::touches(changed, r, reach, deep))
                        })
                    }
                }
        })
    }

    /// Drop the entries `doomed` picks; returns how many went.
    fn remove_where(&self, doomed: impl Fn(&Key, &Entry) -> bool) -> u64 {
        let store = self.current();
        let keys: Vec<Key> = store
            .iter()
            .filter(|(key, entry)| doomed(key, entry))
            .map(|(key, _)| key)
            .collect();
        keys.iter()
            .filter(|key| store.remove(*key).is_some())
            .count() as u64
    }

    fn count_invalidations(&self, reason: &'static str, n: u64) {
        if n > 0 {
            *self
                .invalidations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(reason)
                .or_default() += n;
        }
    }

    /// Drop every entry, or one host's; returns how many went.
    pub fn clear(&self, alias: Option<&str>, reason: &'static str) -> u64 {
        let store = self.current();
        let dropped = match alias {
            None => {
                let n = store.len() as u64;
                store.clear();
                n
            }
            Some(alias) => self.remove_where(|key, _| &*key.alias == alias),
        };
        // Fetches in flight started before the clear: keep them out.
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        for (name, state) in hosts.iter() {
            if alias.is_none_or(|a| a == &**name) {
                let _changing = state.changing.lock().unwrap_or_else(|p| p.into_inner());
                state.generation.fetch_add(1, Ordering::AcqRel);
            }
        }
        self.count_invalidations(reason, dropped);
        dropped
    }

    /// Memory is high: drop everything (the dispatcher stores nothing new
    /// until memory is back). Returns the bytes freed, roughly.
    pub fn shed(&self) -> u64 {
        let bytes = self.current().iter().map(|(_, entry)| entry.bytes).sum();
        self.clear(None, "memory");
        bytes
    }

    /// Counters and contents, for `Cache`, `Stats` and `/metrics`.
    pub fn stats(&self) -> CacheStats {
        let settings = self.settings();
        let store = self.current();
        let mut hosts: BTreeMap<String, CacheScope> = BTreeMap::new();
        let mut ops: BTreeMap<&'static str, CacheScope> = BTreeMap::new();
        let mut entries = 0;
        let mut bytes = 0;
        for (key, entry) in store.iter() {
            entries += 1;
            bytes += entry.bytes;
            for scope in [
                hosts.entry(key.alias.to_string()).or_default(),
                ops.entry(key.what.kind().name()).or_default(),
            ] {
                scope.entries += 1;
                scope.bytes += entry.bytes;
            }
        }
        for (alias, state) in self.hosts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            for kind in Kind::ALL {
                let hits = state.hits[kind.index()].load(Ordering::Relaxed);
                let misses = state.misses[kind.index()].load(Ordering::Relaxed);
                if hits + misses == 0 {
                    continue;
                }
                for scope in [
                    hosts.entry(alias.to_string()).or_default(),
                    ops.entry(kind.name()).or_default(),
                ] {
                    scope.hits += hits;
                    scope.misses += misses;
                }
            }
        }
        let named = |map: BTreeMap<String, CacheScope>| {
            map.into_iter()
                .map(|(name, scope)| CacheScope { name, ..scope })
                .collect()
        };
        CacheStats {
            enabled: settings.enabled,
            entries,
            bytes,
            max_bytes: settings.max_bytes,
            max_entries: settings.max_entries,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            revalidations: self.revalidations.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            invalidations: self
                .invalidations
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(name, count)| Count {
                    name: name.to_string(),
                    count: *count,
                })
                .collect(),
            hosts: named(hosts),
            ops: named(ops.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
        }
    }
}

type Guard<'s> =
    quick_cache::sync::PlaceholderGuard<'s, Key, Arc<Entry>, Weight, RandomState, Evictions>;

/// A change in progress on a host. When it is finished the touched entries
/// go; when it is abandoned half way (its future dropped), or when it could
/// have touched anything, the host's epoch moves so every older entry is
/// fetched anew before it is served again.
struct Moved<'c> {
    cache: &'c Cache,
    alias: &'c str,
    state: Arc<HostCache>,
    reason: &'static str,
    /// The host's generation when the change began.
    generation: u64,
    done: bool,
}

impl<'c> Moved<'c> {
    fn new(cache: &'c Cache, alias: &'c str, reason: &'static str) -> Self {
        let state = cache.host(alias);
        let generation = {
            let _changing = state.changing.lock().unwrap_or_else(|p| p.into_inner());
            state.changes_running.fetch_add(1, Ordering::AcqRel);
            state.generation.load(Ordering::Acquire)
        };
        Moved {
            cache,
            alias,
            state,
            reason,
            generation,
            done: false,
        }
    }

    /// The change is over; drop the entries it may have changed, and keep
    /// what it wrote (`written`) if no other change ran while it did: one
    /// that overlapped could have landed after it.
    fn forget(mut self, scope: Vec<String>, deep: bool, written: Option<(Key, Arc<Entry>)>) {
        self.done = true;
        let _changing = self
            .state
            .changing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let alone = self.state.generation.load(Ordering::Acquire) == self.generation
            && self.state.changes_running.load(Ordering::Acquire) == 1;
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        let dropped = self.cache.drop_related(self.alias, &scope, deep);
        self.cache.count_invalidations(self.reason, dropped);
        if let Some((key, entry)) = written.filter(|_| alone) {
            entry
                .epoch
                .store(self.state.epoch.load(Ordering::Acquire), Ordering::Release);
            put(&self.cache.current(), key, entry);
        }
    }

    /// The change is over and may have touched anything on the host.
    fn finish(self) {
        // Dropping moves the epoch.
    }
}

impl Drop for Moved<'_> {
    fn drop(&mut self) {
        let _changing = self
            .state
            .changing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.state.changes_running.fetch_sub(1, Ordering::AcqRel);
        if self.done {
            return;
        }
        self.state.generation.fetch_add(1, Ordering::AcqRel);
        self.state.epoch.fetch_add(1, Ordering::AcqRel);
        self.cache.count_invalidations(self.reason, 1);
    }
}

/// Store `entry` under `key`, in place of any older answer. The store
/// reports a replaced value as evicted, so the old one is removed first:
/// the evictions counter counts only entries pushed out to make room.
fn put(store: &EntryStore, key: Key, entry: Arc<Entry>) {
    store.remove(&key);
    store.insert(key, entry);
}

/// The key of `what` on `host`.
fn key_of(host: &Host, what: What) -> Key {
    Key {
        alias: Arc::from(host.resolved.alias.as_str()),
        identity: Arc::from(identity(host).as_str()),
        what,
    }
}

/// `user@hostname:port`: whose answers these are.
fn identity(host: &Host) -> String {
    let r = &host.resolved;
    format!("{}@{}:{}", r.user, r.hostname, r.port)
}

/// Bytes of the answer itself.
fn reply_bytes(reply: Result<&Response, &Error>) -> u64 {
    let bytes = match reply {
        Err(e) => e.message.len(),
        Ok(Response::Stat(s)) => s.path.len() + s.link_target.as_ref().map_or(0, String::len) + 64,
        Ok(Response::ListDir(l)) => {
            l.path.len()
                + l.entries
                    .iter()
                    .map(|e| e.path.len() + e.link_target.as_ref().map_or(0, String::len) + 64)
                    .sum::<usize>()
        }
        Ok(Response::ReadFile(c)) => c.path.len() + c.data.len(),
        Ok(Response::Exec(o)) => o.stdout.len() + o.stderr.len() + 64,
        Ok(_) => 0,
    };
    bytes as u64
}

/// Where the server puts `path` (`realpath`), or `None` when it cannot
/// say (the path is missing, the session failed).
async fn resolve(host: &Arc<Host>, path: &str) -> Option<String> {
    let probe = async {
        let sftp = host.sftp(Instant::now() + SESSION_WAIT).await.ok()?;
        let name = sftp.raw().realpath(path).await.ok()?;
        name.files
            .into_iter()
            .next()
            .map(|f| key::normalize(&f.filename))
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()
        .flatten()
}

/// The paths a cached `exec` reads, as written and as the server resolves
/// them, when the parser can name them all.
async fn exec_inputs(host: &Arc<Host>, what: &key::What) -> Option<Vec<String>> {
    let key::What::Exec { command, .. } = what else {
        return None;
    };
    let written: Vec<String> = crate::policy::reads(command)?
        .iter()
        .map(|path| key::normalize(path))
        .collect();
    let resolved =
        futures_util::future::join_all(written.iter().map(|path| resolve_existing(host, path)))
            .await;
    // One that cannot be resolved could be anywhere.
    let resolved: Vec<String> = resolved.into_iter().collect::<Option<_>>()?;
    Some(written.into_iter().chain(resolved).collect())
}

/// Where the server would put `path`: its `realpath`, or, when it does
/// not exist, its nearest existing ancestor's joined with the rest (a
/// relative path ends at `.`, the home directory, which always resolves).
pub(crate) async fn resolve_existing(host: &Arc<Host>, path: &str) -> Option<String> {
    let mut rest: Vec<&str> = Vec::new();
    let mut at = path;
    for _ in 0..64 {
        if let Some(found) = resolve(host, at).await {
            return Some(
                rest.iter()
                    .rev()
                    .fold(found, |dir, name| remote::join(&dir, name)),
            );
        }
        if at == "/" || at == "." {
            return None;
        }
        rest.push(remote::file_name(at));
        at = remote::parent(at);
    }
    None
}

/// The size and mtime of the file at `path` (following symlinks):
/// `Some(None)` when it has none to give (missing, not a file), `None`
/// when the server could not be asked.
async fn file_signature(host: &Arc<Host>, path: &str) -> Option<Option<Signature>> {
    let probe = async {
        let sftp = host.sftp(Instant::now() + SESSION_WAIT).await.ok()?;
        Some(match sftp.raw().stat(path).await {
            Ok(attrs) => match (attrs.attrs.size, attrs.attrs.mtime) {
                (Some(size), Some(mtime)) => Some(Signature {
                    size,
                    mtime: u64::from(mtime),
                    racy: u64::from(mtime) + RACY_SECS >= unix_now(),
                }),
                _ => None,
            },
            Err(_) => None,
        })
    };
    tokio::time::timeout(PROBE_TIMEOUT, probe)
        .await
        .ok()
        .flatten()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_key(path: &str) -> Key {
        Key {
            alias: Arc::from("h"),
            identity: Arc::from("u@h:22"),
            what: What::whole_file(path.into()),
        }
    }

    /// What a write of `data` to `/f` would keep.
    fn written(cache: &Cache, data: &str) -> Option<(Key, Arc<Entry>)> {
        let content = Content {
            path: "/f".into(),
            key_path: "/f".into(),
            data: data.into(),
        };
        Some((
            read_key("/f"),
            cache.written(&cache.settings(), content, None),
        ))
    }

    fn kept(cache: &Cache) -> Option<Vec<u8>> {
        match cache.current().get(&read_key("/f"))?.reply.as_deref() {
            Ok(Response::ReadFile(content)) => Some(content.data.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_write_is_kept_only_when_no_other_change_ran_alongside_it() {
        let cache = Cache::default();
        let scope = || vec!["/f".to_string()];
        // Alone: kept.
        Moved::new(&cache, "h", "write_file").forget(scope(), false, written(&cache, "one"));
        assert_eq!(kept(&cache).as_deref(), Some(&b"one"[..]));
        // Another change began during it and ended first: its effect may
        // have landed after this write's, so nothing is kept.
        let write = Moved::new(&cache, "h", "write_file");
        Moved::new(&cache, "h", "exec").forget(scope(), false, None);
        write.forget(scope(), false, written(&cache, "two"));
        assert_eq!(kept(&cache), None);
        // Another began during it and is still running: not kept either.
        let write = Moved::new(&cache, "h", "write_file");
        let other = Moved::new(&cache, "h", "write_file");
        write.forget(scope(), false, written(&cache, "three"));
        assert_eq!(kept(&cache), None);
        // An abandoned change counts as having run alongside.
        drop(other);
        let write = Moved::new(&cache, "h", "write_file");
        drop(Moved::new(&cache, "h", "exec"));
        write.forget(scope(), false, written(&cache, "four"));
        assert_eq!(kept(&cache), None);
        // A change on another host does not count.
        let write = Moved::new(&cache, "h", "write_file");
        Moved::new(&cache, "elsewhere", "exec").forget(scope(), false, None);
        write.forget(scope(), false, written(&cache, "five"));
        assert_eq!(kept(&cache).as_deref(), Some(&b"five"[..]));
        // A later change drops it.
        Moved::new(&cache, "h", "exec").forget(scope(), false, None);
        assert_eq!(kept(&cache), None);
    }
}
