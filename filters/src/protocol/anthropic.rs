//! Anthropic error bodies: `{"type":"error","error":{"type","message"}}`.

use crate::canonical::{CanonicalError, ErrorKind};
use serde_json::json;

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
}
