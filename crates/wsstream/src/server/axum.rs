//! WebSocket routes in axum 0.8 (feature `axum`): the [`WebSocketUpgrade`] extractor
//! hands a handler a server-role [`WebSocketStream`].
//!
//! ```no_run
//! use axum::Router;
//! use axum::response::Response;
//! use axum::routing::get;
//! use wsstream::server::ServerOptions;
//! use wsstream::server::axum::WebSocketUpgrade;
//!
//! async fn echo(ws: WebSocketUpgrade) -> Response {
//!     ws.on_upgrade(ServerOptions::default(), |wss| async move {
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
//!     })
//! }
//!
//! # async fn run() -> std::io::Result<()> {
//! let app: Router = Router::new().route("/echo", get(echo));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```
//!
//! The extractor implements axum-core's traits (the crate axum itself re-exports them
//! from), so this crate depends on `axum-core` only, not on the whole of axum. An invalid
//! upgrade request is rejected before the handler runs: 400 Bad Request, or 426 Upgrade
//! Required with `Sec-WebSocket-Version: 13` for a wrong version (RFC 6455 §4.4). As
//! `Option<WebSocketUpgrade>` it gives `None` for a request without an `Upgrade` header
//! (and, over HTTP/2, for a request that is not a `CONNECT`), so one route can serve a page
//! and the WebSocket.
//!
//! ## HTTP/2 (RFC 8441)
//!
//! With the `http2` feature the extractor also accepts a WebSocket opened on an HTTP/2
//! connection: an extended CONNECT (RFC 8441 §4), answered with `200` instead of `101`
//! (RFC 8441 §5; see [`super::hyper`] for the details). Such a request has the method
//! `CONNECT`, so the route must take it: `any(echo)`, or
//! `get(echo).connect(echo)` (`axum::routing::MethodRouter::connect`), not `get(echo)`
//! alone. `axum::serve` announces `SETTINGS_ENABLE_CONNECT_PROTOCOL` (RFC 8441 §3) on its
//! HTTP/2 connections (axum's `http2` feature; cleartext HTTP/2 needs a client with prior
//! knowledge).

use std::fmt;
use std::future::Future;

use ::hyper::upgrade::OnUpgrade;
use axum_core::body::Body;
use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::{HeaderMap, StatusCode};
use wsstream_proto::handshake::{HandshakeRequest, RequestError};

use super::{HttpUpgrade, ServerOptions};
use crate::WebSocketStream;

/// The extractor of a WebSocket upgrade request in an axum handler: inspect the request
/// ([`request`](Self::request), [`protocols`](Self::protocols)), choose a subprotocol and
/// extra response headers, then [`on_upgrade`](Self::on_upgrade) returns the `101`
/// response and runs a callback with the stream.
pub struct WebSocketUpgrade {
    upgrade: HttpUpgrade,
    on_upgrade: OnUpgrade,
    protocol: Option<String>,
    headers: HeaderMap,
}

impl fmt::Debug for WebSocketUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketUpgrade")
            .field("request", self.upgrade.request())
            .field("protocol", &self.protocol)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl WebSocketUpgrade {
    /// The validated request: target, `Host`, `Origin`, the offered subprotocols and
    /// extensions, the headers (lowercase names).
    pub fn request(&self) -> &HandshakeRequest {
        self.upgrade.request()
    }

    /// The subprotocols the client offered, in its order of preference.
    pub fn protocols(&self) -> &[String] {
        &self.upgrade.request().protocols
    }

    /// Selects `protocol` for the response's `Sec-WebSocket-Protocol`. It must be one of
    /// [`protocols`](Self::protocols) (RFC 6455 §4.2.2 step 4: the value chosen MUST be
    /// one of the client's); any other makes [`on_upgrade`](Self::on_upgrade) answer 500
    /// without upgrading.
    #[must_use]
    pub fn with_protocol(mut self, protocol: impl Into<String>) -> Self {
        self.protocol = Some(protocol.into());
        self
    }

    /// Selects the first of the client's offered subprotocols that is in `supported`, if
    /// any (else none: the response carries no `Sec-WebSocket-Protocol`).
    #[must_use]
    pub fn select_protocol(mut self, supported: &[&str]) -> Self {
        self.protocol = self
            .protocols()
            .iter()
            .find(|offered| supported.contains(&offered.as_str()))
            .cloned();
        self
    }

    /// Extra headers for the `101` response (`Set-Cookie`, a server name, …). The
    /// handshake's own headers (`Upgrade`, `Connection`, `Sec-WebSocket-*`) are refused:
    /// [`on_upgrade`](Self::on_upgrade) then answers 500 without upgrading.
    #[must_use]
    pub fn with_headers(mut self, headers: HeaderMap) -> Self {
        self.headers = headers;
        self
    }

    /// Tells the client's address, for the stream's `tracing` span (see
    /// [`HttpUpgrade::set_peer_addr`]): take it from axum's
    /// `ConnectInfo<SocketAddr>` extractor (served with
    /// `into_make_service_with_connect_info`).
    #[must_use]
    pub fn with_peer_addr(mut self, peer: std::net::SocketAddr) -> Self {
        self.upgrade.set_peer_addr(peer);
        self
    }

    /// Accepts the upgrade and returns the `101 Switching Protocols` response (over
    /// HTTP/2, `200 OK`) for the handler to return (see [`HttpUpgrade::accept`] for what it carries); once axum has
    /// sent it and handed the connection over, `callback` runs in a task of its own with
    /// the server-role stream (its `opened` already resolved). If the connection ends
    /// before that, `callback` is not called.
    ///
    /// A subprotocol the client did not offer, a forbidden or invalid extra header, or
    /// invalid `options` give a 500 Internal Server Error instead (nothing is upgraded).
    pub fn on_upgrade<F, Fut>(self, options: ServerOptions, callback: F) -> Response
    where
        F: FnOnce(WebSocketStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (response, accepted) =
            match self
                .upgrade
                .accept(self.protocol.as_deref(), &self.headers, options)
            {
                Ok(accepted) => accepted,
                Err(e) => {
                    let body = format!("cannot accept the WebSocket upgrade: {e}\n");
                    return (StatusCode::INTERNAL_SERVER_ERROR, body).into_response();
                }
            };
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            if let Ok(upgraded) = on_upgrade.await {
                callback(super::hyper::into_stream(accepted, upgraded)).await;
            }
        });
        response.map(|()| Body::empty())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let upgrade = HttpUpgrade::from_parts(parts).map_err(WebSocketUpgradeRejection::Request)?;
        let on_upgrade = parts
            .extensions
            .remove::<OnUpgrade>()
            .ok_or(WebSocketUpgradeRejection::NotUpgradable)?;
        Ok(Self {
            upgrade,
            on_upgrade,
            protocol: None,
            headers: HeaderMap::new(),
        })
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for WebSocketUpgrade {
    type Rejection = WebSocketUpgradeRejection;

    /// `None` for a request without an `Upgrade` header (a plain request; over HTTP/2, a
    /// request that is not a `CONNECT`); otherwise as the plain extractor, so an invalid
    /// upgrade request is still rejected.
    async fn from_request_parts(
        parts: &mut Parts,
        state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        let attempt = if parts.version == http::Version::HTTP_2 {
            parts.method == http::Method::CONNECT
        } else {
            parts.headers.contains_key(http::header::UPGRADE)
        };
        if !attempt {
            return Ok(None);
        }
        <Self as FromRequestParts<S>>::from_request_parts(parts, state)
            .await
            .map(Some)
    }
}

/// Why [`WebSocketUpgrade`] refused a request; as a response, the refusal to send.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebSocketUpgradeRejection {
    /// The request is not a valid WebSocket upgrade (RFC 6455 §4.2.1): 400 Bad Request, or
    /// 426 Upgrade Required with `Sec-WebSocket-Version: 13` for a wrong version.
    Request(RequestError),
    /// The request is valid but the server cannot upgrade its connection (no hyper
    /// upgrade handle in the request: not served by hyper with upgrades on):
    /// 500 Internal Server Error.
    NotUpgradable,
}

impl fmt::Display for WebSocketUpgradeRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Request(e) => e.fmt(f),
            Self::NotUpgradable => f.write_str("the server cannot upgrade this connection"),
        }
    }
}

impl std::error::Error for WebSocketUpgradeRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Request(e) => Some(e),
            Self::NotUpgradable => None,
        }
    }
}

impl IntoResponse for WebSocketUpgradeRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Request(e) => super::error_response(&e).map(Body::from),
            Self::NotUpgradable => {
                (StatusCode::INTERNAL_SERVER_ERROR, format!("{self}\n")).into_response()
            }
        }
    }
}
