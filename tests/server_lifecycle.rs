//! Server behaviour around the request path: graceful shutdown, the gateway credential, body
//! limits, and start-up failures.
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
    // Health and models stay open (they reveal no keys).
    assert_eq!(
        c.get(router.url("/health")).send().await.unwrap().status(),
        200
    );
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
