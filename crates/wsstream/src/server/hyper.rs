//! WebSocket routes in a hyper 1.x server (feature `hyper`): validate the request, return
//! the `101` response from the service, and get a server-role [`WebSocketStream`] once
//! hyper has handed over the connection. With the `http2` feature too, the same service
//! accepts WebSockets over HTTP/2 (RFC 8441, below).
//!
//! ```no_run
//! use std::convert::Infallible;
//!
//! use hyper::body::Incoming;
//! use hyper::{Request, Response};
//! use wsstream::http::HeaderMap;
//! use wsstream::server::ServerOptions;
//! use wsstream::server::hyper::{Body, HyperUpgrade, error_response};
//!
//! async fn service(mut request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
//!     let upgrade = match HyperUpgrade::from_request(&mut request) {
//!         Ok(upgrade) => upgrade,
//!         Err(e) => return Ok(error_response(&e)), // 400, or 426 for a wrong version
//!     };
//!     let protocol = upgrade.request().protocols.first().cloned();
//!     let (response, upgrading) = upgrade
//!         .accept(protocol.as_deref(), &HeaderMap::new(), ServerOptions::default())
//!         .expect("the protocol is one the client offered");
//!     tokio::spawn(async move {
//!         let Ok(wss) = upgrading.await else { return };
//!         let Ok(info) = wss.opened().await else { return };
//!         let (Ok(mut reader), Ok(mut writer)) =
//!             (info.readable.get_reader(), info.writable.get_writer())
//!         else {
//!             return;
//!         };
//!         while let Ok(Some(message)) = reader.read().await {
//!             if writer.write(message).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//!     Ok(response)
//! }
//! ```
//!
//! Serve the connection with upgrades on
//! (`hyper::server::conn::http1::Builder::serve_connection(io, service).with_upgrades()`),
//! or the upgrade fails with [`AcceptError::Io`]. The request head is read by hyper, on
//! its deadlines (`header_read_timeout`, which needs a timer such as
//! `hyper_util::rt::TokioTimer`), not [`ServerOptions::handshake_timeout`].
//!
//! A connection served over `hyper_util::rt::TokioIo<tokio::net::TcpStream>` is taken
//! back from hyper as the TCP stream itself (with the bytes hyper had buffered), so it
//! runs exactly like one accepted with [`accept`](super::accept); any other I/O runs
//! through hyper's upgraded I/O.
//!
//! ## WebSockets over HTTP/2 (RFC 8441)
//!
//! With the `http2` feature, [`HyperUpgrade::from_request`] also takes a WebSocket
//! opened on an HTTP/2 connection: an *extended CONNECT* request (RFC 8441 §4), method
//! `CONNECT` with the `:protocol` pseudo-header `websocket` (hyper hands it over as the
//! `hyper::ext::Protocol` request extension), `Sec-WebSocket-Version: 13` and no
//! `Sec-WebSocket-Key`, `Upgrade` or `Connection` (RFC 8441 §5). The service code is the
//! same: [`HyperUpgrade::accept`] then returns `200 OK` instead of `101` (no
//! `Sec-WebSocket-Accept`; `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions` as over
//! HTTP/1.1, permessage-deflate included), and [`Upgrading`] resolves to a stream running
//! over that one HTTP/2 stream, with the frames of RFC 6455 unchanged. Its `opened`
//! reports the `200` and `HTTP/2.0` as the response's version. A wrong request gets 400
//! ([`error_response`]; a missing or wrong version with `Sec-WebSocket-Version: 13`).
//!
//! A client opens WebSockets this way only once the server has announced
//! `SETTINGS_ENABLE_CONNECT_PROTOCOL = 1` (RFC 8441 §3), which hyper sends when asked:
//! serve the connection with
//! `hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
//! .enable_connect_protocol()` (hyper's `http2` and `server` features), or, to take HTTP/1.1
//! and HTTP/2 on one port, hyper-util's
//! `hyper_util::server::conn::auto::Builder` (feature `server-auto`) with
//! `builder.http2().enable_connect_protocol()` and `serve_connection_with_upgrades`. Over
//! TLS, offer the ALPN protocols `h2` and `http/1.1` (rustls' `ServerConfig::alpn_protocols`,
//! for example through `TlsAcceptor::config` and `TlsAcceptor::new`).
//!
//! Closing is per stream (RFC 8441 §6 maps the TCP half-closes of RFC 6455 to the
//! stream): after the Close handshake the server ends its side of the stream with
//! END_STREAM, and the connection and its other streams stay open. A client that resets
//! the stream (RST_STREAM) or a connection that ends (GOAWAY, or TCP closing) closes the
//! WebSocket uncleanly: `closed` fails with 1006, its `source()` carrying the I/O error
//! (hyper reports a reset with `NO_ERROR` or `CANCEL` as the end of the stream, any other
//! reason as the HTTP/2 error naming it).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use ::hyper::upgrade::{OnUpgrade, Upgraded};
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use wsstream_proto::handshake::{HandshakeRequest, RequestError};

use super::{AcceptError, Accepted, HttpUpgrade, ServerOptions};
use crate::WebSocketStream;

/// The body of the responses built here: `http_body_util::Full<Bytes>` (empty for the
/// `101`). Map it to another body type with `Response::map`.
pub type Body = Full<Bytes>;

/// A valid WebSocket upgrade request in a hyper service, not yet answered.
#[derive(Debug)]
pub struct HyperUpgrade {
    upgrade: HttpUpgrade,
    on_upgrade: OnUpgrade,
}

impl HyperUpgrade {
    /// Validates `request` as a WebSocket opening handshake (RFC 6455 §4.2.1, or RFC 8441
    /// over HTTP/2 with the `http2` feature: the checks of [`HttpUpgrade::from_request`])
    /// and takes hyper's upgrade handle out of it.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] for an invalid request; answer with [`error_response`] (400, or
    /// 426 with `Sec-WebSocket-Version: 13` for a wrong version). The request is left as
    /// it was.
    pub fn from_request<B>(request: &mut http::Request<B>) -> Result<Self, RequestError> {
        let upgrade = HttpUpgrade::from_request(request)?;
        let on_upgrade = ::hyper::upgrade::on(request);
        Ok(Self {
            upgrade,
            on_upgrade,
        })
    }

    /// The validated request: target, `Host`, `Origin`, the offered subprotocols and
    /// extensions, the headers (lowercase names, as hyper gives them).
    pub fn request(&self) -> &HandshakeRequest {
        self.upgrade.request()
    }

    /// Whether the request came over HTTP/2 (an extended CONNECT, RFC 8441).
    pub fn is_http2(&self) -> bool {
        self.upgrade.is_http2()
    }

    /// Tells that the connection is TLS, so the stream's URL starts with `wss://`.
    pub fn set_secure(&mut self, secure: bool) {
        self.upgrade.set_secure(secure);
    }

    /// Tells the client's address, for the stream's `tracing` span (see
    /// [`HttpUpgrade::set_peer_addr`]): hyper does not know it, the accept loop does.
    pub fn set_peer_addr(&mut self, peer: std::net::SocketAddr) {
        self.upgrade.set_peer_addr(peer);
    }

    /// Accepts the upgrade with `protocol` (one the client offered, or `None`) and extra
    /// response `headers`: returns the `101 Switching Protocols` response (over HTTP/2,
    /// `200 OK`) for the service to return (see [`HttpUpgrade::accept`] for what it carries) and an [`Upgrading`]
    /// future that resolves to the server-role stream once hyper has sent the response and
    /// handed the connection over.
    ///
    /// # Errors
    ///
    /// As [`HttpUpgrade::accept`]: [`AcceptError::Response`] for a protocol the client did
    /// not offer or a forbidden or invalid extra header, [`AcceptError::Config`] for
    /// invalid options. Nothing is sent; answer with an error response of your own.
    pub fn accept(
        self,
        protocol: Option<&str>,
        headers: &HeaderMap,
        options: ServerOptions,
    ) -> Result<(http::Response<Body>, Upgrading), AcceptError> {
        let (response, accepted) = self.upgrade.accept(protocol, headers, options)?;
        let upgrading = Upgrading {
            on_upgrade: self.on_upgrade,
            accepted: Some(accepted),
        };
        Ok((response.map(|()| Body::default()), upgrading))
    }
}

/// Resolves to the server-role [`WebSocketStream`] once hyper has sent the `101` (or,
/// over HTTP/2, the `200`) and handed the connection (or the stream) over; its `opened` is already resolved. Fails with
/// [`AcceptError::Io`] when the connection ends first or was served without upgrades.
/// Await it in a task of its own (the service must return the response first).
#[derive(Debug)]
#[must_use = "the stream comes only when the future is awaited"]
pub struct Upgrading {
    on_upgrade: OnUpgrade,
    accepted: Option<Accepted>,
}

impl Future for Upgrading {
    type Output = Result<WebSocketStream, AcceptError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let upgraded = match Pin::new(&mut self.on_upgrade).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(upgraded) => upgraded,
        };
        let Some(accepted) = self.accepted.take() else {
            return Poll::Ready(Err(AcceptError::Io(io::Error::other(
                "the upgrade was already taken",
            ))));
        };
        Poll::Ready(match upgraded {
            Ok(upgraded) => Ok(into_stream(accepted, upgraded)),
            Err(e) => Err(AcceptError::Io(io::Error::other(e))),
        })
    }
}

/// Runs `accepted` over hyper's upgraded connection: as the TCP stream itself when hyper
/// served `TokioIo<TcpStream>` (readiness-aware reads, no read buffer while idle), else
/// through `Upgraded`.
pub(crate) fn into_stream(accepted: Accepted, upgraded: Upgraded) -> WebSocketStream {
    match upgraded.downcast::<TokioIo<TcpStream>>() {
        Ok(parts) => accepted.into_stream_with_leftover(parts.io.into_inner(), parts.read_buf),
        Err(upgraded) => accepted.into_stream(TokioIo::new(upgraded)),
    }
}

/// The response refusing an invalid upgrade request, for a hyper service:
/// [`super::error_response`] with a [`Body`].
pub fn error_response(error: &RequestError) -> http::Response<Body> {
    super::error_response(error).map(Body::from)
}
