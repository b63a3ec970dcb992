//! `bitrouter route <model>`: how a model name resolves, without sending anything.

use bitrouter_config::{ResolvedVia, RoutingTable};
use serde_json::json;
use std::path::Path;

pub fn run(config_path: Option<&Path>, model: &str, as_json: bool) -> i32 {
    let config = match super::load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return 2;
        }
    };
    let table = RoutingTable::new(&config);
    let resolution = match table.resolve(model) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let via = match &resolution.via {
        ResolvedVia::VirtualModel(name) => format!("virtual model `{name}`"),
        ResolvedVia::ProviderSlash => "provider/model".to_string(),
        ResolvedVia::ProviderColon => "provider:model (direct route)".to_string(),
        ResolvedVia::Listed => "bare id listed by a provider".to_string(),
        ResolvedVia::Pattern => "bare id matched by a provider's model pattern".to_string(),
    };
    let strategy = format!("{:?}", resolution.strategy).to_lowercase();
    let rows: Vec<_> = resolution
        .targets
        .iter()
        .map(|t| {
            let p = &t.provider;
            (
                p.id.as_str(),
                t.service_id.as_str(),
                t.protocol.as_str(),
                p.api_base.as_str(),
                p.endpoint_path(t.protocol, &t.service_id, false),
            )
        })
        .collect();
    if as_json {
        let endpoints: Vec<_> = rows
            .iter()
            .map(|(provider, service_id, protocol, base, path)| {
                json!({"provider": provider, "service_id": service_id, "protocol": protocol,
                       "api_base": base, "path": path})
            })
            .collect();
        let doc = json!({"model": model, "via": via, "strategy": strategy, "endpoints": endpoints});
        println!("{doc}");
        return 0;
    }
    println!("{model}: {via}, strategy {strategy}");
    for (i, (provider, service_id, protocol, base, path)) in rows.iter().enumerate() {
        println!(
            "  {}. provider {provider}  model {service_id}  protocol {protocol}  {base}  (POST {path})",
            i + 1
        );
    }
    0
}
