//! Running bitrouter as a daemon: where its control socket, pid file, upgrade socket and log
//! live ([`Paths`]), the control protocol the verbs speak ([`Request`] / replies as JSON), the
//! server side in the running router ([`control`], [`reload`]), and the client side the CLI
//! verbs use ([`client`]).
//!
//! The control socket is a Unix socket (mode 0600 in a 0700 directory), one JSON line each way.
//! It is the daemon's identity: a verb that reaches it knows it talks to a live router; a socket
//! file nobody answers on, or a pid file naming a dead (or foreign) process, is stale and
//! removed, never trusted.

pub mod client;
pub mod control;
pub mod reload;

use bitrouter_config::EnvSource;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The files of one daemon, all derived from its control socket path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Paths {
    /// The control socket (`server.control_socket`, `--socket`, or the default).
    pub socket: PathBuf,
    /// The pid file beside it (`<socket stem>.pid`).
    pub pid: PathBuf,
    /// Where a restarting process waits for the listening sockets (Pingora's upgrade socket).
    pub upgrade: PathBuf,
}

impl Paths {
    /// The files for a control socket at `socket`.
    pub fn for_socket(socket: PathBuf) -> Paths {
        Paths {
            pid: socket.with_extension("pid"),
            upgrade: socket.with_extension("upgrade.sock"),
            socket,
        }
    }

    /// The files of the daemon for `config` (the path of bitrouter.yaml, `None` for zero-config):
    /// `explicit` (`--socket`) wins, then `server.control_socket` from the file, then
    /// `$XDG_RUNTIME_DIR/bitrouter/<name>.sock` (one per config file, so several routers with
    /// different configs each have their own), else `bitrouter.sock` next to the config file,
    /// else (zero-config, no runtime dir) in a per-user directory under the temp dir.
    pub fn resolve(
        explicit: Option<&Path>,
        configured: Option<&Path>,
        config: Option<&Path>,
        env: &dyn EnvSource,
    ) -> Paths {
        if let Some(socket) = explicit.or(configured) {
            return Paths::for_socket(socket.to_path_buf());
        }
        let canonical =
            config.map(|c| std::fs::canonicalize(c).unwrap_or_else(|_| c.to_path_buf()));
        if let Some(runtime) = env.get("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
            let name = match &canonical {
                Some(c) => format!(
                    "bitrouter-{:016x}.sock",
                    fnv1a(c.to_string_lossy().as_bytes())
                ),
                None => "bitrouter.sock".to_string(),
            };
            return Paths::for_socket(Path::new(&runtime).join("bitrouter").join(name));
        }
        if let Some(dir) = canonical.as_deref().and_then(Path::parent) {
            return Paths::for_socket(dir.join("bitrouter.sock"));
        }
        let user = nix::unistd::getuid();
        Paths::for_socket(
            std::env::temp_dir()
                .join(format!("bitrouter-{user}"))
                .join("bitrouter.sock"),
        )
    }
}

/// The default log file of a daemon: `bitrouter.log` next to the config file, or next to the
/// control socket for zero-config.
pub fn default_log(config: Option<&Path>, paths: &Paths) -> PathBuf {
    let dir = config
        .map(|c| std::fs::canonicalize(c).unwrap_or_else(|_| c.to_path_buf()))
        .and_then(|c| c.parent().map(Path::to_path_buf))
        .or_else(|| paths.socket.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    dir.join("bitrouter.log")
}

/// FNV-1a: a stable name for a config path (std's hasher is randomly seeded per process, and
/// the daemon and the verbs must agree on the name).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a verb asks the daemon, one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Everything `bitrouter status` prints.
    Status,
    /// Re-read and swap the configuration; `env` holds the caller's provider keys and the
    /// variables the file references, which win over the daemon's own environment.
    Reload {
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// Graceful stop: stop accepting, let in-flight requests finish, exit.
    Stop,
}

/// The daemon's answer to [`Request::Status`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    pub pid: u32,
    pub version: String,
    /// The address its first listener is bound to (`host:port`).
    pub listen: String,
    /// Every listener, with its scheme (`http://127.0.0.1:4356`, `https://0.0.0.0:8443`).
    #[serde(default)]
    pub listeners: Vec<String>,
    /// `serve --listen` when it overrode `server.listen` (a restart keeps it).
    #[serde(default)]
    pub listen_override: Option<String>,
    /// The config file, or `None` for zero-config.
    pub config: Option<PathBuf>,
    pub uptime_secs: u64,
    /// How many configurations this process has loaded (1 + successful reloads).
    pub generation: u64,
    pub providers: Vec<String>,
    /// Routable model names (`provider/model`, bare ids, virtual models).
    pub models: usize,
    pub virtual_models: usize,
    pub requests_served: u64,
    pub requests_in_flight: usize,
    pub control_socket: PathBuf,
    pub upgrade_socket: PathBuf,
    pub log_file: Option<PathBuf>,
}

/// The daemon's answer to [`Request::Reload`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReloadReport {
    pub generation: u64,
    pub providers: Vec<String>,
    pub models: usize,
    pub providers_added: Vec<String>,
    pub providers_removed: Vec<String>,
    pub models_added: usize,
    pub models_removed: usize,
    /// Settings that changed in the file but only apply to a new process ("restart to apply").
    pub restart_to_apply: Vec<String>,
    /// The certificate file the TLS listeners now present to new connections (re-read on
    /// every reload).
    #[serde(default)]
    pub certificate: Option<String>,
}

/// One reply line: `{"ok": true, ...}` with the op's payload, or `{"ok": false, "error": ...}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload: Option<ReloadReport>,
}

impl Reply {
    pub fn error(message: impl Into<String>) -> Reply {
        Reply {
            ok: false,
            error: Some(message.into()),
            status: None,
            reload: None,
        }
    }
}

/// The daemon's environment with variables a `bitrouter reload` caller forwarded laid over it.
pub struct OverlayEnv<'a> {
    pub overlay: &'a BTreeMap<String, String>,
}

impl EnvSource for OverlayEnv<'_> {
    fn get(&self, key: &str) -> Option<String> {
        self.overlay
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
    }
    fn vars(&self) -> Vec<(String, String)> {
        let mut all: BTreeMap<String, String> = std::env::vars().collect();
        all.extend(self.overlay.iter().map(|(k, v)| (k.clone(), v.clone())));
        all.into_iter().collect()
    }
}

/// Whether a process with this pid exists (signal 0).
pub fn alive(pid: u32) -> bool {
    i32::try_from(pid)
        .is_ok_and(|p| nix::sys::signal::kill(nix::unistd::Pid::from_raw(p), None).is_ok())
}

/// Whether `pid` is a running bitrouter (so a recycled pid from a stale pid file is never
/// signalled): its command line names the bitrouter binary.
pub fn is_bitrouter(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmd| {
        cmd.split(|b| *b == 0)
            .next()
            .is_some_and(|exe| String::from_utf8_lossy(exe).contains("bitrouter"))
    })
}

/// Whether the bitrouter that was `pid` has exited: no such process, a zombie (exited, not yet
/// reaped), or another program under a recycled pid. A process in the middle of exiting is not
/// exited yet, although its command line already reads empty (the kernel releases its memory
/// before it becomes a zombie): `stop` must not report a router stopped while it still runs.
pub fn exited(pid: u32) -> bool {
    if !alive(pid) {
        return true;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // `pid (comm) S …`: the state follows the last `)` (comm may hold parentheses).
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].trim_start().chars().next());
    if matches!(state, Some('Z' | 'X' | 'x')) {
        return true;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    !cmdline.is_empty() && !is_bitrouter(pid)
}

/// The pid recorded in a pid file, if it parses.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod exit_tests {
    #[test]
    fn a_live_process_has_not_exited_and_a_reaped_one_has() {
        assert!(!super::exited(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(super::exited(pid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitrouter_config::MapEnv;

    #[test]
    fn paths_follow_the_socket() {
        let p = Paths::for_socket(PathBuf::from("/run/x/bitrouter.sock"));
        assert_eq!(p.pid, PathBuf::from("/run/x/bitrouter.pid"));
        assert_eq!(p.upgrade, PathBuf::from("/run/x/bitrouter.upgrade.sock"));
    }

    #[test]
    fn default_socket_prefers_explicit_then_config_then_runtime_dir() {
        let env = MapEnv::new([("XDG_RUNTIME_DIR", "/run/user/1000")]);
        let cfg = Path::new("/nonexistent/etc/bitrouter.yaml");
        let explicit = Path::new("/tmp/e.sock");
        assert_eq!(
            Paths::resolve(Some(explicit), Some(Path::new("/c.sock")), Some(cfg), &env).socket,
            explicit
        );
        assert_eq!(
            Paths::resolve(None, Some(Path::new("/c.sock")), Some(cfg), &env).socket,
            Path::new("/c.sock")
        );
        let a = Paths::resolve(None, None, Some(cfg), &env).socket;
        assert!(a.starts_with("/run/user/1000/bitrouter"), "{a:?}");
        let b = Paths::resolve(None, None, Some(Path::new("/other/bitrouter.yaml")), &env).socket;
        assert_ne!(a, b, "two configs, two daemons");
        let none = MapEnv::default();
        assert_eq!(
            Paths::resolve(None, None, Some(cfg), &none).socket,
            Path::new("/nonexistent/etc/bitrouter.sock")
        );
    }
}
