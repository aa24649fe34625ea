//! WebSockets over HTTP/2 (RFC 8441), the client side: the choice between HTTP/2 and
//! HTTP/1.1, a pool of HTTP/2 connections shared per origin, the extended `CONNECT`
//! handshake, and the byte stream of one HTTP/2 stream with real flow control. The
//! WebSocket engine above it is the same as over HTTP/1.1.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use url::Url;
use wsstream_proto::ext::deflate::DeflateConfig;
use wsstream_proto::handshake::{ClientHandshake, ClientRequest, HandshakeError};

use crate::client::{Attempt, ConnectError, Established};
use crate::options::{HttpVersionPreference, WebSocketStreamOptions};
use crate::transport::Transport;

/// Flow-control window of each WebSocket stream (RFC 9113 §6.9): how much the server may
/// send on one stream before the application reads it.
const STREAM_WINDOW: u32 = 256 * 1024;

/// Flow-control window of the whole connection: large, so that streams whose readers
/// stopped (each holding at most [`STREAM_WINDOW`] of it) do not stall the others.
const CONNECTION_WINDOW: u32 = 1 << 30;

/// How long an END_STREAM that comes before the closing handshake is held back for a
/// `RST_STREAM` that may follow it.
const RESET_GRACE: Duration = Duration::from_millis(100);

/// After the closing handshake, how long the client waits for the server's END_STREAM
/// before it considers the stream done. Over TCP the client waits for the server to close
/// the connection (so that the server's side is not left in TIME_WAIT); an HTTP/2 stream
/// has no such cost, and a server that never ends its side must not hold the WebSocket's
/// `closed` back.
const END_GRACE: Duration = Duration::from_millis(250);

/// Why a WebSocket over HTTP/2 could not be opened: the source of a
/// [`ConnectError::Http2`](crate::ConnectError::Http2). (Feature `http2`.)
#[derive(Debug)]
pub struct Http2Error {
    kind: Http2ErrorKind,
    source: Option<h2::Error>,
}

/// What went wrong with a WebSocket over HTTP/2; see [`Http2Error::kind`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Http2ErrorKind {
    /// The server did not pick HTTP/2 in the TLS handshake (ALPN `h2`, RFC 9113 §3.2).
    NotNegotiated,
    /// The server speaks HTTP/2 but does not allow WebSockets over it: its SETTINGS do not
    /// set `SETTINGS_ENABLE_CONNECT_PROTOCOL` to 1 (RFC 8441 §3), or it answered the
    /// extended `CONNECT` with `RST_STREAM(HTTP_1_1_REQUIRED)` or
    /// `RST_STREAM(REFUSED_STREAM)`.
    ExtendedConnectNotSupported,
    /// The HTTP/2 connection or stream failed (a protocol error, a reset stream, a
    /// GOAWAY, an I/O error): the source is the `h2` crate's error.
    Protocol,
}

impl Http2Error {
    fn new(kind: Http2ErrorKind, source: Option<h2::Error>) -> Self {
        Self { kind, source }
    }

    /// What went wrong.
    pub fn kind(&self) -> Http2ErrorKind {
        self.kind
    }

    /// The HTTP/2 error code (RFC 9113 §7) of a reset stream or a GOAWAY, if any.
    pub fn reason(&self) -> Option<u32> {
        self.source.as_ref()?.reason().map(u32::from)
    }
}

impl std::fmt::Display for Http2Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            Http2ErrorKind::NotNegotiated => {
                f.write_str("the server did not select HTTP/2 (ALPN h2) in the TLS handshake")
            }
            Http2ErrorKind::ExtendedConnectNotSupported => f.write_str(
                "the server does not allow WebSockets over HTTP/2 (no extended CONNECT, RFC 8441)",
            ),
            Http2ErrorKind::Protocol => f.write_str("the HTTP/2 connection or stream failed"),
        }
    }
}

impl std::error::Error for Http2Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

fn protocol_error(e: h2::Error) -> ConnectError {
    if e.is_io() {
        if let Some(io) = e.into_io() {
            return ConnectError::Io(io);
        }
        return ConnectError::Io(io::Error::other("HTTP/2 I/O error"));
    }
    ConnectError::Http2(Http2Error::new(Http2ErrorKind::Protocol, Some(e)))
}

/// An error before the server's first SETTINGS arrived: an I/O error says that the
/// HTTP/2 connection failed there (a server that does not speak HTTP/2, asked with prior
/// knowledge, closes the connection on the preface).
fn preface_error(e: h2::Error) -> ConnectError {
    match protocol_error(e) {
        ConnectError::Io(io) => ConnectError::Io(io::Error::new(
            io.kind(),
            format!("the HTTP/2 connection failed before the server's SETTINGS: {io}"),
        )),
        other => other,
    }
}

/// What decides whether two connections may share one HTTP/2 connection: the origin, and
/// everything that makes the connection to it (TLS options, proxy).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Origin {
    secure: bool,
    host: String,
    port: u16,
    tls: u64,
    proxy: Option<String>,
}

impl Origin {
    fn new(url: &Url, options: &WebSocketStreamOptions) -> Self {
        let secure = url.scheme() == "wss";
        #[cfg(feature = "tls")]
        let tls = if secure { options.tls.identity() } else { 0 };
        #[cfg(not(feature = "tls"))]
        let tls = 0;
        #[cfg(feature = "proxy")]
        let proxy = match &options.proxy {
            crate::Proxy::None => None,
            crate::Proxy::Url(raw) => Some(raw.clone()),
            crate::Proxy::FromEnv => crate::proxy::from_env(url, &|name| std::env::var(name).ok()),
        };
        #[cfg(not(feature = "proxy"))]
        let proxy = {
            let _ = options;
            None
        };
        Self {
            secure,
            host: url.host_str().unwrap_or_default().to_owned(),
            port: url.port_or_known_default().unwrap_or(80),
            tls,
            proxy,
        }
    }
}

/// One live HTTP/2 connection of the pool. The pool and every WebSocket on it hold an
/// `Arc`; [`IDLE_TIMEOUT`] after its last WebSocket closed the pool lets go of it, the
/// handle drops and the connection closes (GOAWAY).
struct PooledConnection {
    send: SendRequest<Bytes>,
    /// The server's address when the connection is direct TCP (not through a proxy).
    peer: Option<std::net::SocketAddr>,
    /// False once the task that drives the connection has ended.
    alive: Arc<AtomicBool>,
}

impl PooledConnection {
    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Whether one more WebSocket fits within the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
    /// (RFC 9113 §6.5.2). Called on the pool's reference: the other references are the
    /// WebSockets on it and the handshakes under way. A full connection is left to its
    /// WebSockets and a new one takes its place in the pool (waiting for a free stream
    /// could take as long as a WebSocket lives).
    fn has_room(self: &Arc<Self>) -> bool {
        Arc::strong_count(self) - 1 < self.send.current_max_send_streams()
    }
}

/// The slot of one origin: the connection in use (if any), behind an async lock held
/// while a new connection is made, so concurrent first connections share it.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<PooledConnection>>>>;

/// How long an HTTP/2 connection without WebSockets stays open for the next one.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an idle connection is looked at.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// Takes `connection` out of `slot` once no WebSocket has used it for [`IDLE_TIMEOUT`],
/// or at once when it has died.
fn reap_when_idle(slot: Slot, connection: Weak<PooledConnection>) {
    tokio::spawn(async move {
        let mut idle_for = Duration::ZERO;
        loop {
            tokio::time::sleep(IDLE_CHECK).await;
            let Some(live) = connection.upgrade() else {
                return;
            };
            let dead = !live.is_alive();
            // The pool's reference and this one: no WebSocket uses it.
            if Arc::strong_count(&live) <= 2 {
                idle_for += IDLE_CHECK;
            } else {
                idle_for = Duration::ZERO;
            }
            drop(live);
            if dead || idle_for >= IDLE_TIMEOUT {
                // Someone holding the lock may be about to use it: look again later.
                let Ok(mut current) = slot.try_lock() else {
                    continue;
                };
                let ours = current
                    .as_ref()
                    .is_some_and(|c| std::ptr::eq(Arc::as_ptr(c), connection.as_ptr()));
                if ours && (dead || current.as_ref().is_some_and(|c| Arc::strong_count(c) == 1)) {
                    *current = None;
                    return;
                }
                if !ours {
                    return;
                }
                idle_for = Duration::ZERO;
            }
        }
    });
}

/// The process-wide pool: connections per (runtime, origin), since a connection's task
/// lives on one runtime; and the origins known not to do WebSockets over HTTP/2.
#[derive(Default)]
struct Pool {
    slots: HashMap<(tokio::runtime::Id, Origin), Slot>,
    no_h2: HashSet<Origin>,
}

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    static POOL: OnceLock<Mutex<Pool>> = OnceLock::new();
    POOL.get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn slot(origin: &Origin) -> Slot {
    let runtime = tokio::runtime::Handle::current().id();
    let mut pool = pool();
    // Forget origins with neither a live connection nor anyone connecting (a connection
    // whose runtime is gone is dead).
    pool.slots.retain(|_, slot| {
        Arc::strong_count(slot) > 1
            || slot
                .try_lock()
                .map_or(true, |c| c.as_ref().is_some_and(|c| c.is_alive()))
    });
    pool.slots
        .entry((runtime, origin.clone()))
        .or_default()
        .clone()
}

fn remember_no_h2(origin: &Origin) {
    pool().no_h2.insert(origin.clone());
}

/// The outcome of the HTTP/2 side of a handshake attempt.
pub(crate) enum H2Attempt {
    /// The handshake went over HTTP/2: opened, redirected or refused.
    Done(Attempt),
    /// HTTP/1.1 as without HTTP/2: over this connection (TLS picked `http/1.1`), or over
    /// a new one made as usual.
    Http1(Option<Transport>),
    /// HTTP/1.1 after HTTP/2 failed: over a new connection offering only `http/1.1`.
    Http1Fallback,
}

/// The HTTP/2 side of one handshake attempt to `url`, as
/// [`http_version`](WebSocketStreamOptions::http_version) asks.
pub(crate) async fn connect(
    url: &Url,
    options: &WebSocketStreamOptions,
    headers: &[(String, String)],
) -> Result<H2Attempt, ConnectError> {
    let secure = url.scheme() == "wss";
    let only = match (options.http_version, secure) {
        (HttpVersionPreference::Http2Only, _) => true,
        (HttpVersionPreference::Auto, true) => false,
        _ => return Ok(H2Attempt::Http1(None)),
    };
    if secure && !cfg!(feature = "tls") {
        // The HTTP/1.1 path reports that `wss://` needs TLS.
        return Ok(H2Attempt::Http1(None));
    }
    let origin = Origin::new(url, options);
    if !only && pool().no_h2.contains(&origin) {
        return Ok(H2Attempt::Http1Fallback);
    }
    let not_supported = |source: Option<h2::Error>| {
        if only {
            Err(Http2Error::new(
                Http2ErrorKind::ExtendedConnectNotSupported,
                source,
            ))
        } else {
            remember_no_h2(&origin);
            Ok(H2Attempt::Http1Fallback)
        }
    };
    let request = Handshake::new(url, options, headers).map_err(ConnectError::Handshake)?;
    // A pooled connection may turn out to be going away: then one more try on a new one.
    let mut retried = false;
    loop {
        let slot = slot(&origin);
        let (connection, reused) = {
            let mut current = slot.lock().await;
            match current
                .as_ref()
                .filter(|c| c.is_alive() && c.has_room())
                .cloned()
            {
                Some(connection) => (connection, true),
                None => match new_connection(url, options).await? {
                    NewConnection::Http2(connection) => {
                        *current = Some(connection.clone());
                        reap_when_idle(slot.clone(), Arc::downgrade(&connection));
                        (connection, false)
                    }
                    NewConnection::NoExtendedConnect => {
                        return not_supported(None).map_err(ConnectError::Http2);
                    }
                    NewConnection::Http1(_) if only => {
                        return Err(ConnectError::Http2(Http2Error::new(
                            Http2ErrorKind::NotNegotiated,
                            None,
                        )));
                    }
                    NewConnection::Http1(transport) => {
                        remember_no_h2(&origin);
                        return Ok(H2Attempt::Http1(Some(transport)));
                    }
                },
            }
        };
        match request.send(&connection).await {
            Ok((response, send)) => {
                return Ok(
                    match request.response(response, send, connection, only).await? {
                        Some(attempt) => H2Attempt::Done(attempt),
                        None => {
                            remember_no_h2(&origin);
                            H2Attempt::Http1Fallback
                        }
                    },
                );
            }
            Err(e) if e.reason() == Some(Reason::HTTP_1_1_REQUIRED) => {
                return not_supported(Some(e)).map_err(ConnectError::Http2);
            }
            // RFC 9113 §8.7: the request was not processed; for a WebSocket, the server
            // did not want it over HTTP/2.
            Err(e) if e.reason() == Some(Reason::REFUSED_STREAM) && !e.is_go_away() => {
                if only {
                    return not_supported(Some(e)).map_err(ConnectError::Http2);
                }
                return Ok(H2Attempt::Http1Fallback);
            }
            Err(e) if reused && !retried && !e.is_reset() => {
                // The connection went away (GOAWAY, closed) before this stream was
                // answered: replace it.
                connection.alive.store(false, Ordering::Release);
                let mut current = slot.lock().await;
                if current
                    .as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &connection))
                {
                    *current = None;
                }
                retried = true;
            }
            Err(e) => return Err(protocol_error(e)),
        }
    }
}

/// The handshake over a caller's stream ([`WebSocketStream::with_stream`]) with
/// [`HttpVersionPreference::Http2Only`]: an HTTP/2 connection of its own over `stream`
/// (TLS offering `h2` first for `wss://`, prior knowledge for `ws://`), not pooled,
/// carrying this one WebSocket and closing with it.
///
/// [`WebSocketStream::with_stream`]: crate::WebSocketStream::with_stream
pub(crate) async fn connect_over(
    stream: Box<dyn crate::transport::AsyncIo>,
    url: &Url,
    options: &WebSocketStreamOptions,
    headers: &[(String, String)],
) -> Result<Attempt, ConnectError> {
    let request = Handshake::new(url, options, headers).map_err(ConnectError::Handshake)?;
    let connection = match connection_over(Transport::Other(stream), url, options).await? {
        NewConnection::Http2(connection) => connection,
        NewConnection::NoExtendedConnect => {
            return Err(ConnectError::Http2(Http2Error::new(
                Http2ErrorKind::ExtendedConnectNotSupported,
                None,
            )));
        }
        NewConnection::Http1(_) => {
            return Err(ConnectError::Http2(Http2Error::new(
                Http2ErrorKind::NotNegotiated,
                None,
            )));
        }
    };
    let (response, send) = match request.send(&connection).await {
        Ok(sent) => sent,
        Err(e)
            if matches!(
                e.reason(),
                Some(Reason::HTTP_1_1_REQUIRED | Reason::REFUSED_STREAM)
            ) =>
        {
            return Err(ConnectError::Http2(Http2Error::new(
                Http2ErrorKind::ExtendedConnectNotSupported,
                Some(e),
            )));
        }
        Err(e) => return Err(protocol_error(e)),
    };
    match request.response(response, send, connection, true).await? {
        Some(attempt) => Ok(attempt),
        None => unreachable!("asked for HTTP/2 only, a refusal is an error"),
    }
}

/// A new connection for HTTP/2.
enum NewConnection {
    /// Running, with extended `CONNECT` allowed.
    Http2(Arc<PooledConnection>),
    /// HTTP/2 without extended `CONNECT` (the connection is closed again).
    NoExtendedConnect,
    /// TLS picked HTTP/1.1 (or no protocol): the connection, for the HTTP/1.1 handshake.
    Http1(Transport),
}

/// TCP (or a proxy tunnel), TLS offering `h2` for `wss://`, the HTTP/2 preface, and the
/// server's first SETTINGS: whether it allows extended `CONNECT` (RFC 8441 §3).
async fn new_connection(
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<NewConnection, ConnectError> {
    let io = crate::transport::tcp::connect(url, options).await?;
    connection_over(io, url, options).await
}

/// [`new_connection`] over `io`, a connection already made.
async fn connection_over(
    io: Transport,
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<NewConnection, ConnectError> {
    let peer = io.peer_addr();
    let io = if url.scheme() == "wss" {
        match secure(io, url, options).await? {
            (io, true) => io,
            (io, false) => return Ok(NewConnection::Http1(io)),
        }
    } else {
        io
    };
    let (send, mut connection) = h2::client::Builder::new()
        .initial_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .handshake::<_, Bytes>(io)
        .await
        .map_err(preface_error)?;
    let ping = connection.ping_pong();
    let alive = Arc::new(AtomicBool::new(true));
    let guard = AliveGuard(alive.clone());
    // The connection's I/O runs on a task of its own: every stream needs it driven,
    // whichever WebSocket is being read or written (errors reach the streams).
    tokio::spawn(async move {
        let _guard = guard;
        let _ = connection.await;
    });
    let mut send = send.ready().await.map_err(preface_error)?;
    if !send.is_extended_connect_protocol_enabled() {
        // The server's SETTINGS is its first frame (RFC 9113 §3.4), so once the answer to
        // a PING is here its settings are known.
        if let Some(mut ping) = ping {
            ping.ping(h2::Ping::opaque()).await.map_err(preface_error)?;
        }
        send = send.ready().await.map_err(preface_error)?;
    }
    if !send.is_extended_connect_protocol_enabled() {
        return Ok(NewConnection::NoExtendedConnect);
    }
    Ok(NewConnection::Http2(Arc::new(PooledConnection {
        send,
        peer,
        alive,
    })))
}

/// Marks a connection dead when its task ends (also when the runtime drops the task).
struct AliveGuard(Arc<AtomicBool>);

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// TLS for an HTTP/2 attempt, and whether the server picked `h2`.
#[cfg(feature = "tls")]
async fn secure(
    io: Transport,
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<(Transport, bool), ConnectError> {
    use crate::transport::tls;
    let config = options.tls.client_config_h2().map_err(ConnectError::Tls)?;
    let h2 = |alpn: Option<&[u8]>| alpn == Some(tls::ALPN_H2);
    Ok(match io {
        Transport::Tcp(tcp) => {
            let stream = tls::connect_with(tcp, url, config)
                .await
                .map_err(ConnectError::Tls)?;
            let is_h2 = h2(stream.get_ref().1.alpn_protocol());
            (Transport::Tls(Box::new(stream)), is_h2)
        }
        tunnel => {
            let stream = tls::connect_with(tunnel, url, config)
                .await
                .map_err(ConnectError::Tls)?;
            let is_h2 = h2(stream.get_ref().1.alpn_protocol());
            (Transport::Other(Box::new(stream)), is_h2)
        }
    })
}

#[cfg(not(feature = "tls"))]
async fn secure(
    _io: Transport,
    _url: &Url,
    _options: &WebSocketStreamOptions,
) -> Result<(Transport, bool), ConnectError> {
    Err(ConnectError::Tls(io::Error::new(
        io::ErrorKind::Unsupported,
        "wss:// needs TLS: enable wsstream's `rustls-aws-lc-rs` or `rustls-ring` feature",
    )))
}

/// The connection of an HTTP/1.1 attempt after HTTP/2 failed: for `wss://`, TLS offering
/// `http/1.1` alone.
pub(crate) async fn http11_transport(
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<Transport, ConnectError> {
    let io = crate::transport::tcp::connect(url, options).await?;
    if url.scheme() != "wss" {
        return Ok(io);
    }
    #[cfg(feature = "tls")]
    {
        use crate::transport::tls;
        let config = options
            .tls
            .client_config_http11()
            .map_err(ConnectError::Tls)?;
        Ok(match io {
            Transport::Tcp(tcp) => Transport::Tls(Box::new(
                tls::connect_with(tcp, url, config)
                    .await
                    .map_err(ConnectError::Tls)?,
            )),
            tunnel => Transport::Other(Box::new(
                tls::connect_with(tunnel, url, config)
                    .await
                    .map_err(ConnectError::Tls)?,
            )),
        })
    }
    #[cfg(not(feature = "tls"))]
    secure(io, url, options).await.map(|(io, _)| io)
}

/// HTTP/1.1 connection headers, which HTTP/2 does not have (RFC 9113 §8.2.2): left out of
/// the extra headers over HTTP/2.
const CONNECTION_HEADERS: [&str; 4] = ["keep-alive", "proxy-connection", "transfer-encoding", "te"];

/// The extended `CONNECT` request of RFC 8441 §4–5, and what checks its response.
struct Handshake {
    /// `:scheme`, `:authority` and `:path`.
    uri: http::Uri,
    headers: http::HeaderMap,
    /// The same validation as the HTTP/1.1 handshake (its key is not used).
    checks: ClientHandshake,
    compression: Option<DeflateConfig>,
}

impl Handshake {
    fn new(
        url: &Url,
        options: &WebSocketStreamOptions,
        headers: &[(String, String)],
    ) -> Result<Self, HandshakeError> {
        let resource = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let compression = options
            .compression
            .as_ref()
            .filter(|_| cfg!(feature = "deflate"));
        let offer = compression.map(DeflateConfig::client_offer);
        let host = url.host_str().unwrap_or_default();
        let checks = ClientHandshake::new(&ClientRequest {
            host,
            port: url.port(),
            resource: &resource,
            protocols: &options.protocols,
            extensions: offer.as_deref(),
            headers,
        })?;
        let scheme = if url.scheme() == "wss" {
            "https"
        } else {
            "http"
        };
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let invalid = HandshakeError::InvalidRequest;
        let uri = http::Uri::try_from(format!("{scheme}://{authority}{resource}"))
            .map_err(|e| invalid(e.to_string()))?;
        let mut fields = http::HeaderMap::new();
        fields.insert("sec-websocket-version", HeaderValue::from_static("13"));
        if !options.protocols.is_empty() {
            let value = HeaderValue::try_from(options.protocols.join(", "))
                .map_err(|e| invalid(e.to_string()))?;
            fields.insert("sec-websocket-protocol", value);
        }
        if let Some(offer) = offer.filter(|o| !o.is_empty()) {
            let value = HeaderValue::try_from(offer).map_err(|e| invalid(e.to_string()))?;
            fields.insert("sec-websocket-extensions", value);
        }
        for (name, value) in headers {
            if CONNECTION_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
            {
                continue;
            }
            let bad = || HandshakeError::InvalidHeader(name.clone());
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad())?;
            let value = HeaderValue::from_str(value).map_err(|_| bad())?;
            fields.append(name, value);
        }
        Ok(Self {
            uri,
            headers: fields,
            checks,
            compression: compression.cloned(),
        })
    }

    /// Opens the stream and waits for the response head.
    async fn send(
        &self,
        connection: &PooledConnection,
    ) -> Result<(http::Response<RecvStream>, SendStream<Bytes>), h2::Error> {
        let mut send = connection.send.clone().ready().await?;
        // RFC 8441 §4: `:method CONNECT` with `:protocol websocket`, and `:scheme`, `:path`
        // and `:authority` as for any request.
        let mut request = Request::new(());
        *request.method_mut() = Method::CONNECT;
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = self.headers.clone();
        request
            .extensions_mut()
            .insert(h2::ext::Protocol::from_static("websocket"));
        let (response, stream) = send.send_request(request, false)?;
        Ok((response.await?, stream))
    }

    /// The server's answer: `Some` attempt (opened, redirect), `None` when HTTP/1.1 should
    /// be used instead, or the refusal.
    async fn response(
        &self,
        response: http::Response<RecvStream>,
        send: SendStream<Bytes>,
        connection: Arc<PooledConnection>,
        only: bool,
    ) -> Result<Option<Attempt>, ConnectError> {
        let status = response.status();
        let (parts, mut recv) = response.into_parts();
        if status.is_success() {
            // RFC 8441 §5: a 2xx response opens the WebSocket; the subprotocol and
            // extension checks are those of HTTP/1.1.
            let fields: Vec<(&str, &[u8])> = parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes()))
                .collect();
            let checked = self
                .checks
                .check_h2_response(&fields)
                .map_err(ConnectError::Handshake)?;
            let deflate = crate::client::accept_extensions(self.compression.as_ref(), &checked)
                .map_err(ConnectError::Extension)?;
            let head = crate::handshake::h2_head(status, &parts.headers);
            let peer = connection.peer;
            return Ok(Some(Attempt::Open(Box::new(Established {
                io: Transport::Other(Box::new(H2Stream {
                    send,
                    recv,
                    chunk: Bytes::new(),
                    shut_down: false,
                    received_end: false,
                    sent_end: false,
                    reset_grace: None,
                    end_grace: None,
                    _connection: connection,
                }))
                .with_peer(peer),
                leftover: BytesMut::new(),
                head,
                protocol: checked.protocol.unwrap_or_default(),
                extensions: deflate
                    .as_ref()
                    .map(|(params, _)| params.to_header_value())
                    .unwrap_or_default(),
                deflate,
            }))));
        }
        let reason = status.canonical_reason().unwrap_or_default().to_owned();
        if crate::redirect::is_redirect(status.as_u16()) {
            if let Some(location) = parts
                .headers
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
            {
                return Ok(Some(Attempt::Redirect {
                    error: HandshakeError::Status {
                        status: status.as_u16(),
                        reason,
                    },
                    location: location.to_owned(),
                }));
            }
        }
        // How servers say they do not do this over HTTP/2; asked for HTTP/2 only, the
        // refusal is the error, with its status.
        if !only
            && matches!(
                status,
                StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED
            )
        {
            return Ok(None);
        }
        // The first bytes of the body, as for an HTTP/1.1 refusal.
        let mut body = BytesMut::new();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        while body.len() < crate::handshake::REJECTION_BODY_LIMIT {
            match tokio::time::timeout_at(deadline, recv.data()).await {
                Ok(Some(Ok(data))) => {
                    let _ = recv.flow_control().release_capacity(data.len());
                    body.extend_from_slice(&data);
                }
                _ => break,
            }
        }
        body.truncate(crate::handshake::REJECTION_BODY_LIMIT);
        let mut head = http::Response::new(());
        *head.status_mut() = status;
        *head.version_mut() = http::Version::HTTP_2;
        *head.headers_mut() = parts.headers;
        Err(ConnectError::Rejected(crate::HandshakeRejection::new(
            head,
            reason,
            body.freeze(),
        )))
    }
}

/// One WebSocket's HTTP/2 stream as a byte stream, with the flow control of RFC 9113
/// §5.2: a write completes only as far as the send window allows, and the receive window
/// reopens only by the bytes the WebSocket engine has taken (which it does only when the
/// application reads), so a reader that stops stops its own stream and no other.
struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    /// Received bytes not yet taken.
    chunk: Bytes,
    /// The engine is done writing (`poll_shutdown`).
    shut_down: bool,
    /// The server's END_STREAM was read.
    received_end: bool,
    /// Our END_STREAM was sent.
    sent_end: bool,
    /// The wait for a reset after an early END_STREAM.
    reset_grace: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The wait for the server's END_STREAM after the closing handshake.
    end_grace: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Keeps the connection in the pool while this stream lives.
    _connection: Arc<PooledConnection>,
}

/// An HTTP/2 error as an I/O error: the `h2::Error` (with its reason) stays inside, for
/// `get_ref()` / downcasting.
fn io_error(e: h2::Error) -> io::Error {
    let kind = if e.is_reset() || e.is_go_away() {
        io::ErrorKind::ConnectionReset
    } else {
        io::ErrorKind::Other
    };
    io::Error::new(kind, e)
}

/// The server reset the stream with `reason` (RFC 9113 §6.4).
fn reset_error(reason: Reason) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, h2::Error::from(reason))
}

impl H2Stream {
    /// Sends END_STREAM (an empty DATA frame, RFC 8441 §5: the orderly close of the
    /// byte stream, as TCP's FIN) once the engine is done writing (after the closing
    /// handshake) and the server has ended its side. Like a WebSocket client over TCP,
    /// which leaves closing the connection to the server (RFC 6455 §7.1.1), the client
    /// does not end its side first: some servers (Hypercorn 0.18) forget a WebSocket
    /// stream once its closing handshake is over without ending it, and tear down the
    /// whole HTTP/2 connection, every other WebSocket on it included, when DATA arrives
    /// on it afterwards. A server that has not ended its side within [`END_GRACE`] of the
    /// closing handshake gets `RST_STREAM(CANCEL)` instead, when the stream is dropped
    /// (the WebSocket's close stays clean: it is complete).
    fn end_stream_if_due(&mut self) {
        if self.shut_down && self.received_end && !self.sent_end {
            self.sent_end = true;
            // If the stream is already reset there is nothing to end.
            let _ = self.send.send_data(Bytes::new(), true);
        }
    }

    /// Why the send side is closed: the peer's reset if there was one.
    fn send_closed(&mut self, cx: &mut Context<'_>) -> io::Error {
        match self.send.poll_reset(cx) {
            Poll::Ready(Ok(reason)) => reset_error(reason),
            Poll::Ready(Err(e)) => io_error(e),
            Poll::Pending => io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the HTTP/2 stream is closed for sending",
            ),
        }
    }
}

impl AsyncRead for H2Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.chunk.is_empty() {
                let n = this.chunk.len().min(buf.remaining());
                buf.put_slice(&this.chunk[..n]);
                this.chunk.advance(n);
                // These bytes are taken now: the window reopens by as much (and not
                // before, so an unread stream keeps its window closed).
                let _ = this.recv.flow_control().release_capacity(n);
                return Poll::Ready(Ok(()));
            }
            let polled = this.recv.poll_data(cx);
            if polled.is_pending() && this.shut_down && !this.received_end {
                let grace = this
                    .end_grace
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(END_GRACE)));
                ready!(grace.as_mut().poll(cx));
                // The server keeps its side open after the closing handshake: the stream
                // is done all the same (dropping it resets it).
                return Poll::Ready(Ok(()));
            }
            match ready!(polled) {
                Some(Ok(data)) => this.chunk = data,
                Some(Err(e)) => return Poll::Ready(Err(io_error(e))),
                // END_STREAM: the server's end of the byte stream, unless a reset came
                // right behind it (Node, for one, ends a stream before resetting it).
                None => {
                    if let Poll::Ready(Ok(reason)) = this.send.poll_reset(cx) {
                        return Poll::Ready(Err(reset_error(reason)));
                    }
                    // An end before our side is done is no orderly close: wait a moment
                    // for a reset that may follow, so that its code reaches the
                    // application.
                    if !this.shut_down && !this.received_end {
                        let grace = this
                            .reset_grace
                            .get_or_insert_with(|| Box::pin(tokio::time::sleep(RESET_GRACE)));
                        ready!(grace.as_mut().poll(cx));
                    }
                    this.received_end = true;
                    this.end_stream_if_due();
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            this.send.reserve_capacity(buf.len());
            let capacity = this.send.capacity();
            if capacity > 0 {
                let n = capacity.min(buf.len());
                return Poll::Ready(
                    match this
                        .send
                        .send_data(Bytes::copy_from_slice(&buf[..n]), false)
                    {
                        Ok(()) => Ok(n),
                        Err(_) => Err(this.send_closed(cx)),
                    },
                );
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return Poll::Ready(Err(this.send_closed(cx))),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The connection's task writes whatever the streams queued.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.shut_down = true;
        if this.recv.is_end_stream() {
            this.received_end = true;
        }
        this.end_stream_if_due();
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_a_sendable_std_error_with_the_h2_error_as_source() {
        fn usable<E: std::error::Error + Send + Sync + 'static>(_: &E) {}
        let error = Http2Error::new(
            Http2ErrorKind::ExtendedConnectNotSupported,
            Some(h2::Error::from(Reason::HTTP_1_1_REQUIRED)),
        );
        usable(&error);
        assert_eq!(error.kind(), Http2ErrorKind::ExtendedConnectNotSupported);
        assert_eq!(error.reason(), Some(0xd));
        let source = std::error::Error::source(&error).unwrap();
        assert!(source.downcast_ref::<h2::Error>().is_some());
        let error = Http2Error::new(Http2ErrorKind::NotNegotiated, None);
        assert_eq!(error.reason(), None);
        assert!(error.to_string().contains("ALPN h2"));
    }

    /// A pooled connection over an in-memory pipe to an h2 server that accepts streams
    /// and answers none; the server side ends when `stop` fires.
    async fn pooled_connection(
        stop: tokio::sync::oneshot::Receiver<()>,
    ) -> (Arc<PooledConnection>, Arc<AtomicBool>) {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        tokio::spawn(async move {
            let mut server = h2::server::handshake(server_io).await.unwrap();
            tokio::select! {
                _ = async { while server.accept().await.is_some() {} } => {}
                _ = stop => {}
            }
        });
        let (send, connection) = h2::client::handshake(client_io).await.unwrap();
        let alive = Arc::new(AtomicBool::new(true));
        let guard = AliveGuard(alive.clone());
        tokio::spawn(async move {
            let _guard = guard;
            let _ = connection.await;
        });
        let send = send.ready().await.unwrap();
        (
            Arc::new(PooledConnection {
                send,
                peer: None,
                alive: alive.clone(),
            }),
            alive,
        )
    }

    async fn is_pooled(slot: &Slot) -> bool {
        slot.lock().await.is_some()
    }

    /// Whether the connection's task ends within a second (of the paused clock).
    async fn ends(alive: &AtomicBool) -> bool {
        for _ in 0..100 {
            if !alive.load(Ordering::Acquire) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_in_use_stays_pooled_and_an_idle_one_closes_after_the_idle_timeout() {
        let (_stop, stop) = tokio::sync::oneshot::channel();
        let (connection, alive) = pooled_connection(stop).await;
        let slot: Slot = Arc::default();
        *slot.lock().await = Some(connection.clone());
        // `connection` stands for a WebSocket on it.
        reap_when_idle(slot.clone(), Arc::downgrade(&connection));
        tokio::time::sleep(IDLE_TIMEOUT * 3).await;
        assert!(is_pooled(&slot).await, "a connection in use left the pool");
        drop(connection);
        tokio::time::sleep(IDLE_TIMEOUT - IDLE_CHECK * 2).await;
        assert!(
            is_pooled(&slot).await,
            "left the pool before the idle timeout"
        );
        tokio::time::sleep(IDLE_CHECK * 3).await;
        assert!(
            !is_pooled(&slot).await,
            "still pooled after the idle timeout"
        );
        // With the last handle gone, h2 closes the connection (GOAWAY) and its task ends.
        assert!(
            ends(&alive).await,
            "the connection was not closed after leaving the pool"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dead_connection_leaves_the_pool_at_once() {
        let (stop_server, stop) = tokio::sync::oneshot::channel();
        let (connection, alive) = pooled_connection(stop).await;
        let slot: Slot = Arc::default();
        *slot.lock().await = Some(connection.clone());
        reap_when_idle(slot.clone(), Arc::downgrade(&connection));
        let _websocket = connection;
        stop_server.send(()).unwrap();
        assert!(ends(&alive).await, "the server's end went unnoticed");
        tokio::time::sleep(IDLE_CHECK * 2).await;
        assert!(
            !is_pooled(&slot).await,
            "a dead connection stayed pooled while a WebSocket held it"
        );
    }

    #[test]
    fn a_reset_becomes_a_connection_reset_carrying_its_code() {
        let error = reset_error(Reason::CANCEL);
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        let h2 = error
            .get_ref()
            .unwrap()
            .downcast_ref::<h2::Error>()
            .unwrap();
        assert_eq!(h2.reason(), Some(Reason::CANCEL));
    }
}
