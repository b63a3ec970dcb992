//! OpenAI's endpoints besides chat, in their real wire formats (as vLLM, llama.cpp and OpenAI
//! answer them): `*/embeddings`, `*/completions` (JSON and SSE), `*/rerank` (vLLM / Cohere
//! shape), `*/moderations`, `*/images/generations` (`b64_json`), `*/audio/speech` (binary audio,
//! sent in several chunks); and Gemini's `:batchEmbedContents` / `:embedContent`.
//!
//! Embedding vectors are derived from the text (a hash per dimension), so the same input gives
//! the same vector through any route, and tests can compare what came back through the router
//! with [`crate::embedding_of`].

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::protocol::{google_error, openai_error, Reply, EVENT_STREAM, GOOGLE_JSON};
use crate::sse;
use crate::util::{new_id, unix_now, words};

/// Dimensions of a vector when the request does not ask for a number.
pub const DEFAULT_DIMENSIONS: usize = 8;

/// The mock's embedding of `text`: `dims` values in [-1, 1), derived from an FNV-1a hash.
pub fn embedding_of(text: &str, dims: usize) -> Vec<f32> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..dims)
        .map(|i| {
            let mixed = (hash ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .wrapping_mul(0xff51_afd7_ed55_8ccd);
            ((mixed >> 40) % 2000) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn invalid(message: &str, param: Option<&str>) -> Reply {
    openai_error(400, message, "invalid_request_error", param, None)
}

fn model_of(req: &Value) -> String {
    req.get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// `POST */embeddings`: `input` a string, an array of strings, or token arrays.
pub(crate) fn embeddings(req: &Value) -> Reply {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => {
            if items.iter().all(Value::is_number) {
                // One token array.
                vec![Value::Array(items.clone()).to_string()]
            } else {
                items
                    .iter()
                    .map(|i| match i {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            }
        }
        _ => return invalid("'input' is a required property", Some("input")),
    };
    let dims = req
        .get("dimensions")
        .and_then(Value::as_u64)
        .map_or(DEFAULT_DIMENSIONS, |d| d.clamp(1, 4096) as usize);
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let mut tokens = 0;
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, text)| {
            tokens += words(text).max(1);
            let vector = embedding_of(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    Reply::json(
        200,
        &json!({
            "object": "list",
            "data": data,
            "model": model_of(req),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }),
    )
}

/// `POST */completions` (legacy): `mock completion: <prompt>`, JSON or SSE.
pub(crate) fn completions(req: &Value) -> Reply {
    let prompt = match req.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" "),
        _ => return invalid("'prompt' is a required property", Some("prompt")),
    };
    let text = format!("mock completion: {prompt}");
    let prompt_tokens = words(&prompt).max(1);
    let completion_tokens = words(&text);
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = new_id("cmpl-", 24);
    let created = unix_now();
    let model = model_of(req);
    if req.get("stream").and_then(Value::as_bool) != Some(true) {
        return Reply::json(
            200,
            &json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": "stop"}],
                "usage": usage,
            }),
        );
    }
    let chunk = |text: &str, finish: Value| {
        sse::data(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
        }))
    };
    let mut chunks: Vec<Bytes> = text
        .split_inclusive(' ')
        .map(|piece| chunk(piece, Value::Null))
        .collect();
    chunks.push(chunk("", json!("stop")));
    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        chunks.push(sse::data(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [], "usage": usage,
        })));
    }
    chunks.push(Bytes::from_static(sse::DONE));
    Reply::events(EVENT_STREAM, chunks)
}

/// `POST */rerank` (vLLM / Jina / Cohere v2 shape): documents scored by the query words they
/// share, best first, `top_n` kept.
pub(crate) fn rerank(req: &Value) -> Reply {
    let Some(query) = req.get("query").and_then(Value::as_str) else {
        return invalid("'query' is a required property", Some("query"));
    };
    let Some(documents) = req.get("documents").and_then(Value::as_array) else {
        return invalid("'documents' is a required property", Some("documents"));
    };
    let query_words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    let mut results: Vec<(usize, String, f64)> = documents
        .iter()
        .enumerate()
        .map(|(index, doc)| {
            let text = match doc {
                Value::String(s) => s.clone(),
                other => other
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            };
            let shared = text
                .split_whitespace()
                .filter(|w| query_words.contains(&w.to_lowercase()))
                .count();
            let score = shared as f64 / (1.0 + shared as f64);
            (index, text, score)
        })
        .collect();
    results.sort_by(|a, b| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)));
    if let Some(n) = req.get("top_n").and_then(Value::as_u64) {
        results.truncate(n as usize);
    }
    let tokens: usize = words(query) + documents.len();
    Reply::json(
        200,
        &json!({
            "id": new_id("rerank-", 24),
            "model": model_of(req),
            "usage": {"total_tokens": tokens},
            "results": results.iter().map(|(index, text, score)| json!({
                "index": index, "document": {"text": text}, "relevance_score": score,
            })).collect::<Vec<_>>(),
        }),
    )
}

/// `POST */moderations`: flagged when an input contains `[[flag]]`.
pub(crate) fn moderations(req: &Value) -> Reply {
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        _ => return invalid("'input' is a required property", Some("input")),
    };
    let results: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let flagged = text.contains("[[flag]]");
            let score = if flagged { 0.99 } else { 0.01 };
            json!({
                "flagged": flagged,
                "categories": {"harassment": flagged, "violence": false},
                "category_scores": {"harassment": score, "violence": 0.0},
                "category_applied_input_types": {"harassment": ["text"], "violence": ["text"]},
            })
        })
        .collect();
    Reply::json(
        200,
        &json!({"id": new_id("modr-", 24), "model": model_of(req), "results": results}),
    )
}

/// `POST */images/generations`: `n` images, each the bytes `mock image: <prompt>` in base64.
pub(crate) fn images(req: &Value) -> Reply {
    let Some(prompt) = req.get("prompt").and_then(Value::as_str) else {
        return invalid("'prompt' is a required property", Some("prompt"));
    };
    let n = req
        .get("n")
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .clamp(1, 10);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("mock image: {prompt}"));
    let data: Vec<Value> = (0..n)
        .map(|_| json!({"b64_json": b64, "revised_prompt": prompt}))
        .collect();
    Reply::json(200, &json!({"created": unix_now(), "data": data}))
}

/// The audio the mock "speaks" for `input`: a recognizable header, then the input repeated to
/// 256 times its length (at least 64 KiB), so the answer takes several chunks.
pub fn speech_bytes(input: &str) -> Vec<u8> {
    let mut out = format!("MOCKAUDIO {input}\n").into_bytes();
    let target = (input.len() * 256).max(64 * 1024);
    while out.len() < target {
        out.extend_from_slice(input.as_bytes());
        out.push(b' ');
    }
    out
}

/// `POST */audio/speech`: binary audio ([`speech_bytes`]) in 16 KiB chunks.
pub(crate) fn speech(req: &Value) -> Reply {
    let Some(input) = req.get("input").and_then(Value::as_str) else {
        return invalid("'input' is a required property", Some("input"));
    };
    let content_type = match req.get("response_format").and_then(Value::as_str) {
        Some("wav") => "audio/wav",
        Some("opus") => "audio/ogg",
        Some("pcm") => "audio/pcm",
        _ => "audio/mpeg",
    };
    let bytes = speech_bytes(input);
    let chunks = bytes
        .chunks(16 * 1024)
        .map(Bytes::copy_from_slice)
        .collect();
    let mut reply = Reply::events(content_type, chunks);
    reply.headers.clear();
    reply
}

/// Gemini `:batchEmbedContents` (`batch`) or `:embedContent`, checked as strictly as the real
/// API: every request names `models/<the path's model>` and has text parts.
pub(crate) fn gemini_embed(model: &str, batch: bool, req: &Value) -> Reply {
    let one = |r: &Value| -> Result<Value, Reply> {
        if batch {
            let named = r.get("model").and_then(Value::as_str).unwrap_or_default();
            if named != format!("models/{model}") {
                return Err(google_error(
                    400,
                    &format!("Model name in the request ({named}) does not match the model in the URL (models/{model})."),
                ));
            }
        }
        let parts = r
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                google_error(
                    400,
                    "* BatchEmbedContentsRequest.requests[0].content: contents must not be empty",
                )
            })?;
        let text: String = parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("");
        let dims = r
            .get("outputDimensionality")
            .and_then(Value::as_u64)
            .map_or(DEFAULT_DIMENSIONS, |d| d.clamp(1, 3072) as usize);
        Ok(json!({"values": embedding_of(&text, dims)}))
    };
    let answer = if batch {
        let Some(requests) = req.get("requests").and_then(Value::as_array) else {
            return google_error(400, "Invalid JSON payload: `requests` is required.");
        };
        match requests.iter().map(one).collect::<Result<Vec<_>, _>>() {
            Ok(embeddings) => json!({"embeddings": embeddings}),
            Err(reply) => return reply,
        }
    } else {
        match one(req) {
            Ok(embedding) => json!({"embedding": embedding}),
            Err(reply) => return reply,
        }
    };
    Reply::json(200, &answer).content_type(GOOGLE_JSON)
}
