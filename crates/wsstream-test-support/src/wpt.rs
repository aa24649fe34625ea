//! The web-platform-tests server: the pywebsocket handlers that
//! `websockets/stream/tentative/*.any.js` talk to (`websockets/handlers/*_wsh.py`), on
//! `127.0.0.1`.
//!
//! [`WptServer::start`] binds `127.0.0.1:0` and serves every handler on that one port;
//! [`WptServer::base_url`] is the WPT `BASEURL` and [`WptServer::echo_url`] its `ECHOURL`.
//! The server runs as a tokio task of the calling runtime and stops when the handle is
//! dropped (or [`WptServer::stop`]ped).
//!
//! Handlers built on the server-role [`WebSocketStream`] (`wsstream::server`):
//!
//! * `/echo`: echoes every message with its type; the client's Close is answered by the
//!   engine with the same code and reason (RFC 6455 §5.5.1 echo).
//! * `/echo_exit`: discards messages; on the text message `Goodbye` the server closes
//!   with 1000 (what pywebsocket does when a handler returns), then drains the client's
//!   data until its Close.
//! * `/remote-close?code=N&reason=R`: closes right after the handshake with that code and
//!   percent-decoded reason (no body without `code`), then drains until the client's
//!   Close.
//! * `/handshake_sleep_2`: sleeps 2 s before answering the handshake, then echoes.
//! * `/protocol_array`: selects the first offered subprotocol, sends its name as a text
//!   message, then echoes.
//! * `/send-backpressure`: sends one empty binary message, 16 × 1 MiB binary messages,
//!   then a text message with the seconds the 16 took (e.g. `"2.013"`).
//! * `/404` (and any unknown path): rejects the handshake with `404 Not Found`.
//!
//! Handlers the server-role stream cannot express, done on the raw TCP stream (over
//! HTTP/2, the upgraded stream's I/O) with hand-built frames ([`crate::frames`]):
//!
//! * `/remote-close?abrupt=1`: sends a ping, then drops TCP without a Close frame.
//! * `/remote-close?code=N&reason=R&wait_for_data=1` (a Rust-only parameter): like
//!   `/remote-close`, but the Close frame is sent only once the first bytes after the
//!   handshake have arrived from the client. A browser runs the continuation of
//!   `await wss.opened` before it processes a Close frame that arrives later, so a
//!   `write()` made right after `opened` is always accepted before the server's Close is
//!   seen; a tokio test has no such ordering (the connection task may process a Close
//!   that came with the handshake response before the test task resumes), so a test that
//!   needs "data accepted, then the peer's Close" asks the server to wait for the data.
//! * `/passive-close-abort`: on the client's Close, drops TCP without replying.
//! * `/delayed-passive-close`: on the client's Close, waits 1 s, then echoes it and
//!   closes TCP (the engine would reply at once).
//! * `/receive-backpressure`: waits 2 s before reading anything (the server-role driver
//!   would read the socket as soon as its one-message queue is empty), then discards
//!   messages and echoes the client's Close.
//!
//! [`StashListener`] stands for the WPT stash endpoint: a plain TCP listener that records
//! whether any connection or request bytes arrived.
//!
//! ## Over HTTP/2
//!
//! The same handlers also run over WebSockets over HTTP/2 (RFC 8441):
//! `WptServer::start_http2` (this crate's features `http2` and `hyper`, which wsstream's
//! features of the same names turn on in its tests) serves cleartext HTTP/2 with prior
//! knowledge (h2c) on a hyper server announcing `SETTINGS_ENABLE_CONNECT_PROTOCOL`, each
//! WebSocket being one extended CONNECT stream. The handlers built on the server-role
//! stream are accepted through `wsstream::server::hyper::HyperUpgrade`; the raw ones
//! write their frames on the upgraded stream's I/O, where "dropping TCP" becomes dropping
//! that I/O: hyper then ends its side of the stream (END_STREAM) and, the client's side
//! being still open, h2 resets the stream (RST_STREAM with `NO_ERROR`), so the client's
//! WebSocket ends without a Close frame and closes with 1006, as when TCP is dropped
//! (hyper offers no way to reset an upgraded stream without the END_STREAM; the other
//! streams of the connection are not touched). "Closing TCP" (a shutdown after the
//! Close handshake) becomes END_STREAM. Backpressure comes from HTTP/2 flow control: a
//! handler that does not read leaves the stream's window closed, and the client's window
//! (256 KiB) stops a server whose client does not read. Over HTTP/2,
//! [`WptServer::active_connections`] counts WebSockets (streams), not connections.
//!
//! **The switch:** with the environment variable `WSSTREAM_WPT_HTTP2=1`,
//! [`WptServer::start`] starts that HTTP/2 server and [`client_options`] returns options
//! with `HttpVersionPreference::Http2Only`, so the WPT ports (wsstream's `wpt_*` tests, which
//! take their options from [`client_options`]) run over HTTP/2 unchanged:
//!
//! ```text
//! WSSTREAM_WPT_HTTP2=1 cargo test -p wsstream --all-features --test 'wpt_*'
//! ```
//!
//! The switch needs the features `http2` and `hyper` (`--all-features`); without them,
//! or with a value other than `1` or `0`, [`WptServer::start`] and [`client_options`]
//! panic rather than quietly testing HTTP/1.1.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use wsstream::server::{self, Request, ServerOptions, UpgradeRequest};
use wsstream::{
    Message, WebSocketCloseInfo, WebSocketReader, WebSocketStream, WebSocketStreamOptions,
};

use crate::frames::{Frame, ParsedFrame, parse_frame};

/// How long [`within`] waits before failing a test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Size of each large message `/send-backpressure` sends.
pub const SEND_BACKPRESSURE_MESSAGE_SIZE: usize = 1024 * 1024;

/// Number of large messages `/send-backpressure` sends.
pub const SEND_BACKPRESSURE_MESSAGE_COUNT: usize = 16;

/// The environment variable that runs the WPT ports over HTTP/2: `1` on, `0` (or unset)
/// off.
pub const HTTP2_SWITCH: &str = "WSSTREAM_WPT_HTTP2";

/// Whether `WSSTREAM_WPT_HTTP2=1` asks for the WPT ports over HTTP/2.
///
/// # Panics
///
/// On a value other than `1`, `0` or the empty string, so a typo does not quietly test
/// HTTP/1.1.
pub fn http2_switch() -> bool {
    match std::env::var(HTTP2_SWITCH) {
        Err(std::env::VarError::NotPresent) => false,
        Ok(value) if value == "1" => true,
        Ok(value) if value.is_empty() || value == "0" => false,
        other => panic!("{HTTP2_SWITCH} must be 1 or 0, not {other:?}"),
    }
}

/// The options the WPT ports' clients start from: `WebSocketStreamOptions::default()`,
/// or, with `WSSTREAM_WPT_HTTP2=1`, the same with `HttpVersionPreference::Http2Only`
/// (HTTP/2 with prior knowledge on `ws://`, as [`WptServer::start`] then serves).
///
/// # Panics
///
/// With `WSSTREAM_WPT_HTTP2=1` but without this crate's `http2` feature (wsstream's
/// `http2`), or on a bad value of the switch.
pub fn client_options() -> WebSocketStreamOptions {
    if http2_switch() {
        http2_client_options()
    } else {
        WebSocketStreamOptions::default()
    }
}

/// `WebSocketStreamOptions::default()` with `HttpVersionPreference::Http2Only`.
#[cfg(feature = "http2")]
pub fn http2_client_options() -> WebSocketStreamOptions {
    WebSocketStreamOptions::default().http_version(wsstream::HttpVersionPreference::Http2Only)
}

#[cfg(not(feature = "http2"))]
fn http2_client_options() -> WebSocketStreamOptions {
    panic!("{HTTP2_SWITCH}=1 needs wsstream's features `http2` and `hyper` (e.g. --all-features)")
}

/// The WPT handler server. Dropping it stops accepting and aborts the handler tasks.
#[derive(Debug)]
pub struct WptServer {
    addr: SocketAddr,
    active: Arc<AtomicUsize>,
    http2: bool,
    task: JoinHandle<()>,
}

impl WptServer {
    /// Binds `127.0.0.1:0` and starts serving in a task of the current tokio runtime:
    /// HTTP/1.1, or, with `WSSTREAM_WPT_HTTP2=1`, HTTP/2 as `start_http2`.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    ///
    /// # Panics
    ///
    /// With `WSSTREAM_WPT_HTTP2=1` but without this crate's `http2` and `hyper` features
    /// (wsstream's of the same names), or on a bad value of the switch.
    pub async fn start() -> io::Result<Self> {
        if http2_switch() {
            return Self::start_http2_or_panic().await;
        }
        Self::start_http1().await
    }

    /// [`start`](Self::start) over HTTP/1.1 whatever `WSSTREAM_WPT_HTTP2` says.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub async fn start_http1() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let active = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(accept_loop(listener, active.clone()));
        Ok(Self {
            addr,
            active,
            http2: false,
            task,
        })
    }

    /// [`start`](Self::start) over cleartext HTTP/2 with prior knowledge (h2c), whatever
    /// `WSSTREAM_WPT_HTTP2` says: a hyper HTTP/2 server announcing
    /// `SETTINGS_ENABLE_CONNECT_PROTOCOL`, every WebSocket an extended CONNECT stream
    /// (RFC 8441). Clients need `HttpVersionPreference::Http2Only`
    /// ([`http2_client_options`]). [`active_connections`](Self::active_connections)
    /// then counts WebSockets (streams), not TCP connections.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    #[cfg(all(feature = "http2", feature = "hyper"))]
    pub async fn start_http2() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let active = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(over_http2::accept_loop(listener, active.clone()));
        Ok(Self {
            addr,
            active,
            http2: true,
            task,
        })
    }

    #[cfg(all(feature = "http2", feature = "hyper"))]
    async fn start_http2_or_panic() -> io::Result<Self> {
        Self::start_http2().await
    }

    #[cfg(not(all(feature = "http2", feature = "hyper")))]
    async fn start_http2_or_panic() -> io::Result<Self> {
        panic!(
            "{HTTP2_SWITCH}=1 needs wsstream's features `http2` and `hyper` (e.g. --all-features)"
        )
    }

    /// Whether the handlers are served over HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// The WPT `BASEURL`: `ws://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// `BASEURL` followed by `path_and_query`, e.g. `url("/remote-close?code=1000")`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base_url())
    }

    /// The WPT `ECHOURL`: `ws://127.0.0.1:PORT/echo`.
    pub fn echo_url(&self) -> String {
        self.url("/echo")
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections whose handler has not finished yet (a WebSocket handler finishes when
    /// its connection is closed). Over HTTP/2, WebSockets (streams) whose handler has not
    /// finished: several may share one connection.
    pub fn active_connections(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Waits until no handler is running, for at most `timeout`; returns whether that
    /// happened.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.active_connections() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the server (the same as dropping it).
    pub fn stop(self) {}
}

impl Drop for WptServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Counts a running handler; decrements on drop, even if the handler is aborted.
struct ActiveGuard(Arc<AtomicUsize>);

impl ActiveGuard {
    fn new(counter: Arc<AtomicUsize>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn accept_loop(listener: TcpListener, active: Arc<AtomicUsize>) {
    // Dropping the set (when the task is aborted) aborts every handler.
    let mut handlers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let guard = ActiveGuard::new(active.clone());
                    handlers.spawn(async move {
                        let _guard = guard;
                        handle_tcp(tcp).await;
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = handlers.join_next(), if !handlers.is_empty() => {}
        }
    }
}

async fn handle_tcp(tcp: TcpStream) {
    let _ = tcp.set_nodelay(true);
    let Ok(upgrade) = server::read_request(tcp).await else {
        return;
    };
    handle(Upgrade::Http1(upgrade)).await;
}

/// Routes a WebSocket request, over HTTP/1.1 or HTTP/2, to its handler.
async fn handle(upgrade: Upgrade) {
    let resource = upgrade.request().resource.clone();
    let (path, query) = resource.split_once('?').unwrap_or((&resource, ""));
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    match path {
        "/echo" => {
            if let Some(wss) = accept(upgrade, None).await {
                echo(&wss).await;
            }
        }
        "/echo_exit" => echo_exit(upgrade).await,
        "/remote-close" => remote_close(upgrade, &params).await,
        "/passive-close-abort" => passive_close_abort(upgrade).await,
        "/delayed-passive-close" => delayed_passive_close(upgrade).await,
        "/handshake_sleep_2" => {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if let Some(wss) = accept(upgrade, None).await {
                echo(&wss).await;
            }
        }
        "/protocol_array" => protocol_array(upgrade).await,
        "/send-backpressure" => send_backpressure(upgrade).await,
        "/receive-backpressure" => receive_backpressure(upgrade).await,
        _ => upgrade.reject_404().await,
    }
}

async fn accept(upgrade: Upgrade, protocol: Option<&str>) -> Option<WebSocketStream> {
    upgrade.accept(protocol, ServerOptions::default()).await
}

/// A valid WebSocket request not answered yet: read from a TCP connection (HTTP/1.1), or
/// an extended CONNECT stream of an HTTP/2 connection.
enum Upgrade {
    Http1(UpgradeRequest<TcpStream>),
    #[cfg(all(feature = "http2", feature = "hyper"))]
    Http2(over_http2::H2Request),
}

impl Upgrade {
    fn request(&self) -> &Request {
        match self {
            Self::Http1(upgrade) => upgrade.request(),
            #[cfg(all(feature = "http2", feature = "hyper"))]
            Self::Http2(upgrade) => upgrade.request(),
        }
    }

    /// Accepts with the server-role stream; `None` if the connection (or stream) failed.
    async fn accept(
        self,
        protocol: Option<&str>,
        options: ServerOptions,
    ) -> Option<WebSocketStream> {
        match self {
            Self::Http1(upgrade) => upgrade.accept(protocol, options).await.ok(),
            #[cfg(all(feature = "http2", feature = "hyper"))]
            Self::Http2(upgrade) => upgrade.accept(protocol, options).await,
        }
    }

    async fn reject_404(self) {
        match self {
            Self::Http1(upgrade) => {
                let _ = upgrade.reject(404, "Not Found", "").await;
            }
            #[cfg(all(feature = "http2", feature = "hyper"))]
            Self::Http2(upgrade) => upgrade.reject_404(),
        }
    }
}

/// Echoes every message until the client closes, then waits for `closed`.
async fn echo(wss: &WebSocketStream) {
    let Ok(info) = wss.opened().await else {
        return;
    };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    while let Ok(Some(message)) = reader.read().await {
        if writer.write(message).await.is_err() {
            break;
        }
    }
    drain(&mut reader).await;
    let _ = wss.closed().await;
}

/// Reads and discards messages until the readable is done, so the driver keeps reading
/// the socket up to the client's Close.
async fn drain(reader: &mut WebSocketReader) {
    while let Ok(Some(_)) = reader.read().await {}
}

async fn echo_exit(upgrade: Upgrade) {
    // permessage-deflate off, so the test's 8 MiB message really is 8 MiB on the wire
    // (it is all zeros: compressed, it would be sent before the server closes).
    let options = ServerOptions::default().compression(None);
    let Some(wss) = upgrade.accept(None, options).await else {
        return;
    };
    let Ok(info) = wss.opened().await else {
        return;
    };
    let Ok(mut reader) = info.readable.get_reader() else {
        return;
    };
    let goodbye = Message::from("Goodbye");
    loop {
        match reader.read().await {
            Ok(Some(message)) if message == goodbye => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                let _ = wss.closed().await;
                return;
            }
        }
    }
    let _ = wss.close(WebSocketCloseInfo {
        close_code: Some(1000),
        reason: String::new(),
    });
    drain(&mut reader).await;
    let _ = wss.closed().await;
}

async fn remote_close(upgrade: Upgrade, params: &HashMap<String, String>) {
    if params.contains_key("abrupt") {
        // A ping, then TCP is dropped without a Close frame (over HTTP/2, the stream is
        // dropped: it ends without a Close frame, see the module docs).
        let Some(mut raw) = RawConn::accept(upgrade).await else {
            return;
        };
        let _ = raw.write(&Frame::ping("").encode()).await;
        return;
    }
    let code = params.get("code").and_then(|c| c.parse::<u16>().ok());
    let reason = params.get("reason").cloned().unwrap_or_default();
    if params.contains_key("wait_for_data") {
        remote_close_after_data(upgrade, code, &reason).await;
        return;
    }
    let Some(wss) = accept(upgrade, None).await else {
        return;
    };
    let Ok(info) = wss.opened().await else {
        return;
    };
    let Ok(mut reader) = info.readable.get_reader() else {
        return;
    };
    let _ = wss.close(WebSocketCloseInfo {
        close_code: code,
        reason,
    });
    drain(&mut reader).await;
    let _ = wss.closed().await;
}

/// `/remote-close?wait_for_data=1`: the Close frame goes out once the client has sent
/// something; then the client's data is discarded up to its Close, and TCP is closed.
async fn remote_close_after_data(upgrade: Upgrade, code: Option<u16>, reason: &str) {
    let Some(mut raw) = RawConn::accept(upgrade).await else {
        return;
    };
    if !raw.wait_for_input().await {
        return;
    }
    let close = match code {
        Some(code) => Frame::close(Some(code), reason),
        None => Frame::close(None, ""),
    };
    if raw.write(&close.encode()).await.is_err() {
        return;
    }
    while let Some(frame) = raw.read_frame().await {
        if frame.is_close() {
            break;
        }
    }
    let _ = raw.io.shutdown().await;
}

async fn passive_close_abort(upgrade: Upgrade) {
    let Some(mut raw) = RawConn::accept(upgrade).await else {
        return;
    };
    while let Some(frame) = raw.read_frame().await {
        if frame.is_close() {
            // Drop TCP without answering (over HTTP/2: drop the stream, see the module
            // docs).
            return;
        }
    }
}

async fn delayed_passive_close(upgrade: Upgrade) {
    let Some(mut raw) = RawConn::accept(upgrade).await else {
        return;
    };
    while let Some(frame) = raw.read_frame().await {
        if frame.is_close() {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = raw.write(&Frame::close_raw(&frame.payload).encode()).await;
            let _ = raw.io.shutdown().await;
            return;
        }
    }
}

async fn protocol_array(upgrade: Upgrade) {
    let protocol = upgrade.request().protocols.first().cloned();
    let Some(wss) = accept(upgrade, protocol.as_deref()).await else {
        return;
    };
    let Ok(info) = wss.opened().await else {
        return;
    };
    {
        let Ok(mut writer) = info.writable.get_writer() else {
            return;
        };
        if writer.write(protocol.unwrap_or_default()).await.is_err() {
            return;
        }
    }
    echo(&wss).await;
}

async fn send_backpressure(upgrade: Upgrade) {
    // Allocated (and touched) before the handshake completes, so the client's memory
    // baseline already includes it; every message shares this one buffer.
    let payload = Bytes::from(vec![0x5a_u8; SEND_BACKPRESSURE_MESSAGE_SIZE]);
    // As the WPT handler: permessage-deflate off, so 16 MiB really cross the socket.
    let options = ServerOptions::default().compression(None);
    let Some(wss) = upgrade.accept(None, options).await else {
        return;
    };
    let Ok(info) = wss.opened().await else {
        return;
    };
    let (Ok(mut reader), Ok(mut writer)) = (info.readable.get_reader(), info.writable.get_writer())
    else {
        return;
    };
    if writer.write(Bytes::new()).await.is_err() {
        return;
    }
    // While the client does not read, these writes stop once the socket buffers (over
    // HTTP/2: the client's stream window, then hyper's send buffer) are full.
    let start = Instant::now();
    for _ in 0..SEND_BACKPRESSURE_MESSAGE_COUNT {
        if writer.write(payload.clone()).await.is_err() {
            return;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    if writer.write(format!("{seconds:.3}")).await.is_err() {
        return;
    }
    drain(&mut reader).await;
    let _ = wss.closed().await;
}

async fn receive_backpressure(upgrade: Upgrade) {
    let Some(mut raw) = RawConn::accept(upgrade).await else {
        return;
    };
    // Not reading for 2 s: over TCP the socket buffers fill up; over HTTP/2 the stream's
    // receive window (hyper's default, 1 MiB) is not given back, so the client's writes
    // stop once it is used up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Some(frame) = raw.read_frame().await {
        if frame.is_close() {
            let _ = raw.write(&Frame::close_raw(&frame.payload).encode()).await;
            let _ = raw.io.shutdown().await;
            return;
        }
    }
}

/// The I/O a raw handler writes its frames on: a TCP stream, or an upgraded HTTP/2
/// stream.
trait RawIo: AsyncRead + AsyncWrite + Send + Unpin {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin> RawIo for T {}

/// A connection answered by hand: the 101 response (over HTTP/2, the 200), then raw
/// frames. Dropping it drops TCP (over HTTP/2, the stream).
struct RawConn {
    io: Box<dyn RawIo>,
    buf: Vec<u8>,
}

impl RawConn {
    /// Sends the 101 response without a subprotocol or extension (over HTTP/2, the 200).
    /// Whatever the client sent past its request head (a conforming client sends nothing
    /// before the response) is kept.
    async fn accept(upgrade: Upgrade) -> Option<Self> {
        let (io, leftover): (Box<dyn RawIo>, Bytes) = match upgrade {
            Upgrade::Http1(upgrade) => {
                let response = upgrade.request().accept(None, None, &[]);
                let (mut tcp, leftover) = upgrade.into_parts();
                tcp.write_all(&response).await.ok()?;
                (Box::new(tcp), leftover)
            }
            #[cfg(all(feature = "http2", feature = "hyper"))]
            Upgrade::Http2(upgrade) => (Box::new(upgrade.accept_raw().await?), Bytes::new()),
        };
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(&leftover);
        Some(Self { io, buf })
    }

    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await?;
        self.io.flush().await
    }

    /// Waits until at least one byte from the client is buffered; `false` at EOF.
    async fn wait_for_input(&mut self) -> bool {
        if !self.buf.is_empty() {
            return true;
        }
        self.buf.reserve(64 * 1024);
        matches!(self.io.read_buf(&mut self.buf).await, Ok(1..))
    }

    /// The next whole frame from the client (unmasked), `None` at EOF or on error.
    async fn read_frame(&mut self) -> Option<ParsedFrame> {
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            self.buf.reserve(64 * 1024);
            match self.io.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }
}

/// The HTTP/2 server of [`WptServer::start_http2`].
#[cfg(all(feature = "http2", feature = "hyper"))]
mod over_http2 {
    use std::convert::Infallible;
    use std::future::Future;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    use hyper::body::Incoming;
    use hyper::server::conn::http2;
    use hyper::service::service_fn;
    use hyper::upgrade::Upgraded;
    use hyper_util::rt::TokioIo;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::{oneshot, watch};
    use tokio::task::JoinSet;
    use wsstream::WebSocketStream;
    use wsstream::http::{HeaderMap, Response, StatusCode};
    use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
    use wsstream::server::{HttpUpgrade, Request, ServerOptions};

    use super::{ActiveGuard, Upgrade, handle};

    /// Spawns on the current runtime, and drops what it spawned once the server stops
    /// (the [`watch::Sender`] held by [`accept_loop`] is dropped): hyper's stream tasks
    /// and the handlers, which are not in the accept loop's `JoinSet`.
    #[derive(Clone)]
    struct Spawner {
        stop: watch::Receiver<()>,
    }

    impl Spawner {
        fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
            let mut stop = self.stop.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = future => {}
                    _ = stop.changed() => {}
                }
            });
        }
    }

    impl<F> hyper::rt::Executor<F> for Spawner
    where
        F: Future + Send + 'static,
    {
        fn execute(&self, future: F) {
            self.spawn(async move {
                future.await;
            });
        }
    }

    pub(super) async fn accept_loop(listener: TcpListener, active: Arc<AtomicUsize>) {
        // Dropped when this task is aborted: every spawned stream task and handler stops.
        let (_stop, stop) = watch::channel(());
        let spawner = Spawner { stop };
        // Dropping the set (when the task is aborted) drops every connection.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        connections.spawn(serve(tcp, spawner.clone(), active.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }

    /// One HTTP/2 connection with prior knowledge, extended CONNECT allowed.
    async fn serve(tcp: TcpStream, spawner: Spawner, active: Arc<AtomicUsize>) {
        let _ = tcp.set_nodelay(true);
        let service_spawner = spawner.clone();
        let service = service_fn(move |request| {
            let spawner = service_spawner.clone();
            let active = active.clone();
            async move { Ok::<_, Infallible>(route(request, &spawner, active).await) }
        });
        let _ = http2::Builder::new(spawner)
            .enable_connect_protocol()
            .serve_connection(TokioIo::new(tcp), service)
            .await;
    }

    /// Validates the extended CONNECT, runs the handler in a task of its own (it outlives
    /// the response) and returns the response the handler chose.
    async fn route(
        request: hyper::Request<Incoming>,
        spawner: &Spawner,
        active: Arc<AtomicUsize>,
    ) -> Response<Body> {
        let upgrade = match HttpUpgrade::from_request(&request) {
            Ok(upgrade) => upgrade,
            Err(e) => return error_response(&e),
        };
        let (respond, response) = oneshot::channel();
        let guard = ActiveGuard::new(active);
        spawner.spawn(async move {
            let _guard = guard;
            handle(Upgrade::Http2(H2Request {
                request,
                upgrade: Box::new(upgrade),
                respond,
            }))
            .await;
        });
        response.await.unwrap_or_else(|_| {
            // The handler ended without answering.
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }

    /// An extended CONNECT waiting for its handler's answer.
    pub(super) struct H2Request {
        /// Still holding hyper's upgrade handle.
        request: hyper::Request<Incoming>,
        /// The validated request (boxed: the enum of both kinds of request stays small).
        upgrade: Box<HttpUpgrade>,
        /// Where the handler's response goes (to the service, which returns it).
        respond: oneshot::Sender<Response<Body>>,
    }

    impl H2Request {
        pub(super) fn request(&self) -> &Request {
            self.upgrade.request()
        }

        /// Accepts through [`HyperUpgrade`]: the 200, then the server-role stream on the
        /// HTTP/2 stream.
        pub(super) async fn accept(
            mut self,
            protocol: Option<&str>,
            options: ServerOptions,
        ) -> Option<WebSocketStream> {
            let upgrade = HyperUpgrade::from_request(&mut self.request).ok()?;
            let (response, upgrading) =
                upgrade.accept(protocol, &HeaderMap::new(), options).ok()?;
            self.respond.send(response).ok()?;
            upgrading.await.ok()
        }

        /// The 200 without a subprotocol or extension, then the stream's raw I/O.
        pub(super) async fn accept_raw(mut self) -> Option<TokioIo<Upgraded>> {
            let on_upgrade = hyper::upgrade::on(&mut self.request);
            let options = ServerOptions::default().compression(None);
            let (response, _) = self.upgrade.accept(None, &HeaderMap::new(), options).ok()?;
            self.respond.send(response.map(|()| Body::default())).ok()?;
            on_upgrade.await.ok().map(TokioIo::new)
        }

        pub(super) fn reject_404(self) {
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::NOT_FOUND;
            let _ = self.respond.send(response);
        }
    }
}

/// The WPT stash endpoint's stand-in: a plain TCP listener that only records what
/// arrives (for "abort before constructing should prevent connection").
#[derive(Debug)]
pub struct StashListener {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl StashListener {
    /// Binds `127.0.0.1:0` and starts recording in a task of the current tokio runtime.
    ///
    /// # Errors
    ///
    /// When the listener cannot be bound.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let connections = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(stash_loop(listener, connections.clone(), bytes.clone()));
        Ok(Self {
            addr,
            connections,
            bytes,
            task,
        })
    }

    /// A `ws://` URL pointing at the listener, shaped like the WPT stash URL.
    pub fn url(&self) -> String {
        format!(
            "ws://{}/fetch/api/resources/stash-put.py?key=wsstream&value=connected",
            self.addr
        )
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Whether any connection was made or any request byte arrived.
    pub fn anything_arrived(&self) -> bool {
        self.connections() > 0 || self.bytes.load(Ordering::Acquire) > 0
    }
}

impl Drop for StashListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stash_loop(listener: TcpListener, connections: Arc<AtomicUsize>, bytes: Arc<AtomicUsize>) {
    let mut readers = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((mut tcp, _)) => {
                    connections.fetch_add(1, Ordering::AcqRel);
                    let bytes = bytes.clone();
                    readers.spawn(async move {
                        let mut buf = [0u8; 4096];
                        while let Ok(n @ 1..) = tcp.read(&mut buf).await {
                            bytes.fetch_add(n, Ordering::AcqRel);
                        }
                    });
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = readers.join_next(), if !readers.is_empty() => {}
        }
    }
}

/// Awaits `future` for at most [`TEST_TIMEOUT`]; panics naming `what` if it takes longer.
pub async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: still pending after {TEST_TIMEOUT:?}"),
    }
}

/// The resident set size of this process (`VmRSS` of `/proc/self/status`) in bytes, or
/// `None` where that file does not exist.
pub fn vm_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}
