//! OpenAI Responses codec (`POST /v1/responses`): requests, responses, typed SSE streams.
//! Error bodies are shared with Chat Completions ([`super::openai_error`]).
//!
//! Translation is **stateless**: a request translated to another protocol carries the whole
//! conversation in `input`, so `previous_response_id`, `conversation`, `store: true`,
//! `background: true` and stored `prompt` templates are rejected with a 400 that says so, and
//! requests encoded for a Responses upstream always send `store: false`.
//!
//! | Responses field | canonical |
//! |---|---|
//! | `instructions`, `system`/`developer` messages | `system` (instructions first, messages hoisted in order) |
//! | `input` string | one user text message |
//! | `message` items (`input_text`, `input_image` URL/data URL, `output_text`, `refusal`) | user/assistant messages |
//! | `function_call` {call_id, name, arguments} | `Part::ToolCall` (id = call_id) |
//! | `function_call_output` {call_id, output} | `Part::ToolResult` (consecutive ones share a user message) |
//! | `reasoning` {summary, encrypted_content} | `Part::Thinking` (text = summaries joined by a blank line, `redacted` = encrypted_content) |
//! | `tools[]` function tools | `tools` |
//! | `tools[]` `namespace` {name, description, tools} | each member in `tools` under its flat name (`ns__name`, or `ns` + `name` when `ns` ends in `_`; over 64 chars: a prefix + hash), the namespace's description before the member's; the table in `tool_namespaces` |
//! | `function_call` {namespace, name} (history), `tool_choice` {function, namespace, name} | the flat name |
//! | output `function_call` to a flat name (or to a member's bare short name, when unambiguous) | `{namespace, name}` again (from `ResponseContext::tool_namespaces`) |
//! | `tool_choice`, `parallel_tool_calls` | same |
//! | `text.format` | `response_format` |
//! | `reasoning` {effort, summary} | `reasoning` {effort, include_thoughts = summary set} |
//! | `max_output_tokens`, `temperature`, `top_p`, `top_logprobs` | `params` |
//! | `include: ["message.output_text.logprobs"]` | `params.logprobs` |
//! | `safety_identifier` / `user`, `metadata`, `stream` | same |
//!
//! Rejected (400): `previous_response_id`, `conversation`, `store: true`, `background: true`,
//! `prompt`, `item_reference` and built-in-tool items, `input_file`, images by `file_id`,
//! custom tools (also inside a namespace), a namespaced tool whose flat name is taken,
//! `allowed_tools` and hosted `tool_choice` (with the hosted tool it forces, or `required`
//! with only hosted tools).
//! Dropped (reported): hosted tools (`web_search*`, `file_search`, `code_interpreter`, ...)
//! as `tools[<i>].<type>`: the model cannot use them, the rest of the request still works;
//! `text.verbosity`, `truncation: auto`, `service_tier`,
//! `prompt_cache_key`, `prompt_cache_retention`, `max_tool_calls`, `stream_options`, other
//! `include` values, unknown fields.
//!
//! Thinking signatures of other protocols (Anthropic `signature`) travel to Responses clients
//! inside `encrypted_content`, marked with [`SIGNATURE_PREFIX`], so a client that replays its
//! reasoning items (store: false + include reasoning.encrypted_content) gives them back intact.

mod request;
mod response;
mod stream;
pub mod wire;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

/// For the usage tap ([`crate::usage`]), which reads usage without decoding whole events.
pub(crate) use response::usage_from_wire;

/// Marks an `encrypted_content` that carries another protocol's thinking signature (never a
/// real OpenAI value: those are base64 and contain no `:`).
pub const SIGNATURE_PREFIX: &str = "bitrouter.signature:";

/// `reasoning.encrypted_content` of a reasoning item -> (signature, redacted) of a canonical
/// thinking part.
pub(crate) fn split_encrypted(encrypted: Option<&str>) -> (Option<String>, Option<String>) {
    match encrypted {
        None | Some("") => (None, None),
        Some(e) => match e.strip_prefix(SIGNATURE_PREFIX) {
            Some(sig) => (Some(sig.to_string()), None),
            None => (None, Some(e.to_string())),
        },
    }
}

/// The `encrypted_content` a Responses client gets for a canonical thinking part.
pub(crate) fn join_encrypted(signature: Option<&str>, redacted: Option<&str>) -> Option<String> {
    match (redacted, signature) {
        (Some(r), _) => Some(r.to_string()),
        (None, Some(s)) => Some(format!("{SIGNATURE_PREFIX}{s}")),
        (None, None) => None,
    }
}
