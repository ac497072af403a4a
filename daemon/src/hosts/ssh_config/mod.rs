//! OpenSSH client configuration (`ssh_config(5)`): parse once, resolve per host.
//!
//! sshmcpd must reach a host exactly as `ssh <alias>` would. If it did not,
//! a user would get a different machine, account, key or trust decision
//! from the one they configured and tested with `ssh`. So this module
//! follows OpenSSH's own parser (`readconf.c` as of OpenSSH 9.2, checked
//! against `ssh -G`) rather than a loose reading of the man page, including
//! its quirks:
//!
//! - the first value obtained for a keyword wins, but `IdentityFile`
//!   accumulates;
//! - `Host` patterns match the alias exactly as typed (case-sensitive), while
//!   `Match host` matches the HostName seen so far, ignoring case;
//! - an `Include` is itself subject to the `Host`/`Match` block it sits in;
//! - every line we use is validated as ssh validates it, even in blocks that
//!   never match, so a config that `ssh` rejects is rejected here too.
//!
//! [`SshConfig::load`] reads the files once and expands Includes into a
//! tree. [`SshConfig::resolve`] replays that tree for one alias, the way ssh
//! replays its config on every run, and then applies ssh's defaults.
//!
//! Left out on purpose: `Match exec` (the daemon does not run commands from
//! a config file), the `canonical`/`final` passes and hostname
//! canonicalisation. Blocks that need them never apply, and
//! [`SshConfig::warnings`] says so, so the daemon can tell the user.
//!
//! The parts, one file each: [`parse`] reads lines into a tree of
//! [`Item`]s (with [`include`] pulling in other files), [`pattern`] decides
//! which `Host` and `Match` blocks apply, [`expand`] handles `~`, `%`
//! tokens and `${VAR}`, [`jump`] is ProxyJump's grammar, and [`local_user`]
//! is the account ssh would run as. This file replays the tree for one
//! alias.

mod expand;
#[cfg(test)]
mod fixtures;
mod include;
mod jump;
mod local_user;
mod parse;
mod pattern;

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use expand::{Tokens, canonical_hostname, expand_hostname, expand_path};
pub use jump::JumpHop;
pub use local_user::LocalUser;
use parse::{Item, Parser, Setting};
use pattern::host_matches;

/// OpenSSH uses at most this many identity files (`SSH_MAX_IDENTITY_FILES`).
const MAX_IDENTITY_FILES: usize = 100;

/// Keys ssh tries when the config names none, in the order `ssh -G` lists
/// them. OpenSSH 9.x still lists `id_dsa` (last); it is kept so the list
/// agrees with the `ssh` users have installed.
const DEFAULT_IDENTITY_FILES: [&str; 7] = [
    "~/.ssh/id_rsa",
    "~/.ssh/id_ecdsa",
    "~/.ssh/id_ecdsa_sk",
    "~/.ssh/id_ed25519",
    "~/.ssh/id_ed25519_sk",
    "~/.ssh/id_xmss",
    "~/.ssh/id_dsa",
];

/// The per-user known_hosts files ssh reads when the config names none.
const DEFAULT_KNOWN_HOSTS_FILES: [&str; 2] = ["~/.ssh/known_hosts", "~/.ssh/known_hosts2"];

/// A parsed OpenSSH client config, Includes expanded, ready to answer "how
/// would ssh reach this alias?" for any alias.
///
/// It owns the [`LocalUser`] it was parsed for, because ssh's answers depend
/// on who runs it: `~`, `%u`, the default `User` and `Match localuser`.
#[derive(Debug, Clone)]
pub struct SshConfig {
    items: Vec<Item>,
    local: LocalUser,
    warnings: Vec<String>,
}

/// Everything sshmcpd needs to connect to one alias, as `ssh -G` would
/// report it: defaults applied, `~`, `%` tokens and `${VAR}` expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedHost {
    /// The name the caller asked for (`%n`), as typed.
    pub alias: String,
    /// Where to connect: HostName with `%h` expanded, else the alias;
    /// lowercased like ssh does (numeric addresses are normalised instead).
    pub hostname: String,
    /// TCP port; 22 unless configured.
    pub port: u16,
    /// Remote login name; the local user's name unless configured.
    pub user: String,
    /// Private keys to try, in order. When the config names none these are
    /// ssh's defaults; `IdentityFile none` entries are dropped.
    pub identity_files: Vec<PathBuf>,
    /// True when the config named IdentityFile at all (even `none`): then
    /// ssh tries only those, not its defaults.
    pub identity_files_explicit: bool,
    /// Offer only the configured identities, even if the agent holds more.
    pub identities_only: bool,
    /// IdentityAgent with `~`, `%` and `${VAR}` expanded. `none`,
    /// `SSH_AUTH_SOCK` and `$VAR` are kept as written: the daemon decides
    /// what they mean for the caller. `None` when not configured.
    pub identity_agent: Option<String>,
    /// known_hosts files to verify against; empty for
    /// `UserKnownHostsFile none`.
    pub user_known_hosts_files: Vec<PathBuf>,
    /// What to do with an unknown host key; ssh's default is `Ask`, which a
    /// daemon that cannot ask treats as `Yes`.
    pub strict_host_key_checking: StrictHostKeyChecking,
    /// Jump hosts to go through, first hop first, parsed at load; empty
    /// when unset or `none`.
    pub proxy_jump: Vec<JumpHop>,
    /// ProxyCommand as written (tokens not expanded), `None` when unset or
    /// `none`. sshmcpd does not run proxy commands, but it must know that
    /// ssh would, rather than silently connect directly. A ProxyJump host
    /// seen first rules out any ProxyCommand and vice versa, so at most one
    /// of the two is set.
    pub proxy_command: Option<String>,
    /// HostKeyAlias, lowercased as ssh does: when set, ssh looks the host
    /// key up in known_hosts under this name instead of the hostname.
    pub host_key_alias: Option<String>,
    /// TCP connect timeout; `None` means the system default (also for `0`).
    pub connect_timeout: Option<Duration>,
    /// Keepalive interval; `None` disables keepalives (ssh's `0`).
    pub server_alive_interval: Option<Duration>,
    /// Keepalives that may go unanswered before the connection is dropped.
    pub server_alive_count_max: u32,
}

/// `StrictHostKeyChecking`: how ssh treats a host key it has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrictHostKeyChecking {
    /// `yes` / `true`: refuse unknown keys.
    Yes,
    /// `accept-new`: record unknown keys, refuse changed ones.
    AcceptNew,
    /// `no` / `off` / `false`: accept unknown keys (changed keys are still refused by sshmcpd).
    No,
    /// `ask` (the default): ask the user, which a daemon cannot; treat as `Yes`.
    Ask,
}

/// Why a config could not be loaded. Every message names the file (and the
/// line, where there is one) and says what to change.
#[derive(Debug, thiserror::Error)]
pub enum SshConfigError {
    /// A config file exists but could not be read.
    #[error("cannot read ssh config {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line that ssh itself would refuse.
    #[error("{}, line {line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// ssh refuses a config file that another user could have edited, since
    /// it decides which hosts and keys are trusted.
    #[error(
        "bad owner or permissions on {}: ssh only reads config files owned by you or root and not writable by group or others; fix with `chmod go-w {}`",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf },
    /// Includes nested deeper than OpenSSH allows: nearly always a file that
    /// (indirectly) includes itself.
    #[error(
        "{}, line {line}: Include nested more than {} files deep; check for a file that includes itself",
        path.display(),
        include::MAX_INCLUDE_DEPTH
    )]
    IncludeTooDeep { path: PathBuf, line: usize },
    /// The daemon's own account is missing from the password database, so
    /// `~`, `%u` and the default User are unknown.
    #[error("cannot find the local user (uid {uid}) in the password database")]
    UnknownLocalUser { uid: u32 },
    /// `gethostname()` failed, so `%l`, `%L` and `%C` are unknown.
    #[error("cannot read the local host name: {0}")]
    LocalHostname(#[source] io::Error),
}

impl SshConfig {
    /// Parse `path` as a user config (relative Include paths resolve against
    /// `~/.ssh`, as OpenSSH does) for the user running the daemon.
    ///
    /// A missing file yields an empty config, as ssh treats a missing
    /// `~/.ssh/config`. Like ssh reading `~/.ssh/config`, it refuses a file
    /// that others can write.
    pub fn load(path: &Path) -> Result<SshConfig, SshConfigError> {
        Self::load_as(path, LocalUser::current()?)
    }

    /// [`SshConfig::load`] on behalf of an explicit local user.
    pub fn load_as(path: &Path, local: LocalUser) -> Result<SshConfig, SshConfigError> {
        let is_dir = fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
        if is_dir {
            return Err(SshConfigError::Io {
                path: path.to_owned(),
                source: io::Error::new(
                    io::ErrorKind::IsADirectory,
                    "is a directory; name the config file itself",
                ),
            });
        }
        let mut parser = Parser::new(&local);
        let items = parser.read_file(path, 0)?.unwrap_or_default();
        let warnings = parser.warnings;
        Ok(SshConfig {
            items,
            local,
            warnings,
        })
    }

    /// Parse config text; `origin` names it in errors and `home` is the
    /// user's home directory (for `~`, `%d` and relative Includes). The rest
    /// of the local user is the account running the daemon.
    #[cfg(test)]
    pub fn parse_str(text: &str, origin: &Path, home: &Path) -> Result<SshConfig, SshConfigError> {
        let mut local = LocalUser::current()?;
        local.home = home.to_owned();
        Self::parse_str_as(text, origin, local)
    }

    /// [`SshConfig::parse_str`] on behalf of an explicit local user.
    #[cfg(test)]
    pub fn parse_str_as(
        text: &str,
        origin: &Path,
        local: LocalUser,
    ) -> Result<SshConfig, SshConfigError> {
        let mut parser = Parser::new(&local);
        let items = parser.parse_text(text, origin, 0)?;
        let warnings = parser.warnings;
        Ok(SshConfig {
            items,
            local,
            warnings,
        })
    }

    /// The concrete aliases named on `Host` lines (no `*`/`?` patterns, no
    /// `!` negations), in file order with Includes in place, deduplicated:
    /// the hosts a user can pick by name.
    pub fn aliases(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        let mut aliases = Vec::new();
        collect_aliases(&self.items, &mut seen, &mut aliases);
        aliases
    }

    /// Things in the config that sshmcpd reads differently from ssh (for
    /// example `Match exec` blocks, which never apply here), one message per
    /// line, each naming file and line. The daemon should log them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Everything OpenSSH would use for `alias`, with defaults applied as
    /// `ssh -G` does.
    pub fn resolve(&self, alias: &str) -> ResolvedHost {
        let mut obtained = Obtained::default();
        let mut active = true;
        self.replay(&self.items, alias, &mut active, &mut obtained);
        self.finish(alias, obtained)
    }

    /// Walk `items` the way ssh walks its config lines: `Host` and `Match`
    /// switch `active`, settings apply only while it is on, and an Include
    /// shares the includer's state but cannot change it for the includer.
    fn replay(&self, items: &[Item], alias: &str, active: &mut bool, obtained: &mut Obtained) {
        for item in items {
            match item {
                Item::Host(patterns) => *active = host_matches(patterns, alias),
                Item::Match(criteria) => {
                    let user = obtained.user.as_deref().unwrap_or(&self.local.name);
                    *active = criteria.iter().all(|criterion| {
                        criterion.holds(alias, obtained.hostname.as_deref(), user, &self.local.name)
                    });
                }
                Item::Set(setting) => {
                    if *active {
                        obtained.take(setting);
                    }
                }
                Item::Include(files) => {
                    if *active {
                        for file in files {
                            self.replay(file, alias, active, obtained);
                            *active = true;
                        }
                    }
                }
            }
        }
    }

    /// Apply ssh's defaults and expansions to what the config provided.
    fn finish(&self, alias: &str, obtained: Obtained) -> ResolvedHost {
        let hostname = canonical_hostname(
            obtained
                .hostname
                .as_deref()
                .map_or_else(|| alias.to_owned(), |h| expand_hostname(h, alias)),
        );
        let port = obtained.port.unwrap_or(22);
        let user = obtained.user.unwrap_or_else(|| self.local.name.clone());
        let host_key_alias = obtained.host_key_alias.map(|a| a.to_ascii_lowercase());
        let tokens = Tokens::new(
            &self.local,
            alias,
            &hostname,
            port,
            &user,
            host_key_alias.as_deref(),
        );

        let identity_files_explicit = !obtained.identity_files.is_empty();
        let identity_files = if identity_files_explicit {
            obtained.identity_files
        } else {
            DEFAULT_IDENTITY_FILES.map(str::to_owned).to_vec()
        }
        .iter()
        .filter(|file| !file.eq_ignore_ascii_case("none"))
        .take(MAX_IDENTITY_FILES)
        .map(|file| PathBuf::from(expand_path(file, &tokens, &self.local)))
        .collect();

        let known_hosts = obtained
            .known_hosts
            .unwrap_or_else(|| DEFAULT_KNOWN_HOSTS_FILES.map(str::to_owned).to_vec());
        let user_known_hosts_files = if known_hosts
            .first()
            .is_some_and(|file| file.eq_ignore_ascii_case("none"))
        {
            Vec::new()
        } else {
            known_hosts
                .iter()
                .map(|file| PathBuf::from(expand_path(file, &tokens, &self.local)))
                .collect()
        };

        let proxy_command = obtained
            .proxy_command
            .filter(|command| !command.eq_ignore_ascii_case("none"));

        ResolvedHost {
            alias: alias.to_owned(),
            identity_agent: obtained
                .identity_agent
                .map(|agent| expand_path(&agent, &tokens, &self.local)),
            hostname,
            port,
            user,
            identity_files,
            identity_files_explicit,
            identities_only: obtained.identities_only.unwrap_or(false),
            user_known_hosts_files,
            strict_host_key_checking: obtained
                .strict_host_key_checking
                .unwrap_or(StrictHostKeyChecking::Ask),
            proxy_jump: obtained.proxy_jump.unwrap_or_default(),
            proxy_command,
            host_key_alias,
            connect_timeout: seconds(obtained.connect_timeout),
            server_alive_interval: seconds(obtained.server_alive_interval),
            server_alive_count_max: obtained.server_alive_count_max.unwrap_or(3),
        }
    }
}

/// The values obtained so far while replaying the config for one alias
/// (OpenSSH's `Options` during parsing): `None` means "not yet set".
#[derive(Debug, Default)]
struct Obtained {
    hostname: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity_files: Vec<String>,
    identities_only: Option<bool>,
    identity_agent: Option<String>,
    known_hosts: Option<Vec<String>>,
    strict_host_key_checking: Option<StrictHostKeyChecking>,
    /// `Some` of no hops once `ProxyJump none` has settled it.
    proxy_jump: Option<Vec<JumpHop>>,
    proxy_command: Option<String>,
    host_key_alias: Option<String>,
    connect_timeout: Option<u32>,
    server_alive_interval: Option<u32>,
    server_alive_count_max: Option<u32>,
}

impl Obtained {
    /// Record `setting` the way ssh does: first value wins, except that
    /// IdentityFile accumulates (skipping exact repeats of the text).
    fn take(&mut self, setting: &Setting) {
        fn first<T: Clone>(slot: &mut Option<T>, value: &T) {
            slot.get_or_insert_with(|| value.clone());
        }
        match setting {
            Setting::HostName(v) => first(&mut self.hostname, v),
            Setting::Port(v) => first(&mut self.port, v),
            Setting::User(v) => first(&mut self.user, v),
            Setting::IdentityFile(v) => {
                if !self.identity_files.contains(v) {
                    self.identity_files.push(v.clone());
                }
            }
            Setting::IdentitiesOnly(v) => first(&mut self.identities_only, v),
            Setting::IdentityAgent(v) => first(&mut self.identity_agent, v),
            Setting::UserKnownHostsFile(v) => first(&mut self.known_hosts, v),
            Setting::StrictHostKeyChecking(v) => first(&mut self.strict_host_key_checking, v),
            // As OpenSSH 10.3 (and Debian's 9.2 backport): `ProxyJump none`
            // only settles ProxyJump; a jump host also settles ProxyCommand
            // (to `none`), and is itself ruled out by an earlier
            // ProxyCommand, `none` included.
            Setting::ProxyJump(hops) if hops.is_empty() => {
                self.proxy_jump.get_or_insert_with(Vec::new);
            }
            Setting::ProxyJump(hops) => {
                if self.proxy_jump.is_none() && self.proxy_command.is_none() {
                    self.proxy_jump = Some(hops.clone());
                    self.proxy_command = Some("none".to_owned());
                }
            }
            Setting::ProxyCommand(v) => first(&mut self.proxy_command, v),
            Setting::HostKeyAlias(v) => first(&mut self.host_key_alias, v),
            Setting::ConnectTimeout(Some(v)) => first(&mut self.connect_timeout, v),
            Setting::ServerAliveInterval(Some(v)) => first(&mut self.server_alive_interval, v),
            Setting::ConnectTimeout(None) | Setting::ServerAliveInterval(None) => {}
            Setting::ServerAliveCountMax(v) => first(&mut self.server_alive_count_max, v),
        }
    }
}

fn collect_aliases(items: &[Item], seen: &mut HashSet<String>, aliases: &mut Vec<String>) {
    for item in items {
        match item {
            Item::Host(patterns) => {
                for pattern in patterns {
                    let concrete = !pattern.negated && !pattern.pattern.contains(['*', '?']);
                    if concrete && seen.insert(pattern.pattern.clone()) {
                        aliases.push(pattern.pattern.clone());
                    }
                }
            }
            Item::Include(files) => {
                for file in files {
                    collect_aliases(file, seen, aliases);
                }
            }
            Item::Match(_) | Item::Set(_) => {}
        }
    }
}

fn seconds(value: Option<u32>) -> Option<Duration> {
    value
        .filter(|&secs| secs > 0)
        .map(|secs| Duration::from_secs(u64::from(secs)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    use fixtures::{alice, parse, parse_error, paths, write_config};
    use jump::parse_hops;

    #[test]
    fn unconfigured_alias_gets_ssh_defaults() {
        let host = parse("").resolve("example.org");
        assert_eq!(
            host,
            ResolvedHost {
                alias: "example.org".to_owned(),
                hostname: "example.org".to_owned(),
                port: 22,
                user: "alice".to_owned(),
                identity_files: paths(&[
                    "/home/alice/.ssh/id_rsa",
                    "/home/alice/.ssh/id_ecdsa",
                    "/home/alice/.ssh/id_ecdsa_sk",
                    "/home/alice/.ssh/id_ed25519",
                    "/home/alice/.ssh/id_ed25519_sk",
                    "/home/alice/.ssh/id_xmss",
                    "/home/alice/.ssh/id_dsa",
                ]),
                identity_files_explicit: false,
                identities_only: false,
                identity_agent: None,
                user_known_hosts_files: paths(&[
                    "/home/alice/.ssh/known_hosts",
                    "/home/alice/.ssh/known_hosts2"
                ]),
                strict_host_key_checking: StrictHostKeyChecking::Ask,
                proxy_jump: Vec::new(),
                proxy_command: None,
                host_key_alias: None,
                connect_timeout: None,
                server_alive_interval: None,
                server_alive_count_max: 3,
            }
        );
    }

    #[test]
    fn first_obtained_value_wins() {
        let config = parse(
            "Host web\n  Port 2200\n  HostName first.example\nHost *\n  Port 2222\n  \
             HostName second.example\n  User fallback\n",
        );
        let web = config.resolve("web");
        assert_eq!(web.port, 2200);
        assert_eq!(web.hostname, "first.example");
        assert_eq!(web.user, "fallback");
        assert_eq!(config.resolve("other").port, 2222);
    }

    #[test]
    fn identity_files_accumulate_in_order_without_repeats() {
        let config = parse(
            "Host web\n  IdentityFile ~/.ssh/web\n  IdentityFile /keys/shared\nHost *\n  \
             IdentityFile ~/.ssh/web\n  IdentityFile /home/alice/.ssh/web\n",
        );
        let host = config.resolve("web");
        assert!(host.identity_files_explicit);
        // ssh drops repeats of the same text, not of the same file.
        assert_eq!(
            host.identity_files,
            paths(&[
                "/home/alice/.ssh/web",
                "/keys/shared",
                "/home/alice/.ssh/web"
            ])
        );
    }

    #[test]
    fn identity_file_none_means_no_keys_at_all() {
        let host = parse("IdentityFile none\n").resolve("web");
        assert!(host.identity_files_explicit);
        assert!(host.identity_files.is_empty());
    }

    #[test]
    fn user_known_hosts_file_takes_a_list_from_its_first_line_only() {
        let config = parse(
            "Host web\n  UserKnownHostsFile ~/kh/one \"/kh/two words\"\n\
             Host *\n  UserKnownHostsFile /kh/ignored\n",
        );
        assert_eq!(
            config.resolve("web").user_known_hosts_files,
            paths(&["/home/alice/kh/one", "/kh/two words"])
        );
        assert_eq!(
            config.resolve("other").user_known_hosts_files,
            paths(&["/kh/ignored"])
        );
    }

    #[test]
    fn user_known_hosts_file_none_means_no_user_files() {
        let host = parse("UserKnownHostsFile none\n").resolve("web");
        assert!(host.user_known_hosts_files.is_empty());
        assert!(parse_error("UserKnownHostsFile none /kh\n").contains("must appear alone"));
    }

    #[test]
    fn aliases_are_concrete_host_names_in_file_order() {
        let config =
            parse("Host web db\nHost *.lab !bad.lab\nHost db cache?\nMatch host api\nHost api\n");
        assert_eq!(config.aliases(), vec!["web", "db", "api"]);
    }

    #[test]
    fn missing_config_file_is_an_empty_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = SshConfig::load_as(&dir.path().join("nope"), alice()).unwrap();
        assert!(config.aliases().is_empty());
        assert_eq!(config.resolve("web").port, 22);
    }

    #[test]
    fn load_reads_the_file_for_the_current_user() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        write_config(&path, "Host web\n  Port 2200\n");
        let config = SshConfig::load(&path).unwrap();
        assert_eq!(config.resolve("web").port, 2200);
        assert_eq!(
            config.resolve("web").user,
            LocalUser::current().unwrap().name
        );
    }

    /// What `ssh -G` prints for the fields we compare.
    #[derive(Debug, Default)]
    struct SshG {
        hostname: String,
        port: u16,
        user: String,
        identity_files: Vec<PathBuf>,
        user_known_hosts_files: Vec<PathBuf>,
        strict_host_key_checking: Option<StrictHostKeyChecking>,
        identities_only: bool,
        proxy_jump: Vec<JumpHop>,
        proxy_command: Option<String>,
        connect_timeout: Option<Duration>,
        server_alive_interval: Option<Duration>,
        server_alive_count_max: u32,
    }

    /// Run the real `ssh -G`; `None` if there is no ssh binary.
    fn ssh_g(config: &Path, alias: &str, home: &Path) -> Option<SshG> {
        let output = match Command::new("ssh")
            .arg("-G")
            .arg("-F")
            .arg(config)
            .arg(alias)
            .stdin(Stdio::null())
            .output()
        {
            Ok(output) => output,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => panic!("cannot run ssh: {e}"),
        };
        assert!(
            output.status.success(),
            "ssh -G {alias} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let home = home.to_string_lossy();
        let untilde = |path: &str| match path.strip_prefix("~/") {
            Some(rest) => PathBuf::from(format!("{home}/{rest}")),
            None => PathBuf::from(path),
        };
        let secs = |value: &str| match value {
            "none" | "0" => None,
            n => Some(Duration::from_secs(n.parse().unwrap())),
        };
        let mut seen = SshG::default();
        for line in String::from_utf8(output.stdout).unwrap().lines() {
            let Some((key, value)) = line.split_once(' ') else {
                continue;
            };
            match key {
                "hostname" => seen.hostname = value.to_owned(),
                "port" => seen.port = value.parse().unwrap(),
                "user" => seen.user = value.to_owned(),
                "identityfile" => seen.identity_files.push(untilde(value)),
                "userknownhostsfile" => {
                    seen.user_known_hosts_files = value.split(' ').map(untilde).collect();
                }
                "stricthostkeychecking" => {
                    seen.strict_host_key_checking = Some(match value {
                        "true" => StrictHostKeyChecking::Yes,
                        "false" => StrictHostKeyChecking::No,
                        "ask" => StrictHostKeyChecking::Ask,
                        "accept-new" => StrictHostKeyChecking::AcceptNew,
                        other => panic!("unexpected stricthostkeychecking {other}"),
                    });
                }
                "identitiesonly" => seen.identities_only = value == "yes",
                "proxyjump" => seen.proxy_jump = parse_hops(value).unwrap(),
                "proxycommand" => seen.proxy_command = Some(value.to_owned()),
                "connecttimeout" => seen.connect_timeout = secs(value),
                "serveraliveinterval" => seen.server_alive_interval = secs(value),
                "serveralivecountmax" => seen.server_alive_count_max = value.parse().unwrap(),
                _ => {}
            }
        }
        Some(seen)
    }

    #[test]
    fn resolution_agrees_with_ssh_dash_g() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let local = LocalUser::current().unwrap();
        let conf_d = root.join("conf.d");
        fs::create_dir(&conf_d).unwrap();
        write_config(
            &conf_d.join("10-web.conf"),
            "# web servers\n\
             Host web.lab Web.Lab\n\
             \x20 HostName %h.Example.COM\n\
             \x20 IdentityFile ~/.ssh/web_ed25519\n\
             \x20 Port 2201\n\
             \x20 StrictHostKeyChecking accept-new\n",
        );
        write_config(
            &conf_d.join("20-db.conf"),
            &format!(
                "Host db !db.lab\n\
                 \x20 HostName DB.Internal.example\n\
                 \x20 User dbadmin\n\
                 Match host db.internal.example\n\
                 \x20 IdentityFile {root}/keys/db_match\n\
                 Match originalhost db user dbadmin\n\
                 \x20 Port 5022\n\
                 Match localuser {user}\n\
                 \x20 ServerAliveInterval 30\n",
                root = root.display(),
                user = local.name,
            ),
        );
        let main = root.join("config");
        write_config(
            &main,
            &format!(
                "Include {root}/conf.d/*\n\
                 \n\
                 Host *.lab !bad.lab\n\
                 \x20 User labuser\n\
                 \x20 IdentityFile ~/.ssh/lab_key\n\
                 \x20 IdentityFile {root}/keys/lab_rsa\n\
                 \x20 IdentityFile ~/.ssh/lab_key\n\
                 \x20 UserKnownHostsFile ~/.ssh/kh_%h_%p %d/kh_%r_%C\n\
                 \x20 ProxyJump jump@bastion.example:2222\n\
                 \n\
                 Host v6\n\
                 \x20 HostName FE80::0:1\n\
                 Host short\n\
                 \x20 HostName 127.1\n\
                 Host tunnel\n\
                 \x20 ProxyJump none\n\
                 \x20 ProxyCommand nc %h %p\n\
                 \n\
                 Host *\n\
                 \x20 Port = 2222\n\
                 \x20 User=fallback\n\
                 \x20 IdentityFile \"~/.ssh/common key\"\n\
                 \x20 ConnectTimeout 1m\n\
                 \x20 ServerAliveCountMax 5\n\
                 \x20 IdentitiesOnly yes\n",
                root = root.display(),
            ),
        );

        let aliases = [
            "web.lab", "Web.Lab", "WEB.LAB", "bad.lab", "x.lab", "db", "db.lab", "v6", "short",
            "tunnel", "10.0.0.7", "plain",
        ];
        assert_agrees_with_ssh(&main, &aliases);

        // Nothing configured: ssh's default keys and known_hosts files.
        let bare = root.join("bare");
        write_config(&bare, "Host other\n  Port 2200\n");
        assert_agrees_with_ssh(&bare, &["plain"]);
    }

    /// Resolve each alias with [`SshConfig::load`] and with the real
    /// `ssh -G -F config`, and require the same answers.
    fn assert_agrees_with_ssh(config_path: &Path, aliases: &[&str]) {
        let local = LocalUser::current().unwrap();
        let config = SshConfig::load(config_path).unwrap();
        for &alias in aliases {
            let Some(theirs) = ssh_g(config_path, alias, &local.home) else {
                eprintln!("no `ssh` binary: skipping the comparison with ssh -G");
                return;
            };
            let ours = config.resolve(alias);
            assert_eq!(ours.hostname, theirs.hostname, "hostname of {alias}");
            assert_eq!(ours.port, theirs.port, "port of {alias}");
            assert_eq!(ours.user, theirs.user, "user of {alias}");
            assert_eq!(
                ours.identity_files, theirs.identity_files,
                "identityfile of {alias}"
            );
            assert_eq!(
                ours.user_known_hosts_files, theirs.user_known_hosts_files,
                "userknownhostsfile of {alias}"
            );
            assert_eq!(
                Some(ours.strict_host_key_checking),
                theirs.strict_host_key_checking,
                "stricthostkeychecking of {alias}"
            );
            assert_eq!(ours.identities_only, theirs.identities_only, "{alias}");
            assert_eq!(ours.proxy_jump, theirs.proxy_jump, "proxyjump of {alias}");
            assert_eq!(
                ours.proxy_command, theirs.proxy_command,
                "proxycommand of {alias}"
            );
            assert_eq!(ours.connect_timeout, theirs.connect_timeout, "{alias}");
            assert_eq!(
                ours.server_alive_interval, theirs.server_alive_interval,
                "{alias}"
            );
            assert_eq!(
                ours.server_alive_count_max, theirs.server_alive_count_max,
                "{alias}"
            );
        }
    }
}
