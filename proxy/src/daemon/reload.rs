//! Reload: re-read bitrouter.yaml, validate it fully, swap it in atomically.
//!
//! Requests that started before the swap finish on the snapshot they hold; every request after
//! it uses the new one (see [`crate::state`]). Long-lived state (connection pools, health,
//! cooling and latency of endpoints that still exist, metrics) carries over. An invalid file is
//! rejected with the diagnostics `config validate` prints, and the running configuration stays.

use super::control::Daemon;
use super::{OverlayEnv, ReloadReport};
use crate::logger;
use bitrouter_config::ServerConfig;
use std::collections::BTreeSet;

/// Why a reload was refused: the text to show (several lines for a config with several
/// problems).
#[derive(Debug)]
pub struct Rejected(pub String);

/// Reloads `daemon`'s configuration. `forwarded` holds variables a `bitrouter reload` caller
/// sent (its provider keys and the variables the file references); they are remembered, so a
/// later SIGHUP reload keeps them instead of falling back to the keys the daemon started with.
pub fn reload(
    daemon: &Daemon,
    forwarded: Option<std::collections::BTreeMap<String, String>>,
) -> Result<ReloadReport, Rejected> {
    // One reload at a time: two concurrent ones would race on the generation and the overlay.
    let mut overlay = daemon
        .overlay
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut next = overlay.clone();
    if let Some(vars) = forwarded {
        next.extend(vars);
    }
    let env = OverlayEnv { overlay: &next };
    let mut config = bitrouter_config::load(daemon.config_path.as_deref(), &env).map_err(|e| {
        let mut text = String::from("invalid configuration");
        for line in e.to_string().lines() {
            text.push_str("\n  ");
            text.push_str(line);
        }
        Rejected(text)
    })?;
    if let Some(listen) = &daemon.listen_override {
        config.server.override_listen(listen);
    }
    // The TLS listeners' certificate, re-read (rotation without a restart); a file that does
    // not load rejects the reload and the current certificate stays.
    let certificate = match (&daemon.tls, &config.server.tls) {
        (Some(_), Some(files)) => Some((
            crate::listeners::load_certified_key(files)
                .map_err(|e| Rejected(format!("invalid configuration\n  {e}")))?,
            files.cert_file.display().to_string(),
        )),
        _ => None,
    };
    // The ledger's database is opened once, at start: a new `database` section is checked
    // here (a bad URL rejects the reload) and applied by a restart.
    let ledger_url = crate::ledger::LedgerUrl::from_config(&config, &env)
        .map_err(|e| Rejected(format!("invalid configuration\n  {e}")))?;
    let old = daemon.state.snapshot();
    let mut restart_to_apply = restart_only_changes(&daemon.started_server, &config.server);
    if daemon.tls.is_none() && config.server.listeners.iter().any(|l| l.tls) {
        restart_to_apply.push("server.tls (no TLS listener is running)".to_string());
    }
    if ledger_url.as_ref() != daemon.state.ledger().map(|l| l.url()) {
        restart_to_apply.push("database".to_string());
    }
    let before_providers: BTreeSet<String> =
        old.config.providers.iter().map(|p| p.id.clone()).collect();
    let before_models: BTreeSet<String> = old.table.models().iter().map(|m| m.id.clone()).collect();
    let level_changed = old.config.server.log_level != config.server.log_level;
    drop(old);

    let level = config.server.log_level.clone();
    let access_file = config.server.access_log.path.clone();
    let after_providers: Vec<String> = config.providers.iter().map(|p| p.id.clone()).collect();
    for w in &config.warnings {
        log::warn!("{w}");
    }
    let generation = daemon
        .state
        .swap(config)
        .map_err(|e| Rejected(format!("invalid configuration\n  {e}")))?;
    *overlay = next;
    drop(overlay);
    let certificate = match (&daemon.tls, certificate) {
        (Some(store), Some((key, file))) => {
            store.replace(key);
            log::info!("TLS certificate reloaded from {file}");
            Some(file)
        }
        _ => None,
    };
    logger::set_access_file(access_file);

    if level_changed {
        logger::set_level(&level);
    }
    logger::reopen();

    let now = daemon.state.snapshot();
    let after_models: BTreeSet<String> = now.table.models().iter().map(|m| m.id.clone()).collect();
    let after_set: BTreeSet<String> = after_providers.iter().cloned().collect();
    let report = ReloadReport {
        generation,
        providers: after_providers,
        models: after_models.len(),
        providers_added: after_set.difference(&before_providers).cloned().collect(),
        providers_removed: before_providers.difference(&after_set).cloned().collect(),
        models_added: after_models.difference(&before_models).count(),
        models_removed: before_models.difference(&after_models).count(),
        restart_to_apply,
        certificate,
    };
    log::info!(
        "reloaded configuration (generation {}): {} provider(s), {} routable model(s), {} access policies{}{}{}",
        report.generation,
        report.providers.len(),
        report.models,
        now.config.access.len(),
        list(" added ", &report.providers_added),
        list(" removed ", &report.providers_removed),
        if report.restart_to_apply.is_empty() {
            String::new()
        } else {
            format!("; restart to apply: {}", report.restart_to_apply.join(", "))
        }
    );
    Ok(report)
}

fn list(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(";{label}{}", items.join(","))
    }
}

/// Settings a running process cannot change: the sockets it listens on and the shape of its
/// worker pool are fixed when it starts.
fn restart_only_changes(old: &ServerConfig, new: &ServerConfig) -> Vec<String> {
    let mut out = Vec::new();
    if old.listeners != new.listeners {
        let show = |c: &ServerConfig| {
            c.listeners
                .iter()
                .map(|l| format!("{}://{}", l.scheme(), l.address))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!("server.listen ({} -> {})", show(old), show(new)));
    }
    if old.threads != new.threads {
        out.push("server.threads".to_string());
    }
    if old.work_stealing != new.work_stealing {
        out.push("server.work_stealing".to_string());
    }
    if old.control_socket != new.control_socket {
        out.push("server.control_socket".to_string());
    }
    out
}
