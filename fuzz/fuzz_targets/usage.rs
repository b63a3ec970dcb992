#![no_main]
//! The usage tap and the chat usage-chunk strip on anything an upstream may send: never a
//! panic, and the same result whatever the chunking. Input: byte 0 picks the protocol (bits
//! 0-1) and the number of cuts (bits 2-7); then two bytes per cut (little-endian offset, modulo
//! the data length); the rest is the response bytes.

use bitrouter_config::Protocol;
use bitrouter_filters::usage::{UsageChunkStrip, UsageTap};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&head, rest)) = input.split_first() else {
        return;
    };
    let protocol = [
        Protocol::ChatCompletions,
        Protocol::Responses,
        Protocol::Messages,
        Protocol::GenerateContent,
    ][usize::from(head & 3)];
    let cuts = usize::from(head >> 2);
    let (cut_bytes, data) = rest.split_at((cuts * 2).min(rest.len()));
    let mut offsets: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| usize::from(c[0]) | (usize::from(*c.get(1).unwrap_or(&0)) << 8))
        .map(|o| if data.is_empty() { 0 } else { o % (data.len() + 1) })
        .collect();
    offsets.sort_unstable();
    let mut pieces = Vec::new();
    let mut at = 0;
    for o in offsets {
        pieces.push(&data[at..o]);
        at = o;
    }
    pieces.push(&data[at..]);

    // Whole body: no panic.
    let mut whole = UsageTap::new(protocol);
    whole.body(data);
    let _ = whole.usage();

    // A stream, at once and in pieces: the same usage.
    let mut once = UsageTap::new(protocol);
    once.chunk(data);
    once.finish();
    let mut split = UsageTap::new(protocol);
    for p in &pieces {
        split.chunk(p);
    }
    split.finish();
    assert_eq!(once.usage(), split.usage(), "the tap depends on the chunking");

    // The strip: output bytes and usage independent of the chunking.
    let run = |parts: &[&[u8]]| {
        let mut strip = UsageChunkStrip::new();
        let mut out = Vec::new();
        for p in parts {
            match strip.feed(Bytes::copy_from_slice(p)) {
                Ok(b) => out.extend_from_slice(&b),
                Err(_) => return None,
            }
        }
        out.extend_from_slice(&strip.finish());
        Some((out, strip.usage()))
    };
    if let (Some(a), Some(b)) = (run(&[data]), run(&pieces)) {
        assert_eq!(a, b, "the strip depends on the chunking");
    }
});
