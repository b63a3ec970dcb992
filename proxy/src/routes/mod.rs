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
//! - [`forward::upstream_peer`]: the URL ([`pool::UrlPool`]) and its peer, built by the shared
//!   upstream client (async DNS, trust roots, ALPN, timeouts).
//! - [`forward::upstream_request`]: path (strip_prefix, the URL's path), `Host`, `set_headers`,
//!   the gateway credential removed.
//! - [`forward::fail_to_connect`] / [`forward::fail_to_proxy`]: another URL, or a short 502.
//! - [`log::record`]: the log line and the route metrics (no ledger row: nothing is billed).

pub mod forward;
pub mod log;
pub mod pool;

use crate::downstream::{Attribution, Downstream, Handled};
use crate::phases::{request, Identity, RequestCtx};
use crate::state::AppState;
use crate::surface::{self, Surface};
use bitrouter_config::routes::Route;
use bitrouter_config::Config;
use http::{HeaderName, HeaderValue};
use pingora_error::{Error, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use pool::UrlPool;
use std::sync::Arc;

/// One configured route, ready to serve.
#[derive(Debug)]
pub struct CompiledRoute {
    pub route: Arc<Route>,
    /// URL selection (state lives as long as the snapshot: a reload starts it afresh).
    pub pool: UrlPool,
    /// `set_headers`, parsed once.
    pub set_headers: Vec<(HeaderName, HeaderValue)>,
}

/// The routes of one configuration, in order.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Arc<CompiledRoute>>,
}

impl RouteTable {
    pub fn new(config: &Config) -> RouteTable {
        let routes = config
            .routes
            .iter()
            .map(|r| {
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
                    pool: UrlPool::new(r.upstream.urls.len()),
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

/// A request being proxied by a route.
#[derive(Debug)]
pub struct Proxied {
    pub route: Arc<CompiledRoute>,
    /// The URL of the current try.
    pub url: Option<usize>,
    /// URLs tried so far (a connection failure moves to one not in here).
    pub tried: Vec<usize>,
    /// The address the last try connected to, for the log line.
    pub peer: Option<String>,
    /// Index of the current try's address among the URL's resolved addresses, and how many
    /// there are: a connection refused on one address (`localhost` as `::1`) moves to the
    /// next address of the same URL before the URL counts as failed.
    pub addr: usize,
    pub addrs: usize,
    /// The next try stays on the current URL (its next address).
    pub next_addr: bool,
}

impl Proxied {
    pub fn name(&self) -> &str {
        &self.route.route.name
    }
}

/// `request_filter` for routes: `None` when the request is not for a route (the LLM path takes
/// it, or answers the 404 as before); `Some(Ok(false))` to let Pingora proxy it;
/// `Some(Ok(true))` when a refusal was written.
pub async fn request_filter(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Option<Result<bool>> {
    if ctx.snapshot.routes.is_empty() {
        return None;
    }
    let req = session.req_header();
    // LLM surfaces and the router's own endpoints (even with a wrong method) come first.
    if surface::classify(req.method.as_str(), req.uri.path()) != Surface::Unknown {
        return None;
    }
    let route = ctx.snapshot.routes.find(req)?.clone();
    let auth = route.route.auth;
    ctx.proxied = Some(Proxied {
        route,
        url: None,
        tried: Vec::new(),
        peer: None,
        addr: 0,
        addrs: 0,
        next_addr: false,
    });
    if !auth {
        return Some(Ok(false));
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
        return Some(Ok(false));
    };
    let req = session.req_header();
    let protocol = surface::guess_protocol(req.uri.path(), &req.headers);
    let mut dn = Downstream::new(session, protocol);
    ctx.fail(&e);
    let handled = dn.fail(&e, Attribution::default()).await;
    ctx.status = dn.status();
    ctx.bytes_out = dn.bytes_out();
    Some(match handled {
        Handled::Complete => Ok(true),
        Handled::Aborted => Err(Error::explain(
            ErrorType::ConnectionClosed,
            "response aborted mid-way",
        )),
    })
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
        let table = RouteTable::new(&config);
        let req = |path: &str| RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        let name = |r: &RequestHeader| table.find(r).map(|r| r.route.name.clone());
        assert_eq!(name(&req("/x/1")).as_deref(), Some("a"));
        assert_eq!(name(&req("/y")).as_deref(), Some("b"));
    }
}
