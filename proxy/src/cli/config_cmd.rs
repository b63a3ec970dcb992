//! `bitrouter config validate` and `bitrouter config schema`.

use std::path::Path;

pub fn validate(config_path: Option<&Path>) -> i32 {
    match super::load_config(config_path) {
        Ok(config) => {
            // The certificate and key parsed and matched, as the listener will load them.
            if let Some(files) = &config.server.tls {
                if let Err(e) = crate::listeners::load_certified_key(files) {
                    eprintln!("error: {e}");
                    return 1;
                }
            }
            for w in &config.warnings {
                println!("warning: {w}");
            }
            let table = bitrouter_config::RoutingTable::new(&config);
            let source = match &config.source {
                bitrouter_config::ConfigSource::File(p) => p.display().to_string(),
                bitrouter_config::ConfigSource::ZeroConfig => "zero-config (no file)".to_string(),
            };
            let policies = match config.access.len() {
                0 => String::new(),
                n => format!(", {n} access polic{}", if n == 1 { "y" } else { "ies" }),
            };
            println!(
                "ok: {source}: {} provider(s), {} virtual model(s), {} routable model(s){policies}",
                config.providers.len(),
                config.models.len(),
                table.models().len()
            );
            0
        }
        Err(e) => {
            super::report_config_error(&e);
            1
        }
    }
}

/// Prints the JSON Schema of bitrouter.yaml, the one built into this binary (so it matches the
/// version that reads the file, wherever the binary was installed).
pub fn schema() -> i32 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(SCHEMA.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: cannot write the schema: {e}");
            1
        }
    }
}

/// The JSON Schema of bitrouter.yaml, embedded from `schemas/` at build time.
pub const SCHEMA: &str = include_str!("../../../schemas/bitrouter.config.schema.json");
