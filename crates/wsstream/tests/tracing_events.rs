//! The `tracing` events of a connection, captured by a recording subscriber: the close
//! (code, reason, clean), a protocol violation (the code sent), a failed handshake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
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

/// A subscriber that records every event.
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
    spans: Arc<AtomicU64>,
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
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.spans.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
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
