//! Per-request state, typed: what the phases learn about a request, and what logging, metrics
//! (and later usage accounting and virtual keys) read from it.

use crate::error::{Fault, ProxyError};
use crate::state::{AppState, InflightGuard, Snapshot};
use crate::surface::Surface;
use bitrouter_config::{Protocol, Provider};
use bitrouter_filters::canonical::{ErrorKind, Usage};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request state, filled in as the request moves through the phases.
pub struct RequestCtx {
    pub start: Instant,
    /// The configuration this request runs on, from start to end (see [`crate::state`]).
    pub snapshot: Arc<Snapshot>,
    pub surface: Surface,
    /// The client's protocol, once known.
    pub inbound: Option<Protocol>,
    /// The model string the client sent.
    pub model: Option<String>,
    /// Where the last upstream attempt went.
    pub route: Option<Routed>,
    pub stream: bool,
    /// Status sent to the client (0 until a response header is written).
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// Upstream attempts made so far.
    pub attempts: usize,
    /// Time to the upstream's response header.
    pub upstream_ttfb: Option<Duration>,
    /// The address the last upstream attempt was sent to (`ip:port`), for the access log.
    pub upstream_addr: Option<pingora_core::protocols::l4::socket::SocketAddr>,
    /// What went wrong, for the log line and metrics.
    pub error: Option<ErrorSummary>,
    /// Request fields the translation for the last attempt left out (as in
    /// `x-bitrouter-dropped-params`), for the log line. Empty for same-protocol requests.
    pub dropped: Vec<String>,
    /// Guardrail rules that matched, as `rule=action` (for `x-bitrouter-guardrails` and the log
    /// line); downgoing matches of a stream arrive through `guard_seen`.
    pub guardrails: Vec<String>,
    pub guard_seen: Option<std::sync::Arc<std::sync::Mutex<Vec<String>>>>,
    /// Who is calling; filled at admission.
    pub identity: Option<Identity>,
    /// Tokens the upstream reported for the answer the client got (see [`crate::metering`]).
    pub usage: Option<Usage>,
    /// The answer reached the client whole (its usage report is final).
    pub usage_complete: bool,
    /// The request's hold on its key's budget, settled with its cost when it ends.
    pub reservation: Option<crate::govern::budget::Reservation>,
    /// The `routes:` entry proxying this request (Pingora's proxy loop then carries it).
    pub proxied: Option<crate::routes::Proxied>,
    _inflight: InflightGuard,
}

impl RequestCtx {
    pub fn new(state: &Arc<AppState>) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            snapshot: state.snapshot(),
            surface: Surface::Unknown,
            inbound: None,
            model: None,
            route: None,
            stream: false,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            attempts: 0,
            upstream_ttfb: None,
            upstream_addr: None,
            error: None,
            dropped: Vec::new(),
            guardrails: Vec::new(),
            guard_seen: None,
            identity: None,
            usage: None,
            usage_complete: false,
            reservation: None,
            proxied: None,
            _inflight: InflightGuard::new(state),
        }
    }

    /// Records `error` as the request's failure, replacing any earlier one (the last failure is
    /// the one the client saw).
    pub fn fail(&mut self, error: &ProxyError) {
        self.error = Some(ErrorSummary::of(error));
    }

    /// The provider of the last attempt.
    pub fn provider_id(&self) -> Option<&str> {
        self.route.as_ref().map(|r| r.provider.id.as_str())
    }
}

/// One upstream attempt's destination.
#[derive(Debug, Clone)]
pub struct Routed {
    pub provider: Arc<Provider>,
    /// The upstream model id.
    pub service_id: String,
    /// Index into the provider's accounts.
    pub account: usize,
    /// The replica (`host:port`) when the provider is a pool.
    pub replica: Option<Arc<str>>,
}

impl Routed {
    /// The account's label (never its key).
    pub fn account_label(&self) -> &str {
        self.provider
            .accounts
            .get(self.account)
            .map_or("-", |a| a.label.as_str())
    }
}

/// What went wrong, in the terms logs, metrics and (later) traces need.
#[derive(Debug, Clone)]
pub struct ErrorSummary {
    pub kind: ErrorKind,
    /// The machine-readable code the client saw, when there is one.
    pub code: Option<&'static str>,
    pub fault: Fault,
    pub message: String,
}

impl ErrorSummary {
    pub fn of(error: &ProxyError) -> ErrorSummary {
        let canonical = error.to_canonical();
        ErrorSummary {
            kind: canonical.kind,
            code: canonical.code,
            fault: error.fault(),
            message: canonical.message,
        }
    }

    /// An upstream's own error answer, relayed (the message is a summary, not its body).
    pub fn upstream_status(status: u16) -> ErrorSummary {
        ErrorSummary {
            kind: ErrorKind::from_status(status),
            code: None,
            fault: Fault::Upstream,
            message: format!("upstream HTTP {status}"),
        }
    }
}

/// The caller, once authenticated.
#[derive(Debug, Clone)]
pub enum Identity {
    /// `server.skip_auth: true`: no credential was checked.
    Anonymous,
    /// The operator's gateway key (`BITROUTER_API_KEY`).
    Master,
    /// A virtual key (`brvk_`), with its policies.
    Key(Arc<crate::govern::admit::KeyCaller>),
}

impl Identity {
    /// The caller's key, when it holds a virtual key.
    pub fn key(&self) -> Option<&crate::govern::admit::KeyCaller> {
        match self {
            Identity::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The caller's key, shared (the request path keeps it across awaits).
    pub fn key_arc(&self) -> Option<Arc<crate::govern::admit::KeyCaller>> {
        match self {
            Identity::Key(k) => Some(k.clone()),
            _ => None,
        }
    }
}
