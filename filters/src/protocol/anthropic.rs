//! Anthropic Messages codec (`POST /v1/messages`): requests, responses, SSE streams and error
//! bodies (`{"type":"error","error":{"type","message"}}`) to and from the canonical model.
//!
//! Submodules: [`wire`] (serde types), `request` (decode/encode requests), `response`
//! (non-streaming responses, stop-reason and usage mappings), `stream` (SSE decoder/encoder).
//!
//! In short (details on each function):
//! - Request decode: every Messages field. `document`, `search_result`, server-tool, MCP and
//!   container blocks, Files-API images, Anthropic-defined tools (`web_search_*`, `bash_*`, ...)
//!   and non-empty `mcp_servers` are a 400 (cannot be translated). `thinking` enabled/adaptive/
//!   disabled and `output_config.effort` become `Reasoning`; `output_config.format` (or beta
//!   `output_format`) becomes a JSON-schema response format. `service_tier`, `container`,
//!   `context_management` and unknown fields are reported as dropped; `cache_control` is ignored.
//! - Request encode: `max_tokens` always present, user/assistant alternation (merging,
//!   tool results first, a leading `"."` user turn), unsigned thinking dropped, thinking disabled
//!   where Anthropic forbids it (forced tool use, a tool turn without signed thinking), sampling
//!   parameters Anthropic rejects dropped, structured output emulated with a forced tool (a
//!   non-object answer schema wrapped as `{"value": ...}` and unwrapped on the way back).
//! - Responses and streams: content blocks in order (server-tool blocks skipped, remaining parts
//!   numbered densely), usage with cache reads/writes folded into canonical input, the
//!   structured-output tool turned back into text.

mod request;
mod response;
mod stream;
pub mod wire;

/// The tolerant decoder of `count_tokens` bodies (lives with the token estimate).
pub use crate::tokens::decode_count_tokens;
pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

/// For the usage tap ([`crate::usage`]), which reads usage without decoding whole events.
pub(crate) use response::decode_usage;
pub(crate) use stream::merge_raw;

use crate::canonical::{CanonicalError, ErrorKind};
use serde_json::json;
use wire::{AnthropicError, AnthropicErrorBody};

/// The `error.type` Anthropic uses for each kind (see Anthropic's "Errors" reference).
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest => "invalid_request_error",
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::NotFound => "not_found_error",
        ErrorKind::RequestTooLarge => "request_too_large",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Internal | ErrorKind::BadGateway => "api_error",
        ErrorKind::Unavailable => "overloaded_error",
        ErrorKind::Timeout => "timeout_error",
    }
}

pub fn encode_error(error: &CanonicalError) -> Vec<u8> {
    json!({
        "type": "error",
        "error": { "type": error_type(error.kind), "message": error.message }
    })
    .to_string()
    .into_bytes()
}

/// The kind an Anthropic `error.type` names (`None` for types this codec does not know).
pub fn kind_from_error_type(error_type: &str) -> Option<ErrorKind> {
    Some(match error_type {
        "invalid_request_error" => ErrorKind::InvalidRequest,
        "authentication_error" => ErrorKind::Authentication,
        "permission_error" | "billing_error" => ErrorKind::PermissionDenied,
        "not_found_error" => ErrorKind::NotFound,
        "request_too_large" => ErrorKind::RequestTooLarge,
        "rate_limit_error" => ErrorKind::RateLimited,
        "api_error" => ErrorKind::Internal,
        "overloaded_error" => ErrorKind::Unavailable,
        "timeout_error" => ErrorKind::Timeout,
        _ => return None,
    })
}

/// A canonical error from an Anthropic error object; `status` is the HTTP status when there is
/// one (kept as is), else the kind's own status.
pub(crate) fn error_from_body(body: &AnthropicErrorBody, status: Option<u16>) -> CanonicalError {
    let kind = kind_from_error_type(&body.kind)
        .or_else(|| status.map(ErrorKind::from_status))
        .unwrap_or(ErrorKind::BadGateway);
    let message = if body.message.is_empty() {
        format!(
            "upstream Anthropic error ({})",
            if body.kind.is_empty() {
                "no type"
            } else {
                &body.kind
            }
        )
    } else {
        body.message.clone()
    };
    let e = CanonicalError::new(kind, message);
    match status {
        Some(s) => e.with_status(s),
        None => e,
    }
}

/// Decodes an upstream error response: Anthropic's `{"type":"error","error":{...}}`, else any
/// `{"error":{"message"}}` / `{"message"}` JSON, else the raw text. The status is kept (a 529
/// `overloaded_error` is kind Unavailable with status 529; the proxy picks the final status).
pub fn decode_error(status: u16, body: &[u8]) -> CanonicalError {
    if let Ok(err) = serde_json::from_slice::<AnthropicError>(body) {
        if !err.error.message.is_empty() || !err.error.kind.is_empty() {
            return error_from_body(&err.error, Some(status));
        }
    }
    let kind = ErrorKind::from_status(status);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .or_else(|| v.get("message"))
        })
        .and_then(|m| m.as_str())
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| crate::protocol::openai_error::fallback_message(status, body));
    CanonicalError::new(kind, message).with_status(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_anthropic() {
        let e = CanonicalError::new(ErrorKind::RequestTooLarge, "too big");
        let v: serde_json::Value = serde_json::from_slice(&encode_error(&e)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "request_too_large");
        assert_eq!(v["error"]["message"], "too big");
    }

    #[test]
    fn every_kind_survives_its_error_type_except_bad_gateway() {
        for kind in [
            ErrorKind::InvalidRequest,
            ErrorKind::Authentication,
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::RequestTooLarge,
            ErrorKind::RateLimited,
            ErrorKind::Internal,
            ErrorKind::Unavailable,
            ErrorKind::Timeout,
        ] {
            assert_eq!(kind_from_error_type(error_type(kind)), Some(kind));
        }
        assert_eq!(
            kind_from_error_type("billing_error"),
            Some(ErrorKind::PermissionDenied)
        );
        assert_eq!(kind_from_error_type("something_new"), None);
    }

    #[test]
    fn unknown_error_type_falls_back_to_the_status() {
        let e = decode_error(
            418,
            br#"{"type":"error","error":{"type":"teapot_error","message":"short and stout"}}"#,
        );
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (ErrorKind::InvalidRequest, 418, "short and stout")
        );
        let e = decode_error(500, br#"{"message":"plain"}"#);
        assert_eq!((e.kind, e.message.as_str()), (ErrorKind::Internal, "plain"));
    }
}
