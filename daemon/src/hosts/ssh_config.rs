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

use std::borrow::Cow;
use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, File};
use std::io::{self, Read};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// OpenSSH gives up on Includes nested deeper than this (`READCONF_MAX_DEPTH`).
const MAX_INCLUDE_DEPTH: usize = 16;

/// OpenSSH uses at most this many identity files (`SSH_MAX_IDENTITY_FILES`).
const MAX_IDENTITY_FILES: usize = 100;

/// OpenSSH takes at most this many `UserKnownHostsFile` entries (`SSH_MAX_HOSTS_FILES`).
const MAX_KNOWN_HOSTS_FILES: usize = 32;

/// What OpenSSH treats as blanks between tokens (`WHITESPACE` in `misc.h`).
const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

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

/// `%` tokens OpenSSH expands in IdentityFile, IdentityAgent and
/// UserKnownHostsFile (`DEFAULT_CLIENT_PERCENT_EXPAND_ARGS`).
const PATH_TOKENS: &str = "CdhiklLnpru";

/// `%` tokens OpenSSH expands in HostName.
const HOSTNAME_TOKENS: &str = "h";

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

/// The local account a config is resolved for: what ssh reads from the
/// password database and `gethostname()`.
///
/// It is a value rather than a global lookup so that tests, and a daemon
/// serving another user, can say exactly whose view of the config they want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUser {
    /// Login name: the default `User`, `%u`, and what `Match localuser` tests.
    pub name: String,
    /// Real uid: `%i`, and who may own config files besides root.
    pub uid: u32,
    /// Home directory: `~`, `%d`, and where relative Includes live (`~/.ssh`).
    pub home: PathBuf,
    /// Local host name with domain: `%l`; up to the first dot it is `%L`.
    pub hostname: String,
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
    /// Jump hosts, as written (`[user@]host[:port]`, comma-separated);
    /// `None` when unset or `none`.
    pub proxy_jump: Option<String>,
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
        MAX_INCLUDE_DEPTH
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
                    *active = criteria
                        .iter()
                        .all(|criterion| self.criterion_holds(criterion, alias, obtained));
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

    fn criterion_holds(&self, criterion: &Criterion, alias: &str, obtained: &Obtained) -> bool {
        let hit = match &criterion.kind {
            CriterionKind::All => true,
            CriterionKind::Host(patterns) => {
                // ssh matches against the HostName obtained so far, with %h
                // expanded from the alias, ignoring case.
                let host = obtained
                    .hostname
                    .as_deref()
                    .map_or_else(|| alias.to_owned(), |h| expand_hostname(h, alias));
                match_pattern_list(&host.to_ascii_lowercase(), patterns, true)
            }
            CriterionKind::OriginalHost(patterns) => {
                match_pattern_list(&alias.to_ascii_lowercase(), patterns, true)
            }
            CriterionKind::User(patterns) => {
                let user = obtained.user.as_deref().unwrap_or(&self.local.name);
                match_pattern_list(user, patterns, false)
            }
            CriterionKind::LocalUser(patterns) => {
                match_pattern_list(&self.local.name, patterns, false)
            }
            CriterionKind::Unsupported => return false,
        };
        hit != criterion.negated
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
        .map(|file| PathBuf::from(self.expand_path(file, &tokens)))
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
                .map(|file| PathBuf::from(self.expand_path(file, &tokens)))
                .collect()
        };

        let not_none = |value: &String| !value.eq_ignore_ascii_case("none");
        let proxy_jump = obtained.proxy_jump.filter(not_none);
        let proxy_command = obtained.proxy_command.filter(not_none);

        ResolvedHost {
            alias: alias.to_owned(),
            identity_agent: obtained
                .identity_agent
                .map(|agent| self.expand_path(&agent, &tokens)),
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
            proxy_jump,
            proxy_command,
            host_key_alias,
            connect_timeout: seconds(obtained.connect_timeout),
            server_alive_interval: seconds(obtained.server_alive_interval),
            server_alive_count_max: obtained.server_alive_count_max.unwrap_or(3),
        }
    }

    /// ssh's treatment of path-like values: `~` first, then `${VAR}` and `%`
    /// tokens. The load-time checks make failure impossible except for
    /// things that changed since (a user deleted, a variable unset); those
    /// parts are left as written, so the daemon's error names them.
    fn expand_path(&self, raw: &str, tokens: &Tokens) -> String {
        let tilde_expanded = tilde_expand(raw, &self.local).unwrap_or_else(|| raw.to_owned());
        expand(
            &tilde_expanded,
            true,
            &|token| tokens.get(token).map(str::to_owned),
            &mut |name| {
                std::env::var_os(name).map_or_else(
                    || format!("${{{name}}}"),
                    |value| value.to_string_lossy().into_owned(),
                )
            },
        )
        .unwrap_or(tilde_expanded)
    }
}

impl LocalUser {
    /// The account running this process, as ssh looks it up: the password
    /// database entry of the real uid (not `$USER` or `$HOME`), and
    /// `gethostname()`.
    pub fn current() -> Result<LocalUser, SshConfigError> {
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        let entry =
            passwd_entry(&PasswdKey::Uid(uid)).ok_or(SshConfigError::UnknownLocalUser { uid })?;
        Ok(LocalUser {
            name: entry.name,
            uid,
            home: entry.home,
            hostname: local_hostname().map_err(SshConfigError::LocalHostname)?,
        })
    }
}

/// One line of config that matters for resolution, in file order.
#[derive(Debug, Clone)]
enum Item {
    /// `Host` patterns: the following settings apply only if they match.
    Host(Vec<HostPattern>),
    /// `Match` criteria, all of which must hold.
    Match(Vec<Criterion>),
    /// A setting, applied if the current block matches and nothing earlier
    /// set it.
    Set(Setting),
    /// The parsed files an `Include` pulled in, in glob order.
    Include(Vec<Vec<Item>>),
}

#[derive(Debug, Clone)]
struct HostPattern {
    pattern: String,
    negated: bool,
}

#[derive(Debug, Clone)]
struct Criterion {
    negated: bool,
    kind: CriterionKind,
}

#[derive(Debug, Clone)]
enum CriterionKind {
    All,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// A criterion sshmcpd cannot evaluate (`exec`, `final`, ...): the block
    /// never applies, and a warning was recorded at load.
    Unsupported,
}

/// A validated setting, as written (expansion happens per alias).
#[derive(Debug, Clone)]
enum Setting {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(String),
    IdentitiesOnly(bool),
    IdentityAgent(String),
    UserKnownHostsFile(Vec<String>),
    StrictHostKeyChecking(StrictHostKeyChecking),
    ProxyJump(String),
    ProxyCommand(String),
    HostKeyAlias(String),
    /// Seconds; `None` for `none`, which leaves the value unset.
    ConnectTimeout(Option<u32>),
    ServerAliveInterval(Option<u32>),
    ServerAliveCountMax(u32),
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
    proxy_jump: Option<String>,
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
            Setting::ProxyJump(v) if v.eq_ignore_ascii_case("none") => {
                self.proxy_jump.get_or_insert_with(|| "none".to_owned());
            }
            Setting::ProxyJump(v) => {
                if self.proxy_jump.is_none() && self.proxy_command.is_none() {
                    self.proxy_jump = Some(v.clone());
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

/// The keywords sshmcpd reads. Everything else is ignored without a look,
/// since the daemon has no use for it (ssh would reject unknown ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    Host,
    Match,
    Include,
    HostName,
    Port,
    User,
    IdentityFile,
    IdentitiesOnly,
    IdentityAgent,
    UserKnownHostsFile,
    StrictHostKeyChecking,
    ProxyJump,
    ProxyCommand,
    HostKeyAlias,
    ConnectTimeout,
    ServerAliveInterval,
    ServerAliveCountMax,
}

impl Keyword {
    const ALL: [Keyword; 17] = [
        Keyword::Host,
        Keyword::Match,
        Keyword::Include,
        Keyword::HostName,
        Keyword::Port,
        Keyword::User,
        Keyword::IdentityFile,
        Keyword::IdentitiesOnly,
        Keyword::IdentityAgent,
        Keyword::UserKnownHostsFile,
        Keyword::StrictHostKeyChecking,
        Keyword::ProxyJump,
        Keyword::ProxyCommand,
        Keyword::HostKeyAlias,
        Keyword::ConnectTimeout,
        Keyword::ServerAliveInterval,
        Keyword::ServerAliveCountMax,
    ];

    /// Keywords are case-insensitive in ssh_config.
    fn parse(word: &str) -> Option<Keyword> {
        Self::ALL
            .into_iter()
            .find(|keyword| keyword.name().eq_ignore_ascii_case(word))
    }

    /// The spelling the man page uses, for messages.
    fn name(self) -> &'static str {
        match self {
            Keyword::Host => "Host",
            Keyword::Match => "Match",
            Keyword::Include => "Include",
            Keyword::HostName => "HostName",
            Keyword::Port => "Port",
            Keyword::User => "User",
            Keyword::IdentityFile => "IdentityFile",
            Keyword::IdentitiesOnly => "IdentitiesOnly",
            Keyword::IdentityAgent => "IdentityAgent",
            Keyword::UserKnownHostsFile => "UserKnownHostsFile",
            Keyword::StrictHostKeyChecking => "StrictHostKeyChecking",
            Keyword::ProxyJump => "ProxyJump",
            Keyword::ProxyCommand => "ProxyCommand",
            Keyword::HostKeyAlias => "HostKeyAlias",
            Keyword::ConnectTimeout => "ConnectTimeout",
            Keyword::ServerAliveInterval => "ServerAliveInterval",
            Keyword::ServerAliveCountMax => "ServerAliveCountMax",
        }
    }
}

/// Where a line came from, so errors and warnings can point at it.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    path: &'a Path,
    number: usize,
}

impl Line<'_> {
    fn error(self, message: impl Into<String>) -> SshConfigError {
        SshConfigError::Syntax {
            path: self.path.to_owned(),
            line: self.number,
            message: message.into(),
        }
    }

    fn warning(self, message: &str) -> String {
        format!("{}, line {}: {message}", self.path.display(), self.number)
    }
}

/// Reads config files into [`Item`] trees, following Includes and collecting
/// warnings on the way.
struct Parser<'a> {
    local: &'a LocalUser,
    warnings: Vec<String>,
}

impl<'a> Parser<'a> {
    fn new(local: &'a LocalUser) -> Self {
        Parser {
            local,
            warnings: Vec::new(),
        }
    }

    /// Read and parse one file; `None` if it does not exist, which ssh
    /// ignores both for `~/.ssh/config` and for Includes.
    fn read_file(
        &mut self,
        path: &Path,
        depth: usize,
    ) -> Result<Option<Vec<Item>>, SshConfigError> {
        let io_error = |source| SshConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        let metadata = file.metadata().map_err(io_error)?;
        check_permissions(path, &metadata, self.local.uid)?;
        if metadata.is_dir() {
            // ssh opens a directory matched by an Include glob, reads no
            // lines from it and carries on.
            return Ok(Some(Vec::new()));
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io_error)?;
        let text = decode(bytes, path)?;
        self.parse_text(&text, path, depth).map(Some)
    }

    fn parse_text(
        &mut self,
        text: &str,
        path: &Path,
        depth: usize,
    ) -> Result<Vec<Item>, SshConfigError> {
        let mut items = Vec::new();
        for (index, raw) in text.split('\n').enumerate() {
            let at = Line {
                path,
                number: index + 1,
            };
            if let Some(item) = self.parse_line(raw, at, depth)? {
                items.push(item);
            }
        }
        Ok(items)
    }

    /// One line, split the way OpenSSH splits it: the keyword ends at a
    /// blank or a single `=`; the arguments are shell-like words (quotes,
    /// backslash escapes, `#` comments at the start of a word).
    fn parse_line(
        &mut self,
        raw: &str,
        at: Line<'_>,
        depth: usize,
    ) -> Result<Option<Item>, SshConfigError> {
        let line = raw.trim_end_matches([' ', '\t', '\r', '\n', '\x0c']);
        let mut rest = Some(line);
        let Some(mut word) = strdelim(&mut rest) else {
            return Ok(None);
        };
        if word.is_empty() {
            let Some(next) = strdelim(&mut rest) else {
                return Ok(None);
            };
            word = next;
        }
        if word.is_empty() || word.starts_with('#') {
            return Ok(None);
        }
        let Some(keyword) = Keyword::parse(&word) else {
            return Ok(None);
        };
        let rest = rest.unwrap_or_default().trim_start_matches(WHITESPACE);
        if rest.is_empty() {
            return Err(at.error(format!("{} needs an argument", keyword.name())));
        }
        let args = argv_split(rest)
            .ok_or_else(|| at.error("a quoted argument is not closed; add the missing quote"))?;

        let setting = match keyword {
            Keyword::Host => return parse_host(&args, at).map(Some),
            Keyword::Match => return self.parse_match(rest, at).map(Some),
            Keyword::Include => return self.parse_include(&args, at, depth).map(Some),
            Keyword::HostName => {
                let value = single(keyword, &args, at)?;
                check_tokens(keyword, &value, HOSTNAME_TOKENS, false, at)?;
                Setting::HostName(value)
            }
            Keyword::Port => Setting::Port(parse_port_arg(&single(keyword, &args, at)?, at)?),
            Keyword::User => Setting::User(single(keyword, &args, at)?),
            Keyword::IdentityFile => {
                let value = single(keyword, &args, at)?;
                self.check_path(keyword, &value, at)?;
                Setting::IdentityFile(value)
            }
            Keyword::IdentitiesOnly => {
                Setting::IdentitiesOnly(parse_flag(keyword, &single(keyword, &args, at)?, at)?)
            }
            Keyword::IdentityAgent => {
                Setting::IdentityAgent(parse_identity_agent(&single(keyword, &args, at)?, at)?)
            }
            Keyword::UserKnownHostsFile => {
                Setting::UserKnownHostsFile(self.parse_known_hosts(&args, at)?)
            }
            Keyword::StrictHostKeyChecking => {
                Setting::StrictHostKeyChecking(parse_strict(&single(keyword, &args, at)?, at)?)
            }
            Keyword::ProxyJump => Setting::ProxyJump(parse_proxy_jump(rest, at)?),
            Keyword::ProxyCommand => {
                // ssh keeps the rest of the line verbatim: it is a shell command.
                let command = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
                if command.is_empty() {
                    return Err(at.error("ProxyCommand needs a command, or `none`"));
                }
                Setting::ProxyCommand(command.to_owned())
            }
            Keyword::HostKeyAlias => Setting::HostKeyAlias(single(keyword, &args, at)?),
            Keyword::ConnectTimeout => {
                Setting::ConnectTimeout(parse_time(keyword, &single(keyword, &args, at)?, at)?)
            }
            Keyword::ServerAliveInterval => {
                Setting::ServerAliveInterval(parse_time(keyword, &single(keyword, &args, at)?, at)?)
            }
            Keyword::ServerAliveCountMax => Setting::ServerAliveCountMax(parse_count(
                keyword,
                &single(keyword, &args, at)?,
                at,
            )?),
        };
        Ok(Some(Item::Set(setting)))
    }

    /// `Match` criteria, tokenised as ssh does for this keyword only
    /// (`strdelim`: blanks or one `=`, double quotes).
    fn parse_match(&mut self, rest: &str, at: Line<'_>) -> Result<Item, SshConfigError> {
        let mut criteria = Vec::new();
        let mut unsupported = Vec::new();
        let mut attributes = 0;
        let mut cursor = Some(rest);
        while let Some(word) = strdelim(&mut cursor) {
            if word.is_empty() || word.starts_with('#') {
                break;
            }
            let (negated, name) = match word.strip_prefix('!') {
                Some(name) => (true, name),
                None => (false, word.as_str()),
            };
            let name = name.to_ascii_lowercase();
            if name == "all" {
                let next = strdelim(&mut cursor);
                let more = next
                    .as_deref()
                    .is_some_and(|next| !next.is_empty() && !next.starts_with('#'));
                if attributes > 1 || more {
                    return Err(at.error(format!(
                        "Match `{word}` cannot be combined with other criteria"
                    )));
                }
                criteria.push(Criterion {
                    negated,
                    kind: CriterionKind::All,
                });
                self.warn_unsupported(&unsupported, at);
                return Ok(Item::Match(criteria));
            }
            attributes += 1;
            if name == "canonical" || name == "final" {
                unsupported.push(word.clone());
                criteria.push(Criterion {
                    negated,
                    kind: CriterionKind::Unsupported,
                });
                continue;
            }
            let Some(argument) = strdelim(&mut cursor)
                .filter(|argument| !argument.is_empty() && !argument.starts_with('#'))
            else {
                return Err(at.error(format!("Match `{word}` needs a pattern")));
            };
            let kind = match name.as_str() {
                "host" => CriterionKind::Host(argument),
                "originalhost" => CriterionKind::OriginalHost(argument),
                "user" => CriterionKind::User(argument),
                "localuser" => CriterionKind::LocalUser(argument),
                "exec" | "localnetwork" | "tagged" | "version" | "sessiontype" | "command" => {
                    unsupported.push(format!("{word} {argument}"));
                    CriterionKind::Unsupported
                }
                _ => {
                    return Err(at.error(format!(
                        "unknown Match criterion `{word}`; ssh knows all, host, originalhost, user, localuser, exec, canonical and final"
                    )));
                }
            };
            criteria.push(Criterion { negated, kind });
        }
        if attributes == 0 {
            return Err(at.error("Match needs at least one criterion, e.g. `Match host NAME`"));
        }
        self.warn_unsupported(&unsupported, at);
        Ok(Item::Match(criteria))
    }

    fn warn_unsupported(&mut self, unsupported: &[String], at: Line<'_>) {
        if unsupported.is_empty() {
            return;
        }
        let list = unsupported
            .iter()
            .map(|criterion| format!("`{criterion}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.warnings.push(at.warning(&format!(
            "sshmcpd does not evaluate Match {list}, so this Match block never applies here (ssh may apply it)"
        )));
    }

    /// `Include`: each argument is a glob; relative ones live in `~/.ssh`.
    /// Matching files are parsed now, whether or not the surrounding block
    /// will ever apply, exactly as ssh parses them ("parse only").
    fn parse_include(
        &mut self,
        args: &[String],
        at: Line<'_>,
        depth: usize,
    ) -> Result<Item, SshConfigError> {
        let mut files = Vec::new();
        for arg in args {
            if arg.is_empty() {
                return Err(at.error("Include has an empty file name"));
            }
            let pattern = if arg.starts_with('/') || arg.starts_with('~') {
                Cow::Borrowed(arg.as_str())
            } else {
                Cow::Owned(format!("~/.ssh/{arg}"))
            };
            for path in glob(&glob_tilde(&pattern, &self.local.home)) {
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(SshConfigError::IncludeTooDeep {
                        path: at.path.to_owned(),
                        line: at.number,
                    });
                }
                if let Some(items) = self.read_file(&path, depth + 1)? {
                    files.push(items);
                }
            }
        }
        Ok(Item::Include(files))
    }

    fn parse_known_hosts(
        &mut self,
        args: &[String],
        at: Line<'_>,
    ) -> Result<Vec<String>, SshConfigError> {
        if args.is_empty() {
            return Err(at.error("UserKnownHostsFile needs at least one file, or `none`"));
        }
        if args.len() > MAX_KNOWN_HOSTS_FILES {
            return Err(at.error(format!(
                "UserKnownHostsFile lists more than {MAX_KNOWN_HOSTS_FILES} files"
            )));
        }
        for file in args {
            if file.is_empty() {
                return Err(at.error("UserKnownHostsFile has an empty file name"));
            }
            if file.eq_ignore_ascii_case("none") {
                if args.len() > 1 {
                    return Err(at.error(
                        "UserKnownHostsFile `none` must appear alone; remove it or the other files",
                    ));
                }
                continue;
            }
            self.check_path(Keyword::UserKnownHostsFile, file, at)?;
        }
        Ok(args.to_vec())
    }

    /// Check a path-like value now, so a typo fails at load with its line
    /// number rather than at connect time (where ssh would fail too).
    /// Things that depend on the environment only warn: ssh would refuse to
    /// connect to hosts using the line, but other hosts are unaffected.
    fn check_path(
        &mut self,
        keyword: Keyword,
        value: &str,
        at: Line<'_>,
    ) -> Result<(), SshConfigError> {
        for variable in check_tokens(keyword, value, PATH_TOKENS, true, at)? {
            self.warnings.push(at.warning(&format!(
                "${{{variable}}} is not set in sshmcpd's environment; ssh would refuse to connect to hosts that use this {}",
                keyword.name()
            )));
        }
        if tilde_expand(value, self.local).is_none() {
            self.warnings.push(at.warning(&format!(
                "{} `{value}` names a user that does not exist; ssh would refuse to connect to hosts that use it",
                keyword.name()
            )));
        }
        Ok(())
    }
}

fn parse_host(args: &[String], at: Line<'_>) -> Result<Item, SshConfigError> {
    let mut patterns = Vec::with_capacity(args.len());
    for arg in args {
        if arg.is_empty() {
            return Err(at.error("Host has an empty pattern"));
        }
        let (negated, pattern) = match arg.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, arg.as_str()),
        };
        patterns.push(HostPattern {
            pattern: pattern.to_owned(),
            negated,
        });
    }
    Ok(Item::Host(patterns))
}

/// The one argument of a single-valued keyword.
fn single(keyword: Keyword, args: &[String], at: Line<'_>) -> Result<String, SshConfigError> {
    let Some(value) = args.first().filter(|value| !value.is_empty()) else {
        return Err(at.error(format!("{} needs a non-empty argument", keyword.name())));
    };
    if let Some(extra) = args.get(1) {
        return Err(at.error(format!(
            "{} takes one argument but also got `{extra}`; quote a value that contains spaces",
            keyword.name()
        )));
    }
    Ok(value.clone())
}

fn parse_port_arg(value: &str, at: Line<'_>) -> Result<u16, SshConfigError> {
    parse_port(value).ok_or_else(|| {
        at.error(format!(
            "Port `{value}` is not a number from 1 to 65535 or a service name from /etc/services"
        ))
    })
}

/// OpenSSH's `a2port()`: a decimal number, else a TCP service name; 0 is
/// not a port.
fn parse_port(value: &str) -> Option<u16> {
    let port = match value.parse::<u32>() {
        Ok(number) => u16::try_from(number).ok(),
        Err(_) => service_port(value),
    };
    port.filter(|&port| port != 0)
}

/// `getservbyname(name, "tcp")`, read straight from `/etc/services` so no
/// libc NSS state is shared with the daemon's other threads.
fn service_port(name: &str) -> Option<u16> {
    let services = fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let official = fields.next()?;
        let (port, protocol) = fields.next()?.split_once('/')?;
        let named = official == name || fields.any(|alias| alias == name);
        if named && protocol == "tcp" {
            port.parse().ok()
        } else {
            None
        }
    })
}

fn parse_flag(keyword: Keyword, value: &str, at: Line<'_>) -> Result<bool, SshConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(at.error(format!("{} `{value}` must be yes or no", keyword.name()))),
    }
}

fn parse_strict(value: &str, at: Line<'_>) -> Result<StrictHostKeyChecking, SshConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(StrictHostKeyChecking::Yes),
        "no" | "false" | "off" => Ok(StrictHostKeyChecking::No),
        "ask" => Ok(StrictHostKeyChecking::Ask),
        "accept-new" => Ok(StrictHostKeyChecking::AcceptNew),
        _ => Err(at.error(format!(
            "StrictHostKeyChecking `{value}` must be yes, accept-new, no, off or ask"
        ))),
    }
}

/// A time value in seconds, or `None` for `none` (which ssh treats as "not
/// set here", so a later line may still set it).
fn parse_time(keyword: Keyword, value: &str, at: Line<'_>) -> Result<Option<u32>, SshConfigError> {
    if value == "none" {
        return Ok(None);
    }
    convtime(value).map(Some).ok_or_else(|| {
        at.error(format!(
            "{} `{value}` is not a time; use seconds or numbers with units s, m, h, d, w (e.g. 30 or 1m30s)",
            keyword.name()
        ))
    })
}

/// OpenSSH's `convtime()`: a sum of numbers with optional unit suffixes,
/// at most `INT_MAX` seconds.
fn convtime(value: &str) -> Option<u32> {
    const LIMIT: u64 = i32::MAX as u64;
    if value.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut rest = value;
    while !rest.is_empty() {
        let body = rest.strip_prefix('+').unwrap_or(rest);
        let digits = body.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let number: u64 = body.get(..digits)?.parse().ok()?;
        let after = body.get(digits..)?;
        let (multiplier, unit_len) = match after.chars().next() {
            None => (1, 0),
            Some('s' | 'S') => (1, 1),
            Some('m' | 'M') => (60, 1),
            Some('h' | 'H') => (60 * 60, 1),
            Some('d' | 'D') => (24 * 60 * 60, 1),
            Some('w' | 'W') => (7 * 24 * 60 * 60, 1),
            Some(_) => return None,
        };
        total = total.checked_add(number.checked_mul(multiplier)?)?;
        if total > LIMIT {
            return None;
        }
        rest = after.get(unit_len..)?;
    }
    u32::try_from(total).ok()
}

/// OpenSSH's `atoi_err()`: a whole number from 0 to `INT_MAX`.
fn parse_count(keyword: Keyword, value: &str, at: Line<'_>) -> Result<u32, SshConfigError> {
    let problem = match value.parse::<i64>() {
        Ok(number) if number < 0 => "is negative",
        Ok(number) => match u32::try_from(number) {
            Ok(count) if number <= i64::from(i32::MAX) => return Ok(count),
            _ => "is too large",
        },
        Err(_) => "is not a whole number",
    };
    Err(at.error(format!("{} `{value}` {problem}", keyword.name())))
}

/// IdentityAgent is checked harder than other paths because ssh checks it
/// when reading the line: `${VAR}` must be set, even in blocks that never
/// apply, and a legacy `$VAR` must be a valid variable name.
fn parse_identity_agent(value: &str, at: Line<'_>) -> Result<String, SshConfigError> {
    let unset = check_tokens(Keyword::IdentityAgent, value, PATH_TOKENS, true, at)?;
    if let Some(variable) = unset.first() {
        return Err(at.error(format!(
            "IdentityAgent refers to ${{{variable}}}, which is not set in sshmcpd's environment; set it or name the socket directly"
        )));
    }
    if let Some(name) = value.strip_prefix('$')
        && !name.starts_with('{')
        && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(at.error(format!(
            "IdentityAgent `{value}` is not a valid environment variable reference"
        )));
    }
    Ok(value.to_owned())
}

/// ProxyJump takes the rest of the line: comma-separated hops, each
/// `[user@]host[:port]` or `ssh://[user@]host[:port]`, or `none`.
fn parse_proxy_jump(rest: &str, at: Line<'_>) -> Result<String, SshConfigError> {
    let value = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
    let value = value.split('#').next().unwrap_or_default().trim_end();
    if value.is_empty() {
        return Err(at.error("ProxyJump needs a jump host, or `none`"));
    }
    if value.eq_ignore_ascii_case("none") {
        return Ok(value.to_owned());
    }
    if let Some(hop) = value.split(',').find(|hop| !valid_jump_hop(hop)) {
        return Err(at.error(format!(
            "ProxyJump hop `{hop}` is not [user@]host[:port] or ssh://[user@]host[:port]"
        )));
    }
    Ok(value.to_owned())
}

/// One ProxyJump hop, checked as OpenSSH's `parse_user_host_port()` does
/// (plus: no blanks, which no host name contains).
fn valid_jump_hop(hop: &str) -> bool {
    let spec = hop.strip_prefix("ssh://").unwrap_or(hop);
    if spec.is_empty() || spec.contains(char::is_whitespace) {
        return false;
    }
    let host_port = match spec.rsplit_once('@') {
        Some(("", _)) => return false,
        Some((_, host_port)) => host_port,
        None => spec,
    };
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return false;
        };
        match after {
            "" => (host, None),
            _ => match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None => return false,
            },
        }
    } else {
        match host_port.find([':', '/']) {
            None => (host_port, None),
            Some(at) if host_port[at..].starts_with(':') => {
                (&host_port[..at], Some(&host_port[at + 1..]))
            }
            Some(_) => return false,
        }
    };
    !host.is_empty() && port.is_none_or(|port| port.is_empty() || parse_port(port).is_some())
}

/// Why `%`/`${}` expansion failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ExpandError {
    UnknownToken(char),
    LonePercent,
    UnclosedVariable,
    EmptyVariable,
}

/// OpenSSH's `percent_dollar_expand()`: `${VAR}` (when `dollar`), `%%`, and
/// `%x` for each token `token` knows. `env` supplies variables.
fn expand(
    text: &str,
    dollar: bool,
    token: &dyn Fn(char) -> Option<String>,
    env: &mut dyn FnMut(&str) -> String,
) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if dollar && let Some(body) = rest.strip_prefix("${") {
            let end = body.find('}').ok_or(ExpandError::UnclosedVariable)?;
            let (name, after) = body.split_at(end);
            if name.is_empty() {
                return Err(ExpandError::EmptyVariable);
            }
            out.push_str(&env(name));
            rest = after.strip_prefix('}').unwrap_or(after);
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(t) = rest.chars().next() else {
            return Err(ExpandError::LonePercent);
        };
        rest = &rest[t.len_utf8()..];
        if t == '%' {
            out.push('%');
        } else {
            out.push_str(&token(t).ok_or(ExpandError::UnknownToken(t))?);
        }
    }
    Ok(out)
}

/// Validate the tokens in `value` against `allowed`; returns the `${VAR}`
/// names that are not set in the environment.
fn check_tokens(
    keyword: Keyword,
    value: &str,
    allowed: &str,
    dollar: bool,
    at: Line<'_>,
) -> Result<Vec<String>, SshConfigError> {
    let mut unset = Vec::new();
    let checked = expand(
        value,
        dollar,
        &|token| allowed.contains(token).then(String::new),
        &mut |name| {
            if std::env::var_os(name).is_none() {
                unset.push(name.to_owned());
            }
            String::new()
        },
    );
    let valid = || {
        allowed
            .chars()
            .map(|token| format!("%{token}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let problem = match checked {
        Ok(_) => return Ok(unset),
        Err(ExpandError::UnknownToken(token)) => format!(
            "unknown token %{token}; {} understands {} and %% for a literal %",
            keyword.name(),
            valid()
        ),
        Err(ExpandError::LonePercent) => "ends in a lone %; write %% for a literal %".to_owned(),
        Err(ExpandError::UnclosedVariable) => "has `${` without a closing `}`".to_owned(),
        Err(ExpandError::EmptyVariable) => "has an empty `${}`".to_owned(),
    };
    Err(at.error(format!("{} `{value}`: {problem}", keyword.name())))
}

/// HostName's own expansion: only `%h` (the alias) and `%%`.
fn expand_hostname(hostname: &str, alias: &str) -> String {
    expand(
        hostname,
        false,
        &|token| (token == 'h').then(|| alias.to_owned()),
        &mut |_| String::new(),
    )
    .unwrap_or_else(|_| hostname.to_owned())
}

/// What ssh does to the host name after expansion: names are lowercased;
/// numeric addresses are left alone, except that a form the resolver
/// rewrites (`127.1`, `FE80::0:1`) becomes its canonical spelling.
fn canonical_hostname(host: String) -> String {
    let canonical = match host.parse::<Ipv6Addr>() {
        Ok(v6) => Some(v6.to_string()),
        Err(_) => inet_aton(&host).map(|v4| v4.to_string()),
    };
    if let Some(canonical) = canonical {
        return if canonical.eq_ignore_ascii_case(&host) {
            host
        } else {
            canonical
        };
    }
    // What ssh's is_addr_fast() takes for an address (say, one with a
    // scope id) keeps its case.
    let looks_numeric =
        host.contains([':', '%']) || host.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if looks_numeric {
        host
    } else {
        host.to_ascii_lowercase()
    }
}

/// `inet_aton()`, which glibc's numeric-host parsing accepts: one to four
/// parts, each decimal, octal (`0` prefix) or hex (`0x`), the last filling
/// the remaining bytes.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let parts = text
        .split('.')
        .map(c_number)
        .collect::<Option<Vec<u64>>>()?;
    let (last, leading) = parts.split_last()?;
    if leading.len() > 3 || leading.iter().any(|&part| part > 0xff) {
        return None;
    }
    let last_bits = 32 - 8 * leading.len();
    if *last >= 1u64 << last_bits {
        return None;
    }
    let mut address = u32::try_from(*last).ok()?;
    for (index, &part) in leading.iter().enumerate() {
        address |= u32::try_from(part).ok()? << (24 - 8 * index);
    }
    Some(Ipv4Addr::from(address))
}

/// An unsigned number as C's `strtoul(…, 0)` reads it, whole string only.
fn c_number(text: &str) -> Option<u64> {
    let (digits, radix) =
        if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            (hex, 16)
        } else if text.len() > 1 && text.starts_with('0') {
            (&text[1..], 8)
        } else {
            (text, 10)
        };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Values for the `%` tokens of path-like keywords, for one resolved host.
struct Tokens {
    /// `%C`: SHA-1 of `%l%h%p%r`, as ssh computes it.
    connection_hash: String,
    /// `%d`
    home: String,
    /// `%h`
    host: String,
    /// `%i`
    uid: String,
    /// `%k`
    key_alias: String,
    /// `%l`
    local_host: String,
    /// `%L`
    local_host_short: String,
    /// `%n`
    alias: String,
    /// `%p`
    port: String,
    /// `%r`
    remote_user: String,
    /// `%u`
    local_user: String,
}

impl Tokens {
    fn new(
        local: &LocalUser,
        alias: &str,
        host: &str,
        port: u16,
        remote_user: &str,
        host_key_alias: Option<&str>,
    ) -> Tokens {
        let port = port.to_string();
        let short = local
            .hostname
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        Tokens {
            connection_hash: sha1_hex(
                format!("{}{host}{port}{remote_user}", local.hostname).as_bytes(),
            ),
            home: local.home.to_string_lossy().into_owned(),
            host: host.to_owned(),
            uid: local.uid.to_string(),
            key_alias: host_key_alias.unwrap_or(alias).to_owned(),
            local_host: local.hostname.clone(),
            local_host_short: short,
            alias: alias.to_owned(),
            port,
            remote_user: remote_user.to_owned(),
            local_user: local.name.clone(),
        }
    }

    fn get(&self, token: char) -> Option<&str> {
        let value = match token {
            'C' => &self.connection_hash,
            'd' => &self.home,
            'h' => &self.host,
            'i' => &self.uid,
            'k' => &self.key_alias,
            'l' => &self.local_host,
            'L' => &self.local_host_short,
            'n' => &self.alias,
            'p' => &self.port,
            'r' => &self.remote_user,
            'u' => &self.local_user,
            _ => return None,
        };
        Some(value)
    }
}

/// OpenSSH's `tilde_expand()`: a leading `~` or `~/` is the local user's
/// home, `~name` that user's home; `None` if `name` is unknown.
fn tilde_expand(path: &str, local: &LocalUser) -> Option<String> {
    let Some(after) = path.strip_prefix('~') else {
        return Some(path.to_owned());
    };
    let (user, rest) = match after.split_once('/') {
        Some((user, rest)) => (user, rest.trim_start_matches('/')),
        None => (after, ""),
    };
    let home = if user.is_empty() {
        local.home.clone()
    } else {
        passwd_entry(&PasswdKey::Name(CString::new(user).ok()?))?.home
    };
    let mut expanded = home.to_string_lossy().into_owned();
    if !expanded.ends_with('/') {
        expanded.push('/');
    }
    expanded.push_str(rest);
    Some(expanded)
}

/// glob(3)'s `GLOB_TILDE` for Include: `~` is the home directory, `~name`
/// that user's; an unknown user is left as written (and matches nothing).
fn glob_tilde<'p>(pattern: &'p str, home: &Path) -> Cow<'p, str> {
    let Some(after) = pattern.strip_prefix('~') else {
        return Cow::Borrowed(pattern);
    };
    let (user, rest) = match after.find('/') {
        Some(slash) => after.split_at(slash),
        None => (after, ""),
    };
    let home = if user.is_empty() {
        home.to_owned()
    } else {
        let Some(entry) = CString::new(user)
            .ok()
            .and_then(|name| passwd_entry(&PasswdKey::Name(name)))
        else {
            return Cow::Borrowed(pattern);
        };
        entry.home
    };
    Cow::Owned(format!("{}{rest}", home.to_string_lossy()))
}

/// Expand an Include pattern like glob(3) without flags: `*`, `?` and
/// `[...]` in any path component, leading dots matched only explicitly,
/// only existing paths, sorted bytewise (glob's order in the C locale).
fn glob(pattern: &str) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::from(if pattern.starts_with('/') {
        "/"
    } else {
        "."
    })];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        if component.contains(['*', '?', '[']) {
            for dir in &found {
                let Ok(entries) = fs::read_dir(dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let name = name.as_bytes();
                    let hidden = name.first() == Some(&b'.') && !component.starts_with('.');
                    if !hidden && fnmatch(component.as_bytes(), name) {
                        next.push(dir.join(OsStr::from_bytes(name)));
                    }
                }
            }
        } else {
            let literal = unescape(component);
            next.extend(found.iter().map(|dir| dir.join(&literal)));
        }
        found = next;
    }
    found.retain(|path| fs::symlink_metadata(path).is_ok());
    found.sort_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    found.dedup();
    found
}

/// A literal glob component: backslash makes the next character literal.
fn unescape(component: &str) -> String {
    let mut out = String::with_capacity(component.len());
    let mut chars = component.chars();
    while let Some(c) = chars.next() {
        out.push(if c == '\\' {
            chars.next().unwrap_or('\\')
        } else {
            c
        });
    }
    out
}

/// fnmatch(3) for one path component: `*`, `?`, `[...]` (with `!`/`^`
/// negation and ranges), `\` escapes.
fn fnmatch(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while n < name.len() {
        if pattern.get(p) == Some(&b'*') {
            p += 1;
            backtrack = Some((p, n));
            continue;
        }
        if let Some(width) = match_one(&pattern[p.min(pattern.len())..], name[n]) {
            p += width;
            n += 1;
            continue;
        }
        match backtrack {
            Some((star_p, star_n)) => {
                p = star_p;
                n = star_n + 1;
                backtrack = Some((star_p, star_n + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Does the first pattern element (not `*`) match `c`? Returns its width.
fn match_one(pattern: &[u8], c: u8) -> Option<usize> {
    match *pattern.first()? {
        b'?' => Some(1),
        b'\\' if pattern.len() > 1 => (pattern[1] == c).then_some(2),
        b'[' => match bracket(pattern, c) {
            Some((true, width)) => Some(width),
            Some((false, _)) => None,
            // No closing bracket: a literal `[`.
            None => (c == b'[').then_some(1),
        },
        literal => (literal == c).then_some(1),
    }
}

/// A `[...]` class at the start of `pattern`: whether `c` is in it and the
/// class's width; `None` if the class is not closed.
fn bracket(pattern: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negated = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negated {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let low = *pattern.get(i)?;
        if low == b']' && !first {
            return Some((matched != negated, i + 1));
        }
        first = false;
        if pattern.get(i + 1) == Some(&b'-') && pattern.get(i + 2).is_some_and(|&h| h != b']') {
            let high = pattern[i + 2];
            matched |= low <= c && c <= high;
            i += 3;
        } else {
            matched |= low == c;
            i += 1;
        }
    }
}

/// OpenSSH's `match_pattern()`: `*` and `?` wildcards, case-sensitive.
fn match_pattern(text: &str, pattern: &str) -> bool {
    let (text, pattern) = (text.as_bytes(), pattern.as_bytes());
    let (mut p, mut t) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                backtrack = Some((p, t));
                continue;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
                continue;
            }
            _ => {}
        }
        match backtrack {
            Some((star_p, star_t)) => {
                p = star_p;
                t = star_t + 1;
                backtrack = Some((star_p, star_t + 1));
            }
            None => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// OpenSSH's `match_pattern_list()`: comma-separated patterns, `!`
/// negations veto; true only for a positive match and no negated one.
fn match_pattern_list(text: &str, list: &str, lowercase: bool) -> bool {
    let mut positive = false;
    for pattern in list.split(',') {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(pattern) => (true, pattern),
            None => (false, pattern),
        };
        let pattern = if lowercase {
            Cow::Owned(pattern.to_ascii_lowercase())
        } else {
            Cow::Borrowed(pattern)
        };
        if match_pattern(text, &pattern) {
            if negated {
                return false;
            }
            positive = true;
        }
    }
    positive
}

/// A `Host` line: any matching `!pattern` rules the block out, else any
/// matching pattern rules it in. Matched against the alias as typed.
fn host_matches(patterns: &[HostPattern], alias: &str) -> bool {
    let mut matched = false;
    for pattern in patterns {
        if match_pattern(alias, &pattern.pattern) {
            if pattern.negated {
                return false;
            }
            matched = true;
        }
    }
    matched
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

/// OpenSSH's `strdelim()`: the next word, ended by a blank or a single `=`
/// (surrounding blanks skipped), with `"..."` quoting. `None` when the
/// input is used up or a quote is not closed.
fn strdelim(cursor: &mut Option<&str>) -> Option<String> {
    let text = (*cursor)?;
    let Some(stop) = text.find([' ', '\t', '\r', '\n', '"', '=']) else {
        *cursor = None;
        return Some(text.to_owned());
    };
    let (head, tail) = text.split_at(stop);
    if let Some(quoted) = tail.strip_prefix('"') {
        let Some(close) = quoted.find('"') else {
            *cursor = None;
            return None;
        };
        let (inside, after) = quoted.split_at(close);
        *cursor = Some(after[1..].trim_start_matches(WHITESPACE));
        return Some(format!("{head}{inside}"));
    }
    let was_equals = tail.starts_with('=');
    let mut rest = tail[1..].trim_start_matches(WHITESPACE);
    if !was_equals && let Some(after_equals) = rest.strip_prefix('=') {
        rest = after_equals.trim_start_matches(WHITESPACE);
    }
    *cursor = Some(rest);
    Some(head.to_owned())
}

/// OpenSSH's `argv_split()` with comments: words split on blanks, `'` and
/// `"` quoting, `\` escaping a quote, backslash or (unquoted) blank, and
/// `#` at the start of a word ending the line. `None` on an open quote.
fn argv_split(text: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|&c| c == ' ' || c == '\t').is_some() {}
        match chars.peek() {
            None | Some('#') => return Some(args),
            Some(_) => {}
        }
        let mut arg = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match c {
                '\\' => match chars.peek() {
                    Some(&next)
                        if next == '\''
                            || next == '"'
                            || next == '\\'
                            || (quote.is_none() && next == ' ') =>
                    {
                        arg.push(next);
                        chars.next();
                    }
                    _ => arg.push('\\'),
                },
                ' ' | '\t' if quote.is_none() => break,
                '"' | '\'' if quote.is_none() => quote = Some(c),
                c if Some(c) == quote => quote = None,
                c => arg.push(c),
            }
        }
        if quote.is_some() {
            return None;
        }
        args.push(arg);
    }
}

/// ssh's "Bad owner or permissions" rule: a config file must belong to the
/// user or root and must not be writable by group or others.
fn check_permissions(path: &Path, metadata: &fs::Metadata, uid: u32) -> Result<(), SshConfigError> {
    let owner_ok = metadata.uid() == 0 || metadata.uid() == uid;
    if !owner_ok || metadata.mode() & 0o022 != 0 {
        return Err(SshConfigError::InsecurePermissions {
            path: path.to_owned(),
        });
    }
    Ok(())
}

/// Config files are text; a file that is not UTF-8 is reported with the
/// line where the first bad byte sits.
fn decode(bytes: Vec<u8>, path: &Path) -> Result<String, SshConfigError> {
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let line = error
            .as_bytes()
            .iter()
            .take(valid)
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        SshConfigError::Syntax {
            path: path.to_owned(),
            line,
            message: "is not valid UTF-8; save the file as UTF-8".to_owned(),
        }
    })
}

fn seconds(value: Option<u32>) -> Option<Duration> {
    value
        .filter(|&secs| secs > 0)
        .map(|secs| Duration::from_secs(u64::from(secs)))
}

/// The parts of a password-database entry that ssh uses.
struct PasswdEntry {
    name: String,
    home: PathBuf,
}

enum PasswdKey {
    Uid(libc::uid_t),
    Name(CString),
}

/// `getpwuid_r`/`getpwnam_r`: the reentrant forms, since the daemon resolves
/// hosts from many threads.
fn passwd_entry(key: &PasswdKey) -> Option<PasswdEntry> {
    let mut buffer_len: usize = 1024;
    loop {
        let mut buffer: Vec<libc::c_char> = vec![0; buffer_len];
        // SAFETY: `passwd` is plain old data; all zeroes is a valid value
        // that the call below overwrites.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the duration of the call,
        // `buffer.len()` is the buffer's real size, and the `_r` variants
        // keep no shared static state.
        let rc = unsafe {
            match key {
                PasswdKey::Uid(uid) => libc::getpwuid_r(
                    *uid,
                    &mut entry,
                    buffer.as_mut_ptr(),
                    buffer.len(),
                    &mut result,
                ),
                PasswdKey::Name(name) => libc::getpwnam_r(
                    name.as_ptr(),
                    &mut entry,
                    buffer.as_mut_ptr(),
                    buffer.len(),
                    &mut result,
                ),
            }
        };
        if rc == libc::ERANGE && buffer_len < 1 << 20 {
            buffer_len *= 4;
            continue;
        }
        if rc != 0 || result.is_null() || entry.pw_name.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: on success both fields point at NUL-terminated strings
        // inside `buffer`, which is still alive.
        let (name, home) = unsafe { (CStr::from_ptr(entry.pw_name), CStr::from_ptr(entry.pw_dir)) };
        return Some(PasswdEntry {
            name: name.to_string_lossy().into_owned(),
            home: PathBuf::from(OsStr::from_bytes(home.to_bytes())),
        });
    }
}

fn local_hostname() -> io::Result<String> {
    let mut buffer = [0u8; 257];
    // SAFETY: `buffer` is writable for the length passed, which leaves one
    // byte that stays NUL whatever gethostname writes.
    let rc = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len() - 1) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let name = CStr::from_bytes_until_nul(&buffer).map_err(io::Error::other)?;
    Ok(name.to_string_lossy().into_owned())
}

/// SHA-1, needed only for the `%C` token, which OpenSSH defines as the
/// SHA-1 of `%l%h%p%r`. Not used for anything security-relevant.
fn sha1_hex(data: &[u8]) -> String {
    let mut state: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = state;
        for (i, &word) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let next = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = next;
        }
        for (word, add) in state.iter_mut().zip([a, b, c, d, e]) {
            *word = word.wrapping_add(add);
        }
    }
    state.iter().map(|word| format!("{word:08x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};

    const HOME: &str = "/home/alice";

    fn alice() -> LocalUser {
        LocalUser {
            name: "alice".to_owned(),
            uid: LocalUser::current().unwrap().uid,
            home: PathBuf::from(HOME),
            hostname: "build.example.com".to_owned(),
        }
    }

    fn parse(text: &str) -> SshConfig {
        SshConfig::parse_str_as(text, Path::new("/test/config"), alice()).unwrap()
    }

    fn parse_error(text: &str) -> String {
        SshConfig::parse_str_as(text, Path::new("/test/config"), alice())
            .unwrap_err()
            .to_string()
    }

    /// Write a config file with the permissions ssh insists on.
    fn write_config(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).unwrap();
    }

    fn paths(list: &[&str]) -> Vec<PathBuf> {
        list.iter().map(PathBuf::from).collect()
    }

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
                proxy_jump: None,
                proxy_command: None,
                host_key_alias: None,
                connect_timeout: None,
                server_alive_interval: None,
                server_alive_count_max: 3,
            }
        );
    }

    #[test]
    fn keywords_are_case_insensitive_and_take_equals_signs() {
        let config = parse(
            "host web\n  HOSTNAME=web.example.com\n  port = 2200\n  User =deploy\n  \
             ConnectTimeout= 15\n",
        );
        let host = config.resolve("web");
        assert_eq!(host.hostname, "web.example.com");
        assert_eq!(host.port, 2200);
        assert_eq!(host.user, "deploy");
        assert_eq!(host.connect_timeout, Some(Duration::from_secs(15)));
    }

    #[test]
    fn comments_blank_lines_and_quotes_are_read_like_ssh() {
        let config = parse(
            "# a comment\n\n   \t\nHost web # trailing comment\n  User \"first last\"\n  \
             IdentityFile 'key with spaces' # comment\n  HostName a#b\n",
        );
        let host = config.resolve("web");
        assert_eq!(host.user, "first last");
        assert_eq!(host.identity_files, paths(&["key with spaces"]));
        assert_eq!(host.hostname, "a#b", "`#` inside a word is not a comment");
    }

    #[test]
    fn backslash_escapes_a_blank() {
        let host = parse("User first\\ last\n").resolve("any");
        assert_eq!(host.user, "first last");
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
    fn host_patterns_take_wildcards_and_negation() {
        let config = parse("Host *.lab !bad.lab db?\n  User lab\n");
        assert_eq!(config.resolve("x.lab").user, "lab");
        assert_eq!(config.resolve("db1").user, "lab");
        assert_eq!(config.resolve("bad.lab").user, "alice");
        assert_eq!(config.resolve("db12").user, "alice");
    }

    #[test]
    fn negated_pattern_excludes_even_when_listed_first() {
        let config = parse("Host !bad.lab *.lab\n  User lab\n");
        assert_eq!(config.resolve("bad.lab").user, "alice");
        assert_eq!(config.resolve("good.lab").user, "lab");
    }

    #[test]
    fn host_matches_the_alias_as_typed_but_hostname_is_lowercased() {
        let config = parse("Host Web\n  Port 2200\n");
        let typed = config.resolve("Web");
        assert_eq!(typed.port, 2200);
        assert_eq!(typed.hostname, "web");
        assert_eq!(config.resolve("web").port, 22);
    }

    #[test]
    fn hostname_expands_percent_h_and_double_percent() {
        let config = parse("Host pct\n  HostName a%%b\nHost *\n  HostName %h.Internal.example\n");
        assert_eq!(config.resolve("Db").hostname, "db.internal.example");
        assert_eq!(config.resolve("pct").hostname, "a%b");
    }

    #[test]
    fn hostname_containing_percent_or_colon_keeps_its_case_like_ssh() {
        // ssh takes such names for addresses (`FE80::1%eth0`) and leaves them alone.
        let config = parse("Host *\n  HostName %h.Example%%\n");
        assert_eq!(config.resolve("Db").hostname, "Db.Example%");
    }

    #[test]
    fn numeric_hostnames_are_normalised_like_the_resolver_does() {
        let config = parse(
            "Host v6\n  HostName FE80::0:1\nHost v6upper\n  HostName FE80::ABCD\n\
             Host short\n  HostName 127.1\nHost octal\n  HostName 010.0.0.1\n",
        );
        assert_eq!(config.resolve("v6").hostname, "fe80::1");
        assert_eq!(config.resolve("v6upper").hostname, "FE80::ABCD");
        assert_eq!(config.resolve("short").hostname, "127.0.0.1");
        assert_eq!(config.resolve("octal").hostname, "8.0.0.1");
    }

    #[test]
    fn unknown_hostname_token_is_an_error_naming_the_line() {
        let message = parse_error("Host a\n  HostName %z.example\n");
        assert!(message.starts_with("/test/config, line 2:"), "{message}");
        assert!(message.contains("%z"), "{message}");
    }

    #[test]
    fn match_host_sees_the_hostname_obtained_so_far() {
        let config = parse(
            "Host db\n  HostName DB.Internal\nMatch host db.internal\n  Port 5022\n\
             Match originalhost db.internal\n  User never\n",
        );
        let host = config.resolve("db");
        assert_eq!(host.port, 5022);
        assert_eq!(host.user, "alice");
    }

    #[test]
    fn match_originalhost_ignores_case() {
        let config = parse("Match originalhost WEB\n  Port 2200\n");
        assert_eq!(config.resolve("web").port, 2200);
    }

    #[test]
    fn match_host_takes_comma_lists_with_negation() {
        let config = parse("Match host *.lab,!bad.lab\n  Port 2200\n");
        assert_eq!(config.resolve("good.lab").port, 2200);
        assert_eq!(config.resolve("bad.lab").port, 22);
    }

    #[test]
    fn match_user_sees_the_user_obtained_so_far() {
        let config =
            parse("Match user root\n  Port 1\nHost web\n  User root\nMatch user root\n  Port 2\n");
        assert_eq!(config.resolve("web").port, 2);
        assert_eq!(config.resolve("other").port, 22);
    }

    #[test]
    fn match_localuser_tests_the_local_account() {
        let config = parse("Match localuser alice\n  Port 2200\nMatch localuser bob\n  User x\n");
        let host = config.resolve("web");
        assert_eq!(host.port, 2200);
        assert_eq!(host.user, "alice");
    }

    #[test]
    fn match_criteria_must_all_hold_and_can_be_negated() {
        let config =
            parse("Match host web !user alice\n  Port 1\nMatch host=web !user bob\n  Port 2\n");
        assert_eq!(config.resolve("web").port, 2);
    }

    #[test]
    fn match_all_applies_everywhere_and_stands_alone() {
        assert_eq!(parse("Match all\n  Port 2200\n").resolve("x").port, 2200);
        assert_eq!(parse("Match !all\n  Port 2200\n").resolve("x").port, 22);
        assert!(parse_error("Match all host x\n").contains("cannot be combined"));
    }

    #[test]
    fn unsupported_match_criteria_never_apply_and_are_reported() {
        let config = parse(
            "Match exec \"true\"\n  Port 1\nMatch !final\n  Port 2\nMatch host web\n  Port 3\n",
        );
        assert_eq!(config.resolve("web").port, 3);
        let warnings = config.warnings();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("/test/config, line 1:"),
            "{warnings:?}"
        );
        assert!(warnings[0].contains("`exec true`"), "{warnings:?}");
        assert!(warnings[1].contains("`!final`"), "{warnings:?}");
    }

    #[test]
    fn unknown_match_criterion_is_an_error() {
        assert!(parse_error("Match hots web\n").contains("unknown Match criterion `hots`"));
        assert!(parse_error("Match host\n").contains("needs a pattern"));
    }

    #[test]
    fn unknown_keywords_are_ignored() {
        let host =
            parse("ForwardAgent yes\nSendEnv LANG LC_*\nNoSuchKeyword\nPort 2200\n").resolve("web");
        assert_eq!(host.port, 2200);
    }

    #[test]
    fn bad_port_is_an_error_naming_file_and_line() {
        for bad in ["Port abc", "Port 0", "Port 65536", "Port -1"] {
            let message = parse_error(&format!("Host web\n  {bad}\n"));
            assert!(
                message.starts_with("/test/config, line 2: Port `"),
                "{message}"
            );
        }
        assert!(parse_error("Port 22 23\n").contains("takes one argument"));
        assert!(parse_error("Port\n").contains("needs an argument"));
    }

    #[test]
    fn bad_lines_are_errors_even_in_blocks_that_never_match() {
        let message = parse_error("Host never\n  Port abc\n");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn port_may_be_a_service_name_or_padded_number() {
        assert_eq!(parse("Port 0022\n").resolve("x").port, 22);
        if fs::read_to_string("/etc/services").is_ok_and(|s| s.contains("\nssh\t")) {
            assert_eq!(parse("Port ssh\n").resolve("x").port, 22);
        }
    }

    #[test]
    fn unclosed_quote_is_an_error() {
        assert!(parse_error("User \"bob\n").contains("not closed"));
    }

    #[test]
    fn strict_host_key_checking_takes_ssh_spellings() {
        let cases = [
            ("yes", StrictHostKeyChecking::Yes),
            ("True", StrictHostKeyChecking::Yes),
            ("accept-new", StrictHostKeyChecking::AcceptNew),
            ("no", StrictHostKeyChecking::No),
            ("off", StrictHostKeyChecking::No),
            ("false", StrictHostKeyChecking::No),
            ("ASK", StrictHostKeyChecking::Ask),
        ];
        for (value, expected) in cases {
            let host = parse(&format!("StrictHostKeyChecking {value}\n")).resolve("x");
            assert_eq!(host.strict_host_key_checking, expected, "{value}");
        }
        assert!(parse_error("StrictHostKeyChecking maybe\n").contains("must be yes"));
    }

    #[test]
    fn identities_only_is_a_yes_no_flag() {
        assert!(parse("IdentitiesOnly YES\n").resolve("x").identities_only);
        assert!(!parse("IdentitiesOnly no\n").resolve("x").identities_only);
        assert!(parse_error("IdentitiesOnly maybe\n").contains("yes or no"));
    }

    #[test]
    fn time_values_take_units_and_zero_means_off() {
        let host = parse("ConnectTimeout 1m30s\nServerAliveInterval 2M\nServerAliveCountMax 0\n")
            .resolve("x");
        assert_eq!(host.connect_timeout, Some(Duration::from_secs(90)));
        assert_eq!(host.server_alive_interval, Some(Duration::from_secs(120)));
        assert_eq!(host.server_alive_count_max, 0);
        let off = parse("ConnectTimeout 0\nServerAliveInterval 0\n").resolve("x");
        assert_eq!(off.connect_timeout, None);
        assert_eq!(off.server_alive_interval, None);
        assert!(parse_error("ConnectTimeout 5x\n").contains("is not a time"));
        assert!(parse_error("ServerAliveCountMax -1\n").contains("is negative"));
    }

    #[test]
    fn time_value_none_leaves_it_to_later_lines() {
        let host = parse("ConnectTimeout none\nConnectTimeout 7\n").resolve("x");
        assert_eq!(host.connect_timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn proxy_jump_none_wins_when_first() {
        let config = parse("Host direct\n  ProxyJump none\nHost *\n  ProxyJump bastion\n");
        assert_eq!(config.resolve("direct").proxy_jump, None);
        assert_eq!(config.resolve("x").proxy_jump.as_deref(), Some("bastion"));
    }

    #[test]
    fn proxy_jump_and_proxy_command_exclude_each_other_first_wins() {
        let config = parse(
            "Host cmd\n  ProxyCommand nc %h %p\nHost jump\n  ProxyJump ops@bastion:2222,ssh://edge\n\
             Host *\n  ProxyJump other\n  ProxyCommand ignored\n",
        );
        let cmd = config.resolve("cmd");
        assert_eq!(cmd.proxy_command.as_deref(), Some("nc %h %p"));
        assert_eq!(cmd.proxy_jump, None);
        let jump = config.resolve("jump");
        assert_eq!(
            jump.proxy_jump.as_deref(),
            Some("ops@bastion:2222,ssh://edge")
        );
        assert_eq!(jump.proxy_command, None);
        assert!(parse_error("ProxyJump :::\n").contains("ProxyJump hop"));
    }

    #[test]
    fn proxy_jump_none_does_not_rule_out_a_later_proxy_command() {
        let config = parse("ProxyJump none\nProxyCommand nc %h %p\n");
        let host = config.resolve("x");
        assert_eq!(host.proxy_jump, None);
        assert_eq!(host.proxy_command.as_deref(), Some("nc %h %p"));
        let blocked = parse("ProxyCommand none\nProxyJump bastion\n").resolve("x");
        assert_eq!((blocked.proxy_jump, blocked.proxy_command), (None, None));
    }

    #[test]
    fn path_tokens_expand_like_ssh() {
        let config = parse(
            "Host web\n  HostName Web.Example\n  User deploy\n  Port 2200\n  \
             IdentityFile ~/keys/%d|%u|%h|%p|%r|%n|%l|%L|%i|%k|%%\n  \
             UserKnownHostsFile %d/kh/%C\n  HostKeyAlias WebKey\n",
        );
        let host = config.resolve("web");
        let uid = alice().uid;
        assert_eq!(
            host.identity_files,
            vec![PathBuf::from(format!(
                "/home/alice/keys//home/alice|alice|web.example|2200|deploy|web|build.example.com|build|{uid}|webkey|%"
            ))]
        );
        let hash = sha1_hex(b"build.example.comweb.example2200deploy");
        assert_eq!(
            host.user_known_hosts_files,
            vec![PathBuf::from(format!("/home/alice/kh/{hash}"))]
        );
        assert_eq!(host.host_key_alias.as_deref(), Some("webkey"));
    }

    #[test]
    fn tilde_names_another_users_home() {
        let root_home = passwd_entry(&PasswdKey::Name(CString::new("root").unwrap()))
            .unwrap()
            .home;
        let host = parse("UserKnownHostsFile ~root/kh ~ ~//x a~/b\n").resolve("x");
        assert_eq!(
            host.user_known_hosts_files,
            vec![
                root_home.join("kh"),
                PathBuf::from("/home/alice/"),
                PathBuf::from("/home/alice/x"),
                PathBuf::from("a~/b"),
            ]
        );
    }

    #[test]
    fn environment_references_expand_in_paths() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let host = parse(
            "IdentityFile ${CARGO_MANIFEST_DIR}/key\nIdentityAgent ${CARGO_MANIFEST_DIR}/agent\n",
        )
        .resolve("x");
        assert_eq!(
            host.identity_files,
            vec![PathBuf::from(format!("{dir}/key"))]
        );
        assert_eq!(host.identity_agent, Some(format!("{dir}/agent")));
    }

    #[test]
    fn identity_agent_keeps_none_and_variable_names_as_written() {
        for value in ["none", "SSH_AUTH_SOCK", "$SSH_AUTH_SOCK"] {
            let host = parse(&format!("IdentityAgent {value}\n")).resolve("x");
            assert_eq!(host.identity_agent.as_deref(), Some(value));
        }
        let host = parse("IdentityAgent ~/.gnupg/S.gpg-agent.%u\n").resolve("x");
        assert_eq!(
            host.identity_agent.as_deref(),
            Some("/home/alice/.gnupg/S.gpg-agent.alice")
        );
    }

    #[test]
    fn identity_agent_with_unset_variable_is_an_error() {
        let message = parse_error("Host never\n  IdentityAgent ${SSHMCP_TEST_SURELY_UNSET}\n");
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("SSHMCP_TEST_SURELY_UNSET"), "{message}");
        assert!(parse_error("IdentityAgent $not-a-name\n").contains("not a valid"));
    }

    #[test]
    fn identity_file_with_unset_variable_warns_and_stays_as_written() {
        let config = parse("IdentityFile ${SSHMCP_TEST_SURELY_UNSET}/key\n");
        assert_eq!(config.warnings().len(), 1);
        assert_eq!(
            config.resolve("x").identity_files,
            paths(&["${SSHMCP_TEST_SURELY_UNSET}/key"])
        );
    }

    #[test]
    fn unknown_path_token_is_an_error() {
        let message = parse_error("IdentityFile ~/.ssh/%j\n");
        assert!(message.contains("unknown token %j"), "{message}");
        assert!(parse_error("UserKnownHostsFile /kh/%\n").contains("lone %"));
        assert!(parse_error("IdentityFile ${HOME\n").contains("closing"));
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

    #[test]
    fn config_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        write_config(&path, "Port 2200\n");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o664)).unwrap();
        let error = SshConfig::load_as(&path, alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::InsecurePermissions { .. }),
            "{error}"
        );
    }

    #[test]
    fn include_with_wildcard_pulls_in_matching_files_in_sorted_order() {
        let dir = tempfile::tempdir().unwrap();
        let conf_d = dir.path().join("conf.d");
        fs::create_dir(&conf_d).unwrap();
        write_config(
            &conf_d.join("20-b.conf"),
            "Host b\n  Port 2\nHost web\n  User from-b\n",
        );
        write_config(
            &conf_d.join("10-a.conf"),
            "Host a\n  Port 1\nHost web\n  User from-a\n",
        );
        write_config(&conf_d.join(".hidden"), "Host hidden\n");
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {}/*.conf\n", conf_d.display()));
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.aliases(), vec!["a", "web", "b"]);
        assert_eq!(config.resolve("a").port, 1);
        assert_eq!(config.resolve("b").port, 2);
        assert_eq!(config.resolve("web").user, "from-a");
    }

    #[test]
    fn include_takes_several_patterns_and_character_classes() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["x1", "x2", "y"] {
            write_config(&dir.path().join(name), &format!("Host {name}\n"));
        }
        let root = dir.path().display();
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {root}/y {root}/x[!1]\n"));
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.aliases(), vec!["y", "x2"]);
    }

    #[test]
    fn relative_include_resolves_against_dot_ssh() {
        let home = tempfile::tempdir().unwrap();
        fs::create_dir(home.path().join(".ssh")).unwrap();
        write_config(&home.path().join(".ssh/extra"), "Host extra\n  Port 2200\n");
        let local = LocalUser {
            home: home.path().to_owned(),
            ..alice()
        };
        let config =
            SshConfig::parse_str_as("Include extra\n", Path::new("/test/config"), local).unwrap();
        assert_eq!(config.resolve("extra").port, 2200);
        let config =
            SshConfig::parse_str("Include ~/.ssh/extra\n", Path::new("x"), home.path()).unwrap();
        assert_eq!(config.resolve("extra").port, 2200);
    }

    #[test]
    fn include_inside_a_host_block_applies_only_when_that_block_matches() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "Port 2200\n");
        let main = dir.path().join("config");
        write_config(
            &main,
            &format!(
                "Host web\n  Include {}\nHost *\n  Port 2222\n",
                extra.display()
            ),
        );
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.resolve("web").port, 2200);
        assert_eq!(config.resolve("other").port, 2222);
    }

    #[test]
    fn host_block_inside_an_included_file_ends_with_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "User included\nHost elsewhere\n  User elsewhere\n");
        let main = dir.path().join("config");
        write_config(&main, &format!("Include {}\nPort 2200\n", extra.display()));
        let host = SshConfig::load_as(&main, alice()).unwrap().resolve("web");
        assert_eq!(host.user, "included");
        assert_eq!(
            host.port, 2200,
            "the includer's state is restored after the Include"
        );
    }

    #[test]
    fn missing_include_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        let root = dir.path().display();
        write_config(
            &main,
            &format!("Include {root}/nope {root}/none.d/*\nPort 2200\n"),
        );
        let config = SshConfig::load_as(&main, alice()).unwrap();
        assert_eq!(config.resolve("x").port, 2200);
    }

    #[test]
    fn include_recursion_is_an_error_even_in_a_block_that_never_matches() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("config");
        write_config(
            &main,
            &format!("Host never\n  Include {}\n", main.display()),
        );
        let error = SshConfig::load_as(&main, alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::IncludeTooDeep { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn included_file_writable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "Port 2200\n");
        fs::set_permissions(&extra, fs::Permissions::from_mode(0o666)).unwrap();
        let text = format!("Include {}\n", extra.display());
        let error = SshConfig::parse_str_as(&text, Path::new("x"), alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::InsecurePermissions { .. }),
            "{error}"
        );
    }

    #[test]
    fn errors_in_included_files_name_that_file() {
        let dir = tempfile::tempdir().unwrap();
        let extra = dir.path().join("extra");
        write_config(&extra, "\n\nPort nope\n");
        let text = format!("Include {}\n", extra.display());
        let message = SshConfig::parse_str_as(&text, Path::new("x"), alice())
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with(&format!("{}, line 3:", extra.display())),
            "{message}"
        );
    }

    #[test]
    fn file_that_is_not_utf8_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        fs::write(&path, b"Port 22\nUser \xff\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let error = SshConfig::load_as(&path, alice()).unwrap_err();
        assert!(
            matches!(error, SshConfigError::Syntax { line: 2, .. }),
            "{error}"
        );
    }

    #[test]
    fn sha1_matches_known_digests() {
        assert_eq!(sha1_hex(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        // What `ssh -G` printed for `%C` with %l=vm %h=t2 %p=22 %r=root.
        assert_eq!(
            sha1_hex(b"vmt222root"),
            "971b63097d906a1cc46b959f4c593530d6851242"
        );
        let long = [b'a'; 1000];
        assert_eq!(sha1_hex(&long), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    #[test]
    fn glob_wildcards_follow_fnmatch() {
        assert!(fnmatch(b"*.conf", b"a.conf"));
        assert!(!fnmatch(b"*.conf", b"a.conf.bak"));
        assert!(fnmatch(b"a?c", b"abc"));
        assert!(fnmatch(b"[a-c]x", b"bx"));
        assert!(!fnmatch(b"[!a-c]x", b"bx"));
        assert!(fnmatch(b"\\*", b"*"));
        assert!(!fnmatch(b"\\*", b"a"));
        assert!(fnmatch(b"[]]", b"]"));
        assert!(fnmatch(b"[", b"["));
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
        proxy_jump: Option<String>,
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
                "proxyjump" => seen.proxy_jump = Some(value.to_owned()),
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
