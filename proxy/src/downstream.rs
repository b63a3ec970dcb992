//! The one writer through which every byte to the client passes: the response head, body
//! chunks, the end, and the abort that turns a failure into an error in the client's own
//! protocol.
//!
//! Why one writer: the status the client saw, the bytes it received, whether anything has been
//! committed (after which a failure can no longer become a clean error response), and the
//! mapping of a write failure to "the client went away" used to be handled by five writers
//! calling the session directly. Guardrails on responses, usage accounting and tracing hook in
//! here, once, instead of in each of them.

use crate::error::{Fault, ProxyError};
use crate::render;
use crate::upstream::headers;
use bitrouter_config::Protocol;
use bitrouter_filters::canonical::{ResponseContext, StreamEvent};
use bitrouter_filters::protocol::StreamEncoder;
use bytes::Bytes;
use http::header::HeaderValue;
use http::HeaderMap;
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::Session;

/// How a request ended, for Pingora.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// A complete response was written (success or error).
    Complete,
    /// The response started but could not be finished; the connection must be dropped.
    Aborted,
    /// Nothing written: the request is for a `routes:` entry, which Pingora's own loop proxies.
    Proxy,
}

/// Where the response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing written: an error can still become a clean error response.
    Idle,
    /// The head is out; body chunks may follow.
    Body,
    /// The response is complete.
    Done,
}

/// Who answered, for the `x-bitrouter-*` headers of an error we write ourselves after
/// upstream attempts.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attribution<'a> {
    pub attempts: usize,
    pub provider: Option<&'a str>,
}

/// The client side of one request.
pub struct Downstream<'s> {
    session: &'s mut Session,
    /// The client's protocol: errors are rendered in it.
    protocol: Protocol,
    stage: Stage,
    status: u16,
    bytes_out: usize,
}

impl<'s> Downstream<'s> {
    pub fn new(session: &'s mut Session, protocol: Protocol) -> Downstream<'s> {
        Downstream {
            session,
            protocol,
            stage: Stage::Idle,
            status: 0,
            bytes_out: 0,
        }
    }

    /// The session, for reading the request (its body, or watching for the client to leave).
    /// Writing to it directly would bypass the accounting: use the methods below.
    pub fn session(&mut self) -> &mut Session {
        self.session
    }

    pub fn req(&self) -> &RequestHeader {
        self.session.req_header()
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the response head has gone out (a failure can no longer be a clean error).
    pub fn committed(&self) -> bool {
        self.stage != Stage::Idle || self.session.response_written().is_some()
    }

    /// The status sent to the client (0 until a head is written).
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Body bytes written so far.
    pub fn bytes_out(&self) -> usize {
        self.bytes_out
    }

    /// Writes the head of a response whose body follows in [`Self::chunk`]s.
    pub async fn head(&mut self, mut resp: ResponseHeader) -> Result<(), ProxyError> {
        self.status = resp.status.as_u16();
        // A body of unknown length (a translated or guarded stream, a relayed one whose
        // upstream sent no length) goes chunked on HTTP/1.1: without it Pingora frames the
        // body by closing the connection, so every stream cost the client a new connection
        // (and load generators counted each close as a read error).
        if self.session.req_header().version == http::Version::HTTP_11
            && !resp.headers.contains_key(http::header::CONTENT_LENGTH)
            && !resp.headers.contains_key(http::header::TRANSFER_ENCODING)
        {
            let _ = resp.insert_header(http::header::TRANSFER_ENCODING, "chunked");
        }
        self.stage = Stage::Body;
        self.session
            .write_response_header(Box::new(resp), false)
            .await
            .map_err(|_| ProxyError::ClientGone)
    }

    /// Writes a body chunk (empty chunks are skipped).
    pub async fn chunk(&mut self, bytes: Bytes) -> Result<(), ProxyError> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.bytes_out += bytes.len();
        self.session
            .write_response_body(Some(bytes), false)
            .await
            .map_err(|_| ProxyError::ClientGone)
    }

    /// Ends the response.
    pub async fn finish(&mut self) -> Result<(), ProxyError> {
        self.stage = Stage::Done;
        self.session
            .write_response_body(None, true)
            .await
            .map_err(|_| ProxyError::ClientGone)
    }

    /// Writes a whole response: `resp` gets the body's `content-length`. A `HEAD` request gets
    /// the head only.
    pub async fn whole(&mut self, mut resp: ResponseHeader, body: Bytes) -> Result<(), ProxyError> {
        resp.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())
            .map_err(ProxyError::internal(headers::RESPONSE_HEADER))?;
        self.write_whole(resp, body).await
    }

    /// [`Self::whole`] for a head that already carries the body's `content-length`.
    async fn write_whole(&mut self, resp: ResponseHeader, body: Bytes) -> Result<(), ProxyError> {
        let head_only = self.session.req_header().method == http::Method::HEAD;
        self.status = resp.status.as_u16();
        self.stage = Stage::Done;
        self.session
            .write_response_header(Box::new(resp), head_only)
            .await
            .map_err(|_| ProxyError::ClientGone)?;
        if head_only {
            return Ok(());
        }
        self.bytes_out += body.len();
        self.session
            .write_response_body(Some(body), true)
            .await
            .map_err(|_| ProxyError::ClientGone)
    }

    /// A document bitrouter answers itself (JSON, metrics text, an error).
    pub async fn send(
        &mut self,
        status: u16,
        content_type: &str,
        body: Bytes,
        who: Attribution<'_>,
    ) -> Result<(), ProxyError> {
        self.send_with(status, content_type, body, who, &[]).await
    }

    /// [`Self::send`] with extra response headers.
    pub async fn send_with(
        &mut self,
        status: u16,
        content_type: &str,
        body: Bytes,
        who: Attribution<'_>,
        extra: &[(http::header::HeaderName, HeaderValue)],
    ) -> Result<(), ProxyError> {
        let status_code = http::StatusCode::from_u16(status)
            .map_err(ProxyError::internal(headers::RESPONSE_HEADER))?;
        let mut map = HeaderMap::with_capacity(4);
        map.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_str(content_type)
                .map_err(ProxyError::internal(headers::RESPONSE_HEADER))?,
        );
        // Set in the map before the head is built: Pingora's `insert_header` would format the
        // number and copy the name into a case-preserving form (as before the writer existed).
        map.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        if who.attempts > 0 {
            // An error after upstream attempts: say how many were made and where the last went.
            map.insert(headers::X_ATTEMPTS, HeaderValue::from(who.attempts));
            if let Some(p) = who.provider.and_then(|p| HeaderValue::from_str(p).ok()) {
                map.insert(headers::X_PROVIDER, p);
            }
        }
        for (name, value) in extra {
            map.insert(name.clone(), value.clone());
        }
        self.write_whole(headers::response(status_code, map), body)
            .await
    }

    /// Ends a committed event stream with an error event in the client's protocol (the
    /// upstream broke mid-way), so the client's SDK reports an error instead of a silent cut.
    pub async fn stream_error(&mut self, error: &ProxyError) -> Result<(), ProxyError> {
        let mut out = Vec::new();
        StreamEncoder::new(self.protocol, &ResponseContext::default())
            .encode(&StreamEvent::Error(error.to_canonical()), &mut out);
        self.chunk(Bytes::from(out)).await
    }

    /// Turns a failure into the client's answer: an error response in its protocol when nothing
    /// has been written yet, otherwise (or when the client is gone) an aborted connection.
    pub async fn fail(&mut self, error: &ProxyError, who: Attribution<'_>) -> Handled {
        if matches!(error, ProxyError::ClientGone) {
            if self.status == 0 {
                self.status = error.status();
            }
            return Handled::Aborted;
        }
        if self.committed() {
            return Handled::Aborted;
        }
        if error.fault() == Fault::Internal {
            log::error!("{error}");
        }
        let (status, body) = render::error_body(self.protocol, &error.to_canonical());
        let extra = error.headers();
        match self
            .send_with(status, "application/json", body, who, &extra)
            .await
        {
            Ok(()) => Handled::Complete,
            Err(_) => Handled::Aborted,
        }
    }
}
