//! `bitrouter spend` and `bitrouter status --requests`: read the ledger directly (the router
//! need not be running). Output is the same on a terminal and in a pipe: no colours, fixed
//! columns.

use crate::ledger::{
    format_time, parse_time, unix_ms, Grouping, LedgerReader, LedgerRow, LedgerUrl, SpendReport,
    SpendRow,
};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Exit code of an invalid configuration (as `serve`).
const INVALID_CONFIG: i32 = 2;

/// `bitrouter spend`.
pub fn spend(
    config: Option<&Path>,
    db: Option<&str>,
    since: &str,
    until: Option<&str>,
    by: Grouping,
    json: bool,
) -> i32 {
    let now = SystemTime::now();
    let window = parse_time(since, now).and_then(|s| {
        let u = until.map_or(Ok(unix_ms(now)), |u| parse_time(u, now))?;
        Ok((s, u))
    });
    let (since_ms, until_ms) = match window {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let mut reader = match open(config, db) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let report = match reader.spend(since_ms, until_ms, by) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{}", spend_table(&report, by, since_ms, until_ms));
    }
    0
}

/// `bitrouter status --requests`: the last `n` requests, oldest first (like a log's tail).
pub fn requests(config: Option<&Path>, db: Option<&str>, n: usize, json: bool) -> i32 {
    let mut reader = match open(config, db) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let mut rows = match reader.recent(n) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    rows.reverse();
    if json {
        println!("{}", serde_json::to_string(&rows).unwrap_or_default());
    } else {
        print!("{}", requests_table(&rows));
    }
    0
}

/// The ledger named by `--db`, else by the configuration's `database:`; on failure, prints why
/// and gives the exit code.
fn open(config: Option<&Path>, db: Option<&str>) -> Result<LedgerReader, i32> {
    let url = match db {
        Some(db) => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
            LedgerUrl::parse(db, &cwd).map_err(|e| {
                eprintln!("error: {e}");
                1
            })?
        }
        None => {
            let config = super::load_config(config).map_err(|e| {
                super::report_config_error(&e);
                INVALID_CONFIG
            })?;
            match LedgerUrl::from_config(&config, &bitrouter_config::ProcessEnv) {
                Ok(Some(url)) => url,
                Ok(None) => {
                    eprintln!(
                        "error: the ledger is off (database.enabled: false): nothing is recorded"
                    );
                    return Err(1);
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    return Err(INVALID_CONFIG);
                }
            }
        }
    };
    LedgerReader::open(&url).map_err(|e| {
        eprintln!("error: {e}");
        1
    })
}

/// USD with six decimals (a micro-dollar is the unit prices are written in).
fn usd(micro: f64) -> String {
    format!("{:.6}", micro / 1_000_000.0)
}

fn spend_table(report: &SpendReport, by: Grouping, since_ms: i64, until_ms: i64) -> String {
    let label = |r: &SpendRow| r.group.clone().unwrap_or_else(|| "-".into());
    let width = report
        .rows
        .iter()
        .map(|r| label(r).chars().count())
        .chain([by.as_str().len(), "TOTAL".len()])
        .max()
        .unwrap_or(5);
    let mut out = format!(
        "spend from {} to {} by {}\n",
        format_time(since_ms),
        format_time(until_ms),
        by.as_str()
    );
    let line = |name: &str, r: &SpendRow| {
        format!(
            "{name:<width$}  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {:>14}  {:>12}\n",
            r.requests,
            r.input_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            usd(r.cost_micro_usd),
            r.unknown_cost_requests,
        )
    };
    out.push_str(&format!(
        "{:<width$}  {:>8}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}  {:>14}  {:>12}\n",
        by.as_str().to_uppercase(),
        "REQUESTS",
        "INPUT",
        "CACHE_READ",
        "CACHE_WRITE",
        "OUTPUT",
        "REASONING",
        "COST_USD",
        "UNKNOWN_COST"
    ));
    for r in &report.rows {
        out.push_str(&line(&label(r), r));
    }
    out.push_str(&line("TOTAL", &report.total));
    if report.total.unknown_cost_requests > 0 {
        out.push_str(&format!(
            "{} request(s) of unknown cost are not in COST_USD (a missing price or no usage reported)\n",
            report.total.unknown_cost_requests
        ));
    }
    out
}

fn requests_table(rows: &[LedgerRow]) -> String {
    let mut out = format!(
        "{:<20}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>12}  {:>8}  {}\n",
        "TIME",
        "STATUS",
        "INPUT",
        "CACHE_R",
        "CACHE_W",
        "OUTPUT",
        "COST_USD",
        "MS",
        "MODEL -> PROVIDER"
    );
    for r in rows {
        let cost = r.cost_micro_usd.map_or_else(|| "unknown".to_string(), usd);
        let route = match (&r.provider, &r.upstream_model) {
            (Some(p), Some(m)) => format!("{} -> {p}/{m}", r.model),
            (Some(p), None) => format!("{} -> {p}", r.model),
            (None, _) => format!("{} -> -", r.model),
        };
        out.push_str(&format!(
            "{:<20}  {:>6}  {:>9}  {:>9}  {:>9}  {:>9}  {:>12}  {:>8}  {route}\n",
            format_time(r.time_ms),
            r.status,
            r.input_tokens,
            r.cache_read_tokens,
            r.cache_write_tokens,
            r.output_tokens,
            cost,
            r.duration_ms,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_have_fixed_columns() {
        let report = SpendReport {
            rows: vec![SpendRow {
                group: Some("gpt-4o".into()),
                requests: 2,
                cost_micro_usd: 1500.0,
                ..SpendRow::default()
            }],
            total: SpendRow {
                requests: 2,
                cost_micro_usd: 1500.0,
                unknown_cost_requests: 1,
                ..SpendRow::default()
            },
        };
        let t = spend_table(&report, Grouping::Model, 0, 86_400_000);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "spend from 1970-01-01T00:00:00Z to 1970-01-02T00:00:00Z by model"
        );
        assert!(lines[1].starts_with("MODEL   REQUESTS"), "{t}");
        assert!(lines[2].starts_with("gpt-4o         2"), "{t}");
        assert!(lines[2].contains("0.001500"), "{t}");
        assert!(lines[3].starts_with("TOTAL"), "{t}");
        assert_eq!(lines[1].len(), lines[2].len());
        let row = LedgerRow {
            time_ms: 0,
            model: "smart".into(),
            provider: Some("openai".into()),
            upstream_model: Some("gpt-4o".into()),
            status: 200,
            duration_ms: 1234,
            ..LedgerRow::default()
        };
        let t = requests_table(&[row]);
        assert!(
            t.lines()
                .nth(1)
                .unwrap()
                .starts_with("1970-01-01T00:00:00Z     200"),
            "{t}"
        );
        assert!(t.contains("unknown"), "{t}");
        assert!(t.ends_with("smart -> openai/gpt-4o\n"), "{t}");
    }
}
