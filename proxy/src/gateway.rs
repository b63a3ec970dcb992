//! The Pingora `ProxyHttp` implementation. Each phase is one short call into [`crate::phases`].
//!
//! Why every LLM request terminates in `request_filter` (ARCHITECTURE.md decision 2): the router
//! must read the body to learn the `model` before it can choose an upstream, and Pingora only
//! forwards a body read in `request_filter` through a 64 KiB retry buffer; agent requests are
//! routinely larger. So bitrouter reads the body once, routes, calls the upstream itself through
//! Pingora's pooled connector, writes the response with `write_response_header/body`, and
//! returns `Ok(true)`. `logging` still runs for every request, and so do Pingora's downstream
//! modules.
//!
//! The exception is a `routes:` entry (see [`crate::routes`]): it needs no body to choose its
//! upstream, so `request_filter` returns `Ok(false)` and Pingora's own loop proxies it.

use crate::phases::{self, Handled, RequestCtx};
use crate::routes;
use crate::state::AppState;
use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;

/// The bitrouter service.
pub struct Gateway {
    pub state: Arc<AppState>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    /// Boxed: Pingora keeps the context by value inside its per-request proxy future (more than
    /// once: an `async fn` argument, then a local), which an open stream holds for its life and
    /// which Pingora boxes by copying it whole from the stack on every request. The context is
    /// 800 bytes; boxed it is 8. Measured (`benches/load`, quick runs): 1,000 open streams
    /// 62.4 → 61.3 KiB each; pass-through without the ledger 109.3k → 106.6k instructions a
    /// request (callgrind: the copy of that future shrank), for one allocation more.
    type CTX = Box<RequestCtx>;

    fn new_ctx(&self) -> Box<RequestCtx> {
        Box::new(RequestCtx::new(&self.state))
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<bool> {
        // The call stays the first thing this future does (a `routes:` entry is recognised
        // inside it): measured, a check placed before it made every request copy the whole
        // ~15 KB request future once more (+15,400 instructions per request under callgrind).
        match phases::handle(&self.state, session, ctx).await {
            Handled::Complete => Ok(true),
            // A `routes:` entry: Pingora's own loop proxies it.
            Handled::Proxy => Ok(false),
            // The response had started when something failed: drop the connection so the client
            // sees a truncated response rather than a clean end.
            Handled::Aborted => Err(Error::explain(
                ErrorType::ConnectionClosed,
                "response aborted mid-way",
            )),
        }
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<Box<HttpPeer>> {
        if ctx.proxied.is_some() {
            return routes::forward::upstream_peer(&self.state, session, ctx).await;
        }
        Error::e_explain(
            ErrorType::InternalError,
            "bitrouter answers every request in request_filter",
        )
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        routes::forward::upstream_request(upstream_request, ctx)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut Box<RequestCtx>,
    ) -> Result<()> {
        routes::forward::answered(ctx);
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut Box<RequestCtx>,
        e: Box<Error>,
    ) -> Box<Error> {
        routes::forward::fail_to_connect(&self.state, ctx, e)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut Box<RequestCtx>,
    ) -> FailToProxy {
        if ctx.proxied.is_some() {
            return routes::forward::fail_to_proxy(session, e, ctx).await;
        }
        FailToProxy {
            error_code: ctx.status,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Box<RequestCtx>, _e: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Box<RequestCtx>) {
        if ctx.proxied.is_some() {
            routes::log::record(&self.state, session, e, ctx);
        } else {
            phases::logging::record(&self.state, session, e, ctx);
        }
    }
}
