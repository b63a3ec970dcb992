//! Anthropic Messages requests: decode (client -> canonical) and encode (canonical -> upstream).

use super::wire::{
    AnthropicBlock, AnthropicImageSource, AnthropicMessage, AnthropicMetadata,
    AnthropicOutputConfig, AnthropicOutputFormat, AnthropicRequest, AnthropicSystem,
    AnthropicThinking, AnthropicTool, AnthropicToolChoice, AnthropicToolResultContent,
    AnthropicToolResultIn,
};
use crate::canonical::{
    CanonicalError, ChatRequest, EncodeOptions, Encoded, Image, ImageSource, Message, Part,
    Reasoning, ResponseFormat, Role, Thinking, ToolCall, ToolChoice, ToolDef, ToolResult,
};
use crate::protocol::util::{invalid, parse_data_url, parse_request_json};
use serde::Deserialize;
use serde_json::{Map, Value};

/// `max_tokens` when neither the request nor the options give one.
const FALLBACK_MAX_TOKENS: u64 = 4096;
/// Anthropic's minimum `thinking.budget_tokens`.
const MIN_THINKING_BUDGET: u64 = 1024;
/// The budget used when reasoning is requested without a budget or effort (Anthropic's
/// adaptive default): the conventional "medium" budget.
const DEFAULT_THINKING_BUDGET: u64 = 8192;
/// The name of the structured-output tool for `json_object` (and schemas without a usable name).
const JSON_TOOL_NAME: &str = "json_response";
/// The name suffix of a structured-output tool whose schema is wrapped as `{"value": ...}`
/// because the requested answer is not an object (see `encode_request`).
pub(crate) const WRAPPED_SUFFIX: &str = "__value";
/// The name given to an Anthropic `output_config.format` schema (it has none).
const OUTPUT_FORMAT_NAME: &str = "response";

/// Content block types Anthropic accepts that no other protocol can represent.
const UNTRANSLATABLE_BLOCKS: &[(&str, &str)] = &[
    (
        "document",
        "documents (PDF/text sources with citations) have no equivalent in other protocols",
    ),
    (
        "search_result",
        "search results with citations have no equivalent in other protocols",
    ),
    (
        "server_tool_use",
        "it records a call of an Anthropic server tool",
    ),
    (
        "web_search_tool_result",
        "it holds the result of Anthropic's server-side web search",
    ),
    (
        "web_fetch_tool_result",
        "it holds the result of Anthropic's server-side web fetch",
    ),
    (
        "code_execution_tool_result",
        "it holds the result of Anthropic's server-side code execution",
    ),
    (
        "bash_code_execution_tool_result",
        "it holds the result of Anthropic's server-side code execution",
    ),
    (
        "text_editor_code_execution_tool_result",
        "it holds the result of Anthropic's server-side code execution",
    ),
    (
        "tool_search_tool_result",
        "it holds the result of Anthropic's server-side tool search",
    ),
    (
        "mcp_tool_use",
        "it records a call made through Anthropic's MCP connector",
    ),
    (
        "mcp_tool_result",
        "it holds a result of Anthropic's MCP connector",
    ),
    (
        "container_upload",
        "it refers to a file in an Anthropic code-execution container",
    ),
];

// ---------------------------------------------------------------------------------------------
// decode
// ---------------------------------------------------------------------------------------------

/// Reads one typed value from a JSON value, naming `path` in the error.
fn typed<'a, T: Deserialize<'a>>(value: &'a Value, path: &str) -> Result<T, CanonicalError> {
    T::deserialize(value).map_err(|e| invalid(format!("{path}: {e}")))
}

/// An optional top-level field (`null` counts as absent).
fn field<'a, T: Deserialize<'a>>(
    obj: &'a Map<String, Value>,
    key: &str,
) -> Result<Option<T>, CanonicalError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => typed(v, key).map(Some),
    }
}

fn type_of(value: &Value) -> Option<&str> {
    value.get("type").and_then(Value::as_str)
}

/// Decodes an Anthropic Messages request body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    let root = parse_request_json(body, "Anthropic Messages")?;
    let Value::Object(obj) = &root else {
        return Err(invalid(
            "the Anthropic Messages request body must be a JSON object",
        ));
    };
    let mut req = ChatRequest {
        include_usage: true,
        ..ChatRequest::default()
    };

    req.model = field::<String>(obj, "model")?
        .ok_or_else(|| invalid("model: required field missing").with_param("model"))?;

    let messages = obj
        .get("messages")
        .ok_or_else(|| invalid("messages: required field missing").with_param("messages"))?;
    let Value::Array(messages) = messages else {
        return Err(invalid("messages: expected an array of messages").with_param("messages"));
    };
    if let Some(system) = obj.get("system") {
        req.system = decode_system(system)?;
    }
    for (i, m) in messages.iter().enumerate() {
        // A `system` turn inside `messages` (Claude Code sends one to every model it does not
        // know) joins the system prompt, after the top-level `system`, in order: the canonical
        // form hoists system text, as it does for OpenAI's system/developer messages.
        if m.get("role").and_then(Value::as_str) == Some("system") {
            req.system.extend(decode_system_message(m, i)?);
            continue;
        }
        req.messages.push(decode_message(m, i)?);
    }

    let forced_tool = match obj.get("tool_choice") {
        Some(c) if type_of(c) == Some("tool") => c.get("name").and_then(Value::as_str),
        _ => None,
    };
    if let Some(tools) = obj.get("tools") {
        match tools {
            Value::Null => {}
            Value::Array(tools) => {
                for (i, t) in tools.iter().enumerate() {
                    match decode_tool(t, i, forced_tool)? {
                        DecodedTool::Tool(tool) => req.tools.push(tool),
                        DecodedTool::Dropped(what) => req.dropped.push(what),
                    }
                }
            }
            _ => return Err(invalid("tools: expected an array of tools").with_param("tools")),
        }
    }

    if let Some(choice) = field::<AnthropicToolChoice>(obj, "tool_choice")? {
        let (choice, disable_parallel) = match choice {
            AnthropicToolChoice::Auto {
                disable_parallel_tool_use,
            } => (ToolChoice::Auto, disable_parallel_tool_use),
            AnthropicToolChoice::Any {
                disable_parallel_tool_use,
            } => (ToolChoice::Required, disable_parallel_tool_use),
            AnthropicToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (ToolChoice::Named(name), disable_parallel_tool_use),
            AnthropicToolChoice::None => (ToolChoice::None, None),
        };
        req.tool_choice = Some(choice);
        req.parallel_tool_calls = disable_parallel.map(|d| !d);
    }

    req.params.max_tokens = field(obj, "max_tokens")?;
    req.params.temperature = field(obj, "temperature")?;
    req.params.top_p = field(obj, "top_p")?;
    req.params.top_k = field(obj, "top_k")?;
    req.params.stop = field::<Vec<String>>(obj, "stop_sequences")?.unwrap_or_default();
    req.stream = field(obj, "stream")?.unwrap_or(false);

    if let Some(metadata) = field::<AnthropicMetadata>(obj, "metadata")? {
        req.user = metadata.user_id;
    }

    let output_config = field::<AnthropicOutputConfig>(obj, "output_config")?;
    let effort = match output_config.as_ref().and_then(|c| c.effort.as_deref()) {
        None => None,
        Some(e @ ("low" | "medium" | "high")) => Some(e.to_string()),
        // Anthropic's levels above "high" have no equivalent elsewhere: the nearest is "high".
        Some("max" | "xhigh") => Some("high".to_string()),
        Some(other) => {
            return Err(invalid(format!(
                "output_config.effort: expected \"low\", \"medium\", \"high\" or \"max\", got \"{other}\""
            )))
        }
    };
    match field::<AnthropicThinking>(obj, "thinking")? {
        Some(AnthropicThinking::Enabled { budget_tokens }) => {
            req.reasoning = Some(Reasoning {
                effort,
                budget_tokens: Some(budget_tokens),
                include_thoughts: Some(true),
            });
        }
        Some(AnthropicThinking::Adaptive) => {
            req.reasoning = Some(Reasoning {
                effort,
                budget_tokens: None,
                include_thoughts: Some(true),
            });
        }
        Some(AnthropicThinking::Disabled) => {
            req.reasoning = Some(Reasoning {
                effort: None,
                budget_tokens: Some(0),
                include_thoughts: Some(false),
            });
        }
        None => {
            if effort.is_some() {
                req.reasoning = Some(Reasoning {
                    effort,
                    budget_tokens: None,
                    include_thoughts: None,
                });
            }
        }
    }

    let format = match output_config.and_then(|c| c.format) {
        Some(f) => Some(f),
        None => field::<AnthropicOutputFormat>(obj, "output_format")?,
    };
    if let Some(AnthropicOutputFormat::JsonSchema { schema }) = format {
        req.response_format = Some(ResponseFormat::JsonSchema {
            name: OUTPUT_FORMAT_NAME.to_string(),
            description: None,
            schema,
            strict: None,
        });
    }

    match obj.get("mcp_servers") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(_) => {
            return Err(invalid(
                "mcp_servers: Anthropic's MCP connector runs on Anthropic's servers and cannot be translated to another provider",
            )
            .with_param("mcp_servers"))
        }
    }

    const KNOWN: &[&str] = &[
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "stream",
        "metadata",
        "thinking",
        "output_config",
        "output_format",
        "mcp_servers",
    ];
    for key in obj.keys() {
        if KNOWN.contains(&key.as_str()) {
            continue;
        }
        // Fields understood but carried nowhere because their loss does not change the answer's
        // content (`service_tier`, `container`, `context_management`, `inference_geo`), and
        // fields of newer API versions: reported as dropped, not fatal. `null` asks for nothing.
        if !obj[key].is_null() {
            req.dropped.push(key.clone());
        }
    }
    Ok(req)
}

fn decode_system(system: &Value) -> Result<Vec<String>, CanonicalError> {
    match system {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| match type_of(b) {
                Some("text") => match b.get("text") {
                    Some(Value::String(s)) => Ok(s.clone()),
                    _ => Err(invalid(format!("system[{i}].text: expected a string"))),
                },
                Some(other) => Err(invalid(format!(
                    "system[{i}].type: expected \"text\", got \"{other}\""
                ))),
                None => Err(invalid(format!("system[{i}]: expected a text block"))),
            })
            .collect(),
        _ => Err(
            invalid("system: expected a string or an array of text blocks").with_param("system"),
        ),
    }
}

/// The text of a `{"role": "system"}` entry of `messages`: a string or text blocks (cache
/// hints on them are dropped like every other cache hint).
fn decode_system_message(m: &Value, i: usize) -> Result<Vec<String>, CanonicalError> {
    match m.get("content") {
        Some(content @ (Value::String(_) | Value::Array(_))) => {
            decode_system(content).map_err(|_| {
                invalid(format!(
                    "messages[{i}].content: a system message takes a string or text blocks"
                ))
            })
        }
        Some(_) => Err(invalid(format!(
            "messages[{i}].content: expected a string or an array of text blocks"
        ))),
        None => Err(invalid(format!(
            "messages[{i}].content: required field missing"
        ))),
    }
}

fn decode_message(m: &Value, i: usize) -> Result<Message, CanonicalError> {
    let path = format!("messages[{i}]");
    let role = match m.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(invalid(format!(
                "{path}.role: expected \"user\", \"assistant\" or \"system\", got \"{other}\""
            )))
        }
        None => return Err(invalid(format!("{path}.role: required string missing"))),
    };
    let parts = match m.get("content") {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(blocks)) => {
            let mut parts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                parts.push(decode_block(b, &format!("{path}.content[{j}]"), role)?);
            }
            parts
        }
        Some(_) => {
            return Err(invalid(format!(
                "{path}.content: expected a string or an array of content blocks"
            )))
        }
        None => return Err(invalid(format!("{path}.content: required field missing"))),
    };
    Ok(Message { role, parts })
}

fn decode_block(b: &Value, path: &str, role: Role) -> Result<Part, CanonicalError> {
    let kind = match type_of(b) {
        Some(k) => k,
        None => return Err(invalid(format!("{path}.type: required string missing"))),
    };
    if let Some((_, why)) = UNTRANSLATABLE_BLOCKS.iter().find(|(t, _)| *t == kind) {
        return Err(invalid(format!(
            "{path}: \"{kind}\" content blocks cannot be translated to another provider: {why}"
        )));
    }
    match kind {
        "tool_result" => {
            if role != Role::User {
                return Err(invalid(format!(
                    "{path}: tool_result blocks are only allowed in user messages"
                )));
            }
            let r: AnthropicToolResultIn = typed(b, path)?;
            let content = match &r.content {
                Value::Null => Vec::new(),
                Value::String(s) => vec![Part::Text(s.clone())],
                Value::Array(blocks) => {
                    let mut parts = Vec::with_capacity(blocks.len());
                    for (k, inner) in blocks.iter().enumerate() {
                        let inner_path = format!("{path}.content[{k}]");
                        match type_of(inner) {
                            Some("text" | "image") => {
                                parts.push(decode_block(inner, &inner_path, role)?)
                            }
                            Some(other) => {
                                return Err(invalid(format!(
                                    "{inner_path}: \"{other}\" blocks in a tool result cannot be translated (only text and image are)"
                                )))
                            }
                            None => {
                                return Err(invalid(format!(
                                    "{inner_path}.type: required string missing"
                                )))
                            }
                        }
                    }
                    parts
                }
                _ => {
                    return Err(invalid(format!(
                        "{path}.content: expected a string or an array of content blocks"
                    )))
                }
            };
            Ok(Part::ToolResult(ToolResult {
                call_id: r.tool_use_id,
                name: None,
                content,
                is_error: r.is_error.unwrap_or(false),
            }))
        }
        "tool_use" if role != Role::Assistant => Err(invalid(format!(
            "{path}: tool_use blocks are only allowed in assistant messages"
        ))),
        "text" | "image" | "tool_use" | "thinking" | "redacted_thinking" => {
            match typed::<AnthropicBlock>(b, path)? {
                AnthropicBlock::Text { text } => Ok(Part::Text(text)),
                AnthropicBlock::Image { source } => decode_image(source, path),
                AnthropicBlock::ToolUse { id, name, input } => Ok(Part::ToolCall(ToolCall {
                    id,
                    name,
                    arguments: input.to_string(),
                })),
                AnthropicBlock::Thinking {
                    thinking,
                    signature,
                } => Ok(Part::Thinking(Thinking {
                    text: thinking,
                    signature: Some(signature).filter(|s| !s.is_empty()),
                    redacted: None,
                })),
                AnthropicBlock::RedactedThinking { data } => Ok(Part::Thinking(Thinking {
                    text: String::new(),
                    signature: None,
                    redacted: Some(data),
                })),
                AnthropicBlock::ToolResult { .. } | AnthropicBlock::Other => Err(invalid(format!(
                    "{path}.type: unknown content type \"{kind}\""
                ))),
            }
        }
        other => Err(invalid(format!(
            "{path}.type: unknown content type \"{other}\""
        ))),
    }
}

fn decode_image(source: AnthropicImageSource, path: &str) -> Result<Part, CanonicalError> {
    let source = match source {
        AnthropicImageSource::Base64 { media_type, data } => ImageSource::Base64 { media_type, data },
        AnthropicImageSource::Url { url } => match parse_data_url(&url) {
            Some((media_type, data)) => ImageSource::Base64 { media_type, data },
            None => ImageSource::Url(url),
        },
        AnthropicImageSource::File { .. } => {
            return Err(invalid(format!(
                "{path}.source: images by Files API id cannot be translated to another provider; send the image as base64 or a URL"
            )))
        }
    };
    Ok(Part::Image(Image {
        source,
        detail: None,
    }))
}

/// Type prefixes of Anthropic's server tools: they run on Anthropic's side, so the model
/// elsewhere answers without them. (Client tools such as `bash_*` and `text_editor_*` are
/// executed by the agent, which expects the model to call them: those stay a 400.)
const SERVER_TOOL_PREFIXES: &[&str] = &[
    "web_search_",
    "web_fetch_",
    "code_execution_",
    "tool_search_tool_",
];

/// A declared tool, or the name of one the translation leaves out.
enum DecodedTool {
    Tool(ToolDef),
    /// Reported in `x-bitrouter-dropped-params` (e.g. `tools[10].defer_loading`).
    Dropped(String),
}

/// Decodes one entry of `tools`. Two kinds are left out rather than refused, because the request
/// means the same without them on another provider:
/// - a tool with `defer_loading: true` is not shown to the model until the client's tool search
///   loads it (Claude Code declares such tools and loads them by name later), so a target
///   without tool search must not see it either;
/// - an Anthropic server tool ([`SERVER_TOOL_PREFIXES`]) runs on Anthropic's
///   servers: elsewhere the model answers without it, as it would if it chose not to search.
///   Forced with `tool_choice`, it is a 400: that request cannot be answered without it.
fn decode_tool(t: &Value, i: usize, forced: Option<&str>) -> Result<DecodedTool, CanonicalError> {
    let path = format!("tools[{i}]");
    match type_of(t) {
        None | Some("custom") => {}
        Some(kind) => {
            let name = t.get("name").and_then(Value::as_str).unwrap_or(kind);
            let server = SERVER_TOOL_PREFIXES.iter().any(|p| kind.starts_with(p));
            if server && forced != Some(name) {
                return Ok(DecodedTool::Dropped(format!("{path}.{kind}")));
            }
            let why = if server {
                "it runs on Anthropic's servers, and tool_choice requires it"
            } else {
                "it is a built-in client tool (bash, text editor, computer, memory) with no portable definition"
            };
            return Err(invalid(format!(
                "{path}: the Anthropic-defined tool \"{name}\" (type \"{kind}\") cannot be translated to another provider: \
                 {why}; declare a custom tool with an input_schema instead"
            ))
            .with_param("tools"));
        }
    }
    if t.get("defer_loading").and_then(Value::as_bool) == Some(true)
        && forced != t.get("name").and_then(Value::as_str)
    {
        return Ok(DecodedTool::Dropped(format!("{path}.defer_loading")));
    }
    let tool: AnthropicTool = typed(t, &path)?;
    let mut parameters = tool.input_schema;
    if parameters.is_null() {
        parameters = Value::Object(Map::new());
    }
    Ok(DecodedTool::Tool(ToolDef {
        name: tool.name,
        description: tool.description,
        parameters,
        strict: tool.strict,
    }))
}

// ---------------------------------------------------------------------------------------------
// encode
// ---------------------------------------------------------------------------------------------

fn push_once(dropped: &mut Vec<String>, name: &str) {
    if !dropped.iter().any(|d| d == name) {
        dropped.push(name.to_string());
    }
}

/// Tool-call arguments (JSON text) as the `input` object Anthropic requires. Empty text is `{}`
/// (OpenAI-compatible servers send `""` for argument-less calls); text that is not a JSON object
/// (a truncated or malformed call from another model) is kept verbatim under `"_raw"` rather than
/// silently replaced by `{}`, so the tool side sees the failure instead of running with defaults.
pub(crate) fn arguments_to_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let mut m = Map::new();
            m.insert("_raw".to_string(), Value::String(arguments.to_string()));
            Value::Object(m)
        }
    }
}

/// A tool-use id in the character set Anthropic accepts (`^[a-zA-Z0-9_-]+$`). Applied to both
/// `tool_use.id` and `tool_result.tool_use_id`, so pairs keep matching.
fn sanitize_tool_id(id: &str) -> String {
    if id.is_empty() {
        return "toolu_missing_id".to_string();
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A tool name Anthropic accepts (`^[a-zA-Z0-9_-]{1,64}$`), for names we invent.
fn sanitize_tool_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if s.is_empty() || s.chars().all(|c| c == '_') {
        JSON_TOOL_NAME.to_string()
    } else {
        s
    }
}

/// Whether a JSON schema describes objects (or leaves the type open, which is repaired to one).
fn is_object_schema(schema: &Value) -> bool {
    match schema {
        Value::Null => true,
        Value::Object(m) => match m.get("type") {
            None => !m.contains_key("items") && !m.contains_key("enum"),
            Some(Value::String(t)) => t == "object",
            Some(Value::Array(types)) => types.iter().any(|t| t == "object"),
            Some(_) => false,
        },
        _ => false,
    }
}

/// Anthropic requires `input_schema` to be an object schema with `type: "object"`: a missing
/// schema or `type` is repaired; a schema that is explicitly something else is a 400.
fn object_schema(schema: &Value, what: &str) -> Result<Value, CanonicalError> {
    let mut map = match schema {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => {
            return Err(invalid(format!(
                "{what}: the JSON schema must be an object"
            )))
        }
    };
    match map.get("type") {
        None => {
            map.insert("type".to_string(), Value::String("object".to_string()));
        }
        Some(Value::String(t)) if t == "object" => {}
        Some(Value::Array(types)) if types.iter().any(|t| t == "object") => {
            map.insert("type".to_string(), Value::String("object".to_string()));
        }
        Some(other) => {
            return Err(invalid(format!(
                "{what}: Anthropic requires an object schema (type \"object\"), got type {other}"
            )))
        }
    }
    Ok(Value::Object(map))
}

fn encode_image(image: &Image) -> AnthropicBlock {
    let source = match &image.source {
        ImageSource::Base64 { media_type, data } => AnthropicImageSource::Base64 {
            media_type: media_type.clone(),
            data: data.clone(),
        },
        ImageSource::Url(url) => match parse_data_url(url) {
            Some((media_type, data)) => AnthropicImageSource::Base64 { media_type, data },
            None => AnthropicImageSource::Url { url: url.clone() },
        },
    };
    AnthropicBlock::Image { source }
}

fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}

fn encode_tool_result(r: &ToolResult, dropped: &mut Vec<String>) -> AnthropicBlock {
    let mut blocks = Vec::new();
    for p in &r.content {
        match p {
            Part::Text(t) if !is_blank(t) => blocks.push(AnthropicBlock::Text { text: t.clone() }),
            Part::Text(_) => {}
            Part::Image(img) => {
                if img.detail.is_some() {
                    push_once(dropped, "detail");
                }
                blocks.push(encode_image(img));
            }
            // Tool results hold text and images only; anything else is carried as its text.
            Part::ToolCall(c) => blocks.push(AnthropicBlock::Text {
                text: c.arguments.clone(),
            }),
            Part::ToolResult(_) | Part::Thinking(_) => {}
        }
    }
    let content = match blocks.as_slice() {
        [] => None,
        [AnthropicBlock::Text { text }] => Some(AnthropicToolResultContent::Text(text.clone())),
        _ => Some(AnthropicToolResultContent::Blocks(blocks)),
    };
    AnthropicBlock::ToolResult {
        tool_use_id: sanitize_tool_id(&r.call_id),
        content,
        is_error: r.is_error,
    }
}

fn encode_messages(
    req: &ChatRequest,
    dropped: &mut Vec<String>,
) -> Result<Vec<AnthropicMessage>, CanonicalError> {
    let mut out: Vec<AnthropicMessage> = Vec::with_capacity(req.messages.len() + 1);
    for (i, m) in req.messages.iter().enumerate() {
        let mut content = Vec::with_capacity(m.parts.len());
        for p in &m.parts {
            match (m.role, p) {
                (_, Part::Text(t)) => {
                    // Anthropic rejects empty and whitespace-only text blocks.
                    if !is_blank(t) {
                        content.push(AnthropicBlock::Text { text: t.clone() });
                    }
                }
                (Role::User, Part::Image(img)) => {
                    if img.detail.is_some() {
                        push_once(dropped, "detail");
                    }
                    content.push(encode_image(img));
                }
                (Role::Assistant, Part::Image(_)) => {
                    return Err(invalid(format!(
                        "messages[{i}]: Anthropic does not accept images in assistant messages"
                    )))
                }
                (Role::Assistant, Part::ToolCall(c)) => content.push(AnthropicBlock::ToolUse {
                    id: sanitize_tool_id(&c.id),
                    name: c.name.clone(),
                    input: arguments_to_input(&c.arguments),
                }),
                (Role::User, Part::ToolCall(_)) => {
                    return Err(invalid(format!(
                        "messages[{i}]: a tool call in a user message cannot be sent to Anthropic"
                    )))
                }
                (Role::User, Part::ToolResult(r)) => content.push(encode_tool_result(r, dropped)),
                (Role::Assistant, Part::ToolResult(_)) => {
                    return Err(invalid(format!(
                        "messages[{i}]: a tool result in an assistant message cannot be sent to Anthropic"
                    )))
                }
                (Role::Assistant, Part::Thinking(t)) => {
                    if let Some(data) = &t.redacted {
                        content.push(AnthropicBlock::RedactedThinking { data: data.clone() });
                    } else if let Some(signature) = t.signature.as_ref().filter(|s| !s.is_empty()) {
                        content.push(AnthropicBlock::Thinking {
                            thinking: t.text.clone(),
                            signature: signature.clone(),
                        });
                    } else {
                        // Anthropic rejects thinking blocks without a valid signature.
                        push_once(dropped, "thinking");
                    }
                }
                (Role::User, Part::Thinking(_)) => push_once(dropped, "thinking"),
            }
        }
        if content.is_empty() {
            continue;
        }
        let role = match m.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        match out.last_mut() {
            Some(last) if last.role == role => last.content.extend(content),
            _ => out.push(AnthropicMessage { role, content }),
        }
    }
    // Tool results must come first in their user message.
    for m in out.iter_mut().filter(|m| m.role == "user") {
        m.content
            .sort_by_key(|b| !matches!(b, AnthropicBlock::ToolResult { .. }));
    }
    // A final assistant message (a prefill) must not end with whitespace.
    if let Some(last) = out.last_mut().filter(|m| m.role == "assistant") {
        if let Some(AnthropicBlock::Text { text }) = last.content.last_mut() {
            let trimmed = text.trim_end().len();
            text.truncate(trimmed);
        }
    }
    if out.first().is_some_and(|m| m.role == "assistant") {
        out.insert(
            0,
            AnthropicMessage {
                role: "user",
                content: vec![AnthropicBlock::Text {
                    text: ".".to_string(),
                }],
            },
        );
    }
    if out.is_empty() {
        return Err(invalid(
            "messages: Anthropic requires at least one message with non-empty content",
        )
        .with_param("messages"));
    }
    Ok(out)
}

/// Encodes a canonical request as an Anthropic Messages request body.
pub fn encode_request(req: &ChatRequest, opts: &EncodeOptions) -> Result<Encoded, CanonicalError> {
    let mut dropped: Vec<String> = Vec::new();
    let p = &req.params;

    if let Some(n) = p.n {
        if n != 1 {
            return Err(invalid(format!(
                "n: Anthropic returns exactly one answer per request; n = {n} cannot be translated"
            ))
            .with_param("n"));
        }
    }
    if p.seed.is_some() {
        push_once(&mut dropped, "seed");
    }
    if p.presence_penalty.is_some() {
        push_once(&mut dropped, "presence_penalty");
    }
    if p.frequency_penalty.is_some() {
        push_once(&mut dropped, "frequency_penalty");
    }
    if p.logprobs == Some(true) {
        push_once(&mut dropped, "logprobs");
    }
    if p.top_logprobs.is_some() {
        push_once(&mut dropped, "top_logprobs");
    }
    if req.metadata.is_some() {
        push_once(&mut dropped, "metadata");
    }

    let messages = encode_messages(req, &mut dropped)?;

    // Tools.
    let mut tools = Vec::with_capacity(req.tools.len() + 1);
    for (i, t) in req.tools.iter().enumerate() {
        if t.strict.is_some() {
            push_once(&mut dropped, "strict");
        }
        tools.push(AnthropicTool {
            name: t.name.clone(),
            description: t.description.clone().filter(|d| !d.is_empty()),
            input_schema: object_schema(&t.parameters, &format!("tools[{i}].parameters"))?,
            strict: None,
        });
    }

    // Structured output: a forced tool whose input is the answer.
    let mut structured_output_tool = None;
    let structured = match &req.response_format {
        Some(ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        }) => {
            if strict.is_some() {
                push_once(&mut dropped, "strict");
            }
            if !matches!(schema, Value::Object(_) | Value::Null) {
                return Err(invalid(
                    "response_format.schema: the JSON schema must be an object",
                ));
            }
            let stem = sanitize_tool_name(name);
            if is_object_schema(schema) {
                // Keep the wrapped-tool marker for wrapped schemas only.
                let stem = match stem.strip_suffix(WRAPPED_SUFFIX) {
                    Some(s) => format!("{s}_value"),
                    None => stem,
                };
                let schema = object_schema(schema, "response_format.schema")?;
                Some((stem, "", description.clone(), schema))
            } else {
                // Anthropic tool inputs are objects: a top-level array/string/... answer (Gemini
                // allows them) travels as `{"value": ...}` and the response decoders unwrap it,
                // recognising the tool by the name's suffix.
                let schema = serde_json::json!({
                    "type": "object",
                    "properties": { "value": schema },
                    "required": ["value"],
                });
                Some((stem, WRAPPED_SUFFIX, description.clone(), schema))
            }
        }
        Some(ResponseFormat::JsonObject) => Some((
            JSON_TOOL_NAME.to_string(),
            "",
            None,
            serde_json::json!({"type": "object"}),
        )),
        Some(ResponseFormat::Text) | None => None,
    };
    let mut tool_choice = None;
    if let Some((stem, marker, description, schema)) = structured {
        let compose = |counter: &str| {
            let keep = 64usize
                .saturating_sub(counter.len() + marker.len())
                .min(stem.len());
            format!("{}{counter}{marker}", &stem[..keep])
        };
        let mut name = compose("");
        let mut k = 1;
        while tools.iter().any(|t| t.name == name) {
            name = compose(&format!("_{k}"));
            k += 1;
        }
        tools.push(AnthropicTool {
            name: name.clone(),
            description: Some(description.filter(|d| !d.is_empty()).unwrap_or_else(|| {
                "Give the final answer by calling this tool: its input is the response, a JSON value matching the schema."
                    .to_string()
            })),
            input_schema: schema,
            strict: None,
        });
        tool_choice = Some(AnthropicToolChoice::Tool {
            name: name.clone(),
            disable_parallel_tool_use: None,
        });
        structured_output_tool = Some(name);
        if req.tool_choice.is_some() {
            push_once(&mut dropped, "tool_choice");
        }
    } else if !tools.is_empty() {
        let disable = req.parallel_tool_calls.map(|p| !p);
        tool_choice = match (&req.tool_choice, disable) {
            (None, Some(true)) | (Some(ToolChoice::Auto), Some(_)) => {
                Some(AnthropicToolChoice::Auto {
                    disable_parallel_tool_use: disable,
                })
            }
            (None | Some(ToolChoice::Auto), _) => None,
            (Some(ToolChoice::Required), _) => Some(AnthropicToolChoice::Any {
                disable_parallel_tool_use: disable,
            }),
            (Some(ToolChoice::Named(name)), _) => Some(AnthropicToolChoice::Tool {
                name: name.clone(),
                disable_parallel_tool_use: disable,
            }),
            (Some(ToolChoice::None), _) => Some(AnthropicToolChoice::None),
        };
    } else if matches!(
        req.tool_choice,
        Some(ToolChoice::Required | ToolChoice::Named(_))
    ) {
        return Err(invalid(
            "tool_choice: a tool call is required but the request declares no tools",
        )
        .with_param("tool_choice"));
    }
    let forced_tool = matches!(
        tool_choice,
        Some(AnthropicToolChoice::Any { .. } | AnthropicToolChoice::Tool { .. })
    );

    // max_tokens is required by Anthropic.
    let default_max = if opts.capabilities.default_max_tokens > 0 {
        opts.capabilities.default_max_tokens
    } else {
        FALLBACK_MAX_TOKENS
    };
    let mut max_tokens = p.max_tokens.unwrap_or(default_max);

    // Reasoning.
    let mut thinking = None;
    let mut temperature = p.temperature;
    let mut top_p = p.top_p;
    let mut top_k = p.top_k;
    if let Some(r) = &req.reasoning {
        let budget = r.budget().unwrap_or(DEFAULT_THINKING_BUDGET);
        if budget == 0 {
            thinking = Some(AnthropicThinking::Disabled);
        } else if forced_tool {
            // "Thinking may not be enabled when tool_choice forces tool use."
            push_once(&mut dropped, "reasoning");
        } else if last_assistant_tool_use_without_thinking(&messages) {
            // With thinking on, the assistant turn being continued must start with its signed
            // thinking block; a history from another model has none.
            push_once(&mut dropped, "reasoning");
        } else {
            let budget = budget.max(MIN_THINKING_BUDGET);
            if max_tokens <= budget {
                max_tokens = budget + default_max;
            }
            thinking = Some(AnthropicThinking::Enabled {
                budget_tokens: budget,
            });
            // Thinking is incompatible with temperature/top_k changes and top_p below 0.95.
            if temperature.take().is_some_and(|t| t != 1.0) {
                push_once(&mut dropped, "temperature");
            }
            if top_k.take().is_some() {
                push_once(&mut dropped, "top_k");
            }
            if top_p.is_some_and(|v| v < 0.95) {
                top_p = None;
                push_once(&mut dropped, "top_p");
            }
        }
    }
    if let Some(t) = temperature {
        // Anthropic's range is 0..=1 (OpenAI's is 0..=2).
        if t > 1.0 {
            temperature = Some(1.0);
            push_once(&mut dropped, "temperature");
        }
    }
    // Current Claude models reject temperature and top_p together: keep temperature.
    if temperature.is_some() && top_p.is_some() {
        top_p = None;
        push_once(&mut dropped, "top_p");
    }

    // Anthropic rejects whitespace-only stop sequences ("each stop sequence must contain
    // non-whitespace"): they are dropped (recorded as `stop`) rather than failing the request.
    let stop_sequences: Vec<String> = p.stop.iter().filter(|s| !is_blank(s)).cloned().collect();
    if stop_sequences.len() != p.stop.len() {
        push_once(&mut dropped, "stop");
    }

    let system: Vec<&String> = req.system.iter().filter(|s| !is_blank(s)).collect();
    let system = match system.as_slice() {
        [] => None,
        [one] => Some(AnthropicSystem::Text((*one).clone())),
        many => Some(AnthropicSystem::Blocks(
            many.iter()
                .map(|s| AnthropicBlock::Text { text: (*s).clone() })
                .collect(),
        )),
    };

    let body = AnthropicRequest {
        model: req.model.clone(),
        max_tokens,
        system,
        messages,
        metadata: req.user.as_ref().map(|u| AnthropicMetadata {
            user_id: Some(u.clone()),
        }),
        stop_sequences,
        stream: req.stream,
        temperature,
        top_p,
        top_k,
        tools,
        tool_choice,
        thinking,
    };
    let body = serde_json::to_vec(&body).map_err(|e| {
        CanonicalError::new(
            crate::canonical::ErrorKind::Internal,
            format!("could not serialise the Anthropic request: {e}"),
        )
    })?;
    Ok(Encoded {
        body,
        dropped,
        structured_output_tool,
    })
}

fn last_assistant_tool_use_without_thinking(messages: &[AnthropicMessage]) -> bool {
    let Some(last) = messages.iter().rev().find(|m| m.role == "assistant") else {
        return false;
    };
    let has_tool_use = last
        .content
        .iter()
        .any(|b| matches!(b, AnthropicBlock::ToolUse { .. }));
    let starts_with_thinking = matches!(
        last.content.first(),
        Some(AnthropicBlock::Thinking { .. } | AnthropicBlock::RedactedThinking { .. })
    );
    has_tool_use && !starts_with_thinking
}
