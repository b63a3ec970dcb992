//! Anthropic Messages wire types (`POST /v1/messages`), named after the API reference.
//!
//! One set of types serves both directions where the shapes agree: content blocks, tool choice,
//! thinking configuration, usage and stream events are deserialised from upstream bodies and
//! serialised for clients. Request decoding reads the top level field by field (see
//! `request.rs`) so that every error names the field at fault.

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A content block, in requests, responses and `content_block_start` events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    Image {
        source: AnthropicImageSource,
    },
    ToolUse {
        #[serde(default)]
        id: String,
        #[serde(default)]
        name: String,
        #[serde(default = "empty_object")]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<AnthropicToolResultContent>,
        #[serde(default, skip_serializing_if = "is_false")]
        is_error: bool,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        #[serde(default)]
        data: String,
    },
    /// Any block type this codec does not translate (`server_tool_use`,
    /// `web_search_tool_result`, ...): skipped in responses. Never serialised.
    #[serde(other)]
    Other,
}

/// `image.source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicImageSource {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    /// Files API reference: cannot be translated (no other protocol can dereference it).
    File {
        file_id: String,
    },
}

/// `tool_result.content`: a string or text/image blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AnthropicToolResultContent {
    Text(String),
    Blocks(Vec<AnthropicBlock>),
}

/// The request-side `tool_result` block, read with its content left free-form so nested blocks
/// can be checked (and errors located) one by one.
#[derive(Debug, Deserialize)]
pub struct AnthropicToolResultIn {
    pub tool_use_id: String,
    #[serde(default)]
    pub content: Value,
    #[serde(default)]
    pub is_error: Option<bool>,
}

/// `system`: a string or text blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AnthropicSystem {
    Text(String),
    Blocks(Vec<AnthropicBlock>),
}

/// `messages[]` as sent upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnthropicMessage {
    pub role: &'static str,
    pub content: Vec<AnthropicBlock>,
}

/// A custom tool definition (`type` absent or `"custom"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicTool {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default = "empty_object")]
    pub input_schema: Value,
    /// Structured-outputs strict tool use (decoded; not sent, see `encode_request`).
    #[serde(default, skip_serializing)]
    pub strict: Option<bool>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicToolChoice {
    Auto {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Any {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    Tool {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    None,
}

/// `thinking`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicThinking {
    Enabled {
        budget_tokens: u64,
    },
    Disabled,
    /// Claude 4.6+: the model decides how much to think, guided by `output_config.effort`.
    Adaptive,
}

/// `output_config` (GA structured outputs and effort).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnthropicOutputConfig {
    #[serde(default)]
    pub effort: Option<String>,
    #[serde(default)]
    pub format: Option<AnthropicOutputFormat>,
}

/// `output_config.format` / beta `output_format`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicOutputFormat {
    JsonSchema { schema: Value },
}

/// `metadata`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
}

/// The request body this codec sends upstream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnthropicRequest {
    pub model: String,
    pub max_tokens: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<AnthropicSystem>,
    pub messages: Vec<AnthropicMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<AnthropicMetadata>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    #[serde(skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<AnthropicTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<AnthropicToolChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<AnthropicThinking>,
}

/// `usage`, in responses, `message_start` and `message_delta`. Every field is optional on the
/// way in (`message_delta` carries only some); responses we write fill them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnthropicUsage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
}

/// A non-streaming response (also the `message` of `message_start`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicResponse {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "message_type")]
    pub kind: String,
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub content: Vec<AnthropicBlock>,
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
    #[serde(default)]
    pub usage: AnthropicUsage,
}

fn message_type() -> String {
    "message".to_string()
}

fn assistant_role() -> String {
    "assistant".to_string()
}

/// `error` of an error body or `error` stream event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnthropicErrorBody {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub message: String,
}

/// `{"type":"error","error":{...}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AnthropicError {
    /// Always `"error"`: tells Anthropic's error body from OpenAI's `{"error":{...}}`.
    #[serde(rename = "type")]
    pub kind: AnthropicErrorTag,
    pub error: AnthropicErrorBody,
}

/// The literal `"error"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnthropicErrorTag {
    Error,
}

/// `message_delta.delta`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AnthropicMessageDeltaBody {
    #[serde(default)]
    pub stop_reason: Option<String>,
    #[serde(default)]
    pub stop_sequence: Option<String>,
}

/// `content_block_delta.delta`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicDelta {
    TextDelta {
        #[serde(default)]
        text: String,
    },
    InputJsonDelta {
        #[serde(default)]
        partial_json: String,
    },
    ThinkingDelta {
        #[serde(default)]
        thinking: String,
    },
    SignatureDelta {
        #[serde(default)]
        signature: String,
    },
    /// `citations_delta` and future delta types: ignored.
    #[serde(other)]
    Other,
}

/// One streaming event (the `data:` JSON; its `type` repeats the SSE `event:` name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicStreamEvent {
    MessageStart {
        message: AnthropicResponse,
    },
    ContentBlockStart {
        index: usize,
        content_block: AnthropicBlock,
    },
    ContentBlockDelta {
        index: usize,
        delta: AnthropicDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        #[serde(default)]
        delta: AnthropicMessageDeltaBody,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<AnthropicUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: AnthropicErrorBody,
    },
    /// Future event types: ignored.
    #[serde(other)]
    Unknown,
}

impl AnthropicStreamEvent {
    /// The SSE `event:` name of this event.
    pub fn name(&self) -> &'static str {
        match self {
            AnthropicStreamEvent::MessageStart { .. } => "message_start",
            AnthropicStreamEvent::ContentBlockStart { .. } => "content_block_start",
            AnthropicStreamEvent::ContentBlockDelta { .. } => "content_block_delta",
            AnthropicStreamEvent::ContentBlockStop { .. } => "content_block_stop",
            AnthropicStreamEvent::MessageDelta { .. } => "message_delta",
            AnthropicStreamEvent::MessageStop => "message_stop",
            AnthropicStreamEvent::Ping => "ping",
            AnthropicStreamEvent::Error { .. } => "error",
            AnthropicStreamEvent::Unknown => "unknown",
        }
    }
}
