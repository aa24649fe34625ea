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
use wsstream_test_support::frames::{Frame, ParsedFrame, encode_all};
use wsstream_test_support::hostile::serve_once;
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
    let options = WebSocketStreamOptions::default().close_timeout(Duration::from_secs(2));
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
/// `Arc<dyn Error>`) was not recognised, so its code and reason were ignored (only a WebSocketError's
/// code and reason close with a code, so it must be recognised however it is passed).
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
/// `closed` and the readable fail with (an unclean close makes one object, everywhere).
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

/// Ten text messages then a Close, all in one write: the reader decodes several of them
/// under one lock (issue 6), so this pins down what the batching must not change.
async fn ten_messages_then(
    last: Frame,
) -> wsstream_test_support::hostile::HostileServer<Vec<ParsedFrame>> {
    serve_once(move |mut peer| async move {
        peer.accept().await?;
        let mut frames: Vec<Frame> = (0..10).map(|i| Frame::text(format!("m{i}"))).collect();
        frames.push(last);
        peer.send(&encode_all(&frames)).await?;
        let mut got = Vec::new();
        while let Some(frame) = peer.next_frame(Duration::from_secs(10)).await? {
            let close = frame.is_close();
            got.push(frame);
            if close {
                break;
            }
        }
        Ok(got)
    })
    .await
    .unwrap()
}

/// Bug guard: messages a reader had taken in a batch but not handed out were dropped
/// when its lock was released; they must go to the next reader, in order.
#[tokio::test]
async fn messages_batched_by_a_released_reader_go_to_the_next_reader() {
    let server = ten_messages_then(Frame::close(Some(1000), "")).await;
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut first = info.readable.get_reader().unwrap();
    assert_eq!(first.read().await.unwrap(), Some(Message::from("m0")));
    first.release_lock();
    let mut second = info.readable.get_reader().unwrap();
    for i in 1..10 {
        assert_eq!(
            second.read().await.unwrap(),
            Some(Message::from(format!("m{i}")))
        );
    }
    assert_eq!(second.read().await.unwrap(), None);
    assert_eq!(wss.closed().await.unwrap().close_code, Some(1000));
    let frames = server.finish().await.unwrap();
    assert_eq!(frames.last().and_then(ParsedFrame::close_code), Some(1000));
}

/// Bug guard (Autobahn 3.x/4.x "message, then violation, in one chop"): a violation
/// behind messages already in the read buffer must not be acted on before the
/// application has taken every message before it, so replies written in between go out
/// before our Close 1002.
#[tokio::test]
async fn a_violation_behind_buffered_messages_waits_until_they_are_read() {
    // RSV2 set without an extension: a protocol violation (1002).
    let server = ten_messages_then(Frame::text("bad").rsv(0b010)).await;
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    for i in 0..10 {
        let message = reader.read().await.unwrap().unwrap();
        assert_eq!(message, Message::from(format!("m{i}")));
        // Give the connection task every chance to run before replying.
        tokio::task::yield_now().await;
        writer.write(message).await.unwrap();
        writer.flush().await.unwrap();
    }
    assert!(reader.read().await.is_err());
    let frames = server.finish().await.unwrap();
    let texts: Vec<_> = frames
        .iter()
        .filter(|f| !f.is_close())
        .map(|f| f.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(frames.last().and_then(ParsedFrame::close_code), Some(1002));
}

/// Bug guard: cancelling through a reader that holds a batch discards the batch too.
#[tokio::test]
async fn cancel_discards_the_messages_a_reader_batched() {
    let server = ten_messages_then(Frame::close(Some(1000), "")).await;
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("m0")));
    reader.cancel(CancelReason::None).await;
    assert_eq!(reader.read().await.unwrap(), None);
    drop(reader);
    let _ = wss.closed().await;
    server.finish().await.unwrap();
}
