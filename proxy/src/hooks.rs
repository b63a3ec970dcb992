//! The stream hooks a response passes through, between decode and encode (see
//! `bitrouter_filters::stream::StreamHook`). Guardrails on streamed responses, usage accounting
//! and tracing register a factory here, in the [`Snapshot`](crate::state::Snapshot), so what is
//! active follows the configuration.
//!
//! Cost: with no factory registered nothing changes on the request path, and a same-protocol
//! stream stays a zero-copy pass-through. With one, every stream (same-protocol ones too) is
//! decoded into canonical events, passed through the hooks and encoded again.

use bitrouter_config::Protocol;
use bitrouter_filters::canonical::StreamEvent;
use bitrouter_filters::stream::StreamHook;
use std::sync::Arc;

/// What a factory may look at to decide whether (and how) to watch a response.
#[derive(Debug, Clone, Copy)]
pub struct HookInput<'a> {
    /// The client's protocol.
    pub client: Protocol,
    /// The model the client asked for.
    pub model: &'a str,
    /// The provider answering.
    pub provider: &'a str,
}

/// Builds a hook for one response, or none when it has nothing to do for it.
pub type HookFactory = Arc<dyn Fn(&HookInput<'_>) -> Option<Box<dyn StreamHook>> + Send + Sync>;

/// The registered factories, in the order their hooks see events.
#[derive(Clone, Default)]
pub struct StreamHooks {
    factories: Vec<HookFactory>,
}

impl StreamHooks {
    /// Whether any hook can be active (decides whether same-protocol streams are decoded).
    pub fn is_empty(&self) -> bool {
        self.factories.is_empty()
    }

    pub fn register(&mut self, factory: HookFactory) {
        self.factories.push(factory);
    }

    /// The hooks for one response, chained; `None` when no factory wants this one.
    pub fn build(&self, input: &HookInput<'_>) -> Option<Box<dyn StreamHook>> {
        let mut hooks: Vec<Box<dyn StreamHook>> =
            self.factories.iter().filter_map(|f| f(input)).collect();
        match hooks.len() {
            0 => None,
            1 => hooks.pop(),
            _ => Some(Box::new(Chain(hooks))),
        }
    }
}

/// `hooks` in a row, as one hook (what one pushes is what the next sees).
pub fn chain(hooks: Vec<Box<dyn StreamHook>>) -> Box<dyn StreamHook> {
    Box::new(Chain(hooks))
}

/// Several hooks in a row: what one pushes is what the next sees.
struct Chain(Vec<Box<dyn StreamHook>>);

impl Chain {
    /// Passes `events` through the hooks from `from` on.
    fn run(&mut self, from: usize, events: Vec<StreamEvent>, out: &mut Vec<StreamEvent>) {
        let mut current = events;
        for hook in self.0.iter_mut().skip(from) {
            let mut next = Vec::with_capacity(current.len());
            for event in current {
                hook.on_event(event, &mut next);
            }
            current = next;
        }
        out.extend(current);
    }
}

impl StreamHook for Chain {
    fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
        self.run(0, vec![event], out);
    }

    fn on_finish(&mut self, out: &mut Vec<StreamEvent>) {
        // Each hook releases what it held; that goes through the hooks after it, which then
        // release theirs.
        for i in 0..self.0.len() {
            let mut released = Vec::new();
            if let Some(hook) = self.0.get_mut(i) {
                hook.on_finish(&mut released);
            }
            self.run(i + 1, released, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends a suffix to every text delta.
    struct Suffix(&'static str);
    impl StreamHook for Suffix {
        fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
            out.push(match event {
                StreamEvent::TextDelta { index, text } => StreamEvent::TextDelta {
                    index,
                    text: format!("{text}{}", self.0),
                },
                other => other,
            });
        }
        fn on_finish(&mut self, _out: &mut Vec<StreamEvent>) {}
    }

    /// Holds every text delta until the end.
    #[derive(Default)]
    struct Hold(Vec<StreamEvent>);
    impl StreamHook for Hold {
        fn on_event(&mut self, event: StreamEvent, out: &mut Vec<StreamEvent>) {
            match event {
                StreamEvent::TextDelta { .. } => self.0.push(event),
                other => out.push(other),
            }
        }
        fn on_finish(&mut self, out: &mut Vec<StreamEvent>) {
            out.append(&mut self.0);
        }
    }

    fn text(t: &str) -> StreamEvent {
        StreamEvent::TextDelta {
            index: 0,
            text: t.to_string(),
        }
    }

    fn input() -> HookInput<'static> {
        HookInput {
            client: Protocol::ChatCompletions,
            model: "m",
            provider: "p",
        }
    }

    #[test]
    fn no_factory_means_no_hook() {
        let hooks = StreamHooks::default();
        assert!(hooks.is_empty());
        assert!(hooks.build(&input()).is_none());
    }

    #[test]
    fn factories_chain_in_order_and_release_through_the_later_hooks() {
        let mut hooks = StreamHooks::default();
        hooks.register(Arc::new(|_: &HookInput<'_>| {
            Some(Box::new(Hold::default()) as Box<dyn StreamHook>)
        }));
        hooks.register(Arc::new(|_: &HookInput<'_>| {
            Some(Box::new(Suffix("!")) as Box<dyn StreamHook>)
        }));
        // A factory that declines this response.
        hooks.register(Arc::new(|i: &HookInput<'_>| {
            (i.provider == "other").then(|| Box::new(Suffix("?")) as Box<dyn StreamHook>)
        }));
        let mut hook = hooks.build(&input()).unwrap_or_else(|| panic!("a hook"));
        let mut out = Vec::new();
        hook.on_event(text("a"), &mut out);
        hook.on_event(text("b"), &mut out);
        assert!(out.is_empty(), "held back: {out:?}");
        hook.on_finish(&mut out);
        assert_eq!(out, vec![text("a!"), text("b!")]);
    }
}
