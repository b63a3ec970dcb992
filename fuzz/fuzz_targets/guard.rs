#![no_main]
//! The guardrail stream property: for any text and any split into deltas, the concatenated
//! output of `GuardStream` equals `Guard::check(whole).text`, with the same hits in the same
//! order and the same block. Input: byte 0 picks the rule set (bit 0) and the number of cuts
//! (bits 1..5); then two bytes per cut (little-endian offset, modulo the text length); the rest
//! is the text (lossy UTF-8).

use std::sync::OnceLock;

use bitrouter_filters::guard::{Action, Guard, Pattern, Rule, BUILTINS};
use libfuzzer_sys::fuzz_target;

fn guards() -> &'static [Guard; 2] {
    static GUARDS: OnceLock<[Guard; 2]> = OnceLock::new();
    GUARDS.get_or_init(|| {
        let build = |actions: &dyn Fn(&str) -> Action| {
            let mut rules: Vec<Rule> = BUILTINS
                .iter()
                .map(|id| Rule {
                    id: (*id).into(),
                    pattern: Pattern::Builtin((*id).into()),
                    action: actions(id),
                })
                .collect();
            rules.push(Rule {
                id: "custom".into(),
                pattern: Pattern::Regex("(?i)internal-[a-z0-9]{3,12}".into()),
                action: actions("custom"),
            });
            match Guard::new(rules) {
                Ok(g) => g,
                Err(e) => panic!("built-in rules do not compile: {e}"),
            }
        };
        [
            build(&|id| if id == "ip_addresses" { Action::Warn } else { Action::Redact }),
            build(&|id| match id {
                "suspicious_commands" | "private_keys" => Action::Block,
                "pii_emails" | "custom" => Action::Warn,
                _ => Action::Redact,
            }),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let ncuts = usize::from((head >> 1) & 31);
    let (cut_bytes, text) = rest.split_at((ncuts * 2).min(rest.len()));
    let text = String::from_utf8_lossy(text);
    let text: &str = &text;
    let mut cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| {
            let v = usize::from(c[0]) | usize::from(*c.get(1).unwrap_or(&0)) << 8;
            let mut at = v % (text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    cuts.sort_unstable();

    let guard = &guards()[usize::from(head & 1)];
    let whole = guard.check(text);
    let mut stream = guard.stream();
    let mut out = String::new();
    let mut hits = Vec::new();
    let mut blocked = None;
    let mut last = 0;
    for &cut in cuts.iter().chain(std::iter::once(&text.len())) {
        let c = stream.push(&text[last..cut]);
        assert!(blocked.is_none() || (c.text.is_empty() && c.hits.is_empty()));
        out.push_str(&c.text);
        hits.extend(c.hits);
        blocked = blocked.or(c.blocked);
        last = cut;
    }
    let c = stream.finish();
    assert!(blocked.is_none() || (c.text.is_empty() && c.hits.is_empty()));
    out.push_str(&c.text);
    hits.extend(c.hits);
    blocked = blocked.or(c.blocked);
    assert_eq!(out, whole.text, "text differs; cuts {cuts:?}");
    assert_eq!(hits, whole.hits, "hits differ; cuts {cuts:?}");
    assert_eq!(blocked, whole.blocked, "block differs; cuts {cuts:?}");
});
