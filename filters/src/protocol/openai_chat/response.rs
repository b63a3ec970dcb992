//! Chat Completions responses <-> canonical [`ChatResponse`], plus the pieces the stream codec
//! shares (finish reasons, usage, in-band errors).

use super::request::arguments_text;
use super::wire::*;
use crate::canonical::{
    CanonicalError, ChatResponse, Part, ResponseContext, StopReason, Thinking, ToolCall, Usage,
};
use crate::protocol::openai_error;
use crate::protocol::util::{self, bad_upstream};
use serde_json::Value;

pub fn decode_response(body: &[u8], ctx: &ResponseContext) -> Result<ChatResponse, CanonicalError> {
    let wire: OpenAIChatCompletion = serde_json::from_slice(body).map_err(|e| {
        bad_upstream(format!(
            "the upstream Chat Completions response is not valid: {e}"
        ))
    })?;
    if let Some(err) = wire.error.as_ref().filter(|e| !e.is_null()) {
        return Err(in_band_error(err, body));
    }
    let mut choices = wire.choices.unwrap_or_default();
    let pos = choices.iter().position(|c| c.index.unwrap_or(0) == 0);
    let Some(choice) = pos.map(|p| choices.swap_remove(p)) else {
        return Err(bad_upstream(
            "the upstream Chat Completions response has no choices",
        ));
    };
    let message = choice.message.unwrap_or_default();

    let mut parts = Vec::new();
    let reasoning = message
        .reasoning_content
        .filter(|r| !r.is_empty())
        .or(message.reasoning.filter(|r| !r.is_empty()));
    if let Some(text) = reasoning {
        parts.push(Part::Thinking(Thinking {
            text,
            ..Thinking::default()
        }));
    }
    if let Some(content) = &message.content {
        for (thinking, text) in content_value_texts(content) {
            if text.is_empty() {
                continue;
            }
            parts.push(if thinking {
                Part::Thinking(Thinking {
                    text,
                    ..Thinking::default()
                })
            } else {
                Part::Text(text)
            });
        }
    }
    if let Some(refusal) = message.refusal.filter(|r| !r.is_empty()) {
        parts.push(Part::Text(refusal));
    }
    let mut saw_tool = false;
    for call in message.tool_calls.unwrap_or_default() {
        let f = call.function.unwrap_or_default();
        saw_tool = true;
        parts.push(Part::ToolCall(ToolCall {
            id: call
                .id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| util::new_id("call_")),
            name: f.name.unwrap_or_default(),
            arguments: arguments_text(f.arguments.as_ref()),
        }));
    }
    if let Some(f) = message.function_call {
        saw_tool = true;
        parts.push(Part::ToolCall(ToolCall {
            id: util::new_id("call_"),
            name: f.name.unwrap_or_default(),
            arguments: arguments_text(f.arguments.as_ref()),
        }));
    }

    Ok(ChatResponse {
        id: wire
            .id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| util::new_id("chatcmpl-")),
        model: wire
            .model
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| ctx.client_model.clone()),
        created: wire
            .created
            .filter(|c| *c > 0)
            .unwrap_or_else(util::now_unix),
        parts,
        stop: decode_finish(choice.finish_reason.as_deref(), saw_tool),
        usage: wire.usage.as_ref().map(decode_usage).unwrap_or_default(),
    })
}

/// `finish_reason` to canonical. Some servers (older Ollama, vLLM) say `stop` although the
/// message holds tool calls: that is a tool-use stop.
pub(super) fn decode_finish(reason: Option<&str>, saw_tool: bool) -> StopReason {
    match reason {
        None | Some("" | "stop" | "eos" | "end_turn") if saw_tool => StopReason::ToolUse,
        None | Some("" | "stop" | "eos" | "end_turn") => StopReason::EndTurn,
        Some("length" | "max_tokens" | "model_length") => StopReason::MaxTokens,
        Some("tool_calls" | "function_call" | "tool_use") => StopReason::ToolUse,
        Some("content_filter" | "safety") => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Canonical stop reason to `finish_reason`; an ordinary end with tool calls is `tool_calls`
/// (clients look for it to run the tools).
pub(super) fn encode_finish(stop: &StopReason, has_tool_calls: bool) -> &'static str {
    match stop {
        StopReason::ToolUse => "tool_calls",
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::Other(_)
            if has_tool_calls =>
        {
            "tool_calls"
        }
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::Other(_) => "stop",
        StopReason::MaxTokens => "length",
        StopReason::ContentFilter => "content_filter",
    }
}

pub(crate) fn decode_usage(u: &OpenAIChatUsage) -> Usage {
    Usage {
        input: u.prompt_tokens.unwrap_or(0),
        output: u.completion_tokens.unwrap_or(0),
        cached_input: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens)
            .or(u.prompt_cache_hit_tokens),
        cache_creation_input: None,
        reasoning: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
    }
}

pub(super) fn encode_usage(u: &Usage) -> OpenAIChatUsage {
    OpenAIChatUsage {
        prompt_tokens: Some(u.input),
        completion_tokens: Some(u.output),
        total_tokens: Some(u.total()),
        prompt_tokens_details: Some(OpenAIChatPromptTokensDetails {
            cached_tokens: Some(u.cached_input.unwrap_or(0)),
        }),
        completion_tokens_details: Some(OpenAIChatCompletionTokensDetails {
            reasoning_tokens: Some(u.reasoning.unwrap_or(0)),
        }),
        prompt_cache_hit_tokens: None,
    }
}

/// The HTTP status an error reported inside a 2xx body or a stream stands for: a numeric
/// `code`/`status` (OpenRouter), else its `type`/`code` name, else 502 (the upstream failed).
fn in_band_status(err: &Value) -> u16 {
    for key in ["code", "status"] {
        if let Some(n) = err
            .get(key)
            .and_then(Value::as_u64)
            .filter(|n| (400..=599).contains(n))
        {
            return n as u16;
        }
    }
    let names = ["type", "code"].map(|k| err.get(k).and_then(Value::as_str).unwrap_or(""));
    for name in names {
        let status = match name {
            "invalid_request_error" | "BadRequestError" | "context_length_exceeded" => 400,
            "authentication_error" | "invalid_api_key" => 401,
            "permission_error" | "permission_denied" => 403,
            "not_found_error" | "model_not_found" | "NotFoundError" => 404,
            "rate_limit_error"
            | "rate_limit_exceeded"
            | "insufficient_quota"
            | "tokens"
            | "requests" => 429,
            "overloaded_error" | "service_unavailable" => 503,
            "timeout" | "timeout_error" => 504,
            _ => continue,
        };
        return status;
    }
    502
}

/// An `{"error": {...}}` object found in a 2xx body or a stream event.
pub(super) fn in_band_error(err: &Value, body: &[u8]) -> CanonicalError {
    openai_error::decode_error(in_band_status(err), body)
}

/// vLLM's older un-wrapped stream error: `{"object":"error","message","type","code"}`.
pub(super) fn flat_error(v: &Value, body: &[u8]) -> CanonicalError {
    let status = in_band_status(v);
    match v.get("message").and_then(Value::as_str) {
        Some(m) => CanonicalError::new(crate::canonical::ErrorKind::from_status(status), m)
            .with_status(status),
        None => openai_error::decode_error(status, body),
    }
}

pub fn encode_response(resp: &ChatResponse, ctx: &ResponseContext) -> Vec<u8> {
    let mut text = String::new();
    let mut has_text = false;
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for part in &resp.parts {
        match part {
            Part::Text(t) => {
                has_text = true;
                text.push_str(t);
            }
            Part::Thinking(t) => reasoning.push_str(&t.text),
            Part::ToolCall(c) => calls.push(OpenAIChatToolCall {
                index: None,
                id: Some(c.id.clone()),
                kind: Some("function".to_string()),
                function: Some(OpenAIChatFunctionCall {
                    name: Some(c.name.clone()),
                    arguments: Some(Value::String(if c.arguments.trim().is_empty() {
                        "{}".to_string()
                    } else {
                        c.arguments.clone()
                    })),
                }),
            }),
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    let finish = encode_finish(&resp.stop, !calls.is_empty());
    let wire = OpenAIChatCompletion {
        id: Some(util::with_prefix("chatcmpl-", &resp.id)),
        object: Some("chat.completion".to_string()),
        created: Some(if resp.created > 0 {
            resp.created
        } else {
            util::now_unix()
        }),
        model: Some(ctx.client_model.clone()),
        choices: Some(vec![OpenAIChatChoice {
            index: Some(0),
            message: Some(OpenAIChatResponseMessage {
                role: Some("assistant".to_string()),
                content: has_text.then_some(Value::String(text)),
                refusal: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                function_call: None,
                reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
                reasoning: None,
            }),
            logprobs: None,
            finish_reason: Some(finish.to_string()),
        }]),
        usage: Some(encode_usage(&resp.usage)),
        system_fingerprint: None,
        error: None,
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}
