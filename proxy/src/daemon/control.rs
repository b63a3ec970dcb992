//! The running router's side of the daemon verbs: the control socket server, SIGHUP, and the
//! pid file; and cleaning them up at exit.
//!
//! Both run on threads of their own (blocking I/O on a Unix socket; a one-thread runtime for the
//! signal), outside Pingora's worker runtimes, so a slow control client or a reload never holds
//! a request worker.

use super::reload::{reload, Rejected};
use super::{Paths, Reply, Request, Status};
use crate::state::AppState;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a control client may take to send its request or read the reply.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request line accepted (a reload carries some environment variables).
const MAX_REQUEST: u64 = 1024 * 1024;

/// What the control socket, SIGHUP and reload need to know about the running router.
pub struct Daemon {
    pub state: Arc<AppState>,
    /// The file to re-read on reload (`None`: zero-config, re-detected from the environment).
    pub config_path: Option<PathBuf>,
    /// `serve --listen`, kept across reloads (the file's `server.listen` does not apply).
    pub listen_override: Option<String>,
    /// The address actually bound by the first listener.
    pub listen: String,
    /// Every listener, as `bitrouter status` shows it (`https://0.0.0.0:443`).
    pub listeners: Vec<String>,
    /// The certificate of the TLS listeners, which a reload replaces (`None`: no TLS listener).
    pub tls: Option<Arc<crate::listeners::CertStore>>,
    /// The `server` section this process started with: what a reload cannot change is
    /// compared with it, so "restart to apply" stays reported until a restart.
    pub started_server: bitrouter_config::ServerConfig,
    pub paths: Paths,
    /// Variables forwarded by `bitrouter reload` callers, laid over the process environment;
    /// its lock also serialises reloads.
    pub overlay: Mutex<BTreeMap<String, String>>,
}

impl Daemon {
    /// What `bitrouter status` shows.
    pub fn status(&self) -> Status {
        let snap = self.state.snapshot();
        Status {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen: self.listen.clone(),
            listeners: self.listeners.clone(),
            listen_override: self.listen_override.clone(),
            config: self.config_path.clone(),
            uptime_secs: self.state.started.elapsed().as_secs(),
            generation: snap.generation,
            providers: snap.config.providers.iter().map(|p| p.id.clone()).collect(),
            models: snap.table.models().len(),
            virtual_models: snap.config.models.len(),
            requests_served: self.state.served(),
            requests_in_flight: self.state.inflight(),
            control_socket: self.paths.socket.clone(),
            upgrade_socket: self.paths.upgrade.clone(),
            log_file: crate::logger::file(),
        }
    }

    fn handle(&self, request: Request) -> Reply {
        match request {
            Request::Status => Reply {
                ok: true,
                error: None,
                status: Some(self.status()),
                reload: None,
            },
            Request::Reload { env } => match reload(self, Some(env)) {
                Ok(report) => Reply {
                    ok: true,
                    error: None,
                    status: None,
                    reload: Some(report),
                },
                Err(Rejected(why)) => {
                    log::warn!("reload rejected, the running configuration stays: {why}");
                    Reply::error(why)
                }
            },
            Request::Stop => {
                log::info!("stop requested on the control socket");
                // Pingora's graceful terminate, the same path as `kill -TERM`.
                let me = nix::unistd::Pid::this();
                match nix::sys::signal::kill(me, nix::sys::signal::Signal::SIGTERM) {
                    Ok(()) => Reply {
                        ok: true,
                        error: None,
                        status: Some(self.status()),
                        reload: None,
                    },
                    Err(e) => Reply::error(format!("cannot signal the router: {e}")),
                }
            }
        }
    }
}

/// What this process created, removed at exit only while it is still its own (after a
/// `restart` the new process owns the socket path and the pid file).
struct Owned {
    socket: PathBuf,
    socket_ino: u64,
    pid: PathBuf,
}

static OWNED: Mutex<Option<Owned>> = Mutex::new(None);

/// Binds the control socket and writes the pid file, then serves the socket on a thread.
///
/// A socket file another live router answers on means one is already running for this
/// socket: an error, unless `takeover` (a `restart` handing over from that router). A socket
/// file nobody answers on is stale and replaced.
pub fn start(daemon: Arc<Daemon>, takeover: bool) -> Result<(), String> {
    let paths = &daemon.paths;
    if let Some(dir) = paths.socket.parent() {
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    if paths.socket.exists() {
        if UnixStream::connect(&paths.socket).is_ok() && !takeover {
            return Err(format!(
                "another bitrouter is already running with control socket {} (bitrouter status -c ... shows it; bitrouter stop stops it)",
                paths.socket.display()
            ));
        }
        // Stale (or being taken over): replace it. A new bind on the same path makes the
        // verbs reach this process from now on.
        let _ = std::fs::remove_file(&paths.socket);
    }
    let listener = UnixListener::bind(&paths.socket).map_err(|e| {
        format!(
            "cannot bind the control socket {}: {e}",
            paths.socket.display()
        )
    })?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", paths.socket.display()))?;
    let socket_ino = std::fs::metadata(&paths.socket)
        .map(|m| m.ino())
        .unwrap_or_default();
    write_pid(&paths.pid)?;
    if let Ok(mut owned) = OWNED.lock() {
        *owned = Some(Owned {
            socket: paths.socket.clone(),
            socket_ino,
            pid: paths.pid.clone(),
        });
    }
    std::thread::Builder::new()
        .name("bitrouter-control".into())
        .spawn(move || serve(listener, daemon))
        .map_err(|e| format!("cannot start the control thread: {e}"))?;
    Ok(())
}

fn write_pid(path: &Path) -> Result<(), String> {
    let tmp = path.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{}\n", std::process::id()))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write the pid file {}: {e}", path.display()))
}

fn serve(listener: UnixListener, daemon: Arc<Daemon>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                // One at a time: control requests are rare, and serialising them keeps two
                // reloads from interleaving. The timeouts bound what one client can hold.
                let _ = stream.set_read_timeout(Some(CLIENT_TIMEOUT));
                let _ = stream.set_write_timeout(Some(CLIENT_TIMEOUT));
                answer(stream, &daemon);
            }
            Err(e) => {
                log::warn!("control socket: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

fn answer(stream: UnixStream, daemon: &Daemon) {
    let mut line = String::new();
    let read = {
        let Ok(clone) = stream.try_clone() else {
            return;
        };
        let mut reader = BufReader::new(std::io::Read::take(clone, MAX_REQUEST));
        reader.read_line(&mut line)
    };
    let reply = match read {
        Ok(0) => return,
        Ok(_) => match serde_json::from_str::<Request>(&line) {
            Ok(request) => daemon.handle(request),
            Err(e) => Reply::error(format!("bad control request: {e}")),
        },
        Err(e) => Reply::error(format!("cannot read the control request: {e}")),
    };
    let mut stream = stream;
    if let Ok(mut text) = serde_json::to_string(&reply) {
        text.push('\n');
        let _ = stream.write_all(text.as_bytes());
    }
}

/// The process's signals, all handled from the start (before the control socket answers, so a
/// `stop` or `restart` right after `start` is never met by a signal's default action, which
/// would end the process at once):
/// - SIGHUP reloads, as `bitrouter reload` does, with the daemon's own environment plus what
///   earlier `reload` callers forwarded;
/// - SIGTERM (graceful stop), SIGINT (fast stop) and SIGQUIT (hand the sockets to a new process)
///   are passed to Pingora through the returned watch, in place of its own handler (which
///   registers only once the server runs).
pub fn install_signals(daemon: Arc<Daemon>) -> Result<Box<dyn ShutdownSignalWatch>, String> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the signal runtime: {e}"))?;
    let register = |kind: SignalKind, name: &str| {
        let _in_runtime = rt.enter();
        signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))
    };
    let mut hup = register(SignalKind::hangup(), "SIGHUP")?;
    let mut term = register(SignalKind::terminate(), "SIGTERM")?;
    let mut int = register(SignalKind::interrupt(), "SIGINT")?;
    let mut quit = register(SignalKind::quit(), "SIGQUIT")?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::Builder::new()
        .name("bitrouter-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                loop {
                    let shutdown = tokio::select! {
                        _ = hup.recv() => {
                            log::info!("received SIGHUP: reloading the configuration");
                            let daemon = daemon.clone();
                            // Blocking work (file reads, trust roots) off the signal runtime.
                            let result = tokio::task::spawn_blocking(move || {
                                reload(&daemon, None).map(|_| ())
                            })
                            .await;
                            if let Ok(Err(Rejected(why))) = result {
                                log::warn!(
                                    "reload rejected, the running configuration stays: {why}"
                                );
                            }
                            continue;
                        }
                        _ = term.recv() => ShutdownSignal::GracefulTerminate,
                        _ = int.recv() => ShutdownSignal::FastShutdown,
                        _ = quit.recv() => ShutdownSignal::GracefulUpgrade,
                    };
                    if tx.send(shutdown).is_err() {
                        return;
                    }
                }
            })
        })
        .map_err(|e| format!("cannot start the signal thread: {e}"))?;
    Ok(Box::new(Signals(tokio::sync::Mutex::new(rx))))
}

/// Pingora's view of the signals [`install_signals`] caught.
struct Signals(tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<ShutdownSignal>>);

#[async_trait::async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        self.0
            .lock()
            .await
            .recv()
            .await
            .unwrap_or(ShutdownSignal::FastShutdown)
    }
}

/// Removes the control socket and pid file at exit, if they are still this process's.
pub fn cleanup() {
    let Some(owned) = OWNED.lock().ok().and_then(|mut o| o.take()) else {
        return;
    };
    let ours = std::fs::metadata(&owned.socket).is_ok_and(|m| m.ino() == owned.socket_ino);
    if ours {
        let _ = std::fs::remove_file(&owned.socket);
    }
    if super::read_pid(&owned.pid) == Some(std::process::id()) {
        let _ = std::fs::remove_file(&owned.pid);
    }
}
