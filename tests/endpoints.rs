//! OpenAI's endpoints besides chat, end to end through the real binary: embeddings,
//! legacy completions (whole and streamed), rerank, moderations, images, audio speech and the
//! multipart uploads (transcriptions, translations) with the official openai SDK
//! (tests/sdk/endpoints_client.py); a 20 MB upload that streams through without the router
//! ever holding it; embeddings translated to Gemini's batchEmbedContents; failover, a model no
//! provider can serve on the endpoint, a virtual key's model list, metrics and ledger rows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::{embedding_of, speech_bytes, Action, MockUpstream, Script};
use bitrouter_proxy::ledger::{LedgerReader, LedgerUrl};
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{cli, client, python, stderr, stdout, tag, workspace, Router, RouterSpec};

const MASTER: &str = "master-secret-for-endpoints";

struct Fixture {
    mock: MockUpstream,
    router: Router,
}

fn config(mock: &MockUpstream) -> String {
    let base = mock.base_url();
    let price = "{ input_micro_usd_per_token: 1.0, output_micro_usd_per_token: 2.0 }";
    format!(
        "server:
  skip_auth: false
  log_level: info
providers:
  oai:
    api_base: {base}/v1
    api_key: k-oai
    api_protocol: chat_completions
    models:
      - {{ id: emb, pricing: {price} }}
      - {{ id: m-chat, pricing: {price} }}
      - img
      - tts
      - mod
      - whisper
      - whisper-1
      - rr
  oai-b:
    api_base: {base}/v1
    api_key: k-oai-b
    api_protocol: chat_completions
    models: [emb-b, whisper-b]
  gem:
    api_base: {base}
    api_key: k-gem
    api_protocol: generate_content
    models:
      - gem-emb
  msg:
    api_base: {base}
    api_key: k-msg
    api_protocol: messages
    models: [claude-x]
  dead:
    api_base: http://127.0.0.1:1/v1
    api_key: k-dead
    api_protocol: chat_completions
    models: [whisper-dead]
models:
  wh-fo:
    endpoints:
      - {{ provider: dead, service_id: whisper-dead }}
      - {{ provider: oai, service_id: whisper }}
  wh-two:
    endpoints:
      - {{ provider: oai, service_id: whisper }}
      - {{ provider: oai-b, service_id: whisper-b }}
  emb-fo:
    endpoints:
      - {{ provider: oai-b, service_id: emb-b }}
      - {{ provider: oai, service_id: emb }}
  emb-gem-or-msg:
    endpoints:
      - {{ provider: msg, service_id: claude-x }}
      - {{ provider: gem, service_id: gem-emb }}
database:
  url: sqlite://./bitrouter.db
"
    )
}

fn fx() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mock = MockUpstream::start();
        let config = config(&mock);
        let router = Router::start(RouterSpec {
            config: Some(&config),
            env: vec![("BITROUTER_API_KEY", MASTER.into())],
            files: vec![
                ("policies/no-emb.yaml", "denied_models: [\"emb*\"]\n".into()),
                (
                    "policies/budget.yaml",
                    "max_spend_micro_usd: 1000000\n".into(),
                ),
            ],
            ..Default::default()
        });
        Fixture { mock, router }
    })
}

/// POSTs JSON with the master key: (status, headers, body as JSON or a string).
async fn post(path: &str, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    post_as(path, body, MASTER).await
}

async fn post_as(path: &str, body: &Value, key: &str) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = client()
        .post(fx().router.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, headers, body)
}

fn run_client(envs: &[(&str, String)]) -> Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(workspace().join("tests/sdk/endpoints_client.py"))
        .env("BITROUTER_URL", format!("http://{}", fx().router.addr))
        .env("KEY", MASTER)
        .env_remove("OPENAI_BASE_URL");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "endpoints_client.py failed:\nstdout:\n{}\nstderr:\n{}\nrouter:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        fx().router.logs()
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_endpoint_through_the_official_sdk() {
    let t = tag("sdk-endpoints");
    let out = tokio::task::spawn_blocking({
        let t = t.clone();
        move || run_client(&[("TAG", t), ("MODE", "all".into())])
    })
    .await
    .unwrap();
    let mock = &fx().mock;

    // Embeddings from the OpenAI-shaped upstream: the mock's vectors, base64 (the SDK's
    // default) and floats with `dimensions`.
    assert_eq!(
        floats(&out["emb_default"]),
        embedding_of(&format!("{t} hello world"), 8)
    );
    assert_eq!(out["emb_usage"], 3);
    assert_eq!(
        floats(&out["emb_batch"][1]),
        embedding_of(&format!("{t} b"), 4)
    );
    // Gemini: the same vectors, through batchEmbedContents and back.
    assert_eq!(
        floats(&out["gem_single"]),
        embedding_of(&format!("{t} gemini one"), 8)
    );
    let batch = out["gem_batch"].as_array().unwrap();
    assert_eq!(batch.len(), 3);
    for (i, v) in batch.iter().enumerate() {
        assert_eq!(floats(v), embedding_of(&format!("{t} g{}", i + 1), 6));
    }
    assert!(out["gem_usage"].as_u64().unwrap() >= 3, "{out}");
    let gem: Vec<_> = mock
        .requests_containing(&format!("{t} g2"))
        .into_iter()
        .collect();
    assert_eq!(gem.len(), 1);
    assert_eq!(gem[0].path, "/v1beta/models/gem-emb:batchEmbedContents");
    assert_eq!(gem[0].header("x-goog-api-key"), Some("k-gem"));
    let body = gem[0].json().unwrap();
    assert_eq!(body["requests"][2]["outputDimensionality"], 6);
    assert_eq!(body["requests"][0]["model"], "models/gem-emb");

    // Completions.
    assert_eq!(out["completion"], format!("mock completion: {t} once upon"));
    assert_eq!(
        out["completion_stream"],
        format!("mock completion: {t} streamed")
    );
    assert!(out["completion_stream_usage"].as_u64().unwrap() > 0);
    let sent = mock.requests_containing(&format!("{t} once upon"));
    assert_eq!(sent[0].path, "/v1/completions");
    assert_eq!(sent[0].header("authorization"), Some("Bearer k-oai"));

    // Images, speech, moderations.
    assert_eq!(
        out["images"],
        json!([
            format!("mock image: {t} a cat"),
            format!("mock image: {t} a cat")
        ])
    );
    let audio = speech_bytes(&format!("{t} say this"));
    assert_eq!(out["speech_len"], audio.len());
    assert_eq!(out["speech_type"], "audio/mpeg");
    assert!(out["speech_head"]
        .as_str()
        .unwrap()
        .starts_with(&format!("MOCKAUDIO {t} say this")));
    assert_eq!(out["moderation"], json!([false, true]));

    // Small uploads: the mock parsed the form and saw the whole file.
    let wav_len = 4 + 256 * 40;
    assert_eq!(
        out["transcript"],
        format!("mock transcript: model=whisper bytes={wav_len}")
    );
    assert_eq!(
        out["transcript_text"],
        format!("mock transcript: model=whisper bytes={wav_len}")
    );
    assert_eq!(
        out["translation"],
        format!("mock translation: model=whisper bytes={wav_len}")
    );
    let ups: Vec<_> = mock
        .uploads()
        .into_iter()
        .filter(|u| u.field("prompt") == Some(t.as_str()))
        .collect();
    assert_eq!(ups.len(), 3);
    assert!(ups.iter().all(|u| u.file_bytes == wav_len as u64));
    assert_eq!(ups[2].path, "/v1/audio/translations");

    // A Messages-only model: a clear 400 naming why.
    let why = out["unsupported"].as_str().unwrap();
    assert!(
        why.contains("`msg` cannot serve /v1/embeddings") && why.contains("chat_completions"),
        "{why}"
    );

    // Metrics label each endpoint; the ledger has a row per endpoint with the usage reported.
    let metrics = client()
        .get(fx().router.url("/metrics"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for label in [
        "embeddings",
        "completions",
        "images",
        "audio_speech",
        "moderations",
        "audio_transcriptions",
        "audio_translations",
    ] {
        assert!(
            metrics.contains(&format!("inbound=\"{label}\"")),
            "no metrics for {label}:\n{metrics}"
        );
    }
    let url = LedgerUrl::Sqlite(fx().router.dir.path().join("bitrouter.db"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = LedgerReader::open(&url).unwrap().recent(1000).unwrap();
        let emb = rows
            .iter()
            .find(|r| r.inbound == "embeddings" && r.model == "emb" && r.input_tokens == 3);
        let cmpl = rows.iter().find(|r| r.inbound == "completions");
        if let (Some(emb), Some(_)) = (emb, cmpl) {
            assert_eq!(emb.usage_origin, "provider_reported");
            assert_eq!(emb.cost_micro_usd, Some(3.0));
            break;
        }
        assert!(Instant::now() < deadline, "no ledger rows: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rerank_with_and_without_v1() {
    let t = tag("rerank");
    for path in ["/v1/rerank", "/rerank"] {
        let (status, headers, body) = post(
            path,
            &json!({"model": "rr", "query": format!("{t} red apple"),
                    "documents": ["blue sky", "a red apple", format!("{t} red apple")], "top_n": 2}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(headers["x-bitrouter-provider"], "oai");
        let results = body["results"].as_array().unwrap();
        assert_eq!(results.len(), 2);
        assert_eq!(results[0]["index"], 2, "{body}");
        assert_eq!(results[1]["index"], 1, "{body}");
    }
    let sent = fx().mock.requests_containing(&format!("{t} red apple"));
    assert_eq!(sent.len(), 2);
    assert!(sent.iter().all(|r| r.path == "/v1/rerank"));
    // Without /v1, like chat: /embeddings too.
    let (status, _, body) = post("/embeddings", &json!({"model": "emb", "input": t})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

/// VmHWM (peak resident set) of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_20_mb_upload_streams_through_and_is_never_held_whole() {
    const SIZE: usize = 20 * 1024 * 1024;
    let t = tag("upload20");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.wav");
    let mut data = vec![0u8; SIZE];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i % 253) as u8;
    }
    std::fs::write(&file, &data).unwrap();
    let small = dir.path().join("small.wav");
    std::fs::write(&small, &data[..64 * 1024]).unwrap();
    drop(data);
    let upload = |file: &std::path::Path, model: &str| {
        let (t, file, model) = (t.clone(), file.to_path_buf(), model.to_string());
        tokio::task::spawn_blocking(move || {
            run_client(&[
                ("TAG", t),
                ("MODE", "upload".into()),
                ("UPLOAD_FILE", file.display().to_string()),
                ("UPLOAD_MODEL", model),
            ])
        })
    };
    // Warm up with a small upload (connection pools, allocator arenas; a large one would
    // raise the peak and hide a buffering router), then measure the peak around the 20 MB
    // one. A router that buffered the body would hold 20 MB at once: its peak would rise by
    // at least that much (checked: reading the whole body before routing fails this test).
    // Streamed, it holds a chunk at a time.
    let first = upload(&small, "whisper").await.unwrap();
    assert_eq!(
        first["text"],
        format!("mock transcript: model=whisper bytes={}", 64 * 1024)
    );
    let pid = fx().router.pid;
    let before = peak_rss_kib(pid);
    // `oai/whisper-1`: the model field is rewritten to `whisper-1` in the prefix, and the
    // content-length adjusted (the mock parses the form to its closing boundary).
    let second = upload(&file, "oai/whisper-1").await.unwrap();
    let after = peak_rss_kib(pid);
    assert_eq!(
        second["text"],
        format!("mock transcript: model=whisper-1 bytes={SIZE}")
    );
    let grew = after.saturating_sub(before);
    eprintln!("router peak RSS: {before} KiB before, {after} KiB after the 20 MB upload");
    assert!(
        grew < 8 * 1024,
        "the router's peak RSS grew by {grew} KiB during a 20 MB upload (before {before}, after {after})"
    );
    let ups: Vec<_> = fx()
        .mock
        .uploads()
        .into_iter()
        .filter(|u| u.field("prompt") == Some(t.as_str()))
        .collect();
    assert_eq!(ups.len(), 2);
    let last = &ups[1];
    assert_eq!(last.model, "whisper-1");
    assert_eq!(last.file_bytes, SIZE as u64);
    assert_eq!(last.field("language"), Some("en"));
    assert_eq!(last.content_length, Some(last.body_bytes));
    assert!(
        last.largest_frame < 1024 * 1024,
        "largest frame {}",
        last.largest_frame
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_upload_without_a_model_field_first_is_a_clear_400() {
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&vec![7u8; 200 * 1024]);
    body.extend_from_slice(
        format!("\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper\r\n--{boundary}--\r\n").as_bytes(),
    );
    let r = client()
        .post(fx().router.url("/v1/audio/transcriptions"))
        .bearer_auth(MASTER)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("first 64 KiB"), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embeddings_fail_over_on_a_500_to_the_next_provider() {
    let t = tag("emb-fo");
    fx().mock.script(Script::for_body(
        t.clone(),
        Action::Error {
            status: 500,
            message: "boom".into(),
        },
    ));
    let (status, headers, body) = post(
        "/v1/embeddings",
        &json!({"model": "emb-fo", "input": format!("{t} x")}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-bitrouter-provider"], "oai");
    assert_eq!(headers["x-bitrouter-attempts"], "2");
    let sent = fx().mock.requests_containing(&t);
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].json().unwrap()["model"], "emb-b");
    assert_eq!(sent[1].json().unwrap()["model"], "emb");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn endpoints_no_provider_can_serve_are_clear_errors() {
    // Only a Messages provider: a 400 in OpenAI's JSON naming the provider and why.
    let (status, _, body) = post(
        "/v1/embeddings",
        &json!({"model": "claude-x", "input": "x"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "endpoint_not_supported", "{body}");
    // A virtual model whose first endpoint cannot serve embeddings skips to the one that can.
    let t = tag("skip");
    let (status, headers, body) = post(
        "/v1/embeddings",
        &json!({"model": "emb-gem-or-msg", "input": [t.clone()]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-bitrouter-provider"], "gem");
    // Rerank cannot go to Gemini at all.
    let (status, _, body) = post(
        "/v1/rerank",
        &json!({"model": "gem-emb", "query": "q", "documents": ["d"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("cannot serve /v1/rerank"));
    // Token arrays to Gemini: 400, nothing sent.
    let (status, _, body) = post(
        "/v1/embeddings",
        &json!({"model": "gem-emb", "input": [[1, 2, 3]]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("token-array"));
    // No model.
    let (status, _, body) = post("/v1/embeddings", &json!({"input": "x"})).await;
    assert_eq!(status, 400, "{body}");
    // Wrong method.
    let r = client()
        .get(fx().router.url("/v1/embeddings"))
        .bearer_auth(MASTER)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
}

/// Mints a virtual key with `policy` on the shared router.
fn sign(user: &str, policy: &str) -> String {
    let router = &fx().router;
    let dir = router.dir.path();
    let config = dir.join("bitrouter.yaml");
    let out = cli(
        &[
            "key",
            "sign",
            "--user",
            user,
            "--json",
            "--policy",
            policy,
            "-c",
            config.to_str().unwrap(),
        ],
        &[],
        dir,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    v["key"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_with_a_budget_embeds_priced_models_only() {
    let key = sign("rag-budget", "budget");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = post_as(
            "/v1/embeddings",
            &json!({"model": "emb", "input": "x"}),
            &key,
        )
        .await;
        if status != 401 {
            assert_eq!(status, 200, "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "key never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An unpriced model's cost cannot be bounded: refused before anything goes upstream.
    let (status, _, body) = post_as(
        "/v1/images/generations",
        &json!({"model": "img", "prompt": "x"}),
        &key,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "model_not_priced", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_virtual_key_denied_a_model_gets_403_on_embeddings() {
    let key = sign("rag", "no-emb");
    // Keys refresh every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = post_as(
            "/v1/embeddings",
            &json!({"model": "emb", "input": "x"}),
            &key,
        )
        .await;
        if status != 401 {
            assert_eq!(status, 403, "{body}");
            assert_eq!(body["error"]["code"], "model_not_allowed", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "key never accepted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The same key may embed with a model its policy allows.
    let (status, _, body) = post_as(
        "/v1/embeddings",
        &json!({"model": "gem-emb", "input": "x"}),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// A multipart body with `model` first, then a file of `size` bytes, sent in 7 KiB pieces with
/// no content-length (chunked).
fn chunked_upload(model: &str, prompt: &str, size: usize) -> (String, reqwest::Body) {
    let boundary = "----endpoints-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n{prompt}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
         Content-Type: audio/wav\r\n\r\n"
    )
    .into_bytes();
    body.extend((0..size).map(|i| (i % 251) as u8));
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(7 * 1024).map(|c| Ok(c.to_vec())).collect();
    (
        format!("multipart/form-data; boundary={boundary}"),
        reqwest::Body::wrap_stream(futures_util::stream::iter(pieces)),
    )
}

async fn send_upload(
    model: &str,
    prompt: &str,
    size: usize,
) -> (u16, reqwest::header::HeaderMap, String) {
    let (content_type, body) = chunked_upload(model, prompt, size);
    let r = client()
        .post(fx().router.url("/audio/transcriptions"))
        .bearer_auth(MASTER)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_fail_over_only_before_the_body_goes_upstream() {
    // A chunked upload whose first endpoint cannot be reached: nothing of the body went out,
    // so it moves on, and the whole file arrives (chunked again, the model field rewritten).
    let t = tag("up-fo");
    let (status, headers, body) = send_upload("wh-fo", &t, 300 * 1024).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-bitrouter-provider"], "oai");
    assert_eq!(headers["x-bitrouter-attempts"], "2");
    let ups: Vec<_> = fx()
        .mock
        .uploads()
        .into_iter()
        .filter(|u| u.field("prompt") == Some(t.as_str()))
        .collect();
    assert_eq!(ups.len(), 1);
    assert_eq!(ups[0].model, "whisper");
    assert_eq!(ups[0].file_bytes, 300 * 1024);
    assert_eq!(
        ups[0].content_length, None,
        "sent chunked, as the client did"
    );

    // A 500 after the body went upstream: the body cannot be sent again, so the client gets
    // the 500 and the second endpoint never sees the upload.
    let t = tag("up-500");
    fx().mock.script(Script::for_body(
        t.clone(),
        Action::Error {
            status: 500,
            message: "transcriber crashed".into(),
        },
    ));
    let (status, headers, body) = send_upload("wh-two", &t, 100 * 1024).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(headers["x-bitrouter-attempts"], "1");
    assert!(body.contains("transcriber crashed"), "{body}");
    let ups = fx()
        .mock
        .uploads()
        .into_iter()
        .filter(|u| u.field("prompt") == Some(t.as_str()))
        .count();
    assert_eq!(ups, 1, "the upload was not resent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streamed_completion_is_metered_without_showing_the_client_a_usage_chunk() {
    let t = tag("cmpl-usage");
    let r = client()
        .post(fx().router.url("/completions"))
        .bearer_auth(MASTER)
        .json(&json!({"model": "m-chat", "prompt": format!("{t} go go go"), "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(
        body.contains(&format!("{t} ")) && body.ends_with("data: [DONE]\n\n"),
        "{body}"
    );
    assert!(
        !body.contains("\"usage\""),
        "the client did not ask for usage: {body}"
    );
    let sent = fx().mock.requests_containing(&t);
    assert_eq!(
        sent[0].json().unwrap()["stream_options"]["include_usage"],
        true
    );
    let url = LedgerUrl::Sqlite(fx().router.dir.path().join("bitrouter.db"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = LedgerReader::open(&url).unwrap().recent(1000).unwrap();
        if let Some(row) = rows
            .iter()
            .find(|r| r.inbound == "completions" && r.stream && r.output_tokens == 6)
        {
            assert_eq!(row.usage_origin, "provider_reported");
            break;
        }
        assert!(Instant::now() < deadline, "no ledger row: {rows:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
