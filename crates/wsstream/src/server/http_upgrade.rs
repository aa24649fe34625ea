//! The upgrade of a request that an HTTP server has already parsed into `http` types
//! (hyper, axum, or any other): validate it, build the `101` response for the server to
//! send, then run the WebSocket connection over the upgraded I/O.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Uri, Version};
use wsstream_proto::handshake::{HandshakeRequest, RequestError};

use super::{AcceptError, Negotiated, ServerOptions, stream_url};
use crate::WebSocketStream;
use crate::transport::{AsyncIo, Transport};

/// A WebSocket upgrade request held as `http` types, validated and not yet answered:
/// the way in for servers that parse HTTP themselves (hyper, axum, …), where
/// [`read_request`](super::read_request) is the way in for a raw byte stream.
///
/// ```
/// use wsstream::http::{self, HeaderMap, Request};
/// use wsstream::server::{HttpUpgrade, ServerOptions, error_response};
///
/// let request = Request::get("/chat")
///     .header("Host", "example.com")
///     .header("Upgrade", "websocket")
///     .header("Connection", "Upgrade")
///     .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
///     .header("Sec-WebSocket-Version", "13")
///     .header("Sec-WebSocket-Protocol", "chat, superchat")
///     .body(())
///     .unwrap();
/// let upgrade = match HttpUpgrade::from_request(&request) {
///     Ok(upgrade) => upgrade,
///     Err(e) => {
///         let refusal = error_response(&e); // 400, or 426 for a wrong version
///         unreachable!("{refusal:?}");
///     }
/// };
/// let chosen = upgrade.request().protocols.first().cloned();
/// let (response, accepted) = upgrade
///     .accept(chosen.as_deref(), &HeaderMap::new(), ServerOptions::default())
///     .unwrap();
/// assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
/// assert_eq!(response.headers()["sec-websocket-accept"], "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// assert_eq!(accepted.protocol(), "chat");
/// // The server sends `response`; once the connection is upgraded:
/// // let wss = accepted.into_stream(upgraded_io);
/// ```
#[derive(Clone, Debug)]
pub struct HttpUpgrade {
    request: HandshakeRequest,
    secure: bool,
    /// An extended CONNECT on an HTTP/2 stream (RFC 8441), answered with `200`.
    http2: bool,
    /// The client's address, when the application tells it.
    peer: Option<SocketAddr>,
}

impl HttpUpgrade {
    /// Validates `request` as a WebSocket opening handshake (RFC 6455 §4.2.1), with the
    /// same rules as [`read_request`](super::read_request): a `GET` over HTTP/1.1, one
    /// `Host`, `Upgrade: websocket`, `Connection` holding `upgrade`, one
    /// `Sec-WebSocket-Key` that is base64 of 16 bytes, `Sec-WebSocket-Version: 13`, and
    /// well-formed offered subprotocols and extensions. The body is not looked at.
    ///
    /// With the `http2` feature, a request over HTTP/2 is checked as RFC 8441 asks
    /// instead ([`HandshakeRequest::from_extended_connect`]): method `CONNECT` with the
    /// `:protocol` pseudo-header `websocket` (taken from the request extensions, where
    /// hyper puts it as `hyper::ext::Protocol`), a `:path`, `:authority` (or `Host`),
    /// `Sec-WebSocket-Version: 13`, and no `Sec-WebSocket-Key`. Without the feature an
    /// HTTP/2 request is refused with 400.
    ///
    /// # Errors
    ///
    /// A [`RequestError`] naming the failed check; [`error_response`] turns it into the
    /// response to send (400 Bad Request, or 426 Upgrade Required with
    /// `Sec-WebSocket-Version: 13` for a missing or wrong version, RFC 6455 §4.4; over
    /// HTTP/2 always 400, with `Sec-WebSocket-Version: 13` for a wrong version).
    pub fn from_request<B>(request: &http::Request<B>) -> Result<Self, RequestError> {
        Self::from_head(
            request.method(),
            request.version(),
            request.uri(),
            request.headers(),
            request.extensions(),
        )
    }

    /// [`from_request`](Self::from_request) for a request split into its parts (an
    /// extractor's `&Parts`, for instance).
    ///
    /// # Errors
    ///
    /// As [`from_request`](Self::from_request).
    pub fn from_parts(parts: &http::request::Parts) -> Result<Self, RequestError> {
        Self::from_head(
            &parts.method,
            parts.version,
            &parts.uri,
            &parts.headers,
            &parts.extensions,
        )
    }

    fn from_head(
        method: &Method,
        version: Version,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Self, RequestError> {
        #[cfg(feature = "http2")]
        if version == Version::HTTP_2 {
            return Self::from_h2_head(method, uri, headers, extensions);
        }
        let _ = extensions;
        let version = match version {
            Version::HTTP_09 => (0, 9),
            Version::HTTP_10 => (1, 0),
            Version::HTTP_11 => (1, 1),
            Version::HTTP_2 => (2, 0),
            Version::HTTP_3 => (3, 0),
            _ => (0, 0),
        };
        // Origin form (`/path?query`); an absolute-form target keeps its path and query.
        let target = uri
            .path_and_query()
            .map_or_else(|| uri.path(), |target| target.as_str());
        let headers = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        let request = HandshakeRequest::from_http_parts(method.as_str(), version, target, headers)?;
        let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
        Ok(Self {
            request,
            secure,
            http2: false,
            peer: None,
        })
    }

    /// An HTTP/2 request: an extended CONNECT (RFC 8441 §4), its `:protocol` in the
    /// request extensions (hyper's `hyper::ext::Protocol`, or `h2::ext::Protocol`).
    #[cfg(feature = "http2")]
    fn from_h2_head(
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        extensions: &http::Extensions,
    ) -> Result<Self, RequestError> {
        let target = uri.path_and_query().map_or("", |target| target.as_str());
        let headers = headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()));
        let request = HandshakeRequest::from_extended_connect(
            method.as_str(),
            connect_protocol(extensions),
            target,
            uri.authority().map(http::uri::Authority::as_str),
            headers,
        )?;
        let secure = matches!(uri.scheme_str(), Some("https" | "wss"));
        Ok(Self {
            request,
            secure,
            http2: true,
            peer: None,
        })
    }

    /// Whether the request came over HTTP/2 (an extended CONNECT, RFC 8441): it is
    /// answered with `200 OK` instead of `101 Switching Protocols`.
    pub fn is_http2(&self) -> bool {
        self.http2
    }

    /// The validated request: target, `Host`, `Origin`, the offered subprotocols and
    /// extensions, and every header (names as the HTTP server gives them, lowercase for
    /// hyper).
    pub fn request(&self) -> &HandshakeRequest {
        &self.request
    }

    /// Tells that the request came over TLS, so the stream's
    /// [`url`](WebSocketStream::url) starts with `wss://` (the default is `ws://`, unless
    /// the request target itself was an absolute `https://` or `wss://` URL).
    pub fn set_secure(&mut self, secure: bool) {
        self.secure = secure;
    }

    /// Tells the client's address (the one the HTTP server accepted the connection from),
    /// for the stream's `tracing` span (`peer`). Without it the span has a peer only when
    /// the upgraded I/O is a `TcpStream`: over TLS or HTTP/2 the address is not known
    /// otherwise.
    pub fn set_peer_addr(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    /// Accepts the upgrade with `protocol` (one the client offered, or `None`) and the
    /// extra response `headers` (`Set-Cookie`, a server name, …): returns the
    /// `101 Switching Protocols` response for the HTTP server to send, and the negotiated
    /// connection to run over the upgraded I/O with [`Accepted::into_stream`].
    ///
    /// The response carries `Upgrade: websocket`, `Connection: Upgrade` and
    /// `Sec-WebSocket-Accept` (RFC 6455 §4.2.2 step 5), the selected
    /// `Sec-WebSocket-Protocol`, and the `Sec-WebSocket-Extensions` of permessage-deflate
    /// when [`ServerOptions::compression`] accepts one of the client's offers (RFC 7692),
    /// then `headers`, exactly as [`UpgradeRequest::accept_with_headers`] writes it.
    ///
    /// For a request over HTTP/2 ([`is_http2`](Self::is_http2)) the response is
    /// `200 OK` with version `HTTP/2.0` instead (RFC 8441 §5: no `Upgrade`,
    /// `Connection` or `Sec-WebSocket-Accept`), carrying the same
    /// `Sec-WebSocket-Protocol`, `Sec-WebSocket-Extensions` and `headers`; the I/O to run
    /// the connection over is the request's stream, once the `200` is sent.
    /// [`ServerOptions::handshake_timeout`] does not apply here: the HTTP server reads the
    /// request and writes the response, on its own deadlines.
    ///
    /// # Errors
    ///
    /// [`AcceptError::Response`] for a `protocol` the client did not offer (a client fails
    /// the handshake on it, RFC 6455 §4.1) or an extra header the handshake sets itself
    /// (`Upgrade`, `Connection`, `Sec-WebSocket-*`) or that is not valid;
    /// [`AcceptError::Config`] for invalid `options`. The application should then answer
    /// with an error of its own (500), not the upgrade.
    ///
    /// [`UpgradeRequest::accept_with_headers`]: super::UpgradeRequest::accept_with_headers
    pub fn accept(
        &self,
        protocol: Option<&str>,
        headers: &HeaderMap,
        options: ServerOptions,
    ) -> Result<(http::Response<()>, Accepted), AcceptError> {
        let negotiated = Negotiated::new(&self.request, protocol, headers, &options, self.http2)?;
        let response = negotiated.head().clone();
        let url = stream_url(&self.request, self.secure);
        Ok((
            response,
            Accepted {
                negotiated,
                url,
                peer: self.peer,
            },
        ))
    }
}

/// An accepted upgrade whose `101` (or, over HTTP/2, `200`) response is on its way: the negotiated subprotocol,
/// extensions and limits, waiting for the upgraded I/O.
#[derive(Debug)]
pub struct Accepted {
    negotiated: Negotiated,
    url: String,
    peer: Option<SocketAddr>,
}

impl Accepted {
    /// The selected subprotocol (`""` for none), as `opened` will report it.
    pub fn protocol(&self) -> &str {
        self.negotiated.protocol()
    }

    /// The accepted `Sec-WebSocket-Extensions` value (`""` for none), as `opened` will
    /// report it.
    pub fn extensions(&self) -> &str {
        self.negotiated.extensions()
    }

    /// The URL the stream will report: `ws://` (or `wss://`), the `Host`, the target.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Runs the WebSocket connection over `io`, the connection after the `101` response
    /// (hyper's upgraded I/O, a TCP stream, …) or the HTTP/2 stream after the `200`: a
    /// server-role [`WebSocketStream`] whose `opened` is already resolved with the
    /// negotiated protocol, extensions and the response. The connection task is spawned
    /// on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn into_stream<S: AsyncIo>(self, io: S) -> WebSocketStream {
        self.into_stream_with_leftover(io, Bytes::new())
    }

    /// [`into_stream`](Self::into_stream) for an `io` whose first bytes were already read
    /// (`leftover`, bytes the HTTP server buffered past the request head): they are
    /// decoded first, as the start of what the client sent.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn into_stream_with_leftover<S: AsyncIo>(self, io: S, leftover: Bytes) -> WebSocketStream {
        self.negotiated.start(
            self.url,
            Transport::from_io(io).with_peer(self.peer),
            BytesMut::from(leftover),
        )
    }
}

/// The `:protocol` pseudo-header of an HTTP/2 request, from its extensions.
#[cfg(feature = "http2")]
fn connect_protocol(extensions: &http::Extensions) -> Option<&str> {
    #[cfg(feature = "hyper")]
    if let Some(protocol) = extensions.get::<::hyper::ext::Protocol>() {
        return Some(protocol.as_str());
    }
    extensions
        .get::<h2::ext::Protocol>()
        .map(h2::ext::Protocol::as_str)
}

/// The HTTP response refusing an invalid upgrade request, as `http` types: the status,
/// headers and body of [`RequestError::response`] (400 Bad Request with the reason;
/// 426 Upgrade Required with `Sec-WebSocket-Version: 13` for a missing or wrong version,
/// RFC 6455 §4.2.2 and §4.4; 431 for an oversized head), with `Content-Type: text/plain`
/// and `Connection: close`. `Content-Length` is left to the HTTP server, which computes it
/// from the body. A request over HTTP/2 ([`RequestError::is_http2`]) gets 400 (with
/// `Sec-WebSocket-Version: 13` for a wrong version) and no `Connection` header, which
/// HTTP/2 forbids.
pub fn error_response(error: &RequestError) -> http::Response<String> {
    let bytes = error.response();
    let head_len = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |at| at + 4);
    let head = crate::handshake::response_head(&bytes[..head_len]);
    let (mut parts, ()) = head.into_parts();
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let body = String::from_utf8_lossy(&bytes[head_len..]).into_owned();
    http::Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(version: &str) -> http::Request<()> {
        http::Request::get("/chat?x=1")
            .header("Host", "example.com")
            .header("Upgrade", "websocket")
            .header("Connection", "keep-alive, Upgrade")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Version", version)
            .header(
                "Sec-WebSocket-Extensions",
                "permessage-deflate; client_max_window_bits",
            )
            .body(())
            .unwrap()
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn a_valid_request_is_accepted_with_deflate() {
        let upgrade = HttpUpgrade::from_request(&request("13")).unwrap();
        assert_eq!(upgrade.request().resource, "/chat?x=1");
        let (response, accepted) = upgrade
            .accept(None, &HeaderMap::new(), ServerOptions::default())
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(response.headers()["upgrade"], "websocket");
        assert_eq!(response.headers()["connection"], "Upgrade");
        assert!(accepted.extensions().starts_with("permessage-deflate"));
        assert_eq!(
            response.headers()["sec-websocket-extensions"],
            accepted.extensions()
        );
        assert_eq!(accepted.url(), "ws://example.com/chat?x=1");
        let (parts, ()) = request("13").into_parts();
        let mut upgrade = HttpUpgrade::from_parts(&parts).unwrap();
        upgrade.set_secure(true);
        let options = ServerOptions::default().compression(None);
        let (response, accepted) = upgrade.accept(None, &HeaderMap::new(), options).unwrap();
        assert!(!response.headers().contains_key("sec-websocket-extensions"));
        assert_eq!(accepted.extensions(), "");
        assert_eq!(accepted.url(), "wss://example.com/chat?x=1");
    }

    #[test]
    fn a_wrong_version_is_refused_with_426() {
        let e = HttpUpgrade::from_request(&request("8")).unwrap_err();
        let response = error_response(&e);
        assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
        assert_eq!(response.headers()["sec-websocket-version"], "13");
        assert_eq!(response.headers()["connection"], "close");
        assert!(!response.headers().contains_key("content-length"));
        assert_eq!(response.body(), "unsupported Sec-WebSocket-Version \"8\"\n");
    }

    #[test]
    fn a_request_that_is_not_an_upgrade_is_refused_with_400() {
        let plain = http::Request::get("/")
            .header("Host", "h")
            .body(())
            .unwrap();
        let e = HttpUpgrade::from_request(&plain).unwrap_err();
        let response = error_response(&e);
        assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
        assert_eq!(response.body(), "missing `Upgrade: websocket`\n");
        let mut http2 = request("13");
        *http2.version_mut() = Version::HTTP_2;
        let e = HttpUpgrade::from_request(&http2).unwrap_err();
        assert_eq!(error_response(&e).status(), http::StatusCode::BAD_REQUEST);
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn the_application_answer_is_checked() {
        let upgrade = HttpUpgrade::from_request(&request("13")).unwrap();
        let e = upgrade
            .accept(Some("chat"), &HeaderMap::new(), ServerOptions::default())
            .unwrap_err();
        assert!(matches!(e, AcceptError::Response(_)), "{e}");
        let mut headers = HeaderMap::new();
        headers.insert("sec-websocket-accept", "forged".parse().unwrap());
        let e = upgrade
            .accept(None, &headers, ServerOptions::default())
            .unwrap_err();
        assert!(matches!(e, AcceptError::Response(_)), "{e}");
        let mut headers = HeaderMap::new();
        headers.insert("x-server", "wsstream".parse().unwrap());
        let (response, _) = upgrade
            .accept(None, &headers, ServerOptions::default())
            .unwrap();
        assert_eq!(response.headers()["x-server"], "wsstream");
    }

    /// An extended CONNECT (RFC 8441 §4) as an HTTP/2 server hands it over, `:protocol`
    /// in the extensions.
    #[cfg(feature = "http2")]
    fn extended_connect(protocol: Option<&'static str>, version: &str) -> http::Request<()> {
        let mut request = http::Request::connect("https://example.com/chat?x=1")
            .version(Version::HTTP_2)
            .header("sec-websocket-version", version)
            .header("sec-websocket-protocol", "chat")
            .header(
                "sec-websocket-extensions",
                "permessage-deflate; client_max_window_bits",
            )
            .body(())
            .unwrap();
        if let Some(protocol) = protocol {
            request
                .extensions_mut()
                .insert(h2::ext::Protocol::from_static(protocol));
        }
        request
    }

    #[cfg(all(feature = "http2", feature = "deflate"))]
    #[test]
    fn an_extended_connect_is_accepted_with_200() {
        let upgrade =
            HttpUpgrade::from_request(&extended_connect(Some("websocket"), "13")).unwrap();
        assert!(upgrade.is_http2());
        assert_eq!(upgrade.request().resource, "/chat?x=1");
        assert_eq!(upgrade.request().host, "example.com");
        let mut extra = HeaderMap::new();
        extra.insert("x-server", "wsstream".parse().unwrap());
        let (response, accepted) = upgrade
            .accept(Some("chat"), &extra, ServerOptions::default())
            .unwrap();
        assert_eq!(response.status(), http::StatusCode::OK);
        assert_eq!(response.version(), Version::HTTP_2);
        let headers = response.headers();
        assert_eq!(headers["sec-websocket-protocol"], "chat");
        assert_eq!(headers["sec-websocket-extensions"], accepted.extensions());
        assert!(accepted.extensions().starts_with("permessage-deflate"));
        assert_eq!(headers["x-server"], "wsstream");
        for absent in ["sec-websocket-accept", "upgrade", "connection"] {
            assert!(!headers.contains_key(absent), "{absent}");
        }
        // `https` in the request's URI: the stream's URL is `wss://`.
        assert_eq!(accepted.url(), "wss://example.com/chat?x=1");
        // The handshake's own headers are still refused as extra headers.
        let mut forged = HeaderMap::new();
        forged.insert("sec-websocket-accept", "forged".parse().unwrap());
        let e = upgrade
            .accept(None, &forged, ServerOptions::default())
            .unwrap_err();
        assert!(matches!(e, AcceptError::Response(_)), "{e}");
    }

    #[cfg(feature = "http2")]
    #[test]
    fn a_wrong_http2_request_is_refused_with_400() {
        for request in [
            extended_connect(None, "13"),
            extended_connect(Some("connect-udp"), "13"),
            extended_connect(Some("websocket"), "8"),
        ] {
            let e = HttpUpgrade::from_request(&request).unwrap_err();
            let response = error_response(&e);
            assert_eq!(response.status(), http::StatusCode::BAD_REQUEST);
            assert!(!response.headers().contains_key("connection"));
        }
        let e = HttpUpgrade::from_request(&extended_connect(Some("websocket"), "8")).unwrap_err();
        assert_eq!(error_response(&e).headers()["sec-websocket-version"], "13");
    }
}
