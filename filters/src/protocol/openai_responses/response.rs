//! Responses (non-streaming) bodies: decode an upstream's `response` object, encode the object a
//! Responses client expects. Also the shared pieces the stream codec uses (the response
//! object, output items, usage, stop reasons, failure errors).

use serde_json::{json, Value};

use super::wire::{
    decode_at, ResponsesError, ResponsesIncompleteDetails, ResponsesInputTokensDetails,
    ResponsesOutputContent, ResponsesOutputItem, ResponsesOutputTokensDetails,
    ResponsesReasoningConfig, ResponsesResponse, ResponsesText, ResponsesTextConfig,
    ResponsesTextFormat, ResponsesUsage,
};
use super::{join_encrypted, split_encrypted};
use crate::canonical::{
    CanonicalError, ChatResponse, ErrorKind, Part, ResponseContext, StopReason, Thinking, ToolCall,
    ToolNamespaces, Usage,
};
use crate::protocol::util::{bad_upstream, new_id, now_unix, with_prefix};

// =============================================================================================
// Decode

/// Decodes a Responses upstream's 2xx body. A `failed` response is returned as its error.
pub fn decode_response(body: &[u8], ctx: &ResponseContext) -> Result<ChatResponse, CanonicalError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        bad_upstream(format!(
            "the Responses upstream returned a body that is not valid JSON: {e}"
        ))
    })?;
    if !value.is_object() {
        return Err(bad_upstream(
            "the Responses upstream returned a body that is not a JSON object",
        ));
    }
    let resp: ResponsesResponse = decode_at(&value, "response", bad_upstream)?;
    check_status(&resp)?;
    let mut parts = Vec::new();
    let mut flags = OutputFlags::default();
    for item in &resp.output {
        item_parts(item, ctx, &mut parts, &mut flags);
    }
    Ok(ChatResponse {
        id: resp.id.clone(),
        model: resp.model.clone(),
        created: resp.created_at,
        parts,
        stop: stop_reason(
            resp.status.as_deref(),
            resp.incomplete_details.as_ref(),
            flags,
        ),
        usage: resp.usage.as_ref().map(usage_from_wire).unwrap_or_default(),
    })
}

/// A final response must be `completed` or `incomplete`; `failed` carries the error.
fn check_status(resp: &ResponsesResponse) -> Result<(), CanonicalError> {
    match resp.status.as_deref() {
        None | Some("completed") | Some("incomplete") => Ok(()),
        Some("failed") => Err(failed_error(resp.error.as_ref())),
        Some("cancelled") => Err(bad_upstream("the upstream response was cancelled")),
        Some(other) => Err(bad_upstream(format!(
            "the Responses upstream returned an unfinished response (status \"{other}\")"
        ))),
    }
}

/// What the output contained, for the stop reason.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OutputFlags {
    pub tool_call: bool,
    pub refusal: bool,
}

/// Appends the canonical parts of one output item (message text, function call, reasoning;
/// other item kinds are skipped).
pub(crate) fn item_parts(
    item: &ResponsesOutputItem,
    ctx: &ResponseContext,
    parts: &mut Vec<Part>,
    flags: &mut OutputFlags,
) {
    match item.kind.as_str() {
        "message" => {
            for content in item.content.iter().flatten() {
                match content.kind.as_str() {
                    "output_text" => parts.push(Part::Text(content.text().to_string())),
                    "refusal" => {
                        flags.refusal = true;
                        parts.push(Part::Text(content.text().to_string()));
                    }
                    _ => {}
                }
            }
        }
        "function_call" => {
            let name = call_name(item, &ctx.tool_namespaces);
            let arguments = arguments_text(item.arguments.as_ref());
            if ctx.structured_output_tool.as_deref() == Some(name.as_str()) {
                parts.push(Part::Text(arguments));
                return;
            }
            flags.tool_call = true;
            parts.push(Part::ToolCall(ToolCall {
                id: call_id_of(item),
                name,
                arguments,
            }));
        }
        "reasoning" => {
            let (signature, redacted) = split_encrypted(item.encrypted_content.as_deref());
            let text = reasoning_text(item);
            if text.is_empty() && signature.is_none() && redacted.is_none() {
                return;
            }
            parts.push(Part::Thinking(Thinking {
                text,
                signature,
                redacted,
            }));
        }
        _ => {}
    }
}

/// A function call's tool name in canonical form: a namespaced call (a Responses upstream
/// given the client's namespace tools as they were) is flattened as the request's tools were.
pub(crate) fn call_name(item: &ResponsesOutputItem, namespaces: &ToolNamespaces) -> String {
    let name = item.name.as_deref().unwrap_or_default();
    match item.namespace.as_deref().filter(|n| !n.is_empty()) {
        Some(namespace) => namespaces.flat(namespace, name),
        None => name.to_string(),
    }
}

/// A function call's id: `call_id` (what tool outputs refer to), else the item id.
pub(crate) fn call_id_of(item: &ResponsesOutputItem) -> String {
    item.call_id
        .clone()
        .filter(|c| !c.is_empty())
        .or_else(|| item.id.clone())
        .unwrap_or_else(|| new_id("call_"))
}

/// Function-call arguments as JSON text (an object, as some servers send, is serialised).
pub(crate) fn arguments_text(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A reasoning item's text: its summaries joined by a blank line, else its raw reasoning text.
pub(crate) fn reasoning_text(item: &ResponsesOutputItem) -> String {
    let join = |texts: Vec<&str>| {
        texts
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")
    };
    let summary = join(
        item.summary
            .iter()
            .flatten()
            .map(|s| s.text.as_str())
            .collect(),
    );
    if !summary.is_empty() {
        return summary;
    }
    join(item.content.iter().flatten().map(|c| c.text()).collect())
}

/// The canonical stop reason of a final response.
pub(crate) fn stop_reason(
    status: Option<&str>,
    incomplete: Option<&ResponsesIncompleteDetails>,
    flags: OutputFlags,
) -> StopReason {
    if status == Some("incomplete") {
        return match incomplete.and_then(|d| d.reason.as_deref()) {
            Some("max_output_tokens") | None => StopReason::MaxTokens,
            Some("content_filter") => StopReason::ContentFilter,
            Some(other) => StopReason::Other(other.to_string()),
        };
    }
    if flags.tool_call {
        StopReason::ToolUse
    } else if flags.refusal {
        StopReason::ContentFilter
    } else {
        StopReason::EndTurn
    }
}

pub(crate) fn usage_from_wire(u: &ResponsesUsage) -> Usage {
    Usage {
        input: u.input_tokens,
        output: u.output_tokens,
        cached_input: u
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens),
        cache_creation_input: u
            .input_tokens_details
            .as_ref()
            .and_then(|d| d.cache_write_tokens),
        reasoning: u
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
    }
}

/// The canonical error of a `failed` response (or a stream `error` event).
pub(crate) fn failed_error(error: Option<&ResponsesError>) -> CanonicalError {
    let (code, message) = match error {
        Some(e) => (e.code.as_deref(), e.message.as_str()),
        None => (None, ""),
    };
    let (kind, static_code) = match code {
        Some("rate_limit_exceeded") => (ErrorKind::RateLimited, Some("rate_limit_exceeded")),
        Some("server_error") => (ErrorKind::BadGateway, Some("server_error")),
        Some("vector_store_timeout") => (ErrorKind::Timeout, None),
        Some("context_length_exceeded") => {
            (ErrorKind::InvalidRequest, Some("context_length_exceeded"))
        }
        Some("invalid_prompt") => (ErrorKind::InvalidRequest, Some("invalid_prompt")),
        Some(c)
            if c.starts_with("invalid_") || c.starts_with("image_") || c.starts_with("empty_") =>
        {
            (ErrorKind::InvalidRequest, None)
        }
        _ => (ErrorKind::BadGateway, None),
    };
    let mut text = if message.is_empty() {
        "the upstream response failed".to_string()
    } else {
        message.to_string()
    };
    if let Some(c) = code.filter(|c| static_code.is_none() && !c.is_empty()) {
        text.push_str(&format!(" ({c})"));
    }
    let mut err = CanonicalError::new(kind, text);
    err.code = static_code;
    err
}

// =============================================================================================
// Encode

/// Encodes a canonical response as the `response` object a Responses client expects.
pub fn encode_response(resp: &ChatResponse, ctx: &ResponseContext) -> Vec<u8> {
    let output = output_items(&resp.parts, &ctx.tool_namespaces);
    let (status, incomplete) = status_of(&resp.stop);
    let model = if ctx.client_model.is_empty() {
        resp.model.as_str()
    } else {
        ctx.client_model.as_str()
    };
    let created = if resp.created == 0 {
        now_unix()
    } else {
        resp.created
    };
    let object = response_object(
        &with_prefix("resp_", &resp.id),
        created,
        model,
        status,
        output,
        Some(usage_to_wire(&resp.usage)),
        incomplete,
        None,
    );
    serde_json::to_vec(&object).unwrap_or_default()
}

/// The final status (and incomplete reason) for a stop reason.
pub(crate) fn status_of(stop: &StopReason) -> (&'static str, Option<&'static str>) {
    match stop {
        StopReason::MaxTokens => ("incomplete", Some("max_output_tokens")),
        StopReason::ContentFilter => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// The `response` object with the fields the API (and the SDKs' `Response` model) carries.
/// Request settings bitrouter does not see here are reported at their defaults.
#[allow(clippy::too_many_arguments)]
pub(crate) fn response_object(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    output: Vec<ResponsesOutputItem>,
    usage: Option<ResponsesUsage>,
    incomplete: Option<&str>,
    error: Option<ResponsesError>,
) -> ResponsesResponse {
    ResponsesResponse {
        id: id.to_string(),
        object: "response".to_string(),
        created_at: created,
        status: Some(status.to_string()),
        background: Some(false),
        completed_at: (status == "completed").then(|| now_unix().max(created)),
        error,
        incomplete_details: incomplete.map(|r| ResponsesIncompleteDetails {
            reason: Some(r.to_string()),
        }),
        instructions: None,
        max_output_tokens: None,
        max_tool_calls: None,
        model: model.to_string(),
        output,
        parallel_tool_calls: true,
        previous_response_id: None,
        prompt_cache_key: None,
        reasoning: Some(ResponsesReasoningConfig::default()),
        safety_identifier: None,
        service_tier: Some("default".to_string()),
        store: Some(false),
        temperature: None,
        text: Some(ResponsesTextConfig {
            format: Some(ResponsesTextFormat {
                kind: "text".to_string(),
                ..ResponsesTextFormat::default()
            }),
            verbosity: None,
        }),
        tool_choice: json!("auto"),
        tools: Vec::new(),
        top_logprobs: None,
        top_p: None,
        truncation: Some("disabled".to_string()),
        usage,
        user: None,
        metadata: Some(json!({})),
    }
}

pub(crate) fn usage_to_wire(u: &Usage) -> ResponsesUsage {
    ResponsesUsage {
        input_tokens: u.input,
        input_tokens_details: Some(ResponsesInputTokensDetails {
            cached_tokens: Some(u.cached_input.unwrap_or(0)),
            cache_write_tokens: Some(u.cache_creation_input.unwrap_or(0)),
        }),
        output_tokens: u.output,
        output_tokens_details: Some(ResponsesOutputTokensDetails {
            reasoning_tokens: Some(u.reasoning.unwrap_or(0)),
        }),
        total_tokens: u.total(),
    }
}

/// Canonical parts -> output items: consecutive text parts share one message item; tool calls
/// become `function_call` items and thinking `reasoning` items. (Images and tool results have
/// no place in Responses output and are left out.)
fn output_items(parts: &[Part], namespaces: &ToolNamespaces) -> Vec<ResponsesOutputItem> {
    let mut items: Vec<ResponsesOutputItem> = Vec::new();
    let mut texts: Vec<ResponsesOutputContent> = Vec::new();
    let flush = |texts: &mut Vec<ResponsesOutputContent>, items: &mut Vec<ResponsesOutputItem>| {
        if !texts.is_empty() {
            items.push(message_item(
                &new_id("msg_"),
                "completed",
                std::mem::take(texts),
            ));
        }
    };
    for part in parts {
        match part {
            Part::Text(text) => texts.push(ResponsesOutputContent::output_text(text)),
            Part::ToolCall(call) => {
                flush(&mut texts, &mut items);
                items.push(function_call_item(
                    &new_id("fc_"),
                    "completed",
                    &call.id,
                    &call.name,
                    &call.arguments,
                    namespaces,
                ));
            }
            Part::Thinking(t) => {
                flush(&mut texts, &mut items);
                items.push(reasoning_item(
                    &new_id("rs_"),
                    &t.text,
                    join_encrypted(t.signature.as_deref(), t.redacted.as_deref()),
                ));
            }
            Part::Image(_) | Part::ToolResult(_) => {}
        }
    }
    flush(&mut texts, &mut items);
    items
}

pub(crate) fn message_item(
    id: &str,
    status: &str,
    content: Vec<ResponsesOutputContent>,
) -> ResponsesOutputItem {
    ResponsesOutputItem {
        id: Some(id.to_string()),
        kind: "message".to_string(),
        status: Some(status.to_string()),
        role: Some("assistant".to_string()),
        content: Some(content),
        ..ResponsesOutputItem::default()
    }
}

/// A `function_call` item. A call to a namespace member is named as the client declared it,
/// by `namespace` and short `name` (the client dispatches on both); other calls carry no
/// `namespace` key.
pub(crate) fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
    namespaces: &ToolNamespaces,
) -> ResponsesOutputItem {
    let (namespace, name) = client_name(name, namespaces);
    ResponsesOutputItem {
        id: Some(id.to_string()),
        kind: "function_call".to_string(),
        status: Some(status.to_string()),
        arguments: Some(Value::String(arguments.to_string())),
        call_id: Some(if call_id.is_empty() {
            new_id("call_")
        } else {
            call_id.to_string()
        }),
        namespace: namespace.map(str::to_string),
        name: Some(name.to_string()),
        ..ResponsesOutputItem::default()
    }
}

/// (namespace, short name) of a canonical tool name, as a Responses client declared it.
pub(crate) fn client_name<'a>(
    name: &'a str,
    namespaces: &'a ToolNamespaces,
) -> (Option<&'a str>, &'a str) {
    match namespaces.member(name) {
        Some(t) => (Some(t.namespace.as_str()), t.name.as_str()),
        None => (None, name),
    }
}

pub(crate) fn reasoning_item(
    id: &str,
    text: &str,
    encrypted_content: Option<String>,
) -> ResponsesOutputItem {
    ResponsesOutputItem {
        id: Some(id.to_string()),
        kind: "reasoning".to_string(),
        summary: Some(if text.is_empty() {
            Vec::new()
        } else {
            vec![ResponsesText::summary(text)]
        }),
        encrypted_content,
        ..ResponsesOutputItem::default()
    }
}
