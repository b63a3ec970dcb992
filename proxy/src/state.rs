//! Everything a request needs, built once per configuration load and shared by all workers.

use crate::balance::Balancer;
use crate::metrics::{Metrics, ModelLabels};
use crate::upstream::UpstreamClient;
use bitrouter_config::{Config, RoutingTable};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The shared state behind the gateway.
pub struct AppState {
    pub config: Config,
    pub table: RoutingTable,
    pub upstream: UpstreamClient,
    pub metrics: Metrics,
    /// The `model` label values allowed in metrics (configured upstream model ids).
    pub model_labels: ModelLabels,
    /// Strategies, account rotation and health.
    pub balancer: Balancer,
    inflight: AtomicUsize,
}

impl AppState {
    pub fn new(config: Config) -> Result<Arc<AppState>, String> {
        let table = RoutingTable::new(&config);
        let upstream = UpstreamClient::new(&config)?;
        let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
        let balancer = Balancer::new(&config);
        let model_labels = ModelLabels::new(&config);
        Ok(Arc::new(AppState {
            balancer,
            model_labels,
            config,
            table,
            upstream,
            metrics,
            inflight: AtomicUsize::new(0),
        }))
    }

    /// Requests currently being handled (graceful shutdown waits for this to reach zero).
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }
}

/// Counts a request as in flight for as long as it lives.
pub struct InflightGuard(Arc<AppState>);

impl InflightGuard {
    pub fn new(state: &Arc<AppState>) -> InflightGuard {
        state.inflight.fetch_add(1, Ordering::AcqRel);
        state.metrics.inflight.inc();
        InflightGuard(state.clone())
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.0.inflight.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.inflight.dec();
    }
}
