//! Same-protocol streams reach the client event by event, whatever line ends the upstream
//! frames its SSE with: for each of the four surfaces, a stream paced 300 ms per event, framed
//! with LF and with CRLF (Google's framing), must deliver its first event long before its last
//! one is sent. (The pass-through once recognised only `\n\n` and `\r\r` as event ends, so a
//! CRLF stream — every Gemini stream — reached the client all at once at its end.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_filters::sse::SseParser;
use bitrouter_mock::{Action, LineEnds, MockUpstream, Script};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{client, tag, Router, RouterSpec};

/// The pause the upstream makes between events.
const PACE: Duration = Duration::from_millis(300);

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let m = mock.base_url();
        let config = format!(
            r#"
server:
  log_level: info
providers:
  openai:
    api_base: {m}/v1
    api_key: sk-openai-test
    models:
      - id: gpt-4o
  anthropic:
    api_base: {m}
    api_key: sk-ant-test
    models:
      - id: claude-sonnet-4-5
  google:
    api_base: {m}/v1beta
    api_key: goog-test
    models:
      - id: gemini-2.5-pro
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

#[derive(Clone, Copy, Debug)]
enum Surface {
    Chat,
    Responses,
    Messages,
    Gemini,
}

/// Streams one paced answer through the router and checks that its events arrive spread out
/// over the upstream's pacing, unchanged.
async fn paced(surface: Surface, ends: LineEnds) {
    let f = fixture();
    let t = tag(&format!("paced-{surface:?}-{ends:?}"));
    let reply = "alpha beta gamma delta";
    f.mock.script(Script::for_body(
        t.clone(),
        Action::All(vec![
            Action::Reply(reply.into()),
            Action::StreamInterval(PACE),
            Action::LineEnds(ends),
        ]),
    ));
    let (path, body): (&str, Value) = match surface {
        Surface::Chat => (
            "/v1/chat/completions",
            json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": t}]}),
        ),
        Surface::Responses => (
            "/v1/responses",
            json!({"model": "gpt-4o", "stream": true, "input": t}),
        ),
        Surface::Messages => (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                   "messages": [{"role": "user", "content": t}]}),
        ),
        Surface::Gemini => (
            "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse",
            json!({"contents": [{"role": "user", "parts": [{"text": t}]}]}),
        ),
    };
    let resp = client()
        .post(f.router.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{surface:?}");
    let mut stream = resp.bytes_stream();
    let mut parser = SseParser::default();
    let mut events = Vec::new();
    let mut arrivals: Vec<Instant> = Vec::new();
    let mut raw = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        raw.extend_from_slice(&chunk);
        parser.feed(&chunk, &mut events).unwrap();
        let now = Instant::now();
        arrivals.resize(events.len(), now);
    }
    parser.finish(&mut events);
    let what = format!("{surface:?} with {ends:?} line ends");
    assert!(
        events.len() >= 4,
        "{what}: {} events: {events:?}",
        events.len()
    );
    assert_eq!(
        arrivals.len(),
        events.len(),
        "{what}: every event ended with a blank line"
    );
    // Passed through unchanged: the upstream's own framing, and the whole reply.
    let crlf = raw.windows(4).any(|w| w == b"\r\n\r\n");
    assert_eq!(
        crlf,
        matches!(ends, LineEnds::Crlf),
        "{what}: framing changed"
    );
    let all: String = events.iter().map(|e| e.data.as_str()).collect();
    for word in reply.split(' ') {
        assert!(all.contains(word), "{what}: {word} missing");
    }
    // The upstream sends event i at about i * PACE; a proxy holding events back would deliver
    // them together at the end.
    let spread = *arrivals.last().unwrap() - arrivals[0];
    let sent_over = PACE * (events.len() as u32 - 1);
    assert!(
        spread >= sent_over / 2,
        "{what}: the first event arrived only {spread:?} before the last, though the upstream spread {} events over {sent_over:?}",
        events.len()
    );
}

#[tokio::test]
async fn chat_completions_lf() {
    paced(Surface::Chat, LineEnds::Lf).await;
}

#[tokio::test]
async fn chat_completions_crlf() {
    paced(Surface::Chat, LineEnds::Crlf).await;
}

#[tokio::test]
async fn responses_lf() {
    paced(Surface::Responses, LineEnds::Lf).await;
}

#[tokio::test]
async fn responses_crlf() {
    paced(Surface::Responses, LineEnds::Crlf).await;
}

#[tokio::test]
async fn messages_lf() {
    paced(Surface::Messages, LineEnds::Lf).await;
}

#[tokio::test]
async fn messages_crlf() {
    paced(Surface::Messages, LineEnds::Crlf).await;
}

#[tokio::test]
async fn gemini_lf() {
    paced(Surface::Gemini, LineEnds::Lf).await;
}

#[tokio::test]
async fn gemini_crlf() {
    paced(Surface::Gemini, LineEnds::Crlf).await;
}
