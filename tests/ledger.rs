//! The request ledger: migrations, the batch writer (outages, a full queue), the spend queries
//! on SQLite and on a real PostgreSQL server, and the `spend` / `status --requests` verbs of the
//! real binary; the virtual keys kept in the same database (the key store and the cache the
//! request path reads).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/postgres.rs"]
mod pg;

use bitrouter_proxy::keys::{hash_hex, hash_key, KeyCache, KeyLookup, KeyState, KeyStore, Revoked};
use bitrouter_proxy::ledger::{
    Grouping, Ledger, LedgerOptions, LedgerReader, LedgerRow, LedgerUrl, SpendRow,
};
use pg::PgCluster;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DAY: i64 = 86_400_000;
/// 2026-12-01T00:00:00Z.
const DEC1: i64 = 1_796_083_200_000;
const FLUSH: Duration = Duration::from_secs(30);

fn row(i: i64, model: &str, provider: Option<&str>, cost: Option<f64>) -> LedgerRow {
    LedgerRow {
        time_ms: DEC1 + i * 3_600_000,
        request_id: format!("req-{i}"),
        key_id: (i % 2 == 0).then(|| "key-even".to_string()),
        user_id: None,
        inbound: "anthropic",
        model: model.into(),
        provider: provider.map(String::from),
        upstream_model: provider.map(|_| format!("{model}-upstream")),
        account: provider.map(|_| "account-1".into()),
        attempts: 1,
        status: if provider.is_some() { 200 } else { 502 },
        stream: i % 3 == 0,
        input_tokens: 100 + i as u64,
        cache_read_tokens: 10,
        cache_write_tokens: 5,
        output_tokens: 20,
        reasoning_tokens: 7,
        usage_origin: if cost.is_some() {
            "provider_reported"
        } else {
            "unknown"
        },
        cost_micro_usd: cost,
        cost_unknown_reason: cost.is_none().then(|| "no price for the model".into()),
        ttfb_ms: Some(12),
        duration_ms: 345,
        error_kind: provider.is_none().then(|| "upstream_unreachable".into()),
    }
}

/// 30 rows over 30 hours from 2026-12-01T00:00Z (so two UTC days): three models, two
/// providers, some without a provider and some of unknown cost.
fn sample() -> Vec<LedgerRow> {
    (0..30)
        .map(|i| match i % 5 {
            0 => row(i, "gpt-4o", Some("openai"), Some(1000.5)),
            1 => row(i, "gpt-4o", Some("openai"), None),
            2 => row(i, "claude", Some("anthropic"), Some(250.25)),
            3 => row(i, "claude", None, None),
            _ => row(i, "gemini", Some("google"), Some(0.0)),
        })
        .collect()
}

fn write_all(url: &LedgerUrl, rows: &[LedgerRow]) -> Ledger {
    let ledger = Ledger::open(url, LedgerOptions::default()).unwrap();
    for r in rows {
        ledger.record(r.clone());
    }
    assert!(ledger.flush_blocking(FLUSH), "the rows were not written");
    assert_eq!(ledger.dropped(), 0);
    ledger
}

fn sqlite_url(dir: &Path) -> LedgerUrl {
    LedgerUrl::Sqlite(dir.join("ledger.db"))
}

/// Everything the queries must say about [`sample`], on either database.
fn check_queries(url: &LedgerUrl) {
    let rows = sample();
    let mut reader = LedgerReader::open(url).unwrap();
    // Round trip: the newest rows come back field for field.
    let recent = reader.recent(5).unwrap();
    let expected: Vec<LedgerRow> = rows.iter().rev().take(5).cloned().collect();
    assert_eq!(recent, expected);
    assert_eq!(reader.recent(1000).unwrap().len(), 30);

    let all = (DEC1 - DAY, DEC1 + 2 * DAY);
    let mut sum = SpendRow::default();
    for r in &rows {
        sum.requests += 1;
        sum.input_tokens += r.input_tokens;
        sum.cache_read_tokens += r.cache_read_tokens;
        sum.cache_write_tokens += r.cache_write_tokens;
        sum.output_tokens += r.output_tokens;
        sum.reasoning_tokens += r.reasoning_tokens;
        sum.cost_micro_usd += r.cost_micro_usd.unwrap_or(0.0);
        sum.unknown_cost_requests += u64::from(r.cost_micro_usd.is_none());
    }
    for by in [
        Grouping::Model,
        Grouping::Provider,
        Grouping::Key,
        Grouping::User,
        Grouping::Day,
    ] {
        let report = reader.spend(all.0, all.1, by).unwrap();
        let mut total = report.total.clone();
        // Sums of floats in another order: compare the cost separately.
        assert!(
            (total.cost_micro_usd - sum.cost_micro_usd).abs() < 1e-6,
            "{by:?}: {report:?}"
        );
        total.cost_micro_usd = sum.cost_micro_usd;
        assert_eq!(total, sum, "{by:?}");
        let requests: u64 = report.rows.iter().map(|r| r.requests).sum();
        assert_eq!(requests, 30, "{by:?}");
    }

    let by_model = reader.spend(all.0, all.1, Grouping::Model).unwrap();
    let groups: Vec<_> = by_model.rows.iter().map(|r| r.group.as_deref()).collect();
    assert_eq!(groups, [Some("gpt-4o"), Some("claude"), Some("gemini")]);
    let gpt = &by_model.rows[0];
    assert_eq!((gpt.requests, gpt.unknown_cost_requests), (12, 6));
    assert!((gpt.cost_micro_usd - 6.0 * 1000.5).abs() < 1e-6);
    // The free model costs 0 and is known; nothing of it is unknown.
    let gemini = &by_model.rows[2];
    assert_eq!(
        (gemini.cost_micro_usd, gemini.unknown_cost_requests),
        (0.0, 0)
    );

    let by_provider = reader.spend(all.0, all.1, Grouping::Provider).unwrap();
    let none = by_provider.rows.iter().find(|r| r.group.is_none()).unwrap();
    assert_eq!((none.requests, none.unknown_cost_requests), (6, 6));

    let by_key = reader.spend(all.0, all.1, Grouping::Key).unwrap();
    let even = by_key
        .rows
        .iter()
        .find(|r| r.group.as_deref() == Some("key-even"));
    assert_eq!(even.unwrap().requests, 15);

    // Hours 0..23 fall on Dec 1 (UTC), 24..29 on Dec 2.
    let by_day = reader.spend(all.0, all.1, Grouping::Day).unwrap();
    let days: Vec<_> = by_day
        .rows
        .iter()
        .map(|r| (r.group.as_deref(), r.requests))
        .collect();
    assert_eq!(days, [(Some("2026-12-01"), 24), (Some("2026-12-02"), 6)]);

    // --since/--until: since is included, until is not.
    let window = reader
        .spend(DEC1 + 2 * 3_600_000, DEC1 + 5 * 3_600_000, Grouping::Model)
        .unwrap();
    assert_eq!(window.total.requests, 3);
    let empty = reader
        .spend(DEC1 + 2 * DAY, DEC1 + 3 * DAY, Grouping::Model)
        .unwrap();
    assert_eq!((empty.rows.len(), empty.total.requests), (0, 0));
}

#[test]
fn sqlite_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    for _ in 0..2 {
        let ledger = Ledger::open(&url, LedgerOptions::default()).unwrap();
        drop(ledger);
        let mut reader = LedgerReader::open(&url).unwrap();
        assert_eq!(reader.schema_version().unwrap(), 2);
    }
    // Reading never creates a database.
    let missing = LedgerUrl::Sqlite(dir.path().join("nope.db"));
    let e = LedgerReader::open(&missing).err().unwrap();
    assert!(e.to_string().contains("no ledger database at"), "{e}");
    assert!(!dir.path().join("nope.db").exists());
}

#[test]
fn sqlite_rows_and_spend() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    write_all(&url, &sample());
    check_queries(&url);
}

#[test]
fn postgres_migrations_rows_and_spend() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = LedgerUrl::parse(&cluster.url(), Path::new("/")).unwrap();
    drop(Ledger::open(&url, LedgerOptions::default()).unwrap());
    write_all(&url, &sample());
    check_queries(&url);
    assert_eq!(
        LedgerReader::open(&url).unwrap().schema_version().unwrap(),
        2
    );
}

/// The writer survives the server going away (rows wait, then land) and a server that is down
/// when the router starts (`Ledger::start`, which connects and migrates once it can).
#[test]
fn postgres_outage_and_late_start() {
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    let url = LedgerUrl::parse(&cluster.url(), Path::new("/")).unwrap();
    let rows = sample();
    let ledger = Ledger::open(&url, LedgerOptions::default()).unwrap();
    for r in &rows[..10] {
        ledger.record(r.clone());
    }
    assert!(ledger.flush_blocking(FLUSH));
    cluster.stop();
    for r in &rows[10..20] {
        ledger.record(r.clone());
    }
    assert!(!ledger.flush_blocking(Duration::from_millis(700)));
    assert_eq!((ledger.written(), ledger.queued()), (10, 10));
    cluster.restart();
    assert!(ledger.flush_blocking(FLUSH), "queued {}", ledger.queued());
    assert_eq!((ledger.written(), ledger.dropped()), (20, 0));

    cluster.stop();
    let e = Ledger::open(&url, LedgerOptions::default()).err().unwrap();
    assert!(!e.is_config(), "{e}");
    assert!(!e.to_string().contains("password"), "{e}");
    let late = Ledger::start(&url, LedgerOptions::default());
    for r in &rows[20..] {
        late.record(r.clone());
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(late.written(), 0);
    cluster.restart();
    assert!(late.flush_blocking(FLUSH), "queued {}", late.queued());
    check_queries(&url);
}

/// A SQLite file locked by another writer: rows wait, then land.
#[test]
fn sqlite_lock_outage() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let rows = sample();
    let ledger = Ledger::open(&url, LedgerOptions::default()).unwrap();
    let blocker = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for r in &rows {
        ledger.record(r.clone());
    }
    assert!(!ledger.flush_blocking(Duration::from_millis(1500)));
    assert_eq!((ledger.written(), ledger.queued()), (0, 30));
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    assert!(ledger.flush_blocking(FLUSH), "queued {}", ledger.queued());
    assert_eq!(ledger.written(), 30);
    check_queries(&url);
}

/// Beyond the queue's bound rows are dropped and counted, never silently lost: what was
/// recorded is exactly what was written plus what was dropped.
#[test]
fn full_queue_drops_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let options = LedgerOptions {
        queue_capacity: 8,
        ..LedgerOptions::default()
    };
    let ledger = Ledger::open(&url, options).unwrap();
    let blocker = rusqlite::Connection::open(dir.path().join("ledger.db")).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for i in 0..100 {
        ledger.record(row(i, "m", Some("p"), Some(1.0)));
    }
    let dropped = ledger.dropped();
    assert!(dropped >= 100 - 8 - 8, "dropped {dropped}");
    blocker.execute_batch("COMMIT").unwrap();
    drop(blocker);
    assert!(ledger.flush_blocking(FLUSH));
    assert_eq!(ledger.written() + ledger.dropped(), 100);
    let mut reader = LedgerReader::open(&url).unwrap();
    assert_eq!(reader.recent(1000).unwrap().len() as u64, ledger.written());
}

fn run(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_bitrouter"))
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_spend_and_status_requests() {
    let dir = tempfile::tempdir().unwrap();
    // database.url relative to the config file's folder, not to the working directory.
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    std::fs::write(
        conf.join("bitrouter.yaml"),
        "database:\n  url: sqlite://./data/usage.db\n",
    )
    .unwrap();
    let url = LedgerUrl::Sqlite(conf.join("data/usage.db"));
    write_all(&url, &sample());
    let cfg = conf.join("bitrouter.yaml");
    let cfg = cfg.to_str().unwrap();

    let (code, out, err) = run(
        &[
            "spend",
            "-c",
            cfg,
            "--since",
            "2026-11-30T00:00:00Z",
            "--until",
            "2026-12-03T00:00:00Z",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let keys = [
        "group",
        "requests",
        "input_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cost_micro_usd",
        "unknown_cost_requests",
    ];
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["rows", "total"]);
    for r in v["rows"].as_array().unwrap().iter().chain([&v["total"]]) {
        let mut got: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = keys.to_vec();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    }
    assert_eq!(v["rows"][0]["group"], "gpt-4o");
    assert_eq!(v["total"]["requests"], 30);
    assert_eq!(v["total"]["unknown_cost_requests"], 12);

    // --db instead of the config, grouped by day, as a table.
    let db = format!("sqlite://{}", conf.join("data/usage.db").display());
    let (code, out, err) = run(
        &[
            "spend",
            "--db",
            &db,
            "--since",
            "2026-11-30T00:00:00Z",
            "--until",
            "2026-12-01T12:00:00Z",
            "--by",
            "day",
        ],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "spend from 2026-11-30T00:00:00Z to 2026-12-01T12:00:00Z by day"
    );
    assert!(lines[1].starts_with("DAY  "), "{out}");
    assert!(lines[2].starts_with("2026-12-01  "), "{out}");
    assert!(lines[3].starts_with("TOTAL       "), "{out}");
    assert!(lines[3].contains(" 12 "), "{out}");

    // The default window (the last 24 h) holds none of these 2026-12 rows... unless the clock
    // says otherwise; only the shape is checked.
    let (code, _, err) = run(&["spend", "-c", cfg], dir.path());
    assert_eq!(code, 0, "{err}");

    let (code, out, err) = run(
        &["status", "-c", cfg, "--requests", "-n", "3", "--json"],
        dir.path(),
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // Oldest first, the newest last.
    assert_eq!(rows[2]["request_id"], "req-29");
    assert_eq!(rows[0]["request_id"], "req-27");
    assert_eq!(rows[2]["inbound"], "anthropic");
    assert_eq!(rows[2]["input_tokens"], 129);

    let (code, out, err) = run(&["status", "-c", cfg, "--requests"], dir.path());
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 21, "{out}");
    assert!(out.lines().next().unwrap().starts_with("TIME "), "{out}");

    // Errors: a missing database, a bad URL, a bad time.
    let (code, _, err) = run(&["spend", "--db", "sqlite://./absent.db"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("no ledger database at"), "{err}");
    let (code, _, err) = run(&["spend", "--db", "mysql://x"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("not a database URL"), "{err}");
    let (code, _, err) = run(&["spend", "-c", cfg, "--since", "last tuesday"], dir.path());
    assert_eq!(code, 1);
    assert!(err.contains("RFC 3339"), "{err}");
}

/// Everything the key store must do, on either database: sign, list, revoke, the hashes the
/// cache loads, last-used times that only move forward, and a fingerprint that changes with
/// every sign and revocation (and not with last-used times). `dump` gives every stored text of
/// the table, to prove the key itself is never stored.
fn check_key_store(url: &LedgerUrl, dump: impl Fn() -> String) {
    let mut store = KeyStore::open(url, true).unwrap();
    let empty = store.fingerprint().unwrap();
    assert_eq!(empty.keys, 0);
    let (k1, r1) = store
        .sign(
            "ann",
            &["team-a".into(), "cap.1".into()],
            Some("ci bot"),
            Some(DEC1 + DAY),
            DEC1,
        )
        .unwrap();
    let after_one = store.fingerprint().unwrap();
    assert_ne!(after_one, empty);
    let (k2, r2) = store.sign("bob", &[], None, None, DEC1 + 1).unwrap();
    assert!(k1.starts_with("brvk_") && k2.starts_with("brvk_"));
    assert_eq!(r1.policies, ["team-a", "cap.1"]);
    assert_eq!(r1.label.as_deref(), Some("ci bot"));
    assert_eq!((r1.created_ms, r1.expires_ms), (DEC1, Some(DEC1 + DAY)));
    assert_eq!(store.list().unwrap(), [r1.clone(), r2.clone()]);

    // Only the hash is stored.
    let stored = dump();
    assert!(!stored.contains(&k1) && !stored.contains(&k2), "{stored}");
    assert!(stored.contains(&hash_hex(&hash_key(&k1))), "{stored}");

    let all = store.all_with_hashes().unwrap();
    assert_eq!(all.len(), 2);
    let by_hash = |k: &str| {
        all.iter()
            .find(|(h, _)| *h == hash_key(k))
            .map(|(_, r)| r.clone())
            .unwrap()
    };
    assert_eq!(by_hash(&k1), r1);
    assert_eq!(by_hash(&k2), r2);

    let before_revoke = store.fingerprint().unwrap();
    assert_eq!(store.revoke(&r1.id, DEC1 + 10).unwrap(), Revoked::Done);
    let revoked = store.fingerprint().unwrap();
    assert_ne!(revoked, before_revoke);
    assert_eq!(store.revoke(&r1.id, DEC1 + 20).unwrap(), Revoked::Already);
    assert_eq!(
        store.revoke("vk_0000000000000000", DEC1).unwrap(),
        Revoked::Unknown
    );
    let listed = store.list().unwrap();
    // The first revocation time stays.
    assert_eq!(listed[0].revoked_ms, Some(DEC1 + 10));
    assert_eq!(listed[0].state(DEC1 + 11), KeyState::Revoked);
    assert_eq!(listed[1].revoked_ms, None);

    // Last-used times: the later one wins, whatever the order; unknown ids are ignored.
    store
        .touch(&[(r2.id.clone(), DEC1 + 100), ("vk_unknown".into(), DEC1 + 5)])
        .unwrap();
    store.touch(&[(r2.id.clone(), DEC1 + 50)]).unwrap();
    store.touch(&[]).unwrap();
    let listed = store.list().unwrap();
    assert_eq!(listed[1].last_used_ms, Some(DEC1 + 100));
    assert_eq!(listed[0].last_used_ms, None);
    assert_eq!(store.fingerprint().unwrap(), revoked);
}

#[test]
fn sqlite_key_store() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    // Opening for reading does not create the database.
    assert!(KeyStore::open(&url, false).is_err());
    assert!(!dir.path().join("ledger.db").exists());
    let db = dir.path().join("ledger.db");
    check_key_store(&url, || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut st = conn
            .prepare(
                "SELECT id, key_hash, user_id, COALESCE(label, ''), policies FROM virtual_keys",
            )
            .unwrap();
        let rows = st
            .query_map([], |r| {
                Ok((0..5)
                    .map(|i| r.get::<_, String>(i))
                    .collect::<Result<Vec<_>, _>>()?
                    .join(" "))
            })
            .unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    });
    // The key store and the ledger share the database.
    assert_eq!(
        LedgerReader::open(&url).unwrap().schema_version().unwrap(),
        2
    );
}

#[test]
fn postgres_key_store() {
    let Some(cluster) = PgCluster::start() else {
        return;
    };
    let url = LedgerUrl::parse(&cluster.url(), Path::new("/")).unwrap();
    let conn_url = cluster.url();
    check_key_store(&url, || {
        let mut client = postgres::Client::connect(&conn_url, postgres::NoTls).unwrap();
        client
            .query(
                "SELECT id || ' ' || key_hash || ' ' || user_id || ' ' || COALESCE(label, '') || ' ' || policies FROM virtual_keys",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
            .join("\n")
    });
}

/// Polls `f` every 20 ms until it gives a value or `limit` passes.
fn within<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn state_of(cache: &KeyCache, key: &str, now_ms: i64) -> Option<KeyState> {
    match cache.lookup(key) {
        KeyLookup::Found(k) => Some(k.state(now_ms)),
        _ => None,
    }
}

/// The request path's view of keys on a PostgreSQL several routers share: a key signed and a
/// key revoked through another connection (another router's `bitrouter key`) take effect
/// within 2 s; with the database down the keys read before stay in service, and once it is
/// back changes flow again.
#[test]
fn postgres_key_cache_follows_other_connections() {
    let Some(mut cluster) = PgCluster::start() else {
        return;
    };
    let url = LedgerUrl::parse(&cluster.url(), Path::new("/")).unwrap();
    let mut admin = KeyStore::open(&url, true).unwrap();
    let (early, early_rec) = admin.sign("ann", &[], None, None, DEC1).unwrap();
    let cache = KeyCache::start(url.clone());
    let now = DEC1 + 1000;
    assert_eq!(
        within(Duration::from_secs(10), || state_of(&cache, &early, now)),
        Some(KeyState::Active)
    );

    // Signed and revoked through a second connection: seen within 2 s each.
    let mut other = KeyStore::open(&url, false).unwrap();
    let (late, _) = other.sign("bob", &[], None, None, DEC1 + 1).unwrap();
    let t = Instant::now();
    assert_eq!(
        within(Duration::from_secs(2), || state_of(&cache, &late, now)),
        Some(KeyState::Active),
        "a new key was not seen within 2 s"
    );
    let signed_after = t.elapsed();
    assert_eq!(
        other.revoke(&early_rec.id, DEC1 + 2).unwrap(),
        Revoked::Done
    );
    let t = Instant::now();
    assert_eq!(
        within(Duration::from_secs(2), || state_of(&cache, &early, now)
            .filter(|s| *s == KeyState::Revoked)),
        Some(KeyState::Revoked),
        "a revocation was not seen within 2 s"
    );
    eprintln!(
        "new key seen after {signed_after:?}, revocation after {:?}",
        t.elapsed()
    );

    // A use noted by the request path reaches the database (at stop, at the latest).
    if let KeyLookup::Found(k) = cache.lookup(&late) {
        k.note_used(DEC1 + 5000);
    }

    // The database goes away: the keys read before still answer.
    cluster.stop();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(state_of(&cache, &late, now), Some(KeyState::Active));
    assert_eq!(state_of(&cache, &early, now), Some(KeyState::Revoked));
    cluster.restart();
    let mut other = KeyStore::open(&url, false).unwrap();
    let late_id = other
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.user == "bob")
        .unwrap()
        .id;
    assert_eq!(other.revoke(&late_id, DEC1 + 3).unwrap(), Revoked::Done);
    // Reconnect backoff (at most 5 s) plus a refresh.
    assert_eq!(
        within(Duration::from_secs(10), || state_of(&cache, &late, now)
            .filter(|s| *s == KeyState::Revoked)),
        Some(KeyState::Revoked)
    );
    cache.stop();
    let bob = other
        .list()
        .unwrap()
        .into_iter()
        .find(|r| r.id == late_id)
        .unwrap();
    assert_eq!(bob.last_used_ms, Some(DEC1 + 5000));
}
