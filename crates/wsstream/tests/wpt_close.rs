//! `websockets/stream/tentative/close.any.js`: `close()`, closing the
//! writable, aborting the writable and cancelling the readable.
//!
//! Not written as tests, because the Rust types make the failure unrepresentable:
//!
//! * "close(true) should throw a TypeError": `close` takes a
//!   [`WebSocketCloseInfo`]; a boolean (or any non-dictionary) does not compile.
//! * `[EnforceRange]` on `closeCode` (NaN, ±Infinity, values outside 0–65535 throw a
//!   `TypeError`): `close_code` is an `Option<u16>`, so such values do not exist.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use wsstream::{
    CancelReason, ConnectionError, DomException, DomExceptionName, WebSocketCloseInfo,
    WebSocketError, WebSocketOpenInfo, WebSocketStream,
};
use wsstream_test_support::wpt::{WptServer, client_options, within};

async fn open(url: &str) -> (WebSocketStream, WebSocketOpenInfo) {
    let wss = WebSocketStream::new(url, client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    (wss, info)
}

async fn open_echo(server: &WptServer) -> (WebSocketStream, WebSocketOpenInfo) {
    open(&server.echo_url()).await
}

async fn assert_closed_with(wss: &WebSocketStream, close_code: u16, reason: &str) {
    let closed = within("closed", wss.closed()).await;
    assert_eq!(
        closed.unwrap(),
        WebSocketCloseInfo {
            close_code: Some(close_code),
            reason: reason.into(),
        }
    );
}

fn close_info(close_code: Option<u16>, reason: &str) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code,
        reason: reason.into(),
    }
}

fn ws_error(close_code: Option<u16>, reason: &str) -> WebSocketError {
    WebSocketError::new("", close_info(close_code, reason)).unwrap()
}

/// A plain object with `closeCode` and `reason` properties: not a WebSocketError.
#[derive(Debug)]
struct PlainCloseInfo {
    close_code: u16,
    reason: &'static str,
}

impl std::fmt::Display for PlainCloseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{closeCode: {}, reason: {:?}}}",
            self.close_code, self.reason
        )
    }
}

impl std::error::Error for PlainCloseInfo {}

/// `{closeCode: 3333, reason: 'obsolete'}`.
fn plain_object_reason() -> CancelReason {
    CancelReason::Other(Arc::new(PlainCloseInfo {
        close_code: 3333,
        reason: "obsolete",
    }))
}

/// A DOMException with ad-hoc `closeCode = 1000` and `reason = 'should be ignored'`
/// properties. (The WPT uses a DataCloneError; `DomExceptionName` has no such name, so
/// another DOMException stands in: the point is that it is not a WebSocketError.)
#[derive(Debug)]
struct DomExceptionWithProps {
    exception: DomException,
    close_code: u16,
    reason: &'static str,
}

impl std::fmt::Display for DomExceptionWithProps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (closeCode: {}, reason: {:?})",
            self.exception, self.close_code, self.reason
        )
    }
}

impl std::error::Error for DomExceptionWithProps {}

fn dom_exception_reason() -> CancelReason {
    CancelReason::Other(Arc::new(DomExceptionWithProps {
        exception: DomException::new(DomExceptionName::InvalidStateError, "yes"),
        close_code: 1000,
        reason: "should be ignored",
    }))
}

/// WPT: "close code should be sent to server and reflected back".
#[tokio::test]
async fn close_code_should_be_sent_to_server_and_reflected_back() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    wss.close(close_info(Some(3456), "pizza")).unwrap();
    assert_closed_with(&wss, 3456, "pizza").await;
}

/// WPT: "no close argument should send empty Close frame".
#[tokio::test]
async fn no_close_argument_should_send_empty_close_frame() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    wss.close(WebSocketCloseInfo::default()).unwrap();
    assert_closed_with(&wss, 1005, "").await;
}

/// WPT: "unspecified close code should send empty Close frame".
#[tokio::test]
async fn unspecified_close_code_should_send_empty_close_frame() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    // close({})
    wss.close(WebSocketCloseInfo {
        ..Default::default()
    })
    .unwrap();
    assert_closed_with(&wss, 1005, "").await;
}

/// WPT: "unspecified close code with empty reason should send empty Close frame".
#[tokio::test]
async fn unspecified_close_code_with_empty_reason_should_send_empty_close_frame() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    wss.close(close_info(None, "")).unwrap();
    assert_closed_with(&wss, 1005, "").await;
}

/// WPT: "unspecified close code with non-empty reason should set code to 1000".
#[tokio::test]
async fn unspecified_close_code_with_non_empty_reason_should_set_code_to_1000() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    wss.close(close_info(None, "non-empty")).unwrap();
    assert_closed_with(&wss, 1000, "non-empty").await;
}

/// WPT: "close() with an overlong reason should throw".
#[tokio::test]
async fn close_with_an_overlong_reason_should_throw() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    let error = wss.close(close_info(None, &".".repeat(124))).unwrap_err();
    assert_eq!(error.name(), DomExceptionName::SyntaxError);
}

/// WPT: "close during handshake should work".
#[tokio::test]
async fn close_during_handshake_should_work() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.echo_url(), client_options()).unwrap();
    wss.close(WebSocketCloseInfo::default()).unwrap();
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
    // A connection that never opened (here: closed during the handshake) rejects the two
    // promises with distinct WebSocketErrors: no code for opened, 1006 for closed.
    assert!(!Arc::ptr_eq(&opened_error, &closed_error));
    assert_eq!(opened_error.close_code(), None);
    assert_eq!(closed_error.close_code(), Some(1006));
}

async fn assert_invalid_code_throws(code: u16) {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open_echo(&server).await;
    let error = wss.close(close_info(Some(code), "")).unwrap_err();
    assert_eq!(
        error.name(),
        DomExceptionName::InvalidAccessError,
        "code {code}"
    );
}

/// WPT: "close() with invalid code 999 should throw".
#[tokio::test]
async fn close_with_invalid_code_999_should_throw() {
    assert_invalid_code_throws(999).await;
}

/// WPT: "close() with invalid code 1001 should throw".
#[tokio::test]
async fn close_with_invalid_code_1001_should_throw() {
    assert_invalid_code_throws(1001).await;
}

/// WPT: "close() with invalid code 2999 should throw".
#[tokio::test]
async fn close_with_invalid_code_2999_should_throw() {
    assert_invalid_code_throws(2999).await;
}

/// WPT: "close() with invalid code 5000 should throw".
#[tokio::test]
async fn close_with_invalid_code_5000_should_throw() {
    assert_invalid_code_throws(5000).await;
}

/// WPT: "closing the writable should result in a clean close".
#[tokio::test]
async fn closing_the_writable_should_result_in_a_clean_close() {
    let server = WptServer::start().await.unwrap();
    let (wss, info) = open_echo(&server).await;
    let mut writer = info.writable.get_writer().unwrap();
    // writable.getWriter().close(), not awaited: a Rust future only runs when polled, so
    // it runs in its own task.
    let close = tokio::spawn(async move { writer.close().await });
    assert_closed_with(&wss, 1005, "").await;
    drop(close);
}

/// WPT: "writer close() promise should not resolve until handshake completes".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_close_promise_should_not_resolve_until_handshake_completes() {
    let server = WptServer::start().await.unwrap();
    let (_wss, info) = open(&server.url("/delayed-passive-close")).await;
    let mut writer = info.writable.get_writer().unwrap();
    let start = Instant::now();
    within("writer.close()", writer.close()).await.unwrap();
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_millis(900),
        "one second should have elapsed, {elapsed:?} did"
    );
}

/// WPT: "incomplete closing handshake should be considered unclean close".
#[tokio::test]
async fn incomplete_closing_handshake_should_be_considered_unclean_close() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open(&server.url("/passive-close-abort")).await;
    wss.close(close_info(Some(4000), "because")).unwrap();
    let closed = within("closed", wss.closed()).await;
    let error = match closed {
        Err(ConnectionError::WebSocket(e)) => e,
        other => panic!("closed should reject with a WebSocketError, got {other:?}"),
    };
    assert_eq!(error.close_code(), Some(1006), "closeCode should be 1006");
}

/// How the tests below end the connection: `writable.abort(reason)` or
/// `readable.cancel(reason)`.
#[derive(Clone, Copy, Debug)]
enum Method {
    AbortWritable,
    CancelReadable,
}

async fn close_using(method: Method, reason: CancelReason, close_code: u16, close_reason: &str) {
    let server = WptServer::start().await.unwrap();
    let (wss, info) = open_echo(&server).await;
    match method {
        Method::AbortWritable => within("abort", info.writable.abort(reason))
            .await
            .expect("abort on an unlocked writable"),
        Method::CancelReadable => within("cancel", info.readable.cancel(reason))
            .await
            .expect("cancel on an unlocked readable"),
    }
    assert_closed_with(&wss, close_code, close_reason).await;
}

/// WPT: "aborting the writable should result in a clean close".
#[tokio::test]
async fn aborting_the_writable_should_result_in_a_clean_close() {
    close_using(Method::AbortWritable, CancelReason::None, 1005, "").await;
}

/// WPT: "aborting the writable with attributes not wrapped in a WebSocketError should be
/// ignored".
#[tokio::test]
async fn aborting_the_writable_with_attributes_not_wrapped_in_a_websocket_error_should_be_ignored()
{
    close_using(Method::AbortWritable, plain_object_reason(), 1005, "").await;
}

/// WPT: "aborting the writable with a code should send that code".
#[tokio::test]
async fn aborting_the_writable_with_a_code_should_send_that_code() {
    let reason = ws_error(Some(3333), "").into();
    close_using(Method::AbortWritable, reason, 3333, "").await;
}

/// WPT: "aborting the writable with a code and reason should use them".
#[tokio::test]
async fn aborting_the_writable_with_a_code_and_reason_should_use_them() {
    let reason = ws_error(Some(3456), "set").into();
    close_using(Method::AbortWritable, reason, 3456, "set").await;
}

/// WPT: "aborting the writable with a reason but no code should default the close code".
#[tokio::test]
async fn aborting_the_writable_with_a_reason_but_no_code_should_default_the_close_code() {
    let reason = ws_error(None, "specified").into();
    close_using(Method::AbortWritable, reason, 1000, "specified").await;
}

/// WPT: "aborting the writable with a DOMException not set code or reason".
#[tokio::test]
async fn aborting_the_writable_with_a_dom_exception_not_set_code_or_reason() {
    close_using(Method::AbortWritable, dom_exception_reason(), 1005, "").await;
}

/// WPT: "canceling the readable should result in a clean close".
#[tokio::test]
async fn canceling_the_readable_should_result_in_a_clean_close() {
    close_using(Method::CancelReadable, CancelReason::None, 1005, "").await;
}

/// WPT: "canceling the readable with attributes not wrapped in a WebSocketError should be
/// ignored".
#[tokio::test]
async fn canceling_the_readable_with_attributes_not_wrapped_in_a_websocket_error_should_be_ignored()
{
    close_using(Method::CancelReadable, plain_object_reason(), 1005, "").await;
}

/// WPT: "canceling the readable with a code should send that code".
#[tokio::test]
async fn canceling_the_readable_with_a_code_should_send_that_code() {
    let reason = ws_error(Some(3333), "").into();
    close_using(Method::CancelReadable, reason, 3333, "").await;
}

/// WPT: "canceling the readable with a code and reason should use them".
#[tokio::test]
async fn canceling_the_readable_with_a_code_and_reason_should_use_them() {
    let reason = ws_error(Some(3456), "set").into();
    close_using(Method::CancelReadable, reason, 3456, "set").await;
}

/// WPT: "canceling the readable with a reason but no code should default the close code".
#[tokio::test]
async fn canceling_the_readable_with_a_reason_but_no_code_should_default_the_close_code() {
    let reason = ws_error(None, "specified").into();
    close_using(Method::CancelReadable, reason, 1000, "specified").await;
}

/// WPT: "canceling the readable with a DOMException not set code or reason".
#[tokio::test]
async fn canceling_the_readable_with_a_dom_exception_not_set_code_or_reason() {
    close_using(Method::CancelReadable, dom_exception_reason(), 1005, "").await;
}
