//! The response side of a cross-protocol call.
//!
//! Mechanics: the request was decoded from the client's protocol into the canonical model and
//! re-encoded for the upstream in [`super::route`]. Here the upstream's answer comes back the
//! other way:
//! - an error status: the whole (small) body is decoded as the upstream's error format and
//!   re-encoded in the client's, keeping the status (Anthropic's 529 becomes 503 for others) and
//!   the rate-limit headers;
//! - a stream: each chunk read from the upstream goes through a [`StreamTranslator`] (SSE
//!   framing at any chunk boundary -> the upstream protocol's stream decoder -> canonical events
//!   -> the client protocol's stream encoder) and whatever bytes it produces are written at once,
//!   so the first token reaches the client as soon as the upstream sends it. A connection that
//!   breaks mid-stream ends the client's stream with a well-formed error event in its protocol;
//! - a JSON body: read whole, decoded, re-encoded (or turned into a stream when the client asked
//!   for one and the upstream answered in one piece).

use super::upstream::UpstreamBody;
use super::{route::Translation, RequestCtx};
use crate::error::ProxyError;
use crate::upstream::headers::{self, Decision};
use bitrouter_config::Protocol;
use bitrouter_filters::protocol::{self, StreamEncoder};
use bitrouter_filters::stream::StreamTranslator;
use bitrouter_filters::translate;
use bytes::Bytes;
use pingora_proxy::Session;

/// Largest upstream body read whole (JSON answers and error bodies).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Relays a translated response.
pub async fn relay(
    session: &mut Session,
    ctx: &mut RequestCtx,
    body: &mut UpstreamBody<'_>,
    t: &Translation,
    decision: &Decision<'_>,
) -> Result<(), ProxyError> {
    let up_header = body.header()?.clone();
    let status = up_header.status.as_u16();
    let head = |status: u16, content_type: &str| {
        headers::translated_response(status, &up_header, content_type, decision, &t.dropped)
    };

    if status >= 400 {
        let raw = body.read_all(session, MAX_UPSTREAM_BODY).await?;
        return write_error(
            session, ctx, &up_header, &raw, t.upstream, t.client, &t.dropped, decision,
        )
        .await;
    }

    let is_sse = up_header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if t.ctx.stream && is_sse {
        return relay_stream(session, ctx, body, t, head(200, stream_content_type(t))?).await;
    }

    let raw = body.read_all(session, MAX_UPSTREAM_BODY).await?;
    if !t.ctx.stream {
        let encoded = translate::translate_response(t.upstream, t.client, &raw, &t.ctx)
            .map_err(ProxyError::Translate)?;
        return write_whole(session, ctx, head(200, "application/json")?, encoded).await;
    }
    // The client asked for a stream but the upstream answered in one piece.
    let response =
        protocol::decode_response(t.upstream, &raw, &t.ctx).map_err(ProxyError::Translate)?;
    let mut encoder = StreamEncoder::new(t.client, &t.ctx);
    let mut out = Vec::new();
    for event in translate::response_to_events(&response) {
        encoder.encode(&event, &mut out);
    }
    write_whole(session, ctx, head(200, stream_content_type(t))?, out).await
}

/// An upstream error answer (`raw`, in `upstream`'s format) re-encoded in `client`'s, keeping
/// the status (Anthropic's 529 becomes 503 for others) and the rate-limit headers.
#[allow(clippy::too_many_arguments)]
pub async fn write_error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    up_header: &pingora_http::ResponseHeader,
    raw: &[u8],
    upstream: Protocol,
    client: Protocol,
    dropped: &[String],
    decision: &Decision<'_>,
) -> Result<(), ProxyError> {
    let upstream_status = up_header.status.as_u16();
    let (status, encoded) = translate::translate_error(upstream, client, upstream_status, raw);
    if ctx.error.is_none() {
        ctx.error = Some(format!("upstream HTTP {upstream_status}"));
    }
    let head =
        headers::translated_response(status, up_header, "application/json", decision, dropped)?;
    write_whole(session, ctx, head, encoded).await
}

/// The content type of the client's stream.
fn stream_content_type(t: &Translation) -> &'static str {
    if t.client == Protocol::GenerateContent && t.ctx.json_array_stream {
        "application/json"
    } else {
        "text/event-stream"
    }
}

async fn relay_stream(
    session: &mut Session,
    ctx: &mut RequestCtx,
    body: &mut UpstreamBody<'_>,
    t: &Translation,
    resp: pingora_http::ResponseHeader,
) -> Result<(), ProxyError> {
    ctx.status = resp.status.as_u16();
    session
        .write_response_header(Box::new(resp), false)
        .await
        .map_err(|_| ProxyError::ClientGone)?;
    let mut translator = StreamTranslator::new(t.upstream, t.client, &t.ctx);
    let mut out = Vec::with_capacity(4096);
    loop {
        match body.next(session).await {
            Ok(Some(chunk)) => translator.feed(&chunk, &mut out),
            Ok(None) => {
                translator.finish(&mut out);
            }
            Err(ProxyError::ClientGone) => return Err(ProxyError::ClientGone),
            Err(e) => {
                // The upstream broke mid-stream: end the client's stream with an error event in
                // its protocol rather than a silent cut.
                ctx.error = Some(e.to_string());
                ctx.upstream_failed = true;
                translator.fail(e.to_canonical(), &mut out);
            }
        }
        if !out.is_empty() {
            ctx.bytes_out += out.len();
            let chunk = Bytes::from(std::mem::take(&mut out));
            session
                .write_response_body(Some(chunk), false)
                .await
                .map_err(|_| ProxyError::ClientGone)?;
        }
        if translator.is_ended() {
            break;
        }
    }
    session
        .write_response_body(None, true)
        .await
        .map_err(|_| ProxyError::ClientGone)
}

async fn write_whole(
    session: &mut Session,
    ctx: &mut RequestCtx,
    mut resp: pingora_http::ResponseHeader,
    body: Vec<u8>,
) -> Result<(), ProxyError> {
    resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
        .map_err(|e| ProxyError::Internal(format!("response header: {e}")))?;
    ctx.status = resp.status.as_u16();
    ctx.bytes_out += body.len();
    session
        .write_response_header(Box::new(resp), false)
        .await
        .map_err(|_| ProxyError::ClientGone)?;
    session
        .write_response_body(Some(Bytes::from(body)), true)
        .await
        .map_err(|_| ProxyError::ClientGone)
}
