//! [`UsageTap`]: the usage of a response the proxy forwards untouched, read from the same bytes.
//!
//! Cost is the point: a same-protocol stream is otherwise zero-copy, so the tap must not decode
//! every event. It only finds event boundaries (one `memchr` per line end), looks for a
//! `"usage…": {` member in each event (one `memmem` per event; `"usage": null`, which OpenAI
//! chat streams carry on every chunk, is skipped), and parses just the events that have one,
//! into small structs naming only the usage object (serde skips the rest). It holds at most the
//! bytes of one incomplete event, capped like the SSE parser's.

use super::Usage;
use crate::protocol::anthropic::wire::AnthropicUsage;
use crate::protocol::gemini::GeminiUsage;
use crate::protocol::openai_chat::wire::OpenAIChatUsage;
use crate::protocol::openai_responses::wire::ResponsesUsage;
use crate::protocol::{anthropic, gemini, openai_chat, openai_responses};
use crate::sse::DEFAULT_MAX_EVENT;
use bitrouter_config::Protocol;
use memchr::memmem::Finder;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::ops::Range;
use std::sync::OnceLock;

/// Reads the usage a same-protocol response reports without changing or holding it.
///
/// Feed it the bytes the client gets: [`UsageTap::body`] for a whole JSON response, or
/// [`UsageTap::chunk`] for each piece of a stream (split anywhere), then [`UsageTap::finish`]
/// when the stream ends. A stream is SSE, or — Gemini without `?alt=sse`, which the proxy
/// passes through as such — a JSON array of response objects; the tap tells them apart by the
/// first byte.
///
/// Usage reports are cumulative (Anthropic's `message_start` then `message_delta`, Gemini's
/// every chunk): a field reported later replaces the earlier one, so a stream cut midway
/// leaves what was reported up to the cut.
#[derive(Debug)]
pub struct UsageTap {
    mode: Mode,
    sse: SseSplit,
    array: ArraySplit,
    reader: Reader,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Only whitespace so far.
    Undecided,
    Sse,
    JsonArray,
}

impl UsageTap {
    pub fn new(protocol: Protocol) -> UsageTap {
        UsageTap {
            mode: Mode::Undecided,
            sse: SseSplit::new(DEFAULT_MAX_EVENT),
            array: ArraySplit::new(DEFAULT_MAX_EVENT),
            reader: Reader::new(protocol),
        }
    }

    /// A whole (non-streamed) JSON response body. (A JSON array — a Gemini stream received
    /// whole — is read element by element.)
    pub fn body(&mut self, body: &[u8]) {
        let first = body.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'[') {
            let mut array = ArraySplit::new(usize::MAX);
            let reader = &mut self.reader;
            array.feed(body, &mut |event, _| reader.object(event));
            return;
        }
        self.reader.object(body);
    }

    /// The next bytes of a streamed response (SSE, or a Gemini JSON array), split anywhere.
    /// (An upstream that answered a streaming request with a whole JSON body: use
    /// [`UsageTap::body`] on that body instead.)
    pub fn chunk(&mut self, bytes: &[u8]) {
        let mut bytes = bytes;
        if self.mode == Mode::Undecided {
            let Some(start) = bytes.iter().position(|b| !b.is_ascii_whitespace()) else {
                return;
            };
            bytes = &bytes[start..];
            self.mode = if bytes[0] == b'[' {
                Mode::JsonArray
            } else {
                Mode::Sse
            };
        }
        let reader = &mut self.reader;
        match self.mode {
            Mode::JsonArray => self.array.feed(bytes, &mut |event, _| reader.object(event)),
            _ => self.sse.feed(bytes, &mut |event, _| {
                reader.sse_event(event);
            }),
        }
    }

    /// The stream ended: an event the upstream did not terminate (SSE without the final blank
    /// line) is read too.
    pub fn finish(&mut self) {
        if self.mode == Mode::Sse {
            let reader = &mut self.reader;
            self.sse.finish(&mut |event| {
                reader.sse_event(event);
            });
        }
    }

    /// What was reported so far (`None` when nothing was).
    pub fn usage(&self) -> Option<Usage> {
        self.reader.usage()
    }
}

/// `"usage` — the start of every usage member name (`usage`, `usageMetadata`).
fn usage_finder() -> &'static Finder<'static> {
    static FINDER: OnceLock<Finder<'static>> = OnceLock::new();
    FINDER.get_or_init(|| Finder::new(b"\"usage").into_owned())
}

/// Whether `json` has a member named `usage…` whose value is an object. A quoted word inside a
/// JSON string is escaped (`\"usage\"`), so it does not match a name; a false positive would
/// only cost a parse.
pub fn has_usage_object(json: &[u8]) -> bool {
    usage_object(json).is_some()
}

/// The value of the last member named `usage…` whose value is an object: the slice from its
/// `{` to the end of `json` (the object's end is the parser's business).
fn usage_object(json: &[u8]) -> Option<&[u8]> {
    let mut found = None;
    for at in usage_finder().find_iter(json) {
        let mut rest = &json[at + b"\"usage".len()..];
        let name_end = rest
            .iter()
            .position(|b| !b.is_ascii_alphabetic() && *b != b'_')
            .unwrap_or(rest.len());
        rest = &rest[name_end..];
        let Some(rest) = rest.strip_prefix(b"\"") else {
            continue;
        };
        let rest = trim_start(rest);
        let Some(rest) = rest.strip_prefix(b":") else {
            continue;
        };
        let rest = trim_start(rest);
        if rest.first() == Some(&b'{') {
            found = Some(rest);
        }
    }
    found
}

/// Deserializes one JSON value from the start of `bytes`, ignoring what follows it.
fn value_at<'de, T: Deserialize<'de>>(bytes: &'de [u8]) -> Option<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    T::deserialize(&mut de).ok()
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[n..]
}

// ---------------------------------------------------------------------------------------------
// Reading usage out of one event
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct ChatProbe {
    #[serde(default)]
    choices: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    usage: Option<OpenAIChatUsage>,
    #[serde(default)]
    x_groq: Option<GroqProbe>,
}

#[derive(Deserialize)]
struct GroqProbe {
    #[serde(default)]
    usage: Option<OpenAIChatUsage>,
}

#[derive(Deserialize)]
struct ResponsesProbe {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
    /// Stream events (`response.completed`, `.incomplete`, `.failed`) nest the response.
    #[serde(default)]
    response: Option<ResponsesInner>,
}

#[derive(Deserialize)]
struct ResponsesInner {
    #[serde(default)]
    usage: Option<ResponsesUsage>,
}

#[derive(Deserialize)]
struct AnthropicProbe {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
    /// `message_start` nests the message.
    #[serde(default)]
    message: Option<AnthropicInner>,
}

#[derive(Deserialize)]
struct AnthropicInner {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

#[derive(Deserialize)]
struct GeminiProbe {
    #[serde(default, rename = "usageMetadata", alias = "usage_metadata")]
    usage: Option<GeminiUsage>,
}

/// The usage seen so far, in the protocol's terms.
#[derive(Debug)]
pub(super) struct Reader {
    protocol: Protocol,
    usage: Option<Usage>,
    /// Anthropic's reports are merged raw (a later `message_delta` may repeat some fields), then
    /// converted, as the stream decoder does.
    anthropic: Option<AnthropicUsage>,
    /// The joined `data:` lines of an event that has several.
    scratch: Vec<u8>,
}

impl Reader {
    pub(super) fn new(protocol: Protocol) -> Reader {
        Reader {
            protocol,
            usage: None,
            anthropic: None,
            scratch: Vec::new(),
        }
    }

    pub(super) fn usage(&self) -> Option<Usage> {
        match self.protocol {
            Protocol::Messages => self.anthropic.as_ref().map(anthropic::decode_usage),
            _ => self.usage,
        }
    }

    /// One raw SSE event (its lines and terminator). Returns whether it is an OpenAI chat
    /// usage-only chunk (`"choices": []` with a usage object).
    pub(super) fn sse_event(&mut self, raw: &[u8]) -> bool {
        let Some(value) = usage_object(raw) else {
            return false;
        };
        if self.protocol != Protocol::ChatCompletions {
            // Only the usage object is parsed (a Gemini stream reports usage in every chunk;
            // its text need not be read). An object a multi-line `data:` split does not parse:
            // the full path joins the lines first.
            if self.usage_value(value) {
                return false;
            }
        }
        let mut scratch = std::mem::take(&mut self.scratch);
        let usage_only = match sse_data(raw, &mut scratch) {
            Some(data) => self.json(data),
            None => false,
        };
        scratch.clear();
        self.scratch = scratch;
        usage_only
    }

    /// One JSON object (a whole body or a JSON-array stream element): only its usage object
    /// is parsed (about a tenth of the cost of parsing the body).
    pub(super) fn object(&mut self, json: &[u8]) {
        if let Some(value) = usage_object(json) {
            if !self.usage_value(value) {
                self.json(json);
            }
        }
    }

    /// Reads the protocol's usage object at the start of `value`; false when it does not parse
    /// as one.
    fn usage_value(&mut self, value: &[u8]) -> bool {
        match self.protocol {
            Protocol::ChatCompletions => match value_at::<OpenAIChatUsage>(value) {
                Some(u) => self.add(openai_chat::decode_usage(&u)),
                None => return false,
            },
            Protocol::Responses => match value_at::<ResponsesUsage>(value) {
                Some(u) => self.add(openai_responses::usage_from_wire(&u)),
                None => return false,
            },
            Protocol::Messages => match value_at::<AnthropicUsage>(value) {
                Some(u) => match &mut self.anthropic {
                    Some(have) => anthropic::merge_raw(have, &u),
                    None => self.anthropic = Some(u),
                },
                None => return false,
            },
            Protocol::GenerateContent => match value_at::<GeminiUsage>(value) {
                Some(u) => self.add(gemini::usage_from(&u)),
                None => return false,
            },
        }
        true
    }

    /// Parses `json` for its usage; returns whether it is a chat usage-only chunk.
    fn json(&mut self, json: &[u8]) -> bool {
        match self.protocol {
            Protocol::ChatCompletions => {
                let Ok(probe) = serde_json::from_slice::<ChatProbe>(json) else {
                    return false;
                };
                let usage = probe.usage.or(probe.x_groq.and_then(|g| g.usage));
                let Some(usage) = usage else {
                    return false;
                };
                self.add(openai_chat::decode_usage(&usage));
                probe.choices.is_some_and(|c| c.is_empty())
            }
            Protocol::Responses => {
                if let Ok(probe) = serde_json::from_slice::<ResponsesProbe>(json) {
                    let usage = probe.usage.or(probe.response.and_then(|r| r.usage));
                    if let Some(u) = usage {
                        self.add(openai_responses::usage_from_wire(&u));
                    }
                }
                false
            }
            Protocol::Messages => {
                if let Ok(probe) = serde_json::from_slice::<AnthropicProbe>(json) {
                    for u in [probe.message.and_then(|m| m.usage), probe.usage]
                        .into_iter()
                        .flatten()
                    {
                        match &mut self.anthropic {
                            Some(have) => anthropic::merge_raw(have, &u),
                            None => self.anthropic = Some(u),
                        }
                    }
                }
                false
            }
            Protocol::GenerateContent => {
                if let Ok(GeminiProbe { usage: Some(u) }) = serde_json::from_slice(json) {
                    self.add(gemini::usage_from(&u));
                }
                false
            }
        }
    }

    fn add(&mut self, later: Usage) {
        match &mut self.usage {
            Some(have) => have.merge(&later),
            None => self.usage = Some(later),
        }
    }
}

/// The data of a raw SSE event: its one `data:` line borrowed, or several joined with `\n` in
/// `scratch` (the SSE rule). `None` without a data line.
fn sse_data<'a>(raw: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let mut first: Option<&'a [u8]> = None;
    let mut several = false;
    for line in lines(raw) {
        let Some(value) = data_value(line) else {
            continue;
        };
        match first {
            None => first = Some(value),
            Some(f) => {
                if !several {
                    several = true;
                    scratch.clear();
                    scratch.extend_from_slice(f);
                }
                scratch.push(b'\n');
                scratch.extend_from_slice(value);
            }
        }
    }
    if several {
        Some(scratch.as_slice())
    } else {
        first
    }
}

/// The value of a `data` field line (`data:value`, one optional space after the colon; a bare
/// `data` line has an empty value).
fn data_value(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"data")?;
    match rest.first() {
        None => Some(rest),
        Some(b':') => Some(rest[1..].strip_prefix(b" ").unwrap_or(&rest[1..])),
        Some(_) => None,
    }
}

/// The lines of `raw` (ending at `\n`, `\r\n` or `\r`), without their terminators.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match memchr::memchr2(b'\n', b'\r', rest) {
            None => {
                let line = rest;
                rest = &[];
                Some(line)
            }
            Some(p) => {
                let line = &rest[..p];
                let skip = if rest[p] == b'\r' && rest.get(p + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[p + skip..];
                Some(line)
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Event boundaries
// ---------------------------------------------------------------------------------------------

/// Receives each complete event: its bytes, and its range in the chunk being fed when it lies
/// entirely within that chunk.
pub(super) type OnEvent<'a> = &'a mut dyn FnMut(&[u8], Option<Range<usize>>);

/// Finds SSE event ends (a blank line, under the WHATWG line rules) in a stream split anywhere,
/// and hands each complete event to a callback: borrowed from the chunk when it lies within it
/// (with its range there), else assembled in the carry from the pieces of earlier chunks.
///
/// A chunk ending in `\r` leaves that line end undecided until the next byte (it may be half a
/// `\r\n`), so the events found do not depend on where the stream was split.
#[derive(Debug)]
pub(super) struct SseSplit {
    /// Bytes of the incomplete event (from its start), unless it overflowed.
    carry: Vec<u8>,
    /// The incomplete event began in an earlier chunk (its bytes are in `carry`, or were
    /// dropped when it overflowed).
    carried: bool,
    /// No byte other than a line end since the last line end.
    line_empty: bool,
    /// The last byte was a `\r` whose line end is not resolved yet; `cr_line_empty` says
    /// whether the line it ends is empty.
    pending_cr: bool,
    cr_line_empty: bool,
    /// The incomplete event exceeded `max`: its bytes are dropped and it is not reported.
    overflow: bool,
    max: usize,
}

impl SseSplit {
    pub(super) fn new(max: usize) -> SseSplit {
        SseSplit {
            carry: Vec::new(),
            carried: false,
            line_empty: true,
            pending_cr: false,
            cr_line_empty: false,
            overflow: false,
            max,
        }
    }

    /// Whether an event exceeded the cap since the last call (and was dropped).
    pub(super) fn overflowed(&self) -> bool {
        self.overflow
    }

    /// Scans `chunk`; calls `on_event(bytes, range)` for each event it completes, `range`
    /// being its place in `chunk` when it lies entirely within it.
    pub(super) fn feed(&mut self, chunk: &[u8], on_event: OnEvent<'_>) {
        let len = chunk.len();
        // Where the current event starts in `chunk` (`None`: in an earlier chunk).
        let mut start: Option<usize> = (!self.carried).then_some(0);
        let mut i = 0;
        if self.pending_cr && len > 0 {
            self.pending_cr = false;
            i = usize::from(chunk[0] == b'\n');
            self.line_empty = true;
            if self.cr_line_empty {
                self.complete(chunk, &mut start, i, on_event);
            }
        }
        while let Some(off) = memchr::memchr2(b'\n', b'\r', &chunk[i..]) {
            let p = i + off;
            let empty = self.line_empty && p == i;
            let end = if chunk[p] == b'\r' {
                if p + 1 == len {
                    self.pending_cr = true;
                    self.cr_line_empty = empty;
                    i = len;
                    break;
                }
                if chunk[p + 1] == b'\n' {
                    p + 2
                } else {
                    p + 1
                }
            } else {
                p + 1
            };
            self.line_empty = true;
            if empty {
                self.complete(chunk, &mut start, end, on_event);
            }
            i = end;
        }
        if i < len {
            self.line_empty = false;
        }
        // Carry the incomplete event.
        let rest = match start {
            Some(s) => &chunk[s..],
            None => chunk,
        };
        if start.is_some_and(|s| s == len) {
            return;
        }
        self.carried = true;
        if self.overflow {
            return;
        }
        if self.carry.len() + rest.len() > self.max {
            self.carry = Vec::new();
            self.overflow = true;
            return;
        }
        self.carry.extend_from_slice(rest);
    }

    /// The event ending at `end` in `chunk` is complete.
    fn complete(
        &mut self,
        chunk: &[u8],
        start: &mut Option<usize>,
        end: usize,
        on_event: OnEvent<'_>,
    ) {
        match *start {
            Some(s) => on_event(&chunk[s..end], Some(s..end)),
            None => {
                if self.overflow {
                    self.overflow = false;
                } else if self.carry.len() + end <= self.max {
                    self.carry.extend_from_slice(&chunk[..end]);
                    on_event(&self.carry, None);
                }
                self.carry.clear();
                self.carried = false;
            }
        }
        *start = Some(end);
    }

    /// The stream ended: reports the event it did not terminate, if any, and resets.
    pub(super) fn finish(&mut self, on_event: &mut dyn FnMut(&[u8])) {
        if self.carried && !self.overflow && !self.carry.is_empty() {
            on_event(&self.carry);
        }
        self.carry.clear();
        self.carried = false;
        self.line_empty = true;
        self.pending_cr = false;
        self.overflow = false;
    }

    /// Takes the carried bytes (for a stream that ends: what it did not terminate).
    pub(super) fn take_carry(&mut self) -> Vec<u8> {
        let carry = std::mem::take(&mut self.carry);
        self.carried = false;
        self.line_empty = true;
        self.pending_cr = false;
        self.overflow = false;
        carry
    }
}

/// Finds the elements of a streamed JSON array (`[{…},{…}]`, Gemini without `?alt=sse`) split
/// anywhere, and hands each complete object element to a callback. Strings are skipped with
/// `memchr` (their braces do not count); only the incomplete element is held.
#[derive(Debug)]
struct ArraySplit {
    carry: Vec<u8>,
    /// Nesting depth of `[`/`{` (the array itself is depth 1).
    depth: u32,
    in_string: bool,
    /// A `\` inside a string ended the last chunk: the next byte is escaped.
    escape: bool,
    /// An object element is open (it began in an earlier chunk when `start` is `None`).
    in_element: bool,
    overflow: bool,
    max: usize,
}

impl ArraySplit {
    fn new(max: usize) -> ArraySplit {
        ArraySplit {
            carry: Vec::new(),
            depth: 0,
            in_string: false,
            escape: false,
            in_element: false,
            overflow: false,
            max,
        }
    }

    fn feed(&mut self, chunk: &[u8], on_event: OnEvent<'_>) {
        let len = chunk.len();
        let mut start: Option<usize> = None;
        let mut i = 0;
        if self.escape && len > 0 {
            self.escape = false;
            i = 1;
        }
        while i < len {
            if self.in_string {
                match memchr::memchr2(b'"', b'\\', &chunk[i..]) {
                    None => i = len,
                    Some(off) => {
                        let p = i + off;
                        if chunk[p] == b'\\' {
                            if p + 1 == len {
                                self.escape = true;
                            }
                            i = p + 2;
                        } else {
                            self.in_string = false;
                            i = p + 1;
                        }
                    }
                }
                continue;
            }
            match chunk[i] {
                b'"' => self.in_string = true,
                b'{' | b'[' => {
                    if self.depth == 1 && chunk[i] == b'{' {
                        self.in_element = true;
                        start = Some(i);
                    }
                    self.depth = self.depth.saturating_add(1);
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 1 && self.in_element {
                        self.in_element = false;
                        let end = i + 1;
                        match start.take() {
                            Some(s) => on_event(&chunk[s..end], Some(s..end)),
                            None => {
                                if !self.overflow && self.carry.len() + end <= self.max {
                                    self.carry.extend_from_slice(&chunk[..end]);
                                    on_event(&self.carry, None);
                                }
                                self.carry.clear();
                                self.overflow = false;
                            }
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if !self.in_element || self.overflow {
            return;
        }
        let rest = &chunk[start.unwrap_or(0)..];
        if self.carry.len() + rest.len() > self.max {
            self.carry = Vec::new();
            self.overflow = true;
            return;
        }
        self.carry.extend_from_slice(rest);
    }
}
