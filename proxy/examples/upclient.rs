//! Issue 20's upstream-client comparison (a benchmark tool, not part of the product): the
//! upstream half of a pass-through request alone, done two ways against the same HTTP/1.1
//! upstream, so that instructions per request and requests per second can be set side by side.
//!
//! - `pingora`: what bitrouter does today (`upstream::transport`): a pooled session from
//!   Pingora's HTTP/1 connector, the request header and body in one write, then Pingora's
//!   `read_response_header` (its header parser with the header-case map) and
//!   `read_response_body` (a 64 KiB body buffer per connection), and `release_http_session`.
//! - `lean`: the alternative the issue asks to measure, a hand-written HTTP/1 client on
//!   Pingora's own connection pool (`TransportConnector`: the same connect, TLS, pool and
//!   idle-watch code), with the response head parsed by `httparse` into a 4 KiB buffer and
//!   turned into the same `ResponseHeader` the relays consume, and a Content-Length, chunked or
//!   close-delimited body read in place.
//!
//! Both build the request with `http_req_header_to_wire`, apply a read timeout to every read,
//! retry a stale pooled connection once, and hand each body chunk over as `Bytes`: what differs
//! is only what the issue asks about. `--check` fetches the URL with both and compares status,
//! headers and body byte for byte.
//!
//! ```text
//! upclient lean http://127.0.0.1:18101/v1/chat/completions --body chat.json --requests 2000
//! upclient pingora URL --body chat.json --secs 5 --concurrency 32   # req/s
//! upclient check URL --body chat.json
//! ```
//! Prints one JSON line: client, requests, errors, seconds, req/s, body bytes.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use pingora_core::connectors::http::v1::Connector as H1Connector;
use pingora_core::connectors::{ConnectorOptions, TransportConnector};
use pingora_core::protocols::http::v1::client::{
    http_req_header_to_wire, HttpSession as H1Session,
};
use pingora_core::protocols::Stream;
use pingora_core::upstreams::peer::{HttpPeer, Peer};
use pingora_http::{RequestHeader, ResponseHeader};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Res<T> = Result<T, String>;

const READ_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE: Duration = Duration::from_secs(60);
/// Largest response head the lean client accepts (Pingora's limit is the same order).
const MAX_HEAD: usize = 64 * 1024;
/// What one read of a body of unknown length asks the socket for; a Content-Length body asks
/// for what is left, up to [`MAX_READ`] (Pingora reads up to 64 KiB at once too).
const READ_CHUNK: usize = 16 * 1024;
const MAX_READ: usize = 64 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("upclient: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(run(&args)) {
        eprintln!("upclient: {e}");
        std::process::exit(1);
    }
}

struct Opts {
    url: String,
    body: Bytes,
    requests: u64,
    secs: f64,
    concurrency: usize,
}

fn parse(args: &[String]) -> Res<Opts> {
    let mut o = Opts {
        url: args.first().cloned().ok_or("no URL")?,
        body: Bytes::new(),
        requests: 0,
        secs: 0.0,
        concurrency: 1,
    };
    let mut i = 1;
    while i < args.len() {
        let v = args
            .get(i + 1)
            .ok_or(format!("{} needs a value", args[i]))?;
        match args[i].as_str() {
            "--body" => o.body = std::fs::read(v).map_err(|e| format!("{v}: {e}"))?.into(),
            "--requests" => o.requests = v.parse().map_err(|_| "bad --requests")?,
            "--secs" => o.secs = v.parse().map_err(|_| "bad --secs")?,
            "--concurrency" => o.concurrency = v.parse().map_err(|_| "bad --concurrency")?,
            other => return Err(format!("unknown option {other}")),
        }
        i += 2;
    }
    if o.requests == 0 && o.secs <= 0.0 {
        o.requests = 1000;
    }
    Ok(o)
}

async fn run(args: &[String]) -> Res<()> {
    let usage = "usage: upclient pingora|lean|check URL --body FILE \
                 [--requests N | --secs S] [--concurrency C]";
    let kind = args.first().ok_or(usage)?.clone();
    let o = parse(&args[1..])?;
    let target = Target::new(&o.url, o.body.clone())?;
    let client = Arc::new(Client::new());
    if kind == "check" {
        return check(&client, &target).await;
    }
    let lean = match kind.as_str() {
        "lean" => true,
        "pingora" => false,
        _ => return Err(usage.into()),
    };
    let target = Arc::new(target);
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = (o.secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(o.secs));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..o.concurrency.max(1) {
        let (client, target) = (client.clone(), target.clone());
        let (done, errors, bytes, stop) =
            (done.clone(), errors.clone(), bytes.clone(), stop.clone());
        let limit = o.requests;
        tasks.push(tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if limit > 0 && done.fetch_add(1, Ordering::Relaxed) >= limit {
                    break;
                }
                let r = if lean {
                    client.lean(&target).await
                } else {
                    client.pingora(&target).await
                };
                match r {
                    Ok(n) => {
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("upclient: {e}");
                        }
                    }
                }
                if limit == 0 {
                    done.fetch_add(1, Ordering::Relaxed);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let n = if o.requests > 0 {
        o.requests
    } else {
        done.load(Ordering::Relaxed)
    };
    println!(
        "{{\"client\": \"{kind}\", \"requests\": {n}, \"errors\": {}, \"secs\": {secs:.3}, \
         \"rps\": {:.1}, \"body_bytes\": {}}}",
        errors.load(Ordering::Relaxed),
        n as f64 / secs,
        bytes.load(Ordering::Relaxed)
    );
    Ok(())
}

/// The request every call sends, and the peer it goes to.
struct Target {
    peer: HttpPeer,
    header: RequestHeader,
    body: Bytes,
}

impl Target {
    fn new(url: &str, body: Bytes) -> Res<Target> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("only http:// URLs (the comparison is about HTTP/1 parsing)")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let addr: std::net::SocketAddr = authority
            .parse()
            .map_err(|_| format!("{authority}: want ip:port"))?;
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.read_timeout = Some(READ_TIMEOUT);
        let method = if body.is_empty() { "GET" } else { "POST" };
        let mut header =
            RequestHeader::build(method, path.as_bytes(), None).map_err(|e| e.to_string())?;
        let set = |h: &mut RequestHeader, k: &'static str, v: String| {
            h.insert_header(k, v).map_err(|e| e.to_string())
        };
        set(&mut header, "host", authority.to_string())?;
        set(&mut header, "content-type", "application/json".into())?;
        set(&mut header, "content-length", body.len().to_string())?;
        Ok(Target { peer, header, body })
    }

    /// The request as bytes on the wire: header and body in one buffer (one write).
    fn wire(&self) -> Res<BytesMut> {
        let head = http_req_header_to_wire(&self.header).ok_or("request header not writable")?;
        let mut buf = BytesMut::with_capacity(head.len() + self.body.len());
        buf.extend_from_slice(&head);
        buf.extend_from_slice(&self.body);
        Ok(buf)
    }
}

struct Client {
    h1: H1Connector,
    transport: TransportConnector,
}

impl Client {
    fn new() -> Client {
        // bitrouter's UpstreamClient settings.
        let mut options = ConnectorOptions::new(256);
        options.keepalive_pool_size = 256;
        Client {
            h1: H1Connector::new(Some(options.clone())),
            transport: TransportConnector::new(Some(options)),
        }
    }

    async fn pingora(&self, t: &Target) -> Res<usize> {
        let mut n = 0;
        self.pingora_answer(t, |b| n += b.len()).await?;
        Ok(n)
    }

    /// bitrouter's path today (`transport::send`, `UpstreamBody`, `UpstreamClient::release`).
    async fn pingora_answer(&self, t: &Target, mut each: impl FnMut(Bytes)) -> Res<ResponseHeader> {
        let mut tries = 0;
        loop {
            let (h1, reused) = match self.h1.reused_http_session(&t.peer).await {
                Some(s) => (s, true),
                None => {
                    let (s, _) = self
                        .h1
                        .get_http_session(&t.peer)
                        .await
                        .map_err(|e| e.to_string())?;
                    (s, false)
                }
            };
            let wire = t.wire()?;
            let mut stream = h1.into_inner();
            let sent = async {
                stream.write_all(&wire).await?;
                stream.flush().await
            }
            .await;
            let mut up = H1Session::new_with_options(stream, &t.peer);
            up.read_timeout = t.peer.options.read_timeout;
            let head = match sent {
                Ok(()) => up
                    .read_response()
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = head {
                if reused && tries == 0 {
                    tries += 1;
                    continue;
                }
                return Err(e);
            }
            let header = up.resp_header().ok_or("no response header")?.clone();
            while let Some(b) = up.read_body_bytes().await.map_err(|e| e.to_string())? {
                each(b);
            }
            self.h1.release_http_session(up, &t.peer, Some(IDLE)).await;
            return Ok(header);
        }
    }

    async fn lean(&self, t: &Target) -> Res<usize> {
        let mut n = 0;
        self.lean_answer(t, |b| n += b.len()).await?;
        Ok(n)
    }

    /// The lean client: Pingora's pool, our own HTTP/1 response parsing.
    async fn lean_answer(&self, t: &Target, mut each: impl FnMut(Bytes)) -> Res<ResponseHeader> {
        let mut tries = 0;
        loop {
            let (mut stream, reused) = match self.transport.reused_stream(&t.peer).await {
                Some(s) => (s, true),
                None => (
                    self.transport
                        .new_stream(&t.peer)
                        .await
                        .map_err(|e| e.to_string())?,
                    false,
                ),
            };
            let wire = t.wire()?;
            let sent = async {
                stream.write_all(&wire).await?;
                stream.flush().await
            }
            .await;
            let mut buf = BytesMut::with_capacity(4096);
            let head = match sent {
                Ok(()) => read_head(&mut stream, &mut buf).await,
                Err(e) => Err(e.to_string()),
            };
            let head = match head {
                Ok(h) => h,
                Err(e) if reused && tries == 0 => {
                    tries += 1;
                    let _ = e;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let reusable = read_body(&mut stream, &mut buf, &head, &mut each).await?;
            if reusable {
                self.transport
                    .release_stream(stream, t.peer.reuse_hash(), Some(IDLE));
            }
            return Ok(head.header);
        }
    }
}

/// A parsed response head and how its body is framed.
struct Head {
    header: ResponseHeader,
    framing: Framing,
    keep_alive: bool,
}

enum Framing {
    Length(u64),
    Chunked,
    Close,
}

async fn read_more(stream: &mut Stream, buf: &mut BytesMut) -> Res<usize> {
    read_up_to(stream, buf, READ_CHUNK).await
}

/// One read of at most `want` more bytes into `buf` (0: the peer closed).
async fn read_up_to(stream: &mut Stream, buf: &mut BytesMut, want: usize) -> Res<usize> {
    if buf.capacity() - buf.len() < want.min(1024) {
        buf.reserve(want);
    }
    match tokio::time::timeout(READ_TIMEOUT, stream.read_buf(buf)).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("read timed out".into()),
    }
}

/// Reads until a whole response head is in `buf` (skipping 1xx heads), removes it from `buf`.
async fn read_head(stream: &mut Stream, buf: &mut BytesMut) -> Res<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let code = resp.code.unwrap_or(0);
                if (100..200).contains(&code) && code != 101 {
                    let _ = buf.split_to(len);
                    continue;
                }
                let mut header = ResponseHeader::build_no_case(code, Some(resp.headers.len()))
                    .map_err(|e| e.to_string())?;
                let mut framing = Framing::Close;
                let mut keep_alive = resp.version == Some(1);
                for h in resp.headers.iter() {
                    let name = h.name;
                    if name.eq_ignore_ascii_case("content-length") {
                        let n = std::str::from_utf8(h.value)
                            .ok()
                            .and_then(|v| v.trim().parse().ok())
                            .ok_or("bad content-length")?;
                        if !matches!(framing, Framing::Chunked) {
                            framing = Framing::Length(n);
                        }
                    } else if name.eq_ignore_ascii_case("transfer-encoding") {
                        let last = h.value.rsplit(|b| *b == b',').next().unwrap_or(b"");
                        if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                            framing = Framing::Chunked;
                        } else {
                            framing = Framing::Close;
                            keep_alive = false;
                        }
                    } else if name.eq_ignore_ascii_case("connection") {
                        for token in h.value.split(|b| *b == b',') {
                            let token = token.trim_ascii();
                            if token.eq_ignore_ascii_case(b"close") {
                                keep_alive = false;
                            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                                keep_alive = true;
                            }
                        }
                    }
                    header
                        .append_header(name.to_string(), h.value)
                        .map_err(|e| e.to_string())?;
                }
                if code == 204 || code == 304 {
                    framing = Framing::Length(0);
                }
                if matches!(framing, Framing::Close) {
                    keep_alive = false;
                }
                let _ = buf.split_to(len);
                return Ok(Head {
                    header,
                    framing,
                    keep_alive,
                });
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() > MAX_HEAD {
                    return Err("response head too large".into());
                }
            }
            Err(e) => return Err(format!("bad response head: {e}")),
        }
        if read_more(stream, buf).await? == 0 {
            return Err("connection closed before the response head".into());
        }
    }
}

/// Reads the body as `head` frames it, handing each piece to `each`. `true` when the
/// connection can go back to the pool (whole body read, nothing read past it, keep-alive).
async fn read_body(
    stream: &mut Stream,
    buf: &mut BytesMut,
    head: &Head,
    each: &mut impl FnMut(Bytes),
) -> Res<bool> {
    match head.framing {
        Framing::Length(mut left) => {
            while left > 0 {
                let want = (left as usize).min(MAX_READ);
                if buf.is_empty() && read_up_to(stream, buf, want).await? == 0 {
                    return Err("connection closed inside the body".into());
                }
                let take = (buf.len() as u64).min(left) as usize;
                left -= take as u64;
                each(buf.split_to(take).freeze());
            }
            Ok(head.keep_alive && buf.is_empty())
        }
        Framing::Close => {
            if !buf.is_empty() {
                each(buf.split().freeze());
            }
            while read_more(stream, buf).await? > 0 {
                each(buf.split().freeze());
            }
            Ok(false)
        }
        Framing::Chunked => {
            loop {
                let size = loop {
                    if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                        let line = buf.split_to(at + 2);
                        let hex = line[..at].split(|b| *b == b';').next().unwrap_or(b"");
                        let hex = std::str::from_utf8(hex).map_err(|_| "bad chunk size")?;
                        break u64::from_str_radix(hex.trim(), 16).map_err(|_| "bad chunk size")?;
                    }
                    if buf.len() > 1024 {
                        return Err("chunk size line too long".into());
                    }
                    if read_more(stream, buf).await? == 0 {
                        return Err("connection closed inside the body".into());
                    }
                };
                if size == 0 {
                    // Trailers, if any, end with an empty line.
                    loop {
                        if let Some(at) = buf.windows(2).position(|w| w == b"\r\n") {
                            let line = buf.split_to(at + 2);
                            if at == 0 {
                                return Ok(head.keep_alive && buf.is_empty());
                            }
                            let _ = line;
                            continue;
                        }
                        if buf.len() > MAX_HEAD {
                            return Err("trailers too large".into());
                        }
                        if read_more(stream, buf).await? == 0 {
                            return Err("connection closed inside the trailers".into());
                        }
                    }
                }
                let mut left = size;
                while left > 0 {
                    if buf.is_empty() && read_more(stream, buf).await? == 0 {
                        return Err("connection closed inside a chunk".into());
                    }
                    let take = (buf.len() as u64).min(left) as usize;
                    left -= take as u64;
                    each(buf.split_to(take).freeze());
                }
                while buf.len() < 2 {
                    if read_more(stream, buf).await? == 0 {
                        return Err("connection closed inside a chunk".into());
                    }
                }
                if &buf[..2] != b"\r\n" {
                    return Err("chunk not followed by CRLF".into());
                }
                let _ = buf.split_to(2);
            }
        }
    }
}

/// Both clients against the same URL: same status, same headers, same body.
async fn check(client: &Client, t: &Target) -> Res<()> {
    for round in 0..3 {
        let mut pingora_body = Vec::new();
        let ph = client
            .pingora_answer(t, |b| pingora_body.extend_from_slice(&b))
            .await?;
        let mut lean_body = Vec::new();
        let lh = client
            .lean_answer(t, |b| lean_body.extend_from_slice(&b))
            .await?;
        if ph.status != lh.status {
            return Err(format!("status {} vs {}", ph.status, lh.status));
        }
        for (k, v) in ph.headers.iter() {
            if k == "date" {
                continue;
            }
            if lh.headers.get(k) != Some(v) {
                return Err(format!("header {k}: {v:?} vs {:?}", lh.headers.get(k)));
            }
        }
        if pingora_body != lean_body {
            return Err(format!(
                "bodies differ ({} vs {} bytes)",
                pingora_body.len(),
                lean_body.len()
            ));
        }
        println!(
            "round {round}: status {}, {} headers, {} body bytes: same",
            lh.status,
            lh.headers.len(),
            lean_body.len()
        );
    }
    Ok(())
}
