//! OpenAI error bodies, shared by chat completions and responses:
//! `{"error":{"message","type","param","code"}}`.

use crate::canonical::{CanonicalError, ErrorKind};
use serde_json::json;

/// The `error.type` OpenAI uses for each kind.
pub fn error_type(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::NotFound | ErrorKind::RequestTooLarge => {
            "invalid_request_error"
        }
        ErrorKind::Authentication => "authentication_error",
        ErrorKind::PermissionDenied => "permission_error",
        ErrorKind::RateLimited => "rate_limit_error",
        ErrorKind::Internal
        | ErrorKind::BadGateway
        | ErrorKind::Unavailable
        | ErrorKind::Timeout => "server_error",
    }
}

pub fn encode_error(error: &CanonicalError) -> Vec<u8> {
    let body = json!({
        "error": {
            "message": error.message,
            "type": error_type(error.kind),
            "param": error.param,
            "code": error.code,
        }
    });
    body.to_string().into_bytes()
}

/// Decodes an OpenAI-format error body (`{"error":{"message","type","code"}}`), falling back to
/// the raw text for anything else (a proxy's HTML page, an empty body).
pub fn decode_error(status: u16, body: &[u8]) -> CanonicalError {
    let kind = ErrorKind::from_status(status);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(|m| m.as_str().map(str::to_string))
        .unwrap_or_else(|| fallback_message(status, body));
    let mut error = CanonicalError::new(kind, message).with_status(status);
    error.code = parsed
        .as_ref()
        .and_then(|v| v.pointer("/error/code"))
        .and_then(|c| c.as_str())
        .and_then(known_code);
    error
}

/// OpenAI error codes clients act on (agents compact their context on
/// `context_length_exceeded`), kept when an upstream error is translated.
pub fn known_code(code: &str) -> Option<&'static str> {
    const KNOWN: [&str; 7] = [
        "context_length_exceeded",
        "rate_limit_exceeded",
        "insufficient_quota",
        "invalid_api_key",
        "model_not_found",
        "string_above_max_length",
        "invalid_prompt",
    ];
    KNOWN.iter().copied().find(|k| *k == code)
}

/// A readable message from a body that is not in the expected error format.
pub fn fallback_message(status: u16, body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned HTTP {status} with an empty body")
    } else {
        let mut t: String = text.chars().take(500).collect();
        if text.chars().count() > 500 {
            t.push('…');
        }
        format!("upstream returned HTTP {status}: {t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_matches_openai() {
        let e = CanonicalError::new(ErrorKind::NotFound, "unknown model `x`")
            .with_code("model_not_found")
            .with_param("model");
        let v: serde_json::Value = serde_json::from_slice(&encode_error(&e)).unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "model_not_found");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["message"], "unknown model `x`");
    }
}
