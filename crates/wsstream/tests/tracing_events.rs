//! The `tracing` events of a connection, captured by a recording subscriber: the close
//! (code, reason, clean), a protocol violation (the code sent), a failed handshake; and the
//! connection's span (role and peer address), over HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use wsstream::server::{self, ServerOptions};
use wsstream::{WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};
use wsstream_test_support::frames::Frame;
use wsstream_test_support::hostile::{ScriptedPeer, serve_once};

/// One event: its level and fields (`message` included), as strings.
#[derive(Clone, Debug)]
struct Recorded {
    level: tracing::Level,
    fields: BTreeMap<String, String>,
}

impl Recorded {
    fn message(&self) -> &str {
        self.fields.get("message").map_or("", String::as_str)
    }
}

/// A subscriber that records every event, and the fields of every span.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
    spans: Arc<AtomicU64>,
    span_fields: Arc<Mutex<HashMap<u64, BTreeMap<String, String>>>>,
}

impl Recorder {
    fn events(&self, message: &str) -> Vec<Recorded> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.message() == message)
            .cloned()
            .collect()
    }

    /// The fields of the `wsstream` connection spans with `role` recorded as `role`.
    fn connection_spans(&self, role: &str) -> Vec<BTreeMap<String, String>> {
        self.span_fields
            .lock()
            .unwrap()
            .values()
            .filter(|fields| fields.get("role").map(String::as_str) == Some(role))
            .cloned()
            .collect()
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attributes: &Attributes<'_>) -> Id {
        let id = self.spans.fetch_add(1, Ordering::Relaxed) + 1;
        let mut fields = BTreeMap::new();
        attributes.record(&mut Fields(&mut fields));
        self.span_fields.lock().unwrap().insert(id, fields);
        Id::from_u64(id)
    }
    fn record(&self, id: &Id, values: &Record<'_>) {
        if let Some(fields) = self.span_fields.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.events.lock().unwrap().push(Recorded {
            level: *event.metadata().level(),
            fields,
        });
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

async fn within<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("hung")
}

#[tokio::test(flavor = "current_thread")]
async fn a_clean_close_is_an_event_with_its_code_and_reason() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let wss = server::accept(tcp, ServerOptions::default()).await.unwrap();
        wss.closed().await.unwrap()
    });
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    within(wss.opened()).await.unwrap();
    wss.close(WebSocketCloseInfo {
        close_code: Some(4000),
        reason: "bye".into(),
    })
    .unwrap();
    within(wss.closed()).await.unwrap();
    within(server).await.unwrap();
    let closed = recorder.events("closed");
    assert_eq!(closed.len(), 2, "one per end: {closed:?}");
    for event in &closed {
        assert_eq!(event.level, tracing::Level::INFO);
        assert_eq!(event.fields["code"], "4000");
        assert_eq!(event.fields["reason"], "bye");
        assert_eq!(event.fields["clean"], "true");
    }
    assert_eq!(recorder.events("opened").len(), 2);
}

#[tokio::test(flavor = "current_thread")]
async fn a_protocol_violation_is_an_event_with_the_code_sent() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let server = serve_once(|mut peer: ScriptedPeer| async move {
        peer.accept().await?;
        // RSV2 without an extension: the client fails the connection with 1002.
        peer.send_frame(&Frame::text("bad").rsv(0b010)).await?;
        peer.read_until_close(Duration::from_secs(10)).await
    })
    .await
    .unwrap();
    let wss = WebSocketStream::new(&server.url(), WebSocketStreamOptions::default()).unwrap();
    within(wss.opened()).await.unwrap();
    let error = within(wss.closed()).await.unwrap_err();
    assert_eq!(error.close_code(), Some(1006));
    server.finish().await.unwrap();
    let violations = recorder.events("protocol violation");
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].level, tracing::Level::WARN);
    assert_eq!(violations[0].fields["code"], "1002");
    let closed = recorder.events("closed");
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].fields["clean"], "false");
    assert!(closed[0].fields["cause"].contains("violated"), "{closed:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn a_failed_handshake_is_an_event() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    drop(listener);
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    assert!(within(wss.opened()).await.is_err());
    let failed = recorder.events("handshake failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].fields["error"].contains("connection failed"),
        "{failed:?}"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn the_connection_span_names_the_role_and_the_peer() {
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    let url = format!("ws://{server_addr}/path?token=secret");
    let server = tokio::spawn(async move {
        let (tcp, client_addr) = listener.accept().await.unwrap();
        let wss = server::accept(tcp, ServerOptions::default()).await.unwrap();
        wss.closed().await.unwrap();
        client_addr
    });
    let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default()).unwrap();
    within(wss.opened()).await.unwrap();
    wss.close(WebSocketCloseInfo::default()).unwrap();
    within(wss.closed()).await.unwrap();
    let client_addr = within(server).await.unwrap();
    let clients = recorder.connection_spans("client");
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(clients[0]["peer"], server_addr.to_string());
    // The query may carry secrets: the span's URL leaves it out.
    assert_eq!(clients[0]["url"], format!("ws://{server_addr}/path"));
    let servers = recorder.connection_spans("server");
    assert_eq!(servers.len(), 1, "{servers:?}");
    assert_eq!(servers[0]["peer"], client_addr.to_string());
}

/// A WebSocket over HTTP/2 names the address of the HTTP/2 connection it rides on.
#[cfg(all(feature = "http2", feature = "hyper"))]
#[tokio::test(flavor = "current_thread")]
async fn the_connection_span_of_a_websocket_over_http2_names_the_peer() {
    use wsstream_test_support::wpt::{WptServer, http2_client_options};
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let server = WptServer::start_http2().await.unwrap();
    let wss = WebSocketStream::new(&server.echo_url(), http2_client_options()).unwrap();
    let info = within(wss.opened()).await.unwrap();
    assert_eq!(info.http_version(), http::Version::HTTP_2);
    wss.close(WebSocketCloseInfo::default()).unwrap();
    within(wss.closed()).await.unwrap();
    let clients = recorder.connection_spans("client");
    assert_eq!(clients.len(), 1, "{clients:?}");
    assert_eq!(clients[0]["peer"], server.local_addr().to_string());
}

/// An upgrade over I/O with no address of its own (TLS, an HTTP/2 stream, a pipe) names
/// the peer the application tells.
#[tokio::test(flavor = "current_thread")]
async fn an_http_upgrade_names_the_peer_it_is_told() {
    use wsstream::server::HttpUpgrade;
    let recorder = Recorder::default();
    let _guard = tracing::subscriber::set_default(recorder.clone());
    let request = http::Request::get("/chat")
        .header("Host", "example.com")
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("Sec-WebSocket-Version", "13")
        .body(())
        .unwrap();
    let peer: std::net::SocketAddr = "192.0.2.7:50123".parse().unwrap();
    for told in [None, Some(peer)] {
        let mut upgrade = HttpUpgrade::from_request(&request).unwrap();
        if let Some(peer) = told {
            upgrade.set_peer_addr(peer);
        }
        let (_, accepted) = upgrade
            .accept(None, &http::HeaderMap::new(), ServerOptions::default())
            .unwrap();
        let (io, _client_end) = tokio::io::duplex(1024);
        let wss = accepted.into_stream(io);
        within(wss.opened()).await.unwrap();
        wss.close(WebSocketCloseInfo::default()).unwrap();
    }
    let servers = recorder.connection_spans("server");
    assert_eq!(servers.len(), 2, "{servers:?}");
    let peers: Vec<Option<&String>> = servers.iter().map(|s| s.get("peer")).collect();
    assert!(peers.contains(&None), "{peers:?}");
    assert!(peers.contains(&Some(&peer.to_string())), "{peers:?}");
}
