//! Guardrails on the request path: which rules apply to a request, scanning request and
//! response bodies, and the stream hook for streamed answers.
//!
//! The rules come from `guardrails:` / `plugins.bitrouter-guardrails` in bitrouter.yaml
//! (resolved by the config crate); detection is `bitrouter_filters::guard` (one regex-set pass
//! for every rule, then positions and validators for the rules that matched). A rule may be
//! scoped to, or exempt, models and providers, so the rules of a request depend on where it is
//! routed: the compiled guard of each (direction, rule subset) is built once per configuration
//! and cached.
//!
//! Bodies are scanned string by string ([`bitrouter_filters::json_strings`]): every string
//! value of the JSON the provider receives (upgoing) or the client receives (downgoing), except
//! identifiers, enums and inline binary data ([`SKIP_KEYS`]), so a secret is found in messages,
//! system prompts, tool results, tool-call arguments or anywhere else; a redaction changes only
//! that string, and every other byte of the body stays as it was.

use bitrouter_config::{GuardrailAction, GuardrailRule, Guardrails};
use bitrouter_filters::canonical::{CanonicalError, ErrorKind, StreamEvent};
use bitrouter_filters::guard::{Action, Guard, GuardStream, Pattern, Rule};
use bitrouter_filters::json_strings::rewrite_strings;
use bitrouter_filters::stream::StreamHook;
use prometheus::IntCounterVec;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Which way the text travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the agent to the model.
    Up,
    /// From the model to the agent.
    Down,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Up => "upgoing",
            Direction::Down => "downgoing",
        }
    }
}

/// The most rules a configuration may have (the cache key is a bit set).
const MAX_RULES: usize = 128;

/// Keys whose string values are identifiers, enum values or inline binary data, never text an
/// agent or a model wrote: not scanned (base64 image data would cost time and could look like
/// a key).
pub const SKIP_KEYS: &[&str] = &[
    "model",
    "role",
    "type",
    "id",
    "call_id",
    "tool_call_id",
    "tool_use_id",
    "object",
    "signature",
    "thoughtSignature",
    "thought_signature",
    "encrypted_content",
    "data",
    "media_type",
    "mime_type",
    "mimeType",
    "finish_reason",
    "stop_reason",
    "finishReason",
    "status",
    "detail",
    "effort",
    "system_fingerprint",
    "service_tier",
];

/// Compiled guards by direction and applicable-rule set (`None`: no rule applies).
type GuardCache = HashMap<(Direction, u128), Option<Arc<Guard>>>;

/// The guardrails of one configuration.
pub struct GuardSet {
    rules: Vec<GuardrailRule>,
    cache: Mutex<GuardCache>,
    /// When no rule is scoped (the usual configuration), each direction's guard is the same
    /// for every request: kept here (up, down) so a request takes it without a name to
    /// format, a lock or a lookup.
    unscoped: Option<[Option<Arc<Guard>>; 2]>,
}

impl GuardSet {
    /// Compiles the configuration's rules once per direction (so a rule the detector refuses is
    /// an error at load or reload, not at the first request).
    pub fn new(config: &Guardrails) -> Result<GuardSet, String> {
        if config.rules.len() > MAX_RULES {
            return Err(format!(
                "guardrails: at most {MAX_RULES} rules (built-in and custom) are supported"
            ));
        }
        let mut set = GuardSet {
            rules: config.rules.clone(),
            cache: Mutex::new(HashMap::new()),
            unscoped: None,
        };
        let mut full = [None, None];
        for (slot, dir) in full.iter_mut().zip([Direction::Up, Direction::Down]) {
            *slot = set.all(dir);
            if set.has(dir) && slot.is_none() {
                set.compile(dir, set.mask(dir))?;
            }
        }
        let scoped = set.rules.iter().any(|r| {
            !(r.models.is_empty()
                && r.providers.is_empty()
                && r.exempt_models.is_empty()
                && r.exempt_providers.is_empty())
        });
        if !scoped {
            set.unscoped = Some(full);
        }
        Ok(set)
    }

    /// The guard of every rule acting in `dir`, scopes ignored (`bitrouter guardrails test`).
    pub fn all(&self, dir: Direction) -> Option<Arc<Guard>> {
        let mask = self.mask(dir);
        if mask == 0 {
            return None;
        }
        self.compile(dir, mask).ok().flatten()
    }

    /// The rules acting in `dir`, as a bit mask.
    fn mask(&self, dir: Direction) -> u128 {
        self.rules
            .iter()
            .enumerate()
            .filter(|(_, r)| Self::action(r, dir).is_some())
            .fold(0u128, |m, (i, _)| m | (1u128 << i))
    }

    /// Whether any rule acts in `dir`.
    pub fn has(&self, dir: Direction) -> bool {
        self.rules.iter().any(|r| Self::action(r, dir).is_some())
    }

    fn action(rule: &GuardrailRule, dir: Direction) -> Option<GuardrailAction> {
        match dir {
            Direction::Up => rule.upgoing,
            Direction::Down => rule.downgoing,
        }
    }

    fn compile(&self, dir: Direction, mask: u128) -> Result<Option<Arc<Guard>>, String> {
        let rules: Vec<Rule> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1u128 << i) != 0)
            .filter_map(|(_, r)| {
                Self::action(r, dir).map(|a| Rule {
                    id: r.id.clone(),
                    pattern: match &r.regex {
                        Some(re) => Pattern::Regex(re.clone()),
                        None => Pattern::Builtin(r.id.clone()),
                    },
                    action: match a {
                        GuardrailAction::Warn => Action::Warn,
                        GuardrailAction::Redact => Action::Redact,
                        GuardrailAction::Block => Action::Block,
                    },
                })
            })
            .collect();
        if rules.is_empty() {
            return Ok(None);
        }
        Guard::new(rules)
            .map(|g| Some(Arc::new(g)))
            .map_err(|e| format!("guardrails: {e}"))
    }

    /// The guard for text travelling `dir` on a request routed to `provider` (the client asked
    /// for `requested`, the provider serves `service_id`); `None` when no rule applies.
    pub fn guard(
        &self,
        dir: Direction,
        provider: &str,
        requested: &str,
        service_id: &str,
    ) -> Option<Arc<Guard>> {
        if let Some(full) = &self.unscoped {
            return full[match dir {
                Direction::Up => 0,
                Direction::Down => 1,
            }]
            .clone();
        }
        let mut mask = 0u128;
        let qualified = format!("{provider}/{service_id}");
        for (i, rule) in self.rules.iter().enumerate() {
            if Self::action(rule, dir).is_some()
                && applies(rule, provider, [requested, service_id, &qualified])
            {
                mask |= 1u128 << i;
            }
        }
        if mask == 0 {
            return None;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get(&(dir, mask)) {
            return found.clone();
        }
        // Compiled at load for the full set; a subset of valid rules compiles too.
        let guard = self.compile(dir, mask).ok().flatten();
        cache.insert((dir, mask), guard.clone());
        guard
    }
}

/// Whether `rule` applies to a request for `requested` / `service_id` on `provider`.
/// (`names`: the model asked for, the upstream model id, `provider/model`.)
fn applies(rule: &GuardrailRule, provider: &str, names: [&str; 3]) -> bool {
    let model_in = |list: &[String]| list.iter().any(|g| names.iter().any(|n| glob(g, n)));
    let provider_in = |list: &[String]| list.iter().any(|p| p == provider);
    (rule.models.is_empty() || model_in(&rule.models))
        && (rule.providers.is_empty() || provider_in(&rule.providers))
        && !model_in(&rule.exempt_models)
        && !provider_in(&rule.exempt_providers)
}

/// `*` matches any run of characters (also `/`); everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// What scanning a body found and did.
#[derive(Debug, Default)]
pub struct Scanned {
    /// The body with redactions applied; `None` when nothing was redacted.
    pub body: Option<Vec<u8>>,
    /// Every rule that matched, with its action (in order, repeated per match).
    pub hits: Vec<(String, Action)>,
    /// The first `block` rule that matched.
    pub blocked: Option<String>,
}

/// Scans every text string of a JSON body (see the module docs).
pub fn scan_body(guard: &Guard, body: &[u8]) -> Result<Scanned, String> {
    let mut hits = Vec::new();
    let mut blocked: Option<String> = None;
    let rewritten = rewrite_strings(body, |key, value| {
        if blocked.is_some()
            || key.is_some_and(|k| SKIP_KEYS.contains(&k))
            || value.starts_with("data:")
        {
            return None;
        }
        let checked = guard.check(value);
        for hit in &checked.hits {
            if let Some(rule) = guard.rules().get(hit.rule) {
                hits.push((rule.id.clone(), hit.action));
            }
        }
        if let Some(rule) = checked.blocked.and_then(|i| guard.rules().get(i)) {
            blocked = Some(rule.id.clone());
            return None;
        }
        match checked.text {
            std::borrow::Cow::Owned(text) => Some(text),
            std::borrow::Cow::Borrowed(_) => None,
        }
    })?;
    Ok(Scanned {
        body: if blocked.is_some() { None } else { rewritten },
        hits,
        blocked,
    })
}

/// Records `hits` in the metrics and returns them as `rule=action` items (deduplicated, in
/// order) for the response header and the log line. Never the matched text.
pub fn record(
    counter: &IntCounterVec,
    dir: Direction,
    hits: &[(String, Action)],
    into: &mut Vec<String>,
) {
    for (rule, action) in hits {
        counter
            .with_label_values(&[rule.as_str(), dir.label(), action.as_str()])
            .inc();
        let item = format!("{rule}={}", action.as_str());
        if !into.contains(&item) {
            into.push(item);
        }
    }
}

/// The downgoing guard of one response, with where its matches are reported.
pub struct DownGuard {
    pub guard: Arc<Guard>,
    pub counter: IntCounterVec,
    /// The request's `rule=action` list (read by its log line).
    pub seen: Arc<Mutex<Vec<String>>>,
}

impl DownGuard {
    /// Scans a whole (not streamed) answer the client is about to receive: the body to send
    /// instead when something was redacted, and `reported` (the items already in the response
    /// header, upgoing ones) with this answer's `rule=action` items added; a `block` match is
    /// an error in the client's protocol instead of the answer.
    pub fn scan(
        &self,
        body: &[u8],
        reported: &[String],
    ) -> Result<(Option<Vec<u8>>, Vec<String>), crate::error::ProxyError> {
        let scanned = scan_body(&self.guard, body)
            .map_err(|e| crate::error::ProxyError::Internal(format!("guardrails: {e}")))?;
        let mut items = Vec::new();
        record(&self.counter, Direction::Down, &scanned.hits, &mut items);
        merge_items(
            &mut self.seen.lock().unwrap_or_else(|e| e.into_inner()),
            &items,
        );
        let mut all = reported.to_vec();
        merge_items(&mut all, &items);
        if let Some(rule) = scanned.blocked {
            log::warn!("guardrail `{rule}` blocked an answer (downgoing)");
            return Err(crate::error::ProxyError::GuardrailBlocked {
                rule,
                upgoing: false,
            });
        }
        Ok((scanned.body, all))
    }
}

/// Adds to `into` the items of `items` it does not hold yet, in order.
pub fn merge_items(into: &mut Vec<String>, items: &[String]) {
    for item in items {
        if !into.contains(item) {
            into.push(item.clone());
        }
    }
}

/// The downgoing guard of a streamed answer: every text, reasoning and tool-argument part
/// goes through its own [`GuardStream`], which holds back at most the guard's window; a
/// `block` match ends the stream with an error event in the client's protocol, and nothing
/// after the match is sent.
pub struct GuardHook {
    guard: Arc<Guard>,
    parts: HashMap<usize, (Kind, GuardStream<Arc<Guard>>)>,
    blocked: bool,
    counter: IntCounterVec,
    /// Shared with the request's context, for its log line.
    seen: Arc<Mutex<Vec<String>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    ToolArgs,
}

impl GuardHook {
    pub fn new(guard: Arc<Guard>, counter: IntCounterVec, seen: Arc<Mutex<Vec<String>>>) -> Self {
        GuardHook {
            guard,
            parts: HashMap::new(),
            blocked: false,
            counter,
            seen,
        }
    }

    fn delta(kind: Kind, index: usize, text: String) -> StreamEvent {
        match kind {
            Kind::Text => StreamEvent::TextDelta { index, text },
            Kind::Thinking => StreamEvent::ThinkingDelta { index, text },
            Kind::ToolArgs => StreamEvent::ToolArgsDelta { index, json: text },
        }
    }

    /// Applies a scan result: hits recorded, released text pushed, a block ends the stream.
    fn apply(
        &mut self,
        kind: Kind,
        index: usize,
        checked: bitrouter_filters::guard::Checked<'static>,
        out: &mut Vec<StreamEvent>,
    ) {
        let hits: Vec<(String, Action)> = checked
            .hits
            .iter()
            .filter_map(|h| {
                self.guard
                    .rules()
                    .get(h.rule)
                    .map(|r| (r.id.clone(), h.action))
            })
            .collect();
        if !hits.is_empty() {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            record(&self.counter, Direction::Down, &hits, &mut seen);
        }
        let text = checked.text.into_owned();
        if !text.is_empty() {
            out.push(Self::delta(kind, index, text));
        }
        if let Some(rule) = checked.blocked.and_then(|i| self.guard.rules().get(i)) {
            self.blocked = true;
            log::warn!(
                "guardrail `{}` blocked a streamed answer (downgoing); the stream ends with an error",
                rule.id
            );
            out.push(StreamEvent::Error(
                CanonicalError::new(
                    ErrorKind::InvalidRequest,
                    format!(
                        "the response was blocked by the gateway's guardrail `{}`: the model's answer contains content this gateway does not return",
                        rule.id
                    ),
                )
                .with_code("guardrail_blocked"),
            ));
        }
    }

    fn push(&mut self, kind: Kind, index: usize, text: &str, out: &mut Vec<StreamEvent>) {
        let guard = self.guard.clone();
        let entry = self
            .parts
            .entry(index)
            .or_insert_with(|| (kind, GuardStream::new(guard)));
        let checked = entry.1.push(text);
        self.apply(kind, index, checked, out);
    }

    fn finish_part(&mut self, index: usize, out: &mut Vec<StreamEvent>) {
        if let Some((kind, mut stream)) = self.parts.remove(&index) {
            let checked = stream.finish();
            self.apply(kind, index, checked, out);
        }
    }

    fn finish_all(&mut self, out: &mut Vec<StreamEvent>) {
        let mut open: Vec<usize> = self.parts.keys().copied().collect();
        open.sort_unstable();
        for index in open {
            if self.blocked {
                return;
            }
            self.finish_part(index, out);
        }
    }
}

impl StreamHook for GuardHook {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        if self.blocked {
            return;
        }
        match event {
            StreamEvent::TextDelta { index, text } => self.push(Kind::Text, index, &text, out),
            StreamEvent::ThinkingDelta { index, text } => {
                self.push(Kind::Thinking, index, &text, out)
            }
            StreamEvent::ToolArgsDelta { index, json } => {
                self.push(Kind::ToolArgs, index, &json, out)
            }
            StreamEvent::PartStop { index } => {
                self.finish_part(index, out);
                if !self.blocked {
                    out.push(StreamEvent::PartStop { index });
                }
            }
            e @ (StreamEvent::Done | StreamEvent::Error(_) | StreamEvent::Finish { .. }) => {
                self.finish_all(out);
                if !self.blocked {
                    out.push(e);
                }
            }
            other => out.push(other),
        }
    }

    fn on_finish(&mut self, out: &mut Vec<StreamEvent>) {
        if !self.blocked {
            self.finish_all(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("gpt-*", "gpt-4o"));
        assert!(glob("*", "x"));
        assert!(glob("local/*", "local/qwen3"));
        assert!(glob("*mini*", "gpt-4o-mini-2024"));
        assert!(!glob("gpt-*", "claude"));
        assert!(!glob("a*b", "ab-c"));
        assert!(glob("exact", "exact"));
    }
}
