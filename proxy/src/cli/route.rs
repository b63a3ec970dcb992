//! `bitrouter route <model>`: how a model name resolves, without sending anything: the chain
//! of endpoints with strategy, retry policy, overlay, accounts (labels only), timeouts, and the
//! live health of a router running on the configured address when there is one.

use bitrouter_config::{Config, Preset, ResolvedVia, RetryPolicy, RoutingTable, Timeouts};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

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
    let live = live_health(&config);
    let endpoints: Vec<Value> = resolution
        .targets
        .iter()
        .map(|t| {
            let p = &t.provider;
            let health = live
                .as_ref()
                .map(|h| endpoint_health(h, &p.id, &t.service_id));
            json!({
                "provider": p.id,
                "service_id": t.service_id,
                "protocol": t.protocol.as_str(),
                "api_base": p.api_base,
                "replicas": p.replicas.iter().map(|r| r.api_base.as_str()).collect::<Vec<_>>(),
                "replica_strategy": (!p.replicas.is_empty()).then(|| p.replica_strategy.as_str()),
                "path": p.endpoint_path(t.protocol, &t.service_id, false),
                "weight": t.weight,
                "price": t.price,
                "account_strategy": p.account_strategy.as_str(),
                "accounts": p.accounts.iter().map(|a| json!({
                    "label": a.label,
                    "key": if a.api_key.is_some() { "set" } else { "none" },
                })).collect::<Vec<_>>(),
                "timeouts": timeouts_json(&p.timeouts),
                "health_check": p.health_check.as_ref().map(|c| json!({
                    "kind": c.kind.as_str(),
                    "path": c.path,
                    "interval_secs": c.interval.as_secs_f64(),
                })),
                "health": health,
            })
        })
        .collect();
    let doc = json!({
        "model": model,
        "via": via,
        "strategy": resolution.strategy.as_str(),
        "variant": resolution.variant,
        "preset": resolution.preset,
        "overlay": resolution.overlay.as_deref().map(overlay_json),
        "retry": retry_json(&resolution.retry),
        "live": live.is_some(),
        "endpoints": endpoints,
    });
    if as_json {
        println!("{doc}");
        return 0;
    }
    print_text(&doc);
    0
}

fn print_text(doc: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
    println!(
        "{}: {}, strategy {}",
        s(&doc["model"]),
        s(&doc["via"]),
        s(&doc["strategy"])
    );
    if let Some(v) = doc["variant"].as_str() {
        println!("  variant: {v}");
    }
    if doc["overlay"].is_object() {
        println!("  parameters applied: {}", doc["overlay"]);
    }
    println!("  retry: {}", doc["retry"]);
    if !doc["live"].as_bool().unwrap_or(false) {
        println!("  health: unknown (no router answering on the configured address)");
    }
    for (i, ep) in doc["endpoints"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        println!(
            "  {}. provider {}  model {}  protocol {}  {}  (POST {})  weight {}",
            i + 1,
            s(&ep["provider"]),
            s(&ep["service_id"]),
            s(&ep["protocol"]),
            s(&ep["api_base"]),
            s(&ep["path"]),
            ep["weight"]
        );
        let accounts: Vec<String> = ep["accounts"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|a| format!("{} (key {})", s(&a["label"]), s(&a["key"])))
            .collect();
        println!(
            "     accounts ({}): {}",
            s(&ep["account_strategy"]),
            accounts.join(", ")
        );
        println!("     timeouts: {}", ep["timeouts"]);
        if ep["health_check"].is_object() {
            println!("     health check: {}", ep["health_check"]);
        }
        if !ep["health"].is_null() {
            println!("     health: {}", ep["health"]);
        }
    }
}

fn secs(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_secs_f64()))
}

fn timeouts_json(t: &Timeouts) -> Value {
    json!({
        "connect_secs": t.connect.as_secs_f64(),
        "read_secs": t.read.as_secs_f64(),
        "write_secs": t.write.as_secs_f64(),
        "pool_idle_secs": t.pool_idle.as_secs_f64(),
        "tcp_keepalive_secs": secs(t.tcp_keepalive),
        "total_secs": secs(t.total),
        "first_byte_secs": secs(t.first_byte),
    })
}

fn retry_json(r: &RetryPolicy) -> Value {
    let mut on: Vec<Value> = Vec::new();
    if r.on_connect {
        on.push("connect".into());
    }
    if r.on_timeout {
        on.push("timeout".into());
    }
    on.extend(r.statuses.iter().map(|s| json!(s)));
    json!({"retry_on": on, "max_attempts": r.max_attempts, "deadline_secs": secs(r.deadline)})
}

fn overlay_json(p: &Preset) -> Value {
    json!({
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
        "system_prompt_prefix": p.system_prompt_prefix,
        "reasoning_effort": p.reasoning_effort,
    })
}

/// The live endpoint entry (or a fresh-state note) from a running router's snapshot.
fn endpoint_health(snapshot: &Value, provider: &str, model: &str) -> Value {
    let found = snapshot["endpoints"]
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|e| e["provider"] == provider && e["model"] == model)
        })
        .cloned();
    let check_down = snapshot["providers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["provider"] == provider))
        .is_some_and(|p| p["check_down"] == true);
    found.unwrap_or_else(|| json!({"healthy": !check_down, "note": "no requests yet"}))
}

/// `GET /health/upstreams` from a router on the configured address, if one answers quickly.
fn live_health(config: &Config) -> Option<Value> {
    let addr: SocketAddr = config.server.listen.to_socket_addrs().ok()?.next()?;
    let addr = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    let mut req =
        format!("GET /health/upstreams HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(key) = &config.server.api_key {
        req.push_str(&format!("Authorization: Bearer {}\r\n", key.expose()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).ok()?;
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}
