//! Reliability through the real binary, against docs/reliability.md: failover across endpoints
//! and protocols for every inbound protocol, what is and is not retried, the error a client gets
//! when every attempt fails, several accounts per provider, `retry-after` cooling, passive
//! ejection and recovery, active health checks, first-byte and idle timeouts, streams cut
//! mid-way, client disconnects, the balancing strategies, variants and presets, the
//! `x-bitrouter-*` response headers and `GET /health/upstreams`.
//!
//! One router serves the whole file, in front of two mocks: `first` serves every endpoint a
//! test expects to be tried first and `second` every endpoint tried after it, so "which mock saw
//! the request" tells which endpoint was used. Passive health (cooling, ejection, balancer
//! state) is shared inside the router, so every test that makes an endpoint fail, or counts
//! where requests go, has its own providers and virtual models (generated below). Faults are
//! scripted per test by a unique tag in the prompt, never for every request of a shared mock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, Match, MockUpstream, RecordedRequest, Script};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::wire::{answer, ends_with_error_event, request, Resp, P};
use support::{client, tag, Router, RouterSpec};

// ---------- the fixture ----------

/// What goes wrong on the first endpoint of a failover case.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// A provider-format error with this status.
    Status(u16),
    /// The connection closes without a response.
    Drop,
    /// No response header for longer than the provider's `first_byte_secs` (0.5 s).
    FirstByte,
    /// Headers at once, but no first SSE event for longer than `first_byte_secs`.
    FirstEvent,
}

impl Fault {
    fn action(self) -> Action {
        match self {
            Fault::Status(status) => Action::Error {
                status,
                message: format!("scripted {status}"),
            },
            Fault::Drop => Action::Drop,
            Fault::FirstByte => Action::Delay(Duration::from_secs(5)),
            Fault::FirstEvent => Action::StallAfter {
                events: 0,
                pause: Duration::from_secs(5),
            },
        }
    }

    fn is_timeout(self) -> bool {
        matches!(self, Fault::FirstByte | Fault::FirstEvent)
    }
}

/// A failover case: a virtual model named `name` whose first endpoint (provider `name-1`, model
/// `name-m1`, on the `first` mock) speaks `first` and fails with `fault`, and whose second
/// (provider `name-2`, model `name-m2`, on `second`) speaks `second` and answers.
struct Case {
    name: &'static str,
    inbound: P,
    stream: bool,
    fault: Fault,
    first: P,
    second: P,
}

/// Every failover case: each fault type, each inbound protocol streaming and not, same-protocol
/// and cross-protocol chains. Each case is also a test (see the macro below).
macro_rules! failover_cases {
    ($($name:ident: $inbound:ident $stream:literal, $fault:expr, $first:ident -> $second:ident;)*) => {
        const CASES: &[Case] = &[$(Case {
            name: stringify!($name),
            inbound: P::$inbound,
            stream: $stream,
            fault: $fault,
            first: P::$first,
            second: P::$second,
        },)*];

        $(
            /// A retryable failure of the first endpoint is invisible to the client: the second
            /// endpoint answers, and the headers say so.
            #[tokio::test]
            async fn $name() {
                failover_case(stringify!($name)).await;
            }
        )*
    };
}

failover_cases! {
    failover_chat_503_json: Chat false, Fault::Status(503), Chat -> Chat;
    failover_chat_first_byte_timeout_stream: Chat true, Fault::FirstByte, Chat -> Chat;
    failover_chat_first_event_timeout_stream: Chat true, Fault::FirstEvent, Chat -> Chat;
    failover_chat_429_cross_json: Chat false, Fault::Status(429), Messages -> Chat;
    failover_chat_drop_cross_stream: Chat true, Fault::Drop, Gemini -> Messages;
    failover_responses_500_json: Responses false, Fault::Status(500), Responses -> Responses;
    failover_responses_529_stream: Responses true, Fault::Status(529), Responses -> Responses;
    failover_responses_first_byte_timeout_cross_json: Responses false, Fault::FirstByte, Chat -> Messages;
    failover_responses_502_cross_stream: Responses true, Fault::Status(502), Messages -> Chat;
    failover_messages_529_json: Messages false, Fault::Status(529), Messages -> Messages;
    failover_messages_429_stream: Messages true, Fault::Status(429), Messages -> Messages;
    failover_messages_503_cross_json: Messages false, Fault::Status(503), Messages -> Chat;
    failover_messages_504_cross_stream: Messages true, Fault::Status(504), Chat -> Gemini;
    failover_gemini_503_json: Gemini false, Fault::Status(503), Gemini -> Gemini;
    failover_gemini_drop_stream: Gemini true, Fault::Drop, Gemini -> Gemini;
    failover_gemini_500_cross_json: Gemini false, Fault::Status(500), Messages -> Responses;
    failover_gemini_first_byte_timeout_cross_stream: Gemini true, Fault::FirstByte, Chat -> Messages;
}

struct Fixture {
    /// Serves the endpoints tried first.
    first: MockUpstream,
    /// Serves the endpoints tried next.
    second: MockUpstream,
    router: Router,
    started: Instant,
}

/// Builds bitrouter.yaml.
#[derive(Default)]
struct Config {
    providers: String,
    models: String,
}

impl Config {
    /// A provider with one model `<id>-m` (or `models`), key `key-<id>`, and `extra` YAML lines
    /// (indented by 4).
    fn provider(&mut self, id: &str, p: P, mock: &MockUpstream, extra: &str) -> &mut Config {
        self.provider_with(
            id,
            p,
            &p.api_base(mock),
            &format!("{id}-m"),
            &format!("    api_key: key-{id}\n{extra}"),
        )
    }

    fn provider_with(
        &mut self,
        id: &str,
        p: P,
        api_base: &str,
        model: &str,
        rest: &str,
    ) -> &mut Config {
        let proto = p.config_name();
        self.providers
            .push_str(&format!("  {id}:\n    api_base: {api_base}\n"));
        self.providers
            .push_str(&format!("    api_protocol:\n      - \"*\": {proto}\n"));
        self.providers
            .push_str(&format!("    models:\n      - id: {model}\n{rest}"));
        self
    }

    /// A virtual model over `(provider, service_id, weight)` endpoints.
    fn model(
        &mut self,
        name: &str,
        strategy: &str,
        endpoints: &[(&str, &str, u32)],
    ) -> &mut Config {
        self.models.push_str(&format!(
            "  {name}:\n    strategy: {strategy}\n    endpoints:\n"
        ));
        for (provider, service_id, weight) in endpoints {
            self.models.push_str(&format!(
                "      - {{ provider: {provider}, service_id: {service_id}, weight: {weight} }}\n"
            ));
        }
        self
    }

    /// The usual pair: `<name>` = [`<name>-1` on first, `<name>-2` on second], priority.
    fn pair(
        &mut self,
        name: &str,
        first: (P, &MockUpstream, &str),
        second: (P, &MockUpstream),
    ) -> &mut Config {
        let (one, two) = (format!("{name}-1"), format!("{name}-2"));
        self.provider(&one, first.0, first.1, first.2);
        self.provider(&two, second.0, second.1, "");
        self.model(
            name,
            "priority",
            &[
                (&one, &format!("{one}-m"), 1),
                (&two, &format!("{two}-m"), 1),
            ],
        )
    }
}

/// Two accounts, `team-a` (key `<prefix>-key-a`) and `team-b`, and an account strategy.
fn accounts(prefix: &str, strategy: &str) -> String {
    let mut out = String::from("    accounts:\n");
    for label in ["a", "b"] {
        out.push_str(&format!(
            "      - {{ label: team-{label}, api_key: {prefix}-key-{label} }}\n"
        ));
    }
    out.push_str(&format!("    account_strategy: {strategy}\n"));
    out
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Providers whose first-byte timeout is short (the cases that time out).
const FAST_FIRST_BYTE: &str = "    timeouts: { first_byte_secs: 0.5 }\n";
/// Providers whose idle read timeout is short (the stalled-stream tests).
const FAST_IDLE: &str = "    timeouts: { read_secs: 1 }\n";
/// A provider whose whole exchange may last 1.5 s (`total_secs`).
const SHORT_TOTAL: &str = "    timeouts: { total_secs: 1.5 }\n";

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let first = MockUpstream::start();
        let second = MockUpstream::start();
        let (a, b) = (&first, &second);
        let mut c = Config::default();

        for case in CASES {
            let extra = if case.fault.is_timeout() {
                FAST_FIRST_BYTE
            } else {
                ""
            };
            c.pair(case.name, (case.first, a, extra), (case.second, b));
        }
        // Not retried; every attempt failing (the last endpoint always speaks another protocol
        // than the client, so the error is rendered, not passed through).
        c.pair("no-retry", (P::Chat, a, ""), (P::Chat, b));
        c.pair("all-fail-chat", (P::Chat, a, ""), (P::Messages, b));
        c.pair("all-fail-responses", (P::Responses, a, ""), (P::Gemini, b));
        c.pair("all-fail-messages", (P::Messages, a, ""), (P::Chat, b));
        c.pair("all-fail-gemini", (P::Gemini, a, ""), (P::Responses, b));
        c.pair("all-fail-529", (P::Chat, a, ""), (P::Messages, b));
        // Health: cooling and ejection.
        c.pair("cool-429", (P::Chat, a, ""), (P::Chat, b));
        c.pair("cool-503", (P::Chat, a, ""), (P::Chat, b));
        c.pair("eject", (P::Chat, a, ""), (P::Chat, b));
        c.pair("probe-once", (P::Chat, a, ""), (P::Chat, b));
        // Accounts.
        c.provider_with(
            "acct-balance",
            P::Chat,
            &P::Chat.api_base(a),
            "acct-balance-m",
            &accounts("bal", "balance"),
        );
        c.provider_with(
            "acct-failover",
            P::Chat,
            &P::Chat.api_base(a),
            "acct-failover-m",
            &accounts("fo", "failover"),
        );
        c.provider_with(
            "acct-429-1",
            P::Chat,
            &P::Chat.api_base(a),
            "acct-429-1-m",
            &accounts("r429", "failover"),
        );
        c.provider("acct-429-2", P::Chat, b, "");
        c.model(
            "acct-429",
            "priority",
            &[
                ("acct-429-1", "acct-429-1-m", 1),
                ("acct-429-2", "acct-429-2-m", 1),
            ],
        );
        // Timeouts and broken streams: one endpoint each, addressed as provider/model.
        for p in [P::Chat, P::Messages] {
            c.provider(&format!("idle-{}", p.config_name()), p, a, FAST_IDLE);
        }
        for p in [P::Chat, P::Responses, P::Messages, P::Gemini] {
            c.provider(&format!("cut-{}", p.config_name()), p, a, "");
        }
        c.provider("hangup", P::Chat, a, "");
        c.provider("total", P::Chat, a, SHORT_TOTAL);
        // Strategies.
        for (name, strategy) in [("rr", "round_robin"), ("ll", "least_latency")] {
            c.provider(&format!("{name}-1"), P::Chat, a, "");
            c.provider(&format!("{name}-2"), P::Chat, b, "");
            c.model(
                name,
                strategy,
                &[
                    (&format!("{name}-1"), &format!("{name}-1-m"), 1),
                    (&format!("{name}-2"), &format!("{name}-2-m"), 1),
                ],
            );
        }
        c.provider("wt-1", P::Chat, a, "");
        c.provider("wt-2", P::Chat, b, "");
        c.model(
            "wt",
            "weighted",
            &[("wt-1", "wt-1-m", 3), ("wt-2", "wt-2-m", 1)],
        );
        // Variants and presets.
        c.pair("vsmart", (P::Chat, a, ""), (P::Chat, b));
        // Active health check against a closed port.
        c.provider_with(
            "hc-dead",
            P::Chat,
            &format!("http://127.0.0.1:{}/v1", closed_port()),
            "hc-dead-m",
            "    api_key: key-hc-dead\n    health_check: { kind: http, interval_secs: 0.2 }\n",
        );
        c.provider("hc-ok", P::Chat, b, "");
        c.model(
            "hc",
            "priority",
            &[("hc-dead", "hc-dead-m", 1), ("hc-ok", "hc-ok-m", 1)],
        );

        let config = format!(
            r#"
server:
  log_level: info
upstream:
  health:
    failure_threshold: 2
    eject_secs: 1
    max_eject_secs: 2
presets:
  concise:
    temperature: 0.2
    max_tokens: 512
    top_p: 0.9
    system_prompt_prefix: "Answer in at most three sentences."
variants:
  pin:
    providers: [vsmart-2]
providers:
{}models:
{}"#,
            c.providers, c.models
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture {
            first,
            second,
            router,
            started: Instant::now(),
        }
    })
}

// ---------- talking to the router ----------

async fn post(path: &str, body: &Value) -> Resp {
    support::wire::post(&fx().router, path, body).await
}

async fn send(p: P, model: &str, text: &str, stream: bool) -> Resp {
    let (path, body) = request(p, model, text, stream);
    post(&path, &body).await
}

/// The error message of a JSON error body in protocol `p` (asserting its shape).
fn error_message(p: P, v: &Value) -> String {
    match p {
        P::Chat | P::Responses => {
            assert!(v["error"]["type"].is_string(), "OpenAI error shape: {v}");
            v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("OpenAI error shape: {v}"))
                .into()
        }
        P::Messages => {
            assert_eq!(v["type"], "error", "Anthropic error shape: {v}");
            assert!(v["error"]["type"].is_string(), "Anthropic error shape: {v}");
            v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("Anthropic error shape: {v}"))
                .into()
        }
        P::Gemini => {
            assert!(
                v["error"]["code"].is_u64() && v["error"]["status"].is_string(),
                "Google error shape: {v}"
            );
            v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("Google error shape: {v}"))
                .into()
        }
    }
}

fn seen(mock: &MockUpstream, t: &str) -> Vec<RecordedRequest> {
    mock.requests_containing(t)
}

/// The credential a recorded request carried (bearer token, x-api-key or x-goog-api-key).
fn key_of(r: &RecordedRequest) -> String {
    for h in ["authorization", "x-api-key", "x-goog-api-key"] {
        if let Some(v) = r.header(h) {
            return v.trim_start_matches("Bearer ").to_string();
        }
    }
    String::new()
}

// ---------- failover ----------

async fn failover_case(name: &str) {
    let c = CASES.iter().find(|c| c.name == name).unwrap();
    let t = tag(name);
    // A dropping endpoint drops every try of this request: a transport may transparently resend
    // a request whose (pooled) connection died, and that resend must not be what succeeds.
    let times = if matches!(c.fault, Fault::Drop) {
        usize::MAX
    } else {
        1
    };
    fx().first
        .script(Script::for_body(&t, c.fault.action()).times(times));
    let started = Instant::now();
    let r = send(c.inbound, c.name, &format!("{t} hello"), c.stream).await;
    let firsts = seen(&fx().first, &t);
    let ctx = format!(
        "{name} ({:?} {:?}->{:?}, {:?}; the first endpoint saw {} request(s)): {}",
        c.inbound,
        c.first,
        c.second,
        c.fault,
        firsts.len(),
        r.about()
    );

    assert_eq!(r.status, 200, "{ctx}");
    assert_eq!(r.attempts(), "2", "{ctx}");
    assert_eq!(r.provider(), format!("{name}-2"), "{ctx}");
    assert_eq!(
        r.header("x-bitrouter-model"),
        format!("{name}-2-m"),
        "{ctx}"
    );
    assert!(!r.header("x-bitrouter-account").is_empty(), "{ctx}");
    let a = answer(c.inbound, c.stream, &r.body);
    assert!(
        a.text.contains(&t),
        "{ctx}: the second endpoint's answer reaches the client: {a:?}"
    );
    assert!(
        a.complete && a.error.is_none() && r.clean,
        "{ctx}: a complete answer: {a:?}"
    );

    match c.fault {
        // A transport may resend a request whose connection died; bitrouter counts one attempt.
        Fault::Drop => assert!(!firsts.is_empty(), "{ctx}: the first endpoint was tried"),
        _ => assert_eq!(firsts.len(), 1, "{ctx}: the first endpoint was tried once"),
    }
    assert_eq!(
        seen(&fx().second, &t).len(),
        1,
        "{ctx}: the second endpoint answered"
    );
    if c.fault.is_timeout() {
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{ctx}: the first-byte timeout (0.5 s) gave up on the first endpoint, it took {:?}",
            started.elapsed()
        );
    }
}

/// A 400 is the request's own fault: it comes back as is and is not retried anywhere.
#[tokio::test]
async fn a_400_is_returned_as_is_and_not_retried() {
    let t = tag("no-retry");
    fx().first.script(Script::for_body(
        &t,
        Action::Error {
            status: 400,
            message: format!("bad request {t}"),
        },
    ));
    let r = send(P::Chat, "no-retry", &t, false).await;
    assert_eq!(r.status, 400, "{}", r.about());
    assert!(
        error_message(P::Chat, &r.json()).contains(&t),
        "{}",
        r.about()
    );
    assert_eq!(r.attempts(), "1", "{}", r.about());
    assert_eq!(seen(&fx().first, &t).len(), 1);
    assert!(
        seen(&fx().second, &t).is_empty(),
        "a 400 must not fail over"
    );
}

/// When every attempt fails, the client gets the last upstream error, with its status, in the
/// client's own protocol (the last endpoint speaks another protocol, so it is translated).
#[tokio::test]
async fn when_every_attempt_fails_the_last_error_comes_back_in_the_clients_protocol() {
    for (p, model) in [
        (P::Chat, "all-fail-chat"),
        (P::Responses, "all-fail-responses"),
        (P::Messages, "all-fail-messages"),
        (P::Gemini, "all-fail-gemini"),
    ] {
        let t = tag(model);
        let fail = |which: &str| {
            Script::for_body(
                &t,
                Action::Error {
                    status: 503,
                    message: format!("{which} endpoint down {t}"),
                },
            )
        };
        fx().first.script(fail("first"));
        fx().second.script(fail("last"));
        let r = send(p, model, &t, false).await;
        assert_eq!(r.status, 503, "{p:?}: {}", r.about());
        let message = error_message(p, &r.json());
        assert!(
            message.contains("last endpoint down"),
            "{p:?}: the last error's message: {message}"
        );
        if p == P::Gemini {
            assert_eq!(r.json()["error"]["status"], "UNAVAILABLE", "{}", r.about());
            assert_eq!(r.json()["error"]["code"], 503, "{}", r.about());
        }
        assert_eq!(r.attempts(), "2", "{p:?}: {}", r.about());
        assert_eq!(seen(&fx().first, &t).len(), 1);
        assert_eq!(seen(&fx().second, &t).len(), 1);
    }
}

/// Anthropic's 529 (overloaded) is a 503 for clients of other protocols, and stays a 529 for
/// Anthropic clients.
#[tokio::test]
async fn a_final_529_is_503_for_other_protocols() {
    for (p, want) in [(P::Chat, 503), (P::Messages, 529)] {
        let t = tag("all-fail-529");
        for mock in [&fx().first, &fx().second] {
            mock.script(Script::for_body(
                &t,
                Action::Error {
                    status: 529,
                    message: format!("Overloaded {t}"),
                },
            ));
        }
        let r = send(p, "all-fail-529", &t, false).await;
        assert_eq!(r.status, want, "{p:?}: {}", r.about());
        error_message(p, &r.json());
        if p == P::Messages {
            assert_eq!(
                r.json()["error"]["type"],
                "overloaded_error",
                "{}",
                r.about()
            );
        }
    }
}

// ---------- health: cooling and ejection ----------

/// A 429 with `retry-after: 2` cools that account (the endpoint's only one): requests in the
/// next 2 s skip it without calling it, and it is used again once the time is up.
#[tokio::test]
async fn a_429_retry_after_cools_the_account_until_it_expires() {
    let t = tag("cool-429");
    fx().first.script(Script::for_body(
        &t,
        Action::ErrorRetryAfter {
            status: 429,
            message: "rate limited".into(),
            retry_after: 2,
        },
    ));
    let r = send(P::Chat, "cool-429", &t, false).await;
    let cooled = Instant::now();
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-429-2", "2"),
        "{}",
        r.about()
    );

    let t2 = tag("cool-429-during");
    let r = send(P::Chat, "cool-429", &t2, false).await;
    assert!(
        cooled.elapsed() < Duration::from_secs(2),
        "too slow to test the cooling"
    );
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-429-2", "1"),
        "{}",
        r.about()
    );
    assert!(
        seen(&fx().first, &t2).is_empty(),
        "the cooled account was called"
    );

    tokio::time::sleep_until((cooled + Duration::from_millis(2600)).into()).await;
    let t3 = tag("cool-429-after");
    let r = send(P::Chat, "cool-429", &t3, false).await;
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-429-1", "1"),
        "{}",
        r.about()
    );
    assert_eq!(seen(&fx().first, &t3).len(), 1);
}

/// A 503 with `retry-after: 2` cools the endpoint the same way.
#[tokio::test]
async fn a_503_retry_after_cools_the_endpoint_until_it_expires() {
    let t = tag("cool-503");
    fx().first.script(Script::for_body(
        &t,
        Action::ErrorRetryAfter {
            status: 503,
            message: "maintenance".into(),
            retry_after: 2,
        },
    ));
    let r = send(P::Chat, "cool-503", &t, false).await;
    let cooled = Instant::now();
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-503-2", "2"),
        "{}",
        r.about()
    );

    let t2 = tag("cool-503-during");
    let r = send(P::Chat, "cool-503", &t2, false).await;
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-503-2", "1"),
        "{}",
        r.about()
    );
    assert!(
        seen(&fx().first, &t2).is_empty(),
        "the cooled endpoint was called"
    );

    tokio::time::sleep_until((cooled + Duration::from_millis(2600)).into()).await;
    let t3 = tag("cool-503-after");
    let r = send(P::Chat, "cool-503", &t3, false).await;
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "cool-503-1", "1"),
        "{}",
        r.about()
    );
}

/// `failure_threshold` (2) consecutive failures eject the endpoint: the next request goes
/// straight to the second (one attempt). After `eject_secs` (1 s) a request probes it again and
/// it is back.
#[tokio::test]
async fn consecutive_failures_eject_an_endpoint_until_a_probe_succeeds() {
    for i in 0..2 {
        let t = tag("eject-fail");
        fx().first.script(Script::for_body(
            &t,
            Action::Error {
                status: 500,
                message: "boom".into(),
            },
        ));
        let r = send(P::Chat, "eject", &t, false).await;
        assert_eq!(
            (r.status, r.provider(), r.attempts()),
            (200, "eject-2", "2"),
            "failure {i}: {}",
            r.about()
        );
    }
    let t = tag("eject-skipped");
    let r = send(P::Chat, "eject", &t, false).await;
    let ejected = Instant::now();
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "eject-2", "1"),
        "{}",
        r.about()
    );
    assert!(
        seen(&fx().first, &t).is_empty(),
        "the ejected endpoint was called"
    );

    tokio::time::sleep_until((ejected + Duration::from_millis(1500)).into()).await;
    for label in ["probe", "recovered"] {
        let t = tag(&format!("eject-{label}"));
        let r = send(P::Chat, "eject", &t, false).await;
        assert_eq!(
            (r.status, r.provider(), r.attempts()),
            (200, "eject-1", "1"),
            "{label}: {}",
            r.about()
        );
        assert_eq!(seen(&fx().first, &t).len(), 1, "{label}");
    }
}

/// Half-open admits one probe at a time: once the ejection of a still-broken endpoint expires,
/// of many concurrent requests exactly one goes to it (and fails over); the others use the
/// healthy endpoint while that probe is out, then find it ejected again.
#[tokio::test]
async fn an_expired_ejection_lets_exactly_one_concurrent_request_probe() {
    let t = tag("probe-once");
    // Slow to fail, so that every request of the burst arrives while the probe is out.
    fx().first.script(
        Script::for_body(
            &t,
            Action::All(vec![
                Action::Delay(Duration::from_millis(400)),
                Action::Error {
                    status: 500,
                    message: "still broken".into(),
                },
            ]),
        )
        .times(usize::MAX),
    );
    for i in 0..2 {
        let r = send(P::Chat, "probe-once", &format!("{t} fail-{i}"), false).await;
        assert_eq!(
            (r.status, r.provider()),
            (200, "probe-once-2"),
            "{}",
            r.about()
        );
    }
    let ejected = Instant::now();
    assert_eq!(seen(&fx().first, &t).len(), 2);

    // `eject_secs` is 1.
    tokio::time::sleep_until((ejected + Duration::from_millis(1300)).into()).await;
    let n = 12;
    let answers = futures_util::future::join_all((0..n).map(|i| {
        let text = format!("{t} burst-{i}");
        async move { send(P::Chat, "probe-once", &text, false).await }
    }))
    .await;
    for r in &answers {
        assert_eq!(
            (r.status, r.provider()),
            (200, "probe-once-2"),
            "{}",
            r.about()
        );
    }
    assert_eq!(
        seen(&fx().first, &t).len() - 2,
        1,
        "exactly one of {n} concurrent requests probes the broken endpoint"
    );
    let probes: Vec<&Resp> = answers.iter().filter(|r| r.attempts() == "2").collect();
    assert_eq!(
        probes.len(),
        1,
        "one request tried the broken endpoint first"
    );
}

/// An active HTTP health check against a closed port marks the provider unhealthy before any
/// request is made: the virtual model serves from its second endpoint in one attempt.
#[tokio::test]
async fn a_failing_active_health_check_routes_around_the_provider() {
    // Let the 0.2 s check run a few times.
    tokio::time::sleep_until((fx().started + Duration::from_millis(1500)).into()).await;
    let t = tag("hc");
    let r = send(P::Chat, "hc", &t, false).await;
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "hc-ok", "1"),
        "{}",
        r.about()
    );
    assert_eq!(seen(&fx().second, &t).len(), 1);
}

/// `GET /health/upstreams` lists every endpoint and account (labels, never keys).
#[tokio::test]
async fn health_upstreams_lists_endpoints_and_accounts() {
    let resp = client()
        .get(fx().router.url("/health/upstreams"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{:?}",
        resp.headers()
    );
    let v: Value = resp.json().await.unwrap();
    let text = v.to_string();
    for want in [
        "rr-1",
        "rr-2-m",
        "hc-dead",
        "acct-balance",
        "team-a",
        "team-b",
    ] {
        assert!(text.contains(want), "{want} missing from {v:#}");
    }
    for secret in ["bal-key-a", "key-rr-1"] {
        assert!(!text.contains(secret), "{secret} leaked in {v:#}");
    }
}

// ---------- accounts ----------

/// `account_strategy: balance` alternates strictly between the two accounts.
#[tokio::test]
async fn balanced_accounts_alternate_strictly() {
    let mut keys = Vec::new();
    for _ in 0..4 {
        let t = tag("acct-balance");
        let r = send(P::Chat, "acct-balance/acct-balance-m", &t, false).await;
        assert_eq!((r.status, r.attempts()), (200, "1"), "{}", r.about());
        let up = seen(&fx().first, &t);
        assert_eq!(up.len(), 1);
        let key = key_of(&up[0]);
        let label = r.header("x-bitrouter-account");
        assert_eq!(
            label,
            if key.ends_with("-a") {
                "team-a"
            } else {
                "team-b"
            },
            "the header names the account whose key was used ({key})"
        );
        keys.push(key);
    }
    assert!(
        keys == ["bal-key-a", "bal-key-b", "bal-key-a", "bal-key-b"]
            || keys == ["bal-key-b", "bal-key-a", "bal-key-b", "bal-key-a"],
        "strict alternation: {keys:?}"
    );
}

/// `account_strategy: failover` sticks to the first account; a 401 on it moves the request to
/// the second account.
#[tokio::test]
async fn failover_accounts_use_the_first_until_it_fails() {
    for _ in 0..3 {
        let t = tag("acct-failover");
        let r = send(P::Chat, "acct-failover/acct-failover-m", &t, false).await;
        assert_eq!(
            (r.status, r.attempts(), r.header("x-bitrouter-account")),
            (200, "1", "team-a"),
            "{}",
            r.about()
        );
        assert_eq!(key_of(&seen(&fx().first, &t)[0]), "fo-key-a");
    }
    let t = tag("acct-failover-401");
    fx().first.script(Script::for_body_and_header(
        &t,
        "authorization",
        "fo-key-a",
        Action::Error {
            status: 401,
            message: "key revoked".into(),
        },
    ));
    let r = send(P::Chat, "acct-failover/acct-failover-m", &t, false).await;
    assert_eq!(
        (r.status, r.attempts(), r.header("x-bitrouter-account")),
        (200, "2", "team-b"),
        "{}",
        r.about()
    );
    let keys: Vec<String> = seen(&fx().first, &t).iter().map(key_of).collect();
    assert_eq!(keys, ["fo-key-a", "fo-key-b"]);
}

/// A 429 on one account moves to the next account of the same endpoint before the next
/// endpoint.
#[tokio::test]
async fn a_429_moves_to_the_next_account_before_the_next_endpoint() {
    let t = tag("acct-429");
    fx().first.script(Script::for_body_and_header(
        &t,
        "authorization",
        "r429-key-a",
        Action::Error {
            status: 429,
            message: "rate limited".into(),
        },
    ));
    let r = send(P::Chat, "acct-429", &t, false).await;
    assert_eq!(
        (
            r.status,
            r.provider(),
            r.header("x-bitrouter-account"),
            r.attempts()
        ),
        (200, "acct-429-1", "team-b", "2"),
        "{}",
        r.about()
    );
    let keys: Vec<String> = seen(&fx().first, &t).iter().map(key_of).collect();
    assert_eq!(keys, ["r429-key-a", "r429-key-b"]);
    assert!(
        seen(&fx().second, &t).is_empty(),
        "the next endpoint was not needed"
    );
}

// ---------- timeouts and broken streams ----------

/// A stream that stalls after its first event for longer than `read_secs` (1 s) ends with a
/// well-formed error event in the client's protocol, soon, and the upstream is let go; never a
/// hang. Same protocol and across protocols.
#[tokio::test]
async fn a_stream_stalled_mid_way_ends_with_an_error_event() {
    for (p, model) in [
        (P::Chat, "idle-chat_completions/idle-chat_completions-m"),
        (P::Messages, "idle-messages/idle-messages-m"),
        (P::Chat, "idle-messages/idle-messages-m"),
        (P::Messages, "idle-chat_completions/idle-chat_completions-m"),
    ] {
        let t = tag("idle");
        fx().first.script(Script::for_body(
            &t,
            Action::StreamInterval(Duration::from_secs(4)),
        ));
        let started = Instant::now();
        let r = send(p, model, &format!("{t} one two three four"), true).await;
        let took = started.elapsed();
        let ctx = format!("{p:?} via {model}: {}", r.about());
        assert_eq!(r.status, 200, "{ctx}");
        assert!(
            ends_with_error_event(p, &r.body),
            "{ctx}: must end with an error event"
        );
        assert!(
            r.clean,
            "{ctx}: the body itself ends cleanly after the error event"
        );
        assert!(
            took < Duration::from_millis(3500),
            "{ctx}: the 1 s idle timeout fired after {took:?}"
        );
        let outcome = fx()
            .first
            .wait_stream_outcome(&t, Duration::from_secs(5))
            .await
            .expect("the router let go of the stalled upstream stream");
        assert!(outcome.aborted_by_peer, "{ctx}: {outcome:?}");
    }
}

/// A stream still flowing when `total_secs` (1.5 s) is up ends there with a well-formed error
/// event, and the upstream is let go: events keep coming every 300 ms, so the idle read
/// timeout never fires and only the exchange's deadline can end it.
#[tokio::test]
async fn a_stream_longer_than_total_secs_ends_with_an_error_event() {
    let t = tag("total");
    // 30 words at 300 ms per event: about 10 s in full.
    fx().first.script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_millis(300)),
    ));
    let started = Instant::now();
    let r = send(
        P::Chat,
        "total/total-m",
        &format!("{t} {}", "w ".repeat(30)),
        true,
    )
    .await;
    let took = started.elapsed();
    let ctx = r.about();
    assert_eq!(r.status, 200, "{ctx}");
    assert!(
        r.body.contains("chat.completion.chunk"),
        "{ctx}: events came before the deadline"
    );
    assert!(
        ends_with_error_event(P::Chat, &r.body),
        "{ctx}: must end with an error event"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3500),
        "{ctx}: total_secs 1.5 ended the stream after {took:?}"
    );
    let outcome = fx()
        .first
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .expect("the router let go of the upstream stream");
    assert!(outcome.aborted_by_peer, "{ctx}: {outcome:?}");
    assert!(outcome.events_sent < outcome.events_total, "{outcome:?}");
}

/// An upstream stream cut after two events ends the client's stream with a well-formed error
/// event, whether passed through (same protocol) or translated.
#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_error_event() {
    for inbound in [P::Chat, P::Responses, P::Messages, P::Gemini] {
        for upstream in [
            inbound,
            if inbound == P::Chat {
                P::Messages
            } else {
                P::Chat
            },
        ] {
            let t = tag("cut");
            fx().first
                .script(Script::for_body(&t, Action::CutStreamAfter { events: 2 }));
            let model = format!("cut-{0}/cut-{0}-m", upstream.config_name());
            let r = send(
                inbound,
                &model,
                &format!("{t} one two three four five six seven"),
                true,
            )
            .await;
            let ctx = format!("{inbound:?} <- {upstream:?}: {}", r.about());
            assert_eq!(r.status, 200, "{ctx}");
            assert!(
                ends_with_error_event(inbound, &r.body),
                "{ctx}: must end with an error event"
            );
            assert!(
                !answer(inbound, true, &r.body).complete,
                "{ctx}: not presented as complete"
            );
            assert!(
                r.clean,
                "{ctx}: the body itself ends cleanly after the error event"
            );
            assert_eq!(
                seen(&fx().first, &t).len(),
                1,
                "{ctx}: nothing is retried once the client has data"
            );
        }
    }
}

/// A client that hangs up mid-stream makes the router close the upstream at once: the mock sees
/// its stream abandoned long before it would have ended.
#[tokio::test]
async fn a_client_disconnect_stops_the_upstream_stream() {
    let t = tag("hangup");
    // 30 words at 300 ms per event: about 10 s in full.
    fx().first.script(Script::for_body(
        &t,
        Action::StreamInterval(Duration::from_millis(300)),
    ));
    let body = json!({"model": "hangup/hangup-m", "stream": true,
                      "messages": [{"role": "user", "content": format!("{t} {}", "w ".repeat(30))}]})
    .to_string();
    let left = support::open_stream_and_hang_up(fx().router.addr, &body).await;

    let outcome = fx()
        .first
        .wait_stream_outcome(&t, Duration::from_secs(5))
        .await
        .expect("the upstream stream ended within 5 s of the client leaving");
    assert!(
        outcome.aborted_by_peer,
        "the router closed the upstream: {outcome:?}"
    );
    assert!(outcome.events_sent < outcome.events_total, "{outcome:?}");
    let after = outcome.ended.saturating_duration_since(left);
    assert!(
        after < Duration::from_secs(2),
        "the upstream was read for {after:?} after the client left"
    );
}

// ---------- strategies ----------

/// Sends `n` sequential requests to `model` and returns the provider of each.
async fn providers_of(model: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let t = tag(model);
        let r = send(P::Chat, model, &t, false).await;
        assert_eq!((r.status, r.attempts()), (200, "1"), "{}", r.about());
        out.push(r.provider().to_string());
    }
    out
}

/// `round_robin` starts each request one endpoint further along: a, b, a, b.
#[tokio::test]
async fn round_robin_alternates() {
    let got = providers_of("rr", 4).await;
    assert!(
        got == ["rr-1", "rr-2", "rr-1", "rr-2"] || got == ["rr-2", "rr-1", "rr-2", "rr-1"],
        "{got:?}"
    );
}

/// `weighted` with weights 3 and 1 starts 3 of every 4 requests on the first endpoint.
#[tokio::test]
async fn weighted_spreads_three_to_one() {
    let got = providers_of("wt", 4).await;
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for p in &got {
        *counts.entry(p.as_str()).or_default() += 1;
    }
    assert_eq!(
        (counts.get("wt-1"), counts.get("wt-2")),
        (Some(&3), Some(&1)),
        "{got:?}"
    );
}

/// `least_latency` prefers the endpoint with the faster first byte once both are measured,
/// although the slow one is declared first.
#[tokio::test]
async fn least_latency_prefers_the_faster_endpoint() {
    // Every request of ll-1 (and only of it: matched by its key) waits 1 s. The router's
    // average moves 0.3 of the way to each sample, so ll-2 overtakes ll-1 only if one of its
    // own requests takes over 3.3x that: with 250 ms, one 0.8 s stall of the shared CI machine
    // did (2026-12-03: ll-2 then lost half the requests).
    fx().first.script(
        Script::new(
            Match::header("authorization", "key-ll-1"),
            Action::Delay(Duration::from_secs(1)),
        )
        .times(usize::MAX),
    );
    let got = providers_of("ll", 12).await;
    assert!(
        got[..4].iter().any(|p| p == "ll-1"),
        "unmeasured endpoints are tried first: {got:?}"
    );
    let fast = got[4..].iter().filter(|p| *p == "ll-2").count();
    assert!(
        fast >= 5,
        "the faster endpoint should start most requests: {got:?}"
    );
}

// ---------- variants and presets ----------

/// `model:variant` with `providers: [vsmart-2]` keeps only that provider's endpoint.
#[tokio::test]
async fn a_variant_narrows_the_providers() {
    let t = tag("variant-pin");
    let r = send(P::Chat, "vsmart:pin", &t, false).await;
    assert_eq!(
        (r.status, r.provider(), r.attempts()),
        (200, "vsmart-2", "1"),
        "{}",
        r.about()
    );
    assert_eq!(seen(&fx().second, &t).len(), 1);
    assert!(seen(&fx().first, &t).is_empty());
}

/// The system text of an upstream chat request, in order.
fn system_text(body: &Value) -> String {
    let mut out = String::new();
    for m in body["messages"].as_array().into_iter().flatten() {
        if m["role"] == "system" || m["role"] == "developer" {
            match &m["content"] {
                Value::String(s) => out.push_str(s),
                Value::Array(parts) => {
                    for p in parts {
                        out.push_str(p["text"].as_str().unwrap_or_default());
                    }
                }
                _ => {}
            }
            out.push('\n');
        }
    }
    out
}

/// `model@preset` replaces the client's sampling parameters with the preset's and puts its
/// `system_prompt_prefix` before the client's system prompt; it combines with a variant.
#[tokio::test]
async fn a_preset_overrides_parameters_and_prefixes_the_system_prompt() {
    for (model, provider, mock) in [
        ("vsmart@concise", "vsmart-1", &fx().first),
        ("vsmart:pin@concise", "vsmart-2", &fx().second),
    ] {
        let t = tag("preset");
        let r = post(
            "/v1/chat/completions",
            &json!({"model": model, "temperature": 0.9, "max_tokens": 1000,
                    "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": t}]}),
        )
        .await;
        assert_eq!(
            (r.status, r.provider()),
            (200, provider),
            "{model}: {}",
            r.about()
        );
        let up = seen(mock, &t);
        assert_eq!(up.len(), 1, "{model}");
        let body = up[0].json().unwrap();
        assert_eq!(body["temperature"], 0.2, "{model}: {body}");
        assert_eq!(body["top_p"], 0.9, "{model}: {body}");
        let max = body
            .get("max_tokens")
            .or_else(|| body.get("max_completion_tokens"));
        assert_eq!(max, Some(&json!(512)), "{model}: {body}");
        let system = system_text(&body);
        let prefix = system.find("Answer in at most three sentences.");
        let client = system.find("Be brief.");
        assert!(
            matches!((prefix, client), (Some(p), Some(c)) if p < c),
            "{model}: the prefix goes before the client's system prompt: {system:?}"
        );
    }
}

/// An unknown variant or preset is a 400 in the client's format naming it (and the known ones).
#[tokio::test]
async fn unknown_variants_and_presets_are_a_400() {
    for (model, unknown, known) in [
        ("vsmart:nosuchvariant", "nosuchvariant", "pin"),
        ("vsmart@nosuchpreset", "nosuchpreset", "concise"),
    ] {
        let t = tag("unknown-suffix");
        let r = send(P::Chat, model, &t, false).await;
        assert_eq!(r.status, 400, "{model}: {}", r.about());
        let v = r.json();
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        let message = error_message(P::Chat, &v);
        assert!(message.contains(unknown), "{model}: {message}");
        assert!(
            message.contains(known),
            "{model}: the known ones are named: {message}"
        );
        assert!(seen(&fx().first, &t).is_empty() && seen(&fx().second, &t).is_empty());
    }
}
