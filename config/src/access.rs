//! Access policies: the files under `policies/` (next to `bitrouter.yaml`) that say what a
//! virtual key may do: which models, how much spend per month, how many requests per minute,
//! until when, which tools.
//!
//! One policy per file, the file stem is its id. A key names one or more policies; the request
//! path combines them into an [`EffectivePolicy`] (the strictest of each limit wins) and checks
//! the request against it. This module only loads and combines: counting spend and requests is
//! the proxy's.
//!
//! Loading is strict on purpose: an unknown key (`max_spend_usd` for `max_spend_micro_usd`)
//! is an error, not a silently missing budget, and every problem names the file with
//! line:col as `bitrouter.yaml` problems do.

use crate::parse::{kind, polish, syntax_error, unknown_field};
use crate::spans::{DisplayPath, Pos, Seg};
use crate::validate::{Diagnostics, Problem};
use crate::{glob, ConfigError};
use serde::Deserialize;
use serde_yaml::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// The folder policies are read from, relative to the config file's folder.
pub const POLICIES_DIR: &str = "policies";

/// The file extensions read as policies (YAML, or JSON by `.json`).
pub const POLICY_EXTENSIONS: &[&str] = &["yaml", "yml", "json"];

/// The top-level keys of a policy file, for messages and the CLI's template.
pub const POLICY_KEYS: &[&str] = &[
    "id",
    "description",
    "allowed_models",
    "denied_models",
    "max_spend_micro_usd",
    "expires_at",
    "max_requests_per_minute",
    "allowed_tools",
];

/// The `policies/` folder that belongs to the config file at `config_path`. A bare file name
/// gives the relative `policies` (not `./policies`), so problems read `policies/x.yaml:3:1`.
pub fn policies_dir(config_path: &Path) -> PathBuf {
    match config_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir.join(POLICIES_DIR),
        None => PathBuf::from(POLICIES_DIR),
    }
}

/// Whether `id` can name a policy: `[A-Za-z0-9_.-]+`. The id is a file stem and is written
/// into keys and logs, so it stays a plain token.
pub fn valid_policy_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// One policy file, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessPolicy {
    /// The file stem.
    pub id: String,
    /// Model names or globs a key may use; `None`: this policy does not restrict models, an
    /// empty list: no model at all.
    pub allowed_models: Option<Vec<String>>,
    /// Model names or globs a key may never use, whatever any allow list says.
    pub denied_models: Vec<String>,
    /// Spend cap per calendar month (UTC), in millionths of a US dollar; finite and `>= 0`.
    pub max_spend_micro_usd: Option<f64>,
    /// `expires_at`, in milliseconds since the Unix epoch.
    pub expires_at_ms: Option<i64>,
    /// At least 1.
    pub max_requests_per_minute: Option<u32>,
    /// Tool names or globs a request may declare; `None`: this policy does not restrict tools.
    pub allowed_tools: Option<Vec<String>>,
    /// Free text for people (`bitrouter policy list --json`); no effect.
    pub description: Option<String>,
    /// The file the policy was read from (as found: relative when the config path was).
    pub file: PathBuf,
}

impl AccessPolicy {
    /// A policy with no limits, for tests and for callers building policies in code.
    pub fn unrestricted(id: impl Into<String>) -> AccessPolicy {
        AccessPolicy {
            id: id.into(),
            allowed_models: None,
            denied_models: Vec::new(),
            max_spend_micro_usd: None,
            expires_at_ms: None,
            max_requests_per_minute: None,
            allowed_tools: None,
            description: None,
            file: PathBuf::new(),
        }
    }
}

/// Every policy of one `policies/` folder, by id.
#[derive(Debug, Clone, Default)]
pub struct AccessPolicies {
    by_id: BTreeMap<String, Arc<AccessPolicy>>,
    /// The folder read (`None`: zero-config or text not read from a file).
    dir: Option<PathBuf>,
}

impl AccessPolicies {
    /// Reads every `*.yaml`, `*.yml` and `*.json` file in `dir` (not its subfolders). A folder
    /// that does not exist is an empty set: policies are optional. Every problem in every file
    /// is reported, each with file:line:col where it has a place.
    pub fn load_dir(dir: &Path) -> Result<AccessPolicies, ConfigError> {
        let dir_name = dir.display().to_string();
        let failed = |message: String| ConfigError {
            problems: vec![Problem {
                file: dir_name.clone(),
                line: 0,
                col: 0,
                message,
            }],
        };
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(AccessPolicies {
                    by_id: BTreeMap::new(),
                    dir: Some(dir.to_path_buf()),
                })
            }
            Err(e) => return Err(failed(format!("cannot read the policies folder: {e}"))),
        };
        let mut files: Vec<PathBuf> = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|e| failed(format!("cannot read the policies folder: {e}")))?;
            let path = entry.path();
            let is_policy = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| POLICY_EXTENSIONS.contains(&e));
            if is_policy && path.is_file() {
                files.push(path);
            }
        }
        files.sort();

        let mut problems = Vec::new();
        let mut by_id: BTreeMap<String, Arc<AccessPolicy>> = BTreeMap::new();
        // Which file each id came from, also for files with problems, so a duplicate is still
        // reported when one of the two is broken.
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let file = path.display().to_string();
            let at_file = |message: String| Problem {
                file: file.clone(),
                line: 0,
                col: 0,
                message,
            };
            let Some(id) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .map(str::to_string)
            else {
                problems.push(at_file(
                    "a policy file name must be UTF-8 (its stem is the policy id)".to_string(),
                ));
                continue;
            };
            if !valid_policy_id(&id) {
                problems.push(at_file(format!(
                    "policy id `{id}` (the file name without extension) may only contain letters, digits, `_`, `.` and `-`; rename the file"
                )));
                continue;
            }
            if let Some(first) = seen.get(&id) {
                problems.push(at_file(format!(
                    "policy `{id}` is defined twice: in {} and here; keep one of the two files",
                    first.display()
                )));
                continue;
            }
            seen.insert(id.clone(), path.clone());
            let text = match std::fs::read_to_string(&path) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(at_file(format!("cannot read the policy file: {e}")));
                    continue;
                }
            };
            let json = path.extension().is_some_and(|e| e == "json");
            match parse_policy(&text, &file, &id, json, &path) {
                Ok(policy) => {
                    by_id.insert(id, Arc::new(policy));
                }
                Err(e) => problems.extend(e.problems),
            }
        }
        if problems.is_empty() {
            Ok(AccessPolicies {
                by_id,
                dir: Some(dir.to_path_buf()),
            })
        } else {
            Err(ConfigError { problems })
        }
    }

    /// A set built in code (tests, callers that do not read a folder).
    pub fn from_policies(policies: impl IntoIterator<Item = AccessPolicy>) -> AccessPolicies {
        AccessPolicies {
            by_id: policies
                .into_iter()
                .map(|p| (p.id.clone(), Arc::new(p)))
                .collect(),
            dir: None,
        }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<AccessPolicy>> {
        self.by_id.get(id)
    }

    /// The ids, sorted.
    pub fn ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.by_id.keys().map(String::as_str)
    }

    /// The policies, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<AccessPolicy>> + '_ {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The folder the set was read from (`None` when it was not read from one).
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }
}

/// A policy file as written. Every key optional; unknown keys are errors.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    allowed_models: Option<Vec<String>>,
    #[serde(default)]
    denied_models: Option<Vec<String>>,
    #[serde(default)]
    max_spend_micro_usd: Option<f64>,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    max_requests_per_minute: Option<u32>,
    #[serde(default)]
    allowed_tools: Option<Vec<String>>,
}

/// Upper bound on re-decodes of one file (each removes one offending key).
const MAX_PASSES: usize = 16;

/// Parses and validates one policy file's text. `file` is the name used in problems, `id` the
/// file stem.
fn parse_policy(
    text: &str,
    file: &str,
    id: &str,
    json: bool,
    path: &Path,
) -> Result<AccessPolicy, ConfigError> {
    // yaml-rust2 reads JSON too (it is YAML's flow style), so one span index places problems in
    // either format.
    let mut diag = Diagnostics::new(file, text);
    let root = if json {
        json_root(text, &mut diag)
    } else {
        match serde_yaml::from_str::<Value>(text) {
            Ok(v) => Some(v),
            Err(e) => {
                syntax_error(&e, &mut diag);
                None
            }
        }
    };
    let Some(mut root) = root else {
        return Err(diag.into_error());
    };
    match &root {
        Value::Null => root = Value::Mapping(serde_yaml::Mapping::new()),
        Value::Mapping(_) => {}
        other => {
            diag.at_key(
                &[],
                format!(
                    "a policy file must be a mapping of limits (`allowed_models:`, `max_spend_micro_usd:`, ...), found {}",
                    kind(other)
                ),
            );
            return Err(diag.into_error());
        }
    }
    let decoded = decode(&mut root, id, &mut diag);
    let policy = decoded.map(|raw| validate(raw, id, path, &mut diag));
    match policy {
        Some(policy) if !diag.has_problems() => Ok(policy),
        _ => Err(diag.into_error()),
    }
}

/// A JSON file's value; syntax errors and repeated keys (which serde_json would let the last
/// one win) are reported.
fn json_root(text: &str, diag: &mut Diagnostics) -> Option<Value> {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let pos = (e.line() > 0).then(|| Pos {
                line: e.line(),
                col: e.column().max(1),
            });
            let message = e.to_string();
            let message = message
                .replacen(
                    &format!(" at line {} column {}", e.line(), e.column()),
                    "",
                    1,
                )
                .to_string();
            diag.at(pos, format!("invalid JSON: {message}"));
            return None;
        }
    };
    let duplicates = diag.spans().duplicates.clone();
    for (path, pos) in &duplicates {
        if let Some((Seg::Key(k), _)) = path.split_last() {
            diag.at(Some(*pos), format!("duplicate key `{k}`"));
        }
    }
    if !duplicates.is_empty() {
        return None;
    }
    match serde_yaml::to_value(&value) {
        Ok(v) => Some(v),
        Err(e) => {
            diag.at(None, format!("invalid JSON: {e}"));
            None
        }
    }
}

/// Decodes the file's mapping, reporting every unknown key and every value of the wrong type
/// (each is removed and the rest decoded again, so the remaining keys still get checked; the
/// problems already in `diag` make the load fail). `None` when nothing could be decoded.
fn decode(root: &mut Value, id: &str, diag: &mut Diagnostics) -> Option<PolicyFile> {
    for _ in 0..MAX_PASSES {
        let err = match serde_path_to_error::deserialize::<_, PolicyFile>(&*root) {
            Ok(decoded) => return Some(decoded),
            Err(err) => err,
        };
        let message = err.inner().to_string();
        let path: Vec<Seg> = err
            .path()
            .iter()
            .map_while(|seg| match seg {
                serde_path_to_error::Segment::Seq { index } => Some(Seg::Index(*index)),
                serde_path_to_error::Segment::Map { key } => Some(Seg::Key(key.clone())),
                _ => None,
            })
            .collect();
        let top = match unknown_field(&message) {
            Some((field, rest)) => {
                diag.at_key(
                    &[Seg::key(field)],
                    format!("unknown key `{field}` in policy `{id}`{rest}"),
                );
                field.to_string()
            }
            None => {
                diag.at_value(
                    &path,
                    format!("`{}`: {}", DisplayPath(&path), polish(&message)),
                );
                match path.first() {
                    Some(Seg::Key(k)) => k.clone(),
                    _ => return None,
                }
            }
        };
        let removed = match root {
            Value::Mapping(m) => m.shift_remove(top.as_str()).is_some(),
            _ => false,
        };
        if !removed {
            return None;
        }
    }
    None
}

/// Checks the values' meaning: globs well formed, numbers in range, the time readable, the
/// `id` key (if any) equal to the file stem.
fn validate(raw: PolicyFile, id: &str, path: &Path, diag: &mut Diagnostics) -> AccessPolicy {
    if let Some(inner) = &raw.id {
        if inner != id {
            diag.at_value(
                &[Seg::key("id")],
                format!(
                    "`id` is `{inner}` but the file name says `{id}`; the file stem is the policy id (rename the file or remove `id`)"
                ),
            );
        }
    }
    let mut globs = |key: &str, list: &Option<Vec<String>>| {
        for (i, pattern) in list.iter().flatten().enumerate() {
            if let Err(why) = glob::check(pattern) {
                diag.at_value(
                    &[Seg::key(key), Seg::Index(i)],
                    format!("`{key}[{i}]`: {why}"),
                );
            }
        }
    };
    globs("allowed_models", &raw.allowed_models);
    globs("denied_models", &raw.denied_models);
    globs("allowed_tools", &raw.allowed_tools);
    if let Some(spend) = raw.max_spend_micro_usd {
        if !spend.is_finite() || spend < 0.0 {
            diag.at_value(
                &[Seg::key("max_spend_micro_usd")],
                "`max_spend_micro_usd` must be a finite number >= 0 (millionths of a US dollar per calendar month: 5000000 is $5)",
            );
        }
    }
    if raw.max_requests_per_minute == Some(0) {
        diag.at_value(
            &[Seg::key("max_requests_per_minute")],
            "`max_requests_per_minute` must be at least 1 (leave it out for no limit)",
        );
    }
    let expires_at_ms = raw.expires_at.as_deref().and_then(|s| match parse_time(s) {
        Ok(ms) => Some(ms),
        Err(why) => {
            diag.at_value(&[Seg::key("expires_at")], format!("`expires_at`: {why}"));
            None
        }
    });
    AccessPolicy {
        id: id.to_string(),
        allowed_models: raw.allowed_models,
        denied_models: raw.denied_models.unwrap_or_default(),
        max_spend_micro_usd: raw.max_spend_micro_usd,
        expires_at_ms,
        max_requests_per_minute: raw.max_requests_per_minute,
        allowed_tools: raw.allowed_tools,
        description: raw.description,
        file: path.to_path_buf(),
    }
}

/// An RFC 3339 time (`2027-01-31T00:00:00Z`, or with an offset such as `+02:00`) in
/// milliseconds since the epoch. humantime reads the UTC forms; an offset is applied here.
fn parse_time(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "`{text}` is not an RFC 3339 time; write a date and a time, e.g. `2027-01-31T00:00:00Z` (UTC) or `2027-01-31T00:00:00+02:00`"
        )
    };
    let s = text.trim();
    let (utc, offset_secs) = match split_offset(s) {
        Some((rest, offset)) => (rest, offset),
        None => (s, 0),
    };
    let time = humantime::parse_rfc3339_weak(utc).map_err(|_| bad())?;
    let ms = time
        .duration_since(UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis();
    i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_sub(offset_secs * 1000))
        .ok_or_else(bad)
}

/// `…+HH:MM` / `…-HH:MM` -> (the text before it, the offset in seconds east of UTC).
fn split_offset(s: &str) -> Option<(&str, i64)> {
    let at = s.len().checked_sub(6)?;
    let tail = s.get(at..)?.as_bytes();
    let sign = match tail[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| i64::from(b - b'0'));
    let hours = digit(tail[1])? * 10 + digit(tail[2])?;
    let minutes = digit(tail[4])? * 10 + digit(tail[5])?;
    if tail[3] != b':' || hours > 23 || minutes > 59 {
        return None;
    }
    Some((&s[..at], sign * (hours * 3600 + minutes * 60)))
}

/// Several policies as one: what a key with all of them may do. The strictest of each limit
/// wins; every denial names the policy that caused it.
#[derive(Debug, Clone, Default)]
pub struct EffectivePolicy {
    policies: Vec<Arc<AccessPolicy>>,
    /// Index into `policies` of the lowest spend cap, rate limit and earliest expiry.
    max_spend: Option<usize>,
    max_rpm: Option<usize>,
    expires: Option<usize>,
    /// Whether any policy has `allowed_tools` (then tools are limited to their union).
    tools_limited: bool,
}

impl EffectivePolicy {
    /// Combines `policies` (empty: no restriction). Model denials add up; a model must pass
    /// every allow list; spend, rate and expiry take the strictest (the first policy on a tie);
    /// the allowed tools are the union of the policies that list any.
    pub fn combine(policies: &[Arc<AccessPolicy>]) -> EffectivePolicy {
        let min_by = |value: &dyn Fn(&AccessPolicy) -> Option<f64>| {
            let mut best: Option<(usize, f64)> = None;
            for (i, p) in policies.iter().enumerate() {
                if let Some(v) = value(p) {
                    if best.is_none_or(|(_, b)| v < b) {
                        best = Some((i, v));
                    }
                }
            }
            best.map(|(i, _)| i)
        };
        EffectivePolicy {
            policies: policies.to_vec(),
            max_spend: min_by(&|p| p.max_spend_micro_usd),
            max_rpm: min_by(&|p| p.max_requests_per_minute.map(f64::from)),
            // Milliseconds fit f64 exactly for any date humans write (< 2^53 ms ≈ year 287396).
            expires: min_by(&|p| p.expires_at_ms.map(|ms| ms as f64)),
            tools_limited: policies.iter().any(|p| p.allowed_tools.is_some()),
        }
    }

    /// The ids of the combined policies, in the order given.
    pub fn policy_ids(&self) -> impl Iterator<Item = &str> + '_ {
        self.policies.iter().map(|p| p.id.as_str())
    }

    /// Whether the request's model may be used. `names` are every name the model goes by (as
    /// the client wrote it, and what it resolved to: `openai/gpt-4o-mini`, `gpt-4o-mini`): it
    /// is denied when any name matches a `denied_models` pattern, and for each policy with
    /// `allowed_models`, unless some name matches one of that policy's patterns.
    pub fn check_model(&self, names: &[&str]) -> Result<(), ModelDenied> {
        for p in &self.policies {
            for pattern in &p.denied_models {
                if let Some(name) = names.iter().find(|n| glob::matches(pattern, n)) {
                    return Err(ModelDenied {
                        policy: p.id.clone(),
                        model: (*name).to_string(),
                        reason: "denied_models",
                    });
                }
            }
        }
        for p in &self.policies {
            let Some(allowed) = &p.allowed_models else {
                continue;
            };
            let ok = names
                .iter()
                .any(|n| allowed.iter().any(|pattern| glob::matches(pattern, n)));
            if !ok {
                return Err(ModelDenied {
                    policy: p.id.clone(),
                    model: names.first().copied().unwrap_or_default().to_string(),
                    reason: "allowed_models",
                });
            }
        }
        Ok(())
    }

    /// [`check_model`](Self::check_model) as a filter (`/v1/models` lists only what a key may
    /// use).
    pub fn allows_model(&self, names: &[&str]) -> bool {
        self.check_model(names).is_ok()
    }

    /// Whether every tool the request declares is allowed: each must match a pattern of some
    /// policy's `allowed_tools` (when no policy has that key, every tool is).
    /// Whether any policy limits tools (else the request's tools need not be read).
    pub fn restricts_tools(&self) -> bool {
        self.tools_limited
    }

    /// Whether any policy has a model allow or deny list (else no model check is needed).
    pub fn restricts_models(&self) -> bool {
        self.policies
            .iter()
            .any(|p| p.allowed_models.is_some() || !p.denied_models.is_empty())
    }

    pub fn check_tools(&self, tool_names: &[&str]) -> Result<(), ToolDenied> {
        if !self.tools_limited {
            return Ok(());
        }
        let allowed = |tool: &str| {
            self.policies
                .iter()
                .filter_map(|p| p.allowed_tools.as_ref())
                .flatten()
                .any(|pattern| glob::matches(pattern, tool))
        };
        match tool_names.iter().find(|t| !allowed(t)) {
            None => Ok(()),
            Some(tool) => Err(ToolDenied {
                policy_ids: self
                    .policies
                    .iter()
                    .filter(|p| p.allowed_tools.is_some())
                    .map(|p| p.id.clone())
                    .collect(),
                tool: (*tool).to_string(),
            }),
        }
    }

    /// The lowest monthly spend cap (micro-USD) and the policy that sets it.
    pub fn max_spend_micro_usd(&self) -> Option<(f64, &str)> {
        let p = &self.policies[self.max_spend?];
        Some((p.max_spend_micro_usd?, p.id.as_str()))
    }

    /// The lowest requests-per-minute limit and the policy that sets it.
    pub fn max_requests_per_minute(&self) -> Option<(u32, &str)> {
        let p = &self.policies[self.max_rpm?];
        Some((p.max_requests_per_minute?, p.id.as_str()))
    }

    /// The earliest expiry (ms since the epoch) and the policy that sets it.
    pub fn expires_at_ms(&self) -> Option<(i64, &str)> {
        let p = &self.policies[self.expires?];
        Some((p.expires_at_ms?, p.id.as_str()))
    }

    /// Whether nothing is limited (the request path can then skip every check).
    pub fn is_unrestricted(&self) -> bool {
        self.max_spend.is_none()
            && self.max_rpm.is_none()
            && self.expires.is_none()
            && !self.tools_limited
            && self
                .policies
                .iter()
                .all(|p| p.allowed_models.is_none() && p.denied_models.is_empty())
    }
}

/// A model the key's policies do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct ModelDenied {
    /// The policy that refused it.
    pub policy: String,
    /// The name that was denied (for `allowed_models`: the first name given, as the client
    /// wrote it).
    pub model: String,
    /// `"denied_models"` or `"allowed_models"`: which key of the policy refused it.
    pub reason: &'static str,
}

impl ModelDenied {
    fn describe(&self) -> String {
        let verb = if self.reason == "denied_models" {
            "is denied by"
        } else {
            "is not allowed by"
        };
        format!(
            "model `{}` {verb} policy `{}` ({})",
            self.model, self.policy, self.reason
        )
    }
}

/// A tool the key's policies do not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ToolDenied {
    /// The policies that have `allowed_tools` (the tool is in none of their lists).
    pub policy_ids: Vec<String>,
    pub tool: String,
}

impl fmt::Display for ToolDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.policy_ids.iter().map(|id| format!("`{id}`")).collect();
        let noun = if ids.len() == 1 { "policy" } else { "policies" };
        write!(
            f,
            "tool `{}` is not allowed by {noun} {} (allowed_tools)",
            self.tool,
            ids.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        dir
    }

    /// Loads `files`; the problems as `name:line:col: message` with the folder stripped.
    fn problems(files: &[(&str, &str)]) -> Vec<String> {
        let dir = dir_with(files);
        let err = AccessPolicies::load_dir(dir.path()).unwrap_err();
        let prefix = format!("{}/", dir.path().display());
        err.problems
            .iter()
            .map(|p| {
                let file = p.file.strip_prefix(&prefix).unwrap_or(&p.file);
                format!("{file}:{}:{}: {}", p.line, p.col, p.message)
            })
            .collect()
    }

    fn load(files: &[(&str, &str)]) -> AccessPolicies {
        let dir = dir_with(files);
        AccessPolicies::load_dir(dir.path()).unwrap()
    }

    const FULL: &str = "\
# every key
description: interns' keys
allowed_models:
  - fast
  - \"claude-*\"
denied_models: [\"*-preview\"]
max_spend_micro_usd: 5000000
expires_at: 2027-01-31T00:00:00Z
max_requests_per_minute: 60
allowed_tools: [read_file, \"search_*\"]
";

    #[test]
    fn yaml_policy_reads_every_key() {
        let set = load(&[("interns.yaml", FULL), ("open.yml", "")]);
        assert_eq!(set.ids().collect::<Vec<_>>(), ["interns", "open"]);
        assert_eq!(set.len(), 2);
        let p = set.get("interns").unwrap();
        assert_eq!(p.id, "interns");
        assert_eq!(
            p.allowed_models.as_deref(),
            Some(&["fast".to_string(), "claude-*".to_string()][..])
        );
        assert_eq!(p.denied_models, ["*-preview"]);
        assert_eq!(p.max_spend_micro_usd, Some(5_000_000.0));
        assert_eq!(p.expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(p.max_requests_per_minute, Some(60));
        assert_eq!(
            p.allowed_tools.as_deref(),
            Some(&["read_file".to_string(), "search_*".to_string()][..])
        );
        assert_eq!(p.description.as_deref(), Some("interns' keys"));
        assert!(p.file.ends_with("interns.yaml"));
        // An empty file is a policy without limits.
        assert_eq!(**set.get("open").unwrap(), {
            let mut open = AccessPolicy::unrestricted("open");
            open.file = set.get("open").unwrap().file.clone();
            open
        });
        assert!(set.get("nobody").is_none());
    }

    #[test]
    fn json_policy_reads_like_yaml() {
        let set = load(&[(
            "ci.json",
            r#"{
  "id": "ci",
  "allowed_models": ["openai/*"],
  "max_spend_micro_usd": 2.5e6,
  "expires_at": "2027-01-31T02:00:00+02:00",
  "max_requests_per_minute": 10
}"#,
        )]);
        let p = set.get("ci").unwrap();
        assert_eq!(
            p.allowed_models.as_deref(),
            Some(&["openai/*".to_string()][..])
        );
        assert_eq!(p.max_spend_micro_usd, Some(2_500_000.0));
        assert_eq!(p.expires_at_ms, Some(1_801_353_600_000));
        assert_eq!(p.max_requests_per_minute, Some(10));
        assert!(p.denied_models.is_empty());
        assert!(p.allowed_tools.is_none());
    }

    #[test]
    fn a_missing_folder_is_an_empty_set_and_other_files_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let set = AccessPolicies::load_dir(&dir.path().join("policies")).unwrap();
        assert!(set.is_empty());
        let set = load(&[("README.md", "not a policy"), ("x.yaml.bak", "nope: 1")]);
        assert!(set.is_empty());
    }

    #[test]
    fn a_folder_that_is_a_file_is_an_error() {
        let dir = dir_with(&[("policies", "")]);
        let err = AccessPolicies::load_dir(&dir.path().join("policies")).unwrap_err();
        assert!(
            err.to_string().contains("cannot read the policies folder"),
            "{err}"
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_line() {
        let got = problems(&[(
            "interns.yaml",
            "description: x\nmax_spend_usd: 5\nallowed_modles: [a]\n",
        )]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("interns.yaml:2:1: unknown key `max_spend_usd` in policy `interns`, expected one of"),
            "{got:?}"
        );
        assert!(got[0].contains("`max_spend_micro_usd`"), "{got:?}");
        assert!(
            got[1].starts_with("interns.yaml:3:1: unknown key `allowed_modles`"),
            "{got:?}"
        );
    }

    #[test]
    fn every_invalid_value_is_reported_with_its_place() {
        let got = problems(&[(
            "bad.yaml",
            "\
id: other
allowed_models: [\"gpt-[4\"]
denied_models: fast
max_spend_micro_usd: -1
expires_at: 2027-01-31
max_requests_per_minute: 0
allowed_tools: [\"\"]
",
        )]);
        let want = [
            "bad.yaml:1:5: `id` is `other` but the file name says `bad`",
            "bad.yaml:2:18: `allowed_models[0]`: unclosed `[`",
            "bad.yaml:3:16: `denied_models`: invalid type: string \"fast\", expected a sequence",
            "bad.yaml:4:22: `max_spend_micro_usd` must be a finite number >= 0",
            "bad.yaml:5:13: `expires_at`: `2027-01-31` is not an RFC 3339 time",
            "bad.yaml:6:26: `max_requests_per_minute` must be at least 1",
            "bad.yaml:7:17: `allowed_tools[0]`: a glob must not be empty",
        ];
        assert_eq!(got.len(), want.len(), "{got:#?}");
        for (got, want) in got.iter().zip(want) {
            assert!(
                got.starts_with(want),
                "{got}\n  does not start with\n{want}"
            );
        }
    }

    #[test]
    fn wrong_types_are_reported() {
        let got = problems(&[(
            "t.yaml",
            "max_requests_per_minute: many\nmax_spend_micro_usd: .inf\nallowed_tools: [x, 1]\n",
        )]);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].starts_with("t.yaml:1:26: `max_requests_per_minute`: invalid type: string \"many\", expected a non-negative integer"), "{got:#?}");
        assert!(
            got[1].starts_with("t.yaml:2:22: `max_spend_micro_usd` must be a finite number"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with(
                "t.yaml:3:20: `allowed_tools[1]`: invalid type: integer `1`, expected a string"
            ),
            "{got:#?}"
        );
        let got = problems(&[("n.yaml", "max_requests_per_minute: -5\n")]);
        assert!(
            got[0].contains("expected a non-negative integer"),
            "{got:#?}"
        );
        let got = problems(&[("n.yaml", "max_requests_per_minute: 5000000000\n")]);
        assert!(got[0].starts_with("n.yaml:1:26:"), "{got:#?}");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let got = problems(&[("y.yaml", "allowed_models:\n  - a\n - b\n")]);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("y.yaml:3:"), "{got:?}");
        assert!(got[0].contains("invalid YAML"), "{got:?}");

        let got = problems(&[(
            "d.yaml",
            "max_requests_per_minute: 1\nmax_requests_per_minute: 2\n",
        )]);
        assert_eq!(
            got,
            ["d.yaml:2:1: duplicate key `max_requests_per_minute` in the top level"]
        );

        let got = problems(&[("j.json", "{\n  \"allowed_models\": [\"a\",]\n}\n")]);
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("j.json:2:"), "{got:?}");
        assert!(got[0].contains("invalid JSON"), "{got:?}");

        let got = problems(&[(
            "k.json",
            "{\"max_requests_per_minute\": 1,\n \"max_requests_per_minute\": 2}",
        )]);
        assert_eq!(got, ["k.json:2:2: duplicate key `max_requests_per_minute`"]);

        let got = problems(&[("l.yaml", "- a\n- b\n")]);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("l.yaml:1:1: a policy file must be a mapping"),
            "{got:?}"
        );
    }

    #[test]
    fn json_problems_have_positions_too() {
        let got = problems(&[(
            "ci.json",
            "{\n  \"allowed_models\": [\"a\"],\n  \"max_spend_usd\": 5,\n  \"max_requests_per_minute\": 0\n}\n",
        )]);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(
            got[0].starts_with("ci.json:3:3: unknown key `max_spend_usd`"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("ci.json:4:30: `max_requests_per_minute` must be at least 1"),
            "{got:#?}"
        );
    }

    #[test]
    fn file_names_are_ids() {
        let got = problems(&[("has space.yaml", ""), ("ok.yaml", "")]);
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with("has space.yaml:0:0: policy id `has space`"),
            "{got:?}"
        );

        // The same id twice (any extensions) is an error naming both files.
        let got = problems(&[("dup.json", "{}"), ("dup.yaml", ""), ("dup.yml", "")]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(
            got[0].starts_with("dup.yaml:0:0: policy `dup` is defined twice: in "),
            "{got:?}"
        );
        assert!(got[0].contains("dup.json"), "{got:?}");

        assert!(valid_policy_id("a.b_c-D9"));
        assert!(!valid_policy_id(""));
        assert!(!valid_policy_id("a/b"));
        assert!(!valid_policy_id("ünï"));
    }

    #[test]
    fn problems_in_several_files_are_all_reported() {
        let got = problems(&[
            ("a.yaml", "max_requests_per_minute: 0\n"),
            ("b.yaml", "nope: 1\n"),
            ("c.yaml", "max_requests_per_minute: 1\n"),
        ]);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].starts_with("a.yaml:1:"));
        assert!(got[1].starts_with("b.yaml:1:"));
    }

    #[test]
    fn times_with_offsets() {
        let base = 1_801_353_600_000; // 2027-01-31T00:00:00Z
        assert_eq!(parse_time("2027-01-31T00:00:00Z"), Ok(base));
        assert_eq!(parse_time("2027-01-31T00:00:00"), Ok(base));
        assert_eq!(parse_time("2027-01-31 00:00:00Z"), Ok(base));
        assert_eq!(parse_time("2027-01-31T00:00:00.250Z"), Ok(base + 250));
        assert_eq!(parse_time("2027-01-31T00:00:00+00:00"), Ok(base));
        assert_eq!(parse_time("2027-01-31T02:30:00+02:30"), Ok(base));
        assert_eq!(parse_time("2027-01-30T19:00:00-05:00"), Ok(base));
        assert_eq!(
            parse_time("2027-01-31T00:00:00.5+01:00"),
            Ok(base - 3_600_000 + 500)
        );
        for bad in [
            "2027-01-31",
            "tomorrow",
            "",
            "2027-13-01T00:00:00Z",
            "1969-12-31T00:00:00Z",
            "2027-01-31T00:00:00+25:00",
            "ééééééééééééééééééééé",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies_dir_sits_next_to_the_config() {
        assert_eq!(
            policies_dir(Path::new("bitrouter.yaml")),
            Path::new("policies")
        );
        assert_eq!(
            policies_dir(Path::new("/etc/br/bitrouter.yaml")),
            Path::new("/etc/br/policies")
        );
    }

    fn policy(id: &str, edit: impl FnOnce(&mut AccessPolicy)) -> Arc<AccessPolicy> {
        let mut p = AccessPolicy::unrestricted(id);
        edit(&mut p);
        Arc::new(p)
    }

    fn list(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn no_policy_restricts_nothing() {
        let e = EffectivePolicy::combine(&[]);
        assert!(e.is_unrestricted());
        assert!(e.check_model(&["anything"]).is_ok());
        assert!(e.check_tools(&["rm_rf"]).is_ok());
        assert_eq!(e.max_spend_micro_usd(), None);
        assert_eq!(e.max_requests_per_minute(), None);
        assert_eq!(e.expires_at_ms(), None);
        let e = EffectivePolicy::combine(&[
            policy("open", |_| {}),
            policy("desc", |p| p.description = Some("x".into())),
        ]);
        assert!(e.is_unrestricted());
        assert_eq!(e.policy_ids().collect::<Vec<_>>(), ["open", "desc"]);
        // An empty deny list restricts nothing; an empty allow list allows nothing.
        let e = EffectivePolicy::combine(&[policy("none", |p| p.allowed_models = list(&[]))]);
        assert!(!e.is_unrestricted());
        assert!(!e.allows_model(&["gpt-4o"]));
    }

    #[test]
    fn model_allow_lists_intersect_and_deny_lists_add_up() {
        let cheap = policy("cheap", |p| {
            p.allowed_models = list(&["*-mini", "fast", "claude-haiku-*"])
        });
        let openai = policy("openai-only", |p| p.allowed_models = list(&["openai/*"]));
        let no_preview = policy("no-preview", |p| {
            p.denied_models = vec!["*-preview".into(), "o1".into()]
        });
        let e = EffectivePolicy::combine(&[
            cheap.clone(),
            openai,
            no_preview.clone(),
            policy("open", |_| {}),
        ]);
        assert!(!e.is_unrestricted());
        // Allowed by both allow lists, through different names of the same model.
        assert!(e
            .check_model(&["fast", "openai/gpt-4o-mini", "gpt-4o-mini"])
            .is_ok());
        assert!(e.allows_model(&["openai/gpt-4o-mini", "gpt-4o-mini"]));
        // Allowed by `cheap` but not by `openai-only`.
        assert_eq!(
            e.check_model(&["claude-haiku-4-5", "anthropic/claude-haiku-4-5"]),
            Err(ModelDenied {
                policy: "openai-only".into(),
                model: "claude-haiku-4-5".into(),
                reason: "allowed_models",
            })
        );
        // Not allowed by the first allow list: it is named.
        let err = e.check_model(&["openai/gpt-4o", "gpt-4o"]).unwrap_err();
        assert_eq!(err.policy, "cheap");
        assert_eq!(
            err.to_string(),
            "model `openai/gpt-4o` is not allowed by policy `cheap` (allowed_models)"
        );
        // A deny on any name wins over every allow.
        let err = e
            .check_model(&["fast", "openai/o1-mini-preview", "o1-mini-preview"])
            .unwrap_err();
        assert_eq!(
            err,
            ModelDenied {
                policy: "no-preview".into(),
                model: "openai/o1-mini-preview".into(),
                reason: "denied_models"
            }
        );
        assert_eq!(
            err.to_string(),
            "model `openai/o1-mini-preview` is denied by policy `no-preview` (denied_models)"
        );
        // Globs are case-sensitive and match the whole name.
        let e = EffectivePolicy::combine(&[cheap, no_preview]);
        assert!(!e.allows_model(&["FAST"]));
        assert!(!e.allows_model(&["fast-x"]));
        assert!(!e.allows_model(&["o1"]));
        assert!(e.allows_model(&["O1-mini"]));
        assert!(!e.allows_model(&[]), "no name cannot pass an allow list");
        // Deny lists alone leave everything else allowed.
        let e =
            EffectivePolicy::combine(&[policy("d", |p| p.denied_models = vec!["gpt-4o".into()])]);
        assert!(e.allows_model(&["gpt-4o-mini"]));
        assert!(!e.allows_model(&["smart", "gpt-4o"]));
    }

    #[test]
    fn limits_take_the_strictest_and_name_their_policy() {
        let a = policy("a", |p| {
            p.max_spend_micro_usd = Some(5_000_000.0);
            p.max_requests_per_minute = Some(10);
            p.expires_at_ms = Some(2_000);
        });
        let b = policy("b", |p| {
            p.max_spend_micro_usd = Some(1_000_000.0);
            p.max_requests_per_minute = Some(60);
        });
        let c = policy("c", |p| {
            p.max_spend_micro_usd = Some(1_000_000.0);
            p.expires_at_ms = Some(1_000);
        });
        let e = EffectivePolicy::combine(&[a.clone(), b, c]);
        assert_eq!(
            e.max_spend_micro_usd(),
            Some((1_000_000.0, "b")),
            "first on a tie"
        );
        assert_eq!(e.max_requests_per_minute(), Some((10, "a")));
        assert_eq!(e.expires_at_ms(), Some((1_000, "c")));
        assert!(!e.is_unrestricted());
        let zero = policy("frozen", |p| p.max_spend_micro_usd = Some(0.0));
        let e = EffectivePolicy::combine(&[a, zero]);
        assert_eq!(e.max_spend_micro_usd(), Some((0.0, "frozen")));
        assert!(e.allows_model(&["anything"]));
    }

    #[test]
    fn tool_allow_lists_are_a_union() {
        let reader = policy("reader", |p| p.allowed_tools = list(&["read_*", "search"]));
        let writer = policy("writer", |p| p.allowed_tools = list(&["write_file"]));
        let e = EffectivePolicy::combine(&[reader.clone(), policy("open", |_| {}), writer]);
        assert!(!e.is_unrestricted());
        assert!(e.check_tools(&[]).is_ok());
        assert!(e
            .check_tools(&["read_file", "write_file", "search"])
            .is_ok());
        let err = e.check_tools(&["read_file", "bash"]).unwrap_err();
        assert_eq!(
            err,
            ToolDenied {
                policy_ids: vec!["reader".into(), "writer".into()],
                tool: "bash".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "tool `bash` is not allowed by policies `reader`, `writer` (allowed_tools)"
        );
        let e = EffectivePolicy::combine(&[reader]);
        assert_eq!(
            e.check_tools(&["Search"]).unwrap_err().to_string(),
            "tool `Search` is not allowed by policy `reader` (allowed_tools)"
        );
        // An empty list allows no tool at all.
        let e = EffectivePolicy::combine(&[policy("none", |p| p.allowed_tools = list(&[]))]);
        assert!(e.check_tools(&["x"]).is_err());
        assert!(e.check_tools(&[]).is_ok());
    }

    #[test]
    fn loaded_files_combine() {
        let set = load(&[
            ("interns.yaml", FULL),
            ("ci.json", "{\"max_requests_per_minute\": 5}"),
        ]);
        let picked: Vec<Arc<AccessPolicy>> = ["interns", "ci"]
            .iter()
            .filter_map(|id| set.get(id).cloned())
            .collect();
        let e = EffectivePolicy::combine(&picked);
        assert_eq!(e.max_requests_per_minute(), Some((5, "ci")));
        assert!(e.allows_model(&["claude-sonnet-4-5"]));
        assert!(!e.allows_model(&["claude-sonnet-4-5-preview"]));
        assert!(e.check_tools(&["search_web"]).is_ok());
        assert!(e.check_tools(&["bash"]).is_err());
    }
}
