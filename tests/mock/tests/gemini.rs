//! Google Gemini over a real socket.
// Test helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn url(model_and_method: &str) -> String {
    format!("{}/v1beta/models/{model_and_method}", mock().base_url())
}

fn request(text: &str) -> Value {
    json!({"systemInstruction": {"parts": [{"text": "be brief"}]},
           "contents": [{"role": "user", "parts": [{"text": text}]}]})
}

#[tokio::test]
async fn generate_content() {
    let t = tag("gem-ns");
    let (status, headers, body) = post(
        &url("gemini-rewritten:generateContent"),
        &[GOOGLE_AUTH],
        &request(&format!("hi {t}")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    let c = &v["candidates"][0];
    assert_eq!(c["content"]["role"], "model");
    assert_eq!(
        c["content"]["parts"],
        json!([{"text": format!("mock reply: hi {t}")}])
    );
    assert_eq!(c["finishReason"], "STOP");
    assert_eq!(c["index"], 0);
    assert_eq!(v["modelVersion"], "gemini-rewritten");
    assert!(v["responseId"].is_string());
    assert_eq!(v["usageMetadata"]["promptTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 4);
    assert_eq!(v["usageMetadata"]["totalTokenCount"], 8);
    let r = &mock().requests_containing(&t)[0];
    assert_eq!(r.header("x-goog-api-key"), Some("g-test"));
}

#[tokio::test]
async fn url_encoded_model_and_query_key() {
    let (status, _, body) = post(
        &url("gemini%2D2.5-flash%40001:generateContent?key=abc"),
        &[],
        &request("x"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["modelVersion"], "gemini-2.5-flash@001");
}

#[tokio::test]
async fn stream_sse() {
    let (status, headers, body) = post(
        &url("gemini-s:streamGenerateContent?alt=sse"),
        &[GOOGLE_AUTH],
        &request("stream this now"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    assert!(
        body.ends_with("}\r\n\r\n"),
        "Google SSE uses CRLF: {body:?}"
    );
    assert!(!body.contains("[DONE]"));
    let events = parse_sse(&body);
    assert!(events.len() >= 3);
    let mut text = String::new();
    for (i, e) in events.iter().enumerate() {
        assert!(e.event.is_none());
        let v = e.json();
        assert_eq!(v["modelVersion"], "gemini-s");
        text.push_str(
            v["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap(),
        );
        let last = i == events.len() - 1;
        assert_eq!(v["candidates"][0].get("finishReason").is_some(), last);
    }
    assert_eq!(text, "mock reply: stream this now");
    let last = events.last().unwrap().json();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["candidatesTokenCount"], 5);
}

#[tokio::test]
async fn stream_json_array() {
    let (status, headers, body) = post(
        &url("gemini-a:streamGenerateContent"),
        &[GOOGLE_AUTH],
        &request("array please"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(body.starts_with('[') && body.ends_with(']'));
    let v: Value = serde_json::from_str(&body).unwrap();
    let items = v.as_array().unwrap();
    assert!(items.len() >= 3);
    let text: String = items
        .iter()
        .map(|i| {
            i["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "mock reply: array please");
    assert_eq!(
        items.last().unwrap()["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[tokio::test]
async fn function_call_and_response() {
    let tools = json!([{"functionDeclarations": [{"name": "get_weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    let mut req = request("[[tool:get_weather]]");
    req["tools"] = tools.clone();
    let (_, _, body) = post(&url("g:generateContent"), &[GOOGLE_AUTH], &req).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let part = &v["candidates"][0]["content"]["parts"][0];
    assert_eq!(
        part["functionCall"],
        json!({"name": "get_weather", "args": {"city": "mock"}})
    );
    assert_eq!(v["candidates"][0]["finishReason"], "STOP");

    let (_, _, body) = post(
        &url("g:streamGenerateContent?alt=sse"),
        &[GOOGLE_AUTH],
        &req,
    )
    .await;
    let events = parse_sse(&body);
    assert_eq!(events.len(), 1, "Gemini streams function calls whole");
    assert_eq!(
        events[0].json()["candidates"][0]["content"]["parts"][0]["functionCall"]["name"],
        "get_weather"
    );

    let follow = json!({"contents": [
        {"role": "user", "parts": [{"text": "[[tool:get_weather]]"}]},
        {"role": "model", "parts": [part]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"result": "foggy"}}}]}
    ]});
    let (_, _, body) = post(&url("g:generateContent"), &[GOOGLE_AUTH], &follow).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "mock reply: tool result: foggy"
    );
}

#[tokio::test]
async fn errors_in_google_format() {
    let (status, headers, body) = post(&url("g:generateContent"), &[], &request("x")).await;
    assert_eq!(status, 401);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], 401);
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");
    assert!(v["error"]["message"].is_string());

    let (status, _, body) = post(
        &url("g:generateContent"),
        &[GOOGLE_AUTH],
        &json!({"nope": 1}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["status"],
        "INVALID_ARGUMENT"
    );

    let resp = client()
        .post(url("g:generateContent"))
        .header("x-goog-api-key", "k")
        .body("{{")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid JSON payload received."));
}
