//! `transfer` and `sync` end to end: real sshd and sftp-server, the real
//! daemon, local files in a temporary directory the daemon's policy allows.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use common::{
    REPLY_TIMEOUT, connect, download, exec_ok, exec_request, job_page, request, sync_up, upload,
    within,
};
use sshmcp_proto::client::{DaemonClient, Event};
use sshmcp_proto::{
    Direction, Error, ErrorKind, JobOutput, JobResult, JobSignalRequest, JobState, Request,
    Response, StatRequest, SyncAction, SyncRequest, SyncResult, TransferRequest, TransferResult,
};
use sshmcp_testkit::{Daemon, Fleet};

struct Setup {
    fleet: Fleet,
    daemon: Daemon,
    client: DaemonClient,
    local: tempfile::TempDir,
    remote: String,
}

async fn setup() -> Setup {
    let fleet = Fleet::start(1);
    let local = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &fleet,
        &format!("[policy]\nlocal_roots = [\"{}\"]\n", local.path().display()),
    );
    let client = connect(daemon.socket()).await;
    let out = exec_ok(
        &daemon,
        &client,
        exec_request("host1", "mktemp -d /tmp/sshmcp-xfer-XXXXXX"),
    )
    .await;
    let remote = String::from_utf8(out.stdout).unwrap().trim().to_string();
    Setup {
        fleet,
        daemon,
        client,
        local,
        remote,
    }
}

impl Setup {
    fn l(&self, rel: &str) -> PathBuf {
        self.local.path().join(rel)
    }

    fn r(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote)
    }

    async fn sh(&self, command: &str) -> String {
        let out = exec_ok(&self.daemon, &self.client, exec_request("host1", command)).await;
        assert_eq!(out.exit_code, Some(0), "{command}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    async fn transfer(&self, req: TransferRequest) -> Result<TransferResult, Error> {
        match request(&self.client, Request::Transfer(req)).await {
            Ok(Response::Transfer(t)) => Ok(t),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }

    async fn transfer_ok(&self, req: TransferRequest) -> TransferResult {
        let what = format!("{req:?}");
        self.transfer(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}\n{}", self.daemon.log()))
    }

    async fn sync(&self, req: SyncRequest) -> Result<SyncResult, Error> {
        match request(&self.client, Request::Sync(req)).await {
            Ok(Response::Sync(s)) => Ok(s),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    }

    async fn sync_ok(&self, req: SyncRequest) -> SyncResult {
        let what = format!("{req:?}");
        self.sync(req)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e:?}\n{}", self.daemon.log()))
    }

    async fn remote_sha(&self, rel: &str) -> String {
        let out = self.sh(&format!("sha256sum '{}'", self.r(rel))).await;
        out.split_whitespace().next().unwrap().to_string()
    }
}

fn sha(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn mtime(path: &Path) -> u64 {
    std::fs::metadata(path)
        .unwrap()
        .modified()
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_goes_up_and_comes_back_with_mode_and_mtime() {
    let s = setup().await;
    let src = s.l("data file ü.bin");
    std::fs::write(&src, pattern(5 * 1024 * 1024 + 17, 1)).unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o640)).unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let mut req = upload(&src, &s.r("up.bin"));
    req.verify = true;
    let t = s.transfer_ok(req).await;
    assert_eq!((t.files, t.bytes), (1, 5 * 1024 * 1024 + 17));
    assert_eq!(t.verified, Some(true), "{t:?}");
    assert_eq!(s.remote_sha("up.bin").await, sha(&src));
    let st = match request(
        &s.client,
        Request::Stat(StatRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: s.r("up.bin"),
            follow_symlinks: false,
        }),
    )
    .await
    .unwrap()
    {
        Response::Stat(st) => st,
        other => panic!("{other:?}"),
    };
    assert_eq!(st.mode, 0o640);
    assert_eq!(st.mtime, 1_500_000_000);
    // No temporary file is left next to it.
    assert_eq!(s.sh(&format!("ls -A '{}'", s.remote)).await, "up.bin\n");

    // Into an existing directory: keeps its name.
    s.transfer_ok(upload(&src, &s.remote)).await;
    assert_eq!(s.remote_sha("data file ü.bin").await, sha(&src));

    // And back down, into a local directory that does not exist yet.
    let back = s.l("back/copy.bin");
    let t = s.transfer_ok(download(&s.r("up.bin"), &back)).await;
    assert_eq!(t.bytes, 5 * 1024 * 1024 + 17);
    assert_eq!(sha(&back), sha(&src));
    assert_eq!(
        std::fs::metadata(&back).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(mtime(&back), 1_500_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn trees_copy_recursively_and_skip_symlinks() {
    let s = setup().await;
    let tree = s.l("tree");
    std::fs::create_dir_all(tree.join("sub dir/deeper")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("a.txt"), b"alpha").unwrap();
    std::fs::write(tree.join("sub dir/ß.bin"), pattern(70_000, 2)).unwrap();
    std::fs::write(tree.join("sub dir/deeper/z"), b"").unwrap();
    std::os::unix::fs::symlink("a.txt", tree.join("link")).unwrap();

    let mut req = upload(&tree, &s.r("copy"));
    let e = s.transfer(req.clone()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);
    assert!(e.message.contains("recursive"), "{}", e.message);
    req.recursive = true;
    let t = s.transfer_ok(req).await;
    assert_eq!(t.files, 3, "{t:?}");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(t.skipped[0].contains("link"), "{t:?}");
    let listing = s
        .sh(&format!("cd '{}' && find . | sort", s.r("copy")))
        .await;
    assert_eq!(
        listing,
        ".\n./a.txt\n./empty\n./sub dir\n./sub dir/deeper\n./sub dir/deeper/z\n./sub dir/ß.bin\n"
    );

    let back = s.l("back");
    let mut req = download(&s.r("copy"), &back);
    req.recursive = true;
    req.verify = true;
    let t = s.transfer_ok(req).await;
    assert_eq!(t.files, 3);
    assert_eq!(t.verified, Some(true));
    assert_eq!(
        std::fs::read(back.join("sub dir/ß.bin")).unwrap(),
        pattern(70_000, 2)
    );
    assert!(back.join("empty").is_dir());
    assert!(back.join("sub dir/deeper/z").is_file());

    // Following the symlink copies its target.
    let mut req = upload(&tree, &s.r("followed"));
    req.recursive = true;
    req.follow_symlinks = true;
    let t = s.transfer_ok(req).await;
    assert_eq!((t.files, t.skipped.len()), (4, 0), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_transfers_get_clear_errors() {
    let s = setup().await;
    let e = s
        .transfer(upload(&s.l("missing.bin"), &s.r("x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("missing.bin"), "{}", e.message);

    let e = s
        .transfer(download(&s.r("missing.bin"), &s.l("x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("missing.bin"), "{}", e.message);

    // Outside the policy's roots, and relative paths.
    let e = s
        .transfer(upload(Path::new("/etc/hostname"), &s.r("x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}");
    assert!(e.message.contains("local_roots"), "{}", e.message);
    let mut req = upload(Path::new("x"), &s.r("x"));
    req.local_path = "relative/file".into();
    let e = s.transfer(req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest);

    // A symlink inside a root that points outside it is refused too.
    std::os::unix::fs::symlink("/etc/hostname", s.l("sneaky")).unwrap();
    let e = s
        .transfer(upload(&s.l("sneaky"), &s.r("x")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}");

    // Permission denied on the remote side.
    std::fs::write(s.l("f"), b"x").unwrap();
    let e = s
        .transfer(upload(&s.l("f"), "/etc/sshmcp-denied"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_default_policy_keeps_ssh_keys_home() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let home = PathBuf::from(std::env::var("HOME").unwrap());
    let req = upload(&home.join(".ssh/id_ed25519"), "/tmp/stolen");
    let e = match request(&client, Request::Transfer(req)).await {
        Err(e) => e,
        Ok(r) => panic!("{r:?}"),
    };
    assert_eq!(e.kind, ErrorKind::PolicyDenied, "{e:?}");
    assert!(e.message.contains(".ssh"), "{}", e.message);
}

/// Start a transfer and wait until it has moved some bytes.
async fn started(s: &Setup, req: TransferRequest) -> sshmcp_proto::client::Call {
    let mut call = s.client.start(Request::Transfer(req)).unwrap();
    loop {
        let event = within(REPLY_TIMEOUT, "progress", call.next_event())
            .await
            .unwrap();
        match event {
            Event::Progress(p) if p.done > 0 => return call,
            Event::Progress(_) | Event::Output { .. } | Event::Confirm(_) => {}
            Event::Done(reply) => panic!("finished before it could be interrupted: {reply:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_stops_a_transfer_and_removes_the_partial_file() {
    let s = setup().await;
    let src = s.l("big.bin");
    std::fs::write(&src, pattern(256 * 1024 * 1024, 3)).unwrap();
    let call = started(&s, upload(&src, &s.r("big.bin"))).await;
    call.cancel();
    let reply = within(REPLY_TIMEOUT, "cancelled reply", call.reply())
        .await
        .unwrap();
    let e = reply.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Cancelled, "{e:?}");
    assert_eq!(s.sh(&format!("ls -A '{}'", s.remote)).await, "");
}

#[tokio::test(flavor = "multi_thread")]
async fn resume_finishes_uploads_and_downloads_after_a_broken_connection() {
    let s = setup().await;
    let size = 256 * 1024 * 1024;
    let src = s.l("big.bin");
    std::fs::write(&src, pattern(size, 4)).unwrap();

    let call = started(&s, upload(&src, &s.r("big.bin"))).await;
    s.fleet.server(0).kill_connections();
    let e = within(REPLY_TIMEOUT, "broken upload", call.reply())
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Unreachable | ErrorKind::Timeout),
        "{e:?}"
    );
    assert!(e.message.contains("resume"), "{}", e.message);
    let mut req = upload(&src, &s.r("big.bin"));
    req.resume = true;
    req.verify = true;
    let t = s.transfer_ok(req).await;
    assert!(t.resumed_bytes > 0, "nothing was resumed: {t:?}");
    assert_eq!(t.bytes + t.resumed_bytes, size as u64);
    assert_eq!(t.verified, Some(true));
    assert_eq!(s.remote_sha("big.bin").await, sha(&src));

    let dst = s.l("down.bin");
    let call = started(&s, download(&s.r("big.bin"), &dst)).await;
    s.fleet.server(0).kill_connections();
    let e = within(REPLY_TIMEOUT, "broken download", call.reply())
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.message.contains("resume"), "{e:?}");
    assert!(
        !dst.exists(),
        "a partial download must not take the final name"
    );
    let mut req = download(&s.r("big.bin"), &dst);
    req.resume = true;
    let t = s.transfer_ok(req).await;
    assert!(t.resumed_bytes > 0, "{t:?}");
    assert_eq!(sha(&dst), sha(&src));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_is_reported_and_the_old_file_survives() {
    let s = setup().await;
    let mount = s.r("small");
    s.sh(&format!("mkdir '{mount}'")).await;
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0777", "tmpfs", &mount])
        .status()
        .is_ok_and(|st| st.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(String);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    std::fs::write(s.l("small.txt"), b"the old contents").unwrap();
    s.transfer_ok(upload(&s.l("small.txt"), &format!("{mount}/f")))
        .await;
    std::fs::write(s.l("big.bin"), pattern(3 * 1024 * 1024, 5)).unwrap();
    let e = s
        .transfer(upload(&s.l("big.bin"), &format!("{mount}/f")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NoSpace, "{e:?}");
    assert!(e.message.contains("f"), "{}", e.message);
    assert_eq!(
        s.sh(&format!("cat '{mount}/f'")).await,
        "the old contents",
        "the old file is intact"
    );
    assert_eq!(s.sh(&format!("ls -A '{mount}'")).await, "f\n");
}

/// A sync between `local` and `remote`, both relative, in `direction`.
fn sync_req(s: &Setup, direction: Direction, local: &str, remote: &str) -> SyncRequest {
    SyncRequest {
        direction,
        ..sync_up(&s.l(local), &s.r(remote))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_moves_only_what_differs() {
    let s = setup().await;
    let src = s.l("site");
    for i in 0..300 {
        let dir = src.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i}.txt")), pattern(1 + i * 27, i as u32)).unwrap();
    }
    let req = sync_req(&s, Direction::Upload, "site", "site");

    // dry_run: a plan, and nothing touched.
    let plan = s
        .sync_ok(SyncRequest {
            dry_run: true,
            ..req.clone()
        })
        .await;
    assert_eq!((plan.created, plan.dirs_created), (300, 8), "{plan:?}");
    assert!(plan.dry_run);
    assert_eq!(plan.changes[0].path, ".", "the root is created first");
    assert_eq!(
        s.sh(&format!(
            "test -e '{}' && echo exists || echo absent",
            s.r("site")
        ))
        .await,
        "absent\n",
        "a dry run touches nothing"
    );

    let done = s.sync_ok(req.clone()).await;
    assert_eq!((done.created, done.updated, done.unchanged), (300, 0, 0));
    assert_eq!(
        s.sh(&format!(
            "cd '{}' && find . -type f | sort | xargs cat | sha256sum",
            s.r("site")
        ))
        .await,
        String::from_utf8(
            std::process::Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "cd '{}' && find . -type f | sort | xargs cat | sha256sum",
                    src.display()
                ))
                .output()
                .unwrap()
                .stdout
        )
        .unwrap()
    );

    let again = s.sync_ok(req.clone()).await;
    assert_eq!(
        (again.created, again.updated, again.unchanged),
        (0, 0, 300),
        "{again:?}"
    );
    assert!(again.changes.is_empty());

    // One changed file, one extra file at the destination.
    std::fs::write(src.join("d0/f0.txt"), b"changed!").unwrap();
    s.sh(&format!("echo extra > '{}'", s.r("site/d1/extra.txt")))
        .await;
    let changed = s.sync_ok(req.clone()).await;
    assert_eq!((changed.updated, changed.deleted), (1, 0), "{changed:?}");
    assert_eq!(changed.changes[0].action, SyncAction::Update);
    assert_eq!(changed.changes[0].path, "d0/f0.txt");
    assert_eq!(
        s.sh(&format!("cat '{}'", s.r("site/d1/extra.txt"))).await,
        "extra\n"
    );
    let deleting = s
        .sync_ok(SyncRequest {
            delete: true,
            ..req.clone()
        })
        .await;
    assert_eq!(deleting.deleted, 1, "{deleting:?}");
    assert!(
        !s.sh(&format!("ls '{}'", s.r("site/d1")))
            .await
            .contains("extra")
    );

    // Same size and mtime but other bytes: only checksum sees it.
    let f = src.join("d2/f2.txt");
    let before = std::fs::read(&f).unwrap();
    let t = std::fs::metadata(&f).unwrap().modified().unwrap();
    let mut flipped = before.clone();
    flipped[0] ^= 0xff;
    std::fs::write(&f, &flipped).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(t)
        .unwrap();
    let plain = s.sync_ok(req.clone()).await;
    assert_eq!(plain.updated, 0);
    let summed = s
        .sync_ok(SyncRequest {
            checksum: true,
            ..req.clone()
        })
        .await;
    assert_eq!(summed.updated, 1, "{summed:?}");

    // Download direction into a fresh local directory.
    let down = s
        .sync_ok(sync_req(&s, Direction::Download, "mirror", "site"))
        .await;
    assert_eq!(down.created, 300, "{down:?}");
    let again = s
        .sync_ok(sync_req(&s, Direction::Download, "mirror", "site"))
        .await;
    assert_eq!(again.unchanged, 300, "{again:?}");
    assert_eq!(std::fs::read(s.l("mirror/d2/f2.txt")).unwrap(), flipped);
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_reports_symlinks_and_refuses_a_file_as_the_source() {
    let s = setup().await;
    let src = s.l("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"a").unwrap();
    std::os::unix::fs::symlink("a", src.join("ln")).unwrap();
    let r = s
        .sync_ok(sync_req(&s, Direction::Upload, "src", "dst"))
        .await;
    assert_eq!(r.created, 1);
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    let e = s
        .sync(sync_req(&s, Direction::Upload, "src/a", "dst"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::WrongType, "{e:?}");
    let e = s
        .sync(sync_req(&s, Direction::Download, "x", "nope"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
}

/// The job a call with `job_after_secs` became.
async fn job_of(client: &DaemonClient, request: Request) -> String {
    match common::request(client, request).await {
        Ok(Response::JobStarted(job)) => {
            assert!(job.reason.contains("job_output"), "{}", job.reason);
            job.job_id
        }
        other => panic!("expected a job: {other:?}"),
    }
}

/// Long-poll `job` until it has ended; its last page.
async fn ended(client: &DaemonClient, job: &str) -> JobOutput {
    let mut at = 0;
    for _ in 0..60 {
        let page = job_page(client, job, at, u64::MAX, 5).await;
        at = page.next_stdout_offset;
        if page.state != JobState::Running {
            return page;
        }
    }
    panic!("job {job} did not end in five minutes");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_transfer_with_job_after_secs_runs_on_as_a_job_past_its_client() {
    let s = setup().await;
    let src = s.l("big.bin");
    std::fs::write(&src, pattern(64 * 1024 * 1024, 5)).unwrap();
    let req = TransferRequest {
        job_after_secs: Some(0),
        ..upload(&src, &s.r("big.bin"))
    };
    // Started by a client that goes away at once.
    let starter = connect(s.daemon.socket()).await;
    let job = job_of(&starter, Request::Transfer(req)).await;
    drop(starter);
    let jobs = match request(&s.client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => jobs,
        other => panic!("{other:?}"),
    };
    let listed = jobs.iter().find(|j| j.job_id == job).expect("listed");
    assert_eq!(listed.kind, sshmcp_proto::JobKind::Transfer);
    assert!(
        listed
            .command
            .starts_with(&format!("transfer {} -> host1:", src.display())),
        "{}",
        listed.command
    );
    let end = ended(&s.client, &job).await;
    assert_eq!(
        (end.state, end.exit_code),
        (JobState::Exited, Some(0)),
        "{end:?}"
    );
    match end.result.as_deref() {
        Some(JobResult::Transfer { request, done }) => {
            assert_eq!(request.remote_path, s.r("big.bin"));
            assert_eq!((done.files, done.bytes), (1, 64 * 1024 * 1024), "{done:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.remote_sha("big.bin").await, sha(&src));
    // Its output is its progress, in lines.
    let all = job_page(&s.client, &job, 0, 0, 0).await;
    let text = String::from_utf8(all.stdout).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_quick_call_with_job_after_secs_is_answered_as_a_plain_one() {
    let s = setup().await;
    std::fs::write(s.l("small.txt"), "hello\n").unwrap();
    let req = TransferRequest {
        job_after_secs: Some(30),
        ..upload(&s.l("small.txt"), &s.r("small.txt"))
    };
    match request(&s.client, Request::Transfer(req)).await {
        Ok(Response::Transfer(done)) => assert_eq!(done.files, 1),
        other => panic!("{other:?}"),
    }
    std::fs::create_dir(s.l("tree")).unwrap();
    std::fs::write(s.l("tree/a"), "a").unwrap();
    let req = SyncRequest {
        job_after_secs: Some(30),
        ..sync_req(&s, Direction::Upload, "tree", "tree")
    };
    match request(&s.client, Request::Sync(req)).await {
        Ok(Response::Sync(done)) => assert_eq!(done.created, 1, "{done:?}"),
        other => panic!("{other:?}"),
    }
    // A failure is the call's error, as without a job.
    let req = TransferRequest {
        job_after_secs: Some(30),
        ..upload(&s.l("missing"), &s.r("missing"))
    };
    let e = request(&s.client, Request::Transfer(req))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    // None of them left a job behind.
    match request(&s.client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => assert!(jobs.is_empty(), "{jobs:?}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_job_stopped_by_a_signal_is_cancelled_and_cleans_up() {
    let s = setup().await;
    std::fs::create_dir(s.l("src")).unwrap();
    std::fs::write(s.l("src/big.bin"), pattern(256 * 1024 * 1024, 9)).unwrap();
    let req = SyncRequest {
        job_after_secs: Some(0),
        ..sync_req(&s, Direction::Upload, "src", "dst")
    };
    let job = job_of(&s.client, Request::Sync(req)).await;
    // Wait for its first progress line: it is moving bytes.
    let mut page = job_page(&s.client, &job, 0, 0, 10).await;
    for _ in 0..5 {
        if !page.stdout.is_empty() || page.state != JobState::Running {
            break;
        }
        page = job_page(&s.client, &job, 0, 0, 10).await;
    }
    assert_eq!(page.state, JobState::Running, "{page:?}");
    let state = request(
        &s.client,
        Request::JobSignal(JobSignalRequest {
            job_id: job.clone(),
            signal: "TERM".into(),
        }),
    )
    .await;
    assert!(
        matches!(state, Ok(Response::JobState(JobState::Killed))),
        "{state:?}"
    );
    let end = job_page(&s.client, &job, 0, 0, 0).await;
    assert_eq!(end.signal.as_deref(), Some("TERM"));
    match end.result.as_deref() {
        Some(JobResult::Failed(e)) => assert_eq!(e.kind, ErrorKind::Cancelled, "{e:?}"),
        other => panic!("{other:?}"),
    }
    // No partial file is left at the destination.
    let left = s
        .sh(&format!("ls -A '{}' 2>/dev/null || true", s.r("dst")))
        .await;
    assert_eq!(left.trim(), "", "{left}");
}

#[tokio::test(flavor = "multi_thread")]
async fn job_after_secs_is_refused_in_a_batch() {
    let s = setup().await;
    let call = Request::Transfer(TransferRequest {
        job_after_secs: Some(0),
        ..upload(&s.l("x"), &s.r("x"))
    });
    let batch = Request::Batch(sshmcp_proto::BatchRequest {
        calls: vec![call],
        concurrency: None,
        stop_on_error: false,
    });
    let e = request(&s.client, batch).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::BadRequest, "{e:?}");
    assert!(e.message.contains("job_after_secs"), "{}", e.message);
}
