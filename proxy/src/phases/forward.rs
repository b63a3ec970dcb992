//! The attempt policy: which targets and accounts a request tries, in what order, how many
//! times, until when, and what each kind of failure means for health and for the next try.
//!
//! The balancer orders the candidate targets (strategy, then health) and, per target, the
//! provider's accounts. Until the first byte goes to the client nothing is committed, so a
//! retryable failure moves on:
//! - 401/403/429 are the account's fault: the provider's next account;
//! - a retryable 5xx or a timeout may be the account's too (a key on a throttled or broken
//!   project): the provider's other healthy accounts first, then the next target; the failure
//!   counts against the account *and* the endpoint, so later requests skip a broken account
//!   while a working one keeps the endpoint healthy;
//! - a connection failure cannot depend on the key (every account shares the origin): the next
//!   target directly.
//! - a target that cannot take the request at all (it would have to be translated and the
//!   translation refuses a field, e.g. `n: 2` for Anthropic) is skipped; only when no target can
//!   take it is that a 400 naming why.
//!
//! `max_attempts` counts every upstream call, accounts and targets together; the retry
//! deadline stops further attempts once it has passed (after at least one).

use super::attempt::{Call, Outcome, Rejection};
use super::route::Plan;
use super::{ErrorSummary, RequestCtx, Routed};
use crate::balance::affinity;
use crate::balance::replicas::ReplicaGuard;
use crate::downstream::Downstream;
use crate::error::ProxyError;
use crate::guardrails::{record, scan_body, Direction};
use crate::state::AppState;
use crate::upstream::headers;
use bitrouter_config::{ReplicaStrategy, RetryPolicy, Target};
use bitrouter_filters::canonical::{CanonicalError, ErrorKind};
use std::time::Instant;

/// Why the last attempt did not answer.
enum Failed {
    /// An HTTP error the policy retries, kept to show the client if nothing else works.
    Rejected(Box<Rejection>),
    Error(ProxyError),
}

/// What to do after a failed attempt.
enum Next {
    /// The same account on another replica of the pool.
    Replica,
    Account,
    Target,
}

/// The request's affinity key, when a target is a pool with `replica_strategy: affinity`
/// (computed once per request, and only then).
fn affinity_key(ctx: &RequestCtx, dn: &Downstream<'_>, plan: &Plan) -> Option<u64> {
    let pools = &ctx.snapshot.pools;
    let wanted = plan.resolution.targets.iter().any(|t| {
        pools
            .get(&t.provider)
            .is_some_and(|p| p.strategy() == ReplicaStrategy::Affinity)
    });
    if !wanted {
        return None;
    }
    let session = dn.req().headers.get(affinity::SESSION_HEADER);
    affinity::key(session.map(|v| v.as_bytes()), plan.body())
}

/// ` (replica host:port)` for a log line.
fn replica_named(replica: Option<&ReplicaGuard>) -> String {
    replica.map_or_else(String::new, |g| format!(" (replica {})", g.label()))
}

/// Counts an attempt on a replica.
fn replica_outcome(state: &AppState, target: &Target, g: &ReplicaGuard, outcome: &str) {
    state
        .metrics
        .replica_attempts
        .with_label_values(&[target.provider.id.as_str(), g.label(), outcome])
        .inc();
}

/// Applies the upgoing guardrails of `target`'s route to the body it is about to receive: a
/// redaction changes only the matched strings; a `block` match ends the request with a 400 in
/// the client's protocol before anything reaches the provider.
fn guard_upgoing(
    state: &AppState,
    ctx: &mut RequestCtx,
    requested: &str,
    target: &Target,
    attempt: &mut super::route::Attempt<'_>,
) -> Result<(), ProxyError> {
    let Some(set) = ctx.snapshot.guardrails.clone() else {
        return Ok(());
    };
    let Some(guard) = set.guard(
        Direction::Up,
        &target.provider.id,
        requested,
        &target.service_id,
    ) else {
        return Ok(());
    };
    let scanned = scan_body(&guard, &attempt.body)
        .map_err(|e| ProxyError::Internal(format!("guardrails: {e}")))?;
    let mut items = std::mem::take(&mut ctx.guardrails);
    record(
        &state.metrics.guardrail_matches,
        Direction::Up,
        &scanned.hits,
        &mut items,
    );
    ctx.guardrails = items;
    if let Some(rule) = scanned.blocked {
        log::warn!("guardrail `{rule}` blocked a request (upgoing); nothing was sent upstream");
        return Err(ProxyError::GuardrailBlocked {
            rule,
            upgoing: true,
        });
    }
    if let Some(body) = scanned.body {
        attempt.body = bytes::Bytes::from(body);
    }
    Ok(())
}

/// Sends the request through the balancer's order of targets and accounts until one answers.
pub async fn forward(
    state: &AppState,
    dn: &mut Downstream<'_>,
    ctx: &mut RequestCtx,
    plan: &Plan,
) -> Result<(), ProxyError> {
    let resolution = &plan.resolution;
    let policy: &RetryPolicy = &resolution.retry;
    // `checked_add`: a deadline too far away to represent is no deadline.
    let deadline = policy.deadline.and_then(|d| ctx.start.checked_add(d));
    let max_attempts = policy.max_attempts.unwrap_or(usize::MAX).max(1);
    let client_headers = headers::forwardable(&dn.req().headers);
    let balancer = &state.balancer;
    let mut last: Option<Failed> = None;
    // Targets that could not take the request, and why.
    let mut refused: Vec<(String, CanonicalError)> = Vec::new();
    let affinity = affinity_key(ctx, dn, plan);
    'targets: for ti in balancer.order(resolution, Instant::now()) {
        let target: &Target = &resolution.targets[ti];
        let mut attempt = match plan.attempt(target) {
            Ok(a) => a,
            Err(ProxyError::Translate(e)) if e.status < 500 => {
                refused.push((format!("{}/{}", target.provider.id, target.service_id), e));
                continue;
            }
            Err(e) => return Err(e),
        };
        if attempt.upload.is_none() {
            // An upload's prefix is form data, not a JSON body the rules read.
            guard_upgoing(state, ctx, &resolution.requested, target, &mut attempt)?;
        }
        // A pool (`api_base` a list): each attempt goes to one replica; the replicas that
        // failed this request are in `tried`.
        let pool = ctx.snapshot.pools.get(&target.provider).cloned();
        let mut tried = 0u64;
        let accounts = balancer.accounts(&target.provider, Instant::now());
        let mut k = 0;
        while let Some(&ai) = accounts.get(k) {
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            if ctx.attempts >= max_attempts || (out_of_time && last.is_some()) {
                break 'targets;
            }
            let Some(account) = target.provider.accounts.get(ai) else {
                k += 1;
                continue;
            };
            let replica = match &pool {
                Some(pool) => match pool.pick_excluding(affinity, tried) {
                    Some(g) => Some(g),
                    // Every replica failed this request: the next target.
                    None => continue 'targets,
                },
                None => None,
            };
            ctx.attempts += 1;
            ctx.route = Some(Routed {
                provider: target.provider.clone(),
                service_id: target.service_id.clone(),
                account: ai,
                replica: replica.as_ref().map(|g| g.label().clone()),
            });
            let call = Call {
                state,
                attempt: &attempt,
                account,
                client_headers: &client_headers,
                policy,
                deadline,
                replica: replica
                    .as_ref()
                    .and_then(|g| g.provider())
                    .map(|p| p.as_ref()),
            };
            let outcome = call.run(dn, ctx).await;
            let now = Instant::now();
            // A failure of the replica (connection, timeout, 5xx): recorded against it, and
            // another replica of the pool is tried before anything else. Without a pool, or
            // once no replica is left, it is the endpoint's failure as before.
            let replica_failed = |tried: &mut u64| -> bool {
                let (Some(pool), Some(g)) = (&pool, &replica) else {
                    balancer.endpoint_failure(target, now);
                    return false;
                };
                g.failure();
                replica_outcome(state, target, g, "failed");
                *tried |= 1u64 << (g.index() % 64);
                if pool.has_usable(*tried) {
                    return true;
                }
                balancer.endpoint_failure(target, now);
                false
            };
            let next = match outcome {
                Outcome::Served { ttfb } => {
                    if let Some(g) = &replica {
                        g.success();
                        replica_outcome(state, target, g, "ok");
                    }
                    balancer.success(target, ai, ttfb);
                    return Ok(());
                }
                Outcome::Broke(e) => {
                    // Committed, then the upstream failed (the client got an error event).
                    replica_failed(&mut tried);
                    ctx.fail(&e);
                    return Ok(());
                }
                Outcome::Rejected(rejection) => {
                    let status = rejection.status();
                    let retry_after = rejection.retry_after();
                    balancer.account_failure(&target.provider, ai, now);
                    let mut next = Next::Account;
                    if !matches!(status, 401 | 403 | 429) && replica_failed(&mut tried) {
                        next = Next::Replica;
                    }
                    match (status, retry_after) {
                        (429, Some(d)) => balancer.cool_account(&target.provider, ai, now, d),
                        (503, Some(d)) => match &replica {
                            Some(g) => g.cool(d),
                            None => balancer.cool_endpoint(target, now, d),
                        },
                        _ => {}
                    }
                    log::warn!(
                        "model `{}`: provider `{}`{} (account `{}`) answered HTTP {status}; trying the next {}",
                        resolution.requested,
                        target.provider.id,
                        replica_named(replica.as_ref()),
                        account.label,
                        match next {
                            Next::Replica => "replica",
                            _ => "account or endpoint",
                        }
                    );
                    last = Some(Failed::Rejected(rejection));
                    next
                }
                Outcome::Failed(e) if retryable(&e, policy) => {
                    let mut next = if matches!(e, ProxyError::UpstreamTimeout { .. }) {
                        balancer.account_failure(&target.provider, ai, now);
                        Next::Account
                    } else {
                        Next::Target
                    };
                    if replica_failed(&mut tried) {
                        next = Next::Replica;
                    }
                    log::warn!(
                        "model `{}`: {e}{}; trying the next {}",
                        resolution.requested,
                        replica_named(replica.as_ref()),
                        match next {
                            Next::Replica => "replica",
                            _ => "endpoint",
                        }
                    );
                    last = Some(Failed::Error(e));
                    next
                }
                Outcome::Failed(e) | Outcome::Abandoned(e) => {
                    if matches!(
                        e,
                        ProxyError::UpstreamConnect { .. }
                            | ProxyError::UpstreamTimeout { .. }
                            | ProxyError::UpstreamBroken { .. }
                    ) {
                        replica_failed(&mut tried);
                    }
                    return Err(e);
                }
            };
            if plan.upload.as_ref().is_some_and(|u| u.spent()) {
                // The upload's body went (partly) upstream and cannot be sent again.
                break 'targets;
            }
            match next {
                Next::Target => continue 'targets,
                Next::Account => k += 1,
                Next::Replica => {}
            }
        }
    }
    match last {
        Some(Failed::Rejected(r)) => {
            ctx.error = Some(ErrorSummary {
                message: format!(
                    "every attempt failed; the last answered HTTP {}",
                    r.status()
                ),
                ..ErrorSummary::upstream_status(r.status())
            });
            r.write(dn, ctx.attempts).await
        }
        Some(Failed::Error(e)) => Err(e),
        None if !refused.is_empty() => Err(no_target_can_take(&resolution.requested, refused)),
        None => Err(ProxyError::Internal("no upstream attempt was made".into())),
    }
}

/// Whether a failure before anything reached the client may be retried under `policy`.
fn retryable(e: &ProxyError, policy: &RetryPolicy) -> bool {
    match e {
        ProxyError::UpstreamConnect { .. } | ProxyError::UpstreamBroken { .. } => policy.on_connect,
        ProxyError::UpstreamTimeout { .. } => policy.on_timeout,
        _ => false,
    }
}

/// The 400 for a request that no target could take: each target's reason.
fn no_target_can_take(model: &str, refused: Vec<(String, CanonicalError)>) -> ProxyError {
    let mut refused = refused.into_iter();
    let Some((first_target, first)) = refused.next() else {
        return ProxyError::Internal("no upstream attempt was made".into());
    };
    if refused.len() == 0 {
        return ProxyError::Translate(first);
    }
    let mut message = format!(
        "no endpoint of `{model}` can take this request: {first_target}: {}",
        first.message
    );
    for (target, e) in refused {
        message.push_str(&format!("; {target}: {}", e.message));
    }
    ProxyError::Translate(CanonicalError {
        kind: ErrorKind::InvalidRequest,
        status: 400,
        message,
        code: first.code,
        param: first.param,
    })
}
