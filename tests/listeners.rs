//! Downstream listeners through the real binary: HTTPS with a test CA (h2 and http/1.1 chosen
//! by ALPN), 100 streamed requests multiplexed over one HTTP/2 connection, h2c, a plain and a
//! TLS listener in one process, certificate reload, a bad certificate path, and the JSON
//! access log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bitrouter_mock::MockUpstream;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType, SerialNumber,
};
use serde_json::{json, Value};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};
use support::{cli, stderr, tag, Router, RouterSpec};

/// A test CA that signs server certificates for `localhost` / 127.0.0.1.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "bitrouter listeners test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A leaf named `cn` with serial `serial`: (certificate chain PEM, key PEM).
    fn leaf(&self, cn: &str, serial: u64) -> (String, String) {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        ];
        params.serial_number = Some(SerialNumber::from(serial));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (
            format!("{}{}", cert.pem(), self.cert.pem()),
            key.serialize_pem(),
        )
    }
}

/// A client trusting `ca` only (rustls), reporting the peer certificate.
fn tls_client(ca: &Ca) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(30))
}

fn chat(model: &str, content: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": content}]})
}

/// Every `bitrouter listening on URL` line of the router's output, waiting for `n` of them.
fn listening(router: &Router, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let urls: Vec<String> = router
            .logs()
            .lines()
            .filter_map(|l| l.strip_prefix("bitrouter listening on "))
            .filter(|l| l.starts_with("http"))
            .map(|l| l.trim().to_string())
            .collect();
        if urls.len() >= n || Instant::now() > deadline {
            assert_eq!(urls.len(), n, "{}", router.logs());
            return urls;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The JSON access lines of `router`'s output (stdout).
fn json_lines(router: &Router) -> Vec<Value> {
    router
        .logs()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The access log's JSON lines once there are `n` of them (or whatever there is after 10 s).
async fn json_lines_at_least(router: &Router, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let lines = json_lines(router);
        if lines.len() >= n || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The config of a router with `listen` and a mock provider `m` (model `gpt-4o`), TLS files
/// `cert.pem` / `key.pem` beside it.
fn config(mock: &MockUpstream, server: &str) -> String {
    format!(
        "server:\n{server}\nproviders:\n  m:\n    api_base: {}/v1\n    api_key: sk-x\n    models:\n      - id: gpt-4o\n",
        mock.base_url()
    )
}

/// The serial of the certificate `r` was served with.
fn peer_cert(r: &reqwest::Response) -> Vec<u8> {
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("tls info")
        .to_vec()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn tls_router(mock: &MockUpstream, ca: &Ca, server: &str) -> Router {
    let (cert, key) = ca.leaf("bitrouter-one", 1);
    Router::start(RouterSpec {
        config: Some(&config(mock, server)),
        files: vec![("cert.pem", cert), ("key.pem", key)],
        keep_listen: true,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_alpn_h2_and_http1_and_a_plain_listener_beside_it() {
    let mock = MockUpstream::start();
    let ca = Ca::new();
    let router = tls_router(
        &mock,
        &ca,
        "  tls: {cert_file: cert.pem, key_file: key.pem}\n  access_log: {format: json}\n  listen:\n    - {address: 127.0.0.1:0, tls: false}\n    - 127.0.0.1:0",
    );
    let urls = listening(&router, 2);
    assert!(urls[0].starts_with("http://127.0.0.1:"), "{urls:?}");
    assert!(urls[1].starts_with("https://127.0.0.1:"), "{urls:?}");
    let https = urls[1].replace("127.0.0.1", "localhost");

    // h2 by ALPN.
    let t = tag("h2");
    let c = tls_client(&ca).build().unwrap();
    let r = c
        .post(format!("{https}/v1/chat/completions"))
        .json(&chat("m/gpt-4o", &t, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert!(contains(&peer_cert(&r), "bitrouter-one"));
    let body: Value = r.json().await.unwrap();
    assert!(body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .contains(&t));

    // http/1.1 by ALPN, on the same port.
    let t1 = tag("h1");
    let c1 = tls_client(&ca).http1_only().build().unwrap();
    let r = c1
        .post(format!("{https}/v1/chat/completions"))
        .json(&chat("m/gpt-4o", &t1, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains(&t1) && text.contains("[DONE]"), "{text}");

    // The plain listener of the same process.
    let tp = tag("plain");
    let r = support::client()
        .post(format!("{}/v1/chat/completions", urls[0]))
        .json(&chat("m/gpt-4o", &tp, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // The JSON access log: one object per request, with the listener, client, upstream and
    // TLS version.
    let lines = json_lines_at_least(&router, 3).await;
    assert_eq!(lines.len(), 3, "{}", router.logs());
    let tls_port = urls[1].rsplit(':').next().unwrap();
    let plain_port = urls[0].rsplit(':').next().unwrap();
    let h2 = &lines[0];
    assert_eq!(h2["http"], "HTTP/2", "{h2}");
    assert_eq!(h2["method"], "POST");
    assert_eq!(h2["status"], 200);
    assert_eq!(h2["model"], "m/gpt-4o");
    assert_eq!(h2["provider"], "m");
    assert_eq!(h2["stream"], false);
    assert!(h2["tls"].as_str().unwrap().starts_with("TLSv1."), "{h2}");
    assert!(h2["listener"].as_str().unwrap().ends_with(tls_port), "{h2}");
    assert!(
        h2["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{h2}"
    );
    assert_eq!(h2["upstream"], mock.addr().to_string(), "{h2}");
    assert!(h2["duration_ms"].as_f64().unwrap() > 0.0);
    assert!(h2["bytes_in"].as_u64().unwrap() > 0 && h2["bytes_out"].as_u64().unwrap() > 0);
    assert!(h2["ts"].as_str().unwrap().ends_with('Z'));
    assert!(h2["tokens"]["input"].is_u64(), "{h2}");
    assert_eq!(lines[1]["http"], "HTTP/1.1");
    assert_eq!(lines[1]["stream"], true);
    let plain = &lines[2];
    assert!(plain.get("tls").is_none(), "{plain}");
    assert!(plain["listener"].as_str().unwrap().ends_with(plain_port));
    // Nothing of the human line for these requests.
    assert!(!router.logs().contains(" status=200 stream="));

    // The HTTP/1.1 TLS connection, left idle, serves its next requests whole (the router reads
    // the next request's first bytes while idle and puts them back in front of the TLS
    // stream), on the same connection and with its TLS details in the access log.
    for i in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let t = tag(&format!("idle-tls-{i}"));
        let r = c1
            .post(format!("{https}/v1/chat/completions"))
            .json(&chat("m/gpt-4o", &t, false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_11);
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains(&t), "{text}");
    }
    let lines = json_lines_at_least(&router, 5).await;
    assert_eq!(lines.len(), 5, "{}", router.logs());
    for again in &lines[3..] {
        assert_eq!(again["http"], "HTTP/1.1", "{again}");
        assert_eq!(
            again["client"], lines[1]["client"],
            "one connection: {again}"
        );
        assert_eq!(again["tls"], lines[1]["tls"], "{again}");
        assert!(again["listener"].as_str().unwrap().ends_with(tls_port));
    }

    // Errors and the other surfaces answer over HTTP/2 too.
    let r = c
        .post(format!("{https}/v1/chat/completions"))
        .json(&chat("nope/unknown", "x", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.status().is_client_error(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    let r = c.get(format!("{https}/v1/models")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["data"].as_array().is_some_and(|d| !d.is_empty()), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_streams_multiplexed_over_one_h2_connection() {
    let mock = MockUpstream::start();
    let ca = Ca::new();
    let router = tls_router(
        &mock,
        &ca,
        "  tls: {cert_file: cert.pem, key_file: key.pem}\n  access_log: {format: json}\n  listen: 127.0.0.1:0",
    );
    let https = listening(&router, 1)[0].replace("127.0.0.1", "localhost");
    let c = tls_client(&ca).build().unwrap();
    // One request first: the connection exists (h2 negotiated) before the burst, so the
    // client multiplexes the burst on it.
    let r = c
        .post(format!("{https}/v1/chat/completions"))
        .json(&chat("m/gpt-4o", "warm-up", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    r.bytes().await.unwrap();
    let base = tag("mux");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let c = c.clone();
            let url = format!("{https}/v1/chat/completions");
            let t = format!("{base}-{i}");
            tokio::spawn(async move {
                let r = c
                    .post(url)
                    .json(&chat("m/gpt-4o", &t, true))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.version(), reqwest::Version::HTTP_2);
                let text = r.text().await.unwrap();
                assert!(text.contains(&t), "{text}");
                assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    // Server side: every request came from the same client address (one connection).
    let lines = json_lines_at_least(&router, 101).await;
    assert_eq!(lines.len(), 101);
    let clients: std::collections::BTreeSet<&str> = lines
        .iter()
        .map(|l| l["client"].as_str().unwrap())
        .collect();
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert!(lines
        .iter()
        .all(|l| l["status"] == 200 && l["http"] == "HTTP/2"));
    assert_eq!(mock.requests_containing(&base).len(), 100);
}

#[tokio::test(flavor = "multi_thread")]
async fn h2c_prior_knowledge_and_http1_on_one_plain_port() {
    let mock = MockUpstream::start();
    let router = Router::start(RouterSpec {
        config: Some(&config(&mock, "  h2c: true\n  listen: 127.0.0.1:0")),
        keep_listen: true,
        ..Default::default()
    });
    let url = format!("{}/v1/chat/completions", listening(&router, 1)[0]);
    let t = tag("h2c");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(&url)
        .json(&chat("m/gpt-4o", &t, true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains(&t) && text.contains("[DONE]"), "{text}");
    let r = support::client()
        .post(&url)
        .json(&chat("m/gpt-4o", &t, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    // Without h2c, prior knowledge is refused (the port speaks HTTP/1.1 only).
    let plain = Router::start(RouterSpec {
        config: Some(&config(&mock, "  listen: 127.0.0.1:0")),
        keep_listen: true,
        ..Default::default()
    });
    let r = h2
        .post(plain.url("/v1/chat/completions"))
        .json(&chat("m/gpt-4o", &t, false))
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn reload_serves_a_new_certificate_to_new_connections() {
    let mock = MockUpstream::start();
    let ca = Ca::new();
    let router = tls_router(
        &mock,
        &ca,
        "  tls: {cert_file: cert.pem, key_file: key.pem}\n  listen: 127.0.0.1:0",
    );
    let https = listening(&router, 1)[0].replace("127.0.0.1", "localhost");
    let get = |c: reqwest::Client| {
        let url = format!("{https}/health");
        async move { c.get(url).send().await.unwrap() }
    };
    let r = get(tls_client(&ca).build().unwrap()).await;
    assert_eq!(r.status(), 200);
    assert!(contains(&peer_cert(&r), "bitrouter-one"));

    // A broken key: the reload is refused and the old certificate stays.
    let dir = router.dir.path();
    write(
        dir,
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    );
    let cfg = dir.join("bitrouter.yaml");
    let reload = |expect_ok: bool| {
        let out = cli(&["reload", "-c", cfg.to_str().unwrap()], &[], dir);
        let said = format!("{}{}", support::stdout(&out), stderr(&out));
        assert_eq!(out.status.success(), expect_ok, "{said}");
        said
    };
    let said = reload(false);
    assert!(said.contains("server.tls.key_file"), "{said}");
    let r = get(tls_client(&ca).build().unwrap()).await;
    assert!(contains(&peer_cert(&r), "bitrouter-one"));

    // A new certificate (other CN, other serial): new connections get it.
    let (cert, key) = ca.leaf("bitrouter-two", 2);
    write(dir, "cert.pem", &cert);
    write(dir, "key.pem", &key);
    let said = reload(true);
    assert!(said.contains("TLS certificate"), "{said}");
    let r = get(tls_client(&ca).build().unwrap()).await;
    let served = peer_cert(&r);
    assert!(
        contains(&served, "bitrouter-two"),
        "still the old certificate"
    );
    assert!(!contains(&served, "bitrouter-one"));
}

#[test]
fn a_bad_certificate_path_stops_the_start_with_the_file_named() {
    let mock = MockUpstream::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &mock,
        "  tls: {cert_file: missing.pem, key_file: key.pem}\n  listen: 127.0.0.1:0",
    );
    let path = write(dir.path(), "bitrouter.yaml", &cfg);
    let out = cli(&["serve", "-c", &path], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("bitrouter.yaml:2:")
            && err.contains("missing.pem")
            && err.contains("cannot read"),
        "{err}"
    );
    let out = cli(&["config", "validate", "-c", &path], &[], dir.path());
    assert!(!out.status.success());
    let said = format!("{}{}", support::stdout(&out), stderr(&out));
    assert!(said.contains("missing.pem"), "{said}");

    // Readable PEM markers but a key that does not parse: caught when the listener is built,
    // still no panic.
    let ca = Ca::new();
    let (cert, _) = ca.leaf("bitrouter-one", 1);
    write(dir.path(), "missing.pem", &cert);
    write(
        dir.path(),
        "key.pem",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    let out = cli(&["serve", "-c", &path], &[], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("server.tls.key_file"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let out = cli(&["config", "validate", "-c", &path], &[], dir.path());
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("server.tls.key_file"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_file_is_reopened_on_reload() {
    let mock = MockUpstream::start();
    let router = Router::start(RouterSpec {
        config: Some(&config(
            &mock,
            "  listen: 127.0.0.1:0\n  access_log: {format: json, path: access.log}",
        )),
        keep_listen: true,
        ..Default::default()
    });
    let url = format!("{}/v1/chat/completions", listening(&router, 1)[0]);
    let dir = router.dir.path().to_path_buf();
    let send = |t: String| {
        let url = url.clone();
        async move {
            let r = support::client()
                .post(url)
                .json(&chat("m/gpt-4o", &t, false))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
    };
    let read = |name: &str, n: usize| -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = std::fs::read_to_string(dir.join(name))
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    send(tag("first")).await;
    assert_eq!(read("access.log", 1).len(), 1);
    std::fs::rename(dir.join("access.log"), dir.join("access.log.1")).unwrap();
    router.sighup();
    router.wait_for_log("reloaded configuration");
    send(tag("second")).await;
    let lines = read("access.log", 1);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(read("access.log.1", 1).len(), 1);
    // Access lines are not in the router's own log.
    assert!(!router.logs().contains("\"method\""));
}

/// A free loopback port (a restart keeps the addresses, so port 0 will not do).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Stops the daemon of `config` when the test ends, passed or not.
struct Stop<'a>(&'a Path, &'a str);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        let _ = cli(&["stop", "-c", self.1], &[], self.0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_verbs_show_and_hand_over_every_listener() {
    let mock = MockUpstream::start();
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = ca.leaf("bitrouter-one", 1);
    write(dir.path(), "cert.pem", &cert);
    write(dir.path(), "key.pem", &key);
    let (plain, tls) = (free_port(), free_port());
    let cfg = write(
        dir.path(),
        "bitrouter.yaml",
        &config(
            &mock,
            &format!("  tls: {{cert_file: cert.pem, key_file: key.pem}}\n  listen:\n    - {{address: 127.0.0.1:{plain}, tls: false}}\n    - 127.0.0.1:{tls}"),
        ),
    );
    let _stop = Stop(dir.path(), &cfg);
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["-c", cfg.as_str()]);
        let out = cli(&all, &[], dir.path());
        let said = format!("{}{}", support::stdout(&out), stderr(&out));
        assert!(out.status.success(), "{args:?}: {said}");
        said
    };
    let said = run(&["start"]);
    let (plain_url, tls_url) = (
        format!("http://127.0.0.1:{plain}"),
        format!("https://127.0.0.1:{tls}"),
    );
    assert!(
        said.contains(&format!("listening on {plain_url}, {tls_url}")),
        "{said}"
    );
    let said = run(&["status"]);
    assert!(
        said.contains(&plain_url) && said.contains(&tls_url),
        "{said}"
    );
    let status: Value = serde_json::from_str(run(&["status", "--json"]).trim()).unwrap();
    assert_eq!(status["listen"], format!("127.0.0.1:{plain}"));
    assert_eq!(status["listeners"], json!([plain_url, tls_url]));
    let old_pid = status["pid"].as_u64().unwrap();

    let both = || async {
        let r = support::client()
            .get(format!("{plain_url}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let r = tls_client(&ca)
            .build()
            .unwrap()
            .get(format!("https://localhost:{tls}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    };
    both().await;
    let said = run(&["restart"]);
    assert!(
        said.contains(&format!("took over {plain_url}, {tls_url}")),
        "{said}"
    );
    let status: Value = serde_json::from_str(run(&["status", "--json"]).trim()).unwrap();
    assert_ne!(status["pid"].as_u64().unwrap(), old_pid);
    assert_eq!(status["listeners"], json!([plain_url, tls_url]));
    both().await;
    let log = std::fs::read_to_string(dir.path().join("bitrouter.log")).unwrap();
    assert!(log.contains("took over the listening socket"), "{log}");
    run(&["stop"]);
}
