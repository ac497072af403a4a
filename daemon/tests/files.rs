//! The single-path file operations end to end: a real sshd's sftp-server,
//! the real daemon, the wire protocol.

#![allow(clippy::unwrap_used)] // Test helpers: a failed unwrap is a failed test.

mod common;

use common::{connect, exec_ok, exec_request, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    Error, ErrorKind, FileKind, ListDirRequest, MkdirRequest, ReadFileRequest, RemoveRequest,
    RenameRequest, Request, Response, StatRequest, WriteFileRequest,
};
use sshmcp_testkit::{Daemon, Fleet};

/// A fresh directory on host1 owned by the remote test user.
async fn remote_dir(daemon: &Daemon, client: &DaemonClient) -> String {
    let out = exec_ok(
        daemon,
        client,
        exec_request("host1", "mktemp -d /tmp/sshmcp-files-XXXXXX"),
    )
    .await;
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn write(path: &str, data: &[u8]) -> Request {
    Request::WriteFile(WriteFileRequest {
        host: "host1".into(),
        path: path.into(),
        data: data.to_vec(),
        mode: None,
        append: false,
        create_dirs: false,
    })
}

fn read(path: &str) -> Request {
    Request::ReadFile(ReadFileRequest {
        max_age_secs: None,
        host: "host1".into(),
        path: path.into(),
        offset: 0,
        length: None,
    })
}

fn stat(path: &str) -> Request {
    Request::Stat(StatRequest {
        max_age_secs: None,
        host: "host1".into(),
        path: path.into(),
        follow_symlinks: false,
    })
}

async fn ok(daemon: &Daemon, client: &DaemonClient, req: Request) -> Response {
    let what = format!("{req:?}");
    request(client, req)
        .await
        .unwrap_or_else(|e| panic!("{what} failed: {e:?}\ndaemon log:\n{}", daemon.log()))
}

async fn err(client: &DaemonClient, req: Request) -> Error {
    let what = format!("{req:?}");
    match request(client, req).await {
        Ok(r) => panic!("{what} should have failed, got {r:?}"),
        Err(e) => e,
    }
}

async fn read_bytes(daemon: &Daemon, client: &DaemonClient, path: &str) -> Vec<u8> {
    match ok(daemon, client, read(path)).await {
        Response::ReadFile(c) => c.data,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn write_read_stat_list_round_trip() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let dir = remote_dir(&daemon, &client).await;

    // Binary content, every byte value, more than one SFTP request's worth.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 256) as u8).collect();
    let path = format!("{dir}/bin ärger ✓.dat");
    match ok(&daemon, &client, write(&path, &data)).await {
        Response::WriteFile(w) => {
            assert_eq!(w.bytes_written, data.len() as u64);
            assert!(w.created);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read_bytes(&daemon, &client, &path).await, data);

    // offset + length, and truncation at the end (cut from the whole read
    // above, which the cache kept).
    match ok(
        &daemon,
        &client,
        Request::ReadFile(ReadFileRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: path.clone(),
            offset: 1000,
            length: Some(10),
        }),
    )
    .await
    {
        Response::Cached(cached) => match std::sync::Arc::unwrap_or_clone(cached.response) {
            Response::ReadFile(c) => {
                assert_eq!(c.data, &data[1000..1010]);
                assert_eq!(c.size, data.len() as u64);
                assert!(c.truncated);
            }
            other => panic!("{other:?}"),
        },
        Response::ReadFile(c) => {
            assert_eq!(c.data, &data[1000..1010]);
            assert_eq!(c.size, data.len() as u64);
            assert!(c.truncated);
        }
        other => panic!("{other:?}"),
    }

    match ok(&daemon, &client, stat(&path)).await {
        Response::Stat(s) => {
            assert_eq!(s.kind, FileKind::File);
            assert_eq!(s.size, data.len() as u64);
            assert!(s.mtime > 1_600_000_000);
        }
        other => panic!("{other:?}"),
    }

    // Replace keeps the mode of the old file unless told otherwise.
    let script = format!("{dir}/run.sh");
    let mut req = WriteFileRequest {
        host: "host1".into(),
        path: script.clone(),
        data: b"#!/bin/sh\necho hi\n".to_vec(),
        mode: Some(0o750),
        append: false,
        create_dirs: false,
    };
    ok(&daemon, &client, Request::WriteFile(req.clone())).await;
    req.mode = None;
    req.data = b"#!/bin/sh\necho bye\n".to_vec();
    ok(&daemon, &client, Request::WriteFile(req.clone())).await;
    match ok(&daemon, &client, stat(&script)).await {
        Response::Stat(s) => assert_eq!(s.mode, 0o750),
        other => panic!("{other:?}"),
    }
    let out = exec_ok(&daemon, &client, exec_request("host1", &script)).await;
    assert_eq!(out.stdout, b"bye\n");

    // Append.
    req.append = true;
    req.data = b"echo again\n".to_vec();
    ok(&daemon, &client, Request::WriteFile(req)).await;
    assert_eq!(
        read_bytes(&daemon, &client, &script).await,
        b"#!/bin/sh\necho bye\necho again\n"
    );

    // create_dirs, then a recursive listing.
    let deep = format!("{dir}/a/b/c.txt");
    let mut req = match write(&deep, b"deep") {
        Request::WriteFile(w) => w,
        _ => unreachable!(),
    };
    let e = err(&client, Request::WriteFile(req.clone())).await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("create_dirs"), "{}", e.message);
    req.create_dirs = true;
    ok(&daemon, &client, Request::WriteFile(req)).await;
    let listing = match ok(
        &daemon,
        &client,
        Request::ListDir(ListDirRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: dir.clone(),
            recursive: true,
            max_entries: None,
        }),
    )
    .await
    {
        Response::ListDir(l) => l,
        other => panic!("{other:?}"),
    };
    let names: Vec<&str> = listing.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        ["a", "a/b", "a/b/c.txt", "bin ärger ✓.dat", "run.sh"],
        "{listing:?}"
    );
    assert!(!listing.truncated);
    match ok(
        &daemon,
        &client,
        Request::ListDir(ListDirRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: dir.clone(),
            recursive: true,
            max_entries: Some(2),
        }),
    )
    .await
    {
        Response::ListDir(l) => {
            assert_eq!(l.entries.len(), 2);
            assert!(l.truncated);
        }
        other => panic!("{other:?}"),
    }

    ok(&daemon, &client, remove_req(&dir, true)).await;
}

fn remove_req(path: &str, recursive: bool) -> Request {
    Request::Remove(RemoveRequest {
        host: "host1".into(),
        path: path.into(),
        recursive,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn mkdir_rename_remove_and_their_errors() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let dir = remote_dir(&daemon, &client).await;

    let mkdir = |path: String, parents: bool| {
        Request::Mkdir(MkdirRequest {
            host: "host1".into(),
            path,
            parents,
            mode: None,
        })
    };
    let e = err(&client, mkdir(format!("{dir}/x/y"), false)).await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("parents"), "{}", e.message);
    ok(&daemon, &client, mkdir(format!("{dir}/x/y"), true)).await;
    ok(&daemon, &client, mkdir(format!("{dir}/x/y"), true)).await;
    let e = err(&client, mkdir(format!("{dir}/x/y"), false)).await;
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e:?}");

    ok(&daemon, &client, write(&format!("{dir}/x/y/f"), b"1")).await;
    ok(&daemon, &client, write(&format!("{dir}/g"), b"2")).await;
    let rename = |from: String, to: String, overwrite: bool| {
        Request::Rename(RenameRequest {
            host: "host1".into(),
            from,
            to,
            overwrite,
        })
    };
    let e = err(
        &client,
        rename(format!("{dir}/g"), format!("{dir}/x/y/f"), false),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e:?}");
    ok(
        &daemon,
        &client,
        rename(format!("{dir}/g"), format!("{dir}/x/y/f"), true),
    )
    .await;
    assert_eq!(
        read_bytes(&daemon, &client, &format!("{dir}/x/y/f")).await,
        b"2"
    );
    let e = err(
        &client,
        rename(format!("{dir}/nope"), format!("{dir}/z"), false),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::NotFound, "{e:?}");
    assert!(e.message.contains("nope"), "{}", e.message);

    // A non-empty directory needs `recursive`.
    let e = err(&client, remove_req(&format!("{dir}/x"), false)).await;
    assert_eq!(e.kind, ErrorKind::WrongType, "{e:?}");
    assert!(e.message.contains("recursive"), "{}", e.message);
    match ok(&daemon, &client, remove_req(&format!("{dir}/x"), true)).await {
        Response::Remove(r) => {
            assert_eq!((r.files, r.dirs), (1, 2));
        }
        other => panic!("{other:?}"),
    }
    let e = err(&client, stat(&format!("{dir}/x"))).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    ok(&daemon, &client, remove_req(&dir, true)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_paths_get_errors_that_name_them() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let dir = remote_dir(&daemon, &client).await;

    let e = err(&client, read(&format!("{dir}/missing.txt"))).await;
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("missing.txt"), "{}", e.message);

    let e = err(&client, read(&dir)).await;
    assert_eq!(e.kind, ErrorKind::WrongType, "{e:?}");

    ok(&daemon, &client, write(&format!("{dir}/plain"), b"x")).await;
    let e = err(
        &client,
        Request::ListDir(ListDirRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: format!("{dir}/plain"),
            recursive: false,
            max_entries: None,
        }),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::WrongType, "{e:?}");
    assert!(e.message.contains("not a directory"), "{}", e.message);

    // Permission denied: a root-owned file the test user cannot read.
    let e = err(&client, read("/etc/shadow")).await;
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");
    assert!(e.message.contains("/etc/shadow"), "{}", e.message);
    let e = err(&client, write("/etc/sshmcp-test-denied", b"x")).await;
    assert_eq!(e.kind, ErrorKind::PermissionDenied, "{e:?}");

    // A symlink is reported as one; following it describes the target.
    exec_ok(
        &daemon,
        &client,
        exec_request("host1", &format!("ln -s plain {dir}/link")),
    )
    .await;
    match ok(&daemon, &client, stat(&format!("{dir}/link"))).await {
        Response::Stat(s) => {
            assert_eq!(s.kind, FileKind::Symlink);
            assert_eq!(s.link_target.as_deref(), Some("plain"));
        }
        other => panic!("{other:?}"),
    }
    match ok(
        &daemon,
        &client,
        Request::Stat(StatRequest {
            max_age_secs: None,
            host: "host1".into(),
            path: format!("{dir}/link"),
            follow_symlinks: true,
        }),
    )
    .await
    {
        Response::Stat(s) => assert_eq!(s.kind, FileKind::File),
        other => panic!("{other:?}"),
    }

    let e = err(
        &client,
        Request::Stat(StatRequest {
            max_age_secs: None,
            host: "nosuchhost".into(),
            path: "/".into(),
            follow_symlinks: false,
        }),
    )
    .await;
    assert_eq!(e.kind, ErrorKind::HostUnknown);
    ok(&daemon, &client, remove_req(&dir, true)).await;
}
