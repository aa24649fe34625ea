//! The API's scenarios over hostile transports (1-byte reads, short writes, spurious
//! `Pending`, resets, stalls): the benign faults give exactly the result of a clean
//! transport, on the client side (`with_stream`), the server side (`server::accept`) and
//! both, over an in-memory pipe and over real TCP; resets and stalls end in the documented
//! error (1006 with the cause in `source()`), never in a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use wsstream::server::{self, ServerOptions};
use wsstream::{
    AbortSignal, ConnectError, ConnectionError, DomException, DomExceptionName, Message,
    StreamError, WebSocketCloseInfo, WebSocketError, WebSocketStream, WebSocketStreamOptions,
};
use wsstream_test_support::faults::{FaultStats, Faults};
use wsstream_test_support::hostile::{error_chain, find_io_error, find_source};

/// Any scenario must finish well within this.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(60);

trait Io: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Io for T {}
type BoxIo = Box<dyn Io>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Client,
    Server,
    Both,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Net {
    /// `tokio::io::duplex`, a small buffer so both directions see backpressure.
    Pipe,
    /// A loopback TCP connection.
    Tcp,
}

/// A connected pair of byte streams with `faults` applied to `side`.
async fn pair(faults: &Faults, side: Side, net: Net) -> (BoxIo, BoxIo, Vec<FaultStats>) {
    let (client, server): (BoxIo, BoxIo) = match net {
        Net::Pipe => {
            let (a, b) = tokio::io::duplex(8 * 1024);
            (Box::new(a), Box::new(b))
        }
        Net::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
            let client = client.unwrap();
            client.set_nodelay(true).unwrap();
            (Box::new(client), Box::new(accepted.unwrap().0))
        }
    };
    let mut stats = Vec::new();
    let mut wrap = |io: BoxIo, on: bool| -> BoxIo {
        if on {
            let faulty = faults.clone().wrap(io);
            stats.push(faulty.stats());
            Box::new(faulty)
        } else {
            io
        }
    };
    let client = wrap(client, side != Side::Server);
    let server = wrap(server, side != Side::Client);
    (client, server, stats)
}

/// Without permessage-deflate: these scenarios count and cut the bytes on the transport,
/// which must be the plain frames (the handshake response has no extension header).
fn client_over(io: BoxIo, options: WebSocketStreamOptions) -> WebSocketStream {
    let options = options.compression(None);
    WebSocketStream::with_stream("ws://hostile.test/echo", options, io).unwrap()
}

/// Seeded, deterministic payloads.
fn bytes(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn text(len: usize) -> String {
    let mut s = String::new();
    let chars = ['a', 'é', '€', '😀', 'z'];
    let mut i = 0;
    while s.len() < len {
        s.push(chars[i % chars.len()]);
        i += 1;
    }
    s
}

/// How much data a scenario moves under `faults`: byte-at-a-time transports cost a task
/// poll per byte (slow in a debug build), so they move less (the same shapes: every
/// length form, fragmentation, multi-byte text); the others move everything.
fn scale(faults: &Faults) -> usize {
    match faults.min_chunk() {
        None => 1,
        Some(n) if n >= 3 => 4,
        Some(_) => 30,
    }
}

/// The messages of the echo scenario: empty ones, tiny ones, the 7- and 16-bit length
/// edges, and (unless byte-at-a-time) one that crosses the default 64 KiB frame size
/// (fragmented, 64-bit length) and multi-byte text split across frames.
fn echo_messages(scale: usize) -> Vec<Message> {
    let mut messages = vec![
        Message::from("hello"),
        Message::from(vec![1u8, 2, 3]),
        Message::from(""),
        Message::from(Vec::<u8>::new()),
        Message::from(bytes(125, 2)),
        Message::from(bytes(126, 3)),
        Message::from(text(2_000)),
    ];
    if scale < 30 {
        messages.push(Message::from(bytes(70_000, 1)));
    }
    if scale == 1 {
        messages.push(Message::from(text(66_000)));
    }
    messages
}

/// Echoes every message until the peer closes; returns what `closed` settles with.
async fn echo_server(io: BoxIo) -> Result<WebSocketCloseInfo, ConnectionError> {
    let wss = server::accept(io, ServerOptions::default()).await.unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
    wss.closed().await
}

async fn scenario_echo_and_client_close(faults: &Faults, side: Side, net: Net) {
    let (client_io, server_io, stats) = pair(faults, side, net).await;
    let scale = scale(faults);
    let server = tokio::spawn(echo_server(server_io));
    let wss = client_over(client_io, WebSocketStreamOptions::default());
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let mut moved = 0;
    for message in echo_messages(scale) {
        moved += message.len();
        writer.write(message.clone()).await.unwrap();
        assert_eq!(reader.read().await.unwrap(), Some(message));
    }
    // Pipelined: many writes before the first read.
    let many: Vec<Message> = (0..50)
        .map(|i| Message::from(bytes(i * 37, i as u32)))
        .collect();
    let send = async {
        for m in &many {
            writer.write(m.clone()).await.unwrap();
        }
    };
    let recv = async {
        for m in &many {
            assert_eq!(reader.read().await.unwrap().as_ref(), Some(m));
        }
    };
    tokio::join!(send, recv);
    wss.close(WebSocketCloseInfo {
        close_code: Some(3456),
        reason: "pizza".into(),
    })
    .unwrap();
    let expected = WebSocketCloseInfo {
        close_code: Some(3456),
        reason: "pizza".into(),
    };
    assert_eq!(wss.closed().await.unwrap(), expected);
    assert_eq!(reader.read().await.unwrap(), None);
    assert!(
        writer
            .ready()
            .await
            .unwrap_err()
            .as_dom_exception()
            .is_some()
    );
    assert_eq!(server.await.unwrap().unwrap(), expected);
    for s in &stats {
        assert!(s.bytes_read() as usize > moved && s.bytes_written() as usize > moved);
        assert!(!s.was_reset());
    }
}

async fn scenario_server_closes(faults: &Faults, side: Side, net: Net) {
    let (client_io, server_io, _stats) = pair(faults, side, net).await;
    let big = 100_000 / scale(faults);
    let server = tokio::spawn(async move {
        let wss = server::accept(server_io, ServerOptions::default())
            .await
            .unwrap();
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let first = reader.read().await.unwrap().unwrap();
        writer.write(first).await.unwrap();
        writer.write(bytes(big, 9)).await.unwrap();
        wss.close(WebSocketCloseInfo {
            close_code: Some(4000),
            reason: "server bye".into(),
        })
        .unwrap();
        wss.closed().await
    });
    let wss = client_over(client_io, WebSocketStreamOptions::default());
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("first").await.unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("first")));
    assert_eq!(
        reader.read().await.unwrap(),
        Some(Message::from(bytes(big, 9)))
    );
    assert_eq!(reader.read().await.unwrap(), None);
    let expected = WebSocketCloseInfo {
        close_code: Some(4000),
        reason: "server bye".into(),
    };
    assert_eq!(wss.closed().await.unwrap(), expected);
    assert_eq!(server.await.unwrap().unwrap(), expected);
}

async fn scenario_writer_close_delivers_everything(faults: &Faults, side: Side, net: Net) {
    let (client_io, server_io, _stats) = pair(faults, side, net).await;
    let scale = scale(faults) * 4;
    let server = tokio::spawn(async move {
        let wss = server::accept(server_io, ServerOptions::default())
            .await
            .unwrap();
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut got = Vec::new();
        while let Some(message) = reader.read().await.unwrap() {
            got.push(message);
        }
        (got, wss.closed().await)
    });
    let wss = client_over(client_io, WebSocketStreamOptions::default());
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let sent: Vec<Message> = (0..40u32)
        .map(|i| {
            if i % 2 == 0 {
                Message::from(bytes(i as usize * 1500 / scale, i))
            } else {
                Message::from(text(i as usize * 900 / scale))
            }
        })
        .collect();
    for m in &sent {
        writer.write(m.clone()).await.unwrap();
    }
    writer.close().await.unwrap();
    assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
    let (got, closed) = server.await.unwrap();
    assert!(
        got == sent,
        "the server did not receive every message in order"
    );
    assert_eq!(closed.unwrap().close_code, Some(1005));
}

fn run_matrix<F>(name: &str, sides: &[Side], nets: &[Net], scenario: F)
where
    F: for<'a> Fn(&'a Faults, Side, Net) -> std::pin::Pin<Box<dyn Future<Output = ()> + 'a>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for faults in Faults::benign_matrix() {
        for &side in sides {
            for &net in nets {
                let what = format!("{name} [{}] on {side:?} over {net:?}", faults.label());
                let started = Instant::now();
                runtime.block_on(async {
                    let local = tokio::task::LocalSet::new();
                    let run = local.run_until(scenario(&faults, side, net));
                    if tokio::time::timeout(SCENARIO_TIMEOUT, run).await.is_err() {
                        panic!("{what}: hung for {SCENARIO_TIMEOUT:?}");
                    }
                });
                eprintln!("{what}: ok in {:?}", started.elapsed());
            }
        }
    }
}

const ALL_SIDES: [Side; 3] = [Side::Client, Side::Server, Side::Both];

#[test]
fn echo_and_client_close_over_pipe() {
    run_matrix(
        "echo + client close",
        &ALL_SIDES,
        &[Net::Pipe],
        |f, s, n| Box::pin(scenario_echo_and_client_close(f, s, n)),
    );
}

#[test]
fn echo_and_client_close_over_tcp() {
    run_matrix("echo + client close", &ALL_SIDES, &[Net::Tcp], |f, s, n| {
        Box::pin(scenario_echo_and_client_close(f, s, n))
    });
}

#[test]
fn server_initiated_close() {
    run_matrix(
        "server close",
        &ALL_SIDES,
        &[Net::Pipe, Net::Tcp],
        |f, s, n| Box::pin(scenario_server_closes(f, s, n)),
    );
}

#[test]
fn writer_close_delivers_everything() {
    run_matrix(
        "writer.close()",
        &ALL_SIDES,
        &[Net::Pipe, Net::Tcp],
        |f, s, n| Box::pin(scenario_writer_close_delivers_everything(f, s, n)),
    );
}

// ---------------------------------------------------------------------------------------
// Resets and stalls: the documented errors.

/// Length of the `101` that `server::accept` sends (its `Sec-WebSocket-Accept` always has
/// 28 characters).
fn response_len() -> u64 {
    wsstream_test_support::hostile::switching_protocols_head("dGhlIHNhbXBsZSBub25jZQ==").len()
        as u64
        + 2
}

fn websocket_error(e: &ConnectionError) -> &WebSocketError {
    e.as_websocket_error()
        .unwrap_or_else(|| panic!("expected a WebSocketError, got {e:?}"))
}

fn assert_reset_in_chain(error: &(dyn std::error::Error + 'static)) {
    let io = find_io_error(error)
        .unwrap_or_else(|| panic!("no io::Error in the source chain: {:?}", error_chain(error)));
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset, "{io}");
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(SCENARIO_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"))
}

/// The server sends a small message, then a 20 000-byte one; the client's transport is
/// reset in the middle of the second: the first is still delivered, then the readable
/// errors with the same 1006 WebSocketError `closed` fails with, whose source chain holds
/// the `ConnectionReset`. The server sees the connection end: 1006 too.
#[tokio::test]
async fn reset_mid_frame_while_reading() {
    within("reset while reading", async {
        let faults = Faults::new().reset_after_read(response_len() + 8 + 10_000);
        let (client_io, server_io, stats) = pair(&faults, Side::Client, Net::Pipe).await;
        let server = tokio::spawn(async move {
            let wss = server::accept(server_io, ServerOptions::default())
                .await
                .unwrap();
            let info = wss.opened().await.unwrap();
            let mut writer = info.writable.get_writer().unwrap();
            writer.write("first").await.unwrap();
            let _ = writer.write(bytes(20_000, 5)).await;
            wss.closed().await
        });
        let wss = client_over(client_io, WebSocketStreamOptions::default());
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        assert_eq!(reader.read().await.unwrap(), Some(Message::from("first")));
        let read_error = reader.read().await.unwrap_err();
        let closed = wss.closed().await.unwrap_err();
        let error = websocket_error(&closed);
        assert_eq!(error.close_code(), Some(1006));
        assert_reset_in_chain(&closed);
        match &read_error {
            StreamError::WebSocket(e) => assert_eq!(e.close_code(), Some(1006)),
            other => panic!("read failed with {other:?}"),
        }
        assert!(stats[0].was_reset());
        let server_closed = server.await.unwrap().unwrap_err();
        assert_eq!(server_closed.close_code(), Some(1006));
    })
    .await;
}

/// The client's transport resets while it writes a large message: the write (or the next
/// one) fails, `closed` fails with 1006 and the `ConnectionReset` in its source chain.
#[tokio::test]
async fn reset_mid_frame_while_writing() {
    within("reset while writing", async {
        let faults = Faults::new().reset_after_write(30_000);
        let (client_io, server_io, stats) = pair(&faults, Side::Client, Net::Tcp).await;
        let server = tokio::spawn(echo_server(server_io));
        let wss = client_over(client_io, WebSocketStreamOptions::default());
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let mut failed = None;
        for i in 0..10 {
            if let Err(e) = writer.write(bytes(50_000, i)).await {
                failed = Some(e);
                break;
            }
        }
        let write_error = failed.expect("writes keep succeeding after a reset");
        let closed = wss.closed().await.unwrap_err();
        assert_eq!(websocket_error(&closed).close_code(), Some(1006));
        assert_reset_in_chain(&closed);
        assert!(
            write_error.same_as(&StreamError::WebSocket(
                closed.as_websocket_error().unwrap().clone()
            )),
            "the write fails with the connection's error: {write_error:?}"
        );
        assert!(stats[0].was_reset());
        assert_eq!(server.await.unwrap().unwrap_err().close_code(), Some(1006));
    })
    .await;
}

/// A reset during the opening handshake: `opened` fails with a WebSocketError without a
/// code whose source is `ConnectError::Io(ConnectionReset)`; `closed` with 1006.
#[tokio::test]
async fn reset_during_the_handshake() {
    within("reset during the handshake", async {
        let faults = Faults::new().reset_after_read(20);
        let (client_io, server_io, _) = pair(&faults, Side::Client, Net::Pipe).await;
        let server = tokio::spawn(async move {
            // The server's view: the client goes away after the 101.
            match server::accept(server_io, ServerOptions::default()).await {
                Ok(wss) => Some(wss.closed().await),
                Err(_) => None,
            }
        });
        let wss = client_over(client_io, WebSocketStreamOptions::default());
        let opened = wss.opened().await.unwrap_err();
        let error = websocket_error(&opened);
        assert_eq!(error.close_code(), None);
        assert_reset_in_chain(&opened);
        assert!(
            matches!(
                find_source::<ConnectError>(&opened),
                Some(ConnectError::Io(_))
            ),
            "{:?}",
            error_chain(&opened)
        );
        let closed = wss.closed().await.unwrap_err();
        assert_eq!(closed.close_code(), Some(1006));
        if let Some(server_closed) = server.await.unwrap() {
            assert_eq!(server_closed.unwrap_err().close_code(), Some(1006));
        }
    })
    .await;
}

/// The server's transport resets mid-frame while it sends: the server reports 1006 with
/// the reset; the client sees the TCP connection end inside a frame: 1006 without a
/// closing handshake.
#[tokio::test]
async fn server_side_reset_while_writing() {
    within("server-side reset", async {
        let faults = Faults::new().reset_after_write(response_len() + 3_000);
        let (client_io, server_io, _) = pair(&faults, Side::Server, Net::Tcp).await;
        let server = tokio::spawn(async move {
            let wss = server::accept(server_io, ServerOptions::default())
                .await
                .unwrap();
            let info = wss.opened().await.unwrap();
            let mut writer = info.writable.get_writer().unwrap();
            let _ = writer.write(bytes(10_000, 1)).await;
            wss.closed().await
        });
        let wss = client_over(client_io, WebSocketStreamOptions::default());
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let read_error = reader.read().await.unwrap_err();
        assert!(read_error.as_websocket_error().is_some(), "{read_error:?}");
        let closed = wss.closed().await.unwrap_err();
        assert_eq!(closed.close_code(), Some(1006));
        assert!(
            find_io_error(&closed).is_none(),
            "{:?}",
            error_chain(&closed)
        );
        let server_closed = server.await.unwrap().unwrap_err();
        assert_eq!(server_closed.close_code(), Some(1006));
        assert_reset_in_chain(&server_closed);
    })
    .await;
}

/// After the handshake the client's reads stall forever (the server's Close reply never
/// arrives): the close timeout ends the connection with 1006 and a timeout cause; the
/// server, which did get the client's Close and answered it, closes cleanly.
#[tokio::test]
async fn read_stall_is_ended_by_the_close_timeout() {
    within("read stall", async {
        let faults = Faults::new().stall_after_read(response_len());
        let (client_io, server_io, stats) = pair(&faults, Side::Client, Net::Pipe).await;
        let server = tokio::spawn(echo_server(server_io));
        let close_timeout = Duration::from_millis(300);
        let wss = client_over(
            client_io,
            WebSocketStreamOptions::default().close_timeout(close_timeout),
        );
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        writer.write("into the void").await.unwrap();
        let started = Instant::now();
        wss.close(WebSocketCloseInfo {
            close_code: Some(1000),
            reason: String::new(),
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
        assert!(stats[0].read_stalled());
        assert_eq!(server.await.unwrap().unwrap().close_code, Some(1000));
        assert!(stats[0].dropped(), "the transport is released");
    })
    .await;
}

/// The client's writes stall (a full, dead path) while it sends: its Close frame can never
/// be written, so the close timeout ends it with 1006; the server sees the end: 1006.
#[tokio::test]
async fn write_stall_is_ended_by_the_close_timeout() {
    within("write stall", async {
        let faults = Faults::new().stall_after_write(1_000);
        let (client_io, server_io, stats) = pair(&faults, Side::Client, Net::Pipe).await;
        let server = tokio::spawn(echo_server(server_io));
        let close_timeout = Duration::from_millis(300);
        let wss = client_over(
            client_io,
            WebSocketStreamOptions::default().close_timeout(close_timeout),
        );
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        // Fill the send buffer: this write stays pending behind the stall.
        let pending_write = writer.write(bytes(200_000, 3));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(stats[0].write_stalled());
        let started = Instant::now();
        wss.close(WebSocketCloseInfo::default()).unwrap();
        let closed = wss.closed().await.unwrap_err();
        assert_eq!(closed.close_code(), Some(1006));
        assert!(started.elapsed() >= close_timeout);
        assert!(pending_write.await.is_err());
        assert_eq!(server.await.unwrap().unwrap_err().close_code(), Some(1006));
    })
    .await;
}

/// The handshake response never arrives (reads stall from the first byte): the abort
/// signal's timeout ends the handshake with its `TimeoutError`.
#[tokio::test]
async fn handshake_stall_is_ended_by_the_abort_signal() {
    within("handshake stall", async {
        let faults = Faults::new().stall_after_read(0);
        let (client_io, server_io, _) = pair(&faults, Side::Client, Net::Pipe).await;
        let _server = tokio::spawn(echo_server(server_io));
        let started = Instant::now();
        let wss = client_over(
            client_io,
            WebSocketStreamOptions::default()
                .signal(Some(AbortSignal::timeout(Duration::from_millis(200)))),
        );
        let opened = wss.opened().await.unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(200));
        let reason = opened.as_abort_reason().expect("aborted by the signal");
        let dom = reason
            .downcast_ref::<DomException>()
            .expect("a DOMException");
        assert_eq!(dom.name(), DomExceptionName::TimeoutError);
        assert!(wss.closed().await.unwrap_err().as_abort_reason().is_some());
    })
    .await;
}

/// The server's 101 and its first frames arrive in the same reads as the end of the
/// handshake response, cut at every offset around the end of the head: the bytes after
/// the head are the connection's first bytes, whatever the split.
#[tokio::test]
async fn handshake_leftover_under_every_read_split() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wsstream_test_support::frames::{Frame, parse_frames};

    within("leftover", async {
        let head = response_len() as usize;
        let mut chunks: Vec<usize> = (1..=9).collect();
        chunks.extend([
            head - 1,
            head,
            head + 1,
            head + 2,
            head + 7,
            head + 300,
            4096,
        ]);
        for chunk in chunks {
            let (client_io, mut server_io) = tokio::io::duplex(64 * 1024);
            let client_io = Faults::new().read_chunk(chunk).wrap(client_io);
            let server = tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                let parsed = loop {
                    let n = server_io.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                    if let Some((r, _)) =
                        wsstream_proto::handshake::parse_request(&request).unwrap()
                    {
                        break r;
                    }
                };
                let mut out = parsed.accept(None, None, &[]);
                assert_eq!(out.len(), head);
                for frame in [
                    Frame::text("a"),
                    Frame::binary(bytes(300, 7)),
                    Frame::text("é").fin(false),
                    Frame::ping("p"),
                    Frame::continuation("!"),
                    Frame::close(Some(4001), "fin"),
                ] {
                    frame.encode_into(&mut out);
                }
                server_io.write_all(&out).await.unwrap();
                let mut rest = Vec::new();
                server_io.read_to_end(&mut rest).await.unwrap();
                parse_frames(&rest)
            });
            let wss = client_over(Box::new(client_io), WebSocketStreamOptions::default());
            let info = wss.opened().await.unwrap();
            let mut reader = info.readable.get_reader().unwrap();
            let mut got = Vec::new();
            while let Some(m) = reader.read().await.unwrap() {
                got.push(m);
            }
            assert_eq!(
                got,
                [
                    Message::from("a"),
                    Message::from(bytes(300, 7)),
                    Message::from("é!")
                ],
                "read chunk {chunk}"
            );
            let closed = wss.closed().await.unwrap();
            assert_eq!(closed.close_code, Some(4001), "read chunk {chunk}");
            let sent = server.await.unwrap();
            let kinds: Vec<u8> = sent.iter().map(|f| f.opcode).collect();
            assert_eq!(
                kinds,
                [0xA, 0x8],
                "a pong, then the Close reply (chunk {chunk})"
            );
            assert_eq!(sent[1].close_code(), Some(4001));
        }
    })
    .await;
}

/// The server side of the same: a client that pipelines its first frames (and its Close)
/// right behind its upgrade request, read by `server::accept` in chunks of every size.
#[tokio::test]
async fn server_leftover_under_every_read_split() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use wsstream_test_support::frames::{Frame, parse_frames};

    within("server leftover", async {
        let request = b"GET /pipelined HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";
        let mut chunks: Vec<usize> = (1..=9).collect();
        let head = request.len();
        chunks.extend([head - 1, head, head + 1, head + 3, head + 300, 4096]);
        for chunk in chunks {
            let (mut client_io, server_io) = tokio::io::duplex(64 * 1024);
            let server_io = Faults::new().read_chunk(chunk).wrap(server_io);
            let key = [1, 2, 3, 4];
            let mut out = request.to_vec();
            for frame in [
                Frame::text("one").masked(key),
                Frame::binary(bytes(200, 1)).masked(key),
                Frame::close(Some(1000), "bye").masked(key),
            ] {
                frame.encode_into(&mut out);
            }
            client_io.write_all(&out).await.unwrap();
            let wss = server::accept(server_io, ServerOptions::default())
                .await
                .unwrap();
            let info = wss.opened().await.unwrap();
            let mut reader = info.readable.get_reader().unwrap();
            let mut got = Vec::new();
            while let Some(m) = reader.read().await.unwrap() {
                got.push(m);
            }
            assert_eq!(
                got,
                [Message::from("one"), Message::from(bytes(200, 1))],
                "read chunk {chunk}"
            );
            assert_eq!(wss.closed().await.unwrap().close_code, Some(1000));
            let mut back = Vec::new();
            client_io.read_to_end(&mut back).await.unwrap();
            let at = back.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let frames = parse_frames(&back[at..]);
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].close_code(), Some(1000), "read chunk {chunk}");
        }
    })
    .await;
}
