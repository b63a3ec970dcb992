//! Serde types for the Generative Language API (v1beta) `generateContent` wire format.
//!
//! Google's REST surface is the protobuf JSON mapping: fields are lowerCamelCase on output, and
//! the original snake_case names are accepted on input, so every multi-word field carries a
//! snake_case `alias`. Everything is `Option` so that a missing field is our error to word, not
//! serde's; unknown fields are ignored (forward compatibility) except where a `rest` map is kept
//! to name what we cannot translate (parts, tools).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

fn is_false(b: &Option<bool>) -> bool {
    !matches!(b, Some(true))
}

/// `Content`: one turn.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GeminiContent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<GeminiPart>>,
}

/// `Part`: a oneof of data fields plus metadata (`thought`, `thoughtSignature`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiPart {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "inline_data"
    )]
    pub inline_data: Option<GeminiBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "file_data")]
    pub file_data: Option<GeminiFileData>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_call"
    )]
    pub function_call: Option<GeminiFunctionCall>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_response"
    )]
    pub function_response: Option<GeminiFunctionResponse>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "executable_code"
    )]
    pub executable_code: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "code_execution_result"
    )]
    pub code_execution_result: Option<Value>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub thought: Option<bool>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thought_signature"
    )]
    pub thought_signature: Option<String>,
    /// Anything else (`videoMetadata`, `partMetadata`, `mediaResolution`, future data kinds).
    #[serde(flatten, default, skip_serializing)]
    pub rest: Map<String, Value>,
}

impl GeminiPart {
    pub fn text(text: impl Into<String>) -> GeminiPart {
        GeminiPart {
            text: Some(text.into()),
            ..GeminiPart::default()
        }
    }
}

/// `Blob`: inline bytes, base64.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiBlob {
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "mime_type")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// `FileData`: a file by URI.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiFileData {
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "mime_type")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "file_uri")]
    pub file_uri: Option<String>,
}

/// `FunctionCall`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GeminiFunctionCall {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Value>,
}

/// `FunctionResponse`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
pub struct GeminiFunctionResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    /// Multimodal function responses (`FunctionResponsePart`: `inlineData` / `fileData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<GeminiFunctionResponsePart>>,
}

/// `FunctionResponsePart`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiFunctionResponsePart {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "inline_data"
    )]
    pub inline_data: Option<GeminiBlob>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "file_data")]
    pub file_data: Option<GeminiFileData>,
}

/// `Tool`: function declarations or one of Google's built-in tools (kept in `rest` by name).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiTool {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_declarations"
    )]
    pub function_declarations: Option<Vec<GeminiFunctionDeclaration>>,
    #[serde(flatten, default, skip_serializing)]
    pub rest: Map<String, Value>,
}

/// `FunctionDeclaration`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiFunctionDeclaration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// OpenAPI-subset `Schema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Full JSON Schema; mutually exclusive with `parameters`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "parameters_json_schema"
    )]
    pub parameters_json_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_json_schema"
    )]
    pub response_json_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<Value>,
}

/// `ToolConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiToolConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "function_calling_config"
    )]
    pub function_calling_config: Option<GeminiFunctionCallingConfig>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "retrieval_config"
    )]
    pub retrieval_config: Option<Value>,
}

/// `FunctionCallingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiFunctionCallingConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "allowed_function_names"
    )]
    pub allowed_function_names: Option<Vec<String>>,
}

/// `GenerationConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiGenerationConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "stop_sequences"
    )]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_mime_type"
    )]
    pub response_mime_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_schema"
    )]
    pub response_schema: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_json_schema",
        alias = "_responseJsonSchema"
    )]
    pub response_json_schema: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_modalities"
    )]
    pub response_modalities: Option<Vec<String>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "candidate_count"
    )]
    pub candidate_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "max_output_tokens"
    )]
    pub max_output_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_p")]
    pub top_p: Option<f64>,
    /// An integer on the wire; read as any number so `40.0` is accepted too, written as an
    /// integer.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "top_k")]
    pub top_k: Option<serde_json::Number>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "presence_penalty"
    )]
    pub presence_penalty: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "frequency_penalty"
    )]
    pub frequency_penalty: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_logprobs"
    )]
    pub response_logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_config"
    )]
    pub thinking_config: Option<GeminiThinkingConfig>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "speech_config"
    )]
    pub speech_config: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "media_resolution"
    )]
    pub media_resolution: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "image_config"
    )]
    pub image_config: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "enable_enhanced_civic_answers"
    )]
    pub enable_enhanced_civic_answers: Option<Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "audio_timestamp"
    )]
    pub audio_timestamp: Option<Value>,
}

/// `ThinkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiThinkingConfig {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "include_thoughts"
    )]
    pub include_thoughts: Option<bool>,
    /// `-1` asks for a dynamic budget, `0` disables thinking.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_budget"
    )]
    pub thinking_budget: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thinking_level"
    )]
    pub thinking_level: Option<String>,
}

/// `GenerateContentRequest` as we decode it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiRequest {
    #[serde(default)]
    pub contents: Option<Vec<GeminiContent>>,
    /// A `Content` (the API's type) or, leniently, a bare string.
    #[serde(default, alias = "system_instruction")]
    pub system_instruction: Option<GeminiSystemInstruction>,
    #[serde(default)]
    pub tools: Option<Vec<GeminiTool>>,
    #[serde(default, alias = "tool_config")]
    pub tool_config: Option<GeminiToolConfig>,
    #[serde(default, alias = "generation_config")]
    pub generation_config: Option<GeminiGenerationConfig>,
    #[serde(default, alias = "safety_settings")]
    pub safety_settings: Option<Value>,
    #[serde(default, alias = "cached_content")]
    pub cached_content: Option<Value>,
    #[serde(default)]
    pub labels: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum GeminiSystemInstruction {
    Text(String),
    Content(GeminiContent),
}

/// `GenerateContentRequest` as we encode it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiRequestOut {
    pub contents: Vec<GeminiContent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<GeminiContent>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<GeminiTool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<GeminiToolConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GeminiGenerationConfig>,
}

/// `GenerateContentResponse` (also each streamed chunk).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<GeminiCandidate>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "prompt_feedback"
    )]
    pub prompt_feedback: Option<GeminiPromptFeedback>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "usage_metadata"
    )]
    pub usage_metadata: Option<GeminiUsage>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "model_version"
    )]
    pub model_version: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "response_id"
    )]
    pub response_id: Option<String>,
    /// Not part of a successful response: an error object delivered with a 200 or in a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// `Candidate`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiCandidate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<GeminiContent>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "finish_reason"
    )]
    pub finish_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// `PromptFeedback`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiPromptFeedback {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "block_reason"
    )]
    pub block_reason: Option<String>,
}

/// `UsageMetadata`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GeminiUsage {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "prompt_token_count"
    )]
    pub prompt_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "candidates_token_count"
    )]
    pub candidates_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "total_token_count"
    )]
    pub total_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "thoughts_token_count"
    )]
    pub thoughts_token_count: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "cached_content_token_count"
    )]
    pub cached_content_token_count: Option<u64>,
    /// Input tokens of tool-use prompts (e.g. search grounding results): billed as input but
    /// not part of `promptTokenCount`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "tool_use_prompt_token_count"
    )]
    pub tool_use_prompt_token_count: Option<u64>,
}
