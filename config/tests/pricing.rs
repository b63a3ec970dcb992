//! `pricing:` through the public API: loading, validation with positions, and the price book
//! layering a provider's own prices over the built-in table.

use bitrouter_config::{
    load_str, zero_config, Bucket, Config, CostError, MapEnv, PriceBook, Prices, Tokens,
};

fn env(pairs: &[(&str, &str)]) -> MapEnv {
    MapEnv::new(pairs.iter().copied())
}

fn ok(text: &str) -> Config {
    match load_str(text, "bitrouter.yaml", &env(&[])) {
        Ok(c) => c,
        Err(e) => panic!("expected the config to load, got:\n{e}"),
    }
}

/// (line, col, message) of every problem.
fn problems(text: &str) -> Vec<(usize, usize, String)> {
    match load_str(text, "bitrouter.yaml", &env(&[])) {
        Ok(c) => panic!("expected problems, got {c:#?}"),
        Err(e) => e
            .problems
            .into_iter()
            .map(|p| (p.line, p.col, p.message))
            .collect(),
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

const ISSUE_EXAMPLE: &str = "\
providers:
  custom:
    api_base: http://localhost:8000/v1
    models:
      - id: example-model
        pricing:
          input_micro_usd_per_token: 1.0
          cache_read_micro_usd_per_token: 0.1
          cache_write_micro_usd_per_token: 1.25
          output_micro_usd_per_token: 6.0
          context_tiers:
            - { above_input_tokens: 200000, input_micro_usd_per_token: 2.0, output_micro_usd_per_token: 9.0 }
      - id: unpriced-model
      - id: free-model
        pricing: { input_micro_usd_per_token: 0, output_micro_usd_per_token: 0 }
";

#[test]
fn the_documented_example_loads_and_prices_requests() {
    let cfg = ok(ISSUE_EXAMPLE);
    let book = PriceBook::from_config(&cfg);
    let p = book.lookup("custom", "example-model").unwrap();
    assert_eq!(p.input, Some(1.0));
    assert_eq!(p.tiers.len(), 1);
    assert_eq!(p.tiers[0].above_input_tokens, 200_000);
    assert_eq!(p.tiers[0].cache_read, None);

    let c = book
        .cost_micro_usd("custom", "example-model", &tokens(1000, 100, 10, 50))
        .unwrap();
    assert!((c - (1000.0 + 10.0 + 12.5 + 300.0)).abs() < 1e-9, "{c}");
    // Above the tier: its input and output rates, the base cache rates.
    let c = book
        .cost_micro_usd("custom", "example-model", &tokens(200_000, 1, 0, 10))
        .unwrap();
    assert!((c - (400_000.0 + 0.1 + 90.0)).abs() < 1e-6, "{c}");

    // A listed model without pricing, on a provider that is not built in: unknown.
    assert!(book.lookup("custom", "unpriced-model").is_none());
    assert_eq!(
        book.cost_micro_usd("custom", "unpriced-model", &tokens(1, 0, 0, 1)),
        Err(CostError::NoPrice)
    );
    // Explicit zeros are free; a bucket left out is unknown only when it has tokens.
    assert_eq!(
        book.cost_micro_usd("custom", "free-model", &tokens(100, 0, 0, 100)),
        Ok(0.0)
    );
    let e = book
        .cost_micro_usd("custom", "free-model", &tokens(100, 5, 0, 100))
        .unwrap_err();
    assert_eq!(e, CostError::MissingRate(Bucket::CacheRead));
    assert_eq!(e.reason(), "no_cache_read_rate");
}

#[test]
fn user_pricing_replaces_the_builtin_entry_for_that_model_only() {
    let cfg = ok("\
providers:
  openai:
    api_key: sk-test
    models:
      - id: gpt-4o
        pricing: { input_micro_usd_per_token: 5, output_micro_usd_per_token: 20 }
      - gpt-4o-mini
");
    let book = PriceBook::from_config(&cfg);
    let mine = book.lookup("openai", "gpt-4o").unwrap();
    assert_eq!(
        mine,
        &Prices {
            input: Some(5.0),
            output: Some(20.0),
            ..Prices::default()
        }
    );
    // Wholesale: the built-in cache rates are not merged in.
    assert_eq!(
        book.cost_micro_usd("openai", "gpt-4o", &tokens(0, 1, 0, 0)),
        Err(CostError::MissingRate(Bucket::CacheRead))
    );
    // A dated snapshot of the user's entry uses it too.
    assert_eq!(
        book.lookup("openai", "gpt-4o-2024-11-20").unwrap().input,
        Some(5.0)
    );
    // Other models keep the built-in table.
    let mini = book.lookup("openai", "gpt-4o-mini-2024-07-18").unwrap();
    assert_eq!(mini.input, Some(0.15));
    assert_eq!(mini.cache_write, Some(0.0));
}

#[test]
fn builtin_prices_follow_the_registry_id_not_the_base_url() {
    // A built-in provider pointed elsewhere (a mock, a proxy) keeps the built-in prices...
    let cfg = ok("\
providers:
  anthropic:
    api_base: http://127.0.0.1:9/v1
    api_key: k
  local:
    api_base: http://localhost:11434/v1
");
    let book = PriceBook::from_config(&cfg);
    let sonnet = book
        .lookup("anthropic", "claude-sonnet-4-5-20250929")
        .unwrap();
    assert_eq!(sonnet.cache_write, Some(3.75));
    // ... while a provider under its own id has only its own prices.
    assert!(book.lookup("local", "claude-sonnet-4-5").is_none());
    assert!(book.lookup("local", "gpt-4o").is_none());
    // A model the table does not know is unknown, not priced like a relative.
    assert!(book.lookup("anthropic", "claude-opus-4-5").is_none());
    assert!(book.lookup("openai", "gpt-5-pro").is_none());
}

#[test]
fn zero_config_providers_use_the_builtin_table() {
    let cfg = zero_config(&env(&[("OPENAI_API_KEY", "sk-x"), ("GEMINI_API_KEY", "g")]));
    let book = PriceBook::from_config(&cfg);
    let c = book
        .cost_micro_usd("openai", "gpt-5-mini", &tokens(1_000_000, 0, 0, 0))
        .unwrap();
    assert!((c - 250_000.0).abs() < 1e-6, "{c}");
    let pro = book.lookup("google", "gemini-2.5-pro").unwrap();
    // Gemini's long-context tier: 2x input, 1.5x output above 200K input tokens.
    let c = pro.cost_micro_usd(&tokens(300_000, 0, 0, 1000)).unwrap();
    assert!((c - (750_000.0 + 15_000.0)).abs() < 1e-6, "{c}");
    // A provider the book was not built with still finds the built-in table by its id.
    assert!(book.lookup("anthropic", "claude-haiku-4-5").is_some());
    assert!(book.lookup("ollama", "llama3.1").is_none());
}

#[test]
fn the_first_entry_of_an_id_wins() {
    let cfg = ok("\
providers:
  p:
    api_base: http://x
    models:
      - id: m
        pricing: { input_micro_usd_per_token: 1 }
      - id: m
        pricing: { input_micro_usd_per_token: 2 }
");
    let book = PriceBook::from_config(&cfg);
    assert_eq!(book.lookup("p", "m").unwrap().input, Some(1.0));
}

#[test]
fn bad_prices_are_reported_at_their_value() {
    let p = problems(
        "\
providers:
  p:
    api_base: http://x
    models:
      - id: m
        pricing:
          input_micro_usd_per_token: -1
          output_micro_usd_per_token: .nan
          context_tiers:
            - above_input_tokens: 200000
              cache_read_micro_usd_per_token: .inf
            - above_input_tokens: 100000
              input_micro_usd_per_token: 2
",
    );
    assert_eq!(
        p,
        [
            (
                7,
                38,
                "`models[0].pricing.input_micro_usd_per_token` of provider `p` must not be negative (got -1)"
                    .to_string()
            ),
            (
                8,
                39,
                "`models[0].pricing.output_micro_usd_per_token` of provider `p` must be a finite number, not NaN"
                    .to_string()
            ),
            (
                11,
                47,
                "`models[0].pricing.context_tiers[0].cache_read_micro_usd_per_token` of provider `p` must be a finite number, not inf"
                    .to_string()
            ),
            (
                12,
                35,
                "`models[0].pricing.context_tiers[1].above_input_tokens` of provider `p` must be above the previous tier's 200000 (`context_tiers` go in strictly ascending order)"
                    .to_string()
            ),
        ]
    );
}

#[test]
fn unknown_or_mistyped_pricing_fields_are_errors() {
    let p = problems(
        "\
providers:
  p:
    api_base: http://x
    models:
      - id: m
        pricing:
          input_usd_per_token: 1
",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!((p[0].0, p[0].1), (7, 11), "{p:#?}");
    assert!(
        p[0].2.contains("unknown field `input_usd_per_token`"),
        "{p:#?}"
    );

    let p = problems(
        "\
providers:
  p:
    api_base: http://x
    models:
      - id: m
        pricing:
          context_tiers:
            - above_input_tokens: -5
",
    );
    assert_eq!(p.len(), 1, "{p:#?}");
    assert_eq!(p[0].0, 8, "{p:#?}");
    assert!(p[0].2.contains("above_input_tokens"), "{p:#?}");
}
