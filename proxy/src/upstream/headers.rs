//! The headers of the upstream request and of the response relayed to the client.
//!
//! Upstream: the client's own credential never leaves bitrouter; the provider's key is set in
//! the provider's auth style. Client headers that describe the API call (`anthropic-beta`,
//! `anthropic-version`, `openai-beta`, `user-agent`, SDK telemetry, `accept`) are forwarded on a
//! same-protocol hop; hop-by-hop headers and those tied to the client's account are not.

use crate::error::ProxyError;
use bitrouter_config::{Account, AuthStyle, Provider, Secret};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Version};
use pingora_http::{RequestHeader, ResponseHeader};

/// Request headers never forwarded upstream.
const DROP_UPSTREAM: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
    "expect",
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "accept-encoding",
    "openai-organization",
    "openai-project",
    "anthropic-dangerous-direct-browser-access",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
];

/// Response headers never relayed to the client: framing is Pingora's job on our side, and
/// `server`, `etag`, `last-modified`, `accept-ranges` describe the provider's front end and
/// resource, not the answer the client got from bitrouter (it could not range-request it).
const DROP_DOWNSTREAM: &[&str] = &[
    "server",
    "etag",
    "last-modified",
    "accept-ranges",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "alt-svc",
    "set-cookie",
];

fn internal(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Internal(format!("building upstream request: {e}"))
}

/// The client's headers that may go upstream, taken once per request (every attempt reuses
/// them; the session stays borrowed mutably while attempts run).
pub fn forwardable(client: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    client
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !DROP_UPSTREAM.contains(&n) && !n.starts_with("x-bitrouter-")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The request header for `provider` at `path`, carrying the [`forwardable`] client headers.
pub fn upstream_request(
    provider: &Provider,
    account: &Account,
    path: &str,
    client: &[(HeaderName, HeaderValue)],
    body_len: usize,
    h2: bool,
) -> Result<RequestHeader, ProxyError> {
    let mut req =
        RequestHeader::build("POST", path.as_bytes(), Some(client.len() + 6)).map_err(internal)?;
    let origin = &provider.origin;
    let default_port = if origin.tls { 443 } else { 80 };
    let authority = if origin.port == default_port {
        origin.host.clone()
    } else {
        format!("{}:{}", origin.host, origin.port)
    };
    if h2 {
        let uri = http::Uri::builder()
            .scheme(if origin.tls { "https" } else { "http" })
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(internal)?;
        req.set_uri(uri);
        req.set_version(Version::HTTP_2);
    } else {
        req.insert_header(http::header::HOST, authority)
            .map_err(internal)?;
    }
    for (name, value) in client {
        req.append_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    req.insert_header(http::header::CONTENT_TYPE, "application/json")
        .map_err(internal)?;
    req.insert_header(http::header::CONTENT_LENGTH, body_len.to_string())
        .map_err(internal)?;
    req.insert_header(http::header::ACCEPT_ENCODING, "identity")
        .map_err(internal)?;
    for (name, value) in &provider.headers {
        if req.headers.get(name.as_str()).is_none() {
            req.insert_header(name.clone(), value.as_str())
                .map_err(internal)?;
        }
    }
    if let Some(key) = &account.api_key {
        if let Some((name, value)) = auth_header(provider.auth, key) {
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                ProxyError::Internal(format!(
                    "an api_key of provider `{}` (account `{}`) contains characters not allowed in a header",
                    provider.id, account.label
                ))
            })?;
            value.set_sensitive(true);
            req.insert_header(HeaderName::from_static(name), value)
                .map_err(internal)?;
        }
    }
    Ok(req)
}

/// The header carrying `key` in `auth` style (`None` for providers that take no key).
pub fn auth_header(auth: AuthStyle, key: &Secret) -> Option<(&'static str, String)> {
    match auth {
        AuthStyle::Bearer => Some(("authorization", format!("Bearer {}", key.expose()))),
        AuthStyle::XApiKey => Some(("x-api-key", key.expose().to_string())),
        AuthStyle::GoogApiKey => Some(("x-goog-api-key", key.expose().to_string())),
        AuthStyle::None => None,
    }
}

/// Where a request went, reported to the client in `x-bitrouter-*` headers.
pub struct Decision<'a> {
    pub provider: &'a str,
    /// The upstream model id.
    pub service_id: &'a str,
    pub account: &'a str,
    /// Upstream attempts made, this one included.
    pub attempts: usize,
}

impl Decision<'_> {
    fn apply(&self, resp: &mut ResponseHeader) -> Result<(), ProxyError> {
        resp.insert_header("x-bitrouter-provider", self.provider)
            .map_err(internal)?;
        if let Ok(v) = HeaderValue::from_str(self.service_id) {
            resp.insert_header("x-bitrouter-model", v)
                .map_err(internal)?;
        }
        if let Ok(v) = HeaderValue::from_str(self.account) {
            resp.insert_header("x-bitrouter-account", v)
                .map_err(internal)?;
        }
        resp.insert_header("x-bitrouter-attempts", self.attempts.to_string())
            .map_err(internal)?;
        Ok(())
    }
}

/// The response header relayed to the client: the upstream's status and headers minus
/// hop-by-hop ones, plus where the request went.
pub fn downstream_response(
    upstream: &ResponseHeader,
    decision: &Decision<'_>,
) -> Result<ResponseHeader, ProxyError> {
    let mut resp = ResponseHeader::build(upstream.status, Some(upstream.headers.len() + 4))
        .map_err(internal)?;
    for (name, value) in &upstream.headers {
        if DROP_DOWNSTREAM.contains(&name.as_str()) {
            continue;
        }
        resp.append_header(name.clone(), value.clone())
            .map_err(internal)?;
    }
    decision.apply(&mut resp)?;
    Ok(resp)
}

/// Upstream headers still meaningful after translation: rate-limit state and request ids.
fn keep_when_translated(name: &str) -> bool {
    matches!(name, "retry-after" | "x-request-id" | "request-id")
        || name.starts_with("x-ratelimit-")
        || name.starts_with("anthropic-ratelimit-")
}

/// The response header for a translated response: our status and content type, the upstream's
/// rate-limit and request-id headers, where the request went, and what the translation dropped.
pub fn translated_response(
    status: u16,
    upstream: &ResponseHeader,
    content_type: &str,
    decision: &Decision<'_>,
    dropped: &[String],
) -> Result<ResponseHeader, ProxyError> {
    let mut resp = ResponseHeader::build(status, Some(10)).map_err(internal)?;
    for (name, value) in &upstream.headers {
        if keep_when_translated(name.as_str()) {
            resp.append_header(name.clone(), value.clone())
                .map_err(internal)?;
        }
    }
    resp.insert_header(http::header::CONTENT_TYPE, content_type)
        .map_err(internal)?;
    if content_type.starts_with("text/event-stream") {
        resp.insert_header(http::header::CACHE_CONTROL, "no-cache")
            .map_err(internal)?;
    }
    decision.apply(&mut resp)?;
    if !dropped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&dropped.join(", ")) {
            resp.insert_header("x-bitrouter-dropped-params", v)
                .map_err(internal)?;
        }
    }
    Ok(resp)
}
