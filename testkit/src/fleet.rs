//! Several servers and the OpenSSH client config that reaches them.

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use crate::exit_cleanup::KitDir;
use crate::key::ClientKey;
use crate::sshd::{SshServer, SshServerOptions};
use crate::user::test_user;

/// The usual test setup: `n` servers, one client key they all accept, and an
/// `ssh_config` plus `known_hosts` that name them `host1` … `hostN`.
///
/// It exists because that is what a user's machine looks like to sshmcp: a
/// set of hosts described by OpenSSH client config. Point the daemon's
/// `[ssh] config` at [`Fleet::ssh_config_path`], or run OpenSSH's own `ssh`
/// through [`Fleet::ssh`] to compare.
///
/// Indexes are 0-based like a `Vec`, aliases 1-based like hostnames:
/// `server(0)` is `alias(0)`, which is `"host1"`.
#[derive(Debug)]
pub struct Fleet {
    servers: Vec<SshServer>,
    key: ClientKey,
    ssh_config: PathBuf,
    known_hosts: PathBuf,
    dir: KitDir,
}

/// Options for [`Fleet`]: how many servers, their sshd settings, which key.
#[derive(Debug)]
pub struct FleetBuilder {
    count: usize,
    server_options: SshServerOptions,
    key: Option<ClientKey>,
}

impl Fleet {
    /// Starts `n` servers with default options (in parallel) and writes the
    /// client config for them.
    pub fn start(n: usize) -> Fleet {
        Fleet::builder().servers(n).start()
    }

    /// A builder for fleets that need non-default options.
    pub fn builder() -> FleetBuilder {
        FleetBuilder {
            count: 1,
            server_options: SshServerOptions::default(),
            key: None,
        }
    }

    /// All servers, in alias order.
    pub fn servers(&self) -> &[SshServer] {
        &self.servers
    }

    /// Server `i` (0-based); its alias is [`Fleet::alias`]`(i)`.
    pub fn server(&self, i: usize) -> &SshServer {
        self.servers.get(i).unwrap_or_else(|| {
            panic!(
                "the fleet has {} servers, there is no server({i})",
                self.servers.len()
            )
        })
    }

    /// The `Host` alias of server `i` (0-based): `"host{i+1}"`.
    pub fn alias(&self, i: usize) -> String {
        assert!(
            i < self.servers.len(),
            "the fleet has {} servers, there is no alias({i})",
            self.servers.len()
        );
        alias(i)
    }

    /// The OpenSSH client config naming every server.
    pub fn ssh_config_path(&self) -> &Path {
        &self.ssh_config
    }

    /// The known_hosts file holding every server's host key.
    pub fn known_hosts_path(&self) -> &Path {
        &self.known_hosts
    }

    /// The client key every server accepts.
    pub fn key(&self) -> &ClientKey {
        &self.key
    }

    /// The fleet's temporary directory (ssh_config, known_hosts).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// OpenSSH's `ssh -F <ssh_config> -o BatchMode=yes -o ConnectTimeout=10
    /// <alias>`; append the remote command and run it (with
    /// [`output_within`](crate::output_within) to keep it bounded).
    pub fn ssh(&self, alias: &str) -> Command {
        let mut cmd = Command::new("ssh");
        cmd.arg("-F")
            .arg(&self.ssh_config)
            .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
            .arg(alias);
        cmd
    }

    /// Appends `text` to the fleet's ssh_config, e.g. a `Host` block with
    /// more options or more aliases. OpenSSH keeps the first value it reads
    /// for a keyword, so this adds settings but cannot change the kit's.
    pub fn append_ssh_config(&self, text: &str) {
        let mut file = OpenOptions::new()
            .append(true)
            .open(&self.ssh_config)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", self.ssh_config.display()));
        writeln!(file, "\n{text}")
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.ssh_config.display()));
    }

    /// Rewrites known_hosts from the servers' current host keys, e.g. to
    /// trust a key set by
    /// [`restart_with_new_host_key`](SshServer::restart_with_new_host_key).
    pub fn write_known_hosts(&self) {
        let mut text = String::new();
        for server in &self.servers {
            let _ = writeln!(text, "{}", server.known_hosts_line());
        }
        fs::write(&self.known_hosts, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.known_hosts.display()));
    }

    /// Appends a `Host alias` block that reaches server `i` as the kit's
    /// own aliases do (test user, client key, the fleet's known_hosts),
    /// followed by `extra` lines such as `StrictHostKeyChecking accept-new`
    /// or `ProxyJump host1`.
    pub fn add_alias(&self, alias: &str, i: usize, extra: &[&str]) {
        self.append_ssh_config(&self.host_block(alias, &self.servers[i], extra));
    }

    fn host_block(&self, alias: &str, server: &SshServer, extra: &[&str]) -> String {
        let mut block = format!(
            "Host {alias}\n\
             \x20   HostName {addr}\n\
             \x20   Port {port}\n\
             \x20   User {user}\n\
             \x20   IdentityFile {key}\n\
             \x20   IdentitiesOnly yes\n\
             \x20   UserKnownHostsFile {known_hosts}\n",
            addr = server.addr(),
            port = server.port(),
            user = test_user().name(),
            key = self.key.path().display(),
            known_hosts = self.known_hosts.display(),
        );
        for line in extra {
            let _ = writeln!(block, "    {line}");
        }
        block
    }

    fn write_ssh_config(&self) {
        let mut text = String::from("# Written by sshmcp-testkit.\n");
        for (i, server) in self.servers.iter().enumerate() {
            text.push('\n');
            text.push_str(&self.host_block(&alias(i), server, &["StrictHostKeyChecking yes"]));
        }
        fs::write(&self.ssh_config, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.ssh_config.display()));
    }
}

fn alias(i: usize) -> String {
    format!("host{}", i + 1)
}

impl FleetBuilder {
    /// Number of servers (default 1).
    pub fn servers(mut self, n: usize) -> Self {
        self.count = n;
        self
    }

    /// `MaxSessions` on every server.
    pub fn max_sessions(mut self, n: u32) -> Self {
        self.server_options.max_sessions = Some(n);
        self
    }

    /// `MaxStartups` on every server.
    pub fn max_startups(mut self, value: &str) -> Self {
        self.server_options.max_startups = Some(value.to_owned());
        self
    }

    /// One more sshd_config line on every server (see
    /// [`SshServerOptions::extra_config`]).
    pub fn sshd_config_line(mut self, line: &str) -> Self {
        self.server_options.extra_config.push(line.to_owned());
        self
    }

    /// All server options at once; `listen_addr` and `port`, if set, are
    /// shared by every server.
    pub fn server_options(mut self, options: SshServerOptions) -> Self {
        self.server_options = options;
        self
    }

    /// Use this client key instead of a fresh unencrypted one, e.g. one
    /// from [`ClientKey::generate_with_passphrase`].
    pub fn key(mut self, key: ClientKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Starts the servers in parallel, authorizes the key on all of them and
    /// writes ssh_config and known_hosts.
    pub fn start(self) -> Fleet {
        let key = self.key.unwrap_or_else(ClientKey::generate);
        let options = &self.server_options;
        let started: Vec<thread::Result<SshServer>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..self.count)
                .map(|_| scope.spawn(|| SshServer::start(options.clone())))
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        });
        let mut servers = Vec::with_capacity(started.len());
        for result in started {
            match result {
                Ok(server) => servers.push(server),
                // Servers already started are dropped (and killed) while the
                // first failure unwinds.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        for server in &servers {
            server.authorize(key.public_line());
        }
        let dir = KitDir::new("sshmcp-fleet-");
        let fleet = Fleet {
            ssh_config: dir.join("ssh_config"),
            known_hosts: dir.join("known_hosts"),
            servers,
            key,
            dir,
        };
        fleet.write_known_hosts();
        fleet.write_ssh_config();
        fleet
    }
}
