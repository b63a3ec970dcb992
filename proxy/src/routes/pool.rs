//! Which URL of a route's `upstream` list a request goes to: round robin, skipping a URL that
//! recently refused a connection (passive ejection).
//!
//! Kept behind this one small type so the selection can later be switched to the replica pools
//! the providers use (least requests, affinity) without touching the proxy hooks: they only
//! call [`UrlPool::pick`], [`UrlPool::eject`] and [`UrlPool::restore`].

use once_cell::sync::Lazy;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a URL that failed to connect is skipped. Short: a restarted backend is back in
/// seconds, and a URL is still tried when every URL is ejected.
pub const EJECT_FOR: Duration = Duration::from_secs(10);

/// The process's clock origin for the ejection deadlines (kept as integers so they are atomic).
static EPOCH: Lazy<Instant> = Lazy::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(EPOCH.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The URLs of one route (by index into the route's list).
#[derive(Debug)]
pub struct UrlPool {
    next: AtomicUsize,
    /// Per URL: until when (ms on [`EPOCH`]) it is skipped; 0 when it is not.
    ejected_until: Vec<AtomicU64>,
}

impl UrlPool {
    pub fn new(len: usize) -> UrlPool {
        UrlPool {
            next: AtomicUsize::new(0),
            ejected_until: (0..len).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.ejected_until.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ejected_until.is_empty()
    }

    /// The URL for the next try of a request that already tried `tried`: the next one in
    /// round-robin order that is neither tried nor ejected, else the first untried one (an
    /// ejected URL beats no answer). `None` when every URL was tried.
    pub fn pick(&self, tried: &[usize]) -> Option<usize> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let now = now_ms();
        let mut fallback = None;
        for i in (0..n).map(|k| (start + k) % n) {
            if tried.contains(&i) {
                continue;
            }
            if self.ejected_until[i].load(Ordering::Relaxed) <= now {
                return Some(i);
            }
            fallback = fallback.or(Some(i));
        }
        fallback
    }

    /// Whether a request that tried `tried` has another URL to try.
    pub fn has_untried(&self, tried: &[usize]) -> bool {
        (0..self.len()).any(|i| !tried.contains(&i))
    }

    /// `url` failed to connect: skip it for [`EJECT_FOR`].
    pub fn eject(&self, url: usize) {
        if let Some(slot) = self.ejected_until.get(url) {
            let until = now_ms().saturating_add(EJECT_FOR.as_millis() as u64);
            slot.store(until.max(1), Ordering::Relaxed);
        }
    }

    /// `url` answered: it is in again.
    pub fn restore(&self, url: usize) {
        if let Some(slot) = self.ejected_until.get(url) {
            if slot.load(Ordering::Relaxed) != 0 {
                slot.store(0, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_skips_tried_and_ejected_urls() {
        let pool = UrlPool::new(3);
        let firsts: Vec<_> = (0..3).map(|_| pool.pick(&[])).collect();
        assert_eq!(firsts, vec![Some(0), Some(1), Some(2)]);
        pool.eject(1);
        for _ in 0..6 {
            assert_ne!(pool.pick(&[]), Some(1));
        }
        // Everything else tried: the ejected one is still better than nothing.
        assert_eq!(pool.pick(&[0, 2]), Some(1));
        assert_eq!(pool.pick(&[0, 1, 2]), None);
        assert!(!pool.has_untried(&[0, 1, 2]));
        pool.restore(1);
        let picks: Vec<_> = (0..3).filter_map(|_| pool.pick(&[])).collect();
        assert!(picks.contains(&1));
    }
}
