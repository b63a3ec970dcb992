//! Active health checks (`providers.<id>.health_check`), run with Pingora's `HttpHealthCheck`
//! and `TcpHealthCheck` from a background service. A provider passes when any of its addresses
//! passes; the verdict goes to the [`super::Balancer`], which moves a failing provider's
//! endpoints behind the healthy ones. The replicas of a pool are each probed: a failing replica
//! leaves its pool, a passing one (even one ejected by failed requests) comes back. The URLs of
//! a `routes:` entry with a `health_check` are probed the same way, in the route's own pool.

use crate::state::AppState;
use async_trait::async_trait;
use bitrouter_config::{HealthCheckKind, Origin, Provider};
use pingora_core::server::ShutdownWatch;
use pingora_core::services::background::BackgroundService;
use pingora_http::RequestHeader;
use pingora_load_balancing::health_check::{HealthCheck, HttpHealthCheck, TcpHealthCheck};
use pingora_load_balancing::Backend;
use std::sync::Arc;
use std::time::Duration;

/// Runs every provider's check on its interval until shutdown. The checks follow the
/// configuration: when the snapshot is swapped they are restarted for the new providers.
pub struct HealthChecks {
    pub state: Arc<AppState>,
}

#[async_trait]
impl BackgroundService for HealthChecks {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut changes = self.state.subscribe();
        loop {
            let tasks = self.spawn_checks();
            let shutting_down = tokio::select! {
                _ = shutdown.changed() => true,
                r = changes.changed() => r.is_err(),
            };
            for t in tasks {
                t.abort();
            }
            if shutting_down {
                return;
            }
        }
    }
}

impl HealthChecks {
    /// One task per provider of the current snapshot that has a `health_check`.
    fn spawn_checks(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let snapshot = self.state.snapshot();
        let mut tasks = Vec::new();
        for provider in &snapshot.config.providers {
            let Some(cfg) = provider.health_check.clone() else {
                continue;
            };
            let check = match build(provider, cfg.kind, &cfg.path, cfg.timeout) {
                Ok(c) => c,
                Err(e) => {
                    log::warn!("provider `{}`: health check disabled: {e}", provider.id);
                    continue;
                }
            };
            // A pool: every replica is probed on its own (its own address, `Host` and SNI),
            // and the provider is down only when all of them are.
            if let Some(pool) = snapshot.pools.get(provider) {
                for (index, replica) in pool.replicas() {
                    let check = match build(replica, cfg.kind, &cfg.path, cfg.timeout) {
                        Ok(c) => c,
                        Err(e) => {
                            log::warn!("provider `{}`: health check disabled: {e}", provider.id);
                            continue;
                        }
                    };
                    let (state, pool, replica) =
                        (self.state.clone(), pool.clone(), replica.clone());
                    let cfg = cfg.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut tick = ticker(cfg.interval);
                        loop {
                            tick.tick().await;
                            let healthy =
                                probe(&state, &replica, check.as_ref(), cfg.timeout).await;
                            pool.set_check(index, healthy);
                            state
                                .balancer
                                .set_check(&replica.id, pool.all_checks_down());
                        }
                    }));
                }
                continue;
            }
            let state = self.state.clone();
            let provider = provider.clone();
            tasks.push(tokio::spawn(async move {
                let mut tick = ticker(cfg.interval);
                loop {
                    tick.tick().await;
                    let healthy = probe(&state, &provider, check.as_ref(), cfg.timeout).await;
                    state.balancer.set_check(&provider.id, !healthy);
                }
            }));
        }
        // Routes with URLs and a `health_check`: each URL of the route's own pool (a route to a
        // provider's pool is covered by the provider's check above).
        for route in snapshot.routes.iter().filter(|r| !r.shared) {
            let Some(cfg) = route.route.health_check.clone() else {
                continue;
            };
            for (index, url) in route.route.upstream.urls.iter().enumerate() {
                let name = format!("route `{}` ({})", route.route.name, url.url);
                let check = match build_at(&url.origin, None, cfg.kind, &cfg.path, cfg.timeout) {
                    Ok(c) => c,
                    Err(e) => {
                        log::warn!("{name}: health check disabled: {e}");
                        continue;
                    }
                };
                let (state, pool, origin) =
                    (self.state.clone(), route.pool.clone(), url.origin.clone());
                let connect = route.route.upstream.timeouts.connect;
                let cfg = cfg.clone();
                tasks.push(tokio::spawn(async move {
                    let mut tick = ticker(cfg.interval);
                    loop {
                        tick.tick().await;
                        let healthy =
                            probe_at(&state, &name, &origin, connect, check.as_ref(), cfg.timeout)
                                .await;
                        pool.set_check(index, healthy);
                    }
                }));
            }
        }
        tasks
    }
}

fn build(
    provider: &Provider,
    kind: HealthCheckKind,
    path: &str,
    timeout: Duration,
) -> Result<Box<dyn HealthCheck + Send + Sync>, String> {
    let auth = provider
        .api_key()
        .and_then(|key| crate::upstream::headers::auth_header(provider.auth, key));
    build_at(&provider.origin, auth, kind, path, timeout)
}

/// A check of `origin`, sending `auth` (a header name and value) with an HTTP check.
fn build_at(
    origin: &Origin,
    auth: Option<(&'static str, String)>,
    kind: HealthCheckKind,
    path: &str,
    timeout: Duration,
) -> Result<Box<dyn HealthCheck + Send + Sync>, String> {
    match kind {
        HealthCheckKind::Tcp => {
            let mut check = if origin.tls {
                TcpHealthCheck::new_tls(&origin.host)
            } else {
                TcpHealthCheck::new()
            };
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.total_connection_timeout = Some(timeout);
            Ok(check)
        }
        HealthCheckKind::Http => {
            let mut check = HttpHealthCheck::new(&origin.host, origin.tls);
            let mut req = RequestHeader::build("GET", path.as_bytes(), None)
                .map_err(|e| format!("bad health check path `{path}`: {e}"))?;
            let default_port = if origin.tls { 443 } else { 80 };
            let host = if origin.port == default_port {
                origin.host.clone()
            } else {
                format!("{}:{}", origin.host, origin.port)
            };
            req.insert_header(http::header::HOST, host)
                .map_err(|e| e.to_string())?;
            if let Some((name, value)) = auth {
                req.insert_header(name, value)
                    .map_err(|_| "the api key is not a valid header value".to_string())?;
            }
            check.req = req;
            check.peer_template.options.connection_timeout = Some(timeout);
            check.peer_template.options.total_connection_timeout = Some(timeout);
            check.peer_template.options.read_timeout = Some(timeout);
            check.peer_template.options.write_timeout = Some(timeout);
            Ok(Box::new(check))
        }
    }
}

/// Whether any address of `provider` passes `check`.
/// A check's clock: every `interval` (at least 50 ms), a late tick delays the next rather than
/// bunching probes.
fn ticker(interval: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(interval.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick
}

async fn probe(
    state: &AppState,
    provider: &Provider,
    check: &(dyn HealthCheck + Send + Sync),
    timeout: Duration,
) -> bool {
    let name = format!("`{}`", provider.id);
    let connect = provider.timeouts.connect;
    probe_at(state, &name, &provider.origin, connect, check, timeout).await
}

/// Whether any address of `origin` (resolved within `connect`) passes `check`; `name` says
/// what is checked in the debug log.
async fn probe_at(
    state: &AppState,
    name: &str,
    origin: &Origin,
    connect: Duration,
    check: &(dyn HealthCheck + Send + Sync),
    timeout: Duration,
) -> bool {
    let addrs = match state.upstream.resolve_at(origin, connect).await {
        Ok(a) => a,
        Err(e) => {
            log::debug!("health check of {name}: {e}");
            return false;
        }
    };
    for addr in addrs {
        let backend = Backend {
            addr: addr.into(),
            weight: 1,
            ext: Default::default(),
        };
        match tokio::time::timeout(timeout, check.check(&backend)).await {
            Ok(Ok(())) => return true,
            Ok(Err(e)) => log::debug!(
                "health check of {name} at {}:{} ({addr}): {e}",
                origin.host,
                origin.port
            ),
            Err(_) => log::debug!("health check of {name} ({addr}) timed out"),
        }
    }
    false
}
