//! The two request fields routing needs, read without building a JSON tree, and the one rewrite
//! a same-protocol hop needs: the `model` value replaced in place.
//!
//! Why not parse into `serde_json::Value` and re-serialise? On the pass-through path the body is
//! forwarded untouched except for `model`; a full tree costs an allocation per node and reorders
//! nothing useful. Deserialising into a struct that borrows the raw `model` token still validates
//! the whole document (serde_json skips the other fields but checks their syntax), and the
//! borrowed slice gives the exact byte range to splice.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::ops::Range;

/// What routing needs from a JSON request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPeek {
    /// The `model` string (unescaped), if present.
    pub model: Option<String>,
    /// Byte range of the `model` value token (quotes included) in the body.
    pub model_span: Option<Range<usize>>,
    /// `stream: true` in the body.
    pub stream: bool,
    /// The output cap the request sets, read in passing for budgets: `max_completion_tokens`,
    /// else `max_tokens`, else `max_output_tokens` (a non-integer counts as absent).
    pub max_tokens: Option<u64>,
    /// `n`, the number of answers asked for.
    pub choices: Option<u64>,
}

/// Why a body could not be peeked. Each is the client's fault (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeekError {
    #[error("the request body is not valid JSON: {0}")]
    Malformed(String),
    #[error("the request body must be a JSON object")]
    NotAnObject,
    #[error("`model` must be a string")]
    ModelNotString,
    #[error("`stream` must be a boolean")]
    StreamNotBool,
}

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(borrow, default)]
    stream: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_completion_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    max_output_tokens: Option<&'a RawValue>,
    #[serde(borrow, default)]
    n: Option<&'a RawValue>,
}

/// Reads `model` and `stream` from a JSON object body, validating the whole document.
pub fn peek(body: &[u8]) -> Result<RequestPeek, PeekError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Err(e) => Err(PeekError::Malformed(e.to_string())),
            Ok(_) => Err(PeekError::NotAnObject),
        };
    }
    let text = std::str::from_utf8(body).map_err(|e| PeekError::Malformed(e.to_string()))?;
    let p: Peek<'_> =
        serde_json::from_str(text).map_err(|e| PeekError::Malformed(e.to_string()))?;
    let (model, model_span) = match p.model {
        None => (None, None),
        Some(raw) if raw.get() == "null" => (None, None),
        Some(raw) => {
            let value: Cow<'_, str> =
                serde_json::from_str(raw.get()).map_err(|_| PeekError::ModelNotString)?;
            let start = offset_in(text, raw.get());
            (
                Some(value.into_owned()),
                Some(start..start + raw.get().len()),
            )
        }
    };
    let stream = match p.stream {
        None => false,
        Some(raw) => match raw.get() {
            "true" => true,
            "false" | "null" => false,
            _ => return Err(PeekError::StreamNotBool),
        },
    };
    let int = |raw: Option<&RawValue>| raw.and_then(|r| r.get().parse::<u64>().ok());
    Ok(RequestPeek {
        model,
        model_span,
        stream,
        max_tokens: int(p.max_completion_tokens)
            .or(int(p.max_tokens))
            .or(int(p.max_output_tokens)),
        choices: int(p.n),
    })
}

/// Validates that `body` is one JSON value (for bodies routing does not read, e.g. Gemini's,
/// whose model is in the path).
pub fn validate_json(body: &[u8]) -> Result<(), PeekError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(body)
        .map(|_| ())
        .map_err(|e| PeekError::Malformed(e.to_string()))
}

/// `body` with the bytes in `span` replaced by `model` as a JSON string.
pub fn replace_model(body: &[u8], span: Range<usize>, model: &str) -> Vec<u8> {
    let encoded = serde_json::Value::String(model.to_owned()).to_string();
    let (start, end) = (span.start.min(body.len()), span.end.min(body.len()));
    let mut out = Vec::with_capacity(body.len() + encoded.len());
    out.extend_from_slice(&body[..start]);
    out.extend_from_slice(encoded.as_bytes());
    out.extend_from_slice(&body[end..]);
    out
}

/// Byte offset of `part` inside `whole`; `part` is a sub-slice borrowed from `whole`.
fn offset_in(whole: &str, part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_cap_fields_are_read_in_passing() {
        let p =
            peek(br#"{"model":"m","max_tokens":100,"max_completion_tokens":50,"n":2}"#).unwrap();
        assert_eq!((p.max_tokens, p.choices), (Some(50), Some(2)));
        let p = peek(br#"{"model":"m","max_output_tokens":7,"max_tokens":"x"}"#).unwrap();
        assert_eq!((p.max_tokens, p.choices), (Some(7), None));
        let p = peek(br#"{"model":"m","max_tokens":-1}"#).unwrap();
        assert_eq!(p.max_tokens, None);
    }

    #[test]
    fn peeks_model_and_stream() {
        let body =
            br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o","stream":true}"#;
        let p = peek(body).unwrap();
        assert_eq!(p.model.as_deref(), Some("gpt-4o"));
        assert!(p.stream);
        let span = p.model_span.unwrap();
        assert_eq!(&body[span], br#""gpt-4o""#);
    }

    #[test]
    fn unescapes_model() {
        let body = br#"{"model":"a\/b\u0041"}"#;
        let p = peek(body).unwrap();
        assert_eq!(p.model.as_deref(), Some("a/bA"));
    }

    #[test]
    fn missing_and_null_model() {
        assert_eq!(peek(b"{}").unwrap().model, None);
        assert_eq!(peek(br#"{"model":null}"#).unwrap().model, None);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(matches!(peek(b"{\"model\":"), Err(PeekError::Malformed(_))));
        assert!(matches!(peek(b""), Err(PeekError::Malformed(_))));
        assert!(matches!(peek(b"[1,2]"), Err(PeekError::NotAnObject)));
        assert!(matches!(
            peek(br#"{"model":3}"#),
            Err(PeekError::ModelNotString)
        ));
        assert!(matches!(
            peek(br#"{"stream":"yes"}"#),
            Err(PeekError::StreamNotBool)
        ));
        assert!(matches!(
            peek(b"{\"a\":1} trailing"),
            Err(PeekError::Malformed(_))
        ));
        assert!(matches!(
            peek(b"{\"a\":\xff}"),
            Err(PeekError::Malformed(_))
        ));
        assert!(matches!(
            peek(br#"{"model":"a","model":"b"}"#),
            Err(PeekError::Malformed(_))
        ));
    }

    #[test]
    fn replaces_model_in_place() {
        let body = br#"{ "model" : "smart", "x": [1, {"model": "inner"}] }"#;
        let p = peek(body).unwrap();
        let out = replace_model(body, p.model_span.unwrap(), "claude-\"q\"");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "model" : "claude-\"q\"", "x": [1, {"model": "inner"}] }"#
        );
        assert_eq!(peek(&out).unwrap().model.as_deref(), Some("claude-\"q\""));
    }

    #[test]
    fn arbitrary_prefixes_never_panic() {
        let body = br#"{"model":"gpt-4o","messages":[{"role":"user","content":"h\u00e9llo"}],"stream":false}"#;
        for end in 0..body.len() {
            let _ = peek(&body[..end]);
            let _ = validate_json(&body[..end]);
        }
    }
}
