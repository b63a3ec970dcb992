//! Stream translation: upstream SSE bytes in, the client protocol's stream bytes out, chunk by
//! chunk.
//!
//! `SseParser` (any chunk boundary) -> the upstream protocol's `StreamDecoder` (one SSE event to
//! canonical events) -> the client protocol's `StreamEncoder` (canonical events to wire bytes).
//! Each stage keeps its state in fields, so the translator holds no more than the event being
//! received plus what the client protocol needs to summarise at the end. Output is produced as
//! soon as an input event completes: the first content byte reaches the client without waiting
//! for the stream to end.

use crate::canonical::{CanonicalError, ErrorKind, ResponseContext, StreamEvent};
use crate::protocol::{StreamDecoder, StreamEncoder};
use crate::sse::{SseEvent, SseParser};
use bitrouter_config::Protocol;

/// Translates one stream from `upstream`'s protocol to the client's.
pub struct StreamTranslator {
    parser: SseParser,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    events: Vec<SseEvent>,
    canonical: Vec<StreamEvent>,
    /// The stream has ended (normally or with an error); further input is ignored.
    ended: bool,
}

impl StreamTranslator {
    pub fn new(upstream: Protocol, client: Protocol, ctx: &ResponseContext) -> StreamTranslator {
        StreamTranslator {
            parser: SseParser::default(),
            decoder: StreamDecoder::new(upstream, ctx),
            encoder: StreamEncoder::new(client, ctx),
            events: Vec::new(),
            canonical: Vec::new(),
            ended: false,
        }
    }

    /// Feeds a chunk of upstream bytes; appends the client bytes it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.events.clear();
        if let Err(e) = self.parser.feed(chunk, &mut self.events) {
            let error = CanonicalError::new(ErrorKind::BadGateway, e.to_string());
            self.emit(&[StreamEvent::Error(error)], out);
            return;
        }
        let events = std::mem::take(&mut self.events);
        for event in &events {
            self.canonical.clear();
            if let Err(e) = self.decoder.decode(event, &mut self.canonical) {
                self.canonical.push(StreamEvent::Error(e));
            }
            let canonical = std::mem::take(&mut self.canonical);
            self.emit(&canonical, out);
            self.canonical = canonical;
            if self.ended {
                break;
            }
        }
        self.events = events;
    }

    /// The upstream ended (EOF); appends the closing bytes to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.events.clear();
        self.parser.finish(&mut self.events);
        let events = std::mem::take(&mut self.events);
        for event in &events {
            self.canonical.clear();
            if let Err(e) = self.decoder.decode(event, &mut self.canonical) {
                self.canonical.push(StreamEvent::Error(e));
            }
            let canonical = std::mem::take(&mut self.canonical);
            self.emit(&canonical, out);
            if self.ended {
                return;
            }
        }
        self.canonical.clear();
        self.decoder.finish(&mut self.canonical);
        let canonical = std::mem::take(&mut self.canonical);
        self.emit(&canonical, out);
        if !self.ended {
            // A decoder must end with Done or Error; make sure the client's stream is closed.
            self.emit(&[StreamEvent::Done], out);
        }
    }

    /// Ends the client's stream with an error event (e.g. the upstream connection broke).
    pub fn fail(&mut self, error: CanonicalError, out: &mut Vec<u8>) {
        if !self.ended {
            self.emit(&[StreamEvent::Error(error)], out);
        }
    }

    /// Whether the client's stream is complete.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn emit(&mut self, events: &[StreamEvent], out: &mut Vec<u8>) {
        for event in events {
            if self.ended {
                return;
            }
            self.encoder.encode(event, out);
            if matches!(event, StreamEvent::Done | StreamEvent::Error(_)) {
                self.ended = true;
            }
        }
    }
}
