//! Assembling and running the Pingora server: the gateway service on the listen addresses, a
//! background task that ends the process as soon as a graceful shutdown has drained, the
//! control socket and SIGHUP (reload), and the hand-over of the listening socket to a new
//! process on `bitrouter restart` (Pingora's graceful upgrade: every listening socket).

use crate::daemon::control::{self, Daemon};
use crate::gateway::Gateway;
use crate::linger::{Lingering, LINGER};
use crate::listeners::Bound;
use crate::state::AppState;
use async_trait::async_trait;
use pingora::server::configuration::Opt;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{background_service, BackgroundService};
use pingora::services::listening::Service;
use pingora_core::apps::HttpServerOptions;
use pingora_core::listeners::{L4BufferSettings, ListenerConfig};
use pingora_proxy::http_proxy;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the process waits at exit for queued log lines to reach stdout.
pub const LOG_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// Timeouts of a second or more run on tokio's timer instead of Pingora's "fast timeout"
/// (Pingora uses it above this many whole seconds; its default is 900).
///
/// A fast timeout is shared by every timeout due in the same 10 ms and lives in Pingora's timer
/// map until its deadline, even when the read it guarded finished long before; tokio's is
/// removed when cancelled. Every upstream read of a stream sets one (`read_secs`, 120 s by
/// default), every pooled connection one more (`pool_idle_secs`, 90 s), so a burst left
/// thousands of small timers alive for two minutes, one in each of many allocator pages, and
/// the pages could not go back: measured with `benches/load` (10,000 open streams),
/// 32.6 MiB resident 10 s after the burst against 24.2 MiB with this (idle 15.3 MiB), and
/// heaptrack counted the live allocations left from the burst fall from 6,974 to 3,308. It also
/// costs slightly less: 126,254 → 125,097 instructions per pass-through request (callgrind).
const TOKIO_TIMEOUTS_FROM_SECS: Option<u64> = Some(0);

/// Runs the server until a shutdown signal. Never returns on success.
///
/// With `upgrade`, this process takes the listening socket over from a running router (the
/// `restart` verb): Pingora receives it on the upgrade socket once the old process gets
/// SIGQUIT; the old one then drains and exits. Nothing is refused in between: the socket is
/// never closed.
pub fn run(
    state: Arc<AppState>,
    listeners: Vec<Bound>,
    daemon: Arc<Daemon>,
    upgrade: bool,
) -> Result<(), String> {
    // Before anything can signal this process (the control socket, the "listening" line a
    // supervisor waits for).
    let signals = control::install_signals(daemon.clone())?;
    if !upgrade {
        // Fail early, with a clear message, if a port is taken (Pingora would panic).
        for b in &listeners {
            let addr = b.addr;
            drop(TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?);
        }
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
        fast_timeout_to_tokio_threshold_seconds: TOKIO_TIMEOUTS_FROM_SECS,
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
    // One service per HTTP setting, sharing the one proxy (its connection pools): Pingora
    // takes h2c from the application, not the listener.
    let proxy = Arc::new(proxy);
    let mut h2c_options = HttpServerOptions::default();
    h2c_options.h2c = true;
    let keepalive = |state: Arc<AppState>| -> Box<dyn Fn() -> Duration + Send + Sync> {
        Box::new(move || Duration::from_secs(state.keepalive_secs()))
    };
    let mut gateway = Service::new(
        "bitrouter".to_string(),
        Lingering::new(proxy.clone(), None, keepalive(state.clone())),
    );
    let mut gateway_h2c = Service::new(
        "bitrouter h2c".to_string(),
        Lingering::new(proxy, Some(h2c_options), keepalive(state.clone())),
    );
    let (mut on_gateway, mut h2c) = (0, 0);
    for b in &listeners {
        let addr = b.addr.to_string();
        if b.listener.tls {
            let store = daemon
                .tls
                .clone()
                .ok_or_else(|| format!("{}: TLS listener without a certificate", b.addr))?;
            let mut tls = pingora_core::listeners::tls::TlsSettings::intermediate("", "")
                .map_err(|e| format!("cannot set up TLS on {addr}: {e}"))?;
            tls.set_cert_resolver(store);
            // ALPN: h2 preferred, http/1.1 for clients without it.
            tls.enable_h2();
            gateway.add_listener(ListenerConfig::tcp(addr).tls(tls).l4_buffer(l4_buffer()));
            on_gateway += 1;
        } else if b.listener.h2c {
            gateway_h2c.add_listener(ListenerConfig::tcp(addr).l4_buffer(l4_buffer()));
            h2c += 1;
        } else {
            gateway.add_listener(ListenerConfig::tcp(addr).l4_buffer(l4_buffer()));
            on_gateway += 1;
        }
    }
    if on_gateway > 0 {
        server.add_service(gateway);
    }
    if h2c > 0 {
        server.add_service(gateway_h2c);
    }
    #[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
    server.add_service(background_service(
        "allocator",
        crate::alloc_tick::AllocTick,
    ));
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

    for b in &listeners {
        let url = b.url();
        println!("bitrouter listening on {url}");
        log::info!("bitrouter listening on {}", b.describe());
    }
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

/// The buffers of every accepted connection. Pingora reads a downstream socket through a
/// 64 KiB buffer by default, allocated at accept and kept for the connection's life: with a
/// thousand open streams that buffer alone was ~64 MiB (benches/load, open streams). The HTTP/1
/// parser reads a request head into its own 4 KiB buffer and a body into one sized to what is
/// left of it, and rustls reads whole records into its own, so a read buffer in front of them
/// only saved syscalls on pipelined or large requests; reads go straight to the socket. The
/// write side keeps Pingora's MSS-sized buffer (1,460 bytes), which coalesces a response head
/// with its first body bytes.
pub fn l4_buffer() -> L4BufferSettings {
    L4BufferSettings {
        read: Some(0),
        write: None,
    }
}
