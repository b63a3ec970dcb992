//! What an upstream model accepts, in one table: which field carries the output cap, the cap
//! sent when the client gives none, whether sampling parameters and `reasoning_effort` are
//! accepted, and how thinking is controlled.
//!
//! The request encoders used to test model ids each on their own (`o3` takes
//! `max_completion_tokens`, Gemini 3 takes `thinkingLevel`, Claude 3 caps output at 4096, ...).
//! Keeping the facts here, as one ordered list of globs, means a new model family is one row,
//! and an operator can correct any of them for one model in `bitrouter.yaml`
//! (`providers.<id>.models: - {id, max_tokens_param, ...}`), which
//! [`crate::Provider::capabilities`] lays over this table.

use crate::glob;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The Chat Completions field that carries the output-token cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensParam {
    /// `max_tokens`: every OpenAI-compatible server.
    MaxTokens,
    /// `max_completion_tokens`: OpenAI's reasoning models (o-series, gpt-5), which reject
    /// `max_tokens`.
    MaxCompletionTokens,
}

impl MaxTokensParam {
    /// The field name, as written in the config and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxTokensParam::MaxTokens => "max_tokens",
            MaxTokensParam::MaxCompletionTokens => "max_completion_tokens",
        }
    }
}

/// How a reasoning effort without an explicit token budget is sent (Gemini's
/// `thinkingConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingControl {
    /// A token budget (`thinkingBudget`), the conventional budget of the effort: Gemini 2.5
    /// and earlier.
    Budget,
    /// A level (`thinkingLevel`, from the effort): Gemini 3 and later, where Google recommends
    /// it.
    Level,
}

impl ThinkingControl {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingControl::Budget => "budget",
            ThinkingControl::Level => "level",
        }
    }
}

/// What one upstream model accepts. The request encoders read it (through
/// `EncodeOptions`) instead of guessing from the model id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModelCapabilities {
    /// The Chat Completions field for the output cap.
    pub max_tokens_param: MaxTokensParam,
    /// Output cap sent when the client gives none and the upstream requires one (Anthropic's
    /// `max_tokens`): the family's documented limit, capped so that a forgotten limit does not
    /// reserve a huge budget.
    pub default_max_tokens: u64,
    /// Accepts `temperature` / `top_p` other than 1; when false they are dropped.
    pub accepts_sampling: bool,
    /// Accepts `reasoning_effort`; when false it is dropped.
    pub accepts_reasoning_effort: bool,
    /// How an effort without a budget becomes Gemini's `thinkingConfig`.
    pub thinking: ThinkingControl,
}

impl ModelCapabilities {
    /// A model the table does not know, typically a local OpenAI-compatible server: it is
    /// sent everything (a server that does not know a field ignores it), `max_tokens`, and a
    /// 16384-token default cap.
    pub const DEFAULT: ModelCapabilities = ModelCapabilities {
        max_tokens_param: MaxTokensParam::MaxTokens,
        default_max_tokens: 16384,
        accepts_sampling: true,
        accepts_reasoning_effort: true,
        thinking: ThinkingControl::Budget,
    };

    /// The built-in table's capabilities for `model_id` (the id sent upstream): the first row
    /// whose glob matches, ignoring ASCII case, else [`ModelCapabilities::DEFAULT`]. A provider's
    /// per-model overrides are applied by [`crate::Provider::capabilities`], which is what the
    /// proxy calls.
    pub fn for_model(model_id: &str) -> ModelCapabilities {
        let id: Cow<'_, str> = if model_id.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(model_id.to_ascii_lowercase())
        } else {
            Cow::Borrowed(model_id)
        };
        BUILTIN
            .iter()
            .find(|(pattern, _)| glob::matches(pattern, &id))
            .map_or(ModelCapabilities::DEFAULT, |(_, caps)| *caps)
    }
}

impl Default for ModelCapabilities {
    fn default() -> Self {
        ModelCapabilities::DEFAULT
    }
}

/// A provider's corrections for one model (`providers.<id>.models: - {id: ..., ...}`): each
/// set field replaces the table's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CapabilityOverrides {
    pub max_tokens_param: Option<MaxTokensParam>,
    /// From the entry's `max_output_tokens`.
    pub default_max_tokens: Option<u64>,
    pub accepts_sampling: Option<bool>,
    pub accepts_reasoning_effort: Option<bool>,
    pub thinking: Option<ThinkingControl>,
}

impl CapabilityOverrides {
    /// `base` with every set field replaced.
    pub fn apply(&self, base: ModelCapabilities) -> ModelCapabilities {
        ModelCapabilities {
            max_tokens_param: self.max_tokens_param.unwrap_or(base.max_tokens_param),
            default_max_tokens: self.default_max_tokens.unwrap_or(base.default_max_tokens),
            accepts_sampling: self.accepts_sampling.unwrap_or(base.accepts_sampling),
            accepts_reasoning_effort: self
                .accepts_reasoning_effort
                .unwrap_or(base.accepts_reasoning_effort),
            thinking: self.thinking.unwrap_or(base.thinking),
        }
    }

    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        *self == CapabilityOverrides::default()
    }
}

/// Claude 3 (Haiku, Sonnet, Opus): 4096 output tokens at most.
const CLAUDE_3: ModelCapabilities = ModelCapabilities {
    default_max_tokens: 4096,
    ..ModelCapabilities::DEFAULT
};

/// Claude 3.5: 8192 output tokens.
const CLAUDE_3_5: ModelCapabilities = ModelCapabilities {
    default_max_tokens: 8192,
    ..ModelCapabilities::DEFAULT
};

/// OpenAI reasoning models: `max_completion_tokens`, and only the default sampling
/// (`temperature`/`top_p` of 1).
const OPENAI_REASONING: ModelCapabilities = ModelCapabilities {
    max_tokens_param: MaxTokensParam::MaxCompletionTokens,
    accepts_sampling: false,
    ..ModelCapabilities::DEFAULT
};

/// `gpt-5-chat*`: the gpt-5 family's field, but a chat model: sampling yes, effort no.
const OPENAI_GPT5_CHAT: ModelCapabilities = ModelCapabilities {
    max_tokens_param: MaxTokensParam::MaxCompletionTokens,
    accepts_reasoning_effort: false,
    ..ModelCapabilities::DEFAULT
};

/// OpenAI chat models that reject `reasoning_effort`.
const OPENAI_CHAT: ModelCapabilities = ModelCapabilities {
    accepts_reasoning_effort: false,
    ..ModelCapabilities::DEFAULT
};

/// Gemini 3 and later: `thinkingLevel`.
const GEMINI_3: ModelCapabilities = ModelCapabilities {
    thinking: ThinkingControl::Level,
    ..ModelCapabilities::DEFAULT
};

/// The built-in table: (glob over the lower-cased model id, capabilities), first match wins.
/// Globs as in `api_protocol` (`*` also crosses `/`). Anthropic's rows match anywhere in the
/// id, so routed forms (`anthropic/claude-3-haiku`, Bedrock's
/// `anthropic.claude-3-5-sonnet-...`) get the same cap; OpenAI's rows match only the bare ids
/// OpenAI serves (an aggregator such as OpenRouter normalises the fields itself).
static BUILTIN: [(&str, ModelCapabilities); 16] = [
    ("*claude-3-haiku*", CLAUDE_3),
    ("*claude-3-opus*", CLAUDE_3),
    ("*claude-3-sonnet*", CLAUDE_3),
    ("*claude-3-5*", CLAUDE_3_5),
    ("gpt-5-chat*", OPENAI_GPT5_CHAT),
    ("o1*", OPENAI_REASONING),
    ("o3*", OPENAI_REASONING),
    ("o4*", OPENAI_REASONING),
    ("gpt-5*", OPENAI_REASONING),
    ("gpt-4*", OPENAI_CHAT),
    ("gpt-3.5*", OPENAI_CHAT),
    ("chatgpt-*", OPENAI_CHAT),
    // Gemini 3 to 9, then 10 and later; bare or as a resource name (`models/gemini-3-pro`).
    ("gemini-[3-9]*", GEMINI_3),
    ("gemini-[1-9][0-9]*", GEMINI_3),
    ("*/gemini-[3-9]*", GEMINI_3),
    ("*/gemini-[1-9][0-9]*", GEMINI_3),
];

/// The built-in table's rows, for `bitrouter route`-style listings and tests.
pub fn builtin() -> &'static [(&'static str, ModelCapabilities)] {
    &BUILTIN
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(id: &str) -> ModelCapabilities {
        ModelCapabilities::for_model(id)
    }

    #[test]
    fn every_row_is_a_valid_glob() {
        for (pattern, _) in builtin() {
            assert!(glob::check(pattern).is_ok(), "{pattern}");
            assert_eq!(
                pattern.to_ascii_lowercase(),
                *pattern,
                "ids are matched lower-cased"
            );
        }
    }

    #[test]
    fn unknown_models_accept_everything() {
        for id in [
            "llama3.1:8b",
            "qwen3",
            "mistral-large-latest",
            "",
            "deepseek-chat",
        ] {
            assert_eq!(caps(id), ModelCapabilities::DEFAULT, "{id}");
        }
        assert_eq!(ModelCapabilities::default(), ModelCapabilities::DEFAULT);
        assert_eq!(
            ModelCapabilities::DEFAULT.max_tokens_param,
            MaxTokensParam::MaxTokens
        );
        assert_eq!(ModelCapabilities::DEFAULT.default_max_tokens, 16384);
    }

    /// The Claude family's default output cap (was `default_max_tokens` in the proxy).
    #[test]
    fn claude_default_caps_follow_the_family() {
        assert_eq!(caps("claude-3-haiku-20240307").default_max_tokens, 4096);
        assert_eq!(caps("claude-3-opus-latest").default_max_tokens, 4096);
        assert_eq!(caps("claude-3-sonnet-20240229").default_max_tokens, 4096);
        assert_eq!(caps("claude-3-5-sonnet-latest").default_max_tokens, 8192);
        assert_eq!(caps("claude-3-5-haiku-20241022").default_max_tokens, 8192);
        assert_eq!(caps("claude-sonnet-4-5").default_max_tokens, 16384);
        assert_eq!(caps("claude-3-7-sonnet-latest").default_max_tokens, 16384);
        assert_eq!(caps("llama3.1").default_max_tokens, 16384);
        // Anywhere in the id, any case.
        assert_eq!(caps("anthropic/claude-3-haiku").default_max_tokens, 4096);
        assert_eq!(
            caps("anthropic.claude-3-5-sonnet-20240620-v1:0").default_max_tokens,
            8192
        );
        assert_eq!(caps("Claude-3-Opus").default_max_tokens, 4096);
        // Claude accepts sampling and effort whatever the wire.
        assert!(caps("claude-3-haiku").accepts_sampling);
        assert!(caps("claude-3-haiku").accepts_reasoning_effort);
    }

    /// OpenAI reasoning models (was `is_reasoning_family` / `rejects_sampling` in the Chat
    /// Completions encoder).
    #[test]
    fn openai_reasoning_models() {
        for id in [
            "o1",
            "o1-mini",
            "o3",
            "o3-mini",
            "o4-mini",
            "gpt-5",
            "gpt-5-mini",
        ] {
            let c = caps(id);
            assert_eq!(
                c.max_tokens_param,
                MaxTokensParam::MaxCompletionTokens,
                "{id}"
            );
            assert!(!c.accepts_sampling, "{id}");
            assert!(c.accepts_reasoning_effort, "{id}");
        }
        // Only bare OpenAI ids: an aggregator's `openai/o3` normalises the fields itself.
        assert_eq!(caps("openai/o3"), ModelCapabilities::DEFAULT);
    }

    /// `gpt-5-chat` takes `max_completion_tokens` but sampling, not effort; older chat models
    /// reject effort (was `rejects_reasoning_effort`).
    #[test]
    fn openai_chat_models() {
        let c = caps("gpt-5-chat-latest");
        assert_eq!(c.max_tokens_param, MaxTokensParam::MaxCompletionTokens);
        assert!(c.accepts_sampling);
        assert!(!c.accepts_reasoning_effort);
        for id in [
            "gpt-4o",
            "gpt-4.1-mini",
            "gpt-3.5-turbo",
            "chatgpt-4o-latest",
        ] {
            let c = caps(id);
            assert_eq!(c.max_tokens_param, MaxTokensParam::MaxTokens, "{id}");
            assert!(c.accepts_sampling, "{id}");
            assert!(!c.accepts_reasoning_effort, "{id}");
        }
    }

    /// Gemini 3+ takes `thinkingLevel` (was `uses_thinking_level` in the Gemini encoder).
    #[test]
    fn gemini_thinking_control() {
        for id in [
            "gemini-3-pro-preview",
            "models/gemini-3.1-flash",
            "gemini-10-ultra",
            "gemini-3",
        ] {
            assert_eq!(caps(id).thinking, ThinkingControl::Level, "{id}");
        }
        for id in ["gemini-2.5-pro", "gemma-3-27b-it", "gemini-1.5-pro", ""] {
            assert_eq!(caps(id).thinking, ThinkingControl::Budget, "{id}");
        }
    }

    #[test]
    fn overrides_replace_only_what_they_set() {
        let o = CapabilityOverrides {
            max_tokens_param: Some(MaxTokensParam::MaxCompletionTokens),
            default_max_tokens: Some(1000),
            ..CapabilityOverrides::default()
        };
        assert!(!o.is_empty());
        assert!(CapabilityOverrides::default().is_empty());
        let c = o.apply(caps("claude-3-haiku"));
        assert_eq!(c.max_tokens_param, MaxTokensParam::MaxCompletionTokens);
        assert_eq!(c.default_max_tokens, 1000);
        assert!(c.accepts_sampling);
        assert_eq!(c.thinking, ThinkingControl::Budget);
        let c = CapabilityOverrides {
            accepts_sampling: Some(true),
            accepts_reasoning_effort: Some(false),
            thinking: Some(ThinkingControl::Level),
            ..CapabilityOverrides::default()
        }
        .apply(caps("o3"));
        assert!(c.accepts_sampling);
        assert!(!c.accepts_reasoning_effort);
        assert_eq!(c.thinking, ThinkingControl::Level);
        assert_eq!(c.max_tokens_param, MaxTokensParam::MaxCompletionTokens);
    }
}
