//! Anthropic Messages streams: named SSE events (`message_start`, `content_block_*`,
//! `message_delta`, `message_stop`, `ping`, `error`) to canonical events and back.

use super::request::WRAPPED_SUFFIX;
use super::response::{decode_stop, decode_usage, encode_stop, encode_usage};
use super::wire::{
    AnthropicBlock, AnthropicDelta, AnthropicErrorBody, AnthropicMessageDeltaBody,
    AnthropicResponse, AnthropicStreamEvent, AnthropicUsage,
};
use crate::canonical::{
    CanonicalError, ErrorKind, PartKind, ResponseContext, StopReason, StreamEvent, Usage,
};
use crate::protocol::util::{bad_upstream, new_id, now_unix, with_prefix};
use crate::sse::{write_event, SseEvent};
use serde_json::Value;
use std::collections::VecDeque;

const EVENT_NAMES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

// ---------------------------------------------------------------------------------------------
// decoder
// ---------------------------------------------------------------------------------------------

/// How an open Anthropic content block maps to a canonical part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Text,
    Thinking,
    Redacted,
    Tool,
    /// The structured-output tool: its input JSON is streamed as text.
    StructuredText,
    /// A block with no canonical equivalent (`server_tool_use`, ...): its events are ignored.
    Skip,
}

#[derive(Debug, Clone, Copy)]
struct OpenBlock {
    /// Anthropic content block index.
    block: usize,
    /// Canonical part index.
    part: usize,
    mode: Mode,
}

/// Anthropic SSE events -> canonical stream events.
#[derive(Debug)]
pub struct StreamDecoder {
    structured_tool: Option<String>,
    started: bool,
    /// `Done` or `Error` emitted: nothing more is decoded.
    finished: bool,
    /// Blocks started and not yet stopped (Anthropic streams one at a time; a few at most).
    open: Vec<OpenBlock>,
    next_part: usize,
    /// Raw usage so far (fields present later win).
    usage: AnthropicUsage,
    /// A tool_use block other than the structured-output tool was seen.
    other_tool_use: bool,
    /// Unwraps the streamed input of a wrapped structured-output tool (`{"value": ...}`).
    unwrap: Option<Unwrapper>,
}

impl StreamDecoder {
    pub fn new(ctx: &ResponseContext) -> StreamDecoder {
        StreamDecoder {
            structured_tool: ctx.structured_output_tool.clone(),
            started: false,
            finished: false,
            open: Vec::new(),
            next_part: 0,
            usage: AnthropicUsage::default(),
            other_tool_use: false,
            unwrap: None,
        }
    }

    /// Decodes one SSE event, appending canonical events to `out`.
    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        if self.finished {
            return Ok(());
        }
        let result = self.decode_inner(event, out);
        if result.is_err() {
            self.finished = true;
        }
        result
    }

    fn decode_inner(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let parsed: AnthropicStreamEvent = match serde_json::from_str(data) {
            Ok(e) => e,
            Err(e) => {
                let value: Option<Value> = serde_json::from_str(data).ok();
                let claimed = event.event.as_deref().or_else(|| {
                    value
                        .as_ref()
                        .and_then(|v| v.get("type"))
                        .and_then(Value::as_str)
                });
                if claimed == Some("error") {
                    // An error event in a shape other than Anthropic's: still an error.
                    let message = value
                        .as_ref()
                        .and_then(|v| {
                            v.get("error")
                                .and_then(|e| e.get("message"))
                                .or_else(|| v.get("message"))
                        })
                        .and_then(Value::as_str)
                        .unwrap_or(data);
                    out.push(StreamEvent::Error(CanonicalError::new(
                        ErrorKind::BadGateway,
                        format!("upstream stream error: {message}"),
                    )));
                    self.finished = true;
                    return Ok(());
                }
                // Only an event that claims to be one of Anthropic's is held to its format;
                // anything else is ignored (forward compatibility).
                if claimed.is_some_and(|n| EVENT_NAMES.contains(&n)) {
                    let name = claimed.unwrap_or_default();
                    return Err(bad_upstream(format!(
                        "the Anthropic stream sent an invalid {name} event: {e}"
                    )));
                }
                return Ok(());
            }
        };
        match parsed {
            AnthropicStreamEvent::MessageStart { message } => {
                if self.started {
                    return Ok(());
                }
                self.started = true;
                merge_raw(&mut self.usage, &message.usage);
                out.push(StreamEvent::Start {
                    id: message.id,
                    model: message.model,
                    created: now_unix(),
                    usage: Some(decode_usage(&self.usage)),
                });
            }
            AnthropicStreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                self.ensure_started(out);
                self.stop_block(index, out);
                self.start_block(index, content_block, out);
            }
            AnthropicStreamEvent::ContentBlockDelta { index, delta } => {
                self.ensure_started(out);
                self.delta(index, delta, out)?;
            }
            AnthropicStreamEvent::ContentBlockStop { index } => {
                self.stop_block(index, out);
            }
            AnthropicStreamEvent::MessageDelta { delta, usage } => {
                self.ensure_started(out);
                let AnthropicMessageDeltaBody {
                    stop_reason,
                    stop_sequence,
                } = delta;
                if let Some(reason) = stop_reason {
                    let mut stop = decode_stop(Some(&reason), stop_sequence);
                    if stop == StopReason::ToolUse
                        && self.structured_tool.is_some()
                        && !self.other_tool_use
                    {
                        stop = StopReason::EndTurn;
                    }
                    out.push(StreamEvent::Finish { stop });
                }
                if let Some(u) = usage {
                    merge_raw(&mut self.usage, &u);
                    out.push(StreamEvent::Usage(decode_usage(&self.usage)));
                }
            }
            AnthropicStreamEvent::MessageStop => {
                self.ensure_started(out);
                self.close_all(out);
                out.push(StreamEvent::Done);
                self.finished = true;
            }
            AnthropicStreamEvent::Error { error } => {
                out.push(StreamEvent::Error(super::error_from_body(&error, None)));
                self.finished = true;
            }
            AnthropicStreamEvent::Ping | AnthropicStreamEvent::Unknown => {}
        }
        Ok(())
    }

    /// The upstream stream ended (EOF).
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.close_all(out);
        out.push(StreamEvent::Error(crate::protocol::util::stream_truncated(
            "Anthropic",
            "`message_stop`",
        )));
    }

    fn ensure_started(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: new_id("msg_"),
                model: String::new(),
                created: now_unix(),
                usage: None,
            });
        }
    }

    fn open_part(
        &mut self,
        block: usize,
        mode: Mode,
        kind: Option<PartKind>,
        out: &mut Vec<StreamEvent>,
    ) -> usize {
        let part = self.next_part;
        if let Some(kind) = kind {
            self.next_part += 1;
            out.push(StreamEvent::PartStart { index: part, kind });
        }
        self.open.push(OpenBlock { block, part, mode });
        part
    }

    fn start_block(&mut self, block: usize, content: AnthropicBlock, out: &mut Vec<StreamEvent>) {
        match content {
            AnthropicBlock::Text { text } => {
                let part = self.open_part(block, Mode::Text, Some(PartKind::Text), out);
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta { index: part, text });
                }
            }
            AnthropicBlock::ToolUse { id, name, input } => {
                let initial = match &input {
                    Value::Null => None,
                    Value::Object(m) if m.is_empty() => None,
                    other => Some(other.to_string()),
                };
                if self.structured_tool.as_deref() == Some(name.as_str()) {
                    let part =
                        self.open_part(block, Mode::StructuredText, Some(PartKind::Text), out);
                    self.unwrap = name.ends_with(WRAPPED_SUFFIX).then(Unwrapper::default);
                    if let Some(text) = initial {
                        self.structured_delta(part, &text, out);
                    }
                } else {
                    self.other_tool_use = true;
                    let part = self.open_part(
                        block,
                        Mode::Tool,
                        Some(PartKind::ToolCall { id, name }),
                        out,
                    );
                    if let Some(json) = initial {
                        out.push(StreamEvent::ToolArgsDelta { index: part, json });
                    }
                }
            }
            AnthropicBlock::Thinking {
                thinking,
                signature,
            } => {
                let part = self.open_part(block, Mode::Thinking, Some(PartKind::Thinking), out);
                if !thinking.is_empty() {
                    out.push(StreamEvent::ThinkingDelta {
                        index: part,
                        text: thinking,
                    });
                }
                if !signature.is_empty() {
                    out.push(StreamEvent::ThinkingSignature {
                        index: part,
                        signature,
                    });
                }
            }
            AnthropicBlock::RedactedThinking { data } => {
                self.open_part(
                    block,
                    Mode::Redacted,
                    Some(PartKind::RedactedThinking { data }),
                    out,
                );
            }
            AnthropicBlock::Image { .. }
            | AnthropicBlock::ToolResult { .. }
            | AnthropicBlock::Other => {
                self.open_part(block, Mode::Skip, None, out);
            }
        }
    }

    fn delta(
        &mut self,
        block: usize,
        delta: AnthropicDelta,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        let open = match self.open.iter().find(|b| b.block == block) {
            Some(b) => *b,
            // A delta for a block never started: open it when the delta says what it is.
            None => match &delta {
                AnthropicDelta::TextDelta { .. } => {
                    let part = self.open_part(block, Mode::Text, Some(PartKind::Text), out);
                    OpenBlock { block, part, mode: Mode::Text }
                }
                AnthropicDelta::ThinkingDelta { .. } => {
                    let part = self.open_part(block, Mode::Thinking, Some(PartKind::Thinking), out);
                    OpenBlock { block, part, mode: Mode::Thinking }
                }
                AnthropicDelta::InputJsonDelta { .. } => {
                    return Err(bad_upstream(format!(
                        "the Anthropic stream sent input_json_delta for content block {block}, which was never started"
                    )))
                }
                AnthropicDelta::SignatureDelta { .. } | AnthropicDelta::Other => return Ok(()),
            },
        };
        let index = open.part;
        match (open.mode, delta) {
            (Mode::Text, AnthropicDelta::TextDelta { text }) if !text.is_empty() => {
                out.push(StreamEvent::TextDelta { index, text })
            }
            (Mode::StructuredText, AnthropicDelta::InputJsonDelta { partial_json })
                if !partial_json.is_empty() =>
            {
                self.structured_delta(index, &partial_json, out)
            }
            (Mode::Tool, AnthropicDelta::InputJsonDelta { partial_json })
                if !partial_json.is_empty() =>
            {
                out.push(StreamEvent::ToolArgsDelta {
                    index,
                    json: partial_json,
                })
            }
            (Mode::Thinking, AnthropicDelta::ThinkingDelta { thinking })
                if !thinking.is_empty() =>
            {
                out.push(StreamEvent::ThinkingDelta {
                    index,
                    text: thinking,
                })
            }
            (Mode::Thinking, AnthropicDelta::SignatureDelta { signature })
                if !signature.is_empty() =>
            {
                out.push(StreamEvent::ThinkingSignature { index, signature })
            }
            // Empty fragments, citations, and deltas of skipped blocks carry nothing.
            _ => {}
        }
        Ok(())
    }

    /// Text of the structured-output tool: passed through, or unwrapped from `{"value": ...}`.
    fn structured_delta(&mut self, index: usize, json: &str, out: &mut Vec<StreamEvent>) {
        let text = match &mut self.unwrap {
            Some(u) => u.push(json),
            None => json.to_string(),
        };
        if !text.is_empty() {
            out.push(StreamEvent::TextDelta { index, text });
        }
    }

    fn close_block(&mut self, b: OpenBlock, out: &mut Vec<StreamEvent>) {
        if b.mode == Mode::StructuredText {
            if let Some(mut u) = self.unwrap.take() {
                let text = u.finish();
                if !text.is_empty() {
                    out.push(StreamEvent::TextDelta {
                        index: b.part,
                        text,
                    });
                }
            }
        }
        if b.mode != Mode::Skip {
            out.push(StreamEvent::PartStop { index: b.part });
        }
    }

    fn stop_block(&mut self, block: usize, out: &mut Vec<StreamEvent>) {
        if let Some(pos) = self.open.iter().position(|b| b.block == block) {
            let b = self.open.remove(pos);
            self.close_block(b, out);
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        for b in std::mem::take(&mut self.open) {
            self.close_block(b, out);
        }
    }
}

/// Streams the `value` of a wrapped structured-output tool input (`{"value": <answer>}`) as the
/// answer's own JSON text: the `{"value":` prefix is matched and skipped, and a trailing run of
/// `}`/whitespace is held back until more text shows it is part of the answer (at the end, the
/// wrapper's closing brace is dropped). Memory stays bounded by that tail, except when the input
/// does not start with the expected prefix: then it is buffered and unwrapped at the end.
#[derive(Debug, Default)]
struct Unwrapper {
    /// The prefix matched; the answer is streaming.
    in_body: bool,
    /// The input did not start as expected: buffered whole until `finish`.
    fallback: bool,
    /// Prefix bytes so far, the held-back tail, or (fallback) everything.
    buf: String,
}

/// How much of `{"value":` (with optional whitespace) `s` matches: `Some(Some(n))` = all of it,
/// the answer starts at byte `n`; `Some(None)` = a proper prefix of it; `None` = mismatch.
fn match_wrapper_prefix(s: &str) -> Option<Option<usize>> {
    const TOKENS: [&str; 3] = ["{", "\"value\"", ":"];
    let mut rest = s;
    for token in TOKENS {
        rest = rest.trim_start();
        if rest.len() < token.len() {
            return token.starts_with(rest).then_some(None);
        }
        rest = rest.strip_prefix(token)?;
    }
    let rest = rest.trim_start();
    if rest.is_empty() {
        return Some(None);
    }
    Some(Some(s.len() - rest.len()))
}

impl Unwrapper {
    fn push(&mut self, fragment: &str) -> String {
        self.buf.push_str(fragment);
        if self.fallback {
            return String::new();
        }
        if !self.in_body {
            match match_wrapper_prefix(&self.buf) {
                Some(Some(start)) => {
                    self.in_body = true;
                    self.buf.drain(..start);
                }
                Some(None) => return String::new(),
                None => {
                    self.fallback = true;
                    return String::new();
                }
            }
        }
        // Hold back a trailing run of '}' and whitespace: the last '}' closes the wrapper.
        let keep = self
            .buf
            .trim_end_matches(|c: char| c == '}' || c.is_whitespace())
            .len();
        let tail = self.buf.split_off(keep);
        std::mem::replace(&mut self.buf, tail)
    }

    fn finish(&mut self) -> String {
        let buf = std::mem::take(&mut self.buf);
        if self.in_body {
            // The held tail is the end of the answer plus the wrapper's closing brace.
            let trimmed = buf.trim_end();
            return match trimmed.strip_suffix('}') {
                Some(rest) => rest.trim_end().to_string(),
                None => buf,
            };
        }
        match serde_json::from_str::<Value>(&buf) {
            Ok(Value::Object(mut m)) => match m.remove("value") {
                Some(v) => v.to_string(),
                None => Value::Object(m).to_string(),
            },
            _ => buf,
        }
    }
}

/// Merges a later raw usage report: every field it carries replaces the earlier one
/// (`message_delta` counts are cumulative), except that a zero never erases a count already
/// known (some Anthropic-compatible servers send `"input_tokens": 0` in `message_delta`).
pub(crate) fn merge_raw(into: &mut AnthropicUsage, later: &AnthropicUsage) {
    fn merge(into: &mut Option<u64>, later: Option<u64>) {
        match (later, *into) {
            (None, _) => {}
            (Some(0), Some(earlier)) if earlier > 0 => {}
            (Some(v), _) => *into = Some(v),
        }
    }
    merge(&mut into.input_tokens, later.input_tokens);
    merge(
        &mut into.cache_creation_input_tokens,
        later.cache_creation_input_tokens,
    );
    merge(
        &mut into.cache_read_input_tokens,
        later.cache_read_input_tokens,
    );
    merge(&mut into.output_tokens, later.output_tokens);
}

// ---------------------------------------------------------------------------------------------
// encoder
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BlockKind {
    Text,
    Thinking,
    Redacted,
    Tool,
}

fn block_kind(kind: &PartKind) -> BlockKind {
    match kind {
        PartKind::Text => BlockKind::Text,
        PartKind::Thinking => BlockKind::Thinking,
        PartKind::RedactedThinking { .. } => BlockKind::Redacted,
        PartKind::ToolCall { .. } => BlockKind::Tool,
    }
}

/// The Anthropic content block being streamed.
#[derive(Debug, Clone, Copy)]
struct Active {
    part: usize,
    block: usize,
    kind: BlockKind,
}

/// A part that started while a tool_use block was streaming: Anthropic clients expect one
/// content block at a time, so its content waits here until the open block stops.
#[derive(Debug)]
struct Pending {
    part: usize,
    kind: PartKind,
    /// Text, thinking text or argument JSON received so far.
    buffered: String,
    signature: Option<String>,
    stopped: bool,
}

/// Canonical stream events -> Anthropic SSE bytes.
#[derive(Debug)]
pub struct StreamEncoder {
    client_model: String,
    started: bool,
    finished: bool,
    next_block: usize,
    current: Option<Active>,
    queue: VecDeque<Pending>,
    stop: Option<StopReason>,
    usage: Usage,
    tool_calls: bool,
}

fn emit(out: &mut Vec<u8>, event: &AnthropicStreamEvent) {
    if let Ok(data) = serde_json::to_string(event) {
        write_event(out, Some(event.name()), &data);
    }
}

impl StreamEncoder {
    pub fn new(ctx: &ResponseContext) -> StreamEncoder {
        StreamEncoder {
            client_model: ctx.client_model.clone(),
            started: false,
            finished: false,
            next_block: 0,
            current: None,
            queue: VecDeque::new(),
            stop: None,
            usage: Usage::default(),
            tool_calls: false,
        }
    }

    /// Appends the wire bytes for `event`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        match event {
            StreamEvent::Start {
                id, model, usage, ..
            } => {
                if let Some(u) = usage {
                    self.usage.merge(u);
                }
                if self.client_model.is_empty() {
                    self.client_model.clone_from(model);
                }
                if !self.started {
                    self.start(&with_prefix("msg_", id), out);
                }
            }
            StreamEvent::Error(e) => {
                emit(
                    out,
                    &AnthropicStreamEvent::Error {
                        error: AnthropicErrorBody {
                            kind: super::error_type(e.kind).to_string(),
                            message: e.message.clone(),
                        },
                    },
                );
                self.finished = true;
            }
            StreamEvent::PartStart { index, kind } => {
                self.ensure_started(out);
                self.part_start(*index, kind.clone(), out);
            }
            StreamEvent::TextDelta { index, text } => {
                self.ensure_started(out);
                self.content(*index, BlockKind::Text, text, out);
            }
            StreamEvent::ThinkingDelta { index, text } => {
                self.ensure_started(out);
                self.content(*index, BlockKind::Thinking, text, out);
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                self.ensure_started(out);
                self.content(*index, BlockKind::Tool, json, out);
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                self.ensure_started(out);
                self.signature(*index, signature, out);
            }
            StreamEvent::PartStop { index } => {
                self.ensure_started(out);
                if self.current.is_some_and(|a| a.part == *index) {
                    self.close_current(out);
                    self.flush_queue(false, out);
                } else if let Some(p) = self.queue.iter_mut().find(|p| p.part == *index) {
                    p.stopped = true;
                }
            }
            StreamEvent::Usage(u) => self.usage.merge(u),
            StreamEvent::Finish { stop } => self.stop = Some(stop.clone()),
            StreamEvent::Done => {
                self.ensure_started(out);
                self.close_current(out);
                self.flush_queue(true, out);
                let stop = self.stop.clone().unwrap_or(StopReason::EndTurn);
                let (reason, sequence) = encode_stop(&stop, self.tool_calls);
                let known_input = self.usage.input > 0
                    || self.usage.cached_input.is_some()
                    || self.usage.cache_creation_input.is_some();
                let usage = if known_input {
                    encode_usage(&self.usage)
                } else {
                    AnthropicUsage {
                        output_tokens: Some(self.usage.output),
                        ..AnthropicUsage::default()
                    }
                };
                emit(
                    out,
                    &AnthropicStreamEvent::MessageDelta {
                        delta: AnthropicMessageDeltaBody {
                            stop_reason: Some(reason.to_string()),
                            stop_sequence: sequence,
                        },
                        usage: Some(usage),
                    },
                );
                emit(out, &AnthropicStreamEvent::MessageStop);
                self.finished = true;
            }
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.start(&new_id("msg_"), out);
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<u8>) {
        self.started = true;
        let message = AnthropicResponse {
            id: id.to_string(),
            kind: "message".to_string(),
            role: "assistant".to_string(),
            model: self.client_model.clone(),
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: encode_usage(&self.usage),
        };
        emit(out, &AnthropicStreamEvent::MessageStart { message });
        emit(out, &AnthropicStreamEvent::Ping);
    }

    fn part_start(&mut self, part: usize, kind: PartKind, out: &mut Vec<u8>) {
        if self.current.is_some_and(|a| a.part == part) || self.queue.iter().any(|p| p.part == part)
        {
            return;
        }
        match self.current {
            Some(a) if a.kind == BlockKind::Tool => {
                self.queue.push_back(Pending {
                    part,
                    kind,
                    buffered: String::new(),
                    signature: None,
                    stopped: false,
                });
                return;
            }
            Some(_) => self.close_current(out),
            None => {}
        }
        self.open_block(part, &kind, out);
    }

    /// Emits `content_block_start` (plus the empty first `input_json_delta` of a tool block, as
    /// the real API sends) and makes the block current.
    fn open_block(&mut self, part: usize, kind: &PartKind, out: &mut Vec<u8>) {
        let block = self.next_block;
        self.next_block += 1;
        let content_block = match kind {
            PartKind::Text => AnthropicBlock::Text {
                text: String::new(),
            },
            PartKind::Thinking => AnthropicBlock::Thinking {
                thinking: String::new(),
                signature: String::new(),
            },
            PartKind::RedactedThinking { data } => {
                AnthropicBlock::RedactedThinking { data: data.clone() }
            }
            PartKind::ToolCall { id, name } => AnthropicBlock::ToolUse {
                id: if id.is_empty() {
                    new_id("toolu_")
                } else {
                    id.clone()
                },
                name: name.clone(),
                input: Value::Object(serde_json::Map::new()),
            },
        };
        emit(
            out,
            &AnthropicStreamEvent::ContentBlockStart {
                index: block,
                content_block,
            },
        );
        let kind = block_kind(kind);
        if kind == BlockKind::Tool {
            self.tool_calls = true;
            emit(
                out,
                &AnthropicStreamEvent::ContentBlockDelta {
                    index: block,
                    delta: AnthropicDelta::InputJsonDelta {
                        partial_json: String::new(),
                    },
                },
            );
        }
        self.current = Some(Active { part, block, kind });
    }

    fn close_current(&mut self, out: &mut Vec<u8>) {
        if let Some(a) = self.current.take() {
            emit(
                out,
                &AnthropicStreamEvent::ContentBlockStop { index: a.block },
            );
        }
    }

    /// Emits queued parts after the current block stopped: stopped ones entirely, then the first
    /// still-open one becomes current (or, with `all`, every one is emitted and stopped).
    fn flush_queue(&mut self, all: bool, out: &mut Vec<u8>) {
        while self.current.is_none() {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            self.open_block(p.part, &p.kind, out);
            if let Some(a) = self.current {
                if !p.buffered.is_empty() {
                    self.emit_delta(a, &p.buffered, out);
                }
                if let Some(sig) = &p.signature {
                    self.emit_signature(a, sig, out);
                }
            }
            if p.stopped || all {
                self.close_current(out);
            }
        }
    }

    fn emit_delta(&self, a: Active, text: &str, out: &mut Vec<u8>) {
        let delta = match a.kind {
            BlockKind::Text => AnthropicDelta::TextDelta {
                text: text.to_string(),
            },
            BlockKind::Thinking => AnthropicDelta::ThinkingDelta {
                thinking: text.to_string(),
            },
            BlockKind::Tool => AnthropicDelta::InputJsonDelta {
                partial_json: text.to_string(),
            },
            BlockKind::Redacted => return,
        };
        emit(
            out,
            &AnthropicStreamEvent::ContentBlockDelta {
                index: a.block,
                delta,
            },
        );
    }

    fn emit_signature(&self, a: Active, signature: &str, out: &mut Vec<u8>) {
        if a.kind == BlockKind::Thinking {
            emit(
                out,
                &AnthropicStreamEvent::ContentBlockDelta {
                    index: a.block,
                    delta: AnthropicDelta::SignatureDelta {
                        signature: signature.to_string(),
                    },
                },
            );
        }
    }

    /// Implicitly opens a part that receives content without a `PartStart`.
    fn implicit_kind(kind: BlockKind) -> PartKind {
        match kind {
            BlockKind::Text => PartKind::Text,
            BlockKind::Thinking | BlockKind::Redacted => PartKind::Thinking,
            BlockKind::Tool => PartKind::ToolCall {
                id: new_id("toolu_"),
                name: String::new(),
            },
        }
    }

    fn content(&mut self, part: usize, kind: BlockKind, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() {
            return;
        }
        if let Some(a) = self.current.filter(|a| a.part == part) {
            if a.kind == kind {
                self.emit_delta(a, text, out);
            }
            return;
        }
        if let Some(p) = self.queue.iter_mut().find(|p| p.part == part) {
            if block_kind(&p.kind) == kind {
                p.buffered.push_str(text);
            }
            return;
        }
        self.part_start(part, Self::implicit_kind(kind), out);
        self.content(part, kind, text, out);
    }

    fn signature(&mut self, part: usize, signature: &str, out: &mut Vec<u8>) {
        if let Some(a) = self.current.filter(|a| a.part == part) {
            self.emit_signature(a, signature, out);
            return;
        }
        if let Some(p) = self.queue.iter_mut().find(|p| p.part == part) {
            p.signature = Some(signature.to_string());
            return;
        }
        self.part_start(part, PartKind::Thinking, out);
        self.signature(part, signature, out);
    }
}
