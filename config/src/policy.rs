//! Resolved reliability policy: timeouts, retries, health, accounts, presets and variants. Plain
//! data with the documented defaults; the proxy's balancer and forward loop act on it.

use crate::Secret;
use std::fmt;
use std::time::Duration;

/// The longest duration any `*_secs` key (timeouts, `deadline_secs`, health periods,
/// `shutdown_grace_secs`) may hold: 30 days. Far longer than any sensible timeout, ejection or
/// grace period (the longest legitimate one, a reasoning stream, lasts hours), and far inside
/// what `Instant + Duration` and tokio's timer (about 2 years) can represent, so the proxy
/// adds configured durations to `Instant::now()` without overflow checks. Larger values are
/// refused at load time with their position.
pub const MAX_DURATION_SECS: u64 = 30 * 24 * 60 * 60;

/// Timeouts of upstream calls (`upstream.timeouts`, overridden per provider by
/// `providers.<id>.timeouts`). Defaults are those of BitRouter: an LLM may think for minutes, so
/// only silence is bounded by default, never the whole response.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timeouts {
    /// TCP (and TLS) connect. Default 10 s.
    pub connect: Duration,
    /// Idle read: resets on every chunk, so it catches a stream stalled mid-way. Default 120 s.
    pub read: Duration,
    /// Idle write of the request. Default 60 s.
    pub write: Duration,
    /// How long an idle pooled connection is kept. Default 90 s.
    pub pool_idle: Duration,
    /// TCP keepalive on upstream connections; off by default.
    pub tcp_keepalive: Option<Duration>,
    /// Bound on a whole exchange, streaming included; off by default so long reasoning streams
    /// live.
    pub total: Option<Duration>,
    /// Time to the response header and, for a 2xx, its first body chunk (the first SSE event of
    /// a stream). A busy server that does not answer in this time fails over. Off by default
    /// (then `read` bounds the wait).
    pub first_byte: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(120),
            write: Duration::from_secs(60),
            pool_idle: Duration::from_secs(90),
            tcp_keepalive: None,
            total: None,
            first_byte: None,
        }
    }
}

/// What makes an attempt eligible for another try, and how many tries a request gets.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retry after a connection (or TLS) failure.
    pub on_connect: bool,
    /// Retry after a timeout (connect, first byte, idle before the first byte).
    pub on_timeout: bool,
    /// Upstream statuses that are retried (default 429, 500, 502, 503, 504, 529).
    pub statuses: Vec<u16>,
    /// Most upstream attempts per request (accounts and endpoints together); `None`: every
    /// endpoint and account once.
    pub max_attempts: Option<usize>,
    /// Time budget for all attempts until the first byte reaches the client.
    pub deadline: Option<Duration>,
}

/// The statuses retried when `retry_on` is not given.
pub const DEFAULT_RETRY_STATUSES: [u16; 6] = [429, 500, 502, 503, 504, 529];

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            on_connect: true,
            on_timeout: true,
            statuses: DEFAULT_RETRY_STATUSES.to_vec(),
            max_attempts: None,
            deadline: None,
        }
    }
}

impl RetryPolicy {
    /// Whether an upstream answer with this status is retried.
    pub fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }
}

/// Passive health: when an endpoint is ejected and for how long (`upstream.health`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthPolicy {
    /// Consecutive failures that eject an endpoint. Default 3.
    pub failure_threshold: u32,
    /// First ejection period; doubles on each failed probe up to `max_eject`. Default 10 s.
    pub eject: Duration,
    /// Longest ejection period. Default 300 s.
    pub max_eject: Duration,
    /// Longest `retry-after` honoured when cooling an account or endpoint. Default 300 s.
    pub max_cooldown: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            failure_threshold: 3,
            eject: Duration::from_secs(10),
            max_eject: Duration::from_secs(300),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

/// One credential of a provider. A provider with a single `api_key` has one account labelled
/// `default`; local servers have one account without a key.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Shown in logs, `bitrouter route` and metrics; never the key.
    pub label: String,
    pub api_key: Option<Secret>,
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("label", &self.label)
            .field("api_key", &self.api_key)
            .finish()
    }
}

/// How requests spread over a provider's accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccountStrategy {
    /// Round-robin across healthy accounts (strictly alternating under sequential load).
    #[default]
    Balance,
    /// Always the first healthy account; the next only when it fails.
    Failover,
}

impl AccountStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStrategy::Balance => "balance",
            AccountStrategy::Failover => "failover",
        }
    }
}

/// Active health check of a provider (`providers.<id>.health_check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub kind: HealthCheckKind,
    /// Path requested by an HTTP check (default: `<base path>/models`, e.g. `/v1/models`).
    pub path: String,
    /// Time between checks. Default 10 s.
    pub interval: Duration,
    /// Timeout of one check. Default 2 s.
    pub timeout: Duration,
}

/// What an active health check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthCheckKind {
    /// `GET path` must answer 200.
    Http,
    /// A TCP connection must open.
    Tcp,
}

impl HealthCheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthCheckKind::Http => "http",
            HealthCheckKind::Tcp => "tcp",
        }
    }
}

/// A named bundle of request parameters (`presets:`), also the `params:` of a variant. Set
/// values override the client's; `system_prompt_prefix` is put before the client's system
/// prompt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Preset {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub max_tokens: Option<u64>,
    pub system_prompt_prefix: Option<String>,
    /// `low`, `medium`, `high` (or any effort the upstream understands).
    pub reasoning_effort: Option<String>,
}

impl Preset {
    /// `self` with every field `over` sets replacing it (prefixes are concatenated, `self`'s
    /// first).
    pub fn overlaid(&self, over: &Preset) -> Preset {
        Preset {
            temperature: over.temperature.or(self.temperature),
            top_p: over.top_p.or(self.top_p),
            max_tokens: over.max_tokens.or(self.max_tokens),
            system_prompt_prefix: match (&self.system_prompt_prefix, &over.system_prompt_prefix) {
                (Some(a), Some(b)) => Some(format!("{a}\n\n{b}")),
                (a, b) => b.clone().or_else(|| a.clone()),
            },
            reasoning_effort: over
                .reasoning_effort
                .clone()
                .or_else(|| self.reasoning_effort.clone()),
        }
    }

    /// Whether the preset changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Preset::default()
    }
}

/// How a variant sorts the endpoints it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortBy {
    /// Cheapest `price` first (endpoints without a price last).
    Price,
    /// Lowest observed time to first byte first (the `least_latency` strategy).
    Latency,
}

impl SortBy {
    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Price => "price",
            SortBy::Latency => "latency",
        }
    }
}

/// A model-string suffix (`gpt-4o:fast`) from `variants:`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Variant {
    pub name: String,
    /// Keep only endpoints of these providers, in this order (empty: keep all, in their order).
    pub providers: Vec<String>,
    pub sort: Option<SortBy>,
    /// A preset applied with the variant.
    pub preset: Option<String>,
    /// Parameters applied with the variant (after `preset`).
    pub params: Preset,
}
