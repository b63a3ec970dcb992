//! The `virtual_keys` table, in SQLite or PostgreSQL (whichever holds the ledger). Blocking:
//! call it from the CLI or the cache's thread, never from a runtime thread.

use super::mint::{hash_hex, parse_hash_hex, try_mint};
use super::{join_policies, split_policies, KeyRecord};
use crate::ledger::{LedgerError, LedgerUrl, Store};
use rusqlite::OptionalExtension;
use std::path::PathBuf;

/// What [`KeyStore::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The key was active (or expired) and is now revoked.
    Done,
    /// It was revoked before; its revocation time is unchanged.
    Already,
    /// No key has that id.
    Unknown,
}

/// A cheap summary of the table that changes whenever a key is signed or revoked (keys are
/// never deleted and a revocation is never undone, so both counts only grow); last-used times
/// do not change it. The cache compares it every second and reloads only when it differs.
///
/// The counts carry the guarantee; the maxima are there for a table edited by hand (a row
/// deleted and another inserted keeps the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub keys: i64,
    pub revoked: i64,
    pub max_created_ms: i64,
    pub max_revoked_ms: i64,
}

/// The keys in the ledger's database.
pub struct KeyStore {
    store: Store,
    /// How the database is named in errors: the SQLite path, or the redacted PostgreSQL URL.
    path: PathBuf,
    shown: String,
}

/// Every column but the hash, in [`KeyRecord`] order (the hash, when asked for, comes first).
const RECORD_COLUMNS: &str =
    "id, user_id, label, policies, created_ms, expires_ms, revoked_ms, last_used_ms";

/// The columns of one record, as both drivers read them.
type Columns = (
    String,
    String,
    Option<String>,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

fn record((id, user, label, policies, created, expires, revoked, used): Columns) -> KeyRecord {
    KeyRecord {
        id,
        user,
        label,
        policies: split_policies(&policies),
        created_ms: created,
        expires_ms: expires,
        revoked_ms: revoked,
        last_used_ms: used,
    }
}

fn sqlite_columns(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Columns> {
    Ok((
        r.get(at)?,
        r.get(at + 1)?,
        r.get(at + 2)?,
        r.get(at + 3)?,
        r.get(at + 4)?,
        r.get(at + 5)?,
        r.get(at + 6)?,
        r.get(at + 7)?,
    ))
}

fn postgres_columns(r: &postgres::Row, at: usize) -> Result<Columns, postgres::Error> {
    Ok((
        r.try_get(at)?,
        r.try_get(at + 1)?,
        r.try_get(at + 2)?,
        r.try_get(at + 3)?,
        r.try_get(at + 4)?,
        r.try_get(at + 5)?,
        r.try_get(at + 6)?,
        r.try_get(at + 7)?,
    ))
}

impl KeyStore {
    /// Opens (and migrates) the database at `url`; `create` makes a missing SQLite file (`key
    /// sign`, the router), otherwise a missing file is [`LedgerError::Missing`].
    pub fn open(url: &LedgerUrl, create: bool) -> Result<KeyStore, LedgerError> {
        let path = match url {
            LedgerUrl::Sqlite(path) => path.clone(),
            LedgerUrl::Postgres(_) => PathBuf::new(),
        };
        Ok(KeyStore {
            store: Store::open(url, create)?,
            path,
            // `Display` of a URL never shows a password.
            shown: url.to_string(),
        })
    }

    fn pg_err(shown: &str) -> impl Fn(postgres::Error) -> LedgerError + '_ {
        move |source| LedgerError::Postgres {
            url: shown.to_string(),
            source,
        }
    }

    /// Mints a key for `user` with `policies` (ids matching [`bitrouter_config::valid_policy_id`]: the
    /// column joins them with `,`), stores its hash and returns the key (to show once) with its
    /// record.
    pub fn sign(
        &mut self,
        user: &str,
        policies: &[String],
        label: Option<&str>,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(String, KeyRecord), LedgerError> {
        let (key, id) = try_mint().map_err(|e| LedgerError::Io {
            path: PathBuf::from("(the operating system's random number generator)"),
            source: std::io::Error::other(e.to_string()),
        })?;
        let hash = hash_hex(&super::hash_key(&key));
        let joined = join_policies(policies);
        match &mut self.store {
            Store::Sqlite(db) => {
                db.conn
                    .execute(
                        "INSERT INTO virtual_keys (id, key_hash, user_id, label, policies, created_ms, expires_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        rusqlite::params![id, hash, user, label, joined, now_ms, expires_ms],
                    )
                    .map_err(|source| LedgerError::Sqlite {
                        path: self.path.clone(),
                        source,
                    })?;
            }
            Store::Postgres(db) => {
                db.client
                    .execute(
                        "INSERT INTO virtual_keys (id, key_hash, user_id, label, policies, created_ms, expires_ms)
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[&id, &hash, &user, &label, &joined, &now_ms, &expires_ms],
                    )
                    .map_err(Self::pg_err(&self.shown))?;
            }
        }
        let record = KeyRecord {
            id,
            user: user.to_string(),
            label: label.map(String::from),
            policies: policies.to_vec(),
            created_ms: now_ms,
            expires_ms,
            revoked_ms: None,
            last_used_ms: None,
        };
        Ok((key, record))
    }

    /// Every key's record, oldest first.
    pub fn list(&mut self) -> Result<Vec<KeyRecord>, LedgerError> {
        let sql = format!("SELECT {RECORD_COLUMNS} FROM virtual_keys ORDER BY created_ms, id");
        match &mut self.store {
            Store::Sqlite(db) => {
                let e = |source| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                };
                let mut st = db.conn.prepare(&sql).map_err(e)?;
                let rows = st
                    .query_map([], |r| sqlite_columns(r, 0).map(record))
                    .map_err(e)?;
                rows.collect::<Result<_, _>>().map_err(e)
            }
            Store::Postgres(db) => {
                let e = Self::pg_err(&self.shown);
                let rows = db.client.query(&sql, &[]).map_err(&e)?;
                rows.iter()
                    .map(|r| postgres_columns(r, 0).map(record).map_err(&e))
                    .collect()
            }
        }
    }

    /// Revokes key `id` at `now_ms` (once: a second revocation keeps the first time).
    pub fn revoke(&mut self, id: &str, now_ms: i64) -> Result<Revoked, LedgerError> {
        let (changed, exists) = match &mut self.store {
            Store::Sqlite(db) => {
                let e = |source| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                };
                let changed = db
                    .conn
                    .execute(
                        "UPDATE virtual_keys SET revoked_ms = ?1 WHERE id = ?2 AND revoked_ms IS NULL",
                        rusqlite::params![now_ms, id],
                    )
                    .map_err(e)?;
                let exists = changed > 0
                    || db
                        .conn
                        .query_row("SELECT 1 FROM virtual_keys WHERE id = ?1", [id], |_| Ok(()))
                        .optional()
                        .map_err(e)?
                        .is_some();
                (changed > 0, exists)
            }
            Store::Postgres(db) => {
                let e = Self::pg_err(&self.shown);
                let changed = db
                    .client
                    .execute(
                        "UPDATE virtual_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
                        &[&now_ms, &id],
                    )
                    .map_err(&e)?;
                let exists = changed > 0
                    || db
                        .client
                        .query_opt("SELECT 1 FROM virtual_keys WHERE id = $1", &[&id])
                        .map_err(&e)?
                        .is_some();
                (changed > 0, exists)
            }
        };
        Ok(match (changed, exists) {
            (true, _) => Revoked::Done,
            (false, true) => Revoked::Already,
            (false, false) => Revoked::Unknown,
        })
    }

    /// Every key with its hash (what the cache loads). A row whose hash is not 64 hex digits
    /// (edited by hand) cannot match any key: it is left out and logged by id.
    pub fn all_with_hashes(&mut self) -> Result<Vec<([u8; 32], KeyRecord)>, LedgerError> {
        let sql = format!("SELECT key_hash, {RECORD_COLUMNS} FROM virtual_keys");
        let rows: Vec<(String, KeyRecord)> = match &mut self.store {
            Store::Sqlite(db) => {
                let e = |source| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                };
                let mut st = db.conn.prepare(&sql).map_err(e)?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, record(sqlite_columns(r, 1)?))))
                    .map_err(e)?;
                rows.collect::<Result<_, _>>().map_err(e)?
            }
            Store::Postgres(db) => {
                let e = Self::pg_err(&self.shown);
                let rows = db.client.query(&sql, &[]).map_err(&e)?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, record(postgres_columns(r, 1)?))))
                    .collect::<Result<_, postgres::Error>>()
                    .map_err(&e)?
            }
        };
        Ok(rows
            .into_iter()
            .filter_map(|(hash, rec)| match parse_hash_hex(&hash) {
                Some(h) => Some((h, rec)),
                None => {
                    log::warn!(
                        "keys: key {} has a malformed key_hash in the database; it cannot be used",
                        rec.id
                    );
                    None
                }
            })
            .collect())
    }

    /// Records last-used times: each key's `last_used_ms` becomes the later of the stored
    /// value and the given one (so routers flushing in any order never move it back). One
    /// transaction; unknown ids are ignored.
    pub fn touch(&mut self, used: &[(String, i64)]) -> Result<(), LedgerError> {
        if used.is_empty() {
            return Ok(());
        }
        match &mut self.store {
            Store::Sqlite(db) => {
                let e = |source| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                };
                let tx = db.conn.transaction().map_err(e)?;
                {
                    let mut st = tx
                        .prepare_cached(
                            "UPDATE virtual_keys SET last_used_ms = ?2
                             WHERE id = ?1 AND (last_used_ms IS NULL OR last_used_ms < ?2)",
                        )
                        .map_err(e)?;
                    for (id, ms) in used {
                        st.execute(rusqlite::params![id, ms]).map_err(e)?;
                    }
                }
                tx.commit().map_err(e)
            }
            Store::Postgres(db) => {
                // One statement for the whole batch: a round trip per key would make a flush
                // of thousands of keys slow on a distant database.
                let (ids, times): (Vec<&str>, Vec<i64>) =
                    used.iter().map(|(id, ms)| (id.as_str(), *ms)).unzip();
                db.client
                    .execute(
                        "UPDATE virtual_keys AS k SET last_used_ms = u.ms
                         FROM (SELECT id, MAX(ms) AS ms FROM unnest($1::text[], $2::bigint[]) AS t(id, ms) GROUP BY id) AS u
                         WHERE k.id = u.id AND (k.last_used_ms IS NULL OR k.last_used_ms < u.ms)",
                        &[&ids, &times],
                    )
                    .map_err(Self::pg_err(&self.shown))?;
                Ok(())
            }
        }
    }

    /// The table's [`Fingerprint`]: one aggregate query (no rows sent).
    pub fn fingerprint(&mut self) -> Result<Fingerprint, LedgerError> {
        const SQL: &str = "SELECT COUNT(*), COUNT(revoked_ms), COALESCE(MAX(created_ms), 0), \
                           COALESCE(MAX(revoked_ms), 0) FROM virtual_keys";
        match &mut self.store {
            Store::Sqlite(db) => db
                .conn
                .prepare_cached(SQL)
                .and_then(|mut st| {
                    st.query_row([], |r| {
                        Ok(Fingerprint {
                            keys: r.get(0)?,
                            revoked: r.get(1)?,
                            max_created_ms: r.get(2)?,
                            max_revoked_ms: r.get(3)?,
                        })
                    })
                })
                .map_err(|source| LedgerError::Sqlite {
                    path: self.path.clone(),
                    source,
                }),
            Store::Postgres(db) => {
                let e = Self::pg_err(&self.shown);
                let r = db.client.query_one(SQL, &[]).map_err(&e)?;
                Ok(Fingerprint {
                    keys: r.try_get(0).map_err(&e)?,
                    revoked: r.try_get(1).map_err(&e)?,
                    max_created_ms: r.try_get(2).map_err(&e)?,
                    max_revoked_ms: r.try_get(3).map_err(&e)?,
                })
            }
        }
    }
}
