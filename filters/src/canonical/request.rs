//! The protocol-neutral chat request: what every inbound request is decoded into and every
//! upstream request is encoded from.
//!
//! Conventions (each codec follows them, so any pair of codecs composes):
//! - System/developer instructions are hoisted into [`ChatRequest::system`], in order, wherever
//!   they appeared in the source conversation.
//! - Tool results are [`Part::ToolResult`] parts inside a [`Role::User`] message (Anthropic's
//!   shape); consecutive tool-result messages of other protocols merge into one user message.
//! - Tool-call arguments are kept as the JSON *text* the model produced (streams deliver it in
//!   fragments; re-serialising would change bytes the client may hash or compare).
//! - Tool-call ids are carried unchanged; a codec whose protocol has no ids (Gemini) synthesises
//!   deterministic ones from the position, so the same history always yields the same ids.

use serde_json::Value;

/// A chat request in canonical form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    /// The model id to send upstream (the router sets it to the target's service id).
    pub model: String,
    /// System / developer / `instructions` text blocks, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolDef>,
    pub tool_choice: Option<ToolChoice>,
    /// `parallel_tool_calls` (OpenAI) / `disable_parallel_tool_use` (Anthropic, inverted).
    pub parallel_tool_calls: Option<bool>,
    pub params: Params,
    pub response_format: Option<ResponseFormat>,
    pub reasoning: Option<Reasoning>,
    pub stream: bool,
    /// The client asked for usage in the stream (`stream_options.include_usage`). Protocols that
    /// always report usage decode this as `true`.
    pub include_usage: bool,
    /// End-user id (`user`, `metadata.user_id`, `safety_identifier`).
    pub user: Option<String>,
    /// Free-form metadata (OpenAI `metadata`), carried where the target has a place for it.
    pub metadata: Option<Value>,
    /// Names of request fields the decoder understood but the canonical form cannot carry
    /// (reported in `x-bitrouter-dropped-params`).
    pub dropped: Vec<String>,
}

/// Sampling and length parameters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Params {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    /// The output-token cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
    /// `maxOutputTokens`).
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Number of choices; anything but 1 cannot be translated to a protocol without it.
    pub n: Option<u64>,
    pub logprobs: Option<bool>,
    pub top_logprobs: Option<u64>,
}

/// Who speaks a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One conversation turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub parts: Vec<Part>,
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    /// A request by the assistant to call a tool.
    ToolCall(ToolCall),
    /// The result of a tool call, sent back by the user side.
    ToolResult(ToolResult),
    /// Model reasoning (Anthropic `thinking`, Gemini `thought`, OpenAI reasoning summaries).
    Thinking(Thinking),
}

/// An image, by URL or inline.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub source: ImageSource,
    /// OpenAI's `detail` (`low`/`high`/`auto`), where given.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    /// An `http(s)` URL. (A `data:` URL is decoded into [`ImageSource::Base64`] by decoders.)
    Url(String),
    Base64 {
        media_type: String,
        data: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (an object), exactly as the model produced them.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The id of the [`ToolCall`] this answers.
    pub call_id: String,
    /// The tool's name when the source protocol carries it (Gemini needs it; encoders look it
    /// up from the matching call in the history when absent).
    pub name: Option<String>,
    /// Text and image parts.
    pub content: Vec<Part>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Thinking {
    pub text: String,
    /// Anthropic's signature (must round-trip to Anthropic unchanged).
    pub signature: Option<String>,
    /// Anthropic `redacted_thinking` data (opaque).
    pub redacted: Option<String>,
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDef {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments (lower-case types; decoders normalise Gemini's `OBJECT`).
    pub parameters: Value,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Must call some tool (`required` / `any` / Gemini `ANY`).
    Required,
    /// Must call this tool.
    Named(String),
}

/// Requested output shape.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

/// Reasoning controls, where both sides have them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reasoning {
    /// `minimal` | `low` | `medium` | `high` (OpenAI style).
    pub effort: Option<String>,
    /// A token budget (Anthropic `budget_tokens`, Gemini `thinkingBudget`).
    pub budget_tokens: Option<u64>,
    /// Whether to return reasoning text/summaries to the client.
    pub include_thoughts: Option<bool>,
}

impl Reasoning {
    /// The budget to use for a target that wants tokens, derived from the effort when needed.
    pub fn budget(&self) -> Option<u64> {
        self.budget_tokens
            .or_else(|| self.effort.as_deref().and_then(effort_to_budget))
    }

    /// The effort to use for a target that wants a level, derived from the budget when needed.
    pub fn effort_level(&self) -> Option<String> {
        self.effort
            .clone()
            .or_else(|| self.budget_tokens.map(budget_to_effort).map(str::to_string))
    }
}

/// The conventional token budget of an effort level.
pub fn effort_to_budget(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "none" => Some(0),
        "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

/// The effort level closest to a token budget.
pub fn budget_to_effort(budget: u64) -> &'static str {
    match budget {
        0 => "minimal",
        1..=2048 => "low",
        2049..=16384 => "medium",
        _ => "high",
    }
}

impl ChatRequest {
    /// The name of the tool a call id refers to, searching the history (Gemini's function
    /// responses are matched by name, other protocols' tool results by id).
    pub fn tool_name_for(&self, call_id: &str) -> Option<&str> {
        self.messages
            .iter()
            .flat_map(|m| m.parts.iter())
            .find_map(|p| match p {
                Part::ToolCall(c) if c.id == call_id => Some(c.name.as_str()),
                _ => None,
            })
    }
}
