//! Same-protocol relay: the upstream's status, headers and bytes as they arrive. An SSE stream
//! is forwarded whole events at a time, so that if the upstream breaks mid-way the client's
//! stream can still end with a well-formed error event in its protocol.

use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::guardrails::DownGuard;
use crate::metering::{Meter, StreamTap};
use crate::upstream::headers::{self, Decision};
use crate::upstream::transport::{broken, UpstreamBody};
use bitrouter_filters::usage::UsageTap;
use bytes::Bytes;

/// How a relay that committed a response ended.
#[derive(Debug)]
pub enum Relayed {
    /// The whole answer reached the client.
    Complete,
    /// The upstream failed after the response started; the client got an error event (a
    /// stream) or a truncated body. Counts against the endpoint's health.
    UpstreamBroke(ProxyError),
}

/// Relays a same-protocol answer.
pub async fn relay(
    dn: &mut Downstream<'_>,
    body: &mut UpstreamBody<'_>,
    decision: &Decision<'_>,
    down: Option<&DownGuard>,
    meter: &mut Meter<'_>,
) -> Result<Relayed, ProxyError> {
    let header = body.header()?;
    let sse = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !sse && !meter.stream && header.status.is_success() {
        // A whole answer: read whole (LLM servers send a non-streamed answer at once), so its
        // usage and cost are known before the head goes out, and a downgoing guardrail can
        // scan it before the client sees any of it (streams go through the guard's hook).
        let header = header.clone();
        let raw = body
            .read_all(dn.session(), super::translate::MAX_UPSTREAM_BODY)
            .await?;
        let mut tap = UsageTap::new(meter.protocol);
        tap.body(&raw);
        meter.usage = tap.usage();
        let (out, all) = match down {
            Some(down) => {
                let (redacted, all) = down.scan(&raw, decision.guardrails)?;
                (redacted.map(Bytes::from).unwrap_or(raw), Some(all))
            }
            None => (raw, None),
        };
        let decision = Decision {
            guardrails: all.as_deref().unwrap_or(decision.guardrails),
            ..*decision
        };
        let mut resp = headers::downstream_response(&header, &decision)?;
        meter.annotate(&mut resp);
        dn.whole(resp, out).await?;
        return Ok(Relayed::Complete);
    }
    let resp = headers::downstream_response(header, decision)?;
    let success = header.status.is_success();
    dn.head(resp).await?;
    // SSE goes out whole events at a time (cut by the framer: any line-end style, bounded
    // carry-over), so a break mid-stream can still end with a well-formed error event. The
    // tap reads usage from what passes; an error answer's is not kept (it reports none).
    let mut tap = StreamTap::new(meter, sse);
    let mut outcome = Relayed::Complete;
    loop {
        let read = body.next(dn.session()).await;
        // The head is out, so the connection is no longer needed once read to its end.
        body.release_if_done().await;
        let next = match read {
            Ok(Some(chunk)) => {
                let fed = tap.feed(chunk);
                if success {
                    meter.usage = tap.usage();
                }
                match fed {
                    Ok(Some(events)) => Ok(Some(events)),
                    Ok(None) => continue,
                    Err(e) => Err(broken(body.provider, &e)),
                }
            }
            other => other,
        };
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) if sse && !matches!(e, ProxyError::ClientGone) => {
                // The upstream broke mid-stream: drop the incomplete event and end the stream
                // with an error event the client's SDK understands.
                dn.stream_error(&e).await?;
                outcome = Relayed::UpstreamBroke(e);
                break;
            }
            Err(e) => return Err(e),
        };
        dn.chunk(chunk).await?;
    }
    let rest = tap.finish();
    if success {
        meter.usage = tap.usage();
    }
    if let Some(rest) = rest {
        if matches!(outcome, Relayed::Complete) {
            // The upstream ended without a final blank line: pass its last bytes on as they are.
            dn.chunk(rest).await?;
        }
    }
    dn.finish().await?;
    Ok(outcome)
}
