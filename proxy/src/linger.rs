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

use async_trait::async_trait;
use pingora_core::apps::{HttpServerApp, HttpServerOptions, ReusedHttpStream};
use pingora_core::protocols::http::v2::server::H2Options;
use pingora_core::protocols::http::ServerSession;
use pingora_core::protocols::Stream;
use pingora_core::server::ShutdownWatch;
use std::sync::Arc;
use std::time::Duration;

/// How long connections already accepted keep being served after the listener stopped.
pub const LINGER: Duration = Duration::from_millis(500);

/// An HTTP application whose cleanup waits [`LINGER`] before the inner one's. The options, when
/// given, replace the inner application's (h2c is an application setting in Pingora, so the
/// listeners that accept h2c are served by a second `Lingering` around the same proxy).
pub struct Lingering<A>(pub Arc<A>, pub Option<HttpServerOptions>);

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
        self.0.process_new_http(session, shutdown).await
    }

    fn h2_options(&self) -> Option<H2Options> {
        self.0.h2_options()
    }

    fn server_options(&self) -> Option<&HttpServerOptions> {
        self.1.as_ref().or_else(|| self.0.server_options())
    }

    async fn http_cleanup(&self) {
        tokio::time::sleep(LINGER).await;
        self.0.http_cleanup().await;
    }

    async fn process_custom_session(
        self: Arc<Self>,
        stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        self.0
            .clone()
            .process_custom_session(stream, shutdown)
            .await
    }
}
