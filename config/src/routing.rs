//! The routing table: a request's `model` string -> ordered upstream targets. Pure and
//! unit-tested; built once per config load and shared by every request.

use crate::{glob, Config, Protocol, Provider, Strategy};
use std::collections::HashMap;
use std::sync::Arc;

/// One place a request can go: a provider, the model id it knows, and the protocol to speak.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub service_id: String,
    pub protocol: Protocol,
}

/// How a model name was understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedVia {
    /// A virtual model from `models:`.
    VirtualModel(String),
    /// `provider/model`.
    ProviderSlash,
    /// `provider:model` (BitRouter's direct-route form).
    ProviderColon,
    /// A bare id listed by a provider.
    Listed,
    /// A bare id matched by a provider's registry pattern (`claude-*`).
    Pattern,
}

/// The outcome of resolving a model name.
#[derive(Debug, Clone)]
pub struct Resolution {
    /// The model string as the client sent it.
    pub requested: String,
    pub via: ResolvedVia,
    pub strategy: Strategy,
    /// Ordered targets (never empty).
    pub targets: Vec<Target>,
}

/// Why a model name did not resolve. Each maps to a client-visible status in the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the request has an empty `model`")]
    EmptyModel,
    #[error("unknown model `{model}`: no virtual model, provider prefix or provider model list matches it")]
    UnknownModel { model: String },
    #[error("unknown model variant suffix `:{suffix}` on `{model}` (no variants are defined)")]
    UnknownSuffix { model: String, suffix: String },
}

/// A row of `GET /v1/models` / `bitrouter models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    /// Provider id, or `bitrouter` for virtual models.
    pub owned_by: String,
}

/// Model name -> targets.
///
/// Built once per config load; every lookup `resolve` needs is precomputed (virtual model
/// targets, provider ids, the first provider listing each bare id), so a request costs a few
/// hash lookups plus the allocation of its result.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    providers: Vec<Arc<Provider>>,
    /// Provider id -> index in `providers`.
    by_id: HashMap<String, usize>,
    /// Virtual model name -> its ordered targets (endpoints of unknown providers dropped).
    virtuals: HashMap<String, (Strategy, Vec<Target>)>,
    /// Bare listed model id -> index of the first provider listing it.
    listed: HashMap<String, usize>,
    /// Per provider, the ids it lists (for the `provider/model:suffix` check).
    listed_by: Vec<std::collections::HashSet<String>>,
    /// `models()`, computed once.
    catalog: Vec<ListedModel>,
}

impl RoutingTable {
    /// Indexes `config` for routing.
    pub fn new(config: &Config) -> RoutingTable {
        let providers = config.providers.clone();
        let mut by_id = HashMap::new();
        for (i, p) in providers.iter().enumerate() {
            by_id.entry(p.id.clone()).or_insert(i);
        }
        let mut listed = HashMap::new();
        let mut listed_by = Vec::with_capacity(providers.len());
        for (i, p) in providers.iter().enumerate() {
            for m in &p.models {
                listed.entry(m.clone()).or_insert(i);
            }
            listed_by.push(p.models.iter().cloned().collect());
        }
        let mut virtuals = HashMap::new();
        for (name, vm) in &config.models {
            let targets: Vec<Target> = vm
                .endpoints
                .iter()
                .filter_map(|ep| {
                    let p = by_id.get(&ep.provider).map(|&i| &providers[i])?;
                    Some(target(p, &ep.service_id))
                })
                .collect();
            if !targets.is_empty() {
                virtuals.insert(name.clone(), (vm.strategy, targets));
            }
        }
        let mut table = RoutingTable {
            providers,
            by_id,
            virtuals,
            listed,
            listed_by,
            catalog: Vec::new(),
        };
        table.catalog = table.build_catalog(config);
        table
    }

    /// Resolves a request's `model`. Order: an exact virtual model name; `provider:model`;
    /// `provider/model`; a bare id listed by a provider (first in provider order); a bare id
    /// matching a provider's patterns (first in provider order).
    ///
    /// A trailing `:suffix` on an otherwise routable name is a variant suffix, reported as
    /// such (no variants exist yet); it is recognised before patterns, so `gpt-*` does not
    /// swallow `gpt-4o:discount`. An exactly listed id (`llama3.1:8b`) always wins over suffix
    /// parsing and over the `provider:model` reading. Never falls back to an unrelated
    /// provider.
    pub fn resolve(&self, model: &str) -> Result<Resolution, RouteError> {
        let m = model.trim();
        if m.is_empty() {
            return Err(RouteError::EmptyModel);
        }
        if let Some((strategy, targets)) = self.virtuals.get(m) {
            return Ok(Resolution {
                requested: model.to_string(),
                via: ResolvedVia::VirtualModel(m.to_string()),
                strategy: *strategy,
                targets: targets.clone(),
            });
        }
        if !self.listed.contains_key(m) {
            if let Some(found) = self.provider_prefixed(m, ':', ResolvedVia::ProviderColon) {
                return found.map(|(p, id, via)| self.single(model, p, id, via));
            }
        }
        if let Some(found) = self.provider_prefixed(m, '/', ResolvedVia::ProviderSlash) {
            return found.map(|(p, id, via)| self.single(model, p, id, via));
        }
        if let Some(&p) = self.listed.get(m) {
            return Ok(self.single(model, p, m, ResolvedVia::Listed));
        }
        // Before patterns: `gpt-*` would otherwise swallow `gpt-4o:discount`.
        if let Some((base, suffix)) = m.rsplit_once(':') {
            if !base.is_empty() && !suffix.is_empty() && self.routable_without_suffix(base) {
                return Err(RouteError::UnknownSuffix {
                    model: base.to_string(),
                    suffix: suffix.to_string(),
                });
            }
        }
        if let Some(p) = self.pattern_match(m) {
            return Ok(self.single(model, p, m, ResolvedVia::Pattern));
        }
        Err(RouteError::UnknownModel {
            model: m.to_string(),
        })
    }

    /// Every routable name for `GET /v1/models`: virtual models first (owned by `bitrouter`),
    /// then per provider in order each listed model as `provider/model`, followed by its bare
    /// id when that provider is the one a bare request reaches.
    pub fn models(&self) -> Vec<ListedModel> {
        self.catalog.clone()
    }

    /// The provider with this id.
    pub fn provider(&self, id: &str) -> Option<&Arc<Provider>> {
        self.by_id.get(id).map(|&i| &self.providers[i])
    }

    /// Every provider, configured first then auto-detected (the order bare ids are matched in).
    pub fn providers(&self) -> &[Arc<Provider>] {
        &self.providers
    }

    /// `provider<sep>rest` when the part before the first `sep` is a provider id: `None` when it
    /// is not, `Some(Err)` for a variant suffix on a listed id.
    #[allow(clippy::type_complexity)]
    fn provider_prefixed<'m>(
        &self,
        m: &'m str,
        sep: char,
        via: ResolvedVia,
    ) -> Option<Result<(usize, &'m str, ResolvedVia), RouteError>> {
        let (prefix, rest) = m.split_once(sep)?;
        let &p = self.by_id.get(prefix)?;
        if rest.is_empty() {
            return None;
        }
        let listed = &self.listed_by[p];
        if !listed.is_empty() && !listed.contains(rest) {
            if let Some((base, suffix)) = rest.rsplit_once(':') {
                if !base.is_empty() && !suffix.is_empty() && listed.contains(base) {
                    return Some(Err(RouteError::UnknownSuffix {
                        model: format!("{prefix}{sep}{base}"),
                        suffix: suffix.to_string(),
                    }));
                }
            }
        }
        Some(Ok((p, rest, via)))
    }

    /// The first provider whose patterns match the bare id `m`.
    fn pattern_match(&self, m: &str) -> Option<usize> {
        self.providers
            .iter()
            .position(|p| p.model_patterns.iter().any(|g| glob::matches(g, m)))
    }

    /// Whether `base` routes as a virtual model, `provider/model` or a bare id.
    fn routable_without_suffix(&self, base: &str) -> bool {
        self.virtuals.contains_key(base)
            || base
                .split_once('/')
                .is_some_and(|(p, rest)| !rest.is_empty() && self.by_id.contains_key(p))
            || self.listed.contains_key(base)
            || self.pattern_match(base).is_some()
    }

    fn single(&self, requested: &str, p: usize, service_id: &str, via: ResolvedVia) -> Resolution {
        Resolution {
            requested: requested.to_string(),
            via,
            strategy: Strategy::Priority,
            targets: vec![target(&self.providers[p], service_id)],
        }
    }

    fn build_catalog(&self, config: &Config) -> Vec<ListedModel> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut push = |id: String, owner: &str| {
            if seen.insert(id.clone()) {
                out.push(ListedModel {
                    id,
                    owned_by: owner.to_string(),
                });
            }
        };
        for name in config.models.keys() {
            if self.virtuals.contains_key(name) {
                push(name.clone(), "bitrouter");
            }
        }
        for (i, p) in self.providers.iter().enumerate() {
            if self.by_id.get(&p.id) != Some(&i) {
                continue;
            }
            for m in &p.models {
                push(format!("{}/{m}", p.id), &p.id);
                if self.listed.get(m) == Some(&i) && !self.virtuals.contains_key(m) {
                    push(m.clone(), &p.id);
                }
            }
        }
        out
    }
}

fn target(provider: &Arc<Provider>, service_id: &str) -> Target {
    Target {
        provider: Arc::clone(provider),
        service_id: service_id.to_string(),
        protocol: provider.protocol_for(service_id),
    }
}

pub(crate) fn protocol_for(provider: &Provider, service_id: &str) -> Protocol {
    protocols_for(provider, service_id)
        .first()
        .copied()
        .unwrap_or(Protocol::ChatCompletions)
}

pub(crate) fn protocols_for<'p>(provider: &'p Provider, service_id: &str) -> &'p [Protocol] {
    provider
        .protocols
        .rules
        .iter()
        .find(|(pattern, list)| !list.is_empty() && glob::matches(pattern, service_id))
        .map(|(_, list)| list.as_slice())
        .unwrap_or(&[])
}

pub(crate) fn endpoint_path(
    provider: &Provider,
    protocol: Protocol,
    service_id: &str,
    stream: bool,
) -> String {
    let mut path = String::with_capacity(provider.base_path.len() + 48 + service_id.len());
    path.push_str(&provider.base_path);
    if !provider.base_path.split('/').any(is_version_segment) {
        path.push('/');
        path.push_str(protocol.default_version_segment());
    }
    match protocol {
        Protocol::ChatCompletions => path.push_str("/chat/completions"),
        Protocol::Responses => path.push_str("/responses"),
        Protocol::Messages => path.push_str("/messages"),
        Protocol::GenerateContent => {
            path.push_str("/models/");
            // Users sometimes write Google's resource name (`models/gemini-2.5-pro`).
            let id = service_id.strip_prefix("models/").unwrap_or(service_id);
            encode_path_into(id, &mut path);
            path.push_str(if stream {
                ":streamGenerateContent?alt=sse"
            } else {
                ":generateContent"
            });
        }
    }
    path
}

/// `v1`, `v1beta`, `v2alpha1`, ...: `^v\d+([a-z]+\d*)?$`.
fn is_version_segment(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix('v') else {
        return false;
    };
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return false;
    }
    let rest = &rest[digits..];
    let letters = rest.len()
        - rest
            .trim_start_matches(|c: char| c.is_ascii_lowercase())
            .len();
    let rest = &rest[letters..];
    (letters > 0 && rest.chars().all(|c| c.is_ascii_digit())) || rest.is_empty()
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `/`.
fn encode_path_into(text: &str, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

#[cfg(test)]
mod tests;
