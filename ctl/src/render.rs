//! The text `sshmcpctl` prints for each reply (`--json` bypasses this).

use sshmcp_proto::{
    AuditStatus, CacheScope, CacheStats, HostList, HostState, JobInfo, JobState, OpStats,
    Resources, ShellInfo, ShellState, Stats, Status,
};

use crate::human;
use crate::table::{Align, Table, fields};

/// `sshmcpctl status`: one `key  value` line per fact.
pub fn status(status: &Status) -> String {
    let config = match &status.config {
        Some(path) => path.clone(),
        None => "none (built-in defaults)".to_string(),
    };
    let health = match &status.degraded {
        None => "healthy".to_string(),
        Some(why) => format!("degraded: {why}"),
    };
    fields(&[
        ("version", status.daemon_version.clone()),
        ("protocol", status.proto_version.to_string()),
        ("pid", status.pid.to_string()),
        ("uptime", human::uptime(status.uptime_ms)),
        ("socket", status.socket.clone()),
        ("config", config),
        ("clients", status.clients.to_string()),
        ("hosts", status.hosts.to_string()),
        ("connections", status.connections.to_string()),
        ("health", health),
        ("audit", audit(&status.audit)),
    ])
}

/// The audit log in one line: whether it is written, how much, and where.
fn audit(audit: &AuditStatus) -> String {
    let path = audit.path.as_deref().unwrap_or("no place for it");
    if !audit.enabled {
        return format!("off ([audit] enabled = false); {path}");
    }
    let written = human::count(audit.records, "record");
    match &audit.error {
        None => format!(
            "ok, {written} written to {path} (newest seq {})",
            audit.last_seq
        ),
        Some(error) => format!(
            "failing: {error} ({written} written; on_failure = {})",
            audit.on_failure
        ),
    }
}

/// `sshmcpctl stats`: uptime and clients, then a table of hosts (every
/// configured host, busy or not), a table of operations, the cache in a line
/// and the resources.
pub fn stats(stats: &Stats) -> String {
    let mut out = format!(
        "uptime {}, {} connected\n\n",
        human::uptime(stats.uptime_ms),
        human::count(stats.clients.into(), "client")
    );

    if stats.hosts.is_empty() {
        out.push_str("no hosts configured\n");
    } else {
        let mut hosts = Table::new(&[
            ("HOST", Align::Left),
            ("CONNS", Align::Right),
            ("BUSY", Align::Right),
            ("IDLE", Align::Right),
            ("CONNECTS", Align::Right),
            ("RECONNECTS", Align::Right),
            ("FAILURES", Align::Right),
        ]);
        for host in &stats.hosts {
            hosts.row([
                host.alias.clone(),
                host.connections.to_string(),
                host.channels_busy.to_string(),
                host.channels_idle.to_string(),
                host.connects.to_string(),
                host.reconnects.to_string(),
                host.connect_failures.to_string(),
            ]);
        }
        out.push_str(&hosts.render());
    }
    out.push('\n');

    if stats.ops.is_empty() {
        out.push_str("no requests served yet\n");
    } else {
        let mut ops = Table::new(&[
            ("OP", Align::Left),
            ("COUNT", Align::Right),
            ("ERRORS", Align::Right),
            ("P50", Align::Right),
            ("P95", Align::Right),
            ("P99", Align::Right),
            ("MAX", Align::Right),
        ]);
        for op in &stats.ops {
            ops.row(op_row(op));
        }
        out.push_str(&ops.render());
    }
    out.push('\n');
    out.push_str(&fields(&[("cache", cache_line(&stats.cache))]));
    out.push('\n');
    out.push_str(&resources(&stats.resources));
    out
}

/// The cache of `sshmcpctl stats` in one line: size against its budget, hit
/// rate, evictions.
fn cache_line(cache: &CacheStats) -> String {
    if !cache.enabled {
        return "disabled".to_string();
    }
    format!(
        "{}, {}; hit rate {} ({}, {}); {}",
        human::count(cache.entries, "entry"),
        budget(cache),
        human::percent(cache.hit_rate()),
        human::count(cache.hits, "hit"),
        human::count(cache.misses, "miss"),
        human::count(cache.evictions, "eviction"),
    )
}

/// `12.3 MiB of 256.0 MiB`: the cache's bytes against its budget.
pub fn budget(cache: &CacheStats) -> String {
    format!(
        "{} of {}",
        human::bytes(cache.bytes),
        human::bytes(cache.max_bytes)
    )
}

/// Hits over lookups, as [`CacheStats::hit_rate`] has it; `None` before any.
pub fn hit_rate(hits: u64, misses: u64) -> Option<f64> {
    let lookups = hits.saturating_add(misses);
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

/// `sshmcpctl cache`: the counters as `key  value` lines, then the cache's
/// share of each host and of each op.
pub fn cache(cache: &CacheStats) -> String {
    let invalidations = if cache.invalidations.is_empty() {
        "none".to_string()
    } else {
        let counts: Vec<String> = cache
            .invalidations
            .iter()
            .map(|c| format!("{} {}", c.name, c.count))
            .collect();
        counts.join(", ")
    };
    let mut out = fields(&[
        ("enabled", if cache.enabled { "yes" } else { "no" }.into()),
        (
            "entries",
            format!("{} of {}", cache.entries, cache.max_entries),
        ),
        ("bytes", budget(cache)),
        ("hits", cache.hits.to_string()),
        ("misses", cache.misses.to_string()),
        ("hit rate", human::percent(cache.hit_rate())),
        ("revalidations", cache.revalidations.to_string()),
        ("evictions", cache.evictions.to_string()),
        ("invalidations", invalidations),
    ]);
    if cache.enabled && cache.hosts.is_empty() && cache.ops.is_empty() {
        out.push_str("\nnothing cached yet\n");
    }
    for (name, scopes) in [("HOST", &cache.hosts), ("OP", &cache.ops)] {
        if !scopes.is_empty() {
            out.push('\n');
            out.push_str(&scope_table(name, scopes));
        }
    }
    out
}

/// One row per host (or op): what it holds in the cache and how often the
/// cache answered for it.
fn scope_table(name: &'static str, scopes: &[CacheScope]) -> String {
    let mut table = Table::new(&[
        (name, Align::Left),
        ("ENTRIES", Align::Right),
        ("BYTES", Align::Right),
        ("HITS", Align::Right),
        ("MISSES", Align::Right),
        ("HIT RATE", Align::Right),
    ]);
    for scope in scopes {
        table.row([
            scope.name.clone(),
            scope.entries.to_string(),
            human::bytes(scope.bytes),
            scope.hits.to_string(),
            scope.misses.to_string(),
            human::percent(hit_rate(scope.hits, scope.misses)),
        ]);
    }
    table.render()
}

/// `sshmcpctl cache clear [HOST]`: how many answers went.
pub fn cache_cleared(dropped: u64, host: Option<&str>) -> String {
    let dropped = human::count(dropped, "cached answer");
    match host {
        Some(host) => format!("dropped {dropped} of {host}\n"),
        None => format!("dropped {dropped}\n"),
    }
}

/// The resources section of `sshmcpctl stats`: memory against the cap,
/// the allocator, CPU time, descriptors, load, then one row per thread.
pub fn resources(r: &Resources) -> String {
    let [one, five, fifteen] = r
        .load_average_milli
        .map(|m| format!("{}.{:02}", m / 1000, m % 1000 / 10));
    let mut out = fields(&[
        (
            "memory",
            format!(
                "{} RSS (peak {}) of {} cap, degraded above {}; {} reserved, {} refused",
                human::bytes(r.rss_bytes),
                human::bytes(r.peak_rss_bytes),
                human::bytes(r.memory_limit_bytes),
                human::bytes(r.memory_high_watermark_bytes),
                human::bytes(r.memory_reserved_bytes),
                r.memory_refusals
            ),
        ),
        (
            "allocator",
            format!(
                "{} committed (peak {})",
                human::bytes(r.allocator_committed_bytes),
                human::bytes(r.allocator_peak_committed_bytes)
            ),
        ),
        (
            "cpu time",
            format!(
                "{} user, {} system",
                human::latency(r.cpu_user_ms * 1000),
                human::latency(r.cpu_system_ms * 1000)
            ),
        ),
        ("fds", format!("{} open of {}", r.open_fds, r.max_fds)),
        ("load", format!("{one} {five} {fifteen}")),
    ]);
    if !r.threads.is_empty() {
        out.push('\n');
        let mut threads = Table::new(&[
            ("TID", Align::Right),
            ("THREAD", Align::Left),
            ("CPU", Align::Right),
            ("ALLOWED", Align::Left),
        ]);
        for t in &r.threads {
            threads.row([
                t.tid.to_string(),
                t.name.clone(),
                t.cpu.to_string(),
                t.allowed_cpus.clone(),
            ]);
        }
        out.push_str(&threads.render());
    }
    out
}

/// An op that has never run has no latencies to show.
fn op_row(op: &OpStats) -> [String; 7] {
    let latency = |us| {
        if op.count == 0 {
            "-".to_string()
        } else {
            human::latency(us)
        }
    };
    [
        op.op.clone(),
        op.count.to_string(),
        op.errors.to_string(),
        latency(op.p50_us),
        latency(op.p95_us),
        latency(op.p99_us),
        latency(op.max_us),
    ]
}

/// `sshmcpctl hosts`: one row per configured host.
pub fn hosts(list: &HostList) -> String {
    let source = format!("ssh config: {}\n", list.ssh_config);
    let hosts = &list.hosts;
    if hosts.is_empty() {
        return format!("{source}no hosts configured\n");
    }
    let mut table = Table::new(&[
        ("ALIAS", Align::Left),
        ("ADDRESS", Align::Left),
        ("STATE", Align::Left),
        ("ACCESS", Align::Left),
        ("CONNS", Align::Right),
        ("BUSY", Align::Right),
        ("IDLE", Align::Right),
        ("LAST ERROR", Align::Left),
    ]);
    for host in hosts {
        table.row([
            host.alias.clone(),
            address(host),
            host.state.as_str().to_string(),
            host.access.clone(),
            host.connections.to_string(),
            host.channels_busy.to_string(),
            host.channels_idle.to_string(),
            host.last_error.clone().unwrap_or_else(|| "-".to_string()),
        ]);
    }
    source + &table.render()
}

/// `sshmcpctl jobs`: one row per job, oldest first, each command cut to
/// fit lines of `width` characters (but never to fewer than
/// [`MIN_COMMAND`]).
pub fn jobs(jobs: &[JobInfo], width: usize) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_string();
    }
    let columns = [
        ("ID", Align::Left),
        ("HOST", Align::Left),
        ("STATE", Align::Left),
        ("EXIT", Align::Right),
        ("RUNTIME", Align::Right),
        ("BYTES", Align::Right),
        ("COMMAND", Align::Left),
    ];
    let rows: Vec<[String; 6]> = jobs
        .iter()
        .map(|job| {
            [
                job.job_id.clone(),
                job.host.clone(),
                if job.detached {
                    format!("{} (detached)", job_state(job.state))
                } else {
                    job_state(job.state).to_string()
                },
                job.exit_code
                    .map_or_else(|| "-".to_string(), |c| c.to_string()),
                human::uptime(job.runtime_ms),
                human::bytes(job.bytes),
            ]
        })
        .collect();
    let room = last_column_room(&columns, &rows, width);
    let mut table = Table::new(&columns);
    for (job, row) in jobs.iter().zip(rows) {
        table.row(row.into_iter().chain([cut(&job.command, room)]));
    }
    table.render()
}

/// `sshmcpctl shells`: one row per open shell, oldest first, each working
/// directory cut to fit lines of `width` characters (but never to fewer
/// than [`MIN_COMMAND`]).
pub fn shells(shells: &[ShellInfo], width: usize) -> String {
    if shells.is_empty() {
        return "no shells\n".to_string();
    }
    let columns = [
        ("ID", Align::Left),
        ("HOST", Align::Left),
        ("STATE", Align::Left),
        ("OPEN", Align::Right),
        ("IDLE", Align::Right),
        ("COMMANDS", Align::Right),
        ("CWD", Align::Left),
    ];
    let rows: Vec<[String; 6]> = shells
        .iter()
        .map(|shell| {
            let (state, idle) = match shell.state {
                ShellState::Busy => ("busy", "-".to_string()),
                ShellState::Idle => ("idle", human::uptime(shell.idle_ms)),
            };
            [
                shell.shell_id.clone(),
                shell.host.clone(),
                state.to_string(),
                human::uptime(shell.open_ms),
                idle,
                shell.commands.to_string(),
            ]
        })
        .collect();
    let room = last_column_room(&columns, &rows, width);
    let mut table = Table::new(&columns);
    for (shell, row) in shells.iter().zip(rows) {
        table.row(row.into_iter().chain([cut(&shell.cwd, room)]));
    }
    table.render()
}

/// The characters left on a line of `width` for a table's last column,
/// after the others (each as wide as its widest cell, two spaces between
/// them), but never fewer than [`MIN_COMMAND`].
fn last_column_room<const N: usize>(
    columns: &[(&str, Align)],
    rows: &[[String; N]],
    width: usize,
) -> usize {
    let before_last: usize = columns[..N]
        .iter()
        .enumerate()
        .map(|(i, (header, _))| {
            let cells = rows.iter().map(|row| row[i].chars().count());
            cells.fold(header.chars().count(), usize::max) + 2
        })
        .sum();
    width.saturating_sub(before_last).max(MIN_COMMAND)
}

/// The fewest characters of a command `jobs` shows, however narrow the
/// terminal.
pub const MIN_COMMAND: usize = 12;

/// `text` in at most `room` characters: cut, with `…` for what is left
/// out.
fn cut(text: &str, room: usize) -> String {
    // One line: a command may hold newlines.
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.chars().count() <= room {
        return line;
    }
    let kept: String = line.chars().take(room.saturating_sub(1)).collect();
    format!("{kept}…")
}

/// A job's state as `jobs` shows it.
fn job_state(state: JobState) -> &'static str {
    match state {
        JobState::Running => "running",
        JobState::Exited => "exited",
        JobState::Killed => "killed",
        JobState::Lost => "lost",
    }
}

/// `user@hostname:port`, with an IPv6 literal in brackets as ssh URIs have it.
fn address(host: &HostState) -> String {
    let hostname = if host.hostname.contains(':') {
        format!("[{}]", host.hostname)
    } else {
        host.hostname.clone()
    };
    if host.user.is_empty() {
        format!("{hostname}:{}", host.port)
    } else {
        format!("{}@{hostname}:{}", host.user, host.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sshmcp_proto::{ConnState, Count, HostStats, ThreadInfo};

    fn status_fixture() -> Status {
        Status {
            daemon_version: "0.1.0".into(),
            proto_version: 1,
            pid: 4242,
            uptime_ms: 7_384_250,
            socket: "/run/user/1000/sshmcp/sshmcpd.sock".into(),
            config: Some("/home/ada/.config/sshmcp/config.toml".into()),
            clients: 2,
            hosts: 3,
            connections: 2,
            degraded: None,
            audit: Box::new(AuditStatus {
                enabled: true,
                path: Some("/home/ada/.local/state/sshmcp/audit.jsonl".into()),
                key: Some("/home/ada/.local/state/sshmcp/audit.key".into()),
                head: Some("/home/ada/.local/state/sshmcp/audit.head".into()),
                records: 12,
                last_seq: 340,
                on_failure: "deny".into(),
                error: None,
            }),
        }
    }

    #[test]
    fn status_lists_every_fact_with_aligned_values() {
        assert_eq!(
            status(&status_fixture()),
            "\
version      0.1.0
protocol     1
pid          4242
uptime       2h 3m 4s
socket       /run/user/1000/sshmcp/sshmcpd.sock
config       /home/ada/.config/sshmcp/config.toml
clients      2
hosts        3
connections  2
health       healthy
audit        ok, 12 records written to /home/ada/.local/state/sshmcp/audit.jsonl (newest seq 340)
"
        );
    }

    #[test]
    fn status_says_why_the_audit_log_is_failing() {
        let fixture = status_fixture();
        let text = status(&Status {
            audit: Box::new(AuditStatus {
                path: Some("/dev/full".into()),
                error: Some(
                    "cannot write the audit log /dev/full: No space left on device (os error 28)"
                        .into(),
                ),
                ..(*fixture.audit).clone()
            }),
            ..fixture
        });
        assert!(
            text.contains(
                "audit        failing: cannot write the audit log /dev/full: No space left on \
                 device (os error 28) (12 records written; on_failure = deny)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn status_says_why_the_daemon_is_degraded() {
        let text = status(&Status {
            config: None,
            degraded: Some("memory at 95% of memory_limit; cache shed".into()),
            ..status_fixture()
        });
        assert!(text.contains("config       none (built-in defaults)\n"));
        assert!(
            text.contains("health       degraded: memory at 95% of memory_limit; cache shed\n")
        );
    }

    fn host_stats(alias: &str, counters: [u64; 6]) -> HostStats {
        let [connections, busy, idle, connects, reconnects, failures] = counters;
        HostStats {
            alias: alias.into(),
            connections: connections as u32,
            channels_busy: busy as u32,
            channels_idle: idle as u32,
            connects,
            reconnects,
            connect_failures: failures,
        }
    }

    fn op_stats(op: &str, count: u64, errors: u64, latencies: [u64; 4]) -> OpStats {
        let [p50_us, p95_us, p99_us, max_us] = latencies;
        OpStats {
            op: op.into(),
            count,
            errors,
            p50_us,
            p95_us,
            p99_us,
            max_us,
        }
    }

    #[test]
    fn stats_show_every_host_and_human_latencies() {
        let stats = Stats {
            cache: cache_fixture(),
            uptime_ms: 7_384_250,
            clients: 1,
            hosts: vec![
                host_stats("web1", [2, 3, 17, 5, 1, 0]),
                host_stats("db.internal", [1, 0, 10, 1, 0, 2]),
                host_stats("backup", [0; 6]),
            ],
            ops: vec![
                op_stats("exec", 1204, 3, [3_412, 12_050, 48_700, 1_203_400]),
                op_stats("hosts", 12, 0, [212, 340, 355, 812]),
                op_stats("warm", 0, 0, [0; 4]),
            ],
            resources: Resources {
                rss_bytes: 25 << 20,
                peak_rss_bytes: 40 << 20,
                memory_limit_bytes: 28 << 30,
                memory_high_watermark_bytes: (28 << 30) / 10 * 9,
                memory_reserved_bytes: 2 << 20,
                memory_refusals: 1,
                allocator_committed_bytes: 20 << 20,
                allocator_peak_committed_bytes: 36 << 20,
                cpu_user_ms: 1_250,
                cpu_system_ms: 300,
                open_fds: 23,
                max_fds: 1024,
                load_average_milli: [520, 1_405, 10_000],
                threads: vec![
                    ThreadInfo {
                        tid: 100,
                        name: "sshmcpd".into(),
                        cpu: 1,
                        allowed_cpus: "0-1".into(),
                    },
                    ThreadInfo {
                        tid: 101,
                        name: "sshmcpd-w0".into(),
                        cpu: 0,
                        allowed_cpus: "0".into(),
                    },
                ],
            },
        };
        assert_eq!(
            super::stats(&stats),
            "\
uptime 2h 3m 4s, 1 client connected

HOST         CONNS  BUSY  IDLE  CONNECTS  RECONNECTS  FAILURES
web1             2     3    17         5           1         0
db.internal      1     0    10         1           0         2
backup           0     0     0         0           0         0

OP     COUNT  ERRORS    P50     P95     P99    MAX
exec    1204       3  3.4ms  12.1ms  48.7ms  1.20s
hosts     12       0  212µs   340µs   355µs  812µs
warm       0       0      -       -       -      -

cache  1204 entries, 12.3 MiB of 256.0 MiB; hit rate 86.0% (9120 hits, 1480 misses); 42 evictions

memory     25.0 MiB RSS (peak 40.0 MiB) of 28.0 GiB cap, degraded above 25.2 GiB; 2.0 MiB reserved, 1 refused
allocator  20.0 MiB committed (peak 36.0 MiB)
cpu time   1.25s user, 300.0ms system
fds        23 open of 1024
load       0.52 1.40 10.00

TID  THREAD      CPU  ALLOWED
100  sshmcpd       1  0-1
101  sshmcpd-w0    0  0
"
        );
    }

    #[test]
    fn stats_of_an_idle_daemon_say_so() {
        let stats = Stats {
            cache: Default::default(),
            uptime_ms: 4_000,
            clients: 0,
            hosts: vec![],
            ops: vec![],
            resources: Resources::default(),
        };
        assert_eq!(
            super::stats(&stats),
            "uptime 4s, 0 clients connected\n\nno hosts configured\n\nno requests served yet\n\n\
             cache  disabled\n\n\
             memory     0 B RSS (peak 0 B) of 0 B cap, degraded above 0 B; 0 B reserved, 0 refused\n\
             allocator  0 B committed (peak 0 B)\n\
             cpu time   0µs user, 0µs system\n\
             fds        0 open of 0\n\
             load       0.00 0.00 0.00\n"
        );
    }

    fn scope(name: &str, counters: [u64; 4]) -> CacheScope {
        let [entries, bytes, hits, misses] = counters;
        CacheScope {
            name: name.into(),
            entries,
            bytes,
            hits,
            misses,
        }
    }

    fn cache_fixture() -> CacheStats {
        CacheStats {
            enabled: true,
            entries: 1204,
            bytes: 12_897_484,
            max_bytes: 256 << 20,
            max_entries: 10_000,
            hits: 9120,
            misses: 1480,
            revalidations: 311,
            evictions: 42,
            invalidations: vec![
                Count {
                    name: "write_file".into(),
                    count: 3,
                },
                Count {
                    name: "exec".into(),
                    count: 2,
                },
            ],
            hosts: vec![
                scope("web1", [1100, 12_000_000, 9000, 1300]),
                scope("db.internal", [104, 897_484, 120, 180]),
                scope("backup", [0; 4]),
            ],
            ops: vec![
                scope("read_file", [600, 11_534_336, 5000, 400]),
                scope("list_dir", [404, 1_363_148, 4000, 1000]),
                scope("exec", [200, 0, 120, 80]),
            ],
        }
    }

    #[test]
    fn cache_shows_counters_then_hosts_and_ops() {
        assert_eq!(
            cache(&cache_fixture()),
            "\
enabled        yes
entries        1204 of 10000
bytes          12.3 MiB of 256.0 MiB
hits           9120
misses         1480
hit rate       86.0%
revalidations  311
evictions      42
invalidations  write_file 3, exec 2

HOST         ENTRIES      BYTES  HITS  MISSES  HIT RATE
web1            1100   11.4 MiB  9000    1300     87.4%
db.internal      104  876.4 KiB   120     180     40.0%
backup             0        0 B     0       0         -

OP         ENTRIES     BYTES  HITS  MISSES  HIT RATE
read_file      600  11.0 MiB  5000     400     92.6%
list_dir       404   1.3 MiB  4000    1000     80.0%
exec           200       0 B   120      80     60.0%
"
        );
    }

    #[test]
    fn an_unused_cache_has_no_hit_rate_and_says_nothing_is_cached() {
        let empty = CacheStats {
            enabled: true,
            max_bytes: 256 << 20,
            max_entries: 10_000,
            ..CacheStats::default()
        };
        assert_eq!(
            cache(&empty),
            "\
enabled        yes
entries        0 of 10000
bytes          0 B of 256.0 MiB
hits           0
misses         0
hit rate       -
revalidations  0
evictions      0
invalidations  none

nothing cached yet
"
        );
        let text = cache(&CacheStats::default());
        assert!(text.starts_with("enabled        no\n"), "{text}");
        assert!(text.ends_with("invalidations  none\n"), "{text}");
    }

    #[test]
    fn stats_of_an_unused_cache_have_no_hit_rate() {
        let empty = CacheStats {
            enabled: true,
            entries: 1,
            bytes: 512,
            max_bytes: 1 << 30,
            evictions: 1,
            ..CacheStats::default()
        };
        assert_eq!(
            cache_line(&empty),
            "1 entry, 512 B of 1.0 GiB; hit rate - (0 hits, 0 misses); 1 eviction"
        );
    }

    #[test]
    fn cache_clear_says_how_many_answers_went_and_whose() {
        assert_eq!(cache_cleared(12, None), "dropped 12 cached answers\n");
        assert_eq!(
            cache_cleared(1, Some("web1")),
            "dropped 1 cached answer of web1\n"
        );
        assert_eq!(
            cache_cleared(0, Some("db")),
            "dropped 0 cached answers of db\n"
        );
    }

    fn host_state(alias: &str, hostname: &str, state: ConnState) -> HostState {
        HostState {
            access: "full".into(),
            alias: alias.into(),
            hostname: hostname.into(),
            port: 22,
            user: "deploy".into(),
            state,
            connections: 0,
            channels_busy: 0,
            channels_idle: 0,
            last_error: None,
        }
    }

    #[test]
    fn hosts_show_address_state_and_last_error() {
        let hosts_in_config = vec![
            HostState {
                connections: 1,
                channels_busy: 2,
                channels_idle: 8,
                ..host_state("web1", "10.0.0.5", ConnState::Connected)
            },
            HostState {
                port: 2222,
                user: "root".into(),
                last_error: Some(
                    "connect to 192.0.2.7:2222 timed out after 10s\n(ConnectTimeout)".into(),
                ),
                ..host_state("db", "192.0.2.7", ConnState::CircuitOpen)
            },
            host_state("v6", "2001:db8::1", ConnState::Cold),
        ];
        let list = HostList {
            ssh_config: "/home/deploy/.ssh/config".into(),
            hosts: hosts_in_config,
        };
        assert_eq!(
            hosts(&list),
            "\
ssh config: /home/deploy/.ssh/config
ALIAS  ADDRESS                  STATE         ACCESS  CONNS  BUSY  IDLE  LAST ERROR
web1   deploy@10.0.0.5:22       connected     full        1     2     8  -
db     root@192.0.2.7:2222      circuit-open  full        0     0     0  connect to 192.0.2.7:2222 timed out after 10s (ConnectTimeout)
v6     deploy@[2001:db8::1]:22  cold          full        0     0     0  -
"
        );
    }

    fn job(id: &str, state: JobState, command: &str, exit_code: Option<u32>) -> JobInfo {
        JobInfo {
            detached: false,
            job_id: id.into(),
            host: "web1".into(),
            kind: sshmcp_proto::JobKind::Command,
            command: command.into(),
            state,
            started: 1_700_000_000,
            runtime_ms: 125_400,
            bytes: 3 * 1024,
            exit_code,
        }
    }

    #[test]
    fn jobs_show_state_exit_runtime_bytes_and_the_command() {
        let list = [
            job("j-1", JobState::Exited, "make -j2 all", Some(2)),
            JobInfo {
                host: "db.internal".into(),
                kind: sshmcp_proto::JobKind::Command,
                runtime_ms: 900,
                bytes: 0,
                ..job("j-22", JobState::Running, "tail -f /var/log/syslog", None)
            },
            job("j-3", JobState::Killed, "sleep 100", None),
        ];
        assert_eq!(
            jobs(&list, 100),
            "\
ID    HOST         STATE    EXIT  RUNTIME    BYTES  COMMAND
j-1   web1         exited      2    2m 5s  3.0 KiB  make -j2 all
j-22  db.internal  running     -       0s      0 B  tail -f /var/log/syslog
j-3   web1         killed      -    2m 5s  3.0 KiB  sleep 100
"
        );
    }

    #[test]
    fn a_long_command_is_cut_to_fit_the_line() {
        let long = format!("rsync -a /srv/data/ backup:/srv/data/ {}", "x".repeat(200));
        let text = jobs(&[job("j-1", JobState::Running, &long, None)], 80);
        let row = text.lines().nth(1).expect("a row");
        assert_eq!(row.chars().count(), 80, "{row}");
        assert!(
            row.ends_with("  rsync -a /srv/data/ backup:/srv/dat…"),
            "{row}"
        );
        let narrow = jobs(&[job("j-1", JobState::Running, &long, None)], 20);
        let row = narrow.lines().nth(1).expect("a row");
        assert!(row.ends_with("rsync -a /s…"), "{row}");
        let multi = jobs(&[job("j-1", JobState::Lost, "a\nb", None)], 100);
        assert!(
            multi.ends_with("lost      -    2m 5s  3.0 KiB  a b\n"),
            "{multi}"
        );
    }

    #[test]
    fn no_jobs_is_said_in_words() {
        assert_eq!(jobs(&[], 100), "no jobs\n");
    }

    #[test]
    fn shells_show_state_age_idle_time_commands_and_the_cwd() {
        let shell = |id: &str, state: ShellState, cwd: &str| ShellInfo {
            shell_id: id.into(),
            host: "web1".into(),
            cwd: cwd.into(),
            state,
            opened: 1_700_000_000,
            open_ms: 125_400,
            idle_ms: 3_000,
            commands: 7,
        };
        let list = [
            shell("s1-1", ShellState::Idle, "/srv/app"),
            shell("s1-2", ShellState::Busy, "/tmp/a\nb"),
        ];
        assert_eq!(
            shells(&list, 100),
            "\
ID    HOST  STATE   OPEN  IDLE  COMMANDS  CWD
s1-1  web1  idle   2m 5s    3s         7  /srv/app
s1-2  web1  busy   2m 5s     -         7  /tmp/a b
"
        );
        assert_eq!(shells(&[], 100), "no shells\n");
    }

    #[test]
    fn no_hosts_is_said_in_words() {
        let list = HostList {
            ssh_config: "/etc/sshmcp/hosts".into(),
            hosts: vec![],
        };
        assert_eq!(
            hosts(&list),
            "ssh config: /etc/sshmcp/hosts\nno hosts configured\n"
        );
    }
}
