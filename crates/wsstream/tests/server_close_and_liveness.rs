//! What a server needs beyond the browser API: every close code RFC 6455 allows on the
//! wire, keepalive pings that notice a client that is gone, `ping()` with the round-trip
//! time, and a lingering close after failing a connection (so the client reads our Close
//! instead of a connection reset).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsstream::server::{self, ServerOptions};
use wsstream::{
    CloseCodes, DomExceptionName, PingError, WebSocketCloseInfo, WebSocketStream,
    WebSocketStreamOptions,
};
use wsstream_test_support::frames::{Frame, parse_frame};
use wsstream_test_support::hostile::{ScriptedPeer, error_chain, serve_once};

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

/// A listener whose first connection is accepted with `options` and handed to `script`.
async fn server_with<F, Fut, T>(
    options: ServerOptions,
    script: F,
) -> (String, tokio::task::JoinHandle<T>)
where
    F: FnOnce(WebSocketStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let wss = server::accept(tcp, options).await.unwrap();
        script(wss).await
    });
    (url, task)
}

fn info(code: u16, reason: &str) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(code),
        reason: reason.into(),
    }
}

#[tokio::test]
async fn a_server_can_close_with_every_code_rfc_6455_allows() {
    for code in [
        1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
    ] {
        let (url, task) = server_with(ServerOptions::default(), move |wss| async move {
            wss.opened().await.unwrap();
            wss.close(info(code, "server says")).unwrap();
            wss.closed().await.unwrap()
        })
        .await;
        let client = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
        let closed = within(client.closed()).await.unwrap();
        assert_eq!(closed, info(code, "server says"), "code {code}");
        assert_eq!(within(task).await.unwrap(), info(code, "server says"));
    }
}

#[tokio::test]
async fn a_server_refuses_codes_that_may_not_be_sent() {
    let (url, task) = server_with(ServerOptions::default(), |wss| async move {
        wss.opened().await.unwrap();
        for code in [999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000] {
            let e = wss.close(info(code, "")).unwrap_err();
            assert_eq!(
                e.name(),
                DomExceptionName::InvalidAccessError,
                "code {code}"
            );
        }
        wss.close(info(1000, "")).unwrap();
        wss.closed().await.unwrap()
    })
    .await;
    let client = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    assert_eq!(
        within(client.closed()).await.unwrap().close_code,
        Some(1000)
    );
    within(task).await.unwrap();
}

#[tokio::test]
async fn a_client_keeps_the_browser_rule_unless_it_opts_in() {
    let (url, task) = server_with(ServerOptions::default(), |wss| async move {
        wss.closed().await.unwrap()
    })
    .await;
    let client = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    client.opened().await.unwrap();
    let e = client.close(info(1001, "")).unwrap_err();
    assert_eq!(e.name(), DomExceptionName::InvalidAccessError);
    client.close(info(1000, "")).unwrap();
    within(task).await.unwrap();

    let (url, task) = server_with(ServerOptions::default(), |wss| async move {
        wss.closed().await.unwrap()
    })
    .await;
    let options = WebSocketStreamOptions::default().close_codes(CloseCodes::Protocol);
    let client = WebSocketStream::new(&url, options).unwrap();
    client.opened().await.unwrap();
    client.close(info(1001, "going away")).unwrap();
    assert_eq!(within(task).await.unwrap(), info(1001, "going away"));
    assert_eq!(
        within(client.closed()).await.unwrap(),
        info(1001, "going away")
    );
}

/// A client that completes the handshake and then goes silent (reads nothing, answers
/// no ping): the server's keepalive closes the connection uncleanly.
#[tokio::test]
async fn server_keepalive_detects_a_silent_client() {
    let options = ServerOptions::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Duration::from_millis(300));
    let (url, task) = server_with(options, |wss| async move {
        let started = tokio::time::Instant::now();
        let closed = wss.closed().await;
        (closed, started.elapsed())
    })
    .await;
    let addr = url.trim_start_matches("ws://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    // Silent from now on (the connection stays open: `tcp` lives until the end).
    let (closed, elapsed) = within(task).await.unwrap();
    let error = closed.expect_err("a silent client ends uncleanly");
    assert_eq!(error.close_code(), Some(1006));
    let chain = error_chain(&error).join(": ");
    assert!(chain.contains("stopped answering"), "{chain}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
    drop(tcp);
}

#[tokio::test]
async fn ping_resolves_with_the_round_trip_time_in_both_roles() {
    let (url, task) = server_with(ServerOptions::default(), |wss| async move {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        // Read so the client's pongs (and its Close) are seen.
        let reading = tokio::spawn(async move { while let Ok(Some(_)) = reader.read().await {} });
        let rtt = wss.ping().await.unwrap();
        reading.await.unwrap();
        wss.closed().await.unwrap();
        rtt
    })
    .await;
    let client = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let info = client.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let reading = tokio::spawn(async move { while let Ok(Some(_)) = reader.read().await {} });
    for _ in 0..3 {
        let rtt = within(client.ping()).await.unwrap();
        assert!(rtt < Duration::from_secs(5), "{rtt:?}");
    }
    // Several in flight at once.
    let pings = [client.ping(), client.ping(), client.ping()];
    for ping in pings {
        within(ping).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    client.close(info_none()).unwrap();
    within(client.closed()).await.unwrap();
    reading.await.unwrap();
    let server_rtt = within(task).await.unwrap();
    assert!(server_rtt < Duration::from_secs(5));
    // After the close: no ping.
    assert_eq!(client.ping().await, Err(PingError::NotOpen));
}

fn info_none() -> WebSocketCloseInfo {
    WebSocketCloseInfo::default()
}

/// Unsolicited pongs are ignored; a Pong that answers only the latest of two pings
/// settles both; a ping still waiting when the connection drops fails with `Closed`.
#[tokio::test]
async fn pongs_answer_their_ping_and_every_earlier_one_unsolicited_ones_are_ignored() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        peer.send_frame(&Frame::pong(b"unsolicited")).await?;
        peer.send_frame(&Frame::pong([0u8; 8])).await?;
        // Two pings arrive; answer only the second.
        let mut pings = Vec::new();
        while pings.len() < 2 {
            let frame = peer
                .next_frame(Duration::from_secs(10))
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            if frame.opcode == 0x9 {
                pings.push(frame.payload);
            }
        }
        peer.send_frame(&Frame::pong(&pings[1])).await?;
        // A third ping is never answered: the connection drops.
        loop {
            let frame = peer
                .next_frame(Duration::from_secs(10))
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            if frame.opcode == 0x9 {
                return Ok(());
            }
        }
    })
    .await
    .unwrap();
    let client = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    client.opened().await.unwrap();
    let (first, second) = (client.ping(), client.ping());
    within(second).await.unwrap();
    within(first).await.unwrap();
    let third = client.ping();
    server.finish().await.unwrap();
    assert_eq!(within(third).await, Err(PingError::Closed));
    assert_eq!(
        within(client.closed()).await.unwrap_err().close_code(),
        Some(1006)
    );
}

/// The same with a client that writes its whole (over-limit) message before reading
/// anything, as a single-threaded client sending one large message does: without the
/// lingering close its writes meet a reset (and a client that stops at a failed write
/// never reads the Close); with it, they succeed and the Close is read.
#[tokio::test]
async fn a_failed_connection_lingers_for_a_client_that_reads_only_after_writing() {
    let options = ServerOptions::default()
        .max_message_size(1 << 20)
        .compression(None);
    let (url, task) = server_with(options, |wss| async move {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        reader.read().await.is_err()
    })
    .await;
    let addr = url.trim_start_matches("ws://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    // 12 MiB in 64 KiB fragments, twelve times the limit and more than the socket
    // buffers hold, written before reading.
    let mut message = Frame::binary(vec![7u8; 64 << 10])
        .fin(false)
        .masked([1, 2, 3, 4])
        .encode();
    for i in 1..192 {
        message.extend_from_slice(
            &Frame::continuation(vec![7u8; 64 << 10])
                .fin(i == 191)
                .masked([1, 2, 3, 4])
                .encode(),
        );
    }
    let write = within(tcp.write_all(&message)).await;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let close = loop {
        match within(tcp.read(&mut buf)).await {
            Ok(0) => panic!("EOF before the server's Close frame (write: {write:?})"),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e} before the server's Close frame (write: {write:?})"),
        }
        if let Some((frame, _)) = parse_frame(&received) {
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(1009), "write: {write:?}");
    // The server drained what followed instead of resetting the connection: the whole
    // message was written without an error.
    assert!(write.is_ok(), "the client's write failed: {write:?}");
    drop(tcp);
    assert!(within(task).await.unwrap());
}

/// Lingering close: a client keeps streaming fragments of one message past the server's
/// limit; the server fails the connection with 1009 and, instead of closing the socket
/// with the client's data unread (which makes the kernel reset the connection, and the
/// client would never read the Close), shuts down its side and drains the input: the
/// client reads the Close 1009.
#[tokio::test]
async fn a_failed_connection_lingers_so_the_client_reads_the_close() {
    let options = ServerOptions::default()
        .max_message_size(1 << 20)
        .compression(None);
    let (url, task) = server_with(options, |wss| async move {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let read = reader.read().await;
        (
            read.is_err(),
            wss.closed().await.err().and_then(|e| e.close_code()),
        )
    })
    .await;
    let addr = url.trim_start_matches("ws://").trim_end_matches('/');
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await
    .unwrap();
    // Read the 101 head.
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    let (mut rd, mut wr) = tcp.into_split();
    // Stream fragments (64 KiB each) until the server's Close arrives.
    let writing = tokio::spawn(async move {
        let first = Frame::binary(vec![7u8; 64 << 10])
            .fin(false)
            .masked([1, 2, 3, 4])
            .encode();
        let more = Frame::continuation(vec![7u8; 64 << 10])
            .fin(false)
            .masked([1, 2, 3, 4])
            .encode();
        if wr.write_all(&first).await.is_err() {
            return 0;
        }
        let mut sent = 1;
        // Far past the limit, and past what the server drains: stops on its own when the
        // server's side is gone.
        while sent < 512 {
            if wr.write_all(&more).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let mut received = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let close = loop {
        match within(rd.read(&mut buf)).await {
            Ok(0) => panic!("EOF before the server's Close frame"),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) => panic!("{e} before the server's Close frame (a reset?)"),
        }
        if let Some((frame, _)) = parse_frame(&received) {
            assert!(frame.is_close(), "{frame:?}");
            break frame;
        }
    };
    assert_eq!(close.close_code(), Some(1009));
    writing.abort();
    drop(rd);
    let (read_failed, closed_code) = within(task).await.unwrap();
    assert!(read_failed, "the server's readable errors");
    // The server sent 1009; `closed` reports what it received: no Close, so 1006.
    assert_eq!(closed_code, Some(1006));
}
