//! Every scripted Action, over real sockets.
// Test helpers outside #[test] fns may unwrap too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bitrouter_mock::{Action, Match, MockUpstream, Script};
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn chat_body(t: &str, stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": t}]})
}

fn chat_url() -> String {
    format!("{}/v1/chat/completions", mock().base_url())
}

#[tokio::test]
async fn status_with_retry_after_then_normal() {
    let t = tag("status");
    mock().script(Script::for_body(
        &t,
        Action::Status {
            status: 429,
            body: r#"{"custom":true}"#.into(),
            retry_after: Some(7),
        },
    ));
    let (status, headers, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(body, r#"{"custom":true}"#);
    // Used up: the next request is normal.
    let (status, headers, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 200);
    assert!(!headers.contains_key("retry-after"));
    assert_eq!(mock().requests_containing(&t).len(), 2);

    mock().script(Script::for_body(
        &t,
        Action::Status {
            status: 502,
            body: "bad gateway".into(),
            retry_after: None,
        },
    ));
    let (status, headers, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 502);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(body, "bad gateway");
}

#[tokio::test]
async fn error_picks_provider_format() {
    let base = mock().base_url();
    let t = tag("err");
    let err = |status: u16| {
        Script::for_body(
            &t,
            Action::Error {
                status,
                message: format!("scripted {status}"),
            },
        )
    };

    mock().script(err(503));
    let (status, _, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, true)).await;
    assert_eq!(status, 503);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["message"], "scripted 503");
    assert_eq!(v["error"]["type"], "server_error");

    mock().script(err(429));
    let (status, _, body) = post(
        &format!("{base}/v1/responses"),
        &[OPENAI_AUTH],
        &json!({"model": "m", "input": t}),
    )
    .await;
    assert_eq!(status, 429);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    mock().script(err(529));
    let (status, _, body) = post(
        &format!("{base}/v1/messages"),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": t}]}),
    )
    .await;
    assert_eq!(status, 529);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert_eq!(v["error"]["message"], "scripted 529");

    for (status, google) in [
        (429, "RESOURCE_EXHAUSTED"),
        (503, "UNAVAILABLE"),
        (400, "INVALID_ARGUMENT"),
    ] {
        mock().script(err(status));
        let (got, _, body) = post(
            &format!("{base}/v1beta/models/g:streamGenerateContent?alt=sse"),
            &[GOOGLE_AUTH],
            &json!({"contents": [{"parts": [{"text": t}]}]}),
        )
        .await;
        assert_eq!(got, status);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["status"], google);
        assert_eq!(v["error"]["code"], status);
    }
}

#[tokio::test]
async fn delay_then_normal_and_all_combines() {
    let t = tag("delay");
    mock().script(Script::for_body(
        &t,
        Action::Delay(Duration::from_millis(300)),
    ));
    let start = Instant::now();
    let (status, _, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 200);
    assert!(start.elapsed() >= Duration::from_millis(300));

    mock().script(Script::for_body(
        &t,
        Action::All(vec![
            Action::Delay(Duration::from_millis(200)),
            Action::Error {
                status: 503,
                message: "later".into(),
            },
        ]),
    ));
    let start = Instant::now();
    let (status, _, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 503);
    assert!(start.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn drop_closes_without_response() {
    let t = tag("drop");
    mock().script(Script::for_body(&t, Action::Drop));
    let body = chat_body(&t, false).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let (bytes, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "connection closed");
    assert!(
        bytes.is_empty(),
        "no response bytes: {:?}",
        String::from_utf8_lossy(&bytes)
    );

    mock().script(Script::for_body(&t, Action::Drop));
    let err = client()
        .post(chat_url())
        .bearer_auth("k")
        .json(&chat_body(&t, false))
        .send()
        .await;
    assert!(err.is_err());
    // Not sticky.
    let (status, _, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn cut_stream_after_events_raw() {
    let t = tag("cut");
    mock().script(Script::for_body(&t, Action::CutStreamAfter { events: 3 }));
    let body = chat_body(&t, true).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let (bytes, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&bytes);
    assert!(closed);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("transfer-encoding: chunked"));
    assert_eq!(text.matches("data: ").count(), 3, "{text}");
    assert!(!text.contains("[DONE]"));
    assert!(!text.ends_with("0\r\n\r\n"), "no clean chunked terminator");
}

#[tokio::test]
async fn cut_stream_seen_by_http_client() {
    let t = tag("cut2");
    mock().script(Script::for_body(&t, Action::CutStreamAfter { events: 2 }));
    let resp = client()
        .post(format!("{}/v1/messages", mock().base_url()))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": t}]}))
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
    assert!(errored, "the client sees an incomplete body");
    let events = parse_sse(&String::from_utf8(got).unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event.as_deref(), Some("message_start"));
}

#[tokio::test]
async fn cut_non_stream_body() {
    let t = tag("cutns");
    mock().script(Script::for_body(&t, Action::CutStreamAfter { events: 1 }));
    let body = chat_body(&t, false).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let (bytes, closed) = read_to_close(&mut stream, Duration::from_secs(5)).await;
    assert!(closed);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        body.len() < len && !body.is_empty(),
        "{} of {len}",
        body.len()
    );

    mock().script(Script::for_body(&t, Action::CutStreamAfter { events: 0 }));
    let resp = client()
        .post(chat_url())
        .bearer_auth("k")
        .json(&chat_body(&t, false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.is_err());
}

#[tokio::test]
async fn stream_interval_flushes_each_event() {
    let t = tag("interval");
    let interval = Duration::from_millis(200);
    mock().script(Script::for_body(
        &t,
        Action::All(vec![
            Action::StreamInterval(interval),
            Action::Reply("a b c".into()),
        ]),
    ));
    let body = json!({"model": "c", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": t}]}).to_string();
    let sent = Instant::now();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/messages",
        &[("x-api-key", "k"), ("anthropic-version", "2023-06-01")],
        &body,
    )
    .await;
    let mut arrivals: Vec<Duration> = Vec::new();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    use tokio::io::AsyncReadExt;
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        let now = sent.elapsed();
        while arrivals.len() < seen.matches("event: ").count() {
            arrivals.push(now);
        }
        if seen.contains("message_stop") && seen.ends_with("0\r\n\r\n") {
            break;
        }
    }
    // message_start, content_block_start, ping, 3 deltas, block stop, message_delta, message_stop
    assert_eq!(arrivals.len(), 9, "{seen}");
    assert!(
        arrivals[0] < Duration::from_millis(150),
        "first event is sent at once: {:?}",
        arrivals[0]
    );
    for (k, at) in arrivals.iter().enumerate() {
        assert!(
            *at >= interval * k as u32,
            "event {k} arrived at {at:?}, before its slot"
        );
    }
    assert!(arrivals[8] - arrivals[0] >= interval * 8);
}

#[tokio::test]
async fn reply_override_and_fifo_times() {
    let t = tag("reply");
    mock().script(Script::for_body(&t, Action::Reply("first".into())).times(2));
    mock().script(Script::for_body(
        &t,
        Action::Reply("second [[tool:x]]".into()),
    ));
    let mut got = Vec::new();
    for _ in 0..4 {
        let (_, _, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        got.push(
            v["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(
        got,
        [
            "first",
            "first",
            "second [[tool:x]]",
            &format!("mock reply: {t}")
        ]
    );

    // Reply also applies to streams, in every protocol.
    mock().script(Script::for_body(
        &t,
        Action::Reply("streamed override text".into()),
    ));
    let (_, _, body) = post(
        &format!(
            "{}/v1beta/models/g:streamGenerateContent?alt=sse",
            mock().base_url()
        ),
        &[GOOGLE_AUTH],
        &json!({"contents": [{"parts": [{"text": t}]}]}),
    )
    .await;
    let text: String = parse_sse(&body)
        .iter()
        .map(|e| {
            e.json()["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "streamed override text");
}

#[tokio::test]
async fn path_match_and_any_on_own_mock() {
    let own = MockUpstream::start();
    own.script(Script::new(
        Match::PathContains("/tenant-a/".into()),
        Action::Error {
            status: 500,
            message: "a".into(),
        },
    ));
    own.script(Script::once(Action::Error {
        status: 401,
        message: "any".into(),
    }));
    assert_eq!(own.pending_scripts(), 2);
    let base = own.base_url();
    // Path does not match the first script, so Any takes it.
    let (status, _, _) = post(
        &format!("{base}/v1/chat/completions"),
        &[OPENAI_AUTH],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = post(
        &format!("{base}/tenant-a/v1/chat/completions"),
        &[OPENAI_AUTH],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["message"],
        "a"
    );
    assert_eq!(own.pending_scripts(), 0);
    own.script(Script::once(Action::Drop).times(usize::MAX));
    own.clear_scripts();
    let (status, _, _) = post(
        &format!("{base}/v1/chat/completions"),
        &[OPENAI_AUTH],
        &chat_body("x", false),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(own.requests().len(), 3);
}
