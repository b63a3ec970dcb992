//! Zero-config: providers detected from the environment, and config file discovery.

use bitrouter_config::{
    discover, load, zero_config, AuthStyle, ConfigSource, MapEnv, Protocol, ProviderOrigin,
    RoutingTable,
};
use std::path::Path;

fn env(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::new(pairs.iter().copied())
}

fn detected(pairs: &[(&str, &str)]) -> Vec<(String, ProviderOrigin)> {
    zero_config(&env(pairs))
        .providers
        .iter()
        .map(|p| (p.id.clone(), p.source.clone()))
        .collect()
}

fn from(var: &str) -> ProviderOrigin {
    ProviderOrigin::Env { var: var.into() }
}

#[test]
fn well_known_keys_are_detected_in_registry_order() {
    assert_eq!(
        detected(&[
            ("OPENROUTER_API_KEY", "r"),
            ("GOOGLE_API_KEY", "g"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
        ]),
        [
            ("openai".to_string(), from("OPENAI_API_KEY")),
            ("anthropic".to_string(), from("ANTHROPIC_API_KEY")),
            ("google".to_string(), from("GOOGLE_API_KEY")),
            ("openrouter".to_string(), from("OPENROUTER_API_KEY")),
        ]
    );
    assert_eq!(
        detected(&[("GEMINI_API_KEY", "g")]),
        [("google".to_string(), from("GEMINI_API_KEY"))]
    );
    // The BITROUTER_ form is preferred when both are set.
    assert_eq!(
        detected(&[("OPENAI_API_KEY", "o"), ("BITROUTER_OPENAI_API_KEY", "b")]),
        [("openai".to_string(), from("BITROUTER_OPENAI_API_KEY"))]
    );
    // Empty values are not keys.
    assert!(detected(&[("OPENAI_API_KEY", "")]).is_empty());
}

#[test]
fn detected_providers_carry_registry_defaults() {
    let config = zero_config(&env(&[
        ("OPENAI_API_KEY", "sk-o"),
        ("ANTHROPIC_API_KEY", "sk-a"),
        ("GOOGLE_API_KEY", "g"),
    ]));
    assert_eq!(config.source, ConfigSource::ZeroConfig);
    let [openai, anthropic, google] = &config.providers[..] else {
        panic!("{:?}", config.providers)
    };
    assert_eq!(openai.api_key().unwrap().expose(), "sk-o");
    assert_eq!(openai.protocol_for("gpt-4o"), Protocol::ChatCompletions);
    assert_eq!(anthropic.auth, AuthStyle::XApiKey);
    assert_eq!(
        anthropic.endpoint_path(Protocol::Messages, "claude-sonnet-4-5", false),
        "/v1/messages"
    );
    assert_eq!(google.auth, AuthStyle::GoogApiKey);
    assert_eq!(
        google.endpoint_path(Protocol::GenerateContent, "gemini-2.5-pro", false),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    let table = RoutingTable::new(&config);
    assert_eq!(
        table.resolve("gpt-4o").unwrap().targets[0].provider.id,
        "openai"
    );
    assert_eq!(
        table.resolve("claude-opus-4-5").unwrap().targets[0]
            .provider
            .id,
        "anthropic"
    );
    assert_eq!(
        table.resolve("gemini-2.5-pro").unwrap().targets[0]
            .provider
            .id,
        "google"
    );
}

#[test]
fn gateway_key_is_not_a_provider() {
    let config = zero_config(&env(&[("BITROUTER_API_KEY", "gw")]));
    assert!(config.providers.is_empty());
    assert_eq!(config.server.api_key.as_ref().unwrap().expose(), "gw");
    assert!(config.warnings.iter().any(|w| w.contains("no providers")));
}

#[test]
fn generic_provider_needs_key_and_base() {
    let config = zero_config(&env(&[
        ("BITROUTER_MY_LLM_API_KEY", "k"),
        ("BITROUTER_MY_LLM_API_BASE", "https://llm.example.com/v1"),
        ("BITROUTER_X_API_KEY", "kx"),
    ]));
    let ids: Vec<&str> = config.providers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["my_llm"]);
    let p = &config.providers[0];
    assert_eq!(p.source, from("BITROUTER_MY_LLM_API_KEY"));
    assert_eq!(p.protocol_for("anything"), Protocol::ChatCompletions);
    assert_eq!(p.auth, AuthStyle::Bearer);
    assert_eq!(p.api_key().unwrap().expose(), "k");
    assert!(
        config.warnings.iter().any(|w| w.contains("BITROUTER_X_API_KEY is set")
            && w.contains("BITROUTER_X_API_BASE")),
        "{:?}",
        config.warnings
    );

    let config = zero_config(&env(&[
        ("BITROUTER_X_API_KEY", "kx"),
        ("BITROUTER_X_API_BASE", "https://api.anthropic.com"),
    ]));
    assert_eq!(config.providers[0].id, "x");
    assert_eq!(
        config.providers[0].protocol_for("claude-x"),
        Protocol::Messages
    );
    assert_eq!(config.providers[0].auth, AuthStyle::XApiKey);
    let table = RoutingTable::new(&config);
    assert_eq!(
        table.resolve("x/claude-x").unwrap().targets[0].service_id,
        "claude-x"
    );
}

#[test]
fn invalid_env_base_is_a_warning_in_zero_config() {
    let config = zero_config(&env(&[
        ("BITROUTER_X_API_KEY", "kx"),
        ("BITROUTER_X_API_BASE", "not-a-url"),
        ("OPENAI_API_KEY", "o"),
        ("BITROUTER_OPENAI_API_BASE", "ftp://x"),
    ]));
    assert!(config.providers.is_empty(), "{:?}", config.providers);
    assert_eq!(config.warnings.len(), 3, "{:?}", config.warnings);
}

#[test]
fn ollama_is_detected_by_its_base_url() {
    assert!(detected(&[]).is_empty());
    let config = zero_config(&env(&[(
        "BITROUTER_OLLAMA_API_BASE",
        "http://gpu-box:11434",
    )]));
    let ollama = &config.providers[0];
    assert_eq!(ollama.id, "ollama");
    assert_eq!(ollama.source, from("BITROUTER_OLLAMA_API_BASE"));
    assert_eq!(ollama.auth, AuthStyle::None);
    assert_eq!(
        ollama.endpoint_path(Protocol::ChatCompletions, "llama3.1:8b", false),
        "/v1/chat/completions"
    );
    // A key in front of a local server switches on bearer auth.
    let config = zero_config(&env(&[("BITROUTER_OLLAMA_API_KEY", "k")]));
    assert_eq!(config.providers[0].auth, AuthStyle::Bearer);
    assert_eq!(config.providers[0].api_base, "http://localhost:11434/v1");
}

#[test]
fn lone_base_url_is_a_warning() {
    let config = zero_config(&env(&[(
        "BITROUTER_VLLM_API_BASE",
        "http://localhost:8000",
    )]));
    assert!(config.providers.is_empty());
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("BITROUTER_VLLM_API_BASE is set")),
        "{:?}",
        config.warnings
    );
}

#[test]
fn load_without_a_path_is_zero_config() {
    let config = load(None, &env(&[("OPENAI_API_KEY", "o")])).unwrap();
    assert_eq!(config.source, ConfigSource::ZeroConfig);
    assert_eq!(config.providers[0].id, "openai");
}

#[test]
fn discovery_order() {
    let root = tempfile::tempdir().unwrap();
    let cwd = root.path().join("project");
    let xdg = root.path().join("xdg");
    let home = root.path().join("home");
    for d in [
        &cwd,
        &xdg.join("bitrouter"),
        &home.join(".config/bitrouter"),
    ] {
        std::fs::create_dir_all(d).unwrap();
    }
    let vars = env(&[
        ("XDG_CONFIG_HOME", xdg.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ]);
    assert_eq!(discover(None, &cwd, &vars), None);

    let in_home = home.join(".config/bitrouter/bitrouter.yaml");
    std::fs::write(&in_home, "").unwrap();
    assert_eq!(discover(None, &cwd, &vars), Some(in_home.clone()));

    let in_xdg = xdg.join("bitrouter/bitrouter.yaml");
    std::fs::write(&in_xdg, "").unwrap();
    assert_eq!(discover(None, &cwd, &vars), Some(in_xdg));

    let in_cwd = cwd.join("bitrouter.yaml");
    std::fs::write(&in_cwd, "").unwrap();
    assert_eq!(discover(None, &cwd, &vars), Some(in_cwd));

    let explicit = Path::new("does/not/exist.yaml");
    assert_eq!(
        discover(Some(explicit), &cwd, &vars),
        Some(explicit.to_path_buf())
    );

    // Without XDG_CONFIG_HOME, $HOME/.config is used.
    let only_home = env(&[("HOME", home.to_str().unwrap())]);
    assert_eq!(discover(None, root.path(), &only_home), Some(in_home));
}
