//! One real OpenSSH server on a loopback address.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, DirBuilder, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::io::{Read, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::exit_cleanup::KitDir;
use crate::key::generate_ed25519;
use crate::process::{self, OwnedChild, output_within, tail};
use crate::sync::lock;
use crate::user::{TestUser, test_user};
use crate::wait::{Backoff, free_port};

const SSHD: &str = "/usr/sbin/sshd";
const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";
const PRIVSEP_DIR: &str = "/run/sshd";
/// How long sshd may take to answer with its banner after being started.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How to start an [`SshServer`]. `SshServerOptions::default()` is what most
/// tests want.
#[derive(Debug, Clone, Default)]
pub struct SshServerOptions {
    /// Address to listen on. `None` takes an address 127.0.0.x (x in
    /// 2..=250) that no other server of this process uses, so that every
    /// server is a distinct "host" in known_hosts and in the logs.
    pub listen_addr: Option<IpAddr>,
    /// Port to listen on. `None` picks a free one (and picks again if another
    /// process grabs it before sshd binds it).
    pub port: Option<u16>,
    /// `MaxSessions`: session channels per connection (sshd's default: 10).
    pub max_sessions: Option<u32>,
    /// `MaxStartups`; `None` leaves sshd's default (10:30:100), as users
    /// run it. Tests that open dozens of cold connections to one server at
    /// once (a limit test) raise it.
    pub max_startups: Option<String>,
    /// More sshd_config lines. They come before the kit's own lines, so they
    /// override them (sshd keeps the first value of a keyword; a
    /// `Subsystem sftp` line here replaces the kit's, which sshd would
    /// otherwise refuse as a duplicate); lines from the first `Match` on go
    /// at the end, where sshd needs them.
    pub extra_config: Vec<String>,
}

/// A real `sshd` on loopback with a throwaway host key, accepting key logins
/// for [`test_user`], killed when dropped.
///
/// It exists so that tests exercise the product against the SSH server users
/// actually run, including its limits (`MaxSessions`, `MaxStartups`), its
/// restarts and a changed host key. All methods take `&self`, so a server in
/// a shared [`Fleet`](crate::Fleet) can be restarted from any test thread.
#[derive(Debug)]
pub struct SshServer {
    addr: IpAddr,
    port: u16,
    user: &'static TestUser,
    options: SshServerOptions,
    config_path: PathBuf,
    log_path: PathBuf,
    authorized_keys_path: PathBuf,
    state: Mutex<ServerState>,
    _lease: Option<AddrLease>,
    dir: KitDir,
}

#[derive(Debug)]
struct ServerState {
    process: Option<OwnedChild>,
    host_key: HostKey,
    host_key_generation: u32,
}

#[derive(Debug, Clone)]
struct HostKey {
    path: PathBuf,
    public: String,
}

/// sshd could not bind its port: someone else took it.
struct AddressInUse;

impl SshServer {
    /// Starts sshd and waits (at most 10 s) until it answers with an
    /// `SSH-2.0-` banner.
    pub fn start(options: SshServerOptions) -> SshServer {
        ensure_privsep_dir();
        let (addr, lease) = match options.listen_addr {
            Some(addr) => (addr, None),
            None => {
                let lease = AddrLease::take();
                (lease.addr(), Some(lease))
            }
        };
        let dir = KitDir::new("sshmcp-sshd-");
        // sshd reads authorized_keys as the test user: let it in.
        fs::set_permissions(&*dir, fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", dir.display()));
        let authorized_keys_path = dir.join("authorized_keys");
        write_file(&authorized_keys_path, "", 0o644);
        let log_path = dir.join("sshd.log");
        write_file(&log_path, "", 0o600);
        let host_key = new_host_key(&dir, 0);
        let mut server = SshServer {
            addr,
            port: 0,
            user: test_user(),
            options,
            config_path: dir.join("sshd_config"),
            log_path,
            authorized_keys_path,
            state: Mutex::new(ServerState {
                process: None,
                host_key: host_key.clone(),
                host_key_generation: 0,
            }),
            _lease: lease,
            dir,
        };
        let fixed_port = server.options.port;
        let (port, child) =
            server.launch_retrying(|| fixed_port.unwrap_or_else(|| free_port(addr)), &host_key);
        server.port = port;
        lock(&server.state).process = Some(child);
        server
    }

    /// The address sshd listens on.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The port sshd listens on; it stays the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Address and port together.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// The current host public key: `ssh-ed25519 AAAA…`.
    pub fn host_key_public(&self) -> String {
        lock(&self.state).host_key.public.clone()
    }

    /// The known_hosts line for the current host key:
    /// `[127.0.0.x]:PORT ssh-ed25519 AAAA…`.
    pub fn known_hosts_line(&self) -> String {
        format!("[{}]:{} {}", self.addr, self.port, self.host_key_public())
    }

    /// Accepts logins with `public_line` (an authorized_keys line) from now
    /// on, without a restart.
    pub fn authorize(&self, public_line: &str) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.authorized_keys_path.display()));
        writeln!(file, "{}", public_line.trim()).unwrap_or_else(|e| {
            panic!("cannot write {}: {e}", self.authorized_keys_path.display())
        });
    }

    /// Stops the server as if the host went down: sshd and every connection
    /// it serves (with the remote processes they run) are killed at once.
    pub fn stop(&self) {
        self.kill(&mut lock(&self.state));
    }

    /// Starts the server again (stopping it first if it runs) with the same
    /// address, port and host key, and waits for its banner.
    pub fn restart(&self) {
        let mut state = lock(&self.state);
        self.kill(&mut state);
        let host_key = state.host_key.clone();
        state.process = Some(self.relaunch(&host_key));
    }

    /// Restarts the server on the same address and port with a NEW host key,
    /// as after a reinstall (or an attack): clients that know the old key must
    /// refuse it. Returns the new public key. known_hosts files written
    /// earlier (e.g. the fleet's) are left alone.
    pub fn restart_with_new_host_key(&self) -> String {
        let mut state = lock(&self.state);
        self.kill(&mut state);
        state.host_key_generation += 1;
        let host_key = new_host_key(&self.dir, state.host_key_generation);
        state.host_key = host_key.clone();
        state.process = Some(self.relaunch(&host_key));
        host_key.public
    }

    /// Whether sshd is running (it may have been stopped, or died).
    pub fn is_running(&self) -> bool {
        lock(&self.state)
            .process
            .as_mut()
            .is_some_and(OwnedChild::is_running)
    }

    /// sshd's log (LogLevel VERBOSE) since the server was first started, for
    /// diagnostics and for asserting what the server saw.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(&self.log_path).unwrap_or_default()).into_owned()
    }

    /// How many successful public-key logins sshd has logged since the
    /// server was first started: the number of SSH connections clients made
    /// that got past authentication. Tests of connection reuse assert on it.
    pub fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey for ").count()
    }

    /// How many connections sshd is serving right now (one sshd child per
    /// connection, counting ones still authenticating).
    pub fn connection_count(&self) -> usize {
        match self.listener_pid() {
            Some(pid) => process::children(pid).len(),
            None => 0,
        }
    }

    /// Kills every connection sshd is serving (with its remote processes)
    /// while sshd keeps accepting new ones: what a client sees when the
    /// network drops its connections.
    pub fn kill_connections(&self) {
        if let Some(pid) = self.listener_pid() {
            process::kill_tree(pid, false);
        }
    }

    /// Pids of the test user's live processes whose command line matches
    /// the regex `pattern` (`pgrep -u USER -f PATTERN`, zombies left out), to
    /// check what runs on the "remote" host.
    ///
    /// All servers log in the same user on this one machine, so this sees
    /// the processes of every server and every test running in parallel: put
    /// a token unique to the test in the pattern.
    pub fn pids_of_user_matching(&self, pattern: &str) -> Vec<u32> {
        let output = output_within(
            Command::new("pgrep")
                .arg("-u")
                .arg(self.user.uid().to_string())
                .arg("-f")
                .arg(pattern),
            Duration::from_secs(10),
        );
        match output.status.code() {
            Some(0 | 1) => String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| line.trim().parse().ok())
                .filter(|pid| process::is_alive(*pid))
                .collect(),
            _ => panic!(
                "pgrep -f {pattern:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// The server's temporary directory (config, log, keys).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn kill(&self, state: &mut ServerState) {
        if let Some(mut process) = state.process.take() {
            process.kill();
            self.note("sshd stopped (killed with all its connections)");
        }
    }

    /// Appends a line of the kit's own to sshd's log, so that a reader can
    /// tell restarts and readiness probes apart.
    fn note(&self, text: &str) {
        if let Ok(mut log) = OpenOptions::new().append(true).open(&self.log_path) {
            let _ = writeln!(log, "--- sshmcp-testkit: {text} ---");
        }
    }

    fn listener_pid(&self) -> Option<u32> {
        let mut state = lock(&self.state);
        let process = state.process.as_mut()?;
        process.is_running().then(|| process.pid())
    }

    /// Launches sshd on the server's own port, waiting out a previous
    /// owner of the port for up to [`START_TIMEOUT`].
    fn relaunch(&self, host_key: &HostKey) -> OwnedChild {
        self.launch_retrying(|| self.port, host_key).1
    }

    /// Launches sshd on the port `choose_port` returns, asking again each
    /// time sshd finds it taken, for up to [`START_TIMEOUT`] in all.
    fn launch_retrying(
        &self,
        mut choose_port: impl FnMut() -> u16,
        host_key: &HostKey,
    ) -> (u16, OwnedChild) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let port = choose_port();
            match self.launch(port, host_key, deadline) {
                Ok(child) => return (port, child),
                Err(AddressInUse) if Instant::now() >= deadline => panic!(
                    "sshd could not bind {}:{port}: address in use for {START_TIMEOUT:?}; log tail:\n{}",
                    self.addr,
                    tail(&self.log())
                ),
                Err(AddressInUse) => thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Writes the config for `port`, starts sshd and waits until it listens
    /// and answers with a banner. Panics (with the log tail) if that takes
    /// past `deadline` or sshd dies for any reason but a taken port.
    fn launch(
        &self,
        port: u16,
        host_key: &HostKey,
        deadline: Instant,
    ) -> Result<OwnedChild, AddressInUse> {
        write_file(
            &self.config_path,
            &self.render_config(port, host_key),
            0o644,
        );
        self.note(&format!("starting sshd on port {port}"));
        let log_start = fs::metadata(&self.log_path).map_or(0, |m| m.len());
        let mut child = OwnedChild::spawn(
            Command::new(SSHD)
                .arg("-D")
                .arg("-E")
                .arg(&self.log_path)
                .arg("-f")
                .arg(&self.config_path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let listening = format!("Server listening on {} port {port}.", self.addr);
        let mut backoff = Backoff::new(Duration::from_millis(20));
        loop {
            // Read the log before checking the process: everything a dead
            // sshd wrote is then in `fresh`.
            let fresh = self.log_since(log_start);
            if let Some(status) = child.status() {
                if fresh.contains("Address already in use") {
                    return Err(AddressInUse);
                }
                panic!(
                    "sshd for {}:{port} exited while starting ({status}); log tail:\n{}",
                    self.addr,
                    tail(&self.log())
                );
            }
            // The log line proves that this sshd, not some other process,
            // holds the port; the banner that it is serving.
            if fresh.contains(&listening) && answers_with_banner(SocketAddr::new(self.addr, port)) {
                self.note(
                    "sshd is ready (the connection just above was the kit's readiness probe)",
                );
                return Ok(child);
            }
            if Instant::now() >= deadline {
                panic!(
                    "sshd for {}:{port} did not answer with an SSH-2.0- banner within {START_TIMEOUT:?}; log tail:\n{}",
                    self.addr,
                    tail(&self.log())
                );
            }
            backoff.sleep();
        }
    }

    fn log_since(&self, offset: u64) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        let start = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(bytes.len());
        String::from_utf8_lossy(&bytes[start..]).into_owned()
    }

    fn render_config(&self, port: u16, host_key: &HostKey) -> String {
        let (overrides, matches) = split_at_match(&self.options.extra_config);
        let mut text = String::from("# Written by sshmcp-testkit.\n");
        for line in overrides {
            let _ = writeln!(text, "{line}");
        }
        let _ = writeln!(text, "Port {port}");
        let _ = writeln!(text, "ListenAddress {}", self.addr);
        let _ = writeln!(text, "HostKey {}", host_key.path.display());
        let _ = writeln!(text, "PidFile {}", self.dir.join("sshd.pid").display());
        let _ = writeln!(
            text,
            "AuthorizedKeysFile {}",
            self.authorized_keys_path.display()
        );
        let _ = writeln!(text, "AllowUsers {}", self.user.name());
        text.push_str(
            "UsePAM no\n\
             StrictModes no\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             LogLevel VERBOSE\n",
        );
        if let Some(max_startups) = &self.options.max_startups {
            let _ = writeln!(text, "MaxStartups {max_startups}");
        }
        if let Some(max_sessions) = self.options.max_sessions {
            let _ = writeln!(text, "MaxSessions {max_sessions}");
        }
        if sshd_has_per_source_penalties() {
            // Tests connect, fail auth and drop connections on purpose, all
            // from 127.0.0.1; penalties would lock later tests out.
            text.push_str("PerSourcePenalties no\n");
        }
        // sshd refuses a second `Subsystem sftp` outright (unlike other
        // keywords, where the first wins): the kit's goes only when no
        // extra line brings its own, e.g. a hostile server for a test.
        if !overrides.iter().any(|line| defines_sftp_subsystem(line)) {
            let _ = writeln!(text, "Subsystem sftp {SFTP_SERVER}");
        }
        for line in matches {
            let _ = writeln!(text, "{line}");
        }
        text
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Splits extra config lines into those before the first `Match` and the
/// rest.
fn split_at_match(lines: &[String]) -> (&[String], &[String]) {
    let first_match = lines
        .iter()
        .position(|line| {
            line.split_whitespace()
                .next()
                .is_some_and(|word| word.eq_ignore_ascii_case("match"))
        })
        .unwrap_or(lines.len());
    lines.split_at(first_match)
}

/// Whether an sshd_config line is `Subsystem sftp ...`.
fn defines_sftp_subsystem(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words
        .next()
        .is_some_and(|word| word.eq_ignore_ascii_case("subsystem"))
        && words.next() == Some("sftp")
}

/// Connects to `addr` and checks that the first line is an SSH-2.0 banner.
fn answers_with_banner(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    if stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_err()
    {
        return false;
    }
    let mut banner = Vec::new();
    let mut buf = [0u8; 256];
    while !banner.contains(&b'\n') && banner.len() < 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => banner.extend_from_slice(&buf[..n]),
        }
    }
    banner.starts_with(b"SSH-2.0-")
}

fn new_host_key(dir: &Path, generation: u32) -> HostKey {
    let path = dir.join(format!("ssh_host_ed25519_key_{generation}"));
    let public = generate_ed25519(&path, "", "sshmcp-testkit-host");
    // The comment is not part of the key as known_hosts records it.
    let public = public
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    HostKey { path, public }
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
}

/// sshd needs its privilege-separation directory when it runs as root.
fn ensure_privsep_dir() {
    if is_root() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(PRIVSEP_DIR)
            .unwrap_or_else(|e| panic!("cannot create {PRIVSEP_DIR}: {e}"));
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid(2) cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the installed sshd knows `PerSourcePenalties` (OpenSSH 9.8+).
fn sshd_has_per_source_penalties() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        let output = output_within(Command::new(SSHD).arg("-V"), Duration::from_secs(10));
        let text = String::from_utf8_lossy(&output.stderr);
        openssh_version(&text).is_some_and(|version| version >= (9, 8))
    })
}

/// `(major, minor)` from text such as `OpenSSH_9.2p1 Debian-2, OpenSSL …`.
fn openssh_version(text: &str) -> Option<(u32, u32)> {
    let rest = &text[text.find("OpenSSH_")? + "OpenSSH_".len()..];
    let mut numbers = rest.split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse().ok()?;
    let minor = numbers.next()?.parse().ok()?;
    Some((major, minor))
}

/// A loopback address 127.0.0.x held by one server of this process.
///
/// Servers in other test processes may pick the same address; that is
/// harmless because the kernel gives them different ports.
#[derive(Debug)]
struct AddrLease {
    last_octet: u8,
}

static LEASED: Mutex<BTreeSet<u8>> = Mutex::new(BTreeSet::new());

impl AddrLease {
    const FIRST: u8 = 2;
    const LAST: u8 = 250;

    fn take() -> AddrLease {
        let count = u64::from(Self::LAST - Self::FIRST) + 1;
        let start = RandomState::new().hash_one(std::process::id()) % count;
        let mut leased = lock(&LEASED);
        for step in 0..count {
            let offset = u8::try_from((start + step) % count).unwrap_or(0);
            let last_octet = Self::FIRST + offset;
            if leased.insert(last_octet) {
                return AddrLease { last_octet };
            }
        }
        panic!(
            "all addresses 127.0.0.{}..=127.0.0.{} are taken by servers of this process",
            Self::FIRST,
            Self::LAST
        );
    }

    fn addr(&self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, self.last_octet))
    }
}

impl Drop for AddrLease {
    fn drop(&mut self) {
        lock(&LEASED).remove(&self.last_octet);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_sshd_banner_text() {
        assert_eq!(
            openssh_version("OpenSSH_9.2p1 Debian-2+deb12u10, OpenSSL 3.0.19"),
            Some((9, 2))
        );
        assert_eq!(openssh_version("OpenSSH_10.0p2, OpenSSL"), Some((10, 0)));
        assert_eq!(openssh_version("unknown option -- V"), None);
    }

    #[test]
    fn an_extra_sftp_subsystem_replaces_the_default() {
        assert!(defines_sftp_subsystem("Subsystem sftp /opt/relay"));
        assert!(defines_sftp_subsystem("subsystem  sftp internal-sftp"));
        assert!(!defines_sftp_subsystem("Subsystem other /bin/true"));
        assert!(!defines_sftp_subsystem("# Subsystem sftp /x"));
    }

    #[test]
    fn match_blocks_go_last() {
        let lines: Vec<String> = ["LogLevel DEBUG3", "Match User nobody", "  X11Forwarding no"]
            .map(String::from)
            .to_vec();
        let (overrides, matches) = split_at_match(&lines);
        assert_eq!(overrides, &lines[..1]);
        assert_eq!(matches, &lines[1..]);
    }
}
