//! The daemon verbs: `start`, `stop`, `status`, `reload`, `restart`.
//!
//! Each finds the router through its control socket (see [`crate::daemon`]) and says what it
//! did. Exit codes: 0 done (for `status`: running), 1 error, 2 invalid configuration (`start`),
//! 3 not running (`status`, `reload`), as `systemctl status` does.

use crate::daemon::client::{call, forwarded_env, ClientError};
use crate::daemon::{alive, default_log, is_bitrouter, read_pid, Paths, Request, Status};
use bitrouter_config::ProcessEnv;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NOT_RUNNING: i32 = 3;
/// How long a status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
/// How long `start` and `restart` wait for the new router to answer.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a reload may take (trust roots, many providers).
const RELOAD_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest `stop` and `restart` wait for a router to drain and exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(3600);

/// The config file and control socket a verb is about.
struct Target {
    file: Option<PathBuf>,
    paths: Paths,
}

fn target(config: Option<&Path>, socket: Option<&Path>) -> Target {
    let env = ProcessEnv;
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let file = bitrouter_config::discover(config, &cwd, &env);
    let configured = file
        .as_deref()
        .and_then(|f| bitrouter_config::peek_control_socket(f, &env));
    let paths = Paths::resolve(socket, configured.as_deref(), file.as_deref(), &env);
    Target { file, paths }
}

fn status_of(paths: &Paths) -> Result<Status, ClientError> {
    let reply = call(&paths.socket, &Request::Status, STATUS_TIMEOUT)?;
    match (reply.ok, reply.status) {
        (true, Some(status)) => Ok(status),
        _ => Err(ClientError::Failed(
            reply
                .error
                .unwrap_or_else(|| "the router sent no status".into()),
        )),
    }
}

/// Removes a socket file nobody answers on and a pid file naming no running bitrouter. Returns
/// the pid of a live bitrouter named by the pid file (one whose socket is gone), if any.
fn clean_stale(paths: &Paths) -> Option<u32> {
    if paths.socket.exists() {
        let _ = std::fs::remove_file(&paths.socket);
    }
    match read_pid(&paths.pid) {
        Some(pid) if alive(pid) && is_bitrouter(pid) && pid != std::process::id() => Some(pid),
        Some(_) | None => {
            let _ = std::fs::remove_file(&paths.pid);
            None
        }
    }
}

/// `bitrouter status`.
pub fn status(config: Option<&Path>, socket: Option<&Path>, json: bool) -> i32 {
    let t = target(config, socket);
    match status_of(&t.paths) {
        Ok(s) => {
            if json {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["running"] = serde_json::Value::Bool(true);
                println!("{v}");
            } else {
                print_status(&s);
            }
            0
        }
        Err(ClientError::NotRunning) => {
            let orphan = clean_stale(&t.paths);
            if json {
                println!(
                    "{}",
                    serde_json::json!({"running": false, "control_socket": t.paths.socket, "orphan_pid": orphan})
                );
            } else {
                println!(
                    "bitrouter is not running (control socket {})",
                    t.paths.socket.display()
                );
                if let Some(pid) = orphan {
                    println!("  but pid {pid} (from {}) is a bitrouter without its control socket; stop it with kill -TERM {pid}", t.paths.pid.display());
                }
            }
            NOT_RUNNING
        }
        Err(ClientError::Failed(e)) => {
            eprintln!("error: {e}");
            1
        }
    }
}

fn print_status(s: &Status) {
    println!("bitrouter is running");
    println!("  pid:            {}", s.pid);
    println!("  version:        {}", s.version);
    match s.listeners.split_first() {
        None => println!("  listening on:   http://{}", s.listen),
        Some((first, rest)) => {
            println!("  listening on:   {first}");
            for l in rest {
                println!("                  {l}");
            }
        }
    }
    println!(
        "  config:         {}",
        s.config
            .as_ref()
            .map_or("zero-config (environment)".to_string(), |p| p
                .display()
                .to_string())
    );
    println!("  uptime:         {}", human_duration(s.uptime_secs));
    println!(
        "  configuration:  generation {} ({} reload(s))",
        s.generation,
        s.generation.saturating_sub(1)
    );
    println!(
        "  providers:      {} ({})",
        s.providers.len(),
        s.providers.join(", ")
    );
    println!(
        "  models:         {} routable, {} virtual",
        s.models, s.virtual_models
    );
    println!(
        "  requests:       {} served, {} in flight",
        s.requests_served, s.requests_in_flight
    );
    println!("  control socket: {}", s.control_socket.display());
    if let Some(log) = &s.log_file {
        println!("  log:            {}", log.display());
    }
}

/// Every listener of `s` (`http://127.0.0.1:4356, https://0.0.0.0:8443`); a router from before
/// listener lists reports only `listen`.
fn urls(s: &Status) -> String {
    if s.listeners.is_empty() {
        format!("http://{}", s.listen)
    } else {
        s.listeners.join(", ")
    }
}

fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `bitrouter start`.
pub fn start(config: Option<&Path>, log: Option<&Path>) -> i32 {
    let t = target(config, None);
    match status_of(&t.paths) {
        Ok(s) => {
            eprintln!(
                "error: bitrouter is already running for this configuration: pid {}, listening on {} (control socket {})",
                s.pid,
                urls(&s),
                s.control_socket.display()
            );
            return 1;
        }
        Err(ClientError::NotRunning) => {
            if let Some(pid) = clean_stale(&t.paths) {
                eprintln!(
                    "error: a bitrouter (pid {pid}, from {}) is running without its control socket; stop it first (kill -TERM {pid})",
                    t.paths.pid.display()
                );
                return 1;
            }
        }
        Err(ClientError::Failed(e)) => {
            eprintln!("error: {e}");
            return 1;
        }
    }
    let log = log
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_log(t.file.as_deref(), &t.paths));
    let mut child = match spawn_serve(&t, &log, &[]) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    match wait_until_serving(&t.paths, &mut child) {
        Ok(s) => {
            println!(
                "bitrouter started: pid {}, listening on {}",
                s.pid,
                urls(&s)
            );
            println!("  log:            {}", log.display());
            println!("  control socket: {}", s.control_socket.display());
            0
        }
        Err(code) => code,
    }
}

/// A log file and the length it had before the child started (its new lines are the child's).
struct LogAt(PathBuf, u64);

/// Starts `bitrouter serve` detached, logging to `log`, with the daemon's control socket.
fn spawn_serve(t: &Target, log: &Path, extra: &[&str]) -> Result<(Child, LogAt), String> {
    if let Some(dir) = log.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the log directory {}: {e}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(log)
        .map_err(|e| format!("cannot open the log file {}: {e}", log.display()))?;
    let before = file.metadata().map(|m| m.len()).unwrap_or(0);
    let err = file
        .try_clone()
        .map_err(|e| format!("cannot open the log file {}: {e}", log.display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the bitrouter executable: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("serve");
    if let Some(file) = &t.file {
        cmd.arg("-c").arg(file);
    }
    cmd.arg("--log")
        .arg(log)
        .arg("--socket")
        .arg(&t.paths.socket)
        .arg("--detach")
        .args(extra)
        .stdin(Stdio::null())
        // Early failures (an invalid config, a panic) land in the log too.
        .stdout(file)
        .stderr(err);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start bitrouter serve: {e}"))?;
    Ok((child, LogAt(log.to_path_buf(), before)))
}

/// Waits until the router answers on its control socket as `child`, or `child` exits (then
/// prints what it logged, and returns the exit code to use).
fn wait_until_serving(paths: &Paths, spawned: &mut (Child, LogAt)) -> Result<Status, i32> {
    let (child, log) = spawned;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(exit)) = child.try_wait() {
            eprintln!("error: bitrouter did not start ({exit}); it logged:",);
            eprint!("{}", log_since(log));
            return Err(if exit.code() == Some(2) { 2 } else { 1 });
        }
        if let Ok(s) = status_of(paths) {
            // The control socket answers before Pingora has bound the listener (the port was
            // checked free just before): "started" means a client can connect now.
            if s.pid == child.id() && accepts(&s.listen) {
                return Ok(s);
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            eprintln!(
                "error: bitrouter did not answer within {} s; it logged:",
                START_TIMEOUT.as_secs()
            );
            eprint!("{}", log_since(log));
            return Err(1);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Whether something accepts TCP connections at `listen` (`host:port`).
fn accepts(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    listen
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
}

/// What was appended to the log after `log.1` (at most the last 8 KiB).
fn log_since(log: &LogAt) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(&log.0) {
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let from = log.1.max(len.saturating_sub(8192));
        if f.seek(SeekFrom::Start(from)).is_ok() {
            let _ = f.read_to_string(&mut text);
        }
    }
    // Indented, to keep it apart from our own messages.
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `bitrouter stop`.
pub fn stop(config: Option<&Path>, socket: Option<&Path>) -> i32 {
    let t = target(config, socket);
    let pid = match call(&t.paths.socket, &Request::Stop, STATUS_TIMEOUT) {
        Ok(reply) if reply.ok => match reply.status {
            Some(s) => {
                if s.requests_in_flight > 0 {
                    println!(
                        "stopping bitrouter (pid {}): waiting for {} in-flight request(s)",
                        s.pid, s.requests_in_flight
                    );
                }
                s.pid
            }
            None => {
                eprintln!("error: the router did not say which process it is");
                return 1;
            }
        },
        Ok(reply) => {
            eprintln!(
                "error: {}",
                reply.error.unwrap_or_else(|| "stop refused".into())
            );
            return 1;
        }
        Err(ClientError::NotRunning) => match clean_stale(&t.paths) {
            Some(pid) => {
                // A router whose control socket was removed: its pid file says who it is.
                if let Err(e) = signal(pid, Signal::SIGTERM) {
                    eprintln!("error: {e}");
                    return 1;
                }
                pid
            }
            None => {
                println!(
                    "bitrouter is not running (control socket {})",
                    t.paths.socket.display()
                );
                return 0;
            }
        },
        Err(ClientError::Failed(e)) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let started = Instant::now();
    if wait_for_exit(pid, EXIT_TIMEOUT) {
        println!(
            "bitrouter stopped (pid {pid}, {:.1} s)",
            started.elapsed().as_secs_f64()
        );
        0
    } else {
        eprintln!("error: bitrouter (pid {pid}) is still running");
        1
    }
}

fn signal(pid: u32, sig: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("bad pid {pid}"))?;
    kill(Pid::from_raw(raw), sig).map_err(|e| format!("cannot signal pid {pid}: {e}"))
}

fn wait_for_exit(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !crate::daemon::exited(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// `bitrouter reload`.
pub fn reload(config: Option<&Path>, socket: Option<&Path>) -> i32 {
    let t = target(config, socket);
    // The daemon re-reads its own file; the variables it references come from here.
    let daemon_file = status_of(&t.paths).ok().and_then(|s| s.config);
    let env = forwarded_env(daemon_file.as_deref().or(t.file.as_deref()));
    match call(&t.paths.socket, &Request::Reload { env }, RELOAD_TIMEOUT) {
        Ok(reply) if reply.ok => {
            let r = reply.reload.unwrap_or_default();
            println!(
                "reloaded: generation {}, {} provider(s), {} routable model(s)",
                r.generation,
                r.providers.len(),
                r.models
            );
            if let Some(cert) = &r.certificate {
                println!("  TLS certificate:   {cert} (new connections)");
            }
            if !r.providers_added.is_empty() {
                println!("  providers added:   {}", r.providers_added.join(", "));
            }
            if !r.providers_removed.is_empty() {
                println!("  providers removed: {}", r.providers_removed.join(", "));
            }
            if r.models_added + r.models_removed > 0 {
                println!(
                    "  models:            +{} -{}",
                    r.models_added, r.models_removed
                );
            }
            for setting in &r.restart_to_apply {
                println!("  not applied: {setting}: restart to apply (bitrouter restart)");
            }
            0
        }
        Ok(reply) => {
            eprintln!(
                "error: reload rejected; the running configuration stays.\n{}",
                reply.error.unwrap_or_default()
            );
            1
        }
        Err(ClientError::NotRunning) => {
            eprintln!(
                "bitrouter is not running (control socket {})",
                t.paths.socket.display()
            );
            NOT_RUNNING
        }
        Err(ClientError::Failed(e)) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// `bitrouter restart`: a new process takes the listening socket over; the old one drains.
pub fn restart(config: Option<&Path>, socket: Option<&Path>, log: Option<&Path>) -> i32 {
    let mut t = target(config, socket);
    let old = match status_of(&t.paths) {
        Ok(s) => s,
        Err(ClientError::NotRunning) => {
            println!("bitrouter is not running; starting it");
            return start(config, log);
        }
        Err(ClientError::Failed(e)) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // The new process serves the daemon's own file unless -c names another.
    if config.is_none() {
        t.file = old.config.clone();
    }
    let log = log
        .map(Path::to_path_buf)
        .or_else(|| old.log_file.clone())
        .unwrap_or_else(|| default_log(t.file.as_deref(), &t.paths));
    let upgrade = old.upgrade_socket.clone();
    let _ = std::fs::remove_file(&upgrade);
    let listen = old.listen_override.clone();
    let mut extra: Vec<&str> = vec!["--upgrade"];
    if let Some(l) = listen.as_deref() {
        extra.push("--listen");
        extra.push(l);
    }
    let mut spawned = match spawn_serve(&t, &log, &extra) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    // Only once the new process waits on the upgrade socket (its configuration loaded) is the
    // old one told to hand over: an invalid config leaves the old router serving.
    let deadline = Instant::now() + START_TIMEOUT;
    while !upgrade.exists() {
        if let Ok(Some(exit)) = spawned.0.try_wait() {
            eprintln!(
                "error: the new bitrouter did not start ({exit}); the running one (pid {}) keeps serving. It logged:",
                old.pid
            );
            eprint!("{}", log_since(&spawned.1));
            return if exit.code() == Some(2) { 2 } else { 1 };
        }
        if Instant::now() > deadline {
            let _ = spawned.0.kill();
            eprintln!(
                "error: the new bitrouter did not get ready within {} s; the running one (pid {}) keeps serving",
                START_TIMEOUT.as_secs(),
                old.pid
            );
            return 1;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = signal(old.pid, Signal::SIGQUIT) {
        let _ = spawned.0.kill();
        eprintln!("error: {e}");
        return 1;
    }
    let new = match wait_until_serving(&t.paths, &mut spawned) {
        Ok(s) => s,
        Err(code) => return code,
    };
    println!(
        "bitrouter restarted: pid {} took over {} from pid {}",
        new.pid,
        urls(&new),
        old.pid
    );
    let started = Instant::now();
    if wait_for_exit(old.pid, EXIT_TIMEOUT) {
        println!(
            "  the previous process (pid {}) drained and exited after {:.1} s",
            old.pid,
            started.elapsed().as_secs_f64()
        );
        0
    } else {
        eprintln!(
            "error: the previous process (pid {}) is still running",
            old.pid
        );
        1
    }
}
