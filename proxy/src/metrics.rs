//! Prometheus metrics, served at `GET /metrics`.
//!
//! Labels are bounded: `model` is the resolved upstream model id (or `-` when the request never
//! resolved), never a raw client string, so a client sending random model names cannot blow up
//! the series count.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The router's metric families, in their own registry.
pub struct Metrics {
    registry: Registry,
    pub requests: IntCounterVec,
    pub duration: HistogramVec,
    pub ttfb: HistogramVec,
    pub inflight: IntGauge,
    pub bytes_out: IntCounterVec,
    /// Upstream attempts beyond the first (failovers and account switches), by inbound protocol
    /// and the provider that finally answered.
    pub retries: IntCounterVec,
}

const LABELS: [&str; 4] = ["inbound", "provider", "model", "status"];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new("bitrouter_requests_total", "Requests handled, by outcome"),
            &LABELS,
        )?;
        let buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0, 60.0, 120.0, 300.0,
        ];
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "bitrouter_request_duration_seconds",
                "Time from request start to the last response byte",
            )
            .buckets(buckets.clone()),
            &LABELS,
        )?;
        let ttfb = HistogramVec::new(
            HistogramOpts::new(
                "bitrouter_upstream_first_byte_seconds",
                "Time from request start to the upstream's response header",
            )
            .buckets(buckets),
            &["provider", "model"],
        )?;
        let inflight = IntGauge::new("bitrouter_inflight_requests", "Requests in progress")?;
        let bytes_out = IntCounterVec::new(
            Opts::new(
                "bitrouter_response_bytes_total",
                "Response body bytes written to clients",
            ),
            &["inbound", "provider"],
        )?;
        let retries = IntCounterVec::new(
            Opts::new(
                "bitrouter_upstream_retries_total",
                "Upstream attempts beyond the first (failover to another account or endpoint)",
            ),
            &["inbound", "provider"],
        )?;
        registry.register(Box::new(retries.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(ttfb.clone()))?;
        registry.register(Box::new(inflight.clone()))?;
        registry.register(Box::new(bytes_out.clone()))?;
        // `bitrouter_log_lines_dropped_total`: the logger counts what a slow stdout cost
        // (process-wide, so the same counter in every registry).
        if let Some(dropped) = crate::logger::dropped_counter() {
            registry.register(Box::new(dropped))?;
        }
        Ok(Metrics {
            registry,
            requests,
            duration,
            ttfb,
            inflight,
            bytes_out,
            retries,
        })
    }

    /// The Prometheus text exposition of our registry plus the process-default one (where
    /// libraries such as Pingora register theirs).
    pub fn render(&self) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(prometheus::gather());
        let mut out = Vec::with_capacity(8 * 1024);
        if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
            log::warn!("encoding metrics failed: {e}");
        }
        out
    }
}
