//! Detached jobs against real sshd: they run under `setsid` with their
//! output spooled on the host, so they outlive a dropped connection, a
//! restarted sshd and a restarted daemon, and are `lost` only when the host
//! says the process and its spool are gone.

mod common;

use std::time::{Duration, Instant};

use common::{connect, exec, exec_request, job_page, request};
use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{
    ErrorKind, JobInfo, JobOutput, JobOutputRequest, JobSignalRequest, JobState, Request, Response,
};
use sshmcp_testkit::{Daemon, Fleet};

async fn detached(client: &DaemonClient, command: &str) -> String {
    let mut req = exec_request("host1", command);
    req.detach = true;
    let out = exec(client, req).await.expect("detached exec");
    assert!(out.exit_code.is_none(), "{out:?}");
    let job = out.job.expect("a job");
    assert!(job.reason.contains("detached"), "{}", job.reason);
    job.job_id
}

/// Read `job` from `from` to its end, long-polling: what it wrote to
/// stdout, and the last page.
async fn read_to_end(client: &DaemonClient, job: &str, mut from: u64) -> (String, JobOutput) {
    let mut out = Vec::new();
    let mut err_at = 0;
    for _ in 0..120 {
        let p = job_page(client, job, from, err_at, 5).await;
        out.extend_from_slice(&p.stdout);
        (from, err_at) = (p.next_stdout_offset, p.next_stderr_offset);
        if p.state != JobState::Running && !p.truncated {
            return (String::from_utf8(out).expect("UTF-8"), p);
        }
    }
    panic!("job {job} did not end");
}

async fn jobs(client: &DaemonClient) -> Vec<JobInfo> {
    match request(client, Request::Jobs { host: None }).await {
        Ok(Response::Jobs(jobs)) => jobs,
        other => panic!("jobs: {other:?}"),
    }
}

/// Wait until `check` holds of what `command` prints on host1 over
/// plain ssh (not through the daemon); panics after 20 s.
fn until_host(fleet: &Fleet, command: &str, check: impl Fn(&str) -> bool) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let out = fleet.ssh("host1").arg(command).output().expect("ssh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if check(&text) {
            return text;
        }
        assert!(Instant::now() < until, "{command}: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_job_outlives_its_connection_and_a_restarted_sshd() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = detached(
        &client,
        "for i in 1 2 3 4 5 6 7 8; do echo line$i; sleep 0.5; done; exit 4",
    )
    .await;
    let first = job_page(&client, &job, 0, 0, 10).await;
    assert!(first.stdout.starts_with(b"line1\n"), "{first:?}");

    // Every connection dies and sshd is down for a while.
    let server = fleet.server(0);
    server.stop();
    server.kill_connections();
    std::thread::sleep(Duration::from_secs(1));
    server.restart();

    let (rest, last) = read_to_end(&client, &job, first.next_stdout_offset).await;
    let whole = format!("{}{rest}", String::from_utf8_lossy(&first.stdout));
    let expected: String = (1..=8).map(|i| format!("line{i}\n")).collect();
    assert_eq!(whole, expected);
    assert_eq!(last.state, JobState::Exited);
    assert_eq!(last.exit_code, Some(4));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_job_is_found_again_after_the_daemon_restarts() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let job = {
        let client = connect(daemon.socket()).await;
        detached(&client, "echo started; sleep 2; echo done >&2; exit 3").await
    };
    daemon.kill();
    daemon.restart();
    let client = connect(daemon.socket()).await;
    let listed = jobs(&client).await;
    let info = listed
        .iter()
        .find(|j| j.job_id == job)
        .unwrap_or_else(|| panic!("{job} not in {listed:?}"));
    assert!(info.detached, "{info:?}");
    let (out, last) = read_to_end(&client, &job, 0).await;
    assert_eq!(out, "started\n");
    assert_eq!(last.state, JobState::Exited);
    assert_eq!(last.exit_code, Some(3));
    let err = job_page(&client, &job, 0, 0, 0).await;
    assert_eq!(err.stderr, b"done\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_spool_stays_within_the_cap_while_no_daemon_watches() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[jobs]\nspool_bytes = \"64K\"\n");
    let job = {
        let client = connect(daemon.socket()).await;
        detached(&client, "sleep 1; seq 1 300000; echo end").await
    };
    daemon.kill();
    let dir = format!("\"${{XDG_STATE_HOME:-$HOME/.local/state}}/sshmcp/jobs/{job}\"");
    until_host(&fleet, &format!("cat {dir}/exit 2>/dev/null"), |s| {
        s.trim() == "0"
    });
    let kept = until_host(&fleet, &format!("cat {dir}/out.* | wc -c"), |_| true);
    let kept: u64 = kept.trim().parse().expect("a byte count");
    assert!(kept <= 64 * 1024, "the host keeps {kept} bytes");
    let written: u64 = (1..=300_000u64)
        .map(|i| i.to_string().len() as u64 + 1)
        .sum::<u64>()
        + 4;
    // The daemon, back, reads what the host kept, and says what it lost.
    daemon.restart();
    let client = connect(daemon.socket()).await;
    let first = job_page(&client, &job, 0, 0, 10).await;
    assert!(first.truncated, "{first:?}");
    let (out, last) = read_to_end(&client, &job, 0).await;
    assert_eq!((last.state, last.exit_code), (JobState::Exited, Some(0)));
    assert_eq!(last.next_stdout_offset, written);
    assert!(
        out.ends_with("299999\n300000\nend\n"),
        "{}",
        &out[out.len() - 40..]
    );
    assert!(out.len() as u64 <= 64 * 1024, "{}", out.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signal_reaches_the_detached_command_and_not_its_watcher() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = detached(&client, "echo up; exec sleep 1234").await;
    job_page(&client, &job, 0, 0, 10).await;
    let req = JobSignalRequest {
        job_id: job.clone(),
        signal: "TERM".into(),
    };
    let state = match request(&client, Request::JobSignal(req)).await {
        Ok(Response::JobState(state)) => state,
        other => panic!("job_signal: {other:?}"),
    };
    let (_, last) = read_to_end(&client, &job, 0).await;
    assert_eq!(last.state, JobState::Killed, "{state:?} {last:?}");
    assert_eq!(last.signal.as_deref(), Some("TERM"));
    // Nothing of the command's process group is left on the host.
    let check = format!(
        "p=$(cat ~/.local/state/sshmcp/jobs/{job}/pid) || exit 1; kill -0 -$p 2>/dev/null && \
         echo alive || echo none"
    );
    until_host(&fleet, &check, |t| t.trim() == "none");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_detached_job_is_lost_only_when_the_host_says_it_is_gone() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let job = detached(&client, "echo up; exec sleep 2345").await;
    job_page(&client, &job, 0, 0, 10).await;
    // Dropped connections do not make it lost.
    fleet.server(0).kill_connections();
    let p = job_page(&client, &job, 6, 0, 2).await;
    assert_eq!(p.state, JobState::Running, "{p:?}");
    // Its spool and its processes go: now it is.
    let dir = until_host(
        &fleet,
        &format!("ls -d ~/.local/state/sshmcp/jobs/{job}"),
        |t| t.contains(&job),
    );
    let out = fleet
        .ssh("host1")
        .arg(format!(
            "d={dir}; kill -KILL $(cat $d/wpid) && kill -KILL -$(cat $d/pid) && rm -rf $d",
            dir = dir.trim()
        ))
        .output()
        .expect("ssh runs");
    assert!(out.status.success(), "{out:?}");
    let (_, last) = read_to_end(&client, &job, 0).await;
    assert_eq!(last.state, JobState::Lost);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_detached_jobs_at_once_each_get_their_own_output() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let ids = futures_util::future::join_all((0..8).map(|i| {
        let client = &client;
        async move { detached(client, &format!("sleep 0.{i}; echo job{i}")).await }
    }))
    .await;
    let ends =
        futures_util::future::join_all(ids.iter().map(|id| read_to_end(&client, id, 0))).await;
    for (i, (out, last)) in ends.into_iter().enumerate() {
        assert_eq!(out, format!("job{i}\n"));
        assert_eq!(last.exit_code, Some(0), "{last:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn detach_with_stdin_feeds_it_and_a_finished_job_is_cleaned_up_after_retention() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(
        &fleet,
        "[jobs]\nretention_secs = 1\n[pool]\nidle_timeout_secs = 4\n",
    );
    let client = connect(daemon.socket()).await;
    let mut req = exec_request("host1", "tr a-z A-Z");
    req.detach = true;
    req.stdin = Some(b"hello\n".to_vec());
    let job = exec(&client, req)
        .await
        .expect("detached exec")
        .job
        .expect("a job")
        .job_id;
    let (out, _) = read_to_end(&client, &job, 0).await;
    assert_eq!(out, "HELLO\n");
    // Past retention the job is forgotten and its spool leaves the host.
    until_host(
        &fleet,
        &format!("ls -d ~/.local/state/sshmcp/jobs/{job} 2>/dev/null || echo none"),
        |t| t.trim() == "none",
    );
    let err = request(
        &client,
        Request::JobOutput(JobOutputRequest {
            job_id: job,
            ..Default::default()
        }),
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
}
