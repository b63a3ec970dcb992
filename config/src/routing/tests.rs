use super::*;
use crate::{load_str, MapEnv};

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
            suffix: "discount".into()
        }
    );
    assert_eq!(
        t.resolve("smart:fast").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "smart".into(),
            suffix: "fast".into()
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
            suffix: "nitro".into()
        }
    );
    assert_eq!(
        t.resolve("ollama:qwen3:nitro").unwrap_err(),
        RouteError::UnknownSuffix {
            model: "ollama:qwen3".into(),
            suffix: "nitro".into()
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
        api_key: None,
        protocols: crate::ProtocolRules {
            rules: vec![("*".into(), vec![ChatCompletions])],
        },
        auth: crate::AuthStyle::Bearer,
        models: vec![],
        model_patterns: vec![],
        ca_file: None,
        headers: vec![],
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
