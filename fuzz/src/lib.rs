//! Shared body of the fuzz targets: every decoder of one protocol gets the same arbitrary bytes.

use bitrouter_config::Protocol;
use bitrouter_filters::canonical::{EncodeOptions, ResponseContext};
use bitrouter_filters::protocol;
use bitrouter_filters::stream::StreamTranslator;

/// Runs `data` through every decoder of `p`, and whatever decodes through every encoder: none
/// may panic. The first byte picks where the stream input is split.
pub fn run(p: Protocol, data: &[u8]) {
    let ctx = ResponseContext {
        client_model: "m".into(),
        stream: true,
        include_usage: true,
        ..Default::default()
    };
    if let Ok(req) = protocol::decode_request(p, data) {
        for target in Protocol::ALL {
            // The capability table is looked up with the fuzzed model id too.
            let _ = protocol::encode_request(target, &req, &EncodeOptions::for_model(&req.model));
        }
    }
    if let Ok(resp) = protocol::decode_response(p, data, &ctx) {
        for target in Protocol::ALL {
            let _ = protocol::encode_response(target, &resp, &ctx);
        }
    }
    let _ = protocol::decode_error(p, 500, data);
    let split = data.first().map_or(0, |b| *b as usize) % (data.len() + 1);
    for client in Protocol::ALL {
        let mut t = StreamTranslator::new(p, client, &ctx);
        let mut out = Vec::new();
        t.feed(&data[..split], &mut out);
        t.feed(&data[split..], &mut out);
        t.finish(&mut out);
    }
}
