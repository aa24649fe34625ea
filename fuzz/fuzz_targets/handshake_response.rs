//! Arbitrary bytes as the server's response to a client handshake.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsstream_fuzz::handshake_response(data));
