//! Usage and cost of one request, on the request path: what the upstream reported (read from
//! the bytes as they pass, never altering what the client gets), priced with the snapshot's
//! [`PriceBook`](bitrouter_config::PriceBook), then recorded once in the `logging` phase: the
//! token and cost metrics, the log line, and a row on the ledger's queue (see
//! [`crate::ledger`]; nothing here waits on a database).
//!
//! Where the usage comes from, per response path:
//! - same-protocol pass-through: a [`UsageTap`] looks at the relayed SSE events (or the whole
//!   JSON body); an OpenAI chat stream whose client did not ask for usage gets
//!   `stream_options.include_usage` added upstream and the extra usage chunk removed again
//!   ([`UsageChunkStrip`]) before the client sees it;
//! - translated: the canonical response's usage, or the stream translator's merged reports.
//!
//! Origins: `provider_reported` when the answer completed with the provider's own report;
//! `estimated` when it did not (a stream cut or abandoned, or a server that reports nothing):
//! what was reported is kept and missing input is estimated from the request's size; `unknown`
//! when nothing was answered (no 2xx), where the cost is 0 because providers do not bill an
//! error answer.

use bitrouter_config::{Prices, Protocol, Tokens};
use bitrouter_filters::canonical::Usage;
use bitrouter_filters::usage::{
    has_usage_object, TokenBuckets, UsageChunkStrip, UsageOrigin, UsageTap,
};
use bytes::Bytes;
use pingora_http::ResponseHeader;

/// The response header carrying a non-streamed answer's cost, when known.
pub const COST_HEADER: &str = "x-bitrouter-cost-micro-usd";

/// What one attempt's response reported, filled by the relay as bytes pass.
pub struct Meter<'a> {
    /// The client asked for a stream.
    pub stream: bool,
    /// The protocol of the relayed bytes (same-protocol relay: client = upstream).
    pub protocol: Protocol,
    /// Remove the usage-only chunk of an OpenAI chat stream (bitrouter asked for it).
    pub strip: bool,
    /// The route's prices, when it has any.
    pub prices: Option<&'a Prices>,
    pub usage: Option<Usage>,
}

impl<'a> Meter<'a> {
    pub fn new(protocol: Protocol, stream: bool, prices: Option<&'a Prices>) -> Meter<'a> {
        Meter {
            stream,
            protocol,
            strip: false,
            prices,
            usage: None,
        }
    }

    /// The cost of what was reported, when the usage and every needed rate are known.
    pub fn cost(&self) -> Option<f64> {
        let usage = self.usage.as_ref()?;
        let buckets = TokenBuckets::from_usage(usage);
        self.prices?.cost_micro_usd(&tokens(&buckets)).ok()
    }

    /// Adds [`COST_HEADER`] to a whole answer's head when its cost is known.
    pub fn annotate(&self, resp: &mut ResponseHeader) {
        if let Some(cost) = self.cost() {
            let _ = resp.insert_header(COST_HEADER, format_cost(cost));
        }
    }
}

/// A cost as the header and the log line show it: micro-USD, at most 6 decimals, no trailing
/// zeros.
pub fn format_cost(cost: f64) -> String {
    let s = format!("{cost:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() {
        "0".into()
    } else {
        s.to_string()
    }
}

/// The pricing crate's view of the buckets.
pub fn tokens(b: &TokenBuckets) -> Tokens {
    Tokens {
        input: b.input,
        cache_read: b.cache_read,
        cache_write: b.cache_write,
        output: b.output,
    }
}

/// How a same-protocol stream's events are cut and watched for usage.
///
/// SSE is cut into whole events by the relay's zero-copy framer, as without accounting; only a
/// batch of events holding a `usage` object (one or two per stream; OpenAI's `"usage": null`
/// does not count) goes to the tap or the strip. Measured (callgrind, a 50-event chat stream):
/// handing every batch to the strip's own splitter cost ~31,000 instructions a stream.
pub enum StreamTap {
    Sse {
        framer: bitrouter_filters::sse::SseFramer,
        tap: UsageTap,
        /// An OpenAI chat stream whose usage chunk bitrouter asked for: removed here.
        strip: bool,
        /// What the strip found (the tap keeps its own).
        stripped: Option<Usage>,
    },
    /// Not SSE (a Gemini JSON-array stream, or a body of unknown framing): bytes pass as they
    /// come, the tap reads them.
    Raw(UsageTap),
}

impl StreamTap {
    pub fn new(meter: &Meter<'_>, sse: bool) -> StreamTap {
        if sse {
            StreamTap::Sse {
                framer: bitrouter_filters::sse::SseFramer::default(),
                tap: UsageTap::new(meter.protocol),
                strip: meter.strip,
                stripped: None,
            }
        } else {
            StreamTap::Raw(UsageTap::new(meter.protocol))
        }
    }

    /// The bytes to send for `chunk` (whole events for SSE; `None`: nothing complete yet).
    pub fn feed(&mut self, chunk: Bytes) -> Result<Option<Bytes>, String> {
        match self {
            StreamTap::Sse {
                framer,
                tap,
                strip,
                stripped,
            } => {
                let Some(events) = framer.feed(chunk).map_err(|e| e.to_string())? else {
                    return Ok(None);
                };
                if !has_usage_object(&events) {
                    return Ok(Some(events));
                }
                if !*strip {
                    tap.chunk(&events);
                    return Ok(Some(events));
                }
                // Whole events: a strip of their own sees every event complete.
                let mut s = UsageChunkStrip::new();
                let mut out = s.feed(events).map_err(|e| e.to_string())?;
                let rest = s.finish();
                if !rest.is_empty() {
                    let mut joined = Vec::with_capacity(out.len() + rest.len());
                    joined.extend_from_slice(&out);
                    joined.extend_from_slice(&rest);
                    out = Bytes::from(joined);
                }
                if let Some(u) = s.usage() {
                    match stripped {
                        Some(have) => have.merge(&u),
                        None => *stripped = Some(u),
                    }
                }
                Ok(Some(out).filter(|b| !b.is_empty()))
            }
            StreamTap::Raw(tap) => {
                tap.chunk(&chunk);
                Ok(Some(chunk))
            }
        }
    }

    /// The upstream ended: the bytes of an event it never terminated, if any (passed on as
    /// they are, and read for usage).
    pub fn finish(&mut self) -> Option<Bytes> {
        match self {
            StreamTap::Sse { framer, tap, .. } => {
                let rest = framer.finish();
                if let Some(rest) = &rest {
                    tap.chunk(rest);
                }
                tap.finish();
                rest
            }
            StreamTap::Raw(tap) => {
                tap.finish();
                None
            }
        }
    }

    pub fn usage(&self) -> Option<Usage> {
        match self {
            StreamTap::Sse { tap, stripped, .. } => stripped.or_else(|| tap.usage()),
            StreamTap::Raw(tap) => tap.usage(),
        }
    }
}

/// A request's usage as recorded: buckets, where they come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    pub buckets: TokenBuckets,
    pub origin: UsageOrigin,
}

/// Settles what a request used. `answered`: a 2xx reached the client; `complete`: all of it.
/// `bytes_in`: the request body's size (missing input is estimated at 4 bytes per token, the
/// usual rule of thumb for English text and JSON).
pub fn settle(usage: Option<Usage>, answered: bool, complete: bool, bytes_in: usize) -> Recorded {
    match usage {
        Some(u) if complete => Recorded {
            buckets: TokenBuckets::from_usage(&u),
            origin: UsageOrigin::ProviderReported,
        },
        _ if !answered => Recorded {
            buckets: usage
                .map(|u| TokenBuckets::from_usage(&u))
                .unwrap_or_default(),
            origin: UsageOrigin::Unknown,
        },
        reported => {
            let mut buckets = reported
                .map(|u| TokenBuckets::from_usage(&u))
                .unwrap_or_default();
            if buckets.total_input() == 0 {
                buckets.input = (bytes_in as u64).div_ceil(4);
            }
            Recorded {
                buckets,
                origin: UsageOrigin::Estimated,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_print_without_noise() {
        assert_eq!(format_cost(0.0), "0");
        assert_eq!(format_cost(12.5), "12.5");
        assert_eq!(format_cost(3.0), "3");
        assert_eq!(format_cost(0.000_000_1), "0");
        assert_eq!(format_cost(1.234_567_8), "1.234568");
    }

    #[test]
    fn settling_says_where_the_counts_come_from() {
        let reported = Usage {
            input: 10,
            output: 5,
            ..Usage::default()
        };
        let r = settle(Some(reported), true, true, 400);
        assert_eq!(r.origin, UsageOrigin::ProviderReported);
        assert_eq!((r.buckets.input, r.buckets.output), (10, 5));
        // Cut mid-stream after the input was reported: kept, flagged as estimated.
        let r = settle(Some(reported), true, false, 400);
        assert_eq!(r.origin, UsageOrigin::Estimated);
        assert_eq!(r.buckets.input, 10);
        // Nothing reported: the input is estimated from the request.
        let r = settle(None, true, false, 401);
        assert_eq!((r.origin, r.buckets.input), (UsageOrigin::Estimated, 101));
        // No answer: nothing billed.
        let r = settle(None, false, false, 400);
        assert_eq!((r.origin, r.buckets.total()), (UsageOrigin::Unknown, 0));
    }
}
