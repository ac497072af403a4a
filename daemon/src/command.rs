//! Running one command on a session channel of a pooled connection: the
//! core under the `exec` op and under transfer's verify step.
//!
//! The channel is always drained (an unread channel stalls the whole
//! connection in russh) and always closed explicitly (dropping a russh
//! channel sends no CHANNEL_CLOSE, and leaked sessions eat the server's
//! MaxSessions). On timeout or cancel the remote process group gets TERM,
//! then KILL, before the channel is closed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use russh::{ChannelMsg, Sig};
use sshmcp_proto::{Error, ErrorKind, ExecOutput, OutputStream};
use tokio_util::sync::CancellationToken;

use crate::output::HeadTail;
use crate::pool::Host;
use crate::progress::Reporter;
use crate::sudo;

/// How long a signalled process gets to exit before the next step.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(2);

/// A command to run, with its limits.
pub struct Command<'a> {
    /// The host, resolved.
    pub host: &'a Arc<Host>,
    /// Command line, interpreted by the remote user's shell.
    pub line: &'a str,
    /// Bytes fed to standard input, which is then closed.
    pub stdin: &'a [u8],
    /// Wall-clock limit, counted from `started`.
    pub timeout: Duration,
    /// Bytes kept per stream; the rest is counted and dropped.
    pub max_output: u64,
    /// When the request arrived (its duration counts from here).
    pub started: Instant,
    /// Where samples of the output go while it runs, if anywhere.
    pub progress: Option<&'a Reporter>,
    /// The exchange with sudo when `line` runs the command through it.
    pub sudo: Option<&'a sudo::Conversation>,
}

/// Run `command` to its end, its timeout or `cancel`.
pub async fn run(command: Command<'_>, cancel: &CancellationToken) -> Result<ExecOutput, Error> {
    let Command {
        host,
        line,
        stdin,
        timeout,
        max_output,
        started,
        progress,
        sudo,
    } = command;
    let timeout_secs = timeout.as_secs();
    let alias = host.resolved.alias.as_str();
    let deadline = started + timeout;

    let (lease, channel) = tokio::select! {
        opened = host.session(deadline) => opened?,
        () = cancel.cancelled() => return Err(cancelled(alias)),
    };
    let (mut reader, writer) = channel.split();
    let mut output = Collected::new(max_output);

    if let Err(e) = writer.exec(true, line.as_bytes()).await {
        // Should the connection still be up, give the session back.
        let _ = writer.close().await;
        return Err(Error::new(
            ErrorKind::Unreachable,
            format!(
                "lost the connection to {} while starting the command: {e}",
                alias
            ),
        ));
    }
    // Feed stdin from its own task so a command that writes before it reads
    // cannot deadlock against us; EOF right away when there is none, so
    // commands that read stdin do not wait forever.
    let feeder = sudo::feed(sudo, &writer, stdin);
    tokio::pin!(feeder);
    let mut feeding = true;

    let stop = loop {
        tokio::select! {
            result = &mut feeder, if feeding => {
                feeding = false;
                if let Err(e) = result {
                    tracing::debug!(host = %alias, "stdin not fully delivered: {e}");
                }
            }
            msg = sudo::receive(sudo, &mut reader) => match msg {
                Some(msg) => {
                    if let Some(progress) = progress {
                        sample(progress, &msg);
                    }
                    if output.absorb(msg) {
                        break None;
                    }
                }
                None => break None,
            },
            () = tokio::time::sleep_until(deadline.into()) => break Some(ErrorKind::Timeout),
            () = cancel.cancelled() => break Some(ErrorKind::Cancelled),
        }
    };

    let Some(reason) = stop else {
        // The server closed the channel after the command ended.
        drop(lease);
        sudo::verdict(sudo)?;
        return output.finish(started, alias);
    };

    // Stop the remote process group: TERM, then KILL, draining all along.
    let mut exited = false;
    for signal in [Sig::TERM, Sig::KILL] {
        if writer.signal(signal).await.is_err() {
            break;
        }
        if drain_until(&mut reader, &mut output, Instant::now() + SIGNAL_GRACE).await {
            exited = true;
            break;
        }
    }
    let _ = writer.close().await;
    if !exited {
        drain_until(&mut reader, &mut output, Instant::now() + SIGNAL_GRACE).await;
    }
    drop(lease);
    let partial = output.summary();
    Err(match reason {
        ErrorKind::Timeout => Error::new(
            ErrorKind::Timeout,
            format!(
                "command on {} ran past timeout_secs={timeout_secs} and was stopped (TERM, then \
                 KILL); {partial}. Raise timeout_secs, or run long jobs in the background \
                 (e.g. with nohup) and poll",
                alias
            ),
        ),
        _ => Error::new(
            ErrorKind::Cancelled,
            format!(
                "command on {} was cancelled and stopped (TERM, then KILL); {partial}",
                alias
            ),
        ),
    })
}

/// Pass a sample of a running command's output on.
fn sample(progress: &Reporter, msg: &ChannelMsg) {
    match msg {
        ChannelMsg::Data { data } => progress.output(OutputStream::Stdout, data),
        ChannelMsg::ExtendedData { data, ext: 1 } => progress.output(OutputStream::Stderr, data),
        _ => {}
    }
}

fn cancelled(host: &str) -> Error {
    Error::new(
        ErrorKind::Cancelled,
        format!("exec on {host} was cancelled before the command started"),
    )
}

/// Keep reading until the channel ends (true) or `until` passes (false).
async fn drain_until(
    reader: &mut russh::ChannelReadHalf,
    output: &mut Collected,
    until: Instant,
) -> bool {
    loop {
        match tokio::time::timeout_at(until.into(), reader.wait()).await {
            Ok(Some(msg)) => {
                if output.absorb(msg) {
                    return true;
                }
            }
            Ok(None) => return true,
            Err(_) => return false,
        }
    }
}

/// Output gathered so far, within the budget per stream: past it, each
/// stream keeps its head and tail, and the middle is counted and dropped,
/// never buffered.
struct Collected {
    stdout: HeadTail,
    stderr: HeadTail,
    exit_code: Option<u32>,
    signal: Option<String>,
}

impl Collected {
    fn new(limit: u64) -> Self {
        Collected {
            stdout: HeadTail::new(limit),
            stderr: HeadTail::new(limit),
            exit_code: None,
            signal: None,
        }
    }

    /// Take in one channel message; true when the channel is closed.
    fn absorb(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::Data { data } => self.stdout.push(&data),
            ChannelMsg::ExtendedData { data, ext: 1 } => self.stderr.push(&data),
            ChannelMsg::ExitStatus { exit_status } => self.exit_code = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.signal = Some(signal_label(&signal_name));
            }
            ChannelMsg::Close => return true,
            _ => {}
        }
        false
    }

    fn summary(&self) -> String {
        format!(
            "it had written {} bytes to stdout and {} to stderr",
            self.stdout.total(),
            self.stderr.total()
        )
    }

    fn finish(self, started: Instant, host: &str) -> Result<ExecOutput, Error> {
        if self.exit_code.is_none() && self.signal.is_none() {
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!(
                    "the connection to {host} ended before the command reported an exit status; \
                     {}. The command may or may not have completed",
                    self.summary()
                ),
            ));
        }
        Ok(crate::output::exec_output(
            self.stdout.kept(),
            self.stderr.kept(),
            self.exit_code,
            self.signal,
            started,
        ))
    }
}

/// The name of the signal a command was killed by (`TERM`, `KILL`, ...).
pub fn signal_label(signal: &Sig) -> String {
    match signal {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_cap_keeps_head_and_tail() {
        let mut out = Collected::new(4);
        out.absorb(ChannelMsg::Data {
            data: b"abcdef"[..].into(),
        });
        out.absorb(ChannelMsg::Data {
            data: b"gh"[..].into(),
        });
        out.absorb(ChannelMsg::ExitStatus { exit_status: 0 });
        let done = out.finish(Instant::now(), "h").unwrap();
        assert_eq!(done.stdout, b"abgh");
        assert_eq!(done.stdout_bytes, 8);
        assert_eq!(done.stdout_gap, Some(sshmcp_proto::Gap { at: 2, bytes: 4 }));
        assert!(done.truncated);
    }

    #[test]
    fn stderr_is_kept_apart_from_stdout() {
        let mut out = Collected::new(100);
        out.absorb(ChannelMsg::ExtendedData {
            data: b"oops"[..].into(),
            ext: 1,
        });
        out.absorb(ChannelMsg::ExitStatus { exit_status: 3 });
        let done = out.finish(Instant::now(), "h").unwrap();
        assert_eq!(done.stderr, b"oops");
        assert!(done.stdout.is_empty());
        assert_eq!(done.exit_code, Some(3));
        assert!(!done.truncated);
    }

    #[test]
    fn a_channel_that_ends_without_status_is_an_error() {
        let out = Collected::new(100);
        let err = out.finish(Instant::now(), "h").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Unreachable);
    }
}
