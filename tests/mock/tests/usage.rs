//! The `[[usage …]]` marker: every protocol reports the marker's numbers in its provider's
//! convention, whole and streamed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

const MARKER: &str = "[[usage in=100 cache_read=30 cache_write=20 out=50 reasoning=10]]";

fn base() -> String {
    mock().base_url()
}

/// The JSON of every SSE event (but `[DONE]`), or of every element of a JSON-array stream.
fn events_json(body: &str) -> Vec<Value> {
    if body.trim_start().starts_with('[') {
        let v: Value = serde_json::from_str(body).unwrap();
        return v.as_array().unwrap().clone();
    }
    parse_sse(body)
        .into_iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| e.json())
        .collect()
}

#[tokio::test]
async fn chat_reports_marker_usage() {
    let t = tag("usage-chat");
    let prompt = format!("{t} {MARKER}");
    let url = format!("{}/v1/chat/completions", base());
    let req = json!({"model": "m", "messages": [{"role": "user", "content": prompt}]});
    let (status, _, body) = post(&url, &[OPENAI_AUTH], &req).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // OpenAI: prompt_tokens includes cached; no cache-write field (cache_write not reported).
    let want = json!({"prompt_tokens": 130, "completion_tokens": 50, "total_tokens": 180,
        "prompt_tokens_details": {"cached_tokens": 30, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 10, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    assert_eq!(v["usage"], want);
    assert_eq!(
        v["choices"][0]["message"]["content"],
        format!("mock reply: {prompt}")
    );

    // Streamed: usage only when asked for, on a last chunk with no choices.
    let mut stream_req = req.clone();
    stream_req["stream"] = json!(true);
    let (_, _, body) = post(&url, &[OPENAI_AUTH], &stream_req).await;
    assert!(!body.contains("\"usage\""), "{body}");
    stream_req["stream_options"] = json!({"include_usage": true});
    let (_, _, body) = post(&url, &[OPENAI_AUTH], &stream_req).await;
    let events = events_json(&body);
    let last = events.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert_eq!(last["usage"], want);
}

#[tokio::test]
async fn responses_reports_marker_usage() {
    let t = tag("usage-resp");
    let url = format!("{}/v1/responses", base());
    let req = json!({"model": "m", "input": format!("{t} {MARKER}")});
    let want = json!({"input_tokens": 150,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20},
        "output_tokens": 50, "output_tokens_details": {"reasoning_tokens": 10},
        "total_tokens": 200});
    let (status, _, body) = post(&url, &[OPENAI_AUTH], &req).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usage"], want);

    let mut stream_req = req.clone();
    stream_req["stream"] = json!(true);
    let (_, _, body) = post(&url, &[OPENAI_AUTH], &stream_req).await;
    let events = events_json(&body);
    let done = events
        .iter()
        .find(|e| e["type"] == "response.completed")
        .unwrap();
    assert_eq!(done["response"]["usage"], want);
}

#[tokio::test]
async fn anthropic_reports_marker_usage() {
    let t = tag("usage-anth");
    let url = format!("{}/v1/messages", base());
    let req = json!({"model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": format!("{t} {MARKER}")}]});
    let (status, _, body) = post(&url, &ANTHROPIC_AUTH, &req).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    // Anthropic: input_tokens excludes cache reads and writes.
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 100, "cache_creation_input_tokens": 20,
            "cache_read_input_tokens": 30, "output_tokens": 50})
    );

    let mut stream_req = req.clone();
    stream_req["stream"] = json!(true);
    let (_, _, body) = post(&url, &ANTHROPIC_AUTH, &stream_req).await;
    let events = events_json(&body);
    let start = events
        .iter()
        .find(|e| e["type"] == "message_start")
        .unwrap();
    assert_eq!(start["message"]["usage"]["input_tokens"], 100);
    assert_eq!(start["message"]["usage"]["cache_read_input_tokens"], 30);
    assert_eq!(start["message"]["usage"]["cache_creation_input_tokens"], 20);
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["usage"]["output_tokens"], 50);
}

#[tokio::test]
async fn gemini_reports_marker_usage() {
    let t = tag("usage-gem");
    let req = json!({"contents": [{"role": "user", "parts": [{"text": format!("{t} {MARKER}")}]}]});
    // Gemini: promptTokenCount includes cached; candidatesTokenCount excludes thoughts; no
    // cache-write field.
    let want = json!({"promptTokenCount": 130, "candidatesTokenCount": 40,
        "totalTokenCount": 180, "cachedContentTokenCount": 30, "thoughtsTokenCount": 10});
    let url = format!("{}/v1beta/models/m:generateContent", base());
    let (status, _, body) = post(&url, &[GOOGLE_AUTH], &req).await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["usageMetadata"], want);
    for query in ["?alt=sse", ""] {
        let url = format!("{}/v1beta/models/m:streamGenerateContent{query}", base());
        let (status, _, body) = post(&url, &[GOOGLE_AUTH], &req).await;
        assert_eq!(status, 200, "{body}");
        let events = events_json(&body);
        assert_eq!(events.last().unwrap()["usageMetadata"], want, "{query}");
    }
}

/// Fields the marker leaves out keep the estimate (in, out) or 0 (the rest).
#[tokio::test]
async fn marker_subset_keeps_the_estimate() {
    let url = format!("{}/v1/messages", base());
    let req = json!({"model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": "one two [[usage cache_read=7]]"}]});
    let (_, _, body) = post(&url, &ANTHROPIC_AUTH, &req).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    // 4 words in (the marker is two); the reply "mock reply: one two [[usage cache_read=7]]" is 6.
    assert_eq!(
        v["usage"],
        json!({"input_tokens": 4, "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 7, "output_tokens": 6})
    );
}
