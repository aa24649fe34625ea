//! `close()` loses nothing: a close started while writes are pending sends every write
//! accepted before it, resolves their futures, then sends the Close frame, and the close
//! is clean when the peer answers (Chromium's behaviour; the browser spec text would drop
//! the data). The same for `readable.cancel`; `writable.abort` follows the streams spec
//! (the write being sent completes, writes still queued are rejected).
//!
//! Also here: the readable ends in the same step that settles `closed` (closed or errored
//! with the very `closed` error), never before, and the WPT rule "unsent data makes the
//! close unclean" holds whatever the timing between the peer's Close and the write.
//!
//! Each scenario runs on the current-thread and the multi-thread runtime, and the 4 MiB
//! write runs over ws://, wss:// and with permessage-deflate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::net::TcpListener;
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{
    CancelReason, DomExceptionName, Message, TlsOptions, WebSocketCloseInfo, WebSocketError,
    WebSocketStream, WebSocketStreamOptions,
};
use wsstream_test_support::certs::Ca;
use wsstream_test_support::frames::{Frame, ParsedFrame};
use wsstream_test_support::hostile::{ScriptedPeer, serve_once, switching_protocols_head};

const BIG: usize = 4 << 20;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("hung")
}

/// Reads the client's frames until its Close (draining them as they come, so a large
/// message costs no memory), answers that Close with the same code, and returns the data
/// bytes received before it and the Close frame.
async fn drain_until_close(peer: &mut ScriptedPeer) -> std::io::Result<(usize, ParsedFrame)> {
    let mut data = 0usize;
    loop {
        let frame = peer
            .next_frame(Duration::from_secs(30))
            .await?
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        if frame.is_close() {
            return Ok((data, frame));
        }
        data += frame.payload.len();
    }
}

/// A compressible but not trivial 4 MiB payload.
fn big_payload() -> Vec<u8> {
    (0..BIG)
        .map(|i| (i % 251) as u8 ^ (i / 4093) as u8)
        .collect()
}

fn done() -> WebSocketCloseInfo {
    WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "done".into(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Setup {
    Ws,
    Wss,
    Deflate,
}

/// A wsstream server that reads messages until its readable ends and reports them with
/// how its `closed` settled.
async fn reading_server(
    setup: Setup,
) -> (
    String,
    TlsOptions,
    tokio::task::JoinHandle<(Vec<Message>, Option<WebSocketCloseInfo>)>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (acceptor, tls, scheme): (Option<TlsAcceptor>, TlsOptions, &str) = match setup {
        Setup::Wss => {
            let ca = Ca::new("wsstream close-loses-nothing CA");
            let mut tls = TlsOptions::default();
            tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
            (Some(ca.server(&["127.0.0.1"]).acceptor()), tls, "wss")
        }
        Setup::Ws | Setup::Deflate => (None, TlsOptions::default(), "ws"),
    };
    let compression = match setup {
        Setup::Deflate => ServerOptions::default().compression,
        Setup::Ws | Setup::Wss => None,
    };
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let options = ServerOptions::default().compression(compression);
        let wss = match &acceptor {
            Some(acceptor) => server::accept_tls(tcp, acceptor, options).await,
            None => server::accept(tcp, options).await,
        }
        .unwrap();
        let info = wss.opened().await.unwrap();
        let mut reader = info.readable.get_reader().unwrap();
        let mut got = Vec::new();
        while let Ok(Some(message)) = reader.read().await {
            got.push(message);
        }
        (got, wss.closed().await.ok())
    });
    (format!("{scheme}://{addr}/"), tls, task)
}

fn client_options(setup: Setup, tls: TlsOptions) -> WebSocketStreamOptions {
    WebSocketStreamOptions::default()
        .tls(tls)
        .compression(match setup {
            Setup::Deflate => WebSocketStreamOptions::default().compression,
            Setup::Ws | Setup::Wss => None,
        })
}

/// `write()` of 4 MiB not awaited, then `close({1000, "done"})`: the write resolves, the
/// server receives all 4 MiB, then Close 1000 "done", and both ends close cleanly.
async fn close_with_a_big_write_pending(setup: Setup) {
    let (url, tls, server) = reading_server(setup).await;
    let wss = WebSocketStream::new(&url, client_options(setup, tls)).unwrap();
    let info = wss.opened().await.unwrap();
    if let Setup::Deflate = setup {
        assert!(
            info.extensions.starts_with("permessage-deflate"),
            "{info:?}"
        );
    }
    let mut writer = info.writable.get_writer().unwrap();
    let payload = big_payload();
    let write = writer.write(payload.clone());
    wss.close(done()).unwrap();
    // Writes after close() are refused.
    let late = writer.write("late").await.unwrap_err();
    assert_eq!(
        late.as_dom_exception().map(|e| e.name()),
        Some(DomExceptionName::InvalidStateError)
    );
    within(write)
        .await
        .expect("the write accepted before close() resolves");
    assert_eq!(within(wss.closed()).await.unwrap(), done());
    let (got, server_closed) = within(server).await.unwrap();
    assert_eq!(got.len(), 1, "{setup:?}: one message");
    assert!(got[0] == Message::from(payload), "{setup:?}: byte-exact");
    assert_eq!(server_closed, Some(done()), "{setup:?}: the server's close");
}

/// `readable.cancel(reason)` with a 4 MiB write pending: the write goes out first.
async fn cancel_with_a_big_write_pending() {
    let (url, tls, server) = reading_server(Setup::Ws).await;
    let wss = WebSocketStream::new(&url, client_options(Setup::Ws, tls)).unwrap();
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let write = writer.write(big_payload());
    let reason = WebSocketError::new("", done()).unwrap();
    info.readable
        .cancel(CancelReason::WebSocketError(reason))
        .await
        .unwrap();
    within(write).await.unwrap();
    assert_eq!(within(wss.closed()).await.unwrap(), done());
    let (got, _) = within(server).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].len(), BIG);
}

/// `writer.abort(reason)` with a 4 MiB write being sent and a small one queued behind it:
/// the big one completes and is received whole, the queued one is rejected with the
/// abort reason, and the Close carries the reason's code.
async fn abort_with_writes_pending() {
    // The peer reads nothing for a while, so the big write is still being sent when the
    // application aborts (16 MiB is more than the socket buffers hold).
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut data = Vec::new();
        loop {
            let frame = peer
                .next_frame(Duration::from_secs(30))
                .await?
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            if frame.is_close() {
                peer.send_frame(&Frame::close(frame.close_code(), ""))
                    .await?;
                return Ok((data, frame));
            }
            data.push((frame.fin, frame.payload.len()));
        }
    })
    .await
    .unwrap();
    let options = WebSocketStreamOptions::default().compression(None);
    let wss = WebSocketStream::new(&server.url(), options).unwrap();
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let big = writer.write(vec![5u8; 16 << 20]);
    let queued = writer.write("queued");
    let reason = WebSocketError::new(
        "",
        WebSocketCloseInfo {
            close_code: Some(3000),
            reason: "aborted".into(),
        },
    )
    .unwrap();
    writer
        .abort(CancelReason::WebSocketError(reason.clone()))
        .await;
    within(big).await.expect("the write in flight completes");
    let rejected = within(queued).await.unwrap_err();
    let error = rejected.as_websocket_error().expect("the abort reason");
    assert_eq!(
        (error.close_code(), error.reason()),
        (Some(3000), "aborted")
    );
    let closed = within(wss.closed()).await.unwrap();
    assert_eq!(closed.close_code, Some(3000));
    let (frames, close) = within(server.finish()).await.unwrap();
    let total: usize = frames.iter().map(|(_, len)| len).sum();
    assert_eq!(
        total,
        16 << 20,
        "the whole message, nothing of the queued one"
    );
    assert_eq!(frames.iter().filter(|(fin, _)| *fin).count(), 1);
    assert_eq!(
        (close.close_code(), close.close_reason()),
        (Some(3000), &b"aborted"[..])
    );
}

/// The same over an independent peer that checks the wire: every frame of the 4 MiB
/// message (FIN on the last), then our Close 1000 "done", nothing after it.
async fn close_with_a_big_write_pending_on_the_wire() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        let (data, close) = drain_until_close(&mut peer).await?;
        peer.send_frame(&Frame::close(Some(1000), "done")).await?;
        Ok((data, close))
    })
    .await
    .unwrap();
    let options = WebSocketStreamOptions::default().compression(None);
    let wss = WebSocketStream::new(&server.url(), options).unwrap();
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let write = writer.write(big_payload());
    wss.close(done()).unwrap();
    within(write).await.unwrap();
    let (data, close): (usize, ParsedFrame) = within(server.finish()).await.unwrap();
    assert_eq!(data, BIG, "every byte before the Close frame");
    assert_eq!(
        (close.close_code(), close.close_reason()),
        (Some(1000), &b"done"[..])
    );
    assert_eq!(within(wss.closed()).await.unwrap(), done());
}

/// When `read()` reports the end, `closed` has already settled (clean: `None` and
/// `closed` resolved; here the server closes with 4000 after one message).
async fn the_readable_closes_in_the_step_that_settles_closed_case() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        peer.send_frame(&Frame::text("last")).await?;
        peer.send_frame(&Frame::close(Some(4000), "bye")).await?;
        peer.read_until_close(Duration::from_secs(10)).await?;
        // Keep TCP open a moment: the readable must not end before it closes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from("last"))
    );
    assert_eq!(within(reader.read()).await.unwrap(), None);
    let closed = wss
        .closed()
        .now_or_never()
        .expect("closed settled before the readable ended");
    assert_eq!(closed.unwrap().close_code, Some(4000));
    server.finish().await.unwrap();
}

/// A connection that ends uncleanly after the peer's Close (here: a write was still
/// unsent) errors the readable with the very error of `closed`; the readable does not
/// end cleanly when the Close frame is read.
async fn an_unclean_end_after_the_peers_close_errors_the_readable() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        // Do not read: the client's big write stays pending.
        tokio::time::sleep(Duration::from_millis(50)).await;
        peer.send_frame(&Frame::close(Some(4567), "")).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        Ok(())
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let write = writer.write(vec![7u8; 20 << 20]);
    let read = within(reader.read()).await.unwrap_err();
    let closed = wss.closed().now_or_never().expect("closed settled first");
    let closed = closed.unwrap_err();
    let closed = closed.as_websocket_error().unwrap();
    assert_eq!(closed.close_code(), Some(4567));
    assert!(Arc::ptr_eq(read.as_websocket_error().unwrap(), closed));
    let write = within(write).await.unwrap_err();
    assert_eq!(
        write.as_dom_exception().map(|e| e.name()),
        Some(DomExceptionName::InvalidStateError)
    );
    server.finish().await.unwrap();
}

/// The WPT case "close with unwritten data should not be considered clean", with the
/// server's Close sent in the same TCP segment as its 101 (the tightest timing), many
/// times; and once with the write made well after the Close arrived. Unclean every time.
async fn close_with_unwritten_data_is_unclean_whatever_the_timing(delay: Duration) {
    for round in 0..if delay.is_zero() { 20 } else { 2 } {
        let server = serve_once(|mut peer: ScriptedPeer| async move {
            let request = peer.read_request().await?;
            let mut bytes = format!("{}\r\n", switching_protocols_head(&request.key)).into_bytes();
            bytes.extend_from_slice(&Frame::close(Some(4567), "").encode());
            peer.send(&bytes).await?;
            drain_until_close(&mut peer).await?;
            // The closing handshake is done; TCP stays open a while (the client waits
            // for the server to close it), so a late write still meets an open connection.
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        })
        .await
        .unwrap();
        let options = WebSocketStreamOptions::default().compression(None);
        let wss = WebSocketStream::new(&server.url(), options).unwrap();
        let info = wss.opened().await.unwrap();
        tokio::time::sleep(delay).await;
        let mut writer = info.writable.get_writer().unwrap();
        let write = writer.write(vec![1u8; 20 << 20]);
        let closed = within(wss.closed()).await.expect_err("unclean");
        let closed = closed.as_websocket_error().expect("a WebSocketError");
        assert_eq!(closed.close_code(), Some(4567), "round {round}");
        let write = within(write).await.unwrap_err();
        assert_eq!(
            write.as_dom_exception().map(|e| e.name()),
            Some(DomExceptionName::InvalidStateError),
            "round {round}"
        );
        server.finish().await.unwrap();
    }
}

/// A message and the peer's Close arrive together: the application reads the message
/// and answers after a pause shorter than its turn; the answer goes out before our
/// Close reply, and the close is clean.
async fn a_reply_to_a_message_goes_out_before_the_close_behind_it_case() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        let mut bytes = Frame::text("question").encode();
        bytes.extend_from_slice(&Frame::close(Some(1000), "").encode());
        peer.send(&bytes).await?;
        peer.read_until_close(Duration::from_secs(10)).await?;
        Ok(peer.frames())
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from("question"))
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    within(writer.write("answer")).await.unwrap();
    assert_eq!(within(wss.closed()).await.unwrap().close_code, Some(1000));
    let frames = server.finish().await.unwrap();
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].text(), Some("answer"));
    assert_eq!(frames[1].close_code(), Some(1000));
}

/// The application reads a message and then makes no move at all: the Close behind it
/// is still answered, a moment later, by the connection task.
async fn the_close_behind_a_message_is_answered_without_another_move_case() {
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        let mut bytes = Frame::text("last").encode();
        bytes.extend_from_slice(&Frame::close(Some(1000), "").encode());
        peer.send(&bytes).await?;
        let sent = tokio::time::Instant::now();
        peer.read_until_close(Duration::from_secs(10)).await?;
        Ok(sent.elapsed())
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from("last"))
    );
    let waited = within(server.finish()).await.unwrap();
    assert!(waited < Duration::from_secs(2), "answered after {waited:?}");
    assert_eq!(within(wss.closed()).await.unwrap().close_code, Some(1000));
}

/// A `poll_next` that returned `Pending` and was then abandoned (a timeout), in a task
/// that goes on to await `closed`: the peer's Close is still processed.
async fn an_abandoned_pending_read_does_not_stall_closed_case() {
    use futures_util::StreamExt;
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        peer.send_frame(&Frame::close(Some(4001), "")).await?;
        peer.read_until_close(Duration::from_secs(10)).await
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    let info = wss.opened().await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(20), reader.next())
            .await
            .is_err()
    );
    assert_eq!(within(wss.closed()).await.unwrap().close_code, Some(4001));
    server.finish().await.unwrap();
    drop(reader);
}

macro_rules! on_both_runtimes {
    ($($name:ident => $body:expr;)*) => {
        mod current_thread {
            use super::*;
            $(
                #[tokio::test]
                async fn $name() {
                    within($body).await;
                }
            )*
        }
        mod multi_thread {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    within($body).await;
                }
            )*
        }
    };
}

on_both_runtimes! {
    close_with_a_4_mib_write_not_awaited_sends_it_then_closes_cleanly =>
        close_with_a_big_write_pending(Setup::Ws);
    close_with_a_4_mib_write_not_awaited_over_wss_sends_it_then_closes_cleanly =>
        close_with_a_big_write_pending(Setup::Wss);
    close_with_a_4_mib_write_not_awaited_with_permessage_deflate_sends_it_then_closes_cleanly =>
        close_with_a_big_write_pending(Setup::Deflate);
    close_with_a_4_mib_write_not_awaited_puts_every_byte_before_the_close_frame =>
        close_with_a_big_write_pending_on_the_wire();
    cancel_with_a_4_mib_write_not_awaited_sends_it_first => cancel_with_a_big_write_pending();
    abort_completes_the_write_in_flight_and_rejects_the_queued_ones => abort_with_writes_pending();
    the_readable_closes_in_the_step_that_settles_closed =>
        the_readable_closes_in_the_step_that_settles_closed_case();
    an_unclean_end_after_the_peers_close_errors_the_readable_with_the_closed_error =>
        an_unclean_end_after_the_peers_close_errors_the_readable();
    close_with_unwritten_data_is_unclean_when_the_close_comes_with_the_handshake =>
        close_with_unwritten_data_is_unclean_whatever_the_timing(Duration::ZERO);
    close_with_unwritten_data_is_unclean_when_the_write_comes_after_the_close =>
        close_with_unwritten_data_is_unclean_whatever_the_timing(Duration::from_millis(300));
    a_reply_to_a_message_goes_out_before_the_close_behind_it =>
        a_reply_to_a_message_goes_out_before_the_close_behind_it_case();
    the_close_behind_a_message_is_answered_without_another_move =>
        the_close_behind_a_message_is_answered_without_another_move_case();
    an_abandoned_pending_read_does_not_stall_closed =>
        an_abandoned_pending_read_does_not_stall_closed_case();
}
