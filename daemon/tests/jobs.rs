//! Jobs against real sshd: commands that run on after their call, read by
//! offset with long-polling, signalled, bounded, and owned by the daemon
//! rather than by the client that started them.

mod common;

use common::{ScratchHost, connect, exec_request, job_page, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ErrorKind, ExecOutput, JobOutput, JobSignalRequest, JobState, OnTimeout, ReadFileRequest,
    Request, Response,
};
use sshmcp_testkit::{DaemonOptions, Fleet};

async fn exec(client: &DaemonClient, req: sshmcp_proto::ExecRequest) -> ExecOutput {
    match request(client, Request::Exec(req)).await {
        Ok(Response::Exec(out)) => out,
        other => panic!("exec: {other:?}"),
    }
}

async fn background(client: &DaemonClient, command: &str) -> String {
    let mut req = exec_request("host1", command);
    req.background = true;
    let out = exec(client, req).await;
    assert!(out.exit_code.is_none(), "{out:?}");
    out.job.expect("a job").job_id
}

/// Read `job` to its end from the start, long-polling; the pages read.
async fn read_to_end(client: &DaemonClient, job: &str) -> (String, String, Vec<JobOutput>) {
    let (mut out, mut err, mut pages) = (Vec::new(), Vec::new(), Vec::new());
    let (mut at_out, mut at_err) = (0, 0);
    for _ in 0..120 {
        let p = job_page(client, job, at_out, at_err, 5).await;
        out.extend_from_slice(&p.stdout);
        err.extend_from_slice(&p.stderr);
        (at_out, at_err) = (p.next_stdout_offset, p.next_stderr_offset);
        let done = p.state != JobState::Running && !p.truncated;
        pages.push(p);
        if done {
            break;
        }
    }
    (
        String::from_utf8(out).expect("UTF-8"),
        String::from_utf8(err).expect("UTF-8"),
        pages,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_background_job_is_read_while_it_runs_by_long_polling() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = background(
        &client,
        "for i in 1 2 3; do echo line$i; echo err$i >&2; sleep 0.7; done; exit 3",
    )
    .await;
    let (out, err, pages) = read_to_end(&client, &job).await;
    assert_eq!(out, "line1\nline2\nline3\n");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    let last = pages.last().expect("a page");
    assert_eq!((last.state, last.exit_code), (JobState::Exited, Some(3)));
    assert!(
        pages.iter().filter(|p| !p.stdout.is_empty()).count() >= 2,
        "long-polling returned as output came, not only at the end: {pages:?}"
    );
    match request(&client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => {
            let info = jobs.iter().find(|j| j.job_id == job).expect("listed");
            assert_eq!(
                (info.host.as_str(), info.state),
                ("host1", JobState::Exited)
            );
            assert!(info.command.starts_with("for i in 1 2 3"));
            assert_eq!(info.kind, sshmcp_proto::JobKind::Command);
            assert_eq!(info.bytes, 33);
        }
        other => panic!("jobs: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_outlives_the_client_that_started_it() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let first = connect(daemon.socket()).await;
    let job = background(&first, "sleep 1; echo finished").await;
    drop(first);
    let second = connect(daemon.socket()).await;
    let (out, _, pages) = read_to_end(&second, &job).await;
    assert_eq!(out, "finished\n");
    assert_eq!(pages.last().unwrap().state, JobState::Exited);
}

#[tokio::test(flavor = "multi_thread")]
async fn on_timeout_background_turns_a_slow_call_into_a_job() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let mut req = exec_request("host1", "echo early; sleep 2; echo late");
    req.timeout_secs = Some(1);
    req.on_timeout = OnTimeout::Background;
    let out = exec(&client, req).await;
    let job = out.job.expect("the call became a job");
    assert!(job.reason.contains("timeout_secs=1"), "{}", job.reason);
    assert_eq!(out.stdout, b"early\n");
    assert!(out.exit_code.is_none());
    let (rest, _, pages) = read_to_end(&client, &job.job_id).await;
    assert_eq!(rest, "early\nlate\n");
    assert_eq!(pages.last().unwrap().exit_code, Some(0));
    // A call that ends within its timeout answers as a plain exec, and
    // leaves no job behind.
    let mut req = exec_request("host1", "echo quick");
    req.on_timeout = OnTimeout::Background;
    let out = exec(&client, req).await;
    assert!(out.job.is_none());
    assert_eq!(
        (out.stdout.as_slice(), out.exit_code),
        (&b"quick\n"[..], Some(0))
    );
    match request(&client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => assert_eq!(jobs.len(), 1, "{jobs:?}"),
        other => panic!("jobs: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_stops_a_job_at_stop_after_secs_with_its_caller_gone() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let starter = connect(daemon.socket()).await;
    let mut req = exec_request("host1", "echo started; sleep 60; echo never");
    req.timeout_secs = Some(1);
    req.on_timeout = OnTimeout::Background;
    req.stop_after_secs = Some(2);
    let job = exec(&starter, req).await.job.expect("a job").job_id;
    drop(starter);
    let client = connect(daemon.socket()).await;
    let (out, _, pages) = read_to_end(&client, &job).await;
    assert_eq!(out, "started\n");
    let last = pages.last().unwrap();
    assert_eq!(
        (last.state, last.signal.as_deref()),
        (JobState::Killed, Some("TERM")),
        "{last:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_is_read_as_an_exec_answer_with_head_and_tail() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = background(&client, "seq 1 20000; echo oops >&2; exit 4").await;
    read_to_end(&client, &job).await;
    let req = sshmcp_proto::JobOutputRequest {
        job_id: job.clone(),
        max_bytes: Some(1),
        as_exec: Some(1000),
        ..Default::default()
    };
    let page = match request(&client, Request::JobOutput(req)).await {
        Ok(Response::JobOutput(page)) => page,
        other => panic!("{other:?}"),
    };
    assert_eq!(page.stdout.len(), 1, "the page itself is as asked");
    let exec = page.exec.expect("the exec answer");
    assert_eq!(exec.exit_code, Some(4));
    assert_eq!(exec.stdout.len(), 1000);
    assert!(exec.stdout.starts_with(b"1\n2\n3\n"));
    assert!(exec.stdout.ends_with(b"19999\n20000\n"));
    let gap = exec.stdout_gap.expect("a gap");
    assert_eq!((gap.at, gap.bytes), (500, exec.stdout_bytes - 1000));
    assert_eq!(exec.stderr, b"oops\n");
    assert!(exec.job.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signalled_job_is_killed_and_says_by_what() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = background(&client, "sleep 100").await;
    let state = request(
        &client,
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
    let p = job_page(&client, &job, 0, 0, 0).await;
    assert_eq!(p.signal.as_deref(), Some("TERM"));
    let err = request(
        &client,
        Request::JobSignal(JobSignalRequest {
            job_id: "j0-0".into(),
            signal: "TERM".into(),
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert!(err.message.contains("`jobs`"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_past_the_spool_cap_drops_the_oldest_and_says_so() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "[jobs]\nspool_bytes = \"64K\"\n");
    let client = connect(daemon.socket()).await;
    let job = background(&client, "head -c 300000 /dev/zero | tr '\\0' a").await;
    let (_, _, pages) = read_to_end(&client, &job).await;
    assert_eq!(pages.last().unwrap().next_stdout_offset, 300_000);
    // Read again from the start once it ended: the oldest part is gone,
    // and the page says where what is kept begins.
    let again = job_page(&client, &job, 0, 0, 0).await;
    assert!(again.truncated);
    assert_eq!(again.stdout_offset, 300_000 - 65_536);
    assert_eq!(again.stdout.len(), 65_536);
    assert_eq!(again.next_stdout_offset, 300_000);
    // The spool is on disk in the daemon's state directory, the owner's
    // alone, and holds at most one and a half times the cap.
    let spool = daemon.dir().join("state/sshmcp/spool");
    let mut on_disk = 0;
    for entry in std::fs::read_dir(&spool).expect("the spool directory") {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        assert!(name.starts_with(&format!("{job}.")), "{name}");
        let meta = entry.metadata().unwrap();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
            0o600
        );
        on_disk += meta.len();
    }
    assert!((65_536..=98_304).contains(&on_disk), "{on_disk}");
}

#[tokio::test(flavor = "multi_thread")]
async fn jobs_are_bounded_per_host() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "[jobs]\nmax_per_host = 1\n");
    let client = connect(daemon.socket()).await;
    let job = background(&client, "sleep 100").await;
    let mut req = exec_request("host1", "sleep 100");
    req.background = true;
    let err = request(&client, Request::Exec(req)).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Overloaded);
    assert!(err.message.contains("max_per_host"), "{}", err.message);
    let _ = request(
        &client,
        Request::JobSignal(JobSignalRequest {
            job_id: job,
            signal: "KILL".into(),
        }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn while_a_job_runs_its_host_is_not_served_from_the_cache() {
    let h = ScratchHost::start(None, "", DaemonOptions::default()).await;
    let f = h.r("f");
    h.sh("printf before > f && touch -d @1000000000 f").await;
    let read = || {
        request(
            &h.client,
            Request::ReadFile(ReadFileRequest {
                host: "host1".into(),
                path: f.clone(),
                ..Default::default()
            }),
        )
    };
    read().await.unwrap();
    assert!(matches!(read().await, Ok(Response::Cached(_))));
    let job = background(&h.client, &format!("sleep 1; printf after > '{f}'")).await;
    // During the job: from the host.
    assert!(matches!(read().await, Ok(Response::ReadFile(_))));
    read_to_end(&h.client, &job).await;
    // After it: the job's change is seen.
    match read().await {
        Ok(Response::ReadFile(c)) => assert_eq!(c.data, b"after"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exec_waiting_for_its_job_sends_samples_of_its_output() {
    let fleet = Fleet::start(1);
    let daemon = sshmcp_testkit::Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let mut req = exec_request(
        "host1",
        "for i in 1 2 3 4; do echo step $i; sleep 0.3; done",
    );
    req.on_timeout = OnTimeout::Background;
    let mut call = client.start(Request::Exec(req)).expect("send the exec");
    let mut samples = Vec::new();
    loop {
        match call.next_event().await.expect("daemon answers") {
            sshmcp_proto::client::Event::Output { data, .. } => samples.push(data),
            sshmcp_proto::client::Event::Progress(_) | sshmcp_proto::client::Event::Confirm(_) => {}
            sshmcp_proto::client::Event::Done(reply) => {
                let Ok(Response::Exec(out)) = reply else {
                    panic!("{reply:?}")
                };
                assert_eq!(out.exit_code, Some(0));
                break;
            }
        }
    }
    assert!(samples.len() >= 2, "{samples:?}");
    assert!(
        samples.iter().all(|s| s.starts_with(b"step ")),
        "{samples:?}"
    );
}
