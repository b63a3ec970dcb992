//! Small helpers shared by every protocol module: ids, clocks, token estimates, URL decoding.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: OnceLock<u64> = OnceLock::new();

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A unique id such as `chatcmpl-3fZk...`: `prefix` followed by `len` base62 characters.
///
/// Unique within the process (a counter) and very likely across processes (seeded by the clock
/// and pid), which is all a mock needs; no RNG crate required.
pub(crate) fn new_id(prefix: &str, len: usize) -> String {
    let seed = *SEED.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        splitmix64(nanos ^ (u64::from(std::process::id()) << 32))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut state = 0;
    for i in 0..len {
        if i % 10 == 0 {
            // 10 base62 digits use ~60 of the 64 bits: draw fresh bits for the next 10.
            state = splitmix64(seed ^ splitmix64(n.wrapping_mul(0x1_0000) ^ i as u64));
        }
        out.push(char::from(ALPHABET[(state % 62) as usize]));
        state /= 62;
    }
    out
}

/// Current unix time in seconds (the `created` fields of real responses).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Deterministic token estimate: whitespace-separated words. Tests can compute it too.
pub(crate) fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Whether `haystack` contains `needle` (byte-wise; empty needle always matches).
pub(crate) fn bytes_contain(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (and `+` to space when `plus_is_space`, for query values).
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded value of query parameter `name`, if present.
pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k, true) == name).then(|| percent_decode(v, true))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prefixed() {
        let a = new_id("chatcmpl-", 24);
        let b = new_id("chatcmpl-", 24);
        assert_ne!(a, b);
        assert!(a.starts_with("chatcmpl-"));
        assert_eq!(a.len(), "chatcmpl-".len() + 24);
    }

    #[test]
    fn decodes() {
        assert_eq!(
            percent_decode("gemini%2D2.0%3Aflash", false),
            "gemini-2.0:flash"
        );
        assert_eq!(percent_decode("a+b%", true), "a b%");
        assert_eq!(percent_decode("%4", false), "%4");
        assert_eq!(
            query_param(Some("alt=sse&key=k%20y"), "key").as_deref(),
            Some("k y")
        );
        assert_eq!(query_param(Some("alt"), "alt").as_deref(), Some(""));
        assert_eq!(query_param(None, "alt"), None);
    }

    #[test]
    fn contains() {
        assert!(bytes_contain(b"hello world", b"o w"));
        assert!(!bytes_contain(b"hello", b"world"));
        assert!(bytes_contain(b"", b""));
    }
}
