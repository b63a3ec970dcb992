//! `bitrouter serve`: load the config, say what was detected, run the server.

use crate::state::AppState;
use crate::{logger, server};
use bitrouter_config::{Config, ConfigSource, ProviderOrigin, RoutingTable};
use std::path::Path;

pub fn run(config_path: Option<&Path>, listen: Option<String>) -> i32 {
    let mut config = match super::load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return 2;
        }
    };
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    logger::init(&config.server.log_level);
    let listen = match server::resolve_listen(&config.server.listen) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if !listen.ip().is_loopback() && config.server.skip_auth {
        log::warn!(
            "listening on {listen} (not loopback) with skip_auth: true: anyone who can reach this address can use your provider keys"
        );
    }
    let state = match AppState::new(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let snapshot = state.snapshot();
    announce(&snapshot.config, &snapshot.table);
    drop(snapshot);
    match server::run(state, listen) {
        Ok(()) => 0,
        Err(e) => {
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
            "provider {} ({}) -> {} [{}] key={}",
            p.id,
            from,
            p.api_base,
            protocols.join(","),
            if p.api_key().is_some() { "set" } else { "none" }
        );
    }
    log::info!(
        "{} provider(s), {} virtual model(s), {} routable model(s)",
        config.providers.len(),
        config.models.len(),
        table.models().len()
    );
}
