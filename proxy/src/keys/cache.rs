//! Every key in memory, so the request path checks a key without a database round trip.
//!
//! One std thread (the database drivers block) owns a [`KeyStore`] connection. It loads every
//! key, then every [`REFRESH`] asks the database for the table's [`Fingerprint`] (one aggregate
//! query, however many keys there are) and reloads only when it changed; the new map is swapped
//! in whole (`ArcSwap`), so a lookup never waits for the reload and never sees half of one. A new
//! key or a revocation is therefore in effect within `REFRESH` plus one query on every router
//! sharing the database. Last-used times are bumped in memory ([`CachedKey::note_used`]) and
//! written back every [`FLUSH_EVERY`] in one statement.
//!
//! When the database is down the thread reconnects with backoff and the keys last read stay in
//! service: an outage never fails a request (nor revokes a key, nor un-revokes one).

use super::mint::{hash_key, KEY_PREFIX};
use super::store::{Fingerprint, KeyStore};
use super::{KeyRecord, KeyState};
use crate::ledger::{LedgerError, LedgerUrl};
use arc_swap::ArcSwapOption;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the cache checks the database for new or revoked keys.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How often last-used times are written back.
pub const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Reconnect backoff: doubles from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// At most how often a failing database is logged again.
const REPORT_INTERVAL: Duration = Duration::from_secs(10);

/// `last_used` of a key never used.
const NEVER: i64 = i64::MIN;

/// One key as the request path sees it.
#[derive(Debug)]
pub struct CachedKey {
    record: KeyRecord,
    /// Unix ms of the latest use, [`NEVER`] if none: bumped by requests.
    last_used: AtomicI64,
    /// The latest use known to be in the database (written by us, or read from it).
    flushed: AtomicI64,
}

impl CachedKey {
    pub fn new(record: KeyRecord) -> CachedKey {
        let used = record.last_used_ms.unwrap_or(NEVER);
        CachedKey {
            record,
            last_used: AtomicI64::new(used),
            flushed: AtomicI64::new(used),
        }
    }

    /// The key's record as last read from the database (its `last_used_ms` may be older than
    /// [`CachedKey::last_used_ms`]).
    pub fn record(&self) -> &KeyRecord {
        &self.record
    }

    /// Records a use at `now_ms` (kept in memory, written back within [`FLUSH_EVERY`]). Writes
    /// the shared counter only when the time moved on, so concurrent requests on one key do not
    /// all contend for its cache line.
    pub fn note_used(&self, now_ms: i64) {
        if self.last_used.load(Ordering::Relaxed) < now_ms {
            self.last_used.fetch_max(now_ms, Ordering::Relaxed);
        }
    }

    /// The latest use known here (this router's, or the database's as of the last reload).
    pub fn last_used_ms(&self) -> Option<i64> {
        Some(self.last_used.load(Ordering::Relaxed)).filter(|&t| t != NEVER)
    }

    /// Whether the key may be used at `now_ms`.
    pub fn state(&self, now_ms: i64) -> KeyState {
        self.record.state(now_ms)
    }
}

/// What [`KeyCache::lookup`] found.
#[derive(Debug, Clone)]
pub enum KeyLookup {
    /// A key with this hash exists; check [`CachedKey::state`] before serving.
    Found(Arc<CachedKey>),
    /// No such key (or not a `brvk_` key at all).
    Unknown,
    /// The database has not been read yet (the router just started and it is slow or down):
    /// the key cannot be checked either way.
    NotLoaded,
}

type KeyMap = HashMap<[u8; 32], Arc<CachedKey>>;

/// What the handles and the refresh thread share.
struct Shared {
    /// `None` until the database has been read once.
    keys: ArcSwapOption<KeyMap>,
    /// Counts the maps swapped in (after the swap): what a lookup found is current while this
    /// has not moved (see [`KeyCache::generation`]).
    generation: std::sync::atomic::AtomicU64,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    fn request_stop(&self) {
        *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = true;
        self.wake.notify_all();
    }

    /// Sleeps up to `d`; true once a stop was requested.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |stopped| !*stopped)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

struct Inner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    /// The last handle is gone: the thread flushes last-used times and ends (not waited for:
    /// a drop must not block on the database).
    fn drop(&mut self) {
        self.shared.request_stop();
    }
}

/// The keys in memory. Cheap to clone (an `Arc`); every clone reads the same map, refreshed by
/// one thread that ends with [`KeyCache::stop`] or when the last clone is dropped.
#[derive(Clone)]
pub struct KeyCache {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("keys", &self.key_count())
            .finish()
    }
}

impl KeyCache {
    /// Starts the refresh thread (named `bitrouter-keys`) for the database at `url`. Never
    /// blocks and never fails: until the first read, lookups answer [`KeyLookup::NotLoaded`];
    /// a database that is down is retried with backoff (a missing SQLite file is created, as
    /// the ledger's writer does).
    pub fn start(url: LedgerUrl) -> KeyCache {
        let shared = Arc::new(Shared {
            keys: ArcSwapOption::empty(),
            generation: std::sync::atomic::AtomicU64::new(0),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        });
        let refresher = Refresher {
            url,
            shared: Arc::clone(&shared),
            store: None,
            fingerprint: None,
            backoff: BACKOFF_FIRST,
            next_flush: Instant::now() + FLUSH_EVERY,
            last_report: None,
        };
        let thread = std::thread::Builder::new()
            .name("bitrouter-keys".into())
            .spawn(move || refresher.run());
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                log::error!(
                    "keys: cannot start the key cache thread: {e}; virtual keys cannot be checked"
                );
                None
            }
        };
        KeyCache {
            inner: Arc::new(Inner {
                shared,
                thread: Mutex::new(thread),
            }),
        }
    }

    /// A loaded cache holding `records` and no thread (nothing refreshes it, nothing is written
    /// back): for tests, and for code that has its keys from elsewhere.
    pub fn from_records(records: impl IntoIterator<Item = ([u8; 32], KeyRecord)>) -> KeyCache {
        let map: KeyMap = records
            .into_iter()
            .map(|(hash, record)| (hash, Arc::new(CachedKey::new(record))))
            .collect();
        KeyCache {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    keys: ArcSwapOption::from_pointee(map),
                    generation: std::sync::atomic::AtomicU64::new(1),
                    stopped: Mutex::new(true),
                    wake: Condvar::new(),
                }),
                thread: Mutex::new(None),
            }),
        }
    }

    /// The key `presented` by a client. Memory only: one SHA-256 of the text, one hash-map
    /// read of the current snapshot (no lock, no allocation). Text without the `brvk_` prefix is
    /// [`KeyLookup::Unknown`] without hashing (e.g. the operator's master key).
    pub fn lookup(&self, presented: &str) -> KeyLookup {
        if !presented.starts_with(KEY_PREFIX) {
            return KeyLookup::Unknown;
        }
        let hash = hash_key(presented);
        let keys = self.inner.shared.keys.load();
        match keys.as_ref() {
            None => KeyLookup::NotLoaded,
            Some(map) => match map.get(&hash) {
                Some(key) => KeyLookup::Found(Arc::clone(key)),
                None => KeyLookup::Unknown,
            },
        }
    }

    /// Moves every time a new set of keys is swapped in (a key signed or revoked). A key found
    /// by a lookup made after reading generation `g` is current while `generation()` is `g`
    /// (the counter moves only after the swap), so a caller may remember what it found.
    pub fn generation(&self) -> u64 {
        self.inner.shared.generation.load(Ordering::Acquire)
    }

    /// How many keys are in memory; `None` before the database has been read.
    pub fn key_count(&self) -> Option<usize> {
        self.inner.shared.keys.load().as_ref().map(|m| m.len())
    }

    /// Ends the refresh thread after it writes back the last-used times it holds, and waits
    /// for it (at most as long as one database call). Lookups keep answering from the keys last
    /// read. Idempotent.
    pub fn stop(&self) {
        self.inner.shared.request_stop();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(t) = thread {
            if t.join().is_err() {
                log::error!("keys: the key cache thread panicked");
            }
        }
    }
}

/// The refresh thread's state.
struct Refresher {
    url: LedgerUrl,
    shared: Arc<Shared>,
    store: Option<KeyStore>,
    /// The fingerprint of what is loaded.
    fingerprint: Option<Fingerprint>,
    backoff: Duration,
    next_flush: Instant,
    last_report: Option<Instant>,
}

impl Refresher {
    fn run(mut self) {
        loop {
            let wait = self.tick();
            if self.shared.sleep(wait) {
                if let Some(store) = self.store.as_mut() {
                    if let Err(e) = flush(store, &self.shared) {
                        log::warn!("keys: last-used times not written at stop: {e}");
                    }
                }
                return;
            }
        }
    }

    /// One round: connect if needed, reload on change, flush when due. Gives how long to wait
    /// before the next round.
    fn tick(&mut self) -> Duration {
        if let Err(e) = self.round() {
            // Reconnect next time (a dead PostgreSQL connection does not come back by itself).
            self.store = None;
            self.report(&e);
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
            return wait;
        }
        if self.last_report.take().is_some() {
            log::info!("keys: the database {} answers again", self.url);
        }
        self.backoff = BACKOFF_FIRST;
        REFRESH
    }

    fn round(&mut self) -> Result<(), LedgerError> {
        let store = match &mut self.store {
            Some(store) => store,
            None => self.store.insert(KeyStore::open(&self.url, true)?),
        };
        refresh(store, &self.shared, &mut self.fingerprint, &self.url)?;
        if Instant::now() >= self.next_flush {
            flush(store, &self.shared)?;
            self.next_flush = Instant::now() + FLUSH_EVERY;
        }
        Ok(())
    }

    fn report(&mut self, e: &LedgerError) {
        let due = self
            .last_report
            .is_none_or(|t| t.elapsed() >= REPORT_INTERVAL);
        if due {
            let loaded = match self.shared.keys.load().as_ref() {
                Some(m) => format!("the {} key(s) read before stay in service", m.len()),
                None => "virtual keys cannot be checked until it answers".to_string(),
            };
            log::warn!("keys: {e}; retrying ({loaded})");
            self.last_report = Some(Instant::now());
        }
    }
}

/// Reloads every key when the table's fingerprint changed (or nothing is loaded yet).
fn refresh(
    store: &mut KeyStore,
    shared: &Shared,
    loaded: &mut Option<Fingerprint>,
    url: &LedgerUrl,
) -> Result<(), LedgerError> {
    let fingerprint = store.fingerprint()?;
    if *loaded == Some(fingerprint) {
        return Ok(());
    }
    // A change landing between the two queries is loaded now and reloaded once more next
    // round (the fingerprint read first is older than the rows): never missed.
    let rows = store.all_with_hashes()?;
    let old = shared.keys.load_full();
    let mut map = KeyMap::with_capacity(rows.len());
    for (hash, record) in rows {
        let key = match old.as_ref().and_then(|m| m.get(&hash)) {
            // Unchanged: keep the same entry, so a use noted by a request that looked it up
            // before the swap is not lost.
            Some(prev) if same_but_last_used(&prev.record, &record) => {
                let stored = record.last_used_ms.unwrap_or(NEVER);
                prev.flushed.fetch_max(stored, Ordering::Relaxed);
                prev.last_used.fetch_max(stored, Ordering::Relaxed);
                Arc::clone(prev)
            }
            // Changed (revoked): a new entry that keeps the uses noted on the old one.
            Some(prev) => {
                let key = CachedKey::new(record);
                key.last_used
                    .fetch_max(prev.last_used.load(Ordering::Relaxed), Ordering::Relaxed);
                Arc::new(key)
            }
            None => Arc::new(CachedKey::new(record)),
        };
        map.insert(hash, key);
    }
    let count = map.len();
    shared.keys.store(Some(Arc::new(map)));
    shared.generation.fetch_add(1, Ordering::Release);
    *loaded = Some(fingerprint);
    if old.is_none() {
        log::info!("keys: {count} virtual key(s) loaded from {url}");
    } else {
        log::debug!("keys: reloaded {count} virtual key(s)");
    }
    Ok(())
}

/// Writes back the uses noted since the last flush, in one statement.
fn flush(store: &mut KeyStore, shared: &Shared) -> Result<(), LedgerError> {
    let Some(map) = shared.keys.load_full() else {
        return Ok(());
    };
    let dirty: Vec<(&Arc<CachedKey>, i64)> = map
        .values()
        .filter_map(|k| {
            let used = k.last_used.load(Ordering::Relaxed);
            (used > k.flushed.load(Ordering::Relaxed)).then_some((k, used))
        })
        .collect();
    if dirty.is_empty() {
        return Ok(());
    }
    let used: Vec<(String, i64)> = dirty
        .iter()
        .map(|(k, ms)| (k.record.id.clone(), *ms))
        .collect();
    store.touch(&used)?;
    for (k, ms) in dirty {
        k.flushed.fetch_max(ms, Ordering::Relaxed);
    }
    Ok(())
}

/// Whether two reads of a key differ at most in their last-used time.
fn same_but_last_used(a: &KeyRecord, b: &KeyRecord) -> bool {
    a.id == b.id
        && a.user == b.user
        && a.label == b.label
        && a.policies == b.policies
        && a.created_ms == b.created_ms
        && a.expires_ms == b.expires_ms
        && a.revoked_ms == b.revoked_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::mint;

    fn record(id: &str, revoked_ms: Option<i64>, expires_ms: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: id.into(),
            user: "ann".into(),
            label: Some("ci".into()),
            policies: vec!["default".into()],
            created_ms: 1_000,
            expires_ms,
            revoked_ms,
            last_used_ms: None,
        }
    }

    #[test]
    fn lookup_by_hash() {
        let (active, _) = mint();
        let (revoked, _) = mint();
        let (expired, _) = mint();
        let cache = KeyCache::from_records([
            (hash_key(&active), record("vk_a", None, None)),
            (hash_key(&revoked), record("vk_r", Some(2_000), None)),
            (hash_key(&expired), record("vk_e", None, Some(3_000))),
        ]);
        assert_eq!(cache.key_count(), Some(3));
        let found = |k: &str| match cache.lookup(k) {
            KeyLookup::Found(k) => k,
            other => panic!("{other:?}"),
        };
        let a = found(&active);
        assert_eq!(a.record().id, "vk_a");
        assert_eq!(a.state(5_000), KeyState::Active);
        assert_eq!(found(&revoked).state(5_000), KeyState::Revoked);
        assert_eq!(found(&expired).state(2_999), KeyState::Active);
        assert_eq!(found(&expired).state(5_000), KeyState::Expired);
        let (other, _) = mint();
        assert!(matches!(cache.lookup(&other), KeyLookup::Unknown));
        assert!(matches!(cache.lookup("sk-master"), KeyLookup::Unknown));
        assert!(matches!(cache.lookup(""), KeyLookup::Unknown));
        // A prefix of a real key is not that key.
        assert!(matches!(
            cache.lookup(&active[..active.len() - 1]),
            KeyLookup::Unknown
        ));
    }

    #[test]
    fn last_used_only_moves_forward() {
        let key = CachedKey::new(record("vk_a", None, None));
        assert_eq!(key.last_used_ms(), None);
        key.note_used(5_000);
        key.note_used(4_000);
        assert_eq!(key.last_used_ms(), Some(5_000));
        key.note_used(6_000);
        assert_eq!(key.last_used_ms(), Some(6_000));
        // The record keeps what the database said.
        assert_eq!(key.record().last_used_ms, None);
    }

    #[test]
    fn not_loaded_until_the_database_is_read() {
        // A database that cannot be opened: its folder would be a regular file.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("file"), "").unwrap();
        let cache = KeyCache::start(LedgerUrl::Sqlite(dir.path().join("file/keys.db")));
        std::thread::sleep(Duration::from_millis(300));
        let (key, _) = mint();
        assert!(matches!(cache.lookup(&key), KeyLookup::NotLoaded));
        assert!(matches!(cache.lookup("sk-other"), KeyLookup::Unknown));
        assert_eq!(cache.key_count(), None);
        let clone = cache.clone();
        cache.stop();
        // Stopping twice (or through a clone) is harmless.
        clone.stop();
    }

    #[test]
    fn sqlite_cache_sees_new_keys_revocations_and_writes_last_used() {
        let dir = tempfile::tempdir().unwrap();
        let url = LedgerUrl::Sqlite(dir.path().join("keys.db"));
        let mut store = KeyStore::open(&url, true).unwrap();
        let (key, rec) = store.sign("ann", &[], None, None, 1_000).unwrap();
        let cache = KeyCache::start(url.clone());
        let found = wait_for(|| match cache.lookup(&key) {
            KeyLookup::Found(k) => Some(k),
            _ => None,
        });
        assert_eq!(found.record().id, rec.id);
        found.note_used(7_000);

        // A key signed after the cache started, then a revocation: both seen within 2 s.
        let (late, _) = store.sign("bob", &[], None, None, 2_000).unwrap();
        let started = Instant::now();
        wait_for(|| matches!(cache.lookup(&late), KeyLookup::Found(_)).then_some(()));
        assert_eq!(
            store.revoke(&rec.id, 3_000).unwrap(),
            super::super::Revoked::Done
        );
        wait_for(|| match cache.lookup(&key) {
            KeyLookup::Found(k) if k.state(4_000) == KeyState::Revoked => Some(()),
            _ => None,
        });
        assert!(started.elapsed() < Duration::from_secs(4));
        // The revoked entry is a new one, but it kept the use noted on the old one; stopping
        // writes it back.
        cache.stop();
        let listed = store.list().unwrap();
        let ann = listed.iter().find(|r| r.id == rec.id).unwrap();
        assert_eq!(ann.last_used_ms, Some(7_000));
    }

    /// Polls `f` every 20 ms for up to 2 s.
    fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "not seen within 2 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
