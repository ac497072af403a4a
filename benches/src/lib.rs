//! Shared pieces of the benchmarks: latency samples and the tables they
//! print. Every benchmark runs the OpenSSH comparison in the same process
//! and prints ratios, so figures from different machines stay comparable.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

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

/// A TCP proxy on 127.0.0.1 that holds back every chunk it forwards, in
/// each direction, by a fixed one-way delay, so a loopback sshd looks like
/// a host some distance away (a delay `d` adds `2 d` to every round trip).
///
/// Each accepted connection is forwarded to `target` by two pipes, one a
/// direction: a reader task stamps each chunk with its arrival time and
/// queues it (a bounded queue: a reader that gets ahead waits), and a
/// writer task sends each chunk, in order, once `arrival + delay` has
/// passed. Both sockets have `TCP_NODELAY`. tokio's timer counts whole
/// milliseconds, so the writer sleeps the last millisecond on the blocking
/// pool with the OS's finer timer. The proxy runs on its own thread and
/// runtime; dropping it closes the listener and every connection.
#[derive(Debug)]
pub struct DelayProxy {
    addr: SocketAddr,
    one_way: Duration,
    connections: Arc<AtomicU64>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Largest chunk one read takes, and how many chunks a direction may hold.
const PROXY_CHUNK: usize = 64 * 1024;
const PROXY_QUEUE: usize = 256;

impl DelayProxy {
    /// Listens on 127.0.0.1 (an ephemeral port) and forwards every
    /// connection to `target`, a loopback address, `one_way` late each way.
    pub fn start(target: SocketAddr, one_way: Duration) -> DelayProxy {
        assert!(
            target.ip().is_loopback(),
            "the delay proxy forwards to loopback addresses only, not {target}"
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(16)
            .build()
            .expect("delay proxy runtime");
        let listener = runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("delay proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("delay proxy address");
        let connections = Arc::new(AtomicU64::new(0));
        let (shutdown, stop) = oneshot::channel();
        let counter = connections.clone();
        let thread = std::thread::Builder::new()
            .name("delay-proxy".into())
            .spawn(move || {
                runtime.block_on(accept_loop(listener, target, one_way, counter, stop));
                // Drops the connections' tasks and with them their sockets.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("delay proxy thread");
        DelayProxy {
            addr,
            one_way,
            connections,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Where to connect: 127.0.0.1 and the proxy's port.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The delay added to each direction.
    pub fn one_way(&self) -> Duration {
        self.one_way
    }

    /// The round trip the proxy adds: twice the one-way delay.
    pub fn rtt(&self) -> Duration {
        self.one_way * 2
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Round trips of 64-byte messages through a [`DelayProxy`] with
/// `one_way` delay to a loopback echo server: what the proxy really adds,
/// timer slack included. At most `rounds` round trips and about 2 s.
pub fn echo_rtt(one_way: Duration, rounds: usize) -> Samples {
    use std::io::{Read, Write};
    let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("echo: bind 127.0.0.1:0");
    let target = echo.local_addr().expect("echo address");
    let server = std::thread::spawn(move || {
        let Ok((mut stream, _)) = echo.accept() else {
            return;
        };
        let _ = stream.set_nodelay(true);
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            if stream.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    });
    let proxy = DelayProxy::start(target, one_way);
    let mut samples = Samples::default();
    let mut stream = std::net::TcpStream::connect(proxy.addr()).expect("echo: connect to proxy");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let deadline = Instant::now() + Duration::from_secs(2);
    let msg = [0x5a_u8; 64];
    let mut got = [0u8; 64];
    while samples.len() < rounds && Instant::now() < deadline {
        let start = Instant::now();
        if stream.write_all(&msg).is_err() || stream.read_exact(&mut got).is_err() {
            break;
        }
        samples.push(start.elapsed());
    }
    drop(stream);
    drop(proxy);
    let _ = server.join();
    samples
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    one_way: Duration,
    connections: Arc<AtomicU64>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((client, _)) = accepted else {
            continue;
        };
        connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let Ok(Ok(server)) =
                tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(target)).await
            else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            tokio::join!(
                pipe(client_read, server_write, one_way),
                pipe(server_read, client_write, one_way),
            );
        });
    }
}

/// One direction of a connection: chunks leave `delay` after they came,
/// in the order they came; EOF is passed on once the data before it is.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(PROXY_QUEUE);
    let reader = async move {
        let mut buf = vec![0u8; PROXY_CHUNK];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let arrived = Instant::now();
                    if tx.send((arrived, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
        // Dropping `tx` ends the writer after the queued chunks.
    };
    let writer = async move {
        while let Some((arrived, chunk)) = rx.recv().await {
            sleep_until(arrived + delay).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

/// Sleeps until `due` more finely than tokio's millisecond timer: the
/// whole milliseconds on the timer, the rest on the blocking pool.
async fn sleep_until(due: Instant) {
    let fine = Duration::from_millis(1);
    let now = Instant::now();
    if due <= now {
        return;
    }
    if due - now > fine * 2 {
        tokio::time::sleep_until((due - fine * 2).into()).await;
    }
    let left = due.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(left)).await;
    }
}

/// Start OpenSSH's warm path for `alias`: a ControlMaster on socket
/// `control`, kept `persist_secs` after its last client, with `extra`
/// options. Returns the `ControlPath=…` option its clients pass.
pub fn start_control_master(
    fleet: &sshmcp_testkit::Fleet,
    alias: &str,
    control: &std::path::Path,
    persist_secs: u64,
    extra: &[&str],
) -> String {
    let control_opt = format!("ControlPath={}", control.display());
    let persist = format!("ControlPersist={persist_secs}");
    let mut master = fleet.ssh(alias);
    master.args([
        "-o",
        "ControlMaster=yes",
        "-o",
        &persist,
        "-o",
        &control_opt,
    ]);
    for option in extra {
        master.args(["-o", option]);
    }
    master.args(["-N", "-f"]);
    let started = sshmcp_testkit::output_within(&mut master, Duration::from_secs(20));
    assert!(
        started.status.success(),
        "ControlMaster failed to start: {started:?}"
    );
    control_opt
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
    fn delay_proxy_delays_and_keeps_order() {
        use std::io::{Read, Write};
        let echo = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let target = echo.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut s, _) = echo.accept().expect("accept");
            let mut buf = [0u8; 4096];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => s.write_all(&buf[..n]).expect("echo"),
                }
            }
        });
        let proxy = DelayProxy::start(target, Duration::from_millis(5));
        let mut c = std::net::TcpStream::connect(proxy.addr()).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        for round in 0..5u8 {
            let t = Instant::now();
            let msg = [round; 100];
            c.write_all(&msg).expect("write");
            let mut got = [0u8; 100];
            c.read_exact(&mut got).expect("read");
            assert_eq!(got, msg);
            let took = t.elapsed();
            assert!(took >= Duration::from_millis(10), "round trip {took:?}");
            assert!(took < Duration::from_secs(1), "round trip {took:?}");
        }
        drop(c);
        drop(proxy);
        server.join().expect("echo thread");
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
