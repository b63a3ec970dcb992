//! The environment, read through a trait: the process environment in the binary, a map in tests
//! (tests never call `std::env::set_var`).

use std::collections::BTreeMap;

/// Read access to environment variables.
pub trait EnvSource: Send + Sync {
    /// The value of `key`, if set (an empty value counts as set).
    fn get(&self, key: &str) -> Option<String>;
    /// Every variable, sorted by name (auto-detection scans `BITROUTER_*_API_KEY`).
    fn vars(&self) -> Vec<(String, String)>;
}

/// The real process environment.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
    fn vars(&self) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = std::env::vars().collect();
        v.sort();
        v
    }
}

/// A fixed map, for tests and for `bitrouter route` dry runs.
#[derive(Debug, Default, Clone)]
pub struct MapEnv(pub BTreeMap<String, String>);

impl MapEnv {
    pub fn new<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        MapEnv(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl EnvSource for MapEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.0.get(key).cloned()
    }
    fn vars(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

/// Why a `${VAR}` placeholder could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` names a variable that is not set (and has no `:-default`).
    Unset(String),
    /// The placeholder is not well-formed (`${`, `${}`, `${1X}`, ...); the text says why.
    Malformed(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unset(name) => write!(f, "environment variable `{name}` is not set"),
            ExpandError::Malformed(why) => f.write_str(why),
        }
    }
}

/// Expands `${NAME}` placeholders in one string value of `bitrouter.yaml`.
///
/// Applied to each decoded YAML string (never to the raw file text), so a variable's value can
/// never change the structure of the document. Forms:
/// - `${NAME}`: the variable's value (an empty value counts as set);
/// - `${NAME:-default}`: the value, or `default` when the variable is unset or empty;
/// - `$${`: a literal `${` (so `$${NAME}` yields the text `${NAME}`).
///
/// A `$` not followed by `{` is literal. `NAME` is `[A-Za-z_][A-Za-z0-9_]*`. Every problem in
/// the string is returned, not just the first.
pub fn expand<'a>(
    text: &'a str,
    env: &dyn EnvSource,
) -> Result<std::borrow::Cow<'a, str>, Vec<ExpandError>> {
    if !text.contains("${") {
        return Ok(std::borrow::Cow::Borrowed(text));
    }
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(body) = tail.strip_prefix("${") {
            let Some(close) = body.find('}') else {
                errors.push(ExpandError::Malformed(format!(
                    "unterminated placeholder `{tail}`: expected `}}`"
                )));
                rest = "";
                break;
            };
            let inner = &body[..close];
            let (name, default) = match inner.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (inner, None),
            };
            if !is_var_name(name) {
                errors.push(ExpandError::Malformed(format!(
                    "invalid placeholder `${{{inner}}}`: a variable name is letters, digits and `_`, not starting with a digit"
                )));
            } else {
                match (env.get(name), default) {
                    (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => out.push_str(d),
                    (None, None) => errors.push(ExpandError::Unset(name.to_string())),
                }
            }
            rest = &body[close + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(std::borrow::Cow::Owned(out))
    } else {
        Err(errors)
    }
}

fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> MapEnv {
        MapEnv::new([("KEY", "sk-1"), ("EMPTY", ""), ("YAMLY", "a: [b]\n- c")])
    }

    fn ok(text: &str) -> String {
        expand(text, &env()).unwrap().into_owned()
    }

    #[test]
    fn expands_placeholders() {
        assert_eq!(ok("${KEY}"), "sk-1");
        assert_eq!(ok("Bearer ${KEY}!"), "Bearer sk-1!");
        assert_eq!(ok("${KEY}${KEY}"), "sk-1sk-1");
        assert_eq!(ok("${EMPTY}"), "");
        assert_eq!(ok("${YAMLY}"), "a: [b]\n- c");
        assert_eq!(
            ok("no placeholders $HOME $ {x}"),
            "no placeholders $HOME $ {x}"
        );
        assert_eq!(ok("cost $5"), "cost $5");
    }

    #[test]
    fn defaults_and_escapes() {
        assert_eq!(
            ok("${MISSING:-http://localhost:11434}"),
            "http://localhost:11434"
        );
        assert_eq!(ok("${EMPTY:-fallback}"), "fallback");
        assert_eq!(ok("${KEY:-fallback}"), "sk-1");
        assert_eq!(ok("$${KEY}"), "${KEY}");
    }

    #[test]
    fn reports_every_problem() {
        let errs = expand("${A} and ${B} and ${KEY}", &env()).unwrap_err();
        assert_eq!(
            errs,
            vec![
                ExpandError::Unset("A".into()),
                ExpandError::Unset("B".into())
            ]
        );
        assert_eq!(errs[0].to_string(), "environment variable `A` is not set");
        let errs = expand("${1X} ${} ${OPEN", &env()).unwrap_err();
        assert_eq!(errs.len(), 3);
        assert!(errs.iter().all(|e| matches!(e, ExpandError::Malformed(_))));
    }
}
