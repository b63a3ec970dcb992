//! The worst case a request can cost, before it goes upstream: what a budget reserves.
//!
//! Input: no tokenizer produces more tokens than the text has bytes, and a provider adds a few
//! tokens per message (role markers, separators: at most 8 in any published scheme); every
//! message is a JSON object, so `bytes + 8 × (objects in the body) + 16` bounds the prompt. The
//! body's JSON syntax alone already outweighs the per-message tokens, so the bound is loose but
//! true. Media referenced by URL (an image link the provider fetches and bills per tile) is the
//! exception, named in docs/keys.md.
//!
//! Output: the request's own cap (`max_tokens`, `max_completion_tokens`, `max_output_tokens`,
//! `generationConfig.maxOutputTokens`) else the model's (`max_output_tokens` in the config, else
//! its family's default), times the number of choices asked for (`n`, `candidateCount`).

use serde::Deserialize;

/// The output-side fields of a request in any of the four protocols; everything else is
/// skipped without being built.
#[derive(Deserialize, Default)]
struct Peek {
    max_tokens: Option<u64>,
    max_completion_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    n: Option<u64>,
    #[serde(rename = "generationConfig", alias = "generation_config")]
    generation_config: Option<GenerationPeek>,
}

#[derive(Deserialize, Default)]
struct GenerationPeek {
    #[serde(rename = "maxOutputTokens", alias = "max_output_tokens")]
    max_output_tokens: Option<u64>,
    #[serde(rename = "candidateCount", alias = "candidate_count")]
    candidate_count: Option<u64>,
}

/// The request's output cap (if it sets one) and how many answers it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputAsk {
    pub max_tokens: Option<u64>,
    pub choices: u64,
}

/// Reads what the request asks for. A field of the wrong type counts as absent (the upstream
/// refuses such a request anyway, and the model's cap is then the bound).
pub fn output_ask(body: &[u8]) -> OutputAsk {
    let peek: Peek = serde_json::from_slice(body).unwrap_or_default();
    let generation = peek.generation_config.unwrap_or_default();
    let max_tokens = peek
        .max_completion_tokens
        .or(peek.max_tokens)
        .or(peek.max_output_tokens)
        .or(generation.max_output_tokens);
    let choices = peek
        .n
        .or(generation.candidate_count)
        .unwrap_or(1)
        .clamp(1, 128);
    OutputAsk {
        max_tokens,
        choices,
    }
}

/// An upper bound of the prompt's tokens.
pub fn input_tokens(body: &[u8]) -> u64 {
    let objects = memchr::memchr_iter(b'{', body).count() as u64;
    (body.len() as u64)
        .saturating_add(objects.saturating_mul(8))
        .saturating_add(16)
}

/// An upper bound of the answer's tokens given the model's cap.
pub fn output_tokens(ask: OutputAsk, model_cap: u64) -> u64 {
    ask.max_tokens
        .unwrap_or(model_cap)
        .saturating_mul(ask.choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_protocols_cap() {
        let ask = |b: &str| output_ask(b.as_bytes());
        assert_eq!(ask(r#"{"max_tokens":100}"#).max_tokens, Some(100));
        assert_eq!(
            ask(r#"{"max_tokens":100,"max_completion_tokens":50,"n":3}"#),
            OutputAsk {
                max_tokens: Some(50),
                choices: 3
            }
        );
        assert_eq!(ask(r#"{"max_output_tokens":7}"#).max_tokens, Some(7));
        assert_eq!(
            ask(r#"{"generationConfig":{"maxOutputTokens":9,"candidateCount":2}}"#),
            OutputAsk {
                max_tokens: Some(9),
                choices: 2
            }
        );
        assert_eq!(ask(r#"{"max_tokens":"lots"}"#).max_tokens, None);
        assert_eq!(ask("not json").choices, 1);
        assert_eq!(output_tokens(ask("{}"), 16_384), 16_384);
    }

    #[test]
    fn input_bound_exceeds_the_text() {
        let body = br#"{"messages":[{"role":"user","content":"hello"}]}"#;
        assert!(input_tokens(body) > body.len() as u64);
    }
}
