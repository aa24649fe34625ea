//! `websockets/stream/tentative/backpressure-send.any.js`: a
//! write completes only when the message fits in the connection's bounded send buffer.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use wsstream::WebSocketStream;
use wsstream_test_support::wpt::{WptServer, client_options, within};

/// WPT: "backpressure should be applied to sent messages".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_should_be_applied_to_sent_messages() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.url("/receive-backpressure"), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let start = Instant::now();
    within("write", writer.write(vec![0u8; 8 * 1024 * 1024]))
        .await
        .unwrap();
    let elapsed = start.elapsed();
    // The server waits 2 s before reading; 200 ms jitter allowance.
    assert!(
        elapsed >= Duration::from_millis(1800),
        "the write should take at least 1.8 s, took {elapsed:?}"
    );
}
