//! `exec` with `sudo`: the command line that runs a command through sudo
//! on the host, the conversation with sudo on the command's channel, and
//! the passwords the daemon answers it with.
//!
//! The command runs as `exec sudo -n [-u USER] -- sh -c START sh RELAY
//! 'COMMAND'` when no password command is configured for the host, and
//! with `-S -p PROMPT` in place of `-n` when one is. `START` prints a line
//! (the marker) carrying a nonce to stderr, then becomes `RELAY`, which
//! runs the command with `sh -c` and passes signals on to all of its
//! processes (see `RELAY`). `PROMPT` carries the same nonce; the
//! printed forms never occur in the command line itself (the marker is put
//! together by `printf`), so neither sudo's own complaints, which quote the
//! command, nor anything the command writes (it starts after the marker)
//! can forge them. Everything on stderr before the marker is sudo's (its
//! prompts, `Sorry, try again`, `a password is required`) and is held back
//! and read; everything after it is the command's.
//!
//! With `-S`, sudo reads the password from stdin, so the password is
//! written only after sudo's prompt has appeared: a password written up
//! front would reach the command itself when sudo does not ask (NOPASSWD
//! rules, a cached timestamp). The command's own stdin is written only
//! after the marker: before that, sudo would take each line of it as one
//! more password attempt. A second prompt means the password was wrong:
//! stdin is closed at once, so sudo gives up after one attempt whatever
//! its `passwd_tries`.
//!
//! The password comes from the host's `[sudo.hosts] password_command`, run
//! locally by the daemon, and is kept in memory for `[sudo] cache_secs`
//! (wiped when dropped). It never appears in a command line, the
//! environment, a log line, a result or an error; sudo does not echo it.
//!
//! In a persistent shell (`shell_exec` with `sudo`) the same conversation
//! runs on a line typed into the shell (see [`shell_line`]), whose input
//! is the shell's own: it cannot be closed, and what the daemon writes
//! after a command is the shell's next command. So sudo never reads the
//! shell's input. A reader in front of it takes exactly one line from the
//! shell's input and passes it on to sudo's stdin, then ends, so sudo sees
//! end of input after it: that line is the password when sudo asks, or an
//! empty line once sudo has started the command or ended without asking.
//! After it the shell's input is the shell's again. A note printed after
//! sudo returns says it ended, for the refusals that come without a
//! prompt. The shell has no terminal, so nothing echoes what it is sent.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client::Msg;
use sshmcp_proto::{Error, ErrorKind};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

use crate::config::SudoSection;
use crate::files::transfer::shell_quote as quote;

/// How long a password command may run.
const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The most a password command may print; its first line is the password.
const PASSWORD_OUTPUT_MAX: usize = 64 * 1024;

/// sudo's own stderr kept for reading its verdict: past `HEARD_MAX`, only
/// the newest `HEARD_KEEP` bytes stay.
const HEARD_MAX: usize = 64 * 1024;
const HEARD_KEEP: usize = 16 * 1024;

/// Sudo passwords from the hosts' password commands, kept per host alias
/// for `[sudo] cache_secs`, each host's command run by one caller at a time
/// so that concurrent execs wait for one run.
#[derive(Default)]
pub struct Passwords {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// Numbers each password fetched, so a refusal drops only the one that
    /// was refused.
    fetched: AtomicU64,
}

#[derive(Default)]
struct Slot {
    kept: Mutex<Option<Kept>>,
    /// Held while the password command runs.
    fetching: tokio::sync::Mutex<()>,
}

struct Kept {
    password: Zeroizing<Vec<u8>>,
    id: u64,
    until: Instant,
}

/// Where one conversation gets its password: the configured command and
/// the store that runs and keeps it.
struct Source {
    passwords: Arc<Passwords>,
    /// The `[sudo.hosts]` key that matched, for messages.
    key: String,
    command: String,
    cache_secs: u64,
}

impl Passwords {
    /// A conversation that runs `command` on `alias` as `user` (root when
    /// `None`), answering sudo's prompt with the password `config` names
    /// for the host, if any. `place` says where the line runs: as a
    /// channel's command, or typed into a persistent shell (the line is
    /// then [`shell_line`]'s).
    pub fn conversation(
        self: &Arc<Self>,
        config: &SudoSection,
        alias: &str,
        command: &str,
        user: Option<&str>,
        place: Place,
    ) -> Result<Conversation, Error> {
        Conversation::new(alias, command, user, self.source(config, alias), place)
    }

    /// Where `alias`'s password comes from, if `config` names a command.
    fn source(self: &Arc<Self>, config: &SudoSection, alias: &str) -> Option<Source> {
        config.host(alias).map(|(key, host)| Source {
            passwords: self.clone(),
            key: key.to_owned(),
            command: host.password_command.clone(),
            cache_secs: config.cache_secs,
        })
    }

    /// Forget every kept password (the config was reloaded: commands may
    /// have changed).
    pub fn clear(&self) {
        for slot in lock(&self.slots).values() {
            *lock(&slot.kept) = None;
        }
    }

    fn slot(&self, alias: &str) -> Arc<Slot> {
        lock(&self.slots)
            .entry(alias.to_owned())
            .or_default()
            .clone()
    }

    /// The password for `alias` and its number: kept, or fetched by
    /// running the command (once, however many callers wait for it).
    async fn get(&self, alias: &str, source: &Source) -> Result<(Zeroizing<Vec<u8>>, u64), Error> {
        let slot = self.slot(alias);
        let fresh = |slot: &Slot| {
            lock(&slot.kept)
                .as_ref()
                .filter(|k| Instant::now() < k.until)
                .map(|k| (k.password.clone(), k.id))
        };
        if let Some(kept) = fresh(&slot) {
            return Ok(kept);
        }
        let _one_run = slot.fetching.lock().await;
        if let Some(kept) = fresh(&slot) {
            return Ok(kept);
        }
        let password = run_password_command(alias, source).await?;
        let id = self.fetched.fetch_add(1, Ordering::Relaxed);
        if source.cache_secs > 0 {
            let keep = Duration::from_secs(source.cache_secs);
            *lock(&slot.kept) = Some(Kept {
                password: password.clone(),
                id,
                until: Instant::now() + keep,
            });
            // Gone from memory when it expires, not when next asked for.
            let slot = slot.clone();
            tokio::spawn(async move {
                tokio::time::sleep(keep).await;
                let mut kept = lock(&slot.kept);
                if kept.as_ref().is_some_and(|k| k.id == id) {
                    *kept = None;
                }
            });
        }
        Ok((password, id))
    }

    /// Drop the kept password `id` of `alias`: sudo refused it.
    fn forget(&self, alias: &str, id: u64) {
        if let Some(slot) = lock(&self.slots).get(alias) {
            let mut kept = lock(&slot.kept);
            if kept.as_ref().is_some_and(|k| k.id == id) {
                *kept = None;
            }
        }
    }
}

/// Run `source`'s password command locally and take the first line of its
/// output. Its stderr is not read: it may carry secrets, and nothing of it
/// may reach a log or an error.
async fn run_password_command(alias: &str, source: &Source) -> Result<Zeroizing<Vec<u8>>, Error> {
    let failed = |what: String| {
        Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "sudo on {alias} asked for a password, but [sudo.hosts.\"{}\"] password_command \
                 {what}; the command did not run. Run the password command by hand to see why \
                 (the daemon does not read its stderr, which may show secrets)",
                source.key
            ),
        )
    };
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&source.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| failed(format!("could not be started: {e}")))?;
    // Whatever the command started goes with it on a timeout or a
    // cancelled call: its process group is killed unless it ended.
    let mut group = GroupKill(child.id());
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("gave no output pipe".into()))?;
    let mut output = Zeroizing::new(vec![0u8; PASSWORD_OUTPUT_MAX]);
    let run = async {
        let mut len = 0;
        while len < output.len() {
            match stdout.read(&mut output[len..]).await {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) => return Err(failed(format!("could not be read: {e}"))),
            }
        }
        if len == output.len() {
            // Enough; the rest is not wanted.
            return Ok(len);
        }
        let status = child
            .wait()
            .await
            .map_err(|e| failed(format!("could not be waited for: {e}")))?;
        group.0 = None;
        if !status.success() {
            return Err(failed(format!("failed ({status})")));
        }
        Ok(len)
    };
    let len = tokio::time::timeout(PASSWORD_COMMAND_TIMEOUT, run)
        .await
        .map_err(|_| {
            failed(format!(
                "did not finish within {} s",
                PASSWORD_COMMAND_TIMEOUT.as_secs()
            ))
        })??;
    tracing::info!(host = %alias, key = %source.key, "ran the sudo password command");
    let Some(end) = output[..len].iter().position(|&b| b == b'\n') else {
        return Err(failed(if len == output.len() {
            format!("printed more than {PASSWORD_OUTPUT_MAX} bytes without a line break")
        } else {
            "printed no line".into()
        }));
    };
    let line = output[..end].strip_suffix(b"\r").unwrap_or(&output[..end]);
    if line.is_empty() {
        return Err(failed("printed an empty first line".into()));
    }
    Ok(Zeroizing::new(line.to_vec()))
}

/// Kills a process group when dropped, unless its leader was reaped.
struct GroupKill(Option<u32>);

impl Drop for GroupKill {
    fn drop(&mut self) {
        if let Some(pgid) = self.0.and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: kill(2) has no memory-safety preconditions; the
            // leader is not reaped yet, so its group id still names it.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    }
}

/// One command's exchange with sudo on its channel: see the module's
/// documentation. The reading side passes every channel message through
/// [`receive`]; the writing side feeds stdin with [`feed`]; once the
/// channel ends, [`verdict`] says whether sudo refused, and why.
pub struct Conversation {
    alias: String,
    /// Whom the command runs as, for messages and `jobs`.
    user: Option<String>,
    command: String,
    line: String,
    /// The line the wrapper prints once sudo has started it.
    marker: Vec<u8>,
    /// sudo's password prompt, when sudo may ask (`-S`).
    prompt: Option<Vec<u8>>,
    /// In a shell, when sudo may ask: the line printed once sudo has
    /// returned (see [`shell_line`]).
    note: Option<Vec<u8>>,
    source: Option<Source>,
    heard: Mutex<Heard>,
    stage: watch::Sender<Stage>,
}

/// Where the line runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// As a channel's command, through the login's shell.
    Login,
    /// Typed into a persistent shell.
    Shell,
}

/// What sudo has said so far, and what was answered.
#[derive(Default)]
struct Heard {
    /// sudo's stderr before the marker, at most `HEARD_MAX` bytes.
    text: Vec<u8>,
    /// Where in `text` to look for the next prompt.
    scanned: usize,
    asked: u32,
    /// Prompts answered with a password.
    answered: u32,
    /// The number of the password sent, once sent.
    sent: Option<u64>,
    /// Why no password could be sent.
    no_password: Option<Error>,
    exit_status: Option<u32>,
    /// In a shell, once sudo started the command: its stderr held back
    /// because it may be the start of the note.
    after: Vec<u8>,
    /// The note has passed.
    noted: bool,
}

/// How far the exchange has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing from sudo yet.
    Waiting,
    /// sudo has asked for a password this many times.
    Asked(u32),
    /// The wrapper printed the marker: sudo started the command.
    Started,
    /// The channel ended before that.
    Ended,
}

/// What to write to the command's stdin next.
pub enum Input {
    /// The password line sudo asked for.
    Password(Zeroizing<Vec<u8>>),
    /// sudo started the command: its own stdin may follow.
    Go,
    /// sudo will not start the command: close stdin.
    Stop,
}

impl Conversation {
    fn new(
        alias: &str,
        command: &str,
        user: Option<&str>,
        source: Option<Source>,
        place: Place,
    ) -> Result<Conversation, Error> {
        let nonce = nonce()?;
        let marker = format!("sshmcp-sudo-started:{nonce}\n").into_bytes();
        let prompt = source
            .as_ref()
            .map(|_| format!("[sshmcp-sudo-password:{nonce}]").into_bytes());
        let asks = prompt.is_some();
        let (line, note) = match place {
            Place::Login => (command_line(command, user, &nonce, asks), None),
            Place::Shell => (
                shell_line(command, user, &nonce, asks),
                asks.then(|| format!("sshmcp-sudo-ended:{nonce}\n").into_bytes()),
            ),
        };
        Ok(Conversation {
            alias: alias.to_owned(),
            user: user.map(str::to_owned),
            command: command.to_owned(),
            line,
            marker,
            prompt,
            note,
            source,
            heard: Mutex::new(Heard::default()),
            stage: watch::Sender::new(Stage::Waiting),
        })
    }

    /// The command line to run on the channel (or to type into the
    /// shell) in place of the command.
    pub fn line(&self) -> &str {
        &self.line
    }

    /// In a shell: the line reads one line of the shell's input before
    /// the shell may be sent anything else. That line is the password
    /// when [`next_input`](Self::next_input) gives one, else an empty line
    /// once it says `Go` or `Stop`, or once the command is interrupted.
    /// Without a password command sudo runs with `-n` and reads nothing.
    pub fn takes_a_line(&self) -> bool {
        self.note.is_some()
    }

    /// sudo started the command.
    pub fn started(&self) -> bool {
        self.stage() == Stage::Started
    }

    /// The command as `jobs` shows it: `sudo [-u USER] COMMAND`.
    pub fn shown(&self) -> String {
        match &self.user {
            Some(user) => format!("sudo -u {user} {}", self.command),
            None => format!("sudo {}", self.command),
        }
    }

    fn stage(&self) -> Stage {
        *self.stage.borrow()
    }

    fn heard(&self) -> std::sync::MutexGuard<'_, Heard> {
        lock(&self.heard)
    }

    /// What to write next; waits until there is something. Without a
    /// password source sudo runs with `-n` and reads no stdin, so the
    /// command's stdin may go at once.
    pub async fn next_input(&self) -> Input {
        let Some(source) = &self.source else {
            return Input::Go;
        };
        let mut stage = self.stage.subscribe();
        loop {
            let now = *stage.borrow_and_update();
            match now {
                Stage::Started => return Input::Go,
                Stage::Ended => return Input::Stop,
                Stage::Asked(asked) => {
                    let answered = self.heard().answered;
                    if answered > 0 && asked > answered {
                        // Asked again: the password was wrong. One
                        // attempt only; sudo fails at EOF.
                        return Input::Stop;
                    }
                    if answered == 0 {
                        self.heard().answered = asked;
                        return match source.passwords.get(&self.alias, source).await {
                            Ok((password, id)) => {
                                self.heard().sent = Some(id);
                                let mut line =
                                    Zeroizing::new(Vec::with_capacity(password.len() + 1));
                                line.extend_from_slice(&password);
                                line.push(b'\n');
                                Input::Password(line)
                            }
                            Err(e) => {
                                self.heard().no_password = Some(e);
                                Input::Stop
                            }
                        };
                    }
                }
                Stage::Waiting => {}
            }
            if stage.changed().await.is_err() {
                return Input::Stop;
            }
        }
    }

    /// Take in what the command's channel (or, in a shell, the command
    /// line) wrote to stderr: `None` while it is sudo's (held back and
    /// read), the command's part once the marker has passed.
    pub fn stderr(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut heard = self.heard();
        if self.stage() == Stage::Started {
            return self.commands(&mut heard, data);
        }
        if heard.noted {
            // sudo has returned; what follows is the shell's.
            return None;
        }
        heard.text.extend_from_slice(data);
        if let Some(prompt) = &self.prompt {
            while let Some(at) = find(&heard.text[heard.scanned..], prompt) {
                heard.scanned += at + prompt.len();
                heard.asked += 1;
                self.stage.send_replace(Stage::Asked(heard.asked));
            }
        }
        if let Some(at) = find(&heard.text, &self.marker) {
            let rest = heard.text.split_off(at + self.marker.len());
            heard.text = Vec::new();
            self.stage.send_replace(Stage::Started);
            return self.commands(&mut heard, &rest);
        }
        if let Some(at) = self.note.as_ref().and_then(|note| find(&heard.text, note)) {
            // sudo returned without starting the command.
            heard.text.truncate(at);
            heard.noted = true;
            drop(heard);
            self.ended();
            return None;
        }
        if heard.text.len() > HEARD_MAX {
            let cut = heard.text.len() - HEARD_KEEP;
            heard.text.drain(..cut);
            heard.scanned = heard.scanned.saturating_sub(cut);
        }
        None
    }

    /// The command's stderr once sudo has started it. In a shell, the
    /// note that follows it is cut out, and bytes that may be its start
    /// are held back until more comes or [`flush`](Self::flush).
    fn commands(&self, heard: &mut Heard, data: &[u8]) -> Option<Vec<u8>> {
        let Some(note) = self.note.as_ref().filter(|_| !heard.noted) else {
            return (!data.is_empty()).then(|| data.to_vec());
        };
        heard.after.extend_from_slice(data);
        let pass = match find(&heard.after, note) {
            Some(at) => {
                heard.noted = true;
                let mut all = std::mem::take(&mut heard.after);
                all.drain(at..at + note.len());
                all
            }
            None => {
                let keep = heard.after.len().min(note.len() - 1);
                let pass = heard.after.len() - keep;
                heard.after.drain(..pass).collect()
            }
        };
        (!pass.is_empty()).then_some(pass)
    }

    /// The command's stderr held back as a possible start of the note,
    /// once the stream has ended without it.
    pub fn flush(&self) -> Vec<u8> {
        std::mem::take(&mut self.heard().after)
    }

    /// The channel reported the exit status of what ran on it (in a
    /// shell: the status of the line).
    pub fn exited(&self, status: u32) {
        self.heard().exit_status = Some(status);
        self.ended();
    }

    /// The channel ended (or, in a shell, the line did).
    pub fn ended(&self) {
        self.stage.send_if_modified(|stage| {
            let ends = *stage != Stage::Started && *stage != Stage::Ended;
            if ends {
                *stage = Stage::Ended;
            }
            ends
        });
    }

    /// Wait (until `until`, or `cancel`) for sudo to start the command or
    /// to refuse; a refusal is the error [`verdict`] gives.
    pub async fn settle(&self, until: Instant, cancel: &CancellationToken) -> Result<(), Error> {
        let mut stage = self.stage.subscribe();
        loop {
            match *stage.borrow_and_update() {
                Stage::Started => return Ok(()),
                Stage::Ended => return self.refusal(),
                Stage::Waiting | Stage::Asked(_) => {}
            }
            tokio::select! {
                changed = stage.changed() => if changed.is_err() {
                    return Ok(());
                },
                () = tokio::time::sleep_until(until.into()) => return Err(self.not_started()),
                () = cancel.cancelled() => {
                    return Err(Error::new(
                        ErrorKind::Cancelled,
                        format!("exec on {} was cancelled while sudo started it", self.alias),
                    ));
                }
            }
        }
    }

    /// The error for a sudo that neither started the command nor refused
    /// in time.
    pub fn not_started(&self) -> Error {
        let after = if self.heard().answered > 0 {
            " after the password was sent"
        } else {
            ""
        };
        Error::new(
            ErrorKind::Timeout,
            format!(
                "sudo on {} did not start the command before timeout_secs ran out{after}; the \
                 command was stopped. A sudo that asks for something other than a password (a \
                 one-time code) cannot be answered",
                self.alias
            ),
        )
    }

    /// Why sudo did not start the command, once the channel ended with an
    /// exit status before the marker; `Ok` when it started the command or
    /// the channel ended without a status (the caller reports that).
    fn refusal(&self) -> Result<(), Error> {
        if self.stage() == Stage::Started {
            return Ok(());
        }
        let mut heard = self.heard();
        let Some(status) = heard.exit_status else {
            return Ok(());
        };
        if let Some(error) = heard.no_password.take() {
            return Err(error);
        }
        let mut said = String::from_utf8_lossy(&heard.text).into_owned();
        if let Some(prompt) = &self.prompt {
            said = said.replace(&*String::from_utf8_lossy(prompt), "\n");
        }
        let said: Vec<&str> = said
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let said = cut(&said.join("; "), 600);
        let has = |text: &str| said.contains(text);
        let alias = &self.alias;
        let whom = self.user.as_deref().unwrap_or("root");
        let error = if has("a password is required") {
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "sudo on {alias} needs a password and the daemon has none for it; the \
                     command did not run. Give the daemon a command that prints the password, \
                     in its config: [sudo.hosts.\"{alias}\"] password_command = \"pass show \
                     hosts/{alias}\" (then `sshmcpctl reload`), or allow the command without a \
                     password (NOPASSWD) in the host's sudoers"
                ),
            )
        } else if has("not in the sudoers file")
            || has("is not allowed to execute")
            || has("may not run sudo")
        {
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "sudo on {alias} does not let this login run the command as {whom}; the \
                     command did not run (sudo said: {said}). Allow it in the host's sudoers, or \
                     use another sudo_user"
                ),
            )
        } else if let Some(id) = heard.sent.filter(|_| {
            heard.asked > heard.answered || has("incorrect password") || has("try again")
        }) {
            let key = self.source.as_ref().map_or("", |s| s.key.as_str());
            if let Some(source) = &self.source {
                source.passwords.forget(alias, id);
            }
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "sudo on {alias} refused the password from [sudo.hosts.\"{key}\"] \
                     password_command as wrong; the command did not run. Fix the password \
                     command (the daemon dropped the password it had kept, so the next call \
                     runs the command again)"
                ),
            )
        } else if status == 127 {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "sudo is not installed on {alias} (or not on the login's PATH); the command \
                     did not run ({said})"
                ),
            )
        } else {
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "sudo on {alias} failed before starting the command (exit status {status}); \
                     the command did not run. sudo said: {}",
                    if said.is_empty() { "nothing" } else { &said }
                ),
            )
        };
        Err(error)
    }
}

/// Read the next channel message, passed through `sudo` when there is a
/// conversation: sudo's stderr is held back, and the exit status and the
/// channel's end are noted. Cancel-safe, like `ChannelReadHalf::wait`.
pub async fn receive(
    sudo: Option<&Conversation>,
    reader: &mut russh::ChannelReadHalf,
) -> Option<ChannelMsg> {
    let Some(sudo) = sudo else {
        return reader.wait().await;
    };
    loop {
        let msg = reader.wait().await;
        match msg {
            Some(ChannelMsg::ExtendedData { data, ext: 1 }) if sudo.stage() != Stage::Started => {
                if let Some(rest) = sudo.stderr(&data) {
                    return Some(ChannelMsg::ExtendedData {
                        data: rest.into(),
                        ext: 1,
                    });
                }
            }
            Some(ChannelMsg::ExitStatus { exit_status }) => {
                sudo.exited(exit_status);
                return msg;
            }
            Some(ChannelMsg::ExitSignal { .. } | ChannelMsg::Close) | None => {
                sudo.ended();
                return msg;
            }
            _ => return msg,
        }
    }
}

/// Feed a command's stdin on its channel, then EOF; with `sudo`, the
/// password when sudo asks and the command's own stdin only once sudo
/// has started it (see the module's documentation).
pub async fn feed(
    sudo: Option<&Conversation>,
    writer: &russh::ChannelWriteHalf<Msg>,
    stdin: &[u8],
) -> Result<(), russh::Error> {
    if let Some(sudo) = sudo {
        loop {
            match sudo.next_input().await {
                Input::Password(line) => writer.data(&line[..]).await?,
                Input::Go => break,
                Input::Stop => return writer.eof().await,
            }
        }
    }
    if !stdin.is_empty() {
        writer.data(stdin).await?;
    }
    writer.eof().await
}

/// After the channel ended: the error when sudo did not start the command.
pub fn verdict(sudo: Option<&Conversation>) -> Result<(), Error> {
    sudo.map_or(Ok(()), Conversation::refusal)
}

/// What sudo runs first, as `sh -c START sh RELAY COMMAND`: print the
/// marker, then become the relay, under `setpriv --pdeathsig USR1` where
/// util-linux has it, so that the relay hears when sudo dies.
const START: &str = "printf \"sshmcp-sudo-%s:%s\\n\" started NONCE >&2; \
    if setpriv --pdeathsig USR1 true 2>/dev/null; then \
    exec setpriv --pdeathsig USR1 sh -c \"$1\" sh \"$2\"; fi; exec sh -c \"$1\" sh \"$2\"";

/// The relay, the process sudo runs and signals. sudo passes a signal on
/// to its own child only, and the login cannot signal what runs as another
/// user, so without it a command's other processes would outlive a
/// timeout, and one that ignores TERM the KILL after it. The relay starts
/// the command in a session of its own (`setsid`, where there is one) with
/// the caller's stdin and, where `env --default-signal` exists, INT and
/// QUIT at their defaults (a command started with `&` has them ignored);
/// it passes HUP, INT and TERM on to the command's whole process group,
/// and turns USR1 (sudo died, as it does of the KILL that follows a
/// timeout's TERM) into KILL. It ends as the command did: with its exit
/// status, or of the signal it passed on, which sudo then reports.
const RELAY: &str = "c=; s=; g=; r=0; \
    fwd() { s=$1; [ -z \"$c\" ] && return; \
    if [ -n \"$g\" ]; then kill -s \"$1\" -- -\"$c\"; else kill -s \"$1\" \"$c\"; fi 2>/dev/null; }; \
    trap 'fwd HUP' HUP; trap 'fwd INT' INT; trap 'fwd TERM' TERM; trap 'fwd KILL' USR1; \
    exec 3<&0; d=; env --default-signal=INT,QUIT true 2>/dev/null && d='env --default-signal=INT,QUIT'; \
    if command -v setsid >/dev/null; then g=1; $d setsid sh -c \"$1\" <&3 3<&- & \
    else $d sh -c \"$1\" <&3 3<&- & fi; \
    c=$!; exec 3<&-; [ -n \"$s\" ] && fwd \"$s\"; \
    while kill -0 \"$c\" 2>/dev/null; do wait \"$c\"; r=$?; done; \
    if [ -n \"$s\" ] && [ \"$r\" -gt 128 ]; then trap - \"$s\" 2>/dev/null; kill -s \"$s\" $$; fi; \
    exit \"$r\"";

/// `exec sudo [-n | -S -p PROMPT] [-u USER] -- sh -c START sh RELAY
/// COMMAND`, for the login's shell to run. The login's shell gives way to
/// sudo, so that sudo is the process sshd signals and waits for: a shell
/// left in between would die of a timeout's TERM, sshd would close the
/// channel, and the KILL that should follow would never be sent.
fn command_line(command: &str, user: Option<&str>, nonce: &str, asks: bool) -> String {
    format!(
        "exec {}",
        sudo_words(command, user, nonce, asks, &START.replace("NONCE", nonce))
    )
}

/// The line typed into a persistent shell. Its parts are subshells, so
/// the shell's state is as it was after it, and each starts with `set
/// +aeux`: no trace (`-x`) shows a word of it expanded, `-e` cannot skip
/// the note, and nothing read is exported. Without a password command it
/// is `( set +aeux; exec sudo -n ... )`, reading nothing. With one:
///
/// ```text
/// ( set +aeux; IFS=; read -r p; case $p in ?*) printf '%s\n' "$p";; esac ) |
/// ( set +aeux; trap : INT TERM; sudo -S -p PROMPT ...; s=$?;
///   printf NOTE >&2; exit "$s" )
/// ```
///
/// The reader takes one line of the shell's input (`read` takes a pipe's
/// bytes one at a time, never past the line) and passes it to sudo's
/// stdin if it is not empty (`printf` is a builtin: the password is in no
/// command line), then ends, so sudo sees end of input after it and a
/// wrong password is one attempt. The other part waits for sudo, however
/// an INT or TERM meant for the command ends (so the shell does not go
/// on while the command runs), then prints the note. `START` first makes
/// `/dev/null` the command's stdin, as for any command in a shell. The
/// prompt is written in two quoted pieces, so a shell tracing or echoing
/// its input (`set -x`, `set -v`) never writes it whole, and `sudo` and
/// the shell's words go through `command`, past functions of their names.
fn shell_line(command: &str, user: Option<&str>, nonce: &str, asks: bool) -> String {
    let start = format!("exec </dev/null; {}", START.replace("NONCE", nonce));
    let sudo = sudo_words(command, user, nonce, asks, &start);
    if !asks {
        return format!("( \\command set +aeux; \\exec {sudo} )");
    }
    format!(
        "( \\command set +aeux; IFS=; \\command read -r p; \
         case $p in ?*) \\command printf '%s\\n' \"$p\";; esac ) | \
         ( \\command set +aeux; \\command trap : INT TERM; \\command {sudo}; s=$?; \
         \\command printf 'sshmcp-sudo-%s:%s\\n' ended {nonce} >&2; \\command exit \"$s\" )"
    )
}

/// `sudo [-n | -S -p PROMPT] [-u USER] -- sh -c START sh RELAY COMMAND`.
fn sudo_words(command: &str, user: Option<&str>, nonce: &str, asks: bool, start: &str) -> String {
    let mut words = String::from("sudo");
    if asks {
        // The prompt in two quoted pieces: one word to sudo, never whole
        // in the line itself.
        words.push_str(" -S -p ");
        words.push_str(&quote("[sshmcp-sudo-pass"));
        words.push_str(&quote(&format!("word:{nonce}]")));
    } else {
        words.push_str(" -n");
    }
    if let Some(user) = user {
        words.push_str(" -u ");
        words.push_str(&quote(user));
    }
    words.push_str(" -- sh -c ");
    words.push_str(&quote(start));
    words.push_str(" sh ");
    words.push_str(&quote(RELAY));
    words.push(' ');
    words.push_str(&quote(command));
    words
}

/// 16 bytes from the OS's CSPRNG, in hex.
fn nonce() -> Result<String, Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("the OS gave no random bytes: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A conversation for `echo 'hi'` run in `place`, with a password
    /// command when `asks`.
    fn conversation_in(place: Place, asks: bool) -> Conversation {
        let source = asks.then(|| Source {
            passwords: Arc::default(),
            key: "web1".into(),
            command: "printf 'pw\\n'".into(),
            cache_secs: 0,
        });
        Conversation::new("web1", "echo 'hi'", None, source, place).unwrap()
    }

    fn conversation(asks: bool) -> Conversation {
        conversation_in(Place::Login, asks)
    }

    fn prompt(c: &Conversation) -> Vec<u8> {
        c.prompt.clone().unwrap()
    }

    #[test]
    fn the_command_line_quotes_the_command_and_the_user() {
        let line = command_line("echo 'a b'", Some("postgres"), "abc", false);
        assert!(
            line.starts_with("exec sudo -n -u 'postgres' -- sh -c 'printf "),
            "{line}"
        );
        assert!(line.contains(" started abc >&2; "), "{line}");
        assert!(line.ends_with(r" 'echo '\''a b'\'''"), "{line}");
        let line = command_line("id", None, "abc", true);
        assert!(
            line.starts_with("exec sudo -S -p '[sshmcp-sudo-pass''word:abc]' -- sh -c "),
            "{line}"
        );
    }

    fn in_shell(asks: bool) -> Conversation {
        conversation_in(Place::Shell, asks)
    }

    #[test]
    fn a_shell_line_leaves_the_shell_as_it_was_and_writes_no_marker_whole() {
        let c = in_shell(true);
        let line = c.line();
        assert!(
            line.starts_with("( \\command set +aeux; IFS=; \\command read -r p;"),
            "{line}"
        );
        assert!(
            line.contains(
                ") | ( \\command set +aeux; \\command trap : INT TERM; \\command sudo -S -p "
            ),
            "{line}"
        );
        assert!(line.ends_with(" \\command exit \"$s\" )"), "{line}");
        assert!(
            !line.contains("exec sudo"),
            "the shell must outlive sudo: {line}"
        );
        for printed in [prompt(&c), c.marker.clone(), c.note.clone().unwrap()] {
            let printed = String::from_utf8(printed).unwrap();
            assert!(!line.contains(printed.trim_end()), "{printed} in {line}");
        }
        assert!(c.takes_a_line());
        let c = in_shell(false);
        assert!(
            c.line()
                .starts_with("( \\command set +aeux; \\exec sudo -n -- sh -c 'exec </dev/null; "),
            "{}",
            c.line()
        );
        assert!(!c.takes_a_line());
    }

    #[test]
    fn in_a_shell_the_note_after_the_command_is_cut_from_its_stderr() {
        let c = in_shell(true);
        let note = c.note.clone().unwrap();
        let mut got = Vec::new();
        let mut take = |data: &[u8]| got.extend(c.stderr(data).unwrap_or_default());
        let mut chunk = c.marker.clone();
        chunk.extend_from_slice(b"err 1\n");
        take(&chunk);
        // The note split across chunks, with output on both sides.
        let (a, b) = note.split_at(9);
        let mut first = b"err 2\n".to_vec();
        first.extend_from_slice(a);
        take(&first);
        let mut second = b.to_vec();
        second.extend_from_slice(b"\n");
        take(&second);
        got.extend(c.flush());
        assert_eq!(got, b"err 1\nerr 2\n\n");
        // Once it has passed, a note-like text is output.
        assert_eq!(c.stderr(&note), Some(note.clone()));
        assert_eq!(verdict(Some(&c)), Ok(()));
    }

    #[test]
    fn in_a_shell_bytes_held_as_a_possible_note_are_output_at_the_end() {
        let c = in_shell(true);
        let note = c.note.clone().unwrap();
        c.stderr(&c.marker.clone());
        let mut got = c.stderr(b"half a note: ").unwrap_or_default();
        got.extend(c.stderr(&note[..note.len() - 2]).unwrap_or_default());
        got.extend(c.flush());
        let mut expected = b"half a note: ".to_vec();
        expected.extend_from_slice(&note[..note.len() - 2]);
        assert_eq!(got, expected);
    }

    #[tokio::test]
    async fn in_a_shell_the_note_without_the_marker_ends_the_exchange() {
        let c = in_shell(true);
        let mut said = b"sh: 1: sudo: not found\n".to_vec();
        said.extend(c.note.clone().unwrap());
        said.extend_from_slice(b"\n");
        assert_eq!(c.stderr(&said), None);
        assert!(matches!(c.next_input().await, Input::Stop));
        c.exited(127);
        let err = verdict(Some(&c)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::NotFound, "{}", err.message);
        assert!(
            !err.message.contains("sshmcp-sudo-ended"),
            "{}",
            err.message
        );
    }

    #[test]
    fn the_marker_is_not_in_the_command_line() {
        let c = conversation(true);
        let marker = String::from_utf8(c.marker.clone()).unwrap();
        assert!(!c.line().contains(marker.trim_end()), "{}", c.line());
    }

    #[test]
    fn stderr_before_the_marker_is_sudos_and_after_it_the_commands() {
        let c = conversation(true);
        let mut first = prompt(&c);
        first.extend_from_slice(b"lecture\n");
        assert_eq!(c.stderr(&first), None);
        assert_eq!(c.stage(), Stage::Asked(1));
        // The marker split across chunks, the command's output behind it.
        let marker = c.marker.clone();
        let (a, b) = marker.split_at(5);
        assert_eq!(c.stderr(a), None);
        let mut rest = b.to_vec();
        rest.extend_from_slice(b"oops\n");
        assert_eq!(c.stderr(&rest), Some(b"oops\n".to_vec()));
        assert_eq!(c.stage(), Stage::Started);
        // Once started, a prompt-like text is the command's own.
        assert_eq!(c.stderr(&prompt(&c)), Some(prompt(&c)));
        assert_eq!(verdict(Some(&c)), Ok(()));
    }

    #[test]
    fn a_password_required_without_the_marker_names_the_config_to_add() {
        let c = conversation(false);
        assert_eq!(c.stderr(b"sudo: a password is required\n"), None);
        c.exited(1);
        let err = verdict(Some(&c)).unwrap_err();
        assert_eq!(err.kind, ErrorKind::PermissionDenied);
        assert!(
            err.message
                .contains("[sudo.hosts.\"web1\"] password_command"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_second_prompt_after_the_password_is_a_wrong_password() {
        let c = conversation(true);
        c.stderr(&prompt(&c));
        {
            let mut heard = c.heard();
            heard.answered = 1;
            heard.sent = Some(7);
        }
        let mut again = b"Sorry, try again.\n".to_vec();
        again.extend(prompt(&c));
        again.extend_from_slice(b"sudo: 1 incorrect password attempt\n");
        assert_eq!(c.stderr(&again), None);
        c.exited(1);
        let err = verdict(Some(&c)).unwrap_err();
        assert!(
            err.message.contains("refused the password"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("pw"), "{}", err.message);
    }

    #[test]
    fn a_channel_lost_before_the_marker_is_left_to_the_caller() {
        let c = conversation(false);
        c.ended();
        assert_eq!(verdict(Some(&c)), Ok(()));
    }

    #[tokio::test]
    async fn the_password_goes_only_after_the_prompt_and_stdin_after_the_marker() {
        let c = conversation(true);
        let next = c.next_input();
        tokio::pin!(next);
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut next)
                .await
                .is_err(),
            "nothing is written before sudo asks"
        );
        c.stderr(&prompt(&c));
        match next.await {
            Input::Password(line) => assert_eq!(&line[..], b"pw\n"),
            _ => panic!("the password comes when asked"),
        }
        let marker = c.marker.clone();
        c.stderr(&marker);
        assert!(matches!(c.next_input().await, Input::Go));
    }

    #[tokio::test]
    async fn concurrent_callers_run_the_password_command_once() {
        let dir = tempfile::tempdir().unwrap();
        let count = dir.path().join("count");
        let passwords = Arc::new(Passwords::default());
        let source = Source {
            passwords: passwords.clone(),
            key: "web1".into(),
            command: format!("echo x >> '{}'; printf 'pw\\n'", count.display()),
            cache_secs: 60,
        };
        let gets = (0..8).map(|_| passwords.get("web1", &source));
        for got in futures_util::future::join_all(gets).await {
            assert_eq!(&got.unwrap().0[..], b"pw");
        }
        assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n");
    }

    #[tokio::test]
    async fn a_failing_password_command_says_so_without_its_output() {
        let passwords = Arc::new(Passwords::default());
        let source = Source {
            passwords: passwords.clone(),
            key: "web*".into(),
            command: "echo secret-ish >&2; printf 'partial'; exit 3".into(),
            cache_secs: 60,
        };
        let err = passwords.get("web1", &source).await.unwrap_err();
        assert!(
            err.message.contains("[sudo.hosts.\"web*\"]"),
            "{}",
            err.message
        );
        assert!(err.message.contains("exit status: 3"), "{}", err.message);
        assert!(!err.message.contains("secret-ish") && !err.message.contains("partial"));
    }
}
