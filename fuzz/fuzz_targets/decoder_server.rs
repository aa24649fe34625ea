//! Arbitrary bytes, cut into arbitrary chunks, decoded by a server-role `Connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wsstream_proto::Role;

fuzz_target!(|data: &[u8]| wsstream_fuzz::decode(Role::Server, data));
