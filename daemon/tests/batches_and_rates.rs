//! Batches (many calls in one request, across hosts) and the
//! requests-per-second limits, against real sshd.

mod common;

use std::time::Duration;

use common::{connect, exec_request, request};
use sshmcp_proto::{BatchRequest, ErrorKind, Reply, Request, Response, StatRequest};
use sshmcp_testkit::{Daemon, Fleet};

fn stat(host: &str, path: &str) -> Request {
    Request::Stat(StatRequest {
        host: host.into(),
        path: path.into(),
        ..Default::default()
    })
}

fn exec(host: &str, command: &str) -> Request {
    Request::Exec(exec_request(host, command))
}

async fn batch(
    client: &sshmcp_proto::client::DaemonClient,
    calls: Vec<Request>,
    concurrency: Option<u32>,
    stop_on_error: bool,
) -> Vec<Option<Reply>> {
    let reply = request(
        client,
        Request::Batch(BatchRequest {
            calls,
            concurrency,
            stop_on_error,
        }),
    )
    .await;
    match reply {
        Ok(Response::Batch(results)) => results,
        other => panic!("batch answered {other:?}"),
    }
}

fn stdout(reply: &Option<Reply>) -> String {
    match reply {
        Some(Ok(Response::Exec(out))) => String::from_utf8_lossy(&out.stdout).into_owned(),
        other => panic!("not an exec's output: {other:?}"),
    }
}

fn error_kind(reply: &Option<Reply>) -> ErrorKind {
    match reply {
        Some(Err(e)) => e.kind,
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_runs_calls_across_hosts_and_answers_each_in_order() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let results = batch(
        &client,
        vec![
            exec("host1", "echo one"),
            stat("host2", "/no/such/path"),
            exec("host2", "sleep 0.2; echo two"),
            exec("nope", "true"),
            stat("host1", "/etc/hostname"),
            exec("host1", "echo three"),
        ],
        None,
        false,
    )
    .await;
    assert_eq!(results.len(), 6);
    assert_eq!(stdout(&results[0]), "one\n");
    assert_eq!(error_kind(&results[1]), ErrorKind::NotFound);
    assert_eq!(stdout(&results[2]), "two\n");
    assert_eq!(error_kind(&results[3]), ErrorKind::HostUnknown);
    assert!(
        matches!(&results[4], Some(Ok(Response::Stat(_)))),
        "{:?}",
        results[4]
    );
    assert_eq!(stdout(&results[5]), "three\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_on_error_starts_nothing_after_a_failure() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let results = batch(
        &client,
        vec![
            exec("host1", "echo first"),
            stat("host1", "/no/such/path"),
            exec("host1", "echo never"),
            exec("host1", "echo never either"),
        ],
        Some(1),
        true,
    )
    .await;
    assert_eq!(stdout(&results[0]), "first\n");
    assert_eq!(error_kind(&results[1]), ErrorKind::NotFound);
    assert!(results[2].is_none() && results[3].is_none(), "{results:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn calls_run_concurrently_up_to_the_limit() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    let dir = sshmcp_testkit::test_user().scratch_dir();
    // Each call marks itself, then waits (at most 20 s) to see all eight
    // marks: only calls that run at the same time can all say `together`.
    let calls = (0..8)
        .map(|i| {
            exec(
                "host1",
                &format!(
                    "cd '{}' && touch m{i} && for n in $(seq 200); do \
                     [ $(ls | wc -l) -ge 8 ] && echo together && exit 0; sleep 0.1; done; echo alone",
                    dir.path().display()
                ),
            )
        })
        .collect();
    let results = batch(&client, calls, Some(8), false).await;
    for result in &results {
        assert_eq!(stdout(result), "together\n");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_that_nests_or_carries_admin_requests_is_refused_naming_the_call() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "");
    let client = connect(daemon.socket()).await;
    for (call, name) in [
        (
            Request::Batch(BatchRequest {
                calls: vec![exec("host1", "true")],
                concurrency: None,
                stop_on_error: false,
            }),
            "batch",
        ),
        (Request::Reload, "reload"),
    ] {
        let err = request(
            &client,
            Request::Batch(BatchRequest {
                calls: vec![exec("host1", "true"), call],
                concurrency: None,
                stop_on_error: false,
            }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadRequest);
        assert!(
            err.message.contains(&format!("calls[1] is `{name}`")),
            "{}",
            err.message
        );
    }
    let err = request(
        &client,
        Request::Batch(BatchRequest {
            calls: vec![],
            concurrency: None,
            stop_on_error: false,
        }),
    )
    .await
    .unwrap_err();
    assert!(err.message.contains("`calls`"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_batches_from_many_clients_at_once_all_answer_correctly() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "");
    let mut tasks = Vec::new();
    for c in 0..6 {
        let socket = daemon.socket().to_path_buf();
        tasks.push(tokio::spawn(async move {
            let client = connect(&socket).await;
            for b in 0..5 {
                let calls = (0..10)
                    .map(|i| exec(&format!("host{}", 1 + i % 2), &format!("echo {c}-{b}-{i}")))
                    .collect();
                let results = batch(&client, calls, Some(4), false).await;
                for (i, result) in results.iter().enumerate() {
                    assert_eq!(stdout(result), format!("{c}-{b}-{i}\n"));
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("a client's batches");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_over_its_rate_hears_when_to_retry_and_others_are_served() {
    let fleet = Fleet::start(1);
    let daemon = Daemon::start(&fleet, "[limits]\nclient_rps = 2\nclient_burst = 3\n");
    let greedy = connect(daemon.socket()).await;
    let mut refused = Vec::new();
    for _ in 0..8 {
        if let Err(e) = request(&greedy, stat("host1", "/")).await {
            refused.push(e);
        }
    }
    assert!(refused.len() >= 4, "{refused:?}");
    let err = &refused[0];
    assert_eq!(err.kind, ErrorKind::Overloaded);
    assert!(err.retriable);
    let retry = err.retry_after_ms.expect("a retry-after");
    assert!(
        err.message.contains(&format!("retry after {retry} ms")),
        "{}",
        err.message
    );
    assert!(err.message.contains("client_rps"), "{}", err.message);
    // Another client has its own bucket.
    let other = connect(daemon.socket()).await;
    assert!(request(&other, stat("host1", "/")).await.is_ok());
    // Admin requests are not limited.
    for _ in 0..5 {
        assert!(request(&greedy, Request::Status).await.is_ok());
    }
    // And after the advised wait, the greedy client is served again.
    tokio::time::sleep(Duration::from_millis(retry)).await;
    assert!(request(&greedy, stat("host1", "/")).await.is_ok());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_over_its_rate_refuses_every_client_but_other_hosts_serve() {
    let fleet = Fleet::start(2);
    let daemon = Daemon::start(&fleet, "[limits]\nhost_rps = 1\nhost_burst = 2\n");
    let a = connect(daemon.socket()).await;
    let b = connect(daemon.socket()).await;
    // Work that reaches the host takes a token; answers from the cache
    // do not.
    assert!(request(&a, exec("host1", "true")).await.is_ok());
    assert!(request(&b, exec("host1", "true")).await.is_ok());
    let err = request(&a, exec("host1", "true")).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Overloaded);
    assert!(
        err.message.contains("host1") && err.message.contains("host_rps"),
        "{}",
        err.message
    );
    assert!(err.retry_after_ms.is_some());
    assert!(request(&b, exec("host2", "true")).await.is_ok());
}
