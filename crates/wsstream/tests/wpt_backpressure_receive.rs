//! `websockets/stream/tentative/backpressure-receive.any.js`:
//! received messages are not slurped while the application does not read.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use wsstream::{Message, WebSocketStream};
use wsstream_test_support::wpt::{
    SEND_BACKPRESSURE_MESSAGE_COUNT, SEND_BACKPRESSURE_MESSAGE_SIZE, WptServer, client_options,
    vm_rss_bytes, within,
};

/// How much the process may grow while the client does not read (the test's premise:
/// the client's own buffering must stay well below the 16 MiB the server pushes).
const RSS_ALLOWANCE: u64 = 8 * 1024 * 1024;

/// WPT: "backpressure should be applied to received messages".
///
/// Also measures the resident set size before and during the 2 s pause: it must stay
/// under 8 MiB above the baseline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_should_be_applied_to_received_messages() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.url("/send-backpressure"), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let baseline = vm_rss_bytes().expect("VmRSS in /proc/self/status");
    // Sleep for 2 seconds without reading, sampling the memory use.
    let mut peak = baseline;
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(vm_rss_bytes().unwrap());
    }
    let growth = peak.saturating_sub(baseline);
    let mut reader = info.readable.get_reader().unwrap();
    let first = within("read the empty message", reader.read())
        .await
        .unwrap();
    assert_eq!(first, Some(Message::from(Vec::<u8>::new())));
    for i in 0..SEND_BACKPRESSURE_MESSAGE_COUNT {
        let message = within("read a large message", reader.read())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended before large message {i}"));
        assert!(message.is_binary(), "large message {i} should be binary");
        assert_eq!(message.len(), SEND_BACKPRESSURE_MESSAGE_SIZE, "message {i}");
    }
    let last = within("read the time", reader.read())
        .await
        .unwrap()
        .expect("the final text message");
    let text = last.as_text().expect("the final message should be text");
    let seconds: f64 = text.parse().expect("a decimal number of seconds");
    eprintln!("server took {seconds} s; RSS baseline {baseline} B, peak growth {growth} B");
    assert!(
        seconds >= 1.8,
        "data should be received no faster than the client reads it: the server took {seconds} s"
    );
    assert!(
        growth < RSS_ALLOWANCE,
        "the client buffered too much while not reading: RSS grew by {growth} bytes \
         (baseline {baseline}, peak {peak})"
    );
}
