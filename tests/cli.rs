//! The CLI verbs, run as a user would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::{cli, stderr, stdout, workspace};

#[test]
fn help_lists_the_verbs() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["--help"], &[], dir.path());
    assert!(out.status.success());
    let text = stdout(&out);
    for verb in ["serve", "init", "config", "route", "models"] {
        assert!(text.contains(verb), "{verb} missing from --help:\n{text}");
    }
}

#[test]
fn init_writes_a_valid_starter_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["init"], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let written = std::fs::read_to_string(dir.path().join("bitrouter.yaml")).unwrap();
    assert!(written.contains("skip_auth: true"));

    let again = cli(&["init"], &[], dir.path());
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"));

    std::fs::write(dir.path().join("bitrouter.yaml"), "# mine\n").unwrap();
    let forced = cli(&["init", "--force"], &[], dir.path());
    assert!(forced.status.success());
    assert!(std::fs::read_to_string(dir.path().join("bitrouter.yaml"))
        .unwrap()
        .contains("skip_auth: true"));

    // The starter validates as written, found in the working directory.
    let v = cli(&["config", "validate"], &[], dir.path());
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));

    // -c with a directory that does not exist yet.
    let nested = dir.path().join("etc/bitrouter/bitrouter.yaml");
    let out = cli(&["init", "-c", nested.to_str().unwrap()], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(nested.exists());
}

/// Defect 15: the `$schema` comment `init` writes must resolve for the user, not only inside
/// the repository: the schema is written beside the config and the comment points at it.
#[test]
fn init_writes_the_schema_its_comment_points_at() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("conf/bitrouter.yaml");
    let out = cli(&["init", "-c", config.to_str().unwrap()], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));

    let yaml = std::fs::read_to_string(&config).unwrap();
    let reference = yaml
        .lines()
        .find_map(|l| l.strip_prefix("# yaml-language-server: $schema="))
        .expect("a $schema comment")
        .trim();
    let schema_path = config.parent().unwrap().join(reference);
    assert!(
        schema_path.is_file(),
        "$schema={reference} does not resolve next to {}",
        config.display()
    );
    let repo_schema =
        std::fs::read_to_string(workspace().join("schemas/bitrouter.config.schema.json")).unwrap();
    assert_eq!(std::fs::read_to_string(&schema_path).unwrap(), repo_schema);

    // The written config validates.
    let v = cli(
        &["config", "validate", "-c", config.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));

    // A schema file of the user's own is not overwritten without --force, and a refusal writes
    // nothing at all.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("bitrouter.schema.json"), "{}").unwrap();
    let refused = cli(&["init"], &[], &other);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert!(!other.join("bitrouter.yaml").exists());
    let forced = cli(&["init", "--force"], &[], &other);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(
        std::fs::read_to_string(other.join("bitrouter.schema.json")).unwrap(),
        repo_schema
    );
}

#[test]
fn config_schema_prints_the_repository_schema() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["config", "schema"], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let printed: Value = serde_json::from_slice(&out.stdout).expect("the schema is JSON");
    let repo: Value = serde_json::from_str(
        &std::fs::read_to_string(workspace().join("schemas/bitrouter.config.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, repo);
}

#[test]
fn validate_lists_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "server:\n  listen: 127.0.0.1:4356\nproviders:\n  openai:\n    api_bse: https://api.openai.com/v1\n    api_key: ${NOT_SET_ANYWHERE}\nmodels:\n  smart:\n    endpoints:\n      - provider: nobody\n        service_id: x\nfrobnicate: true\n",
    )
    .unwrap();
    let out = cli(
        &["config", "validate", "-c", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("bad.yaml:5:"),
        "unknown field at line 5:\n{err}"
    );
    assert!(err.contains("api_bse"), "{err}");
    assert!(
        err.contains("bad.yaml:12:"),
        "unknown top-level key at line 12:\n{err}"
    );
    assert!(err.contains("frobnicate"), "{err}");
}

#[test]
fn validate_names_an_unset_variable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.yaml");
    std::fs::write(
        &path,
        "providers:\n  openai:\n    api_key: ${NOT_SET_ANYWHERE}\n",
    )
    .unwrap();
    let out = cli(
        &["config", "validate", "-c", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("NOT_SET_ANYWHERE"), "{err}");
    assert!(err.contains("b.yaml:3:"), "{err}");
    let ok = cli(
        &["config", "validate", "-c", path.to_str().unwrap()],
        &[("NOT_SET_ANYWHERE", "sk-1")],
        dir.path(),
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
}

#[test]
fn missing_explicit_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["config", "validate", "-c", "nope.yaml"], &[], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope.yaml"));
}

#[test]
fn unimplemented_sections_warn_but_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, "mcp:\n  servers: []\nguardrails_later: 1\n").unwrap();
    let out = cli(
        &["config", "validate", "-c", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(!out.status.success(), "unknown key must still fail");
    std::fs::write(&path, "mcp:\n  servers: []\nagents: {}\n").unwrap();
    let out = cli(
        &["config", "validate", "-c", path.to_str().unwrap()],
        &[],
        dir.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("mcp") && text.contains("agents"), "{text}");
}

#[test]
fn shipped_example_configs_validate() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["conf/hosted.yaml", "conf/local.yaml"] {
        let path = workspace().join(name);
        let out = cli(
            &["config", "validate", "-c", path.to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert!(
            out.status.success(),
            "{name}: {}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}

fn route_config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("bitrouter.yaml");
    std::fs::write(
        &path,
        r#"
providers:
  openai:
    api_base: https://api.openai.com/v1
    api_key: sk-x
    models:
      - id: gpt-4o
  anthropic:
    api_base: https://api.anthropic.com
    api_key: sk-y
    models:
      - id: claude-sonnet-4-5
models:
  smart:
    strategy: priority
    endpoints:
      - provider: anthropic
        service_id: claude-sonnet-4-5
      - provider: openai
        service_id: gpt-4o
"#,
    )
    .unwrap();
    path
}

#[test]
fn route_prints_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    route_config(dir.path());
    let out = cli(&["route", "smart"], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("virtual model `smart`"), "{text}");
    let a = text.find("provider anthropic").unwrap();
    let o = text.find("provider openai").unwrap();
    assert!(a < o, "priority order kept:\n{text}");
    assert!(text.contains("protocol messages"));
    assert!(text.contains("/v1/messages"));
    assert!(!text.contains("sk-x") && !text.contains("sk-y"));

    let out = cli(&["route", "openai/gpt-4o", "--json"], &[], dir.path());
    assert!(out.status.success());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["endpoints"][0]["provider"], "openai");
    assert_eq!(v["endpoints"][0]["path"], "/v1/chat/completions");

    let out = cli(&["route", "definitely-unknown"], &[], dir.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("definitely-unknown"));
}

#[test]
fn models_lists_routable_models() {
    let dir = tempfile::tempdir().unwrap();
    route_config(dir.path());
    let out = cli(&["models"], &[], dir.path());
    assert!(out.status.success());
    let text = stdout(&out);
    for m in ["smart", "openai/gpt-4o", "anthropic/claude-sonnet-4-5"] {
        assert!(text.contains(m), "{m}:\n{text}");
    }
    let out = cli(&["models", "--json"], &[], dir.path());
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(v.as_array().unwrap().iter().any(|m| m["id"] == "smart"));
}

#[test]
fn xdg_config_home_is_searched() {
    let dir = tempfile::tempdir().unwrap();
    let xdg = dir.path().join("xdg");
    std::fs::create_dir_all(xdg.join("bitrouter")).unwrap();
    std::fs::write(
        xdg.join("bitrouter/bitrouter.yaml"),
        "models:\n  only-in-xdg:\n    endpoints:\n      - provider: openai\n        service_id: gpt-4o\nproviders:\n  openai:\n    api_key: k\n",
    )
    .unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let out = cli(
        &["route", "only-in-xdg"],
        &[("XDG_CONFIG_HOME", xdg.to_str().unwrap())],
        &work,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `policy create` writes a template next to the config that validates as written; a bad value
/// in it fails `config validate` with the policy file's line and column; `policy list` shows
/// the limits once they are valid.
#[test]
fn policy_create_validate_and_list() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bitrouter.yaml"),
        "server:\n  skip_auth: true\n",
    )
    .unwrap();

    let out = cli(&["policy", "create", "interns"], &[], dir.path());
    assert!(out.status.success(), "{}", stderr(&out));
    let file = dir.path().join("policies/interns.yaml");
    assert_eq!(std::path::Path::new(stdout(&out).trim()), file);
    let template = std::fs::read_to_string(&file).unwrap();
    assert!(template.contains("# max_spend_micro_usd:"), "{template}");

    // No overwrite without --force; no id that is not a plain token.
    let again = cli(&["policy", "create", "interns"], &[], dir.path());
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--force"), "{}", stderr(&again));
    let forced = cli(&["policy", "create", "interns", "--force"], &[], dir.path());
    assert!(forced.status.success(), "{}", stderr(&forced));
    for bad in ["../x", "a b", ""] {
        let out = cli(&["policy", "create", bad], &[], dir.path());
        assert!(!out.status.success(), "{bad}");
        assert!(
            stderr(&out).contains("invalid policy id"),
            "{}",
            stderr(&out)
        );
    }

    let v = cli(&["config", "validate"], &[], dir.path());
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    assert!(stdout(&v).contains("1 access policy"), "{}", stdout(&v));

    // An invalid value: named with the policy file's line and column.
    let line = template
        .lines()
        .position(|l| l == "# max_requests_per_minute: 60")
        .expect("the template shows max_requests_per_minute")
        + 1;
    std::fs::write(
        &file,
        template.replace(
            "# max_requests_per_minute: 60",
            "max_requests_per_minute: 0",
        ),
    )
    .unwrap();
    let v = cli(&["config", "validate"], &[], dir.path());
    assert!(!v.status.success());
    let err = stderr(&v);
    assert!(
        err.contains(&format!(
            "policies/interns.yaml:{line}:26: `max_requests_per_minute` must be at least 1"
        )),
        "{err}"
    );
    // A mistyped key is an error, not a silently missing budget.
    std::fs::write(&file, "max_spend_usd: 5\n").unwrap();
    let v = cli(&["config", "validate"], &[], dir.path());
    assert!(!v.status.success());
    assert!(
        stderr(&v).contains("policies/interns.yaml:1:1: unknown key `max_spend_usd`"),
        "{}",
        stderr(&v)
    );
    let listed = cli(&["policy", "list"], &[], dir.path());
    assert_eq!(listed.status.code(), Some(2), "{}", stderr(&listed));

    std::fs::write(
        &file,
        template
            .replace(
                "# max_requests_per_minute: 60",
                "max_requests_per_minute: 60",
            )
            .replace(
                "# max_spend_micro_usd: 5000000",
                "max_spend_micro_usd: 5000000",
            ),
    )
    .unwrap();
    let listed = cli(&["policy", "list"], &[], dir.path());
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    let row = text
        .lines()
        .find(|l| l.starts_with("interns"))
        .unwrap_or_else(|| panic!("no row for interns:\n{text}"));
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["interns", "any", "$5.00", "60", "-", "any"],
        "{text}"
    );
    let listed = cli(&["policy", "list", "--json"], &[], dir.path());
    assert!(listed.status.success(), "{}", stderr(&listed));
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows[0]["id"], "interns");
    assert_eq!(rows[0]["max_requests_per_minute"], 60);
    assert_eq!(rows[0]["max_spend_micro_usd"], 5_000_000.0);
    assert!(rows[0]["allowed_models"].is_null());

    // -c from elsewhere: the folder is next to that config file.
    let elsewhere = tempfile::tempdir().unwrap();
    let config = dir.path().join("bitrouter.yaml");
    let out = cli(
        &["policy", "create", "ci", "-c", config.to_str().unwrap()],
        &[],
        elsewhere.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("policies/ci.yaml").is_file());
    let listed = cli(
        &["policy", "list", "--json", "-c", config.to_str().unwrap()],
        &[],
        elsewhere.path(),
    );
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(rows.as_array().map(Vec::len), Some(2), "{rows}");

    // Without a config file there is nowhere to put a policy.
    let out = cli(&["policy", "create", "x"], &[], elsewhere.path());
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bitrouter init"), "{}", stderr(&out));
    assert!(!elsewhere.path().join("policies").exists());
}

/// `bitrouter key`: sign prints the key once (JSON in a fixed shape), list never shows it nor
/// its hash, revoke is idempotent, an unknown id is exit 1.
#[test]
fn key_sign_list_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let cfg = conf.join("bitrouter.yaml");
    std::fs::write(&cfg, "database:\n  url: sqlite://./keys.db\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let run = |args: &[&str]| cli(args, &[], dir.path());
    // A key may only name policies that exist.
    let out = run(&[
        "key", "sign", "-c", cfg, "--user", "ann", "--policy", "team-a",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bitrouter policy create team-a"),
        "{}",
        stderr(&out)
    );
    std::fs::create_dir(conf.join("policies")).unwrap();
    for p in ["team-a", "cap.1"] {
        std::fs::write(conf.join(format!("policies/{p}.yaml")), "description: x\n").unwrap();
    }

    // Reading a database that does not exist yet creates nothing.
    let out = run(&["key", "list", "-c", cfg]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("no database at"), "{}", stderr(&out));
    assert!(!conf.join("keys.db").exists());

    let out = run(&[
        "key",
        "sign",
        "-c",
        cfg,
        "--user",
        "ann",
        "--policy",
        "team-a",
        "--policy",
        "cap.1",
        "--label",
        "ci bot",
        "--expires",
        "30d",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let signed: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let fields: Vec<&str> = signed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["expires_at", "id", "key", "label", "policies", "user"]
    );
    let key = signed["key"].as_str().unwrap().to_string();
    let id = signed["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("brvk_") && key.len() == 48, "{key}");
    assert!(id.starts_with("vk_") && id.len() == 19, "{id}");
    assert_eq!(signed["user"], "ann");
    assert_eq!(signed["policies"], serde_json::json!(["team-a", "cap.1"]));
    assert_eq!(signed["label"], "ci bot");
    assert!(signed["expires_at"].as_str().unwrap().ends_with('Z'));
    // The key is printed once, on stdout only.
    assert_eq!(stdout(&out).matches(&key).count(), 1);
    assert!(!stderr(&out).contains(&key));
    // `sign` created the database beside the config file.
    assert!(conf.join("keys.db").exists());

    // A second key, as text, through --db.
    let db = format!("sqlite://{}", conf.join("keys.db").display());
    let out = run(&["key", "sign", "--db", &db, "--user", "bob"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let bob_key = text
        .lines()
        .find_map(|l| l.strip_prefix("key:"))
        .unwrap()
        .trim()
        .to_string();
    assert!(bob_key.starts_with("brvk_"), "{text}");
    assert!(text.contains("expires:  never"), "{text}");
    assert!(stderr(&out).contains("not shown again"));

    let out = run(&["key", "list", "-c", cfg, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(!listing.contains(&key) && !listing.contains(&bob_key));
    assert!(!listing.contains("key_hash"));
    let v: Value = serde_json::from_str(&listing).unwrap();
    let keys = v.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0]["id"], id.as_str());
    assert_eq!(keys[0]["user"], "ann");
    assert_eq!(keys[0]["label"], "ci bot");
    assert_eq!(keys[0]["policies"], serde_json::json!(["team-a", "cap.1"]));
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["revoked_at"], Value::Null);
    assert_eq!(keys[0]["expires_at"], signed["expires_at"]);
    assert_eq!(keys[1]["user"], "bob");

    let out = run(&["key", "revoke", "-c", cfg, &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("revoked {id}"));
    let out = run(&["key", "revoke", "-c", cfg, &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("already revoked"), "{}", stdout(&out));
    let out = run(&["key", "revoke", "-c", cfg, "vk_0000000000000000"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no key with id `vk_0000000000000000`"),
        "{}",
        stderr(&out)
    );

    let out = run(&["key", "list", "-c", cfg, "--json"]);
    let v: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v[0]["state"], "revoked");
    assert!(v[0]["revoked_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v[1]["state"], "active");

    // The table: a header and one line per key, never a key.
    let out = run(&["key", "list", "-c", cfg]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("ID "), "{table}");
    assert!(lines[0].contains("LAST_USED"), "{table}");
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("team-a,cap.1"),
        "{table}"
    );
    assert!(!table.contains(&key) && !table.contains(&bob_key));
}

#[test]
fn key_sign_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bitrouter.yaml");
    std::fs::write(&cfg, "database:\n  url: sqlite://./keys.db\n").unwrap();
    let cfg = cfg.to_str().unwrap();
    let run = |args: &[&str]| cli(args, &[], dir.path());

    let out = run(&[
        "key",
        "sign",
        "-c",
        cfg,
        "--user",
        "ann",
        "--expires",
        "2020-01-01T00:00:00Z",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not in the future"),
        "{}",
        stderr(&out)
    );
    let out = run(&[
        "key",
        "sign",
        "-c",
        cfg,
        "--user",
        "ann",
        "--expires",
        "soon",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("RFC 3339"), "{}", stderr(&out));
    let out = run(&["key", "sign", "-c", cfg, "--user", "ann", "--policy", "a,b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a policy id"), "{}", stderr(&out));
    let out = run(&["key", "sign", "-c", cfg, "--user", ""]);
    assert_eq!(out.status.code(), Some(1));
    // Nothing was signed, so nothing was created.
    assert!(!dir.path().join("keys.db").exists());

    // Keys live in the database: with it off, say so (unless --db names one).
    std::fs::write(
        dir.path().join("bitrouter.yaml"),
        "database:\n  enabled: false\n",
    )
    .unwrap();
    let out = run(&["key", "sign", "-c", cfg, "--user", "ann"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("virtual keys live in the database"),
        "{}",
        stderr(&out)
    );
    let out = run(&["key", "list", "-c", cfg]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[
        "key",
        "sign",
        "--db",
        "sqlite://./other.db",
        "--user",
        "ann",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("other.db").exists());
}
