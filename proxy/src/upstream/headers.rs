//! The headers of the upstream request and of the response relayed to the client.
//!
//! Upstream: an allow-list. Only client headers that describe the API call go to the provider:
//! content negotiation, the providers' API version and beta flags, idempotency keys, tracing
//! headers and `user-agent` ([`FORWARDED`]), plus what the provider's `forward_headers` names.
//! Anything else (unknown credentials such as `api-key` or `ocp-apim-subscription-key`,
//! cookies, SDK telemetry, internal headers) stays here: a deny-list would leak every credential
//! header nobody thought of. The client's own credential never leaves bitrouter; the
//! provider's key is set in the provider's auth style, and the operator's configured provider
//! `headers` replace a client header of the same name.

use crate::error::ProxyError;
use bitrouter_config::{Account, AuthStyle, Provider, Secret, UNFORWARDABLE_HEADERS};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Version};
use pingora_http::{RequestHeader, ResponseHeader};

/// Client headers forwarded to every provider (lower case). `openai-organization` and
/// `openai-project` are not among them: they name the client's OpenAI account, and OpenAI
/// rejects a request whose organization does not match the key's (the operator's) with a 401;
/// an operator whose key belongs to several organizations can name them in `forward_headers`.
pub const FORWARDED: &[&str] = &[
    "accept",
    "accept-language",
    "anthropic-beta",
    "anthropic-version",
    "openai-beta",
    "idempotency-key",
    "user-agent",
    // Tracing: W3C trace context and baggage, request ids, Zipkin B3.
    "traceparent",
    "tracestate",
    "baggage",
    "x-request-id",
    "x-client-request-id",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// Whether the client header `name` (lower case, as `http` keeps names) goes to `provider`.
fn forwarded_to(provider: &Provider, name: &str) -> bool {
    FORWARDED.contains(&name) || provider.forward_headers.iter().any(|h| h == name)
}

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

/// The client's headers that may go upstream to some provider, taken once per request (every
/// attempt reuses them; the session stays borrowed mutably while attempts run):
/// [`upstream_request`] keeps, per provider, those on the allow-list.
pub fn forwardable(client: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    client
        .iter()
        .filter(|(name, _)| {
            let n = name.as_str();
            !UNFORWARDABLE_HEADERS.contains(&n) && !n.starts_with("x-bitrouter-")
        })
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The request header for `provider` at `path`, carrying those [`forwardable`] client headers
/// that are on the allow-list ([`FORWARDED`] and the provider's `forward_headers`), then the
/// provider's configured `headers` (replacing a client header of the same name) and its key.
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
        if forwarded_to(provider, name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
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
    // The operator's headers win: `insert` replaces every client value of that name.
    for (name, value) in &provider.headers {
        headers.insert(
            HeaderName::try_from(name.as_str()).map_err(ProxyError::internal(BUILDING))?,
            HeaderValue::try_from(value.as_str()).map_err(ProxyError::internal(BUILDING))?,
        );
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
#[derive(Clone, Copy)]
pub struct Decision<'a> {
    pub provider: &'a str,
    /// The upstream model id.
    pub service_id: &'a str,
    pub account: &'a str,
    /// Upstream attempts made, this one included.
    pub attempts: usize,
    /// A `count_tokens` answer from the provider itself (said in `x-bitrouter-token-count`).
    pub counted: bool,
    /// Guardrail rules that touched this request or response (`rule=action`).
    pub guardrails: &'a [String],
}

/// The `x-bitrouter-*` response headers, as ready-made names.
pub const X_PROVIDER: HeaderName = HeaderName::from_static("x-bitrouter-provider");
pub const X_MODEL: HeaderName = HeaderName::from_static("x-bitrouter-model");
pub const X_ACCOUNT: HeaderName = HeaderName::from_static("x-bitrouter-account");
pub const X_ATTEMPTS: HeaderName = HeaderName::from_static("x-bitrouter-attempts");
pub const X_DROPPED: HeaderName = HeaderName::from_static("x-bitrouter-dropped-params");
/// Where a `count_tokens` answer came from: `provider` or `estimated`.
pub const X_TOKEN_COUNT: HeaderName = HeaderName::from_static("x-bitrouter-token-count");
/// The guardrail rules that matched, `rule=action,...` (never the matched text).
pub const X_GUARDRAILS: HeaderName = HeaderName::from_static("x-bitrouter-guardrails");

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
        if !self.guardrails.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.guardrails.join(",")) {
                headers.insert(X_GUARDRAILS, v);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::{load_str, MapEnv};

    fn provider(extra: &str) -> Provider {
        let yaml = format!(
            "providers:\n  p:\n    api_base: http://up.example:8080/v1\n    api_key: sk-operator\n{extra}"
        );
        match load_str(
            &yaml,
            "t.yaml",
            &MapEnv::new(Vec::<(String, String)>::new()),
        ) {
            Ok(c) => Provider::clone(&c.providers[0]),
            Err(e) => panic!("{e}"),
        }
    }

    fn client(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::try_from(*n).unwrap(),
                HeaderValue::try_from(*v).unwrap(),
            );
        }
        h
    }

    fn build(p: &Provider, c: &HeaderMap) -> HeaderMap {
        let fwd = forwardable(c);
        let req =
            upstream_request(p, &p.accounts[0], "/v1/chat/completions", &fwd, 2, false).unwrap();
        req.headers.clone()
    }

    #[test]
    fn only_allow_listed_client_headers_go_upstream() {
        let p = provider("");
        let c = client(&[
            ("authorization", "Bearer client-secret"),
            ("api-key", "client-secret"),
            ("ocp-apim-subscription-key", "client-secret"),
            ("proxy-authorization", "Basic client-secret"),
            ("cookie", "session=client-secret"),
            ("x-custom-secret", "client-secret"),
            ("x-stainless-os", "Linux"),
            ("openai-organization", "org-client"),
            ("x-forwarded-for", "10.0.0.1"),
            ("x-bitrouter-debug", "1"),
            ("accept", "application/json"),
            ("anthropic-beta", "tools-2024-04-04"),
            ("openai-beta", "assistants=v2"),
            ("idempotency-key", "idem-1"),
            (
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            ("x-request-id", "req-1"),
            ("x-b3-traceid", "abc"),
            ("user-agent", "OpenAI/Python 1.0"),
        ]);
        let h = build(&p, &c);
        for v in h.values() {
            assert!(
                !v.to_str().unwrap_or_default().contains("client-secret"),
                "{h:?}"
            );
        }
        for gone in [
            "api-key",
            "ocp-apim-subscription-key",
            "proxy-authorization",
            "cookie",
            "x-custom-secret",
            "x-stainless-os",
            "openai-organization",
            "x-forwarded-for",
            "x-bitrouter-debug",
        ] {
            assert!(h.get(gone).is_none(), "{gone} forwarded: {h:?}");
        }
        for (kept, value) in [
            ("accept", "application/json"),
            ("anthropic-beta", "tools-2024-04-04"),
            ("openai-beta", "assistants=v2"),
            ("idempotency-key", "idem-1"),
            ("x-request-id", "req-1"),
            ("x-b3-traceid", "abc"),
            ("user-agent", "OpenAI/Python 1.0"),
        ] {
            assert_eq!(
                h.get(kept).and_then(|v| v.to_str().ok()),
                Some(value),
                "{kept}"
            );
        }
        assert!(h.get("traceparent").is_some());
        assert_eq!(h["authorization"], "Bearer sk-operator");
        assert_eq!(h["host"], "up.example:8080");
    }

    #[test]
    fn forward_headers_extend_the_allow_list_for_that_provider() {
        let c = client(&[("x-tenant", "acme"), ("openai-organization", "org-1")]);
        let with = provider("    forward_headers: [X-Tenant, openai-organization]\n");
        let h = build(&with, &c);
        assert_eq!(h["x-tenant"], "acme");
        assert_eq!(h["openai-organization"], "org-1");
        let without = provider("");
        let h = build(&without, &c);
        assert!(h.get("x-tenant").is_none() && h.get("openai-organization").is_none());
    }

    #[test]
    fn operator_headers_win_over_the_clients() {
        let p = provider(
            "    headers: { anthropic-version: '2024-01-01', X-Team: core }\n    forward_headers: [x-team]\n",
        );
        let c = client(&[
            ("anthropic-version", "2023-06-01"),
            ("x-team", "intruder"),
            ("x-team", "intruder-2"),
        ]);
        let h = build(&p, &c);
        let all = |n: &str| -> Vec<&str> {
            h.get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap_or_default())
                .collect()
        };
        assert_eq!(all("anthropic-version"), ["2024-01-01"]);
        assert_eq!(all("x-team"), ["core"]);
        // A client header the operator did not set still goes through.
        let p = provider("");
        let h = build(&p, &client(&[("anthropic-version", "2023-06-01")]));
        assert_eq!(h["anthropic-version"], "2023-06-01");
    }
}
