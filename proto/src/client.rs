//! An async client for the daemon's socket, shared by the shim and ctl.
//!
//! One [`DaemonClient`] is one socket connection carrying many requests at
//! once: a writer task sends frames, a reader task routes each reply to the
//! [`Call`] that is waiting for it by request id.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UnixStream;
use tokio::sync::mpsc;

use crate::{
    ClientFrame, ClientInfo, Confirmation, DaemonFrame, Error, FrameError, FrameReader,
    FrameWriter, Hello, OutputStream, PROTO_VERSION, Progress, Reply, Request, Welcome, encode,
};

/// How long connecting and the Hello/Welcome exchange may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why talking to the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answered at any of the paths tried; each is listed with
    /// what was found there, since the fix depends on where the user's
    /// daemon actually listens.
    #[error(
        "sshmcpd is not running (tried {}). Start it with \
         `systemctl --user start sshmcpd.socket`, or run `sshmcpd` in a terminal; \
         set SSHMCP_SOCKET or --socket if it listens elsewhere",
        list_attempts(tried)
    )]
    NotRunning {
        /// Every path tried, in order.
        tried: Vec<SocketAttempt>,
    },
    /// The one socket asked for is there but cannot be used (permissions,
    /// say): a daemon may well be running.
    #[error("cannot connect to sshmcpd at {}: {source}", socket.display())]
    Connect {
        /// The socket path.
        socket: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// A socket accepted but the daemon sent no Welcome in time.
    #[error("sshmcpd at {} did not answer the handshake within {}s", socket.display(), HANDSHAKE_TIMEOUT.as_secs())]
    HandshakeTimeout {
        /// The socket that accepted.
        socket: PathBuf,
    },
    /// The daemon answered Hello with a Goodbye (version mismatch, too many
    /// clients, ...); its error says why.
    #[error("sshmcpd refused the connection: {0}")]
    Refused(Error),
    /// The connection is gone, with the daemon's Goodbye when it sent one.
    #[error("{}", match .0 {
        Some(reason) => format!("sshmcpd closed the connection: {reason}"),
        None => "sshmcpd closed the connection (it may have restarted); retry".to_string(),
    })]
    Disconnected(Option<Error>),
    /// This request does not fit in one frame; it was not sent, and the
    /// connection stays usable.
    #[error(
        "request of {size} bytes is larger than the {max_frame}-byte frame limit; send less \
         data per call"
    )]
    TooLarge {
        /// The encoded request's size, in bytes.
        size: usize,
        /// The frame limit this client was made with.
        max_frame: usize,
    },
    /// The daemon sent something this client does not understand.
    #[error("protocol error talking to sshmcpd: {0}")]
    Protocol(String),
}

/// A socket path that did not lead to a daemon, and why.
#[derive(Debug)]
pub struct SocketAttempt {
    /// The path tried.
    pub socket: PathBuf,
    /// What connecting to it said.
    pub error: std::io::Error,
}

impl SocketAttempt {
    /// Nothing listens there: no socket file, or one left behind by a
    /// daemon that is gone. Anything else (permissions, say) is a daemon
    /// that may well be running but cannot be reached.
    fn found_nothing(&self) -> bool {
        use std::io::ErrorKind::{ConnectionRefused, NotFound};
        matches!(self.error.kind(), NotFound | ConnectionRefused)
    }
}

impl std::fmt::Display for SocketAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let socket = self.socket.display();
        match self.error.kind() {
            std::io::ErrorKind::NotFound => write!(f, "{socket}: no socket there"),
            std::io::ErrorKind::ConnectionRefused => {
                write!(f, "{socket}: a stale socket, its daemon is gone")
            }
            _ => write!(f, "{socket}: {}", self.error),
        }
    }
}

fn list_attempts(tried: &[SocketAttempt]) -> String {
    if tried.is_empty() {
        return "no socket paths".to_string();
    }
    tried
        .iter()
        .map(SocketAttempt::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One event of a request in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// How far the request has got.
    Progress(Progress),
    /// A chunk of the request's output.
    Output {
        /// Which stream it came from.
        stream: OutputStream,
        /// The bytes, raw.
        data: Vec<u8>,
    },
    /// The daemon asks for the person's confirmation before the request
    /// runs: answer with [`Call::confirm`] (the reply waits for it).
    Confirm(Confirmation),
    /// The final reply; nothing follows it.
    Done(Reply),
}

/// Shared between the client handle and its reader task.
#[derive(Default)]
struct Shared {
    pending: Mutex<HashMap<u64, mpsc::UnboundedSender<Event>>>,
    /// Set once the connection is gone; the daemon's parting words, if any.
    closed: Mutex<Option<Option<Error>>>,
}

/// A connection to the daemon.
pub struct DaemonClient {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    shared: Arc<Shared>,
    max_frame: usize,
    next_id: AtomicU64,
    welcome: Welcome,
}

/// A request in flight: its events, then its reply.
pub struct Call {
    id: u64,
    events: mpsc::UnboundedReceiver<Event>,
    shared: Arc<Shared>,
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
}

impl DaemonClient {
    /// Connect to the daemon at `socket` and exchange Hello/Welcome.
    pub async fn connect(
        socket: &Path,
        client: ClientInfo,
        max_frame: usize,
    ) -> Result<Self, ClientError> {
        Self::connect_first(&[socket.to_owned()], client, max_frame).await
    }

    /// Connect to the first of `candidates` where a daemon listens (see
    /// [`crate::client_socket_candidates`]) and exchange Hello/Welcome
    /// there. Once a socket accepts, its daemon's answer is final: a refusal
    /// or a stuck handshake is reported, not skipped for the next path.
    pub async fn connect_first(
        candidates: &[PathBuf],
        client: ClientInfo,
        max_frame: usize,
    ) -> Result<Self, ClientError> {
        let mut tried = Vec::with_capacity(candidates.len());
        for socket in candidates {
            match UnixStream::connect(socket).await {
                Ok(stream) => return Self::handshake(stream, socket, client, max_frame).await,
                Err(error) => tried.push(SocketAttempt {
                    socket: socket.clone(),
                    error,
                }),
            }
        }
        // One path (the caller named it) where something is but cannot be
        // used: say exactly that rather than "not running".
        if tried.len() == 1 && !tried[0].found_nothing() {
            let SocketAttempt { socket, error } = tried.remove(0);
            return Err(ClientError::Connect {
                socket,
                source: error,
            });
        }
        Err(ClientError::NotRunning { tried })
    }

    async fn handshake(
        stream: UnixStream,
        socket: &Path,
        client: ClientInfo,
        max_frame: usize,
    ) -> Result<Self, ClientError> {
        let (read, write) = stream.into_split();
        let mut reader = FrameReader::new(read, max_frame);
        let mut writer = FrameWriter::new(write, max_frame);

        let handshake = async {
            let hello = ClientFrame::Hello(Hello {
                proto_version: PROTO_VERSION,
                client,
            });
            // A daemon that refuses us may close before reading the Hello;
            // its Goodbye is still waiting to be read, so read on regardless.
            let sent = writer
                .send(&hello)
                .await
                .map_err(|_| ClientError::Disconnected(None));
            match reader.next::<DaemonFrame>().await {
                Some(Ok(DaemonFrame::Welcome(welcome))) => Ok(welcome),
                Some(Ok(DaemonFrame::Goodbye(reason))) => Err(ClientError::Refused(reason)),
                Some(Ok(other)) => Err(ClientError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                ))),
                Some(Err(FrameError::Codec(e))) => Err(ClientError::Protocol(e.to_string())),
                Some(Err(e)) => Err(sent.err().unwrap_or(ClientError::Protocol(e.to_string()))),
                None => Err(sent.err().unwrap_or(ClientError::Disconnected(None))),
            }
        };
        let welcome = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
            .await
            .map_err(|_| ClientError::HandshakeTimeout {
                socket: socket.to_owned(),
            })??;

        let shared = Arc::new(Shared::default());
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(payload) = queue.recv().await {
                if writer.send_payload(payload).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(read_replies(reader, shared.clone()));
        Ok(DaemonClient {
            outgoing,
            shared,
            max_frame,
            next_id: AtomicU64::new(1),
            welcome,
        })
    }

    /// What the daemon said about itself at connect time.
    pub fn welcome(&self) -> &Welcome {
        &self.welcome
    }

    /// True once the connection is gone; make a new client to go on.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.closed).is_some() || self.outgoing.is_closed()
    }

    /// Send `request` and return the call to read its events and reply from.
    pub fn start(&self, request: Request) -> Result<Call, ClientError> {
        if let Some(reason) = lock(&self.shared.closed).clone() {
            return Err(ClientError::Disconnected(reason));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode(&ClientFrame::Request { id, request })
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        // An oversized frame would make the daemon drop the whole
        // connection, failing every other call on it: refuse just this one.
        if frame.len() > self.max_frame {
            return Err(ClientError::TooLarge {
                size: frame.len(),
                max_frame: self.max_frame,
            });
        }
        let (tx, events) = mpsc::unbounded_channel();
        lock(&self.shared.pending).insert(id, tx);
        if self.outgoing.send(frame).is_err() {
            lock(&self.shared.pending).remove(&id);
            return Err(ClientError::Disconnected(None));
        }
        Ok(Call {
            id,
            events,
            shared: self.shared.clone(),
            outgoing: self.outgoing.clone(),
        })
    }

    /// Send `request` and wait for its reply, ignoring progress and output.
    pub async fn request(&self, request: Request) -> Result<Reply, ClientError> {
        self.start(request)?.reply().await
    }
}

impl Call {
    /// This request's id on the connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next event; the last one is always [`Event::Done`].
    pub async fn next_event(&mut self) -> Result<Event, ClientError> {
        match self.events.recv().await {
            Some(event) => Ok(event),
            None => Err(ClientError::Disconnected(
                lock(&self.shared.closed).clone().flatten(),
            )),
        }
    }

    /// Wait for the reply, skipping progress and output events and
    /// declining any confirmation asked (nobody here can give one).
    pub async fn reply(mut self) -> Result<Reply, ClientError> {
        loop {
            match self.next_event().await? {
                Event::Done(reply) => return Ok(reply),
                Event::Confirm(_) => self.confirm(
                    false,
                    Some("this client cannot ask anyone for confirmation".into()),
                ),
                Event::Progress(_) | Event::Output { .. } => {}
            }
        }
    }

    /// Answer the daemon's [`Event::Confirm`]: the person allowed the
    /// request, or not (`note` says why).
    pub fn confirm(&self, allowed: bool, note: Option<String>) {
        let frame = ClientFrame::Confirmed {
            id: self.id,
            allowed,
            note,
        };
        if let Ok(frame) = encode(&frame) {
            let _ = self.outgoing.send(frame);
        }
    }

    /// Ask the daemon to abandon this request; its reply still arrives.
    pub fn cancel(&self) {
        // A closed connection has nothing left to cancel.
        if let Ok(frame) = encode(&ClientFrame::Cancel { id: self.id }) {
            let _ = self.outgoing.send(frame);
        }
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        lock(&self.shared.pending).remove(&self.id);
    }
}

/// Route every frame from the daemon to the call waiting for it, until the
/// connection ends; then wake every waiter.
async fn read_replies<R>(mut reader: FrameReader<R>, shared: Arc<Shared>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    let mut reason = None;
    while let Some(Ok(frame)) = reader.next::<DaemonFrame>().await {
        let (id, event) = match frame {
            DaemonFrame::Progress { id, progress } => (id, Event::Progress(progress)),
            DaemonFrame::Output { id, stream, data } => (id, Event::Output { stream, data }),
            DaemonFrame::Done { id, reply } => (id, Event::Done(reply)),
            DaemonFrame::Confirm { id, confirmation } => (id, Event::Confirm(confirmation)),
            DaemonFrame::Goodbye(error) => {
                reason = Some(error);
                break;
            }
            DaemonFrame::Welcome(_) => break,
        };
        let done = matches!(event, Event::Done(_));
        let mut pending = lock(&shared.pending);
        if let Some(tx) = pending.get(&id) {
            // The caller may have stopped listening; that is its choice.
            let _ = tx.send(event);
        }
        if done {
            pending.remove(&id);
        }
    }
    *lock(&shared.closed) = Some(reason);
    lock(&shared.pending).clear();
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these short locks leaves plain data
    // behind that is still consistent, so poisoning is not fatal.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
