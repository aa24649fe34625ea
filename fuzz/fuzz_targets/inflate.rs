//! permessage-deflate inbound: compressed messages (arbitrary payloads with RSV1, or real
//! DEFLATE streams of fuzzer-chosen text) fed in arbitrary chunks to a `Connection` that
//! negotiated the extension, checked against flate2 inflating the same bytes on its own.
//!
//! Invariants:
//!
//! * no panic, nothing after `Failed`, a Close frame with the error's code queued;
//! * every message is at most the limit;
//! * the outcome of every message matches the reference inflater (same window, context
//!   kept or reset like ours): the same bytes when it inflates within the limit (and, for
//!   text, to UTF-8), `MessageTooLarge` when it produces more than the limit,
//!   `InvalidCompressedData` when it fails, `InvalidUtf8` for text that is not UTF-8. The
//!   comparison stops at the first block with BFINAL set (the reference ends its stream
//!   there, the engine goes on as RFC 7692 §7.2.1 asks).
//!
//! Input: byte 0 picks the peer's window (bits 0–2: 8 + n), its context takeover (bit 3,
//! set: none), the message limit (bits 4–5), our role (bit 6) and the mode (bit 7: real
//! DEFLATE streams of the message bodies, else the bodies are the compressed payloads);
//! byte 1 is the feeding chunk size (0: everything at once). Then messages, each
//! `[flags, len, body...]`: flags bit 0 text, bits 1–3 the number of frames less one, bit 4
//! sent uncompressed (RSV1 clear), bits 5–6 the compression level (real mode).
#![no_main]

use bytes::BytesMut;
use flate2::{Decompress, FlushDecompress, Status};
use libfuzzer_sys::fuzz_target;
use wsstream_proto::codec::encode_frame;
use wsstream_proto::ext::deflate::{Compressor, DEFLATE_TAIL, DeflateConfig, DeflateParams};
use wsstream_proto::wire::OpCode;
use wsstream_proto::{Config, Connection, Event, ProtocolError, Role, State};

const LIMITS: [usize; 4] = [64, 1000, 65_536, 1 << 20];

/// What the reference inflater says about one compressed message.
enum Expect {
    /// These bytes, within the limit.
    Message(Vec<u8>),
    /// More than the limit (`out` holds the first limit + 1 bytes).
    TooLarge(Vec<u8>),
    /// Not valid DEFLATE (`out` holds what came out before the error).
    Invalid(Vec<u8>),
    /// A block with BFINAL: stop comparing.
    Unknown,
}

/// Inflates `payload` plus the tail with `d`, at most `limit + 1` bytes out.
fn reference(d: &mut Decompress, payload: &[u8], limit: usize) -> Expect {
    if payload.is_empty() {
        // The engine takes an empty compressed payload as an empty message.
        return Expect::Message(Vec::new());
    }
    let mut input = payload.to_vec();
    input.extend_from_slice(&DEFLATE_TAIL);
    let mut out = Vec::with_capacity((limit + 1).min(4096));
    let mut at = 0;
    loop {
        if out.len() == out.capacity() && out.capacity() <= limit {
            out.reserve_exact((out.capacity() * 2).min(limit + 1) - out.len());
        }
        let before_in = d.total_in();
        let before_out = out.len();
        match d.decompress_vec(&input[at..], &mut out, FlushDecompress::Sync) {
            Err(_) => return Expect::Invalid(out),
            Ok(Status::StreamEnd) => return Expect::Unknown,
            Ok(_) => {}
        }
        at += (d.total_in() - before_in) as usize;
        if out.len() > limit {
            return Expect::TooLarge(out);
        }
        if at == input.len() && out.len() < out.capacity() {
            return Expect::Message(out);
        }
        if d.total_in() == before_in && out.len() == before_out && out.len() < out.capacity() {
            if at == input.len() {
                return Expect::Message(out);
            }
            return Expect::Invalid(out);
        }
    }
}

/// Whether `bytes` holds an invalid UTF-8 sequence (an incomplete one at the end is not).
fn invalid_utf8(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.error_len().is_some())
}

fuzz_target!(|data: &[u8]| {
    let [selector, chunk, rest @ ..] = data else {
        return;
    };
    let bits = 8 + (selector & 7);
    let no_takeover = selector & 8 != 0;
    let limit = LIMITS[usize::from((selector >> 4) & 3)];
    let role = if selector & 0x40 != 0 { Role::Server } else { Role::Client };
    let real = selector & 0x80 != 0;
    let chunk = if *chunk == 0 { usize::MAX } else { usize::from(*chunk) };

    // The peer's half of the parameters is what we inflate with.
    let mut params = DeflateParams::default();
    match role {
        Role::Client => {
            params.server_max_window_bits = bits;
            params.server_no_context_takeover = no_takeover;
        }
        Role::Server => {
            params.client_max_window_bits = bits;
            params.client_no_context_takeover = no_takeover;
        }
    }
    let frame_limit = limit.max(1 << 16);
    let config = Config::default()
        .max_message_size(limit)
        .max_frame_size(frame_limit)
        .deflate(Some((params, DeflateConfig::default())));
    let Ok(mut conn) = Connection::new(role, config) else {
        return;
    };
    // The engine inflates with 15 bits whatever the peer's window; so does the reference.
    let mut reference_inflater = Decompress::new_with_window_bits(false, 15);
    let mut compressor = Compressor::new(bits.max(9), no_takeover, 6);
    let mut comparing = true;
    let mut input = BytesMut::new();
    let mut rest = rest;
    let mut finished = false;
    let key = (role == Role::Server).then_some([0x11, 0x22, 0x33, 0x44]);

    while let [flags, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let (body, next) = tail.split_at(len);
        rest = next;
        let text = flags & 1 != 0;
        let fragments = usize::from((flags >> 1) & 7) + 1;
        let compressed = flags & 0x10 == 0;

        // The payload on the wire, and what it must become.
        let mut payload = body.to_vec();
        let mut source = None;
        if real {
            let mut plain = body.repeat(usize::from(*flags >> 5) * 40 + 1);
            if text {
                plain = String::from_utf8_lossy(&plain).into_owned().into_bytes();
            }
            payload.clear();
            if compressed && !compressor.compress(&plain, &mut payload) {
                return;
            }
            if !compressed {
                payload.clone_from(&plain);
            }
            source = Some(plain);
        }
        let expect = if !compressed {
            Expect::Message(payload.clone())
        } else if comparing {
            let e = reference(&mut reference_inflater, &payload, limit);
            if no_takeover {
                reference_inflater.reset(false);
            }
            e
        } else {
            Expect::Unknown
        };
        if let (Some(plain), Expect::Message(m)) = (&source, &expect) {
            assert_eq!(m, plain, "flate2 disagrees with our compressor");
        }
        if matches!(expect, Expect::Unknown) {
            comparing = false;
        }

        // Frame it: RSV1 on the first frame only (RFC 7692 §6).
        let mut wire = BytesMut::new();
        let piece = payload.len().div_ceil(fragments).max(1);
        let pieces: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(piece).collect()
        };
        for (i, p) in pieces.iter().enumerate() {
            let op = match (i, text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            let rsv = if i == 0 && compressed { 0b100 } else { 0 };
            encode_frame(&mut wire, i + 1 == pieces.len(), rsv, op, p, key);
        }

        // Feed it.
        let mut events = Vec::new();
        for piece in wire.chunks(chunk) {
            input.extend_from_slice(piece);
            while let Some(event) = conn.poll_event(&mut input) {
                assert!(!finished, "event after Failed: {event:?}");
                if matches!(event, Event::Failed(_)) {
                    finished = true;
                }
                events.push(event);
            }
        }
        if finished {
            assert_eq!(conn.state(), State::Failed);
            assert!(conn.close_sent(), "failed without a Close frame");
            assert!(input.is_empty());
        }
        match events.as_slice() {
            [Event::Message(m)] => {
                assert!(m.len() <= limit, "message over the limit");
                assert_eq!(m.is_text(), text);
                match &expect {
                    Expect::Message(want) => assert_eq!(m.as_bytes(), &want[..]),
                    Expect::Unknown => {}
                    Expect::TooLarge(_) | Expect::Invalid(_) => {
                        panic!("delivered a message the reference rejects")
                    }
                }
                if !compressed {
                    assert!(m.len() <= limit);
                }
            }
            [Event::Failed(error)] => {
                let ok = match (&expect, error) {
                    (Expect::Unknown, _) => true,
                    (_, ProtocolError::FrameTooLarge { .. }) => piece > frame_limit,
                    // A stream that is both too large and invalid: which is seen first
                    // depends on how it was cut (the reference inflates it in one call and
                    // may report the error after writing more than the limit).
                    (_, ProtocolError::MessageTooLarge { .. }) => {
                        matches!(&expect, Expect::TooLarge(_))
                            || matches!(&expect, Expect::Invalid(out) if out.len() > limit)
                            || (!compressed && payload.len() > limit)
                    }
                    (Expect::Invalid(_), ProtocolError::InvalidCompressedData) => true,
                    (
                        Expect::Message(out) | Expect::TooLarge(out) | Expect::Invalid(out),
                        ProtocolError::InvalidUtf8,
                    ) => text && (invalid_utf8(out) || matches!(expect, Expect::Message(_))),
                    _ => false,
                };
                assert!(ok, "engine failed with {error:?}, reference disagrees");
                if let Expect::Message(out) = &expect {
                    if matches!(error, ProtocolError::InvalidUtf8) {
                        assert!(std::str::from_utf8(out).is_err());
                    }
                }
                return;
            }
            [] => panic!("no event for a whole message"),
            other => panic!("unexpected events {other:?}"),
        }
        if let Expect::Message(want) = &expect {
            assert!(
                !text || std::str::from_utf8(want).is_ok(),
                "invalid UTF-8 delivered as text"
            );
        }
    }
});
