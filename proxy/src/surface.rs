//! Which API a request is for, from its method and path alone.
//!
//! Clients reach us with base URLs written both with and without `/v1` (the openai SDK wants
//! `/v1`, users often set `OPENAI_BASE_URL=http://localhost:4356`), and google-genai calls
//! `/v1/models/...` unless told `/v1beta`, with a `provider/model` name unescaped in the path.
//! All of those forms land here.

use crate::endpoints::Endpoint;
use bitrouter_config::Protocol;

/// The API surface a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `POST /v1/chat/completions`
    ChatCompletions,
    /// `POST /v1/responses`
    Responses,
    /// `POST /v1/messages`
    Messages,
    /// `POST /v1/messages/count_tokens` (Claude Code asks before long prompts).
    CountTokens,
    /// `POST /v1beta/models/{model}:generateContent` or `:streamGenerateContent`; the model is
    /// in the path ([`gemini_model`]).
    Gemini { stream: bool },
    /// An OpenAI-shaped endpoint other than chat (`/v1/embeddings`, ...): same protocol to
    /// OpenAI-shaped upstreams, see [`crate::endpoints`].
    Endpoint(Endpoint),
    /// `GET /v1/models`
    ListModels,
    /// `GET /health`
    Health,
    /// `GET /health/upstreams`: live health of every endpoint and account.
    UpstreamHealth,
    /// `GET /metrics`
    Metrics,
    /// A known path with the wrong method.
    WrongMethod {
        allowed: &'static str,
        protocol: Protocol,
    },
    /// Anything else.
    Unknown,
}

impl Surface {
    /// The wire protocol of the surface (for LLM surfaces), used to parse the body and to render
    /// errors.
    pub fn protocol(&self) -> Option<Protocol> {
        match self {
            Surface::ChatCompletions => Some(Protocol::ChatCompletions),
            Surface::Responses => Some(Protocol::Responses),
            Surface::Messages | Surface::CountTokens => Some(Protocol::Messages),
            Surface::Gemini { .. } => Some(Protocol::GenerateContent),
            // Errors come in OpenAI's JSON, as the endpoint's own API sends them.
            Surface::Endpoint(_) => Some(Protocol::ChatCompletions),
            Surface::WrongMethod { protocol, .. } => Some(*protocol),
            _ => None,
        }
    }

    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Surface::ChatCompletions => "chat_completions",
            Surface::Responses => "responses",
            Surface::Messages => "messages",
            Surface::CountTokens => "count_tokens",
            Surface::Gemini { .. } => "generate_content",
            Surface::Endpoint(e) => e.label(),
            Surface::ListModels => "models",
            Surface::Health => "health",
            Surface::UpstreamHealth => "upstream_health",
            Surface::Metrics => "metrics",
            Surface::WrongMethod { .. } => "wrong_method",
            Surface::Unknown => "unknown",
        }
    }
}

/// Classifies a request. `path` excludes the query string.
pub fn classify(method: &str, path: &str) -> Surface {
    let is_post = method.eq_ignore_ascii_case("POST");
    let is_get = method.eq_ignore_ascii_case("GET") || method.eq_ignore_ascii_case("HEAD");
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let llm = |s: Surface, p: Protocol| {
        if is_post {
            s
        } else {
            Surface::WrongMethod {
                allowed: "POST",
                protocol: p,
            }
        }
    };
    match trimmed {
        "/v1/chat/completions" | "/chat/completions" => {
            return llm(Surface::ChatCompletions, Protocol::ChatCompletions)
        }
        "/v1/responses" | "/responses" => return llm(Surface::Responses, Protocol::Responses),
        "/v1/messages" | "/messages" => return llm(Surface::Messages, Protocol::Messages),
        "/v1/messages/count_tokens" | "/messages/count_tokens" => {
            return llm(Surface::CountTokens, Protocol::Messages)
        }
        "/v1/models" | "/models" if is_get => return Surface::ListModels,
        "/health" | "/healthz" if is_get => return Surface::Health,
        "/health/upstreams" if is_get => return Surface::UpstreamHealth,
        "/metrics" if is_get => return Surface::Metrics,
        _ => {}
    }
    if let Some(endpoint) = Endpoint::from_path(trimmed) {
        return llm(Surface::Endpoint(endpoint), Protocol::ChatCompletions);
    }
    if let Some(stream) = gemini_action(path) {
        if !is_post {
            return Surface::WrongMethod {
                allowed: "POST",
                protocol: Protocol::GenerateContent,
            };
        }
        return Surface::Gemini { stream };
    }
    Surface::Unknown
}

/// The `model:action` part of a Gemini path, if `path` is one.
fn gemini_parts(path: &str) -> Option<(&str, &str)> {
    ["/v1beta/models/", "/v1/models/", "/v1alpha/models/"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))?
        .rsplit_once(':')
}

/// Whether `path` is a Gemini generate call, and then whether it streams.
fn gemini_action(path: &str) -> Option<bool> {
    match gemini_parts(path)?.1 {
        "generateContent" => Some(false),
        "streamGenerateContent" => Some(true),
        _ => None,
    }
}

/// The model named in a Gemini path (percent-decoded, without a `models/` prefix).
pub fn gemini_model(path: &str) -> Option<String> {
    let (model, _) = gemini_parts(path)?;
    let model = percent_decode(model);
    Some(model.strip_prefix("models/").unwrap_or(&model).to_string())
}

/// For a path we do not serve, the protocol its caller most likely speaks, so even a 404 comes
/// in a format the client's SDK can parse.
pub fn guess_protocol(path: &str, headers: &http::HeaderMap) -> Protocol {
    if path.contains("/models/") && path.contains(':') || headers.contains_key("x-goog-api-key") {
        Protocol::GenerateContent
    } else if path.contains("messages") || headers.contains_key("anthropic-version") {
        Protocol::Messages
    } else if path.contains("responses") {
        Protocol::Responses
    } else {
        Protocol::ChatCompletions
    }
}

/// Decodes `%XX` escapes (google-genai may or may not escape a `/` in the model name).
/// Invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    if !bytes.contains(&b'%') {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `name` in a query string, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_decode(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_with_and_without_v1() {
        assert_eq!(
            classify("POST", "/v1/chat/completions"),
            Surface::ChatCompletions
        );
        assert_eq!(
            classify("POST", "/chat/completions"),
            Surface::ChatCompletions
        );
        assert_eq!(classify("POST", "/v1/responses/"), Surface::Responses);
        assert_eq!(classify("POST", "/responses"), Surface::Responses);
        assert_eq!(classify("POST", "/v1/messages"), Surface::Messages);
        assert_eq!(classify("GET", "/v1/models"), Surface::ListModels);
        assert_eq!(classify("GET", "/models"), Surface::ListModels);
        assert_eq!(
            classify("POST", "/v1/messages/count_tokens"),
            Surface::CountTokens
        );
    }

    #[test]
    fn openai_endpoints() {
        assert_eq!(
            classify("POST", "/v1/embeddings"),
            Surface::Endpoint(Endpoint::Embeddings)
        );
        assert_eq!(
            classify("POST", "/rerank"),
            Surface::Endpoint(Endpoint::Rerank)
        );
        assert_eq!(
            classify("POST", "/audio/transcriptions/"),
            Surface::Endpoint(Endpoint::Transcriptions)
        );
        assert_eq!(classify("POST", "/v1/embeddings").label(), "embeddings");
        assert!(matches!(
            classify("GET", "/v1/embeddings"),
            Surface::WrongMethod { .. }
        ));
    }

    #[test]
    fn gemini_paths() {
        let gemini = |path: &str| (classify("POST", path), gemini_model(path));
        assert_eq!(
            gemini("/v1beta/models/gemini-2.5-pro:generateContent"),
            (
                Surface::Gemini { stream: false },
                Some("gemini-2.5-pro".into())
            )
        );
        assert_eq!(
            gemini("/v1/models/openai/gpt-4o:streamGenerateContent"),
            (
                Surface::Gemini { stream: true },
                Some("openai/gpt-4o".into())
            )
        );
        assert_eq!(
            gemini("/v1beta/models/openai%2Fgpt-4o:generateContent"),
            (
                Surface::Gemini { stream: false },
                Some("openai/gpt-4o".into())
            )
        );
        assert_eq!(
            gemini("/v1beta/models/ollama/llama3.1:8b:generateContent"),
            (
                Surface::Gemini { stream: false },
                Some("ollama/llama3.1:8b".into())
            )
        );
        assert_eq!(
            classify("POST", "/v1beta/models/x:embedContent"),
            Surface::Unknown
        );
    }

    #[test]
    fn wrong_method_and_unknown() {
        assert!(matches!(
            classify("GET", "/v1/chat/completions"),
            Surface::WrongMethod {
                protocol: Protocol::ChatCompletions,
                ..
            }
        ));
        assert_eq!(classify("POST", "/v2/whatever"), Surface::Unknown);
        assert_eq!(classify("GET", "/"), Surface::Unknown);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%2Fb"), "a/b");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(
            query_param(Some("alt=sse&key=a%2Bb"), "key").as_deref(),
            Some("a+b")
        );
        assert_eq!(query_param(Some("alt=sse"), "key"), None);
    }
}
