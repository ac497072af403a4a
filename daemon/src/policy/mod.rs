//! What a client may do on a host: which command lines it may run and which
//! remote paths the file tools may touch, from `[policy.hosts."PATTERN"]`
//! and `[[policy.callers]]`.
//!
//! A host's access is `full`, `read-only` or `deny`, lowered (never raised)
//! by every caller rule that matches the client. Under `read-only`, or on a
//! `full` host with `allow_commands`, a line runs only when a real shell
//! parser (brush-parser) shows it to be plain commands joined by `;`,
//! `&&`, `||`, `|` or newlines, every word literal, and every command
//! allowed; wrappers (`sudo`, `env`, `timeout`, `xargs`, ...) are looked
//! through to what they run, and `find -exec` runs are judged as commands.
//! A regex over the raw line is talked around with `ls; rm x`, `$(…)`,
//! `env rm` or a look-alike of `;`; a parse is not. Anything the parse
//! cannot prove harmless is refused: a false refusal costs a rephrasing,
//! a false allow costs the host.
//!
//! Deny lists (`deny_commands`) are checked against every command of the
//! line, wrappers and their targets alike, and beat any allow. On a `full`
//! host they are a guard against asking for a command, not a sandbox: any
//! program may run `rm` itself. What the policy cannot see into (inline
//! code for an interpreter, `$(…)`, compound commands) is refused on a
//! host with a deny list, because it could hide the denied command.
//!
//! The judgement assumes the remote login shell is of the POSIX family
//! (sh, dash, bash, ksh, zsh): words are accepted only in forms those read
//! alike. Commands are judged as run without a terminal, as the exec op
//! runs them: with one, `systemctl` and `git log` start a pager (whose `!`
//! runs a shell) and `nohup` writes `nohup.out`.
//!
//! Nothing here does I/O: the dispatcher resolves the caller and, for
//! paths, the real remote path, and asks.

mod effect;
mod line;
mod programs;
mod sed;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use effect::{Effect, effect, reads};

use crate::config::{PolicySection, glob_matches};
use programs::{Class, Name};

/// How much a client may do on a host, from least to most.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// Nothing at all.
    Deny,
    /// Commands of the built-in read-only set (plus the host's
    /// `allow_commands`), and reading files.
    ReadOnly,
    /// Anything, within the host's allow and deny lists.
    #[default]
    Full,
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Access::Deny => "deny",
            Access::ReadOnly => "read-only",
            Access::Full => "full",
        })
    }
}

/// `[policy.hosts."PATTERN"]`: the rules for one host, or for the hosts a
/// pattern matches. One table applies to a host: its exact alias, else the
/// longest matching pattern; tables are not merged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostRules {
    /// `"full"` (default), `"read-only"` or `"deny"`.
    pub access: Access,
    /// argv prefixes such as `["systemctl", "status"]`. On a full host a
    /// non-empty list is the only commands that run; on a read-only host
    /// they run besides the built-in read-only set.
    pub allow_commands: Vec<Vec<String>>,
    /// Commands refused whatever else allows them: the command name, then
    /// these words in this order anywhere among its arguments.
    pub deny_commands: Vec<Vec<String>>,
    /// Every request that may change the host needs the person's
    /// confirmation.
    pub confirm: bool,
    /// Commands that need the person's confirmation, matched like
    /// `deny_commands`.
    pub confirm_commands: Vec<Vec<String>>,
    /// Absolute remote paths the file tools may use, with everything below
    /// them; empty means anywhere.
    pub remote_roots: Vec<String>,
    /// Absolute remote paths the file tools may never use, even inside a
    /// root.
    pub remote_deny: Vec<String>,
}

/// `[[policy.callers]]`: lower the access of some clients on some hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerRule {
    /// A glob over the MCP client's name from its `initialize` (e.g.
    /// `"claude-desktop"`). The client names itself: this sorts honest
    /// clients, it does not authenticate them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp_client: Option<String>,
    /// A glob over the calling process's executable path, as the kernel
    /// reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// Globs over host aliases the rule applies to; default every host.
    #[serde(default = "every_host")]
    pub hosts: Vec<String>,
    /// The most this caller may have on those hosts.
    pub access: Access,
}

fn every_host() -> Vec<String> {
    vec!["*".to_owned()]
}

impl HostRules {
    /// Check the table keyed `pattern`; the error names the key to fix.
    pub fn validate(&self, pattern: &str) -> Result<(), String> {
        if pattern.is_empty() || pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "policy.hosts.{pattern:?}: not a Host alias or pattern; write an alias such as \
                 \"web1\" or a pattern with `*` such as \"db-*\""
            ));
        }
        let key = format!("policy.hosts.\"{pattern}\"");
        for (name, list) in [
            ("allow_commands", &self.allow_commands),
            ("deny_commands", &self.deny_commands),
            ("confirm_commands", &self.confirm_commands),
        ] {
            for (index, prefix) in list.iter().enumerate() {
                check_prefix(
                    &format!("{key}.{name}[{index}]"),
                    prefix,
                    name == "allow_commands",
                )?;
            }
        }
        for (name, list) in [
            ("remote_roots", &self.remote_roots),
            ("remote_deny", &self.remote_deny),
        ] {
            for (index, path) in list.iter().enumerate() {
                if components(path).is_none() {
                    return Err(format!(
                        "{key}.{name}[{index}] = {path:?} is not an absolute path free of `.` \
                         and `..`; write it as /srv/app"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An argv prefix from the config: a plain command name, then words.
fn check_prefix(key: &str, prefix: &[String], allow: bool) -> Result<(), String> {
    let Some(first) = prefix.first() else {
        return Err(format!(
            "{key} is empty; write a command and, if you like, its first arguments, e.g. \
             [\"systemctl\", \"status\"]"
        ));
    };
    if prefix.iter().any(String::is_empty) {
        return Err(format!("{key} has an empty word; remove it"));
    }
    if first.contains(char::is_whitespace) {
        let words: Vec<&str> = first.split_whitespace().collect();
        return Err(format!(
            "{key}: `{first}` is one word with spaces in it; write each word separately, \
             e.g. {words:?}"
        ));
    }
    match programs::program(first) {
        Name::Plain(name) if name == first => {}
        Name::Plain(name) | Name::Path(name) => {
            return Err(format!(
                "{key}: name the command, not its path: [\"{name}\"] also matches {first}"
            ));
        }
        Name::Invalid => return Err(format!("{key}: `{first}` is not a command name")),
    }
    if allow && programs::WRAPPERS.contains(&first.as_str()) {
        return Err(format!(
            "{key} starts with `{first}`, which the policy looks through to the command it \
             runs; list that command instead"
        ));
    }
    Ok(())
}

impl CallerRule {
    /// Check the rule at `index`; the error names the key to fix.
    pub fn validate(&self, index: usize) -> Result<(), String> {
        let key = format!("policy.callers[{index}]");
        if self.mcp_client.is_none() && self.executable.is_none() {
            return Err(format!(
                "{key} names no caller; set mcp_client (the MCP client's name, e.g. \
                 \"claude-desktop\") or executable (a path, `*` for any run of characters), or \
                 mcp_client = \"*\" for every client"
            ));
        }
        for (name, pattern) in [
            ("mcp_client", &self.mcp_client),
            ("executable", &self.executable),
        ] {
            if pattern.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(format!(
                    "{key}.{name} is empty; write a name or a pattern with `*`, or leave it out"
                ));
            }
        }
        if self.hosts.is_empty() {
            return Err(format!(
                "{key}.hosts is empty; leave it out to mean every host"
            ));
        }
        if let Some(index) = self.hosts.iter().position(|h| h.trim().is_empty()) {
            return Err(format!(
                "{key}.hosts[{index}] is empty; write an alias or a pattern such as \"db-*\""
            ));
        }
        Ok(())
    }

    fn matches(&self, alias: &str, caller: &CallerId<'_>) -> bool {
        self.hosts.iter().any(|p| glob_matches(p, alias))
            && self
                .mcp_client
                .as_deref()
                .is_none_or(|p| glob_matches(p, caller.mcp_client.unwrap_or("")))
            && self
                .executable
                .as_deref()
                .is_none_or(|p| glob_matches(p, caller.executable))
    }
}

/// Who is asking, as the dispatcher knows it.
#[derive(Debug, Clone, Copy)]
pub struct CallerId<'a> {
    /// The MCP client's name from its `initialize`, when it gave one.
    pub mcp_client: Option<&'a str>,
    /// The calling process's executable path (from SO_PEERCRED's pid).
    pub executable: &'a str,
}

/// A refusal: what was refused, under which rule, and what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason} (rule {rule}); {fix}")]
pub struct Denial {
    /// The config key or built-in rule that refused, e.g.
    /// `policy.hosts."web*".access = "read-only"`.
    pub rule: String,
    /// What was refused and why, naming the host.
    pub reason: String,
    /// Which key to edit to allow it, or how to rephrase.
    pub fix: String,
}

/// The judgement of a command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It may run. With `confirm`, only after the person confirms, and
    /// `rule` names the rule that asks; otherwise `rule` names what allowed
    /// it.
    Allow { confirm: bool, rule: String },
    /// It may not.
    Deny(Denial),
}

/// The policy, from the config's `[policy]`.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    hosts: BTreeMap<String, HostRules>,
    callers: Vec<CallerRule>,
}

impl Policy {
    /// The policy `section` describes (validated when the config loaded).
    pub fn new(section: &PolicySection) -> Policy {
        Policy {
            hosts: section.hosts.clone(),
            callers: section.callers.clone(),
        }
    }

    /// What `caller` may do on `alias`.
    pub fn host<'p>(&'p self, alias: &str, caller: &CallerId<'_>) -> HostPolicy<'p> {
        let entry = self.entry(alias);
        let (mut access, mut rule) = match entry {
            Some((key, rules)) => (
                rules.access,
                format!("policy.hosts.\"{key}\".access = \"{}\"", rules.access),
            ),
            None => (
                Access::Full,
                "built-in default access = \"full\" (no policy.hosts entry matches)".to_owned(),
            ),
        };
        let mut limited_by = None;
        for (index, caller_rule) in self.callers.iter().enumerate() {
            if caller_rule.access < Access::Full
                && caller_rule.access <= access
                && caller_rule.matches(alias, caller)
            {
                access = caller_rule.access;
                rule = format!("policy.callers[{index}].access = \"{access}\"");
                limited_by = Some(index);
            }
        }
        HostPolicy {
            alias: alias.to_owned(),
            access,
            rule,
            entry,
            limited_by,
        }
    }

    /// The table for `alias`: its own, else the longest matching pattern
    /// (the first in key order among equals).
    fn entry(&self, alias: &str) -> Option<(&str, &HostRules)> {
        if let Some((key, rules)) = self.hosts.get_key_value(alias) {
            return Some((key, rules));
        }
        self.hosts
            .iter()
            .filter(|(key, _)| key.contains('*') && glob_matches(key, alias))
            .fold(
                None,
                |best: Option<(&String, &HostRules)>, (key, rules)| match best {
                    Some((b, _)) if b.len() >= key.len() => best,
                    _ => Some((key, rules)),
                },
            )
            .map(|(key, rules)| (key.as_str(), rules))
    }
}

/// The policy for one caller on one host.
#[derive(Debug, Clone)]
pub struct HostPolicy<'p> {
    /// The host alias asked about.
    pub alias: String,
    /// The effective access: the host's, lowered by caller rules.
    pub access: Access,
    /// The rule that set `access`.
    pub rule: String,
    /// The `[policy.hosts]` table that applies, with its key.
    entry: Option<(&'p str, &'p HostRules)>,
    /// The caller rule that lowered (or matched) the access, if any. The
    /// host's own `allow_commands` do not extend a read-only set a caller
    /// rule imposed: the most restrictive rule wins.
    limited_by: Option<usize>,
}

/// One command as judged: its words, its judgement, and the commands it
/// runs.
struct Node {
    /// The words as written.
    words: Vec<String>,
    /// The name matched against lists: the basename of the command word.
    name: String,
    /// Whether allow lists may match it: a path outside the system
    /// directories is not the program its basename suggests.
    trusted: bool,
    class: Class,
    children: Vec<Node>,
}

/// How deep wrappers may nest (`sudo nice timeout 5 env ...`).
const MAX_WRAPPING: usize = 8;

impl Node {
    /// A command of the line. An unquoted glob among its arguments could
    /// expand to any word, so only a command that reads whatever its
    /// arguments may have one; its targets are still judged, for the deny
    /// lists.
    fn command(command: &line::SimpleCommand) -> Node {
        let mut node = Node::new(&command.words, false, 0);
        if let Some(glob) = &command.glob
            && !(node.trusted && programs::any_args_read_only(&node.name))
        {
            node.class = Class::Opaque(format!(
                "has the glob `{glob}`, whose expansion could be any word (an option or a \
                 subcommand among them); name the files instead"
            ));
        }
        node
    }

    fn new(words: &[String], appended: bool, depth: usize) -> Node {
        let first = words.first().map_or("", String::as_str);
        let (name, trusted, class) = match programs::program(first) {
            _ if depth > MAX_WRAPPING => (
                first.to_owned(),
                false,
                Class::Opaque("wraps commands too deeply to be judged".into()),
            ),
            Name::Plain(name) => (
                name.to_owned(),
                true,
                programs::classify(name, words.get(1..).unwrap_or_default(), appended),
            ),
            Name::Path(name) => (
                name.to_owned(),
                false,
                Class::Changes(programs::elsewhere()),
            ),
            Name::Invalid => (
                first.to_owned(),
                false,
                Class::Opaque("is not a plain command name".into()),
            ),
        };
        let children = match &class {
            Class::Runs {
                targets, appended, ..
            } => targets
                .iter()
                .map(|target| Node::new(target, *appended, depth + 1))
                .collect(),
            _ => Vec::new(),
        };
        Node {
            words: words.to_vec(),
            name,
            trusted,
            class,
            children,
        }
    }

    /// `command` run through the request's own `sudo`: deny and confirm
    /// lists that name `sudo` see it.
    fn under_sudo(command: Node) -> Node {
        Node {
            words: vec!["sudo".to_owned()],
            name: "sudo".to_owned(),
            trusted: true,
            class: Class::Runs {
                transparent: true,
                targets: Vec::new(),
                appended: false,
            },
            children: vec![command],
        }
    }

    /// This node and every node under it, parents first.
    fn walk<'n>(&'n self, visit: &mut impl FnMut(&'n Node)) {
        visit(self);
        for child in &self.children {
            child.walk(visit);
        }
    }

    /// `name` then the rest of `entry` in order among the arguments: how
    /// deny and confirm entries match, erring towards matching (`systemctl
    /// --no-pager restart x` meets `["systemctl", "restart"]`).
    fn mentions(&self, entry: &[String]) -> bool {
        let Some((first, rest)) = entry.split_first() else {
            return false;
        };
        let mut args = self.words.iter().skip(1);
        *first == self.name && rest.iter().all(|word| args.any(|arg| arg == word))
    }

    /// Whether the words start with `entry`: how allow entries match,
    /// strictly.
    fn starts_with(&self, entry: &[String]) -> bool {
        let Some((first, rest)) = entry.split_first() else {
            return false;
        };
        self.trusted
            && *first == self.name
            && rest.len() < self.words.len()
            && rest
                .iter()
                .zip(self.words.iter().skip(1))
                .all(|(a, b)| a == b)
    }

    /// Judged against the built-in read-only set and `extension`: the
    /// first command refused, with why.
    fn read_only(&self, extension: &[Vec<String>]) -> Result<(), (&Node, String)> {
        match &self.class {
            Class::ReadOnly | Class::Runs { .. } => {}
            Class::Changes(why) | Class::Opaque(why) => {
                if !extension.iter().any(|entry| self.starts_with(entry)) {
                    return Err((self, why.clone()));
                }
            }
        }
        self.children
            .iter()
            .try_for_each(|child| child.read_only(extension))
    }

    /// Judged against an allowlist: wrappers are looked through, every
    /// other command must start with an entry.
    fn listed(&self, allow: &[Vec<String>]) -> Result<(), (&Node, String)> {
        let wrapper = matches!(
            self.class,
            Class::Runs {
                transparent: true,
                ..
            }
        );
        if !wrapper && !allow.iter().any(|entry| self.starts_with(entry)) {
            let why = match &self.class {
                Class::Opaque(why) | Class::Changes(why)
                    if programs::WRAPPERS.contains(&self.name.as_str()) =>
                {
                    why.clone()
                }
                _ => "is not in allow_commands".to_owned(),
            };
            return Err((self, why));
        }
        self.children
            .iter()
            .try_for_each(|child| child.listed(allow))
    }
}

/// Words for a message: quoted where they hold blanks, cut when long.
fn show(words: &[String]) -> String {
    let text = words
        .iter()
        .map(|w| {
            if w.is_empty() || w.contains(char::is_whitespace) {
                format!("'{w}'")
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    match text.char_indices().nth(120) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// A config entry as TOML writes it: `["systemctl", "restart"]`.
fn entry_text(entry: &[String]) -> String {
    let words: Vec<String> = entry.iter().map(|w| format!("{w:?}")).collect();
    format!("[{}]", words.join(", "))
}

const PLAIN: &str = "write it as plain commands joined by ;, &&, || or |, with literal (quoted) \
                     arguments";

impl HostPolicy<'_> {
    /// Judge `line`, a shell command line as it will be sent to the host;
    /// `sudo` says the request runs it through sudo. A full host with no
    /// lists and no confirmation allows it without parsing.
    pub fn command(&self, line: &str, sudo: bool) -> Verdict {
        if self.access == Access::Deny {
            return Verdict::Deny(self.closed());
        }
        let (table, rules) = match self.entry {
            Some((key, rules)) => (format!("policy.hosts.\"{key}\""), rules),
            // Read-only through a caller rule, on a host without a table.
            None => (String::new(), &NO_RULES),
        };
        let judged = self.access == Access::ReadOnly
            || !rules.allow_commands.is_empty()
            || !rules.deny_commands.is_empty()
            || !rules.confirm_commands.is_empty()
            || rules.confirm;
        if !judged {
            return Verdict::Allow {
                confirm: false,
                rule: self.rule.clone(),
            };
        }
        let parsed = line::parse(line);
        let trees: Vec<Node> = parsed
            .iter()
            .flat_map(|parsed| &parsed.commands)
            .map(|command| {
                let node = Node::command(command);
                if sudo { Node::under_sudo(node) } else { node }
            })
            .collect();
        let mut all = Vec::new();
        for tree in &trees {
            tree.walk(&mut |node| all.push(node));
        }

        if !rules.deny_commands.is_empty()
            && let Some(denial) = self.deny_list(&table, rules, &parsed, &all)
        {
            return Verdict::Deny(denial);
        }

        let host_allowlist = self
            .entry
            .filter(|(_, r)| r.access == Access::Full && !r.allow_commands.is_empty())
            .map(|(_, r)| r.allow_commands.as_slice());
        let allowed_by = match self.access {
            Access::ReadOnly => {
                let extension: &[Vec<String>] = match self.limited_by {
                    Some(_) => &[],
                    None => &rules.allow_commands,
                };
                if let Err(denial) = self.read_only(&parsed, &trees, extension) {
                    return Verdict::Deny(denial);
                }
                if let Some(allow) = host_allowlist
                    && let Err(denial) = self.allowlist(&table, &parsed, &trees, allow)
                {
                    return Verdict::Deny(denial);
                }
                if trees.iter().all(|t| t.read_only(&[]).is_ok()) {
                    "built-in read-only set".to_owned()
                } else {
                    format!("{table}.allow_commands")
                }
            }
            _ => match host_allowlist {
                Some(allow) => {
                    if let Err(denial) = self.allowlist(&table, &parsed, &trees, allow) {
                        return Verdict::Deny(denial);
                    }
                    format!("{table}.allow_commands")
                }
                None => self.rule.clone(),
            },
        };

        match self.confirmation(&table, rules, &parsed, &trees, &all) {
            Some(rule) => Verdict::Allow {
                confirm: true,
                rule,
            },
            None => Verdict::Allow {
                confirm: false,
                rule: allowed_by,
            },
        }
    }

    /// Whether any rule of the config applies here (a host table or a
    /// caller rule), rather than the built-in default of full access.
    pub fn has_rules(&self) -> bool {
        self.entry.is_some() || self.limited_by.is_some()
    }

    /// Whether command lines are judged here (read-only access, or any
    /// command list or confirmation on the host), rather than all allowed.
    pub fn judges_commands(&self) -> bool {
        let rules = self.entry.map_or(&NO_RULES, |(_, rules)| rules);
        self.access != Access::Full
            || !rules.allow_commands.is_empty()
            || !rules.deny_commands.is_empty()
            || !rules.confirm_commands.is_empty()
            || rules.confirm
    }

    /// Whether remote roots or denials bound the file tools' paths here
    /// (so paths must be resolved on the host before [`remote_path`]
    /// judges them).
    ///
    /// [`remote_path`]: Self::remote_path
    pub fn bounds_paths(&self) -> bool {
        self.entry.is_some_and(|(_, rules)| {
            !rules.remote_roots.is_empty() || !rules.remote_deny.is_empty()
        })
    }

    /// The rule that wants changes to this host confirmed, if one does.
    pub fn confirm_rule(&self) -> Option<String> {
        self.confirms_changes()
            .then(|| {
                self.entry
                    .map(|(key, _)| format!("policy.hosts.\"{key}\".confirm = true"))
            })
            .flatten()
    }

    /// Whether requests that may change the host (file writes included)
    /// need the person's confirmation here.
    pub fn confirms_changes(&self) -> bool {
        self.access != Access::Deny && self.entry.is_some_and(|(_, rules)| rules.confirm)
    }

    /// Check a remote path for the file tools. `path` must already be
    /// absolute and resolved on the host (`..` and symlinks followed); it
    /// is compared component by component, so `/srv/app2` is not inside
    /// `/srv/app`. `write` says the tool would change it.
    pub fn remote_path(&self, path: &str, write: bool) -> Result<(), Denial> {
        let alias = &self.alias;
        if self.access == Access::Deny {
            return Err(self.closed());
        }
        if write && self.access == Access::ReadOnly {
            return Err(Denial {
                rule: self.rule.clone(),
                reason: format!(
                    "{alias} is read-only for this client, and writing `{path}` changes it"
                ),
                fix: self.widen("file writes"),
            });
        }
        let Some(parts) = components(path) else {
            return Err(Denial {
                rule: "remote paths are judged resolved".into(),
                reason: format!("{alias}: `{path}` is not an absolute path free of `.` and `..`"),
                fix: "resolve the path on the host first".into(),
            });
        };
        let Some((key, rules)) = self.entry else {
            return Ok(());
        };
        let inside = |root: &String| components(root).is_some_and(|root| parts.starts_with(&root));
        if let Some(denied) = rules.remote_deny.iter().find(|d| inside(d)) {
            return Err(Denial {
                rule: format!("policy.hosts.\"{key}\".remote_deny [{denied:?}]"),
                reason: format!("{alias}: `{path}` is inside {denied}, which is denied"),
                fix: format!(
                    "remove {denied:?} from policy.hosts.\"{key}\".remote_deny to allow it"
                ),
            });
        }
        if !rules.remote_roots.is_empty() && !rules.remote_roots.iter().any(inside) {
            return Err(Denial {
                rule: format!("policy.hosts.\"{key}\".remote_roots"),
                reason: format!(
                    "{alias}: `{path}` is outside the remote roots ({})",
                    rules.remote_roots.join(", ")
                ),
                fix: format!("add a directory above it to policy.hosts.\"{key}\".remote_roots"),
            });
        }
        Ok(())
    }

    /// The refusal of a host closed to this caller.
    fn closed(&self) -> Denial {
        let fix = match (self.limited_by, self.entry) {
            (Some(index), _) => format!(
                "policy.callers[{index}] closes {} to this client; narrow its hosts or change \
                 its access",
                self.alias
            ),
            (None, Some((key, _))) => {
                format!("set policy.hosts.\"{key}\".access to \"read-only\" or \"full\" to open it")
            }
            (None, None) => "change the [policy] rule that closes it".into(),
        };
        Denial {
            rule: self.rule.clone(),
            reason: format!("{} is closed to this client", self.alias),
            fix,
        }
    }

    /// How to get more than read-only for `what`.
    fn widen(&self, what: &str) -> String {
        match (self.limited_by, self.entry) {
            (Some(index), _) => format!(
                "policy.callers[{index}] limits this client to read-only on {}; change that \
                 rule's access or hosts to allow {what}",
                self.alias
            ),
            (None, Some((key, _))) => {
                format!("set policy.hosts.\"{key}\".access = \"full\" to allow {what}")
            }
            (None, None) => format!("allow {what} in the policy"),
        }
    }

    /// Deny lists: every command of the line, wrappers and targets alike,
    /// and nothing hidden from them.
    fn deny_list(
        &self,
        table: &str,
        rules: &HostRules,
        parsed: &Result<line::Line, String>,
        all: &[&Node],
    ) -> Option<Denial> {
        let alias = &self.alias;
        for node in all {
            if let Some(entry) = rules.deny_commands.iter().find(|e| node.mentions(e)) {
                let entry = entry_text(entry);
                return Some(Denial {
                    rule: format!("{table}.deny_commands {entry}"),
                    reason: format!("{alias} denies `{}`", show(&node.words)),
                    fix: format!("remove {entry} from {table}.deny_commands to allow it"),
                });
            }
        }
        let hidden = match parsed {
            Err(why) => Some(format!("the line {why}")),
            Ok(_) => all.iter().find_map(|node| match &node.class {
                Class::Opaque(why) => Some(format!("`{}` {why}", show(&node.words))),
                _ => None,
            }),
        };
        hidden.map(|what| Denial {
            rule: format!("{table}.deny_commands"),
            reason: format!(
                "{alias} has deny_commands, and {what}, so it cannot be checked against them"
            ),
            fix: format!("{PLAIN}, so it can be checked"),
        })
    }

    /// Read-only: a plain line, no redirections to files, every command in
    /// the built-in set or `extension`.
    fn read_only(
        &self,
        parsed: &Result<line::Line, String>,
        trees: &[Node],
        extension: &[Vec<String>],
    ) -> Result<(), Denial> {
        let alias = &self.alias;
        let line = parsed.as_ref().map_err(|why| Denial {
            rule: self.rule.clone(),
            reason: format!("{alias} is read-only for this client, and the line {why}"),
            fix: PLAIN.into(),
        })?;
        if let Some(redirect) = line.redirects.first() {
            return Err(Denial {
                rule: self.rule.clone(),
                reason: format!(
                    "{alias} is read-only for this client, and the line has the redirection \
                     `{redirect}`, which writes or reads a file"
                ),
                fix: "drop it: 2>/dev/null, >/dev/null, 2>&1 and >&2 are fine, and the output \
                      comes back in the result"
                    .into(),
            });
        }
        for tree in trees {
            if let Err((node, why)) = tree.read_only(extension) {
                let command = show(&node.words);
                let fix = match (self.limited_by, self.entry) {
                    (None, Some((key, _))) => format!(
                        "to allow it here, add {} to policy.hosts.\"{key}\".allow_commands, or \
                         set policy.hosts.\"{key}\".access = \"full\"",
                        entry_text(&suggestion(node))
                    ),
                    _ => self.widen("it"),
                };
                return Err(Denial {
                    rule: self.rule.clone(),
                    reason: format!("{alias} is read-only for this client: `{command}` {why}"),
                    fix,
                });
            }
        }
        Ok(())
    }

    /// Allowlist mode: a plain line, no redirections to files, every
    /// command listed.
    fn allowlist(
        &self,
        table: &str,
        parsed: &Result<line::Line, String>,
        trees: &[Node],
        allow: &[Vec<String>],
    ) -> Result<(), Denial> {
        let alias = &self.alias;
        let rule = format!("{table}.allow_commands");
        let line = parsed.as_ref().map_err(|why| Denial {
            rule: rule.clone(),
            reason: format!("{alias} runs only the commands in allow_commands, and the line {why}"),
            fix: PLAIN.into(),
        })?;
        if let Some(redirect) = line.redirects.first() {
            return Err(Denial {
                rule: rule.clone(),
                reason: format!(
                    "{alias} runs only the commands in allow_commands, and the line has the \
                     redirection `{redirect}`"
                ),
                fix: "drop it: 2>/dev/null, >/dev/null, 2>&1 and >&2 are fine".into(),
            });
        }
        for tree in trees {
            if let Err((node, why)) = tree.listed(allow) {
                return Err(Denial {
                    rule,
                    reason: format!(
                        "{alias} runs only the commands in allow_commands: `{}` {why}",
                        show(&node.words)
                    ),
                    fix: format!(
                        "add {} to {table}.allow_commands to allow it",
                        entry_text(&suggestion(node))
                    ),
                });
            }
        }
        Ok(())
    }

    /// The rule that asks for the person's confirmation, if one does.
    fn confirmation(
        &self,
        table: &str,
        rules: &HostRules,
        parsed: &Result<line::Line, String>,
        trees: &[Node],
        all: &[&Node],
    ) -> Option<String> {
        for node in all {
            if let Some(entry) = rules.confirm_commands.iter().find(|e| node.mentions(e)) {
                return Some(format!("{table}.confirm_commands {}", entry_text(entry)));
            }
        }
        let hidden = parsed.is_err() || all.iter().any(|n| matches!(n.class, Class::Opaque(_)));
        if !rules.confirm_commands.is_empty() && hidden {
            return Some(format!(
                "{table}.confirm_commands (the line cannot be checked against them)"
            ));
        }
        let read_only = parsed.as_ref().is_ok_and(|line| line.redirects.is_empty())
            && trees.iter().all(|tree| tree.read_only(&[]).is_ok());
        (rules.confirm && !read_only).then(|| format!("{table}.confirm = true"))
    }
}

/// The rules of a host without a table: no lists.
static NO_RULES: HostRules = HostRules {
    access: Access::Full,
    allow_commands: Vec::new(),
    deny_commands: Vec::new(),
    confirm: false,
    confirm_commands: Vec::new(),
    remote_roots: Vec::new(),
    remote_deny: Vec::new(),
};

/// The allow entry to suggest for a refused command: its name, and its
/// first argument when that reads as a subcommand (`systemctl restart`).
fn suggestion(node: &Node) -> Vec<String> {
    let mut entry = vec![node.name.clone()];
    if let Some(first) = node.words.get(1)
        && !first.starts_with('-')
        && first.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    {
        entry.push(first.clone());
    }
    entry
}

/// The components of an absolute path, or `None` for a relative one or
/// one with `.` or `..`.
fn components(path: &str) -> Option<Vec<&str>> {
    let rest = path.strip_prefix('/')?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    (!parts.iter().any(|p| *p == "." || *p == "..")).then_some(parts)
}
