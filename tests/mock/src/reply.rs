//! What the mock "model" answers, independent of wire protocol.
//!
//! Each protocol module extracts a [`Prompt`] from its request format; [`generate`] turns it into
//! an [`Output`] deterministically, so tests can assert end-to-end content after any protocol
//! translation by the router:
//!
//! - normally: `mock reply: <text of the last user message>` (text parts joined by a space);
//! - when the conversation ends with tool results: `mock reply: tool result: <r1>; <r2>`;
//! - when the last user message contains `[[tool:NAME]]` or `[[tool:NAME {json args}]]`
//!   (several markers = parallel calls): tool calls. Without explicit args, arguments are
//!   synthesized from the tool's declared JSON schema (`"mock"` for strings, `1` for numbers,
//!   `true` for booleans, first enum value, ...), or `{}` when the tool is not declared;
//! - [`crate::Action::Reply`] overrides everything with its text.
//!
//! The token usage each protocol reports comes from [`Tokens::of`]: the word-count estimate, or
//! the numbers of a `[[usage in=N cache_read=N cache_write=N out=N reasoning=N]]` marker in the
//! last user message (see the crate docs).

use serde_json::{Map, Value};

use crate::util::{new_id, words};

/// A tool the request declared (name and JSON schema of its parameters).
#[derive(Clone, Debug, Default)]
pub(crate) struct ToolDecl {
    pub(crate) name: String,
    pub(crate) parameters: Value,
}

/// The protocol-independent content of a request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Prompt {
    /// Text of the last user message.
    pub(crate) last_user_text: String,
    /// Tool results that END the conversation (the model must now answer them).
    pub(crate) tool_results: Vec<String>,
    /// Word count of all input text (prompt token estimate).
    pub(crate) input_words: usize,
    /// Declared tools.
    pub(crate) tools: Vec<ToolDecl>,
    /// The request forces a tool call (`tool_choice` naming a tool or requiring one): the
    /// tool to call, as a real model would, when the prompt has no explicit marker.
    pub(crate) forced_tool: Option<String>,
}

impl Prompt {
    /// Records a forced tool: `Some(name)` for a named tool, `Some("")` for "any tool" (the
    /// first declared one is used).
    pub(crate) fn force(&mut self, name: Option<&str>) {
        self.forced_tool = name.map(str::to_owned);
    }
}

impl Prompt {
    /// Counts `text` towards the prompt token estimate.
    pub(crate) fn count(&mut self, text: &str) {
        self.input_words += words(text);
    }

    /// Prompt token estimate (at least 1, like any real tokenizer on a non-empty request).
    pub(crate) fn input_tokens(&self) -> u64 {
        self.input_words.max(1) as u64
    }
}

/// One tool call the mock model makes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ToolCall {
    /// Provider-neutral unique suffix; protocols prefix it (`call_`, `toolu_`, `fc_`).
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) arguments: Value,
}

impl ToolCall {
    /// Arguments as the compact JSON string OpenAI puts on the wire.
    pub(crate) fn arguments_json(&self) -> String {
        self.arguments.to_string()
    }
}

/// The mock model's answer.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Output {
    Text(String),
    ToolCalls(Vec<ToolCall>),
}

impl Output {
    /// Completion token estimate.
    pub(crate) fn output_tokens(&self) -> u64 {
        let n = match self {
            Output::Text(text) => words(text),
            Output::ToolCalls(calls) => calls
                .iter()
                .map(|c| 1 + c.arguments_json().len().div_ceil(4))
                .sum(),
        };
        n.max(1) as u64
    }
}

/// The usage the mock reports, in four non-overlapping buckets; each protocol module writes it
/// in its provider's convention.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tokens {
    /// Uncached input.
    pub(crate) input: u64,
    pub(crate) cache_read: u64,
    pub(crate) cache_write: u64,
    /// All output, reasoning included.
    pub(crate) output: u64,
    /// Reasoning tokens (part of `output`).
    pub(crate) reasoning: u64,
}

const USAGE_MARKER: &str = "[[usage";

impl Tokens {
    /// The estimate (input and output words), overridden field by field by a
    /// `[[usage in=N cache_read=N cache_write=N out=N reasoning=N]]` marker in the last user
    /// message. Without `out`, output is the estimate plus `reasoning`; `out` smaller than
    /// `reasoning` is raised to it (reasoning is part of output). Unknown keys and values
    /// that are not numbers are ignored.
    pub(crate) fn of(prompt: &Prompt, output: &Output) -> Tokens {
        let mut tokens = Tokens {
            input: prompt.input_tokens(),
            ..Tokens::default()
        };
        let mut out = None;
        if let Some(start) = prompt.last_user_text.find(USAGE_MARKER) {
            let body = &prompt.last_user_text[start + USAGE_MARKER.len()..];
            let body = body.find("]]").map_or("", |end| &body[..end]);
            for field in body.split_whitespace() {
                let Some((key, value)) = field.split_once('=') else {
                    continue;
                };
                let Ok(n) = value.parse::<u64>() else {
                    continue;
                };
                match key {
                    "in" => tokens.input = n,
                    "cache_read" => tokens.cache_read = n,
                    "cache_write" => tokens.cache_write = n,
                    "out" => out = Some(n),
                    "reasoning" => tokens.reasoning = n,
                    _ => {}
                }
            }
        }
        tokens.output = out
            .unwrap_or_else(|| output.output_tokens() + tokens.reasoning)
            .max(tokens.reasoning);
        tokens
    }
}

/// Decides the answer (see the module docs).
pub(crate) fn generate(prompt: &Prompt, reply_override: Option<&str>) -> Output {
    if let Some(text) = reply_override {
        return Output::Text(text.to_owned());
    }
    if !prompt.tool_results.is_empty() {
        return Output::Text(format!(
            "mock reply: tool result: {}",
            prompt.tool_results.join("; ")
        ));
    }
    let calls = tool_markers(&prompt.last_user_text, &prompt.tools);
    if !calls.is_empty() {
        return Output::ToolCalls(calls);
    }
    if let Some(forced) = &prompt.forced_tool {
        let tool = if forced.is_empty() {
            prompt.tools.first()
        } else {
            prompt.tools.iter().find(|t| &t.name == forced)
        };
        if let Some(tool) = tool {
            return Output::ToolCalls(vec![ToolCall {
                id: new_id("", 24),
                name: tool.name.clone(),
                arguments: synthesize(&tool.parameters),
            }]);
        }
    }
    Output::Text(format!("mock reply: {}", prompt.last_user_text))
}

const MARKER: &str = "[[tool:";

/// Parses every `[[tool:NAME]]` / `[[tool:NAME {json}]]` marker in `text`.
fn tool_markers(text: &str, tools: &[ToolDecl]) -> Vec<ToolCall> {
    let mut calls = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(MARKER) {
        let body = &rest[start + MARKER.len()..];
        let Some(first_close) = body.find("]]") else {
            break;
        };
        let name_end = body
            .find(|c: char| c.is_whitespace() || c == ']')
            .unwrap_or(body.len());
        let name = &body[..name_end];
        let mut consumed = first_close + 2;
        let mut arguments = None;
        if name_end < first_close || body[name_end..].trim_start().starts_with('{') {
            // Explicit JSON arguments: try every `]]` until the text between parses.
            let mut search_from = name_end;
            while let Some(pos) = body[search_from..].find("]]") {
                let close = search_from + pos;
                if let Ok(v @ Value::Object(_)) = serde_json::from_str(body[name_end..close].trim())
                {
                    arguments = Some(v);
                    consumed = close + 2;
                    break;
                }
                search_from = close + 1;
            }
        }
        if !name.is_empty() {
            let arguments = arguments.unwrap_or_else(|| {
                tools
                    .iter()
                    .find(|t| t.name == name)
                    .map(|t| synthesize(&t.parameters))
                    .unwrap_or_else(|| Value::Object(Map::new()))
            });
            calls.push(ToolCall {
                id: new_id("", 24),
                name: name.to_owned(),
                arguments,
            });
        }
        rest = &body[consumed..];
    }
    calls
}

/// A deterministic value satisfying (the common subset of) a JSON schema.
fn synthesize(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    if let Some(c) = schema.get("const") {
        return c.clone();
    }
    // Gemini's schema dialect spells types in upper case (`STRING`, `OBJECT`).
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .find(|t| !t.eq_ignore_ascii_case("null"))
            .unwrap_or("null")
            .to_ascii_lowercase(),
        _ if schema.get("properties").is_some() => "object".to_owned(),
        _ => {
            // anyOf / oneOf: use the first alternative.
            if let Some(alt) = ["anyOf", "oneOf"]
                .iter()
                .find_map(|k| schema.get(*k).and_then(Value::as_array)?.first())
            {
                return synthesize(alt);
            }
            "object".to_owned()
        }
    };
    match ty.as_str() {
        "string" => Value::from("mock"),
        "integer" | "number" => Value::from(1),
        "boolean" => Value::Bool(true),
        "array" => Value::Array(Vec::new()),
        "null" => Value::Null,
        _ => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                let required: Option<Vec<&str>> = schema
                    .get("required")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().filter_map(Value::as_str).collect());
                for (key, sub) in props {
                    if required.as_ref().is_none_or(|r| r.contains(&key.as_str())) {
                        out.insert(key.clone(), synthesize(sub));
                    }
                }
            }
            Value::Object(out)
        }
    }
}

/// Splits `text` into at least 3 stream pieces when it has at least 3 characters: one piece per
/// word (each with its leading whitespace), or by characters for shorter texts. Concatenating
/// the pieces gives back `text` exactly.
pub(crate) fn pieces(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    for c in text.chars() {
        let ws = c.is_whitespace();
        if ws && in_word {
            out.push(std::mem::take(&mut current));
        }
        in_word = !ws;
        current.push(c);
    }
    if !current.is_empty() {
        match out.last_mut() {
            Some(last) if current.trim().is_empty() => last.push_str(&current),
            _ => out.push(current),
        }
    }
    if out.len() < 3 {
        out = split_chars(text, 3);
    }
    out
}

/// Splits `text` into `n` nearly equal character runs (fewer when it is shorter than `n`).
pub(crate) fn split_chars(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let n = n.clamp(1, chars.len());
    let size = chars.len().div_ceil(n);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// Joins the text of content parts the way [`Prompt::last_user_text`] expects.
pub(crate) fn join_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    texts.into_iter().collect::<Vec<_>>().join(" ")
}

/// A tool result given as a JSON object (Gemini's `functionResponse.response`): the single
/// string field if that is all it has (`{"result": "sunny"}` -> `sunny`), else compact JSON.
pub(crate) fn tool_result_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) if map.len() == 1 => match map.values().next() {
            Some(Value::String(s)) => s.clone(),
            _ => value.to_string(),
        },
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn prompt(text: &str) -> Prompt {
        Prompt {
            last_user_text: text.into(),
            ..Prompt::default()
        }
    }

    #[test]
    fn text_reply() {
        assert_eq!(
            generate(&prompt("hi there"), None),
            Output::Text("mock reply: hi there".into())
        );
        assert_eq!(generate(&prompt("hi"), Some("x")), Output::Text("x".into()));
    }

    #[test]
    fn tool_markers_parse() {
        let mut p = prompt("call [[tool:get_weather]] and [[tool:lookup {\"q\": [[1]]}]] now");
        p.tools.push(ToolDecl {
            name: "get_weather".into(),
            parameters: json!({"type":"object","properties":{
                "location":{"type":"string"},
                "unit":{"type":"string","enum":["c","f"]},
                "days":{"type":["integer","null"]}},
                "required":["location","unit"]}),
        });
        let Output::ToolCalls(calls) = generate(&p, None) else {
            panic!("expected tool calls");
        };
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, json!({"location":"mock","unit":"c"}));
        assert_eq!(calls[1].name, "lookup");
        assert_eq!(calls[1].arguments, json!({"q":[[1]]}));
        assert_ne!(calls[0].id, calls[1].id);
    }

    #[test]
    fn undeclared_tool_gets_empty_args() {
        let Output::ToolCalls(calls) = generate(&prompt("[[tool:x]]"), None) else {
            panic!("expected tool calls");
        };
        assert_eq!(calls[0].arguments, json!({}));
    }

    #[test]
    fn usage_marker_fields() {
        let out = Output::Text("a b c".into());
        let p = prompt("x [[usage reasoning=5 bogus=1 cache_write=x in=9]]");
        assert_eq!(
            Tokens::of(&p, &out),
            Tokens {
                input: 9,
                cache_read: 0,
                cache_write: 0,
                // The reply's 3 words plus the reasoning.
                output: 8,
                reasoning: 5,
            }
        );
        let p = prompt("[[usage out=2 reasoning=5]]");
        assert_eq!(Tokens::of(&p, &out).output, 5);
        let p = prompt("no marker here");
        assert_eq!(
            Tokens::of(&p, &out),
            Tokens {
                input: p.input_tokens(),
                output: 3,
                ..Tokens::default()
            }
        );
    }

    #[test]
    fn tool_results_win() {
        let mut p = prompt("[[tool:x]]");
        p.tool_results = vec!["a".into(), "b".into()];
        assert_eq!(
            generate(&p, None),
            Output::Text("mock reply: tool result: a; b".into())
        );
    }

    #[test]
    fn splits() {
        assert_eq!(pieces("mock reply: hi"), vec!["mock", " reply:", " hi"]);
        assert_eq!(pieces("abcdef"), vec!["ab", "cd", "ef"]);
        assert_eq!(pieces("ab"), vec!["a", "b"]);
        assert_eq!(pieces(""), vec![""]);
        assert_eq!(pieces("  a b  c "), vec!["  a", " b", "  c "]);
        assert_eq!(pieces("  a b  c ").concat(), "  a b  c ");
        assert_eq!(split_chars("{}", 3), vec!["{", "}"]);
    }

    #[test]
    fn tool_result_texts() {
        assert_eq!(tool_result_text(&json!({"result":"sunny"})), "sunny");
        assert_eq!(tool_result_text(&json!({"a":1})), "{\"a\":1}");
    }

    #[test]
    fn forced_tool_choice_calls_the_tool() {
        let mut p = prompt("plain question");
        p.tools.push(ToolDecl {
            name: "place".into(),
            parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}),
        });
        p.force(Some("place"));
        let Output::ToolCalls(calls) = generate(&p, None) else {
            panic!("expected a forced tool call");
        };
        assert_eq!(calls[0].name, "place");
        assert_eq!(calls[0].arguments["city"], "mock");
        p.force(Some(""));
        assert!(matches!(generate(&p, None), Output::ToolCalls(_)));
    }
}
