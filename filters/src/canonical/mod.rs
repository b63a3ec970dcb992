//! The protocol-neutral model every codec converts to and from: one hub, N codecs.

pub mod error;
pub mod request;
pub mod response;
pub mod stream;
pub mod translate;

pub use error::{CanonicalError, ErrorKind};
pub use request::*;
pub use response::{ChatResponse, StopReason, Usage};
pub use stream::{PartKind, StreamEvent};
pub use translate::{EncodeOptions, Encoded, ResponseContext};
