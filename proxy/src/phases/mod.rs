//! The request path, one module per phase: classify and admit the request ([`request`]), pick
//! the upstream ([`route`]), run the attempts ([`forward`]: the policy loop; [`attempt`]: one
//! call; [`relay`] and [`translate`]: the answer back to the client), and record the outcome
//! ([`logging`]). Every byte to the client goes through [`crate::downstream::Downstream`].

pub mod attempt;
pub mod context;
pub mod count_tokens;
pub mod forward;
pub mod logging;
pub mod relay;
pub mod request;
pub mod route;
pub mod translate;
pub mod upload;

pub use crate::downstream::Handled;
pub use context::{ErrorSummary, Identity, RequestCtx, Routed};

use crate::admin;
use crate::downstream::{Attribution, Downstream};
use crate::error::ProxyError;
use crate::govern::admit;
use crate::state::AppState;
use crate::surface::{self, Surface};
use pingora_proxy::Session;
use std::sync::Arc;

/// Runs a request to completion.
pub async fn handle(state: &Arc<AppState>, session: &mut Session, ctx: &mut RequestCtx) -> Handled {
    keepalive(session, ctx.snapshot.config.server.keepalive_secs);
    let req = session.req_header();
    let surface = surface::classify(req.method.as_str(), req.uri.path());
    if surface == Surface::Unknown && !ctx.snapshot.routes.is_empty() {
        // A `routes:` entry (boxed: a path of its own, kept out of the LLM path's future).
        if let Some(handled) = Box::pin(crate::routes::request_filter(state, session, ctx)).await {
            return handled;
        }
    }
    let req = session.req_header();
    ctx.surface = surface;
    ctx.inbound = surface.protocol();
    let protocol = surface
        .protocol()
        .unwrap_or_else(|| surface::guess_protocol(req.uri.path(), &req.headers));
    let mut dn = Downstream::new(session, protocol);
    let result = dispatch(state, &mut dn, ctx).await;
    let handled = match result {
        Ok(()) => Handled::Complete,
        Err(e) => {
            ctx.fail(&e);
            let who = Attribution {
                attempts: ctx.attempts,
                provider: ctx.provider_id(),
            };
            dn.fail(&e, who).await
        }
    };
    ctx.status = dn.status();
    ctx.bytes_out = dn.bytes_out();
    handled
}

/// Applies `server.keepalive_secs` to an HTTP/1.1 client connection that is to be kept open
/// (HTTP/2 has no such setting here). Pingora keeps an HTTP/1.1 connection without a time limit
/// once a request has been read (its 60 s applies to a connection's first request only), so the
/// idle wait ([`crate::linger`]) applies the setting between requests, and this sets it for
/// Pingora's own reads of a next request's head; 0 answers with `Connection: close`. Set per
/// request, so that a reload applies to the next request of a connection already open. A
/// connection already closing (`Connection: close`, HTTP/1.0, shutdown) stays so.
fn keepalive(session: &mut Session, secs: u64) {
    match session.get_keepalive() {
        None => {}
        Some(_) if secs == 0 => session.set_keepalive(None),
        Some(now) if now != secs => session.set_keepalive(Some(secs)),
        Some(_) => {}
    }
}

async fn dispatch(
    state: &Arc<AppState>,
    dn: &mut Downstream<'_>,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    match ctx.surface {
        // Metrics and upstream health reveal configuration and traffic: gateway key only.
        Surface::Metrics | Surface::UpstreamHealth => {
            request::authorize_admin(state, ctx, dn.session())?
        }
        // A virtual key sees the models it may use.
        Surface::ListModels => request::authorize(state, ctx, dn.session())?,
        _ => {}
    }
    match ctx.surface {
        Surface::Health => admin::health(dn).await,
        Surface::Metrics => admin::metrics(state, dn, ctx).await,
        Surface::UpstreamHealth => admin::upstream_health(state, dn, ctx).await,
        Surface::ListModels => admin::list_models(dn, ctx).await,
        Surface::WrongMethod { allowed, .. } => Err(ProxyError::MethodNotAllowed {
            method: dn.req().method.to_string(),
            path: dn.req().uri.path().to_string(),
            allowed,
        }),
        Surface::Unknown => Err(ProxyError::NotFound {
            method: dn.req().method.to_string(),
            path: dn.req().uri.path().to_string(),
        }),
        Surface::ChatCompletions
        | Surface::Responses
        | Surface::Messages
        | Surface::CountTokens
        | Surface::Gemini { .. }
        | Surface::Endpoint(_) => llm(state, dn, ctx).await,
    }
}

/// An LLM call: admit, read, route, forward.
async fn llm(
    state: &Arc<AppState>,
    dn: &mut Downstream<'_>,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    request::authorize(state, ctx, dn.session())?;
    let key = ctx.identity.as_ref().and_then(Identity::key_arc);
    if let (Some(key), Some(gov)) = (&key, state.governance()) {
        admit::rate_limit(gov, key)?;
    }
    let gemini_sse = surface::query_param(dn.req().uri.query(), "alt").as_deref() == Some("sse");
    let mut plan = match ctx.surface {
        // A multipart upload: only its prefix, up to the `model` field, is read here.
        Surface::Endpoint(e) if e.multipart() => {
            // Boxed: a rare path, kept out of the size of every request's future.
            let (model, prefix, up) = Box::pin(upload::read_prefix(dn.session(), ctx)).await?;
            route::plan_upload(e, model, prefix, up, ctx)?
        }
        _ => {
            let body = request::read_body(dn.session(), ctx).await?;
            route::plan(dn, gemini_sse, body, ctx)?
        }
    };
    if let Some(key) = &key {
        if key.policy.restricts_models() {
            admit::filter_models(key, &mut plan)?;
        }
        if key.policy.restricts_tools() {
            admit::check_tools(key, plan.body())?;
        }
    }
    if ctx.surface == Surface::CountTokens {
        // Boxed: its future (11.9 KB: a whole forward inside) set the size of every request's
        // future, which an open stream holds for its whole life (-Zprint-type-sizes: `llm`
        // 12,864 bytes with it inline).
        return Box::pin(count_tokens::answer(state, dn, ctx, plan)).await;
    }
    if let (Some(key), Some(gov)) = (&key, state.governance()) {
        ctx.reservation = admit::reserve(gov, &ctx.snapshot, key, &plan).await?;
    }
    // By reference: an `async fn` keeps a by-value argument twice in its future (the argument
    // and the local it is moved to), and `Plan` is 888 bytes (-Zprint-type-sizes).
    forward::forward(state, dn, ctx, &plan).await
}
