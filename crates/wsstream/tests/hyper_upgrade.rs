//! WebSocket routes in a hyper 1.x server (feature `hyper`): one port serves a page and
//! upgrades; driven by wsstream's client and by tokio-tungstenite, with permessage-deflate
//! negotiated through the http path, subprotocol selection, extra response headers, and
//! refused requests (400, 426).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsstream::http::{HeaderMap, HeaderValue};
use wsstream::server::ServerOptions;
use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
use wsstream::{
    Message, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions,
};
use wsstream_test_support::frames::{Frame, parse_frame};

const PAGE: &str = "<!doctype html><title>wsstream over hyper</title>";

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

/// What the server side saw of one WebSocket connection.
#[derive(Debug)]
struct ServerSide {
    protocol: String,
    extensions: String,
    url: String,
    closed: Result<WebSocketCloseInfo, String>,
}

/// A hyper server on 127.0.0.1:0: `/` is [`PAGE`], `/echo` upgrades (selecting the first
/// offered of `chat` / `superchat`, adding `x-served-by: hyper-test`) and echoes; every
/// connection's server side is reported on the channel once closed. `upgrades: false`
/// serves connections without hyper's upgrade support.
async fn server(upgrades: bool) -> (String, mpsc::UnboundedReceiver<Result<ServerSide, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| route(request, tx.clone()));
                let mut builder = http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(Duration::from_secs(10));
                let io = TokioIo::new(tcp);
                if upgrades {
                    let _ = builder.serve_connection(io, service).with_upgrades().await;
                } else {
                    let _ = builder.serve_connection(io, service).await;
                }
            });
        }
    });
    (addr, rx)
}

async fn route(
    mut request: Request<Incoming>,
    report: mpsc::UnboundedSender<Result<ServerSide, String>>,
) -> Result<Response<Body>, Infallible> {
    if request.uri().path() == "/" {
        let mut response = Response::new(Body::from(PAGE));
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("text/html"));
        return Ok(response);
    }
    if request.uri().path() != "/echo" {
        let mut response = Response::new(Body::from("not found"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let upgrade = match HyperUpgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => return Ok(error_response(&e)),
    };
    let protocol = upgrade
        .request()
        .protocols
        .iter()
        .find(|p| *p == "chat" || *p == "superchat")
        .cloned();
    let mut headers = HeaderMap::new();
    headers.insert("x-served-by", HeaderValue::from_static("hyper-test"));
    let (response, upgrading) = upgrade
        .accept(protocol.as_deref(), &headers, ServerOptions::default())
        .unwrap();
    tokio::spawn(async move {
        let wss = match upgrading.await {
            Ok(wss) => wss,
            Err(e) => {
                let _ = report.send(Err(e.to_string()));
                return;
            }
        };
        let info = wss.opened().await.unwrap();
        let (protocol, extensions) = (info.protocol.clone(), info.extensions.clone());
        echo(info).await;
        let closed = wss.closed().await.map_err(|e| e.to_string());
        let _ = report.send(Ok(ServerSide {
            protocol,
            extensions,
            url: wss.url().to_owned(),
            closed,
        }));
    });
    Ok(response)
}

async fn echo(info: WebSocketOpenInfo) {
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
}

/// Sends `head` (and `extra` bytes right behind it) on a fresh connection and reads
/// until the server closes or `stop` is seen.
async fn raw(addr: &str, head: &str, extra: &[u8], stop: Option<&[u8]>) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let mut out = head.as_bytes().to_vec();
    out.extend_from_slice(extra);
    tcp.write_all(&out).await.unwrap();
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = within(tcp.read(&mut chunk)).await.unwrap_or(0);
        if n == 0 {
            return received;
        }
        received.extend_from_slice(&chunk[..n]);
        if stop.is_some_and(|stop| received.windows(stop.len()).any(|w| w == stop)) {
            return received;
        }
    }
}

fn upgrade_head(addr: &str, version: &str) -> String {
    format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n"
    )
}

#[tokio::test]
async fn wsstream_client_gets_permessage_deflate_through_hyper() {
    let (addr, mut reports) = server(true).await;
    let wss = WebSocketStream::new(
        &format!("ws://{addr}/echo"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert!(
        info.extensions.starts_with("permessage-deflate"),
        "{}",
        info.extensions
    );
    assert_eq!(
        info.response().headers()["sec-websocket-extensions"],
        info.extensions.as_str()
    );
    assert_eq!(info.protocol, "");
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let big = "compressible text ".repeat(10_000);
    for message in [
        Message::from(big.as_str()),
        Message::from(vec![0u8, 1, 2, 255]),
        Message::from("small"),
    ] {
        writer.write(message.clone()).await.unwrap();
        assert_eq!(within(reader.read()).await.unwrap(), Some(message));
    }
    wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: "done".into(),
    })
    .unwrap();
    let closed = within(wss.closed()).await.unwrap();
    assert_eq!(closed.close_code, Some(1000));
    let server = within(reports.recv()).await.unwrap().unwrap();
    assert_eq!(server.extensions, info.extensions);
    assert_eq!(server.protocol, "");
    assert_eq!(server.url, format!("ws://{addr}/echo"));
    let closed = server.closed.unwrap();
    assert_eq!(
        (closed.close_code, closed.reason.as_str()),
        (Some(1000), "done")
    );
}

#[tokio::test]
async fn without_compression_no_extension_is_negotiated() {
    let (addr, mut reports) = server(true).await;
    let options = WebSocketStreamOptions::default().compression(None);
    let wss = WebSocketStream::new(&format!("ws://{addr}/echo"), options).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.extensions, "");
    assert!(
        !info
            .response()
            .headers()
            .contains_key("sec-websocket-extensions")
    );
    drop(info);
    wss.close(WebSocketCloseInfo::default()).unwrap();
    within(wss.closed()).await.unwrap();
    let server = within(reports.recv()).await.unwrap().unwrap();
    assert_eq!(server.extensions, "");
}

#[tokio::test]
async fn subprotocol_is_selected_from_the_client_offer() {
    let (addr, mut reports) = server(true).await;
    let options = WebSocketStreamOptions::default().protocols(vec![
        "v1.other".into(),
        "superchat".into(),
        "chat".into(),
    ]);
    let wss = WebSocketStream::new(&format!("ws://{addr}/echo"), options).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "superchat");
    assert_eq!(
        info.response().headers()["sec-websocket-protocol"],
        "superchat"
    );
    drop(info);
    wss.close(WebSocketCloseInfo::default()).unwrap();
    within(wss.closed()).await.unwrap();
    let server = within(reports.recv()).await.unwrap().unwrap();
    assert_eq!(server.protocol, "superchat");
}

#[tokio::test]
async fn extra_response_headers_reach_the_client() {
    let (addr, _reports) = server(true).await;
    let wss = WebSocketStream::new(
        &format!("ws://{addr}/echo"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.response().status(), StatusCode::SWITCHING_PROTOCOLS);
    let response = info.response();
    let headers = response.headers();
    assert_eq!(headers["x-served-by"], "hyper-test");
    assert!(headers.contains_key("sec-websocket-accept"));
    assert!(
        headers["upgrade"]
            .as_bytes()
            .eq_ignore_ascii_case(b"websocket")
    );
}

#[tokio::test]
async fn tungstenite_client_echoes_through_hyper() {
    let (addr, mut reports) = server(true).await;
    let mut request = format!("ws://{addr}/echo").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", HeaderValue::from_static("chat"));
    let (mut ws, response) = within(tokio_tungstenite::connect_async(request))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    assert_eq!(response.headers()["x-served-by"], "hyper-test");
    // tungstenite offers no permessage-deflate: none is accepted.
    assert!(!response.headers().contains_key("sec-websocket-extensions"));
    let big = "x".repeat(200_000);
    for message in [
        tungstenite::Message::text("hello from tungstenite"),
        tungstenite::Message::binary(vec![9u8; 70_000]),
        tungstenite::Message::text(big),
    ] {
        ws.send(message.clone()).await.unwrap();
        let echoed = within(ws.next()).await.unwrap().unwrap();
        assert_eq!(echoed, message);
    }
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: 4000.into(),
        reason: "bye".into(),
    }))
    .await
    .unwrap();
    // The server answers the Close with the same code.
    loop {
        match within(ws.next()).await {
            Some(Ok(tungstenite::Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 4000);
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(_)) | None => break,
        }
    }
    let server = within(reports.recv()).await.unwrap().unwrap();
    assert_eq!(server.protocol, "chat");
    assert_eq!(server.extensions, "");
    let closed = server.closed.unwrap();
    assert_eq!(
        (closed.close_code, closed.reason.as_str()),
        (Some(4000), "bye")
    );
}

#[tokio::test]
async fn wrong_version_is_refused_with_426() {
    let (addr, _reports) = server(true).await;
    let response = raw(&addr, &upgrade_head(&addr, "8"), b"", None).await;
    let response = String::from_utf8(response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );
    assert!(lower.contains("\r\nconnection: close\r\n"), "{response}");
    assert!(
        response.ends_with("unsupported Sec-WebSocket-Version \"8\"\n"),
        "{response}"
    );
}

#[tokio::test]
async fn plain_get_of_the_websocket_route_is_refused_with_400() {
    let (addr, _reports) = server(true).await;
    let head = format!("GET /echo HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let response = String::from_utf8(raw(&addr, &head, b"", None).await).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request\r\n"),
        "{response}"
    );
    assert!(
        response.ends_with("missing `Upgrade: websocket`\n"),
        "{response}"
    );
}

#[tokio::test]
async fn page_is_served_on_the_same_port() {
    let (addr, _reports) = server(true).await;
    // A WebSocket open on the port while the page is fetched.
    let wss = WebSocketStream::new(
        &format!("ws://{addr}/echo"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let info = within(wss.opened()).await.unwrap();
    let head = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let response = String::from_utf8(raw(&addr, &head, b"", None).await).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("\r\ncontent-type: text/html\r\n"),
        "{response}"
    );
    assert!(response.ends_with(PAGE), "{response}");
    // The WebSocket still works.
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("still here").await.unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from("still here"))
    );
}

#[tokio::test]
async fn frames_sent_right_behind_the_request_are_not_lost() {
    let (addr, _reports) = server(true).await;
    // A client that does not wait for the 101: hyper has read the frame with the head.
    let frame = Frame::text("eager").masked([1, 2, 3, 4]).encode();
    let received = raw(&addr, &upgrade_head(&addr, "13"), &frame, Some(b"eager")).await;
    let at = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    let (echoed, _) = parse_frame(&received[at..]).expect("the echo");
    assert_eq!(echoed.text(), Some("eager"));
}

#[tokio::test]
async fn upgrading_fails_when_hyper_serves_without_upgrades() {
    let (addr, mut reports) = server(false).await;
    let wss = WebSocketStream::new(
        &format!("ws://{addr}/echo"),
        WebSocketStreamOptions::default(),
    )
    .unwrap();
    let error = within(reports.recv()).await.unwrap().unwrap_err();
    assert!(!error.is_empty());
    // The client got its 101 and then a dead connection: the close is unclean.
    if within(wss.opened()).await.is_ok() {
        assert!(within(wss.closed()).await.is_err());
    }
    // The error is an AcceptError::Io (its display says so).
    assert!(error.starts_with("I/O error during the upgrade"), "{error}");
}
