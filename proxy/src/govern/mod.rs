//! Governing who may call and how much: virtual keys (`brvk_`), their policies, monthly
//! budgets and rate limits.
//!
//! Everything on the request path is memory: the key cache ([`crate::keys::KeyCache`], filled
//! and kept fresh by its own thread), the policies (part of the config snapshot, so a reload
//! changes them), the budgets' leases ([`budget`]) and the rate windows ([`rate`]). One thread
//! ([`coord`]) talks to the database for budgets and rate limits; a request waits on it only
//! when its key's lease has run out.

pub mod admit;
pub mod bound;
pub mod budget;
pub mod coord;
pub(crate) mod lease_db;
pub mod memo;
pub mod rate;

use crate::keys::KeyCache;
use crate::ledger::LedgerUrl;
use budget::Budgets;
use coord::Coordinator;
use rate::RateLimits;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// The runtime of keys, budgets and rate limits (one per process; survives reloads).
pub struct Governance {
    pub keys: KeyCache,
    pub budgets: Arc<Budgets>,
    pub rates: Arc<RateLimits>,
    pub coordinator: Coordinator,
    /// Keys already checked, so a repeat caller skips the SHA-256 and the policy combination.
    pub memo: memo::KeyMemo,
}

impl Governance {
    /// Starts the key cache and the coordinator on the ledger's database.
    pub fn start(url: &LedgerUrl) -> Governance {
        let budgets = Arc::new(Budgets::default());
        let rates = Arc::new(RateLimits::default());
        Governance {
            keys: KeyCache::start(url.clone()),
            coordinator: Coordinator::start(url.clone(), budgets.clone(), rates.clone()),
            budgets,
            rates,
            memo: memo::KeyMemo::default(),
        }
    }

    /// Adapts to a configuration (at start and on every reload): rate counts are exchanged with
    /// other routers only while some policy has a `max_requests_per_minute`.
    pub fn follow(&self, config: &bitrouter_config::Config) {
        let rated = config
            .access
            .iter()
            .any(|p| p.max_requests_per_minute.is_some());
        self.coordinator.exchange_rates(rated);
    }

    /// Writes the budgets' state before the process exits.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.coordinator.flush(timeout)
    }
}

/// Unix time in milliseconds (the ledger's clock).
pub fn now_ms() -> i64 {
    crate::ledger::unix_ms(SystemTime::now())
}

/// Locks `m`. A lock poisoned by a panic elsewhere still guards whole numbers (every update
/// under these locks is a few assignments), so the data is used as is.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The budget period (calendar month, UTC) of a unix time: `YYYY-MM`.
pub fn period_of(ms: i64) -> String {
    let (y, m) = year_month(ms);
    format!("{y:04}-{m:02}")
}

/// When the period holding `ms` ends: the first instant of the next month, RFC 3339 UTC.
pub fn period_reset(ms: i64) -> String {
    let (y, m) = year_month(ms);
    let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    format!("{y:04}-{m:02}-01T00:00:00Z")
}

/// Year and month (1–12) of a unix time in milliseconds (proleptic Gregorian, UTC), from the
/// days-to-civil algorithm (H. Hinnant).
fn year_month(ms: i64) -> (i64, u32) {
    let days = ms.div_euclid(86_400_000);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, u32::try_from(month).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        // 2026-12-02T11:28:00Z
        let ms = 1_796_210_880_000;
        assert_eq!(period_of(ms), "2026-12");
        assert_eq!(period_reset(ms), "2027-01-01T00:00:00Z");
        assert_eq!(period_of(0), "1970-01");
        // 2024-02-29T23:59:59.999Z is still February of a leap year.
        assert_eq!(period_of(1_709_251_199_999), "2024-02");
        assert_eq!(period_of(1_709_251_200_000), "2024-03");
        assert_eq!(period_reset(1_709_251_199_999), "2024-03-01T00:00:00Z");
    }
}
