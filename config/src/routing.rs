//! The routing table: a request's `model` string -> ordered upstream targets. Pure and
//! unit-tested; built once per config load and shared by every request.

use crate::{glob, Config, Preset, Protocol, Provider, RetryPolicy, SortBy, Strategy, Variant};
use indexmap::IndexMap;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// One place a request can go: a provider, the model id it knows, and the protocol to speak.
#[derive(Debug, Clone)]
pub struct Target {
    pub provider: Arc<Provider>,
    pub service_id: String,
    pub protocol: Protocol,
    /// Share for the `weighted` strategy (1 unless a virtual model endpoint sets it).
    pub weight: u32,
    /// Relative cost (virtual model endpoints' `price`), for a variant's `sort: price`.
    pub price: Option<f64>,
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
    /// How the name without its `:variant`/`@preset` suffixes was understood.
    pub via: ResolvedVia,
    pub strategy: Strategy,
    /// Ordered targets (never empty).
    pub targets: Vec<Target>,
    /// Retries, attempts and deadline for this request.
    pub retry: Arc<RetryPolicy>,
    /// Parameters to apply to the request (the virtual model's preset, then the variant's
    /// preset and params, then an `@preset` suffix); `None` when nothing changes.
    pub overlay: Option<Arc<Preset>>,
    /// The `:variant` suffix applied, if any.
    pub variant: Option<String>,
    /// The `@preset` suffix applied, if any.
    pub preset: Option<String>,
}

/// Why a model name did not resolve. Each maps to a client-visible status in the proxy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the request has an empty `model`")]
    EmptyModel,
    /// A model string that is no model id: a character outside the id alphabet, or a `.`,
    /// `..` or empty `/` segment that would change the upstream path it is put into (Gemini's
    /// `/models/{model}:generateContent`). Refused before any upstream call.
    #[error("invalid model `{model}`: {reason}")]
    InvalidModel { model: String, reason: String },
    #[error("unknown model `{model}`: no virtual model, provider prefix or provider model list matches it")]
    UnknownModel { model: String },
    /// `model:suffix` where `model` routes but `suffix` is no variant; `known` lists the
    /// defined variants.
    #[error("unknown model variant suffix `:{suffix}` on `{model}` ({})", Known(.known, "variants"))]
    UnknownSuffix {
        model: String,
        suffix: String,
        known: Vec<String>,
    },
    /// `model@preset` where `model` routes but `preset` is not defined; `known` lists the
    /// defined presets.
    #[error("unknown preset `@{preset}` on `{model}` ({})", Known(.known, "presets"))]
    UnknownPreset {
        model: String,
        preset: String,
        known: Vec<String>,
    },
    /// The variant's `providers` keep none of the model's endpoints.
    #[error("variant `{variant}` leaves no endpoint of `{model}`: none of them is on one of the variant's providers")]
    VariantNoEndpoint { model: String, variant: String },
}

/// "defined variants: `a`, `b`" or "no variants are defined".
struct Known<'a>(&'a [String], &'a str);

impl fmt::Display for Known<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Known(names, what) = self;
        if names.is_empty() {
            return write!(f, "no {what} are defined");
        }
        write!(f, "defined {what}: ")?;
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "`{n}`")?;
        }
        Ok(())
    }
}

/// A row of `GET /v1/models` / `bitrouter models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedModel {
    pub id: String,
    /// Provider id, or `bitrouter` for virtual models.
    pub owned_by: String,
}

/// A virtual model, ready to route.
#[derive(Debug, Clone)]
struct VirtualRoute {
    strategy: Strategy,
    /// Its endpoints (those of unknown providers dropped).
    targets: Vec<Target>,
    retry: Arc<RetryPolicy>,
    /// Its `preset:`, when that changes anything.
    overlay: Option<Arc<Preset>>,
}

/// A variant, with its preset and params combined once.
#[derive(Debug, Clone)]
struct VariantRoute {
    variant: Arc<Variant>,
    overlay: Preset,
}

/// Which suffixes a lookup may still strip: the grammar is `base[:variant][@preset]`, so a
/// lookup recurses at most twice whatever the string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffixes {
    Both,
    Variant,
    None,
}

/// A resolution and whether its base was recognised as such (a virtual model, a listed id, a
/// pattern, a defined suffix) rather than passed through to an open provider. An undefined
/// suffix on a recognised base is an error; on a passed-through id it stays part of the id.
struct Found {
    resolution: Resolution,
    recognised: bool,
}

/// Model name -> targets.
///
/// Built once per config load; every lookup `resolve` needs is precomputed (virtual model
/// targets and retry policies, provider ids, the first provider listing each bare id, combined
/// variant overlays), so a request costs a few hash lookups plus the allocation of its result.
#[derive(Debug, Clone)]
pub struct RoutingTable {
    providers: Vec<Arc<Provider>>,
    /// Provider id -> index in `providers`.
    by_id: HashMap<String, usize>,
    /// Virtual model name -> its route.
    virtuals: HashMap<String, VirtualRoute>,
    /// Bare listed model id -> index of the first provider listing it.
    listed: HashMap<String, usize>,
    /// Per provider, the ids it lists (for the `provider/model:suffix` check).
    listed_by: Vec<HashSet<String>>,
    /// Retry policy of direct routes (`upstream`'s).
    direct_retry: Arc<RetryPolicy>,
    presets: IndexMap<String, Arc<Preset>>,
    variants: IndexMap<String, Arc<Variant>>,
    variant_routes: HashMap<String, VariantRoute>,
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
        let preset = |name: Option<&String>| -> Preset {
            name.and_then(|n| config.presets.get(n))
                .map(|p| Preset::clone(p))
                .unwrap_or_default()
        };
        let mut virtuals = HashMap::new();
        for (name, vm) in &config.models {
            let targets: Vec<Target> = vm
                .endpoints
                .iter()
                .filter_map(|ep| {
                    let p = by_id.get(&ep.provider).map(|&i| &providers[i])?;
                    let mut t = target(p, &ep.service_id);
                    t.weight = ep.weight.max(1);
                    t.price = ep.price;
                    Some(t)
                })
                .collect();
            if !targets.is_empty() {
                let overlay = Some(preset(vm.preset.as_ref()))
                    .filter(|p| !p.is_empty())
                    .map(Arc::new);
                virtuals.insert(
                    name.clone(),
                    VirtualRoute {
                        strategy: vm.strategy,
                        targets,
                        retry: Arc::new(vm.retry.clone()),
                        overlay,
                    },
                );
            }
        }
        let variant_routes = config
            .variants
            .iter()
            .map(|(name, v)| {
                let overlay = preset(v.preset.as_ref()).overlaid(&v.params);
                (
                    name.clone(),
                    VariantRoute {
                        variant: Arc::clone(v),
                        overlay,
                    },
                )
            })
            .collect();
        let mut table = RoutingTable {
            providers,
            by_id,
            virtuals,
            listed,
            listed_by,
            direct_retry: Arc::new(config.upstream.retry.clone()),
            presets: config.presets.clone(),
            variants: config.variants.clone(),
            variant_routes,
            catalog: Vec::new(),
        };
        table.catalog = table.build_catalog(config);
        table
    }

    /// Resolves a request's `model`: `base[:variant][@preset]`.
    ///
    /// An exact name always wins: a virtual model, an id a provider lists (`llama3.1:8b`,
    /// `claude-3-5-sonnet@20240620`), `provider:model` / `provider/model` with a listed model.
    /// Then `@preset` (split at the last `@`) and `:variant` (at the last `:`) suffixes on a
    /// routable base. Then `provider:model` / `provider/model` passing an unlisted id through
    /// (an undefined suffix stays part of it), and last a bare id matching a provider's
    /// patterns (first in provider order). Suffixes are recognised before patterns, so `gpt-*`
    /// does not swallow `gpt-4o:discount`. Never falls back to an unrelated provider.
    ///
    /// A string that is not exactly a virtual model name or a listed id (both written by the
    /// operator) must be a well-formed model id (see [`check_model_id`]), and so must the
    /// service id a direct route passes through (`provider:../x` has a clean whole but
    /// forwards `../x`): otherwise [`RouteError::InvalidModel`].
    pub fn resolve(&self, model: &str) -> Result<Resolution, RouteError> {
        let m = model.trim();
        if m.is_empty() {
            return Err(RouteError::EmptyModel);
        }
        let invalid = |reason: String| RouteError::InvalidModel {
            model: m.to_string(),
            reason,
        };
        if !self.virtuals.contains_key(m) && !self.listed.contains_key(m) {
            check_model_id(m).map_err(invalid)?;
        }
        let resolution = self.lookup(model, m, Suffixes::Both)?.resolution;
        if matches!(
            resolution.via,
            ResolvedVia::ProviderSlash | ResolvedVia::ProviderColon | ResolvedVia::Pattern
        ) {
            for t in &resolution.targets {
                check_model_id(&t.service_id).map_err(|why| {
                    invalid(format!("the upstream model id `{}`: {why}", t.service_id))
                })?;
            }
        }
        Ok(resolution)
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

    /// The presets (`model@preset`), in file order.
    pub fn presets(&self) -> &IndexMap<String, Arc<Preset>> {
        &self.presets
    }

    /// The variants (`model:variant`), in file order.
    pub fn variants(&self) -> &IndexMap<String, Arc<Variant>> {
        &self.variants
    }

    /// `m` (trimmed) resolved, stripping at most the suffixes `allowed`; `requested` is the
    /// client's string, copied into the result.
    fn lookup(&self, requested: &str, m: &str, allowed: Suffixes) -> Result<Found, RouteError> {
        if let Some(v) = self.virtuals.get(m) {
            return Ok(Found {
                resolution: Resolution {
                    requested: requested.to_string(),
                    via: ResolvedVia::VirtualModel(m.to_string()),
                    strategy: v.strategy,
                    targets: v.targets.clone(),
                    retry: Arc::clone(&v.retry),
                    overlay: v.overlay.clone(),
                    variant: None,
                    preset: None,
                },
                recognised: true,
            });
        }
        let bare = self.listed.get(m).copied();
        // `provider:model` unless `m` is itself a listed id; `provider/model`. Provider ids
        // contain neither separator, so at most one of the two applies.
        let prefixed = bare
            .is_none()
            .then(|| self.provider_prefixed(m, ':', ResolvedVia::ProviderColon))
            .flatten()
            .or_else(|| self.provider_prefixed(m, '/', ResolvedVia::ProviderSlash));
        if let Some((p, rest, via)) = &prefixed {
            if self.listed_by[*p].contains(&m[*rest..]) {
                return Ok(self.found(requested, *p, &m[*rest..], via.clone(), true));
            }
        }
        if let Some(p) = bare {
            // Both exact: `provider/model` is the more explicit instruction.
            return Ok(match prefixed {
                Some((pp, rest, via)) => self.found(requested, pp, &m[rest..], via, true),
                None => self.found(requested, p, m, ResolvedVia::Listed, true),
            });
        }
        // A suffix must split the model part, not the provider prefix.
        let min = prefixed.as_ref().map_or(0, |(_, rest, _)| *rest);
        if allowed == Suffixes::Both {
            if let Some(found) = self.preset_suffix(requested, m, min)? {
                return Ok(found);
            }
        }
        if allowed != Suffixes::None {
            if let Some(found) = self.variant_suffix(requested, m, min)? {
                return Ok(found);
            }
        }
        if let Some((p, rest, via)) = prefixed {
            return Ok(self.found(requested, p, &m[rest..], via, false));
        }
        if let Some(p) = self.pattern_match(m) {
            return Ok(self.found(requested, p, m, ResolvedVia::Pattern, true));
        }
        Err(RouteError::UnknownModel {
            model: m.to_string(),
        })
    }

    /// `base@preset`, when `base` routes: the preset applied, or `UnknownPreset` when it is
    /// undefined and `base` was recognised. `None`: not a preset suffix.
    fn preset_suffix(
        &self,
        requested: &str,
        m: &str,
        min: usize,
    ) -> Result<Option<Found>, RouteError> {
        let Some((base, name)) = split_suffix(m, '@', min) else {
            return Ok(None);
        };
        if name.contains([':', '/']) {
            // `id@version:variant` is a variant on an id with an `@`.
            return Ok(None);
        }
        let found = match self.lookup(requested, base, Suffixes::Variant) {
            Ok(found) => found,
            Err(RouteError::UnknownModel { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.presets.get(name) {
            Some(preset) => {
                let mut r = found.resolution;
                let overlay = match r.overlay.take() {
                    Some(current) => current.overlaid(preset),
                    None => Preset::clone(preset),
                };
                r.overlay = Some(overlay).filter(|o| !o.is_empty()).map(Arc::new);
                r.preset = Some(name.to_string());
                Ok(Some(Found {
                    resolution: r,
                    recognised: true,
                }))
            }
            None if found.recognised => Err(RouteError::UnknownPreset {
                model: base.to_string(),
                preset: name.to_string(),
                known: self.presets.keys().cloned().collect(),
            }),
            None => Ok(None),
        }
    }

    /// `base:variant`, when `base` routes: the variant applied, or `UnknownSuffix` when it is
    /// undefined and `base` was recognised. `None`: not a variant suffix.
    fn variant_suffix(
        &self,
        requested: &str,
        m: &str,
        min: usize,
    ) -> Result<Option<Found>, RouteError> {
        let Some((base, name)) = split_suffix(m, ':', min) else {
            return Ok(None);
        };
        let found = match self.lookup(requested, base, Suffixes::None) {
            Ok(found) => found,
            Err(RouteError::UnknownModel { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        match self.variant_routes.get(name) {
            Some(route) => apply_variant(found.resolution, base, name, route).map(|resolution| {
                Some(Found {
                    resolution,
                    recognised: true,
                })
            }),
            None if found.recognised => Err(RouteError::UnknownSuffix {
                model: base.to_string(),
                suffix: name.to_string(),
                known: self.variants.keys().cloned().collect(),
            }),
            None => Ok(None),
        }
    }

    /// `provider<sep>rest` when the part before the first `sep` is a provider id and `rest` is
    /// not empty: the provider's index and where `rest` starts.
    fn provider_prefixed(
        &self,
        m: &str,
        sep: char,
        via: ResolvedVia,
    ) -> Option<(usize, usize, ResolvedVia)> {
        let (prefix, rest) = m.split_once(sep)?;
        let &p = self.by_id.get(prefix)?;
        (!rest.is_empty()).then_some((p, prefix.len() + sep.len_utf8(), via))
    }

    /// The first provider whose patterns match the bare id `m`.
    fn pattern_match(&self, m: &str) -> Option<usize> {
        self.providers
            .iter()
            .position(|p| p.model_patterns.iter().any(|g| glob::matches(g, m)))
    }

    fn found(
        &self,
        requested: &str,
        p: usize,
        service_id: &str,
        via: ResolvedVia,
        recognised: bool,
    ) -> Found {
        Found {
            resolution: Resolution {
                requested: requested.to_string(),
                via,
                strategy: Strategy::Priority,
                targets: vec![target(&self.providers[p], service_id)],
                retry: Arc::clone(&self.direct_retry),
                overlay: None,
                variant: None,
                preset: None,
            },
            recognised,
        }
    }

    fn build_catalog(&self, config: &Config) -> Vec<ListedModel> {
        let mut seen = HashSet::new();
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

/// Whether `id` is a well-formed model id, explaining what is wrong if not.
///
/// Model strings from clients end up in upstream URLs (Gemini's
/// `/models/{model}:generateContent`, sent with the operator's key), so a string that could
/// change the path is refused: only ASCII letters, digits and `- _ . : / @ +` (every real id
/// fits: `hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M`,
/// `accounts/fireworks/models/llama-v3p1-8b-instruct`, `claude-sonnet-4-5@20250929`), and no
/// `/`-separated segment that is empty (`a//b`, a leading or trailing `/`), `.` or `..`.
/// Checked after percent-decoding (the Gemini path model arrives decoded, `%2e%2e` as `..`).
pub fn check_model_id(id: &str) -> Result<(), String> {
    if let Some(c) = id.chars().find(|&c| !is_model_id_char(c)) {
        return Err(format!(
            "{} is not allowed in a model id (letters, digits and `- _ . : / @ +` are)",
            describe_char(c)
        ));
    }
    for segment in id.split('/') {
        match segment {
            "" => {
                return Err(
                    "it has an empty `/` segment (a leading, trailing or doubled `/`)".to_string(),
                )
            }
            "." | ".." => {
                return Err(format!(
                    "it has a `{segment}` path segment, which would change the upstream URL"
                ))
            }
            _ => {}
        }
    }
    Ok(())
}

fn is_model_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@' | '+')
}

/// `c` for a message: printable characters quoted, the others (control characters, spaces) by
/// their escape, so the message itself stays one clean line.
fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else if c == ' ' {
        "a space".to_string()
    } else {
        format!("`{}`", c.escape_default())
    }
}

/// `m` split at the last `sep` into a non-empty base (longer than `min`, so a provider prefix
/// stays whole) and a non-empty suffix.
fn split_suffix(m: &str, sep: char, min: usize) -> Option<(&str, &str)> {
    let at = m.rfind(sep)?;
    let (base, name) = (&m[..at], &m[at + sep.len_utf8()..]);
    (at > min && !base.is_empty() && !name.is_empty()).then_some((base, name))
}

/// `r` (the resolution of `base`) narrowed, reordered and re-parameterised by a variant.
fn apply_variant(
    mut r: Resolution,
    base: &str,
    name: &str,
    route: &VariantRoute,
) -> Result<Resolution, RouteError> {
    let v = &route.variant;
    if !v.providers.is_empty() {
        let mut kept = Vec::with_capacity(r.targets.len());
        for id in &v.providers {
            kept.extend(r.targets.iter().filter(|t| t.provider.id == *id).cloned());
        }
        if kept.is_empty() {
            return Err(RouteError::VariantNoEndpoint {
                model: base.to_string(),
                variant: name.to_string(),
            });
        }
        r.targets = kept;
    }
    match v.sort {
        Some(SortBy::Price) => {
            // Stable: equal prices keep their order; unpriced endpoints go last.
            r.targets.sort_by(|a, b| match (a.price, b.price) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
            r.strategy = Strategy::Priority;
        }
        Some(SortBy::Latency) => r.strategy = Strategy::LeastLatency,
        None => {}
    }
    if !route.overlay.is_empty() {
        let overlay = match r.overlay.take() {
            Some(current) => current.overlaid(&route.overlay),
            None => route.overlay.clone(),
        };
        r.overlay = Some(overlay).filter(|o| !o.is_empty()).map(Arc::new);
    }
    r.variant = Some(name.to_string());
    Ok(r)
}

fn target(provider: &Arc<Provider>, service_id: &str) -> Target {
    Target {
        provider: Arc::clone(provider),
        service_id: service_id.to_string(),
        protocol: provider.protocol_for(service_id),
        weight: 1,
        price: None,
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
