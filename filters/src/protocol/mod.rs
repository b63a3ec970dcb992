//! One codec per wire protocol, all converting to and from the canonical model
//! ([`crate::canonical`]): N codecs, not N×M converters. This module dispatches on
//! [`Protocol`]; adding a protocol means one file here and one arm in each match.
//!
//! Every codec module exposes the same surface:
//! - `decode_request(body) -> ChatRequest` / `encode_request(&ChatRequest, &EncodeOptions) -> Encoded`
//! - `decode_response(body, &ResponseContext) -> ChatResponse` / `encode_response(&ChatResponse, &ResponseContext) -> bytes`
//! - `decode_error(status, body) -> CanonicalError` / `encode_error(&CanonicalError) -> bytes`
//! - `StreamDecoder` (SSE event -> canonical events) and `StreamEncoder` (canonical events ->
//!   SSE bytes), each keeping its per-stream state in fields.

pub mod anthropic;
pub mod gemini;
pub mod openai_chat;
pub mod openai_error;
pub mod openai_responses;
pub mod util;

use crate::canonical::{
    CanonicalError, ChatRequest, ChatResponse, EncodeOptions, Encoded, ResponseContext, StreamEvent,
};
use crate::sse::SseEvent;
use bitrouter_config::Protocol;

/// Decodes a request body of `protocol` (for Gemini the model, which lives in the path, is left
/// empty and `stream` false: the caller sets both).
pub fn decode_request(protocol: Protocol, body: &[u8]) -> Result<ChatRequest, CanonicalError> {
    match protocol {
        Protocol::ChatCompletions => openai_chat::decode_request(body),
        Protocol::Responses => openai_responses::decode_request(body),
        Protocol::Messages => anthropic::decode_request(body),
        Protocol::GenerateContent => gemini::decode_request(body),
    }
}

/// Encodes `request` as a `protocol` request body.
pub fn encode_request(
    protocol: Protocol,
    request: &ChatRequest,
    options: &EncodeOptions,
) -> Result<Encoded, CanonicalError> {
    match protocol {
        Protocol::ChatCompletions => openai_chat::encode_request(request, options),
        Protocol::Responses => openai_responses::encode_request(request, options),
        Protocol::Messages => anthropic::encode_request(request, options),
        Protocol::GenerateContent => gemini::encode_request(request, options),
    }
}

/// Decodes a successful (2xx) non-streaming response body of `protocol`.
pub fn decode_response(
    protocol: Protocol,
    body: &[u8],
    ctx: &ResponseContext,
) -> Result<ChatResponse, CanonicalError> {
    match protocol {
        Protocol::ChatCompletions => openai_chat::decode_response(body, ctx),
        Protocol::Responses => openai_responses::decode_response(body, ctx),
        Protocol::Messages => anthropic::decode_response(body, ctx),
        Protocol::GenerateContent => gemini::decode_response(body, ctx),
    }
}

/// Encodes `response` as a `protocol` response body.
pub fn encode_response(
    protocol: Protocol,
    response: &ChatResponse,
    ctx: &ResponseContext,
) -> Vec<u8> {
    match protocol {
        Protocol::ChatCompletions => openai_chat::encode_response(response, ctx),
        Protocol::Responses => openai_responses::encode_response(response, ctx),
        Protocol::Messages => anthropic::encode_response(response, ctx),
        Protocol::GenerateContent => gemini::encode_response(response, ctx),
    }
}

/// Decodes an upstream error response (any status >= 400, any body, even not JSON).
pub fn decode_error(protocol: Protocol, status: u16, body: &[u8]) -> CanonicalError {
    match protocol {
        Protocol::ChatCompletions | Protocol::Responses => openai_error::decode_error(status, body),
        Protocol::Messages => anthropic::decode_error(status, body),
        Protocol::GenerateContent => gemini::decode_error(status, body),
    }
}

/// Encodes `error` as the JSON error body `protocol`'s clients expect.
pub fn encode_error(protocol: Protocol, error: &CanonicalError) -> Vec<u8> {
    match protocol {
        Protocol::ChatCompletions | Protocol::Responses => openai_error::encode_error(error),
        Protocol::Messages => anthropic::encode_error(error),
        Protocol::GenerateContent => gemini::encode_error(error),
    }
}

/// Turns one upstream SSE event into canonical events, keeping per-stream state.
pub enum StreamDecoder {
    ChatCompletions(openai_chat::StreamDecoder),
    Responses(openai_responses::StreamDecoder),
    Messages(anthropic::StreamDecoder),
    GenerateContent(gemini::StreamDecoder),
}

impl StreamDecoder {
    pub fn new(protocol: Protocol, ctx: &ResponseContext) -> StreamDecoder {
        match protocol {
            Protocol::ChatCompletions => {
                StreamDecoder::ChatCompletions(openai_chat::StreamDecoder::new(ctx))
            }
            Protocol::Responses => {
                StreamDecoder::Responses(openai_responses::StreamDecoder::new(ctx))
            }
            Protocol::Messages => StreamDecoder::Messages(anthropic::StreamDecoder::new(ctx)),
            Protocol::GenerateContent => {
                StreamDecoder::GenerateContent(gemini::StreamDecoder::new(ctx))
            }
        }
    }

    /// Decodes one SSE event, appending canonical events to `out`. An event that is not valid
    /// for the protocol is an error (the stream is then ended with an error event).
    pub fn decode(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), CanonicalError> {
        match self {
            StreamDecoder::ChatCompletions(d) => d.decode(event, out),
            StreamDecoder::Responses(d) => d.decode(event, out),
            StreamDecoder::Messages(d) => d.decode(event, out),
            StreamDecoder::GenerateContent(d) => d.decode(event, out),
        }
    }

    /// The upstream stream ended (EOF): emits whatever closing events are owed (open parts
    /// stopped, `Done`), or an error event if the stream ended before its protocol's end marker.
    pub fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        match self {
            StreamDecoder::ChatCompletions(d) => d.finish(out),
            StreamDecoder::Responses(d) => d.finish(out),
            StreamDecoder::Messages(d) => d.finish(out),
            StreamDecoder::GenerateContent(d) => d.finish(out),
        }
    }
}

/// Turns canonical events into a client's SSE bytes, keeping per-stream state.
pub enum StreamEncoder {
    ChatCompletions(openai_chat::StreamEncoder),
    Responses(openai_responses::StreamEncoder),
    Messages(anthropic::StreamEncoder),
    GenerateContent(gemini::StreamEncoder),
}

impl StreamEncoder {
    pub fn new(protocol: Protocol, ctx: &ResponseContext) -> StreamEncoder {
        match protocol {
            Protocol::ChatCompletions => {
                StreamEncoder::ChatCompletions(openai_chat::StreamEncoder::new(ctx))
            }
            Protocol::Responses => {
                StreamEncoder::Responses(openai_responses::StreamEncoder::new(ctx))
            }
            Protocol::Messages => StreamEncoder::Messages(anthropic::StreamEncoder::new(ctx)),
            Protocol::GenerateContent => {
                StreamEncoder::GenerateContent(gemini::StreamEncoder::new(ctx))
            }
        }
    }

    /// Appends the wire bytes for `event` (possibly none: some events only update state).
    pub fn encode(&mut self, event: &StreamEvent, out: &mut Vec<u8>) {
        match self {
            StreamEncoder::ChatCompletions(e) => e.encode(event, out),
            StreamEncoder::Responses(e) => e.encode(event, out),
            StreamEncoder::Messages(e) => e.encode(event, out),
            StreamEncoder::GenerateContent(e) => e.encode(event, out),
        }
    }
}
