//! What a request needs, in two parts with different lifetimes:
//!
//! - [`Snapshot`]: everything derived from one load of `bitrouter.yaml` (the resolved config and
//!   its routing table; later issues add the guardrail rules, policies and price table here).
//!   Immutable. A request loads the current snapshot once, in `new_ctx`, and keeps it to its
//!   end, so a reload never changes the rules under a request that has started (nginx keeps old
//!   workers on the old config for the same reason).
//! - [`AppState`]: the long-lived runtime that survives a swap: connection pools, metrics,
//!   balancer health and counters, in-flight accounting. Health of endpoints that still exist
//!   carries over a swap because it is keyed by provider and model id, not by snapshot.
//!
//! The current snapshot sits in an [`ArcSwap`]: loading it is a couple of atomic operations on
//! the request path, and a swap is atomic for every worker at once (`arc-swap` rather than an
//! `RwLock<Arc<_>>`: readers never wait on a writer and never contend with each other).

use crate::balance::replicas::Pools;
use crate::balance::Balancer;
use crate::guardrails::{Direction, GuardSet};
use crate::hooks::StreamHooks;
use crate::ledger::Ledger;
use crate::metrics::{Metrics, ModelLabels};
use crate::upstream::UpstreamClient;
use arc_swap::ArcSwap;
use bitrouter_config::{Config, PriceBook, RoutingTable};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::Instant;
use tokio::sync::watch;

/// One configuration load, ready to serve: never modified after it is built.
pub struct Snapshot {
    pub config: Config,
    pub table: RoutingTable,
    /// The `model` label values allowed in metrics (configured upstream model ids).
    pub model_labels: ModelLabels,
    /// Hooks on response streams (none yet: guardrails and usage accounting register here).
    pub stream_hooks: StreamHooks,
    /// Counts snapshots built by this process (1 for the one at start-up).
    pub generation: u64,
    /// The compiled guardrails, when the configuration has any.
    pub guardrails: Option<Arc<GuardSet>>,
    /// Prices per provider and upstream model: the config's `pricing`, then the built-in table.
    pub prices: PriceBook,
    /// `routes:`, compiled (their own replica pools share state with the previous snapshot's
    /// for URLs that remain, as `pools` do).
    pub routes: crate::routes::RouteTable,
    /// The replica pools of providers whose `api_base` is a list (their live state is shared
    /// with the previous snapshot's pools for replicas that remain).
    pub pools: Pools,
}

impl Snapshot {
    /// Builds everything a config needs before it can serve (a guardrail the detector
    /// refuses makes the config unusable: an error at start or reload).
    pub fn new(config: Config, generation: u64) -> Result<Snapshot, String> {
        Snapshot::after(config, generation, None)
    }

    /// [`Snapshot::new`] replacing `previous`: replicas that remain keep their state.
    pub fn after(
        config: Config,
        generation: u64,
        previous: Option<&Snapshot>,
    ) -> Result<Snapshot, String> {
        let pools = Pools::new(&config, previous.map(|p| &p.pools));
        let table = RoutingTable::new(&config);
        let model_labels = ModelLabels::new(&config);
        let guardrails = match &config.guardrails {
            Some(g) => Some(Arc::new(GuardSet::new(g)?)),
            None => None,
        };
        let prices = PriceBook::from_config(&config);
        let routes = crate::routes::RouteTable::new(&config, &pools, previous.map(|p| &p.routes));
        Ok(Snapshot {
            routes,
            prices,
            config,
            table,
            model_labels,
            stream_hooks: StreamHooks::default(),
            generation,
            guardrails,
            pools,
        })
    }

    /// Whether a downgoing guardrail may apply (streams must then be decoded to be scanned).
    pub fn guards_down(&self) -> bool {
        self.guardrails
            .as_ref()
            .is_some_and(|g| g.has(Direction::Down))
    }
}

/// The shared runtime behind the gateway.
pub struct AppState {
    snapshot: ArcSwap<Snapshot>,
    /// Tells background services (health checks) that the snapshot changed.
    changed: watch::Sender<u64>,
    generations: AtomicU64,
    pub upstream: UpstreamClient,
    pub metrics: Metrics,
    /// Strategies, account rotation and health.
    pub balancer: Balancer,
    inflight: AtomicUsize,
    /// Requests finished since start (for `bitrouter status`).
    served: AtomicU64,
    /// When the process started serving.
    pub started: Instant,
    /// The request ledger (set once at start-up unless `database.enabled: false`). Survives
    /// reloads: changing `database.url` needs a restart.
    ledger: OnceLock<Ledger>,
    /// Virtual keys, budgets and rate limits (set with the ledger: they share its database).
    governance: OnceLock<crate::govern::Governance>,
    /// Numbers request ids (see [`AppState::request_id`]).
    requests: AtomicU64,
    /// Unix ms when the process started, hex: the stem of this process's request ids.
    id_stem: String,
}

impl AppState {
    pub fn new(config: Config) -> Result<Arc<AppState>, String> {
        let upstream = UpstreamClient::new(&config)?;
        let metrics = Metrics::new().map_err(|e| format!("metrics: {e}"))?;
        let balancer = Balancer::new(&config);
        let snapshot = Snapshot::new(config, 1)?;
        let (changed, _) = watch::channel(1);
        Ok(Arc::new(AppState {
            snapshot: ArcSwap::from_pointee(snapshot),
            changed,
            generations: AtomicU64::new(1),
            balancer,
            upstream,
            metrics,
            inflight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            started: Instant::now(),
            ledger: OnceLock::new(),
            governance: OnceLock::new(),
            requests: AtomicU64::new(0),
            id_stem: format!(
                "{:x}{:x}",
                crate::ledger::unix_ms(std::time::SystemTime::now()),
                std::process::id()
            ),
        }))
    }

    /// Attaches the ledger (once; later calls are ignored).
    pub fn set_ledger(&self, ledger: Ledger) {
        let _ = self.ledger.set(ledger);
    }

    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.get()
    }

    /// Fits keys, budgets and rate limits to the current config: started (once, on the
    /// ledger's database) when it checks credentials, since with `skip_auth: true` no key is
    /// looked at and a key cache would poll the database every second for nothing; then told
    /// the config (see [`crate::govern::Governance::follow`]). Called once the ledger is set
    /// and after every swap.
    pub fn govern_current(&self) {
        let snapshot = self.snapshot();
        if self.governance.get().is_none() && !snapshot.config.server.skip_auth {
            if let Some(ledger) = self.ledger() {
                let _ = self
                    .governance
                    .set(crate::govern::Governance::start(ledger.url()));
            }
        }
        if let Some(g) = self.governance() {
            g.follow(&snapshot.config);
        }
    }

    pub fn governance(&self) -> Option<&crate::govern::Governance> {
        self.governance.get()
    }

    /// A new request id, unique across processes and restarts: the process's start time and
    /// pid, then a counter (`req_18f3a…-1f`).
    pub fn request_id(&self) -> String {
        let n = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        format!("req_{}-{n:x}", self.id_stem)
    }

    /// The current snapshot. A request takes it once and keeps it.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// `server.keepalive_secs` of the current configuration (read without taking a reference
    /// to the snapshot: asked once per idle wait of a client connection).
    pub fn keepalive_secs(&self) -> u64 {
        self.snapshot.load().config.server.keepalive_secs
    }

    /// Replaces the configuration for every request that starts from now on; requests in
    /// flight finish on the snapshot they started with. Returns the new generation. A config
    /// whose trust roots cannot be read is refused and the running one stays.
    pub fn swap(&self, config: Config) -> Result<u64, String> {
        self.upstream.load_cas(&config)?;
        let generation = self.generations.load(Ordering::Acquire) + 1;
        let snapshot = Snapshot::after(config, generation, Some(&self.snapshot.load()))?;
        self.generations.store(generation, Ordering::Release);
        self.balancer.reconfigure(&snapshot.config);
        self.snapshot.store(Arc::new(snapshot));
        self.govern_current();
        self.changed.send_replace(generation);
        Ok(generation)
    }

    /// A receiver that sees every swap (for background services that follow the config).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Requests currently being handled (graceful shutdown waits for this to reach zero).
    pub fn inflight(&self) -> usize {
        self.inflight.load(Ordering::Acquire)
    }

    /// Requests finished since the process started.
    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
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
        self.0.served.fetch_add(1, Ordering::Relaxed);
        self.0.metrics.inflight.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::MapEnv;

    fn config(yaml: &str) -> Config {
        bitrouter_config::load_str(yaml, "bitrouter.yaml", &MapEnv::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_request_keeps_the_snapshot_it_started_with() {
        let state = AppState::new(config(
            "providers:\n  a:\n    api_base: http://127.0.0.1:1/v1\n    models: [m1]\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let before = state.snapshot();
        let changes = state.subscribe();
        let generation = state
            .swap(config(
                "providers:\n  b:\n    api_base: http://127.0.0.1:2/v1\n    models: [m2]\n",
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(generation, 2);
        assert!(changes.has_changed().unwrap_or(false));
        // The old holder still routes by the old table; new loads see the new one.
        assert!(before.table.resolve("m1").is_ok());
        assert!(before.table.resolve("m2").is_err());
        let after = state.snapshot();
        assert_eq!(after.generation, 2);
        assert!(after.table.resolve("m2").is_ok());
        assert!(after.table.resolve("m1").is_err());
    }

    #[test]
    fn a_config_whose_trust_roots_cannot_be_read_is_refused_and_the_old_one_stays() {
        let state = AppState::new(config(
            "providers:\n  a:\n    api_base: http://127.0.0.1:1/v1\n    models: [m1]\n",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let bad = config(
            "providers:\n  b:\n    api_base: https://127.0.0.1:2/v1\n    ca_file: /nonexistent/ca.pem\n    models: [m2]\n",
        );
        let err = state.swap(bad).err().unwrap_or_default();
        assert!(err.contains("ca_file"), "{err}");
        let current = state.snapshot();
        assert_eq!(current.generation, 1);
        assert!(current.table.resolve("m1").is_ok());
    }
}
