//! [`ConfigFile`] -> [`Config`]: registry defaults inherited, environment overrides applied,
//! auto-detected providers appended, URLs parsed, and the semantic checks that need more than
//! one field (unknown endpoint providers, name clashes, globs, addresses).

use crate::parse::{backticked, describe, Parsed};
use crate::pricing::{self, Prices, PricingPath, PricingSection};
use crate::registry::{self, RegistryEntry};
use crate::schema::{
    AccountSection, AccountStrategyName, ApiProtocol, ConfigFile, HealthCheckKindName,
    HealthCheckSection, HealthSection, ModelEntry, PresetSection, ProtocolRule, ProviderSection,
    RetryOn, ServerSection, SortName, StrategyName, TimeoutsSection, UpstreamSection,
};
use crate::spans::Seg;
use crate::validate::Diagnostics;
use crate::{
    detect, glob, Account, AccountStrategy, AuthStyle, CapabilityOverrides, Config, ConfigSource,
    Endpoint, EnvSource, HealthCheck, HealthCheckKind, HealthPolicy, Origin, Preset, Protocol,
    ProtocolRules, Provider, ProviderOrigin, RetryPolicy, Secret, ServerConfig, SortBy, Strategy,
    Timeouts, UpstreamConfig, Variant, VirtualModel, MAX_DURATION_SECS, UNFORWARDABLE_HEADERS,
};
use indexmap::IndexMap;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Logged when nothing is routable, with the quickest fix.
pub(crate) const NO_PROVIDERS_WARNING: &str = "no providers are configured or detected: set a provider key such as OPENAI_API_KEY or ANTHROPIC_API_KEY, or add `providers:` to bitrouter.yaml";

/// The gateway's own credential (not a provider key).
pub(crate) fn gateway_key(env: &dyn EnvSource) -> Option<Secret> {
    non_empty(env, "BITROUTER_API_KEY").map(Secret::new)
}

/// The value of `name` when set and not empty (an empty key is no key).
pub(crate) fn non_empty(env: &dyn EnvSource, name: &str) -> Option<String> {
    env.get(name).filter(|v| !v.is_empty())
}

pub(crate) fn resolve(
    parsed: Parsed,
    env: &dyn EnvSource,
    base_dir: Option<&Path>,
    source: ConfigSource,
    diag: &mut Diagnostics,
) -> Config {
    let Parsed {
        file,
        broken_providers,
        broken_presets,
        mut warnings,
        guardrails_plugin,
    } = parsed;
    let server = server(&file.server, env, base_dir, diag, &mut warnings);
    let upstream = upstream(&file.upstream, diag);

    let mut providers = Vec::new();
    for (id, section) in &file.providers {
        let path = [Seg::key("providers"), Seg::key(id)];
        let mut ctx = Ctx {
            id,
            path: &path,
            diag,
            warnings: &mut warnings,
            ok: true,
        };
        if let Some(p) = configured_provider(&mut ctx, section, env, base_dir, &upstream.timeouts) {
            providers.push(Arc::new(p));
        }
    }
    let configured: Vec<String> = file
        .providers
        .keys()
        .chain(broken_providers.iter())
        .cloned()
        .collect();
    providers.extend(
        detect::detect(env, &configured, &mut warnings)
            .into_iter()
            .map(|mut p| {
                Arc::make_mut(&mut p).timeouts = upstream.timeouts;
                p
            }),
    );

    let known: HashSet<&str> = configured
        .iter()
        .map(String::as_str)
        .chain(providers.iter().map(|p| p.id.as_str()))
        .collect();
    // Names a reference may use: broken presets count, so they do not cascade.
    let mut broken_presets: Vec<&str> = broken_presets.iter().map(String::as_str).collect();
    broken_presets.sort_unstable();
    let preset_names: Vec<&str> = file
        .presets
        .keys()
        .map(String::as_str)
        .chain(broken_presets)
        .collect();
    let presets = presets(&file, diag);
    let variants = variants(&file, &known, &preset_names, diag);
    let models = virtual_models(&file, &known, &preset_names, &upstream.retry, diag);
    let guardrails = crate::guardrails::resolve(
        file.guardrails.as_ref(),
        guardrails_plugin.as_ref(),
        &guardrail_targets(&file, &providers, &known),
        diag,
        &mut warnings,
    );

    let routes = crate::routes::resolve(
        &file.routes,
        &providers,
        &broken_providers,
        &upstream.timeouts,
        diag,
    );
    if providers.is_empty() && routes.is_empty() && !diag.has_problems() {
        warnings.push(NO_PROVIDERS_WARNING.to_string());
    }
    Config {
        server,
        providers,
        models,
        source,
        warnings,
        upstream,
        presets,
        variants,
        guardrails,
        database: file.database.clone().unwrap_or_default(),
        access: crate::AccessPolicies::default(),
        routes,
    }
}

/// The names guardrail scope lists are checked against: virtual models, every provider's listed
/// models (bare and as `provider/model`) and its unlisted-model globs.
fn guardrail_targets<'a>(
    file: &ConfigFile,
    providers: &[Arc<Provider>],
    known: &'a HashSet<&'a str>,
) -> crate::guardrails::Known<'a> {
    let mut models: Vec<String> = file.models.keys().cloned().collect();
    let mut model_patterns = Vec::new();
    for p in providers {
        for m in &p.models {
            models.push(m.clone());
            models.push(format!("{}/{m}", p.id));
        }
        model_patterns.extend(p.model_patterns.iter().cloned());
    }
    crate::guardrails::Known {
        providers: known,
        models,
        model_patterns,
    }
}

/// The `upstream:` section over the defaults.
fn upstream(s: &UpstreamSection, diag: &mut Diagnostics) -> UpstreamConfig {
    let path = [Seg::key("upstream"), Seg::key("timeouts")];
    let timeouts = s
        .timeouts
        .as_ref()
        .and_then(|t| overlay_timeouts(diag, &path, Timeouts::default(), t))
        .unwrap_or_default();
    UpstreamConfig {
        timeouts,
        health: s
            .health
            .as_ref()
            .map(|h| health(diag, h))
            .unwrap_or_default(),
        retry: RetryPolicy::default(),
    }
}

fn health(diag: &mut Diagnostics, s: &HealthSection) -> HealthPolicy {
    let at = |key: &str| [Seg::key("upstream"), Seg::key("health"), Seg::key(key)];
    let mut h = HealthPolicy::default();
    match s.failure_threshold {
        Some(0) => diag.at_value(
            &at("failure_threshold"),
            "`upstream.health.failure_threshold` must be at least 1",
        ),
        Some(n) => h.failure_threshold = n,
        None => {}
    }
    let mut secs = |key: &str, value: Option<f64>, slot: &mut Duration| {
        if let Some(d) = value.and_then(|v| seconds(diag, &at(key), v, false)) {
            *slot = d;
        }
    };
    secs("eject_secs", s.eject_secs, &mut h.eject);
    secs("max_eject_secs", s.max_eject_secs, &mut h.max_eject);
    secs(
        "max_cooldown_secs",
        s.max_cooldown_secs,
        &mut h.max_cooldown,
    );
    if h.max_eject < h.eject {
        if s.max_eject_secs.is_some() {
            diag.at_value(
                &at("max_eject_secs"),
                format!(
                    "`upstream.health.max_eject_secs` ({}) is shorter than `eject_secs` ({})",
                    h.max_eject.as_secs_f64(),
                    h.eject.as_secs_f64()
                ),
            );
        } else {
            h.max_eject = h.eject;
        }
    }
    h
}

/// `value` seconds as a duration, or a problem at `path` when it is negative, not finite, too
/// large, or (with `positive`) zero.
pub(crate) fn seconds(
    diag: &mut Diagnostics,
    path: &[Seg],
    value: f64,
    positive: bool,
) -> Option<Duration> {
    duration(value, positive)
        .map_err(|want| diag.at_value(path, format!("{} {want}", describe(path))))
        .ok()
}

/// `value` seconds as a duration, or the end of a message saying what was expected: negative,
/// NaN, infinite and (with `positive`) zero values, and anything above [`MAX_DURATION_SECS`],
/// are refused here so that the proxy's `Instant + Duration` arithmetic can never overflow.
fn duration(value: f64, positive: bool) -> Result<Duration, String> {
    let fits = value.is_finite() && value >= 0.0 && !(positive && value == 0.0);
    let want = || {
        let want = if positive { "positive" } else { "non-negative" };
        format!("must be a {want} number of seconds, found {value}")
    };
    if !fits {
        return Err(want());
    }
    // Written as an f64 comparison first: `try_from_secs_f64` alone would accept up to
    // ~1.8e19 s, which overflows `Instant` arithmetic.
    if value > MAX_DURATION_SECS as f64 {
        // `1e20`, not a 21-digit number.
        return Err(too_long(if value >= 1e15 {
            format!("{value:e}")
        } else {
            value.to_string()
        }));
    }
    Duration::try_from_secs_f64(value).map_err(|_| want())
}

/// The end of the message for a duration above [`MAX_DURATION_SECS`].
fn too_long(value: impl std::fmt::Display) -> String {
    format!("must be at most {MAX_DURATION_SECS} seconds (30 days), found {value}")
}

/// `base` with every timeout `s` sets replacing it; `None` when one is invalid (reported).
fn overlay_timeouts(
    diag: &mut Diagnostics,
    path: &[Seg],
    base: Timeouts,
    s: &TimeoutsSection,
) -> Option<Timeouts> {
    let mut ok = true;
    let mut get = |key: &str, value: Option<f64>| -> Option<Duration> {
        let at = [path, &[Seg::key(key)]].concat();
        let d = seconds(diag, &at, value?, false);
        ok &= d.is_some();
        d
    };
    let t = Timeouts {
        connect: get("connect_secs", s.connect_secs).unwrap_or(base.connect),
        read: get("read_secs", s.read_secs).unwrap_or(base.read),
        write: get("write_secs", s.write_secs).unwrap_or(base.write),
        pool_idle: get("pool_idle_secs", s.pool_idle_secs).unwrap_or(base.pool_idle),
        tcp_keepalive: get("tcp_keepalive_secs", s.tcp_keepalive_secs).or(base.tcp_keepalive),
        total: get("total_secs", s.total_secs).or(base.total),
        first_byte: get("first_byte_secs", s.first_byte_secs).or(base.first_byte),
    };
    ok.then_some(t)
}

fn server(
    s: &ServerSection,
    env: &dyn EnvSource,
    base_dir: Option<&Path>,
    diag: &mut Diagnostics,
    warnings: &mut Vec<String>,
) -> ServerConfig {
    let at = |key: &str| [Seg::key("server"), Seg::key(key)];
    let listening = crate::listen::resolve(s, base_dir, diag, check_listen);
    if s.max_body_bytes == 0 {
        diag.at_value(&at("max_body_bytes"), "`max_body_bytes` must be at least 1");
    }
    for (key, secs) in [
        ("shutdown_grace_secs", s.shutdown_grace_secs),
        ("keepalive_secs", s.keepalive_secs),
    ] {
        if secs > MAX_DURATION_SECS {
            let path = at(key);
            diag.at_value(&path, format!("{} {}", describe(&path), too_long(secs)));
        }
    }
    let api_key = gateway_key(env);
    if !s.skip_auth && api_key.is_none() {
        warnings.push(
            "`server.skip_auth` is false but BITROUTER_API_KEY is not set: only virtual keys (brvk_, `bitrouter key sign`) will be accepted, and the admin routes (/metrics) by no one"
                .to_string(),
        );
    }
    ServerConfig {
        listen: listening
            .listeners
            .first()
            .map_or_else(|| crate::DEFAULT_LISTEN.to_string(), |l| l.address.clone()),
        listeners: listening.listeners,
        tls: listening.tls,
        h2c: listening.h2c,
        access_log: listening.access_log,
        log_level: s.log_level.as_str().to_string(),
        skip_auth: s.skip_auth,
        control_socket: s.control_socket.as_deref().map(|p| rooted(p, base_dir)),
        max_body_bytes: s.max_body_bytes,
        shutdown_grace_secs: s.shutdown_grace_secs,
        keepalive_secs: s.keepalive_secs,
        threads: s.threads.map(|n| n.get()),
        work_stealing: s.work_stealing,
        api_key,
    }
}

/// `host:port`, `[v6]:port` or an IP socket address.
fn check_listen(listen: &str) -> Result<(), String> {
    if listen.parse::<SocketAddr>().is_ok() {
        return Ok(());
    }
    let Some((host, port)) = listen.rsplit_once(':') else {
        return Err("expected `host:port`, e.g. `127.0.0.1:4356`".to_string());
    };
    if port.parse::<u16>().is_err() {
        return Err(format!("port `{port}` is not a number from 0 to 65535"));
    }
    if host.is_empty() {
        return Err("the host is missing (use `0.0.0.0` for every interface)".to_string());
    }
    if host.contains(':') {
        return Err("an IPv6 address must be in brackets, e.g. `[::1]:4356`".to_string());
    }
    if !host
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_')
    {
        return Err(format!("`{host}` is not a host name or IP address"));
    }
    Ok(())
}

/// A relative path from the file, rooted at the file's directory.
fn rooted(path: &Path, base_dir: Option<&Path>) -> PathBuf {
    match base_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// What every check of one configured provider needs.
struct Ctx<'a> {
    id: &'a str,
    path: &'a [Seg],
    diag: &'a mut Diagnostics,
    warnings: &'a mut Vec<String>,
    ok: bool,
}

impl Ctx<'_> {
    fn sub(&self, rest: &[Seg]) -> Vec<Seg> {
        [self.path, rest].concat()
    }
    fn problem_at_key(&mut self, rest: &[Seg], message: String) {
        let path = self.sub(rest);
        self.diag.at_key(&path, message);
        self.ok = false;
    }
    fn problem_at_value(&mut self, rest: &[Seg], message: String) {
        let path = self.sub(rest);
        self.diag.at_value(&path, message);
        self.ok = false;
    }
}

fn configured_provider(
    cx: &mut Ctx<'_>,
    s: &ProviderSection,
    env: &dyn EnvSource,
    base_dir: Option<&Path>,
    upstream_timeouts: &Timeouts,
) -> Option<Provider> {
    let id = cx.id;
    if let Err(why) = check_provider_id(id) {
        cx.problem_at_key(&[], format!("invalid provider id `{id}`: {why}"));
    }
    let entry = registry::find(id);

    let base_var = registry::api_base_var(id);
    let mut replicas = Vec::new();
    let base = match (non_empty(env, &base_var), &s.api_base, entry) {
        (Some(url), ..) => parse_base(&url)
            .map_err(|why| {
                cx.problem_at_key(
                    &[],
                    format!("`{base_var}` (the base URL of provider `{id}`) is invalid: {why}"),
                )
            })
            .ok(),
        (None, Some(url), _) => crate::replicas::parse(url)
            .map(|(base, list)| {
                replicas = list;
                base
            })
            .map_err(|why| {
                cx.problem_at_value(
                    &[Seg::key("api_base")],
                    format!("invalid `api_base` of provider `{id}`: {why}"),
                )
            })
            .ok(),
        (None, None, Some(e)) => parse_base(e.api_base).ok(),
        (None, None, None) => {
            cx.problem_at_key(
                &[],
                format!(
                    "provider `{id}` needs an `api_base`: it is not a built-in provider ({})",
                    backticked(&registry::builtin().iter().map(|e| e.id).collect::<Vec<_>>())
                ),
            );
            None
        }
    };

    if s.api_key.is_some() && s.accounts.is_some() {
        cx.problem_at_key(
            &[Seg::key("api_key")],
            format!(
                "provider `{id}` has both `api_key` and `accounts`: put every key under `accounts` (a provider has one or the other)"
            ),
        );
    }
    let accounts = match &s.accounts {
        Some(list) => accounts(cx, list),
        None => vec![(
            "default".to_string(),
            single_key(cx, s, env, entry),
            None::<usize>,
        )],
    };
    let has_key = accounts.iter().any(|(_, key, _)| key.is_some());

    let default_protocols = match (entry, &base) {
        (Some(e), _) => e.protocols.to_vec(),
        (None, Some(b)) => vec![infer_protocol(b)],
        (None, None) => vec![Protocol::ChatCompletions],
    };
    let protocols = protocol_rules(cx, s.api_protocol.as_ref(), default_protocols);

    let preferred = protocols
        .rules
        .iter()
        .find(|(g, _)| g == "*")
        .and_then(|(_, list)| list.first().copied())
        .unwrap_or(Protocol::ChatCompletions);
    let mut auth = match (s.auth, &s.api_protocol, entry) {
        (Some(auth), ..) => auth,
        (None, None, Some(e)) => e.auth,
        _ => preferred.default_auth(),
    };
    if auth == AuthStyle::None && has_key {
        if s.auth.is_some() {
            cx.warnings.push(format!(
                "provider `{id}` has an API key but `auth: none`: the key is not sent"
            ));
        } else {
            auth = preferred.default_auth();
        }
    }
    if auth != AuthStyle::None {
        for (label, key, index) in &accounts {
            match (key, index) {
                (Some(_), _) => {}
                (None, Some(i)) => cx.problem_at_key(
                    &[Seg::key("accounts"), Seg::Index(*i)],
                    format!(
                        "account `{label}` of provider `{id}` has no `api_key` (set `auth: none` for a server that takes none)"
                    ),
                ),
                (None, None) => {
                    if let Some(e) = entry.filter(|e| e.auth != AuthStyle::None) {
                        cx.warnings.push(format!(
                            "provider `{id}` has no API key: set {} or `api_key`",
                            e.env_keys.join(" or ")
                        ));
                    }
                }
            }
        }
    }
    let account_strategy = match s.account_strategy {
        Some(AccountStrategyName::Failover) => AccountStrategy::Failover,
        Some(AccountStrategyName::Balance) | None => AccountStrategy::Balance,
    };
    let timeouts = match &s.timeouts {
        Some(t) => {
            let path = cx.sub(&[Seg::key("timeouts")]);
            let resolved = overlay_timeouts(cx.diag, &path, *upstream_timeouts, t);
            cx.ok &= resolved.is_some();
            resolved.unwrap_or(*upstream_timeouts)
        }
        None => *upstream_timeouts,
    };
    let health_check = s.health_check.as_ref().map(|hc| {
        let base_path = base.as_ref().map_or("", |b| b.base_path.as_str());
        health_check(cx, hc, base_path)
    });

    let Listed {
        ids: listed,
        capability_overrides,
        pricing,
    } = listed_models(cx, s);
    let (models, model_patterns) = match (listed.is_empty(), entry) {
        (false, _) => (listed, Vec::new()),
        (true, Some(e)) => (strings(e.models), strings(e.model_patterns)),
        (true, None) => (Vec::new(), Vec::new()),
    };

    let mut headers = headers(cx, s, entry);
    add_protocol_headers(&protocols, &mut headers);
    let forward_headers = forward_headers(cx, s);

    let ca_file = s.ca_file.as_deref().map(|p| rooted(p, base_dir));
    if let (Some(path), Some(_)) = (&ca_file, base_dir) {
        if !path.is_file() {
            cx.problem_at_value(
                &[Seg::key("ca_file")],
                format!(
                    "`ca_file` of provider `{id}`: `{}` is not a readable file",
                    path.display()
                ),
            );
        }
    }

    let base = base?;
    if !cx.ok {
        return None;
    }
    Some(Provider {
        id: id.to_string(),
        api_base: base.api_base,
        origin: base.origin,
        base_path: base.base_path,
        replicas,
        replica_strategy: s.replica_strategy.unwrap_or_default(),
        accounts: accounts
            .into_iter()
            .map(|(label, key, _)| Account {
                label,
                api_key: key.map(Secret::new),
            })
            .collect(),
        account_strategy,
        timeouts,
        health_check,
        protocols,
        auth,
        listed_capabilities: crate::resolved::listed_capabilities(&models, &capability_overrides),
        models,
        model_patterns,
        capability_overrides,
        pricing,
        ca_file,
        headers,
        forward_headers,
        source: ProviderOrigin::Config,
    })
}

/// The key of a provider without `accounts`: `api_key`, else the environment. An empty key is
/// no key.
fn single_key(
    cx: &mut Ctx<'_>,
    s: &ProviderSection,
    env: &dyn EnvSource,
    entry: Option<&RegistryEntry>,
) -> Option<String> {
    let id = cx.id;
    let api_key = match &s.api_key {
        Some(key) => Some(key.clone()).filter(|k| !k.is_empty()),
        None => key_vars(id, entry)
            .iter()
            .find_map(|var| non_empty(env, var)),
    };
    if api_key
        .as_deref()
        .is_some_and(|k| k.chars().any(char::is_control))
    {
        let message = format!(
            "the API key of provider `{id}` contains a control character (a trailing line break?)"
        );
        match s.api_key {
            Some(_) => cx.problem_at_value(&[Seg::key("api_key")], message),
            None => cx.problem_at_key(&[], message),
        }
    }
    api_key
}

/// `accounts`: (label, key, index) of each, labels unique and non-empty.
fn accounts(
    cx: &mut Ctx<'_>,
    list: &[AccountSection],
) -> Vec<(String, Option<String>, Option<usize>)> {
    let id = cx.id;
    if list.is_empty() {
        cx.problem_at_key(
            &[Seg::key("accounts")],
            format!(
                "`accounts` of provider `{id}` is empty: list at least one `{{label, api_key}}`, or remove it"
            ),
        );
    }
    let mut out: Vec<(String, Option<String>, Option<usize>)> = Vec::with_capacity(list.len());
    for (i, account) in list.iter().enumerate() {
        let at = |key: &str| [Seg::key("accounts"), Seg::Index(i), Seg::key(key)];
        let label = &account.label;
        if label.trim().is_empty() {
            cx.problem_at_value(
                &at("label"),
                format!("account {} of provider `{id}` has an empty `label`", i + 1),
            );
        } else if label.chars().any(char::is_control) {
            cx.problem_at_value(
                &at("label"),
                format!(
                    "account label `{}` of provider `{id}` contains a control character",
                    label.escape_debug()
                ),
            );
        } else if out.iter().any(|(l, _, _)| l == label) {
            cx.problem_at_value(
                &at("label"),
                format!(
                    "duplicate account label `{label}` in provider `{id}`: labels must be unique"
                ),
            );
        }
        let key = account.api_key.clone().filter(|k| !k.is_empty());
        if key
            .as_deref()
            .is_some_and(|k| k.chars().any(char::is_control))
        {
            cx.problem_at_value(
                &at("api_key"),
                format!(
                    "the API key of account `{label}` of provider `{id}` contains a control character (a trailing line break?)"
                ),
            );
        }
        out.push((label.clone(), key, Some(i)));
    }
    out
}

fn health_check(cx: &mut Ctx<'_>, s: &HealthCheckSection, base_path: &str) -> HealthCheck {
    let id = cx.id;
    let at = |key: &str| [Seg::key("health_check"), Seg::key(key)];
    let path = match &s.path {
        Some(path) => {
            if !path.starts_with('/') || path.chars().any(|c| c.is_whitespace() || c.is_control()) {
                cx.problem_at_value(
                    &at("path"),
                    format!(
                        "`health_check.path` of provider `{id}` must be an absolute path such as `/v1/models`, found `{}`",
                        path.escape_debug()
                    ),
                );
            }
            path.clone()
        }
        None => format!("{base_path}/models"),
    };
    let mut secs = |key: &str, value: Option<f64>, default: u64| {
        let Some(value) = value else {
            return Duration::from_secs(default);
        };
        let full = cx.sub(&at(key));
        let d = seconds(cx.diag, &full, value, true);
        cx.ok &= d.is_some();
        d.unwrap_or(Duration::from_secs(default))
    };
    let interval = secs("interval_secs", s.interval_secs, 10);
    let timeout = secs("timeout_secs", s.timeout_secs, 2);
    HealthCheck {
        kind: match s.kind {
            Some(HealthCheckKindName::Tcp) => HealthCheckKind::Tcp,
            Some(HealthCheckKindName::Http) | None => HealthCheckKind::Http,
        },
        path,
        interval,
        timeout,
    }
}

/// Variables holding a provider's key, most specific first.
pub(crate) fn key_vars(id: &str, entry: Option<&RegistryEntry>) -> Vec<String> {
    match entry {
        Some(e) => strings(e.env_keys),
        None => vec![registry::api_key_var(id)],
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A provider id must survive `provider/model`, `provider:model` and `BITROUTER_<ID>_API_KEY`.
fn check_provider_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("it is empty".to_string());
    }
    match id
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        Some(c) => Err(format!(
            "it contains {c:?}, which would make `{id}/model` ambiguous"
        )),
        None => Ok(()),
    }
}

/// The `api_protocol` rules, with a catch-all `*` rule for the default protocols appended when
/// the file has none, so that every model id has a protocol.
fn protocol_rules(
    cx: &mut Ctx<'_>,
    configured: Option<&ApiProtocol>,
    default: Vec<Protocol>,
) -> ProtocolRules {
    let mut rules: Vec<(String, Vec<Protocol>)> = Vec::new();
    match configured {
        None => {}
        Some(ApiProtocol::All(choice)) => rules.push(("*".to_string(), choice.as_slice().to_vec())),
        Some(ApiProtocol::Rules(list)) => {
            for (i, ProtocolRule(map)) in list.iter().enumerate() {
                let at = [Seg::key("api_protocol"), Seg::Index(i)];
                if map.len() != 1 {
                    cx.problem_at_key(
                        &at,
                        format!(
                            "each `api_protocol` entry of provider `{}` must be one `\"glob\": protocol` pair, found {} pairs",
                            cx.id,
                            map.len()
                        ),
                    );
                }
                for (pattern, choice) in map {
                    if let Err(why) = glob::check(pattern) {
                        cx.problem_at_key(
                            &[at[0].clone(), at[1].clone(), Seg::key(pattern)],
                            format!(
                                "invalid glob `{pattern}` in `api_protocol` of provider `{}`: {why}",
                                cx.id
                            ),
                        );
                    }
                    rules.push((pattern.clone(), choice.as_slice().to_vec()));
                }
            }
        }
    }
    if !rules.iter().any(|(g, _)| g == "*") {
        rules.push(("*".to_string(), default));
    }
    ProtocolRules { rules }
}

/// What a provider's `models:` list gives: the ids, each once, and the capability corrections
/// and prices of the entries that set any (the first entry of an id wins, as for routing).
struct Listed {
    ids: Vec<String>,
    capability_overrides: IndexMap<String, CapabilityOverrides>,
    pricing: IndexMap<String, Prices>,
}

fn listed_models(cx: &mut Ctx<'_>, s: &ProviderSection) -> Listed {
    let mut listed: Vec<String> = Vec::new();
    let mut overrides = IndexMap::new();
    let mut pricing = IndexMap::new();
    for (i, entry) in s.models.iter().flatten().enumerate() {
        let id = entry.id();
        let at = [Seg::key("models"), Seg::Index(i)];
        if let ModelEntry::Detailed(d) = entry {
            if d.max_output_tokens == Some(0) {
                let key = [&at[..], &[Seg::key("max_output_tokens")]].concat();
                cx.problem_at_value(
                    &key,
                    format!("{} must be at least 1", describe(&cx.sub(&key))),
                );
            }
            let over = CapabilityOverrides {
                max_tokens_param: d.max_tokens_param,
                default_max_tokens: d.max_output_tokens,
                accepts_sampling: d.accepts_sampling,
                accepts_reasoning_effort: d.accepts_reasoning_effort,
                thinking: d.thinking_control,
            };
            let first = !listed.iter().any(|m| m == id);
            if !over.is_empty() && first {
                overrides.entry(id.to_string()).or_insert(over);
            }
            if let Some(section) = &d.pricing {
                check_pricing(cx, &at, section);
                if first {
                    pricing
                        .entry(id.to_string())
                        .or_insert_with(|| Prices::from_section(section));
                }
            }
        }
        if id.trim().is_empty() {
            cx.problem_at_key(
                &at,
                format!("{} has an empty model id", describe(&cx.sub(&at))),
            );
        } else if id.trim() != id {
            cx.problem_at_key(
                &at,
                format!(
                    "model id `{id}` of provider `{}` has leading or trailing spaces",
                    cx.id
                ),
            );
        } else if !listed.iter().any(|m| m == id) {
            listed.push(id.to_string());
        }
    }
    Listed {
        ids: listed,
        capability_overrides: overrides,
        pricing,
    }
}

/// The problems of one entry's `pricing:`, each at its value.
fn check_pricing(cx: &mut Ctx<'_>, entry: &[Seg], section: &PricingSection) {
    for (path, message) in pricing::check(section) {
        let mut key = [entry, &[Seg::key("pricing")]].concat();
        match path {
            PricingPath::Rate(name) => key.push(Seg::key(name)),
            PricingPath::Tier(i, name) => {
                key.extend([Seg::key("context_tiers"), Seg::Index(i), Seg::key(name)])
            }
        }
        let what = describe(&cx.sub(&key));
        cx.problem_at_value(&key, format!("{what} {message}"));
    }
}

/// Registry headers, then the file's (which replace a registry header of the same name).
fn headers(
    cx: &mut Ctx<'_>,
    s: &ProviderSection,
    entry: Option<&RegistryEntry>,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = entry
        .map(|e| {
            e.headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    for (name, value) in s.headers.iter().flatten() {
        let at = [Seg::key("headers"), Seg::key(name)];
        if name.is_empty() || !name.chars().all(header_token) {
            cx.problem_at_key(&at, format!("`{name}` is not a valid HTTP header name"));
            continue;
        }
        if value.chars().any(|c| c == '\r' || c == '\n' || c == '\0') {
            cx.problem_at_value(
                &at,
                format!("the value of header `{name}` contains a line break"),
            );
            continue;
        }
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.clone(), value.clone()));
    }
    headers
}

/// `forward_headers`, lower-cased and deduplicated; a name that is not a header name, or that
/// may never be forwarded (a credential, a hop-by-hop header), is a problem at its position.
fn forward_headers(cx: &mut Ctx<'_>, s: &ProviderSection) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, name) in s.forward_headers.iter().flatten().enumerate() {
        let at = [Seg::key("forward_headers"), Seg::Index(i)];
        let lower = name.trim().to_ascii_lowercase();
        if lower.is_empty() || !lower.chars().all(header_token) {
            cx.problem_at_value(&at, format!("`{name}` is not a valid HTTP header name"));
            continue;
        }
        if UNFORWARDABLE_HEADERS.contains(&lower.as_str()) {
            cx.problem_at_value(
                &at,
                format!(
                    "`{name}` cannot be forwarded: bitrouter sets it itself, or it is a hop-by-hop header or a client credential"
                ),
            );
            continue;
        }
        if !out.contains(&lower) {
            out.push(lower);
        }
    }
    out
}

/// A character allowed in an HTTP header name (RFC 9110 `tchar`).
fn header_token(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The version header the Messages API requires, for any provider that may be spoken to in
/// that protocol: the proxy adds `provider.headers` only where the client sent none, and a
/// client speaking another protocol sends none.
pub(crate) const ANTHROPIC_VERSION: (&str, &str) = ("anthropic-version", "2023-06-01");

fn add_protocol_headers(protocols: &ProtocolRules, headers: &mut Vec<(String, String)>) {
    let speaks_messages = protocols
        .rules
        .iter()
        .any(|(_, list)| list.contains(&Protocol::Messages));
    let (name, value) = ANTHROPIC_VERSION;
    if speaks_messages && !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
        headers.push((name.to_string(), value.to_string()));
    }
}

/// A parsed `api_base`.
pub(crate) struct Base {
    pub api_base: String,
    pub origin: Origin,
    pub base_path: String,
}

/// Parses an `api_base`: http(s) only, no credentials, query or fragment.
pub(crate) fn parse_base(raw: &str) -> Result<Base, String> {
    let text = raw.trim();
    if text.is_empty() {
        return Err("it is empty".to_string());
    }
    if !text.contains("://") {
        return Err(format!("`{text}` must start with `http://` or `https://`"));
    }
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a valid URL ({e})"))?;
    let tls = match url.scheme() {
        "https" => true,
        "http" => false,
        other => {
            return Err(format!(
                "scheme `{other}` is not supported: use http or https"
            ))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported: use `api_key`".to_string());
    }
    if url.query().is_some() {
        return Err(format!(
            "`{text}` has a query string, which is not supported"
        ));
    }
    if url.fragment().is_some() {
        return Err(format!("`{text}` has a fragment, which is not supported"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) => d.to_string(),
        Some(url::Host::Ipv4(a)) => a.to_string(),
        Some(url::Host::Ipv6(a)) => a.to_string(),
        None => return Err(format!("`{text}` has no host")),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("`{text}` has no port"))?;
    Ok(Base {
        api_base: text.trim_end_matches('/').to_string(),
        origin: Origin { tls, host, port },
        base_path: url.path().trim_end_matches('/').to_string(),
    })
}

/// The protocol a provider with no registry entry and no `api_protocol` speaks, from its host.
pub(crate) fn infer_protocol(base: &Base) -> Protocol {
    let host = base.origin.host.to_ascii_lowercase();
    let under = |domain: &str| {
        host == domain
            || host
                .strip_suffix(domain)
                .is_some_and(|rest| rest.ends_with('.'))
    };
    if under("anthropic.com") {
        Protocol::Messages
    } else if under("googleapis.com") && !base.base_path.split('/').any(|s| s == "openai") {
        // `.../v1beta/openai` is Google's OpenAI-compatible surface.
        Protocol::GenerateContent
    } else {
        Protocol::ChatCompletions
    }
}

/// A provider from the registry (auto-detected: no file entry).
pub(crate) fn builtin_provider(
    entry: &RegistryEntry,
    base: Base,
    api_key: Option<String>,
    source: ProviderOrigin,
) -> Provider {
    let preferred = entry
        .protocols
        .first()
        .copied()
        .unwrap_or(Protocol::ChatCompletions);
    let auth = match entry.auth {
        AuthStyle::None if api_key.is_some() => preferred.default_auth(),
        auth => auth,
    };
    Provider {
        id: entry.id.to_string(),
        api_base: base.api_base,
        origin: base.origin,
        base_path: base.base_path,
        accounts: vec![crate::Account {
            label: "default".to_string(),
            api_key: api_key.map(Secret::new),
        }],
        account_strategy: crate::AccountStrategy::default(),
        replicas: Vec::new(),
        replica_strategy: crate::ReplicaStrategy::default(),
        timeouts: crate::Timeouts::default(),
        health_check: None,
        protocols: ProtocolRules {
            rules: vec![("*".to_string(), entry.protocols.to_vec())],
        },
        auth,
        models: strings(entry.models),
        model_patterns: strings(entry.model_patterns),
        listed_capabilities: crate::resolved::listed_capabilities(
            &strings(entry.models),
            &IndexMap::new(),
        ),
        capability_overrides: IndexMap::new(),
        pricing: IndexMap::new(),
        ca_file: None,
        headers: entry
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        forward_headers: Vec::new(),
        source,
    }
}

/// A provider detected from `BITROUTER_<X>_API_KEY` + `BITROUTER_<X>_API_BASE`.
pub(crate) fn generic_provider(id: String, base: Base, api_key: String, var: String) -> Provider {
    let protocol = infer_protocol(&base);
    let protocols = ProtocolRules {
        rules: vec![("*".to_string(), vec![protocol])],
    };
    let mut headers = Vec::new();
    add_protocol_headers(&protocols, &mut headers);
    Provider {
        id,
        api_base: base.api_base,
        origin: base.origin,
        base_path: base.base_path,
        accounts: vec![crate::Account {
            label: "default".to_string(),
            api_key: Some(Secret::new(api_key)),
        }],
        account_strategy: crate::AccountStrategy::default(),
        replicas: Vec::new(),
        replica_strategy: crate::ReplicaStrategy::default(),
        timeouts: crate::Timeouts::default(),
        health_check: None,
        protocols,
        auth: protocol.default_auth(),
        models: Vec::new(),
        model_patterns: Vec::new(),
        capability_overrides: IndexMap::new(),
        listed_capabilities: IndexMap::new(),
        pricing: IndexMap::new(),
        ca_file: None,
        headers,
        forward_headers: Vec::new(),
        source: ProviderOrigin::Env { var },
    }
}

fn virtual_models(
    file: &ConfigFile,
    known: &HashSet<&str>,
    presets: &[&str],
    default_retry: &RetryPolicy,
    diag: &mut Diagnostics,
) -> IndexMap<String, VirtualModel> {
    let mut out = IndexMap::new();
    for (name, vm) in &file.models {
        let path = [Seg::key("models"), Seg::key(name)];
        let mut ok = true;
        let mut problem = |diag: &mut Diagnostics, at: &[Seg], value: bool, message: String| {
            let full = [&path[..], at].concat();
            if value {
                diag.at_value(&full, message);
            } else {
                diag.at_key(&full, message);
            }
            ok = false;
        };
        if name.trim().is_empty() {
            problem(
                diag,
                &[],
                false,
                "a virtual model name must not be empty".to_string(),
            );
        } else if name.trim() != name {
            problem(
                diag,
                &[],
                false,
                format!("virtual model name `{name}` has leading or trailing spaces; no request could name it"),
            );
        }
        if file.providers.contains_key(name) {
            problem(
                diag,
                &[],
                false,
                format!("virtual model `{name}` has the same name as provider `{name}`; rename one of them"),
            );
        }
        if vm.endpoints.is_empty() {
            problem(
                diag,
                &[Seg::key("endpoints")],
                false,
                format!("virtual model `{name}` has no endpoints: list at least one `{{provider, service_id}}`"),
            );
        }
        let owner = format!("virtual model `{name}`");
        for (i, ep) in vm.endpoints.iter().enumerate() {
            let at = |key: &str| [Seg::key("endpoints"), Seg::Index(i), Seg::key(key)];
            if !known.contains(ep.provider.as_str()) {
                problem(
                    diag,
                    &at("provider"),
                    true,
                    unknown_provider(&ep.provider, &owner, known),
                );
            }
            if ep.service_id.trim().is_empty() {
                problem(
                    diag,
                    &at("service_id"),
                    true,
                    format!(
                        "endpoint {} of virtual model `{name}` has an empty `service_id`",
                        i + 1
                    ),
                );
            }
            if ep.weight == Some(0) {
                problem(
                    diag,
                    &at("weight"),
                    true,
                    format!(
                        "the `weight` of endpoint {} of virtual model `{name}` must be at least 1",
                        i + 1
                    ),
                );
            }
            if let Some(price) = ep.price.filter(|p| !(p.is_finite() && *p >= 0.0)) {
                problem(
                    diag,
                    &at("price"),
                    true,
                    format!(
                        "the `price` of endpoint {} of virtual model `{name}` must be a non-negative number, found {price}",
                        i + 1
                    ),
                );
            }
        }

        let mut retry = default_retry.clone();
        if let Some(list) = &vm.retry_on {
            retry.on_connect = false;
            retry.on_timeout = false;
            retry.statuses.clear();
            for (i, entry) in list.iter().enumerate() {
                let at = [Seg::key("retry_on"), Seg::Index(i)];
                let status = match entry {
                    RetryOn::Name(n) if n == "connect" => {
                        retry.on_connect = true;
                        continue;
                    }
                    RetryOn::Name(n) if n == "timeout" => {
                        retry.on_timeout = true;
                        continue;
                    }
                    RetryOn::Name(n) => match n.parse::<i64>() {
                        Ok(status) => status,
                        Err(_) => {
                            problem(
                                diag,
                                &at,
                                true,
                                format!(
                                    "unknown `retry_on` entry `{n}` in virtual model `{name}`, expected `connect`, `timeout` or an HTTP status from 400 to 599"
                                ),
                            );
                            continue;
                        }
                    },
                    RetryOn::Status(status) => *status,
                };
                match u16::try_from(status) {
                    Ok(s) if (400..=599).contains(&s) => {
                        if !retry.statuses.contains(&s) {
                            retry.statuses.push(s);
                        }
                    }
                    _ => problem(
                        diag,
                        &at,
                        true,
                        format!(
                            "`retry_on` status {status} in virtual model `{name}` is not an error status: expected 400 to 599"
                        ),
                    ),
                }
            }
        }
        match vm.max_attempts {
            Some(0) => problem(
                diag,
                &[Seg::key("max_attempts")],
                true,
                format!("`max_attempts` of virtual model `{name}` must be at least 1"),
            ),
            Some(n) => retry.max_attempts = Some(usize::try_from(n).unwrap_or(usize::MAX)),
            None => {}
        }
        if let Some(value) = vm.deadline_secs {
            // The key as written: `deadline_secs` or its alias `deadline`.
            let alias = [&path[..], &[Seg::key("deadline")]].concat();
            let key = if diag.spans().contains(&alias) {
                "deadline"
            } else {
                "deadline_secs"
            };
            match duration(value, true) {
                Ok(d) => retry.deadline = Some(d),
                Err(want) => problem(
                    diag,
                    &[Seg::key(key)],
                    true,
                    format!("`{key}` of virtual model `{name}` {want}"),
                ),
            }
        }
        if let Some(preset) = &vm.preset {
            if !presets.contains(&preset.as_str()) {
                problem(
                    diag,
                    &[Seg::key("preset")],
                    true,
                    unknown_preset(preset, &owner, presets),
                );
            }
        }

        if ok {
            out.insert(
                name.clone(),
                VirtualModel {
                    name: name.clone(),
                    strategy: strategy(vm.strategy),
                    retry,
                    preset: vm.preset.clone(),
                    endpoints: vm
                        .endpoints
                        .iter()
                        .map(|ep| Endpoint {
                            provider: ep.provider.clone(),
                            service_id: ep.service_id.clone(),
                            weight: ep.weight.unwrap_or(1),
                            price: ep.price,
                        })
                        .collect(),
                },
            );
        }
    }
    out
}

fn strategy(name: StrategyName) -> Strategy {
    match name {
        StrategyName::Priority => Strategy::Priority,
        StrategyName::RoundRobin => Strategy::RoundRobin,
        StrategyName::Weighted => Strategy::Weighted,
        StrategyName::LeastLatency => Strategy::LeastLatency,
    }
}

/// A preset or variant name must survive `model:variant@preset` parsing.
fn check_suffix_name(diag: &mut Diagnostics, path: &[Seg], name: &str, what: &str) -> bool {
    let why = if name.trim().is_empty() {
        "it is empty".to_string()
    } else if let Some(c) = name.chars().find(|c| matches!(c, ':' | '@' | '/')) {
        format!("it contains `{c}`, which would make `model:variant@preset` ambiguous")
    } else if name.trim() != name {
        "it has leading or trailing spaces".to_string()
    } else {
        return true;
    };
    diag.at_key(path, format!("invalid {what} name `{name}`: {why}"));
    false
}

fn presets(file: &ConfigFile, diag: &mut Diagnostics) -> IndexMap<String, Arc<Preset>> {
    let mut out = IndexMap::new();
    for (name, section) in &file.presets {
        let path = [Seg::key("presets"), Seg::key(name)];
        let name_ok = check_suffix_name(diag, &path, name, "preset");
        if let (true, Some(p)) = (name_ok, preset(diag, &path, section)) {
            out.insert(name.clone(), Arc::new(p));
        }
    }
    out
}

/// A preset (or a variant's `params`) at `path`; `None` when a value is out of range
/// (reported).
fn preset(diag: &mut Diagnostics, path: &[Seg], s: &PresetSection) -> Option<Preset> {
    let mut ok = true;
    for (key, value) in [("temperature", s.temperature), ("top_p", s.top_p)] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && *v >= 0.0)) {
            let at = [path, &[Seg::key(key)]].concat();
            diag.at_value(
                &at,
                format!("{} must be a non-negative number, found {v}", describe(&at)),
            );
            ok = false;
        }
    }
    if s.max_tokens == Some(0) {
        let at = [path, &[Seg::key("max_tokens")]].concat();
        diag.at_value(&at, format!("{} must be at least 1", describe(&at)));
        ok = false;
    }
    ok.then(|| Preset {
        temperature: s.temperature,
        top_p: s.top_p,
        max_tokens: s.max_tokens,
        system_prompt_prefix: s.system_prompt_prefix.clone(),
        reasoning_effort: s.reasoning_effort.clone(),
    })
}

fn variants(
    file: &ConfigFile,
    known: &HashSet<&str>,
    presets: &[&str],
    diag: &mut Diagnostics,
) -> IndexMap<String, Arc<Variant>> {
    let mut out = IndexMap::new();
    for (name, v) in &file.variants {
        let path = [Seg::key("variants"), Seg::key(name)];
        let at = |rest: &[Seg]| [&path[..], rest].concat();
        let mut ok = check_suffix_name(diag, &path, name, "variant");
        let owner = format!("variant `{name}`");
        let mut providers: Vec<String> = Vec::new();
        for (i, provider) in v.providers.iter().flatten().enumerate() {
            if !known.contains(provider.as_str()) {
                diag.at_value(
                    &at(&[Seg::key("providers"), Seg::Index(i)]),
                    unknown_provider(provider, &owner, known),
                );
                ok = false;
            } else if !providers.contains(provider) {
                providers.push(provider.clone());
            }
        }
        if let Some(preset) = &v.preset {
            if !presets.contains(&preset.as_str()) {
                diag.at_value(
                    &at(&[Seg::key("preset")]),
                    unknown_preset(preset, &owner, presets),
                );
                ok = false;
            }
        }
        let params = match &v.params {
            Some(p) => preset(diag, &at(&[Seg::key("params")]), p),
            None => Some(Preset::default()),
        };
        if let (true, Some(params)) = (ok, params) {
            out.insert(
                name.clone(),
                Arc::new(Variant {
                    name: name.clone(),
                    providers,
                    sort: v.sort.map(|s| match s {
                        SortName::Price => SortBy::Price,
                        SortName::Latency => SortBy::Latency,
                    }),
                    preset: v.preset.clone(),
                    params,
                }),
            );
        }
    }
    out
}

fn unknown_preset(preset: &str, owner: &str, presets: &[&str]) -> String {
    let head = format!("unknown preset `{preset}` in {owner}");
    if presets.is_empty() {
        format!("{head}: no presets are defined (add it under `presets:`)")
    } else {
        format!("{head}, expected one of {}", backticked(presets))
    }
}

/// `owner` is what refers to the provider: ``virtual model `smart` ``, ``variant `fast` ``.
fn unknown_provider(provider: &str, owner: &str, known: &HashSet<&str>) -> String {
    let head = format!("unknown provider `{provider}` in {owner}");
    if let Some(entry) = registry::find(provider) {
        let how = if entry.auth == AuthStyle::None {
            registry::api_base_var(provider)
        } else {
            entry
                .env_keys
                .last()
                .copied()
                .unwrap_or_default()
                .to_string()
        };
        return format!(
            "{head}: the built-in provider `{provider}` is not active; set {how} or add it under `providers:`"
        );
    }
    let mut names: Vec<&str> = known.iter().copied().collect();
    names.sort_unstable();
    if names.is_empty() {
        format!("{head}: no providers are configured or detected")
    } else {
        format!("{head}, expected one of {}", backticked(&names))
    }
}
