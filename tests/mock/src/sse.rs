//! Response bodies: whole bodies, and channel-backed streams that put each SSE event on the
//! socket as it is produced (so a proxy's time-to-first-byte can be measured), with the scripted
//! pacing and cuts applied.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as HttpBody, Frame};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::script::LineEnds;

/// Error type of response bodies (an aborted stream).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The one response body type of the mock's service.
pub(crate) type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Time given to hyper to flush already-produced events before a scripted cut aborts the body
/// (an aborted HTTP/1.1 body closes the socket, discarding anything still buffered).
const CUT_GRACE: Duration = Duration::from_millis(30);

/// A whole body.
pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `event: <name>\ndata: <json>\n\n` — OpenAI Responses and Anthropic style.
pub(crate) fn event(name: &str, data: &Value) -> Bytes {
    let json = data.to_string();
    let mut out = String::with_capacity(json.len() + name.len() + 16);
    out.push_str("event: ");
    out.push_str(name);
    out.push_str("\ndata: ");
    out.push_str(&json);
    out.push_str("\n\n");
    Bytes::from(out)
}

/// `data: <json>\n\n` — OpenAI Chat Completions style.
pub(crate) fn data(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// `data: <json>\r\n\r\n` — Google's SSE uses CRLF line endings.
pub(crate) fn data_crlf(data: &Value) -> Bytes {
    Bytes::from(format!("data: {data}\r\n\r\n"))
}

/// `chunk` with every line end (`\r\n`, `\n`, or a lone `\r`) written as `ends` asks.
pub(crate) fn with_line_ends(chunk: &[u8], ends: LineEnds) -> Bytes {
    let eol: &[u8] = match ends {
        LineEnds::Lf => b"\n",
        LineEnds::Crlf => b"\r\n",
    };
    let mut out = Vec::with_capacity(chunk.len() + chunk.len() / 16);
    let mut i = 0;
    while i < chunk.len() {
        match chunk[i] {
            b'\r' if chunk.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(eol);
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(eol),
            b => out.push(b),
        }
        i += 1;
    }
    Bytes::from(out)
}

/// The OpenAI Chat Completions stream terminator.
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// The error a scripted cut puts on the body, which makes hyper abort the connection (HTTP/1.1)
/// or reset the stream (HTTP/2) instead of ending the body cleanly.
#[derive(Debug)]
struct Cut;

impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("bitrouter-mock: scripted cut")
    }
}

impl std::error::Error for Cut {}

type Item = Result<Frame<Bytes>, BoxError>;

/// A body fed from a channel by a producer task: each chunk is a separate frame, so hyper
/// writes and flushes it as soon as it arrives.
struct ChannelBody {
    rx: mpsc::Receiver<Item>,
}

impl HttpBody for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        self.rx.poll_recv(cx)
    }
}

/// A body of ready chunks, one frame each, with no producer task (the unscripted hot path of
/// the load benchmark: every event is "produced" at once, so nothing is gained by a channel).
struct ChunksBody {
    chunks: std::collections::VecDeque<Bytes>,
}

impl HttpBody for ChunksBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Item>> {
        Poll::Ready(self.chunks.pop_front().map(|c| Ok(Frame::data(c))))
    }

    fn is_end_stream(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Streams `chunks` one frame each: `interval` between chunks (none before the first), a
/// `stall = (n, pause)` before chunk `n`, and when `cut_after` is set, an abort after that many
/// chunks instead of a clean end.
pub(crate) fn stream(
    chunks: Vec<Bytes>,
    interval: Option<Duration>,
    cut_after: Option<usize>,
    stall: Option<(usize, Duration)>,
) -> Body {
    if interval.is_none() && cut_after.is_none() && stall.is_none() {
        return ChunksBody {
            chunks: chunks.into(),
        }
        .boxed_unsync();
    }
    let (tx, rx) = mpsc::channel::<Item>(8);
    tokio::spawn(async move {
        let limit = cut_after.unwrap_or(usize::MAX);
        for (i, chunk) in chunks.into_iter().enumerate() {
            if i >= limit {
                break;
            }
            let mut pause = Duration::ZERO;
            if i > 0 {
                pause += interval.unwrap_or_default();
            }
            if let Some((at, stall)) = stall {
                if at == i {
                    pause += stall;
                }
            }
            if !pause.is_zero() {
                // Stop at once when the client goes away during a pause.
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = tx.closed() => return,
                }
            }
            if tx.send(Ok(Frame::data(chunk))).await.is_err() {
                return; // the client went away
            }
        }
        if cut_after.is_some() {
            cut(tx).await;
        }
    });
    ChannelBody { rx }.boxed_unsync()
}

/// How a tracked body ended (see [`tracked`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The last frame was handed to the connection.
    Completed,
    /// The body itself failed (a scripted cut).
    Cut,
    /// The connection dropped the body before its end: the peer went away.
    Abandoned,
}

type OnEnd = Box<dyn FnOnce(usize, End) + Send>;

/// A body that counts the data frames the connection takes and reports how it ended, exactly
/// once: at its end, at its failure, or when it is dropped unfinished.
struct Tracked {
    inner: Body,
    sent: usize,
    on_end: Option<OnEnd>,
}

impl Tracked {
    fn finish(&mut self, end: End) {
        if let Some(on_end) = self.on_end.take() {
            on_end(self.sent, end);
        }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if frame.is_data() {
                    this.sent += 1;
                }
                if this.inner.is_end_stream() {
                    this.finish(End::Completed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish(End::Cut);
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.finish(End::Completed);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.finish(End::Abandoned);
    }
}

/// Wraps `body` so that `on_end(data frames sent, how it ended)` is called once when it ends.
pub(crate) fn tracked(body: Body, on_end: impl FnOnce(usize, End) + Send + 'static) -> Body {
    Tracked {
        inner: body,
        sent: 0,
        on_end: Some(Box::new(on_end)),
    }
    .boxed_unsync()
}

/// A body that sends `prefix` and then aborts (a response cut mid-body).
pub(crate) fn truncated(prefix: Bytes) -> Body {
    let (tx, rx) = mpsc::channel::<Item>(2);
    tokio::spawn(async move {
        if !prefix.is_empty() && tx.send(Ok(Frame::data(prefix))).await.is_err() {
            return;
        }
        cut(tx).await;
    });
    ChannelBody { rx }.boxed_unsync()
}

/// Waits until hyper has taken everything sent so far and had a moment to flush it, then aborts.
async fn cut(tx: mpsc::Sender<Item>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tx.capacity() < tx.max_capacity() && Instant::now() < deadline {
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(CUT_GRACE).await;
    let _ = tx.send(Err(Box::new(Cut))).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn encodes_events() {
        let v = json!({"a": 1});
        assert_eq!(&event("x", &v)[..], b"event: x\ndata: {\"a\":1}\n\n");
        assert_eq!(&data(&v)[..], b"data: {\"a\":1}\n\n");
        assert_eq!(&data_crlf(&v)[..], b"data: {\"a\":1}\r\n\r\n");
        assert_eq!(
            &with_line_ends(&event("x", &v), LineEnds::Crlf)[..],
            b"event: x\r\ndata: {\"a\":1}\r\n\r\n"
        );
        assert_eq!(
            &with_line_ends(&data_crlf(&v), LineEnds::Lf)[..],
            b"data: {\"a\":1}\n\n"
        );
    }
}
