//! Google Gemini: `POST */models/{model}:generateContent` and `:streamGenerateContent`
//! (`?alt=sse`: `data:` events with CRLF line endings, no terminator; otherwise a JSON array
//! streamed element by element, as the real API does).

use bytes::Bytes;
use serde_json::{json, Map, Value};

use crate::protocol::{google_error, Reply, GOOGLE_EVENT_STREAM, GOOGLE_JSON};
use crate::reply::{
    generate, join_texts, pieces, tool_result_text, Output, Prompt, Tokens, ToolDecl,
};
use crate::sse;
use crate::util::new_id;

/// Which Gemini method was called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// `:generateContent` — one JSON object.
    Generate,
    /// `:streamGenerateContent?alt=sse` — SSE.
    StreamSse,
    /// `:streamGenerateContent` without `alt=sse` — a JSON array, streamed.
    StreamArray,
}

fn parts(content: &Value) -> &[Value] {
    content
        .get("parts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn text_of(content: &Value) -> String {
    join_texts(
        parts(content)
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str)),
    )
}

fn function_responses(content: &Value) -> Vec<String> {
    parts(content)
        .iter()
        .filter_map(|p| p.get("functionResponse"))
        .map(|r| tool_result_text(r.get("response").unwrap_or(&Value::Null)))
        .collect()
}

/// Extracts the protocol-neutral prompt from a GenerateContentRequest.
pub(crate) fn prompt(req: &Value) -> Prompt {
    let mut prompt = Prompt::default();
    if let Some(system) = req.get("systemInstruction") {
        prompt.count(&text_of(system));
    }
    let contents = req
        .get("contents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for content in contents {
        let text = text_of(content);
        prompt.count(&text);
        for result in function_responses(content) {
            prompt.count(&result);
        }
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        if role == "user" && parts(content).iter().any(|p| p.get("text").is_some()) {
            prompt.last_user_text = text;
        }
    }
    if let Some(last) = contents.last() {
        prompt.tool_results = function_responses(last);
    }
    for tool in req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for decl in tool
            .get("functionDeclarations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = decl.get("name").and_then(Value::as_str) {
                prompt.tools.push(ToolDecl {
                    name: name.to_owned(),
                    parameters: decl
                        .get("parameters")
                        .or_else(|| decl.get("parametersJsonSchema"))
                        .cloned()
                        .unwrap_or(Value::Null),
                });
            }
        }
    }
    let calling = req
        .pointer("/toolConfig/functionCallingConfig")
        .or_else(|| req.pointer("/tool_config/function_calling_config"));
    if let Some(cfg) = calling {
        if cfg.get("mode").and_then(Value::as_str) == Some("ANY") {
            let allowed = cfg
                .get("allowedFunctionNames")
                .or_else(|| cfg.get("allowed_function_names"))
                .and_then(|a| a.get(0))
                .and_then(Value::as_str);
            prompt.force(Some(allowed.unwrap_or("")));
        }
    }
    prompt
}

/// One GenerateContentResponse.
fn response(parts: Vec<Value>, finish: bool, usage: &Value, model: &str, id: &str) -> Value {
    let mut candidate = Map::new();
    candidate.insert("content".into(), json!({"parts": parts, "role": "model"}));
    if finish {
        candidate.insert("finishReason".into(), "STOP".into());
    }
    candidate.insert("index".into(), 0.into());
    json!({
        "candidates": [Value::Object(candidate)],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": id
    })
}

/// Handles a parsed request for `model` (already percent-decoded, without `models/`).
pub(crate) fn handle(
    model: &str,
    method: Method,
    req: &Value,
    reply_override: Option<&str>,
) -> Reply {
    if !req.get("contents").is_some_and(Value::is_array) {
        return google_error(
            400,
            "* GenerateContentRequest.contents: contents is not specified\n",
        );
    }
    let prompt = prompt(req);
    let output = generate(&prompt, reply_override);
    let id = new_id("", 22);
    // Gemini's convention: `promptTokenCount` includes cached tokens; `candidatesTokenCount`
    // excludes thoughts (`thoughtsTokenCount`). No cache-write field: `cache_write` is not
    // reported.
    let tokens = Tokens::of(&prompt, &output);
    let input = tokens.input + tokens.cache_read;
    let mut final_usage = json!({
        "promptTokenCount": input,
        "candidatesTokenCount": tokens.output - tokens.reasoning,
        "totalTokenCount": input + tokens.output
    });
    let mut partial_usage = json!({"promptTokenCount": input, "totalTokenCount": input});
    if tokens.cache_read > 0 {
        final_usage["cachedContentTokenCount"] = json!(tokens.cache_read);
        partial_usage["cachedContentTokenCount"] = json!(tokens.cache_read);
    }
    if tokens.reasoning > 0 {
        final_usage["thoughtsTokenCount"] = json!(tokens.reasoning);
    }
    let responses: Vec<Value> = match &output {
        Output::ToolCalls(calls) => {
            // Gemini delivers function calls whole, even when streaming.
            let parts = calls
                .iter()
                .map(|c| json!({"functionCall": {"name": c.name, "args": c.arguments}}))
                .collect();
            vec![response(parts, true, &final_usage, model, &id)]
        }
        Output::Text(text) if method == Method::Generate => vec![response(
            vec![json!({ "text": text })],
            true,
            &final_usage,
            model,
            &id,
        )],
        Output::Text(text) => {
            let pieces = pieces(text);
            let last = pieces.len().saturating_sub(1);
            pieces
                .into_iter()
                .enumerate()
                .map(|(i, piece)| {
                    let usage = if i == last {
                        &final_usage
                    } else {
                        &partial_usage
                    };
                    response(vec![json!({ "text": piece })], i == last, usage, model, &id)
                })
                .collect()
        }
    };
    match method {
        Method::Generate => {
            let body = responses.into_iter().next().unwrap_or(Value::Null);
            Reply::json(200, &body).content_type(GOOGLE_JSON)
        }
        Method::StreamSse => Reply::events(
            GOOGLE_EVENT_STREAM,
            responses.iter().map(sse::data_crlf).collect(),
        ),
        Method::StreamArray => {
            // `[{...}\n,\r\n{...}\n]`, each element pretty-printed, as the real API sends it.
            let mut chunks: Vec<Bytes> = Vec::with_capacity(responses.len() + 1);
            for (i, r) in responses.iter().enumerate() {
                let pretty = serde_json::to_string_pretty(r).unwrap_or_default();
                let sep = if i == 0 { "[" } else { "\n,\r\n" };
                chunks.push(Bytes::from(format!("{sep}{pretty}")));
            }
            chunks.push(Bytes::from_static(b"\n]"));
            Reply::events(GOOGLE_JSON, chunks)
        }
    }
}
