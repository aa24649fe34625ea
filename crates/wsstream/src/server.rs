//! The server side: accept a WebSocket upgrade on any byte stream and get the same
//! [`WebSocketStream`] API, in the server role.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let (tcp, _) = listener.accept().await?;
//! let upgrade = wsstream::server::read_request(tcp).await?;
//! println!("path: {}", upgrade.request().resource);
//! let wss = upgrade.accept(None, wsstream::server::ServerOptions::default()).await?;
//! let info = wss.opened().await?;
//! # let _ = info; Ok(()) }
//! ```
//!
//! ## Inside an HTTP server (hyper, axum, …)
//!
//! A server that parses HTTP itself holds the upgrade request as `http` types, and
//! serves pages and WebSocket routes on one port. [`HttpUpgrade::from_request`] validates
//! such a request with the same rules as [`read_request`] (RFC 6455 §4.2.1; an invalid
//! one gets [`error_response`]: 400, or 426 with `Sec-WebSocket-Version: 13`),
//! [`HttpUpgrade::accept`] returns the `101` as an `http::Response<()>` for the server to
//! send, and [`Accepted::into_stream`] runs the connection over the I/O the server hands
//! over afterwards. Two features wrap this for the common servers, neither on by default:
//!
//! * `hyper`: `server::hyper::HyperUpgrade` in a hyper 1.x service, returning the `101`
//!   and a future of the stream;
//! * `axum` (implies `hyper`): the `server::axum::WebSocketUpgrade` extractor, whose
//!   `on_upgrade` runs a callback with the stream.
//!
//! With the `http2` feature as well, both accept WebSockets over HTTP/2 (RFC 8441): an
//! extended CONNECT stream is validated by the same [`HttpUpgrade::from_request`],
//! answered with `200` instead of `101`, and runs the same connection over the stream;
//! `server::hyper` describes how to serve HTTP/2 for it.
//!
//! ## TLS (`wss://`)
//!
//! TLS is a layer below the upgrade: make a [`TlsAcceptor`] once (from PEM files with
//! [`TlsAcceptor::from_pem`], or from any rustls `ServerConfig` with [`TlsAcceptor::new`]),
//! then either [`read_request_tls`] / [`accept_tls`] (TLS handshake, then the upgrade
//! request), or [`TlsAcceptor::accept`] followed by [`read_request`] on the TLS stream
//! when the stream is needed first (e.g. to look at the SNI name or the client's
//! certificate). The server-role stream behaves the same over TLS; its
//! [`url`](WebSocketStream::url) starts with `wss://` when the request came through
//! [`read_request_tls`] or [`accept_tls`].
//!
//! ## Handshake timeout
//!
//! A client gets [`ServerOptions::handshake_timeout`] (default
//! [`DEFAULT_HANDSHAKE_TIMEOUT`], 10 s) to complete the whole upgrade: the TLS handshake,
//! the request head and the writing of the response. A client that connects and sends
//! nothing, or trickles its request one byte at a time (slowloris), fails with
//! [`AcceptError::Timeout`] once the deadline passes, and the stream is dropped (closed).
//! [`accept`] and [`accept_tls`] apply the option; [`read_request`] and
//! [`read_request_tls`] apply the default, and [`read_request_with_timeout`] /
//! [`read_request_tls_with_timeout`] take the limit (`None` for none).

use std::future::Future;
use std::io;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;
use wsstream_proto::ext::deflate::DeflateConfig;
use wsstream_proto::handshake::{HandshakeError, HandshakeRequest, parse_request, reject_response};
use wsstream_proto::{Connection, Role};

use crate::WebSocketStream;
use crate::conn::{OpenState, Shared};
use crate::driver::Driver;
use crate::options::DEFAULT_CLOSE_TIMEOUT;
use crate::transport::{AsyncIo, Transport};

mod http_upgrade;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "hyper")]
pub mod hyper;

pub use http_upgrade::{Accepted, HttpUpgrade, error_response};

#[cfg(feature = "tls")]
pub use crate::transport::tls::TlsAcceptor;
/// The server side of a TLS connection, as [`TlsAcceptor::accept`] returns it.
#[cfg(feature = "tls")]
pub use tokio_rustls::server::TlsStream;
pub use wsstream_proto::config::ConfigError;
/// One element of the client's `Sec-WebSocket-Extensions` ([`Request::extensions`]).
pub use wsstream_proto::handshake::ExtensionOffer;
pub use wsstream_proto::handshake::HandshakeRequest as Request;
pub use wsstream_proto::handshake::RequestError;

/// Limits of a server-side connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerOptions {
    /// Largest message accepted (and frame); default 64 MiB.
    pub max_message_size: usize,
    /// How long to wait for the client's Close frame after ours; default 30 s.
    pub close_timeout: Duration,
    /// Cap of encoded outgoing bytes waiting for the socket; default 64 KiB.
    pub send_buffer_size: usize,
    /// permessage-deflate policy (RFC 7692): `Some` (the default) accepts the client's
    /// first acceptable offer; `None` declines compression. Without the `deflate` feature
    /// compression is always declined.
    pub compression: Option<DeflateConfig>,
    /// Bound on the whole upgrade, from the first byte awaited to the response written
    /// (including the TLS handshake with [`accept_tls`]); default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s). Past it the upgrade fails with
    /// [`AcceptError::Timeout`] and the stream is closed. `None` waits forever.
    pub handshake_timeout: Option<Duration>,
    /// Keepalive: send a Ping every `ping_interval` while the connection is open, to keep
    /// intermediaries from dropping an idle connection and to notice a client that is gone.
    /// Default `None` (no pings).
    pub ping_interval: Option<Duration>,
    /// With [`ping_interval`](Self::ping_interval): when nothing at all arrives within this
    /// time after a Ping, the client is considered gone and the connection closes
    /// uncleanly (1006; the WebSocketError's source says the peer stopped answering). Not
    /// enforced while the application leaves a received message unread. Default
    /// [`DEFAULT_PING_TIMEOUT`](crate::DEFAULT_PING_TIMEOUT) (20 s).
    pub ping_timeout: Duration,
}

/// Default [`ServerOptions::handshake_timeout`], also applied by [`read_request`] and
/// [`read_request_tls`]: 10 s.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_message_size: wsstream_proto::config::DEFAULT_MAX_MESSAGE_SIZE,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            send_buffer_size: wsstream_proto::config::DEFAULT_SEND_BUFFER,
            compression: Some(DeflateConfig::default()),
            handshake_timeout: Some(DEFAULT_HANDSHAKE_TIMEOUT),
            ping_interval: None,
            ping_timeout: crate::DEFAULT_PING_TIMEOUT,
        }
    }
}

/// Builder-style setters, one per field (the struct is `#[non_exhaustive]`, so new
/// options can be added without breaking code that sets the ones it knows):
/// `ServerOptions::default().max_message_size(…)`. Assigning a field of a value works as well.
impl ServerOptions {
    /// Sets [`max_message_size`](Self::max_message_size).
    #[must_use]
    pub fn max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = max_message_size;
        self
    }

    /// Sets [`close_timeout`](Self::close_timeout).
    #[must_use]
    pub fn close_timeout(mut self, close_timeout: Duration) -> Self {
        self.close_timeout = close_timeout;
        self
    }

    /// Sets [`send_buffer_size`](Self::send_buffer_size).
    #[must_use]
    pub fn send_buffer_size(mut self, send_buffer_size: usize) -> Self {
        self.send_buffer_size = send_buffer_size;
        self
    }

    /// Sets [`compression`](Self::compression).
    #[must_use]
    pub fn compression(mut self, compression: Option<DeflateConfig>) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    #[must_use]
    pub fn handshake_timeout(mut self, handshake_timeout: Option<Duration>) -> Self {
        self.handshake_timeout = handshake_timeout;
        self
    }

    /// Sets [`ping_interval`](Self::ping_interval).
    #[must_use]
    pub fn ping_interval(mut self, ping_interval: Option<Duration>) -> Self {
        self.ping_interval = ping_interval;
        self
    }

    /// Sets [`ping_timeout`](Self::ping_timeout).
    #[must_use]
    pub fn ping_timeout(mut self, ping_timeout: Duration) -> Self {
        self.ping_timeout = ping_timeout;
        self
    }
}

/// The deadline of one upgrade, if it has one.
#[derive(Clone, Copy, Debug)]
struct Deadline(Option<(Instant, Duration)>);

impl Deadline {
    /// `limit` from now (no deadline for `None`, or a limit too large to represent).
    fn after(limit: Option<Duration>) -> Self {
        Self(limit.and_then(|limit| Some((Instant::now().checked_add(limit)?, limit))))
    }

    /// Runs `step`, failing with [`AcceptError::Timeout`] if the deadline passes first.
    async fn run<T>(
        self,
        step: impl Future<Output = Result<T, AcceptError>>,
    ) -> Result<T, AcceptError> {
        match self.0 {
            None => step.await,
            Some((at, limit)) => tokio::time::timeout_at(at, step)
                .await
                .unwrap_or(Err(AcceptError::Timeout(limit))),
        }
    }
}

/// Why an upgrade failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// Reading or writing the socket failed.
    Io(io::Error),
    /// The TLS handshake failed (e.g. the client rejected our certificate, or offered
    /// none when one is required); the source is the rustls error when there is one.
    #[cfg(feature = "tls")]
    Tls(io::Error),
    /// The request was not a valid WebSocket upgrade; the 400/426/431 response has been
    /// sent.
    Request(RequestError),
    /// The client closed the connection before sending a complete request.
    Closed,
    /// Invalid [`ServerOptions`].
    Config(ConfigError),
    /// The response the application asked for cannot be sent: a subprotocol the client
    /// did not offer (or not a token), or an extra header the handshake sets itself
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-*`) or that is not valid. Nothing was
    /// sent; the stream has been closed.
    Response(HandshakeError),
    /// The client did not complete the upgrade (TLS handshake, request head, response)
    /// within the handshake timeout, given here ([`ServerOptions::handshake_timeout`]);
    /// the stream has been closed.
    Timeout(Duration),
}

impl std::fmt::Display for AcceptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "I/O error during the upgrade: {e}"),
            #[cfg(feature = "tls")]
            Self::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Self::Request(e) => write!(f, "bad upgrade request: {e}"),
            Self::Closed => f.write_str("the client closed the connection before the upgrade"),
            Self::Config(e) => e.fmt(f),
            Self::Response(e) => write!(f, "the response cannot be sent: {e}"),
            Self::Timeout(limit) => {
                write!(
                    f,
                    "the client did not complete the upgrade within {limit:?}"
                )
            }
        }
    }
}

impl std::error::Error for AcceptError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            #[cfg(feature = "tls")]
            Self::Tls(e) => Some(e),
            Self::Request(e) => Some(e),
            Self::Config(e) => Some(e),
            Self::Response(e) => Some(e),
            Self::Closed | Self::Timeout(_) => None,
        }
    }
}

impl From<io::Error> for AcceptError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// A parsed upgrade request, not yet answered: inspect it, then
/// [`accept`](Self::accept) or [`reject`](Self::reject).
pub struct UpgradeRequest<S> {
    io: S,
    request: HandshakeRequest,
    leftover: BytesMut,
    /// Read through [`read_request_tls`]: the stream's URL is `wss://`.
    secure: bool,
}

impl<S> std::fmt::Debug for UpgradeRequest<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("request", &self.request)
            .finish_non_exhaustive()
    }
}

/// Reads and validates an upgrade request (RFC 6455 §4.2.1). An invalid request is
/// answered with the proper error response before this returns `Err`. The client has
/// [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s) to send it, else [`AcceptError::Timeout`]; see
/// [`read_request_with_timeout`] for another limit.
pub async fn read_request<S: AsyncIo>(io: S) -> Result<UpgradeRequest<S>, AcceptError> {
    read_request_with_timeout(io, Some(DEFAULT_HANDSHAKE_TIMEOUT)).await
}

/// [`read_request`] with the limit `timeout` on receiving the whole request head (and
/// writing the error response to an invalid one); `None` waits forever. Past the limit
/// it fails with [`AcceptError::Timeout`] and drops (closes) `io`.
pub async fn read_request_with_timeout<S: AsyncIo>(
    io: S,
    timeout: Option<Duration>,
) -> Result<UpgradeRequest<S>, AcceptError> {
    Deadline::after(timeout).run(read_head(io)).await
}

async fn read_head<S: AsyncIo>(mut io: S) -> Result<UpgradeRequest<S>, AcceptError> {
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(AcceptError::Closed);
        }
        match parse_request(&buf) {
            Ok(Some((request, head))) => {
                let _ = buf.split_to(head);
                return Ok(UpgradeRequest {
                    io,
                    request,
                    leftover: buf,
                    secure: false,
                });
            }
            Ok(None) => {}
            Err(e) => {
                io.write_all(e.response()).await?;
                let _ = io.shutdown().await;
                return Err(AcceptError::Request(e));
            }
        }
    }
}

#[cfg(feature = "tls")]
/// Runs the TLS handshake over `io` with `tls`, then [`read_request`] over the TLS
/// stream; both together within [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s), else
/// [`AcceptError::Timeout`].
pub async fn read_request_tls<S: AsyncIo>(
    io: S,
    tls: &TlsAcceptor,
) -> Result<UpgradeRequest<TlsStream<S>>, AcceptError> {
    read_request_tls_with_timeout(io, tls, Some(DEFAULT_HANDSHAKE_TIMEOUT)).await
}

#[cfg(feature = "tls")]
/// [`read_request_tls`] with the limit `timeout` on the TLS handshake and the request
/// head together; `None` waits forever.
pub async fn read_request_tls_with_timeout<S: AsyncIo>(
    io: S,
    tls: &TlsAcceptor,
    timeout: Option<Duration>,
) -> Result<UpgradeRequest<TlsStream<S>>, AcceptError> {
    Deadline::after(timeout).run(read_head_tls(io, tls)).await
}

#[cfg(feature = "tls")]
async fn read_head_tls<S: AsyncIo>(
    io: S,
    tls: &TlsAcceptor,
) -> Result<UpgradeRequest<TlsStream<S>>, AcceptError> {
    let io = tls.accept(io).await.map_err(AcceptError::Tls)?;
    let mut upgrade = read_head(io).await?;
    upgrade.secure = true;
    Ok(upgrade)
}

#[cfg(feature = "tls")]
/// Accepts a TLS connection and an upgrade without a subprotocol: [`read_request_tls`]
/// then [`UpgradeRequest::accept`], all within
/// [`handshake_timeout`](ServerOptions::handshake_timeout).
pub async fn accept_tls<S: AsyncIo>(
    io: S,
    tls: &TlsAcceptor,
    options: ServerOptions,
) -> Result<WebSocketStream, AcceptError> {
    let deadline = Deadline::after(options.handshake_timeout);
    let accepted = async {
        let upgrade = deadline.run(read_head_tls(io, tls)).await?;
        upgrade
            .accept_by(None, &http::HeaderMap::new(), options, deadline)
            .await
    };
    accepted
        .await
        .inspect_err(|e| crate::trace::accept_failed(e))
}

/// Accepts an upgrade without a subprotocol: [`read_request`] then
/// [`UpgradeRequest::accept`], all within
/// [`handshake_timeout`](ServerOptions::handshake_timeout).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use wsstream::server::{self, ServerOptions};
/// use wsstream::{WebSocketStream, WebSocketStreamOptions};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// tokio::spawn(async move {
///     while let Ok((tcp, _)) = listener.accept().await {
///         tokio::spawn(async move {
///             let mut options = ServerOptions::default();
///             options.max_message_size = 1 << 20;
///             let Ok(wss) = server::accept(tcp, options).await else { return };
///             let Ok(info) = wss.opened().await else { return }; // already resolved
///             let (Ok(mut reader), Ok(mut writer)) =
///                 (info.readable.get_reader(), info.writable.get_writer())
///             else {
///                 return;
///             };
///             while let Ok(Some(message)) = reader.read().await {
///                 if writer.write(message).await.is_err() {
///                     break;
///                 }
///             }
///         });
///     }
/// });
///
/// // A client of that server.
/// let wss = WebSocketStream::new(&format!("ws://{addr}/"), WebSocketStreamOptions::default())?;
/// let info = wss.opened().await?;
/// info.writable.get_writer()?.write("echo me").await?;
/// let echo = info.readable.get_reader()?.read().await?;
/// assert_eq!(echo.as_ref().and_then(|m| m.as_text()), Some("echo me"));
/// # Ok(()) }
/// ```
pub async fn accept<S: AsyncIo>(
    io: S,
    options: ServerOptions,
) -> Result<WebSocketStream, AcceptError> {
    let deadline = Deadline::after(options.handshake_timeout);
    let accepted = async {
        let upgrade = deadline.run(read_head(io)).await?;
        upgrade
            .accept_by(None, &http::HeaderMap::new(), options, deadline)
            .await
    };
    accepted
        .await
        .inspect_err(|e| crate::trace::accept_failed(e))
}

impl<S: AsyncIo> UpgradeRequest<S> {
    /// The request.
    pub fn request(&self) -> &HandshakeRequest {
        &self.request
    }

    /// Sends the 101 response with `protocol` and returns a server-role stream whose
    /// `opened` is already resolved. Writing the response is bounded by
    /// [`handshake_timeout`](ServerOptions::handshake_timeout).
    ///
    /// `protocol` must be one of the subprotocols the client offered (a client fails the
    /// handshake on any other, RFC 6455 §4.1): anything else is refused with
    /// [`AcceptError::Response`] before a byte is sent, so `opened` never reports a
    /// protocol the response did not carry.
    pub async fn accept(
        self,
        protocol: Option<&str>,
        options: ServerOptions,
    ) -> Result<WebSocketStream, AcceptError> {
        self.accept_with_headers(protocol, &http::HeaderMap::new(), options)
            .await
    }

    /// [`accept`](Self::accept) with extra response headers (`Set-Cookie`, a server
    /// name, …). The handshake's own headers (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`) cannot be given: they are refused with
    /// [`AcceptError::Response`].
    pub async fn accept_with_headers(
        self,
        protocol: Option<&str>,
        headers: &http::HeaderMap,
        options: ServerOptions,
    ) -> Result<WebSocketStream, AcceptError> {
        let deadline = Deadline::after(options.handshake_timeout);
        self.accept_by(protocol, headers, options, deadline).await
    }

    async fn accept_by(
        mut self,
        protocol: Option<&str>,
        headers: &http::HeaderMap,
        options: ServerOptions,
        deadline: Deadline,
    ) -> Result<WebSocketStream, AcceptError> {
        let negotiated = Negotiated::new(&self.request, protocol, headers, &options, false)?;
        deadline
            .run(async { Ok(self.io.write_all(&negotiated.response).await?) })
            .await?;
        let url = stream_url(&self.request, self.secure);
        Ok(negotiated.start(url, Transport::from_io(self.io), self.leftover))
    }

    /// Refuses the upgrade with a plain HTTP response (e.g. 404) and closes the stream.
    pub async fn reject(mut self, status: u16, reason: &str, body: &str) -> io::Result<()> {
        self.io
            .write_all(&reject_response(status, reason, body))
            .await?;
        self.io.shutdown().await
    }

    /// Refuses the upgrade with `status`, extra `headers` (`WWW-Authenticate` with 401,
    /// `Retry-After` with 429 or 503, …) and `body`, then closes the stream. The response
    /// always carries `Content-Length` and `Connection: close` (given ones are replaced).
    pub async fn reject_with_headers(
        mut self,
        status: http::StatusCode,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> io::Result<()> {
        let mut out = Vec::with_capacity(256 + body.len());
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {} {}\r\n",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .as_bytes(),
        );
        for (name, value) in headers {
            if matches!(
                *name,
                http::header::CONTENT_LENGTH
                    | http::header::CONNECTION
                    | http::header::TRANSFER_ENCODING
            ) {
                continue;
            }
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(body);
        self.io.write_all(&out).await?;
        self.io.shutdown().await
    }

    /// The underlying stream and the bytes already read from it past the request head
    /// (the start of what the client sent next), for a caller that answers the request
    /// itself: feed those bytes first.
    pub fn into_parts(self) -> (S, bytes::Bytes) {
        (self.io, self.leftover.freeze())
    }
}

/// What accepting an upgrade decided before a byte is sent, for both ways in (a byte
/// stream read by [`read_request`], or a request an HTTP server parsed, [`HttpUpgrade`]):
/// the engine configured with the negotiated parameters, and the `101` response (over
/// HTTP/2, the `200`).
pub(crate) struct Negotiated {
    conn: Connection,
    /// The `101 Switching Protocols` response as bytes (over HTTP/2, the `200` in the
    /// compact form of `handshake::h2_head`).
    response: Vec<u8>,
    /// The same response as `http` types (what `opened` reports).
    head: http::Response<()>,
    /// The selected subprotocol (`""` for none).
    protocol: String,
    /// The `Sec-WebSocket-Extensions` value of the response (`""` for none).
    extensions: String,
    close_timeout: Duration,
    /// `(ping_interval, ping_timeout)` when keepalive pings are on.
    keepalive: Option<(Duration, Duration)>,
}

impl Negotiated {
    /// Checks the application's answer to `request` and negotiates the connection:
    ///
    /// * `protocol` must be one the client offered (RFC 6455 §4.2.2 step 4: the value
    ///   chosen MUST be one of the client's; a client fails the handshake on any other,
    ///   §4.1), else [`AcceptError::Response`];
    /// * permessage-deflate is accepted from the client's first acceptable offer when
    ///   [`ServerOptions::compression`] allows it (RFC 7692 §5), else declined;
    /// * `headers` may not hold the handshake's own headers or invalid ones
    ///   ([`AcceptError::Response`]), and `options` must be valid ([`AcceptError::Config`]).
    ///
    /// With `http2` the response is the `200` of an extended CONNECT (RFC 8441 §5), kept
    /// in the compact form of [`h2_head`](crate::handshake::h2_head).
    pub(crate) fn new(
        request: &HandshakeRequest,
        protocol: Option<&str>,
        headers: &http::HeaderMap,
        options: &ServerOptions,
        http2: bool,
    ) -> Result<Self, AcceptError> {
        if let Some(protocol) = protocol {
            if !request.protocols.iter().any(|p| p == protocol) {
                return Err(AcceptError::Response(HandshakeError::ProtocolNotOffered(
                    protocol.to_owned(),
                )));
            }
        }
        let extra = extra_headers(headers)?;
        let negotiated = options
            .compression
            .as_ref()
            .filter(|_| cfg!(feature = "deflate"))
            .and_then(|config| Some((config, config.negotiate(&request.extensions)?)));
        let (deflate, extensions) = match negotiated {
            Some((config, (params, header))) => (Some((params, config.clone())), Some(header)),
            None => (None, None),
        };
        let config = crate::options::engine_config(
            options.max_message_size,
            options.send_buffer_size,
            deflate,
        );
        let conn = Connection::new(Role::Server, config).map_err(AcceptError::Config)?;
        let mut response = request
            .try_accept(protocol, extensions.as_deref(), &extra)
            .map_err(AcceptError::Response)?;
        if http2 {
            // The same checks as above; only the form of the response differs.
            response = h2_accept(protocol, extensions.as_deref(), headers)?.to_vec();
        }
        Ok(Self {
            conn,
            head: crate::handshake::response_head(&response),
            response,
            protocol: protocol.unwrap_or_default().to_owned(),
            extensions: extensions.unwrap_or_default(),
            close_timeout: options.close_timeout,
            keepalive: options
                .ping_interval
                .map(|interval| (interval, options.ping_timeout)),
        })
    }

    /// The `101` (or HTTP/2 `200`) response as `http` types.
    pub(crate) fn head(&self) -> &http::Response<()> {
        &self.head
    }

    /// The selected subprotocol (`""` for none).
    pub(crate) fn protocol(&self) -> &str {
        &self.protocol
    }

    /// The accepted `Sec-WebSocket-Extensions` value (`""` for none).
    pub(crate) fn extensions(&self) -> &str {
        &self.extensions
    }

    /// Runs the connection over `io`, whose next bytes (after `leftover`, bytes already
    /// read past the request head) are the client's first frames, once the `101` has been
    /// sent: a server-role stream whose `opened` is already resolved, with its connection
    /// task spawned on the current tokio runtime.
    pub(crate) fn start(self, url: String, io: Transport, leftover: BytesMut) -> WebSocketStream {
        let shared = Shared::connecting(url, crate::CloseCodes::Protocol);
        shared.core().open(Role::Server, self.conn, io, leftover);
        shared.opened.settle(Ok(OpenState {
            protocol: self.protocol,
            extensions: self.extensions,
            // A copy of its own: the response was built in a buffer with spare capacity.
            head: bytes::Bytes::copy_from_slice(&self.response),
        }));
        let stream = WebSocketStream::from_shared(shared.clone());
        let keepalive = self
            .keepalive
            .map(|(interval, timeout)| crate::keepalive::Keepalive::new(interval, timeout));
        tokio::spawn(Driver::new(shared, self.close_timeout, keepalive));
        stream
    }
}

impl std::fmt::Debug for Negotiated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Negotiated")
            .field("protocol", &self.protocol)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

/// The `200` accepting an extended CONNECT (RFC 8441 §5): `sec-websocket-protocol`,
/// `sec-websocket-extensions` and the extra `headers`, in the form `opened` reports.
fn h2_accept(
    protocol: Option<&str>,
    extensions: Option<&str>,
    headers: &http::HeaderMap,
) -> Result<bytes::Bytes, AcceptError> {
    let mut map = http::HeaderMap::with_capacity(headers.len() + 2);
    let value = |name: &str, value: &str| {
        http::HeaderValue::from_str(value)
            .map_err(|_| AcceptError::Response(HandshakeError::InvalidHeader(name.to_owned())))
    };
    if let Some(protocol) = protocol {
        map.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            value("sec-websocket-protocol", protocol)?,
        );
    }
    if let Some(extensions) = extensions {
        map.insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            value("sec-websocket-extensions", extensions)?,
        );
    }
    for (name, value) in headers {
        map.append(name, value.clone());
    }
    Ok(crate::handshake::h2_head(http::StatusCode::OK, &map))
}

/// The URL of a server-role stream: `ws://` (or `wss://` over TLS), the `Host` of the
/// request and its target.
pub(crate) fn stream_url(request: &HandshakeRequest, secure: bool) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{}{}", request.host, request.resource)
}

/// Extra response headers as the engine takes them (names and values it validates).
fn extra_headers(headers: &http::HeaderMap) -> Result<Vec<(String, String)>, AcceptError> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().map_err(|_| {
                AcceptError::Response(HandshakeError::InvalidHeader(name.as_str().to_owned()))
            })?;
            Ok((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}
