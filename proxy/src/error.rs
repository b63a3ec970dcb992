//! Every way a request can fail inside bitrouter, each knowing its status, whose fault it is,
//! and whether another attempt could succeed. Rendered once, in [`crate::render`].

use bitrouter_config::RouteError;
use bitrouter_filters::body::PeekError;
use bitrouter_filters::canonical::{CanonicalError, ErrorKind};

/// Whose fault an error is: decides log level and whether it counts against an upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The client sent something wrong.
    Downstream,
    /// The upstream failed or misbehaved.
    Upstream,
    /// bitrouter itself.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route for {method} {path}; bitrouter serves POST /v1/chat/completions, /v1/responses, /v1/messages, /v1beta/models/{{model}}:generateContent, /v1/embeddings, /v1/completions, /v1/rerank, /v1/moderations, /v1/images/generations, /v1/audio/{{speech,transcriptions,translations}} and GET /v1/models")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}; use {allowed}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allowed: &'static str,
    },
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("the request body is larger than the limit of {limit} bytes (server.max_body_bytes)")]
    BodyTooLarge { limit: usize },
    #[error("{0}")]
    BadBody(#[from] PeekError),
    #[error("the request has no `model` field; set it to a model id, `provider/model`, or a virtual model from bitrouter.yaml")]
    MissingModel,
    #[error("{0}")]
    Route(#[from] RouteError),
    /// A request or response that could not be translated between protocols (carries its
    /// own status and message).
    #[error("{}", .0.message)]
    Translate(CanonicalError),
    #[error("could not read the request body: {0}")]
    ClientBody(String),
    #[error("could not connect to provider `{provider}`: {detail}")]
    UpstreamConnect { provider: String, detail: String },
    #[error("provider `{provider}` did not answer in time: {detail}")]
    UpstreamTimeout { provider: String, detail: String },
    #[error("provider `{provider}` failed mid-response: {detail}")]
    UpstreamBroken { provider: String, detail: String },
    #[error("the client closed the connection")]
    ClientGone,
    /// A guardrail rule with the `block` action matched (upgoing: in the request, which never
    /// reaches the provider; downgoing: in the answer). Names the rule, never the matched text.
    #[error("{}", guardrail_message(rule, *upgoing))]
    GuardrailBlocked { rule: String, upgoing: bool },
    /// The caller's key may not do this (a policy's model or tool list, an admin route): names
    /// the policy, never the key.
    #[error("{message}")]
    Forbidden { message: String, code: &'static str },
    /// The key's `max_requests_per_minute` is used up: retry after `retry_after` seconds.
    #[error("{message}")]
    RateLimited { message: String, retry_after: u64 },
    /// The key's monthly budget cannot cover this request: no retry helps before `reset`.
    #[error("{message}")]
    BudgetExceeded { message: String, reset: String },
    /// Keys or budgets cannot be checked now (their database has not been read yet).
    #[error("{0}")]
    GovernanceUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn guardrail_message(rule: &str, upgoing: bool) -> String {
    if upgoing {
        format!("the request was blocked by the gateway's guardrail `{rule}`: it contains content this gateway does not send to models; remove it and retry")
    } else {
        format!("the response was blocked by the gateway's guardrail `{rule}`: the model's answer contains content this gateway does not return")
    }
}

impl ProxyError {
    /// A `map_err` mapper for failures that only a bug or a bad config can cause (a header
    /// value we built that `http` rejects): an internal error that says where it happened.
    pub fn internal<E: std::fmt::Display>(context: &'static str) -> impl Fn(E) -> ProxyError {
        move |e| ProxyError::Internal(format!("{context}: {e}"))
    }

    /// The status the client sees.
    pub fn status(&self) -> u16 {
        self.kind_and_status().1
    }

    pub fn fault(&self) -> Fault {
        match self {
            ProxyError::NotFound { .. }
            | ProxyError::MethodNotAllowed { .. }
            | ProxyError::Unauthorized(_)
            | ProxyError::BodyTooLarge { .. }
            | ProxyError::BadBody(_)
            | ProxyError::MissingModel
            | ProxyError::Route(_)
            | ProxyError::ClientBody(_)
            | ProxyError::ClientGone
            | ProxyError::GuardrailBlocked { .. }
            | ProxyError::Forbidden { .. }
            | ProxyError::RateLimited { .. }
            | ProxyError::BudgetExceeded { .. } => Fault::Downstream,
            ProxyError::GovernanceUnavailable(_) => Fault::Internal,
            ProxyError::Translate(e) if e.status < 500 => Fault::Downstream,
            ProxyError::Translate(_) => Fault::Upstream,
            ProxyError::Internal(_) => Fault::Internal,
            ProxyError::UpstreamConnect { .. }
            | ProxyError::UpstreamTimeout { .. }
            | ProxyError::UpstreamBroken { .. } => Fault::Upstream,
        }
    }

    /// Whether trying another upstream (or the same one later) could succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamTimeout { .. }
        )
    }

    fn kind_and_status(&self) -> (ErrorKind, u16) {
        let kind = match self {
            ProxyError::NotFound { .. } => ErrorKind::NotFound,
            ProxyError::MethodNotAllowed { .. } => return (ErrorKind::InvalidRequest, 405),
            // nginx's "client closed request": only ever seen in logs and metrics.
            ProxyError::ClientGone => return (ErrorKind::InvalidRequest, 499),
            ProxyError::GuardrailBlocked { .. } => ErrorKind::InvalidRequest,
            ProxyError::Unauthorized(_) => ErrorKind::Authentication,
            ProxyError::Forbidden { .. } => ErrorKind::PermissionDenied,
            ProxyError::RateLimited { .. } | ProxyError::BudgetExceeded { .. } => {
                ErrorKind::RateLimited
            }
            ProxyError::GovernanceUnavailable(_) => ErrorKind::Unavailable,
            ProxyError::BodyTooLarge { .. } => ErrorKind::RequestTooLarge,
            ProxyError::BadBody(_) | ProxyError::MissingModel | ProxyError::ClientBody(_) => {
                ErrorKind::InvalidRequest
            }
            ProxyError::Route(RouteError::UnknownModel { .. }) => ErrorKind::NotFound,
            ProxyError::Route(_) => ErrorKind::InvalidRequest,
            ProxyError::Translate(e) => return (e.kind, e.status),
            ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamBroken { .. } => {
                ErrorKind::BadGateway
            }
            ProxyError::UpstreamTimeout { .. } => ErrorKind::Timeout,
            ProxyError::Internal(_) => ErrorKind::Internal,
        };
        (kind, kind.status())
    }

    fn code(&self) -> Option<&'static str> {
        Some(match self {
            ProxyError::NotFound { .. } => "unknown_url",
            ProxyError::MethodNotAllowed { .. } => "method_not_allowed",
            ProxyError::Unauthorized(_) => "invalid_api_key",
            ProxyError::BodyTooLarge { .. } => "request_too_large",
            ProxyError::BadBody(PeekError::Malformed(_) | PeekError::NotAnObject) => "invalid_json",
            ProxyError::BadBody(_) => "invalid_type",
            ProxyError::MissingModel => "missing_model",
            ProxyError::Route(RouteError::UnknownModel { .. }) => "model_not_found",
            ProxyError::Route(RouteError::UnknownSuffix { .. }) => "unknown_model_variant",
            ProxyError::Route(RouteError::UnknownPreset { .. }) => "unknown_preset",
            ProxyError::Route(RouteError::VariantNoEndpoint { .. }) => "variant_has_no_endpoint",
            ProxyError::Route(RouteError::EmptyModel) => "missing_model",
            ProxyError::Route(RouteError::InvalidModel { .. }) => "invalid_model",
            ProxyError::Translate(e) => return e.code,
            ProxyError::ClientBody(_) | ProxyError::ClientGone => return None,
            ProxyError::UpstreamConnect { .. } => "upstream_connect_error",
            ProxyError::UpstreamTimeout { .. } => "upstream_timeout",
            ProxyError::UpstreamBroken { .. } => "upstream_error",
            ProxyError::Internal(_) => "internal_error",
            ProxyError::GuardrailBlocked { .. } => "guardrail_blocked",
            ProxyError::Forbidden { code, .. } => code,
            ProxyError::RateLimited { .. } => "rate_limit_exceeded",
            ProxyError::BudgetExceeded { .. } => "budget_exceeded",
            ProxyError::GovernanceUnavailable(_) => "keys_unavailable",
        })
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ProxyError::MissingModel | ProxyError::Route(_) => Some("model"),
            ProxyError::Translate(e) => e.param,
            ProxyError::BadBody(PeekError::ModelNotString) => Some("model"),
            ProxyError::BadBody(PeekError::StreamNotBool) => Some("stream"),
            _ => None,
        }
    }

    /// Response headers the error needs besides its body: `retry-after` on a rate limit; on an
    /// exhausted budget `x-should-retry: false` (the official SDKs retry a 429 unless told not
    /// to, and no retry helps before the month ends) and when it resets.
    pub fn headers(&self) -> Vec<(http::header::HeaderName, http::HeaderValue)> {
        match self {
            ProxyError::RateLimited { retry_after, .. } => {
                vec![(
                    http::header::RETRY_AFTER,
                    http::HeaderValue::from(*retry_after),
                )]
            }
            ProxyError::BudgetExceeded { reset, .. } => {
                let mut h = vec![(
                    http::header::HeaderName::from_static("x-should-retry"),
                    http::HeaderValue::from_static("false"),
                )];
                if let Ok(v) = http::HeaderValue::from_str(reset) {
                    h.push((
                        http::header::HeaderName::from_static("x-bitrouter-budget-reset"),
                        v,
                    ));
                }
                h
            }
            _ => Vec::new(),
        }
    }

    /// The protocol-neutral form, ready for [`crate::render`].
    pub fn to_canonical(&self) -> CanonicalError {
        let (kind, status) = self.kind_and_status();
        CanonicalError {
            kind,
            status,
            message: self.to_string(),
            code: self.code(),
            param: self.param(),
        }
    }
}
