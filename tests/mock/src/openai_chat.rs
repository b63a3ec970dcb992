//! OpenAI Chat Completions: `POST */chat/completions`, JSON and SSE (`data:` chunks + `[DONE]`).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::protocol::{openai_error, Reply, EVENT_STREAM};
use crate::reply::{
    generate, join_texts, pieces, split_chars, Output, Prompt, Tokens, ToolCall, ToolDecl,
};
use crate::sse;
use crate::util::{new_id, unix_now};

/// `system_fingerprint` the mock reports.
pub(crate) const FINGERPRINT: &str = "fp_bitrouter_mock";

/// Text of a message `content`: a string, or the `text` of its parts.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => join_texts(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str)),
        ),
        _ => String::new(),
    }
}

fn role(message: &Value) -> &str {
    message.get("role").and_then(Value::as_str).unwrap_or("")
}

/// Extracts the protocol-neutral prompt from a Chat Completions request.
pub(crate) fn prompt(req: &Value) -> Prompt {
    let mut prompt = Prompt::default();
    let messages = req
        .get("messages")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for message in messages {
        let text = content_text(message.get("content"));
        prompt.count(&text);
        if role(message) == "user" {
            prompt.last_user_text = text;
        }
    }
    let mut results: Vec<String> = messages
        .iter()
        .rev()
        .take_while(|m| matches!(role(m), "tool" | "function"))
        .map(|m| content_text(m.get("content")))
        .collect();
    results.reverse();
    prompt.tool_results = results;
    for tool in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(function) = tool.get("function") {
            prompt.tools.push(decl(function));
        }
    }
    for function in req
        .get("functions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        prompt.tools.push(decl(function));
    }
    match req.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => prompt.force(Some("")),
        Some(c @ Value::Object(_)) => {
            prompt.force(c.pointer("/function/name").and_then(Value::as_str));
        }
        _ => {}
    }
    prompt
}

fn decl(function: &Value) -> ToolDecl {
    ToolDecl {
        name: function
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        parameters: function.get("parameters").cloned().unwrap_or(Value::Null),
    }
}

/// OpenAI's convention: `prompt_tokens` includes cached tokens, `completion_tokens` includes
/// reasoning. Chat has no cache-write field: `cache_write` is not reported.
fn usage(prompt: &Prompt, output: &Output) -> Value {
    let t = Tokens::of(prompt, output);
    let input = t.input + t.cache_read;
    json!({
        "prompt_tokens": input,
        "completion_tokens": t.output,
        "total_tokens": input + t.output,
        "prompt_tokens_details": {"cached_tokens": t.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": t.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0
        }
    })
}

fn call_json(call: &ToolCall) -> Value {
    json!({
        "id": format!("call_{}", call.id),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json()}
    })
}

/// Handles a parsed Chat Completions request.
pub(crate) fn handle(req: &Value, reply_override: Option<&str>) -> Reply {
    let Some(model) = req
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return openai_error(
            400,
            "you must provide a model parameter",
            "invalid_request_error",
            None,
            None,
        );
    };
    if !req.get("messages").is_some_and(Value::is_array) {
        return openai_error(
            400,
            "Missing required parameter: 'messages'.",
            "invalid_request_error",
            Some("messages"),
            Some("missing_required_parameter"),
        );
    }
    let prompt = prompt(req);
    let output = generate(&prompt, reply_override);
    let id = new_id("chatcmpl-", 29);
    let created = unix_now();
    let usage = usage(&prompt, &output);
    if req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let include_usage = req
            .pointer("/stream_options/include_usage")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let chunks = stream_chunks(
            &id,
            created,
            model,
            &output,
            include_usage.then_some(&usage),
        );
        return Reply::events(EVENT_STREAM, chunks);
    }
    let (message, finish) = match &output {
        Output::Text(text) => (
            json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
            "stop",
        ),
        Output::ToolCalls(calls) => (
            json!({
                "role": "assistant",
                "content": null,
                "tool_calls": calls.iter().map(call_json).collect::<Vec<_>>(),
                "refusal": null,
                "annotations": []
            }),
            "tool_calls",
        ),
    };
    Reply::json(
        200,
        &json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT
        }),
    )
}

/// The SSE chunks of a streamed completion: role chunk, content (or tool-call argument) deltas,
/// the finish chunk, the usage chunk when `usage` is given, `[DONE]`.
fn stream_chunks(
    id: &str,
    created: u64,
    model: &str,
    output: &Output,
    usage: Option<&Value>,
) -> Vec<Bytes> {
    let chunk = |delta: Value, finish: Value| -> Bytes {
        let mut chunk = Map::new();
        chunk.insert("id".into(), id.into());
        chunk.insert("object".into(), "chat.completion.chunk".into());
        chunk.insert("created".into(), created.into());
        chunk.insert("model".into(), model.into());
        chunk.insert("service_tier".into(), "default".into());
        chunk.insert("system_fingerprint".into(), FINGERPRINT.into());
        chunk.insert(
            "choices".into(),
            json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]),
        );
        if usage.is_some() {
            // With include_usage, every chunk carries `"usage": null` but the last.
            chunk.insert("usage".into(), Value::Null);
        }
        sse::data(&Value::Object(chunk))
    };
    let mut out = Vec::new();
    let finish = match output {
        Output::Text(text) => {
            out.push(chunk(
                json!({"role": "assistant", "content": "", "refusal": null}),
                Value::Null,
            ));
            for piece in pieces(text) {
                out.push(chunk(json!({"content": piece}), Value::Null));
            }
            "stop"
        }
        Output::ToolCalls(calls) => {
            for (index, call) in calls.iter().enumerate() {
                let head = json!([{
                    "index": index,
                    "id": format!("call_{}", call.id),
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""}
                }]);
                out.push(chunk(
                    if index == 0 {
                        json!({"role": "assistant", "content": null, "tool_calls": head, "refusal": null})
                    } else {
                        json!({ "tool_calls": head })
                    },
                    Value::Null,
                ));
                let args = call.arguments_json();
                let n = (args.len() / 8).max(3);
                for piece in split_chars(&args, n) {
                    out.push(chunk(
                        json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}),
                        Value::Null,
                    ));
                }
            }
            "tool_calls"
        }
    };
    out.push(chunk(json!({}), Value::from(finish)));
    if let Some(usage) = usage {
        out.push(sse::data(&json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
            "choices": [],
            "usage": usage
        })));
    }
    out.push(Bytes::from_static(sse::DONE));
    out
}
