//! The Rust-only options of `WebSocketStreamOptions` against real local servers: request
//! headers and the default User-Agent, the handshake timeout, keepalive pings, TCP
//! keepalive and redirects.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use wsstream::server::{self, ServerOptions, TlsAcceptor};
use wsstream::{
    ConnectError, DEFAULT_PING_TIMEOUT, DEFAULT_USER_AGENT, Message, RedirectError,
    WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions,
};
use wsstream_proto::handshake::HandshakeError;
use wsstream_test_support::certs::Ca;
use wsstream_test_support::frames::parse_frames;

const DEADLINE: Duration = Duration::from_secs(10);

/// What a test server saw of one upgrade request.
#[derive(Debug)]
struct Seen {
    resource: String,
    headers: Vec<(String, String)>,
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Decides per resource: `Some((status, location))` redirects, `None` accepts and echoes.
type Routes = Arc<dyn Fn(&str) -> Option<(u16, String)> + Send + Sync>;

/// A server (over TLS with `tls`) that redirects or echoes as `routes` says, and
/// reports every request.
async fn server(tls: Option<TlsAcceptor>, routes: Routes) -> (u16, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (tx, tls, routes) = (tx.clone(), tls.clone(), routes.clone());
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        let Ok(upgrade) = server::read_request_tls(tcp, &tls).await else {
                            return;
                        };
                        serve(upgrade, &tx, &routes).await;
                    }
                    None => {
                        let Ok(upgrade) = server::read_request(tcp).await else {
                            return;
                        };
                        serve(upgrade, &tx, &routes).await;
                    }
                }
            });
        }
    });
    (port, rx)
}

async fn serve<S: wsstream::AsyncIo>(
    upgrade: server::UpgradeRequest<S>,
    tx: &mpsc::UnboundedSender<Seen>,
    routes: &Routes,
) {
    let request = upgrade.request();
    let resource = request.resource.clone();
    let _ = tx.send(Seen {
        resource: resource.clone(),
        headers: request
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect(),
    });
    if let Some((status, location)) = routes(&resource) {
        let (mut io, _) = upgrade.into_parts();
        let response =
            format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n");
        let _ = io.write_all(response.as_bytes()).await;
        let _ = io.shutdown().await;
        return;
    }
    let Ok(wss) = upgrade.accept(None, ServerOptions::default()).await else {
        return;
    };
    let Ok(info) = wss.opened().await else { return };
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
    let _ = wss.closed().await;
}

fn echo_only() -> Routes {
    Arc::new(|_| None)
}

async fn echo_once(wss: &WebSocketStream) {
    let info = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    let mut reader = info.readable.get_reader().unwrap();
    let mut writer = info.writable.get_writer().unwrap();
    writer.write("hi").await.unwrap();
    assert_eq!(reader.read().await.unwrap(), Some(Message::from("hi")));
    reader.release_lock();
    writer.release_lock();
}

fn chain(error: &(dyn Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(e) = next {
        out.push_str("\n  ");
        out.push_str(&e.to_string());
        next = e.source();
    }
    out
}

/// Expects `opened` to fail with a WebSocketError; returns its ConnectError source (as
/// text chain and through `f`).
async fn open_failure<T>(wss: &WebSocketStream, f: impl FnOnce(&ConnectError) -> T) -> (T, String) {
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    let ws = error
        .as_websocket_error()
        .expect("a WebSocketError")
        .clone();
    let text = chain(&*ws);
    let connect = ws
        .source()
        .and_then(|s| s.downcast_ref::<ConnectError>())
        .unwrap_or_else(|| panic!("not a ConnectError: {text}"));
    (f(connect), text)
}

// ---- request headers ----

#[tokio::test]
async fn a_default_user_agent_names_wsstream_and_its_version() {
    let (port, mut seen) = server(None, echo_only()).await;
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), Default::default()).unwrap();
    echo_once(&wss).await;
    let seen = seen.recv().await.unwrap();
    assert_eq!(
        DEFAULT_USER_AGENT,
        concat!("wsstream/", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(seen.header("User-Agent"), vec![DEFAULT_USER_AGENT]);
}

#[tokio::test]
async fn extra_headers_are_sent_and_a_user_agent_given_replaces_the_default() {
    let (port, mut seen) = server(None, echo_only()).await;
    let options = WebSocketStreamOptions::default().headers(vec![
        ("user-agent".into(), "my-app/2.0".into()),
        ("Authorization".into(), "Bearer t0ken".into()),
        ("Cookie".into(), "a=1; b=2".into()),
        ("Origin".into(), "https://example.test".into()),
    ]);
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    echo_once(&wss).await;
    let seen = seen.recv().await.unwrap();
    assert_eq!(seen.header("User-Agent"), vec!["my-app/2.0"]);
    assert_eq!(seen.header("Authorization"), vec!["Bearer t0ken"]);
    assert_eq!(seen.header("Cookie"), vec!["a=1; b=2"]);
    assert_eq!(seen.header("Origin"), vec!["https://example.test"]);
}

#[tokio::test]
async fn the_protocol_headers_cannot_be_overridden() {
    let (port, _seen) = server(None, echo_only()).await;
    for name in [
        "Sec-WebSocket-Key",
        "upgrade",
        "Host",
        "Connection",
        "Sec-WebSocket-Version",
    ] {
        let options = WebSocketStreamOptions::default().headers(vec![(name.into(), "x".into())]);
        let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
        let (forbidden, text) = open_failure(&wss, |e| match e {
            ConnectError::Handshake(HandshakeError::ForbiddenHeader(n)) => Some(n.clone()),
            _ => None,
        })
        .await;
        assert_eq!(forbidden.as_deref(), Some(name), "{text}");
        assert!(text.contains(name), "{text}");
    }
}

// ---- handshake timeout ----

/// A server that accepts TCP connections and never answers.
async fn silent_server() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    (port, task)
}

#[tokio::test]
async fn handshake_timeout_fails_opened_against_a_server_that_never_answers() {
    let (port, _task) = silent_server().await;
    let options =
        WebSocketStreamOptions::default().handshake_timeout(Some(Duration::from_millis(200)));
    let started = tokio::time::Instant::now();
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    let (limit, text) = open_failure(&wss, |e| match e {
        ConnectError::Timeout(limit) => Some(*limit),
        _ => None,
    })
    .await;
    assert_eq!(limit, Some(Duration::from_millis(200)), "{text}");
    assert!(text.contains("timed out after 200ms"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let closed = wss.closed().await.unwrap_err();
    assert_eq!(closed.close_code(), Some(1006));
}

#[tokio::test]
async fn handshake_timeout_does_not_limit_an_open_connection() {
    let (port, _seen) = server(None, echo_only()).await;
    let options =
        WebSocketStreamOptions::default().handshake_timeout(Some(Duration::from_millis(100)));
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    echo_once(&wss).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo_once(&wss).await;
    wss.close(WebSocketCloseInfo::default()).unwrap();
    assert!(wss.closed().await.is_ok());
}

// ---- keepalive ----

/// A raw server: completes the upgrade by hand, then records what it receives and never
/// answers (no pongs).
async fn mute_server() -> (u16, mpsc::UnboundedReceiver<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let upgrade = server::read_request(tcp).await.unwrap();
                let response = upgrade.request().accept(None, None, &[]);
                let (mut io, leftover) = upgrade.into_parts();
                io.write_all(&response).await.unwrap();
                let mut received = leftover.to_vec();
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    received.extend_from_slice(&buf[..n]);
                    let _ = tx.send(received.clone());
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn keepalive_defaults_are_off_with_a_20_s_timeout() {
    let options = WebSocketStreamOptions::default();
    assert_eq!(options.ping_interval, None);
    assert_eq!(options.ping_timeout, DEFAULT_PING_TIMEOUT);
    assert_eq!(DEFAULT_PING_TIMEOUT, Duration::from_secs(20));
    assert_eq!(options.handshake_timeout, None);
    assert_eq!(options.tcp_keepalive, None);
    assert_eq!(options.max_redirects, 0);
}

#[tokio::test]
async fn keepalive_closes_with_1006_when_the_peer_stops_answering() {
    let (port, mut received) = mute_server().await;
    let options = WebSocketStreamOptions::default()
        .ping_interval(Some(Duration::from_millis(100)))
        .ping_timeout(Duration::from_millis(300));
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    let started = tokio::time::Instant::now();
    let error = tokio::time::timeout(DEADLINE, wss.closed())
        .await
        .unwrap()
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.close_code(), Some(1006));
    let text = chain(error.as_websocket_error().unwrap().as_ref());
    assert!(text.contains("stopped answering"), "{text}");
    // First ping after 100 ms, timeout 300 ms later.
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    // The server saw masked Ping frames.
    let mut last = Vec::new();
    while let Ok(bytes) = received.try_recv() {
        last = bytes;
    }
    let frames = parse_frames(&last);
    assert!(frames.len() >= 3, "{frames:?}");
    assert!(
        frames.iter().all(|f| f.opcode == 0x9 && f.mask.is_some()),
        "{frames:?}"
    );
}

#[tokio::test]
async fn keepalive_keeps_an_answering_connection_open() {
    let (port, _seen) = server(None, echo_only()).await;
    let options = WebSocketStreamOptions::default()
        .ping_interval(Some(Duration::from_millis(50)))
        .ping_timeout(Duration::from_millis(200));
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    echo_once(&wss).await;
    // Many intervals and timeouts pass with the application idle: the server's pongs
    // keep the connection alive.
    tokio::time::sleep(Duration::from_millis(800)).await;
    echo_once(&wss).await;
    wss.close(WebSocketCloseInfo::default()).unwrap();
    assert!(wss.closed().await.is_ok());
}

#[tokio::test]
async fn without_keepalive_a_mute_peer_is_not_pinged() {
    let (port, mut received) = mute_server().await;
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), Default::default()).unwrap();
    tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(received.try_recv().is_err(), "nothing is sent unasked");
    drop(wss);
}

// ---- TCP keepalive ----

#[tokio::test]
async fn tcp_keepalive_option_connects_and_echoes() {
    // The socket option itself is checked by a unit test in src/proxy.rs (the
    // client's socket is not reachable from here).
    let (port, _seen) = server(None, echo_only()).await;
    let options = WebSocketStreamOptions::default().tcp_keepalive(Some(Duration::from_secs(30)));
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/"), options).unwrap();
    echo_once(&wss).await;
}

// ---- redirects ----

/// Redirects `/old*` (status 302) to `location`; echoes anything else.
fn redirect_old_to(location: String) -> Routes {
    Arc::new(move |resource: &str| {
        resource
            .starts_with("/old")
            .then(|| (302, location.clone()))
    })
}

#[tokio::test]
async fn redirects_are_not_followed_by_default() {
    let (port, mut seen) = server(None, redirect_old_to("/echo".into())).await;
    let wss =
        WebSocketStream::new(&format!("ws://127.0.0.1:{port}/old"), Default::default()).unwrap();
    let (status, text) = open_failure(&wss, |e| match e {
        ConnectError::Handshake(HandshakeError::Status { status, .. }) => Some(*status),
        _ => None,
    })
    .await;
    assert_eq!(status, Some(302), "{text}");
    assert_eq!(seen.recv().await.unwrap().resource, "/old");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(seen.try_recv().is_err(), "the Location was requested");
}

#[tokio::test]
async fn redirects_are_followed_up_to_max_redirects_with_relative_locations() {
    // /a → /b (relative "b") → /echo, each hop a different status.
    let routes: Routes = Arc::new(|resource: &str| match resource {
        "/a" => Some((301, "b".to_owned())),
        "/b" => Some((308, "/echo?x=1#dropped".to_owned())),
        _ => None,
    });
    let (port, mut seen) = server(None, routes).await;
    let url = format!("ws://127.0.0.1:{port}/a");
    let options = WebSocketStreamOptions::default()
        .max_redirects(2)
        .protocols(Vec::new());
    let wss = WebSocketStream::new(&url, options).unwrap();
    echo_once(&wss).await;
    assert_eq!(wss.url(), url, "url() stays the one given");
    let resources: Vec<String> = [
        seen.recv().await.unwrap(),
        seen.recv().await.unwrap(),
        seen.recv().await.unwrap(),
    ]
    .into_iter()
    .map(|s| s.resource)
    .collect();
    assert_eq!(resources, ["/a", "/b", "/echo?x=1"]);

    // One redirect fewer than needed: too many.
    let options = WebSocketStreamOptions::default().max_redirects(1);
    let wss = WebSocketStream::new(&url, options).unwrap();
    let (error, text) = open_failure(&wss, |e| match e {
        ConnectError::Redirect(e) => Some(e.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(error, Some(RedirectError::TooMany { max: 1, .. })),
        "{text}"
    );
    assert!(text.contains("too many redirects"), "{text}");
}

#[tokio::test]
async fn redirects_to_another_origin_drop_credentials_but_keep_other_headers() {
    let (target_port, mut target_seen) = server(None, echo_only()).await;
    let (port, mut seen) = server(
        None,
        redirect_old_to(format!("http://127.0.0.1:{target_port}/echo")),
    )
    .await;
    let options = WebSocketStreamOptions::default()
        .max_redirects(1)
        .headers(vec![
            ("Authorization".into(), "Bearer secret".into()),
            ("Cookie".into(), "s=1".into()),
            ("Origin".into(), "https://app.test".into()),
        ]);
    let wss = WebSocketStream::new(&format!("ws://127.0.0.1:{port}/old"), options).unwrap();
    echo_once(&wss).await;
    let first = seen.recv().await.unwrap();
    assert_eq!(first.header("Authorization"), vec!["Bearer secret"]);
    let second = target_seen.recv().await.unwrap();
    assert_eq!(second.resource, "/echo");
    assert!(second.header("Authorization").is_empty());
    assert!(second.header("Cookie").is_empty());
    assert_eq!(second.header("Origin"), vec!["https://app.test"]);
    assert_eq!(second.header("User-Agent"), vec![DEFAULT_USER_AGENT]);
}

#[tokio::test]
async fn a_redirect_from_wss_to_ws_is_never_followed() {
    let ca = Ca::new("wsstream test CA");
    let (plain_port, mut plain_seen) = server(None, echo_only()).await;
    let (port, mut seen) = server(
        Some(ca.server(&["localhost"]).acceptor()),
        redirect_old_to(format!("ws://localhost:{plain_port}/")),
    )
    .await;
    let mut tls = wsstream::TlsOptions::default();
    tls.add_root_pem(ca.cert_pem().as_bytes()).unwrap();
    let options = WebSocketStreamOptions::default().max_redirects(5).tls(tls);
    let wss = WebSocketStream::new(&format!("wss://localhost:{port}/old"), options).unwrap();
    let (error, text) = open_failure(&wss, |e| match e {
        ConnectError::Redirect(e) => Some(e.clone()),
        _ => None,
    })
    .await;
    assert!(
        matches!(error, Some(RedirectError::Downgrade { .. })),
        "{text}"
    );
    assert!(text.contains("from wss to ws"), "{text}");
    assert_eq!(seen.recv().await.unwrap().resource, "/old");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        plain_seen.try_recv().is_err(),
        "the ws:// location was requested"
    );
}
