//! One client on the socket: the handshake, then many requests in flight,
//! replies in whatever order they finish.
//!
//! Anything malformed ends this connection only, with a `Goodbye` saying
//! why where the peer can still read it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sshmcp_proto::{
    ClientFrame, DaemonFrame, Error, ErrorKind, Hello, PROTO_VERSION, Welcome, decode, encode,
    frame_codec,
};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{Caller, dispatch};
use crate::ops::progress::Reporter;
use crate::state::Daemon;

/// How long a new client has to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames queued for one client before request tasks wait for it to read.
const OUTGOING_QUEUE: usize = 256;

/// Serve one accepted client until it hangs up or misbehaves.
pub async fn serve(daemon: Arc<Daemon>, stream: UnixStream) {
    let peer = stream.peer_cred().ok();
    let (read, write) = stream.into_split();
    let max_frame = daemon.config().daemon.max_frame;
    let mut frames = FramedRead::new(read, frame_codec(max_frame));
    let mut sink = FramedWrite::new(write, frame_codec(max_frame));

    let own_uid = crate::server::current_uid();
    match peer.map(|p| p.uid()) {
        Some(uid) if uid == own_uid => {}
        other => {
            let who = other.map_or("an unknown uid".to_string(), |u| format!("uid {u}"));
            tracing::warn!(peer = %who, "refused a client that is not the daemon's owner");
            let bye = Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "sshmcpd (uid {own_uid}) admits only its own user; {who} was refused. Run \
                     your own sshmcpd as that user"
                ),
            );
            refuse(&mut frames, &mut sink, bye).await;
            return;
        }
    }
    if daemon.clients.fetch_add(1, Ordering::AcqRel) >= daemon.config().daemon.max_clients as u32 {
        daemon.clients.fetch_sub(1, Ordering::AcqRel);
        tracing::warn!("refused a client: at [daemon] max_clients");
        let bye = Error::new(
            ErrorKind::Overloaded,
            format!(
                "sshmcpd is serving its maximum of {} clients ([daemon] max_clients); retry \
                 later or raise the limit",
                daemon.config().daemon.max_clients
            ),
        );
        refuse(&mut frames, &mut sink, bye).await;
        return;
    }
    serve_client(&daemon, peer, frames, sink).await;
    daemon.clients.fetch_sub(1, Ordering::AcqRel);
}

type Frames = FramedRead<tokio::net::unix::OwnedReadHalf, tokio_util::codec::LengthDelimitedCodec>;
type Sink = FramedWrite<tokio::net::unix::OwnedWriteHalf, tokio_util::codec::LengthDelimitedCodec>;

/// Turn a client away with a reason it can read: take its Hello first (so
/// its write does not fail against a closed socket), then say Goodbye.
async fn refuse(frames: &mut Frames, sink: &mut Sink, bye: Error) {
    let _ = tokio::time::timeout(Duration::from_secs(2), frames.next()).await;
    let _ = send(sink, &DaemonFrame::Goodbye(bye)).await;
}

async fn serve_client(
    daemon: &Arc<Daemon>,
    peer: Option<tokio::net::unix::UCred>,
    mut frames: Frames,
    mut sink: Sink,
) {
    let max_frame = daemon.config().daemon.max_frame;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, frames.next()).await {
        Ok(Some(Ok(bytes))) => match decode::<ClientFrame>(&bytes) {
            Ok(ClientFrame::Hello(hello)) => hello,
            Ok(_) => {
                let bye = Error::bad_request("the first frame must be Hello");
                let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
                return;
            }
            Err(e) => {
                let bye = Error::bad_request(format!("{e}; the first frame must be Hello"));
                let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
                return;
            }
        },
        Ok(Some(Err(e))) => {
            let _ = send(
                &mut sink,
                &DaemonFrame::Goodbye(framing_error(&e, max_frame)),
            )
            .await;
            return;
        }
        Ok(None) => return,
        Err(_) => {
            let bye = Error::bad_request(format!(
                "no Hello within {}s; closing",
                HELLO_TIMEOUT.as_secs()
            ));
            let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
            return;
        }
    };
    if let Err(bye) = check_version(&hello) {
        let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
        return;
    }
    let welcome = DaemonFrame::Welcome(Welcome {
        proto_version: PROTO_VERSION,
        daemon_version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
    });
    if send(&mut sink, &welcome).await.is_err() {
        return;
    }
    daemon
        .pool
        .offer_caller_agent(hello.client.ssh_auth_sock.as_deref());
    let caller = Arc::new(Caller {
        pid: peer.and_then(|p| p.pid()),
        binary: hello.client.binary.clone(),
        mcp_client: hello.client.mcp_client.clone(),
    });
    tracing::debug!(caller = ?caller, "client connected");

    let (outgoing, mut queue) = mpsc::channel::<DaemonFrame>(OUTGOING_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = queue.recv().await {
            let last = matches!(frame, DaemonFrame::Goodbye(_));
            if send(&mut sink, &frame).await.is_err() || last {
                break;
            }
        }
    });

    let inflight: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let mut shutting_down = false;
    loop {
        let next = tokio::select! {
            next = frames.next() => next,
            () = daemon.shutdown.cancelled() => {
                shutting_down = true;
                None
            }
        };
        let bytes = match next {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                let _ = outgoing
                    .send(DaemonFrame::Goodbye(framing_error(&e, max_frame)))
                    .await;
                break;
            }
            None => break,
        };
        match decode::<ClientFrame>(&bytes) {
            Ok(ClientFrame::Request { id, request }) => {
                let token = CancellationToken::new();
                let duplicate = match inflight.lock().unwrap_or_else(|p| p.into_inner()).entry(id) {
                    std::collections::hash_map::Entry::Occupied(_) => true,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(token.clone());
                        false
                    }
                };
                if duplicate {
                    let reply = Err(Error::bad_request(format!(
                        "request id {id} is already in flight on this connection; use a fresh id"
                    )));
                    let _ = outgoing.send(DaemonFrame::Done { id, reply }).await;
                    continue;
                }
                let daemon = daemon.clone();
                let caller = caller.clone();
                let outgoing = outgoing.clone();
                let inflight = inflight.clone();
                tokio::spawn(async move {
                    let progress = Reporter::new(id, outgoing.clone());
                    let reply = dispatch(&daemon, &caller, request, &token, &progress).await;
                    inflight
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    // A client that hung up no longer wants the reply.
                    let _ = outgoing.send(DaemonFrame::Done { id, reply }).await;
                });
            }
            Ok(ClientFrame::Cancel { id }) => {
                if let Some(token) = inflight.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
                    token.cancel();
                }
            }
            Ok(ClientFrame::Hello(_)) => {
                let bye = Error::bad_request("Hello sent twice on one connection");
                let _ = outgoing.send(DaemonFrame::Goodbye(bye)).await;
                break;
            }
            Err(e) => {
                let bye = Error::bad_request(format!("{e}; closing this connection"));
                let _ = outgoing.send(DaemonFrame::Goodbye(bye)).await;
                break;
            }
        }
    }
    // The client is gone or misbehaved: its unfinished work has no one to
    // report to, so stop it (a cancelled exec kills its remote process).
    // On shutdown the client is still there: its requests may finish
    // within the daemon's grace period and their replies still go out.
    if !shutting_down {
        for token in inflight.lock().unwrap_or_else(|p| p.into_inner()).values() {
            token.cancel();
        }
    }
    drop(outgoing);
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
}

fn check_version(hello: &Hello) -> Result<(), Error> {
    if hello.proto_version == PROTO_VERSION {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::VersionMismatch,
        format!(
            "{} {} speaks protocol v{}, but sshmcpd {} speaks v{PROTO_VERSION}; install matching \
             versions of sshmcp, sshmcpctl and sshmcpd (and restart the daemon)",
            hello.client.binary,
            hello.client.version,
            hello.proto_version,
            env!("CARGO_PKG_VERSION"),
        ),
    ))
}

fn framing_error(error: &std::io::Error, max_frame: usize) -> Error {
    if error.kind() == std::io::ErrorKind::InvalidData {
        Error::bad_request(format!(
            "frame larger than the daemon's max_frame ({max_frame} bytes); send large data in \
             chunks. Closing this connection"
        ))
    } else {
        Error::bad_request(format!(
            "truncated or unreadable frame ({error}); closing this connection"
        ))
    }
}

async fn send<W>(
    sink: &mut FramedWrite<W, tokio_util::codec::LengthDelimitedCodec>,
    frame: &DaemonFrame,
) -> Result<(), ()>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let bytes = match encode(frame) {
        Ok(bytes) => bytes,
        Err(e) => {
            tracing::error!("cannot encode a reply frame: {e}");
            return Err(());
        }
    };
    sink.send(bytes::Bytes::from(bytes)).await.map_err(|_| ())
}
