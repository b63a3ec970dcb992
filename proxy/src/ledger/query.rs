//! What `bitrouter spend` and `bitrouter status --requests` ask of the ledger, shared by both
//! databases: the SQL differs only in the day expression and the placeholders.

use serde::Serialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How `spend` groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Grouping {
    /// The model the client asked for.
    Model,
    /// The provider that answered.
    Provider,
    /// The caller's virtual key.
    Key,
    /// The user of the caller's key.
    User,
    /// The UTC day the request arrived (`YYYY-MM-DD`).
    Day,
}

impl Grouping {
    pub fn as_str(self) -> &'static str {
        match self {
            Grouping::Model => "model",
            Grouping::Provider => "provider",
            Grouping::Key => "key",
            Grouping::User => "user",
            Grouping::Day => "day",
        }
    }
}

/// One group's totals (or, in [`SpendReport::total`], all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpendRow {
    /// The model, provider, key, user or day; `null` for requests without one (e.g. no
    /// provider answered, no key) and for the total.
    pub group: Option<String>,
    pub requests: u64,
    pub input_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// The summed cost of the requests whose cost is known, in micro-USD. Requests of unknown
    /// cost add nothing here and are counted in `unknown_cost_requests` instead.
    pub cost_micro_usd: f64,
    pub unknown_cost_requests: u64,
}

impl SpendRow {
    fn add(&mut self, r: &SpendRow) {
        self.requests += r.requests;
        self.input_tokens += r.input_tokens;
        self.cache_read_tokens += r.cache_read_tokens;
        self.cache_write_tokens += r.cache_write_tokens;
        self.output_tokens += r.output_tokens;
        self.reasoning_tokens += r.reasoning_tokens;
        self.cost_micro_usd += r.cost_micro_usd;
        self.unknown_cost_requests += r.unknown_cost_requests;
    }
}

/// `spend`'s answer: one row per group and their total.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SpendReport {
    pub rows: Vec<SpendRow>,
    pub total: SpendRow,
}

impl SpendReport {
    /// Orders the groups (days in date order, anything else by cost, then requests, then name)
    /// and adds them up.
    pub(crate) fn from_rows(mut rows: Vec<SpendRow>, by: Grouping) -> SpendReport {
        if by == Grouping::Day {
            rows.sort_by(|a, b| a.group.cmp(&b.group));
        } else {
            rows.sort_by(|a, b| {
                b.cost_micro_usd
                    .total_cmp(&a.cost_micro_usd)
                    .then(b.requests.cmp(&a.requests))
                    .then(a.group.cmp(&b.group))
            });
        }
        let mut total = SpendRow::default();
        for r in &rows {
            total.add(r);
        }
        SpendReport { rows, total }
    }
}

/// The SQL dialects the ledger speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// The `spend` query: the group, then the nine figures, for `since <= time_ms < until` (the
/// two bound parameters).
pub(crate) fn spend_sql(by: Grouping, dialect: Dialect) -> String {
    let group = match (by, dialect) {
        (Grouping::Model, _) => "model",
        (Grouping::Provider, _) => "provider",
        (Grouping::Key, _) => "key_id",
        (Grouping::User, _) => "user_id",
        (Grouping::Day, Dialect::Sqlite) => "strftime('%Y-%m-%d', time_ms / 1000, 'unixepoch')",
        (Grouping::Day, Dialect::Postgres) => {
            "to_char(to_timestamp(time_ms / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        }
    };
    // PostgreSQL sums BIGINT into NUMERIC: cast back.
    let (int, params) = match dialect {
        Dialect::Sqlite => ("", ("?1", "?2")),
        Dialect::Postgres => ("::BIGINT", ("$1", "$2")),
    };
    format!(
        "SELECT {group}, COUNT(*){int}, \
         COALESCE(SUM(input_tokens), 0){int}, COALESCE(SUM(cache_read_tokens), 0){int}, \
         COALESCE(SUM(cache_write_tokens), 0){int}, COALESCE(SUM(output_tokens), 0){int}, \
         COALESCE(SUM(reasoning_tokens), 0){int}, COALESCE(SUM(cost_micro_usd), 0), \
         COALESCE(SUM(CASE WHEN cost_micro_usd IS NULL THEN 1 ELSE 0 END), 0){int} \
         FROM requests WHERE time_ms >= {} AND time_ms < {} GROUP BY 1",
        params.0, params.1
    )
}

/// The last `n` rows, newest first.
pub(crate) fn recent_sql(dialect: Dialect) -> String {
    let limit = match dialect {
        Dialect::Sqlite => "?1",
        Dialect::Postgres => "$1",
    };
    format!(
        "SELECT {} FROM requests ORDER BY time_ms DESC, id DESC LIMIT {limit}",
        super::row::COLUMNS
    )
}

/// Unix milliseconds of `t` (0 before 1970).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A `--since`/`--until` value as unix milliseconds: a duration back from `now` (`24h`, `7d`,
/// `90m`, `1h 30m`), an RFC 3339 time (`2026-12-01T00:00:00Z`), or `now`.
///
/// humantime parses both forms (it is small and well kept, and nothing else here needs a
/// calendar library).
pub fn parse_time(spec: &str, now: SystemTime) -> Result<i64, String> {
    let spec = spec.trim();
    if spec == "now" {
        return Ok(unix_ms(now));
    }
    if let Ok(ago) = humantime::parse_duration(spec) {
        return Ok(unix_ms(now.checked_sub(ago).unwrap_or(UNIX_EPOCH)));
    }
    match humantime::parse_rfc3339_weak(spec) {
        Ok(t) => Ok(unix_ms(t)),
        Err(_) => Err(format!(
            "`{spec}` is neither a duration (24h, 7d, 30m) nor an RFC 3339 time (2026-12-01T00:00:00Z)"
        )),
    }
}

/// `ms` as an RFC 3339 UTC time to the second (`2026-12-02T08:30:00Z`).
pub fn format_time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let now = UNIX_EPOCH + Duration::from_secs(10 * 86400);
        assert_eq!(parse_time("24h", now), Ok(9 * 86_400_000));
        assert_eq!(parse_time("7d", now), Ok(3 * 86_400_000));
        assert_eq!(parse_time("now", now), Ok(10 * 86_400_000));
        assert_eq!(parse_time("1970-01-02T00:00:00Z", now), Ok(86_400_000));
        assert_eq!(parse_time("1970-01-02T00:00:01.5Z", now), Ok(86_401_500));
        assert!(parse_time("yesterday", now).is_err());
        assert_eq!(format_time(86_401_500), "1970-01-02T00:00:01Z");
    }

    #[test]
    fn totals_add_up_and_groups_are_ordered() {
        let row = |g: &str, requests, cost| SpendRow {
            group: Some(g.into()),
            requests,
            input_tokens: requests * 10,
            cost_micro_usd: cost,
            unknown_cost_requests: 1,
            ..SpendRow::default()
        };
        let r = SpendReport::from_rows(
            vec![row("b", 1, 5.0), row("a", 2, 5.0), row("c", 9, 1.0)],
            Grouping::Model,
        );
        let groups: Vec<_> = r.rows.iter().map(|r| r.group.as_deref()).collect();
        assert_eq!(groups, [Some("a"), Some("b"), Some("c")]);
        assert_eq!(r.total.requests, 12);
        assert_eq!(r.total.input_tokens, 120);
        assert_eq!(r.total.cost_micro_usd, 11.0);
        assert_eq!(r.total.unknown_cost_requests, 3);
        assert_eq!(r.total.group, None);
        let days = SpendReport::from_rows(
            vec![row("2026-12-02", 1, 9.0), row("2026-12-01", 1, 1.0)],
            Grouping::Day,
        );
        assert_eq!(days.rows[0].group.as_deref(), Some("2026-12-01"));
    }
}
