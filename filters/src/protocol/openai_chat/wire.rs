//! The Chat Completions wire types (requests, responses, stream chunks), shared by the decoders
//! and encoders. Every optional field is an `Option` skipped when absent, except where OpenAI's
//! own responses carry an explicit `null` (`content`, `refusal`, `logprobs`, `finish_reason`,
//! `system_fingerprint`).
//!
//! Errors raised while deserializing carry a path prefix (`[2].content[0]: ...`), composed by
//! [`join_path`] so the 400 names the field at fault.

use serde::de::{self, DeserializeOwned, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::fmt;
use std::marker::PhantomData;

/// `prefix` followed by an inner error message: a path continuation (`[0]...`, `.content...`)
/// is appended directly, a plain message after `": "`.
pub fn join_path(prefix: &str, inner: &str) -> String {
    if inner.starts_with('[') || inner.starts_with('.') {
        format!("{prefix}{inner}")
    } else {
        format!("{prefix}: {inner}")
    }
}

/// A JSON array whose element errors name the element's index (`[3]: missing field ...`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Seq<T>(pub Vec<T>);

impl<T: Serialize> Serialize for Seq<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Seq<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);
        impl<'de, T: DeserializeOwned> Visitor<'de> for SeqVisitor<T> {
            type Value = Seq<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Seq<T>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                loop {
                    let i = items.len();
                    match seq.next_element::<T>() {
                        Ok(Some(item)) => items.push(item),
                        Ok(None) => break,
                        Err(e) => {
                            return Err(de::Error::custom(join_path(
                                &format!("[{i}]"),
                                &e.to_string(),
                            )))
                        }
                    }
                }
                Ok(Seq(items))
            }
        }
        d.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// A `created` timestamp (some servers send a float) or `top_k` (vLLM's `-1` means "off"):
/// a non-negative number, else absent.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(match v {
        Some(Value::Number(n)) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0)
                .map(|f| f as u64)
        }),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `POST /v1/chat/completions` body. Fields after `stream_options` are read, never written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Seq<OpenAIChatMessage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Seq<OpenAIChatTool>>,
    /// `"auto"` | `"none"` | `"required"` | `{type, function: {name}}` | `{type: allowed_tools}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<OpenAIChatResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Not OpenAI: an extension vLLM, OpenRouter, LM Studio and others accept. Read only;
    /// vLLM's `-1` ("disabled") reads as absent.
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_k: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<OpenAIChatStop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<OpenAIChatStreamOptions>,
    /// Legacy function calling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub functions: Option<Seq<OpenAIChatFunctionDef>>,
    /// Legacy `"none"` | `"auto"` | `{name}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_identifier: Option<String>,
    /// OpenRouter's `reasoning: {effort, max_tokens, exclude}` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<OpenAIChatReasoningOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
    /// Every other field (`logit_bias`, `service_tier`, `store`, vendor extensions...): their
    /// names are reported as dropped.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatStreamOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_usage: Option<bool>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatReasoningOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<bool>,
}

/// `stop`: one string or an array of strings.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAIChatStop(pub Vec<String>);

impl Serialize for OpenAIChatStop {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for OpenAIChatStop {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct StopVisitor;
        impl<'de> Visitor<'de> for StopVisitor {
            type Value = OpenAIChatStop;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OpenAIChatStop, E> {
                Ok(OpenAIChatStop(vec![s.to_string()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OpenAIChatStop, A::Error> {
                let mut items = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    items.push(s);
                }
                Ok(OpenAIChatStop(items))
            }
        }
        d.deserialize_any(StopVisitor)
    }
}

/// One message of `messages[]`, by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum OpenAIChatMessage {
    System(OpenAIChatSystemMessage),
    Developer(OpenAIChatSystemMessage),
    User(OpenAIChatUserMessage),
    Assistant(OpenAIChatAssistantMessage),
    Tool(OpenAIChatToolMessage),
    Function(OpenAIChatFunctionMessage),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatSystemMessage {
    pub content: OpenAIChatContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatUserMessage {
    pub content: OpenAIChatContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenAIChatAssistantMessage {
    /// Written as `null` when the turn holds only tool calls.
    #[serde(default)]
    pub content: Option<OpenAIChatContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Seq<OpenAIChatToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<OpenAIChatFunctionCall>,
    /// DeepSeek / vLLM / llama.cpp reasoning text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// OpenRouter / Ollama / newer vLLM spelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A previous audio response (`{id}`), which cannot be translated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatToolMessage {
    pub tool_call_id: String,
    #[serde(default)]
    pub content: Option<OpenAIChatContent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatFunctionMessage {
    pub name: String,
    #[serde(default)]
    pub content: Option<String>,
}

/// Message `content`: a string or an array of content parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum OpenAIChatContent {
    Text(String),
    Parts(Vec<OpenAIChatContentPart>),
}

impl<'de> Deserialize<'de> for OpenAIChatContent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ContentVisitor;
        impl<'de> Visitor<'de> for ContentVisitor {
            type Value = OpenAIChatContent;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<OpenAIChatContent, E> {
                Ok(OpenAIChatContent::Text(s.to_string()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<OpenAIChatContent, E> {
                Ok(OpenAIChatContent::Text(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OpenAIChatContent, A::Error> {
                let mut parts = Vec::new();
                loop {
                    let i = parts.len();
                    match seq.next_element::<OpenAIChatContentPart>() {
                        Ok(Some(p)) => parts.push(p),
                        Ok(None) => break,
                        Err(e) => {
                            return Err(de::Error::custom(join_path(
                                &format!(".content[{i}]"),
                                &e.to_string(),
                            )))
                        }
                    }
                }
                Ok(OpenAIChatContent::Parts(parts))
            }
        }
        d.deserialize_any(ContentVisitor)
    }
}

/// One content part, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpenAIChatContentPart {
    Text {
        text: String,
    },
    ImageUrl {
        image_url: OpenAIChatImageUrl,
    },
    InputAudio {
        #[serde(default)]
        input_audio: Value,
    },
    File {
        #[serde(default)]
        file: Value,
    },
    /// Assistant history only.
    Refusal {
        refusal: String,
    },
    /// Mistral's reasoning chunk: `{type: thinking, thinking: [{type: text, text}]}`.
    Thinking {
        #[serde(default)]
        thinking: Value,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `tools[]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatTool {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<OpenAIChatFunctionDef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatFunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A tool call: in assistant history, responses, and (with `index`, fields arriving piecemeal)
/// stream deltas.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenAIChatToolCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<OpenAIChatFunctionCall>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct OpenAIChatFunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// JSON text (some servers send an object; it is re-serialised).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
}

/// `response_format`, by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OpenAIChatResponseFormat {
    Text,
    JsonObject,
    JsonSchema { json_schema: OpenAIChatJsonSchema },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatJsonSchema {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

// ---------------------------------------------------------------------------------------------
// Responses and stream chunks
// ---------------------------------------------------------------------------------------------

/// A `chat.completion` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatCompletion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Option<Vec<OpenAIChatChoice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAIChatUsage>,
    #[serde(default)]
    pub system_fingerprint: Option<String>,
    /// An error reported with a 2xx status (OpenRouter and some local servers do this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatChoice {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub message: Option<OpenAIChatResponseMessage>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// `choices[].message` of a response.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatResponseMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A string or `null` (Mistral reasoning models: an array of chunks).
    #[serde(default)]
    pub content: Option<Value>,
    #[serde(default)]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<OpenAIChatToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<OpenAIChatFunctionCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatUsage {
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub total_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<OpenAIChatPromptTokensDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<OpenAIChatCompletionTokensDetails>,
    /// DeepSeek's cache accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_cache_hit_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatPromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpenAIChatCompletionTokensDetails {
    #[serde(default)]
    pub reasoning_tokens: Option<u64>,
}

/// A `chat.completion.chunk` (also reads in-stream error payloads).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatChunk {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(
        default,
        deserialize_with = "lenient_u64",
        skip_serializing_if = "Option::is_none"
    )]
    pub created: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub choices: Option<Vec<OpenAIChatChunkChoice>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAIChatUsage>,
    /// Groq reports usage in `x_groq.usage` on the last chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x_groq: Option<OpenAIChatXGroq>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// vLLM's older un-wrapped error payload: `{"object":"error","message":...,"code":400}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatXGroq {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<OpenAIChatUsage>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatChunkChoice {
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub delta: Option<OpenAIChatDelta>,
    #[serde(default)]
    pub logprobs: Option<Value>,
    #[serde(default)]
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenAIChatDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A string (Mistral reasoning models: an array of chunks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<OpenAIChatToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<OpenAIChatFunctionCall>,
}

/// Text and reasoning out of a response/delta `content` value: a string, or Mistral-style
/// chunks `[{type: text, text}, {type: thinking, thinking: [...]}]`. Yields `(is_thinking, text)`.
pub fn content_value_texts(content: &Value) -> Vec<(bool, String)> {
    match content {
        Value::String(s) => vec![(false, s.clone())],
        Value::Array(items) => items
            .iter()
            .filter_map(|item| match item.get("type").and_then(Value::as_str) {
                Some("thinking") => Some((true, thinking_text(item.get("thinking")?))),
                Some("text") | None => Some((false, item.get("text")?.as_str()?.to_string())),
                Some("refusal") => Some((false, item.get("refusal")?.as_str()?.to_string())),
                Some(_) => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The text of a Mistral `thinking` value: a string or an array of `{type: text, text}`.
pub fn thinking_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.get("text").and_then(Value::as_str).or_else(|| i.as_str()))
            .collect(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_compose() {
        assert_eq!(
            join_path("messages", "[2].content[0]: bad"),
            "messages[2].content[0]: bad"
        );
        assert_eq!(join_path("messages", ".x: bad"), "messages.x: bad");
        assert_eq!(join_path("stop", "invalid type"), "stop: invalid type");
        let e = serde_json::from_value::<Seq<OpenAIChatMessage>>(json!([
            {"role": "user", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video"}]}
        ]))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("[1].content[1]: unknown variant `video`"),
            "{e}"
        );
    }

    #[test]
    fn content_values() {
        assert_eq!(
            content_value_texts(&json!("hi")),
            vec![(false, "hi".to_string())]
        );
        assert_eq!(
            content_value_texts(&json!([
                {"type": "thinking", "thinking": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"type": "text", "text": "c"},
                {"type": "image_url", "image_url": {"url": "x"}}
            ])),
            vec![(true, "ab".to_string()), (false, "c".to_string())]
        );
        assert!(content_value_texts(&json!(5)).is_empty());
    }

    #[test]
    fn stop_and_created_are_lenient() {
        let r: OpenAIChatRequest = serde_json::from_value(json!({"stop": "x"})).unwrap();
        assert_eq!(r.stop, Some(OpenAIChatStop(vec!["x".into()])));
        let c: OpenAIChatChunk = serde_json::from_value(json!({"created": 12.9})).unwrap();
        assert_eq!(c.created, Some(12));
        let c: OpenAIChatChunk = serde_json::from_value(json!({"created": -1})).unwrap();
        assert_eq!(c.created, None);
    }
}
