//! WebSockets over HTTP/2 (RFC 8441) on the server side: a hyper HTTP/2 server with
//! `enable_connect_protocol()` and `HyperUpgrade`, driven by the `h2` crate as an
//! independent client (the test-support crate's `h2_client`: extended CONNECT streams
//! carrying hand-made, masked frames) and by
//! Node.js's built-in `http2` module (the test-support crate's `h2_websocket_client.mjs`).
//!
//! What is checked: the server's SETTINGS carry ENABLE_CONNECT_PROTOCOL (RFC 8441 §3);
//! an extended CONNECT (§4) is answered with `200` and the negotiated subprotocol and
//! permessage-deflate (§5), and `opened` reports that `200` over `HTTP/2.0`; frames are
//! echoed per stream; a WebSocket close ends the stream with END_STREAM, an RST_STREAM or
//! the loss of the connection closes uncleanly (1006), and the other streams of the
//! connection keep working; wrong requests get 400.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use h2::Reason;
use hyper::body::Incoming;
use hyper::server::conn::http2;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsstream::http::{self, HeaderMap, StatusCode};
use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
use wsstream::server::{ServerOptions, TlsAcceptor};
use wsstream::{AsyncIo, WebSocketCloseInfo, WebSocketStream};
use wsstream_test_support::certs::Ca;
use wsstream_test_support::frames::Frame;
use wsstream_test_support::h2_client::H2Connection;
use wsstream_test_support::hostile::error_chain;
use wsstream_test_support::node;

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("hung")
}

/// A hyper HTTP/2 server on 127.0.0.1:0 (over TLS with ALPN `h2` when `tls` is given, else
/// cleartext HTTP/2 with prior knowledge) announcing ENABLE_CONNECT_PROTOCOL. `/echo`
/// accepts WebSockets (selecting `chat` when offered) and echoes; each server-side stream
/// is reported on the channel once upgraded.
async fn server(tls: Option<TlsAcceptor>) -> (String, mpsc::UnboundedReceiver<WebSocketStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let tx = tx.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        let Ok(stream) = tls.accept(tcp).await else {
                            return;
                        };
                        let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
                        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "ALPN picks h2");
                        serve_h2(stream, tx, true).await;
                    }
                    None => serve_h2(tcp, tx, false).await,
                }
            });
        }
    });
    (addr, rx)
}

async fn serve_h2<S: AsyncIo>(io: S, tx: mpsc::UnboundedSender<WebSocketStream>, secure: bool) {
    let service = service_fn(move |request| {
        let tx = tx.clone();
        async move { Ok::<_, Infallible>(route(request, tx, secure)) }
    });
    let _ = http2::Builder::new(TokioExecutor::new())
        .enable_connect_protocol()
        .serve_connection(TokioIo::new(io), service)
        .await;
}

fn route(
    mut request: Request<Incoming>,
    tx: mpsc::UnboundedSender<WebSocketStream>,
    secure: bool,
) -> Response<Body> {
    assert_eq!(request.version(), http::Version::HTTP_2);
    let mut upgrade = match HyperUpgrade::from_request(&mut request) {
        Ok(upgrade) => upgrade,
        Err(e) => return error_response(&e),
    };
    assert!(upgrade.is_http2());
    if secure {
        upgrade.set_secure(true);
    }
    if upgrade.request().resource.split('?').next() != Some("/echo") {
        let mut response = Response::new(Body::from("no such endpoint\n"));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return response;
    }
    let protocol = upgrade
        .request()
        .protocols
        .iter()
        .find(|p| *p == "chat")
        .cloned();
    let (response, upgrading) = upgrade
        .accept(
            protocol.as_deref(),
            &HeaderMap::new(),
            ServerOptions::default(),
        )
        .unwrap();
    tokio::spawn(async move {
        let wss = upgrading.await.expect("the stream is handed over");
        let _ = tx.send(wss.clone());
        let info = wss.opened().await.unwrap();
        let (mut reader, mut writer) = (
            info.readable.get_reader().unwrap(),
            info.writable.get_writer().unwrap(),
        );
        while let Ok(Some(message)) = reader.read().await {
            if writer.write(message).await.is_err() {
                break;
            }
        }
    });
    response
}

#[tokio::test]
async fn the_settings_allow_extended_connect_and_the_200_carries_the_negotiation() {
    let (addr, mut streams) = server(None).await;
    let mut h2 = H2Connection::cleartext(&addr).await;
    assert!(h2.extended_connect_enabled());
    let mut stream = h2
        .websocket(
            "/echo",
            &[
                ("sec-websocket-protocol", "superchat, chat"),
                ("sec-websocket-extensions", "permessage-deflate"),
            ],
        )
        .await;
    let response = &stream.response;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["sec-websocket-protocol"], "chat");
    assert!(
        response.headers()["sec-websocket-extensions"]
            .to_str()
            .unwrap()
            .starts_with("permessage-deflate")
    );
    assert!(!response.headers().contains_key("sec-websocket-accept"));

    let wss = within(streams.recv()).await.unwrap();
    assert_eq!(wss.url(), format!("ws://{addr}/echo"));
    let info = wss.opened().await.unwrap();
    assert_eq!(info.protocol, "chat");
    assert!(info.extensions.starts_with("permessage-deflate"));
    assert_eq!(info.http_version(), http::Version::HTTP_2);
    let sent = info.response();
    assert_eq!(sent.status(), StatusCode::OK);
    assert_eq!(sent.version(), http::Version::HTTP_2);
    assert_eq!(sent.headers()["sec-websocket-protocol"], "chat");
    assert!(!sent.headers().contains_key("sec-websocket-accept"));

    stream.close(1000, "done").await;
    let closed = within(wss.closed()).await.unwrap();
    assert_eq!(closed.close_code, Some(1000));
    h2.driver.abort();
}

#[tokio::test]
async fn over_tls_alpn_h2_carries_websockets() {
    let ca = Ca::new("wsstream test CA");
    let leaf = ca.server(&["localhost", "127.0.0.1"]);
    let mut config = (*leaf.server_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let (addr, mut streams) = server(Some(TlsAcceptor::new(Arc::new(config)))).await;
    let mut h2 = H2Connection::tls(&addr, ca.cert_der(), "localhost").await;
    assert!(h2.extended_connect_enabled());
    let mut one = h2.websocket("/echo", &[]).await;
    let mut two = h2.websocket("/echo", &[]).await;
    assert_eq!(one.response.status(), StatusCode::OK);
    let wss = [
        within(streams.recv()).await.unwrap(),
        within(streams.recv()).await.unwrap(),
    ];
    for wss in &wss {
        assert_eq!(wss.url(), format!("wss://{addr}/echo"));
    }
    one.echoes("one").await;
    two.echoes("two").await;
    one.close(1000, "").await;
    two.echoes("two again").await;
    two.close(1001, "going").await;
    for wss in &wss {
        within(wss.closed()).await.unwrap();
    }
    h2.driver.abort();
}

#[tokio::test]
async fn a_close_ends_one_stream_a_reset_fails_another_and_the_third_keeps_echoing() {
    let (addr, mut streams) = server(None).await;
    let mut h2 = H2Connection::cleartext(&addr).await;
    let mut closing = h2.websocket("/echo", &[]).await;
    let closing_wss = within(streams.recv()).await.unwrap();
    let mut reset = h2.websocket("/echo", &[]).await;
    let reset_wss = within(streams.recv()).await.unwrap();
    let mut cancelled = h2.websocket("/echo", &[]).await;
    let cancelled_wss = within(streams.recv()).await.unwrap();
    let mut living = h2.websocket("/echo", &[]).await;
    let living_wss = within(streams.recv()).await.unwrap();
    for (i, stream) in [&mut closing, &mut reset, &mut cancelled, &mut living]
        .into_iter()
        .enumerate()
    {
        assert_eq!(stream.response.status(), StatusCode::OK);
        stream.echoes(&format!("hello {i}")).await;
    }

    // A WebSocket close: the server answers Close and ends its side of the stream.
    closing.close(1000, "bye").await;
    let closed = within(closing_wss.closed()).await.unwrap();
    assert_eq!(closed.close_code, Some(1000));
    assert_eq!(closed.reason, "bye");
    living.echoes("after a close").await;

    // RST_STREAM with an error code: an unclean close naming the reset.
    reset.send.send_reset(Reason::INTERNAL_ERROR);
    let error = within(reset_wss.closed()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(1006));
    let chain = error_chain(&error).join(": ");
    assert!(chain.contains("internal error"), "{chain}");
    living.echoes("after a reset").await;

    // RST_STREAM(CANCEL): hyper reports it as the end of the stream; still unclean.
    cancelled.send.send_reset(Reason::CANCEL);
    let error = within(cancelled_wss.closed()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(1006));
    living.echoes("after a cancel").await;

    // The connection itself goes: the last stream closes uncleanly too.
    h2.driver.abort();
    drop((h2, living));
    let error = within(living_wss.closed()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(1006));
}

/// The server closes: its Close goes out on the stream, the client answers, and the
/// server ends the stream (END_STREAM); the connection's other stream goes on.
#[tokio::test]
async fn a_close_by_the_server_ends_only_its_stream() {
    let (addr, mut streams) = server(None).await;
    let mut h2 = H2Connection::cleartext(&addr).await;
    let mut closed_by_server = h2.websocket("/echo", &[]).await;
    let wss = within(streams.recv()).await.unwrap();
    let mut other = h2.websocket("/echo", &[]).await;
    closed_by_server.echoes("before").await;
    wss.close(WebSocketCloseInfo {
        close_code: Some(4000),
        reason: "server done".into(),
    })
    .unwrap();
    let close = closed_by_server.read().await.expect("the server's Close");
    assert_eq!(close.close_code(), Some(4000));
    assert_eq!(close.close_reason(), b"server done");
    closed_by_server.write(Frame::close(Some(4000), ""));
    assert!(
        closed_by_server.read().await.is_none(),
        "END_STREAM after the Close handshake"
    );
    let closed = within(wss.closed()).await.unwrap();
    assert_eq!(closed.close_code, Some(4000));
    other.echoes("the other stream goes on").await;
    other.close(1000, "").await;
    h2.driver.abort();
}

#[tokio::test]
async fn wrong_requests_over_http2_get_400() {
    let (addr, _streams) = server(None).await;
    let mut h2 = H2Connection::cleartext(&addr).await;
    // A plain GET on the WebSocket endpoint.
    let get = Request::get(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    let (response, _) = h2.request(get).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.headers().contains_key("connection"));
    // An extended CONNECT with the wrong version, and with none.
    for version in [Some("8"), None] {
        let mut request = Request::builder()
            .method(http::Method::CONNECT)
            .uri(format!("http://{addr}/echo"));
        if let Some(version) = version {
            request = request.header("sec-websocket-version", version);
        }
        let mut request = request.body(()).unwrap();
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let (response, _) = h2.request(request).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{version:?}");
        assert_eq!(response.headers()["sec-websocket-version"], "13");
    }
    // An extended CONNECT for another protocol.
    let mut request = Request::builder()
        .method(http::Method::CONNECT)
        .uri(format!("http://{addr}/echo"))
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap();
    request
        .extensions_mut()
        .insert(h2::ext::Protocol::from_static("connect-udp"));
    let (response, body) = h2.request(request).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("RFC 8441"), "{text}");
    h2.driver.abort();
}

/// Runs the Node.js client against `url` (with `mode`, `streams` or `goaway`) until it
/// exits, and returns the server side of the streams it opened (`count` of them), in
/// the order of their `?n=` query; `None` when `node` is not installed (outside CI).
async fn run_node(
    url: &str,
    mode: &str,
    count: usize,
    streams: &mut mpsc::UnboundedReceiver<WebSocketStream>,
) -> Option<Vec<WebSocketStream>> {
    if !node::available("the Node.js HTTP/2 client test") {
        return None;
    }
    let mut child = tokio::process::Command::new("node")
        .arg(node::h2_websocket_client())
        .arg(url)
        .arg(mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let pid = child.id();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = child.stderr.take().unwrap();
    let stderr = tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = String::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let mut output = Vec::new();
    let mut server_side = Vec::new();
    let run = async {
        while server_side.len() < count {
            server_side.push(streams.recv().await.unwrap());
        }
        while let Some(line) = stdout.next_line().await.unwrap() {
            output.push(line);
        }
        child.wait().await.unwrap()
    };
    let Ok(status) = tokio::time::timeout(Duration::from_secs(30), run).await else {
        // Stop the client we started (by its PID) before failing.
        let _ = child.start_kill();
        panic!("the node client (pid {pid:?}) hung; output so far: {output:?}");
    };
    let stderr = stderr.await.unwrap();
    assert!(
        status.success(),
        "node failed ({status}): stdout {output:?}, stderr:\n{stderr}"
    );
    assert!(output.iter().any(|l| l == "ok"), "{output:?}\n{stderr}");
    server_side.sort_by_key(|wss| wss.url().to_owned());
    Some(server_side)
}

/// Runs the Node.js client against `url` and checks the server side of its three
/// streams: the one it closes with a WebSocket Close ends cleanly (1000), the one it
/// resets ends with 1006, the third one echoes to the end and closes cleanly.
async fn node_client(url: String, mut streams: mpsc::UnboundedReceiver<WebSocketStream>) {
    let Some(server_side) = run_node(&url, "streams", 3, &mut streams).await else {
        return;
    };
    // `?n=1` was closed, `?n=2` reset, `?n=3` kept.
    let mut results = Vec::new();
    for wss in &server_side {
        results.push(within(wss.closed()).await);
    }
    let closed = results[0].as_ref().expect("the closed stream ends cleanly");
    assert_eq!(closed.close_code, Some(1000));
    assert_eq!(closed.reason, "bye");
    let reset = results[1].as_ref().expect_err("the reset stream fails");
    assert_eq!(reset.close_code(), Some(1006));
    // Node ends its side of the stream (END_STREAM) before it sends the RST_STREAM, so the
    // server reads the end of the stream first: closed without a closing handshake. (The
    // `h2` client test above resets without ending, and the cause names the reset.)
    let chain = error_chain(reset).join(": ");
    assert!(chain.contains("without a closing handshake"), "{chain}");
    let kept = results[2].as_ref().expect("the third stream ends cleanly");
    assert_eq!(kept.close_code, Some(1000));
    assert_eq!(kept.reason, "done");
}

#[tokio::test]
async fn a_node_http2_client_over_tls_shares_one_connection_between_three_websockets() {
    let leaf = Ca::new("wsstream test CA").server(&["localhost", "127.0.0.1"]);
    let mut config = (*leaf.server_config()).clone();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let (addr, streams) = server(Some(TlsAcceptor::new(Arc::new(config)))).await;
    node_client(format!("https://{addr}/echo"), streams).await;
}

#[tokio::test]
async fn a_node_http2_client_with_prior_knowledge_shares_one_connection_between_three_websockets() {
    let (addr, streams) = server(None).await;
    node_client(format!("http://{addr}/echo"), streams).await;
}

#[tokio::test]
async fn a_goaway_with_an_error_fails_every_websocket_of_the_connection_with_1006() {
    let (addr, mut streams) = server(None).await;
    let url = format!("http://{addr}/echo");
    let Some(server_side) = run_node(&url, "goaway", 2, &mut streams).await else {
        return;
    };
    // The cause in `source()` is what hyper's stream reports once the connection is gone
    // (Node resets its streams as it destroys the session): a transport error.
    for wss in &server_side {
        let error = within(wss.closed()).await.unwrap_err();
        assert_eq!(error.close_code(), Some(1006));
        let chain = error_chain(&error).join(": ");
        assert!(chain.contains("transport error"), "{chain}");
    }
}

/// The axum extractor on an HTTP/2 connection served by `axum::serve` (which announces
/// ENABLE_CONNECT_PROTOCOL): the route takes CONNECT (`any`), and one handler serves the
/// page to a GET and the WebSocket to an extended CONNECT.
#[cfg(feature = "axum")]
mod axum_route {
    use axum::Router;
    use axum::response::{IntoResponse, Response};
    use axum::routing::any;
    use wsstream::server::axum::WebSocketUpgrade;

    use super::*;

    async fn echo(
        ws: Option<WebSocketUpgrade>,
        axum::extract::State(tx): axum::extract::State<mpsc::UnboundedSender<WebSocketStream>>,
    ) -> Response {
        let Some(ws) = ws else {
            return "a page, not a WebSocket".into_response();
        };
        ws.select_protocol(&["chat"])
            .on_upgrade(ServerOptions::default(), |wss| async move {
                let _ = tx.send(wss.clone());
                let info = wss.opened().await.unwrap();
                let (mut reader, mut writer) = (
                    info.readable.get_reader().unwrap(),
                    info.writable.get_writer().unwrap(),
                );
                while let Ok(Some(message)) = reader.read().await {
                    if writer.write(message).await.is_err() {
                        break;
                    }
                }
            })
    }

    #[tokio::test]
    async fn an_axum_route_accepts_a_websocket_over_http2() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, mut streams) = mpsc::unbounded_channel();
        let app = Router::new().route("/echo", any(echo)).with_state(tx);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let mut h2 = H2Connection::cleartext(&addr).await;
        assert!(h2.extended_connect_enabled());
        let mut stream = h2
            .websocket("/echo", &[("sec-websocket-protocol", "chat")])
            .await;
        assert_eq!(stream.response.status(), StatusCode::OK);
        assert_eq!(stream.response.headers()["sec-websocket-protocol"], "chat");
        let wss = within(streams.recv()).await.unwrap();
        let info = wss.opened().await.unwrap();
        assert_eq!(info.http_version(), http::Version::HTTP_2);
        assert_eq!(info.protocol, "chat");
        stream.echoes("over axum").await;

        // The same route answers a plain GET on the same connection.
        let get = Request::get(format!("http://{addr}/echo"))
            .body(())
            .unwrap();
        let (response, body) = h2.request(get).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body, b"a page, not a WebSocket");

        stream.close(1000, "bye").await;
        assert_eq!(within(wss.closed()).await.unwrap().close_code, Some(1000));
        h2.driver.abort();
    }
}
