//! Multipart uploads (`/v1/audio/transcriptions`, `/v1/audio/translations`): the model is a
//! form field, the file after it can be tens of megabytes, and the body is never held whole.
//!
//! The router reads the body only up to and including the `model` field (bounded by
//! [`MAX_MULTIPART_PREFIX`]), routes on it, then each attempt sends the head and that prefix
//! (with the model rewritten to the target's id) and pipes the rest of the client's body
//! chunk by chunk, each write awaited before the next read (backpressure: a slow upstream slows
//! the client, memory stays one chunk). Once a byte after the prefix has been read from the
//! client it cannot be sent again, so an upload fails over only before that: a connection
//! that cannot be opened, or a pooled one found stale while the head and prefix go out.
//!
//! Also here: the answer of a Gemini embeddings call, turned back into OpenAI's shape.

use super::relay::Relayed;
use super::RequestCtx;
use crate::downstream::Downstream;
use crate::endpoints::MAX_MULTIPART_PREFIX;
use crate::error::ProxyError;
use crate::metering::Meter;
use crate::upstream::headers::{self, Decision};
use crate::upstream::transport::UpstreamBody;
use bitrouter_config::Protocol;
use bitrouter_filters::canonical::{CanonicalError, ErrorKind, Usage};
use bitrouter_filters::embeddings::{self, EmbedAsk};
use bitrouter_filters::multipart::{self, Scan};
use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use pingora_http::RequestHeader;
use pingora_proxy::Session;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};

/// A multipart upload being routed.
pub struct Upload {
    content_type: HeaderValue,
    /// The client's `content-length`, when it sent one (else the body goes chunked).
    declared: Option<u64>,
    /// The client's `model` value and where its raw bytes sit in the prefix.
    model: String,
    model_span: Range<usize>,
    /// Set once any byte after the prefix was read from the client: no later attempt can send
    /// the body again.
    spent: AtomicBool,
}

/// What an attempt needs to send an upload.
pub struct UploadHead<'a> {
    pub content_type: &'a HeaderValue,
    /// Length of the body as it goes upstream (the prefix may have been rewritten), when the
    /// client declared one.
    pub length: Option<u64>,
    pub spent: &'a AtomicBool,
}

impl Upload {
    /// The prefix for `service_id` (its `model` field rewritten when the id differs) and the
    /// head to send it with.
    pub fn for_target(&self, prefix: &Bytes, service_id: &str) -> (Bytes, UploadHead<'_>) {
        let body = if service_id == self.model {
            prefix.clone()
        } else {
            Bytes::from(multipart::replace(
                prefix,
                self.model_span.clone(),
                service_id,
            ))
        };
        let length = self.declared.map(|n| {
            n.saturating_sub(prefix.len() as u64)
                .saturating_add(body.len() as u64)
        });
        (
            body,
            UploadHead {
                content_type: &self.content_type,
                length,
                spent: &self.spent,
            },
        )
    }

    /// Whether the body has started going upstream past its prefix (no failover after).
    pub fn spent(&self) -> bool {
        self.spent.load(Ordering::Relaxed)
    }
}

impl UploadHead<'_> {
    /// Sets the upload's content type and framing on a request header built for JSON.
    pub fn apply(&self, header: &mut RequestHeader, h2: bool) -> Result<(), ProxyError> {
        let internal = ProxyError::internal("building upstream request");
        header
            .insert_header(http::header::CONTENT_TYPE, self.content_type.clone())
            .map_err(&internal)?;
        match self.length {
            Some(n) => header
                .insert_header(http::header::CONTENT_LENGTH, n.to_string())
                .map_err(&internal)?,
            None => {
                header.remove_header(&http::header::CONTENT_LENGTH);
                if !h2 {
                    header
                        .insert_header(http::header::TRANSFER_ENCODING, "chunked")
                        .map_err(&internal)?;
                }
            }
        }
        Ok(())
    }
}

fn bad_upload(message: String) -> ProxyError {
    ProxyError::Translate(
        CanonicalError::new(ErrorKind::InvalidRequest, message)
            .with_code("invalid_multipart")
            .with_param("model"),
    )
}

/// Reads a multipart body up to and including its `model` field: the model, the prefix read
/// (which may end inside the next part), and the upload's state.
pub async fn read_prefix(
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> Result<(String, Bytes, Upload), ProxyError> {
    let req = session.req_header();
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(""));
    let boundary = content_type
        .to_str()
        .ok()
        .and_then(multipart::boundary)
        .ok_or_else(|| {
            bad_upload(format!(
                "{} takes a multipart/form-data body (with a boundary) whose `model` field names the model",
                req.uri.path()
            ))
        })?;
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    super::request::answer_expect_continue(session).await?;
    let mut prefix = BytesMut::new();
    let found = loop {
        let chunk = session
            .read_request_body()
            .await
            .map_err(|e| ProxyError::ClientBody(e.to_string()))?;
        let ended = chunk.is_none();
        if let Some(chunk) = chunk {
            prefix.extend_from_slice(&chunk);
        }
        match multipart::find_field(&prefix, &boundary, "model") {
            Scan::Found(model, span) => break (model, span),
            Scan::Malformed(why) => {
                return Err(bad_upload(format!("the multipart body is malformed: {why}")))
            }
            Scan::Missing => return Err(ProxyError::MissingModel),
            Scan::NeedMore if ended => {
                return Err(bad_upload(
                    "the multipart body ended before its `model` field was complete".into(),
                ))
            }
            Scan::NeedMore if prefix.len() > MAX_MULTIPART_PREFIX => {
                return Err(bad_upload(format!(
                    "the `model` form field must come within the first {} KiB of the multipart body, before the file (the openai SDKs send it first)",
                    MAX_MULTIPART_PREFIX / 1024
                )))
            }
            Scan::NeedMore => {}
        }
    };
    // What the router read before routing (the rest is streamed, and would make a usage
    // estimate from bytes meaningless: audio is billed by duration).
    ctx.bytes_in = prefix.len();
    let (model, model_span) = found;
    if model.is_empty() {
        return Err(ProxyError::MissingModel);
    }
    Ok((
        model.clone(),
        prefix.freeze(),
        Upload {
            content_type,
            declared,
            model,
            model_span,
            spent: AtomicBool::new(false),
        },
    ))
}

/// Relays a Gemini embeddings answer in OpenAI's shape (an error in OpenAI's error JSON).
pub async fn relay_embeddings(
    dn: &mut Downstream<'_>,
    body: &mut UpstreamBody<'_>,
    ask: &EmbedAsk,
    decision: &Decision<'_>,
    meter: &mut Meter<'_>,
) -> Result<Relayed, ProxyError> {
    let header = body.header()?.clone();
    let raw = body
        .read_all(dn.session(), super::translate::MAX_UPSTREAM_BODY)
        .await?;
    if !header.status.is_success() {
        super::translate::write_error(dn, &header, &raw, Protocol::GenerateContent, &[], decision)
            .await?;
        return Ok(Relayed::Complete);
    }
    let out = embeddings::from_gemini(&raw, ask).map_err(ProxyError::Translate)?;
    meter.usage = Some(Usage {
        input: ask.prompt_tokens,
        ..Usage::default()
    });
    let mut resp = headers::translated_response(200, &header, "application/json", decision, &[])?;
    meter.annotate(&mut resp);
    dn.whole(resp, Bytes::from(out)).await?;
    Ok(Relayed::Complete)
}

/// Whether `ctx`'s request is an upload whose answer must not be read whole (speech audio
/// streams through as it comes).
pub fn streams_binary(ctx: &RequestCtx) -> bool {
    matches!(
        ctx.surface,
        crate::surface::Surface::Endpoint(crate::endpoints::Endpoint::Speech)
    )
}
