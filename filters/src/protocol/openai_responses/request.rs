//! Responses requests: decode (a client's body -> canonical) and encode (canonical -> the body
//! sent to a Responses upstream).

use serde_json::{json, Map, Value};

use super::wire::{
    decode_at, join, ResponsesContentPart, ResponsesFunctionCallItem,
    ResponsesFunctionCallOutputItem, ResponsesFunctionTool, ResponsesInputContent,
    ResponsesInputItem, ResponsesMessageItem, ResponsesNamespaceTool, ResponsesReasoningConfig,
    ResponsesReasoningItem, ResponsesRequest, ResponsesRequestOut, ResponsesText,
    ResponsesTextConfig, ResponsesTextFormat, ResponsesToolChoice, ResponsesToolOutput,
    REQUEST_FIELDS,
};
use super::{join_encrypted, split_encrypted};
use crate::canonical::request::flat_in;
use crate::canonical::{
    CanonicalError, ChatRequest, EncodeOptions, Encoded, ErrorKind, Image, ImageSource, Message,
    NamespacedTool, Params, Part, Reasoning, ResponseFormat, Role, Thinking, ToolCall, ToolChoice,
    ToolDef, ToolResult,
};
use crate::protocol::util::{data_url, invalid, parse_data_url, parse_request_json, value_to_text};

/// The Responses API rejects `max_output_tokens` below this.
const MIN_OUTPUT_TOKENS: u64 = 16;

const LOGPROBS_INCLUDE: &str = "message.output_text.logprobs";
const ENCRYPTED_REASONING_INCLUDE: &str = "reasoning.encrypted_content";

fn bad(message: String) -> CanonicalError {
    invalid(message)
}

/// A 400 for a stateful feature: the conversation must travel in the request.
fn stateless(param: &'static str, what: &str, fix: &str) -> CanonicalError {
    invalid(format!(
        "{what} is not supported: this model is served through another protocol, so bitrouter \
         translates Responses requests statelessly and keeps no responses or conversations. {fix}"
    ))
    .with_code("unsupported_parameter")
    .with_param(param)
}

const SEND_INPUT: &str = "Send the whole conversation in `input` instead.";

/// A 400 for a feature that exists only on OpenAI's side.
fn untranslatable(param: &'static str, message: String) -> CanonicalError {
    untranslatable_hint(param, message, "")
}

fn untranslatable_hint(param: &'static str, message: String, hint: &str) -> CanonicalError {
    invalid(format!(
        "{message} cannot be translated: this model is served through another protocol{hint}"
    ))
    .with_code("unsupported_parameter")
    .with_param(param)
}

// =============================================================================================
// Decode

/// Decodes a client's `POST /v1/responses` body.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    let value = parse_request_json(body, "Responses")?;
    let Value::Object(fields) = &value else {
        return Err(invalid("the Responses request body must be a JSON object"));
    };
    let req: ResponsesRequest = decode_at(&value, "", bad)?;
    let mut out = ChatRequest::default();
    for key in fields.keys() {
        if !REQUEST_FIELDS.contains(&key.as_str()) {
            out.dropped.push(key.clone());
        }
    }

    // Stateful features first: they make everything else moot.
    if req.previous_response_id.is_some() {
        return Err(stateless(
            "previous_response_id",
            "`previous_response_id`",
            SEND_INPUT,
        ));
    }
    if req.conversation.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(stateless("conversation", "`conversation`", SEND_INPUT));
    }
    if req.store == Some(true) {
        return Err(stateless(
            "store",
            "`store: true`",
            "Set `store` to false (or leave it out) and send the whole conversation in `input`.",
        ));
    }
    if req.background == Some(true) {
        return Err(stateless(
            "background",
            "`background: true`",
            "Leave `background` out (use `stream: true` for long generations).",
        ));
    }
    if req.prompt.as_ref().is_some_and(|p| !p.is_null()) {
        return Err(untranslatable(
            "prompt",
            "`prompt` (a prompt template stored at OpenAI, referenced by id)".to_string(),
        ));
    }

    out.model = match req.model {
        Some(m) if !m.is_empty() => m,
        _ => return Err(invalid("model: required").with_param("model")),
    };

    if let Some(instructions) = req.instructions {
        if !instructions.is_empty() {
            out.system.push(instructions);
        }
    }
    // Tools before the input: history calls to namespaced tools are renamed by their table.
    let tools = decode_tools(
        req.tools.as_deref().unwrap_or_default(),
        req.tool_choice.as_ref(),
    )?;
    let mut input = InputDecoder {
        namespaces: &tools.namespaces,
        ..InputDecoder::default()
    };
    match &req.input {
        Some(Value::String(text)) => input.messages.push(Message {
            role: Role::User,
            parts: vec![Part::Text(text.clone())],
        }),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input.item(item, &format!("input[{i}]"))?;
            }
        }
        None | Some(Value::Null) => return Err(invalid("input: required").with_param("input")),
        Some(_) => {
            return Err(
                invalid("input: expected a string or an array of input items").with_param("input"),
            )
        }
    }
    out.system.extend(input.system);
    out.messages = input.messages;
    out.dropped.extend(input.dropped);

    out.tool_choice = match &req.tool_choice {
        None | Some(Value::Null) => None,
        Some(choice) => Some(decode_tool_choice(choice, &tools)?),
    };
    out.tools = tools.tools;
    out.tool_namespaces = tools.namespaces;
    out.dropped.extend(tools.dropped);
    out.parallel_tool_calls = req.parallel_tool_calls;

    if let Some(text) = req.text {
        if let Some(format) = text.format {
            out.response_format = Some(decode_format(format)?);
        }
        if text.verbosity.is_some() {
            out.dropped.push("text.verbosity".to_string());
        }
    }
    if let Some(r) = req.reasoning {
        let summary = r.summary.or(r.generate_summary);
        out.reasoning = Some(Reasoning {
            effort: r.effort,
            budget_tokens: None,
            include_thoughts: Some(summary.is_some()),
        });
    }

    let mut logprobs = None;
    for include in req.include.iter().flatten() {
        match include.as_str() {
            LOGPROBS_INCLUDE => logprobs = Some(true),
            // Honoured where the upstream has encrypted reasoning (or a signature) to give.
            ENCRYPTED_REASONING_INCLUDE => {}
            _ => push_once(&mut out.dropped, "include"),
        }
    }
    out.params = Params {
        temperature: req.temperature,
        top_p: req.top_p,
        max_tokens: req.max_output_tokens,
        top_logprobs: req.top_logprobs,
        logprobs,
        ..Params::default()
    };

    out.user = req.safety_identifier.or(req.user);
    out.metadata = req.metadata.filter(|m| !m.is_null());
    out.stream = req.stream.unwrap_or(false);
    // The Responses API always reports usage (in `response.completed`).
    out.include_usage = true;

    if req.stream_options.is_some() {
        out.dropped.push("stream_options".to_string());
    }
    if req.truncation.as_deref().is_some_and(|t| t != "disabled") {
        out.dropped.push("truncation".to_string());
    }
    for (name, present) in [
        ("service_tier", req.service_tier.is_some()),
        ("prompt_cache_key", req.prompt_cache_key.is_some()),
        (
            "prompt_cache_retention",
            req.prompt_cache_retention.is_some(),
        ),
        ("max_tool_calls", req.max_tool_calls.is_some()),
    ] {
        if present {
            out.dropped.push(name.to_string());
        }
    }
    Ok(out)
}

fn push_once(list: &mut Vec<String>, name: &str) {
    if !list.iter().any(|n| n == name) {
        list.push(name.to_string());
    }
}

/// Input item kinds that only OpenAI can produce or act on.
const BUILTIN_ITEMS: &[&str] = &[
    "computer_call",
    "computer_call_output",
    "web_search_call",
    "file_search_call",
    "image_generation_call",
    "code_interpreter_call",
    "local_shell_call",
    "local_shell_call_output",
    "shell_call",
    "shell_call_output",
    "apply_patch_call",
    "apply_patch_call_output",
    "mcp_list_tools",
    "mcp_approval_request",
    "mcp_approval_response",
    "mcp_call",
    "custom_tool_call",
    "custom_tool_call_output",
    "compaction",
];

/// Walks `input` items, building canonical messages.
#[derive(Default)]
struct InputDecoder<'a> {
    /// The request's namespaced tools: history calls name them by namespace + short name.
    namespaces: &'a [NamespacedTool],
    system: Vec<String>,
    messages: Vec<Message>,
    dropped: Vec<String>,
}

impl InputDecoder<'_> {
    fn item(&mut self, item: &Value, path: &str) -> Result<(), CanonicalError> {
        let Value::Object(obj) = item else {
            return Err(invalid(format!("{path}: expected an input item object")));
        };
        let kind = match obj.get("type") {
            Some(Value::String(t)) => t.as_str(),
            None | Some(Value::Null) if obj.contains_key("role") => "message",
            None | Some(Value::Null) => return Err(invalid(format!("{path}.type: required"))),
            Some(_) => return Err(invalid(format!("{path}.type: expected a string"))),
        };
        match kind {
            "message" => self.message(item, path),
            "function_call" => {
                let call: ResponsesFunctionCallItem = decode_at(item, path, bad)?;
                let id = required(call.call_id, path, "call_id")?;
                let mut name = required(call.name, path, "name")?;
                // A call to a namespaced tool goes upstream under the name the tool was
                // declared with there (the flat name).
                if let Some(namespace) = call.namespace.filter(|n| !n.is_empty()) {
                    name = flat_in(self.namespaces, &namespace, &name);
                }
                let arguments = match call.arguments {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                };
                self.assistant(vec![Part::ToolCall(ToolCall {
                    id,
                    name,
                    arguments,
                })]);
                Ok(())
            }
            "function_call_output" => {
                let result: ResponsesFunctionCallOutputItem = decode_at(item, path, bad)?;
                let call_id = required(result.call_id, path, "call_id")?;
                let output_path = format!("{path}.output");
                let content = match result.output {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::String(s)) if s.is_empty() => Vec::new(),
                    Some(Value::String(s)) => vec![Part::Text(s)],
                    Some(Value::Array(parts)) => content_parts(&parts, &output_path, Role::User)?,
                    Some(other) => vec![Part::Text(value_to_text(&other))],
                };
                self.tool_result(ToolResult {
                    call_id,
                    name: None,
                    content,
                    is_error: false,
                });
                Ok(())
            }
            "reasoning" => {
                let r: ResponsesReasoningItem = decode_at(item, path, bad)?;
                let mut text = join_texts(r.summary.as_deref());
                if text.is_empty() {
                    text = join_texts(r.content.as_deref());
                }
                let (signature, redacted) = split_encrypted(r.encrypted_content.as_deref());
                if text.is_empty() && signature.is_none() && redacted.is_none() {
                    // An id-only reference to a stored reasoning item: nothing to carry.
                    push_once(&mut self.dropped, "input.reasoning");
                    return Ok(());
                }
                self.assistant(vec![Part::Thinking(Thinking {
                    text,
                    signature,
                    redacted,
                })]);
                Ok(())
            }
            "item_reference" => Err(stateless(
                "input",
                &format!("{path}: `item_reference`"),
                "Send the referenced item itself in `input` instead.",
            )),
            other if BUILTIN_ITEMS.contains(&other) || other.starts_with("mcp_") => {
                Err(untranslatable(
                    "input",
                    format!("{path}: `{other}` items (OpenAI built-in tool calls)"),
                ))
            }
            other => Err(
                invalid(format!("{path}.type: unknown input item type \"{other}\""))
                    .with_param("input"),
            ),
        }
    }

    fn message(&mut self, item: &Value, path: &str) -> Result<(), CanonicalError> {
        let m: ResponsesMessageItem = decode_at(item, path, bad)?;
        let role = required(m.role, path, "role")?;
        let content_path = format!("{path}.content");
        let parts = |role: Role| -> Result<Vec<Part>, CanonicalError> {
            match &m.content {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
                Some(Value::Array(parts)) => content_parts(parts, &content_path, role),
                Some(_) => Err(invalid(format!(
                    "{content_path}: expected a string or an array of content parts"
                ))),
            }
        };
        match role.as_str() {
            "user" => {
                let parts = parts(Role::User)?;
                self.messages.push(Message {
                    role: Role::User,
                    parts,
                });
            }
            "assistant" => {
                let parts = parts(Role::Assistant)?;
                self.assistant(parts);
            }
            "system" | "developer" => {
                let mut texts = Vec::new();
                for part in parts(Role::User)? {
                    match part {
                        Part::Text(t) => texts.push(t),
                        _ => {
                            return Err(invalid(format!(
                                "{content_path}: {role} messages may contain only text"
                            )))
                        }
                    }
                }
                self.system.push(texts.join("\n"));
            }
            other => {
                return Err(invalid(format!(
                    "{path}.role: unknown role \"{other}\" (expected user, assistant, system or developer)"
                )))
            }
        }
        Ok(())
    }

    /// Assistant-side items (messages, function calls, reasoning) of one turn share a message.
    fn assistant(&mut self, parts: Vec<Part>) {
        if parts.is_empty() {
            return;
        }
        match self.messages.last_mut() {
            Some(last) if last.role == Role::Assistant => last.parts.extend(parts),
            _ => self.messages.push(Message {
                role: Role::Assistant,
                parts,
            }),
        }
    }

    /// Consecutive tool results share one user message.
    fn tool_result(&mut self, result: ToolResult) {
        match self.messages.last_mut() {
            Some(last)
                if last.role == Role::User
                    && !last.parts.is_empty()
                    && last.parts.iter().all(|p| matches!(p, Part::ToolResult(_))) =>
            {
                last.parts.push(Part::ToolResult(result))
            }
            _ => self.messages.push(Message {
                role: Role::User,
                parts: vec![Part::ToolResult(result)],
            }),
        }
    }
}

fn required(value: Option<String>, path: &str, field: &str) -> Result<String, CanonicalError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(invalid(format!("{}: required", join(path, field)))),
    }
}

fn join_texts(parts: Option<&[ResponsesText]>) -> String {
    parts
        .unwrap_or_default()
        .iter()
        .map(|p| p.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Decodes an array of message (or tool output) content parts.
fn content_parts(parts: &[Value], path: &str, role: Role) -> Result<Vec<Part>, CanonicalError> {
    let mut out = Vec::with_capacity(parts.len());
    for (i, value) in parts.iter().enumerate() {
        let path = format!("{path}[{i}]");
        if !value.is_object() {
            return Err(invalid(format!("{path}: expected a content part object")));
        }
        let part: ResponsesContentPart = decode_at(value, &path, bad)?;
        let kind = part.kind.as_deref().unwrap_or_default();
        match kind {
            "input_text" | "output_text" | "text" | "summary_text" => {
                let Some(text) = part.text else {
                    return Err(invalid(format!("{path}.text: required")));
                };
                out.push(Part::Text(text));
            }
            "refusal" => out.push(Part::Text(part.refusal.or(part.text).unwrap_or_default())),
            "input_image" => {
                if role == Role::Assistant {
                    return Err(invalid(format!(
                        "{path}: images are only allowed in user messages and tool outputs"
                    )));
                }
                out.push(Part::Image(decode_image(part, &path)?));
            }
            "input_file" => {
                return Err(untranslatable(
                    "input",
                    format!("{path}: `input_file` (file and PDF input)"),
                ))
            }
            "input_audio" => return Err(untranslatable("input", format!("{path}: audio input"))),
            "" => return Err(invalid(format!("{path}.type: required"))),
            other => {
                return Err(invalid(format!(
                    "{path}.type: unknown content type \"{other}\""
                )))
            }
        }
    }
    Ok(out)
}

fn decode_image(part: ResponsesContentPart, path: &str) -> Result<Image, CanonicalError> {
    let detail = part.detail;
    match part.image_url {
        Some(url) if url.starts_with("data:") => match parse_data_url(&url) {
            Some((media_type, data)) => Ok(Image {
                source: ImageSource::Base64 { media_type, data },
                detail,
            }),
            None => Err(invalid(format!(
                "{path}.image_url: a data URL must be base64 (`data:<type>;base64,<data>`)"
            ))),
        },
        Some(url) if !url.is_empty() => Ok(Image {
            source: ImageSource::Url(url),
            detail,
        }),
        _ if part.file_id.is_some() => Err(untranslatable_hint(
            "input",
            format!("{path}.file_id: an image stored in OpenAI's file storage"),
            "; send the image as a data URL or an https URL instead",
        )),
        _ => Err(invalid(format!("{path}.image_url: required"))),
    }
}

/// Tool types that run on OpenAI's servers (or need its grammar engine).
const BUILTIN_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "computer_use_preview",
    "computer_use",
    "computer",
    "code_interpreter",
    "image_generation",
    "mcp",
    "local_shell",
    "shell",
    "apply_patch",
];

/// A decoded `tools[]` entry.
enum DecodedTool {
    Function(ToolDef),
    Namespace {
        name: String,
        description: Option<String>,
        members: Vec<Value>,
    },
    /// A tool that runs on OpenAI's servers (or in OpenAI's client integrations): its type.
    Hosted(String),
}

/// The request's tools in canonical form.
#[derive(Default)]
struct DecodedTools {
    tools: Vec<ToolDef>,
    /// Which of `tools` are namespace members, by their flat names.
    namespaces: Vec<NamespacedTool>,
    /// Hosted tools left out (`tools[<i>].<type>`).
    dropped: Vec<String>,
}

/// Decodes `tools`. Function tools stay as they are; each member of a `namespace` tool
/// becomes a function tool under its flat name (recorded in the namespace table, with the
/// namespace's description before its own); hosted tools are left out and named, unless
/// `tool_choice` forces one (the request means nothing without it).
fn decode_tools(tools: &[Value], choice: Option<&Value>) -> Result<DecodedTools, CanonicalError> {
    let forced = forced_hosted(choice);
    let mut out = DecodedTools::default();
    // Where each of `out.tools` came from, and whether it is a namespace member.
    let mut origins: Vec<(String, bool)> = Vec::new();
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("tools[{i}]");
        match decode_tool(tool, &path)? {
            DecodedTool::Function(def) => {
                add_tool(&mut out.tools, &mut origins, def, path, false)?;
            }
            DecodedTool::Namespace {
                name: namespace,
                description,
                members,
            } => {
                let note = description
                    .as_deref()
                    .map(str::trim)
                    .filter(|d| !d.is_empty())
                    .map(|d| format!("[{namespace}: {d}]"));
                for (j, member) in members.iter().enumerate() {
                    let member_path = format!("{path}.tools[{j}]");
                    let mut def = match decode_tool(member, &member_path)? {
                        DecodedTool::Function(def) => def,
                        _ => {
                            return Err(invalid(format!(
                                "{member_path}.type: a namespace may contain only function tools"
                            ))
                            .with_param("tools"))
                        }
                    };
                    let flat = NamespacedTool::flat_name(&namespace, &def.name);
                    let name = std::mem::replace(&mut def.name, flat.clone());
                    def.description = match (&note, def.description.take()) {
                        (Some(note), Some(d)) if !d.trim().is_empty() => {
                            Some(format!("{note} {}", d.trim_start()))
                        }
                        (Some(note), _) => Some(note.clone()),
                        (None, d) => d,
                    };
                    add_tool(&mut out.tools, &mut origins, def, member_path, true)?;
                    out.namespaces.push(NamespacedTool {
                        flat,
                        namespace: namespace.clone(),
                        name,
                    });
                }
            }
            DecodedTool::Hosted(kind) => {
                if forced.is_some_and(|f| hosted_family(f) == hosted_family(&kind)) {
                    return Err(untranslatable_hint(
                        "tools",
                        format!(
                            "{path}: the built-in tool `{kind}` (forced by `tool_choice`) runs \
                             only on OpenAI's servers and"
                        ),
                        "; remove it, or implement it as a function tool",
                    ));
                }
                out.dropped.push(format!("{path}.{kind}"));
            }
        }
    }
    if out.tools.is_empty() && !out.dropped.is_empty() && is_required(choice) {
        return Err(untranslatable_hint(
            "tool_choice",
            format!(
                "`tool_choice: required` with only built-in tools ({}), which run only on \
                 OpenAI's servers,",
                out.dropped.join(", ")
            ),
            "; add a function tool, or leave `tool_choice` out",
        ));
    }
    Ok(out)
}

/// Appends a decoded tool; a namespace member's flat name that is already taken (by another
/// tool or member) is a 400 naming both, since calls to the two could not be told apart.
fn add_tool(
    tools: &mut Vec<ToolDef>,
    origins: &mut Vec<(String, bool)>,
    def: ToolDef,
    path: String,
    member: bool,
) -> Result<(), CanonicalError> {
    let taken = tools.iter().position(|t| t.name == def.name);
    if let Some((other, other_member)) = taken.and_then(|k| origins.get(k)) {
        if member || *other_member {
            return Err(invalid(format!(
                "{path} and {other}: both are named `{}` for this model (a namespaced tool is \
                 sent as its namespace and name joined); rename one of them",
                def.name
            ))
            .with_param("tools"));
        }
    }
    tools.push(def);
    origins.push((path, member));
    Ok(())
}

/// The hosted tool type a `tool_choice` object forces (`{"type": "web_search"}`, ...).
fn forced_hosted(choice: Option<&Value>) -> Option<&str> {
    let kind = choice?.get("type")?.as_str()?;
    is_hosted(kind).then_some(kind)
}

fn is_required(choice: Option<&Value>) -> bool {
    choice.and_then(Value::as_str) == Some("required")
}

fn is_hosted(kind: &str) -> bool {
    BUILTIN_TOOLS.contains(&kind) || kind.starts_with("web_search") || kind.starts_with("computer")
}

/// Versions of one hosted tool (`web_search_preview` and `web_search_2025_08_26`, ...) count
/// as the same tool when matching a forced `tool_choice`.
fn hosted_family(kind: &str) -> &str {
    if kind.starts_with("web_search") {
        "web_search"
    } else if kind.starts_with("computer") {
        "computer"
    } else {
        kind
    }
}

fn decode_tool(tool: &Value, path: &str) -> Result<DecodedTool, CanonicalError> {
    let Value::Object(obj) = tool else {
        return Err(invalid(format!("{path}: expected a tool object")));
    };
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) if obj.contains_key("name") => "function",
        None | Some(Value::Null) => return Err(invalid(format!("{path}.type: required"))),
        Some(_) => return Err(invalid(format!("{path}.type: expected a string"))),
    };
    match kind {
        "function" => {
            // Tolerate the Chat Completions nesting `{type: function, function: {...}}`.
            let (value, path) = match obj.get("function") {
                Some(inner @ Value::Object(_)) if !obj.contains_key("name") => {
                    (inner, format!("{path}.function"))
                }
                _ => (tool, path.to_string()),
            };
            let f: ResponsesFunctionTool = decode_at(value, &path, bad)?;
            let name = required(f.name, &path, "name")?;
            let parameters = match f.parameters {
                None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
                Some(p) => p,
            };
            Ok(DecodedTool::Function(ToolDef {
                name,
                description: f.description,
                parameters,
                strict: f.strict,
            }))
        }
        "namespace" => {
            let ns: ResponsesNamespaceTool = decode_at(tool, path, bad)?;
            let name = required(ns.name, path, "name")?;
            let Some(members) = ns.tools else {
                return Err(invalid(format!("{path}.tools: required")).with_param("tools"));
            };
            Ok(DecodedTool::Namespace {
                name,
                description: ns.description,
                members,
            })
        }
        "custom" => Err(untranslatable_hint(
            "tools",
            format!("{path}: custom tools (free-form input constrained by a grammar)"),
            "; define a function tool with a JSON Schema instead",
        )),
        other if is_hosted(other) => Ok(DecodedTool::Hosted(other.to_string())),
        other => {
            Err(invalid(format!("{path}.type: unknown tool type \"{other}\"")).with_param("tools"))
        }
    }
}

fn decode_tool_choice(choice: &Value, tools: &DecodedTools) -> Result<ToolChoice, CanonicalError> {
    match choice {
        Value::String(mode) => match mode.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(invalid(format!(
                "tool_choice: unknown mode \"{other}\" (expected auto, none or required)"
            ))
            .with_param("tool_choice")),
        },
        Value::Object(obj) => {
            let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
            match kind {
                "function" => {
                    let name = obj
                        .get("name")
                        .or_else(|| obj.get("function").and_then(|f| f.get("name")))
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty());
                    let namespace = obj
                        .get("namespace")
                        .and_then(Value::as_str)
                        .filter(|n| !n.is_empty());
                    match (name, namespace) {
                        (Some(n), Some(ns)) => {
                            Ok(ToolChoice::Named(flat_in(&tools.namespaces, ns, n)))
                        }
                        (Some(n), None) => Ok(ToolChoice::Named(bare_choice(n, tools))),
                        (None, _) => {
                            Err(invalid("tool_choice.name: required").with_param("tool_choice"))
                        }
                    }
                }
                "allowed_tools" => Err(untranslatable(
                    "tool_choice",
                    "tool_choice `allowed_tools`".to_string(),
                )),
                "" => Err(invalid("tool_choice.type: required").with_param("tool_choice")),
                other => Err(untranslatable(
                    "tool_choice",
                    format!("tool_choice `{other}` (a built-in or custom tool)"),
                )),
            }
        }
        _ => Err(invalid("tool_choice: expected a string or an object").with_param("tool_choice")),
    }
}

/// A forced function named without its namespace: the tool of that name, else the only
/// namespace member with that short name.
fn bare_choice(name: &str, tools: &DecodedTools) -> String {
    if tools.tools.iter().any(|t| t.name == name) {
        return name.to_string();
    }
    let mut members = tools.namespaces.iter().filter(|t| t.name == name);
    match (members.next(), members.next()) {
        (Some(t), None) => t.flat.clone(),
        _ => name.to_string(),
    }
}

fn decode_format(format: ResponsesTextFormat) -> Result<ResponseFormat, CanonicalError> {
    match format.kind.as_str() {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let Some(schema) = format.schema.filter(|s| !s.is_null()) else {
                return Err(invalid("text.format.schema: required").with_param("text"));
            };
            Ok(ResponseFormat::JsonSchema {
                name: format
                    .name
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "response".to_string()),
                description: format.description,
                schema,
                strict: format.strict,
            })
        }
        "" => Err(invalid("text.format.type: required").with_param("text")),
        other => Err(invalid(format!(
            "text.format.type: unknown format \"{other}\" (expected text, json_object or json_schema)"
        ))
        .with_param("text")),
    }
}

// =============================================================================================
// Encode

/// Encodes a canonical request for a Responses upstream (always `store: false`).
pub fn encode_request(req: &ChatRequest, _opts: &EncodeOptions) -> Result<Encoded, CanonicalError> {
    let mut dropped = Vec::new();
    let p = &req.params;
    if p.n.is_some_and(|n| n > 1) {
        return Err(invalid(
            "n: the Responses API returns one answer per request, so n > 1 cannot be translated",
        )
        .with_param("n"));
    }
    for (name, present) in [
        ("top_k", p.top_k.is_some()),
        ("seed", p.seed.is_some()),
        ("presence_penalty", p.presence_penalty.is_some()),
        ("frequency_penalty", p.frequency_penalty.is_some()),
        ("stop", !p.stop.is_empty()),
    ] {
        if present {
            dropped.push(name.to_string());
        }
    }

    let input = encode_messages(&req.messages, &mut dropped)?;
    let tools = req
        .tools
        .iter()
        .map(|t| ResponsesFunctionTool {
            kind: "function".to_string(),
            name: Some(t.name.clone()),
            description: t.description.clone(),
            parameters: Some(if t.parameters.is_null() {
                json!({"type": "object", "properties": {}})
            } else {
                t.parameters.clone()
            }),
            // Responses defaults `strict` to true; other protocols' tools are not strict unless
            // they say so.
            strict: Some(t.strict.unwrap_or(false)),
        })
        .collect();
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        ToolChoice::Auto => ResponsesToolChoice::Mode("auto"),
        ToolChoice::None => ResponsesToolChoice::Mode("none"),
        ToolChoice::Required => ResponsesToolChoice::Mode("required"),
        ToolChoice::Named(name) => ResponsesToolChoice::Function {
            kind: "function",
            name: name.clone(),
        },
    });
    let text = req.response_format.as_ref().map(|f| ResponsesTextConfig {
        format: Some(match f {
            ResponseFormat::Text => format_of("text"),
            ResponseFormat::JsonObject => format_of("json_object"),
            ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => ResponsesTextFormat {
                kind: "json_schema".to_string(),
                name: Some(if name.is_empty() {
                    "response".to_string()
                } else {
                    name.clone()
                }),
                description: description.clone(),
                schema: Some(schema.clone()),
                strict: *strict,
            },
        }),
        verbosity: None,
    });
    let reasoning = req.reasoning.as_ref().and_then(|r| {
        let effort = r.effort_level();
        let summary = (r.include_thoughts == Some(true)).then(|| "auto".to_string());
        (effort.is_some() || summary.is_some()).then_some(ResponsesReasoningConfig {
            effort,
            summary,
            generate_summary: None,
        })
    });
    let mut include = Vec::new();
    if p.logprobs == Some(true) {
        include.push(LOGPROBS_INCLUDE.to_string());
    }
    let metadata = match &req.metadata {
        None => None,
        // OpenAI metadata values are strings.
        Some(Value::Object(map)) => Some(
            map.iter()
                .map(|(k, v)| (k.clone(), Value::String(value_to_text(v))))
                .collect::<Map<String, Value>>(),
        ),
        Some(_) => {
            dropped.push("metadata".to_string());
            None
        }
    };

    let body = ResponsesRequestOut {
        model: req.model.clone(),
        instructions: instructions(&req.system),
        input,
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        text,
        reasoning,
        max_output_tokens: p.max_tokens.map(|m| m.max(MIN_OUTPUT_TOKENS)),
        temperature: p.temperature,
        top_p: p.top_p,
        top_logprobs: p.top_logprobs,
        include,
        user: req.user.clone(),
        metadata,
        store: false,
        stream: req.stream,
    };
    let body = serde_json::to_vec(&body).map_err(|e| {
        CanonicalError::new(
            ErrorKind::Internal,
            format!("could not serialise the Responses request: {e}"),
        )
    })?;
    Ok(Encoded {
        body,
        dropped,
        structured_output_tool: None,
    })
}

/// System blocks joined by a blank line (empty blocks skipped).
fn instructions(system: &[String]) -> Option<String> {
    let blocks: Vec<&str> = system
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    (!blocks.is_empty()).then(|| blocks.join("\n\n"))
}

fn format_of(kind: &str) -> ResponsesTextFormat {
    ResponsesTextFormat {
        kind: kind.to_string(),
        ..ResponsesTextFormat::default()
    }
}

fn image_url(image: &Image) -> String {
    match &image.source {
        ImageSource::Url(url) => url.clone(),
        ImageSource::Base64 { media_type, data } => data_url(media_type, data),
    }
}

fn input_image(image: &Image) -> ResponsesInputContent {
    ResponsesInputContent::InputImage {
        image_url: image_url(image),
        detail: image.detail.clone().unwrap_or_else(|| "auto".to_string()),
    }
}

/// Canonical messages -> input items, in order. Text of one message goes into one message item
/// (flushed whenever a call, result or reasoning item comes between).
fn encode_messages(
    messages: &[Message],
    dropped: &mut Vec<String>,
) -> Result<Vec<ResponsesInputItem>, CanonicalError> {
    let mut items = Vec::new();
    for (m, message) in messages.iter().enumerate() {
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut content: Vec<ResponsesInputContent> = Vec::new();
        let flush = |content: &mut Vec<ResponsesInputContent>,
                     items: &mut Vec<ResponsesInputItem>| {
            if !content.is_empty() {
                items.push(ResponsesInputItem::Message {
                    role,
                    content: std::mem::take(content),
                });
            }
        };
        for part in &message.parts {
            match part {
                Part::Text(text) => content.push(match message.role {
                    Role::User => ResponsesInputContent::InputText { text: text.clone() },
                    Role::Assistant => ResponsesInputContent::OutputText { text: text.clone() },
                }),
                Part::Image(image) => {
                    if message.role == Role::Assistant {
                        return Err(invalid(format!(
                            "messages[{m}]: the Responses API takes no images in assistant messages"
                        )));
                    }
                    content.push(input_image(image));
                }
                Part::ToolCall(call) => {
                    flush(&mut content, &mut items);
                    items.push(ResponsesInputItem::FunctionCall {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        arguments: call.arguments.clone(),
                    });
                }
                Part::ToolResult(result) => {
                    flush(&mut content, &mut items);
                    if result.is_error {
                        push_once(dropped, "tool_result.is_error");
                    }
                    items.push(ResponsesInputItem::FunctionCallOutput {
                        call_id: result.call_id.clone(),
                        output: tool_output(&result.content),
                    });
                }
                Part::Thinking(thinking) => {
                    // Only OpenAI's own encrypted reasoning can go back to OpenAI; another
                    // protocol's signed thinking would be rejected, and bare text is not accepted
                    // as reasoning input.
                    if thinking.redacted.is_some() && message.role == Role::Assistant {
                        flush(&mut content, &mut items);
                        let summary = if thinking.text.is_empty() {
                            Vec::new()
                        } else {
                            vec![ResponsesText::summary(&thinking.text)]
                        };
                        items.push(ResponsesInputItem::Reasoning {
                            summary,
                            encrypted_content: join_encrypted(None, thinking.redacted.as_deref()),
                        });
                    } else {
                        push_once(dropped, "thinking");
                    }
                }
            }
        }
        flush(&mut content, &mut items);
    }
    Ok(items)
}

/// A tool result's content: a string, or content parts when it has images.
fn tool_output(content: &[Part]) -> ResponsesToolOutput {
    if content.iter().any(|p| matches!(p, Part::Image(_))) {
        ResponsesToolOutput::Parts(
            content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(ResponsesInputContent::InputText { text: t.clone() }),
                    Part::Image(i) => Some(input_image(i)),
                    _ => None,
                })
                .collect(),
        )
    } else {
        ResponsesToolOutput::Text(
            content
                .iter()
                .filter_map(|p| match p {
                    Part::Text(t) => Some(t.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        )
    }
}
