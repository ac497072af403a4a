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

use std::path::{Path, PathBuf};

use common::{ScratchHost, SftpSubsystem, local_tree, set, sync_down};
use sshmcp_proto::TransferRequest;
use sshmcp_testkit::{DaemonOptions, unique_digits};

enum Server {
    Honest,
    Hostile,
}

/// Local paths the daemon may use: `[policy] local_roots`, or the home
/// directory when `None`.
async fn setup(server: Server, local_roots: Option<&Path>, home: Option<&Path>) -> ScratchHost {
    let sftp = match server {
        Server::Honest => None,
        Server::Hostile => Some(SftpSubsystem::testkit_program("hostile-sftp-server")),
    };
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
    ScratchHost::start(sftp, &policy, options).await
}

/// A recursive download, symlinks not followed.
fn download(remote: &str, local: &Path) -> TransferRequest {
    TransferRequest {
        recursive: true,
        ..common::download(remote, local)
    }
}

/// The file name under which the relay lists a file as `name`.
fn hostile(name: &[u8]) -> String {
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    format!("hostile~{hex}")
}

/// A hostile tree at `x/y/tree` in the remote home: two honest files and
/// entries the relay lists under suspect names. Returns the names the
/// client must report, as the `skipped` entries start, and the absolute
/// local path the `/tmp/...` entry aims at.
///
/// The tree sits two levels down so that `../../escape-N` names a real
/// remote file: a daemon that followed it would find something to copy.
async fn hostile_tree(s: &ScratchHost) -> (Vec<String>, PathBuf) {
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

/// A hostile host with [`hostile_tree`] on it, and an empty `local_roots`
/// to fetch the tree into: what the tests of suspect names start from.
struct HostileDownload {
    s: ScratchHost,
    /// `local_roots`.
    local: tempfile::TempDir,
    /// Where the tree is to land: `a/b/dest` in `local`.
    dest: PathBuf,
    /// The notes `skipped` must start with.
    expected: Vec<String>,
    /// The local path the `/tmp/...` entry aims at.
    absolute: PathBuf,
}

impl HostileDownload {
    async fn prepare() -> HostileDownload {
        let local = tempfile::tempdir().unwrap();
        let s = setup(Server::Hostile, Some(local.path()), None).await;
        let (expected, absolute) = hostile_tree(&s).await;
        let dest = local.path().join("a/b/dest");
        HostileDownload {
            s,
            local,
            dest,
            expected,
            absolute,
        }
    }

    /// The two honest files landed under the destination, and nothing
    /// else anywhere.
    fn assert_only_the_honest_files_landed(&self) {
        let dest = &self.dest;
        assert_eq!(std::fs::read(dest.join("honest.txt")).unwrap(), b"honest");
        assert_eq!(std::fs::read(dest.join("sub/deep.txt")).unwrap(), b"deep");
        assert_eq!(
            local_tree(self.local.path()),
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
        let absolute = &self.absolute;
        assert!(!absolute.exists(), "{} was written", absolute.display());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_download_skips_suspect_names_and_writes_only_under_the_destination() {
    let h = HostileDownload::prepare().await;

    let t = h.s.transfer_ok(download(&h.s.r("x/y/tree"), &h.dest)).await;

    assert_reported(&t.skipped, &h.expected);
    assert_eq!(t.files, 2, "{t:?}");
    h.assert_only_the_honest_files_landed();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_skips_suspect_names_and_writes_only_under_the_destination() {
    let h = HostileDownload::prepare().await;

    let r = h.s.sync_ok(sync_down(&h.s.r("x/y/tree"), &h.dest)).await;

    assert_reported(&r.skipped, &h.expected);
    assert_eq!(r.created, 2, "{r:?}");
    h.assert_only_the_honest_files_landed();
}

/// An honest host with a tree that has a directory `link`, and a
/// destination in `local_roots` holding `link` -> a directory outside
/// them.
struct ThroughALocalSymlink {
    s: ScratchHost,
    /// `local_roots`.
    _local: tempfile::TempDir,
    /// Where the destination's `link` leads.
    outside: tempfile::TempDir,
    dest: PathBuf,
}

impl ThroughALocalSymlink {
    async fn prepare() -> ThroughALocalSymlink {
        let local = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let s = setup(Server::Honest, Some(local.path()), None).await;
        let dest = local.path().join("dest");
        std::fs::create_dir_all(&dest).unwrap();
        std::os::unix::fs::symlink(outside.path(), dest.join("link")).unwrap();
        s.sh("mkdir -p tree/link && printf ok > tree/ok.txt && printf evil > tree/link/f")
            .await;
        ThroughALocalSymlink {
            s,
            _local: local,
            outside,
            dest,
        }
    }

    /// Nothing went through the link, and the file beside it landed.
    fn assert_nothing_written_through_the_link(&self) {
        assert!(
            !self.outside.path().join("f").exists(),
            "written through the symlink"
        );
        assert_eq!(std::fs::read(self.dest.join("ok.txt")).unwrap(), b"ok");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_does_not_write_through_a_local_symlink_out_of_local_roots() {
    let l = ThroughALocalSymlink::prepare().await;

    let t = l.s.transfer_ok(download(&l.s.r("tree"), &l.dest)).await;

    l.assert_nothing_written_through_the_link();
    assert_eq!(t.files, 1, "{t:?}");
    assert_eq!(t.skipped.len(), 1, "{t:?}");
    assert!(t.skipped[0].starts_with("link: it resolves to "), "{t:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_does_not_write_through_a_local_symlink_out_of_local_roots() {
    let l = ThroughALocalSymlink::prepare().await;

    let r = l.s.sync_ok(sync_down(&l.s.r("tree"), &l.dest)).await;

    l.assert_nothing_written_through_the_link();
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
