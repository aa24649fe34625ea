//! The upgrade through `http` types without hyper: a server that parses the request head
//! itself (httparse) validates it with `HttpUpgrade`, writes the `101` it gets back as an
//! `http::Response<()>`, and runs the stream over its TCP connection with the bytes it
//! read past the head.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wsstream::http::{self, HeaderMap, HeaderValue};
use wsstream::server::{HttpUpgrade, ServerOptions, error_response};
use wsstream::{Message, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

/// Reads a request head; returns it as `http::Request<()>` and the bytes read past it.
async fn read_head(tcp: &mut TcpStream) -> (http::Request<()>, Vec<u8>) {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&chunk[..n]);
        let mut slots = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut slots);
        if let httparse::Status::Complete(len) = parsed.parse(&buf).unwrap() {
            let mut request = http::Request::builder()
                .method(parsed.method.unwrap())
                .uri(parsed.path.unwrap())
                .version(http::Version::HTTP_11);
            for header in parsed.headers.iter() {
                request = request.header(header.name, header.value);
            }
            return (request.body(()).unwrap(), buf[len..].to_vec());
        }
    }
}

/// Writes an `http::Response` head (and body) as HTTP/1.1.
async fn write_response(tcp: &mut TcpStream, response: &http::Response<impl AsRef<[u8]>>) {
    let status = response.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    for (name, value) in response.headers() {
        out.push_str(&format!("{name}: {}\r\n", value.to_str().unwrap()));
    }
    let body = response.body().as_ref();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    tcp.write_all(&out).await.unwrap();
}

/// Serves one connection: upgrades with `chat` when offered and `x-server: own`, echoes.
async fn serve_one(listener: TcpListener) -> Option<(String, String)> {
    let (mut tcp, _) = listener.accept().await.unwrap();
    let (request, leftover) = read_head(&mut tcp).await;
    let upgrade = match HttpUpgrade::from_request(&request) {
        Ok(upgrade) => upgrade,
        Err(e) => {
            write_response(&mut tcp, &error_response(&e)).await;
            return None;
        }
    };
    let protocol = upgrade
        .request()
        .protocols
        .iter()
        .find(|p| *p == "chat")
        .cloned();
    let mut headers = HeaderMap::new();
    headers.insert("x-server", HeaderValue::from_static("own"));
    let (response, accepted) = upgrade
        .accept(protocol.as_deref(), &headers, ServerOptions::default())
        .unwrap();
    write_response(&mut tcp, &response.map(|()| Vec::<u8>::new())).await;
    let wss = accepted.into_stream_with_leftover(tcp, leftover.into());
    let info = wss.opened().await.unwrap();
    let seen = (info.protocol.clone(), info.extensions.clone());
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
    let _ = wss.closed().await;
    Some(seen)
}

#[tokio::test]
async fn a_server_of_its_own_upgrades_through_http_types() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_one(listener));
    let options = WebSocketStreamOptions::default().protocols(vec!["chat".into()]);
    let wss = WebSocketStream::new(&format!("ws://{addr}/room"), options).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.protocol, "chat");
    assert!(info.extensions.starts_with("permessage-deflate"));
    assert_eq!(info.response().headers()["x-server"], "own");
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    let text = "deflated through http types ".repeat(1000);
    writer.write(text.as_str()).await.unwrap();
    assert_eq!(
        within(reader.read()).await.unwrap(),
        Some(Message::from(text.as_str()))
    );
    wss.close(WebSocketCloseInfo::default()).unwrap();
    within(wss.closed()).await.unwrap();
    let (protocol, extensions) = within(server).await.unwrap().unwrap();
    assert_eq!(protocol, "chat");
    assert_eq!(extensions, info.extensions);
}

#[tokio::test]
async fn a_wrong_version_gets_the_426_of_error_response() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(serve_one(listener));
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 12\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(within(server).await.unwrap(), None);
    let mut response = String::new();
    within(tcp.read_to_string(&mut response)).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
        "{response}"
    );
    assert!(
        response.contains("\r\nsec-websocket-version: 13\r\n"),
        "{response}"
    );
}
