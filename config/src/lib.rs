//! `bitrouter.yaml` (and the access policies in `policies/` beside it): schema, environment resolution, the built-in provider registry, validation
//! with line-precise errors, and the routing table that turns a request's `model` into upstream
//! targets.
//!
//! Everything here is pure (no sockets, no process-global state): the environment is read through
//! [`EnvSource`] so tests pass a map, and files are read only by [`load`].

pub mod access;
pub mod capabilities;
pub mod env;
pub mod listen;
pub mod policy;
pub mod pricing;
pub mod registry;
pub mod replicas;
pub mod routes;
pub mod routing;
pub mod schema;
pub mod validate;

mod detect;
mod glob;
mod guardrails;
mod parse;
mod protocol;
mod resolve;
mod resolved;
mod spans;

pub use access::{
    policies_dir, valid_policy_id, AccessPolicies, AccessPolicy, EffectivePolicy, ModelDenied,
    ToolDenied, POLICIES_DIR,
};
pub use capabilities::{CapabilityOverrides, MaxTokensParam, ModelCapabilities, ThinkingControl};
pub use env::{EnvSource, ExpandError, MapEnv, ProcessEnv};
pub use listen::{AccessLog, AccessLogFormat, Listener, TlsFiles};
pub use policy::{
    Account, AccountStrategy, HealthCheck, HealthCheckKind, HealthPolicy, Preset, RetryPolicy,
    SortBy, Timeouts, Variant, MAX_DURATION_SECS,
};
pub use pricing::{Bucket, CostError, PriceBook, PriceTier, Prices, Tokens};
pub use protocol::{AuthStyle, Protocol};
pub use registry::RegistryEntry;
pub use replicas::{ApiBase, Replica, ReplicaStrategy};
pub use resolved::*;
pub use routing::{ListedModel, Resolution, ResolvedVia, RouteError, RoutingTable, Target};
pub use schema::{json_schema, ConfigFile};
pub use validate::{ConfigError, Problem};
