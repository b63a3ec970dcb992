//! `GenerateContentResponse` <-> [`ChatResponse`], plus the finish-reason and usage mappings
//! the stream codecs share.

use super::request::{encode_model_parts, real_signature, Target};
use super::wire::{GeminiCandidate, GeminiContent, GeminiPart, GeminiResponse, GeminiUsage};
use crate::canonical::{
    CanonicalError, ChatResponse, Image, ImageSource, Part, ResponseContext, StopReason, Thinking,
    ToolCall, Usage,
};
use crate::protocol::util;

/// Finish reasons that mean a safety or policy filter stopped the answer.
const FILTER_REASONS: &[&str] = &[
    "SAFETY",
    "RECITATION",
    "BLOCKLIST",
    "PROHIBITED_CONTENT",
    "SPII",
    "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT",
    "IMAGE_RECITATION",
];

/// Finish reasons Gemini defines, passed through unchanged when a Gemini answer is re-encoded.
const KNOWN_REASONS: &[&str] = &[
    "MALFORMED_FUNCTION_CALL",
    "OTHER",
    "LANGUAGE",
    "UNEXPECTED_TOOL_CALL",
    "TOO_MANY_TOOL_CALLS",
    "MISSING_THOUGHT_SIGNATURE",
    "IMAGE_OTHER",
    "NO_IMAGE",
    "FINISH_REASON_UNSPECIFIED",
];

/// Gemini `finishReason` -> canonical. `STOP` after function calls means the model wants the
/// tools run: [`StopReason::ToolUse`].
pub(super) fn stop_from_finish(reason: Option<&str>, has_tool_calls: bool) -> StopReason {
    match reason {
        None | Some("STOP") => {
            if has_tool_calls {
                StopReason::ToolUse
            } else {
                StopReason::EndTurn
            }
        }
        Some("MAX_TOKENS") => StopReason::MaxTokens,
        Some(r) if FILTER_REASONS.contains(&r) => StopReason::ContentFilter,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

/// Canonical stop reason -> Gemini `finishReason`.
pub(super) fn finish_from_stop(stop: &StopReason) -> String {
    match stop {
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::ToolUse => "STOP".into(),
        StopReason::MaxTokens => "MAX_TOKENS".into(),
        StopReason::ContentFilter => "SAFETY".into(),
        StopReason::Other(reason) => {
            if KNOWN_REASONS.contains(&reason.as_str()) || FILTER_REASONS.contains(&reason.as_str())
            {
                reason.clone()
            } else {
                "OTHER".into()
            }
        }
    }
}

/// Gemini usage -> canonical: `promptTokenCount` already includes cached tokens but not the
/// tool-use prompt tokens (`toolUsePromptTokenCount`, billed as input: added); output is
/// candidates plus thoughts (Gemini counts them separately).
pub(crate) fn usage_from(u: &GeminiUsage) -> Usage {
    let thoughts = u.thoughts_token_count;
    Usage {
        input: u
            .prompt_token_count
            .unwrap_or(0)
            .saturating_add(u.tool_use_prompt_token_count.unwrap_or(0)),
        output: u
            .candidates_token_count
            .unwrap_or(0)
            .saturating_add(thoughts.unwrap_or(0)),
        cached_input: u.cached_content_token_count,
        cache_creation_input: None,
        reasoning: thoughts,
    }
}

/// Canonical usage -> Gemini `usageMetadata`.
pub(super) fn usage_to(u: &Usage) -> GeminiUsage {
    let reasoning = u.reasoning.unwrap_or(0).min(u.output);
    GeminiUsage {
        prompt_token_count: Some(u.input),
        candidates_token_count: Some(u.output - reasoning),
        total_token_count: Some(u.input.saturating_add(u.output)),
        thoughts_token_count: (reasoning > 0).then_some(reasoning),
        cached_content_token_count: u.cached_input.filter(|c| *c > 0),
        tool_use_prompt_token_count: None,
    }
}

/// The candidate a canonical response is made of: index 0 (canonical responses carry one
/// choice; further candidates of a `candidateCount > 1` request are not represented).
pub(super) fn first_candidate(candidates: &[GeminiCandidate]) -> Option<&GeminiCandidate> {
    candidates
        .iter()
        .find(|c| c.index.unwrap_or(0) == 0)
        .or_else(|| candidates.first())
}

/// Decodes a successful `generateContent` response.
pub fn decode_response(body: &[u8], ctx: &ResponseContext) -> Result<ChatResponse, CanonicalError> {
    let resp: GeminiResponse = serde_json::from_slice(body).map_err(|e| {
        util::bad_upstream(format!(
            "the Gemini response is not a valid GenerateContentResponse: {e}"
        ))
    })?;
    if let Some(error) = &resp.error {
        return Err(super::error_from_object(error, None));
    }
    let candidate = resp.candidates.as_deref().and_then(first_candidate);
    let parts = candidate
        .and_then(|c| c.content.as_ref())
        .map(|c| decode_model_parts(c.parts.as_deref().unwrap_or(&[])))
        .unwrap_or_default();
    let has_calls = parts.iter().any(|p| matches!(p, Part::ToolCall(_)));
    let stop = match candidate {
        Some(c) => stop_from_finish(c.finish_reason.as_deref(), has_calls),
        None if resp
            .prompt_feedback
            .as_ref()
            .is_some_and(|f| f.block_reason.is_some()) =>
        {
            StopReason::ContentFilter
        }
        None => StopReason::EndTurn,
    };
    Ok(ChatResponse {
        id: resp
            .response_id
            .filter(|id| !id.is_empty())
            .unwrap_or_else(|| util::new_id("")),
        model: resp
            .model_version
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| ctx.client_model.clone()),
        created: util::now_unix(),
        parts,
        stop,
        usage: resp
            .usage_metadata
            .as_ref()
            .map(usage_from)
            .unwrap_or_default(),
    })
}

/// A response candidate's parts -> canonical parts. Adjacent text parts join into one (a
/// stream yields one text part per run too); consecutive thought parts form one thinking part
/// that a signature closes; a signature on a non-thought part becomes a signature-only
/// thinking part just before it.
pub(super) fn decode_model_parts(parts: &[GeminiPart]) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for part in parts {
        let signature = real_signature(part.thought_signature.as_ref());
        if part.thought == Some(true) {
            let text = part.text.clone().unwrap_or_default();
            if text.is_empty() && signature.is_none() {
                continue;
            }
            match out.last_mut() {
                Some(Part::Thinking(prev))
                    if prev.signature.is_none() && prev.redacted.is_none() =>
                {
                    prev.text.push_str(&text);
                    prev.signature = signature;
                }
                _ => out.push(Part::Thinking(Thinking {
                    text,
                    signature,
                    redacted: None,
                })),
            }
            continue;
        }
        if let Some(sig) = signature {
            out.push(Part::Thinking(Thinking {
                text: String::new(),
                signature: Some(sig),
                redacted: None,
            }));
        }
        if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
            match out.last_mut() {
                Some(Part::Text(prev)) => prev.push_str(text),
                _ => out.push(Part::Text(text.clone())),
            }
        }
        if let Some(blob) = &part.inline_data {
            if let (Some(mime), Some(data)) = (&blob.mime_type, &blob.data) {
                if mime.starts_with("image/") {
                    out.push(Part::Image(Image {
                        source: ImageSource::Base64 {
                            media_type: mime.clone(),
                            data: data.clone(),
                        },
                        detail: None,
                    }));
                }
            }
        }
        if let Some(file) = &part.file_data {
            if let Some(uri) = &file.file_uri {
                out.push(Part::Image(Image {
                    source: ImageSource::Url(uri.clone()),
                    detail: None,
                }));
            }
        }
        if let Some(call) = &part.function_call {
            out.push(Part::ToolCall(ToolCall {
                id: call
                    .id
                    .clone()
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| util::new_id("call_")),
                name: call.name.clone().unwrap_or_default(),
                arguments: call
                    .args
                    .as_ref()
                    .filter(|a| !a.is_null())
                    .map(|a| a.to_string())
                    .unwrap_or_else(|| "{}".into()),
            }));
        }
    }
    out
}

/// Encodes a response for a Gemini client.
pub fn encode_response(resp: &ChatResponse, ctx: &ResponseContext) -> Vec<u8> {
    let mut dropped = Vec::new();
    let parts = encode_model_parts(&resp.parts, Target::Response, &mut dropped).unwrap_or_default();
    let body = GeminiResponse {
        candidates: Some(vec![GeminiCandidate {
            content: Some(GeminiContent {
                role: Some("model".into()),
                // An empty answer has no `parts` at all, as Google sends it.
                parts: (!parts.is_empty()).then_some(parts),
            }),
            finish_reason: Some(finish_from_stop(&resp.stop)),
            index: Some(0),
        }]),
        prompt_feedback: None,
        usage_metadata: Some(usage_to(&resp.usage)),
        model_version: Some(ctx.client_model.clone()),
        response_id: Some(if resp.id.is_empty() {
            util::new_id("")
        } else {
            resp.id.clone()
        }),
        error: None,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_both_ways() {
        assert_eq!(stop_from_finish(Some("STOP"), false), StopReason::EndTurn);
        assert_eq!(stop_from_finish(Some("STOP"), true), StopReason::ToolUse);
        assert_eq!(
            stop_from_finish(Some("MAX_TOKENS"), true),
            StopReason::MaxTokens
        );
        for r in [
            "SAFETY",
            "RECITATION",
            "BLOCKLIST",
            "PROHIBITED_CONTENT",
            "SPII",
            "IMAGE_SAFETY",
        ] {
            assert_eq!(stop_from_finish(Some(r), false), StopReason::ContentFilter);
        }
        for r in ["MALFORMED_FUNCTION_CALL", "OTHER", "LANGUAGE"] {
            assert_eq!(
                stop_from_finish(Some(r), false),
                StopReason::Other(r.into())
            );
            assert_eq!(finish_from_stop(&StopReason::Other(r.into())), r);
        }
        assert_eq!(finish_from_stop(&StopReason::ToolUse), "STOP");
        assert_eq!(
            finish_from_stop(&StopReason::StopSequence(Some("x".into()))),
            "STOP"
        );
        assert_eq!(finish_from_stop(&StopReason::ContentFilter), "SAFETY");
        assert_eq!(
            finish_from_stop(&StopReason::Other("pause_turn".into())),
            "OTHER"
        );
    }

    #[test]
    fn usage_both_ways() {
        let g = GeminiUsage {
            prompt_token_count: Some(100),
            candidates_token_count: Some(20),
            total_token_count: Some(150),
            thoughts_token_count: Some(30),
            cached_content_token_count: Some(60),
            tool_use_prompt_token_count: None,
        };
        let u = usage_from(&g);
        assert_eq!(
            u,
            Usage {
                input: 100,
                output: 50,
                cached_input: Some(60),
                cache_creation_input: None,
                reasoning: Some(30)
            }
        );
        assert_eq!(usage_to(&u), g);
    }

    /// Tool-use prompt tokens (grounding) are input Gemini reports outside `promptTokenCount`.
    #[test]
    fn tool_use_prompt_tokens_are_input() {
        let g = GeminiUsage {
            prompt_token_count: Some(100),
            candidates_token_count: Some(20),
            tool_use_prompt_token_count: Some(7),
            ..GeminiUsage::default()
        };
        assert_eq!(usage_from(&g).input, 107);
    }
}
