//! Recording of received requests, so tests can assert what the router actually sent upstream.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// How many requests the mock keeps for [`crate::MockUpstream::requests`].
///
/// Tests want everything ([`RecordMode::All`]); the load benchmark must not grow memory without
/// bound or pay for copies, so the binary uses [`RecordMode::Last`] or [`RecordMode::Off`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordMode {
    /// Keep every request (the library default).
    All,
    /// Keep only the most recent `n` requests.
    Last(usize),
    /// Keep nothing.
    Off,
}

/// One request as the mock received it: what the router put on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The raw (not percent-decoded) path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The raw query string without `?`, if any.
    pub query: Option<String>,
    /// Header names lower-cased, in received order; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    /// The full request body.
    pub body: Bytes,
    /// `HTTP/1.1` or `HTTP/2.0` (how the router talked to the upstream).
    pub http_version: String,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of header `name` (case-insensitive), for repeated headers.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body as (lossy) UTF-8 text, for readable assertion messages.
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How a streamed response (SSE events, or the pieces of Gemini's JSON-array stream) ended, as
/// the mock saw it: recorded when the response body is finished or abandoned, so a test can
/// prove the router stopped reading when its own client went away.
///
/// Exactly one of `completed`, `cut` and `aborted_by_peer` is true.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamOutcome {
    /// The raw path of the request that was answered with this stream.
    pub path: String,
    /// The request's body (to find a test's stream by its tag).
    pub request_body: Bytes,
    /// Events (chunks) the stream would have had in full.
    pub events_total: usize,
    /// Events handed to the connection before the stream ended.
    pub events_sent: usize,
    /// Every event was sent and the body ended cleanly.
    pub completed: bool,
    /// A scripted [`crate::Action::CutStreamAfter`] aborted it.
    pub cut: bool,
    /// The peer (the router) closed the connection or reset the stream before the end.
    pub aborted_by_peer: bool,
    /// When the response headers were produced (after any scripted delay).
    pub started: Instant,
    /// When the stream ended (completed, cut or abandoned).
    pub ended: Instant,
}

impl StreamOutcome {
    /// How long the stream lived.
    pub fn duration(&self) -> Duration {
        self.ended.saturating_duration_since(self.started)
    }

    /// Whether the request body contains `needle`.
    pub fn request_contains(&self, needle: &str) -> bool {
        crate::util::bytes_contain(&self.request_body, needle.as_bytes())
    }
}

/// Thread-safe store of recorded requests and stream outcomes; its locks are never held across
/// an await.
pub(crate) struct Recorder {
    mode: RecordMode,
    requests: Mutex<VecDeque<RecordedRequest>>,
    streams: Mutex<VecDeque<StreamOutcome>>,
}

impl Recorder {
    pub(crate) fn new(mode: RecordMode) -> Recorder {
        Recorder {
            mode,
            requests: Mutex::new(VecDeque::new()),
            streams: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !matches!(self.mode, RecordMode::Off | RecordMode::Last(0))
    }

    fn limit(&self) -> usize {
        match self.mode {
            RecordMode::Off => 0,
            RecordMode::All => usize::MAX,
            RecordMode::Last(n) => n,
        }
    }

    pub(crate) fn push(&self, request: RecordedRequest) {
        push_bounded(&self.requests, self.limit(), request);
    }

    pub(crate) fn push_stream(&self, outcome: StreamOutcome) {
        push_bounded(&self.streams, self.limit(), outcome);
    }

    pub(crate) fn streams(&self) -> Vec<StreamOutcome> {
        let streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        streams.iter().cloned().collect()
    }

    pub(crate) fn streams_len(&self) -> usize {
        self.streams.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        let requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.iter().cloned().collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

fn push_bounded<T>(store: &Mutex<VecDeque<T>>, limit: usize, item: T) {
    if limit == 0 {
        return;
    }
    let mut items = store.lock().unwrap_or_else(|e| e.into_inner());
    if items.len() >= limit {
        items.pop_front();
    }
    items.push_back(item);
}
