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

use common::{ScratchHost, sync_up};
use sshmcp_proto::TransferRequest;
use sshmcp_testkit::DaemonOptions;

/// A daemon whose HOME is a fresh home directory, with `local_deny` (paths
/// relative to that home) in its config; and that home, which holds
/// `.ssh/id_ed25519`, `notes.txt` and `work/plan.txt`.
async fn setup(local_deny: &[&str]) -> (ScratchHost, tempfile::TempDir) {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/id_ed25519"), "PRIVATE KEY\n").unwrap();
    std::fs::create_dir_all(home.path().join("work")).unwrap();
    std::fs::write(home.path().join("notes.txt"), "notes\n").unwrap();
    std::fs::write(home.path().join("work/plan.txt"), "plan\n").unwrap();
    let options = DaemonOptions {
        env: vec![("HOME".to_string(), home.path().display().to_string())],
        ..DaemonOptions::default()
    };
    let deny: Vec<String> = local_deny
        .iter()
        .map(|rel| format!("\"{}\"", home.path().join(rel).display()))
        .collect();
    let config = format!("[policy]\nlocal_deny = [{}]\n", deny.join(", "));
    let s = ScratchHost::start(None, &config, options).await;
    (s, home)
}

/// Every path under `rel` on the host, relative, one a line, sorted.
async fn remote_tree(s: &ScratchHost, rel: &str) -> String {
    s.sh(&format!("cd '{rel}' && find . -mindepth 1 | sort"))
        .await
}

/// A recursive upload, symlinks not followed.
fn upload(local: &Path, remote: &str) -> TransferRequest {
    TransferRequest {
        recursive: true,
        ..common::upload(local, remote)
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
    let (s, home) = setup(&[]).await;

    let t = s.transfer_ok(upload(home.path(), &s.r("copy"))).await;

    assert_eq!(remote_tree(&s, "copy").await, HOME_WITHOUT_KEYS);
    assert_eq!(t.files, 2, "{t:?}");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(
        refusal_note(&t.skipped, ".ssh").ends_with("skipped with everything in it"),
        "{t:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_upload_following_symlinks_skips_a_link_into_dot_ssh() {
    let (s, home) = setup(&[]).await;
    let home = home.path();
    std::os::unix::fs::symlink(home.join(".ssh"), home.join("work/keys")).unwrap();
    std::os::unix::fs::symlink(home.join(".ssh/id_ed25519"), home.join("work/key")).unwrap();
    let mut req = upload(&home.join("work"), &s.r("copy"));
    req.follow_symlinks = true;

    let t = s.transfer_ok(req).await;

    assert_eq!(remote_tree(&s, "copy").await, "./plan.txt\n");
    refusal_note(&t.skipped, "keys");
    refusal_note(&t.skipped, "key");
    assert_eq!(t.skipped.len(), 2, "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_upload_skips_paths_in_local_deny() {
    let (s, home) = setup(&["work/plan.txt"]).await;

    let t = s.transfer_ok(upload(home.path(), &s.r("copy"))).await;

    assert_eq!(remote_tree(&s, "copy").await, "./notes.txt\n./work\n");
    refusal_note(&t.skipped, ".ssh");
    refusal_note(&t.skipped, "work/plan.txt");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_upload_of_home_leaves_dot_ssh_behind_and_says_so() {
    let (s, home) = setup(&[]).await;

    let r = s.sync_ok(sync_up(home.path(), &s.r("copy"))).await;

    assert_eq!(remote_tree(&s, "copy").await, HOME_WITHOUT_KEYS);
    assert_eq!((r.created, r.dirs_created), (2, 2), "{r:?}");
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    refusal_note(&r.skipped, ".ssh");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_upload_with_delete_leaves_the_remote_dot_ssh_alone() {
    let (s, home) = setup(&[]).await;
    s.sh(
        "mkdir -p copy/.ssh && printf theirs > copy/.ssh/authorized_keys \
         && printf old > copy/extra.txt",
    )
    .await;
    let mut req = sync_up(home.path(), &s.r("copy"));
    req.delete = true;

    let r = s.sync_ok(req).await;

    assert_eq!(
        remote_tree(&s, "copy").await,
        "./.ssh\n./.ssh/authorized_keys\n./notes.txt\n./work\n./work/plan.txt\n",
        "the extra file went, the remote .ssh stayed and got no key: {r:?}"
    );
    assert_eq!(s.sh("cat copy/.ssh/authorized_keys").await, "theirs");
    assert_eq!(r.deleted, 1, "{r:?}");
    refusal_note(&r.skipped, ".ssh");
}
