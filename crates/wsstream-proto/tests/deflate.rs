//! permessage-deflate (RFC 7692): the §7.2.3 examples byte for byte, negotiation on both
//! roles, RSV1 rules, round trips between two [`Connection`]s for every combination of
//! context takeover and window bits, the threshold, and the decompression-bomb guard with
//! the memory it holds measured by a counting allocator.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use std::alloc::System;
use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use cap::Cap;
use proptest::prelude::*;
use wsstream_proto::ext::deflate::{
    Compressor, DEFLATE_TAIL, Decompressor, DeflateConfig, DeflateNegotiationError, DeflateParams,
};
use wsstream_proto::handshake::{ExtensionOffer, parse_extensions};
use wsstream_proto::{Config, Connection, Event, Message, ProtocolError, Role, State};
use wsstream_test_support::frames::{Frame, ParsedFrame, encode_all, parse_frames};

/// Counts live heap bytes, for the memory assertions.
#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// The allocator counts every thread: tests that measure, and every other test in this
/// binary, run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const RSV1: u8 = 0b100;

fn level6() -> DeflateConfig {
    DeflateConfig::default().compression_level(6).threshold(0)
}

fn config(params: DeflateParams, deflate: DeflateConfig) -> Config {
    Config::default().deflate(Some((params, deflate)))
}

fn connection(role: Role, params: DeflateParams, deflate: DeflateConfig) -> Connection {
    Connection::new(role, config(params, deflate)).unwrap()
}

/// Frames as the peer of `role` sends them (masked towards a server).
fn from_peer(role: Role, frames: &[Frame]) -> Vec<u8> {
    let frames: Vec<Frame> = frames
        .iter()
        .cloned()
        .map(|f| match role {
            Role::Server => f.masked(KEY),
            Role::Client => f.unmasked(),
        })
        .collect();
    encode_all(&frames)
}

/// Feeds `bytes` in pieces of `chunk` and collects the events.
fn feed(conn: &mut Connection, input: &mut BytesMut, bytes: &[u8], chunk: usize) -> Vec<Event> {
    let mut events = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        input.extend_from_slice(piece);
        while let Some(event) = conn.poll_event(input) {
            events.push(event);
        }
    }
    events
}

fn feed_all(conn: &mut Connection, bytes: &[u8]) -> Vec<Event> {
    feed(conn, &mut BytesMut::new(), bytes, bytes.len())
}

/// Sends `message` and returns everything it put on the wire.
fn send(conn: &mut Connection, message: Message) -> Vec<u8> {
    conn.send(message).unwrap();
    let mut wire = Vec::new();
    while let Some(out) = conn.take_transmit() {
        wire.extend_from_slice(&out);
    }
    wire
}

fn text(s: &str) -> Event {
    Event::Message(Message::from(s))
}

fn last_frame_close_code(conn: &mut Connection) -> Option<u16> {
    let mut wire = Vec::new();
    while let Some(out) = conn.take_transmit() {
        wire.extend_from_slice(&out);
    }
    parse_frames(&wire).last().and_then(ParsedFrame::close_code)
}

// ---------------------------------------------------------------------------------------
// RFC 7692 §7.2.3: the examples, byte for byte.
// ---------------------------------------------------------------------------------------

const HELLO_FRAME: [u8; 9] = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn rfc7692_7_2_3_1_a_message_compressed_in_one_block() {
    let _s = serial();
    // Outbound: the server's "Hello" is exactly the RFC's frame.
    let mut server = connection(Role::Server, DeflateParams::default(), level6());
    assert_eq!(send(&mut server, Message::from("Hello")), HELLO_FRAME);
    // Inbound, whole and byte by byte.
    for chunk in [HELLO_FRAME.len(), 1] {
        let mut client = connection(Role::Client, DeflateParams::default(), level6());
        let events = feed(&mut client, &mut BytesMut::new(), &HELLO_FRAME, chunk);
        assert_eq!(events, [text("Hello")]);
    }
    // The fragmented form: RSV1 on the first frame only.
    let fragmented = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for chunk in [fragmented.len(), 1, 4] {
        let mut client = connection(Role::Client, DeflateParams::default(), level6());
        let events = feed(&mut client, &mut BytesMut::new(), &fragmented, chunk);
        assert_eq!(events, [text("Hello")]);
    }
    // A server receives the same frames masked.
    let mut server = connection(Role::Server, DeflateParams::default(), level6());
    let masked = from_peer(
        Role::Server,
        &[
            Frame::text([0xf2, 0x48, 0xcd]).rsv(RSV1).fin(false),
            Frame::continuation([0xc9, 0xc9, 0x07, 0x00]),
        ],
    );
    assert_eq!(feed_all(&mut server, &masked), [text("Hello")]);
}

#[test]
fn rfc7692_7_2_3_2_sharing_the_lz77_window() {
    let _s = serial();
    let second = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    let mut server = connection(Role::Server, DeflateParams::default(), level6());
    assert_eq!(send(&mut server, Message::from("Hello")), HELLO_FRAME);
    assert_eq!(send(&mut server, Message::from("Hello")), second);
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let wire = [&HELLO_FRAME[..], &second[..]].concat();
    assert_eq!(feed_all(&mut client, &wire), [text("Hello"), text("Hello")]);

    // server_no_context_takeover: the second message is compressed afresh...
    let no_takeover = DeflateParams {
        server_no_context_takeover: true,
        ..DeflateParams::default()
    };
    let mut server = connection(Role::Server, no_takeover, level6());
    assert_eq!(send(&mut server, Message::from("Hello")), HELLO_FRAME);
    assert_eq!(send(&mut server, Message::from("Hello")), HELLO_FRAME);
    // ...and the client's decompressor forgets the first: a back-reference fails with 1007.
    let mut client = connection(Role::Client, no_takeover, level6());
    let events = feed_all(&mut client, &wire);
    assert_eq!(
        events,
        [
            text("Hello"),
            Event::Failed(ProtocolError::InvalidCompressedData)
        ]
    );
    assert_eq!(last_frame_close_code(&mut client), Some(1007));
}

#[test]
fn rfc7692_7_2_3_3_a_block_with_no_compression() {
    let _s = serial();
    let wire = [
        0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
    ];
    for chunk in [wire.len(), 1] {
        let mut client = connection(Role::Client, DeflateParams::default(), level6());
        assert_eq!(
            feed(&mut client, &mut BytesMut::new(), &wire, chunk),
            [text("Hello")]
        );
    }
}

#[test]
fn rfc7692_7_2_3_4_a_block_with_bfinal_set() {
    let _s = serial();
    let bfinal = [0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    for chunk in [bfinal.len(), 1] {
        let mut client = connection(Role::Client, DeflateParams::default(), level6());
        let mut input = BytesMut::new();
        assert_eq!(
            feed(&mut client, &mut input, &bfinal, chunk),
            [text("Hello")]
        );
        // The stream goes on after the final block: a sync-flushed message, then the
        // RFC's back-reference to "Hello" (the window survives the final block).
        let wire = [
            &HELLO_FRAME[..],
            &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00][..],
        ]
        .concat();
        assert_eq!(
            feed(&mut client, &mut input, &wire, chunk),
            [text("Hello"), text("Hello")]
        );
    }
    // A final block not followed by the empty stored block (a sloppy sender) still works,
    // and so does the next message.
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let sloppy = [0xc1, 0x07, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let wire = [&sloppy[..], &HELLO_FRAME[..]].concat();
    assert_eq!(feed_all(&mut client, &wire), [text("Hello"), text("Hello")]);
    // Blocks after a final block in the same message (§7.2.1: "The next DEFLATE block
    // follows the padded data"), referring back across it.
    let mut c = flate2::Compress::new(flate2::Compression::new(6), false);
    let mut first = Vec::with_capacity(64);
    c.compress_vec(b"Hello", &mut first, flate2::FlushCompress::Finish)
        .unwrap();
    let mut d = flate2::Compress::new(flate2::Compression::new(6), false);
    d.set_dictionary(b"Hello").unwrap();
    let mut rest = Vec::with_capacity(64);
    d.compress_vec(b" Hello", &mut rest, flate2::FlushCompress::Sync)
        .unwrap();
    assert!(rest.ends_with(&DEFLATE_TAIL));
    rest.truncate(rest.len() - 4);
    let payload = [first, rest].concat();
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let wire = from_peer(Role::Client, &[Frame::text(payload).rsv(RSV1)]);
    assert_eq!(feed_all(&mut client, &wire), [text("Hello Hello")]);
}

#[test]
fn rfc7692_7_2_3_5_two_deflate_blocks_in_one_message() {
    let _s = serial();
    let wire = [
        0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
    ];
    for chunk in [wire.len(), 1, 3] {
        let mut client = connection(Role::Client, DeflateParams::default(), level6());
        assert_eq!(
            feed(&mut client, &mut BytesMut::new(), &wire, chunk),
            [text("Hello")]
        );
    }
}

#[test]
fn rfc7692_7_2_3_6_an_empty_message() {
    let _s = serial();
    // Outbound with threshold 0: an empty message is the single octet 0x00.
    let mut server = connection(Role::Server, DeflateParams::default(), level6());
    assert_eq!(send(&mut server, Message::from("")), [0xc1, 0x01, 0x00]);
    assert_eq!(
        send(&mut server, Message::Binary(Bytes::new())),
        [0xc2, 0x01, 0x00]
    );
    // Inbound: 0x00, and an empty compressed payload, are empty messages; the stream goes
    // on (context intact).
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let wire = [
        &[0xc1, 0x01, 0x00][..],
        &HELLO_FRAME[..],
        &[0xc1, 0x00][..],
        &[0x41, 0x00, 0x00, 0x00, 0x80, 0x01, 0x00][..],
        &[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00][..],
    ]
    .concat();
    assert_eq!(
        feed_all(&mut client, &wire),
        [text(""), text("Hello"), text(""), text(""), text("Hello")]
    );
}

// ---------------------------------------------------------------------------------------
// RSV1 (RFC 7692 §6) and inbound failures.
// ---------------------------------------------------------------------------------------

#[test]
fn rsv1_only_on_the_first_frame_of_a_data_message() {
    let _s = serial();
    for role in [Role::Client, Role::Server] {
        let bad = [
            // RSV1 on a continuation.
            vec![
                Frame::text([0xf2, 0x48]).rsv(RSV1).fin(false),
                Frame::continuation([0xcd, 0xc9, 0xc9, 0x07, 0x00]).rsv(RSV1),
            ],
            // RSV1 on control frames.
            vec![Frame::ping("x").rsv(RSV1)],
            vec![Frame::pong("x").rsv(RSV1)],
            vec![Frame::close(Some(1000), "").rsv(RSV1)],
            // RSV2 and RSV3 stay reserved.
            vec![Frame::text("a").rsv(0b010)],
            vec![Frame::text("a").rsv(0b001)],
            vec![Frame::binary("a").rsv(0b110)],
        ];
        for frames in bad {
            let mut conn = connection(role, DeflateParams::default(), level6());
            let events = feed_all(&mut conn, &from_peer(role, &frames));
            assert!(
                matches!(
                    events.last(),
                    Some(Event::Failed(ProtocolError::ReservedBits(_)))
                ),
                "{role:?} {frames:?}: {events:?}"
            );
            assert_eq!(last_frame_close_code(&mut conn), Some(1002));
        }
        // Without the extension RSV1 is reserved everywhere.
        let mut plain = Connection::new(role, Config::default()).unwrap();
        let events = feed_all(
            &mut plain,
            &from_peer(role, &[Frame::text(&HELLO_FRAME[2..]).rsv(RSV1)]),
        );
        assert_eq!(events, [Event::Failed(ProtocolError::ReservedBits(RSV1))]);
        assert_eq!(last_frame_close_code(&mut plain), Some(1002));
    }
}

#[test]
fn uncompressed_messages_still_arrive_without_a_copy() {
    let _s = serial();
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    // Above the size up to which payloads are copied (a small one gets its own allocation).
    let mut input = BytesMut::from(&from_peer(Role::Client, &[Frame::binary(vec![7u8; 4096])])[..]);
    let range = input.as_ptr() as usize..input.as_ptr() as usize + input.len();
    let Some(Event::Message(Message::Binary(payload))) = client.poll_event(&mut input) else {
        panic!("no message");
    };
    assert_eq!(payload.len(), 4096);
    assert!(
        range.contains(&(payload.as_ptr() as usize)),
        "payload was copied"
    );
}

#[test]
fn compressed_text_is_utf8_checked_as_it_inflates() {
    let _s = serial();
    // 100 KiB of valid text, then an invalid byte, then more: the failure comes before the
    // frame is complete.
    let mut raw = "é".repeat(50_000).into_bytes();
    raw.push(0xff);
    raw.extend_from_slice(&[b'a'; 200_000]);
    let mut compressor = Compressor::new(15, false, 1);
    let mut payload = Vec::new();
    assert!(compressor.compress(&raw, &mut payload));
    // Stored-ish: make the payload large enough to span many chunks.
    let wire = from_peer(Role::Client, &[Frame::text(&payload).rsv(RSV1)]);
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let mut input = BytesMut::new();
    let mut fed = 0;
    let mut events = Vec::new();
    for piece in wire.chunks(16) {
        fed += piece.len();
        events.extend(feed(&mut client, &mut input, piece, piece.len()));
        if !events.is_empty() {
            break;
        }
    }
    assert_eq!(events, [Event::Failed(ProtocolError::InvalidUtf8)]);
    assert!(fed < wire.len(), "failed only at the end of the frame");
    assert_eq!(last_frame_close_code(&mut client), Some(1007));
    // Invalid UTF-8 split across frames of one compressed message fails too, and a message
    // ending inside a code point fails at its end.
    let mut c = Compressor::new(15, false, 6);
    let mut p = Vec::new();
    assert!(c.compress("€".as_bytes().get(..2).unwrap(), &mut p));
    let mut client = connection(Role::Client, DeflateParams::default(), level6());
    let events = feed_all(
        &mut client,
        &from_peer(Role::Client, &[Frame::text(p).rsv(RSV1)]),
    );
    assert_eq!(events, [Event::Failed(ProtocolError::InvalidUtf8)]);
}

#[test]
fn data_that_does_not_inflate_fails_with_1007() {
    let _s = serial();
    for payload in [
        vec![0xff, 0xff, 0xff, 0xff],
        // A stored block whose LEN and NLEN disagree.
        vec![0x00, 0x05, 0x00, 0x00, 0x00, b'H'],
        // A reserved block type (BTYPE 11).
        vec![0x07, 0x00],
    ] {
        for role in [Role::Client, Role::Server] {
            let mut conn = connection(role, DeflateParams::default(), level6());
            let events = feed_all(
                &mut conn,
                &from_peer(role, &[Frame::binary(&payload).rsv(RSV1)]),
            );
            assert_eq!(
                events,
                [Event::Failed(ProtocolError::InvalidCompressedData)],
                "{payload:02x?}"
            );
            assert_eq!(conn.state(), State::Failed);
            assert_eq!(last_frame_close_code(&mut conn), Some(1007));
        }
    }
}

// ---------------------------------------------------------------------------------------
// Decompression bombs (the limit is enforced while inflating).
// ---------------------------------------------------------------------------------------

/// A raw DEFLATE payload (tail removed) inflating to `size` zero bytes.
fn bomb(size: usize) -> Vec<u8> {
    let mut c = Compressor::new(15, false, 9);
    let mut out = Vec::new();
    assert!(c.compress(&vec![0u8; size], &mut out));
    out
}

#[test]
fn a_bomb_fails_with_1009_and_bounded_memory() {
    let _s = serial();
    const LIMIT: usize = 256 << 10;
    let payload = bomb(16 << 20);
    assert!(payload.len() < 20 << 10, "{} bytes", payload.len());
    for (role, frame_size, text) in [
        (Role::Client, usize::MAX, false),
        (Role::Server, usize::MAX, true),
        (Role::Client, 1000, true),
        (Role::Server, 7, false),
    ] {
        let frames: Vec<Frame> = {
            let pieces: Vec<&[u8]> = payload.chunks(frame_size.min(payload.len())).collect();
            let n = pieces.len();
            pieces
                .into_iter()
                .enumerate()
                .map(|(i, piece)| {
                    let f = match (i, text) {
                        (0, true) => Frame::text(piece).rsv(RSV1),
                        (0, false) => Frame::binary(piece).rsv(RSV1),
                        _ => Frame::continuation(piece),
                    };
                    f.fin(i + 1 == n)
                })
                .collect()
        };
        let wire = from_peer(role, &frames);
        let mut conn = Connection::new(
            role,
            Config::default()
                .max_message_size(LIMIT)
                .max_frame_size(LIMIT)
                .deflate(Some((DeflateParams::default(), level6()))),
        )
        .unwrap();
        let mut input = BytesMut::with_capacity(wire.len());
        let base = ALLOC.allocated();
        let mut peak = 0;
        let mut events = Vec::new();
        let mut fed = 0;
        for piece in wire.chunks(512) {
            fed += piece.len();
            events.extend(feed(&mut conn, &mut input, piece, piece.len()));
            peak = peak.max(ALLOC.allocated().saturating_sub(base));
            if !events.is_empty() {
                break;
            }
        }
        assert_eq!(
            events,
            [Event::Failed(ProtocolError::MessageTooLarge {
                size: LIMIT as u64 + 1,
                limit: LIMIT
            })],
            "{role:?} frames of {frame_size}"
        );
        assert!(fed < wire.len(), "the failure waited for the whole message");
        assert_eq!(last_frame_close_code(&mut conn), Some(1009));
        // The inflated output never passed the limit; the rest is the inflate state.
        assert!(
            peak <= LIMIT + (64 << 10),
            "{role:?}: held {peak} bytes for a limit of {LIMIT}"
        );
        assert!(input.is_empty());
    }
}

#[test]
fn the_limit_is_exact_for_compressed_messages() {
    let _s = serial();
    for size in [0usize, 1, 4095, 4096, 4097, 100_000] {
        let payload = bomb(size);
        for limit in [size.max(1), size + 1] {
            let mut client = Connection::new(
                Role::Client,
                Config::default()
                    .max_message_size(limit)
                    .deflate(Some((DeflateParams::default(), level6()))),
            )
            .unwrap();
            let events = feed_all(
                &mut client,
                &from_peer(Role::Client, &[Frame::binary(&payload).rsv(RSV1)]),
            );
            assert_eq!(
                events,
                [Event::Message(Message::Binary(vec![0u8; size].into()))],
                "size {size} limit {limit}"
            );
        }
        if size >= 2 {
            let mut client = Connection::new(
                Role::Client,
                Config::default()
                    .max_message_size(size - 1)
                    .deflate(Some((DeflateParams::default(), level6()))),
            )
            .unwrap();
            let events = feed_all(
                &mut client,
                &from_peer(Role::Client, &[Frame::binary(&payload).rsv(RSV1)]),
            );
            assert_eq!(
                events,
                [Event::Failed(ProtocolError::MessageTooLarge {
                    size: size as u64,
                    limit: size - 1
                })],
                "size {size}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Outbound: threshold, fragmentation, window bits honoured.
// ---------------------------------------------------------------------------------------

#[test]
fn messages_below_the_threshold_go_uncompressed() {
    let _s = serial();
    let cfg = DeflateConfig::default().threshold(100);
    for role in [Role::Client, Role::Server] {
        let mut conn = connection(role, DeflateParams::default(), cfg.clone());
        let short = "a".repeat(99);
        let frames = parse_frames(&send(&mut conn, Message::from(short.as_str())));
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].rsv, 0);
        assert_eq!(frames[0].payload, short.as_bytes());
        let long = "a".repeat(100);
        let frames = parse_frames(&send(&mut conn, Message::from(long.as_str())));
        assert_eq!(frames[0].rsv, RSV1);
        assert!(frames[0].payload.len() < 20);
    }
    // Default: 1 KiB.
    assert_eq!(DeflateConfig::default().threshold, 1024);
}

#[test]
fn compressed_messages_are_fragmented_with_rsv1_on_the_first_frame_only() {
    let _s = serial();
    let body: String = (0..20_000)
        .map(|i| char::from(b'a' + (i * 7 % 26) as u8))
        .collect();
    let mut client = Connection::new(
        Role::Client,
        Config::default()
            .frame_size(100)
            .deflate(Some((DeflateParams::default(), level6()))),
    )
    .unwrap();
    let wire = send(&mut client, Message::from(body.as_str()));
    let frames = parse_frames(&wire);
    assert!(frames.len() > 1);
    assert_eq!(frames[0].rsv, RSV1);
    assert_eq!(frames[0].opcode, 1);
    assert!(frames[1..].iter().all(|f| f.rsv == 0 && f.opcode == 0));
    assert!(frames.iter().all(|f| f.mask.is_some()));
    let mut server = connection(Role::Server, DeflateParams::default(), level6());
    assert_eq!(
        feed(&mut server, &mut BytesMut::new(), &wire, 333),
        [text(&body)]
    );
}

/// Inflates each compressed message of `wire` with an independent raw inflater whose window
/// is exactly `bits`, keeping or resetting its context as the sender must: proves the sender
/// never referred further back than the agreed window.
fn inflate_independently(wire: &[u8], bits: u8, no_context_takeover: bool) -> Vec<Vec<u8>> {
    let mut d = flate2::Decompress::new_with_window_bits(false, bits);
    let mut messages = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    for frame in parse_frames(wire) {
        if frame.opcode != 0 {
            current = Some(Vec::new());
            assert_eq!(frame.rsv, RSV1, "expected a compressed message");
        }
        let payload = current.as_mut().unwrap();
        payload.extend_from_slice(&frame.payload);
        if frame.fin {
            let mut data = current.take().unwrap();
            data.extend_from_slice(&DEFLATE_TAIL);
            let mut out = Vec::with_capacity(1 << 20);
            let before = d.total_in();
            d.decompress_vec(&data, &mut out, flate2::FlushDecompress::Sync)
                .unwrap_or_else(|e| panic!("window {bits}: {e}"));
            assert_eq!(d.total_in() - before, data.len() as u64);
            messages.push(out);
            if no_context_takeover {
                d = flate2::Decompress::new_with_window_bits(false, bits);
            }
        }
    }
    messages
}

/// 20 KiB of pseudo-random bytes twice: a compressor with a 32 KiB window would refer back
/// 20 KiB, which only a window of 15 bits allows.
fn repeating_message(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let block: Vec<u8> = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 64) as u8 + b' '
        })
        .collect();
    [block.clone(), block].concat()
}

#[test]
fn every_window_size_and_context_takeover_is_honoured_both_ways() {
    let _s = serial();
    let json = json_like(3000);
    for bits in 8..=15u8 {
        for (client_nct, server_nct) in [(false, false), (true, false), (false, true), (true, true)]
        {
            let params = DeflateParams {
                client_no_context_takeover: client_nct,
                server_no_context_takeover: server_nct,
                client_max_window_bits: bits,
                server_max_window_bits: bits,
            };
            for sender in [Role::Client, Role::Server] {
                let receiver = match sender {
                    Role::Client => Role::Server,
                    Role::Server => Role::Client,
                };
                let nct = if sender == Role::Client {
                    client_nct
                } else {
                    server_nct
                };
                let mut a = connection(sender, params, DeflateConfig::default());
                let mut b = connection(receiver, params, DeflateConfig::default());
                let messages = [
                    repeating_message(u32::from(bits)),
                    json.clone(),
                    json.clone(),
                    repeating_message(7),
                ];
                let mut wire = Vec::new();
                for m in &messages {
                    wire.extend(send(&mut a, Message::Binary(m.clone().into())));
                }
                let events = feed(&mut b, &mut BytesMut::new(), &wire, 4096);
                let got: Vec<Vec<u8>> = events
                    .into_iter()
                    .map(|e| match e {
                        Event::Message(m) => m.as_bytes().to_vec(),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                assert_eq!(
                    got, messages,
                    "bits {bits} nct {client_nct}/{server_nct} {sender:?}"
                );
                if bits == 8 {
                    // Window 8 cannot be honoured by zlib: everything goes uncompressed.
                    assert!(parse_frames(&wire).iter().all(|f| f.rsv == 0));
                    continue;
                }
                assert_eq!(inflate_independently(&wire, bits, nct), messages);
                // The repeated JSON message benefits from context takeover.
                let sizes: Vec<usize> = parse_frames(&wire)
                    .iter()
                    .map(|f| f.payload.len())
                    .collect();
                if nct {
                    assert_eq!(sizes[1], sizes[2], "{sizes:?}");
                } else if 1 << bits > json.len() {
                    assert!(sizes[2] < sizes[1] / 4, "bits {bits}: {sizes:?}");
                }
            }
        }
    }
}

/// JSON-like text of about `len` bytes.
fn json_like(len: usize) -> Vec<u8> {
    let mut out = String::from("[");
    let mut i = 0u64;
    while out.len() < len {
        out.push_str(&format!(
            r#"{{"id":{i},"name":"user{}","active":{},"score":{}.{}}},"#,
            i * 7919 % 1000,
            i % 3 == 0,
            i * 31 % 100,
            i % 10
        ));
        i += 1;
    }
    out.push(']');
    out.into_bytes()
}

// ---------------------------------------------------------------------------------------
// Round trips between two connections (proptest).
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Payload {
    Text(String),
    Binary(Vec<u8>),
}

fn payload() -> impl Strategy<Value = Payload> {
    let words = prop::sample::select(vec![
        "alpha",
        "beta",
        "γάμμα",
        "\"key\":",
        "{",
        "}",
        "𝄞",
        " ",
        "1234",
    ]);
    prop_oneof![
        prop::collection::vec(words, 0..800).prop_map(|w| Payload::Text(w.concat())),
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Payload::Binary),
        (0usize..70_000, any::<u8>()).prop_map(|(n, b)| Payload::Binary(vec![b; n])),
        "\\PC{0,200}".prop_map(Payload::Text),
    ]
}

impl Payload {
    fn message(&self) -> Message {
        match self {
            Self::Text(s) => Message::from(s.as_str()),
            Self::Binary(b) => Message::Binary(b.clone().into()),
        }
    }
}

fn other(role: Role) -> Role {
    match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    }
}

#[allow(clippy::too_many_arguments)]
fn round_trip(
    sender: Role,
    params: DeflateParams,
    level: u32,
    threshold: usize,
    frame_size: usize,
    chunk: usize,
    payloads: &[Payload],
) -> Result<(), TestCaseError> {
    let deflate = DeflateConfig::default()
        .compression_level(level)
        .threshold(threshold);
    let mut a = Connection::new(
        sender,
        Config::default()
            .frame_size(frame_size)
            .deflate(Some((params, deflate.clone()))),
    )
    .unwrap();
    let mut b = connection(other(sender), params, deflate);
    let our_bits = match sender {
        Role::Client => params.client_max_window_bits,
        Role::Server => params.server_max_window_bits,
    };
    let mut input = BytesMut::new();
    let mut received = Vec::new();
    for p in payloads {
        let message = p.message();
        let wire = send(&mut a, message.clone());
        let frames = parse_frames(&wire);
        let compressed = message.len() >= threshold && our_bits >= 9;
        prop_assert_eq!(frames[0].rsv, if compressed { RSV1 } else { 0 });
        prop_assert!(frames[1..].iter().all(|f| f.rsv == 0));
        received.extend(feed(&mut b, &mut input, &wire, chunk));
    }
    let expected: Vec<Event> = payloads
        .iter()
        .map(|p| Event::Message(p.message()))
        .collect();
    prop_assert_eq!(received, expected);
    prop_assert!(input.is_empty());
    prop_assert_eq!(b.state(), State::Open);
    Ok(())
}

fn params() -> impl Strategy<Value = DeflateParams> {
    (any::<bool>(), any::<bool>(), 8u8..=15, 8u8..=15).prop_map(|(cn, sn, cb, sb)| DeflateParams {
        client_no_context_takeover: cn,
        server_no_context_takeover: sn,
        client_max_window_bits: cb,
        server_max_window_bits: sb,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn round_trips_client_to_server(
        params in params(),
        level in prop::sample::select(vec![0u32, 1, 6, 9]),
        threshold in prop::sample::select(vec![0usize, 1, 64, 1024]),
        frame_size in prop::sample::select(vec![1usize, 7, 1000, 64 << 10]),
        chunk in prop::sample::select(vec![1usize, 3, 100, 1 << 20]),
        payloads in prop::collection::vec(payload(), 1..6),
    ) {
        let _s = serial();
        round_trip(Role::Client, params, level, threshold, frame_size, chunk, &payloads)?;
    }

    #[test]
    fn round_trips_server_to_client(
        params in params(),
        level in prop::sample::select(vec![0u32, 1, 6, 9]),
        threshold in prop::sample::select(vec![0usize, 1, 64, 1024]),
        frame_size in prop::sample::select(vec![1usize, 7, 1000, 64 << 10]),
        chunk in prop::sample::select(vec![1usize, 3, 100, 1 << 20]),
        payloads in prop::collection::vec(payload(), 1..6),
    ) {
        let _s = serial();
        round_trip(Role::Server, params, level, threshold, frame_size, chunk, &payloads)?;
    }
}

// ---------------------------------------------------------------------------------------
// Negotiation (RFC 7692 §5, §7.1).
// ---------------------------------------------------------------------------------------

fn element(s: &str) -> ExtensionOffer {
    let mut list = parse_extensions(s).unwrap();
    assert_eq!(list.len(), 1, "{s}");
    list.remove(0)
}

#[test]
fn client_offers() {
    let _s = serial();
    assert_eq!(
        DeflateConfig::default().client_offer(),
        "permessage-deflate; client_max_window_bits"
    );
    let all = DeflateConfig::default()
        .client_no_context_takeover(true)
        .server_no_context_takeover(true)
        .client_max_window_bits(Some(10))
        .server_max_window_bits(Some(12));
    assert_eq!(
        all.client_offer(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=12; client_max_window_bits=10"
    );
    // Every offer parses as one valid element.
    assert_eq!(parse_extensions(&all.client_offer()).unwrap().len(), 1);
}

#[test]
fn config_validation() {
    let _s = serial();
    assert!(DeflateConfig::default().validate().is_ok());
    for bits in [Some(8), Some(16), Some(0)] {
        for cfg in [
            DeflateConfig::default().client_max_window_bits(bits),
            DeflateConfig::default().server_max_window_bits(bits),
        ] {
            assert!(cfg.validate().is_err(), "{cfg:?}");
            assert!(Connection::new(Role::Client, config(DeflateParams::default(), cfg)).is_err());
        }
    }
    let bad_level = DeflateConfig::default().compression_level(10);
    assert!(bad_level.validate().is_err());
    for bits in [7u8, 16] {
        let params = DeflateParams {
            client_max_window_bits: bits,
            ..DeflateParams::default()
        };
        assert!(Connection::new(Role::Server, config(params, DeflateConfig::default())).is_err());
    }
}

#[test]
fn client_accepts_valid_responses() {
    let _s = serial();
    let default = DeflateConfig::default();
    let cases: &[(&str, DeflateParams)] = &[
        ("permessage-deflate", DeflateParams::default()),
        (
            "permessage-deflate; server_no_context_takeover",
            DeflateParams {
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            DeflateParams {
                client_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            DeflateParams {
                server_max_window_bits: 10,
                ..DeflateParams::default()
            },
        ),
        (
            "permessage-deflate; client_max_window_bits=9",
            DeflateParams {
                client_max_window_bits: 9,
                ..DeflateParams::default()
            },
        ),
        // 8 is a valid protocol value (see the module docs for how it is honoured).
        (
            "permessage-deflate; client_max_window_bits=8; server_max_window_bits=\"8\"",
            DeflateParams {
                client_max_window_bits: 8,
                server_max_window_bits: 8,
                ..DeflateParams::default()
            },
        ),
        (
            "permessage-deflate;client_max_window_bits=15;server_max_window_bits=15;\
             client_no_context_takeover;server_no_context_takeover",
            DeflateParams {
                client_no_context_takeover: true,
                server_no_context_takeover: true,
                ..DeflateParams::default()
            },
        ),
    ];
    for (response, expected) in cases {
        assert_eq!(
            default.accept_response(&element(response)),
            Ok(*expected),
            "{response}"
        );
    }
    // What we asked for, and the server lowering it.
    let asking = DeflateConfig::default()
        .client_no_context_takeover(true)
        .server_no_context_takeover(true)
        .client_max_window_bits(Some(12))
        .server_max_window_bits(Some(11));
    assert_eq!(
        asking.accept_response(&element(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        )),
        Ok(DeflateParams {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            client_max_window_bits: 12,
            server_max_window_bits: 10,
        })
    );
    assert_eq!(
        DeflateParams {
            client_no_context_takeover: true,
            server_no_context_takeover: true,
            client_max_window_bits: 12,
            server_max_window_bits: 10,
        }
        .to_header_value(),
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=10; client_max_window_bits=12"
    );
    assert_eq!(
        DeflateParams::default().to_header_value(),
        "permessage-deflate"
    );
}

#[test]
fn client_rejects_invalid_responses() {
    let _s = serial();
    use DeflateNegotiationError as E;
    let default = DeflateConfig::default();
    let asking = DeflateConfig::default()
        .server_no_context_takeover(true)
        .server_max_window_bits(Some(11))
        .client_max_window_bits(Some(10));
    let cases: &[(&DeflateConfig, &str, E)] = &[
        (
            &default,
            "x-webkit-deflate-frame",
            E::NotDeflate("x-webkit-deflate-frame".into()),
        ),
        (
            &default,
            "permessage-deflate; foo",
            E::UnknownParameter("foo".into()),
        ),
        (
            &default,
            "permessage-deflate; foo=1",
            E::UnknownParameter("foo".into()),
        ),
        (
            &default,
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            E::DuplicateParameter("server_no_context_takeover".into()),
        ),
        (
            &default,
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            E::DuplicateParameter("client_no_context_takeover".into()),
        ),
        (
            &default,
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            E::DuplicateParameter("server_max_window_bits".into()),
        ),
        (
            &default,
            "permessage-deflate; client_max_window_bits=10; client_max_window_bits=11",
            E::DuplicateParameter("client_max_window_bits".into()),
        ),
        (
            &default,
            "permessage-deflate; server_no_context_takeover=1",
            E::InvalidValue {
                param: "server_no_context_takeover".into(),
                value: Some("1".into()),
            },
        ),
        (
            &default,
            "permessage-deflate; client_no_context_takeover=\"\"",
            E::InvalidValue {
                param: "client_no_context_takeover".into(),
                value: Some(String::new()),
            },
        ),
        (
            &default,
            "permessage-deflate; server_max_window_bits",
            E::InvalidValue {
                param: "server_max_window_bits".into(),
                value: None,
            },
        ),
        // §7.1.2.2: no valueless client_max_window_bits in a response.
        (
            &default,
            "permessage-deflate; client_max_window_bits",
            E::InvalidValue {
                param: "client_max_window_bits".into(),
                value: None,
            },
        ),
        (
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
            E::WindowTooLarge {
                param: "server_max_window_bits",
                max: 11,
                got: 12,
            },
        ),
        (
            &asking,
            "permessage-deflate; server_no_context_takeover",
            E::NotAccepted("server_max_window_bits"),
        ),
        (
            &asking,
            "permessage-deflate; server_max_window_bits=11",
            E::NotAccepted("server_no_context_takeover"),
        ),
        (
            &asking,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=11",
            E::WindowTooLarge {
                param: "client_max_window_bits",
                max: 10,
                got: 11,
            },
        ),
    ];
    for (cfg, response, expected) in cases {
        assert_eq!(
            cfg.accept_response(&element(response)).as_ref(),
            Err(expected),
            "{response}"
        );
    }
    for bad in ["7", "16", "x", "08", "9.0", "1_0", "-10", "\"\""] {
        for param in ["server_max_window_bits", "client_max_window_bits"] {
            let response = format!("permessage-deflate; {param}={bad}");
            assert!(
                matches!(
                    default.accept_response(&element(&response)),
                    Err(E::InvalidValue { .. })
                ),
                "{response}"
            );
        }
    }
    // Every error has a message.
    for (_, _, e) in cases {
        assert!(!e.to_string().is_empty());
    }
}

fn negotiate(server: &DeflateConfig, offer: &str) -> Option<(DeflateParams, String)> {
    server.negotiate(&parse_extensions(offer).unwrap())
}

#[test]
fn server_answers_each_parameter() {
    let _s = serial();
    let any = DeflateConfig::default();
    let p = |sn, cn, sb, cb| DeflateParams {
        server_no_context_takeover: sn,
        client_no_context_takeover: cn,
        server_max_window_bits: sb,
        client_max_window_bits: cb,
    };
    let cases: &[(&str, DeflateParams, &str)] = &[
        (
            "permessage-deflate",
            p(false, false, 15, 15),
            "permessage-deflate",
        ),
        // A browser's offer: client_max_window_bits without a value; we accept any window.
        (
            "permessage-deflate; client_max_window_bits",
            p(false, false, 15, 15),
            "permessage-deflate",
        ),
        (
            "permessage-deflate; client_max_window_bits=10",
            p(false, false, 15, 10),
            "permessage-deflate; client_max_window_bits=10",
        ),
        (
            "permessage-deflate; server_max_window_bits=10",
            p(false, false, 10, 15),
            "permessage-deflate; server_max_window_bits=10",
        ),
        // §7.1.2.1: accepting a server_max_window_bits of 15 still says so.
        (
            "permessage-deflate; server_max_window_bits=15",
            p(false, false, 15, 15),
            "permessage-deflate; server_max_window_bits=15",
        ),
        (
            "permessage-deflate; server_max_window_bits=8",
            p(false, false, 8, 15),
            "permessage-deflate; server_max_window_bits=8",
        ),
        (
            "permessage-deflate; server_no_context_takeover",
            p(true, false, 15, 15),
            "permessage-deflate; server_no_context_takeover",
        ),
        (
            "permessage-deflate; client_no_context_takeover",
            p(false, true, 15, 15),
            "permessage-deflate; client_no_context_takeover",
        ),
        // Unacceptable offers are skipped (§5, §7), the next acceptable one is taken.
        (
            "permessage-deflate; foo, permessage-deflate; server_max_window_bits=16, \
             permessage-deflate; server_no_context_takeover; server_no_context_takeover, \
             permessage-deflate; client_max_window_bits=x, \
             permessage-deflate; server_no_context_takeover=yes, \
             x-other, permessage-deflate; server_max_window_bits=12",
            p(false, false, 12, 15),
            "permessage-deflate; server_max_window_bits=12",
        ),
        // The client's order of preference wins.
        (
            "permessage-deflate; server_max_window_bits=10, permessage-deflate",
            p(false, false, 10, 15),
            "permessage-deflate; server_max_window_bits=10",
        ),
    ];
    for (offer, params, response) in cases {
        assert_eq!(
            negotiate(&any, offer),
            Some((*params, (*response).to_owned())),
            "{offer}"
        );
    }
    for none in [
        "",
        "x-webkit-deflate-frame",
        "permessage-deflate; foo",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
    ] {
        assert_eq!(negotiate(&any, none), None, "{none}");
    }

    // A server with its own policy.
    let strict = DeflateConfig::default()
        .server_no_context_takeover(true)
        .client_no_context_takeover(true)
        .server_max_window_bits(Some(12))
        .client_max_window_bits(Some(11));
    let cases: &[(&str, DeflateParams, &str)] = &[
        (
            "permessage-deflate; client_max_window_bits",
            p(true, true, 12, 11),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=11",
        ),
        // §7.1.2.2: without the client's client_max_window_bits we may not send it (the
        // client keeps 15).
        (
            "permessage-deflate",
            p(true, true, 12, 15),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12",
        ),
        (
            "permessage-deflate; server_max_window_bits=14; client_max_window_bits=9",
            p(true, true, 12, 9),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=12; client_max_window_bits=9",
        ),
        (
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=13",
            p(true, true, 10, 11),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             server_max_window_bits=10; client_max_window_bits=11",
        ),
    ];
    for (offer, params, response) in cases {
        assert_eq!(
            negotiate(&strict, offer),
            Some((*params, (*response).to_owned())),
            "{offer}"
        );
    }
    // An invalid policy accepts nothing.
    let broken = DeflateConfig::default().server_max_window_bits(Some(20));
    assert_eq!(negotiate(&broken, "permessage-deflate"), None);
}

fn deflate_config() -> impl Strategy<Value = DeflateConfig> {
    let bits = prop::option::of(9u8..=15);
    (any::<bool>(), any::<bool>(), bits.clone(), bits).prop_map(|(cn, sn, cb, sb)| {
        DeflateConfig::default()
            .client_no_context_takeover(cn)
            .server_no_context_takeover(sn)
            .client_max_window_bits(cb)
            .server_max_window_bits(sb)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// Any valid client and server configs agree, on parameters that honour both.
    #[test]
    fn negotiation_round_trip(client in deflate_config(), server in deflate_config()) {
        let _s = serial();
        let offer = parse_extensions(&client.client_offer()).unwrap();
        let (server_params, response) = server.negotiate(&offer).unwrap();
        let response = parse_extensions(&response).unwrap();
        prop_assert_eq!(response.len(), 1);
        let client_params = client.accept_response(&response[0]).unwrap();
        prop_assert_eq!(client_params, server_params);
        let p = client_params;
        prop_assert!(p.client_no_context_takeover || !(client.client_no_context_takeover || server.client_no_context_takeover));
        prop_assert!(p.server_no_context_takeover || !(client.server_no_context_takeover || server.server_no_context_takeover));
        for limit in [client.server_max_window_bits, server.server_max_window_bits].into_iter().flatten() {
            prop_assert!(p.server_max_window_bits <= limit);
        }
        for limit in [client.client_max_window_bits, server.client_max_window_bits].into_iter().flatten() {
            prop_assert!(p.client_max_window_bits <= limit);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Memory.
// ---------------------------------------------------------------------------------------

/// Live heap bytes of a compressor and a decompressor with `bits`, after one 64 KiB
/// message each way (the steady state: every buffer touched and kept).
fn codec_memory(bits: u8, level: u32) -> (usize, usize) {
    let data = json_like(64 << 10);
    let base = ALLOC.allocated();
    let mut c = Compressor::new(bits, false, level);
    let mut compressed = Vec::new();
    assert!(c.compress(&data, &mut compressed));
    let compressor = ALLOC.allocated() - base - compressed.capacity();
    let base = ALLOC.allocated();
    let mut d = Decompressor::new(bits, false);
    let mut out = Vec::new();
    d.inflate(&compressed, &mut out, usize::MAX, |_| {
        Ok::<(), ProtocolError>(())
    })
    .unwrap();
    d.finish(false, &mut out, usize::MAX, |_| Ok::<(), ProtocolError>(()))
        .unwrap();
    assert_eq!(out, data);
    let decompressor = ALLOC.allocated() - base - out.capacity();
    drop((c, d));
    (compressor, decompressor)
}

#[test]
fn deflate_state_memory() {
    let _s = serial();
    let (c15, d15) = codec_memory(15, 1);
    let (c9, d9) = codec_memory(9, 1);
    println!(
        "compressor: 15 bits {c15} B, 9 bits {c9} B; decompressor: 15 bits {d15} B, 9 bits {d9} B"
    );
    // zlib-rs allocates a fixed 128 KiB hash table per compressor and a full 32 KiB window
    // per decompressor whatever the window bits: a smaller window saves little.
    assert!(c9 < c15 && d9 <= d15);
    assert!(c15 < 512 << 10 && d15 < 64 << 10, "{c15} {d15}");

    // Nothing is allocated for deflate before the first compressed message.
    let base = ALLOC.allocated();
    let mut a = connection(
        Role::Client,
        DeflateParams::default(),
        DeflateConfig::default(),
    );
    let mut b = connection(
        Role::Server,
        DeflateParams::default(),
        DeflateConfig::default(),
    );
    let idle = ALLOC.allocated() - base;
    assert!(idle < 4 << 10, "{idle} bytes for two idle connections");
    let wire = send(&mut a, Message::from("small"));
    assert_eq!(feed_all(&mut b, &wire), [text("small")]);
    assert!(
        ALLOC.allocated() - base < 8 << 10,
        "small messages allocated deflate state"
    );
    drop((a, b));
}

#[test]
fn idle_connections_release_deflate_memory() {
    let _s = serial();
    let message = Message::from(String::from_utf8(json_like(8 << 10)).unwrap());
    for peer_takeover in [true, false] {
        let params = DeflateParams {
            server_no_context_takeover: !peer_takeover,
            ..DeflateParams::default()
        };
        let base = ALLOC.allocated();
        let mut client = connection(Role::Client, params, DeflateConfig::default());
        let mut server = connection(Role::Server, params, DeflateConfig::default());
        let mut input = BytesMut::new();
        let exchange = |client: &mut Connection, server: &mut Connection, input: &mut BytesMut| {
            let wire = send(client, message.clone());
            assert_eq!(
                feed(server, input, &wire, wire.len()),
                [Event::Message(message.clone())]
            );
            let wire = send(server, message.clone());
            assert_eq!(
                feed(client, input, &wire, wire.len()),
                [Event::Message(message.clone())]
            );
        };
        exchange(&mut client, &mut server, &mut input);
        let busy = ALLOC.allocated() - base;
        client.release_deflate_memory();
        let released = ALLOC.allocated() - base;
        // The client's compressor always goes; its decompressor only without the server's
        // context takeover.
        let freed = busy - released;
        if peer_takeover {
            assert!((200 << 10..400 << 10).contains(&freed), "freed {freed}");
        } else {
            assert!(freed > 240 << 10, "freed {freed}");
        }
        // Everything still works, context included where it was kept.
        exchange(&mut client, &mut server, &mut input);
        exchange(&mut client, &mut server, &mut input);
        // Without deflate it does nothing.
        let mut plain = Connection::new(Role::Client, Config::default()).unwrap();
        plain.release_deflate_memory();
    }
}

#[test]
fn control_frames_interleave_with_a_compressed_message() {
    let _s = serial();
    for role in [Role::Client, Role::Server] {
        let mut conn = connection(role, DeflateParams::default(), level6());
        let wire = from_peer(
            role,
            &[
                Frame::text([0xf2, 0x48]).rsv(RSV1).fin(false),
                Frame::ping("p"),
                Frame::continuation([0xcd, 0xc9]).fin(false),
                Frame::pong("q"),
                Frame::continuation([0xc9, 0x07, 0x00]),
                Frame::text("plain"),
            ],
        );
        for chunk in [1, wire.len()] {
            let mut conn2 = connection(role, DeflateParams::default(), level6());
            let events = feed(&mut conn2, &mut BytesMut::new(), &wire, chunk);
            assert_eq!(
                events,
                [
                    Event::Ping(Bytes::from_static(b"p")),
                    Event::Pong(Bytes::from_static(b"q")),
                    text("Hello"),
                    text("plain"),
                ]
            );
        }
        let events = feed_all(&mut conn, &wire);
        assert_eq!(events.len(), 4);
        let mut out = Vec::new();
        while let Some(b) = conn.take_transmit() {
            out.extend_from_slice(&b);
        }
        let frames = parse_frames(&out);
        assert_eq!(frames.len(), 1);
        assert_eq!(
            (frames[0].opcode, frames[0].rsv),
            (0xA, 0),
            "the pong is not compressed"
        );
    }
}
