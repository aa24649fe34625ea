//! Arbitrary bytes as a client's opening handshake request.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsstream_fuzz::handshake_request(data));
