//! The request path, one module per phase: classify and admit the request ([`request`]), pick
//! the upstream ([`route`]), call it and stream the answer back ([`upstream`]), write our own
//! responses ([`respond`]), and record the outcome ([`logging`]).

pub mod logging;
pub mod request;
pub mod respond;
pub mod route;
pub mod translate;
pub mod upstream;

use crate::admin;
use crate::error::ProxyError;
use crate::state::{AppState, InflightGuard};
use crate::surface::{self, Surface};
use bitrouter_config::Protocol;
use pingora_proxy::Session;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Per-request state, filled in as the request moves through the phases.
pub struct RequestCtx {
    pub start: Instant,
    /// Surface label for logs (`chat_completions`, `models`, ...).
    pub surface: &'static str,
    /// The client's protocol, once known.
    pub inbound: Option<Protocol>,
    /// The model string the client sent.
    pub model: Option<String>,
    pub provider: Option<String>,
    /// The upstream model id.
    pub service_id: Option<String>,
    pub stream: bool,
    /// Status sent to the client (0 until a response header is written).
    pub status: u16,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The account label used for the last attempt.
    pub account: Option<String>,
    /// Upstream attempts made so far.
    pub attempts: usize,
    /// The response was committed and then the upstream failed (the client got an error
    /// event): counts against the endpoint's health.
    pub upstream_failed: bool,
    /// Time to the upstream's response header.
    pub upstream_ttfb: Option<Duration>,
    /// What went wrong, for the log line.
    pub error: Option<String>,
    _inflight: InflightGuard,
}

impl RequestCtx {
    pub fn new(state: &Arc<AppState>) -> RequestCtx {
        RequestCtx {
            start: Instant::now(),
            surface: "unknown",
            inbound: None,
            model: None,
            provider: None,
            service_id: None,
            account: None,
            attempts: 0,
            upstream_failed: false,
            stream: false,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            upstream_ttfb: None,
            error: None,
            _inflight: InflightGuard::new(state),
        }
    }
}

/// How a request ended.
pub enum Handled {
    /// A complete response was written (success or error).
    Complete,
    /// The response started but could not be finished; the connection must be dropped.
    Aborted,
}

/// Runs a request to completion.
pub async fn handle(state: &Arc<AppState>, session: &mut Session, ctx: &mut RequestCtx) -> Handled {
    let req = session.req_header();
    let surface = surface::classify(req.method.as_str(), req.uri.path());
    ctx.surface = surface.label();
    let protocol = surface
        .protocol()
        .unwrap_or_else(|| surface::guess_protocol(req.uri.path(), &req.headers));
    ctx.inbound = surface.protocol();
    let result = match surface {
        Surface::Health => admin::health(session, ctx).await,
        Surface::Metrics => admin::metrics(state, session, ctx).await,
        Surface::UpstreamHealth => admin::upstream_health(state, session, ctx).await,
        Surface::ListModels => admin::list_models(state, session, ctx).await,
        Surface::WrongMethod { allowed, .. } => Err(ProxyError::MethodNotAllowed {
            method: req.method.to_string(),
            path: req.uri.path().to_string(),
            allowed,
        }),
        Surface::Unknown => Err(ProxyError::NotFound {
            method: req.method.to_string(),
            path: req.uri.path().to_string(),
        }),
        Surface::ChatCompletions
        | Surface::Responses
        | Surface::Messages
        | Surface::Gemini { .. } => llm(state, session, ctx, surface).await,
    };
    match result {
        Ok(()) => Handled::Complete,
        Err(e) => respond::error(session, ctx, protocol, &e).await,
    }
}

/// An LLM call: admit, read, route, forward.
async fn llm(
    state: &Arc<AppState>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    surface: Surface,
) -> Result<(), ProxyError> {
    request::authorize(state, session)?;
    let gemini_sse =
        surface::query_param(session.req_header().uri.query(), "alt").as_deref() == Some("sse");
    let body = request::read_body(state, session, ctx).await?;
    let plan = route::plan(state, &surface, gemini_sse, body, ctx)?;
    upstream::forward(state, session, ctx, plan).await
}
