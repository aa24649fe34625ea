//! `websockets/stream/tentative/read.any.js`: the type of received chunks.
//!
//! With `WSSTREAM_WPT_HTTP2=1` (and the features `http2` + `hyper`) these tests run over
//! WebSockets over HTTP/2: `WptServer::start` then serves HTTP/2 and `client_options()`
//! asks for it (see `wsstream_test_support::wpt`).
#![allow(clippy::unwrap_used)]

use wsstream::{Message, WebSocketStream};
use wsstream_test_support::wpt::{WptServer, client_options, within};

/// WPT: "read type for binary messages is Uint8Array".
///
/// The `Uint8Array` brand checks become "the chunk is a `Message::Binary` of 16 bytes".
#[tokio::test]
async fn read_type_for_binary_messages_is_uint8array() {
    let server = WptServer::start().await.unwrap();
    let wss = WebSocketStream::new(&server.echo_url(), client_options()).unwrap();
    let info = within("opened", wss.opened()).await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    // Not awaited: the write happens whether or not its future is polled.
    drop(writer.write(vec![0u8; 16]));
    let value = within("read", reader.read())
        .await
        .unwrap()
        .expect("done should be false");
    match value {
        Message::Binary(bytes) => assert_eq!(bytes.len(), 16, "length should match"),
        other => panic!("value should be binary, got {other:?}"),
    }
}
