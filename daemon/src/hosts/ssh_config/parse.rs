//! Reading config files into a tree of [`Item`]s, the way OpenSSH's
//! `readconf.c` reads them: each line split into a keyword and shell-like
//! words, and every value sshmcpd uses validated on every line, even in
//! blocks that never apply, so that a config ssh rejects is rejected here
//! too, with its file and line.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::expand::{HOSTNAME_TOKENS, PATH_TOKENS, check_tokens, tilde_expand};
use super::jump::{JumpHop, parse_hops};
use super::local_user::LocalUser;
use super::pattern::{Criterion, CriterionKind, HostPattern};
use super::{SshConfigError, StrictHostKeyChecking};

/// OpenSSH takes at most this many `UserKnownHostsFile` entries (`SSH_MAX_HOSTS_FILES`).
const MAX_KNOWN_HOSTS_FILES: usize = 32;

/// What OpenSSH treats as blanks between tokens (`WHITESPACE` in `misc.h`).
const WHITESPACE: [char; 4] = [' ', '\t', '\r', '\n'];

/// One line of config that matters for resolution, in file order.
#[derive(Debug, Clone)]
pub(super) enum Item {
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

/// A validated setting, as written (expansion happens per alias).
#[derive(Debug, Clone)]
pub(super) enum Setting {
    HostName(String),
    Port(u16),
    User(String),
    IdentityFile(String),
    IdentitiesOnly(bool),
    IdentityAgent(String),
    UserKnownHostsFile(Vec<String>),
    StrictHostKeyChecking(StrictHostKeyChecking),
    /// No hops for `none`.
    ProxyJump(Vec<JumpHop>),
    ProxyCommand(String),
    HostKeyAlias(String),
    /// Seconds; `None` for `none`, which leaves the value unset.
    ConnectTimeout(Option<u32>),
    ServerAliveInterval(Option<u32>),
    ServerAliveCountMax(u32),
}

/// The keywords sshmcpd reads. Everything else is ignored without a look,
/// since the daemon has no use for it (ssh would reject unknown ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keyword {
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
    pub(super) fn name(self) -> &'static str {
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
pub(super) struct Line<'a> {
    pub(super) path: &'a Path,
    pub(super) number: usize,
}

impl Line<'_> {
    pub(super) fn error(self, message: impl Into<String>) -> SshConfigError {
        SshConfigError::Syntax {
            path: self.path.to_owned(),
            line: self.number,
            message: message.into(),
        }
    }

    pub(super) fn warning(self, message: &str) -> String {
        format!("{}, line {}: {message}", self.path.display(), self.number)
    }
}

/// Reads config files into [`Item`] trees, following Includes and collecting
/// warnings on the way.
pub(super) struct Parser<'a> {
    pub(super) local: &'a LocalUser,
    pub(super) warnings: Vec<String>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(local: &'a LocalUser) -> Self {
        Parser {
            local,
            warnings: Vec::new(),
        }
    }

    /// Read and parse one file; `None` if it does not exist, which ssh
    /// ignores both for `~/.ssh/config` and for Includes.
    pub(super) fn read_file(
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

    pub(super) fn parse_text(
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
pub(super) fn parse_port(value: &str) -> Option<u16> {
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
fn parse_proxy_jump(rest: &str, at: Line<'_>) -> Result<Vec<JumpHop>, SshConfigError> {
    let value = rest.trim_start_matches([' ', '\t', '\r', '\n', '=']);
    let value = value.split('#').next().unwrap_or_default().trim_end();
    if value.is_empty() {
        return Err(at.error("ProxyJump needs a jump host, or `none`"));
    }
    parse_hops(value).map_err(|message| at.error(message))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Duration;

    use crate::hosts::ssh_config::SshConfig;
    use crate::hosts::ssh_config::fixtures::{alice, parse, parse_error, paths, write_config};

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
}
