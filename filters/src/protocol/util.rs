//! Small helpers shared by the codecs.

use crate::canonical::{CanonicalError, ErrorKind};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix seconds now.
pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh id with `prefix` (`chatcmpl-`, `msg_`, `resp_`, `call_`, ...): unique within the
/// process and unlikely to collide across processes (time, pid and a counter, mixed).
pub fn new_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut x =
        nanos ^ (u64::from(std::process::id()) << 32) ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut out = String::with_capacity(prefix.len() + 24);
    out.push_str(prefix);
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    for _ in 0..2 {
        // splitmix64 rounds so consecutive ids look unrelated
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        for _ in 0..11 {
            out.push(ALPHABET[(z % 62) as usize] as char);
            z /= 62;
        }
    }
    out
}

/// `id` with `prefix`, unless it already has it (keeps upstream ids recognisable while giving
/// the client ids in its protocol's style).
pub fn with_prefix(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) {
        id.to_string()
    } else if id.is_empty() {
        new_id(prefix)
    } else {
        format!("{prefix}{id}")
    }
}

/// Splits a `data:` URL into (media type, base64 data). Only base64 data URLs are accepted.
pub fn parse_data_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    let media_type = if media_type.is_empty() {
        "application/octet-stream"
    } else {
        media_type
    };
    Some((media_type.to_string(), data.to_string()))
}

/// `data:<media_type>;base64,<data>`.
pub fn data_url(media_type: &str, data: &str) -> String {
    format!("data:{media_type};base64,{data}")
}

/// A 400 about the request body.
pub fn invalid(message: impl Into<String>) -> CanonicalError {
    CanonicalError::new(ErrorKind::InvalidRequest, message).with_code("invalid_request")
}

/// A 502 about an upstream body we could not understand.
pub fn bad_upstream(message: impl Into<String>) -> CanonicalError {
    CanonicalError::new(ErrorKind::BadGateway, message).with_code("upstream_invalid_response")
}

/// The error that ends a client's stream when the upstream's stream stopped before its end
/// marker (`marker`: what was missing, e.g. "`message_stop`").
pub fn stream_truncated(protocol: &str, marker: &str) -> CanonicalError {
    CanonicalError::new(
        ErrorKind::BadGateway,
        format!(
            "the upstream {protocol} stream ended before {marker} (the connection closed early)"
        ),
    )
    .with_code("upstream_stream_truncated")
}

/// Parses JSON, mapping failure to a 400 that says which protocol's body was wrong.
pub fn parse_request_json(body: &[u8], what: &str) -> Result<Value, CanonicalError> {
    serde_json::from_slice(body).map_err(|e| {
        invalid(format!("the {what} request body is not valid JSON: {e}")).with_code("invalid_json")
    })
}

/// Lower-cases JSON-Schema `type` values in place (`OBJECT` -> `object`): Gemini clients such as
/// google-genai send OpenAPI-style upper-case types, which OpenAI and Anthropic reject.
pub fn lowercase_schema_types(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                match (key.as_str(), value) {
                    ("type", Value::String(s)) => *s = s.to_ascii_lowercase(),
                    ("type", Value::Array(items)) => {
                        for item in items {
                            if let Value::String(s) = item {
                                *s = s.to_ascii_lowercase();
                            }
                        }
                    }
                    // Property names are user data, never schema keywords: recurse into their
                    // schemas but do not treat a property called "type" as a keyword.
                    (
                        "properties" | "$defs" | "definitions" | "patternProperties",
                        Value::Object(props),
                    ) => {
                        for prop in props.values_mut() {
                            lowercase_schema_types(prop);
                        }
                    }
                    (_, v) => lowercase_schema_types(v),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                lowercase_schema_types(item);
            }
        }
        _ => {}
    }
}

/// A JSON value's text if it is a string, else its JSON text (tool results sometimes arrive as
/// objects where the target wants a string).
pub fn value_to_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = new_id("msg_");
        let b = new_id("msg_");
        assert!(a.starts_with("msg_") && a.len() == 26);
        assert_ne!(a, b);
        assert_eq!(with_prefix("chatcmpl-", "chatcmpl-x"), "chatcmpl-x");
        assert_eq!(with_prefix("msg_", "abc"), "msg_abc");
    }

    #[test]
    fn data_urls() {
        assert_eq!(
            parse_data_url("data:image/png;base64,AAAA"),
            Some(("image/png".into(), "AAAA".into()))
        );
        assert_eq!(parse_data_url("data:text/plain,hi"), None);
        assert_eq!(parse_data_url("https://x/y.png"), None);
    }

    #[test]
    fn schema_types_lowercased_but_not_property_names() {
        let mut s = json!({"type": "OBJECT", "properties": {"type": {"type": "STRING"}, "n": {"type": ["INTEGER", "NULL"]}},
                           "items": {"type": "ARRAY"}});
        lowercase_schema_types(&mut s);
        assert_eq!(
            s,
            json!({"type": "object", "properties": {"type": {"type": "string"}, "n": {"type": ["integer", "null"]}},
                             "items": {"type": "array"}})
        );
    }
}
