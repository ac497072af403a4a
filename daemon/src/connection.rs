//! One client on the socket: the handshake, then many requests in flight,
//! replies in whatever order they finish.
//!
//! Anything malformed ends this connection only, with a `Goodbye` saying
//! why where the peer can still read it.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use sshmcp_proto::{
    ClientFrame, DaemonFrame, Error, ErrorKind, FrameError, FrameReader, FrameWriter, Hello,
    PROTO_VERSION, Reply, Response, Welcome,
};
use tokio::net::UnixStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::dispatch::{self, Settle};
use crate::memory::MemoryPermit;
use crate::ops::Caller;
use crate::progress::Reporter;
use crate::state::Daemon;

/// How long a new client has to send its Hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame accepted before Hello: a Hello is a few hundred bytes, and
/// a connection that has not said who it is gets no room to make the daemon
/// buffer a full `max_frame`.
const HELLO_MAX_FRAME: usize = 64 * 1024;
/// Progress and control frames queued for one client; progress past this
/// is dropped rather than waited for (it is advisory).
const CONTROL_QUEUE: usize = 256;
/// The binary name `sshmcpctl` gives in its Hello.
const ADMIN_BINARY: &str = "sshmcpctl";
/// Longest caller name kept from a Hello, for logs and stats.
const MAX_CALLER_NAME: usize = 128;

/// The daemon's own uid: the only one its socket admits.
pub fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail and has no preconditions.
    unsafe { libc::getuid() }
}

/// Serve one accepted client until it hangs up or misbehaves.
pub async fn serve(daemon: Arc<Daemon>, stream: UnixStream) {
    let peer = stream.peer_cred().ok();
    let (read, write) = stream.into_split();
    let max_frame = daemon.config().daemon.max_frame;
    let mut frames = FrameReader::new(read, HELLO_MAX_FRAME.min(max_frame));
    let mut sink = FrameWriter::new(write, max_frame);

    let own_uid = current_uid();
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
    let Some(slot) = daemon.clients.take() else {
        tracing::warn!("refused a client: at [daemon] max_clients and every admin slot is taken");
        let max_clients = daemon.config().daemon.max_clients;
        refuse(&mut frames, &mut sink, too_many_clients(max_clients)).await;
        return;
    };
    // Past max_clients only sshmcpctl is let in, for admin requests.
    let admin_only = slot.admin_only;
    serve_client(&daemon, peer, admin_only, frames, sink).await;
}

fn too_many_clients(max_clients: usize) -> Error {
    Error::new(
        ErrorKind::Overloaded,
        format!(
            "sshmcpd is serving its maximum of {max_clients} clients ([daemon] max_clients); \
             retry later or raise the limit"
        ),
    )
}

type Frames = FrameReader<tokio::net::unix::OwnedReadHalf>;
type Sink = FrameWriter<tokio::net::unix::OwnedWriteHalf>;

/// Turn a client away with a reason it can read: take its Hello first (so
/// its write does not fail against a closed socket), then say Goodbye.
async fn refuse(frames: &mut Frames, sink: &mut Sink, bye: Error) {
    let _ = tokio::time::timeout(Duration::from_secs(2), frames.next::<ClientFrame>()).await;
    let _ = send(sink, &DaemonFrame::Goodbye(bye)).await;
}

/// A final reply on its way to the client, with what it holds until it has
/// been written: the request's in-flight slot on this connection and the
/// reply's bytes counted against the memory cap; and what is left of its
/// request ([`Settle`]), done once the reply is written or waits for the
/// client to read, and at the latest when it is dropped (unsent, because
/// the client is gone or the daemon stops).
struct PendingReply {
    frame: DaemonFrame,
    settle: Cell<Option<(Arc<Daemon>, Settle)>>,
    _slot: OwnedSemaphorePermit,
    _memory: MemoryPermit,
}

impl PendingReply {
    /// Do what is left of the request, once.
    fn settle(&self) {
        if let Some((daemon, settle)) = self.settle.take()
            && let DaemonFrame::Done { reply, .. } = &self.frame
        {
            settle.done(&daemon, reply);
        }
    }
}

impl Drop for PendingReply {
    fn drop(&mut self) {
        self.settle();
    }
}

/// A caller-supplied name made safe to log and show: control characters
/// (a newline would forge a log line) are escaped, and it is cut short.
fn clean_name(name: &str) -> String {
    let mut clean: String = name.chars().flat_map(char::escape_default).collect();
    if clean.len() > MAX_CALLER_NAME {
        let mut end = MAX_CALLER_NAME;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push('…');
    }
    clean
}

async fn serve_client(
    daemon: &Arc<Daemon>,
    peer: Option<tokio::net::unix::UCred>,
    admin_only: bool,
    mut frames: Frames,
    mut sink: Sink,
) {
    let max_frame = daemon.config().daemon.max_frame;
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, frames.next::<ClientFrame>()).await {
        Ok(Some(Ok(ClientFrame::Hello(hello)))) => hello,
        Ok(Some(Ok(_))) => {
            let bye = Error::bad_request("the first frame must be Hello");
            let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
            return;
        }
        Ok(Some(Err(FrameError::Codec(e)))) => {
            let bye = Error::bad_request(format!("{e}; the first frame must be Hello"));
            let _ = send(&mut sink, &DaemonFrame::Goodbye(bye)).await;
            return;
        }
        Ok(Some(Err(e))) => {
            let _ = send(&mut sink, &DaemonFrame::Goodbye(framing_error(&e))).await;
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
    if admin_only && hello.client.binary != ADMIN_BINARY {
        tracing::warn!("refused a client: at [daemon] max_clients");
        let bye = too_many_clients(daemon.config().daemon.max_clients);
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
    frames.set_max_frame(max_frame);
    daemon
        .pool
        .offer_caller_agent(hello.client.ssh_auth_sock.as_deref());
    let pid = peer.and_then(|p| p.pid());
    let caller = Arc::new(Caller {
        uid: peer.map(|p| p.uid()),
        pid,
        // Read now: a pid is only this process while it is connected.
        exe: pid
            .and_then(|pid| u32::try_from(pid).ok())
            .and_then(crate::audit::executable),
        binary: clean_name(&hello.client.binary),
        mcp_client: hello.client.mcp_client.as_deref().map(clean_name),
        mcp_client_version: hello.client.mcp_client_version.as_deref().map(clean_name),
        rate: crate::rate::ClientRate::new(&daemon.config().limits).map(Arc::new),
    });
    tracing::debug!(caller = ?caller, admin_only, "client connected");

    // Two queues to the writer: progress and control frames (small, and
    // progress may be dropped), and final replies, each holding its
    // request's slot until it is written. Progress goes first, so a
    // request's progress never arrives after its reply.
    let (control, mut control_queue) = mpsc::channel::<DaemonFrame>(CONTROL_QUEUE);
    let (replies, mut reply_queue) = mpsc::unbounded_channel::<PendingReply>();
    let writer = tokio::spawn(async move {
        loop {
            // A reply's slot and memory are let go only once it is written.
            let sent = tokio::select! {
                biased;
                Some(frame) = control_queue.recv() => {
                    let last = matches!(frame, DaemonFrame::Goodbye(_));
                    send(&mut sink, &frame).await.is_ok() && !last
                }
                Some(pending) = reply_queue.recv() => {
                    // Its request is settled as soon as the write waits for
                    // the client to read, else once it is written (when
                    // `pending` drops, at the end of this arm).
                    let mut sending = std::pin::pin!(send(&mut sink, &pending.frame));
                    let sent = match futures_util::poll!(sending.as_mut()) {
                        Poll::Ready(sent) => sent,
                        Poll::Pending => {
                            pending.settle();
                            sending.await
                        }
                    };
                    sent.is_ok()
                }
                else => break,
            };
            if !sent {
                break;
            }
        }
        // Replies still queued are dropped with the queue, which settles
        // their requests.
    });

    // A request holds one of these from the moment it is read until its
    // reply has been written: the replies queued for a client that does not
    // read are bounded by it, and the unbounded reply queue with them.
    let slots = Arc::new(Semaphore::new(
        daemon.config().limits.max_inflight_per_client as usize,
    ));
    let inflight: Arc<Mutex<HashMap<u64, CancellationToken>>> = Arc::default();
    let confirms: crate::progress::Confirms = Arc::default();
    let mut shutting_down = false;
    // Made once: a fresh one per request would take the shutdown token's
    // lock (shared by every connection) twice for each request.
    let mut shutdown = std::pin::pin!(daemon.shutdown.cancelled());
    loop {
        let next = tokio::select! {
            next = frames.next::<ClientFrame>() => next,
            () = &mut shutdown => {
                shutting_down = true;
                None
            }
        };
        let Some(frame) = next else {
            break;
        };
        match frame {
            Ok(ClientFrame::Request { id, request }) => {
                // Stop reading this connection until one of its requests
                // has been answered and the answer read.
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => {
                        shutting_down = true;
                        break;
                    }
                };
                if admin_only && !request.is_admin() {
                    let reply = Err(Error::new(
                        ErrorKind::Overloaded,
                        format!(
                            "this connection took one of the slots kept for sshmcpctl past \
                             [daemon] max_clients ({}); it may only send admin requests, not \
                             {}. Retry later or raise max_clients",
                            daemon.config().daemon.max_clients,
                            request.op_name()
                        ),
                    ));
                    queue_reply(daemon, &replies, id, reply, slot, None);
                    continue;
                }
                let token = CancellationToken::new();
                let duplicate = match lock(&inflight).entry(id) {
                    std::collections::hash_map::Entry::Occupied(_) => true,
                    std::collections::hash_map::Entry::Vacant(entry) => {
                        entry.insert(token.clone());
                        false
                    }
                };
                if duplicate {
                    let reply = Err(Error::bad_request(format!(
                        "request id {id} is already in flight on this connection; use a fresh id"
                    )));
                    queue_reply(daemon, &replies, id, reply, slot, None);
                    continue;
                }
                let daemon = daemon.clone();
                let caller = caller.clone();
                let control = control.clone();
                let replies = replies.clone();
                let inflight = inflight.clone();
                let confirms = confirms.clone();
                let mut work = Box::pin(async move {
                    let progress = Reporter::new(id, control).with_confirms(confirms);
                    let (reply, settle) =
                        dispatch::answer(&daemon, &caller, id, request, &token, &progress).await;
                    lock(&inflight).remove(&id);
                    let settle = (!settle.is_empty()).then(|| (daemon.clone(), settle));
                    queue_reply(&daemon, &replies, id, reply, slot, settle);
                });
                // Work that needs no wait (an answer from the cache, a
                // refusal) is done here; only work that waits becomes a
                // task of its own, which saves a cached call a hand-over
                // to another thread.
                let done = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(work.as_mut().poll(cx).is_ready())
                })
                .await;
                if !done {
                    tokio::spawn(work);
                }
            }
            Ok(ClientFrame::Cancel { id }) => {
                if let Some(token) = lock(&inflight).get(&id) {
                    token.cancel();
                }
            }
            Ok(ClientFrame::Confirmed { id, allowed, note }) => {
                if let Some(waiting) = lock(&confirms).remove(&id) {
                    // The client's words go into a refusal: keep them short
                    // and on one line.
                    let note = note.map(|n| {
                        n.chars()
                            .take(300)
                            .map(|c| if c.is_control() { ' ' } else { c })
                            .collect()
                    });
                    let _ = waiting.send(crate::progress::Answer { allowed, note });
                }
            }
            Ok(ClientFrame::Hello(_)) => {
                let bye = Error::bad_request("Hello sent twice on one connection");
                let _ = control.send(DaemonFrame::Goodbye(bye)).await;
                break;
            }
            Err(e) => {
                let _ = control.send(DaemonFrame::Goodbye(framing_error(&e))).await;
                break;
            }
        }
    }
    // The client is gone or misbehaved: its unfinished work has no one to
    // report to, so stop it (a cancelled exec kills its remote process).
    // On shutdown the client is still there: its requests may finish
    // within the daemon's grace period and their replies still go out.
    if !shutting_down {
        for token in lock(&inflight).values() {
            token.cancel();
        }
    }
    drop(control);
    drop(replies);
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
}

/// Hand a final reply to the writer, counting its size against the memory
/// cap until it is written. A client that hung up no longer wants it (the
/// reply is dropped, which still settles its request).
fn queue_reply(
    daemon: &Daemon,
    replies: &mpsc::UnboundedSender<PendingReply>,
    id: u64,
    reply: Reply,
    slot: OwnedSemaphorePermit,
    settle: Option<(Arc<Daemon>, Settle)>,
) {
    let memory = daemon.memory.hold(reply_size(&reply));
    let _ = replies.send(PendingReply {
        frame: DaemonFrame::Done { id, reply },
        settle: Cell::new(settle),
        _slot: slot,
        _memory: memory,
    });
}

/// Bytes a reply's payload holds, roughly what it takes on its way out.
fn reply_size(reply: &Reply) -> u64 {
    let data = match reply {
        Ok(Response::Exec(out)) => out.stdout.len() + out.stderr.len(),
        Ok(Response::ReadFile(content)) => content.data.len(),
        Ok(Response::ListDir(listing)) => listing.entries.iter().map(|e| e.path.len() + 64).sum(),
        _ => 0,
    };
    data as u64 + 256
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
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

/// The Goodbye for a frame that could not be read.
fn framing_error(error: &FrameError) -> Error {
    match error {
        FrameError::TooLarge { max_frame } => Error::bad_request(format!(
            "frame larger than the daemon's max_frame ({max_frame} bytes); send large data in \
             chunks. Closing this connection"
        )),
        FrameError::Io(_) | FrameError::Codec(_) => {
            Error::bad_request(format!("{error}; closing this connection"))
        }
    }
}

async fn send(sink: &mut Sink, frame: &DaemonFrame) -> Result<(), ()> {
    sink.send(frame).await.map_err(|e| {
        if let FrameError::Codec(e) = e {
            tracing::error!("cannot encode a reply frame: {e}");
        }
    })
}
