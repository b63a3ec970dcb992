//! Open-stream load for the benchmark (not part of the product): what an edge gateway in front
//! of many agents really holds, thousands of slow SSE streams open at once.
//!
//! `upstream` is a paced OpenAI-compatible SSE server: every POST gets a chunked
//! `text/event-stream` of `--events` chat-completion chunks, one every `--interval-ms`, each
//! carrying the wall-clock microsecond it was written in its `content` (anything else gets a
//! 404 at once, for readiness probes). `client` opens
//! `--streams` connections (spread over `--ramp-ms`), sends one streamed chat request on each,
//! reads every event and records how late it arrived (receive time − the time in it: the proxy's
//! added delay plus the loopback's, which a direct run measures alone). With `--pid` it samples
//! the server's resident memory every 100 ms: before the load, the peak while every stream is
//! open, and `--after-secs` after the last stream ended and the client closed its connections
//! (does the allocator give it back?); over h2c also `--after-secs` after the last stream ended
//! with the idle connections still open (what the proxy holds per idle client connection).
//!
//! ```text
//! streamload upstream 127.0.0.1:18200 --events 20 --interval-ms 300
//! streamload client http://127.0.0.1:4356/v1/chat/completions --body stream.json \
//!     --streams 1000 --ramp-ms 1000 --pid $(pidof bitrouter) --after-secs 10 --out open.json
//! ```
//! `--h2c-conns K` sends the streams over K HTTP/2 connections (prior knowledge) instead of one
//! HTTP/1.1 connection each: 10,000 streams through a proxy need 20,000 descriptors over
//! HTTP/1.1, this machine's hard per-process limit (and the most an unprivileged `ulimit` gets).
//! Both sides run on one thread (the benchmark pins them to the load core). The file-descriptor
//! limit is the caller's: `ulimit -n` before 10,000 streams.
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type Res<T> = Result<T, String>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("streamload: {e}");
            std::process::exit(1);
        }
    };
    let out = match args.first().map(String::as_str) {
        Some("upstream") => rt.block_on(upstream(&args[1..])),
        Some("client") => rt.block_on(client(&args[1..])),
        _ => Err(
            "usage: streamload upstream ADDR [--events N] [--interval-ms MS] | \
                  client URL --body FILE [--streams N] [--ramp-ms MS] [--pid PID]... \
                  [--after-secs S] [--out FILE] [--header 'K: V']... [--h2c-conns K]"
                .into(),
        ),
    };
    if let Err(e) = out {
        eprintln!("streamload: {e}");
        std::process::exit(1);
    }
}

/// `--name value` options after the positional argument; repeated names keep every value.
fn options(args: &[String]) -> Res<(String, HashMap<String, Vec<String>>)> {
    let mut it = args.iter();
    let pos = it.next().ok_or("missing address")?.clone();
    let mut opts: HashMap<String, Vec<String>> = HashMap::new();
    while let Some(k) = it.next() {
        let name = k.strip_prefix("--").ok_or(format!("unexpected {k}"))?;
        let v = it.next().ok_or(format!("{k} needs a value"))?;
        opts.entry(name.to_string()).or_default().push(v.clone());
    }
    Ok((pos, opts))
}

fn num(opts: &HashMap<String, Vec<String>>, name: &str, default: u64) -> Res<u64> {
    match opts.get(name).and_then(|v| v.last()) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("--{name}: not a number: {v}")),
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

// ---------------------------------------------------------------- upstream

async fn upstream(args: &[String]) -> Res<()> {
    let (addr, opts) = options(args)?;
    let events = num(&opts, "events", 20)?;
    let interval = Duration::from_millis(num(&opts, "interval-ms", 300)?);
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|e| format!("{addr}: {e}"))?;
    loop {
        let (sock, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of descriptors under a burst: wait for streams to end.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let _ = serve_conn(sock, events, interval).await;
        });
    }
}

/// One keep-alive connection: read a request (head + `content-length` body), answer it with the
/// paced stream, repeat.
async fn serve_conn(mut sock: TcpStream, events: u64, interval: Duration) -> Res<()> {
    let mut buf = Vec::with_capacity(2048);
    loop {
        let head_end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            if read_more(&mut sock, &mut buf).await? == 0 {
                return Ok(());
            }
        };
        let len = header(&buf[..head_end], "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            if read_more(&mut sock, &mut buf).await? == 0 {
                return Ok(());
            }
        }
        let post = buf.starts_with(b"POST ");
        buf.drain(..head_end + len);
        if !post {
            // Readiness probes (`GET /`) get an answer at once.
            sock.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await
                .map_err(|e| e.to_string())?;
            continue;
        }
        sock.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
              cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        for i in 0..events {
            tick.tick().await;
            let finish = if i + 1 == events { r#""stop""# } else { "null" };
            let ev = format!(
                "data: {{\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\
                 \"created\":1,\"model\":\"load\",\"choices\":[{{\"index\":0,\"delta\":\
                 {{\"content\":\"t{} \"}},\"finish_reason\":{finish}}}]}}\n\n",
                now_us()
            );
            let mut chunk = format!("{:x}\r\n{ev}\r\n", ev.len());
            if i + 1 == events {
                let usage = "data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\
                             \"created\":1,\"model\":\"load\",\"choices\":[],\"usage\":\
                             {\"prompt_tokens\":10,\"completion_tokens\":20,\"total_tokens\":30}}\
                             \n\ndata: [DONE]\n\n";
                chunk.push_str(&format!("{:x}\r\n{usage}\r\n0\r\n\r\n", usage.len()));
            }
            sock.write_all(chunk.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

async fn read_more(sock: &mut TcpStream, buf: &mut Vec<u8>) -> Res<usize> {
    let mut chunk = [0u8; 4096];
    let n = sock.read(&mut chunk).await.map_err(|e| e.to_string())?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn header(head: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(head);
    text.split("\r\n").find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

// ---------------------------------------------------------------- client

#[derive(Default)]
struct Totals {
    ok: usize,
    errors: Vec<String>,
    events: usize,
    /// Each event: when the upstream wrote it (µs since the epoch) and how many microseconds
    /// later it arrived.
    late_us: Vec<(u64, u64)>,
}

async fn client(args: &[String]) -> Res<()> {
    let (url, opts) = options(args)?;
    let rest = url.strip_prefix("http://").ok_or("only http:// URLs")?;
    let (authority, path) = rest
        .split_once('/')
        .map(|(a, p)| (a.to_string(), format!("/{p}")))
        .unwrap_or((rest.to_string(), "/".into()));
    let body_file = opts
        .get("body")
        .and_then(|v| v.last())
        .ok_or("--body FILE is required")?;
    let body = std::fs::read(body_file).map_err(|e| format!("{body_file}: {e}"))?;
    let streams = num(&opts, "streams", 1000)? as usize;
    let ramp = Duration::from_millis(num(&opts, "ramp-ms", 1000)?);
    let after = Duration::from_secs(num(&opts, "after-secs", 10)?);
    let pids: Vec<u32> = opts
        .get("pid")
        .map(|v| v.iter().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
         accept: text/event-stream\r\ncontent-length: {}\r\n",
        body.len()
    );
    for h in opts.get("header").into_iter().flatten() {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(&body);
    let request: Arc<[u8]> = request.into();

    // Idle: before any connection (the h2c connections are part of what the load costs).
    let idle_kb = rss_kb(&pids);
    // The report's path; the smaps snapshots go beside it.
    let out = opts.get("out").and_then(|v| v.last()).cloned();
    let out_dir = out
        .as_deref()
        .and_then(|o| std::path::Path::new(o).parent().map(|d| d.to_path_buf()));
    keep_smaps(&pids, out_dir.as_deref(), "idle");
    let h2c = num(&opts, "h2c-conns", 0)? as usize;
    let (h2_conns, h2_tasks) = if h2c > 0 {
        h2_connections(&authority, h2c).await?
    } else {
        (Vec::new(), Vec::new())
    };
    let path: Arc<str> = path.into();
    let h2_body = bytes::Bytes::from(body.clone());

    let open = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let totals = Arc::new(Mutex::new(Totals::default()));
    let started = Instant::now();
    // Events the upstream wrote after this were sent with every stream open (the ramp over).
    let ramp_end_us = now_us() + ramp.as_micros() as u64;
    let sampler = tokio::spawn(sample(pids.clone(), open.clone(), done.clone(), streams));
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let at = ramp.mul_f64(i as f64 / streams.max(1) as f64);
        let (authority, request) = (authority.clone(), request.clone());
        let (open, done, totals) = (open.clone(), done.clone(), totals.clone());
        let h2 = h2_conns.get(i % h2c.max(1)).cloned();
        let (path, h2_body) = (path.clone(), h2_body.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until((started + at).into()).await;
            let mut late = Vec::with_capacity(32);
            let res = match h2 {
                Some(conn) => {
                    one_h2_stream(conn, &authority, &path, h2_body, &open, &mut late).await
                }
                None => one_stream(&authority, &request, &open, &mut late).await,
            };
            let mut t = lock(&totals);
            t.events += late.len();
            t.late_us.extend(late);
            match res {
                Ok(()) => t.ok += 1,
                Err(e) => t.errors.push(e),
            }
            drop(t);
            done.fetch_add(1, Ordering::Relaxed);
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let elapsed = started.elapsed();
    let (peak_kb, all_open_kb, max_open) = sampler.await.map_err(|e| e.to_string())?;
    // HTTP/1.1 streams closed their connections as they ended. The h2c connections are still
    // open: what the proxy holds for idle client connections is sampled first, then they are
    // closed (the load is over) and `after` is sampled `--after-secs` later.
    let after_conns_open_kb = if h2_tasks.is_empty() {
        None
    } else {
        tokio::time::sleep(after).await;
        let kb = rss_kb(&pids);
        drop(h2_conns);
        for t in &h2_tasks {
            t.abort();
        }
        Some(kb)
    };
    tokio::time::sleep(after).await;
    let after_kb = rss_kb(&pids);
    keep_smaps(&pids, out_dir.as_deref(), "after");

    let t = std::mem::take(&mut *lock(&totals));
    // The whole run, and its two phases: while streams were still being opened (the proxy also
    // sets up new streams then), and once all were open.
    let mut all: Vec<u64> = t.late_us.iter().map(|&(_, l)| l).collect();
    let mut opening: Vec<u64> = t
        .late_us
        .iter()
        .filter(|&&(s, _)| s < ramp_end_us)
        .map(|&(_, l)| l)
        .collect();
    let mut steady: Vec<u64> = t
        .late_us
        .iter()
        .filter(|&&(s, _)| s >= ramp_end_us)
        .map(|&(_, l)| l)
        .collect();
    let late_json = |v: &mut Vec<u64>| -> String {
        v.sort_unstable();
        format!(
            "{{\"n\":{},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}}",
            v.len(),
            percentile(v, 0.5),
            percentile(v, 0.9),
            percentile(v, 0.99),
            percentile(v, 0.999),
            v.last().copied().unwrap_or(0)
        )
    };
    // p99 lateness per second of the run (by when the upstream wrote the event), to see *when*
    // events are late: the ramp, the steady state, or the streams' ends.
    let first = t.late_us.iter().map(|&(s, _)| s).min().unwrap_or(0);
    let mut by_sec: Vec<Vec<u64>> = Vec::new();
    for &(s, l) in &t.late_us {
        let i = ((s - first) / 1_000_000) as usize;
        if by_sec.len() <= i {
            by_sec.resize_with(i + 1, Vec::new);
        }
        by_sec[i].push(l);
    }
    let series: Vec<String> = by_sec
        .iter_mut()
        .map(|v| {
            v.sort_unstable();
            percentile(v, 0.99).to_string()
        })
        .collect();
    let mut errors: HashMap<String, usize> = HashMap::new();
    for e in &t.errors {
        *errors.entry(e.clone()).or_default() += 1;
    }
    let errors_json: Vec<String> = errors
        .iter()
        .map(|(e, n)| format!("{{\"error\":{},\"count\":{n}}}", json_str(e)))
        .collect();
    let json = format!(
        "{{\"streams\":{streams},\"ok\":{},\"failed\":{},\"errors\":[{}],\"events\":{},\
         \"seconds\":{:.3},\"max_open\":{max_open},\
         \"late_us\":{},\"late_opening_us\":{},\"late_all_open_us\":{},\"late_p99_by_second_us\":[{}],\
         \"rss_kb\":{{\"idle\":{idle_kb},\"peak\":{peak_kb},\"all_open\":{all_open_kb},\
         \"after\":{after_kb},\"after_conns_open\":{},\"after_secs\":{}}}}}",
        t.ok,
        t.errors.len(),
        errors_json.join(","),
        t.events,
        elapsed.as_secs_f64(),
        late_json(&mut all),
        late_json(&mut opening),
        late_json(&mut steady),
        series.join(","),
        after_conns_open_kb.map_or("null".to_string(), |kb| kb.to_string()),
        after.as_secs()
    );
    match &out {
        Some(path) => std::fs::write(path, &json).map_err(|e| format!("{path}: {e}"))?,
        None => println!("{json}"),
    }
    if t.errors.is_empty() {
        Ok(())
    } else {
        Err(format!("{} of {streams} streams failed", t.errors.len()))
    }
}

/// The `p` quantile of sorted `v` (nearest rank; 0 when empty).
fn percentile(v: &[u64], p: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn lock<T: Default>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One connection, one streamed request: parse the chunked SSE answer and note each event's
/// lateness. Counts itself in `open` from its first event to its last.
async fn one_stream(
    authority: &str,
    request: &[u8],
    open: &AtomicUsize,
    late: &mut Vec<(u64, u64)>,
) -> Res<()> {
    let mut sock = TcpStream::connect(authority)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = sock.set_nodelay(true);
    sock.write_all(request)
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(4096);
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if read_more(&mut sock, &mut buf)
            .await
            .map_err(|e| format!("read head: {e}"))?
            == 0
        {
            return Err("closed before the response head".into());
        }
    };
    let status = buf
        .get(9..12)
        .map(|s| String::from_utf8_lossy(s).to_string());
    if status.as_deref() != Some("200") {
        return Err(format!("status {}", status.unwrap_or_default()));
    }
    let chunked = header(&buf[..head_end], "transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    buf.drain(..head_end);
    let mut events = Events::new(open, late);
    let mut payload = Vec::new();
    let mut finished = false;
    let res = loop {
        // Move whole chunks (or everything, without chunking) into `payload`.
        if chunked {
            while let Some(eol) = find(&buf, b"\r\n") {
                let size = std::str::from_utf8(&buf[..eol])
                    .ok()
                    .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                    .ok_or("bad chunk size")?;
                if size == 0 {
                    finished = true;
                    break;
                }
                if buf.len() < eol + 2 + size + 2 {
                    break;
                }
                payload.extend_from_slice(&buf[eol + 2..eol + 2 + size]);
                buf.drain(..eol + 2 + size + 2);
            }
        } else {
            payload.append(&mut buf);
        }
        finished |= events.scan(&mut payload);
        if finished {
            break Ok(());
        }
        match read_more(&mut sock, &mut buf).await {
            Ok(0) => break Err("closed mid-stream".to_string()),
            Ok(_) => {}
            Err(e) => break Err(format!("read: {e}")),
        }
    };
    events.close();
    res
}

/// The SSE events of one stream as they arrive: each one's lateness, and the stream counted in
/// `open` from its first event until [`Events::close`].
struct Events<'a> {
    open: &'a AtomicUsize,
    late: &'a mut Vec<(u64, u64)>,
    counted: bool,
}

impl<'a> Events<'a> {
    fn new(open: &'a AtomicUsize, late: &'a mut Vec<(u64, u64)>) -> Self {
        Events {
            open,
            late,
            counted: false,
        }
    }

    /// Consumes the whole events at the front of `payload`; `true` once `[DONE]` was seen.
    fn scan(&mut self, payload: &mut Vec<u8>) -> bool {
        let mut done = false;
        while let Some(end) = find(payload, b"\n\n") {
            let now = now_us();
            let ev: Vec<u8> = payload.drain(..end + 2).collect();
            if ev.starts_with(b"data: [DONE]") {
                done = true;
            } else if let Some(i) = find(&ev, b"\"content\":\"t") {
                let digits: String = ev[i + 12..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .map(|&b| b as char)
                    .collect();
                if let Ok(sent) = digits.parse::<u64>() {
                    self.late.push((sent, now.saturating_sub(sent)));
                    if !self.counted {
                        self.counted = true;
                        self.open.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        done
    }

    fn close(&mut self) {
        if std::mem::take(&mut self.counted) {
            self.open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// One stream on a shared h2c connection (prior knowledge): the same request and reading as
/// [`one_stream`], for loads with more streams than descriptors.
async fn one_h2_stream(
    conn: h2::client::SendRequest<bytes::Bytes>,
    authority: &str,
    path: &str,
    body: bytes::Bytes,
    open: &AtomicUsize,
    late: &mut Vec<(u64, u64)>,
) -> Res<()> {
    let mut conn = conn.ready().await.map_err(|e| format!("h2 ready: {e}"))?;
    let req = http::Request::post(format!("http://{authority}{path}"))
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(())
        .map_err(|e| e.to_string())?;
    let (resp, mut send) = conn
        .send_request(req, false)
        .map_err(|e| format!("h2 send: {e}"))?;
    send.send_data(body, true)
        .map_err(|e| format!("h2 body: {e}"))?;
    let resp = resp.await.map_err(|e| format!("h2 response: {e}"))?;
    if resp.status() != 200 {
        return Err(format!("status {}", resp.status().as_u16()));
    }
    let mut body = resp.into_body();
    let mut events = Events::new(open, late);
    let mut payload = Vec::new();
    let res = loop {
        match body.data().await {
            Some(Ok(chunk)) => {
                let _ = body.flow_control().release_capacity(chunk.len());
                payload.extend_from_slice(&chunk);
                if events.scan(&mut payload) {
                    break Ok(());
                }
            }
            Some(Err(e)) => break Err(format!("h2 read: {e}")),
            None => break Err("h2 stream ended before [DONE]".to_string()),
        }
    };
    events.close();
    res
}

/// The h2c connections' request handles and the tasks that drive them.
type H2Conns = (
    Vec<h2::client::SendRequest<bytes::Bytes>>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// `count` h2c connections (prior knowledge) to `authority`, each driven by its own task
/// (aborting the task closes the connection).
async fn h2_connections(authority: &str, count: usize) -> Res<H2Conns> {
    let mut conns = Vec::with_capacity(count);
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let sock = TcpStream::connect(authority)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = sock.set_nodelay(true);
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(1 << 20)
            .handshake(sock)
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
        tasks.push(tokio::spawn(async move {
            let _ = conn.await;
        }));
        conns.push(send);
    }
    Ok((conns, tasks))
}

/// Resident memory of the processes, every 100 ms until every stream ended: (peak, peak while
/// every stream was open, the most streams open at once).
async fn sample(
    pids: Vec<u32>,
    open: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    streams: usize,
) -> (u64, u64, usize) {
    let (mut peak, mut all_open, mut max_open) = (0, 0, 0);
    while done.load(Ordering::Relaxed) < streams {
        let now_open = open.load(Ordering::Relaxed);
        let kb = rss_kb(&pids);
        peak = peak.max(kb);
        max_open = max_open.max(now_open);
        if now_open == streams {
            all_open = all_open.max(kb);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (peak, all_open, max_open)
}

/// Copies each process's `/proc/PID/smaps` beside the report (`smaps_TAG.PID.txt`), so what
/// is resident can be split by mapping afterwards (glibc's heap, mimalloc's arenas, stacks),
/// and lists its threads (`threads_TAG.PID.txt`).
fn keep_smaps(pids: &[u32], dir: Option<&std::path::Path>, tag: &str) {
    let Some(dir) = dir else { return };
    for p in pids {
        if let Ok(s) = std::fs::read(format!("/proc/{p}/smaps")) {
            let _ = std::fs::write(dir.join(format!("smaps_{tag}.{p}.txt")), s);
        }
        // And its threads, by name (a thread that exited leaves its allocator pages behind).
        let names: Vec<String> = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .map(|n| n.trim().to_string())
            .collect();
        let _ = std::fs::write(
            dir.join(format!("threads_{tag}.{p}.txt")),
            names.join("\n") + "\n",
        );
    }
}

/// VmRSS of the processes, in KiB (0 when none is given or readable).
fn rss_kb(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
