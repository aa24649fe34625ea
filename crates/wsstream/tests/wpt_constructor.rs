//! `websockets/stream/tentative/constructor.any.js`: the constructor and
//! `opened`.
//!
//! Not written as tests, because the Rust types make the failure unrepresentable:
//!
//! * "constructing with no URL should throw": `WebSocketStream::new` has a required
//!   `url: &str` parameter; a call without it does not compile.
//! * "constructing with invalid options should throw": `options` is a
//!   [`WebSocketStreamOptions`](wsstream::WebSocketStreamOptions); passing `true` (or any non-dictionary) does not compile.
//! * "protocols should be required to be a list": `protocols` is a `Vec<String>`; a
//!   single string does not compile.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use wsstream::{ConnectionError, DomExceptionName, Message, WebSocketStream};
use wsstream_test_support::wpt::{WptServer, client_options, within};

/// WPT: "constructing with an invalid URL should throw".
#[tokio::test]
async fn constructing_with_an_invalid_url_should_throw() {
    let error = WebSocketStream::new("invalid:", client_options()).unwrap_err();
    assert_eq!(error.name(), DomExceptionName::SyntaxError);
}

/// WPT: "constructing with a valid URL should work".
#[tokio::test]
async fn constructing_with_a_valid_url_should_work() {
    let server = WptServer::start().await.unwrap();
    let echo_url = server.echo_url();
    let wss = WebSocketStream::new(&echo_url, client_options()).unwrap();
    within("opened", wss.opened()).await.unwrap();
    assert_eq!(wss.url(), echo_url, "url should match");
}

/// WPT: "setting a protocol in the constructor should work".
#[tokio::test]
async fn setting_a_protocol_in_the_constructor_should_work() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(
        &server.url("/protocol_array"),
        client_options().protocols(vec!["alpha".into(), "beta".into()]),
    )
    .unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "alpha", "protocol should be right");
    let mut reader = info.readable.get_reader().unwrap();
    let value = within("read", reader.read()).await.unwrap();
    assert_eq!(
        value,
        Some(Message::from("alpha")),
        "message contents should match"
    );
}

/// WPT: "connection failure should reject the promises".
#[tokio::test]
async fn connection_failure_should_reject_the_promises() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.url("/404"), client_options()).unwrap();
    let opened = within("opened", wss.opened()).await.map(drop);
    let closed = within("closed", wss.closed()).await;
    let opened_error = match opened {
        Err(ConnectionError::WebSocket(e)) => e,
        other => panic!("opened should reject with a WebSocketError, got {other:?}"),
    };
    let closed_error = match closed {
        Err(ConnectionError::WebSocket(e)) => e,
        other => panic!("closed should reject with a WebSocketError, got {other:?}"),
    };
    // A connection that never opened rejects the two promises with distinct
    // WebSocketErrors: no code for opened, 1006 for closed.
    assert!(!Arc::ptr_eq(&opened_error, &closed_error));
    assert_eq!(opened_error.close_code(), None);
    assert_eq!(closed_error.close_code(), Some(1006));
}

/// WPT: "wss.opened should resolve to the right types".
///
/// The brand checks are the types themselves: `readable` locks to a reader, `writable` to
/// a writer, `protocol` and `extensions` are `String`s.
#[tokio::test]
async fn wss_opened_should_resolve_to_the_right_types() {
    fn is_string(_: &String) {}
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.echo_url(), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    info.readable
        .get_reader()
        .expect("readable should be a ReadableStream");
    info.writable
        .get_writer()
        .expect("writable should be a WritableStream");
    is_string(&info.protocol);
    is_string(&info.extensions);
}
