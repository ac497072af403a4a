//! ProxyJump's grammar, in one place: comma-separated hops, each
//! `[user@]host[:port]` or `ssh://[user@]host[:port]` (an IPv6 address in
//! brackets), or `none`. Hops are parsed once, when the config is read, so a
//! malformed one is an error naming its file and line, and the pool only
//! ever sees typed hops.

use std::fmt;

use super::parse::parse_port;

/// One hop of a ProxyJump chain: a host to connect to on the way to the
/// target, with the user and port that override its own config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JumpHop {
    /// Login name on the hop, instead of its configured User.
    pub user: Option<String>,
    /// The hop's name, itself resolved through the ssh config (an alias or
    /// a host name; an IPv6 address without its brackets).
    pub host: String,
    /// Port on the hop, instead of its configured Port.
    pub port: Option<u16>,
}

/// ProxyJump's value, its comment cut off: the hops in the order they
/// are travelled, none for `none`. An error says which hop is wrong and
/// why.
pub(super) fn parse_hops(value: &str) -> Result<Vec<JumpHop>, String> {
    if value.eq_ignore_ascii_case("none") {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|hop| {
            JumpHop::parse(hop).map_err(|why| {
                format!(
                    "ProxyJump hop `{hop}` is not [user@]host[:port] or ssh://[user@]host[:port]: {why}"
                )
            })
        })
        .collect()
}

impl JumpHop {
    /// One hop, checked as OpenSSH's `parse_user_host_port()` does (plus:
    /// no blanks, which no host name contains, and no `/` for a port). An
    /// empty port means the default, and a port may be a service name.
    fn parse(hop: &str) -> Result<JumpHop, String> {
        let spec = hop.strip_prefix("ssh://").unwrap_or(hop);
        if spec.contains(char::is_whitespace) {
            return Err("it contains a blank".to_owned());
        }
        let (user, host_port) = match spec.rsplit_once('@') {
            Some(("", _)) => return Err("the user name before `@` is empty".to_owned()),
            Some((user, host_port)) => (Some(user.to_owned()), host_port),
            None => (None, spec),
        };
        let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
            let Some((host, after)) = bracketed.split_once(']') else {
                return Err("an IPv6 address lacks its closing `]`".to_owned());
            };
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("`{after}` follows `]`, where only :port may")),
                },
            }
        } else {
            match host_port.find([':', '/']) {
                None => (host_port, None),
                Some(at) if host_port[at..].starts_with(':') => {
                    (&host_port[..at], Some(&host_port[at + 1..]))
                }
                Some(_) => return Err("a port follows `:`, not `/`".to_owned()),
            }
        };
        if host.is_empty() {
            return Err("it names no host".to_owned());
        }
        let port = match port {
            None | Some("") => None,
            Some(port) => Some(parse_port(port).ok_or_else(|| format!("`{port}` is not a port"))?),
        };
        Ok(JumpHop {
            user,
            host: host.to_owned(),
            port,
        })
    }
}

/// The hop as ProxyJump would name it, for messages.
impl fmt::Display for JumpHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::ssh_config::fixtures::{parse, parse_error};

    fn plain(host: &str) -> JumpHop {
        JumpHop {
            user: None,
            host: host.to_owned(),
            port: None,
        }
    }

    #[test]
    fn a_single_alias_is_the_last_hop() {
        let hops = parse_hops("bastion").unwrap();
        let (hop, before) = hops.split_last().unwrap();
        assert!(before.is_empty());
        assert_eq!(hop.host, "bastion");
        assert_eq!((hop.user.as_deref(), hop.port), (None, None));
    }

    #[test]
    fn chains_split_at_the_last_hop() {
        let hops = parse_hops("a,ops@b:2222").unwrap();
        let (hop, before) = hops.split_last().unwrap();
        assert_eq!(before, [plain("a")]);
        assert_eq!(hop.user.as_deref(), Some("ops"));
        assert_eq!(hop.host, "b");
        assert_eq!(hop.port, Some(2222));
    }

    #[test]
    fn uri_and_ipv6_forms_parse() {
        let hops = parse_hops("ssh://me@[::1]:22").unwrap();
        let hop = hops.last().unwrap();
        assert_eq!(hop.host, "::1");
        assert_eq!(hop.port, Some(22));
    }

    #[test]
    fn bad_ports_are_named() {
        let message = parse_hops("b:nope").unwrap_err();
        assert!(message.contains("`nope` is not a port"), "{message}");
    }

    #[test]
    fn proxy_jump_none_wins_when_first() {
        let config = parse("Host direct\n  ProxyJump none\nHost *\n  ProxyJump bastion\n");
        assert!(config.resolve("direct").proxy_jump.is_empty());
        assert_eq!(config.resolve("x").proxy_jump, [plain("bastion")]);
    }

    #[test]
    fn proxy_jump_and_proxy_command_exclude_each_other_first_wins() {
        let config = parse(
            "Host cmd\n  ProxyCommand nc %h %p\nHost jump\n  ProxyJump ops@bastion:2222,ssh://edge\n\
             Host *\n  ProxyJump other\n  ProxyCommand ignored\n",
        );
        let cmd = config.resolve("cmd");
        assert_eq!(cmd.proxy_command.as_deref(), Some("nc %h %p"));
        assert!(cmd.proxy_jump.is_empty());
        let jump = config.resolve("jump");
        let ops = JumpHop {
            user: Some("ops".to_owned()),
            host: "bastion".to_owned(),
            port: Some(2222),
        };
        assert_eq!(jump.proxy_jump, [ops, plain("edge")]);
        assert_eq!(jump.proxy_command, None);
        assert!(parse_error("ProxyJump :::\n").contains("ProxyJump hop"));
    }

    #[test]
    fn proxy_jump_none_does_not_rule_out_a_later_proxy_command() {
        let config = parse("ProxyJump none\nProxyCommand nc %h %p\n");
        let host = config.resolve("x");
        assert!(host.proxy_jump.is_empty());
        assert_eq!(host.proxy_command.as_deref(), Some("nc %h %p"));
        let blocked = parse("ProxyCommand none\nProxyJump bastion\n").resolve("x");
        assert_eq!(
            (blocked.proxy_jump, blocked.proxy_command),
            (Vec::new(), None)
        );
    }
}
