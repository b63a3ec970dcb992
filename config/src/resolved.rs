//! The resolved configuration the proxy runs on: `${VAR}`s substituted, registry defaults
//! inherited, auto-detected providers appended, every URL parsed. Built by [`load`] / [`zero_config`].

use crate::policy::{
    Account, AccountStrategy, HealthCheck, HealthPolicy, Preset, RetryPolicy, Timeouts, Variant,
};
use crate::{AuthStyle, CapabilityOverrides, ConfigError, EnvSource, ModelCapabilities, Protocol};
use indexmap::IndexMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the configuration came from; shown at start-up and by `bitrouter route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// A `bitrouter.yaml` file.
    File(PathBuf),
    /// No file was found: providers come from the environment only.
    ZeroConfig,
}

/// A secret string (an API key). Its `Debug`/`Display` never reveal the value, so a key cannot
/// reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The raw value, for the one place that needs it: the upstream auth header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The whole resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    /// Configured providers in file order, then auto-detected providers in registry order.
    pub providers: Vec<Arc<Provider>>,
    /// Virtual models (`models:` section), in file order.
    pub models: IndexMap<String, VirtualModel>,
    /// `upstream:`: default timeouts, passive health policy, retry policy of direct routes.
    pub upstream: UpstreamConfig,
    /// `presets:` by name.
    pub presets: IndexMap<String, Arc<Preset>>,
    /// `variants:` by suffix.
    pub variants: IndexMap<String, Arc<Variant>>,
    /// The guardrail rules (`guardrails:` and `plugins.bitrouter-guardrails`), defaults
    /// applied. `None` when neither is present or `guardrails.enabled` is false, so the proxy
    /// can skip scanning altogether.
    pub guardrails: Option<Guardrails>,
    /// `database:` as written (`${VAR}`s resolved); the proxy's ledger resolves the URL against
    /// [`Config::source`] (a relative SQLite path is relative to the config file's folder).
    pub database: crate::schema::DatabaseSection,
    /// The access policies in `policies/` next to the config file (see [`crate::access`]),
    /// read with it so `config validate` and a reload check them too. Empty for zero-config
    /// and for [`load_str`].
    pub access: crate::AccessPolicies,
    /// `routes:`: reverse-proxy routes in file order (see [`crate::routes`]).
    pub routes: Vec<Arc<crate::routes::Route>>,
    pub source: ConfigSource,
    /// Human-readable notes for the start-up log, e.g. "section `mcp` is not implemented yet".
    pub warnings: Vec<String>,
}

/// The `server:` section with defaults applied.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `host:port` of the first listener; default `127.0.0.1:4356`. Port 0 means "pick a free
    /// port". [`ServerConfig::override_listen`] changes it with [`ServerConfig::listeners`].
    pub listen: String,
    /// Every listener, in the order written (the first is [`ServerConfig::listen`]).
    pub listeners: Vec<crate::listen::Listener>,
    /// `server.tls`, paths resolved.
    pub tls: Option<crate::listen::TlsFiles>,
    /// `server.h2c`: the default of listeners that do not say.
    pub h2c: bool,
    /// `server.access_log`.
    pub access_log: crate::listen::AccessLog,
    /// `error|warn|info|debug|trace`; default `info`.
    pub log_level: String,
    /// Admit requests without a credential. Default `true` (loopback development).
    pub skip_auth: bool,
    /// Unix control socket for the daemon verbs (not used by `serve` yet).
    pub control_socket: Option<PathBuf>,
    /// Largest request body accepted; default 32 MiB.
    pub max_body_bytes: usize,
    /// How long SIGTERM waits for in-flight requests; default 5 s.
    pub shutdown_grace_secs: u64,
    /// How long an idle HTTP/1.1 client connection waits for its next request; 0: no
    /// keep-alive. Default 60 s (Pingora's and nginx's).
    pub keepalive_secs: u64,
    /// Worker threads; default: the number of CPUs.
    pub threads: Option<usize>,
    /// Tokio work stealing between worker threads (off: one single-threaded runtime per thread).
    pub work_stealing: bool,
    /// Gateway credential required when `skip_auth` is false (from `BITROUTER_API_KEY`).
    pub api_key: Option<Secret>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.to_string(),
            listeners: vec![crate::listen::Listener {
                address: DEFAULT_LISTEN.to_string(),
                tls: false,
                h2c: false,
            }],
            tls: None,
            h2c: false,
            access_log: crate::listen::AccessLog::default(),
            log_level: "info".to_string(),
            skip_auth: true,
            control_socket: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            shutdown_grace_secs: 5,
            keepalive_secs: crate::DEFAULT_KEEPALIVE_SECS,
            threads: None,
            work_stealing: false,
            api_key: None,
        }
    }
}

/// The `upstream:` section with defaults applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UpstreamConfig {
    /// Default timeouts (each provider's `timeouts:` overrides field by field; the result is in
    /// [`Provider::timeouts`]).
    pub timeouts: Timeouts,
    pub health: HealthPolicy,
    /// Retry policy of requests that do not name a virtual model (and the default of those
    /// that do).
    pub retry: RetryPolicy,
}

/// The guardrail rule set: what to look for in text going to the model (upgoing) and coming
/// from it (downgoing), and what to do on a match. Detection itself is the proxy's; this only
/// says which rules are on, with which action, for which requests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Guardrails {
    /// Built-in rules first (in [`GUARDRAIL_BUILTINS`] order), then custom patterns in file
    /// order (`guardrails.custom_patterns`, then `plugins.bitrouter-guardrails`). Only rules
    /// with at least one direction on are listed.
    pub rules: Vec<GuardrailRule>,
    /// What a block's error message may contain (`guardrails.block_message`).
    pub block_message: GuardrailBlockMessage,
}

/// One guardrail rule: a built-in pattern or a custom regex, its action per direction, and the
/// requests it applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardrailRule {
    /// A built-in id from [`GUARDRAIL_BUILTINS`] or a custom pattern's `name`.
    pub id: String,
    /// The custom pattern's regex (checked to compile with the `regex` crate and not to match
    /// the empty string); `None` for a built-in, whose detector is the proxy's.
    pub regex: Option<String>,
    /// Action on text sent to the model; `None`: the rule is off in that direction.
    pub upgoing: Option<GuardrailAction>,
    /// Action on text received from the model; `None`: off in that direction.
    pub downgoing: Option<GuardrailAction>,
    /// The rule applies only to requests routed to these models (as the client names them;
    /// `*` globs allowed). Empty: every model.
    pub models: Vec<String>,
    /// The rule applies only to requests routed to these providers. Empty: every provider.
    pub providers: Vec<String>,
    /// The rule never applies to these models (globs allowed), whatever `models` says.
    pub exempt_models: Vec<String>,
    /// The rule never applies to these providers, whatever `providers` says.
    pub exempt_providers: Vec<String>,
}

/// What happens when a rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuardrailAction {
    /// Let the text through and log that the rule matched (never the matched text).
    Warn,
    /// Replace the matched text before it goes on.
    Redact,
    /// Refuse the request (upgoing) or end the response (downgoing).
    Block,
}

impl GuardrailAction {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            GuardrailAction::Warn => "warn",
            GuardrailAction::Redact => "redact",
            GuardrailAction::Block => "block",
        }
    }
}

/// `guardrails.block_message`: what the error returned for a blocked request or response says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardrailBlockMessage {
    /// Name the rule that matched (never the matched text). Default true.
    pub include_details: bool,
    /// Add a link to documentation. Default true.
    pub include_help_link: bool,
}

impl Default for GuardrailBlockMessage {
    fn default() -> Self {
        GuardrailBlockMessage {
            include_details: true,
            include_help_link: true,
        }
    }
}

/// The built-in guardrail pattern ids, in the order their rules are listed. Their detectors
/// live in the proxy; the config only names them.
pub const GUARDRAIL_BUILTINS: &[&str] = &[
    "api_keys",
    "private_keys",
    "credentials",
    "pii_emails",
    "pii_phone_numbers",
    "ip_addresses",
    "suspicious_commands",
    "credit_cards",
    "iban",
];

/// Default listen address: loopback only, the documented port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4356";
/// Default `server.max_body_bytes`: 32 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
/// Default `server.keepalive_secs`: 60 s, Pingora's and nginx's `keepalive_timeout`.
pub const DEFAULT_KEEPALIVE_SECS: u64 = 60;

/// Where a provider entry came from (for the start-up log and `bitrouter route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderOrigin {
    /// Declared under `providers:` in the file.
    Config,
    /// Auto-detected from an environment variable (the variable's name, never its value).
    Env { var: String },
}

/// The scheme, host and port of an upstream, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

/// `api_protocol`: ordered `(glob, protocols)` rules; the first rule whose glob matches the
/// service id applies, and the head of its list is the preferred outbound protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRules {
    pub rules: Vec<(String, Vec<Protocol>)>,
}

/// One upstream provider, fully resolved. Its `Debug` shows header names but not values (a
/// header may carry a credential); the key is a [`Secret`].
#[derive(Clone)]
pub struct Provider {
    pub id: String,
    /// The `api_base` as written (after `${VAR}` and env override), without a trailing slash.
    pub api_base: String,
    /// Where requests go; for a pool (`api_base` a list), the first replica.
    pub origin: Origin,
    /// The path part of `api_base` without trailing slash (`""`, `/v1`, `/api/v1`, ...).
    pub base_path: String,
    /// The replicas of a pool (`api_base` a list of two or more URLs), in declared order, the
    /// first being `api_base`/`origin` above. Empty for a single URL: nothing on the request
    /// path of a plain provider looks further than `replicas.is_empty()`.
    pub replicas: Vec<crate::Replica>,
    /// How requests spread over `replicas`.
    pub replica_strategy: crate::ReplicaStrategy,
    /// The credentials, in declared order (never empty: a provider without a key has one
    /// account with `api_key: None`).
    pub accounts: Vec<Account>,
    pub account_strategy: AccountStrategy,
    /// `upstream.timeouts` overlaid with this provider's `timeouts:`.
    pub timeouts: Timeouts,
    pub health_check: Option<HealthCheck>,
    pub protocols: ProtocolRules,
    pub auth: AuthStyle,
    /// Model ids the provider lists (config `models:` or the registry's defaults).
    pub models: Vec<String>,
    /// Globs for bare model ids this provider serves without listing them (registry: `claude-*`).
    pub model_patterns: Vec<String>,
    /// Per-model corrections of the capability table, from the `models:` entries that set
    /// any (`max_output_tokens`, `max_tokens_param`, ...), by model id. See
    /// [`Provider::capabilities`].
    pub capability_overrides: IndexMap<String, CapabilityOverrides>,
    /// The capabilities of every listed model, table and overrides applied, computed once at
    /// load ([`listed_capabilities`]): the request path then pays a hash lookup instead of
    /// matching the table's globs (unlisted ids still go through the table).
    pub listed_capabilities: IndexMap<String, ModelCapabilities>,
    /// The `pricing:` of the `models:` entries that have one, by model id (the first entry of
    /// an id wins). The built-in price table is not copied here: [`crate::PriceBook`] layers
    /// the two.
    pub pricing: IndexMap<String, crate::pricing::Prices>,
    /// PEM file of CA certificates trusted for this provider instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Extra headers sent upstream on every request (e.g. `anthropic-version`); they replace a
    /// client header of the same name.
    pub headers: Vec<(String, String)>,
    /// Client headers forwarded to this provider besides the proxy's built-in allow-list
    /// (`forward_headers:`), lower case. Never one of [`UNFORWARDABLE_HEADERS`].
    pub forward_headers: Vec<String>,
    pub source: ProviderOrigin,
}

/// Client headers that are never forwarded upstream, whatever `forward_headers` says: framing
/// and hop-by-hop headers, the ones bitrouter sets itself, and credentials (the client's own
/// credential never leaves bitrouter; the provider's key is the operator's). Lower case.
pub const UNFORWARDABLE_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "content-type",
    "content-encoding",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "accept-encoding",
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
];

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let header_names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Provider")
            .field("id", &self.id)
            .field("api_base", &self.api_base)
            .field("origin", &self.origin)
            .field("base_path", &self.base_path)
            .field("replicas", &self.replicas)
            .field("replica_strategy", &self.replica_strategy)
            .field("accounts", &self.accounts)
            .field("account_strategy", &self.account_strategy)
            .field("timeouts", &self.timeouts)
            .field("health_check", &self.health_check)
            .field("protocols", &self.protocols)
            .field("auth", &self.auth)
            .field("models", &self.models)
            .field("model_patterns", &self.model_patterns)
            .field("capability_overrides", &self.capability_overrides)
            .field("pricing", &self.pricing)
            .field("ca_file", &self.ca_file)
            .field("header_names", &header_names)
            .field("forward_headers", &self.forward_headers)
            .field("source", &self.source)
            .finish()
    }
}

impl Provider {
    /// The first account's key (what a single-key provider sends).
    pub fn api_key(&self) -> Option<&Secret> {
        self.accounts.first().and_then(|a| a.api_key.as_ref())
    }

    /// The outbound protocol for `service_id` (first matching `api_protocol` rule's head).
    pub fn protocol_for(&self, service_id: &str) -> Protocol {
        crate::routing::protocol_for(self, service_id)
    }

    /// Every protocol the provider speaks for `service_id`, preferred first (the matching
    /// `api_protocol` rule's list). A same-protocol request uses its own protocol when it is in
    /// this list, so bytes pass through untranslated.
    pub fn protocols_for(&self, service_id: &str) -> &[Protocol] {
        crate::routing::protocols_for(self, service_id)
    }

    /// What `service_id` accepts on this provider: the built-in capability table
    /// ([`ModelCapabilities::for_model`]) with this provider's `models:` entry for exactly
    /// that id laid over it. The request encoders act on the result (`EncodeOptions`).
    pub fn capabilities(&self, service_id: &str) -> ModelCapabilities {
        if let Some(caps) = self.listed_capabilities.get(service_id) {
            return *caps;
        }
        let base = ModelCapabilities::for_model(service_id);
        match self.capability_overrides.get(service_id) {
            Some(over) => over.apply(base),
            None => base,
        }
    }

    /// Path (and query) of the upstream endpoint for `protocol`, honouring a version segment
    /// already present in `api_base`: `/v1/chat/completions`,
    /// `/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse`, ...
    pub fn endpoint_path(&self, protocol: Protocol, service_id: &str, stream: bool) -> String {
        crate::routing::endpoint_path(self, protocol, service_id, stream)
    }
}

/// A virtual model from the `models:` section.
#[derive(Debug, Clone)]
pub struct VirtualModel {
    pub name: String,
    pub strategy: Strategy,
    pub endpoints: Vec<Endpoint>,
    /// `retry_on` / `max_attempts` / `deadline_secs` over `upstream`'s defaults.
    pub retry: RetryPolicy,
    /// A preset applied to every request for this model.
    pub preset: Option<String>,
}

/// One `endpoints:` entry of a virtual model.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub provider: String,
    pub service_id: String,
    /// Share for the `weighted` strategy (default 1).
    pub weight: u32,
    /// Relative cost, for a variant's `sort: price`.
    pub price: Option<f64>,
}

/// How a virtual model picks among its endpoints. Whatever the strategy, the endpoints after the
/// chosen one remain the failover chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Ordered failover: the first endpoint, then the next on failure.
    #[default]
    Priority,
    /// Each request starts one endpoint further along.
    RoundRobin,
    /// Starts spread in proportion to `weight` (smooth weighted round-robin).
    Weighted,
    /// The endpoint with the lowest observed time to first byte first, with a little
    /// exploration so a recovered endpoint gets measured again.
    LeastLatency,
}

impl Strategy {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Priority => "priority",
            Strategy::RoundRobin => "round_robin",
            Strategy::Weighted => "weighted",
            Strategy::LeastLatency => "least_latency",
        }
    }
}

/// Finds the config file: `explicit`, else `./bitrouter.yaml` in `cwd`, else
/// `$XDG_CONFIG_HOME/bitrouter/bitrouter.yaml` (`$HOME/.config` when XDG is unset).
/// `None` means zero-config. An explicit path that does not exist is returned as-is so that
/// [`load`] reports it.
pub fn discover(explicit: Option<&Path>, cwd: &Path, env: &dyn EnvSource) -> Option<PathBuf> {
    crate::validate::discover(explicit, cwd, env)
}

/// Loads and resolves `path` (or the zero-config defaults when `None`).
pub fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    crate::validate::load(path, env)
}

/// Parses and resolves YAML text; `file_name` is used in error locations.
pub fn load_str(text: &str, file_name: &str, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    crate::validate::load_str(text, file_name, env)
}

/// The configuration with no file: defaults plus every provider detected in `env`.
pub fn zero_config(env: &dyn EnvSource) -> Config {
    crate::validate::zero_config(env)
}

/// The capabilities of each of `models` (the table, then `overrides`), for
/// [`Provider::listed_capabilities`].
pub fn listed_capabilities(
    models: &[String],
    overrides: &IndexMap<String, CapabilityOverrides>,
) -> IndexMap<String, ModelCapabilities> {
    models
        .iter()
        .map(|m| {
            let base = ModelCapabilities::for_model(m);
            let caps = overrides.get(m).map_or(base, |o| o.apply(base));
            (m.clone(), caps)
        })
        .collect()
}

/// `server.control_socket` of the file at `path`, read without validating the rest of the file:
/// the daemon verbs (`stop`, `status`) must find a running router's socket even when the file
/// no longer resolves in the caller's environment (a `${VAR}` set only in the daemon's). A
/// relative path is taken from the file's directory, as `load` does; `${VAR}` is expanded from
/// `env` where it can be. `None` when the file has no such setting or cannot be read.
pub fn peek_control_socket(path: &Path, env: &dyn EnvSource) -> Option<PathBuf> {
    let text = std::fs::read_to_string(path).ok()?;
    let value: serde_yaml::Value = serde_yaml::from_str(&text).ok()?;
    let raw = value.get("server")?.get("control_socket")?.as_str()?;
    let expanded = crate::env::expand(raw, env).ok()?.into_owned();
    let socket = PathBuf::from(expanded);
    Some(match path.parent() {
        Some(dir) if socket.is_relative() => dir.join(socket),
        _ => socket,
    })
}
