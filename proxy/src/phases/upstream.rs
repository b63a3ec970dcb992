//! The upstream call, made by bitrouter itself through Pingora's pooled connector, and the
//! response relayed to the client as it arrives.
//!
//! Mechanics: for each candidate target (in the routing order) we take a connection from the
//! connector's pool (or open one: TCP, TLS with h2/h1 ALPN), write the request header and the
//! whole body, and read the response header. Until that point nothing has reached the client, so
//! a connection failure moves on to the next target. From the first byte written downstream on,
//! the answer is committed: body chunks are forwarded as they are read (an SSE event reaches the
//! client as soon as the upstream sends it; nothing is buffered), and a failure ends the
//! response abruptly rather than with a clean end. A connection whose response was read to its
//! end goes back to the pool; one abandoned mid-way is closed, which is also how a client that
//! disconnects stops the upstream from generating (and billing) more tokens.

use super::route::{Attempt, Plan};
use super::{translate, RequestCtx};
use crate::error::ProxyError;
use crate::state::AppState;
use crate::upstream::headers;
use bitrouter_config::Provider;
use bytes::Bytes;
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::ResponseHeader;
use pingora_proxy::Session;
use std::sync::Arc;

/// A stale pooled connection can fail on first use; try a fresh one this many times.
const STALE_RETRIES: usize = 2;

/// Sends the request to the first target that accepts it and relays the response.
pub async fn forward(
    state: &Arc<AppState>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: Plan,
) -> Result<(), ProxyError> {
    let mut last_error = None;
    let targets = &plan.resolution.targets;
    for (i, target) in targets.iter().enumerate() {
        let attempt = plan.attempt(target)?;
        ctx.provider = Some(target.provider.id.clone());
        ctx.service_id = Some(target.service_id.clone());
        match call(state, session, ctx, &attempt).await {
            Ok(()) => return Ok(()),
            // Nothing reached the client yet and another target might work: fail over.
            Err(e) if ctx.status == 0 && e.retryable() && i + 1 < targets.len() => {
                log::warn!(
                    "model `{}`: {e}; trying the next endpoint",
                    plan.resolution.requested
                );
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_error.unwrap_or_else(|| ProxyError::Internal("no upstream target".into())))
}

/// One upstream exchange.
async fn call(
    state: &AppState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    attempt: &Attempt<'_>,
) -> Result<(), ProxyError> {
    let provider = &attempt.target.provider;
    let client_headers = session.req_header().headers.clone();
    // Waiting for the upstream's first byte can take long (reasoning models); stop as soon as
    // the client hangs up.
    let (mut up, peer) = tokio::select! {
        r = exchange(state, &client_headers, provider, attempt) => r?,
        r = session.read_body_or_idle(true) => {
            return Err(match r {
                Err(_) => ProxyError::ClientGone,
                Ok(_) => ProxyError::ClientBody("unexpected bytes after the request body".into()),
            });
        }
    };
    ctx.upstream_ttfb = Some(ctx.start.elapsed());
    if let HttpSession::H1(h1) = &mut up {
        h1.respect_keepalive();
    }
    let mut body = UpstreamBody {
        up,
        provider,
        watch_client: true,
    };
    match &attempt.translation {
        None => relay(session, ctx, &mut body, &attempt.target.service_id).await?,
        Some(t) => translate::relay(session, ctx, &mut body, t, &attempt.target.service_id).await?,
    }
    let mut up = body.up;
    if up.response_done() {
        let idle = state.upstream.timeouts.pool_idle;
        state
            .upstream
            .connector()
            .release_http_session(up, &peer, Some(idle))
            .await;
    } else {
        up.shutdown().await;
    }
    Ok(())
}

/// The upstream response being read, watched together with the client's connection.
pub struct UpstreamBody<'a> {
    pub up: HttpSession,
    pub provider: &'a Provider,
    watch_client: bool,
}

impl UpstreamBody<'_> {
    /// The upstream's response header (present once `exchange` returned).
    pub fn header(&self) -> Result<&ResponseHeader, ProxyError> {
        self.up
            .response_header()
            .ok_or_else(|| broken(self.provider, "no response header"))
    }

    /// The next body chunk, `None` at the end. Returns [`ProxyError::ClientGone`] as soon as
    /// the client closes its side, so we stop reading (and paying for) the upstream.
    pub async fn next(&mut self, session: &mut Session) -> Result<Option<Bytes>, ProxyError> {
        loop {
            let read = if self.watch_client {
                tokio::select! {
                    r = self.up.read_response_body() => r,
                    r = session.read_body_or_idle(true) => match r {
                        Err(_) => return Err(ProxyError::ClientGone),
                        Ok(_) => {
                            self.watch_client = false;
                            continue;
                        }
                    },
                }
            } else {
                self.up.read_response_body().await
            };
            return read.map_err(|e| classify(self.provider, &e, true));
        }
    }

    /// The whole remaining body, refusing more than `limit` bytes.
    pub async fn read_all(
        &mut self,
        session: &mut Session,
        limit: usize,
    ) -> Result<Bytes, ProxyError> {
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = self.next(session).await? {
            if buf.len() + chunk.len() > limit {
                return Err(broken(
                    self.provider,
                    &format!("response body larger than {limit} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    }
}

/// Same-protocol relay: the upstream's status, headers and bytes as they arrive.
async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    body: &mut UpstreamBody<'_>,
    service_id: &str,
) -> Result<(), ProxyError> {
    let resp = headers::downstream_response(body.header()?, &body.provider.id, service_id)?;
    ctx.status = resp.status.as_u16();
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
    {
        return Err(ProxyError::ClientGone);
    }
    while let Some(chunk) = body.next(session).await? {
        ctx.bytes_out += chunk.len();
        if session
            .write_response_body(Some(chunk), false)
            .await
            .is_err()
        {
            return Err(ProxyError::ClientGone);
        }
    }
    if session.write_response_body(None, true).await.is_err() {
        return Err(ProxyError::ClientGone);
    }
    Ok(())
}

/// Connects, sends the request, and reads the response header, retrying on a fresh connection
/// when a pooled one turns out to be stale.
async fn exchange(
    state: &AppState,
    client_headers: &http::HeaderMap,
    provider: &Provider,
    attempt: &Attempt<'_>,
) -> Result<(HttpSession, HttpPeer), ProxyError> {
    let peers = state.upstream.peers(provider).await?;
    let mut tries = 0;
    loop {
        let (mut up, reused, peer) = connect(state, provider, &peers).await?;
        let header = headers::upstream_request(
            provider,
            &attempt.path,
            client_headers,
            attempt.body.len(),
            up.as_http2().is_some(),
        )?;
        let sent = async {
            up.write_request_header(Box::new(header)).await?;
            up.write_request_body(attempt.body.clone(), true).await?;
            up.finish_request_body().await?;
            up.read_response_header().await
        }
        .await;
        match sent {
            Ok(()) => return Ok((up, peer)),
            Err(e) if reused && tries < STALE_RETRIES => {
                log::debug!("pooled connection to `{}` was stale: {e}", provider.id);
                tries += 1;
            }
            Err(e) => return Err(classify(provider, &e, false)),
        }
    }
}

/// A session to the first reachable address of `provider`.
async fn connect(
    state: &AppState,
    provider: &Provider,
    peers: &[HttpPeer],
) -> Result<(HttpSession, bool, HttpPeer), ProxyError> {
    let mut last = None;
    for peer in peers {
        match state.upstream.connector().get_http_session(peer).await {
            Ok((session, reused)) => return Ok((session, reused, peer.clone())),
            Err(e) => last = Some(e),
        }
    }
    state.upstream.forget(provider);
    Err(match last {
        Some(e) => classify(provider, &e, false),
        None => ProxyError::UpstreamConnect {
            provider: provider.id.clone(),
            detail: "no address to connect to".into(),
        },
    })
}

pub(crate) fn broken(provider: &Provider, detail: &str) -> ProxyError {
    ProxyError::UpstreamBroken {
        provider: provider.id.clone(),
        detail: detail.to_string(),
    }
}

/// Maps a Pingora error on the upstream side to ours. `started`: the response had begun.
fn classify(provider: &Provider, e: &Error, started: bool) -> ProxyError {
    let provider_id = provider.id.clone();
    let detail = e.to_string();
    match e.etype() {
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => {
            ProxyError::UpstreamTimeout {
                provider: provider_id,
                detail,
            }
        }
        _ if started => ProxyError::UpstreamBroken {
            provider: provider_id,
            detail,
        },
        _ => ProxyError::UpstreamConnect {
            provider: provider_id,
            detail,
        },
    }
}
