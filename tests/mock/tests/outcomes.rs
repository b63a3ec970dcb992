//! Scripting by header, errors with `retry-after`, stalls, and the record of how each streamed
//! response ended (completed, cut, or abandoned by the client), over real sockets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use bitrouter_mock::{Action, Match, Script};
use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

fn chat_body(t: &str, stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": format!("{t} one two three four five six")}]})
}

fn chat_url() -> String {
    format!("{}/v1/chat/completions", mock().base_url())
}

#[tokio::test]
async fn error_with_retry_after_in_each_provider_format() {
    let base = mock().base_url();
    let t = tag("retry-after");
    let script = |status| {
        Script::for_body(
            &t,
            Action::ErrorRetryAfter {
                status,
                message: format!("come back later {t}"),
                retry_after: 2,
            },
        )
    };

    mock().script(script(429));
    let (status, headers, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 429);
    assert_eq!(headers["retry-after"], "2");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    assert!(v["error"]["message"].as_str().unwrap().contains(&t));

    mock().script(script(529));
    let (status, headers, body) = post(
        &format!("{base}/v1/messages"),
        &ANTHROPIC_AUTH,
        &json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": t}]}),
    )
    .await;
    assert_eq!(status, 529);
    assert_eq!(headers["retry-after"], "2");
    assert!(headers.contains_key("request-id"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");

    mock().script(script(503));
    let (status, headers, body) = post(
        &format!("{base}/v1beta/models/g:generateContent"),
        &[GOOGLE_AUTH],
        &json!({"contents": [{"parts": [{"text": t}]}]}),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(headers["retry-after"], "2");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["status"], "UNAVAILABLE");

    // Plain `Error` still sends no retry-after.
    mock().script(Script::for_body(
        &t,
        Action::Error {
            status: 429,
            message: "x".into(),
        },
    ));
    let (status, headers, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 429);
    assert!(!headers.contains_key("retry-after"));
}

#[tokio::test]
async fn scripts_can_target_one_credential() {
    let t = tag("by-key");
    mock().script(
        Script::for_body_and_header(
            &t,
            "Authorization",
            "key-a",
            Action::Error {
                status: 401,
                message: "revoked".into(),
            },
        )
        .times(2),
    );
    let key_a = ("authorization", "Bearer key-a");
    let key_b = ("authorization", "Bearer key-b");
    let (status, _, _) = post(&chat_url(), &[key_b], &chat_body(&t, false)).await;
    assert_eq!(status, 200, "key-b is not targeted");
    let (status, _, _) = post(&chat_url(), &[key_a], &chat_body(&t, false)).await;
    assert_eq!(status, 401);
    // Another test's body with key-a is not targeted either.
    let other = tag("by-key-other");
    let (status, _, _) = post(&chat_url(), &[key_a], &chat_body(&other, false)).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(&chat_url(), &[key_a], &chat_body(&t, false)).await;
    assert_eq!(status, 401);
    assert_eq!(mock().requests_containing(&t).len(), 3);

    // HeaderContains on its own, and combined with a path.
    let own = bitrouter_mock::MockUpstream::start();
    own.script(Script::new(
        Match::header("x-api-key", "ant-b").and(Match::PathContains("/messages".into())),
        Action::Drop,
    ));
    let url = format!("{}/v1/messages", own.base_url());
    let body =
        json!({"model": "c", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    let (status, _, _) = post(
        &url,
        &[("x-api-key", "ant-a"), ("anthropic-version", "2023-06-01")],
        &body,
    )
    .await;
    assert_eq!(status, 200);
    let dropped = client()
        .post(&url)
        .header("x-api-key", "ant-b")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await;
    assert!(dropped.is_err(), "ant-b's request was dropped");
    assert_eq!(own.pending_scripts(), 0);
}

#[tokio::test]
async fn completed_and_cut_streams_are_recorded() {
    // Unscripted (the fast path) and paced streams both record a completed outcome.
    let t = tag("outcome-done");
    let (status, _, body) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, true)).await;
    assert_eq!(status, 200);
    let events = parse_sse(&body).len();
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .expect("outcome recorded");
    assert!(o.completed && !o.cut && !o.aborted_by_peer, "{o:?}");
    assert_eq!(o.events_total, events);
    assert_eq!(o.events_sent, events);
    assert_eq!(o.path, "/v1/chat/completions");

    let t = tag("outcome-paced");
    mock().script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_millis(20)),
    ));
    let (status, _, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, true)).await;
    assert_eq!(status, 200);
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(o.completed, "{o:?}");
    assert!(o.duration() >= Duration::from_millis(20 * (o.events_total as u64 - 1)));

    let t = tag("outcome-cut");
    mock().script(Script::for_body(&t, Action::CutStreamAfter { events: 2 }));
    let resp = client()
        .post(chat_url())
        .bearer_auth("k")
        .json(&chat_body(&t, true))
        .send()
        .await
        .unwrap();
    assert!(resp.text().await.is_err());
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(o.cut && !o.completed && !o.aborted_by_peer, "{o:?}");
    assert_eq!(o.events_sent, 2);
    assert!(o.events_total > 2);

    // Non-streaming answers are not streams.
    let t = tag("outcome-json");
    let (status, _, _) = post(&chat_url(), &[OPENAI_AUTH], &chat_body(&t, false)).await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(mock().stream_outcomes_containing(&t).is_empty());
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_is_recorded_at_once() {
    let t = tag("outcome-gone");
    // 2 s between events: the whole stream would take well over 10 s.
    mock().script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_secs(2)),
    ));
    let body = chat_body(&t, true).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // Nothing ended yet: the stream is still running.
    assert!(mock().stream_outcomes_containing(&t).is_empty());
    let gone = Instant::now();
    drop(stream);
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .expect("the mock noticed the closed connection");
    assert!(o.aborted_by_peer && !o.completed && !o.cut, "{o:?}");
    assert!(o.events_sent < o.events_total, "{o:?}");
    assert!(
        o.ended.saturating_duration_since(gone) < Duration::from_millis(1500),
        "noticed {:?} after the client left",
        o.ended.saturating_duration_since(gone)
    );
}

#[tokio::test]
async fn stall_after_sends_the_first_events_then_pauses() {
    let t = tag("stall");
    let pause = Duration::from_millis(600);
    mock().script(Script::for_body(
        &t,
        Action::StallAfter { events: 2, pause },
    ));
    let body = chat_body(&t, true).to_string();
    let sent = Instant::now();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let mut seen = String::new();
    let mut arrivals: Vec<Duration> = Vec::new();
    let mut buf = [0u8; 4096];
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
        while arrivals.len() < seen.matches("data: ").count() {
            arrivals.push(now);
        }
        if seen.contains("[DONE]") && seen.ends_with("0\r\n\r\n") {
            break;
        }
    }
    assert!(arrivals.len() > 3, "{seen}");
    assert!(
        arrivals[1] < Duration::from_millis(300),
        "the first two events come at once: {arrivals:?}"
    );
    assert!(
        arrivals[2] - arrivals[1] >= pause - Duration::from_millis(50),
        "then the stall: {arrivals:?}"
    );
    let last = *arrivals.last().unwrap();
    assert!(
        last - arrivals[2] < Duration::from_millis(300),
        "then the rest at once: {arrivals:?}"
    );
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(o.completed, "{o:?}");
}

#[tokio::test]
async fn delay_means_no_first_byte() {
    let t = tag("no-first-byte");
    mock().script(Script::for_body(
        &t,
        Action::Delay(Duration::from_millis(800)),
    ));
    let body = chat_body(&t, true).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await;
    assert!(early.is_err(), "not a byte before the delay is over");
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn stall_after_zero_sends_headers_but_no_first_event() {
    let t = tag("stall-zero");
    mock().script(Script::for_body(
        &t,
        Action::StallAfter {
            events: 0,
            pause: Duration::from_millis(800),
        },
    ));
    let body = chat_body(&t, true).to_string();
    let mut stream = raw_request(
        mock(),
        "POST",
        "/v1/chat/completions",
        &[("authorization", "Bearer k")],
        &body,
    )
    .await;
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf))
        .await
        .expect("the headers come at once")
        .unwrap();
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!head.contains("data: "), "but no event yet: {head}");
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("data: "));
}

#[tokio::test]
async fn an_h2_stream_reset_by_the_client_is_recorded() {
    let t = tag("outcome-h2");
    mock().script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_secs(2)),
    ));
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let mut resp = h2
        .post(chat_url())
        .bearer_auth("k")
        .json(&chat_body(&t, true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert!(resp.chunk().await.unwrap().is_some(), "the first event");
    let gone = Instant::now();
    drop(resp); // resets the stream; the connection stays up
    let o = mock()
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .expect("the mock noticed the reset");
    assert!(o.aborted_by_peer, "{o:?}");
    assert!(o.ended.saturating_duration_since(gone) < Duration::from_millis(1500));
}
