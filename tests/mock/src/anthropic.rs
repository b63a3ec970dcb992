//! Anthropic Messages: `POST */messages` (JSON and named SSE events) and
//! `POST */messages/count_tokens`.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::protocol::{anthropic_error, header, Reply, EVENT_STREAM};
use crate::reply::{generate, join_texts, pieces, split_chars, Output, Prompt, Tokens, ToolDecl};
use crate::sse;
use crate::util::new_id;

/// The real API rejects requests without `anthropic-version`.
pub(crate) fn check_version(headers: &HeaderMap) -> Result<(), Reply> {
    match header(headers, "anthropic-version") {
        Some(_) => Ok(()),
        None => Err(anthropic_error(
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        )),
    }
}

/// Text of `content` / `system`: a string, or the text of its `text` blocks.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(blocks)) => join_texts(
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Value::as_str)),
        ),
        _ => String::new(),
    }
}

fn tool_results(content: Option<&Value>) -> Vec<String> {
    content
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| text_of(b.get("content")))
        .collect()
}

/// Extracts the protocol-neutral prompt from a Messages request.
pub(crate) fn prompt(req: &Value) -> Prompt {
    let mut prompt = Prompt::default();
    prompt.count(&text_of(req.get("system")));
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for message in messages {
        let text = text_of(message.get("content"));
        prompt.count(&text);
        for result in tool_results(message.get("content")) {
            prompt.count(&result);
        }
        if message.get("role").and_then(Value::as_str) == Some("user") {
            prompt.last_user_text = text;
        }
    }
    if let Some(last) = messages
        .last()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("user"))
    {
        prompt.tool_results = tool_results(last.get("content"));
    }
    for tool in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = tool.get("name").and_then(Value::as_str) {
            prompt.tools.push(ToolDecl {
                name: name.to_owned(),
                parameters: tool.get("input_schema").cloned().unwrap_or(Value::Null),
            });
        }
    }
    match req.get("tool_choice") {
        Some(c) if c.get("type").and_then(Value::as_str) == Some("tool") => {
            prompt.force(c.get("name").and_then(Value::as_str));
        }
        Some(c) if c.get("type").and_then(Value::as_str) == Some("any") => prompt.force(Some("")),
        _ => {}
    }
    prompt
}

fn validate(req: &Value) -> Result<&str, Reply> {
    let field_required = |field: &str| {
        anthropic_error(
            400,
            "invalid_request_error",
            &format!("{field}: Field required"),
        )
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| field_required("model"))?;
    if !req.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(field_required("max_tokens"));
    }
    if !req.get("messages").is_some_and(Value::is_array) {
        return Err(field_required("messages"));
    }
    Ok(model)
}

/// `POST */messages/count_tokens`.
pub(crate) fn count_tokens(req: &Value) -> Reply {
    Reply::json(200, &json!({"input_tokens": prompt(req).input_tokens()}))
}

/// Handles a parsed Messages request.
pub(crate) fn handle(req: &Value, reply_override: Option<&str>) -> Reply {
    let model = match validate(req) {
        Ok(model) => model,
        Err(reply) => return reply,
    };
    let prompt = prompt(req);
    let output = generate(&prompt, reply_override);
    let id = new_id("msg_01", 22);
    // Anthropic's convention: `input_tokens` excludes cache reads and writes; thinking is part
    // of `output_tokens` (there is no separate reasoning count).
    let tokens = Tokens::of(&prompt, &output);
    let output_tokens = tokens.output;
    let usage = |output_tokens: u64| {
        json!({
            "input_tokens": tokens.input,
            "cache_creation_input_tokens": tokens.cache_write,
            "cache_read_input_tokens": tokens.cache_read,
            "output_tokens": output_tokens
        })
    };
    let tool_ids: Vec<String> = match &output {
        Output::ToolCalls(calls) => calls
            .iter()
            .map(|c| format!("toolu_01{}", &c.id[..22.min(c.id.len())]))
            .collect(),
        Output::Text(_) => Vec::new(),
    };
    let stop_reason = match &output {
        Output::Text(_) => "end_turn",
        Output::ToolCalls(_) => "tool_use",
    };
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let content: Vec<Value> = match &output {
            Output::Text(text) => vec![json!({"type": "text", "text": text})],
            Output::ToolCalls(calls) => calls
                .iter()
                .zip(&tool_ids)
                .map(|(c, id)| json!({"type": "tool_use", "id": id, "name": c.name, "input": c.arguments}))
                .collect(),
        };
        return Reply::json(
            200,
            &json!({
                "id": id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": content,
                "stop_reason": stop_reason,
                "stop_sequence": null,
                "usage": usage(output_tokens)
            }),
        );
    }
    let mut events: Vec<Bytes> = Vec::new();
    let mut emit = |kind: &str, data: Value| events.push(sse::event(kind, &data));
    emit(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": usage(1)
        }}),
    );
    let ping = json!({"type": "ping"});
    match &output {
        Output::Text(text) => {
            emit(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            );
            emit("ping", ping);
            for piece in pieces(text) {
                emit(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
                );
            }
            emit(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            );
        }
        Output::ToolCalls(calls) => {
            for (index, (call, id)) in calls.iter().zip(&tool_ids).enumerate() {
                emit(
                    "content_block_start",
                    json!({"type": "content_block_start", "index": index, "content_block": {
                        "type": "tool_use", "id": id, "name": call.name, "input": {}
                    }}),
                );
                if index == 0 {
                    emit("ping", ping.clone());
                }
                let args = call.arguments_json();
                // The real stream opens every tool_use block with an empty partial_json.
                let mut parts = vec![String::new()];
                parts.extend(split_chars(&args, (args.len() / 8).max(3)));
                for part in parts {
                    emit(
                        "content_block_delta",
                        json!({"type": "content_block_delta", "index": index, "delta": {
                            "type": "input_json_delta", "partial_json": part
                        }}),
                    );
                }
                emit(
                    "content_block_stop",
                    json!({"type": "content_block_stop", "index": index}),
                );
            }
        }
    }
    emit(
        "message_delta",
        json!({"type": "message_delta",
               "delta": {"stop_reason": stop_reason, "stop_sequence": null},
               "usage": {"output_tokens": output_tokens}}),
    );
    emit("message_stop", json!({"type": "message_stop"}));
    Reply::events(EVENT_STREAM, events)
}
