//! The Pingora `ProxyHttp` implementation. Each phase is one short call into [`crate::phases`].
//!
//! Why every LLM request terminates in `request_filter` (ARCHITECTURE.md decision 2): the router
//! must read the body to learn the `model` before it can choose an upstream, and Pingora only
//! forwards a body read in `request_filter` through a 64 KiB retry buffer; agent requests are
//! routinely larger. So bitrouter reads the body once, routes, calls the upstream itself through
//! Pingora's pooled connector, writes the response with `write_response_header/body`, and
//! returns `Ok(true)`. `logging` still runs for every request, and so do Pingora's downstream
//! modules.

use crate::phases::{self, Handled, RequestCtx};
use crate::state::AppState;
use async_trait::async_trait;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_error::{Error, ErrorType, Result};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};
use std::sync::Arc;

/// The bitrouter service.
pub struct Gateway {
    pub state: Arc<AppState>,
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(&self.state)
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        match phases::handle(&self.state, session, ctx).await {
            Handled::Complete => Ok(true),
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
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Error::e_explain(
            ErrorType::InternalError,
            "bitrouter answers every request in request_filter",
        )
    }

    async fn fail_to_proxy(
        &self,
        _session: &mut Session,
        _e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        FailToProxy {
            error_code: ctx.status,
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _e: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        phases::logging::record(&self.state, session, e, ctx);
    }
}
