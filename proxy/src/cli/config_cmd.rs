//! `bitrouter config validate`.

use std::path::Path;

pub fn validate(config_path: Option<&Path>) -> i32 {
    match super::load_config(config_path) {
        Ok(config) => {
            for w in &config.warnings {
                println!("warning: {w}");
            }
            let table = bitrouter_config::RoutingTable::new(&config);
            let source = match &config.source {
                bitrouter_config::ConfigSource::File(p) => p.display().to_string(),
                bitrouter_config::ConfigSource::ZeroConfig => "zero-config (no file)".to_string(),
            };
            println!(
                "ok: {source}: {} provider(s), {} virtual model(s), {} routable model(s)",
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
