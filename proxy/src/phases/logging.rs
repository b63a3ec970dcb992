//! The `logging` phase: one line per request and the request metrics.

use super::RequestCtx;
use crate::access_log::{Spent, Tokens};
use crate::ledger::LedgerRow;
use crate::metering::{self, Recorded};
use crate::state::AppState;
use crate::surface::Surface;
use bitrouter_config::CostError;
use bitrouter_filters::usage::UsageOrigin;
use pingora_error::Error;
use pingora_proxy::Session;

/// Records a finished request. Never logs credentials or bodies.
pub fn record(state: &AppState, session: &Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
    // Settled (or, for requests that are not accounted, charged in full on drop) below.
    let reservation = ctx.reservation.take();
    let ctx = &*ctx;
    let elapsed = ctx.start.elapsed();
    let req = session.req_header();
    let inbound = match ctx.surface {
        // Each OpenAI endpoint is its own label (they all speak the chat protocol's shape).
        Surface::Endpoint(e) => e.label(),
        _ => ctx
            .inbound
            .map(|p| p.as_str())
            .unwrap_or(ctx.surface.label()),
    };
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
    let id = state.request_id();
    let spent = account(state, ctx, reservation, &id, elapsed, provider, model_label);
    let key = ctx.identity.as_ref().and_then(|i| i.key());
    if let Some(k) = key {
        if ctx.inbound.is_some() {
            m.key_requests.with_label_values(&[k.id(), k.user()]).inc();
        }
        if let Some(code) = ctx.error.as_ref().and_then(|e| e.code) {
            if matches!(
                code,
                "rate_limit_exceeded"
                    | "budget_exceeded"
                    | "model_not_allowed"
                    | "tool_not_allowed"
                    | "model_not_priced"
                    | "unknown_policy"
            ) {
                m.key_refusals.with_label_values(&[k.id(), code]).inc();
            }
        }
    }
    if !crate::access_log::wanted(&ctx.snapshot.config.server.access_log) {
        return;
    }
    let entry = crate::access_log::Entry {
        ts: crate::access_log::now(),
        id: &id,
        method: req.method.as_str(),
        path: req.uri.path(),
        route: None,
        http: crate::access_log::http_version(req.version),
        key_id: key.map(|k| k.id()),
        user: key.map(|k| k.user()),
        model: ctx.model.as_deref().unwrap_or("-"),
        provider,
        replica: ctx.route.as_ref().and_then(|r| r.replica.as_deref()),
        account: ctx.route.as_ref().map_or("-", |r| r.account_label()),
        upstream_model: model,
        attempts: ctx.attempts,
        status: ctx.status,
        stream: ctx.stream,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        bytes_in: ctx.bytes_in,
        bytes_out: ctx.bytes_out,
        client: session.client_addr().map(|a| a.to_string()),
        listener: session.server_addr().map(|a| a.to_string()),
        tls: crate::listeners::tls_version(session),
        upstream: ctx.upstream_addr.as_ref().map(|a| a.to_string()),
        dropped: &ctx.dropped,
        guardrails: guardrail_items(ctx),
        spent,
        error: ctx.error.as_ref().map(|e| e.message.as_str()),
    };
    crate::access_log::emit(&ctx.snapshot.config.server.access_log, &entry);
}

/// `rule=action` of each guardrail that matched (upgoing, and downgoing including a stream's);
/// never the matched text.
fn guardrail_items(ctx: &RequestCtx) -> Vec<String> {
    let mut items = ctx.guardrails.clone();
    if let Some(seen) = &ctx.guard_seen {
        crate::guardrails::merge_items(&mut items, &seen.lock().unwrap_or_else(|e| e.into_inner()));
    }
    items
}

/// Usage and cost of an LLM request (not a token count, a model list or a health check): the
/// token and cost metrics, a row on the ledger's queue, and the access line's tokens and cost
/// (`None` for other requests).
fn account(
    state: &AppState,
    ctx: &RequestCtx,
    reservation: Option<crate::govern::budget::Reservation>,
    id: &str,
    elapsed: std::time::Duration,
    provider: &str,
    model_label: &str,
) -> Option<Spent> {
    let inbound = ctx.inbound?;
    if matches!(ctx.surface, Surface::CountTokens) || ctx.model.is_none() {
        return None;
    }
    let answered = (200..300).contains(&ctx.status);
    let Recorded { buckets, origin } =
        metering::settle(ctx.usage, answered, ctx.usage_complete, ctx.bytes_in);
    let cost: Result<f64, &'static str> = if !answered && ctx.usage.is_none() {
        // Nothing was answered: providers do not bill an error.
        Ok(0.0)
    } else {
        match &ctx.route {
            Some(r) => ctx
                .snapshot
                .prices
                .cost_micro_usd(&r.provider.id, &r.service_id, &metering::tokens(&buckets))
                .map_err(|e: CostError| e.reason()),
            None => Err("no_route"),
        }
    };
    if let Some(r) = reservation {
        // The budget is charged what the provider reported; an answer cut short (usage
        // estimated: the upstream may have gone on generating) or of unknown cost keeps its
        // whole reservation; nothing answered costs nothing.
        let charge = match (origin, cost) {
            (UsageOrigin::ProviderReported | UsageOrigin::Unknown, Ok(c)) => c,
            _ => r.amount(),
        };
        r.settle(charge);
    }
    let key = ctx.identity.as_ref().and_then(|i| i.key());
    let m = &state.metrics;
    if let Some(k) = key {
        if let Ok(c) = cost {
            m.key_cost
                .with_label_values(&[k.id(), k.user()])
                .inc_by(c.max(0.0));
        }
    }
    if ctx.route.is_some() {
        for (bucket, n) in [
            ("input", buckets.input),
            ("cache_read", buckets.cache_read),
            ("cache_write", buckets.cache_write),
            ("output", buckets.output),
            ("reasoning", buckets.reasoning),
        ] {
            if n > 0 {
                m.tokens
                    .with_label_values(&[provider, model_label, bucket])
                    .inc_by(n);
            }
        }
        if let Ok(c) = cost {
            if c > 0.0 {
                m.cost.with_label_values(&[provider, model_label]).inc_by(c);
            }
        }
    }
    if let Some(ledger) = state.ledger() {
        let started = std::time::SystemTime::now()
            .checked_sub(elapsed)
            .unwrap_or(std::time::UNIX_EPOCH);
        ledger.record(LedgerRow {
            time_ms: crate::ledger::unix_ms(started),
            request_id: id.to_string(),
            key_id: key.map(|k| k.id().to_string()),
            user_id: key.map(|k| k.user().to_string()),
            inbound: match ctx.surface {
                Surface::Endpoint(e) => e.label(),
                _ => crate::ledger::inbound_name(inbound),
            },
            model: ctx.model.clone().unwrap_or_default(),
            provider: ctx.route.as_ref().map(|r| r.provider.id.clone()),
            upstream_model: ctx.route.as_ref().map(|r| r.service_id.clone()),
            account: ctx.route.as_ref().map(|r| r.account_label().to_string()),
            attempts: u32::try_from(ctx.attempts).unwrap_or(u32::MAX),
            status: ctx.status,
            stream: ctx.stream,
            input_tokens: buckets.input,
            cache_read_tokens: buckets.cache_read,
            cache_write_tokens: buckets.cache_write,
            output_tokens: buckets.output,
            reasoning_tokens: buckets.reasoning,
            usage_origin: origin.as_str(),
            cost_micro_usd: cost.ok(),
            cost_unknown_reason: cost.err().map(str::to_string),
            ttfb_ms: ctx
                .upstream_ttfb
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            error_kind: ctx
                .error
                .as_ref()
                .map(|e| e.code.unwrap_or(e.kind.name()).to_string()),
        });
        m.ledger_dropped
            .set(i64::try_from(ledger.dropped()).unwrap_or(i64::MAX));
    }
    Some(Spent {
        tokens: Tokens {
            input: buckets.input,
            cache_read: buckets.cache_read,
            cache_write: buckets.cache_write,
            output: buckets.output,
        },
        usage: origin.as_str(),
        cost_usd: cost.ok(),
        cost_unknown: cost.err(),
    })
}
