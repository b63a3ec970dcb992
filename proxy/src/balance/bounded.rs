//! Balancer state keyed by strings a client chooses, kept bounded.
//!
//! A client may send any `provider/<anything>` model id; each would otherwise become a
//! permanent entry (health, counters) and a `/health/upstreams` row. Entries for configured
//! keys are pinned and live forever; every other entry expires once idle for
//! [`IDLE_EXPIRY`], and at most [`MAX_TRANSIENT`] of them exist at once (the least recently
//! used go first). The request path stays cheap: an existing entry costs two hash lookups and
//! no allocation; sweeping happens only when a new unpinned entry is inserted, at most once
//! every `cap / 8` inserts under a flood of new keys.

use hashbrown::hash_map::EntryRef;
use hashbrown::{Equivalent, HashMap};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// How long an unconfigured entry is kept after its last use.
pub const IDLE_EXPIRY: Duration = Duration::from_secs(600);
/// Most unconfigured entries kept at once (per map).
pub const MAX_TRANSIENT: usize = 1024;
/// Expired entries are swept at least once every `cap / SWEEP_DIVISOR` new unpinned entries.
const SWEEP_DIVISOR: usize = 4;
/// When the cap is reached, `cap / EVICT_DIVISOR` least-recently-used entries go at once, so
/// the scan that finds them is paid once per that many inserts rather than on every one.
const EVICT_DIVISOR: usize = 8;

struct Slot<V> {
    value: V,
    last_used: Instant,
    /// Configured: never expires, never counts against the cap.
    pinned: bool,
}

/// A map whose unpinned entries expire and are capped in number.
pub struct Bounded<K, V> {
    map: HashMap<K, Slot<V>>,
    /// Unpinned entries in `map`.
    transient: usize,
    /// Unpinned inserts since the last sweep.
    inserts: usize,
    cap: usize,
    idle: Duration,
}

impl<K: Hash + Eq, V: Default> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded::new(MAX_TRANSIENT, IDLE_EXPIRY)
    }
}

impl<K: Hash + Eq, V: Default> Bounded<K, V> {
    /// `cap` unpinned entries at most, each dropped after `idle` without use.
    pub fn new(cap: usize, idle: Duration) -> Self {
        Bounded {
            map: HashMap::new(),
            transient: 0,
            inserts: 0,
            cap: cap.max(1),
            idle,
        }
    }

    /// The entry for `key`, if present (expired or not: it only goes at a sweep).
    pub fn get<Q: ?Sized + Hash + Equivalent<K>>(&self, key: &Q) -> Option<&V> {
        self.map.get(key).map(|s| &s.value)
    }

    /// The entry for `key` if present, marked as used at `now`.
    pub fn get_mut<Q: ?Sized + Hash + Equivalent<K>>(
        &mut self,
        key: &Q,
        now: Instant,
    ) -> Option<&mut V> {
        self.map.get_mut(key).map(|s| {
            s.last_used = s.last_used.max(now);
            &mut s.value
        })
    }

    /// `map[key]`, inserted with a default when missing, marked as used at `now`. `pinned`
    /// says whether a missing key is configured; the owned key is built only on insertion.
    pub fn slot<'q, Q>(&mut self, key: &'q Q, now: Instant, pinned: impl FnOnce() -> bool) -> &mut V
    where
        Q: ?Sized + Hash + Equivalent<K>,
        &'q Q: Into<K>,
    {
        let mut pin = false;
        if !self.map.contains_key(key) {
            pin = pinned();
            if !pin {
                self.make_room(now);
                self.transient += 1;
                self.inserts += 1;
            }
        }
        let slot = match self.map.entry_ref(key) {
            EntryRef::Occupied(o) => o.into_mut(),
            EntryRef::Vacant(v) => v.insert(Slot {
                value: V::default(),
                last_used: now,
                pinned: pin,
            }),
        };
        slot.last_used = slot.last_used.max(now);
        &mut slot.value
    }

    /// Every pinned entry and every unpinned one not idle past expiry at `now`.
    pub fn live(&self, now: Instant) -> impl Iterator<Item = (&K, &V)> {
        self.map
            .iter()
            .filter(move |(_, s)| s.pinned || !self.expired(s, now))
            .map(|(k, s)| (k, &s.value))
    }

    /// Unpinned entries currently held (expired ones included until the next sweep).
    pub fn transient(&self) -> usize {
        self.transient
    }

    fn expired(&self, slot: &Slot<V>, now: Instant) -> bool {
        now.saturating_duration_since(slot.last_used) >= self.idle
    }

    /// Before inserting an unpinned entry: sweep out expired entries now and then, and when the
    /// cap is reached evict the least recently used batch.
    fn make_room(&mut self, now: Instant) {
        if self.transient < self.cap && self.inserts < (self.cap / SWEEP_DIVISOR).max(1) {
            return;
        }
        self.inserts = 0;
        let idle = self.idle;
        self.map
            .retain(|_, s| s.pinned || now.saturating_duration_since(s.last_used) < idle);
        self.transient = self.map.values().filter(|s| !s.pinned).count();
        if self.transient < self.cap {
            return;
        }
        // Full of live entries: the oldest batch goes (ties at the cut-off may take a few more).
        let mut ages: Vec<Instant> = self
            .map
            .values()
            .filter(|s| !s.pinned)
            .map(|s| s.last_used)
            .collect();
        let batch = (self.cap / EVICT_DIVISOR).clamp(1, ages.len());
        let (_, cutoff, _) = ages.select_nth_unstable(batch - 1);
        let cutoff = *cutoff;
        self.map.retain(|_, s| s.pinned || s.last_used > cutoff);
        self.transient = self.map.values().filter(|s| !s.pinned).count();
    }
}

/// An endpoint: a provider and the upstream model id, owned (the map's key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointKey {
    pub provider: String,
    pub service: String,
}

/// An endpoint borrowed from a request, to look up an [`EndpointKey`] without copying.
#[derive(Debug, Clone, Copy)]
pub struct EndpointRef<'a>(pub &'a str, pub &'a str);

// Both hash the same two strings the same way, as `Equivalent` requires.
impl Hash for EndpointKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.provider.as_str().hash(h);
        self.service.as_str().hash(h);
    }
}

impl Hash for EndpointRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
        self.1.hash(h);
    }
}

impl Equivalent<EndpointKey> for EndpointRef<'_> {
    fn equivalent(&self, key: &EndpointKey) -> bool {
        self.0 == key.provider && self.1 == key.service
    }
}

impl From<&EndpointRef<'_>> for EndpointKey {
    fn from(r: &EndpointRef<'_>) -> EndpointKey {
        EndpointKey {
            provider: r.0.to_string(),
            service: r.1.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: usize) -> String {
        format!("random-{i}")
    }

    #[test]
    fn unpinned_entries_expire_when_idle() {
        let t0 = Instant::now();
        let mut m: Bounded<String, u32> = Bounded::new(8, Duration::from_secs(600));
        *m.slot("configured", t0, || true) += 1;
        *m.slot("random", t0, || false) += 1;
        assert_eq!(m.live(t0).count(), 2);
        // Used again at 5 min: it lives until 15 min.
        let t5 = t0 + Duration::from_secs(300);
        assert!(m.get_mut("random", t5).is_some());
        let t14 = t0 + Duration::from_secs(899);
        assert_eq!(m.live(t14).count(), 2);
        let t15 = t0 + Duration::from_secs(900);
        let live: Vec<&String> = m.live(t15).map(|(k, _)| k).collect();
        assert_eq!(live, ["configured"], "the configured entry is kept forever");
        // A later insert sweeps it out (every `cap / 4` inserts, or at the cap).
        for i in 0..2 {
            m.slot(key(i).as_str(), t15, || false);
        }
        assert!(m.get("random").is_none());
        assert_eq!(m.get("configured"), Some(&1));
    }

    #[test]
    fn the_cap_evicts_the_least_recently_used() {
        let t0 = Instant::now();
        let mut m: Bounded<String, u32> = Bounded::new(MAX_TRANSIENT, IDLE_EXPIRY);
        *m.slot("configured", t0, || true) += 1;
        for i in 0..5 * MAX_TRANSIENT {
            let now = t0 + Duration::from_millis(i as u64);
            m.slot(key(i).as_str(), now, || false);
            // Key 0 stays in use, so it is never the least recently used.
            m.get_mut("random-0", now);
            assert!(m.transient() <= MAX_TRANSIENT, "{i}: {}", m.transient());
        }
        let end = t0 + Duration::from_millis(5 * MAX_TRANSIENT as u64);
        assert!(m.live(end).count() <= MAX_TRANSIENT + 1);
        assert_eq!(m.get("configured"), Some(&1));
        assert!(m.get("random-0").is_some(), "recently used entries stay");
        assert!(m.get("random-1").is_none(), "the oldest went");
        assert!(m.get(key(5 * MAX_TRANSIENT - 1).as_str()).is_some());
    }

    #[test]
    fn endpoint_keys_are_found_by_reference() {
        let t0 = Instant::now();
        let mut m: Bounded<EndpointKey, u32> = Bounded::default();
        *m.slot(&EndpointRef("openai", "gpt-4o"), t0, || true) += 2;
        assert_eq!(m.get(&EndpointRef("openai", "gpt-4o")), Some(&2));
        assert_eq!(m.get(&EndpointRef("openai", "gpt-4o-mini")), None);
        assert_eq!(m.get(&EndpointRef("openaigpt", "-4o")), None);
        *m.slot(&EndpointRef("openai", "gpt-4o"), t0, || false) += 1;
        assert_eq!(m.get(&EndpointRef("openai", "gpt-4o")), Some(&3));
        assert_eq!(m.transient(), 0);
    }
}
