//! A protocol-neutral error: what went wrong, in words a client can act on, and the HTTP status.
//! Each protocol module encodes it in that protocol's own error JSON.

/// The class of an error; decides the HTTP status and each protocol's error `type`/`status` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is wrong (malformed JSON, missing field, bad parameter): 400.
    InvalidRequest,
    /// Missing or wrong credential: 401.
    Authentication,
    /// Credential valid but not allowed: 403.
    PermissionDenied,
    /// Unknown model or path: 404.
    NotFound,
    /// Body larger than the limit: 413.
    RequestTooLarge,
    /// Too many requests: 429.
    RateLimited,
    /// Bitrouter itself failed: 500.
    Internal,
    /// The upstream could not be reached or answered nonsense: 502.
    BadGateway,
    /// The upstream is overloaded or unavailable: 503.
    Unavailable,
    /// The upstream did not answer in time: 504.
    Timeout,
}

impl ErrorKind {
    /// A short, stable snake_case name (the ledger's `error_kind`, logs).
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::Internal => "internal",
            ErrorKind::BadGateway => "bad_gateway",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
        }
    }

    /// The HTTP status this kind is answered with unless an upstream status says otherwise.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::PermissionDenied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimited => 429,
            ErrorKind::Internal => 500,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
            ErrorKind::Timeout => 504,
        }
    }

    /// The kind that best describes an HTTP status (for upstream statuses).
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Authentication,
            403 => ErrorKind::PermissionDenied,
            404 => ErrorKind::NotFound,
            413 => ErrorKind::RequestTooLarge,
            429 => ErrorKind::RateLimited,
            400..=499 => ErrorKind::InvalidRequest,
            502 => ErrorKind::BadGateway,
            503 | 529 => ErrorKind::Unavailable,
            504 => ErrorKind::Timeout,
            _ => ErrorKind::Internal,
        }
    }
}

/// An error ready to be rendered in any protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalError {
    pub kind: ErrorKind,
    /// HTTP status to answer with (usually `kind.status()`).
    pub status: u16,
    /// Human-readable and specific: says what was wrong and, where possible, how to fix it.
    pub message: String,
    /// A short machine-readable code (`model_not_found`, `invalid_json`, ...), where one helps.
    pub code: Option<&'static str>,
    /// The request field at fault (`model`, `messages`), where known.
    pub param: Option<&'static str>,
}

impl CanonicalError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        CanonicalError {
            kind,
            status: kind.status(),
            message: message.into(),
            code: None,
            param: None,
        }
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    pub fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }
}
