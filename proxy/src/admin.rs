//! bitrouter's own endpoints: health, metrics, and the model list.
//!
//! Every one but `GET /health` requires the gateway key when `server.skip_auth` is false: the
//! metrics, the upstream health and the model list reveal the configuration (providers, models,
//! account labels, traffic). `/health` stays open for load balancers and supervisors.

use crate::error::ProxyError;
use crate::phases::respond::send;
use crate::phases::RequestCtx;
use crate::state::AppState;
use bytes::Bytes;
use pingora_proxy::Session;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// `GET /health`: the process is up and serving.
pub async fn health(session: &mut Session, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
    send(
        session,
        ctx,
        200,
        "application/json",
        Bytes::from_static(br#"{"status":"ok"}"#),
    )
    .await
}

/// `GET /health/upstreams`: what the balancer knows (accounts by label, never keys). Requires
/// the gateway key when one is set.
pub async fn upstream_health(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    crate::phases::request::authorize(state, session)?;
    let body = state
        .balancer
        .snapshot(&state.config, std::time::Instant::now())
        .to_string();
    send(session, ctx, 200, "application/json", Bytes::from(body)).await
}

/// `GET /metrics`: Prometheus text format. Requires the gateway key when one is set (scrapers
/// send it as `Authorization: Bearer`).
pub async fn metrics(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    crate::phases::request::authorize(state, session)?;
    let body = Bytes::from(state.metrics.render());
    send(session, ctx, 200, "text/plain; version=0.0.4", body).await
}

/// `GET /v1/models`: every routable model in OpenAI's list format, virtual models included.
/// Requires the gateway key when one is set (SDKs send it the same way as on LLM calls).
pub async fn list_models(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    crate::phases::request::authorize(state, session)?;
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let data: Vec<_> = state
        .table
        .models()
        .into_iter()
        .map(|m| json!({"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by}))
        .collect();
    let body = json!({"object": "list", "data": data}).to_string();
    send(session, ctx, 200, "application/json", Bytes::from(body)).await
}
