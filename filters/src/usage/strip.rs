//! [`UsageChunkStrip`]: reads an OpenAI chat stream's usage and removes the usage-only chunk a
//! client did not ask for.

use super::tap::{Reader, SseSplit};
use super::Usage;
use crate::sse::{SseError, DEFAULT_MAX_EVENT};
use bitrouter_config::Protocol;
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// For an OpenAI Chat Completions stream the router asked usage for on the client's behalf
/// ([`super::ask_stream_usage`]): records the usage and removes the usage-only chunk
/// (`"choices": []` with a `usage` object) the client did not ask for, passing every other byte
/// through unchanged. A chunk that carries usage beside choices (some compatible servers) is
/// kept: the client gets only the `usage` member it did not ask for, which OpenAI clients
/// accept.
///
/// Like [`crate::sse::SseFramer`], which it replaces on this path, it returns whole events only
/// (so an upstream that breaks mid-way leaves the client's stream at an event boundary),
/// zero-copy whenever a chunk holds whole events and no usage chunk.
#[derive(Debug)]
pub struct UsageChunkStrip {
    split: SseSplit,
    reader: Reader,
    /// Ranges of the current chunk to forward (reused).
    keep: Vec<Range<usize>>,
    max_event: usize,
    /// An event exceeded the cap: every later call fails the same way.
    failed: bool,
}

impl Default for UsageChunkStrip {
    fn default() -> Self {
        UsageChunkStrip::new()
    }
}

impl UsageChunkStrip {
    pub fn new() -> UsageChunkStrip {
        UsageChunkStrip::with_max_event(DEFAULT_MAX_EVENT)
    }

    /// A strip refusing to carry more than `max_event` bytes of one incomplete event.
    pub fn with_max_event(max_event: usize) -> UsageChunkStrip {
        UsageChunkStrip {
            split: SseSplit::new(max_event),
            reader: Reader::new(Protocol::ChatCompletions),
            keep: Vec::new(),
            max_event,
            failed: false,
        }
    }

    /// Adds `chunk`; returns the events it completes, less the usage-only chunk (empty when
    /// none). Errors like [`crate::sse::SseFramer::feed`] when one event exceeds the cap.
    pub fn feed(&mut self, chunk: Bytes) -> Result<Bytes, SseError> {
        if self.failed {
            return Err(SseError::TooLarge(self.max_event));
        }
        self.keep.clear();
        let mut carried = BytesMut::new();
        let mut dropped = false;
        let reader = &mut self.reader;
        let keep = &mut self.keep;
        self.split.feed(&chunk, &mut |event, range| {
            let usage_only = reader.sse_event(event);
            dropped |= usage_only;
            match range {
                _ if usage_only => {}
                Some(r) => keep.push(r),
                None => carried.extend_from_slice(event),
            }
        });
        if self.split.overflowed() {
            self.split.take_carry();
            self.failed = true;
            return Err(SseError::TooLarge(self.max_event));
        }
        // Zero-copy when the kept events are one run from the chunk's start.
        if carried.is_empty() && !dropped {
            return Ok(match self.keep.last() {
                Some(last) => chunk.slice(..last.end),
                None => Bytes::new(),
            });
        }
        if self.keep.is_empty() {
            return Ok(carried.freeze());
        }
        let mut out = carried;
        for r in &self.keep {
            out.extend_from_slice(&chunk[r.clone()]);
        }
        Ok(out.freeze())
    }

    /// The upstream ended: the bytes of an event it did not terminate (empty when none, or
    /// when that event was the usage-only chunk). The strip is reset for a new stream.
    pub fn finish(&mut self) -> Bytes {
        self.failed = false;
        let carry = self.split.take_carry();
        if carry.is_empty() || self.reader.sse_event(&carry) {
            return Bytes::new();
        }
        Bytes::from(carry)
    }

    /// The usage reported so far (`None` when nothing was).
    pub fn usage(&self) -> Option<Usage> {
        self.reader.usage()
    }
}
