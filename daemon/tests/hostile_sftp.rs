//! Downloads from a compromised host: the names in a remote listing and
//! the local tree they land in must not steer a write anywhere the client
//! did not ask for.
//!
//! The hostile host is a real sshd whose `Subsystem sftp` is the testkit's
//! `hostile-sftp-server`: OpenSSH's sftp-server behind a relay that lists
//! a file named `hostile~HEX` under the name HEX encodes (`../x`, `/tmp/x`,
//! a NUL byte...).

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{connect, exec_ok, exec_request, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    Direction, Error, Request, Response, SyncRequest, SyncResult, TransferRequest, TransferResult,
};
use sshmcp_testkit::{Daemon, DaemonOptions, Fleet, bin_path, test_user, unique_digits};

/// What a test runs against. Fields drop in order: the servers go before
/// the relay they run.
struct Setup {
    _fleet: Fleet,
    daemon: Daemon,
    client: DaemonClient,
    /// The remote tree's home: a directory the test user owns.
    remote: tempfile::TempDir,
    _relay: Option<tempfile::TempDir>,
}

enum Server {
    Honest,
    Hostile,
}

/// Local paths the daemon may use: `[policy] local_roots`, or the home
/// directory when `None`.
async fn setup(server: Server, local_roots: Option<&Path>, home: Option<&Path>) -> Setup {
    let relay = match server {
        Server::Honest => None,
        Server::Hostile => Some(relay_copy()),
    };
    let mut fleet = Fleet::builder();
    if let Some(relay) = &relay {
        let program = relay.path().join("hostile-sftp-server");
        fleet = fleet.sshd_config_line(&format!("Subsystem sftp {}", program.display()));
    }
    let fleet = fleet.start();
    let policy = match local_roots {
        Some(root) => format!("[policy]\nlocal_roots = [\"{}\"]\n", root.display()),
        None => String::new(),
    };
    let options = DaemonOptions {
        env: home
            .map(|h| vec![("HOME".to_string(), h.display().to_string())])
            .unwrap_or_default(),
        ..DaemonOptions::default()
    };
    let daemon = Daemon::start_with(&fleet, &policy, options);
    let client = connect(daemon.socket()).await;
    Setup {
        _fleet: fleet,
        daemon,
        client,
        remote: test_user().scratch_dir(),
        _relay: relay,
    }
}

/// The relay, copied where the test user's sshd session can run it: the
/// build directory may sit under a home the test user cannot enter.
fn relay_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let program = dir.path().join("hostile-sftp-server");
    std::fs::copy(bin_path("hostile-sftp-server"), &program).unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

impl Setup {
    fn r(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote.path().display())
    }

    /// Runs `command` on the host, in the remote tree's home.
    async fn sh(&self, command: &str) {
        let command = format!("cd '{}' && {command}", self.remote.path().display());
        let out = exec_ok(&self.daemon, &self.client, exec_request("host1", &command)).await;
        assert_eq!(out.exit_code, Some(0), "{command}: {out:?}");
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
        let reply: Result<Response, Error> = request(&self.client, Request::Sync(req)).await;
        match reply {
            Ok(Response::Sync(s)) => s,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }
}

fn download(remote: &str, local: &Path) -> TransferRequest {
    TransferRequest {
        host: "host1".into(),
        direction: Direction::Download,
        local_path: local.to_str().unwrap().into(),
        remote_path: remote.into(),
        recursive: true,
        resume: false,
        verify: false,
        follow_symlinks: false,
    }
}

fn sync_down(remote: &str, local: &Path) -> SyncRequest {
    SyncRequest {
        host: "host1".into(),
        direction: Direction::Download,
        local_dir: local.to_str().unwrap().into(),
        remote_dir: remote.into(),
        delete: false,
        dry_run: false,
        checksum: false,
    }
}

/// The file name under which the relay lists a file as `name`.
fn hostile(name: &[u8]) -> String {
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    format!("hostile~{hex}")
}

/// Every path under `root`, relative.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() && !path.is_symlink() {
                pending.push(path);
            }
        }
    }
    out
}

fn set(paths: &[&str]) -> BTreeSet<String> {
    paths.iter().map(|p| p.to_string()).collect()
}

/// A hostile tree at `x/y/tree` in the remote home: two honest files and
/// entries the relay lists under suspect names. Returns the names the
/// client must report, as the `skipped` entries start, and the absolute
/// local path the `/tmp/...` entry aims at.
///
/// The tree sits two levels down so that `../../escape-N` names a real
/// remote file: a daemon that followed it would find something to copy.
async fn hostile_tree(s: &Setup) -> (Vec<String>, PathBuf) {
    let n = unique_digits();
    let absolute = PathBuf::from(format!("/tmp/sshmcp-abs-{n}"));
    let escape = format!("../../escape-{n}");
    let names: Vec<(Vec<u8>, &str)> = vec![
        (escape.clone().into_bytes(), ""),
        (absolute.to_str().unwrap().as_bytes().to_vec(), ""),
        (b"a/b".to_vec(), ""),
        (format!("nul\0{n}").into_bytes(), ""),
        (b".".to_vec(), ""),
        (b"..".to_vec(), ""),
        (Vec::new(), ""),
        (format!("../../../escape-{n}").into_bytes(), "sub"),
    ];
    let mut script = format!(
        "mkdir -p x/y/tree/sub && printf evil > 'x/escape-{n}' && cd x/y/tree \
         && printf honest > honest.txt && printf deep > sub/deep.txt"
    );
    let mut expected = Vec::new();
    for (name, dir) in &names {
        let file = if dir.is_empty() {
            hostile(name)
        } else {
            format!("{dir}/{}", hostile(name))
        };
        script.push_str(&format!(" && printf evil > '{file}'"));
        let shown = String::from_utf8(name.clone()).unwrap();
        let mut note = format!("`{}`", shown.escape_debug());
        if !dir.is_empty() {
            note.push_str(&format!(" in `{dir}`"));
        }
        expected.push(note);
    }
    // A hostile directory, with a file in it.
    let up = hostile(format!("../up-{n}").as_bytes());
    script.push_str(&format!(" && mkdir '{up}' && printf evil > '{up}/f'"));
    expected.push(format!("`../up-{n}`"));
    s.sh(&script).await;
    (expected, absolute)
}

fn assert_reported(skipped: &[String], expected: &[String]) {
    for note in expected {
        assert!(
            skipped
                .iter()
                .any(|s| s.starts_with(&format!("{note}: ")) && s.contains("suspect name")),
            "no `skipped` entry for {note}: {skipped:#?}"
        );
    }
    assert_eq!(skipped.len(), expected.len(), "{skipped:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_download_skips_suspect_names_and_writes_only_under_the_destination() {
    let local = tempfile::tempdir().unwrap();
    let s = setup(Server::Hostile, Some(local.path()), None).await;
    let (expected, absolute) = hostile_tree(&s).await;
    let dest = local.path().join("a/b/dest");

    let t = s.transfer_ok(download(&s.r("x/y/tree"), &dest)).await;

    assert_reported(&t.skipped, &expected);
    assert_eq!(t.files, 2, "{t:?}");
    assert_eq!(std::fs::read(dest.join("honest.txt")).unwrap(), b"honest");
    assert_eq!(std::fs::read(dest.join("sub/deep.txt")).unwrap(), b"deep");
    assert_eq!(
        tree(local.path()),
        set(&[
            "a",
            "a/b",
            "a/b/dest",
            "a/b/dest/honest.txt",
            "a/b/dest/sub",
            "a/b/dest/sub/deep.txt"
        ]),
        "nothing lands outside the destination"
    );
    assert!(!absolute.exists(), "{} was written", absolute.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_skips_suspect_names_and_writes_only_under_the_destination() {
    let local = tempfile::tempdir().unwrap();
    let s = setup(Server::Hostile, Some(local.path()), None).await;
    let (expected, absolute) = hostile_tree(&s).await;
    let dest = local.path().join("a/b/dest");

    let r = s.sync_ok(sync_down(&s.r("x/y/tree"), &dest)).await;

    assert_reported(&r.skipped, &expected);
    assert_eq!(r.created, 2, "{r:?}");
    assert_eq!(std::fs::read(dest.join("honest.txt")).unwrap(), b"honest");
    assert_eq!(std::fs::read(dest.join("sub/deep.txt")).unwrap(), b"deep");
    assert_eq!(
        tree(local.path()),
        set(&[
            "a",
            "a/b",
            "a/b/dest",
            "a/b/dest/honest.txt",
            "a/b/dest/sub",
            "a/b/dest/sub/deep.txt"
        ]),
        "nothing lands outside the destination"
    );
    assert!(!absolute.exists(), "{} was written", absolute.display());
}

/// A destination tree holding `link` -> a directory outside
/// `local_roots`, and a remote tree that has a directory `link`.
async fn tree_through_a_local_symlink(s: &Setup, local: &Path, outside: &Path) -> PathBuf {
    let dest = local.join("dest");
    std::fs::create_dir_all(&dest).unwrap();
    std::os::unix::fs::symlink(outside, dest.join("link")).unwrap();
    s.sh("mkdir -p tree/link && printf ok > tree/ok.txt && printf evil > tree/link/f")
        .await;
    dest
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_does_not_write_through_a_local_symlink_out_of_local_roots() {
    let local = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let s = setup(Server::Honest, Some(local.path()), None).await;
    let dest = tree_through_a_local_symlink(&s, local.path(), outside.path()).await;

    let t = s.transfer_ok(download(&s.r("tree"), &dest)).await;

    assert!(
        !outside.path().join("f").exists(),
        "written through the symlink"
    );
    assert_eq!(std::fs::read(dest.join("ok.txt")).unwrap(), b"ok");
    assert_eq!(t.files, 1, "{t:?}");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(t.skipped[0].starts_with("link: it resolves to "), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_does_not_write_through_a_local_symlink_out_of_local_roots() {
    let local = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let s = setup(Server::Honest, Some(local.path()), None).await;
    let dest = tree_through_a_local_symlink(&s, local.path(), outside.path()).await;

    let r = s.sync_ok(sync_down(&s.r("tree"), &dest)).await;

    assert!(
        !outside.path().join("f").exists(),
        "written through the symlink"
    );
    assert_eq!(std::fs::read(dest.join("ok.txt")).unwrap(), b"ok");
    assert_eq!(r.created, 1, "{r:?}");
    assert!(
        r.skipped
            .iter()
            .any(|note| note.starts_with("link: it resolves to ")),
        "{r:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_into_home_leaves_dot_ssh_alone() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/authorized_keys"), "mine\n").unwrap();
    let s = setup(Server::Honest, None, Some(home.path())).await;
    s.sh(
        "mkdir -p tree/.ssh && printf theirs > tree/.ssh/authorized_keys \
         && printf ok > tree/ok.txt",
    )
    .await;

    let t = s.transfer_ok(download(&s.r("tree"), home.path())).await;

    assert_eq!(
        std::fs::read_to_string(home.path().join(".ssh/authorized_keys")).unwrap(),
        "mine\n"
    );
    assert_eq!(std::fs::read(home.path().join("ok.txt")).unwrap(), b"ok");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(t.skipped[0].starts_with(".ssh: it is inside "), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_with_delete_into_home_leaves_dot_ssh_alone() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir(home.path().join(".ssh")).unwrap();
    std::fs::write(home.path().join(".ssh/authorized_keys"), "mine\n").unwrap();
    std::fs::write(home.path().join("extra.txt"), "gone soon").unwrap();
    let s = setup(Server::Honest, None, Some(home.path())).await;
    s.sh("mkdir -p tree && printf ok > tree/ok.txt").await;
    let mut req = sync_down(&s.r("tree"), home.path());
    req.delete = true;

    let r = s.sync_ok(req).await;

    assert_eq!(
        std::fs::read_to_string(home.path().join(".ssh/authorized_keys")).unwrap(),
        "mine\n"
    );
    assert!(!home.path().join("extra.txt").exists(), "{r:?}");
    assert_eq!(r.deleted, 1, "{r:?}");
    assert!(
        r.skipped
            .iter()
            .any(|note| note.starts_with(".ssh: ") && note.ends_with("not deleted")),
        "{r:?}"
    );
}
