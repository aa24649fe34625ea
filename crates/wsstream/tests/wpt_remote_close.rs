//! `websockets/stream/tentative/remote-close.any.js`: the server closes.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use wsstream::{
    ConnectionError, DomExceptionName, StreamError, WebSocketCloseInfo, WebSocketOpenInfo,
    WebSocketStream,
};
use wsstream_test_support::wpt::{WptServer, client_options, within};

async fn open(url: &str) -> (WebSocketStream, WebSocketOpenInfo) {
    let wss = WebSocketStream::new(url, client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    (wss, info)
}

async fn closed_with(server: &WptServer, query: &str) -> WebSocketCloseInfo {
    let (wss, _info) = open(&server.url(&format!("/remote-close{query}"))).await;
    within("closed", wss.closed()).await.unwrap()
}

fn info(close_code: u16, reason: &str) -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(close_code),
        reason: reason.into(),
    }
}

/// WPT: "clean close should be clean".
#[tokio::test]
async fn clean_close_should_be_clean() {
    let server = WptServer::start().await.unwrap();
    let (wss, info_) = open(&server.url("/remote-close?code=1000")).await;
    let closed = within("closed", wss.closed()).await.unwrap();
    assert_eq!(closed, info(1000, ""), "code should be 1000, reason empty");
    let mut reader = info_.readable.get_reader().unwrap();
    let read = within("read", reader.read()).await.unwrap();
    assert_eq!(read, None, "done should be true");
    let writer = info_.writable.get_writer().unwrap();
    let error = within("ready", writer.ready())
        .await
        .expect_err("ready should reject");
    let dom = error
        .as_dom_exception()
        .unwrap_or_else(|| panic!("ready should reject with a DOMException, got {error:?}"));
    assert_eq!(dom.name(), DomExceptionName::InvalidStateError);
}

/// WPT: "close frame with no body should result in status code 1005".
#[tokio::test]
async fn close_frame_with_no_body_should_result_in_status_code_1005() {
    let server = WptServer::start().await.unwrap();
    assert_eq!(closed_with(&server, "").await, info(1005, ""));
}

/// WPT: "reason should be passed through".
#[tokio::test]
async fn reason_should_be_passed_through() {
    let server = WptServer::start().await.unwrap();
    assert_eq!(
        closed_with(&server, "?code=4000&reason=robot").await,
        info(4000, "robot")
    );
}

/// WPT: "UTF-8 reason should work".
#[tokio::test]
async fn utf_8_reason_should_work() {
    let server = WptServer::start().await.unwrap();
    // encodeURIComponent('ロボット')
    let query = "?code=4000&reason=%E3%83%AD%E3%83%9C%E3%83%83%E3%83%88";
    let closed = closed_with(&server, query).await;
    assert_eq!(closed.reason, "ロボット", "reason should match");
}

/// WPT: "close with unwritten data should not be considered clean".
///
/// In the browser the write made right after `await wss.opened` is always accepted before
/// the server's Close is processed (the continuation runs before the next task). Tokio
/// gives no such order: the connection task may process a Close that arrived with the
/// handshake response before this task resumes, and a write after the peer's Close is
/// rejected without ever being "unwritten data". So the server is asked
/// (`wait_for_data=1`) to send its Close only once the client's data starts arriving.
#[tokio::test]
async fn close_with_unwritten_data_should_not_be_considered_clean() {
    let server = WptServer::start().await.unwrap();
    let (wss, info_) = open(&server.url("/remote-close?code=4567&wait_for_data=1")).await;
    let mut writer = info_.writable.get_writer().unwrap();
    let write = writer.write(vec![0u8; 20 * 1024 * 1024]);
    let closed = within("closed", wss.closed()).await;
    let written = within("write", write).await;
    let error = match closed {
        Err(ConnectionError::WebSocket(e)) => e,
        other => panic!(
            "closed should reject with a WebSocketError, got {other:?} (the write: {written:?})"
        ),
    };
    assert_eq!(error.close_code(), Some(4567), "closeCode should be set");
    let write_error = written.expect_err("the write should reject");
    let dom = write_error.as_dom_exception().unwrap_or_else(|| {
        panic!("the write should reject with InvalidStateError, got {write_error:?}")
    });
    assert_eq!(dom.name(), DomExceptionName::InvalidStateError);
}

/// WPT: "remote code and reason should be used".
#[tokio::test]
async fn remote_code_and_reason_should_be_used() {
    let server = WptServer::start().await.unwrap();
    let (wss, _info) = open(&server.url("/remote-close?code=4222&reason=remote")).await;
    wss.close(WebSocketCloseInfo {
        close_code: Some(4111),
        reason: "local".into(),
    })
    .unwrap();
    let closed = within("closed", wss.closed()).await.unwrap();
    assert_eq!(closed, info(4222, "remote"));
}

/// WPT: "abrupt close should give an error".
#[tokio::test]
async fn abrupt_close_should_give_an_error() {
    let server = WptServer::start().await.unwrap();
    let (wss, info_) = open(&server.url("/remote-close?abrupt=1")).await;
    let closed = within("closed", wss.closed()).await;
    let error = match closed {
        Err(ConnectionError::WebSocket(e)) => e,
        other => panic!("closed should reject with a WebSocketError, got {other:?}"),
    };
    assert_eq!(error.name(), "WebSocketError", "error name should be right");
    assert_eq!(error.close_code(), Some(1006), "closeCode should be 1006");
    let expected = StreamError::WebSocket(error);
    let mut reader = info_.readable.get_reader().unwrap();
    let read_error = within("read", reader.read())
        .await
        .expect_err("read should reject");
    assert!(
        read_error.same_as(&expected),
        "read() should reject with the same object: {read_error:?}"
    );
    let writer = info_.writable.get_writer().unwrap();
    let ready_error = within("ready", writer.ready())
        .await
        .expect_err("ready should reject");
    assert!(
        ready_error.same_as(&expected),
        "ready should reject with the same object: {ready_error:?}"
    );
}
