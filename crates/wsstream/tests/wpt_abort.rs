//! `websockets/stream/tentative/abort.any.js`: the abort signal.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wsstream::{
    AbortController, AbortSignal, ConnectionError, DomException, DomExceptionName, Message,
    WebSocketStream,
};
use wsstream_test_support::wpt::{StashListener, WptServer, client_options, within};

/// Asserts that `result` failed with an `AbortError` DOMException as the abort reason.
fn assert_abort_error<T: std::fmt::Debug>(result: Result<T, ConnectionError>, what: &str) {
    let error = result.expect_err(what);
    let reason = error
        .as_abort_reason()
        .unwrap_or_else(|| panic!("{what}: expected the abort reason, got {error:?}"));
    let dom = reason
        .downcast_ref::<DomException>()
        .unwrap_or_else(|| panic!("{what}: the reason is not a DOMException: {reason:?}"));
    assert_eq!(dom.name(), DomExceptionName::AbortError, "{what}");
}

/// WPT: "abort before constructing should prevent connection".
///
/// Rust rewording: a TCP listener stands for the stash endpoint; with
/// `AbortSignal::abort()` no connection is ever accepted and both futures fail with the
/// abort reason.
#[tokio::test]
async fn abort_before_constructing_should_prevent_connection() {
    let stash = StashListener::start().await.unwrap();
    let controller = AbortController::new();
    controller.abort();
    let signal = controller.signal();
    let wss = WebSocketStream::new(&stash.url(), client_options().signal(Some(signal.clone())))
        .expect("the constructor does not throw for an aborted signal");
    let opened = within("opened", wss.opened()).await;
    let closed = within("closed", wss.closed()).await;
    let reason = signal.reason().unwrap();
    for (name, result) in [("opened", opened.map(drop)), ("closed", closed.map(drop))] {
        let error = result.as_ref().expect_err(name);
        assert!(
            std::sync::Arc::ptr_eq(error.as_abort_reason().unwrap(), &reason),
            "{name} should fail with the signal's reason itself"
        );
        assert_abort_error(result, name);
    }
    // The same with a signal created already aborted.
    let wss2 = WebSocketStream::new(
        &stash.url(),
        client_options().signal(Some(AbortSignal::abort())),
    )
    .unwrap();
    assert_abort_error(within("opened", wss2.opened()).await, "opened");
    assert_abort_error(within("closed", wss2.closed()).await, "closed");
    // Give a stray connection attempt time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stash.anything_arrived(),
        "no connection should reach the network ({} connections)",
        stash.connections()
    );
}

/// WPT: "abort during handshake should work".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_during_handshake_should_work() {
    let server = WptServer::start().await.unwrap();
    let controller = AbortController::new();
    let wss = WebSocketStream::new(
        &server.url("/handshake_sleep_2"),
        client_options().signal(Some(controller.signal())),
    )
    .unwrap();
    // setTimeout(() => controller.abort(), 0)
    tokio::time::sleep(Duration::ZERO).await;
    controller.abort();
    assert_abort_error(within("opened", wss.opened()).await, "opened");
    assert_abort_error(within("closed", wss.closed()).await, "closed");
}

/// WPT: "abort after connect should do nothing".
#[tokio::test]
async fn abort_after_connect_should_do_nothing() {
    let server = WptServer::start().await.unwrap();
    let controller = AbortController::new();
    let wss = WebSocketStream::new(
        &server.echo_url(),
        client_options().signal(Some(controller.signal())),
    )
    .unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    controller.abort();
    let mut writer = info.writable.get_writer().unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    within("write", writer.write("connected")).await.unwrap();
    let value = within("read", reader.read()).await.unwrap();
    assert_eq!(value, Some(Message::from("connected")));
}
