//! One upstream attempt: a target, an account, the request prepared for it. Connects and sends
//! through the [transport](crate::upstream::transport), decides from the status whether the
//! answer is a retryable rejection (nothing reaches the client) or the answer to relay, and
//! relays it. The result is a typed [`Outcome`] for the policy loop in [`super::forward`].

use super::relay::{self, Relayed};
use super::route::Attempt;
use super::{translate, ErrorSummary, RequestCtx};
use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::guardrails::{Direction, DownGuard, GuardHook};
use crate::hooks::HookInput;
use crate::state::AppState;
use crate::upstream::headers::{self, Decision};
use crate::upstream::transport::{self, before, earliest, UpstreamBody};
use bitrouter_config::{Account, Protocol, Provider, RetryPolicy};
use bitrouter_filters::stream::StreamHook;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use pingora_core::protocols::http::client::HttpSession;
use pingora_http::ResponseHeader;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest error body kept from a rejected attempt (it is shown to the client if every attempt
/// fails).
const MAX_REJECTION_BODY: usize = 1024 * 1024;

/// How an attempt ended.
pub enum Outcome {
    /// The answer reached the client in full. `ttfb`: time to the first body chunk.
    Served { ttfb: Option<Duration> },
    /// The answer was committed, then the upstream failed (the client got an error event or a
    /// truncated body).
    Broke(ProxyError),
    /// A retryable error status; nothing was sent to the client.
    Rejected(Box<Rejection>),
    /// Failed before anything reached the client (another target may still answer).
    Failed(ProxyError),
    /// Failed after the response was committed, or the client left: nothing more can be done.
    Abandoned(ProxyError),
}

/// A retryable error answer, buffered.
pub struct Rejection {
    pub header: ResponseHeader,
    pub body: Bytes,
    /// `(upstream protocol, dropped params)` when the attempt was translated.
    pub translated: Option<(Protocol, Vec<String>)>,
    pub provider: String,
    pub service_id: String,
    pub account: String,
}

impl Rejection {
    pub fn status(&self) -> u16 {
        self.header.status.as_u16()
    }

    /// The `retry-after` the upstream asked for (seconds form; HTTP dates are ignored). A value
    /// too large for a `Duration` (`1e20`) is ignored rather than trusted.
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.header.headers.get(http::header::RETRY_AFTER)?;
        parse_retry_after(v.to_str().ok()?)
    }

    /// Shows the client this rejection: the upstream's status and body, translated to the
    /// client's protocol when the attempt was.
    pub async fn write(self, dn: &mut Downstream<'_>, attempts: usize) -> Result<(), ProxyError> {
        let decision = Decision {
            provider: &self.provider,
            service_id: &self.service_id,
            account: &self.account,
            attempts,
            counted: false,
            guardrails: &[],
        };
        match &self.translated {
            Some((upstream, dropped)) => {
                translate::write_error(dn, &self.header, &self.body, *upstream, dropped, &decision)
                    .await
            }
            None => {
                let resp = headers::downstream_response(&self.header, &decision)?;
                dn.whole(resp, self.body).await
            }
        }
    }
}

/// Seconds (integer or decimal) of a `retry-after` value, when finite, non-negative and
/// representable.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let secs: f64 = value.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Duration::try_from_secs_f64(secs).ok()
}

/// One upstream call to make.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub attempt: &'a Attempt<'a>,
    pub account: &'a Account,
    pub client_headers: &'a [(HeaderName, HeaderValue)],
    pub policy: &'a RetryPolicy,
    /// The request's retry deadline (bounds the wait for the first byte).
    pub deadline: Option<Instant>,
    /// For a pool, the provider as seen through the chosen replica (its origin); `None`: the
    /// target's provider.
    pub replica: Option<&'a Provider>,
}

impl Call<'_> {
    pub async fn run(&self, dn: &mut Downstream<'_>, ctx: &mut RequestCtx) -> Outcome {
        match self.exchange(dn, ctx).await {
            Ok(outcome) => outcome,
            Err(e) if dn.committed() || matches!(e, ProxyError::ClientGone) => {
                Outcome::Abandoned(e)
            }
            Err(e) => Outcome::Failed(e),
        }
    }

    async fn exchange(
        &self,
        dn: &mut Downstream<'_>,
        ctx: &mut RequestCtx,
    ) -> Result<Outcome, ProxyError> {
        let target = self.attempt.target;
        let provider: &Provider = self.replica.unwrap_or(&target.provider);
        let timeouts = provider.timeouts;
        let started = Instant::now();
        let first_byte_by = earliest(
            timeouts.first_byte.and_then(|d| started.checked_add(d)),
            self.deadline,
        );
        let total_by = timeouts.total.and_then(|d| started.checked_add(d));
        let by = earliest(first_byte_by, total_by);
        let upload = self.attempt.upload.as_ref();
        let build = |h2: bool| {
            let mut header = headers::upstream_request(
                provider,
                self.account,
                &self.attempt.path,
                self.client_headers,
                self.attempt.body.len(),
                h2,
            )?;
            if let Some(upload) = upload {
                upload.apply(&mut header, h2)?;
            }
            Ok(header)
        };
        let (mut up, peer) = if let Some(upload) = upload {
            // The client's body streams through during the exchange (reading it notices a
            // client that leaves); the first-byte wait cannot include the upload's own time,
            // so only `total_secs` bounds it.
            // Boxed: only uploads take this path; inline, its future (the upload loop) would
            // be part of the future of every request, which is boxed and copied per request.
            let exchange = Box::pin(transport::exchange_streaming(
                &self.state.upstream,
                provider,
                build,
                &self.attempt.body,
                dn.session(),
                upload.spent,
            ));
            match before(total_by, exchange).await {
                Some(r) => r?,
                None => return Err(first_byte_timeout(provider, started)),
            }
        } else {
            // Boxed: the exchange's future (3.6 KB: connect, send, read the head) is done once
            // the head arrives, but inline it set the size of every request's future, which an
            // open stream holds for its whole life (-Zprint-type-sizes: `Call::exchange` 5,664
            // bytes with it inline; benches/load, open streams).
            let exchange = Box::pin(transport::exchange(
                &self.state.upstream,
                provider,
                build,
                &self.attempt.body,
            ));
            // Waiting for the upstream's first byte can take long (reasoning models); stop as
            // soon as the client hangs up.
            tokio::select! {
                r = before(by, exchange) => match r {
                    Some(r) => r?,
                    None => return Err(first_byte_timeout(provider, started)),
                },
                r = dn.session().read_body_or_idle(true) => {
                    return Err(match r {
                        Err(_) => ProxyError::ClientGone,
                        Ok(_) => ProxyError::ClientBody("unexpected bytes after the request body".into()),
                    });
                }
            }
        };
        ctx.upstream_ttfb = Some(ctx.start.elapsed());
        // Kept as the address (a copy), formatted only when an access line is written.
        ctx.upstream_addr = Some(pingora_core::upstreams::peer::Peer::address(peer.peer()).clone());
        if let HttpSession::H1(h1) = &mut up {
            h1.respect_keepalive();
        }
        let status = up.response_header().map_or(0, |h| h.status.as_u16());
        match &self.attempt.translation {
            Some(t) if !t.dropped.is_empty() => ctx.dropped.clone_from(&t.dropped),
            _ => ctx.dropped.clear(),
        }
        let mut body = UpstreamBody::new(up, peer, &self.state.upstream, provider, total_by);
        if self.policy.retries_status(status) || matches!(status, 401 | 403) {
            let header = body.header()?.clone();
            let raw = match before(by, body.read_all(dn.session(), MAX_REJECTION_BODY)).await {
                Some(r) => r?,
                None => return Err(first_byte_timeout(provider, started)),
            };
            body.close().await;
            return Ok(Outcome::Rejected(Box::new(Rejection {
                header,
                body: raw,
                translated: match (&self.attempt.translation, &self.attempt.reshape) {
                    (Some(t), _) => Some((t.upstream, t.dropped.clone())),
                    // A Gemini embeddings error, shown in OpenAI's error JSON.
                    (None, Some(_)) => Some((self.attempt.protocol, Vec::new())),
                    (None, None) => None,
                },
                provider: provider.id.clone(),
                service_id: target.service_id.clone(),
                account: self.account.label.clone(),
            })));
        }
        let mut ttfb = None;
        if (200..300).contains(&status) {
            // Commit only once the body has started: a server that sends headers and then
            // nothing (or breaks) can still be failed over.
            match before(by, body.prefetch(dn.session())).await {
                Some(r) => r?,
                None => {
                    body.close().await;
                    return Err(first_byte_timeout(provider, started));
                }
            }
            ttfb = Some(started.elapsed());
        } else if status >= 400 {
            ctx.error = Some(ErrorSummary::upstream_status(status));
        }
        let guard_items = ctx.guardrails.clone();
        let decision = Decision {
            provider: &provider.id,
            service_id: &target.service_id,
            account: &self.account.label,
            attempts: ctx.attempts,
            counted: self.attempt.count_tokens,
            guardrails: &guard_items,
        };
        // The downgoing guard of this route (rules may be scoped to models and providers).
        let requested = ctx.model.as_deref().unwrap_or_default();
        let guard_down = if self.attempt.count_tokens {
            None
        } else {
            ctx.snapshot
                .guardrails
                .as_ref()
                .and_then(|g| g.guard(Direction::Down, &provider.id, requested, &target.service_id))
        };
        let down = guard_down.as_ref().map(|g| DownGuard {
            guard: g.clone(),
            counter: self.state.metrics.guardrail_matches.clone(),
            seen: ctx
                .guard_seen
                .get_or_insert_with(|| Arc::new(Mutex::new(Vec::new())))
                .clone(),
        });
        // Usage as the answer passes, priced by this route's entry in the snapshot's table.
        let snapshot = ctx.snapshot.clone();
        let prices = snapshot.prices.lookup(&provider.id, &target.service_id);
        // Speech audio passes through as it comes, like a stream.
        let streamed = ctx.stream || super::upload::streams_binary(ctx);
        let mut meter = crate::metering::Meter::new(self.attempt.protocol, streamed, prices);
        meter.strip = self.attempt.strip_usage;
        let relayed = match (&self.attempt.translation, &self.attempt.reshape) {
            (None, Some(ask)) => {
                super::upload::relay_embeddings(dn, &mut body, ask, &decision, &mut meter).await
            }
            (None, None) => relay::relay(dn, &mut body, &decision, down.as_ref(), &mut meter).await,
            (Some(t), _) => {
                let hooks = &ctx.snapshot.stream_hooks;
                let mut hook = if t.ctx.stream && !hooks.is_empty() {
                    hooks.build(&HookInput {
                        client: t.client,
                        model: &t.ctx.client_model,
                        provider: &provider.id,
                    })
                } else {
                    None
                };
                if let (true, Some(d)) = (t.ctx.stream, &down) {
                    let guard_hook: Box<dyn StreamHook> = Box::new(GuardHook::new(
                        d.guard.clone(),
                        d.counter.clone(),
                        d.seen.clone(),
                    ));
                    // The guard sees what the model sent before any other hook.
                    hook = Some(match hook {
                        Some(other) => crate::hooks::chain(vec![guard_hook, other]),
                        None => guard_hook,
                    });
                }
                translate::relay(dn, &mut body, t, &decision, hook, down.as_ref(), &mut meter).await
            }
        };
        // Kept even when the relay failed (the client left, the upstream broke): a cut stream
        // is recorded with what was reported before the cut.
        if meter.usage.is_some() {
            ctx.usage = meter.usage;
        }
        ctx.usage_complete = matches!(relayed, Ok(Relayed::Complete));
        let relayed = relayed?;
        body.close().await;
        Ok(match relayed {
            Relayed::Complete => Outcome::Served { ttfb },
            Relayed::UpstreamBroke(e) => Outcome::Broke(e),
        })
    }
}

fn first_byte_timeout(provider: &Provider, started: Instant) -> ProxyError {
    ProxyError::UpstreamTimeout {
        provider: provider.id.clone(),
        detail: format!(
            "no response within {:.1} s (first_byte_secs, total_secs or the retry deadline)",
            started.elapsed().as_secs_f64()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_retry_after;
    use std::time::Duration;

    #[test]
    fn retry_after_never_panics_on_huge_or_odd_values() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.5 "), Some(Duration::from_millis(500)));
        // Used to panic in Duration::from_secs_f64.
        assert_eq!(parse_retry_after("1e20"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("NaN"), None);
        assert_eq!(parse_retry_after("inf"), None);
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
