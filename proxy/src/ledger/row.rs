//! One ledger row: what one request cost and how it went.

use serde::Serialize;

/// The inbound protocols a row may name (`LedgerRow::inbound`).
/// Beyond the four chat protocols, the OpenAI endpoints (`crate::endpoints::Endpoint::label`).
pub const INBOUND_PROTOCOLS: [&str; 12] = [
    "openai_chat",
    "openai_responses",
    "anthropic",
    "gemini",
    "embeddings",
    "completions",
    "rerank",
    "moderations",
    "images",
    "audio_speech",
    "audio_transcriptions",
    "audio_translations",
];

/// The ledger's name of a client protocol (one of [`INBOUND_PROTOCOLS`]).
pub fn inbound_name(p: bitrouter_config::Protocol) -> &'static str {
    use bitrouter_config::Protocol;
    match p {
        Protocol::ChatCompletions => INBOUND_PROTOCOLS[0],
        Protocol::Responses => INBOUND_PROTOCOLS[1],
        Protocol::Messages => INBOUND_PROTOCOLS[2],
        Protocol::GenerateContent => INBOUND_PROTOCOLS[3],
    }
}

/// Where a row's token counts come from (`LedgerRow::usage_origin`).
pub const USAGE_ORIGINS: [&str; 3] = ["provider_reported", "estimated", "unknown"];

/// One request, as the ledger keeps it. Filled by the request path when the request ends (its
/// `logging` phase) and handed to [`crate::ledger::Ledger::record`].
///
/// Token buckets do not overlap: `input_tokens` is the uncached input only, and the four of
/// input, cache read, cache write and output add up to what the provider billed.
/// `reasoning_tokens` is a part of `output_tokens`, kept for information.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LedgerRow {
    /// Unix time in milliseconds when the request arrived.
    pub time_ms: i64,
    pub request_id: String,
    /// The caller's virtual key id (`vk_…`; none for the master key or with `skip_auth`).
    pub key_id: Option<String>,
    /// The user the caller's key belongs to.
    pub user_id: Option<String>,
    /// The client's protocol: one of [`INBOUND_PROTOCOLS`].
    pub inbound: &'static str,
    /// The model the client asked for.
    pub model: String,
    /// The provider that answered (the last one tried), if any was.
    pub provider: Option<String>,
    /// The model name sent upstream.
    pub upstream_model: Option<String>,
    /// The provider account (label) that answered.
    pub account: Option<String>,
    /// Upstream attempts made (failovers and retries included).
    pub attempts: u32,
    /// HTTP status sent to the client.
    pub status: u16,
    pub stream: bool,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// One of [`USAGE_ORIGINS`].
    pub usage_origin: &'static str,
    /// Cost in micro-USD; `None` when a rate or the usage is unknown (never a silent 0).
    pub cost_micro_usd: Option<f64>,
    /// Why the cost is unknown (`None` when it is known).
    pub cost_unknown_reason: Option<String>,
    /// Milliseconds until the first byte went to the client.
    pub ttfb_ms: Option<u64>,
    pub duration_ms: u64,
    /// What went wrong, when something did (a short machine-readable kind).
    pub error_kind: Option<String>,
}

/// The `&'static str` among `known` equal to `s` (read back from the database), else `"unknown"`.
pub(crate) fn intern(s: &str, known: &[&'static str]) -> &'static str {
    known
        .iter()
        .find(|k| **k == s)
        .copied()
        .unwrap_or("unknown")
}

/// A token count or duration as the databases store it (signed 64-bit); saturates.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored count back as unsigned; a negative value (never written) reads as 0.
pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The row's columns in table order (after `id`): the INSERT and SELECT lists of both drivers.
pub(crate) const COLUMNS: &str = "time_ms, request_id, key_id, user_id, inbound, model, provider, \
upstream_model, account, attempts, status, stream, input_tokens, cache_read_tokens, \
cache_write_tokens, output_tokens, reasoning_tokens, usage_origin, cost_micro_usd, \
cost_unknown_reason, ttfb_ms, duration_ms, error_kind";

/// How many columns [`COLUMNS`] names.
pub(crate) const COLUMN_COUNT: usize = 23;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_counted() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }

    #[test]
    fn interning() {
        assert_eq!(intern("gemini", &INBOUND_PROTOCOLS), "gemini");
        assert_eq!(intern("carrier-pigeon", &INBOUND_PROTOCOLS), "unknown");
        assert_eq!(to_i64(u64::MAX), i64::MAX);
        assert_eq!(to_u64(-1), 0);
    }
}
