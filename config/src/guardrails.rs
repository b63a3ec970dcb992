//! `guardrails:` and `plugins.bitrouter-guardrails`: their serde types (re-exported from
//! [`crate::schema`]) and their resolution into [`Guardrails`]. No detection here: the proxy
//! scans text; the config decides which rules are on, with which action, for which requests.
//!
//! Actions and directions are decoded as plain strings and checked here rather than by serde
//! enums, so that one misspelt action is reported at its position without dropping the whole
//! section (and with it every other problem in it). The JSON Schema still lists the allowed
//! values.

use crate::parse::backticked;
use crate::spans::Seg;
use crate::validate::Diagnostics;
use crate::GUARDRAIL_BUILTINS;
use crate::{glob, GuardrailAction, GuardrailBlockMessage, GuardrailRule, Guardrails};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashSet;

/// The `guardrails:` section: built-in patterns (secrets, PII, suspicious commands) and custom
/// regexes, each with an action per direction (`upgoing`: to the model, `downgoing`: from it).
/// When the section is present, `api_keys`, `private_keys` and `credentials` are redacted
/// upgoing and `suspicious_commands` warns downgoing unless told otherwise; the other built-ins
/// are off until given an action.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsSection {
    /// Master switch: `false` turns every rule off, the plugin's included. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Built-in pattern ids (or custom pattern names) turned off in both directions.
    #[serde(default)]
    pub disabled_patterns: Option<Vec<String>>,
    /// User-defined patterns. Each applies in its `direction` with its `action` (default
    /// `warn`) unless `custom_upgoing` / `custom_downgoing` name it.
    #[serde(default)]
    pub custom_patterns: Option<Vec<CustomPatternSection>>,
    /// Action per built-in pattern id on text sent to the model.
    #[serde(default)]
    #[schemars(schema_with = "builtin_actions")]
    pub upgoing: Option<IndexMap<String, String>>,
    /// Action per built-in pattern id on text received from the model.
    #[serde(default)]
    #[schemars(schema_with = "builtin_actions")]
    pub downgoing: Option<IndexMap<String, String>>,
    /// Action per custom pattern name on text sent to the model.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, GuardrailActionName>>")]
    pub custom_upgoing: Option<IndexMap<String, String>>,
    /// Action per custom pattern name on text received from the model.
    #[serde(default)]
    #[schemars(with = "Option<IndexMap<String, GuardrailActionName>>")]
    pub custom_downgoing: Option<IndexMap<String, String>>,
    /// Apply the rules only to requests routed to these models (`*` globs allowed).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Apply the rules only to requests routed to these providers.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Never apply the rules to these models (`*` globs allowed).
    #[serde(default)]
    pub exempt_models: Option<Vec<String>>,
    /// Never apply the rules to these providers.
    #[serde(default)]
    pub exempt_providers: Option<Vec<String>>,
    /// What the error returned for blocked content says.
    #[serde(default)]
    pub block_message: Option<BlockMessageSection>,
}

/// `guardrails.block_message`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockMessageSection {
    /// Name the rule that matched (never the matched text). Default true.
    #[serde(default)]
    pub include_details: Option<bool>,
    /// Add a link to documentation. Default true.
    #[serde(default)]
    pub include_help_link: Option<bool>,
}

/// One custom pattern (`guardrails.custom_patterns` or
/// `plugins.bitrouter-guardrails.custom_patterns`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomPatternSection {
    /// Unique name, distinct from the built-in ids; used in `custom_upgoing`,
    /// `custom_downgoing`, `disabled_patterns` and logs.
    pub name: String,
    /// The regex (Rust `regex` syntax). It must not match the empty string.
    #[serde(default)]
    pub regex: Option<String>,
    /// Same as `regex` (the plugin's spelling); give one of the two.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Where the pattern applies. Default `both`.
    #[serde(default)]
    #[schemars(with = "Option<GuardrailDirectionName>")]
    pub direction: Option<String>,
    /// Action on a match in the pattern's directions. Default `warn` under `guardrails:`,
    /// `block` under `plugins.bitrouter-guardrails`.
    #[serde(default)]
    #[schemars(with = "Option<GuardrailActionName>")]
    pub action: Option<String>,
    /// Apply this pattern only to requests routed to these models (`*` globs allowed);
    /// replaces the section's list.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    /// Apply this pattern only to requests routed to these providers; replaces the section's
    /// list.
    #[serde(default)]
    pub providers: Option<Vec<String>>,
    /// Never apply this pattern to these models; replaces the section's list.
    #[serde(default)]
    pub exempt_models: Option<Vec<String>>,
    /// Never apply this pattern to these providers; replaces the section's list.
    #[serde(default)]
    pub exempt_providers: Option<Vec<String>>,
}

/// `plugins.bitrouter-guardrails`: custom patterns only (the built-ins are configured under
/// `guardrails:`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsPluginSection {
    /// `false` turns this plugin's patterns off. Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Custom patterns; each blocks (unless it says `action:`) in both directions (unless it
    /// says `direction:`).
    #[serde(default)]
    pub custom_patterns: Option<Vec<CustomPatternSection>>,
}

/// What happens when a guardrail rule matches.
// Schema only: the fields are decoded as strings and checked on resolution.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum GuardrailActionName {
    /// Let the text through and log the match.
    Warn,
    /// Replace the matched text.
    Redact,
    /// Refuse the request or end the response.
    Block,
}

/// Where a custom guardrail pattern applies.
// Schema only, like `GuardrailActionName`.
#[derive(JsonSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum GuardrailDirectionName {
    /// Text sent to the model.
    Upgoing,
    /// Text received from the model.
    Downgoing,
    /// Both.
    Both,
}

/// `upgoing` / `downgoing`: a mapping from built-in id to action, the ids listed so editors
/// complete them.
fn builtin_actions(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let action = generator.subschema_for::<GuardrailActionName>();
    let props: serde_json::Map<String, serde_json::Value> = GUARDRAIL_BUILTINS
        .iter()
        .map(|id| (id.to_string(), action.clone().to_value()))
        .collect();
    schemars::json_schema!({
        "type": ["object", "null"],
        "properties": props,
        "additionalProperties": false
    })
}

/// The schema of `plugins:`: any value, as before (other plugins are accepted and ignored),
/// with `bitrouter-guardrails` described when it is a mapping.
pub(crate) fn plugins_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let plugin = generator.subschema_for::<GuardrailsPluginSection>();
    schemars::json_schema!({
        "properties": { "bitrouter-guardrails": plugin },
        "default": null
    })
}

/// What the resolver knows about routing targets, for checking scope lists.
pub(crate) struct Known<'a> {
    /// Provider ids, configured (broken ones included) and detected.
    pub providers: &'a HashSet<&'a str>,
    /// Model names a request may use: virtual models, listed provider models, and
    /// `provider/model` for each.
    pub models: Vec<String>,
    /// Globs for bare model ids providers serve without listing them.
    pub model_patterns: Vec<String>,
}

/// Where a custom pattern came from: decides its default action and its position in messages.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    Section,
    Plugin,
}

/// A custom pattern after its own checks.
struct Custom<'a> {
    entry: &'a CustomPatternSection,
    shape: Shape,
    regex: String,
    upgoing: bool,
    downgoing: bool,
    action: Option<GuardrailAction>,
}

/// Resolves the two guardrail inputs; `None` when both are absent or the section's `enabled`
/// is false. Everything is checked even then: a typo in a disabled section is still a typo.
pub(crate) fn resolve(
    section: Option<&GuardrailsSection>,
    plugin: Option<&GuardrailsPluginSection>,
    known: &Known<'_>,
    diag: &mut Diagnostics,
    warnings: &mut Vec<String>,
) -> Option<Guardrails> {
    if section.is_none() && plugin.is_none() {
        return None;
    }
    let root = vec![Seg::key("guardrails")];
    let plugin_root = vec![Seg::key("plugins"), Seg::key("bitrouter-guardrails")];
    let empty = GuardrailsSection::default();
    let s = section.unwrap_or(&empty);
    let at = |rest: &[Seg]| [&root[..], rest].concat();

    for (key, list) in scope_lists(s) {
        check_scope(known, &at(&[Seg::key(key)]), key, list, diag, warnings);
    }

    // Custom patterns: the section's, then the plugin's.
    let mut customs: Vec<Custom<'_>> = Vec::new();
    let mut names: HashSet<&str> = HashSet::new();
    let sources = [
        (s.custom_patterns.as_deref(), Shape::Section, &root),
        (
            plugin.and_then(|p| p.custom_patterns.as_deref()),
            Shape::Plugin,
            &plugin_root,
        ),
    ];
    for (list, shape, base) in sources {
        for (i, entry) in list.unwrap_or_default().iter().enumerate() {
            let path = [&base[..], &[Seg::key("custom_patterns"), Seg::Index(i)]].concat();
            customs.extend(custom(entry, shape, path, &names, known, diag, warnings));
            // Known even when the entry is broken: references to it are not reported again.
            names.insert(&entry.name);
        }
    }

    let mut disabled: HashSet<&str> = HashSet::new();
    for (i, id) in s.disabled_patterns.iter().flatten().enumerate() {
        if GUARDRAIL_BUILTINS.contains(&id.as_str()) || names.contains(id.as_str()) {
            disabled.insert(id);
        } else {
            diag.at_value(
                &at(&[Seg::key("disabled_patterns"), Seg::Index(i)]),
                format!(
                    "unknown guardrail pattern `{id}` in `guardrails.disabled_patterns`, expected a built-in id ({}) or a custom pattern name",
                    backticked(GUARDRAIL_BUILTINS)
                ),
            );
        }
    }

    let upgoing = builtin_map(s.upgoing.as_ref(), "upgoing", &root, &names, diag);
    let downgoing = builtin_map(s.downgoing.as_ref(), "downgoing", &root, &names, diag);
    let mut good: Vec<&str> = customs.iter().map(|c| c.entry.name.as_str()).collect();
    good.sort_unstable();
    let names = Names {
        all: &names,
        good: &good,
    };
    let custom_up = custom_map(
        s.custom_upgoing.as_ref(),
        "custom_upgoing",
        &root,
        &names,
        diag,
    );
    let custom_down = custom_map(
        s.custom_downgoing.as_ref(),
        "custom_downgoing",
        &root,
        &names,
        diag,
    );

    let block_message = GuardrailBlockMessage {
        include_details: s
            .block_message
            .as_ref()
            .and_then(|b| b.include_details)
            .unwrap_or(true),
        include_help_link: s
            .block_message
            .as_ref()
            .and_then(|b| b.include_help_link)
            .unwrap_or(true),
    };

    let section_scope = |own: [Option<&Vec<String>>; 4]| {
        let lists = scope_lists(s);
        let pick = |i: usize| own[i].or(lists[i].1).cloned().unwrap_or_default();
        (pick(0), pick(1), pick(2), pick(3))
    };

    let mut rules = Vec::new();
    if section.is_some() {
        for &id in GUARDRAIL_BUILTINS {
            if disabled.contains(id) {
                continue;
            }
            let up = upgoing.get(id).copied().or(default_upgoing(id));
            let down = downgoing.get(id).copied().or(default_downgoing(id));
            let (models, providers, exempt_models, exempt_providers) =
                section_scope([None, None, None, None]);
            push_rule(
                &mut rules,
                GuardrailRule {
                    id: id.to_string(),
                    regex: None,
                    upgoing: up,
                    downgoing: down,
                    models,
                    providers,
                    exempt_models,
                    exempt_providers,
                },
            );
        }
    }
    let plugin_on = plugin.is_some_and(|p| p.enabled != Some(false));
    for c in &customs {
        let name = c.entry.name.as_str();
        if disabled.contains(name) || (c.shape == Shape::Plugin && !plugin_on) {
            continue;
        }
        let default = c.action.unwrap_or(match c.shape {
            Shape::Section => GuardrailAction::Warn,
            Shape::Plugin => GuardrailAction::Block,
        });
        let mut direction = |on: bool, map: &IndexMap<String, GuardrailAction>, key: &str| match (
            on,
            map.get(name),
        ) {
            (true, Some(a)) => Some(*a),
            (true, None) => Some(default),
            (false, Some(_)) => {
                warnings.push(format!(
                        "{}: `guardrails.{key}.{name}` has no effect: custom pattern `{name}` does not apply in that direction (see its `direction`)",
                        diag.place(&at(&[Seg::key(key), Seg::key(name)]))
                    ));
                None
            }
            (false, None) => None,
        };
        let up = direction(c.upgoing, &custom_up, "custom_upgoing");
        let down = direction(c.downgoing, &custom_down, "custom_downgoing");
        let e = c.entry;
        let (models, providers, exempt_models, exempt_providers) = section_scope([
            e.models.as_ref(),
            e.providers.as_ref(),
            e.exempt_models.as_ref(),
            e.exempt_providers.as_ref(),
        ]);
        push_rule(
            &mut rules,
            GuardrailRule {
                id: name.to_string(),
                regex: Some(c.regex.clone()),
                upgoing: up,
                downgoing: down,
                models,
                providers,
                exempt_models,
                exempt_providers,
            },
        );
    }

    if section.and_then(|s| s.enabled) == Some(false) {
        return None;
    }
    Some(Guardrails {
        rules,
        block_message,
    })
}

fn push_rule(rules: &mut Vec<GuardrailRule>, rule: GuardrailRule) {
    if rule.upgoing.is_some() || rule.downgoing.is_some() {
        rules.push(rule);
    }
}

/// The built-ins that are on upgoing without being asked: secrets should not reach a model.
fn default_upgoing(id: &str) -> Option<GuardrailAction> {
    matches!(id, "api_keys" | "private_keys" | "credentials").then_some(GuardrailAction::Redact)
}

/// The built-ins that are on downgoing without being asked: a model suggesting `rm -rf /` is
/// worth a log line, not a block.
fn default_downgoing(id: &str) -> Option<GuardrailAction> {
    (id == "suspicious_commands").then_some(GuardrailAction::Warn)
}

/// The four scope lists of the section, by key, in `GuardrailRule` field order.
fn scope_lists(s: &GuardrailsSection) -> [(&'static str, Option<&Vec<String>>); 4] {
    [
        ("models", s.models.as_ref()),
        ("providers", s.providers.as_ref()),
        ("exempt_models", s.exempt_models.as_ref()),
        ("exempt_providers", s.exempt_providers.as_ref()),
    ]
}

/// Checks one scope list: providers must exist (a problem), model names should (a warning: a
/// model may be routable in ways the config cannot see, e.g. a provider's unlisted ids).
fn check_scope(
    known: &Known<'_>,
    path: &[Seg],
    key: &str,
    list: Option<&Vec<String>>,
    diag: &mut Diagnostics,
    warnings: &mut Vec<String>,
) {
    let providers = key.ends_with("providers");
    for (i, name) in list.into_iter().flatten().enumerate() {
        let at = [path, &[Seg::Index(i)]].concat();
        if providers {
            if !known.providers.contains(name.as_str()) {
                let mut ids: Vec<&str> = known.providers.iter().copied().collect();
                ids.sort_unstable();
                let expected = if ids.is_empty() {
                    "no providers are configured or detected".to_string()
                } else {
                    format!("expected one of {}", backticked(&ids))
                };
                diag.at_value(
                    &at,
                    format!("unknown provider `{name}` in `{key}` of guardrails: {expected}"),
                );
            }
            continue;
        }
        if let Err(why) = glob::check(name) {
            diag.at_value(
                &at,
                format!("invalid model glob `{name}` in `{key}`: {why}"),
            );
            continue;
        }
        let routable = known.models.iter().any(|m| glob::matches(name, m))
            || known.model_patterns.iter().any(|p| glob::matches(p, name))
            || name
                .split_once('/')
                .is_some_and(|(p, _)| known.providers.contains(p));
        if !routable {
            warnings.push(format!(
                "{}: guardrail `{key}` names model `{name}`, which no configured model or provider matches",
                diag.place(&at)
            ));
        }
    }
}

/// Checks one custom pattern entry; `None` when it has a problem (reported).
fn custom<'a>(
    entry: &'a CustomPatternSection,
    shape: Shape,
    path: Vec<Seg>,
    taken: &HashSet<&str>,
    known: &Known<'_>,
    diag: &mut Diagnostics,
    warnings: &mut Vec<String>,
) -> Option<Custom<'a>> {
    let at = |key: &str| [&path[..], &[Seg::key(key)]].concat();
    let name = entry.name.as_str();
    let mut ok = true;
    if name.trim().is_empty() {
        diag.at_value(
            &at("name"),
            "a custom guardrail pattern name must not be empty",
        );
        ok = false;
    } else if GUARDRAIL_BUILTINS.contains(&name) {
        diag.at_value(
            &at("name"),
            format!("custom guardrail pattern `{name}` has the name of a built-in pattern; choose another name"),
        );
        ok = false;
    } else if taken.contains(name) {
        diag.at_value(
            &at("name"),
            format!("duplicate custom guardrail pattern name `{name}`"),
        );
        ok = false;
    }

    let (key, regex) = match (&entry.regex, &entry.pattern) {
        (Some(r), None) => ("regex", r.clone()),
        (None, Some(p)) => ("pattern", p.clone()),
        (Some(_), Some(_)) => {
            diag.at_key(
                &at("pattern"),
                format!(
                    "custom guardrail pattern `{name}` has both `regex` and `pattern`; give one"
                ),
            );
            return None;
        }
        (None, None) => {
            diag.at_key(
                &path,
                format!("custom guardrail pattern `{name}` needs a `regex` (or `pattern`)"),
            );
            return None;
        }
    };
    match regex::Regex::new(&regex) {
        Ok(re) => {
            // An empty match would fire everywhere (and make redaction loop over nothing).
            let empty = re.is_match("") || re.find_iter(EMPTY_MATCH_PROBE).any(|m| m.is_empty());
            if empty {
                diag.at_value(
                    &at(key),
                    format!(
                        "the regex of custom guardrail pattern `{name}` can match the empty string, so it would match everywhere; make it match at least one character"
                    ),
                );
                ok = false;
            }
        }
        Err(e) => {
            // A syntax error's text draws the regex with a caret under the mistake, over several
            // lines; a problem is one line, so keep its last line, the explanation.
            let text = e.to_string();
            let why = text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("error: "))
                .unwrap_or(text.trim());
            diag.at_value(
                &at(key),
                format!("invalid regex in custom guardrail pattern `{name}`: {why}"),
            );
            ok = false;
        }
    }

    let (upgoing, downgoing) = match entry.direction.as_deref() {
        None | Some("both") => (true, true),
        Some("upgoing") => (true, false),
        Some("downgoing") => (false, true),
        Some(other) => {
            diag.at_value(
                &at("direction"),
                format!(
                    "unknown direction `{other}` in custom guardrail pattern `{name}`, expected one of `upgoing`, `downgoing`, `both`"
                ),
            );
            ok = false;
            (false, false)
        }
    };
    let action = match entry.action.as_deref() {
        None => None,
        Some(a) => match action(a) {
            Some(a) => Some(a),
            None => {
                diag.at_value(&at("action"), unknown_action(a));
                ok = false;
                None
            }
        },
    };
    let lists = [
        ("models", entry.models.as_ref()),
        ("providers", entry.providers.as_ref()),
        ("exempt_models", entry.exempt_models.as_ref()),
        ("exempt_providers", entry.exempt_providers.as_ref()),
    ];
    for (key, list) in lists {
        check_scope(known, &at(key), key, list, diag, warnings);
    }
    ok.then_some(Custom {
        entry,
        shape,
        regex,
        upgoing,
        downgoing,
        action,
    })
}

/// Text a regex is tried on for empty matches that `is_match("")` misses (`\b`, `(?m)$`).
const EMPTY_MATCH_PROBE: &str = "word 42 -x_\nA.b@c";

fn action(name: &str) -> Option<GuardrailAction> {
    match name {
        "warn" => Some(GuardrailAction::Warn),
        "redact" => Some(GuardrailAction::Redact),
        "block" => Some(GuardrailAction::Block),
        _ => None,
    }
}

fn unknown_action(name: &str) -> String {
    format!("unknown guardrail action `{name}`, expected one of `warn`, `redact`, `block`")
}

/// `pattern id -> action` maps: good entries kept, problems reported. `unknown(id)` is the
/// message for an id the map may not name (`None`: the id is fine).
fn action_map(
    map: Option<&IndexMap<String, String>>,
    key: &str,
    root: &[Seg],
    diag: &mut Diagnostics,
    unknown: impl Fn(&str) -> Option<String>,
) -> IndexMap<String, GuardrailAction> {
    let mut out = IndexMap::new();
    for (id, name) in map.into_iter().flatten() {
        let at = [root, &[Seg::key(key), Seg::key(id)]].concat();
        if let Some(message) = unknown(id) {
            diag.at_key(&at, message);
            continue;
        }
        match action(name) {
            Some(a) => {
                out.insert(id.clone(), a);
            }
            None => diag.at_value(&at, unknown_action(name)),
        }
    }
    out
}

/// `upgoing` / `downgoing`: built-in id -> action.
fn builtin_map(
    map: Option<&IndexMap<String, String>>,
    key: &str,
    root: &[Seg],
    customs: &HashSet<&str>,
    diag: &mut Diagnostics,
) -> IndexMap<String, GuardrailAction> {
    action_map(map, key, root, diag, |id| {
        if GUARDRAIL_BUILTINS.contains(&id) {
            return None;
        }
        let hint = if customs.contains(id) {
            format!(": `{id}` is a custom pattern, give its action under `custom_{key}`")
        } else {
            format!(", expected one of {}", backticked(GUARDRAIL_BUILTINS))
        };
        Some(format!(
            "unknown built-in guardrail pattern `{id}` in `guardrails.{key}`{hint}"
        ))
    })
}

/// Custom pattern names: `all` were written (references to a broken entry are not reported
/// again), `good` resolved (the ones worth suggesting), sorted.
struct Names<'a> {
    all: &'a HashSet<&'a str>,
    good: &'a [&'a str],
}

/// `custom_upgoing` / `custom_downgoing`: custom name -> action.
fn custom_map(
    map: Option<&IndexMap<String, String>>,
    key: &str,
    root: &[Seg],
    customs: &Names<'_>,
    diag: &mut Diagnostics,
) -> IndexMap<String, GuardrailAction> {
    action_map(map, key, root, diag, |id| {
        if customs.all.contains(id) && !GUARDRAIL_BUILTINS.contains(&id) {
            return None;
        }
        let hint = if GUARDRAIL_BUILTINS.contains(&id) {
            let plain = key.trim_start_matches("custom_");
            format!(": `{id}` is a built-in pattern, give its action under `{plain}`")
        } else if customs.good.is_empty() {
            ": no custom patterns are defined (add it under `custom_patterns`)".to_string()
        } else {
            format!(", expected one of {}", backticked(customs.good))
        };
        Some(format!(
            "unknown custom guardrail pattern `{id}` in `guardrails.{key}`{hint}"
        ))
    })
}
