//! The server's handshake timeout (`ServerOptions::handshake_timeout`): a client that
//! connects and sends nothing, or trickles its request head (slowloris), fails the upgrade
//! with `AcceptError::Timeout` once the deadline passes — activity does not extend it —
//! the server task ends and the client's connection is closed.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use wsstream::server::{self, AcceptError, DEFAULT_HANDSHAKE_TIMEOUT, ServerOptions};
use wsstream_test_support::certs::Leaf;

/// The handshake timeout the tests use.
const LIMIT: Duration = Duration::from_millis(200);
/// Generous bound on how long a timed-out upgrade may take to fail.
const BOUND: Duration = Duration::from_secs(5);

const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
Host: localhost\r\n\
Upgrade: websocket\r\n\
Connection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
Sec-WebSocket-Version: 13\r\n\r\n";

fn options(limit: Option<Duration>) -> ServerOptions {
    ServerOptions::default().handshake_timeout(limit)
}

/// A listener and a client connected to it; the server end is handed to `serve`, whose
/// task returns what the upgrade returned and how long it took.
async fn connected<F, Fut>(serve: F) -> (TcpStream, JoinHandle<(Result<(), AcceptError>, Duration)>)
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), AcceptError>> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (tcp, _) = listener.accept().await.unwrap();
    let server = tokio::spawn(async move {
        let start = Instant::now();
        let result = serve(tcp).await;
        (result, start.elapsed())
    });
    (client, server)
}

/// The server task ends within [`BOUND`] with `AcceptError::Timeout(LIMIT)`, not before
/// the limit.
async fn assert_timed_out(server: JoinHandle<(Result<(), AcceptError>, Duration)>) {
    let (result, elapsed) = tokio::time::timeout(BOUND, server)
        .await
        .expect("the server task ends")
        .unwrap();
    match result {
        Err(AcceptError::Timeout(limit)) => assert_eq!(limit, LIMIT),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(elapsed >= LIMIT - Duration::from_millis(20), "{elapsed:?}");
    assert!(elapsed < BOUND, "{elapsed:?}");
}

/// The server closed the client's connection: a read sees end-of-stream or a reset
/// (after any bytes the server sent, which there should be none of).
async fn assert_closed_by_server(client: &mut TcpStream) {
    let mut sink = Vec::new();
    let read = tokio::time::timeout(BOUND, client.read_to_end(&mut sink))
        .await
        .expect("the server closes the connection");
    if read.is_ok() {
        assert!(sink.is_empty(), "{:?}", String::from_utf8_lossy(&sink));
    }
}

/// Writes `bytes` one byte per `every` until the write fails (the server closed) or all
/// are sent.
fn trickle(
    mut client: TcpStream,
    bytes: &'static [u8],
    every: Duration,
) -> JoinHandle<(TcpStream, usize)> {
    tokio::spawn(async move {
        let mut sent = 0;
        for byte in bytes {
            if client.write_all(&[*byte]).await.is_err() {
                break;
            }
            sent += 1;
            tokio::time::sleep(every).await;
        }
        (client, sent)
    })
}

#[tokio::test]
async fn accept_times_out_a_client_that_sends_nothing() {
    let (mut client, server) =
        connected(|tcp| async move { server::accept(tcp, options(Some(LIMIT))).await.map(drop) })
            .await;
    assert_timed_out(server).await;
    assert_closed_by_server(&mut client).await;
}

#[tokio::test]
async fn accept_times_out_a_client_that_trickles_its_request_head() {
    let (client, server) =
        connected(|tcp| async move { server::accept(tcp, options(Some(LIMIT))).await.map(drop) })
            .await;
    // One byte every 20 ms: the server sees activity all along, and the deadline still
    // passes after ~10 of the request's 150 bytes.
    let trickler = trickle(client, REQUEST, Duration::from_millis(20));
    assert_timed_out(server).await;
    let (_client, sent) = tokio::time::timeout(BOUND, trickler)
        .await
        .expect("the trickler stops once the server closes")
        .unwrap();
    assert!(sent < REQUEST.len(), "sent {sent} bytes");
}

#[tokio::test]
async fn read_request_with_timeout_times_out_a_trickling_client() {
    let (client, server) = connected(|tcp| async move {
        server::read_request_with_timeout(tcp, Some(LIMIT))
            .await
            .map(drop)
    })
    .await;
    let trickler = trickle(client, REQUEST, Duration::from_millis(20));
    assert_timed_out(server).await;
    let (_client, sent) = tokio::time::timeout(BOUND, trickler)
        .await
        .unwrap()
        .unwrap();
    assert!(sent < REQUEST.len(), "sent {sent} bytes");
}

#[tokio::test]
async fn accept_tls_times_out_a_client_that_never_starts_the_tls_handshake() {
    let acceptor = Leaf::self_signed(&["localhost"]).acceptor();
    let (mut client, server) = connected(move |tcp| async move {
        server::accept_tls(tcp, &acceptor, options(Some(LIMIT)))
            .await
            .map(drop)
    })
    .await;
    assert_timed_out(server).await;
    assert_closed_by_server(&mut client).await;
}

#[tokio::test]
async fn read_request_tls_with_timeout_times_out_a_trickling_client_hello() {
    let acceptor = Leaf::self_signed(&["localhost"]).acceptor();
    let (client, server) = connected(move |tcp| async move {
        server::read_request_tls_with_timeout(tcp, &acceptor, Some(LIMIT))
            .await
            .map(drop)
    })
    .await;
    // A TLS handshake record header announcing 512 bytes, then the record's body, one
    // byte at a time: the TLS handshake never completes in time.
    const CLIENT_HELLO: &[u8] = &{
        let mut record = [0u8; 5 + 512];
        record[0] = 0x16;
        record[1] = 0x03;
        record[2] = 0x01;
        record[3] = 0x02;
        record
    };
    let trickler = trickle(client, CLIENT_HELLO, Duration::from_millis(20));
    assert_timed_out(server).await;
    let _ = tokio::time::timeout(BOUND, trickler)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn read_request_applies_the_default_ten_second_timeout() {
    assert_eq!(DEFAULT_HANDSHAKE_TIMEOUT, Duration::from_secs(10));
    assert_eq!(
        ServerOptions::default().handshake_timeout,
        Some(DEFAULT_HANDSHAKE_TIMEOUT)
    );
    let (_client, server_io) = tokio::io::duplex(1024);
    let start = tokio::time::Instant::now();
    let error = server::read_request(server_io).await.unwrap_err();
    assert!(
        matches!(error, AcceptError::Timeout(limit) if limit == DEFAULT_HANDSHAKE_TIMEOUT),
        "{error:?}"
    );
    assert_eq!(start.elapsed(), DEFAULT_HANDSHAKE_TIMEOUT);
    assert!(error.to_string().contains("10s"), "{error}");
}

#[tokio::test]
async fn a_slow_client_that_finishes_within_the_timeout_is_accepted() {
    let (client, server) = connected(|tcp| async move {
        server::accept(tcp, options(Some(Duration::from_secs(30))))
            .await
            .map(drop)
    })
    .await;
    // ~150 bytes at one per 2 ms: ~0.3 s, far within the limit.
    let trickler = trickle(client, REQUEST, Duration::from_millis(2));
    let (result, _) = tokio::time::timeout(BOUND * 4, server)
        .await
        .unwrap()
        .unwrap();
    result.unwrap();
    let (mut client, sent) = trickler.await.unwrap();
    assert_eq!(sent, REQUEST.len());
    let mut head = [0u8; 12];
    client.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 101");
}

#[tokio::test]
async fn no_handshake_timeout_waits_for_a_client_that_pauses() {
    let (mut client, server) =
        connected(|tcp| async move { server::accept(tcp, options(None)).await.map(drop) }).await;
    // Paused well past LIMIT before sending anything.
    tokio::time::sleep(LIMIT * 2).await;
    assert!(!server.is_finished());
    client.write_all(REQUEST).await.unwrap();
    let (result, elapsed) = tokio::time::timeout(BOUND, server).await.unwrap().unwrap();
    result.unwrap();
    assert!(elapsed >= LIMIT * 2, "{elapsed:?}");
}
