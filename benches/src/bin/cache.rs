//! The response cache: cached `stat` and `read_file` (4 KiB) against the
//! same ops sent to the host (`max_age_secs: 0`, warm SFTP) and against
//! `ssh host stat|cat` over an OpenSSH ControlMaster, through the daemon
//! socket (1, 8 and 64 clients) and through the MCP shim (over loopback
//! and, as a host ~2 ms away, through a delaying TCP proxy); then an
//! agent-like replay of a fixed script that checks every read against the
//! host's files and counts the cache's hits.
//!
//! Run with `cargo run --release -p sshmcp-benches --bin cache`.
//! `SSHMCP_BENCH_SECS` sets the time bound of each throughput run (default
//! 2), `SSHMCP_BENCH_REPLAY` the replay's length (default 600 calls),
//! `SSHMCP_BENCH_SEED` its seed (default 1); `SSHMCP_BENCH_REPLAY_ONLY=1`
//! runs the replay alone. Exits non-zero when the replay saw a stale
//! answer.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use sshmcp_benches::{
    DelayProxy, Prng, Samples, echo_rtt, print_markdown, start_control_master, us,
};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    CacheStats, ClientInfo, ErrorKind, ExecRequest, FileKind, FileStat, ListDirRequest,
    MkdirRequest, ReadFileRequest, RemoveRequest, RenameRequest, Reply, Request, Response,
    StatRequest, WriteFileRequest,
};
use sshmcp_testkit::{Daemon, Fleet, McpClient, output_within, test_user};

const HOST: &str = "host1";
/// The same host reached through a [`DelayProxy`] of `DELAY_ONE_WAY` each
/// way: about a host in the same datacenter.
const FAR_HOST: &str = "host1-far";
const DELAY_ONE_WAY: Duration = Duration::from_millis(1);
/// Files the throughput runs rotate over, each `FILE_SIZE` bytes.
const FILES: usize = 8;
const FILE_SIZE: usize = 4096;
/// Concurrent clients of the throughput runs.
const CLIENTS: [usize; 3] = [1, 8, 64];
/// Rounds of the one-client runs through the socket.
const LATENCY_ROUNDS: usize = 4;
/// Most calls one throughput run makes, whatever its time bound.
const MAX_CALLS_PER_RUN: usize = 400_000;
/// Longest any single call may take before the bench gives up on it.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// sshd's `MaxSessions`, so 64 `ssh` clients can share one ControlMaster
/// (sshd's default of 10 would refuse the 11th).
const MAX_SESSIONS: u32 = 128;

/// How the message of an error served from the cache says so.
const CACHED_ERROR: &str = "answered from the cache";

/// Targets, reported beside the figures (a miss does not fail the run).
const TARGET_CACHED_P50_US: f64 = 50.0;
const TARGET_CACHED_OPS_64: f64 = 50_000.0;
const TARGET_SHIM_RATIO: f64 = 10.0;
const TARGET_HIT_RATE: f64 = 0.70;

fn main() -> ExitCode {
    // The daemon's per-request debug lines would weigh on its timings.
    // SAFETY: set before any thread is started.
    unsafe { std::env::set_var("SSHMCP_TEST_DAEMON_LOG", "sshmcpd=info") };
    let secs = env_or("SSHMCP_BENCH_SECS", 2).max(1) as u64;
    let replay_len = env_or("SSHMCP_BENCH_REPLAY", 600).max(500);
    let seed = env_or("SSHMCP_BENCH_SEED", 1) as u64;
    let think = Duration::from_millis(env_or("SSHMCP_BENCH_THINK_MS", 0) as u64);
    let limit = Duration::from_secs(secs);

    let fleet = Fleet::builder()
        .servers(1)
        .max_sessions(MAX_SESSIONS)
        .start();
    // Started before the daemon, so the daemon reads the alias with the
    // kit's, and dropped after it.
    let proxy = far_alias(&fleet);
    let daemon = Daemon::start(&fleet, "");
    let user = test_user();
    let scratch = user.scratch_dir();
    let home = user.home().to_path_buf();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu_model = cpu_model();

    println!(
        "sshmcp response cache: one loopback sshd (OpenSSH, MaxSessions {MAX_SESSIONS}), \
         daemon with its default [cache], {cpus} CPUs ({cpu_model})\n"
    );

    // The files the throughput runs read: 4 KiB of text each, owned by
    // the test user, last changed a minute ago (a file changed within 2 s
    // of a read is re-read rather than trusted, see daemon/src/cache).
    let bench_dir = scratch.path().join("bench");
    fs::create_dir(&bench_dir).expect("mkdir bench");
    let paths: Vec<String> = (0..FILES)
        .map(|i| {
            let path = bench_dir.join(format!("data{i}.txt"));
            let line = format!("line of data file {i}, padded to a fixed width ........\n");
            let data: Vec<u8> = line.bytes().cycle().take(FILE_SIZE).collect();
            put(&path, &data, user);
            path.display().to_string()
        })
        .collect();
    own(&bench_dir, user);
    let paths = Arc::new(paths);

    let client = runtime.block_on(connect(daemon.socket()));
    for path in paths.iter() {
        for op in [Op::Stat, Op::Read] {
            let reply = runtime.block_on(call(&client, op.request(path, None)));
            op.check(&reply).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    // OpenSSH's warm path: a ControlMaster, `ssh -o ControlMaster=no`.
    let control = fleet.dir().join("cm.sock");
    let control_opt = start_control_master(&fleet, HOST, &control, 600, &[]);

    let run_replays = || {
        [&AGENT, &ADVERSARIAL].map(|mix| {
            println!("### Replay `{}`\n", mix.name);
            let replay = runtime.block_on(replay(
                &client,
                &home,
                scratch.path(),
                mix,
                replay_len,
                seed,
                think,
            ));
            replay.print();
            println!();
            replay
        })
    };
    let run_probes = || {
        println!(
            "### Targeted probes\n\nShort fixed sequences for corners of invalidation, each in a \
             fresh directory: reads cached, a change through the daemon, the reads again.\n"
        );
        let results = runtime.block_on(probes(&client, &home, scratch.path()));
        let rows: Vec<Vec<String>> = results
            .iter()
            .map(|(name, stale)| {
                vec![
                    name.to_string(),
                    if stale.is_empty() {
                        "ok".into()
                    } else {
                        "STALE".into()
                    },
                ]
            })
            .collect();
        print_markdown(&["probe", "result"], &rows);
        for (name, stale) in &results {
            for line in stale {
                println!("STALE ({name}) {line}");
            }
        }
        println!();
        results
            .iter()
            .filter(|(_, stale)| !stale.is_empty())
            .count()
    };
    if std::env::var_os("SSHMCP_BENCH_REPLAY_ONLY").is_some() {
        let stale_probes = run_probes();
        let replays = run_replays();
        return if stale_probes == 0 && replays.iter().all(|r| r.stale.is_empty()) {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }

    // 1. Through the daemon socket and over the ControlMaster.
    let mut results: BTreeMap<(Op, Way, usize), Run> = BTreeMap::new();
    for op in [Op::Stat, Op::Read] {
        for way in [Way::Cached, Way::Uncached, Way::Ssh] {
            for clients in CLIENTS {
                let run = match way {
                    Way::Ssh => ssh_run(&fleet, &control_opt, op, &paths, clients, limit),
                    // One client runs on one thread, as the shim does, so
                    // the bench adds no hops between its own threads; more
                    // clients need both of the runtime's.
                    _ if clients == 1 => {
                        single.block_on(socket_run(&daemon, op, way, &paths, clients, limit))
                    }
                    _ => runtime.block_on(socket_run(&daemon, op, way, &paths, clients, limit)),
                };
                eprintln!(
                    "  {} {} x{clients}: {} calls, {:.0}/s, p50 {} us",
                    op.name(),
                    way.name(),
                    run.samples.len(),
                    run.rate(),
                    us(run.samples.p50())
                );
                results.insert((op, way, clients), run);
            }
        }
    }
    let mut stop = fleet.ssh(HOST);
    stop.args(["-o", &control_opt, "-O", "exit"]);
    let _ = output_within(&mut stop, Duration::from_secs(10));

    println!("## 1. Through the daemon socket, against OpenSSH\n");
    println!(
        "Latency with 1 client (closed loop on one thread, {secs} s in {LATENCY_ROUNDS} rounds of a \
         new connection each, at most {MAX_CALLS_PER_RUN} calls a round); \
         `uncached` is `max_age_secs: 0` (the host, over warm SFTP); `ssh + CM` is \
         `ssh host stat|cat <file>` riding an open ControlMaster:\n"
    );
    let mut rows = Vec::new();
    for op in [Op::Stat, Op::Read] {
        let ssh = results[&(op, Way::Ssh, 1)].samples.p50();
        for way in [Way::Cached, Way::Uncached, Way::Ssh] {
            let run = &results[&(op, way, 1)];
            let [p50, p95, p99] = run.samples.percentiles();
            rows.push(vec![
                format!("{} {}", op.name(), way.name()),
                run.samples.len().to_string(),
                us(p50),
                us(p95),
                us(p99),
                format!("{:.1}x", ssh.as_secs_f64() / p50.as_secs_f64().max(1e-9)),
                if run.round_p50s.is_empty() {
                    "-".into()
                } else {
                    run.round_p50s
                        .iter()
                        .map(|d| us(*d))
                        .collect::<Vec<_>>()
                        .join(" / ")
                },
            ]);
        }
    }
    print_markdown(
        &[
            "path",
            "n",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "faster than ssh + CM (p50)",
            "p50 of each round µs",
        ],
        &rows,
    );
    println!(
        "\nThroughput with 1, 8 and 64 concurrent clients (each its own socket \
         connection, or its own `ssh` process at a time), {secs} s per run; latency \
         under that load; CPU in cores (1.00 = one core busy):\n"
    );
    let mut rows = Vec::new();
    for op in [Op::Stat, Op::Read] {
        for way in [Way::Cached, Way::Uncached, Way::Ssh] {
            for clients in CLIENTS {
                let run = &results[&(op, way, clients)];
                let [p50, p95, p99] = run.samples.percentiles();
                rows.push(vec![
                    format!("{} {}", op.name(), way.name()),
                    clients.to_string(),
                    run.samples.len().to_string(),
                    format!("{:.0}", run.rate()),
                    us(p50),
                    us(p95),
                    us(p99),
                    match way {
                        Way::Ssh => "-".into(),
                        _ => format!("{}/{}", run.cached, run.samples.len()),
                    },
                    cores(run.daemon_cpu),
                    cores(run.bench_cpu),
                    run.errors.to_string(),
                ]);
            }
        }
    }
    print_markdown(
        &[
            "path",
            "clients",
            "calls",
            "ops/s",
            "p50 µs",
            "p95 µs",
            "p99 µs",
            "from cache",
            "sshmcpd CPU",
            "bench CPU",
            "errors",
        ],
        &rows,
    );
    for run in results.values() {
        if let Some(error) = &run.first_error {
            println!("\nfirst error of a run: {error}");
        }
    }
    println!();
    let mut verdicts = Vec::new();
    for op in [Op::Stat, Op::Read] {
        let p50 = results[&(op, Way::Cached, 1)].samples.p50();
        let p50_us = p50.as_secs_f64() * 1e6;
        let line = format!(
            "cached {} via socket, 1 client: p50 {} µs (target <= {TARGET_CACHED_P50_US} µs)",
            op.name(),
            us(p50)
        );
        verdicts.push((line, p50_us <= TARGET_CACHED_P50_US));
        let rate = results[&(op, Way::Cached, 64)].rate();
        let line = format!(
            "cached {} via socket, 64 clients: {rate:.0} ops/s (target >= {TARGET_CACHED_OPS_64:.0})",
            op.name()
        );
        verdicts.push((line, rate >= TARGET_CACHED_OPS_64));
    }
    for (line, pass) in &verdicts[..] {
        println!("{} {line}", pass_miss(*pass));
    }

    // 2. Through the MCP shim.
    println!("\n## 2. Through the MCP shim (JSON-RPC over its stdio), 1 client\n");
    let rtt = echo_rtt(proxy.one_way(), 200);
    let far_label = format!("{} ms RTT", ms1(proxy.rtt()));
    println!(
        "The same calls to the same sshd twice: over loopback (`{HOST}`, 0 ms RTT) and through \
         a delaying TCP proxy on 127.0.0.1:{} that holds every chunk back {} ms each way \
         (`{FAR_HOST}`, {far_label}, about a host in the same datacenter; through the proxy \
         to a loopback echo server a 64-byte round trip takes p50 {} µs, p99 {} µs, n {}). \
         The shim's own cost is the same in both; only the host is farther.\n",
        proxy.addr().port(),
        ms1(proxy.one_way()),
        us(rtt.p50()),
        us(rtt.p99()),
        rtt.len()
    );
    let shims = [
        (
            "loopback, 0 ms RTT".to_string(),
            shim_bench(&daemon, HOST, &paths, limit),
        ),
        (
            format!("proxy, {far_label}"),
            shim_bench(&daemon, FAR_HOST, &paths, limit),
        ),
    ];
    println!(
        "(the proxy accepted {} connection(s) from the daemon)\n",
        proxy.connections()
    );
    let mut rows = Vec::new();
    for (label, shim) in &shims {
        for op in [Op::Stat, Op::Read] {
            for way in [Way::Cached, Way::Uncached] {
                let samples = &shim[&(op, way)];
                let [p50, p95, p99] = samples.percentiles();
                rows.push(vec![
                    format!("{} {} (shim, {label})", op.name(), way.name()),
                    samples.len().to_string(),
                    us(p50),
                    us(p95),
                    us(p99),
                ]);
            }
        }
    }
    print_markdown(&["path", "n", "p50 µs", "p95 µs", "p99 µs"], &rows);
    println!();
    let mut shim_ratios = BTreeMap::new();
    for (label, shim) in &shims {
        for op in [Op::Stat, Op::Read] {
            let cached = shim[&(op, Way::Cached)].p50();
            let uncached = shim[&(op, Way::Uncached)].p50();
            let ratio = uncached.as_secs_f64() / cached.as_secs_f64().max(1e-9);
            shim_ratios.insert((label.clone(), op), (cached, uncached, ratio));
            let line = format!(
                "{} via shim ({label}), uncached p50 / cached p50: {ratio:.1}x = {} µs / {} µs (target >= {TARGET_SHIM_RATIO}x)",
                op.name(),
                us(uncached),
                us(cached)
            );
            println!("{} {line}", pass_miss(ratio >= TARGET_SHIM_RATIO));
            verdicts.push((line, ratio >= TARGET_SHIM_RATIO));
        }
    }

    // 3. The replays.
    println!(
        "\n## 3. Replays through the daemon socket\n\n\
         Two fixed scripts of {replay_len} calls (seed {seed}) on one host, one call at a time{}: \
         `agent-like` (reads of the same few files and commands, edits now and then, one \
         spelling per path; the hit-rate target is its) and `adversarial` (every spelling of a \
         path, symlinks, files created and removed; for staleness). Every read is checked \
         against the host's files right after its answer.\n",
        if think.is_zero() {
            ", back to back".to_string()
        } else {
            format!(", {} ms between calls", think.as_millis())
        }
    );
    let replays = run_replays();
    let agent = &replays[0];
    let line = format!(
        "agent-like replay hit rate (daemon counters): {:.1}% (target >= {:.0}%)",
        agent.stats_rate() * 100.0,
        TARGET_HIT_RATE * 100.0
    );
    println!(
        "{} {line}",
        pass_miss(agent.stats_rate() >= TARGET_HIT_RATE)
    );
    verdicts.push((line, agent.stats_rate() >= TARGET_HIT_RATE));
    let stale: usize = replays.iter().map(|r| r.stale.len()).sum();
    let reads: usize = replays.iter().map(|r| r.reads).sum();
    let line =
        format!("stale answers in the replays: {stale} of {reads} checked reads (must be 0)");
    println!("{} {line}", pass_miss(stale == 0));
    verdicts.push((line, stale == 0));
    println!();
    let stale_probes = run_probes();
    let line =
        format!("targeted probes with a stale answer: {stale_probes} of {PROBES} (must be 0)");
    println!("{} {line}", pass_miss(stale_probes == 0));
    verdicts.push((line, stale_probes == 0));

    // 4. The summary.
    println!("\n## 4. Summary\n");
    println!(
        "{cpus} CPUs ({cpu_model}); one loopback OpenSSH sshd (the shim rows also reach it \
         through a delaying proxy, {far_label}); daemon, bench and shim on the same CPUs; \
         {secs} s per throughput run.\n"
    );
    let mut rows = Vec::new();
    for op in [Op::Stat, Op::Read] {
        let get = |way, clients| &results[&(op, way, clients)];
        let ssh = get(Way::Ssh, 1).samples.p50();
        for way in [Way::Cached, Way::Uncached, Way::Ssh] {
            let one = get(way, 1);
            let p50 = one.samples.p50();
            rows.push(vec![
                format!("{} {}", op.name(), way.name()),
                us(p50),
                us(one.samples.p99()),
                format!("{:.0}", one.rate()),
                format!("{:.0}", get(way, 8).rate()),
                format!("{:.0}", get(way, 64).rate()),
                format!("{:.1}x", ssh.as_secs_f64() / p50.as_secs_f64().max(1e-9)),
            ]);
        }
    }
    print_markdown(
        &[
            "path (daemon socket unless ssh)",
            "p50 µs",
            "p99 µs",
            "ops/s x1",
            "ops/s x8",
            "ops/s x64",
            "vs ssh + CM p50",
        ],
        &rows,
    );
    println!();
    let mut rows = Vec::new();
    for (label, _) in &shims {
        for op in [Op::Stat, Op::Read] {
            let (cached, uncached, ratio) = shim_ratios[&(label.clone(), op)];
            rows.push(vec![
                format!("{} via MCP shim ({label})", op.name()),
                us(cached),
                us(uncached),
                format!("{ratio:.1}x"),
            ]);
        }
    }
    print_markdown(
        &[
            "path",
            "cached p50 µs",
            "uncached p50 µs",
            "uncached / cached",
        ],
        &rows,
    );
    println!();
    print_markdown(
        &[
            "replay",
            "calls",
            "cacheable reads",
            "hit rate (counters)",
            "hit rate (answers)",
            "ceiling (unchanged answers)",
            "stale",
        ],
        &replays
            .iter()
            .map(|replay| {
                vec![
                    format!("{} (seed {seed})", replay.mix),
                    replay.calls.to_string(),
                    replay.reads.to_string(),
                    format!("{:.1}%", replay.stats_rate() * 100.0),
                    format!("{:.1}%", replay.answer_rate() * 100.0),
                    format!("{:.1}%", replay.ceiling() * 100.0),
                    replay.stale.len().to_string(),
                ]
            })
            .collect::<Vec<_>>(),
    );
    println!("\nTargets:\n");
    for (line, pass) in &verdicts {
        println!("- {} {line}", pass_miss(*pass));
    }

    if stale == 0 && stale_probes == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "FAIL: {stale} stale answers in the replays, {stale_probes} probes with a stale \
             answer (see above)"
        );
        ExitCode::FAILURE
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Stat,
    Read,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Stat => "stat",
            Op::Read => "read_file 4 KiB",
        }
    }

    fn request(self, path: &str, max_age_secs: Option<u64>) -> Request {
        match self {
            Op::Stat => Request::Stat(StatRequest {
                host: HOST.into(),
                path: path.into(),
                follow_symlinks: false,
                max_age_secs,
            }),
            Op::Read => Request::ReadFile(ReadFileRequest {
                host: HOST.into(),
                path: path.into(),
                max_age_secs,
                ..ReadFileRequest::default()
            }),
        }
    }

    /// Whether the answer came from the cache; an error when it is not
    /// the answer expected.
    fn check(self, reply: &Reply) -> Result<bool, String> {
        let (response, cached) = match reply {
            Ok(Response::Cached(c)) => (&*c.response, true),
            Ok(response) => (response, false),
            Err(e) => return Err(format!("{} failed: {e:?}", self.name())),
        };
        match (self, response) {
            (Op::Stat, Response::Stat(s)) if s.size == FILE_SIZE as u64 => Ok(cached),
            (Op::Read, Response::ReadFile(c)) if c.data.len() == FILE_SIZE => Ok(cached),
            _ => Err(format!("{}: unexpected answer {response:?}", self.name())),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    Cached,
    Uncached,
    Ssh,
}

impl Way {
    fn name(self) -> &'static str {
        match self {
            Way::Cached => "cached",
            Way::Uncached => "uncached",
            Way::Ssh => "ssh + CM",
        }
    }

    fn max_age(self) -> Option<u64> {
        match self {
            Way::Uncached => Some(0),
            _ => None,
        }
    }
}

/// One throughput run.
#[derive(Default)]
struct Run {
    samples: Samples,
    elapsed: Duration,
    /// Answers that came from the cache.
    cached: u64,
    errors: u64,
    first_error: Option<String>,
    /// CPU the daemon used, in cores.
    daemon_cpu: Option<f64>,
    /// CPU this process (and, for ssh, its children) used, in cores.
    bench_cpu: Option<f64>,
    /// p50 of each round, when the run was made in rounds.
    round_p50s: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.samples.len() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn absorb(&mut self, other: Run) {
        self.samples.extend(other.samples);
        self.cached += other.cached;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn client_info() -> ClientInfo {
    ClientInfo {
        binary: "sshmcp-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..ClientInfo::default()
    }
}

async fn connect(socket: &Path) -> DaemonClient {
    DaemonClient::connect(socket, client_info(), sshmcp_proto::DEFAULT_MAX_FRAME)
        .await
        .expect("connect to sshmcpd")
}

async fn call(client: &DaemonClient, request: Request) -> Reply {
    match tokio::time::timeout(CALL_TIMEOUT, client.request(request)).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => panic!("the daemon connection failed: {e}"),
        Err(_) => panic!("no reply within {CALL_TIMEOUT:?}"),
    }
}

/// `clients` connections, each calling `op` in a closed loop over the
/// files, until `limit` passes or the run's call budget is spent.
async fn socket_run(
    daemon: &Daemon,
    op: Op,
    way: Way,
    paths: &Arc<Vec<String>>,
    clients: usize,
    limit: Duration,
) -> Run {
    if clients > 1 {
        return socket_round(daemon, op, way, paths, clients, limit).await;
    }
    // One client's latency depends on where the scheduler puts the two
    // ends (same CPU or not): measure it in rounds, each on a new
    // connection, and keep each round's p50 to show the spread.
    let mut total = Run::default();
    let (mut daemon_cpu, mut bench_cpu) = (0.0, 0.0);
    for _ in 0..LATENCY_ROUNDS {
        let round = socket_round(daemon, op, way, paths, 1, limit / LATENCY_ROUNDS as u32).await;
        total.round_p50s.push(round.samples.p50());
        total.elapsed += round.elapsed;
        daemon_cpu += round.daemon_cpu.unwrap_or(0.0) * round.elapsed.as_secs_f64();
        bench_cpu += round.bench_cpu.unwrap_or(0.0) * round.elapsed.as_secs_f64();
        total.absorb(round);
    }
    total.daemon_cpu = Some(daemon_cpu / total.elapsed.as_secs_f64().max(1e-9));
    total.bench_cpu = Some(bench_cpu / total.elapsed.as_secs_f64().max(1e-9));
    total
}

/// `clients` connections calling at once for `limit`.
async fn socket_round(
    daemon: &Daemon,
    op: Op,
    way: Way,
    paths: &Arc<Vec<String>>,
    clients: usize,
    limit: Duration,
) -> Run {
    let mut conns = Vec::with_capacity(clients);
    for _ in 0..clients {
        conns.push(connect(daemon.socket()).await);
    }
    // Warm up: the entries are there (cached) and the SFTP sessions open.
    for round in 0..3 {
        for path in paths.iter() {
            let reply = call(&conns[0], op.request(path, way.max_age())).await;
            let cached = op.check(&reply).unwrap_or_else(|e| panic!("{e}"));
            if way == Way::Cached && round > 0 {
                assert!(
                    cached,
                    "a warm {} of {path} was not served from the cache",
                    op.name()
                );
            }
        }
    }
    let per_client = (MAX_CALLS_PER_RUN / clients).max(1);
    let daemon_before = cpu_ticks(daemon.pid());
    let bench_before = cpu_ticks(std::process::id());
    let start = Instant::now();
    let deadline = start + limit;
    let tasks: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let paths = Arc::clone(paths);
            tokio::spawn(async move {
                let mut run = Run::default();
                let mut k = i;
                while run.samples.len() < per_client && Instant::now() < deadline {
                    let request = op.request(&paths[k % paths.len()], way.max_age());
                    k += 1;
                    let t = Instant::now();
                    let reply = tokio::time::timeout(CALL_TIMEOUT, client.request(request)).await;
                    let took = t.elapsed();
                    let outcome = match reply {
                        Ok(Ok(reply)) => op.check(&reply),
                        Ok(Err(e)) => Err(format!("connection: {e}")),
                        Err(_) => Err(format!("no reply within {CALL_TIMEOUT:?}")),
                    };
                    match outcome {
                        Ok(cached) => {
                            run.samples.push(took);
                            run.cached += u64::from(cached);
                        }
                        Err(e) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(e);
                            if run.errors > 100 {
                                break;
                            }
                        }
                    }
                }
                (run, client)
            })
        })
        .collect();
    let mut total = Run::default();
    let mut clients_done = Vec::new();
    for task in tasks {
        let (run, client) = task.await.expect("client task");
        total.absorb(run);
        clients_done.push(client);
    }
    total.elapsed = start.elapsed();
    total.daemon_cpu = cpu_cores(daemon_before, cpu_ticks(daemon.pid()), total.elapsed);
    total.bench_cpu = cpu_cores(bench_before, cpu_ticks(std::process::id()), total.elapsed);
    drop(clients_done);
    total
}

/// `clients` threads, each running `ssh host stat|cat <file>` over the
/// ControlMaster in a closed loop until `limit` passes.
fn ssh_run(
    fleet: &Fleet,
    control_opt: &str,
    op: Op,
    paths: &[String],
    clients: usize,
    limit: Duration,
) -> Run {
    let once = |k: usize| -> Result<(), String> {
        let mut cmd = fleet.ssh(HOST);
        cmd.args(["-o", control_opt, "-o", "ControlMaster=no"]);
        match op {
            Op::Stat => cmd.args(["stat", &paths[k % paths.len()]]),
            Op::Read => cmd.args(["cat", &paths[k % paths.len()]]),
        };
        let out = output_exact(&mut cmd, CALL_TIMEOUT)?;
        if !out.status.success() {
            return Err(format!(
                "ssh {}: {} {}",
                op.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if op == Op::Read && out.stdout.len() != FILE_SIZE {
            return Err(format!("ssh cat gave {} bytes", out.stdout.len()));
        }
        Ok(())
    };
    for k in 0..3 {
        once(k).unwrap_or_else(|e| panic!("{e}"));
    }
    let per_client = (MAX_CALLS_PER_RUN / clients).max(1);
    let bench_before = cpu_ticks_with_children(std::process::id());
    let start = Instant::now();
    let deadline = start + limit;
    let mut total = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|i| {
                let once = &once;
                scope.spawn(move || {
                    let mut run = Run::default();
                    let mut k = i;
                    while run.samples.len() < per_client && Instant::now() < deadline {
                        let t = Instant::now();
                        let outcome = once(k);
                        k += 1;
                        match outcome {
                            Ok(()) => run.samples.push(t.elapsed()),
                            Err(e) => {
                                run.errors += 1;
                                run.first_error.get_or_insert(e);
                                if run.errors > 20 {
                                    break;
                                }
                            }
                        }
                    }
                    run
                })
            })
            .collect();
        let mut total = Run::default();
        for handle in handles {
            total.absorb(handle.join().expect("ssh client thread"));
        }
        total
    });
    total.elapsed = start.elapsed();
    total.bench_cpu = cpu_cores(
        bench_before,
        cpu_ticks_with_children(std::process::id()),
        total.elapsed,
    );
    total
}

/// Runs `cmd` to its end like [`Command::output`], waiting for it exactly
/// (no polling, so short commands are timed as they are), but within
/// `timeout`: past it the program is killed.
fn output_exact(cmd: &mut Command, timeout: Duration) -> Result<Output, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let pid = child.id();
    let (done, watch) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = watch.recv_timeout(timeout) {
            // The child has not been reaped (we hear before it is), so the
            // pid is still its own.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output();
    let _ = done.send(());
    let _ = watchdog.join();
    out.map_err(|e| format!("waiting for {cmd:?}: {e}"))
}

/// Cached and uncached `stat` and `read_file` through one shim, one call
/// at a time.
fn shim_bench(
    daemon: &Daemon,
    host: &str,
    paths: &[String],
    limit: Duration,
) -> BTreeMap<(Op, Way), Samples> {
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let mut out = BTreeMap::new();
    for op in [Op::Stat, Op::Read] {
        for way in [Way::Cached, Way::Uncached] {
            let (tool, iters) = match (op, way) {
                (Op::Stat, _) => ("stat", 3000),
                (Op::Read, _) => ("read_file", 3000),
            };
            let args = |k: usize| {
                let mut args = json!({"host": host, "path": paths[k % paths.len()]});
                if way == Way::Uncached {
                    args["max_age_secs"] = json!(0);
                }
                args
            };
            let judge = |result: &Value| {
                assert_eq!(result["isError"], json!(false), "{tool} failed: {result}");
                let cached = result["structuredContent"]["cached"] == json!(true);
                assert_eq!(
                    cached,
                    way == Way::Cached,
                    "{tool} ({}) answered {}from the cache: {result}",
                    way.name(),
                    if cached { "" } else { "not " }
                );
            };
            // Warm up (an entry may have outlived its TTL since it was
            // stored), with the kit's check that the text carries the
            // structured content.
            for k in 0..FILES {
                let result = mcp.call_tool(tool, args(k));
                assert_eq!(result["isError"], json!(false), "{tool} failed: {result}");
            }
            for k in 0..FILES {
                judge(&mcp.call_tool(tool, args(k)));
            }
            let mut samples = Samples::default();
            let deadline = Instant::now() + limit * 2;
            let mut k = 0;
            while samples.len() < iters && Instant::now() < deadline {
                let params = json!({"name": tool, "arguments": args(k)});
                k += 1;
                let t = Instant::now();
                let response = mcp.request("tools/call", params);
                let took = t.elapsed();
                judge(&response["result"]);
                samples.push(took);
            }
            eprintln!(
                "  shim {host} {tool} {}: {} calls, p50 {} us",
                way.name(),
                samples.len(),
                us(samples.p50())
            );
            out.insert((op, way), samples);
        }
    }
    out
}

/// Starts a [`DelayProxy`] of `DELAY_ONE_WAY` to the fleet's sshd and
/// names it `FAR_HOST` in the fleet's ssh_config, as the kit's own alias
/// but for the address, with the sshd's host key recorded for the proxy's
/// address in a known_hosts file of its own (host keys are still checked).
fn far_alias(fleet: &Fleet) -> DelayProxy {
    let server = fleet.server(0);
    let proxy = DelayProxy::start((server.addr(), server.port()).into(), DELAY_ONE_WAY);
    let addr = proxy.addr();
    let known_hosts = fleet.dir().join("known_hosts_far");
    fs::write(
        &known_hosts,
        format!(
            "[{}]:{} {}\n",
            addr.ip(),
            addr.port(),
            server.host_key_public()
        ),
    )
    .unwrap_or_else(|e| panic!("write {}: {e}", known_hosts.display()));
    fleet.append_ssh_config(&format!(
        "Host {FAR_HOST}\n\
         \x20   HostName {ip}\n\
         \x20   Port {port}\n\
         \x20   User {user}\n\
         \x20   IdentityFile {key}\n\
         \x20   IdentitiesOnly yes\n\
         \x20   UserKnownHostsFile {known_hosts}\n\
         \x20   StrictHostKeyChecking yes\n",
        ip = addr.ip(),
        port = addr.port(),
        user = test_user().name(),
        key = fleet.key().path().display(),
        known_hosts = known_hosts.display(),
    ));
    proxy
}

/// Milliseconds with up to three decimals, trailing zeros dropped.
fn ms1(d: Duration) -> String {
    let text = format!("{:.3}", d.as_secs_f64() * 1e3);
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

// ---------------------------------------------------------------------------
// The replay.

/// One call of the replay script.
#[derive(Debug, Clone)]
enum Step {
    Read {
        path: String,
    },
    Stat {
        path: String,
        follow: bool,
    },
    List {
        path: String,
    },
    /// An `exec` with `cache_secs`: a read-only command whose output the
    /// bench can work out from the files.
    CachedExec {
        command: String,
        truth: Truth,
    },
    /// An `exec` without `cache_secs` (it may change files).
    Exec {
        command: String,
    },
    Write {
        path: String,
        data: Vec<u8>,
        create_dirs: bool,
    },
    Remove {
        path: String,
    },
    /// `mkdir` with `parents`.
    Mkdir {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
}

/// What a cached command prints, in terms of the files.
#[derive(Debug, Clone)]
enum Truth {
    /// `cat <path>`
    Cat(String),
    /// `wc -c < <path>`
    Bytes(String),
    /// `head -n 3 <path>`
    Head(String),
    /// `ls <dir>` (compared as a set of lines: `ls` sorts by locale)
    Ls(String),
}

impl Step {
    fn kind(&self) -> &'static str {
        match self {
            Step::Read { .. } => "read_file",
            Step::Stat { .. } => "stat",
            Step::List { .. } => "list_dir",
            Step::CachedExec { .. } => "exec cache_secs",
            Step::Exec { .. } => "exec",
            Step::Write { .. } => "write_file",
            Step::Remove { .. } => "remove",
            Step::Mkdir { .. } => "mkdir",
            Step::Rename { .. } => "rename",
        }
    }

    fn is_read(&self) -> bool {
        matches!(
            self,
            Step::Read { .. } | Step::Stat { .. } | Step::List { .. } | Step::CachedExec { .. }
        )
    }

    fn describe(&self) -> String {
        match self {
            Step::Read { path }
            | Step::List { path }
            | Step::Remove { path }
            | Step::Mkdir { path } => format!("{} {path}", self.kind()),
            Step::Rename { from, to } => format!("rename {from} -> {to}"),
            Step::Stat { path, follow } => format!("stat {path} (follow {follow})"),
            Step::CachedExec { command, .. } | Step::Exec { command } => {
                format!("{} `{command}`", self.kind())
            }
            Step::Write {
                path,
                data,
                create_dirs,
            } => format!(
                "write_file {path} ({} bytes{})",
                data.len(),
                if *create_dirs { ", create_dirs" } else { "" }
            ),
        }
    }

    fn request(&self) -> Request {
        let exec = |command: &str, cache_secs| {
            Request::Exec(ExecRequest {
                host: HOST.into(),
                command: command.into(),
                cache_secs,
                ..ExecRequest::default()
            })
        };
        match self {
            Step::Read { path } => Request::ReadFile(ReadFileRequest {
                host: HOST.into(),
                path: path.clone(),
                ..ReadFileRequest::default()
            }),
            Step::Stat { path, follow } => Request::Stat(StatRequest {
                host: HOST.into(),
                path: path.clone(),
                follow_symlinks: *follow,
                max_age_secs: None,
            }),
            Step::List { path } => Request::ListDir(ListDirRequest {
                host: HOST.into(),
                path: path.clone(),
                ..ListDirRequest::default()
            }),
            Step::CachedExec { command, .. } => exec(command, Some(600)),
            Step::Exec { command } => exec(command, None),
            Step::Write {
                path,
                data,
                create_dirs,
            } => Request::WriteFile(WriteFileRequest {
                host: HOST.into(),
                path: path.clone(),
                data: data.clone(),
                mode: None,
                append: false,
                create_dirs: *create_dirs,
            }),
            Step::Mkdir { path } => Request::Mkdir(MkdirRequest {
                host: HOST.into(),
                path: path.clone(),
                parents: true,
                mode: None,
            }),
            Step::Rename { from, to } => Request::Rename(RenameRequest {
                host: HOST.into(),
                from: from.clone(),
                to: to.clone(),
                overwrite: false,
            }),
            Step::Remove { path } => Request::Remove(RemoveRequest {
                host: HOST.into(),
                path: path.clone(),
                recursive: false,
            }),
        }
    }
}

/// The replay's tree, below its root in the scratch directory: eight files
/// an agent keeps reading, three directories, and `conf`, a symlink to
/// `etc`.
const REPLAY_FILES: [&str; 8] = [
    "etc/alpha.conf",
    "etc/bravo.conf",
    "etc/charlie.conf",
    "etc/delta.conf",
    "etc/echo.conf",
    "src/main.rs",
    "src/lib.rs",
    "logs/app.log",
];
/// How often each file is read, in parts of 100: a few hot files.
const FILE_WEIGHTS: [u64; 8] = [26, 18, 13, 11, 9, 9, 7, 7];
/// The directories: the root itself, three real ones, and the symlink.
const REPLAY_DIRS: [&str; 5] = ["", "etc", "src", "logs", "conf"];

/// What a replay script is made of.
struct Mix {
    name: &'static str,
    /// Parts of 100 for: read_file, stat, list_dir, exec with
    /// `cache_secs`, exec without, write_file, creating or removing a file.
    weights: [u64; 7],
    /// Percent of paths spelled the usual (absolute) way; the rest are
    /// home-relative, with `//` and `/./`, or through the symlink.
    usual_spelling: u64,
    /// Cached commands name any file (else a fixed handful of commands).
    wide_commands: bool,
}

/// What an agent does in a session: mostly reads of the same few files,
/// the same few commands, edits now and then, one spelling per path.
const AGENT: Mix = Mix {
    name: "agent-like",
    weights: [50, 12, 8, 10, 10, 8, 2],
    usual_spelling: 95,
    wide_commands: false,
};

/// For staleness more than hit rate: every spelling of a path, symlinks,
/// files created and removed, many distinct commands.
const ADVERSARIAL: Mix = Mix {
    name: "adversarial",
    weights: [46, 16, 8, 10, 8, 8, 4],
    usual_spelling: 60,
    wide_commands: true,
};

/// How a path is spelled: agents mostly use one spelling, sometimes
/// another (home-relative, doubled slashes, through a symlink).
struct Spell {
    /// The replay's root, absolute.
    abs: String,
    /// The replay's root, relative to the remote home.
    rel: String,
    /// Percent of the usual, absolute spelling.
    usual: u64,
}

impl Spell {
    /// `path` (below the root) as an agent might write it.
    fn any(&self, rng: &mut Prng, path: &str) -> String {
        let roll = rng.below(100);
        let odd = 100 - self.usual;
        if roll < self.usual {
            self.abs(path)
        } else if roll < self.usual + odd / 2 {
            self.rel(path)
        } else if roll < self.usual + odd * 3 / 4 {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
            format!("{}//{dir}/./{name}", self.abs)
        } else {
            self.via_link(path)
        }
    }

    fn abs(&self, path: &str) -> String {
        if path.is_empty() {
            self.abs.clone()
        } else {
            format!("{}/{path}", self.abs)
        }
    }

    fn rel(&self, path: &str) -> String {
        if path.is_empty() {
            self.rel.clone()
        } else {
            format!("{}/{path}", self.rel)
        }
    }

    /// Through the `conf -> etc` symlink when the path is under `etc`.
    fn via_link(&self, path: &str) -> String {
        match path.strip_prefix("etc/") {
            Some(name) => format!("{}/conf/{name}", self.abs),
            None => self.abs(path),
        }
    }
}

/// The fixed script: `len` calls of `mix` from `seed`.
fn script(mix: &Mix, spell: &Spell, len: usize, seed: u64) -> Vec<Step> {
    let mut rng = Prng::new(seed);
    let mut steps = Vec::with_capacity(len);
    let pick_file = |rng: &mut Prng| {
        let mut roll = rng.below(FILE_WEIGHTS.iter().sum());
        for (i, w) in FILE_WEIGHTS.iter().enumerate() {
            if roll < *w {
                return i;
            }
            roll -= w;
        }
        FILE_WEIGHTS.len() - 1
    };
    // The handful of read-only commands an agent repeats.
    let few_commands: Vec<(String, Truth)> = vec![
        (
            format!("cat {}", spell.abs("etc/alpha.conf")),
            Truth::Cat(spell.abs("etc/alpha.conf")),
        ),
        (
            format!("wc -c < {}", spell.abs("etc/bravo.conf")),
            Truth::Bytes(spell.abs("etc/bravo.conf")),
        ),
        (
            format!("head -n 3 {}", spell.abs("src/main.rs")),
            Truth::Head(spell.abs("src/main.rs")),
        ),
        (
            format!("ls {}", spell.abs("etc")),
            Truth::Ls(spell.abs("etc")),
        ),
        (
            format!("ls {}", spell.abs("src")),
            Truth::Ls(spell.abs("src")),
        ),
        (
            format!("head -n 3 {}", spell.abs("logs/app.log")),
            Truth::Head(spell.abs("logs/app.log")),
        ),
    ];
    let bounds: Vec<u64> = mix
        .weights
        .iter()
        .scan(0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect();
    // Files the script makes and removes: `etc/new<letter>.conf`.
    let mut created: Vec<String> = Vec::new();
    let mut next_letter = b'a';
    let mut last_touched: Option<String> = None;
    let mut version = 0u64;
    while steps.len() < len {
        let roll = rng.below(bounds[6]);
        let step = if roll < bounds[0] {
            let file = REPLAY_FILES[pick_file(&mut rng)];
            Step::Read {
                path: spell.any(&mut rng, file),
            }
        } else if roll < bounds[1] {
            let which = rng.below(100);
            let (path, follow) = if which < 55 {
                let file = REPLAY_FILES[pick_file(&mut rng)];
                (
                    spell.any(&mut rng, file),
                    mix.wide_commands && rng.chance(20),
                )
            } else if which < 80 {
                let dir = REPLAY_DIRS[rng.below(4) as usize];
                (spell.abs(dir), false)
            } else if which < 88 && mix.wide_commands {
                (spell.abs("conf"), rng.chance(50))
            } else if which < 95 {
                let name = last_touched
                    .clone()
                    .unwrap_or_else(|| "etc/none.conf".into());
                (spell.any(&mut rng, &name), false)
            } else {
                let name = format!("etc/new{}.conf", next_letter as char);
                (spell.abs(&name), false)
            };
            Step::Stat { path, follow }
        } else if roll < bounds[2] {
            let dirs = if mix.wide_commands { 5 } else { 4 };
            Step::List {
                path: spell.abs(REPLAY_DIRS[rng.below(dirs) as usize]),
            }
        } else if roll < bounds[3] {
            // Commands spelled the same way each time, as an agent
            // repeats them.
            if !mix.wide_commands {
                let (command, truth) =
                    few_commands[rng.below(few_commands.len() as u64) as usize].clone();
                Step::CachedExec { command, truth }
            } else {
                let abs = spell.abs(REPLAY_FILES[pick_file(&mut rng)]);
                match rng.below(4) {
                    0 => Step::CachedExec {
                        command: format!("cat {abs}"),
                        truth: Truth::Cat(abs),
                    },
                    1 => Step::CachedExec {
                        command: format!("wc -c < {abs}"),
                        truth: Truth::Bytes(abs),
                    },
                    2 => Step::CachedExec {
                        command: format!("head -n 3 {abs}"),
                        truth: Truth::Head(abs),
                    },
                    _ => {
                        let dir = spell.abs(REPLAY_DIRS[1 + rng.below(3) as usize]);
                        Step::CachedExec {
                            command: format!("ls {dir}"),
                            truth: Truth::Ls(dir),
                        }
                    }
                }
            }
        } else if roll < bounds[4] {
            version += 1;
            let kind = rng.below(10);
            let command = if kind < 3 {
                let file = REPLAY_FILES[pick_file(&mut rng) % 5];
                format!(
                    "sed -i 's/^mode = .*/mode = v{version}/' {}",
                    spell.any(&mut rng, file)
                )
            } else if kind < 6 {
                let file = if rng.chance(60) {
                    "logs/app.log"
                } else {
                    REPLAY_FILES[pick_file(&mut rng)]
                };
                format!("echo 'event {version}' >> {}", spell.any(&mut rng, file))
            } else {
                // Read-only, without `cache_secs`: the parser shows it
                // changes nothing.
                format!(
                    "grep -c key {} || true",
                    spell.abs(REPLAY_FILES[pick_file(&mut rng)])
                )
            };
            Step::Exec { command }
        } else if roll < bounds[5] {
            version += 1;
            let file = REPLAY_FILES[pick_file(&mut rng)];
            Step::Write {
                path: spell.any(&mut rng, file),
                data: content(&mut rng, file, version),
                create_dirs: false,
            }
        } else {
            // Making and removing files; adversarially also new nested
            // directories (`mkdir -p`, `create_dirs`) and renames, half of
            // them spelled relative to the home.
            let what = rng.below(100);
            let wide = mix.wide_commands && next_letter <= b'z';
            let odd = |rng: &mut Prng, path: &str| {
                if rng.chance(50) {
                    spell.rel(path)
                } else {
                    spell.any(rng, path)
                }
            };
            if wide && what < 15 {
                let letter = next_letter as char;
                next_letter += 1;
                last_touched = Some(format!("etc/d{letter}"));
                steps.push(Step::Mkdir {
                    path: odd(&mut rng, &format!("etc/d{letter}/sub")),
                });
                continue;
            }
            if wide && what < 30 {
                version += 1;
                let letter = next_letter as char;
                next_letter += 1;
                let name = format!("src/m{letter}/mod.rs");
                last_touched = Some(format!("src/m{letter}"));
                steps.push(Step::Write {
                    path: odd(&mut rng, &name),
                    data: content(&mut rng, &name, version),
                    create_dirs: true,
                });
                continue;
            }
            if wide && what < 45 && !created.is_empty() {
                let from = created.remove(0);
                let to = format!("etc/new{}.conf", next_letter as char);
                next_letter += 1;
                created.push(to.clone());
                last_touched = Some(from.clone());
                steps.push(Step::Rename {
                    from: spell.any(&mut rng, &from),
                    to: odd(&mut rng, &to),
                });
                continue;
            }
            if (what < 75 || created.is_empty()) && next_letter <= b'z' {
                version += 1;
                let name = format!("etc/new{}.conf", next_letter as char);
                next_letter += 1;
                created.push(name.clone());
                last_touched = Some(name.clone());
                steps.push(Step::Write {
                    path: spell.any(&mut rng, &name),
                    data: content(&mut rng, &name, version),
                    create_dirs: false,
                });
                continue;
            }
            if created.is_empty() {
                continue;
            }
            let name = created.remove(0);
            last_touched = Some(name.clone());
            Step::Remove {
                path: spell.any(&mut rng, &name),
            }
        };
        steps.push(step);
    }
    steps
}

/// A config-like file: a `mode` line and some keys.
fn content(rng: &mut Prng, name: &str, version: u64) -> Vec<u8> {
    let mut text = format!("# {name}, version {version}\nmode = v{version}\n");
    for i in 0..(3 + rng.below(60)) {
        text.push_str(&format!("key{i} = value{}\n", rng.below(1_000_000)));
    }
    text.into_bytes()
}

/// What the replay found.
#[derive(Default)]
struct Replay {
    mix: &'static str,
    calls: usize,
    /// Cacheable reads, each checked against the files.
    reads: usize,
    /// Reads answered from the cache (`Response::Cached`, or an error
    /// saying it was).
    cached_answers: usize,
    /// Reads whose answer was the same as the last answer to the same
    /// call, spelled the same way: what a cache keyed by the call as
    /// written that forgot an answer exactly when it changed could have
    /// served. Without keeping what it writes, or folding spellings of a
    /// path into one, no cache that stays correct without asking the host
    /// serves more; this one does both (`write_file`'s bytes, and a
    /// home-relative path spelled from the home), so it can pass it.
    unchanged: usize,
    /// Per step kind: calls, answers from the cache, latency.
    by_kind: BTreeMap<&'static str, (usize, usize, Samples)>,
    stale: Vec<String>,
    /// Why reads were not answered from the cache, as far as the bench
    /// can tell from the script.
    misses: MissTracker,
    errors: Vec<String>,
    before: CacheStats,
    after: CacheStats,
    took: Duration,
}

impl Replay {
    fn stats_rate(&self) -> f64 {
        let hits = self.after.hits - self.before.hits;
        let misses = self.after.misses - self.before.misses;
        hits as f64 / ((hits + misses) as f64).max(1.0)
    }

    fn answer_rate(&self) -> f64 {
        self.cached_answers as f64 / (self.reads as f64).max(1.0)
    }

    fn ceiling(&self) -> f64 {
        self.unchanged as f64 / (self.reads as f64).max(1.0)
    }

    fn print(&self) {
        let (b, a) = (&self.before, &self.after);
        println!(
            "{} calls in {:.2} s.\n",
            self.calls,
            self.took.as_secs_f64()
        );
        let mut rows = Vec::new();
        for (kind, (n, cached, samples)) in &self.by_kind {
            let [p50, _, p99] = samples.percentiles();
            rows.push(vec![
                kind.to_string(),
                n.to_string(),
                if matches!(*kind, "exec" | "write_file" | "remove") {
                    "-".into()
                } else {
                    format!(
                        "{cached} ({:.0}%)",
                        *cached as f64 * 100.0 / (*n as f64).max(1.0)
                    )
                },
                us(p50),
                us(p99),
            ]);
        }
        print_markdown(&["call", "n", "from cache", "p50 µs", "p99 µs"], &rows);
        let invalidations: Vec<String> = a
            .invalidations
            .iter()
            .map(|count| {
                let before = b
                    .invalidations
                    .iter()
                    .find(|c| c.name == count.name)
                    .map_or(0, |c| c.count);
                format!("{} {}", count.name, count.count - before)
            })
            .collect();
        println!(
            "\ndaemon counters over the replay: hits {}, misses {}, revalidations {} \
             (hits confirmed by a stat), evictions {}; invalidations: {}",
            a.hits - b.hits,
            a.misses - b.misses,
            a.revalidations - b.revalidations,
            a.evictions - b.evictions,
            invalidations.join(", ")
        );
        println!(
            "hit rate: {:.1}% by the daemon's counters, {:.1}% by answers \
             ({} of {} cacheable reads said `Cached`)",
            self.stats_rate() * 100.0,
            self.answer_rate() * 100.0,
            self.cached_answers,
            self.reads
        );
        println!(
            "ceiling: {} of the {} reads ({:.1}%) had the same answer as the last time the \
             same call, spelled the same way, was made; a cache keyed by calls as written that \
             forgot an answer exactly when it changed would serve those and no more. This one \
             served {:.0}% of them.",
            self.unchanged,
            self.reads,
            self.ceiling() * 100.0,
            self.cached_answers as f64 * 100.0 / (self.unchanged as f64).max(1.0)
        );
        println!("\nreads not answered from the cache, by what came before them:\n");
        let rows: Vec<Vec<String>> = self
            .misses
            .reasons
            .iter()
            .map(|((kind, why), n)| vec![kind.to_string(), why.to_string(), n.to_string()])
            .collect();
        print_markdown(&["call", "what came before", "misses"], &rows);
        for error in self.errors.iter().take(10) {
            println!("ERROR {error}");
        }
        for stale in self.stale.iter().take(20) {
            println!("STALE {stale}");
        }
    }
}

async fn replay(
    client: &DaemonClient,
    home: &Path,
    scratch: &Path,
    mix: &Mix,
    len: usize,
    seed: u64,
    think: Duration,
) -> Replay {
    let user = test_user();
    // The tree, made directly on the host (the daemon has read none of it
    // yet); every later change goes through the daemon.
    let root = scratch.join(format!("replay-{}", mix.name));
    for dir in ["", "etc", "src", "logs"] {
        fs::create_dir(root.join(dir)).expect("mkdir");
    }
    let mut rng = Prng::new(seed ^ 0x5eed);
    for (i, file) in REPLAY_FILES.iter().enumerate() {
        put(&root.join(file), &content(&mut rng, file, i as u64), user);
    }
    std::os::unix::fs::symlink("etc", root.join("conf")).expect("symlink");
    std::os::unix::fs::lchown(root.join("conf"), Some(user.uid()), Some(user.gid()))
        .expect("lchown");
    for dir in ["etc", "src", "logs", ""] {
        own(&root.join(dir), user);
    }
    let spell = Spell {
        abs: root.display().to_string(),
        rel: root
            .strip_prefix(home)
            .expect("the scratch directory is in the home")
            .display()
            .to_string(),
        usual: mix.usual_spelling,
    };
    let steps = script(mix, &spell, len, seed);
    let mut out = Replay {
        mix: mix.name,
        before: cache_stats(client).await,
        ..Replay::default()
    };
    let mut last: HashMap<String, String> = HashMap::new();
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300) + think * len as u32;
    for (i, step) in steps.iter().enumerate() {
        if Instant::now() >= deadline {
            out.errors
                .push(format!("the replay ran out of time after {i} calls"));
            break;
        }
        if !think.is_zero() {
            tokio::time::sleep(think).await;
        }
        let t = Instant::now();
        let reply = call(client, step.request()).await;
        let took = t.elapsed();
        out.calls += 1;
        let (reply, cached, age_ms) = match reply {
            Ok(Response::Cached(c)) => (
                Ok(std::sync::Arc::unwrap_or_clone(c.response)),
                true,
                Some(c.age_ms),
            ),
            // A cached "not found" says so in its message.
            Err(e) if e.message.contains(CACHED_ERROR) => (Err(e), true, None),
            other => (other, false, None),
        };
        let entry = out
            .by_kind
            .entry(step.kind())
            .or_insert_with(|| (0, 0, Samples::default()));
        entry.0 += 1;
        entry.1 += usize::from(cached);
        entry.2.push(took);
        out.misses.note(i, step, cached, home);
        if step.is_read() {
            out.reads += 1;
            let answer = answer_of(&reply);
            let key = step.describe();
            out.unchanged += usize::from(last.get(&key) == Some(&answer));
            last.insert(key, answer);
            out.cached_answers += usize::from(cached);
            if let Err(why) = verify(step, &reply, home) {
                let source = match age_ms {
                    Some(age) => format!("cached, age {age} ms"),
                    None => "from the host".into(),
                };
                let recent: Vec<String> = steps[i.saturating_sub(4)..i]
                    .iter()
                    .map(Step::describe)
                    .collect();
                out.stale.push(format!(
                    "call {i}: {} ({source}): {why}; the calls before: {}",
                    step.describe(),
                    recent.join(" | ")
                ));
            }
        } else if let Err(e) = &reply {
            out.errors
                .push(format!("call {i}: {} failed: {e:?}", step.describe()));
        } else if let (Step::Exec { command }, Ok(Response::Exec(o))) = (step, &reply)
            && o.exit_code != Some(0)
        {
            out.errors.push(format!(
                "call {i}: `{command}` exited {:?}: {}",
                o.exit_code,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
    }
    out.took = start.elapsed();
    out.after = cache_stats(client).await;
    out
}

/// Sorts the replay's cache misses by what preceded them: nothing (the
/// first ask), an exec without `cache_secs` (the host's epoch moved), or a
/// write or remove of a related path; what is left is the cache's own
/// timing (a `read_file` answer past `read_file_fresh_ms` whose file changed
/// within 2 s, a TTL).
#[derive(Default)]
struct MissTracker {
    /// Per cache key, the call that last answered it.
    last_answer: std::collections::HashMap<String, usize>,
    last_exec: Option<usize>,
    /// Writes and removes: the call and the path as resolved locally.
    changes: Vec<(usize, PathBuf)>,
    reasons: BTreeMap<(&'static str, &'static str), usize>,
}

impl MissTracker {
    fn note(&mut self, i: usize, step: &Step, cached: bool, home: &Path) {
        let (key, resolved) = match step {
            Step::Read { path } => (format!("read {}", normalize(path)), Some(path)),
            Step::Stat { path, follow } => {
                (format!("stat {follow} {}", normalize(path)), Some(path))
            }
            Step::List { path } => (format!("list {}", normalize(path)), Some(path)),
            Step::CachedExec { command, .. } => (format!("exec {command}"), None),
            Step::Exec { .. } => {
                self.last_exec = Some(i);
                return;
            }
            Step::Write { path, .. } | Step::Remove { path } | Step::Mkdir { path } => {
                self.changes.push((i, resolve_local(home, path)));
                return;
            }
            Step::Rename { from, to } => {
                self.changes.push((i, resolve_local(home, from)));
                self.changes.push((i, resolve_local(home, to)));
                return;
            }
        };
        let resolved = resolved.map(|p| resolve_local(home, p));
        let previous = self.last_answer.insert(key, i);
        if cached {
            return;
        }
        let why = match previous {
            None => "first ask",
            Some(j) => {
                let exec = self.last_exec.filter(|e| *e > j);
                let change = self
                    .changes
                    .iter()
                    .rev()
                    .take_while(|(c, _)| *c > j)
                    .find(|(_, p)| {
                        resolved
                            .as_ref()
                            .is_none_or(|r| r.starts_with(p) || p.starts_with(r))
                    })
                    .map(|(c, _)| *c);
                match (exec, change) {
                    (Some(e), Some(c)) if c > e => "a related write/remove",
                    (Some(_), _) => match (step, &resolved) {
                        (Step::Read { .. }, Some(r)) if racy(r) => {
                            "an exec; file changed within 3 s (racy mtime)"
                        }
                        (Step::Read { .. }, _) => "an exec",
                        _ => "an exec (epoch moved)",
                    },
                    (None, Some(_)) => "a related write/remove",
                    (None, None) => match (step, &resolved) {
                        (Step::Read { .. }, Some(r)) if racy(r) => {
                            "no change; file changed within 3 s (racy mtime)"
                        }
                        _ => "no change",
                    },
                }
            }
        };
        *self.reasons.entry((step.kind(), why)).or_default() += 1;
    }
}

/// The file at `path` changed within the last 2 seconds (its mtime is
/// too recent for the daemon to trust it unchanged).
fn racy(path: &Path) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age <= Duration::from_secs(3))
}

/// `path` as the daemon keys it: `//`, `/./` and a trailing `/` folded.
fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if path.starts_with('/') {
        format!("/{}", parts.join("/"))
    } else {
        parts.join("/")
    }
}

/// Where `remote` is on this machine, symlinks resolved (through its
/// directory when it does not exist).
fn resolve_local(home: &Path, remote: &str) -> PathBuf {
    let path = local(home, remote);
    fs::canonicalize(&path).unwrap_or_else(|_| {
        match (path.parent().map(fs::canonicalize), path.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => path,
        }
    })
}

async fn cache_stats(client: &DaemonClient) -> CacheStats {
    match call(client, Request::Cache).await {
        Ok(Response::Cache(stats)) => stats,
        other => panic!("Cache answered {other:?}"),
    }
}

/// The local path of a remote one (the test host is this machine).
fn local(home: &Path, remote: &str) -> PathBuf {
    if remote.starts_with('/') {
        PathBuf::from(remote)
    } else {
        home.join(remote)
    }
}

/// Compare the daemon's answer to `step` with the files as they are now.
/// What a read answered, for comparing two answers to the same call: what
/// it says, not how long it took.
fn answer_of(reply: &Reply) -> String {
    match reply {
        Ok(Response::Exec(out)) => format!("{:?} {:?} {:?}", out.exit_code, out.stdout, out.stderr),
        // Less the note a cached error carries.
        Err(e) => format!(
            "{:?} {}",
            e.kind,
            e.message
                .split(&format!(" ({CACHED_ERROR}"))
                .next()
                .unwrap_or_default()
        ),
        other => format!("{other:?}"),
    }
}

fn verify(step: &Step, reply: &Reply, home: &Path) -> Result<(), String> {
    match step {
        Step::Read { path } => {
            let truth = fs::read(local(home, path));
            match (reply, truth) {
                (Ok(Response::ReadFile(c)), Ok(truth)) => {
                    if c.data != truth || c.size != truth.len() as u64 || c.truncated {
                        Err(format!(
                            "read {} bytes (size {}), the file has {} bytes{}",
                            c.data.len(),
                            c.size,
                            truth.len(),
                            if c.data.len() == truth.len() {
                                " (same length, other bytes)"
                            } else {
                                ""
                            }
                        ))
                    } else {
                        Ok(())
                    }
                }
                (Err(e), Err(t))
                    if e.kind == ErrorKind::NotFound
                        && t.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(())
                }
                (reply, truth) => Err(format!(
                    "answered {}, the file: {}",
                    brief(reply),
                    truth.map_or_else(|e| e.to_string(), |t| format!("{} bytes", t.len()))
                )),
            }
        }
        Step::Stat { path, follow } => {
            let path = local(home, path);
            let truth = if *follow {
                fs::metadata(&path)
            } else {
                fs::symlink_metadata(&path)
            };
            match (reply, truth) {
                (Ok(Response::Stat(s)), Ok(meta)) => same_stat(s, &meta),
                (Err(e), Err(t))
                    if e.kind == ErrorKind::NotFound
                        && t.kind() == std::io::ErrorKind::NotFound =>
                {
                    Ok(())
                }
                (reply, truth) => Err(format!(
                    "answered {}, the path: {}",
                    brief(reply),
                    truth.map_or_else(|e| e.to_string(), |m| format!("exists, {} bytes", m.len()))
                )),
            }
        }
        Step::List { path } => {
            let dir = local(home, path);
            let Ok(Response::ListDir(listing)) = reply else {
                return Err(format!("answered {}", brief(reply)));
            };
            let mut names: Vec<String> = fs::read_dir(&dir)
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .map(|e| {
                    e.expect("directory entry")
                        .file_name()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
            names.sort();
            let listed: Vec<&str> = listing.entries.iter().map(|e| e.path.as_str()).collect();
            if listed != names.iter().map(String::as_str).collect::<Vec<_>>() {
                return Err(format!("listed {listed:?}, the directory has {names:?}"));
            }
            for entry in &listing.entries {
                let meta = fs::symlink_metadata(dir.join(&entry.path))
                    .map_err(|e| format!("{}: {e}", entry.path))?;
                same_stat(entry, &meta).map_err(|e| format!("entry {}: {e}", entry.path))?;
            }
            Ok(())
        }
        Step::CachedExec { truth, .. } => {
            let Ok(Response::Exec(o)) = reply else {
                return Err(format!("answered {}", brief(reply)));
            };
            if o.exit_code != Some(0) {
                return Err(format!(
                    "exited {:?}: {}",
                    o.exit_code,
                    String::from_utf8_lossy(&o.stderr)
                ));
            }
            let read = |p: &str| fs::read(local(home, p)).map_err(|e| format!("{p}: {e}"));
            let (expected, got) = match truth {
                Truth::Cat(p) => (read(p)?, o.stdout.clone()),
                Truth::Bytes(p) => (
                    format!("{}\n", read(p)?.len()).into_bytes(),
                    o.stdout.clone(),
                ),
                Truth::Head(p) => {
                    let data = read(p)?;
                    let head: Vec<u8> = data
                        .split_inclusive(|b| *b == b'\n')
                        .take(3)
                        .flatten()
                        .copied()
                        .collect();
                    (head, o.stdout.clone())
                }
                Truth::Ls(p) => {
                    let mut names: Vec<String> = fs::read_dir(local(home, p))
                        .map_err(|e| format!("{p}: {e}"))?
                        .map(|e| {
                            e.expect("directory entry")
                                .file_name()
                                .to_string_lossy()
                                .into_owned()
                        })
                        .collect();
                    names.sort();
                    let mut got: Vec<String> = String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .map(str::to_owned)
                        .collect();
                    got.sort();
                    (names.join("\n").into_bytes(), got.join("\n").into_bytes())
                }
            };
            if expected == got {
                Ok(())
            } else {
                Err(format!(
                    "printed {:?}, the files say {:?}",
                    shorten(&got),
                    shorten(&expected)
                ))
            }
        }
        _ => Ok(()),
    }
}

fn same_stat(s: &FileStat, meta: &fs::Metadata) -> Result<(), String> {
    let kind = if meta.file_type().is_symlink() {
        FileKind::Symlink
    } else if meta.is_dir() {
        FileKind::Dir
    } else if meta.is_file() {
        FileKind::File
    } else {
        FileKind::Other
    };
    let mode = meta.permissions().mode() & 0o7777;
    let mtime = meta.mtime().max(0) as u64;
    let mut diffs = Vec::new();
    if s.kind != kind {
        diffs.push(format!("kind {:?} vs {kind:?}", s.kind));
    }
    if s.size != meta.len() {
        diffs.push(format!("size {} vs {}", s.size, meta.len()));
    }
    if s.mode & 0o7777 != mode {
        diffs.push(format!("mode {:o} vs {mode:o}", s.mode));
    }
    if s.mtime != mtime {
        diffs.push(format!("mtime {} vs {mtime}", s.mtime));
    }
    if s.uid.is_some_and(|u| u != meta.uid()) || s.gid.is_some_and(|g| g != meta.gid()) {
        diffs.push(format!(
            "owner {:?}:{:?} vs {}:{}",
            s.uid,
            s.gid,
            meta.uid(),
            meta.gid()
        ));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(format!("daemon vs file: {}", diffs.join(", ")))
    }
}

fn brief(reply: &Reply) -> String {
    match reply {
        Ok(Response::ReadFile(c)) => format!("{} bytes", c.data.len()),
        Ok(Response::Stat(s)) => format!("{:?} of {} bytes, mtime {}", s.kind, s.size, s.mtime),
        Ok(Response::ListDir(l)) => format!("{} entries", l.entries.len()),
        Ok(other) => other.name().to_string(),
        Err(e) => format!("{:?} ({})", e.kind, e.message),
    }
}

fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() > 80 {
        format!(
            "{}... ({} bytes)",
            text.chars().take(80).collect::<String>(),
            bytes.len()
        )
    } else {
        text.into_owned()
    }
}

// ---------------------------------------------------------------------------
// Small helpers.

/// Write `data` to `path` as the test user's, last changed a minute ago.
fn put(path: &Path, data: &[u8], user: &sshmcp_testkit::TestUser) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    own(path, user);
    let file = fs::File::options()
        .write(true)
        .open(path)
        .expect("open to set mtime");
    file.set_modified(SystemTime::now() - Duration::from_secs(60))
        .expect("set mtime");
}

fn own(path: &Path, user: &sshmcp_testkit::TestUser) {
    std::os::unix::fs::chown(path, Some(user.uid()), Some(user.gid()))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pass_miss(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// Clock ticks per second of `/proc/<pid>/stat` (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    use std::sync::OnceLock;
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Fields of `/proc/<pid>/stat` after the command name.
fn proc_stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// User plus system CPU ticks of process `pid` (all its threads).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let f = proc_stat_fields(pid)?;
    // After the name: state, ppid, ..., utime is field 14, stime 15.
    Some(f.get(11)? + f.get(12)?)
}

/// As [`cpu_ticks`], plus the reaped children's (the `ssh` clients).
fn cpu_ticks_with_children(pid: u32) -> Option<u64> {
    let f = proc_stat_fields(pid)?;
    Some(f.get(11)? + f.get(12)? + f.get(13)? + f.get(14)?)
}

fn cpu_cores(before: Option<u64>, after: Option<u64>, elapsed: Duration) -> Option<f64> {
    let ticks = after?.checked_sub(before?)?;
    Some(ticks as f64 / clock_ticks() / elapsed.as_secs_f64().max(1e-9))
}

fn cores(value: Option<f64>) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.2}"))
}

// ---------------------------------------------------------------------------
// Targeted probes: short fixed sequences for corners of invalidation.

/// How many targeted probes there are.
const PROBES: usize = 4;

/// One probe: set-up calls, the change, then reads that must show it.
struct Probe {
    name: &'static str,
    steps: Vec<Step>,
}

/// Runs each probe in a fresh directory and checks every read in it;
/// returns each probe's name with what went stale, if anything.
async fn probes(
    client: &DaemonClient,
    home: &Path,
    scratch: &Path,
) -> Vec<(&'static str, Vec<String>)> {
    let user = test_user();
    let root = scratch.join("probes");
    fs::create_dir(&root).expect("mkdir probes");
    own(&root, user);
    let rel_of = |p: &Path| {
        p.strip_prefix(home)
            .expect("the scratch directory is in the home")
            .display()
            .to_string()
    };
    let mut out = Vec::new();
    for n in 0..PROBES {
        let dir = root.join(format!("p{n}"));
        fs::create_dir(&dir).expect("mkdir probe dir");
        put(&dir.join("f.txt"), b"original contents\n", user);
        own(&dir, user);
        // Let the directory's own mtime age too.
        let _ = fs::File::open(&dir)
            .and_then(|d| d.set_modified(SystemTime::now() - Duration::from_secs(60)));
        let abs = dir.display().to_string();
        let rel = rel_of(&dir);
        let list = Step::List { path: abs.clone() };
        let ls = Step::CachedExec {
            command: format!("ls {abs}"),
            truth: Truth::Ls(abs.clone()),
        };
        let probe = match n {
            0 => Probe {
                name: "mkdir -p of a new nested directory, spelled home-relative",
                steps: vec![
                    list.clone(),
                    list.clone(),
                    Step::Mkdir {
                        path: format!("{rel}/new/a/b/c/d"),
                    },
                    list.clone(),
                    Step::Stat {
                        path: format!("{abs}/new"),
                        follow: false,
                    },
                ],
            },
            1 => Probe {
                name: "write_file with create_dirs into a new directory, spelled home-relative",
                steps: vec![
                    list.clone(),
                    list.clone(),
                    Step::Write {
                        path: format!("{rel}/new/a/f.txt"),
                        data: b"new file\n".to_vec(),
                        create_dirs: true,
                    },
                    list.clone(),
                ],
            },
            2 => Probe {
                name: "the same, spelled absolute (control)",
                steps: vec![
                    list.clone(),
                    ls.clone(),
                    Step::Mkdir {
                        path: format!("{abs}/new/a/b"),
                    },
                    list.clone(),
                    ls.clone(),
                ],
            },
            _ => Probe {
                name: "exec rewrites a file at the same size and puts its old mtime back",
                steps: vec![
                    Step::Read {
                        path: format!("{abs}/f.txt"),
                    },
                    Step::Read {
                        path: format!("{abs}/f.txt"),
                    },
                    Step::Exec {
                        command: format!(
                            "cd {abs} && t=$(stat -c %Y f.txt) && printf 'ORIGINAL CONTENTS\\n' > f.txt && touch -d @$t f.txt"
                        ),
                    },
                    Step::Read {
                        path: format!("{abs}/f.txt"),
                    },
                ],
            },
        };
        let mut stale = Vec::new();
        for (i, step) in probe.steps.iter().enumerate() {
            let reply = call(client, step.request()).await;
            let (reply, age) = match reply {
                Ok(Response::Cached(c)) => (
                    Ok(std::sync::Arc::unwrap_or_clone(c.response)),
                    Some(c.age_ms),
                ),
                other => (other, None),
            };
            if step.is_read() {
                if let Err(why) = verify(step, &reply, home) {
                    stale.push(format!(
                        "call {i}, {} ({}): {why}",
                        step.describe(),
                        age.map_or("from the host".into(), |a| format!("cached, age {a} ms"))
                    ));
                }
            } else if let Err(e) = reply {
                stale.push(format!("call {i}, {} failed: {e:?}", step.describe()));
            }
        }
        out.push((probe.name, stale));
    }
    out
}
