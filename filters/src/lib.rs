//! Pure transforms the proxy's phases call: reading the few request fields routing needs,
//! rewriting the model, and encoding errors in each wire protocol's own format.
//!
//! Nothing here does I/O, so every function is unit-testable without a server and safe to
//! fuzz: all input is untrusted bytes and every failure is a typed error, never a panic.

pub mod body;
pub mod canonical;
pub mod embeddings;
pub mod guard;
pub mod json_strings;
pub mod multipart;
pub mod protocol;
pub mod sse;
pub mod stream;
pub mod tokens;
pub mod translate;
pub mod usage;

pub use bitrouter_config::Protocol;
