//! Auto-detection: providers that exist because of the environment alone.
//!
//! - every built-in provider with a key in one of its variables (`OPENAI_API_KEY`,
//!   `BITROUTER_OPENAI_API_KEY`, ...), or, for a keyless local server such as Ollama, with
//!   `BITROUTER_<ID>_API_BASE` set;
//! - any other `BITROUTER_<X>_API_KEY` paired with `BITROUTER_<X>_API_BASE`: a generic provider
//!   `x` whose protocol is inferred from the host.
//!
//! `BITROUTER_API_KEY` (no id) is the gateway's own credential, never a provider. Detected
//! providers come after the configured ones, built-ins in registry order then generic ones by
//! variable name, and never replace a provider configured in the file. Problems here are
//! warnings, not errors: zero-config start-up must not fail because of a stray variable.

use crate::registry::{self, RegistryEntry};
use crate::resolve::{builtin_provider, generic_provider, non_empty, parse_base};
use crate::{AuthStyle, EnvSource, Provider, ProviderOrigin};
use std::collections::HashSet;
use std::sync::Arc;

/// The providers detected in `env`, skipping the ids in `configured`.
pub(crate) fn detect(
    env: &dyn EnvSource,
    configured: &[String],
    warnings: &mut Vec<String>,
) -> Vec<Arc<Provider>> {
    // Env ids (`MY_LLM`) already spoken for, so their variables are not read twice.
    let mut taken: HashSet<String> = configured.iter().map(|id| registry::env_id(id)).collect();
    let mut found = Vec::new();
    // Env ids whose variables were acted on (a provider made, or a warning given).
    let mut used: HashSet<String> = taken.clone();

    for entry in registry::builtin() {
        let env_id = registry::env_id(entry.id);
        if !taken.insert(env_id.clone()) {
            continue;
        }
        let (p, attempted) = builtin(entry, env, warnings);
        if attempted {
            used.insert(env_id);
        }
        if let Some(p) = p {
            found.push(Arc::new(p));
        }
    }

    for (name, key) in env.vars() {
        let Some(x) = name
            .strip_prefix("BITROUTER_")
            .and_then(|rest| rest.strip_suffix("_API_KEY"))
        else {
            continue;
        };
        if x.is_empty() || key.is_empty() || taken.contains(x) {
            continue;
        }
        if !x
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            continue;
        }
        used.insert(x.to_string());
        let id = x.to_ascii_lowercase();
        let base_var = format!("BITROUTER_{x}_API_BASE");
        let Some(base) = non_empty(env, &base_var) else {
            warnings.push(format!(
                "{name} is set but `{id}` is not a built-in provider: set {base_var} too, or configure `{id}` under `providers:`"
            ));
            continue;
        };
        if key.chars().any(char::is_control) {
            warnings.push(format!(
                "provider `{id}` is skipped: {name} contains a control character (a trailing line break?)"
            ));
            continue;
        }
        match parse_base(&base) {
            Ok(base) => {
                taken.insert(x.to_string());
                found.push(Arc::new(generic_provider(id, base, key, name.clone())));
            }
            Err(why) => warnings.push(format!(
                "provider `{id}` from {name} is skipped: {base_var} is invalid: {why}"
            )),
        }
    }

    // A base URL with nothing to pair it with is most likely a mistake worth a line in the log.
    for (name, _) in env.vars() {
        let Some(x) = name
            .strip_prefix("BITROUTER_")
            .and_then(|rest| rest.strip_suffix("_API_BASE"))
        else {
            continue;
        };
        if x.is_empty() || used.contains(x) {
            continue;
        }
        let id = x.to_ascii_lowercase();
        let fix = match registry::find(&id) {
            Some(entry) => entry.env_keys.join(" or "),
            None => format!("BITROUTER_{x}_API_KEY"),
        };
        warnings.push(format!(
            "{name} is set but provider `{id}` is neither configured nor has a key: set {fix}, or configure `{id}` under `providers:`"
        ));
    }
    found
}

/// The built-in provider if the environment activates it, and whether it tried to (a provider
/// skipped with a warning counts: its variables need no second warning).
fn builtin(
    entry: &RegistryEntry,
    env: &dyn EnvSource,
    warnings: &mut Vec<String>,
) -> (Option<Provider>, bool) {
    match activate(entry, env, warnings) {
        Activation::Inactive => (None, false),
        Activation::Skipped => (None, true),
        Activation::Active(p) => (Some(*p), true),
    }
}

enum Activation {
    Inactive,
    Skipped,
    Active(Box<Provider>),
}

fn activate(entry: &RegistryEntry, env: &dyn EnvSource, warnings: &mut Vec<String>) -> Activation {
    let base_var = registry::api_base_var(entry.id);
    let base_override = non_empty(env, &base_var);
    let key = entry
        .env_keys
        .iter()
        .find_map(|var| non_empty(env, var).map(|value| (var.to_string(), value)));
    let (var, api_key) = match key {
        Some((var, value)) => (var, Some(value)),
        None if entry.auth == AuthStyle::None && base_override.is_some() => {
            (base_var.clone(), None)
        }
        None => return Activation::Inactive,
    };
    if api_key
        .as_deref()
        .is_some_and(|k| k.chars().any(char::is_control))
    {
        warnings.push(format!(
            "provider `{}` is skipped: {var} contains a control character (a trailing line break?)",
            entry.id
        ));
        return Activation::Skipped;
    }
    let (base_text, base_source) = match &base_override {
        Some(url) => (url.as_str(), base_var.as_str()),
        None => (entry.api_base, "the built-in base URL"),
    };
    match parse_base(base_text) {
        Ok(base) => Activation::Active(Box::new(builtin_provider(
            entry,
            base,
            api_key,
            ProviderOrigin::Env { var },
        ))),
        Err(why) => {
            warnings.push(format!(
                "provider `{}` is skipped: {base_source} is invalid: {why}",
                entry.id
            ));
            Activation::Skipped
        }
    }
}
