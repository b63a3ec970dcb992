//! Recording of received requests, so tests can assert what the router actually sent upstream.

use std::collections::VecDeque;
use std::sync::Mutex;

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

/// Thread-safe store of recorded requests; its lock is never held across an await.
pub(crate) struct Recorder {
    mode: RecordMode,
    requests: Mutex<VecDeque<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn new(mode: RecordMode) -> Recorder {
        Recorder {
            mode,
            requests: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn enabled(&self) -> bool {
        !matches!(self.mode, RecordMode::Off | RecordMode::Last(0))
    }

    pub(crate) fn push(&self, request: RecordedRequest) {
        let limit = match self.mode {
            RecordMode::Off | RecordMode::Last(0) => return,
            RecordMode::All => usize::MAX,
            RecordMode::Last(n) => n,
        };
        let mut requests = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if requests.len() >= limit {
            requests.pop_front();
        }
        requests.push_back(request);
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
