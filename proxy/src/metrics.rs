//! Prometheus metrics, served at `GET /metrics`.
//!
//! Labels are bounded: `model` is the upstream model id only when it is configured (see
//! [`ModelLabels`]), `other` for any other id and `-` when the request never resolved, so a
//! client sending random `provider/<anything>` model names cannot blow up the series count.

use bitrouter_config::Config;
use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::collections::HashSet;

/// The `model` label of an upstream model id no configuration names.
pub const OTHER_MODEL: &str = "other";

/// The upstream model ids that may appear as a `model` label: the service ids of virtual model
/// endpoints and every provider's `models` (which, for a built-in provider without its own
/// list, are the registry's defaults). Built once per configuration.
#[derive(Debug, Clone, Default)]
pub struct ModelLabels {
    known: HashSet<String>,
}

impl ModelLabels {
    pub fn new(config: &Config) -> ModelLabels {
        let endpoints = config
            .models
            .values()
            .flat_map(|vm| vm.endpoints.iter().map(|ep| ep.service_id.clone()));
        let listed = config
            .providers
            .iter()
            .flat_map(|p| p.models.iter().cloned());
        ModelLabels {
            known: endpoints.chain(listed).collect(),
        }
    }

    /// `service_id` itself when configured, else [`OTHER_MODEL`].
    pub fn label<'a>(&'a self, service_id: &'a str) -> &'a str {
        if self.known.contains(service_id) {
            service_id
        } else {
            OTHER_MODEL
        }
    }
}

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
    /// Guardrail matches by rule, direction (upgoing/downgoing) and action. Never the text.
    pub guardrail_matches: IntCounterVec,
    /// Tokens by provider, model and bucket (`input` uncached, `cache_read`, `cache_write`,
    /// `output`, and `reasoning`, a part of `output`).
    pub tokens: IntCounterVec,
    /// Cost in micro-USD of the requests whose cost is known, by provider and model.
    pub cost: CounterVec,
    /// Ledger rows dropped because the queue was full (the database slow or down).
    pub ledger_dropped: IntGauge,
    /// LLM requests by virtual key id and user (never the key).
    pub key_requests: IntCounterVec,
    /// Known cost by virtual key id and user, in micro-USD.
    pub key_cost: CounterVec,
    /// Requests a key's policy refused, by key id and reason (`rate_limit_exceeded`,
    /// `budget_exceeded`, `model_not_allowed`, ...).
    pub key_refusals: IntCounterVec,
    /// The `routes:` families (label `route`), see [`crate::routes::log`].
    pub routes: crate::routes::log::RouteMetrics,
    /// Attempts on the replicas of a pool (`api_base` a list), by provider, replica
    /// (`host:port`, configured so bounded) and outcome (`ok`, `failed`): per-replica traffic
    /// and errors without a label on every request's counters.
    pub replica_attempts: IntCounterVec,
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
        let guardrail_matches = IntCounterVec::new(
            Opts::new(
                "bitrouter_guardrail_matches_total",
                "Guardrail rule matches, by rule, direction and action",
            ),
            &["rule", "direction", "action"],
        )?;
        let tokens = IntCounterVec::new(
            Opts::new(
                "bitrouter_tokens_total",
                "Tokens the upstreams reported (or bitrouter estimated), by bucket",
            ),
            &["provider", "model", "bucket"],
        )?;
        let cost = CounterVec::new(
            Opts::new(
                "bitrouter_cost_micro_usd_total",
                "Cost of requests with a known price, in micro-USD (USD per million tokens x tokens)",
            ),
            &["provider", "model"],
        )?;
        let ledger_dropped = IntGauge::new(
            "bitrouter_ledger_dropped_rows",
            "Ledger rows dropped since start because the write queue was full",
        )?;
        let key_requests = IntCounterVec::new(
            Opts::new(
                "bitrouter_key_requests_total",
                "LLM requests made with a virtual key, by key id and user",
            ),
            &["key", "user"],
        )?;
        let key_cost = CounterVec::new(
            Opts::new(
                "bitrouter_key_cost_micro_usd_total",
                "Known cost of virtual-key requests in micro-USD, by key id and user",
            ),
            &["key", "user"],
        )?;
        let key_refusals = IntCounterVec::new(
            Opts::new(
                "bitrouter_key_refusals_total",
                "Requests refused by a virtual key's policy, by key id and reason",
            ),
            &["key", "reason"],
        )?;
        let replica_attempts = IntCounterVec::new(
            Opts::new(
                "bitrouter_replica_attempts_total",
                "Upstream attempts on the replicas of a pool, by provider, replica and outcome",
            ),
            &["provider", "replica", "outcome"],
        )?;
        registry.register(Box::new(replica_attempts.clone()))?;
        registry.register(Box::new(key_requests.clone()))?;
        registry.register(Box::new(key_cost.clone()))?;
        registry.register(Box::new(key_refusals.clone()))?;
        registry.register(Box::new(tokens.clone()))?;
        registry.register(Box::new(cost.clone()))?;
        registry.register(Box::new(ledger_dropped.clone()))?;
        registry.register(Box::new(guardrail_matches.clone()))?;
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
        let routes = crate::routes::log::RouteMetrics::new(&registry)?;
        Ok(Metrics {
            routes,
            registry,
            requests,
            duration,
            ttfb,
            inflight,
            bytes_out,
            retries,
            guardrail_matches,
            tokens,
            cost,
            ledger_dropped,
            key_requests,
            key_cost,
            key_refusals,
            replica_attempts,
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

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{load_str, MapEnv};

    #[test]
    fn only_configured_models_are_labels() {
        let yaml = "
providers:
  openai:
    api_key: k
  local:
    api_base: http://127.0.0.1:9/v1
    models: [llama3]
models:
  smart:
    endpoints:
      - { provider: local, service_id: qwen3 }
";
        let config = match load_str(yaml, "t.yaml", &MapEnv::new(Vec::<(String, String)>::new())) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let labels = ModelLabels::new(&config);
        assert_eq!(labels.label("llama3"), "llama3");
        assert_eq!(labels.label("qwen3"), "qwen3");
        // The registry's default list of a built-in provider.
        assert!(config.providers[0].models.iter().any(|m| m == "gpt-4o"));
        assert_eq!(labels.label("gpt-4o"), "gpt-4o");
        assert_eq!(labels.label("random-1234"), OTHER_MODEL);
        assert_eq!(
            labels.label("smart"),
            OTHER_MODEL,
            "a virtual model name is no upstream id"
        );
    }
}
