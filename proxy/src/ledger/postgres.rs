//! The ledger in PostgreSQL, for several routers sharing one ledger. The synchronous `postgres`
//! client (tokio-postgres with its own small runtime) runs on the writer's thread, so the
//! router's runtime never waits on the database. Batches go in with binary `COPY`.

use super::query::{recent_sql, spend_sql, Dialect, Grouping, SpendRow};
use super::row::{intern, to_i64, to_u64, LedgerRow, COLUMNS, INBOUND_PROTOCOLS, USAGE_ORIGINS};
use super::url::redact;
use super::LedgerError;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::types::{ToSql, Type};
use postgres::{Client, NoTls};
use std::time::Duration;

/// The migrations, one per schema version (index + 1), as for SQLite. Append, never edit.
const MIGRATIONS: [&str; 2] = [
    "
CREATE TABLE requests (
    id BIGSERIAL PRIMARY KEY,
    time_ms BIGINT NOT NULL,
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
    stream BOOLEAN NOT NULL,
    input_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    cache_write_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    reasoning_tokens BIGINT NOT NULL,
    usage_origin TEXT NOT NULL,
    cost_micro_usd DOUBLE PRECISION,
    cost_unknown_reason TEXT,
    ttfb_ms BIGINT,
    duration_ms BIGINT NOT NULL,
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
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT,
    revoked_ms BIGINT,
    last_used_ms BIGINT
);
CREATE TABLE budget_leases (
    key_id TEXT NOT NULL,
    period TEXT NOT NULL,
    instance TEXT NOT NULL,
    granted_micro_usd DOUBLE PRECISION NOT NULL,
    spent_micro_usd DOUBLE PRECISION NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, period, instance)
);
CREATE TABLE rate_counts (
    key_id TEXT NOT NULL,
    instance TEXT NOT NULL,
    requests BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, instance)
);
",
];

const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Serialises migrations of routers starting together (a transaction-scoped advisory lock).
const MIGRATION_LOCK: i64 = 0x6269_7472_6f75_7465; // "bitroute"

/// The column types of [`COLUMNS`], for binary COPY.
const TYPES: [Type; super::row::COLUMN_COUNT] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT4,
    Type::INT4,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
    Type::FLOAT8,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::TEXT,
];

/// Used when the URL sets no `connect_timeout`: a database that does not answer must not hold
/// the writer (or `bitrouter spend`) for the system's TCP timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Maps a driver error to the ledger's, naming the database by its password-free URL.
pub(crate) fn err(shown: &str) -> impl Fn(postgres::Error) -> LedgerError + '_ {
    move |source| LedgerError::Postgres {
        url: shown.to_string(),
        source,
    }
}

pub(crate) struct Postgres {
    pub(crate) client: Client,
    pub(crate) shown: String,
}

impl Postgres {
    /// Connects and migrates.
    pub(crate) fn open(url: &str) -> Result<Postgres, LedgerError> {
        let shown = redact(url);
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| LedgerError::Url(format!("{shown}: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.application_name("bitrouter");
        let client = config
            .connect(NoTls)
            .map_err(|source| LedgerError::Postgres {
                url: shown.clone(),
                source,
            })?;
        let mut db = Postgres { client, shown };
        db.migrate()?;
        Ok(db)
    }

    fn err(&self) -> impl Fn(postgres::Error) -> LedgerError + '_ {
        move |source| LedgerError::Postgres {
            url: self.shown.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), LedgerError> {
        let shown = self.shown.clone();
        let e = |source| LedgerError::Postgres {
            url: shown.clone(),
            source,
        };
        let mut tx = self.client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .map_err(e)?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version BIGINT PRIMARY KEY,
                applied_ms BIGINT NOT NULL
            )",
        )
        .map_err(e)?;
        let current: i64 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0)::BIGINT FROM schema_version",
                &[],
            )
            .map_err(e)?
            .get(0);
        if current > SCHEMA_VERSION {
            return Err(LedgerError::TooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        let now = super::query::unix_ms(std::time::SystemTime::now());
        for (version, sql) in (1i64..)
            .zip(MIGRATIONS.iter())
            .skip(usize::try_from(current).unwrap_or(0))
        {
            tx.batch_execute(sql).map_err(e)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_ms) VALUES ($1, $2)",
                &[&version, &now],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    /// Writes `rows` in one transaction with binary COPY.
    pub(crate) fn insert(&mut self, rows: &[LedgerRow]) -> Result<(), LedgerError> {
        let shown = self.shown.clone();
        let e = |source| LedgerError::Postgres {
            url: shown.clone(),
            source,
        };
        let mut tx = self.client.transaction().map_err(e)?;
        let sink = tx
            .copy_in(&format!("COPY requests ({COLUMNS}) FROM STDIN BINARY"))
            .map_err(e)?;
        let mut writer = BinaryCopyInWriter::new(sink, &TYPES);
        for r in rows {
            let attempts = i32::try_from(r.attempts).unwrap_or(i32::MAX);
            let status = i32::from(r.status);
            let tokens = [
                to_i64(r.input_tokens),
                to_i64(r.cache_read_tokens),
                to_i64(r.cache_write_tokens),
                to_i64(r.output_tokens),
                to_i64(r.reasoning_tokens),
            ];
            let ttfb = r.ttfb_ms.map(to_i64);
            let duration = to_i64(r.duration_ms);
            let values: [&(dyn ToSql + Sync); super::row::COLUMN_COUNT] = [
                &r.time_ms,
                &r.request_id,
                &r.key_id,
                &r.user_id,
                &r.inbound,
                &r.model,
                &r.provider,
                &r.upstream_model,
                &r.account,
                &attempts,
                &status,
                &r.stream,
                &tokens[0],
                &tokens[1],
                &tokens[2],
                &tokens[3],
                &tokens[4],
                &r.usage_origin,
                &r.cost_micro_usd,
                &r.cost_unknown_reason,
                &ttfb,
                &duration,
                &r.error_kind,
            ];
            writer.write(&values).map_err(e)?;
        }
        writer.finish().map_err(e)?;
        tx.commit().map_err(e)
    }

    pub(crate) fn spend(
        &mut self,
        since_ms: i64,
        until_ms: i64,
        by: Grouping,
    ) -> Result<Vec<SpendRow>, LedgerError> {
        let rows = self
            .client
            .query(&spend_sql(by, Dialect::Postgres), &[&since_ms, &until_ms])
            .map_err(self.err())?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(SpendRow {
                group: r.try_get(0).map_err(self.err())?,
                requests: to_u64(r.try_get(1).map_err(self.err())?),
                input_tokens: to_u64(r.try_get(2).map_err(self.err())?),
                cache_read_tokens: to_u64(r.try_get(3).map_err(self.err())?),
                cache_write_tokens: to_u64(r.try_get(4).map_err(self.err())?),
                output_tokens: to_u64(r.try_get(5).map_err(self.err())?),
                reasoning_tokens: to_u64(r.try_get(6).map_err(self.err())?),
                cost_micro_usd: r.try_get(7).map_err(self.err())?,
                unknown_cost_requests: to_u64(r.try_get(8).map_err(self.err())?),
            });
        }
        Ok(out)
    }

    pub(crate) fn recent(&mut self, n: usize) -> Result<Vec<LedgerRow>, LedgerError> {
        let n = i64::try_from(n).unwrap_or(i64::MAX);
        let rows = self
            .client
            .query(&recent_sql(Dialect::Postgres), &[&n])
            .map_err(self.err())?;
        let e = self.err();
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let inbound: String = r.try_get(4).map_err(&e)?;
            let origin: String = r.try_get(17).map_err(&e)?;
            out.push(LedgerRow {
                time_ms: r.try_get(0).map_err(&e)?,
                request_id: r.try_get(1).map_err(&e)?,
                key_id: r.try_get(2).map_err(&e)?,
                user_id: r.try_get(3).map_err(&e)?,
                inbound: intern(&inbound, &INBOUND_PROTOCOLS),
                model: r.try_get(5).map_err(&e)?,
                provider: r.try_get(6).map_err(&e)?,
                upstream_model: r.try_get(7).map_err(&e)?,
                account: r.try_get(8).map_err(&e)?,
                attempts: u32::try_from(r.try_get::<_, i32>(9).map_err(&e)?).unwrap_or(0),
                status: u16::try_from(r.try_get::<_, i32>(10).map_err(&e)?).unwrap_or(0),
                stream: r.try_get(11).map_err(&e)?,
                input_tokens: to_u64(r.try_get(12).map_err(&e)?),
                cache_read_tokens: to_u64(r.try_get(13).map_err(&e)?),
                cache_write_tokens: to_u64(r.try_get(14).map_err(&e)?),
                output_tokens: to_u64(r.try_get(15).map_err(&e)?),
                reasoning_tokens: to_u64(r.try_get(16).map_err(&e)?),
                usage_origin: intern(&origin, &USAGE_ORIGINS),
                cost_micro_usd: r.try_get(18).map_err(&e)?,
                cost_unknown_reason: r.try_get(19).map_err(&e)?,
                ttfb_ms: r.try_get::<_, Option<i64>>(20).map_err(&e)?.map(to_u64),
                duration_ms: to_u64(r.try_get(21).map_err(&e)?),
                error_kind: r.try_get(22).map_err(&e)?,
            });
        }
        Ok(out)
    }

    pub(crate) fn version(&mut self) -> Result<i64, LedgerError> {
        let row = self
            .client
            .query_one("SELECT MAX(version) FROM schema_version", &[])
            .map_err(self.err())?;
        row.try_get(0).map_err(self.err())
    }
}
