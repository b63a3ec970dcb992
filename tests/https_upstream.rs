//! HTTPS upstreams: certificate verification with a per-provider CA, h2 negotiated by ALPN,
//! and a clear failure when the certificate is not trusted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, Match, MockUpstream, Script};
use serde_json::{json, Value};
use std::time::Duration;
use support::{client, sse_events, tag, Router, RouterSpec};

/// Two providers on the TLS mock: `secure` trusts its test CA, `untrusted` does not.
fn tls_config(mock: &MockUpstream) -> String {
    let ca = mock.ca_file().expect("tls mock has a CA file");
    let base = mock.base_url();
    format!(
        r#"
providers:
  secure:
    api_base: {base}/v1
    api_key: sk-tls
    ca_file: {ca}
    models:
      - id: gpt-4o
  untrusted:
    api_base: {base}/v1
    api_key: sk-tls
    models:
      - id: gpt-4o
"#,
        ca = ca.display()
    )
}

#[tokio::test]
async fn https_upstream_with_test_ca() {
    let mock = MockUpstream::start_tls();
    let base = mock.base_url();
    assert!(base.starts_with("https://localhost:"), "{base}");
    let config = tls_config(&mock);
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let c = client();

    let t = tag("tls");
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "secure/gpt-4o", "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains(&t));
    let up = &mock.requests_containing(&t)[0];
    assert_eq!(up.header("authorization"), Some("Bearer sk-tls"));
    assert_eq!(up.http_version, "HTTP/2.0", "h2 is negotiated over TLS");

    let t = tag("tls-stream");
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "secure/gpt-4o", "stream": true, "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let events = sse_events(&r.text().await.unwrap());
    assert_eq!(events.last().unwrap().1, "[DONE]");
    assert_eq!(
        mock.connections(),
        1,
        "the second request reuses the pooled h2 connection"
    );

    // Without the CA, verification fails and the client gets a 502 it can read.
    let r = c
        .post(router.url("/v1/chat/completions"))
        .json(&json!({"model": "untrusted/gpt-4o", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("untrusted"));
}

/// Concurrent requests share one h2 connection to the upstream: Pingora's default allows one
/// stream per connection, which opened a TLS connection per request in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_are_multiplexed_over_one_h2_connection() {
    let mock = MockUpstream::start_tls();
    let config = tls_config(&mock);
    let router = Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    });
    let c = client();
    let send = |t: String| {
        c.post(router.url("/v1/chat/completions"))
            .json(&json!({"model": "secure/gpt-4o", "messages": [{"role": "user", "content": t}]}))
            .send()
    };
    // One request opens the connection (handshakes are not coordinated: requests that all
    // arrive before the first connection is up each open their own).
    assert_eq!(send(tag("h2-first")).await.unwrap().status(), 200);
    let t = tag("h2-slow");
    mock.script(
        Script::new(
            Match::BodyContains(t.clone()),
            Action::Delay(Duration::from_secs(3)),
        )
        .times(100),
    );
    // Pingora takes the connection out of its pool while it opens a stream and puts it back
    // after (a documented false negative: a caller arriving in that window opens a new
    // connection). So the 16 slow requests start one after another, each once the mock has the
    // previous one (by then the connection is back in the pool), and all 16 are then in flight
    // at once: without sharing each of them would need its own connection.
    let mut pending = Vec::new();
    for i in 0..16 {
        let tagged = format!("{t}-{i}");
        pending.push(tokio::spawn(send(tagged.clone())));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while mock.requests_containing(&tagged).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "{tagged} never reached the mock"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert!(
        !pending[0].is_finished(),
        "the first slow request was still in flight when the last one started"
    );
    for p in pending {
        assert_eq!(p.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(mock.requests_containing(&t).len(), 16);
    // Without sharing it is one connection per request in flight (16).
    assert_eq!(
        mock.connections(),
        1,
        "16 requests in flight at once share the pooled h2 connection"
    );
}

#[test]
fn a_bad_ca_file_stops_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pem");
    std::fs::write(
        &bad,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let cfg = dir.path().join("bitrouter.yaml");
    std::fs::write(
        &cfg,
        format!(
            "providers:\n  p:\n    api_base: https://localhost:1/v1\n    ca_file: {}\n",
            bad.display()
        ),
    )
    .unwrap();
    let out = support::cli(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "-c",
            cfg.to_str().unwrap(),
        ],
        &[],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = support::stderr(&out);
    assert!(err.contains("ca_file") && err.contains("bad.pem"), "{err}");
}
