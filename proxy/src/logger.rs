//! Logging through the `log` crate (Pingora logs through it too), to stdout. `RUST_LOG` overrides
//! `server.log_level`.
//!
//! Why a queue: Pingora's worker threads log every request, and a synchronous write to a stdout
//! whose reader is slow (a full pipe to a stalled supervisor or `| less`) would stall request
//! handling with it. So env_logger formats each record on the calling thread as before (same
//! format) and hands the line to a bounded queue; one writer thread drains it to stdout. When the
//! queue is full the line is dropped and counted, never waited for: the count is reported in the
//! log ("N log lines dropped (log writer too slow)") once the writer catches up, and in
//! `/metrics` as `bitrouter_log_lines_dropped_total`. [`flush`] waits (bounded) for the queue to
//! drain before the process exits.
//!
//! The access log (`server.access_log`) rides the same queue ([`access`]): its lines go to the
//! log output, or to a file of their own ([`set_access_file`]) which the writer thread opens,
//! appends to and reopens on reload like the log file.

use arc_swap::ArcSwap;
use once_cell::sync::Lazy;
use prometheus::IntCounter;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The most lines the queue holds. With [`QUEUE_BYTES`] it bounds the memory a stalled stdout
/// can cost, while absorbing a burst of a few thousand requests when the reader hiccups.
const QUEUE_LINES: usize = 16 * 1024;
/// The most bytes the queue holds (request lines carry client-chosen paths, so a line count
/// alone would not bound memory). The writer's batch, taken from the queue, holds at most as
/// much again: a stalled stdout costs at most 2 MiB.
const QUEUE_BYTES: usize = 1024 * 1024;
/// The writer reports drops at most this often (and wakes this often to report them).
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// Lines written per batch before the writer checks for drops to report.
const BATCH_LINES: usize = 512;

/// Lines accepted into the queue.
static ENQUEUED: AtomicU64 = AtomicU64::new(0);
/// Lines the writer has finished with (written, or failed to write).
static WRITTEN: AtomicU64 = AtomicU64::new(0);
/// Bytes in the queue now.
static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);
/// Drops not yet reported in the log.
static UNREPORTED: AtomicU64 = AtomicU64::new(0);

/// `bitrouter_log_lines_dropped_total`, registered by [`crate::metrics::Metrics`]. `None` only
/// if prometheus rejected the (constant, valid) name.
static DROPPED: Lazy<Option<IntCounter>> = Lazy::new(|| {
    IntCounter::new(
        "bitrouter_log_lines_dropped_total",
        "Log lines dropped because the log writer (stdout) was too slow",
    )
    .ok()
});

/// The dropped-log-lines counter, for the metrics registry.
pub fn dropped_counter() -> Option<IntCounter> {
    (*DROPPED).clone()
}

/// Where log lines go: stdout (foreground `serve`), or a file the daemon writes and reopens on
/// reload (`bitrouter start --log`, rotation-friendly: after `mv bitrouter.log …; bitrouter
/// reload` new lines go to a new file).
static LOG_FILE: Lazy<Mutex<Option<PathBuf>>> = Lazy::new(|| Mutex::new(None));
/// Set by [`reopen`]; the writer thread reopens the file before its next batch.
static REOPEN: AtomicBool = AtomicBool::new(false);
/// `server.access_log.path` (`None`: access lines go with the log lines).
static ACCESS_FILE: Lazy<Mutex<Option<PathBuf>>> = Lazy::new(|| Mutex::new(None));

/// One queued line and where it goes.
struct Line {
    access: bool,
    bytes: Vec<u8>,
}

/// The active filter, replaced on reload (`server.log_level`): `env_logger` fixes its filter
/// when built, so the installed logger delegates to a swappable one.
static CURRENT: Lazy<ArcSwap<env_logger::Logger>> =
    Lazy::new(|| ArcSwap::from_pointee(build(DEFAULT_LEVEL, None)));
const DEFAULT_LEVEL: &str = "info";
/// The queue's sender, shared by every logger built (initial and reloaded).
static QUEUE: Lazy<Mutex<Option<SyncSender<Line>>>> = Lazy::new(|| Mutex::new(None));
/// The queue's sender for access lines (a clone, so sending takes no lock).
static ACCESS_QUEUE: once_cell::sync::OnceCell<SyncSender<Line>> = once_cell::sync::OnceCell::new();

struct Swappable;

impl log::Log for Swappable {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        CURRENT.load().enabled(metadata)
    }
    fn log(&self, record: &log::Record<'_>) {
        CURRENT.load().log(record);
    }
    fn flush(&self) {
        CURRENT.load().flush();
    }
}

/// Builds a logger for `level` (an env_logger filter string), writing to the queue when there
/// is one.
fn build(level: &str, tx: Option<SyncSender<Line>>) -> env_logger::Logger {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(level);
    // Pingora's own INFO lines (one per graceful-shutdown step, per listener) are noise at our
    // default level; an explicit `pingora` directive in the level string still applies.
    if !level.contains("pingora") {
        builder.filter_module("pingora_core", log::LevelFilter::Warn);
        builder.filter_module("pingora_proxy", log::LevelFilter::Warn);
    }
    // rustls warns about what a peer sent, once per TLS connection: "Illegal SNI extension:
    // ignoring IP address presented as hostname" for every client that dials an IP (curl, wrk,
    // OpenSSL), 194 lines in a 3-second benchmark. Nothing an operator can act on; a handshake
    // that fails is still logged by Pingora.
    if !level.contains("rustls") {
        builder.filter_module("rustls", log::LevelFilter::Error);
    }
    if let Ok(env) = std::env::var("RUST_LOG") {
        builder.parse_filters(&env);
    }
    builder.format(|buf, record| {
        writeln!(
            buf,
            "{} {:<5} {}",
            buf.timestamp_millis(),
            record.level(),
            record.args()
        )
    });
    match tx {
        Some(tx) => builder.target(env_logger::Target::Pipe(Box::new(QueueWriter {
            tx,
            pending: Vec::new(),
        }))),
        None => builder.target(env_logger::Target::Stdout),
    };
    builder.build()
}

/// Installs the logger: `level` is `server.log_level` (an env_logger filter such as `info` or
/// `warn,bitrouter_proxy=debug`), `RUST_LOG` overrides it; lines go to stdout, or to `file`
/// when given (appended; see [`reopen`]). Call once, early.
pub fn init(level: &str, file: Option<&Path>) {
    if let Some(path) = file {
        if let Ok(mut slot) = LOG_FILE.lock() {
            *slot = Some(path.to_path_buf());
        }
    }
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let writer = std::thread::Builder::new()
        .name("bitrouter-log".into())
        .spawn(move || drain(rx));
    let tx = writer.ok().map(|_| tx);
    if let Some(tx) = &tx {
        let _ = ACCESS_QUEUE.set(tx.clone());
    }
    if let Ok(mut q) = QUEUE.lock() {
        q.clone_from(&tx);
    }
    let logger = build(level, tx);
    let max = logger.filter();
    CURRENT.store(Arc::new(logger));
    if log::set_logger(&Swappable).is_ok() {
        log::set_max_level(max);
    }
}

/// Applies a new `server.log_level` to every line logged from now on (reload).
pub fn set_level(level: &str) {
    let tx = QUEUE.lock().ok().and_then(|q| q.clone());
    let logger = build(level, tx);
    log::set_max_level(logger.filter());
    CURRENT.store(Arc::new(logger));
}

/// Reopens the log file before the next line (reload): after a rotation moved the file away,
/// lines go to a new file at the configured path. No effect when logging to stdout.
pub fn reopen() {
    REOPEN.store(true, Ordering::Release);
}

/// Sends access-log lines to `path` (appended, reopened by [`reopen`]), or with the log lines
/// when `None` (`server.access_log.path: stdout`). Applies from the writer's next batch.
pub fn set_access_file(path: Option<PathBuf>) {
    if let Ok(mut slot) = ACCESS_FILE.lock() {
        *slot = path;
    }
    REOPEN.store(true, Ordering::Release);
}

/// Queues one access-log line (`line` ends with a newline), never waiting: when the queue is
/// full it is dropped and counted like a log line. Without a writer thread (before [`init`])
/// it is written to stdout directly.
pub fn access(line: Vec<u8>) {
    match ACCESS_QUEUE.get() {
        Some(tx) => enqueue(
            tx,
            Line {
                access: true,
                bytes: line,
            },
        ),
        None => {
            let _ = io::stdout().lock().write_all(&line);
        }
    }
}

/// Hands `line` to the writer unless the queue is over its line or byte bound.
fn enqueue(tx: &SyncSender<Line>, line: Line) {
    let len = line.bytes.len();
    if QUEUED_BYTES.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
        QUEUED_BYTES.fetch_sub(len, Ordering::AcqRel);
        dropped();
        return;
    }
    match tx.try_send(line) {
        Ok(()) => {
            ENQUEUED.fetch_add(1, Ordering::AcqRel);
        }
        Err(_) => {
            QUEUED_BYTES.fetch_sub(len, Ordering::AcqRel);
            dropped();
        }
    }
}

/// The file logs go to, if any.
pub fn file() -> Option<PathBuf> {
    LOG_FILE.lock().ok().and_then(|f| f.clone())
}

/// Waits until every line queued so far has been written, or `limit` has passed (stdout may be
/// blocked for good). Call before `std::process::exit`, which does not wait for the writer.
/// Reports drops not yet reported first, so they are not lost either.
pub fn flush(limit: Duration) {
    report_drops();
    let target = ENQUEUED.load(Ordering::Acquire);
    let deadline = Instant::now() + limit;
    while WRITTEN.load(Ordering::Acquire) < target && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The env_logger target: each record arrives as `write` calls (env_logger does one `write_all`
/// of the formatted record) followed by one `flush`, under env_logger's lock. `flush` hands the
/// record to the queue without waiting.
struct QueueWriter {
    tx: SyncSender<Line>,
    pending: Vec<u8>,
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let bytes = std::mem::take(&mut self.pending);
        enqueue(
            &self.tx,
            Line {
                access: false,
                bytes,
            },
        );
        Ok(())
    }
}

fn dropped() {
    UNREPORTED.fetch_add(1, Ordering::Relaxed);
    if let Some(c) = DROPPED.as_ref() {
        c.inc();
    }
}

/// Logs the drops not yet reported, through the queue like any other line (so it keeps the
/// format and the order; if it is dropped too, it is counted and reported next time).
fn report_drops() {
    let n = UNREPORTED.swap(0, Ordering::Relaxed);
    if n > 0 {
        log::warn!("{n} log lines dropped (log writer too slow)");
    }
}

/// The writer thread: drains the queue to stdout in batches (one write system call per batch),
/// reporting drops at most once per [`REPORT_EVERY`].
fn drain(rx: Receiver<Line>) {
    let stdout = io::stdout();
    let mut file: Option<File> = open_log_file();
    let mut access_file: Option<File> = open_access_file();
    let mut last_report: Option<Instant> = None;
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut access_batch = Vec::new();
    loop {
        let first = match rx.recv_timeout(REPORT_EVERY) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut lines = 0u64;
        let mut bytes = 0usize;
        if let Some(line) = first {
            if REOPEN.swap(false, Ordering::AcqRel) {
                if let Some(reopened) = open_log_file() {
                    file = Some(reopened);
                }
                // A path that cannot be opened sends access lines with the log lines rather
                // than losing them.
                access_file = open_access_file();
            }
            let mut next = Some(line);
            while let Some(line) = next {
                bytes += line.bytes.len();
                lines += 1;
                if line.access && access_file.is_some() {
                    access_batch.extend_from_slice(&line.bytes);
                } else {
                    batch.extend_from_slice(&line.bytes);
                }
                next = if lines < BATCH_LINES as u64 {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            // The bytes leave the queue's budget now: they are the writer's, not the queue's.
            QUEUED_BYTES.fetch_sub(bytes, Ordering::AcqRel);
            // A write error (stdout or the disk gone) loses these lines; there is nowhere to
            // say so.
            match file.as_mut() {
                _ if batch.is_empty() => {}
                Some(f) => {
                    let _ = f.write_all(&batch).and_then(|()| f.flush());
                }
                None => {
                    let mut out = stdout.lock();
                    let _ = out.write_all(&batch).and_then(|()| out.flush());
                }
            }
            if let (Some(f), false) = (access_file.as_mut(), access_batch.is_empty()) {
                let _ = f.write_all(&access_batch).and_then(|()| f.flush());
            }
            batch.clear();
            access_batch.clear();
            if batch.capacity() > 1024 * 1024 {
                batch.shrink_to(64 * 1024);
            }
            if access_batch.capacity() > 1024 * 1024 {
                access_batch.shrink_to(64 * 1024);
            }
            WRITTEN.fetch_add(lines, Ordering::AcqRel);
        }
        let due = last_report.is_none_or(|t| t.elapsed() >= REPORT_EVERY);
        if due && UNREPORTED.load(Ordering::Relaxed) > 0 {
            last_report = Some(Instant::now());
            report_drops();
        }
    }
}

/// Opens the configured log file for appending (created with mode 0600: logs name models,
/// providers and client addresses).
fn open_log_file() -> Option<File> {
    open_append(LOG_FILE.lock().ok().and_then(|f| f.clone())?)
}

/// Opens `server.access_log.path` for appending, if set.
fn open_access_file() -> Option<File> {
    open_append(ACCESS_FILE.lock().ok().and_then(|f| f.clone())?)
}

fn open_append(path: PathBuf) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .ok()
}
