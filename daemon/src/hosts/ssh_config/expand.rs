//! What ssh does to values before it uses them: `~` and `~user`, `%`
//! tokens, `${VAR}` from the environment, and the host name's own `%h`
//! and canonical spelling.
//!
//! The grammar is checked at load ([`check_tokens`]), with the line's
//! number in the error; the values are only known per alias, so the
//! expansion itself runs at resolve time.

use std::net::{Ipv4Addr, Ipv6Addr};

use sha1::{Digest, Sha1};

use super::SshConfigError;
use super::local_user::{LocalUser, home_of};
use super::parse::{Keyword, Line};

/// `%` tokens OpenSSH expands in IdentityFile, IdentityAgent and
/// UserKnownHostsFile (`DEFAULT_CLIENT_PERCENT_EXPAND_ARGS`).
pub(super) const PATH_TOKENS: &str = "CdhiklLnpru";

/// `%` tokens OpenSSH expands in HostName.
pub(super) const HOSTNAME_TOKENS: &str = "h";

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
pub(super) fn check_tokens(
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

/// ssh's treatment of path-like values: `~` first, then `${VAR}` and `%`
/// tokens. The load-time checks make failure impossible except for
/// things that changed since (a user deleted, a variable unset); those
/// parts are left as written, so the daemon's error names them.
pub(super) fn expand_path(raw: &str, tokens: &Tokens, local: &LocalUser) -> String {
    let tilde_expanded = tilde_expand(raw, local).unwrap_or_else(|| raw.to_owned());
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

/// OpenSSH's `tilde_expand()`: a leading `~` or `~/` is the local user's
/// home, `~name` that user's home; `None` if `name` is unknown.
pub(super) fn tilde_expand(path: &str, local: &LocalUser) -> Option<String> {
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
        home_of(user)?
    };
    let mut expanded = home.to_string_lossy().into_owned();
    if !expanded.ends_with('/') {
        expanded.push('/');
    }
    expanded.push_str(rest);
    Some(expanded)
}

/// HostName's own expansion: only `%h` (the alias) and `%%`.
pub(super) fn expand_hostname(hostname: &str, alias: &str) -> String {
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
pub(super) fn canonical_hostname(host: String) -> String {
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
pub(super) struct Tokens {
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
    pub(super) fn new(
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

    pub(super) fn get(&self, token: char) -> Option<&str> {
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

/// SHA-1 in hex, needed only for the `%C` token, which OpenSSH defines as
/// the SHA-1 of `%l%h%p%r`. Not used for anything security-relevant.
fn sha1_hex(data: &[u8]) -> String {
    Sha1::digest(data)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    use crate::hosts::ssh_config::fixtures::{alice, parse, parse_error, paths};

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
        let root_home = home_of("root").unwrap();
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
}
