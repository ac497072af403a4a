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
use std::fmt::Debug;
use std::path::Path;

use common::{ScratchHost, SftpSubsystem, local_tree, request, set, sync_down};
use sshmcp_proto::{DirListing, ListDirRequest, RemoveRequest, Request, Response, TransferRequest};
use sshmcp_testkit::DaemonOptions;

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

enum Server {
    OpenSsh,
    LinksAsDirs,
}

/// A host whose sshd runs `server`, and a local directory, the daemon's
/// `local_roots`.
async fn setup(server: Server) -> (ScratchHost, tempfile::TempDir) {
    let sftp = match server {
        Server::OpenSsh => None,
        Server::LinksAsDirs => Some(SftpSubsystem::perl_script(
            "links-as-dirs.pl",
            LINKS_AS_DIRS,
        )),
    };
    let local = tempfile::tempdir().unwrap();
    let config = format!("[policy]\nlocal_roots = [\"{}\"]\n", local.path().display());
    let s = ScratchHost::start(sftp, &config, DaemonOptions::default()).await;
    (s, local)
}

/// Every path under `rel` on the host, relative.
async fn remote_tree(s: &ScratchHost, rel: &str) -> BTreeSet<String> {
    s.sh(&format!("cd '{rel}' && find . -mindepth 1"))
        .await
        .lines()
        .map(|line| line.trim_start_matches("./").to_string())
        .collect()
}

async fn list_dir_ok(s: &ScratchHost, rel: &str) -> DirListing {
    let req = Request::ListDir(ListDirRequest {
        max_age_secs: None,
        host: "host1".into(),
        path: s.r(rel),
        recursive: true,
        max_entries: None,
    });
    match request(&s.client, req).await {
        Ok(Response::ListDir(l)) => l,
        other => panic!("list_dir {rel}: {other:?}\n{}", s.daemon.log()),
    }
}

/// A recursive upload that follows symlinks: the walk these tests are
/// about.
fn upload(local: &Path, remote: &str) -> TransferRequest {
    TransferRequest {
        recursive: true,
        follow_symlinks: true,
        ..common::upload(local, remote)
    }
}

/// [`upload`], the other way.
fn download(remote: &str, local: &Path) -> TransferRequest {
    TransferRequest {
        recursive: true,
        follow_symlinks: true,
        ..common::download(remote, local)
    }
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

/// A copy of the looping tree, `copy`, holds every real file and directory
/// once, `files` says three files went, and `skipped` names each loop;
/// `result` is what the copy returned.
fn assert_taken_once(copy: BTreeSet<String>, files: u64, skipped: &[String], result: &impl Debug) {
    assert_eq!(copy, set(REAL), "{result:?}");
    assert_eq!(files, 3, "{result:?}");
    assert_eq!(notes(skipped), loop_notes());
}

/// The one directory the depth guard names, as `skipped` names it: the
/// 65th level.
fn depth_notes() -> Vec<String> {
    vec![format!(
        "`{}`: deeper than 64 directory levels; not entered",
        nested(65)
    )]
}

/// The looping tree, in `rel` on the host.
async fn remote_loops(s: &ScratchHost, rel: &str) {
    s.sh(&format!(
        "mkdir -p '{rel}/dir/a' && cd '{rel}' && printf f > f.txt && printf g > dir/g.txt \
         && printf h > dir/a/h.txt && ln -s .. dir/loop && ln -s ../../dir dir/a/back"
    ))
    .await;
}

/// `depth` nested directories `d` in `rel` on the host, a file at the bottom.
async fn remote_deep(s: &ScratchHost, rel: &str, depth: usize) {
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

/// A host that lists links as directories, the looping tree at `top` on
/// it, and the local directory.
async fn looping_tree_listed_as_directories() -> (ScratchHost, tempfile::TempDir) {
    let (s, local) = setup(Server::LinksAsDirs).await;
    remote_loops(&s, "top").await;
    (s, local)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_following_symlinks_copies_a_looping_tree_once_and_names_the_loops() {
    let (s, local) = setup(Server::OpenSsh).await;
    let top = local.path().join("top");
    std::fs::create_dir_all(top.join("dir/a")).unwrap();
    std::fs::write(top.join("f.txt"), "f").unwrap();
    std::fs::write(top.join("dir/g.txt"), "g").unwrap();
    std::fs::write(top.join("dir/a/h.txt"), "h").unwrap();
    std::os::unix::fs::symlink("..", top.join("dir/loop")).unwrap();
    std::os::unix::fs::symlink("../../dir", top.join("dir/a/back")).unwrap();

    let t = s.transfer_ok(upload(&top, &s.r("copy"))).await;

    assert_taken_once(remote_tree(&s, "copy").await, t.files, &t.skipped, &t);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_copies_a_tree_whose_links_are_listed_as_directories_once() {
    let (s, local) = looping_tree_listed_as_directories().await;
    let dest = local.path().join("copy");

    let t = s.transfer_ok(download(&s.r("top"), &dest)).await;

    assert_taken_once(local_tree(&dest), t.files, &t.skipped, &t);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_download_of_a_tree_whose_links_are_listed_as_directories_takes_it_once() {
    let (s, local) = looping_tree_listed_as_directories().await;
    let dest = local.path().join("copy");

    let r = s.sync_ok(sync_down(&s.r("top"), &dest)).await;

    assert_taken_once(local_tree(&dest), r.created, &r.skipped, &r);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recursive_list_dir_does_not_enter_links_listed_as_directories_that_loop() {
    let (s, _local) = looping_tree_listed_as_directories().await;

    let l = list_dir_ok(&s, "top").await;

    let paths: BTreeSet<String> = l.entries.iter().map(|e| e.path.clone()).collect();
    assert_eq!(paths, set(REAL), "{l:?}");
    assert!(!l.truncated, "{l:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_enters_64_directory_levels_and_names_the_one_below() {
    let (s, local) = setup(Server::OpenSsh).await;
    let top = local.path().join("top");
    let bottom = top.join(nested(70));
    std::fs::create_dir_all(&bottom).unwrap();
    std::fs::write(bottom.join("bottom.txt"), "x").unwrap();

    let t = s.transfer_ok(upload(&top, &s.r("copy"))).await;

    let copied = remote_tree(&s, "copy").await;
    assert_eq!(copied, (1..=64).map(nested).collect(), "{t:?}");
    assert_eq!(t.skipped, depth_notes());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_download_enters_64_directory_levels_and_names_the_one_below() {
    let (s, local) = setup(Server::OpenSsh).await;
    remote_deep(&s, "top", 70).await;
    let dest = local.path().join("copy");

    let t = s.transfer_ok(download(&s.r("top"), &dest)).await;

    // The 65th level is listed, so made, but not entered.
    assert_eq!(local_tree(&dest), (1..=65).map(nested).collect(), "{t:?}");
    assert_eq!(t.skipped, depth_notes());
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_tree_deeper_than_64_levels_is_refused_before_anything_goes() {
    let (s, _local) = setup(Server::OpenSsh).await;
    remote_deep(&s, "top", 70).await;

    let e = request(
        &s.client,
        Request::Remove(RemoveRequest {
            host: "host1".into(),
            path: s.r("top"),
            recursive: true,
        }),
    )
    .await
    .unwrap_err();

    assert!(e.message.contains("64"), "{e:?}");
    assert!(
        remote_tree(&s, "top")
            .await
            .contains(&format!("{}/bottom.txt", nested(70))),
        "nothing was removed"
    );
}
