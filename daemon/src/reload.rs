//! Loading the config and the ssh config, at start and again on reload
//! (SIGHUP or a `Reload` request).
//!
//! A reload re-reads both files and validates them as start-up does; a bad
//! new config is refused with a logged error and the old one stays in
//! force. The host list is applied in place: unchanged hosts keep their
//! warm connections, removed hosts are closed, new and changed hosts start
//! cold (and are warmed if `[pool] warm` lists them). `[limits]
//! queue_timeout_ms`, `[sudo]` (kept sudo passwords are dropped) and
//! `[audit]` apply at once, but for the audit log's `path`: its chain, key
//! and head belong to one log until a restart. Settings fixed when the process
//! started (the socket, threads, pinning, memory cap, frame size, pool
//! sizing, global limits) keep their old values until a restart, and the
//! reload says so.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::hosts::HostTable;
use crate::state::Daemon;
use crate::systemd;

/// A validated config with the hosts it names.
pub struct Loaded {
    pub config: Config,
    pub ssh_config_path: PathBuf,
    pub table: HostTable,
}

/// Read and validate the config at `config_path` (built-in defaults when
/// `None`) and the ssh config it names.
pub fn load(config_path: Option<&Path>) -> Result<Loaded, String> {
    let config = match config_path {
        Some(path) => Config::load(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    let ssh_config_path = ssh_config_path(&config);
    let table = HostTable::load(&ssh_config_path).map_err(|e| e.to_string())?;
    for alias in &config.pool.warm {
        if !table.aliases().contains(alias) {
            return Err(format!(
                "[pool] warm names `{alias}`, which is not a Host alias in {}",
                ssh_config_path.display()
            ));
        }
    }
    Ok(Loaded {
        config,
        ssh_config_path,
        table,
    })
}

/// The ssh config `config` names: `[ssh] config`, else the user's own.
pub fn ssh_config_path(config: &Config) -> PathBuf {
    config
        .ssh
        .config
        .clone()
        .unwrap_or_else(HostTable::default_path)
}

/// Re-read the config and the ssh config and apply them; returns a
/// one-line summary of what changed, or why the reload was refused.
pub async fn reload(daemon: &Daemon) -> Result<String, String> {
    let _one_at_a_time = daemon.reload_lock.lock().await;
    systemd::reloading();
    let result = apply(daemon);
    match &result {
        Ok(summary) => tracing::info!("reloaded: {summary}"),
        Err(e) => tracing::error!("reload refused, the previous config stays in force: {e}"),
    }
    systemd::ready(daemon);
    result
}

fn apply(daemon: &Daemon) -> Result<String, String> {
    let Loaded {
        config: new, table, ..
    } = load(daemon.config_path.as_deref())?;
    let old = daemon.config();

    let before = daemon.pool.aliases();
    let mut added = Vec::new();
    let mut changed = Vec::new();
    for alias in table.aliases() {
        if !before.contains(alias) {
            added.push(alias.clone());
        } else if daemon
            .pool
            .host(alias)
            .is_ok_and(|host| host.resolved != table.resolve(alias))
        {
            changed.push(alias.clone());
        }
    }
    let removed: Vec<String> = before
        .iter()
        .filter(|a| !table.aliases().contains(a))
        .cloned()
        .collect();
    daemon.pool.set_hosts(&table);
    // Answers of a host that is gone or now means another machine or
    // login are not served again.
    for alias in changed.iter().chain(&removed) {
        daemon.cache.clear(Some(alias), "reload");
    }
    daemon.cache.configure(
        &new.cache,
        daemon.memory.limit(),
        sshmcp_proto::max_read_per_reply(new.daemon.max_frame),
    );
    daemon.jobs.configure(&new.jobs);
    daemon.shells.configure(&new.shells);
    daemon.audit.configure(&new.audit);
    // A password command may have changed: kept passwords go.
    daemon.sudo.clear();

    let mut effective = (*old).clone();
    effective.cache = new.cache.clone();
    effective.jobs = new.jobs.clone();
    effective.shells = new.shells.clone();
    effective.sudo = new.sudo.clone();
    effective.audit = crate::audit::AuditSection {
        path: old.audit.path.clone(),
        ..new.audit.clone()
    };
    effective.ssh.config = new.ssh.config.clone();
    effective.pool.warm = new.pool.warm.clone();
    effective.limits.queue_timeout_ms = new.limits.queue_timeout_ms;
    let fixed = fixed_until_restart(&effective, &new);
    let to_warm: Vec<String> = new
        .pool
        .warm
        .iter()
        .filter(|a| !old.pool.warm.contains(a) || added.contains(a) || changed.contains(a))
        .cloned()
        .collect();
    daemon.set_config(effective);
    daemon.spawn_warmup(to_warm);

    let list = |names: &[String]| {
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        }
    };
    let mut summary = format!(
        "{} hosts; added: {}; removed: {}; changed: {}",
        table.aliases().len(),
        list(&added),
        list(&removed),
        list(&changed)
    );
    if !fixed.is_empty() {
        summary.push_str(&format!(
            "; changes to {} take effect at the next restart",
            fixed.join(", ")
        ));
    }
    Ok(summary)
}

/// The sections where `wanted` differs from what is in force, for
/// settings a reload cannot change.
fn fixed_until_restart(in_force: &Config, wanted: &Config) -> Vec<&'static str> {
    let mut sections = Vec::new();
    if in_force.daemon != wanted.daemon {
        sections.push("[daemon]");
    }
    if in_force.ssh != wanted.ssh {
        sections.push("[ssh] timeouts");
    }
    if in_force.pool != wanted.pool {
        sections.push("[pool]");
    }
    if in_force.limits != wanted.limits {
        sections.push("[limits]");
    }
    if in_force.metrics != wanted.metrics {
        sections.push("[metrics]");
    }
    if in_force.audit.path != wanted.audit.path {
        sections.push("[audit] path");
    }
    sections
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_keys_do_not_count_as_fixed() {
        let old = Config::default();
        let mut new = Config::default();
        new.pool.warm = vec!["a".into()];
        new.limits.queue_timeout_ms = 5;
        let mut effective = old.clone();
        effective.pool.warm = new.pool.warm.clone();
        effective.limits.queue_timeout_ms = 5;
        assert!(fixed_until_restart(&effective, &new).is_empty());
        new.pool.max_per_host = 1;
        assert_eq!(fixed_until_restart(&effective, &new), vec!["[pool]"]);
    }
}
