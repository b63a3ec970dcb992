//! OpenAI-style model listing: `GET */models` and `GET */models/{id}`.

use serde_json::{json, Value};

use crate::protocol::Reply;

/// Model ids the list advertises (any id is accepted by the other routes).
pub(crate) const MODEL_IDS: &[(&str, &str)] = &[
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1", "openai"),
    ("o3-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("gemini-2.5-flash", "google"),
];

/// Models' `created` timestamp: fixed, like the real (historical) values.
const CREATED: u64 = 1_715_367_049;

fn model(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": owned_by})
}

/// `{object:"list", data:[...]}`.
pub(crate) fn list() -> Reply {
    let data: Vec<Value> = MODEL_IDS.iter().map(|(id, by)| model(id, by)).collect();
    Reply::json(200, &json!({"object": "list", "data": data}))
}

/// One model object for any id.
pub(crate) fn get(id: &str) -> Reply {
    let owned_by = MODEL_IDS
        .iter()
        .find(|(known, _)| *known == id)
        .map(|(_, by)| *by)
        .unwrap_or("system");
    Reply::json(200, &model(id, owned_by))
}
