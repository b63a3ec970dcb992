//! The batch writer: a bounded queue the request path fills without waiting, and one thread
//! that drains it into the database.
//!
//! A std thread rather than a tokio task: SQLite calls block, and so does the synchronous
//! PostgreSQL client, so neither may run on the router's runtime threads; one thread that owns
//! the connection needs no pool and no locking.

use super::{LedgerError, LedgerRow, LedgerUrl, Store};
use bitrouter_config::schema::DatabaseSection;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Rows held while the database is slow or down, by default. At a few hundred bytes a row, the
/// full queue is a few tens of MB: minutes of traffic at hundreds of requests per second.
pub const DEFAULT_QUEUE_CAPACITY: usize = 65_536;

/// Rows written per transaction at most.
const DEFAULT_BATCH_ROWS: usize = 1024;
/// How long the writer waits for more rows after the first of a batch (rows land at most this
/// much later; nothing on the request path waits for it).
const LINGER: Duration = Duration::from_millis(50);

/// How long the writer waits without rows before it gives back what its connection holds
/// ([`Store::release_memory`]): long enough that steady traffic, or a benchmark's pause between
/// two runs, never pays for preparing the statements again.
const RELEASE_AFTER: Duration = Duration::from_secs(5);

/// How often the writer reports dropped rows (and at most how often it repeats a database
/// error while retrying).
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// Retry backoff after a failed write or connection: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Tunables of the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerOptions {
    /// Rows the queue holds before new ones are dropped (and counted).
    pub queue_capacity: usize,
    /// Rows written per transaction at most.
    pub batch_rows: usize,
}

impl Default for LedgerOptions {
    fn default() -> Self {
        LedgerOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

impl LedgerOptions {
    /// The options `database:` sets (`queue_capacity`), defaults for the rest.
    pub fn from_config(section: &DatabaseSection) -> LedgerOptions {
        LedgerOptions {
            queue_capacity: section
                .queue_capacity
                .map_or(DEFAULT_QUEUE_CAPACITY, |n| n.get()),
            ..LedgerOptions::default()
        }
    }
}

/// Counters shared by the handles and the writer.
#[derive(Debug, Default)]
struct Stats {
    /// Rows put on the queue.
    accepted: AtomicU64,
    /// Rows committed to the database.
    written: AtomicU64,
    /// Rows refused because the queue was full.
    dropped: AtomicU64,
    /// Every handle is gone: the writer stops retrying once what it holds cannot be written.
    closed: AtomicBool,
    /// Rows in the channel (sent, not yet received by the writer): the queue's bound.
    in_queue: AtomicUsize,
}

#[derive(Debug)]
struct Inner {
    /// An unbounded channel whose length `Stats::in_queue` bounds: a `sync_channel` allocates
    /// its whole capacity up front (65,536 rows of ~350 bytes: 23 MB, resident once the ring
    /// has gone round, measured with heaptrack), this one only what is queued.
    tx: Sender<LedgerRow>,
    capacity: usize,
    stats: Arc<Stats>,
    url: LedgerUrl,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stats.closed.store(true, Ordering::Relaxed);
    }
}

/// The ledger's writing handle. Cheap to clone (an `Arc`); every clone feeds the same queue and
/// writer. When the last clone is dropped the writer finishes the queue and stops.
#[derive(Debug, Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl Ledger {
    /// Opens the database at `url` (creating a SQLite file and its folder), runs the migrations,
    /// and starts the writer. Fails when the database cannot be opened now: use
    /// [`LedgerError::is_config`] to tell a configuration error (fatal) from a database that is
    /// down (then [`Ledger::start`] keeps trying in the background). Blocking (up to the
    /// connect timeout, 5 s by default for PostgreSQL): call it at start-up, not on a runtime
    /// thread.
    pub fn open(url: &LedgerUrl, options: LedgerOptions) -> Result<Ledger, LedgerError> {
        let store = Store::open(url, true)?;
        Ok(Ledger::spawn(url, options, Some(store)))
    }

    /// The ledger `config` asks for (`database:`), opened the way the router should at
    /// start-up: `Ok(None)` when `database.enabled` is false; `Err` only for a configuration
    /// error (a URL that cannot name a database, a schema from a newer bitrouter), which should
    /// stop the start; a database that cannot be opened now (PostgreSQL down, a locked file) is
    /// logged as a warning and the writer keeps trying in the background. Blocking (up to the
    /// PostgreSQL connect timeout): call it before serving, not on a runtime thread.
    pub fn from_config(
        config: &bitrouter_config::Config,
        env: &dyn bitrouter_config::EnvSource,
    ) -> Result<Option<Ledger>, LedgerError> {
        let Some(url) = LedgerUrl::from_config(config, env)? else {
            return Ok(None);
        };
        let options = LedgerOptions::from_config(&config.database);
        match Ledger::open(&url, options.clone()) {
            Ok(ledger) => Ok(Some(ledger)),
            Err(e) if e.is_config() => Err(e),
            Err(e) => {
                log::warn!(
                    "ledger: {e}; requests are served and their rows wait in memory (up to {}) until the database can be written",
                    options.queue_capacity
                );
                Ok(Some(Ledger::start(&url, options)))
            }
        }
    }

    /// Starts the writer without waiting for the database: it connects (and migrates) in the
    /// background and retries with backoff until it can, holding rows in the queue meanwhile.
    /// Never fails and never blocks. Only a configuration error ([`LedgerError::is_config`]) can
    /// never succeed: check the URL with [`Ledger::open`] first.
    pub fn start(url: &LedgerUrl, options: LedgerOptions) -> Ledger {
        Ledger::spawn(url, options, None)
    }

    fn spawn(url: &LedgerUrl, options: LedgerOptions, store: Option<Store>) -> Ledger {
        let (tx, rx) = mpsc::channel();
        let stats = Arc::new(Stats::default());
        let mut writer = Writer {
            url: url.clone(),
            rx,
            stats: Arc::clone(&stats),
            store,
            batch_rows: options.batch_rows.max(1),
            capacity: options.queue_capacity.max(1),
            reported_dropped: 0,
            last_report: Instant::now(),
            failing_since: None,
            last_error_log: None,
        };
        let spawned = std::thread::Builder::new()
            .name("bitrouter-ledger".into())
            .spawn(move || writer.run());
        if let Err(e) = spawned {
            // Without a writer every row is dropped, and counted: say so once.
            log::error!(
                "ledger: cannot start the writer thread: {e}; requests will not be recorded"
            );
        }
        Ledger {
            inner: Arc::new(Inner {
                tx,
                capacity: options.queue_capacity.max(1),
                stats,
                url: url.clone(),
            }),
        }
    }

    /// Queues `row` for the writer. Never blocks and never awaits: when the queue is full (the
    /// database slow or down for a while) the row is dropped and counted in [`Ledger::dropped`].
    pub fn record(&self, row: LedgerRow) {
        let stats = &self.inner.stats;
        if stats.in_queue.fetch_add(1, Ordering::AcqRel) >= self.inner.capacity {
            stats.in_queue.fetch_sub(1, Ordering::AcqRel);
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.inner.tx.send(row) {
            Ok(()) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                stats.in_queue.fetch_sub(1, Ordering::AcqRel);
                stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Rows committed to the database since the ledger was opened.
    pub fn written(&self) -> u64 {
        self.inner.stats.written.load(Ordering::Relaxed)
    }

    /// Rows dropped because the queue was full (each one also reported in the log).
    pub fn dropped(&self) -> u64 {
        self.inner.stats.dropped.load(Ordering::Relaxed)
    }

    /// Rows recorded but not yet committed (in the queue or in the batch being written).
    pub fn queued(&self) -> u64 {
        let accepted = self.inner.stats.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(self.written())
    }

    /// The database this ledger writes to (its `Display` hides any password).
    pub fn url(&self) -> &LedgerUrl {
        &self.inner.url
    }

    /// Waits until every row recorded so far is committed, at most `timeout`; true when they
    /// are. For graceful shutdown, so the last requests land. Blocking: see
    /// [`Ledger::flush`] for async code.
    pub fn flush_blocking(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let target = self.inner.stats.accepted.load(Ordering::Relaxed);
        loop {
            if self.written() >= target {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// [`Ledger::flush_blocking`] for async code: polls without blocking the runtime.
    pub async fn flush(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let target = self.inner.stats.accepted.load(Ordering::Relaxed);
        loop {
            if self.written() >= target {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

struct Writer {
    url: LedgerUrl,
    rx: Receiver<LedgerRow>,
    stats: Arc<Stats>,
    store: Option<Store>,
    batch_rows: usize,
    capacity: usize,
    reported_dropped: u64,
    last_report: Instant,
    /// When the database started failing (to say for how long when it comes back).
    failing_since: Option<Instant>,
    last_error_log: Option<Instant>,
}

impl Writer {
    fn run(&mut self) {
        let mut batch: Vec<LedgerRow> = Vec::with_capacity(self.batch_rows);
        let mut backoff = BACKOFF_FIRST;
        // When the last batch was written, until the connection's memory is released.
        let mut wrote_at: Option<Instant> = None;
        loop {
            self.report_drops(false);
            if batch.is_empty() {
                match self.rx.recv_timeout(Duration::from_secs(1)) {
                    Ok(row) => {
                        self.stats.in_queue.fetch_sub(1, Ordering::AcqRel);
                        batch.push(row);
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        if wrote_at.is_some_and(|t| t.elapsed() >= RELEASE_AFTER) {
                            wrote_at = None;
                            self.release_memory();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                // Rows that arrive within LINGER join this batch: one transaction for many
                // rows. At 4 concurrent requests a batch of 1-4 rows cost ~34,000 instructions
                // a row (commit included); lingering makes the commit a small share.
                // The writer sleeps through the linger and then takes what is waiting: a row
                // then costs one `try_recv`, where waiting on the channel for each row
                // (`recv_timeout`: a waker registered, a futex woken) cost ~3,500 instructions
                // a row (callgrind, pass-through benchmark, 2026-12-03). When a whole batch is
                // already waiting, it is written at once, without lingering.
                // A batch takes no more than the queue holds, so rows in memory stay within
                // twice the configured bound (the batch and a full queue behind it).
                let max = self.batch_rows.min(self.capacity);
                self.take_waiting(&mut batch, max);
                if batch.len() < max {
                    std::thread::sleep(LINGER);
                    self.take_waiting(&mut batch, max);
                }
            }
            match self.write(&batch) {
                Ok(()) => {
                    self.stats
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    batch.clear();
                    backoff = BACKOFF_FIRST;
                    wrote_at = Some(Instant::now());
                    if let Some(since) = self.failing_since.take() {
                        log::info!(
                            "ledger: {} {} is writable again after {:.1} s; {} row(s) waiting",
                            self.url.kind(),
                            self.url,
                            since.elapsed().as_secs_f64(),
                            self.rx_len_hint()
                        );
                        self.last_error_log = None;
                    }
                }
                Err(e) if self.stats.closed.load(Ordering::Relaxed) => {
                    // Nobody can flush any more (the router is exiting, or replaced this
                    // ledger): say what is lost rather than retry forever.
                    let waiting = batch.len() as u64 + self.rx.try_iter().count() as u64;
                    log::error!(
                        "ledger: {waiting} row(s) not written: {e}; the ledger was closed while the database was unavailable"
                    );
                    break;
                }
                Err(e) => {
                    // Reconnect on the next attempt: a broken connection is not reused, and a
                    // SQLite lock or full disk costs only a reopen.
                    self.store = None;
                    self.failing(&e, batch.len());
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        self.report_drops(true);
    }

    /// Moves the rows already in the channel into `batch`, up to `max` rows in it.
    fn take_waiting(&mut self, batch: &mut Vec<LedgerRow>, max: usize) {
        while batch.len() < max {
            match self.rx.try_recv() {
                Ok(row) => {
                    self.stats.in_queue.fetch_sub(1, Ordering::AcqRel);
                    batch.push(row);
                }
                Err(_) => break,
            }
        }
    }

    fn write(&mut self, batch: &[LedgerRow]) -> Result<(), LedgerError> {
        // While the queue is less than a quarter full the writer yields now and then, so the
        // event loop sharing its core is not held up; fuller, it writes straight through, or a
        // saturated router under a real-time policy starves it and rows are dropped. Asked
        // between chunks, not once a batch: one polite batch of 1,024 rows, 16 yields of a
        // whole 100 ms SCHED_RR slice each, let ~30,000 rows pile up at saturation.
        let stats = &self.stats;
        let behind = self.capacity / 4;
        let polite = || stats.in_queue.load(Ordering::Relaxed) < behind;
        let store = match &mut self.store {
            Some(store) => store,
            None => self.store.insert(Store::open(&self.url, true)?),
        };
        store.insert(batch, &polite)
    }

    /// Releases what the idle connection holds. A failure here is not a failed write: the
    /// connection is dropped (the next batch reopens it) and nothing is logged beyond debug.
    fn release_memory(&mut self) {
        if let Some(store) = &mut self.store {
            if let Err(e) = store.release_memory() {
                log::debug!("ledger: releasing the idle connection's memory: {e}");
                self.store = None;
            }
        }
    }

    /// Logs a failed write: at once the first time, then at most once per interval.
    fn failing(&mut self, e: &LedgerError, rows: usize) {
        let now = Instant::now();
        self.failing_since.get_or_insert(now);
        let due = self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= REPORT_INTERVAL);
        if due {
            self.last_error_log = Some(now);
            log::warn!(
                "ledger: cannot write {rows} row(s): {e}; retrying (requests are not affected; up to {} rows wait in memory, more are dropped and counted)",
                self.capacity
            );
        }
    }

    /// Logs rows dropped since the last report, once per interval (or now, when `last`).
    fn report_drops(&mut self, last: bool) {
        if !last && self.last_report.elapsed() < REPORT_INTERVAL {
            return;
        }
        self.last_report = Instant::now();
        let dropped = self.stats.dropped.load(Ordering::Relaxed);
        let new = dropped - self.reported_dropped.min(dropped);
        if new > 0 {
            log::warn!(
                "ledger: {new} row(s) dropped: the queue of {} rows was full (database slow or unreachable); {dropped} dropped since start",
                self.capacity
            );
            self.reported_dropped = dropped;
        }
    }

    /// Rows waiting behind the current batch (approximate).
    fn rx_len_hint(&self) -> u64 {
        let accepted = self.stats.accepted.load(Ordering::Relaxed);
        accepted.saturating_sub(self.stats.written.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerReader;

    fn row(i: i64) -> LedgerRow {
        LedgerRow {
            time_ms: 1_000 + i,
            request_id: format!("r{i}"),
            inbound: "openai_chat",
            model: "m".into(),
            usage_origin: "provider_reported",
            status: 200,
            input_tokens: 1,
            ..LedgerRow::default()
        }
    }

    #[test]
    fn records_flushes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let url = LedgerUrl::Sqlite(dir.path().join("sub/ledger.db"));
        let ledger = Ledger::open(&url, LedgerOptions::default()).unwrap();
        for i in 0..100 {
            ledger.clone().record(row(i));
        }
        assert!(ledger.flush_blocking(Duration::from_secs(10)));
        assert_eq!(
            (ledger.written(), ledger.queued(), ledger.dropped()),
            (100, 0, 0)
        );
        let mut reader = LedgerReader::open(&url).unwrap();
        assert_eq!(reader.recent(1000).unwrap().len(), 100);
        assert_eq!(reader.recent(1).unwrap()[0], row(99));
    }

    #[test]
    fn from_config_policy() {
        let dir = tempfile::tempdir().unwrap();
        let env = bitrouter_config::MapEnv::new([("OPENAI_API_KEY", "k")]);
        let file = dir.path().join("bitrouter.yaml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            bitrouter_config::load(Some(&file), &env).unwrap()
        };
        let ledger = Ledger::from_config(&load("providers: {openai: {}}\n"), &env)
            .unwrap()
            .unwrap();
        assert_eq!(
            ledger.url(),
            &LedgerUrl::Sqlite(dir.path().join("bitrouter.db"))
        );
        assert!(dir.path().join("bitrouter.db").exists());
        let off = load("database: {enabled: false}\n");
        assert!(Ledger::from_config(&off, &env).unwrap().is_none());
        // A database that is down is not fatal: the writer keeps trying. Its error never shows
        // the password.
        let down =
            load("database: {url: 'postgres://bob:hunter2@127.0.0.1:1/x?connect_timeout=2'}\n");
        let e = Ledger::open(
            &LedgerUrl::from_config(&down, &env).unwrap().unwrap(),
            LedgerOptions::default(),
        )
        .err()
        .unwrap();
        assert!(!e.is_config(), "{e}");
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        let ledger = Ledger::from_config(&down, &env).unwrap().unwrap();
        ledger.record(row(1));
        assert_eq!((ledger.written(), ledger.queued()), (0, 1));
    }

    /// A closed ledger whose database stays down: the writer gives up (and says so) instead of
    /// retrying forever.
    #[test]
    fn writer_stops_when_closed_and_the_database_is_down() {
        let url = LedgerUrl::parse(
            "postgres://u@127.0.0.1:1/x?connect_timeout=1",
            std::path::Path::new("/"),
        )
        .unwrap();
        let ledger = Ledger::start(&url, LedgerOptions::default());
        ledger.record(row(1));
        let stats = Arc::clone(&ledger.inner.stats);
        let weak = Arc::downgrade(&stats);
        drop(stats);
        drop(ledger);
        // The writer thread holds the last strong reference to the stats until it exits.
        let deadline = Instant::now() + Duration::from_secs(20);
        while weak.upgrade().is_some() {
            assert!(Instant::now() < deadline, "the writer is still retrying");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn options_from_config() {
        let mut section = DatabaseSection::default();
        assert_eq!(
            LedgerOptions::from_config(&section).queue_capacity,
            DEFAULT_QUEUE_CAPACITY
        );
        section.queue_capacity = std::num::NonZeroUsize::new(7);
        assert_eq!(LedgerOptions::from_config(&section).queue_capacity, 7);
    }
}
