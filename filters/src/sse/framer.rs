//! Event framing for same-protocol pass-through: cut an SSE byte stream at event boundaries
//! without parsing or changing it.
//!
//! Why: the proxy forwards a same-protocol stream as the upstream's own bytes (no decode, no
//! re-encode), but only whole events at a time, so that when the upstream breaks mid-way the
//! client's stream can still end with a well-formed error event instead of half an event glued
//! to an error. The framer decides where those cuts go.
//!
//! The event end is a blank line under the same WHATWG rules [`super::SseParser`] follows: a
//! line ends at `\n`, `\r\n` or `\r`, and an empty line ends the event — so `\n\n`, `\r\n\r\n`,
//! `\r\r`, `\n\r\n`, `\r\n\n` all end one (Google sends CRLF; a framer that knew only `\n\n`
//! held a whole Gemini stream back until its end). The scan state (are we at the start of a
//! line, did the last chunk end in `\r`) survives across chunks, so every byte is looked at
//! once however the stream is split, and the carried rest is never rescanned.
//!
//! Output is zero-copy (`Bytes::slice` of the input chunk) whenever nothing was carried over
//! from an earlier chunk, which is the common case (upstreams write one or more whole events
//! per chunk). A carried rest larger than the event cap is an error, as in the parser, so a
//! stream that never ends an event cannot grow memory without bound.

use super::{SseError, DEFAULT_MAX_EVENT};
use bytes::{Bytes, BytesMut};

/// Incremental SSE event framer: feed it the upstream's chunks, forward what it returns.
///
/// The concatenation of everything [`SseFramer::feed`] and [`SseFramer::finish`] return is
/// exactly the input, and after every `feed` the output so far ends exactly where the last
/// event of the input so far ends. One case is split: when a chunk ends with the `\r` of a
/// `\r\n` that ends an event, the cut is made after the `\r` (waiting for the next chunk would
/// delay a stream that uses bare `\r` line ends), and a `\n` that then starts the next chunk
/// leads the next piece (alone, if that chunk completes no other event).
#[derive(Debug)]
pub struct SseFramer {
    /// Bytes of the incomplete event, already scanned.
    carry: BytesMut,
    /// No byte other than a line end since the last line end (or since the start): a line end
    /// seen now ends an empty line, i.e. an event.
    line_empty: bool,
    /// The last byte scanned was a `\r`: a `\n` first in the next chunk completes that line end
    /// rather than starting a new (empty) line.
    after_cr: bool,
    /// ... and that `\r` ended an event (the output was cut after it): its `\n` is released at
    /// once, so that the output always ends where the input's last event does.
    cr_ended_event: bool,
    max_event: usize,
    /// An oversized event was refused; the framer stays failed.
    failed: bool,
}

impl Default for SseFramer {
    fn default() -> Self {
        SseFramer::new(DEFAULT_MAX_EVENT)
    }
}

impl SseFramer {
    /// A framer refusing to carry more than `max_event` bytes of one incomplete event.
    pub fn new(max_event: usize) -> SseFramer {
        SseFramer {
            carry: BytesMut::new(),
            line_empty: true,
            after_cr: false,
            cr_ended_event: false,
            max_event,
            failed: false,
        }
    }

    /// Adds `chunk`; returns the bytes of every event it completes (with any carried start of
    /// the first one), `None` when it completes none. The rest is carried to the next call.
    ///
    /// Errors with [`SseError::TooLarge`] when the incomplete event would exceed the cap; the
    /// carried bytes are then dropped and every later call fails the same way.
    pub fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, SseError> {
        if self.failed {
            return Err(SseError::TooLarge(self.max_event));
        }
        if self.carry.is_empty() && ends_with_blank_line(&chunk) {
            // The common case: nothing carried, and the upstream wrote whole events. A chunk
            // that ends with a blank line ends on an event boundary whatever came before it, so
            // it goes out as it is without a scan (measured: the scan of every byte of a 13 KB,
            // 50-event stream cost ~100k instructions per request in the load benchmark).
            self.line_empty = true;
            self.after_cr = chunk.ends_with(b"\r");
            self.cr_ended_event = self.after_cr;
            return Ok(Some(chunk));
        }
        let found = match last_event_end(&chunk) {
            Some(end) => {
                // Only the bytes after the last event end decide the state for the next chunk.
                self.line_empty = true;
                self.after_cr = false;
                self.cr_ended_event = false;
                if end == chunk.len() {
                    self.after_cr = chunk.ends_with(b"\r");
                    self.cr_ended_event = self.after_cr;
                } else {
                    self.scan(&chunk[end..]);
                }
                Some(end)
            }
            None => self.scan(&chunk),
        };
        let Some(end) = found else {
            self.carry_more(&chunk)?;
            return Ok(None);
        };
        if self.carry.is_empty() {
            if end == chunk.len() {
                return Ok(Some(chunk));
            }
            let rest = &chunk[end..];
            self.carry_more(rest)?;
            return Ok(Some(chunk.slice(..end)));
        }
        self.carry.extend_from_slice(&chunk[..end]);
        let events = self.carry.split().freeze();
        self.carry_more(&chunk[end..])?;
        Ok(Some(events))
    }

    /// The upstream ended: the carried bytes of an event it never terminated (`None` if none).
    /// The framer is reset for a new stream.
    pub fn finish(&mut self) -> Option<Bytes> {
        self.line_empty = true;
        self.after_cr = false;
        self.cr_ended_event = false;
        self.failed = false;
        (!self.carry.is_empty()).then(|| self.carry.split().freeze())
    }

    /// Bytes carried over (the incomplete event so far).
    pub fn carried(&self) -> usize {
        self.carry.len()
    }

    fn carry_more(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        if self.carry.len() + bytes.len() > self.max_event {
            self.carry = BytesMut::new();
            self.failed = true;
            return Err(SseError::TooLarge(self.max_event));
        }
        self.carry.extend_from_slice(bytes);
        Ok(())
    }

    /// Scans `chunk` once, updating the line state; returns the offset just after the last
    /// event end in it.
    fn scan(&mut self, chunk: &[u8]) -> Option<usize> {
        let mut i = 0;
        let mut last = None;
        if self.after_cr && !chunk.is_empty() {
            self.after_cr = false;
            if chunk[0] == b'\n' {
                // The second half of a `\r\n` whose `\r` ended the previous chunk.
                i = 1;
                if self.cr_ended_event {
                    last = Some(1);
                }
            }
            self.cr_ended_event = false;
        }
        // memchr2: a vectorised search for the next line end (lines are long, line ends rare).
        while let Some(p) = memchr::memchr2(b'\n', b'\r', &chunk[i..]) {
            let pos = i + p;
            if p > 0 {
                self.line_empty = false;
            }
            let mut end = pos + 1;
            if chunk[pos] == b'\r' {
                match chunk.get(end) {
                    Some(b'\n') => end += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            if self.line_empty {
                last = Some(end);
                self.cr_ended_event = self.after_cr;
            }
            self.line_empty = true;
            i = end;
        }
        if i < chunk.len() {
            self.line_empty = false;
        }
        last
    }
}

/// The offset just after the last event end in `chunk`, found from the back: the last run of
/// line-end bytes that holds two line ends or more (the second ends an empty line, and every
/// later one does too). Only the bytes from there to the end are looked at, so a chunk costs
/// about one event, not its length. `None` when no such run is found, or when the run that would
/// decide starts the chunk (then the previous chunk's state matters): the caller scans forward.
fn last_event_end(chunk: &[u8]) -> Option<usize> {
    let mut end = chunk.len();
    loop {
        // The last line-end byte before `end`, then the start of its run.
        let last = memchr::memrchr2(b'\n', b'\r', &chunk[..end])?;
        let mut start = last;
        while start > 0 && matches!(chunk[start - 1], b'\n' | b'\r') {
            start -= 1;
        }
        if start == 0 {
            return None;
        }
        let run_end = last + 1;
        let mut line_ends = 0;
        let mut i = start;
        while i < run_end {
            i += if chunk[i] == b'\r' && chunk.get(i + 1) == Some(&b'\n') && i + 1 < run_end {
                2
            } else {
                1
            };
            line_ends += 1;
        }
        if line_ends >= 2 {
            return Some(run_end);
        }
        end = start;
    }
}

/// Whether `chunk` ends with two line ends in a row (`\n\n`, `\r\n\r\n`, `\r\r`, `\n\r\n`,
/// `\r\n\n`, ...): the second ends an empty line, so the chunk ends where an event ends.
fn ends_with_blank_line(chunk: &[u8]) -> bool {
    let rest = if let Some(r) = chunk.strip_suffix(b"\r\n") {
        r
    } else if let Some(r) = chunk
        .strip_suffix(b"\n")
        .or_else(|| chunk.strip_suffix(b"\r"))
    {
        r
    } else {
        return false;
    };
    rest.ends_with(b"\n") || rest.ends_with(b"\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `chunks`; returns the pieces `feed` produced and what `finish` returned.
    fn frame(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Option<Vec<u8>>) {
        let mut f = SseFramer::default();
        let mut pieces = Vec::new();
        for c in chunks {
            if let Some(p) = f.feed(Bytes::copy_from_slice(c)).unwrap() {
                pieces.push(p.to_vec());
            }
        }
        (pieces, f.finish().map(|b| b.to_vec()))
    }

    #[test]
    fn blank_line_endings() {
        for yes in [
            &b"data: a\n\n"[..],
            b"data: a\r\n\r\n",
            b"data: a\r\r",
            b"data: a\n\r\n",
            b"data: a\r\n\n",
            b"data: a\n\r",
            b"\n\n",
        ] {
            assert!(
                ends_with_blank_line(yes),
                "{:?}",
                String::from_utf8_lossy(yes)
            );
        }
        for no in [
            &b"data: a\n"[..],
            b"data: a\r\n",
            b"data: a\r",
            b"\n",
            b"",
            b"data: a",
        ] {
            assert!(
                !ends_with_blank_line(no),
                "{:?}",
                String::from_utf8_lossy(no)
            );
        }
    }

    fn v(s: &[u8]) -> Vec<u8> {
        s.to_vec()
    }

    #[test]
    fn every_blank_line_form_ends_an_event() {
        for sep in [
            &b"\n\n"[..],
            b"\r\n\r\n",
            b"\r\r",
            b"\n\r\n",
            b"\r\n\n",
            b"\n\r",
            b"\r\n\r",
        ] {
            let mut input = b"data: 1".to_vec();
            input.extend_from_slice(sep);
            input.extend_from_slice(b"data: 2");
            let cut = 7 + sep.len();
            let (pieces, rest) = frame(&[&input]);
            assert_eq!(pieces, vec![v(&input[..cut])], "{sep:?}");
            assert_eq!(rest, Some(v(b"data: 2")), "{sep:?}");
        }
    }

    #[test]
    fn single_line_ends_do_not_end_an_event() {
        for input in [
            &b"data: 1\ndata: 2\n"[..],
            b"data: 1\r\ndata: 2\r\n",
            b"data: 1\rdata: 2\r",
        ] {
            let (pieces, rest) = frame(&[input]);
            assert!(pieces.is_empty(), "{input:?}");
            assert_eq!(rest, Some(v(input)));
        }
    }

    #[test]
    fn whole_events_pass_through_uncopied() {
        let mut f = SseFramer::default();
        let chunk = Bytes::from_static(b"data: a\r\n\r\ndata: b\r\n\r\n");
        let out = f.feed(chunk.clone()).unwrap().unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(out.len(), chunk.len());
        // A trailing partial event: the complete part is still a slice of the chunk.
        let chunk = Bytes::from_static(b"data: c\n\ndata: d");
        let out = f.feed(chunk.clone()).unwrap().unwrap();
        assert_eq!(out.as_ptr(), chunk.as_ptr());
        assert_eq!(&out[..], b"data: c\n\n");
        assert_eq!(f.carried(), 7);
        assert_eq!(
            f.feed(Bytes::from_static(b"\n\n")).unwrap().as_deref(),
            Some(&b"data: d\n\n"[..])
        );
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn crlf_split_between_chunks() {
        // The event's `\r` ends a chunk: cut after it; its `\n` leads the next piece and is not
        // a second blank line.
        let (pieces, rest) = frame(&[b"data: 1\r\n\r", b"\ndata: 2\r\n", b"\r\ndata: 3"]);
        assert_eq!(
            pieces,
            vec![v(b"data: 1\r\n\r"), v(b"\n"), v(b"data: 2\r\n\r\n")]
        );
        assert_eq!(rest, Some(v(b"data: 3")));
        let (pieces, _) = frame(&[b"data: 1\r\n\r", b"\ndata: 2\r\n\r\n"]);
        assert_eq!(pieces, vec![v(b"data: 1\r\n\r"), v(b"\ndata: 2\r\n\r\n")]);
        // A `\r` ending a content line, `\n` in the next chunk, then the blank line.
        let (pieces, rest) = frame(&[b"data: 1\r", b"\n", b"\r\n"]);
        assert_eq!(pieces, vec![v(b"data: 1\r\n\r\n")]);
        assert_eq!(rest, None);
        // An empty chunk between the halves changes nothing.
        let (pieces, _) = frame(&[b"data: 1\r", b"", b"\n\r\n"]);
        assert_eq!(pieces, vec![v(b"data: 1\r\n\r\n")]);
    }

    #[test]
    fn comments_and_leading_blank_lines_are_events_boundaries_too() {
        let (pieces, rest) = frame(&[b": ping\n\n\ndata: x\n\n"]);
        assert_eq!(pieces, vec![v(b": ping\n\n\ndata: x\n\n")]);
        assert_eq!(rest, None);
        let (pieces, _) = frame(&[b": ping\n\n", b"\n", b"data: x"]);
        assert_eq!(pieces, vec![v(b": ping\n\n"), v(b"\n")]);
    }

    #[test]
    fn oversized_carry_is_an_error_and_sticks() {
        let mut f = SseFramer::new(16);
        assert_eq!(f.feed(Bytes::from_static(b"data: 0123456789")), Ok(None));
        assert_eq!(
            f.feed(Bytes::from_static(b"0123456789")),
            Err(SseError::TooLarge(16))
        );
        assert_eq!(f.carried(), 0);
        assert_eq!(
            f.feed(Bytes::from_static(b"\n\n")),
            Err(SseError::TooLarge(16))
        );
        // A large chunk of complete events is fine: only the carry is capped.
        let mut f = SseFramer::new(16);
        let big = Bytes::from(b"data: 0123456789012345678901234567890\n\n".repeat(4));
        assert_eq!(f.feed(big.clone()), Ok(Some(big)));
    }
}
