//! The coordinator: one thread that talks to the database for budgets and rate limits, so the
//! request path never does. It grants leases when a key's lease runs out (the only time a
//! request waits on it), and every second heartbeats this router's leases (giving back what
//! idle keys do not use) and publishes its rate counts while reading the other routers'.

use super::budget::{Budgets, KeyBudget, Lessor, IDLE_RELEASE_MS, LEASE_FRESH_MS, LEASE_VALID_MS};
use super::lease_db::{self, LeaseRow};
use super::rate::RateLimits;
use super::{lock, now_ms, period_of};
use crate::ledger::{LedgerUrl, Store};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often leases are heartbeated and rate counts exchanged.
pub const TICK: Duration = Duration::from_secs(1);

/// Other routers' rate counts older than this are ignored (a router that stopped).
const RATE_FRESH_MS: i64 = 5_000;

enum Cmd {
    Extend {
        key_id: String,
        budget: Arc<Mutex<KeyBudget>>,
        want: f64,
        cap: f64,
        reply: tokio::sync::oneshot::Sender<Result<f64, String>>,
    },
    /// Heartbeat now and answer (shutdown, tests).
    Flush(mpsc::SyncSender<()>),
    Stop,
}

/// The handle of the coordinator thread (it stops when the handle is dropped).
pub struct Coordinator {
    tx: mpsc::Sender<Cmd>,
    instance: String,
    /// Some policy limits requests per minute: read the other routers' counts every tick, even
    /// for keys this router has not served yet.
    rates: Arc<AtomicBool>,
}

impl Coordinator {
    /// Starts the thread. It opens its own connection to `url` (and reopens it after an
    /// error); while the database is unreachable, a key that needs more lease is refused.
    pub fn start(url: LedgerUrl, budgets: Arc<Budgets>, rates: Arc<RateLimits>) -> Coordinator {
        let instance = instance_id();
        let (tx, rx) = mpsc::channel();
        let rated = Arc::new(AtomicBool::new(false));
        let mut worker = Worker {
            rated: rated.clone(),
            url,
            store: None,
            instance: instance.clone(),
            budgets,
            rates,
            warned: false,
        };
        let spawned = std::thread::Builder::new()
            .name("bitrouter-budgets".into())
            .spawn(move || worker.run(rx));
        if let Err(e) = spawned {
            log::error!("cannot start the budget coordinator: {e}");
        }
        Coordinator {
            tx,
            instance,
            rates: rated,
        }
    }

    /// Whether rate counts are exchanged every tick (see [`super::Governance::follow`]).
    pub fn exchange_rates(&self, on: bool) {
        self.rates.store(on, Ordering::Relaxed);
    }

    /// This router's id in the shared tables.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Writes this router's state now (waits at most `timeout`).
    pub fn flush(&self, timeout: Duration) -> bool {
        let (tx, rx) = mpsc::sync_channel(1);
        self.tx.send(Cmd::Flush(tx)).is_ok() && rx.recv_timeout(timeout).is_ok()
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}

impl Lessor for Coordinator {
    fn extend(
        &self,
        key_id: &str,
        budget: Arc<Mutex<KeyBudget>>,
        want: f64,
        cap: f64,
    ) -> tokio::sync::oneshot::Receiver<Result<f64, String>> {
        let (reply, rx) = tokio::sync::oneshot::channel();
        let _ = self.tx.send(Cmd::Extend {
            key_id: key_id.to_string(),
            budget,
            want,
            cap,
            reply,
        });
        rx
    }
}

/// Unique per process: pid, start time and a random part (std's `RandomState` keys come from
/// the OS's random source).
fn instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    format!(
        "{}-{:x}-{:08x}",
        std::process::id(),
        now_ms(),
        h.finish() as u32
    )
}

struct Worker {
    rated: Arc<AtomicBool>,
    url: LedgerUrl,
    store: Option<Store>,
    instance: String,
    budgets: Arc<Budgets>,
    rates: Arc<RateLimits>,
    warned: bool,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Cmd>) {
        let mut next = Instant::now() + TICK;
        loop {
            let wait = next.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Cmd::Extend {
                    key_id,
                    budget,
                    want,
                    cap,
                    reply,
                }) => {
                    let answer = self.extend(&key_id, &budget, want, cap);
                    let _ = reply.send(answer);
                }
                Ok(Cmd::Flush(done)) => {
                    self.tick();
                    let _ = done.send(());
                }
                Ok(Cmd::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.tick();
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.tick();
                    next = Instant::now() + TICK;
                }
            }
        }
    }

    /// The open store, reconnecting if needed.
    fn store(&mut self) -> Result<&mut Store, String> {
        if self.store.is_none() {
            match Store::open(&self.url, true) {
                Ok(s) => {
                    if self.warned {
                        log::warn!("budget database {} reachable again", self.url);
                    }
                    self.warned = false;
                    self.store = Some(s);
                }
                Err(e) => {
                    if !self.warned {
                        log::warn!("budget database {} unreachable: {e}", self.url);
                    }
                    self.warned = true;
                    return Err(e.to_string());
                }
            }
        }
        self.store.as_mut().ok_or_else(|| "no database".to_string())
    }

    /// Called after a database error: the connection may be broken, so open a new one next.
    fn failed(&mut self, what: &str, e: impl std::fmt::Display) -> String {
        log::warn!("budget database {}: {what}: {e}", self.url);
        self.store = None;
        format!("{what}: {e}")
    }

    fn extend(
        &mut self,
        key_id: &str,
        budget: &Mutex<KeyBudget>,
        want: f64,
        cap: f64,
    ) -> Result<f64, String> {
        let started = now_ms();
        let row = {
            let mut b = lock(budget);
            b.roll(&period_of(started));
            LeaseRow {
                key_id: key_id.to_string(),
                period: b.period.clone(),
                granted: b.granted,
                spent: b.spent,
            }
        };
        let instance = self.instance.clone();
        let store = self.store()?;
        match lease_db::grant(
            store,
            &row,
            &instance,
            want,
            cap,
            started,
            started - LEASE_FRESH_MS,
        ) {
            Ok(g) => {
                let mut b = lock(budget);
                if b.period == row.period {
                    b.granted = g.granted;
                    b.lease_valid_until_ms = started + LEASE_VALID_MS;
                    b.dirty = b.spent != row.spent;
                }
                Ok(g.remaining)
            }
            Err(e) => Err(self.failed("granting a budget lease", e)),
        }
    }

    fn tick(&mut self) {
        let now = now_ms();
        let period = period_of(now);
        let mut rows = Vec::new();
        let mut written = Vec::new();
        for (key_id, budget) in self.budgets.all() {
            let mut b = lock(&budget);
            b.roll(&period);
            let idle = now - b.last_reserve_ms > IDLE_RELEASE_MS;
            // A lease unconfirmed for LEASE_VALID_MS may already count as free elsewhere: it is
            // never revived by a later heartbeat, only granted anew.
            let lapsed = now >= b.lease_valid_until_ms;
            if (idle || lapsed) && b.granted > b.spent + b.outstanding {
                // Give the unused lease back for other routers.
                b.granted = b.spent + b.outstanding;
                b.dirty = true;
            }
            if b.dirty || b.granted > b.spent {
                b.dirty = false;
                rows.push(LeaseRow {
                    key_id,
                    period: b.period.clone(),
                    granted: b.granted,
                    spent: b.spent,
                });
                written.push(budget.clone());
            }
        }
        let counts = self.rates.counts(now);
        let rated = self.rated.load(Ordering::Relaxed);
        if rows.is_empty() && counts.is_empty() && !rated {
            return;
        }
        let instance = self.instance.clone();
        let Ok(store) = self.store() else {
            for b in &written {
                lock(b).dirty = true;
            }
            return;
        };
        match lease_db::heartbeat(store, &instance, &rows, now) {
            Ok(()) => {
                for b in &written {
                    let mut b = lock(b);
                    b.lease_valid_until_ms = b.lease_valid_until_ms.max(now + LEASE_VALID_MS);
                }
            }
            Err(e) => {
                for b in &written {
                    lock(b).dirty = true;
                }
                self.failed("writing budget leases", e);
                return;
            }
        }
        if counts.is_empty() && !rated {
            return;
        }
        let Ok(store) = self.store() else { return };
        match lease_db::publish_rates(store, &instance, &counts, now, now - RATE_FRESH_MS) {
            Ok(others) => self.rates.set_others(&others),
            Err(e) => {
                self.failed("exchanging rate counts", e);
            }
        }
    }
}
