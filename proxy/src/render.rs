//! Errors rendered in the caller's own protocol: an OpenAI client gets OpenAI error JSON, an
//! Anthropic client Anthropic's, a Gemini client Google's, always with the matching status.

use bitrouter_config::Protocol;
use bitrouter_filters::canonical::CanonicalError;
use bitrouter_filters::protocol::encode_error;
use bytes::Bytes;

/// Status and body of an error response for a client speaking `protocol`.
pub fn error_body(protocol: Protocol, error: &CanonicalError) -> (u16, Bytes) {
    (error.status, Bytes::from(encode_error(protocol, error)))
}
