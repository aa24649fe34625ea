//! The connect flow of a client stream: URL → TCP → TLS (`wss://`) → opening handshake →
//! driver.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt;
use url::Url;
use wsstream_proto::ext::deflate::{
    DeflateConfig, DeflateNegotiationError, DeflateParams, EXTENSION_NAME,
};
use wsstream_proto::handshake::{ClientHandshake, ClientRequest, HandshakeError};
use wsstream_proto::{Connection, Role};

use crate::conn::{OpenState, Shared};
use crate::driver::Driver;
use crate::error::{AbortReason, ConnectionError, WebSocketError};
use crate::options::WebSocketStreamOptions;
use crate::transport::{AsyncIo, Transport};

/// Why the opening handshake failed: the `source()` of the WebSocketErrors that `opened`
/// and `closed` fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// DNS, TCP or another I/O failure.
    Io(io::Error),
    /// The server's response was not a valid WebSocket handshake (RFC 6455 §4.1), e.g. a
    /// non-101 status.
    Handshake(HandshakeError),
    /// The TLS handshake of a `wss://` connection failed: the server's certificate was
    /// rejected (unknown issuer, expired, not valid for the host name, …), the peer
    /// misbehaved, or the [`TlsOptions`](crate::TlsOptions) could not be turned into a
    /// configuration. The source is the rustls error when there is one; see
    /// [`tls_error`](Self::tls_error).
    Tls(io::Error),
    /// The server closed the connection before completing the handshake.
    ClosedDuringHandshake,
    /// `close()` was called, or every handle dropped, during the handshake (the close
    /// code and reason given to `close()` are not sent then: the connection is failed).
    Closed,
    /// The server's permessage-deflate response is not acceptable (RFC 7692 §7).
    Extension(DeflateNegotiationError),
    /// The proxy failed: unreachable, refused the tunnel (e.g. 407, proxy authentication
    /// required), or a bad proxy URL. The source is the [`ProxyError`](crate::ProxyError).
    #[cfg(feature = "proxy")]
    Proxy(crate::ProxyError),
    /// [`handshake_timeout`](crate::WebSocketStreamOptions::handshake_timeout) expired
    /// before the connection opened.
    Timeout(std::time::Duration),
    /// A redirect of the opening handshake was not followed; the source is the
    /// [`RedirectError`](crate::RedirectError). (With the default
    /// [`max_redirects`](crate::WebSocketStreamOptions::max_redirects) of 0 a redirect
    /// is a [`Handshake`](Self::Handshake) error with its status instead.)
    Redirect(crate::RedirectError),
    /// The server answered with a status other than `101` (401, 403, 404, 429, …; a
    /// redirect is a [`Handshake`](Self::Handshake) error unless followed): its status,
    /// headers and the first bytes of its body.
    Rejected(crate::HandshakeRejection),
    /// WebSockets over HTTP/2 (RFC 8441) failed: the server does not support them and
    /// [`HttpVersionPreference::Http2Only`](crate::HttpVersionPreference::Http2Only) was
    /// asked for, or the HTTP/2 connection or stream failed during the handshake. The
    /// source is the [`Http2Error`](crate::Http2Error). (Feature `http2`.)
    #[cfg(feature = "http2")]
    Http2(crate::Http2Error),
}

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Io(_) => f.write_str("connection failed"),
            Self::Handshake(_) => f.write_str("handshake failed"),
            Self::Tls(_) => f.write_str("TLS handshake failed"),
            Self::ClosedDuringHandshake => {
                f.write_str("the server closed the connection during the handshake")
            }
            Self::Closed => f.write_str("closed during the opening handshake"),
            #[cfg(feature = "proxy")]
            Self::Proxy(_) => f.write_str("the connection through the proxy failed"),
            Self::Timeout(limit) => {
                write!(f, "the opening handshake timed out after {limit:?}")
            }
            Self::Redirect(_) => f.write_str("redirect not followed"),
            Self::Rejected(_) => f.write_str("the server refused the upgrade"),
            Self::Extension(_) => f.write_str("the server's extension response is not acceptable"),
            #[cfg(feature = "http2")]
            Self::Http2(_) => f.write_str("the WebSocket over HTTP/2 failed"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::Tls(e) => Some(e),
            #[cfg(feature = "proxy")]
            Self::Proxy(e) => Some(e),
            Self::Redirect(e) => Some(e),
            Self::Extension(e) => Some(e),
            Self::Rejected(e) => Some(e),
            #[cfg(feature = "http2")]
            Self::Http2(e) => Some(e),
            _ => None,
        }
    }
}

impl ConnectError {
    /// An I/O error of the handshake: a TLS error when rustls raised it (with TLS 1.3 a
    /// server refuses our certificate only after our side of the TLS handshake is done,
    /// so its alert arrives while the HTTP response is read).
    fn from_io(e: io::Error) -> Self {
        #[cfg(feature = "tls")]
        if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
            return Self::Tls(e);
        }
        Self::Io(e)
    }

    /// The server's refusal, for a [`Rejected`](Self::Rejected) handshake.
    pub fn rejection(&self) -> Option<&crate::HandshakeRejection> {
        match self {
            Self::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }

    /// The rustls error behind a [`Tls`](Self::Tls) failure, e.g.
    /// `InvalidCertificate(UnknownIssuer)`, to match on the reason.
    #[cfg(feature = "tls")]
    pub fn tls_error(&self) -> Option<&rustls::Error> {
        match self {
            Self::Tls(e) => e.get_ref()?.downcast_ref(),
            _ => None,
        }
    }
}
/// An opened connection, ready for the WebSocket engine.
pub(crate) struct Established {
    pub(crate) io: Transport,
    pub(crate) leftover: BytesMut,
    /// The `101` response head, as received (or an HTTP/2 `200` kept in the same form).
    pub(crate) head: bytes::Bytes,
    pub(crate) protocol: String,
    pub(crate) extensions: String,
    pub(crate) deflate: Option<(DeflateParams, DeflateConfig)>,
}

/// Runs a client connection: the handshake (racing the abort signal and `close()`), then
/// the driver.
pub(crate) async fn run(
    shared: Arc<Shared>,
    url: Url,
    options: WebSocketStreamOptions,
    stream: Option<Box<dyn AsyncIo>>,
) {
    let signal = options.signal.clone();
    let aborted = async {
        match &signal {
            Some(signal) => signal.wait().await,
            None => std::future::pending().await,
        }
    };
    let result = tokio::select! {
        result = connect(&url, &options, stream) => result,
        reason = aborted => return abort(&shared, reason),
        () = shared.interrupted() => Err(ConnectError::Closed),
    };
    // The decision to open is atomic with the checks of the signal and close(): an abort
    // or a close that lands while the handshake completes either wins entirely (the
    // connection never opens) or comes too late (it is open, and the signal no longer
    // matters), never half of each.
    let established = {
        let mut core = shared.core();
        if let Some(reason) = signal.as_ref().and_then(crate::AbortSignal::reason) {
            drop(core);
            return abort(&shared, reason);
        }
        match result {
            Ok(established) if !core.is_interrupted() => {
                let conn = match Connection::new(
                    Role::Client,
                    options.proto_config(established.deflate.clone()),
                ) {
                    Ok(conn) => conn,
                    Err(e) => {
                        drop(core);
                        return fail(
                            &shared,
                            Arc::new(io::Error::new(io::ErrorKind::InvalidInput, e)),
                        );
                    }
                };
                core.open(Role::Client, conn, established.io, established.leftover);
                OpenState {
                    protocol: established.protocol,
                    extensions: established.extensions,
                    head: established.head,
                }
            }
            Ok(_) => {
                drop(core);
                return fail(&shared, Arc::new(ConnectError::Closed));
            }
            Err(e) => {
                drop(core);
                return fail(&shared, Arc::new(e));
            }
        }
    };
    shared.opened.settle(Ok(established));
    // The connection task runs as its own task so the (larger) connecting future is
    // freed.
    tokio::spawn(Driver::new(
        shared,
        options.close_timeout,
        crate::keepalive::Keepalive::from_options(&options),
    ));
}

/// The signal fired before the connection was established: `opened` and `closed` both
/// fail with the signal's reason itself, and no WebSocketError is made.
fn abort(shared: &Shared, reason: AbortReason) {
    shared.core().set_closed_before_open();
    shared
        .opened
        .settle(Err(ConnectionError::Aborted(reason.clone())));
    shared.closed.settle(Err(ConnectionError::Aborted(reason)));
}

/// The connection closed before it was established: `opened` fails with a
/// WebSocketError without code, `closed` with a different one with code 1006 (WPT
/// `constructor.any.js`, "connection failure should reject the promises").
fn fail(shared: &Shared, cause: AbortReason) {
    crate::trace::handshake_failed(&shared.span(), &*cause);
    shared.core().set_closed_before_open();
    let opened = WebSocketError::from_connection(
        "WebSocket closed before handshake complete",
        None,
        String::new(),
        Some(cause.clone()),
    );
    let closed = WebSocketError::from_connection(
        "WebSocket was not cleanly closed",
        Some(1006),
        String::new(),
        Some(cause),
    );
    shared
        .opened
        .settle(Err(ConnectionError::WebSocket(Arc::new(opened))));
    shared
        .closed
        .settle(Err(ConnectionError::WebSocket(Arc::new(closed))));
}

/// The outcome of one handshake attempt.
pub(crate) enum Attempt {
    Open(Box<Established>),
    /// A redirect status with a `Location`.
    Redirect {
        error: HandshakeError,
        location: String,
    },
}

/// The opening handshake, bounded by `handshake_timeout`, following redirects as far as
/// `max_redirects` allows.
async fn connect(
    url: &Url,
    options: &WebSocketStreamOptions,
    stream: Option<Box<dyn AsyncIo>>,
) -> Result<Established, ConnectError> {
    match options.handshake_timeout {
        Some(limit) => tokio::time::timeout(limit, follow_redirects(url, options, stream))
            .await
            .unwrap_or(Err(ConnectError::Timeout(limit))),
        None => follow_redirects(url, options, stream).await,
    }
}

async fn follow_redirects(
    url: &Url,
    options: &WebSocketStreamOptions,
    mut stream: Option<Box<dyn AsyncIo>>,
) -> Result<Established, ConnectError> {
    let mut headers = options.headers.clone();
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
    {
        headers.push((
            "User-Agent".to_owned(),
            crate::options::DEFAULT_USER_AGENT.to_owned(),
        ));
    }
    // Over a caller's stream there is no other connection to make.
    let max_redirects = if stream.is_some() {
        0
    } else {
        options.max_redirects
    };
    let mut current = url.clone();
    let mut redirects = 0;
    loop {
        match connect_once(&current, options, &headers, stream.take()).await? {
            Attempt::Open(established) => return Ok(*established),
            Attempt::Redirect { error, .. } if max_redirects == 0 => {
                return Err(ConnectError::Handshake(error));
            }
            Attempt::Redirect { location, .. } if redirects == max_redirects => {
                return Err(ConnectError::Redirect(crate::RedirectError::TooMany {
                    max: max_redirects,
                    location,
                }));
            }
            Attempt::Redirect { location, .. } => {
                let next = crate::redirect::resolve(&current, &location)
                    .map_err(ConnectError::Redirect)?;
                if !crate::redirect::same_origin(&current, &next) {
                    headers.retain(|(name, _)| !crate::redirect::is_credential_header(name));
                }
                current = next;
                redirects += 1;
            }
        }
    }
}

async fn connect_once(
    url: &Url,
    options: &WebSocketStreamOptions,
    headers: &[(String, String)],
    stream: Option<Box<dyn AsyncIo>>,
) -> Result<Attempt, ConnectError> {
    // WebSockets over HTTP/2 when the options ask for it and the server allows it (over
    // a caller's stream only when asked for HTTP/2 alone: a stream spent on an HTTP/2
    // attempt cannot fall back); else the connection for HTTP/1.1, if that side made one.
    #[cfg(feature = "http2")]
    let (connected, stream) = match stream {
        Some(stream) if options.http_version == crate::HttpVersionPreference::Http2Only => {
            return crate::h2_client::connect_over(stream, url, options, headers).await;
        }
        Some(stream) => (None, Some(stream)),
        None => match crate::h2_client::connect(url, options, headers).await? {
            crate::h2_client::H2Attempt::Done(attempt) => return Ok(attempt),
            crate::h2_client::H2Attempt::Http1(transport) => (transport, None),
            crate::h2_client::H2Attempt::Http1Fallback => (
                Some(crate::h2_client::http11_transport(url, options).await?),
                None,
            ),
        },
    };
    #[cfg(not(feature = "http2"))]
    let connected: Option<Transport> = None;
    let secure = url.scheme() == "wss";
    let mut io = match (connected, stream, secure) {
        (Some(io), _, _) => io,
        (None, Some(stream), false) => Transport::Other(stream),
        (None, None, false) => connect_tcp(url, options).await?,
        (None, stream, true) => secure_transport(stream, url, options).await?,
    };
    let resource = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    // Without the `deflate` feature nothing is offered, and a server that answers with
    // permessage-deflate anyway fails the handshake below.
    let compression = options
        .compression
        .as_ref()
        .filter(|_| cfg!(feature = "deflate"));
    let offer = compression.map(DeflateConfig::client_offer);
    let handshake = ClientHandshake::new(&ClientRequest {
        host: url.host_str().unwrap_or_default(),
        port: url.port(),
        resource: &resource,
        protocols: &options.protocols,
        extensions: offer.as_deref(),
        headers,
    })
    .map_err(ConnectError::Handshake)?;
    io.write_all(handshake.request())
        .await
        .map_err(ConnectError::from_io)?;
    let (response, head, leftover) = match read_response(&mut io, &handshake).await? {
        Response::Upgraded(response, head, leftover) => (response, head, leftover),
        Response::Redirect { error, location } => {
            return Ok(Attempt::Redirect { error, location });
        }
    };
    let deflate = accept_extensions(compression, &response).map_err(ConnectError::Extension)?;
    Ok(Attempt::Open(Box::new(Established {
        io,
        leftover,
        head,
        protocol: response.protocol.unwrap_or_default(),
        extensions: deflate
            .as_ref()
            .map(|(params, _)| params.to_header_value())
            .unwrap_or_default(),
        deflate,
    })))
}

/// RFC 7692 §5/§7: the response may only carry the extension we offered, with parameters
/// we can honour; anything else fails the connection. The negotiated permessage-deflate,
/// if any.
pub(crate) fn accept_extensions(
    compression: Option<&DeflateConfig>,
    response: &wsstream_proto::handshake::HandshakeResponse,
) -> Result<Option<(DeflateParams, DeflateConfig)>, DeflateNegotiationError> {
    Ok(
        match (
            compression,
            response
                .extensions
                .iter()
                .find(|e| e.name == EXTENSION_NAME),
        ) {
            (Some(config), Some(element)) => {
                Some((config.accept_response(element)?, config.clone()))
            }
            _ => None,
        },
    )
}

/// TLS with the target (`wss://`) over `stream`, or over the TCP connection (or proxy
/// tunnel) made for `url`.
#[cfg(feature = "tls")]
async fn secure_transport(
    stream: Option<Box<dyn AsyncIo>>,
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<Transport, ConnectError> {
    use crate::transport::tls;
    Ok(match stream {
        Some(stream) => Transport::Other(Box::new(
            tls::connect(stream, url, &options.tls)
                .await
                .map_err(ConnectError::Tls)?,
        )),
        None => match connect_tcp(url, options).await? {
            Transport::Tcp(tcp) => Transport::Tls(Box::new(
                tls::connect(tcp, url, &options.tls)
                    .await
                    .map_err(ConnectError::Tls)?,
            )),
            // TLS with the target inside a proxy's tunnel.
            tunnel => Transport::Other(Box::new(
                tls::connect(tunnel, url, &options.tls)
                    .await
                    .map_err(ConnectError::Tls)?,
            )),
        },
    })
}

/// Without the `tls` feature a `wss://` URL fails to connect, before any I/O.
#[cfg(not(feature = "tls"))]
async fn secure_transport(
    _stream: Option<Box<dyn AsyncIo>>,
    _url: &Url,
    _options: &WebSocketStreamOptions,
) -> Result<Transport, ConnectError> {
    Err(ConnectError::Tls(io::Error::new(
        io::ErrorKind::Unsupported,
        "wss:// needs TLS: enable wsstream's `rustls-aws-lc-rs` or `rustls-ring` feature",
    )))
}

/// The byte stream to run TLS (for `wss://`) and the handshake over: TCP to the URL's
/// host (every resolved address in turn, IPv6 and IPv4, with `TCP_NODELAY` and the
/// optional TCP keepalive), or a tunnel through the proxy `options.proxy` selects
/// (`Transport::Tcp` for HTTP CONNECT and SOCKS5, `Transport::Tls` for an `https://`
/// proxy).
async fn connect_tcp(
    url: &Url,
    options: &WebSocketStreamOptions,
) -> Result<Transport, ConnectError> {
    crate::transport::tcp::connect(url, options).await
}

/// The server's answer to the upgrade request.
enum Response {
    /// `101`: the validated response, its head and the bytes after its head.
    Upgraded(
        wsstream_proto::handshake::HandshakeResponse,
        bytes::Bytes,
        BytesMut,
    ),
    /// A redirect status with a `Location` (followed only if the options allow it).
    Redirect {
        error: HandshakeError,
        location: String,
    },
}

async fn read_response(
    io: &mut Transport,
    handshake: &ClientHandshake,
) -> Result<Response, ConnectError> {
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if io.read_buf(&mut buf).await.map_err(ConnectError::from_io)? == 0 {
            return Err(ConnectError::ClosedDuringHandshake);
        }
        match handshake.parse_response(&buf) {
            Ok(Some((response, head))) => {
                // A copy of its own: the head must not pin the read buffer.
                let head_bytes = bytes::Bytes::copy_from_slice(&buf[..head]);
                let _ = buf.split_to(head);
                return Ok(Response::Upgraded(response, head_bytes, buf));
            }
            Ok(None) => {}
            Err(error @ HandshakeError::Status { status, .. })
                if crate::redirect::is_redirect(status) =>
            {
                if let Some(location) = crate::redirect::location(&buf) {
                    return Ok(Response::Redirect { error, location });
                }
                return Err(refusal(io, buf, error).await);
            }
            Err(error @ HandshakeError::Status { .. }) => {
                return Err(refusal(io, buf, error).await);
            }
            Err(e) => return Err(ConnectError::Handshake(e)),
        }
    }
}

/// The server refused the upgrade (`error` is the status): its head, and the first bytes of
/// its body, those already read and what arrives within a moment (up to its
/// `Content-Length` and [`REJECTION_BODY_LIMIT`](crate::handshake::REJECTION_BODY_LIMIT)).
async fn refusal(io: &mut Transport, mut buf: BytesMut, error: HandshakeError) -> ConnectError {
    use tokio::io::AsyncReadExt;
    let HandshakeError::Status { reason, .. } = &error else {
        return ConnectError::Handshake(error);
    };
    let mut slots = [httparse::EMPTY_HEADER; wsstream_proto::handshake::MAX_HEADERS];
    let Ok(httparse::Status::Complete(head_len)) = httparse::Response::new(&mut slots).parse(&buf)
    else {
        return ConnectError::Handshake(error);
    };
    let head = crate::handshake::response_head(&buf[..head_len]);
    let mut body = buf.split_off(head_len);
    let limit = head
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse::<usize>().ok())
        .unwrap_or(usize::MAX)
        .min(crate::handshake::REJECTION_BODY_LIMIT);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while body.len() < limit {
        match tokio::time::timeout_at(deadline, io.read_buf(&mut body)).await {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    body.truncate(limit);
    ConnectError::Rejected(crate::HandshakeRejection::new(
        head,
        reason.clone(),
        body.freeze(),
    ))
}
