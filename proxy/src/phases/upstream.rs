//! The upstream call, made by bitrouter itself through Pingora's pooled connector, and the
//! response relayed to the client as it arrives.
//!
//! Mechanics: the balancer orders the candidate targets (strategy, then health) and, per
//! target, the provider's accounts. For each attempt we take a connection from the connector's
//! pool (or open one: TCP, TLS with h2/h1 ALPN), write the request header and the whole body,
//! and read the response header and, for a success, its first body chunk. Until that point
//! nothing has reached the client, so a retryable failure (connect, timeout, a retryable status)
//! moves on: 401/403/429 to the provider's next account, anything else to the next target.
//! From the first byte written downstream on, the answer is committed: body chunks are
//! forwarded as they are read (an SSE event reaches the client as soon as the upstream sends
//! it), and a failure ends a stream with an error event in the client's protocol. A connection
//! whose response was read to its end goes back to the pool; one abandoned mid-way is closed,
//! which is also how a client that disconnects stops the upstream from generating (and billing)
//! more tokens.

use super::route::{Attempt, Plan};
use super::{translate, RequestCtx};
use crate::error::ProxyError;
use crate::state::AppState;
use crate::upstream::headers::{self, Decision};
use crate::upstream::PeerSet;
use bitrouter_config::{Account, Protocol, Provider, RetryPolicy, Target};
use bitrouter_filters::canonical::{ResponseContext, StreamEvent};
use bitrouter_filters::protocol::StreamEncoder;
use bitrouter_filters::sse::SseFramer;
use bytes::{Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::{
    http_req_header_to_wire, HttpSession as H1Session,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A stale pooled connection can fail on first use; try a fresh one this many times.
const STALE_RETRIES: usize = 2;

/// Largest request body sent in the same write as the HTTP/1 header (larger ones are written
/// after it, without a copy).
const COALESCE_BODY: usize = 64 * 1024;

/// Largest error body kept from a rejected attempt (it is shown to the client if every attempt
/// fails).
const MAX_REJECTION_BODY: usize = 1024 * 1024;

/// Sends the request through the balancer's order of targets and accounts until one answers,
/// and relays that answer.
pub async fn forward(
    state: &Arc<AppState>,
    session: &mut Session,
    ctx: &mut RequestCtx,
    plan: Plan,
) -> Result<(), ProxyError> {
    let resolution = &plan.resolution;
    let policy: &RetryPolicy = &resolution.retry;
    let deadline = policy.deadline.map(|d| ctx.start + d);
    let max_attempts = policy.max_attempts.unwrap_or(usize::MAX).max(1);
    let client_headers = headers::forwardable(&session.req_header().headers);
    let balancer = &state.balancer;
    let mut last: Option<Failed> = None;
    'targets: for ti in balancer.order(resolution, Instant::now()) {
        let target = &resolution.targets[ti];
        let attempt = plan.attempt(target)?;
        for ai in balancer.accounts(&target.provider, Instant::now()) {
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            if ctx.attempts >= max_attempts || (out_of_time && last.is_some()) {
                break 'targets;
            }
            let Some(account) = target.provider.accounts.get(ai) else {
                continue;
            };
            ctx.attempts += 1;
            ctx.provider = Some(target.provider.id.clone());
            ctx.service_id = Some(target.service_id.clone());
            ctx.account = Some(account.label.clone());
            let call = Call {
                state,
                attempt: &attempt,
                account,
                client_headers: &client_headers,
                policy,
                deadline,
            };
            let outcome = call.run(session, ctx).await;
            let now = Instant::now();
            match outcome {
                Ok(Exchange::Done { ttfb }) if !ctx.upstream_failed => {
                    balancer.success(target, ai, ttfb);
                    return Ok(());
                }
                Ok(Exchange::Done { .. }) => {
                    // Committed, then the upstream failed (the client got an error event).
                    balancer.endpoint_failure(target, now);
                    return Ok(());
                }
                Ok(Exchange::Rejected(rejection)) => {
                    let status = rejection.header.status.as_u16();
                    let retry_after = rejection.retry_after();
                    let per_account = matches!(status, 401 | 403 | 429);
                    if per_account {
                        balancer.account_failure(&target.provider, ai, now);
                        if let (429, Some(d)) = (status, retry_after) {
                            balancer.cool_account(&target.provider, ai, now, d);
                        }
                    } else {
                        balancer.endpoint_failure(target, now);
                        if let (503, Some(d)) = (status, retry_after) {
                            balancer.cool_endpoint(target, now, d);
                        }
                    }
                    log::warn!(
                        "model `{}`: provider `{}` (account `{}`) answered HTTP {status}; trying the next {}",
                        resolution.requested,
                        target.provider.id,
                        account.label,
                        if per_account { "account" } else { "endpoint" }
                    );
                    last = Some(Failed::Rejected(rejection));
                    if per_account {
                        continue;
                    }
                    continue 'targets;
                }
                Err(e) if ctx.status == 0 && retryable(&e, policy) => {
                    balancer.endpoint_failure(target, now);
                    log::warn!(
                        "model `{}`: {e}; trying the next endpoint",
                        resolution.requested
                    );
                    last = Some(Failed::Error(e));
                    continue 'targets;
                }
                Err(e) => {
                    if matches!(
                        e,
                        ProxyError::UpstreamConnect { .. }
                            | ProxyError::UpstreamTimeout { .. }
                            | ProxyError::UpstreamBroken { .. }
                    ) {
                        balancer.endpoint_failure(target, now);
                    }
                    return Err(e);
                }
            }
        }
    }
    match last {
        Some(Failed::Rejected(r)) => {
            ctx.error = Some(format!(
                "every attempt failed; the last answered HTTP {}",
                r.header.status.as_u16()
            ));
            write_rejection(session, ctx, r).await
        }
        Some(Failed::Error(e)) => Err(e),
        None => Err(ProxyError::Internal("no upstream attempt was made".into())),
    }
}

/// Whether a failure before anything reached the client may be retried under `policy`.
fn retryable(e: &ProxyError, policy: &RetryPolicy) -> bool {
    match e {
        ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamBroken { .. } => policy.on_connect,
        ProxyError::UpstreamTimeout { .. } => policy.on_timeout,
        _ => false,
    }
}

/// Why an attempt did not answer.
enum Failed {
    /// An HTTP error the policy retries, kept to show the client if nothing else works.
    Rejected(Box<Rejection>),
    Error(ProxyError),
}

/// How an attempt ended without an error.
enum Exchange {
    /// The response was relayed (check `ctx.upstream_failed` for a stream that broke after
    /// committing). `ttfb`: time to the first body chunk.
    Done { ttfb: Option<Duration> },
    /// A retryable error status; nothing was sent to the client.
    Rejected(Box<Rejection>),
}

/// A retryable error answer, buffered.
struct Rejection {
    header: ResponseHeader,
    body: Bytes,
    /// `(upstream, client, dropped params)` when the attempt was translated.
    translated: Option<(Protocol, Protocol, Vec<String>)>,
    provider: String,
    service_id: String,
    account: String,
}

impl Rejection {
    /// The `retry-after` the upstream asked for (seconds form; HTTP dates are ignored).
    fn retry_after(&self) -> Option<Duration> {
        let v = self.header.headers.get(http::header::RETRY_AFTER)?;
        let secs: f64 = v.to_str().ok()?.trim().parse().ok()?;
        (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
    }
}

/// Shows the client the last rejection: the upstream's status and body, translated to the
/// client's protocol when the attempt was.
async fn write_rejection(
    session: &mut Session,
    ctx: &mut RequestCtx,
    r: Box<Rejection>,
) -> Result<(), ProxyError> {
    let r = *r;
    let decision = Decision {
        provider: &r.provider,
        service_id: &r.service_id,
        account: &r.account,
        attempts: ctx.attempts,
    };
    let status = r.header.status.as_u16();
    match &r.translated {
        Some((upstream, client, dropped)) => {
            translate::write_error(
                session, ctx, &r.header, &r.body, *upstream, *client, dropped, &decision,
            )
            .await
        }
        None => {
            let mut resp = headers::downstream_response(&r.header, &decision)?;
            resp.insert_header(http::header::CONTENT_LENGTH, r.body.len().to_string())
                .map_err(|e| ProxyError::Internal(format!("response header: {e}")))?;
            ctx.status = status;
            ctx.bytes_out += r.body.len();
            session
                .write_response_header(Box::new(resp), false)
                .await
                .map_err(|_| ProxyError::ClientGone)?;
            session
                .write_response_body(Some(r.body), true)
                .await
                .map_err(|_| ProxyError::ClientGone)
        }
    }
}

/// One upstream attempt: a target, an account, the request prepared for it.
struct Call<'a> {
    state: &'a AppState,
    attempt: &'a Attempt<'a>,
    account: &'a Account,
    client_headers: &'a [(HeaderName, HeaderValue)],
    policy: &'a RetryPolicy,
    /// The request's retry deadline (bounds the wait for the first byte).
    deadline: Option<Instant>,
}

impl Call<'_> {
    async fn run(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Exchange, ProxyError> {
        let target: &Target = self.attempt.target;
        let provider = &target.provider;
        let timeouts = provider.timeouts;
        let started = Instant::now();
        let first_byte_by = earliest(timeouts.first_byte.map(|d| started + d), self.deadline);
        let total_by = timeouts.total.map(|d| started + d);
        let by = earliest(first_byte_by, total_by);
        // Waiting for the upstream's first byte can take long (reasoning models); stop as soon
        // as the client hangs up.
        let exchange = exchange(
            self.state,
            self.client_headers,
            provider,
            self.account,
            self.attempt,
        );
        let (mut up, peer) = tokio::select! {
            r = before(by, exchange) => match r {
                Some(r) => r?,
                None => return Err(first_byte_timeout(provider, started)),
            },
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
        let status = up.response_header().map_or(0, |h| h.status.as_u16());
        let mut body = UpstreamBody {
            up,
            provider,
            watch_client: true,
            pending: None,
            total_by,
        };
        if self.policy.retries_status(status) || matches!(status, 401 | 403) {
            let header = body.header()?.clone();
            let raw = match before(by, body.read_all(session, MAX_REJECTION_BODY)).await {
                Some(r) => r?,
                None => return Err(first_byte_timeout(provider, started)),
            };
            self.finish(body, &peer).await;
            return Ok(Exchange::Rejected(Box::new(Rejection {
                header,
                body: raw,
                translated: self
                    .attempt
                    .translation
                    .as_ref()
                    .map(|t| (t.upstream, t.client, t.dropped.clone())),
                provider: provider.id.clone(),
                service_id: target.service_id.clone(),
                account: self.account.label.clone(),
            })));
        }
        let mut ttfb = None;
        if (200..300).contains(&status) {
            // Commit only once the body has started: a server that sends headers and then
            // nothing (or breaks) can still be failed over.
            match before(by, body.prefetch(session)).await {
                Some(r) => r?,
                None => {
                    body.up.shutdown().await;
                    return Err(first_byte_timeout(provider, started));
                }
            }
            ttfb = Some(started.elapsed());
        }
        let decision = Decision {
            provider: &provider.id,
            service_id: &target.service_id,
            account: &self.account.label,
            attempts: ctx.attempts,
        };
        match &self.attempt.translation {
            None => relay(session, ctx, &mut body, self.attempt.client, &decision).await?,
            Some(t) => translate::relay(session, ctx, &mut body, t, &decision).await?,
        }
        self.finish(body, &peer).await;
        Ok(Exchange::Done { ttfb })
    }

    /// Returns a fully read connection to the pool; closes any other.
    async fn finish(&self, body: UpstreamBody<'_>, peer: &PeerRef) {
        let mut up = body.up;
        if up.response_done() {
            let idle = self.attempt.target.provider.timeouts.pool_idle;
            self.state.upstream.release(up, peer.peer(), idle).await;
        } else {
            up.shutdown().await;
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `fut`'s output, or `None` when `by` passes first.
async fn before<T>(by: Option<Instant>, fut: impl Future<Output = T>) -> Option<T> {
    match by {
        Some(by) => tokio::time::timeout_at(by.into(), fut).await.ok(),
        None => Some(fut.await),
    }
}

fn first_byte_timeout(provider: &Provider, started: Instant) -> ProxyError {
    ProxyError::UpstreamTimeout {
        provider: provider.id.clone(),
        detail: format!(
            "no response within {:.1} s (first_byte_secs, total_secs or the retry deadline)",
            started.elapsed().as_secs_f64()
        ),
    }
}

/// The upstream response being read, watched together with the client's connection.
pub struct UpstreamBody<'a> {
    pub up: HttpSession,
    pub provider: &'a Provider,
    watch_client: bool,
    /// A chunk read ahead (the first one, before committing): `Some(None)` is the end.
    pending: Option<Option<Bytes>>,
    /// `total_secs` for the whole exchange.
    total_by: Option<Instant>,
}

impl UpstreamBody<'_> {
    /// The upstream's response header (present once `exchange` returned).
    pub fn header(&self) -> Result<&ResponseHeader, ProxyError> {
        self.up
            .response_header()
            .ok_or_else(|| broken(self.provider, "no response header"))
    }

    /// Reads the first body chunk ahead, so that failing to get one can still fail over.
    async fn prefetch(&mut self, session: &mut Session) -> Result<(), ProxyError> {
        let chunk = self.next(session).await?;
        self.pending = Some(chunk);
        Ok(())
    }

    /// The next body chunk, `None` at the end. Returns [`ProxyError::ClientGone`] as soon as
    /// the client closes its side, so we stop reading (and paying for) the upstream.
    pub async fn next(&mut self, session: &mut Session) -> Result<Option<Bytes>, ProxyError> {
        if let Some(chunk) = self.pending.take() {
            return Ok(chunk);
        }
        let total_by = self.total_by;
        match before(total_by, self.read(session)).await {
            Some(r) => r,
            None => Err(ProxyError::UpstreamTimeout {
                provider: self.provider.id.clone(),
                detail: "the response took longer than total_secs".into(),
            }),
        }
    }

    async fn read(&mut self, session: &mut Session) -> Result<Option<Bytes>, ProxyError> {
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

/// Same-protocol relay: the upstream's status, headers and bytes as they arrive. An SSE stream
/// is forwarded whole events at a time, so that if the upstream breaks mid-way the client's
/// stream can still end with a well-formed error event in its protocol.
async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    body: &mut UpstreamBody<'_>,
    client: Protocol,
    decision: &Decision<'_>,
) -> Result<(), ProxyError> {
    let header = body.header()?;
    let sse = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let resp = headers::downstream_response(header, decision)?;
    ctx.status = resp.status.as_u16();
    if session
        .write_response_header(Box::new(resp), false)
        .await
        .is_err()
    {
        return Err(ProxyError::ClientGone);
    }
    let mut framer = SseFramer::default();
    loop {
        let next = match body.next(session).await {
            Ok(Some(chunk)) if sse => match framer.feed(chunk) {
                Ok(Some(events)) => Ok(Some(events)),
                Ok(None) => continue,
                Err(e) => Err(broken(body.provider, &e.to_string())),
            },
            other => other,
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) if sse && !matches!(e, ProxyError::ClientGone) => {
                // The upstream broke mid-stream: drop the incomplete event and end the stream
                // with an error event the client's SDK understands.
                ctx.error = Some(e.to_string());
                ctx.upstream_failed = true;
                let mut out = Vec::new();
                StreamEncoder::new(client, &ResponseContext::default())
                    .encode(&StreamEvent::Error(e.to_canonical()), &mut out);
                ctx.bytes_out += out.len();
                if session
                    .write_response_body(Some(Bytes::from(out)), false)
                    .await
                    .is_err()
                {
                    return Err(ProxyError::ClientGone);
                }
                break;
            }
            Err(e) => return Err(e),
        };
        ctx.bytes_out += chunk.len();
        if session
            .write_response_body(Some(chunk), false)
            .await
            .is_err()
        {
            return Err(ProxyError::ClientGone);
        }
    }
    if let Some(rest) = framer.finish().filter(|_| !ctx.upstream_failed) {
        // The upstream ended without a final blank line: pass its last bytes on as they are.
        ctx.bytes_out += rest.len();
        if session
            .write_response_body(Some(rest), false)
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

/// The peer a session was opened to: an entry of the provider's cached peer set.
struct PeerRef {
    set: PeerSet,
    index: usize,
}

impl PeerRef {
    fn peer(&self) -> &HttpPeer {
        &self.set[self.index]
    }
}

/// Connects, sends the request, and reads the response header, retrying on a fresh connection
/// when a pooled one turns out to be stale.
async fn exchange(
    state: &AppState,
    client_headers: &[(HeaderName, HeaderValue)],
    provider: &Provider,
    account: &Account,
    attempt: &Attempt<'_>,
) -> Result<(HttpSession, PeerRef), ProxyError> {
    let peers = state.upstream.peers(provider).await?;
    let mut tries = 0;
    loop {
        let (up, reused, index) = connect(state, provider, &peers).await?;
        let peer = &peers[index];
        let header = headers::upstream_request(
            provider,
            account,
            &attempt.path,
            client_headers,
            attempt.body.len(),
            up.as_http2().is_some(),
        )?;
        match send(up, peer, header, &attempt.body).await {
            Ok(up) => {
                return Ok((
                    up,
                    PeerRef {
                        set: peers.clone(),
                        index,
                    },
                ))
            }
            Err(e) if reused && tries < STALE_RETRIES && !is_timeout(&e) => {
                log::debug!("pooled connection to `{}` was stale: {e}", provider.id);
                tries += 1;
            }
            Err(e) => return Err(classify(provider, &e, false)),
        }
    }
}

/// Writes the request and reads the response header. Over HTTP/1 the header and a body of up
/// to [`COALESCE_BODY`] bytes leave in one write: Pingora's client flushes the header on its
/// own, which costs a second send (and, on loopback, a second wake-up of the upstream).
async fn send(
    up: HttpSession,
    peer: &HttpPeer,
    header: RequestHeader,
    body: &Bytes,
) -> pingora_error::Result<HttpSession> {
    let mut up = match up {
        HttpSession::H1(h1) if body.len() <= COALESCE_BODY => {
            let wire = http_req_header_to_wire(&header).ok_or_else(|| {
                Error::explain(ErrorType::InvalidHTTPHeader, "request header not writable")
            })?;
            let mut stream = h1.into_inner();
            let mut buf = BytesMut::with_capacity(wire.len() + body.len());
            buf.extend_from_slice(&wire);
            buf.extend_from_slice(body);
            let write = async {
                stream.write_all(&buf).await?;
                stream.flush().await
            };
            let written = match peer.options.write_timeout {
                Some(t) => tokio::time::timeout(t, write)
                    .await
                    .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
                None => write.await,
            };
            written.map_err(|e| {
                let etype = if e.kind() == std::io::ErrorKind::TimedOut {
                    ErrorType::WriteTimedout
                } else {
                    ErrorType::WriteError
                };
                Error::because(etype, "writing the request", e)
            })?;
            let mut up = HttpSession::H1(H1Session::new_with_options(stream, peer));
            apply_timeouts(&mut up, peer);
            up
        }
        mut up => {
            apply_timeouts(&mut up, peer);
            up.write_request_header(Box::new(header)).await?;
            up.write_request_body(body.clone(), true).await?;
            up.finish_request_body().await?;
            up
        }
    };
    up.read_response_header().await?;
    Ok(up)
}

/// The connector does not apply these to the session (Pingora's own proxy loop does):
/// `read_secs` is the idle timeout of every read, header and body chunks alike.
fn apply_timeouts(up: &mut HttpSession, peer: &HttpPeer) {
    up.set_read_timeout(peer.options.read_timeout);
    up.set_write_timeout(peer.options.write_timeout);
}

/// A session to the first reachable address of `provider`, whether it was pooled, and the
/// index of the peer it went to.
async fn connect(
    state: &AppState,
    provider: &Provider,
    peers: &[HttpPeer],
) -> Result<(HttpSession, bool, usize), ProxyError> {
    let mut last = None;
    for (index, peer) in peers.iter().enumerate() {
        match state.upstream.session(peer).await {
            Ok((session, reused)) => return Ok((session, reused, index)),
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

fn is_timeout(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
    )
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
