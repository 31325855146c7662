//! decode_form + parse_action + State::plan on arbitrary bytes: no panic, every error has
//! a message. The body is shared with the stable harness `tests/fuzz_query.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    secgroupd::fuzzing::query_input(data);
});
