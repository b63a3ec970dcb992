//! Calling providers: Pingora's HTTP/1 and h2 connectors (pooled, reused connections, HTTP/1.1
//! and h2 over TLS), peers built from resolved addresses, per-provider trust roots.

pub mod dns;
pub mod headers;
pub mod tls;
pub mod transport;

use crate::error::ProxyError;
use bitrouter_config::{Config, Provider};
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
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A provider's peers, built once per DNS answer: building them allocates (SNI, options), and
/// they are the same for every request until the addresses change.
pub type PeerSet = Arc<[HttpPeer]>;

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
    cas: HashMap<PathBuf, Arc<CaType>>,
    /// Provider id -> (when built, peers). Expires with the DNS cache.
    peers: Mutex<HashMap<String, (Instant, PeerSet)>>,
}

impl UpstreamClient {
    /// Builds the client, loading every provider's `ca_file` up front so a bad file fails at
    /// start-up, not on the first request.
    pub fn new(config: &Config) -> Result<UpstreamClient, String> {
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
        let mut options = ConnectorOptions::new(256);
        options.keepalive_pool_size = 256;
        Ok(UpstreamClient {
            h1: v1::Connector::new(Some(options.clone())),
            h2: v2::Connector::new(Some(options)),
            resolver: dns::Resolver::default(),
            cas,
            peers: Mutex::new(HashMap::new()),
        })
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
    /// be reused).
    pub async fn release(&self, session: HttpSession, peer: &HttpPeer, idle: Duration) {
        match session {
            HttpSession::H1(h1) => self.h1.release_http_session(h1, peer, Some(idle)).await,
            HttpSession::H2(h2) => self.h2.release_http_session(h2, peer, Some(idle)),
            HttpSession::Custom(_) => {}
        }
    }

    /// The addresses of `provider`'s origin (cached).
    pub async fn resolve(&self, provider: &Provider) -> Result<Vec<SocketAddr>, String> {
        let origin = &provider.origin;
        self.resolver.resolve(&origin.host, origin.port).await
    }

    /// Peers for `provider`, one per resolved address, in the order to try them, carrying the
    /// provider's timeouts. Cached as long as the addresses are.
    pub async fn peers(&self, provider: &Provider) -> Result<PeerSet, ProxyError> {
        if let Ok(cache) = self.peers.lock() {
            if let Some((at, peers)) = cache.get(provider.id.as_str()) {
                if at.elapsed() < dns::TTL {
                    return Ok(peers.clone());
                }
            }
        }
        let peers = self.build_peers(provider).await?;
        if let Ok(mut cache) = self.peers.lock() {
            cache.insert(provider.id.clone(), (Instant::now(), peers.clone()));
        }
        Ok(peers)
    }

    async fn build_peers(&self, provider: &Provider) -> Result<PeerSet, ProxyError> {
        let origin = &provider.origin;
        let addrs = self
            .resolve(provider)
            .await
            .map_err(|detail| ProxyError::UpstreamConnect {
                provider: provider.id.clone(),
                detail,
            })?;
        let ca = provider
            .ca_file
            .as_ref()
            .and_then(|p| self.cas.get(p))
            .cloned();
        // Pingora pools connections by address and SNI, not by trust roots: keep connections
        // verified against a private CA apart from those verified against the system roots.
        let group_key = provider.ca_file.as_ref().map_or(0, |p| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            p.hash(&mut h);
            h.finish()
        });
        let t = provider.timeouts;
        Ok(addrs
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
                peer.options.ca = ca.clone();
                peer.group_key = group_key;
                peer
            })
            .collect::<Vec<_>>()
            .into())
    }

    /// Forget cached addresses for a host after a connect failure, so the next request resolves
    /// again.
    pub fn forget(&self, provider: &Provider) {
        if let Ok(mut cache) = self.peers.lock() {
            cache.remove(provider.id.as_str());
        }
        self.resolver
            .forget(&provider.origin.host, provider.origin.port);
    }
}
