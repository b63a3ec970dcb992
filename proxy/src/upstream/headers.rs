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

/// Where an internal error happened (see `ProxyError::internal`): the upstream request, or a
/// response header we write to the client.
const BUILDING: &str = "building upstream request";
pub const RESPONSE_HEADER: &str = "response header";

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
///
/// Built on `http`'s own types and converted, with no case map: names go out as `http` spells
/// them (canonical case for standard headers, lower case otherwise), which every HTTP/1 server
/// accepts and h2 requires. Pingora's `insert_header` would copy every name into a
/// case-preserving form and parse it back, even with no map to keep the copy in.
pub fn upstream_request(
    provider: &Provider,
    account: &Account,
    path: &str,
    client: &[(HeaderName, HeaderValue)],
    body_len: usize,
    h2: bool,
) -> Result<RequestHeader, ProxyError> {
    let (mut parts, ()) = http::Request::new(()).into_parts();
    parts.method = http::Method::POST;
    let origin = &provider.origin;
    let default_port = if origin.tls { 443 } else { 80 };
    let authority = if origin.port == default_port {
        origin.host.clone()
    } else {
        format!("{}:{}", origin.host, origin.port)
    };
    let headers = &mut parts.headers;
    headers.reserve(client.len() + 6);
    if h2 {
        parts.uri = http::Uri::builder()
            .scheme(if origin.tls { "https" } else { "http" })
            .authority(authority.as_str())
            .path_and_query(path)
            .build()
            .map_err(ProxyError::internal(BUILDING))?;
        parts.version = Version::HTTP_2;
    } else {
        parts.uri = http::Uri::try_from(path).map_err(ProxyError::internal(BUILDING))?;
        headers.insert(
            http::header::HOST,
            HeaderValue::try_from(authority).map_err(ProxyError::internal(BUILDING))?,
        );
    }
    for (name, value) in client {
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body_len));
    headers.insert(
        http::header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    for (name, value) in &provider.headers {
        if headers.get(name.as_str()).is_none() {
            headers.insert(
                HeaderName::try_from(name.as_str()).map_err(ProxyError::internal(BUILDING))?,
                HeaderValue::try_from(value.as_str()).map_err(ProxyError::internal(BUILDING))?,
            );
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
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    Ok(RequestHeader::from(parts))
}

/// A response header with `status` and `headers`, no case map (see [`upstream_request`]).
pub fn response(status: http::StatusCode, headers: HeaderMap) -> ResponseHeader {
    let (mut parts, ()) = http::Response::new(()).into_parts();
    parts.status = status;
    parts.headers = headers;
    ResponseHeader::from(parts)
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
    /// A `count_tokens` answer from the provider itself (said in `x-bitrouter-token-count`).
    pub counted: bool,
}

/// The `x-bitrouter-*` response headers, as ready-made names.
pub const X_PROVIDER: HeaderName = HeaderName::from_static("x-bitrouter-provider");
pub const X_MODEL: HeaderName = HeaderName::from_static("x-bitrouter-model");
pub const X_ACCOUNT: HeaderName = HeaderName::from_static("x-bitrouter-account");
pub const X_ATTEMPTS: HeaderName = HeaderName::from_static("x-bitrouter-attempts");
pub const X_DROPPED: HeaderName = HeaderName::from_static("x-bitrouter-dropped-params");
/// Where a `count_tokens` answer came from: `provider` or `estimated`.
pub const X_TOKEN_COUNT: HeaderName = HeaderName::from_static("x-bitrouter-token-count");

impl Decision<'_> {
    fn apply(&self, headers: &mut HeaderMap) {
        for (name, value) in [
            (X_PROVIDER, self.provider),
            (X_MODEL, self.service_id),
            (X_ACCOUNT, self.account),
        ] {
            if let Ok(v) = HeaderValue::from_str(value) {
                headers.insert(name, v);
            }
        }
        headers.insert(X_ATTEMPTS, HeaderValue::from(self.attempts));
        if self.counted {
            headers.insert(X_TOKEN_COUNT, HeaderValue::from_static("provider"));
        }
    }
}

/// The response header relayed to the client: the upstream's status and headers minus
/// hop-by-hop ones, plus where the request went.
pub fn downstream_response(
    upstream: &ResponseHeader,
    decision: &Decision<'_>,
) -> Result<ResponseHeader, ProxyError> {
    let mut headers = HeaderMap::with_capacity(upstream.headers.len() + 4);
    for (name, value) in &upstream.headers {
        if DROP_DOWNSTREAM.contains(&name.as_str()) {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    decision.apply(&mut headers);
    Ok(response(upstream.status, headers))
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
    let status =
        http::StatusCode::from_u16(status).map_err(ProxyError::internal(RESPONSE_HEADER))?;
    let mut headers = HeaderMap::with_capacity(10);
    for (name, value) in &upstream.headers {
        if keep_when_translated(name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).map_err(ProxyError::internal(RESPONSE_HEADER))?,
    );
    if content_type.starts_with("text/event-stream") {
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    decision.apply(&mut headers);
    if !dropped.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&dropped.join(", ")) {
            headers.insert(X_DROPPED, v);
        }
    }
    Ok(response(status, headers))
}
