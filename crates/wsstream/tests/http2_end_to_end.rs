//! WebSockets over HTTP/2 (RFC 8441) between this crate's two sides: the client with
//! `HttpVersionPreference::Auto` against a hyper HTTP/2 server upgrading with
//! `HyperUpgrade` (over TLS with ALPN `h2`). Both sides are ours here; the client is
//! tested against Node.js and Hypercorn in `http2_client.rs`, the server against the `h2`
//! crate and Node.js in `http2_server.rs`.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use wsstream::http::{self, HeaderMap};
use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
use wsstream::server::{ServerOptions, TlsAcceptor};
use wsstream::{Message, TlsOptions, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};
use wsstream_test_support::certs::Ca;

const DEADLINE: Duration = Duration::from_secs(10);

/// A hyper HTTP/2 server over TLS (ALPN `h2`, `http/1.1`) allowing extended CONNECT: `/echo`
/// echoes, `/bye` closes from the server side with 4001 after one message. Returns the
/// port and the count of TCP connections accepted.
async fn server(ca: &Ca) -> (u16, Arc<AtomicUsize>) {
    let mut config = (*ca.server(&["localhost", "127.0.0.1"]).server_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tls = TlsAcceptor::new(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(io) = tls.accept(tcp).await else {
                    return;
                };
                let service =
                    service_fn(|request| async move { Ok::<_, Infallible>(route(request)) });
                let _ = http2::Builder::new(TokioExecutor::new())
                    .enable_connect_protocol()
                    .serve_connection(TokioIo::new(io), service)
                    .await;
            });
        }
    });
    (port, accepted)
}

fn route(mut request: Request<Incoming>) -> Response<Body> {
    let mut upgrade = match HyperUpgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => return error_response(&e),
    };
    upgrade.set_secure(true);
    let bye = upgrade.request().resource.starts_with("/bye");
    let protocol = upgrade.request().protocols.first().cloned();
    let (response, upgrading) = upgrade
        .accept(
            protocol.as_deref(),
            &HeaderMap::new(),
            ServerOptions::default(),
        )
        .unwrap();
    tokio::spawn(async move {
        let Ok(wss) = upgrading.await else { return };
        let Ok(info) = wss.opened().await else { return };
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        while let Ok(Some(message)) = reader.read().await {
            if writer.write(message).await.is_err() {
                break;
            }
            if bye {
                let _ = wss.close(WebSocketCloseInfo {
                    close_code: Some(4001),
                    reason: "bye".into(),
                });
                break;
            }
        }
    });
    response
}

fn options(ca: &Ca) -> WebSocketStreamOptions {
    let mut tls = TlsOptions::default();
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    WebSocketStreamOptions::default()
        .tls(tls)
        .protocols(vec!["chat".into()])
}

#[tokio::test]
async fn client_and_server_of_this_crate_speak_websockets_over_http2() {
    let ca = Ca::new("wsstream end-to-end CA");
    let (port, accepted) = server(&ca).await;
    let mut streams = Vec::new();
    for path in ["/echo", "/echo", "/bye"] {
        let wss =
            WebSocketStream::new(&format!("wss://localhost:{port}{path}"), options(&ca)).unwrap();
        let info = tokio::time::timeout(DEADLINE, wss.opened())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.http_version(), http::Version::HTTP_2);
        assert_eq!(info.response().status(), http::StatusCode::OK);
        assert_eq!(info.protocol, "chat");
        // Both sides do permessage-deflate, over HTTP/2 as over HTTP/1.1.
        assert!(
            info.extensions.starts_with("permessage-deflate"),
            "{}",
            info.extensions
        );
        streams.push((
            wss,
            info.readable.get_reader().unwrap(),
            info.writable.get_writer().unwrap(),
        ));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "one shared connection");
    let big = Message::from("x".repeat(300_000));
    for (i, (_, reader, writer)) in streams.iter_mut().enumerate() {
        // `/bye` (the last) answers one message only.
        let messages = if i < 2 {
            vec![Message::from("hello"), big.clone()]
        } else {
            vec![Message::from("hello")]
        };
        for message in messages {
            writer.write(message.clone()).await.unwrap();
            let back = tokio::time::timeout(DEADLINE, reader.read())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert_eq!(back, message);
        }
    }
    // `/bye` closed from the server's side after its first echo: a clean close with its
    // code; the two others go on and close from the client's side.
    let (bye, ..) = streams.pop().unwrap();
    let closed = tokio::time::timeout(DEADLINE, bye.closed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.close_code, Some(4001));
    for (wss, reader, writer) in &mut streams {
        writer.write("still open").await.unwrap();
        let back = tokio::time::timeout(DEADLINE, reader.read())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::from("still open"));
        wss.close(WebSocketCloseInfo {
            close_code: Some(1000),
            reason: String::new(),
        })
        .unwrap();
        let closed = tokio::time::timeout(DEADLINE, wss.closed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(closed.close_code, Some(1000));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
}

/// Connects a TCP stream to `127.0.0.1:port` for `WebSocketStream::with_stream`.
async fn tcp(port: u16) -> tokio::net::TcpStream {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_callers_stream_carries_http2_when_asked_for_http2_only() {
    use wsstream::HttpVersionPreference;
    let ca = Ca::new("wsstream end-to-end CA");
    let (port, accepted) = server(&ca).await;
    let url = format!("wss://localhost:{port}/echo");
    // Two WebSockets over two streams of the caller's: an HTTP/2 connection each (TLS over
    // the stream, ALPN h2), not pooled with anything.
    for round in 1..=2 {
        let options = options(&ca).http_version(HttpVersionPreference::Http2Only);
        let wss = WebSocketStream::with_stream(&url, options, tcp(port).await).unwrap();
        let info = tokio::time::timeout(DEADLINE, wss.opened())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.http_version(), http::Version::HTTP_2);
        assert_eq!(info.protocol, "chat");
        let mut reader = info.readable.get_reader().unwrap();
        let mut writer = info.writable.get_writer().unwrap();
        writer.write("over my stream").await.unwrap();
        let back = tokio::time::timeout(DEADLINE, reader.read())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, Message::from("over my stream"));
        wss.close(WebSocketCloseInfo::default()).unwrap();
        let closed = tokio::time::timeout(DEADLINE, wss.closed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(closed.close_code, Some(1005));
        assert_eq!(accepted.load(Ordering::SeqCst), round);
    }
}

#[tokio::test]
async fn http2_over_a_callers_cleartext_stream_with_prior_knowledge() {
    use wsstream_test_support::wpt::{WptServer, http2_client_options};
    let server = WptServer::start_http2().await.unwrap();
    let wss = WebSocketStream::with_stream(
        &server.echo_url(),
        http2_client_options(),
        tcp(server.local_addr().port()).await,
    )
    .unwrap();
    let info = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.http_version(), http::Version::HTTP_2);
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write(vec![1u8, 2, 3]).await.unwrap();
    let back = tokio::time::timeout(DEADLINE, reader.read())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::from(vec![1u8, 2, 3]));
    wss.close(WebSocketCloseInfo::default()).unwrap();
    tokio::time::timeout(DEADLINE, wss.closed())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn http2_only_over_a_callers_stream_to_an_http11_server_fails_clearly() {
    use wsstream_test_support::wpt::{WptServer, http2_client_options};
    let server = WptServer::start_http1().await.unwrap();
    let wss = WebSocketStream::with_stream(
        &server.echo_url(),
        http2_client_options(),
        tcp(server.local_addr().port()).await,
    )
    .unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    let mut chain = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(e) = source {
        chain.push_str(" / ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    assert!(chain.contains("HTTP/2"), "{chain}");
}
