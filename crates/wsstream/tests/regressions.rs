//! Regression tests, each named after the bug it pins down (found in the B-item review,
//! docs/conformance.md "Gaps").
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions};
use wsstream::{
    CancelReason, Message, WebSocketCloseInfo, WebSocketError, WebSocketStream,
    WebSocketStreamOptions,
};
use wsstream_test_support::wpt::WptServer;

/// A server that sends "hello" then closes with 4000/"bye", and waits for the outcome.
async fn hello_then_close_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let wss = server::accept(tcp, ServerOptions::default()).await.unwrap();
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        writer.write("hello").await.unwrap();
        wss.close(WebSocketCloseInfo {
            close_code: Some(4000),
            reason: "bye".into(),
        })
        .unwrap();
        let _ = wss.closed().await;
    });
    format!("ws://{addr}/")
}

/// Bug: after the application took the last queued message, the frames behind it (here
/// the server's Close) were only processed on the next `read()`, so `closed` hung.
#[tokio::test]
async fn closed_settles_after_the_last_message_is_taken_without_another_read() {
    let url = hello_then_close_server().await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("hello")));
    let closed = tokio::time::timeout(Duration::from_secs(3), wss.closed())
        .await
        .expect("closed must settle without another read")
        .unwrap();
    assert_eq!(
        closed,
        WebSocketCloseInfo {
            close_code: Some(4000),
            reason: "bye".into()
        }
    );
}

/// Bug: `close()` while a received message sat unread left the peer's Close reply unread
/// behind it, so the close timed out as unclean (1006) instead of completing cleanly.
#[tokio::test]
async fn close_with_an_unread_message_still_completes_the_closing_handshake() {
    let server = WptServer::start().await.unwrap();
    let options = WebSocketStreamOptions {
        close_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let wss = WebSocketStream::new(&server.url("/echo"), options).unwrap();
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    wss.close(WebSocketCloseInfo::default()).unwrap();
    let started = std::time::Instant::now();
    let closed = wss.closed().await.unwrap();
    assert_eq!(closed.close_code, Some(1005));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // The echo that crossed our Close is still delivered (no data loss), then done.
    let mut reader = info.readable.get_reader().unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("x")));
    assert_eq!(reader.read().await.unwrap(), None);
}

/// Bug: a WebSocketError passed as `CancelReason::Other` (e.g. one the API returned, as an
/// `Arc<dyn Error>`) was not recognised, so its code and reason were ignored (B50).
#[tokio::test]
async fn cancel_with_a_websocket_error_given_as_other_uses_its_code() {
    let server = WptServer::start().await.unwrap();
    let wss =
        WebSocketStream::new(&server.url("/echo"), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let error = WebSocketError::new(
        "",
        WebSocketCloseInfo {
            close_code: Some(3333),
            reason: "other".into(),
        },
    )
    .unwrap();
    info.readable
        .cancel(CancelReason::Other(Arc::new(error)))
        .await
        .unwrap();
    let closed = wss.closed().await.unwrap();
    assert_eq!(
        closed,
        WebSocketCloseInfo {
            close_code: Some(3333),
            reason: "other".into()
        }
    );
}

/// Bug: when our own close() ended uncleanly (the peer dropped TCP instead of answering),
/// the writable kept the InvalidStateError of the close instead of the WebSocketError that
/// `closed` and the readable fail with (B57: one object everywhere).
#[tokio::test]
async fn unclean_end_of_our_close_errors_the_writable_with_the_same_websocket_error() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(
        &server.url("/passive-close-abort"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let info = wss.opened().await.unwrap();
    let writer = info.writable.get_writer().unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    wss.close(WebSocketCloseInfo {
        close_code: Some(4000),
        reason: "because".into(),
    })
    .unwrap();
    let closed = wss.closed().await.unwrap_err();
    let closed = closed.as_websocket_error().unwrap().clone();
    assert_eq!(closed.close_code(), Some(1006));
    let ready = writer.ready().await.unwrap_err();
    assert!(Arc::ptr_eq(ready.as_websocket_error().unwrap(), &closed));
    let read = reader.read().await.unwrap_err();
    assert!(ready.same_as(&read));
}
