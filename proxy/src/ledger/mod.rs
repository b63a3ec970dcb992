//! The request ledger: one row per request (tokens, cost, route, timing) in SQLite or
//! PostgreSQL, written off the request path.
//!
//! The request path calls [`Ledger::record`], which only puts the row on a bounded queue (it
//! never blocks, never awaits, never touches the database). One writer thread drains the queue
//! in batches, one transaction each. When the database is slow or down, rows wait in the queue up
//! to its bound; beyond it they are dropped and counted ([`Ledger::dropped`]) and the count is
//! logged, so nothing is lost silently; the writer reconnects with backoff. The reading side
//! ([`LedgerReader`]) serves `bitrouter spend` and `bitrouter status --requests`.
//!
//! Schema changes are migrations, one per version, applied when a database is opened (both
//! drivers record the versions they applied in `schema_version`).

pub(crate) mod postgres;
mod query;
mod row;
pub(crate) mod sqlite;
mod url;
mod writer;

pub use query::{format_time, parse_time, unix_ms, Grouping, SpendReport, SpendRow};
pub(crate) use row::to_i64;
pub use row::{inbound_name, LedgerRow, INBOUND_PROTOCOLS, USAGE_ORIGINS};
pub use url::{data_dir, LedgerUrl, DEFAULT_URL};
pub use writer::{Ledger, LedgerOptions, DEFAULT_QUEUE_CAPACITY};

use std::path::PathBuf;

/// What can go wrong opening or using the ledger's database. Messages never contain a password.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// `database.url` cannot name a database: a configuration error.
    #[error("invalid database.url: {0}")]
    Url(String),
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Reading a SQLite ledger that does not exist (reading never creates one).
    #[error("no ledger database at {0} (has the router recorded a request yet? is database.url the router's?)")]
    Missing(PathBuf),
    #[error("SQLite ledger {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("PostgreSQL ledger {url}: {source}")]
    Postgres {
        /// The URL with its password replaced by `***`.
        url: String,
        source: ::postgres::Error,
    },
    /// The database was migrated by a newer bitrouter.
    #[error("the ledger's schema version {found} is newer than this bitrouter knows ({known}); upgrade bitrouter")]
    TooNew { found: i64, known: i64 },
}

impl LedgerError {
    /// Whether retrying cannot help: the configuration (or the binary) must change. Anything
    /// else (a database down, a lock, a full disk) may pass, and the writer retries it.
    pub fn is_config(&self) -> bool {
        matches!(self, LedgerError::Url(_) | LedgerError::TooNew { .. })
    }
}

/// An open database of either kind.
pub(crate) enum Store {
    Sqlite(sqlite::Sqlite),
    Postgres(postgres::Postgres),
}

impl Store {
    /// Opens and migrates; `create` makes a missing SQLite file (the writer), reading does not.
    pub(crate) fn open(url: &LedgerUrl, create: bool) -> Result<Store, LedgerError> {
        Ok(match url {
            LedgerUrl::Sqlite(path) => Store::Sqlite(sqlite::Sqlite::open(path, create)?),
            LedgerUrl::Postgres(url) => Store::Postgres(postgres::Postgres::open(url)?),
        })
    }

    /// Writes `rows` in one transaction; `polite`: see [`sqlite::Sqlite::insert`] (PostgreSQL's
    /// COPY waits on the server, so it needs no yields of its own).
    pub(crate) fn insert(
        &mut self,
        rows: &[LedgerRow],
        polite: &dyn Fn() -> bool,
    ) -> Result<(), LedgerError> {
        match self {
            Store::Sqlite(db) => db.insert(rows, polite),
            Store::Postgres(db) => db.insert(rows),
        }
    }

    /// Gives back what the connection holds between batches, once the writer has been idle: the
    /// prepared statements and SQLite's page cache. PostgreSQL's client holds nothing sizeable.
    pub(crate) fn release_memory(&mut self) -> Result<(), LedgerError> {
        match self {
            Store::Sqlite(db) => db.release_memory(),
            Store::Postgres(_) => Ok(()),
        }
    }
}

/// Reads the ledger (`bitrouter spend`, `bitrouter status --requests`). Blocking: from async
/// code, call it on a blocking thread (`tokio::task::spawn_blocking`).
pub struct LedgerReader {
    store: Store,
}

impl LedgerReader {
    /// Opens the ledger at `url` (running any pending migration). A SQLite file that does not
    /// exist is [`LedgerError::Missing`]: reading never creates a database.
    pub fn open(url: &LedgerUrl) -> Result<LedgerReader, LedgerError> {
        Store::open(url, false).map(|store| LedgerReader { store })
    }

    /// Totals per group of the requests that arrived in `since_ms <= time < until_ms` (unix
    /// milliseconds), with their sum in [`SpendReport::total`].
    pub fn spend(
        &mut self,
        since_ms: i64,
        until_ms: i64,
        by: Grouping,
    ) -> Result<SpendReport, LedgerError> {
        let rows = match &mut self.store {
            Store::Sqlite(db) => db.spend(since_ms, until_ms, by)?,
            Store::Postgres(db) => db.spend(since_ms, until_ms, by)?,
        };
        Ok(SpendReport::from_rows(rows, by))
    }

    /// The last `n` requests, newest first.
    pub fn recent(&mut self, n: usize) -> Result<Vec<LedgerRow>, LedgerError> {
        match &mut self.store {
            Store::Sqlite(db) => db.recent(n),
            Store::Postgres(db) => db.recent(n),
        }
    }

    /// The schema version the database is at.
    pub fn schema_version(&mut self) -> Result<i64, LedgerError> {
        match &mut self.store {
            Store::Sqlite(db) => db.version(),
            Store::Postgres(db) => db.version(),
        }
    }
}
