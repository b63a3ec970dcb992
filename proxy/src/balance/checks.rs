//! Active health checks (`providers.<id>.health_check`), run with Pingora's `HttpHealthCheck`
//! and `TcpHealthCheck` from a background service. A provider passes when any of its addresses
//! passes; the verdict goes to the [`super::Balancer`], which moves a failing provider's
//! endpoints behind the healthy ones. The replicas of a pool are each probed: a failing replica
//! leaves its pool, a passing one (even one ejected by failed requests) comes back.

use crate::state::AppState;
use async_trait::async_trait;
use bitrouter_config::{HealthCheckKind, Provider};
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
                        let mut tick =
                            tokio::time::interval(cfg.interval.max(Duration::from_millis(50)));
                        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
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
                let mut tick = tokio::time::interval(cfg.interval.max(Duration::from_millis(50)));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let healthy = probe(&state, &provider, check.as_ref(), cfg.timeout).await;
                    state.balancer.set_check(&provider.id, !healthy);
                }
            }));
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
    let origin = &provider.origin;
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
            if let Some(key) = provider.api_key() {
                if let Some((name, value)) =
                    crate::upstream::headers::auth_header(provider.auth, key)
                {
                    req.insert_header(name, value)
                        .map_err(|_| "the api key is not a valid header value".to_string())?;
                }
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
async fn probe(
    state: &AppState,
    provider: &Provider,
    check: &(dyn HealthCheck + Send + Sync),
    timeout: Duration,
) -> bool {
    let origin = &provider.origin;
    let addrs = match state.upstream.resolve(provider).await {
        Ok(a) => a,
        Err(e) => {
            log::debug!("health check of `{}`: {e}", provider.id);
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
                "health check of `{}` at {}:{} ({addr}): {e}",
                provider.id,
                origin.host,
                origin.port
            ),
            Err(_) => log::debug!("health check of `{}` ({addr}) timed out", provider.id),
        }
    }
    false
}
