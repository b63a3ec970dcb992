//! `streamGenerateContent` both ways.
//!
//! Upstream we always ask for `?alt=sse`: every `data:` line is a whole
//! `GenerateContentResponse` chunk (text arrives in pieces, each function call whole, usage
//! cumulative on every chunk, `finishReason` on the last) and there is no end marker, so a
//! stream is complete only if a `finishReason` came. Towards a Gemini client we write the same
//! chunks as SSE (`data: ...\r\n\r\n`, as Google does), or, for a client that called
//! `:streamGenerateContent` without `alt=sse`, as one JSON array written element by element.

use super::request::{args_object, real_signature};
use super::response::{finish_from_stop, first_candidate, stop_from_finish, usage_from, usage_to};
use super::wire::{GeminiCandidate, GeminiContent, GeminiFunctionCall, GeminiPart, GeminiResponse};
use crate::canonical::{CanonicalError, PartKind, ResponseContext, StopReason, StreamEvent, Usage};
use crate::protocol::util;
use crate::sse::SseEvent;
use std::collections::BTreeMap;

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
}

/// Gemini SSE chunks -> canonical events.
#[derive(Debug)]
pub struct StreamDecoder {
    client_model: String,
    started: bool,
    next_index: usize,
    /// The text or thinking part being received, with its index.
    open: Option<(usize, Open)>,
    has_tool_calls: bool,
    finished: bool,
    /// An error event was emitted: the stream is over.
    failed: bool,
    last_usage: Option<Usage>,
}

impl StreamDecoder {
    pub fn new(ctx: &ResponseContext) -> StreamDecoder {
        StreamDecoder {
            client_model: ctx.client_model.clone(),
            started: false,
            next_index: 0,
            open: None,
            has_tool_calls: false,
            finished: false,
            failed: false,
            last_usage: None,
        }
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::PartStop { index });
        }
    }

    /// The index of an open part of `kind`, opening one (and closing any other) if needed.
    fn ensure_open(&mut self, kind: Open, out: &mut Vec<StreamEvent>) -> usize {
        if let Some((index, open)) = self.open {
            if open == kind {
                return index;
            }
        }
        self.close(out);
        let index = self.next_part();
        out.push(StreamEvent::PartStart {
            index,
            kind: match kind {
                Open::Text => PartKind::Text,
                Open::Thinking => PartKind::Thinking,
            },
        });
        self.open = Some((index, kind));
        index
    }

    fn next_part(&mut self) -> usize {
        let index = self.next_index;
        self.next_index += 1;
        index
    }

    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        let data = event.data.trim();
        if self.failed || data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let chunk: GeminiResponse = serde_json::from_str(data).map_err(|e| {
            util::bad_upstream(format!(
                "a Gemini stream chunk is not a valid GenerateContentResponse: {e}"
            ))
        })?;
        if let Some(error) = &chunk.error {
            self.close(out);
            out.push(StreamEvent::Error(super::error_from_object(error, None)));
            self.failed = true;
            return Ok(());
        }
        let usage = chunk.usage_metadata.as_ref().map(usage_from);
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: chunk
                    .response_id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| util::new_id("")),
                model: chunk
                    .model_version
                    .clone()
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| self.client_model.clone()),
                created: util::now_unix(),
                usage,
            });
            self.last_usage = usage;
        }

        let candidate = chunk.candidates.as_deref().and_then(first_candidate);
        if let Some(content) = candidate.and_then(|c| c.content.as_ref()) {
            for part in content.parts.iter().flatten() {
                self.decode_part(part, out);
            }
        }
        let finish = match candidate {
            Some(c) => c
                .finish_reason
                .as_deref()
                .map(|r| stop_from_finish(Some(r), self.has_tool_calls)),
            None => chunk
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.block_reason.as_ref())
                .map(|_| StopReason::ContentFilter),
        };
        if let Some(stop) = finish {
            self.close(out);
            if !self.finished {
                self.finished = true;
                out.push(StreamEvent::Finish { stop });
            }
        }
        if let Some(usage) = usage {
            if self.last_usage != Some(usage) {
                self.last_usage = Some(usage);
                out.push(StreamEvent::Usage(usage));
            }
        }
        Ok(())
    }

    fn decode_part(&mut self, part: &GeminiPart, out: &mut Vec<StreamEvent>) {
        let signature = real_signature(part.thought_signature.as_ref());
        if part.thought == Some(true) {
            let text = part.text.as_deref().unwrap_or_default();
            if text.is_empty() && signature.is_none() {
                return;
            }
            let index = self.ensure_open(Open::Thinking, out);
            if !text.is_empty() {
                out.push(StreamEvent::ThinkingDelta {
                    index,
                    text: text.to_string(),
                });
            }
            if let Some(signature) = signature {
                // A signature completes the thinking part.
                out.push(StreamEvent::ThinkingSignature { index, signature });
                self.close(out);
            }
            return;
        }
        if let Some(signature) = signature {
            // A signature on a non-thought part: a signature-only thinking part before it.
            self.close(out);
            let index = self.next_part();
            out.push(StreamEvent::PartStart {
                index,
                kind: PartKind::Thinking,
            });
            out.push(StreamEvent::ThinkingSignature { index, signature });
            out.push(StreamEvent::PartStop { index });
        }
        if let Some(text) = part.text.as_deref().filter(|t| !t.is_empty()) {
            let index = self.ensure_open(Open::Text, out);
            out.push(StreamEvent::TextDelta {
                index,
                text: text.to_string(),
            });
        }
        if let Some(call) = &part.function_call {
            self.close(out);
            let index = self.next_part();
            self.has_tool_calls = true;
            out.push(StreamEvent::PartStart {
                index,
                kind: PartKind::ToolCall {
                    id: call
                        .id
                        .clone()
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| util::new_id("call_")),
                    name: call.name.clone().unwrap_or_default(),
                },
            });
            out.push(StreamEvent::ToolArgsDelta {
                index,
                json: call
                    .args
                    .as_ref()
                    .filter(|a| !a.is_null())
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "{}".into()),
            });
            out.push(StreamEvent::PartStop { index });
        }
    }

    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.failed {
            return;
        }
        self.close(out);
        self.failed = true;
        if self.finished {
            out.push(StreamEvent::Done);
        } else {
            out.push(StreamEvent::Error(util::stream_truncated(
                "Gemini",
                "a finishReason",
            )));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------

/// A tool call being received; Gemini clients get each call whole, at its `PartStop`.
#[derive(Debug)]
struct PendingCall {
    id: String,
    name: String,
    args: String,
}

/// Canonical events -> Gemini stream bytes for a Gemini client.
#[derive(Debug)]
pub struct StreamEncoder {
    client_model: String,
    /// Write a JSON array (`:streamGenerateContent` without `alt=sse`) instead of SSE.
    array: bool,
    /// Array mode: an element has been written (the next one needs a separator).
    wrote_element: bool,
    response_id: Option<String>,
    /// Thinking parts open, and whether they have received text.
    thinking: BTreeMap<usize, bool>,
    calls: BTreeMap<usize, PendingCall>,
    /// A signature waiting for the next non-thought part.
    pending_signature: Option<String>,
    stop: Option<StopReason>,
    usage: Usage,
    done: bool,
}

impl StreamEncoder {
    pub fn new(ctx: &ResponseContext) -> StreamEncoder {
        StreamEncoder {
            client_model: ctx.client_model.clone(),
            array: ctx.json_array_stream,
            wrote_element: false,
            response_id: None,
            thinking: BTreeMap::new(),
            calls: BTreeMap::new(),
            pending_signature: None,
            stop: None,
            usage: Usage::default(),
            done: false,
        }
    }

    fn response_id(&mut self) -> String {
        self.response_id
            .get_or_insert_with(|| util::new_id(""))
            .clone()
    }

    fn write(&mut self, out: &mut Vec<u8>, json: &[u8]) {
        if self.array {
            out.extend_from_slice(if self.wrote_element { b",\r\n" } else { b"[" });
            self.wrote_element = true;
            out.extend_from_slice(json);
        } else {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(json);
            out.extend_from_slice(b"\r\n\r\n");
        }
    }

    fn end(&mut self, out: &mut Vec<u8>) {
        if self.array {
            if !self.wrote_element {
                out.push(b'[');
            }
            out.push(b']');
        }
        self.done = true;
        self.thinking.clear();
        self.calls.clear();
    }

    /// One chunk. Like Google's, every chunk carries the usage known so far (cumulative); the
    /// closing one always does.
    fn chunk(
        &mut self,
        out: &mut Vec<u8>,
        parts: Vec<GeminiPart>,
        finish: Option<String>,
        last: bool,
    ) {
        let usage = last || self.usage != Usage::default();
        let body = GeminiResponse {
            candidates: Some(vec![GeminiCandidate {
                content: Some(GeminiContent {
                    role: Some("model".into()),
                    parts: Some(parts),
                }),
                finish_reason: finish,
                index: Some(0),
            }]),
            prompt_feedback: None,
            usage_metadata: usage.then(|| usage_to(&self.usage)),
            model_version: Some(self.client_model.clone()),
            response_id: Some(self.response_id()),
            error: None,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        self.write(out, &json);
    }

    /// Emits a non-thought part, carrying a pending signature.
    fn emit_part(&mut self, out: &mut Vec<u8>, mut part: GeminiPart) {
        if part.thought_signature.is_none() {
            part.thought_signature = self.pending_signature.take();
        }
        self.chunk(out, vec![part], None, false);
    }

    fn emit_call(&mut self, out: &mut Vec<u8>, call: PendingCall) {
        let (args, _) = args_object(&call.args);
        self.emit_part(
            out,
            GeminiPart {
                function_call: Some(GeminiFunctionCall {
                    id: Some(call.id).filter(|id| !id.is_empty()),
                    name: Some(call.name),
                    args: Some(args),
                }),
                ..GeminiPart::default()
            },
        );
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        match event {
            StreamEvent::Start { id, usage, .. } => {
                if self.response_id.is_none() && !id.is_empty() {
                    self.response_id = Some(id.clone());
                }
                if let Some(usage) = usage {
                    self.usage.merge(usage);
                }
            }
            StreamEvent::PartStart { index, kind } => match kind {
                PartKind::Thinking => {
                    self.thinking.insert(*index, false);
                }
                PartKind::ToolCall { id, name } => {
                    self.calls.insert(
                        *index,
                        PendingCall {
                            id: id.clone(),
                            name: name.clone(),
                            args: String::new(),
                        },
                    );
                }
                PartKind::Text | PartKind::RedactedThinking { .. } => {}
            },
            StreamEvent::TextDelta { text, .. } => {
                if !text.is_empty() {
                    self.emit_part(out, GeminiPart::text(text.clone()));
                }
            }
            StreamEvent::ThinkingDelta { index, text } => {
                if !text.is_empty() {
                    self.thinking.insert(*index, true);
                    let part = GeminiPart {
                        text: Some(text.clone()),
                        thought: Some(true),
                        ..GeminiPart::default()
                    };
                    self.chunk(out, vec![part], None, false);
                }
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                if self.thinking.get(index).copied().unwrap_or(false) {
                    let part = GeminiPart {
                        text: Some(String::new()),
                        thought: Some(true),
                        thought_signature: Some(signature.clone()),
                        ..GeminiPart::default()
                    };
                    self.chunk(out, vec![part], None, false);
                } else {
                    self.pending_signature = Some(signature.clone());
                }
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                if let Some(call) = self.calls.get_mut(index) {
                    call.args.push_str(json);
                }
            }
            StreamEvent::PartStop { index } => {
                self.thinking.remove(index);
                if let Some(call) = self.calls.remove(index) {
                    self.emit_call(out, call);
                }
            }
            StreamEvent::Usage(usage) => self.usage.merge(usage),
            StreamEvent::Finish { stop } => self.stop = Some(stop.clone()),
            StreamEvent::Error(error) => {
                let json = super::encode_error(error);
                self.write(out, &json);
                self.end(out);
            }
            StreamEvent::Done => {
                for (_, call) in std::mem::take(&mut self.calls) {
                    self.emit_call(out, call);
                }
                // The closing chunk: finish reason and usage (which may arrive after Finish,
                // hence at Done). An empty text part keeps `chunk.text` a string for SDKs.
                let last = GeminiPart {
                    text: Some(String::new()),
                    thought_signature: self.pending_signature.take(),
                    ..GeminiPart::default()
                };
                let stop = self.stop.take().unwrap_or(StopReason::EndTurn);
                self.chunk(out, vec![last], Some(finish_from_stop(&stop)), true);
                self.end(out);
            }
        }
    }
}
