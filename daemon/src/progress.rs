//! Progress events for long requests (transfers, syncs), sent to the
//! client as `Progress` frames.
//!
//! Progress is advisory: events are throttled, and an event that would have
//! to wait for a slow client is dropped rather than slowing the work down.
//! The final `Done` is never dropped.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sshmcp_proto::{DaemonFrame, OutputStream, Progress};
use tokio::sync::mpsc;

/// Fewest milliseconds between two events of one request.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// Most bytes of output one `Output` event carries: its latest bytes.
const OUTPUT_SAMPLE: usize = 1024;

/// Where one request's progress goes.
pub struct Reporter {
    sink: Option<(u64, mpsc::Sender<DaemonFrame>)>,
    last: Mutex<Option<Instant>>,
    last_output: Mutex<Option<Instant>>,
}

impl Reporter {
    /// A reporter that sends `Progress` frames for request `id`.
    pub fn new(id: u64, outgoing: mpsc::Sender<DaemonFrame>) -> Self {
        Reporter {
            sink: Some((id, outgoing)),
            last: Mutex::new(None),
            last_output: Mutex::new(None),
        }
    }

    /// A reporter that sends nothing (a batch's calls: the batch reports
    /// for them all).
    pub fn silent() -> Self {
        Reporter {
            sink: None,
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
