#![no_main]
//! Every openai_chat decoder (request, response, error, stream) on arbitrary bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bitrouter_fuzz::run(bitrouter_config::Protocol::ChatCompletions, data);
});
