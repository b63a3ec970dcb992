//! `bitrouter models`: every model a client can name.

use std::path::Path;

pub fn run(config_path: Option<&Path>, json: bool) -> i32 {
    let config = match super::load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return 2;
        }
    };
    let models = bitrouter_config::RoutingTable::new(&config).models();
    if json {
        let rows: Vec<_> = models
            .iter()
            .map(|m| serde_json::json!({"id": m.id, "owned_by": m.owned_by}))
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else {
        let width = models.iter().map(|m| m.id.len()).max().unwrap_or(0);
        for m in &models {
            println!("{:<width$}  {}", m.id, m.owned_by);
        }
        if models.is_empty() {
            eprintln!("no routable models: no provider is configured or detected");
        }
    }
    0
}
