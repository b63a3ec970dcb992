//! The shared state of budgets and rate limits in the ledger's database (schema version 2):
//! `budget_leases` (per key, month and router: granted and spent) and `rate_counts` (per key
//! and router: requests in the last minute). Only the coordinator thread calls these.

use crate::ledger::{LedgerError, Store};
use hashbrown::HashMap;

/// What one router holds on one key for one month.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub key_id: String,
    pub period: String,
    pub granted: f64,
    pub spent: f64,
}

/// The outcome of a grant: this router's lease now, and what is left of the budget (not spent
/// by this router nor held or spent by another).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Granted {
    pub granted: f64,
    pub remaining: f64,
}

const SQLITE_OTHERS: &str = "SELECT COALESCE(SUM(CASE WHEN updated_ms >= ?4 \
    THEN MAX(granted_micro_usd, spent_micro_usd) ELSE spent_micro_usd END), 0.0) \
    FROM budget_leases WHERE key_id = ?1 AND period = ?2 AND instance <> ?3";
const PG_OTHERS: &str = "SELECT COALESCE(SUM(CASE WHEN updated_ms >= $4 \
    THEN GREATEST(granted_micro_usd, spent_micro_usd) ELSE spent_micro_usd END), 0)::DOUBLE PRECISION \
    FROM budget_leases WHERE key_id = $1 AND period = $2 AND instance <> $3";
const SQLITE_UPSERT: &str = "INSERT INTO budget_leases \
    (key_id, period, instance, granted_micro_usd, spent_micro_usd, updated_ms) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key_id, period, instance) DO UPDATE SET \
    granted_micro_usd = excluded.granted_micro_usd, spent_micro_usd = excluded.spent_micro_usd, \
    updated_ms = excluded.updated_ms";
const PG_UPSERT: &str = "INSERT INTO budget_leases \
    (key_id, period, instance, granted_micro_usd, spent_micro_usd, updated_ms) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id, period, instance) DO UPDATE SET \
    granted_micro_usd = excluded.granted_micro_usd, spent_micro_usd = excluded.spent_micro_usd, \
    updated_ms = excluded.updated_ms";

/// Grants `instance` up to `want` more lease on `key_id` for `period`, so that what all
/// routers hold or spent stays within `cap`. Others' leases count while fresh (heartbeat at or
/// after `fresh_after_ms`); after that only what they spent counts. One transaction, serialised
/// per key (SQLite: an immediate transaction; PostgreSQL: an advisory lock on the key).
#[allow(clippy::too_many_arguments)]
pub(crate) fn grant(
    store: &mut Store,
    row: &LeaseRow,
    instance: &str,
    want: f64,
    cap: f64,
    now_ms: i64,
    fresh_after_ms: i64,
) -> Result<Granted, LedgerError> {
    let base = row.granted.max(row.spent);
    let decide = |others: f64| {
        let give = want.min(cap - others - base).max(0.0);
        let granted = base + give;
        Granted {
            granted,
            remaining: (cap - others - row.spent).max(0.0),
        }
    };
    match store {
        Store::Sqlite(db) => {
            let e = crate::ledger::sqlite::err(&db.path);
            let tx = db
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(&e)?;
            let others: f64 = tx
                .query_row(
                    SQLITE_OTHERS,
                    rusqlite::params![row.key_id, row.period, instance, fresh_after_ms],
                    |r| r.get(0),
                )
                .map_err(&e)?;
            let g = decide(others);
            tx.execute(
                SQLITE_UPSERT,
                rusqlite::params![row.key_id, row.period, instance, g.granted, row.spent, now_ms],
            )
            .map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(g)
        }
        Store::Postgres(db) => {
            let e = crate::ledger::postgres::err(&db.shown);
            let mut tx = db.client.transaction().map_err(&e)?;
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1 || '/' || $2))",
                &[&row.key_id, &row.period],
            )
            .map_err(&e)?;
            let others: f64 = tx
                .query_one(
                    PG_OTHERS,
                    &[&row.key_id, &row.period, &instance, &fresh_after_ms],
                )
                .map_err(&e)?
                .get(0);
            let g = decide(others);
            tx.execute(
                PG_UPSERT,
                &[
                    &row.key_id,
                    &row.period,
                    &instance,
                    &g.granted,
                    &row.spent,
                    &now_ms,
                ],
            )
            .map_err(&e)?;
            tx.commit().map_err(&e)?;
            Ok(g)
        }
    }
}

/// Writes this router's leases (granted and spent) and so keeps them fresh. A lease only ever
/// shrinks here (only [`grant`] grows one), so no lock is needed.
pub(crate) fn heartbeat(
    store: &mut Store,
    instance: &str,
    rows: &[LeaseRow],
    now_ms: i64,
) -> Result<(), LedgerError> {
    if rows.is_empty() {
        return Ok(());
    }
    match store {
        Store::Sqlite(db) => {
            let e = crate::ledger::sqlite::err(&db.path);
            let tx = db.conn.transaction().map_err(&e)?;
            {
                let mut st = tx.prepare_cached(SQLITE_UPSERT).map_err(&e)?;
                for r in rows {
                    st.execute(rusqlite::params![
                        r.key_id, r.period, instance, r.granted, r.spent, now_ms
                    ])
                    .map_err(&e)?;
                }
            }
            tx.commit().map_err(&e)
        }
        Store::Postgres(db) => {
            let e = crate::ledger::postgres::err(&db.shown);
            let mut tx = db.client.transaction().map_err(&e)?;
            let st = tx.prepare(PG_UPSERT).map_err(&e)?;
            for r in rows {
                tx.execute(
                    &st,
                    &[
                        &r.key_id, &r.period, &instance, &r.granted, &r.spent, &now_ms,
                    ],
                )
                .map_err(&e)?;
            }
            tx.commit().map_err(&e)
        }
    }
}

/// Publishes this router's request counts of the last minute (a zero deletes the row) and
/// returns the other routers' sums per key, from rows written at or after `fresh_after_ms`.
pub(crate) fn publish_rates(
    store: &mut Store,
    instance: &str,
    counts: &[(String, u64)],
    now_ms: i64,
    fresh_after_ms: i64,
) -> Result<HashMap<String, u64>, LedgerError> {
    let mut others = HashMap::new();
    match store {
        Store::Sqlite(db) => {
            let e = crate::ledger::sqlite::err(&db.path);
            let tx = db.conn.transaction().map_err(&e)?;
            for (key, n) in counts {
                if *n == 0 {
                    tx.execute(
                        "DELETE FROM rate_counts WHERE key_id = ?1 AND instance = ?2",
                        rusqlite::params![key, instance],
                    )
                    .map_err(&e)?;
                } else {
                    tx.execute(
                        "INSERT INTO rate_counts (key_id, instance, requests, updated_ms) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key_id, instance) DO UPDATE SET \
                         requests = excluded.requests, updated_ms = excluded.updated_ms",
                        rusqlite::params![key, instance, crate::ledger::to_i64(*n), now_ms],
                    )
                    .map_err(&e)?;
                }
            }
            {
                let mut st = tx
                    .prepare_cached(
                        "SELECT key_id, SUM(requests) FROM rate_counts \
                         WHERE instance <> ?1 AND updated_ms >= ?2 GROUP BY key_id",
                    )
                    .map_err(&e)?;
                let rows = st
                    .query_map(rusqlite::params![instance, fresh_after_ms], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .map_err(&e)?;
                for row in rows {
                    let (k, n) = row.map_err(&e)?;
                    others.insert(k, u64::try_from(n).unwrap_or(0));
                }
            }
            tx.commit().map_err(&e)?;
        }
        Store::Postgres(db) => {
            let e = crate::ledger::postgres::err(&db.shown);
            let mut tx = db.client.transaction().map_err(&e)?;
            for (key, n) in counts {
                if *n == 0 {
                    tx.execute(
                        "DELETE FROM rate_counts WHERE key_id = $1 AND instance = $2",
                        &[key, &instance],
                    )
                    .map_err(&e)?;
                } else {
                    tx.execute(
                        "INSERT INTO rate_counts (key_id, instance, requests, updated_ms) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (key_id, instance) DO UPDATE SET \
                         requests = excluded.requests, updated_ms = excluded.updated_ms",
                        &[key, &instance, &crate::ledger::to_i64(*n), &now_ms],
                    )
                    .map_err(&e)?;
                }
            }
            for row in tx
                .query(
                    "SELECT key_id, SUM(requests)::BIGINT FROM rate_counts \
                     WHERE instance <> $1 AND updated_ms >= $2 GROUP BY key_id",
                    &[&instance, &fresh_after_ms],
                )
                .map_err(&e)?
            {
                let k: String = row.get(0);
                let n: i64 = row.get(1);
                others.insert(k, u64::try_from(n).unwrap_or(0));
            }
            tx.commit().map_err(&e)?;
        }
    }
    Ok(others)
}
