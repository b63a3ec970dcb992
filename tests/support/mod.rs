//! Shared harness for the integration tests: start the real `bitrouter` binary on a free
//! loopback port with a temp config and a clean environment, and talk to it over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

pub mod wire;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_bitrouter")
}

/// The workspace root (for conf/ and schemas/).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A running `bitrouter serve`.
///
/// It runs under a tiny `sh` wrapper that kills it when our end of its stdin closes, so a router
/// shared by every test in a file (held in a `static`) still dies with the test process.
pub struct Router {
    shell: Child,
    stdin: Option<ChildStdin>,
    pub addr: SocketAddr,
    pub pid: u32,
    logs: Arc<Mutex<String>>,
    pub dir: tempfile::TempDir,
}

/// How to start a router.
#[derive(Default)]
pub struct RouterSpec<'a> {
    /// bitrouter.yaml contents; `None` means zero-config.
    pub config: Option<&'a str>,
    /// Environment variables (the environment is otherwise empty but for PATH).
    pub env: Vec<(&'a str, String)>,
    /// Extra arguments after `serve`.
    pub args: Vec<&'a str>,
    /// Files written into the router's folder before it starts (path relative to it, text):
    /// e.g. `policies/team.yaml` beside bitrouter.yaml.
    pub files: Vec<(&'a str, String)>,
    /// Listen where the config says (`server.listen`, with port 0) instead of `--listen
    /// 127.0.0.1:0`: for configs with several listeners or TLS.
    pub keep_listen: bool,
}

impl Router {
    /// Starts a router, retrying when the port it picked was taken by another process between
    /// the pick and the bind (tests of several binaries run at once).
    pub fn start(spec: RouterSpec<'_>) -> Router {
        let mut last = None;
        for _ in 0..3 {
            match Router::try_start(&spec) {
                Ok(r) => return r,
                Err(logs) => last = Some(logs),
            }
        }
        panic!(
            "bitrouter did not start; its output:\n{}",
            last.unwrap_or_default()
        );
    }

    fn try_start(spec: &RouterSpec<'_>) -> Result<Router, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        for (rel, text) in &spec.files {
            let path = dir.path().join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).expect("create folder");
            }
            std::fs::write(&path, text).expect("write file");
        }
        let mut serve = if spec.keep_listen {
            format!("exec '{}' serve", bin())
        } else {
            format!("exec '{}' serve --listen 127.0.0.1:0", bin())
        };
        if let Some(config) = spec.config {
            let path = dir.path().join("bitrouter.yaml");
            std::fs::write(&path, config).expect("write config");
            serve.push_str(&format!(" -c '{}'", path.display()));
        }
        for a in &spec.args {
            serve.push_str(&format!(" '{a}'"));
        }
        // The wrapper: start bitrouter, report its pid, wait for stdin to close, then stop it.
        let script = format!(
            "({serve}) & pid=$!; echo \"bitrouter-pid $pid\"; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid"
        );
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(script)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", dir.path())
            .env("RUST_BACKTRACE", "1")
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &spec.env {
            cmd.env(k, v);
        }
        let mut shell = cmd.spawn().expect("spawn bitrouter");
        let stdin = shell.stdin.take();
        let logs = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        for stream in [
            Box::new(shell.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(shell.stderr.take().expect("stderr")),
        ] {
            let logs = logs.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if std::env::var_os("BITROUTER_TEST_ECHO").is_some() {
                        eprintln!("[bitrouter] {line}");
                    }
                    logs.lock().unwrap().push_str(&line);
                    logs.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut addr, mut pid) = (None, None);
        while addr.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(p) = line.strip_prefix("bitrouter-pid ") {
                        pid = p.trim().parse().ok();
                    }
                    if let Some(a) = line
                        .strip_prefix("bitrouter listening on http://")
                        .or_else(|| line.strip_prefix("bitrouter listening on https://"))
                    {
                        addr = Some(a.trim().parse().expect("listen addr"));
                    }
                }
                Err(_) => {
                    let _ = shell.kill();
                    let _ = shell.wait();
                    return Err(logs.lock().unwrap().clone());
                }
            }
        }
        let addr = addr.unwrap();
        let router = Router {
            shell,
            stdin,
            addr,
            pid: pid.expect("pid line"),
            logs,
            dir,
        };
        if wait_for_port(addr) {
            Ok(router)
        } else {
            Err(router.logs())
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Everything the router printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits until the logs contain `needle` (log lines are written after the response).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let logs = self.logs();
            if logs.contains(needle) {
                return logs;
            }
            if Instant::now() > deadline {
                panic!("log line containing {needle:?} never appeared; logs:\n{logs}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM to bitrouter itself.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Sends SIGHUP to bitrouter itself (re-read bitrouter.yaml; the caller waits for the
    /// log line it expects).
    pub fn sighup(&self) {
        let status = Command::new("kill")
            .arg("-HUP")
            .arg(self.pid.to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the whole wrapper to exit (after [`Router::sigterm`]).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        self.stdin.take();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.shell.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.wait_exit(Duration::from_secs(10));
        let _ = self.shell.kill();
    }
}

fn wait_for_port(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// Runs a CLI verb with a clean environment in `cwd`.
pub fn cli(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bitrouter")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An HTTP client that never retries and never pools across tests' runtimes.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(0)
        .build()
        .expect("client")
}

/// A unique tag for a test's prompt, so a shared mock's records can be told apart.
pub fn tag(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Parses an SSE body into (event, data) pairs.
pub fn sse_events(body: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for block in body.replace("\r\n", "\n").split("\n\n") {
        let mut event = None;
        let mut data = Vec::new();
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
            }
        }
        if event.is_some() || !data.is_empty() {
            out.push((event, data.join("\n")));
        }
    }
    out
}

/// Starts a streaming chat completion on a raw socket, waits for the `200` head and closes the
/// connection: "the client hung up" meaning exactly a TCP close, which an HTTP client library
/// cannot be made to do mid-stream. Returns when it was closed.
pub async fn open_stream_and_hang_up(addr: SocketAddr, body: &str) -> Instant {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    sock.write_all(body.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = sock.read(&mut buf).await.unwrap();
    let got = String::from_utf8_lossy(&buf[..n]);
    assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
    drop(sock);
    Instant::now()
}

/// The Python with the official SDKs (openai, anthropic, google-genai): BITROUTER_TEST_PYTHON
/// (set by scripts/test) or ./.venv; without one, SDK tests fail with instructions rather than
/// skip.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("BITROUTER_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the SDK tests need Python with openai, anthropic and google-genai: run scripts/test (it creates .venv), or set BITROUTER_TEST_PYTHON"
    );
    venv
}
