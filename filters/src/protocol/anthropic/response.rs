//! Anthropic Messages non-streaming responses, plus the stop-reason and usage mappings the
//! stream codec shares.

use super::request::{arguments_to_input, WRAPPED_SUFFIX};
use super::wire::{AnthropicBlock, AnthropicError, AnthropicResponse, AnthropicUsage};
use crate::canonical::{
    CanonicalError, ChatResponse, Part, ResponseContext, StopReason, Thinking, ToolCall, Usage,
};
use crate::protocol::util::{bad_upstream, new_id, now_unix, with_prefix};
use serde_json::Value;

/// Anthropic `stop_reason` -> canonical.
pub(crate) fn decode_stop(reason: Option<&str>, sequence: Option<String>) -> StopReason {
    match reason {
        None | Some("" | "end_turn") => StopReason::EndTurn,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence(sequence),
        Some("tool_use") => StopReason::ToolUse,
        Some("refusal") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Canonical stop -> Anthropic (`stop_reason`, `stop_sequence`). A turn that produced tool calls
/// is `tool_use` whatever the upstream said (OpenAI-compatible servers often say `stop`):
/// Anthropic clients run tools only on `tool_use`.
pub(crate) fn encode_stop(
    stop: &StopReason,
    has_tool_calls: bool,
) -> (&'static str, Option<String>) {
    match stop {
        StopReason::EndTurn if has_tool_calls => ("tool_use", None),
        StopReason::EndTurn => ("end_turn", None),
        StopReason::StopSequence(s) => ("stop_sequence", s.clone()),
        StopReason::MaxTokens => ("max_tokens", None),
        StopReason::ToolUse => ("tool_use", None),
        StopReason::ContentFilter => ("refusal", None),
        StopReason::Other(s) => match s.as_str() {
            "pause_turn" => ("pause_turn", None),
            "model_context_window_exceeded" => ("model_context_window_exceeded", None),
            _ if has_tool_calls => ("tool_use", None),
            _ => ("end_turn", None),
        },
    }
}

/// Anthropic usage -> canonical (canonical input includes cache reads and writes).
pub(crate) fn decode_usage(u: &AnthropicUsage) -> Usage {
    let read = u.cache_read_input_tokens;
    let creation = u.cache_creation_input_tokens;
    Usage {
        input: u
            .input_tokens
            .unwrap_or(0)
            .saturating_add(read.unwrap_or(0))
            .saturating_add(creation.unwrap_or(0)),
        output: u.output_tokens.unwrap_or(0),
        cached_input: read,
        cache_creation_input: creation,
        reasoning: None,
    }
}

/// Canonical usage -> Anthropic (`input_tokens` excludes cache reads and writes).
pub(crate) fn encode_usage(u: &Usage) -> AnthropicUsage {
    let read = u.cached_input.unwrap_or(0);
    let creation = u.cache_creation_input.unwrap_or(0);
    AnthropicUsage {
        input_tokens: Some(u.input.saturating_sub(read).saturating_sub(creation)),
        cache_creation_input_tokens: Some(creation),
        cache_read_input_tokens: Some(read),
        output_tokens: Some(u.output),
    }
}

/// Decodes a successful Anthropic Messages response body.
pub fn decode_response(body: &[u8], ctx: &ResponseContext) -> Result<ChatResponse, CanonicalError> {
    let resp: AnthropicResponse = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => {
            // A 200 carrying an error body is still an error.
            if let Ok(err) = serde_json::from_slice::<AnthropicError>(body) {
                return Err(super::error_from_body(&err.error, None));
            }
            return Err(bad_upstream(format!(
                "the Anthropic response body could not be decoded: {e}"
            )));
        }
    };
    if resp.kind == "error" {
        if let Ok(err) = serde_json::from_slice::<AnthropicError>(body) {
            return Err(super::error_from_body(&err.error, None));
        }
    }
    let structured = ctx.structured_output_tool.as_deref();
    let mut parts = Vec::with_capacity(resp.content.len());
    let mut other_tool_use = false;
    for block in resp.content {
        match block {
            AnthropicBlock::Text { text } => parts.push(Part::Text(text)),
            AnthropicBlock::ToolUse { id, name, input } => {
                if Some(name.as_str()) == structured {
                    parts.push(Part::Text(structured_text(&name, input)));
                } else {
                    other_tool_use = true;
                    parts.push(Part::ToolCall(ToolCall {
                        id,
                        name,
                        arguments: input.to_string(),
                    }));
                }
            }
            AnthropicBlock::Thinking {
                thinking,
                signature,
            } => parts.push(Part::Thinking(Thinking {
                text: thinking,
                signature: Some(signature).filter(|s| !s.is_empty()),
                redacted: None,
            })),
            AnthropicBlock::RedactedThinking { data } => parts.push(Part::Thinking(Thinking {
                text: String::new(),
                signature: None,
                redacted: Some(data),
            })),
            // Server tool blocks, images and anything newer: nothing to translate.
            AnthropicBlock::Image { .. }
            | AnthropicBlock::ToolResult { .. }
            | AnthropicBlock::Other => {}
        }
    }
    let mut stop = decode_stop(resp.stop_reason.as_deref(), resp.stop_sequence);
    if stop == StopReason::ToolUse && structured.is_some() && !other_tool_use {
        stop = StopReason::EndTurn;
    }
    Ok(ChatResponse {
        id: resp.id,
        model: resp.model,
        created: now_unix(),
        parts,
        stop,
        usage: decode_usage(&resp.usage),
    })
}

/// The answer text of the structured-output tool's `input`: the input itself, or its `value`
/// when the schema was wrapped (see `request::WRAPPED_SUFFIX`).
fn structured_text(tool: &str, input: Value) -> String {
    if tool.ends_with(WRAPPED_SUFFIX) {
        if let Value::Object(mut m) = input {
            return match m.remove("value") {
                Some(v) => v.to_string(),
                None => Value::Object(m).to_string(),
            };
        }
        return input.to_string();
    }
    input.to_string()
}

/// Converts canonical parts into Anthropic response content blocks.
fn encode_parts(parts: &[Part]) -> Vec<AnthropicBlock> {
    let mut content = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Part::Text(t) if t.is_empty() => {}
            Part::Text(t) => content.push(AnthropicBlock::Text { text: t.clone() }),
            Part::ToolCall(c) => content.push(AnthropicBlock::ToolUse {
                id: if c.id.is_empty() {
                    new_id("toolu_")
                } else {
                    c.id.clone()
                },
                name: c.name.clone(),
                input: arguments_to_input(&c.arguments),
            }),
            Part::Thinking(t) => match &t.redacted {
                Some(data) => content.push(AnthropicBlock::RedactedThinking { data: data.clone() }),
                None => content.push(AnthropicBlock::Thinking {
                    thinking: t.text.clone(),
                    signature: t.signature.clone().unwrap_or_default(),
                }),
            },
            // Anthropic assistant content has no image or tool-result blocks.
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    content
}

/// Encodes a canonical response as an Anthropic Messages response body.
pub fn encode_response(resp: &ChatResponse, ctx: &ResponseContext) -> Vec<u8> {
    let has_tool_calls = resp.parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let (stop_reason, stop_sequence) = encode_stop(&resp.stop, has_tool_calls);
    let body = AnthropicResponse {
        id: with_prefix("msg_", &resp.id),
        kind: "message".to_string(),
        role: "assistant".to_string(),
        model: if ctx.client_model.is_empty() {
            resp.model.clone()
        } else {
            ctx.client_model.clone()
        },
        content: encode_parts(&resp.parts),
        stop_reason: Some(stop_reason.to_string()),
        stop_sequence,
        usage: encode_usage(&resp.usage),
    };
    serde_json::to_vec(&body).unwrap_or_default()
}
