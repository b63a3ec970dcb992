use super::*;
use crate::canonical::ResponseContext;
use crate::protocol;
use crate::stream::StreamTranslator;
use bitrouter_config::Protocol;
use bytes::Bytes;

fn ctx(stream: bool) -> ResponseContext {
    ResponseContext {
        client_model: "m".into(),
        stream,
        include_usage: true,
        ..ResponseContext::default()
    }
}

/// The canonical usage every sample below reports: 100 uncached input, 30 cache reads, 20
/// cache writes (where the protocol has them), 50 output of which 10 reasoning.
fn expected(cache_write: bool, reasoning: bool) -> Usage {
    Usage {
        input: 100 + 30 + if cache_write { 20 } else { 0 },
        output: 50,
        cached_input: Some(30),
        cache_creation_input: cache_write.then_some(20),
        reasoning: reasoning.then_some(10),
    }
}

const CHAT_BODY: &str = r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi \"usage\": {"},"finish_reason":"stop"}],"usage":{"prompt_tokens":130,"completion_tokens":50,"total_tokens":180,"prompt_tokens_details":{"cached_tokens":30},"completion_tokens_details":{"reasoning_tokens":10}}}"#;

const RESPONSES_BODY: &str = r#"{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"m","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"hi","annotations":[]}]}],"usage":{"input_tokens":150,"input_tokens_details":{"cached_tokens":30,"cache_write_tokens":20},"output_tokens":50,"output_tokens_details":{"reasoning_tokens":10},"total_tokens":200}}"#;

const ANTHROPIC_BODY: &str = r#"{"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":100,"cache_creation_input_tokens":20,"cache_read_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":20},"output_tokens":50,"service_tier":"standard"}}"#;

const GEMINI_BODY: &str = r#"{"candidates":[{"content":{"role":"model","parts":[{"text":"hi"}]},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":130,"candidatesTokenCount":40,"totalTokenCount":180,"cachedContentTokenCount":30,"thoughtsTokenCount":10},"modelVersion":"m","responseId":"r1"}"#;

const CHAT_STREAM: &str = concat!(
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"say \\\"usage\\\": {\"},\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":130,\"completion_tokens\":50,\"total_tokens\":180,\"prompt_tokens_details\":{\"cached_tokens\":30},\"completion_tokens_details\":{\"reasoning_tokens\":10}}}\n\n",
    "data: [DONE]\n\n",
);

const RESPONSES_STREAM: &str = concat!(
    "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":1,\"status\":\"in_progress\",\"model\":\"m\",\"output\":[],\"usage\":null}}\n\n",
    "event: response.output_item.added\ndata: {\"type\":\"response.output_item.added\",\"sequence_number\":1,\"output_index\":0,\"item\":{\"type\":\"message\",\"id\":\"msg_1\",\"status\":\"in_progress\",\"role\":\"assistant\",\"content\":[]}}\n\n",
    "event: response.content_part.added\ndata: {\"type\":\"response.content_part.added\",\"sequence_number\":2,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"part\":{\"type\":\"output_text\",\"text\":\"\",\"annotations\":[]}}\n\n",
    "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":3,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"hi\"}\n\n",
    "event: response.output_text.done\ndata: {\"type\":\"response.output_text.done\",\"sequence_number\":4,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"text\":\"hi\"}\n\n",
    "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":5,\"response\":{\"id\":\"resp_1\",\"object\":\"response\",\"created_at\":1,\"status\":\"completed\",\"model\":\"m\",\"output\":[{\"type\":\"message\",\"id\":\"msg_1\",\"status\":\"completed\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\",\"text\":\"hi\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":150,\"input_tokens_details\":{\"cached_tokens\":30,\"cache_write_tokens\":20},\"output_tokens\":50,\"output_tokens_details\":{\"reasoning_tokens\":10},\"total_tokens\":200}}}\n\n",
);

/// Input and cache in `message_start`, output (and, as the current API does, the input fields
/// again) in `message_delta`; CRLF line ends.
const ANTHROPIC_STREAM: &str = concat!(
    "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":100,\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"output_tokens\":1}}}\r\n\r\n",
    "event: ping\r\ndata: {\"type\":\"ping\"}\r\n\r\n",
    "event: content_block_start\r\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n",
    "event: content_block_delta\r\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"hi\"}}\r\n\r\n",
    "event: content_block_stop\r\ndata: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n",
    "event: message_delta\r\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":100,\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"output_tokens\":50}}\r\n\r\n",
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
);

const GEMINI_SSE: &str = concat!(
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"h\"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":130,\"cachedContentTokenCount\":30,\"totalTokenCount\":130},\"modelVersion\":\"m\",\"responseId\":\"r1\"}\r\n\r\n",
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"i\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":130,\"candidatesTokenCount\":40,\"totalTokenCount\":180,\"cachedContentTokenCount\":30,\"thoughtsTokenCount\":10},\"modelVersion\":\"m\",\"responseId\":\"r1\"}\r\n\r\n",
);

/// Gemini without `?alt=sse`: a pretty-printed JSON array, with braces and quotes in text.
const GEMINI_ARRAY: &str = "[{\n  \"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"a {\\\"usageMetadata\\\": {} ] [\"}]}, \"index\": 0}],\n  \"usageMetadata\": {\"promptTokenCount\": 130, \"cachedContentTokenCount\": 30}\n}\n,\r\n{\n  \"candidates\": [{\"content\": {\"role\": \"model\", \"parts\": [{\"text\": \"\\\\\"}]}, \"finishReason\": \"STOP\", \"index\": 0}],\n  \"usageMetadata\": {\"promptTokenCount\": 130, \"candidatesTokenCount\": 40, \"totalTokenCount\": 180, \"cachedContentTokenCount\": 30, \"thoughtsTokenCount\": 10}\n}\n]";

fn samples() -> Vec<(Protocol, &'static str, &'static str, Usage)> {
    vec![
        (
            Protocol::ChatCompletions,
            CHAT_BODY,
            CHAT_STREAM,
            expected(false, true),
        ),
        (
            Protocol::Responses,
            RESPONSES_BODY,
            RESPONSES_STREAM,
            expected(true, true),
        ),
        (
            Protocol::Messages,
            ANTHROPIC_BODY,
            ANTHROPIC_STREAM,
            expected(true, false),
        ),
        (
            Protocol::GenerateContent,
            GEMINI_BODY,
            GEMINI_SSE,
            expected(false, true),
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Buckets

#[test]
fn buckets_do_not_overlap() {
    let b = TokenBuckets::from_usage(&expected(true, true));
    assert_eq!(
        b,
        TokenBuckets {
            input: 100,
            cache_read: 30,
            cache_write: 20,
            output: 50,
            reasoning: 10,
        }
    );
    assert_eq!(b.total_input(), 150);
    assert_eq!(b.total(), 200);
}

#[test]
fn buckets_saturate_and_cap_reasoning() {
    let b = TokenBuckets::from_usage(&Usage {
        input: 10,
        output: 5,
        cached_input: Some(8),
        cache_creation_input: Some(8),
        reasoning: Some(9),
    });
    assert_eq!(b.input, 0);
    assert_eq!(b.reasoning, 5);
    assert_eq!(
        TokenBuckets::from_usage(&Usage::default()),
        TokenBuckets::default()
    );
}

#[test]
fn origin_names() {
    assert_eq!(UsageOrigin::ProviderReported.as_str(), "provider_reported");
    assert_eq!(UsageOrigin::Estimated.as_str(), "estimated");
    assert_eq!(UsageOrigin::Unknown.to_string(), "unknown");
}

// ---------------------------------------------------------------------------------------------
// Decoders and encoders keep the canonical convention

#[test]
fn whole_response_decoders_fill_canonical_usage() {
    for (p, body, _, want) in samples() {
        let resp = protocol::decode_response(p, body.as_bytes(), &ctx(false)).unwrap();
        assert_eq!(resp.usage, want, "{p:?}");
    }
}

#[test]
fn stream_decoders_fill_canonical_usage() {
    for (p, _, stream, want) in samples() {
        for client in Protocol::ALL {
            let mut t = StreamTranslator::new(p, client, &ctx(true));
            let mut out = Vec::new();
            t.feed(stream.as_bytes(), &mut out);
            t.finish(&mut out);
            assert_eq!(t.usage(), Some(want), "{p:?} -> {client:?}");
        }
    }
}

#[test]
fn translator_usage_is_none_without_report() {
    let stream = CHAT_STREAM.replace("\"choices\":[],\"usage\":{", "\"choices\":[],\"x\":{");
    let mut t = StreamTranslator::new(Protocol::ChatCompletions, Protocol::Messages, &ctx(true));
    let mut out = Vec::new();
    t.feed(stream.as_bytes(), &mut out);
    t.finish(&mut out);
    assert_eq!(t.usage(), None);
}

/// Every encoder writes usage back in its own protocol's convention, and what it writes
/// decodes to the same canonical usage (Anthropic: `input_tokens` without cache; Gemini:
/// `candidatesTokenCount` without thoughts).
#[test]
fn encoders_write_each_protocols_convention() {
    let canonical =
        protocol::decode_response(Protocol::Messages, ANTHROPIC_BODY.as_bytes(), &ctx(false))
            .unwrap();
    let mut with_reasoning = canonical.clone();
    with_reasoning.usage.reasoning = Some(10);
    for client in Protocol::ALL {
        let body = protocol::encode_response(client, &with_reasoning, &ctx(false));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        match client {
            Protocol::Messages => {
                assert_eq!(v["usage"]["input_tokens"], 100);
                assert_eq!(v["usage"]["cache_read_input_tokens"], 30);
                assert_eq!(v["usage"]["cache_creation_input_tokens"], 20);
                assert_eq!(v["usage"]["output_tokens"], 50);
            }
            Protocol::GenerateContent => {
                assert_eq!(v["usageMetadata"]["promptTokenCount"], 150);
                assert_eq!(v["usageMetadata"]["candidatesTokenCount"], 40);
                assert_eq!(v["usageMetadata"]["thoughtsTokenCount"], 10);
                assert_eq!(v["usageMetadata"]["cachedContentTokenCount"], 30);
            }
            Protocol::ChatCompletions => {
                assert_eq!(v["usage"]["prompt_tokens"], 150);
                assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 30);
                assert_eq!(v["usage"]["completion_tokens"], 50);
                assert_eq!(
                    v["usage"]["completion_tokens_details"]["reasoning_tokens"],
                    10
                );
            }
            Protocol::Responses => {
                assert_eq!(v["usage"]["input_tokens"], 150);
                assert_eq!(v["usage"]["input_tokens_details"]["cached_tokens"], 30);
                assert_eq!(v["usage"]["input_tokens_details"]["cache_write_tokens"], 20);
                assert_eq!(v["usage"]["output_tokens"], 50);
            }
        }
        let back = protocol::decode_response(client, &body, &ctx(false)).unwrap();
        assert_eq!(back.usage.input, 150, "{client:?}");
        assert_eq!(back.usage.output, 50, "{client:?}");
        assert_eq!(back.usage.cached_input, Some(30), "{client:?}");
    }
}

/// The stream encoders, fed Anthropic's stream, report its usage in their conventions.
#[test]
fn stream_encoders_write_each_protocols_convention() {
    for client in Protocol::ALL {
        let mut t = StreamTranslator::new(Protocol::Messages, client, &ctx(true));
        let mut out = Vec::new();
        t.feed(ANTHROPIC_STREAM.as_bytes(), &mut out);
        t.finish(&mut out);
        let mut tap = UsageTap::new(client);
        tap.chunk(&out);
        tap.finish();
        let got = tap.usage().unwrap();
        assert_eq!(got.input, 150, "{client:?}");
        assert_eq!(got.output, 50, "{client:?}");
        assert_eq!(got.cached_input, Some(30), "{client:?}");
        if matches!(client, Protocol::Messages | Protocol::Responses) {
            assert_eq!(got.cache_creation_input, Some(20), "{client:?}");
        }
    }
}

/// `response.failed` may carry the tokens a failed response consumed; the decoder used to
/// drop them.
#[test]
fn responses_failed_stream_keeps_its_usage() {
    let stream =
        "event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"id\":\"resp_1\",\"status\":\"failed\",\"model\":\"m\",\"output\":[],\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":{\"input_tokens\":12,\"output_tokens\":3,\"total_tokens\":15}}}\n\n";
    let mut t = StreamTranslator::new(Protocol::Responses, Protocol::ChatCompletions, &ctx(true));
    let mut out = Vec::new();
    t.feed(stream.as_bytes(), &mut out);
    t.finish(&mut out);
    let u = t.usage().unwrap();
    assert_eq!((u.input, u.output), (12, 3));
    let mut tap = UsageTap::new(Protocol::Responses);
    tap.chunk(stream.as_bytes());
    assert_eq!(tap.usage(), Some(u));
}

// ---------------------------------------------------------------------------------------------
// UsageTap

#[test]
fn tap_reads_whole_bodies() {
    for (p, body, _, want) in samples() {
        let mut tap = UsageTap::new(p);
        tap.body(body.as_bytes());
        assert_eq!(tap.usage(), Some(want), "{p:?}");
    }
}

#[test]
fn tap_reads_nothing_from_a_body_without_usage() {
    let mut tap = UsageTap::new(Protocol::ChatCompletions);
    tap.body(br#"{"id":"x","choices":[],"usage":null}"#);
    assert_eq!(tap.usage(), None);
    tap.body(b"not json \"usage\": {");
    assert_eq!(tap.usage(), None);
}

fn tap_stream(p: Protocol, pieces: &[&[u8]]) -> Option<Usage> {
    let mut tap = UsageTap::new(p);
    for piece in pieces {
        tap.chunk(piece);
    }
    tap.finish();
    tap.usage()
}

#[test]
fn tap_reads_streams_split_at_every_byte() {
    let mut cases: Vec<(Protocol, &str, Usage)> = samples()
        .into_iter()
        .map(|(p, _, s, u)| (p, s, u))
        .collect();
    cases.push((
        Protocol::GenerateContent,
        GEMINI_ARRAY,
        expected(false, true),
    ));
    for (p, stream, want) in cases {
        let bytes = stream.as_bytes();
        assert_eq!(tap_stream(p, &[bytes]), Some(want), "{p:?} whole");
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(tap_stream(p, &[a, b]), Some(want), "{p:?} cut at {cut}");
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(tap_stream(p, &singles), Some(want), "{p:?} byte by byte");
    }
}

/// A stream cut after `message_start` keeps the input Anthropic reported there.
#[test]
fn tap_keeps_what_a_cut_stream_reported() {
    let cut = ANTHROPIC_STREAM.find("event: content_block_delta").unwrap();
    let got = tap_stream(Protocol::Messages, &[&ANTHROPIC_STREAM.as_bytes()[..cut]]).unwrap();
    assert_eq!(got.input, 150);
    assert_eq!(got.output, 1);
}

/// An Anthropic-compatible server sending zero input in `message_delta` does not erase the
/// input `message_start` reported.
#[test]
fn tap_anthropic_later_zero_does_not_erase() {
    let stream = ANTHROPIC_STREAM.replace(
        "\"usage\":{\"input_tokens\":100,\"cache_creation_input_tokens\":20,\"cache_read_input_tokens\":30,\"output_tokens\":50}",
        "\"usage\":{\"input_tokens\":0,\"output_tokens\":50}",
    );
    assert_eq!(
        tap_stream(Protocol::Messages, &[stream.as_bytes()]),
        Some(expected(true, false))
    );
}

#[test]
fn tap_reads_an_unterminated_last_event_at_finish() {
    let stream = CHAT_STREAM.trim_end_matches("data: [DONE]\n\n").trim_end();
    let mut tap = UsageTap::new(Protocol::ChatCompletions);
    tap.chunk(stream.as_bytes());
    assert_eq!(tap.usage(), None);
    tap.finish();
    assert_eq!(tap.usage(), Some(expected(false, true)));
}

#[test]
fn tap_joins_multi_line_data() {
    let stream = "data: {\"choices\":[],\ndata: \"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\n";
    let got = tap_stream(Protocol::ChatCompletions, &[stream.as_bytes()]).unwrap();
    assert_eq!((got.input, got.output), (7, 2));
}

#[test]
fn usage_member_detection() {
    assert!(tap::has_usage_object(br#"{"usage":{"a":1}}"#));
    assert!(tap::has_usage_object(br#"{"usage" : {"a":1}}"#));
    assert!(tap::has_usage_object(br#"{"usageMetadata": {"a":1}}"#));
    assert!(!tap::has_usage_object(br#"{"usage":null}"#));
    assert!(!tap::has_usage_object(br#"{"text":"\"usage\": {"}"#));
    assert!(!tap::has_usage_object(br#"{"usage"#));
}

// ---------------------------------------------------------------------------------------------
// UsageChunkStrip

fn strip_all(pieces: &[&[u8]]) -> (Vec<u8>, Option<Usage>) {
    let mut strip = UsageChunkStrip::new();
    let mut out = Vec::new();
    for piece in pieces {
        let got = strip.feed(Bytes::copy_from_slice(piece)).unwrap();
        out.extend_from_slice(&got);
    }
    out.extend_from_slice(&strip.finish());
    (out, strip.usage())
}

fn without_usage_chunk(stream: &str) -> String {
    let start = stream.find("data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[],").unwrap();
    let end = start + stream[start..].find("\n\n").unwrap() + 2;
    format!("{}{}", &stream[..start], &stream[end..])
}

#[test]
fn strip_removes_only_the_usage_chunk_at_every_split() {
    let want = without_usage_chunk(CHAT_STREAM);
    let bytes = CHAT_STREAM.as_bytes();
    let (out, usage) = strip_all(&[bytes]);
    assert_eq!(String::from_utf8(out).unwrap(), want);
    assert_eq!(usage, Some(expected(false, true)));
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let (out, usage) = strip_all(&[a, b]);
        assert_eq!(String::from_utf8(out).unwrap(), want, "cut at {cut}");
        assert_eq!(usage, Some(expected(false, true)), "cut at {cut}");
    }
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let (out, _) = strip_all(&singles);
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn strip_handles_crlf_at_every_split() {
    let stream = CHAT_STREAM.replace('\n', "\r\n");
    let want = without_usage_chunk(CHAT_STREAM).replace('\n', "\r\n");
    let bytes = stream.as_bytes();
    for cut in 0..=bytes.len() {
        let (a, b) = bytes.split_at(cut);
        let (out, usage) = strip_all(&[a, b]);
        assert_eq!(String::from_utf8(out).unwrap(), want, "cut at {cut}");
        assert_eq!(usage, Some(expected(false, true)), "cut at {cut}");
    }
}

#[test]
fn strip_is_zero_copy_for_whole_events() {
    let mut strip = UsageChunkStrip::new();
    let first_end = CHAT_STREAM.find("\n\n").unwrap() + 2;
    let chunk = Bytes::from_static(&CHAT_STREAM.as_bytes()[..first_end]);
    let out = strip.feed(chunk.clone()).unwrap();
    assert_eq!(out.as_ptr(), chunk.as_ptr());
    assert_eq!(out.len(), chunk.len());
}

#[test]
fn strip_keeps_usage_beside_choices() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n";
    let (out, usage) = strip_all(&[stream.as_bytes()]);
    assert_eq!(String::from_utf8(out).unwrap(), stream);
    assert_eq!(usage.map(|u| (u.input, u.output)), Some((7, 2)));
}

#[test]
fn strip_refuses_an_oversized_event() {
    let mut strip = UsageChunkStrip::with_max_event(16);
    assert!(strip
        .feed(Bytes::from_static(b"data: 0123456789abcdef"))
        .is_err());
    assert!(strip.feed(Bytes::from_static(b"\n\n")).is_err());
}

// ---------------------------------------------------------------------------------------------
// ask_stream_usage

#[test]
fn asks_for_usage_when_missing() {
    let body = br#" {"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let out = ask_stream_usage(body).unwrap();
    assert_eq!(
        std::str::from_utf8(&out).unwrap(),
        r#" {"stream_options":{"include_usage":true},"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}"#
    );
    let req = protocol::decode_request(Protocol::ChatCompletions, &out).unwrap();
    assert!(req.include_usage);
}

#[test]
fn rewrites_stream_options_lacking_usage() {
    let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":false,"x":1},"messages":[]}"#;
    let out = String::from_utf8(ask_stream_usage(body).unwrap()).unwrap();
    assert_eq!(
        out,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true,"x":1},"messages":[]}"#
    );
    let body = br#"{"model":"m","stream":true,"stream_options":null}"#;
    let out = String::from_utf8(ask_stream_usage(body).unwrap()).unwrap();
    assert_eq!(
        out,
        r#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#
    );
}

#[test]
fn leaves_other_bodies_alone() {
    for body in [
        &br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#[..],
        br#"{"model":"m","stream":false}"#,
        br#"{"model":"m"}"#,
        br#"[1]"#,
        br#"{"model":"m","stream":true"#,
        b"",
    ] {
        assert_eq!(
            ask_stream_usage(body),
            None,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
}

/// Cross-protocol requests encoded to OpenAI chat ask for usage whenever they stream.
#[test]
fn chat_request_encoder_asks_for_stream_usage() {
    let anthropic = br#"{"model":"m","max_tokens":10,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let req = protocol::decode_request(Protocol::Messages, anthropic).unwrap();
    let encoded = protocol::encode_request(
        Protocol::ChatCompletions,
        &req,
        &crate::canonical::EncodeOptions::for_model("m"),
    )
    .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&encoded.body).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
}

#[test]
fn translated_whole_response_exposes_usage() {
    for (p, body, _, want) in samples() {
        let (out, usage) = crate::translate::translate_response_with_usage(
            p,
            Protocol::Messages,
            body.as_bytes(),
            &ctx(false),
        )
        .unwrap();
        assert_eq!(usage, Some(want), "{p:?}");
        assert!(!out.is_empty());
    }
    let bare = r#"{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}"#;
    let (_, usage) = crate::translate::translate_response_with_usage(
        Protocol::ChatCompletions,
        Protocol::Messages,
        bare.as_bytes(),
        &ctx(false),
    )
    .unwrap();
    assert_eq!(usage, None);
}

/// Malformed input never panics, however it is split (the tap reads untrusted upstream bytes).
#[test]
fn tap_survives_garbage() {
    let inputs: [&[u8]; 7] = [
        b"[{]}}]]{{\"usage\":{\"\\",
        b"[\"\\\"{\",{\"usageMetadata\":{\"promptTokenCount\":\"x\"}},]",
        b"data: {\"usage\":{\r\r\r\n\n\rdata\rdata:\n\n",
        b"\r\n\r\n\r\r\n",
        b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":-1}}\n\n",
        b"[[[[[[[[[[{{{{{{",
        b"\xff\xfe data: \"usage\": {\n\n",
    ];
    for input in inputs {
        for p in Protocol::ALL {
            for cut in 0..=input.len() {
                let (a, b) = input.split_at(cut);
                let _ = tap_stream(p, &[a, b]);
                let mut tap = UsageTap::new(p);
                tap.body(input);
            }
        }
        for cut in 0..=input.len() {
            let (a, b) = input.split_at(cut);
            let mut strip = UsageChunkStrip::new();
            let mut out = Vec::new();
            out.extend_from_slice(&strip.feed(Bytes::copy_from_slice(a)).unwrap());
            out.extend_from_slice(&strip.feed(Bytes::copy_from_slice(b)).unwrap());
            out.extend_from_slice(&strip.finish());
            // Nothing here is a valid usage-only chunk: every byte passes.
            assert_eq!(out, input, "cut at {cut}");
        }
    }
}

#[test]
fn asking_a_known_stream_for_usage_skips_the_parse_but_not_the_result() {
    for body in [
        r#"{"model":"m","stream":true,"messages":[]}"#,
        r#"  {"stream":true,"stream_options":null,"model":"m"}"#,
        r#"{"stream":true,"stream_options":{"include_usage":false},"model":"m"}"#,
        r#"{"stream":true,"stream_options":{"include_usage":true}}"#,
    ] {
        assert_eq!(
            super::ask_stream_usage_of_stream(body.as_bytes()),
            super::ask_stream_usage(body.as_bytes()),
            "{body}"
        );
    }
    assert_eq!(super::ask_stream_usage_of_stream(b"[1]"), None);
}
