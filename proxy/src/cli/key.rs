//! `bitrouter key sign | list | revoke`: virtual keys in the ledger's database (the router need
//! not be running; a running router sees a change within two seconds).
//!
//! The key itself is printed once, by `sign`, and nowhere else: the database keeps only its
//! SHA-256, `list` shows ids.

use crate::keys::{KeyRecord, KeyStore, Revoked};
use crate::ledger::{format_time, unix_ms, LedgerError, LedgerUrl};
use bitrouter_config::valid_policy_id;
use bitrouter_config::Config;
use clap::Subcommand;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Exit code of an invalid configuration (as `serve`).
const INVALID_CONFIG: i32 = 2;

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Mint a `brvk_` key for a user and print it (once: only its SHA-256 is stored).
    Sign {
        /// Who the key belongs to (spend can be grouped by user).
        #[arg(long, value_name = "ID")]
        user: String,
        /// A policy that applies to the key (repeat for several; they combine).
        #[arg(long = "policy", value_name = "ID")]
        policies: Vec<String>,
        /// A note for `key list` (what the key is for).
        #[arg(long, value_name = "TEXT")]
        label: Option<String>,
        /// When the key stops working: an RFC 3339 time (2027-01-01T00:00:00Z) or a duration
        /// from now (30d, 12h).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Database URL (default: database.url from the config).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the keys: id, user, label, policies, created, expires, revoked, last used (never
    /// the key itself).
    List {
        /// Database URL (default: database.url from the config).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id; routers refuse it within two seconds.
    Revoke {
        /// The key's id (vk_…, from `key list`).
        id: String,
        /// Database URL (default: database.url from the config).
        #[arg(long, value_name = "URL")]
        db: Option<String>,
    },
}

/// Runs `bitrouter key …`; returns the exit code.
pub fn run(config: Option<&Path>, command: KeyCommand) -> i32 {
    match command {
        KeyCommand::Sign {
            user,
            policies,
            label,
            expires,
            db,
            json,
        } => sign(
            config,
            db.as_deref(),
            &user,
            &policies,
            label.as_deref(),
            expires.as_deref(),
            json,
        ),
        KeyCommand::List { db, json } => list(config, db.as_deref(), json),
        KeyCommand::Revoke { id, db } => revoke(config, db.as_deref(), &id),
    }
}

/// What `sign --json` prints, in this order.
#[derive(Serialize)]
struct Signed<'a> {
    key: &'a str,
    id: &'a str,
    user: &'a str,
    policies: &'a [String],
    label: Option<&'a str>,
    expires_at: Option<String>,
}

fn sign(
    config: Option<&Path>,
    db: Option<&str>,
    user: &str,
    policies: &[String],
    label: Option<&str>,
    expires: Option<&str>,
    json: bool,
) -> i32 {
    if user.trim().is_empty() || user.chars().any(char::is_control) {
        eprintln!("error: --user must be a non-empty id without control characters");
        return 1;
    }
    if label.is_some_and(|l| l.chars().any(char::is_control)) {
        eprintln!("error: --label must not contain control characters");
        return 1;
    }
    let now = SystemTime::now();
    let now_ms = unix_ms(now);
    let expires_ms = match expires.map(|e| parse_expiry(e, now)).transpose() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let (url, loaded) = match resolve(config, db) {
        Ok(r) => r,
        Err(code) => return code,
    };
    if let Err(e) = check_policies(policies, loaded.as_ref()) {
        eprintln!("error: {e}");
        return 1;
    }
    let mut store = match open(&url, true) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (key, record) = match store.sign(user, policies, label, expires_ms, now_ms) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let expires_at = record.expires_ms.map(format_time);
    if json {
        let out = Signed {
            key: &key,
            id: &record.id,
            user: &record.user,
            policies: &record.policies,
            label: record.label.as_deref(),
            expires_at,
        };
        println!("{}", serde_json::to_string(&out).unwrap_or_default());
    } else {
        println!("key:      {key}");
        println!("id:       {}", record.id);
        println!("user:     {}", record.user);
        println!("policies: {}", or_dash(&record.policies.join(", ")));
        println!("label:    {}", record.label.as_deref().unwrap_or("-"));
        println!(
            "expires:  {}",
            expires_at
                .as_deref()
                .unwrap_or("never (revoke it to end it)")
        );
        eprintln!(
            "Copy the key now: it is not shown again (only its SHA-256 is stored). Revoke it with `bitrouter key revoke {}`.",
            record.id
        );
    }
    0
}

/// Checks the policy ids given to `sign`: their syntax (`[A-Za-z0-9_.-]+`), and, when the
/// config is known, that `policies/` beside it defines each (a key naming a missing policy
/// would be refused on every request).
fn check_policies(ids: &[String], config: Option<&Config>) -> Result<(), String> {
    for id in ids {
        if !valid_policy_id(id) {
            return Err(format!(
                "`{id}` is not a policy id: use letters, digits, `_`, `.` and `-`"
            ));
        }
        if let Some(config) = config {
            if config.access.get(id).is_none() {
                let dir = config
                    .access
                    .dir()
                    .map_or_else(|| "policies/".to_string(), |d| d.display().to_string());
                return Err(format!(
                    "policy `{id}` is not defined (no {id}.yaml in {dir}); create it with `bitrouter policy create {id}`"
                ));
            }
        }
    }
    Ok(())
}

/// `--expires`: a duration from now (`30d`) or an RFC 3339 time; it must be in the future.
fn parse_expiry(spec: &str, now: SystemTime) -> Result<i64, String> {
    let spec = spec.trim();
    let at = match humantime::parse_duration(spec) {
        Ok(d) => now.checked_add(d).ok_or_else(|| {
            format!("--expires `{spec}` is too far in the future")
        })?,
        Err(_) => humantime::parse_rfc3339_weak(spec).map_err(|_| {
            format!(
                "--expires `{spec}` is neither a duration from now (30d, 12h) nor an RFC 3339 time (2027-01-01T00:00:00Z)"
            )
        })?,
    };
    if at <= now {
        return Err(format!(
            "--expires `{spec}` is not in the future ({}): a key must expire later than it is signed",
            format_time(unix_ms(at))
        ));
    }
    Ok(unix_ms(at))
}

/// One key as `list --json` prints it: the record (times in unix ms), its state now, and the
/// times in RFC 3339.
#[derive(Serialize)]
struct Listed<'a> {
    #[serde(flatten)]
    record: &'a KeyRecord,
    state: &'static str,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
    last_used_at: Option<String>,
}

fn list(config: Option<&Path>, db: Option<&str>, json: bool) -> i32 {
    let (url, _) = match resolve(config, db) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut store = match open(&url, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let records = match store.list() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let now_ms = unix_ms(SystemTime::now());
    if json {
        let listed: Vec<Listed<'_>> = records
            .iter()
            .map(|r| Listed {
                record: r,
                state: r.state(now_ms).as_str(),
                created_at: format_time(r.created_ms),
                expires_at: r.expires_ms.map(format_time),
                revoked_at: r.revoked_ms.map(format_time),
                last_used_at: r.last_used_ms.map(format_time),
            })
            .collect();
        println!("{}", serde_json::to_string(&listed).unwrap_or_default());
    } else {
        print!("{}", table(&records));
    }
    0
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `list`'s table: fixed columns (as wide as their longest value), `-` for none.
fn table(records: &[KeyRecord]) -> String {
    let time = |t: Option<i64>| t.map_or_else(|| "-".to_string(), format_time);
    let rows: Vec<[String; 8]> = records
        .iter()
        .map(|r| {
            [
                r.id.clone(),
                r.user.clone(),
                or_dash(r.label.as_deref().unwrap_or_default()).to_string(),
                or_dash(&r.policies.join(",")).to_string(),
                format_time(r.created_ms),
                time(r.expires_ms),
                time(r.revoked_ms),
                time(r.last_used_ms),
            ]
        })
        .collect();
    let header = [
        "ID",
        "USER",
        "LABEL",
        "POLICIES",
        "CREATED",
        "EXPIRES",
        "REVOKED",
        "LAST_USED",
    ];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 8]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push('\n');
        out
    };
    let mut out = line(header);
    for row in &rows {
        out.push_str(&line(row.each_ref().map(String::as_str)));
    }
    out
}

fn revoke(config: Option<&Path>, db: Option<&str>, id: &str) -> i32 {
    let (url, _) = match resolve(config, db) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut store = match open(&url, false) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match store.revoke(id, unix_ms(SystemTime::now())) {
        Ok(Revoked::Done) => {
            println!("revoked {id}");
            0
        }
        Ok(Revoked::Already) => {
            println!("{id} was already revoked");
            0
        }
        Ok(Revoked::Unknown) => {
            eprintln!("error: no key with id `{id}` (see `bitrouter key list`)");
            1
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// The database named by `--db`, else by the configuration's `database:` (resolved as
/// `bitrouter spend` does), with the configuration when one was loaded; on failure, prints why
/// and gives the exit code.
fn resolve(config: Option<&Path>, db: Option<&str>) -> Result<(LedgerUrl, Option<Config>), i32> {
    if let Some(db) = db {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        return LedgerUrl::parse(db, &cwd).map(|u| (u, None)).map_err(|e| {
            eprintln!("error: {e}");
            1
        });
    }
    let config = super::load_config(config).map_err(|e| {
        super::report_config_error(&e);
        INVALID_CONFIG
    })?;
    match LedgerUrl::from_config(&config, &bitrouter_config::ProcessEnv) {
        Ok(Some(url)) => Ok((url, Some(config))),
        Ok(None) => {
            eprintln!(
                "error: virtual keys live in the database, and it is off (database.enabled: false); enable it or name one with --db"
            );
            Err(1)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(INVALID_CONFIG)
        }
    }
}

/// Opens the key store; `create` makes a missing SQLite file (`sign` only).
fn open(url: &LedgerUrl, create: bool) -> Result<KeyStore, i32> {
    KeyStore::open(url, create).map_err(|e| {
        match e {
            LedgerError::Missing(path) => eprintln!(
                "error: no database at {}: no key has been signed there yet (`bitrouter key sign` creates it)",
                path.display()
            ),
            e => eprintln!("error: {e}"),
        }
        1
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn expiry_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        assert_eq!(parse_expiry("30d", now), Ok(31 * 86_400_000));
        assert_eq!(
            parse_expiry("1970-01-03T00:00:00Z", now),
            Ok(2 * 86_400_000)
        );
        let past = parse_expiry("1970-01-01T12:00:00Z", now).unwrap_err();
        assert!(past.contains("not in the future"), "{past}");
        assert!(parse_expiry("0s", now).is_err());
        assert!(parse_expiry("next week", now)
            .unwrap_err()
            .contains("RFC 3339"));
    }

    #[test]
    fn policy_syntax() {
        assert!(check_policies(&["team-a".into(), "x.y_z".into()], None).is_ok());
        let e = check_policies(&["a,b".into()], None).unwrap_err();
        assert!(e.contains("`a,b`"), "{e}");
    }

    #[test]
    fn table_columns() {
        let r = KeyRecord {
            id: "vk_0123456789abcdef".into(),
            user: "ann".into(),
            label: None,
            policies: vec!["a".into(), "b".into()],
            created_ms: 86_400_000,
            expires_ms: None,
            revoked_ms: Some(2 * 86_400_000),
            last_used_ms: None,
        };
        let t = table(&[r]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with("ID                   USER  LABEL  POLICIES"),
            "{t}"
        );
        assert!(
            lines[1].starts_with("vk_0123456789abcdef  ann   -      a,b "),
            "{t}"
        );
        assert!(lines[1].contains("1970-01-02T00:00:00Z  -"), "{t}");
        assert!(lines[1].ends_with("1970-01-03T00:00:00Z  -"), "{t}");
    }
}
