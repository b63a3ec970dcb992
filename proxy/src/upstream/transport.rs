//! The transport of an upstream call: connect (a pooled connection or a new one), send the
//! request, read the response header, then its body chunk by chunk while watching the client.
//! Nothing here knows about LLM attempts, protocols or retries: the request header is built by
//! the caller's closure (it depends on whether the connection is h2), so any call bitrouter
//! makes to an HTTP upstream (an MCP server, a health probe) can use it.

use super::{PeerSet, UpstreamClient};
use crate::error::ProxyError;
use bitrouter_config::Provider;
use bytes::{Bytes, BytesMut};
use pingora_core::protocols::http::client::HttpSession;
use pingora_core::protocols::http::v1::client::{
    http_req_header_to_wire, HttpSession as H1Session,
};
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

/// A stale pooled connection can fail on first use; try a fresh one this many times.
const STALE_RETRIES: usize = 2;

/// Largest request body sent in the same write as the HTTP/1 header (larger ones are written
/// after it, without a copy).
const COALESCE_BODY: usize = 64 * 1024;

/// The peer a session was opened to: an entry of the provider's cached peer set. Counted in
/// the set's busy exchanges for as long as it lives (it goes with the session, and is dropped
/// once the connection went back to the pool or was closed).
pub struct PeerRef {
    set: PeerSet,
    index: usize,
}

impl PeerRef {
    fn new(set: &PeerSet, index: usize) -> PeerRef {
        set.busy.fetch_add(1, Ordering::Relaxed);
        PeerRef {
            set: set.clone(),
            index,
        }
    }

    pub fn peer(&self) -> &HttpPeer {
        &self.set[self.index]
    }

    /// How long this exchange's connection stays pooled once released: `configured`, unless it
    /// is surplus to the origin's warm set ([`super::pool_idle`]).
    pub fn pool_idle(&self, configured: Duration) -> Duration {
        super::pool_idle(self.set.busy(), configured)
    }
}

impl Drop for PeerRef {
    fn drop(&mut self) {
        self.set.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connects to `provider`, sends the header `build_header(h2)` makes and `body`, and reads the
/// response header, retrying on a fresh connection when a pooled one turns out to be stale.
pub async fn exchange(
    client: &UpstreamClient,
    provider: &Provider,
    build_header: impl Fn(bool) -> Result<RequestHeader, ProxyError>,
    body: &Bytes,
) -> Result<(HttpSession, PeerRef), ProxyError> {
    let peers = client.peers(provider).await?;
    let mut tries = 0;
    loop {
        let (up, reused, index) = connect(client, provider, &peers).await?;
        // Busy from the moment the connection is taken, so that a burst of slow answers counts.
        let busy = PeerRef::new(&peers, index);
        let header = build_header(up.as_http2().is_some())?;
        match send(up, busy.peer(), header, body).await {
            Ok(up) => return Ok((up, busy)),
            Err(e) if reused && tries < STALE_RETRIES && !is_timeout(&e) => {
                log::debug!("pooled connection to `{}` was stale: {e}", provider.id);
                tries += 1;
            }
            Err(e) => return Err(classify(provider, &e, false)),
        }
    }
}

/// [`exchange`] for a request whose body streams from the client: the header and `prefix` (the
/// part already read, which can be sent again) go first, then the rest of `session`'s body
/// chunk by chunk, each write awaited before the next read. `spent` is set as soon as a byte
/// past the prefix was read from the client: from then on the request cannot be retried, not
/// even on a fresh connection (a stale pooled connection is retried only before that).
pub async fn exchange_streaming(
    client: &UpstreamClient,
    provider: &Provider,
    build_header: impl Fn(bool) -> Result<RequestHeader, ProxyError>,
    prefix: &Bytes,
    session: &mut Session,
    spent: &std::sync::atomic::AtomicBool,
) -> Result<(HttpSession, PeerRef), ProxyError> {
    let peers = client.peers(provider).await?;
    let mut tries = 0;
    loop {
        let (mut up, reused, index) = connect(client, provider, &peers).await?;
        let busy = PeerRef::new(&peers, index);
        let header = build_header(up.as_http2().is_some())?;
        apply_timeouts(&mut up, busy.peer());
        let head = async {
            up.write_request_header(Box::new(header)).await?;
            up.write_request_body(prefix.clone(), false).await
        };
        match head.await {
            Ok(_) => {}
            Err(e) if reused && tries < STALE_RETRIES && !is_timeout(&e) => {
                log::debug!("pooled connection to `{}` was stale: {e}", provider.id);
                tries += 1;
                continue;
            }
            Err(e) => return Err(classify(provider, &e, false)),
        }
        while let Some(chunk) = session
            .read_request_body()
            .await
            .map_err(|e| ProxyError::ClientBody(e.to_string()))?
        {
            spent.store(true, std::sync::atomic::Ordering::Relaxed);
            up.write_request_body(chunk, false)
                .await
                .map_err(|e| classify(provider, &e, false))?;
        }
        up.finish_request_body()
            .await
            .map_err(|e| classify(provider, &e, false))?;
        up.read_response_header()
            .await
            .map_err(|e| classify(provider, &e, false))?;
        return Ok((up, busy));
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
    client: &UpstreamClient,
    provider: &Provider,
    peers: &[HttpPeer],
) -> Result<(HttpSession, bool, usize), ProxyError> {
    let mut last = None;
    for (index, peer) in peers.iter().enumerate() {
        match client.session(peer).await {
            Ok((session, reused)) => return Ok((session, reused, index)),
            Err(e) => last = Some(e),
        }
    }
    client.forget(provider);
    Err(match last {
        Some(e) => classify(provider, &e, false),
        None => ProxyError::UpstreamConnect {
            provider: provider.id.clone(),
            detail: "no address to connect to".into(),
        },
    })
}

/// Returns a fully read connection to the pool; closes any other (which is also how an
/// abandoned stream stops the upstream from generating, and billing, more tokens).
pub async fn release(client: &UpstreamClient, up: HttpSession, peer: &PeerRef, idle: Duration) {
    let mut up = up;
    if up.response_done() {
        client.release(up, peer, idle).await;
    } else {
        up.shutdown().await;
    }
}

fn is_timeout(e: &Error) -> bool {
    matches!(
        e.etype(),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
    )
}

pub fn broken(provider: &Provider, detail: &str) -> ProxyError {
    ProxyError::UpstreamBroken {
        provider: provider.id.clone(),
        detail: detail.to_string(),
    }
}

/// Maps a Pingora error on the upstream side to ours. `started`: the response had begun.
pub fn classify(provider: &Provider, e: &Error, started: bool) -> ProxyError {
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

/// The earlier of two optional instants.
pub fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `fut`'s output, or `None` when `by` passes first.
///
/// A future of its own rather than an `async fn` with one `await` per case: that one held
/// `fut` twice (once bare, once inside the timeout), which doubled the size of every future
/// awaiting it (7,096 instead of ~3,600 bytes around the upstream exchange), and each request's
/// future is boxed and moved whole.
pub fn before<F: Future>(by: Option<Instant>, fut: F) -> Before<F> {
    match by {
        Some(by) => Before::Timed {
            inner: tokio::time::timeout_at(by.into(), fut),
        },
        None => Before::Open { inner: fut },
    }
}

pin_project_lite::pin_project! {
    /// See [`before`].
    #[project = BeforeProj]
    pub enum Before<F> {
        Timed { #[pin] inner: tokio::time::Timeout<F> },
        Open { #[pin] inner: F },
    }
}

impl<F: Future> Future for Before<F> {
    type Output = Option<F::Output>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        match self.project() {
            BeforeProj::Timed { inner } => inner.poll(cx).map(Result::ok),
            BeforeProj::Open { inner } => inner.poll(cx).map(Some),
        }
    }
}

/// Completes when `timer` fires; never when there is none.
async fn expiry(timer: Option<&mut std::pin::Pin<Box<tokio::time::Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// The upstream response being read, watched together with the client's connection.
///
/// The relays give the connection back to the pool ([`UpstreamBody::release_if_done`]) as soon as
/// its response has been read to the end, before the last bytes are written to the client: a
/// client that sends its next request as soon as it has the answer then finds the connection
/// idle in the pool instead of racing its release (which opened new connections under load).
pub struct UpstreamBody<'a> {
    /// `None` once the connection went back to the pool (or was closed).
    up: Option<HttpSession>,
    pub provider: &'a Provider,
    client: &'a UpstreamClient,
    peer: PeerRef,
    /// How long a released connection may idle in the pool.
    idle: Duration,
    watch_client: bool,
    /// A chunk read ahead (the first one, before committing): `Some(None)` is the end.
    pending: Option<Option<Bytes>>,
    /// `total_secs` for the whole exchange.
    total_by: Option<Instant>,
    /// `read_secs`: the longest wait for the next bytes of the body. The session reads the
    /// body without its own timeout: Pingora's makes, polls and drops a timer on every read,
    /// and one timer per body ([`UpstreamBody::timer`]) does the same job. With it (and the
    /// biased `select!` below) a relayed event of a slow stream costs 7.1k instead of 8.2k
    /// instructions over HTTP/1.1, 9.8k instead of 10.9k over h2c (benches/load, the
    /// instructions-per-event rows).
    read: Option<Duration>,
    /// Fires at the earlier of `total_by` and `read_secs` after the last read began. Boxed: an
    /// open stream holds it for its life and it is only needed when a timeout is configured.
    timer: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<'a> UpstreamBody<'a> {
    pub fn new(
        up: HttpSession,
        peer: PeerRef,
        client: &'a UpstreamClient,
        provider: &'a Provider,
        total_by: Option<Instant>,
    ) -> Self {
        let mut up = up;
        let read = peer.peer().options.read_timeout;
        up.set_read_timeout(None);
        UpstreamBody {
            up: Some(up),
            provider,
            client,
            peer,
            idle: provider.timeouts.pool_idle,
            watch_client: true,
            pending: None,
            total_by,
            read,
            timer: None,
        }
    }

    /// The upstream's response header (present once `exchange` returned).
    pub fn header(&self) -> Result<&ResponseHeader, ProxyError> {
        self.up
            .as_ref()
            .and_then(|up| up.response_header())
            .ok_or_else(|| broken(self.provider, "no response header"))
    }

    /// Ends the exchange: a fully read connection goes back to the pool, any other is closed
    /// (which is also how an abandoned stream stops the upstream from generating, and billing,
    /// more tokens).
    pub async fn close(mut self) {
        if let Some(up) = self.up.take() {
            // Boxed, as below: Pingora's release and shutdown futures (~4 KB) would otherwise
            // be part of every future that can end an exchange, which an open stream holds
            // for its whole life (-Zprint-type-sizes; benches/load, open streams).
            Box::pin(release(self.client, up, &self.peer, self.idle)).await;
        }
    }

    /// Releases the connection once its response has been read to the end. Call it once the
    /// response header is no longer needed (it goes with the connection).
    pub async fn release_if_done(&mut self) {
        if self.up.as_mut().is_some_and(|up| up.response_done()) {
            if let Some(up) = self.up.take() {
                Box::pin(self.client.release(up, &self.peer, self.idle)).await;
            }
        }
    }

    /// Reads the first body chunk ahead, so that failing to get one can still fail over.
    pub async fn prefetch(&mut self, session: &mut Session) -> Result<(), ProxyError> {
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
        let deadline = earliest(self.read.map(|r| Instant::now() + r), self.total_by);
        if let Some(deadline) = deadline {
            self.arm(deadline);
        }
        loop {
            let Some(up) = self.up.as_mut() else {
                // Released: its response was read to the end.
                return Ok(None);
            };
            let timer = self.timer.as_mut();
            // Biased: the upstream first, with no random start (fairness between the branches
            // is not needed; a read that is ready wins over a timer that fired meanwhile).
            let read = tokio::select! {
                biased;
                r = up.read_response_body() => r,
                r = session.read_body_or_idle(true), if self.watch_client => match r {
                    Err(_) => return Err(ProxyError::ClientGone),
                    Ok(_) => {
                        self.watch_client = false;
                        continue;
                    }
                },
                () = expiry(timer), if deadline.is_some() => return Err(self.timed_out()),
            };
            return read.map_err(|e| classify(self.provider, &e, true));
        }
    }

    /// Sets the body's one timer to `deadline`: made on the first read, moved on by later ones
    /// (a later deadline only updates the timer's entry; tokio's wheel is not touched).
    fn arm(&mut self, deadline: Instant) {
        match self.timer.as_mut() {
            Some(timer) => timer.as_mut().reset(deadline.into()),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline.into()))),
        }
    }

    /// The error for a read the timer ended: `total_secs` when the exchange's deadline passed,
    /// else `read_secs` (worded as Pingora's own read timeout was).
    fn timed_out(&self) -> ProxyError {
        let detail = match (self.total_by, self.read) {
            (Some(by), _) if Instant::now() >= by => {
                "the response took longer than total_secs".to_string()
            }
            (_, Some(read)) => format!("reading body, timeout: {read:?}"),
            _ => "the response took longer than total_secs".to_string(),
        };
        ProxyError::UpstreamTimeout {
            provider: self.provider.id.clone(),
            detail,
        }
    }

    /// The whole remaining body, refusing more than `limit` bytes.
    pub async fn read_all(
        &mut self,
        session: &mut Session,
        limit: usize,
    ) -> Result<Bytes, ProxyError> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = self.next(session).await? {
            if buf.len() + chunk.len() > limit {
                return Err(broken(
                    self.provider,
                    &format!("response body larger than {limit} bytes"),
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        self.release_if_done().await;
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Peers, WARM_CONNECTIONS};
    use std::sync::Arc;

    #[test]
    fn a_peer_ref_counts_as_busy_while_it_lives() {
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], 9).into();
        let set: PeerSet = Arc::new(Peers::new(vec![HttpPeer::new(addr, false, "h".into())]));
        let ninety = Duration::from_secs(90);
        let refs: Vec<PeerRef> = (0..=WARM_CONNECTIONS)
            .map(|_| PeerRef::new(&set, 0))
            .collect();
        assert_eq!(set.busy(), WARM_CONNECTIONS + 1);
        assert_eq!(refs[0].pool_idle(ninety), crate::upstream::SURPLUS_IDLE);
        drop(refs);
        assert_eq!(set.busy(), 0);
        assert_eq!(PeerRef::new(&set, 0).pool_idle(ninety), ninety);
        assert_eq!(set.busy(), 0);
    }
}
