//! Uploads of a local tree that holds paths the local policy refuses: a
//! copy of `~` must not carry `~/.ssh` (private keys) or a `local_deny`
//! path to the host. The rest of the tree goes; the refused paths stay
//! home, are named in `skipped`, and a sync with `delete` leaves their
//! remote counterparts alone.
//!
//! The daemon's HOME is a temporary directory, so `~/.ssh` is a fake one
//! the test wrote.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use std::path::Path;

use common::{connect, exec_ok, exec_request, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    Direction, Request, Response, SyncRequest, SyncResult, TransferRequest, TransferResult,
};
use sshmcp_testkit::{Daemon, DaemonOptions, Fleet, test_user};

/// What a test runs against. Fields drop in order: the daemon goes before
/// the fleet it connects to.
struct Setup {
    daemon: Daemon,
    client: DaemonClient,
    _fleet: Fleet,
    /// The daemon's HOME: `.ssh/id_ed25519`, `notes.txt`, `work/plan.txt`.
    home: tempfile::TempDir,
    /// Where uploads land: a directory the test user owns.
    remote: tempfile::TempDir,
}

/// A daemon whose HOME is a fresh home directory, with `local_deny` (paths
/// relative to that home) in its config.
async fn setup(local_deny: &[&str]) -> Setup {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
    std::fs::create_dir_all(home.path().join("work")).unwrap();
    std::fs::write(home.path().join("notes.txt"), "notes\n").unwrap();
    std::fs::write(home.path().join("work/plan.txt"), "plan\n").unwrap();
    let fleet = Fleet::start(1);
    let options = DaemonOptions {
        env: vec![("HOME".to_string(), home.path().display().to_string())],
        ..DaemonOptions::default()
    };
    let deny: Vec<String> = local_deny
        .iter()
        .map(|rel| format!("\"{}\"", home.path().join(rel).display()))
        .collect();
    let config = format!("[policy]\nlocal_deny = [{}]\n", deny.join(", "));
    let daemon = Daemon::start_with(&fleet, &config, options);
    let client = connect(daemon.socket()).await;
    Setup {
        daemon,
        client,
        _fleet: fleet,
        home,
        remote: test_user().scratch_dir(),
    }
}

impl Setup {
    fn r(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote.path().display())
    }

    /// Runs `command` on the host, in the remote directory; its stdout.
    async fn sh(&self, command: &str) -> String {
        let command = format!("cd '{}' && {command}", self.remote.path().display());
        let out = exec_ok(&self.daemon, &self.client, exec_request("host1", &command)).await;
        assert_eq!(out.exit_code, Some(0), "{command}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Every path under `rel` on the host, relative, one a line, sorted.
    async fn remote_tree(&self, rel: &str) -> String {
        self.sh(&format!("cd '{rel}' && find . -mindepth 1 | sort"))
            .await
    }

    async fn transfer_ok(&self, req: TransferRequest) -> TransferResult {
        let what = format!("{req:?}");
        match request(&self.client, Request::Transfer(req)).await {
            Ok(Response::Transfer(t)) => t,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }

    async fn sync_ok(&self, req: SyncRequest) -> SyncResult {
        let what = format!("{req:?}");
        match request(&self.client, Request::Sync(req)).await {
            Ok(Response::Sync(s)) => s,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }
}

fn upload(local: &Path, remote: &str) -> TransferRequest {
    TransferRequest {
        host: "host1".into(),
        direction: Direction::Upload,
        local_path: local.to_str().unwrap().into(),
        remote_path: remote.into(),
        recursive: true,
        resume: false,
        verify: false,
        follow_symlinks: false,
    }
}

fn sync_up(local: &Path, remote: &str) -> SyncRequest {
    SyncRequest {
        host: "host1".into(),
        direction: Direction::Upload,
        local_dir: local.to_str().unwrap().into(),
        remote_dir: remote.into(),
        delete: false,
        dry_run: false,
        checksum: false,
    }
}

/// The one `skipped` note for `rel`, asserting it says the policy refused
/// it; panics when there is none.
fn refusal_note<'a>(skipped: &'a [String], rel: &str) -> &'a str {
    let prefix = format!("{rel}: ");
    let notes: Vec<&String> = skipped.iter().filter(|s| s.starts_with(&prefix)).collect();
    assert_eq!(notes.len(), 1, "one note for {rel}: {skipped:#?}");
    assert!(
        notes[0].contains("never reads or writes for clients"),
        "{skipped:#?}"
    );
    notes[0]
}

const HOME_WITHOUT_KEYS: &str = "./notes.txt\n./work\n./work/plan.txt\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_upload_of_home_leaves_dot_ssh_behind_and_says_so() {
    let s = setup(&[]).await;

    let t = s.transfer_ok(upload(s.home.path(), &s.r("copy"))).await;

    assert_eq!(s.remote_tree("copy").await, HOME_WITHOUT_KEYS);
    assert_eq!(t.files, 2, "{t:?}");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(
        refusal_note(&t.skipped, ".ssh").ends_with("skipped with everything in it"),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_upload_following_symlinks_skips_a_link_into_dot_ssh() {
    let s = setup(&[]).await;
    let home = s.home.path();
    std::os::unix::fs::symlink(home.join(".ssh"), home.join("work/keys")).unwrap();
    std::os::unix::fs::symlink(home.join(".ssh/id_ed25519"), home.join("work/key")).unwrap();
    let mut req = upload(&home.join("work"), &s.r("copy"));
    req.follow_symlinks = true;

    let t = s.transfer_ok(req).await;

    assert_eq!(s.remote_tree("copy").await, "./plan.txt\n");
    refusal_note(&t.skipped, "keys");
    refusal_note(&t.skipped, "key");
    assert_eq!(t.skipped.len(), 2, "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_upload_skips_paths_in_local_deny() {
    let s = setup(&["work/plan.txt"]).await;

    let t = s.transfer_ok(upload(s.home.path(), &s.r("copy"))).await;

    assert_eq!(s.remote_tree("copy").await, "./notes.txt\n./work\n");
    refusal_note(&t.skipped, ".ssh");
    refusal_note(&t.skipped, "work/plan.txt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_upload_of_home_leaves_dot_ssh_behind_and_says_so() {
    let s = setup(&[]).await;

    let r = s.sync_ok(sync_up(s.home.path(), &s.r("copy"))).await;

    assert_eq!(s.remote_tree("copy").await, HOME_WITHOUT_KEYS);
    assert_eq!((r.created, r.dirs_created), (2, 2), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    refusal_note(&r.skipped, ".ssh");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_upload_with_delete_leaves_the_remote_dot_ssh_alone() {
    let s = setup(&[]).await;
    s.sh(
        "mkdir -p copy/.ssh && printf theirs > copy/.ssh/authorized_keys \
         && printf old > copy/extra.txt",
    )
    .await;
    let mut req = sync_up(s.home.path(), &s.r("copy"));
    req.delete = true;

    let r = s.sync_ok(req).await;

    assert_eq!(
        s.remote_tree("copy").await,
        "./.ssh\n./.ssh/authorized_keys\n./notes.txt\n./work\n./work/plan.txt\n",
        "the extra file went, the remote .ssh stayed and got no key: {r:?}"
    );
    assert_eq!(s.sh("cat copy/.ssh/authorized_keys").await, "theirs");
    assert_eq!(r.deleted, 1, "{r:?}");
    refusal_note(&r.skipped, ".ssh");
}
