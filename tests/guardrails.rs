//! Guardrails against the real binary: upgoing and downgoing, warn / redact / block, every
//! inbound protocol, same-protocol and translated, streamed and not; tool-call arguments;
//! scoping; the plugin shape; `bitrouter guardrails test`; validation at file:line:col.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, MockUpstream, Script};
use serde_json::json;
use std::sync::OnceLock;
use support::wire::{answer, ends_with_error_event, post, request, Resp, P};
use support::{cli, stderr, stdout, tag, Router, RouterSpec};

const OPENAI_KEY: &str = "sk-proj-Zx8Kq2LmN4pR7sT9vW1yB3dF5hJ6kM8nQ0";
const CARD: &str = "4111 1111 1111 1111";
const PEM: &str =
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----";

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let m = mock.base_url();
        let config = format!(
            r#"
providers:
  openai:
    api_base: {m}/v1
    api_key: sk-openai
    api_protocol: chat_completions
  oresp:
    api_base: {m}/v1
    api_key: sk-oresp
    api_protocol: responses
    models:
      - id: gpt-5
  anthropic:
    api_base: {m}
    api_key: sk-ant
  google:
    api_base: {m}
    api_key: goog
  local:
    api_base: {m}/v1
    api_key: none
    api_protocol: chat_completions
    models:
      - id: qwen3
guardrails:
  upgoing:
    private_keys: block
  downgoing:
    credit_cards: redact
  exempt_providers: [local]
  custom_patterns:
    - name: halt
      regex: "HALT-[0-9]{{3}}"
      direction: downgoing
      action: block
plugins:
  bitrouter-guardrails:
    custom_patterns:
      - {{ name: ssn, pattern: '\b\d{{3}}-\d{{2}}-\d{{4}}\b', action: redact }}
"#
        );
        let router = Router::start(RouterSpec {
            config: Some(&config),
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

/// The model of each upstream protocol.
fn model(upstream: P) -> &'static str {
    match upstream {
        P::Chat => "openai/gpt-4o",
        P::Responses => "oresp/gpt-5",
        P::Messages => "anthropic/claude-sonnet-4-5",
        P::Gemini => "google/gemini-2.5-pro",
    }
}

const ALL: [P; 4] = [P::Chat, P::Responses, P::Messages, P::Gemini];

async fn send(client: P, upstream: P, text: &str, stream: bool) -> Resp {
    let (path, body) = request(client, model(upstream), text, stream);
    post(&fx().router, &path, &body).await
}

fn upstream_body(t: &str) -> String {
    let seen = fx().mock.requests_containing(t);
    assert!(!seen.is_empty(), "no upstream request carried {t}");
    seen.iter()
        .map(|r| r.body_text())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn upgoing_secrets_are_redacted_before_they_leave_in_every_protocol() {
    for client in ALL {
        for upstream in ALL {
            for stream in [false, true] {
                let t = tag("up-redact");
                let text = format!("{t} my key is {OPENAI_KEY} and ssn 123-45-6789");
                let r = send(client, upstream, &text, stream).await;
                let about = format!("{client:?} -> {upstream:?} stream={stream}");
                assert_eq!(r.status, 200, "{about}: {}", r.body);
                let sent = upstream_body(&t);
                assert!(!sent.contains(OPENAI_KEY), "{about}: the key left: {sent}");
                assert!(sent.contains("[REDACTED:api_keys]"), "{about}: {sent}");
                assert!(sent.contains("[REDACTED:ssn]"), "{about}: {sent}");
                assert!(
                    r.header("x-bitrouter-guardrails")
                        .contains("api_keys=redact"),
                    "{about}: {:?}",
                    r.headers
                );
                // The model echoed what it got: the client sees the redaction too.
                let a = answer(client, stream, &r.body);
                assert!(
                    a.text.contains("[REDACTED:api_keys]"),
                    "{about}: {}",
                    a.text
                );
                assert!(a.complete, "{about}");
            }
        }
    }
}

#[tokio::test]
async fn a_same_protocol_redaction_changes_only_the_matched_string() {
    let t = tag("up-bytes");
    let body = json!({"model": "openai/gpt-4o", "temperature": 0.25, "zeta": [1, 2.50, null],
        "messages": [{"role": "user", "content": format!("{t} key {OPENAI_KEY}")}], "user": "u-1"});
    let r = post(&fx().router, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream_body(&t);
    let expected = serde_json::to_string(&body)
        .unwrap()
        .replace(OPENAI_KEY, "[REDACTED:api_keys]")
        .replace("openai/gpt-4o", "gpt-4o");
    assert_eq!(sent, expected, "every other byte as the client sent it");
}

#[tokio::test]
async fn upgoing_block_never_reaches_the_provider_and_answers_in_the_callers_format() {
    for client in ALL {
        for upstream in [P::Chat, P::Messages] {
            let t = tag("up-block");
            let text = format!("{t} here is my key:\n{PEM}");
            let r = send(client, upstream, &text, false).await;
            let about = format!("{client:?} -> {upstream:?}");
            assert_eq!(r.status, 400, "{about}: {}", r.body);
            assert!(
                fx().mock.requests_containing(&t).is_empty(),
                "{about}: it was sent"
            );
            let v = r.json();
            let message = match client {
                P::Messages => {
                    assert_eq!(v["type"], "error", "{about}");
                    v["error"]["message"].as_str().unwrap().to_string()
                }
                P::Gemini => {
                    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{about}: {v}");
                    v["error"]["message"].as_str().unwrap().to_string()
                }
                _ => {
                    assert_eq!(v["error"]["code"], "guardrail_blocked", "{about}: {v}");
                    v["error"]["message"].as_str().unwrap().to_string()
                }
            };
            assert!(message.contains("private_keys"), "{about}: {message}");
            assert!(
                !message.contains("MIIE"),
                "{about}: the matched text leaked"
            );
        }
    }
}

#[tokio::test]
async fn tool_call_arguments_are_scanned_both_ways() {
    // Upgoing: a tool call the agent replays in its history carries a key.
    let t = tag("up-tool");
    let body = json!({"model": "anthropic/claude-sonnet-4-5", "messages": [
        {"role": "user", "content": format!("{t} run it")},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "shell", "arguments": format!("{{\"cmd\":\"export OPENAI_API_KEY={OPENAI_KEY}\"}}")}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "done"}]});
    let r = post(&fx().router, "/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let sent = upstream_body(&t);
    assert!(
        !sent.contains(OPENAI_KEY) && sent.contains("[REDACTED:api_keys]"),
        "{sent}"
    );

    // Downgoing: the model calls a tool with a card number in its arguments.
    for (client, stream) in [(P::Chat, false), (P::Chat, true), (P::Messages, true)] {
        let t = tag("down-tool");
        let text = format!(r#"{t} pay [[tool:pay {{"card":"{CARD}"}}]]"#);
        let (path, mut body) = request(client, model(P::Gemini), &text, stream);
        body["tools"] = match client {
            P::Messages => {
                json!([{"name": "pay", "input_schema": {"type": "object", "properties": {"card": {"type": "string"}}}}])
            }
            _ => {
                json!([{"type": "function", "function": {"name": "pay", "parameters": {"type": "object", "properties": {"card": {"type": "string"}}}}}])
            }
        };
        let r = post(&fx().router, &path, &body).await;
        assert_eq!(r.status, 200, "{}", r.body);
        let raw = r.body.replace("\\\"", "\"");
        assert!(
            !raw.contains("4111"),
            "{client:?} stream={stream}: {}",
            r.body
        );
        assert!(
            r.body.contains("REDACTED:credit_cards"),
            "{client:?} stream={stream}: {}",
            r.body
        );
    }
}

#[tokio::test]
async fn downgoing_redaction_in_every_protocol_streamed_or_not() {
    for client in ALL {
        for upstream in ALL {
            for stream in [false, true] {
                let t = tag("down-redact");
                fx().mock.script(Script::for_body(
                    t.clone(),
                    Action::Reply(format!(
                        "your card {CARD} is on file; the order 1234 5678 9012 3456 too"
                    )),
                ));
                let r = send(client, upstream, &format!("{t} hello"), stream).await;
                let about = format!("{client:?} -> {upstream:?} stream={stream}");
                assert_eq!(r.status, 200, "{about}: {}", r.body);
                let a = answer(client, stream, &r.body);
                assert!(!a.text.contains("4111"), "{about}: {}", a.text);
                assert!(
                    a.text
                        .contains("your card [REDACTED:credit_cards] is on file"),
                    "{about}: {}",
                    a.text
                );
                // Not Luhn-valid: an order number is left alone.
                assert!(
                    a.text.contains("1234 5678 9012 3456"),
                    "{about}: {}",
                    a.text
                );
                assert!(a.complete, "{about}: {}", r.body);
                if !stream {
                    assert!(
                        r.header("x-bitrouter-guardrails")
                            .contains("credit_cards=redact"),
                        "{about}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn a_secret_split_across_stream_events_is_still_found() {
    // The mock streams the reply a few characters per event; the card is cut into pieces.
    for client in ALL {
        let t = tag("down-split");
        fx().mock.script(Script::for_body(
            t.clone(),
            Action::Reply(format!("card {CARD} and again {CARD}.")),
        ));
        let r = send(client, P::Chat, &format!("{t} hi"), true).await;
        let a = answer(client, true, &r.body);
        assert!(!a.text.contains("1111"), "{client:?}: {}", a.text);
        assert_eq!(
            a.text.matches("[REDACTED:credit_cards]").count(),
            2,
            "{client:?}: {}",
            a.text
        );
        assert!(a.text.ends_with("."), "{client:?}: {}", a.text);
    }
}

#[tokio::test]
async fn downgoing_block_mid_stream_ends_with_a_well_formed_error_event() {
    for client in ALL {
        for upstream in [P::Chat, P::Messages] {
            let t = tag("down-block");
            fx().mock.script(Script::for_body(
                t.clone(),
                Action::Reply("first part is fine and long enough to be released early, then HALT-123 and the rest".into()),
            ));
            let r = send(client, upstream, &format!("{t} go"), true).await;
            let about = format!("{client:?} -> {upstream:?}");
            assert_eq!(r.status, 200, "{about}");
            assert!(
                ends_with_error_event(client, &r.body),
                "{about}: {}",
                r.body
            );
            assert!(!r.body.contains("HALT-123"), "{about}: the match was sent");
            assert!(
                !r.body.contains("and the rest"),
                "{about}: text after the match was sent"
            );
            assert!(r.body.contains("halt"), "{about}: the error names the rule");
        }
        // Not streamed: the error instead of the answer.
        let t = tag("down-block-whole");
        fx().mock.script(Script::for_body(
            t.clone(),
            Action::Reply("say HALT-777".into()),
        ));
        let r = send(client, P::Chat, &format!("{t} go"), false).await;
        assert_eq!(r.status, 400, "{client:?}: {}", r.body);
        assert!(
            r.body.contains("halt") && !r.body.contains("HALT-777"),
            "{}",
            r.body
        );
    }
}

#[tokio::test]
async fn warn_passes_and_scoping_exempts_a_provider() {
    // suspicious_commands warns downgoing by default: passes unchanged, reported.
    let t = tag("warn");
    fx().mock.script(Script::for_body(
        t.clone(),
        Action::Reply("run rm -rf / now".into()),
    ));
    let r = send(P::Chat, P::Chat, &format!("{t} x"), false).await;
    assert_eq!(r.status, 200);
    assert!(answer(P::Chat, false, &r.body).text.contains("rm -rf /"));
    assert!(r
        .header("x-bitrouter-guardrails")
        .contains("suspicious_commands=warn"));

    // The local provider is exempt: the key goes through as written.
    let t = tag("exempt");
    let (path, body) = request(
        P::Chat,
        "local/qwen3",
        &format!("{t} key {OPENAI_KEY}"),
        false,
    );
    let r = post(&fx().router, &path, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(upstream_body(&t).contains(OPENAI_KEY));
    assert_eq!(r.header("x-bitrouter-guardrails"), "");
}

#[test]
fn guardrails_test_and_validation_at_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bitrouter.yaml"),
        "guardrails:\n  upgoing:\n    private_keys: block\n",
    )
    .unwrap();
    let out = cli(
        &["guardrails", "test", &format!("key {OPENAI_KEY}")],
        &[],
        dir.path(),
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains("api_keys: redact") && text.contains("[REDACTED:api_keys]"),
        "{text}"
    );
    assert!(
        !text.contains("upgoing (agent -> model):\n  no rule"),
        "{text}"
    );
    // `--`: the text starts with dashes.
    let out = cli(&["guardrails", "test", "--", PEM], &[], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("blocked by `private_keys`"));

    std::fs::write(
        dir.path().join("bitrouter.yaml"),
        "guardrails:\n  upgoing:\n    api_keys: shred\n  custom_patterns:\n    - name: bad\n      regex: \"(unclosed\"\n",
    )
    .unwrap();
    let out = cli(&["config", "validate"], &[], dir.path());
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bitrouter.yaml:3:"), "{err}");
    assert!(err.contains("bitrouter.yaml:6:"), "{err}");
}
