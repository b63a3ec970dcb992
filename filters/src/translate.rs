//! Whole-body translation helpers the proxy calls: requests, non-streaming responses, errors.
//! (Streams go through [`crate::stream::StreamTranslator`].)

use crate::canonical::{
    CanonicalError, ChatRequest, ChatResponse, EncodeOptions, Encoded, ErrorKind, Part, PartKind,
    ResponseContext, StreamEvent,
};
use crate::protocol;
use bitrouter_config::Protocol;

/// Re-encodes a client request for an upstream speaking `upstream`.
pub fn translate_request(
    request: &ChatRequest,
    upstream: Protocol,
    options: &EncodeOptions,
) -> Result<Encoded, CanonicalError> {
    protocol::encode_request(upstream, request, options)
}

/// Translates a successful upstream body into the client's protocol.
pub fn translate_response(
    upstream: Protocol,
    client: Protocol,
    body: &[u8],
    ctx: &ResponseContext,
) -> Result<Vec<u8>, CanonicalError> {
    let response = protocol::decode_response(upstream, body, ctx)?;
    Ok(protocol::encode_response(client, &response, ctx))
}

/// [`translate_response`], also returning the upstream's usage (the decoded response's
/// [`ChatResponse::usage`], in the canonical convention) for accounting, from the one decode.
/// `None` when the body reported none: the decoders leave `ChatResponse::usage` all zero then,
/// and a ledger must not record that as a real zero.
pub fn translate_response_with_usage(
    upstream: Protocol,
    client: Protocol,
    body: &[u8],
    ctx: &ResponseContext,
) -> Result<(Vec<u8>, Option<crate::canonical::Usage>), CanonicalError> {
    let response = protocol::decode_response(upstream, body, ctx)?;
    let usage = (response.usage != crate::canonical::Usage::default()).then_some(response.usage);
    Ok((protocol::encode_response(client, &response, ctx), usage))
}

/// Translates an upstream error (status >= 400, any body) into the client's format and the
/// status to answer with.
pub fn translate_error(
    upstream: Protocol,
    client: Protocol,
    status: u16,
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut error = protocol::decode_error(upstream, status, body);
    error.status = client_status(client, error.status);
    let overflow =
        is_context_overflow(&error.message) || error.code == Some("context_length_exceeded");
    if overflow && error.code.is_none() {
        error.code = Some("context_length_exceeded");
    }
    if overflow && client == Protocol::Messages {
        error.message = anthropic_overflow_wording(&error.message);
    }
    (error.status, protocol::encode_error(client, &error))
}

/// A context-overflow message in Anthropic's words, `prompt is too long: N tokens > M maximum`:
/// Claude Code recognises an overflow (and compacts the conversation) by that wording, so an
/// OpenAI or Google upstream's overflow must read like Anthropic's. The counts are taken from
/// the upstream's message where it gives them (OpenAI: "maximum context length is M tokens ...
/// resulted in N tokens"; Google: "input token count (N) exceeds the maximum number of tokens
/// allowed (M)"); the original message follows, so nothing is lost.
pub fn anthropic_overflow_wording(message: &str) -> String {
    if message.to_ascii_lowercase().contains("prompt is too long") {
        return message.to_string();
    }
    let numbers: Vec<u64> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty() && s.len() <= 12)
        .filter_map(|s| s.parse().ok())
        .filter(|&n| n >= 1000)
        .collect();
    let lower = message.to_ascii_lowercase();
    let counts = match numbers.as_slice() {
        // OpenAI names the maximum first, Google the actual count first.
        [a, b] if lower.contains("maximum context length") => Some((*b, *a)),
        [a, b] => Some((*a, *b)),
        _ => None,
    };
    match counts {
        Some((actual, max)) if actual > max => {
            format!("prompt is too long: {actual} tokens > {max} maximum ({message})")
        }
        _ => format!("prompt is too long: {message}"),
    }
}

/// Whether an upstream error message says the prompt did not fit the model's context, in the
/// wording of Anthropic ("prompt is too long") or Google ("exceeds the maximum number of
/// tokens"): clients of OpenAI's protocol look for the `context_length_exceeded` code to
/// compact their history.
pub fn is_context_overflow(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("prompt is too long")
        || m.contains("exceed context limit")
        || m.contains("exceeds the maximum number of tokens")
        || m.contains("context length")
        || m.contains("context window")
}

/// The status a client of `client`'s protocol should see for an upstream status: Anthropic's
/// 529 (overloaded) means nothing to other SDKs, which retry on 503.
pub fn client_status(client: Protocol, status: u16) -> u16 {
    match (client, status) {
        (Protocol::Messages, s) => s,
        (_, 529) => 503,
        (_, s) if !(100..=599).contains(&s) => 502,
        (_, s) => s,
    }
}

/// The stream a client would have received for `response`: used when an upstream answers a
/// streaming request with a plain JSON body.
pub fn response_to_events(response: &ChatResponse) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::Start {
        id: response.id.clone(),
        model: response.model.clone(),
        created: response.created,
        usage: None,
    }];
    for (index, part) in response.parts.iter().enumerate() {
        match part {
            Part::Text(text) => {
                events.push(StreamEvent::PartStart {
                    index,
                    kind: PartKind::Text,
                });
                events.push(StreamEvent::TextDelta {
                    index,
                    text: text.clone(),
                });
            }
            Part::Thinking(t) => {
                let kind = match &t.redacted {
                    Some(data) => PartKind::RedactedThinking { data: data.clone() },
                    None => PartKind::Thinking,
                };
                events.push(StreamEvent::PartStart { index, kind });
                if !t.text.is_empty() {
                    events.push(StreamEvent::ThinkingDelta {
                        index,
                        text: t.text.clone(),
                    });
                }
                if let Some(sig) = &t.signature {
                    events.push(StreamEvent::ThinkingSignature {
                        index,
                        signature: sig.clone(),
                    });
                }
            }
            Part::ToolCall(call) => {
                events.push(StreamEvent::PartStart {
                    index,
                    kind: PartKind::ToolCall {
                        id: call.id.clone(),
                        name: call.name.clone(),
                    },
                });
                events.push(StreamEvent::ToolArgsDelta {
                    index,
                    json: call.arguments.clone(),
                });
            }
            // Responses never contain images or tool results.
            Part::Image(_) | Part::ToolResult(_) => continue,
        }
        events.push(StreamEvent::PartStop { index });
    }
    events.push(StreamEvent::Finish {
        stop: response.stop.clone(),
    });
    events.push(StreamEvent::Usage(response.usage));
    events.push(StreamEvent::Done);
    events
}

/// A 502 for an upstream body that could not be read as its protocol's response.
pub fn unreadable_upstream(detail: impl Into<String>) -> CanonicalError {
    CanonicalError::new(ErrorKind::BadGateway, detail).with_code("upstream_invalid_response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn context_overflow_becomes_openais_code() {
        let body = br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#;
        let (status, out) =
            translate_error(Protocol::Messages, Protocol::ChatCompletions, 400, body);
        assert_eq!(status, 400);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long"));
    }

    #[test]
    fn context_overflow_reads_as_anthropics_for_claude_code() {
        let openai = br#"{"error":{"message":"This model's maximum context length is 128000 tokens. However, your messages resulted in 130512 tokens. Please reduce the length of the messages.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        let (status, out) =
            translate_error(Protocol::ChatCompletions, Protocol::Messages, 400, openai);
        assert_eq!(status, 400);
        let v: Value = serde_json::from_slice(&out).unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("prompt is too long: 130512 tokens > 128000 maximum"),
            "{message}"
        );
        let google = br#"{"error":{"code":400,"message":"The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).","status":"INVALID_ARGUMENT"}}"#;
        let (_, out) = translate_error(Protocol::GenerateContent, Protocol::Messages, 400, google);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("prompt is too long: 1200000 tokens > 1048576 maximum"));
        // Without counts the wording still starts the same way.
        assert_eq!(
            anthropic_overflow_wording("context window exceeded"),
            "prompt is too long: context window exceeded"
        );
        // Other errors keep their message.
        let other = br#"{"error":{"message":"bad tool","type":"invalid_request_error"}}"#;
        let (_, out) = translate_error(Protocol::ChatCompletions, Protocol::Messages, 400, other);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["message"], "bad tool");
    }

    #[test]
    fn known_openai_codes_survive_and_529_becomes_503() {
        let body =
            br#"{"error":{"message":"slow down","type":"requests","code":"rate_limit_exceeded"}}"#;
        let (_, out) = translate_error(Protocol::ChatCompletions, Protocol::Responses, 429, body);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["error"]["code"], "rate_limit_exceeded");
        let over =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(
            translate_error(Protocol::Messages, Protocol::ChatCompletions, 529, over).0,
            503
        );
        assert_eq!(
            translate_error(Protocol::Messages, Protocol::Messages, 529, over).0,
            529
        );
    }
}
