//! WebSocket routes in an axum router (feature `axum`), through the `WebSocketUpgrade`
//! extractor: wsstream's client and tokio-tungstenite, permessage-deflate, subprotocol
//! selection, extra response headers, a page and a WebSocket on one route
//! (`Option<WebSocketUpgrade>`), and the rejections (400, 426).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::Router;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use wsstream::http::{HeaderMap, HeaderValue, StatusCode};
use wsstream::server::ServerOptions;
use wsstream::server::axum::WebSocketUpgrade;
use wsstream::{
    Message, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions,
};

const PAGE: &str = "<!doctype html><title>wsstream in axum</title>";

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

/// `(protocol, extensions)` of each server-side connection, once opened.
type Reports = mpsc::UnboundedSender<(String, String)>;

async fn echo(wss: WebSocketStream, reports: Reports) {
    let info: WebSocketOpenInfo = wss.opened().await.unwrap();
    let _ = reports.send((info.protocol.clone(), info.extensions.clone()));
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
}

/// `/echo`: selects `chat` or `superchat`, adds `x-served-by: axum-test`, echoes.
/// `/`: the page for a plain GET, the echo for an upgrade.
async fn app() -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let echo_tx = tx.clone();
    let router = Router::new()
        .route(
            "/echo",
            get(move |ws: WebSocketUpgrade| async move {
                let mut headers = HeaderMap::new();
                headers.insert("x-served-by", HeaderValue::from_static("axum-test"));
                ws.select_protocol(&["chat", "superchat"])
                    .with_headers(headers)
                    .on_upgrade(ServerOptions::default(), move |wss| echo(wss, echo_tx))
            }),
        )
        .route(
            "/",
            get(move |ws: Option<WebSocketUpgrade>| async move {
                match ws {
                    Some(ws) => ws.on_upgrade(ServerOptions::default(), move |wss| echo(wss, tx)),
                    None => Html(PAGE).into_response(),
                }
            }),
        )
        .route(
            "/unoffered",
            get(|ws: WebSocketUpgrade| async move {
                ws.with_protocol("never-offered")
                    .on_upgrade(ServerOptions::default(), |_| async {})
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (addr, rx)
}

/// Sends `head` on a fresh connection and reads the response until the server closes.
async fn raw(addr: &str, head: &str) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    within(tcp.read_to_end(&mut received)).await.unwrap();
    String::from_utf8(received).unwrap()
}

#[tokio::test]
async fn wsstream_client_gets_deflate_protocol_and_headers_through_axum() {
    let (addr, mut reports) = app().await;
    let options =
        WebSocketStreamOptions::default().protocols(vec!["superchat".into(), "chat".into()]);
    let wss = WebSocketStream::new(&format!("ws://{addr}/echo"), options).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "superchat");
    assert!(
        info.extensions.starts_with("permessage-deflate"),
        "{}",
        info.extensions
    );
    assert_eq!(info.response().headers()["x-served-by"], "axum-test");
    let (server_protocol, server_extensions) = within(reports.recv()).await.unwrap();
    assert_eq!(server_protocol, "superchat");
    assert_eq!(server_extensions, info.extensions);
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let big = "axum compressible ".repeat(5_000);
    for message in [Message::from(big.as_str()), Message::from(vec![7u8; 3000])] {
        writer.write(message.clone()).await.unwrap();
        assert_eq!(within(reader.read()).await.unwrap(), Some(message));
    }
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "done".into(),
    })
    .unwrap();
    assert_eq!(within(wss.closed()).await.unwrap().close_code, Some(1000));
}

#[tokio::test]
async fn tungstenite_client_echoes_through_axum() {
    let (addr, mut reports) = app().await;
    let (mut ws, response) = within(tokio_tungstenite::connect_async(format!(
        "ws://{addr}/echo"
    )))
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-served-by"], "axum-test");
    assert!(!response.headers().contains_key("sec-websocket-protocol"));
    ws.send(tungstenite::Message::text("hello axum"))
        .await
        .unwrap();
    assert_eq!(
        within(ws.next()).await.unwrap().unwrap(),
        tungstenite::Message::text("hello axum")
    );
    assert_eq!(
        within(reports.recv()).await.unwrap(),
        (String::new(), String::new())
    );
    ws.close(None).await.unwrap();
}

#[tokio::test]
async fn one_route_serves_the_page_and_the_websocket() {
    let (addr, _reports) = app().await;
    let page = raw(
        &addr,
        &format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.ends_with(PAGE), "{page}");
    let wss =
        WebSocketStream::new(&format!("ws://{addr}/"), WebSocketStreamOptions::default()).unwrap();
    let info = within(wss.opened()).await.unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("on the root").await.unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from("on the root"))
    );
}

#[tokio::test]
async fn wrong_version_is_rejected_with_426() {
    let (addr, _reports) = app().await;
    let head = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 7\r\n\r\n"
    );
    let response = raw(&addr, &head).await;
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn invalid_upgrades_are_rejected_with_400() {
    let (addr, _reports) = app().await;
    // A plain GET of a WebSocket-only route, and an upgrade with a bad key on the page route.
    let plain = raw(
        &addr,
        &format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\n\r\n"),
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{plain}");
    assert!(plain.ends_with("missing `Upgrade: websocket`\n"), "{plain}");
    let bad_key = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    let response = raw(&addr, &bad_key).await;
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
}

#[tokio::test]
async fn a_protocol_the_client_did_not_offer_is_a_500_not_an_upgrade() {
    let (addr, _reports) = app().await;
    let wss = WebSocketStream::new(
        &format!("ws://{addr}/unoffered"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let error = within(wss.opened()).await.expect_err("refused");
    let chain = format!("{error:?}");
    assert!(chain.contains("500"), "{chain}");
}

#[tokio::test]
async fn the_extractor_without_a_hyper_connection_is_a_500() {
    use axum::extract::FromRequestParts;
    let request = http::Request::get("/echo")
        .header("Host", "h")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
        .body(())
        .unwrap();
    let (mut parts, ()) = request.into_parts();
    let rejection = WebSocketUpgrade::from_request_parts(&mut parts, &())
        .await
        .unwrap_err();
    let response: Response = rejection.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
}
