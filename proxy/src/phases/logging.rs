//! The `logging` phase: one line per request and the request metrics.

use super::RequestCtx;
use crate::state::AppState;
use crate::surface::Surface;
use pingora_error::Error;
use pingora_proxy::Session;

/// Records a finished request. Never logs credentials or bodies.
pub fn record(state: &AppState, session: &Session, _e: Option<&Error>, ctx: &RequestCtx) {
    let elapsed = ctx.start.elapsed();
    let req = session.req_header();
    let inbound = ctx
        .inbound
        .map(|p| p.as_str())
        .unwrap_or(ctx.surface.label());
    let provider = ctx.provider_id().unwrap_or("-");
    let model = ctx.route.as_ref().map_or("-", |r| r.service_id.as_str());
    // Bounded: a model id no configuration names is `other` (the log line keeps the real one).
    let model_label = ctx
        .route
        .as_ref()
        .map_or("-", |r| ctx.snapshot.model_labels.label(&r.service_id));
    let status = ctx.status.to_string();
    let labels = [inbound, provider, model_label, status.as_str()];
    let m = &state.metrics;
    m.requests.with_label_values(&labels).inc();
    m.duration
        .with_label_values(&labels)
        .observe(elapsed.as_secs_f64());
    if let Some(ttfb) = ctx.upstream_ttfb {
        m.ttfb
            .with_label_values(&[provider, model_label])
            .observe(ttfb.as_secs_f64());
    }
    m.bytes_out
        .with_label_values(&[inbound, provider])
        .inc_by(ctx.bytes_out as u64);
    if ctx.attempts > 1 {
        m.retries
            .with_label_values(&[inbound, provider])
            .inc_by(ctx.attempts as u64 - 1);
    }
    if matches!(ctx.surface, Surface::Health | Surface::Metrics) && ctx.error.is_none() {
        return;
    }
    log::info!(
        "{} {} model={} provider={} account={} upstream_model={} attempts={} status={} stream={} duration_ms={:.1} bytes_in={} bytes_out={}{}{}{}",
        req.method,
        req.uri.path(),
        ctx.model.as_deref().unwrap_or("-"),
        provider,
        ctx.route.as_ref().map_or("-", |r| r.account_label()),
        model,
        ctx.attempts,
        ctx.status,
        ctx.stream,
        elapsed.as_secs_f64() * 1000.0,
        ctx.bytes_in,
        ctx.bytes_out,
        if ctx.dropped.is_empty() {
            String::new()
        } else {
            format!(" dropped={}", ctx.dropped.join(","))
        },
        guardrails_field(ctx),
        ctx.error
            .as_ref()
            .map(|e| format!(" error=\"{}\"", e.message))
            .unwrap_or_default(),
    );
}

/// ` guardrails=rule=action,...` when a guardrail matched (upgoing, and downgoing including a
/// stream's); never the matched text.
fn guardrails_field(ctx: &RequestCtx) -> String {
    let mut items = ctx.guardrails.clone();
    if let Some(seen) = &ctx.guard_seen {
        crate::guardrails::merge_items(&mut items, &seen.lock().unwrap_or_else(|e| e.into_inner()));
    }
    if items.is_empty() {
        String::new()
    } else {
        format!(" guardrails={}", items.join(","))
    }
}
