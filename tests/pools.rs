//! Replica pools through the real binary (docs/pools.md): a provider whose `api_base` lists
//! several in-process mocks, one per replica. Which mock saw a request tells which replica
//! served it. Every test has its own router and mocks (replica health and in-flight counts are
//! per router), and tags its prompts.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{Action, MockConfig, MockUpstream, Script};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use support::{client, tag, Router, RouterSpec};

/// A router with one pool provider `pool` (model `m`) over `mocks`, and `extra` lines under
/// the provider (indented four spaces) and at the top level.
fn start(strategy: &str, bases: &[String], provider_extra: &str, top: &str) -> Router {
    let config = config(strategy, bases, provider_extra, top);
    Router::start(RouterSpec {
        config: Some(&config),
        ..Default::default()
    })
}

fn config(strategy: &str, bases: &[String], provider_extra: &str, top: &str) -> String {
    format!(
        "{top}providers:\n  pool:\n    api_base: [{}]\n    api_key: k\n    api_protocol: chat_completions\n    replica_strategy: {strategy}\n    models: [m]\n{provider_extra}",
        bases.join(", ")
    )
}

fn base(mock: &MockUpstream) -> String {
    format!("{}/v1", mock.base_url())
}

/// A loopback port nothing listens on.
fn dead_base() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

/// Sends a chat request with `body` merged over a minimal one and `session` as x-session-id;
/// returns the status.
async fn chat(router: &Router, text: &str, extra: Value, session: Option<&str>) -> u16 {
    let mut body = json!({"model": "pool/m", "messages": [{"role": "user", "content": text}]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let mut req = client()
        .post(router.url("/v1/chat/completions"))
        .json(&body);
    if let Some(s) = session {
        req = req.header("x-session-id", s);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let _ = resp.bytes().await;
    status
}

/// How many requests containing `needle` each mock saw.
fn counts(mocks: &[&MockUpstream], needle: &str) -> Vec<usize> {
    mocks
        .iter()
        .map(|m| m.requests_containing(needle).len())
        .collect()
}

/// The index of the only mock that saw `needle` (panics when several did).
fn only(mocks: &[&MockUpstream], needle: &str) -> usize {
    let c = counts(mocks, needle);
    let used: Vec<usize> = (0..c.len()).filter(|&i| c[i] > 0).collect();
    assert_eq!(used.len(), 1, "{needle}: {c:?}");
    used[0]
}

async fn upstream_health(router: &Router) -> Value {
    client()
        .get(router.url("/health/upstreams"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// The replicas entry of provider `pool` in `/health/upstreams`.
async fn replicas(router: &Router) -> Vec<Value> {
    let h = upstream_health(router).await;
    let p = h["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "pool")
        .cloned()
        .unwrap();
    p["replicas"].as_array().cloned().unwrap_or_default()
}

/// One long request (held `hold` by whichever mock gets it) then `shorts` short ones in a row
/// while it runs: how many short requests landed on the replica busy with the long one.
async fn shorts_on_the_busy_replica(strategy: &str, shorts: usize) -> usize {
    let (a, b) = (MockUpstream::start(), MockUpstream::start());
    let router = start(strategy, &[base(&a), base(&b)], "", "");
    let mocks = [&a, &b];
    let t = tag(strategy);
    let long = format!("LONG-{t}");
    for m in mocks {
        m.script(Script::for_body(
            long.clone(),
            Action::Delay(Duration::from_secs(3)),
        ));
    }
    let url = router.url("/v1/chat/completions");
    let long_body = json!({"model": "pool/m", "messages": [{"role": "user", "content": long}]});
    let held = tokio::spawn(async move {
        client()
            .post(url)
            .json(&long_body)
            .send()
            .await
            .unwrap()
            .status()
    });
    let busy = loop {
        let c = counts(&mocks, &long);
        if let Some(i) = c.iter().position(|&n| n > 0) {
            break i;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let short = format!("SHORT-{t}");
    for _ in 0..shorts {
        assert_eq!(chat(&router, &short, json!({}), None).await, 200);
    }
    assert_eq!(held.await.unwrap(), 200);
    counts(&mocks, &short)[busy]
}

#[tokio::test]
async fn least_requests_keeps_short_requests_off_the_replica_busy_with_a_long_one() {
    let (lr, rr) = tokio::join!(
        shorts_on_the_busy_replica("least_requests", 10),
        shorts_on_the_busy_replica("round_robin", 10)
    );
    // Round robin sends every other short request to the busy replica; least requests none.
    assert_eq!(lr, 0, "least_requests");
    assert!(
        rr >= 4,
        "round_robin put only {rr} of 10 on the busy replica"
    );
}

#[tokio::test]
async fn round_robin_alternates() {
    let (a, b) = (MockUpstream::start(), MockUpstream::start());
    let router = start("round_robin", &[base(&a), base(&b)], "", "");
    let mocks = [&a, &b];
    let t = tag("rr");
    let mut order = Vec::new();
    for i in 0..8 {
        let needle = format!("{t}-{i}");
        assert_eq!(chat(&router, &needle, json!({}), None).await, 200);
        order.push(only(&mocks, &needle));
    }
    for w in order.windows(2) {
        assert_ne!(w[0], w[1], "{order:?}");
    }
    // The log line and the metrics name the replica.
    router.wait_for_log(&format!("replica={}", a.addr()));
    router.wait_for_log(&format!("replica={}", b.addr()));
    let metrics = client()
        .get(router.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(&format!(
            "bitrouter_replica_attempts_total{{outcome=\"ok\",provider=\"pool\",replica=\"{}\"}} 4",
            b.addr()
        )),
        "{metrics}"
    );
}

fn three() -> (MockUpstream, MockUpstream, MockUpstream) {
    (
        MockUpstream::start(),
        MockUpstream::start(),
        MockUpstream::start(),
    )
}

#[tokio::test]
async fn affinity_keeps_a_session_on_one_replica_and_spreads_sessions() {
    let (a, b, c) = three();
    let router = start("affinity", &[base(&a), base(&b), base(&c)], "", "");
    let mocks = [&a, &b, &c];
    let t = tag("aff");

    // x-session-id: many requests, different prompts, one replica.
    let s = format!("{t}-hdr");
    for i in 0..10 {
        let text = format!("{s} question {i}");
        assert_eq!(
            chat(&router, &text, json!({}), Some("session-1")).await,
            200
        );
    }
    only(&mocks, &s);

    // The `user` field.
    let u = format!("{t}-user");
    for i in 0..8 {
        let text = format!("{u} question {i}");
        let extra = json!({"user": "alice"});
        assert_eq!(chat(&router, &text, extra, None).await, 200);
    }
    only(&mocks, &u);

    // No session: the system prompt and first messages (later turns of one conversation).
    let p = format!("{t}-prefix");
    for turn in 0..8 {
        let mut messages = vec![
            json!({"role": "system", "content": format!("You answer questions about {p}.")}),
            json!({"role": "user", "content": "first question"}),
        ];
        for k in 0..turn {
            messages.push(json!({"role": "assistant", "content": format!("answer {k}")}));
            messages.push(json!({"role": "user", "content": format!("follow-up {k}")}));
        }
        let extra = json!({ "messages": messages });
        assert_eq!(chat(&router, "", extra, None).await, 200);
    }
    only(&mocks, &p);

    // Different sessions spread over the replicas.
    let d = format!("{t}-many");
    for i in 0..30 {
        let session = format!("{t}-session-{i}");
        assert_eq!(chat(&router, &d, json!({}), Some(&session)).await, 200);
    }
    let spread = counts(&mocks, &d);
    assert_eq!(spread.iter().sum::<usize>(), 30);
    assert!(
        spread.iter().filter(|&&n| n > 0).count() == 3,
        "30 sessions should reach all 3 replicas: {spread:?}"
    );
}

#[tokio::test]
async fn a_hot_session_overflows_its_replica_at_the_bound() {
    let (a, b) = (MockUpstream::start(), MockUpstream::start());
    let router = start("affinity", &[base(&a), base(&b)], "", "");
    let mocks = [&a, &b];
    let t = tag("hot");
    // Find the session's home first.
    let first = format!("{t}-first");
    assert_eq!(chat(&router, &first, json!({}), Some("hot")).await, 200);
    let home = only(&mocks, &first);
    // Eight requests of the session at once, each held a second: the home replica takes at
    // most ceil(1.25 * m / 2) of them, the rest go to the next replica on the ring.
    let slow = format!("{t}-slow");
    for m in mocks {
        m.script(
            Script::for_body(slow.clone(), Action::Delay(Duration::from_millis(1500))).times(8),
        );
    }
    let mut tasks = Vec::new();
    for i in 0..8 {
        let url = router.url("/v1/chat/completions");
        let body = json!({"model": "pool/m", "messages": [{"role": "user", "content": format!("{slow} {i}")}]});
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .header("x-session-id", "hot")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    let split = counts(&mocks, &slow);
    assert_eq!(split.iter().sum::<usize>(), 8);
    assert!(
        split[home] >= 4 && split[home] <= 5,
        "{split:?} (home {home})"
    );
    assert!(split[1 - home] >= 3, "{split:?}");
    // Load gone: the session is home again.
    let after = format!("{t}-after");
    for _ in 0..3 {
        assert_eq!(chat(&router, &after, json!({}), Some("hot")).await, 200);
    }
    assert_eq!(only(&mocks, &after), home);
}

/// A mock on a fixed address (to restart a stopped replica where it was).
fn mock_at(addr: SocketAddr) -> MockUpstream {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match MockUpstream::try_start(MockConfig {
            listen: addr,
            ..MockConfig::default()
        }) {
            Ok(m) => return m,
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot restart the mock on {addr}: {e}"),
        }
    }
}

#[tokio::test]
async fn an_ejected_replica_loses_its_session_and_gets_it_back_after_a_probe() {
    let mut mocks = vec![
        MockUpstream::start(),
        MockUpstream::start(),
        MockUpstream::start(),
    ];
    let bases: Vec<String> = mocks.iter().map(base).collect();
    // Passive ejection after one failure, for long: only the active check brings it back.
    let router = start(
        "affinity",
        &bases,
        "    health_check: { kind: http, interval_secs: 0.2, timeout_secs: 0.5 }\n",
        "upstream:\n  health: { failure_threshold: 1, eject_secs: 600 }\n",
    );
    let t = tag("eject");
    let before = format!("{t}-before");
    for _ in 0..3 {
        assert_eq!(chat(&router, &before, json!({}), Some("s")).await, 200);
    }
    let home = only(&mocks.iter().collect::<Vec<_>>(), &before);
    let home_addr = mocks[home].addr();

    // The home replica goes away: every request is still answered, by another replica.
    mocks.remove(home);
    let during = format!("{t}-during");
    for _ in 0..6 {
        assert_eq!(chat(&router, &during, json!({}), Some("s")).await, 200);
    }
    let others: Vec<&MockUpstream> = mocks.iter().collect();
    only(&others, &during);
    let state = replicas(&router).await;
    let down = state
        .iter()
        .find(|r| r["replica"] == home_addr.to_string())
        .unwrap();
    assert_eq!(down["healthy"], false, "{state:?}");

    // It comes back: the active check passes and the session returns.
    let back = mock_at(home_addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let state = replicas(&router).await;
        let r = state
            .iter()
            .find(|r| r["replica"] == home_addr.to_string())
            .unwrap();
        if r["healthy"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never recovered: {r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = format!("{t}-after");
    for _ in 0..3 {
        assert_eq!(chat(&router, &after, json!({}), Some("s")).await, 200);
    }
    assert_eq!(back.requests_containing(&after).len(), 3);
}

#[tokio::test]
async fn a_replica_answering_500_is_ejected_without_failing_a_request() {
    let (a, b) = (MockUpstream::start(), MockUpstream::start());
    let router = start(
        "round_robin",
        &[base(&a), base(&b)],
        "",
        "upstream:\n  health: { failure_threshold: 1, eject_secs: 600 }\n",
    );
    let t = tag("five");
    a.script(
        Script::for_body(
            t.clone(),
            Action::Error {
                status: 500,
                message: "replica broken".into(),
            },
        )
        .times(usize::MAX),
    );
    for _ in 0..8 {
        assert_eq!(chat(&router, &t, json!({}), None).await, 200);
    }
    let c = counts(&[&a, &b], &t);
    assert_eq!(c[1], 8, "{c:?}");
    assert_eq!(c[0], 1, "ejected after its first 500: {c:?}");
}

#[tokio::test]
async fn a_connection_failure_fails_over_to_another_replica() {
    let live = MockUpstream::start();
    let router = start("round_robin", &[dead_base(), base(&live)], "", "");
    let t = tag("conn");
    for _ in 0..6 {
        assert_eq!(chat(&router, &t, json!({}), None).await, 200);
    }
    assert_eq!(live.requests_containing(&t).len(), 6);
    let state = replicas(&router).await;
    assert_eq!(state.len(), 2);
    assert_eq!(state[1]["replica"], live.addr().to_string());
    assert!(state[0]["failures"].as_u64().unwrap() >= 1, "{state:?}");
    assert_eq!(state[1]["successes"], 6);
}

#[tokio::test]
async fn health_lists_replicas_and_a_reload_keeps_their_state() {
    let live = MockUpstream::start();
    let dead = dead_base();
    let top = "upstream:\n  health: { failure_threshold: 1, eject_secs: 600 }\n";
    let router = start("least_requests", &[dead.clone(), base(&live)], "", top);
    let t = tag("reload");
    for _ in 0..3 {
        assert_eq!(chat(&router, &t, json!({}), None).await, 200);
    }
    let state = replicas(&router).await;
    assert_eq!(state[0]["api_base"], dead);
    assert_eq!(state[0]["healthy"], false, "{state:?}");
    assert_eq!(state[1]["healthy"], true);
    let h = upstream_health(&router).await;
    let p = h["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "pool")
        .cloned()
        .unwrap();
    assert_eq!(p["replica_strategy"], "least_requests");

    // Reload with a third replica: the dead one stays ejected, the live one keeps its counts.
    let extra = MockUpstream::start();
    let config = config(
        "least_requests",
        &[dead.clone(), base(&live), base(&extra)],
        "",
        top,
    );
    std::fs::write(router.dir.path().join("bitrouter.yaml"), config).unwrap();
    router.sighup();
    router.wait_for_log("reloaded configuration");
    let state = replicas(&router).await;
    assert_eq!(state.len(), 3, "{state:?}");
    assert_eq!(state[0]["healthy"], false, "still ejected: {state:?}");
    assert!(state[0]["ejected_for_secs"].as_f64().unwrap() > 500.0);
    assert_eq!(state[1]["successes"], 3);
    assert_eq!(state[2]["healthy"], true);
    assert_eq!(state[2]["successes"], 0);
}
