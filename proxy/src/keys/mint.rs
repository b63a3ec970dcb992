//! Key material: minting a key and its id, and the SHA-256 that is all the database keeps.
//!
//! A key is `brvk_` + 32 bytes from the operating system's generator in URL-safe base64 without
//! padding (43 characters): 256 bits, so guessing one is hopeless and a fast unsalted hash is
//! enough to store it (salting and slow hashes protect low-entropy passwords; they would only
//! slow the request path here). URL-safe so a key survives `?key=` and headers unquoted.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// What every virtual key starts with (so a key is recognisable, in a leak scanner too).
pub const KEY_PREFIX: &str = "brvk_";
/// What every key id starts with.
pub const ID_PREFIX: &str = "vk_";
/// Length of a key: the prefix and 43 base64 characters.
pub const KEY_LEN: usize = KEY_PREFIX.len() + 43;

/// A new key and its id (`vk_` + 16 lowercase hex characters, random), or why the operating
/// system could not supply random bytes.
pub fn try_mint() -> Result<(String, String), getrandom::Error> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret)?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id)?;
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    URL_SAFE_NO_PAD.encode_string(secret, &mut key);
    Ok((key, format!("{ID_PREFIX}{}", hex::encode(id))))
}

/// A new key and its id; see [`try_mint`].
///
/// # Panics
/// When the operating system cannot supply random bytes (on Linux, only before the kernel's
/// generator exists at all). There is no safe fallback for key material, so this stops rather
/// than mint a guessable key; [`try_mint`] returns the error instead.
pub fn mint() -> (String, String) {
    try_mint()
        .unwrap_or_else(|e| panic!("the operating system's random number generator failed: {e}"))
}

/// The SHA-256 of the whole key (prefix included), as stored and as looked up.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// `h` in lowercase hex (the `virtual_keys.key_hash` column).
pub fn hash_hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

/// A `key_hash` column back into bytes; `None` when it is not 64 hex digits.
pub fn parse_hash_hex(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok().map(|()| out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_keys_have_the_documented_shape() {
        let (key, id) = mint();
        assert!(key.starts_with("brvk_"), "{key}");
        assert_eq!(key.len(), 5 + 43);
        assert_eq!(key.len(), KEY_LEN);
        assert!(key[5..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert!(id.starts_with("vk_"), "{id}");
        assert_eq!(id.len(), 3 + 16);
        assert!(id[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        // 32 bytes decode back out of the text.
        assert_eq!(URL_SAFE_NO_PAD.decode(&key[5..]).unwrap().len(), 32);
        let (key2, id2) = mint();
        assert_ne!(key, key2);
        assert_ne!(id, id2);
    }

    #[test]
    fn hashes_are_sha256_of_the_whole_key_in_lowercase_hex() {
        // The SHA-256 test vector of "abc" (FIPS 180-2).
        let h = hash_key("abc");
        assert_eq!(
            hash_hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hash_hex(&hash_hex(&h)), Some(h));
        assert_eq!(parse_hash_hex("ab"), None);
        assert_eq!(parse_hash_hex(&"zz".repeat(32)), None);
        let (key, _) = mint();
        assert_ne!(hash_key(&key), hash_key(&key[..key.len() - 1]));
    }
}
