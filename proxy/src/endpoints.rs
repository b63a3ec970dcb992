//! The OpenAI-shaped endpoints besides chat that inference servers (vLLM, SGLang, TGI,
//! llama.cpp, Ollama) and SDKs use: embeddings, legacy completions, rerank, moderations,
//! images, speech, transcriptions and translations.
//!
//! Each is routed by its `model` like chat and goes, same protocol, to a provider that speaks
//! OpenAI's shape, at the same sub-path under the provider's `api_base`. The one translation is
//! embeddings to Gemini's `batchEmbedContents` ([`bitrouter_filters::embeddings`]). The two
//! audio uploads are `multipart/form-data`: the model is a form field, read from a bounded
//! prefix, and the rest of the body streams through ([`crate::phases::upload`]).

/// An OpenAI-shaped endpoint other than chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/embeddings`
    Embeddings,
    /// `POST /v1/completions` (legacy text completions; may stream SSE).
    Completions,
    /// `POST /v1/rerank` and `POST /rerank` (vLLM / TEI / Cohere shape).
    Rerank,
    /// `POST /v1/moderations`
    Moderations,
    /// `POST /v1/images/generations`
    Images,
    /// `POST /v1/audio/speech` (binary audio back, possibly chunked).
    Speech,
    /// `POST /v1/audio/transcriptions` (multipart upload).
    Transcriptions,
    /// `POST /v1/audio/translations` (multipart upload).
    Translations,
}

/// Every endpoint, for tests and listings.
pub const ALL: [Endpoint; 8] = [
    Endpoint::Embeddings,
    Endpoint::Completions,
    Endpoint::Rerank,
    Endpoint::Moderations,
    Endpoint::Images,
    Endpoint::Speech,
    Endpoint::Transcriptions,
    Endpoint::Translations,
];

impl Endpoint {
    /// The endpoint a path (without `/v1`, no trailing slash) names.
    pub fn from_path(path: &str) -> Option<Endpoint> {
        let path = path.strip_prefix("/v1").unwrap_or(path);
        Some(match path {
            "/embeddings" => Endpoint::Embeddings,
            "/completions" => Endpoint::Completions,
            "/rerank" => Endpoint::Rerank,
            "/moderations" => Endpoint::Moderations,
            "/images/generations" => Endpoint::Images,
            "/audio/speech" => Endpoint::Speech,
            "/audio/transcriptions" => Endpoint::Transcriptions,
            "/audio/translations" => Endpoint::Translations,
            _ => return None,
        })
    }

    /// The sub-path after the provider's version segment (`/v1` + this).
    pub fn upstream_suffix(self) -> &'static str {
        match self {
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Completions => "/completions",
            Endpoint::Rerank => "/rerank",
            Endpoint::Moderations => "/moderations",
            Endpoint::Images => "/images/generations",
            Endpoint::Speech => "/audio/speech",
            Endpoint::Transcriptions => "/audio/transcriptions",
            Endpoint::Translations => "/audio/translations",
        }
    }

    /// The label of logs, metrics and ledger rows.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Embeddings => "embeddings",
            Endpoint::Completions => "completions",
            Endpoint::Rerank => "rerank",
            Endpoint::Moderations => "moderations",
            Endpoint::Images => "images",
            Endpoint::Speech => "audio_speech",
            Endpoint::Transcriptions => "audio_transcriptions",
            Endpoint::Translations => "audio_translations",
        }
    }

    /// A `multipart/form-data` upload whose body streams through.
    pub fn multipart(self) -> bool {
        matches!(self, Endpoint::Transcriptions | Endpoint::Translations)
    }

    /// Whether the answer is tokens whose count the request bounds (`max_tokens`): budgets
    /// reserve the output worst case for these, the input bound alone for the others.
    pub fn has_token_output(self) -> bool {
        matches!(self, Endpoint::Completions)
    }
}

/// Largest multipart prefix read to find the `model` field: the openai SDKs send the form
/// fields before the file, so the model arrives within the first few hundred bytes.
pub const MAX_MULTIPART_PREFIX: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_with_and_without_v1() {
        for e in ALL {
            let suffix = e.upstream_suffix();
            assert_eq!(Endpoint::from_path(suffix), Some(e));
            assert_eq!(Endpoint::from_path(&format!("/v1{suffix}")), Some(e));
        }
        assert_eq!(Endpoint::from_path("/v2/embeddings"), None);
        assert_eq!(Endpoint::from_path("/v1/audio"), None);
    }
}
