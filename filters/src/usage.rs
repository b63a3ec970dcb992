//! Usage accounting: the token counts every response reports, normalised into buckets that
//! prices apply to, and the cheap ways to read them out of responses the proxy forwards.
//!
//! Where the proxy finds a response's usage:
//! - **Translated whole response**: the decoded [`crate::canonical::ChatResponse::usage`]
//!   (filled by the upstream protocol's `decode_response`).
//! - **Translated stream**: [`crate::stream::StreamTranslator::usage`] (every canonical usage
//!   report the decoder produced, merged, before any hook).
//! - **Same-protocol pass-through** (bytes forwarded untouched): a [`UsageTap`] fed the same
//!   bytes, whole body or stream chunks.
//! - **OpenAI chat stream whose client did not ask for usage**: [`ask_stream_usage`] adds
//!   `stream_options.include_usage` to the request, and a [`UsageChunkStrip`] records the usage
//!   chunk and removes it from what the client gets.
//!
//! The canonical [`Usage`] follows OpenAI's convention (`input` includes cache reads and
//! writes; `output` includes reasoning). [`TokenBuckets`] turns it into the four
//! non-overlapping buckets a price applies to.

mod strip;
mod tap;
#[cfg(test)]
mod tests;

pub use strip::UsageChunkStrip;
pub use tap::{has_usage_object, UsageTap};

use crate::canonical::Usage;
use serde::Deserialize;
use serde_json::value::RawValue;

/// Token counts in four non-overlapping buckets (their sum is every token billed), plus the
/// reasoning tokens as a subtype of output.
///
/// Why not the canonical [`Usage`]: its `input` overlaps its cache fields (OpenAI's
/// convention), which suits re-encoding for a client but not pricing, where each token must be
/// charged once at its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenBuckets {
    /// Input tokens neither read from nor written to a prompt cache.
    pub input: u64,
    /// Input tokens read from a prompt cache.
    pub cache_read: u64,
    /// Input tokens written to a prompt cache (Anthropic's `cache_creation_input_tokens`).
    pub cache_write: u64,
    /// Every output token, reasoning included.
    pub output: u64,
    /// Reasoning (thinking) tokens: already counted in `output`, never more than it.
    pub reasoning: u64,
}

impl TokenBuckets {
    /// Splits canonical usage into buckets: uncached input is the reported input less the
    /// cache reads and writes (saturating: a provider reporting more cached than total input
    /// gets 0 uncached, never a wrap-around); reasoning is capped at output.
    pub fn from_usage(u: &Usage) -> TokenBuckets {
        let cache_read = u.cached_input.unwrap_or(0);
        let cache_write = u.cache_creation_input.unwrap_or(0);
        TokenBuckets {
            input: u
                .input
                .saturating_sub(cache_read)
                .saturating_sub(cache_write),
            cache_read,
            cache_write,
            output: u.output,
            reasoning: u.reasoning.unwrap_or(0).min(u.output),
        }
    }

    /// Every input token: uncached, cache reads and cache writes.
    pub fn total_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    /// Every token: input of all kinds plus output.
    pub fn total(&self) -> u64 {
        self.total_input().saturating_add(self.output)
    }
}

/// Where a request's token counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageOrigin {
    /// The provider's own report (whole response, or the stream's usage events).
    ProviderReported,
    /// Counted or estimated by the router (e.g. a stream cut before any usage was reported).
    Estimated,
    /// Nothing known (no report, no estimate): never recorded as zero.
    Unknown,
}

impl UsageOrigin {
    /// The name stored in the ledger and shown by `bitrouter spend`.
    pub fn as_str(&self) -> &'static str {
        match self {
            UsageOrigin::ProviderReported => "provider_reported",
            UsageOrigin::Estimated => "estimated",
            UsageOrigin::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for UsageOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Deserialize)]
struct ChatStreamFields<'a> {
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    /// `Some("null")` for an explicit null (a plain `Option` would read it as absent).
    #[serde(borrow, default, deserialize_with = "present")]
    stream_options: Option<&'a RawValue>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(d).map(Some)
}

/// Makes an OpenAI Chat Completions request body ask for stream usage when the client did not:
/// returns the new body when it added `"stream_options":{"include_usage":true}` (the proxy must
/// then remove the usage chunk with a [`UsageChunkStrip`]), `None` when the body is left as it
/// is — not a streaming request, usage already asked for, or not a JSON object.
///
/// Why byte-level: the same-protocol request is forwarded as the client's bytes (only `model`
/// spliced), so this edits the bytes too instead of re-serialising. Without `stream_options`
/// the member is inserted right after the opening `{`; with a `stream_options` object lacking
/// `include_usage: true`, that object alone is rewritten with `include_usage` set (its other
/// members kept). Apply it after [`crate::body::replace_model`], whose span it would shift.
pub fn ask_stream_usage(body: &[u8]) -> Option<Vec<u8>> {
    ask_usage(body, false)
}

/// [`ask_stream_usage`] for a body the caller has already read as a streaming request
/// (`"stream": true`): without a `stream_options` member anywhere in it, the member is inserted
/// without parsing the body (the parse cost ~4,000 instructions a request).
pub fn ask_stream_usage_of_stream(body: &[u8]) -> Option<Vec<u8>> {
    ask_usage(body, true)
}

fn ask_usage(body: &[u8], streaming: bool) -> Option<Vec<u8>> {
    const MEMBER: &str = r#""stream_options":{"include_usage":true}"#;
    let insert = |open: usize| {
        let mut out = Vec::with_capacity(body.len() + MEMBER.len() + 1);
        out.extend_from_slice(&body[..=open]);
        out.extend_from_slice(MEMBER.as_bytes());
        // `stream: true` is present, so the object has another member after ours.
        out.push(b',');
        out.extend_from_slice(&body[open + 1..]);
        out
    };
    if streaming && memchr::memmem::find(body, b"\"stream_options\"").is_none() {
        let open = body.iter().position(|b| !b.is_ascii_whitespace())?;
        return (body[open] == b'{').then(|| insert(open));
    }
    let text = std::str::from_utf8(body).ok()?;
    let open = text.find(|c: char| !c.is_ascii_whitespace())?;
    if text.as_bytes()[open] != b'{' {
        return None;
    }
    let fields: ChatStreamFields<'_> = serde_json::from_str(text).ok()?;
    if fields.stream.map(RawValue::get) != Some("true") {
        return None;
    }
    let Some(raw) = fields.stream_options else {
        return Some(insert(open));
    };
    // `stream_options: null` is rewritten in place rather than shadowed by a member inserted
    // before it (with duplicate keys, the last one wins).
    let options = match raw.get() {
        "null" => serde_json::Map::new(),
        text => serde_json::from_str(text).ok()?,
    };
    if options.get("include_usage") == Some(&serde_json::Value::Bool(true)) {
        return None;
    }
    rewrite_member(body, raw, options)
}

/// `body` with the value `raw` (borrowed from it) replaced by `options` plus
/// `include_usage: true`.
fn rewrite_member(
    body: &[u8],
    raw: &RawValue,
    mut options: serde_json::Map<String, serde_json::Value>,
) -> Option<Vec<u8>> {
    options.insert("include_usage".into(), serde_json::Value::Bool(true));
    let encoded = serde_json::to_vec(&options).ok()?;
    let start = (raw.get().as_ptr() as usize).checked_sub(body.as_ptr() as usize)?;
    let end = start + raw.get().len();
    let mut out = Vec::with_capacity(body.len() + encoded.len());
    out.extend_from_slice(body.get(..start)?);
    out.extend_from_slice(&encoded);
    out.extend_from_slice(body.get(end..)?);
    Some(out)
}
