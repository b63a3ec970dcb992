//! Loading and validation: every problem reported with file:line:col.
//!
//! A load never stops at the first problem (`bitrouter config validate` prints them all): the
//! text is parsed once for structure (`parse.rs`), then each section and each entry is decoded
//! on its own, then the resolver checks meaning (`resolve.rs`). Each stage adds to one
//! `Diagnostics`, which turns key paths into positions through the span index (`spans.rs`).

use crate::spans::{Pos, Seg, SpanIndex};
use crate::{detect, parse, resolve, Config, ConfigSource, EnvSource};
use std::path::{Path, PathBuf};

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: String,
    /// 1-based; 0 when the problem has no position (e.g. file not found).
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Every problem found in one load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            if p.line > 0 {
                format!("{}:{}:{}: {}", p.file, p.line, p.col, p.message)
            } else {
                format!("{}: {}", p.file, p.message)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects problems for one file, placing them through the span index.
pub(crate) struct Diagnostics {
    file: String,
    spans: SpanIndex,
    problems: Vec<Problem>,
}

impl Diagnostics {
    pub(crate) fn new(file: &str, text: &str) -> Diagnostics {
        Diagnostics {
            file: file.to_string(),
            spans: SpanIndex::build(text),
            problems: Vec::new(),
        }
    }

    pub(crate) fn spans(&self) -> &SpanIndex {
        &self.spans
    }

    /// A problem at an explicit position (`None`: no position).
    pub(crate) fn at(&mut self, pos: Option<Pos>, message: impl Into<String>) {
        let (line, col) = pos.map_or((0, 0), |p| (p.line, p.col));
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            col,
            message: message.into(),
        });
    }

    /// A problem with the key at `path` (unknown/missing fields, whole entries).
    pub(crate) fn at_key(&mut self, path: &[Seg], message: impl Into<String>) {
        let pos = self.spans.key_pos(path);
        self.at(pos, message);
    }

    /// A problem with the value at `path` (invalid values).
    pub(crate) fn at_value(&mut self, path: &[Seg], message: impl Into<String>) {
        let pos = self.spans.value_pos(path);
        self.at(pos, message);
    }

    /// `file:line:col` of the value at `path`, for warnings that point into the file (they are
    /// not problems: the load goes on).
    pub(crate) fn place(&self, path: &[Seg]) -> String {
        match self.spans.value_pos(path) {
            Some(p) => format!("{}:{}:{}", self.file, p.line, p.col),
            None => self.file.clone(),
        }
    }

    /// Problems so far (a stage compares counts to learn whether it added any).
    pub(crate) fn problem_count(&self) -> usize {
        self.problems.len()
    }

    pub(crate) fn has_problems(&self) -> bool {
        !self.problems.is_empty()
    }

    /// The problems in file order (those without a position first).
    pub(crate) fn into_error(mut self) -> ConfigError {
        self.problems.sort_by_key(|p| (p.line, p.col));
        ConfigError {
            problems: self.problems,
        }
    }
}

/// The file name used in problems: the path as given.
fn display_name(path: &Path) -> String {
    path.display().to_string()
}

pub(crate) fn discover(
    explicit: Option<&Path>,
    cwd: &Path,
    env: &dyn EnvSource,
) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    let non_empty = |name: &str| env.get(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let candidates = [
        Some(cwd.join("bitrouter.yaml")),
        non_empty("XDG_CONFIG_HOME").map(|d| d.join("bitrouter").join("bitrouter.yaml")),
        non_empty("HOME").map(|d| d.join(".config").join("bitrouter").join("bitrouter.yaml")),
    ];
    candidates.into_iter().flatten().find(|p| p.is_file())
}

pub(crate) fn load(path: Option<&Path>, env: &dyn EnvSource) -> Result<Config, ConfigError> {
    let Some(path) = path else {
        return Ok(zero_config(env));
    };
    let file = display_name(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "config file not found".to_string(),
            _ => format!("cannot read config file: {e}"),
        };
        ConfigError {
            problems: vec![Problem {
                file: file.clone(),
                line: 0,
                col: 0,
                message,
            }],
        }
    })?;
    let base_dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let config = load_text(
        &text,
        &file,
        env,
        Some(base_dir.unwrap_or(Path::new("."))),
        ConfigSource::File(path.to_path_buf()),
    );
    // The policies are read even when the file has problems, so one run reports both.
    let access = crate::AccessPolicies::load_dir(&crate::policies_dir(path));
    match (config, access) {
        (Ok(mut config), Ok(access)) => {
            config.access = access;
            Ok(config)
        }
        (Err(mut e), Err(more)) => {
            e.problems.extend(more.problems);
            Err(e)
        }
        (Err(e), Ok(_)) | (Ok(_), Err(e)) => Err(e),
    }
}

pub(crate) fn load_str(
    text: &str,
    file_name: &str,
    env: &dyn EnvSource,
) -> Result<Config, ConfigError> {
    load_text(
        text,
        file_name,
        env,
        None,
        ConfigSource::File(PathBuf::from(file_name)),
    )
}

/// `base_dir` is where relative paths in the file are rooted; `None` (text not read from a
/// file) leaves them as written and skips checks that touch the file system.
fn load_text(
    text: &str,
    file_name: &str,
    env: &dyn EnvSource,
    base_dir: Option<&Path>,
    source: ConfigSource,
) -> Result<Config, ConfigError> {
    let mut diag = Diagnostics::new(file_name, text);
    let parsed = parse::parse(text, env, &mut diag);
    let config = parsed.map(|parsed| resolve::resolve(parsed, env, base_dir, source, &mut diag));
    match config {
        Some(config) if !diag.has_problems() => Ok(config),
        _ => Err(diag.into_error()),
    }
}

pub(crate) fn zero_config(env: &dyn EnvSource) -> Config {
    let mut warnings = Vec::new();
    let providers = detect::detect(env, &[], &mut warnings);
    let server = crate::ServerConfig {
        api_key: resolve::gateway_key(env),
        ..crate::ServerConfig::default()
    };
    if providers.is_empty() {
        warnings.push(resolve::NO_PROVIDERS_WARNING.to_string());
    }
    Config {
        server,
        providers,
        models: indexmap::IndexMap::new(),
        source: ConfigSource::ZeroConfig,
        warnings,
        upstream: crate::UpstreamConfig::default(),
        presets: indexmap::IndexMap::new(),
        variants: indexmap::IndexMap::new(),
        guardrails: None,
        database: crate::schema::DatabaseSection::default(),
        access: crate::AccessPolicies::default(),
        routes: Vec::new(),
    }
}
