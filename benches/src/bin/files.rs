//! File throughput and sync speed: sshmcp against OpenSSH `sftp`, `scp`
//! and `rsync`, on the same loopback sshd with the same cipher, in one run.
//!
//! Run with `cargo run --release -p sshmcp-benches --bin files`.
//! `SSHMCP_BENCH_MIB` sets the big file's size (default 256),
//! `SSHMCP_BENCH_RUNS` the runs per path (default 3 for the big file, and
//! three times that for the small-file syncs); the median run counts.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use sshmcp_benches::start_control_master;
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{ClientInfo, Direction, Request, Response, SyncRequest, TransferRequest};
use sshmcp_testkit::{Daemon, Fleet, McpClient, output_within};

const CIPHER: &str = "chacha20-poly1305@openssh.com";
const MIB: f64 = 1024.0 * 1024.0;

fn main() {
    // SAFETY: set before any thread is started.
    unsafe { std::env::set_var("SSHMCP_TEST_DAEMON_LOG", "sshmcpd=warn") };
    let mib: usize = env_or("SSHMCP_BENCH_MIB", 256);
    let runs: usize = env_or("SSHMCP_BENCH_RUNS", 3).max(1);
    let fleet = Fleet::builder()
        .servers(1)
        .sshd_config_line(&format!("Ciphers {CIPHER}"))
        .start();
    let work = tempfile::tempdir().expect("temp dir");
    let local = work.path();
    let daemon = Daemon::start(
        &fleet,
        &format!("[policy]\nlocal_roots = [\"{}\"]\n", local.display()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let client = runtime.block_on(connect(&daemon));
    let remote = remote_dir(&fleet);

    println!(
        "sshmcp file benchmarks: one loopback sshd (OpenSSH), cipher {CIPHER} for every client, median of {runs} runs\n"
    );

    // One big file each way.
    let big = local.join("big.bin");
    write_pattern(&big, mib * 1024 * 1024);
    let bytes = (mib * 1024 * 1024) as f64;
    let mut rows: Vec<(String, Duration)> = Vec::new();
    let up = format!("{remote}/big.up");
    let down = local.join("big.down");

    rows.push((
        "sshmcp upload (daemon socket)".into(),
        median(runs, || {
            runtime.block_on(transfer(&client, Direction::Upload, &big, &up));
        }),
    ));
    rows.push((
        "sshmcp download (daemon socket)".into(),
        median(runs, || {
            runtime.block_on(transfer(&client, Direction::Download, &down, &up));
        }),
    ));
    let mcp = McpClient::start(daemon.socket());
    mcp.initialize();
    let via_shim = |direction: &str, local: &Path| {
        let result = mcp.call_tool(
            "transfer",
            json!({"host": "host1", "direction": direction, "local_path": local, "remote_path": up}),
        );
        assert_eq!(result["isError"], json!(false), "transfer failed: {result}");
    };
    rows.push((
        "sshmcp upload (MCP shim)".into(),
        median(runs, || via_shim("upload", &big)),
    ));
    rows.push((
        "sshmcp download (MCP shim)".into(),
        median(runs, || via_shim("download", &down)),
    ));
    let batch = local.join("sftp.batch");
    let sftp = |script: String| {
        std::fs::write(&batch, script).expect("batch file");
        let mut cmd = Command::new("sftp");
        cmd.arg("-F")
            .arg(fleet.ssh_config_path())
            .args(["-q", "-o", &format!("Ciphers={CIPHER}"), "-b"])
            .arg(&batch)
            .arg("host1");
        run(cmd);
    };
    let sftp_up = median(runs, || sftp(format!("put {} {up}\n", big.display())));
    let sftp_down = median(runs, || sftp(format!("get {up} {}\n", down.display())));
    rows.push(("OpenSSH sftp put".into(), sftp_up));
    rows.push(("OpenSSH sftp get".into(), sftp_down));
    let scp = |from: String, to: String| {
        let mut cmd = Command::new("scp");
        cmd.arg("-F")
            .arg(fleet.ssh_config_path())
            .args(["-q", "-o", &format!("Ciphers={CIPHER}")])
            .arg(from)
            .arg(to);
        run(cmd);
    };
    let scp_up = median(runs, || {
        scp(big.display().to_string(), format!("host1:{up}"))
    });
    let scp_down = median(runs, || {
        scp(format!("host1:{up}"), down.display().to_string())
    });
    rows.push(("OpenSSH scp upload".into(), scp_up));
    rows.push(("OpenSSH scp download".into(), scp_down));

    println!("{mib} MiB file, one way:\n");
    println!(
        "| {:34} | {:>9} | {:>9} | {:>8} | {:>8} |",
        "path", "median s", "MiB/s", "vs sftp", "vs scp"
    );
    println!(
        "|{}|----------:|----------:|---------:|---------:|",
        "-".repeat(36)
    );
    for (name, took) in &rows {
        let (sftp_ref, scp_ref) = if name.contains("download") || name.contains("get") {
            (sftp_down, scp_down)
        } else {
            (sftp_up, scp_up)
        };
        println!(
            "| {name:34} | {:>9.3} | {:>9.1} | {:>7.2}x | {:>7.2}x |",
            took.as_secs_f64(),
            bytes / MIB / took.as_secs_f64(),
            sftp_ref.as_secs_f64() / took.as_secs_f64(),
            scp_ref.as_secs_f64() / took.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_file(&big);
    let _ = std::fs::remove_file(&down);

    // Many small files: a one-way sync to a fresh directory, then again
    // with nothing changed.
    let tree = local.join("small");
    let total = write_small_tree(&tree, 300);
    let sync_runs = runs * 3;
    let mut n = 0;
    let mut fresh = || {
        n += 1;
        format!("{remote}/sync{n}")
    };
    let sshmcp_sync = |dest: &str| {
        runtime.block_on(sync(&client, &tree, dest));
    };
    let sshmcp_cold = median(sync_runs, || sshmcp_sync(&fresh()));
    let steady = fresh();
    sshmcp_sync(&steady);
    let sshmcp_again = median(sync_runs, || sshmcp_sync(&steady));

    let rsync = |ssh: &str, dest: &str| {
        let mut cmd = Command::new("rsync");
        cmd.args(["-a", "-e", ssh])
            .arg(format!("{}/", tree.display()))
            .arg(format!("host1:{dest}/"));
        run(cmd);
    };
    let cfg = fleet.ssh_config_path().display().to_string();
    let cold_ssh = format!(
        "ssh -F {cfg} -o BatchMode=yes -o Ciphers={CIPHER} -o ControlMaster=no -o ControlPath=none"
    );
    let rsync_cold = median(sync_runs, || rsync(&cold_ssh, &fresh()));
    let control = local.join("cm.sock");
    start_control_master(
        &fleet,
        "host1",
        &control,
        60,
        &[&format!("Ciphers={CIPHER}")],
    );
    let cm_ssh = format!(
        "ssh -F {cfg} -o BatchMode=yes -o ControlMaster=no -o ControlPath={}",
        control.display()
    );
    let rsync_cm = median(sync_runs, || rsync(&cm_ssh, &fresh()));
    let steady_rsync = fresh();
    rsync(&cm_ssh, &steady_rsync);
    let rsync_cm_again = median(sync_runs, || rsync(&cm_ssh, &steady_rsync));
    let mut stop = fleet.ssh("host1");
    stop.args([
        "-o",
        &format!("ControlPath={}", control.display()),
        "-O",
        "exit",
    ]);
    let _ = output_within(&mut stop, Duration::from_secs(10));

    println!(
        "\n300 small files ({total} bytes, 1 B to 8 KiB, 10 directories), one-way sync, median of {sync_runs}:\n"
    );
    println!(
        "| {:46} | {:>9} | {:>16} | {:>14} |",
        "path", "median ms", "cold rsync / it", "rsync+CM / it"
    );
    println!(
        "|{}|----------:|-----------------:|---------------:|",
        "-".repeat(46)
    );
    for (name, took) in [
        ("sshmcp sync, fresh destination", sshmcp_cold),
        ("sshmcp sync, nothing changed", sshmcp_again),
        ("rsync -a -e ssh, cold", rsync_cold),
        ("rsync -a over ControlMaster, fresh destination", rsync_cm),
        (
            "rsync -a over ControlMaster, nothing changed",
            rsync_cm_again,
        ),
    ] {
        println!(
            "| {name:46} | {:>9.1} | {:>15.2}x | {:>13.2}x |",
            took.as_secs_f64() * 1e3,
            rsync_cold.as_secs_f64() / took.as_secs_f64(),
            rsync_cm.as_secs_f64() / took.as_secs_f64(),
        );
    }
    let mut cleanup = fleet.ssh("host1");
    cleanup.arg(format!("rm -rf {remote}"));
    let _ = output_within(&mut cleanup, Duration::from_secs(60));
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(runs: usize, mut op: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            op();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn run(mut cmd: Command) {
    let out = output_within(&mut cmd, Duration::from_secs(300));
    assert!(out.status.success(), "{cmd:?} failed: {out:?}");
}

fn remote_dir(fleet: &Fleet) -> String {
    let mut cmd = fleet.ssh("host1");
    cmd.arg("mktemp -d /tmp/sshmcp-bench-XXXXXX");
    let out = output_within(&mut cmd, Duration::from_secs(20));
    assert!(out.status.success(), "mktemp failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write_pattern(path: &Path, len: usize) {
    let mut x: u32 = 0x9e37_79b9;
    let data: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    std::fs::write(path, data).expect("write the big file");
}

/// `count` files of 1 B to 8 KiB in 10 directories; returns total bytes.
fn write_small_tree(root: &Path, count: usize) -> usize {
    let mut total = 0;
    for i in 0..count {
        let dir = root.join(format!("dir{}", i % 10));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let len = 1 + (i * 7919) % 8192;
        std::fs::write(
            dir.join(format!("file{i}.txt")),
            vec![b'a' + (i % 26) as u8; len],
        )
        .expect("write");
        total += len;
    }
    total
}

async fn connect(daemon: &Daemon) -> DaemonClient {
    DaemonClient::connect(
        daemon.socket(),
        ClientInfo {
            binary: "sshmcp-bench".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            ..ClientInfo::default()
        },
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .expect("connect to sshmcpd")
}

async fn transfer(client: &DaemonClient, direction: Direction, local: &Path, remote: &str) {
    let reply = client
        .request(Request::Transfer(TransferRequest {
            job_after_secs: None,
            host: "host1".into(),
            direction,
            local_path: local.display().to_string(),
            remote_path: remote.into(),
            recursive: false,
            resume: false,
            verify: false,
            follow_symlinks: false,
        }))
        .await
        .expect("daemon reply");
    assert!(matches!(reply, Ok(Response::Transfer(_))), "{reply:?}");
}

async fn sync(client: &DaemonClient, local: &Path, remote: &str) {
    let reply = client
        .request(Request::Sync(SyncRequest {
            job_after_secs: None,
            host: "host1".into(),
            direction: Direction::Upload,
            local_dir: local.display().to_string(),
            remote_dir: remote.into(),
            delete: false,
            dry_run: false,
            checksum: false,
        }))
        .await
        .expect("daemon reply");
    assert!(matches!(reply, Ok(Response::Sync(_))), "{reply:?}");
}
