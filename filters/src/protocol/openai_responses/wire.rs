//! Wire types of the OpenAI Responses API (`POST /v1/responses`), as the API reference and the
//! official SDKs define them.
//!
//! Decoding structs are liberal: every field is optional (`#[serde(default)]`), and fields whose
//! shape varies (message `content`, tool definitions, `tool_choice`) are kept as [`Value`] and
//! decoded piece by piece so errors can name the exact element at fault. Encoding types are
//! exact: tagged enums that can only produce shapes the API accepts.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::canonical::CanonicalError;

// ---------------------------------------------------------------------------------------------
// Request (decode side)

/// A `POST /v1/responses` body as a client sends it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesRequest {
    pub model: Option<String>,
    /// A string, or an array of input items.
    pub input: Option<Value>,
    pub instructions: Option<String>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub text: Option<ResponsesTextConfig>,
    pub reasoning: Option<ResponsesReasoningConfig>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_logprobs: Option<u64>,
    pub user: Option<String>,
    pub safety_identifier: Option<String>,
    pub metadata: Option<Value>,
    pub stream: Option<bool>,
    pub stream_options: Option<Value>,
    pub store: Option<bool>,
    pub previous_response_id: Option<String>,
    pub conversation: Option<Value>,
    pub background: Option<bool>,
    pub prompt: Option<Value>,
    pub include: Option<Vec<String>>,
    pub truncation: Option<String>,
    pub service_tier: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub prompt_cache_retention: Option<String>,
    pub max_tool_calls: Option<u64>,
}

/// Every top-level request field [`ResponsesRequest`] knows (others are reported as dropped).
pub const REQUEST_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "reasoning",
    "max_output_tokens",
    "temperature",
    "top_p",
    "top_logprobs",
    "user",
    "safety_identifier",
    "metadata",
    "stream",
    "stream_options",
    "store",
    "previous_response_id",
    "conversation",
    "background",
    "prompt",
    "include",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "max_tool_calls",
];

/// A `message` input item (`type: "message"`, or no type and a `role`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesMessageItem {
    pub role: Option<String>,
    /// A string, or an array of content parts.
    pub content: Option<Value>,
}

/// A content part of an input message (`input_text`, `input_image`, `input_file`,
/// `output_text`, `refusal`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesContentPart {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub text: Option<String>,
    pub refusal: Option<String>,
    pub image_url: Option<String>,
    pub file_id: Option<String>,
    pub detail: Option<String>,
}

/// A `function_call` item (input history or output).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesFunctionCallItem {
    pub call_id: Option<String>,
    /// The namespace of a call to a namespaced tool (`name` is then the member's short name).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// JSON text; an object is tolerated and re-serialised.
    pub arguments: Option<Value>,
    pub id: Option<String>,
}

/// A `function_call_output` input item.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesFunctionCallOutputItem {
    pub call_id: Option<String>,
    /// A string, or an array of content parts.
    pub output: Option<Value>,
}

/// A `reasoning` item (input history or output).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesReasoningItem {
    pub summary: Option<Vec<ResponsesText>>,
    /// Raw reasoning text (`reasoning_text` parts), from models that expose it.
    pub content: Option<Vec<ResponsesText>>,
    pub encrypted_content: Option<String>,
}

/// `{type, text}`: a reasoning `summary_text` / `reasoning_text` part.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesText {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

impl ResponsesText {
    pub fn summary(text: &str) -> ResponsesText {
        ResponsesText {
            kind: "summary_text".to_string(),
            text: text.to_string(),
        }
    }
}

/// A `function` tool definition (both directions).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesFunctionTool {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// A `namespace` tool: a named group of function tools (Codex sends its sub-agent tools and
/// each MCP server's tools this way).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ResponsesNamespaceTool {
    pub name: Option<String>,
    pub description: Option<String>,
    /// The member tools (`function`, or `custom`).
    pub tools: Option<Vec<Value>>,
}

/// `text`: output format and verbosity (both directions).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesTextConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<ResponsesTextFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

/// `text.format`: `{type: text}`, `{type: json_object}` or `{type: json_schema, name, schema,
/// strict, description}` (both directions).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesTextFormat {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `reasoning`: `{effort, summary}` (both directions; `generate_summary` is the deprecated
/// spelling of `summary`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesReasoningConfig {
    pub effort: Option<String>,
    pub summary: Option<String>,
    #[serde(skip_serializing)]
    pub generate_summary: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Request (encode side)

/// A `POST /v1/responses` body as bitrouter sends it upstream.
#[derive(Debug, Clone, Serialize)]
pub struct ResponsesRequestOut {
    pub model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    pub input: Vec<ResponsesInputItem>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ResponsesFunctionTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ResponsesToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<ResponsesTextConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<ResponsesReasoningConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    /// Always `false`: bitrouter translates statelessly and never relies on stored responses.
    pub store: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
}

/// An input item bitrouter sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponsesInputItem {
    Message {
        role: &'static str,
        content: Vec<ResponsesInputContent>,
    },
    FunctionCall {
        call_id: String,
        name: String,
        arguments: String,
    },
    FunctionCallOutput {
        call_id: String,
        output: ResponsesToolOutput,
    },
    Reasoning {
        summary: Vec<ResponsesText>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

/// A content part bitrouter sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponsesInputContent {
    InputText { text: String },
    InputImage { image_url: String, detail: String },
    OutputText { text: String },
}

/// `function_call_output.output`: a string, or content parts when the result has images.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResponsesToolOutput {
    Text(String),
    Parts(Vec<ResponsesInputContent>),
}

/// `tool_choice` bitrouter sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum ResponsesToolChoice {
    Mode(&'static str),
    Function {
        #[serde(rename = "type")]
        kind: &'static str,
        name: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Response (both directions)

/// The `response` object: the non-streaming body, and the payload of `response.created`,
/// `response.completed`, ... stream events. Nullable fields serialise as `null`, like the API.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesResponse {
    pub id: String,
    pub object: String,
    /// Unix seconds (the SDKs type it as a number; floats are accepted and truncated).
    #[serde(deserialize_with = "unix_seconds")]
    pub created_at: u64,
    pub status: Option<String>,
    pub background: Option<bool>,
    /// Unix seconds when the response completed (`null` until then).
    #[serde(deserialize_with = "opt_unix_seconds")]
    pub completed_at: Option<u64>,
    pub error: Option<ResponsesError>,
    pub incomplete_details: Option<ResponsesIncompleteDetails>,
    /// A string in practice (the API types it as string or input items).
    pub instructions: Option<Value>,
    pub max_output_tokens: Option<u64>,
    pub max_tool_calls: Option<u64>,
    pub model: String,
    pub output: Vec<ResponsesOutputItem>,
    pub parallel_tool_calls: bool,
    pub previous_response_id: Option<String>,
    pub prompt_cache_key: Option<String>,
    pub reasoning: Option<ResponsesReasoningConfig>,
    pub safety_identifier: Option<String>,
    pub service_tier: Option<String>,
    pub store: Option<bool>,
    pub temperature: Option<f64>,
    pub text: Option<ResponsesTextConfig>,
    pub tool_choice: Value,
    pub tools: Vec<Value>,
    pub top_logprobs: Option<u64>,
    pub top_p: Option<f64>,
    pub truncation: Option<String>,
    pub usage: Option<ResponsesUsage>,
    pub user: Option<String>,
    pub metadata: Option<Value>,
}

/// `response.error` (a failed response).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesError {
    pub code: Option<String>,
    pub message: String,
}

/// `response.incomplete_details`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesIncompleteDetails {
    pub reason: Option<String>,
}

/// `response.usage`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesUsage {
    pub input_tokens: u64,
    pub input_tokens_details: Option<ResponsesInputTokensDetails>,
    pub output_tokens: u64,
    pub output_tokens_details: Option<ResponsesOutputTokensDetails>,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesInputTokensDetails {
    pub cached_tokens: Option<u64>,
    /// Tokens written to the prompt cache (newer API versions; part of `input_tokens`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write_tokens: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesOutputTokensDetails {
    pub reasoning_tokens: Option<u64>,
}

/// An item of `response.output` (message, function_call, reasoning; other kinds are decoded
/// far enough to be skipped). One flat struct: fields absent from a kind are omitted.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesOutputItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Message content parts, or a reasoning item's `reasoning_text` parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Vec<ResponsesOutputContent>>,
    /// Function-call arguments: JSON text (an object is tolerated when decoding).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// A function call to a namespaced tool: the namespace (`name` is the short name). Absent
    /// for calls to top-level tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<Vec<ResponsesText>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encrypted_content: Option<String>,
}

/// A message content part in output (`output_text`, `refusal`), or a reasoning content part.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesOutputContent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Value>>,
}

impl ResponsesOutputContent {
    /// An `output_text` part as the API writes it (empty annotations and logprobs).
    pub fn output_text(text: &str) -> ResponsesOutputContent {
        ResponsesOutputContent {
            kind: "output_text".to_string(),
            text: Some(text.to_string()),
            refusal: None,
            annotations: Some(Vec::new()),
            logprobs: Some(Vec::new()),
        }
    }

    /// The text of an `output_text` / `refusal` / `reasoning_text` part.
    pub fn text(&self) -> &str {
        self.text
            .as_deref()
            .or(self.refusal.as_deref())
            .unwrap_or_default()
    }
}

// ---------------------------------------------------------------------------------------------
// Stream events (both directions)

/// One streaming event's `data`. A flat struct covering every event bitrouter reads or writes;
/// the fields an event type does not have stay `None` and are omitted.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ResponsesStreamEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponsesResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<ResponsesOutputItem>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub part: Option<ResponsesOutputContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<Vec<Value>>,
    /// `error` events: present (possibly `null`) on them only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub param: Option<Option<String>>,
    /// Some servers nest the error: `{"type":"error","error":{"code","message"}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ResponsesError>,
    pub sequence_number: u64,
}

impl ResponsesStreamEvent {
    pub fn new(kind: &str) -> ResponsesStreamEvent {
        ResponsesStreamEvent {
            kind: kind.to_string(),
            ..ResponsesStreamEvent::default()
        }
    }
}

/// A unix timestamp given as an integer or a float (or `null`: 0).
fn unix_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Option::<f64>::deserialize(d)?;
    // `as` saturates (negative and NaN become 0), so no input can panic here.
    Ok(v.map(|f| f as u64).unwrap_or(0))
}

fn opt_unix_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.map(|f| f as u64))
}

// ---------------------------------------------------------------------------------------------
// Path-aware decoding

/// Deserialises `value` as `T`; on failure the error names the field at fault
/// (`{path}.{field}: invalid type: ...`). `T` must have only optional/defaulted fields, so a
/// one-field object fails exactly when that field is wrong.
pub fn decode_at<T: DeserializeOwned>(
    value: &Value,
    path: &str,
    err: fn(String) -> CanonicalError,
) -> Result<T, CanonicalError> {
    match T::deserialize(value) {
        Ok(v) => Ok(v),
        Err(e) => {
            if let Value::Object(map) = value {
                for (key, field) in map {
                    let mut one = Map::new();
                    one.insert(key.clone(), field.clone());
                    if let Err(field_err) = T::deserialize(&Value::Object(one)) {
                        return Err(err(format!("{}: {field_err}", join(path, key))));
                    }
                }
            }
            let shown = if path.is_empty() { "body" } else { path };
            Err(err(format!("{shown}: {e}")))
        }
    }
}

/// `path.key`, or `key` at the top level.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}
