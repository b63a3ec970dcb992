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
    /// Function tools the client declared inside a named group (OpenAI Responses `namespace`
    /// tools: Codex's sub-agent tools, MCP servers' tools). No other protocol has groups, so
    /// each member travels in [`ChatRequest::tools`] under a flattened name; this table maps
    /// it back, so the answer can name the call as the client declared it (namespace + short
    /// name: the client dispatches on both). Empty for every other request.
    pub tool_namespaces: Vec<NamespacedTool>,
}

/// One member of a client's tool namespace, and the flat name the upstream knows it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespacedTool {
    /// The name in [`ChatRequest::tools`] (see [`NamespacedTool::flat_name`]).
    pub flat: String,
    /// The namespace's name as the client sent it (`multi_agent_v1`, `mcp__server__`).
    pub namespace: String,
    /// The member's own (short) name as the client sent it (`spawn_agent`).
    pub name: String,
}

/// The longest function name OpenAI, Anthropic and Gemini accept.
pub const MAX_TOOL_NAME_LEN: usize = 64;

impl NamespacedTool {
    /// The flat name of `name` in `namespace`: joined directly when the namespace already ends
    /// in `_` (Codex names MCP namespaces `mcp__server__`, and its own flattened names are
    /// `mcp__server__tool`), else joined with `__` (`multi_agent_v1__spawn_agent`). A result
    /// longer than [`MAX_TOOL_NAME_LEN`] bytes is cut to a prefix plus `_` and 8 hex digits of
    /// a hash of the whole name, so it stays deterministic (the same history gives the same
    /// name on every turn) and distinct names stay distinct; the table, not the name, maps it
    /// back.
    pub fn flat_name(namespace: &str, name: &str) -> String {
        let joined = if namespace.ends_with('_') {
            format!("{namespace}{name}")
        } else {
            format!("{namespace}__{name}")
        };
        if joined.len() <= MAX_TOOL_NAME_LEN {
            return joined;
        }
        let hash = format!("_{:08x}", fnv1a(joined.as_bytes()) as u32);
        let mut keep = MAX_TOOL_NAME_LEN - hash.len();
        while !joined.is_char_boundary(keep) {
            keep -= 1;
        }
        format!("{}{hash}", &joined[..keep])
    }
}

/// 64-bit FNV-1a: a stable hash (std's `DefaultHasher` may change between Rust releases, and
/// a flattened name must not change while a conversation goes on).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The client-side names of namespaced tools, for the response encoders.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ToolNamespaces {
    /// Every namespace member of the request.
    pub tools: Vec<NamespacedTool>,
    /// The names of the request's other (top-level) tools; filled only when `tools` is not
    /// empty. A bare short name that is also a top-level tool is that tool, not a member.
    pub top_level: Vec<String>,
}

impl ToolNamespaces {
    /// The namespaces of `request`'s tools.
    pub fn for_request(request: &ChatRequest) -> ToolNamespaces {
        if request.tool_namespaces.is_empty() {
            return ToolNamespaces::default();
        }
        let top_level = request
            .tools
            .iter()
            .filter(|t| !request.tool_namespaces.iter().any(|n| n.flat == t.name))
            .map(|t| t.name.clone())
            .collect();
        ToolNamespaces {
            tools: request.tool_namespaces.clone(),
            top_level,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// The namespace member a model's call to `name` is for: the member flattened to `name`;
    /// else, for models that answer with the bare short name, the only member called `name`
    /// when no top-level tool is. `None`: a top-level (or unknown) tool, named as it is.
    pub fn member(&self, name: &str) -> Option<&NamespacedTool> {
        if let Some(t) = self.tools.iter().find(|t| t.flat == name) {
            return Some(t);
        }
        if self.top_level.iter().any(|t| t == name) {
            return None;
        }
        let mut matches = self.tools.iter().filter(|t| t.name == name);
        match (matches.next(), matches.next()) {
            (Some(t), None) => Some(t),
            _ => None,
        }
    }

    /// The flat name of `name` in `namespace` (a call an upstream or a client names by
    /// namespace): the declared member's, else [`NamespacedTool::flat_name`].
    pub fn flat(&self, namespace: &str, name: &str) -> String {
        flat_in(&self.tools, namespace, name)
    }
}

/// The flat name of `name` in `namespace` given a request's table: the declared member's
/// flat name; a `name` that already is a member's flat name in that namespace stays as it is;
/// else [`NamespacedTool::flat_name`].
pub(crate) fn flat_in(tools: &[NamespacedTool], namespace: &str, name: &str) -> String {
    if let Some(t) = tools
        .iter()
        .find(|t| t.namespace == namespace && t.name == name)
    {
        return t.flat.clone();
    }
    if tools
        .iter()
        .any(|t| t.namespace == namespace && t.flat == name)
    {
        return name.to_string();
    }
    NamespacedTool::flat_name(namespace, name)
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
