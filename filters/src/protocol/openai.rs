//! OpenAI error bodies (shared by chat completions and responses):
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
