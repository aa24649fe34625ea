//! WebSockets over HTTP/2 (RFC 8441), the client side, against servers nobody here wrote:
//! Node.js's built-in `http2` module (a small echo script in `tests/support/`, TLS with
//! ALPN h2 and cleartext h2c) and Python's Hypercorn (an ASGI echo app).
//!
//! Needs `node` and `python3` with `hypercorn` (`python3 -m pip install hypercorn`). When
//! one is missing a test prints why and passes, except under `CI`, where it fails.
#![allow(clippy::unwrap_used)]

use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wsstream::{
    ConnectError, Http2ErrorKind, HttpVersionPreference, Message, WebSocketCloseInfo,
    WebSocketStream, WebSocketStreamOptions, http,
};
use wsstream_test_support::certs::Ca;

const DEADLINE: Duration = Duration::from_secs(10);

fn support(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(file)
}

/// Whether `program args` runs; when not, a test skips (and fails under `CI`).
fn available(program: &str, args: &[&str], what: &str) -> bool {
    let ok = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        // CI installs node and hypercorn: there, a missing one is a failure, not a skip.
        assert!(
            std::env::var_os("CI").is_none(),
            "{what} is required for the HTTP/2 client tests in CI"
        );
        eprintln!("note: {what} is not installed: this HTTP/2 client test is skipped");
    }
    ok
}

fn node_available() -> bool {
    available("node", &["--version"], "node")
}

fn hypercorn_available() -> bool {
    available(
        "python3",
        &["-c", "import hypercorn"],
        "hypercorn (python3 -m pip install hypercorn)",
    )
}

/// A test CA, and a server certificate for 127.0.0.1 written to files for the peers.
struct Certs {
    ca: Ca,
    dir: PathBuf,
}

impl Certs {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let ca = Ca::new("wsstream http2 test CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("wsstream-h2-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join("key.pem"), &leaf.key_pem).unwrap();
        Self { ca, dir }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--cert".into(),
            self.dir.join("cert.pem").display().to_string(),
            "--key".into(),
            self.dir.join("key.pem").display().to_string(),
        ]
    }

    /// Options trusting the test CA.
    fn options(&self) -> WebSocketStreamOptions {
        let mut tls = wsstream::TlsOptions::default();
        tls.add_root_pem(self.ca.cert_pem().as_bytes()).unwrap();
        WebSocketStreamOptions::default().tls(tls)
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A server process of a peer, killed (by its PID, through `Child`) on drop; its stdout
/// lines collected.
struct Peer {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    port: u16,
}

impl Peer {
    fn spawn(program: &str, args: &[String]) -> Self {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        let mut peer = Self {
            child,
            lines,
            port: 0,
        };
        let line = peer.wait_line(|l| l.starts_with("PORT "));
        peer.port = line["PORT ".len()..].trim().parse().unwrap();
        peer
    }

    fn node(args: &[String]) -> Self {
        let mut all = vec![support("h2_ws_server.js").display().to_string()];
        all.extend_from_slice(args);
        Self::spawn("node", &all)
    }

    fn hypercorn(args: &[String]) -> Self {
        let mut all = vec![support("hypercorn_ws_echo.py").display().to_string()];
        all.extend_from_slice(args);
        Self::spawn("python3", &all)
    }

    /// The first line so far that `matches`, waiting for it (blocking; the tests call it
    /// between awaits, and the peer runs in its own process).
    fn wait_line(&self, matches: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| matches(l)) {
                return line.clone();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no such line from the peer; it printed {:?}",
                self.lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Asserts that the Node server has accepted exactly `n` TCP connections (its lines
    /// arrive through a pipe, a moment after the event).
    fn assert_connections(&self, n: usize) {
        self.wait_line(|l| l == format!("connection {n}"));
        std::thread::sleep(Duration::from_millis(50));
        let count = self
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with("connection "))
            .count();
        assert_eq!(count, n, "TCP connections accepted by the server");
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error and its sources, joined.
fn chain(e: &(dyn Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(source) = next {
        out.push_str(": ");
        out.push_str(&source.to_string());
        next = source.source();
    }
    out
}

/// The error and its sources.
fn sources<'a>(e: &'a (dyn Error + 'static)) -> Vec<&'a (dyn Error + 'static)> {
    let mut all = vec![e];
    let mut current = e;
    while let Some(next) = current.source() {
        all.push(next);
        current = next;
    }
    all
}

/// Opens `url` with `options` and expects `opened` to fail: the HTTP/2 error's kind when
/// the `ConnectError` behind it is one, and the whole chain of errors, joined.
async fn open_fails(
    url: &str,
    options: WebSocketStreamOptions,
) -> (Option<Http2ErrorKind>, String) {
    let wss = WebSocketStream::new(url, options).unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    let ws_error = error.as_websocket_error().unwrap();
    let connect = sources(&**ws_error)
        .into_iter()
        .find_map(|e| e.downcast_ref::<ConnectError>());
    let kind = match connect {
        Some(ConnectError::Http2(h2)) => Some(h2.kind()),
        _ => None,
    };
    (kind, chain(&**ws_error))
}

struct Open {
    wss: WebSocketStream,
    reader: wsstream::WebSocketReader,
    writer: wsstream::WebSocketWriter,
    info_version: http::Version,
    status: http::StatusCode,
    headers: http::HeaderMap,
    protocol: String,
    extensions: String,
}

async fn open(url: &str, options: WebSocketStreamOptions) -> Open {
    let wss = WebSocketStream::new(url, options).unwrap();
    let info = match tokio::time::timeout(DEADLINE, wss.opened()).await.unwrap() {
        Ok(info) => info,
        Err(e) => panic!(
            "opening {url} failed: {}",
            chain(&**e.as_websocket_error().unwrap())
        ),
    };
    Open {
        info_version: info.http_version(),
        status: info.response().status(),
        headers: info.response().headers().clone(),
        protocol: info.protocol.clone(),
        extensions: info.extensions.clone(),
        reader: info.readable.get_reader().unwrap(),
        writer: info.writable.get_writer().unwrap(),
        wss,
    }
}

impl Open {
    async fn echo(&mut self, message: Message) {
        self.writer.write(message.clone()).await.unwrap();
        let back = tokio::time::timeout(DEADLINE, self.reader.read())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, message);
    }

    async fn close_cleanly(&self) {
        self.wss
            .close(WebSocketCloseInfo {
                close_code: Some(1000),
                reason: "bye".into(),
            })
            .unwrap();
        let info = tokio::time::timeout(DEADLINE, self.wss.closed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.close_code, Some(1000));
    }
}

fn text(s: &str) -> Message {
    Message::from(s)
}

fn binary(len: usize) -> Message {
    Message::from((0..len).map(|i| (i % 251) as u8).collect::<Vec<u8>>())
}

#[tokio::test]
async fn node_wss_echoes_text_and_binary_over_http2() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let url = format!("wss://127.0.0.1:{}/echo?x=1", node.port);
    let mut ws = open(
        &url,
        certs
            .options()
            .protocols(vec!["chat".into(), "superchat".into()])
            .headers(vec![("Authorization".into(), "Bearer t0ken".into())]),
    )
    .await;
    assert_eq!(ws.info_version, http::Version::HTTP_2);
    assert_eq!(ws.status, http::StatusCode::OK);
    assert_eq!(ws.protocol, "chat");
    // The extended CONNECT carried the usual headers, and no Sec-WebSocket-Key.
    let seen = |name: &str| ws.headers[name].to_str().unwrap().to_owned();
    assert_eq!(seen("x-seen-scheme"), "https");
    assert_eq!(seen("x-seen-authority"), format!("127.0.0.1:{}", node.port));
    assert_eq!(seen("x-seen-user-agent"), wsstream::DEFAULT_USER_AGENT);
    assert_eq!(seen("x-seen-authorization"), "Bearer t0ken");
    assert!(seen("x-seen-extensions").starts_with("permessage-deflate"));
    assert_eq!(seen("x-seen-key"), "none");
    // Node did not accept the compression offer.
    assert_eq!(ws.extensions, "");
    ws.echo(text("hello over HTTP/2")).await;
    ws.echo(binary(5)).await;
    // Larger than a stream's flow-control window: both directions wait for window
    // updates.
    ws.echo(binary(1024 * 1024)).await;
    ws.close_cleanly().await;
    // The stream ended with END_STREAM on both sides, no reset (code 0).
    node.wait_line(|l| l == "closed /echo?x=1 rst=0");
}

#[tokio::test]
async fn three_streams_share_one_connection_and_a_reset_fails_only_its_own() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let base = format!("wss://127.0.0.1:{}", node.port);
    // Concurrent first connections to one origin share the connection being made.
    let urls = [
        format!("{base}/a"),
        format!("{base}/b"),
        format!("{base}/c"),
    ];
    let (mut a, mut b, mut c) = tokio::join!(
        open(&urls[0], certs.options()),
        open(&urls[1], certs.options()),
        open(&urls[2], certs.options()),
    );
    for ws in [&a, &b, &c] {
        assert_eq!(ws.info_version, http::Version::HTTP_2);
    }
    a.echo(text("a")).await;
    b.echo(text("b")).await;
    c.echo(text("c")).await;
    // The three WebSockets share one TCP connection.
    node.assert_connections(1);

    // A clean close of one: END_STREAM, no reset.
    a.close_cleanly().await;
    node.wait_line(|l| l == "closed /a rst=0");

    // The server resets another (RST_STREAM CANCEL): it closes uncleanly, with the HTTP/2
    // error as the cause.
    b.writer.write(text("reset")).await.unwrap();
    let error = tokio::time::timeout(DEADLINE, b.wss.closed())
        .await
        .unwrap()
        .unwrap_err();
    let error = error.as_websocket_error().unwrap();
    assert_eq!(error.close_code(), Some(1006));
    let cause = chain(&**error);
    let io = sources(&**error)
        .into_iter()
        .find_map(|e| e.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no I/O error in {cause}"));
    assert_eq!(io.kind(), std::io::ErrorKind::ConnectionReset, "{cause}");
    // The h2 crate's error, with the reset's error code.
    let h2 = io.get_ref().map(|e| format!("{e:?}")).unwrap_or_default();
    assert!(h2.contains("CANCEL"), "{h2}");

    // The third goes on.
    c.echo(text("still here")).await;
    c.echo(binary(100_000)).await;
    node.assert_connections(1);
    c.close_cleanly().await;
}

#[tokio::test]
async fn a_full_connection_makes_room_for_a_new_one() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let mut args = certs.args();
    args.extend(["--max-streams".into(), "2".into()]);
    let node = Peer::node(&args);
    let base = format!("wss://127.0.0.1:{}", node.port);
    let mut all = Vec::new();
    for i in 0..5 {
        let mut ws = open(&format!("{base}/{i}"), certs.options()).await;
        assert_eq!(ws.info_version, http::Version::HTTP_2);
        ws.echo(text(&format!("stream {i}"))).await;
        all.push(ws);
    }
    // Two WebSockets per connection, as the server allows.
    node.assert_connections(3);
    for ws in &mut all {
        ws.echo(text("all still open")).await;
    }
    for ws in &all {
        ws.close_cleanly().await;
    }
}

#[tokio::test]
async fn a_reader_that_stops_does_not_stall_another_stream() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let base = format!("wss://127.0.0.1:{}", node.port);
    let mut stalled = open(&format!("{base}/stalled"), certs.options()).await;
    let mut other = open(&format!("{base}/other"), certs.options()).await;
    // 200 messages of 16 KiB that nobody reads for now: far more than the stream's window.
    stalled.writer.write(text("flood:200")).await.unwrap();
    for i in 0..50 {
        other.echo(text(&format!("message {i}"))).await;
    }
    other.echo(binary(300_000)).await;
    // The server could not send most of the flood: the client's window for that stream
    // stayed closed while nothing was read.
    let pending = node.wait_line(|l| l.starts_with("flood-pending /stalled "));
    let pending: usize = pending.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(
        pending > 1024 * 1024,
        "the server sent all but {pending} bytes into a reader that did not read"
    );
    node.assert_connections(1);
    // Reading resumes the flow, and nothing was lost.
    for _ in 0..200 {
        let message = tokio::time::timeout(DEADLINE, stalled.reader.read())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(message, Message::from(vec![0x61u8; 16 * 1024]));
    }
    stalled.echo(text("after the flood")).await;
    stalled.close_cleanly().await;
    other.close_cleanly().await;
}

#[tokio::test]
async fn writes_wait_for_the_servers_window() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let mut ws = open(
        &format!("wss://127.0.0.1:{}/paused", node.port),
        certs.options().compression(None),
    )
    .await;
    ws.writer.write(text("pause:1500")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 64 messages of 64 KiB while the server reads nothing: only what its window and our
    // send buffer hold is accepted.
    let chunk = Message::from(vec![7u8; 64 * 1024]);
    let started = Instant::now();
    let mut accepted = 0;
    let writer = &mut ws.writer;
    let _ = tokio::time::timeout(Duration::from_millis(700), async {
        for _ in 0..64 {
            writer.write(chunk.clone()).await.unwrap();
            accepted += 1;
        }
    })
    .await;
    assert!(
        accepted < 16,
        "{accepted} writes of 64 KiB completed while the server read nothing"
    );
    // Once the server reads again, everything goes through and comes back.
    for _ in accepted..64 {
        tokio::time::timeout(DEADLINE, ws.writer.write(chunk.clone()))
            .await
            .unwrap()
            .unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(1000));
    for _ in 0..64 {
        let back = tokio::time::timeout(DEADLINE, ws.reader.read())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, chunk);
    }
    ws.close_cleanly().await;
}

#[tokio::test]
async fn auto_falls_back_to_http11_when_the_server_does_not_allow_extended_connect() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let mut args = certs.args();
    args.extend(["--no-connect-protocol".into(), "--allow-http1".into()]);
    let node = Peer::node(&args);
    let url = format!("wss://127.0.0.1:{}/echo", node.port);
    let mut ws = open(&url, certs.options().protocols(vec!["chat".into()])).await;
    assert_eq!(ws.info_version, http::Version::HTTP_11);
    assert_eq!(ws.status, http::StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(ws.protocol, "chat");
    ws.echo(text("over HTTP/1.1")).await;
    // The HTTP/2 connection that could not carry it, and the HTTP/1.1 one.
    node.assert_connections(2);
    // The origin is remembered: the next WebSocket goes to HTTP/1.1 directly.
    let mut second = open(&url, certs.options()).await;
    assert_eq!(second.info_version, http::Version::HTTP_11);
    second.echo(binary(70_000)).await;
    node.assert_connections(3);
    ws.close_cleanly().await;
    second.close_cleanly().await;
}

#[tokio::test]
async fn http1_only_never_tries_http2() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    // A server that would do WebSockets over HTTP/2, and over HTTP/1.1.
    let mut args = certs.args();
    args.push("--allow-http1".into());
    let node = Peer::node(&args);
    let url = format!("wss://127.0.0.1:{}/echo", node.port);
    let mut ws = open(
        &url,
        certs
            .options()
            .http_version(HttpVersionPreference::Http1Only),
    )
    .await;
    assert_eq!(ws.info_version, http::Version::HTTP_11);
    ws.echo(text("HTTP/1.1 as asked")).await;
    node.assert_connections(1);
    // The default on the same server: HTTP/2.
    let mut h2 = open(&url, certs.options()).await;
    assert_eq!(h2.info_version, http::Version::HTTP_2);
    h2.echo(text("HTTP/2 by default")).await;
    node.assert_connections(2);
    ws.close_cleanly().await;
    h2.close_cleanly().await;
}

#[tokio::test]
async fn a_connection_going_away_is_not_reused_and_one_that_ends_fails_its_streams() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let base = format!("wss://127.0.0.1:{}", node.port);
    let mut a = open(&format!("{base}/a"), certs.options()).await;
    let mut b = open(&format!("{base}/b"), certs.options()).await;
    a.echo(text("a")).await;
    b.echo(text("b")).await;
    node.assert_connections(1);

    // GOAWAY: the open streams go on, the next WebSocket gets a new connection.
    a.writer.write(text("goaway")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = open(&format!("{base}/c"), certs.options()).await;
    assert_eq!(c.info_version, http::Version::HTTP_2);
    c.echo(text("on a new connection")).await;
    node.assert_connections(2);
    a.echo(text("a still open")).await;
    b.echo(text("b still open")).await;

    // The first connection ends under its streams: both close uncleanly, with the HTTP/2
    // error as the cause; the new connection is not affected.
    a.writer.write(text("destroy")).await.unwrap();
    for ws in [&a, &b] {
        let error = tokio::time::timeout(DEADLINE, ws.wss.closed())
            .await
            .unwrap()
            .unwrap_err();
        let error = error.as_websocket_error().unwrap();
        assert_eq!(error.close_code(), Some(1006));
        let io = sources(&**error)
            .into_iter()
            .find_map(|e| e.downcast_ref::<std::io::Error>())
            .unwrap_or_else(|| panic!("no I/O error in {}", chain(&**error)));
        let h2 = io.get_ref().map(|e| format!("{e:?}")).unwrap_or_default();
        assert!(h2.starts_with("Error { kind:"), "not an h2 error: {h2}");
    }
    c.echo(text("c unaffected")).await;
    c.close_cleanly().await;
}

#[cfg(feature = "proxy")]
#[tokio::test]
async fn http2_through_a_proxy_shares_one_tunnel() {
    use wsstream_test_support::proxies::ProxyServer;
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    // HTTP CONNECT, HTTP CONNECT over TLS (the proxy's certificate from the same test CA),
    // and SOCKS5: the HTTP/2 connection runs through the tunnel the same way.
    for kind in ["http", "https", "socks5"] {
        let node = Peer::node(&certs.args());
        let proxy = match kind {
            "http" => ProxyServer::http_connect(None).await,
            "https" => {
                ProxyServer::https_connect(certs.ca.server(&["localhost"]).acceptor(), None).await
            }
            _ => ProxyServer::socks5(None).await,
        }
        .unwrap();
        let options = || certs.options().proxy(wsstream::Proxy::Url(proxy.url()));
        let base = format!("wss://127.0.0.1:{}", node.port);
        let mut a = open(&format!("{base}/a"), options()).await;
        let mut b = open(&format!("{base}/b"), options()).await;
        for ws in [&mut a, &mut b] {
            assert_eq!(ws.info_version, http::Version::HTTP_2, "{kind}");
            ws.echo(text("through the proxy")).await;
        }
        // One tunnel, one connection at the server, for both WebSockets.
        assert_eq!(proxy.tunnels(), 1, "{kind}");
        node.assert_connections(1);
        // The same origin without the proxy is another connection.
        let mut direct = open(
            &format!("{base}/direct"),
            certs.options().proxy(wsstream::Proxy::None),
        )
        .await;
        direct.echo(text("direct")).await;
        node.assert_connections(2);
        for ws in [&a, &b, &direct] {
            ws.close_cleanly().await;
        }
    }
}

#[tokio::test]
async fn redirects_are_followed_over_http2_when_allowed() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let url = format!("wss://127.0.0.1:{}/redirect", node.port);
    let mut ws = open(&url, certs.options().max_redirects(1)).await;
    assert_eq!(ws.info_version, http::Version::HTTP_2);
    ws.echo(text("after a redirect")).await;
    node.assert_connections(1);
    ws.close_cleanly().await;
    node.wait_line(|l| l == "closed /echo?redirected rst=0");
    // Not followed by default (as in the browser): the redirect fails the handshake.
    let (_, error) = open_fails(&url, certs.options()).await;
    assert!(error.contains("301"), "{error}");
}

#[tokio::test]
async fn auto_falls_back_when_the_server_refuses_the_extended_connect() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    // RST_STREAM(HTTP_1_1_REQUIRED), 405 Method Not Allowed, 501 Not Implemented and
    // RST_STREAM(REFUSED_STREAM), on a server that also takes HTTP/1.1 upgrades.
    for path in [
        "/http11-required",
        "/method-not-allowed",
        "/not-implemented",
        "/refused",
    ] {
        let mut args = certs.args();
        args.push("--allow-http1".into());
        let node = Peer::node(&args);
        let url = format!("wss://127.0.0.1:{}{path}", node.port);
        let mut ws = open(&url, certs.options()).await;
        assert_eq!(ws.info_version, http::Version::HTTP_11, "{path}");
        ws.echo(text(path)).await;
        node.assert_connections(2);
        // A second WebSocket: the origin is remembered as HTTP/1.1-only, except after
        // REFUSED_STREAM, which may be momentary: then HTTP/2 is asked again first.
        let mut again = open(&url, certs.options()).await;
        assert_eq!(again.info_version, http::Version::HTTP_11, "{path}");
        again.echo(text(path)).await;
        let attempts = if path == "/refused" { 2 } else { 1 };
        node.wait_line(|l| l == format!("extended connect {path} {attempts}"));
        std::thread::sleep(Duration::from_millis(50));
        let over_http2 = node
            .lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(&format!("extended connect {path} ")))
            .count();
        assert_eq!(over_http2, attempts, "{path}");
        ws.close_cleanly().await;
        again.close_cleanly().await;
        // Asked for HTTP/2 only, the refusal is the error.
        let node = Peer::node(&certs.args());
        let url = format!("wss://127.0.0.1:{}{path}", node.port);
        let (_, error) = open_fails(
            &url,
            certs
                .options()
                .http_version(HttpVersionPreference::Http2Only),
        )
        .await;
        match path {
            "/http11-required" => assert!(
                error.contains("does not allow WebSockets over HTTP/2"),
                "{error}"
            ),
            "/refused" => assert!(
                error.contains("does not allow WebSockets over HTTP/2"),
                "{error}"
            ),
            "/method-not-allowed" => assert!(error.contains("405"), "{error}"),
            _ => assert!(error.contains("501"), "{error}"),
        }
    }
}

/// A TLS WebSocket echo server of this crate's own (ALPN `http/1.1` only), counting the
/// TCP connections it accepts.
async fn http11_tls_server(certs: &Certs) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    let acceptor: wsstream::server::TlsAcceptor =
        certs.ca.server(&["localhost", "127.0.0.1"]).acceptor();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(wss) =
                    wsstream::server::accept_tls(tcp, &acceptor, Default::default()).await
                else {
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
            });
        }
    });
    (port, accepted)
}

#[tokio::test]
async fn a_server_that_picks_http11_in_alpn_gets_http11_on_the_same_connection() {
    let certs = Certs::new();
    let (port, accepted) = http11_tls_server(&certs).await;
    let url = format!("wss://127.0.0.1:{port}/echo");
    let mut ws = open(&url, certs.options()).await;
    assert_eq!(ws.info_version, http::Version::HTTP_11);
    ws.echo(text("HTTP/1.1 after ALPN")).await;
    ws.close_cleanly().await;
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    // HTTP/2 only: the server did not pick h2.
    let (kind, error) = open_fails(
        &url,
        certs
            .options()
            .http_version(HttpVersionPreference::Http2Only),
    )
    .await;
    assert_eq!(kind, Some(Http2ErrorKind::NotNegotiated), "{error}");
}

#[tokio::test]
async fn http2_only_fails_clearly_without_extended_connect() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let mut args = certs.args();
    args.push("--no-connect-protocol".into());
    let node = Peer::node(&args);
    let url = format!("wss://127.0.0.1:{}/echo", node.port);
    let (kind, error) = open_fails(
        &url,
        certs
            .options()
            .http_version(HttpVersionPreference::Http2Only),
    )
    .await;
    assert_eq!(
        kind,
        Some(Http2ErrorKind::ExtendedConnectNotSupported),
        "{error}"
    );
    assert!(
        error.contains("does not allow WebSockets over HTTP/2"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refusal_over_http2_is_a_rejection_with_status_and_body() {
    if !node_available() {
        return;
    }
    let certs = Certs::new();
    let node = Peer::node(&certs.args());
    let url = format!("wss://127.0.0.1:{}/reject", node.port);
    let wss = WebSocketStream::new(&url, certs.options()).unwrap();
    let error = tokio::time::timeout(DEADLINE, wss.opened())
        .await
        .unwrap()
        .unwrap_err();
    let ws_error = error.as_websocket_error().unwrap();
    let rejection = sources(&**ws_error)
        .into_iter()
        .find_map(|e| e.downcast_ref::<ConnectError>())
        .and_then(ConnectError::rejection)
        .unwrap_or_else(|| panic!("not a rejection: {}", chain(&**ws_error)));
    assert_eq!(rejection.status(), http::StatusCode::FORBIDDEN);
    assert_eq!(rejection.body(), b"go away");
    assert_eq!(rejection.headers()["content-type"], "text/plain");
}

#[tokio::test]
async fn h2c_with_prior_knowledge_when_asked() {
    if !node_available() {
        return;
    }
    let node = Peer::node(&[]);
    let url = format!("ws://127.0.0.1:{}/h2c", node.port);
    let mut ws = open(
        &url,
        WebSocketStreamOptions::default().http_version(HttpVersionPreference::Http2Only),
    )
    .await;
    assert_eq!(ws.info_version, http::Version::HTTP_2);
    ws.echo(text("cleartext HTTP/2")).await;
    ws.echo(binary(200_000)).await;
    ws.close_cleanly().await;
    node.wait_line(|l| l == "closed /h2c rst=0");
}

#[tokio::test]
async fn hypercorn_echoes_over_http2_with_tls() {
    if !hypercorn_available() {
        return;
    }
    let certs = Certs::new();
    let server = Peer::hypercorn(&certs.args());
    let url = format!("wss://127.0.0.1:{}/ws", server.port);
    let mut ws = open(&url, certs.options().protocols(vec!["echo".into()])).await;
    assert_eq!(ws.info_version, http::Version::HTTP_2);
    assert_eq!(ws.status, http::StatusCode::OK);
    assert_eq!(ws.protocol, "echo");
    // Hypercorn (wsproto) accepts the permessage-deflate offer: compressed frames over
    // HTTP/2.
    assert!(
        ws.extensions.starts_with("permessage-deflate"),
        "{}",
        ws.extensions
    );
    ws.echo(text("hello hypercorn")).await;
    ws.echo(text(&"compressible ".repeat(10_000))).await;
    ws.echo(binary(500_000)).await;
    let mut second = open(&url, certs.options()).await;
    assert_eq!(second.info_version, http::Version::HTTP_2);
    second.echo(text("second stream")).await;
    ws.close_cleanly().await;
    second.echo(text("still open")).await;
    second.close_cleanly().await;
}

#[tokio::test]
async fn hypercorn_echoes_over_h2c() {
    if !hypercorn_available() {
        return;
    }
    let server = Peer::hypercorn(&[]);
    let url = format!("ws://127.0.0.1:{}/ws", server.port);
    let mut ws = open(
        &url,
        WebSocketStreamOptions::default().http_version(HttpVersionPreference::Http2Only),
    )
    .await;
    assert_eq!(ws.info_version, http::Version::HTTP_2);
    ws.echo(text("hello h2c")).await;
    ws.echo(binary(100_000)).await;
    let mut second = open(
        &url,
        WebSocketStreamOptions::default().http_version(HttpVersionPreference::Http2Only),
    )
    .await;
    second.echo(text("second stream")).await;
    ws.close_cleanly().await;
    second.close_cleanly().await;
    // The default for ws:// is HTTP/1.1, which Hypercorn speaks as well.
    let mut ws = open(&url, WebSocketStreamOptions::default()).await;
    assert_eq!(ws.info_version, http::Version::HTTP_11);
    ws.echo(text("hello HTTP/1.1")).await;
    ws.close_cleanly().await;
}
