//! Passive health of one endpoint or account: consecutive failures, ejection with a doubling
//! period, `retry-after` cooling, and an EWMA of time to first byte. Pure: every method takes
//! `now`, so tests drive the clock.
//!
//! When an ejection expires the target is half-open (linkerd's consecutive-failures breaker):
//! one request at a time may probe it. The balancer hands that request the probe permit
//! ([`TargetHealth::claim_probe`]); until the probe reports, everyone else sees the target as
//! unhealthy. Its success closes the breaker, its failure ejects the target for twice as long.
//! A probe that never reports (its client went away) must not keep the target out for good, so
//! the permit lapses after a window (see `Balancer`: the time the attempt may wait for its
//! response to start), and the next request probes.

use bitrouter_config::HealthPolicy;
use std::time::{Duration, Instant};

/// Weight of the newest sample in the time-to-first-byte average.
const EWMA_ALPHA: f64 = 0.3;

/// The state of one endpoint (provider + model) or one account.
#[derive(Debug, Clone, Default)]
pub struct TargetHealth {
    consecutive_failures: u32,
    /// How many ejections in a row (the period doubles with each).
    ejections: u32,
    ejected_until: Option<Instant>,
    cooled_until: Option<Instant>,
    /// Seconds; `None` until measured.
    ewma_ttfb: Option<f64>,
    /// An active health check reported the provider down.
    pub(crate) check_down: bool,
    successes: u64,
    failures: u64,
    /// Half-open only: the probe permit is out until this instant.
    probe_until: Option<Instant>,
}

/// Whether a target should be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Healthy,
    /// Half-open with the probe permit free: the request that claims it may try the target;
    /// for any other it is unhealthy.
    Probe,
    /// Ejected, cooled, failing its active check, or being probed by another request, until
    /// (at least) this instant.
    Unhealthy {
        until: Option<Instant>,
    },
}

impl TargetHealth {
    pub fn availability(&self, now: Instant) -> Availability {
        let mut until = None;
        for t in [self.ejected_until, self.cooled_until]
            .into_iter()
            .flatten()
        {
            if t > now {
                until = Some(until.map_or(t, |u: Instant| u.max(t)));
            }
        }
        if until.is_some() {
            return Availability::Unhealthy { until };
        }
        if self.check_down {
            return Availability::Unhealthy { until: None };
        }
        if self.half_open() {
            return match self.probe_until.filter(|t| *t > now) {
                Some(t) => Availability::Unhealthy { until: Some(t) },
                None => Availability::Probe,
            };
        }
        Availability::Healthy
    }

    /// An ejection has expired (or is still running) and nothing has succeeded since.
    fn half_open(&self) -> bool {
        self.ejected_until.is_some()
    }

    /// Gives the probe permit to the caller for `window`: until the probe reports or the window
    /// ends, [`availability`](Self::availability) is unhealthy for everyone else.
    pub fn claim_probe(&mut self, now: Instant, window: Duration) {
        self.probe_until = Some(now + window);
    }

    /// A successful exchange (`ttfb`: time to the first byte, when measured).
    pub fn on_success(&mut self, ttfb: Option<Duration>) {
        self.successes += 1;
        self.consecutive_failures = 0;
        self.ejections = 0;
        self.ejected_until = None;
        self.probe_until = None;
        if let Some(t) = ttfb {
            let s = t.as_secs_f64();
            self.ewma_ttfb = Some(match self.ewma_ttfb {
                Some(avg) => avg + EWMA_ALPHA * (s - avg),
                None => s,
            });
        }
    }

    /// A failed exchange. After `failure_threshold` consecutive failures the target is ejected;
    /// a failure after an ejection expired (the half-open probe) ejects it again for twice as
    /// long, up to `max_eject`.
    pub fn on_failure(&mut self, now: Instant, policy: &HealthPolicy) {
        self.failures += 1;
        self.probe_until = None;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if self.consecutive_failures >= policy.failure_threshold.max(1) {
            let factor = 1u32 << self.ejections.min(16);
            let period = policy.eject.saturating_mul(factor).min(policy.max_eject);
            self.ejected_until = Some(now + period);
            self.ejections = self.ejections.saturating_add(1);
        }
    }

    /// An active check passed: the target answers, so a passive ejection ends now (its
    /// half-open probe has in effect been made) and the check no longer holds it out.
    pub fn check_passed(&mut self) {
        self.check_down = false;
        self.consecutive_failures = 0;
        self.ejections = 0;
        self.ejected_until = None;
        self.probe_until = None;
    }

    /// Cools the target for `retry_after` (capped by `max_cooldown`).
    pub fn cool(&mut self, now: Instant, retry_after: Duration, policy: &HealthPolicy) {
        let until = now + retry_after.min(policy.max_cooldown);
        self.cooled_until = Some(self.cooled_until.map_or(until, |u| u.max(until)));
    }

    /// The time-to-first-byte average, in seconds.
    pub fn ewma_ttfb(&self) -> Option<f64> {
        self.ewma_ttfb
    }

    /// A JSON view for `GET /health/upstreams`.
    pub fn to_json(&self, now: Instant) -> serde_json::Value {
        let remaining =
            |t: Option<Instant>| t.filter(|t| *t > now).map(|t| (t - now).as_secs_f64());
        let probing = self.half_open() && self.probe_until.is_some_and(|t| t > now);
        serde_json::json!({
            "healthy": self.availability(now) == Availability::Healthy,
            "half_open": self.half_open() && self.ejected_until.is_some_and(|t| t <= now),
            "probe_in_flight": probing,
            "consecutive_failures": self.consecutive_failures,
            "ejected_for_secs": remaining(self.ejected_until),
            "cooled_for_secs": remaining(self.cooled_until),
            "check_down": self.check_down,
            "ttfb_ewma_ms": self.ewma_ttfb.map(|s| (s * 1000.0 * 10.0).round() / 10.0),
            "successes": self.successes,
            "failures": self.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HealthPolicy {
        HealthPolicy {
            failure_threshold: 2,
            eject: Duration::from_secs(10),
            max_eject: Duration::from_secs(25),
            max_cooldown: Duration::from_secs(60),
        }
    }

    #[test]
    fn ejects_after_threshold_and_doubles_on_failed_probe() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = TargetHealth::default();
        h.on_failure(t0, &p);
        assert_eq!(h.availability(t0), Availability::Healthy);
        h.on_failure(t0, &p);
        assert!(matches!(h.availability(t0), Availability::Unhealthy { .. }));
        // Half-open after 10 s.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(h.availability(t1), Availability::Probe);
        // The probe fails: ejected for 20 s.
        h.on_failure(t1, &p);
        assert!(matches!(
            h.availability(t1 + Duration::from_secs(19)),
            Availability::Unhealthy { .. }
        ));
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(h.availability(t2), Availability::Probe);
        // Then capped at 25 s.
        h.on_failure(t2, &p);
        assert_eq!(
            h.availability(t2 + Duration::from_secs(25)),
            Availability::Probe
        );
        // A success restores it fully.
        h.on_success(None);
        assert_eq!(h.availability(t2), Availability::Healthy);
        h.on_failure(t2, &p);
        assert_eq!(h.availability(t2), Availability::Healthy);
    }

    fn ejected(p: &HealthPolicy, t0: Instant) -> TargetHealth {
        let mut h = TargetHealth::default();
        h.on_failure(t0, p);
        h.on_failure(t0, p);
        h
    }

    #[test]
    fn half_open_admits_one_probe_at_a_time() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = ejected(&p, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(h.availability(t1), Availability::Probe);
        h.claim_probe(t1, Duration::from_secs(5));
        // Everyone else sees it unhealthy while the probe is out, recovering when it may end.
        assert_eq!(
            h.availability(t1 + Duration::from_secs(1)),
            Availability::Unhealthy {
                until: Some(t1 + Duration::from_secs(5))
            }
        );
        // The probe succeeds: closed, fully healthy.
        h.on_success(Some(Duration::from_millis(10)));
        assert_eq!(
            h.availability(t1 + Duration::from_secs(1)),
            Availability::Healthy
        );
        assert_eq!(h.to_json(t1)["probe_in_flight"], false);
    }

    #[test]
    fn a_failed_probe_ejects_for_twice_as_long() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = ejected(&p, t0);
        let t1 = t0 + Duration::from_secs(10);
        h.claim_probe(t1, Duration::from_secs(5));
        let t2 = t1 + Duration::from_secs(1);
        h.on_failure(t2, &p);
        assert_eq!(
            h.availability(t2),
            Availability::Unhealthy {
                until: Some(t2 + Duration::from_secs(20))
            }
        );
        // Half-open again afterwards, with a free permit.
        assert_eq!(
            h.availability(t2 + Duration::from_secs(20)),
            Availability::Probe
        );
    }

    #[test]
    fn an_abandoned_probe_permit_lapses() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = ejected(&p, t0);
        let t1 = t0 + Duration::from_secs(10);
        h.claim_probe(t1, Duration::from_secs(5));
        assert!(matches!(
            h.availability(t1 + Duration::from_millis(4999)),
            Availability::Unhealthy { .. }
        ));
        let json = h.to_json(t1 + Duration::from_secs(1));
        assert_eq!(json["half_open"], true);
        assert_eq!(json["probe_in_flight"], true);
        // Nothing reported: the next request may probe.
        assert_eq!(
            h.availability(t1 + Duration::from_secs(5)),
            Availability::Probe
        );
    }

    #[test]
    fn cooling_is_capped_and_expires() {
        let p = policy();
        let t0 = Instant::now();
        let mut h = TargetHealth::default();
        h.cool(t0, Duration::from_secs(3600), &p);
        assert!(matches!(
            h.availability(t0 + Duration::from_secs(59)),
            Availability::Unhealthy { .. }
        ));
        assert_eq!(
            h.availability(t0 + Duration::from_secs(60)),
            Availability::Healthy
        );
    }

    #[test]
    fn ewma_moves_toward_new_samples() {
        let mut h = TargetHealth::default();
        h.on_success(Some(Duration::from_millis(100)));
        assert_eq!(h.ewma_ttfb(), Some(0.1));
        h.on_success(Some(Duration::from_millis(200)));
        let v = h.ewma_ttfb().unwrap_or_default();
        assert!((v - 0.13).abs() < 1e-9, "{v}");
    }

    #[test]
    fn failed_active_check_marks_unhealthy() {
        let h = TargetHealth {
            check_down: true,
            ..TargetHealth::default()
        };
        assert_eq!(
            h.availability(Instant::now()),
            Availability::Unhealthy { until: None }
        );
    }
}
