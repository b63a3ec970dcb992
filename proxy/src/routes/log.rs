//! The `logging` phase of a routed request: one log line and the route metrics. No ledger row:
//! a route is not an LLM call, nothing is billed or counted against a key's budget.

use crate::phases::RequestCtx;
use crate::state::AppState;
use pingora_error::Error;
use pingora_proxy::Session;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

/// Metric families of routed requests, labelled by route name (bounded: names come from the
/// configuration).
#[derive(Clone)]
pub struct RouteMetrics {
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    /// Body bytes, `direction` = `in` (from the client) or `out` (to it).
    pub bytes: IntCounterVec,
    /// Tries beyond the first (another URL after a connection failure).
    pub retries: IntCounterVec,
}

impl RouteMetrics {
    pub fn new(registry: &Registry) -> Result<RouteMetrics, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "bitrouter_route_requests_total",
                "Requests proxied by `routes:`, by route and status",
            ),
            &["route", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "bitrouter_route_request_duration_seconds",
                "Time from request start to the end of a routed exchange",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0, 60.0, 300.0,
            ]),
            &["route"],
        )?;
        let bytes = IntCounterVec::new(
            Opts::new(
                "bitrouter_route_body_bytes_total",
                "Body bytes through `routes:`, by route and direction (in: from clients, out: to them)",
            ),
            &["route", "direction"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "bitrouter_route_retries_total",
                "Routed requests sent to another upstream URL after a connection failure",
            ),
            &["route"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(bytes.clone()))?;
        registry.register(Box::new(retries.clone()))?;
        Ok(RouteMetrics {
            requests,
            duration,
            bytes,
            retries,
        })
    }
}

/// Records a routed request. Never logs headers, credentials or bodies.
pub fn record(state: &AppState, session: &Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
    let Some(p) = ctx.proxied.as_ref() else {
        return;
    };
    let elapsed = ctx.start.elapsed();
    let status = session
        .response_written()
        .map_or(ctx.status, |r| r.status.as_u16());
    let bytes_in = session.body_bytes_read();
    let bytes_out = session.body_bytes_sent().max(ctx.bytes_out);
    let name = p.name();
    let status_label = status.to_string();
    let m = &state.metrics.routes;
    m.requests.with_label_values(&[name, &status_label]).inc();
    m.duration
        .with_label_values(&[name])
        .observe(elapsed.as_secs_f64());
    m.bytes
        .with_label_values(&[name, "in"])
        .inc_by(bytes_in as u64);
    m.bytes
        .with_label_values(&[name, "out"])
        .inc_by(bytes_out as u64);
    if p.attempts > 1 {
        m.retries
            .with_label_values(&[name])
            .inc_by(p.attempts as u64 - 1);
    }
    let req = session.req_header();
    let id = state.request_id();
    let upstream = p
        .url()
        .and_then(|i| p.route.route.upstream.urls.get(i))
        .map_or("-", |u| u.url.as_str());
    let access = &ctx.snapshot.config.server.access_log;
    if access.format != bitrouter_config::AccessLogFormat::Text || access.path.is_some() {
        let key = ctx.identity.as_ref().and_then(|i| i.key());
        let entry = crate::access_log::Entry {
            ts: crate::access_log::now(),
            id: &id,
            method: req.method.as_str(),
            path: req.uri.path(),
            route: Some(name),
            http: crate::access_log::http_version(req.version),
            key_id: key.map(|k| k.id()),
            user: key.map(|k| k.user()),
            model: "-",
            provider: "-",
            replica: p
                .guard
                .as_ref()
                .filter(|_| p.route.pool.len() > 1)
                .map(|g| g.label().as_ref()),
            account: "-",
            upstream_model: "-",
            attempts: p.attempts,
            status,
            stream: false,
            duration_ms: elapsed.as_secs_f64() * 1000.0,
            bytes_in,
            bytes_out,
            client: session.client_addr().map(|a| a.to_string()),
            listener: session.server_addr().map(|a| a.to_string()),
            tls: crate::listeners::tls_version(session),
            upstream: p.peer.as_ref().map(|a| a.to_string()),
            dropped: &[],
            guardrails: Vec::new(),
            spent: None,
            error: ctx.error.as_ref().map(|e| e.message.as_str()),
        };
        crate::access_log::emit(access, &entry);
        return;
    }
    log::info!(
        "{} {} id={id} route={name} upstream={upstream} peer={} attempts={} status={status} duration_ms={:.1} bytes_in={bytes_in} bytes_out={bytes_out}{}{}",
        req.method,
        req.uri.path(),
        p.peer
            .as_ref()
            .map_or_else(|| "-".to_string(), |a| a.to_string()),
        p.attempts,
        elapsed.as_secs_f64() * 1000.0,
        ctx.identity
            .as_ref()
            .and_then(|i| i.key())
            .map(|k| format!(" key={} user={}", k.id(), k.user()))
            .unwrap_or_default(),
        ctx.error
            .as_ref()
            .map(|e| format!(" error=\"{}\"", e.message))
            .unwrap_or_default(),
    );
}
