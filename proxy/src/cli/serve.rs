//! `bitrouter serve`: load the config, say what was detected, run the server.

use crate::daemon::control::Daemon;
use crate::daemon::Paths;
use crate::state::AppState;
use crate::{logger, server};
use bitrouter_config::{Config, ConfigSource, ProcessEnv, ProviderOrigin, RoutingTable};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How `serve` was asked to run.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// `--listen`: overrides `server.listen` (and keeps overriding it across reloads).
    pub listen: Option<String>,
    /// `--log`: append log lines to this file (reopened on reload) instead of stdout.
    pub log: Option<PathBuf>,
    /// `--socket`: the control socket, overriding `server.control_socket`.
    pub socket: Option<PathBuf>,
    /// Start a new session first (the `start` and `restart` verbs' detached child).
    pub detach: bool,
    /// Take the listening socket over from the running router (`restart`).
    pub upgrade: bool,
}

pub fn run(config_path: Option<&Path>, opts: ServeOptions) -> i32 {
    if opts.detach {
        // No controlling terminal: the terminal closing does not reach the daemon. Fails only
        // when already a session leader, which the child of `start` never is.
        let _ = nix::unistd::setsid();
    }
    let env = ProcessEnv;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let file = bitrouter_config::discover(config_path, &cwd, &env);
    let mut config = match bitrouter_config::load(file.as_deref(), &env) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return 2;
        }
    };
    if let Some(listen) = &opts.listen {
        config.server.override_listen(listen);
    }
    logger::init(&config.server.log_level, opts.log.as_deref());
    logger::set_access_file(config.server.access_log.path.clone());
    let listeners = match crate::listeners::resolve_all(&config.server.listeners) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // A bad certificate or key stops the start with the file named (Pingora would panic).
    let tls = match &config.server.tls {
        Some(files) if listeners.iter().any(|b| b.listener.tls) => {
            match crate::listeners::CertStore::load(files) {
                Ok(store) => Some(store),
                Err(e) => {
                    eprintln!("error: {e}");
                    return 2;
                }
            }
        }
        _ => None,
    };
    for b in &listeners {
        if !b.addr.ip().is_loopback() && config.server.skip_auth {
            log::warn!(
                "listening on {} (not loopback) with skip_auth: true: anyone who can reach this address can use your provider keys",
                b.addr
            );
        }
    }
    let paths = Paths::resolve(
        opts.socket.as_deref(),
        config.server.control_socket.as_deref(),
        file.as_deref(),
        &env,
    );
    let started_server = config.server.clone();
    // The ledger: a bad `database.url` stops the start like any config error; a database that
    // is down is a warning and the writer keeps retrying (requests are never delayed by it).
    let ledger = match crate::ledger::Ledger::from_config(&config, &env) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let state = match AppState::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    match ledger {
        Some(ledger) => {
            log::info!("ledger: {}", ledger.url());
            state.set_ledger(ledger);
            // Virtual keys, budgets and rate limits share the ledger's database.
            state.govern_current();
        }
        None => log::info!("ledger: off (database.enabled: false)"),
    }
    let snapshot = state.snapshot();
    announce(&snapshot.config, &snapshot.table);
    drop(snapshot);
    log::info!("control socket: {}", paths.socket.display());
    let daemon = Arc::new(Daemon {
        state: state.clone(),
        config_path: file.map(|f| std::fs::canonicalize(&f).unwrap_or(f)),
        listen_override: opts.listen.clone(),
        listen: listeners
            .first()
            .map(|b| b.addr.to_string())
            .unwrap_or_default(),
        listeners: listeners.iter().map(|b| b.describe()).collect(),
        tls,
        started_server,
        paths,
        overlay: Mutex::new(BTreeMap::new()),
    });
    match server::run(state, listeners, daemon, opts.upgrade) {
        Ok(()) => 0,
        Err(e) => {
            log::error!("{e}");
            eprintln!("error: {e}");
            1
        }
    }
}

/// The start-up summary: where the config came from, each provider and how it was found, the
/// routable model count. Never a key value.
fn announce(config: &Config, table: &RoutingTable) {
    match &config.source {
        ConfigSource::File(p) => log::info!("config: {}", p.display()),
        ConfigSource::ZeroConfig => {
            log::info!("config: none found, zero-config from the environment")
        }
    }
    for w in &config.warnings {
        log::warn!("{w}");
    }
    if config.providers.is_empty() {
        log::warn!(
            "no providers: set OPENAI_API_KEY, ANTHROPIC_API_KEY, GOOGLE_API_KEY, OPENROUTER_API_KEY or BITROUTER_<PROVIDER>_API_KEY, or write a bitrouter.yaml (bitrouter init)"
        );
    }
    for p in &config.providers {
        let from = match &p.source {
            ProviderOrigin::Config => "bitrouter.yaml".to_string(),
            ProviderOrigin::Env { var } => var.clone(),
        };
        let protocols: Vec<String> = p
            .protocols
            .rules
            .iter()
            .map(|(glob, list)| {
                let names: Vec<&str> = list.iter().map(|p| p.as_str()).collect();
                format!("{glob}: {}", names.join("|"))
            })
            .collect();
        log::info!(
            "provider {} ({}) -> {}{} [{}] key={}",
            p.id,
            from,
            p.api_base,
            if p.replicas.is_empty() {
                String::new()
            } else {
                format!(
                    " and {} more replica(s), {}",
                    p.replicas.len() - 1,
                    p.replica_strategy.as_str()
                )
            },
            protocols.join(","),
            if p.api_key().is_some() { "set" } else { "none" }
        );
    }
    for r in &config.routes {
        let urls: Vec<&str> = r.upstream.urls.iter().map(|u| u.url.as_str()).collect();
        log::info!(
            "route {} -> {}{}{}",
            r.name,
            urls.join(" "),
            if r.strip_prefix { " strip_prefix" } else { "" },
            if r.auth { " auth" } else { "" }
        );
    }
    log::info!(
        "{} provider(s), {} virtual model(s), {} routable model(s)",
        config.providers.len(),
        config.models.len(),
        table.models().len()
    );
}
