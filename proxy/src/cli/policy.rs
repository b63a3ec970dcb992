//! `bitrouter policy create` and `bitrouter policy list`: the access policy files in
//! `policies/` next to bitrouter.yaml (the format is `bitrouter_config::access`'s).

use bitrouter_config::{policies_dir, valid_policy_id, AccessPolicy, ProcessEnv};
use clap::Subcommand;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

/// Exit code of an invalid configuration (as `serve`, `spend`, `models`).
const INVALID_CONFIG: i32 = 2;

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write policies/<ID>.yaml next to bitrouter.yaml: a template listing every limit, all
    /// commented out (a new policy restricts nothing until you uncomment a line).
    Create {
        /// The policy id (letters, digits, `_`, `.`, `-`); keys name their policies by it.
        id: String,
        /// Overwrite an existing policies/<ID>.yaml.
        #[arg(long)]
        force: bool,
    },
    /// List the access policies in policies/ with their limits (the files are validated with
    /// the config, as `config validate` does).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: Option<&Path>, command: PolicyCommand) -> i32 {
    match command {
        PolicyCommand::Create { id, force } => create(config, &id, force),
        PolicyCommand::List { json } => list(config, json),
    }
}

/// The template `policy create` writes: every key, explained, commented out but `description`,
/// so the new file loads as a policy without limits.
pub fn template(id: &str) -> String {
    format!(
        r#"# Access policy `{id}`: written by `bitrouter policy create`. The file name is the id.
# Keys given this policy are held to the limits below; every limit is off until you uncomment
# it. A key with several policies gets the strictest of each: denied models add up, a model
# must pass every allow list, the lowest spend and rate and the earliest expiry apply, and the
# allowed tools are those of any policy that lists tools.
# Check the file with `bitrouter config validate`; a running router reads it on `bitrouter reload`.

description: "Access policy {id}"

# Models a key may use: names or globs (`*`, `?`, `[a-z]`; quote a pattern that starts with
# `*`), matched against the name the client sends (`fast`) and what it resolves to
# (`openai/gpt-4o-mini`, `gpt-4o-mini`). Leave out for every model; [] allows none.
# allowed_models:
#   - fast
#   - openai/gpt-4o-mini
#   - "claude-haiku-*"

# Models a key may never use, whatever allowed_models says.
# denied_models:
#   - "*-preview"

# Spending cap per calendar month (UTC), in millionths of a US dollar: 5000000 is $5.
# max_spend_micro_usd: 5000000

# The key stops working at this time (RFC 3339: `Z` for UTC, or an offset like +02:00).
# expires_at: 2027-01-31T00:00:00Z

# Requests per minute (at least 1).
# max_requests_per_minute: 60

# Tools a request may declare: names or globs. Leave out for every tool; [] allows none.
# allowed_tools:
#   - read_file
#   - "search_*"
"#
    )
}

/// `bitrouter policy create <id>`.
fn create(explicit: Option<&Path>, id: &str, force: bool) -> i32 {
    if !valid_policy_id(id) {
        eprintln!(
            "error: invalid policy id `{id}`: use letters, digits, `_`, `.` and `-` (it becomes the file name)"
        );
        return 1;
    }
    let Some(config_path) = config_file(explicit) else {
        eprintln!(
            "error: no bitrouter.yaml found (policies live in policies/ next to it); pass -c <path> or run `bitrouter init`"
        );
        return 1;
    };
    if !config_path.is_file() {
        eprintln!(
            "error: {} not found (policies live in policies/ next to it); run `bitrouter init -c {0}` first",
            config_path.display()
        );
        return 1;
    }
    let dir = policies_dir(&config_path);
    let path = dir.join(format!("{id}.yaml"));
    // Another extension with the same stem would define the policy twice.
    for ext in bitrouter_config::access::POLICY_EXTENSIONS {
        let other = dir.join(format!("{id}.{ext}"));
        if other != path && other.exists() {
            eprintln!(
                "error: policy `{id}` already exists as {}; edit that file instead",
                other.display()
            );
            return 1;
        }
    }
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("error: cannot create {}: {e}", dir.display());
        return 1;
    }
    // Without --force the file is created only if absent, checked by the file system itself.
    let opened = if force {
        std::fs::File::create(&path)
    } else {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
    };
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            eprintln!(
                "error: {} already exists; pass --force to overwrite it",
                path.display()
            );
            return 1;
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 1;
        }
    };
    if let Err(e) = file.write_all(template(id).as_bytes()) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 1;
    }
    println!("{}", path.display());
    0
}

/// The config file the verbs would read: `-c`, else discovery. `None`: zero-config.
fn config_file(explicit: Option<&Path>) -> Option<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    bitrouter_config::discover(explicit, &cwd, &ProcessEnv)
}

/// `bitrouter policy list`.
fn list(explicit: Option<&Path>, json: bool) -> i32 {
    let config = match super::load_config(explicit) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return INVALID_CONFIG;
        }
    };
    let policies: Vec<&AccessPolicy> = config.access.iter().map(|p| p.as_ref()).collect();
    if json {
        let rows: Vec<serde_json::Value> = policies.iter().map(|p| json_row(p)).collect();
        println!("{}", serde_json::Value::Array(rows));
        return 0;
    }
    if policies.is_empty() {
        match config.access.dir() {
            Some(dir) => eprintln!(
                "no access policies in {} (create one with `bitrouter policy create <id>`)",
                dir.display()
            ),
            None => eprintln!(
                "no access policies: no config file (policies live in policies/ next to bitrouter.yaml)"
            ),
        }
        return 0;
    }
    print!("{}", table(&policies, crate::govern::now_ms()));
    0
}

fn json_row(p: &AccessPolicy) -> serde_json::Value {
    serde_json::json!({
        "id": p.id,
        "file": p.file.display().to_string(),
        "description": p.description,
        "allowed_models": p.allowed_models,
        "denied_models": p.denied_models,
        "max_spend_micro_usd": p.max_spend_micro_usd,
        "expires_at": p.expires_at_ms.map(format_ms),
        "expires_at_ms": p.expires_at_ms,
        "max_requests_per_minute": p.max_requests_per_minute,
        "allowed_tools": p.allowed_tools,
    })
}

/// Fixed columns, the same on a terminal and in a pipe.
fn table(policies: &[&AccessPolicy], now_ms: i64) -> String {
    let header = ["ID", "MODELS", "SPEND/MONTH", "RPM", "EXPIRES", "TOOLS"].map(String::from);
    let mut rows = vec![header];
    for p in policies {
        let expires = match p.expires_at_ms {
            Some(ms) if ms <= now_ms => format!("{} (expired)", format_ms(ms)),
            Some(ms) => format_ms(ms),
            None => "-".to_string(),
        };
        rows.push([
            p.id.clone(),
            models_cell(p),
            p.max_spend_micro_usd.map_or("-".to_string(), format_usd),
            p.max_requests_per_minute
                .map_or("-".to_string(), |n| n.to_string()),
            expires,
            p.allowed_tools
                .as_ref()
                .map_or("any".to_string(), |t| list_cell(t)),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn models_cell(p: &AccessPolicy) -> String {
    let allow = p.allowed_models.as_ref().map(|m| list_cell(m));
    let deny = (!p.denied_models.is_empty()).then(|| list_cell(&p.denied_models));
    match (allow, deny) {
        (None, None) => "any".to_string(),
        (Some(a), None) => a,
        (None, Some(d)) => format!("any except {d}"),
        (Some(a), Some(d)) => format!("{a} except {d}"),
    }
}

fn list_cell(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items.join(",")
    }
}

/// Micro-USD as dollars: cents always, further digits only when set (`$5.00`, `$0.0015`).
fn format_usd(micro: f64) -> String {
    let text = format!("{:.6}", micro / 1_000_000.0);
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    format!("${whole}.{frac:0<2}")
}

/// Milliseconds since the epoch as RFC 3339 UTC (to the second unless milliseconds are set).
fn format_ms(ms: i64) -> String {
    let Ok(unsigned) = u64::try_from(ms) else {
        return format!("{ms} ms");
    };
    let time = UNIX_EPOCH + Duration::from_millis(unsigned);
    if ms % 1000 == 0 {
        humantime::format_rfc3339_seconds(time).to_string()
    } else {
        humantime::format_rfc3339_millis(time).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_and_times_format() {
        assert_eq!(format_usd(5_000_000.0), "$5.00");
        assert_eq!(format_usd(1_500.0), "$0.0015");
        assert_eq!(format_usd(0.0), "$0.00");
        assert_eq!(format_usd(12_345_678.0), "$12.345678");
        assert_eq!(format_ms(1_801_353_600_000), "2027-01-31T00:00:00Z");
        assert_eq!(format_ms(1_801_353_600_250), "2027-01-31T00:00:00.250Z");
        assert_eq!(format_ms(-5), "-5 ms");
    }

    #[test]
    fn table_shows_every_limit() {
        let mut p = AccessPolicy::unrestricted("interns");
        p.allowed_models = Some(vec!["fast".into(), "*-mini".into()]);
        p.denied_models = vec!["o1".into()];
        p.max_spend_micro_usd = Some(5_000_000.0);
        p.max_requests_per_minute = Some(60);
        p.expires_at_ms = Some(1_000);
        p.allowed_tools = Some(vec![]);
        let open = AccessPolicy::unrestricted("open");
        let text = table(&[&p, &open], 2_000);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("ID"), "{text}");
        assert!(lines[1].contains("fast,*-mini except o1"), "{text}");
        assert!(lines[1].contains("$5.00"), "{text}");
        assert!(
            lines[1].contains("1970-01-01T00:00:01Z (expired)"),
            "{text}"
        );
        assert!(lines[1].ends_with("none"), "{text}");
        assert_eq!(
            lines[2].split_whitespace().collect::<Vec<_>>(),
            ["open", "any", "-", "-", "-", "any"]
        );
    }

    #[test]
    fn the_template_is_a_valid_policy_without_limits() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.yaml"), template("t")).unwrap();
        let set = bitrouter_config::AccessPolicies::load_dir(dir.path()).unwrap();
        let policy = set.get("t").unwrap();
        assert_eq!(policy.description.as_deref(), Some("Access policy t"));
        let effective = bitrouter_config::EffectivePolicy::combine(std::slice::from_ref(policy));
        assert!(effective.is_unrestricted());

        // Every key is shown, and uncommenting every example gives a valid policy.
        let keys = bitrouter_config::access::POLICY_KEYS;
        let example = |rest: &str| {
            rest.starts_with("  - ") || keys.iter().any(|k| rest.starts_with(&format!("{k}:")))
        };
        let text = template("t");
        let uncommented: Vec<&str> = text
            .lines()
            .map(|l| l.strip_prefix("# ").filter(|r| example(r)).unwrap_or(l))
            .collect();
        for key in keys.iter().filter(|k| **k != "id") {
            let line = format!("{key}:");
            assert!(uncommented.iter().any(|l| l.starts_with(&line)), "{key}");
        }
        let uncommented = uncommented.join("\n");
        std::fs::write(dir.path().join("t.yaml"), &uncommented).unwrap();
        let set = bitrouter_config::AccessPolicies::load_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        let p = set.get("t").unwrap();
        assert_eq!(p.allowed_models.as_ref().map(Vec::len), Some(3));
        assert_eq!(p.denied_models, ["*-preview"]);
        assert_eq!(p.max_spend_micro_usd, Some(5_000_000.0));
        assert_eq!(p.expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(p.max_requests_per_minute, Some(60));
        assert_eq!(p.allowed_tools.as_ref().map(Vec::len), Some(2));
    }
}
