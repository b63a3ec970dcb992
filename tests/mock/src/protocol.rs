//! What every protocol shares: the response description ([`Reply`]), each provider's real error
//! body shape, and each provider's authentication scheme.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::util::{new_id, query_param};

/// The provider family whose conventions (error shape, auth header) a route follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// OpenAI Chat Completions, Responses, Models (and unknown routes).
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// Google Gemini (Generative Language API).
    Google,
}

pub(crate) const JSON: &str = "application/json";
pub(crate) const GOOGLE_JSON: &str = "application/json; charset=UTF-8";
pub(crate) const EVENT_STREAM: &str = "text/event-stream; charset=utf-8";
pub(crate) const GOOGLE_EVENT_STREAM: &str = "text/event-stream";

/// A response before scripted pacing/cuts are applied.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) content_type: &'static str,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: ReplyBody,
}

/// A whole body, or the chunks (SSE events, JSON array pieces) of a streamed one.
#[derive(Debug)]
pub(crate) enum ReplyBody {
    Full(Bytes),
    Events(Vec<Bytes>),
}

impl Reply {
    pub(crate) fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: ReplyBody::Full(Bytes::from(value.to_string())),
        }
    }

    pub(crate) fn events(content_type: &'static str, chunks: Vec<Bytes>) -> Reply {
        Reply {
            status: 200,
            content_type,
            headers: vec![("cache-control", "no-cache".to_owned())],
            body: ReplyBody::Events(chunks),
        }
    }

    #[must_use]
    pub(crate) fn content_type(mut self, content_type: &'static str) -> Reply {
        self.content_type = content_type;
        self
    }

    #[must_use]
    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// OpenAI's `{"error":{"message","type","param","code"}}`.
pub(crate) fn openai_error(
    status: u16,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": param, "code": code}}),
    )
}

/// Anthropic's `{"type":"error","error":{"type","message"},"request_id"}` (+ `request-id` header).
pub(crate) fn anthropic_error(status: u16, kind: &str, message: &str) -> Reply {
    let request_id = new_id("req_", 24);
    Reply::json(
        status,
        &json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}),
    )
    .header("request-id", request_id)
}

/// Google's canonical status name for an HTTP status.
fn google_status(status: u16) -> &'static str {
    match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        s if (400..500).contains(&s) => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// Google's `{"error":{"code","message","status"}}`.
pub(crate) fn google_error(status: u16, message: &str) -> Reply {
    google_error_with_details(status, message, None)
}

fn google_error_with_details(status: u16, message: &str, details: Option<Value>) -> Reply {
    let mut error = json!({"code": status, "message": message, "status": google_status(status)});
    if let (Some(details), Some(obj)) = (details, error.as_object_mut()) {
        obj.insert("details".into(), details);
    }
    Reply::json(status, &json!({ "error": error })).content_type(GOOGLE_JSON)
}

impl Protocol {
    /// The provider's error body for `status` with `message`, typed the way that provider
    /// types errors of that status (used by [`crate::Action::Error`]).
    pub(crate) fn error(self, status: u16, message: &str) -> Reply {
        match self {
            Protocol::OpenAi => {
                let (kind, code) = match status {
                    401 => ("invalid_request_error", Some("invalid_api_key")),
                    403 => ("request_forbidden", None),
                    429 => ("requests", Some("rate_limit_exceeded")),
                    s if (400..500).contains(&s) => ("invalid_request_error", None),
                    _ => ("server_error", None),
                };
                openai_error(status, message, kind, None, code)
            }
            Protocol::Anthropic => {
                let kind = match status {
                    401 => "authentication_error",
                    402 => "billing_error",
                    403 => "permission_error",
                    404 => "not_found_error",
                    413 => "request_too_large",
                    429 => "rate_limit_error",
                    504 => "timeout_error",
                    529 => "overloaded_error",
                    s if (400..500).contains(&s) => "invalid_request_error",
                    _ => "api_error",
                };
                anthropic_error(status, kind, message)
            }
            Protocol::Google => google_error(status, message),
        }
    }

    /// 400 for a request body that is not a JSON object.
    pub(crate) fn malformed_json(self, detail: &str) -> Reply {
        match self {
            Protocol::OpenAi => openai_error(
                400,
                "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON. If you have trouble figuring out how to fix this, please contact us through our help center at help.openai.com.)",
                "invalid_request_error",
                None,
                None,
            ),
            Protocol::Anthropic => anthropic_error(
                400,
                "invalid_request_error",
                &format!("There was an error parsing the body of your request: {detail}"),
            ),
            Protocol::Google => {
                google_error(400, &format!("Invalid JSON payload received. {detail}"))
            }
        }
    }

    /// Checks the credential the way the real provider does. `expected: None` accepts any
    /// non-empty credential; a missing one is always a 401.
    pub(crate) fn check_auth(
        self,
        headers: &HeaderMap,
        query: Option<&str>,
        expected: Option<&str>,
    ) -> Result<(), Reply> {
        match self {
            Protocol::OpenAi => {
                // `api-key` is Azure OpenAI's header for the same API.
                let Some(key) = bearer(headers).or_else(|| header(headers, "api-key")) else {
                    return Err(openai_error(
                        401,
                        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
                        "invalid_request_error",
                        None,
                        None,
                    ));
                };
                match expected {
                    Some(expected) if expected != key => Err(openai_error(
                        401,
                        &format!(
                            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                            mask(key)
                        ),
                        "invalid_request_error",
                        None,
                        Some("invalid_api_key"),
                    )),
                    _ => Ok(()),
                }
            }
            Protocol::Anthropic => match (header(headers, "x-api-key"), expected) {
                (None, _) => Err(anthropic_error(
                    401,
                    "authentication_error",
                    "x-api-key header is required",
                )),
                (Some(key), Some(expected)) if key != expected => Err(anthropic_error(
                    401,
                    "authentication_error",
                    "invalid x-api-key",
                )),
                _ => Ok(()),
            },
            Protocol::Google => {
                let key = header(headers, "x-goog-api-key")
                    .map(str::to_owned)
                    .or_else(|| query_param(query, "key").filter(|k| !k.is_empty()));
                match (key, expected) {
                    (None, _) => Err(google_error(
                        401,
                        "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
                    )),
                    // The real API answers a wrong key with 400 INVALID_ARGUMENT / API_KEY_INVALID.
                    (Some(key), Some(expected)) if key != expected => {
                        Err(google_error_with_details(
                            400,
                            "API key not valid. Please pass a valid API key.",
                            Some(json!([{
                                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                "reason": "API_KEY_INVALID",
                                "domain": "googleapis.com",
                                "metadata": {"service": "generativelanguage.googleapis.com"}
                            }])),
                        ))
                    }
                    _ => Ok(()),
                }
            }
        }
    }
}

/// A non-empty, trimmed header value.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = header(headers, "authorization")?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// `sk-abc***wxyz`, as OpenAI echoes a wrong key.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn body(reply: &Reply) -> Value {
        match &reply.body {
            ReplyBody::Full(b) => serde_json::from_slice(b).unwrap(),
            ReplyBody::Events(_) => panic!("not a full body"),
        }
    }

    #[test]
    fn error_shapes() {
        let r = Protocol::Anthropic.error(529, "Overloaded");
        assert_eq!(r.status, 529);
        assert_eq!(body(&r)["error"]["type"], "overloaded_error");
        assert_eq!(body(&r)["type"], "error");
        let r = Protocol::Google.error(429, "quota");
        assert_eq!(body(&r)["error"]["status"], "RESOURCE_EXHAUSTED");
        assert_eq!(body(&r)["error"]["code"], 429);
        let r = Protocol::OpenAi.error(500, "boom");
        assert_eq!(body(&r)["error"]["type"], "server_error");
        assert_eq!(body(&r)["error"]["param"], Value::Null);
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("bearer  sk-1 "));
        assert_eq!(bearer(&h), Some("sk-1"));
        h.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert("authorization", HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
        assert_eq!(mask("sk-1234567890"), "sk-******7890");
    }
}
