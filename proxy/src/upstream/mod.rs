//! Calling providers: Pingora's HTTP/1 and h2 connectors (pooled, reused connections, HTTP/1.1
//! and h2 over TLS), peers built from resolved addresses, per-provider trust roots.

pub mod dns;
pub mod headers;
pub mod tls;
pub mod transport;

use crate::error::ProxyError;
use arc_swap::ArcSwap;
use bitrouter_config::{Config, Origin, Provider, Timeouts};
use hashbrown::Equivalent;
use pingora_core::connectors::http::{v1, v2};
use pingora_core::connectors::ConnectorOptions;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::l4::ext::TcpKeepalive;
use pingora_core::protocols::tls::CaType;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::HttpPeer;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A provider's peers, built once per DNS answer: building them allocates (SNI, options), and
/// they are the same for every request until the addresses change.
pub type PeerSet = Arc<Peers>;

/// The peers of one origin (one per resolved address, in the order to try them) and how many
/// exchanges hold a connection to one of them right now (one [`transport::PeerRef`] each),
/// which decides how long a released connection stays pooled ([`pool_idle`]).
pub struct Peers {
    list: Box<[HttpPeer]>,
    busy: AtomicUsize,
}

impl Peers {
    fn new(list: Vec<HttpPeer>) -> Peers {
        Peers {
            list: list.into(),
            busy: AtomicUsize::new(0),
        }
    }

    /// Exchanges holding a connection to this origin now.
    pub fn busy(&self) -> usize {
        self.busy.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for Peers {
    type Target = [HttpPeer];
    fn deref(&self) -> &[HttpPeer] {
        &self.list
    }
}

/// Idle connections to one origin that stay pooled for the whole `pool_idle_secs`: the warm
/// set, as nginx's `keepalive 64;` (the benchmark's nginx) keeps per upstream.
pub const WARM_CONNECTIONS: usize = 64;

/// How long a connection beyond the warm set stays pooled without being reused: the
/// keep-alive timeout of uvicorn (vLLM, most Python inference servers) and Node's HTTP server,
/// so the server would soon close it anyway.
pub const SURPLUS_IDLE: Duration = Duration::from_secs(5);

/// How long a connection released while `busy` exchanges (itself included) hold connections
/// to its origin stays pooled, `configured` being the provider's `pool_idle_secs`.
///
/// With more than [`WARM_CONNECTIONS`] busy, at least that many other connections will come
/// back to the pool after this one, so this one is surplus: kept [`SURPLUS_IDLE`] (if
/// `configured` is not shorter). Under steady load a connection is reused within
/// milliseconds and never reaches either timeout; after a burst, the surplus goes back within
/// seconds instead of holding a socket on both sides and, in the proxy, ~2.9 KB each that pin
/// allocator pages. `benches/load`, 10,000 open streams (quick runs): 242 connections pooled
/// 10 s after the burst before this, 64 with it; resident memory then 1.47–1.53× idle in five
/// runs before (mean 1.51×), 1.44–1.49× in seven with it (mean 1.47×).
pub fn pool_idle(busy: usize, configured: Duration) -> Duration {
    if busy > WARM_CONNECTIONS {
        configured.min(SURPLUS_IDLE)
    } else {
        configured
    }
}

/// Requests one h2 upstream connection may carry at once (the server's own limit applies when
/// lower; hosted APIs announce 100–250). Beyond it the connector opens another connection.
const H2_STREAMS_PER_CONNECTION: usize = 128;

/// The shared upstream client.
///
/// It holds Pingora's HTTP/1 and h2 connectors itself rather than the combined
/// `connectors::http::Connector` (which is the same two connectors behind one
/// `get_http_session`): that call's future carries the TCP and TLS handshakes even when a pooled
/// connection is handed out, about 9 KB that every request's future then holds and moves. Here the
/// pooled path is a small future and a new connection is a boxed one.
pub struct UpstreamClient {
    h1: v1::Connector,
    h2: v2::Connector,
    resolver: dns::Resolver,
    /// `ca_file` path -> its certificates, for the current configuration (replaced on a
    /// snapshot swap by [`UpstreamClient::load_cas`]).
    cas: ArcSwap<HashMap<PathBuf, Arc<CaType>>>,
    /// What shapes a peer -> (when built, peers). Expires with the DNS cache.
    peers: Mutex<hashbrown::HashMap<PeerKey, (Instant, PeerSet)>>,
}

/// Everything a provider's peers are built from: the origin (scheme, host, port), the trust
/// roots and the timeouts. Keyed by this rather than by provider id, a provider whose
/// `api_base` changes (a config reload) can never be handed another origin's peers, and two
/// providers on the same origin with the same settings share one set (and its connections).
#[derive(Debug, Clone, PartialEq)]
struct PeerKey {
    origin: Origin,
    ca_file: Option<PathBuf>,
    timeouts: Timeouts,
}

// `Timeouts` is made of durations, so equality is total.
impl Eq for PeerKey {}

/// A [`PeerKey`] borrowed from a provider, for lookups that copy nothing.
#[derive(Clone, Copy)]
struct PeerKeyRef<'a> {
    origin: &'a Origin,
    ca_file: Option<&'a Path>,
    timeouts: &'a Timeouts,
}

fn hash_peer_key<H: Hasher>(origin: &Origin, ca: Option<&Path>, t: &Timeouts, h: &mut H) {
    origin.hash(h);
    ca.hash(h);
    for d in [t.connect, t.read, t.write, t.pool_idle] {
        d.hash(h);
    }
    for d in [t.tcp_keepalive, t.total, t.first_byte] {
        d.hash(h);
    }
}

impl Hash for PeerKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_peer_key(&self.origin, self.ca_file.as_deref(), &self.timeouts, h);
    }
}

impl Hash for PeerKeyRef<'_> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        hash_peer_key(self.origin, self.ca_file, self.timeouts, h);
    }
}

impl Equivalent<PeerKey> for PeerKeyRef<'_> {
    fn equivalent(&self, key: &PeerKey) -> bool {
        *self.origin == key.origin
            && self.ca_file == key.ca_file.as_deref()
            && *self.timeouts == key.timeouts
    }
}

impl From<PeerKeyRef<'_>> for PeerKey {
    fn from(r: PeerKeyRef<'_>) -> PeerKey {
        PeerKey {
            origin: r.origin.clone(),
            ca_file: r.ca_file.map(Path::to_path_buf),
            timeouts: *r.timeouts,
        }
    }
}

/// Every provider's `ca_file`, read and checked.
fn read_cas(config: &Config) -> Result<HashMap<PathBuf, Arc<CaType>>, String> {
    let mut cas = HashMap::new();
    for provider in &config.providers {
        if let Some(path) = &provider.ca_file {
            if !cas.contains_key(path) {
                let ca = tls::load_ca_file(path)
                    .map_err(|e| format!("provider `{}`: {e}", provider.id))?;
                cas.insert(path.clone(), ca);
            }
        }
    }
    Ok(cas)
}

impl UpstreamClient {
    /// Builds the client, loading every provider's `ca_file` up front so a bad file fails at
    /// start-up, not on the first request.
    pub fn new(config: &Config) -> Result<UpstreamClient, String> {
        let cas = ArcSwap::from_pointee(read_cas(config)?);
        let mut options = ConnectorOptions::new(256);
        options.keepalive_pool_size = 256;
        Ok(UpstreamClient {
            h1: v1::Connector::new(Some(options.clone())),
            h2: v2::Connector::new(Some(options)),
            resolver: dns::Resolver::default(),
            cas,
            peers: Mutex::new(hashbrown::HashMap::new()),
        })
    }

    /// Loads the trust roots of a new configuration (every `ca_file` read again, so a rotated
    /// file is picked up) and drops the cached peers built with the old ones. On error nothing
    /// changes.
    pub fn load_cas(&self, config: &Config) -> Result<(), String> {
        let cas = read_cas(config)?;
        self.cas.store(Arc::new(cas));
        if let Ok(mut peers) = self.peers.lock() {
            peers.clear();
        }
        Ok(())
    }

    /// A session to `peer`: a pooled one when idle (h2 streams first, then HTTP/1 connections,
    /// as Pingora's combined connector does), else a new connection. `true` when pooled.
    pub async fn session(&self, peer: &HttpPeer) -> pingora_error::Result<(HttpSession, bool)> {
        let h1_only = peer.options.alpn.get_max_http_version() == 1;
        if !h1_only {
            if let Some(h2) = self.h2.reused_http_session(peer).await? {
                return Ok((HttpSession::H2(h2), true));
            }
        }
        if let Some(h1) = self.h1.reused_http_session(peer).await {
            return Ok((HttpSession::H1(h1), true));
        }
        let session = Box::pin(self.connect(peer, h1_only)).await?;
        Ok((session, false))
    }

    async fn connect(&self, peer: &HttpPeer, h1_only: bool) -> pingora_error::Result<HttpSession> {
        if h1_only {
            let (h1, _) = self.h1.get_http_session(peer).await?;
            Ok(HttpSession::H1(h1))
        } else {
            // Negotiates h2 or HTTP/1.1 by ALPN.
            self.h2.new_http_session(peer).await
        }
    }

    /// Returns a fully read session to its pool (an HTTP/1 connection is kept only if it can
    /// be reused), for `idle` (the provider's `pool_idle_secs`) or, when the connection is
    /// surplus to its origin's warm set, less ([`pool_idle`]).
    pub async fn release(&self, session: HttpSession, peer: &transport::PeerRef, idle: Duration) {
        let idle = peer.pool_idle(idle);
        let peer = peer.peer();
        match session {
            HttpSession::H1(h1) => self.h1.release_http_session(h1, peer, Some(idle)).await,
            HttpSession::H2(h2) => self.h2.release_http_session(h2, peer, Some(idle)),
            HttpSession::Custom(_) => {}
        }
    }

    /// The addresses of `provider`'s origin (cached), waiting for a lookup at most the
    /// provider's connect timeout.
    pub async fn resolve(&self, provider: &Provider) -> Result<Vec<SocketAddr>, String> {
        self.resolve_at(&provider.origin, provider.timeouts.connect)
            .await
    }

    /// The addresses of `origin` (a route's URL has no provider), looked up within `timeout`.
    pub async fn resolve_at(
        &self,
        origin: &Origin,
        timeout: Duration,
    ) -> Result<Vec<SocketAddr>, String> {
        self.resolver
            .resolve(&origin.host, origin.port, timeout)
            .await
    }

    /// Peers for `provider`, one per resolved address, in the order to try them, carrying the
    /// provider's timeouts. Cached as long as the addresses are, per origin and settings
    /// ([`PeerKey`]).
    pub async fn peers(&self, provider: &Provider) -> Result<PeerSet, ProxyError> {
        self.peers_at(
            &provider.origin,
            provider.ca_file.as_deref(),
            &provider.timeouts,
        )
        .await
        .map_err(|detail| ProxyError::UpstreamConnect {
            provider: provider.id.clone(),
            detail,
        })
    }

    /// [`Self::peers`] for any origin (a route's URL): the same cache, DNS and trust roots
    /// (`ca_file` must be one the configuration loaded, i.e. a provider's).
    pub async fn peers_at(
        &self,
        origin: &Origin,
        ca_file: Option<&Path>,
        timeouts: &Timeouts,
    ) -> Result<PeerSet, String> {
        let key = PeerKeyRef {
            origin,
            ca_file,
            timeouts,
        };
        if let Ok(cache) = self.peers.lock() {
            if let Some((at, peers)) = cache.get(&key) {
                if at.elapsed() < dns::TTL {
                    return Ok(peers.clone());
                }
            }
        }
        let peers = self.build_peers(origin, ca_file, timeouts).await?;
        if let Ok(mut cache) = self.peers.lock() {
            cache.insert(PeerKey::from(key), (Instant::now(), peers.clone()));
        }
        Ok(peers)
    }

    async fn build_peers(
        &self,
        origin: &Origin,
        ca_file: Option<&Path>,
        t: &Timeouts,
    ) -> Result<PeerSet, String> {
        let addrs = self.resolve_at(origin, t.connect).await?;
        let ca = ca_file.and_then(|p| self.cas.load().get(p).cloned());
        // Pingora pools connections by address and SNI, not by trust roots: keep connections
        // verified against a private CA apart from those verified against the system roots.
        let group_key = ca_file.map_or(0, |p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            h.finish()
        });
        let t = *t;
        let list = addrs
            .into_iter()
            .map(|addr| {
                let mut peer = HttpPeer::new(addr, origin.tls, origin.host.clone());
                peer.options.connection_timeout = Some(t.connect);
                peer.options.total_connection_timeout = Some(t.connect);
                peer.options.read_timeout = Some(t.read);
                peer.options.write_timeout = Some(t.write);
                peer.options.idle_timeout = Some(t.pool_idle);
                peer.options.tcp_keepalive = t.tcp_keepalive.map(|idle| TcpKeepalive {
                    idle,
                    interval: idle
                        .min(Duration::from_secs(15))
                        .max(Duration::from_secs(1)),
                    count: 5,
                    #[cfg(target_os = "linux")]
                    user_timeout: Duration::ZERO,
                });
                peer.options.alpn = if origin.tls { ALPN::H2H1 } else { ALPN::H1 };
                // Pingora's default is 1: an h2 connection then carries one request at a time
                // and is never shared, so 64 concurrent requests opened 64 TLS connections
                // (benches/load, HTTPS upstreams). The connector takes the smaller of this and
                // the server's SETTINGS_MAX_CONCURRENT_STREAMS.
                peer.options.max_h2_streams = H2_STREAMS_PER_CONNECTION;
                peer.options.ca = ca.clone();
                peer.group_key = group_key;
                peer
            })
            .collect::<Vec<_>>();
        Ok(Arc::new(Peers::new(list)))
    }

    /// Forget cached addresses for a host after a connect failure, so the next request resolves
    /// again (for every provider on that host and port).
    pub fn forget(&self, provider: &Provider) {
        self.forget_origin(&provider.origin);
    }

    /// [`Self::forget`] for any origin.
    pub fn forget_origin(&self, origin: &Origin) {
        if let Ok(mut cache) = self.peers.lock() {
            cache.retain(|k, _| !(k.origin.host == origin.host && k.origin.port == origin.port));
        }
        self.resolver.forget(&origin.host, origin.port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{load_str, MapEnv};
    use pingora_core::upstreams::peer::Peer;

    fn config(yaml: &str) -> Config {
        match load_str(yaml, "t.yaml", &MapEnv::new(Vec::<(String, String)>::new())) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn connections_beyond_the_warm_set_are_kept_briefly() {
        let ninety = Duration::from_secs(90);
        assert_eq!(pool_idle(1, ninety), ninety);
        assert_eq!(pool_idle(WARM_CONNECTIONS, ninety), ninety);
        assert_eq!(pool_idle(WARM_CONNECTIONS + 1, ninety), SURPLUS_IDLE);
        assert_eq!(pool_idle(10_000, ninety), SURPLUS_IDLE);
        // A shorter configured timeout is never lengthened.
        let one = Duration::from_secs(1);
        assert_eq!(pool_idle(10_000, one), one);
    }

    #[tokio::test]
    async fn peers_are_shared_by_origin_and_settings_not_by_provider_id() {
        let c = config(
            "
providers:
  one:
    api_base: http://127.0.0.1:9001/v1
  two:
    api_base: http://127.0.0.1:9001/api/v1
  slow:
    api_base: http://127.0.0.1:9001/v1
    timeouts: { read_secs: 5 }
  other:
    api_base: http://127.0.0.1:9002/v1
",
        );
        let client = UpstreamClient::new(&c).unwrap();
        let get = |i: usize| client.peers(&c.providers[i]);
        let (one, two, slow, other) = (
            get(0).await.unwrap(),
            get(1).await.unwrap(),
            get(2).await.unwrap(),
            get(3).await.unwrap(),
        );
        assert!(
            Arc::ptr_eq(&one, &two),
            "same origin, same settings: one peer set"
        );
        assert!(!Arc::ptr_eq(&one, &slow), "other timeouts: other peers");
        assert_eq!(slow[0].options.read_timeout, Some(Duration::from_secs(5)));
        assert!(!Arc::ptr_eq(&one, &other));
        assert_eq!(other[0].address().to_string(), "127.0.0.1:9002");

        // A reload moves `one` to another origin under the same id: never the old peers.
        let moved = config(
            "providers:
  one:
    api_base: http://127.0.0.1:9003/v1
",
        );
        let peers = client.peers(&moved.providers[0]).await.unwrap();
        assert_eq!(peers[0].address().to_string(), "127.0.0.1:9003");

        // Forgetting a host drops every set on it.
        client.forget(&c.providers[0]);
        let again = get(1).await.unwrap();
        assert!(!Arc::ptr_eq(&two, &again));
        assert!(
            Arc::ptr_eq(&get(3).await.unwrap(), &other),
            "other ports are kept"
        );
    }
}
