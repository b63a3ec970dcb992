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

use super::relay::Relayed;
use super::route::Translation;
use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::guardrails::{DownGuard, GuardHook};
use crate::metering::Meter;
use crate::upstream::headers::{self, Decision};
use crate::upstream::transport::UpstreamBody;
use bitrouter_config::Protocol;
use bitrouter_filters::protocol::{self, StreamEncoder};
use bitrouter_filters::stream::{StreamHook, StreamTranslator};
use bitrouter_filters::translate;
use bytes::Bytes;

/// Largest upstream body read whole (JSON answers and error bodies).
pub(super) const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

/// Relays a translated response.
pub async fn relay(
    dn: &mut Downstream<'_>,
    body: &mut UpstreamBody<'_>,
    t: &Translation,
    decision: &Decision<'_>,
    hook: Option<Box<dyn StreamHook>>,
    down: Option<&DownGuard>,
    meter: &mut Meter<'_>,
) -> Result<Relayed, ProxyError> {
    let up_header = body.header()?.clone();
    let status = up_header.status.as_u16();
    let head = |status: u16, content_type: &str| {
        headers::translated_response(status, &up_header, content_type, decision, &t.dropped)
    };

    if status >= 400 {
        let raw = body.read_all(dn.session(), MAX_UPSTREAM_BODY).await?;
        write_error(dn, &up_header, &raw, t.upstream, &t.dropped, decision).await?;
        return Ok(Relayed::Complete);
    }

    let is_sse = up_header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if t.ctx.stream && is_sse {
        return relay_stream(dn, body, t, head(200, stream_content_type(t))?, hook, meter).await;
    }

    let raw = body.read_all(dn.session(), MAX_UPSTREAM_BODY).await?;
    if !t.ctx.stream {
        let (mut encoded, usage) =
            translate::translate_response_with_usage(t.upstream, t.client, &raw, &t.ctx)
                .map_err(ProxyError::Translate)?;
        meter.usage = usage;
        let Some(down) = down else {
            let mut resp = head(200, "application/json")?;
            meter.annotate(&mut resp);
            dn.whole(resp, Bytes::from(encoded)).await?;
            return Ok(Relayed::Complete);
        };
        // What the client would receive, scanned before any of it is sent.
        let (redacted, all) = down.scan(&encoded, decision.guardrails)?;
        if let Some(r) = redacted {
            encoded = r;
        }
        let decision = Decision {
            guardrails: &all,
            ..*decision
        };
        let mut resp = headers::translated_response(
            200,
            &up_header,
            "application/json",
            &decision,
            &t.dropped,
        )?;
        meter.annotate(&mut resp);
        dn.whole(resp, Bytes::from(encoded)).await?;
        return Ok(Relayed::Complete);
    }
    // The client asked for a stream but the upstream answered in one piece.
    let response =
        protocol::decode_response(t.upstream, &raw, &t.ctx).map_err(ProxyError::Translate)?;
    // A body without a usage report decodes to zeros: not a report.
    meter.usage = Some(response.usage).filter(|u| *u != Default::default());
    let mut encoder = StreamEncoder::new(t.client, &t.ctx);
    let mut out = Vec::new();
    let mut events = translate::response_to_events(&response);
    if let Some(down) = down {
        // The same downgoing guard as a real stream gets.
        let mut guard = GuardHook::new(down.guard.clone(), down.counter.clone(), down.seen.clone());
        let mut guarded = Vec::with_capacity(events.len());
        for event in events {
            guard.on_event(event, &mut guarded);
        }
        guard.on_finish(&mut guarded);
        events = guarded;
    }
    for event in events {
        encoder.encode(&event, &mut out);
    }
    dn.whole(head(200, stream_content_type(t))?, Bytes::from(out))
        .await?;
    Ok(Relayed::Complete)
}

/// An upstream error answer (`raw`, in `upstream`'s format) re-encoded in the client's
/// protocol, keeping the status (Anthropic's 529 becomes 503 for others) and the rate-limit
/// headers.
pub async fn write_error(
    dn: &mut Downstream<'_>,
    up_header: &pingora_http::ResponseHeader,
    raw: &[u8],
    upstream: Protocol,
    dropped: &[String],
    decision: &Decision<'_>,
) -> Result<(), ProxyError> {
    let upstream_status = up_header.status.as_u16();
    let (status, encoded) =
        translate::translate_error(upstream, dn.protocol(), upstream_status, raw);
    let head =
        headers::translated_response(status, up_header, "application/json", decision, dropped)?;
    dn.whole(head, Bytes::from(encoded)).await
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
    dn: &mut Downstream<'_>,
    body: &mut UpstreamBody<'_>,
    t: &Translation,
    resp: pingora_http::ResponseHeader,
    hook: Option<Box<dyn StreamHook>>,
    meter: &mut Meter<'_>,
) -> Result<Relayed, ProxyError> {
    dn.head(resp).await?;
    let mut translator = StreamTranslator::new(t.upstream, t.client, &t.ctx);
    if let Some(hook) = hook {
        translator = translator.with_hook(hook);
    }
    let mut out = Vec::with_capacity(4096);
    let mut outcome = Relayed::Complete;
    loop {
        let read = body.next(dn.session()).await;
        body.release_if_done().await;
        match read {
            Ok(Some(chunk)) => {
                translator.feed(&chunk, &mut out);
                meter.usage = translator.usage();
            }
            Ok(None) => {
                translator.finish(&mut out);
                meter.usage = translator.usage();
            }
            Err(ProxyError::ClientGone) => return Err(ProxyError::ClientGone),
            Err(e) => {
                // The upstream broke mid-stream: end the client's stream with an error event in
                // its protocol rather than a silent cut.
                translator.fail(e.to_canonical(), &mut out);
                outcome = Relayed::UpstreamBroke(e);
            }
        }
        if !out.is_empty() {
            dn.chunk(Bytes::from(std::mem::take(&mut out))).await?;
        }
        if translator.is_ended() {
            break;
        }
    }
    dn.finish().await?;
    Ok(outcome)
}
