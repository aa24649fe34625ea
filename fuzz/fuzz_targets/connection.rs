//! A whole session through a sans-io `Connection`: arbitrary inbound bytes (raw, or as
//! fuzzer-shaped frames) interleaved with arbitrary API calls (`send`, `close`, `ping`,
//! `take_transmit` or in-place writes through `transmit`/`advance_transmit` with short
//! writes of any size, `poll_event`), in either role, optionally starting with the
//! client's opening handshake (the bytes after the 101 head are the first connection
//! bytes).
//!
//! Everything this connection transmits is decoded by a reference peer (a `Connection`
//! of the other role) and checked:
//!
//! * no panic;
//! * no event after `Failed` or `Close`; a failure leaves a Close frame queued;
//! * the state only moves forward (`Open` → `CloseSent`/`CloseReceived` → `Closed`, or
//!   → `Failed`; `Closed` and `Failed` are final);
//! * the transmit buffer never holds more than `send_buffer` + one data frame + the
//!   control slack + one Close frame (+ the pings the caller queued since the last take);
//! * what goes out is well formed: the peer never fails, no frame follows our Close,
//!   control frames are final and at most 125 bytes, masked iff we are the client;
//! * nothing is lost or reordered: every message the peer receives is the next one we
//!   sent, byte for byte, and a message stops short only when the closing handshake
//!   abandoned it (`abandoned_data()`);
//! * received messages respect the limit; `send` fails exactly when it must.
//!
//! Input: byte 0 picks the role (bit 0), the handshake prelude (bit 1, client only), the
//! message limit (bits 2–3), the frame size (bits 4–5) and the send buffer (bits 6–7);
//! then a sequence of operations, one opcode byte each followed by its arguments.
#![no_main]

use std::collections::VecDeque;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use wsstream_proto::handshake::{ClientHandshake, ClientRequest};
use wsstream_proto::{CloseCode, Config, Connection, Event, Message, Role, State};

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3 and its accept value.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RESPONSE: &[u8] = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";

/// The engine's control lane may go this far past the data cap (`CONTROL_SLACK`).
const CONTROL_SLACK: usize = 4 * 1024;
/// Largest frame header: 2 + 8 (64-bit length) + 4 (mask).
const MAX_HEADER: usize = 14;
/// Largest control frame on the wire.
const MAX_CONTROL: usize = MAX_HEADER + 125;

/// Reads the fuzzer's bytes; every read past the end yields zeros.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }
}

fn config(selector: u8) -> Config {
    let max_message_size = match (selector >> 2) & 3 {
        0 => 1 << 20,
        1 => 1000,
        2 => 64,
        _ => 1,
    };
    let frame_size = match (selector >> 4) & 3 {
        0 => 64 << 10,
        1 => 1000,
        2 => 7,
        _ => 1,
    };
    let send_buffer = match selector >> 6 {
        0 => 64 << 10,
        1 => 4096,
        2 => 100,
        _ => 1,
    };
    Config::default()
        .max_message_size(max_message_size)
        .max_frame_size(max_message_size)
        .frame_size(frame_size)
        .send_buffer(send_buffer)
}

/// How far the closing handshake has got: the state may only move forward.
fn rank(state: State) -> u8 {
    match state {
        State::Open => 0,
        State::CloseSent | State::CloseReceived => 1,
        State::Closed | State::Failed => 2,
    }
}

fn check_transition(before: State, after: State) {
    let ok = match before {
        State::Open => true,
        State::CloseSent | State::CloseReceived => after != State::Open,
        State::Closed | State::Failed => after == before,
    };
    assert!(
        ok && rank(after) >= rank(before),
        "state went {before:?} -> {after:?}"
    );
}

/// A payload for `send`: text with one- to four-byte characters (so small frame sizes
/// split characters across frames), or binary.
fn payload(text: bool, len: usize, seed: u8) -> Message {
    if text {
        const CHARS: [&str; 4] = ["a", "é", "€", "😀"];
        let mut s = String::with_capacity(len + 4);
        let mut i = usize::from(seed);
        while s.len() < len {
            s.push_str(CHARS[i % 4]);
            i = i.wrapping_mul(31).wrapping_add(7);
        }
        Message::from(s)
    } else {
        Message::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(seed | 1))
                .collect::<Vec<u8>>(),
        )
    }
}

/// Encodes one inbound frame as the fuzzer shapes it (possibly invalid).
fn frame(out: &mut BytesMut, b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) {
    out.extend_from_slice(&[b0]);
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    if len < 126 {
        out.extend_from_slice(&[mask_bit | len as u8]);
    } else if len <= 0xFFFF {
        out.extend_from_slice(&[mask_bit | 126]);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&[mask_bit | 127]);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        for (i, b) in out[start..].iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
}

/// Walks our transmitted bytes frame by frame (they are always whole frames) and checks
/// the wire rules the peer's decoder does not report as a failure.
struct WireCheck {
    role: Role,
    close_seen: bool,
}

impl WireCheck {
    fn check(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            assert!(!self.close_seen, "a frame after our Close frame");
            assert!(bytes.len() >= 2, "a truncated frame header");
            let (b0, b1) = (bytes[0], bytes[1]);
            let (len, ext) = match b1 & 0x7F {
                126 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 2),
                127 => {
                    let raw: [u8; 8] = bytes[2..10].try_into().expect("8 bytes");
                    (u64::from_be_bytes(raw), 8)
                }
                n => (u64::from(n), 0),
            };
            let masked = b1 & 0x80 != 0;
            assert_eq!(
                masked,
                self.role == Role::Client,
                "mask bit for {:?}",
                self.role
            );
            assert_eq!(b0 & 0x70, 0, "RSV bits without an extension");
            let opcode = b0 & 0x0F;
            if opcode >= 8 {
                assert!(b0 & 0x80 != 0, "a fragmented control frame");
                assert!(len <= 125, "a control frame of {len} bytes");
            }
            if opcode == 8 {
                self.close_seen = true;
            }
            let total = 2 + ext + if masked { 4 } else { 0 } + len as usize;
            assert!(bytes.len() >= total, "a truncated frame");
            bytes = &bytes[total..];
        }
    }
}

struct Session {
    conn: Connection,
    peer: Connection,
    wire: WireCheck,
    /// Inbound bytes not yet consumed by `conn`.
    input: BytesMut,
    /// Messages accepted by `send`, not yet seen by the peer.
    sent: VecDeque<Message>,
    /// Bytes our transmit buffer may hold beyond the data and control bounds: pings the
    /// caller queued since the transmit buffer was last emptied.
    ping_allowance: usize,
    /// Bytes written in place (`transmit` + `advance_transmit`) that do not yet end on a
    /// frame boundary: the peer gets whole frames.
    partial: BytesMut,
    finished: bool,
    peer_done: bool,
    limit: usize,
    bound: usize,
    frame_size: usize,
}

impl Session {
    fn step_state<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.conn.state();
        let r = f(self);
        check_transition(before, self.conn.state());
        assert!(
            self.conn.transmit_len() <= self.bound + self.ping_allowance,
            "transmit buffer of {} bytes (bound {} + {})",
            self.conn.transmit_len(),
            self.bound,
            self.ping_allowance
        );
        r
    }

    /// Polls one event and checks it.
    fn poll_one(&mut self) -> bool {
        let Some(event) = self.conn.poll_event(&mut self.input) else {
            if self.finished {
                assert!(self.input.is_empty(), "input kept after Failed/Close");
            }
            return false;
        };
        assert!(!self.finished, "event after Failed/Close: {event:?}");
        match &event {
            Event::Failed(error) => {
                self.finished = true;
                assert_eq!(self.conn.state(), State::Failed);
                assert_eq!(self.conn.failure(), Some(error));
                assert!(self.conn.close_sent(), "failed without a Close frame");
                assert!(!self.conn.wants_data());
            }
            Event::Close(frame) => {
                self.finished = true;
                assert!(self.conn.close_sent(), "the Close reply is queued");
                assert_eq!(self.conn.close_received(), Some(frame));
                assert!(frame.code.is_none_or(|c| c.is_valid_on_wire()));
                assert!(frame.reason.len() <= 123);
            }
            Event::Message(message) => assert!(message.len() <= self.limit),
            Event::Ping(p) | Event::Pong(p) => assert!(p.len() <= 125),
        }
        true
    }

    fn drain_events(&mut self, max: usize) {
        for _ in 0..max {
            if !self.step_state(Self::poll_one) {
                break;
            }
        }
    }

    /// Takes the transmit buffer and hands it to the peer.
    fn transmit(&mut self) {
        // Finish a frame an in-place write left half written first.
        while !self.partial.is_empty() {
            self.transmit_in_place(usize::MAX);
        }
        let allowance = self.ping_allowance;
        let out = self.step_state(|s| s.conn.take_transmit());
        self.ping_allowance = 0;
        let Some(out) = out else {
            assert!(!self.conn.has_transmit() || self.conn.message_in_progress());
            return;
        };
        assert!(!out.is_empty());
        assert!(
            out.len() <= self.bound + allowance,
            "one take of {} bytes",
            out.len()
        );
        self.wire.check(&out);
        self.feed_peer(&out);
    }

    /// Writes up to `n` bytes of the transmit buffer in place, as a runtime writing
    /// straight from it to a socket that takes only part of it; the whole frames written
    /// so far go to the peer.
    fn transmit_in_place(&mut self, n: usize) {
        let allowance = self.ping_allowance;
        let (len, written) = self.step_state(|s| {
            let buf = s.conn.transmit();
            let len = buf.len();
            let n = n.clamp(1, len.max(1)).min(len);
            s.partial.extend_from_slice(&buf[..n]);
            s.conn.advance_transmit(n);
            (len, n)
        });
        assert!(
            len <= self.bound + allowance,
            "a transmit buffer of {len} bytes"
        );
        if len == written {
            self.ping_allowance = 0;
        }
        if len == 0 {
            assert!(!self.conn.has_transmit() || self.conn.message_in_progress());
        }
        let whole = whole_frames(&self.partial);
        let frames = self.partial.split_to(whole);
        if !frames.is_empty() {
            self.wire.check(&frames);
            self.feed_peer(&frames);
        }
    }

    fn feed_peer(&mut self, bytes: &[u8]) {
        if self.peer_done {
            return;
        }
        let mut buf = BytesMut::from(bytes);
        while let Some(event) = self.peer.poll_event(&mut buf) {
            match event {
                Event::Failed(e) => panic!("the peer rejects what we sent: {e}"),
                Event::Message(got) => {
                    let expected = self.sent.pop_front().expect("a message we never sent");
                    assert!(got == expected, "message lost, altered or reordered");
                }
                Event::Close(_) => {
                    self.peer_done = true;
                    // Whatever we had not finished sending was abandoned by our close.
                    if !self.sent.is_empty() {
                        assert!(
                            self.sent.len() == 1 && self.conn.abandoned_data(),
                            "{} sent messages never arrived",
                            self.sent.len()
                        );
                    }
                }
                Event::Ping(_) | Event::Pong(_) => {}
            }
        }
        // The peer's replies (pongs, its Close) go nowhere.
        let _ = self.peer.take_transmit();
    }
}

/// The length of the whole frames at the front of `bytes`.
fn whole_frames(bytes: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let rest = &bytes[at..];
        if rest.len() < 2 {
            return at;
        }
        let (len, ext) = match rest[1] & 0x7F {
            126 if rest.len() >= 4 => (u64::from(u16::from_be_bytes([rest[2], rest[3]])), 2),
            127 if rest.len() >= 10 => {
                let raw: [u8; 8] = rest[2..10].try_into().expect("8 bytes");
                (u64::from_be_bytes(raw), 8)
            }
            126 | 127 => return at,
            n => (u64::from(n), 0),
        };
        let mask = if rest[1] & 0x80 != 0 { 4 } else { 0 };
        let total = 2 + ext + mask + usize::try_from(len).unwrap_or(usize::MAX);
        if rest.len() < total {
            return at;
        }
        at += total;
    }
}

fn run(data: &[u8]) {
    let mut input = Input { data };
    let selector = input.byte();
    let role = if selector & 1 == 0 {
        Role::Client
    } else {
        Role::Server
    };
    let handshake = role == Role::Client && selector & 2 != 0;
    let config = config(selector);
    let bound =
        config.send_buffer + config.frame_size + MAX_HEADER + CONTROL_SLACK + 2 * MAX_CONTROL;
    let limit = config.max_message_size;
    let frame_size = config.frame_size;
    let Ok(conn) = Connection::new(role, config) else {
        panic!("every fuzzed configuration is valid");
    };
    let peer_role = match role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let Ok(peer) = Connection::new(peer_role, Config::default()) else {
        panic!("the default configuration is valid");
    };
    let mut s = Session {
        conn,
        peer,
        wire: WireCheck {
            role,
            close_seen: false,
        },
        input: BytesMut::new(),
        sent: VecDeque::new(),
        ping_allowance: 0,
        partial: BytesMut::new(),
        finished: false,
        peer_done: false,
        limit,
        bound,
        frame_size,
    };

    // The client's opening handshake: the 101 head arrives in fuzzer-sized chunks, and
    // whatever follows the head in the same reads is the first connection input.
    if handshake {
        let request = ClientRequest {
            host: "example.com",
            port: None,
            resource: "/",
            protocols: &[],
            extensions: None,
            headers: &[],
        };
        let Ok(client) = ClientHandshake::with_key(&request, KEY) else {
            panic!("the fixed request is valid");
        };
        let mut head = BytesMut::new();
        let mut response = RESPONSE.to_vec();
        let extra = usize::from(input.byte());
        response.extend_from_slice(input.bytes(extra));
        let mut at = 0;
        loop {
            let chunk = usize::from(input.byte()).max(1);
            let end = (at + chunk).min(response.len());
            head.extend_from_slice(&response[at..end]);
            at = end;
            match client.parse_response(&head) {
                Ok(Some((_, n))) => {
                    assert_eq!(n, RESPONSE.len(), "the head ends at its blank line");
                    let _ = head.split_to(n);
                    s.input = head;
                    s.input.extend_from_slice(&response[at..]);
                    break;
                }
                Ok(None) if at < response.len() => {}
                other => panic!("a valid 101 is refused: {other:?}"),
            }
        }
    }

    let mut ops = 0;
    while !input.is_empty() && ops < 4096 {
        ops += 1;
        match input.byte() % 9 {
            // Raw inbound bytes.
            0 => {
                let n = usize::from(input.byte());
                let bytes = input.bytes(n);
                s.input.extend_from_slice(bytes);
                if s.finished {
                    s.drain_events(1);
                }
            }
            // A shaped inbound frame: header bits, length and masking as the fuzzer
            // chooses (correct masking for our role unless bit 0 of the flags says so).
            1 => {
                let b0 = input.byte();
                let flags = input.byte();
                let len = match flags >> 5 {
                    0..=3 => usize::from(input.byte()),
                    4 => 126 + usize::from(input.byte()),
                    5 => usize::from(input.u16()),
                    6 => 70_000,
                    _ => 0,
                };
                let fill = input.byte();
                let body: Vec<u8> = if flags & 2 != 0 {
                    input.bytes(len).to_vec()
                } else {
                    payload(flags & 4 != 0, len, fill).into_bytes().to_vec()
                };
                let wants_mask = (role == Role::Server) ^ (flags & 1 != 0);
                let key = wants_mask.then_some([fill, 1, 2, 3]);
                let mut out = BytesMut::new();
                frame(&mut out, b0, key, &body);
                s.input.extend_from_slice(&out);
            }
            // A close frame with a code from a small menu and a reason.
            2 => {
                let code = input.u16();
                let n = usize::from(input.byte() % 130);
                let reason = payload(true, n, code as u8).into_bytes();
                let mut body = code.to_be_bytes().to_vec();
                body.extend_from_slice(&reason[..reason.len().min(123)]);
                let key = (role == Role::Server).then_some([9, 8, 7, 6]);
                let mut out = BytesMut::new();
                frame(&mut out, 0x88, key, &body);
                s.input.extend_from_slice(&out);
            }
            // poll_event, up to n events.
            3 => {
                let n = usize::from(input.byte() % 16) + 1;
                s.drain_events(n);
            }
            // send
            4 => {
                let flags = input.byte();
                let len = match flags >> 6 {
                    0 => usize::from(flags & 0x3F),
                    1 => usize::from(input.byte()) * 4,
                    2 => usize::from(input.u16()),
                    // Past 64 KiB: 64-bit lengths, several default frames.
                    _ => 70_000,
                };
                // Tiny frames cost a frame per byte or few: keep an execution fast.
                let len = if s.frame_size >= 1000 {
                    len
                } else {
                    len.min(3_000)
                };
                let message = payload(flags & 1 == 0, len, input.byte());
                let may = !s.conn.close_sent()
                    && s.conn.failure().is_none()
                    && !s.conn.message_in_progress();
                let result = s.step_state(|s| s.conn.send(message.clone()));
                assert_eq!(result.is_ok(), may, "send: {result:?}");
                if result.is_ok() {
                    s.sent.push_back(message);
                }
            }
            // close
            5 => {
                let code = match input.byte() % 6 {
                    0 => None,
                    1 => Some(1000),
                    2 => Some(3000 + input.u16() % 2000),
                    3 => Some(1005),
                    4 => Some(1002),
                    _ => Some(input.u16()),
                };
                let n = usize::from(input.byte() % 130);
                let reason = if code.is_some() {
                    let text = payload(true, n, 3);
                    let text = text.as_text().unwrap_or_default();
                    let mut end = text.len().min(n);
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text[..end].to_owned()
                } else {
                    String::new()
                };
                let sent_before = s.conn.close_sent();
                let result = s.step_state(|s| s.conn.close(code.map(CloseCode), &reason));
                let valid =
                    code.is_none_or(|c| CloseCode(c).is_valid_on_wire()) && reason.len() <= 123;
                assert_eq!(
                    result.is_ok(),
                    valid,
                    "close({code:?}, {} bytes): {result:?}",
                    reason.len()
                );
                if result.is_ok() {
                    assert!(s.conn.close_sent());
                    assert!(!s.conn.wants_data());
                } else {
                    assert_eq!(s.conn.close_sent(), sent_before);
                }
            }
            // ping
            6 => {
                let n = usize::from(input.byte() % 140);
                let body = input.bytes(n).to_vec();
                let may = !s.conn.close_sent() && s.conn.failure().is_none() && body.len() <= 125;
                s.ping_allowance += MAX_CONTROL;
                let result = s.step_state(|s| s.conn.ping(&body));
                assert_eq!(result.is_ok(), may, "ping: {result:?}");
            }
            // take_transmit, or an in-place short write
            7 => match input.byte() {
                0..=127 => s.transmit(),
                m => {
                    let n = match m & 3 {
                        0 => usize::from(input.byte()),
                        1 => usize::from(input.u16()),
                        2 => 1,
                        _ => usize::MAX,
                    };
                    s.transmit_in_place(n);
                }
            },
            // A full round: decode everything buffered, then transmit.
            _ => {
                s.drain_events(64);
                s.transmit();
            }
        }
        assert!(s.conn.read_hint() >= 1);
        if s.conn.close_sent() || s.conn.failure().is_some() {
            assert!(!s.conn.wants_data());
        }
    }
    // End of input: drain and flush everything; whole messages we sent all arrived.
    s.drain_events(1 << 16);
    for _ in 0..1_000_000 {
        if !s.conn.has_transmit() {
            break;
        }
        s.transmit();
    }
    assert!(!s.conn.has_transmit(), "the transmit buffer never drains");
    assert!(s.partial.is_empty(), "a frame left half written");
    if !s.peer_done {
        assert!(
            s.sent.is_empty() || (s.sent.len() == 1 && s.conn.abandoned_data()),
            "{} sent messages never arrived",
            s.sent.len()
        );
    }
}

fuzz_target!(|data: &[u8]| run(data));
