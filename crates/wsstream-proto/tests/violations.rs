//! A scripted peer (the frames DSL) breaks RFC 6455 one rule at a time; each test checks the
//! exact [`ProtocolError`] reported and the close code of the Close frame our
//! [`Connection`] queues. Then the happy paths of control frames and the closing handshake.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use wsstream_proto::{
    ApiMisuse, CloseCode, Config, Connection, Event, Message, ProtocolError, Role, State,
};
use wsstream_test_support::frames::{Frame, ParsedFrame, encode_all, opcode, parse_frames};

const KEY: [u8; 4] = [0xA1, 0xB2, 0xC3, 0xD4];
const BOTH: [Role; 2] = [Role::Client, Role::Server];

/// A frame as the peer of `role` sends it: masked towards a server, unmasked towards a client.
fn from_peer(role: Role, frame: Frame) -> Frame {
    match role {
        Role::Server => frame.masked(KEY),
        Role::Client => frame.unmasked(),
    }
}

/// Frames as the peer of `role` sends them, back to back.
fn script(role: Role, frames: impl IntoIterator<Item = Frame>) -> Vec<u8> {
    let frames: Vec<Frame> = frames.into_iter().map(|f| from_peer(role, f)).collect();
    encode_all(&frames)
}

/// A connection under test plus its input buffer (kept between feeds, as a runtime does).
struct Harness {
    conn: Connection,
    input: BytesMut,
}

impl Harness {
    fn new(role: Role) -> Self {
        Self::with_config(role, Config::default())
    }

    fn with_config(role: Role, config: Config) -> Self {
        Self {
            conn: Connection::new(role, config).unwrap(),
            input: BytesMut::new(),
        }
    }

    fn role(&self) -> Role {
        self.conn.role()
    }

    /// Appends `bytes` to the input and polls until no event is left.
    fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        self.input.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(event) = self.conn.poll_event(&mut self.input) {
            events.push(event);
        }
        events
    }

    /// Everything queued for the peer, parsed (and unmasked).
    fn sent(&mut self) -> Vec<ParsedFrame> {
        let mut out = Vec::new();
        while let Some(bytes) = self.conn.take_transmit() {
            out.extend_from_slice(&bytes);
        }
        let frames = parse_frames(&out);
        let expect_masked = self.role() == Role::Client;
        for frame in &frames {
            assert_eq!(frame.mask.is_some(), expect_masked, "masking of {frame:?}");
        }
        frames
    }

    /// Asserts the connection failed with `error` on the last event, queued a Close frame
    /// with the error's close code as its last frame, and decodes nothing afterwards.
    fn assert_failed(&mut self, events: &[Event], error: &ProtocolError, code: u16) {
        assert_eq!(
            error.close_code(),
            CloseCode(code),
            "close code of {error:?}"
        );
        assert_eq!(
            events.last(),
            Some(&Event::Failed(error.clone())),
            "events: {events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Failed(_)))
                .count(),
            1,
            "{events:?}"
        );
        assert_eq!(self.conn.state(), State::Failed);
        assert_eq!(self.conn.failure(), Some(error));
        let sent = self.sent();
        let close = sent
            .last()
            .unwrap_or_else(|| panic!("no Close frame queued for {error:?}"));
        assert!(close.is_close(), "last frame sent is not a Close: {sent:?}");
        assert_eq!(close.close_code(), Some(code), "{error:?}");
        assert!(std::str::from_utf8(close.close_reason()).is_ok());
        assert!(close.payload.len() <= 125);
        assert_eq!(sent.iter().filter(|f| f.is_close()).count(), 1);
        // §7.1.7: once failed, no further data is processed.
        let more = script(self.role(), [Frame::text("after"), Frame::ping("p")]);
        assert_eq!(self.feed(&more), []);
        assert!(self.input.is_empty(), "input after failure is discarded");
        assert_eq!(self.sent(), [], "nothing is sent after the Close frame");
        assert_eq!(
            self.conn.send(Message::from("x")),
            Err(ApiMisuse::SendAfterClose)
        );
    }
}

/// Feeds `frames` from the peer of `role` and asserts the failure.
fn assert_violation(
    role: Role,
    frames: impl IntoIterator<Item = Frame>,
    error: ProtocolError,
    code: u16,
) {
    let mut h = Harness::new(role);
    let events = h.feed(&script(role, frames));
    h.assert_failed(&events, &error, code);
}

// ---- Reserved opcodes (§5.2) ----

macro_rules! reserved_opcode_tests {
    ($($name:ident => $op:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            for role in BOTH {
                assert_violation(role, [Frame::raw_opcode($op, "x")], ProtocolError::ReservedOpcode($op), 1002);
            }
        }
    )*};
}

reserved_opcode_tests! {
    reserved_opcode_3_fails_with_1002 => 0x3,
    reserved_opcode_4_fails_with_1002 => 0x4,
    reserved_opcode_5_fails_with_1002 => 0x5,
    reserved_opcode_6_fails_with_1002 => 0x6,
    reserved_opcode_7_fails_with_1002 => 0x7,
    reserved_opcode_0xb_fails_with_1002 => 0xB,
    reserved_opcode_0xc_fails_with_1002 => 0xC,
    reserved_opcode_0xd_fails_with_1002 => 0xD,
    reserved_opcode_0xe_fails_with_1002 => 0xE,
    reserved_opcode_0xf_fails_with_1002 => 0xF,
}

#[test]
fn reserved_opcode_fails_inside_a_fragmented_message() {
    assert_violation(
        Role::Client,
        [Frame::text("a").fin(false), Frame::raw_opcode(0xB, "")],
        ProtocolError::ReservedOpcode(0xB),
        1002,
    );
}

#[test]
fn every_reserved_opcode_is_rejected_by_the_dsl_list() {
    for op in opcode::RESERVED {
        assert_violation(
            Role::Server,
            [Frame::raw_opcode(op, "")],
            ProtocolError::ReservedOpcode(op),
            1002,
        );
    }
}

// ---- Reserved bits (§5.2) ----

#[test]
fn rsv1_without_extension_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::text("x").rsv(0b100)],
            ProtocolError::ReservedBits(0b100),
            1002,
        );
    }
}

#[test]
fn rsv2_without_extension_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::binary("x").rsv(0b010)],
            ProtocolError::ReservedBits(0b010),
            1002,
        );
    }
}

#[test]
fn rsv3_without_extension_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::text("x").rsv(0b001)],
            ProtocolError::ReservedBits(0b001),
            1002,
        );
    }
}

#[test]
fn rsv_bits_on_control_and_continuation_frames_fail_with_1002() {
    assert_violation(
        Role::Client,
        [Frame::ping("x").rsv(0b100)],
        ProtocolError::ReservedBits(0b100),
        1002,
    );
    assert_violation(
        Role::Client,
        [
            Frame::text("a").fin(false),
            Frame::continuation("b").rsv(0b111),
        ],
        ProtocolError::ReservedBits(0b111),
        1002,
    );
}

// ---- Masking (§5.1) ----

#[test]
fn masked_frame_to_a_client_fails_with_1002() {
    let mut h = Harness::new(Role::Client);
    let events = h.feed(&Frame::text("Hello").masked(KEY).encode());
    h.assert_failed(&events, &ProtocolError::MaskedFrame, 1002);
}

#[test]
fn unmasked_frame_to_a_server_fails_with_1002() {
    let mut h = Harness::new(Role::Server);
    let events = h.feed(&Frame::text("Hello").encode());
    h.assert_failed(&events, &ProtocolError::UnmaskedFrame, 1002);
}

#[test]
fn unmasked_control_frame_to_a_server_fails_with_1002() {
    let mut h = Harness::new(Role::Server);
    let events = h.feed(&Frame::ping("").encode());
    h.assert_failed(&events, &ProtocolError::UnmaskedFrame, 1002);
}

// ---- Control frames (§5.5) ----

#[test]
fn fragmented_control_frame_fails_with_1002() {
    for role in BOTH {
        for frame in [
            Frame::ping("a"),
            Frame::pong("a"),
            Frame::close(Some(1000), ""),
        ] {
            assert_violation(
                role,
                [frame.fin(false)],
                ProtocolError::FragmentedControlFrame,
                1002,
            );
        }
    }
}

#[test]
fn ping_of_126_bytes_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::ping([0u8; 126])],
            ProtocolError::ControlFrameTooLong(126),
            1002,
        );
    }
}

#[test]
fn ping_of_126_bytes_fails_before_its_payload_arrives() {
    let mut h = Harness::new(Role::Client);
    let bytes = Frame::ping([0u8; 126]).encode();
    let events = h.feed(&bytes[..4]);
    h.assert_failed(&events, &ProtocolError::ControlFrameTooLong(126), 1002);
}

#[test]
fn control_frames_of_126_bytes_fail_with_1002_whatever_the_opcode() {
    assert_violation(
        Role::Server,
        [Frame::pong([0u8; 126])],
        ProtocolError::ControlFrameTooLong(126),
        1002,
    );
    assert_violation(
        Role::Server,
        [Frame::close(Some(1000), [b'a'; 124])],
        ProtocolError::ControlFrameTooLong(126),
        1002,
    );
}

#[test]
fn ping_of_125_bytes_is_answered() {
    let mut h = Harness::new(Role::Client);
    let payload = [7u8; 125];
    assert_eq!(
        h.feed(&Frame::ping(payload).encode()),
        [Event::Ping(Bytes::copy_from_slice(&payload))]
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].opcode, sent[0].payload.as_slice()),
        (opcode::PONG, &payload[..])
    );
}

// ---- Lengths (§5.2) ----

#[test]
fn length_with_top_bit_set_fails_with_1002() {
    for role in BOTH {
        let frame = Frame::binary("").len64().len_override(1 << 63);
        assert_violation(role, [frame], ProtocolError::InvalidLength, 1002);
        let frame = Frame::binary("").len64().len_override(u64::MAX);
        assert_violation(role, [frame], ProtocolError::InvalidLength, 1002);
    }
}

#[test]
fn non_minimal_lengths_are_accepted() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let bytes = script(
            role,
            [
                Frame::text("abc").len16(),
                Frame::binary("d").len64(),
                Frame::ping("e").len16(),
            ],
        );
        assert_eq!(
            h.feed(&bytes),
            [
                Event::Message(Message::from("abc")),
                Event::Message(Message::from(&b"d"[..])),
                Event::Ping(Bytes::from_static(b"e")),
            ]
        );
    }
}

// ---- Fragmentation (§5.4) ----

#[test]
fn continuation_without_start_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::continuation("x")],
            ProtocolError::UnexpectedContinuation,
            1002,
        );
        assert_violation(
            role,
            [Frame::continuation("x").fin(false)],
            ProtocolError::UnexpectedContinuation,
            1002,
        );
    }
}

#[test]
fn continuation_after_a_complete_message_fails_with_1002() {
    let mut h = Harness::new(Role::Client);
    let events = h.feed(&encode_all(&[
        Frame::text("a").fin(false),
        Frame::continuation("b"),
        Frame::continuation("c"),
    ]));
    assert_eq!(events[0], Event::Message(Message::from("ab")));
    h.assert_failed(&events, &ProtocolError::UnexpectedContinuation, 1002);
}

#[test]
fn new_data_frame_inside_a_fragmented_message_fails_with_1002() {
    for role in BOTH {
        for second in [
            Frame::text("b"),
            Frame::binary("b"),
            Frame::text("b").fin(false),
        ] {
            assert_violation(
                role,
                [Frame::binary("a").fin(false), second],
                ProtocolError::ExpectedContinuation,
                1002,
            );
        }
    }
}

// ---- Close frame bodies (§5.5.1, §7.4) ----

#[test]
fn close_body_of_one_byte_fails_with_1002() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::close_raw([0x03])],
            ProtocolError::InvalidCloseFrame,
            1002,
        );
    }
}

macro_rules! invalid_close_code_tests {
    ($($name:ident => $code:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            for role in BOTH {
                assert_violation(
                    role,
                    [Frame::close(Some($code), "")],
                    ProtocolError::InvalidCloseCode($code),
                    1002,
                );
                assert_violation(
                    role,
                    [Frame::close(Some($code), "with reason")],
                    ProtocolError::InvalidCloseCode($code),
                    1002,
                );
            }
        }
    )*};
}

invalid_close_code_tests! {
    close_code_0_fails_with_1002 => 0,
    close_code_999_fails_with_1002 => 999,
    close_code_1004_fails_with_1002 => 1004,
    close_code_1005_fails_with_1002 => 1005,
    close_code_1006_fails_with_1002 => 1006,
    close_code_1015_fails_with_1002 => 1015,
    close_code_1016_fails_with_1002 => 1016,
    close_code_1100_fails_with_1002 => 1100,
    close_code_2000_fails_with_1002 => 2000,
    close_code_2999_fails_with_1002 => 2999,
    close_code_5000_fails_with_1002 => 5000,
    close_code_65535_fails_with_1002 => 65535,
}

#[test]
fn close_reason_with_invalid_utf8_fails_with_1007() {
    for role in BOTH {
        for reason in [&b"\xff"[..], b"ok\xce", b"\xed\xa0\x80", b"\xc0\xaf"] {
            assert_violation(
                role,
                [Frame::close(Some(1000), reason)],
                ProtocolError::InvalidUtf8,
                1007,
            );
        }
    }
}

#[test]
fn close_reason_with_invalid_utf8_after_our_close_fails_without_a_second_close() {
    let mut h = Harness::new(Role::Client);
    h.conn.close(Some(CloseCode::NORMAL), "bye").unwrap();
    let ours = h.sent();
    assert_eq!(ours.len(), 1);
    let events = h.feed(&Frame::close(Some(1000), b"\xff").encode());
    assert_eq!(events, [Event::Failed(ProtocolError::InvalidUtf8)]);
    assert_eq!(h.conn.state(), State::Failed);
    assert_eq!(h.sent(), [], "our Close frame was already sent");
}

// ---- UTF-8 (§8.1) ----

#[test]
fn invalid_utf8_in_a_single_text_frame_fails_with_1007() {
    for role in BOTH {
        for payload in [
            &b"\xff"[..],
            b"abc\x80",
            b"\xed\xa0\x80",
            b"\xf4\x90\x80\x80",
            b"\xc0\xaf",
        ] {
            assert_violation(
                role,
                [Frame::text(payload)],
                ProtocolError::InvalidUtf8,
                1007,
            );
        }
    }
}

#[test]
fn truncated_utf8_at_the_end_of_a_text_message_fails_with_1007() {
    for role in BOTH {
        assert_violation(
            role,
            [Frame::text(&"€".as_bytes()[..2])],
            ProtocolError::InvalidUtf8,
            1007,
        );
        assert_violation(
            role,
            [
                Frame::text("a").fin(false),
                Frame::continuation(&"€".as_bytes()[..1]),
            ],
            ProtocolError::InvalidUtf8,
            1007,
        );
    }
}

#[test]
fn invalid_utf8_split_across_fragments_with_a_ping_interleaved_fails_with_1007() {
    for role in BOTH {
        let mut h = Harness::new(role);
        // F4 is a valid lead byte; F4 90 encodes beyond U+10FFFF.
        let events = h.feed(&script(
            role,
            [
                Frame::text(b"ok\xf4").fin(false),
                Frame::ping("p"),
                Frame::continuation(b"\x90\x80\x80"),
            ],
        ));
        assert_eq!(events[0], Event::Ping(Bytes::from_static(b"p")));
        h.assert_failed(&events, &ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn valid_utf8_split_across_fragments_with_control_frames_interleaved_is_decoded() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let s = "κόσμε 𝄞".as_bytes();
        let events = h.feed(&script(
            role,
            [
                Frame::text(&s[..1]).fin(false),
                Frame::ping("1"),
                Frame::continuation(&s[1..12]).fin(false),
                Frame::pong("2"),
                Frame::continuation(&s[12..]),
            ],
        ));
        assert_eq!(
            events,
            [
                Event::Ping(Bytes::from_static(b"1")),
                Event::Pong(Bytes::from_static(b"2")),
                Event::Message(Message::from("κόσμε 𝄞")),
            ]
        );
    }
}

#[test]
fn invalid_utf8_fails_fast_before_the_frame_is_complete() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let bytes = from_peer(role, Frame::text(b"hello\xffworld, more to come")).encode();
        let header = if role == Role::Server { 6 } else { 2 };
        // Only the header, "hello" and the first invalid byte have arrived.
        let events = h.feed(&bytes[..header + 6]);
        h.assert_failed(&events, &ProtocolError::InvalidUtf8, 1007);
    }
}

#[test]
fn invalid_utf8_fails_fast_inside_a_code_point_split_across_reads() {
    let mut h = Harness::new(Role::Server);
    let bytes = Frame::text(b"ab\xf4\x90\x80\x80cd").masked(KEY).encode();
    assert_eq!(h.feed(&bytes[..6 + 3]), [], "F4 alone may still be valid");
    let events = h.feed(&bytes[6 + 3..6 + 4]);
    h.assert_failed(&events, &ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn invalid_utf8_fails_fast_in_a_later_fragment_before_it_completes() {
    let mut h = Harness::new(Role::Client);
    let mut bytes = Frame::text("valid ").fin(false).encode();
    let second = Frame::continuation(b"\xc3\x28 and the rest").encode();
    bytes.extend_from_slice(&second[..4]);
    let events = h.feed(&bytes);
    h.assert_failed(&events, &ProtocolError::InvalidUtf8, 1007);
}

#[test]
fn binary_messages_are_not_utf8_checked() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let events = h.feed(&script(
            role,
            [
                Frame::binary(b"\xff").fin(false),
                Frame::continuation(b"\xfe"),
            ],
        ));
        assert_eq!(events, [Event::Message(Message::from(&b"\xff\xfe"[..]))]);
    }
}

// ---- Limits (1009) ----

#[test]
fn frame_over_max_frame_size_fails_with_1009_before_its_payload_arrives() {
    for role in BOTH {
        let config = Config::default().max_frame_size(1000);
        let mut h = Harness::with_config(role, config.clone());
        // Only the header of a 1001-byte frame.
        let events = h.feed(&from_peer(role, Frame::binary("").len_override(1001)).encode());
        h.assert_failed(
            &events,
            &ProtocolError::FrameTooLarge {
                size: 1001,
                limit: 1000,
            },
            1009,
        );

        let mut h = Harness::with_config(role, config);
        let events = h.feed(&script(role, [Frame::text(vec![b'a'; 1000])]));
        assert_eq!(
            events,
            [Event::Message(Message::from("a".repeat(1000)))],
            "the limit is inclusive"
        );
    }
}

#[test]
fn huge_declared_frame_fails_with_1009_without_allocating() {
    let mut h = Harness::new(Role::Client);
    let events = h.feed(
        &Frame::binary("")
            .len64()
            .len_override(i64::MAX as u64)
            .encode(),
    );
    let limit = Config::default().max_frame_size;
    h.assert_failed(
        &events,
        &ProtocolError::FrameTooLarge {
            size: i64::MAX as u64,
            limit,
        },
        1009,
    );
}

#[test]
fn message_over_max_message_size_grown_over_many_fragments_fails_with_1009() {
    for role in BOTH {
        let config = Config::default()
            .max_message_size(1000)
            .max_frame_size(1000);
        let mut h = Harness::with_config(role, config);
        let mut frames = vec![Frame::binary([1u8; 100]).fin(false)];
        frames.extend((0..9).map(|_| Frame::continuation([2u8; 100]).fin(false)));
        assert_eq!(
            h.feed(&script(role, frames)),
            [],
            "exactly at the limit so far"
        );
        // The header of the eleventh fragment: the message would reach 1100 bytes.
        let next = from_peer(role, Frame::continuation([3u8; 100]).fin(false)).encode();
        let events = h.feed(&next[..if role == Role::Server { 6 } else { 2 }]);
        h.assert_failed(
            &events,
            &ProtocolError::MessageTooLarge {
                size: 1100,
                limit: 1000,
            },
            1009,
        );
    }
}

#[test]
fn message_at_max_message_size_over_many_fragments_is_delivered() {
    let config = Config::default().max_message_size(1000);
    let mut h = Harness::with_config(Role::Server, config);
    let mut frames = vec![Frame::text("x".repeat(100)).fin(false)];
    frames.extend((0..8).map(|_| Frame::continuation("y".repeat(100)).fin(false)));
    frames.push(Frame::continuation("z".repeat(100)));
    let events = h.feed(&script(Role::Server, frames));
    let expected = format!("{}{}{}", "x".repeat(100), "y".repeat(800), "z".repeat(100));
    assert_eq!(events, [Event::Message(Message::from(expected))]);
}

#[test]
fn single_frame_over_max_message_size_fails_with_1009() {
    let config = Config::default().max_message_size(10);
    let mut h = Harness::with_config(Role::Client, config);
    let events = h.feed(&Frame::text("").len_override(11).encode());
    h.assert_failed(
        &events,
        &ProtocolError::MessageTooLarge {
            size: 11,
            limit: 10,
        },
        1009,
    );
}

// ---- After the peer's Close ----

#[test]
fn nothing_is_decoded_after_a_close_frame() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let bytes = script(
            role,
            [
                Frame::text("before"),
                Frame::close(Some(1000), "done"),
                Frame::text("after"),
                Frame::ping("unanswered"),
                Frame::raw_opcode(0x3, "even a violation"),
            ],
        );
        let events = h.feed(&bytes);
        assert_eq!(events.len(), 2, "{events:?}");
        assert_eq!(events[0], Event::Message(Message::from("before")));
        assert!(
            matches!(&events[1], Event::Close(f) if f.code == Some(CloseCode::NORMAL) && &*f.reason == "done")
        );
        assert!(h.input.is_empty());
        assert_eq!(h.conn.state(), State::Closed);
        let sent = h.sent();
        assert_eq!(sent.len(), 1, "only the Close echo, no pong: {sent:?}");
        assert_eq!(sent[0].close_code(), Some(1000));
        assert_eq!(h.feed(&script(role, [Frame::text("later")])), []);
        assert_eq!(h.sent(), []);
    }
}

// ---- Happy paths ----

#[test]
fn ping_is_answered_with_an_identical_pong_payload() {
    for role in BOTH {
        for payload in [&b""[..], b"x", b"\x00\xff binary \xfe", &[0xAB; 125]] {
            let mut h = Harness::new(role);
            assert_eq!(
                h.feed(&script(role, [Frame::ping(payload)])),
                [Event::Ping(Bytes::copy_from_slice(payload))]
            );
            let sent = h.sent();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].opcode, opcode::PONG);
            assert!(sent[0].fin);
            assert_eq!(sent[0].payload, payload);
        }
    }
}

#[test]
fn pong_is_reported_and_not_answered() {
    for role in BOTH {
        let mut h = Harness::new(role);
        assert_eq!(
            h.feed(&script(role, [Frame::pong("unsolicited")])),
            [Event::Pong(Bytes::from_static(b"unsolicited"))]
        );
        assert_eq!(h.sent(), []);
    }
}

#[test]
fn control_frames_interleaved_inside_a_fragmented_message_are_handled() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let bytes = script(
            role,
            [
                Frame::binary("frag1 ").fin(false),
                Frame::ping("ping-1"),
                Frame::continuation("frag2 ").fin(false),
                Frame::pong("pong-1"),
                Frame::ping("ping-2"),
                Frame::continuation("frag3"),
            ],
        );
        // Fed one byte at a time: interleaving must survive any chunking.
        let mut events = Vec::new();
        for byte in &bytes {
            events.extend(h.feed(std::slice::from_ref(byte)));
        }
        assert_eq!(
            events,
            [
                Event::Ping(Bytes::from_static(b"ping-1")),
                Event::Pong(Bytes::from_static(b"pong-1")),
                Event::Ping(Bytes::from_static(b"ping-2")),
                Event::Message(Message::from(&b"frag1 frag2 frag3"[..])),
            ]
        );
        let pongs: Vec<Vec<u8>> = h.sent().into_iter().map(|f| f.payload).collect();
        assert_eq!(pongs, [b"ping-1".to_vec(), b"ping-2".to_vec()]);
    }
}

#[test]
fn peer_close_is_echoed_with_the_same_code() {
    for role in BOTH {
        for code in [1000u16, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            let mut h = Harness::new(role);
            let events = h.feed(&script(role, [Frame::close(Some(code), "reason")]));
            assert!(
                matches!(&events[..], [Event::Close(f)] if f.code == Some(CloseCode(code)) && &*f.reason == "reason"),
                "{events:?}"
            );
            assert_eq!(h.conn.state(), State::Closed);
            assert!(h.conn.close_sent());
            let sent = h.sent();
            assert_eq!(sent.len(), 1);
            assert_eq!(sent[0].close_code(), Some(code));
        }
    }
}

#[test]
fn empty_peer_close_is_echoed_empty_and_reported_as_1005() {
    for role in BOTH {
        let mut h = Harness::new(role);
        let events = h.feed(&script(role, [Frame::close(None, "")]));
        assert!(
            matches!(&events[..], [Event::Close(f)] if f.code.is_none() && f.reported_code() == CloseCode::NO_STATUS)
        );
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        assert!(sent[0].is_close());
        assert!(sent[0].payload.is_empty());
    }
}

#[test]
fn peer_close_during_a_fragmented_message_is_accepted() {
    let mut h = Harness::new(Role::Server);
    let events = h.feed(&script(
        Role::Server,
        [Frame::text("part").fin(false), Frame::close(Some(1001), "")],
    ));
    assert!(matches!(&events[..], [Event::Close(f)] if f.code == Some(CloseCode::GOING_AWAY)));
    assert_eq!(h.conn.state(), State::Closed);
}

#[test]
fn close_then_peer_close_reaches_closed() {
    for role in BOTH {
        let mut h = Harness::new(role);
        h.conn.close(Some(CloseCode(4000)), "bye").unwrap();
        assert_eq!(h.conn.state(), State::CloseSent);
        let sent = h.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(
            (sent[0].close_code(), sent[0].close_reason()),
            (Some(4000), &b"bye"[..])
        );
        // Data may still arrive before the peer's Close.
        let events = h.feed(&script(
            role,
            [Frame::text("late"), Frame::close(Some(4000), "bye")],
        ));
        assert_eq!(events[0], Event::Message(Message::from("late")));
        assert!(matches!(&events[1], Event::Close(f) if f.code == Some(CloseCode(4000))));
        assert_eq!(h.conn.state(), State::Closed);
        assert_eq!(h.sent(), [], "no second Close frame");
    }
}

#[test]
fn ping_after_our_close_is_not_answered() {
    for role in BOTH {
        let mut h = Harness::new(role);
        h.conn.close(None, "").unwrap();
        let sent = h.sent();
        assert!(sent[0].is_close() && sent[0].payload.is_empty());
        assert_eq!(
            h.feed(&script(role, [Frame::ping("late")])),
            [Event::Ping(Bytes::from_static(b"late"))]
        );
        assert_eq!(h.sent(), [], "no frame may follow our Close frame");
    }
}

#[test]
fn send_after_close_is_api_misuse() {
    for role in BOTH {
        let mut h = Harness::new(role);
        h.conn.close(Some(CloseCode::NORMAL), "").unwrap();
        assert_eq!(
            h.conn.send(Message::from("x")),
            Err(ApiMisuse::SendAfterClose)
        );
        assert_eq!(h.conn.ping(b""), Err(ApiMisuse::SendAfterClose));
        assert!(!h.conn.wants_data());
        // A second close is a no-op.
        assert_eq!(h.conn.close(Some(CloseCode::NORMAL), ""), Ok(()));
        assert_eq!(h.sent().len(), 1);

        let mut h = Harness::new(role);
        h.feed(&script(role, [Frame::close(Some(1000), "")]));
        assert_eq!(
            h.conn.send(Message::from(&b"x"[..])),
            Err(ApiMisuse::SendAfterClose)
        );
    }
}

#[test]
fn data_sent_before_close_precedes_the_close_frame() {
    let mut h = Harness::new(Role::Client);
    h.conn.send(Message::from("first")).unwrap();
    h.conn.close(Some(CloseCode::NORMAL), "").unwrap();
    let sent = h.sent();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].payload, b"first");
    assert!(sent[1].is_close());
    assert!(!h.conn.abandoned_data());
}

#[test]
fn close_during_a_large_outbound_message_abandons_it() {
    let config = Config::default().frame_size(1024).send_buffer(4096);
    let mut h = Harness::with_config(Role::Server, config);
    h.conn.send(Message::from(vec![0u8; 100_000])).unwrap();
    assert!(h.conn.message_in_progress());
    h.conn.close(Some(CloseCode::GOING_AWAY), "").unwrap();
    assert!(h.conn.abandoned_data());
    let sent = h.sent();
    let close_at = sent.iter().position(ParsedFrame::is_close).unwrap();
    assert_eq!(close_at, sent.len() - 1, "nothing after the Close frame");
    assert!(
        sent[..close_at].iter().all(|f| !f.fin),
        "the message was cut short"
    );
}

#[test]
fn close_codes_are_validated_in_close() {
    for code in [0u16, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        let mut h = Harness::new(Role::Client);
        assert_eq!(
            h.conn.close(Some(CloseCode(code)), ""),
            Err(ApiMisuse::InvalidCloseCode(code))
        );
        assert_eq!(h.conn.state(), State::Open, "{code}");
        assert_eq!(h.sent(), []);
    }
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1014, 3000, 4999,
    ] {
        let mut h = Harness::new(Role::Client);
        assert_eq!(h.conn.close(Some(CloseCode(code)), "ok"), Ok(()), "{code}");
        assert_eq!(h.sent()[0].close_code(), Some(code));
    }
    let mut h = Harness::new(Role::Server);
    assert_eq!(
        h.conn.close(None, "reason without code"),
        Err(ApiMisuse::InvalidCloseCode(0))
    );
    let long = "r".repeat(124);
    assert_eq!(
        h.conn.close(Some(CloseCode::NORMAL), &long),
        Err(ApiMisuse::CloseReasonTooLong(124))
    );
    assert_eq!(h.conn.close(Some(CloseCode::NORMAL), &long[..123]), Ok(()));
    let sent = h.sent();
    assert_eq!(
        (sent[0].close_reason().len(), sent[0].payload.len()),
        (123, 125)
    );
}

#[test]
fn ping_payload_over_125_bytes_is_api_misuse() {
    let mut h = Harness::new(Role::Client);
    assert_eq!(h.conn.ping(&[0; 126]), Err(ApiMisuse::PingTooLong(126)));
    assert_eq!(h.conn.ping(&[0; 125]), Ok(()));
}
