//! Chat Completions SSE streams (`data: {chat.completion.chunk}` ... `data: [DONE]`) <->
//! canonical [`StreamEvent`]s.

use super::response::{
    decode_finish, decode_usage, encode_finish, encode_usage, flat_error, in_band_error,
};
use super::wire::*;
use crate::canonical::{CanonicalError, PartKind, ResponseContext, StopReason, StreamEvent, Usage};
use crate::protocol::{openai_error, util};
use crate::sse::{write_event, SseEvent};
use serde_json::Value;

// =============================================================================================
// Decoder
// =============================================================================================

/// Which wire tool call a slot follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotKey {
    Index(u64),
    /// A delta without `index` (Gemini's compatibility endpoint, some local servers).
    Unindexed,
    /// Legacy `delta.function_call`.
    Legacy,
}

/// A tool call being streamed. Opened (PartStart) once its name is known; arguments arriving
/// before that are held in `pending`.
#[derive(Debug)]
struct ToolSlot {
    key: SlotKey,
    id: String,
    name: String,
    part: Option<usize>,
    pending: String,
}

/// Chat Completions stream -> canonical events.
pub struct StreamDecoder {
    client_model: String,
    started: bool,
    next_part: usize,
    text: Option<usize>,
    thinking: Option<usize>,
    /// Tool calls of the current response (kept open until the finish: OpenAI streams parallel
    /// calls by index and may interleave them).
    tools: Vec<ToolSlot>,
    saw_tool: bool,
    /// A `finish_reason` arrived.
    finished: bool,
    /// `[DONE]` or an error arrived: nothing more is decoded.
    ended: bool,
}

impl StreamDecoder {
    pub fn new(ctx: &ResponseContext) -> StreamDecoder {
        StreamDecoder {
            client_model: ctx.client_model.clone(),
            started: false,
            next_part: 0,
            text: None,
            thinking: None,
            tools: Vec::new(),
            saw_tool: false,
            finished: false,
            ended: false,
        }
    }

    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        if self.ended {
            return Ok(());
        }
        // Chat Completions chunks are unnamed; named events other than `error` are not ours.
        match event.event.as_deref() {
            None | Some("message" | "error") => {}
            Some(_) => return Ok(()),
        }
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(());
        }
        if data == "[DONE]" {
            self.done(out);
            return Ok(());
        }
        let named_error = event.event.as_deref() == Some("error");
        let chunk: OpenAIChatChunk = match serde_json::from_str(data) {
            Ok(c) => c,
            // `event: error` with a plain-text payload.
            Err(_) if named_error => {
                out.push(StreamEvent::Error(openai_error::decode_error(
                    502,
                    data.as_bytes(),
                )));
                self.ended = true;
                return Ok(());
            }
            Err(e) => {
                return Err(util::bad_upstream(format!(
                    "the upstream sent an invalid Chat Completions stream chunk: {e}"
                )))
            }
        };
        if let Some(err) = chunk.error.as_ref().filter(|e| !e.is_null()) {
            out.push(StreamEvent::Error(in_band_error(err, data.as_bytes())));
            self.ended = true;
            return Ok(());
        }
        if named_error || chunk.object.as_deref() == Some("error") {
            let v: Value = serde_json::from_str(data).unwrap_or(Value::Null);
            out.push(StreamEvent::Error(flat_error(&v, data.as_bytes())));
            self.ended = true;
            return Ok(());
        }
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk
                    .id
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| util::new_id("chatcmpl-")),
                model: chunk
                    .model
                    .clone()
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| self.client_model.clone()),
                created: chunk
                    .created
                    .filter(|c| *c > 0)
                    .unwrap_or_else(util::now_unix),
                usage: None,
            });
        }
        let mut finish = None;
        for choice in chunk.choices.unwrap_or_default() {
            if choice.index.unwrap_or(0) != 0 || self.finished {
                continue;
            }
            if let Some(delta) = choice.delta {
                self.delta(delta, out);
            }
            if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
                finish = Some(reason);
            }
        }
        if finish.is_some() {
            self.close_all(out);
        }
        let usage = chunk.usage.or(chunk.x_groq.and_then(|g| g.usage));
        if let Some(u) = usage {
            out.push(StreamEvent::Usage(decode_usage(&u)));
        }
        if let Some(reason) = finish {
            self.finished = true;
            out.push(StreamEvent::Finish {
                stop: decode_finish(Some(&reason), self.saw_tool),
            });
        }
        Ok(())
    }

    /// EOF. After a `finish_reason` a missing `[DONE]` is forgiven (some local servers omit it).
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.ended {
            return;
        }
        self.ended = true;
        self.close_all(out);
        if self.finished {
            out.push(StreamEvent::Done);
        } else {
            out.push(StreamEvent::Error(util::stream_truncated(
                "Chat Completions",
                "a finish_reason",
            )));
        }
    }

    fn done(&mut self, out: &mut Vec<StreamEvent>) {
        self.ended = true;
        self.close_all(out);
        if self.started && !self.finished {
            self.finished = true;
            out.push(StreamEvent::Finish {
                stop: decode_finish(None, self.saw_tool),
            });
        }
        out.push(StreamEvent::Done);
    }

    fn delta(&mut self, delta: OpenAIChatDelta, out: &mut Vec<StreamEvent>) {
        let reasoning = delta
            .reasoning_content
            .filter(|r| !r.is_empty())
            .or(delta.reasoning.filter(|r| !r.is_empty()));
        if let Some(r) = reasoning {
            self.thinking_delta(r, out);
        }
        if let Some(content) = &delta.content {
            for (thinking, text) in content_value_texts(content) {
                if text.is_empty() {
                    continue;
                }
                if thinking {
                    self.thinking_delta(text, out);
                } else {
                    self.text_delta(text, out);
                }
            }
        }
        if let Some(r) = delta.refusal.filter(|r| !r.is_empty()) {
            self.text_delta(r, out);
        }
        for call in delta.tool_calls.unwrap_or_default() {
            let key = call.index.map_or(SlotKey::Unindexed, SlotKey::Index);
            self.tool_delta(key, call.id, call.function.unwrap_or_default(), out);
        }
        if let Some(f) = delta.function_call {
            self.tool_delta(SlotKey::Legacy, None, f, out);
        }
    }

    fn new_part(&mut self) -> usize {
        let i = self.next_part;
        self.next_part += 1;
        i
    }

    fn close_text_and_thinking(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.text.take() {
            out.push(StreamEvent::PartStop { index });
        }
        if let Some(index) = self.thinking.take() {
            out.push(StreamEvent::PartStop { index });
        }
    }

    fn text_delta(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.thinking.take() {
            out.push(StreamEvent::PartStop { index });
        }
        let index = match self.text {
            Some(i) => i,
            None => {
                let i = self.new_part();
                self.text = Some(i);
                out.push(StreamEvent::PartStart {
                    index: i,
                    kind: PartKind::Text,
                });
                i
            }
        };
        out.push(StreamEvent::TextDelta { index, text });
    }

    fn thinking_delta(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.text.take() {
            out.push(StreamEvent::PartStop { index });
        }
        let index = match self.thinking {
            Some(i) => i,
            None => {
                let i = self.new_part();
                self.thinking = Some(i);
                out.push(StreamEvent::PartStart {
                    index: i,
                    kind: PartKind::Thinking,
                });
                i
            }
        };
        out.push(StreamEvent::ThinkingDelta { index, text });
    }

    fn tool_delta(
        &mut self,
        key: SlotKey,
        id: Option<String>,
        f: OpenAIChatFunctionCall,
        out: &mut Vec<StreamEvent>,
    ) {
        let id = id.filter(|s| !s.is_empty());
        let found = match key {
            // A different id at a known index is a new call (Ollama numbers every call 0).
            SlotKey::Index(_) | SlotKey::Legacy => self.tools.iter().rposition(|s| {
                s.key == key && id.as_ref().is_none_or(|id| s.id == *id || s.id.is_empty())
            }),
            SlotKey::Unindexed => match &id {
                Some(id) => self.tools.iter().rposition(|s| s.id == *id),
                None => self.tools.len().checked_sub(1),
            },
        };
        let slot = match found {
            Some(s) => s,
            None => {
                self.close_text_and_thinking(out);
                self.saw_tool = true;
                self.tools.push(ToolSlot {
                    key,
                    id: id.unwrap_or_else(|| util::new_id("call_")),
                    name: String::new(),
                    part: None,
                    pending: String::new(),
                });
                self.tools.len() - 1
            }
        };
        let name = f.name.filter(|n| !n.is_empty());
        let args = match f.arguments {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
        };
        let Some(s) = self.tools.get_mut(slot) else {
            return;
        };
        if s.part.is_none() {
            if let Some(name) = name {
                s.name = name;
                let index = self.next_part;
                self.next_part += 1;
                s.part = Some(index);
                out.push(StreamEvent::PartStart {
                    index,
                    kind: PartKind::ToolCall {
                        id: s.id.clone(),
                        name: s.name.clone(),
                    },
                });
                if !s.pending.is_empty() {
                    out.push(StreamEvent::ToolArgsDelta {
                        index,
                        json: std::mem::take(&mut s.pending),
                    });
                }
            }
        }
        if !args.is_empty() {
            match s.part {
                Some(index) => out.push(StreamEvent::ToolArgsDelta { index, json: args }),
                None => s.pending.push_str(&args),
            }
        }
    }

    /// Closes every open part in index order (a tool call whose name never came is opened with
    /// an empty name first so its arguments are not lost).
    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = Vec::new();
        open.extend(self.text.take());
        open.extend(self.thinking.take());
        for mut s in std::mem::take(&mut self.tools) {
            let index = match s.part {
                Some(i) => i,
                None => {
                    let i = self.new_part();
                    out.push(StreamEvent::PartStart {
                        index: i,
                        kind: PartKind::ToolCall {
                            id: s.id,
                            name: std::mem::take(&mut s.name),
                        },
                    });
                    if !s.pending.is_empty() {
                        out.push(StreamEvent::ToolArgsDelta {
                            index: i,
                            json: s.pending,
                        });
                    }
                    i
                }
            };
            open.push(index);
        }
        open.sort_unstable();
        for index in open {
            out.push(StreamEvent::PartStop { index });
        }
    }
}

// =============================================================================================
// Encoder
// =============================================================================================

/// Canonical events -> Chat Completions stream.
pub struct StreamEncoder {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    started: bool,
    finished: bool,
    ended: bool,
    /// Canonical part index -> tool call ordinal (`tool_calls[].index`).
    tool_ordinals: Vec<(usize, u64)>,
    usage: Option<Usage>,
}

impl StreamEncoder {
    pub fn new(ctx: &ResponseContext) -> StreamEncoder {
        StreamEncoder {
            id: util::new_id("chatcmpl-"),
            created: util::now_unix(),
            model: ctx.client_model.clone(),
            include_usage: ctx.include_usage,
            started: false,
            finished: false,
            ended: false,
            tool_ordinals: Vec::new(),
            usage: None,
        }
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start {
                id, created, usage, ..
            } => {
                if !self.started {
                    if !id.is_empty() {
                        self.id = util::with_prefix("chatcmpl-", id);
                    }
                    if *created > 0 {
                        self.created = *created;
                    }
                }
                if let Some(u) = usage {
                    self.merge_usage(u);
                }
                self.ensure_started(out);
            }
            StreamEvent::PartStart { index, kind } => {
                self.ensure_started(out);
                if let PartKind::ToolCall { id, name } = kind {
                    self.open_tool(*index, id.clone(), name.clone(), out);
                }
            }
            StreamEvent::TextDelta { text, .. } => {
                self.ensure_started(out);
                if !text.is_empty() {
                    self.chunk(
                        OpenAIChatDelta {
                            content: Some(Value::String(text.clone())),
                            ..OpenAIChatDelta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            StreamEvent::ThinkingDelta { text, .. } => {
                self.ensure_started(out);
                if !text.is_empty() {
                    self.chunk(
                        OpenAIChatDelta {
                            reasoning_content: Some(text.clone()),
                            ..OpenAIChatDelta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                self.ensure_started(out);
                let ordinal = match self.ordinal(*index) {
                    Some(o) => o,
                    // Arguments for a call never started: open it so the client sees one.
                    None => self.open_tool(*index, util::new_id("call_"), String::new(), out),
                };
                if !json.is_empty() {
                    let call = OpenAIChatToolCall {
                        index: Some(ordinal),
                        function: Some(OpenAIChatFunctionCall {
                            name: None,
                            arguments: Some(Value::String(json.clone())),
                        }),
                        ..OpenAIChatToolCall::default()
                    };
                    self.chunk(
                        OpenAIChatDelta {
                            tool_calls: Some(vec![call]),
                            ..OpenAIChatDelta::default()
                        },
                        None,
                        out,
                    );
                }
            }
            StreamEvent::PartStop { .. } | StreamEvent::ThinkingSignature { .. } => {}
            StreamEvent::Usage(u) => self.merge_usage(u),
            StreamEvent::Finish { stop } => {
                self.ensure_started(out);
                self.finish(stop, out);
            }
            StreamEvent::Error(e) => {
                write_event(
                    out,
                    None,
                    &String::from_utf8_lossy(&openai_error::encode_error(e)),
                );
                self.ended = true;
            }
            StreamEvent::Done => {
                self.ensure_started(out);
                self.finish(&StopReason::EndTurn, out);
                if self.include_usage {
                    let chunk = OpenAIChatChunk {
                        id: Some(self.id.clone()),
                        object: Some("chat.completion.chunk".to_string()),
                        created: Some(self.created),
                        model: Some(self.model.clone()),
                        choices: Some(Vec::new()),
                        usage: Some(encode_usage(&self.usage.unwrap_or_default())),
                        ..OpenAIChatChunk::default()
                    };
                    write_event(
                        out,
                        None,
                        &serde_json::to_string(&chunk).unwrap_or_default(),
                    );
                }
                write_event(out, None, "[DONE]");
                self.ended = true;
            }
        }
    }

    fn merge_usage(&mut self, u: &Usage) {
        match &mut self.usage {
            Some(have) => have.merge(u),
            None => self.usage = Some(*u),
        }
    }

    fn ordinal(&self, part: usize) -> Option<u64> {
        self.tool_ordinals
            .iter()
            .find(|(p, _)| *p == part)
            .map(|(_, o)| *o)
    }

    fn open_tool(&mut self, part: usize, id: String, name: String, out: &mut Vec<u8>) -> u64 {
        if let Some(o) = self.ordinal(part) {
            return o;
        }
        let ordinal = self.tool_ordinals.len() as u64;
        self.tool_ordinals.push((part, ordinal));
        let call = OpenAIChatToolCall {
            index: Some(ordinal),
            id: Some(id),
            kind: Some("function".to_string()),
            function: Some(OpenAIChatFunctionCall {
                name: Some(name),
                arguments: Some(Value::String(String::new())),
            }),
        };
        self.chunk(
            OpenAIChatDelta {
                tool_calls: Some(vec![call]),
                ..OpenAIChatDelta::default()
            },
            None,
            out,
        );
        ordinal
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.chunk(
                OpenAIChatDelta {
                    role: Some("assistant".to_string()),
                    content: Some(Value::String(String::new())),
                    ..OpenAIChatDelta::default()
                },
                None,
                out,
            );
        }
    }

    fn finish(&mut self, stop: &StopReason, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        let reason = encode_finish(stop, !self.tool_ordinals.is_empty());
        self.chunk(OpenAIChatDelta::default(), Some(reason), out);
    }

    fn chunk(&self, delta: OpenAIChatDelta, finish: Option<&str>, out: &mut Vec<u8>) {
        let chunk = OpenAIChatChunk {
            id: Some(self.id.clone()),
            object: Some("chat.completion.chunk".to_string()),
            created: Some(self.created),
            model: Some(self.model.clone()),
            choices: Some(vec![OpenAIChatChunkChoice {
                index: Some(0),
                delta: Some(delta),
                logprobs: None,
                finish_reason: finish.map(str::to_string),
            }]),
            ..OpenAIChatChunk::default()
        };
        write_event(
            out,
            None,
            &serde_json::to_string(&chunk).unwrap_or_default(),
        );
    }
}
