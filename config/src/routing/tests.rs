use super::*;
use crate::{load_str, MapEnv, RetryPolicy};

fn table(text: &str, env: &[(&str, &str)]) -> RoutingTable {
    let config = match load_str(text, "test.yaml", &MapEnv::new(env.iter().copied())) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    RoutingTable::new(&config)
}

/// (provider, service id, protocol) of each target.
fn route(t: &RoutingTable, model: &str) -> (ResolvedVia, Vec<(String, String, Protocol)>) {
    let r = t.resolve(model).unwrap_or_else(|e| panic!("{model}: {e}"));
    assert!(!r.targets.is_empty());
    assert_eq!(r.requested, model);
    let targets = r
        .targets
        .iter()
        .map(|t| (t.provider.id.clone(), t.service_id.clone(), t.protocol))
        .collect();
    (r.via, targets)
}

fn one(provider: &str, id: &str, protocol: Protocol) -> Vec<(String, String, Protocol)> {
    vec![(provider.to_string(), id.to_string(), protocol)]
}

const CONFIG: &str = "\
providers:
  ollama:
    models:
      - llama3.1:8b
      - mistral:7b
      - qwen3
  openrouter: {}
  anthropic:
    api_base: https://api.anthropic.com
models:
  smart:
    endpoints:
      - {provider: anthropic, service_id: claude-sonnet-4-5}
      - {provider: openai, service_id: gpt-4o}
  team/fast:
    endpoints:
      - {provider: ollama, service_id: qwen3}
  qwen3:
    endpoints:
      - {provider: openrouter, service_id: qwen/qwen3-235b}
";

const ENV: &[(&str, &str)] = &[
    ("OPENROUTER_API_KEY", "r"),
    ("ANTHROPIC_API_KEY", "a"),
    ("OPENAI_API_KEY", "o"),
    ("MISTRAL_API_KEY", "m"),
];

use Protocol::{ChatCompletions, Messages};

#[test]
fn virtual_models_win_and_keep_their_order() {
    let t = table(CONFIG, ENV);
    let (via, targets) = route(&t, "smart");
    assert_eq!(via, ResolvedVia::VirtualModel("smart".into()));
    assert_eq!(
        targets,
        [
            ("anthropic".into(), "claude-sonnet-4-5".into(), Messages),
            ("openai".into(), "gpt-4o".into(), ChatCompletions),
        ]
    );
    // Names with `/` are fine, and a virtual name shadows a listed bare id.
    assert_eq!(
        route(&t, "team/fast").1,
        one("ollama", "qwen3", ChatCompletions)
    );
    assert_eq!(
        route(&t, "qwen3").1,
        one("openrouter", "qwen/qwen3-235b", ChatCompletions)
    );
    assert_eq!(
        route(&t, "  smart ").0,
        ResolvedVia::VirtualModel("smart".into())
    );
}

#[test]
fn provider_prefixes() {
    let t = table(CONFIG, ENV);
    assert_eq!(
        route(&t, "openrouter/moonshotai/kimi-k2"),
        (
            ResolvedVia::ProviderSlash,
            one("openrouter", "moonshotai/kimi-k2", ChatCompletions)
        )
    );
    assert_eq!(
        route(&t, "anthropic:claude-opus-4-1"),
        (
            ResolvedVia::ProviderColon,
            one("anthropic", "claude-opus-4-1", Messages)
        )
    );
    assert_eq!(
        route(&t, "ollama:llama3.1:8b"),
        (
            ResolvedVia::ProviderColon,
            one("ollama", "llama3.1:8b", ChatCompletions)
        )
    );
    // `provider/model` is an explicit instruction: unlisted ids pass through.
    assert_eq!(
        route(&t, "ollama/phi4").1,
        one("ollama", "phi4", ChatCompletions)
    );
    assert_eq!(
        route(&t, "openai/gpt-4o").1,
        one("openai", "gpt-4o", ChatCompletions)
    );
    // A prefix that is not a provider is not a prefix.
    assert_eq!(
        t.resolve("nobody/x").unwrap_err(),
        RouteError::UnknownModel {
            model: "nobody/x".into()
        }
    );
}

#[test]
fn bare_ids_listed_then_patterns() {
    let t = table(CONFIG, ENV);
    assert_eq!(
        route(&t, "llama3.1:8b"),
        (
            ResolvedVia::Listed,
            one("ollama", "llama3.1:8b", ChatCompletions)
        )
    );
    // Exactly listed beats the `provider:model` reading (`mistral` is a detected provider).
    assert_eq!(
        route(&t, "mistral:7b"),
        (
            ResolvedVia::Listed,
            one("ollama", "mistral:7b", ChatCompletions)
        )
    );
    // anthropic is configured without models: it inherits the registry list and patterns.
    assert_eq!(
        route(&t, "claude-sonnet-4-5"),
        (
            ResolvedVia::Listed,
            one("anthropic", "claude-sonnet-4-5", Messages)
        )
    );
    assert_eq!(
        route(&t, "claude-3-7-sonnet-latest"),
        (
            ResolvedVia::Pattern,
            one("anthropic", "claude-3-7-sonnet-latest", Messages)
        )
    );
    assert_eq!(
        route(&t, "gpt-4o"),
        (
            ResolvedVia::Listed,
            one("openai", "gpt-4o", ChatCompletions)
        )
    );
    assert_eq!(
        route(&t, "o3-pro"),
        (
            ResolvedVia::Pattern,
            one("openai", "o3-pro", ChatCompletions)
        )
    );
    assert_eq!(
        route(&t, "mistral-large-latest").1,
        one("mistral", "mistral-large-latest", ChatCompletions)
    );
}

#[test]
fn first_provider_in_order_wins_a_bare_id() {
    let text = "\
providers:
  a: {api_base: 'http://a', models: [shared, only-a]}
  b: {api_base: 'http://b', models: [shared, only-b]}
";
    let t = table(text, &[]);
    assert_eq!(route(&t, "shared").1, one("a", "shared", ChatCompletions));
    assert_eq!(route(&t, "only-b").1, one("b", "only-b", ChatCompletions));
    assert_eq!(route(&t, "b/shared").1, one("b", "shared", ChatCompletions));
}

#[test]
fn errors() {
    let t = table(CONFIG, ENV);
    assert_eq!(t.resolve("").unwrap_err(), RouteError::EmptyModel);
    assert_eq!(t.resolve("   ").unwrap_err(), RouteError::EmptyModel);
    assert_eq!(
        t.resolve("no-such-model").unwrap_err(),
        RouteError::UnknownModel {
            model: "no-such-model".into()
        }
    );
    assert_eq!(
        t.resolve("gpt-4o:discount").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "gpt-4o".into(),
            suffix: "discount".into(),
            known: vec![]
        }
    );
    assert_eq!(
        t.resolve("smart:fast").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "smart".into(),
            suffix: "fast".into(),
            known: vec![]
        }
    );
    assert_eq!(
        t.resolve("openrouter/moonshotai/kimi-k2:discount")
            .map(|r| r.targets[0].service_id.clone()),
        Ok("moonshotai/kimi-k2:discount".into()),
        "an open provider passes any id through, suffix included"
    );
    assert_eq!(
        t.resolve("ollama/qwen3:nitro").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "ollama/qwen3".into(),
            suffix: "nitro".into(),
            known: vec![]
        }
    );
    assert_eq!(
        t.resolve("ollama:qwen3:nitro").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "ollama:qwen3".into(),
            suffix: "nitro".into(),
            known: vec![]
        }
    );
    // `llama3.1:70b` is not listed, `llama3.1` is neither listed nor a pattern: unknown.
    assert_eq!(
        t.resolve("llama3.1:70b").unwrap_err(),
        RouteError::UnknownModel {
            model: "llama3.1:70b".into()
        }
    );
}

#[test]
fn never_falls_back_to_an_unrelated_provider() {
    // Only OpenRouter is available: a bare Claude id has no provider.
    let t = table("", &[("OPENROUTER_API_KEY", "r")]);
    assert!(matches!(
        t.resolve("claude-sonnet-4-5"),
        Err(RouteError::UnknownModel { .. })
    ));
    assert!(t.resolve("openrouter/anthropic/claude-sonnet-4.5").is_ok());
}

#[test]
fn protocol_rules_pick_per_model() {
    let text = "\
providers:
  zen:
    api_base: https://zen.example.com
    api_protocol:
      - \"claude-*\": [messages, chat_completions]
      - \"gemini-*\": generate_content
      - \"*\": [responses, chat_completions]
";
    let t = table(text, &[]);
    let zen = t.provider("zen").unwrap();
    assert_eq!(zen.protocol_for("claude-haiku-4-5"), Messages);
    assert_eq!(
        zen.protocol_for("gemini-2.5-pro"),
        Protocol::GenerateContent
    );
    assert_eq!(zen.protocol_for("kimi-k2"), Protocol::Responses);
    assert_eq!(
        route(&t, "zen/claude-haiku-4-5").1,
        one("zen", "claude-haiku-4-5", Messages)
    );
    assert!(t.provider("nope").is_none());
}

fn provider(api_base: &str) -> Provider {
    let base = crate::resolve::parse_base(api_base).unwrap();
    Provider {
        id: "p".into(),
        api_base: base.api_base,
        origin: base.origin,
        base_path: base.base_path,
        replicas: Vec::new(),
        replica_strategy: crate::ReplicaStrategy::default(),
        accounts: vec![crate::Account {
            label: "default".into(),
            api_key: None,
        }],
        account_strategy: crate::AccountStrategy::default(),
        timeouts: crate::Timeouts::default(),
        health_check: None,
        protocols: crate::ProtocolRules {
            rules: vec![("*".into(), vec![ChatCompletions])],
        },
        auth: crate::AuthStyle::Bearer,
        models: vec![],
        model_patterns: vec![],
        capability_overrides: IndexMap::new(),
        listed_capabilities: IndexMap::new(),
        pricing: IndexMap::new(),
        ca_file: None,
        headers: vec![],
        forward_headers: vec![],
        source: crate::ProviderOrigin::Config,
    }
}

#[test]
fn endpoint_paths() {
    let cases = [
        ("https://api.anthropic.com", Messages, "/v1/messages"),
        ("https://api.anthropic.com/v1", Messages, "/v1/messages"),
        ("https://api.anthropic.com/v1/", Messages, "/v1/messages"),
        (
            "https://openrouter.ai/api/v1",
            ChatCompletions,
            "/api/v1/chat/completions",
        ),
        (
            "https://openrouter.ai/api/v1",
            Protocol::Responses,
            "/api/v1/responses",
        ),
        (
            "http://localhost:11434",
            ChatCompletions,
            "/v1/chat/completions",
        ),
        (
            "http://localhost:11434/v1",
            ChatCompletions,
            "/v1/chat/completions",
        ),
        (
            "https://api.groq.com/openai/v1",
            ChatCompletions,
            "/openai/v1/chat/completions",
        ),
        (
            "https://ark.example.com/api/v3",
            ChatCompletions,
            "/api/v3/chat/completions",
        ),
        (
            "https://proxy.example.com/llm",
            ChatCompletions,
            "/llm/v1/chat/completions",
        ),
        (
            "https://generativelanguage.googleapis.com",
            Protocol::GenerateContent,
            "/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "https://generativelanguage.googleapis.com/v1beta",
            Protocol::GenerateContent,
            "/v1beta/models/gemini-2.5-pro:generateContent",
        ),
        (
            "https://example.com/v1alpha1",
            Protocol::GenerateContent,
            "/v1alpha1/models/gemini-2.5-pro:generateContent",
        ),
    ];
    for (base, protocol, want) in cases {
        assert_eq!(
            provider(base).endpoint_path(protocol, "gemini-2.5-pro", false),
            want,
            "{base} {protocol}"
        );
    }
    let google = provider("https://generativelanguage.googleapis.com");
    assert_eq!(
        google.endpoint_path(Protocol::GenerateContent, "gemini-2.5-flash", true),
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(
        google.endpoint_path(Protocol::GenerateContent, "models/gemini-2.5-pro", false),
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    assert_eq!(
        google.endpoint_path(Protocol::GenerateContent, "tuned/my model?#:x", false),
        "/v1beta/models/tuned/my%20model%3F%23%3Ax:generateContent"
    );
    // Streaming does not change the OpenAI/Anthropic paths.
    assert_eq!(
        provider("https://api.openai.com/v1").endpoint_path(ChatCompletions, "gpt-4o", true),
        "/v1/chat/completions"
    );
}

#[test]
fn version_segments() {
    for yes in ["v1", "v1beta", "v2alpha1", "v10", "v1beta2"] {
        assert!(is_version_segment(yes), "{yes}");
    }
    for no in [
        "", "v", "vx", "version1", "1", "v1-beta", "v1Beta", "api", "v1beta2x",
    ] {
        assert!(!is_version_segment(no), "{no}");
    }
}

#[test]
fn model_listing() {
    let t = table(CONFIG, ENV);
    let models = t.models();
    let ids: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m.id.as_str(), m.owned_by.as_str()))
        .collect();
    assert_eq!(
        &ids[..8],
        [
            ("smart", "bitrouter"),
            ("team/fast", "bitrouter"),
            ("qwen3", "bitrouter"),
            ("ollama/llama3.1:8b", "ollama"),
            ("llama3.1:8b", "ollama"),
            ("ollama/mistral:7b", "ollama"),
            ("mistral:7b", "ollama"),
            // `qwen3` bare is the virtual model; only the prefixed form is listed.
            ("ollama/qwen3", "ollama"),
        ]
    );
    assert!(ids.contains(&("anthropic/claude-sonnet-4-5", "anthropic")));
    assert!(ids.contains(&("claude-sonnet-4-5", "anthropic")));
    assert!(ids.contains(&("openai/gpt-4o", "openai")));
    // Every listed id routes.
    for m in &models {
        assert!(t.resolve(&m.id).is_ok(), "{}", m.id);
    }
    // No duplicates, stable across calls.
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
    assert_eq!(t.models(), models);
}

#[test]
fn shared_bare_id_is_listed_once() {
    let text = "\
providers:
  a: {api_base: 'http://a', models: [shared]}
  b: {api_base: 'http://b', models: [shared]}
";
    let ids: Vec<String> = table(text, &[])
        .models()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["a/shared", "shared", "b/shared"]);
}

// ----- `model:variant@preset` suffixes.

const SUFFIXES: &str = "\
providers:
  ollama:
    models: [llama3.1:8b, qwen3, claude-3-5-sonnet@20240620, 'phi4@v2']
  openrouter: {}
  anthropic: {}
  openai: {}
  groq: {}
presets:
  concise:
    temperature: 0.2
    max_tokens: 512
    system_prompt_prefix: Be brief.
  cold:
    temperature: 0
  '20240620':
    top_p: 0.5
  vm:
    temperature: 0.9
    top_p: 0.8
    system_prompt_prefix: From the model.
variants:
  fast:
    sort: latency
  cheap:
    sort: price
  pinned:
    providers: [openai, anthropic]
  groq:
    providers: [groq]
  full:
    preset: concise
    params: { max_tokens: 100, reasoning_effort: high }
  8b:
    params: { temperature: 1 }
models:
  smart:
    strategy: weighted
    endpoints:
      - { provider: anthropic, service_id: claude-sonnet-4-5, weight: 3, price: 15 }
      - { provider: ollama, service_id: qwen3 }
      - { provider: openai, service_id: gpt-4o, weight: 2, price: 10 }
      - { provider: openai, service_id: gpt-4o-mini, price: 10 }
      - { provider: openrouter, service_id: x/y, price: 1 }
    retry_on: [connect, 429]
    max_attempts: 2
  styled:
    preset: vm
    endpoints: [{ provider: openai, service_id: gpt-4o }]
";

fn suffix_table() -> RoutingTable {
    table(SUFFIXES, ENV)
}

/// (provider, service id) of each target.
fn chain(r: &Resolution) -> Vec<(&str, &str)> {
    r.targets
        .iter()
        .map(|t| (t.provider.id.as_str(), t.service_id.as_str()))
        .collect()
}

#[test]
fn virtual_model_targets_carry_weight_price_and_retry() {
    let t = suffix_table();
    let r = t.resolve("smart").unwrap();
    assert_eq!(r.strategy, Strategy::Weighted);
    let wp: Vec<(u32, Option<f64>)> = r.targets.iter().map(|t| (t.weight, t.price)).collect();
    assert_eq!(
        wp,
        [
            (3, Some(15.0)),
            (1, None),
            (2, Some(10.0)),
            (1, Some(10.0)),
            (1, Some(1.0))
        ]
    );
    assert_eq!(r.retry.statuses, [429]);
    assert_eq!(r.retry.max_attempts, Some(2));
    assert!(r.retry.on_connect && !r.retry.on_timeout);
    assert!(r.overlay.is_none() && r.variant.is_none() && r.preset.is_none());
    // Precomputed once: every request shares the policy.
    assert!(Arc::ptr_eq(&r.retry, &t.resolve("smart").unwrap().retry));
    // Direct routes use the upstream default policy.
    let direct = t.resolve("gpt-4o").unwrap();
    assert_eq!(*direct.retry, RetryPolicy::default());
    assert!(Arc::ptr_eq(
        &direct.retry,
        &t.resolve("qwen3").unwrap().retry
    ));
    assert_eq!(
        (direct.targets[0].weight, direct.targets[0].price),
        (1, None)
    );
    // A virtual model's preset is its overlay.
    let styled = t.resolve("styled").unwrap();
    assert_eq!(styled.overlay.as_deref(), Some(&*t.presets()["vm"]));
    assert_eq!(
        styled.preset, None,
        "`preset` names an `@preset` suffix only"
    );
}

#[test]
fn exact_ids_win_over_suffixes() {
    let t = suffix_table();
    for id in ["llama3.1:8b", "claude-3-5-sonnet@20240620", "phi4@v2"] {
        let r = t.resolve(id).unwrap();
        assert_eq!(chain(&r), [("ollama", id)], "{id}");
        assert_eq!(r.via, ResolvedVia::Listed);
        assert!(r.variant.is_none() && r.preset.is_none() && r.overlay.is_none());
    }
    // Also behind a provider prefix.
    let r = t.resolve("ollama/llama3.1:8b").unwrap();
    assert_eq!(chain(&r), [("ollama", "llama3.1:8b")]);
    assert!(r.variant.is_none());
    // A suffix on an id that itself contains `@` or `:`.
    let r = t.resolve("claude-3-5-sonnet@20240620:fast").unwrap();
    assert_eq!(chain(&r), [("ollama", "claude-3-5-sonnet@20240620")]);
    assert_eq!(r.variant.as_deref(), Some("fast"));
    let r = t.resolve("llama3.1:8b@cold").unwrap();
    assert_eq!(chain(&r), [("ollama", "llama3.1:8b")]);
    assert_eq!(r.preset.as_deref(), Some("cold"));
    // Unlisted, the same string is a base and a preset (`claude-*` routes the base).
    let r = t.resolve("claude-3-7-sonnet@20240620").unwrap();
    assert_eq!(chain(&r), [("anthropic", "claude-3-7-sonnet")]);
    assert_eq!(r.preset.as_deref(), Some("20240620"));
}

#[test]
fn variants_apply() {
    let t = suffix_table();
    let r = t.resolve("smart:fast").unwrap();
    assert_eq!(r.requested, "smart:fast");
    assert_eq!(r.via, ResolvedVia::VirtualModel("smart".into()));
    assert_eq!(r.strategy, Strategy::LeastLatency);
    assert_eq!(r.variant.as_deref(), Some("fast"));
    assert_eq!(r.targets.len(), 5);
    assert!(r.overlay.is_none());
    // The virtual model's retry policy stays.
    assert!(Arc::ptr_eq(&r.retry, &t.resolve("smart").unwrap().retry));

    // Direct routes take variants too.
    let r = t.resolve("gpt-4o:fast").unwrap();
    assert_eq!(chain(&r), [("openai", "gpt-4o")]);
    assert_eq!(r.strategy, Strategy::LeastLatency);
    let r = t.resolve("ollama/qwen3:cheap").unwrap();
    assert_eq!(chain(&r), [("ollama", "qwen3")]);
    assert_eq!(r.via, ResolvedVia::ProviderSlash);
    let r = t.resolve("ollama:qwen3:fast").unwrap();
    assert_eq!(
        (r.via.clone(), chain(&r)),
        (ResolvedVia::ProviderColon, vec![("ollama", "qwen3")])
    );
    // `8b` is a variant, but `llama3.1:8b` is listed: the id wins. On another base it applies.
    assert!(t.resolve("llama3.1:8b").unwrap().variant.is_none());
    let r = t.resolve("qwen3:8b").unwrap();
    assert_eq!(r.variant.as_deref(), Some("8b"));
    assert_eq!(r.overlay.as_ref().and_then(|o| o.temperature), Some(1.0));
}

#[test]
fn price_sort_is_stable_with_unpriced_last() {
    let t = suffix_table();
    let r = t.resolve("smart:cheap").unwrap();
    assert_eq!(
        chain(&r),
        [
            ("openrouter", "x/y"),
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-sonnet-4-5"),
            ("ollama", "qwen3"),
        ]
    );
    assert_eq!(r.strategy, Strategy::Priority, "sorted order is the order");
}

#[test]
fn provider_pin_narrows_and_reorders() {
    let t = suffix_table();
    let r = t.resolve("smart:pinned").unwrap();
    assert_eq!(
        chain(&r),
        [
            ("openai", "gpt-4o"),
            ("openai", "gpt-4o-mini"),
            ("anthropic", "claude-sonnet-4-5"),
        ]
    );
    assert_eq!(
        r.strategy,
        Strategy::Weighted,
        "no sort: the strategy stays"
    );
    assert_eq!(r.targets[0].weight, 2);
    // Nothing left: a client error naming both.
    let e = t.resolve("smart:groq").unwrap_err();
    assert_eq!(
        e,
        RouteError::VariantNoEndpoint {
            model: "smart".into(),
            variant: "groq".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "variant `groq` leaves no endpoint of `smart`: none of them is on one of the variant's providers"
    );
    assert!(matches!(
        t.resolve("gpt-4o:groq"),
        Err(RouteError::VariantNoEndpoint { .. })
    ));
}

#[test]
fn unknown_variant_names_the_defined_ones() {
    let t = suffix_table();
    let e = t.resolve("smart:fastest").unwrap_err();
    assert_eq!(
        e,
        RouteError::UnknownSuffix {
            model: "smart".into(),
            suffix: "fastest".into(),
            known: ["fast", "cheap", "pinned", "groq", "full", "8b"]
                .map(String::from)
                .to_vec(),
        }
    );
    assert_eq!(
        e.to_string(),
        "unknown model variant suffix `:fastest` on `smart` (defined variants: `fast`, `cheap`, `pinned`, `groq`, `full`, `8b`)"
    );
    let none = table(CONFIG, ENV).resolve("smart:fast").unwrap_err();
    assert_eq!(
        none.to_string(),
        "unknown model variant suffix `:fast` on `smart` (no variants are defined)"
    );
    // An undefined variant in front of a preset is reported as such.
    assert!(matches!(
        t.resolve("smart:fastest@concise"),
        Err(RouteError::UnknownSuffix { .. })
    ));
}

#[test]
fn presets_apply() {
    let t = suffix_table();
    let r = t.resolve("smart@concise").unwrap();
    assert_eq!(r.via, ResolvedVia::VirtualModel("smart".into()));
    assert_eq!(r.preset.as_deref(), Some("concise"));
    assert_eq!(r.variant, None);
    assert_eq!(r.overlay.as_deref(), Some(&*t.presets()["concise"]));
    assert_eq!(r.targets.len(), 5);

    let r = t.resolve("gpt-4o@cold").unwrap();
    assert_eq!(chain(&r), [("openai", "gpt-4o")]);
    assert_eq!(r.overlay.as_ref().and_then(|o| o.temperature), Some(0.0));
    let r = t.resolve("ollama/qwen3@cold").unwrap();
    assert_eq!(chain(&r), [("ollama", "qwen3")]);

    let r = t.resolve(" smart:cheap@cold ").unwrap();
    assert_eq!(r.requested, " smart:cheap@cold ");
    assert_eq!(
        (r.variant.as_deref(), r.preset.as_deref()),
        (Some("cheap"), Some("cold"))
    );
    assert_eq!(r.targets[0].provider.id, "openrouter");
}

#[test]
fn unknown_preset_names_the_defined_ones() {
    let t = suffix_table();
    let e = t.resolve("smart@verbose").unwrap_err();
    assert_eq!(
        e,
        RouteError::UnknownPreset {
            model: "smart".into(),
            preset: "verbose".into(),
            known: ["concise", "cold", "20240620", "vm"]
                .map(String::from)
                .to_vec(),
        }
    );
    assert_eq!(
        e.to_string(),
        "unknown preset `@verbose` on `smart` (defined presets: `concise`, `cold`, `20240620`, `vm`)"
    );
    assert!(matches!(
        t.resolve("smart:fast@verbose"),
        Err(RouteError::UnknownPreset { model, .. }) if model == "smart:fast"
    ));
    let none = table(CONFIG, ENV).resolve("gpt-4o@concise").unwrap_err();
    assert_eq!(
        none.to_string(),
        "unknown preset `@concise` on `gpt-4o` (no presets are defined)"
    );
    // No base routes: the whole string is unknown.
    assert_eq!(
        t.resolve("nothing@concise").unwrap_err(),
        RouteError::UnknownModel {
            model: "nothing@concise".into()
        }
    );
}

#[test]
fn overlays_apply_in_order() {
    let t = suffix_table();
    // vm preset (vm), then the variant's preset (concise), its params, then `@cold`.
    let r = t.resolve("styled:full@cold").unwrap();
    let o = r.overlay.as_deref().unwrap();
    assert_eq!(o.temperature, Some(0.0), "@cold last");
    assert_eq!(o.top_p, Some(0.8), "only the vm preset sets it");
    assert_eq!(o.max_tokens, Some(100), "variant params over its preset");
    assert_eq!(o.reasoning_effort.as_deref(), Some("high"));
    assert_eq!(
        o.system_prompt_prefix.as_deref(),
        Some("From the model.\n\nBe brief.")
    );
    let r = t.resolve("styled:full").unwrap();
    assert_eq!(r.overlay.as_ref().and_then(|o| o.temperature), Some(0.2));
    // A variant without parameters keeps the vm's overlay as it is.
    let r = t.resolve("styled:fast").unwrap();
    assert_eq!(r.overlay.as_deref(), Some(&*t.presets()["vm"]));
}

#[test]
fn open_providers_pass_undefined_suffixes_through() {
    let t = suffix_table();
    let r = t.resolve("openrouter/moonshotai/kimi-k2:nitro").unwrap();
    assert_eq!(chain(&r), [("openrouter", "moonshotai/kimi-k2:nitro")]);
    assert!(r.variant.is_none());
    let r = t.resolve("openrouter/vertex/claude@2024").unwrap();
    assert_eq!(chain(&r), [("openrouter", "vertex/claude@2024")]);
    let r = t.resolve("openrouter:a/b@x:y").unwrap();
    assert_eq!(chain(&r), [("openrouter", "a/b@x:y")]);
    // Defined ones apply.
    let r = t
        .resolve("openrouter/moonshotai/kimi-k2:fast@cold")
        .unwrap();
    assert_eq!(chain(&r), [("openrouter", "moonshotai/kimi-k2")]);
    assert_eq!(
        (r.variant.as_deref(), r.preset.as_deref()),
        (Some("fast"), Some("cold"))
    );
    // The separator of `provider:model` is never a variant suffix.
    let r = t.resolve("openai:fast").unwrap();
    assert_eq!(chain(&r), [("openai", "fast")]);
}

#[test]
fn suffix_parsing_is_bounded() {
    let t = suffix_table();
    let long = format!("gpt-4o{}", ":x@y".repeat(50_000));
    assert!(t.resolve(&long).is_err());
    let colons = ":".repeat(100_000);
    assert!(t.resolve(&colons).is_err());
    assert!(t.resolve("@").is_err());
    assert!(t.resolve("smart@").is_err());
    assert!(t.resolve(":fast").is_err());
}

const PATHS: &str = "\
providers:
  ollama:
    models: [llama3.1:8b]
  vertex:
    api_base: https://vertex.example/v1
    api_protocol: messages
models:
  team model:
    endpoints: [{provider: ollama, service_id: llama3.1:8b}]
";

fn path_table() -> RoutingTable {
    table(
        PATHS,
        &[
            ("GOOGLE_API_KEY", "g"),
            ("OPENROUTER_API_KEY", "r"),
            ("FIREWORKS_API_KEY", "f"),
            ("ANTHROPIC_API_KEY", "a"),
            ("OPENAI_API_KEY", "o"),
        ],
    )
}

/// `InvalidModel`'s reason for `model`, or a panic saying what happened instead.
fn invalid(t: &RoutingTable, model: &str) -> String {
    match t.resolve(model) {
        Err(RouteError::InvalidModel { model: m, reason }) => {
            assert_eq!(m, model.trim());
            reason
        }
        other => panic!("{model:?}: expected InvalidModel, got {other:?}"),
    }
}

#[test]
fn real_model_ids_are_valid() {
    for id in [
        "openrouter/moonshotai/kimi-k2",
        "llama3.1:8b",
        "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
        "accounts/fireworks/models/llama-v3p1-8b-instruct",
        "claude-sonnet-4-5@20250929",
        "meta-llama/Llama-3.1-8B-Instruct",
        "gpt-4o-2024-08-06",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "models/gemini-2.5-pro",
        "model:variant",
        "model@preset",
        "a+b",
        "...x",
        "x..",
        "a/.b/c",
    ] {
        assert_eq!(check_model_id(id), Ok(()), "{id}");
    }
    let t = path_table();
    for (model, provider, service_id) in [
        (
            "openrouter/moonshotai/kimi-k2",
            "openrouter",
            "moonshotai/kimi-k2",
        ),
        ("llama3.1:8b", "ollama", "llama3.1:8b"),
        (
            "ollama/hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
            "ollama",
            "hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M",
        ),
        (
            "fireworks/accounts/fireworks/models/llama-v3p1-8b-instruct",
            "fireworks",
            "accounts/fireworks/models/llama-v3p1-8b-instruct",
        ),
        (
            "vertex/claude-sonnet-4-5@20250929",
            "vertex",
            "claude-sonnet-4-5@20250929",
        ),
        (
            "openrouter/meta-llama/Llama-3.1-8B-Instruct",
            "openrouter",
            "meta-llama/Llama-3.1-8B-Instruct",
        ),
        ("gpt-4o-2024-08-06", "openai", "gpt-4o-2024-08-06"),
        ("google/gemini-2.5-pro", "google", "gemini-2.5-pro"),
        ("google:gemini-2.5-pro", "google", "gemini-2.5-pro"),
        // A virtual model name is the operator's: any characters it was given.
        ("team model", "ollama", "llama3.1:8b"),
    ] {
        let r = t.resolve(model).unwrap_or_else(|e| panic!("{model}: {e}"));
        assert_eq!(chain(&r), [(provider, service_id)], "{model}");
    }
}

/// A client's model string must not change the upstream path it is put into (Gemini's
/// `/models/{model}:generateContent`, sent with the operator's key).
#[test]
fn model_ids_that_could_escape_the_upstream_path_are_refused() {
    let t = path_table();
    for model in [
        "google/../../x",
        "google/../x",
        "google/./x",
        "google/gemini-2.5-pro/..",
        "../google/x",
        "..",
        ".",
        // The Gemini path model is percent-decoded before it is resolved: `%2e%2e` is `..`.
        "google/%2e%2e/%2e%2e/x",
        "google/%2E%2E",
    ] {
        let decoded = model.replace("%2e", ".").replace("%2E", ".");
        let why = invalid(&t, &decoded);
        assert!(why.contains("path segment"), "{decoded}: {why}");
        // Undecoded, `%` is outside the alphabet.
        if model.contains('%') {
            assert!(invalid(&t, model).contains("`%` is not allowed"), "{model}");
        }
    }
    for model in ["google/a//b", "google/x/", "/google/x", "//x"] {
        assert!(invalid(&t, model).contains("empty `/` segment"), "{model}");
    }
    for (model, what) in [
        ("google/x y", "a space"),
        ("google/x?alt=json", "`?`"),
        ("google/x#frag", "`#`"),
        ("google/x\\..\\y", "`\\`"),
        ("google/x\ny", "`\\n`"),
        ("google/mod\u{e8}le", "`\\u{e8}`"),
        ("google/x;y", "`;`"),
        ("google/x%2fy", "`%`"),
    ] {
        let why = invalid(&t, model);
        assert!(
            why.contains(&format!("{what} is not allowed")),
            "{model}: {why}"
        );
    }
    // `provider:model` hands the part after the colon through: its own segments count.
    let why = invalid(&t, "google:../x");
    assert!(why.contains("the upstream model id `../x`"), "{why}");
    let why = invalid(&t, "google:/x");
    assert!(why.contains("the upstream model id `/x`"), "{why}");
    // The message says what is wrong.
    assert_eq!(
        t.resolve("google/../x").unwrap_err().to_string(),
        "invalid model `google/../x`: it has a `..` path segment, which would change the upstream URL"
    );
}
