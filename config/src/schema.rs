//! The serde types of `bitrouter.yaml`, exactly as users write it (`deny_unknown_fields`
//! everywhere, so a typo is an error rather than a silently ignored key). No logic beyond
//! decoding: defaults from the registry and the environment are applied by the resolver.
//!
//! The doc comments become the descriptions of the published JSON Schema
//! (`schemas/bitrouter.config.schema.json`, see [`json_schema`]), which editors use through the
//! `# yaml-language-server: $schema=...` header.

pub use crate::guardrails::{
    BlockMessageSection, CustomPatternSection, GuardrailActionName, GuardrailDirectionName,
    GuardrailsPluginSection, GuardrailsSection,
};
use crate::{AuthStyle, MaxTokensParam, Protocol, ThinkingControl};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// Every top-level section, in the order the documentation lists them.
pub const SECTIONS: [&str; 15] = [
    "server",
    "upstream",
    "providers",
    "models",
    "routes",
    "presets",
    "variants",
    "guardrails",
    "mcp",
    "mcp_servers",
    "agents",
    "server_tools",
    "database",
    "plugins",
    "inherit_defaults",
];

/// Sections that are accepted (so existing files keep loading) but have no effect yet.
pub const NOT_IMPLEMENTED_SECTIONS: [&str; 6] = [
    "mcp",
    "mcp_servers",
    "agents",
    "server_tools",
    "plugins",
    "inherit_defaults",
];

/// BitRouter configuration (`bitrouter.yaml`). Any string value may contain `${VAR}`
/// placeholders, resolved from the environment at load time (`${VAR:-default}` gives a default;
/// `$${` is a literal `${`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "bitrouter.yaml")]
pub struct ConfigFile {
    /// The HTTP server: listen address, logging, authentication, limits.
    #[serde(default)]
    #[schemars(with = "Option<ServerSection>")]
    pub server: ServerSection,
    /// Calls to upstream providers: default timeouts and the passive health policy.
    #[serde(default)]
    #[schemars(with = "Option<UpstreamSection>")]
    pub upstream: UpstreamSection,
    /// Upstream providers keyed by provider id (`openai`, `anthropic`, `ollama`, ...). An id
    /// that names a built-in provider inherits its base URL, protocol, auth style and models
    /// (an empty entry, `openai:`, is enough); any other id needs `api_base`.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, Option<ProviderSection>>>")]
    pub providers: IndexMap<String, ProviderSection>,
    /// Virtual models: names clients may use as `model`, each an ordered list of
    /// provider endpoints to fail over between.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, VirtualModelSection>>")]
    pub models: IndexMap<String, VirtualModelSection>,
    /// Reverse-proxy routes for traffic that is not an LLM call (dashboards, an inference
    /// server's own API, anything nginx proxied before): matched in order, first match wins;
    /// the LLM surfaces always come first.
    #[serde(default)]
    #[schemars(with = "Option<Vec<crate::routes::RouteSection>>")]
    pub routes: Vec<crate::routes::RouteSection>,
    /// Named bundles of request parameters, applied with `model@preset`, a virtual model's
    /// `preset:` or a variant's `preset:`. A name must not contain `:`, `@` or `/`.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, PresetSection>>")]
    pub presets: IndexMap<String, PresetSection>,
    /// Model-name suffixes (`model:variant`, e.g. `smart:fast`) that narrow, reorder or
    /// re-parameterise the endpoints of any routable model. A name must not contain `:`, `@`
    /// or `/`.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, VariantSection>>")]
    pub variants: IndexMap<String, VariantSection>,
    /// Guardrails: built-in patterns (secrets, PII, suspicious commands) and custom regexes,
    /// each warned about, redacted or blocked in text going to the model (`upgoing`) or coming
    /// from it (`downgoing`). Custom patterns may also come from
    /// `plugins.bitrouter-guardrails`.
    #[serde(default)]
    pub guardrails: Option<GuardrailsSection>,
    /// MCP gateway settings. Accepted but not implemented yet: it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub mcp: Option<serde_yaml::Value>,
    /// Upstream MCP servers. Accepted but not implemented yet: it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub mcp_servers: Option<serde_yaml::Value>,
    /// ACP agents. Accepted but not implemented yet: it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub agents: Option<serde_yaml::Value>,
    /// Tools executed by the server. Accepted but not implemented yet: it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub server_tools: Option<serde_yaml::Value>,
    /// The database that keeps the request ledger (usage and cost of every request, read by
    /// `bitrouter spend`): SQLite by default, PostgreSQL for several routers sharing one ledger.
    #[serde(default)]
    pub database: Option<DatabaseSection>,
    /// Plugins, keyed by name. `bitrouter-guardrails` adds custom guardrail patterns; other
    /// plugins are accepted but not implemented yet: they have no effect.
    // The loader takes `bitrouter-guardrails` out of this value (into the guardrail rules); what
    // is left, in whatever shape it was written, stays here untouched.
    #[serde(default)]
    #[schemars(schema_with = "crate::guardrails::plugins_schema")]
    pub plugins: Option<serde_yaml::Value>,
    /// Inheritance of built-in defaults. Accepted but not implemented yet: it has no effect.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub inherit_defaults: Option<serde_yaml::Value>,
}

/// The `server:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerSection {
    /// `host:port` to listen on, or a list of listeners (each `host:port` or `{address, tls,
    /// h2c}`). Loopback by default; port 0 picks a free port.
    #[serde(default)]
    pub listen: crate::listen::ListenSection,
    /// HTTPS: the certificate chain and private key (PEM). Every listener serves TLS (ALPN
    /// `h2` and `http/1.1`) unless its entry says `tls: false`.
    #[serde(default)]
    pub tls: Option<crate::listen::TlsSection>,
    /// Accept HTTP/2 without TLS (prior knowledge, e.g. gRPC-style clients on an internal
    /// network) on plain listeners; HTTP/1.1 keeps working on the same port.
    #[serde(default)]
    pub h2c: bool,
    /// The per-request access log: `{format: text | json, path: stdout | <file>}`.
    #[serde(default)]
    pub access_log: Option<crate::listen::AccessLogSection>,
    /// Log verbosity.
    #[serde(default)]
    pub log_level: LogLevel,
    /// Admit requests that carry no credential. When false, requests must present the gateway
    /// key from `BITROUTER_API_KEY`. Never expose a `skip_auth: true` router beyond loopback
    /// without an authenticating layer in front.
    #[serde(default = "default_true")]
    pub skip_auth: bool,
    /// Path of the Unix control socket used by the daemon verbs (`stop`, `reload`, `status`).
    #[serde(default)]
    pub control_socket: Option<PathBuf>,
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 1))]
    pub max_body_bytes: usize,
    /// Seconds a shutdown waits for in-flight requests before closing them (at most 2592000,
    /// 30 days).
    #[serde(default = "default_shutdown_grace_secs")]
    #[schemars(range(max = crate::MAX_DURATION_SECS))]
    pub shutdown_grace_secs: u64,
    /// Seconds an idle HTTP/1.1 client connection is kept open for its next request (nginx's
    /// `keepalive_timeout`); 0 closes every connection after its response. Default 60, at most
    /// 2592000 (30 days). HTTP/2 connections are not affected.
    #[serde(default = "default_keepalive_secs")]
    #[schemars(range(max = crate::MAX_DURATION_SECS))]
    pub keepalive_secs: u64,
    /// Worker threads (default: one per CPU).
    #[serde(default)]
    pub threads: Option<NonZeroUsize>,
    /// Let idle worker threads take tasks from busy ones. Off by default: like nginx workers,
    /// each thread keeps the connections it accepted, which costs less CPU per request (measured
    /// about 10 % at 64 connections); turn it on when a few long streams could pile onto one
    /// thread.
    #[serde(default)]
    pub work_stealing: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: crate::listen::ListenSection::default(),
            tls: None,
            h2c: false,
            access_log: None,
            log_level: LogLevel::default(),
            skip_auth: true,
            control_socket: None,
            max_body_bytes: default_max_body_bytes(),
            shutdown_grace_secs: default_shutdown_grace_secs(),
            keepalive_secs: default_keepalive_secs(),
            threads: None,
            work_stealing: false,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_max_body_bytes() -> usize {
    crate::DEFAULT_MAX_BODY_BYTES
}
fn default_shutdown_grace_secs() -> u64 {
    5
}
fn default_keepalive_secs() -> u64 {
    crate::DEFAULT_KEEPALIVE_SECS
}

/// The `database:` section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSection {
    /// Connection URL (`${VAR}` placeholders allowed, e.g. for a password). Default
    /// `sqlite://./bitrouter.db`: a relative SQLite path is relative to the folder of this file
    /// (with no file, to the user data directory, `$XDG_DATA_HOME/bitrouter`);
    /// `sqlite:///var/lib/bitrouter/ledger.db` is absolute. `postgres://user:password@host:5432/db`
    /// (or `postgresql://`) selects PostgreSQL. Migrations run when the router starts.
    #[serde(default)]
    pub url: Option<String>,
    /// Keep a ledger at all. `false` opens no database: nothing is recorded and
    /// `bitrouter spend` has nothing to read.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Ledger rows held in memory while the database is slow or unreachable (default 65536).
    /// Beyond it new rows are dropped, counted and logged; requests are never delayed.
    #[serde(default)]
    pub queue_capacity: Option<NonZeroUsize>,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: None,
            enabled: true,
            queue_capacity: None,
        }
    }
}

/// The `upstream:` section: how upstream calls are bounded and when an endpoint is avoided.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSection {
    /// Default timeouts of every provider (a provider's `timeouts:` overrides them field by
    /// field).
    #[serde(default)]
    pub timeouts: Option<TimeoutsSection>,
    /// Passive health: cooling after `retry-after` and ejection after repeated failures.
    #[serde(default)]
    pub health: Option<HealthSection>,
}

/// Timeouts of upstream calls, in seconds (fractions allowed, e.g. `0.5`; at most 2592000, 30
/// days, like every duration in the file). An absent key keeps the default (under
/// `providers.<id>.timeouts`: the `upstream.timeouts` value).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsSection {
    /// TCP and TLS connect. Default 10.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub connect_secs: Option<f64>,
    /// Idle read: resets on every chunk received, so a stream stalled mid-way is caught.
    /// Default 120.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub read_secs: Option<f64>,
    /// Idle write while sending the request. Default 60.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub write_secs: Option<f64>,
    /// How long an idle pooled connection is kept for reuse. Default 90.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub pool_idle_secs: Option<f64>,
    /// TCP keepalive interval on upstream connections. Off by default.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub tcp_keepalive_secs: Option<f64>,
    /// Bound on a whole exchange, streaming included. Off by default, so long reasoning
    /// streams live.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub total_secs: Option<f64>,
    /// Time to the response header and, for a success, its first body chunk (the first SSE
    /// event of a stream); a server that does not answer in time fails over to the next
    /// endpoint. Off by default (`read_secs` bounds the wait).
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub first_byte_secs: Option<f64>,
}

/// Passive health policy (`upstream.health`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSection {
    /// Consecutive failures that eject an endpoint. Default 3.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub failure_threshold: Option<u32>,
    /// Seconds an endpoint stays ejected the first time; each failed probe doubles it, up to
    /// `max_eject_secs`. Default 10.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub eject_secs: Option<f64>,
    /// Longest ejection, in seconds. Default 300.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub max_eject_secs: Option<f64>,
    /// Longest `retry-after` honoured when cooling an account (429) or endpoint (503), in
    /// seconds. Default 300.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub max_cooldown_secs: Option<f64>,
}

/// Log verbosity, least to most verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// The name as written in the config (and understood by `env_logger`).
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

/// One upstream provider.
#[derive(Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderSection {
    /// Base URL of the provider's API (`https://api.openai.com/v1`); `http` or `https`. The
    /// protocol's version segment may be included or left out (`https://api.anthropic.com`
    /// and `https://api.anthropic.com/v1` are equivalent). Required unless the id names a
    /// built-in provider; `BITROUTER_<ID>_API_BASE` overrides it. A list of URLs is a pool of
    /// replicas of one service (same path, keys and models), spread by `replica_strategy`.
    #[serde(default)]
    pub api_base: Option<crate::replicas::ApiBase>,
    /// The provider's API key, normally a `${VAR}` reference. When absent, the key comes from
    /// `BITROUTER_<ID>_API_KEY` or the built-in provider's usual variable (`OPENAI_API_KEY`).
    /// Local servers need none. Not together with `accounts`.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Several credentials for this provider, used in place of `api_key`. Each has a unique
    /// `label` (shown in logs and the `x-bitrouter-account` header, never the key).
    #[serde(default)]
    pub accounts: Option<Vec<AccountSection>>,
    /// How requests spread over `accounts`.
    #[serde(default)]
    pub account_strategy: Option<AccountStrategyName>,
    /// The outbound wire protocol, per model. When absent: the built-in provider's protocol, or
    /// inferred from the host (`messages` for anthropic.com, `generate_content` for
    /// googleapis.com, `chat_completions` otherwise).
    #[serde(default)]
    pub api_protocol: Option<ApiProtocol>,
    /// Model ids the provider serves. They become routable by bare id (`gpt-4o`) and as
    /// `provider/model`, and are listed by `GET /v1/models`. When absent, a built-in provider's
    /// default list and patterns apply.
    #[serde(default)]
    pub models: Option<Vec<ModelEntry>>,
    /// How the key is sent upstream, overriding the protocol's usual header.
    #[serde(default)]
    pub auth: Option<AuthStyle>,
    /// Extra headers sent upstream on every request (values may use `${VAR}`). They always
    /// win over a client header of the same name.
    #[serde(default)]
    pub headers: Option<IndexMap<String, String>>,
    /// Client request headers forwarded to this provider besides the built-in allow-list
    /// (`accept`, `accept-language`, `anthropic-beta`, `anthropic-version`, `openai-beta`,
    /// `idempotency-key`, tracing headers such as `traceparent` and `x-request-id`,
    /// `user-agent`), e.g. `[x-tenant-id, openai-organization]`. Every other client header is
    /// dropped. Credentials (`authorization`, `x-api-key`, `cookie`, ...) and hop-by-hop headers
    /// cannot be listed.
    #[serde(default)]
    pub forward_headers: Option<Vec<String>>,
    /// PEM file of CA certificates trusted for this provider instead of the system roots
    /// (relative paths are relative to the config file).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Timeouts for this provider, overriding `upstream.timeouts` field by field.
    #[serde(default)]
    pub timeouts: Option<TimeoutsSection>,
    /// An active health check (useful for local servers): a failed check marks every endpoint
    /// of the provider unhealthy until a check passes.
    #[serde(default)]
    pub health_check: Option<HealthCheckSection>,
    /// How requests spread over the replicas of an `api_base` list: `least_requests`
    /// (default), `round_robin` or `affinity` (a session or prompt prefix keeps its replica).
    #[serde(default)]
    pub replica_strategy: Option<crate::replicas::ReplicaStrategy>,
}

/// Never prints the key or header values: they are secrets once `${VAR}`s are expanded.
impl fmt::Debug for ProviderSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Option<Vec<&str>> = self
            .headers
            .as_ref()
            .map(|h| h.keys().map(String::as_str).collect());
        f.debug_struct("ProviderSection")
            .field("api_base", &self.api_base)
            .field("replica_strategy", &self.replica_strategy)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("accounts", &self.accounts)
            .field("account_strategy", &self.account_strategy)
            .field("api_protocol", &self.api_protocol)
            .field("models", &self.models)
            .field("auth", &self.auth)
            .field("header_names", &headers)
            .field("forward_headers", &self.forward_headers)
            .field("ca_file", &self.ca_file)
            .field("timeouts", &self.timeouts)
            .field("health_check", &self.health_check)
            .finish()
    }
}

/// One credential of a provider.
#[derive(Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountSection {
    /// A name for the account, unique within the provider (`team-a`).
    pub label: String,
    /// The account's API key, normally a `${VAR}` reference.
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Never prints the key.
impl fmt::Debug for AccountSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountSection")
            .field("label", &self.label)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `account_strategy` of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AccountStrategyName {
    /// Round-robin over the healthy accounts.
    #[default]
    Balance,
    /// The first healthy account, in declared order, until it fails.
    Failover,
}

/// An active health check of a provider.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckSection {
    /// What a check does. Default `http`.
    #[serde(default)]
    pub kind: Option<HealthCheckKindName>,
    /// Path an `http` check requests. Default: the path of `api_base` followed by `/models`
    /// (`/v1/models`).
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds between checks. Default 10.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub interval_secs: Option<f64>,
    /// Seconds one check may take. Default 2.
    #[serde(default)]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub timeout_secs: Option<f64>,
}

/// `kind` of an active health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthCheckKindName {
    /// `GET path` must answer 200.
    #[default]
    Http,
    /// A TCP connection must open.
    Tcp,
}

/// `api_protocol`: either one protocol (or list) for every model, or an ordered list of
/// `- "glob": protocol` rules matched against the model id, first match wins. The head of a
/// protocol list is the preferred outbound protocol.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum ApiProtocol {
    /// Shorthand for `- "*": <protocols>`.
    All(ProtocolChoice),
    /// Ordered `glob: protocol(s)` rules, e.g. `- "claude-*": messages` then
    /// `- "*": chat_completions`.
    Rules(Vec<ProtocolRule>),
}

/// One `- "glob": protocol(s)` rule: a single-entry map from a model-id glob (`*`, `?`,
/// `[a-z]`) to a protocol or a list of protocols.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(extend("minProperties" = 1, "maxProperties" = 1))]
pub struct ProtocolRule(pub IndexMap<String, ProtocolChoice>);

/// A protocol, or a list of protocols whose head is preferred.
#[derive(Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(untagged)]
pub enum ProtocolChoice {
    One(Protocol),
    #[schemars(extend("minItems" = 1))]
    Many(Vec<Protocol>),
}

impl ProtocolChoice {
    /// The protocols, preferred first.
    pub fn as_slice(&self) -> &[Protocol] {
        match self {
            ProtocolChoice::One(p) => std::slice::from_ref(p),
            ProtocolChoice::Many(list) => list,
        }
    }
}

/// A model a provider serves: `- id: gpt-4o`, or the shorthand `- gpt-4o`.
#[derive(Debug, Clone, PartialEq, JsonSchema)]
#[serde(untagged)]
pub enum ModelEntry {
    /// Shorthand: just the id.
    Id(String),
    /// The id with optional descriptive fields.
    Detailed(ModelDetails),
}

impl ModelEntry {
    /// The model id the provider knows.
    pub fn id(&self) -> &str {
        match self {
            ModelEntry::Id(id) => id,
            ModelEntry::Detailed(d) => &d.id,
        }
    }
}

/// A model entry with metadata. `id` affects routing; `max_output_tokens`, `max_tokens_param`,
/// `accepts_sampling`, `accepts_reasoning_effort` and `thinking_control` correct what the
/// built-in capability table assumes about the model (each absent key keeps the table's
/// value; a model the table does not know is sent everything, with `max_tokens`). `pricing`
/// gives the model's prices, used for the cost of each request.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelDetails {
    /// The model id as the provider knows it (`gpt-4o`, `llama3.1:8b`).
    pub id: String,
    /// A display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Context window, in tokens (informational).
    #[serde(default)]
    pub context_length: Option<u64>,
    /// Largest completion, in tokens. Also the output cap sent when the client gives none and
    /// the upstream requires one (Anthropic's `max_tokens`). Default: the model family's
    /// limit (4096 for Claude 3, 8192 for Claude 3.5), else 16384.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_output_tokens: Option<u64>,
    /// Which Chat Completions field carries the output cap: `max_tokens`, or
    /// `max_completion_tokens` for servers that reject `max_tokens` (OpenAI's reasoning
    /// models). Default: `max_completion_tokens` for `o1*`, `o3*`, `o4*` and `gpt-5*`,
    /// `max_tokens` otherwise.
    #[serde(default)]
    pub max_tokens_param: Option<MaxTokensParam>,
    /// Whether the model accepts `temperature` and `top_p` other than 1 (on Chat
    /// Completions); when false they are dropped rather than failing the request. Default:
    /// false for OpenAI's reasoning models (`o1*`, `o3*`, `o4*`, `gpt-5*` but `gpt-5-chat*`),
    /// true otherwise.
    #[serde(default)]
    pub accepts_sampling: Option<bool>,
    /// Whether the model accepts `reasoning_effort` (on Chat Completions); when false it is
    /// dropped. Default: false for `gpt-4*`, `gpt-3.5*`, `chatgpt-*` and `gpt-5-chat*`, true
    /// otherwise (a server that does not know it ignores it).
    #[serde(default)]
    pub accepts_reasoning_effort: Option<bool>,
    /// How a reasoning effort without a token budget is sent to Gemini: `budget`
    /// (`thinkingBudget`) or `level` (`thinkingLevel`). Default: `level` for Gemini 3 and
    /// later, `budget` otherwise.
    #[serde(default)]
    pub thinking_control: Option<ThinkingControl>,
    /// Prices of the model in micro-USD per token (= USD per million tokens), used for the
    /// cost of each request. Replaces the built-in price table's entry for this model; an
    /// absent rate is unknown, `0` is free.
    #[serde(default)]
    pub pricing: Option<crate::pricing::PricingSection>,
}

/// A virtual model.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = deadline_alias)]
pub struct VirtualModelSection {
    /// Which endpoint a request starts at. Whatever the strategy, the other endpoints remain
    /// the failover chain.
    #[serde(default)]
    pub strategy: StrategyName,
    /// The endpoints, in priority order: the first is tried first, the next on failure.
    #[schemars(length(min = 1))]
    pub endpoints: Vec<EndpointSection>,
    /// What is retried on the next account or endpoint: `connect` (connection or TLS
    /// failure), `timeout` (no first byte in time) and upstream statuses. Default
    /// `[connect, timeout, 429, 500, 502, 503, 504, 529]`.
    #[serde(default)]
    pub retry_on: Option<Vec<RetryOn>>,
    /// Most upstream attempts per request (accounts and endpoints together). Default: every
    /// endpoint and account once.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_attempts: Option<u64>,
    /// Time budget in seconds for all attempts until the answer starts (alias `deadline`).
    /// Default: none.
    #[serde(default, alias = "deadline")]
    #[schemars(range(min = 0, max = crate::MAX_DURATION_SECS))]
    pub deadline_secs: Option<f64>,
    /// A preset (from `presets:`) applied to every request for this model.
    #[serde(default)]
    pub preset: Option<String>,
}

/// Lists the `deadline` alias in the schema (schemars leaves serde aliases out), so editors
/// accept it.
fn deadline_alias(schema: &mut schemars::Schema) {
    let Some(props) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    if let Some(mut alias) = props.get("deadline_secs").cloned() {
        alias["description"] = "Alias of `deadline_secs`.".into();
        props.insert("deadline".to_string(), alias);
    }
}

/// One `retry_on` entry: `connect`, `timeout`, or an upstream HTTP status from 400 to 599.
/// Decoded as written; the resolver reports anything else with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryOn {
    /// A condition name (`connect`, `timeout`), or a status written as a string (`"429"`).
    Name(String),
    /// An HTTP status.
    Status(i64),
}

impl JsonSchema for RetryOn {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "RetryOn".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "`connect` (connection or TLS failure), `timeout` (no first byte in time), or an upstream HTTP status from 400 to 599.",
            "anyOf": [
                { "type": "string", "enum": ["connect", "timeout"] },
                { "type": "integer", "minimum": 400, "maximum": 599 }
            ]
        })
    }
}

/// `strategy` of a virtual model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StrategyName {
    /// Start at the first endpoint; fail over in declared order.
    #[default]
    Priority,
    /// Start one endpoint further along on each request; fail over in declared order after
    /// it, wrapping.
    RoundRobin,
    /// Start spread in proportion to each endpoint's `weight` (smooth weighted round-robin).
    Weighted,
    /// Start at the endpoint with the lowest observed time to first byte (unmeasured ones
    /// first, with a little exploration); fail over by latency.
    LeastLatency,
}

impl StrategyName {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyName::Priority => "priority",
            StrategyName::RoundRobin => "round_robin",
            StrategyName::Weighted => "weighted",
            StrategyName::LeastLatency => "least_latency",
        }
    }
}

/// One endpoint of a virtual model.
#[derive(Debug, Clone, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointSection {
    /// A provider id: configured under `providers:` or detected from the environment.
    pub provider: String,
    /// The model id to request from that provider.
    pub service_id: String,
    /// Relative share of requests for the `weighted` strategy. Default 1.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub weight: Option<u32>,
    /// Relative cost of the endpoint (any unit, used consistently), for a variant's
    /// `sort: price`.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub price: Option<f64>,
}

/// A named bundle of request parameters. A set value replaces the client's.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PresetSection {
    /// Sampling temperature.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub temperature: Option<f64>,
    /// Nucleus sampling probability mass.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub top_p: Option<f64>,
    /// Largest completion, in tokens.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u64>,
    /// Text put before the client's system prompt (or as the system prompt when there is none).
    #[serde(default)]
    pub system_prompt_prefix: Option<String>,
    /// Reasoning effort: `low`, `medium`, `high`, or any effort the upstream understands.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
}

/// A model-name suffix (`model:variant`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariantSection {
    /// Keep only the endpoints of these providers, in this order (absent or empty: keep all,
    /// in their order).
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Order the kept endpoints by `price` (cheapest first, unpriced last) or by `latency`
    /// (the `least_latency` strategy).
    #[serde(default)]
    pub sort: Option<SortName>,
    /// A preset (from `presets:`) applied with the variant.
    #[serde(default)]
    pub preset: Option<String>,
    /// Parameters applied with the variant, after its `preset`.
    #[serde(default)]
    pub params: Option<PresetSection>,
}

/// `sort` of a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortName {
    /// Cheapest `price` first; endpoints without a price last.
    Price,
    /// Lowest observed time to first byte first (the `least_latency` strategy).
    Latency,
}

/// The JSON Schema of `bitrouter.yaml` (draft-07, which yaml-language-server and most editors
/// understand), for `schemas/bitrouter.config.schema.json` and a `config schema` verb.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<ConfigFile>();
    schema.to_value()
}

/// [`json_schema`] pretty-printed with a trailing newline: the exact content of the committed
/// schema file.
pub fn json_schema_pretty() -> String {
    let mut text = serde_json::to_string_pretty(&json_schema()).unwrap_or_default();
    text.push('\n');
    text
}

// ----- Hand-written decoders: the derived untagged ones would turn every mistake into "data
// did not match any variant", losing the field-level messages of the inner types.

fn protocol_named<E: de::Error>(name: &str) -> Result<Protocol, E> {
    Protocol::parse(name).ok_or_else(|| {
        E::custom(format_args!(
            "unknown protocol `{name}`, expected one of `chat_completions`, `responses`, `messages`, `generate_content`"
        ))
    })
}

/// One protocol name inside a list, with the same message as a single name.
struct ProtocolName(Protocol);

impl<'de> Deserialize<'de> for ProtocolName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProtocolName;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a protocol name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProtocolName, E> {
                protocol_named(s).map(ProtocolName)
            }
        }
        d.deserialize_str(V)
    }
}

impl<'de> Deserialize<'de> for ProtocolChoice {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProtocolChoice;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a protocol name or a list of protocol names")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ProtocolChoice, E> {
                protocol_named(s).map(ProtocolChoice::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ProtocolChoice, A::Error> {
                let mut list = Vec::new();
                while let Some(ProtocolName(p)) = seq.next_element()? {
                    list.push(p);
                }
                if list.is_empty() {
                    return Err(de::Error::custom("an empty protocol list"));
                }
                Ok(ProtocolChoice::Many(list))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ApiProtocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ApiProtocol;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a protocol name or a list of `- \"glob\": protocol` rules")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ApiProtocol, E> {
                protocol_named(s).map(|p| ApiProtocol::All(ProtocolChoice::One(p)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ApiProtocol, A::Error> {
                let mut rules = Vec::new();
                while let Some(rule) = seq.next_element()? {
                    rules.push(rule);
                }
                Ok(ApiProtocol::Rules(rules))
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for ModelEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ModelEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a model id or a mapping like `{id: gpt-4o}`")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<ModelEntry, E> {
                Ok(ModelEntry::Id(s.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelEntry, A::Error> {
                ModelDetails::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(ModelEntry::Detailed)
            }
        }
        d.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RetryOn;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`connect`, `timeout` or an HTTP status from 400 to 599")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<RetryOn, E> {
                Ok(RetryOn::Name(s.to_string()))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<RetryOn, E> {
                Ok(RetryOn::Status(n))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<RetryOn, E> {
                Ok(RetryOn::Status(i64::try_from(n).unwrap_or(i64::MAX)))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        serde_yaml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn model_entries_accept_both_forms() {
        let models: Vec<ModelEntry> =
            yaml("- gpt-4o\n- id: llama3.1:8b\n  context_length: 8192\n").unwrap();
        assert_eq!(models[0], ModelEntry::Id("gpt-4o".into()));
        assert_eq!(models[1].id(), "llama3.1:8b");
        let err = yaml::<Vec<ModelEntry>>("- {id: a, nme: b}\n").unwrap_err();
        assert!(err.contains("unknown field `nme`"), "{err}");
        let err = yaml::<Vec<ModelEntry>>("- 3\n").unwrap_err();
        assert!(err.contains("a model id or a mapping"), "{err}");
    }

    #[test]
    fn api_protocol_forms() {
        let p: ApiProtocol = yaml("- \"*\": messages\n").unwrap();
        let ApiProtocol::Rules(rules) = p else {
            panic!()
        };
        assert_eq!(rules[0].0["*"].as_slice(), &[Protocol::Messages]);
        let p: ApiProtocol =
            yaml("- \"claude-*\": [messages, chat_completions]\n- \"*\": chat_completions\n")
                .unwrap();
        let ApiProtocol::Rules(rules) = p else {
            panic!()
        };
        assert_eq!(
            rules[0].0["claude-*"].as_slice(),
            &[Protocol::Messages, Protocol::ChatCompletions]
        );
        let p: ApiProtocol = yaml("generate_content").unwrap();
        assert_eq!(
            p,
            ApiProtocol::All(ProtocolChoice::One(Protocol::GenerateContent))
        );
        let err = yaml::<ApiProtocol>("- \"*\": mesages\n").unwrap_err();
        assert!(err.contains("unknown protocol `mesages`"), "{err}");
        let err = yaml::<ApiProtocol>("- \"*\": []\n").unwrap_err();
        assert!(err.contains("empty protocol list"), "{err}");
    }

    #[test]
    fn strategy_names() {
        let err = yaml::<VirtualModelSection>(
            "strategy: fastest\nendpoints: [{provider: a, service_id: b}]\n",
        )
        .unwrap_err();
        assert!(
            err.contains("`priority`, `round_robin`, `weighted`, `least_latency`"),
            "{err}"
        );
    }

    #[test]
    fn provider_debug_hides_secrets() {
        let p: ProviderSection =
            yaml("api_key: sk-secret\nheaders: {x-token: tok-secret}\n").unwrap();
        let dbg = format!("{p:?}");
        assert!(
            !dbg.contains("sk-secret") && !dbg.contains("tok-secret"),
            "{dbg}"
        );
        assert!(dbg.contains("x-token"), "{dbg}");
    }

    /// The committed schema must match the types. To update it after changing them, run
    /// `BITROUTER_UPDATE_SCHEMA=1 cargo test -p bitrouter-config`.
    #[test]
    fn committed_schema_is_current() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../schemas/bitrouter.config.schema.json"
        );
        let generated = json_schema_pretty();
        if std::env::var_os("BITROUTER_UPDATE_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "{path} is out of date with the config types; regenerate it with \
             `BITROUTER_UPDATE_SCHEMA=1 cargo test -p bitrouter-config` and commit the result"
        );
    }

    #[test]
    fn schema_describes_sections() {
        let schema = json_schema();
        let props = schema["properties"].as_object().unwrap();
        for s in SECTIONS {
            assert!(props.contains_key(s), "{s}");
        }
        assert_eq!(schema["additionalProperties"], serde_json::json!(false));
        assert_eq!(
            schema["$schema"],
            serde_json::json!("http://json-schema.org/draft-07/schema#")
        );
    }
}
