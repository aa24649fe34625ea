//! The bodies of the fuzz targets, shared by the binaries in `fuzz_targets/`.
//!
//! Each function panics (which libFuzzer reports as a crash) when the engine panics or
//! breaks one of the invariants checked here.

use bytes::BytesMut;
use wsstream_proto::handshake::{ClientHandshake, ClientRequest, MAX_HEAD_SIZE, parse_request};
use wsstream_proto::{Config, Connection, Event, Message, Role, State};

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3, so responses in the corpus can be valid.
pub const SAMPLE_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// Limits picked by the low two bits of the first input byte, so the size checks (1009)
/// are reached with short inputs too.
fn config(selector: u8) -> Config {
    let (max_message_size, max_frame_size) = match selector & 3 {
        0 => (1 << 20, 1 << 20),
        1 => (1024, 256),
        2 => (300, 300),
        _ => (16, 8),
    };
    Config::default()
        .max_message_size(max_message_size)
        .max_frame_size(max_frame_size)
}

/// Decodes `data` with a `role` connection.
///
/// Input layout: byte 0 picks the limits (bits 0–1) and whether the connection also sends
/// (bit 7: it answers each message with a message and each ping with a ping, which exercises
/// the outbound path while the closing handshake or a failure happens; bit 6: try the
/// `poll_message` fast path before `poll_event`, as the runtime's reader does); bytes 1–3 are chunk
/// sizes, cycled (0 means "everything left"); the rest is the byte stream from the peer.
///
/// Invariants: no panic; nothing is reported after `Failed` or `Close`; a failure leaves the
/// connection in [`State::Failed`] with a Close frame queued; messages respect the limit;
/// control payloads are at most 125 bytes.
pub fn decode(role: Role, data: &[u8]) {
    let [selector, c1, c2, c3, stream @ ..] = data else {
        return;
    };
    let config = config(*selector);
    let limit = config.max_message_size;
    let talk = selector & 0x80 != 0;
    let fast = selector & 0x40 != 0;
    let Ok(mut conn) = Connection::new(role, config) else {
        return;
    };
    let chunks = [*c1, *c2, *c3];
    let mut input = BytesMut::new();
    let mut at = 0;
    let mut finished = false;
    let mut written = 0usize;
    for &chunk in chunks.iter().cycle() {
        if at >= stream.len() {
            break;
        }
        let end = if chunk == 0 {
            stream.len()
        } else {
            (at + usize::from(chunk)).min(stream.len())
        };
        input.extend_from_slice(&stream[at..end]);
        at = end;
        loop {
            let fast_message = if fast {
                conn.poll_message(&mut input).map(Event::Message)
            } else {
                None
            };
            let Some(event) = fast_message.or_else(|| conn.poll_event(&mut input)) else {
                break;
            };
            assert!(!finished, "event after Failed/Close: {event:?}");
            match &event {
                Event::Failed(error) => {
                    finished = true;
                    assert_eq!(conn.state(), State::Failed);
                    assert_eq!(conn.failure(), Some(error));
                    if !conn.close_sent() {
                        panic!("failed without queueing a Close frame: {error:?}");
                    }
                }
                Event::Close(frame) => {
                    finished = true;
                    assert!(conn.close_received().is_some());
                    assert!(conn.close_sent(), "the Close reply is queued");
                    assert!(frame.code.is_none_or(|c| c.is_valid_on_wire()));
                    assert!(frame.reason.len() <= 123);
                }
                Event::Message(message) => {
                    assert!(message.len() <= limit, "message over the limit");
                    if talk && conn.wants_data() {
                        let reply = match message {
                            Message::Text(t) => Message::Text(t.clone()),
                            Message::Binary(b) => Message::Binary(b.slice(..b.len().min(64))),
                        };
                        assert!(conn.send(reply).is_ok());
                    }
                }
                Event::Ping(payload) | Event::Pong(payload) => {
                    assert!(payload.len() <= 125);
                    if talk && conn.state() == State::Open {
                        assert!(conn.ping(payload).is_ok());
                    }
                }
            }
        }
        if finished {
            assert!(input.is_empty(), "input kept after Failed/Close");
        }
        assert!(conn.read_hint() >= 1);
        while let Some(out) = conn.take_transmit() {
            written += out.len();
        }
    }
    if finished {
        assert!(matches!(
            conn.state(),
            State::Failed | State::Closed | State::CloseReceived
        ));
    }
    std::hint::black_box(written);
}

/// Parses `data` as the response to a client offering `chat`/`superchat` and
/// permessage-deflate, with [`SAMPLE_KEY`].
///
/// Invariants: no panic; a complete head is at most `data.len()` bytes and parses the same
/// on its own; the selected protocol was offered; `Ok(None)` only below [`MAX_HEAD_SIZE`]
/// and then also for a prefix.
pub fn handshake_response(data: &[u8]) {
    let protocols = ["chat".to_owned(), "superchat".to_owned()];
    let request = ClientRequest {
        host: "server.example.com",
        port: None,
        resource: "/chat",
        protocols: &protocols,
        extensions: Some("permessage-deflate; client_max_window_bits"),
        headers: &[],
    };
    let Ok(client) = ClientHandshake::with_key(&request, SAMPLE_KEY) else {
        panic!("the fixed request is valid");
    };
    match client.parse_response(data) {
        Ok(Some((response, n))) => {
            assert!(n <= data.len());
            assert_eq!(
                client.parse_response(&data[..n]),
                Ok(Some((response.clone(), n)))
            );
            if let Some(protocol) = &response.protocol {
                assert!(
                    protocols.contains(protocol),
                    "unoffered protocol {protocol:?}"
                );
            }
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEAD_SIZE);
            assert_eq!(client.parse_response(&data[..data.len() / 2]), Ok(None));
        }
        Err(_) => {}
    }
}

/// Parses `data` as an opening handshake request.
///
/// Invariants: no panic; a complete head parses the same on its own; a refusal carries an
/// HTTP response; an accepted request's `101` response (selecting its first protocol) is
/// accepted by a client that made the same offer (a round trip through both roles).
pub fn handshake_request(data: &[u8]) {
    match parse_request(data) {
        Ok(Some((request, n))) => {
            assert!(n <= data.len());
            let again = parse_request(&data[..n]);
            assert!(matches!(&again, Ok(Some((r, m))) if *r == request && *m == n));
            let protocol = request.protocols.first().map(String::as_str);
            let response = request.accept(protocol, None, &[]);
            // Offer exactly what the server saw, if the client API accepts it as a request.
            let offer = ClientRequest {
                host: &request.host,
                port: None,
                resource: &request.resource,
                protocols: &request.protocols,
                extensions: None,
                headers: &[],
            };
            if let Ok(client) = ClientHandshake::with_key(&offer, &request.key) {
                match client.parse_response(&response) {
                    Ok(Some((accepted, len))) => {
                        assert_eq!(len, response.len());
                        assert_eq!(accepted.protocol.as_deref(), protocol);
                    }
                    other => panic!(
                        "client rejects the server's own 101 ({other:?}):\n{}",
                        String::from_utf8_lossy(&response)
                    ),
                }
            }
        }
        Ok(None) => {
            assert!(data.len() < MAX_HEAD_SIZE);
            assert!(matches!(parse_request(&data[..data.len() / 2]), Ok(None)));
        }
        Err(error) => {
            assert!(error.response().starts_with(b"HTTP/1.1 "), "{error}");
        }
    }
}
