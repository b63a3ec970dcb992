//! Assembling and running the Pingora server: the gateway service on the listen address, a
//! background task that ends the process as soon as a graceful shutdown has drained, the
//! control socket and SIGHUP (reload), and the hand-over of the listening socket to a new
//! process on `bitrouter restart` (Pingora's graceful upgrade).

use crate::daemon::control::{self, Daemon};
use crate::gateway::Gateway;
use crate::linger::{Lingering, LINGER};
use crate::state::AppState;
use async_trait::async_trait;
use pingora::server::configuration::Opt;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora_proxy::http_proxy;
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
///
/// With `upgrade`, this process takes the listening socket over from a running router (the
/// `restart` verb): Pingora receives it on the upgrade socket once the old process gets
/// SIGQUIT; the old one then drains and exits. Nothing is refused in between: the socket is
/// never closed.
pub fn run(
    state: Arc<AppState>,
    listen: SocketAddr,
    daemon: Arc<Daemon>,
    upgrade: bool,
) -> Result<(), String> {
    // Before anything can signal this process (the control socket, the "listening" line a
    // supervisor waits for).
    let signals = control::install_signals(daemon.clone())?;
    if !upgrade {
        // Fail early, with a clear message, if the port is taken (Pingora would panic).
        drop(TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?);
        // A foreground `serve` whose socket another router holds still serves (two zero-config
        // routers on different ports share the default path); `start` refuses that case
        // before it gets here.
        if let Err(e) = control::start(daemon.clone(), false) {
            log::warn!("{e}; this router runs without a control socket (SIGHUP reloads it)");
        }
    }

    let snapshot = state.snapshot();
    let server_cfg = &snapshot.config.server;
    let conf = ServerConf {
        threads: server_cfg.threads.unwrap_or_else(default_threads),
        grace_period_seconds: Some(server_cfg.shutdown_grace_secs),
        graceful_shutdown_timeout_seconds: Some(1),
        upstream_keepalive_pool_size: 256,
        work_stealing: server_cfg.work_stealing,
        pid_file: daemon.paths.pid.to_string_lossy().into_owned(),
        upgrade_sock: daemon.paths.upgrade.to_string_lossy().into_owned(),
        ..ServerConf::default()
    };
    let opt = Opt {
        upgrade,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(Some(opt), conf);
    if upgrade {
        log::info!(
            "waiting for the running router to hand over its listening socket ({})",
            daemon.paths.upgrade.display()
        );
    }
    // With `upgrade`, blocks until the old process sent its sockets (or exits the process
    // when none arrive: the old router keeps serving).
    server.bootstrap();
    if upgrade {
        control::start(daemon.clone(), true)?;
        log::info!("took over the listening socket of the previous router");
    }

    let proxy = http_proxy(
        &server.configuration,
        Gateway {
            state: state.clone(),
        },
    );
    let mut gateway = Service::new("bitrouter".to_string(), Lingering(Arc::new(proxy)));
    gateway.add_tcp(&listen.to_string());
    server.add_service(gateway);
    server.add_service(background_service(
        "drain",
        Drain {
            state: state.clone(),
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
    server.run(RunArgs {
        shutdown_signal: signals,
    });
    control::cleanup();
    if let Some(gov) = state.governance() {
        // This router's budget leases: spending recorded, unused lease given back.
        gov.flush(std::time::Duration::from_secs(5));
    }
    if let Some(ledger) = state.ledger() {
        // The rows of the last requests (the writer batches): written before the process ends.
        if !ledger.flush_blocking(std::time::Duration::from_secs(5)) {
            log::warn!(
                "ledger: {} rows were still queued at exit (the database did not take them in 5 s)",
                ledger.queued()
            );
        }
    }
    crate::logger::flush(LOG_FLUSH_LIMIT);
    std::process::exit(0);
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
}

/// How long in-flight must stay at zero before the process exits: a connection accepted just
/// before the listener stopped has its request parsed within this (on loopback, microseconds),
/// so it is served rather than cut.
const QUIET: Duration = Duration::from_millis(300);

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let started = Instant::now();
        // The grace of the configuration in force now (a reload may have changed it).
        let grace = Duration::from_secs(self.state.snapshot().config.server.shutdown_grace_secs);
        log::info!(
            "shutting down: waiting up to {:?} for {} in-flight request(s)",
            grace,
            self.state.inflight()
        );
        let mut quiet_since: Option<Instant> = None;
        while started.elapsed() < grace {
            if self.state.inflight() > 0 {
                quiet_since = None;
            } else if quiet_since.get_or_insert_with(Instant::now).elapsed() >= QUIET
                // Not before the listener's linger is over: connections it still serves may
                // not have sent their request yet.
                && started.elapsed() >= LINGER
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.state.inflight();
        if left > 0 {
            log::warn!("grace period over with {left} request(s) still in flight");
        }
        log::info!("bitrouter stopped");
        control::cleanup();
        crate::logger::flush(LOG_FLUSH_LIMIT);
        std::process::exit(0);
    }
}
