//! Server behaviour around the request path: graceful shutdown, signals, the gateway credential
//! (LLM and admin routes), body limits, logging to a slow stdout, and start-up failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, Match, MockUpstream, Script};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::{client, sse_events, tag, Router, RouterSpec};

fn openai_config(mock: &MockUpstream, server: &str) -> String {
    format!(
        "server:\n{server}\nproviders:\n  openai:\n    api_base: {}/v1\n    api_key: sk-up\n    models:\n      - id: gpt-4o\n  anthropic:\n    api_base: {}\n    api_key: sk-ant\n    models:\n      - id: claude-sonnet-4-5\n",
        mock.base_url(),
        mock.base_url()
    )
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  shutdown_grace_secs: 20");
    let mut router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let t = tag("drain");
    mock.script(Script {
        when: Match::BodyContains(t.clone()),
        times: 1,
        action: Action::StreamInterval(Duration::from_millis(250)),
    });
    let mut resp = client()
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": format!("{t} a b c d e")}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = Vec::new();
    let first = resp.chunk().await.unwrap().expect("first chunk");
    body.extend_from_slice(&first);
    let signalled = Instant::now();
    router.sigterm();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        body.extend_from_slice(&chunk);
    }
    let events = sse_events(&String::from_utf8_lossy(&body));
    assert_eq!(
        events.last().unwrap().1,
        "[DONE]",
        "the in-flight stream completed"
    );
    let status = router
        .wait_exit(Duration::from_secs(15))
        .expect("bitrouter exited");
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "exited as soon as the stream drained, not after the 20 s grace period"
    );
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(router.addr).is_err());
}

/// One chat request on a raw HTTP/1.1 connection, keep-alive; returns the whole response
/// (read up to its Content-Length).
/// A plain TCP connection to the router that gives up reading after 10 s.
fn raw_conn(router: &Router) -> std::net::TcpStream {
    let conn = std::net::TcpStream::connect(router.addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn
}

fn raw_chat(conn: &mut std::net::TcpStream, text: &str) -> String {
    use std::io::{Read, Write};
    let body =
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}).to_string();
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some((head, rest)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if len.is_some_and(|len| rest.len() >= len) {
                return text;
            }
        }
    }
    String::from_utf8_lossy(&got).to_string()
}

/// An HTTP/1.1 keep-alive connection left idle between requests serves the next one whole:
/// while idle it waits for the first byte of the next request (the router holds only the
/// socket then), which must reach the request parser with the rest.
#[tokio::test]
async fn an_idle_keepalive_connection_serves_its_next_request() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  log_level: warn");
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let mut conn = raw_conn(&router);
    for i in 0..3 {
        let r = raw_chat(&mut conn, &format!("idle keep-alive {i}"));
        assert!(r.starts_with("HTTP/1.1 200"), "request {i}: {r}");
        std::thread::sleep(Duration::from_millis(700));
    }
}

/// Reads until the server closes the connection; `Err` when it stays open past the socket's
/// read timeout.
fn read_to_close(conn: &mut std::net::TcpStream) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf)? {
            0 => return Ok(got),
            n => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// `server.keepalive_secs`: an idle HTTP/1.1 connection is closed once it has waited that long
/// for its next request (and not before), a partial next request head is not waited on longer,
/// and after a reload to 0 every response says `Connection: close` and the connection ends.
#[tokio::test]
async fn keepalive_secs_closes_idle_connections_and_zero_turns_keepalive_off() {
    use std::io::Write;
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  keepalive_secs: 2");
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });

    // Still open after 1 s idle (serves its next request), closed about 2 s after that one.
    let mut conn = raw_conn(&router);
    let r = raw_chat(&mut conn, "first");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    std::thread::sleep(Duration::from_secs(1));
    let r = raw_chat(&mut conn, "after 1 s idle");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let idle = std::time::Instant::now();
    let rest = read_to_close(&mut conn).expect("closed by the router");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    let waited = idle.elapsed();
    assert!(
        waited >= Duration::from_millis(1800) && waited < Duration::from_secs(6),
        "closed after {waited:?}"
    );

    // A next request that stops half-way through its head is not waited on forever either.
    let mut conn = raw_conn(&router);
    let r = raw_chat(&mut conn, "before a partial head");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    conn.write_all(b"POST /v1/chat/comp").unwrap();
    let started = std::time::Instant::now();
    let _ = read_to_close(&mut conn).expect("closed by the router");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // keepalive_secs: 0, by reload: the connection ends with each response.
    std::fs::write(
        router.dir.path().join("bitrouter.yaml"),
        openai_config(&mock, "  keepalive_secs: 0"),
    )
    .unwrap();
    router.sighup();
    router.wait_for_log("reloaded configuration");
    let mut conn = raw_conn(&router);
    let r = raw_chat(&mut conn, "no keep-alive");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("\r\nconnection: close\r\n"),
        "{r}"
    );
    let rest = read_to_close(&mut conn).expect("closed by the router");
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
}

/// A request sent on an idle keep-alive connection just after SIGTERM is still served (the
/// listener's linger), then the connection is closed.
#[tokio::test]
async fn a_request_on_an_idle_connection_during_the_linger_is_served() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  shutdown_grace_secs: 20");
    let mut router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let mut conn = raw_conn(&router);
    let r = raw_chat(&mut conn, "before the signal");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    router.sigterm();
    std::thread::sleep(Duration::from_millis(100));
    let r = raw_chat(&mut conn, "during the linger");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let status = router
        .wait_exit(Duration::from_secs(15))
        .expect("bitrouter exited");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn gateway_key_is_required_when_skip_auth_is_false() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  skip_auth: false");
    let router = Router::start(RouterSpec {
        config: Some(&config),
        env: vec![("BITROUTER_API_KEY", "gw-secret".into())],
        ..Default::default()
    });
    let c = client();
    let chat = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});

    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");

    let r = c
        .post(router.url("/v1/messages"))
        .header("x-api-key", "wrong")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");

    let r = c
        .post(router.url("/v1beta/models/gpt-4o:generateContent"))
        .json(&json!({"contents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["status"], "UNAUTHENTICATED");

    // Every credential form works on every surface.
    let ok = |r: reqwest::Response| async move {
        let s = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(s, 200, "{body}");
    };
    ok(c.post(router.url("/v1/chat/completions"))
        .bearer_auth("gw-secret")
        .json(&chat)
        .send()
        .await
        .unwrap())
    .await;
    ok(c.post(router.url("/v1/chat/completions"))
        .header("x-api-key", "gw-secret")
        .json(&chat)
        .send()
        .await
        .unwrap())
    .await;
    ok(c.post(router.url("/v1/messages"))
        .bearer_auth("gw-secret")
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap())
    .await;
    ok(c.post(router.url("/v1/chat/completions"))
        .header("x-goog-api-key", "gw-secret")
        .json(&chat)
        .send()
        .await
        .unwrap())
    .await;
    ok(c.post(router.url("/v1/chat/completions?key=gw-secret"))
        .json(&chat)
        .send()
        .await
        .unwrap())
    .await;

    // The gateway key is never forwarded upstream.
    for r in mock.requests() {
        for (_, v) in &r.headers {
            assert!(!v.contains("gw-secret"));
        }
    }
    // Health stays open (load balancers probe it); the other admin routes need the key
    // (admin_routes_need_the_gateway_key).
    assert_eq!(
        c.get(router.url("/health")).send().await.unwrap().status(),
        200
    );
}

/// Defect 11: `/metrics`, `/health/upstreams` and `/v1/models` reveal the configuration, so they
/// need the gateway key like any LLM route; `/health` and `/healthz` stay open.
#[tokio::test]
async fn admin_routes_need_the_gateway_key() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  skip_auth: false");
    let router = Router::start(RouterSpec {
        config: Some(&config),
        env: vec![("BITROUTER_API_KEY", "gw-secret".into())],
        ..Default::default()
    });
    let c = client();
    for path in ["/metrics", "/health/upstreams", "/v1/models", "/models"] {
        let r = c.get(router.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without the key");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "authentication_error", "{path}: {v}");

        let r = c
            .get(router.url(path))
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong key");

        let r = c
            .get(router.url(path))
            .bearer_auth("gw-secret")
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body = r.text().await.unwrap();
        assert_eq!(status, 200, "{path} with the key: {body}");
        assert!(!body.contains("gw-secret"), "{path} echoes the key");
    }
    for path in ["/health", "/healthz"] {
        let r = c.get(router.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path} stays open");
    }
}

/// Defect 13: SIGHUP (what operators send to reload) must not end the process: it reloads the
/// configuration (issue 15), the router keeps serving, and SIGTERM still shuts it down
/// gracefully, with the last log lines written before it exits (they go through the log queue).
#[tokio::test]
async fn sighup_reloads_and_does_not_end_the_process() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  shutdown_grace_secs: 20");
    let mut router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let status = std::process::Command::new("kill")
        .arg("-HUP")
        .arg(router.pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    router.wait_for_log("received SIGHUP: reloading the configuration");
    router.wait_for_log("reloaded configuration (generation 2)");

    let r = client()
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "after hup"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "still serving after SIGHUP");

    router.sigterm();
    let status = router
        .wait_exit(Duration::from_secs(15))
        .expect("bitrouter exited on SIGTERM");
    assert!(status.success(), "{status:?}");
    router.wait_for_log("bitrouter stopped");
}

/// Defect 12: logging must never block the workers. The router's stdout is a pipe nobody reads
/// (it fills at 64 KiB), and 2,000 logged requests (404s with a long path) must still complete
/// promptly; the lines that did not fit are dropped, counted in
/// `bitrouter_log_lines_dropped_total`, and reported once stdout drains.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stdout_nobody_reads_does_not_stall_requests() {
    let mut router = Unread::start();
    let c = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let path = format!("/not-a-route/{}", "p".repeat(4000));
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let c = c.clone();
            let url = format!("http://{}{path}", router.addr);
            tokio::spawn(async move {
                for _ in 0..125 {
                    let r = c
                        .get(&url)
                        .send()
                        .await
                        .unwrap_or_else(|e| panic!("request failed: {}", e.without_url()));
                    assert_eq!(r.status(), 404);
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "2,000 requests took {:?}",
        started.elapsed()
    );

    let metrics = c
        .get(format!("http://{}/metrics", router.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("bitrouter_log_lines_dropped_total "))
        .unwrap_or_else(|| panic!("no dropped counter in:\n{metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(dropped > 0, "stdout was full yet nothing was dropped");

    // Once somebody reads stdout again, the writer catches up and says what was lost; SIGTERM
    // still ends the process cleanly.
    let logs = router.read_stdout();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !logs
        .lock()
        .unwrap()
        .contains("log lines dropped (log writer too slow)")
    {
        assert!(Instant::now() < deadline, "no drop report in the log");
        std::thread::sleep(Duration::from_millis(20));
    }
    router.sigterm();
    let status = router.wait(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

/// A `bitrouter serve` whose stdout is read only up to the "listening" line, then left full.
struct Unread {
    child: std::process::Child,
    out: Option<std::io::BufReader<std::process::ChildStdout>>,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unread {
    // The child that is returned is killed and waited for by `Unread`'s `Drop`.
    #[allow(clippy::zombie_processes)]
    fn start() -> Unread {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        // The port picked at start can be taken by another test's process before the bind.
        for _ in 0..3 {
            let dir = tempfile::tempdir().unwrap();
            let mut child = Command::new(support::bin())
                .args(["serve", "--listen", "127.0.0.1:0"])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("HOME", dir.path())
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
            let mut line = String::new();
            loop {
                line.clear();
                if out.read_line(&mut line).unwrap_or(0) == 0 {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                if let Some(a) = line.trim().strip_prefix("bitrouter listening on http://") {
                    let addr: std::net::SocketAddr = a.parse().unwrap();
                    // The line is printed just before Pingora binds.
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while std::net::TcpStream::connect(addr).is_err() {
                        assert!(Instant::now() < deadline, "bitrouter never listened");
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    return Unread {
                        child,
                        out: Some(out),
                        addr,
                        _dir: dir,
                    };
                }
            }
        }
        panic!("bitrouter did not start");
    }

    /// Starts draining stdout into the returned buffer.
    fn read_stdout(&mut self) -> std::sync::Arc<std::sync::Mutex<String>> {
        use std::io::Read;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut out = self.out.take().unwrap();
        let into = buf.clone();
        std::thread::spawn(move || {
            let mut chunk = vec![0u8; 64 * 1024];
            while let Ok(n) = out.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        buf
    }

    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "bitrouter did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn bodies_over_max_body_bytes_get_413_in_the_callers_format() {
    let mock = MockUpstream::start();
    let config = openai_config(&mock, "  max_body_bytes: 2048");
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let big = "y".repeat(4096);
    let r = client()
        .post(router.url("/v1/messages"))
        .json(&json!({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": big}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");

    // Chunked upload (no content-length): caught while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 1024])).collect();
    let r = client()
        .post(router.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    assert!(mock.requests().is_empty(), "nothing reached the upstream");

    // The server is still up.
    let r = client().get(router.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = support::cli(&["serve", "--listen", &addr], &[], dir.path());
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains(&addr),
        "{}",
        support::stderr(&out)
    );
}
