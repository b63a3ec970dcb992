//! Admission of a virtual-key caller, step by step on the request path: who it is (the key),
//! whether it may call now (rate limit), what it may call (models, tools) and whether its
//! budget covers the worst case (a reservation settled when the request ends).

use super::budget::BudgetError;
use super::{bound, now_ms, period_of, period_reset, Governance};
use crate::error::ProxyError;
use crate::keys::{CachedKey, KeyLookup, KeyState};
use crate::phases::route::Plan;
use crate::state::Snapshot;
use bitrouter_config::{AccessPolicy, EffectivePolicy};
use serde::Deserialize;
use std::sync::Arc;

/// A caller holding a valid `brvk_` key, with its policies combined.
pub struct KeyCaller {
    pub key: Arc<CachedKey>,
    pub policy: Arc<EffectivePolicy>,
}

impl std::fmt::Debug for KeyCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id and user only: never the key.
        f.debug_struct("KeyCaller")
            .field("id", &self.id())
            .field("user", &self.user())
            .finish()
    }
}

impl KeyCaller {
    pub fn id(&self) -> &str {
        &self.key.record().id
    }

    pub fn user(&self) -> &str {
        &self.key.record().user
    }
}

/// Checks a presented `brvk_` key: unknown, revoked or expired (the key's own expiry or a
/// policy's `expires_at`) is a 401; a policy the key names that no file defines is a 403 (fail
/// closed: a deleted policy must not lift its limits).
pub fn authenticate(
    gov: Option<&Governance>,
    snapshot: &Snapshot,
    presented: &str,
) -> Result<KeyCaller, ProxyError> {
    let Some(gov) = gov else {
        return Err(ProxyError::Unauthorized(
            "virtual keys are not enabled on this bitrouter: they live in its database (database.enabled is false)",
        ));
    };
    let (key, policy) = match gov
        .memo
        .get(presented, gov.keys.generation(), snapshot.generation)
    {
        Some(hit) => hit,
        None => {
            let keys_generation = gov.keys.generation();
            let key = match gov.keys.lookup(presented) {
                KeyLookup::Found(k) => k,
                KeyLookup::Unknown => {
                    return Err(ProxyError::Unauthorized(
                        "invalid virtual key: no such key on this bitrouter",
                    ))
                }
                KeyLookup::NotLoaded => {
                    return Err(ProxyError::GovernanceUnavailable(
                        "virtual keys cannot be checked yet: their database has not been read (is it reachable?)"
                            .into(),
                    ))
                }
            };
            let policy = Arc::new(combine(snapshot, &key)?);
            gov.memo.put(
                presented,
                keys_generation,
                snapshot.generation,
                key.clone(),
                policy.clone(),
            );
            (key, policy)
        }
    };
    let now = now_ms();
    match key.state(now) {
        KeyState::Active => {}
        KeyState::Revoked => {
            return Err(ProxyError::Unauthorized(
                "this virtual key has been revoked",
            ))
        }
        KeyState::Expired => return Err(ProxyError::Unauthorized("this virtual key has expired")),
    }
    if let Some((at, _)) = policy.expires_at_ms() {
        if at <= now {
            return Err(ProxyError::Unauthorized(
                "this virtual key has expired (its policy's expires_at has passed)",
            ));
        }
    }
    key.note_used(now);
    Ok(KeyCaller { key, policy })
}

/// The key's policies from the config snapshot, combined.
fn combine(snapshot: &Snapshot, key: &CachedKey) -> Result<EffectivePolicy, ProxyError> {
    let mut policies: Vec<Arc<AccessPolicy>> = Vec::with_capacity(key.record().policies.len());
    for id in &key.record().policies {
        match snapshot.config.access.get(id) {
            Some(p) => policies.push(p.clone()),
            None => {
                return Err(ProxyError::Forbidden {
                    message: format!(
                        "this key's policy `{id}` is not defined on this bitrouter (policies/{id}.yaml); ask the operator"
                    ),
                    code: "unknown_policy",
                })
            }
        }
    }
    Ok(EffectivePolicy::combine(&policies))
}

/// Applies the key's `max_requests_per_minute`.
pub fn rate_limit(gov: &Governance, caller: &KeyCaller) -> Result<(), ProxyError> {
    let Some((limit, policy)) = caller.policy.max_requests_per_minute() else {
        return Ok(());
    };
    gov.rates
        .check(caller.id(), limit, now_ms())
        .map_err(|retry_after| ProxyError::RateLimited {
            message: format!(
                "rate limit reached: this key may make {limit} requests per minute (policy `{policy}`); retry in {retry_after} s"
            ),
            retry_after,
        })
}

/// Keeps the targets the key may use (matched by what the client asked for, `provider/model`
/// and the upstream model id); none left is a 403 naming the policy.
pub fn filter_models(caller: &KeyCaller, plan: &mut Plan) -> Result<(), ProxyError> {
    let requested = plan.resolution.requested.clone();
    let mut denied = None;
    plan.resolution.targets.retain(|t| {
        let slash = format!("{}/{}", t.provider.id, t.service_id);
        match caller.policy.check_model(&[
            requested.as_str(),
            slash.as_str(),
            t.service_id.as_str(),
        ]) {
            Ok(()) => true,
            Err(e) => {
                denied.get_or_insert(e);
                false
            }
        }
    });
    if plan.resolution.targets.is_empty() {
        let message = match denied {
            Some(e) => e.to_string(),
            None => format!("model `{requested}` is not allowed for this key"),
        };
        return Err(ProxyError::Forbidden {
            message,
            code: "model_not_allowed",
        });
    }
    Ok(())
}

/// Refuses a request that declares a tool outside the key's `allowed_tools`.
pub fn check_tools(caller: &KeyCaller, body: &[u8]) -> Result<(), ProxyError> {
    let names = tool_names(body);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    caller
        .policy
        .check_tools(&refs)
        .map_err(|e| ProxyError::Forbidden {
            message: e.to_string(),
            code: "tool_not_allowed",
        })
}

#[derive(Deserialize)]
struct ToolsPeek {
    #[serde(default)]
    tools: Vec<serde_json::Value>,
}

/// The names of the tools a request declares, in any protocol: function tools by name
/// (OpenAI chat `function.name`, Responses and Anthropic `name`, Gemini
/// `functionDeclarations[].name`), a Responses `namespace` by its name and its functions', and
/// hosted tools by their type (`web_search`) or Gemini key (`googleSearch`).
pub fn tool_names(body: &[u8]) -> Vec<String> {
    let Ok(peek) = serde_json::from_slice::<ToolsPeek>(body) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for tool in &peek.tools {
        collect_tool(tool, &mut out);
    }
    out
}

fn collect_tool(tool: &serde_json::Value, out: &mut Vec<String>) {
    let Some(obj) = tool.as_object() else { return };
    let str_at = |v: Option<&serde_json::Value>| v.and_then(|v| v.as_str()).map(str::to_string);
    if let Some(name) = str_at(obj.get("function").and_then(|f| f.get("name"))) {
        out.push(name);
    } else if let Some(name) = str_at(obj.get("name")) {
        out.push(name);
    } else if let Some(kind) = str_at(obj.get("type")) {
        out.push(kind);
    }
    if let Some(inner) = obj.get("tools").and_then(|t| t.as_array()) {
        for t in inner {
            collect_tool(t, out);
        }
    }
    for (k, v) in obj {
        match k.as_str() {
            "functionDeclarations" | "function_declarations" => {
                for f in v.as_array().into_iter().flatten() {
                    if let Some(name) = str_at(f.get("name")) {
                        out.push(name);
                    }
                }
            }
            "function" | "name" | "type" | "tools" | "description" | "parameters"
            | "input_schema" | "strict" | "cache_control" | "defer_loading" => {}
            // A Gemini hosted tool (`googleSearch`, `codeExecution`, `urlContext`).
            other if !obj.contains_key("type") && !obj.contains_key("name") => {
                out.push(other.to_string());
            }
            _ => {}
        }
    }
}

/// Reserves the request's worst-case cost against the key's monthly budget.
pub async fn reserve(
    gov: &Governance,
    snapshot: &Snapshot,
    caller: &KeyCaller,
    plan: &Plan,
) -> Result<Option<super::budget::Reservation>, ProxyError> {
    let Some((cap, policy)) = caller.policy.max_spend_micro_usd() else {
        return Ok(None);
    };
    let body = plan.body();
    let ask = plan.output_ask.unwrap_or_else(|| bound::output_ask(body));
    let input = bound::input_tokens(body);
    let mut worst: f64 = 0.0;
    for t in &plan.resolution.targets {
        let out = bound::output_tokens(
            ask,
            t.provider.capabilities(&t.service_id).default_max_tokens,
        );
        let cost = snapshot
            .prices
            .lookup(&t.provider.id, &t.service_id)
            .and_then(|p| p.worst_case_micro_usd(input, out));
        match cost {
            Some(c) => worst = worst.max(c),
            None => {
                return Err(ProxyError::Forbidden {
                    message: format!(
                        "this key has a spending limit (policy `{policy}`) and `{}/{}` has no price, so its cost cannot be bounded; give the model a `pricing:` in bitrouter.yaml",
                        t.provider.id, t.service_id
                    ),
                    code: "model_not_priced",
                })
            }
        }
    }
    let now = now_ms();
    let period = period_of(now);
    match gov
        .budgets
        .reserve(&gov.coordinator, caller.id(), cap, worst, &period, now_ms)
        .await
    {
        Ok(r) => Ok(Some(r)),
        Err(BudgetError::Exceeded { remaining }) => {
            let reset = period_reset(now);
            Err(ProxyError::BudgetExceeded {
                message: format!(
                    "budget exceeded: this key's monthly budget of ${:.6} (policy `{policy}`) cannot cover this request (up to ${:.6}; ${:.6} left); it resets at {reset}",
                    cap / 1e6,
                    worst / 1e6,
                    remaining / 1e6
                ),
                reset,
            })
        }
        Err(BudgetError::Unavailable(why)) => Err(ProxyError::GovernanceUnavailable(format!(
            "the key's budget cannot be checked now ({why})"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::tool_names;

    #[test]
    fn tool_names_in_every_protocol() {
        let names = |b: &str| tool_names(b.as_bytes());
        assert_eq!(
            names(r#"{"tools":[{"type":"function","function":{"name":"get_weather"}}]}"#),
            ["get_weather"]
        );
        assert_eq!(
            names(
                r#"{"tools":[{"type":"function","name":"a"},{"type":"web_search"},{"type":"namespace","name":"ns","tools":[{"type":"function","name":"b"}]}]}"#
            ),
            ["a", "web_search", "ns", "b"]
        );
        assert_eq!(
            names(
                r#"{"tools":[{"name":"bash","input_schema":{}},{"type":"web_search_20250305","name":"web_search"}]}"#
            ),
            ["bash", "web_search"]
        );
        assert_eq!(
            names(
                r#"{"tools":[{"functionDeclarations":[{"name":"f"},{"name":"g"}]},{"googleSearch":{}}]}"#
            ),
            ["f", "g", "googleSearch"]
        );
        assert!(names("{}").is_empty());
    }
}
