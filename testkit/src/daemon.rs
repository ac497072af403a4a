//! The `sshmcpd` binary, launched the way a user or systemd launches it.

use std::env;
use std::fs::{self, DirBuilder, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::exit_cleanup::KitDir;
use crate::fleet::Fleet;
use crate::process::{OwnedChild, tail};
use crate::sync::lock;
use crate::wait::Backoff;

/// How long the daemon may take to accept connections, or to exit on
/// SIGTERM.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(10);

/// The path of a workspace binary (`sshmcpd`, `sshmcp`, `sshmcpctl`) built
/// alongside the running test or bench executable.
///
/// Test executables live in `target/<profile>/deps/`, binaries in
/// `target/<profile>/`. Cargo only builds a package's own binaries for its
/// tests, so the others need a `cargo build --workspace` first.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = env::current_exe().expect("the running executable has a path");
    let mut dir = exe
        .parent()
        .expect("the running executable is in a directory")
        .to_path_buf();
    if matches!(
        dir.file_name().and_then(|n| n.to_str()),
        Some("deps" | "examples")
    ) {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: run `cargo build --workspace` first",
        path.display()
    );
    path
}

/// How to launch the daemon beyond its config: as systemd would, with
/// extra environment (`NOTIFY_SOCKET`, `WATCHDOG_USEC`, ...) and
/// optionally a listening socket handed over at fd 3 (socket activation).
#[derive(Debug, Default)]
pub struct DaemonOptions {
    /// Extra environment for the daemon process.
    pub env: Vec<(String, String)>,
    /// A listener passed as fd 3 with `LISTEN_FDS=1` and `LISTEN_PID` set
    /// to the daemon's own pid, as systemd's socket activation does. The
    /// daemon's socket is then this listener's path. Only the first start
    /// gets it; [`Daemon::restart`] binds normally.
    pub listener: Option<std::os::unix::net::UnixListener>,
    /// The daemon's `RLIMIT_NOFILE` as `(soft, hard)`, as `ulimit -n` or
    /// systemd's `LimitNOFILE` would set it; `None` inherits the test's.
    pub nofile: Option<(u64, u64)>,
}

/// A running `sshmcpd` with its own config, socket and log in a temporary
/// directory, killed when dropped.
///
/// It exists so that tests drive the real binary through its real socket:
/// start-up, config parsing, signals and restarts included. The child gets
/// no `SSH_AUTH_SOCK` (tests must not depend on the developer's agent),
/// `RUST_LOG=sshmcpd=debug` (or `$SSHMCP_TEST_DAEMON_LOG`, which benchmarks
/// set to `sshmcpd=info` so logging does not weigh on timings), and `XDG_RUNTIME_DIR` inside its directory.
#[derive(Debug)]
pub struct Daemon {
    options: DaemonOptions,
    config_path: PathBuf,
    socket: PathBuf,
    log_path: PathBuf,
    runtime_dir: PathBuf,
    process: Mutex<OwnedChild>,
    dir: KitDir,
}

impl Daemon {
    /// Starts the daemon for `fleet` and waits (at most 10 s) until its
    /// socket accepts connections. The config file is
    ///
    /// ```toml
    /// [daemon]
    /// socket = "<dir>/sock/sshmcpd.sock"
    /// [ssh]
    /// config = "<fleet's ssh_config>"
    /// ```
    ///
    /// followed by `extra_toml` (more tables, such as `[pool]`). If
    /// `extra_toml` has its own `[daemon]` or `[ssh]` table, the two keys
    /// above go into it instead, so that no table is declared twice.
    pub fn start(fleet: &Fleet, extra_toml: &str) -> Daemon {
        Daemon::start_with(fleet, extra_toml, DaemonOptions::default())
    }

    /// [`Daemon::start`] with [`DaemonOptions`]. With a listener, the
    /// daemon is waited for on the listener's path.
    pub fn start_with(fleet: &Fleet, extra_toml: &str, mut options: DaemonOptions) -> Daemon {
        let dir = KitDir::new("sshmcp-daemon-");
        let socket = dir.join("sock").join("sshmcpd.sock");
        let config = compose_config(&socket, fleet.ssh_config_path(), extra_toml);
        let wait_on = match &options.listener {
            Some(listener) => listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(Path::to_path_buf))
                .expect("the inherited listener is bound to a path"),
            None => socket,
        };
        let listener = options.listener.take();
        Daemon::launch(dir, &config, wait_on, options, listener)
    }

    /// Starts the daemon with exactly `full_toml` as its config file, for
    /// tests that need full control. The socket is the one named by
    /// `socket = "…"` in its `[daemon]` table; without one, the daemon's
    /// default under `XDG_RUNTIME_DIR`, which the kit points into the
    /// daemon's temporary directory.
    pub fn start_with_config_text(full_toml: &str) -> Daemon {
        let dir = KitDir::new("sshmcp-daemon-");
        let socket = configured_socket(full_toml)
            .unwrap_or_else(|| dir.join("runtime").join("sshmcp").join("sshmcpd.sock"));
        Daemon::launch(dir, full_toml, socket, DaemonOptions::default(), None)
    }

    fn launch(
        dir: KitDir,
        config: &str,
        socket: PathBuf,
        options: DaemonOptions,
        listener: Option<std::os::unix::net::UnixListener>,
    ) -> Daemon {
        let config_path = dir.join("daemon.toml");
        fs::write(&config_path, config)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config_path.display()));
        let runtime_dir = dir.join("runtime");
        DirBuilder::new()
            .mode(0o700)
            .create(&runtime_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", runtime_dir.display()));
        let log_path = dir.join("sshmcpd.log");
        let process = spawn(
            &config_path,
            &runtime_dir,
            &log_path,
            &options,
            listener.as_ref(),
        );
        // The child has its own copy now.
        drop(listener);
        let daemon = Daemon {
            process: Mutex::new(process),
            options,
            config_path,
            socket,
            log_path,
            runtime_dir,
            dir,
        };
        daemon.wait_ready();
        daemon
    }

    /// The daemon's Unix socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's process id (of the latest start).
    pub fn pid(&self) -> u32 {
        lock(&self.process).pid()
    }

    /// The daemon's stdout and stderr so far, across restarts.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// The config file the daemon was started with.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The daemon's temporary directory (config, log, socket directory).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the daemon process is still running.
    pub fn is_running(&self) -> bool {
        lock(&self.process).is_running()
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the daemon if it runs.
    pub fn signal(&self, signal: libc::c_int) {
        lock(&self.process).signal(signal);
    }

    /// Waits (at most `timeout`) for the daemon to exit by itself; its
    /// exit status, or `None` if it still runs.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        lock(&self.process).wait_until(Instant::now() + timeout)
    }

    /// Kills the daemon with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&self) -> ExitStatus {
        lock(&self.process).kill()
    }

    /// Sends SIGTERM, as systemd does on stop, and waits (at most 10 s) for
    /// the daemon to exit; returns its exit status.
    pub fn terminate(&self) -> ExitStatus {
        let mut process = lock(&self.process);
        process.signal(libc::SIGTERM);
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        match process.wait_until(deadline) {
            Some(status) => status,
            None => {
                drop(process);
                panic!(
                    "sshmcpd did not exit within {DAEMON_TIMEOUT:?} of SIGTERM; log tail:\n{}",
                    tail(&self.log())
                )
            }
        }
    }

    /// Starts the daemon again with the same config and socket, after
    /// stopping it with SIGTERM if it still runs, and waits until it accepts
    /// connections.
    pub fn restart(&self) {
        if self.is_running() {
            self.terminate();
        }
        *lock(&self.process) = spawn(
            &self.config_path,
            &self.runtime_dir,
            &self.log_path,
            &self.options,
            None,
        );
        self.wait_ready();
    }

    /// Waits until the socket accepts a connection; panics with the log if
    /// the daemon exits or takes longer than 10 s.
    fn wait_ready(&self) {
        let deadline = Instant::now() + DAEMON_TIMEOUT;
        let mut backoff = Backoff::new(Duration::from_millis(20));
        loop {
            if let Some(status) = lock(&self.process).status() {
                panic!(
                    "sshmcpd exited while starting ({status}); config {}; log tail:\n{}",
                    self.config_path.display(),
                    tail(&self.log())
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "sshmcpd did not accept connections on {} within {DAEMON_TIMEOUT:?}; log tail:\n{}",
                    self.socket.display(),
                    tail(&self.log())
                );
            }
            backoff.sleep();
        }
    }
}

fn spawn(
    config_path: &Path,
    runtime_dir: &Path,
    log_path: &Path,
    options: &DaemonOptions,
    listener: Option<&std::os::unix::net::UnixListener>,
) -> OwnedChild {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
    let log_for_stdout = log
        .try_clone()
        .unwrap_or_else(|e| panic!("cannot duplicate {}: {e}", log_path.display()));
    let mut command = match listener {
        // LISTEN_PID must be the daemon's own pid, which only the child
        // knows: a shell sets it to its `$$` and execs the daemon in place.
        Some(listener) => {
            let fd = listener.as_raw_fd();
            let mut command = Command::new("/bin/sh");
            command
                .arg("-c")
                .arg("LISTEN_PID=$$ LISTEN_FDS=1 exec \"$0\" \"$@\"")
                .arg(bin_path("sshmcpd"));
            // SAFETY: dup2 and fcntl are async-signal-safe; they put the
            // listener at fd 3 without close-on-exec, as systemd passes it.
            unsafe {
                command.pre_exec(move || {
                    if fd == 3 {
                        let flags = libc::fcntl(3, libc::F_GETFD);
                        if flags < 0 || libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0
                        {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(fd, 3) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            command
        }
        None => Command::new(bin_path("sshmcpd")),
    };
    for (key, value) in &options.env {
        command.env(key, value);
    }
    if let Some((soft, hard)) = options.nofile {
        let limit = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit is async-signal-safe and reads only `limit`,
        // a copy owned by the closure.
        unsafe {
            command.pre_exec(move || {
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    OwnedChild::spawn(
        command
            .arg("--config")
            .arg(config_path)
            .env_remove("SSH_AUTH_SOCK")
            .env_remove("SSHMCP_SOCKET")
            .env(
                "RUST_LOG",
                std::env::var("SSHMCP_TEST_DAEMON_LOG").unwrap_or_else(|_| "sshmcpd=debug".into()),
            )
            .env("XDG_RUNTIME_DIR", runtime_dir)
            // Its state (detached jobs' records) stays with this daemon,
            // and survives its restarts.
            .env_remove("STATE_DIRECTORY")
            .env(
                "XDG_STATE_HOME",
                runtime_dir.parent().unwrap_or(runtime_dir).join("state"),
            )
            .stdin(Stdio::null())
            .stdout(log_for_stdout)
            .stderr(log),
    )
}

/// The daemon config for [`Daemon::start`]: the socket and the fleet's
/// ssh_config, merged into `extra`'s own `[daemon]` / `[ssh]` tables if it
/// has them.
fn compose_config(socket: &Path, ssh_config: &Path, extra: &str) -> String {
    let socket_line = format!("socket = {}", toml_string(&socket.to_string_lossy()));
    let ssh_line = format!("config = {}", toml_string(&ssh_config.to_string_lossy()));
    let mut head = String::new();
    let mut body: Vec<String> = extra.lines().map(str::to_owned).collect();
    for (table, line) in [("daemon", socket_line), ("ssh", ssh_line)] {
        match body.iter().position(|l| table_header(l) == Some(table)) {
            Some(at) => body.insert(at + 1, line),
            None => head.push_str(&format!("[{table}]\n{line}\n\n")),
        }
    }
    head + &body.join("\n") + "\n"
}

/// The name of the table a `[name]` header line opens.
fn table_header(line: &str) -> Option<&str> {
    let line = line.split('#').next().unwrap_or("").trim();
    let name = line.strip_prefix('[')?.strip_suffix(']')?;
    (!name.starts_with('[')).then(|| name.trim())
}

/// The `socket` key of the `[daemon]` table, if it is a plain string.
fn configured_socket(toml: &str) -> Option<PathBuf> {
    let mut table = None;
    for line in toml.lines() {
        if let Some(name) = table_header(line) {
            table = Some(name.to_owned());
            continue;
        }
        if table.as_deref() != Some("daemon") {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if key.trim() == "socket" {
            return parse_toml_string(value.trim()).map(PathBuf::from);
        }
    }
    None
}

/// A TOML basic string holding `text`.
fn toml_string(text: &str) -> String {
    let mut quoted = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => quoted.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

/// Reads a one-line TOML basic (`"…"`) or literal (`'…'`) string, with the
/// common escapes; anything fancier is not a path a test would use.
fn parse_toml_string(value: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix('\'') {
        return rest.split_once('\'').map(|(text, _)| text.to_owned());
    }
    let mut chars = value.strip_prefix('"')?.chars();
    let mut text = String::new();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Some(text),
            '\\' => match chars.next()? {
                'n' => text.push('\n'),
                't' => text.push('\t'),
                other => text.push(other),
            },
            c => text.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kit_keys_join_tables_the_extra_toml_declares() {
        let config = compose_config(
            Path::new("/t/sock/sshmcpd.sock"),
            Path::new("/t/ssh_config"),
            "[daemon]\nmax_frame = 1024\n\n[pool]\nmax_per_host = 2",
        );
        assert_eq!(
            config,
            "[ssh]\nconfig = \"/t/ssh_config\"\n\n\
             [daemon]\nsocket = \"/t/sock/sshmcpd.sock\"\nmax_frame = 1024\n\n\
             [pool]\nmax_per_host = 2\n"
        );
        assert_eq!(
            configured_socket(&config),
            Some(PathBuf::from("/t/sock/sshmcpd.sock"))
        );
    }

    #[test]
    fn socket_is_found_only_in_the_daemon_table() {
        assert_eq!(configured_socket("[metrics]\nsocket = \"/x\"\n"), None);
        assert_eq!(
            configured_socket("[daemon] # main\nsocket = 'C:\\x'\n"),
            Some(PathBuf::from("C:\\x"))
        );
        assert_eq!(
            configured_socket("[daemon]\n socket = \"/a\\\"b\" # c\n"),
            Some(PathBuf::from("/a\"b"))
        );
    }
}
