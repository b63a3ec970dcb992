//! Monthly spending limits that hold under concurrency and across routers.
//!
//! A request on a key with `max_spend_micro_usd` first **reserves** its worst-case cost (a true
//! upper bound, see [`super::bound`]) against the key's budget; when it ends, the reservation is
//! **settled**: replaced by what the request actually cost. Check and charge are one step under
//! the key's lock, so 100 concurrent requests against a budget that covers 10 can never all pass.
//!
//! Across routers sharing a database, each router holds a **lease**: a share of the key's
//! remaining budget for the month, granted atomically by the database (the
//! `budget_leases` table: per key, month and router, what it was granted and what it spent).
//! Reservations are taken from the router's own lease in memory; only when the lease runs out
//! does the router ask the database for more (one transaction, off the request path's thread,
//! for a chunk several requests wide), so there is no database round trip per request. A router
//! idle on a key gives its unused lease back within two seconds, and a router that stops
//! heartbeating loses its unused lease after [`LEASE_FRESH_MS`] (its spending stays counted).
//!
//! The bound: the sum of what all routers spend on a key in a month never exceeds its budget,
//! except by what settled requests cost beyond their reservation (a request whose upstream
//! ignored its output cap, or a prompt referencing media by URL the provider bills by the
//! image); docs/keys.md states it.

use super::lock;
use hashbrown::HashMap;
use std::sync::{Arc, Mutex};

/// How long another router's lease counts as held after its last heartbeat. A router that
/// cannot write its heartbeat for half this long stops using its lease (see
/// [`KeyBudget::lease_valid_until_ms`]), so two routers never both spend the same share.
pub const LEASE_FRESH_MS: i64 = 10_000;

/// How long a lease stays usable after the database last confirmed it.
pub const LEASE_VALID_MS: i64 = LEASE_FRESH_MS / 2;

/// A key idle this long gives its unused lease back at the next heartbeat.
pub const IDLE_RELEASE_MS: i64 = 2_000;

/// One key's budget state on this router, for the current month.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct KeyBudget {
    /// The month this state is for (`YYYY-MM`, UTC).
    pub period: String,
    /// The share of the month's budget the database granted this router.
    pub granted: f64,
    /// What settled requests cost this month on this router.
    pub spent: f64,
    /// What requests in flight have reserved.
    pub outstanding: f64,
    /// The lease may be used until then (unix ms); refreshed by every confirmed write.
    pub lease_valid_until_ms: i64,
    /// The last reservation (unix ms): an idle key releases its lease.
    pub last_reserve_ms: i64,
    /// The written state differs from the database's.
    pub dirty: bool,
}

impl KeyBudget {
    /// Moves to `period` when the month has changed: a new month starts with nothing granted or
    /// spent. Requests still in flight stay reserved and are charged to the new month (the
    /// conservative side).
    pub fn roll(&mut self, period: &str) {
        if self.period != period {
            self.period = period.to_string();
            self.granted = 0.0;
            self.spent = 0.0;
            self.lease_valid_until_ms = 0;
            self.dirty = true;
        }
    }

    /// Reserves `amount` from the lease if it covers it; returns how much more lease is needed
    /// otherwise.
    fn try_reserve(&mut self, amount: f64, now_ms: i64) -> Result<(), f64> {
        let held = if now_ms < self.lease_valid_until_ms {
            self.granted
        } else {
            // Unconfirmed for too long: another router may already count it as free.
            self.spent.min(self.granted)
        };
        let need = self.spent + self.outstanding + amount - held;
        // A millionth of a micro-USD of rounding is not worth refusing a request for.
        if need <= 1e-6 {
            self.outstanding += amount;
            self.last_reserve_ms = now_ms;
            Ok(())
        } else {
            Err(need)
        }
    }
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum BudgetError {
    /// The month's budget cannot cover this request's worst case.
    Exceeded {
        /// What is left of the budget across all routers (as far as this router knows).
        remaining: f64,
    },
    /// The database could not be asked for more lease.
    Unavailable(String),
}

/// Asks the database for more lease: implemented by the coordinator (see
/// [`super::coord`]), which updates `budget.granted` and `lease_valid_until_ms` itself.
pub trait Lessor: Send + Sync {
    /// Wants `want` more micro-USD of lease on `key_id` (month budget `cap`); resolves when
    /// the database answered. Returns what is left of the budget for all routers.
    fn extend(
        &self,
        key_id: &str,
        budget: Arc<Mutex<KeyBudget>>,
        want: f64,
        cap: f64,
    ) -> tokio::sync::oneshot::Receiver<Result<f64, String>>;
}

/// Every key's budget state on this router.
#[derive(Default)]
pub struct Budgets {
    keys: Mutex<HashMap<String, Arc<Mutex<KeyBudget>>>>,
}

impl Budgets {
    /// The state of `key_id`, created on first use.
    pub fn key(&self, key_id: &str) -> Arc<Mutex<KeyBudget>> {
        let mut keys = lock(&self.keys);
        if let Some(b) = keys.get(key_id) {
            return b.clone();
        }
        let b = Arc::new(Mutex::new(KeyBudget::default()));
        keys.insert(key_id.to_string(), b.clone());
        b
    }

    /// Every key's state (for the heartbeat).
    pub fn all(&self) -> Vec<(String, Arc<Mutex<KeyBudget>>)> {
        let keys = lock(&self.keys);
        keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Reserves `amount` micro-USD against `key_id`'s monthly budget `cap` (the period is
    /// `period`, `YYYY-MM`). Asks `lessor` for more lease at most once.
    pub async fn reserve(
        &self,
        lessor: &dyn Lessor,
        key_id: &str,
        cap: f64,
        amount: f64,
        period: &str,
        now_ms: impl Fn() -> i64,
    ) -> Result<Reservation, BudgetError> {
        let budget = self.key(key_id);
        let amount = amount.max(0.0);
        let need = {
            let mut b = lock(&budget);
            b.roll(period);
            match b.try_reserve(amount, now_ms()) {
                Ok(()) => return Ok(Reservation::new(budget.clone(), amount)),
                Err(need) => need,
            }
        };
        // A chunk several requests wide, so the next ones are served from memory.
        let want = need + (cap / 20.0).max(amount * 4.0);
        let answer = lessor
            .extend(key_id, budget.clone(), want, cap)
            .await
            .map_err(|_| BudgetError::Unavailable("the budget coordinator stopped".into()))?;
        let remaining = answer.map_err(BudgetError::Unavailable)?;
        let mut b = lock(&budget);
        b.roll(period);
        match b.try_reserve(amount, now_ms()) {
            Ok(()) => Ok(Reservation::new(budget.clone(), amount)),
            Err(_) => Err(BudgetError::Exceeded { remaining }),
        }
    }
}

/// A request's hold on its key's budget. Settle it with what the request cost; dropped
/// unsettled, it charges the whole reservation (never less than the truth).
pub struct Reservation {
    budget: Arc<Mutex<KeyBudget>>,
    amount: f64,
    settled: bool,
}

impl Reservation {
    fn new(budget: Arc<Mutex<KeyBudget>>, amount: f64) -> Reservation {
        Reservation {
            budget,
            amount,
            settled: false,
        }
    }

    /// What was reserved.
    pub fn amount(&self) -> f64 {
        self.amount
    }

    /// Replaces the reservation by `actual` micro-USD.
    pub fn settle(mut self, actual: f64) {
        self.charge(actual);
    }

    fn charge(&mut self, actual: f64) {
        if self.settled {
            return;
        }
        self.settled = true;
        let mut b = lock(&self.budget);
        b.outstanding = (b.outstanding - self.amount).max(0.0);
        b.spent += actual.max(0.0);
        b.dirty = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let amount = self.amount;
        self.charge(amount);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database that grants from a shared pot, as the real one does across routers.
    struct Pot {
        left: Mutex<f64>,
    }

    impl Lessor for Pot {
        fn extend(
            &self,
            _key_id: &str,
            budget: Arc<Mutex<KeyBudget>>,
            want: f64,
            _cap: f64,
        ) -> tokio::sync::oneshot::Receiver<Result<f64, String>> {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let mut left = self.left.lock().unwrap();
            let give = want.min(*left).max(0.0);
            *left -= give;
            let mut b = lock(&budget);
            b.granted += give;
            b.lease_valid_until_ms = i64::MAX;
            let _ = tx.send(Ok(*left));
            rx
        }
    }

    #[tokio::test]
    async fn concurrent_reservations_never_exceed_the_budget() {
        let pot = Arc::new(Pot {
            left: Mutex::new(1_000.0),
        });
        let budgets = Arc::new(Budgets::default());
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (pot, budgets) = (pot.clone(), budgets.clone());
            tasks.push(tokio::spawn(async move {
                budgets
                    .reserve(pot.as_ref(), "vk_a", 1_000.0, 100.0, "2026-12", || 0)
                    .await
            }));
        }
        let mut held = Vec::new();
        for t in tasks {
            if let Ok(r) = t.await.unwrap() {
                held.push(r);
            }
        }
        assert_eq!(
            held.len(),
            10,
            "exactly ten reservations of 100 fit in 1,000"
        );
        // Settling below the reservation frees room for more.
        for r in held.drain(..) {
            r.settle(50.0);
        }
        let b = budgets.key("vk_a");
        let state = lock(&b).clone();
        assert_eq!((state.spent, state.outstanding), (500.0, 0.0));
        let more = budgets
            .reserve(pot.as_ref(), "vk_a", 1_000.0, 100.0, "2026-12", || 0)
            .await;
        assert!(more.is_ok());
    }

    #[tokio::test]
    async fn a_dropped_reservation_charges_in_full_and_a_new_month_starts_empty() {
        let pot = Pot {
            left: Mutex::new(1_000.0),
        };
        let budgets = Budgets::default();
        let r = budgets
            .reserve(&pot, "vk_b", 1_000.0, 300.0, "2026-12", || 0)
            .await
            .unwrap();
        drop(r);
        let b = budgets.key("vk_b");
        assert_eq!(lock(&b).spent, 300.0);
        let mut state = lock(&b);
        state.roll("2027-01");
        assert_eq!((state.spent, state.granted), (0.0, 0.0));
    }

    #[test]
    fn an_unconfirmed_lease_is_not_used() {
        let mut b = KeyBudget {
            granted: 100.0,
            lease_valid_until_ms: 10,
            ..KeyBudget::default()
        };
        assert!(b.try_reserve(50.0, 5).is_ok());
        assert_eq!(b.try_reserve(10.0, 11), Err(60.0));
    }
}
