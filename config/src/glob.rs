//! Shell-style globs for `api_protocol` keys and registry model patterns (`claude-*`).
//!
//! Hand-rolled rather than a crate: the patterns are tiny, matching runs on every request
//! (`protocol_for`), and this matcher neither allocates nor compiles anything.
//!
//! Syntax: `*` any run of characters (including `/` and none), `?` exactly one character,
//! `[abc]` / `[a-z]` / `[!a-z]` (or `[^a-z]`) one character from (not from) a class, and `\x`
//! the character `x` literally. Everything else matches itself; matching is case-sensitive and
//! covers the whole text.

/// Checks that `pattern` is a well-formed glob, explaining what is wrong if not.
pub(crate) fn check(pattern: &str) -> Result<(), String> {
    if pattern.is_empty() {
        return Err("a glob must not be empty (use `*` to match everything)".to_string());
    }
    let mut i = 0;
    while i < pattern.len() {
        match token_at(pattern, i, None) {
            Some((_, len)) => i += len,
            None => {
                return Err(if pattern[i..].starts_with('\\') {
                    "a glob must not end with a lone `\\`".to_string()
                } else {
                    format!("unclosed `[` at character {} of the glob", i + 1)
                })
            }
        }
    }
    Ok(())
}

/// Whether `text` matches `pattern` entirely. A malformed pattern matches nothing.
pub(crate) fn matches(pattern: &str, text: &str) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    // Where to resume after the most recent `*`: (pattern index after it, text index it
    // currently swallows up to).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            if pattern.as_bytes()[p] == b'*' {
                p += 1;
                star = Some((p, t));
                continue;
            }
            if let Some(c) = text[t..].chars().next() {
                match token_at(pattern, p, Some(c)) {
                    Some((true, len)) => {
                        p += len;
                        t += c.len_utf8();
                        continue;
                    }
                    Some((false, _)) => {}
                    None => return false,
                }
            }
        } else if t == text.len() {
            return true;
        }
        // Mismatch: let the last `*` swallow one more character, if there is one.
        match star {
            Some((sp, st)) => match text[st..].chars().next() {
                Some(c) => {
                    let next = st + c.len_utf8();
                    star = Some((sp, next));
                    p = sp;
                    t = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

/// The single-character token starting at byte `i` of `pattern` (never `*`): whether it matches
/// `c` (`false` when `c` is `None`) and its length in bytes. `None` when malformed.
fn token_at(pattern: &str, i: usize, c: Option<char>) -> Option<(bool, usize)> {
    let rest = &pattern[i..];
    let first = rest.chars().next()?;
    match first {
        '?' | '*' => Some((c.is_some(), 1)),
        '\\' => {
            let lit = rest[1..].chars().next()?;
            Some((c == Some(lit), 1 + lit.len_utf8()))
        }
        '[' => class_at(rest, c),
        lit => Some((c == Some(lit), lit.len_utf8())),
    }
}

/// A `[...]` class at the start of `rest`.
fn class_at(rest: &str, c: Option<char>) -> Option<(bool, usize)> {
    let mut chars = rest.char_indices().skip(1).peekable();
    let negated = matches!(chars.peek(), Some((_, '!' | '^')));
    if negated {
        chars.next();
    }
    let mut matched = false;
    let mut first = true;
    while let Some((idx, ch)) = chars.next() {
        if ch == ']' && !first {
            let hit = c.is_some() && matched != negated;
            return Some((hit, idx + 1));
        }
        first = false;
        let lo = ch;
        let mut hi = ch;
        if let Some(&(_, '-')) = chars.peek() {
            let mut ahead = chars.clone();
            ahead.next();
            if let Some(&(_, end)) = ahead.peek() {
                if end != ']' {
                    chars = ahead;
                    chars.next();
                    hi = end;
                }
            }
        }
        if let Some(c) = c {
            if lo <= c && c <= hi {
                matched = true;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_and_question_mark() {
        assert!(matches("*", ""));
        assert!(matches("*", "anything/with/slashes"));
        assert!(matches("claude-*", "claude-sonnet-4-5"));
        assert!(!matches("claude-*", "gpt-4o"));
        assert!(matches("o1*", "o1"));
        assert!(matches("o1*", "o1-preview"));
        assert!(matches("gpt-?o", "gpt-4o"));
        assert!(!matches("gpt-?o", "gpt-40o"));
        assert!(matches("*-mini", "gpt-4o-mini"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("**", "x"));
        assert!(!matches("abc", "abcd"));
        assert!(matches("ünï*", "ünïcode"));
        assert!(matches("?", "ü"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(matches("gpt-[34]*", "gpt-4o"));
        assert!(!matches("gpt-[34]*", "gpt-5"));
        assert!(matches("v[0-9]", "v7"));
        assert!(matches("v[!0-9]", "vx"));
        assert!(!matches("v[^0-9]", "v7"));
        assert!(matches("[]]", "]"));
        assert!(matches("[a-]", "-"));
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "x"));
    }

    #[test]
    fn malformed_globs() {
        assert!(check("*").is_ok());
        assert!(check("gpt-[34]*").is_ok());
        assert!(check("").is_err());
        assert!(check("gpt-[34").unwrap_err().contains("unclosed `[`"));
        assert!(check("abc\\").is_err());
        assert!(!matches("gpt-[34", "gpt-3"));
    }
}
