//! Trees that loop: a symlink that leads back up its own tree (`dir/loop
//! -> ..`, `dir/a/back -> ../../dir`) and trees deeper than any real one.
//! A recursive `transfer`, `sync` or `list_dir` that follows where links
//! lead must finish, take every real file once, and name each loop in
//! `skipped`; the depth guard stops what no loop check catches.
//!
//! Locally an upload with `follow_symlinks` follows links itself. Remotely
//! OpenSSH's sftp-server lists a link as a link, which a walk never enters;
//! the remote tests run against a server that lists a link as what it
//! leads to instead (OpenSSH's sftp-server behind [`LINKS_AS_DIRS`]), as
//! odd or hostile servers do.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{connect, exec_ok, exec_request, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    DirListing, Direction, Error, ListDirRequest, RemoveRequest, Request, Response, SyncRequest,
    SyncResult, TransferRequest, TransferResult,
};
use sshmcp_testkit::{Daemon, Fleet, test_user};

/// An SFTP server that lists every symlink with the type of a directory:
/// OpenSSH's sftp-server, whose replies pass through this relay. Only the
/// type bits of a listed symlink's permissions change; requests go to the
/// server untouched (it reads this session's stdin itself). Perl, because
/// a test file cannot add a program for sshd to run, and the Debian these
/// tests assume (the sftp-server path) always has perl.
const LINKS_AS_DIRS: &str = r#"
use strict;
use warnings;

open(my $server, '-|', '/usr/lib/openssh/sftp-server') or die "cannot run sftp-server: $!";
binmode $server;
binmode STDOUT;
$| = 1;

sub take {
    my ($n) = @_;
    my $buf = '';
    while (length($buf) < $n) {
        my $got = read($server, $buf, $n - length($buf), length($buf));
        return undef unless $got;
    }
    return $buf;
}

# In an SSH_FXP_NAME reply, a symlink's S_IFLNK becomes S_IFDIR.
sub links_as_dirs {
    my ($body) = @_;
    my $u32 = sub { unpack('N', substr($$body, $_[0], 4)) };
    my $at = 9;                               # type, id, count
    for (1 .. $u32->(5)) {
        $at += 4 + $u32->($at) for 1 .. 2;    # name, long name
        my $flags = $u32->($at);
        $at += 4;
        $at += 8 if $flags & 0x1;             # size
        $at += 8 if $flags & 0x2;             # uid, gid
        if ($flags & 0x4) {
            my $mode = $u32->($at);
            substr($$body, $at, 4) = pack('N', 0040000 | ($mode & 07777))
                if ($mode & 0170000) == 0120000;
            $at += 4;
        }
        $at += 8 if $flags & 0x8;             # atime, mtime
        return if $flags & 0x80000000;        # extended: sftp-server sends none
    }
}

while (defined(my $len = take(4))) {
    my $body = take(unpack('N', $len));
    last unless defined $body;
    links_as_dirs(\$body) if ord($body) == 104;
    print $len, $body;
}
"#;

/// What a test runs against. Fields drop in order: the daemon goes before
/// the fleet it connects to, the fleet before the relay its sshd runs.
struct Setup {
    daemon: Daemon,
    client: DaemonClient,
    _fleet: Fleet,
    _relay: Option<tempfile::TempDir>,
    /// Local files: the daemon's `local_roots`.
    local: tempfile::TempDir,
    /// The remote side: a directory the test user owns.
    remote: tempfile::TempDir,
}

enum Server {
    OpenSsh,
    LinksAsDirs,
}

async fn setup(server: Server) -> Setup {
    let relay = match server {
        Server::OpenSsh => None,
        Server::LinksAsDirs => Some(relay()),
    };
    let mut fleet = Fleet::builder();
    if let Some(relay) = &relay {
        let script = relay.path().join("links-as-dirs.pl");
        fleet = fleet.sshd_config_line(&format!(
            "Subsystem sftp /usr/bin/perl {}",
            script.display()
        ));
    }
    let fleet = fleet.start();
    let local = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &fleet,
        &format!("[policy]\nlocal_roots = [\"{}\"]\n", local.path().display()),
    );
    let client = connect(daemon.socket()).await;
    Setup {
        daemon,
        client,
        _fleet: fleet,
        _relay: relay,
        local,
        remote: test_user().scratch_dir(),
    }
}

/// [`LINKS_AS_DIRS`] in a directory the test user's sshd session can read.
fn relay() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let script = dir.path().join("links-as-dirs.pl");
    std::fs::write(&script, LINKS_AS_DIRS).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    dir
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

    /// Every path under `rel` on the host, relative.
    async fn remote_tree(&self, rel: &str) -> BTreeSet<String> {
        self.sh(&format!("cd '{rel}' && find . -mindepth 1"))
            .await
            .lines()
            .map(|line| line.trim_start_matches("./").to_string())
            .collect()
    }

    async fn ask(&self, req: Request) -> Result<Response, Error> {
        request(&self.client, req).await
    }

    async fn transfer_ok(&self, req: TransferRequest) -> TransferResult {
        let what = format!("{req:?}");
        match self.ask(Request::Transfer(req)).await {
            Ok(Response::Transfer(t)) => t,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }

    async fn sync_ok(&self, req: SyncRequest) -> SyncResult {
        let what = format!("{req:?}");
        match self.ask(Request::Sync(req)).await {
            Ok(Response::Sync(s)) => s,
            other => panic!("{what}: {other:?}\n{}", self.daemon.log()),
        }
    }

    async fn list_dir_ok(&self, rel: &str) -> DirListing {
        let req = Request::ListDir(ListDirRequest {
            host: "host1".into(),
            path: self.r(rel),
            recursive: true,
            max_entries: None,
        });
        match self.ask(req).await {
            Ok(Response::ListDir(l)) => l,
            other => panic!("list_dir {rel}: {other:?}\n{}", self.daemon.log()),
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
        follow_symlinks: true,
    }
}

fn download(remote: &str, local: &Path) -> TransferRequest {
    TransferRequest {
        direction: Direction::Download,
        ..upload(local, remote)
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

/// Every path under `root`, relative; symlinks are listed, not entered.
fn local_tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.insert(path.strip_prefix(root).unwrap().display().to_string());
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

/// The real files and directories of the looping tree, each once.
const REAL: &[&str] = &["f.txt", "dir", "dir/g.txt", "dir/a", "dir/a/h.txt"];

/// The loops, as `skipped` names them.
fn loop_notes() -> BTreeSet<String> {
    set(&[
        "`dir/a/back`: symlink loops back to `dir`; skipped",
        "`dir/loop`: symlink loops back to `.`; skipped",
    ])
}

fn notes(skipped: &[String]) -> BTreeSet<String> {
    skipped.iter().cloned().collect()
}

/// The looping tree, in `rel` on the host.
async fn remote_loops(s: &Setup, rel: &str) {
    s.sh(&format!(
        "mkdir -p '{rel}/dir/a' && cd '{rel}' && printf f > f.txt && printf g > dir/g.txt \
         && printf h > dir/a/h.txt && ln -s .. dir/loop && ln -s ../../dir dir/a/back"
    ))
    .await;
}

/// `depth` nested directories `d` in `rel` on the host, a file at the bottom.
async fn remote_deep(s: &Setup, rel: &str, depth: usize) {
    let path = nested(depth);
    s.sh(&format!(
        "mkdir -p '{rel}/{path}' && printf x > '{rel}/{path}/bottom.txt'"
    ))
    .await;
}

/// `d/d/…` with `depth` components.
fn nested(depth: usize) -> String {
    vec!["d"; depth].join("/")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_following_symlinks_copies_a_looping_tree_once_and_names_the_loops() {
    let s = setup(Server::OpenSsh).await;
    let top = s.local.path().join("top");
    std::fs::create_dir_all(top.join("dir/a")).unwrap();
    std::fs::write(top.join("f.txt"), "f").unwrap();
    std::fs::write(top.join("dir/g.txt"), "g").unwrap();
    std::fs::write(top.join("dir/a/h.txt"), "h").unwrap();
    std::os::unix::fs::symlink("..", top.join("dir/loop")).unwrap();
    std::os::unix::fs::symlink("../../dir", top.join("dir/a/back")).unwrap();

    let t = s.transfer_ok(upload(&top, &s.r("copy"))).await;

    assert_eq!(s.remote_tree("copy").await, set(REAL), "{t:?}");
    assert_eq!(t.files, 3, "{t:?}");
    assert_eq!(notes(&t.skipped), loop_notes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_copies_a_tree_whose_links_are_listed_as_directories_once() {
    let s = setup(Server::LinksAsDirs).await;
    remote_loops(&s, "top").await;
    let dest = s.local.path().join("copy");

    let t = s.transfer_ok(download(&s.r("top"), &dest)).await;

    assert_eq!(local_tree(&dest), set(REAL), "{t:?}");
    assert_eq!(t.files, 3, "{t:?}");
    assert_eq!(notes(&t.skipped), loop_notes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_of_a_tree_whose_links_are_listed_as_directories_takes_it_once() {
    let s = setup(Server::LinksAsDirs).await;
    remote_loops(&s, "top").await;
    let dest = s.local.path().join("copy");

    let r = s.sync_ok(sync_down(&s.r("top"), &dest)).await;

    assert_eq!(local_tree(&dest), set(REAL), "{r:?}");
    assert_eq!(r.created, 3, "{r:?}");
    assert_eq!(notes(&r.skipped), loop_notes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_list_dir_does_not_enter_links_listed_as_directories_that_loop() {
    let s = setup(Server::LinksAsDirs).await;
    remote_loops(&s, "top").await;

    let l = s.list_dir_ok("top").await;

    let paths: BTreeSet<String> = l.entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, set(REAL), "{l:?}");
    assert!(!l.truncated, "{l:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_enters_64_directory_levels_and_names_the_one_below() {
    let s = setup(Server::OpenSsh).await;
    let top = s.local.path().join("top");
    let bottom = top.join(nested(70));
    std::fs::create_dir_all(&bottom).unwrap();
    std::fs::write(bottom.join("bottom.txt"), "x").unwrap();

    let t = s.transfer_ok(upload(&top, &s.r("copy"))).await;

    let copied = s.remote_tree("copy").await;
    assert_eq!(copied, (1..=64).map(nested).collect(), "{t:?}");
    assert_eq!(
        t.skipped,
        vec![format!(
            "`{}`: deeper than 64 directory levels; not entered",
            nested(65)
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_enters_64_directory_levels_and_names_the_one_below() {
    let s = setup(Server::OpenSsh).await;
    remote_deep(&s, "top", 70).await;
    let dest = s.local.path().join("copy");

    let t = s.transfer_ok(download(&s.r("top"), &dest)).await;

    // The 65th level is listed, so made, but not entered.
    assert_eq!(local_tree(&dest), (1..=65).map(nested).collect(), "{t:?}");
    assert_eq!(
        t.skipped,
        vec![format!(
            "`{}`: deeper than 64 directory levels; not entered",
            nested(65)
        )]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_tree_deeper_than_64_levels_is_refused_before_anything_goes() {
    let s = setup(Server::OpenSsh).await;
    remote_deep(&s, "top", 70).await;

    let e = s
        .ask(Request::Remove(RemoveRequest {
            host: "host1".into(),
            path: s.r("top"),
            recursive: true,
        }))
        .await
        .unwrap_err();

    assert!(e.message.contains("64"), "{e:?}");
    assert!(
        s.remote_tree("top")
            .await
            .contains(&format!("{}/bottom.txt", nested(70))),
        "nothing was removed"
    );
}
