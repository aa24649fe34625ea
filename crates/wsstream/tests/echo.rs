//! End-to-end round trips between a client WebSocketStream and a server-role one.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions};
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

/// A server that echoes every message until the client closes.
async fn echo_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(wss) = server::accept(tcp, ServerOptions::default()).await else {
                    return;
                };
                let info = wss.opened().await.unwrap();
                let mut reader = info.readable.get_reader().unwrap();
                let mut writer = info.writable.get_writer().unwrap();
                while let Ok(Some(message)) = reader.read().await {
                    if writer.write(message).await.is_err() {
                        break;
                    }
                }
                let _ = wss.closed().await;
            });
        }
    });
    format!("ws://{addr}/echo")
}

#[tokio::test]
async fn echo_round_trip_text_binary_and_empty() {
    let url = echo_server().await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    assert_eq!(info.protocol, "");
    // Both sides default to permessage-deflate (RFC 7692), as browsers do; without the
    // `deflate` feature nothing is negotiated.
    assert!(
        info.extensions.starts_with("permessage-deflate") == cfg!(feature = "deflate"),
        "{}",
        info.extensions
    );
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("hello").await.unwrap();
    writer.write(vec![1u8, 2, 3]).await.unwrap();
    writer.write("").await.unwrap();
    writer.write(Vec::<u8>::new()).await.unwrap();
    let big = vec![7u8; 300_000];
    writer.write(big.clone()).await.unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("hello")));
    assert_eq!(
        reader.read().await.unwrap(),
        Some(Message::from(vec![1u8, 2, 3]))
    );
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("")));
    assert_eq!(
        reader.read().await.unwrap(),
        Some(Message::from(Vec::<u8>::new()))
    );
    assert_eq!(reader.read().await.unwrap(), Some(Message::from(big)));
    wss.close(WebSocketCloseInfo {
        close_code: Some(3456),
        reason: "pizza".into(),
    })
    .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), wss.closed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        closed,
        WebSocketCloseInfo {
            close_code: Some(3456),
            reason: "pizza".into()
        }
    );
    assert_eq!(reader.read().await.unwrap(), None);
    assert!(
        writer
            .ready()
            .await
            .unwrap_err()
            .as_dom_exception()
            .is_some()
    );
}

#[tokio::test]
async fn sink_and_stream_pipe_many_messages_in_order() {
    let url = echo_server().await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let n = 20_000usize;
    let send = async move {
        let mut items =
            futures_util::stream::iter((0..n).map(|i| Ok(Message::from(i.to_string()))));
        writer.send_all(&mut items).await.unwrap();
        writer
    };
    let recv = async move {
        let got: Vec<_> = reader.take(n).map(|m| m.unwrap()).collect().await;
        got
    };
    let (_writer, got) = tokio::join!(send, recv);
    for (i, message) in got.iter().enumerate() {
        assert_eq!(message.as_text(), Some(i.to_string().as_str()));
    }
    wss.close(WebSocketCloseInfo::default()).unwrap();
    let closed = wss.closed().await.unwrap();
    assert_eq!(closed.close_code, Some(1005));
}

#[tokio::test]
async fn with_stream_runs_the_handshake_over_an_in_memory_pipe() {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        let wss = server::accept(server_io, ServerOptions::default())
            .await
            .unwrap();
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        while let Ok(Some(message)) = reader.read().await {
            writer.write(message).await.unwrap();
        }
    });
    let wss = WebSocketStream::with_stream(
        "ws://in-memory.test/echo",
        WebSocketStreamOptions::default(),
        client_io,
    )
    .unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("over a pipe").await.unwrap();
    assert_eq!(
        reader.read().await.unwrap(),
        Some(Message::from("over a pipe"))
    );
    wss.close(WebSocketCloseInfo::default()).unwrap();
    assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
}

#[tokio::test]
async fn compression_off_negotiates_no_extension_and_large_messages_round_trip() {
    let url = echo_server().await;
    for compression in [None, Some(wsstream::DeflateConfig::default())] {
        let on = compression.is_some() && cfg!(feature = "deflate");
        let options = WebSocketStreamOptions::default().compression(compression);
        let wss = WebSocketStream::new(&url, options).unwrap();
        let info = wss.opened().await.unwrap();
        assert_eq!(info.extensions.is_empty(), !on, "{}", info.extensions);
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let text: String = (0..200_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        writer.write(text.clone()).await.unwrap();
        writer.write(vec![0u8; 1 << 20]).await.unwrap();
        assert_eq!(reader.read().await.unwrap(), Some(Message::from(text)));
        assert_eq!(
            reader.read().await.unwrap(),
            Some(Message::from(vec![0u8; 1 << 20]))
        );
        wss.close(WebSocketCloseInfo::default()).unwrap();
        assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
    }
}

/// Blocks the current (non-runtime) thread on `future`, waking by unparking it.
fn block_on_plain_thread<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let std::task::Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::park();
    }
}

/// The reader and writer used from a plain thread, outside the runtime (synchronous code
/// blocking on the futures): the socket I/O they do themselves works there too, and the
/// connection task keeps running in the runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_and_writer_work_from_a_thread_outside_the_runtime() {
    let url = echo_server().await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let thread = std::thread::spawn(move || {
        for i in 0..200 {
            let message = Message::from(format!("plain thread {i} {}", "x".repeat(i * 97)));
            block_on_plain_thread(writer.write(message.clone())).unwrap();
            let echoed = block_on_plain_thread(reader.read()).unwrap();
            assert_eq!(echoed, Some(message));
        }
        block_on_plain_thread(writer.close()).unwrap();
        block_on_plain_thread(reader.read()).unwrap()
    });
    let end = tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
    assert_eq!(end, None);
    let closed = tokio::time::timeout(Duration::from_secs(10), wss.closed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.close_code, Some(1005));
}
