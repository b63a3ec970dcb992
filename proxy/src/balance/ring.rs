//! The consistent-hash ring of an `affinity` pool, with bounded load.
//!
//! The ring itself is Pingora's Ketama (`pingora_load_balancing::selection::consistent`,
//! 160 points per replica, nginx-compatible): a key lands on the same replica as long as that
//! replica is in the pool, and adding or removing one replica moves only the keys that hash to
//! its arcs (about 1/N of them). What Pingora does not have is a *bounded* load: a hot session
//! (an agent firing requests in parallel) must not pile everything onto one replica. This module
//! adds it (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018):
//! with `m` requests in flight over `n` usable replicas (counting the one being placed), a
//! replica may hold at most `ceil(c * m / n)`; when the ring's first choice is at its bound, the
//! walk goes on clockwise to the next replica under it. With `c > 1` there is always one.
//!
//! Replicas that cannot take requests (ejected, failing their active check, already tried by
//! this request) are skipped in the walk rather than removed from the ring: that is the same as
//! taking them out (their keys go to the next replica clockwise) and comes back the same way
//! when they recover, without rebuilding anything.
//!
//! Ketama places nodes by socket address. A replica's address is not known before DNS (and may
//! change), so each replica gets a stable synthetic IPv6 address derived from its URL: the ring
//! depends only on the set of replica URLs, so two routers (or a restarted one) in front of the
//! same fleet agree on where every key goes.

use pingora_load_balancing::selection::consistent::KetamaHashing;
use pingora_load_balancing::selection::{BackendIter, BackendSelection};
use pingora_load_balancing::Backend;
use std::collections::BTreeSet;
use std::hash::Hasher;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::Arc;

/// The load factor `c`: a replica may hold 25 % more than the average in flight.
pub const LOAD_FACTOR: f64 = 1.25;

/// Ketama points per replica (Pingora's default weight 1 gives 160).
const POINTS_PER_REPLICA: usize = 160;

/// A Ketama ring over replica indices.
pub struct Ring {
    ketama: Arc<KetamaHashing>,
    /// How many replicas the ring was built over.
    len: usize,
}

/// The index of the replica a backend stands for (carried in the backend's `ext`).
#[derive(Clone, Copy)]
struct ReplicaIndex(usize);

impl Ring {
    /// A ring over replicas identified by `ids` (their URLs), in pool order.
    pub fn new<'a>(ids: impl IntoIterator<Item = &'a str>) -> Ring {
        let mut backends = BTreeSet::new();
        let mut len = 0;
        for (i, id) in ids.into_iter().enumerate() {
            let mut ext = pingora_load_balancing::Extensions::new();
            ext.insert(ReplicaIndex(i));
            backends.insert(Backend {
                addr: pingora_core::protocols::l4::socket::SocketAddr::Inet(synthetic_addr(id)),
                weight: 1,
                ext,
            });
            len = i + 1;
        }
        Ring {
            ketama: Arc::new(KetamaHashing::build(&backends)),
            len,
        }
    }

    /// The replicas in ring order starting from where `key` lands, each once (a pool has at
    /// most `bitrouter_config::replicas::MAX_REPLICAS`, 64).
    pub fn walk(&self, key: u64) -> impl Iterator<Item = usize> + '_ {
        let mut iter = self.ketama.iter(&key.to_le_bytes());
        let mut seen = 0u64;
        let mut found = 0;
        let mut steps = 0;
        let max_steps = self.len * POINTS_PER_REPLICA + 1;
        std::iter::from_fn(move || {
            while found < self.len && steps < max_steps {
                steps += 1;
                let i = iter.next()?.ext.get::<ReplicaIndex>()?.0;
                let bit = 1u64 << (i % 64);
                if seen & bit == 0 {
                    seen |= bit;
                    found += 1;
                    return Some(i);
                }
            }
            None
        })
    }

    /// The replica for `key`: the first one in ring order that `usable` accepts and whose load
    /// (`load(i)`: requests in flight) is under the bound; when every usable replica is at its
    /// bound (only possible with inconsistent counts), the first usable one. `None` when none is
    /// usable.
    pub fn pick(
        &self,
        key: u64,
        usable: impl Fn(usize) -> bool,
        load: impl Fn(usize) -> usize,
    ) -> Option<usize> {
        let mut n = 0usize;
        let mut total = 0usize;
        for i in 0..self.len {
            if usable(i) {
                n += 1;
                total += load(i);
            }
        }
        if n == 0 {
            return None;
        }
        let bound = bound(total + 1, n);
        let mut first = None;
        for i in self.walk(key) {
            if !usable(i) {
                continue;
            }
            if load(i) < bound {
                return Some(i);
            }
            first.get_or_insert(i);
        }
        first
    }
}

/// `ceil(c * m / n)`: the most requests one of `n` replicas may hold when `m` are in flight.
pub fn bound(m: usize, n: usize) -> usize {
    ((LOAD_FACTOR * m as f64) / n.max(1) as f64).ceil().max(1.0) as usize
}

/// A stable address for a replica URL (see the module doc): 128 bits of two FNV-1a hashes.
fn synthetic_addr(id: &str) -> SocketAddr {
    let half = |salt: u8| {
        let mut h = fnv::FnvHasher::default();
        h.write_u8(salt);
        h.write(id.as_bytes());
        h.finish()
    };
    let bits = (u128::from(half(1)) << 64) | u128::from(half(2));
    SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(bits), 1, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("http://10.0.0.{i}:8000/v1"))
            .collect()
    }

    fn ring(ids: &[String]) -> Ring {
        Ring::new(ids.iter().map(String::as_str))
    }

    fn key(i: u64) -> u64 {
        let mut h = fnv::FnvHasher::default();
        h.write_u64(i);
        h.finish()
    }

    #[test]
    fn keys_spread_over_every_replica() {
        let ids = urls(4);
        let r = ring(&ids);
        let mut counts = [0usize; 4];
        for k in 0..10_000 {
            let i = r.pick(key(k), |_| true, |_| 0).unwrap();
            counts[i] += 1;
        }
        for c in counts {
            assert!((1500..=3500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn removing_a_replica_moves_only_its_keys() {
        let ids = urls(5);
        let all = ring(&ids);
        let fewer = ring(&ids[..4]);
        let mut moved = 0;
        for k in 0..10_000 {
            let before = all.pick(key(k), |_| true, |_| 0).unwrap();
            let after = fewer.pick(key(k), |_| true, |_| 0).unwrap();
            if before != 4 {
                assert_eq!(before, after, "a key of a remaining replica moved");
            } else {
                moved += 1;
            }
        }
        // About 1/5 of the keys were on the removed replica.
        assert!((1200..=2800).contains(&moved), "{moved}");
        // Skipping a replica (ejected) moves its keys exactly as removing it does.
        for k in 0..2_000 {
            assert_eq!(
                all.pick(key(k), |i| i != 4, |_| 0),
                fewer.pick(key(k), |_| true, |_| 0)
            );
        }
    }

    #[test]
    fn the_ring_depends_on_the_urls_not_their_order() {
        let ids = urls(3);
        let a = ring(&ids);
        let reversed: Vec<String> = ids.iter().rev().cloned().collect();
        let b = ring(&reversed);
        for k in 0..1_000 {
            let i = a.pick(key(k), |_| true, |_| 0).unwrap();
            let j = b.pick(key(k), |_| true, |_| 0).unwrap();
            assert_eq!(ids[i], reversed[j]);
        }
    }

    #[test]
    fn a_hot_key_overflows_to_the_next_replica_at_its_bound() {
        let ids = urls(2);
        let r = ring(&ids);
        let mut load = [0usize; 2];
        let home = r.pick(key(7), |_| true, |_| 0).unwrap();
        // Ten requests of one session in flight at once.
        for _ in 0..10 {
            let i = r.pick(key(7), |_| true, |i| load[i]).unwrap();
            load[i] += 1;
        }
        let total: usize = load.iter().sum();
        assert_eq!(total, 10);
        assert!(
            load[home] <= bound(10, 2),
            "home holds {} of 10 (bound {})",
            load[home],
            bound(10, 2)
        );
        assert!(load[1 - home] >= 3, "{load:?}");
        // When the load is gone the key is home again.
        assert_eq!(r.pick(key(7), |_| true, |_| 0), Some(home));
        assert_eq!(r.pick(key(7), |_| false, |_| 0), None);
    }

    #[test]
    fn bounds() {
        assert_eq!(bound(1, 2), 1);
        assert_eq!(bound(2, 2), 2);
        assert_eq!(bound(3, 2), 2);
        assert_eq!(bound(8, 4), 3);
        assert_eq!(bound(0, 0), 1);
    }
}
