//! Hostile servers, scripted at the byte level (`wsstream_test_support::hostile`): each
//! attack ends with a clear error on the client — `opened` for handshake attacks, the
//! close code the client sends (parsed from the wire) and the cause in the `source()` chain
//! of `closed` for frame attacks — with bounded memory and without a hang (every test runs
//! under a timeout; the close timeout and the abort signal end what the peer never ends).
//!
//! `closed` fails with code 1006 when the client fails the connection (the server's Close
//! never arrives, as in the browser); the close code the client *sent* (1002, 1007,
//! 1009) is what the server sees and what the `ProtocolError` in the chain reports.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cap::Cap;

use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;
use wsstream::{
    AbortController, AbortReason, AbortSignal, ConnectError, ConnectionError, DomException,
    DomExceptionName, Message, StreamError, WebSocketCloseInfo, WebSocketStream,
    WebSocketStreamOptions,
};
use wsstream_proto::ProtocolError;
use wsstream_proto::ext::deflate::{Compressor, DeflateConfig};
use wsstream_proto::handshake::{HandshakeError, MAX_HEAD_SIZE};
use wsstream_test_support::frames::{Frame, opcode};
use wsstream_test_support::hostile::{
    ScriptedPeer, error_chain, memory, serve_once, switching_protocols_head,
};

/// Counts live heap bytes (every thread), for the allocation-peak assertions.
#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

/// No attack may take longer than this to end.
const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a script waits for the client's reaction.
const REACTION: Duration = Duration::from_secs(10);
/// Tolerated growth of the process's resident memory during an attack (the attacks
/// would cost hundreds of MiB if anything were buffered without bound).
const MEMORY_BOUND: u64 = 24 << 20;

/// Asserts (and reports) the growth of the resident memory during an attack.
#[track_caller]
fn assert_bounded(growth: &Option<u64>) {
    let grew = growth.unwrap_or(0);
    eprintln!(
        "{}: resident memory grew by {} KiB",
        std::thread::current().name().unwrap_or("?"),
        grew >> 10
    );
    assert!(grew < MEMORY_BOUND, "grew by {grew} bytes");
}

/// Samples the live heap bytes (continuously, on a thread of its own) while `f` runs;
/// returns how far they rose above the level at the start. A sampled peak, not an exact
/// one: enough to see a buffer that lives for more than microseconds (inflating 16 MiB
/// takes milliseconds).
async fn heap_growth_during<F: Future>(f: F) -> (F::Output, usize) {
    let base = ALLOC.allocated();
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(std::sync::Barrier::new(2));
    let sampler = std::thread::spawn({
        let stop = stop.clone();
        let started = started.clone();
        move || {
            started.wait();
            let mut peak = ALLOC.allocated();
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(ALLOC.allocated());
                std::thread::yield_now();
            }
            peak.max(ALLOC.allocated())
        }
    });
    // The sampler runs before `f` starts.
    started.wait();
    let out = f.await;
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    (out, peak.saturating_sub(base))
}

/// The memory-measuring tests run one at a time (RSS is process-wide).
static MEMORY_LOCK: Mutex<()> = Mutex::const_new(());

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung for {TEST_TIMEOUT:?}"))
}

fn connect(url: &str, options: WebSocketStreamOptions) -> WebSocketStream {
    WebSocketStream::new(url, options).unwrap()
}

fn find<E: std::error::Error + 'static>(error: &ConnectionError) -> Option<&E> {
    wsstream_test_support::hostile::find_source::<E>(error)
}

/// `opened` failed with a WebSocketError without code whose chain holds this handshake
/// error; `closed` failed with 1006.
async fn assert_handshake_failure(wss: &WebSocketStream, check: impl Fn(&HandshakeError) -> bool) {
    let opened = wss.opened().await.unwrap_err();
    let error = opened.as_websocket_error().expect("a WebSocketError");
    assert_eq!(error.close_code(), None);
    assert!(
        matches!(
            find::<ConnectError>(&opened),
            Some(ConnectError::Handshake(_))
        ),
        "{:?}",
        error_chain(&opened)
    );
    let cause = find::<HandshakeError>(&opened).expect("a HandshakeError in the chain");
    assert!(check(cause), "unexpected cause {cause:?}");
    assert_eq!(wss.closed().await.unwrap_err().close_code(), Some(1006));
}

/// `closed` failed with 1006 (the client failed the connection) and the chain holds the
/// protocol violation, whose close code is `code`.
fn assert_failed_with(closed: &ConnectionError, code: u16) -> ProtocolError {
    assert_eq!(closed.close_code(), Some(1006), "{closed}");
    let cause = find::<ProtocolError>(closed)
        .unwrap_or_else(|| panic!("no ProtocolError in {:?}", error_chain(closed)));
    assert_eq!(cause.close_code().0, code, "{cause}");
    cause.clone()
}

/// The server's view: the Close frame the client sent, its code and reason.
fn client_close(peer: &ScriptedPeer) -> (u16, String) {
    let frame = peer
        .close_frame()
        .unwrap_or_else(|| panic!("no Close frame among {:?}", peer.frames()));
    assert!(frame.mask.is_some(), "client frames are masked");
    (
        frame.close_code().unwrap_or(1005),
        String::from_utf8_lossy(frame.close_reason()).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Handshake attacks.

/// A 101 head that never ends: the client stops at `MAX_HEAD_SIZE` (16 KiB) with
/// `HeadTooLarge` and closes the connection, having buffered no more than that.
#[tokio::test]
async fn handshake_head_that_never_ends() {
    within("endless head", async {
        let _guard = MEMORY_LOCK.lock().await;
        let server = serve_once(|mut peer| async move {
            peer.read_request().await?;
            peer.send(b"HTTP/1.1 101 Switching Protocols\r\nX-Endless: ")
                .await?;
            peer.send_forever(&[b'a'; 4096], REACTION).await
        })
        .await
        .unwrap();
        let (_, growth) = memory::growth_during(async {
            let wss = connect(&server.url(), WebSocketStreamOptions::default());
            assert_handshake_failure(&wss, |e| *e == HandshakeError::HeadTooLarge).await;
        })
        .await;
        // The script ends because the client closed the connection.
        let sent = server.finish().await.unwrap();
        assert!(sent >= MAX_HEAD_SIZE as u64, "{sent}");
        assert_bounded(&growth);
    })
    .await;
}

/// Header lines without end: the 65th line is refused (`TooManyHeaders`); long lines
/// without end hit the head size cap first.
#[tokio::test]
async fn endless_headers() {
    within("endless headers", async {
        for (line, expected) in [
            (&b"X-Flood: 1\r\n"[..], HandshakeError::TooManyHeaders),
            (
                &[b"X-Flood: ".as_slice(), &[b'v'; 2000], b"\r\n"].concat()[..],
                HandshakeError::HeadTooLarge,
            ),
        ] {
            let line = line.to_vec();
            let server = serve_once(move |mut peer| async move {
                peer.read_request().await?;
                peer.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n")
                    .await?;
                peer.send_forever(&line.repeat(8), REACTION).await
            })
            .await
            .unwrap();
            let wss = connect(&server.url(), WebSocketStreamOptions::default());
            assert_handshake_failure(&wss, |e| *e == expected).await;
            server.finish().await.unwrap();
        }
    })
    .await;
}

/// A 101 whose `Sec-WebSocket-Accept` answers another key: `AcceptMismatch`, and the
/// client sends nothing after its request (no frame over an unverified connection).
#[tokio::test]
async fn switching_protocols_with_a_wrong_accept_key() {
    within("wrong accept key", async {
        let server = serve_once(|mut peer| async move {
            let request = peer.read_request().await?;
            let other_key = if request.key == "dGhlIHNhbXBsZSBub25jZQ==" {
                "AQIDBAUGBwgJCgsMDQ4PEA=="
            } else {
                "dGhlIHNhbXBsZSBub25jZQ=="
            };
            let head = switching_protocols_head(other_key) + "\r\n";
            peer.send(head.as_bytes()).await?;
            peer.send_frame(&Frame::text("hello")).await?;
            peer.read_to_eof(REACTION).await?;
            Ok(peer.received().to_vec())
        })
        .await
        .unwrap();
        let wss = connect(&server.url(), WebSocketStreamOptions::default());
        assert_handshake_failure(&wss, |e| *e == HandshakeError::AcceptMismatch).await;
        let received = server.finish().await.unwrap();
        assert!(received.is_empty(), "the client sent {received:?}");
    })
    .await;
}

/// A server that answers one byte per second (slowloris): `AbortSignal::timeout` ends
/// the handshake with its `TimeoutError`; an `AbortController` with its own reason.
#[tokio::test]
async fn slowloris_handshake_is_ended_by_the_abort_signal() {
    within("slowloris", async {
        let slow = |mut peer: ScriptedPeer| async move {
            let request = peer.read_request().await?;
            let response = request.accept(None, None, &[]);
            peer.trickle(&response, Duration::from_secs(1)).await?;
            Ok(())
        };
        // AbortSignal::timeout.
        let server = serve_once(slow).await.unwrap();
        let started = Instant::now();
        let wss = connect(
            &server.url(),
            WebSocketStreamOptions::default()
                .signal(Some(AbortSignal::timeout(Duration::from_millis(2500)))),
        );
        let opened = wss.opened().await.unwrap_err();
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(2500), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        let reason = opened.as_abort_reason().expect("aborted");
        let dom = reason
            .downcast_ref::<DomException>()
            .expect("a DOMException");
        assert_eq!(dom.name(), DomExceptionName::TimeoutError);
        assert!(wss.closed().await.unwrap_err().as_abort_reason().is_some());
        server.abort();

        // AbortController with a reason of our own: the same object comes back.
        let server = serve_once(slow).await.unwrap();
        let controller = AbortController::new();
        let wss = connect(
            &server.url(),
            WebSocketStreamOptions::default().signal(Some(controller.signal())),
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let reason: AbortReason = Arc::new(std::io::Error::other("user gave up"));
        controller.abort_with(reason.clone());
        let opened = wss.opened().await.unwrap_err();
        assert!(Arc::ptr_eq(opened.as_abort_reason().unwrap(), &reason));
        server.abort();
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Frame attacks.

/// What the client saw during a frame attack.
struct Outcome {
    wss: WebSocketStream,
    /// The server's end, after the client's Close frame arrived (or the connection ended).
    peer: ScriptedPeer,
    /// Growth of the resident memory during the attack.
    growth: Option<u64>,
    /// The messages the client read before the readable ended.
    messages: Vec<Message>,
    /// How the readable ended.
    read_end: Result<(), StreamError>,
}

/// Runs `attack` after a proper handshake while the client reads everything, then waits
/// for the client's Close frame.
async fn frame_attack<F, Fut>(options: WebSocketStreamOptions, attack: F) -> Outcome
where
    F: FnOnce(ScriptedPeer) -> Fut + Send + 'static,
    Fut: Future<Output = std::io::Result<ScriptedPeer>> + Send + 'static,
{
    let server = serve_once(|mut peer| async move {
        peer.accept().await?;
        let mut peer = attack(peer).await?;
        peer.read_until_close(REACTION).await?;
        Ok(peer)
    })
    .await
    .unwrap();
    let wss = connect(&server.url(), options);
    let ((peer, messages, read_end), growth) = memory::growth_during(async {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let reading = tokio::spawn(async move {
            let mut messages = Vec::new();
            loop {
                match reader.read().await {
                    Ok(Some(message)) => messages.push(message),
                    Ok(None) => return (messages, Ok(())),
                    Err(e) => return (messages, Err(e)),
                }
            }
        });
        let peer = server.finish().await.unwrap();
        let (messages, read_end) = reading.await.unwrap();
        (peer, messages, read_end)
    })
    .await;
    Outcome {
        wss,
        peer,
        growth,
        messages,
        read_end,
    }
}

/// `closed` failed with 1006 and `code` in the chain; the server got a Close with `code`;
/// the readable errored (with the same error as `closed`) after the messages before it.
fn assert_attack_refused(outcome: &Outcome, closed: &ConnectionError, code: u16) -> ProtocolError {
    assert_eq!(client_close(&outcome.peer).0, code);
    let cause = assert_failed_with(closed, code);
    let read_error = outcome.read_end.as_ref().expect_err("the readable errors");
    let same = read_error
        .as_websocket_error()
        .zip(closed.as_websocket_error())
        .is_some_and(|(a, b)| Arc::ptr_eq(a, b));
    assert!(
        same,
        "read error {read_error:?} is not the closed error {closed:?}"
    );
    cause
}

/// A frame announcing 2^63 − 1 bytes (a valid length, far above the limit): refused on
/// the header, before any allocation, with 1009.
#[tokio::test]
async fn frame_announcing_2_pow_63_minus_1_bytes() {
    within("2^63-1", async {
        let _guard = MEMORY_LOCK.lock().await;
        let outcome = frame_attack(WebSocketStreamOptions::default(), |mut peer| async move {
            let frame = Frame::binary(vec![0u8; 1000])
                .len64()
                .len_override((1 << 63) - 1);
            peer.send_frame(&frame).await?;
            Ok(peer)
        })
        .await;
        let closed = outcome.wss.closed().await.unwrap_err();
        let cause = assert_attack_refused(&outcome, &closed, 1009);
        assert!(
            matches!(cause, ProtocolError::FrameTooLarge { size, .. } if size == (1 << 63) - 1),
            "{cause:?}"
        );
        assert!(outcome.messages.is_empty());
        let growth = outcome.growth;
        assert_bounded(&growth);
    })
    .await;
}

/// A 64-bit length with the most significant bit set (RFC 6455 §5.2: MUST be 0): 1002.
#[tokio::test]
async fn frame_length_with_the_top_bit_set() {
    within("top bit", async {
        for len in [1u64 << 63, u64::MAX] {
            let outcome = frame_attack(
                WebSocketStreamOptions::default(),
                move |mut peer| async move {
                    peer.send_frame(&Frame::binary("x").len64().len_override(len))
                        .await?;
                    Ok(peer)
                },
            )
            .await;
            let closed = outcome.wss.closed().await.unwrap_err();
            let cause = assert_attack_refused(&outcome, &closed, 1002);
            assert_eq!(cause, ProtocolError::InvalidLength, "length {len:#x}");
        }
    })
    .await;
}

/// A message that grows past `max_message_size` in many small fragments: refused with
/// 1009 at the fragment that crosses the limit, having buffered at most the limit.
#[tokio::test]
async fn message_growing_past_the_limit_in_many_fragments() {
    within("growing message", async {
        let _guard = MEMORY_LOCK.lock().await;
        let limit = 1 << 20;
        let options = WebSocketStreamOptions::default().max_message_size(limit);
        let outcome = frame_attack(options, |mut peer| async move {
            peer.send_frame(&Frame::text("x".repeat(4096)).fin(false))
                .await?;
            let fragment = Frame::continuation("y".repeat(4096)).fin(false).encode();
            // 64 MiB offered in 4 KiB fragments; the client stops reading long before.
            for _ in 0..16 * 1024 {
                let write = tokio::time::timeout(Duration::from_secs(2), peer.send(&fragment));
                match write.await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => break,
                }
            }
            Ok(peer)
        })
        .await;
        let closed = outcome.wss.closed().await.unwrap_err();
        match assert_attack_refused(&outcome, &closed, 1009) {
            ProtocolError::MessageTooLarge { size, limit: l } => {
                assert_eq!(l, limit);
                assert!(size > limit as u64 && size <= limit as u64 + 4096, "{size}");
            }
            other => panic!("{other:?}"),
        }
        assert!(outcome.messages.is_empty());
        let growth = outcome.growth;
        assert_bounded(&growth);
    })
    .await;
}

/// A raw DEFLATE payload (RFC 7692 tail removed) inflating to `mib` MiB of zeros. One
/// MiB is compressed once and repeated: each copy is a run of non-final blocks that
/// refers only to its own bytes and ends byte-aligned with a sync flush (`00 00 ff ff`),
/// so every copy decodes to the same MiB (and compressing 16 MiB in a debug build would
/// take seconds).
fn deflate_bomb(mib: usize) -> Vec<u8> {
    let mut compressor = Compressor::new(15, false, 9);
    let mut piece = Vec::new();
    assert!(compressor.compress(&vec![0u8; 1 << 20], &mut piece));
    let mut payload = Vec::with_capacity((piece.len() + 4) * mib);
    for i in 0..mib {
        if i > 0 {
            payload.extend_from_slice(&[0, 0, 0xff, 0xff]);
        }
        payload.extend_from_slice(&piece);
    }
    payload
}

/// Answers the handshake accepting permessage-deflate, then sends `frame` (an encoded
/// compressed message) and waits for the client's Close frame.
async fn send_compressed(mut peer: ScriptedPeer, frame: Vec<u8>) -> std::io::Result<ScriptedPeer> {
    let request = peer.read_request().await?;
    let (_, extension) = DeflateConfig::default()
        .negotiate(&request.extensions)
        .expect("the client offers permessage-deflate");
    peer.send(&request.accept(None, Some(&extension), &[]))
        .await?;
    peer.send(&frame).await?;
    peer.read_until_close(REACTION).await?;
    Ok(peer)
}

/// A decompression bomb through the whole runtime: one compressed message of < 20 KiB
/// that inflates to 16 MiB of zeros, against a client whose `max_message_size` is
/// 256 KiB. The client stops inflating at the limit and fails the connection with 1009
/// (the server receives a Close frame with 1009), `closed` rejects with a WebSocketError
/// (1006, `MessageTooLarge` in its chain), and the heap never holds more than a few MiB.
/// Control: under the default 64 MiB limit the same bomb is delivered whole, and the
/// same measurement sees its 16 MiB.
#[tokio::test]
async fn deflate_bomb_is_refused_with_1009_and_bounded_memory() {
    within("deflate bomb", async {
        let _guard = MEMORY_LOCK.lock().await;
        const LIMIT: usize = 256 << 10;
        const INFLATED: usize = 16 << 20;
        /// Tolerated heap growth: the limit, the read buffer and the inflater's window
        /// fit many times over; the inflated 16 MiB do not.
        const HEAP_BOUND: usize = 4 << 20;
        let payload = deflate_bomb(INFLATED >> 20);
        assert!(payload.len() < 20 << 10, "{} bytes", payload.len());
        // Built before the measurement (the bytes the scripted server frees during the
        // attack would hide as much growth).
        let frame = Frame::binary(&payload).rsv(0b100).encode();

        let server = serve_once({
            let frame = frame.clone();
            move |peer| send_compressed(peer, frame)
        })
        .await
        .unwrap();
        let options = WebSocketStreamOptions::default().max_message_size(LIMIT);
        let ((peer, wss, read_end), heap) = heap_growth_during(async {
            let wss = connect(&server.url(), options);
            let info = wss.opened().await.unwrap();
            assert!(
                info.extensions.starts_with("permessage-deflate"),
                "{:?}",
                info.extensions
            );
            let mut reader = info.readable.get_reader().unwrap();
            // Nothing is delivered: the readable ends with the error.
            let reading = tokio::spawn(async move {
                match reader.read().await {
                    Ok(Some(message)) => panic!("delivered a {}-byte message", message.len()),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                }
            });
            let peer = server.finish().await.unwrap();
            let read_end = reading.await.unwrap();
            (peer, wss, read_end)
        })
        .await;
        eprintln!("deflate bomb: heap grew by at most {} KiB", heap >> 10);

        // The server's view: a Close frame with 1009.
        assert_eq!(client_close(&peer).0, 1009);
        // The client's: `closed` rejects with a WebSocketError, the cause in its chain.
        let closed = wss.closed().await.unwrap_err();
        assert!(closed.as_websocket_error().is_some(), "{closed:?}");
        match assert_failed_with(&closed, 1009) {
            ProtocolError::MessageTooLarge { size, limit } => {
                assert_eq!(limit, LIMIT);
                assert!(size > LIMIT as u64 && size < INFLATED as u64, "{size}");
            }
            other => panic!("{other:?}"),
        }
        let read_error = read_end.expect_err("the readable errors");
        assert!(read_error.as_websocket_error().is_some(), "{read_error:?}");
        assert!(heap < HEAP_BOUND, "the heap grew by {heap} bytes");

        // Control: the measurement sees an inflated message of this size.
        let server = serve_once(move |peer| send_compressed(peer, frame))
            .await
            .unwrap();
        let (length, heap) = heap_growth_during(async {
            let wss = connect(&server.url(), WebSocketStreamOptions::default());
            let info = wss.opened().await.unwrap();
            let mut reader = info.readable.get_reader().unwrap();
            let message = reader.read().await.unwrap().unwrap();
            let length = message.len();
            assert!(message.as_bytes().iter().all(|&b| b == 0));
            drop(message);
            wss.close(WebSocketCloseInfo::default()).unwrap();
            server.finish().await.unwrap();
            length
        })
        .await;
        assert_eq!(length, INFLATED);
        assert!(
            heap >= INFLATED,
            "the control grew the heap by only {heap} bytes"
        );
    })
    .await;
}

/// Invalid UTF-8 split across fragments: 1007 — as soon as the invalid byte arrives
/// (fail fast, without waiting for the final fragment), and for a message that ends in
/// the middle of a character. A valid character split across fragments is delivered.
#[tokio::test]
async fn invalid_utf8_split_across_fragments() {
    within("utf-8", async {
        // A valid four-byte character split in two, then an invalid continuation byte
        // in the second fragment of the next message, which never gets a final fragment.
        let outcome = frame_attack(WebSocketStreamOptions::default(), |mut peer| async move {
            peer.send_frame(&Frame::text([0xF0, 0x9F]).fin(false))
                .await?;
            peer.send_frame(&Frame::continuation([0x98, 0x80])).await?;
            peer.send_frame(&Frame::text([b'a', 0xC3]).fin(false))
                .await?;
            peer.send_frame(&Frame::continuation([0x28, b'b']).fin(false))
                .await?;
            Ok(peer)
        })
        .await;
        assert_eq!(outcome.messages, [Message::from("😀")]);
        let closed = outcome.wss.closed().await.unwrap_err();
        let cause = assert_attack_refused(&outcome, &closed, 1007);
        assert_eq!(cause, ProtocolError::InvalidUtf8);

        // A message whose final fragment ends inside a character.
        let outcome = frame_attack(WebSocketStreamOptions::default(), |mut peer| async move {
            peer.send_frame(&Frame::text("ab").fin(false)).await?;
            peer.send_frame(&Frame::continuation([0xE2, 0x82])).await?;
            Ok(peer)
        })
        .await;
        let closed = outcome.wss.closed().await.unwrap_err();
        assert_attack_refused(&outcome, &closed, 1007);
        assert!(outcome.messages.is_empty());
    })
    .await;
}

/// Control frames of 126 bytes (ping, pong, close): 1002.
#[tokio::test]
async fn control_frames_over_125_bytes() {
    within("control > 125", async {
        for op in [opcode::PING, opcode::PONG, opcode::CLOSE] {
            let outcome = frame_attack(
                WebSocketStreamOptions::default(),
                move |mut peer| async move {
                    let mut body = vec![b'p'; 126];
                    if op == opcode::CLOSE {
                        body[..2].copy_from_slice(&1000u16.to_be_bytes());
                    }
                    peer.send_frame(&Frame::raw_opcode(op, body)).await?;
                    Ok(peer)
                },
            )
            .await;
            let closed = outcome.wss.closed().await.unwrap_err();
            let cause = assert_attack_refused(&outcome, &closed, 1002);
            assert_eq!(
                cause,
                ProtocolError::ControlFrameTooLong(126),
                "opcode {op:#x}"
            );
        }
    })
    .await;
}

/// A ping flood while the application does not read.
///
/// 1. With a message waiting unread, the client stops reading the socket (receive
///    backpressure): the flood stalls in the kernel buffers, the process does not grow.
/// 2. With nothing to deliver, the client keeps consuming pings; the server never reads
///    the pongs, so they cannot all be sent: only the latest is kept (RFC 6455 §5.5.3).
///    The process does not grow although far more pings arrive than any buffer holds.
///
/// Afterwards the client reads the waiting message, the next one, echoes, and closes
/// cleanly: the flood did not break the connection.
#[tokio::test]
async fn ping_flood_while_the_client_is_not_reading() {
    within("ping flood", async {
        let _guard = MEMORY_LOCK.lock().await;
        let ping = Frame::ping([b'P'; 125]).encode().repeat(512); // 64 KiB of pings
        for message_waiting in [true, false] {
            let (flooded_tx, flooded_rx) = tokio::sync::oneshot::channel();
            let (resume_tx, resume_rx) = tokio::sync::oneshot::channel::<()>();
            let ping = ping.clone();
            let server = serve_once(move |mut peer| async move {
                peer.accept().await?;
                if message_waiting {
                    peer.send_frame(&Frame::text("before")).await?;
                }
                // Flood until the client stops taking bytes for a while, or for 256 MiB.
                // Plain `write`s (cancel-safe): a timeout never leaves half a frame.
                let started = Instant::now();
                let mut sent = 0u64;
                let mut at = 0;
                while sent < 256 << 20 && started.elapsed() < Duration::from_secs(6) {
                    let write = peer.tcp().write(&ping[at..]);
                    match tokio::time::timeout(Duration::from_millis(500), write).await {
                        Ok(Ok(n)) => {
                            sent += n as u64;
                            at = (at + n) % ping.len();
                        }
                        Ok(Err(e)) => return Err(e),
                        Err(_) => break,
                    }
                }
                let _ = flooded_tx.send(sent);
                let _ = resume_rx.await;
                // Finish the ping cut by the last write, then the next message.
                peer.send(&ping[at..]).await?;
                peer.send_frame(&Frame::text("after")).await?;
                // The pongs (checked one by one, not kept), then the client's message.
                let mut pongs = 0u64;
                let echo = loop {
                    match peer.next_frame(REACTION).await? {
                        Some(f) if f.opcode == opcode::PONG => {
                            assert_eq!(f.payload, [b'P'; 125]);
                            pongs += 1;
                        }
                        Some(f) => break f,
                        None => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                    }
                };
                peer.send_frame(&Frame::close(Some(1000), "done")).await?;
                peer.read_until_close(REACTION).await?;
                Ok((sent, pongs, echo, peer))
            })
            .await
            .unwrap();
            let wss = connect(&server.url(), WebSocketStreamOptions::default());
            let info = wss.opened().await.unwrap();
            let (sent, growth) = memory::growth_during(flooded_rx).await;
            let sent = sent.unwrap();
            eprintln!(
                "ping flood (message waiting: {message_waiting}): {} MiB of pings taken, \
                 RSS grew by {} KiB",
                sent >> 20,
                growth.unwrap_or(0) >> 10
            );
            assert!(
                growth.unwrap_or(0) < MEMORY_BOUND,
                "grew by {growth:?} (flood of {sent} bytes)"
            );
            if message_waiting {
                // Only kernel buffers (up to tens of MiB on loopback) took the flood.
                assert!(
                    sent < 128 << 20,
                    "the client kept reading: {sent} bytes taken"
                );
            } else {
                assert!(
                    sent >= 4 << 20,
                    "the client stopped consuming pings at {sent} bytes"
                );
            }
            let _ = resume_tx.send(());
            let mut reader = info.readable.get_reader().unwrap();
            let mut writer = info.writable.get_writer().unwrap();
            if message_waiting {
                assert_eq!(reader.read().await.unwrap(), Some(Message::from("before")));
            }
            let after = reader.read().await;
            if after.is_err() {
                panic!("{after:?}; the server: {:?}", server.finish().await.err());
            }
            assert_eq!(after.unwrap(), Some(Message::from("after")));
            writer.write("still here").await.unwrap();
            assert_eq!(reader.read().await.unwrap(), None);
            let closed = wss.closed().await.unwrap();
            assert_eq!(
                closed,
                WebSocketCloseInfo {
                    close_code: Some(1000),
                    reason: "done".into()
                }
            );
            let (_, pongs, echo, peer) = server.finish().await.unwrap();
            assert!(pongs >= 1, "no pong at all");
            eprintln!("  {pongs} pongs reached the server");
            assert_eq!(
                (echo.opcode, echo.text()),
                (opcode::TEXT, Some("still here"))
            );
            assert_eq!(client_close(&peer).0, 1000);
        }
    })
    .await;
}

/// A server that reads the client's Close and never answers it (nor closes TCP): the
/// close timeout ends the connection with 1006 and a timeout cause.
#[tokio::test]
async fn server_that_never_answers_close() {
    within("no close reply", async {
        let server = serve_once(|mut peer| async move {
            peer.accept().await?;
            peer.read_until_close(REACTION).await?;
            // Hold the connection open, silent, until the client gives up.
            peer.read_to_eof(REACTION).await?;
            Ok(peer)
        })
        .await
        .unwrap();
        let close_timeout = Duration::from_millis(500);
        let wss = connect(
            &server.url(),
            WebSocketStreamOptions::default().close_timeout(close_timeout),
        );
        wss.opened().await.unwrap();
        let started = Instant::now();
        wss.close(WebSocketCloseInfo {
            close_code: Some(4321),
            reason: "bye".into(),
        })
        .unwrap();
        let closed = wss.closed().await.unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(closed.close_code(), Some(1006));
        assert!(
            error_chain(&closed)
                .iter()
                .any(|e| e.contains("closing handshake in time")),
            "{:?}",
            error_chain(&closed)
        );
        assert!(elapsed >= close_timeout, "{elapsed:?}");
        assert!(
            elapsed < close_timeout + Duration::from_secs(2),
            "{elapsed:?}"
        );
        let peer = server.finish().await.unwrap();
        assert_eq!(client_close(&peer), (4321, "bye".to_owned()));
        assert!(peer.saw_eof(), "the client closed TCP");
    })
    .await;
}

/// A server that sends a frame one byte per second after the handshake and never answers
/// Close: the close timeout ends it too.
#[tokio::test]
async fn slowloris_frames_are_ended_by_the_close_timeout() {
    within("slowloris frames", async {
        let server = serve_once(|mut peer| async move {
            peer.accept().await?;
            let frame = Frame::text("slow message").encode();
            let _ = peer.trickle(&frame, Duration::from_secs(1)).await;
            Ok(())
        })
        .await
        .unwrap();
        let wss = connect(
            &server.url(),
            WebSocketStreamOptions::default().close_timeout(Duration::from_millis(700)),
        );
        wss.opened().await.unwrap();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        wss.close(WebSocketCloseInfo::default()).unwrap();
        let closed = wss.closed().await.unwrap_err();
        assert_eq!(closed.close_code(), Some(1006));
        server.abort();
    })
    .await;
}

/// A server that answers the client's Close but never closes the TCP connection (RFC 6455
/// §7.1.1 says it should): the close is still clean, and `closed` settles once the client
/// stops waiting for the TCP close (at most 2 s, or the close timeout if shorter).
#[tokio::test]
async fn server_that_never_closes_tcp_after_the_closing_handshake() {
    within("no TCP close", async {
        for (close_timeout, bound) in [
            (wsstream::DEFAULT_CLOSE_TIMEOUT, Duration::from_secs(2)),
            (Duration::from_millis(300), Duration::from_millis(300)),
        ] {
            let server = serve_once(|mut peer| async move {
                peer.accept().await?;
                peer.read_until_close(REACTION).await?;
                let (code, reason) = client_close(&peer);
                peer.send_frame(&Frame::close(Some(code), reason)).await?;
                peer.read_to_eof(REACTION).await?;
                Ok(peer)
            })
            .await
            .unwrap();
            let wss = connect(
                &server.url(),
                WebSocketStreamOptions::default().close_timeout(close_timeout),
            );
            wss.opened().await.unwrap();
            let started = Instant::now();
            wss.close(WebSocketCloseInfo {
                close_code: Some(1000),
                reason: "done".into(),
            })
            .unwrap();
            let closed = wss.closed().await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(
                closed,
                WebSocketCloseInfo {
                    close_code: Some(1000),
                    reason: "done".into()
                }
            );
            assert!(elapsed >= bound, "{elapsed:?}");
            assert!(elapsed < bound + Duration::from_secs(1), "{elapsed:?}");
            assert!(server.finish().await.unwrap().saw_eof());
        }
    })
    .await;
}

/// Every handle dropped while the server ignores the closing handshake: the connection
/// task still ends by itself (Close without a code, as a browser does for a collected
/// WebSocket; then the close timeout), so
/// nothing leaks — the server sees the TCP connection end.
#[tokio::test]
async fn abandoned_connection_to_a_silent_server_ends_by_itself() {
    within("abandoned", async {
        let server = serve_once(|mut peer| async move {
            peer.accept().await?;
            peer.read_until_close(REACTION).await?;
            let at = Instant::now();
            peer.read_to_eof(REACTION).await?;
            Ok((peer, at.elapsed()))
        })
        .await
        .unwrap();
        let wss = connect(
            &server.url(),
            WebSocketStreamOptions::default().close_timeout(Duration::from_millis(300)),
        );
        let info = wss.opened().await.unwrap();
        drop(info);
        drop(wss);
        let (peer, waited) = server.finish().await.unwrap();
        let close = peer.close_frame().unwrap();
        assert!(close.payload.is_empty(), "a Close without code: {close:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    })
    .await;
}

/// A frame announcing 60 MiB (under the 64 MiB default limit) of which only 64 KiB ever
/// arrive: the client reserves memory as bytes arrive, not for the announced length.
#[tokio::test]
async fn announced_length_is_not_allocated_up_front() {
    within("lying length", async {
        let _guard = MEMORY_LOCK.lock().await;
        let (sent_tx, sent_rx) = tokio::sync::oneshot::channel();
        let server = serve_once(|mut peer| async move {
            peer.accept().await?;
            let frame = Frame::binary(vec![7u8; 64 * 1024]).len_override(60 << 20);
            peer.send_frame(&frame).await?;
            let _ = sent_tx.send(());
            peer.read_until_close(REACTION).await?;
            peer.read_to_eof(REACTION).await?;
            Ok(peer)
        })
        .await
        .unwrap();
        let data_before = memory::data();
        let (wss, growth) = memory::growth_during(async {
            let wss = connect(
                &server.url(),
                WebSocketStreamOptions::default().close_timeout(Duration::from_millis(300)),
            );
            let info = wss.opened().await.unwrap();
            let _reader = info.readable.get_reader().unwrap();
            sent_rx.await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            wss
        })
        .await;
        assert_bounded(&growth);
        // Reserved but untouched memory is not resident: check the reservations too.
        if let (Some(before), Some(now)) = (data_before, memory::data()) {
            let reserved = now.saturating_sub(before);
            eprintln!("  data mappings grew by {} KiB", reserved >> 10);
            assert!(
                reserved < 32 << 20,
                "reserved {reserved} bytes for the announced length"
            );
        }
        wss.close(WebSocketCloseInfo::default()).unwrap();
        assert_eq!(wss.closed().await.unwrap_err().close_code(), Some(1006));
        let peer = server.finish().await.unwrap();
        assert!(peer.close_frame().unwrap().payload.is_empty());
    })
    .await;
}

/// A connection that once received a large message must not keep a read buffer of that
/// size for the rest of its life (DESIGN: the read buffer grows "to a cap such as 64 KiB,
/// shrinking after large messages"): with 10 000 idle connections, one 48 MiB frame each
/// would otherwise pin 480 GB.
///
/// Measured as live heap bytes (the counting allocator), not RSS: whether glibc hands freed
/// memory back to the system depends on its dynamic mmap threshold and on what the other
/// tests of this binary freed before, which made an RSS bound fail in CI (53 MiB resident
/// after the message was dropped, none of it held by the connection).
#[tokio::test]
async fn read_buffer_shrinks_after_a_large_message() {
    within("large message retention", async {
        let _guard = MEMORY_LOCK.lock().await;
        const BIG: usize = 48 << 20;
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let server = serve_once(|mut peer| async move {
            peer.accept().await?;
            peer.send_frame(&Frame::text("small")).await?;
            let _ = go_rx.await;
            let big = Frame::binary(vec![0x5A; BIG]).encode();
            peer.send(&big).await?;
            drop(big);
            for _ in 0..100 {
                peer.send_frame(&Frame::text("small")).await?;
            }
            peer.read_until_close(REACTION).await?;
            Ok(())
        })
        .await
        .unwrap();
        let wss = connect(&server.url(), WebSocketStreamOptions::default());
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        assert_eq!(reader.read().await.unwrap(), Some(Message::from("small")));
        let before = ALLOC.allocated();
        go_tx.send(()).unwrap();
        let big = reader.read().await.unwrap().unwrap();
        assert_eq!(big.len(), BIG);
        drop(big);
        for _ in 0..100 {
            assert_eq!(reader.read().await.unwrap(), Some(Message::from("small")));
        }
        // The server's copy of the frame is gone too; give the allocator a moment.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let kept = ALLOC.allocated().saturating_sub(before);
        eprintln!(
            "after a {} MiB message: {} KiB still allocated",
            BIG >> 20,
            kept >> 10
        );
        // The read buffer is back to its small size (at most the 64 KiB-class cap plus
        // bookkeeping); other tests of this binary allocate a little concurrently.
        assert!(
            kept < 4 << 20,
            "the connection still holds {} KiB after a {} MiB message was read and dropped",
            kept >> 10,
            BIG >> 20
        );
        wss.close(WebSocketCloseInfo::default()).unwrap();
        let _ = wss.closed().await;
        server.finish().await.unwrap();
    })
    .await;
}
