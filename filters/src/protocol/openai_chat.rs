//! OpenAI Chat Completions codec (`POST /v1/chat/completions`), also spoken by most
//! OpenAI-compatible servers (Ollama, vLLM, LM Studio, llama.cpp, OpenRouter, Groq, DeepSeek...),
//! whose common extensions it decodes too: `reasoning_content` / `reasoning` text (as
//! thinking), `top_k`, OpenRouter's `reasoning` options, Groq's `x_groq.usage`, DeepSeek's
//! `prompt_cache_hit_tokens`, Mistral's thinking chunks, tool-call deltas without `index`.
//!
//! - [`decode_request`] / [`encode_request`]: `messages[]` <-> canonical conversation (system
//!   and developer messages hoisted; `tool` messages merged into one user message of tool
//!   results, and split back out).
//! - [`decode_response`] / [`encode_response`]: `chat.completion` objects.
//! - [`StreamDecoder`] / [`StreamEncoder`]: `chat.completion.chunk` SSE streams.
//! - Errors are OpenAI's `{"error": {...}}`, shared with the Responses codec
//!   ([`decode_error`] / [`encode_error`] re-exported from `openai_error`).

mod request;
mod response;
mod stream;
pub mod wire;

pub use super::openai_error::{decode_error, encode_error};
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

/// For the usage tap ([`crate::usage`]), which reads usage without decoding whole events.
pub(crate) use response::decode_usage;
