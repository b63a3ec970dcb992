//! bitrouter's own endpoints: health, metrics, and the model list.
//!
//! Every one but `GET /health` requires the gateway key when `server.skip_auth` is false: the
//! metrics, the upstream health and the model list reveal the configuration (providers, models,
//! account labels, traffic). `/health` stays open for load balancers and supervisors.

use crate::downstream::{Attribution, Downstream};
use crate::error::ProxyError;
use crate::phases::RequestCtx;
use crate::state::AppState;
use bytes::Bytes;
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// `GET /health`: the process is up and serving.
pub async fn health(dn: &mut Downstream<'_>) -> Result<(), ProxyError> {
    let body = Bytes::from_static(br#"{"status":"ok"}"#);
    dn.send(200, "application/json", body, Attribution::default())
        .await
}

/// `GET /health/upstreams`: what the balancer knows (accounts by label, never keys). Requires
/// the gateway key when one is set.
pub async fn upstream_health(
    state: &AppState,
    dn: &mut Downstream<'_>,
    ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    let now = std::time::Instant::now();
    let mut view = state.balancer.snapshot(&ctx.snapshot.config, now);
    // A pool's providers entry lists its replicas.
    if let Some(providers) = view["providers"].as_array_mut() {
        for entry in providers {
            let pool = entry["provider"]
                .as_str()
                .and_then(|id| ctx.snapshot.pools.by_id(id));
            if let Some(pool) = pool {
                let replicas = pool.to_json(now);
                entry["replica_strategy"] = replicas["strategy"].clone();
                entry["replicas"] = replicas["replicas"].clone();
            }
        }
    }
    if !ctx.snapshot.routes.is_empty() {
        view["routes"] = ctx.snapshot.routes.to_json(now);
    }
    let body = view.to_string();
    json(dn, body).await
}

/// `GET /metrics`: Prometheus text format. Requires the gateway key when one is set (scrapers
/// send it as `Authorization: Bearer`).
pub async fn metrics(
    state: &AppState,
    dn: &mut Downstream<'_>,
    _ctx: &mut RequestCtx,
) -> Result<(), ProxyError> {
    let body = Bytes::from(state.metrics.render());
    dn.send(
        200,
        "text/plain; version=0.0.4",
        body,
        Attribution::default(),
    )
    .await
}

/// `GET /v1/models`: every routable model in OpenAI's list format, virtual models included.
/// Requires a credential when auth is on (SDKs send it the same way as on LLM calls); a
/// virtual key sees only the models its policies allow.
pub async fn list_models(dn: &mut Downstream<'_>, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let data: Vec<_> = ctx
        .snapshot
        .table
        .models()
        .into_iter()
        .filter(|m| match ctx.identity.as_ref().and_then(|i| i.key()) {
            // A virtual key sees what its policies let it call.
            Some(k) => {
                let bare = m.id.split_once('/').map_or(m.id.as_str(), |(_, b)| b);
                k.policy.allows_model(&[m.id.as_str(), bare])
            }
            None => true,
        })
        .map(|m| json!({"id": m.id, "object": "model", "created": created, "owned_by": m.owned_by}))
        .collect();
    json(dn, json!({"object": "list", "data": data}).to_string()).await
}

/// A 200 JSON document.
async fn json(dn: &mut Downstream<'_>, body: String) -> Result<(), ProxyError> {
    let body = Bytes::from(body);
    dn.send(200, "application/json", body, Attribution::default())
        .await
}
