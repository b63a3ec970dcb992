//! The gateway's HTTP application with a short linger at shutdown.
//!
//! When Pingora shuts a listener down (`stop`, or the old process of a `restart` once it has
//! handed its sockets over), it stops accepting and then immediately drops every connection
//! waiting in `read_request`: idle keep-alive connections, but also a connection accepted an
//! instant earlier whose first request has not arrived yet. The second kind is a request lost
//! although the router never refused it; measured before this wrapper: about 1 request in
//! 20,000 (one per two restarts at ~1,500 new connections/s). nginx does not close such
//! connections at shutdown.
//!
//! [`Lingering`] wraps Pingora's `HttpProxy` and delays its cleanup by [`LINGER`]: in that
//! window a connection's first request is read and served (Pingora answers it with
//! `Connection: close`, since the server is shutting down), and a request arriving on an idle
//! keep-alive connection is served too, instead of being cut. Then the cleanup runs as before.
//!
//! It also holds an idle HTTP/1 keep-alive connection lightly: after a response, Pingora's loop
//! would at once build the next request's session and its proxy future (~16 KB, boxed, waiting
//! in `read_request` with a 4 KiB header buffer) for as long as the client keeps the connection
//! idle. [`Lingering`] first waits here, holding only the socket, for the next request's bytes
//! (or the keep-alive timeout, or the end of the linger). Measured with 1,000 idle
//! keep-alive connections, each after one request: 35 KiB of resident memory each before,
//! 22 KiB after (nginx 1.5–4.6 KiB; benches/load/README.md). A client that closes the
//! connection after its answer no longer costs a session and a proxy future that never see a
//! request either (18k fewer instructions per such connection). Cost: ~1.7k instructions per
//! request that waited (the wait's timer and wake-up registration, the read buffer, the bytes
//! put back); the same number of system calls. A TLS connection cannot take bytes back, so
//! its stream is wrapped ([`crate::rewound::Rewound`]): 1,000 idle keep-alive HTTPS/1.1
//! connections 50.5 → 35.5 KiB each, +1.2k instructions per request over HTTPS (145.8k →
//! 147.1k, HTTPS pass-through row).

use crate::rewound::Rewound;
use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::Notify;

/// How long connections already accepted keep being served after the listener stopped.
pub const LINGER: Duration = Duration::from_millis(500);

/// The first read of a kept-alive connection's next request: Pingora's own first read of a
/// request head (`INIT_HEADER_BUF_SIZE`), so a request that came in one segment is still read
/// in one system call.
const FIRST_READ: usize = 4096;

/// An HTTP application whose cleanup waits [`LINGER`] before the inner one's. The options, when
/// given, replace the inner application's (h2c is an application setting in Pingora, so the
/// listeners that accept h2c are served by a second `Lingering` around the same proxy).
pub struct Lingering<A> {
    inner: Arc<A>,
    options: Option<HttpServerOptions>,
    /// How long an idle HTTP/1 keep-alive connection waits for its next request
    /// (`server.keepalive_secs` of the current configuration).
    keepalive: Box<dyn Fn() -> Duration + Send + Sync>,
    /// Set once the linger is over: the idle keep-alive connections waiting in
    /// [`Lingering::next_request`] close then, as Pingora's own waiting ones do.
    closed: AtomicBool,
    closing: Notify,
}

impl<A> Lingering<A> {
    pub fn new(
        inner: Arc<A>,
        options: Option<HttpServerOptions>,
        keepalive: Box<dyn Fn() -> Duration + Send + Sync>,
    ) -> Lingering<A> {
        Lingering {
            inner,
            options,
            keepalive,
            closed: AtomicBool::new(false),
            closing: Notify::new(),
        }
    }

    /// Waits for the next request on a kept-alive HTTP/1 connection, holding only its socket
    /// and an untouched read buffer; `None` closes the connection (the client closed it, the
    /// keep-alive timeout passed, or the linger is over). What arrives is read once, as
    /// Pingora's own first read would (into [`FIRST_READ`] bytes), and put back in front of
    /// the stream, so Pingora then parses it without another system call: a plain TCP stream
    /// takes them back itself, any other (TLS) is wrapped in a [`Rewound`]. No bytes
    /// of a next request are ever held in the settings: that takes pipelining, which bitrouter
    /// leaves off (Pingora then refuses reuse when a body over-read).
    async fn next_request(&self, reused: ReusedHttpStream) -> Option<ReusedHttpStream> {
        let (stream, settings) = reused.consume();
        if stream.as_any().is::<L4Stream>() {
            let mut tcp = stream.into_any().downcast::<L4Stream>().ok()?;
            let first = self.first_bytes(&mut tcp).await?;
            tcp.rewind(&first);
            return Some(ReusedHttpStream::new(tcp, settings));
        }
        // TLS: wrapped once, at the first wait, and the same wrapper kept after.
        let mut rewound = if stream.as_any().is::<Rewound>() {
            stream.into_any().downcast::<Rewound>().ok()?
        } else {
            Box::new(Rewound::new(stream))
        };
        if !rewound.has_front() {
            let first = self.first_bytes(rewound.inner_mut()).await?;
            rewound.rewind(first);
        }
        Some(ReusedHttpStream::new(rewound, settings))
    }

    /// The next request's first bytes (one read of up to [`FIRST_READ`]), or `None` when the
    /// client closed the connection, the read failed, the keep-alive timeout passed or the
    /// linger is over.
    async fn first_bytes<S: AsyncRead + Unpin>(&self, stream: &mut S) -> Option<Vec<u8>> {
        let keepalive = (self.keepalive)();
        if keepalive.is_zero() {
            return None;
        }
        let mut first = Vec::with_capacity(FIRST_READ);
        let read = tokio::select! {
            biased;
            r = tokio::time::timeout(keepalive, stream.read_buf(&mut first)) => r,
            () = self.closed() => return None,
        };
        match read {
            Ok(Ok(n)) if n > 0 => Some(first),
            _ => None,
        }
    }

    /// Resolves once the linger is over (at once when it already is).
    async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a cleanup in between is not missed.
        notified.as_mut().enable();
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

#[async_trait]
impl<A> HttpServerApp for Lingering<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new_http(
        self: &Arc<Self>,
        session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        let reused = self.inner.process_new_http(session, shutdown).await?;
        self.next_request(reused).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.inner.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.options
            .as_ref()
            .or_else(|| self.inner.server_options())
    }

    async fn http_cleanup(&self) {
        tokio::time::sleep(LINGER).await;
        self.closed.store(true, Ordering::Release);
        self.closing.notify_waiters();
        self.inner.http_cleanup().await;
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.inner
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}
