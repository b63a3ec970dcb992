//! Google Gemini `generateContent` (Generative Language API, v1beta): requests, responses,
//! SSE streams and errors, to and from the canonical model.
//!
//! - [`decode_request`] / [`encode_request`]: `GenerateContentRequest` (the model lives in the
//!   URL path, so it is neither read nor written here; `stream` likewise comes from the method).
//! - [`decode_response`] / [`encode_response`]: `GenerateContentResponse`.
//! - [`StreamDecoder`] / [`StreamEncoder`]: `streamGenerateContent?alt=sse` (each `data:` is a
//!   whole `GenerateContentResponse` chunk; no end marker), and the JSON-array form the API
//!   answers without `alt=sse`.
//! - [`decode_error`] / [`encode_error`]: `{"error":{"code","message","status"}}`.
//!
//! Conventions specific to this codec (see the submodules for details):
//! - Gemini has no tool-call ids (newer models may send `id`): calls without one get
//!   `call_<contentIndex>_<partIndex>` on request decode, and a function response without an id
//!   answers the matching unanswered call of the same name.
//! - `thoughtSignature` on a thought part is that thinking part's signature; a signature on any
//!   other part (Gemini 3 signs function calls) becomes a signature-only thinking part
//!   (`Thinking { text: "", signature }`) placed just before the part it came with, and is put
//!   back on that following part when encoding to Gemini. A replayed model turn whose function
//!   calls have no signature (history from another provider) gets Google's documented
//!   `skip_thought_signature_validator` value, without which Gemini 3 answers 400.
//! - Tool schemas go out as Gemini's `Schema` subset when that loses nothing but annotations,
//!   else unchanged as `parametersJsonSchema` / `responseJsonSchema` (see `schema.rs`).
//! - Function-call arguments that are not a JSON object (a truncated call in the history) are
//!   sent as `{}` and reported in `dropped` as `tool_call.arguments`: Gemini takes only an object,
//!   and refusing the conversation over a past call would leave the client stuck.

mod request;
mod response;
mod schema;
mod stream;
mod wire;

pub use request::{decode_request, encode_request};
pub use response::{decode_response, encode_response};
pub use stream::{StreamDecoder, StreamEncoder};

/// For the usage tap ([`crate::usage`]), which reads usage without decoding whole events.
pub(crate) use response::usage_from;
pub(crate) use wire::GeminiUsage;

use crate::canonical::{CanonicalError, ErrorKind};
use crate::protocol::openai_error::fallback_message;
use serde_json::{json, Value};

/// The canonical gRPC status name Google's REST errors carry for each kind.
pub fn error_status(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::RequestTooLarge => "INVALID_ARGUMENT",
        ErrorKind::Authentication => "UNAUTHENTICATED",
        ErrorKind::PermissionDenied => "PERMISSION_DENIED",
        ErrorKind::NotFound => "NOT_FOUND",
        ErrorKind::RateLimited => "RESOURCE_EXHAUSTED",
        ErrorKind::Internal => "INTERNAL",
        ErrorKind::BadGateway | ErrorKind::Unavailable => "UNAVAILABLE",
        ErrorKind::Timeout => "DEADLINE_EXCEEDED",
    }
}

pub fn encode_error(error: &CanonicalError) -> Vec<u8> {
    json!({
        "error": {
            "code": error.status,
            "message": error.message,
            "status": error_status(error.kind),
        }
    })
    .to_string()
    .into_bytes()
}

/// The kind a Google status name stands for (`None` for names we do not know).
fn kind_from_status_name(name: &str) -> Option<ErrorKind> {
    Some(match name {
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => ErrorKind::InvalidRequest,
        "UNAUTHENTICATED" => ErrorKind::Authentication,
        "PERMISSION_DENIED" => ErrorKind::PermissionDenied,
        "NOT_FOUND" => ErrorKind::NotFound,
        "RESOURCE_EXHAUSTED" => ErrorKind::RateLimited,
        "UNAVAILABLE" => ErrorKind::Unavailable,
        "DEADLINE_EXCEEDED" => ErrorKind::Timeout,
        "INTERNAL" | "UNKNOWN" | "DATA_LOSS" | "ABORTED" | "CANCELLED" | "UNIMPLEMENTED" => {
            ErrorKind::Internal
        }
        _ => return None,
    })
}

/// The `error` object of a Google error body: `{"error":{...}}`, or the same wrapped in a
/// one-element array (which the API returns from `streamGenerateContent` without `alt=sse`).
fn error_object(body: &Value) -> Option<&Value> {
    match body {
        Value::Object(map) => map.get("error"),
        Value::Array(items) => items.first().and_then(|first| first.get("error")),
        _ => None,
    }
}

/// A canonical error from Google's `error` object. `http_status` is the response status when
/// there was one (a 4xx/5xx decides the kind); inside a stream or a 200 body the object's own
/// `code` / `status` decide.
fn error_from_object(error: &Value, http_status: Option<u16>) -> CanonicalError {
    let status_name = error.get("status").and_then(Value::as_str);
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (400..=599).contains(c));
    let (kind, status) = match http_status.filter(|s| *s >= 400) {
        Some(s) => (ErrorKind::from_status(s), s),
        None => {
            let kind = code
                .map(ErrorKind::from_status)
                .or_else(|| status_name.and_then(kind_from_status_name))
                .unwrap_or(ErrorKind::BadGateway);
            (kind, code.unwrap_or_else(|| kind.status()))
        }
    };
    let message = match error {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        _ => error
            .get("message")
            .and_then(Value::as_str)
            .filter(|m| !m.trim().is_empty())
            .map(str::to_string)
            .or_else(|| status_name.map(|n| format!("upstream returned {n}")))
            .unwrap_or_else(|| format!("upstream returned HTTP {status}")),
    };
    CanonicalError::new(kind, message).with_status(status)
}

/// Decodes a Google error body (any status >= 400, any body: Google JSON, someone else's
/// JSON, HTML, empty). The HTTP status is kept and decides the kind.
pub fn decode_error(status: u16, body: &[u8]) -> CanonicalError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(error_object) {
        Some(error) if error.is_object() || error.is_string() => {
            error_from_object(error, Some(status)).with_status(status)
        }
        _ => CanonicalError::new(
            ErrorKind::from_status(status),
            fallback_message(status, body),
        )
        .with_status(status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_google() {
        let e = CanonicalError::new(ErrorKind::NotFound, "no such model");
        let v: serde_json::Value = serde_json::from_slice(&encode_error(&e)).unwrap();
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        assert_eq!(v["error"]["message"], "no such model");
    }

    #[test]
    fn decodes_google_errors_in_all_shapes() {
        let body = br#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
        let e = decode_error(429, body);
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.status, 429);
        assert_eq!(e.message, "Resource has been exhausted (e.g. check quota).");

        let arr = br#"[{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}]"#;
        let e = decode_error(400, arr);
        assert_eq!(
            (e.kind, e.status, e.message.as_str()),
            (ErrorKind::InvalidRequest, 400, "API key not valid.")
        );

        let e = decode_error(502, b"<html>Bad Gateway</html>");
        assert_eq!(e.kind, ErrorKind::BadGateway);
        assert!(
            e.message.contains("<html>Bad Gateway</html>"),
            "{}",
            e.message
        );

        let e = decode_error(503, b"");
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("empty body"));

        // Someone else's format still yields its message.
        let e = decode_error(
            401,
            br#"{"error":{"message":"bad key","type":"authentication_error"}}"#,
        );
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Authentication, "bad key")
        );
    }

    #[test]
    fn in_stream_error_objects_use_their_own_status() {
        let v = serde_json::json!({"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"});
        let e = error_from_object(&v, None);
        assert_eq!((e.kind, e.status), (ErrorKind::Unavailable, 503));
        let e = error_from_object(
            &serde_json::json!({"message": "x", "status": "DEADLINE_EXCEEDED"}),
            None,
        );
        assert_eq!((e.kind, e.status), (ErrorKind::Timeout, 504));
        let e = error_from_object(&serde_json::json!({}), None);
        assert_eq!(e.kind, ErrorKind::BadGateway);
    }
}
