//! The protocol-neutral chat response (non-streaming), and the usage and stop reason shared
//! with streams.

use super::request::Part;

/// A complete assistant answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The upstream's id, without any protocol prefix convention applied (encoders add
    /// `chatcmpl-`, `msg_`, `resp_` as their protocol expects).
    pub id: String,
    /// The model the upstream reports (encoders answer with the model the client asked for).
    pub model: String,
    /// Unix seconds.
    pub created: u64,
    /// Text, tool calls and thinking, in order.
    pub parts: Vec<Part>,
    pub stop: StopReason,
    pub usage: Usage,
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Natural end (`stop`, `end_turn`, `STOP`, `completed`).
    EndTurn,
    /// A stop sequence matched (Anthropic tells which).
    StopSequence(Option<String>),
    /// The token cap (`length`, `max_tokens`, `MAX_TOKENS`, `incomplete: max_output_tokens`).
    MaxTokens,
    /// The model called tools (`tool_calls`, `tool_use`).
    ToolUse,
    /// Safety / content filter (`content_filter`, `refusal`, `SAFETY`, `RECITATION`, ...).
    ContentFilter,
    /// Anthropic `pause_turn` and other reasons with no equivalent elsewhere.
    Other(String),
}

/// Token accounting. `input` includes cached tokens (OpenAI's convention); the cache fields say
/// how many of them were cache reads / writes. `output` includes reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: Option<u64>,
    pub cache_creation_input: Option<u64>,
    pub reasoning: Option<u64>,
}

impl Usage {
    pub fn total(&self) -> u64 {
        self.input + self.output
    }

    /// Merges a later report into this one: providers send partial usage at several points of a
    /// stream (Anthropic: input at the start, output at the end); a field present later wins.
    pub fn merge(&mut self, later: &Usage) {
        if later.input > 0 {
            self.input = later.input;
        }
        if later.output > 0 {
            self.output = later.output;
        }
        self.cached_input = later.cached_input.or(self.cached_input);
        self.cache_creation_input = later.cache_creation_input.or(self.cache_creation_input);
        self.reasoning = later.reasoning.or(self.reasoning);
    }
}
