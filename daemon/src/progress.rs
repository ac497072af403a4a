//! Progress events for long requests (transfers, syncs), sent to the
//! client as `Progress` frames.
//!
//! Progress is advisory: events are throttled, and an event that would have
//! to wait for a slow client is dropped rather than slowing the work down.
//! The final `Done` is never dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sshmcp_proto::{Confirmation, DaemonFrame, OutputStream, Progress};
use tokio::sync::{mpsc, oneshot};

/// Fewest milliseconds between two events of one request.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Most bytes of output one `Output` event carries: its latest bytes.
const OUTPUT_SAMPLE: usize = 1024;

/// The person's answer to a confirmation.
#[derive(Debug)]
pub struct Answer {
    pub allowed: bool,
    /// Why not, when the client said.
    pub note: Option<String>,
}

/// The confirmations one connection is waiting for, by request id.
pub type Confirms = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

/// Where one request's progress goes, and whom it may ask to confirm.
pub struct Reporter {
    sink: Option<(u64, mpsc::Sender<DaemonFrame>)>,
    confirms: Option<Confirms>,
    last: Mutex<Option<Instant>>,
    last_output: Mutex<Option<Instant>>,
}

impl Reporter {
    /// A reporter that sends `Progress` frames for request `id`.
    pub fn new(id: u64, outgoing: mpsc::Sender<DaemonFrame>) -> Self {
        Reporter {
            sink: Some((id, outgoing)),
            confirms: None,
            last: Mutex::new(None),
            last_output: Mutex::new(None),
        }
    }

    /// This reporter may ask its client to confirm, the answers arriving
    /// through `confirms`.
    pub fn with_confirms(mut self, confirms: Confirms) -> Self {
        self.confirms = Some(confirms);
        self
    }

    /// Ask the client to have the person confirm `confirmation`, waiting
    /// up to `wait` for the answer. `None` when this request's client
    /// cannot be asked (a batch's calls, a job's own work).
    pub async fn confirm(&self, confirmation: Confirmation, wait: Duration) -> Option<Answer> {
        let ((id, outgoing), confirms) = (self.sink.as_ref()?, self.confirms.as_ref()?);
        let (tx, rx) = oneshot::channel();
        lock(confirms).insert(*id, tx);
        let asked = DaemonFrame::Confirm {
            id: *id,
            confirmation,
        };
        if outgoing.send(asked).await.is_err() {
            lock(confirms).remove(id);
            return None;
        }
        let answer = tokio::time::timeout(wait, rx).await;
        lock(confirms).remove(id);
        Some(match answer {
            Ok(Ok(answer)) => answer,
            _ => Answer {
                allowed: false,
                note: Some(format!("no answer within {} s", wait.as_secs())),
            },
        })
    }

    /// A reporter that sends nothing (a batch's calls: the batch reports
    /// for them all).
    pub fn silent() -> Self {
        Reporter {
            sink: None,
            confirms: None,
            last: Mutex::new(None),
            last_output: Mutex::new(None),
        }
    }

    /// Report `done` of `total` units, at most every [`MIN_INTERVAL`].
    pub fn report(&self, done: u64, total: Option<u64>, message: impl FnOnce() -> String) {
        let Some((id, outgoing)) = &self.sink else {
            return;
        };
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < MIN_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        self.send(*id, outgoing, done, total, message());
    }

    /// A running command wrote `data`: send its latest bytes as an `Output`
    /// event, at most every [`MIN_INTERVAL`] (a sample for showing
    /// progress; the reply carries the output itself).
    pub fn output(&self, stream: OutputStream, data: &[u8]) {
        let Some((id, outgoing)) = &self.sink else {
            return;
        };
        {
            let mut last = self.last_output.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            if last.is_some_and(|t| now.duration_since(t) < MIN_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let tail = &data[data.len().saturating_sub(OUTPUT_SAMPLE)..];
        let _ = outgoing.try_send(DaemonFrame::Output {
            id: *id,
            stream,
            data: tail.to_vec(),
        });
    }

    /// Report now, whatever the throttle says (e.g. the last step).
    pub fn report_now(&self, done: u64, total: Option<u64>, message: impl FnOnce() -> String) {
        if let Some((id, outgoing)) = &self.sink {
            self.send(*id, outgoing, done, total, message());
        }
    }

    fn send(
        &self,
        id: u64,
        outgoing: &mpsc::Sender<DaemonFrame>,
        done: u64,
        total: Option<u64>,
        message: String,
    ) {
        let progress = Progress {
            done,
            total,
            message: (!message.is_empty()).then_some(message),
        };
        let _ = outgoing.try_send(DaemonFrame::Progress { id, progress });
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
