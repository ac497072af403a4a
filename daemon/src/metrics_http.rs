//! `[metrics] listen`: Prometheus' `/metrics`, served by a deliberately
//! tiny HTTP/1.1 responder.
//!
//! Everything that arrives is treated as hostile: a request head may be at
//! most [`MAX_HEAD`] bytes and must arrive within [`HEAD_TIMEOUT`], the
//! answer must be taken within [`WRITE_TIMEOUT`], and every connection is
//! closed after one answer. At most [`MAX_CONNECTIONS`] connections are
//! served at once and at most [`MAX_SCRAPES`] of them render; past either,
//! `503` (to at most [`MAX_CONNECTIONS`] more at once; past that the
//! connection is dropped). Only `GET` and `HEAD` of `/metrics` are served.
//!
//! Before each render the gauges are set from the daemon's state (pool,
//! memory, descriptors, cache), so a scrape always sees it as it is now.
//! The Prometheus recorder's histograms are drained every
//! [`UPKEEP_EVERY`] whether or not anyone scrapes, so they never grow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use sshmcp_proto::ConnState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::state::Daemon;
use crate::stats::names;

/// The largest request head read; a longer one gets `431`.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client has to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a client has to take the answer.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// After the answer, how long and how much of what the client still sends
/// is read and dropped before closing (see [`finish`]).
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;
/// Connections served at once (reading, rendering or writing).
const MAX_CONNECTIONS: usize = 64;
/// Renders at once.
const MAX_SCRAPES: usize = 8;
/// How often the Prometheus recorder's histogram samples are drained.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The text exposition format's content type.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";

/// Bind `[metrics] listen`; the error names the key.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot serve metrics on [metrics] listen = \"{addr}\": {e}"))?;
    tracing::info!(%addr, "serving Prometheus metrics at http://{addr}/metrics");
    Ok(listener)
}

/// Serve `/metrics` on `listener` until the daemon shuts down.
pub async fn serve(daemon: Arc<Daemon>, listener: TcpListener, handle: PrometheusHandle) {
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let refusals = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let scrapes = Arc::new(Semaphore::new(MAX_SCRAPES));
    let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
    loop {
        let stream = tokio::select! {
            () = daemon.shutdown.cancelled() => break,
            _ = upkeep.tick() => {
                handle.run_upkeep();
                continue;
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, most likely: wait, not spin.
                    tracing::warn!("metrics: cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if let Ok(permit) = connections.clone().try_acquire_owned() {
            let (daemon, handle, scrapes) = (daemon.clone(), handle.clone(), scrapes.clone());
            tokio::spawn(async move {
                answer(stream, &daemon, &handle, &scrapes).await;
                drop(permit);
            });
        } else if let Ok(permit) = refusals.clone().try_acquire_owned() {
            tokio::spawn(async move {
                let busy = response(
                    "503 Service Unavailable",
                    TEXT_TYPE,
                    b"too many connections\n",
                    false,
                );
                finish(stream, &busy).await;
                drop(permit);
            });
        }
    }
}

/// Read one request from `stream`, answer it and close.
async fn answer(
    mut stream: TcpStream,
    daemon: &Daemon,
    handle: &PrometheusHandle,
    scrapes: &Semaphore,
) {
    let reply = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Err(_) => response(
            "408 Request Timeout",
            TEXT_TYPE,
            b"request too slow\n",
            false,
        ),
        Ok(Err(Head::Closed)) => return,
        Ok(Err(Head::TooLarge)) => response(
            "431 Request Header Fields Too Large",
            TEXT_TYPE,
            b"request head over 8 KiB\n",
            false,
        ),
        Ok(Ok(head)) => match route(&head) {
            Route::Metrics { head_only } => match scrapes.try_acquire() {
                Ok(_permit) => {
                    refresh(daemon);
                    response(
                        "200 OK",
                        METRICS_TYPE,
                        handle.render().as_bytes(),
                        head_only,
                    )
                }
                Err(_) => response(
                    "503 Service Unavailable",
                    TEXT_TYPE,
                    b"too many scrapes at once\n",
                    head_only,
                ),
            },
            Route::NotFound { head_only } => response(
                "404 Not Found",
                TEXT_TYPE,
                b"not found: metrics are at /metrics\n",
                head_only,
            ),
            Route::BadMethod => response(
                "405 Method Not Allowed\r\nAllow: GET, HEAD",
                TEXT_TYPE,
                b"only GET and HEAD\n",
                false,
            ),
            Route::BadRequest => response("400 Bad Request", TEXT_TYPE, b"bad request\n", false),
        },
    };
    finish(stream, &reply).await;
}

/// Send `reply` and close. Closing a socket with input still unread
/// resets the connection, which can destroy the answer before the client
/// reads it; so after the answer, what the client still sends is read and
/// dropped for a moment ([`LINGER`], at most [`LINGER_BYTES`]) first.
async fn finish(mut stream: TcpStream, reply: &[u8]) {
    let send = async {
        stream.write_all(reply).await?;
        stream.shutdown().await
    };
    if !matches!(tokio::time::timeout(WRITE_TIMEOUT, send).await, Ok(Ok(()))) {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Why no request head was read.
enum Head {
    /// The client closed (or reset) the connection first.
    Closed,
    /// No blank line within [`MAX_HEAD`] bytes.
    TooLarge,
}

/// The request head: everything up to the blank line that ends it.
async fn read_head(stream: &mut TcpStream) -> Result<Vec<u8>, Head> {
    const CHUNK: usize = 1024;
    let mut head = Vec::with_capacity(CHUNK);
    let mut chunk = [0u8; CHUNK];
    loop {
        if let Some(end) = head_end(&head) {
            head.truncate(end);
            return Ok(head);
        }
        let room = MAX_HEAD - head.len();
        if room == 0 {
            return Err(Head::TooLarge);
        }
        match stream.read(&mut chunk[..room.min(CHUNK)]).await {
            Ok(0) | Err(_) => return Err(Head::Closed),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Where the head's blank line starts (`\r\n\r\n`, or a bare `\n\n`).
fn head_end(bytes: &[u8]) -> Option<usize> {
    (0..bytes.len())
        .find(|&i| bytes[i..].starts_with(b"\r\n\r\n") || bytes[i..].starts_with(b"\n\n"))
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Metrics { head_only: bool },
    NotFound { head_only: bool },
    BadMethod,
    BadRequest,
}

/// Route a request by its first line: `METHOD TARGET HTTP/1.x`.
fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::BadRequest;
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::BadMethod,
    };
    match target.split('?').next() {
        Some("/metrics") => Route::Metrics { head_only },
        _ => Route::NotFound { head_only },
    }
}

/// A whole HTTP/1.1 response that closes the connection. `status` may
/// carry more header lines after the status (`405`'s `Allow`).
fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

/// Set the gauges (and the counters kept elsewhere) from the daemon's
/// state, just before a render.
fn refresh(daemon: &Daemon) {
    gauge!(names::UP).set(1.0);
    gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    for host in daemon.pool.host_states() {
        let (busy, idle) = (host.channels_busy, host.channels_idle);
        let utilization = match busy + idle {
            0 => 0.0,
            slots => f64::from(busy) / f64::from(slots),
        };
        let open = host.state == ConnState::CircuitOpen;
        let alias = host.alias;
        gauge!(names::POOL_CONNECTIONS, "host" => alias.clone()).set(host.connections);
        gauge!(names::POOL_CHANNELS_BUSY, "host" => alias.clone()).set(busy);
        gauge!(names::POOL_CHANNELS_IDLE, "host" => alias.clone()).set(idle);
        gauge!(names::POOL_UTILIZATION, "host" => alias.clone()).set(utilization);
        gauge!(names::POOL_BREAKER_OPEN, "host" => alias).set(u8::from(open));
    }
    let max_inflight = daemon.config().limits.max_inflight as usize;
    let in_flight = max_inflight.saturating_sub(daemon.inflight.available_permits());
    gauge!(names::REQUESTS_IN_FLIGHT).set(in_flight as f64);
    gauge!(names::CLIENTS).set(daemon.clients.open());
    gauge!(names::SHELLS_OPEN).set(daemon.shells.open_count() as f64);

    let resources = crate::resources::collect(&daemon.memory);
    gauge!(names::MEMORY_RSS).set(resources.rss_bytes as f64);
    gauge!(names::MEMORY_LIMIT).set(resources.memory_limit_bytes as f64);
    gauge!(names::MEMORY_HIGH_WATERMARK).set(resources.memory_high_watermark_bytes as f64);
    gauge!(names::MEMORY_RESERVED).set(resources.memory_reserved_bytes as f64);
    counter!(names::MEMORY_REFUSALS).absolute(resources.memory_refusals);
    gauge!(names::OPEN_FDS).set(resources.open_fds as f64);
    gauge!(names::MAX_FDS).set(resources.max_fds as f64);
    gauge!(names::THREADS).set(resources.threads.len() as f64);

    let cache = daemon.cache.stats();
    gauge!(names::CACHE_ENTRIES).set(cache.entries as f64);
    gauge!(names::CACHE_BYTES).set(cache.bytes as f64);
    gauge!(names::CACHE_MAX_BYTES).set(cache.max_bytes as f64);
    gauge!(names::CACHE_MAX_ENTRIES).set(cache.max_entries as f64);
    counter!(names::CACHE_HITS).absolute(cache.hits);
    counter!(names::CACHE_MISSES).absolute(cache.misses);
    counter!(names::CACHE_REVALIDATIONS).absolute(cache.revalidations);
    counter!(names::CACHE_EVICTIONS).absolute(cache.evictions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        let metrics = |head_only| Route::Metrics { head_only };
        assert_eq!(route(b"GET /metrics HTTP/1.1"), metrics(false));
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\nHost: a"),
            metrics(true)
        );
        assert_eq!(
            route(b"GET / HTTP/1.1"),
            Route::NotFound { head_only: false }
        );
        assert_eq!(route(b"POST /metrics HTTP/1.1"), Route::BadMethod);
        assert_eq!(route(b"GET /metrics"), Route::BadRequest);
        assert_eq!(route(b"GET /metrics SSH-2.0"), Route::BadRequest);
        assert_eq!(route(b"\xff\xfe garbage"), Route::BadRequest);
        assert_eq!(route(b""), Route::BadRequest);
    }

    #[test]
    fn the_head_ends_at_the_first_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(20));
        assert_eq!(head_end(b"GET / HTTP/1.1\n\n"), Some(14));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn responses_close_and_head_has_no_body() {
        let get = String::from_utf8(response("200 OK", METRICS_TYPE, b"x 1\n", false)).unwrap();
        assert_eq!(
            get,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
             Content-Length: 4\r\nConnection: close\r\n\r\nx 1\n"
        );
        let head = response("200 OK", METRICS_TYPE, b"x 1\n", true);
        assert!(head.ends_with(b"Content-Length: 4\r\nConnection: close\r\n\r\n"));
    }
}
