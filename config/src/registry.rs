//! The built-in provider registry: what bitrouter knows about well-known providers so that a
//! key in the environment is enough to route to them (zero-config), and so that a provider
//! configured under a known id inherits its base URL, protocols, auth style, headers and models.

use crate::{AuthStyle, Protocol};

/// One built-in provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegistryEntry {
    /// The provider id (`openai`), as written under `providers:` and in `openai/gpt-4o`.
    pub id: &'static str,
    /// Default base URL (overridable with `api_base` or `BITROUTER_<ID>_API_BASE`).
    pub api_base: &'static str,
    /// Protocols the provider speaks natively; the first is the preferred outbound protocol.
    pub protocols: &'static [Protocol],
    /// How the key is presented upstream.
    pub auth: AuthStyle,
    /// Variables that hold the provider's key, most specific first: always
    /// `BITROUTER_<ID>_API_KEY`, then the provider's well-known name (`OPENAI_API_KEY`).
    pub env_keys: &'static [&'static str],
    /// Model ids routable by their bare name (`gpt-4o`) and listed by `GET /v1/models`.
    pub models: &'static [&'static str],
    /// Globs of further bare ids the provider serves (`claude-*`), used only when a configured
    /// provider lists no models of its own.
    pub model_patterns: &'static [&'static str],
    /// Headers sent upstream on every request.
    pub headers: &'static [(&'static str, &'static str)],
}

const OPENAI_COMPATIBLE: &[Protocol] = &[Protocol::ChatCompletions];

static BUILTIN: [RegistryEntry; 11] = [
    RegistryEntry {
        id: "openai",
        api_base: "https://api.openai.com/v1",
        protocols: &[Protocol::ChatCompletions, Protocol::Responses],
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_OPENAI_API_KEY", "OPENAI_API_KEY"],
        models: &[
            "gpt-4o",
            "gpt-4o-mini",
            "gpt-4.1",
            "gpt-4.1-mini",
            "gpt-4.1-nano",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
            "gpt-5-nano",
        ],
        model_patterns: &["gpt-*", "o1*", "o3*", "o4*", "chatgpt-*"],
        headers: &[],
    },
    RegistryEntry {
        id: "anthropic",
        api_base: "https://api.anthropic.com/v1",
        protocols: &[Protocol::Messages],
        auth: AuthStyle::XApiKey,
        env_keys: &["BITROUTER_ANTHROPIC_API_KEY", "ANTHROPIC_API_KEY"],
        models: &[
            "claude-sonnet-4-6",
            "claude-sonnet-4-5",
            "claude-opus-4-1",
            "claude-haiku-4-5",
        ],
        model_patterns: &["claude-*"],
        headers: &[("anthropic-version", "2023-06-01")],
    },
    RegistryEntry {
        id: "google",
        api_base: "https://generativelanguage.googleapis.com/v1beta",
        protocols: &[Protocol::GenerateContent],
        auth: AuthStyle::GoogApiKey,
        env_keys: &[
            "BITROUTER_GOOGLE_API_KEY",
            "GOOGLE_API_KEY",
            "GEMINI_API_KEY",
        ],
        models: &[
            "gemini-2.5-pro",
            "gemini-2.5-flash",
            "gemini-2.5-flash-lite",
            "gemini-2.0-flash",
        ],
        model_patterns: &["gemini-*", "gemma-*"],
        headers: &[],
    },
    RegistryEntry {
        id: "openrouter",
        api_base: "https://openrouter.ai/api/v1",
        protocols: &[Protocol::ChatCompletions, Protocol::Responses],
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_OPENROUTER_API_KEY", "OPENROUTER_API_KEY"],
        models: &[],
        model_patterns: &[],
        headers: &[],
    },
    RegistryEntry {
        id: "groq",
        api_base: "https://api.groq.com/openai/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_GROQ_API_KEY", "GROQ_API_KEY"],
        models: &[],
        model_patterns: &[],
        headers: &[],
    },
    RegistryEntry {
        id: "deepseek",
        api_base: "https://api.deepseek.com/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_DEEPSEEK_API_KEY", "DEEPSEEK_API_KEY"],
        models: &["deepseek-chat", "deepseek-reasoner"],
        model_patterns: &[],
        headers: &[],
    },
    RegistryEntry {
        id: "mistral",
        api_base: "https://api.mistral.ai/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_MISTRAL_API_KEY", "MISTRAL_API_KEY"],
        models: &[
            "mistral-large-latest",
            "mistral-medium-latest",
            "mistral-small-latest",
            "codestral-latest",
        ],
        model_patterns: &[],
        headers: &[],
    },
    RegistryEntry {
        id: "xai",
        api_base: "https://api.x.ai/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_XAI_API_KEY", "XAI_API_KEY"],
        models: &["grok-4", "grok-3", "grok-3-mini"],
        model_patterns: &["grok-*"],
        headers: &[],
    },
    RegistryEntry {
        id: "together",
        api_base: "https://api.together.xyz/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_TOGETHER_API_KEY", "TOGETHER_API_KEY"],
        models: &[],
        model_patterns: &[],
        headers: &[],
    },
    RegistryEntry {
        id: "fireworks",
        api_base: "https://api.fireworks.ai/inference/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::Bearer,
        env_keys: &["BITROUTER_FIREWORKS_API_KEY", "FIREWORKS_API_KEY"],
        models: &[],
        model_patterns: &[],
        headers: &[],
    },
    // A local server needs no key: it is routable when configured, or when
    // `BITROUTER_OLLAMA_API_BASE` is set (see `detect`).
    RegistryEntry {
        id: "ollama",
        api_base: "http://localhost:11434/v1",
        protocols: OPENAI_COMPATIBLE,
        auth: AuthStyle::None,
        env_keys: &["BITROUTER_OLLAMA_API_KEY"],
        models: &[],
        model_patterns: &[],
        headers: &[],
    },
];

/// Every built-in provider, in the order auto-detected providers are appended (and bare model
/// ids are matched).
pub fn builtin() -> &'static [RegistryEntry] {
    &BUILTIN
}

/// The built-in provider with this id.
pub fn find(id: &str) -> Option<&'static RegistryEntry> {
    BUILTIN.iter().find(|e| e.id == id)
}

/// The `<ID>` of `BITROUTER_<ID>_API_KEY` for a provider id: upper-cased, every character other
/// than a letter or digit replaced by `_` (`my-llm` -> `MY_LLM`).
pub fn env_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// `BITROUTER_<ID>_API_KEY`: the key variable every provider (built-in or not) honours.
pub fn api_key_var(id: &str) -> String {
    format!("BITROUTER_{}_API_KEY", env_id(id))
}

/// `BITROUTER_<ID>_API_BASE`: overrides a provider's base URL.
pub fn api_base_var(id: &str) -> String {
    format!("BITROUTER_{}_API_BASE", env_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::glob;
    use std::collections::HashSet;

    #[test]
    fn required_entries_exist() {
        let openai = find("openai").unwrap();
        assert_eq!(openai.api_base, "https://api.openai.com/v1");
        assert_eq!(
            openai.protocols,
            &[Protocol::ChatCompletions, Protocol::Responses]
        );
        assert_eq!(openai.auth, AuthStyle::Bearer);
        for m in ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "gpt-5"] {
            assert!(openai.models.contains(&m), "{m}");
        }
        let anthropic = find("anthropic").unwrap();
        assert_eq!(anthropic.auth, AuthStyle::XApiKey);
        assert_eq!(anthropic.headers, &[("anthropic-version", "2023-06-01")]);
        assert!(anthropic.models.contains(&"claude-sonnet-4-6"));
        let google = find("google").unwrap();
        assert!(google.env_keys.contains(&"GOOGLE_API_KEY"));
        assert!(google.env_keys.contains(&"GEMINI_API_KEY"));
        assert_eq!(google.protocols, &[Protocol::GenerateContent]);
        assert_eq!(find("ollama").unwrap().auth, AuthStyle::None);
        for id in [
            "openrouter",
            "groq",
            "deepseek",
            "mistral",
            "xai",
            "together",
            "fireworks",
        ] {
            assert!(find(id).is_some(), "{id}");
        }
        assert!(find("nope").is_none());
    }

    #[test]
    fn entries_are_consistent() {
        let mut ids = HashSet::new();
        for e in builtin() {
            assert!(ids.insert(e.id), "duplicate id {}", e.id);
            assert!(!e.protocols.is_empty(), "{}", e.id);
            assert_eq!(
                e.env_keys.first().copied(),
                Some(api_key_var(e.id).as_str())
            );
            assert!(url::Url::parse(e.api_base).is_ok(), "{}", e.id);
            assert!(!e.api_base.ends_with('/'), "{}", e.id);
            for p in e.model_patterns {
                assert!(glob::check(p).is_ok(), "{}: {p}", e.id);
            }
            // Listed models are the first thing a bare id is matched against; a listed id
            // must not contain the separators of `provider/model` / `provider:model`.
            for m in e.models {
                assert!(!m.contains(':'), "{}: {m}", e.id);
            }
        }
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_id("my-llm.local"), "MY_LLM_LOCAL");
        assert_eq!(api_key_var("openai"), "BITROUTER_OPENAI_API_KEY");
        assert_eq!(api_base_var("my-llm"), "BITROUTER_MY_LLM_API_BASE");
    }
}
