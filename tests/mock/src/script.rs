//! Scripted behaviours (faults and overrides) that tests queue on the mock.
//!
//! Each request takes at most ONE script: the first queued script (FIFO) whose [`Match`] accepts
//! it and that has uses left. To combine effects on one request (e.g. a delay then a 503) use
//! [`Action::All`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use http::HeaderMap;

use crate::util::bytes_contain;

/// A behaviour for the next `times` requests matching `when`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// Which requests this script applies to.
    pub when: Match,
    /// How many requests it applies to (then it is used up). `usize::MAX` is effectively forever.
    pub times: usize,
    /// What to do with them.
    pub action: Action,
}

impl Script {
    /// A script applying once to the next request matching `when`.
    pub fn new(when: Match, action: Action) -> Script {
        Script {
            when,
            times: 1,
            action,
        }
    }

    /// A script applying once to the very next request, whatever it is.
    pub fn once(action: Action) -> Script {
        Script::new(Match::Any, action)
    }

    /// A script applying once to the next request whose body contains `needle` (tests sharing
    /// one mock tag their prompts uniquely and script by tag).
    pub fn for_body(needle: impl Into<String>, action: Action) -> Script {
        Script::new(Match::BodyContains(needle.into()), action)
    }

    /// A script applying once to the next request whose body contains `needle` AND whose header
    /// `name` contains `value` (e.g. one test's requests made with one account's key).
    pub fn for_body_and_header(
        needle: impl Into<String>,
        name: impl Into<String>,
        value: impl Into<String>,
        action: Action,
    ) -> Script {
        Script::new(
            Match::BodyContains(needle.into()).and(Match::header(name, value)),
            action,
        )
    }

    /// Builder: apply to `times` requests instead of one.
    #[must_use]
    pub fn times(mut self, times: usize) -> Script {
        self.times = times;
        self
    }
}

/// Which requests a [`Script`] applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Match {
    /// Every request. Only safe on a mock no concurrent test shares: prefer `BodyContains` with
    /// a tag unique to the test.
    Any,
    /// Requests whose raw path contains this string.
    PathContains(String),
    /// Requests whose raw body contains this string.
    BodyContains(String),
    /// Requests with a header `name` (case-insensitive) whose value contains `value`, e.g.
    /// `HeaderContains("authorization".into(), "key-a".into())` to fail only one account's
    /// requests.
    HeaderContains(String, String),
    /// Requests every one of these matches accepts (e.g. a test's body tag AND one account's
    /// key). An empty list matches everything.
    All(Vec<Match>),
}

impl Match {
    /// A [`Match::HeaderContains`].
    pub fn header(name: impl Into<String>, value: impl Into<String>) -> Match {
        Match::HeaderContains(name.into(), value.into())
    }

    /// Both `self` and `other` (flattened into one [`Match::All`]).
    #[must_use]
    pub fn and(self, other: Match) -> Match {
        let mut all = match self {
            Match::All(all) => all,
            one => vec![one],
        };
        match other {
            Match::All(more) => all.extend(more),
            one => all.push(one),
        }
        Match::All(all)
    }

    /// Whether a request with this raw path, headers and body is accepted.
    pub fn matches(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> bool {
        match self {
            Match::Any => true,
            Match::PathContains(needle) => path.contains(needle.as_str()),
            Match::BodyContains(needle) => bytes_contain(body, needle.as_bytes()),
            Match::HeaderContains(name, needle) => headers
                .get_all(name.as_str())
                .iter()
                .any(|v| bytes_contain(v.as_bytes(), needle.as_bytes())),
            Match::All(all) => all.iter().all(|m| m.matches(path, headers, body)),
        }
    }
}

/// What the mock does with a request a [`Script`] applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Respond with this status and body (body written as-is), optional retry-after header.
    Status {
        /// HTTP status code.
        status: u16,
        /// Raw body (`content-type: application/json` when it looks like JSON, else text/plain).
        body: String,
        /// Value of a `retry-after` header in seconds, if any.
        retry_after: Option<u64>,
    },
    /// Provider-format error for the protocol the request was made in (the mock picks the right
    /// JSON shape) with this status and message.
    Error {
        /// HTTP status code (e.g. 429, 500, 503, 529).
        status: u16,
        /// The error message inside the provider's error body.
        message: String,
    },
    /// Like [`Action::Error`], plus a `retry-after: <seconds>` header (a rate limit or an
    /// overload that says when to come back).
    ErrorRetryAfter {
        /// HTTP status code (e.g. 429, 503).
        status: u16,
        /// The error message inside the provider's error body.
        message: String,
        /// Value of the `retry-after` header, in seconds.
        retry_after: u64,
    },
    /// Wait before sending response headers: emulates a server that sends no first byte for
    /// this long (a first-byte timeout when longer than the router's).
    Delay(Duration),
    /// Close the connection without responding (HTTP/1.1: the socket is closed; HTTP/2: the
    /// stream is reset, so other requests multiplexed on the connection are not disturbed).
    Drop,
    /// Normal streamed response, but close the connection after `events` SSE events (HTTP/2:
    /// reset the stream). On a non-streaming request: send the headers (with the full
    /// content-length) and, when `events > 0`, half of the body, then close.
    CutStreamAfter {
        /// Number of complete SSE events delivered before the cut.
        events: usize,
    },
    /// Normal response, with this pause between SSE events (streaming) — for first-byte tests.
    /// The response headers and the first event are sent immediately, so a pause longer than
    /// the router's idle read timeout emulates a stream stalled right after its first event.
    StreamInterval(Duration),
    /// Normal streamed response whose first `events` SSE events are sent at once (at the
    /// [`Action::StreamInterval`] pace, if any), followed by a pause of `pause` before the rest:
    /// a stream stalled mid-way after content has already been delivered. `events: 0` pauses
    /// after the headers, before the first event.
    StallAfter {
        /// Events sent before the pause.
        events: usize,
        /// Length of the pause.
        pause: Duration,
    },
    /// Replace the generated assistant text with this text (also suppresses tool-call magic).
    Reply(String),
    /// Frame the SSE stream with these line ends instead of the provider's own (Google uses
    /// CRLF, the others LF): every `\n` / `\r\n` of each event is rewritten. Streaming only.
    LineEnds(LineEnds),
    /// Several actions on the same request, e.g. `[Delay(1s), Error{503}]` or
    /// `[Reply("x"), StreamInterval(50ms)]`. Delays add up; the first of Status / Error / Drop
    /// wins; modifiers (Reply, StreamInterval, CutStreamAfter) apply to the normal response.
    All(Vec<Action>),
}

/// The line ends an SSE stream is framed with (see [`Action::LineEnds`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineEnds {
    /// `\n`, as OpenAI and Anthropic send.
    Lf,
    /// `\r\n`, as Google sends.
    Crlf,
}

/// What a request will get, folded from its script's action(s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) delay: Duration,
    pub(crate) terminal: Option<Terminal>,
    pub(crate) reply: Option<String>,
    pub(crate) interval: Option<Duration>,
    pub(crate) cut_after: Option<usize>,
    pub(crate) stall: Option<(usize, Duration)>,
    pub(crate) line_ends: Option<LineEnds>,
}

/// A scripted response that replaces normal handling entirely.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Terminal {
    Status {
        status: u16,
        body: String,
        retry_after: Option<u64>,
    },
    Error {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    Drop,
}

impl Plan {
    pub(crate) fn from_action(action: &Action) -> Plan {
        let mut plan = Plan::default();
        plan.apply(action);
        plan
    }

    fn apply(&mut self, action: &Action) {
        match action {
            Action::Status {
                status,
                body,
                retry_after,
            } => self.terminal(Terminal::Status {
                status: *status,
                body: body.clone(),
                retry_after: *retry_after,
            }),
            Action::Error { status, message } => self.terminal(Terminal::Error {
                status: *status,
                message: message.clone(),
                retry_after: None,
            }),
            Action::ErrorRetryAfter {
                status,
                message,
                retry_after,
            } => self.terminal(Terminal::Error {
                status: *status,
                message: message.clone(),
                retry_after: Some(*retry_after),
            }),
            Action::Drop => self.terminal(Terminal::Drop),
            Action::Delay(d) => self.delay += *d,
            Action::CutStreamAfter { events } => self.cut_after = Some(*events),
            Action::StreamInterval(d) => self.interval = Some(*d),
            Action::StallAfter { events, pause } => self.stall = Some((*events, *pause)),
            Action::Reply(text) => self.reply = Some(text.clone()),
            Action::LineEnds(ends) => self.line_ends = Some(*ends),
            Action::All(actions) => actions.iter().for_each(|a| self.apply(a)),
        }
    }

    fn terminal(&mut self, terminal: Terminal) {
        if self.terminal.is_none() {
            self.terminal = Some(terminal);
        }
    }
}

struct Entry {
    script: Script,
    remaining: usize,
}

/// FIFO of scripts. `pending` lets the hot path (the load benchmark: no scripts) skip the lock.
#[derive(Default)]
pub(crate) struct ScriptQueue {
    entries: Mutex<VecDeque<Entry>>,
    pending: AtomicUsize,
}

impl ScriptQueue {
    pub(crate) fn push(&self, script: Script) {
        if script.times == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.push_back(Entry {
            remaining: script.times,
            script,
        });
        self.pending.store(entries.len(), Ordering::Release);
    }

    /// Consumes one use of the first script matching this request and returns its plan.
    pub(crate) fn take(&self, path: &str, headers: &HeaderMap, body: &[u8]) -> Plan {
        if self.pending.load(Ordering::Acquire) == 0 {
            return Plan::default();
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let Some(index) = entries
            .iter()
            .position(|e| e.script.when.matches(path, headers, body))
        else {
            return Plan::default();
        };
        let plan;
        {
            let entry = &mut entries[index];
            entry.remaining -= 1;
            plan = Plan::from_action(&entry.script.action);
        }
        if entries[index].remaining == 0 {
            entries.remove(index);
        }
        self.pending.store(entries.len(), Ordering::Release);
        plan
    }

    /// Scripts not used up yet (tests can assert a scripted fault was actually hit).
    pub(crate) fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    pub(crate) fn clear(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.clear();
        self.pending.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_among_matching() {
        let q = ScriptQueue::default();
        q.push(Script::for_body("a", Action::Reply("first".into())).times(2));
        q.push(Script::new(Match::PathContains("/x".into()), Action::Drop));
        q.push(Script::for_body("a", Action::Reply("third".into())));
        let h = HeaderMap::new();
        assert_eq!(q.take("/y", &h, b"a").reply.as_deref(), Some("first"));
        assert_eq!(q.take("/x", &h, b"b").terminal, Some(Terminal::Drop));
        assert_eq!(q.take("/x", &h, b"a").reply.as_deref(), Some("first"));
        assert_eq!(q.take("/x", &h, b"a").reply.as_deref(), Some("third"));
        assert_eq!(q.take("/x", &h, b"a"), Plan::default());
        assert_eq!(q.pending(), 0);
        q.push(Script::once(Action::Drop).times(0));
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn all_folds() {
        let plan = Plan::from_action(&Action::All(vec![
            Action::Delay(Duration::from_millis(5)),
            Action::Delay(Duration::from_millis(5)),
            Action::Error {
                status: 503,
                message: "x".into(),
            },
            Action::Drop,
            Action::Reply("r".into()),
        ]));
        assert_eq!(plan.delay, Duration::from_millis(10));
        assert!(matches!(
            plan.terminal,
            Some(Terminal::Error { status: 503, .. })
        ));
        assert_eq!(plan.reply.as_deref(), Some("r"));
        let plan = Plan::from_action(&Action::All(vec![
            Action::LineEnds(LineEnds::Crlf),
            Action::StreamInterval(Duration::from_millis(5)),
        ]));
        assert_eq!(plan.line_ends, Some(LineEnds::Crlf));
        assert_eq!(plan.interval, Some(Duration::from_millis(5)));
    }

    #[test]
    fn header_and_combined_matches() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer key-a".parse().unwrap());
        let key_a = Match::header("Authorization", "key-a");
        assert!(key_a.matches("/v1/chat/completions", &h, b""));
        assert!(!Match::header("authorization", "key-b").matches("/", &h, b""));
        assert!(!Match::header("x-api-key", "key-a").matches("/", &h, b""));

        let both = Match::BodyContains("tag-1".into()).and(key_a.clone());
        assert_eq!(
            both,
            Match::All(vec![Match::BodyContains("tag-1".into()), key_a.clone()])
        );
        assert!(both.matches("/", &h, b"{\"x\":\"tag-1\"}"));
        assert!(!both.matches("/", &h, b"{\"x\":\"tag-2\"}"));
        assert!(!both.matches("/", &HeaderMap::new(), b"tag-1"));
        // `and` flattens.
        let three = both.and(Match::PathContains("/v1/".into()));
        assert!(matches!(&three, Match::All(all) if all.len() == 3));
        assert!(Match::All(Vec::new()).matches("/", &HeaderMap::new(), b""));

        // Repeated headers: any value may match.
        h.append("x-tenant", "one".parse().unwrap());
        h.append("x-tenant", "two".parse().unwrap());
        assert!(Match::header("x-tenant", "two").matches("/", &h, b""));

        let q = ScriptQueue::default();
        q.push(Script::for_body_and_header(
            "t",
            "authorization",
            "key-a",
            Action::Drop,
        ));
        let mut key_b = HeaderMap::new();
        key_b.insert("authorization", "Bearer key-b".parse().unwrap());
        assert_eq!(q.take("/", &key_b, b"t"), Plan::default());
        assert_eq!(q.take("/", &h, b"t").terminal, Some(Terminal::Drop));
        assert_eq!(q.pending(), 0);
    }

    #[test]
    fn retry_after_error_and_stall_fold() {
        let plan = Plan::from_action(&Action::ErrorRetryAfter {
            status: 429,
            message: "slow down".into(),
            retry_after: 2,
        });
        assert_eq!(
            plan.terminal,
            Some(Terminal::Error {
                status: 429,
                message: "slow down".into(),
                retry_after: Some(2),
            })
        );
        let plan = Plan::from_action(&Action::All(vec![
            Action::StallAfter {
                events: 2,
                pause: Duration::from_secs(3),
            },
            Action::StreamInterval(Duration::from_millis(5)),
        ]));
        assert_eq!(plan.stall, Some((2, Duration::from_secs(3))));
        assert_eq!(plan.interval, Some(Duration::from_millis(5)));
        assert_eq!(plan.terminal, None);
    }
}
