//! The WPT server's HTTP/2 mode, which `WSSTREAM_WPT_HTTP2=1` turns on for every WPT port
//! (see `wsstream_test_support::wpt`), checked here without the switch:
//! `WptServer::start_http2` serves WebSockets over HTTP/2 (RFC 8441) with prior
//! knowledge, both through the server-role stream (`/echo`) and through the raw handlers
//! (`/remote-close?abrupt=1`, where dropping the stream stands for dropping TCP); and
//! that `WptServer::start` and `client_options` follow the switch.
//!
//! Needs the features `hyper` and `http2`; gated here rather than with
//! `required-features`, so that `cargo test --test 'wpt_*'` keeps working without them
//! (cargo refuses a `--test` pattern that matches a target whose features are off).
#![cfg(all(feature = "hyper", feature = "http2"))]
#![allow(clippy::unwrap_used)]

use wsstream::http::Version;
use wsstream::{ConnectionError, Message, WebSocketStream};
use wsstream_test_support::wpt::{
    WptServer, client_options, http2_client_options, http2_switch, within,
};

/// `/echo` opens over HTTP/2 (`200`, `HTTP/2.0`) and echoes.
#[tokio::test]
async fn echo_opens_over_http2_and_echoes() {
    let server = WptServer::start_http2().await.unwrap();
    assert!(server.is_http2());
    let wss = WebSocketStream::new(&server.echo_url(), http2_client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    assert_eq!(info.http_version(), Version::HTTP_2);
    let mut writer = info.writable.get_writer().unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    within("write", writer.write("over h2")).await.unwrap();
    let echoed = within("read", reader.read()).await.unwrap();
    assert_eq!(echoed, Some(Message::from("over h2")));
    wss.close(Default::default()).unwrap();
    within("closed", wss.closed()).await.unwrap();
    assert!(
        server.wait_idle(std::time::Duration::from_secs(5)).await,
        "the echo handler ends with its stream"
    );
}

/// A raw handler over HTTP/2: the stream dropped without a Close frame is an abrupt close
/// (1006), as a dropped TCP connection is over HTTP/1.1.
#[tokio::test]
async fn a_dropped_stream_is_an_abrupt_close() {
    let server = WptServer::start_http2().await.unwrap();
    let wss = WebSocketStream::new(
        &server.url("/remote-close?abrupt=1"),
        http2_client_options(),
    )
    .unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    assert_eq!(info.http_version(), Version::HTTP_2);
    match within("closed", wss.closed()).await {
        Err(ConnectionError::WebSocket(e)) => assert_eq!(e.close_code(), Some(1006)),
        other => panic!("closed should reject with a WebSocketError, got {other:?}"),
    }
}

/// `WptServer::start` and `client_options` follow the switch together: over HTTP/2 with
/// `WSSTREAM_WPT_HTTP2=1`, over HTTP/1.1 without it, so a run of the WPT ports with the
/// switch is known to have crossed HTTP/2.
#[tokio::test]
async fn start_and_client_options_follow_the_switch() {
    let over_http2 = http2_switch();
    let server = WptServer::start().await.unwrap();
    assert_eq!(server.is_http2(), over_http2);
    let wss = WebSocketStream::new(&server.echo_url(), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let expected = if over_http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    assert_eq!(info.http_version(), expected);
}
