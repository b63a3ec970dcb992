//! The daemon verbs against the real binary: `start`, `status`, `reload` (and SIGHUP),
//! `restart`, `stop`; stale files; and zero failed requests while the router is reloaded and
//! restarted under load, with a stream that spans a restart.
//!
//! Each test has its own directory holding bitrouter.yaml, the control socket, the pid file and
//! the log (XDG_RUNTIME_DIR is unset, so the socket lands next to the config), and a guard that
//! stops whatever router it started, even when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, MockUpstream, Script};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{cli, client, stderr, stdout, tag};

/// A test's directory and the router it may have started.
struct Daemon {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
}

impl Daemon {
    fn new(config: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bitrouter.yaml"), config).unwrap();
        Daemon {
            dir,
            env: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_config(&self, config: &str) {
        std::fs::write(self.path("bitrouter.yaml"), config).unwrap();
    }

    /// Runs `bitrouter <args> -c <dir>/bitrouter.yaml`.
    fn run(&self, args: &[&str]) -> Output {
        let config = self.path("bitrouter.yaml");
        let mut all: Vec<&str> = args.to_vec();
        all.push("-c");
        all.push(config.to_str().unwrap());
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        cli(&all, &env, self.dir.path())
    }

    fn status(&self) -> (i32, Value) {
        let out = self.run(&["status", "--json"]);
        let v = serde_json::from_str(stdout(&out).trim()).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), v)
    }

    fn pid(&self) -> u32 {
        let (code, v) = self.status();
        assert_eq!(code, 0, "not running: {v}");
        v["pid"].as_u64().unwrap() as u32
    }

    fn listen(&self) -> String {
        self.status().1["listen"].as_str().unwrap().to_string()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("bitrouter.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stop whatever is still running from this directory (a failed test included).
        if let Some(pid) = std::fs::read_to_string(self.path("bitrouter.pid"))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .output();
        }
        let _ = self.run(&["stop"]);
    }
}

fn config(mock: &MockUpstream, port: u16, providers: &str) -> String {
    let m = mock.base_url();
    let mut out =
        format!("server:\n  listen: 127.0.0.1:{port}\n  shutdown_grace_secs: 20\nproviders:\n");
    for p in providers.split(',') {
        out.push_str(&format!(
            "  {p}:\n    api_base: {m}/v1\n    api_key: sk-{p}\n    api_protocol: chat_completions\n    models:\n      - id: {p}-model\n"
        ));
    }
    out
}

/// A free loopback port (the router must keep one address across restarts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn chat(addr: &str, model: &str, text: &str) -> reqwest::Result<(u16, String)> {
    let r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await?;
    let status = r.status().as_u16();
    Ok((status, r.text().await?))
}

#[tokio::test]
async fn start_status_reload_sighup_restart_stop() {
    let mock = MockUpstream::start();
    let port = free_port();
    let d = Daemon::new(&config(&mock, port, "alpha"));

    // Not running yet.
    let (code, v) = d.status();
    assert_eq!(code, 3, "{v}");
    assert_eq!(v["running"], false);

    let out = d.run(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("listening on http://127.0.0.1"),
        "{}",
        stdout(&out)
    );
    let (code, v) = d.status();
    assert_eq!(code, 0);
    assert_eq!(v["providers"], json!(["alpha"]));
    assert_eq!(v["generation"], 1);
    let addr = d.listen();
    let first_pid = d.pid();
    let text = stdout(&d.run(&["status"]));
    assert!(
        text.contains("bitrouter is running") && text.contains(&format!("{first_pid}")),
        "{text}"
    );
    let mode = std::fs::metadata(d.path("bitrouter.sock")).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.unwrap(), 0o600);

    let t = tag("lifecycle");
    assert_eq!(chat(&addr, "alpha-model", &t).await.unwrap().0, 200);

    // A second start for the same config is refused.
    let out = d.run(&["start"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));

    // Reload with a changed model list: the new one routes, the removed one is a 404.
    d.write_config(&config(&mock, port, "beta"));
    let out = d.run(&["reload"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("providers added:   beta"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("providers removed: alpha"),
        "{}",
        stdout(&out)
    );
    assert_eq!(chat(&addr, "beta-model", &t).await.unwrap().0, 200);
    assert_eq!(chat(&addr, "alpha-model", &t).await.unwrap().0, 404);

    // A broken file is rejected with file:line:col; the running config keeps serving.
    std::fs::write(
        d.path("bitrouter.yaml"),
        format!(
            "{}  gamma:\n    api_base: not a url\n",
            config(&mock, port, "beta")
        ),
    )
    .unwrap();
    let out = d.run(&["reload"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("reload rejected") && err.contains("bitrouter.yaml:"),
        "{err}"
    );
    assert_eq!(chat(&addr, "beta-model", &t).await.unwrap().0, 200);
    assert_eq!(d.status().1["generation"], 2);

    // Keys forwarded by `reload` from the caller's environment.
    let with_var = config(&mock, port, "beta").replace("sk-beta", "${BETA_KEY}");
    d.write_config(&with_var);
    assert_eq!(
        d.run(&["reload"]).status.code(),
        Some(1),
        "BETA_KEY unset: rejected"
    );
    let mut d = d;
    d.env.push(("BETA_KEY".into(), "sk-forwarded".into()));
    let out = d.run(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t2 = tag("forwarded");
    assert_eq!(chat(&addr, "beta-model", &t2).await.unwrap().0, 200);
    let seen = mock.requests_containing(&t2);
    assert_eq!(seen[0].header("authorization"), Some("Bearer sk-forwarded"));

    // SIGHUP reloads too (the forwarded key is remembered).
    d.write_config(&config(&mock, port, "beta,gamma").replace("sk-beta", "${BETA_KEY}"));
    let pid = d.pid();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .output()
        .unwrap();
    assert!(hup.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.status().1["generation"] != 4 {
        assert!(
            Instant::now() < deadline,
            "SIGHUP did not reload:\n{}",
            d.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(chat(&addr, "gamma-model", &t).await.unwrap().0, 200);
    assert_eq!(d.pid(), pid, "SIGHUP must not end the process");

    // Restart: a new process on the same address.
    let out = d.run(&["restart"]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        d.log()
    );
    let new_pid = d.pid();
    assert_ne!(new_pid, pid);
    assert!(!support_alive(pid), "the old process must have exited");
    assert_eq!(d.listen(), addr);
    assert_eq!(chat(&addr, "gamma-model", &t).await.unwrap().0, 200);

    // Log rotation: after the file is moved away, a reload makes new lines go to a new file.
    std::fs::rename(d.path("bitrouter.log"), d.path("bitrouter.log.1")).unwrap();
    assert!(d.run(&["reload"]).status.success());
    let t3 = tag("rotated");
    assert_eq!(chat(&addr, "gamma-model", &t3).await.unwrap().0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.log().contains("reloaded configuration") {
        assert!(
            Instant::now() < deadline,
            "no new log file after the reload"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(std::fs::read_to_string(d.path("bitrouter.log.1"))
        .unwrap()
        .contains("took over the listening socket"));

    // Stop: graceful, the files are cleaned up, status says not running.
    let out = d.run(&["stop"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("bitrouter stopped"),
        "{}",
        stdout(&out)
    );
    assert!(!support_alive(new_pid));
    assert!(!d.path("bitrouter.sock").exists());
    assert!(!d.path("bitrouter.pid").exists());
    assert_eq!(d.status().0, 3);
    // Stopping again is not an error.
    assert!(d.run(&["stop"]).status.success());
}

fn support_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[tokio::test]
async fn stale_socket_and_pid_file_are_cleaned_not_trusted() {
    let mock = MockUpstream::start();
    let d = Daemon::new(&config(&mock, free_port(), "alpha"));
    // A socket file nobody listens on (a crashed run) and a pid file naming a dead process.
    drop(std::os::unix::net::UnixListener::bind(d.path("bitrouter.sock")).unwrap());
    let mut dead = std::process::Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    std::fs::write(d.path("bitrouter.pid"), format!("{dead_pid}\n")).unwrap();

    let (code, v) = d.status();
    assert_eq!(code, 3, "{v}");
    assert!(!d.path("bitrouter.sock").exists(), "stale socket removed");
    assert!(!d.path("bitrouter.pid").exists(), "stale pid file removed");

    // And again, for start: it starts over the stale files.
    drop(std::os::unix::net::UnixListener::bind(d.path("bitrouter.sock")).unwrap());
    std::fs::write(d.path("bitrouter.pid"), format!("{dead_pid}\n")).unwrap();
    let out = d.run(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(d.status().0, 0);
    // Signals right after start reach a handler, not the default action (which would end the
    // process at once): restart (SIGQUIT) and stop (SIGTERM) immediately.
    let out = d.run(&["restart"]);
    assert!(
        out.status.success(),
        "{}{}\n{}",
        stdout(&out),
        stderr(&out),
        d.log()
    );
    let out = d.run(&["stop"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(d.log().contains("bitrouter stopped"), "{}", d.log());
}

#[tokio::test]
async fn start_reports_an_invalid_config_and_reload_without_a_router_says_so() {
    let d = Daemon::new("providers:\n  x:\n    api_base: nope\n");
    let out = d.run(&["start"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("did not start") && err.contains("bitrouter.yaml:3"),
        "{err}"
    );
    assert_eq!(d.status().0, 3);
    assert_eq!(d.run(&["reload"]).status.code(), Some(3));
}

/// The point of the issue: several reloads and two restarts while clients keep sending
/// requests (each on a new connection, as a load balancer's health-checked pool would), with a
/// stream that starts before a restart and ends after it. Not one request may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn zero_failed_requests_across_reloads_and_restarts() {
    let mock = MockUpstream::start();
    let port = free_port();
    let d = Daemon::new(&config(&mock, port, "alpha"));
    let out = d.run(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let addr = d.listen();

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let (stop, ok, failures, addr) = (stop.clone(), ok.clone(), failures.clone(), addr.clone());
        workers.push(tokio::spawn(async move {
            let mut n = 0;
            // Bounded in count and time.
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                n += 1;
                match chat(&addr, "alpha-model", &format!("load {w} {n}")).await {
                    Ok((200, _)) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((status, body)) => {
                        failures.lock().unwrap().push(format!("{status}: {body}"))
                    }
                    Err(e) => failures.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }

    // A stream paced to last across the first restart.
    let t = tag("spanning");
    mock.script(Script::for_body(
        t.clone(),
        Action::StreamInterval(Duration::from_millis(400)),
    ));
    let stream_addr = addr.clone();
    let stream_tag = t.clone();
    let stream = tokio::spawn(async move {
        let r = client()
            .post(format!("http://{stream_addr}/v1/chat/completions"))
            .json(&json!({"model": "alpha-model", "stream": true,
                          "messages": [{"role": "user", "content": format!("one two three four five six seven eight nine ten {stream_tag}")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.text().await.unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let run = |args: &'static [&'static str]| {
        let out = d.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}\n{}",
            stdout(&out),
            stderr(&out),
            d.log()
        );
    };
    let pid0 = d.pid();
    run(&["reload"]);
    run(&["restart"]);
    let pid1 = d.pid();
    assert_ne!(pid0, pid1);
    d.write_config(&config(&mock, port, "alpha,beta"));
    run(&["reload"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    run(&["reload"]);
    run(&["restart"]);
    assert_ne!(d.pid(), pid1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let body = stream.await.unwrap();
    assert!(
        body.contains("[DONE]"),
        "the stream across the restart did not finish: {body}"
    );
    assert!(body.contains("ten"), "{body}");

    let failed = failures.lock().unwrap().clone();
    let served = ok.load(Ordering::Relaxed);
    eprintln!("served {served} requests across 3 reloads and 2 restarts");
    assert!(served > 50, "only {served} requests made it");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across reloads and restarts, e.g. {:?}\n{}",
        failed.len(),
        served + failed.len(),
        &failed[..failed.len().min(5)],
        d.log()
    );
    assert!(d.run(&["stop"]).status.success());
}

/// A reload keeps what the router learned about endpoints that still exist: an ejected one stays
/// ejected (the next request goes straight to the healthy one), as it would without the reload.
#[tokio::test]
async fn health_of_endpoints_that_still_exist_carries_over_a_reload() {
    let mock = MockUpstream::start();
    let port = free_port();
    let pair = |providers: &str| {
        format!(
            "{}upstream:\n  health:\n    failure_threshold: 2\n    eject_secs: 120\nmodels:\n  pair:\n    strategy: priority\n    endpoints:\n      - provider: first\n        service_id: first-model\n      - provider: second\n        service_id: second-model\n",
            config(&mock, port, providers)
        )
    };
    let d = Daemon::new(&pair("first,second"));
    let out = d.run(&["start"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let addr = d.listen();
    let send = |t: String| {
        let addr = addr.clone();
        async move {
            let r = client()
                .post(format!("http://{addr}/v1/chat/completions"))
                .json(&json!({"model": "pair", "messages": [{"role": "user", "content": t}]}))
                .send()
                .await
                .unwrap();
            let h = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            (
                r.status().as_u16(),
                h("x-bitrouter-provider"),
                h("x-bitrouter-attempts"),
            )
        }
    };
    for i in 0..2 {
        let t = tag("carry-fail");
        mock.script(Script::for_body_and_header(
            t.clone(),
            "authorization",
            "sk-first",
            Action::Error {
                status: 500,
                message: "boom".into(),
            },
        ));
        let r = send(t).await;
        assert_eq!(r, (200, "second".into(), "2".into()), "failure {i}");
    }
    let t = tag("carry-ejected");
    assert_eq!(send(t).await, (200, "second".into(), "1".into()));

    // Reload with another provider added: `first` still exists, so it stays ejected.
    d.write_config(&pair("first,second,third"));
    let out = d.run(&["reload"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let t = tag("carry-after-reload");
    assert_eq!(send(t.clone()).await, (200, "second".into(), "1".into()));
    assert!(
        mock.requests_containing(&t)
            .iter()
            .all(|r| r.header("authorization") != Some("Bearer sk-first")),
        "the ejected endpoint was called after the reload"
    );
    assert!(d.run(&["stop"]).status.success());
}
