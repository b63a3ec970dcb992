//! Where a request goes, given what we have seen: strategies over a virtual model's endpoints,
//! account rotation within a provider, and the passive and active health that moves failing
//! targets to the back of the line.
//!
//! All mutable state sits behind one short-held lock (a few hash lookups per request, never
//! held across an await).
//!
//! State keyed by what a client sends (any `provider/<anything>` model id) is bounded: entries
//! for configured endpoints and virtual models live forever, the others expire when idle and
//! are capped in number ([`bounded`]).

pub mod affinity;
pub mod bounded;
pub mod checks;
pub mod health;
pub mod replicas;
pub mod ring;
pub mod select;

use arc_swap::ArcSwap;
use bitrouter_config::{
    AccountStrategy, Config, HealthPolicy, Provider, Resolution, ResolvedVia, Target, Timeouts,
};
use bounded::{Bounded, EndpointKey, EndpointRef};
use hashbrown::{HashMap, HashSet};
use health::{Availability, TargetHealth};
use select::{Inputs, Rng, SmoothWeighted, XorShift};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared routing state.
pub struct Balancer {
    /// What the configuration decides; replaced by [`Balancer::reconfigure`] when the snapshot
    /// is swapped, while the health and counters in `inner` carry over.
    settings: ArcSwap<Settings>,
    inner: Mutex<Inner>,
}

/// The configuration-derived part of the balancer.
struct Settings {
    policy: HealthPolicy,
    /// Providers with an active health check -> the check's last verdict (true: down).
    checks_down: HashMap<String, AtomicBool>,
    /// Configured endpoints (virtual model endpoints and every provider's `models`): their
    /// state is kept forever; any other endpoint's expires.
    configured: HashSet<EndpointKey>,
}

impl Settings {
    fn new(config: &Config, previous: Option<&Settings>) -> Settings {
        let checks_down = config
            .providers
            .iter()
            .filter(|p| p.health_check.is_some())
            .map(|p| {
                // A provider that keeps its check keeps its last verdict.
                let down = previous
                    .and_then(|s| s.checks_down.get(p.id.as_str()))
                    .is_some_and(|d| d.load(Ordering::Relaxed));
                (p.id.clone(), AtomicBool::new(down))
            })
            .collect();
        let mut configured = HashSet::new();
        for ep in config.models.values().flat_map(|vm| vm.endpoints.iter()) {
            configured.insert(EndpointKey {
                provider: ep.provider.clone(),
                service: ep.service_id.clone(),
            });
        }
        for p in &config.providers {
            for m in &p.models {
                configured.insert(EndpointKey {
                    provider: p.id.clone(),
                    service: m.clone(),
                });
            }
        }
        Settings {
            policy: config.upstream.health,
            checks_down,
            configured,
        }
    }
}

#[derive(Default)]
struct Inner {
    /// Endpoint (provider, service id) -> health.
    endpoints: Bounded<EndpointKey, TargetHealth>,
    /// Provider -> account index -> health (providers and accounts come from the config).
    accounts: HashMap<String, HashMap<usize, TargetHealth>>,
    /// Virtual model (or, for another multi-target route, the requested name) -> strategy state.
    routes: Bounded<String, RouteState>,
    /// Provider -> requests routed so far (account balance).
    account_counters: HashMap<String, u64>,
    rng: Option<XorShift>,
}

/// What a strategy keeps between requests for one routed name.
#[derive(Default)]
struct RouteState {
    /// Requests routed so far (round-robin).
    counter: u64,
    weighted: SmoothWeighted,
}

fn endpoint_ref(target: &Target) -> EndpointRef<'_> {
    EndpointRef(&target.provider.id, &target.service_id)
}

impl Inner {
    fn endpoint(&self, target: &Target) -> Option<&TargetHealth> {
        self.endpoints.get(&endpoint_ref(target))
    }

    fn endpoint_mut(
        &mut self,
        target: &Target,
        now: Instant,
        configured: &HashSet<EndpointKey>,
    ) -> &mut TargetHealth {
        let key = endpoint_ref(target);
        self.endpoints.slot(&key, now, || configured.contains(&key))
    }

    fn account(&self, provider: &Provider, index: usize) -> Option<&TargetHealth> {
        self.accounts.get(provider.id.as_str())?.get(&index)
    }

    fn account_mut(&mut self, provider: &Provider, index: usize) -> &mut TargetHealth {
        slot(&mut self.accounts, &provider.id)
            .entry(index)
            .or_default()
    }
}

/// `map[key]`, inserted with a default when missing; the key is copied only then (hashbrown's
/// `entry_ref`: std's `entry` wants an owned `String` on every lookup).
fn slot<'m, V: Default>(map: &'m mut HashMap<String, V>, key: &str) -> &'m mut V {
    map.entry_ref(key).or_default()
}

/// How long a half-open target's probe permit lasts when its holder never reports (a client
/// that went away before the answer): as long as the attempt may wait for its response to start
/// (`first_byte_secs`, or `total_secs` when shorter; without either, `connect_secs +
/// read_secs`). After that the next request probes.
pub fn probe_window(t: &Timeouts) -> Duration {
    let start = t.first_byte.unwrap_or(t.connect.saturating_add(t.read));
    t.total.map_or(start, |total| start.min(total))
}

impl Balancer {
    pub fn new(config: &Config) -> Balancer {
        Balancer {
            settings: ArcSwap::from_pointee(Settings::new(config, None)),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Follows a new configuration: its health policy, its active checks (a provider that keeps
    /// its check keeps its last verdict) and its configured endpoints. Passive health and
    /// counters carry over: they are keyed by provider and model id. An entry pinned as
    /// configured before stays pinned until the process restarts.
    pub fn reconfigure(&self, config: &Config) {
        let previous = self.settings.load();
        self.settings
            .store(Arc::new(Settings::new(config, Some(&previous))));
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_down(&self, provider: &str) -> bool {
        self.settings
            .load()
            .checks_down
            .get(provider)
            .is_some_and(|d| d.load(Ordering::Relaxed))
    }

    /// Records an active check's verdict for `provider`.
    pub fn set_check(&self, provider: &str, down: bool) {
        if let Some(flag) = self.settings.load().checks_down.get(provider) {
            let was = flag.swap(down, Ordering::Relaxed);
            if was != down {
                if down {
                    log::warn!("provider `{provider}` failed its health check; it is skipped while others are healthy");
                } else {
                    log::info!("provider `{provider}` passed its health check");
                }
            }
        }
    }

    /// The order in which to try `resolution`'s targets (indexes into `targets`). When the
    /// first target is half-open, this request holds its probe permit.
    pub fn order(&self, resolution: &Resolution, now: Instant) -> Vec<usize> {
        let targets = &resolution.targets;
        if targets.len() <= 1 {
            // Nothing to choose between: an unhealthy single target is still the only one.
            return (0..targets.len()).collect();
        }
        let mut inner = self.lock();
        let order = {
            let (name, pinned) = match &resolution.via {
                ResolvedVia::VirtualModel(name) => (name.as_str(), true),
                _ => (resolution.requested.as_str(), false),
            };
            let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
            let latencies: Vec<Option<f64>> = targets
                .iter()
                .map(|t| inner.endpoint(t).and_then(TargetHealth::ewma_ttfb))
                .collect();
            let Inner { routes, rng, .. } = &mut *inner;
            let rng = rng.get_or_insert_with(|| XorShift::new(seed()));
            let route = routes.slot(name, now, || pinned);
            let counter = route.counter;
            route.counter += 1;
            let inputs = Inputs {
                weights: &weights,
                latencies: &latencies,
                counter,
            };
            select::order(
                resolution.strategy,
                &inputs,
                &mut route.weighted,
                rng as &mut dyn Rng,
            )
        };
        let ranked = select::healthy_first(order, now, |i| {
            let t = &targets[i];
            if self.check_down(&t.provider.id) {
                return Availability::Unhealthy { until: None };
            }
            let own = inner
                .endpoint(t)
                .map_or(Availability::Healthy, |h| h.availability(now));
            if let Availability::Unhealthy { .. } = own {
                return own;
            }
            match accounts_availability(&inner, &t.provider, now) {
                Availability::Healthy => own,
                accounts => accounts,
            }
        });
        if let Some(i) = ranked.probe {
            let t = &targets[i];
            let window = probe_window(&t.provider.timeouts);
            if let Some(h) = inner.endpoints.get_mut(&endpoint_ref(t), now) {
                h.claim_probe(now, window);
            }
        }
        ranked.order
    }

    /// The order in which to try `provider`'s accounts. When the first is half-open, this
    /// request holds its probe permit.
    pub fn accounts(&self, provider: &Provider, now: Instant) -> Vec<usize> {
        let n = provider.accounts.len();
        if n <= 1 {
            return (0..n).collect();
        }
        let mut inner = self.lock();
        let order: Vec<usize> = match provider.account_strategy {
            AccountStrategy::Failover => (0..n).collect(),
            AccountStrategy::Balance => {
                // Cooled accounts are moved last below, so the healthy ones share the load.
                let start = {
                    let c = slot(&mut inner.account_counters, &provider.id);
                    *c += 1;
                    ((*c - 1) % n as u64) as usize
                };
                (0..n).map(|k| (start + k) % n).collect()
            }
        };
        let ranked = select::healthy_first(order, now, |i| {
            inner
                .account(provider, i)
                .map_or(Availability::Healthy, |h| h.availability(now))
        });
        if let Some(i) = ranked.probe {
            if let Some(h) = inner
                .accounts
                .get_mut(provider.id.as_str())
                .and_then(|a| a.get_mut(&i))
            {
                h.claim_probe(now, probe_window(&provider.timeouts));
            }
        }
        ranked.order
    }

    /// A successful exchange through `target` with account `account`.
    pub fn success(&self, target: &Target, account: usize, ttfb: Option<Duration>) {
        self.success_at(target, account, ttfb, Instant::now());
    }

    /// [`success`](Self::success) at `now` (tests drive the clock).
    pub fn success_at(
        &self,
        target: &Target,
        account: usize,
        ttfb: Option<Duration>,
        now: Instant,
    ) {
        let settings = self.settings.load();
        let mut inner = self.lock();
        inner
            .endpoint_mut(target, now, &settings.configured)
            .on_success(ttfb);
        if let Some(h) = inner
            .accounts
            .get_mut(target.provider.id.as_str())
            .and_then(|a| a.get_mut(&account))
        {
            h.on_success(None);
        }
    }

    /// A failure of the endpoint itself (connection, timeout, 5xx).
    pub fn endpoint_failure(&self, target: &Target, now: Instant) {
        let settings = self.settings.load();
        self.lock()
            .endpoint_mut(target, now, &settings.configured)
            .on_failure(now, &settings.policy);
    }

    /// A failure of one account (401/403/429).
    pub fn account_failure(&self, provider: &Provider, account: usize, now: Instant) {
        self.lock()
            .account_mut(provider, account)
            .on_failure(now, &self.settings.load().policy);
    }

    /// Cools an account for a `retry-after`.
    pub fn cool_account(&self, provider: &Provider, account: usize, now: Instant, d: Duration) {
        self.lock()
            .account_mut(provider, account)
            .cool(now, d, &self.settings.load().policy);
    }

    /// Cools an endpoint for a `retry-after`.
    pub fn cool_endpoint(&self, target: &Target, now: Instant, d: Duration) {
        let settings = self.settings.load();
        self.lock()
            .endpoint_mut(target, now, &settings.configured)
            .cool(now, d, &settings.policy);
    }

    /// Live health of every endpoint and account seen so far, for `GET /health/upstreams`
    /// and `bitrouter route`.
    pub fn snapshot(&self, config: &Config, now: Instant) -> serde_json::Value {
        let inner = self.lock();
        // Every virtual model endpoint (measured or not), then any other endpoint used recently
        // (the configured ones, and at most `bounded::MAX_TRANSIENT` others).
        let mut keys: Vec<(&str, &str)> = config
            .models
            .values()
            .flat_map(|vm| vm.endpoints.iter())
            .map(|ep| (ep.provider.as_str(), ep.service_id.as_str()))
            .collect();
        keys.extend(
            inner
                .endpoints
                .live(now)
                .map(|(k, _)| (k.provider.as_str(), k.service.as_str())),
        );
        keys.sort();
        keys.dedup();
        let endpoints: Vec<_> = keys
            .iter()
            .map(|&(provider, model)| {
                let mut v = inner
                    .endpoints
                    .get(&EndpointRef(provider, model))
                    .map(|h| h.to_json(now))
                    .unwrap_or_else(|| TargetHealth::default().to_json(now));
                v["provider"] = provider.into();
                v["model"] = model.into();
                if self.check_down(provider) {
                    v["healthy"] = false.into();
                    v["check_down"] = true.into();
                }
                v
            })
            .collect();
        let providers: Vec<_> = config
            .providers
            .iter()
            .map(|p| {
                let accounts: Vec<_> = p
                    .accounts
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        let mut v = inner
                            .account(p, i)
                            .map(|h| h.to_json(now))
                            .unwrap_or_else(|| TargetHealth::default().to_json(now));
                        v["label"] = a.label.clone().into();
                        v
                    })
                    .collect();
                serde_json::json!({
                    "provider": p.id,
                    "health_check": p.health_check.as_ref().map(|c| c.kind.as_str()),
                    "check_down": self.check_down(&p.id),
                    "account_strategy": p.account_strategy.as_str(),
                    "accounts": accounts,
                })
            })
            .collect();
        serde_json::json!({"providers": providers, "endpoints": endpoints})
    }
}

/// Unhealthy when every account of `provider` is cooled, ejected or being probed (until the
/// first recovers). An account whose probe permit is free counts as healthy here: the request
/// that reaches the provider claims it in [`Balancer::accounts`].
fn accounts_availability(inner: &Inner, provider: &Provider, now: Instant) -> Availability {
    if provider.accounts.is_empty() {
        return Availability::Healthy;
    }
    let mut until: Option<Instant> = None;
    for i in 0..provider.accounts.len() {
        match inner
            .account(provider, i)
            .map_or(Availability::Healthy, |h| h.availability(now))
        {
            Availability::Healthy | Availability::Probe => return Availability::Healthy,
            Availability::Unhealthy { until: u } => {
                until = match (until, u) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    Availability::Unhealthy { until }
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0x9e37_79b9, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{load_str, MapEnv, RoutingTable};

    /// Two providers behind a priority virtual model `vm`; `multi` has two accounts.
    /// Ejected after 2 failures for 10 s; probes last `first_byte_secs` (5 s).
    const YAML: &str = "
upstream:
  health: { failure_threshold: 2, eject_secs: 10, max_eject_secs: 100 }
providers:
  a:
    api_base: http://127.0.0.1:9/v1
    api_key: ka
    models: [a-m]
    timeouts: { first_byte_secs: 5 }
  b:
    api_base: http://127.0.0.1:9/v1
    api_key: kb
    models: [b-m]
  multi:
    api_base: http://127.0.0.1:9/v1
    accounts:
      - { label: one, api_key: k1 }
      - { label: two, api_key: k2 }
    account_strategy: failover
    models: [multi-m]
    timeouts: { first_byte_secs: 5 }
models:
  vm:
    strategy: priority
    endpoints:
      - { provider: a, service_id: a-m }
      - { provider: b, service_id: b-m }
";

    fn setup() -> (Balancer, RoutingTable, Config) {
        let config = match load_str(
            YAML,
            "test.yaml",
            &MapEnv::new(Vec::<(String, String)>::new()),
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        (Balancer::new(&config), RoutingTable::new(&config), config)
    }

    fn resolve(table: &RoutingTable, model: &str) -> Resolution {
        table.resolve(model).unwrap()
    }

    #[test]
    fn an_expired_ejection_admits_one_probe_until_it_reports() {
        let (b, table, _) = setup();
        let vm = resolve(&table, "vm");
        let a = &vm.targets[0];
        let t0 = Instant::now();
        b.endpoint_failure(a, t0);
        b.endpoint_failure(a, t0);
        assert_eq!(b.order(&vm, t0), vec![1, 0], "ejected: tried last");
        let t1 = t0 + Duration::from_secs(10);
        // The first request after the ejection holds the probe; every other one goes to `b`.
        assert_eq!(b.order(&vm, t1), vec![0, 1], "the probe");
        for k in 1..5 {
            let now = t1 + Duration::from_secs(k);
            assert_eq!(
                b.order(&vm, now),
                vec![1, 0],
                "while the probe is out ({k} s)"
            );
        }
        // The probe succeeds: back to normal for everyone.
        let t2 = t1 + Duration::from_secs(4);
        b.success_at(a, 0, None, t2);
        assert_eq!(b.order(&vm, t2), vec![0, 1]);
        assert_eq!(b.order(&vm, t2), vec![0, 1]);
    }

    #[test]
    fn a_failed_probe_re_ejects_and_an_abandoned_one_lapses() {
        let (b, table, _) = setup();
        let vm = resolve(&table, "vm");
        let a = &vm.targets[0];
        let t0 = Instant::now();
        b.endpoint_failure(a, t0);
        b.endpoint_failure(a, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.order(&vm, t1), vec![0, 1]);
        // The probe fails: ejected for 20 s this time.
        b.endpoint_failure(a, t1);
        assert_eq!(b.order(&vm, t1 + Duration::from_secs(19)), vec![1, 0]);
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.order(&vm, t2), vec![0, 1], "the next probe");
        // That probe never reports: after `first_byte_secs` (5 s) the permit lapses.
        assert_eq!(b.order(&vm, t2 + Duration::from_millis(4999)), vec![1, 0]);
        let t3 = t2 + Duration::from_secs(5);
        assert_eq!(b.order(&vm, t3), vec![0, 1], "a new probe");
        assert_eq!(b.order(&vm, t3), vec![1, 0], "and only one");
    }

    #[test]
    fn accounts_are_probed_one_request_at_a_time() {
        let (b, table, config) = setup();
        let multi = resolve(&table, "multi/multi-m");
        let p = &multi.targets[0].provider;
        let t0 = Instant::now();
        b.account_failure(p, 0, t0);
        b.account_failure(p, 0, t0);
        assert_eq!(b.accounts(p, t0), vec![1, 0]);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.accounts(p, t1), vec![0, 1], "the probe");
        assert_eq!(b.accounts(p, t1), vec![1, 0], "the others");
        assert_eq!(
            b.snapshot(&config, t1)["providers"][2]["accounts"][0]["probe_in_flight"],
            true
        );
        b.success_at(&multi.targets[0], 0, None, t1);
        assert_eq!(b.accounts(p, t1), vec![0, 1]);
        assert_eq!(b.accounts(p, t1), vec![0, 1]);
    }

    #[test]
    fn probe_windows_follow_the_timeouts() {
        let mut t = Timeouts::default();
        assert_eq!(probe_window(&t), Duration::from_secs(130));
        t.total = Some(Duration::from_secs(60));
        assert_eq!(probe_window(&t), Duration::from_secs(60));
        t.first_byte = Some(Duration::from_secs(20));
        assert_eq!(probe_window(&t), Duration::from_secs(20));
    }

    #[test]
    fn unconfigured_endpoints_expire_and_are_capped() {
        let (b, table, config) = setup();
        let t0 = Instant::now();
        let configured = resolve(&table, "a/a-m");
        b.success_at(&configured.targets[0], 0, None, t0);
        let n = 3 * bounded::MAX_TRANSIENT;
        for i in 0..n {
            let r = resolve(&table, &format!("a/random-{i}"));
            b.success_at(&r.targets[0], 0, None, t0 + Duration::from_millis(i as u64));
        }
        let now = t0 + Duration::from_millis(n as u64);
        let rows = |now| {
            let snap = b.snapshot(&config, now);
            snap["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["model"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        let listed = rows(now);
        let random = listed.iter().filter(|m| m.starts_with("random-")).count();
        assert!(
            random <= bounded::MAX_TRANSIENT,
            "{random} unconfigured rows"
        );
        assert!(random > 0);
        assert!(listed.iter().any(|m| m == "a-m"), "configured rows stay");
        assert!(b.lock().endpoints.transient() <= bounded::MAX_TRANSIENT);
        // Ten idle minutes later only the configured endpoints are listed.
        let later = now + bounded::IDLE_EXPIRY;
        let listed = rows(later);
        assert!(
            !listed.iter().any(|m| m.starts_with("random-")),
            "{listed:?}"
        );
        assert!(listed.iter().any(|m| m == "a-m"), "configured rows stay");
        // A configured endpoint used long ago keeps its history.
        let snap = b.snapshot(&config, later);
        let a_m = snap["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["model"] == "a-m")
            .cloned()
            .unwrap_or_default();
        assert_eq!(a_m["successes"], 1);
    }
}
