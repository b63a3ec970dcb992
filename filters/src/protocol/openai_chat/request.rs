//! Chat Completions requests <-> canonical [`ChatRequest`].

use super::wire::*;
use crate::canonical::{
    CanonicalError, ChatRequest, EncodeOptions, Encoded, Image, ImageSource, Message, Params, Part,
    Reasoning, ResponseFormat, Role, Thinking, ToolCall, ToolChoice, ToolDef, ToolResult,
};
use crate::protocol::util::{self, invalid};
use bitrouter_config::MaxTokensParam;
use serde::Deserialize;
use serde_json::{json, Map, Value};

const WHAT: &str = "Chat Completions";

// =============================================================================================
// Decode
// =============================================================================================

pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    let wire: OpenAIChatRequest = match serde_json::from_slice(body) {
        Ok(w) => w,
        Err(_) => return Err(locate_error(body)),
    };
    Decoder::default().decode(wire)
}

/// The typed parse failed: find the field at fault (each top-level field is parsed on its own)
/// and say what was wrong with it.
fn locate_error(body: &[u8]) -> CanonicalError {
    let value = match util::parse_request_json(body, WHAT) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Value::Object(map) = value else {
        return invalid(format!("the {WHAT} request body must be a JSON object"));
    };
    for (key, v) in map {
        let mut one = Map::new();
        one.insert(key.clone(), v);
        if let Err(e) = OpenAIChatRequest::deserialize(Value::Object(one)) {
            let err = invalid(join_path(&key, &e.to_string()));
            return match static_param(&key) {
                Some(p) => err.with_param(p),
                None => err,
            };
        }
    }
    invalid(format!("the {WHAT} request body is invalid"))
}

/// The `param` of an error about a known top-level field.
fn static_param(key: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "temperature",
        "top_p",
        "top_k",
        "max_tokens",
        "max_completion_tokens",
        "stop",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "n",
        "logprobs",
        "top_logprobs",
        "reasoning_effort",
        "user",
        "metadata",
        "stream",
        "stream_options",
        "functions",
        "function_call",
        "safety_identifier",
        "reasoning",
        "modalities",
        "audio",
    ];
    KNOWN.iter().copied().find(|k| *k == key)
}

fn cannot_translate(path: &str, what: &str) -> CanonicalError {
    invalid(format!(
        "{path}: {what} cannot be translated to the other protocols bitrouter routes to; remove it or route this request to an OpenAI Chat Completions upstream"
    ))
    .with_code("untranslatable_feature")
}

#[derive(Default)]
struct Decoder {
    req: ChatRequest,
    /// The previous non-system message was a tool/function result: a following tool result
    /// or user message merges into the same canonical user message.
    after_tool: bool,
    /// Legacy `function_call`s not yet answered by a `function` message: (id, name).
    pending_functions: Vec<(String, String)>,
    dropped_name: bool,
}

impl Decoder {
    fn decode(mut self, wire: OpenAIChatRequest) -> Result<ChatRequest, CanonicalError> {
        self.req.model = match wire.model {
            Some(m) if !m.is_empty() => m,
            _ => {
                return Err(invalid("model: required (the model to use)")
                    .with_code("missing_required_parameter")
                    .with_param("model"))
            }
        };
        let messages = match wire.messages {
            Some(Seq(m)) if !m.is_empty() => m,
            Some(_) => {
                return Err(
                    invalid("messages: must contain at least one message").with_param("messages")
                )
            }
            None => {
                return Err(invalid("messages: required (the conversation so far)")
                    .with_code("missing_required_parameter")
                    .with_param("messages"))
            }
        };
        for (i, message) in messages.into_iter().enumerate() {
            self.message(i, message)?;
        }

        // Tools.
        for (i, tool) in wire
            .tools
            .map(|s| s.0)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let path = format!("tools[{i}]");
            match tool.kind.as_deref() {
                None | Some("function") => {}
                Some("custom") => {
                    return Err(
                        cannot_translate(&path, "a custom tool (free-form text input)")
                            .with_param("tools"),
                    )
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "{path}.type: unsupported tool type \"{other}\" (expected \"function\")"
                    ))
                    .with_param("tools"))
                }
            }
            let Some(f) = tool.function else {
                return Err(
                    invalid(format!("{path}.function: required for a function tool"))
                        .with_param("tools"),
                );
            };
            self.req.tools.push(tool_def(f));
        }
        for f in wire.functions.map(|s| s.0).unwrap_or_default() {
            self.req.tools.push(tool_def(f));
        }
        self.req.tool_choice = match wire.tool_choice {
            Some(v) if !v.is_null() => Some(tool_choice(&v, "tool_choice")?),
            _ => match wire.function_call {
                Some(v) if !v.is_null() => Some(tool_choice(&v, "function_call")?),
                _ => None,
            },
        };
        self.req.parallel_tool_calls = wire.parallel_tool_calls;

        // Output shape.
        self.req.response_format = wire.response_format.map(|f| match f {
            OpenAIChatResponseFormat::Text => ResponseFormat::Text,
            OpenAIChatResponseFormat::JsonObject => ResponseFormat::JsonObject,
            OpenAIChatResponseFormat::JsonSchema { json_schema } => ResponseFormat::JsonSchema {
                name: json_schema.name.unwrap_or_else(|| "response".to_string()),
                description: json_schema.description,
                schema: json_schema.schema.unwrap_or_else(|| json!({})),
                strict: json_schema.strict,
            },
        });
        if wire.modalities.iter().flatten().any(|m| m == "audio") {
            return Err(cannot_translate("modalities", "audio output").with_param("modalities"));
        }
        if wire.audio.as_ref().is_some_and(|a| !a.is_null()) {
            return Err(cannot_translate("audio", "audio output").with_param("audio"));
        }

        self.req.params = Params {
            temperature: wire.temperature,
            top_p: wire.top_p,
            top_k: wire.top_k,
            max_tokens: wire.max_completion_tokens.or(wire.max_tokens),
            stop: wire.stop.map(|s| s.0).unwrap_or_default(),
            seed: wire.seed,
            presence_penalty: wire.presence_penalty,
            frequency_penalty: wire.frequency_penalty,
            n: wire.n,
            logprobs: wire.logprobs,
            top_logprobs: wire.top_logprobs,
        };

        let ext = wire.reasoning.unwrap_or_default();
        let effort = wire.reasoning_effort.or(ext.effort);
        if effort.is_some() || ext.max_tokens.is_some() || ext.exclude.is_some() {
            self.req.reasoning = Some(Reasoning {
                effort,
                budget_tokens: ext.max_tokens,
                include_thoughts: ext.exclude.map(|e| !e),
            });
        }

        self.req.stream = wire.stream.unwrap_or(false);
        self.req.include_usage = wire
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        match (wire.user, wire.safety_identifier) {
            (Some(u), Some(_)) => {
                self.req.user = Some(u);
                self.req.dropped.push("safety_identifier".to_string());
            }
            (u, s) => self.req.user = u.or(s),
        }
        self.req.metadata = wire.metadata.filter(|m| !m.is_null());
        // Everything else (`logit_bias`, `service_tier`, `store`, `prediction`,
        // `web_search_options`, `verbosity`, `prompt_cache_key`, vendor extensions) has no
        // canonical place.
        for (key, value) in wire.extra {
            if !value.is_null() {
                self.req.dropped.push(key);
            }
        }
        Ok(self.req)
    }

    fn message(&mut self, i: usize, message: OpenAIChatMessage) -> Result<(), CanonicalError> {
        let path = format!("messages[{i}]");
        match message {
            OpenAIChatMessage::System(m) | OpenAIChatMessage::Developer(m) => {
                self.note_name(m.name.as_deref());
                match m.content {
                    OpenAIChatContent::Text(s) => self.req.system.push(s),
                    OpenAIChatContent::Parts(parts) => {
                        for (j, part) in parts.into_iter().enumerate() {
                            match part {
                                OpenAIChatContentPart::Text { text } => self.req.system.push(text),
                                other => {
                                    return Err(invalid(format!(
                                        "{path}.content[{j}]: a system/developer message takes only text parts, got \"{}\"",
                                        part_type(&other)
                                    ))
                                    .with_param("messages"))
                                }
                            }
                        }
                    }
                }
            }
            OpenAIChatMessage::User(m) => {
                self.note_name(m.name.as_deref());
                let parts = content_parts(m.content, &path, false)?;
                match self.req.messages.last_mut() {
                    Some(last) if self.after_tool => last.parts.extend(parts),
                    _ => self.req.messages.push(Message {
                        role: Role::User,
                        parts,
                    }),
                }
                self.after_tool = false;
            }
            OpenAIChatMessage::Assistant(m) => {
                self.assistant(i, &path, m)?;
                self.after_tool = false;
            }
            OpenAIChatMessage::Tool(m) => {
                let content = match m.content {
                    Some(c) => content_parts(c, &path, false)?,
                    None => Vec::new(),
                };
                self.tool_result(ToolResult {
                    call_id: m.tool_call_id,
                    name: None,
                    content,
                    is_error: false,
                });
            }
            OpenAIChatMessage::Function(m) => {
                let call_id = match self
                    .pending_functions
                    .iter()
                    .rposition(|(_, n)| *n == m.name)
                {
                    Some(k) => self.pending_functions.remove(k).0,
                    None => format!("call_{}_{i}", m.name),
                };
                self.tool_result(ToolResult {
                    call_id,
                    name: Some(m.name),
                    content: vec![Part::Text(m.content.unwrap_or_default())],
                    is_error: false,
                });
            }
        }
        Ok(())
    }

    fn note_name(&mut self, name: Option<&str>) {
        if name.is_some() && !self.dropped_name {
            self.dropped_name = true;
            self.req.dropped.push("messages[].name".to_string());
        }
    }

    fn tool_result(&mut self, result: ToolResult) {
        match self.req.messages.last_mut() {
            Some(last) if self.after_tool => last.parts.push(Part::ToolResult(result)),
            _ => self.req.messages.push(Message {
                role: Role::User,
                parts: vec![Part::ToolResult(result)],
            }),
        }
        self.after_tool = true;
    }

    fn assistant(
        &mut self,
        i: usize,
        path: &str,
        m: OpenAIChatAssistantMessage,
    ) -> Result<(), CanonicalError> {
        self.note_name(m.name.as_deref());
        if m.audio.as_ref().is_some_and(|a| !a.is_null()) {
            return Err(
                cannot_translate(&format!("{path}.audio"), "a previous audio response")
                    .with_param("messages"),
            );
        }
        let mut parts = Vec::new();
        let reasoning = m
            .reasoning_content
            .filter(|r| !r.is_empty())
            .or(m.reasoning.filter(|r| !r.is_empty()));
        if let Some(text) = reasoning {
            parts.push(Part::Thinking(Thinking {
                text,
                ..Thinking::default()
            }));
        }
        if let Some(content) = m.content {
            for part in content_parts(content, path, true)? {
                match part {
                    Part::Text(t) if t.is_empty() => {}
                    p => parts.push(p),
                }
            }
        }
        if let Some(refusal) = m.refusal.filter(|r| !r.is_empty()) {
            parts.push(Part::Text(refusal));
        }
        for (j, call) in m
            .tool_calls
            .map(|s| s.0)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let cpath = format!("{path}.tool_calls[{j}]");
            match call.kind.as_deref() {
                None | Some("function") => {}
                Some("custom") => {
                    return Err(
                        cannot_translate(&cpath, "a custom tool call").with_param("messages")
                    )
                }
                Some(other) => {
                    return Err(invalid(format!(
                        "{cpath}.type: unsupported tool call type \"{other}\""
                    ))
                    .with_param("messages"))
                }
            }
            let Some(f) = call.function else {
                return Err(invalid(format!("{cpath}.function: required")).with_param("messages"));
            };
            let Some(name) = f.name.filter(|n| !n.is_empty()) else {
                return Err(
                    invalid(format!("{cpath}.function.name: required")).with_param("messages")
                );
            };
            let id = call
                .id
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("call_{i}_{j}"));
            parts.push(Part::ToolCall(ToolCall {
                id,
                name,
                arguments: arguments_text(f.arguments.as_ref()),
            }));
        }
        if let Some(f) = m.function_call {
            let Some(name) = f.name.filter(|n| !n.is_empty()) else {
                return Err(
                    invalid(format!("{path}.function_call.name: required")).with_param("messages")
                );
            };
            let id = format!("call_{name}_{i}");
            self.pending_functions.push((id.clone(), name.clone()));
            parts.push(Part::ToolCall(ToolCall {
                id,
                name,
                arguments: arguments_text(f.arguments.as_ref()),
            }));
        }
        self.req.messages.push(Message {
            role: Role::Assistant,
            parts,
        });
        Ok(())
    }
}

/// Tool-call arguments as JSON text: a string as-is, an object serialised, absent as `{}`.
pub(super) fn arguments_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn part_type(p: &OpenAIChatContentPart) -> &'static str {
    match p {
        OpenAIChatContentPart::Text { .. } => "text",
        OpenAIChatContentPart::ImageUrl { .. } => "image_url",
        OpenAIChatContentPart::InputAudio { .. } => "input_audio",
        OpenAIChatContentPart::File { .. } => "file",
        OpenAIChatContentPart::Refusal { .. } => "refusal",
        OpenAIChatContentPart::Thinking { .. } => "thinking",
    }
}

/// Canonical parts of a user/tool/assistant `content`. `assistant` allows refusal and thinking.
fn content_parts(
    content: OpenAIChatContent,
    path: &str,
    assistant: bool,
) -> Result<Vec<Part>, CanonicalError> {
    let parts = match content {
        OpenAIChatContent::Text(s) => return Ok(vec![Part::Text(s)]),
        OpenAIChatContent::Parts(p) => p,
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.into_iter().enumerate() {
        let ppath = format!("{path}.content[{j}]");
        match part {
            OpenAIChatContentPart::Text { text } => out.push(Part::Text(text)),
            OpenAIChatContentPart::ImageUrl { image_url } => {
                out.push(Part::Image(image(image_url, &ppath)?))
            }
            OpenAIChatContentPart::InputAudio { .. } => {
                return Err(
                    cannot_translate(&ppath, "audio input (input_audio)").with_param("messages")
                )
            }
            OpenAIChatContentPart::File { .. } => {
                return Err(cannot_translate(&ppath, "a file input").with_param("messages"))
            }
            OpenAIChatContentPart::Refusal { refusal } if assistant => {
                out.push(Part::Text(refusal))
            }
            OpenAIChatContentPart::Thinking { thinking } if assistant => {
                out.push(Part::Thinking(Thinking {
                    text: thinking_text(&thinking),
                    ..Thinking::default()
                }))
            }
            other => {
                return Err(invalid(format!(
                    "{ppath}.type: \"{}\" parts are only valid in assistant messages",
                    part_type(&other)
                ))
                .with_param("messages"))
            }
        }
    }
    Ok(out)
}

fn image(image_url: OpenAIChatImageUrl, path: &str) -> Result<Image, CanonicalError> {
    let url = image_url.url;
    let source = if url.starts_with("data:") {
        match util::parse_data_url(&url) {
            Some((media_type, data)) => ImageSource::Base64 { media_type, data },
            None => {
                return Err(invalid(format!(
                    "{path}.image_url.url: a data URL must be base64-encoded (data:<media type>;base64,<data>)"
                ))
                .with_param("messages"))
            }
        }
    } else if url.starts_with("http://") || url.starts_with("https://") {
        ImageSource::Url(url)
    } else {
        return Err(invalid(format!(
            "{path}.image_url.url: expected an http(s) URL or a base64 data URL"
        ))
        .with_param("messages"));
    };
    Ok(Image {
        source,
        detail: image_url.detail,
    })
}

fn tool_def(f: OpenAIChatFunctionDef) -> ToolDef {
    ToolDef {
        name: f.name,
        description: f.description,
        parameters: match f.parameters {
            Some(p) if !p.is_null() => p,
            _ => json!({"type": "object", "properties": {}}),
        },
        strict: f.strict,
    }
}

/// `tool_choice` (or legacy `function_call`) to canonical.
fn tool_choice(v: &Value, field: &'static str) -> Result<ToolChoice, CanonicalError> {
    let bad = |msg: String| invalid(format!("{field}: {msg}")).with_param(field);
    match v {
        Value::String(s) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" if field == "tool_choice" => Ok(ToolChoice::Required),
            other => Err(bad(format!(
                "unknown value \"{other}\" (expected \"auto\", \"none\"{} or an object naming a function)",
                if field == "tool_choice" { ", \"required\"" } else { "" }
            ))),
        },
        Value::Object(o) => {
            if field == "function_call" {
                return match o.get("name").and_then(Value::as_str) {
                    Some(name) => Ok(ToolChoice::Named(name.to_string())),
                    None => Err(bad("expected {\"name\": \"...\"}".to_string())),
                };
            }
            match o.get("type").and_then(Value::as_str) {
                Some("function") | None => {
                    match o.get("function").and_then(|f| f.get("name")).and_then(Value::as_str) {
                        Some(name) => Ok(ToolChoice::Named(name.to_string())),
                        None => Err(bad("function.name: required".to_string())),
                    }
                }
                Some("allowed_tools") => Err(cannot_translate(field, "an allowed_tools tool choice").with_param(field)),
                Some("custom") => Err(cannot_translate(field, "a custom tool choice").with_param(field)),
                Some(other) => Err(bad(format!("unknown type \"{other}\""))),
            }
        }
        _ => Err(bad("expected a string or an object".to_string())),
    }
}

// =============================================================================================
// Encode
// =============================================================================================

struct Dropped(Vec<String>);

impl Dropped {
    fn push(&mut self, name: &str) {
        if !self.0.iter().any(|d| d == name) {
            self.0.push(name.to_string());
        }
    }
}

pub fn encode_request(req: &ChatRequest, opts: &EncodeOptions) -> Result<Encoded, CanonicalError> {
    let caps = &opts.capabilities;
    let mut dropped = Dropped(Vec::new());
    let mut messages = Vec::with_capacity(req.system.len() + req.messages.len());
    for s in &req.system {
        messages.push(OpenAIChatMessage::System(OpenAIChatSystemMessage {
            content: OpenAIChatContent::Text(s.clone()),
            name: None,
        }));
    }
    for m in &req.messages {
        match m.role {
            Role::User => encode_user(m, &mut messages, &mut dropped),
            Role::Assistant => messages.push(encode_assistant(m, &mut dropped)),
        }
    }

    let has_tools = !req.tools.is_empty();
    let tools = has_tools.then(|| {
        Seq(req
            .tools
            .iter()
            .map(|t| OpenAIChatTool {
                kind: Some("function".to_string()),
                function: Some(OpenAIChatFunctionDef {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: (!t.parameters.is_null()).then(|| t.parameters.clone()),
                    strict: t.strict,
                }),
            })
            .collect())
    });
    // OpenAI rejects `tool_choice` and `parallel_tool_calls` without `tools`.
    let tool_choice = match (&req.tool_choice, has_tools) {
        (Some(c), true) => Some(match c {
            ToolChoice::Auto => json!("auto"),
            ToolChoice::None => json!("none"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Named(name) => json!({"type": "function", "function": {"name": name}}),
        }),
        (Some(_), false) => {
            dropped.push("tool_choice");
            None
        }
        (None, _) => None,
    };
    let parallel_tool_calls = match (req.parallel_tool_calls, has_tools) {
        (Some(p), true) => Some(p),
        (Some(_), false) => {
            dropped.push("parallel_tool_calls");
            None
        }
        (None, _) => None,
    };

    let p = &req.params;
    let mut sampling = |value: Option<f64>, name: &str| match value {
        // Models that take only the default sampling (OpenAI's reasoning models).
        Some(v) if !caps.accepts_sampling && v != 1.0 => {
            dropped.push(name);
            None
        }
        v => v,
    };
    let temperature = sampling(p.temperature, "temperature");
    let top_p = sampling(p.top_p, "top_p");
    if p.top_k.is_some() {
        dropped.push("top_k");
    }
    let (max_tokens, max_completion_tokens) = match caps.max_tokens_param {
        MaxTokensParam::MaxCompletionTokens => (None, p.max_tokens),
        MaxTokensParam::MaxTokens => (p.max_tokens, None),
    };

    let mut reasoning_effort = None;
    if let Some(r) = &req.reasoning {
        if let Some(effort) = r.effort_level() {
            if !caps.accepts_reasoning_effort {
                dropped.push("reasoning");
            } else {
                reasoning_effort = Some(effort);
            }
        }
        if r.include_thoughts.is_some() {
            dropped.push("reasoning.include_thoughts");
        }
    }

    let response_format = req.response_format.as_ref().map(|f| match f {
        ResponseFormat::Text => OpenAIChatResponseFormat::Text,
        ResponseFormat::JsonObject => OpenAIChatResponseFormat::JsonObject,
        ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            strict,
        } => OpenAIChatResponseFormat::JsonSchema {
            json_schema: OpenAIChatJsonSchema {
                name: Some(if name.is_empty() {
                    "response".to_string()
                } else {
                    name.clone()
                }),
                description: description.clone(),
                schema: Some(schema.clone()),
                strict: *strict,
            },
        },
    });

    let wire = OpenAIChatRequest {
        model: Some(req.model.clone()),
        messages: Some(Seq(messages)),
        tools,
        tool_choice,
        parallel_tool_calls,
        response_format,
        temperature,
        top_p,
        top_k: None,
        max_tokens,
        max_completion_tokens,
        stop: (!p.stop.is_empty()).then(|| OpenAIChatStop(p.stop.clone())),
        seed: p.seed,
        presence_penalty: p.presence_penalty,
        frequency_penalty: p.frequency_penalty,
        n: p.n,
        logprobs: p.logprobs,
        top_logprobs: p.top_logprobs,
        reasoning_effort,
        user: req.user.clone(),
        metadata: req.metadata.clone(),
        stream: req.stream.then_some(true),
        // Always ask for usage: clients of protocols that always carry usage need it.
        stream_options: req.stream.then_some(OpenAIChatStreamOptions {
            include_usage: Some(true),
        }),
        ..OpenAIChatRequest::default()
    };
    let body = serde_json::to_vec(&wire).map_err(|e| {
        CanonicalError::new(
            crate::canonical::ErrorKind::Internal,
            format!("encoding the {WHAT} request failed: {e}"),
        )
    })?;
    Ok(Encoded {
        body,
        dropped: dropped.0,
        structured_output_tool: None,
    })
}

fn encode_image(image: &Image) -> OpenAIChatContentPart {
    let url = match &image.source {
        ImageSource::Url(u) => u.clone(),
        ImageSource::Base64 { media_type, data } => util::data_url(media_type, data),
    };
    OpenAIChatContentPart::ImageUrl {
        image_url: OpenAIChatImageUrl {
            url,
            detail: image.detail.clone(),
        },
    }
}

/// A user message's content: a string when it is one text part, else an array of parts.
fn user_content(mut parts: Vec<OpenAIChatContentPart>) -> OpenAIChatContent {
    if parts.len() == 1 {
        if let Some(OpenAIChatContentPart::Text { .. }) = parts.first() {
            if let Some(OpenAIChatContentPart::Text { text }) = parts.pop() {
                return OpenAIChatContent::Text(text);
            }
        }
    }
    if parts.is_empty() {
        return OpenAIChatContent::Text(String::new());
    }
    OpenAIChatContent::Parts(parts)
}

/// A canonical user message: one `tool` message per tool result (first: they must follow the
/// assistant's tool calls), then a `user` message with the other parts, if any. Images in tool
/// results cannot go in `tool` messages (most servers take text only): they move to that user
/// message, and the tool message says so.
fn encode_user(m: &Message, out: &mut Vec<OpenAIChatMessage>, dropped: &mut Dropped) {
    let mut rest: Vec<OpenAIChatContentPart> = Vec::new();
    let mut moved_images: Vec<OpenAIChatContentPart> = Vec::new();
    for part in &m.parts {
        match part {
            Part::Text(t) => rest.push(OpenAIChatContentPart::Text { text: t.clone() }),
            Part::Image(i) => rest.push(encode_image(i)),
            Part::ToolResult(r) => {
                let mut texts: Vec<&str> = Vec::new();
                let mut images = Vec::new();
                for c in &r.content {
                    match c {
                        Part::Text(t) => texts.push(t),
                        Part::Image(i) => images.push(encode_image(i)),
                        _ => dropped.push("tool_result.content"),
                    }
                }
                let mut text = texts.join("\n");
                if !images.is_empty() {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(&format!(
                        "[{} image(s) returned by this tool are attached in the next user message]",
                        images.len()
                    ));
                    moved_images.push(OpenAIChatContentPart::Text {
                        text: format!("Image(s) returned by tool call {}:", r.call_id),
                    });
                    moved_images.extend(images);
                }
                if r.is_error {
                    dropped.push("tool_result.is_error");
                }
                out.push(OpenAIChatMessage::Tool(OpenAIChatToolMessage {
                    tool_call_id: r.call_id.clone(),
                    content: Some(OpenAIChatContent::Text(text)),
                }));
            }
            Part::Thinking(_) => dropped.push("thinking"),
            Part::ToolCall(_) => dropped.push("tool_call"),
        }
    }
    let had_results = m.parts.iter().any(|p| matches!(p, Part::ToolResult(_)));
    if had_results && rest.is_empty() && moved_images.is_empty() {
        return;
    }
    moved_images.extend(rest);
    out.push(OpenAIChatMessage::User(OpenAIChatUserMessage {
        content: user_content(moved_images),
        name: None,
    }));
}

fn encode_assistant(m: &Message, dropped: &mut Dropped) -> OpenAIChatMessage {
    let mut texts: Vec<String> = Vec::new();
    let mut calls = Vec::new();
    for part in &m.parts {
        match part {
            Part::Text(t) => texts.push(t.clone()),
            Part::ToolCall(c) => calls.push(OpenAIChatToolCall {
                index: None,
                id: Some(c.id.clone()),
                kind: Some("function".to_string()),
                function: Some(OpenAIChatFunctionCall {
                    name: Some(c.name.clone()),
                    arguments: Some(Value::String(if c.arguments.trim().is_empty() {
                        "{}".to_string()
                    } else {
                        c.arguments.clone()
                    })),
                }),
            }),
            Part::Thinking(_) => dropped.push("thinking"),
            Part::Image(_) => dropped.push("assistant image"),
            Part::ToolResult(_) => dropped.push("tool_result in an assistant message"),
        }
    }
    let content = match texts.len() {
        0 if !calls.is_empty() => None,
        0 => Some(OpenAIChatContent::Text(String::new())),
        1 => texts.pop().map(OpenAIChatContent::Text),
        _ => Some(OpenAIChatContent::Parts(
            texts
                .into_iter()
                .map(|text| OpenAIChatContentPart::Text { text })
                .collect(),
        )),
    };
    OpenAIChatMessage::Assistant(OpenAIChatAssistantMessage {
        content,
        tool_calls: (!calls.is_empty()).then_some(Seq(calls)),
        ..OpenAIChatAssistantMessage::default()
    })
}
