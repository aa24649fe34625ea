//! The opening handshake as `http` types: response headers on both ends, a refusal's
//! status, headers and body on the client, extra headers on accept and reject, and two
//! regressions of `server::UpgradeRequest` (a protocol the client did not offer, and the
//! bytes read past the request head).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsstream::http::{HeaderMap, HeaderValue, Request, StatusCode};
use wsstream::server::{self, AcceptError, ServerOptions, UpgradeRequest};
use wsstream::{ConnectError, HandshakeError, WebSocketStream, WebSocketStreamOptions};
use wsstream_test_support::hostile::find_source;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

/// A listener whose first request is handed to `script`.
async fn on_request<F, Fut, T>(script: F) -> (String, tokio::task::JoinHandle<T>)
where
    F: FnOnce(UpgradeRequest<TcpStream>) -> Fut + Send + 'static,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/chat", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        script(server::read_request(tcp).await.unwrap()).await
    });
    (url, task)
}

/// The `ConnectError` behind a failed `opened`.
async fn open_error(wss: &WebSocketStream) -> ConnectError {
    let error = within(wss.opened()).await.expect_err("the handshake fails");
    let error = error
        .as_websocket_error()
        .expect("a WebSocketError")
        .clone();
    let cause = find_source::<ConnectError>(&*error).expect("a ConnectError source");
    // ConnectError is not Clone: rebuild the parts the tests look at.
    match cause {
        ConnectError::Rejected(rejection) => ConnectError::Rejected(rejection.clone()),
        ConnectError::Handshake(e) => ConnectError::Handshake(e.clone()),
        other => panic!("unexpected cause: {other}"),
    }
}

#[tokio::test]
async fn the_101_response_headers_are_readable_on_both_ends() {
    let (url, task) = on_request(|upgrade| async move {
        let mut headers = HeaderMap::new();
        headers.insert("x-served-by", HeaderValue::from_static("wsstream-test"));
        let wss = upgrade
            .accept_with_headers(Some("chat"), &headers, ServerOptions::default())
            .await
            .unwrap();
        let info = wss.opened().await.unwrap();
        let _ = wss.closed().await;
        info.response()
    })
    .await;
    let options = WebSocketStreamOptions::default().protocols(vec!["chat".into()]);
    let wss = WebSocketStream::new(&url, options).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "chat");
    let response = info.response();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let headers = response.headers();
    assert_eq!(headers["x-served-by"], "wsstream-test");
    assert_eq!(headers["sec-websocket-protocol"], "chat");
    assert!(headers.contains_key("sec-websocket-accept"));
    if cfg!(feature = "deflate") {
        assert!(
            headers["sec-websocket-extensions"]
                .to_str()
                .unwrap()
                .starts_with("permessage-deflate")
        );
    }
    wss.close(Default::default()).unwrap();
    let sent = within(task).await.unwrap();
    assert_eq!(sent.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(sent.headers()["x-served-by"], "wsstream-test");
}

#[tokio::test]
async fn a_401_refusal_exposes_its_status_headers_and_body() {
    let (url, task) = on_request(|upgrade| async move {
        let mut headers = HeaderMap::new();
        headers.insert(
            "www-authenticate",
            HeaderValue::from_static("Bearer realm=\"chat\""),
        );
        upgrade
            .reject_with_headers(StatusCode::UNAUTHORIZED, &headers, b"token required")
            .await
            .unwrap();
    })
    .await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let error = open_error(&wss).await;
    let rejection = error.rejection().expect("a refusal");
    assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(rejection.reason(), "Unauthorized");
    assert_eq!(
        rejection.headers()["www-authenticate"],
        "Bearer realm=\"chat\""
    );
    assert_eq!(rejection.body(), b"token required");
    assert_eq!(rejection.retry_after(), None);
    within(task).await.unwrap();
}

#[tokio::test]
async fn a_429_refusal_tells_when_to_retry() {
    let (url, task) = on_request(|upgrade| async move {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("3"));
        upgrade
            .reject_with_headers(StatusCode::TOO_MANY_REQUESTS, &headers, b"")
            .await
            .unwrap();
    })
    .await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let error = open_error(&wss).await;
    let rejection = error.rejection().expect("a refusal");
    assert_eq!(rejection.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(rejection.retry_after(), Some(Duration::from_secs(3)));
    assert!(rejection.body().is_empty());
    within(task).await.unwrap();
}

/// Regression: `accept` with a protocol the client did not offer used to leave it out of
/// the 101 while `opened` reported it. It is refused now, before anything is sent.
#[tokio::test]
async fn accept_refuses_a_protocol_the_client_did_not_offer() {
    for (offered, chosen) in [
        (vec!["chat"], "other"),
        (vec![], "chat"),
        (vec!["a"], "a b"),
    ] {
        let chosen_owned = chosen.to_owned();
        let (url, task) = on_request(move |upgrade| async move {
            upgrade
                .accept(Some(&chosen_owned), ServerOptions::default())
                .await
                .map(|_| ())
        })
        .await;
        let options = WebSocketStreamOptions::default()
            .protocols(offered.iter().map(|p| (*p).to_owned()).collect());
        let wss = WebSocketStream::new(&url, options).unwrap();
        let refused = within(task).await.unwrap().expect_err("refused");
        assert!(
            matches!(
                refused,
                AcceptError::Response(HandshakeError::ProtocolNotOffered(ref p)) if p == chosen
            ),
            "{offered:?} / {chosen:?}: {refused:?}"
        );
        // Nothing was sent: the client sees the connection close during the handshake.
        assert!(within(wss.opened()).await.is_err());
    }
}

#[tokio::test]
async fn accept_refuses_the_handshakes_own_headers_as_extra_headers() {
    let (url, task) = on_request(|upgrade| async move {
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-accept", HeaderValue::from_static("forged"));
        upgrade
            .accept_with_headers(None, &headers, ServerOptions::default())
            .await
            .map(|_| ())
    })
    .await;
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    let refused = within(task).await.unwrap().expect_err("refused");
    assert!(
        matches!(
            refused,
            AcceptError::Response(HandshakeError::ForbiddenHeader(_))
        ),
        "{refused:?}"
    );
    assert!(within(wss.opened()).await.is_err());
}

/// Regression: `into_inner()` dropped the bytes read past the request head. `into_parts`
/// returns them.
#[tokio::test]
async fn into_parts_keeps_the_bytes_read_past_the_request_head() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let upgrade = server::read_request(tcp).await.unwrap();
        let (mut io, leftover) = upgrade.into_parts();
        let mut rest = leftover.to_vec();
        let mut buf = [0u8; 64];
        while rest.len() < 11 {
            let n = io.read(&mut buf).await.unwrap();
            assert!(n > 0);
            rest.extend_from_slice(&buf[..n]);
        }
        rest
    });
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // The request head and what follows it, in one write.
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
          early bytes",
    )
    .await
    .unwrap();
    assert_eq!(within(server).await.unwrap(), b"early bytes");
}

#[tokio::test]
async fn a_client_is_built_from_an_http_request() {
    let (url, task) = on_request(|upgrade| async move {
        let request = upgrade.request().clone();
        let wss = upgrade
            .accept(Some("v2.feed"), ServerOptions::default())
            .await
            .unwrap();
        let _ = wss.closed().await;
        request
    })
    .await;
    let request = Request::get(url.as_str())
        .header("authorization", "Bearer token")
        .header("sec-websocket-protocol", "v2.feed, v1.feed")
        .body(())
        .unwrap();
    let wss = WebSocketStream::from_request(request, WebSocketStreamOptions::default()).unwrap();
    assert_eq!(wss.url(), url);
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "v2.feed");
    wss.close(Default::default()).unwrap();
    let seen = within(task).await.unwrap();
    assert_eq!(seen.protocols, ["v2.feed", "v1.feed"]);
    assert!(
        seen.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("authorization") && v == b"Bearer token"),
        "{:?}",
        seen.headers
    );
    // Not a GET, not absolute: refused at once.
    let post = Request::post(url.as_str()).body(()).unwrap();
    assert!(WebSocketStream::from_request(post, Default::default()).is_err());
    let relative = Request::get("/chat").body(()).unwrap();
    assert!(WebSocketStream::from_request(relative, Default::default()).is_err());
}
