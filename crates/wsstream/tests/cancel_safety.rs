//! Cancellation: every future of the API can be dropped half-way (a `select!` branch that
//! loses, a timeout) without losing, duplicating or reordering anything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions};
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_TIMEOUT, f).await.expect("hung")
}

/// A server that runs `script` on one connection.
async fn server<F, Fut, T>(script: F) -> (String, tokio::task::JoinHandle<T>)
where
    F: FnOnce(WebSocketStream) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/cancel", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let wss = server::accept(tcp, ServerOptions::default()).await.unwrap();
        script(wss).await
    });
    (url, task)
}

fn payload(i: usize) -> Message {
    if i % 3 == 0 {
        Message::from(vec![(i % 251) as u8; (i * 97) % 70_000])
    } else {
        Message::from(format!("message {i} {}", "é".repeat(i % 50)))
    }
}

/// `reader.read()` raced against a timer that often wins: the losing read future is
/// dropped, and no message is lost, duplicated or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_reads_lose_nothing() {
    within(async {
        let n = 2_000;
        let (url, task) = server(move |wss| async move {
            let info = wss.opened().await.unwrap();
            let mut writer = info.writable.get_writer().unwrap();
            for i in 0..n {
                writer.write(payload(i)).await.unwrap();
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
            writer.close().await.unwrap();
        })
        .await;
        let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut got = 0;
        let mut cancelled = 0;
        loop {
            tokio::select! {
                biased;
                _ = tokio::task::yield_now() => { cancelled += 1; continue; }
                m = reader.read() => match m.unwrap() {
                    Some(m) => {
                        assert_eq!(m, payload(got), "message {got}");
                        got += 1;
                    }
                    None => break,
                },
            }
        }
        assert_eq!(got, n);
        assert!(cancelled > 0);
        // A new reader after release_lock continues where the old one stopped (here: done).
        reader.release_lock();
        let mut again = info.readable.get_reader().unwrap();
        assert_eq!(again.read().await.unwrap(), None);
        assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
        task.await.unwrap();
    })
    .await;
}

/// Read futures dropped while pending, readers dropped and re-acquired in between: the
/// stream continues exactly where it was.
#[tokio::test]
async fn dropped_readers_hand_over_without_loss() {
    within(async {
        let n = 300;
        let (url, task) = server(move |wss| async move {
            let info = wss.opened().await.unwrap();
            let mut writer = info.writable.get_writer().unwrap();
            for i in 0..n {
                writer.write(payload(i)).await.unwrap();
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            writer.close().await.unwrap();
        })
        .await;
        let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
        let info = wss.opened().await.unwrap();
        let mut got = 0;
        'outer: loop {
            let mut reader = info.readable.get_reader().unwrap();
            for _ in 0..7 {
                match tokio::time::timeout(Duration::from_micros(300), reader.read()).await {
                    Ok(Ok(Some(m))) => {
                        assert_eq!(m, payload(got), "message {got}");
                        got += 1;
                    }
                    Ok(Ok(None)) => break 'outer,
                    Ok(Err(e)) => panic!("{e}"),
                    Err(_) => {}
                }
            }
            drop(reader);
        }
        assert_eq!(got, n);
        task.await.unwrap();
    })
    .await;
}

/// Write futures dropped without being awaited: the write happens anyway (it was taken
/// when `write` was called), in order, and `writer.close()` waits for all of them.
#[tokio::test]
async fn dropped_write_futures_still_write() {
    within(async {
        let n = 500;
        let (url, task) = server(move |wss| async move {
            let info = wss.opened().await.unwrap();
            let mut reader = info.readable.get_reader().unwrap();
            let mut got = Vec::new();
            while let Some(m) = reader.read().await.unwrap() {
                got.push(m);
            }
            (got, wss.closed().await.unwrap().close_code)
        })
        .await;
        let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        for i in 0..n {
            let write = writer.write(payload(i));
            if i % 2 == 0 {
                drop(write);
            } else {
                // Polled once at most, then dropped.
                let _ = tokio::time::timeout(Duration::ZERO, write).await;
            }
        }
        writer.close().await.unwrap();
        let (got, code) = task.await.unwrap();
        assert_eq!(code, Some(1005));
        assert_eq!(got.len(), n);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(*m, payload(i), "message {i}");
        }
    })
    .await;
}

/// `flush()`, `ready()`, `writer.close()`, `opened` and `closed` cancelled by a timeout
/// and awaited again: the operation goes on and settles as if never interrupted.
#[tokio::test]
async fn cancelled_flush_close_and_promises_resume() {
    within(async {
        let (url, task) = server(move |wss| async move {
            let info = wss.opened().await.unwrap();
            let mut reader = info.readable.get_reader().unwrap();
            let mut got = Vec::new();
            // A slow reader: the client's writes back up.
            while let Some(m) = reader.read().await.unwrap() {
                got.push(m.len());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            (got, wss.closed().await.unwrap())
        })
        .await;
        // No compression: the backlog must really be megabytes on the wire.
        let options = WebSocketStreamOptions::default().compression(None);
        let wss = WebSocketStream::new(&url, options).unwrap();
        // `opened` cancelled, then awaited again (and by a clone).
        let _ = tokio::time::timeout(Duration::ZERO, wss.opened()).await;
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let sizes: Vec<usize> = (0..60).map(|i| 1_000 + i * 3_000).collect();
        for &size in &sizes {
            drop(writer.write(vec![7u8; size]));
        }
        // flush and ready cancelled while the backlog drains.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), writer.flush())
                .await
                .is_err()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(1), writer.ready())
                .await
                .is_err()
        );
        writer.flush().await.unwrap();
        for &size in &sizes {
            drop(writer.write(vec![8u8; size]));
        }
        // writer.close() cancelled: the close still happens after the queued writes.
        assert!(
            tokio::time::timeout(Duration::from_millis(1), writer.close())
                .await
                .is_err()
        );
        // `closed` cancelled, then awaited again.
        let _ = tokio::time::timeout(Duration::from_millis(1), wss.closed()).await;
        let closed = wss.closed().await.unwrap();
        assert_eq!(
            closed,
            WebSocketCloseInfo {
                close_code: Some(1005),
                reason: String::new()
            }
        );
        writer.close().await.unwrap();
        let (got, server_closed) = task.await.unwrap();
        let expected: Vec<usize> = sizes.iter().chain(&sizes).copied().collect();
        assert_eq!(got, expected);
        assert_eq!(server_closed.close_code, Some(1005));
    })
    .await;
}

/// A server that reads slowly (a pause per message) and reports what it received.
async fn slow_reading_server() -> (String, tokio::task::JoinHandle<(Vec<Message>, Option<u16>)>) {
    server(move |wss| async move {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut got = Vec::new();
        while let Ok(Some(m)) = reader.read().await {
            got.push(m);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (got, wss.closed().await.ok().and_then(|c| c.close_code))
    })
    .await
}

fn no_compression() -> WebSocketStreamOptions {
    WebSocketStreamOptions::default().compression(None)
}

/// Large writes whose futures were polled while the socket was full (so they waited to
/// write the rest themselves) and were then dropped: the connection task sends the rest,
/// with no further call of the application, in order and byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_futures_dropped_while_waiting_for_the_socket_lose_nothing() {
    within(async {
        let (url, task) = slow_reading_server().await;
        let wss = WebSocketStream::new(&url, no_compression()).unwrap();
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let sent: Vec<Message> = (0..40u8)
            .map(|i| Message::from(vec![i; 200_000 + usize::from(i)]))
            .collect();
        for m in &sent {
            let mut write = writer.write(m.clone());
            // Polled (it may wait for the socket), then dropped.
            let _ = tokio::time::timeout(Duration::from_micros(200), &mut write).await;
            drop(write);
        }
        // No flush, no close yet: everything must still arrive. The server's count is
        // checked after the close, which waits for the writes accepted before it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        writer.close().await.unwrap();
        let (got, code) = task.await.unwrap();
        assert_eq!(code, Some(1005));
        assert_eq!(got.len(), sent.len());
        for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
            assert!(g == s, "message {i}");
        }
    })
    .await;
}

/// The `Sink` driven by hand with short timeouts: `poll_ready` cancelled while the send
/// buffer is full (the message is then not fed), `poll_flush` cancelled while the socket
/// is full: every message fed arrives exactly once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sink_ready_and_flush_lose_and_duplicate_nothing() {
    use futures_util::Sink;
    use std::pin::Pin;
    within(async {
        let (url, task) = slow_reading_server().await;
        let wss = WebSocketStream::new(&url, no_compression()).unwrap();
        let info = wss.opened().await.unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let mut fed = Vec::new();
        let mut cancelled = (0, 0);
        for i in 0..600usize {
            let m = Message::from(format!("{i}:{}", "x".repeat((i * 7919) % 90_000)));
            let ready = std::future::poll_fn(|cx| Pin::new(&mut writer).poll_ready(cx));
            match tokio::time::timeout(Duration::from_micros(50), ready).await {
                Ok(result) => result.unwrap(),
                Err(_) => {
                    cancelled.0 += 1;
                    continue; // not fed
                }
            }
            Pin::new(&mut writer).start_send(m.clone()).unwrap();
            fed.push(m);
            if i % 3 == 0 {
                let flush = std::future::poll_fn(|cx| Pin::new(&mut writer).poll_flush(cx));
                if tokio::time::timeout(Duration::from_micros(50), flush)
                    .await
                    .is_err()
                {
                    cancelled.1 += 1;
                }
            }
        }
        assert!(
            cancelled.0 > 0 && cancelled.1 > 0,
            "nothing cancelled: {cancelled:?}"
        );
        writer.close().await.unwrap();
        let (got, code) = task.await.unwrap();
        assert_eq!(code, Some(1005));
        assert_eq!(got.len(), fed.len(), "cancelled ready/flush: {cancelled:?}");
        for (i, (g, f)) in got.iter().zip(&fed).enumerate() {
            assert!(g == f, "message {i}");
        }
    })
    .await;
}

/// Both ends write and read at once, from separate tasks (inline reads and writes on
/// two threads, on both runtimes): everything arrives, in order, on both sides.
async fn both_directions_at_once() {
    const N: usize = 2_000;
    fn message(side: u8, i: usize) -> Message {
        if i % 5 == 0 {
            Message::from(vec![side; (i * 131) % 40_000])
        } else {
            Message::from(format!("{side}/{i}"))
        }
    }
    async fn exchange(wss: WebSocketStream, side: u8) -> Vec<Message> {
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        let writing = tokio::spawn(async move {
            for i in 0..N {
                writer.write(message(side, i)).await.unwrap();
            }
            writer
        });
        let mut got = Vec::new();
        while got.len() < N {
            got.push(reader.read().await.unwrap().expect("a message"));
        }
        let mut writer = writing.await.unwrap();
        if side == 0 {
            writer.close().await.unwrap();
        }
        assert_eq!(reader.read().await.unwrap(), None);
        assert_eq!(wss.closed().await.unwrap().close_code, Some(1005));
        got
    }
    let (url, task) = server(|wss| exchange(wss, 1)).await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let client_got = exchange(wss, 0).await;
    let server_got = task.await.unwrap();
    for i in 0..N {
        assert_eq!(client_got[i], message(1, i), "client's message {i}");
        assert_eq!(server_got[i], message(0, i), "server's message {i}");
    }
}

#[tokio::test]
async fn both_directions_at_once_current_thread() {
    within(both_directions_at_once()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_directions_at_once_multi_thread() {
    within(both_directions_at_once()).await;
}
