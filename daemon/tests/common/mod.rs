//! Shared helpers for the daemon's end-to-end tests: a protocol client on
//! the daemon's socket.

#![allow(dead_code)]

use std::path::Path;

use sshmcp_proto::client::DaemonClient;
use sshmcp_proto::{ClientInfo, Error, ExecOutput, ExecRequest, Reply, Request, Response};

pub async fn connect(socket: &Path) -> DaemonClient {
    DaemonClient::connect(
        socket,
        ClientInfo {
            binary: "daemon-tests".into(),
            version: "0".into(),
            ..ClientInfo::default()
        },
        sshmcp_proto::DEFAULT_MAX_FRAME,
    )
    .await
    .expect("connect to the daemon")
}

pub fn exec_request(host: &str, command: &str) -> ExecRequest {
    ExecRequest {
        host: host.into(),
        command: command.into(),
        stdin: None,
        timeout_secs: None,
        max_output_bytes: None,
    }
}

pub async fn exec(client: &DaemonClient, request: ExecRequest) -> Result<ExecOutput, Error> {
    match client.request(Request::Exec(request)).await.expect("daemon answers") {
        Ok(Response::Exec(out)) => Ok(out),
        Ok(other) => panic!("unexpected response {other:?}"),
        Err(e) => Err(e),
    }
}

pub async fn request(client: &DaemonClient, request: Request) -> Reply {
    client.request(request).await.expect("daemon answers")
}
