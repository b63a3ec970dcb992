//! OpenAI Responses API: `POST */responses`, JSON and typed SSE events
//! (`event: <type>` + `data: {..., "type", "sequence_number"}`).

use bytes::Bytes;
use serde_json::{json, Value};

use crate::openai_chat::content_text;
use crate::protocol::{openai_error, Reply, EVENT_STREAM};
use crate::reply::{generate, pieces, split_chars, Output, Prompt, Tokens, ToolCall, ToolDecl};
use crate::sse;
use crate::util::{new_id, unix_now};

fn item_type(item: &Value) -> &str {
    match item.get("type").and_then(Value::as_str) {
        Some(t) => t,
        None if item.get("role").is_some() => "message",
        None => "",
    }
}

/// The text of a `function_call_output.output` (a string, or input_text parts).
fn output_text(output: Option<&Value>) -> String {
    match output {
        Some(Value::String(_)) | Some(Value::Array(_)) => content_text(output),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Extracts the protocol-neutral prompt from a Responses request.
pub(crate) fn prompt(req: &Value) -> Prompt {
    let mut prompt = Prompt::default();
    if let Some(instructions) = req.get("instructions").and_then(Value::as_str) {
        prompt.count(instructions);
    }
    match req.get("input") {
        Some(Value::String(text)) => {
            prompt.count(text);
            prompt.last_user_text = text.clone();
        }
        Some(Value::Array(items)) => {
            for item in items {
                match item_type(item) {
                    "message" => {
                        let text = content_text(item.get("content"));
                        prompt.count(&text);
                        if item.get("role").and_then(Value::as_str) == Some("user") {
                            prompt.last_user_text = text;
                        }
                    }
                    "function_call_output" => prompt.count(&output_text(item.get("output"))),
                    _ => {}
                }
            }
            let mut results: Vec<String> = items
                .iter()
                .rev()
                .take_while(|i| item_type(i) == "function_call_output")
                .map(|i| output_text(i.get("output")))
                .collect();
            results.reverse();
            prompt.tool_results = results;
        }
        _ => {}
    }
    for tool in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        // A `namespace` groups functions; the model sees (and the markers name) each member
        // by its flattened name, and calls come back as `namespace` + short `name`.
        if tool.get("type").and_then(Value::as_str) == Some("namespace") {
            for (flat, _, _, parameters) in namespace_members(tool) {
                prompt.tools.push(ToolDecl {
                    name: flat,
                    parameters,
                });
            }
            continue;
        }
        // Flat `{type:"function", name, parameters}`; tolerate the chat-style nesting too.
        let function = tool.get("function").unwrap_or(tool);
        if let Some(name) = function.get("name").and_then(Value::as_str) {
            prompt.tools.push(ToolDecl {
                name: name.to_owned(),
                parameters: function.get("parameters").cloned().unwrap_or(Value::Null),
            });
        }
    }
    match req.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => prompt.force(Some("")),
        Some(c @ Value::Object(_)) => prompt.force(c.get("name").and_then(Value::as_str)),
        _ => {}
    }
    prompt
}

/// OpenAI's convention: `input_tokens` includes cached tokens (and cache writes, reported in
/// `input_tokens_details.cache_write_tokens` when there are any, as newer API versions do);
/// `output_tokens` includes reasoning.
fn usage(prompt: &Prompt, output: &Output) -> Value {
    let t = Tokens::of(prompt, output);
    let input = t.input + t.cache_read + t.cache_write;
    let mut details = json!({"cached_tokens": t.cache_read});
    if t.cache_write > 0 {
        details["cache_write_tokens"] = json!(t.cache_write);
    }
    json!({
        "input_tokens": input,
        "input_tokens_details": details,
        "output_tokens": t.output,
        "output_tokens_details": {"reasoning_tokens": t.reasoning},
        "total_tokens": input + t.output
    })
}

/// The `response` object; request settings are echoed back like the real API does.
fn response_object(
    id: &str,
    created: u64,
    model: &str,
    status: &str,
    output: Vec<Value>,
    usage: Value,
    req: &Value,
) -> Value {
    let echo = |key: &str, default: Value| req.get(key).cloned().unwrap_or(default);
    json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": echo("instructions", Value::Null),
        "max_output_tokens": echo("max_output_tokens", Value::Null),
        "model": model,
        "output": output,
        "parallel_tool_calls": echo("parallel_tool_calls", Value::Bool(true)),
        "previous_response_id": echo("previous_response_id", Value::Null),
        "reasoning": echo("reasoning", json!({"effort": null, "summary": null})),
        "service_tier": "default",
        "store": echo("store", Value::Bool(true)),
        "temperature": echo("temperature", json!(1.0)),
        "text": echo("text", json!({"format": {"type": "text"}})),
        "tool_choice": echo("tool_choice", json!("auto")),
        "tools": echo("tools", json!([])),
        "top_p": echo("top_p", json!(1.0)),
        "truncation": echo("truncation", json!("disabled")),
        "usage": usage,
        "user": echo("user", Value::Null),
        "metadata": echo("metadata", json!({}))
    })
}

fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
    let content = match text {
        Some(text) => json!([{"type": "output_text", "annotations": [], "text": text}]),
        None => json!([]),
    };
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// The members of a `namespace` tool as (flattened name, namespace, name, parameters). The
/// flattened name follows Codex's convention: `mcp__server__` + `tool`, else `ns__tool`.
fn namespace_members(tool: &Value) -> Vec<(String, String, String, Value)> {
    let ns = tool.get("name").and_then(Value::as_str).unwrap_or_default();
    tool.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|member| {
            let name = member.get("name").and_then(Value::as_str)?;
            let flat = if ns.ends_with('_') {
                format!("{ns}{name}")
            } else {
                format!("{ns}__{name}")
            };
            let parameters = member.get("parameters").cloned().unwrap_or(Value::Null);
            Some((flat, ns.to_owned(), name.to_owned(), parameters))
        })
        .collect()
}

/// Every namespaced function of the request, flattened name -> (namespace, name).
fn namespaces(req: &Value) -> Vec<(String, String, String)> {
    req.get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("namespace"))
        .flat_map(namespace_members)
        .map(|(flat, ns, name, _)| (flat, ns, name))
        .collect()
}

fn function_item(
    call: &ToolCall,
    status: &str,
    arguments: &str,
    namespaces: &[(String, String, String)],
) -> Value {
    let mut item = json!({
        "id": format!("fc_{}", call.id),
        "type": "function_call",
        "status": status,
        "arguments": arguments,
        "call_id": format!("call_{}", call.id),
        "name": call.name
    });
    if let Some((_, ns, name)) = namespaces.iter().find(|(flat, _, _)| *flat == call.name) {
        item["namespace"] = json!(ns);
        item["name"] = json!(name);
    }
    item
}

/// Handles a parsed Responses request.
pub(crate) fn handle(req: &Value, reply_override: Option<&str>) -> Reply {
    let Some(model) = req
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
    else {
        return openai_error(
            400,
            "Missing required parameter: 'model'.",
            "invalid_request_error",
            Some("model"),
            Some("missing_required_parameter"),
        );
    };
    let prompt = prompt(req);
    let namespaces = namespaces(req);
    let output = generate(&prompt, reply_override);
    let id = new_id("resp_", 48);
    let msg_id = new_id("msg_", 48);
    let created = unix_now();
    let usage = usage(&prompt, &output);
    let items: Vec<Value> = match &output {
        Output::Text(text) => vec![message_item(&msg_id, "completed", Some(text))],
        Output::ToolCalls(calls) => calls
            .iter()
            .map(|c| function_item(c, "completed", &c.arguments_json(), &namespaces))
            .collect(),
    };
    let done = response_object(&id, created, model, "completed", items, usage, req);
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return Reply::json(200, &done);
    }
    let initial = response_object(
        &id,
        created,
        model,
        "in_progress",
        Vec::new(),
        Value::Null,
        req,
    );
    let mut events = Events::default();
    events.emit("response.created", json!({ "response": initial }));
    events.emit("response.in_progress", json!({ "response": initial }));
    match &output {
        Output::Text(text) => {
            let idx = json!({"item_id": msg_id, "output_index": 0, "content_index": 0});
            let with = |extra: Value| merge(&idx, extra);
            events.emit(
                "response.output_item.added",
                json!({"output_index": 0, "item": message_item(&msg_id, "in_progress", None)}),
            );
            events.emit(
                "response.content_part.added",
                with(json!({"part": {"type": "output_text", "annotations": [], "text": ""}})),
            );
            for piece in pieces(text) {
                events.emit(
                    "response.output_text.delta",
                    with(json!({"delta": piece, "logprobs": []})),
                );
            }
            events.emit(
                "response.output_text.done",
                with(json!({"text": text, "logprobs": []})),
            );
            events.emit(
                "response.content_part.done",
                with(json!({"part": {"type": "output_text", "annotations": [], "text": text}})),
            );
            events.emit(
                "response.output_item.done",
                json!({"output_index": 0, "item": message_item(&msg_id, "completed", Some(text))}),
            );
        }
        Output::ToolCalls(calls) => {
            for (index, call) in calls.iter().enumerate() {
                let args = call.arguments_json();
                let item_id = format!("fc_{}", call.id);
                events.emit(
                    "response.output_item.added",
                    json!({"output_index": index, "item": function_item(call, "in_progress", "", &namespaces)}),
                );
                for piece in split_chars(&args, (args.len() / 8).max(3)) {
                    events.emit(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item_id, "output_index": index, "delta": piece}),
                    );
                }
                events.emit(
                    "response.function_call_arguments.done",
                    json!({"item_id": item_id, "output_index": index, "name": function_item(call, "completed", &args, &namespaces)["name"], "arguments": args}),
                );
                events.emit(
                    "response.output_item.done",
                    json!({"output_index": index, "item": function_item(call, "completed", &args, &namespaces)}),
                );
            }
        }
    }
    events.emit("response.completed", json!({ "response": done }));
    Reply::events(EVENT_STREAM, events.chunks)
}

fn merge(base: &Value, extra: Value) -> Value {
    let mut out = base.clone();
    if let (Some(out), Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// Typed events with increasing `sequence_number`.
#[derive(Default)]
struct Events {
    chunks: Vec<Bytes>,
}

impl Events {
    fn emit(&mut self, kind: &str, mut data: Value) {
        if let Some(obj) = data.as_object_mut() {
            obj.insert("type".into(), kind.into());
            obj.insert("sequence_number".into(), self.chunks.len().into());
        }
        self.chunks.push(sse::event(kind, &data));
    }
}
