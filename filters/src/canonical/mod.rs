//! The protocol-neutral model every codec converts to and from.

pub mod error;

pub use error::{CanonicalError, ErrorKind};
