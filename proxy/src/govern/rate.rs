//! `max_requests_per_minute` per key: a sliding window of the last 60 seconds.
//!
//! Each router keeps the arrival times of a key's requests in the last minute (at most the
//! limit's worth, so memory per key is bounded by the limit) and admits a request while its own
//! count plus what the other routers sharing the database last published stays under the limit.
//! The coordinator publishes this router's counts and reads the others' every second, so across
//! routers the limit holds within what the others admitted in the last second (the stated
//! tolerance, docs/keys.md); on one router it is exact.

use super::lock;
use hashbrown::HashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The window: one minute.
pub const WINDOW_MS: i64 = 60_000;

#[derive(Default)]
struct RateLog {
    /// Arrival times (unix ms) in the window, oldest first.
    times: VecDeque<i64>,
    /// What the other routers admitted in their last minute, as last published.
    others: u64,
    /// What this router last published for the key.
    published: u64,
}

impl RateLog {
    fn expire(&mut self, now_ms: i64) {
        while self.times.front().is_some_and(|t| *t <= now_ms - WINDOW_MS) {
            self.times.pop_front();
        }
    }
}

/// Every rate-limited key's window on this router.
#[derive(Default)]
pub struct RateLimits {
    keys: Mutex<HashMap<String, Arc<Mutex<RateLog>>>>,
}

impl RateLimits {
    fn log(&self, key_id: &str) -> Arc<Mutex<RateLog>> {
        let mut keys = lock(&self.keys);
        if let Some(l) = keys.get(key_id) {
            return l.clone();
        }
        let l = Arc::new(Mutex::new(RateLog::default()));
        keys.insert(key_id.to_string(), l.clone());
        l
    }

    /// Admits one request of `key_id` under `limit` per minute, or says in how many seconds
    /// (at least 1) a request would be admitted.
    pub fn check(&self, key_id: &str, limit: u32, now_ms: i64) -> Result<(), u64> {
        let log = self.log(key_id);
        let mut log = lock(&log);
        log.expire(now_ms);
        let used = log.times.len() as u64 + log.others;
        if used < u64::from(limit) {
            log.times.push_back(now_ms);
            return Ok(());
        }
        // The oldest of ours leaves the window first; when all are the others', a second.
        let wait_ms = log
            .times
            .front()
            .map_or(1_000, |t| t + WINDOW_MS - now_ms)
            .max(1);
        Err(u64::try_from(wait_ms).unwrap_or(1).div_ceil(1_000).max(1))
    }

    /// This router's counts per key in the last minute, for the coordinator to publish: every
    /// key with requests in the window (each tick, so the other routers keep counting them), and
    /// once a zero for a key whose requests have all left it. Keys with nothing left here or
    /// elsewhere are forgotten.
    pub fn counts(&self, now_ms: i64) -> Vec<(String, u64)> {
        let mut keys = lock(&self.keys);
        let mut out = Vec::new();
        keys.retain(|k, l| {
            let mut l = lock(l);
            l.expire(now_ms);
            let n = l.times.len() as u64;
            if n > 0 || l.published > 0 {
                out.push((k.clone(), n));
                l.published = n;
            }
            n > 0 || l.others > 0
        });
        out
    }

    /// Sets what the other routers admitted per key (keys not listed: none), including keys
    /// this router has not seen yet: their first request here must count the others'.
    pub fn set_others(&self, others: &HashMap<String, u64>) {
        let mut keys = lock(&self.keys);
        for (k, l) in keys.iter() {
            let mut l = lock(l);
            l.others = others.get(k).copied().unwrap_or(0);
        }
        for (k, n) in others {
            if *n > 0 && !keys.contains_key(k) {
                let log = RateLog {
                    others: *n,
                    ..RateLog::default()
                };
                keys.insert(k.clone(), Arc::new(Mutex::new(log)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window() {
        let r = RateLimits::default();
        for i in 0..3 {
            assert_eq!(r.check("k", 3, 1_000 + i), Ok(()));
        }
        assert_eq!(r.check("k", 3, 2_000), Err(59));
        assert_eq!(r.check("k", 3, 60_500), Err(1));
        assert_eq!(r.check("k", 3, 61_000), Ok(()));
        // Another key has its own window.
        assert_eq!(r.check("j", 1, 2_000), Ok(()));
        assert_eq!(r.counts(61_000).len(), 2);
    }

    #[test]
    fn other_routers_count() {
        let r = RateLimits::default();
        assert_eq!(r.check("k", 5, 0), Ok(()));
        r.set_others(&HashMap::from([("k".to_string(), 4)]));
        assert_eq!(r.check("k", 5, 1), Err(60));
        r.set_others(&HashMap::new());
        assert_eq!(r.check("k", 5, 2), Ok(()));
        assert_eq!(r.counts(3), vec![("k".to_string(), 2)]);
        // Idle keys are published as zero once, then forgotten.
        assert_eq!(r.counts(200_000), vec![("k".to_string(), 0)]);
        assert!(r.counts(200_000).is_empty());
        // A key seen only elsewhere counts from its first request here.
        r.set_others(&HashMap::from([("new".to_string(), 5)]));
        assert_eq!(r.check("new", 5, 200_001), Err(1));
        assert!(r.counts(200_001).is_empty(), "nothing of ours to publish");
    }
}
