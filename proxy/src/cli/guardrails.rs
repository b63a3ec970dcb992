//! `bitrouter guardrails test "<text>"`: what each configured guardrail would do to a text, in
//! each direction, without sending anything anywhere.

use crate::guardrails::{Direction, GuardSet};
use std::path::Path;

pub fn test(
    config_path: Option<&Path>,
    text: &str,
    provider: Option<&str>,
    model: Option<&str>,
) -> i32 {
    let config = match super::load_config(config_path) {
        Ok(c) => c,
        Err(e) => {
            super::report_config_error(&e);
            return 2;
        }
    };
    let Some(rules) = &config.guardrails else {
        println!("no guardrails configured (add a `guardrails:` section to bitrouter.yaml; docs/guardrails.md)");
        return 0;
    };
    let set = match GuardSet::new(rules) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut blocked = false;
    for (dir, what) in [
        (Direction::Up, "upgoing (agent -> model)"),
        (Direction::Down, "downgoing (model -> agent)"),
    ] {
        println!("{what}:");
        let guard = match (provider, model) {
            (None, None) => set.all(dir),
            (p, m) => set.guard(dir, p.unwrap_or(""), m.unwrap_or(""), m.unwrap_or("")),
        };
        let Some(guard) = guard else {
            println!("  no rule applies");
            continue;
        };
        let checked = guard.check(text);
        if checked.hits.is_empty() {
            println!("  no rule matches; passes unchanged");
            continue;
        }
        let mut seen: Vec<String> = Vec::new();
        for hit in &checked.hits {
            if let Some(rule) = guard.rules().get(hit.rule) {
                let item = format!("  {}: {}", rule.id, hit.action.as_str());
                if !seen.contains(&item) {
                    println!("{item}");
                    seen.push(item);
                }
            }
        }
        match checked.blocked.and_then(|i| guard.rules().get(i)) {
            Some(rule) => {
                blocked = true;
                println!("  => blocked by `{}`", rule.id);
            }
            None => println!("  => {}", checked.text),
        }
    }
    if blocked {
        1
    } else {
        0
    }
}
