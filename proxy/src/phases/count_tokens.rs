//! `POST /v1/messages/count_tokens` (Claude Code asks before it sends a long prompt), answered
//! for every route in Anthropic's shape `{"input_tokens": N}`:
//! - targets that speak Anthropic Messages count it themselves: the request passes through to
//!   their `/v1/messages/count_tokens` with the usual failover;
//! - when no target does, bitrouter estimates locally (see `bitrouter_filters::tokens`).
//!
//! `x-bitrouter-token-count` says which: `provider` or `estimated`.

use super::route::Plan;
use super::{forward, RequestCtx};
use crate::downstream::{Attribution, Downstream};
use crate::error::ProxyError;
use crate::state::AppState;
use crate::upstream::headers;
use bitrouter_config::Protocol;
use bitrouter_filters::tokens;
use bytes::Bytes;

pub async fn answer(
    state: &AppState,
    dn: &mut Downstream<'_>,
    ctx: &mut RequestCtx,
    mut plan: Plan,
) -> Result<(), ProxyError> {
    plan.resolution.targets.retain(|t| {
        t.provider
            .protocols_for(&t.service_id)
            .contains(&Protocol::Messages)
    });
    if !plan.resolution.targets.is_empty() {
        return forward::forward(state, dn, ctx, &plan).await;
    }
    let request = tokens::decode_count_tokens(plan.body()).map_err(ProxyError::Translate)?;
    let count = tokens::estimate_input_tokens(&request);
    let body = Bytes::from(tokens::count_tokens_response(count));
    dn.send_with(
        200,
        "application/json",
        body,
        Attribution::default(),
        &[(
            headers::X_TOKEN_COUNT,
            http::HeaderValue::from_static("estimated"),
        )],
    )
    .await
}
