//! `websockets/stream/tentative/write.any.js`: writes at close time, and
//! dropping the stream while writes are pending.
//!
//! Not written as tests, because the Rust types make the failure unrepresentable:
//!
//! * "writing a value that cannot be stringified should cause a rejection": `write`
//!   takes `impl Into<Message>`; only strings (text) and byte buffers (binary) convert,
//!   so an object whose `toString` fails does not compile.
//! * "writing a resizable ArrayBuffer should be rejected": Rust byte buffers (`Vec<u8>`,
//!   `&[u8]`, `Bytes`) are copied or owned when the message is built; there is no
//!   resizable buffer that could change under the write.
//! * "writing a view on a shared buffer should be rejected": a `&[u8]` cannot alias memory
//!   another thread mutates (no `SharedArrayBuffer` in safe Rust), and the message owns
//!   its bytes.
//!
//! The two garbage-collection tests are reworded for Rust (no GC): drop every handle
//! while writes are pending; nothing panics; the pending `WriteFuture`s settle (with an
//! error if the message was not sent).
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use wsstream::{ConnectionError, DomExceptionName, WebSocketStream, WebSocketWriter, WriteFuture};
use wsstream_test_support::wpt::{WptServer, client_options, within};

/// Must match the `/echo_exit` handler.
const GOODBYE_MESSAGE: &str = "Goodbye";

/// Large enough that writing it cannot complete before the server's Close arrives.
const BIG_MESSAGE_SIZE: usize = 8 * 1024 * 1024;

/// Panics seen anywhere in the process (the connection tasks included) since the hook
/// was installed.
static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::AcqRel);
            previous(info);
        }));
    });
}

/// The WPT's `sendGoodbyeThenBigMessage`: "Goodbye" tells the server to close, the big
/// message cannot be sent completely before that; waits for the "Goodbye" write and for
/// `closed` to reject with a WebSocketError.
async fn send_goodbye_then_big_message(server: &WptServer) -> (WebSocketWriter, WriteFuture) {
    let wss = WebSocketStream::new(&server.url("/echo_exit"), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let goodbye = writer.write(GOODBYE_MESSAGE);
    let big = writer.write(vec![0u8; BIG_MESSAGE_SIZE]);
    within("the Goodbye write", goodbye).await.unwrap();
    match within("closed", wss.closed()).await {
        Err(ConnectionError::WebSocket(_)) => {}
        other => panic!("closed should reject with a WebSocketError, got {other:?}"),
    }
    (writer, big)
}

/// WPT: "a write that was incomplete at close time should reject".
#[tokio::test]
async fn a_write_that_was_incomplete_at_close_time_should_reject() {
    let server = WptServer::start().await.unwrap();
    let (mut writer, big) = send_goodbye_then_big_message(&server).await;
    let error = within("the big write", big)
        .await
        .expect_err("write() promise should reject");
    let dom = error.as_dom_exception().unwrap_or_else(|| {
        panic!("write() should reject with an InvalidStateError, got {error:?}")
    });
    assert_eq!(dom.name(), DomExceptionName::InvalidStateError);
    let later = within("write('word')", writer.write("word"))
        .await
        .expect_err("a later write should reject");
    assert!(
        later.same_as(&error),
        "stream should be errored with same object: {later:?}"
    );
}

/// WPT: "garbage collection after close with a pending write promise should not crash".
///
/// Rewording for Rust: every handle but the pending write future is dropped; the
/// write still rejects with `InvalidStateError` and nothing panics.
#[tokio::test]
async fn garbage_collection_after_close_with_a_pending_write_promise_should_not_crash() {
    count_panics();
    let panics_before = PANICS.load(Ordering::Acquire);
    let server = WptServer::start().await.unwrap();
    let (writer, big) = send_goodbye_then_big_message(&server).await;
    drop(writer);
    // garbageCollect() × 5
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let error = within("the big write", big)
        .await
        .expect_err("write() promise should reject");
    let dom = error.as_dom_exception().unwrap_or_else(|| {
        panic!("write() should reject with an InvalidStateError, got {error:?}")
    });
    assert_eq!(dom.name(), DomExceptionName::InvalidStateError);
    assert_eq!(
        PANICS.load(Ordering::Acquire),
        panics_before,
        "nothing may panic"
    );
}

/// WPT: "Garbage collecting a WebSocket stream doesn't crash while write promise is
/// pending".
///
/// Rewording for Rust: the stream, the writable and the writer are dropped while 20
/// writes of 100 000 bytes are pending; nothing panics, every `WriteFuture` settles, and
/// the connection ends (the connection task does not leak; the echo handler
/// finishes only when its connection is closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_collecting_a_websocket_stream_doesnt_crash_while_write_promise_is_pending() {
    count_panics();
    let panics_before = PANICS.load(Ordering::Acquire);
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.echo_url(), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    drop(wss);
    drop(info);
    let promises: Vec<WriteFuture> = (0..20).map(|_| writer.write(vec![0u8; 100_000])).collect();
    drop(writer);
    // garbageCollect() × 5
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let mut outcomes = Vec::new();
    for (i, promise) in promises.into_iter().enumerate() {
        let outcome = tokio::time::timeout(Duration::from_secs(10), promise).await;
        outcomes.push((i, outcome.map(|r| r.map_err(|e| e.to_string()))));
    }
    let unsettled: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| o.is_err())
        .map(|(i, _)| *i)
        .collect();
    assert!(
        unsettled.is_empty(),
        "write futures {unsettled:?} did not settle; outcomes: {outcomes:?}"
    );
    assert!(
        server.wait_idle(Duration::from_secs(5)).await,
        "the connection should end once every handle is dropped"
    );
    assert_eq!(
        PANICS.load(Ordering::Acquire),
        panics_before,
        "nothing may panic"
    );
}
