//! Asynchronous name resolution with a small TTL cache.
//!
//! Pingora's `HttpPeer::new` with a host name resolves *blocking* and panics on failure, so we
//! resolve here (tokio's resolver runs on the blocking pool) and hand Pingora socket addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a lookup (and the peers built from it) is kept.
pub const TTL: Duration = Duration::from_secs(60);

/// A cached lookup: when it was made and what it returned.
type Entry = (Instant, Vec<SocketAddr>);

/// Host -> addresses, cached for [`TTL`].
#[derive(Default)]
pub struct Resolver {
    cache: Mutex<HashMap<(String, u16), Entry>>,
}

impl Resolver {
    /// The addresses for `host:port`, IPv4 first (a loopback server often listens on v4 only).
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let key = (host.to_string(), port);
        if let Ok(cache) = self.cache.lock() {
            if let Some((at, addrs)) = cache.get(&key) {
                if at.elapsed() < TTL {
                    return Ok(addrs.clone());
                }
            }
        }
        let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| format!("cannot resolve `{host}`: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("`{host}` resolved to no addresses"));
        }
        addrs.sort_by_key(|a| a.is_ipv6());
        addrs.dedup();
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (Instant::now(), addrs.clone()));
        }
        Ok(addrs)
    }

    pub fn forget(&self, host: &str, port: u16) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&(host.to_string(), port));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_and_localhost() {
        let r = Resolver::default();
        assert_eq!(
            r.resolve("127.0.0.1", 80).await.unwrap(),
            vec!["127.0.0.1:80".parse().unwrap()]
        );
        assert_eq!(
            r.resolve("[::1]", 81).await.unwrap(),
            vec!["[::1]:81".parse().unwrap()]
        );
        let local = r.resolve("localhost", 82).await.unwrap();
        assert!(local[0].is_ipv4(), "{local:?}");
        assert!(r.resolve("no-such-host.invalid", 80).await.is_err());
    }
}
