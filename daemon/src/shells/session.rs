//! A shell's session channel: starting `/bin/sh -i` on it, running one
//! command at a time (interrupting it at its deadline without losing the
//! shell), reading and dropping what the shell writes between commands,
//! and closing it.
//!
//! Like every channel of the pool, it is always read (an unread channel
//! stalls the whole connection in russh) and always closed explicitly
//! (dropping a russh channel sends no CHANNEL_CLOSE, and leaked sessions
//! eat the server's MaxSessions).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use russh::{ChannelMsg, Sig};
use sshmcp_proto::{Error, ErrorKind, OutputStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use super::scan::Scanner;
use super::script::{self, Nonce};
use crate::command::signal_label;
use crate::output::HeadTail;
use crate::pool::{Host, Lease};
use crate::sudo::{Conversation, Input};

/// How long an interrupted command (or a hung-up shell) gets before the
/// next, harder signal.
pub const SIGNAL_GRACE: Duration = Duration::from_secs(2);

/// Most bytes of one output sample passed on while a command runs.
const SAMPLE_BYTES: usize = 1024;

/// Samples of a running command's output, for the request's progress.
pub type Samples = mpsc::Sender<(OutputStream, Vec<u8>)>;

/// A line on its way to the shell.
type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), russh::Error>> + Send + 'a>>;

/// What sudo wants written next, once it says.
type Asking<'a> = Pin<Box<dyn Future<Output = Input> + Send + 'a>>;

/// A line for the shell's input.
enum Line {
    Plain(String),
    /// The password sudo asked for, wiped once sent.
    Secret(Zeroizing<Vec<u8>>),
}

/// One shell process on its session channel, with its pool slot.
pub struct Session {
    reader: russh::ChannelReadHalf,
    writer: russh::ChannelWriteHalf<russh::client::Msg>,
    lease: Lease,
    /// How the shell process ended, once the channel said.
    pub exit: Exit,
}

/// What the channel said of the shell process's end.
#[derive(Debug, Default, Clone)]
pub struct Exit {
    pub code: Option<u32>,
    pub signal: Option<String>,
    /// The channel is closed (by the server, or with the connection).
    pub closed: bool,
}

impl Exit {
    /// How the shell ended, in words.
    pub fn describe(&self) -> String {
        match (&self.signal, self.code) {
            (Some(signal), _) => format!("was killed by SIG{signal}"),
            (None, Some(code)) => format!("exited with status {code}"),
            (None, None) => "ended without an exit status (the connection may be lost)".into(),
        }
    }
}

/// What stops a command before its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It ran past its deadline.
    Timeout,
    /// Its caller cancelled it.
    Cancelled,
}

/// One command to run.
pub struct Command<'a> {
    /// The command line, as typed at the shell's prompt.
    pub text: &'a str,
    /// Its markers' secret.
    pub nonce: &'a Nonce,
    /// Bytes kept per stream.
    pub max_output: u64,
    /// When it is interrupted.
    pub deadline: Instant,
    /// Interrupts it when cancelled.
    pub cancel: &'a CancellationToken,
    /// Ends the wait for it at once (the shell is being closed).
    pub closing: &'a CancellationToken,
    /// Where samples of its output go, if anywhere.
    pub samples: Option<&'a Samples>,
    /// The exchange with sudo, when `text` is its line.
    pub sudo: Option<&'a Conversation>,
}

/// How a command went.
pub struct Finished {
    pub stdout: HeadTail,
    pub stderr: HeadTail,
    pub end: End,
    /// Why it was interrupted, and the signals it took (`INT`, `INT, then
    /// TERM`), if it was.
    pub stopped: Option<(Stop, &'static str)>,
}

/// Where a command left the shell.
pub enum End {
    /// The shell ran it to its end (or to its interruption) and waits for
    /// the next: the command's status and the shell's `$PWD`.
    Back { status: Option<u32>, cwd: String },
    /// The shell process ended while it ran (`exit`, a signal, a lost
    /// connection): see [`Session::exit`].
    ShellEnded,
    /// It did not come back after INT and TERM: the shell cannot be used.
    Stuck,
    /// The shell is being closed; the command was abandoned.
    Closing,
    /// The command could not be sent: the connection is gone.
    Failed(Error),
}

impl Session {
    /// Open a session channel on `host` (waiting at most until `deadline`)
    /// and start the shell on it.
    pub async fn start(
        host: &Arc<Host>,
        deadline: Instant,
        cancel: &CancellationToken,
    ) -> Result<Session, Error> {
        let alias = host.resolved.alias.as_str();
        let (lease, channel) = tokio::select! {
            opened = host.session(deadline) => opened?,
            () = cancel.cancelled() => {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!("shell_open on {alias} was cancelled before the shell started"),
                ));
            }
        };
        let (reader, writer) = channel.split();
        let started = async {
            writer.exec(true, script::SHELL).await?;
            writer
                .data_bytes(Bytes::from_static(script::SETUP.as_bytes()))
                .await
        };
        if let Err(e) = started.await {
            // Should the connection still be up, give the session back.
            let _ = writer.close().await;
            return Err(Error::new(
                ErrorKind::Unreachable,
                format!("lost the connection to {alias} while starting the shell: {e}"),
            ));
        }
        Ok(Session {
            reader,
            writer,
            lease,
            exit: Exit::default(),
        })
    }

    /// Between commands: take what the shell writes and drop it. Returns
    /// false once the shell has ended. Cancel-safe.
    pub async fn idle(&mut self) -> bool {
        match self.reader.wait().await {
            Some(msg) => !self.note_end(msg),
            None => {
                self.exit.closed = true;
                false
            }
        }
    }

    /// Record what `msg` says of the process's end; true when the channel
    /// closed.
    fn note_end(&mut self, msg: ChannelMsg) -> bool {
        match msg {
            ChannelMsg::ExitStatus { exit_status } => self.exit.code = Some(exit_status),
            ChannelMsg::ExitSignal { signal_name, .. } => {
                self.exit.signal = Some(signal_label(&signal_name));
            }
            ChannelMsg::Close => self.exit.closed = true,
            _ => {}
        }
        self.exit.closed
    }

    /// Run `command` in the shell to its end; at its deadline or cancel,
    /// interrupt it (INT, then TERM after [`SIGNAL_GRACE`]) and wait for
    /// the shell to come back.
    ///
    /// With sudo, what the shell writes to stderr between its markers goes
    /// through the conversation first (sudo's part is held back). When the
    /// line reads one line of the shell's input, that line (the password
    /// when sudo asks, else an empty one) is written before the trailer,
    /// which would otherwise be what it reads.
    pub async fn command(&mut self, command: Command<'_>) -> Finished {
        let mut stdout = HeadTail::new(command.max_output);
        let mut stderr = HeadTail::new(command.max_output);
        let nonce = command.nonce;
        let sudo = command.sudo;
        let mut out = Scanner::new(nonce.start(), nonce.end(), true);
        let mut err = Scanner::new(nonce.start(), nonce.end(), false);
        let input = match sudo {
            Some(sudo) if sudo.takes_a_line() => script::Input::Shell,
            _ => script::Input::Null,
        };
        let first = script::command_line(nonce, command.text, input);
        let mut outbox = VecDeque::from([Line::Plain(first)]);
        let mut sending: Option<Sending<'_>> = None;
        // The line sudo's reader takes is yet to be written.
        let mut line_owed = input == script::Input::Shell;
        let mut asking: Option<Asking<'_>> = match sudo {
            Some(sudo) if line_owed => Some(Box::pin(sudo.next_input())),
            _ => None,
        };
        let mut started = false;
        let mut trailer_sent = false;
        let mut stop: Option<Stop> = None;
        let mut signals = [(Sig::INT, "INT"), (Sig::TERM, "INT, then TERM")].into_iter();
        let mut signalled: Option<(Sig, &'static str)> = None;
        let mut next_signal: Option<Instant> = None;
        let Session {
            reader,
            writer,
            exit,
            ..
        } = self;
        let writer = &*writer;
        let sample = |stream: OutputStream, bytes: &[u8]| {
            if let Some(samples) = command.samples {
                let tail = &bytes[bytes.len().saturating_sub(SAMPLE_BYTES)..];
                if !tail.is_empty() {
                    let _ = samples.try_send((stream, tail.to_vec()));
                }
            }
        };

        let end = loop {
            if out.done() && err.done() {
                let (status, cwd) = script::parse_trailer(out.trailer());
                break End::Back { status, cwd };
            }
            if stop.is_some() {
                asking = None;
                // Interrupted before sudo said what it wants: an empty
                // line, which the reader takes if the INT left it running,
                // and the shell reads as nothing if not. Only once the
                // shell runs the line, or it would read it with the line.
                if line_owed && out.started() {
                    line_owed = false;
                    outbox.push_back(Line::Plain("\n".into()));
                }
            }
            // The shell runs the line now and has read nothing past it: the
            // trailer waits in the pipe until the command is over, whichever
            // way.
            if out.started() && !line_owed && !trailer_sent {
                trailer_sent = true;
                outbox.push_back(Line::Plain(script::trailer_line(nonce)));
            }
            if sending.is_none()
                && let Some(line) = outbox.pop_front()
            {
                sending = Some(send(writer, line));
            }
            let wake = next_signal.unwrap_or(command.deadline);
            tokio::select! {
                sent = async { sending.as_mut().expect("guarded by the branch condition").await },
                    if sending.is_some() =>
                {
                    sending = None;
                    if let Err(e) = sent {
                        break End::Failed(Error::new(
                            ErrorKind::Unreachable,
                            format!("lost the connection while sending the command: {e}"),
                        ));
                    }
                }
                asked = async { asking.as_mut().expect("guarded by the branch condition").await },
                    if asking.is_some() =>
                {
                    asking = None;
                    line_owed = false;
                    outbox.push_back(match asked {
                        Input::Password(line) => Line::Secret(line),
                        Input::Go | Input::Stop => Line::Plain("\n".into()),
                    });
                }
                msg = reader.wait() => match msg {
                    Some(ChannelMsg::Data { data }) => {
                        out.push(&data, &mut |b: &[u8]| {
                            stdout.push(b);
                            sample(OutputStream::Stdout, b);
                        });
                        if out.started() && !started {
                            started = true;
                            // A signal sent before the shell had read the
                            // command reached an idle shell: send it again.
                            if let Some((sig, _)) = &signalled {
                                let _ = writer.signal(sig.clone()).await;
                            }
                        }
                    }
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => {
                        err.push(&data, &mut |b: &[u8]| {
                            if let Some(b) = commands_stderr(sudo, b) {
                                stderr.push(&b);
                                sample(OutputStream::Stderr, &b);
                            }
                        });
                    }
                    Some(msg) => {
                        let closed = match msg {
                            ChannelMsg::ExitStatus { exit_status } => {
                                exit.code = Some(exit_status);
                                false
                            }
                            ChannelMsg::ExitSignal { signal_name, .. } => {
                                exit.signal = Some(signal_label(&signal_name));
                                false
                            }
                            ChannelMsg::Close => true,
                            _ => false,
                        };
                        if closed {
                            exit.closed = true;
                            out.flush(&mut |b: &[u8]| stdout.push(b));
                            err.flush(&mut |b: &[u8]| {
                                if let Some(b) = commands_stderr(sudo, b) {
                                    stderr.push(&b);
                                }
                            });
                            break End::ShellEnded;
                        }
                    }
                    None => {
                        exit.closed = true;
                        out.flush(&mut |b: &[u8]| stdout.push(b));
                        err.flush(&mut |b: &[u8]| {
                            if let Some(b) = commands_stderr(sudo, b) {
                                stderr.push(&b);
                            }
                        });
                        break End::ShellEnded;
                    }
                },
                () = tokio::time::sleep_until(wake.into()), if stop.is_none() || next_signal.is_some() => {
                    if stop.is_none() {
                        stop = Some(Stop::Timeout);
                    }
                    match signals.next() {
                        Some((sig, said)) => {
                            let _ = writer.signal(sig.clone()).await;
                            signalled = Some((sig, said));
                            next_signal = Some(Instant::now() + SIGNAL_GRACE);
                        }
                        None => break End::Stuck,
                    }
                }
                () = command.cancel.cancelled(), if stop.is_none() => {
                    stop = Some(Stop::Cancelled);
                    next_signal = Some(Instant::now());
                }
                () = command.closing.cancelled() => break End::Closing,
            }
        };
        if let Some(sudo) = sudo {
            stderr.push(&sudo.flush());
        }
        Finished {
            stdout,
            stderr,
            end,
            // A command that came back before any signal went out was not
            // cut short, whatever the clock or the caller said meanwhile.
            stopped: stop.zip(signalled.map(|(_, said)| said)),
        }
    }

    /// Close the shell as a terminal hangs up: HUP to it and to what it
    /// left running (`nohup` work survives), end of input, KILL if it is
    /// still there after [`SIGNAL_GRACE`]; then close the channel and give
    /// the slot back.
    pub async fn close(self) {
        let Session {
            mut reader,
            writer,
            lease,
            exit,
        } = self;
        if !exit.closed {
            let _ = writer.signal(Sig::HUP).await;
            let _ = writer.eof().await;
            if !drain_until(&mut reader, Instant::now() + SIGNAL_GRACE).await {
                let _ = writer.signal(Sig::KILL).await;
                drain_until(&mut reader, Instant::now() + SIGNAL_GRACE).await;
            }
        }
        let _ = writer.close().await;
        drop(lease);
    }
}

/// Start writing `line` to the shell.
fn send(writer: &russh::ChannelWriteHalf<russh::client::Msg>, line: Line) -> Sending<'_> {
    match line {
        Line::Plain(text) => Box::pin(writer.data_bytes(Bytes::from(text.into_bytes()))),
        Line::Secret(secret) => Box::pin(async move { writer.data(&secret[..]).await }),
    }
}

/// What of `bytes`, stderr between the shell's markers, is the command's:
/// all of it, or with sudo what the conversation passes on.
fn commands_stderr<'b>(sudo: Option<&Conversation>, bytes: &'b [u8]) -> Option<Cow<'b, [u8]>> {
    match sudo {
        None => Some(Cow::Borrowed(bytes)),
        Some(sudo) => sudo.stderr(bytes).map(Cow::Owned),
    }
}

/// Read and drop until the channel closes (true) or `until` passes.
async fn drain_until(reader: &mut russh::ChannelReadHalf, until: Instant) -> bool {
    loop {
        match tokio::time::timeout_at(until.into(), reader.wait()).await {
            Ok(Some(ChannelMsg::Close) | None) => return true,
            Ok(Some(_)) => {}
            Err(_) => return false,
        }
    }
}
