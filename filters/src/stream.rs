//! Stream translation: upstream SSE bytes in, the client protocol's stream bytes out, chunk by
//! chunk.
//!
//! `SseParser` (any chunk boundary) -> the upstream protocol's `StreamDecoder` (one SSE event to
//! canonical events) -> an optional [`StreamHook`] -> the client protocol's `StreamEncoder`
//! (canonical events to wire bytes). Each stage keeps its state in fields, so the translator
//! holds no more than the event being received plus what the client protocol needs to
//! summarise at the end. Output is produced as soon as an input event completes: the first
//! content byte reaches the client without waiting for the stream to end.
//!
//! Upstream and client may be the same protocol: the stream is then decoded and re-encoded,
//! which is what a hook needs to see it. (Without a hook the proxy does not use a translator
//! for a same-protocol stream at all: it passes the upstream's bytes through, cut at event
//! boundaries by [`crate::sse::SseFramer`].)

use crate::canonical::{CanonicalError, ErrorKind, ResponseContext, StreamEvent, Usage};
use crate::protocol::{StreamDecoder, StreamEncoder};
use crate::sse::{SseEvent, SseParser};
use bitrouter_config::Protocol;

/// A stage between decode and encode that sees every canonical stream event.
///
/// Why it exists: it is the one place where a stream is protocol-neutral, so whatever must
/// inspect or change a response while it streams plugs in here once instead of once per wire
/// protocol — guardrails (redact or block text, which may be split across events, so a hook
/// may hold text back until it can decide), usage accounting (the `Usage` and `Finish`
/// events), tracing (timing of `Start`, first delta, end).
///
/// Contract:
/// - [`StreamHook::on_event`] receives every event in order, including the decoder's closing
///   events and the terminal `Done` or `Error`. It pushes onto `out` what the client should get
///   now: the event itself (pass-through), nothing (held back or dropped), a rewritten event,
///   several events (held-back text released), or an `Error`/`Done` of its own, which ends the
///   client's stream (everything after it, from the upstream or the hook, is ignored).
/// - A hook that holds events back must release them before it passes on the events that
///   close them (`PartStop`, `Finish`, `Done`), or hold those too; the encoders expect the
///   canonical order (see [`crate::canonical::stream`]).
/// - [`StreamHook::on_finish`] is called once when the upstream ended (EOF), after its last
///   events went through `on_event`; what it pushes is encoded if the client's stream has not
///   ended yet. If nothing ended it, the translator closes it with `Done`.
/// - Errors the translator itself must end the stream with (an unparseable or oversized event,
///   an upstream that broke) go through `on_event` too, so hooks observe them; if the hook
///   does not pass an ending event on, the translator ends the stream with that error anyway.
pub trait StreamHook: Send {
    /// One decoded event; push onto `out` what should be encoded now.
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>);

    /// The upstream ended: push anything still held back.
    fn on_finish(&mut self, out: &mut Vec<StreamEvent>);
}

/// Translates one stream from `upstream`'s protocol to the client's.
pub struct StreamTranslator {
    parser: SseParser,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    events: Vec<SseEvent>,
    canonical: Vec<StreamEvent>,
    hook: Option<Box<dyn StreamHook>>,
    /// What the hook pushed for the events being processed.
    hooked: Vec<StreamEvent>,
    /// The stream has ended (normally or with an error); further input is ignored.
    ended: bool,
    /// Every usage report the decoder produced, merged (before any hook).
    usage: Option<Usage>,
}

impl StreamTranslator {
    pub fn new(upstream: Protocol, client: Protocol, ctx: &ResponseContext) -> StreamTranslator {
        StreamTranslator {
            parser: SseParser::default(),
            decoder: StreamDecoder::new(upstream, ctx),
            encoder: StreamEncoder::new(client, ctx),
            events: Vec::new(),
            canonical: Vec::new(),
            hook: None,
            hooked: Vec::new(),
            ended: false,
            usage: None,
        }
    }

    /// Puts `hook` between decode and encode (see [`StreamHook`]). Without one, events go from
    /// the decoder to the encoder by reference, as before hooks existed.
    #[must_use]
    pub fn with_hook(mut self, hook: Box<dyn StreamHook>) -> StreamTranslator {
        self.hook = Some(hook);
        self
    }

    /// Feeds a chunk of upstream bytes; appends the client bytes it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        self.events.clear();
        if let Err(e) = self.parser.feed(chunk, &mut self.events) {
            let error = CanonicalError::new(ErrorKind::BadGateway, e.to_string());
            self.end_with(error, out);
            return;
        }
        let events = std::mem::take(&mut self.events);
        self.decode_all(&events, out);
        self.events = events;
    }

    /// The upstream ended (EOF); appends the closing bytes to `out`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.ended {
            self.events.clear();
            self.parser.finish(&mut self.events);
            let events = std::mem::take(&mut self.events);
            self.decode_all(&events, out);
            self.events = events;
        }
        if !self.ended {
            self.canonical.clear();
            self.decoder.finish(&mut self.canonical);
            let canonical = std::mem::take(&mut self.canonical);
            self.process(canonical, out);
        }
        if let Some(hook) = &mut self.hook {
            self.hooked.clear();
            hook.on_finish(&mut self.hooked);
            let hooked = std::mem::take(&mut self.hooked);
            self.emit(&hooked, out);
            self.hooked = hooked;
        }
        if !self.ended {
            // A decoder must end with Done or Error; make sure the client's stream is closed.
            self.emit(&[StreamEvent::Done], out);
        }
    }

    /// Ends the client's stream with an error event (e.g. the upstream connection broke).
    pub fn fail(&mut self, error: CanonicalError, out: &mut Vec<u8>) {
        if !self.ended {
            self.end_with(error, out);
        }
    }

    /// The upstream's usage so far: every canonical usage report its decoder produced (the
    /// `Start` event's and each `Usage` event's), merged with [`Usage::merge`], as the upstream
    /// reported it — before any hook, and whether or not the client's protocol carries usage.
    /// `None` when the upstream reported none (yet): after a cut stream, what came before the
    /// cut.
    pub fn usage(&self) -> Option<Usage> {
        self.usage
    }

    /// Whether the client's stream is complete.
    pub fn is_ended(&self) -> bool {
        self.ended
    }

    fn decode_all(&mut self, events: &[SseEvent], out: &mut Vec<u8>) {
        for event in events {
            self.canonical.clear();
            let result = self.decoder.decode(event, &mut self.canonical);
            let canonical = std::mem::take(&mut self.canonical);
            self.process(canonical, out);
            if let Err(e) = result {
                self.end_with(e, out);
            }
            if self.ended {
                break;
            }
        }
    }

    /// Sends `canonical` through the hook (if any) and encodes the result. Hands the vector
    /// back to `self.canonical` for reuse.
    fn process(&mut self, mut canonical: Vec<StreamEvent>, out: &mut Vec<u8>) {
        for event in &canonical {
            let reported = match event {
                StreamEvent::Usage(u) => u,
                StreamEvent::Start { usage: Some(u), .. } => u,
                _ => continue,
            };
            match &mut self.usage {
                Some(have) => have.merge(reported),
                None => self.usage = Some(*reported),
            }
        }
        match &mut self.hook {
            None => self.emit(&canonical, out),
            Some(hook) => {
                self.hooked.clear();
                for event in canonical.drain(..) {
                    hook.on_event(event, &mut self.hooked);
                }
                let hooked = std::mem::take(&mut self.hooked);
                self.emit(&hooked, out);
                self.hooked = hooked;
            }
        }
        canonical.clear();
        self.canonical = canonical;
    }

    /// Ends the stream with `error`: through the hook, then directly if the hook did not end
    /// it.
    fn end_with(&mut self, error: CanonicalError, out: &mut Vec<u8>) {
        if self.ended {
            return;
        }
        if self.hook.is_some() {
            let mut canonical = std::mem::take(&mut self.canonical);
            canonical.clear();
            canonical.push(StreamEvent::Error(error.clone()));
            self.process(canonical, out);
        }
        if !self.ended {
            self.emit(&[StreamEvent::Error(error)], out);
        }
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
