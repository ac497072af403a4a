//! The policy's gate: what `[policy]` lets each request do, decided in the
//! dispatcher before the request runs (and before the cache answers it),
//! so no op can forget it.
//!
//! The rules themselves, and the command parser, are in [`crate::policy`];
//! this module maps each request onto them: which host it touches (a
//! shell's or a job's host for requests that name only those), whether it
//! reads or changes that host, the command line it sends, and the remote
//! paths it names, resolved on the host first when roots bound them.

use std::sync::Arc;
use std::time::Duration;

use sshmcp_proto::{Confirmation, Direction, Error, ErrorKind, Request};
use tokio_util::sync::CancellationToken;

use crate::ops::Caller;
use crate::policy::{Access, CallerId, Denial, HostPolicy, Verdict};
use crate::pool::Host;
use crate::progress::Reporter;
use crate::state::Daemon;

/// How long a request waits for the person to confirm it: long enough to
/// read a prompt and decide, short enough that a forgotten one ends.
const CONFIRM_WAIT: Duration = Duration::from_secs(120);

/// How the policy decided a request, for the audit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The rule that allowed it; `None` when no rule applies (requests
    /// that touch no host).
    pub rule: Option<String>,
    /// It needed the person's confirmation, and got it.
    pub confirmed: bool,
}

/// A request the policy refused: the error for the caller and the rule
/// for the audit.
#[derive(Debug)]
pub struct Refused {
    pub error: Error,
    pub rule: Option<String>,
    /// Not refused yet: the rule wants the person's confirmation.
    confirm: bool,
}

impl From<Denial> for Refused {
    fn from(denial: Denial) -> Refused {
        Refused {
            error: Error::new(ErrorKind::PolicyDenied, denial.to_string()),
            rule: Some(denial.rule),
            confirm: false,
        }
    }
}

/// Not a refusal of the policy's: the request itself fails (an unknown
/// shell or job).
impl From<Error> for Refused {
    fn from(error: Error) -> Refused {
        Refused {
            error,
            rule: None,
            confirm: false,
        }
    }
}

fn refused(rule: &str, message: String) -> Refused {
    Refused {
        error: Error::new(ErrorKind::PolicyDenied, message),
        rule: Some(rule.to_owned()),
        confirm: false,
    }
}

/// Who `caller` is, as the policy's caller rules match it.
pub fn caller_id(caller: &Caller) -> CallerId<'_> {
    CallerId {
        mcp_client: caller.mcp_client.as_deref(),
        executable: caller.exe.as_deref().unwrap_or(""),
    }
}

/// Who may be asked to confirm a request, and what stops the asking.
pub struct Asker<'a> {
    pub progress: &'a Reporter,
    pub cancel: &'a CancellationToken,
}

/// What the policy says of `request` from `caller`; `host` is the one the
/// dispatcher resolved from the request, if it names one. A request a rule
/// wants confirmed is put to the person through `asker` and waits for the
/// answer.
pub async fn check(
    daemon: &Daemon,
    caller: &Caller,
    host: Option<&Arc<Host>>,
    request: &Request,
    asker: Asker<'_>,
) -> Result<Decision, Refused> {
    let policy = daemon.host_policy();
    let who = caller_id(caller);
    // Requests that name a shell or a job touch that one's host.
    let alias = match (request, host) {
        (_, Some(host)) => host.resolved.alias.clone(),
        (Request::ShellExec(req), None) => daemon.shells.get(&req.shell_id)?.host.clone(),
        (Request::ShellClose(req), None) => daemon.shells.get(&req.shell_id)?.host.clone(),
        (Request::JobOutput(req), None) => daemon.jobs.get(&req.job_id)?.host.clone(),
        (Request::JobSignal(req), None) => daemon.jobs.get(&req.job_id)?.host.clone(),
        _ => return Ok(Decision::default()),
    };
    let rules = policy.host(&alias, &who);
    let decided = match judge(request, host, &rules).await {
        Err(Refused {
            rule: Some(rule),
            confirm: true,
            ..
        }) => {
            return confirm(&alias, &rule, request, asker).await;
        }
        other => other?,
    };
    // With no rule for the host, nothing decided: the audit says so.
    Ok(if rules.has_rules() {
        decided
    } else {
        Decision::default()
    })
}

/// Put `request` to the person, for `rule`; allowed only when they say so.
async fn confirm(
    alias: &str,
    rule: &str,
    request: &Request,
    asker: Asker<'_>,
) -> Result<Decision, Refused> {
    let confirmation = Confirmation {
        host: alias.to_owned(),
        tool: request.op_name().to_owned(),
        what: describe(request),
        rule: rule.to_owned(),
    };
    let answer = tokio::select! {
        answer = asker.progress.confirm(confirmation, CONFIRM_WAIT) => answer,
        () = asker.cancel.cancelled() => {
            return Err(Error::new(ErrorKind::Cancelled, "cancelled while waiting for confirmation").into());
        }
    };
    match answer {
        Some(answer) if answer.allowed => Ok(Decision {
            rule: Some(rule.to_owned()),
            confirmed: true,
        }),
        Some(answer) => Err(refused(
            rule,
            format!(
                "{} on {alias} needs the person's confirmation (rule {rule}), and it was not \
                 given{}",
                request.op_name(),
                answer
                    .note
                    .map(|note| format!(": {note}"))
                    .unwrap_or_default()
            ),
        )),
        None => Err(refused(
            rule,
            format!(
                "{} on {alias} needs the person's confirmation (rule {rule}), which cannot be \
                 asked here (a call in a batch, or a client that cannot ask); make the call on \
                 its own from an MCP client that supports elicitation",
                request.op_name()
            ),
        )),
    }
}

/// What a request would do, as the person is asked about it: its command
/// line or its paths. Never file contents or stdin.
fn describe(request: &Request) -> String {
    match request {
        Request::Exec(req) if req.sudo => match &req.sudo_user {
            Some(user) => format!("sudo -u {user} {}", req.command),
            None => format!("sudo {}", req.command),
        },
        Request::Exec(req) => req.command.clone(),
        Request::ShellExec(req) => req.command.clone(),
        Request::WriteFile(req) => format!("write {} bytes to {}", req.data.len(), req.path),
        Request::Mkdir(req) => format!("make directory {}", req.path),
        Request::Remove(req) => format!("remove {}", req.path),
        Request::Rename(req) => format!("rename {} to {}", req.from, req.to),
        Request::Transfer(req) => format!(
            "{} {} {} {}",
            if req.direction == Direction::Upload {
                "upload"
            } else {
                "download"
            },
            req.local_path,
            if req.direction == Direction::Upload {
                "to"
            } else {
                "from"
            },
            req.remote_path
        ),
        Request::Sync(req) => format!(
            "sync {} {} {}{}",
            req.local_dir,
            if req.direction == Direction::Upload {
                "to"
            } else {
                "from"
            },
            req.remote_dir,
            if req.delete {
                " (deleting what is not in the source)"
            } else {
                ""
            }
        ),
        other => other.op_name().to_owned(),
    }
}

/// What the host's rules say of `request`.
async fn judge(
    request: &Request,
    host: Option<&Arc<Host>>,
    rules: &HostPolicy<'_>,
) -> Result<Decision, Refused> {
    let allowed = |rule: &str| {
        Ok(Decision {
            rule: Some(rule.to_owned()),
            confirmed: false,
        })
    };
    match request {
        Request::Exec(req) => command(rules, &req.command, req.sudo),
        Request::ShellExec(req) => command(rules, &req.command, req.sudo),
        // A shell has a terminal: a pager started by an allowed command
        // (`systemctl status`, `git log`) would read the next command as
        // its own input, and `!` in it runs anything. Shells are for hosts
        // whose commands are not judged.
        Request::ShellOpen(_) => {
            open_to(rules, Access::Full, "a persistent shell")?;
            if rules.judges_commands() {
                return Err(refused(
                    &rules.rule,
                    format!(
                        "{} judges commands (rule {}), and a persistent shell's terminal would \
                         let a pager run what the policy refuses; use exec there",
                        rules.alias, rules.rule
                    ),
                ));
            }
            allowed(&rules.rule)
        }
        Request::Stat(req) => paths(rules, host, &[&req.path], false).await,
        Request::ListDir(req) => paths(rules, host, &[&req.path], false).await,
        Request::ReadFile(req) => paths(rules, host, &[&req.path], false).await,
        Request::WriteFile(req) => paths(rules, host, &[&req.path], true).await,
        Request::Mkdir(req) => paths(rules, host, &[&req.path], true).await,
        Request::Remove(req) => paths(rules, host, &[&req.path], true).await,
        Request::Rename(req) => paths(rules, host, &[&req.from, &req.to], true).await,
        Request::Transfer(req) => {
            let write = req.direction == Direction::Upload;
            paths(rules, host, &[&req.remote_path], write).await
        }
        Request::Sync(req) => {
            let write = req.direction == Direction::Upload && !req.dry_run;
            paths(rules, host, &[&req.remote_dir], write).await
        }
        // Reading a job's output, stopping a job or closing a shell needs
        // only that the host is open to the caller.
        _ => {
            open_to(rules, Access::ReadOnly, "this request")?;
            allowed(&rules.rule)
        }
    }
}

/// Refuse unless the caller's access to the host is at least `needed`.
fn open_to(rules: &HostPolicy<'_>, needed: Access, what: &str) -> Result<(), Refused> {
    if rules.access >= needed {
        return Ok(());
    }
    // A closed host says so in the policy's own words.
    rules.remote_path("/", false)?;
    Err(refused(
        &rules.rule,
        format!(
            "{what} needs full access to {}, which is read-only for this client (rule {}); set \
             access = \"full\" there to allow it",
            rules.alias, rules.rule
        ),
    ))
}

/// Judge a command line.
fn command(rules: &HostPolicy<'_>, line: &str, sudo: bool) -> Result<Decision, Refused> {
    match rules.command(line, sudo) {
        Verdict::Deny(denial) => Err(denial.into()),
        Verdict::Allow {
            confirm: false,
            rule,
        } => Ok(Decision {
            rule: Some(rule),
            confirmed: false,
        }),
        Verdict::Allow {
            confirm: true,
            rule,
        } => Err(unconfirmed(&rules.alias, &rule)),
    }
}

/// A request that needs the person's confirmation under `rule`: `check`
/// asks for it.
fn unconfirmed(alias: &str, rule: &str) -> Refused {
    Refused {
        error: Error::new(
            ErrorKind::PolicyDenied,
            format!("this request on {alias} needs confirmation (rule {rule})"),
        ),
        rule: Some(rule.to_owned()),
        confirm: true,
    }
}

/// Judge the remote `paths` a file request names; `write` when it would
/// change them. With remote roots or denials on the host, each path is
/// resolved on the host first (`realpath`, or its nearest existing
/// ancestor's for a path still to be made), so `..` and symlinks cannot
/// lead out.
async fn paths(
    rules: &HostPolicy<'_>,
    host: Option<&Arc<Host>>,
    paths: &[&str],
    write: bool,
) -> Result<Decision, Refused> {
    if write && let Some(rule) = rules.confirm_rule() {
        return Err(unconfirmed(&rules.alias, &rule));
    }
    for path in paths {
        let resolved = match host {
            Some(host) if rules.bounds_paths() => crate::cache::resolve_existing(host, path)
                .await
                .ok_or_else(|| {
                    refused(
                        &rules.rule,
                        format!(
                            "{}: cannot resolve `{path}` on the host to check it against \
                                 its remote roots; check that the path's directory exists",
                            rules.alias
                        ),
                    )
                })?,
            // No bounds: only the access matters; the path as given.
            _ => "/".to_owned(),
        };
        rules.remote_path(&resolved, write)?;
    }
    Ok(Decision {
        rule: Some(rules.rule.clone()),
        confirmed: false,
    })
}
