#![no_main]
//! Every gemini decoder (request, response, error, stream) on arbitrary bytes.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bitrouter_fuzz::run(bitrouter_config::Protocol::GenerateContent, data);
});
