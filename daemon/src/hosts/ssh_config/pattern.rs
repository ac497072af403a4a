//! Which `Host` and `Match` blocks apply to an alias: OpenSSH's `*`/`?`
//! patterns, comma lists and `!` negation.
//!
//! ssh matches `Host` patterns against the alias exactly as typed, but
//! `Match host` against the HostName obtained so far, ignoring case; the
//! two live side by side here so the difference stays visible.

use std::borrow::Cow;

use super::expand::expand_hostname;

/// One pattern of a `Host` line, its `!` taken off.
#[derive(Debug, Clone)]
pub(super) struct HostPattern {
    pub(super) pattern: String,
    pub(super) negated: bool,
}

/// One criterion of a `Match` line, possibly negated with `!`.
#[derive(Debug, Clone)]
pub(super) struct Criterion {
    pub(super) negated: bool,
    pub(super) kind: CriterionKind,
}

/// What a `Match` criterion tests; each takes a pattern list.
#[derive(Debug, Clone)]
pub(super) enum CriterionKind {
    All,
    Host(String),
    OriginalHost(String),
    User(String),
    LocalUser(String),
    /// A criterion sshmcpd cannot evaluate (`exec`, `final`, ...): the block
    /// never applies, and a warning was recorded at load.
    Unsupported,
}

impl Criterion {
    /// Does this `Match` criterion hold for `alias`? `hostname` is the
    /// HostName obtained so far (unexpanded), `user` the remote user
    /// obtained so far (or its default) and `local_user` the local login.
    pub(super) fn holds(
        &self,
        alias: &str,
        hostname: Option<&str>,
        user: &str,
        local_user: &str,
    ) -> bool {
        let hit = match &self.kind {
            CriterionKind::All => true,
            CriterionKind::Host(patterns) => {
                // ssh matches against the HostName obtained so far, with %h
                // expanded from the alias, ignoring case.
                let host = hostname.map_or_else(|| alias.to_owned(), |h| expand_hostname(h, alias));
                match_pattern_list(&host.to_ascii_lowercase(), patterns, true)
            }
            CriterionKind::OriginalHost(patterns) => {
                match_pattern_list(&alias.to_ascii_lowercase(), patterns, true)
            }
            CriterionKind::User(patterns) => match_pattern_list(user, patterns, false),
            CriterionKind::LocalUser(patterns) => match_pattern_list(local_user, patterns, false),
            CriterionKind::Unsupported => return false,
        };
        hit != self.negated
    }
}

/// A `Host` line: any matching `!pattern` rules the block out, else any
/// matching pattern rules it in. Matched against the alias as typed.
pub(super) fn host_matches(patterns: &[HostPattern], alias: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use crate::hosts::ssh_config::fixtures::{parse, parse_error};

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
}
