//! The route's side of Pingora's proxy phases: the peer, the forwarded request header, and
//! what happens when the upstream cannot be reached.

use super::Proxied;
use crate::phases::RequestCtx;
use crate::state::AppState;
use bytes::Bytes;
use pingora_core::protocols::ALPN;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_error::{Error, ErrorSource, ErrorType, Result};
use pingora_http::RequestHeader;
use pingora_proxy::{FailToProxy, Session};

/// The client credentials a route with `auth: true` removes before forwarding (the gateway
/// key or a virtual key must never reach a backend that did not issue it).
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-goog-api-key"];

fn proxied(ctx: &mut RequestCtx) -> Result<&mut Proxied> {
    ctx.proxied
        .as_mut()
        .ok_or_else(|| Error::explain(ErrorType::InternalError, "no route for this request"))
}

/// `upstream_peer`: the next URL of the route, chosen by its replica pool among those this
/// request has not tried, and a peer for it (its first resolved address, or the next one after
/// a refused connection), from the shared upstream client's cache. Called again by Pingora for
/// each retry.
pub async fn upstream_peer(
    state: &AppState,
    session: &Session,
    ctx: &mut RequestCtx,
) -> Result<Box<HttpPeer>> {
    let p = proxied(ctx)?;
    let route = p.route.clone();
    let index = match (p.next_addr, p.url()) {
        (true, Some(index)) => {
            p.addr += 1;
            index
        }
        _ => {
            // The previous try's guard (if any) is dropped here: its in-flight unit ends.
            p.guard = None;
            let Some(guard) = route.pool.pick_excluding(p.key, p.tried) else {
                return Error::e_explain(ErrorType::ConnectError, "every upstream URL was tried");
            };
            let index = guard.index();
            p.guard = Some(guard);
            p.reported = false;
            p.tried |= 1u64 << index.min(63);
            p.attempts += 1;
            p.addr = 0;
            index
        }
    };
    p.next_addr = false;
    let upstream = &route.route.upstream;
    let Some(url) = upstream.urls.get(index) else {
        return Error::e_explain(ErrorType::InternalError, "replica outside the route's URLs");
    };
    let peers = state
        .upstream
        .peers_at(&url.origin, upstream.ca_file.as_deref(), &upstream.timeouts)
        .await;
    let peer = match peers {
        Ok(peers) => {
            p.addrs = peers.len();
            peers.get(p.addr).cloned()
        }
        Err(detail) => {
            log::debug!("route `{}`: {}: {detail}", route.route.name, url.url);
            None
        }
    };
    let Some(mut peer) = peer else {
        p.report(false);
        let mut e = Error::create(
            ErrorType::ConnectNoRoute,
            ErrorSource::Upstream,
            Some(format!("cannot resolve {}", url.origin.host).into()),
            None,
        );
        e.set_retry(p.has_untried());
        return Err(e);
    };
    // A websocket (or any Upgrade) needs HTTP/1.1 to the upstream.
    if session.is_upgrade_req() {
        peer.options.alpn = ALPN::H1;
    }
    p.peer = Some(peer.address().clone());
    Ok(Box::new(peer))
}

/// `upstream_request_filter`: the path the upstream sees (the matched prefix removed with
/// `strip_prefix`, the URL's own path put first, the query kept), `Host` set to the
/// upstream's authority as nginx's default `proxy_set_header Host $proxy_host` does, then
/// `set_headers`; with `auth: true` the client's credential removed.
pub fn upstream_request(up: &mut RequestHeader, ctx: &mut RequestCtx) -> Result<()> {
    let p = proxied(ctx)?;
    let route = &p.route.route;
    let Some(url) = p.url().and_then(|i| route.upstream.urls.get(i)) else {
        return Error::e_explain(ErrorType::InternalError, "no upstream URL chosen");
    };
    let uri = up.uri.clone();
    let path = uri.path();
    let mut rest = path;
    if route.strip_prefix {
        if let Some(prefix) = &route.matcher.path_prefix {
            rest = path.strip_prefix(prefix.as_str()).unwrap_or(path);
        }
    }
    let mut query = uri.query().map(str::to_string);
    if route.auth {
        for name in CREDENTIAL_HEADERS {
            up.remove_header(name);
        }
        query = query.and_then(|q| without_param(&q, "key"));
    }
    if rest.len() != path.len() || !url.base_path.is_empty() || route.auth {
        let mut target = String::with_capacity(url.base_path.len() + rest.len() + 16);
        target.push_str(&url.base_path);
        if !rest.starts_with('/') {
            target.push('/');
        }
        target.push_str(rest);
        if let Some(q) = query {
            target.push('?');
            target.push_str(&q);
        }
        up.set_raw_path(target.as_bytes())?;
    }
    up.insert_header(http::header::HOST, url.authority())?;
    for (name, value) in &p.route.set_headers {
        up.insert_header(name.clone(), value.clone())?;
    }
    Ok(())
}

/// `query` without `name=...` pairs; `None` when nothing is left.
fn without_param(query: &str, name: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name))
        .collect();
    (!kept.is_empty() && kept.iter().any(|p| !p.is_empty())).then(|| kept.join("&"))
}

/// `fail_to_connect`: the next resolved address of the same URL when there is one; else the
/// failure goes to the replica's health (ejected after `upstream.health.failure_threshold` in a
/// row), its cached addresses are forgotten, and Pingora told to retry when the route has a URL
/// this request has not tried (nothing of the request has been sent yet, so any method may go
/// elsewhere).
pub fn fail_to_connect(state: &AppState, ctx: &mut RequestCtx, mut e: Box<Error>) -> Box<Error> {
    let Some(p) = ctx.proxied.as_mut() else {
        return e;
    };
    if p.addr + 1 < p.addrs {
        // Another address of the same URL first.
        p.next_addr = true;
        e.set_retry(true);
        return e;
    }
    if let Some(index) = p.url() {
        p.report(false);
        if let Some(url) = p.route.route.upstream.urls.get(index) {
            state.upstream.forget_origin(&url.origin);
            log::warn!(
                "route `{}`: cannot connect to {}: {e}",
                p.route.route.name,
                url.url
            );
        }
    }
    if p.has_untried() {
        e.set_retry(true);
    }
    e
}

/// The upstream answered (a response header arrived): its replica is healthy.
pub fn answered(ctx: &mut RequestCtx) {
    if let Some(p) = ctx.proxied.as_mut() {
        p.report(true);
    }
    ctx.upstream_ttfb = Some(ctx.start.elapsed());
}

/// `fail_to_proxy`: a status for the log, and, when nothing was sent yet, a short plain-text
/// answer (502 when the upstream could not be reached or broke, 504 when it timed out).
pub async fn fail_to_proxy(session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
    let code = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream => match e.etype() {
                ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
                    504
                }
                _ => 502,
            },
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    };
    // An upstream that broke or timed out before answering counts against its replica (a
    // refused connection was counted by `fail_to_connect` already).
    if e.esource() == &ErrorSource::Upstream && ctx.upstream_ttfb.is_none() {
        if let Some(p) = ctx.proxied.as_mut() {
            p.report(false);
        }
    }
    let name = ctx.proxied.as_ref().map_or("-", |p| p.name()).to_string();
    if ctx.error.is_none() {
        ctx.error = Some(crate::phases::ErrorSummary {
            kind: bitrouter_filters::canonical::ErrorKind::from_status(if code == 0 {
                502
            } else {
                code
            }),
            code: None,
            fault: match e.esource() {
                ErrorSource::Downstream => crate::error::Fault::Downstream,
                ErrorSource::Upstream => crate::error::Fault::Upstream,
                _ => crate::error::Fault::Internal,
            },
            message: e.to_string().replace('"', "'"),
        });
    }
    if code > 0 && session.response_written().is_none() {
        let reason = http::StatusCode::from_u16(code)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("Error");
        let body = format!("{code} {reason}: route `{name}`: the upstream is not answering\n");
        if session
            .respond_error_with_body(code, Bytes::from(body))
            .await
            .is_err()
        {
            log::debug!("route `{name}`: the client left before the error answer");
        }
    }
    ctx.status = session
        .response_written()
        .map_or(code, |r| r.status.as_u16());
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}

#[cfg(test)]
mod tests {
    use super::without_param;

    #[test]
    fn the_key_leaves_the_query() {
        assert_eq!(without_param("key=s&a=1", "key").as_deref(), Some("a=1"));
        assert_eq!(
            without_param("a=1&key=s&b", "key").as_deref(),
            Some("a=1&b")
        );
        assert_eq!(without_param("key=s", "key"), None);
        assert_eq!(without_param("keys=1", "key").as_deref(), Some("keys=1"));
    }
}
