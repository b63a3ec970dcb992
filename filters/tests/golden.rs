//! Golden tests over every codec's fixtures, for every (client, upstream) protocol pair:
//! - requests: client fixture -> canonical -> upstream encoding -> canonical again keeps the
//!   conversation (system, roles, text, tool calls and results, tools);
//! - responses: upstream fixture -> canonical -> client encoding -> canonical again keeps text,
//!   tool calls, the stop reason class and token counts;
//! - streams: every upstream stream fixture translated to every client protocol gives the same
//!   events whether fed whole or split at any byte, and the text and tool calls survive;
//! - stream framing for pass-through: every stream fixture (also with LF, CRLF and CR line
//!   ends) is cut by `SseFramer` exactly at its event ends, whatever the chunk boundaries, and
//!   passes unchanged;
//! - nothing panics on any prefix of any fixture.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::{ModelCapabilities, Protocol};
use bitrouter_filters::canonical::{
    ChatRequest, ChatResponse, EncodeOptions, Part, PartKind, ResponseContext, Role, StopReason,
    StreamEvent,
};
use bitrouter_filters::protocol::{self, StreamDecoder};
use bitrouter_filters::sse::{SseFramer, SseParser};
use bitrouter_filters::stream::StreamTranslator;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const ALL: [Protocol; 4] = Protocol::ALL;

fn dir(p: Protocol) -> PathBuf {
    let name = match p {
        Protocol::ChatCompletions => "openai_chat",
        Protocol::Responses => "openai_responses",
        Protocol::Messages => "anthropic",
        Protocol::GenerateContent => "gemini",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Fixture files of `p` whose name starts with `prefix`, as (name, bytes).
fn fixtures(p: Protocol, prefix: &str, ext: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir(p))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name.starts_with(prefix) && name.ends_with(ext))
                        .then(|| (name, std::fs::read(e.path()).unwrap()))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Fixtures that describe a request the codec must refuse.
fn expected_to_fail(name: &str) -> bool {
    [
        "error",
        "untranslatable",
        "invalid",
        "reject",
        "unsupported",
        "stateful",
        "empty_choices",
        "failed",
    ]
    .iter()
    .any(|w| name.contains(w))
}

fn squash(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

fn args_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::String(text.to_string()))
}

fn part_text(parts: &[Part]) -> String {
    parts
        .iter()
        .filter_map(|p| match p {
            Part::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("")
}

/// What must survive any translation of a request: per turn (consecutive same-role turns
/// merged, as protocols differ there) its role, its text, its tool calls, its tool results and
/// how many images it carries (an image returned inside a tool result may move into the user
/// turn that follows, since OpenAI tool messages take only text).
#[derive(Debug, PartialEq)]
struct Turn {
    role: &'static str,
    text: String,
    calls: Vec<Value>,
    results: Vec<String>,
    images: usize,
}

fn project_request(r: &ChatRequest) -> (String, Vec<Turn>, Vec<String>) {
    let mut turns: Vec<Turn> = Vec::new();
    for m in &r.messages {
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        if turns.last().map(|t| t.role) != Some(role) {
            turns.push(Turn {
                role,
                text: String::new(),
                calls: vec![],
                results: vec![],
                images: 0,
            });
        }
        let turn = turns.last_mut().unwrap();
        for p in &m.parts {
            match p {
                Part::Text(t) => turn.text.push_str(&squash(t)),
                Part::ToolCall(c) => turn
                    .calls
                    .push(json!({"call": c.name, "args": args_value(&c.arguments)})),
                Part::ToolResult(res) => {
                    turn.results.push(squash(&part_text(&res.content)));
                    turn.images += res
                        .content
                        .iter()
                        .filter(|p| matches!(p, Part::Image(_)))
                        .count();
                }
                Part::Image(_) => turn.images += 1,
                Part::Thinking(_) => {}
            }
        }
    }
    // Thinking-only or empty turns may be dropped by a target.
    turns.retain(|t| {
        !t.text.is_empty() || !t.calls.is_empty() || !t.results.is_empty() || t.images > 0
    });
    (
        squash(&r.system.join("")),
        turns,
        r.tools.iter().map(|t| t.name.clone()).collect(),
    )
}

/// `after` keeps everything `before` said (a target may add notes, e.g. where it moved an
/// image, but may not lose or change content).
fn assert_request_kept(before: &ChatRequest, after: &ChatRequest, what: &str) {
    let (sys_a, turns_a, tools_a) = project_request(before);
    let (sys_b, turns_b, tools_b) = project_request(after);
    assert_eq!(sys_a, sys_b, "{what}: system");
    assert_eq!(tools_a, tools_b, "{what}: tools");
    assert_eq!(
        turns_a.len(),
        turns_b.len(),
        "{what}: turns\n{turns_a:#?}\n{turns_b:#?}"
    );
    for (a, b) in turns_a.iter().zip(&turns_b) {
        assert_eq!(a.role, b.role, "{what}");
        assert!(
            b.text.contains(&a.text),
            "{what}: text {:?} lost in {:?}",
            a.text,
            b.text
        );
        assert_eq!(a.calls, b.calls, "{what}: tool calls");
        assert_eq!(a.results.len(), b.results.len(), "{what}: tool results");
        for (ra, rb) in a.results.iter().zip(&b.results) {
            assert!(
                rb.contains(ra.as_str()),
                "{what}: tool result {ra:?} became {rb:?}"
            );
        }
        assert_eq!(a.images, b.images, "{what}: images");
    }
}

fn stop_class(s: &StopReason) -> &'static str {
    match s {
        StopReason::ToolUse => "tool",
        StopReason::MaxTokens => "length",
        StopReason::ContentFilter => "filter",
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::Other(_) => "end",
    }
}

fn project_response(r: &ChatResponse, structured: bool) -> Value {
    let calls: Vec<Value> = r
        .parts
        .iter()
        .filter_map(|p| match p {
            Part::ToolCall(c) => Some(json!({"call": c.name, "args": args_value(&c.arguments)})),
            _ => None,
        })
        .collect();
    json!({
        "text": if structured { json!(null) } else { json!(squash(&part_text(&r.parts))) },
        "calls": calls,
        "stop": stop_class(&r.stop),
        "input": r.usage.input,
        "output": r.usage.output,
    })
}

fn ctx(stream: bool) -> ResponseContext {
    ResponseContext {
        client_model: "client-model".into(),
        stream,
        include_usage: true,
        ..ResponseContext::default()
    }
}

#[test]
fn every_request_fixture_translates_to_every_protocol() {
    let mut checked = 0;
    for client in ALL {
        for (name, body) in fixtures(client, "request", ".json") {
            let decoded = protocol::decode_request(client, &body);
            if expected_to_fail(&name) {
                let e = decoded.expect_err(&format!("{client}/{name} must be refused"));
                assert_eq!(e.status, 400, "{client}/{name}: {e:?}");
                continue;
            }
            let mut canonical = decoded.unwrap_or_else(|e| panic!("{client}/{name}: {e:?}"));
            canonical.model = "target-model".into();
            for upstream in ALL {
                let opts = EncodeOptions {
                    capabilities: ModelCapabilities {
                        default_max_tokens: 1024,
                        ..ModelCapabilities::DEFAULT
                    },
                };
                let encoded = match protocol::encode_request(upstream, &canonical, &opts) {
                    Ok(e) => e,
                    // A refusal must be a clear client error (e.g. image URL to Gemini, n > 1).
                    Err(e) => {
                        assert_eq!(e.status, 400, "{client}/{name} -> {upstream}: {e:?}");
                        assert!(!e.message.is_empty());
                        continue;
                    }
                };
                let mut again = protocol::decode_request(upstream, &encoded.body).unwrap_or_else(|e| {
                    panic!(
                        "{client}/{name} -> {upstream}: our own encoding does not decode: {e:?}\n{}",
                        String::from_utf8_lossy(&encoded.body)
                    )
                });
                if encoded.structured_output_tool.is_some() {
                    // The forced tool is an encoding detail of structured output.
                    again
                        .tools
                        .retain(|t| Some(&t.name) != encoded.structured_output_tool.as_ref());
                }
                let what = format!(
                    "{client}/{name} -> {upstream}\n{}",
                    String::from_utf8_lossy(&encoded.body)
                );
                assert_request_kept(&canonical, &again, &what);
                checked += 1;
            }
        }
    }
    assert!(checked >= 40, "only {checked} request translations checked");
}

#[test]
fn every_response_fixture_translates_to_every_protocol() {
    let mut checked = 0;
    for upstream in ALL {
        for (name, body) in fixtures(upstream, "response", ".json") {
            let mut c = ctx(false);
            let structured = name.contains("structured");
            if structured && upstream == Protocol::Messages {
                c.structured_output_tool = Some(structured_tool_name(&body));
            }
            let canonical = match protocol::decode_response(upstream, &body, &c) {
                Ok(r) => r,
                Err(e) => {
                    assert!(expected_to_fail(&name), "{upstream}/{name}: {e:?}");
                    continue;
                }
            };
            for client in ALL {
                let c2 = ctx(false);
                let bytes = protocol::encode_response(client, &canonical, &c2);
                let again = protocol::decode_response(client, &bytes, &c2).unwrap_or_else(|e| {
                    panic!(
                        "{upstream}/{name} -> {client}: {e:?}\n{}",
                        String::from_utf8_lossy(&bytes)
                    )
                });
                assert_eq!(
                    project_response(&canonical, false),
                    project_response(&again, false),
                    "{upstream}/{name} -> {client}\n{}",
                    String::from_utf8_lossy(&bytes)
                );
                let v: Value = serde_json::from_slice(&bytes).unwrap();
                assert!(
                    v.to_string().contains("client-model"),
                    "{client}: the client's model name is reported"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked >= 40,
        "only {checked} response translations checked"
    );
}

/// The structured-output tool name in an Anthropic response fixture (its only tool_use).
fn structured_tool_name(body: &[u8]) -> String {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["type"] == "tool_use")
        .and_then(|b| b["name"].as_str())
        .unwrap_or("json_response")
        .to_string()
}

/// Canonical events decoded from a client-protocol stream, with generated ids and timestamps
/// replaced by stable placeholders so two runs compare equal.
fn decode_stream(client: Protocol, bytes: &[u8]) -> Vec<StreamEvent> {
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let body: Vec<u8> = if client == Protocol::GenerateContent && bytes.first() == Some(&b'[') {
        unreachable!("array streams are not used in these tests")
    } else {
        bytes.to_vec()
    };
    parser.feed(&body, &mut events).unwrap();
    parser.finish(&mut events);
    let mut decoder = StreamDecoder::new(client, &ctx(true));
    let mut out = Vec::new();
    for e in &events {
        if let Err(err) = decoder.decode(e, &mut out) {
            out.push(StreamEvent::Error(err));
        }
    }
    decoder.finish(&mut out);
    let mut ids: Vec<String> = Vec::new();
    let mut stable = |id: &str| {
        let i = ids.iter().position(|x| x == id).unwrap_or_else(|| {
            ids.push(id.to_string());
            ids.len() - 1
        });
        format!("id{i}")
    };
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
            } => StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall {
                    id: stable(&id),
                    name,
                },
            },
            other => other,
        })
        .collect()
}

fn translate(upstream: Protocol, client: Protocol, chunks: &[&[u8]]) -> Vec<u8> {
    let mut t = StreamTranslator::new(upstream, client, &ctx(true));
    let mut out = Vec::new();
    for c in chunks {
        t.feed(c, &mut out);
    }
    t.finish(&mut out);
    out
}

fn stream_text_and_calls(events: &[StreamEvent]) -> (String, Vec<(String, String)>) {
    let mut text = String::new();
    let mut calls: Vec<(usize, String, String)> = Vec::new();
    for e in events {
        match e {
            StreamEvent::TextDelta { text: t, .. } => text.push_str(t),
            StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall { name, .. },
            } => calls.push((*index, name.clone(), String::new())),
            StreamEvent::ToolArgsDelta { index, json } => {
                if let Some(c) = calls.iter_mut().find(|c| c.0 == *index) {
                    c.2.push_str(json);
                }
            }
            _ => {}
        }
    }
    (
        squash(&text),
        calls
            .into_iter()
            .map(|(_, n, a)| (n, args_value(&a).to_string()))
            .collect(),
    )
}

#[test]
fn every_stream_fixture_translates_the_same_at_any_split() {
    let mut checked = 0;
    for upstream in ALL {
        for (name, body) in fixtures(upstream, "stream", ".sse") {
            // What the upstream stream says, decoded in its own protocol.
            let source = decode_stream(upstream, &body);
            let source_ok = !source.iter().any(|e| matches!(e, StreamEvent::Error(_)));
            let structured = name.contains("structured");
            for client in ALL {
                let whole = translate(upstream, client, &[&body]);
                let expected = decode_stream(client, &whole);
                assert!(
                    matches!(
                        expected.last(),
                        Some(StreamEvent::Done | StreamEvent::Error(_))
                    ),
                    "{upstream}/{name} -> {client}: stream not terminated:\n{}",
                    String::from_utf8_lossy(&whole)
                );
                if source_ok && !structured {
                    assert_eq!(
                        stream_text_and_calls(&source),
                        stream_text_and_calls(&expected),
                        "{upstream}/{name} -> {client}:\n{}",
                        String::from_utf8_lossy(&whole)
                    );
                }
                let step = 1;
                for i in (0..=body.len()).step_by(step) {
                    let split = translate(upstream, client, &[&body[..i], &body[i..]]);
                    assert_eq!(
                        decode_stream(client, &split),
                        expected,
                        "{upstream}/{name} -> {client} split at {i}"
                    );
                }
                let bytes: Vec<&[u8]> = body.chunks(1).collect();
                assert_eq!(
                    decode_stream(client, &translate(upstream, client, &bytes)),
                    expected,
                    "{upstream}/{name} -> {client} byte by byte"
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 16, "only {checked} stream translations checked");
}

#[test]
fn no_decoder_panics_on_truncated_or_garbage_input() {
    let garbage: [&[u8]; 8] = [
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"messages\":7}",
        b"\xff\xfe",
        b"{\"contents\":[{\"parts\":[{}]}]}",
        b"{\"input\":[{\"type\":\"function_call\"}]}",
    ];
    for p in ALL {
        let mut inputs: Vec<Vec<u8>> = garbage.iter().map(|g| g.to_vec()).collect();
        for (_, body) in fixtures(p, "", "") {
            for end in (0..body.len()).step_by((body.len() / 64).max(1)) {
                inputs.push(body[..end].to_vec());
            }
        }
        for input in &inputs {
            let _ = protocol::decode_request(p, input);
            let _ = protocol::decode_response(p, input, &ctx(false));
            let _ = protocol::decode_error(p, 500, input);
            let mut t = StreamTranslator::new(p, Protocol::ChatCompletions, &ctx(true));
            let mut out = Vec::new();
            t.feed(input, &mut out);
            t.finish(&mut out);
        }
    }
}

/// The offsets just after every event end (blank line) of `input`, by the WHATWG line rules
/// read naively over the whole input: the framer's reference. A `\r` last in `input` is a
/// complete line end (the framer cuts there rather than wait for a `\n` that may not come).
fn event_ends(input: &[u8]) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut line_empty = true;
    let mut i = 0;
    while i < input.len() {
        let end = match input[i] {
            b'\n' => i + 1,
            b'\r' if input.get(i + 1) == Some(&b'\n') => i + 2,
            b'\r' => i + 1,
            _ => {
                line_empty = false;
                i += 1;
                continue;
            }
        };
        if line_empty {
            ends.push(end);
        }
        line_empty = true;
        i = end;
    }
    ends
}

/// Feeds `chunks` to an `SseFramer`, checking after every chunk that the output so far ends
/// exactly at the last event end of the input so far; returns everything it produced.
fn frame_checked(chunks: &[&[u8]], what: &str) -> Vec<u8> {
    let mut framer = SseFramer::default();
    let mut fed = Vec::new();
    let mut out = Vec::new();
    for c in chunks {
        fed.extend_from_slice(c);
        if let Some(piece) = framer.feed(bytes::Bytes::copy_from_slice(c)).unwrap() {
            assert!(!piece.is_empty(), "{what}: empty piece");
            out.extend_from_slice(&piece);
        }
        let expected = event_ends(&fed).last().copied().unwrap_or(0);
        assert_eq!(
            out.len(),
            expected,
            "{what}: after {} bytes the framer released {} bytes, the last event ends at {expected}",
            fed.len(),
            out.len()
        );
    }
    if let Some(rest) = framer.finish() {
        out.extend_from_slice(&rest);
    }
    assert_eq!(out, fed, "{what}: the framer changed the bytes");
    out
}

/// The fixture with its line ends rewritten: every `\r\n`, `\r` and `\n` becomes `to`.
fn with_line_ends(body: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() * 2);
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\r' if body.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(to);
                i += 2;
                continue;
            }
            b'\r' | b'\n' => out.extend_from_slice(to),
            b => out.push(b),
        }
        i += 1;
    }
    out
}

#[test]
fn every_stream_fixture_frames_at_event_boundaries_at_any_split() {
    let mut checked = 0;
    for p in ALL {
        for (name, original) in fixtures(p, "stream", ".sse") {
            for (ends, body) in [
                ("as is", original.clone()),
                ("lf", with_line_ends(&original, b"\n")),
                ("crlf", with_line_ends(&original, b"\r\n")),
                ("cr", with_line_ends(&original, b"\r")),
            ] {
                let what = format!("{p}/{name} ({ends})");
                // The framer and the parser agree on how many events there are: every parsed
                // event ends at a framer boundary.
                let mut parsed = Vec::new();
                let mut parser = SseParser::default();
                parser.feed(&body, &mut parsed).unwrap();
                assert!(
                    event_ends(&body).len() >= parsed.len(),
                    "{what}: fewer boundaries than events"
                );
                assert!(!parsed.is_empty(), "{what}: no events parsed");
                frame_checked(&[&body], &what);
                for i in 0..=body.len() {
                    frame_checked(&[&body[..i], &body[i..]], &format!("{what} split at {i}"));
                }
                let bytes: Vec<&[u8]> = body.chunks(1).collect();
                frame_checked(&bytes, &format!("{what} byte by byte"));
                checked += 1;
            }
        }
    }
    assert!(checked >= 64, "only {checked} framings checked");
}

#[test]
fn a_small_stream_frames_the_same_at_every_pair_of_splits() {
    let stream: &[u8] = b"event: a\r\ndata: 1\r\n\r\n: keepalive\n\ndata: {\"k\": \"v\\n\"}\r\rdata: x\n\r\ndata: y\r\n\ndata: [DONE]\r\n\r\n";
    let whole = frame_checked(&[stream], "whole");
    assert_eq!(whole, stream);
    for i in 0..=stream.len() {
        for j in i..=stream.len() {
            frame_checked(
                &[&stream[..i], &stream[i..j], &stream[j..]],
                &format!("split at {i},{j}"),
            );
        }
    }
}
