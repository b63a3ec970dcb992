//! bitrouter's proxy: the Pingora service, its request path, the CLI, metrics and admin
//! endpoints.
//!
//! The request path (see [`gateway`]): `request_filter` classifies the path
//! ([`surface`]), checks the credential and reads the body ([`phases::request`]), resolves the
//! model to upstream targets ([`phases::route`]), calls the upstream through Pingora's connector
//! and streams the answer back ([`phases::upstream`]); `logging` records one line and the
//! metrics ([`phases::logging`]). Every error is rendered once, at the edge, in the caller's own
//! protocol ([`render`]).

pub mod access_log;
pub mod admin;
/// Only with mimalloc as the allocator (proxy/src/main.rs), which it works around.
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
pub mod alloc_tick;
pub mod balance;
pub mod cli;
pub mod daemon;
pub mod downstream;
pub mod endpoints;
pub mod error;
pub mod gateway;
pub mod govern;
pub mod guardrails;
pub mod hooks;
pub mod keys;
pub mod ledger;
pub mod linger;
pub mod listeners;
pub mod logger;
pub mod metering;
pub mod metrics;
pub mod phases;
pub mod render;
pub mod rewound;
pub mod routes;
pub mod server;
pub mod state;
pub mod surface;
pub mod upstream;
