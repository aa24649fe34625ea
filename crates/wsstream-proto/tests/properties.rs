//! Round-trip properties: whatever one [`Connection`] sends, a [`Connection`] of the other
//! role receives exactly, however the byte stream is cut, and the closing handshake
//! completes with the code and reason preserved.

// Test helpers outside #[test] functions unwrap too.
#![allow(clippy::unwrap_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use wsstream_proto::close::MAX_REASON_LEN;
use wsstream_proto::{CloseCode, Config, Connection, Event, Message, Role, State};

/// Payload sizes around every length-encoding edge (§5.2) and the default frame size.
const EDGES: [usize; 10] = [0, 1, 125, 126, 127, 65535, 65536, 65537, 69999, 70000];

/// One thing the sender does.
#[derive(Clone, Debug)]
enum Op {
    /// Send a message; issue these pings while its frames are being taken out.
    Send(Message, Vec<Vec<u8>>),
    /// Send a ping between messages.
    Ping(Vec<u8>),
}

/// Pseudo-random bytes (xorshift), so large payloads are cheap to generate and shrink.
fn filler(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A string of exactly `len` bytes made of repetitions of `seed` (any Unicode), cut at a
/// char boundary and padded with ASCII.
fn text_of_len(seed: &str, len: usize) -> String {
    let mut out = String::with_capacity(len + 4);
    if !seed.is_empty() {
        while out.len() < len {
            out.push_str(seed);
        }
        let mut at = len.min(out.len());
        while !out.is_char_boundary(at) {
            at -= 1;
        }
        out.truncate(at);
    }
    while out.len() < len {
        out.push('a');
    }
    out
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..300,
        3 => proptest::sample::select(EDGES.to_vec()),
        1 => 0usize..70_000,
    ]
}

fn ping_payload() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=125)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        // Arbitrary (short) strings and bytes, exactly.
        any::<String>().prop_map(Message::from),
        proptest::collection::vec(any::<u8>(), 0..300).prop_map(Message::from),
        // Any size up to ~70000, built from an arbitrary seed.
        (any::<String>(), size()).prop_map(|(seed, len)| Message::from(text_of_len(&seed, len))),
        (any::<u64>(), size()).prop_map(|(seed, len)| Message::from(filler(len, seed))),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (message(), proptest::collection::vec(ping_payload(), 0..3)).prop_map(|(m, p)| Op::Send(m, p)),
        1 => ping_payload().prop_map(Op::Ping),
    ]
}

/// The sizes input arrives in: cycled through. Includes one byte at a time.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        1 => Just(vec![1]),
        3 => proptest::collection::vec(1usize..=64, 1..8),
        2 => proptest::collection::vec(1usize..=100_000, 1..4),
    ]
}

fn frame_size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => 1usize..=16,
        1 => 100usize..=200,
        1 => proptest::sample::select(vec![125usize, 126, 127, 65535, 65536, 65537]),
        2 => Just(Config::default().frame_size),
    ]
}

fn send_buffer() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(1usize),
        1usize..5000,
        Just(Config::default().send_buffer)
    ]
}

fn close_code() -> impl Strategy<Value = Option<u16>> {
    prop_oneof![
        1 => Just(None),
        3 => proptest::sample::select(vec![1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014]).prop_map(Some),
        3 => (3000u16..=4999).prop_map(Some),
    ]
}

fn close_reason() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|mut s| {
        let mut at = s.len().min(MAX_REASON_LEN);
        while !s.is_char_boundary(at) {
            at -= 1;
        }
        s.truncate(at);
        s
    })
}

/// One end: the connection, its input buffer and the events it reported.
struct Side {
    conn: Connection,
    input: BytesMut,
    events: Vec<Event>,
}

impl Side {
    fn new(role: Role, config: Config) -> Self {
        Self {
            conn: Connection::new(role, config).unwrap(),
            input: BytesMut::new(),
            events: Vec::new(),
        }
    }

    /// Everything in the transmit buffer.
    fn flush(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(bytes) = self.conn.take_transmit() {
            out.extend_from_slice(&bytes);
        }
        out
    }

    /// Feeds `bytes` cut as `chunks` says, polling after each piece: the fast path
    /// (`poll_message`) first, as the runtime's reader does, then the full decoder.
    fn feed(&mut self, bytes: &[u8], chunks: &[usize]) {
        let mut at = 0;
        for &chunk in chunks.iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let end = at.saturating_add(chunk.max(1)).min(bytes.len());
            self.input.extend_from_slice(&bytes[at..end]);
            at = end;
            loop {
                if let Some(message) = self.conn.poll_message(&mut self.input) {
                    self.events.push(Event::Message(message));
                } else if let Some(event) = self.conn.poll_event(&mut self.input) {
                    self.events.push(event);
                } else {
                    break;
                }
            }
        }
    }

    fn messages(&self) -> Vec<Message> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn pings(&self) -> Vec<Bytes> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Ping(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn pongs(&self) -> Vec<Bytes> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Pong(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn failures(&self) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::Failed(_)))
            .collect()
    }
}

/// Runs the sender's script; returns the wire bytes, the messages and the pings sent.
fn run_sender(sender: &mut Side, ops: &[Op]) -> (Vec<u8>, Vec<Message>, Vec<Bytes>) {
    let mut wire = Vec::new();
    let mut messages = Vec::new();
    let mut pings = Vec::new();
    for op in ops {
        match op {
            Op::Ping(payload) => {
                sender.conn.ping(payload).unwrap();
                pings.push(Bytes::copy_from_slice(payload));
            }
            Op::Send(message, during) => {
                if !sender.conn.wants_data() {
                    // Pings queued above a tiny send buffer: write them out first.
                    wire.extend_from_slice(&sender.flush());
                }
                assert!(sender.conn.wants_data());
                sender.conn.send(message.clone()).unwrap();
                messages.push(message.clone());
                let mut during = during.iter();
                while let Some(bytes) = sender.conn.take_transmit() {
                    wire.extend_from_slice(&bytes);
                    // A control frame between the data frames of the message.
                    if let Some(payload) = during.next() {
                        sender.conn.ping(payload).unwrap();
                        pings.push(Bytes::copy_from_slice(payload));
                    }
                }
                assert!(!sender.conn.message_in_progress());
            }
        }
    }
    wire.extend_from_slice(&sender.flush());
    (wire, messages, pings)
}

#[allow(clippy::too_many_arguments)]
fn round_trip(
    sender_role: Role,
    ops: &[Op],
    frame_size: usize,
    send_buffer: usize,
    chunks_ab: &[usize],
    chunks_ba: &[usize],
    sender_closes: bool,
    code: Option<u16>,
    reason: &str,
) -> Result<(), TestCaseError> {
    let receiver_role = match sender_role {
        Role::Client => Role::Server,
        Role::Server => Role::Client,
    };
    let config = Config::default()
        .frame_size(frame_size)
        .send_buffer(send_buffer);
    let mut a = Side::new(sender_role, config);
    let mut b = Side::new(receiver_role, Config::default());

    // Data: A → B.
    let (wire, sent_messages, sent_pings) = run_sender(&mut a, ops);
    b.feed(&wire, chunks_ab);
    prop_assert_eq!(b.failures(), Vec::<&Event>::new());
    prop_assert!(b.input.is_empty());
    prop_assert_eq!(b.messages(), sent_messages);
    prop_assert_eq!(b.pings(), sent_pings.clone());
    // Pongs: B → A, same payloads in the same order.
    let pongs = b.flush();
    a.feed(&pongs, chunks_ba);
    prop_assert_eq!(a.failures(), Vec::<&Event>::new());
    prop_assert_eq!(a.pongs(), sent_pings);
    prop_assert_eq!(a.events.len(), a.pongs().len());
    prop_assert_eq!(a.conn.state(), State::Open);
    prop_assert_eq!(b.conn.state(), State::Open);

    // Closing handshake, started by either side.
    let (closer, peer, to_peer, back) = if sender_closes {
        (&mut a, &mut b, chunks_ab, chunks_ba)
    } else {
        (&mut b, &mut a, chunks_ba, chunks_ab)
    };
    closer.events.clear();
    peer.events.clear();
    closer.conn.close(code.map(CloseCode), reason).unwrap();
    prop_assert_eq!(closer.conn.state(), State::CloseSent);
    let close = closer.flush();
    peer.feed(&close, to_peer);
    let expected_code = code.map(CloseCode);
    match peer.events.as_slice() {
        [Event::Close(frame)] => {
            prop_assert_eq!(frame.code, expected_code);
            prop_assert_eq!(&*frame.reason, reason);
        }
        other => prop_assert!(false, "peer events: {:?}", other),
    }
    prop_assert_eq!(peer.conn.state(), State::Closed);
    let echo = peer.flush();
    closer.feed(&echo, back);
    match closer.events.as_slice() {
        [Event::Close(frame)] => prop_assert_eq!(frame.code, expected_code, "echoed code"),
        other => prop_assert!(false, "closer events: {:?}", other),
    }
    prop_assert_eq!(closer.conn.state(), State::Closed);
    prop_assert!(!closer.conn.has_transmit());
    prop_assert!(!peer.conn.has_transmit());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn client_to_server_round_trips_and_closes(
        ops in proptest::collection::vec(op(), 0..6),
        frame_size in frame_size(),
        send_buffer in send_buffer(),
        chunks_ab in chunking(),
        chunks_ba in chunking(),
        sender_closes: bool,
        code in close_code(),
        reason in close_reason(),
    ) {
        let reason = if code.is_some() { reason } else { String::new() };
        round_trip(Role::Client, &ops, frame_size, send_buffer, &chunks_ab, &chunks_ba, sender_closes, code, &reason)?;
    }

    #[test]
    fn server_to_client_round_trips_and_closes(
        ops in proptest::collection::vec(op(), 0..6),
        frame_size in frame_size(),
        send_buffer in send_buffer(),
        chunks_ab in chunking(),
        chunks_ba in chunking(),
        sender_closes: bool,
        code in close_code(),
        reason in close_reason(),
    ) {
        let reason = if code.is_some() { reason } else { String::new() };
        round_trip(Role::Server, &ops, frame_size, send_buffer, &chunks_ab, &chunks_ba, sender_closes, code, &reason)?;
    }
}

/// One frame of an arbitrary (often invalid) inbound stream.
fn raw_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<bool>(),
        0u8..8,
        prop_oneof![4 => 0u8..3, 2 => 8u8..11, 1 => 0u8..16],
        any::<bool>(),
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..40),
            2 => proptest::string::string_regex("[a-zé€😀]{0,30}").unwrap().prop_map(String::into_bytes),
            1 => proptest::collection::vec(any::<u8>(), 0..700),
        ],
    )
        .prop_map(|(fin, rsv, opcode, masked, payload)| {
            let mut out = BytesMut::new();
            let key = masked.then_some([1, 2, 3, 4]);
            let op = wsstream_proto::wire::OpCode::from_u8(opcode);
            match op {
                Some(op) => wsstream_proto::codec::encode_frame(&mut out, fin, rsv, op, &payload, key),
                None => {
                    // A reserved opcode: build the header by hand.
                    out.extend_from_slice(&[u8::from(fin) << 7 | rsv << 4 | opcode, payload.len().min(125) as u8]);
                    out.extend_from_slice(&payload[..payload.len().min(125)]);
                }
            }
            out.to_vec()
        })
}

/// Drains `input` with the full decoder only, or with the fast path tried first.
fn decode_all(role: Role, input: &[u8], chunks: &[usize], fast: bool) -> (Vec<Event>, Vec<u8>) {
    let config = Config::default().max_message_size(512);
    let mut conn = Connection::new(role, config).unwrap();
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut at = 0;
    for &chunk in chunks.iter().cycle() {
        if at >= input.len() {
            break;
        }
        let end = at.saturating_add(chunk.max(1)).min(input.len());
        buf.extend_from_slice(&input[at..end]);
        at = end;
        loop {
            if fast {
                if let Some(message) = conn.poll_message(&mut buf) {
                    events.push(Event::Message(message));
                    continue;
                }
            }
            match conn.poll_event(&mut buf) {
                Some(event) => events.push(event),
                None => break,
            }
        }
    }
    let mut transmit = Vec::new();
    while let Some(bytes) = conn.take_transmit() {
        transmit.extend_from_slice(&bytes);
    }
    (events, transmit)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    /// The fast path never changes what a connection reports or sends: on any inbound
    /// stream (valid or not, cut anywhere) the events and, for the server (which does not
    /// mask), the bytes sent back are those of the full decoder alone.
    #[test]
    fn fast_path_agrees_with_the_full_decoder(
        frames in proptest::collection::vec(raw_frame(), 0..12),
        chunks in chunking(),
        server: bool,
    ) {
        let role = if server { Role::Server } else { Role::Client };
        let input = frames.concat();
        let (events, transmit) = decode_all(role, &input, &chunks, false);
        let (fast_events, fast_transmit) = decode_all(role, &input, &chunks, true);
        prop_assert_eq!(&events, &fast_events);
        if server {
            prop_assert_eq!(transmit, fast_transmit);
        } else {
            prop_assert_eq!(transmit.len(), fast_transmit.len());
        }
    }
}

/// Every length edge, both roles, one byte at a time and whole, with and without
/// fragmentation: a deterministic complement to the properties above.
#[test]
fn length_edges_round_trip_in_both_roles_and_any_chunking() {
    for sender_role in [Role::Client, Role::Server] {
        for &len in &EDGES {
            for frame_size in [Config::default().frame_size, 125, 65535] {
                for chunks in [&[1usize][..], &[usize::MAX][..], &[3, 1000, 7][..]] {
                    let ops = [
                        Op::Send(
                            Message::from(filler(len, len as u64)),
                            vec![b"mid".to_vec()],
                        ),
                        Op::Send(Message::from(text_of_len("é🎉x", len)), vec![]),
                    ];
                    round_trip(
                        sender_role,
                        &ops,
                        frame_size,
                        1024,
                        chunks,
                        chunks,
                        true,
                        Some(1000),
                        "done",
                    )
                    .unwrap_or_else(|e| {
                        panic!("{sender_role:?} len {len} frame {frame_size}: {e}")
                    });
                }
            }
        }
    }
}

#[test]
fn text_of_len_is_exact() {
    for len in [0, 1, 2, 3, 125, 126, 65536] {
        assert_eq!(text_of_len("é🎉x", len).len(), len);
        assert_eq!(text_of_len("", len).len(), len);
    }
}
