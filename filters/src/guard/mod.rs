//! Guardrails: find secrets, personal data and dangerous commands in the texts an agent sends
//! to a model (upgoing) and the texts the model sends back (downgoing), and warn, redact or
//! block per rule. Pure and I/O-free: the proxy decides which rules apply to a request, builds
//! one [`Guard`] per rule set (compiled once, shared across requests) and calls [`Guard::check`]
//! on whole texts or [`Guard::stream`] on each streamed content part.
//!
//! # Matching
//! All rules are compiled into one [`RegexSet`], so the common case (no match) is a single pass
//! over the text; only the rules the set reports are then searched for positions, and their
//! matches go through validators (Luhn, mod-97, address ranges). Overlapping matches are
//! resolved deterministically: leftmost start, then the longest match, then the lower rule
//! index; the scan resumes after the chosen match, so redactions never overlap. A PEM block
//! counts as longer than any other match starting at the same place.
//!
//! # Blocking
//! When a `Block` rule's match is chosen, the result stops there: [`Checked::text`] is the text
//! before that match (with earlier redactions applied), [`Checked::hits`] ends with the blocking
//! hit and [`Checked::blocked`] names the rule. A blocked stream releases nothing more.
//!
//! # Streams
//! [`GuardStream`] holds back the last [`Guard::window`] bytes of a part (plus at most the rest
//! of one UTF-8 char), scanning once twice that much is held (so at most `2 × window()` bytes
//! wait at any time, and each scan releases at least a window): every match except a PEM block is at most `window() - 4` bytes long (the
//! longest match of every rule is computed from its regex; 4 bytes of lookahead cover a word
//! boundary after the match), so once that much text follows a position, whether a match
//! starts there is decided and the text before it can be released. A PEM block is recognised
//! by its short BEGIN line; from then on everything up to the END line is held back and
//! replaced (Redact) or released as it comes (Warn), while normal text is never delayed by more
//! than the window. The concatenated output of a stream split anywhere equals
//! `check(whole).text`, with the same hits in the same order and the same block.
//!
//! The window depends on the rules: with every built-in it is 285 bytes (the longest is
//! `pii_emails`, 281: a 64-byte local part and a bounded domain), without `pii_emails` 222
//! (`credentials`). Built-in patterns bound every repetition for that reason (an API key tail
//! is at most 200 chars, a GitHub PAT 120, a password value 128).
//!
//! A custom regex whose matches can be longer than [`MAX_WINDOW`] (e.g. `.*`) works on whole
//! texts, but in streams a match is only guaranteed to be found the same way if it is at most
//! `MAX_WINDOW` bytes long.

mod builtins;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use regex::{Regex, RegexSet};

pub use builtins::BUILTINS;
use builtins::{Spec, Validator};

/// Bytes of lookahead a decision may need after a match's last byte: one UTF-8 char, for a
/// word boundary or a validator's peek at the next char.
const LOOKAHEAD: usize = 4;
/// Cap on the stream window, for custom regexes with unbounded (or huge) matches.
pub const MAX_WINDOW: usize = 1024;
/// Bytes of already released text kept in front of the held text, so a word boundary at the
/// first held byte sees the char before it (one char is enough; a few to be safe).
const CONTEXT: usize = 8;

/// What to do with a rule's matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Report the hit; the text passes unchanged.
    Warn,
    /// Replace the match by [`redaction`]`(rule id)`.
    Redact,
    /// Stop: release nothing from the match on.
    Block,
}

impl Action {
    /// The action's name, as in the config, reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Warn => "warn",
            Action::Redact => "redact",
            Action::Block => "block",
        }
    }
}

/// What a rule looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// One of [`BUILTINS`], by id.
    Builtin(String),
    /// A custom rule's regex source (`regex` crate syntax). It must not match the empty string.
    Regex(String),
}

/// One guardrail rule, as the proxy maps it from the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Shown in `[REDACTED:<id>]` and in reports.
    pub id: String,
    pub pattern: Pattern,
    pub action: Action,
}

/// One match that was acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Index into [`Guard::rules`].
    pub rule: usize,
    pub action: Action,
}

/// The result of checking a text (or a stream delta).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<'a> {
    /// The text with every Redact match replaced by `[REDACTED:<id>]`; borrowed when nothing
    /// was redacted. When blocked, only the text before the blocking match.
    pub text: Cow<'a, str>,
    /// Every match acted on, in text order (ending with the blocking one when blocked).
    pub hits: Vec<Hit>,
    /// The rule index of the first Block hit.
    pub blocked: Option<usize>,
}

/// `[REDACTED:<id>]`, what a Redact match is replaced by.
pub fn redaction(id: &str) -> String {
    format!("[REDACTED:{id}]")
}

enum Kind {
    Plain(Option<Validator>),
    /// The rule's regex finds the BEGIN line; this finds the END line.
    Pem(Regex),
}

struct Compiled {
    regex: Regex,
    kind: Kind,
    replacement: String,
}

/// A compiled rule set. Build once per rule set and share (`Send + Sync`); checking allocates
/// only for redactions and hits.
pub struct Guard {
    rules: Vec<Rule>,
    compiled: Vec<Compiled>,
    set: RegexSet,
    window: usize,
    /// The shortest match of any rule, in bytes: a shorter text cannot match (most JSON
    /// strings of a request, roles, ids, enum values, are skipped on their length alone).
    shortest: usize,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("rules", &self.rules)
            .field("window", &self.window)
            .finish()
    }
}

/// The longest match of a regex in bytes (`None`: unbounded) and its shortest (0: it can
/// match the empty string).
fn bounds(source: &str) -> Result<(Option<usize>, usize), String> {
    let hir = regex_syntax::Parser::new()
        .parse(source)
        .map_err(|e| e.to_string())?;
    let props = hir.properties();
    Ok((props.maximum_len(), props.minimum_len().unwrap_or(0)))
}

impl Guard {
    /// Compiles `rules`. Errors (naming the rule) on an unknown builtin id, an invalid regex,
    /// or a regex that can match the empty string (it would match everywhere).
    pub fn new(rules: Vec<Rule>) -> Result<Guard, String> {
        let mut compiled = Vec::with_capacity(rules.len());
        let mut sources = Vec::with_capacity(rules.len());
        let mut longest = 0usize;
        let mut shortest = usize::MAX;
        for rule in &rules {
            let name = &rule.id;
            let (source, kind) = match &rule.pattern {
                Pattern::Builtin(id) => match builtins::spec(id) {
                    Some(Spec::Regex(src, validator)) => (src.to_string(), Kind::Plain(validator)),
                    Some(Spec::Pem { begin, end }) => {
                        let end_re = Regex::new(end)
                            .map_err(|e| format!("rule {name}: builtin {id}: {e}"))?;
                        let (max, _) = bounds(end)?;
                        longest = longest.max(max.unwrap_or(MAX_WINDOW));
                        (begin.to_string(), Kind::Pem(end_re))
                    }
                    None => {
                        return Err(format!(
                            "rule {name}: unknown builtin pattern {id:?} (known: {})",
                            BUILTINS.join(", ")
                        ))
                    }
                },
                Pattern::Regex(src) => (src.clone(), Kind::Plain(None)),
            };
            let regex = Regex::new(&source).map_err(|e| format!("rule {name}: {e}"))?;
            let (max, min) = bounds(&source).map_err(|e| format!("rule {name}: {e}"))?;
            if min == 0 {
                return Err(format!("rule {name}: the regex can match the empty string"));
            }
            shortest = shortest.min(min);
            longest = longest.max(max.unwrap_or(MAX_WINDOW).min(MAX_WINDOW));
            sources.push(source);
            compiled.push(Compiled {
                regex,
                kind,
                replacement: redaction(name),
            });
        }
        let set = RegexSet::new(&sources).map_err(|e| format!("rule set: {e}"))?;
        Ok(Guard {
            rules,
            compiled,
            set,
            window: longest + LOOKAHEAD,
            shortest,
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The stream hold-back bound in bytes: the longest match of any rule (except a PEM block's
    /// body, custom regexes capped at [`MAX_WINDOW`]) plus 4 bytes of lookahead. A stream holds
    /// back at most this much normal text (plus the rest of one UTF-8 char). 285 with every
    /// built-in.
    pub fn window(&self) -> usize {
        self.window
    }

    /// Checks a whole text.
    pub fn check<'a>(&self, text: &'a str) -> Checked<'a> {
        if text.len() < self.shortest {
            return Checked {
                text: Cow::Borrowed(text),
                hits: Vec::new(),
                blocked: None,
            };
        }
        let mut state = State::default();
        let mut sink = Sink::new(text, 0);
        let mut hits = Vec::new();
        self.run(text, &mut state, true, &mut sink, &mut hits);
        Checked {
            text: sink.into_cow(),
            hits,
            blocked: state.blocked,
        }
    }

    /// A scanner for one streamed content part.
    pub fn stream(&self) -> GuardStream<&Guard> {
        GuardStream {
            guard: self,
            buf: String::new(),
            state: State::default(),
        }
    }

    /// The next valid match of rule `i` starting at or after `from`.
    fn next_match(&self, i: usize, hay: &str, mut from: usize) -> Option<(usize, usize)> {
        let c = &self.compiled[i];
        loop {
            let m = c.regex.find_at(hay, from)?;
            let ok = match c.kind {
                Kind::Plain(Some(validate)) => validate(m.as_str(), hay[m.end()..].chars().next()),
                _ => true,
            };
            if ok {
                return Some((m.start(), m.end()));
            }
            from = m.start() + hay[m.start()..].chars().next().map_or(1, char::len_utf8);
            if from > hay.len() {
                return None;
            }
        }
    }

    /// The scan shared by [`Guard::check`] and [`GuardStream`]: from `state.pos` in `hay`,
    /// act on every match whose extent is decided (all of them when `last`, else those starting
    /// at least `window()` bytes before the end), then release text that can no longer be part
    /// of a match.
    fn run(&self, hay: &str, state: &mut State, last: bool, sink: &mut Sink, hits: &mut Vec<Hit>) {
        if state.blocked.is_some() {
            return;
        }
        let len = hay.len();
        // Starts at or before `decided` have their matches (or their absence) fixed. Fewer
        // than `window` bytes held: not even the first one is decided yet (also inside a PEM
        // body, where an END line may be starting).
        let decided = if last {
            len
        } else {
            match len.checked_sub(self.window) {
                Some(d) => d,
                None => return,
            }
        };
        let is_decided = |start: usize| start <= decided;
        // No match starts before `decided`: the text up to there can be released.
        let release_to = |pos: usize| floor_char(hay, decided.max(pos));
        // `is_match_at` stops at the first match and runs the DFA's fast loop: on clean text
        // (the common case) it is the only pass. Only when something matches does the slower
        // overlapping search say which rules did.
        let from = state.pos.min(len);
        let candidates: Vec<usize> =
            if (state.pem.is_some() || state.pos < len) && self.set.is_match_at(hay, from) {
                self.set.matches_at(hay, from).into_iter().collect()
            } else {
                Vec::new()
            };
        // Cached next match per candidate rule: valid while its start >= pos.
        let mut next: Vec<Option<Option<(usize, usize)>>> = vec![None; candidates.len()];
        loop {
            if let Some(rule) = state.pem {
                let Kind::Pem(end_re) = &self.compiled[rule].kind else {
                    state.pem = None;
                    continue;
                };
                let warn = self.rules[rule].action == Action::Warn;
                match end_re.find_at(hay, state.pos) {
                    Some(m) if is_decided(m.start()) => {
                        if warn {
                            sink.copy(m.end());
                        } else {
                            sink.skip(m.end());
                        }
                        state.pos = m.end();
                        state.pem = None;
                        continue;
                    }
                    _ => {
                        let to = release_to(state.pos);
                        if warn {
                            sink.copy(to);
                        } else {
                            sink.skip(to);
                        }
                        state.pos = to;
                        if last {
                            state.pem = None;
                        }
                        return;
                    }
                }
            }
            let pos = state.pos;
            let mut best: Option<(usize, usize, usize)> = None; // start, end, rule
            for (slot, &rule) in next.iter_mut().zip(&candidates) {
                let fresh = match slot {
                    Some(Some((s, _))) => *s < pos,
                    Some(None) => false,
                    None => true,
                };
                if fresh {
                    *slot = Some(self.next_match(rule, hay, pos));
                }
                let Some(Some((s, e))) = *slot else { continue };
                let longer = |a: (usize, usize, usize)| self.key_len(a.2, a.0, a.1);
                let better = match best {
                    None => true,
                    Some(b) => s < b.0 || (s == b.0 && longer((s, e, rule)) > longer(b)),
                };
                if better {
                    best = Some((s, e, rule));
                }
            }
            match best {
                Some((s, e, rule)) if is_decided(s) => {
                    sink.copy(s);
                    let action = self.rules[rule].action;
                    hits.push(Hit { rule, action });
                    let pem = matches!(self.compiled[rule].kind, Kind::Pem(_));
                    match action {
                        Action::Block => {
                            state.blocked = Some(rule);
                            state.pos = s;
                            return;
                        }
                        Action::Warn => sink.copy(e),
                        Action::Redact => sink.redact(&self.compiled[rule].replacement, e),
                    }
                    state.pos = e;
                    if pem {
                        state.pem = Some(rule);
                    }
                }
                _ => {
                    let to = release_to(pos);
                    sink.copy(to);
                    state.pos = to;
                    return;
                }
            }
        }
    }

    /// The length used to rank matches starting at the same place: a PEM block beats all.
    fn key_len(&self, rule: usize, start: usize, end: usize) -> usize {
        match self.compiled[rule].kind {
            Kind::Pem(_) => usize::MAX,
            Kind::Plain(_) => end - start,
        }
    }
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[derive(Default)]
struct State {
    /// Everything before this byte of the haystack has been decided and emitted.
    pos: usize,
    /// Inside the body of a PEM block matched by this rule.
    pem: Option<usize>,
    blocked: Option<usize>,
}

/// The output being built: runs of the haystack copied through (kept as one range until a
/// redaction breaks it, so an unredacted text is returned borrowed) and replacements.
struct Sink<'h> {
    hay: &'h str,
    out: String,
    owned: bool,
    start: usize,
    end: usize,
}

impl<'h> Sink<'h> {
    fn new(hay: &'h str, at: usize) -> Sink<'h> {
        Sink {
            hay,
            out: String::new(),
            owned: false,
            start: at,
            end: at,
        }
    }
    /// Releases the haystack up to `to` unchanged.
    fn copy(&mut self, to: usize) {
        self.end = self.end.max(to);
    }
    /// Drops the haystack up to `to` (the body of a redacted PEM block).
    fn skip(&mut self, to: usize) {
        self.out.push_str(&self.hay[self.start..self.end]);
        self.owned = true;
        self.start = to;
        self.end = to;
    }
    /// Replaces the haystack up to `to` by `replacement`.
    fn redact(&mut self, replacement: &str, to: usize) {
        self.skip(to);
        self.out.push_str(replacement);
    }
    fn into_cow(mut self) -> Cow<'h, str> {
        if !self.owned {
            return Cow::Borrowed(&self.hay[self.start..self.end]);
        }
        self.out.push_str(&self.hay[self.start..self.end]);
        Cow::Owned(self.out)
    }
}

/// Scans one streamed content part: [`push`](GuardStream::push) each delta,
/// [`finish`](GuardStream::finish) at the end of the part. See the module docs for the window.
///
/// `G` is how the stream holds its guard: a borrow (`Guard::stream`), or an `Arc<Guard>`
/// ([`GuardStream::new`]) for a stream owned by something that outlives any borrow (a hook on a
/// response stream).
pub struct GuardStream<G: std::ops::Deref<Target = Guard>> {
    guard: G,
    /// A few bytes of released context, then the held text.
    buf: String,
    state: State,
}

impl GuardStream<std::sync::Arc<Guard>> {
    /// A stream holding its guard by `Arc`.
    pub fn new(guard: std::sync::Arc<Guard>) -> Self {
        GuardStream {
            guard,
            buf: String::new(),
            state: State::default(),
        }
    }
}

impl<G: std::ops::Deref<Target = Guard>> GuardStream<G> {
    /// Appends `delta` and returns the text now safe to release (and the hits acted on, in
    /// order). Once blocked, returns nothing more (with `blocked` still set): the proxy ends
    /// the stream there.
    pub fn push(&mut self, delta: &str) -> Checked<'static> {
        if self.state.blocked.is_none() {
            self.buf.push_str(delta);
        }
        self.advance(false)
    }

    /// Ends the part: releases the held tail.
    pub fn finish(&mut self) -> Checked<'static> {
        self.advance(true)
    }

    /// Whether a Block rule stopped this stream.
    pub fn blocked(&self) -> Option<usize> {
        self.state.blocked
    }

    fn advance(&mut self, last: bool) -> Checked<'static> {
        // Scan only once twice the window is held: each scan then releases at least a window's
        // worth of text, so the work per byte is bounded (scanning on every small delta re-read
        // the whole window each time: ~9x the instructions of an unguarded stream). Inside a
        // PEM body the scan runs on every push, so the body is swallowed as it comes.
        if !last
            && self.state.blocked.is_none()
            && self.state.pem.is_none()
            && self.buf.len().saturating_sub(self.state.pos) < 2 * self.guard.window
        {
            return Checked {
                text: Cow::Owned(String::new()),
                hits: Vec::new(),
                blocked: None,
            };
        }
        let mut hits = Vec::new();
        let text = if self.state.blocked.is_some() {
            String::new()
        } else {
            let mut sink = Sink::new(&self.buf, self.state.pos);
            self.guard
                .run(&self.buf, &mut self.state, last, &mut sink, &mut hits);
            sink.into_cow().into_owned()
        };
        // Keep a little released context in front of the held text.
        let keep = floor_char(&self.buf, self.state.pos.saturating_sub(CONTEXT));
        if keep > 0 {
            self.buf.drain(..keep);
            self.state.pos -= keep;
        }
        Checked {
            text: Cow::Owned(text),
            hits,
            blocked: self.state.blocked,
        }
    }
}
