//! Text -> [`ConfigFile`]: YAML syntax, `${VAR}` expansion, and typed decoding section by
//! section and entry by entry, so one bad provider does not hide another's problem.
//!
//! Each entry is decoded from a `serde_yaml::Value` through `serde_path_to_error`, whose path
//! is placed in the text by the span index. After an unknown field (or an invalid optional
//! value) the offending key is removed and the entry decoded again, so several mistakes in one
//! entry are all reported.

use crate::env::{self, ExpandError};
use crate::schema::{
    ConfigFile, DatabaseSection, GuardrailsPluginSection, GuardrailsSection, PresetSection,
    ProviderSection, ServerSection, UpstreamSection, VariantSection, VirtualModelSection, SECTIONS,
};
use crate::spans::{DisplayPath, Pos, Seg};
use crate::validate::Diagnostics;
use crate::EnvSource;
use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};
use std::borrow::Cow;
use std::collections::HashSet;

/// The decoded file plus what the resolver needs to avoid cascading problems.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub file: ConfigFile,
    /// Providers whose entry had problems (already reported): references to them from virtual
    /// models are not reported again, and auto-detection does not replace them.
    pub broken_providers: HashSet<String>,
    /// Presets whose entry had problems (already reported): references to them are not
    /// reported again.
    pub broken_presets: HashSet<String>,
    pub warnings: Vec<String>,
    /// `plugins.bitrouter-guardrails`, decoded (it is taken out of `file.plugins`).
    pub guardrails_plugin: Option<GuardrailsPluginSection>,
}

/// Upper bound on re-decodes of one entry (each removes one offending key).
const MAX_PASSES: usize = 64;

/// Parses `text`; `None` when the YAML itself is malformed (the problem is in `diag`).
pub(crate) fn parse(text: &str, env: &dyn EnvSource, diag: &mut Diagnostics) -> Option<Parsed> {
    let mut root: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            syntax_error(&e, diag);
            return None;
        }
    };
    if let Err(e) = root.apply_merge() {
        diag.at(None, format!("invalid merge key (`<<`): {e}"));
        return None;
    }
    let sections = match root {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m,
        other => {
            diag.at_key(
                &[],
                format!(
                    "the top level must be a mapping of sections (`server:`, `providers:`, `models:`, ...), found {}",
                    kind(&other)
                ),
            );
            return None;
        }
    };
    let mut parsed = Parsed::default();
    for (key, value) in sections {
        let Some(name) = key_string(&key) else {
            diag.at(None, "a top-level section name must be a string");
            continue;
        };
        let path = vec![Seg::Key(name.clone())];
        match name.as_str() {
            "server" => {
                if let Some(server) = decode::<ServerSection>(value, &path, env, diag) {
                    parsed.file.server = server;
                }
            }
            "upstream" => {
                if let Some(upstream) = decode::<UpstreamSection>(value, &path, env, diag) {
                    parsed.file.upstream = upstream;
                }
            }
            "providers" => {
                for (id, entry) in entries(value, &path, "provider id", diag) {
                    let entry_path = [path.clone(), vec![Seg::Key(id.clone())]].concat();
                    match decode::<ProviderSection>(entry, &entry_path, env, diag) {
                        Some(provider) => {
                            parsed.file.providers.insert(id, provider);
                        }
                        None => {
                            parsed.broken_providers.insert(id);
                        }
                    }
                }
            }
            "models" => {
                for (name, entry) in entries(value, &path, "virtual model name", diag) {
                    let entry_path = [path.clone(), vec![Seg::Key(name.clone())]].concat();
                    if let Some(model) =
                        decode::<VirtualModelSection>(entry, &entry_path, env, diag)
                    {
                        parsed.file.models.insert(name, model);
                    }
                }
            }
            "presets" => {
                for (name, entry) in entries(value, &path, "preset name", diag) {
                    let entry_path = [path.clone(), vec![Seg::Key(name.clone())]].concat();
                    match decode::<PresetSection>(entry, &entry_path, env, diag) {
                        Some(preset) => {
                            parsed.file.presets.insert(name, preset);
                        }
                        None => {
                            parsed.broken_presets.insert(name);
                        }
                    }
                }
            }
            "variants" => {
                for (name, entry) in entries(value, &path, "variant name", diag) {
                    let entry_path = [path.clone(), vec![Seg::Key(name.clone())]].concat();
                    if let Some(variant) = decode::<VariantSection>(entry, &entry_path, env, diag) {
                        parsed.file.variants.insert(name, variant);
                    }
                }
            }
            "database" => {
                parsed.file.database = decode::<DatabaseSection>(value, &path, env, diag);
                if let Some(url) = parsed.file.database.as_ref().and_then(|d| d.url.as_ref()) {
                    if !is_database_url(url) {
                        diag.at_value(
                            &[Seg::key("database"), Seg::key("url")],
                            "`database.url` must start with `sqlite://` (a file), `postgres://` or `postgresql://`",
                        );
                    }
                }
            }
            "routes" => parsed.file.routes = crate::routes::parse(value, &path, env, diag),
            "guardrails" => {
                parsed.file.guardrails = decode::<GuardrailsSection>(value, &path, env, diag);
            }
            "plugins" => {
                let (plugin, rest) = guardrails_plugin(value, &path, env, diag);
                if let Some(rest) = rest {
                    let except = if plugin.is_some() {
                        " (except `bitrouter-guardrails`)"
                    } else {
                        ""
                    };
                    parsed.file.plugins = Some(rest);
                    parsed.warnings.push(format!(
                        "section `plugins` is parsed but not implemented yet{except}; it has no effect"
                    ));
                }
                parsed.guardrails_plugin = plugin;
            }
            other => match not_implemented_slot(&mut parsed.file, other) {
                Some(slot) => {
                    *slot = Some(value);
                    parsed.warnings.push(format!(
                        "section `{other}` is parsed but not implemented yet; it has no effect"
                    ));
                }
                None => diag.at_key(
                    &path,
                    format!(
                        "unknown top-level section `{other}`, expected one of {}",
                        backticked(&SECTIONS)
                    ),
                ),
            },
        }
    }
    Some(parsed)
}

/// Takes `bitrouter-guardrails` out of the `plugins:` value and decodes it; returns it and what
/// is left (`None` when nothing is: the section then needs no "not implemented" warning). Any
/// other shape of `plugins:` is kept as it is, as before guardrails existed.
fn guardrails_plugin(
    value: Value,
    path: &[Seg],
    env: &dyn EnvSource,
    diag: &mut Diagnostics,
) -> (Option<GuardrailsPluginSection>, Option<Value>) {
    const NAME: &str = "bitrouter-guardrails";
    let mut map = match value {
        Value::Mapping(m) if m.contains_key(NAME) => m,
        other => return (None, Some(other)),
    };
    let entry = map.shift_remove(NAME).unwrap_or(Value::Null);
    let entry_path = [path, &[Seg::key(NAME)]].concat();
    let plugin = decode::<GuardrailsPluginSection>(entry, &entry_path, env, diag);
    let rest = (!map.is_empty()).then_some(Value::Mapping(map));
    (plugin, rest)
}

fn not_implemented_slot<'a>(file: &'a mut ConfigFile, name: &str) -> Option<&'a mut Option<Value>> {
    Some(match name {
        "mcp" => &mut file.mcp,
        "mcp_servers" => &mut file.mcp_servers,
        "agents" => &mut file.agents,
        "server_tools" => &mut file.server_tools,
        "inherit_defaults" => &mut file.inherit_defaults,
        _ => return None,
    })
}

/// Whether `url` names a database the ledger can use (the proxy parses it further).
fn is_database_url(url: &str) -> bool {
    ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|scheme| url.starts_with(scheme))
}

/// A YAML syntax error, placed where serde_yaml (or, for duplicate keys, the span index) says.
pub(crate) fn syntax_error(e: &serde_yaml::Error, diag: &mut Diagnostics) {
    let message = e.to_string();
    if message.contains("duplicate entry") && !diag.spans().duplicates.is_empty() {
        let duplicates = diag.spans().duplicates.clone();
        for (path, pos) in duplicates {
            let (key, parent) = match path.split_last() {
                Some((Seg::Key(k), parent)) => (k.clone(), parent),
                _ => continue,
            };
            diag.at(
                Some(pos),
                format!("duplicate key `{key}` in {}", describe(parent)),
            );
        }
        return;
    }
    let pos = e.location().map(|l| Pos {
        line: l.line(),
        col: l.column(),
    });
    let message = match e.location() {
        Some(l) => message.replacen(
            &format!(" at line {} column {}", l.line(), l.column()),
            "",
            1,
        ),
        None => message,
    };
    diag.at(pos, format!("invalid YAML: {message}"));
}

/// The entries of a mapping section (`providers:`, `models:`); `null` is an empty section.
fn entries(
    value: Value,
    path: &[Seg],
    key_kind: &str,
    diag: &mut Diagnostics,
) -> Vec<(String, Value)> {
    match value {
        Value::Null => Vec::new(),
        Value::Mapping(m) => m
            .into_iter()
            .filter_map(|(k, v)| match key_string(&k) {
                Some(k) => Some((k, v)),
                None => {
                    diag.at_key(path, format!("a {key_kind} must be a string"));
                    None
                }
            })
            .collect(),
        other => {
            diag.at_value(
                path,
                format!(
                    "`{}` must be a mapping keyed by {key_kind}, found {}",
                    DisplayPath(path),
                    kind(&other)
                ),
            );
            Vec::new()
        }
    }
}

/// Expands `${VAR}`s in `value`, then decodes it as `T`, reporting every problem. Returns the
/// value when every placeholder expanded and the only problems were unknown fields: the
/// resolver can then still check the rest of the entry without cascading from a bad value.
pub(crate) fn decode<T: DeserializeOwned>(
    mut value: Value,
    path: &[Seg],
    env: &dyn EnvSource,
    diag: &mut Diagnostics,
) -> Option<T> {
    if value.is_null() {
        value = Value::Mapping(Mapping::new());
    }
    let expanded = expand_tree(&mut value, &mut path.to_vec(), env, diag);
    // Keys removed because their value was invalid: a later "missing field" for one of them is
    // a consequence, not a new problem.
    let mut removed: Vec<Vec<Seg>> = Vec::new();
    let mut only_unknown_fields = true;
    for _ in 0..MAX_PASSES {
        let err = match serde_path_to_error::deserialize::<_, T>(&value) {
            Ok(decoded) => return (expanded && only_unknown_fields).then_some(decoded),
            Err(err) => err,
        };
        let rel = segments(err.path());
        let full = [path, &rel[..]].concat();
        let message = err.inner().to_string();
        if let Some((field, rest)) = unknown_field(&message) {
            let key_path = match rel.last() {
                Some(Seg::Key(k)) if k == field => rel.clone(),
                _ => [&rel[..], &[Seg::key(field)]].concat(),
            };
            let full_key = [path, &key_path[..]].concat();
            let parent = &full_key[..full_key.len() - 1];
            diag.at_key(
                &full_key,
                format!("unknown field `{field}` in {}{rest}", describe(parent)),
            );
            if remove(&mut value, &key_path) {
                continue;
            }
            return None;
        }
        only_unknown_fields = false;
        if let Some(field) = missing_field(&message) {
            let missing = [&rel[..], &[Seg::key(field)]].concat();
            if !removed.contains(&missing) {
                diag.at_key(
                    &full,
                    format!("missing field `{field}` in {}", describe(&full)),
                );
            }
            return None;
        }
        diag.at_value(
            &full,
            format!("`{}`: {}", DisplayPath(&full), polish(&message)),
        );
        if matches!(rel.last(), Some(Seg::Key(_))) && remove(&mut value, &rel) {
            removed.push(rel);
            continue;
        }
        return None;
    }
    None
}

/// Expands every string in `value`; false when a placeholder could not be expanded (reported).
fn expand_tree(
    value: &mut Value,
    path: &mut Vec<Seg>,
    env: &dyn EnvSource,
    diag: &mut Diagnostics,
) -> bool {
    match value {
        Value::String(s) => match env::expand(s, env) {
            Ok(Cow::Borrowed(_)) => true,
            Ok(Cow::Owned(expanded)) => {
                *s = expanded;
                true
            }
            Err(errors) => {
                for e in errors {
                    let message = match e {
                        ExpandError::Unset(name) => format!(
                            "environment variable `{name}` is not set (referenced by `{}`)",
                            DisplayPath(path)
                        ),
                        ExpandError::Malformed(why) => format!("`{}`: {why}", DisplayPath(path)),
                    };
                    diag.at_value(path, message);
                }
                false
            }
        },
        Value::Sequence(items) => {
            let mut ok = true;
            for (i, item) in items.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                ok &= expand_tree(item, path, env, diag);
                path.pop();
            }
            ok
        }
        Value::Mapping(map) => {
            let mut ok = true;
            for (k, v) in map.iter_mut() {
                path.push(Seg::Key(key_string(k).unwrap_or_default()));
                ok &= expand_tree(v, path, env, diag);
                path.pop();
            }
            ok
        }
        Value::Tagged(tagged) => expand_tree(&mut tagged.value, path, env, diag),
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
    }
}

/// Removes the map key at `path` (relative to `value`); false when there is none.
fn remove(value: &mut Value, path: &[Seg]) -> bool {
    let Some((Seg::Key(last), parents)) = path.split_last() else {
        return false;
    };
    let mut node = value;
    for seg in parents {
        let next = match (seg, node) {
            (Seg::Key(k), Value::Mapping(m)) => m.get_mut(k.as_str()),
            (Seg::Index(i), Value::Sequence(s)) => s.get_mut(*i),
            _ => None,
        };
        match next {
            Some(n) => node = n,
            None => return false,
        }
    }
    match node {
        Value::Mapping(m) => m.shift_remove(last.as_str()).is_some(),
        _ => false,
    }
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    let mut out = Vec::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push(Seg::Index(*index)),
            Segment::Map { key } => out.push(Seg::Key(key.clone())),
            Segment::Enum { .. } => {}
            Segment::Unknown => break,
        }
    }
    out
}

/// `unknown field `x`, expected ...` -> (`x`, `, expected ...`).
pub(crate) fn unknown_field(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("unknown field `")?;
    let end = rest.find('`')?;
    Some((&rest[..end], &rest[end + 1..]))
}

fn missing_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("missing field `")?;
    rest.strip_suffix('`')
}

/// Says serde's type names the way a config author thinks of them.
pub(crate) fn polish(message: &str) -> String {
    let mut out = message
        .replace("expected a nonzero usize", "expected a positive integer")
        .replace("invalid type: unit value", "invalid type: null")
        .replace("expected f64", "expected a number");
    for int in ["usize", "u64", "u32", "u16"] {
        out = out.replace(
            &format!("expected {int}"),
            "expected a non-negative integer",
        );
    }
    if let Some(at) = out.find("expected struct ") {
        out.truncate(at);
        out.push_str("expected a mapping");
    }
    out
}

/// Describes the place `path` names, for messages: `provider `openai``,
/// ``models[0]` of provider `openai``.
pub(crate) fn describe(path: &[Seg]) -> String {
    let rest_of = |rest: &[Seg], what: String| {
        if rest.is_empty() {
            what
        } else {
            format!("`{}` of {what}", DisplayPath(rest))
        }
    };
    match path {
        [] => "the top level".to_string(),
        [Seg::Key(s), Seg::Key(id), rest @ ..] if s == "providers" => {
            rest_of(rest, format!("provider `{id}`"))
        }
        [Seg::Key(s), Seg::Key(name), rest @ ..] if s == "models" => {
            rest_of(rest, format!("virtual model `{name}`"))
        }
        [Seg::Key(s), Seg::Key(name), rest @ ..] if s == "presets" => {
            rest_of(rest, format!("preset `{name}`"))
        }
        [Seg::Key(s), Seg::Key(name), rest @ ..] if s == "variants" => {
            rest_of(rest, format!("variant `{name}`"))
        }
        _ => format!("`{}`", DisplayPath(path)),
    }
}

pub(crate) fn key_string(key: &Value) -> Option<String> {
    match key {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub(crate) fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
