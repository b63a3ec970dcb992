//! One module per wire protocol. Today each knows how its errors look; the cross-protocol codecs
//! join them here (one file per protocol, one enum arm each).

pub mod anthropic;
pub mod gemini;
pub mod openai;

use crate::canonical::CanonicalError;
use bitrouter_config::Protocol;

/// Encodes `error` as the JSON error body `protocol`'s clients expect.
pub fn encode_error(protocol: Protocol, error: &CanonicalError) -> Vec<u8> {
    match protocol {
        Protocol::ChatCompletions | Protocol::Responses => openai::encode_error(error),
        Protocol::Messages => anthropic::encode_error(error),
        Protocol::GenerateContent => gemini::encode_error(error),
    }
}
