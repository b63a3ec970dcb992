//! Server-sent events: an incremental parser that accepts arbitrary chunk boundaries, and the
//! encoder for the events we write.
//!
//! The parser follows the WHATWG event-stream rules that matter for LLM APIs: `\n`, `\r\n` and
//! `\r` line ends, `:` comment lines (keep-alives), several `data:` lines joined with `\n`, one
//! optional space after the colon, fields without a colon, and an event dispatched at a blank
//! line. It holds only the bytes of the event being received, so memory is bounded by the
//! largest event, not the stream; an event larger than the limit is an error rather than
//! unbounded growth.
//!
//! [`SseFramer`] applies the same line rules without parsing: it only finds event boundaries,
//! for streams passed through unchanged.

mod framer;

pub use framer::SseFramer;

/// One parsed event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if any.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Why the stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("an SSE event exceeded {0} bytes")]
    TooLarge(usize),
}

/// The default cap on one event (an SSE event carrying a whole tool-call argument blob can be
/// large; a runaway one is a bug upstream).
pub const DEFAULT_MAX_EVENT: usize = 16 * 1024 * 1024;

/// Incremental parser: feed it chunks as they arrive.
#[derive(Debug)]
pub struct SseParser {
    /// Bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The previous chunk ended in `\r`: a `\n` starting the next chunk belongs to it.
    after_cr: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    pending: usize,
    max_event: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        SseParser::new(DEFAULT_MAX_EVENT)
    }
}

impl SseParser {
    pub fn new(max_event: usize) -> SseParser {
        SseParser {
            line: Vec::new(),
            after_cr: false,
            event: None,
            data: String::new(),
            has_data: false,
            pending: 0,
            max_event,
        }
    }

    /// Parses `chunk`, appending every event it completes to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut rest = chunk;
        if self.after_cr && !rest.is_empty() {
            self.after_cr = false;
            if let Some(b'\n') = rest.first() {
                rest = &rest[1..];
            }
        }
        while let Some(pos) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (head, tail) = rest.split_at(pos);
            self.line.extend_from_slice(head);
            let is_cr = tail[0] == b'\r';
            rest = &tail[1..];
            if is_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_complete(&line, out);
            self.line = line;
            self.line.clear();
        }
        self.line.extend_from_slice(rest);
        if self.pending + self.line.len() > self.max_event {
            return Err(SseError::TooLarge(self.max_event));
        }
        Ok(())
    }

    /// Ends the stream: an event not terminated by a blank line is dispatched (lenient, as
    /// upstreams sometimes close right after the last `data:` line).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.line_complete(&line, out);
        }
        self.dispatch(out);
    }

    fn line_complete(&mut self, line: &[u8], out: &mut Vec<SseEvent>) {
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
                self.pending += value.len() + 1;
            }
            b"event" => {
                self.pending += value.len();
                self.event = Some(value.into_owned());
            }
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data || self.event.is_some() {
            out.push(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
            });
        }
        self.has_data = false;
        self.pending = 0;
    }
}

/// Appends one event in wire form (`event: ...` when named, then `data:` lines, then a blank
/// line). Multi-line data is split across `data:` lines so the receiver re-joins it exactly.
pub fn write_event(out: &mut Vec<u8>, event: Option<&str>, data: &str) {
    if let Some(name) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(name.as_bytes());
        out.push(b'\n');
    }
    for line in data.split('\n') {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out);
        out
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_string),
            data: data.to_string(),
        }
    }

    #[test]
    fn basic_and_named_events() {
        let out = parse_all(&[b"data: a\n\nevent: message_start\ndata: {\"x\":1}\n\n"]);
        assert_eq!(
            out,
            vec![ev(None, "a"), ev(Some("message_start"), "{\"x\":1}")]
        );
    }

    #[test]
    fn crlf_cr_comments_multiline() {
        let out =
            parse_all(&[b": ping\r\ndata: one\r\ndata: two\r\n\r\ndata:three\r\rdata: four\n\n"]);
        assert_eq!(
            out,
            vec![ev(None, "one\ntwo"), ev(None, "three"), ev(None, "four")]
        );
    }

    #[test]
    fn every_split_point_gives_the_same_events() {
        let stream: &[u8] = b"event: a\r\ndata: 1\r\n\r\n: keepalive\n\ndata: {\"k\": \"v\\n\"}\n\nevent: b\ndata: x\ndata: y\n\ndata: [DONE]\n\n";
        let whole = parse_all(&[stream]);
        assert_eq!(whole.len(), 4);
        for i in 0..=stream.len() {
            for j in i..=stream.len() {
                let parts = parse_all(&[&stream[..i], &stream[i..j], &stream[j..]]);
                assert_eq!(parts, whole, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(parse_all(&bytes), whole);
    }

    #[test]
    fn unterminated_last_event_is_dispatched_at_finish() {
        assert_eq!(parse_all(&[b"data: tail"]), vec![ev(None, "tail")]);
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut p = SseParser::new(16);
        let mut out = Vec::new();
        assert!(p.feed(b"data: 0123456789", &mut out).is_ok());
        assert_eq!(p.feed(b"0123456789", &mut out), Err(SseError::TooLarge(16)));
    }

    #[test]
    fn write_then_parse_round_trips() {
        let mut buf = Vec::new();
        write_event(&mut buf, Some("content_block_delta"), "line1\nline2");
        write_event(&mut buf, None, "[DONE]");
        assert_eq!(
            parse_all(&[&buf]),
            vec![
                ev(Some("content_block_delta"), "line1\nline2"),
                ev(None, "[DONE]")
            ]
        );
    }
}
