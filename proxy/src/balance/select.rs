//! Strategies: the order in which a request tries a virtual model's endpoints. Pure functions
//! over the endpoint list plus the state they need (a counter, smooth-weighted state, observed
//! latencies, a random source), so every strategy is unit-tested deterministically.

use super::health::Availability;
use bitrouter_config::Strategy;
use std::time::Instant;

/// Share of `least_latency` requests that start at a random endpoint, so an endpoint that was
/// slow once gets measured again.
pub const EXPLORE_RATE: f64 = 0.1;

/// A source of randomness (injected in tests).
pub trait Rng {
    /// A uniformly distributed value.
    fn next_u64(&mut self) -> u64;

    /// A value in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// `true` with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// xorshift64*: fast, good enough to spread load; not for anything secret.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }
}

impl Rng for XorShift {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Smooth weighted round-robin (nginx's): deterministic, and spreads each weight evenly over
/// the cycle (weights 3,1 give a,a,b,a rather than a,a,a,b).
#[derive(Debug, Clone, Default)]
pub struct SmoothWeighted {
    current: Vec<i64>,
}

impl SmoothWeighted {
    /// The next index for `weights` (a weight of 0 counts as 1).
    pub fn pick(&mut self, weights: &[u32]) -> usize {
        if self.current.len() != weights.len() {
            self.current = vec![0; weights.len()];
        }
        let mut total = 0i64;
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            let w = i64::from((*w).max(1));
            total += w;
            self.current[i] += w;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        if let Some(c) = self.current.get_mut(best) {
            *c -= total;
        }
        best
    }
}

/// What a strategy may consult.
pub struct Inputs<'a> {
    /// Per endpoint.
    pub weights: &'a [u32],
    /// Per endpoint, the time-to-first-byte average in seconds.
    pub latencies: &'a [Option<f64>],
    /// Requests this virtual model has seen before this one.
    pub counter: u64,
}

/// The order to try endpoints in, before health is considered.
pub fn order(
    strategy: Strategy,
    inputs: &Inputs<'_>,
    weighted: &mut SmoothWeighted,
    rng: &mut dyn Rng,
) -> Vec<usize> {
    let n = inputs.weights.len();
    let declared = |first: usize| -> Vec<usize> {
        std::iter::once(first)
            .chain((0..n).filter(move |&i| i != first))
            .collect()
    };
    match strategy {
        _ if n <= 1 => (0..n).collect(),
        Strategy::Priority => (0..n).collect(),
        Strategy::RoundRobin => {
            let start = (inputs.counter % n as u64) as usize;
            (0..n).map(|k| (start + k) % n).collect()
        }
        Strategy::Weighted => declared(weighted.pick(inputs.weights)),
        Strategy::LeastLatency => {
            let mut by_latency: Vec<usize> = (0..n).collect();
            // Unmeasured endpoints first (they need a measurement), then fastest first.
            let key = |i: usize| inputs.latencies.get(i).copied().flatten().unwrap_or(-1.0);
            by_latency.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
            if rng.chance(EXPLORE_RATE) {
                let pick = rng.below(n);
                by_latency.retain(|&i| i != pick);
                by_latency.insert(0, pick);
            }
            by_latency
        }
    }
}

/// An order of targets after health, and the one whose probe permit the caller must claim.
#[derive(Debug, PartialEq, Eq)]
pub struct Ranked {
    pub order: Vec<usize>,
    /// A half-open target this request tries first: the caller claims its probe permit.
    pub probe: Option<usize>,
}

/// Healthy targets first (keeping `order`), then the unhealthy ones, soonest to recover first:
/// a request is never refused for health alone. A half-open target with a free probe permit
/// ([`Availability::Probe`]) counts as healthy only when it would be tried first (no healthy
/// target precedes it), so that the one request probing it really does try it; behind a
/// healthy target it waits with the unhealthy ones, due now.
pub fn healthy_first(
    order: Vec<usize>,
    now: Instant,
    availability: impl Fn(usize) -> Availability,
) -> Ranked {
    let mut healthy = Vec::with_capacity(order.len());
    let mut unhealthy = Vec::new();
    let mut probe = None;
    for i in order {
        match availability(i) {
            Availability::Healthy => healthy.push(i),
            Availability::Probe if healthy.is_empty() => {
                probe = Some(i);
                healthy.push(i);
            }
            Availability::Probe => unhealthy.push((Some(now), i)),
            Availability::Unhealthy { until } => unhealthy.push((until, i)),
        }
    }
    // `None` (failing an active check, no known end) sorts after every known recovery time.
    unhealthy.sort_by_key(|(until, _)| until.map_or((1, now), |u| (0, u)));
    healthy.extend(unhealthy.into_iter().map(|(_, i)| i));
    Ranked {
        order: healthy,
        probe,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Replays fixed values.
    struct Fixed(Vec<u64>, usize);
    impl Rng for Fixed {
        fn next_u64(&mut self) -> u64 {
            let v = self.0[self.1 % self.0.len()];
            self.1 += 1;
            v
        }
    }
    /// Never explores.
    fn never() -> Fixed {
        Fixed(vec![u64::MAX], 0)
    }

    fn run(strategy: Strategy, weights: &[u32], latencies: &[Option<f64>], n: u64) -> Vec<usize> {
        let mut w = SmoothWeighted::default();
        let mut rng = never();
        (0..n)
            .map(|counter| {
                let inputs = Inputs {
                    weights,
                    latencies,
                    counter,
                };
                order(strategy, &inputs, &mut w, &mut rng)[0]
            })
            .collect()
    }

    #[test]
    fn priority_keeps_declared_order() {
        let mut w = SmoothWeighted::default();
        let inputs = Inputs {
            weights: &[1, 1, 1],
            latencies: &[None; 3],
            counter: 7,
        };
        assert_eq!(
            order(Strategy::Priority, &inputs, &mut w, &mut never()),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn round_robin_rotates_and_keeps_the_rest_as_failover() {
        assert_eq!(
            run(Strategy::RoundRobin, &[1, 1, 1], &[None; 3], 6),
            vec![0, 1, 2, 0, 1, 2]
        );
        let mut w = SmoothWeighted::default();
        let inputs = Inputs {
            weights: &[1, 1, 1],
            latencies: &[None; 3],
            counter: 2,
        };
        assert_eq!(
            order(Strategy::RoundRobin, &inputs, &mut w, &mut never()),
            vec![2, 0, 1]
        );
    }

    #[test]
    fn weighted_is_smooth_and_exact() {
        let starts = run(Strategy::Weighted, &[3, 1], &[None; 2], 8);
        assert_eq!(starts, vec![0, 0, 1, 0, 0, 0, 1, 0]);
        let starts = run(Strategy::Weighted, &[5, 1, 1], &[None; 3], 7);
        assert_eq!(starts.iter().filter(|&&i| i == 0).count(), 5);
        assert_eq!(starts.iter().filter(|&&i| i == 1).count(), 1);
        // Zero weights count as one rather than starving an endpoint.
        let starts = run(Strategy::Weighted, &[0, 0], &[None; 2], 4);
        assert_eq!(starts, vec![0, 1, 0, 1]);
    }

    #[test]
    fn least_latency_measures_first_then_prefers_fastest() {
        let starts = run(
            Strategy::LeastLatency,
            &[1, 1, 1],
            &[Some(0.5), None, Some(0.1)],
            1,
        );
        assert_eq!(starts, vec![1]);
        let mut w = SmoothWeighted::default();
        let inputs = Inputs {
            weights: &[1, 1, 1],
            latencies: &[Some(0.5), Some(0.3), Some(0.1)],
            counter: 0,
        };
        assert_eq!(
            order(Strategy::LeastLatency, &inputs, &mut w, &mut never()),
            vec![2, 1, 0]
        );
        // Exploring: chance() true (0), then below(3) = 4 % 3 = 1.
        let mut explore = Fixed(vec![0, 4], 0);
        assert_eq!(
            order(Strategy::LeastLatency, &inputs, &mut w, &mut explore),
            vec![1, 2, 0]
        );
    }

    #[test]
    fn unhealthy_go_last_soonest_first() {
        let now = Instant::now();
        let soon = now + Duration::from_secs(1);
        let later = now + Duration::from_secs(9);
        let avail = |i: usize| match i {
            0 => Availability::Unhealthy { until: Some(later) },
            2 => Availability::Unhealthy { until: None },
            3 => Availability::Unhealthy { until: Some(soon) },
            _ => Availability::Healthy,
        };
        assert_eq!(
            healthy_first(vec![0, 1, 2, 3, 4], now, avail),
            Ranked {
                order: vec![1, 4, 3, 0, 2],
                probe: None
            }
        );
    }

    #[test]
    fn a_half_open_target_is_probed_only_when_tried_first() {
        let now = Instant::now();
        let later = now + Duration::from_secs(9);
        // First in line (only an unhealthy target before it): this request probes it.
        let avail = |i: usize| match i {
            0 => Availability::Unhealthy { until: Some(later) },
            1 => Availability::Probe,
            _ => Availability::Healthy,
        };
        assert_eq!(
            healthy_first(vec![0, 1, 2], now, avail),
            Ranked {
                order: vec![1, 2, 0],
                probe: Some(1)
            }
        );
        // Behind a healthy target: not probed, and after the healthy ones.
        assert_eq!(
            healthy_first(vec![2, 1, 0], now, avail),
            Ranked {
                order: vec![2, 1, 0],
                probe: None
            }
        );
        // Two half-open targets: only the first is probed.
        let both = |i: usize| match i {
            0 | 1 => Availability::Probe,
            _ => Availability::Unhealthy { until: None },
        };
        assert_eq!(
            healthy_first(vec![1, 0, 2], now, both),
            Ranked {
                order: vec![1, 0, 2],
                probe: Some(1)
            }
        );
    }

    #[test]
    fn xorshift_spreads() {
        let mut rng = XorShift::new(42);
        let mut seen = [0usize; 4];
        for _ in 0..4000 {
            seen[rng.below(4)] += 1;
        }
        assert!(seen.iter().all(|&c| c > 800), "{seen:?}");
        let hits = (0..10_000).filter(|_| rng.chance(0.1)).count();
        assert!((700..1300).contains(&hits), "{hits}");
    }
}
