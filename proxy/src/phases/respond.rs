//! Responses bitrouter writes itself: JSON documents and errors in the caller's protocol.

use super::{Handled, RequestCtx};
use crate::error::{Fault, ProxyError};
use crate::render;
use crate::upstream::headers;
use bitrouter_config::Protocol;
use bytes::Bytes;
use http::header::HeaderValue;
use http::HeaderMap;
use pingora_proxy::Session;

/// Writes a complete response with a body.
pub async fn send(
    session: &mut Session,
    ctx: &mut RequestCtx,
    status: u16,
    content_type: &str,
    body: Bytes,
) -> Result<(), ProxyError> {
    let status_code = http::StatusCode::from_u16(status)
        .map_err(ProxyError::internal(headers::RESPONSE_HEADER))?;
    let mut map = HeaderMap::with_capacity(4);
    map.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type)
            .map_err(ProxyError::internal(headers::RESPONSE_HEADER))?,
    );
    map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if ctx.attempts > 0 {
        // An error after upstream attempts: say how many were made and where the last went.
        map.insert(headers::X_ATTEMPTS, HeaderValue::from(ctx.attempts));
        if let Some(p) = ctx
            .provider
            .as_deref()
            .and_then(|p| HeaderValue::from_str(p).ok())
        {
            map.insert(headers::X_PROVIDER, p);
        }
    }
    let resp = headers::response(status_code, map);
    ctx.status = status;
    ctx.bytes_out += body.len();
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await
        .map_err(|_| ProxyError::ClientGone)?;
    if !head_only {
        session
            .write_response_body(Some(body), true)
            .await
            .map_err(|_| ProxyError::ClientGone)?;
    }
    Ok(())
}

/// Answers with `error` in `protocol`'s error format, or, when the response has already
/// started, gives up on the connection.
pub async fn error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    protocol: Protocol,
    error: &ProxyError,
) -> Handled {
    ctx.error = Some(error.to_string());
    if matches!(error, ProxyError::ClientGone) {
        if ctx.status == 0 {
            ctx.status = error.status();
        }
        return Handled::Aborted;
    }
    if session.response_written().is_some() {
        return Handled::Aborted;
    }
    if error.fault() == Fault::Internal {
        log::error!("{error}");
    }
    let (status, body) = render::error_body(protocol, &error.to_canonical());
    match send(session, ctx, status, "application/json", body).await {
        Ok(()) => Handled::Complete,
        Err(_) => Handled::Aborted,
    }
}
