//! Arbitrary bytes, cut into arbitrary chunks, decoded by a client-role `Connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsstream_proto::Role;

fuzz_target!(|data: &[u8]| wsstream_fuzz::decode(Role::Client, data));
