//! The ledger in a SQLite file (rusqlite, SQLite compiled in): WAL mode, synchronous=NORMAL,
//! one transaction per batch through cached prepared statements of up to 32 rows each.

use super::query::{recent_sql, spend_sql, Dialect, Grouping, SpendRow};
use super::row::{
    intern, to_i64, to_u64, LedgerRow, COLUMNS, COLUMN_COUNT, INBOUND_PROTOCOLS, USAGE_ORIGINS,
};
use super::LedgerError;
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The migrations, one per schema version (index + 1). Append, never edit: a database records
/// the versions it has applied in `schema_version`.
const MIGRATIONS: [&str; 2] = [
    "
CREATE TABLE requests (
    id INTEGER PRIMARY KEY,
    time_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    key_id TEXT,
    user_id TEXT,
    inbound TEXT NOT NULL,
    model TEXT NOT NULL,
    provider TEXT,
    upstream_model TEXT,
    account TEXT,
    attempts INTEGER NOT NULL,
    status INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    usage_origin TEXT NOT NULL,
    cost_micro_usd REAL,
    cost_unknown_reason TEXT,
    ttfb_ms INTEGER,
    duration_ms INTEGER NOT NULL,
    error_kind TEXT
);
CREATE INDEX requests_time ON requests (time_ms);
",
    "
CREATE TABLE virtual_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    label TEXT,
    policies TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    revoked_ms INTEGER,
    last_used_ms INTEGER
);
CREATE TABLE budget_leases (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    instance TEXT NOT NULL,
    granted_micro_usd REAL NOT NULL,
    spent_micro_usd REAL NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, period, instance)
);
CREATE TABLE rate_counts (
    key_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    requests INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (key_id, instance)
);
",
];

/// The schema version this build writes.
pub(crate) const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a statement waits for another connection's lock before failing (the writer then
/// retries the batch).
const BUSY_TIMEOUT: Duration = Duration::from_secs(1);

pub(crate) struct Sqlite {
    pub(crate) conn: Connection,
    pub(crate) path: PathBuf,
    /// The INSERT of [`CHUNKS`]`[i]` rows at once, for each `i` (each prepared once, through the
    /// connection's statement cache).
    insert_sql: [String; CHUNKS.len()],
}

/// Rows per INSERT statement, largest first. A batch is written as statements of 32 rows, then
/// at most one each of 16, 8, 4, 2 and 1 for the rest (six prepared statements in all). A
/// statement per row cost ~14,900 instructions a row on the pass-through benchmark (callgrind,
/// 2026-12-03), 2,000 of them finishing the statement (`sqlite3VdbeHalt`) and ~1,500 opening the
/// table and index again; many rows a statement pay that once.
const CHUNKS: [usize; 6] = [32, 16, 8, 4, 2, 1];

/// Each connection's page cache, in KiB (`PRAGMA cache_size` takes a negative number for KiB).
/// SQLite's default is 2,000 KiB, which the writer fills with pages it will not read again: it
/// only appends, so what it needs is the right edge of the table and of its index plus the
/// pages a batch dirties (a batch of 1,024 rows dirties ~50 pages, 200 KB, which must fit or
/// spill to the WAL mid-transaction). 512 KiB holds ~120 pages. Measured (2026-12-03, the 10k
/// open-stream row, two quick runs each, `/proc/PID/smaps` 10 s after the burst): the writer
/// thread's heap held ~1.9 MB with the default and 0.8 MB with this, for good (the pages stay
/// cached whether or not they are read again); RSS after 24.7 / 25.2 MiB → 24.2 / 24.3 MiB.
const PAGE_CACHE_KIB: i64 = -512;

/// Rows written between two yields of the CPU when the writer is polite (see [`Sqlite::insert`]).
const YIELD_ROWS: usize = 64;

/// Maps a driver error to the ledger's, naming the file.
pub(crate) fn err(path: &Path) -> impl Fn(rusqlite::Error) -> LedgerError + '_ {
    move |source| LedgerError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

impl Sqlite {
    /// Opens (creating the file and its folder when `create`) and migrates.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Sqlite, LedgerError> {
        let e = err(path);
        if create {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|source| LedgerError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            }
        } else if !path.exists() {
            return Err(LedgerError::Missing(path.to_path_buf()));
        }
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(&e)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(&e)?;
        // WAL: readers (`bitrouter spend`) never block the writer; NORMAL: a commit is not
        // fsynced until the checkpoint (a power cut may lose the last batches, never corrupt).
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&e)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&e)?;
        conn.pragma_update(None, "cache_size", PAGE_CACHE_KIB)
            .map_err(&e)?;
        let mut db = Sqlite {
            conn,
            path: path.to_path_buf(),
            insert_sql: CHUNKS.map(insert_sql),
        };
        db.migrate()?;
        Ok(db)
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let e = err(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&e)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version INTEGER PRIMARY KEY,
                applied_ms INTEGER NOT NULL
            )",
        )
        .map_err(&e)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(&e)?;
        if current > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        let now = super::query::unix_ms(std::time::SystemTime::now());
        for (version, sql) in (1..)
            .zip(MIGRATIONS.iter())
            .skip(usize::try_from(current).unwrap_or(0))
        {
            tx.execute_batch(sql).map_err(&e)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
                params![version, now],
            )
            .map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// Writes `rows` in one transaction, yielding the CPU every [`YIELD_ROWS`] rows while
    /// `polite()` says so. A batch of 1,024 rows is ~14 M instructions, and a writer on the
    /// router's core under a real-time policy (the load benchmark's SCHED_RR, or an operator's)
    /// kept the event loop off the CPU for a whole time slice, which delayed the events of
    /// 10,000 open streams by ~50 ms at p99 (benches/load, open streams). Under the normal
    /// scheduler a yield is a cheap system call. The writer stops being polite when it has
    /// fallen behind: under SCHED_RR a saturated event loop gives the CPU back only when its
    /// 100 ms slice ends, so each yield costs the writer up to a whole slice, and one that
    /// always yields can fall behind for good (the queue then overflows and rows are dropped).
    pub(crate) fn insert(
        &mut self,
        rows: &[LedgerRow],
        polite: &dyn Fn() -> bool,
    ) -> Result<(), LedgerError> {
        let e = err(&self.path);
        let tx = self.conn.transaction().map_err(&e)?;
        let mut rest = rows;
        let mut since_yield = 0;
        while !rest.is_empty() {
            let (sql, n) = CHUNKS
                .iter()
                .zip(&self.insert_sql)
                .find(|(n, _)| **n <= rest.len())
                .map_or((&self.insert_sql[CHUNKS.len() - 1], 1), |(n, sql)| {
                    (sql, *n)
                });
            let (chunk, tail) = rest.split_at(n);
            rest = tail;
            if since_yield >= YIELD_ROWS && polite() {
                std::thread::yield_now();
                since_yield = 0;
            }
            since_yield += n;
            let mut st = tx.prepare_cached(sql).map_err(&e)?;
            for (k, r) in chunk.iter().enumerate() {
                bind_row(&mut st, k * COLUMN_COUNT, r).map_err(&e)?;
            }
            st.raw_execute().map_err(&e)?;
        }
        tx.commit().map_err(&e)
    }

    /// Drops the cached INSERT statements (six, the largest with 736 parameters) and the page
    /// cache (`PRAGMA shrink_memory`): the writer calls it once it has been idle for a while, so
    /// what a burst of rows made resident goes back. The next batch prepares the statements it
    /// uses again and reads back the few pages an append needs.
    pub(crate) fn release_memory(&mut self) -> Result<(), LedgerError> {
        self.conn.flush_prepared_statement_cache();
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .map_err(err(&self.path))
    }

    pub(crate) fn spend(
        &mut self,
        since_ms: i64,
        until_ms: i64,
        by: Grouping,
    ) -> Result<Vec<SpendRow>, LedgerError> {
        let e = err(&self.path);
        let mut st = self
            .conn
            .prepare(&spend_sql(by, Dialect::Sqlite))
            .map_err(&e)?;
        let rows = st
            .query_map(params![since_ms, until_ms], |r| {
                Ok(SpendRow {
                    group: r.get(0)?,
                    requests: to_u64(r.get(1)?),
                    input_tokens: to_u64(r.get(2)?),
                    cache_read_tokens: to_u64(r.get(3)?),
                    cache_write_tokens: to_u64(r.get(4)?),
                    output_tokens: to_u64(r.get(5)?),
                    reasoning_tokens: to_u64(r.get(6)?),
                    cost_micro_usd: r.get(7)?,
                    unknown_cost_requests: to_u64(r.get(8)?),
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    pub(crate) fn recent(&mut self, n: usize) -> Result<Vec<LedgerRow>, LedgerError> {
        let e = err(&self.path);
        let mut st = self
            .conn
            .prepare(&recent_sql(Dialect::Sqlite))
            .map_err(&e)?;
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![n], |r| {
                Ok(LedgerRow {
                    time_ms: r.get(0)?,
                    request_id: r.get(1)?,
                    key_id: r.get(2)?,
                    user_id: r.get(3)?,
                    inbound: intern(&r.get::<_, String>(4)?, &INBOUND_PROTOCOLS),
                    model: r.get(5)?,
                    provider: r.get(6)?,
                    upstream_model: r.get(7)?,
                    account: r.get(8)?,
                    attempts: r.get(9)?,
                    status: r.get(10)?,
                    stream: r.get(11)?,
                    input_tokens: to_u64(r.get(12)?),
                    cache_read_tokens: to_u64(r.get(13)?),
                    cache_write_tokens: to_u64(r.get(14)?),
                    output_tokens: to_u64(r.get(15)?),
                    reasoning_tokens: to_u64(r.get(16)?),
                    usage_origin: intern(&r.get::<_, String>(17)?, &USAGE_ORIGINS),
                    cost_micro_usd: r.get(18)?,
                    cost_unknown_reason: r.get(19)?,
                    ttfb_ms: r.get::<_, Option<i64>>(20)?.map(to_u64),
                    duration_ms: to_u64(r.get(21)?),
                    error_kind: r.get(22)?,
                })
            })
            .map_err(&e)?;
        rows.collect::<Result<_, _>>().map_err(&e)
    }

    /// The applied schema version (for tests and diagnostics).
    pub(crate) fn version(&mut self) -> Result<i64, LedgerError> {
        self.conn
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))
            .map_err(err(&self.path))
    }
}

/// The INSERT of `rows` rows: `VALUES (?1, …, ?23), (?24, …), …`.
fn insert_sql(rows: usize) -> String {
    let values = (0..rows)
        .map(|k| {
            let row = (1..=COLUMN_COUNT)
                .map(|c| format!("?{}", k * COLUMN_COUNT + c))
                .collect::<Vec<_>>()
                .join(", ");
            format!("({row})")
        })
        .collect::<Vec<_>>()
        .join(", ");
    format!("INSERT INTO requests ({COLUMNS}) VALUES {values}")
}

/// Binds `r` to the parameters after `base` (1-based within the row, in [`COLUMNS`] order),
/// one by one (static dispatch, no parameter slice): the writer's cost per row is what the
/// ledger costs the router.
fn bind_row(
    st: &mut rusqlite::CachedStatement<'_>,
    base: usize,
    r: &LedgerRow,
) -> rusqlite::Result<()> {
    macro_rules! bind {
        ($($i:literal => $v:expr),* $(,)?) => {
            $(st.raw_bind_parameter(base + $i, $v)?;)*
        };
    }
    bind!(
        1 => r.time_ms,
        2 => r.request_id.as_str(),
        3 => r.key_id.as_deref(),
        4 => r.user_id.as_deref(),
        5 => r.inbound,
        6 => r.model.as_str(),
        7 => r.provider.as_deref(),
        8 => r.upstream_model.as_deref(),
        9 => r.account.as_deref(),
        10 => r.attempts,
        11 => r.status,
        12 => r.stream,
        13 => to_i64(r.input_tokens),
        14 => to_i64(r.cache_read_tokens),
        15 => to_i64(r.cache_write_tokens),
        16 => to_i64(r.output_tokens),
        17 => to_i64(r.reasoning_tokens),
        18 => r.usage_origin,
        19 => r.cost_micro_usd,
        20 => r.cost_unknown_reason.as_deref(),
        21 => r.ttfb_ms.map(to_i64),
        22 => to_i64(r.duration_ms),
        23 => r.error_kind.as_deref(),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row whose every column differs from the same column of any other row, so a value bound
    /// to the wrong parameter (another row's, or another column's) shows.
    fn row(i: u64) -> LedgerRow {
        let n = |k: u64| i * 100 + k;
        LedgerRow {
            time_ms: 1_000 + i as i64,
            request_id: format!("req-{i}"),
            key_id: Some(format!("vk_{i}")),
            user_id: (!i.is_multiple_of(3)).then(|| format!("user-{i}")),
            inbound: INBOUND_PROTOCOLS[i as usize % INBOUND_PROTOCOLS.len()],
            model: format!("model-{i}"),
            provider: Some(format!("provider-{i}")),
            upstream_model: Some(format!("up-{i}")),
            account: (i.is_multiple_of(2)).then(|| format!("acct-{i}")),
            attempts: 1 + i as u32,
            status: 200 + i as u16,
            stream: !i.is_multiple_of(2),
            input_tokens: n(1),
            cache_read_tokens: n(2),
            cache_write_tokens: n(3),
            output_tokens: n(4),
            reasoning_tokens: n(5),
            usage_origin: USAGE_ORIGINS[i as usize % USAGE_ORIGINS.len()],
            cost_micro_usd: (!i.is_multiple_of(4)).then_some(i as f64 + 0.5),
            cost_unknown_reason: (i.is_multiple_of(4)).then(|| "no_price".to_string()),
            ttfb_ms: (!i.is_multiple_of(5)).then_some(n(6)),
            duration_ms: n(7),
            error_kind: (i.is_multiple_of(7)).then(|| format!("err-{i}")),
        }
    }

    /// Batches of every shape the chunking takes (empty, below, at and across each statement
    /// size) land whole, in order, each value in its own column.
    #[test]
    fn batches_of_every_size_are_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut start = 0;
        for (n, polite) in [
            (0, true),
            (1, false),
            (2, true),
            (3, false),
            (31, true),
            (32, false),
            (33, true),
            (63, false),
            (64, true),
            (65, false),
            (100, true),
            (1024, false),
        ] {
            let path = dir.path().join(format!("ledger-{n}.db"));
            let mut db = Sqlite::open(&path, true).unwrap();
            let rows: Vec<LedgerRow> = (start..start + n).map(row).collect();
            start += n;
            db.insert(&rows, &|| polite).unwrap();
            let mut back = db.recent(10_000).unwrap();
            back.reverse();
            assert_eq!(back.len(), rows.len(), "batch of {n}");
            assert!(back == rows, "batch of {n}: rows differ");
        }
    }

    /// Releasing an idle connection's memory leaves it writable (the statements are prepared
    /// again) and loses nothing.
    #[test]
    fn release_memory_keeps_the_connection_usable() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Sqlite::open(&dir.path().join("ledger.db"), true).unwrap();
        let rows: Vec<LedgerRow> = (0..40).map(row).collect();
        db.insert(&rows[..33], &|| false).unwrap();
        db.release_memory().unwrap();
        db.release_memory().unwrap();
        db.insert(&rows[33..], &|| false).unwrap();
        let mut back = db.recent(100).unwrap();
        back.reverse();
        assert!(back == rows);
    }

    /// Every connection caps its page cache (SQLite's default would grow to 2 MB and stay).
    #[test]
    fn the_page_cache_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Sqlite::open(&dir.path().join("ledger.db"), true).unwrap();
        let kib: i64 = db
            .conn
            .query_row("PRAGMA cache_size", [], |r| r.get(0))
            .unwrap();
        assert_eq!(kib, PAGE_CACHE_KIB);
    }

    #[test]
    fn the_statements_have_one_parameter_per_column_and_row() {
        for n in CHUNKS {
            let sql = insert_sql(n);
            assert_eq!(sql.matches('?').count(), n * COLUMN_COUNT, "{sql}");
            assert!(sql.ends_with(&format!("?{})", n * COLUMN_COUNT)), "{sql}");
        }
    }
}
