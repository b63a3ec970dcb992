//! Admission: the client's credential and its body.

use super::{Identity, RequestCtx};
use crate::error::ProxyError;
use crate::govern::admit;
use crate::state::AppState;
use crate::surface::query_param;
use bytes::{Bytes, BytesMut};
use pingora_proxy::Session;
use std::sync::Arc;

/// The client's credential, from whichever header its SDK uses: `Authorization: Bearer`,
/// `x-api-key`, `x-goog-api-key`, or `?key=`. Every surface accepts every form (the official
/// Anthropic SDK can send Bearer; google-genai may use `?key=`).
pub fn credential(session: &Session) -> Option<String> {
    let req = session.req_header();
    let header = |name: &str| {
        req.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if let Some(auth) = header("authorization") {
        let token = auth
            .strip_prefix("Bearer ")
            .or_else(|| auth.strip_prefix("bearer "))
            .unwrap_or(auth)
            .trim();
        if !token.is_empty() {
            return Some(token.to_string());
        }
    }
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .map(str::to_string)
        .or_else(|| query_param(req.uri.query(), "key").filter(|k| !k.is_empty()))
}

/// Checks the credential unless `server.skip_auth` is on, and records who called: the
/// operator's gateway key (`BITROUTER_API_KEY`), or a virtual key (`brvk_`, checked against the
/// key cache and its policies, see [`crate::govern::admit`]).
pub fn authorize(
    state: &AppState,
    ctx: &mut RequestCtx,
    session: &Session,
) -> Result<(), ProxyError> {
    let server = &ctx.snapshot.config.server;
    if server.skip_auth {
        ctx.identity = Some(Identity::Anonymous);
        return Ok(());
    }
    let Some(given) = credential(session) else {
        return Err(ProxyError::Unauthorized(
            "missing credential: send the gateway key or a virtual key as `Authorization: Bearer <key>`, `x-api-key`, `x-goog-api-key` or `?key=`",
        ));
    };
    if given.starts_with(VIRTUAL_KEY_PREFIX) {
        let caller = admit::authenticate(state.governance(), &ctx.snapshot, &given)?;
        ctx.identity = Some(Identity::Key(Arc::new(caller)));
        return Ok(());
    }
    let Some(expected) = &server.api_key else {
        return Err(ProxyError::Unauthorized(
            "invalid credential: this bitrouter has no gateway key (BITROUTER_API_KEY) and accepts only virtual keys (brvk_)",
        ));
    };
    if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
        ctx.identity = Some(Identity::Master);
        Ok(())
    } else {
        Err(ProxyError::Unauthorized(
            "invalid credential for this bitrouter",
        ))
    }
}

/// What every virtual key starts with.
pub const VIRTUAL_KEY_PREFIX: &str = "brvk_";

/// Admin routes (metrics, upstream health): the gateway key only, never a virtual key.
pub fn authorize_admin(
    state: &AppState,
    ctx: &mut RequestCtx,
    session: &Session,
) -> Result<(), ProxyError> {
    authorize(state, ctx, session)?;
    if matches!(ctx.identity, Some(Identity::Key(_))) {
        return Err(ProxyError::Forbidden {
            message: "this route needs the gateway's master key (BITROUTER_API_KEY); a virtual key cannot read it".into(),
            code: "admin_only",
        });
    }
    Ok(())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Answers `Expect: 100-continue` before the body is read: curl sends it for bodies over 1 MB
/// (and the openai SDK's uploads may) and waits a second for it.
pub async fn answer_expect_continue(session: &mut Session) -> Result<(), ProxyError> {
    let expects_continue = session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        session
            .write_continue_response()
            .await
            .map_err(|e| ProxyError::ClientBody(e.to_string()))?;
    }
    Ok(())
}

/// Reads the whole request body, refusing more than `server.max_body_bytes` (early, from
/// `content-length`, when the client declares it).
///
/// The buffer grows with the bytes that actually arrive, never from the declared length: a
/// client that declares 32 MiB and sends a few bytes must not make us reserve 32 MiB.
pub async fn read_body(session: &mut Session, ctx: &mut RequestCtx) -> Result<Bytes, ProxyError> {
    let limit = ctx.snapshot.config.server.max_body_bytes;
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    answer_expect_continue(session).await?;
    // A body that arrives in one piece (most requests) is used as Pingora hands it over; only a
    // second chunk starts a buffer that gathers them.
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut len = 0;
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| ProxyError::ClientBody(e.to_string()))?
    {
        len += chunk.len();
        if len > limit {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        if let Some(buf) = &mut gathered {
            buf.extend_from_slice(&chunk);
        } else if let Some(head) = first.take() {
            // Room for what arrived plus as much again; `BytesMut` doubles from there.
            let mut buf = BytesMut::with_capacity(len.saturating_mul(2).min(limit));
            buf.extend_from_slice(&head);
            buf.extend_from_slice(&chunk);
            gathered = Some(buf);
        } else {
            first = Some(chunk);
        }
    }
    ctx.bytes_in = len;
    Ok(match gathered {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
