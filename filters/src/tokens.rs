//! A local estimate of a request's input tokens, for Anthropic's `POST /v1/messages/count_tokens`
//! when the model is served by a provider that cannot count them for us.
//!
//! Claude Code calls `count_tokens` to decide when a conversation must be compacted; what it
//! needs is a figure of the right size, quickly, with no upstream call. There is no public
//! Claude tokenizer, and an embedded OpenAI vocabulary (`tiktoken-rs`: several MB of BPE ranks
//! compiled into the binary, and their load time on first use) would still be another model's
//! tokenizer — off by a similar margin for a Claude or Gemini model. So this is a documented
//! heuristic, pure and allocation-free over the canonical request, whatever protocol it came in.
//!
//! The heuristic (constants below, each with its reason):
//! - Text: 3.5 bytes of ASCII per token (Anthropic's own rule of thumb for Claude; OpenAI's
//!   tokenizers are nearer 4, so this leans to over-counting, the safe side for a client deciding
//!   when to compact), one token per CJK character (Han, kana, Hangul: BPE vocabularies hold few
//!   multi-character CJK tokens), ~0.57 tokens per other non-ASCII BMP character (accented Latin,
//!   Cyrillic, Greek, Arabic... split into byte pairs), two per character outside the BMP
//!   (emoji and the like, which take several byte tokens). Computed in sevenths of a token and
//!   rounded up once for the whole request.
//! - Structure: a fixed cost per request and per message (role markers and separators, as in
//!   OpenAI's published counting recipe) and per tool call and tool result (ids, names,
//!   delimiters), plus the call's id, name and argument text.
//! - Images: a fixed [`IMAGE_TOKENS`], the most Anthropic charges for one image (images are
//!   scaled to ~1.15 megapixels, about 1,600 tokens); the dimensions are not known without
//!   decoding the image, so every image is counted at the cap.
//! - Tools: the tool-use system prompt Anthropic adds when tools are present
//!   ([`TOOLS_PREAMBLE_TOKENS`], from Anthropic's pricing page), plus per tool its name,
//!   description and JSON-schema text and a fixed [`TOOL_OVERHEAD`].
//! - Thinking: only in the current turn (the last message, or the assistant message a final
//!   message of tool results answers): Anthropic strips earlier turns' thinking from the
//!   context, so it does not count towards input.

use crate::canonical::{CanonicalError, ChatRequest, Part, ResponseFormat, Role};
use crate::protocol::util::{invalid, parse_request_json};
use serde_json::{json, Map, Value};

/// The fraction of a token the text estimate counts in (see [`text_units`]).
pub const UNITS_PER_TOKEN: u64 = 7;
/// Units per ASCII byte: 2/7 of a token, i.e. 3.5 bytes per token.
const ASCII_UNITS: u64 = 2;
/// Units per CJK character: one token.
const CJK_UNITS: u64 = 7;
/// Units per other character of the Basic Multilingual Plane: ~0.57 token.
const OTHER_BMP_UNITS: u64 = 4;
/// Units per character outside the BMP (emoji, symbols): two tokens.
const ASTRAL_UNITS: u64 = 14;

/// Fixed cost of any request (the assistant turn's priming tokens).
pub const REQUEST_OVERHEAD: u64 = 3;
/// Fixed cost of each message, and of the system prompt when there is one.
pub const MESSAGE_OVERHEAD: u64 = 4;
/// Fixed cost of each tool call or tool result part.
pub const TOOL_PART_OVERHEAD: u64 = 4;
/// Cost of one image: Anthropic's ceiling for a single image.
pub const IMAGE_TOKENS: u64 = 1_600;
/// The tool-use system prompt Anthropic adds when a request has tools (346 tokens for
/// `tool_choice` auto/none on current Claude models; 313 for any/tool — the larger is used).
pub const TOOLS_PREAMBLE_TOKENS: u64 = 346;
/// Fixed cost of each tool definition (its framing in the tool list).
pub const TOOL_OVERHEAD: u64 = 8;

/// Whether `c` is a CJK ideograph, kana, Hangul syllable/jamo, or CJK punctuation/fullwidth
/// form: scripts a BPE vocabulary covers about one token per character.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF       // Hangul Jamo
        | 0x2E80..=0x2FDF     // CJK radicals, Kangxi
        | 0x3000..=0x30FF     // CJK punctuation, Hiragana, Katakana
        | 0x3130..=0x318F     // Hangul compatibility jamo
        | 0x31F0..=0x31FF     // Katakana extensions
        | 0x3400..=0x4DBF     // CJK extension A
        | 0x4E00..=0x9FFF     // CJK unified ideographs
        | 0xAC00..=0xD7AF     // Hangul syllables
        | 0xF900..=0xFAFF     // CJK compatibility ideographs
        | 0xFF00..=0xFFEF     // Halfwidth and fullwidth forms
        | 0x20000..=0x3134F   // CJK extensions B-G
    )
}

/// The text estimate of `s`, in sevenths of a token ([`UNITS_PER_TOKEN`]).
pub fn text_units(s: &str) -> u64 {
    let mut units = 0;
    for c in s.chars() {
        units += if c.is_ascii() {
            ASCII_UNITS
        } else if is_cjk(c) {
            CJK_UNITS
        } else if (c as u32) < 0x10000 {
            OTHER_BMP_UNITS
        } else {
            ASTRAL_UNITS
        };
    }
    units
}

/// The estimated number of input tokens `request` costs (see the module documentation for the
/// heuristic). Monotonic: adding content never lowers it.
pub fn estimate_input_tokens(request: &ChatRequest) -> u64 {
    let mut units: u64 = 0;
    let mut fixed: u64 = REQUEST_OVERHEAD;
    if !request.system.is_empty() {
        fixed += MESSAGE_OVERHEAD;
        units += request.system.iter().map(|s| text_units(s)).sum::<u64>();
    }
    let thinking_turn = current_turn(request);
    for (i, message) in request.messages.iter().enumerate() {
        fixed += MESSAGE_OVERHEAD;
        let keep_thinking = Some(i) == thinking_turn;
        for part in &message.parts {
            let (u, f) = part_cost(part, keep_thinking);
            units += u;
            fixed += f;
        }
    }
    if !request.tools.is_empty() {
        fixed += TOOLS_PREAMBLE_TOKENS;
        for tool in &request.tools {
            fixed += TOOL_OVERHEAD;
            units += text_units(&tool.name);
            units += tool.description.as_deref().map_or(0, text_units);
            if !tool.parameters.is_null() {
                units += text_units(&tool.parameters.to_string());
            }
        }
    }
    if let Some(ResponseFormat::JsonSchema {
        name,
        description,
        schema,
        ..
    }) = &request.response_format
    {
        fixed += TOOL_OVERHEAD;
        units += text_units(name) + description.as_deref().map_or(0, text_units);
        units += text_units(&schema.to_string());
    }
    fixed + units.div_ceil(UNITS_PER_TOKEN)
}

/// The index of the assistant message whose thinking is still in context: the last message,
/// or the one before a final user message of tool results only (a tool-use loop in progress).
/// Anthropic drops the thinking of every earlier turn.
fn current_turn(request: &ChatRequest) -> Option<usize> {
    let n = request.messages.len();
    let last = request.messages.last()?;
    if last.role == Role::Assistant {
        return Some(n - 1);
    }
    let tool_results_only =
        !last.parts.is_empty() && last.parts.iter().all(|p| matches!(p, Part::ToolResult(_)));
    let before = n.checked_sub(2)?;
    (tool_results_only && request.messages[before].role == Role::Assistant).then_some(before)
}

/// (text units, fixed tokens) of one part.
fn part_cost(part: &Part, keep_thinking: bool) -> (u64, u64) {
    match part {
        Part::Text(t) => (text_units(t), 0),
        Part::Image(_) => (0, IMAGE_TOKENS),
        Part::ToolCall(c) => (
            text_units(&c.id) + text_units(&c.name) + text_units(&c.arguments),
            TOOL_PART_OVERHEAD,
        ),
        Part::ToolResult(r) => {
            let mut units = text_units(&r.call_id);
            let mut fixed = TOOL_PART_OVERHEAD;
            for p in &r.content {
                let (u, f) = part_cost(p, keep_thinking);
                units += u;
                fixed += f;
            }
            (units, fixed)
        }
        Part::Thinking(t) if keep_thinking => (
            text_units(&t.text) + t.redacted.as_deref().map_or(0, text_units),
            0,
        ),
        Part::Thinking(_) => (0, 0),
    }
}

/// The `count_tokens` answer: `{"input_tokens": N}`.
pub fn count_tokens_response(input_tokens: u64) -> Vec<u8> {
    json!({ "input_tokens": input_tokens })
        .to_string()
        .into_bytes()
}

/// Decodes an Anthropic `POST /v1/messages/count_tokens` body (a Messages request without
/// `max_tokens` or `stream`) into the canonical request, for [`estimate_input_tokens`].
///
/// More tolerant than [`crate::protocol::anthropic::decode_request`], because nothing is sent
/// anywhere: content that cannot be translated to another provider can still be counted.
/// Server-tool, search-result, MCP and other non-portable blocks are counted as the text of
/// their JSON; a document is counted as an image (a PDF page is billed as an image plus its
/// text; the page count is unknown without parsing it) or, for a plain-text source, as its
/// text; a Files-API image as an image; an Anthropic-defined tool (`bash_*`, `web_search_*`,
/// ...) as a tool whose description is its definition; `max_tokens`, `stream` and
/// `mcp_servers` are ignored. What is still refused, with a 400 naming the field: a body that
/// is not a JSON object, no `model`, no `messages`, and malformed messages or blocks.
pub fn decode_count_tokens(body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    let mut root = parse_request_json(body, "Anthropic count_tokens")?;
    let Value::Object(obj) = &mut root else {
        return Err(invalid(
            "the Anthropic count_tokens request body must be a JSON object",
        ));
    };
    for ignored in ["max_tokens", "stream", "mcp_servers"] {
        obj.remove(ignored);
    }
    if let Some(Value::Array(messages)) = obj.get_mut("messages") {
        for message in messages {
            if let Some(Value::Array(blocks)) = message.get_mut("content") {
                for block in blocks {
                    make_countable(block, false);
                }
            }
        }
    }
    if let Some(Value::Array(tools)) = obj.get_mut("tools") {
        for tool in tools {
            make_countable_tool(tool);
        }
    }
    let mut request = crate::protocol::anthropic::decode_request(root.to_string().as_bytes())?;
    // Nothing was dropped: the fields were never going anywhere.
    request.dropped.clear();
    Ok(request)
}

fn text_block(text: String) -> Value {
    json!({ "type": "text", "text": text })
}

fn image_placeholder(what: &str) -> Value {
    json!({ "type": "image", "source": { "type": "url", "url": format!("bitrouter-count:{what}") } })
}

/// Rewrites a content block the Messages decoder would refuse into one it accepts and that
/// costs about the same (`in_tool_result`: only text and images are allowed there).
fn make_countable(block: &mut Value, in_tool_result: bool) {
    let Some(kind) = block.get("type").and_then(Value::as_str) else {
        return; // the decoder names the missing type
    };
    match kind {
        "text" => {}
        "image" => {
            let by_file = block
                .get("source")
                .and_then(|s| s.get("type"))
                .and_then(Value::as_str)
                == Some("file");
            if by_file {
                *block = image_placeholder("file");
            }
        }
        "tool_result" if !in_tool_result => {
            if let Some(Value::Array(inner)) = block.get_mut("content") {
                for b in inner {
                    make_countable(b, true);
                }
            }
        }
        "tool_use" | "thinking" | "redacted_thinking" if !in_tool_result => {}
        "document" => {
            let source = block.get("source").cloned().unwrap_or(Value::Null);
            *block = match source.get("type").and_then(Value::as_str) {
                Some("text") => text_block(
                    source
                        .get("data")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                ),
                Some("content") => {
                    text_block(source.get("content").map_or_else(String::new, |c| match c {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    }))
                }
                _ => image_placeholder("document"),
            };
        }
        _ => {
            let text = block.to_string();
            *block = text_block(text);
        }
    }
}

/// Rewrites an Anthropic-defined tool (`{"type": "bash_20250124", "name": "bash"}`) as a custom
/// tool described by its definition, so it is counted instead of refused.
fn make_countable_tool(tool: &mut Value) {
    let kind = tool.get("type").and_then(Value::as_str);
    if matches!(kind, None | Some("custom")) {
        return;
    }
    let name = tool
        .get("name")
        .or_else(|| tool.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("tool")
        .to_string();
    let description = tool.to_string();
    let mut custom = Map::new();
    custom.insert("name".into(), Value::String(name));
    custom.insert("description".into(), Value::String(description));
    custom.insert("input_schema".into(), json!({ "type": "object" }));
    *tool = Value::Object(custom);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Image, ImageSource, Message, Thinking, ToolCall, ToolDef, ToolResult};

    fn user(text: &str) -> Message {
        Message {
            role: Role::User,
            parts: vec![Part::Text(text.into())],
        }
    }

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages,
            ..ChatRequest::default()
        }
    }

    #[test]
    fn empty_is_the_fixed_overhead() {
        assert_eq!(
            estimate_input_tokens(&ChatRequest::default()),
            REQUEST_OVERHEAD
        );
        assert_eq!(
            estimate_input_tokens(&request(vec![user("")])),
            REQUEST_OVERHEAD + MESSAGE_OVERHEAD
        );
    }

    #[test]
    fn text_costs_follow_the_script() {
        // 35 ASCII bytes: 10 tokens.
        assert_eq!(text_units(&"a".repeat(35)).div_ceil(UNITS_PER_TOKEN), 10);
        // One token per CJK character.
        assert_eq!(
            text_units("你好世界こんにちは안녕").div_ceil(UNITS_PER_TOKEN),
            11
        );
        // Emoji cost more than ASCII letters.
        assert!(text_units("🙂") > text_units("ab"));
        assert!(text_units("привет") > text_units("privet"));
    }

    #[test]
    fn monotonic_in_content() {
        let mut last = 0;
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(if i % 3 == 0 { "word " } else { "字" });
            let n = estimate_input_tokens(&request(vec![user(&text)]));
            assert!(n >= last, "{n} < {last} at {i}");
            last = n;
        }
        assert!(last > 100);
        let one = estimate_input_tokens(&request(vec![user("hello there")]));
        let two = estimate_input_tokens(&request(vec![user("hello there"), user("again")]));
        assert!(two > one);
        let mut with_system = request(vec![user("hello there")]);
        with_system.system.push("You are terse.".into());
        assert!(estimate_input_tokens(&with_system) > one);
    }

    #[test]
    fn images_tools_calls_and_results_add_cost() {
        let base = request(vec![user("describe")]);
        let n = estimate_input_tokens(&base);

        let mut with_image = base.clone();
        with_image.messages[0].parts.push(Part::Image(Image {
            source: ImageSource::Url("https://example.com/a.png".into()),
            detail: None,
        }));
        assert_eq!(estimate_input_tokens(&with_image), n + IMAGE_TOKENS);

        let mut with_tool = base.clone();
        with_tool.tools.push(ToolDef {
            name: "get_weather".into(),
            description: Some("Weather for a city".into()),
            parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
            strict: None,
        });
        let one_tool = estimate_input_tokens(&with_tool);
        assert!(one_tool > n + TOOLS_PREAMBLE_TOKENS + TOOL_OVERHEAD);
        let mut two_tools = with_tool.clone();
        two_tools.tools.push(with_tool.tools[0].clone());
        assert!(estimate_input_tokens(&two_tools) > one_tool);

        let mut loop_ = base.clone();
        loop_.messages.push(Message {
            role: Role::Assistant,
            parts: vec![Part::ToolCall(ToolCall {
                id: "toolu_1".into(),
                name: "get_weather".into(),
                arguments: r#"{"city":"Paris"}"#.into(),
            })],
        });
        let with_call = estimate_input_tokens(&loop_);
        assert!(with_call > n + MESSAGE_OVERHEAD + TOOL_PART_OVERHEAD);
        loop_.messages.push(Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: "toolu_1".into(),
                name: None,
                content: vec![Part::Text("18 C and sunny".into())],
                is_error: false,
            })],
        });
        assert!(estimate_input_tokens(&loop_) > with_call + MESSAGE_OVERHEAD);
    }

    #[test]
    fn only_the_last_assistant_turn_thinking_counts() {
        let thinking = |text: &str| Message {
            role: Role::Assistant,
            parts: vec![
                Part::Thinking(Thinking {
                    text: text.into(),
                    ..Thinking::default()
                }),
                Part::Text("ok".into()),
            ],
        };
        let long = "step ".repeat(100);
        let early = request(vec![user("q"), thinking(&long), user("next")]);
        let plain = request(vec![user("q"), thinking(""), user("next")]);
        assert_eq!(estimate_input_tokens(&early), estimate_input_tokens(&plain));
        let last = request(vec![user("q"), thinking(&long)]);
        let last_plain = request(vec![user("q"), thinking("")]);
        assert!(estimate_input_tokens(&last) > estimate_input_tokens(&last_plain) + 100);
        // A tool-use loop in progress keeps the turn's thinking.
        let results = Message {
            role: Role::User,
            parts: vec![Part::ToolResult(ToolResult {
                call_id: "t".into(),
                name: None,
                content: vec![Part::Text("done".into())],
                is_error: false,
            })],
        };
        let looping = request(vec![user("q"), thinking(&long), results.clone()]);
        let looping_plain = request(vec![user("q"), thinking(""), results]);
        assert!(estimate_input_tokens(&looping) > estimate_input_tokens(&looping_plain) + 100);
    }

    #[test]
    fn response_body() {
        let v: Value = serde_json::from_slice(&count_tokens_response(42)).unwrap();
        assert_eq!(v, json!({"input_tokens": 42}));
    }

    #[test]
    fn decodes_a_claude_code_style_body() {
        let body = json!({
            "model": "claude-sonnet-4-5",
            "system": [{"type": "text", "text": "You are Claude Code."}],
            "messages": [
                {"role": "user", "content": "list the files"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "use ls", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                        {"type": "text", "text": "a.rs b.rs"},
                        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}
                    ]},
                    {"type": "image", "source": {"type": "file", "file_id": "file_1"}},
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
                ]}
            ],
            "tools": [
                {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}},
                {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
            ],
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "max_tokens": 1,
            "mcp_servers": [{"type": "url", "url": "https://example.com", "name": "x"}]
        });
        let r = decode_count_tokens(body.to_string().as_bytes()).unwrap();
        assert_eq!(r.model, "claude-sonnet-4-5");
        assert_eq!(r.messages.len(), 3);
        assert_eq!(r.tools.len(), 2);
        assert!(r.dropped.is_empty());
        let images = r.messages[2]
            .parts
            .iter()
            .flat_map(|p| match p {
                Part::ToolResult(t) => t.content.iter().collect::<Vec<_>>(),
                other => vec![other],
            })
            .filter(|p| matches!(p, Part::Image(_)))
            .count();
        assert_eq!(
            images, 2,
            "a PDF document and a Files-API image count as images"
        );
        assert!(r.messages[2]
            .parts
            .iter()
            .any(|p| matches!(p, Part::Text(t) if t == "notes")));
        let n = estimate_input_tokens(&r);
        assert!(n > 2 * IMAGE_TOKENS + TOOLS_PREAMBLE_TOKENS, "{n}");
    }

    #[test]
    fn refusals_are_400s_naming_the_problem() {
        for (body, needle) in [
            (&b"not json"[..], "not valid JSON"),
            (b"[1]", "must be a JSON object"),
            (br#"{"messages": []}"#, "model"),
            (br#"{"model": "m"}"#, "messages"),
            (
                br#"{"model": "m", "messages": [{"role": "tool", "content": "x"}]}"#,
                "role",
            ),
        ] {
            let e = decode_count_tokens(body).unwrap_err();
            assert_eq!(e.status, 400, "{e:?}");
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }
}
