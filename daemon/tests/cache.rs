//! The response cache against a real sshd: every change made through the
//! daemon shows at once, changes made elsewhere show within the TTLs, the
//! bounds hold, and concurrent identical misses reach the server once.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::{ScratchHost, SftpSubsystem, request};
use sshmcp_proto::{
    CacheStats, ErrorKind, ListDirRequest, MkdirRequest, ReadFileRequest, RemoveRequest,
    RenameRequest, Reply, Request, Response, StatRequest, WriteFileRequest,
};
use sshmcp_testkit::DaemonOptions;

/// Short TTLs, so expiry shows within a test.
const FAST: &str = "[cache]\nread_file_fresh_ms = 300\nstat_ttl_secs = 1\nlist_dir_ttl_secs = 1\n";

async fn host(config: &str) -> ScratchHost {
    ScratchHost::start(None, config, DaemonOptions::default()).await
}

/// The answer, and its age when it came from the cache.
fn open(reply: Reply) -> (Reply, Option<u64>) {
    match reply {
        Ok(Response::Cached(cached)) => (
            Ok(std::sync::Arc::unwrap_or_clone(cached.response)),
            Some(cached.age_ms),
        ),
        other => (other, None),
    }
}

fn read_request(path: &str, max_age_secs: Option<u64>) -> Request {
    Request::ReadFile(ReadFileRequest {
        host: "host1".into(),
        path: path.into(),
        max_age_secs,
        ..Default::default()
    })
}

async fn read(h: &ScratchHost, path: &str) -> (String, bool) {
    read_aged(h, path, None).await
}

async fn read_aged(h: &ScratchHost, path: &str, max_age_secs: Option<u64>) -> (String, bool) {
    match open(request(&h.client, read_request(path, max_age_secs)).await) {
        (Ok(Response::ReadFile(c)), age) => {
            (String::from_utf8(c.data).expect("UTF-8"), age.is_some())
        }
        other => panic!("read {path}: {other:?}\n{}", h.daemon.log()),
    }
}

async fn stat(h: &ScratchHost, path: &str) -> (Reply, bool) {
    let (reply, age) = open(
        request(
            &h.client,
            Request::Stat(StatRequest {
                host: "host1".into(),
                path: path.into(),
                ..Default::default()
            }),
        )
        .await,
    );
    (reply, age.is_some())
}

async fn list(h: &ScratchHost, path: &str) -> (Reply, bool) {
    let (reply, age) = open(
        request(
            &h.client,
            Request::ListDir(ListDirRequest {
                host: "host1".into(),
                path: path.into(),
                ..Default::default()
            }),
        )
        .await,
    );
    (reply, age.is_some())
}

fn names(reply: &Reply) -> Vec<String> {
    match reply {
        Ok(Response::ListDir(l)) => l.entries.iter().map(|e| e.path.clone()).collect(),
        other => panic!("not a listing: {other:?}"),
    }
}

fn not_found(reply: &Reply) -> bool {
    matches!(reply, Err(e) if e.kind == ErrorKind::NotFound)
}

async fn ok(h: &ScratchHost, req: Request) -> Response {
    let what = format!("{req:?}");
    match request(&h.client, req).await {
        Ok(response) => response,
        Err(e) => panic!("{what}: {e:?}\n{}", h.daemon.log()),
    }
}

async fn write(h: &ScratchHost, path: &str, data: &str) {
    ok(
        h,
        Request::WriteFile(WriteFileRequest {
            host: "host1".into(),
            path: path.into(),
            data: data.as_bytes().to_vec(),
            mode: None,
            append: false,
            create_dirs: false,
        }),
    )
    .await;
}

async fn remove(h: &ScratchHost, path: &str, recursive: bool) {
    ok(
        h,
        Request::Remove(RemoveRequest {
            host: "host1".into(),
            path: path.into(),
            recursive,
        }),
    )
    .await;
}

async fn mkdir(h: &ScratchHost, path: &str, parents: bool) {
    ok(
        h,
        Request::Mkdir(MkdirRequest {
            host: "host1".into(),
            path: path.into(),
            parents,
            mode: None,
        }),
    )
    .await;
}

async fn cache_stats(h: &ScratchHost) -> CacheStats {
    match ok(h, Request::Cache).await {
        Response::Cache(stats) => stats,
        other => panic!("Cache answered {other:?}"),
    }
}

/// Set `path`'s mtime (on this machine, where the test host's files are)
/// to `secs` after the epoch, as a change made outside the daemon would.
fn set_mtime(path: &str, secs: u64) {
    let status = std::process::Command::new("touch")
        .args(["-m", "-d", &format!("@{secs}"), path])
        .status()
        .expect("run touch");
    assert!(status.success(), "touch {path}");
}

fn mtime(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).expect("stat").mtime() as u64
}

/// A file written outside the daemon, readable by the test host's user,
/// with an mtime long past (so its reads are not "racy").
fn put(path: &str, data: &str) {
    std::fs::write(path, data).expect("write");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    set_mtime(path, 1_000_000_000);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_through_the_daemon_shows_at_once() {
    let h = host("").await;
    let f = h.r("f");
    put(&f, "old");
    assert_eq!(read(&h, &f).await, ("old".into(), false));
    assert_eq!(
        read(&h, &f).await,
        ("old".into(), true),
        "the second read is a hit"
    );
    write(&h, &f, "new content").await;
    // What the write left is what the next read gets, without asking.
    assert_eq!(read(&h, &f).await, ("new content".into(), true));
    assert_eq!(std::fs::read_to_string(&f).expect("read"), "new content");
    let stats = cache_stats(&h).await;
    assert!(
        stats.invalidations.iter().any(|c| c.name == "write_file"),
        "{stats:?}"
    );
}

async fn read_part(h: &ScratchHost, path: &str, offset: u64, length: u64) -> (Reply, bool) {
    let (reply, age) = open(
        request(
            &h.client,
            Request::ReadFile(ReadFileRequest {
                host: "host1".into(),
                path: path.into(),
                offset,
                length: Some(length),
                max_age_secs: None,
            }),
        )
        .await,
    );
    (reply, age.is_some())
}

fn content(reply: &Reply) -> (String, u64, u64, bool) {
    match reply {
        Ok(Response::ReadFile(c)) => (
            String::from_utf8(c.data.clone()).expect("UTF-8"),
            c.offset,
            c.size,
            c.truncated,
        ),
        other => panic!("not a file's content: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_write_leaves_is_read_back_until_it_could_have_changed() {
    let h = host(FAST).await;
    let f = h.r("f");
    write(&h, &f, "0123456789").await;
    assert_eq!(read(&h, &f).await, ("0123456789".into(), true));
    // Pages of it (the shim reads 16 KiB at a time) are cut from it as the
    // host would cut them.
    let (part, cached) = read_part(&h, &f, 2, 3).await;
    assert!(cached);
    assert_eq!(content(&part), ("234".into(), 2, 10, true));
    let (tail, cached) = read_part(&h, &f, 7, 16384).await;
    assert!(cached);
    assert_eq!(content(&tail), ("789".into(), 7, 10, false));
    let (past, cached) = read_part(&h, &f, 20, 5).await;
    assert!(cached);
    assert_eq!(content(&past), (String::new(), 20, 10, false));
    for (offset, length) in [(2, 3), (7, 16384), (20, 5)] {
        let from_host = request(
            &h.client,
            Request::ReadFile(ReadFileRequest {
                host: "host1".into(),
                path: f.clone(),
                offset,
                length: Some(length),
                max_age_secs: Some(0),
            }),
        )
        .await;
        let (cached, _) = read_part(&h, &f, offset, length).await;
        assert_eq!(content(&cached), content(&from_host), "{offset}+{length}");
    }
    // Its mtime is this second's: past read_file_fresh_ms a change made
    // elsewhere (at the same size, in the same second) shows.
    std::fs::write(&f, "9876543210").expect("write");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(&h, &f).await, ("9876543210".into(), false));
    // An append is not kept: the file holds more than it wrote.
    ok(
        &h,
        Request::WriteFile(WriteFileRequest {
            host: "host1".into(),
            path: f.clone(),
            data: b"+".to_vec(),
            mode: None,
            append: true,
            create_dirs: false,
        }),
    )
    .await;
    assert_eq!(read(&h, &f).await, ("9876543210+".into(), false));
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writes_of_one_file_keep_only_what_is_there() {
    let h = Arc::new(host("").await);
    let f = h.r("f");
    put(&f, "start");
    for round in 0..12 {
        let writers: Vec<_> = (0..6)
            .map(|i| {
                let (h, f) = (h.clone(), f.clone());
                tokio::spawn(async move {
                    let client = common::connect(h.daemon.socket()).await;
                    let req = Request::WriteFile(WriteFileRequest {
                        host: "host1".into(),
                        path: f,
                        data: format!("round {round} writer {i}").into_bytes(),
                        mode: None,
                        append: false,
                        create_dirs: false,
                    });
                    request(&client, req).await.expect("write");
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        let on_disk = std::fs::read_to_string(&f).expect("read");
        assert_eq!(read(&h, &f).await.0, on_disk, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_drops_only_the_answers_it_can_reach() {
    let h = host("").await;
    let (d, sub, f, g) = (h.r("d"), h.r("d/sub"), h.r("d/sub/f"), h.r("d/g"));
    std::fs::create_dir_all(&sub).expect("mkdir");
    put(&f, "f");
    put(&g, "g");
    for dir in [&d, &sub] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    }
    let warm = || async {
        for path in [&d, &sub, &f] {
            assert!(stat(&h, path).await.0.is_ok());
        }
        for dir in [&d, &sub] {
            assert!(list(&h, dir).await.0.is_ok());
        }
        read(&h, &g).await;
    };
    warm().await;
    let (d_before, _) = stat(&h, &d).await;
    write(&h, &f, "f, longer").await;
    // The file's directory changed (a new file was renamed into it), and
    // so did the listing above it, which shows that directory's mtime.
    assert!(!stat(&h, &f).await.1);
    assert!(!stat(&h, &sub).await.1);
    assert!(!list(&h, &sub).await.1);
    assert!(!list(&h, &d).await.1);
    // The directory above it and a file beside it did not.
    let (d_after, cached) = stat(&h, &d).await;
    assert!(cached, "stat of the grandparent was dropped");
    assert_eq!(d_after, d_before);
    let (d_truth, _) = open(
        request(
            &h.client,
            Request::Stat(StatRequest {
                host: "host1".into(),
                path: d.clone(),
                max_age_secs: Some(0),
                ..Default::default()
            }),
        )
        .await,
    );
    assert_eq!(d_after, d_truth);
    assert!(read(&h, &g).await.1);
    // A change that may make missing parents reaches every answer above.
    warm().await;
    mkdir(&h, &h.r("d/sub/x/y/z"), true).await;
    assert!(!stat(&h, &d).await.1);
    let (sub_listing, cached) = list(&h, &sub).await;
    assert!(!cached);
    assert!(
        names(&sub_listing)
            .iter()
            .any(|n| n.rsplit('/').next() == Some("x"))
    );
    warm().await;
    run(&h, &format!("mkdir -p {}", h.r("d/sub/p/q"))).await;
    assert!(!stat(&h, &d).await.1);
    assert!(read(&h, &g).await.1);
    // A file removed through the daemon is cached as missing.
    remove(&h, &g, false).await;
    assert!(not_found(&stat(&h, &g).await.0));
    let evictions = cache_stats(&h).await.evictions;
    let (again, _) = stat(&h, &g).await;
    match again {
        Err(e) if e.kind == ErrorKind::NotFound => assert!(
            e.message.contains("answered from the cache"),
            "a second stat of a removed file asked the host: {e:?}"
        ),
        other => panic!("{other:?}"),
    }
    // Answers replaced or dropped are not counted as evicted.
    assert_eq!(cache_stats(&h).await.evictions, evictions);
    assert_eq!(evictions, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_that_edits_a_file_shows_at_once() {
    let h = host("").await;
    let f = h.r("f");
    put(&f, "alpha\n");
    read(&h, &f).await;
    assert!(read(&h, &f).await.1);
    h.sh("sed -i s/alpha/beta/ f").await;
    assert_eq!(read(&h, &f).await.0, "beta\n");
    // Even a rewrite that keeps the size and puts the mtime back.
    assert!(read(&h, &f).await.1);
    h.sh("t=$(stat -c %Y f); printf 'gamma\n' > f; touch -d @$t f")
        .await;
    assert_eq!(read(&h, &f).await, ("gamma\n".into(), false));
    // A stat and a listing cached before an exec are fetched anew.
    let (before, _) = stat(&h, &f).await;
    assert!(stat(&h, &f).await.1);
    h.sh("printf 'longer content' > f").await;
    let (after, cached) = stat(&h, &f).await;
    assert!(!cached);
    assert_ne!(before, after);
}

/// Run `command` through the daemon as a plain exec (no `cd` first).
async fn run(h: &ScratchHost, command: &str) {
    let out = common::exec_ok(&h.daemon, &h.client, common::exec_request("host1", command)).await;
    assert_eq!(out.exit_code, Some(0), "{command}: {out:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_drops_only_what_its_parse_names() {
    // Reads are served unconfirmed for a minute: only the drops refresh them.
    let h = host("[cache]\nread_file_fresh_ms = 60000\n").await;
    let (f, g, d) = (h.r("f"), h.r("g"), h.r("d"));
    put(&f, "f\n");
    put(&g, "g\n");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    put(&format!("{d}/x"), "x\n");
    std::os::unix::fs::symlink(&d, h.r("ld")).unwrap();
    let via_link = h.r("ld/x");
    let backup = h.r("g.bak");
    for _ in 0..2 {
        read(&h, &f).await;
        read(&h, &g).await;
        read(&h, &via_link).await;
        let _ = stat(&h, &backup).await;
    }
    // The missing backup is cached as missing.
    let hits = cache_stats(&h).await.hits;
    assert!(not_found(&stat(&h, &backup).await.0));
    assert_eq!(cache_stats(&h).await.hits, hits + 1, "the miss is cached");

    // Changes nothing: everything stays cached.
    run(&h, &format!("grep -c f {f} {g} || true")).await;
    assert!(read(&h, &f).await.1);
    assert!(read(&h, &g).await.1);

    // Appends to f: f is read anew, g is still served.
    run(&h, &format!("echo more >> {f}")).await;
    assert_eq!(read(&h, &f).await, ("f\nmore\n".into(), false));
    assert!(read(&h, &g).await.1);

    // Edits g in place with a backup: both show.
    run(&h, &format!("sed -i.bak s/g/G/ {g}")).await;
    assert_eq!(read(&h, &g).await, ("G\n".into(), false));
    assert!(!not_found(&stat(&h, &backup).await.0), "the backup shows");
    assert!(read(&h, &f).await.1);

    // A write named through the real directory drops what was read
    // through the symlink.
    run(&h, &format!("tee -a {d}/x < {f} > /dev/null")).await;
    assert_eq!(read(&h, &via_link).await, ("x\nf\nmore\n".into(), false));
    let stats = cache_stats(&h).await;
    assert!(
        stats.invalidations.iter().any(|c| c.name == "exec"),
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_exec_whose_inputs_are_named_goes_only_when_they_change() {
    let h = host("").await;
    let (f, g, d) = (h.r("f"), h.r("g"), h.r("d"));
    put(&f, "one\n");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    put(&format!("{d}/x"), "x\n");
    std::os::unix::fs::symlink(&d, h.r("ld")).unwrap();
    let cached = |command: String| {
        let mut req = common::exec_request("host1", &command);
        req.cache_secs = Some(600);
        let client = &h.client;
        async move {
            match open(request(client, Request::Exec(req)).await) {
                (Ok(Response::Exec(out)), age) => {
                    (String::from_utf8(out.stdout).unwrap(), age.is_some())
                }
                other => panic!("{command}: {other:?}"),
            }
        }
    };
    let cat_f = format!("cat {f}");
    let wc_link = format!("wc -l < {}/ld/x", h.remote.path().display());
    let ls_d = format!("ls {d}");
    for command in [&cat_f, &wc_link, &ls_d] {
        cached(command.clone()).await;
        assert!(cached(command.clone()).await.1, "{command} is cached");
    }
    // A change elsewhere leaves them all.
    write(&h, &g, "g").await;
    for command in [&cat_f, &wc_link, &ls_d] {
        assert!(cached(command.clone()).await.1, "{command} stays");
    }
    // Each goes when what it reads changes, under whatever spelling.
    write(&h, &f, "two\n").await;
    assert_eq!(cached(cat_f.clone()).await, ("two\n".into(), false));
    assert!(cached(wc_link.clone()).await.1);
    write(&h, &format!("{d}/x"), "x\ny\n").await;
    assert_eq!(cached(wc_link.clone()).await, ("2\n".into(), false));
    assert_eq!(cached(ls_d.clone()).await, ("x\n".into(), false));
    run(&h, &format!("touch {d}/z")).await;
    assert_eq!(cached(ls_d.clone()).await, ("x\nz\n".into(), false));
    assert!(cached(cat_f.clone()).await.1);
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_reads_its_own_exec_writes_while_others_read_and_write() {
    // Reads are served unconfirmed for a minute: only the drops refresh them.
    let h = Arc::new(host("[cache]\nread_file_fresh_ms = 60000\n").await);
    let shared = h.r("shared.log");
    put(&shared, "");
    let clients: Vec<_> = (0..6)
        .map(|c| {
            let h = h.clone();
            let shared = shared.clone();
            tokio::spawn(async move {
                let client = common::connect(h.daemon.socket()).await;
                let own = h.r(&format!("own{c}"));
                put(&own, "v0\n");
                for round in 1..=8 {
                    let line = format!("c{c} r{round}");
                    let edit =
                        format!("echo '{line}' >> {shared} && sed -i 's/^v.*/v{round}/' {own}");
                    let out =
                        common::exec_ok(&h.daemon, &client, common::exec_request("host1", &edit))
                            .await;
                    assert_eq!(out.exit_code, Some(0), "{out:?}");
                    for (path, want) in [(&shared, line.clone()), (&own, format!("v{round}"))] {
                        let reply = request(&client, read_request(path, None)).await;
                        let data = match open(reply) {
                            (Ok(Response::ReadFile(c)), _) => String::from_utf8(c.data).unwrap(),
                            other => panic!("{other:?}"),
                        };
                        assert!(
                            data.lines().any(|l| l == want),
                            "client {c} round {round}: {path} lacks {want:?}: {data:?}"
                        );
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn renaming_a_directory_shows_in_both_listings() {
    let h = host("").await;
    let (d, e) = (h.r("d"), h.r("e"));
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    put(&format!("{d}/x"), "x");
    assert_eq!(names(&list(&h, &d).await.0), ["x"]);
    assert!(list(&h, &d).await.1, "the second listing is a hit");
    assert!(not_found(&list(&h, &e).await.0));
    ok(
        &h,
        Request::Rename(RenameRequest {
            host: "host1".into(),
            from: d.clone(),
            to: e.clone(),
            overwrite: false,
        }),
    )
    .await;
    assert!(not_found(&list(&h, &d).await.0), "the old name is gone");
    assert_eq!(names(&list(&h, &e).await.0), ["x"], "the new name lists");
    let (x, _) = stat(&h, &format!("{e}/x")).await;
    assert!(x.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn removing_a_tree_forgets_what_was_inside_it() {
    let h = host("").await;
    let d = h.r("tree");
    h.sh("mkdir -p tree/sub && printf leaf > tree/sub/leaf && touch -d @1000000000 tree/sub/leaf")
        .await;
    let leaf = format!("{d}/sub/leaf");
    assert!(stat(&h, &leaf).await.0.is_ok());
    assert!(stat(&h, &leaf).await.1);
    assert_eq!(read(&h, &leaf).await.0, "leaf");
    remove(&h, &d, true).await;
    assert!(not_found(&stat(&h, &leaf).await.0));
    let gone = request(&h.client, read_request(&leaf, None)).await;
    assert!(not_found(&gone), "{gone:?}");
    // And a directory made again through the daemon is seen at once.
    mkdir(&h, &d, false).await;
    assert!(stat(&h, &d).await.0.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn another_spelling_of_a_path_is_forgotten_too() {
    let h = host("").await;
    let dir = h.r("real");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::os::unix::fs::symlink(&dir, h.r("link")).unwrap();
    let f = format!("{dir}/f");
    put(&f, "one");
    // Through the symlinked directory, and home-relative.
    let via_link = h.r("link/f");
    let home = sshmcp_testkit::test_user().home().to_path_buf();
    let relative = Path::new(&f)
        .strip_prefix(&home)
        .expect("the scratch directory is in the home")
        .display()
        .to_string();
    for path in [&via_link, &relative] {
        read(&h, path).await;
        assert!(read(&h, path).await.1, "{path} is cached");
    }
    write(&h, &f, "two!").await;
    assert_eq!(read(&h, &via_link).await, ("two!".into(), false));
    // Spelled from the home, it may share the write's own answer.
    assert_eq!(read(&h, &relative).await.0, "two!");
    // A missing path cached under one spelling appears under it once
    // created under another.
    let missing = format!("{relative}.new");
    assert!(not_found(&stat(&h, &missing).await.0));
    write(&h, &format!("{f}.new"), "here").await;
    assert!(stat(&h, &missing).await.0.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn home_relative_and_absolute_spellings_share_one_answer() {
    let h = host("").await;
    let f = h.r("f");
    put(&f, "one");
    let home = sshmcp_testkit::test_user().home().to_path_buf();
    let relative = Path::new(&f)
        .strip_prefix(&home)
        .expect("the scratch directory is in the home")
        .display()
        .to_string();
    // The first relative call has the daemon learn the home first.
    assert_eq!(read(&h, &relative).await, ("one".into(), false));
    assert_eq!(read(&h, &f).await, ("one".into(), true));
    assert!(stat(&h, &relative).await.0.is_ok());
    let (by_abs, abs_cached) = stat(&h, &f).await;
    assert!(
        abs_cached,
        "a stat spelled relative did not serve the absolute one"
    );
    // A change under either spelling reaches both.
    write(&h, &relative, "two").await;
    assert_eq!(read(&h, &f).await, ("two".into(), true));
    let (after, cached) = stat(&h, &f).await;
    assert!(!cached);
    assert_ne!(after, by_abs);
    run(&h, &format!("echo three > {relative}")).await;
    assert_eq!(read(&h, &f).await, ("three\n".into(), false));
    assert_eq!(read(&h, &relative).await, ("three\n".into(), true));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_within_the_same_second_is_not_hidden_by_the_mtime() {
    let h = host(FAST).await;
    let f = h.r("racy");
    std::fs::write(&f, "aaaa").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    let written = mtime(&f);
    assert_eq!(read(&h, &f).await.0, "aaaa");
    // Same size, same mtime second: only the content tells.
    std::fs::write(&f, "bbbb").unwrap();
    set_mtime(&f, written);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(&h, &f).await.0, "bbbb");
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_made_elsewhere_show_within_the_ttl() {
    let h = host(FAST).await;
    let f = h.r("elsewhere");
    put(&f, "first");
    read(&h, &f).await;
    assert!(stat(&h, &f).await.0.is_ok());
    // Another session rewrites it (new size, new mtime).
    std::fs::write(&f, "second version").unwrap();
    // A read after the fresh window is confirmed with a stat, which sees it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(&h, &f).await, ("second version".into(), false));
    // The stat cached before the change lives until its TTL, no longer.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    match stat(&h, &f).await {
        (Ok(Response::Stat(s)), false) => assert_eq!(s.size, 14),
        other => panic!("{other:?}"),
    }
    // A confirmed hit counts as a revalidation.
    put(&f, "third");
    read(&h, &f).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(read(&h, &f).await, ("third".into(), true));
    assert!(cache_stats(&h).await.revalidations >= 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn max_age_zero_goes_to_the_host() {
    let h = host("").await;
    let f = h.r("f");
    put(&f, "cached");
    read(&h, &f).await;
    assert!(read(&h, &f).await.1);
    put(&f, "direct");
    assert_eq!(read_aged(&h, &f, Some(0)).await, ("direct".into(), false));
    // And what the host said replaced the entry.
    assert_eq!(read(&h, &f).await, ("direct".into(), true));
}

#[tokio::test(flavor = "multi_thread")]
async fn live_kernel_trees_are_never_cached() {
    let h = host("").await;
    for _ in 0..2 {
        assert!(!read(&h, "/proc/self/stat").await.1);
        let (_, cached) = stat(&h, "/dev/null").await;
        assert!(!cached);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_stays_within_its_bytes_and_entries() {
    let h = host("[cache]\nmax_bytes = \"64K\"\nmax_entries = 1000\n").await;
    for i in 0..24 {
        let f = h.r(&format!("big{i}"));
        put(&f, &"z".repeat(8 * 1024));
        read(&h, &f).await;
    }
    let stats = cache_stats(&h).await;
    assert_eq!(stats.max_bytes, 64 * 1024);
    assert!(stats.bytes <= stats.max_bytes, "{stats:?}");
    assert!(stats.evictions > 0, "{stats:?}");

    let h = host("[cache]\nmax_entries = 5\n").await;
    for i in 0..20 {
        let _ = stat(&h, &h.r(&format!("missing{i}"))).await;
    }
    let stats = cache_stats(&h).await;
    assert!(stats.entries <= 5, "{stats:?}");
    assert!(stats.evictions >= 15, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_identical_misses_reach_the_server_once() {
    let (sftp, log) = SftpSubsystem::logging_openssh();
    let h = ScratchHost::start(Some(sftp), "", DaemonOptions::default()).await;
    let h = Arc::new(h);
    let f = h.r("shared");
    put(&f, &"s".repeat(64 * 1024));
    let reads: Vec<_> = (0..32)
        .map(|_| {
            let h = h.clone();
            let f = f.clone();
            tokio::spawn(async move { read(&h, &f).await })
        })
        .collect();
    for read in reads {
        let (data, _) = read.await.unwrap();
        assert_eq!(data.len(), 64 * 1024);
    }
    let opens = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("open \"") && l.contains(&f))
        .count();
    assert_eq!(
        opens,
        1,
        "sftp-server log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let stats = cache_stats(&h).await;
    assert_eq!((stats.misses, stats.hits), (1, 31), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn clear_drops_entries_and_stats_show_the_cache() {
    let h = host("").await;
    let f = h.r("f");
    put(&f, "x");
    read(&h, &f).await;
    let _ = stat(&h, &f).await;
    let stats = cache_stats(&h).await;
    assert_eq!(stats.entries, 2, "{stats:?}");
    assert_eq!(stats.hosts[0].name, "host1");
    assert!(
        stats
            .ops
            .iter()
            .any(|o| o.name == "read_file" && o.entries == 1)
    );
    match ok(&h, Request::Stats).await {
        Response::Stats(s) => assert_eq!(s.cache.entries, 2),
        other => panic!("{other:?}"),
    }
    match ok(
        &h,
        Request::CacheClear {
            host: Some("host1".into()),
        },
    )
    .await
    {
        Response::CacheCleared(n) => assert_eq!(n, 2),
        other => panic!("{other:?}"),
    }
    assert_eq!(cache_stats(&h).await.entries, 0);
    assert!(!read(&h, &f).await.1);
    let err = request(
        &h.client,
        Request::CacheClear {
            host: Some("nope".into()),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::HostUnknown);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cached_exec_is_served_until_something_changes() {
    let h = host("").await;
    // `tr` is not a command whose inputs the parser names: any change on
    // the host retires this one.
    let command = "cat /proc/sys/kernel/random/uuid | tr -d x";
    let run = |cache_secs| {
        let mut req = common::exec_request("host1", command);
        req.cache_secs = cache_secs;
        request(&h.client, Request::Exec(req))
    };
    let (first, age) = open(run(Some(60)).await);
    assert!(age.is_none());
    let (second, age) = open(run(Some(60)).await);
    assert!(age.is_some());
    assert_eq!(first, second, "the same answer, from the cache");
    // Without cache_secs it runs; the parser shows it changes nothing, so
    // the cached answer stays.
    let (third, age) = open(run(None).await);
    assert!(age.is_none());
    assert_ne!(first, third);
    assert!(open(run(Some(60)).await).1.is_some());
    // An exec the parser cannot vouch for may change anything: it retires
    // cached ones.
    let any = common::exec_request("host1", "sh -c true");
    assert!(
        open(request(&h.client, Request::Exec(any)).await)
            .1
            .is_none()
    );
    let (fourth, age) = open(run(Some(60)).await);
    assert!(age.is_none(), "an uncached exec retires cached ones");
    assert_ne!(first, fourth);
    // A write through the daemon retires them too.
    write(&h, &h.r("w"), "w").await;
    assert!(open(run(Some(60)).await).1.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cache_is_shed_first_when_memory_runs_high() {
    // The smallest cap the daemon takes: its cache budget is 4 MiB, and
    // large replies push its RSS over the 90% mark.
    let h = host("[daemon]\nmemory_limit = \"32M\"\n").await;
    for i in 0..12 {
        let f = h.r(&format!("chunk{i}"));
        put(&f, &"c".repeat(256 * 1024));
        read(&h, &f).await;
    }
    assert!(cache_stats(&h).await.entries > 0);
    let big = h.r("big");
    put(&big, &"b".repeat(6 << 20));
    let client = Arc::new(common::connect(h.daemon.socket()).await);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let reads: Vec<_> = (0..4)
            .map(|_| {
                let client = client.clone();
                let req = Request::ReadFile(ReadFileRequest {
                    host: "host1".into(),
                    path: big.clone(),
                    length: Some(6 << 20),
                    max_age_secs: Some(0),
                    ..Default::default()
                });
                tokio::spawn(async move { request(&client, req).await })
            })
            .collect();
        for read in reads {
            let _ = read.await;
        }
        let stats = cache_stats(&h).await;
        if stats.invalidations.iter().any(|c| c.name == "memory") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "memory never ran high: {stats:?}\n{}",
            h.daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The daemon still serves small work while it sheds.
    let (reply, _) = stat(&h, &h.r("chunk0")).await;
    assert!(reply.is_ok(), "{reply:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_tree_made_under_another_spelling_shows_in_the_listing() {
    let h = host("").await;
    let dir = h.r("probe");
    h.sh("mkdir probe && chmod 777 probe").await;
    let home = sshmcp_testkit::test_user().home().to_path_buf();
    let relative = Path::new(&dir)
        .strip_prefix(&home)
        .expect("the scratch directory is in the home")
        .display()
        .to_string();
    assert!(names(&list(&h, &dir).await.0).is_empty());
    assert!(list(&h, &dir).await.1, "cached");
    ok(
        &h,
        Request::WriteFile(WriteFileRequest {
            host: "host1".into(),
            path: format!("{relative}/new/a/f.txt"),
            data: b"x".to_vec(),
            mode: None,
            append: false,
            create_dirs: true,
        }),
    )
    .await;
    assert_eq!(names(&list(&h, &dir).await.0), ["new"]);
    assert!(list(&h, &dir).await.1);
    mkdir(&h, &format!("{relative}/other/b/c"), true).await;
    assert_eq!(names(&list(&h, &dir).await.0), ["new", "other"]);
}
