//! Inputs shared by the micro-benchmarks: fixture loading, a realistic ~2 KB conversation in
//! every protocol, a ~150 KB agent history, a small routing config and upstream SSE streams
//! stretched to ~50 events.
//!
//! Every input is built once, before measuring; only the transform under test is timed.
#![allow(dead_code)]

use bitrouter_config::{load_str, MapEnv, ModelCapabilities, Protocol, RoutingTable};
use bitrouter_filters::canonical::{EncodeOptions, ResponseContext};
use bitrouter_filters::protocol;
use bitrouter_filters::stream::StreamTranslator;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `max_tokens` for targets that require one (what the proxy sends for Claude models).
pub const OPTIONS: EncodeOptions = EncodeOptions {
    capabilities: ModelCapabilities {
        default_max_tokens: 8192,
        ..ModelCapabilities::DEFAULT
    },
};

/// Short names used in benchmark ids.
pub fn short(p: Protocol) -> &'static str {
    match p {
        Protocol::ChatCompletions => "chat",
        Protocol::Responses => "responses",
        Protocol::Messages => "messages",
        Protocol::GenerateContent => "gemini",
    }
}

fn fixture_dir(p: Protocol) -> PathBuf {
    let name = match p {
        Protocol::ChatCompletions => "openai_chat",
        Protocol::Responses => "openai_responses",
        Protocol::Messages => "anthropic",
        Protocol::GenerateContent => "gemini",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture file of `p` (panics if missing: benches are not worth running without it).
pub fn fixture(p: Protocol, name: &str) -> Vec<u8> {
    let path = fixture_dir(p).join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A small but realistic `bitrouter.yaml`: three providers, one per vendor, and two virtual
/// models (a failover pair and a weighted pair).
pub const CONFIG: &str = r#"
server:
  listen: 127.0.0.1:4356
providers:
  openai:
    api_base: https://api.openai.com/v1
    api_key: ${OPENAI_API_KEY}
    models:
      - id: gpt-4o
      - id: gpt-4.1
      - id: gpt-4.1-mini
      - id: o4-mini
  anthropic:
    api_base: https://api.anthropic.com
    api_key: ${ANTHROPIC_API_KEY}
    api_protocol:
      - "*": messages
    models:
      - id: claude-sonnet-4-6
      - id: claude-opus-4-5
      - id: claude-haiku-4-5
  google:
    api_base: https://generativelanguage.googleapis.com
    api_key: ${GEMINI_API_KEY}
    models:
      - id: gemini-2.5-pro
      - id: gemini-2.5-flash
models:
  smart:
    strategy: priority
    endpoints:
      - provider: anthropic
        service_id: claude-sonnet-4-6
      - provider: openai
        service_id: gpt-4.1
  cheap:
    strategy: weighted
    endpoints:
      - provider: openai
        service_id: gpt-4.1-mini
        weight: 3
      - provider: google
        service_id: gemini-2.5-flash
        weight: 1
"#;

/// The routing table the proxy would build from [`CONFIG`].
pub fn routing_table() -> RoutingTable {
    let env = MapEnv::new([
        ("OPENAI_API_KEY", "sk-bench"),
        ("ANTHROPIC_API_KEY", "sk-ant-bench"),
        ("GEMINI_API_KEY", "gm-bench"),
    ]);
    match load_str(CONFIG, "bench.yaml", &env) {
        Ok(config) => RoutingTable::new(&config),
        Err(e) => panic!("the bench config does not load:\n{e}"),
    }
}

const SYSTEM_PROMPT: &str = "You are a senior support engineer for Acme Cloud. Answer \
questions about the Acme Cloud platform accurately and concisely. Use the search_docs tool \
whenever a question concerns product behaviour, limits or pricing, and cite the document ids \
you used. If the documentation does not answer the question, say so instead of guessing. \
Never reveal internal ticket numbers or customer data from other accounts. Format code and \
shell commands in fenced blocks, and prefer step-by-step instructions for configuration tasks.";

/// A ~2 KB Chat Completions request: a system prompt, five turns (a tool call and its result
/// among them), one tool definition and the usual sampling parameters; model `smart`.
pub fn chat_request() -> Vec<u8> {
    let body = json!({
        "model": "smart",
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": "Our nightly export job started failing with HTTP 429 \
                after we moved it to the eu-west region. What are the rate limits there and how \
                should we change the job?"},
            {"role": "assistant", "content": "Let me check the documented limits for eu-west.",
             "tool_calls": [{"id": "call_7f3a9c21", "type": "function", "function": {
                 "name": "search_docs",
                 "arguments": "{\"query\":\"export API rate limits eu-west\",\"limit\":3}"}}]},
            {"role": "tool", "tool_call_id": "call_7f3a9c21", "content": "[doc-142] Export API: \
                60 requests/minute per project in us-east, 30 requests/minute per project in \
                eu-west and ap-south. Bursts up to 2x are allowed for 10 seconds. Responses carry \
                Retry-After on 429.\n[doc-187] Bulk exports: use /v2/exports with a cursor to \
                fetch up to 10,000 rows per request."},
            {"role": "assistant", "content": "eu-west allows 30 requests per minute per project \
                (half of us-east), so a job tuned for us-east will hit 429s there [doc-142]. \
                Switch to the bulk endpoint /v2/exports with a cursor [doc-187], and honour the \
                Retry-After header when you do get a 429."},
            {"role": "user", "content": "Can you show me what the retry loop should look like \
                in Python, using the requests library?"}
        ],
        "tools": [{"type": "function", "function": {
            "name": "search_docs",
            "description": "Full-text search over the Acme Cloud product documentation. \
                Returns matching passages prefixed by their document id.",
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 10,
                              "description": "Maximum passages to return"},
                    "product": {"type": "string", "enum": ["compute", "storage", "export", "billing"]}
                },
                "required": ["query"],
                "additionalProperties": false
            }
        }}],
        "tool_choice": "auto",
        "temperature": 0.2,
        "top_p": 0.95,
        "max_tokens": 1024,
        "user": "user-4821",
        "stream": false
    });
    to_vec(&body)
}

/// The same conversation as [`chat_request`] encoded in `p` (by the codecs themselves, so every
/// inbound protocol carries identical content and the timings are comparable).
pub fn request_in(p: Protocol, chat_body: &[u8]) -> Vec<u8> {
    if p == Protocol::ChatCompletions {
        return chat_body.to_vec();
    }
    let request = match protocol::decode_request(Protocol::ChatCompletions, chat_body) {
        Ok(r) => r,
        Err(e) => panic!("the chat request does not decode: {e:?}"),
    };
    match protocol::encode_request(p, &request, &OPTIONS) {
        Ok(encoded) => encoded.body,
        Err(e) => panic!("the chat request does not encode as {p:?}: {e:?}"),
    }
}

/// A ~150 KB Chat Completions request: a long agent session (system prompt, then rounds of user
/// text, an assistant tool call and a ~1.4 KB tool result) with one tool definition.
pub fn large_chat_request() -> Vec<u8> {
    let base: Value = match serde_json::from_slice(&chat_request()) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let mut messages = vec![json!({"role": "system", "content": SYSTEM_PROMPT})];
    let log_line = "2025-06-14T02:13:07Z export-worker[4411]: GET /v1/exports?page=17 -> 429 \
        Too Many Requests (retry-after: 2s, region: eu-west, project: p-88213)\n";
    let mut round = 0;
    loop {
        let id = format!("call_{round:08x}");
        messages.push(json!({"role": "user", "content": format!(
            "Round {round}: here is the next batch of worker logs; summarise the failures and \
             tell me whether the retry policy is being honoured.")}));
        messages.push(json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": id, "type": "function", "function": {"name": "search_docs",
            "arguments": format!("{{\"query\":\"export worker retry round {round}\",\"limit\":5}}")}}]}));
        messages.push(json!({"role": "tool", "tool_call_id": id, "content": log_line.repeat(10)}));
        messages.push(json!({"role": "assistant", "content": format!(
            "In round {round} every request was throttled with a 2 s Retry-After and the worker \
             waited the full interval before retrying, so the policy is honoured; the 429s come \
             from the eu-west per-project limit, not from the retry logic.")}));
        round += 1;
        let body = json!({
            "model": "smart",
            "messages": messages,
            "tools": base["tools"],
            "tool_choice": "auto",
            "max_tokens": 1024,
            "stream": false
        });
        let bytes = to_vec(&body);
        if bytes.len() >= 150 * 1024 {
            return bytes;
        }
    }
}

fn to_vec(v: &Value) -> Vec<u8> {
    match serde_json::to_vec(v) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// A response context for a non-streaming client asking for `smart`.
pub fn response_ctx(stream: bool) -> ResponseContext {
    ResponseContext {
        client_model: "smart".into(),
        stream,
        include_usage: true,
        ..ResponseContext::default()
    }
}

/// The upstream text stream fixture of `p` with its text-delta event repeated until the stream
/// holds `events` SSE events, split into one chunk per event (how upstreams usually flush).
pub fn stretched_stream(p: Protocol, events: usize) -> Vec<Vec<u8>> {
    let raw = fixture(p, "stream_text.sse");
    let text = match String::from_utf8(raw) {
        Ok(t) => t.replace("\r\n", "\n"),
        Err(e) => panic!("{e}"),
    };
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .map(str::trim)
        .filter(|b| !b.is_empty())
        .map(|b| format!("{b}\n\n"))
        .collect();
    // The marker of a plain text delta in each protocol's stream.
    let marker = match p {
        Protocol::ChatCompletions => "\"delta\":{\"content\":",
        Protocol::Responses => "event: response.output_text.delta",
        Protocol::Messages => "\"type\":\"text_delta\"",
        Protocol::GenerateContent => "\" of France is\"",
    };
    let at = match blocks.iter().position(|b| b.contains(marker)) {
        Some(i) => i,
        None => panic!("no text delta in the {p:?} stream fixture"),
    };
    while blocks.len() < events {
        let copy = blocks[at].clone();
        blocks.insert(at + 1, copy);
    }
    blocks.into_iter().map(String::into_bytes).collect()
}

/// Runs a whole stream through a translator, chunk by chunk, as the proxy does (the output
/// buffer is handed off after every chunk).
pub fn translate_stream(
    upstream: Protocol,
    client: Protocol,
    ctx: &ResponseContext,
    chunks: &[Vec<u8>],
) -> usize {
    let mut translator = StreamTranslator::new(upstream, client, ctx);
    let mut out = Vec::with_capacity(4096);
    let mut total = 0;
    for chunk in chunks {
        translator.feed(chunk, &mut out);
        total += std::mem::take(&mut out).len();
    }
    translator.finish(&mut out);
    total + out.len()
}
