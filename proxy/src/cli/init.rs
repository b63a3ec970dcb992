//! `bitrouter init`: a commented starter bitrouter.yaml, and beside it the JSON Schema that its
//! `$schema` comment points at (a path into the repository would resolve only there).

use super::config_cmd::SCHEMA;
use std::path::{Path, PathBuf};

/// The schema's file name, next to the config; the starter's `$schema` comment names it.
pub const SCHEMA_FILE: &str = "bitrouter.schema.json";

/// The starter file. It validates as written (no `${VAR}` that might be unset); the provider and
/// virtual-model examples are commented out because keys in the environment are detected anyway.
pub const STARTER: &str = r#"# bitrouter.yaml: written by `bitrouter init`.
# Check it with `bitrouter config validate`; see how a model resolves with `bitrouter route <model>`.
# yaml-language-server: $schema=./bitrouter.schema.json

server:
  # Loopback by default. Set 0.0.0.0 only behind an authenticating reverse proxy.
  listen: 127.0.0.1:4356
  log_level: info
  # Admit requests without a credential. Fine on loopback; never on an exposed address.
  skip_auth: true

# Providers whose key is in the environment (OPENAI_API_KEY, ANTHROPIC_API_KEY,
# GOOGLE_API_KEY / GEMINI_API_KEY, OPENROUTER_API_KEY, BITROUTER_<PROVIDER>_API_KEY) are
# routable without being listed here. List a provider to pin its models or base URL.
# Keep secrets out of this file: use ${VAR} references, resolved at load time.
#
# providers:
#   openai:
#     api_base: https://api.openai.com/v1
#     api_key: ${OPENAI_API_KEY}
#     models:
#       - id: gpt-4o
#   anthropic:
#     api_base: https://api.anthropic.com
#     api_key: ${ANTHROPIC_API_KEY}
#     api_protocol:
#       - "*": messages
#     models:
#       - id: claude-sonnet-4-6
#   ollama:
#     api_base: http://localhost:11434/v1
#     models:
#       - id: llama3.1

# Virtual models: one name, an ordered list of endpoints (failover in order).
#
# models:
#   smart:
#     strategy: priority
#     endpoints:
#       - provider: anthropic
#         service_id: claude-sonnet-4-6
#       - provider: openai
#         service_id: gpt-4o
"#;

/// Writes the starter and the schema beside it. Neither file is overwritten without `--force`
/// (an identical schema is left as it is): both checks happen before anything is written, so a
/// refusal leaves the directory untouched.
pub fn run(config_path: Option<&Path>, force: bool) -> i32 {
    let path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("bitrouter.yaml"));
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf);
    let schema_path = dir
        .as_deref()
        .map(|d| d.join(SCHEMA_FILE))
        .unwrap_or_else(|| PathBuf::from(SCHEMA_FILE));
    if path.exists() && !force {
        eprintln!(
            "error: {} already exists; pass --force to overwrite it",
            path.display()
        );
        return 1;
    }
    let schema_current = std::fs::read(&schema_path).is_ok_and(|b| b == SCHEMA.as_bytes());
    if schema_path.exists() && !schema_current && !force {
        eprintln!(
            "error: {} already exists and differs from this bitrouter's schema; pass --force to overwrite it (or write it yourself with `bitrouter config schema`)",
            schema_path.display()
        );
        return 1;
    }
    if let Some(dir) = &dir {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("error: cannot create {}: {e}", dir.display());
            return 1;
        }
    }
    if let Err(e) = std::fs::write(&path, STARTER) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return 1;
    }
    println!("wrote {}", path.display());
    if !schema_current {
        if let Err(e) = std::fs::write(&schema_path, SCHEMA) {
            eprintln!("error: cannot write {}: {e}", schema_path.display());
            return 1;
        }
        println!(
            "wrote {} (its JSON Schema, for editors)",
            schema_path.display()
        );
    }
    println!(
        "next: bitrouter config validate -c {0} && bitrouter serve -c {0}",
        path.display()
    );
    0
}
