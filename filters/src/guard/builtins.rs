//! The built-in detectors: one regex per id (all lengths bounded, so the stream window can be
//! computed from them) and, where a regex alone would flag too much, a validator that looks at
//! the match (Luhn, mod-97, address ranges, command flags).
//!
//! Every regex uses ASCII word boundaries `(?-u:\b)` and ASCII classes: a Unicode `\b` makes the
//! lazy DFA give up on non-ASCII text and fall back to a much slower engine.

use std::net::{Ipv4Addr, Ipv6Addr};

/// The ids of the built-in patterns, for config validation and docs.
pub const BUILTINS: &[&str] = &[
    "api_keys",
    "private_keys",
    "credentials",
    "pii_emails",
    "pii_phone_numbers",
    "ip_addresses",
    "suspicious_commands",
    "credit_cards",
    "iban",
];

/// Accepts or rejects a regex match: the matched text and the character right after it (`None`
/// at the end of the text). Looking further than one char would break the stream window.
pub(crate) type Validator = fn(&str, Option<char>) -> bool;

/// How a built-in is detected.
pub(crate) enum Spec {
    Regex(&'static str, Option<Validator>),
    /// A PEM block: the match starts at the BEGIN line and runs to the END line (or the end of
    /// the text), however long.
    Pem {
        begin: &'static str,
        end: &'static str,
    },
}

pub(crate) fn spec(id: &str) -> Option<Spec> {
    Some(match id {
        "api_keys" => Spec::Regex(API_KEYS, None),
        "private_keys" => Spec::Pem {
            begin: r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----",
            end: r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----",
        },
        "credentials" => Spec::Regex(CREDENTIALS, None),
        "pii_emails" => Spec::Regex(EMAILS, None),
        "pii_phone_numbers" => Spec::Regex(PHONES, Some(phone_ok)),
        "ip_addresses" => Spec::Regex(IPS, Some(ip_ok)),
        "suspicious_commands" => Spec::Regex(COMMANDS, Some(command_ok)),
        "credit_cards" => Spec::Regex(CARDS, Some(card_ok)),
        "iban" => Spec::Regex(IBANS, Some(iban_ok)),
        _ => return None,
    })
}

/// Vendor prefixes with realistic minimum lengths ("sk-learn" is prose, a key is 32+ chars).
/// The generic OpenAI `sk-` form takes no dashes so kebab-case words never reach the minimum.
const API_KEYS: &str = concat!(
    r"(?-u:\b)(?:",
    r"sk-(?:proj|ant|svcacct|admin)-[A-Za-z0-9_-]{32,200}",
    r"|sk-[A-Za-z0-9]{32,200}",
    r"|AKIA[0-9A-Z]{16}(?-u:\b)",
    r"|AIza[0-9A-Za-z_-]{35}",
    r"|ghp_[A-Za-z0-9]{36}(?-u:\b)",
    r"|github_pat_[A-Za-z0-9_]{22,120}",
    r"|xox[baprs]-[A-Za-z0-9-]{10,200}",
    r"|[sr]k_live_[A-Za-z0-9]{20,200}",
    r"|brvk_[A-Za-z0-9_-]{43}",
    r")"
);

/// `password=...` style assignments (value: printable ASCII up to whitespace, quote or `;`,
/// which also ends the value in ADO connection strings; ASCII classes keep the longest match,
/// and so the stream window, small), and URLs carrying `user:pass@` (basic auth, postgres://,
/// mongodb+srv://, ...). The match stops at the `@`: the host is not secret.
const CREDENTIALS: &str = concat!(
    r#"(?-u:\b)(?i-u:password|passwd|passphrase|pwd)[ \t]{0,3}[=:][ \t]{0,3}["']?[!#-&(-:<-~]{1,128}"#,
    r#"|(?-u:\b)[A-Za-z][A-Za-z0-9+.-]{1,20}://[!#-&(-.0-9;=?A-~]{1,64}:[!#-&(-.0-;=?A-~]{1,128}@"#
);

const EMAILS: &str = r"(?-u:\b)[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,2}\.[A-Za-z]{2,24}(?-u:\b)";

/// International `+CC ...` numbers (digits counted by the validator), NANP `(555) 123-4567` /
/// `555-123-4567`, and trunk-prefixed national forms `020 7946 0958`. Separators are required
/// in national forms so plain digit runs, dates and versions do not match.
const PHONES: &str = concat!(
    r"\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,4}\)?){2,6}(?-u:\b)",
    r"|(?:\([0-9]{3}\) ?|(?-u:\b)[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}(?-u:\b)",
    r"|(?-u:\b)0[0-9]{1,4}[ -][0-9]{3,4}[ -][0-9]{3,4}(?-u:\b)"
);

/// IPv4 dotted quads and IPv6 with at least three groups (so `Add::add` is not an address);
/// the validator parses them and drops loopback, link-local and unspecified addresses.
const IPS: &str = concat!(
    r"(?-u:\b)(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?-u:\b)",
    r"|(?-u:\b)[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
);

const COMMANDS: &str = concat!(
    r"(?-u:\b)rm(?:[ \t]{1,8}-{1,2}[A-Za-z-]{1,20}){1,4}[ \t]{1,8}(?:/\*?|~/?\*?|\$HOME/?)",
    r"|(?-u:\b)(?:curl|wget)[ \t][\t -{}~]{0,120}\|[ \t]{0,4}(?:sudo[ \t]{1,4})?(?:ba|z|da|k)?sh(?-u:\b)",
    r"|(?-u:\b)mkfs(?:\.[a-z0-9]{1,10})?[ \t][\t -~]{0,60}/dev/[A-Za-z0-9]{1,32}",
    r"|(?-u:\b)dd[ \t][\t -~]{0,100}of=/dev/(?:sd|hd|nvme|xvd|vd|disk|mmcblk)[A-Za-z0-9]{0,10}",
    r"|:\(\)[ \t]{0,2}\{[ \t]{0,2}:[ \t]{0,2}\|[ \t]{0,2}:[ \t]{0,2}&[ \t]{0,2}\}[ \t]{0,2};[ \t]{0,2}:",
    r"|(?-u:\b)chmod[ \t]{1,8}(?:-[A-Za-z]{0,4}R[A-Za-z]{0,4}|--recursive)[ \t]{1,8}0?777[ \t]{1,8}/",
    r"|>[ \t]{0,4}/dev/(?:sd[a-z]|hd[a-z]|nvme[0-9]n[0-9]|xvd[a-z]|vd[a-z])"
);

/// 13-19 digits, optionally grouped by spaces or dashes.
const CARDS: &str = r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)";

/// Compact, or grouped in fours as printed.
const IBANS: &str =
    r"(?-u:\b)[A-Z]{2}[0-9]{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?-u:\b)";

fn phone_ok(m: &str, _next: Option<char>) -> bool {
    if !m.starts_with('+') {
        return true;
    }
    let digits = m.bytes().filter(u8::is_ascii_digit).count();
    let balanced =
        m.bytes().filter(|&b| b == b'(').count() == m.bytes().filter(|&b| b == b')').count();
    (8..=15).contains(&digits) && balanced
}

fn ip_ok(m: &str, _next: Option<char>) -> bool {
    if let Ok(v4) = m.parse::<Ipv4Addr>() {
        return !v4.is_loopback() && !v4.is_link_local();
    }
    if m.contains('.') {
        // Octet > 255 or a leading zero: not an address (a version, an OID).
        return false;
    }
    let groups = m.split(':').filter(|g| !g.is_empty()).count();
    match m.parse::<Ipv6Addr>() {
        Ok(v6) => {
            let link_local = v6.segments()[0] & 0xffc0 == 0xfe80;
            groups >= 3 && !v6.is_loopback() && !v6.is_unspecified() && !link_local
        }
        Err(_) => false,
    }
}

/// `rm` needs recursive + force (or `--no-preserve-root`) and must hit `/` or `~` itself, not a
/// path below it; `chmod -R 777` must hit `/` itself.
fn command_ok(m: &str, next: Option<char>) -> bool {
    let whole_target = next.is_none_or(|c| c.is_whitespace() || ";&|)'\"`".contains(c));
    if m.starts_with("rm") {
        let mut recursive = false;
        let mut force = false;
        let mut no_root = false;
        for flag in m.split_whitespace().filter(|w| w.starts_with('-')) {
            if let Some(long) = flag.strip_prefix("--") {
                recursive |= long == "recursive";
                force |= long == "force";
                no_root |= long == "no-preserve-root";
            } else {
                recursive |= flag.contains(['r', 'R']);
                force |= flag.contains('f');
            }
        }
        return whole_target && ((recursive && force) || no_root);
    }
    if m.starts_with("chmod") {
        return whole_target;
    }
    true
}

/// Luhn over 13-19 digits with one kind of separator; network prefixes 2-6 and not a run of
/// one digit (all zeros passes Luhn).
fn card_ok(m: &str, _next: Option<char>) -> bool {
    let digits: Vec<u32> = m.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    if m.contains(' ') && m.contains('-') {
        return false;
    }
    if !(2..=6).contains(&digits[0]) || digits.iter().all(|&d| d == digits[0]) {
        return false;
    }
    luhn(&digits)
}

pub(crate) fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    // MSRV 1.85: no `is_multiple_of`.
    let last_digit = sum % 10;
    last_digit == 0
}

/// ISO 13616: 15-34 chars, move the first four to the end, letters to 10..35, mod 97 == 1.
fn iban_ok(m: &str, _next: Option<char>) -> bool {
    let compact: Vec<u8> = m.bytes().filter(|b| *b != b' ').collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let (head, tail) = compact.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}
