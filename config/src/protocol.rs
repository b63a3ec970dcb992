//! The wire protocols bitrouter speaks, and how a provider authenticates.
//!
//! They live in the config crate because they are the vocabulary of `api_protocol` in
//! `bitrouter.yaml`; the filters and proxy crates reuse this one definition.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the four LLM wire protocols. The names are the `api_protocol` values users write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// OpenAI `POST /v1/chat/completions`.
    ChatCompletions,
    /// OpenAI `POST /v1/responses`.
    Responses,
    /// Anthropic `POST /v1/messages`.
    Messages,
    /// Google `POST /v1beta/models/{model}:generateContent` (and `:streamGenerateContent`).
    GenerateContent,
}

impl Protocol {
    /// Every protocol, in a stable order (useful for tests and listings).
    pub const ALL: [Protocol; 4] = [
        Protocol::ChatCompletions,
        Protocol::Responses,
        Protocol::Messages,
        Protocol::GenerateContent,
    ];

    /// The name used in `bitrouter.yaml` and in metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::ChatCompletions => "chat_completions",
            Protocol::Responses => "responses",
            Protocol::Messages => "messages",
            Protocol::GenerateContent => "generate_content",
        }
    }

    /// Parses a config name (`chat_completions`, `responses`, `messages`, `generate_content`).
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The credential header style a provider speaking this protocol uses unless told otherwise.
    pub fn default_auth(self) -> AuthStyle {
        match self {
            Protocol::ChatCompletions | Protocol::Responses => AuthStyle::Bearer,
            Protocol::Messages => AuthStyle::XApiKey,
            Protocol::GenerateContent => AuthStyle::GoogApiKey,
        }
    }

    /// The version path segment the protocol's public API lives under, added to an `api_base`
    /// that has none (`https://api.anthropic.com` -> `/v1`).
    pub fn default_version_segment(self) -> &'static str {
        match self {
            Protocol::GenerateContent => "v1beta",
            _ => "v1",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the provider's key is presented upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthStyle {
    /// `Authorization: Bearer <key>` (OpenAI and compatibles).
    Bearer,
    /// `x-api-key: <key>` plus `anthropic-version` (Anthropic).
    XApiKey,
    /// `x-goog-api-key: <key>` (Google Generative Language API).
    GoogApiKey,
    /// No credential is sent (local servers).
    None,
}
