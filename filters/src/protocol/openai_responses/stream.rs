//! Responses streams: typed SSE events (`event: <type>` + `data: {"type", ...,
//! "sequence_number"}`), decoded from an upstream and encoded for a client.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::response::{
    arguments_text, call_id_of, call_name, failed_error, function_call_item, message_item,
    reasoning_item, reasoning_text, response_object, status_of, stop_reason, usage_from_wire,
    usage_to_wire, OutputFlags,
};
use super::wire::{
    decode_at, ResponsesError, ResponsesOutputContent, ResponsesOutputItem, ResponsesResponse,
    ResponsesStreamEvent,
};
use super::{join_encrypted, split_encrypted};
use crate::canonical::{
    CanonicalError, ErrorKind, PartKind, ResponseContext, StopReason, StreamEvent, ToolNamespaces,
    Usage,
};
use crate::protocol::util::{bad_upstream, new_id, now_unix, with_prefix};
use crate::sse::{write_event, SseEvent};

// =============================================================================================
// Decode

/// The sub-key of an item-level part (a function call or a reasoning item) in
/// [`StreamDecoder::parts`]; message content parts use their `content_index`.
const ITEM: u64 = u64::MAX;

/// Event types the decoder acts on (everything else is ignored, for forward compatibility).
const HANDLED: &[&str] = &[
    "response.created",
    "response.in_progress",
    "response.queued",
    "response.output_item.added",
    "response.output_item.done",
    "response.content_part.added",
    "response.content_part.done",
    "response.output_text.delta",
    "response.output_text.done",
    "response.refusal.delta",
    "response.refusal.done",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.reasoning_summary_part.added",
    "response.reasoning_summary_text.delta",
    "response.reasoning_summary_text.done",
    "response.reasoning_text.delta",
    "response.reasoning_text.done",
    "response.completed",
    "response.incomplete",
    "response.failed",
    "error",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecodedKind {
    Text,
    Thinking,
    Tool,
    /// The structured-output tool of the request, streamed back as text.
    ToolAsText,
}

#[derive(Debug)]
struct DecodedPart {
    index: usize,
    kind: DecodedKind,
    open: bool,
    /// Some text/arguments were emitted for this part.
    emitted: bool,
    /// Thinking: the summary (or raw-text) index of the text emitted last.
    summary: Option<u64>,
    /// Thinking: text was emitted for the current summary.
    summary_emitted: bool,
}

/// Turns a Responses upstream's SSE events into canonical stream events.
#[derive(Debug)]
pub struct StreamDecoder {
    structured_tool: Option<String>,
    /// The request's namespaced tools: a namespaced call is flattened as the request was.
    namespaces: ToolNamespaces,
    started: bool,
    finished: bool,
    next_index: usize,
    /// (output_index, content_index or [`ITEM`]) -> part.
    parts: BTreeMap<(u64, u64), DecodedPart>,
    /// Output indices whose `response.output_item.done` was handled.
    done_items: BTreeSet<u64>,
    flags: OutputFlags,
}

impl StreamDecoder {
    pub fn new(ctx: &ResponseContext) -> StreamDecoder {
        StreamDecoder {
            structured_tool: ctx.structured_output_tool.clone(),
            namespaces: ctx.tool_namespaces.clone(),
            started: false,
            finished: false,
            next_index: 0,
            parts: BTreeMap::new(),
            done_items: BTreeSet::new(),
            flags: OutputFlags::default(),
        }
    }

    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        if self.finished {
            return Ok(());
        }
        let data = event.data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(());
        }
        let mut value: Value = serde_json::from_str(data).map_err(|e| {
            bad_upstream(format!(
                "the Responses upstream sent a stream event that is not valid JSON: {e}"
            ))
        })?;
        let Value::Object(obj) = &mut value else {
            return Err(bad_upstream(
                "the Responses upstream sent a stream event that is not a JSON object",
            ));
        };
        let kind = match (obj.get("type"), &event.event) {
            (Some(Value::String(t)), _) => t.clone(),
            (_, Some(name)) => {
                obj.insert("type".to_string(), Value::String(name.clone()));
                name.clone()
            }
            _ => return Ok(()),
        };
        if !HANDLED.contains(&kind.as_str()) {
            return Ok(());
        }
        let ev: ResponsesStreamEvent = decode_at(&value, &kind, bad_upstream)?;
        self.event(ev, out);
        Ok(())
    }

    /// The upstream stream ended: closes open parts; without `response.completed` (or an error)
    /// that is an upstream failure.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.close_all(out);
        out.push(StreamEvent::Error(crate::protocol::util::stream_truncated(
            "Responses",
            "`response.completed`",
        )));
    }

    fn event(&mut self, ev: ResponsesStreamEvent, out: &mut Vec<StreamEvent>) {
        let o = ev.output_index.unwrap_or(0);
        let c = ev.content_index.unwrap_or(0);
        match ev.kind.as_str() {
            "response.created" | "response.in_progress" | "response.queued" => {
                self.start(ev.response.as_ref(), out)
            }
            "response.output_item.added" => {
                self.start(None, out);
                if let Some(item) = &ev.item {
                    self.item_added(o, item, out);
                }
            }
            "response.content_part.added" => {
                self.start(None, out);
                if let Some(part) = &ev.part {
                    if part.kind == "refusal" {
                        self.flags.refusal = true;
                    }
                    if part.kind == "output_text" || part.kind == "refusal" {
                        self.ensure_text(o, c, out);
                        self.text(o, c, part.text(), out);
                    }
                }
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                if ev.kind == "response.refusal.delta" {
                    self.flags.refusal = true;
                }
                self.start(None, out);
                self.ensure_text(o, c, out);
                self.text(o, c, ev.delta.as_deref().unwrap_or_default(), out);
            }
            "response.output_text.done" | "response.refusal.done" => {
                let text = ev.text.as_deref().or(ev.refusal.as_deref());
                self.text_done(o, c, text.unwrap_or_default(), out);
            }
            "response.content_part.done" => {
                let text = ev.part.as_ref().map(|p| p.text()).unwrap_or_default();
                self.text_done(o, c, text, out);
            }
            "response.function_call_arguments.delta" => {
                self.start(None, out);
                if !self.parts.contains_key(&(o, ITEM)) {
                    // Arguments before the item was announced: open it with what we know.
                    let id = ev
                        .item_id
                        .clone()
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| new_id("call_"));
                    self.open_call(o, id, String::new(), out);
                }
                self.arguments(o, ev.delta.as_deref().unwrap_or_default(), out);
            }
            "response.function_call_arguments.done" => {
                if let Some(part) = self.parts.get(&(o, ITEM)) {
                    if part.open && !part.emitted {
                        self.arguments(o, ev.arguments.as_deref().unwrap_or_default(), out);
                    }
                    self.stop(o, ITEM, out);
                }
            }
            "response.reasoning_summary_part.added" => {
                self.start(None, out);
                self.ensure_thinking(o, out);
            }
            "response.reasoning_summary_text.delta" => {
                self.start(None, out);
                self.ensure_thinking(o, out);
                let s = ev.summary_index.unwrap_or(0);
                self.thinking(o, s, ev.delta.as_deref().unwrap_or_default(), out);
            }
            "response.reasoning_text.delta" => {
                self.start(None, out);
                self.ensure_thinking(o, out);
                // Raw reasoning text: its own index space after the summaries'.
                let s = (1u64 << 32).saturating_add(c);
                self.thinking(o, s, ev.delta.as_deref().unwrap_or_default(), out);
            }
            "response.reasoning_summary_text.done" | "response.reasoning_text.done" => {
                let s = if ev.kind == "response.reasoning_text.done" {
                    (1u64 << 32).saturating_add(c)
                } else {
                    ev.summary_index.unwrap_or(0)
                };
                let owed = self
                    .parts
                    .get(&(o, ITEM))
                    .is_some_and(|p| p.open && !(p.summary == Some(s) && p.summary_emitted));
                if owed {
                    self.thinking(o, s, ev.text.as_deref().unwrap_or_default(), out);
                }
            }
            "response.output_item.done" => {
                self.start(None, out);
                if let Some(item) = &ev.item {
                    self.item_done(o, item, out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let status = if ev.kind == "response.incomplete" {
                    "incomplete"
                } else {
                    "completed"
                };
                self.complete(ev.response.as_ref(), status, out);
            }
            "response.failed" => {
                self.start(ev.response.as_ref(), out);
                // A failed response may still have consumed (and billed) tokens.
                if let Some(usage) = ev.response.as_ref().and_then(|r| r.usage.as_ref()) {
                    out.push(StreamEvent::Usage(usage_from_wire(usage)));
                }
                let error = ev.response.as_ref().and_then(|r| r.error.as_ref());
                self.fail(failed_error(error), out);
            }
            "error" => {
                let nested = ev.error.clone().unwrap_or_default();
                let error = ResponsesError {
                    code: ev.code.clone().flatten().or(nested.code),
                    message: ev.message.clone().unwrap_or(nested.message),
                };
                self.fail(failed_error(Some(&error)), out);
            }
            _ => {}
        }
    }

    fn start(&mut self, response: Option<&ResponsesResponse>, out: &mut Vec<StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        let (id, model, created) = match response {
            Some(r) => (r.id.clone(), r.model.clone(), r.created_at),
            None => (String::new(), String::new(), 0),
        };
        out.push(StreamEvent::Start {
            id: if id.is_empty() { new_id("resp_") } else { id },
            model,
            created: if created == 0 { now_unix() } else { created },
            usage: None,
        });
    }

    fn open(
        &mut self,
        key: (u64, u64),
        kind: DecodedKind,
        part: PartKind,
        out: &mut Vec<StreamEvent>,
    ) {
        let index = self.next_index;
        self.next_index += 1;
        out.push(StreamEvent::PartStart { index, kind: part });
        self.parts.insert(
            key,
            DecodedPart {
                index,
                kind,
                open: true,
                emitted: false,
                summary: None,
                summary_emitted: false,
            },
        );
    }

    fn stop(&mut self, o: u64, sub: u64, out: &mut Vec<StreamEvent>) {
        if let Some(part) = self.parts.get_mut(&(o, sub)) {
            if part.open {
                part.open = false;
                out.push(StreamEvent::PartStop { index: part.index });
            }
        }
    }

    fn close_all(&mut self, out: &mut Vec<StreamEvent>) {
        for part in self.parts.values_mut() {
            if part.open {
                part.open = false;
                out.push(StreamEvent::PartStop { index: part.index });
            }
        }
    }

    fn ensure_text(&mut self, o: u64, c: u64, out: &mut Vec<StreamEvent>) {
        if !self.parts.contains_key(&(o, c)) {
            self.open((o, c), DecodedKind::Text, PartKind::Text, out);
        }
    }

    fn ensure_thinking(&mut self, o: u64, out: &mut Vec<StreamEvent>) {
        if !self.parts.contains_key(&(o, ITEM)) {
            self.open((o, ITEM), DecodedKind::Thinking, PartKind::Thinking, out);
        }
    }

    /// Opens a function-call part (or, for the structured-output tool, a text part).
    fn open_call(&mut self, o: u64, id: String, name: String, out: &mut Vec<StreamEvent>) {
        if self.structured_tool.as_deref() == Some(name.as_str()) {
            self.open((o, ITEM), DecodedKind::ToolAsText, PartKind::Text, out);
        } else {
            self.flags.tool_call = true;
            self.open(
                (o, ITEM),
                DecodedKind::Tool,
                PartKind::ToolCall { id, name },
                out,
            );
        }
    }

    fn text(&mut self, o: u64, c: u64, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        if let Some(part) = self.parts.get_mut(&(o, c)) {
            if part.open && part.kind == DecodedKind::Text {
                part.emitted = true;
                out.push(StreamEvent::TextDelta {
                    index: part.index,
                    text: text.to_string(),
                });
            }
        }
    }

    /// `*.done` of a text part: emits the text if no delta carried it, then stops the part.
    fn text_done(&mut self, o: u64, c: u64, text: &str, out: &mut Vec<StreamEvent>) {
        if let Some(part) = self.parts.get(&(o, c)) {
            if part.open && !part.emitted {
                self.text(o, c, text, out);
            }
            self.stop(o, c, out);
        }
    }

    fn arguments(&mut self, o: u64, json: &str, out: &mut Vec<StreamEvent>) {
        if json.is_empty() {
            return;
        }
        if let Some(part) = self.parts.get_mut(&(o, ITEM)) {
            if !part.open {
                return;
            }
            let event = match part.kind {
                DecodedKind::Tool => StreamEvent::ToolArgsDelta {
                    index: part.index,
                    json: json.to_string(),
                },
                DecodedKind::ToolAsText => StreamEvent::TextDelta {
                    index: part.index,
                    text: json.to_string(),
                },
                _ => return,
            };
            part.emitted = true;
            out.push(event);
        }
    }

    /// Reasoning text of summary `s`; summaries are separated by a blank line, as in
    /// non-streaming responses.
    fn thinking(&mut self, o: u64, s: u64, text: &str, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        let Some(part) = self.parts.get_mut(&(o, ITEM)) else {
            return;
        };
        if !part.open || part.kind != DecodedKind::Thinking {
            return;
        }
        if part.summary != Some(s) {
            if part.emitted {
                out.push(StreamEvent::ThinkingDelta {
                    index: part.index,
                    text: "\n\n".to_string(),
                });
            }
            part.summary = Some(s);
            part.summary_emitted = false;
        }
        part.emitted = true;
        part.summary_emitted = true;
        out.push(StreamEvent::ThinkingDelta {
            index: part.index,
            text: text.to_string(),
        });
    }

    fn item_added(&mut self, o: u64, item: &ResponsesOutputItem, out: &mut Vec<StreamEvent>) {
        match item.kind.as_str() {
            "function_call" => {
                if !self.parts.contains_key(&(o, ITEM)) {
                    let name = call_name(item, &self.namespaces);
                    self.open_call(o, call_id_of(item), name, out);
                }
                self.arguments(o, &arguments_text(item.arguments.as_ref()), out);
            }
            "reasoning" => {
                self.ensure_thinking(o, out);
                self.thinking(o, 0, &reasoning_text(item), out);
            }
            // Message text arrives with its content parts.
            _ => {}
        }
    }

    /// `response.output_item.done`: the item is final. Emits whatever its events did not carry
    /// (servers that send only the final item), then stops its parts.
    fn item_done(&mut self, o: u64, item: &ResponsesOutputItem, out: &mut Vec<StreamEvent>) {
        if !self.done_items.insert(o) {
            return;
        }
        match item.kind.as_str() {
            "message" => {
                for (c, content) in item.content.iter().flatten().enumerate() {
                    let c = c as u64;
                    match content.kind.as_str() {
                        "output_text" => {}
                        "refusal" => self.flags.refusal = true,
                        _ => continue,
                    }
                    if !self.parts.contains_key(&(o, c)) {
                        self.ensure_text(o, c, out);
                    }
                    self.text_done(o, c, content.text(), out);
                }
                let keys: Vec<(u64, u64)> = self
                    .parts
                    .range((o, 0)..(o, ITEM))
                    .map(|(k, _)| *k)
                    .collect();
                for (o, c) in keys {
                    self.stop(o, c, out);
                }
            }
            "function_call" => {
                if !self.parts.contains_key(&(o, ITEM)) {
                    let name = call_name(item, &self.namespaces);
                    self.open_call(o, call_id_of(item), name, out);
                }
                if self
                    .parts
                    .get(&(o, ITEM))
                    .is_some_and(|p| p.open && !p.emitted)
                {
                    self.arguments(o, &arguments_text(item.arguments.as_ref()), out);
                }
                self.stop(o, ITEM, out);
            }
            "reasoning" => {
                let text = reasoning_text(item);
                let (signature, redacted) = split_encrypted(item.encrypted_content.as_deref());
                if !self.parts.contains_key(&(o, ITEM)) && (!text.is_empty() || signature.is_some())
                {
                    self.ensure_thinking(o, out);
                }
                if let Some(part) = self.parts.get(&(o, ITEM)) {
                    let (index, open, emitted) = (part.index, part.open, part.emitted);
                    if open && !emitted {
                        self.thinking(o, 0, &text, out);
                    }
                    if let (true, Some(signature)) = (open, signature) {
                        out.push(StreamEvent::ThinkingSignature { index, signature });
                    }
                    self.stop(o, ITEM, out);
                }
                if let Some(data) = redacted {
                    // OpenAI's encrypted reasoning: an opaque part of its own, so a client that
                    // replays it lets the reasoning continue on a Responses upstream.
                    let index = self.next_index;
                    self.next_index += 1;
                    out.push(StreamEvent::PartStart {
                        index,
                        kind: PartKind::RedactedThinking { data },
                    });
                    out.push(StreamEvent::PartStop { index });
                }
            }
            _ => {}
        }
    }

    fn complete(
        &mut self,
        response: Option<&ResponsesResponse>,
        status: &str,
        out: &mut Vec<StreamEvent>,
    ) {
        self.start(response, out);
        if let Some(resp) = response {
            // Items whose `output_item.done` never came (or servers that send only the final
            // object): whatever their events did not carry comes from the final output.
            for (o, item) in resp.output.iter().enumerate() {
                self.item_done(o as u64, item, out);
            }
        }
        self.close_all(out);
        if let Some(usage) = response.and_then(|r| r.usage.as_ref()) {
            out.push(StreamEvent::Usage(usage_from_wire(usage)));
        }
        let status = response.and_then(|r| r.status.as_deref()).unwrap_or(status);
        let incomplete = response.and_then(|r| r.incomplete_details.as_ref());
        out.push(StreamEvent::Finish {
            stop: stop_reason(Some(status), incomplete, self.flags),
        });
        out.push(StreamEvent::Done);
        self.finished = true;
    }

    fn fail(&mut self, error: CanonicalError, out: &mut Vec<StreamEvent>) {
        out.push(StreamEvent::Error(error));
        self.finished = true;
    }
}

// =============================================================================================
// Encode

#[derive(Debug)]
enum EncodedPart {
    Text {
        output_index: usize,
        item_id: String,
        content_index: usize,
        text: String,
    },
    Tool {
        output_index: usize,
        item_id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
    /// Thinking, and redacted/encrypted thinking (opaque `redacted` data, possibly with text).
    Thinking {
        output_index: usize,
        item_id: String,
        text: String,
        summary_open: bool,
        signature: Option<String>,
        redacted: Option<String>,
    },
}

/// A message output item receiving text parts.
#[derive(Debug)]
struct OpenMessage {
    item_id: String,
    /// Final text of each content part (`None` while the part is open).
    content: Vec<Option<String>>,
}

/// Writes the Responses event sequence for canonical stream events.
#[derive(Debug)]
pub struct StreamEncoder {
    model: String,
    /// The request's namespaced tools: calls to them are named by namespace + short name.
    namespaces: ToolNamespaces,
    id: String,
    created: u64,
    seq: u64,
    started: bool,
    ended: bool,
    /// Completed output items by output_index (`None` while open).
    output: Vec<Option<ResponsesOutputItem>>,
    /// Open parts by canonical index.
    parts: BTreeMap<usize, EncodedPart>,
    /// Open message items by output_index.
    messages: BTreeMap<usize, OpenMessage>,
    /// The message item consecutive text parts are appended to.
    current_message: Option<usize>,
    usage: Usage,
    stop: Option<StopReason>,
}

impl StreamEncoder {
    pub fn new(ctx: &ResponseContext) -> StreamEncoder {
        StreamEncoder {
            model: ctx.client_model.clone(),
            namespaces: ctx.tool_namespaces.clone(),
            id: String::new(),
            created: 0,
            seq: 0,
            started: false,
            ended: false,
            output: Vec::new(),
            parts: BTreeMap::new(),
            messages: BTreeMap::new(),
            current_message: None,
            usage: Usage::default(),
            stop: None,
        }
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        match event {
            StreamEvent::Start {
                id,
                model,
                created,
                usage,
            } => {
                if !self.started {
                    self.id = with_prefix("resp_", id);
                    self.created = *created;
                    if self.model.is_empty() {
                        self.model = model.clone();
                    }
                    if let Some(u) = usage {
                        self.usage.merge(u);
                    }
                }
                self.start(out);
            }
            StreamEvent::PartStart { index, kind } => {
                if self.parts.contains_key(index) {
                    return;
                }
                match kind {
                    PartKind::Text => self.open_text(*index, out),
                    PartKind::Thinking => self.open_thinking(*index, None, out),
                    PartKind::RedactedThinking { data } => {
                        self.open_thinking(*index, Some(data.clone()), out)
                    }
                    PartKind::ToolCall { id, name } => self.open_tool(*index, id, name, out),
                }
            }
            StreamEvent::TextDelta { index, text } => {
                if !self.parts.contains_key(index) {
                    self.open_text(*index, out);
                }
                self.text_delta(*index, text, out);
            }
            StreamEvent::ThinkingDelta { index, text } => {
                if !self.parts.contains_key(index) {
                    self.open_thinking(*index, None, out);
                }
                self.thinking_delta(*index, text, out);
            }
            StreamEvent::ThinkingSignature { index, signature } => {
                if let Some(EncodedPart::Thinking { signature: s, .. }) = self.parts.get_mut(index)
                {
                    *s = Some(signature.clone());
                }
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                if !self.parts.contains_key(index) {
                    self.open_tool(*index, "", "", out);
                }
                self.args_delta(*index, json, out);
            }
            StreamEvent::PartStop { index } => self.stop_part(*index, out),
            StreamEvent::Usage(u) => self.usage.merge(u),
            StreamEvent::Finish { stop } => self.stop = Some(stop.clone()),
            StreamEvent::Done => self.done(out),
            StreamEvent::Error(e) => self.error(e, out),
        }
    }

    fn emit(&mut self, mut event: ResponsesStreamEvent, out: &mut Vec<u8>) {
        event.sequence_number = self.seq;
        self.seq += 1;
        if let Ok(data) = serde_json::to_string(&event) {
            write_event(out, Some(&event.kind), &data);
        }
    }

    fn response(&self, status: &str, output: Vec<ResponsesOutputItem>) -> ResponsesResponse {
        response_object(
            &self.id,
            self.created,
            &self.model,
            status,
            output,
            None,
            None,
            None,
        )
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        if self.id.is_empty() {
            self.id = new_id("resp_");
        }
        if self.created == 0 {
            self.created = now_unix();
        }
        for kind in ["response.created", "response.in_progress"] {
            let mut event = ResponsesStreamEvent::new(kind);
            event.response = Some(self.response("in_progress", Vec::new()));
            self.emit(event, out);
        }
    }

    /// A new output slot.
    fn slot(&mut self) -> usize {
        self.output.push(None);
        self.output.len() - 1
    }

    fn item_event(
        kind: &str,
        output_index: usize,
        item: ResponsesOutputItem,
    ) -> ResponsesStreamEvent {
        let mut event = ResponsesStreamEvent::new(kind);
        event.output_index = Some(output_index as u64);
        event.item = Some(item);
        event
    }

    fn part_event(kind: &str, item_id: &str, output_index: usize) -> ResponsesStreamEvent {
        let mut event = ResponsesStreamEvent::new(kind);
        event.item_id = Some(item_id.to_string());
        event.output_index = Some(output_index as u64);
        event
    }

    fn open_text(&mut self, index: usize, out: &mut Vec<u8>) {
        self.start(out);
        let output_index = match self.current_message {
            Some(oi) if self.messages.contains_key(&oi) => oi,
            _ => {
                let oi = self.slot();
                let item_id = new_id("msg_");
                let item = message_item(&item_id, "in_progress", Vec::new());
                self.emit(
                    Self::item_event("response.output_item.added", oi, item),
                    out,
                );
                self.messages.insert(
                    oi,
                    OpenMessage {
                        item_id,
                        content: Vec::new(),
                    },
                );
                self.current_message = Some(oi);
                oi
            }
        };
        let Some(message) = self.messages.get_mut(&output_index) else {
            return;
        };
        let content_index = message.content.len();
        message.content.push(None);
        let item_id = message.item_id.clone();
        let mut event = Self::part_event("response.content_part.added", &item_id, output_index);
        event.content_index = Some(content_index as u64);
        event.part = Some(ResponsesOutputContent::output_text(""));
        self.emit(event, out);
        self.parts.insert(
            index,
            EncodedPart::Text {
                output_index,
                item_id,
                content_index,
                text: String::new(),
            },
        );
    }

    /// Any other kind of item starts: text after it goes to a new message item.
    fn leave_message(&mut self, out: &mut Vec<u8>) {
        if let Some(oi) = self.current_message.take() {
            let all_closed = self
                .messages
                .get(&oi)
                .is_some_and(|m| m.content.iter().all(Option::is_some));
            if all_closed {
                self.close_message(oi, out);
            }
        }
    }

    fn close_message(&mut self, oi: usize, out: &mut Vec<u8>) {
        let Some(message) = self.messages.remove(&oi) else {
            return;
        };
        let content = message
            .content
            .iter()
            .map(|t| ResponsesOutputContent::output_text(t.as_deref().unwrap_or_default()))
            .collect();
        let item = message_item(&message.item_id, "completed", content);
        if let Some(slot) = self.output.get_mut(oi) {
            *slot = Some(item.clone());
        }
        self.emit(Self::item_event("response.output_item.done", oi, item), out);
    }

    fn open_tool(&mut self, index: usize, id: &str, name: &str, out: &mut Vec<u8>) {
        self.start(out);
        self.leave_message(out);
        let output_index = self.slot();
        let item_id = new_id("fc_");
        let call_id = if id.is_empty() {
            new_id("call_")
        } else {
            id.to_string()
        };
        let item = function_call_item(
            &item_id,
            "in_progress",
            &call_id,
            name,
            "",
            &self.namespaces,
        );
        self.emit(
            Self::item_event("response.output_item.added", output_index, item),
            out,
        );
        self.parts.insert(
            index,
            EncodedPart::Tool {
                output_index,
                item_id,
                call_id,
                name: name.to_string(),
                arguments: String::new(),
            },
        );
    }

    fn open_thinking(&mut self, index: usize, redacted: Option<String>, out: &mut Vec<u8>) {
        self.start(out);
        self.leave_message(out);
        let output_index = self.slot();
        let item_id = new_id("rs_");
        let item = reasoning_item(&item_id, "", None);
        self.emit(
            Self::item_event("response.output_item.added", output_index, item),
            out,
        );
        self.parts.insert(
            index,
            EncodedPart::Thinking {
                output_index,
                item_id,
                text: String::new(),
                summary_open: false,
                signature: None,
                redacted,
            },
        );
    }

    fn text_delta(&mut self, index: usize, delta: &str, out: &mut Vec<u8>) {
        let Some(EncodedPart::Text {
            output_index,
            item_id,
            content_index,
            text,
        }) = self.parts.get_mut(&index)
        else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        text.push_str(delta);
        let mut event = Self::part_event("response.output_text.delta", item_id, *output_index);
        event.content_index = Some(*content_index as u64);
        event.delta = Some(delta.to_string());
        event.logprobs = Some(Vec::new());
        self.emit(event, out);
    }

    fn thinking_delta(&mut self, index: usize, delta: &str, out: &mut Vec<u8>) {
        let Some(EncodedPart::Thinking {
            output_index,
            item_id,
            text,
            summary_open,
            ..
        }) = self.parts.get_mut(&index)
        else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        let (oi, id) = (*output_index, item_id.clone());
        text.push_str(delta);
        let first = !*summary_open;
        *summary_open = true;
        if first {
            let mut event = Self::part_event("response.reasoning_summary_part.added", &id, oi);
            event.summary_index = Some(0);
            event.part = Some(summary_part(""));
            self.emit(event, out);
        }
        let mut event = Self::part_event("response.reasoning_summary_text.delta", &id, oi);
        event.summary_index = Some(0);
        event.delta = Some(delta.to_string());
        self.emit(event, out);
    }

    fn args_delta(&mut self, index: usize, delta: &str, out: &mut Vec<u8>) {
        let Some(EncodedPart::Tool {
            output_index,
            item_id,
            arguments,
            ..
        }) = self.parts.get_mut(&index)
        else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        arguments.push_str(delta);
        let mut event = Self::part_event(
            "response.function_call_arguments.delta",
            item_id,
            *output_index,
        );
        event.delta = Some(delta.to_string());
        self.emit(event, out);
    }

    fn stop_part(&mut self, index: usize, out: &mut Vec<u8>) {
        let Some(part) = self.parts.remove(&index) else {
            return;
        };
        match part {
            EncodedPart::Text {
                output_index,
                item_id,
                content_index,
                text,
            } => {
                let mut event =
                    Self::part_event("response.output_text.done", &item_id, output_index);
                event.content_index = Some(content_index as u64);
                event.text = Some(text.clone());
                event.logprobs = Some(Vec::new());
                self.emit(event, out);
                let mut event =
                    Self::part_event("response.content_part.done", &item_id, output_index);
                event.content_index = Some(content_index as u64);
                event.part = Some(ResponsesOutputContent::output_text(&text));
                self.emit(event, out);
                let mut finished = false;
                if let Some(message) = self.messages.get_mut(&output_index) {
                    if let Some(slot) = message.content.get_mut(content_index) {
                        *slot = Some(text);
                    }
                    finished = message.content.iter().all(Option::is_some);
                }
                if finished && self.current_message != Some(output_index) {
                    self.close_message(output_index, out);
                }
            }
            EncodedPart::Tool {
                output_index,
                item_id,
                call_id,
                name,
                arguments,
            } => {
                let mut event = Self::part_event(
                    "response.function_call_arguments.done",
                    &item_id,
                    output_index,
                );
                let item = function_call_item(
                    &item_id,
                    "completed",
                    &call_id,
                    &name,
                    &arguments,
                    &self.namespaces,
                );
                event.name = item.name.clone();
                event.arguments = Some(arguments);
                self.emit(event, out);
                self.finish_item(output_index, item, out);
            }
            EncodedPart::Thinking {
                output_index,
                item_id,
                text,
                summary_open,
                signature,
                redacted,
            } => {
                if summary_open {
                    let mut event = Self::part_event(
                        "response.reasoning_summary_text.done",
                        &item_id,
                        output_index,
                    );
                    event.summary_index = Some(0);
                    event.text = Some(text.clone());
                    self.emit(event, out);
                    let mut event = Self::part_event(
                        "response.reasoning_summary_part.done",
                        &item_id,
                        output_index,
                    );
                    event.summary_index = Some(0);
                    event.part = Some(summary_part(&text));
                    self.emit(event, out);
                }
                let encrypted = join_encrypted(signature.as_deref(), redacted.as_deref());
                let item = reasoning_item(&item_id, &text, encrypted);
                self.finish_item(output_index, item, out);
            }
        }
    }

    fn finish_item(&mut self, output_index: usize, item: ResponsesOutputItem, out: &mut Vec<u8>) {
        if let Some(slot) = self.output.get_mut(output_index) {
            *slot = Some(item.clone());
        }
        self.emit(
            Self::item_event("response.output_item.done", output_index, item),
            out,
        );
    }

    /// Closes every open part and message item (in order).
    fn close_all(&mut self, out: &mut Vec<u8>) {
        let open: Vec<usize> = self.parts.keys().copied().collect();
        for index in open {
            self.stop_part(index, out);
        }
        self.current_message = None;
        let messages: Vec<usize> = self.messages.keys().copied().collect();
        for oi in messages {
            self.close_message(oi, out);
        }
    }

    fn done(&mut self, out: &mut Vec<u8>) {
        self.start(out);
        self.close_all(out);
        let stop = self.stop.clone().unwrap_or(StopReason::EndTurn);
        let (status, incomplete) = status_of(&stop);
        let output = std::mem::take(&mut self.output)
            .into_iter()
            .flatten()
            .collect();
        let mut response = self.response(status, output);
        response.usage = Some(usage_to_wire(&self.usage));
        response.incomplete_details = incomplete.map(|r| super::wire::ResponsesIncompleteDetails {
            reason: Some(r.to_string()),
        });
        let kind = if status == "incomplete" {
            "response.incomplete"
        } else {
            "response.completed"
        };
        let mut event = ResponsesStreamEvent::new(kind);
        event.response = Some(response);
        self.emit(event, out);
        self.ended = true;
    }

    /// An in-stream error: the `error` event, then `response.failed`, then the stream ends.
    fn error(&mut self, e: &CanonicalError, out: &mut Vec<u8>) {
        self.start(out);
        let mut event = ResponsesStreamEvent::new("error");
        event.code = Some(Some(
            e.code
                .map(str::to_string)
                .unwrap_or_else(|| failed_code(e.kind).to_string()),
        ));
        event.message = Some(e.message.clone());
        event.param = Some(e.param.map(str::to_string));
        self.emit(event, out);
        let output = std::mem::take(&mut self.output)
            .into_iter()
            .flatten()
            .collect();
        let mut response = self.response("failed", output);
        response.error = Some(ResponsesError {
            code: Some(failed_code(e.kind).to_string()),
            message: e.message.clone(),
        });
        if self.usage != Usage::default() {
            response.usage = Some(usage_to_wire(&self.usage));
        }
        let mut event = ResponsesStreamEvent::new("response.failed");
        event.response = Some(response);
        self.emit(event, out);
        self.ended = true;
    }
}

fn summary_part(text: &str) -> ResponsesOutputContent {
    ResponsesOutputContent {
        kind: "summary_text".to_string(),
        text: Some(text.to_string()),
        ..ResponsesOutputContent::default()
    }
}

/// `response.error.code` for an error kind (the API's codes for failed responses).
fn failed_code(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::RateLimited => "rate_limit_exceeded",
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            "invalid_prompt"
        }
        _ => "server_error",
    }
}
