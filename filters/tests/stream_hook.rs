//! `StreamHook`: a stage between stream decode and encode. Hooks that rewrite text, hold text
//! back across events and release it at the end, and end the stream with an error, for every
//! (upstream, client) protocol pair; and same-protocol translation (what a hook on a
//! same-protocol stream runs through) compared with the upstream's own events.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::Protocol;
use bitrouter_filters::canonical::{
    CanonicalError, ErrorKind, PartKind, ResponseContext, StreamEvent, Usage,
};
use bitrouter_filters::protocol::StreamDecoder;
use bitrouter_filters::sse::SseParser;
use bitrouter_filters::stream::{StreamHook, StreamTranslator};
use std::path::Path;

const ALL: [Protocol; 4] = Protocol::ALL;

fn dir_name(p: Protocol) -> &'static str {
    match p {
        Protocol::ChatCompletions => "openai_chat",
        Protocol::Responses => "openai_responses",
        Protocol::Messages => "anthropic",
        Protocol::GenerateContent => "gemini",
    }
}

fn stream_fixtures(p: Protocol) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir_name(p));
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name.starts_with("stream") && name.ends_with(".sse"))
                .then(|| (name, std::fs::read(e.path()).unwrap()))
        })
        .collect();
    out.sort();
    out
}

fn text_fixture(p: Protocol) -> Vec<u8> {
    stream_fixtures(p)
        .into_iter()
        .find(|(n, _)| n == "stream_text.sse")
        .unwrap()
        .1
}

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "client-model".into(),
        stream: true,
        include_usage: true,
        ..ResponseContext::default()
    }
}

/// Canonical events of a stream in `p`, with generated ids and timestamps made stable.
/// `finish`: the stream is complete (else only what its bytes so far say).
fn decode(p: Protocol, bytes: &[u8], finish: bool) -> Vec<StreamEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    parser.feed(bytes, &mut events).unwrap();
    if finish {
        parser.finish(&mut events);
    }
    let mut decoder = StreamDecoder::new(p, &ctx());
    let mut out = Vec::new();
    for e in &events {
        if let Err(err) = decoder.decode(e, &mut out) {
            out.push(StreamEvent::Error(err));
        }
    }
    if finish {
        decoder.finish(&mut out);
    }
    let mut ids: Vec<String> = Vec::new();
    out.into_iter()
        .map(|e| match e {
            StreamEvent::Start { model, usage, .. } => StreamEvent::Start {
                id: String::new(),
                model,
                created: 0,
                usage,
            },
            StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall { id, name },
            } => {
                let i = ids.iter().position(|x| *x == id).unwrap_or_else(|| {
                    ids.push(id);
                    ids.len() - 1
                });
                StreamEvent::PartStart {
                    index,
                    kind: PartKind::ToolCall {
                        id: format!("id{i}"),
                        name,
                    },
                }
            }
            other => other,
        })
        .collect()
}

fn text_of(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn text_deltas(events: &[StreamEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
        .count()
}

/// Translates `body` fed one SSE event's worth of bytes at a time (split at every blank line).
/// Returns the bytes produced while feeding and those produced by `finish`.
fn run(
    upstream: Protocol,
    client: Protocol,
    body: &[u8],
    hook: Option<Box<dyn StreamHook>>,
) -> (Vec<u8>, Vec<u8>) {
    let mut t = StreamTranslator::new(upstream, client, &ctx());
    if let Some(hook) = hook {
        t = t.with_hook(hook);
    }
    let mut fed = Vec::new();
    for chunk in body.split_inclusive(|&b| b == b'\n') {
        t.feed(chunk, &mut fed);
    }
    let mut end = Vec::new();
    t.finish(&mut end);
    (fed, end)
}

fn joined((fed, end): (Vec<u8>, Vec<u8>)) -> Vec<u8> {
    [fed, end].concat()
}

// ---------- hooks used by the tests ----------

/// Passes everything on unchanged.
struct PassThrough;

impl StreamHook for PassThrough {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        out.push(event);
    }
    fn on_finish(&mut self, _out: &mut Vec<StreamEvent>) {}
}

/// Rewrites text: upper-cases it (a stand-in for redaction).
struct Shout;

impl StreamHook for Shout {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        out.push(match event {
            StreamEvent::TextDelta { index, text } => StreamEvent::TextDelta {
                index,
                text: text.to_uppercase(),
            },
            other => other,
        });
    }
    fn on_finish(&mut self, _out: &mut Vec<StreamEvent>) {}
}

/// Holds everything back from the first text delta on, merging the text into one delta, and
/// releases it all (in order) when the upstream ends: the shape of a guardrail that must see
/// the whole text before letting any of it out.
#[derive(Default)]
struct HoldUntilEnd {
    holding: bool,
    text: Option<(usize, String)>,
    /// Events after the text started, in order; `None` marks where the merged text goes.
    held: Vec<Option<StreamEvent>>,
}

impl StreamHook for HoldUntilEnd {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        match event {
            StreamEvent::TextDelta { index, text } => {
                self.holding = true;
                match &mut self.text {
                    Some((_, all)) => all.push_str(&text),
                    None => {
                        self.text = Some((index, text));
                        self.held.push(None);
                    }
                }
            }
            other if self.holding => self.held.push(Some(other)),
            other => out.push(other),
        }
    }

    fn on_finish(&mut self, out: &mut Vec<StreamEvent>) {
        for slot in self.held.drain(..) {
            match slot {
                Some(event) => out.push(event),
                None => {
                    if let Some((index, text)) = self.text.take() {
                        out.push(StreamEvent::TextDelta { index, text });
                    }
                }
            }
        }
    }
}

/// Ends the stream with an error as soon as a text delta contains `word`.
struct Block {
    word: &'static str,
    seen_after: usize,
    fired: bool,
}

impl StreamHook for Block {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        if self.fired {
            self.seen_after += 1;
        }
        match event {
            StreamEvent::TextDelta { text, .. } if text.contains(self.word) => {
                self.fired = true;
                out.push(StreamEvent::Error(
                    CanonicalError::new(
                        ErrorKind::PermissionDenied,
                        "the response was blocked by a content rule",
                    )
                    .with_code("content_blocked"),
                ));
            }
            other => out.push(other),
        }
    }
    fn on_finish(&mut self, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::TextDelta {
            index: 0,
            text: "must never be encoded".into(),
        });
    }
}

// ---------- tests ----------

#[test]
fn a_pass_through_hook_changes_nothing() {
    for upstream in ALL {
        for (name, body) in stream_fixtures(upstream) {
            for client in ALL {
                let plain = decode(client, &joined(run(upstream, client, &body, None)), true);
                let hooked = decode(
                    client,
                    &joined(run(upstream, client, &body, Some(Box::new(PassThrough)))),
                    true,
                );
                assert_eq!(plain, hooked, "{upstream}/{name} -> {client}");
            }
        }
    }
}

#[test]
fn a_hook_rewrites_text() {
    for upstream in ALL {
        let body = text_fixture(upstream);
        let source = text_of(&decode(upstream, &body, true));
        assert!(source.chars().any(char::is_lowercase), "{upstream}");
        for client in ALL {
            let out = joined(run(upstream, client, &body, Some(Box::new(Shout))));
            let events = decode(client, &out, true);
            assert_eq!(
                text_of(&events),
                source.to_uppercase(),
                "{upstream} -> {client}"
            );
            assert_eq!(
                events.last(),
                Some(&StreamEvent::Done),
                "{upstream} -> {client}"
            );
        }
    }
}

#[test]
fn a_hook_holds_text_back_across_events_and_releases_it_whole_at_the_end() {
    for upstream in ALL {
        let body = text_fixture(upstream);
        let source_events = decode(upstream, &body, true);
        let source = text_of(&source_events);
        assert!(
            text_deltas(&source_events) >= 3,
            "{upstream}: the fixture splits its text over several events"
        );
        for client in ALL {
            let (fed, end) = run(
                upstream,
                client,
                &body,
                Some(Box::new(HoldUntilEnd::default())),
            );
            let before_end = decode(client, &fed, false);
            assert_eq!(
                text_deltas(&before_end),
                0,
                "{upstream} -> {client}: no text before the upstream ended"
            );
            let events = decode(client, &[fed, end].concat(), true);
            assert_eq!(
                text_deltas(&events),
                1,
                "{upstream} -> {client}: {events:#?}"
            );
            assert_eq!(text_of(&events), source, "{upstream} -> {client}");
            // The text sits inside its part, and the stream still closes normally.
            let delta = events
                .iter()
                .position(|e| matches!(e, StreamEvent::TextDelta { .. }))
                .unwrap();
            assert!(events[..delta]
                .iter()
                .any(|e| matches!(e, StreamEvent::PartStart { .. })));
            assert!(events[delta..]
                .iter()
                .any(|e| matches!(e, StreamEvent::PartStop { .. })));
            assert_eq!(
                events.last(),
                Some(&StreamEvent::Done),
                "{upstream} -> {client}"
            );
        }
    }
}

#[test]
fn a_hook_ends_the_stream_with_an_error_in_the_clients_protocol() {
    for upstream in ALL {
        let body = text_fixture(upstream);
        let source = decode(upstream, &body, true);
        // A word of the second text delta: the stream is blocked mid-way.
        let second = source
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta { text, .. } => Some(text.clone()),
                _ => None,
            })
            .nth(1)
            .unwrap();
        let word: &'static str = Box::leak(
            second
                .split_whitespace()
                .find(|w| w.chars().all(|c| c.is_ascii_alphabetic()))
                .unwrap()
                .to_string()
                .into_boxed_str(),
        );
        for client in ALL {
            let mut t =
                StreamTranslator::new(upstream, client, &ctx()).with_hook(Box::new(Block {
                    word,
                    seen_after: 0,
                    fired: false,
                }));
            let mut out = Vec::new();
            let mut ended_at = None;
            let lines: Vec<&[u8]> = body.split_inclusive(|&b| b == b'\n').collect();
            for (i, line) in lines.iter().enumerate() {
                let before = out.len();
                t.feed(line, &mut out);
                if ended_at.is_some() {
                    assert_eq!(
                        out.len(),
                        before,
                        "{upstream} -> {client}: output after the end"
                    );
                }
                if t.is_ended() && ended_at.is_none() {
                    ended_at = Some(i);
                }
            }
            let ended_at = ended_at.expect("the hook ended the stream");
            assert!(
                ended_at + 1 < lines.len(),
                "{upstream}: ended before the upstream did"
            );
            let before = out.len();
            t.finish(&mut out);
            assert_eq!(
                out.len(),
                before,
                "{upstream} -> {client}: finish after the end"
            );
            let events = decode(client, &out, true);
            match events.last() {
                Some(StreamEvent::Error(e)) => {
                    assert!(e.message.contains("blocked by a content rule"), "{e:?}")
                }
                other => panic!("{upstream} -> {client}: ends with {other:?}"),
            }
            assert_eq!(
                text_deltas(&events),
                1,
                "{upstream} -> {client}: only the text before the blocked delta"
            );
        }
    }
}

/// A same-protocol translation (what a hooked same-protocol stream goes through) says what the
/// upstream said. Known, harmless differences, normalised here: generated ids and timestamps
/// (the encoders mint their own), the model (answered as the client's model name), and where
/// and how usage is reported (merged into one total; an absent cache or reasoning count equals
/// zero; the encoder may put it before or after the `Finish`). Lost on the way, also normalised:
/// an error event keeps its message but not its code, nor always its kind (Anthropic has one
/// `api_error` for our BadGateway and Internal), and a stream cut mid-part (a truncated fixture)
/// comes back as an explicit error event, before which the decoder closes no part.
#[test]
fn same_protocol_translation_keeps_the_events() {
    let mut failures = Vec::new();
    for p in ALL {
        for (name, body) in stream_fixtures(p) {
            let source = normalise(decode(p, &body, true));
            let again = normalise(decode(p, &joined(run(p, p, &body, None)), true));
            if source != again {
                failures.push(format!("{p}/{name}:\n  {source:?}\n  {again:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The events without usage reports, and the usage they add up to.
fn normalise(events: Vec<StreamEvent>) -> (Vec<StreamEvent>, Usage) {
    let mut usage = Usage::default();
    let mut rest = Vec::new();
    for e in events {
        match e {
            StreamEvent::Start { usage: u, .. } => {
                if let Some(u) = u {
                    usage.merge(&u);
                }
                rest.push(StreamEvent::Start {
                    id: String::new(),
                    model: String::new(),
                    created: 0,
                    usage: None,
                });
            }
            StreamEvent::Usage(u) => usage.merge(&u),
            StreamEvent::Error(e) => {
                if matches!(rest.last(), Some(StreamEvent::PartStop { .. })) {
                    rest.pop();
                }
                rest.push(StreamEvent::Error(CanonicalError::new(
                    ErrorKind::Internal,
                    e.message,
                )));
            }
            other => rest.push(other),
        }
    }
    let zero = |v: Option<u64>| v.filter(|&n| n > 0);
    usage.cached_input = zero(usage.cached_input);
    usage.cache_creation_input = zero(usage.cache_creation_input);
    usage.reasoning = zero(usage.reasoning);
    (rest, usage)
}
