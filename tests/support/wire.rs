//! The four wire protocols as a test client speaks them: a minimal request for each, the
//! response read to its end, and the answer (text, completeness, error event) as the client
//! understands it. Shared by the tests that drive every protocol.
#![allow(dead_code)]

use super::{client, sse_events, Router};
use bitrouter_mock::MockUpstream;
use serde_json::{json, Value};
use std::time::Duration;

/// An inbound (client) or upstream protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P {
    Chat,
    Responses,
    Messages,
    Gemini,
}

impl P {
    /// The `api_protocol` value of a provider speaking it.
    pub fn config_name(self) -> &'static str {
        match self {
            P::Chat => "chat_completions",
            P::Responses => "responses",
            P::Messages => "messages",
            P::Gemini => "generate_content",
        }
    }

    /// The provider's `api_base` on a mock.
    pub fn api_base(self, mock: &MockUpstream) -> String {
        match self {
            P::Chat | P::Responses => format!("{}/v1", mock.base_url()),
            P::Messages | P::Gemini => mock.base_url(),
        }
    }
}

/// (path, body) of a request in protocol `p`.
pub fn request(p: P, model: &str, text: &str, stream: bool) -> (String, Value) {
    match p {
        P::Chat => (
            "/v1/chat/completions".into(),
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": text}]}),
        ),
        P::Responses => (
            "/v1/responses".into(),
            json!({"model": model, "stream": stream, "input": text}),
        ),
        P::Messages => (
            "/v1/messages".into(),
            json!({"model": model, "stream": stream, "max_tokens": 64, "messages": [{"role": "user", "content": text}]}),
        ),
        P::Gemini => (
            if stream {
                format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")
            } else {
                format!("/v1beta/models/{model}:generateContent")
            },
            json!({"contents": [{"role": "user", "parts": [{"text": text}]}]}),
        ),
    }
}

/// A response, read to its end.
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
    /// The body ended cleanly (not cut off at the transport level).
    pub clean: bool,
}

impl Resp {
    /// A header's value, "" when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn attempts(&self) -> &str {
        self.header("x-bitrouter-attempts")
    }

    pub fn provider(&self) -> &str {
        self.header("x-bitrouter-provider")
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The x-bitrouter-* headers, for assertion messages.
    pub fn about(&self) -> String {
        let mut out = format!("status {}", self.status);
        for (k, v) in &self.headers {
            if k.as_str().starts_with("x-bitrouter-") {
                out.push_str(&format!(", {k}: {}", v.to_str().unwrap_or("?")));
            }
        }
        format!("{out}; body: {}", self.body)
    }
}

pub async fn post(router: &Router, path: &str, body: &Value) -> Resp {
    let fut = async {
        let mut resp = client()
            .post(router.url(path))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut bytes = Vec::new();
        let clean = loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
                Ok(None) => break true,
                Err(_) => break false,
            }
        };
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
            clean,
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .unwrap_or_else(|_| panic!("no complete answer in 20 s to {path} {body}: the router hangs"))
}

/// A successful answer as the client understood it.
#[derive(Debug, Default)]
pub struct Answer {
    pub text: String,
    /// The answer ended the way the protocol ends a complete answer.
    pub complete: bool,
    /// An error event in the stream.
    pub error: Option<Value>,
}

pub fn answer(p: P, stream: bool, raw: &str) -> Answer {
    let mut a = Answer::default();
    if !stream {
        let v: Value =
            serde_json::from_str(raw).unwrap_or_else(|e| panic!("not JSON ({e}): {raw}"));
        match p {
            P::Chat => {
                a.text = v["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .into();
                a.complete = v["choices"][0]["finish_reason"].is_string();
            }
            P::Responses => {
                for item in v["output"].as_array().into_iter().flatten() {
                    for c in item["content"].as_array().into_iter().flatten() {
                        a.text.push_str(c["text"].as_str().unwrap_or_default());
                    }
                }
                a.complete = v["status"] == "completed";
            }
            P::Messages => {
                for b in v["content"].as_array().into_iter().flatten() {
                    a.text.push_str(b["text"].as_str().unwrap_or_default());
                }
                a.complete = v["stop_reason"].is_string();
            }
            P::Gemini => {
                for part in v["candidates"][0]["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    a.text.push_str(part["text"].as_str().unwrap_or_default());
                }
                a.complete = v["candidates"][0]["finishReason"].is_string();
            }
        }
        return a;
    }
    for (event, data) in sse_events(raw) {
        if p == P::Chat && data == "[DONE]" {
            a.complete = a.error.is_none();
            continue;
        }
        let v: Value = serde_json::from_str(&data)
            .unwrap_or_else(|e| panic!("event not JSON ({e}): {data}\n{raw}"));
        match p {
            P::Chat => {
                if v.get("error").is_some() {
                    a.error = Some(v);
                } else if let Some(t) = v["choices"][0]["delta"]["content"].as_str() {
                    a.text.push_str(t);
                }
            }
            P::Responses => match v["type"].as_str().unwrap_or_default() {
                "response.output_text.delta" => {
                    a.text.push_str(v["delta"].as_str().unwrap_or_default())
                }
                "response.completed" => a.complete = true,
                "error" | "response.failed" => a.error = Some(v),
                _ => {}
            },
            P::Messages => match v["type"].as_str().unwrap_or_default() {
                "content_block_delta" => a
                    .text
                    .push_str(v["delta"]["text"].as_str().unwrap_or_default()),
                "message_stop" => a.complete = true,
                "error" => {
                    assert_eq!(
                        event.as_deref(),
                        Some("error"),
                        "an Anthropic error event is named error: {raw}"
                    );
                    a.error = Some(v);
                }
                _ => {}
            },
            P::Gemini => {
                if v.get("error").is_some() {
                    a.error = Some(v);
                    continue;
                }
                for part in v["candidates"][0]["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    a.text.push_str(part["text"].as_str().unwrap_or_default());
                }
                if v["candidates"][0]["finishReason"].is_string() {
                    a.complete = true;
                }
            }
        }
    }
    a
}

/// Whether the last event of an SSE body (ignoring OpenAI's `[DONE]`) is a well-formed error
/// event of protocol `p`.
pub fn ends_with_error_event(p: P, raw: &str) -> bool {
    let events = sse_events(raw);
    let Some((name, data)) = events.iter().rev().find(|(_, d)| d != "[DONE]") else {
        return false;
    };
    let Ok(v) = serde_json::from_str::<Value>(data) else {
        return false;
    };
    match p {
        P::Chat => v["error"]["message"].is_string(),
        P::Gemini => v["error"]["message"].is_string() && v["error"]["status"].is_string(),
        P::Messages => {
            name.as_deref() == Some("error")
                && v["type"] == "error"
                && v["error"]["type"].is_string()
        }
        P::Responses => matches!(v["type"].as_str(), Some("error" | "response.failed")),
    }
}
