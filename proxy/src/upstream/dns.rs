//! Asynchronous name resolution with a small TTL cache, a timeout and single-flight.
//!
//! Pingora's `HttpPeer::new` with a host name resolves *blocking* and panics on failure, so we
//! resolve here (tokio's resolver runs on the blocking pool) and hand Pingora socket addresses.
//!
//! - **Timeout**: a caller waits at most its provider's `connect_secs` (a slow resolver is part
//!   of connecting); then it gets an error naming DNS, which the caller turns into an upstream
//!   connect failure (retried like any other).
//! - **Single-flight**: when an entry is missing or expired, the first caller starts one lookup
//!   and every concurrent caller for the same `host:port` waits for that one. The lookup runs
//!   as its own task, so a caller that gives up (timeout, client gone) neither cancels it for
//!   the others nor makes the next caller start another; it is bounded by [`MAX_LOOKUP`].

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long a lookup (and the peers built from it) is kept.
pub const TTL: Duration = Duration::from_secs(60);

/// Longest one lookup may run, whoever waits for it; after that it fails and the next caller
/// starts a new one.
pub const MAX_LOOKUP: Duration = Duration::from_secs(30);

/// A lookup's future: the addresses of a `host:port`.
pub type LookupFuture = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// How names are looked up (tokio's system resolver; a counting fake in tests).
pub type Lookup = Arc<dyn Fn(String, u16) -> LookupFuture + Send + Sync>;

/// A lookup's outcome, shared by everyone who waited for it.
type Answer = Result<Arc<[SocketAddr]>, String>;

enum Entry {
    Ready {
        at: Instant,
        addrs: Arc<[SocketAddr]>,
    },
    /// A lookup in flight; its answer arrives on the channel.
    Pending {
        started: Instant,
        answer: watch::Receiver<Option<Answer>>,
    },
}

type Cache = Mutex<HashMap<(String, u16), Entry>>;

/// Host -> addresses, cached for [`TTL`].
pub struct Resolver {
    cache: Arc<Cache>,
    lookup: Lookup,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::with_lookup(Arc::new(|host: String, port: u16| {
            Box::pin(async move {
                tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map(|addrs| addrs.collect())
            }) as LookupFuture
        }))
    }
}

fn lock(cache: &Cache) -> MutexGuard<'_, HashMap<(String, u16), Entry>> {
    // A panic while holding the lock cannot leave the map inconsistent in a harmful way.
    cache.lock().unwrap_or_else(|e| e.into_inner())
}

impl Resolver {
    /// A resolver that looks names up with `lookup`.
    pub fn with_lookup(lookup: Lookup) -> Resolver {
        Resolver {
            cache: Arc::new(Mutex::new(HashMap::new())),
            lookup,
        }
    }

    /// The addresses for `host:port`, IPv4 first (a loopback server often listens on v4 only),
    /// waiting at most `timeout` for a lookup.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let (mut answer, start) = {
            let mut cache = lock(&self.cache);
            let key = (host.to_string(), port);
            match cache.get(&key) {
                Some(Entry::Ready { at, addrs }) if at.elapsed() < TTL => return Ok(addrs.to_vec()),
                Some(Entry::Pending { started, answer }) if started.elapsed() < MAX_LOOKUP => {
                    (answer.clone(), None)
                }
                _ => {
                    let (tx, rx) = watch::channel(None);
                    cache.insert(
                        key.clone(),
                        Entry::Pending {
                            started: Instant::now(),
                            answer: rx.clone(),
                        },
                    );
                    let flight = flight(self.cache.clone(), self.lookup.clone(), key, tx);
                    (rx, Some(flight))
                }
            }
        };
        if let Some(flight) = start {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(flight);
                }
                // No runtime to run it on its own (not the case in the proxy): this caller
                // drives it, and any other waits for it.
                Err(_) => flight.await,
            }
        }
        let waited = tokio::time::timeout(timeout, answer.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(a)) => match a.as_ref() {
                Some(Ok(addrs)) => Ok(addrs.to_vec()),
                Some(Err(e)) => Err(e.clone()),
                None => Err(format!("DNS lookup of `{host}` gave no answer")),
            },
            Ok(Err(_)) => Err(format!("DNS lookup of `{host}` was abandoned")),
            Err(_) => Err(format!(
                "DNS lookup of `{host}` timed out after {:.1} s (connect_secs)",
                timeout.as_secs_f64()
            )),
        }
    }

    /// Drops a cached answer for `host:port` (after a connect failure, so the next request
    /// resolves again). A lookup in flight is left to finish.
    pub fn forget(&self, host: &str, port: u16) {
        let mut cache = lock(&self.cache);
        let key = (host.to_string(), port);
        if let Some(Entry::Ready { .. }) = cache.get(&key) {
            cache.remove(&key);
        }
    }
}

/// One lookup of `key`: its answer goes into the cache (an error is not cached) and to every
/// waiter.
async fn flight(
    cache: Arc<Cache>,
    lookup: Lookup,
    key: (String, u16),
    tx: watch::Sender<Option<Answer>>,
) {
    let (host, port) = (key.0.clone(), key.1);
    let answer: Answer = match tokio::time::timeout(MAX_LOOKUP, lookup(host.clone(), port)).await {
        Err(_) => Err(format!(
            "DNS lookup of `{host}` took longer than {} s",
            MAX_LOOKUP.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot resolve `{host}`: {e}")),
        Ok(Ok(mut addrs)) if !addrs.is_empty() => {
            addrs.sort_by_key(|a| a.is_ipv6());
            addrs.dedup();
            Ok(addrs.into())
        }
        Ok(Ok(_)) => Err(format!("`{host}` resolved to no addresses")),
    };
    {
        let mut cache = lock(&cache);
        // Only if the entry is still this flight (a newer one may have replaced a stale one).
        let ours = matches!(
            cache.get(&key),
            Some(Entry::Pending { answer, .. }) if answer.same_channel(&tx.subscribe())
        );
        if ours {
            match &answer {
                Ok(addrs) => {
                    cache.insert(
                        key,
                        Entry::Ready {
                            at: Instant::now(),
                            addrs: addrs.clone(),
                        },
                    );
                }
                Err(_) => {
                    cache.remove(&key);
                }
            }
        }
    }
    tx.send_replace(Some(answer));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn literals_and_localhost() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve("127.0.0.1", 80, T).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("[::1]", 81, T).await.unwrap(),
            vec!["[::1]:81".parse().unwrap()]
        );
        let local = r.resolve("localhost", 82, T).await.unwrap();
        assert!(local[0].is_ipv4(), "{local:?}");
        assert!(r.resolve("no-such-host.invalid", 80, T).await.is_err());
    }

    /// A resolver whose lookups take `delay` (forever when `None`), counting them.
    fn counting(delay: Option<Duration>, fail: bool) -> (Resolver, Arc<AtomicUsize>) {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let r = Resolver::with_lookup(Arc::new(move |_host: String, port: u16| {
            c.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                match delay {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending::<()>().await,
                }
                if fail {
                    return Err(io::Error::other("no such host"));
                }
                Ok(vec![
                    SocketAddr::new("2001:db8::1".parse().unwrap(), port),
                    SocketAddr::new("192.0.2.1".parse().unwrap(), port),
                ])
            }) as LookupFuture
        }));
        (r, calls)
    }

    #[tokio::test]
    async fn concurrent_lookups_of_one_host_share_one_flight() {
        let (r, calls) = counting(Some(Duration::from_millis(100)), false);
        let all =
            futures_util::future::join_all((0..50).map(|_| r.resolve("api.example.test", 443, T)))
                .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1, "one lookup for 50 callers");
        for a in &all {
            let a = a.as_ref().unwrap();
            assert_eq!(a.len(), 2);
            assert!(a[0].is_ipv4(), "IPv4 first: {a:?}");
        }
        // Cached: no new lookup; another port is another key.
        r.resolve("api.example.test", 443, T).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        r.resolve("api.example.test", 8443, T).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Forgotten: looked up again.
        r.forget("api.example.test", 443);
        r.resolve("api.example.test", 443, T).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_lookup_is_shared_but_not_cached() {
        let (r, calls) = counting(Some(Duration::from_millis(50)), true);
        let all =
            futures_util::future::join_all((0..10).map(|_| r.resolve("gone.example.test", 443, T)))
                .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        for a in all {
            assert!(a
                .unwrap_err()
                .contains("cannot resolve `gone.example.test`"));
        }
        assert!(r.resolve("gone.example.test", 443, T).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 2, "errors are retried");
    }

    #[tokio::test]
    async fn a_lookup_that_never_finishes_times_out() {
        let (r, calls) = counting(None, false);
        let started = Instant::now();
        let timeout = Duration::from_millis(200);
        let all = futures_util::future::join_all(
            (0..5).map(|_| r.resolve("hang.example.test", 443, timeout)),
        )
        .await;
        let took = started.elapsed();
        assert!(took >= timeout && took < Duration::from_secs(2), "{took:?}");
        for a in all {
            let e = a.unwrap_err();
            assert!(
                e.contains("DNS lookup of `hang.example.test` timed out"),
                "{e}"
            );
        }
        // Still one flight: later callers wait for it rather than starting another.
        assert!(r.resolve("hang.example.test", 443, timeout).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
