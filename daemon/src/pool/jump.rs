//! ProxyJump chains: `[user@]host[:port]` hops, comma-separated, as in
//! ssh_config(5) and `ssh -J` (the `ssh://user@host:port` form too).

use sshmcp_proto::{Error, ErrorKind};

/// One hop of a ProxyJump chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

/// Split `spec` into the hops before the last one (joined back into a
/// ProxyJump value, if any) and the last hop, which is the one the target
/// is reached through.
pub fn last_hop(spec: &str) -> Result<(Option<String>, Hop), Error> {
    let hops: Vec<&str> = spec.split(',').map(str::trim).collect();
    let (last, before) = hops
        .split_last()
        .ok_or_else(|| bad(spec, "it names no host"))?;
    let rest = (!before.is_empty()).then(|| before.join(","));
    Ok((rest, parse_hop(spec, last)?))
}

fn parse_hop(spec: &str, hop: &str) -> Result<Hop, Error> {
    let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
    let (user, rest) = match hop.rsplit_once('@') {
        Some((user, rest)) if !user.is_empty() => (Some(user.to_string()), rest),
        Some(_) => return Err(bad(spec, "a hop has an empty user name")),
        None => (None, hop),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| bad(spec, "an IPv6 address lacks its closing `]`"))?;
        (host, after.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() {
        return Err(bad(spec, "a hop names no host"));
    }
    let port = match port {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad(spec, &format!("`{p}` is not a port")))?,
        ),
        None => None,
    };
    Ok(Hop {
        user,
        host: host.to_string(),
        port,
    })
}

fn bad(spec: &str, why: &str) -> Error {
    Error::new(
        ErrorKind::BadRequest,
        format!("ProxyJump `{spec}` in the ssh config is not usable: {why}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_alias_is_the_last_hop() {
        let (rest, hop) = last_hop("bastion").unwrap();
        assert_eq!(rest, None);
        assert_eq!(hop.host, "bastion");
        assert_eq!((hop.user, hop.port), (None, None));
    }

    #[test]
    fn chains_split_at_the_last_hop() {
        let (rest, hop) = last_hop("a,ops@b:2222").unwrap();
        assert_eq!(rest.as_deref(), Some("a"));
        assert_eq!(hop.user.as_deref(), Some("ops"));
        assert_eq!(hop.host, "b");
        assert_eq!(hop.port, Some(2222));
    }

    #[test]
    fn uri_and_ipv6_forms_parse() {
        let (_, hop) = last_hop("ssh://me@[::1]:22").unwrap();
        assert_eq!(hop.host, "::1");
        assert_eq!(hop.port, Some(22));
    }

    #[test]
    fn bad_ports_are_named() {
        let err = last_hop("b:http").unwrap_err();
        assert!(
            err.message.contains("`http` is not a port"),
            "{}",
            err.message
        );
    }
}
