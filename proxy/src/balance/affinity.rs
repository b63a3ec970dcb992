//! The affinity key of a request: what makes two requests "the same session" for an `affinity`
//! pool, so they reach the replica whose KV cache already holds their prefix.
//!
//! In order, the first present:
//! 1. the `x-session-id` header (agents and gateways set it per conversation);
//! 2. the OpenAI `prompt_cache_key` field, then `user`;
//! 3. Anthropic's `metadata.user_id`;
//! 4. a hash of the prompt's head: the system prompt (`system`, `instructions`,
//!    `systemInstruction`, or leading `system`/`developer` messages) and the first other message
//!    (`messages`, `input`, `contents`), at most [`HEAD_MESSAGES`] messages and [`HEAD_BYTES`]
//!    bytes. Every turn of one conversation shares that head, and so does every request with one
//!    long system prompt and opening question: exactly the prefix a replica's cache reuses.
//!
//! The body has already been read; it is not decoded into the request model here. A borrowed
//! serde "peek" reads only these fields (strings as slices of the body, the messages as raw
//! JSON text), skipping everything else without allocating. The hash is FNV-1a, stable across
//! builds and processes, so several routers send one session to the same replica.

use serde::de::{IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::hash::Hasher;

/// Most messages of the prompt's head that go into the hash (leading system messages and the
/// first other one).
pub const HEAD_MESSAGES: usize = 4;
/// Most bytes of the prompt's head (system prompt then messages, as JSON text) hashed.
pub const HEAD_BYTES: usize = 16 * 1024;

/// The header naming a session.
pub const SESSION_HEADER: &str = "x-session-id";

#[derive(Deserialize)]
struct Peek<'a> {
    #[serde(borrow, default)]
    prompt_cache_key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    user: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: Option<Metadata<'a>>,
    #[serde(borrow, default)]
    system: Option<&'a RawValue>,
    #[serde(borrow, default)]
    instructions: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "systemInstruction")]
    system_instruction: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<Head<'a>>,
    #[serde(borrow, default)]
    input: Option<Input<'a>>,
    #[serde(borrow, default)]
    contents: Option<Head<'a>>,
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    user_id: Option<Cow<'a, str>>,
}

/// The head of a message array, as raw JSON: its leading system (or developer) messages, then
/// the first other message; at most [`HEAD_MESSAGES`] elements; the rest skipped. Every later
/// turn of a conversation starts with the same head (its first turn included), whether the
/// system prompt is a message (OpenAI) or a field of its own (Anthropic, Gemini).
#[derive(Default)]
struct Head<'a>(Vec<&'a RawValue>);

#[derive(Deserialize)]
struct Role<'a> {
    #[serde(borrow, default)]
    role: Option<Cow<'a, str>>,
}

fn is_system(message: &RawValue) -> bool {
    serde_json::from_str::<Role<'_>>(message.get())
        .ok()
        .and_then(|r| r.role)
        .is_some_and(|r| r == "system" || r == "developer")
}

impl<'de: 'a, 'a> Deserialize<'de> for Head<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Head<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Head<'a>, A::Error> {
                let mut head = Vec::with_capacity(2);
                while head.len() < HEAD_MESSAGES {
                    match seq.next_element::<&'de RawValue>()? {
                        Some(m) => {
                            head.push(m);
                            if !is_system(m) {
                                break;
                            }
                        }
                        None => return Ok(Head(head)),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Head(head))
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// The Responses API's `input`: a string or a list of items.
enum Input<'a> {
    Text(&'a RawValue),
    Items(Head<'a>),
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        if raw.get().starts_with('[') {
            let head: Head<'de> =
                serde_json::from_str(raw.get()).map_err(serde::de::Error::custom)?;
            Ok(Input::Items(head))
        } else {
            Ok(Input::Text(raw))
        }
    }
}

/// The affinity key of a request with these session header and body; `None` when it has none
/// (no session field, no prompt: e.g. an embeddings call) or the body is not a JSON object.
pub fn key(session_header: Option<&[u8]>, body: &[u8]) -> Option<u64> {
    if let Some(s) = session_header.filter(|s| !s.is_empty()) {
        return Some(hash(b"session", &[s]));
    }
    let peek: Peek<'_> = serde_json::from_slice(body).ok()?;
    let named = [
        ("prompt_cache_key", peek.prompt_cache_key.as_deref()),
        ("user", peek.user.as_deref()),
        (
            "user_id",
            peek.metadata.as_ref().and_then(|m| m.user_id.as_deref()),
        ),
    ];
    for (field, value) in named {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            return Some(hash(field.as_bytes(), &[v.as_bytes()]));
        }
    }
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + HEAD_MESSAGES);
    for system in [peek.system, peek.instructions, peek.system_instruction]
        .into_iter()
        .flatten()
    {
        parts.push(system.get().as_bytes());
    }
    let head = match (&peek.messages, &peek.input, &peek.contents) {
        (Some(m), _, _) => m.0.as_slice(),
        (None, Some(Input::Items(h)), _) => h.0.as_slice(),
        (None, Some(Input::Text(t)), _) => std::slice::from_ref(t),
        (None, None, Some(c)) => c.0.as_slice(),
        (None, None, None) => &[],
    };
    parts.extend(head.iter().map(|m| m.get().as_bytes()));
    if parts.is_empty() {
        return None;
    }
    Some(hash(b"prefix", &parts))
}

/// FNV-1a of `kind` and `parts`, at most [`HEAD_BYTES`] bytes of `parts`.
fn hash(kind: &[u8], parts: &[&[u8]]) -> u64 {
    let mut h = fnv::FnvHasher::default();
    h.write(kind);
    let mut budget = HEAD_BYTES;
    for part in parts {
        let take = part.len().min(budget);
        h.write(&part[..take]);
        h.write_u8(0xff);
        budget -= take;
        if budget == 0 {
            break;
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(body: &str) -> Option<u64> {
        key(None, body.as_bytes())
    }

    #[test]
    fn fields_in_order_of_precedence() {
        let both =
            r#"{"user":"u1","prompt_cache_key":"c1","messages":[{"role":"user","content":"x"}]}"#;
        assert_eq!(k(both), k(r#"{"prompt_cache_key":"c1"}"#));
        assert_ne!(k(both), k(r#"{"user":"u1"}"#));
        assert_eq!(
            k(r#"{"user":"u1","messages":[{"role":"user","content":"a"}]}"#),
            k(r#"{"user":"u1","messages":[{"role":"user","content":"b"}]}"#)
        );
        assert_eq!(
            k(r#"{"metadata":{"user_id":"abc"},"messages":[]}"#),
            k(r#"{"metadata":{"user_id":"abc"},"system":"other"}"#)
        );
        // The header wins over everything.
        assert_eq!(
            key(Some(b"s1"), br#"{"user":"u1"}"#),
            key(Some(b"s1"), br#"{"user":"u2"}"#)
        );
        assert_ne!(key(Some(b"s1"), b"{}"), key(Some(b"s2"), b"{}"));
    }

    #[test]
    fn the_prompt_head_keys_a_conversation() {
        let turn = |n: usize| {
            let mut msgs = vec![
                r#"{"role":"system","content":"You are a careful assistant."}"#.to_string(),
                r#"{"role":"user","content":"first question"}"#.to_string(),
            ];
            for i in 0..n {
                msgs.push(format!(r#"{{"role":"assistant","content":"answer {i}"}}"#));
                msgs.push(format!(r#"{{"role":"user","content":"follow-up {i}"}}"#));
            }
            format!(r#"{{"model":"m","messages":[{}]}}"#, msgs.join(","))
        };
        assert!(k(&turn(0)).is_some());
        assert_eq!(k(&turn(0)), k(&turn(3)), "later turns share the head");
        let other = r#"{"model":"m","messages":[{"role":"system","content":"You are a pirate."},{"role":"user","content":"first question"}]}"#;
        assert_ne!(k(&turn(0)), k(other));
        // Anthropic's top-level system, the Responses API's instructions and input.
        assert_eq!(
            k(r#"{"system":"S","messages":[{"role":"user","content":"q"}],"max_tokens":5}"#),
            k(
                r#"{"system":"S","messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"},{"role":"user","content":"r"}]}"#
            )
        );
        assert!(k(r#"{"instructions":"I","input":"hello"}"#).is_some());
        assert_eq!(
            k(r#"{"input":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"x":1}]}"#),
            k(r#"{"input":[{"role":"user","content":"a"}]}"#)
        );
        assert_ne!(
            k(r#"{"input":[{"role":"developer","content":"d"},{"role":"user","content":"a"}]}"#),
            k(r#"{"input":[{"role":"user","content":"a"}]}"#)
        );
        assert!(k(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#).is_some());
    }

    #[test]
    fn no_key_without_a_session_or_prompt() {
        assert_eq!(k(r#"{"model":"e","encoding_format":"float"}"#), None);
        assert_eq!(k("not json"), None);
        assert_eq!(k("[1,2]"), None);
        assert!(k(r#"{"user":""}"#).is_none());
        // A huge system prompt is hashed only up to its first HEAD_BYTES.
        let long = "x".repeat(3 * HEAD_BYTES);
        let a = format!(r#"{{"system":"{long}a"}}"#);
        let b = format!(r#"{{"system":"{long}b"}}"#);
        assert_eq!(k(&a), k(&b));
    }
}
