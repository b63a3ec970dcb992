//! `guardrails:` and `plugins.bitrouter-guardrails`: both shapes load, defaults apply, scope
//! lists are carried, and every mistake is reported at its position.

use bitrouter_config::{
    load_str, Config, GuardrailAction, GuardrailBlockMessage, GuardrailRule, Guardrails, MapEnv,
    GUARDRAIL_BUILTINS,
};
use GuardrailAction::{Block, Redact, Warn};

fn env() -> MapEnv {
    MapEnv::new([("OPENAI_API_KEY", "sk-test")])
}

fn ok(text: &str) -> Config {
    match load_str(text, "bitrouter.yaml", &env()) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match load_str(text, "bitrouter.yaml", &env()) {
        Ok(c) => panic!("expected problems, got {:#?}", c.guardrails),
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| (p.line, p.col, p.message))
            .collect(),
    }
}

fn assert_problem(problems: &[(usize, usize, String)], line: usize, col: usize, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no problem at {line}:{col} containing {needle:?} in {problems:#?}"
    );
}

fn rules(config: &Config) -> &[GuardrailRule] {
    match &config.guardrails {
        Some(g) => &g.rules,
        None => panic!("expected guardrails, got None"),
    }
}

/// (id, upgoing, downgoing) of every rule, in order.
fn actions(config: &Config) -> Vec<(&str, Option<GuardrailAction>, Option<GuardrailAction>)> {
    rules(config)
        .iter()
        .map(|r| (r.id.as_str(), r.upgoing, r.downgoing))
        .collect()
}

fn rule<'a>(config: &'a Config, id: &str) -> &'a GuardrailRule {
    match rules(config).iter().find(|r| r.id == id) {
        Some(r) => r,
        None => panic!("no rule `{id}` in {:#?}", config.guardrails),
    }
}

const DOCUMENTED: &str = "\
guardrails:
  enabled: true
  disabled_patterns: [pii_phone_numbers]
  custom_patterns:
    - name: internal_ticket
      regex: \"INC-[0-9]{6}\"
      direction: both
  upgoing:
    api_keys: redact
    private_keys: block
  downgoing:
    suspicious_commands: block
  custom_upgoing:   { internal_ticket: warn }
  custom_downgoing: { internal_ticket: redact }
";

#[test]
fn documented_shape_resolves_with_defaults() {
    let config = ok(DOCUMENTED);
    assert_eq!(
        actions(&config),
        vec![
            ("api_keys", Some(Redact), None),
            ("private_keys", Some(Block), None),
            ("credentials", Some(Redact), None),
            ("suspicious_commands", None, Some(Block)),
            ("internal_ticket", Some(Warn), Some(Redact)),
        ]
    );
    let ticket = rule(&config, "internal_ticket");
    assert_eq!(ticket.regex.as_deref(), Some("INC-[0-9]{6}"));
    assert_eq!(rule(&config, "api_keys").regex, None);
    assert!(ticket.models.is_empty() && ticket.exempt_providers.is_empty());
    assert_eq!(
        config.guardrails.as_ref().map(|g| g.block_message),
        Some(GuardrailBlockMessage::default())
    );
    assert!(config.warnings.iter().all(|w| !w.contains("guardrail")));
}

#[test]
fn empty_section_turns_the_defaults_on() {
    for text in [
        "guardrails:\n",
        "guardrails: {}\n",
        "guardrails: {enabled: true}\n",
    ] {
        let config = ok(text);
        assert_eq!(
            actions(&config),
            vec![
                ("api_keys", Some(Redact), None),
                ("private_keys", Some(Redact), None),
                ("credentials", Some(Redact), None),
                ("suspicious_commands", None, Some(Warn)),
            ],
            "{text}"
        );
    }
    // Every built-in can be turned on, in both directions.
    let mut text = String::from("guardrails:\n  upgoing:\n");
    for id in GUARDRAIL_BUILTINS {
        text.push_str(&format!("    {id}: block\n"));
    }
    let config = ok(&text);
    assert_eq!(rules(&config).len(), GUARDRAIL_BUILTINS.len());
    assert!(rules(&config).iter().all(|r| r.upgoing == Some(Block)));
    assert_eq!(rule(&config, "iban").downgoing, None);
    assert_eq!(rule(&config, "suspicious_commands").downgoing, Some(Warn));
}

#[test]
fn absent_or_disabled_section_resolves_to_none() {
    assert_eq!(ok("server: {}\n").guardrails, None);
    assert_eq!(bitrouter_config::zero_config(&env()).guardrails, None);
    assert_eq!(ok("guardrails: {enabled: false}\n").guardrails, None);
    // The master switch turns the plugin's patterns off too.
    let text = "\
guardrails:
  enabled: false
plugins:
  bitrouter-guardrails:
    custom_patterns: [{name: ssn, pattern: 'x+'}]
";
    assert_eq!(ok(text).guardrails, None);
    // A disabled section is still checked.
    let p = problems("guardrails:\n  enabled: false\n  upgoing: {api_key: block}\n");
    assert_problem(&p, 3, 13, "unknown built-in guardrail pattern `api_key`");
}

const PLUGIN: &str = r#"
plugins:
  bitrouter-policy:
    policy_dir: "./policies"
  bitrouter-guardrails:
    custom_patterns:
      - { name: ssn, pattern: '\d{3}-\d{2}-\d{4}', action: redact }
      - { name: forbidden, pattern: '(?i)forbidden' }
      - { name: outbound_only, pattern: 'secret-[a-z]+', direction: upgoing }
  bitrouter-telemetry: {otlp_endpoint: "${UNSET_OTLP}"}
"#;

#[test]
fn plugin_shape_resolves_with_block_default() {
    let config = ok(PLUGIN);
    // Custom rules only: the built-ins need `guardrails:`.
    assert_eq!(
        actions(&config),
        vec![
            ("ssn", Some(Redact), Some(Redact)),
            ("forbidden", Some(Block), Some(Block)),
            ("outbound_only", Some(Block), None),
        ]
    );
    assert_eq!(
        rule(&config, "ssn").regex.as_deref(),
        Some(r"\d{3}-\d{2}-\d{4}")
    );
    // The other plugins still load, unresolved, and are reported as having no effect.
    assert!(
        config.warnings.iter().any(|w| w.contains(
            "section `plugins` is parsed but not implemented yet (except `bitrouter-guardrails`)"
        )),
        "{:?}",
        config.warnings
    );
    // Without other plugins, no warning.
    let config =
        ok("plugins:\n  bitrouter-guardrails:\n    custom_patterns: [{name: a, pattern: 'a+'}]\n");
    assert!(
        config.warnings.iter().all(|w| !w.contains("plugins")),
        "{:?}",
        config.warnings
    );
    // Any other shape of `plugins:` keeps loading as before.
    for text in ["plugins:\n  - a\n", "plugins: {other: 1}\n", "plugins:\n"] {
        assert_eq!(ok(text).guardrails, None, "{text}");
    }
    // The plugin's own switch.
    let config = ok("plugins:\n  bitrouter-guardrails:\n    enabled: false\n    custom_patterns: [{name: a, pattern: 'a+'}]\n");
    assert_eq!(config.guardrails, Some(Guardrails::default()));
}

#[test]
fn both_shapes_combine() {
    let text = "\
guardrails:
  custom_patterns:
    - {name: internal_ticket, regex: 'INC-[0-9]{6}', direction: downgoing, action: block}
  custom_upgoing: {ssn: warn}
  disabled_patterns: [credentials]
plugins:
  bitrouter-guardrails:
    custom_patterns:
      - {name: ssn, pattern: '\\d{3}-\\d{2}-\\d{4}'}
      - {name: card, regex: '4[0-9]{15}', direction: downgoing}
";
    let config = ok(text);
    assert_eq!(
        actions(&config),
        vec![
            ("api_keys", Some(Redact), None),
            ("private_keys", Some(Redact), None),
            ("suspicious_commands", None, Some(Warn)),
            ("internal_ticket", None, Some(Block)),
            ("ssn", Some(Warn), Some(Block)),
            ("card", None, Some(Block)),
        ]
    );
}

#[test]
fn disabled_patterns_turn_rules_off() {
    let text = "\
guardrails:
  disabled_patterns: [api_keys, suspicious_commands, mine, iban]
  upgoing: {api_keys: block, iban: redact}
  custom_patterns:
    - {name: mine, regex: 'm+'}
    - {name: yours, regex: 'y+', direction: upgoing}
";
    let config = ok(text);
    assert_eq!(
        actions(&config),
        vec![
            ("private_keys", Some(Redact), None),
            ("credentials", Some(Redact), None),
            ("yours", Some(Warn), None),
        ]
    );
}

#[test]
fn custom_action_for_a_direction_the_pattern_skips_warns() {
    let text = "\
guardrails:
  custom_patterns:
    - {name: mine, regex: 'm+', direction: upgoing}
  custom_downgoing: {mine: block}
";
    let config = ok(text);
    assert_eq!(rule(&config, "mine").downgoing, None);
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.starts_with("bitrouter.yaml:4:")
                && w.contains("`guardrails.custom_downgoing.mine` has no effect")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn scope_lists_are_carried_and_merged() {
    let text = "\
providers:
  local: {api_base: 'http://127.0.0.1:8080/v1', models: [llama3]}
models:
  smart:
    endpoints: [{provider: openai, service_id: gpt-4o}]
guardrails:
  models: [smart, 'gpt-*']
  exempt_providers: [local]
  custom_patterns:
    - name: mine
      regex: 'm+'
      providers: [openai]
      exempt_models: [local/llama3]
    - name: theirs
      regex: 't+'
      models: []
";
    let config = ok(text);
    let api_keys = rule(&config, "api_keys");
    assert_eq!(api_keys.models, vec!["smart", "gpt-*"]);
    assert!(api_keys.providers.is_empty());
    assert!(api_keys.exempt_models.is_empty());
    assert_eq!(api_keys.exempt_providers, vec!["local"]);
    let mine = rule(&config, "mine");
    assert_eq!(mine.models, vec!["smart", "gpt-*"]);
    assert_eq!(mine.providers, vec!["openai"]);
    assert_eq!(mine.exempt_models, vec!["local/llama3"]);
    assert_eq!(mine.exempt_providers, vec!["local"]);
    // A rule's own list wins, even empty.
    assert!(rule(&config, "theirs").models.is_empty());
    assert!(
        config.warnings.iter().all(|w| !w.contains("guardrail")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn unknown_scope_names() {
    let text = "\
guardrails:
  providers: [openai, nobody]
  models: [no-such-model, 'gpt-4o', 'openai/anything', '[bad']
";
    let p = problems(text);
    assert_problem(
        &p,
        2,
        23,
        "unknown provider `nobody` in `providers` of guardrails",
    );
    assert_problem(&p, 3, 56, "invalid model glob `[bad` in `models`");
    assert_eq!(p.len(), 2, "{p:#?}");
    // An unknown model name is a warning (with its position), not a problem.
    let config = ok("guardrails:\n  exempt_models: [no-such-model, gpt-4o]\n");
    let unknown: Vec<&String> = config
        .warnings
        .iter()
        .filter(|w| w.contains("which no configured model or provider matches"))
        .collect();
    assert_eq!(unknown.len(), 1, "{:?}", config.warnings);
    assert!(
        unknown[0].starts_with("bitrouter.yaml:2:19:") && unknown[0].contains("`no-such-model`"),
        "{unknown:?}"
    );
}

#[test]
fn every_problem_is_reported_at_its_position() {
    let text = "\
guardrails:
  disabled_patterns: [pii_phone_number]
  upgoing:
    api_keys: redacted
    apikeys: block
  downgoing:
    mine: warn
  custom_upgoing:
    ghost: warn
    iban: block
  custom_patterns:
    - name: mine
      regex: 'm+'
      direction: sideways
      action: allow
    - name: mine
      regex: 'x+'
    - name: api_keys
      regex: 'k+'
    - name: broken
      regex: '(unclosed'
    - name: empty
      regex: 'a*'
    - name: boundary
      regex: '\\b'
    - name: neither
    - name: both
      regex: 'a+'
      pattern: 'b+'
  colour: red
plugins:
  bitrouter-guardrails:
    custom_patterns:
      - {name: mine, pattern: 'z+'}
      - {name: extra, pattern: 'e+', severity: high}
    mode: strict
";
    let p = problems(text);
    assert_problem(
        &p,
        2,
        23,
        "unknown guardrail pattern `pii_phone_number` in `guardrails.disabled_patterns`",
    );
    assert_problem(
        &p,
        4,
        15,
        "unknown guardrail action `redacted`, expected one of `warn`, `redact`, `block`",
    );
    assert_problem(
        &p,
        5,
        5,
        "unknown built-in guardrail pattern `apikeys` in `guardrails.upgoing`, expected one of `api_keys`",
    );
    assert_problem(
        &p,
        7,
        5,
        "`mine` is a custom pattern, give its action under `custom_downgoing`",
    );
    assert_problem(
        &p,
        9,
        5,
        "unknown custom guardrail pattern `ghost` in `guardrails.custom_upgoing`, expected one of `extra`",
    );
    assert_problem(
        &p,
        10,
        5,
        "`iban` is a built-in pattern, give its action under `upgoing`",
    );
    assert_problem(
        &p,
        14,
        18,
        "unknown direction `sideways` in custom guardrail pattern `mine`",
    );
    assert_problem(&p, 15, 15, "unknown guardrail action `allow`");
    assert_problem(&p, 16, 13, "duplicate custom guardrail pattern name `mine`");
    assert_problem(
        &p,
        18,
        13,
        "custom guardrail pattern `api_keys` has the name of a built-in pattern",
    );
    assert_problem(
        &p,
        21,
        14,
        "invalid regex in custom guardrail pattern `broken`: unclosed group",
    );
    assert_problem(&p, 23, 14, "pattern `empty` can match the empty string");
    assert_problem(&p, 25, 14, "pattern `boundary` can match the empty string");
    assert_problem(
        &p,
        26,
        7,
        "custom guardrail pattern `neither` needs a `regex` (or `pattern`)",
    );
    assert_problem(
        &p,
        29,
        7,
        "custom guardrail pattern `both` has both `regex` and `pattern`",
    );
    assert_problem(&p, 30, 3, "unknown field `colour`");
    assert_problem(&p, 34, 16, "duplicate custom guardrail pattern name `mine`");
    assert_problem(&p, 35, 38, "unknown field `severity`");
    assert_problem(&p, 36, 5, "unknown field `mode`");
    assert_eq!(p.len(), 19, "{p:#?}");
}

#[test]
fn invalid_regex_message_carries_the_regex_error() {
    let p = problems("guardrails:\n  custom_patterns:\n    - {name: r, regex: 'a{2,1}'}\n");
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!((p[0].0, p[0].1), (3, 24));
    assert!(!p[0].2.contains('\n'), "{}", p[0].2);
    assert!(
        p[0].2 == "invalid regex in custom guardrail pattern `r`: invalid repetition count range, the start must be <= the end",
        "{}",
        p[0].2
    );
}

#[test]
fn wrong_types_are_reported_at_the_value() {
    let p = problems("guardrails:\n  enabled: sometimes\n  upgoing: {api_keys: 3}\n");
    assert_problem(&p, 2, 12, "`guardrails.enabled`: invalid type");
    let p = problems("plugins:\n  bitrouter-guardrails:\n    custom_patterns: {name: x}\n");
    assert_problem(
        &p,
        3,
        23,
        "`plugins.bitrouter-guardrails.custom_patterns`: invalid type: map, expected a sequence",
    );
}

#[test]
fn block_message_is_carried() {
    let config = ok("guardrails:\n  block_message: {include_details: false}\n");
    assert_eq!(
        config.guardrails.map(|g| g.block_message),
        Some(GuardrailBlockMessage {
            include_details: false,
            include_help_link: true,
        })
    );
}

#[test]
fn placeholders_expand_in_guardrails() {
    let env = MapEnv::new([("OPENAI_API_KEY", "k"), ("TICKET", "INC-[0-9]+")]);
    let text = "guardrails:\n  custom_patterns: [{name: t, regex: '${TICKET}'}]\n";
    let config = match load_str(text, "bitrouter.yaml", &env) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(rule(&config, "t").regex.as_deref(), Some("INC-[0-9]+"));
}

#[test]
fn schema_describes_guardrails() {
    let schema = bitrouter_config::json_schema();
    let defs = &schema["definitions"];
    let section = &defs["GuardrailsSection"]["properties"];
    for key in [
        "enabled",
        "disabled_patterns",
        "custom_patterns",
        "upgoing",
        "downgoing",
        "custom_upgoing",
        "custom_downgoing",
        "models",
        "providers",
        "exempt_models",
        "exempt_providers",
        "block_message",
    ] {
        assert!(section.get(key).is_some(), "{key}");
    }
    for id in GUARDRAIL_BUILTINS {
        assert!(section["upgoing"]["properties"].get(id).is_some(), "{id}");
    }
    assert_eq!(
        schema["properties"]["plugins"]["properties"]["bitrouter-guardrails"]["$ref"],
        "#/definitions/GuardrailsPluginSection"
    );
    let actions: Vec<&serde_json::Value> = defs["GuardrailActionName"]["oneOf"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| &v["const"])
        .collect();
    assert_eq!(actions, ["warn", "redact", "block"]);
}
