//! Virtual keys: `brvk_` keys, each tied to a user and to policies, signed and revoked with
//! `bitrouter key` and kept in the ledger's database (`virtual_keys`, schema version 2).
//!
//! The database keeps only a key's SHA-256 ([`hash_key`]); the key itself is shown once, when
//! it is signed. The request path never reads the database: [`KeyCache`] holds every key in
//! memory, keyed by hash, and one background thread keeps it fresh (a cheap change check every
//! second, a reload only when something changed), so a new key or a revocation takes effect
//! within two seconds on every router sharing the database, and a database outage leaves the
//! last keys read in service. Last-used times are bumped in memory and written back every few
//! seconds.

mod cache;
mod mint;
mod store;

pub use cache::{CachedKey, KeyCache, KeyLookup, FLUSH_EVERY, REFRESH};
pub use mint::{
    hash_hex, hash_key, mint, parse_hash_hex, try_mint, ID_PREFIX, KEY_LEN, KEY_PREFIX,
};
pub use store::{Fingerprint, KeyStore, Revoked};

use serde::Serialize;

/// What the database knows about a key. Never holds the key or its hash, so it can be listed,
/// logged and serialised freely.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyRecord {
    /// `vk_` + 16 hex characters: how the key is named everywhere (ledger, logs, `revoke`).
    pub id: String,
    /// Who the key belongs to (spend is grouped by it).
    pub user: String,
    pub label: Option<String>,
    /// Ids of the policies that apply, in the order given at signing.
    pub policies: Vec<String>,
    /// Unix milliseconds.
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
    /// As of the last read of the database; [`CachedKey::last_used_ms`] is the live value.
    pub last_used_ms: Option<i64>,
}

/// Whether a key may be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "active",
            KeyState::Revoked => "revoked",
            KeyState::Expired => "expired",
        }
    }
}

impl KeyRecord {
    /// The key's state at `now_ms`. A revocation counts from the moment it is recorded (a
    /// revocation time in the future, from a clock ahead of ours, still revokes); a key expires
    /// at `expires_ms` (that millisecond included).
    pub fn state(&self, now_ms: i64) -> KeyState {
        if self.revoked_ms.is_some() {
            KeyState::Revoked
        } else if self.expires_ms.is_some_and(|e| e <= now_ms) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }
}

/// The `policies` column: ids joined by `,` (`''` for none; a valid id holds no `,`, see
/// `bitrouter_config::valid_policy_id`).
fn join_policies(policies: &[String]) -> String {
    policies.join(",")
}

/// The `policies` column back into ids (empty parts skipped).
fn split_policies(column: &str) -> Vec<String> {
    column
        .split(',')
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_ms: Option<i64>, revoked_ms: Option<i64>) -> KeyRecord {
        KeyRecord {
            id: "vk_0123456789abcdef".into(),
            user: "ann".into(),
            label: None,
            policies: vec![],
            created_ms: 1_000,
            expires_ms,
            revoked_ms,
            last_used_ms: None,
        }
    }

    #[test]
    fn states() {
        assert_eq!(record(None, None).state(5_000), KeyState::Active);
        assert_eq!(record(Some(5_001), None).state(5_000), KeyState::Active);
        assert_eq!(record(Some(5_000), None).state(5_000), KeyState::Expired);
        assert_eq!(record(None, Some(4_000)).state(5_000), KeyState::Revoked);
        // Revoked wins over expired, and a revocation stamped ahead of our clock still holds.
        assert_eq!(record(Some(1), Some(9_000)).state(5_000), KeyState::Revoked);
        assert_eq!(KeyState::Expired.as_str(), "expired");
    }

    #[test]
    fn policy_ids_and_their_column() {
        for ok in ["default", "team-a", "v1.2_x"] {
            assert!(bitrouter_config::valid_policy_id(ok), "{ok}");
        }
        for bad in ["", "a,b", "a b", "../x", "a/b", "é"] {
            assert!(!bitrouter_config::valid_policy_id(bad), "{bad}");
        }
        let ids = vec!["a".to_string(), "b.c".to_string()];
        assert_eq!(join_policies(&ids), "a,b.c");
        assert_eq!(split_policies("a,b.c"), ids);
        assert_eq!(split_policies(""), Vec::<String>::new());
        assert_eq!(join_policies(&[]), "");
    }

    #[test]
    fn a_record_serialises_without_secrets() {
        let v = serde_json::to_value(record(None, None)).unwrap();
        let mut fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_ms",
                "expires_ms",
                "id",
                "label",
                "last_used_ms",
                "policies",
                "revoked_ms",
                "user"
            ]
        );
    }
}
