//! Anthropic Messages over a real socket.
// Test helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn url() -> String {
    format!("{}/v1/messages", mock().base_url())
}

#[tokio::test]
async fn non_stream() {
    let t = tag("anth-ns");
    let (status, headers, body) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "claude-rewritten", "max_tokens": 100, "system": "be brief",
                "messages": [{"role": "user", "content": [{"type": "text", "text": format!("hi {t}")}]}]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(headers.contains_key("request-id"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-rewritten");
    assert_eq!(
        v["content"],
        json!([{"type": "text", "text": format!("mock reply: hi {t}")}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(v["usage"]["input_tokens"], 4);
    assert_eq!(v["usage"]["output_tokens"], 4);
    let r = &mock().requests_containing(&t)[0];
    assert_eq!(r.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
}

#[tokio::test]
async fn stream() {
    let (status, headers, body) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "claude-s", "max_tokens": 100, "stream": true,
                "messages": [{"role": "user", "content": "tell me more"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = parse_sse(&body);
    let names: Vec<&str> = events.iter().map(|e| e.event.as_deref().unwrap()).collect();
    let deltas = names
        .iter()
        .filter(|n| **n == "content_block_delta")
        .count();
    assert!(deltas >= 3);
    let mut expected = vec!["message_start", "content_block_start", "ping"];
    expected.extend(std::iter::repeat_n("content_block_delta", deltas));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names, expected);
    for e in &events {
        assert_eq!(
            e.json()["type"],
            e.event.clone().unwrap(),
            "data.type matches event name"
        );
    }
    let start = events[0].json();
    assert_eq!(start["message"]["model"], "claude-s");
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["usage"]["input_tokens"], 3);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, "mock reply: tell me more");
    let delta = events[events.len() - 2].json();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 5);
}

#[tokio::test]
async fn tool_use_non_stream_stream_and_follow_up() {
    let tools = json!([{"name": "get_weather", "description": "w",
        "input_schema": {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}}, "required": ["location"]}}]);
    let (_, _, body) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "max_tokens": 50, "tools": tools,
                "messages": [{"role": "user", "content": "[[tool:get_weather]]"}]}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "get_weather");
    assert_eq!(block["input"], json!({"location": "mock"}));

    let (_, _, body) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "max_tokens": 50, "stream": true, "tools": tools,
                "messages": [{"role": "user", "content": "[[tool:get_weather {\"location\":\"Oslo\",\"days\":3}]]"}]}),
    )
    .await;
    let events = parse_sse(&body);
    let start = events
        .iter()
        .find(|e| e.event.as_deref() == Some("content_block_start"))
        .unwrap()
        .json();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "get_weather");
    assert_eq!(start["content_block"]["input"], json!({}));
    let parts: Vec<String> = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let d = e.json();
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert!(parts.len() >= 3);
    assert_eq!(
        serde_json::from_str::<Value>(&parts.concat()).unwrap(),
        json!({"location": "Oslo", "days": 3})
    );
    assert_eq!(
        events[events.len() - 2].json()["delta"]["stop_reason"],
        "tool_use"
    );

    let (_, _, body) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "max_tokens": 50, "messages": [
            {"role": "user", "content": "[[tool:get_weather]]"},
            {"role": "assistant", "content": [block]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                                          "content": [{"type": "text", "text": "snowy"}]}]}
        ]}),
    )
    .await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["content"][0]["text"], "mock reply: tool result: snowy");
    assert_eq!(v["stop_reason"], "end_turn");
}

#[tokio::test]
async fn errors_in_anthropic_format() {
    let body = json!({"model": "c", "max_tokens": 5, "messages": []});
    // Missing x-api-key.
    let (status, _, text) = post(&url(), &[("anthropic-version", "2023-06-01")], &body).await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "authentication_error");
    // Bearer is not enough for Anthropic.
    let (status, _, _) = post(
        &url(),
        &[
            ("authorization", "Bearer k"),
            ("anthropic-version", "2023-06-01"),
        ],
        &body,
    )
    .await;
    assert_eq!(status, 401);
    // Missing anthropic-version.
    let (status, _, text) = post(&url(), &[("x-api-key", "k")], &body).await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
    // Missing max_tokens.
    let (status, _, text) = post(
        &url(),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "messages": []}),
    )
    .await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["message"], "max_tokens: Field required");
    // Malformed JSON.
    let resp = client()
        .post(url())
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .body("[1,")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn count_tokens() {
    let (status, _, body) = post(
        &format!("{}/v1/messages/count_tokens", mock().base_url()),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "messages": [{"role": "user", "content": "a b c"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"input_tokens": 3})
    );
}
