//! Where each key and value of the YAML text is: an index from a key path
//! (`providers.openai.api_base`, `models.smart.endpoints[1].provider`) to line:col, built from
//! yaml-rust2's event parser. serde_yaml's `Value` forgets positions, so every later stage
//! (typed deserialization, `${VAR}` expansion, semantic checks) reports through this index.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

/// One step of a path into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

impl Seg {
    pub(crate) fn key(k: &str) -> Seg {
        Seg::Key(k.to_string())
    }
}

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
}

impl Pos {
    fn from_marker(m: Marker) -> Pos {
        // yaml-rust2 lines are 1-based, columns 0-based.
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    /// The mapping key (or, for a sequence item, the item itself).
    key: Pos,
    /// The value.
    value: Pos,
}

/// Key path -> position, plus the duplicate keys found on the way.
#[derive(Debug, Default)]
pub(crate) struct SpanIndex {
    nodes: HashMap<Vec<Seg>, Node>,
    /// Every repeated mapping key, at the repetition (serde_yaml reports only the first, and at
    /// the mapping rather than the key).
    pub duplicates: Vec<(Vec<Seg>, Pos)>,
}

impl SpanIndex {
    /// Indexes the first document of `text`. Best effort: on a syntax error the index holds what
    /// was read before it (serde_yaml reports the error itself).
    pub(crate) fn build(text: &str) -> SpanIndex {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        // A syntax error only truncates the index; serde_yaml reports the error with a position.
        let _ = parser.load(&mut builder, false);
        builder.index
    }

    /// Where the key of `path` is (for "unknown field", "missing field", whole-entry problems),
    /// falling back to the nearest indexed ancestor.
    pub(crate) fn key_pos(&self, path: &[Seg]) -> Option<Pos> {
        (0..=path.len())
            .rev()
            .find_map(|n| self.nodes.get(&path[..n]).map(|node| node.key))
    }

    /// Whether `path` itself is in the text (not just an ancestor).
    pub(crate) fn contains(&self, path: &[Seg]) -> bool {
        self.nodes.contains_key(path)
    }

    /// Where the value of `path` is (for "invalid value" problems), falling back to the key of
    /// the nearest indexed ancestor.
    pub(crate) fn value_pos(&self, path: &[Seg]) -> Option<Pos> {
        match self.nodes.get(path) {
            Some(node) => Some(node.value),
            None => self.key_pos(path),
        }
    }
}

/// `providers.openai.models[0].id`, for messages.
pub(crate) struct DisplayPath<'a>(pub &'a [Seg]);

impl fmt::Display for DisplayPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(k)?,
                Seg::Key(k) => {
                    f.write_char('.')?;
                    f.write_str(k)?;
                }
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

enum Frame {
    Map {
        /// The key whose value comes next: `None` while a key is expected, `Some(None)` after a
        /// non-scalar (complex) key, which is not indexed.
        key: Option<Option<(String, Pos)>>,
        seen: HashSet<String>,
        /// The mapping's own position is taken from its first key: yaml-rust2 marks a block
        /// mapping's start after that key.
        first_key_pending: bool,
        /// Whether this frame pushed a segment onto the path (the root did not).
        has_seg: bool,
    },
    Seq {
        next: usize,
        has_seg: bool,
    },
}

#[derive(Default)]
struct Builder {
    index: SpanIndex,
    stack: Vec<Frame>,
    path: Vec<Seg>,
    /// Depth of a collection being skipped (a complex key or the value under one).
    skipping: usize,
    root_seen: bool,
}

enum Start {
    Leaf,
    Map,
    Seq,
}

/// What an event means for the index, decided before the index is touched.
enum Step {
    Root,
    Key {
        fix_map_pos: bool,
        duplicate: Option<String>,
    },
    Value(Option<(String, Pos)>),
    Item(usize),
}

impl Builder {
    fn record(&mut self, key: Pos, value: Pos) {
        self.index
            .nodes
            .entry(self.path.clone())
            .or_insert(Node { key, value });
    }

    fn enter(&mut self, start: Start, has_seg: bool) {
        match start {
            Start::Leaf => {
                if has_seg {
                    self.path.pop();
                }
            }
            Start::Map => self.stack.push(Frame::Map {
                key: None,
                seen: HashSet::new(),
                first_key_pending: true,
                has_seg,
            }),
            Start::Seq => self.stack.push(Frame::Seq { next: 0, has_seg }),
        }
    }

    fn node(&mut self, start: Start, pos: Pos, scalar: Option<&str>) {
        let leaf = matches!(start, Start::Leaf);
        let step = match self.stack.last_mut() {
            None => Step::Root,
            Some(Frame::Map {
                key: key @ None,
                seen,
                first_key_pending,
                ..
            }) => {
                let fix_map_pos = std::mem::take(first_key_pending);
                let mut duplicate = None;
                match scalar {
                    Some(k) if leaf => {
                        if !seen.insert(k.to_string()) {
                            duplicate = Some(k.to_string());
                        }
                        *key = Some(Some((k.to_string(), pos)));
                    }
                    _ => *key = Some(None),
                }
                Step::Key {
                    fix_map_pos,
                    duplicate,
                }
            }
            Some(Frame::Map { key, .. }) => Step::Value(key.take().flatten()),
            Some(Frame::Seq { next, .. }) => {
                let i = *next;
                *next += 1;
                Step::Item(i)
            }
        };
        match step {
            Step::Root => {
                if !self.root_seen {
                    self.root_seen = true;
                    self.record(pos, pos);
                    self.enter(start, false);
                }
            }
            Step::Key {
                fix_map_pos,
                duplicate,
            } => {
                if let Some(k) = duplicate {
                    let mut dup = self.path.clone();
                    dup.push(Seg::Key(k));
                    self.index.duplicates.push((dup, pos));
                }
                if fix_map_pos {
                    // A mapping inside a sequence (or at the root) has no key of its own: its
                    // first key stands for it.
                    let keyless = matches!(self.path.last(), Some(Seg::Index(_)) | None);
                    if let Some(node) = self.index.nodes.get_mut(&self.path) {
                        node.value = pos;
                        if keyless {
                            node.key = pos;
                        }
                    }
                }
                if !leaf {
                    self.skipping = 1;
                }
            }
            Step::Value(Some((k, key_pos))) => {
                self.path.push(Seg::Key(k));
                self.record(key_pos, pos);
                self.enter(start, true);
            }
            Step::Value(None) => {
                if !leaf {
                    self.skipping = 1;
                }
            }
            Step::Item(i) => {
                self.path.push(Seg::Index(i));
                self.record(pos, pos);
                self.enter(start, true);
            }
        }
    }

    fn end(&mut self) {
        let has_seg = match self.stack.pop() {
            Some(Frame::Map { has_seg, .. } | Frame::Seq { has_seg, .. }) => has_seg,
            None => false,
        };
        if has_seg {
            self.path.pop();
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.skipping > 0 {
            match ev {
                Event::MappingStart(..) | Event::SequenceStart(..) => self.skipping += 1,
                Event::MappingEnd | Event::SequenceEnd => self.skipping -= 1,
                _ => {}
            }
            return;
        }
        let pos = Pos::from_marker(mark);
        match ev {
            Event::Scalar(ref value, ..) => self.node(Start::Leaf, pos, Some(value)),
            Event::Alias(_) => self.node(Start::Leaf, pos, None),
            Event::MappingStart(..) => self.node(Start::Map, pos, None),
            Event::SequenceStart(..) => self.node(Start::Seq, pos, None),
            Event::MappingEnd | Event::SequenceEnd => self.end(),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &[&str]) -> Vec<Seg> {
        s.iter()
            .map(|p| match p.parse::<usize>() {
                Ok(n) => Seg::Index(n),
                Err(_) => Seg::key(p),
            })
            .collect()
    }

    const TEXT: &str = "\
providers:
  openai:
    api_base: https://x
    models:
      - id: a
        nme: 3
      - {id: b, context_length: big}
      - plain
models:
  smart:
    endpoints:
      - provider: openai
        service_id: a
";

    #[test]
    fn keys_and_values_have_positions() {
        let ix = SpanIndex::build(TEXT);
        let at = |p: &[&str]| ix.key_pos(&path(p)).map(|p| (p.line, p.col));
        let val = |p: &[&str]| ix.value_pos(&path(p)).map(|p| (p.line, p.col));
        assert_eq!(at(&["providers"]), Some((1, 1)));
        assert_eq!(at(&["providers", "openai"]), Some((2, 3)));
        assert_eq!(at(&["providers", "openai", "api_base"]), Some((3, 5)));
        assert_eq!(val(&["providers", "openai", "api_base"]), Some((3, 15)));
        assert_eq!(at(&["providers", "openai", "models", "0"]), Some((5, 9)));
        assert_eq!(
            at(&["providers", "openai", "models", "0", "nme"]),
            Some((6, 9))
        );
        assert_eq!(
            val(&["providers", "openai", "models", "1", "context_length"]),
            Some((7, 33))
        );
        assert_eq!(at(&["providers", "openai", "models", "2"]), Some((8, 9)));
        assert_eq!(
            val(&["models", "smart", "endpoints", "0", "provider"]),
            Some((12, 19))
        );
        // Unknown paths fall back to the nearest ancestor's key.
        assert_eq!(at(&["models", "smart", "strategy"]), Some((10, 3)));
        assert_eq!(at(&["nowhere"]), Some((1, 1)));
    }

    #[test]
    fn duplicates_are_found_at_the_repetition() {
        let ix = SpanIndex::build("a:\n  b: 1\n  c: 2\n  b: 3\nd: 1\nd: 2\n");
        let dups: Vec<_> = ix
            .duplicates
            .iter()
            .map(|(p, pos)| (DisplayPath(p).to_string(), pos.line, pos.col))
            .collect();
        assert_eq!(
            dups,
            vec![("a.b".to_string(), 4, 3), ("d".to_string(), 6, 1)]
        );
    }

    #[test]
    fn complex_keys_are_skipped() {
        let ix = SpanIndex::build("? [a, b]\n: {x: 1}\nc: 2\n");
        assert_eq!(ix.key_pos(&path(&["c"])).map(|p| p.line), Some(3));
    }

    #[test]
    fn display_path() {
        assert_eq!(
            DisplayPath(&path(&["models", "smart", "endpoints", "1", "provider"])).to_string(),
            "models.smart.endpoints[1].provider"
        );
    }
}
