//! Protocol-neutral stream events: what stream decoders emit and stream encoders consume.
//!
//! Parts are numbered by `index`, their position in the response's content, assigned by the
//! decoder in order of first appearance. A part is opened by [`StreamEvent::PartStart`],
//! receives deltas, and is closed by [`StreamEvent::PartStop`]; at most one text or thinking
//! part is open at a time, but tool calls of a parallel batch may interleave (OpenAI streams
//! them by tool index).

use super::error::CanonicalError;
use super::response::{StopReason, Usage};

#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// The response began. `usage` carries input tokens when the protocol reports them early.
    Start {
        id: String,
        model: String,
        created: u64,
        usage: Option<Usage>,
    },
    PartStart {
        index: usize,
        kind: PartKind,
    },
    TextDelta {
        index: usize,
        text: String,
    },
    ThinkingDelta {
        index: usize,
        text: String,
    },
    /// Anthropic's thinking signature (arrives as its own delta at the end of the block).
    ThinkingSignature {
        index: usize,
        signature: String,
    },
    /// A fragment of a tool call's JSON arguments.
    ToolArgsDelta {
        index: usize,
        json: String,
    },
    PartStop {
        index: usize,
    },
    /// Usage so far (cumulative; merge with [`Usage::merge`]).
    Usage(Usage),
    /// Why generation stopped (may precede the final usage report).
    Finish {
        stop: StopReason,
    },
    /// An error reported inside the stream.
    Error(CanonicalError),
    /// The stream ended normally.
    Done,
}

/// What a part being streamed holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartKind {
    Text,
    Thinking,
    /// Anthropic `redacted_thinking`, with its opaque data.
    RedactedThinking {
        data: String,
    },
    ToolCall {
        id: String,
        name: String,
    },
}
