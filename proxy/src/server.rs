//! Assembling and running the Pingora server: the gateway service on the listen address, a
//! background task that ends the process as soon as a graceful shutdown has drained, and a
//! SIGHUP handler that keeps the signal from killing the router.

use crate::gateway::Gateway;
use crate::state::AppState;
use async_trait::async_trait;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora_proxy::http_proxy_service_with_name;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Turns `listen` into a concrete socket address. Port 0 picks a free port now, so the address
/// can be printed (tests read it from the log).
pub fn resolve_listen(listen: &str) -> Result<SocketAddr, String> {
    let addr = listen
        .to_socket_addrs()
        .map_err(|e| format!("server.listen `{listen}` is not a usable address: {e}"))?
        .next()
        .ok_or_else(|| format!("server.listen `{listen}` resolves to no address"))?;
    if addr.port() != 0 {
        return Ok(addr);
    }
    let probe = TcpListener::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?;
    probe
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))
}

/// How long the process waits at exit for queued log lines to reach stdout.
pub const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Runs the server until a shutdown signal. Never returns on success.
pub fn run(state: Arc<AppState>, listen: SocketAddr) -> Result<(), String> {
    // Fail early, with a clear message, if the port is taken (Pingora would panic).
    drop(TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?);
    // Before the "listening" line: a supervisor may send SIGHUP as soon as it sees it.
    ignore_sighup()?;

    let snapshot = state.snapshot();
    let server_cfg = &snapshot.config.server;
    let conf = ServerConf {
        threads: server_cfg.threads.unwrap_or_else(default_threads),
        grace_period_seconds: Some(server_cfg.shutdown_grace_secs),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 256,
        work_stealing: server_cfg.work_stealing,
        pid_file: std::env::temp_dir()
            .join(format!("bitrouter-{}.pid", std::process::id()))
            .to_string_lossy()
            .into_owned(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("bitrouter-upgrade-{}.sock", listen.port()))
            .to_string_lossy()
            .into_owned(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut gateway = http_proxy_service_with_name(
        &server.configuration,
        Gateway {
            state: state.clone(),
        },
        "bitrouter",
    );
    gateway.add_tcp(&listen.to_string());
    server.add_service(gateway);
    server.add_service(background_service(
        "drain",
        Drain {
            state: state.clone(),
            grace: Duration::from_secs(server_cfg.shutdown_grace_secs),
        },
    ));
    // The start-up snapshot is not kept alive for the life of the process.
    drop(snapshot);

    server.add_service(background_service(
        "health checks",
        crate::balance::checks::HealthChecks {
            state: state.clone(),
        },
    ));

    println!("bitrouter listening on http://{listen}");
    log::info!("bitrouter listening on http://{listen}");
    // Not `run_forever`: it exits the process without waiting for the log queue (after a fast
    // shutdown, or when the grace period ends before `Drain` exits).
    server.run(RunArgs::default());
    crate::logger::flush(LOG_FLUSH_LIMIT);
    std::process::exit(0);
}

/// Pingora handles SIGTERM, SIGINT and SIGQUIT but not SIGHUP, whose default action ends the
/// process, and operators send SIGHUP out of habit to reload. Until reload exists, SIGHUP is
/// logged and ignored. The handler is registered before this returns (on a small runtime of its
/// own on a dedicated thread), so there is no window after start-up in which SIGHUP still kills.
fn ignore_sighup() -> Result<(), String> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal runtime: {e}"))?;
    let mut hup = {
        let _in_runtime = rt.enter();
        signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?
    };
    std::thread::Builder::new()
        .name("bitrouter-sighup".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    log::warn!(
                        "received SIGHUP: reload is not implemented yet; ignoring (restart to apply config changes)"
                    );
                }
            })
        })
        .map_err(|e| format!("cannot start the SIGHUP thread: {e}"))?;
    Ok(())
}

fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Ends the process once a graceful shutdown has no request left in flight (Pingora itself
/// would wait out the whole grace period even when idle).
struct Drain {
    state: Arc<AppState>,
    grace: Duration,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let started = Instant::now();
        log::info!(
            "shutting down: waiting up to {:?} for {} in-flight request(s)",
            self.grace,
            self.state.inflight()
        );
        while self.state.inflight() > 0 && started.elapsed() < self.grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.state.inflight();
        if left > 0 {
            log::warn!("grace period over with {left} request(s) still in flight");
        }
        log::info!("bitrouter stopped");
        crate::logger::flush(LOG_FLUSH_LIMIT);
        std::process::exit(0);
    }
}
