//! Google Generative Language API error bodies: `{"error":{"code","message","status"}}`.

use crate::canonical::{CanonicalError, ErrorKind};
use serde_json::json;

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
}
