//! Prices and the cost of a request: the `pricing:` of a provider's model entry, the built-in
//! price table (`config/data/prices.yaml`), and the arithmetic that turns four token counts
//! into micro-USD.
//!
//! Pure: no clock, no I/O. The proxy builds a [`PriceBook`] from each config snapshot (cheap:
//! the built-in table is parsed once per process and shared) and asks it once per request.
//!
//! Two rules keep a cost honest: a bucket that has tokens but no rate makes the cost unknown
//! ([`CostError`]), never $0; and an explicit `0` is a real price (a local model is free).

use crate::registry;
use crate::{Config, Provider};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::OnceLock;

/// `pricing:` of a model entry, as written. Every rate is in micro-USD per token, which is
/// the same number as USD per million tokens (`input_micro_usd_per_token: 3` = $3 / MTok).
/// An absent rate is unknown (a request with tokens in that bucket gets no cost), `0` is
/// free.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PricingSection {
    /// Uncached input tokens.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub input_micro_usd_per_token: Option<f64>,
    /// Input tokens read from the provider's prompt cache.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cache_read_micro_usd_per_token: Option<f64>,
    /// Input tokens written to the provider's prompt cache (Anthropic's
    /// `cache_creation_input_tokens`; OpenAI charges nothing extra, so `0` there).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cache_write_micro_usd_per_token: Option<f64>,
    /// Output tokens, reasoning tokens included.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub output_micro_usd_per_token: Option<f64>,
    /// Long-context rates, in strictly ascending `above_input_tokens` order. A request whose
    /// total input (uncached + cache read + cache write) is above a tier's
    /// `above_input_tokens` is priced by the highest such tier, for all its tokens; a rate the
    /// tier leaves out keeps the base rate.
    #[serde(default)]
    pub context_tiers: Option<Vec<PriceTierSection>>,
}

/// One `context_tiers` entry.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceTierSection {
    /// The tier applies when the request's total input is above this many tokens.
    pub above_input_tokens: u64,
    /// Uncached input rate in the tier.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub input_micro_usd_per_token: Option<f64>,
    /// Cache-read rate in the tier.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cache_read_micro_usd_per_token: Option<f64>,
    /// Cache-write rate in the tier.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub cache_write_micro_usd_per_token: Option<f64>,
    /// Output rate in the tier.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub output_micro_usd_per_token: Option<f64>,
}

/// The prices of one model, in micro-USD per token.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices {
    pub input: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub output: Option<f64>,
    /// Long-context tiers, strictly ascending by `above_input_tokens` (checked at load).
    pub tiers: Vec<PriceTier>,
}

/// Rates that replace the base ones when a request's total input is above
/// `above_input_tokens`; `None` keeps the base rate.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PriceTier {
    pub above_input_tokens: u64,
    pub input: Option<f64>,
    pub cache_read: Option<f64>,
    pub cache_write: Option<f64>,
    pub output: Option<f64>,
}

/// Tokens of one request in the four non-overlapping buckets the providers bill. `input` is
/// the uncached part only; `output` includes reasoning tokens (billed as output everywhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub output: u64,
}

impl Tokens {
    /// Everything the model read: uncached + cache read + cache write. What decides the tier.
    pub fn total_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }
}

/// One of the four token buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Input,
    CacheRead,
    CacheWrite,
    Output,
}

impl Bucket {
    /// The bucket's name, as used in reasons and column names.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Input => "input",
            Bucket::CacheRead => "cache_read",
            Bucket::CacheWrite => "cache_write",
            Bucket::Output => "output",
        }
    }
}

/// Why a request has no cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    /// Neither the config nor the built-in table prices this provider's model.
    #[error("no price for the model")]
    NoPrice,
    /// The model is priced, but not for a bucket that has tokens.
    #[error("no {} rate for the model", .0.as_str())]
    MissingRate(Bucket),
}

impl CostError {
    /// A short, stable reason for the ledger: `no_price`, `no_input_rate`,
    /// `no_cache_read_rate`, `no_cache_write_rate` or `no_output_rate`.
    pub fn reason(&self) -> &'static str {
        match self {
            CostError::NoPrice => "no_price",
            CostError::MissingRate(Bucket::Input) => "no_input_rate",
            CostError::MissingRate(Bucket::CacheRead) => "no_cache_read_rate",
            CostError::MissingRate(Bucket::CacheWrite) => "no_cache_write_rate",
            CostError::MissingRate(Bucket::Output) => "no_output_rate",
        }
    }
}

impl Prices {
    /// The most `input_tokens` of prompt and `output_tokens` of completion can cost, whatever
    /// the buckets and tier turn out to be: every input token at the dearest input-side rate
    /// (uncached, cache read or cache write) of any tier, every output token at the dearest
    /// output rate of any tier. `None` when the model has no input or no output rate, so no
    /// bound exists (a budget cannot be kept on it). Budgets reserve this before a request goes
    /// upstream.
    pub fn worst_case_micro_usd(&self, input_tokens: u64, output_tokens: u64) -> Option<f64> {
        let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, None) => x,
            (None, y) => y,
        };
        let mut input = self.input?;
        let mut output = self.output?;
        input = max(Some(input), max(self.cache_read, self.cache_write)).unwrap_or(input);
        for t in &self.tiers {
            input =
                max(Some(input), max(t.input, max(t.cache_read, t.cache_write))).unwrap_or(input);
            output = max(Some(output), t.output).unwrap_or(output);
        }
        Some(input * input_tokens as f64 + output * output_tokens as f64)
    }

    /// The cost of `t` in micro-USD. The tier is chosen by the total input; every bucket with
    /// tokens needs a rate (the tier's, else the base one), or the cost is unknown.
    pub fn cost_micro_usd(&self, t: &Tokens) -> Result<f64, CostError> {
        let total = t.total_input();
        let tier = self
            .tiers
            .iter()
            .rev()
            .find(|tier| total > tier.above_input_tokens);
        let rate = |bucket: Bucket| -> Option<f64> {
            let (base, tiered) = match bucket {
                Bucket::Input => (self.input, tier.and_then(|x| x.input)),
                Bucket::CacheRead => (self.cache_read, tier.and_then(|x| x.cache_read)),
                Bucket::CacheWrite => (self.cache_write, tier.and_then(|x| x.cache_write)),
                Bucket::Output => (self.output, tier.and_then(|x| x.output)),
            };
            tiered.or(base)
        };
        let mut cost = 0.0;
        for (bucket, tokens) in [
            (Bucket::Input, t.input),
            (Bucket::CacheRead, t.cache_read),
            (Bucket::CacheWrite, t.cache_write),
            (Bucket::Output, t.output),
        ] {
            if tokens == 0 {
                continue;
            }
            let r = rate(bucket).ok_or(CostError::MissingRate(bucket))?;
            cost += tokens as f64 * r;
        }
        Ok(cost)
    }

    /// Prices from a `pricing:` section (already checked by [`check`]).
    pub fn from_section(s: &PricingSection) -> Prices {
        Prices {
            input: s.input_micro_usd_per_token,
            cache_read: s.cache_read_micro_usd_per_token,
            cache_write: s.cache_write_micro_usd_per_token,
            output: s.output_micro_usd_per_token,
            tiers: s
                .context_tiers
                .iter()
                .flatten()
                .map(|t| PriceTier {
                    above_input_tokens: t.above_input_tokens,
                    input: t.input_micro_usd_per_token,
                    cache_read: t.cache_read_micro_usd_per_token,
                    cache_write: t.cache_write_micro_usd_per_token,
                    output: t.output_micro_usd_per_token,
                })
                .collect(),
        }
    }
}

/// Where in a `pricing:` section a problem is: the keys below `pricing`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PricingPath {
    /// A base rate (`input_micro_usd_per_token`).
    Rate(&'static str),
    /// A tier's field (`context_tiers[i].<field>`).
    Tier(usize, &'static str),
}

impl std::fmt::Display for PricingPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PricingPath::Rate(name) => f.write_str(name),
            PricingPath::Tier(i, name) => write!(f, "context_tiers[{i}].{name}"),
        }
    }
}

/// Every problem of a `pricing:` section: a rate that is negative or not a finite number, and
/// tiers that are not strictly ascending. Serde has already checked types and field names.
pub(crate) fn check(s: &PricingSection) -> Vec<(PricingPath, String)> {
    let mut problems = Vec::new();
    let rate_problem = |v: Option<f64>| -> Option<String> {
        let v = v?;
        if !v.is_finite() {
            Some(format!("must be a finite number, not {v}"))
        } else if v < 0.0 {
            Some(format!("must not be negative (got {v})"))
        } else {
            None
        }
    };
    for (name, v) in rates_of(
        s.input_micro_usd_per_token,
        s.cache_read_micro_usd_per_token,
        s.cache_write_micro_usd_per_token,
        s.output_micro_usd_per_token,
    ) {
        if let Some(m) = rate_problem(v) {
            problems.push((PricingPath::Rate(name), m));
        }
    }
    let mut previous: Option<u64> = None;
    for (i, t) in s.context_tiers.iter().flatten().enumerate() {
        for (name, v) in rates_of(
            t.input_micro_usd_per_token,
            t.cache_read_micro_usd_per_token,
            t.cache_write_micro_usd_per_token,
            t.output_micro_usd_per_token,
        ) {
            if let Some(m) = rate_problem(v) {
                problems.push((PricingPath::Tier(i, name), m));
            }
        }
        if let Some(p) = previous.filter(|p| t.above_input_tokens <= *p) {
            problems.push((
                PricingPath::Tier(i, "above_input_tokens"),
                format!(
                    "must be above the previous tier's {p} (`context_tiers` go in strictly ascending order)"
                ),
            ));
        }
        previous = Some(t.above_input_tokens);
    }
    problems
}

fn rates_of(
    input: Option<f64>,
    cache_read: Option<f64>,
    cache_write: Option<f64>,
    output: Option<f64>,
) -> [(&'static str, Option<f64>); 4] {
    [
        ("input_micro_usd_per_token", input),
        ("cache_read_micro_usd_per_token", cache_read),
        ("cache_write_micro_usd_per_token", cache_write),
        ("output_micro_usd_per_token", output),
    ]
}

// ----- The built-in table.

/// The text of the built-in price table, embedded at build time.
const BUILTIN_TEXT: &str = include_str!("../data/prices.yaml");

/// `config/data/prices.yaml` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuiltinFile {
    taken: String,
    /// The price pages the table was read from, for whoever updates it.
    sources: Vec<String>,
    providers: IndexMap<String, IndexMap<String, PricingSection>>,
}

/// The built-in table, parsed: provider id -> model id -> prices.
#[derive(Debug, Default)]
struct BuiltinTable {
    taken: String,
    providers: HashMap<String, HashMap<String, Prices>>,
}

/// The table parsed and checked, or every problem found (for the test that guards the file).
fn parse_builtin(text: &str) -> Result<BuiltinTable, Vec<String>> {
    let file: BuiltinFile = serde_yaml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    if file.taken.trim().is_empty() || file.sources.is_empty() {
        problems.push("the table needs `taken:` (a date) and `sources:` (the price pages)".into());
    }
    let mut providers = HashMap::new();
    for (provider, models) in &file.providers {
        if registry::find(provider).is_none() {
            problems.push(format!("`{provider}` is not a built-in provider id"));
        }
        let mut table = HashMap::new();
        for (model, section) in models {
            for (path, m) in check(section) {
                problems.push(format!("{provider}/{model}: `{path}` {m}"));
            }
            table.insert(model.clone(), Prices::from_section(section));
        }
        providers.insert(provider.clone(), table);
    }
    if problems.is_empty() {
        Ok(BuiltinTable {
            taken: file.taken,
            providers,
        })
    } else {
        Err(problems)
    }
}

/// The built-in table, parsed on first use. A table that does not parse (a test forbids it)
/// is empty, so every model is of unknown price rather than the process failing.
fn builtin() -> &'static BuiltinTable {
    static TABLE: OnceLock<BuiltinTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        parse_builtin(BUILTIN_TEXT).unwrap_or_else(|problems| {
            log::error!(
                "the built-in price table does not parse; every price is unknown: {}",
                problems.join("; ")
            );
            BuiltinTable::default()
        })
    })
}

/// The date the built-in price table was taken from the providers' price pages.
pub fn builtin_prices_taken() -> &'static str {
    &builtin().taken
}

/// The prices for `model_id` in `table`: the exact id, else the longest table id that
/// `model_id` extends with `-` and a snapshot suffix ([`is_snapshot`]).
fn find_in<'a>(table: &'a HashMap<String, Prices>, model_id: &str) -> Option<&'a Prices> {
    if let Some(p) = table.get(model_id) {
        return Some(p);
    }
    let mut rest = model_id;
    // Shorten from the right so the longest table id that matches wins.
    while let Some(i) = rest.rfind('-') {
        rest = &rest[..i];
        if is_snapshot(&model_id[i + 1..]) {
            if let Some(p) = table.get(rest) {
                return Some(p);
            }
        }
    }
    None
}

/// Whether `suffix` names a dated snapshot of a model rather than another model: digits only,
/// at least three (`20250929` for Anthropic, `0709` for xAI, `001` for Gemini), or an ISO
/// date (`2024-08-06` for OpenAI). Anything else (`mini`, `pro`, a one- or two-digit version
/// like Anthropic's `-5` in `claude-opus-4-5`) is a different model, whose price is unknown
/// unless the table lists it: `gpt-5-pro` is not priced as `gpt-5`, nor `claude-opus-4-5` as
/// `claude-opus-4`.
fn is_snapshot(suffix: &str) -> bool {
    let b = suffix.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    (b.len() >= 3 && digits(b))
        || (b.len() == 10
            && digits(&b[..4])
            && b[4] == b'-'
            && digits(&b[5..7])
            && b[7] == b'-'
            && digits(&b[8..]))
}

/// One provider's prices: the user's `pricing:` entries, then the built-in table of the
/// registry provider with the same id.
#[derive(Debug, Clone, Default)]
struct ProviderPrices {
    user: HashMap<String, Prices>,
    builtin: Option<&'static HashMap<String, Prices>>,
}

/// Every price the router knows, built from one config snapshot.
///
/// Lookup order for `(provider, model)`: the provider's own `models: - id: ... pricing:` (the
/// exact id, then a dated snapshot of a listed id), then the built-in table for the provider's
/// id when it is a built-in provider (same two steps). A user entry replaces the built-in one
/// for that model as a whole; rates are not merged. A provider that is not built in (a local
/// server under its own id) has only what its file says.
#[derive(Debug, Clone, Default)]
pub struct PriceBook {
    providers: HashMap<String, ProviderPrices>,
}

impl PriceBook {
    /// The prices of every provider of `cfg`. Cheap: a few small maps cloned; the built-in
    /// table is shared.
    pub fn from_config(cfg: &Config) -> PriceBook {
        PriceBook::from_providers(cfg.providers.iter().map(|p| p.as_ref()))
    }

    /// The same from a list of providers.
    pub fn from_providers<'a>(providers: impl IntoIterator<Item = &'a Provider>) -> PriceBook {
        let mut map = HashMap::new();
        for p in providers {
            let user = p
                .pricing
                .iter()
                .map(|(m, prices)| (m.clone(), prices.clone()))
                .collect();
            map.entry(p.id.clone()).or_insert(ProviderPrices {
                user,
                builtin: builtin_for(&p.id),
            });
        }
        PriceBook { providers: map }
    }

    /// The prices of `upstream_model` on `provider` (the model id sent upstream), or `None`
    /// when unknown. A provider this book was not built with falls back to the built-in table
    /// under its id.
    pub fn lookup(&self, provider: &str, upstream_model: &str) -> Option<&Prices> {
        match self.providers.get(provider) {
            Some(p) => find_in(&p.user, upstream_model)
                .or_else(|| p.builtin.and_then(|b| find_in(b, upstream_model))),
            None => builtin_for(provider).and_then(|b| find_in(b, upstream_model)),
        }
    }

    /// The cost of `tokens` on `provider`'s `upstream_model`, in micro-USD.
    pub fn cost_micro_usd(
        &self,
        provider: &str,
        upstream_model: &str,
        tokens: &Tokens,
    ) -> Result<f64, CostError> {
        self.lookup(provider, upstream_model)
            .ok_or(CostError::NoPrice)?
            .cost_micro_usd(tokens)
    }
}

/// The built-in prices of a built-in provider id.
fn builtin_for(provider: &str) -> Option<&'static HashMap<String, Prices>> {
    registry::find(provider)?;
    builtin().providers.get(provider)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_case_takes_the_dearest_rates_of_every_tier() {
        let p = Prices {
            input: Some(1.0),
            cache_read: Some(0.1),
            cache_write: Some(1.25),
            output: Some(6.0),
            tiers: vec![PriceTier {
                above_input_tokens: 200_000,
                input: Some(2.0),
                output: Some(9.0),
                ..PriceTier::default()
            }],
        };
        assert_eq!(
            p.worst_case_micro_usd(10, 100),
            Some(2.0 * 10.0 + 9.0 * 100.0)
        );
        // Whatever the split, a real cost never exceeds the bound.
        let real = p
            .cost_micro_usd(&Tokens {
                input: 4,
                cache_read: 3,
                cache_write: 3,
                output: 100,
            })
            .unwrap();
        assert!(real <= 2.0 * 10.0 + 9.0 * 100.0);
        let no_output = Prices {
            input: Some(1.0),
            ..Prices::default()
        };
        assert_eq!(no_output.worst_case_micro_usd(1, 1), None);
        let free = Prices {
            input: Some(0.0),
            output: Some(0.0),
            ..Prices::default()
        };
        assert_eq!(free.worst_case_micro_usd(1_000, 1_000), Some(0.0));
    }

    fn prices(input: f64, cache_read: f64, cache_write: f64, output: f64) -> Prices {
        Prices {
            input: Some(input),
            cache_read: Some(cache_read),
            cache_write: Some(cache_write),
            output: Some(output),
            tiers: Vec::new(),
        }
    }

    fn tokens(input: u64, cache_read: u64, cache_write: u64, output: u64) -> Tokens {
        Tokens {
            input,
            cache_read,
            cache_write,
            output,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6 * b.abs().max(1.0)
    }

    #[test]
    fn cost_adds_the_four_buckets() {
        let p = prices(1.0, 0.1, 1.25, 6.0);
        let c = p.cost_micro_usd(&tokens(1000, 2000, 400, 300)).unwrap();
        assert!(close(c, 1000.0 + 200.0 + 500.0 + 1800.0), "{c}");
        assert_eq!(p.cost_micro_usd(&Tokens::default()), Ok(0.0));
    }

    #[test]
    fn missing_rate_is_unknown_only_when_the_bucket_has_tokens() {
        let p = Prices {
            input: Some(2.0),
            output: Some(8.0),
            ..Prices::default()
        };
        assert_eq!(p.cost_micro_usd(&tokens(10, 0, 0, 5)), Ok(60.0));
        let e = p.cost_micro_usd(&tokens(10, 3, 0, 5)).unwrap_err();
        assert_eq!(e, CostError::MissingRate(Bucket::CacheRead));
        assert_eq!(e.reason(), "no_cache_read_rate");
        let e = p.cost_micro_usd(&tokens(10, 0, 1, 5)).unwrap_err();
        assert_eq!(e.reason(), "no_cache_write_rate");
        let out_only = Prices {
            input: Some(1.0),
            ..Prices::default()
        };
        assert_eq!(
            out_only.cost_micro_usd(&tokens(1, 0, 0, 1)).unwrap_err(),
            CostError::MissingRate(Bucket::Output)
        );
        assert_eq!(CostError::NoPrice.reason(), "no_price");
        assert_eq!(
            CostError::MissingRate(Bucket::Input).reason(),
            "no_input_rate"
        );
        assert_eq!(
            CostError::MissingRate(Bucket::Output).reason(),
            "no_output_rate"
        );
    }

    #[test]
    fn explicit_zero_is_free() {
        let p = prices(0.0, 0.0, 0.0, 0.0);
        assert_eq!(p.cost_micro_usd(&tokens(5000, 10, 10, 900)), Ok(0.0));
    }

    #[test]
    fn the_highest_tier_below_the_total_input_prices_every_token() {
        let p = Prices {
            input: Some(1.0),
            cache_read: Some(0.1),
            cache_write: None,
            output: Some(6.0),
            tiers: vec![
                PriceTier {
                    above_input_tokens: 200_000,
                    input: Some(2.0),
                    output: Some(9.0),
                    ..PriceTier::default()
                },
                PriceTier {
                    above_input_tokens: 500_000,
                    input: Some(3.0),
                    cache_read: Some(0.3),
                    ..PriceTier::default()
                },
            ],
        };
        // Exactly at the threshold: base rates.
        let c = p.cost_micro_usd(&tokens(200_000, 0, 0, 10)).unwrap();
        assert!(close(c, 200_000.0 + 60.0), "{c}");
        // Cache reads count toward the threshold, and the tier reprices them too (here the
        // first tier keeps the base cache-read rate).
        let c = p.cost_micro_usd(&tokens(100_000, 100_001, 0, 10)).unwrap();
        assert!(close(c, 200_000.0 + 10_000.1 + 90.0), "{c}");
        // Above the second tier: its rates, the base output (the second tier sets none).
        let c = p.cost_micro_usd(&tokens(400_000, 200_000, 0, 10)).unwrap();
        assert!(close(c, 1_200_000.0 + 60_000.0 + 60.0), "{c}");
        // A tier that sets no cache-write rate inherits the base one: missing here too.
        assert_eq!(
            p.cost_micro_usd(&tokens(300_000, 0, 1, 0)),
            Err(CostError::MissingRate(Bucket::CacheWrite))
        );
    }

    #[test]
    fn snapshot_suffixes() {
        for s in ["20250929", "0709", "001", "2024-08-06"] {
            assert!(is_snapshot(s), "{s}");
        }
        for s in [
            "mini",
            "pro",
            "5",
            "45",
            "latest",
            "2024-8-06",
            "preview",
            "",
        ] {
            assert!(!is_snapshot(s), "{s}");
        }
    }

    #[test]
    fn prefix_matching_takes_the_longest_listed_id_with_a_snapshot_suffix() {
        let mut table = HashMap::new();
        table.insert("gpt-4o".to_string(), prices(2.5, 1.25, 0.0, 10.0));
        table.insert("gpt-4o-mini".to_string(), prices(0.15, 0.075, 0.0, 0.6));
        table.insert("claude-opus-4".to_string(), prices(15.0, 1.5, 18.75, 75.0));
        let input = |m: &str| find_in(&table, m).and_then(|p| p.input);
        assert_eq!(input("gpt-4o"), Some(2.5));
        assert_eq!(input("gpt-4o-2024-08-06"), Some(2.5));
        assert_eq!(input("gpt-4o-mini-2024-07-18"), Some(0.15));
        assert_eq!(input("claude-opus-4-20250514"), Some(15.0));
        // Other models that merely start with a listed id are not priced as it.
        assert_eq!(input("gpt-4o-audio-preview"), None);
        assert_eq!(input("claude-opus-4-5"), None);
        assert_eq!(input("claude-opus-4-5-20251101"), None);
        assert_eq!(input("gpt-4"), None);
    }

    #[test]
    fn check_reports_bad_rates_and_unordered_tiers() {
        let s = PricingSection {
            input_micro_usd_per_token: Some(-1.0),
            output_micro_usd_per_token: Some(f64::NAN),
            context_tiers: Some(vec![
                PriceTierSection {
                    above_input_tokens: 200_000,
                    cache_read_micro_usd_per_token: Some(f64::INFINITY),
                    ..PriceTierSection::default()
                },
                PriceTierSection {
                    above_input_tokens: 200_000,
                    ..PriceTierSection::default()
                },
            ]),
            ..PricingSection::default()
        };
        let p = check(&s);
        assert_eq!(p.len(), 4, "{p:#?}");
        assert_eq!(p[0].0, PricingPath::Rate("input_micro_usd_per_token"));
        assert!(p[0].1.contains("must not be negative"), "{}", p[0].1);
        assert_eq!(p[1].0, PricingPath::Rate("output_micro_usd_per_token"));
        assert!(p[1].1.contains("finite"), "{}", p[1].1);
        assert_eq!(
            p[2].0,
            PricingPath::Tier(0, "cache_read_micro_usd_per_token")
        );
        assert_eq!(p[3].0, PricingPath::Tier(1, "above_input_tokens"));
        assert!(p[3].1.contains("strictly ascending"), "{}", p[3].1);
        assert_eq!(p[3].0.to_string(), "context_tiers[1].above_input_tokens");
    }

    /// The embedded table parses, every entry is valid, every provider is a built-in one, and
    /// it has a date and sources.
    #[test]
    fn builtin_table_parses_and_is_valid() {
        let table = match parse_builtin(BUILTIN_TEXT) {
            Ok(t) => t,
            Err(problems) => panic!("config/data/prices.yaml: {problems:#?}"),
        };
        assert!(!table.taken.is_empty());
        let file: BuiltinFile = serde_yaml::from_str(BUILTIN_TEXT).unwrap();
        assert!(!file.sources.is_empty());
        for s in &file.sources {
            assert!(url::Url::parse(s).is_ok(), "{s}");
        }
        for (provider, models) in &table.providers {
            let entry = registry::find(provider).unwrap();
            for (model, p) in models {
                // Every priced model is one the registry lists, so the table never drifts
                // away from what bitrouter routes by default.
                assert!(
                    entry.models.contains(&model.as_str()),
                    "{provider}/{model} is not in the registry"
                );
                assert!(
                    p.input.is_some() && p.output.is_some(),
                    "{provider}/{model}"
                );
            }
        }
        assert_eq!(builtin_prices_taken(), table.taken);
    }

    #[test]
    fn builtin_table_prices_known_models() {
        let openai = builtin_for("openai").unwrap();
        let gpt4o = find_in(openai, "gpt-4o-2024-08-06").unwrap();
        assert_eq!(gpt4o.input, Some(2.5));
        // OpenAI charges nothing for writing its prompt cache.
        assert_eq!(gpt4o.cache_write, Some(0.0));
        let anthropic = builtin_for("anthropic").unwrap();
        let sonnet = find_in(anthropic, "claude-sonnet-4-5-20250929").unwrap();
        assert_eq!(sonnet.cache_write, Some(3.75));
        assert_eq!(sonnet.tiers[0].above_input_tokens, 200_000);
        let google = builtin_for("google").unwrap();
        let pro = find_in(google, "gemini-2.5-pro").unwrap();
        assert_eq!(pro.tiers[0].input, Some(2.5));
        assert!(builtin_for("ollama").is_none());
        assert!(builtin_for("nope").is_none());
    }
}
