//! Where a request goes, given what we have seen: strategies over a virtual model's endpoints,
//! account rotation within a provider, and the passive and active health that moves failing
//! targets to the back of the line.
//!
//! All mutable state sits behind one short-held lock (a few hash lookups per request, never
//! held across an await).

pub mod checks;
pub mod health;
pub mod select;

use bitrouter_config::{
    AccountStrategy, Config, HealthPolicy, Provider, Resolution, ResolvedVia, Target,
};
use hashbrown::HashMap;
use health::{Availability, TargetHealth};
use select::{Inputs, Rng, SmoothWeighted, XorShift};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Shared routing state.
pub struct Balancer {
    policy: HealthPolicy,
    inner: Mutex<Inner>,
    /// Providers with an active health check -> the check's last verdict (true: down).
    checks_down: HashMap<String, AtomicBool>,
}

/// Keyed by provider, then by what is inside it, so that lookups on the request path borrow the
/// ids they already have instead of formatting a combined key.
#[derive(Default)]
struct Inner {
    /// Provider -> service id -> health.
    endpoints: HashMap<String, HashMap<String, TargetHealth>>,
    /// Provider -> account index -> health.
    accounts: HashMap<String, HashMap<usize, TargetHealth>>,
    /// Virtual model -> requests routed so far (round-robin).
    counters: HashMap<String, u64>,
    /// Provider -> requests routed so far (account balance).
    account_counters: HashMap<String, u64>,
    weighted: HashMap<String, SmoothWeighted>,
    rng: Option<XorShift>,
}

impl Inner {
    fn endpoint(&self, target: &Target) -> Option<&TargetHealth> {
        self.endpoints
            .get(target.provider.id.as_str())?
            .get(target.service_id.as_str())
    }

    fn endpoint_mut(&mut self, target: &Target) -> &mut TargetHealth {
        let services = slot(&mut self.endpoints, &target.provider.id);
        slot(services, &target.service_id)
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

impl Balancer {
    pub fn new(config: &Config) -> Balancer {
        let checks_down = config
            .providers
            .iter()
            .filter(|p| p.health_check.is_some())
            .map(|p| (p.id.clone(), AtomicBool::new(false)))
            .collect();
        Balancer {
            policy: config.upstream.health,
            inner: Mutex::new(Inner::default()),
            checks_down,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a harmful way.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_down(&self, provider: &str) -> bool {
        self.checks_down
            .get(provider)
            .is_some_and(|d| d.load(Ordering::Relaxed))
    }

    /// Records an active check's verdict for `provider`.
    pub fn set_check(&self, provider: &str, down: bool) {
        if let Some(flag) = self.checks_down.get(provider) {
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

    /// The order in which to try `resolution`'s targets (indexes into `targets`).
    pub fn order(&self, resolution: &Resolution, now: Instant) -> Vec<usize> {
        let targets = &resolution.targets;
        if targets.len() <= 1 {
            // Nothing to choose between: an unhealthy single target is still the only one.
            return (0..targets.len()).collect();
        }
        let mut inner = self.lock();
        let order = {
            let name = match &resolution.via {
                ResolvedVia::VirtualModel(name) => name.as_str(),
                _ => resolution.requested.as_str(),
            };
            let counter = {
                let c = slot(&mut inner.counters, name);
                *c += 1;
                *c - 1
            };
            let weights: Vec<u32> = targets.iter().map(|t| t.weight).collect();
            let latencies: Vec<Option<f64>> = targets
                .iter()
                .map(|t| inner.endpoint(t).and_then(TargetHealth::ewma_ttfb))
                .collect();
            let Inner { weighted, rng, .. } = &mut *inner;
            let rng = rng.get_or_insert_with(|| XorShift::new(seed()));
            let weighted = slot(weighted, name);
            let inputs = Inputs {
                weights: &weights,
                latencies: &latencies,
                counter,
            };
            select::order(resolution.strategy, &inputs, weighted, rng as &mut dyn Rng)
        };
        select::healthy_first(order, now, |i| {
            let t = &targets[i];
            if self.check_down(&t.provider.id) {
                return Availability::Unhealthy { until: None };
            }
            let own = inner
                .endpoint(t)
                .map_or(Availability::Healthy, |h| h.availability(now));
            if own != Availability::Healthy {
                return own;
            }
            accounts_availability(&inner, &t.provider, now)
        })
    }

    /// The order in which to try `provider`'s accounts.
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
        select::healthy_first(order, now, |i| {
            inner
                .account(provider, i)
                .map_or(Availability::Healthy, |h| h.availability(now))
        })
    }

    /// A successful exchange through `target` with account `account`.
    pub fn success(&self, target: &Target, account: usize, ttfb: Option<Duration>) {
        let mut inner = self.lock();
        inner.endpoint_mut(target).on_success(ttfb);
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
        self.lock()
            .endpoint_mut(target)
            .on_failure(now, &self.policy);
    }

    /// A failure of one account (401/403/429).
    pub fn account_failure(&self, provider: &Provider, account: usize, now: Instant) {
        self.lock()
            .account_mut(provider, account)
            .on_failure(now, &self.policy);
    }

    /// Cools an account for a `retry-after`.
    pub fn cool_account(&self, provider: &Provider, account: usize, now: Instant, d: Duration) {
        self.lock()
            .account_mut(provider, account)
            .cool(now, d, &self.policy);
    }

    /// Cools an endpoint for a `retry-after`.
    pub fn cool_endpoint(&self, target: &Target, now: Instant, d: Duration) {
        self.lock().endpoint_mut(target).cool(now, d, &self.policy);
    }

    /// Live health of every endpoint and account seen so far, for `GET /health/upstreams`
    /// and `bitrouter route`.
    pub fn snapshot(&self, config: &Config, now: Instant) -> serde_json::Value {
        let inner = self.lock();
        // Every virtual model endpoint (measured or not), then any other endpoint used so far.
        let mut keys: Vec<(&str, &str)> = config
            .models
            .values()
            .flat_map(|vm| vm.endpoints.iter())
            .map(|ep| (ep.provider.as_str(), ep.service_id.as_str()))
            .collect();
        keys.extend(
            inner
                .endpoints
                .iter()
                .flat_map(|(p, services)| services.keys().map(move |s| (p.as_str(), s.as_str()))),
        );
        keys.sort();
        keys.dedup();
        let endpoints: Vec<_> = keys
            .iter()
            .map(|&(provider, model)| {
                let mut v = inner
                    .endpoints
                    .get(provider)
                    .and_then(|services| services.get(model))
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

/// Unhealthy when every account of `provider` is cooled or ejected (until the first recovers).
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
            Availability::Healthy => return Availability::Healthy,
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
