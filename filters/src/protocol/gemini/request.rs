//! `GenerateContentRequest` <-> [`ChatRequest`].

use super::schema;
use super::wire::{
    GeminiBlob, GeminiContent, GeminiFileData, GeminiFunctionCall, GeminiFunctionCallingConfig,
    GeminiFunctionDeclaration, GeminiFunctionResponse, GeminiGenerationConfig, GeminiPart,
    GeminiRequest, GeminiRequestOut, GeminiSystemInstruction, GeminiThinkingConfig, GeminiTool,
    GeminiToolConfig,
};
use crate::canonical::{
    CanonicalError, ChatRequest, EncodeOptions, Encoded, ErrorKind, Image, ImageSource, Message,
    Params, Part, Reasoning, ResponseFormat, Role, Thinking, ToolCall, ToolChoice, ToolDef,
    ToolResult,
};
use crate::protocol::util;
use bitrouter_config::ThinkingControl;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// The signature Google documents for replaying a function call whose real signature is not
/// available (history from another model or protocol): it tells Gemini 3 to skip validation.
pub(super) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// A real thought signature: not empty and not one of Google's documented "skip validation"
/// values (which carry no reasoning state and are re-added on encode where needed).
pub(super) fn real_signature(sig: Option<&String>) -> Option<String> {
    sig.filter(|s| {
        !s.is_empty()
            && s.as_str() != SKIP_SIGNATURE
            && s.as_str() != "context_engineering_is_the_way_to_go"
    })
    .cloned()
}

/// Part metadata fields that carry no content of their own.
const PART_METADATA: &[&str] = &[
    "videoMetadata",
    "video_metadata",
    "partMetadata",
    "part_metadata",
    "mediaResolution",
    "media_resolution",
];

// ---------------------------------------------------------------------------------------------
// Decode
// ---------------------------------------------------------------------------------------------

/// Decodes a `generateContent` request body. The model and `stream` are left empty/false: the
/// proxy takes both from the URL.
pub fn decode_request(body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    let req: GeminiRequest = match serde_json::from_slice(body) {
        Ok(req) => req,
        Err(e) => return Err(locate_error(body, &e)),
    };
    let mut out = ChatRequest {
        include_usage: true,
        ..ChatRequest::default()
    };

    if req.cached_content.as_ref().is_some_and(|c| !c.is_null()) {
        return Err(util::invalid(
            "cachedContent cannot be translated: the cached context is stored on Google's servers \
             and other providers cannot read it; send the contents inline instead",
        )
        .with_param("cachedContent"));
    }
    if req.safety_settings.as_ref().is_some_and(|v| !v.is_null()) {
        out.dropped.push("safetySettings".into());
    }
    if req.labels.as_ref().is_some_and(|v| !v.is_null()) {
        out.dropped.push("labels".into());
    }

    if let Some(system) = &req.system_instruction {
        decode_system(system, &mut out.system)?;
    }

    let contents = req.contents.as_deref().unwrap_or(&[]);
    if contents.is_empty() {
        return Err(
            util::invalid("contents: at least one Content is required").with_param("contents")
        );
    }
    decode_contents(contents, &mut out)?;
    if out.messages.is_empty() {
        return Err(
            util::invalid("contents: no Content has any parts to send").with_param("contents")
        );
    }

    if let Some(tools) = &req.tools {
        decode_tools(tools, &mut out)?;
    }
    if let Some(config) = &req.tool_config {
        decode_tool_config(config, &mut out)?;
    }
    if let Some(config) = &req.generation_config {
        decode_generation_config(config, &mut out)?;
    }
    Ok(out)
}

fn decode_system(
    system: &GeminiSystemInstruction,
    out: &mut Vec<String>,
) -> Result<(), CanonicalError> {
    match system {
        GeminiSystemInstruction::Text(text) => {
            if !text.is_empty() {
                out.push(text.clone());
            }
        }
        GeminiSystemInstruction::Content(content) => {
            for (i, part) in content.parts.iter().flatten().enumerate() {
                match &part.text {
                    Some(text) if part.thought != Some(true) => {
                        if !text.is_empty() {
                            out.push(text.clone());
                        }
                    }
                    Some(_) => {}
                    None => {
                        return Err(util::invalid(format!(
                            "systemInstruction.parts[{i}]: only text parts are supported in a system instruction"
                        ))
                        .with_param("systemInstruction"))
                    }
                }
            }
        }
    }
    Ok(())
}

/// A function call seen in the history, for matching function responses that carry no id.
struct SeenCall {
    content_index: usize,
    id: String,
    name: String,
    answered: bool,
}

fn decode_contents(
    contents: &[GeminiContent],
    out: &mut ChatRequest,
) -> Result<(), CanonicalError> {
    let mut calls: Vec<SeenCall> = Vec::new();
    for (ci, content) in contents.iter().enumerate() {
        let role = match content.role.as_deref() {
            None | Some("") | Some("user") | Some("function") => Role::User,
            Some("model") => Role::Assistant,
            Some(other) => {
                return Err(util::invalid(format!(
                    "contents[{ci}].role: unknown role \"{other}\" (expected \"user\" or \"model\")"
                ))
                .with_param("contents"))
            }
        };
        let mut parts = Vec::new();
        for (pi, part) in content.parts.iter().flatten().enumerate() {
            decode_part(part, role, ci, pi, &mut calls, &mut parts, &mut out.dropped)?;
        }
        if !parts.is_empty() {
            out.messages.push(Message { role, parts });
        }
    }
    Ok(())
}

fn push_dropped(dropped: &mut Vec<String>, name: &str) {
    if !dropped.iter().any(|d| d == name) {
        dropped.push(name.to_string());
    }
}

fn decode_part(
    part: &GeminiPart,
    role: Role,
    ci: usize,
    pi: usize,
    calls: &mut Vec<SeenCall>,
    parts: &mut Vec<Part>,
    dropped: &mut Vec<String>,
) -> Result<(), CanonicalError> {
    let path = || format!("contents[{ci}].parts[{pi}]");
    if part.executable_code.is_some() || part.code_execution_result.is_some() {
        return Err(util::invalid(format!(
            "{}: executableCode / codeExecutionResult parts (Gemini code execution) cannot be translated to another provider",
            path()
        ))
        .with_param("contents"));
    }

    // Thought parts: the model's reasoning. Consecutive ones form one thinking part, which a
    // signature closes.
    if part.thought == Some(true) {
        if role == Role::User {
            push_dropped(dropped, "contents.parts.thought");
            return Ok(());
        }
        let text = part.text.clone().unwrap_or_default();
        let signature = real_signature(part.thought_signature.as_ref());
        if text.is_empty() && signature.is_none() {
            return Ok(());
        }
        match parts.last_mut() {
            Some(Part::Thinking(prev)) if prev.signature.is_none() && prev.redacted.is_none() => {
                prev.text.push_str(&text);
                prev.signature = signature;
            }
            _ => parts.push(Part::Thinking(Thinking {
                text,
                signature,
                redacted: None,
            })),
        }
        return Ok(());
    }

    // A signature on any other part travels as a signature-only thinking part before it.
    if role == Role::Assistant {
        if let Some(sig) = real_signature(part.thought_signature.as_ref()) {
            parts.push(Part::Thinking(Thinking {
                text: String::new(),
                signature: Some(sig),
                redacted: None,
            }));
        }
    }

    let mut has_data = false;
    if let Some(text) = &part.text {
        has_data = true;
        if !text.is_empty() {
            parts.push(Part::Text(text.clone()));
        }
    }
    if let Some(blob) = &part.inline_data {
        has_data = true;
        parts.push(Part::Image(decode_blob(
            blob,
            &format!("{}.inlineData", path()),
        )?));
    }
    if let Some(file) = &part.file_data {
        has_data = true;
        parts.push(Part::Image(decode_file_data(
            file,
            &format!("{}.fileData", path()),
        )?));
    }
    if let Some(call) = &part.function_call {
        has_data = true;
        if role != Role::Assistant {
            return Err(util::invalid(format!(
                "{}.functionCall: function calls belong in a \"model\" turn",
                path()
            ))
            .with_param("contents"));
        }
        let name = call.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
            util::invalid(format!("{}.functionCall.name: required", path())).with_param("contents")
        })?;
        let id = call
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| format!("call_{ci}_{pi}"));
        let arguments = match &call.args {
            None | Some(Value::Null) => "{}".to_string(),
            Some(args @ Value::Object(_)) => args.to_string(),
            Some(_) => {
                return Err(util::invalid(format!(
                    "{}.functionCall.args: expected an object",
                    path()
                ))
                .with_param("contents"))
            }
        };
        calls.push(SeenCall {
            content_index: ci,
            id: id.clone(),
            name: name.clone(),
            answered: false,
        });
        parts.push(Part::ToolCall(ToolCall {
            id,
            name,
            arguments,
        }));
    }
    if let Some(response) = &part.function_response {
        has_data = true;
        if role != Role::User {
            return Err(util::invalid(format!(
                "{}.functionResponse: function responses belong in a \"user\" turn",
                path()
            ))
            .with_param("contents"));
        }
        parts.push(Part::ToolResult(decode_function_response(
            response,
            calls,
            &path(),
        )?));
    }

    if !has_data && part.thought_signature.is_none() {
        if let Some(key) = part
            .rest
            .iter()
            .find(|(k, v)| !v.is_null() && !PART_METADATA.contains(&k.as_str()))
            .map(|(k, _)| k)
        {
            return Err(util::invalid(format!(
                "{}: unsupported part \"{key}\" (supported: text, inlineData and fileData images, functionCall, functionResponse)",
                path()
            ))
            .with_param("contents"));
        }
    }
    Ok(())
}

fn decode_blob(blob: &GeminiBlob, path: &str) -> Result<Image, CanonicalError> {
    let mime = blob.mime_type.as_deref().unwrap_or_default();
    if !mime.to_ascii_lowercase().starts_with("image/") {
        let shown = if mime.is_empty() { "(none)" } else { mime };
        return Err(util::invalid(format!(
            "{path}.mimeType: inline data of type {shown} cannot be translated to another provider; only images are supported"
        ))
        .with_param("contents"));
    }
    let data = blob.data.clone().filter(|d| !d.is_empty()).ok_or_else(|| {
        util::invalid(format!("{path}.data: required (base64 image bytes)")).with_param("contents")
    })?;
    Ok(Image {
        source: ImageSource::Base64 {
            media_type: mime.to_string(),
            data,
        },
        detail: None,
    })
}

fn decode_file_data(file: &GeminiFileData, path: &str) -> Result<Image, CanonicalError> {
    let uri = file.file_uri.as_deref().unwrap_or_default();
    let mime = file.mime_type.as_deref().unwrap_or_default();
    let lower = uri.to_ascii_lowercase();
    let http = lower.starts_with("https://") || lower.starts_with("http://");
    if lower.contains("generativelanguage.googleapis.com/") {
        return Err(util::invalid(format!(
            "{path}.fileUri: files uploaded with the Gemini Files API cannot be translated to another provider; send the image inline (inlineData)"
        ))
        .with_param("contents"));
    }
    if !http || !mime.to_ascii_lowercase().starts_with("image/") {
        return Err(util::invalid(format!(
            "{path}: fileData of type {} at \"{uri}\" cannot be translated to another provider; only images at http(s) URLs are supported",
            if mime.is_empty() { "(none)" } else { mime }
        ))
        .with_param("contents"));
    }
    Ok(Image {
        source: ImageSource::Url(uri.to_string()),
        detail: None,
    })
}

fn decode_function_response(
    response: &GeminiFunctionResponse,
    calls: &mut [SeenCall],
    path: &str,
) -> Result<ToolResult, CanonicalError> {
    let name = response.name.clone().filter(|n| !n.is_empty());
    let given_id = response.id.clone().filter(|id| !id.is_empty());
    let call_id = match (&given_id, &name) {
        (Some(id), _) => {
            if let Some(call) = calls.iter_mut().find(|c| &c.id == id) {
                call.answered = true;
            }
            id.clone()
        }
        (None, Some(name)) => {
            // The call it answers: among the unanswered calls with this name, those of the most
            // recent turn that has any, first one first (parallel calls are answered in order).
            let turn = calls
                .iter()
                .filter(|c| !c.answered && &c.name == name)
                .map(|c| c.content_index)
                .max();
            let call = turn.and_then(|turn| {
                calls
                    .iter_mut()
                    .find(|c| !c.answered && &c.name == name && c.content_index == turn)
            });
            match call {
                Some(call) => {
                    call.answered = true;
                    call.id.clone()
                }
                None => {
                    return Err(util::invalid(format!(
                        "{path}.functionResponse: no earlier functionCall named \"{name}\" is waiting for this response"
                    ))
                    .with_param("contents"))
                }
            }
        }
        (None, None) => {
            return Err(
                util::invalid(format!("{path}.functionResponse.name: required"))
                    .with_param("contents"),
            )
        }
    };
    let name = name.or_else(|| {
        calls
            .iter()
            .find(|c| c.id == call_id)
            .map(|c| c.name.clone())
    });

    let (text, is_error) = match &response.response {
        None | Some(Value::Null) => (String::new(), false),
        Some(Value::Object(map)) if map.len() == 1 => {
            let (key, value) = map
                .iter()
                .next()
                .map(|(k, v)| (k.as_str(), v))
                .unwrap_or(("", &Value::Null));
            match key {
                "content" | "output" => (util::value_to_text(value), false),
                "error" => (util::value_to_text(value), true),
                _ => (Value::Object(map.clone()).to_string(), false),
            }
        }
        Some(other) => (util::value_to_text(other), false),
    };
    let mut content = Vec::new();
    let mut images = Vec::new();
    for (i, p) in response.parts.iter().flatten().enumerate() {
        if let Some(blob) = &p.inline_data {
            images.push(Part::Image(decode_blob(
                blob,
                &format!("{path}.functionResponse.parts[{i}].inlineData"),
            )?));
        }
        if let Some(file) = &p.file_data {
            images.push(Part::Image(decode_file_data(
                file,
                &format!("{path}.functionResponse.parts[{i}].fileData"),
            )?));
        }
    }
    if !text.is_empty() || images.is_empty() {
        content.push(Part::Text(text));
    }
    content.extend(images);
    Ok(ToolResult {
        call_id,
        name,
        content,
        is_error,
    })
}

fn decode_tools(tools: &[GeminiTool], out: &mut ChatRequest) -> Result<(), CanonicalError> {
    for (ti, tool) in tools.iter().enumerate() {
        if let Some((key, _)) = tool.rest.iter().find(|(_, v)| !v.is_null()) {
            return Err(util::invalid(format!(
                "tools[{ti}]: the Google built-in tool \"{key}\" cannot be translated to another provider; declare functions (functionDeclarations) instead"
            ))
            .with_param("tools"));
        }
        for (fi, decl) in tool.function_declarations.iter().flatten().enumerate() {
            let path = format!("tools[{ti}].functionDeclarations[{fi}]");
            let name = decl.name.clone().filter(|n| !n.is_empty()).ok_or_else(|| {
                util::invalid(format!("{path}.name: required")).with_param("tools")
            })?;
            let parameters = match (&decl.parameters_json_schema, &decl.parameters) {
                (Some(s), _) if !s.is_null() => s.clone(),
                (_, Some(s)) if !s.is_null() => {
                    let mut s = schema::from_gemini_schema(s.clone());
                    if let Value::Object(map) = &mut s {
                        if !map.contains_key("type") && map.contains_key("properties") {
                            map.insert("type".into(), Value::String("object".into()));
                        }
                    }
                    s
                }
                _ => json!({"type": "object", "properties": {}}),
            };
            if !parameters.is_object() {
                return Err(
                    util::invalid(format!("{path}.parameters: expected a schema object"))
                        .with_param("tools"),
                );
            }
            if decl.response.is_some() || decl.response_json_schema.is_some() {
                push_dropped(&mut out.dropped, "tools.functionDeclarations.response");
            }
            if decl.behavior.is_some() {
                push_dropped(&mut out.dropped, "tools.functionDeclarations.behavior");
            }
            out.tools.push(ToolDef {
                name,
                description: decl.description.clone().filter(|d| !d.is_empty()),
                parameters,
                strict: None,
            });
        }
    }
    Ok(())
}

fn decode_tool_config(
    config: &GeminiToolConfig,
    out: &mut ChatRequest,
) -> Result<(), CanonicalError> {
    if config
        .retrieval_config
        .as_ref()
        .is_some_and(|v| !v.is_null())
    {
        out.dropped.push("toolConfig.retrievalConfig".into());
    }
    let Some(fcc) = &config.function_calling_config else {
        return Ok(());
    };
    let allowed = fcc.allowed_function_names.clone().unwrap_or_default();
    let mode = fcc.mode.as_deref().map(str::to_ascii_uppercase);
    let restrict = |out: &mut ChatRequest| {
        if !allowed.is_empty() {
            out.tools.retain(|t| allowed.contains(&t.name));
        }
    };
    match mode.as_deref() {
        None | Some("MODE_UNSPECIFIED") | Some("AUTO") => {
            if mode.is_some() {
                out.tool_choice = Some(ToolChoice::Auto);
            }
            if !allowed.is_empty() {
                out.dropped.push("toolConfig.functionCallingConfig.allowedFunctionNames".into());
            }
        }
        Some("ANY") => {
            if allowed.len() == 1 {
                out.tool_choice = allowed.first().cloned().map(ToolChoice::Named);
            } else {
                // Several allowed names: only those tools may be called, so only those are offered.
                restrict(out);
                out.tool_choice = Some(ToolChoice::Required);
            }
        }
        Some("VALIDATED") => {
            restrict(out);
            out.tool_choice = Some(ToolChoice::Auto);
        }
        Some("NONE") => out.tool_choice = Some(ToolChoice::None),
        Some(other) => {
            return Err(util::invalid(format!(
                "toolConfig.functionCallingConfig.mode: unknown mode \"{other}\" (expected AUTO, ANY, NONE or VALIDATED)"
            ))
            .with_param("toolConfig"))
        }
    }
    Ok(())
}

fn decode_generation_config(
    config: &GeminiGenerationConfig,
    out: &mut ChatRequest,
) -> Result<(), CanonicalError> {
    let p = &mut out.params;
    p.temperature = config.temperature;
    p.top_p = config.top_p;
    if let Some(k) = config.top_k.as_ref().and_then(serde_json::Number::as_f64) {
        if !k.is_finite() || k < 0.0 {
            return Err(
                util::invalid("generationConfig.topK: expected a non-negative integer")
                    .with_param("generationConfig"),
            );
        }
        p.top_k = Some(k.round() as u64);
    }
    p.max_tokens = config.max_output_tokens;
    p.stop = config.stop_sequences.clone().unwrap_or_default();
    p.seed = config.seed;
    p.presence_penalty = config.presence_penalty;
    p.frequency_penalty = config.frequency_penalty;
    p.n = config.candidate_count;
    p.logprobs = config.response_logprobs;
    p.top_logprobs = config.logprobs;

    for modality in config.response_modalities.iter().flatten() {
        if !modality.eq_ignore_ascii_case("TEXT") {
            return Err(util::invalid(format!(
                "generationConfig.responseModalities: \"{modality}\" output cannot be translated to another provider; only TEXT is supported"
            ))
            .with_param("generationConfig"));
        }
    }
    for (present, name) in [
        (
            config.speech_config.is_some(),
            "generationConfig.speechConfig",
        ),
        (
            config.media_resolution.is_some(),
            "generationConfig.mediaResolution",
        ),
        (
            config.image_config.is_some(),
            "generationConfig.imageConfig",
        ),
        (
            config.enable_enhanced_civic_answers.is_some(),
            "generationConfig.enableEnhancedCivicAnswers",
        ),
        (
            config.audio_timestamp.is_some(),
            "generationConfig.audioTimestamp",
        ),
    ] {
        if present {
            out.dropped.push(name.into());
        }
    }

    let schema = match (&config.response_json_schema, &config.response_schema) {
        (Some(s), _) if !s.is_null() => Some(s.clone()),
        (_, Some(s)) if !s.is_null() => Some(schema::from_gemini_schema(s.clone())),
        _ => None,
    };
    let mime = config
        .response_mime_type
        .as_deref()
        .map(str::to_ascii_lowercase);
    out.response_format = match (mime.as_deref(), schema) {
        (None | Some("application/json"), Some(schema)) => Some(ResponseFormat::JsonSchema {
            name: "response".into(),
            description: None,
            schema,
            strict: None,
        }),
        (Some("application/json"), None) => Some(ResponseFormat::JsonObject),
        (Some("text/plain"), None) => Some(ResponseFormat::Text),
        (None, None) => None,
        (Some("text/plain"), Some(_)) => {
            return Err(util::invalid(
                "generationConfig.responseSchema: a response schema requires responseMimeType \"application/json\"",
            )
            .with_param("generationConfig"))
        }
        (Some(other), _) => {
            return Err(util::invalid(format!(
                "generationConfig.responseMimeType: \"{other}\" cannot be translated to another provider (supported: text/plain, application/json)"
            ))
            .with_param("generationConfig"))
        }
    };

    if let Some(thinking) = &config.thinking_config {
        out.reasoning = Some(decode_thinking(thinking)?);
    }
    Ok(())
}

fn decode_thinking(config: &GeminiThinkingConfig) -> Result<Reasoning, CanonicalError> {
    let effort = match config.thinking_level.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("thinking_level_unspecified") => None,
        Some(level @ ("minimal" | "low" | "medium" | "high")) => Some(level.to_string()),
        Some(other) => {
            return Err(util::invalid(format!(
                "generationConfig.thinkingConfig.thinkingLevel: unknown level \"{other}\" (expected MINIMAL, LOW, MEDIUM or HIGH)"
            ))
            .with_param("generationConfig"))
        }
    };
    Ok(Reasoning {
        effort,
        // -1 asks for a dynamic budget: no fixed budget.
        budget_tokens: config.thinking_budget.and_then(|b| u64::try_from(b).ok()),
        include_thoughts: config.include_thoughts,
    })
}

// ---- error location -------------------------------------------------------------------------

/// Turns a failed typed decode into a 400 that names the field at fault (serde's own message
/// says what was wrong but not where).
fn locate_error(body: &[u8], err: &serde_json::Error) -> CanonicalError {
    let value = match util::parse_request_json(body, "Gemini") {
        Ok(v) => v,
        Err(e) => return e,
    };
    let Value::Object(map) = &value else {
        return util::invalid(
            "the Gemini request body must be a JSON object (a GenerateContentRequest)",
        );
    };
    let located = map.iter().find_map(|(key, value)| match key.as_str() {
        "contents" => locate_contents(value),
        "systemInstruction" | "system_instruction" => match value {
            Value::String(_) | Value::Null => None,
            Value::Object(_) => locate_content(value, key),
            _ => Some(format!("{key}: expected a Content object")),
        },
        "tools" => locate_tools(value),
        "toolConfig" | "tool_config" => locate::<GeminiToolConfig>(value, key),
        "generationConfig" | "generation_config" => locate::<GeminiGenerationConfig>(value, key),
        _ => None,
    });
    util::invalid(located.unwrap_or_else(|| format!("invalid Gemini request: {err}")))
}

/// `Some(message)` when `value` does not deserialize as `T`, naming the first bad field.
fn locate<T: DeserializeOwned>(value: &Value, path: &str) -> Option<String> {
    let err = T::deserialize(value).err()?;
    if let Value::Object(map) = value {
        for (key, field) in map {
            let mut single = Map::new();
            single.insert(key.clone(), field.clone());
            if let Err(e) = T::deserialize(&Value::Object(single)) {
                return Some(format!("{path}.{key}: {e}"));
            }
        }
    }
    Some(format!("{path}: {err}"))
}

fn locate_contents(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, c)| locate_content(c, &format!("contents[{i}]"))),
        _ => Some("contents: expected an array of Content objects".into()),
    }
}

fn locate_content(value: &Value, path: &str) -> Option<String> {
    let Value::Object(map) = value else {
        return Some(format!("{path}: expected a Content object"));
    };
    if let Some(role) = map.get("role") {
        if !role.is_string() && !role.is_null() {
            return Some(format!("{path}.role: expected a string"));
        }
    }
    match map.get("parts") {
        None | Some(Value::Null) => None,
        Some(Value::Array(parts)) => parts.iter().enumerate().find_map(|(i, p)| {
            let path = format!("{path}.parts[{i}]");
            if p.is_object() {
                locate::<GeminiPart>(p, &path)
            } else {
                Some(format!("{path}: expected a Part object"))
            }
        }),
        Some(_) => Some(format!("{path}.parts: expected an array of Part objects")),
    }
}

fn locate_tools(value: &Value) -> Option<String> {
    let Value::Array(tools) = value else {
        return (!value.is_null()).then(|| "tools: expected an array of Tool objects".to_string());
    };
    tools.iter().enumerate().find_map(|(i, tool)| {
        let path = format!("tools[{i}]");
        let decls = tool
            .get("functionDeclarations")
            .or_else(|| tool.get("function_declarations"));
        match decls {
            Some(Value::Array(decls)) => decls
                .iter()
                .enumerate()
                .find_map(|(j, d)| {
                    locate::<GeminiFunctionDeclaration>(
                        d,
                        &format!("{path}.functionDeclarations[{j}]"),
                    )
                })
                .or_else(|| locate::<GeminiTool>(tool, &path)),
            _ => locate::<GeminiTool>(tool, &path),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Encode
// ---------------------------------------------------------------------------------------------

/// Where encoded parts go: a request's history, or a response to a Gemini client.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Target {
    Request,
    Response,
}

/// Encodes `req` as a `generateContent` body (the model goes in the URL, not here).
pub fn encode_request(req: &ChatRequest, opts: &EncodeOptions) -> Result<Encoded, CanonicalError> {
    let mut dropped: Vec<String> = Vec::new();
    let mut contents: Vec<GeminiContent> = Vec::new();
    for (mi, message) in req.messages.iter().enumerate() {
        let (role, parts) = match message.role {
            Role::User => (
                "user",
                encode_user_parts(req, mi, &message.parts, &mut dropped)?,
            ),
            Role::Assistant => (
                "model",
                encode_model_parts(&message.parts, Target::Request, &mut dropped)?,
            ),
        };
        if parts.is_empty() {
            continue;
        }
        match contents.last_mut() {
            Some(last) if last.role.as_deref() == Some(role) => {
                last.parts.get_or_insert_with(Vec::new).extend(parts);
            }
            _ => contents.push(GeminiContent {
                role: Some(role.into()),
                parts: Some(parts),
            }),
        }
    }
    if contents.is_empty() {
        return Err(util::invalid(
            "Gemini needs at least one message with content; this request has none",
        )
        .with_param("messages"));
    }
    for content in contents
        .iter_mut()
        .filter(|c| c.role.as_deref() == Some("model"))
    {
        add_signature_sentinel(content);
    }

    let system_parts: Vec<GeminiPart> = req
        .system
        .iter()
        .filter(|s| !s.is_empty())
        .map(GeminiPart::text)
        .collect();
    let system_instruction = (!system_parts.is_empty()).then_some(GeminiContent {
        role: None,
        parts: Some(system_parts),
    });

    let (tools, tool_config) = encode_tools(req, &mut dropped);
    let generation_config = encode_generation_config(req, opts.capabilities.thinking, &mut dropped);

    if req.parallel_tool_calls == Some(false) {
        dropped.push("parallel_tool_calls".into());
    }
    if req.user.is_some() {
        dropped.push("user".into());
    }
    if req.metadata.is_some() {
        dropped.push("metadata".into());
    }

    let body = GeminiRequestOut {
        contents,
        system_instruction,
        tools,
        tool_config,
        generation_config,
    };
    let body = serde_json::to_vec(&body).map_err(|e| {
        CanonicalError::new(
            ErrorKind::Internal,
            format!("could not serialise the Gemini request: {e}"),
        )
    })?;
    Ok(Encoded {
        body,
        dropped,
        structured_output_tool: None,
    })
}

/// Gemini 3 rejects a replayed model turn whose function calls carry no `thoughtSignature`
/// (history from another model or protocol has none); Google documents this value for exactly
/// that case. Real signatures are never replaced.
fn add_signature_sentinel(content: &mut GeminiContent) {
    let Some(parts) = content.parts.as_mut() else {
        return;
    };
    let calls = || parts.iter().filter(|p| p.function_call.is_some());
    if calls().next().is_none() || calls().any(|p| p.thought_signature.is_some()) {
        return;
    }
    if let Some(first) = parts.iter_mut().find(|p| p.function_call.is_some()) {
        first.thought_signature = Some(SKIP_SIGNATURE.into());
    }
}

fn image_part(image: &Image, target: Target) -> Result<GeminiPart, CanonicalError> {
    match &image.source {
        ImageSource::Base64 { media_type, data } => Ok(GeminiPart {
            inline_data: Some(GeminiBlob {
                mime_type: Some(media_type.clone()),
                data: Some(data.clone()),
            }),
            ..GeminiPart::default()
        }),
        ImageSource::Url(url) => {
            if let Some((media_type, data)) = util::parse_data_url(url) {
                return image_part(
                    &Image {
                        source: ImageSource::Base64 { media_type, data },
                        detail: None,
                    },
                    target,
                );
            }
            match target {
                Target::Request => Err(util::invalid(
                    "Gemini accepts images only inline (base64); this request has an image URL",
                )
                .with_param("messages")),
                Target::Response => Ok(GeminiPart {
                    file_data: Some(GeminiFileData {
                        mime_type: Some(guess_image_type(url).into()),
                        file_uri: Some(url.clone()),
                    }),
                    ..GeminiPart::default()
                }),
            }
        }
    }
}

fn guess_image_type(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if path.ends_with(".png") {
        "image/png"
    } else if path.ends_with(".gif") {
        "image/gif"
    } else if path.ends_with(".webp") {
        "image/webp"
    } else {
        "image/jpeg"
    }
}

/// The `args` object for a call's JSON text. Text that is not a JSON object (a model can emit
/// truncated arguments) becomes `{}`: Gemini only takes an object, and refusing the whole
/// conversation over a past call's arguments would leave the client stuck. Returns whether
/// the text was usable.
pub(super) fn args_object(arguments: &str) -> (Value, bool) {
    if arguments.trim().is_empty() {
        return (Value::Object(Map::new()), true);
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => (v, true),
        _ => (Value::Object(Map::new()), false),
    }
}

/// Canonical assistant parts -> Gemini parts (a request's `model` turn, or a response's
/// candidate). Signature-only thinking parts put their signature on the next non-thought part
/// (or, at the end, the last one); thinking without a signature is dropped from requests
/// (Gemini ignores unsigned thoughts in history) but shown in responses.
pub(super) fn encode_model_parts(
    parts: &[Part],
    target: Target,
    dropped: &mut Vec<String>,
) -> Result<Vec<GeminiPart>, CanonicalError> {
    let mut out: Vec<GeminiPart> = Vec::new();
    let mut pending: Option<String> = None;
    for part in parts {
        let mut wire = match part {
            Part::Text(text) => {
                if text.is_empty() {
                    continue;
                }
                GeminiPart::text(text.clone())
            }
            Part::Thinking(thinking) => {
                match (&thinking.signature, thinking.text.is_empty()) {
                    (Some(sig), true) => {
                        if let Some(previous) = pending.replace(sig.clone()) {
                            out.push(GeminiPart {
                                text: Some(String::new()),
                                thought_signature: Some(previous),
                                ..GeminiPart::default()
                            });
                        }
                    }
                    (signature, false) => {
                        if signature.is_none() && target == Target::Request {
                            push_dropped(dropped, "thinking");
                        } else {
                            out.push(GeminiPart {
                                text: Some(thinking.text.clone()),
                                thought: Some(true),
                                thought_signature: signature.clone(),
                                ..GeminiPart::default()
                            });
                        }
                    }
                    (None, true) => {
                        if thinking.redacted.is_some() {
                            push_dropped(dropped, "thinking");
                        }
                    }
                }
                continue;
            }
            Part::ToolCall(call) => {
                let (args, ok) = args_object(&call.arguments);
                if !ok {
                    push_dropped(dropped, "tool_call.arguments");
                }
                GeminiPart {
                    function_call: Some(GeminiFunctionCall {
                        id: Some(call.id.clone()).filter(|id| !id.is_empty()),
                        name: Some(call.name.clone()),
                        args: Some(args),
                    }),
                    ..GeminiPart::default()
                }
            }
            Part::Image(image) => image_part(image, target)?,
            Part::ToolResult(_) => match target {
                Target::Request => {
                    return Err(util::invalid(
                        "a tool result appears in an assistant message; tool results belong to the user side",
                    )
                    .with_param("messages"))
                }
                Target::Response => continue,
            },
        };
        wire.thought_signature = pending.take();
        out.push(wire);
    }
    if let Some(sig) = pending {
        match out
            .iter_mut()
            .rev()
            .find(|p| p.thought != Some(true) && p.thought_signature.is_none())
        {
            Some(last) => last.thought_signature = Some(sig),
            None => out.push(GeminiPart {
                text: Some(String::new()),
                thought_signature: Some(sig),
                ..GeminiPart::default()
            }),
        }
    }
    Ok(out)
}

fn encode_user_parts(
    req: &ChatRequest,
    mi: usize,
    parts: &[Part],
    dropped: &mut Vec<String>,
) -> Result<Vec<GeminiPart>, CanonicalError> {
    let mut out = Vec::new();
    // Images returned by tools go right after the run of function responses.
    let mut tool_images: Vec<GeminiPart> = Vec::new();
    for part in parts {
        if !matches!(part, Part::ToolResult(_)) {
            out.append(&mut tool_images);
        }
        match part {
            Part::Text(text) => {
                if !text.is_empty() {
                    out.push(GeminiPart::text(text.clone()));
                }
            }
            Part::Image(image) => out.push(image_part(image, Target::Request)?),
            Part::ToolResult(result) => {
                let name = result
                    .name
                    .clone()
                    .filter(|n| !n.is_empty())
                    .or_else(|| req.tool_name_for(&result.call_id).map(str::to_string))
                    .ok_or_else(|| {
                        util::invalid(format!(
                            "messages[{mi}]: tool result for unknown call id \"{}\" (Gemini matches results to calls by function name)",
                            result.call_id
                        ))
                        .with_param("messages")
                    })?;
                let mut texts = Vec::new();
                for item in &result.content {
                    match item {
                        Part::Text(t) => texts.push(t.as_str()),
                        Part::Image(image) => tool_images.push(image_part(image, Target::Request)?),
                        _ => {}
                    }
                }
                out.push(GeminiPart {
                    function_response: Some(GeminiFunctionResponse {
                        id: Some(result.call_id.clone()).filter(|id| !id.is_empty()),
                        name: Some(name),
                        response: Some(response_object(&texts.join("\n"), result.is_error)),
                        parts: None,
                    }),
                    ..GeminiPart::default()
                });
            }
            Part::ToolCall(_) => {
                return Err(util::invalid(format!(
                    "messages[{mi}]: a tool call appears in a user message; tool calls belong to the assistant"
                ))
                .with_param("messages"))
            }
            Part::Thinking(_) => push_dropped(dropped, "thinking"),
        }
    }
    out.append(&mut tool_images);
    Ok(out)
}

/// `FunctionResponse.response` must be an object: a JSON-object result is sent as itself,
/// anything else as `{"content": text}`; an error result as `{"error": ...}` (Google's
/// documented key for failures).
fn response_object(text: &str, is_error: bool) -> Value {
    let parsed = serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object);
    match (parsed, is_error) {
        (Some(object), false) => object,
        (Some(object), true) => json!({ "error": object }),
        (None, false) => json!({ "content": text }),
        (None, true) => json!({ "error": text }),
    }
}

fn encode_tools(
    req: &ChatRequest,
    dropped: &mut Vec<String>,
) -> (Vec<GeminiTool>, Option<GeminiToolConfig>) {
    if req.tools.is_empty() {
        if matches!(
            req.tool_choice,
            Some(ToolChoice::Required | ToolChoice::Named(_))
        ) {
            dropped.push("tool_choice".into());
        }
        return (Vec::new(), None);
    }
    let mut declarations = Vec::with_capacity(req.tools.len());
    for tool in &req.tools {
        let mut decl = GeminiFunctionDeclaration {
            name: Some(tool.name.clone()),
            description: tool.description.clone(),
            ..GeminiFunctionDeclaration::default()
        };
        if !schema::is_empty_object(&tool.parameters) {
            match schema::to_gemini_schema(&tool.parameters) {
                Some(converted) => decl.parameters = Some(converted),
                None => {
                    decl.parameters_json_schema = Some(schema::to_json_schema(&tool.parameters))
                }
            }
        }
        if tool.strict.is_some() {
            push_dropped(dropped, "tools.strict");
        }
        declarations.push(decl);
    }
    let tools = vec![GeminiTool {
        function_declarations: Some(declarations),
        rest: Map::new(),
    }];
    let config = req.tool_choice.as_ref().map(|choice| {
        let (mode, allowed) = match choice {
            ToolChoice::Auto => ("AUTO", None),
            ToolChoice::None => ("NONE", None),
            ToolChoice::Required => ("ANY", None),
            ToolChoice::Named(name) => ("ANY", Some(vec![name.clone()])),
        };
        GeminiToolConfig {
            function_calling_config: Some(GeminiFunctionCallingConfig {
                mode: Some(mode.into()),
                allowed_function_names: allowed,
            }),
            retrieval_config: None,
        }
    });
    (tools, config)
}

fn encode_generation_config(
    req: &ChatRequest,
    thinking: ThinkingControl,
    dropped: &mut Vec<String>,
) -> Option<GeminiGenerationConfig> {
    let Params {
        temperature,
        top_p,
        top_k,
        max_tokens,
        stop,
        seed,
        presence_penalty,
        frequency_penalty,
        n,
        logprobs,
        top_logprobs,
    } = &req.params;
    let mut config = GeminiGenerationConfig {
        stop_sequences: (!stop.is_empty()).then(|| stop.clone()),
        candidate_count: *n,
        max_output_tokens: *max_tokens,
        temperature: *temperature,
        top_p: *top_p,
        top_k: top_k.map(serde_json::Number::from),
        // Gemini's seed is an int32: wider seeds are folded deterministically.
        seed: seed.map(|s| i64::from(s as i32)),
        presence_penalty: *presence_penalty,
        frequency_penalty: *frequency_penalty,
        response_logprobs: *logprobs,
        logprobs: *top_logprobs,
        ..GeminiGenerationConfig::default()
    };

    match &req.response_format {
        None => {}
        Some(ResponseFormat::Text) => config.response_mime_type = Some("text/plain".into()),
        Some(ResponseFormat::JsonObject) => {
            config.response_mime_type = Some("application/json".into())
        }
        Some(ResponseFormat::JsonSchema {
            schema: json_schema,
            description,
            ..
        }) => {
            config.response_mime_type = Some("application/json".into());
            let mut with_description = json_schema.clone();
            if let (Some(d), Value::Object(map)) = (description, &mut with_description) {
                map.entry("description")
                    .or_insert_with(|| Value::String(d.clone()));
            }
            match schema::to_gemini_schema(&with_description) {
                Some(converted) => config.response_schema = Some(converted),
                None => {
                    config.response_json_schema = Some(schema::to_json_schema(&with_description))
                }
            }
        }
    }

    if let Some(reasoning) = &req.reasoning {
        config.thinking_config = encode_thinking(reasoning, thinking, dropped);
    }

    (config != GeminiGenerationConfig::default()).then_some(config)
}

/// Reasoning -> `thinkingConfig`. An explicit budget is sent as `thinkingBudget` (every thinking
/// model takes it); an effort alone becomes `thinkingLevel` where the model's capabilities say
/// so (Gemini 3+, Google's recommended control there) and the conventional budget of that
/// effort otherwise.
fn encode_thinking(
    reasoning: &Reasoning,
    control: ThinkingControl,
    dropped: &mut Vec<String>,
) -> Option<GeminiThinkingConfig> {
    let mut config = GeminiThinkingConfig {
        include_thoughts: reasoning.include_thoughts,
        ..GeminiThinkingConfig::default()
    };
    match (&reasoning.effort, reasoning.budget_tokens) {
        (Some(effort), None) if control == ThinkingControl::Level => {
            let level = match effort.as_str() {
                "none" => "minimal",
                other => other,
            };
            if matches!(level, "minimal" | "low" | "medium" | "high") {
                config.thinking_level = Some(level.to_string());
            } else {
                push_dropped(dropped, "reasoning.effort");
            }
        }
        _ => match reasoning.budget() {
            Some(budget) => {
                config.thinking_budget = Some(i64::try_from(budget).unwrap_or(i64::MAX))
            }
            None if reasoning.effort.is_some() => push_dropped(dropped, "reasoning.effort"),
            None => {}
        },
    }
    (config != GeminiThinkingConfig::default()).then_some(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_level_only_where_the_capabilities_say_so() {
        // Which models take a level is the config's capability table (tested there).
        let level = |model: &str| bitrouter_config::ModelCapabilities::for_model(model).thinking;
        assert_eq!(level("gemini-3-pro-preview"), ThinkingControl::Level);
        assert_eq!(level("gemini-2.5-pro"), ThinkingControl::Budget);
        let effort = |e: &str| Reasoning {
            effort: Some(e.into()),
            ..Reasoning::default()
        };
        let mut dropped = Vec::new();
        let c = encode_thinking(&effort("high"), ThinkingControl::Level, &mut dropped).unwrap();
        assert_eq!(
            (c.thinking_level.as_deref(), c.thinking_budget),
            (Some("high"), None)
        );
        let c = encode_thinking(&effort("high"), ThinkingControl::Budget, &mut dropped).unwrap();
        assert_eq!((c.thinking_level, c.thinking_budget), (None, Some(24576)));
        assert_eq!(
            encode_thinking(&effort("xhigh"), ThinkingControl::Budget, &mut dropped),
            None
        );
        assert_eq!(dropped, vec!["reasoning.effort".to_string()]);
    }

    #[test]
    fn error_messages_name_the_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"contents": 3}"#, "contents: expected an array"),
            (
                r#"{"contents": [{"parts": [{"text": 5}]}]}"#,
                "contents[0].parts[0].text:",
            ),
            (
                r#"{"contents": [{"role": "user", "parts": {}}]}"#,
                "contents[0].parts: expected an array",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"temperature": "hot"}}"#,
                "generationConfig.temperature:",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "hi"}]}], "tools": [{"functionDeclarations": [{"name": 1}]}]}"#,
                "tools[0].functionDeclarations[0].name:",
            ),
            (
                r#"{"contents": [{"parts": [{"text": "hi"}]}], "systemInstruction": 4}"#,
                "systemInstruction: expected a Content",
            ),
            (r#"[1]"#, "must be a JSON object"),
            (r#"{"contents": ["#, "not valid JSON"),
        ];
        for (body, expected) in cases {
            let err = decode_request(body.as_bytes()).unwrap_err();
            assert_eq!(err.kind, ErrorKind::InvalidRequest);
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
    }

    #[test]
    fn unknown_roles_parts_and_tools_are_rejected_by_name() {
        let err =
            decode_request(br#"{"contents": [{"role": "system", "parts": [{"text": "x"}]}]}"#)
                .unwrap_err();
        assert!(
            err.message
                .contains("contents[0].role: unknown role \"system\""),
            "{}",
            err.message
        );
        let err =
            decode_request(br#"{"contents": [{"parts": [{"toolCall": {"x": 1}}]}]}"#).unwrap_err();
        assert!(
            err.message.contains("unsupported part \"toolCall\""),
            "{}",
            err.message
        );
        let err = decode_request(
            br#"{"contents": [{"parts": [{"text": "x"}]}], "tools": [{"google_search": {}}]}"#,
        )
        .unwrap_err();
        assert!(err.message.contains("\"google_search\""), "{}", err.message);
        // Metadata-only parts are not errors.
        let ok = decode_request(
            br#"{"contents": [{"parts": [{"text": "x"}, {"videoMetadata": {"fps": 1}}]}]}"#,
        )
        .unwrap();
        assert_eq!(ok.messages[0].parts, vec![Part::Text("x".into())]);
    }

    #[test]
    fn response_objects() {
        assert_eq!(response_object("sunny", false), json!({"content": "sunny"}));
        assert_eq!(response_object(r#"{"t": 20}"#, false), json!({"t": 20}));
        assert_eq!(response_object("boom", true), json!({"error": "boom"}));
        assert_eq!(response_object("[1,2]", false), json!({"content": "[1,2]"}));
    }

    #[test]
    fn signatures_attach_to_the_following_part() {
        let sig = |s: &str| {
            Part::Thinking(Thinking {
                text: String::new(),
                signature: Some(s.into()),
                redacted: None,
            })
        };
        let parts = vec![
            Part::Thinking(Thinking {
                text: "plan".into(),
                signature: None,
                redacted: None,
            }),
            sig("S1"),
            Part::ToolCall(ToolCall {
                id: "c1".into(),
                name: "f".into(),
                arguments: "{\"a\":1}".into(),
            }),
            Part::Text("after".into()),
            sig("S2"),
        ];
        let mut dropped = Vec::new();
        let out = encode_model_parts(&parts, Target::Request, &mut dropped).unwrap();
        assert_eq!(dropped, vec!["thinking".to_string()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].thought_signature.as_deref(), Some("S1"));
        assert_eq!(
            out[0].function_call.as_ref().and_then(|c| c.args.clone()),
            Some(json!({"a": 1}))
        );
        assert_eq!(out[1].text.as_deref(), Some("after"));
        assert_eq!(out[1].thought_signature.as_deref(), Some("S2"));

        // In a response the unsigned thought is shown.
        let out = encode_model_parts(&parts, Target::Response, &mut dropped).unwrap();
        assert_eq!(out[0].thought, Some(true));
        assert_eq!(out[0].text.as_deref(), Some("plan"));
    }
}
