//! Access policies read with the config: `policies/` next to the file, problems in both reported
//! in one load, nothing read for text or zero-config.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bitrouter_config::{load, load_str, EffectivePolicy, MapEnv};

const CONFIG: &str = "server:\n  skip_auth: true\n";

#[test]
fn policies_next_to_the_config_file_are_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bitrouter.yaml");
    std::fs::write(&path, CONFIG).unwrap();
    // No folder: no policies, no problem.
    let config = load(Some(&path), &MapEnv::default()).unwrap();
    assert!(config.access.is_empty());

    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/interns.yaml"),
        "allowed_models: [\"*-mini\"]\nmax_requests_per_minute: 30\n",
    )
    .unwrap();
    let config = load(Some(&path), &MapEnv::default()).unwrap();
    assert_eq!(config.access.ids().collect::<Vec<_>>(), ["interns"]);
    assert_eq!(
        config.access.dir(),
        Some(dir.path().join("policies").as_path())
    );
    let policy = config.access.get("interns").unwrap().clone();
    let effective = EffectivePolicy::combine(&[policy]);
    assert_eq!(effective.max_requests_per_minute(), Some((30, "interns")));
    assert!(effective.allows_model(&["gpt-4o-mini"]));
}

#[test]
fn problems_in_the_config_and_its_policies_are_reported_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bitrouter.yaml");
    std::fs::write(&path, "server:\n  skip_auht: true\n").unwrap();
    std::fs::create_dir(dir.path().join("policies")).unwrap();
    std::fs::write(
        dir.path().join("policies/interns.yaml"),
        "description: x\nmax_spend_usd: 5\n",
    )
    .unwrap();
    let err = load(Some(&path), &MapEnv::default()).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.problems.len(), 2, "{text}");
    assert!(
        text.contains("bitrouter.yaml:2:3: unknown field `skip_auht`"),
        "{text}"
    );
    let policy_file = dir.path().join("policies/interns.yaml");
    assert!(
        text.contains(&format!(
            "{}:2:1: unknown key `max_spend_usd`",
            policy_file.display()
        )),
        "{text}"
    );

    // A valid config with a broken policy fails too: a reload must not drop a budget.
    std::fs::write(&path, CONFIG).unwrap();
    let err = load(Some(&path), &MapEnv::default()).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
}

#[test]
fn text_and_zero_config_have_no_policies() {
    let config = load_str(CONFIG, "bitrouter.yaml", &MapEnv::default()).unwrap();
    assert!(config.access.is_empty());
    assert!(config.access.dir().is_none());
    let config = load(None, &MapEnv::default()).unwrap();
    assert!(config.access.is_empty());
}
