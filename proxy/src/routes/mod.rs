//! `routes:`: plain reverse-proxy routes, proxied by Pingora's own proxy loop.
//!
//! Why Pingora's loop here when LLM calls answer in `request_filter` (see [`crate::gateway`]):
//! a route never needs the body to choose its upstream, so nothing stops Pingora from streaming
//! it both ways with its own backpressure (a 1 GB upload never sits in memory), upgrading
//! websockets, and retrying a connection that failed on another URL. The hooks here are the
//! route's side of each Pingora phase:
//!
//! - [`request_filter`]: the request is not an LLM surface or an admin endpoint, and a route
//!   matches (first match wins): check the credential when the route asks, remember the route
//!   in the request's context and let Pingora proxy (`Ok(false)`).
//! - [`forward::upstream_peer`]: the URL, chosen by the route's replica pool
//!   ([`ReplicaPool`]: the provider's own pool for a provider id whose `api_base` is a list,
//!   else one of the route's, kept across reloads), and its peer, built by the shared upstream
//!   client (async DNS, trust roots, ALPN, timeouts).
//! - [`forward::upstream_request`]: path (strip_prefix, the URL's path), `Host`, `set_headers`,
//!   the gateway credential removed.
//! - [`forward::fail_to_connect`] / [`forward::fail_to_proxy`]: another URL (the failure goes
//!   to the replica's health), or a short 502.
//! - [`log::record`]: the log line and the route metrics (no ledger row: nothing is billed).

pub mod forward;
pub mod log;

use crate::balance::replicas::{Pools, ReplicaGuard, ReplicaPool};
use crate::downstream::{Attribution, Downstream, Handled};
use crate::phases::{request, Identity, RequestCtx};
use crate::state::AppState;
use crate::surface;
use bitrouter_config::routes::Route;
use bitrouter_config::{Config, Replica, ReplicaStrategy};
use http::{HeaderName, HeaderValue};
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use std::sync::Arc;

/// The header an `affinity` route keys on (the same one LLM calls read first).
const SESSION_HEADER: &str = "x-session-id";

/// One configured route, ready to serve.
pub struct CompiledRoute {
    pub route: Arc<Route>,
    /// Which URL each try goes to; index `i` is `route.upstream.urls[i]`.
    pub pool: Arc<ReplicaPool>,
    /// `pool` is a provider's: LLM traffic and this route share its in-flight counts and
    /// health (a replica one ejects, the other skips).
    pub shared: bool,
    /// `set_headers`, parsed once.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for CompiledRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRoute")
            .field("route", &self.route.name)
            .field("shared", &self.shared)
            .finish_non_exhaustive()
    }
}

/// The routes of one configuration, in order.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<CompiledRoute>>,
}

impl RouteTable {
    /// The routes of `config`. A route to a provider with replicas uses that provider's pool
    /// from `pools`; any other route gets its own pool, whose URLs still in the route of the
    /// same name in `previous` keep their state (in flight, health), as provider pools do.
    pub fn new(config: &Config, pools: &Pools, previous: Option<&RouteTable>) -> RouteTable {
        let routes = config
            .routes
            .iter()
            .map(|r| {
                let up = &r.upstream;
                let provider_pool = up
                    .provider
                    .as_deref()
                    .and_then(|id| pools.by_id(id))
                    .filter(|pool| pool.len() == up.urls.len());
                let (pool, shared) = match provider_pool {
                    Some(pool) => (pool.clone(), true),
                    None => {
                        let old = previous
                            .and_then(|t| t.routes.iter().find(|c| c.route.name == r.name))
                            .filter(|c| !c.shared);
                        let replicas: Vec<Replica> = up
                            .urls
                            .iter()
                            .map(|u| Replica {
                                api_base: u.url.clone(),
                                origin: u.origin.clone(),
                            })
                            .collect();
                        let pool = ReplicaPool::from_replicas(
                            &replicas,
                            up.strategy,
                            config.upstream.health,
                            crate::balance::probe_window(&up.timeouts),
                            old.map(|c| c.pool.as_ref()),
                        );
                        (Arc::new(pool), false)
                    }
                };
                let set_headers = r
                    .set_headers
                    .iter()
                    .filter_map(|(k, v)| {
                        // Checked by the config loader; a header that still does not parse is
                        // skipped rather than failing every request.
                        Some((
                            HeaderName::from_bytes(k.as_bytes()).ok()?,
                            HeaderValue::from_str(v).ok()?,
                        ))
                    })
                    .collect();
                Arc::new(CompiledRoute {
                    pool,
                    shared,
                    route: r.clone(),
                    set_headers,
                })
            })
            .collect();
        RouteTable { routes }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Every route, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<CompiledRoute>> {
        self.routes.iter()
    }

    /// The state of the routes' own pools for `GET /health/upstreams` (a route sharing a
    /// provider's pool names the provider: its replicas are listed there).
    pub fn to_json(&self, now: std::time::Instant) -> serde_json::Value {
        self.routes
            .iter()
            .map(|r| {
                if r.shared {
                    return serde_json::json!({
                        "route": r.route.name,
                        "provider": r.route.upstream.provider,
                    });
                }
                let pool = r.pool.to_json(now);
                serde_json::json!({
                    "route": r.route.name,
                    "replica_strategy": pool["strategy"],
                    "replicas": pool["replicas"],
                })
            })
            .collect()
    }

    /// The first route `req` matches.
    pub fn find(&self, req: &RequestHeader) -> Option<&Arc<CompiledRoute>> {
        let path = req.uri.path();
        let host = request_host(req);
        self.routes.iter().find(|r| {
            r.route.matcher.matches(path, host, |name| {
                req.headers.get(name).map(HeaderValue::as_bytes)
            })
        })
    }
}

/// The request's host without its port: the HTTP/2 authority, else the `Host` header.
fn request_host(req: &RequestHeader) -> Option<&str> {
    let raw = match req.uri.host() {
        Some(h) => h,
        None => req.headers.get(http::header::HOST)?.to_str().ok()?,
    };
    Some(strip_port(raw))
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[::1]:8080`
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// A request being proxied by a route. Dropped with the request's context, that is when the
/// request has ended (a streamed body or a websocket included): so does `guard`, and with it
/// the replica's in-flight count.
pub struct Proxied {
    pub route: Arc<CompiledRoute>,
    /// The replica of the current try (index into `route.upstream.urls`), holding one unit of
    /// its in-flight count.
    pub guard: Option<ReplicaGuard>,
    /// The current guard's outcome went to its health already.
    pub reported: bool,
    /// Bit mask of the replicas tried so far (a connection failure moves to one not in here).
    pub tried: u64,
    /// Replicas tried so far (the log's `attempts`, the retries metric).
    pub attempts: usize,
    /// The `affinity` key (the `x-session-id` header), for `affinity` routes.
    pub key: Option<u64>,
    /// The address the last try connected to, for the log line (formatted only there).
    pub peer: Option<pingora_core::protocols::l4::socket::SocketAddr>,
    /// Index of the current try's address among the URL's resolved addresses, and how many
    /// there are: a connection refused on one address (`localhost` as `::1`) moves to the
    /// next address of the same URL before the URL counts as failed.
    pub addr: usize,
    pub addrs: usize,
    /// The next try stays on the current URL (its next address).
    pub next_addr: bool,
}

impl std::fmt::Debug for Proxied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxied")
            .field("route", &self.route.route.name)
            .field("url", &self.url())
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl Proxied {
    pub fn name(&self) -> &str {
        &self.route.route.name
    }

    /// The URL index of the current try.
    pub fn url(&self) -> Option<usize> {
        self.guard.as_ref().map(ReplicaGuard::index)
    }

    /// Reports the current try's outcome to its replica's health, once per try.
    pub fn report(&mut self, ok: bool) {
        if self.reported {
            return;
        }
        if let Some(guard) = &self.guard {
            self.reported = true;
            if ok {
                guard.success();
            } else {
                guard.failure();
            }
        }
    }

    /// Whether some replica has not been tried by this request (an ejected one is still
    /// better than an error).
    pub fn has_untried(&self) -> bool {
        (0..self.route.pool.len().min(64)).any(|i| self.tried & (1u64 << i) == 0)
    }
}

/// `request_filter` for routes, called by [`crate::phases::handle`] only for a request that is
/// no LLM surface or endpoint of the router's own (those come first, even with a wrong method)
/// while routes are configured: `None` when no route matches (the 404 as before);
/// `Some(Handled::Proxy)` to let Pingora proxy it; else the refusal that was written.
pub async fn request_filter(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Option<Handled> {
    let req = session.req_header();
    let route = ctx.snapshot.routes.find(req)?.clone();
    let auth = route.route.auth;
    let key = (route.pool.strategy() == ReplicaStrategy::Affinity)
        .then(|| {
            crate::balance::affinity::key(
                req.headers.get(SESSION_HEADER).map(HeaderValue::as_bytes),
                &[],
            )
        })
        .flatten();
    ctx.proxied = Some(Proxied {
        route,
        guard: None,
        reported: false,
        tried: 0,
        attempts: 0,
        key,
        peer: None,
        addr: 0,
        addrs: 0,
        next_addr: false,
    });
    if !auth {
        return Some(Handled::Proxy);
    }
    let admitted = request::authorize(state, ctx, session).and_then(|()| {
        match (
            ctx.identity.as_ref().and_then(Identity::key),
            state.governance(),
        ) {
            (Some(key), Some(gov)) => crate::govern::admit::rate_limit(gov, key),
            _ => Ok(()),
        }
    });
    let Err(e) = admitted else {
        return Some(Handled::Proxy);
    };
    let req = session.req_header();
    let protocol = surface::guess_protocol(req.uri.path(), &req.headers);
    let mut dn = Downstream::new(session, protocol);
    ctx.fail(&e);
    let handled = dn.fail(&e, Attribution::default()).await;
    ctx.status = dn.status();
    ctx.bytes_out = dn.bytes_out();
    Some(handled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(strip_port("a.example.com:8080"), "a.example.com");
        assert_eq!(strip_port("a.example.com"), "a.example.com");
        assert_eq!(strip_port("[::1]:80"), "::1");
    }

    #[test]
    fn first_matching_route_wins() {
        let config = bitrouter_config::load_str(
            "routes:\n  - {name: a, match: {path_prefix: /x}, upstream: 'http://127.0.0.1:1'}\n  - {name: b, match: {path_prefix: /}, upstream: 'http://127.0.0.1:2'}\n  - {name: c, match: {host: h.test}, upstream: 'http://127.0.0.1:3'}\n",
            "t.yaml",
            &bitrouter_config::MapEnv::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let table = RouteTable::new(&config, &Pools::default(), None);
        let req = |path: &str| RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        let name = |r: &RequestHeader| table.find(r).map(|r| r.route.name.clone());
        assert_eq!(name(&req("/x/1")).as_deref(), Some("a"));
        assert_eq!(name(&req("/y")).as_deref(), Some("b"));
    }

    fn load(yaml: &str) -> Config {
        bitrouter_config::load_str(yaml, "t.yaml", &bitrouter_config::MapEnv::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_provider_route_shares_the_providers_pool() {
        let config = load(
            "providers:\n  p:\n    api_base: [http://10.0.0.1:8000/v1, http://10.0.0.2:8000/v1]\n    api_key: k\n    api_protocol: chat_completions\n    replica_strategy: round_robin\n    models: [m]\n  one:\n    api_base: http://10.0.0.3:8000/v1\n    api_key: k\n    api_protocol: chat_completions\n    models: [m1]\nroutes:\n  - {name: r, match: {path_prefix: /r}, upstream: p}\n  - {name: s, match: {path_prefix: /s}, upstream: one}\n",
        );
        let pools = Pools::new(&config, None);
        let table = RouteTable::new(&config, &pools, None);
        let routes: Vec<_> = table.iter().collect();
        let shared = pools.by_id("p").unwrap_or_else(|| panic!("no pool"));
        assert!(routes[0].shared);
        assert!(Arc::ptr_eq(&routes[0].pool, shared));
        assert_eq!(routes[0].route.upstream.urls.len(), 2);
        assert_eq!(routes[0].pool.strategy(), ReplicaStrategy::RoundRobin);
        // A replica the LLM traffic ejects is skipped by the route (failure_threshold 3).
        for _ in 0..3 {
            if let Some(g) = shared.pick_excluding(None, 0b10) {
                g.failure();
            }
        }
        for _ in 0..4 {
            let g = routes[0]
                .pool
                .pick(None)
                .unwrap_or_else(|| panic!("no pick"));
            assert_eq!(g.index(), 1);
        }
        // A single-origin provider: a pool of one, the route's own.
        assert!(!routes[1].shared);
        assert_eq!(routes[1].pool.len(), 1);
    }

    #[test]
    fn a_routes_own_pool_keeps_its_state_across_a_reload() {
        let yaml = |urls: &str| {
            format!("routes:\n  - {{name: r, match: {{path_prefix: /r}}, upstream: [{urls}], replica_strategy: affinity}}\n")
        };
        let first = load(&yaml("'http://10.0.0.1:1', 'http://10.0.0.2:1'"));
        let old = RouteTable::new(&first, &Pools::default(), None);
        let held = old.routes[0].pool.pick_excluding(None, 0b10);
        assert_eq!(held.as_ref().map(ReplicaGuard::index), Some(0));
        let second = load(&yaml("'http://10.0.0.3:1', 'http://10.0.0.1:1'"));
        let new = RouteTable::new(&second, &Pools::default(), Some(&old));
        assert_eq!(new.routes[0].pool.strategy(), ReplicaStrategy::Affinity);
        let json = new.to_json(std::time::Instant::now());
        assert_eq!(json[0]["route"], "r");
        assert_eq!(json[0]["replicas"][1]["api_base"], "http://10.0.0.1:1");
        assert_eq!(json[0]["replicas"][1]["in_flight"], 1, "{json}");
        assert_eq!(json[0]["replicas"][0]["in_flight"], 0, "{json}");
        drop(held);
        let json = new.to_json(std::time::Instant::now());
        assert_eq!(json[0]["replicas"][1]["in_flight"], 0, "{json}");
    }
}
