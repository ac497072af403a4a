//! Warm and cold `exec` latency: sshmcp (through the MCP shim and through
//! the daemon socket), raw russh, and OpenSSH, all against the same
//! loopback sshd in one run.
//!
//! Run with `cargo run --release -p sshmcp-benches --bin exec`.
//! `SSHMCP_BENCH_ITERS` sets the warm iteration count (default 300).

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sshmcp_benches::{Samples, percent_line, print_table, start_control_master};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{ClientInfo, ExecRequest, Request, Response};
use sshmcp_testkit::{Daemon, Fleet, McpClient, output_within};

fn main() {
    // The daemon's per-request debug lines would weigh on its timings.
    // SAFETY: set before any thread is started.
    unsafe { std::env::set_var("SSHMCP_TEST_DAEMON_LOG", "sshmcpd=info") };
    let iters: usize = std::env::var("SSHMCP_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    println!(
        "exec latency, {iters} warm iterations per path, one loopback sshd (OpenSSH), `true` as the command\n"
    );

    let shim = bench_shim(&daemon, iters);
    let socket = runtime.block_on(bench_socket(&daemon, iters));
    let raw = runtime.block_on(bench_raw_russh(&fleet, iters));
    let master = bench_control_master(&fleet, iters);
    let cold_ssh = bench_cold_ssh(&fleet, 20);
    let cold_daemon = runtime.block_on(bench_cold_daemon(&daemon, &fleet, 20));

    let rows = vec![
        ("sshmcp via MCP shim (warm)", &shim),
        ("sshmcp via daemon socket (warm)", &socket),
        ("raw russh, warm connection", &raw),
        ("ssh with ControlMaster (warm)", &master),
        ("sshmcp first call, cold host", &cold_daemon),
        ("ssh, cold (new connection)", &cold_ssh),
    ];
    print_table(&rows, &master);
    println!();
    println!(
        "{}",
        percent_line(
            "shim p50 / ControlMaster p50",
            shim.p50(),
            master.p50(),
            "target <= 0.50"
        )
    );
    println!(
        "daemon overhead over raw russh, p50: {:+.3} ms (target <= 0.15 ms)",
        (socket.p50().as_secs_f64() - raw.p50().as_secs_f64()) * 1e3
    );
    println!(
        "{}",
        percent_line(
            "cold first call / cold ssh p50",
            cold_daemon.p50(),
            cold_ssh.p50(),
            ""
        )
    );
}

fn bench_shim(daemon: &Daemon, iters: usize) -> Samples {
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let call = || {
        let result = mcp.call_tool("exec", json!({"host": "host1", "command": "true"}));
        assert_eq!(result["isError"], json!(false), "exec failed: {result}");
    };
    for _ in 0..20 {
        call();
    }
    Samples::measure(iters, call)
}

fn client_info() -> ClientInfo {
    ClientInfo {
        binary: "sshmcp-bench".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        ..ClientInfo::default()
    }
}

async fn connect(daemon: &Daemon) -> DaemonClient {
    DaemonClient::connect(
        daemon.socket(),
        client_info(),
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .expect("connect to sshmcpd")
}

fn exec_true(host: &str) -> Request {
    Request::Exec(ExecRequest {
        stop_after_secs: None,
        detach: false,
        background: false,
        on_timeout: Default::default(),
        cache_secs: None,
        host: host.into(),
        command: "true".into(),
        stdin: None,
        timeout_secs: None,
        max_output_bytes: None,
        sudo: false,
        sudo_user: None,
    })
}

async fn bench_socket(daemon: &Daemon, iters: usize) -> Samples {
    let client = connect(daemon).await;
    let mut samples = Samples::default();
    for i in 0..iters + 20 {
        let start = Instant::now();
        let reply = client
            .request(exec_true("host1"))
            .await
            .expect("daemon reply");
        let took = start.elapsed();
        assert!(matches!(reply, Ok(Response::Exec(_))), "{reply:?}");
        if i >= 20 {
            samples.push(took);
        }
    }
    samples
}

/// The floor: a russh client of our own, one warm connection, a fresh
/// session channel per command, exactly as the daemon does it.
async fn bench_raw_russh(fleet: &Fleet, iters: usize) -> Samples {
    struct TrustLoopback;
    impl russh::client::Handler for TrustLoopback {
        type Error = russh::Error;
        async fn check_server_key(
            &mut self,
            _: &russh::keys::PublicKeyOrCertificate,
        ) -> Result<bool, Self::Error> {
            // The bench's own throwaway server on loopback.
            Ok(true)
        }
    }
    let server = fleet.server(0);
    let config = Arc::new(russh::client::Config {
        nodelay: true,
        window_size: 16 * 1024 * 1024,
        ..Default::default()
    });
    let mut handle = russh::client::connect(config, server.socket_addr(), TrustLoopback)
        .await
        .expect("raw russh connect");
    let key = russh::keys::load_secret_key(fleet.key().path(), None).expect("client key");
    let auth = handle
        .authenticate_publickey(
            sshmcp_testkit::test_user().name(),
            russh::keys::PrivateKeyWithHashAlg::new(Arc::new(key), None),
        )
        .await
        .expect("raw russh auth");
    assert!(auth.success(), "raw russh auth refused");
    let mut samples = Samples::default();
    for i in 0..iters + 20 {
        let start = Instant::now();
        let mut channel = handle.channel_open_session().await.expect("open channel");
        channel.exec(true, "true").await.expect("exec");
        channel.eof().await.expect("eof");
        let mut status = None;
        while let Some(msg) = channel.wait().await {
            if let russh::ChannelMsg::ExitStatus { exit_status } = msg {
                status = Some(exit_status);
            }
        }
        let took = start.elapsed();
        assert_eq!(status, Some(0));
        if i >= 20 {
            samples.push(took);
        }
    }
    samples
}

fn bench_control_master(fleet: &Fleet, iters: usize) -> Samples {
    let control = fleet.dir().join("cm.sock");
    let control_opt = start_control_master(fleet, "host1", &control, 60, &[]);
    let run = || {
        let mut cmd: Command = fleet.ssh("host1");
        cmd.args(["-o", &control_opt, "-o", "ControlMaster=no", "true"]);
        let out = output_within(&mut cmd, Duration::from_secs(20));
        assert!(
            out.status.success(),
            "ssh via ControlMaster failed: {out:?}"
        );
    };
    for _ in 0..10 {
        run();
    }
    let samples = Samples::measure(iters, run);
    let mut stop = fleet.ssh("host1");
    stop.args(["-o", &control_opt, "-O", "exit"]);
    let _ = output_within(&mut stop, Duration::from_secs(10));
    samples
}

fn bench_cold_ssh(fleet: &Fleet, iters: usize) -> Samples {
    Samples::measure(iters, || {
        let mut cmd = fleet.ssh("host2");
        cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none", "true"]);
        let out = output_within(&mut cmd, Duration::from_secs(20));
        assert!(out.status.success(), "cold ssh failed: {out:?}");
    })
}

/// The first call to a host with no connection: drain it, then exec.
async fn bench_cold_daemon(daemon: &Daemon, _fleet: &Fleet, iters: usize) -> Samples {
    let client = connect(daemon).await;
    let mut samples = Samples::default();
    for _ in 0..iters {
        let drained = client
            .request(Request::Drain {
                host: "host2".into(),
            })
            .await
            .expect("daemon reply");
        assert!(drained.is_ok(), "{drained:?}");
        // Let the old connection's close settle so it is not measured.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let start = Instant::now();
        let reply = client
            .request(exec_true("host2"))
            .await
            .expect("daemon reply");
        samples.push(start.elapsed());
        assert!(matches!(reply, Ok(Response::Exec(_))), "{reply:?}");
    }
    samples
}
