//! Replica pools: the replicas of a provider whose `api_base` is a list of URLs, each with its
//! own requests in flight and its own health, and the choice of one replica per attempt by the
//! provider's `replica_strategy`.
//!
//! - `least_requests` (default): the usable replica with the fewest requests in flight from
//!   this router, ties taken in turn. LLM requests differ a thousandfold in length, so taking
//!   turns (round robin) queues short requests behind long ones; counting what is in flight
//!   does not.
//! - `round_robin`: each usable replica in turn.
//! - `affinity`: the request's [affinity key](super::affinity) on a consistent-hash ring with
//!   bounded load ([`super::ring`]); a request with no key is placed by least requests.
//!
//! Turns come from Pingora's `RoundRobin` selection counter. Pingora's `LoadBalancer` and
//! `Backends` are not used as the pool itself: they have neither least-requests nor a bounded
//! load, their health is the active check's alone (a replica here is also ejected by the
//! failures requests see, with the same half-open probing as every other endpoint:
//! [`TargetHealth`]), and their backends are socket addresses, while a replica is a URL whose
//! addresses come from the upstream client's DNS cache. The active checks themselves are
//! Pingora's ([`super::checks`]), run per replica.
//!
//! A replica's state (in flight, health) is keyed by provider id and replica URL and carried
//! over a reload, so a reload keeps what it knows about replicas that still exist.

use super::health::{Availability, TargetHealth};
use super::ring::Ring;
use bitrouter_config::replicas::MAX_REPLICAS;
use bitrouter_config::{Config, HealthPolicy, Origin, Provider, ReplicaStrategy};
use pingora_load_balancing::selection::algorithms::RoundRobin;
use pingora_load_balancing::selection::SelectionAlgorithm;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Every pool of one configuration, by provider id (only providers with replicas).
#[derive(Default)]
pub struct Pools {
    by_provider: HashMap<String, Arc<ReplicaPool>>,
}

impl Pools {
    /// The pools of `config`; replicas that exist in `previous` (same provider id and URL) keep
    /// their state.
    pub fn new(config: &Config, previous: Option<&Pools>) -> Pools {
        let mut by_provider = HashMap::new();
        for p in config.providers.iter().filter(|p| !p.replicas.is_empty()) {
            let old = previous.and_then(|prev| prev.by_provider.get(p.id.as_str()));
            let pool = ReplicaPool::new(p, config.upstream.health, old.map(|o| o.as_ref()));
            by_provider.insert(p.id.clone(), Arc::new(pool));
        }
        Pools { by_provider }
    }

    /// The pool of `provider`, when it has replicas. A single-URL provider costs one
    /// `is_empty` check.
    #[inline]
    pub fn get(&self, provider: &Provider) -> Option<&Arc<ReplicaPool>> {
        if provider.replicas.is_empty() {
            return None;
        }
        self.by_provider.get(provider.id.as_str())
    }

    /// The pool of the provider with this id.
    pub fn by_id(&self, provider: &str) -> Option<&Arc<ReplicaPool>> {
        self.by_provider.get(provider)
    }
}

/// The replicas of one provider.
pub struct ReplicaPool {
    strategy: ReplicaStrategy,
    replicas: Box<[Replica]>,
    /// For `affinity` only.
    ring: Option<Ring>,
    turns: RoundRobin,
    policy: HealthPolicy,
    /// How long a half-open replica's probe permit lasts (the attempt's first-byte window).
    probe_window: Duration,
}

/// One replica: its name, where it is, the provider as seen through it, and its live state.
pub struct Replica {
    label: Arc<str>,
    url: String,
    origin: Arc<Origin>,
    /// `None` in a pool built from bare URLs ([`ReplicaPool::from_replicas`]).
    provider: Option<Arc<Provider>>,
    state: Arc<ReplicaState>,
}

/// What is known about a replica at run time; survives reloads.
#[derive(Default)]
struct ReplicaState {
    in_flight: AtomicUsize,
    health: Mutex<TargetHealth>,
}

impl ReplicaState {
    fn health(&self) -> MutexGuard<'_, TargetHealth> {
        // A panic while holding the lock leaves counters at worst slightly off.
        self.health.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A replica chosen for one attempt. Holds one unit of the replica's in-flight count until
/// dropped; report the attempt's outcome with [`success`](Self::success) or
/// [`failure`](Self::failure).
pub struct ReplicaGuard {
    index: usize,
    label: Arc<str>,
    origin: Arc<Origin>,
    provider: Option<Arc<Provider>>,
    state: Arc<ReplicaState>,
    policy: HealthPolicy,
}

impl ReplicaGuard {
    /// The replica's position in the provider's `api_base` list.
    pub fn index(&self) -> usize {
        self.index
    }

    /// `host:port` of the replica (logs, metrics).
    pub fn label(&self) -> &Arc<str> {
        &self.label
    }

    /// The replica's scheme, host and port (to build a peer).
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The provider as seen through this replica: `api_base`, `origin` (hence the `Host`
    /// header, SNI and connection pool) are the replica's; `replicas` is empty; everything
    /// else (id, keys, models, timeouts) is the provider's. `None` for a pool built from bare
    /// URLs ([`ReplicaPool::from_replicas`]).
    pub fn provider(&self) -> Option<&Arc<Provider>> {
        self.provider.as_ref()
    }

    /// The replica answered: it is healthy (a half-open replica is restored).
    pub fn success(&self) {
        self.state.health().on_success(None);
    }

    /// The replica answered 503 with a `retry-after`: it takes no request for that long (capped
    /// by `upstream.health.max_cooldown_secs`).
    pub fn cool(&self, retry_after: Duration) {
        self.state
            .health()
            .cool(Instant::now(), retry_after, &self.policy);
    }

    /// The replica failed (connection, timeout, 5xx): after `upstream.health.failure_threshold`
    /// failures in a row it is ejected for `eject_secs`, then probed by one request.
    pub fn failure(&self) {
        self.state.health().on_failure(Instant::now(), &self.policy);
    }
}

impl Drop for ReplicaGuard {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ReplicaPool {
    /// The pool of `provider`'s replicas (`provider.replicas`; empty gives an empty pool whose
    /// `pick` is always `None`), ejecting by `policy`; replicas with the same URL in `previous`
    /// keep their state (in flight, health).
    pub fn new(provider: &Provider, policy: HealthPolicy, previous: Option<&ReplicaPool>) -> Self {
        let mut pool = ReplicaPool::from_replicas(
            &provider.replicas,
            provider.replica_strategy,
            policy,
            super::probe_window(&provider.timeouts),
            previous,
        );
        for r in pool.replicas.iter_mut() {
            let mut seen = provider.clone();
            seen.api_base.clone_from(&r.url);
            seen.origin = Origin::clone(&r.origin);
            seen.replicas = Vec::new();
            r.provider = Some(Arc::new(seen));
        }
        pool
    }

    /// A pool over bare URLs (e.g. a plain reverse-proxy route's `upstream` list): the same
    /// strategies and health, no provider ([`ReplicaGuard::provider`] is `None`; use
    /// [`ReplicaGuard::origin`]). `probe_window`: how long a half-open replica's single probe
    /// request may take before another request may probe (see [`super::probe_window`]).
    /// Replicas past [`MAX_REPLICAS`] are left out.
    pub fn from_replicas(
        replicas: &[bitrouter_config::Replica],
        strategy: ReplicaStrategy,
        policy: HealthPolicy,
        probe_window: Duration,
        previous: Option<&ReplicaPool>,
    ) -> Self {
        let replicas: Box<[Replica]> = replicas
            .iter()
            .take(MAX_REPLICAS)
            .map(|r| {
                let state = previous
                    .and_then(|p| p.replicas.iter().find(|old| old.url == r.api_base))
                    .map_or_else(Arc::default, |old| old.state.clone());
                Replica {
                    label: r.label().into(),
                    url: r.api_base.clone(),
                    origin: Arc::new(r.origin.clone()),
                    provider: None,
                    state,
                }
            })
            .collect();
        let ring = (strategy == ReplicaStrategy::Affinity)
            .then(|| Ring::new(replicas.iter().map(|r| r.url.as_str())));
        ReplicaPool {
            strategy,
            replicas,
            ring,
            turns: RoundRobin::new(),
            policy,
            probe_window,
        }
    }

    /// How many replicas the pool has.
    pub fn len(&self) -> usize {
        self.replicas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.replicas.is_empty()
    }

    pub fn strategy(&self) -> ReplicaStrategy {
        self.strategy
    }

    /// A replica for a request with affinity `key` (used by `affinity` only; `None`: no key).
    pub fn pick(&self, key: Option<u64>) -> Option<ReplicaGuard> {
        self.pick_excluding(key, 0)
    }

    /// A replica not in `tried` (a bit mask of [`ReplicaGuard::index`]es this request already
    /// used). The strategy chooses among the usable replicas (healthy, or half-open with the
    /// probe permit free: this request then probes it); when none is usable, the untried one
    /// with the fewest requests in flight, so a pool whose health is stale still gets tried.
    /// `None` once every replica has been tried.
    pub fn pick_excluding(&self, key: Option<u64>, tried: u64) -> Option<ReplicaGuard> {
        let now = Instant::now();
        let n = self.replicas.len();
        let untried = |i: usize| i < 64 && tried & (1u64 << i) == 0;
        let mut usable = 0u64;
        for (i, r) in self.replicas.iter().enumerate() {
            if untried(i)
                && !matches!(
                    r.state.health().availability(now),
                    Availability::Unhealthy { .. }
                )
            {
                usable |= 1 << i;
            }
        }
        let load = |i: usize| self.replicas[i].state.in_flight.load(Ordering::Relaxed);
        let is_usable = |i: usize| usable & (1 << i) != 0;
        let start = (self.turns.next(&[]) % n.max(1) as u64) as usize;
        let in_turn = (0..n).map(|k| (start + k) % n);
        let chosen = match (self.strategy, key, &self.ring) {
            (ReplicaStrategy::RoundRobin, ..) => in_turn.clone().find(|&i| is_usable(i)),
            (ReplicaStrategy::Affinity, Some(key), Some(ring)) => ring.pick(key, is_usable, load),
            _ => in_turn
                .clone()
                .filter(|&i| is_usable(i))
                .min_by_key(|&i| load(i)),
        };
        let index = chosen.or_else(|| in_turn.filter(|&i| untried(i)).min_by_key(|&i| load(i)))?;
        let r = &self.replicas[index];
        {
            let mut h = r.state.health();
            if h.availability(now) == Availability::Probe {
                h.claim_probe(now, self.probe_window);
            }
        }
        r.state.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(ReplicaGuard {
            index,
            label: r.label.clone(),
            origin: r.origin.clone(),
            provider: r.provider.clone(),
            state: r.state.clone(),
            policy: self.policy,
        })
    }

    /// Whether some replica not in `tried` is usable now (worth failing over to before the
    /// next target).
    pub fn has_usable(&self, tried: u64) -> bool {
        let now = Instant::now();
        self.replicas.iter().enumerate().any(|(i, r)| {
            i < 64
                && tried & (1u64 << i) == 0
                && !matches!(
                    r.state.health().availability(now),
                    Availability::Unhealthy { .. }
                )
        })
    }

    /// The provider as seen through each replica, with its index (for per-replica probes).
    pub fn replicas(&self) -> impl Iterator<Item = (usize, &Arc<Provider>)> {
        self.replicas
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, r.provider.as_ref()?)))
    }

    /// Records an active check's verdict for replica `index`. A pass also ends a passive
    /// ejection: the replica has just answered a probe, so it takes requests (and its sessions)
    /// again at once.
    pub fn set_check(&self, index: usize, passed: bool) {
        let Some(r) = self.replicas.get(index) else {
            return;
        };
        let mut h = r.state.health();
        let was_usable = !matches!(
            h.availability(Instant::now()),
            Availability::Unhealthy { .. }
        );
        if passed {
            h.check_passed();
        } else {
            h.check_down = true;
        }
        if was_usable != passed {
            if passed {
                log::info!("replica {} passed its health check", r.label);
            } else {
                log::warn!("replica {} failed its health check", r.label);
            }
        }
    }

    /// Whether every replica failed its last active check.
    pub fn all_checks_down(&self) -> bool {
        self.replicas.iter().all(|r| r.state.health().check_down)
    }

    /// The replicas' state for `GET /health/upstreams`.
    pub fn to_json(&self, now: Instant) -> serde_json::Value {
        let replicas: Vec<_> = self
            .replicas
            .iter()
            .map(|r| {
                let mut v = r.state.health().to_json(now);
                v["replica"] = r.label.as_ref().into();
                v["api_base"] = r.url.clone().into();
                v["in_flight"] = r.state.in_flight.load(Ordering::Relaxed).into();
                v
            })
            .collect();
        serde_json::json!({
            "strategy": self.strategy.as_str(),
            "replicas": replicas,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{load_str, MapEnv};

    fn pools(strategy: &str, urls: &[&str]) -> (Config, Pools) {
        let yaml = format!(
            "upstream:\n  health: {{ failure_threshold: 1, eject_secs: 60 }}\nproviders:\n  p:\n    api_base: [{}]\n    replica_strategy: {strategy}\n    models: [m]\n",
            urls.join(", ")
        );
        let config = match load_str(
            &yaml,
            "t.yaml",
            &MapEnv::new(Vec::<(String, String)>::new()),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let pools = Pools::new(&config, None);
        (config, pools)
    }

    const THREE: [&str; 3] = [
        "http://10.0.0.1:8000/v1",
        "http://10.0.0.2:8000/v1",
        "http://10.0.0.3:8000/v1",
    ];

    #[test]
    fn least_requests_avoids_busy_replicas() {
        let (c, pools) = pools("least_requests", &THREE);
        let pool = pools.get(&c.providers[0]).unwrap();
        let a = pool.pick(None).unwrap();
        let b = pool.pick(None).unwrap();
        assert_ne!(a.index(), b.index());
        let third = pool.pick(None).unwrap();
        let busy = [a.index(), b.index()];
        assert!(!busy.contains(&third.index()));
        assert_eq!(
            third.provider().unwrap().origin.host,
            format!("10.0.0.{}", third.index() + 1)
        );
        assert!(third.provider().unwrap().replicas.is_empty());
        assert_eq!(third.origin(), &third.provider().unwrap().origin);
        drop(a);
        let again = pool.pick(None).unwrap();
        assert!(!busy[1..].contains(&again.index()) && again.index() != third.index());
    }

    #[test]
    fn round_robin_takes_turns_and_skips_ejected() {
        let (c, pools) = pools("round_robin", &THREE);
        let pool = pools.get(&c.providers[0]).unwrap();
        let order: Vec<usize> = (0..6).map(|_| pool.pick(None).unwrap().index()).collect();
        assert_eq!(order[..3], order[3..]);
        let mut first = order[..3].to_vec();
        first.sort_unstable();
        assert_eq!(first, vec![0, 1, 2]);
        pool.pick(None).unwrap();
        let g = pool.pick_excluding(None, 0b110).unwrap();
        assert_eq!(g.index(), 0);
        g.failure();
        for _ in 0..6 {
            assert_ne!(pool.pick(None).unwrap().index(), 0, "ejected");
        }
        assert!(pool.pick_excluding(None, 0b111).is_none());
        // Every usable one tried: the untried ejected one is still offered.
        assert_eq!(pool.pick_excluding(None, 0b110).unwrap().index(), 0);
        pool.set_check(0, true);
        assert!(pool.has_usable(0b110));
    }

    #[test]
    fn affinity_keeps_a_key_and_moves_it_while_its_replica_is_out() {
        let (c, pools) = pools("affinity", &THREE);
        let pool = pools.get(&c.providers[0]).unwrap();
        let home = pool.pick(Some(42)).unwrap().index();
        for _ in 0..10 {
            assert_eq!(pool.pick(Some(42)).unwrap().index(), home);
        }
        pool.pick(Some(42)).unwrap().failure();
        let away = pool.pick(Some(42)).unwrap().index();
        assert_ne!(away, home);
        pool.set_check(home, true);
        assert_eq!(
            pool.pick(Some(42)).unwrap().index(),
            home,
            "back after a probe"
        );
        pool.set_check(home, false);
        assert_eq!(pool.pick(Some(42)).unwrap().index(), away);
    }

    #[test]
    fn a_pool_of_bare_urls_has_no_provider_but_origins() {
        let (c, _) = pools("round_robin", &THREE);
        let pool = ReplicaPool::from_replicas(
            &c.providers[0].replicas,
            ReplicaStrategy::LeastRequests,
            c.upstream.health,
            Duration::from_secs(5),
            None,
        );
        let g = pool.pick(None).unwrap();
        assert!(g.provider().is_none());
        assert_eq!(g.origin().port, 8000);
        assert_eq!(pool.replicas().count(), 0, "nothing for provider probes");
        let busy = g.index();
        assert_ne!(pool.pick(None).unwrap().index(), busy);
        drop(g);
        assert_eq!(
            pool.to_json(Instant::now())["replicas"][busy]["in_flight"],
            0
        );
    }

    #[test]
    fn a_reload_keeps_the_state_of_replicas_that_remain() {
        let (c, first) = pools("round_robin", &THREE);
        first
            .get(&c.providers[0])
            .unwrap()
            .pick_excluding(None, 0b110)
            .unwrap()
            .failure();
        let (c2, _) = pools("round_robin", &[THREE[0], THREE[2]]);
        let second = Pools::new(&c2, Some(&first));
        let pool = second.get(&c2.providers[0]).unwrap();
        let json = pool.to_json(Instant::now());
        assert_eq!(json["replicas"][0]["healthy"], false, "{json}");
        assert_eq!(json["replicas"][1]["healthy"], true);
        assert_eq!(json["replicas"][1]["replica"], "10.0.0.3:8000");
    }
}
