//! Persistent shells (`shell_open`, `shell_exec`, `shell_close`): one
//! `/bin/sh -i` per shell on a session channel of the host's pooled
//! connection, so `cd`, exported variables and functions carry from one
//! command to the next.
//!
//! A shell belongs to the daemon, not to the client that opened it: a
//! runner task owns its channel and its pool slot, always reads it, and
//! runs the commands any client of the daemon's user sends it, one at a
//! time. A call on a busy shell waits its turn (first come, first served)
//! until its own deadline. A shell ends when it is closed, when a command
//! ends it (`exit`), when it has run nothing for `[shells] idle_secs`, or
//! with its connection or the daemon; later calls hear why.

mod scan;
mod script;
mod session;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sshmcp_proto::{
    Error, ErrorKind, ExecOutput, ExecRequest, ShellExecOutput, ShellExecRequest, ShellInfo,
    ShellOpenRequest, ShellOpened, ShellState,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::script::Nonce;
use self::session::{Command, End, Exit, Finished, SIGNAL_GRACE, Samples, Session, Stop};
use crate::config::ShellsSection;
use crate::output::HeadTail;
use crate::pool::Host;
use crate::progress::Reporter;
use crate::sudo::{self, Conversation};

/// Most bytes of output kept from the command that sets a new shell up
/// (its errors go into `shell_open`'s).
const OPENING_OUTPUT: u64 = 4096;

/// Why recently ended shells ended, kept for this many shells, so a call
/// on one hears why rather than only that it is unknown.
const ENDED_KEPT: usize = 256;

/// Every shell of the daemon.
pub struct Shells {
    registry: Arc<Registry>,
    next: AtomicU64,
    /// Distinguishes this daemon's ids from an earlier one's.
    prefix: String,
    /// Told the host's alias after every command: what it did on the host
    /// is news to the response cache.
    on_command: Arc<dyn Fn(&str) + Send + Sync>,
}

/// What the registry and the runners share.
struct Registry {
    table: Mutex<Table>,
    settings: Mutex<ShellsSection>,
}

#[derive(Default)]
struct Table {
    open: BTreeMap<u64, Arc<Shell>>,
    /// The hosts of shells being opened now, counted against the limits.
    opening: Vec<String>,
    /// `(shell id, why it ended)`, newest last.
    ended: VecDeque<(String, String)>,
}

/// One shell, as calls see it; its runner holds the channel.
pub struct Shell {
    pub id: String,
    pub host: String,
    opened_unix: u64,
    opened: Instant,
    status: Mutex<Status>,
    /// Held by the call whose command runs: one at a time, in turn.
    turn: tokio::sync::Mutex<()>,
    orders: mpsc::Sender<Order>,
    /// Asks the runner to close the shell (a child of the daemon's
    /// shutdown token).
    closing: CancellationToken,
    shutdown: CancellationToken,
    /// Cancelled once the shell is out of the table: no command starts.
    gone: CancellationToken,
    /// Cancelled once its channel is closed.
    closed: CancellationToken,
    /// Why it ended, once it has.
    why: Mutex<Option<String>>,
}

struct Status {
    cwd: String,
    busy: bool,
    commands: u64,
    last_used: Instant,
}

/// A command for a shell's runner, and where its answer goes.
struct Order {
    command: String,
    /// The exchange with sudo when the command runs through it; its line
    /// is what the shell runs.
    sudo: Option<Conversation>,
    nonce: Nonce,
    max_output: u64,
    started: Instant,
    deadline: Instant,
    timeout_secs: u64,
    cancel: CancellationToken,
    samples: Samples,
    reply: oneshot::Sender<Result<ShellExecOutput, Error>>,
}

impl Shells {
    pub fn new(settings: &ShellsSection, on_command: Arc<dyn Fn(&str) + Send + Sync>) -> Self {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Shells {
            registry: Arc::new(Registry {
                table: Mutex::new(Table::default()),
                settings: Mutex::new(settings.clone()),
            }),
            next: AtomicU64::new(1),
            prefix: format!("{:x}", secs & 0xffff_ffff),
            on_command,
        }
    }

    /// Apply a reloaded `[shells]`: limits to shells opened from now on,
    /// `idle_secs` to every shell within a minute.
    pub fn configure(&self, settings: &ShellsSection) {
        *lock(&self.registry.settings) = settings.clone();
    }

    /// Start a shell on `host` as `req` asks: in its `cwd`, with its `env`
    /// exported. `started` is when the request arrived; `shutdown` closes
    /// the shell with the daemon.
    pub async fn open(
        &self,
        host: &Arc<Host>,
        req: &ShellOpenRequest,
        started: Instant,
        cancel: &CancellationToken,
        shutdown: &CancellationToken,
    ) -> Result<ShellOpened, Error> {
        let alias = host.resolved.alias.clone();
        let opening = self.reserve(&alias)?;
        let deadline = started + Duration::from_secs(ExecRequest::DEFAULT_TIMEOUT_SECS);
        let nonce = Nonce::new()?;
        let mut session = Session::start(host, deadline, cancel).await?;
        let text = script::opening(req.cwd.as_deref(), &req.env);
        let finished = session
            .command(Command {
                text: &text,
                nonce: &nonce,
                max_output: OPENING_OUTPUT,
                deadline,
                cancel,
                closing: &CancellationToken::new(),
                samples: None,
                sudo: None,
            })
            .await;
        let cwd = match finished {
            Finished {
                end:
                    End::Back {
                        status: Some(0),
                        cwd,
                    },
                stopped: None,
                ..
            } => cwd,
            finished => {
                let error = opening_error(&alias, req, finished, &session.exit);
                session.close().await;
                return Err(error);
            }
        };

        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let (orders, orders_rx) = mpsc::channel(1);
        let shell = Arc::new(Shell {
            id: format!("s{}-{n}", self.prefix),
            host: alias,
            opened_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            opened: Instant::now(),
            status: Mutex::new(Status {
                cwd: cwd.clone(),
                busy: false,
                commands: 0,
                last_used: Instant::now(),
            }),
            turn: tokio::sync::Mutex::new(()),
            orders,
            closing: shutdown.child_token(),
            shutdown: shutdown.clone(),
            gone: CancellationToken::new(),
            closed: CancellationToken::new(),
            why: Mutex::new(None),
        });
        opening.opened(n, shell.clone());
        tokio::spawn(run(
            shell.clone(),
            session,
            orders_rx,
            self.registry.clone(),
            self.on_command.clone(),
        ));
        tracing::info!(shell = %shell.id, host = %shell.host, "shell opened");
        Ok(ShellOpened {
            shell_id: shell.id.clone(),
            cwd,
        })
    }

    /// Count a shell being opened on `alias` against the limits, or refuse
    /// it naming them.
    fn reserve(&self, alias: &str) -> Result<Opening<'_>, Error> {
        let settings = lock(&self.registry.settings).clone();
        let mut table = lock(&self.registry.table);
        let here = table.open.values().filter(|s| s.host == alias).count()
            + table.opening.iter().filter(|a| *a == alias).count();
        let all = table.open.len() + table.opening.len();
        if here >= settings.max_per_host as usize || all >= settings.max_total as usize {
            return Err(Error::new(
                ErrorKind::Overloaded,
                format!(
                    "{here} shells are open on {alias} and {all} in all, at the limit of \
                     [shells] max_per_host = {} / max_total = {}; close one with shell_close \
                     (`sshmcpctl shells` lists them), wait for idle ones to close, or raise \
                     the limit",
                    settings.max_per_host, settings.max_total
                ),
            ));
        }
        table.opening.push(alias.to_string());
        Ok(Opening {
            registry: &self.registry,
            alias: alias.to_string(),
        })
    }

    /// The shell called `id`, or why there is none.
    pub fn get(&self, id: &str) -> Result<Arc<Shell>, Error> {
        let table = lock(&self.registry.table);
        if let Some(shell) = table.open.values().find(|s| s.id == id) {
            return Ok(shell.clone());
        }
        let why = table
            .ended
            .iter()
            .rev()
            .find(|(ended, _)| ended == id)
            .map(|(_, why)| why.clone());
        Err(match why {
            Some(why) => gone(id, &why),
            None => Error::new(
                ErrorKind::NotFound,
                format!(
                    "no shell {id}: it never existed here, or ended long ago (the daemon may \
                     have restarted); open one with shell_open"
                ),
            ),
        })
    }

    /// Close shell `id` and wait (briefly) until its channel is closed. A
    /// command running in it is abandoned.
    pub async fn close(&self, id: &str) -> Result<(), Error> {
        let shell = self.get(id)?;
        shell.closing.cancel();
        // The runner hangs up (HUP, then KILL after the grace) and closes.
        let _ = tokio::time::timeout(SIGNAL_GRACE * 3, shell.closed.cancelled()).await;
        Ok(())
    }

    /// The open shells, oldest first; one host's when `host` is given.
    pub fn list(&self, host: Option<&str>) -> Vec<ShellInfo> {
        lock(&self.registry.table)
            .open
            .values()
            .filter(|s| host.is_none_or(|h| s.host == h))
            .map(|s| s.info())
            .collect()
    }

    /// Some shell on `alias` runs a command now.
    pub fn busy_on(&self, alias: &str) -> bool {
        lock(&self.registry.table)
            .open
            .values()
            .any(|s| s.host == alias && lock(&s.status).busy)
    }

    /// How many shells are open.
    pub fn open_count(&self) -> usize {
        lock(&self.registry.table).open.len()
    }
}

/// A shell being opened, counted against the limits until it is in the
/// table or has failed.
struct Opening<'a> {
    registry: &'a Registry,
    /// Its host; empty once the shell is in the table.
    alias: String,
}

impl Opening<'_> {
    /// The shell is open: it counts as open from now on, in place of this
    /// (both at once, under one lock, so no other opening sees it twice).
    fn opened(mut self, n: u64, shell: Arc<Shell>) {
        let alias = std::mem::take(&mut self.alias);
        let mut table = lock(&self.registry.table);
        table.open.insert(n, shell);
        uncount(&mut table, &alias);
    }
}

impl Drop for Opening<'_> {
    fn drop(&mut self) {
        if !self.alias.is_empty() {
            uncount(&mut lock(&self.registry.table), &self.alias);
        }
    }
}

/// One shell being opened on `alias` the fewer.
fn uncount(table: &mut Table, alias: &str) {
    if let Some(at) = table.opening.iter().position(|a| a == alias) {
        table.opening.swap_remove(at);
    }
}

impl Registry {
    /// Take `shell` out of the table, remembering why it ended; calls
    /// waiting for it hear why at once.
    fn retire(&self, shell: &Shell, why: String) {
        {
            let mut table = lock(&self.table);
            table.open.retain(|_, s| s.id != shell.id);
            table.ended.push_back((shell.id.clone(), why.clone()));
            if table.ended.len() > ENDED_KEPT {
                table.ended.pop_front();
            }
        }
        tracing::info!(shell = %shell.id, host = %shell.host, "shell closed: {why}");
        *lock(&shell.why) = Some(why);
        shell.gone.cancel();
    }

    fn idle_secs(&self) -> u64 {
        lock(&self.settings).idle_secs
    }
}

impl Shell {
    /// Run `req`'s command in this shell once it is this call's turn
    /// (through `sudo`, its conversation, when given), passing samples of
    /// its output to `progress`. `started` is when the request arrived:
    /// its timeout counts from there, the wait included.
    pub async fn exec(
        &self,
        req: ShellExecRequest,
        sudo: Option<Conversation>,
        max_output: u64,
        started: Instant,
        cancel: &CancellationToken,
        progress: &Reporter,
    ) -> Result<ShellExecOutput, Error> {
        let timeout_secs = req
            .timeout_secs
            .unwrap_or(ExecRequest::DEFAULT_TIMEOUT_SECS);
        let deadline = started + Duration::from_secs(timeout_secs);
        let _turn = tokio::select! {
            turn = self.turn.lock() => turn,
            () = tokio::time::sleep_until(deadline.into()) => return Err(self.busy(timeout_secs)),
            () = cancel.cancelled() => {
                return Err(Error::new(
                    ErrorKind::Cancelled,
                    format!(
                        "shell_exec in shell {} was cancelled while it waited for the shell",
                        self.id
                    ),
                ));
            }
            () = self.gone.cancelled() => return Err(self.gone_error()),
        };
        if self.gone.is_cancelled() {
            return Err(self.gone_error());
        }
        let (reply, mut answer) = oneshot::channel();
        let (samples, mut sampled) = mpsc::channel(4);
        let order = Order {
            command: req.command,
            sudo,
            nonce: Nonce::new()?,
            max_output,
            started,
            deadline,
            timeout_secs,
            cancel: cancel.clone(),
            samples,
            reply,
        };
        if self.orders.send(order).await.is_err() {
            return Err(self.gone_error());
        }
        loop {
            tokio::select! {
                Some((stream, bytes)) = sampled.recv() => progress.output(stream, &bytes),
                answered = &mut answer => return answered.unwrap_or_else(|_| Err(self.gone_error())),
            }
        }
    }

    fn info(&self) -> ShellInfo {
        let status = lock(&self.status);
        ShellInfo {
            shell_id: self.id.clone(),
            host: self.host.clone(),
            cwd: status.cwd.clone(),
            state: if status.busy {
                ShellState::Busy
            } else {
                ShellState::Idle
            },
            opened: self.opened_unix,
            open_ms: self.opened.elapsed().as_millis() as u64,
            idle_ms: if status.busy {
                0
            } else {
                status.last_used.elapsed().as_millis() as u64
            },
            commands: status.commands,
        }
    }

    fn last_used(&self) -> Instant {
        lock(&self.status).last_used
    }

    fn busy(&self, timeout_secs: u64) -> Error {
        Error::new(
            ErrorKind::Overloaded,
            format!(
                "shell {} on {} was busy with another command for all of this call's \
                 timeout_secs={timeout_secs} (one command runs at a time in a shell; calls wait \
                 their turn); retry when it is done, or open another shell with shell_open",
                self.id, self.host
            ),
        )
    }

    fn gone_error(&self) -> Error {
        let why = lock(&self.why)
            .clone()
            .unwrap_or_else(|| "it was closed".into());
        gone(&self.id, &why)
    }

    /// Why the runner is closing the shell when asked to.
    fn closing_reason(&self) -> String {
        if self.shutdown.is_cancelled() {
            "the daemon shut down".into()
        } else {
            "it was closed with shell_close".into()
        }
    }

    /// The answer to `order` from how its command went, and why the shell
    /// ended, if it did.
    fn outcome(
        &self,
        finished: Finished,
        order: &Order,
        exit: &Exit,
    ) -> (Result<ShellExecOutput, Error>, Option<String>) {
        let Finished {
            stdout,
            stderr,
            end,
            stopped,
        } = finished;
        let (id, host) = (&self.id, &self.host);
        let written = format!(
            "it had written {} bytes to stdout and {} to stderr",
            stdout.total(),
            stderr.total()
        );
        let what = |stop: Stop| match stop {
            Stop::Timeout => (
                ErrorKind::Timeout,
                format!("ran past timeout_secs={}", order.timeout_secs),
            ),
            Stop::Cancelled => (ErrorKind::Cancelled, "was cancelled".to_string()),
        };
        match (end, stopped) {
            (End::Back { status, cwd }, None) => {
                lock(&self.status).cwd = cwd.clone();
                if let Some(sudo) = &order.sudo {
                    match status {
                        Some(status) => sudo.exited(status),
                        None => sudo.ended(),
                    }
                    if let Err(e) = sudo::verdict(Some(sudo)) {
                        let message = format!(
                            "{}. Shell {id} is still open, in {cwd}, as it was",
                            e.message
                        );
                        return (Err(Error::new(e.kind, message)), None);
                    }
                }
                let output = exec_output(stdout, stderr, status, None, order.started);
                let answer = ShellExecOutput {
                    output,
                    cwd: Some(cwd),
                    closed: None,
                };
                (Ok(answer), None)
            }
            (End::Back { cwd, .. }, Some((stop, signals))) => {
                lock(&self.status).cwd = cwd.clone();
                if let Some(sudo) = order.sudo.as_ref().filter(|s| !s.started())
                    && stop == Stop::Timeout
                {
                    let message = format!(
                        "{}. Shell {id} on {host} is still open, in {cwd}, its variables and \
                         functions kept",
                        sudo.not_started().message
                    );
                    return (Err(Error::new(ErrorKind::Timeout, message)), None);
                }
                let (kind, what) = what(stop);
                let hint = match stop {
                    Stop::Timeout => {
                        " Raise timeout_secs, or start long work in the background \
                         (`cmd > log 2>&1 &`) and look at it later"
                    }
                    Stop::Cancelled => "",
                };
                let message = format!(
                    "command in shell {id} on {host} {what} and was interrupted ({signals}); \
                     {written}. The shell is still open, in {cwd}, its variables and functions \
                     kept.{hint}"
                );
                (Err(Error::new(kind, message)), None)
            }
            (End::ShellEnded, stopped) => {
                let how = exit.describe();
                if exit.code.is_none() && exit.signal.is_none() {
                    let message = format!(
                        "lost the connection to {host} while the command ran in shell {id}; \
                         {written}. The command may or may not have completed; the shell is \
                         gone, open a new one with shell_open"
                    );
                    let why = format!("the connection to {host} was lost during a command");
                    return (Err(Error::new(ErrorKind::Unreachable, message)), Some(why));
                }
                if let Some((stop, signals)) = stopped {
                    let (kind, what) = what(stop);
                    let message = format!(
                        "command in shell {id} on {host} {what} and was interrupted ({signals}), \
                         and the shell {how}; {written}. Open a new one with shell_open"
                    );
                    let why = format!("it {how} when a command was interrupted");
                    return (Err(Error::new(kind, message)), Some(why));
                }
                let output = exec_output(
                    stdout,
                    stderr,
                    exit.code,
                    exit.signal.clone(),
                    order.started,
                );
                let closed = format!(
                    "the shell {how}: shell {id} is closed; open a new one with shell_open"
                );
                let answer = ShellExecOutput {
                    output,
                    cwd: None,
                    closed: Some(closed),
                };
                (Ok(answer), Some(format!("it {how} during a command")))
            }
            (End::Stuck, stopped) => {
                let (kind, what) = what(stopped.map_or(Stop::Timeout, |(stop, _)| stop));
                let message = format!(
                    "command in shell {id} on {host} {what} and did not stop on INT or TERM, so \
                     the shell was closed (KILL) and its working directory and variables are \
                     gone; {written}. Open a new one with shell_open"
                );
                let why = "a command in it did not stop on INT or TERM".to_string();
                (Err(Error::new(kind, message)), Some(why))
            }
            (End::Closing, _) => {
                let why = self.closing_reason();
                let message = format!(
                    "shell {id} on {host} was closed while the command ran ({why}); {written}"
                );
                (Err(Error::new(ErrorKind::Cancelled, message)), Some(why))
            }
            (End::Failed(error), _) => {
                let why = format!("its connection failed: {}", error.message);
                let message = format!(
                    "shell {id} on {host}: {}; the shell is gone, open a new one with shell_open",
                    error.message
                );
                (Err(Error::new(error.kind, message)), Some(why))
            }
        }
    }
}

/// The runner: serve the shell's commands in turn, drop what it writes
/// between them, close it when asked, when idle too long, or when it ends;
/// then take it out of the table and close the channel.
async fn run(
    shell: Arc<Shell>,
    mut session: Session,
    mut orders: mpsc::Receiver<Order>,
    registry: Arc<Registry>,
    on_command: Arc<dyn Fn(&str) + Send + Sync>,
) {
    let why = loop {
        let idle = Duration::from_secs(registry.idle_secs());
        // Wake at least every minute, so a reloaded idle_secs applies.
        let wake = (shell.last_used() + idle).min(Instant::now() + Duration::from_secs(60));
        tokio::select! {
            order = orders.recv() => {
                let Some(order) = order else {
                    let why = "its handle was dropped".to_string();
                    registry.retire(&shell, why.clone());
                    break why;
                };
                if let Some(why) = serve(&shell, &mut session, order, &registry, &*on_command).await {
                    break why;
                }
            }
            alive = session.idle() => {
                if !alive {
                    let why = format!("it {} between commands", session.exit.describe());
                    registry.retire(&shell, why.clone());
                    break why;
                }
            }
            () = tokio::time::sleep_until(wake.into()) => {
                if shell.last_used().elapsed() >= idle {
                    let why = format!(
                        "it ran no command for {}s ([shells] idle_secs)",
                        idle.as_secs()
                    );
                    registry.retire(&shell, why.clone());
                    break why;
                }
            }
            () = shell.closing.cancelled() => {
                let why = shell.closing_reason();
                registry.retire(&shell, why.clone());
                break why;
            }
        }
    };
    // Orders that raced the end are answered (with why) as they drop.
    drop(orders);
    tracing::debug!(shell = %shell.id, "closing the channel: {why}");
    session.close().await;
    shell.closed.cancel();
}

/// Run one order's command and answer it; why the shell ended, if the
/// command ended it (the shell is then out of the table already).
async fn serve(
    shell: &Shell,
    session: &mut Session,
    order: Order,
    registry: &Registry,
    on_command: &(dyn Fn(&str) + Send + Sync),
) -> Option<String> {
    if order.reply.is_closed() {
        return None;
    }
    lock(&shell.status).busy = true;
    let finished = session
        .command(Command {
            text: order
                .sudo
                .as_ref()
                .map_or(order.command.as_str(), Conversation::line),
            nonce: &order.nonce,
            max_output: order.max_output,
            deadline: order.deadline,
            cancel: &order.cancel,
            closing: &shell.closing,
            samples: Some(&order.samples),
            sudo: order.sudo.as_ref(),
        })
        .await;
    on_command(&shell.host);
    let (answer, ended) = shell.outcome(finished, &order, &session.exit);
    {
        let mut status = lock(&shell.status);
        status.busy = false;
        status.commands += 1;
        status.last_used = Instant::now();
    }
    if let Some(why) = &ended {
        registry.retire(shell, why.clone());
    }
    let _ = order.reply.send(answer);
    ended
}

/// An `exec` answer from a shell command's output.
fn exec_output(
    stdout: HeadTail,
    stderr: HeadTail,
    exit_code: Option<u32>,
    signal: Option<String>,
    started: Instant,
) -> ExecOutput {
    crate::output::exec_output(stdout.kept(), stderr.kept(), exit_code, signal, started)
}

/// Why `shell_open` failed, from how its setup command went.
fn opening_error(alias: &str, req: &ShellOpenRequest, finished: Finished, exit: &Exit) -> Error {
    let Finished {
        stderr,
        end,
        stopped,
        ..
    } = finished;
    if let Some((stop, _)) = stopped {
        return match stop {
            Stop::Timeout => Error::new(
                ErrorKind::Timeout,
                format!(
                    "the shell on {alias} was not ready within {}s; retry, or check that \
                     /bin/sh works there",
                    ExecRequest::DEFAULT_TIMEOUT_SECS
                ),
            ),
            Stop::Cancelled => Error::new(
                ErrorKind::Cancelled,
                format!("shell_open on {alias} was cancelled"),
            ),
        };
    }
    let said = String::from_utf8_lossy(&stderr.finish().0)
        .trim()
        .to_string();
    match end {
        End::Back { .. } => {
            let cwd = req.cwd.as_deref().unwrap_or("~");
            let kind = if said.contains("ermission") {
                ErrorKind::PermissionDenied
            } else {
                ErrorKind::NotFound
            };
            Error::new(
                kind,
                format!("shell_open on {alias}: cannot enter cwd `{cwd}`: {said}"),
            )
        }
        End::ShellEnded if exit.code.is_some() || exit.signal.is_some() => Error::new(
            ErrorKind::Internal,
            format!(
                "`/bin/sh -i` on {alias} {} before it was ready; check that /bin/sh works there",
                exit.describe()
            ),
        ),
        End::ShellEnded => Error::new(
            ErrorKind::Unreachable,
            format!("lost the connection to {alias} while starting the shell; retry"),
        ),
        End::Stuck | End::Closing => Error::new(
            ErrorKind::Internal,
            format!("the shell on {alias} did not get ready"),
        ),
        End::Failed(error) => error,
    }
}

/// A call on a shell that has ended.
fn gone(id: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("shell {id} is closed: {why}; open a new one with shell_open"),
    )
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
