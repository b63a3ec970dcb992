//! Rewriting the string values of a JSON document in place, byte for byte.
//!
//! Guardrails redact text inside request and response bodies of every protocol. Decoding the
//! body into a `serde_json::Value` and serialising it again would reorder keys and reformat
//! numbers; a same-protocol request must reach the provider with every field as the client sent
//! it. So this walks the document's tokens, hands each string value (unescaped) and the key it
//! belongs to to a callback, and splices in only the strings the callback replaced. A document
//! nothing is replaced in is not copied at all.

/// Calls `f(key, value)` for every string value of the JSON document `body` (object member
/// values and array elements; `key` is the member name, or the name of the member holding the
/// array for array elements, `None` at the top level). Where `f` returns a replacement, the
/// string is replaced (JSON-escaped) in a copy of the document, which is returned; `Ok(None)`
/// when nothing was replaced. `Err` when `body` is not well-formed enough to walk (the caller
/// has already parsed it, so this is a defect, not a client error).
pub fn rewrite_strings(
    body: &[u8],
    mut f: impl FnMut(Option<&str>, &str) -> Option<String>,
) -> Result<Option<Vec<u8>>, String> {
    use std::borrow::Cow;
    // Keys borrow from the document (escaped ones, rare, are decoded copies): the walk
    // allocates nothing for a document nothing is replaced in.
    enum Ctx<'a> {
        Object {
            expect_key: bool,
            key: Option<Cow<'a, str>>,
        },
        Array {
            key: Option<Cow<'a, str>>,
        },
    }
    // JSON is UTF-8 as a whole: validated once here, so each string is a `&str` slice
    // between two quotes (ASCII, hence char boundaries) instead of a validation per string.
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut stack: Vec<Ctx<'_>> = Vec::new();
    let mut out: Option<Vec<u8>> = None;
    // Bytes of `body` before this index are already in `out` (when `out` exists).
    let mut copied = 0usize;
    let mut i = 0usize;
    let n = body.len();
    while i < n {
        let b = body[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b':' => {
                match (b, stack.last_mut()) {
                    (b',', Some(Ctx::Object { expect_key, .. })) => *expect_key = true,
                    (b':', Some(Ctx::Object { expect_key, .. })) => *expect_key = false,
                    _ => {}
                }
                i += 1;
            }
            b'{' | b'[' => {
                let key = match stack.last() {
                    Some(Ctx::Object { key, .. }) => key.clone(),
                    Some(Ctx::Array { key }) => key.clone(),
                    None => None,
                };
                stack.push(if b == b'{' {
                    Ctx::Object {
                        expect_key: true,
                        key: None,
                    }
                } else {
                    Ctx::Array { key }
                });
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                let mut escaped = false;
                // To the closing quote, jumping from one quote or backslash to the next.
                loop {
                    match memchr::memchr2(b'"', b'\\', &body[i..]) {
                        Some(at) if body[i + at] == b'\\' => {
                            escaped = true;
                            i += at + 2;
                            if i > n {
                                return Err("unterminated string".into());
                            }
                        }
                        Some(at) => {
                            i += at;
                            break;
                        }
                        None => return Err("unterminated string".into()),
                    }
                }
                i += 1;
                let value: Cow<'_, str> = if escaped {
                    Cow::Owned(
                        serde_json::from_slice::<String>(&body[start..i])
                            .map_err(|e| format!("bad string at byte {start}: {e}"))?,
                    )
                } else {
                    Cow::Borrowed(text.get(start + 1..i - 1).unwrap_or_default())
                };
                let key = match stack.last_mut() {
                    Some(Ctx::Object {
                        expect_key: true,
                        key,
                    }) => {
                        *key = Some(value);
                        continue;
                    }
                    Some(Ctx::Object { key, .. }) | Some(Ctx::Array { key }) => key.as_deref(),
                    None => None,
                };
                if let Some(new) = f(key, &value) {
                    let buf = out.get_or_insert_with(|| Vec::with_capacity(n + 64));
                    buf.extend_from_slice(&body[copied..start]);
                    let escaped = serde_json::to_string(&new)
                        .map_err(|e| format!("cannot escape a replacement: {e}"))?;
                    buf.extend_from_slice(escaped.as_bytes());
                    copied = i;
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                while i < n && !matches!(body[i], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                {
                    i += 1;
                }
            }
        }
    }
    Ok(out.map(|mut buf| {
        buf.extend_from_slice(&body[copied..]);
        buf
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper_if(body: &str, key: &str) -> Option<String> {
        rewrite_strings(body.as_bytes(), |k, v| {
            (k == Some(key)).then(|| v.to_uppercase())
        })
        .unwrap()
        .map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn replaces_only_what_the_callback_returns_and_keeps_every_other_byte() {
        let body = r#"{"model":"m", "n": 1.50e3,"messages":[{"role":"user","content":"hi \"you\"\n"}],"z":[true,null]}"#;
        let out = upper_if(body, "content").unwrap();
        assert_eq!(
            out,
            r#"{"model":"m", "n": 1.50e3,"messages":[{"role":"user","content":"HI \"YOU\"\n"}],"z":[true,null]}"#
        );
        assert_eq!(upper_if(body, "nothing"), None);
    }

    #[test]
    fn array_elements_carry_the_key_of_their_array() {
        let body = r#"{"stop":["a","b"],"o":{"stop":"c"},"k":"stop"}"#;
        let mut seen = Vec::new();
        rewrite_strings(body.as_bytes(), |k, v| {
            seen.push((k.map(str::to_string), v.to_string()));
            None
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                (Some("stop".into()), "a".into()),
                (Some("stop".into()), "b".into()),
                (Some("stop".into()), "c".into()),
                (Some("k".into()), "stop".into()),
            ]
        );
    }

    #[test]
    fn unicode_and_escapes_round_trip() {
        let body = "{\"t\":\"caf\u{e9} \\u00e9 \\ud83d\\ude00 x\"}";
        let out = rewrite_strings(body.as_bytes(), |_, v| Some(v.replace('x', "y")))
            .unwrap()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["t"], "café é 😀 y");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in ["{\"a\":\"unterminated", "\"\\", "{\"a\":\"\\u12\"}"] {
            let _ = rewrite_strings(bad.as_bytes(), |_, v| Some(v.to_string()));
        }
        assert!(rewrite_strings(b"{\"a\":\"x", |_, _| None).is_err());
    }
}
