//! Same-protocol relay: the upstream's status, headers and bytes as they arrive. An SSE stream
//! is forwarded whole events at a time, so that if the upstream breaks mid-way the client's
//! stream can still end with a well-formed error event in its protocol.

use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::upstream::headers::{self, Decision};
use crate::upstream::transport::UpstreamBody;
use bytes::{Bytes, BytesMut};

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
) -> Result<Relayed, ProxyError> {
    let header = body.header()?;
    let sse = header
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let resp = headers::downstream_response(header, decision)?;
    dn.head(resp).await?;
    let mut partial = BytesMut::new();
    let mut outcome = Relayed::Complete;
    loop {
        let chunk = match body.next(dn.session()).await {
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
        let chunk = if sse {
            match complete_events(&mut partial, chunk) {
                Some(c) => c,
                None => continue,
            }
        } else {
            chunk
        };
        dn.chunk(chunk).await?;
    }
    if !partial.is_empty() && matches!(outcome, Relayed::Complete) {
        // The upstream ended without a final blank line: pass its last bytes on as they are.
        dn.chunk(partial.split().freeze()).await?;
    }
    dn.finish().await?;
    Ok(outcome)
}

/// The complete SSE events available once `chunk` is added to `partial` (everything up to the
/// last blank line), keeping the rest in `partial`. `None` when no event is complete yet.
/// Without a carry-over this is the chunk itself, uncopied.
fn complete_events(partial: &mut BytesMut, chunk: Bytes) -> Option<Bytes> {
    if partial.is_empty() {
        let end = last_event_end(&chunk);
        if end == chunk.len() {
            return Some(chunk);
        }
        partial.extend_from_slice(&chunk[end..]);
        return (end > 0).then(|| chunk.slice(..end));
    }
    partial.extend_from_slice(&chunk);
    let end = last_event_end(partial);
    (end > 0).then(|| partial.split_to(end).freeze())
}

/// The offset just after the last event terminator (`\n\n`, `\r\n\r\n` or `\r\r`) in
/// `buf`, 0 when there is none.
fn last_event_end(buf: &[u8]) -> usize {
    let mut i = buf.len();
    while i >= 2 {
        let (a, b) = (buf[i - 2], buf[i - 1]);
        if (a == b'\n' && b == b'\n') || (a == b'\r' && b == b'\r') {
            return i;
        }
        i -= 1;
    }
    0
}
