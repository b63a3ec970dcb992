//! Loading and validation through the public API: the documented examples, every problem with
//! its position, registry inheritance and environment overrides.

use bitrouter_config::{
    load, load_str, AuthStyle, Config, ConfigError, ConfigSource, MapEnv, Protocol, ProviderOrigin,
    RoutingTable,
};
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::new(pairs.iter().copied())
}

fn ok(text: &str, env: &MapEnv) -> Config {
    match load_str(text, "bitrouter.yaml", env) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

fn err(text: &str, env: &MapEnv) -> ConfigError {
    match load_str(text, "bitrouter.yaml", env) {
        Ok(c) => panic!("expected problems, got {c:#?}"),
        Err(e) => e,
    }
}

/// (line, col, message) of every problem.
fn problems(text: &str, env: &MapEnv) -> Vec<(usize, usize, String)> {
    err(text, env)
        .problems
        .into_iter()
        .map(|p| (p.line, p.col, p.message))
        .collect()
}

fn assert_problem(problems: &[(usize, usize, String)], line: usize, col: usize, needle: &str) {
    assert!(
        problems
            .iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no problem at {line}:{col} containing {needle:?} in {problems:#?}"
    );
}

const SELF_HOST: &str = include_str!("fixtures/self_host.yaml");
const LOCAL_MODELS: &str = include_str!("fixtures/local_models.yaml");

fn keys() -> MapEnv {
    env(&[
        ("OPENAI_API_KEY", "sk-openai"),
        ("ANTHROPIC_API_KEY", "sk-ant"),
    ])
}

#[test]
fn self_host_example_loads_unchanged() {
    let config = ok(SELF_HOST, &keys());
    assert_eq!(config.source, ConfigSource::File("bitrouter.yaml".into()));
    assert_eq!(config.server.listen, "127.0.0.1:4356");
    assert_eq!(config.server.log_level, "info");
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["openai", "anthropic"]);

    let openai = &config.providers[0];
    assert_eq!(openai.api_base, "https://api.openai.com/v1");
    assert_eq!(openai.api_key().unwrap().expose(), "sk-openai");
    assert_eq!(openai.models, ["gpt-4o"]);
    assert!(
        openai.model_patterns.is_empty(),
        "an explicit list replaces the patterns"
    );
    assert_eq!(openai.auth, AuthStyle::Bearer);
    assert_eq!(openai.protocol_for("gpt-4o"), Protocol::ChatCompletions);
    assert_eq!(openai.source, ProviderOrigin::Config);

    let anthropic = &config.providers[1];
    assert_eq!(anthropic.api_base, "https://api.anthropic.com");
    assert_eq!(anthropic.base_path, "");
    assert_eq!(anthropic.origin.host, "api.anthropic.com");
    assert_eq!(anthropic.origin.port, 443);
    assert!(anthropic.origin.tls);
    assert_eq!(anthropic.auth, AuthStyle::XApiKey);
    assert_eq!(
        anthropic.protocol_for("claude-sonnet-4-6"),
        Protocol::Messages
    );
    assert!(anthropic
        .headers
        .contains(&("anthropic-version".to_string(), "2023-06-01".to_string())));
    assert_eq!(
        anthropic.endpoint_path(Protocol::Messages, "claude-sonnet-4-6", false),
        "/v1/messages"
    );

    let smart = &config.models["smart"];
    assert_eq!(smart.endpoints.len(), 2);
    assert_eq!(smart.endpoints[0].provider, "anthropic");
    assert_eq!(smart.endpoints[1].service_id, "gpt-4o");

    let table = RoutingTable::new(&config);
    let r = table.resolve("smart").unwrap();
    let order: Vec<(&str, &str, Protocol)> = r
        .targets
        .iter()
        .map(|t| (t.provider.id.as_str(), t.service_id.as_str(), t.protocol))
        .collect();
    assert_eq!(
        order,
        [
            ("anthropic", "claude-sonnet-4-6", Protocol::Messages),
            ("openai", "gpt-4o", Protocol::ChatCompletions)
        ]
    );
}

#[test]
fn unset_placeholder_is_named_with_its_position() {
    let e = err(SELF_HOST, &env(&[("OPENAI_API_KEY", "sk")]));
    assert_eq!(e.problems.len(), 1, "{e}");
    let p = &e.problems[0];
    assert_eq!((p.line, p.col), (16, 14));
    assert!(p.message.contains("`ANTHROPIC_API_KEY`"), "{}", p.message);
    assert!(
        p.message.contains("providers.anthropic.api_key"),
        "{}",
        p.message
    );
    assert_eq!(
        e.to_string(),
        format!("bitrouter.yaml:16:14: {}", p.message)
    );
}

#[test]
fn local_models_example_loads() {
    let config = ok(LOCAL_MODELS, &env(&[]));
    assert_eq!(config.providers.len(), 1);
    let ollama = &config.providers[0];
    assert_eq!(ollama.id, "ollama");
    assert_eq!(ollama.api_base, "http://localhost:11434/v1");
    assert!(!ollama.origin.tls);
    assert_eq!(ollama.origin.port, 11434);
    assert_eq!(ollama.base_path, "/v1");
    assert!(ollama.api_key().is_none());
    assert_eq!(ollama.models, ["llama3.1"]);
    assert_eq!(ollama.protocol_for("llama3.1"), Protocol::ChatCompletions);
    assert_eq!(
        ollama.endpoint_path(Protocol::ChatCompletions, "llama3.1", true),
        "/v1/chat/completions"
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    let table = RoutingTable::new(&config);
    assert_eq!(
        table.resolve("llama3.1").unwrap().targets[0].provider.id,
        "ollama"
    );
}

#[test]
fn local_server_without_api_protocol_infers_chat_completions() {
    let text =
        "providers:\n  vllm:\n    api_base: http://127.0.0.1:8000\n    models: [Qwen/Qwen3-8B]\n";
    let config = ok(text, &env(&[]));
    let vllm = &config.providers[0];
    assert_eq!(
        vllm.protocol_for("Qwen/Qwen3-8B"),
        Protocol::ChatCompletions
    );
    assert_eq!(vllm.auth, AuthStyle::Bearer);
    assert!(vllm.api_key().is_none());
    assert_eq!(
        vllm.endpoint_path(Protocol::ChatCompletions, "x", false),
        "/v1/chat/completions"
    );
}

#[test]
fn unknown_top_level_section_is_reported_at_its_key() {
    let text = "server:\n  listen: 127.0.0.1:1\nprovders:\n  openai: {}\n";
    let p = problems(text, &env(&[]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(
        &p,
        3,
        1,
        "unknown top-level section `provders`, expected one of `server`, `upstream`, `providers`",
    );
}

#[test]
fn unknown_nested_field_is_reported_at_its_key() {
    let text = "\
providers:
  openai:
    api_bse: https://api.openai.com/v1
    models:
      - id: gpt-4o
        nme: GPT
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        3,
        5,
        "unknown field `api_bse` in provider `openai`, expected one of `api_base`, `api_key`",
    );
    assert_problem(
        &p,
        6,
        9,
        "unknown field `nme` in `models[0]` of provider `openai`",
    );
    assert_eq!(p.len(), 2, "{p:#?}");
}

#[test]
fn every_problem_is_reported_in_file_order() {
    let text = "\
server:
  log_level: verbose
  listen: localhost
providers:
  good:
    api_base: http://localhost:1234
    api_protocol:
      - \"gpt-[4\": chat_completions
  bad:
    api_base: ftp://example.com
    api_key: ${NOT_SET}
  typo:
    api_bse: x
models:
  smart:
    endpoints:
      - provider: nobody
        service_id: m
  empty:
    endpoints: []
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        2,
        14,
        "unknown variant `verbose`, expected one of `error`, `warn`, `info`, `debug`, `trace`",
    );
    assert_problem(&p, 8, 9, "invalid glob `gpt-[4`");
    assert_problem(&p, 11, 14, "`NOT_SET`");
    assert_problem(&p, 13, 5, "unknown field `api_bse` in provider `typo`");
    assert_problem(
        &p,
        17,
        19,
        "unknown provider `nobody` in virtual model `smart`",
    );
    assert_problem(&p, 20, 5, "virtual model `empty` has no endpoints");
    let lines: Vec<usize> = p.iter().map(|(l, _, _)| *l).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted, "problems are in file order");
    // `listen: localhost` is checked too (server decoded, then validated), as is the bad URL
    // once its placeholder problem is fixed.
    let text_fixed = text.replace("${NOT_SET}", "k").replace("verbose", "info");
    let p = problems(&text_fixed, &env(&[]));
    assert_problem(&p, 3, 11, "invalid `listen` address `localhost`");
    assert_problem(&p, 10, 15, "scheme `ftp` is not supported");
}

#[test]
fn invalid_values_are_reported_at_the_value() {
    let text = "\
server:
  max_body_bytes: lots
  threads: 0
providers:
  p:
    api_base: not a url
    models:
      - id: a
        context_length: big
        max_output_tokens: -1
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        2,
        19,
        "`server.max_body_bytes`: invalid type: string \"lots\", expected a non-negative integer",
    );
    assert_problem(&p, 3, 12, "expected a positive integer");
    assert_problem(&p, 9, 25, "`providers.p.models[0].context_length`");
    assert_problem(&p, 10, 28, "`providers.p.models[0].max_output_tokens`");
    assert_eq!(p.len(), 4, "{p:#?}");
}

#[test]
fn missing_required_fields() {
    let text = "\
providers:
  p:
    api_base: http://x
    models:
      - name: no id
models:
  m:
    endpoints:
      - provider: p
  n:
    strategy: priority
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        5,
        9,
        "missing field `id` in `models[0]` of provider `p`",
    );
    assert_problem(
        &p,
        9,
        9,
        "missing field `service_id` in `endpoints[0]` of virtual model `m`",
    );
    assert_problem(&p, 10, 3, "missing field `endpoints` in virtual model `n`");
}

#[test]
fn yaml_syntax_errors_use_the_parser_position() {
    let p = problems("server:\n  listen: [1\n", &env(&[]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert!(p[0].0 >= 2 && p[0].2.starts_with("invalid YAML:"), "{p:#?}");

    let p = problems(
        "providers:\n  a: {api_base: http://a}\n  b: {api_base: http://b}\n  a: {api_base: http://c}\n",
        &env(&[]),
    );
    assert_eq!(p, [(4, 3, "duplicate key `a` in `providers`".to_string())]);

    let p = problems("- just\n- a list\n", &env(&[]));
    assert_problem(&p, 1, 1, "the top level must be a mapping");
}

#[test]
fn missing_file_is_one_problem_without_position() {
    let e = load(Some(Path::new("/nonexistent/bitrouter.yaml")), &env(&[])).unwrap_err();
    assert_eq!(e.problems.len(), 1);
    assert_eq!(e.problems[0].line, 0);
    assert_eq!(e.problems[0].file, "/nonexistent/bitrouter.yaml");
    assert_eq!(
        e.to_string(),
        "/nonexistent/bitrouter.yaml: config file not found"
    );
}

#[test]
fn not_implemented_sections_warn_once_each() {
    let text = "mcp:\n  servers: [a]\nagents: {x: 1}\ndatabase: {url: 'sqlite://x'}\npresets:\nvariants:\nupstream:\n";
    let config = ok(text, &env(&[("OPENAI_API_KEY", "k")]));
    for s in ["presets", "variants", "upstream", "database"] {
        assert!(
            !config
                .warnings
                .iter()
                .any(|w| w.contains(&format!("`{s}`"))),
            "{s} is implemented: {:?}",
            config.warnings
        );
    }
    for s in ["mcp", "agents"] {
        let n = config
            .warnings
            .iter()
            .filter(|w| w.contains(&format!("section `{s}` is parsed but not implemented yet")))
            .count();
        assert_eq!(n, 1, "{s}: {:?}", config.warnings);
    }
    // Placeholders in sections that have no effect are not resolved (and cannot fail).
    ok(
        "plugins:\n  - ${UNSET_PLUGIN}\n",
        &env(&[("OPENAI_API_KEY", "k")]),
    );
}

#[test]
fn strategies() {
    use bitrouter_config::Strategy;
    let base = "providers:\n  p: {api_base: 'http://x'}\nmodels:\n  m:\n    strategy: STRATEGY\n    endpoints: [{provider: p, service_id: a, weight: 3}]\n";
    for (name, strategy) in [
        ("priority", Strategy::Priority),
        ("round_robin", Strategy::RoundRobin),
        ("weighted", Strategy::Weighted),
        ("least_latency", Strategy::LeastLatency),
    ] {
        let config = ok(&base.replace("STRATEGY", name), &env(&[]));
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
        assert_eq!(config.models["m"].strategy, strategy);
        assert_eq!(strategy.as_str(), name);
        assert_eq!(config.models["m"].endpoints[0].weight, 3);
    }
    let p = problems(&base.replace("STRATEGY", "fastest"), &env(&[]));
    assert_problem(
        &p,
        5,
        15,
        "unknown variant `fastest`, expected one of `priority`, `round_robin`, `weighted`, `least_latency`",
    );
}

#[test]
fn virtual_model_names() {
    let text = "providers:\n  p: {api_base: 'http://x'}\nmodels:\n  p:\n    endpoints: [{provider: p, service_id: a}]\n  team/fast:\n    endpoints: [{provider: p, service_id: a}]\n";
    let p = problems(text, &env(&[]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(
        &p,
        4,
        3,
        "virtual model `p` has the same name as provider `p`",
    );
    let config = ok(
        &text.replace("  p:\n    endpoints", "  q:\n    endpoints"),
        &env(&[]),
    );
    assert!(config.models.contains_key("team/fast"));
}

#[test]
fn endpoint_naming_an_inactive_builtin_says_how_to_activate_it() {
    let text =
        "models:\n  m:\n    endpoints: [{provider: anthropic, service_id: claude-sonnet-4-5}]\n";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        3,
        28,
        "built-in provider `anthropic` is not active; set ANTHROPIC_API_KEY",
    );
    // Detected from the environment, it is a valid endpoint.
    let config = ok(text, &env(&[("ANTHROPIC_API_KEY", "k")]));
    assert_eq!(
        config.providers[0].source,
        ProviderOrigin::Env {
            var: "ANTHROPIC_API_KEY".into()
        }
    );
}

#[test]
fn broken_provider_does_not_cascade_into_virtual_models() {
    let text = "providers:\n  p:\n    api_base: http://x\n    colour: red\nmodels:\n  m:\n    endpoints: [{provider: p, service_id: a}]\n";
    let p = problems(text, &env(&[]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, 4, 5, "unknown field `colour`");
}

#[test]
fn api_base_is_normalised() {
    let text = "\
providers:
  a: {api_base: 'https://api.anthropic.com/', api_protocol: messages}
  b: {api_base: 'https://api.anthropic.com/v1/', api_protocol: messages}
  r: {api_base: 'https://openrouter.ai/api/v1'}
  v6: {api_base: 'http://[::1]:8080/base/'}
";
    let config = ok(text, &env(&[]));
    let [a, b, r, v6] = &config.providers[..] else {
        panic!()
    };
    assert_eq!(
        (a.api_base.as_str(), a.base_path.as_str()),
        ("https://api.anthropic.com", "")
    );
    assert_eq!(
        (b.api_base.as_str(), b.base_path.as_str()),
        ("https://api.anthropic.com/v1", "/v1")
    );
    for p in [a, b] {
        assert_eq!(
            p.endpoint_path(Protocol::Messages, "claude-x", false),
            "/v1/messages"
        );
        assert_eq!(p.auth, AuthStyle::XApiKey);
    }
    assert_eq!(
        r.endpoint_path(r.protocol_for("x"), "x", false),
        "/api/v1/chat/completions"
    );
    assert_eq!(
        (v6.origin.host.as_str(), v6.origin.port, v6.origin.tls),
        ("::1", 8080, false)
    );
    assert_eq!(v6.base_path, "/base");
}

#[test]
fn invalid_api_bases() {
    for (base, why) in [
        ("localhost:11434", "must start with `http://` or `https://`"),
        ("ftp://x", "scheme `ftp` is not supported"),
        ("http://user:pw@x", "credentials in the URL"),
        ("http://x/?a=b", "query string"),
        ("''", "it is empty"),
    ] {
        let text = format!("providers:\n  p:\n    api_base: {base}\n");
        let p = problems(&text, &env(&[]));
        assert_problem(&p, 3, 15, why);
        assert!(
            !p[0].2.contains("pw"),
            "credentials must not be echoed: {}",
            p[0].2
        );
    }
}

#[test]
fn protocol_inference_from_host() {
    let text = "\
providers:
  claude-proxy: {api_base: 'https://eu.anthropic.com'}
  gem: {api_base: 'https://generativelanguage.googleapis.com'}
  gem-openai: {api_base: 'https://generativelanguage.googleapis.com/v1beta/openai'}
  other: {api_base: 'https://llm.example.com/v1', api_key: k}
";
    let config = ok(text, &env(&[]));
    let get = |id: &str| config.providers.iter().find(|p| p.id == id).unwrap();
    let claude = get("claude-proxy");
    assert_eq!(claude.protocol_for("x"), Protocol::Messages);
    assert_eq!(claude.auth, AuthStyle::XApiKey);
    // Messages needs a version header even when the client speaks another protocol.
    assert_eq!(
        claude.headers,
        [("anthropic-version".to_string(), "2023-06-01".to_string())]
    );
    assert!(get("other").headers.is_empty());
    let gem = get("gem");
    assert_eq!(
        gem.protocol_for("gemini-2.5-pro"),
        Protocol::GenerateContent
    );
    assert_eq!(gem.auth, AuthStyle::GoogApiKey);
    assert_eq!(
        gem.endpoint_path(Protocol::GenerateContent, "gemini-2.5-pro", false),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    let gem_openai = get("gem-openai");
    assert_eq!(
        gem_openai.protocol_for("gemini-2.5-pro"),
        Protocol::ChatCompletions
    );
    assert_eq!(
        gem_openai.endpoint_path(Protocol::ChatCompletions, "x", false),
        "/v1beta/openai/chat/completions"
    );
    assert_eq!(get("other").protocol_for("x"), Protocol::ChatCompletions);
    assert_eq!(get("other").auth, AuthStyle::Bearer);
}

#[test]
fn api_protocol_rules() {
    let text = "\
providers:
  zen:
    api_base: https://zen.example.com/v1
    api_protocol:
      - \"claude-*\": messages
      - \"gemini-*\": [generate_content, chat_completions]
  one:
    api_base: https://one.example.com
    api_protocol: [{\"*\": responses}]
";
    let config = ok(text, &env(&[]));
    let zen = &config.providers[0];
    assert_eq!(zen.protocol_for("claude-sonnet-4-5"), Protocol::Messages);
    assert_eq!(
        zen.protocol_for("gemini-2.5-pro"),
        Protocol::GenerateContent
    );
    // No `*` rule: the inferred protocol is the catch-all.
    assert_eq!(zen.protocol_for("kimi-k2"), Protocol::ChatCompletions);
    assert_eq!(zen.auth, AuthStyle::Bearer);
    assert!(zen.headers.iter().any(|(n, _)| n == "anthropic-version"));
    let one = &config.providers[1];
    assert_eq!(one.protocol_for("x"), Protocol::Responses);
    assert_eq!(
        one.endpoint_path(Protocol::Responses, "x", false),
        "/v1/responses"
    );

    let bad = "providers:\n  p:\n    api_base: http://x\n    api_protocol:\n      - {\"a*\": messages, \"*\": chat_completions}\n      - \"*\": mesages\n";
    let p = problems(bad, &env(&[]));
    assert_problem(
        &p,
        6,
        14,
        "unknown protocol `mesages`, expected one of `chat_completions`",
    );
}

#[test]
fn api_protocol_rule_with_two_pairs() {
    let bad = "providers:\n  p:\n    api_base: http://x\n    api_protocol:\n      - {\"a*\": messages, \"*\": chat_completions}\n";
    let p = problems(bad, &env(&[]));
    assert_problem(
        &p,
        5,
        10,
        "must be one `\"glob\": protocol` pair, found 2 pairs",
    );
}

#[test]
fn registry_defaults_are_inherited() {
    let text = "providers:\n  openai: {}\n  anthropic:\n    api_key: ${MY_KEY}\n  google:\n";
    let config = ok(
        text,
        &env(&[
            ("OPENAI_API_KEY", "sk-o"),
            ("MY_KEY", "sk-a"),
            ("GEMINI_API_KEY", "g"),
        ]),
    );
    let [openai, anthropic, google] = &config.providers[..] else {
        panic!("{:?}", config.providers)
    };
    assert_eq!(openai.api_base, "https://api.openai.com/v1");
    assert_eq!(openai.api_key().unwrap().expose(), "sk-o");
    assert!(openai.models.iter().any(|m| m == "gpt-4o"));
    assert!(openai.model_patterns.iter().any(|m| m == "gpt-*"));
    assert_eq!(
        openai.protocols.rules,
        [(
            "*".to_string(),
            vec![Protocol::ChatCompletions, Protocol::Responses]
        )]
    );
    assert_eq!(openai.source, ProviderOrigin::Config);
    assert_eq!(anthropic.api_key().unwrap().expose(), "sk-a");
    assert_eq!(anthropic.api_base, "https://api.anthropic.com/v1");
    assert_eq!(google.api_key().unwrap().expose(), "g");
    assert_eq!(google.auth, AuthStyle::GoogApiKey);
    assert_eq!(
        google.endpoint_path(Protocol::GenerateContent, "gemini-2.5-flash", true),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[test]
fn configured_builtin_without_key_warns() {
    let config = ok("providers:\n  openai: {}\n", &env(&[]));
    assert!(config.providers[0].api_key().is_none());
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("provider `openai` has no API key")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn env_overrides_base_url_and_supplies_keys() {
    let text = "providers:\n  openai: {}\n  mine:\n    api_base: http://file\n";
    let config = ok(
        text,
        &env(&[
            ("BITROUTER_OPENAI_API_BASE", "http://127.0.0.1:9000/v1"),
            ("BITROUTER_OPENAI_API_KEY", "sk-bitrouter"),
            ("OPENAI_API_KEY", "sk-plain"),
            ("BITROUTER_MINE_API_BASE", "http://127.0.0.1:9001"),
            ("BITROUTER_MINE_API_KEY", "sk-mine"),
        ]),
    );
    let [openai, mine] = &config.providers[..] else {
        panic!("{:?}", config.providers)
    };
    assert_eq!(openai.api_base, "http://127.0.0.1:9000/v1");
    assert_eq!(openai.origin.port, 9000);
    assert_eq!(openai.api_key().unwrap().expose(), "sk-bitrouter");
    assert_eq!(mine.api_base, "http://127.0.0.1:9001");
    assert_eq!(mine.api_key().unwrap().expose(), "sk-mine");

    let p = problems(text, &env(&[("BITROUTER_MINE_API_BASE", "nope")]));
    assert_problem(
        &p,
        3,
        3,
        "`BITROUTER_MINE_API_BASE` (the base URL of provider `mine`) is invalid",
    );
}

#[test]
fn configured_providers_come_first_and_are_not_duplicated() {
    let config = ok(
        "providers:\n  anthropic: {}\n",
        &env(&[
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
            ("OPENROUTER_API_KEY", "r"),
        ]),
    );
    let ids: Vec<(&str, &ProviderOrigin)> = config
        .providers
        .iter()
        .map(|p| (p.id.as_str(), &p.source))
        .collect();
    assert_eq!(
        ids,
        [
            ("anthropic", &ProviderOrigin::Config),
            (
                "openai",
                &ProviderOrigin::Env {
                    var: "OPENAI_API_KEY".into()
                }
            ),
            (
                "openrouter",
                &ProviderOrigin::Env {
                    var: "OPENROUTER_API_KEY".into()
                }
            ),
        ]
    );
}

#[test]
fn placeholders_cannot_inject_structure() {
    let text = "providers:\n  p:\n    api_base: http://x\n    api_key: ${EVIL}\n    headers:\n      X-Team: ${TEAM:-core}\n";
    // The value is one string (rejected as a key for its line break), never YAML.
    let p = problems(text, &env(&[("EVIL", "k\n    models: [injected]")]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(&p, 4, 14, "contains a control character");
    let config = ok(text, &env(&[("EVIL", "a: [b], c: {d}")]));
    let p = &config.providers[0];
    assert_eq!(p.api_key().unwrap().expose(), "a: [b], c: {d}");
    assert!(p.models.is_empty());
    assert_eq!(p.headers, [("X-Team".to_string(), "core".to_string())]);
}

#[test]
fn control_characters_in_keys_and_headers_are_rejected() {
    let text = "providers:\n  p:\n    api_base: http://x\n    api_key: ${K}\n    headers:\n      X-A: ${H}\n      'bad name': v\n";
    let p = problems(text, &env(&[("K", "sk\n"), ("H", "v\r\nX-Evil: 1")]));
    assert_problem(&p, 4, 14, "contains a control character");
    assert_problem(&p, 6, 12, "header `X-A` contains a line break");
    assert_problem(&p, 7, 7, "`bad name` is not a valid HTTP header name");
}

#[test]
fn forward_headers_are_lower_cased_and_credentials_refused() {
    let text = "providers:\n  p:\n    api_base: http://x\n    forward_headers: [X-Tenant, x-tenant, OpenAI-Organization]\n";
    let config = ok(text, &env(&[]));
    assert_eq!(
        config.providers[0].forward_headers,
        ["x-tenant", "openai-organization"]
    );
    // Absent: nothing beyond the built-in allow-list (and existing files keep loading).
    let config = ok("providers:\n  p:\n    api_base: http://x\n", &env(&[]));
    assert!(config.providers[0].forward_headers.is_empty());
    let text = "providers:\n  p:\n    api_base: http://x\n    forward_headers:\n      - Authorization\n      - 'bad name'\n      - cookie\n";
    let p = problems(text, &env(&[]));
    assert_problem(&p, 5, 9, "`Authorization` cannot be forwarded");
    assert_problem(&p, 6, 9, "`bad name` is not a valid HTTP header name");
    assert_problem(&p, 7, 9, "`cookie` cannot be forwarded");
}

#[test]
fn model_entries_accept_the_shorthand() {
    let text = "providers:\n  ollama:\n    models:\n      - llama3.1:8b\n      - id: qwen3:4b\n        name: Qwen\n        context_length: 32768\n        max_output_tokens: 8192\n";
    let config = ok(text, &env(&[]));
    assert_eq!(config.providers[0].models, ["llama3.1:8b", "qwen3:4b"]);
    assert_eq!(config.providers[0].api_base, "http://localhost:11434/v1");
    assert_eq!(config.providers[0].auth, AuthStyle::None);
}

#[test]
fn debug_output_never_contains_secrets() {
    let text = "providers:\n  p:\n    api_base: http://x\n    api_key: ${KEY}\n    headers:\n      Authorization: Bearer tok-secret-2\n";
    let config = ok(
        text,
        &env(&[
            ("KEY", "sk-secret-1"),
            ("BITROUTER_API_KEY", "gw-secret-3"),
            ("OPENAI_API_KEY", "sk-secret-4"),
        ]),
    );
    let dbg = format!("{config:?} {config:#?}");
    for secret in ["sk-secret-1", "tok-secret-2", "gw-secret-3", "sk-secret-4"] {
        assert!(!dbg.contains(secret), "{secret} leaked");
    }
    assert!(dbg.contains("Secret(***)"));
    assert_eq!(
        config.server.api_key.as_ref().unwrap().expose(),
        "gw-secret-3"
    );
}

#[test]
fn server_section() {
    let text = "server:\n  listen: '[::1]:0'\n  log_level: debug\n  skip_auth: false\n  control_socket: /run/bitrouter.sock\n  max_body_bytes: 1024\n  shutdown_grace_secs: 2\n  keepalive_secs: 0\n  threads: 4\n";
    let config = ok(text, &env(&[("BITROUTER_API_KEY", "gw")]));
    let s = &config.server;
    assert_eq!(s.listen, "[::1]:0");
    assert_eq!(s.log_level, "debug");
    assert!(!s.skip_auth);
    assert_eq!(
        s.control_socket.as_deref(),
        Some(Path::new("/run/bitrouter.sock"))
    );
    assert_eq!(
        (s.max_body_bytes, s.shutdown_grace_secs, s.threads),
        (1024, 2, Some(4))
    );
    assert_eq!(s.keepalive_secs, 0);
    // No providers is worth a warning, not an error.
    assert!(config.warnings.iter().any(|w| w.contains("no providers")));

    let defaults = ok("", &env(&[])).server;
    assert_eq!(defaults.listen, "127.0.0.1:4356");
    assert_eq!(defaults.max_body_bytes, 32 * 1024 * 1024);
    assert_eq!(defaults.shutdown_grace_secs, 5);
    assert_eq!(defaults.keepalive_secs, 60);
    assert!(defaults.skip_auth);
    let p = problems("server:\n  keepalive_secs: 2592001\n", &env(&[]));
    assert_problem(
        &p,
        2,
        19,
        "`server.keepalive_secs` must be at most 2592000 seconds (30 days), found 2592001",
    );

    let warned = ok("server:\n  skip_auth: false\n", &env(&[]));
    assert!(warned
        .warnings
        .iter()
        .any(|w| w.contains("BITROUTER_API_KEY is not set")));

    for (listen, why) in [
        ("localhost:99999", "port `99999`"),
        (":4356", "host is missing"),
        ("::1:4356", "IPv6 address must be in brackets"),
    ] {
        let p = problems(&format!("server:\n  listen: '{listen}'\n"), &env(&[]));
        assert_problem(&p, 2, 11, why);
    }
}

#[test]
fn files_resolve_relative_paths_and_check_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bitrouter.yaml");
    std::fs::write(
        &path,
        "server:\n  control_socket: run/ctl.sock\nproviders:\n  mock:\n    api_base: https://127.0.0.1:1\n    ca_file: ca.pem\n",
    )
    .unwrap();
    let e = load(Some(&path), &env(&[])).unwrap_err();
    assert_eq!(e.problems.len(), 1, "{e}");
    assert_eq!((e.problems[0].line, e.problems[0].col), (6, 14));
    assert!(e.problems[0].message.contains("is not a readable file"));

    std::fs::write(dir.path().join("ca.pem"), "-----BEGIN CERTIFICATE-----\n").unwrap();
    let config = load(Some(&path), &env(&[])).unwrap();
    assert_eq!(
        config.providers[0].ca_file.as_deref(),
        Some(dir.path().join("ca.pem").as_path())
    );
    assert_eq!(
        config.server.control_socket.as_deref(),
        Some(dir.path().join("run/ctl.sock").as_path())
    );
    assert_eq!(config.source, ConfigSource::File(path.clone()));
}

#[test]
fn merge_keys_and_anchors_work() {
    let text = "\
x-local: &local
  api_protocol: chat_completions
providers:
  a:
    <<: *local
    api_base: http://a
";
    // `x-local` is not a section: anchors must live inside a known section or be rejected.
    let p = problems(text, &env(&[]));
    assert_problem(&p, 1, 1, "unknown top-level section `x-local`");
    let text = "\
providers:
  a: &local
    api_base: http://a
    api_protocol: messages
  b:
    <<: *local
    api_base: http://b
";
    let config = ok(text, &env(&[]));
    assert_eq!(config.providers[1].api_base, "http://b");
    assert_eq!(config.providers[1].protocol_for("x"), Protocol::Messages);
}

// ----- Reliability: upstream, accounts, health checks, retries, presets, variants
// (docs/reliability.md).

use bitrouter_config::{AccountStrategy, HealthCheckKind, SortBy, Strategy, Timeouts};
use std::time::Duration;

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn reliability_keys_default_when_absent() {
    let config = ok(SELF_HOST, &keys());
    assert_eq!(config.upstream, bitrouter_config::UpstreamConfig::default());
    let t = config.upstream.timeouts;
    assert_eq!(
        (t.connect, t.read, t.write, t.pool_idle),
        (secs(10.0), secs(120.0), secs(60.0), secs(90.0))
    );
    assert_eq!((t.tcp_keepalive, t.total, t.first_byte), (None, None, None));
    let h = config.upstream.health;
    assert_eq!(
        (h.failure_threshold, h.eject, h.max_eject, h.max_cooldown),
        (3, secs(10.0), secs(300.0), secs(300.0))
    );
    assert_eq!(
        config.upstream.retry.statuses,
        [429, 500, 502, 503, 504, 529]
    );
    assert!(config.upstream.retry.on_connect && config.upstream.retry.on_timeout);
    assert!(config.presets.is_empty() && config.variants.is_empty());
    for p in &config.providers {
        assert_eq!(p.timeouts, Timeouts::default());
        assert_eq!(p.health_check, None);
        assert_eq!(p.account_strategy, AccountStrategy::Balance);
        assert_eq!(p.accounts.len(), 1);
        assert_eq!(p.accounts[0].label, "default");
    }
    let smart = &config.models["smart"];
    assert_eq!(smart.retry, bitrouter_config::RetryPolicy::default());
    assert_eq!(smart.preset, None);
    assert_eq!(smart.strategy, Strategy::Priority);
    assert_eq!(
        (smart.endpoints[0].weight, smart.endpoints[0].price),
        (1, None)
    );
}

#[test]
fn upstream_timeouts_overlay_per_provider() {
    let text = "\
upstream:
  timeouts:
    connect_secs: 5
    read_secs: 0.5
    total_secs: 600
  health:
    failure_threshold: 5
    eject_secs: 2.5
    max_eject_secs: 60
    max_cooldown_secs: 30
providers:
  local-gpu:
    api_base: http://127.0.0.1:8000/v1
    timeouts: { first_byte_secs: 5, read_secs: 30, tcp_keepalive_secs: 15 }
  plain:
    api_base: http://127.0.0.1:8001
";
    let config = ok(text, &env(&[("OPENAI_API_KEY", "k")]));
    let up = config.upstream.timeouts;
    assert_eq!(up.connect, secs(5.0));
    assert_eq!(up.read, secs(0.5));
    assert_eq!(up.write, secs(60.0), "unset keeps the default");
    assert_eq!(up.total, Some(secs(600.0)));
    assert_eq!(up.first_byte, None);
    let h = config.upstream.health;
    assert_eq!(
        (h.failure_threshold, h.eject, h.max_eject, h.max_cooldown),
        (5, secs(2.5), secs(60.0), secs(30.0))
    );

    let get = |id: &str| config.providers.iter().find(|p| p.id == id).unwrap();
    let gpu = get("local-gpu").timeouts;
    assert_eq!(gpu.connect, secs(5.0), "from upstream");
    assert_eq!(gpu.read, secs(30.0), "overridden");
    assert_eq!(gpu.first_byte, Some(secs(5.0)));
    assert_eq!(gpu.tcp_keepalive, Some(secs(15.0)));
    assert_eq!(gpu.total, Some(secs(600.0)), "from upstream");
    assert_eq!(get("plain").timeouts, up);
    // Auto-detected providers get the upstream defaults too.
    assert_eq!(get("openai").timeouts, up);
}

#[test]
fn invalid_seconds_are_reported_at_the_value() {
    let text = "\
upstream:
  timeouts:
    connect_secs: -1
    read_secs: .nan
    write_secs: .inf
  health:
    failure_threshold: 0
    eject_secs: 20
    max_eject_secs: 10
providers:
  p:
    api_base: http://x
    timeouts:
      first_byte_secs: -0.5
      total: 3
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        3,
        19,
        "`upstream.timeouts.connect_secs` must be a non-negative number of seconds, found -1",
    );
    assert_problem(
        &p,
        4,
        16,
        "`upstream.timeouts.read_secs` must be a non-negative number of seconds, found NaN",
    );
    assert_problem(&p, 5, 17, "found inf");
    assert_problem(
        &p,
        7,
        24,
        "`upstream.health.failure_threshold` must be at least 1",
    );
    assert_problem(
        &p,
        9,
        21,
        "`upstream.health.max_eject_secs` (10) is shorter than `eject_secs` (20)",
    );
    assert_problem(
        &p,
        14,
        24,
        "`timeouts.first_byte_secs` of provider `p` must be a non-negative number of seconds, found -0.5",
    );
    assert_problem(
        &p,
        15,
        7,
        "unknown field `total` in `timeouts` of provider `p`, expected one of",
    );
    assert_eq!(p.len(), 7, "{p:#?}");

    let p = problems(
        "upstream:\n  timeouts:\n    pool_idle_secs: soon\n",
        &env(&[]),
    );
    assert_eq!(
        p,
        [(
            3,
            21,
            "`upstream.timeouts.pool_idle_secs`: invalid type: string \"soon\", expected a number"
                .to_string()
        )]
    );

    // Only `eject_secs` beyond the default ceiling raises the ceiling.
    let config = ok("upstream:\n  health: {eject_secs: 600}\n", &env(&[]));
    assert_eq!(config.upstream.health.max_eject, secs(600.0));
}

#[test]
fn accounts_replace_api_key() {
    let text = "\
providers:
  openai:
    accounts:
      - { label: team-a, api_key: \"${OPENAI_KEY_A}\" }
      - { label: team-b, api_key: \"${OPENAI_KEY_B}\" }
    account_strategy: failover
  anthropic:
    accounts:
      - label: only
        api_key: sk-ant
  ollama:
    accounts: [{label: gpu-1}, {label: gpu-2}]
";
    let config = ok(
        text,
        &env(&[
            ("OPENAI_KEY_A", "sk-a"),
            ("OPENAI_KEY_B", "sk-b"),
            // Not used: `accounts` is the whole list.
            ("OPENAI_API_KEY", "sk-env"),
        ]),
    );
    let [openai, anthropic, ollama] = &config.providers[..] else {
        panic!("{:?}", config.providers)
    };
    let accounts: Vec<(&str, &str)> = openai
        .accounts
        .iter()
        .map(|a| (a.label.as_str(), a.api_key.as_ref().unwrap().expose()))
        .collect();
    assert_eq!(accounts, [("team-a", "sk-a"), ("team-b", "sk-b")]);
    assert_eq!(openai.account_strategy, AccountStrategy::Failover);
    assert_eq!(openai.api_key().unwrap().expose(), "sk-a");
    assert_eq!(openai.auth, AuthStyle::Bearer);
    assert_eq!(anthropic.accounts.len(), 1);
    assert_eq!(anthropic.accounts[0].label, "only");
    assert_eq!(anthropic.account_strategy, AccountStrategy::Balance);
    // A keyless local server may have several keyless accounts.
    assert_eq!(ollama.auth, AuthStyle::None);
    assert!(ollama.accounts.iter().all(|a| a.api_key.is_none()));
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let dbg = format!("{config:?}");
    assert!(!dbg.contains("sk-a") && !dbg.contains("sk-b"), "{dbg}");
    assert!(dbg.contains("team-a"));
}

#[test]
fn account_problems() {
    let text = "\
providers:
  openai:
    api_key: sk
    accounts:
      - {label: a, api_key: k1}
      - {label: a, api_key: k2}
      - {label: '', api_key: k3}
      - {label: nokey}
      - {label: bad, api_key: \"${NL}\"}
  custom:
    api_base: http://x
    accounts: []
  typo:
    api_base: http://y
    accounts:
      - {lable: a}
";
    let p = problems(text, &env(&[("NL", "sk\n")]));
    assert_problem(
        &p,
        3,
        5,
        "provider `openai` has both `api_key` and `accounts`",
    );
    assert_problem(
        &p,
        6,
        17,
        "duplicate account label `a` in provider `openai`",
    );
    assert_problem(
        &p,
        7,
        17,
        "account 3 of provider `openai` has an empty `label`",
    );
    assert_problem(
        &p,
        8,
        10,
        "account `nokey` of provider `openai` has no `api_key`",
    );
    assert_problem(
        &p,
        9,
        31,
        "the API key of account `bad` of provider `openai` contains a control character",
    );
    assert_problem(&p, 12, 5, "`accounts` of provider `custom` is empty");
    assert_problem(
        &p,
        16,
        10,
        "unknown field `lable` in `accounts[0]` of provider `typo`",
    );

    // `${VAR}` in an account key is expanded like `api_key`.
    let text =
        "providers:\n  openai:\n    accounts:\n      - {label: a, api_key: \"${UNSET_KEY}\"}\n";
    let p = problems(text, &env(&[]));
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(
        &p,
        4,
        29,
        "environment variable `UNSET_KEY` is not set (referenced by `providers.openai.accounts[0].api_key`)",
    );
}

#[test]
fn health_checks() {
    let text = "\
providers:
  ollama:
    health_check: {}
  vllm:
    api_base: http://127.0.0.1:8000
    health_check:
      kind: tcp
      interval_secs: 2.5
      timeout_secs: 0.5
  tgi:
    api_base: http://127.0.0.1:8080/api/v1/
    health_check: { path: /health }
  none:
    api_base: http://127.0.0.1:8081
";
    let config = ok(text, &env(&[]));
    let get = |id: &str| {
        config
            .providers
            .iter()
            .find(|p| p.id == id)
            .unwrap()
            .health_check
            .clone()
    };
    let ollama = get("ollama").unwrap();
    assert_eq!(ollama.kind, HealthCheckKind::Http);
    assert_eq!(ollama.path, "/v1/models", "the base path + /models");
    assert_eq!((ollama.interval, ollama.timeout), (secs(10.0), secs(2.0)));
    let vllm = get("vllm").unwrap();
    assert_eq!(vllm.kind, HealthCheckKind::Tcp);
    assert_eq!(vllm.path, "/models");
    assert_eq!((vllm.interval, vllm.timeout), (secs(2.5), secs(0.5)));
    assert_eq!(get("tgi").unwrap().path, "/health");
    assert_eq!(get("none"), None);

    let bad = "\
providers:
  p:
    api_base: http://x
    health_check:
      kind: grpc
  q:
    api_base: http://y
    health_check:
      path: health
      interval_secs: 0
      timeout_secs: -2
";
    let p = problems(bad, &env(&[]));
    assert_problem(
        &p,
        5,
        13,
        "unknown variant `grpc`, expected `http` or `tcp`",
    );
    assert_problem(
        &p,
        9,
        13,
        "`health_check.path` of provider `q` must be an absolute path such as `/v1/models`, found `health`",
    );
    assert_problem(
        &p,
        10,
        22,
        "`health_check.interval_secs` of provider `q` must be a positive number of seconds, found 0",
    );
    assert_problem(
        &p,
        11,
        21,
        "`health_check.timeout_secs` of provider `q` must be a positive number of seconds, found -2",
    );
}

const RELIABLE: &str = "\
providers:
  p: {api_base: 'http://p'}
  q: {api_base: 'http://q'}
presets:
  concise:
    temperature: 0.2
    max_tokens: 512
    top_p: 0.9
    system_prompt_prefix: Answer in at most three sentences.
    reasoning_effort: low
variants:
  fast:
    sort: latency
  cheap:
    sort: price
    preset: concise
  pinned:
    providers: [q, p, q]
    params: { temperature: 0 }
models:
  smart:
    strategy: weighted
    endpoints:
      - { provider: p, service_id: a, weight: 3, price: 10 }
      - { provider: q, service_id: b, weight: 1, price: 2.5 }
    retry_on: [connect, 429, 503, \"502\"]
    max_attempts: 4
    deadline_secs: 60
    preset: concise
  plain:
    endpoints: [{provider: p, service_id: a}]
    deadline: 1.5
";

#[test]
fn virtual_model_retry_and_presets() {
    let config = ok(RELIABLE, &env(&[]));
    let smart = &config.models["smart"];
    assert_eq!(smart.strategy, Strategy::Weighted);
    assert_eq!(
        smart
            .endpoints
            .iter()
            .map(|e| (e.weight, e.price))
            .collect::<Vec<_>>(),
        [(3, Some(10.0)), (1, Some(2.5))]
    );
    assert!(smart.retry.on_connect);
    assert!(
        !smart.retry.on_timeout,
        "retry_on replaces the default list"
    );
    assert_eq!(smart.retry.statuses, [429, 503, 502]);
    assert!(smart.retry.retries_status(429) && !smart.retry.retries_status(500));
    assert_eq!(smart.retry.max_attempts, Some(4));
    assert_eq!(smart.retry.deadline, Some(secs(60.0)));
    assert_eq!(smart.preset.as_deref(), Some("concise"));

    let plain = &config.models["plain"];
    assert_eq!(
        plain.retry.deadline,
        Some(secs(1.5)),
        "the `deadline` alias"
    );
    assert_eq!(plain.retry.statuses, [429, 500, 502, 503, 504, 529]);
    assert_eq!(plain.retry.max_attempts, None);

    let concise = &config.presets["concise"];
    assert_eq!(concise.temperature, Some(0.2));
    assert_eq!(concise.top_p, Some(0.9));
    assert_eq!(concise.max_tokens, Some(512));
    assert_eq!(
        concise.system_prompt_prefix.as_deref(),
        Some("Answer in at most three sentences.")
    );
    assert_eq!(concise.reasoning_effort.as_deref(), Some("low"));

    let names: Vec<&str> = config.variants.keys().map(String::as_str).collect();
    assert_eq!(names, ["fast", "cheap", "pinned"]);
    assert_eq!(config.variants["fast"].sort, Some(SortBy::Latency));
    let cheap = &config.variants["cheap"];
    assert_eq!(
        (cheap.name.as_str(), cheap.sort, cheap.preset.as_deref()),
        ("cheap", Some(SortBy::Price), Some("concise"))
    );
    assert!(cheap.params.is_empty());
    let pinned = &config.variants["pinned"];
    assert_eq!(pinned.providers, ["q", "p"], "duplicates dropped");
    assert_eq!(pinned.params.temperature, Some(0.0));
    assert_eq!(pinned.sort, None);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn virtual_model_reliability_problems() {
    let text = "\
providers:
  p: {api_base: 'http://p'}
models:
  m:
    endpoints:
      - {provider: p, service_id: a, weight: 0, price: -1}
    retry_on: [connect, timout, 200, 600, 429]
    max_attempts: 0
    deadline_secs: -5
    preset: concise
  n:
    endpoints: [{provider: p, service_id: a}]
    deadline: 0
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        6,
        46,
        "the `weight` of endpoint 1 of virtual model `m` must be at least 1",
    );
    assert_problem(
        &p,
        6,
        56,
        "the `price` of endpoint 1 of virtual model `m` must be a non-negative number, found -1",
    );
    assert_problem(
        &p,
        7,
        25,
        "unknown `retry_on` entry `timout` in virtual model `m`, expected `connect`, `timeout` or an HTTP status from 400 to 599",
    );
    assert_problem(
        &p,
        7,
        33,
        "`retry_on` status 200 in virtual model `m` is not an error status: expected 400 to 599",
    );
    assert_problem(&p, 7, 38, "`retry_on` status 600");
    assert_problem(
        &p,
        8,
        19,
        "`max_attempts` of virtual model `m` must be at least 1",
    );
    assert_problem(
        &p,
        9,
        20,
        "`deadline_secs` of virtual model `m` must be a positive number of seconds, found -5",
    );
    assert_problem(
        &p,
        10,
        13,
        "unknown preset `concise` in virtual model `m`: no presets are defined",
    );
    assert_problem(
        &p,
        13,
        15,
        "`deadline` of virtual model `n` must be a positive number of seconds, found 0",
    );
    assert_eq!(p.len(), 9, "{p:#?}");
    let p = problems(
        "models:\n  n:\n    endpoints: [{provider: p, service_id: a}]\n    retry_on: connect\n",
        &env(&[]),
    );
    assert_problem(
        &p,
        4,
        15,
        "`models.n.retry_on`: invalid type: string \"connect\", expected a sequence",
    );

    let p = problems(
        &RELIABLE.replace(
            "    preset: concise\n  plain",
            "    preset: concice\n  plain",
        ),
        &env(&[]),
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_problem(
        &p,
        29,
        13,
        "unknown preset `concice` in virtual model `smart`, expected one of `concise`",
    );
}

#[test]
fn preset_and_variant_problems() {
    let text = "\
providers:
  p: {api_base: 'http://p'}
presets:
  'a:b': {}
  x@y: {}
  team/fast: {}
  '': {}
  hot:
    temperature: -1
    top_p: .nan
    max_tokens: 0
  typo:
    temprature: 1
variants:
  fast:
    providers: [p, nobody]
    preset: hto
  good:
    preset: typo
    params: {top_p: -0.1}
  'v:1': {}
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        4,
        3,
        "invalid preset name `a:b`: it contains `:`, which would make `model:variant@preset` ambiguous",
    );
    assert_problem(&p, 5, 3, "invalid preset name `x@y`: it contains `@`");
    assert_problem(&p, 6, 3, "invalid preset name `team/fast`: it contains `/`");
    assert_problem(&p, 7, 3, "invalid preset name ``: it is empty");
    assert_problem(
        &p,
        9,
        18,
        "`temperature` of preset `hot` must be a non-negative number, found -1",
    );
    assert_problem(
        &p,
        10,
        12,
        "`top_p` of preset `hot` must be a non-negative number, found NaN",
    );
    assert_problem(
        &p,
        11,
        17,
        "`max_tokens` of preset `hot` must be at least 1",
    );
    assert_problem(
        &p,
        13,
        5,
        "unknown field `temprature` in preset `typo`, expected one of `temperature`",
    );
    assert_problem(
        &p,
        16,
        20,
        "unknown provider `nobody` in variant `fast`, expected one of `p`",
    );
    assert_problem(
        &p,
        17,
        13,
        "unknown preset `hto` in variant `fast`, expected one of `a:b`, `x@y`, `team/fast`, ``, `hot`, `typo`",
    );
    assert_problem(
        &p,
        20,
        21,
        "`params.top_p` of variant `good` must be a non-negative number, found -0.1",
    );
    assert_problem(&p, 21, 3, "invalid variant name `v:1`");
    // `typo` loads (its unknown field reported once): `preset: typo` is no new problem.
    assert!(
        !p.iter()
            .any(|(_, _, m)| m.contains("unknown preset `typo`")),
        "{p:#?}"
    );
    assert_eq!(p.len(), 12, "{p:#?}");

    let p = problems("variants:\n  v:\n    sort: cost\n", &env(&[]));
    assert_problem(
        &p,
        3,
        11,
        "unknown variant `cost`, expected `price` or `latency`",
    );
}

#[test]
fn broken_preset_does_not_cascade() {
    let text = "\
providers:
  p: {api_base: 'http://p'}
presets:
  bad: {temperature: hot}
variants:
  v: {preset: bad}
models:
  m:
    endpoints: [{provider: p, service_id: a}]
    preset: bad
";
    let p = problems(text, &env(&[]));
    assert_eq!(
        p,
        [(
            4,
            22,
            "`presets.bad.temperature`: invalid type: string \"hot\", expected a number"
                .to_string()
        )]
    );
}

#[test]
fn model_capabilities_are_overridden_per_model() {
    use bitrouter_config::{MaxTokensParam, ModelCapabilities, ThinkingControl};
    let text = "\
providers:
  local:
    api_base: http://127.0.0.1:8080/v1
    models:
      - id: my-reasoner
        max_tokens_param: max_completion_tokens
        accepts_sampling: false
        accepts_reasoning_effort: false
        thinking_control: level
      - id: small
        max_output_tokens: 1000
      - plain
      - id: described
        name: Described
        context_length: 8192
  anthropic:
    models:
      - id: claude-3-haiku-20240307
        max_output_tokens: 2048
      - claude-3-5-sonnet-latest
      - id: o3
        accepts_sampling: true
";
    let config = ok(text, &keys());
    let get = |id: &str| config.providers.iter().find(|p| p.id == id).unwrap();
    let local = get("local");
    assert_eq!(
        local.capabilities("my-reasoner"),
        ModelCapabilities {
            max_tokens_param: MaxTokensParam::MaxCompletionTokens,
            default_max_tokens: 16384,
            accepts_sampling: false,
            accepts_reasoning_effort: false,
            thinking: ThinkingControl::Level,
        }
    );
    assert_eq!(
        local.capabilities("small"),
        ModelCapabilities {
            default_max_tokens: 1000,
            ..ModelCapabilities::DEFAULT
        }
    );
    // Entries without capability keys, and ids not listed, keep the table's values.
    for id in ["plain", "described", "unlisted"] {
        assert_eq!(local.capabilities(id), ModelCapabilities::DEFAULT, "{id}");
    }
    assert_eq!(local.capability_overrides.len(), 2);
    let anthropic = get("anthropic");
    assert_eq!(
        anthropic
            .capabilities("claude-3-haiku-20240307")
            .default_max_tokens,
        2048
    );
    assert_eq!(
        anthropic
            .capabilities("claude-3-5-sonnet-latest")
            .default_max_tokens,
        8192,
        "from the table"
    );
    // An override changes only its key: `o3` still takes `max_completion_tokens`.
    let o3 = anthropic.capabilities("o3");
    assert!(o3.accepts_sampling);
    assert_eq!(o3.max_tokens_param, MaxTokensParam::MaxCompletionTokens);
    // Auto-detected providers have the table alone.
    let openai = get("openai");
    assert!(openai.capability_overrides.is_empty());
    assert_eq!(
        openai.capabilities("o3"),
        ModelCapabilities::for_model("o3")
    );
}

#[test]
fn invalid_capability_values_are_reported_at_the_value() {
    let text = "\
providers:
  p:
    api_base: http://x
    models:
      - id: a
        max_tokens_param: max_tokenz
        accepts_sampling: sometimes
        accepts_reasoning_effort: 1
        thinking_control: levels
      - id: b
        max_output_tokens: 1
        thinking: level
";
    let p = problems(text, &env(&[]));
    assert_problem(
        &p,
        6,
        27,
        "`providers.p.models[0].max_tokens_param`: unknown variant `max_tokenz`, expected `max_tokens` or `max_completion_tokens`",
    );
    assert_problem(
        &p,
        7,
        27,
        "`providers.p.models[0].accepts_sampling`: invalid type: string \"sometimes\", expected a boolean",
    );
    assert_problem(
        &p,
        8,
        35,
        "`providers.p.models[0].accepts_reasoning_effort`: invalid type: integer `1`, expected a boolean",
    );
    assert_problem(
        &p,
        9,
        27,
        "`providers.p.models[0].thinking_control`: unknown variant `levels`, expected `budget` or `level`",
    );
    assert_problem(&p, 12, 9, "unknown field `thinking`");
    assert_eq!(p.len(), 5, "{p:#?}");

    // Well-typed but out of range: found once the entry decodes.
    let p = problems(
        "providers:\n  p:\n    api_base: http://x\n    models:\n      - a\n      - id: b\n        max_output_tokens: 0\n",
        &env(&[]),
    );
    assert_eq!(
        p,
        [(
            7,
            28,
            "`models[1].max_output_tokens` of provider `p` must be at least 1".to_string()
        )]
    );
}

/// Durations beyond 30 days (or not numbers of seconds at all) are refused at load time: the
/// proxy adds them to `Instant::now()`, which a huge value would overflow.
#[test]
fn durations_beyond_the_maximum_are_reported_at_the_value() {
    let text = "\
server:
  shutdown_grace_secs: 18446744073709551615
upstream:
  timeouts:
    connect_secs: 1e19
    total_secs: 2592001
    read_secs: 2592000
  health:
    eject_secs: 1e20
    max_cooldown_secs: 1e300
providers:
  p:
    api_base: http://x
    timeouts:
      first_byte_secs: 18446744073709551615
    health_check:
      interval_secs: 1e10
      timeout_secs: .inf
models:
  m:
    endpoints: [{provider: p, service_id: a}]
    deadline_secs: 1e20
  n:
    endpoints: [{provider: p, service_id: a}]
    deadline: 18446744073709551615
  o:
    endpoints: [{provider: p, service_id: a}]
    deadline_secs: .nan
";
    let p = problems(text, &env(&[]));
    let most = "must be at most 2592000 seconds (30 days), found";
    assert_problem(
        &p,
        2,
        24,
        &format!("`server.shutdown_grace_secs` {most} 18446744073709551615"),
    );
    assert_problem(
        &p,
        5,
        19,
        &format!("`upstream.timeouts.connect_secs` {most} 1e19"),
    );
    assert_problem(
        &p,
        6,
        17,
        &format!("`upstream.timeouts.total_secs` {most} 2592001"),
    );
    assert_problem(
        &p,
        9,
        17,
        &format!("`upstream.health.eject_secs` {most} 1e20"),
    );
    assert_problem(
        &p,
        10,
        24,
        &format!("`upstream.health.max_cooldown_secs` {most} 1e300"),
    );
    assert_problem(
        &p,
        15,
        24,
        &format!("`timeouts.first_byte_secs` of provider `p` {most} 1.8446744073709552e19"),
    );
    assert_problem(
        &p,
        17,
        22,
        &format!("`health_check.interval_secs` of provider `p` {most} 10000000000"),
    );
    assert_problem(
        &p,
        18,
        21,
        "`health_check.timeout_secs` of provider `p` must be a positive number of seconds, found inf",
    );
    assert_problem(
        &p,
        22,
        20,
        &format!("`deadline_secs` of virtual model `m` {most}"),
    );
    assert_problem(
        &p,
        25,
        15,
        &format!("`deadline` of virtual model `n` {most}"),
    );
    assert_problem(
        &p,
        28,
        20,
        "`deadline_secs` of virtual model `o` must be a positive number of seconds, found NaN",
    );
    assert_eq!(p.len(), 11, "{p:#?}");

    // The maximum itself is accepted.
    let config = ok(
        "upstream:\n  timeouts: {total_secs: 2592000}\n  health: {max_eject_secs: 2592000}\nserver:\n  shutdown_grace_secs: 2592000\n",
        &env(&[]),
    );
    assert_eq!(config.upstream.timeouts.total, Some(secs(2_592_000.0)));
    assert_eq!(
        bitrouter_config::MAX_DURATION_SECS,
        30 * 24 * 3600,
        "documented in docs/reliability.md"
    );
}

#[test]
fn database_section() {
    let e = env(&[("OPENAI_API_KEY", "k"), ("PGPASS", "s3cret")]);
    let config = ok("providers:\n  openai: {}\n", &e);
    assert_eq!(config.database.url, None);
    assert!(config.database.enabled);
    let config = ok(
        "database:\n  url: postgres://u:${PGPASS}@db:5432/ledger\n  queue_capacity: 10\n",
        &e,
    );
    assert_eq!(
        config.database.url.as_deref(),
        Some("postgres://u:s3cret@db:5432/ledger")
    );
    assert_eq!(config.database.queue_capacity.map(|n| n.get()), Some(10));
    assert!(!ok("database: {enabled: false}\n", &e).database.enabled);
    let p = problems("database:\n  url: mysql://x\n", &e);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1), (2, 8), "{p:?}");
    assert!(p[0].2.contains("sqlite://"), "{p:?}");
    let p = problems("database:\n  uri: sqlite://x\n", &e);
    assert!(p[0].2.contains("unknown field `uri`"), "{p:?}");
}
