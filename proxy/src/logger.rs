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

use once_cell::sync::Lazy;
use prometheus::IntCounter;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
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

/// Installs the process logger once. Later calls are ignored (tests may start several times).
pub fn init(level: &str) {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(level);
    // Pingora is chatty at info about its own lifecycle; keep it to warnings unless asked.
    if !level.contains("pingora") {
        builder.filter_module("pingora_core", log::LevelFilter::Warn);
        builder.filter_module("pingora_proxy", log::LevelFilter::Warn);
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
    let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
    let writer = std::thread::Builder::new()
        .name("bitrouter-log".into())
        .spawn(move || drain(rx));
    match writer {
        Ok(_) => {
            builder.target(env_logger::Target::Pipe(Box::new(QueueWriter {
                tx,
                pending: Vec::new(),
            })));
        }
        // No thread, no queue: write synchronously rather than log nothing.
        Err(_) => {
            builder.target(env_logger::Target::Stdout);
        }
    }
    // When a logger is already installed the builder (and with it the queue's sender) is
    // dropped, which ends the writer thread.
    let _ = builder.try_init();
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
    tx: SyncSender<Vec<u8>>,
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
        let line = std::mem::take(&mut self.pending);
        let len = line.len();
        if QUEUED_BYTES.fetch_add(len, Ordering::AcqRel) + len > QUEUE_BYTES {
            QUEUED_BYTES.fetch_sub(len, Ordering::AcqRel);
            dropped();
            return Ok(());
        }
        match self.tx.try_send(line) {
            Ok(()) => {
                ENQUEUED.fetch_add(1, Ordering::AcqRel);
            }
            Err(_) => {
                QUEUED_BYTES.fetch_sub(len, Ordering::AcqRel);
                dropped();
            }
        }
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
fn drain(rx: Receiver<Vec<u8>>) {
    let stdout = io::stdout();
    let mut last_report: Option<Instant> = None;
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let first = match rx.recv_timeout(REPORT_EVERY) {
            Ok(line) => Some(line),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut lines = 0u64;
        let mut bytes = 0usize;
        if let Some(line) = first {
            let mut next = Some(line);
            while let Some(line) = next {
                bytes += line.len();
                lines += 1;
                batch.extend_from_slice(&line);
                next = if lines < BATCH_LINES as u64 {
                    rx.try_recv().ok()
                } else {
                    None
                };
            }
            // The bytes leave the queue's budget now: they are the writer's, not the queue's.
            QUEUED_BYTES.fetch_sub(bytes, Ordering::AcqRel);
            let mut out = stdout.lock();
            // A write error (stdout closed) loses these lines; there is nowhere to say so.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            drop(out);
            batch.clear();
            if batch.capacity() > 1024 * 1024 {
                batch.shrink_to(64 * 1024);
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
