//! TLS, HTTP/2, connection reuse, auth keys, recording modes, shutdown and the binary.
// Test helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use bitrouter_mock::{MockConfig, MockUpstream, RecordMode};
use common::*;
use serde_json::{json, Value};

fn tls_client(mock: &MockUpstream, http1_only: bool) -> reqwest::Client {
    let pem = std::fs::read(mock.ca_file().unwrap()).unwrap();
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(Duration::from_secs(20));
    if http1_only {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn tls_with_generated_ca_h2_and_h1() {
    let mock = MockUpstream::start_tls();
    let base = mock.base_url();
    assert_eq!(base, format!("https://localhost:{}", mock.addr().port()));
    let ca = std::fs::read_to_string(mock.ca_file().unwrap()).unwrap();
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(mock.ca_pem().as_deref(), Some(ca.as_str()));

    // ALPN picks h2.
    let resp = tls_client(&mock, false)
        .post(format!("{base}/v1/chat/completions"))
        .bearer_auth("k")
        .json(&json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "over h2"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let events = parse_sse(&resp.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");

    // HTTP/1.1 over TLS.
    let resp = tls_client(&mock, true)
        .get(format!("{base}/v1/models"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), reqwest::Version::HTTP_11);

    // 127.0.0.1 is in the certificate too.
    let resp = tls_client(&mock, true)
        .get(format!(
            "https://127.0.0.1:{}/v1/models",
            mock.addr().port()
        ))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let versions: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.http_version.clone())
        .collect();
    assert_eq!(versions, ["HTTP/2.0", "HTTP/1.1", "HTTP/1.1"]);

    // Without the CA the certificate is rejected.
    let untrusted = reqwest::Client::builder().build().unwrap();
    assert!(untrusted
        .get(format!("{base}/v1/models"))
        .send()
        .await
        .is_err());
    assert_eq!(mock.requests().len(), 3);

    let path = mock.ca_file().unwrap();
    drop(mock);
    assert!(!path.exists(), "CA temp file removed with the mock");
}

#[tokio::test]
async fn plaintext_h2_prior_knowledge() {
    let t = tag("h2c");
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client
        .post(format!("{}/v1/messages", mock().base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": t}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let events = parse_sse(&resp.text().await.unwrap());
    assert_eq!(
        events.last().unwrap().event.as_deref(),
        Some("message_stop")
    );
    assert_eq!(mock().requests_containing(&t)[0].http_version, "HTTP/2.0");
}

#[tokio::test]
async fn keep_alive_connections_are_counted() {
    let own = MockUpstream::start();
    let url = format!("{}/v1/chat/completions", own.base_url());
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
    let client = client();
    for _ in 0..3 {
        let resp = client
            .post(&url)
            .bearer_auth("k")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap();
    }
    assert_eq!(own.connections(), 1, "one keep-alive connection");
    // A streamed response also leaves the connection reusable.
    let resp = client
        .post(&url)
        .bearer_auth("k")
        .json(
            &json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    let resp = client
        .post(&url)
        .bearer_auth("k")
        .json(&body)
        .send()
        .await
        .unwrap();
    resp.bytes().await.unwrap();
    assert_eq!(own.connections(), 1);
    let other = reqwest::Client::new();
    other
        .post(&url)
        .bearer_auth("k")
        .json(&body)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(own.connections(), 2);
}

#[tokio::test]
async fn expected_key_per_provider() {
    let own = MockUpstream::start();
    own.set_expected_key(Some("right".into()));
    let base = own.base_url();
    let chat = format!("{base}/v1/chat/completions");
    let chat_body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});

    let (status, _, body) = post(
        &chat,
        &[("authorization", "Bearer wrong-key-123")],
        &chat_body,
    )
    .await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert!(
        !v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("wrong-key-123"),
        "key is masked"
    );
    let (status, _, _) = post(&chat, &[("authorization", "Bearer right")], &chat_body).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(
        &format!("{base}/v1/responses"),
        &[("authorization", "Bearer nope")],
        &json!({"model": "m", "input": "x"}),
    )
    .await;
    assert_eq!(status, 401);

    let messages = format!("{base}/v1/messages");
    let anth_body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]});
    let (status, _, body) = post(
        &messages,
        &[("x-api-key", "wrong"), ("anthropic-version", "2023-06-01")],
        &anth_body,
    )
    .await;
    assert_eq!(status, 401);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(v["error"]["message"], "invalid x-api-key");
    let (status, _, _) = post(
        &messages,
        &[("x-api-key", "right"), ("anthropic-version", "2023-06-01")],
        &anth_body,
    )
    .await;
    assert_eq!(status, 200);

    let gemini = format!("{base}/v1beta/models/g:generateContent");
    let g_body = json!({"contents": [{"parts": [{"text": "x"}]}]});
    let (status, _, body) = post(&gemini, &[("x-goog-api-key", "wrong")], &g_body).await;
    assert_eq!(
        status, 400,
        "Gemini answers a wrong key with 400 API_KEY_INVALID"
    );
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["details"][0]["reason"], "API_KEY_INVALID");
    let (status, _, _) = post(&format!("{gemini}?key=right"), &[], &g_body).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(&gemini, &[], &g_body).await;
    assert_eq!(status, 401);

    own.set_expected_key(None);
    let (status, _, _) = post(&chat, &[("authorization", "Bearer anything")], &chat_body).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(&chat, &[], &chat_body).await;
    assert_eq!(status, 401, "missing credential is always 401");
}

#[tokio::test]
async fn record_modes() {
    let last2 = MockUpstream::start_with(MockConfig {
        record: RecordMode::Last(2),
        ..MockConfig::default()
    });
    let off = MockUpstream::start_with(MockConfig {
        record: RecordMode::Off,
        ..MockConfig::default()
    });
    for m in [&last2, &off] {
        for i in 0..3 {
            let (status, _, _) = post(
                &format!("{}/v1/chat/completions", m.base_url()),
                &[OPENAI_AUTH],
                &json!({"model": "m", "messages": [{"role": "user", "content": format!("req{i}")}]}),
            )
            .await;
            assert_eq!(status, 200);
        }
    }
    let kept: Vec<String> = last2
        .requests()
        .iter()
        .map(|r| {
            r.json().unwrap()["messages"][0]["content"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(kept, ["req1", "req2"]);
    assert!(off.requests().is_empty());

    // The admin endpoint shows the same.
    let v: Value = client()
        .get(format!("{}/__mock/requests", last2.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let stats: Value = client()
        .get(format!("{}/__mock/stats", off.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["recorded"], 0);
}

#[tokio::test]
async fn dropping_the_mock_stops_it() {
    let m = MockUpstream::start();
    let addr = m.addr();
    let clone = m.clone();
    drop(m);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_ok(),
        "a clone keeps it alive"
    );
    drop(clone);
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_binary(args: &[&str]) -> (Child, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bitrouter-mock"))
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = Child(child);
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let expected = if args.contains(&"--tls") { 3 } else { 2 };
    for _ in 0..expected {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        lines.push(line.trim_end().to_owned());
    }
    (child, lines)
}

#[tokio::test]
async fn binary_prints_address_and_serves() {
    let (_child, lines) =
        spawn_binary(&["--listen", "127.0.0.1:0", "--no-record", "--key", "bench"]);
    let addr: SocketAddr = lines[0].parse().unwrap();
    assert_ne!(addr.port(), 0);
    assert_eq!(lines[1], format!("base_url=http://{addr}"));
    let (status, _, body) = post(
        &format!("http://{addr}/v1/chat/completions"),
        &[("authorization", "Bearer bench")],
        &json!({"model": "m", "messages": [{"role": "user", "content": "bin"}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"]["content"],
        "mock reply: bin"
    );

    let (_child, lines) = spawn_binary(&["--tls"]);
    assert!(lines[1].starts_with("base_url=https://localhost:"));
    let ca = lines[2].strip_prefix("ca_file=").unwrap();
    let pem = std::fs::read(ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = format!("{}/v1/models", lines[1].strip_prefix("base_url=").unwrap());
    let resp = client.get(url).bearer_auth("k").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn h2_drop_and_cut_reset_only_the_stream() {
    use bitrouter_mock::{Action, Script};
    use futures_util::StreamExt;

    let own = MockUpstream::start();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let url = format!("{}/v1/chat/completions", own.base_url());
    let body = |text: &str, stream: bool| json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]});

    own.script(Script::for_body("drop-me", Action::Drop));
    assert!(client
        .post(&url)
        .bearer_auth("k")
        .json(&body("drop-me", false))
        .send()
        .await
        .is_err());

    own.script(Script::for_body(
        "cut-me",
        Action::CutStreamAfter { events: 2 },
    ));
    let resp = client
        .post(&url)
        .bearer_auth("k")
        .json(&body("cut-me", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut stream = resp.bytes_stream();
    let mut got = Vec::new();
    let mut errored = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(bytes) => got.extend_from_slice(&bytes),
            Err(_) => {
                errored = true;
                break;
            }
        }
    }
    assert!(errored);
    assert_eq!(parse_sse(&String::from_utf8(got).unwrap()).len(), 2);

    // The h2 connection itself survived both.
    let resp = client
        .post(&url)
        .bearer_auth("k")
        .json(&body("fine", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(own.connections(), 1);
}
