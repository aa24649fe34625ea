//! [`WebSocketStreamOptions`]: the browser's `protocols` and `signal`, plus Rust-only knobs
//! with browser-like defaults.

use std::time::Duration;
use wsstream_proto::ext::deflate::{DeflateConfig, DeflateParams};

use crate::abort::AbortSignal;
use crate::error::CloseCodes;
#[cfg(feature = "proxy")]
use crate::proxy::Proxy;
#[cfg(feature = "tls")]
use crate::transport::tls::TlsOptions;

/// Default close timeout: how long to wait for the peer's half of the closing handshake.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// Default [`ping_timeout`](WebSocketStreamOptions::ping_timeout) of keepalive pings.
pub const DEFAULT_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The `User-Agent` sent when [`headers`](WebSocketStreamOptions::headers) has none:
/// `wsstream/` and this crate's version.
pub const DEFAULT_USER_AGENT: &str = concat!("wsstream/", env!("CARGO_PKG_VERSION"));

/// Options of [`WebSocketStream::new`](crate::WebSocketStream::new).
///
/// Start from [`Default`] and set the fields you need (the struct may gain fields, so
/// build it this way rather than with a struct literal):
///
/// ```
/// # use std::time::Duration;
/// # use wsstream::{AbortSignal, WebSocketStreamOptions};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut options = WebSocketStreamOptions::default();
/// options.protocols = vec!["chat".into()];
/// options.signal = Some(AbortSignal::timeout(Duration::from_secs(5)));
/// # let _ = options; }
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebSocketStreamOptions {
    /// Subprotocols to offer (`Sec-WebSocket-Protocol`), in order of preference. Each must
    /// be an RFC 7230 token and appear once (compared case-insensitively); otherwise
    /// [`WebSocketStream::new`](crate::WebSocketStream::new) fails with a `SyntaxError`.
    pub protocols: Vec<String>,
    /// Aborts the opening handshake: `opened` and `closed` then fail with the signal's
    /// reason (an already aborted signal means nothing is sent at all). No effect once
    /// the connection is open.
    pub signal: Option<AbortSignal>,
    /// Extra request headers (e.g. `Authorization`, `Origin`, `Cookie`). The protocol's
    /// own headers (`Host`, `Upgrade`, `Connection`, `Sec-WebSocket-*`) cannot be
    /// overridden: such a header fails the connection (`opened` fails with a
    /// [`ConnectError::Handshake`](crate::ConnectError::Handshake) naming it). A
    /// `User-Agent: wsstream/<version>` is sent unless one is given here. Over HTTP/2
    /// (feature `http2`) names are sent in lower case and the HTTP/1.1 connection headers
    /// `Keep-Alive`, `Proxy-Connection`, `Transfer-Encoding` and `TE` are left out (RFC
    /// 9113 §8.2.2).
    pub headers: Vec<(String, String)>,
    /// Largest message accepted (the frame limit is the same); larger ones close the
    /// connection with 1009 before being buffered. Default 64 MiB.
    pub max_message_size: usize,
    /// How long to wait for the peer's Close frame (and, as the client, for the server to
    /// close TCP after the closing handshake) before closing uncleanly (1006). Default 30 s.
    pub close_timeout: Duration,
    /// Cap of encoded outgoing bytes waiting for the socket: a write completes once its
    /// message is in this buffer (send backpressure: a write completes once there was room
    /// for it, not when the peer received it). Default 64 KiB.
    pub send_buffer_size: usize,
    /// TLS settings of `wss://` connections (roots, client certificate, or a complete
    /// rustls configuration). Default: the platform verifier, no client certificate.
    /// Unused for `ws://`. (Feature `tls`.)
    #[cfg(feature = "tls")]
    pub tls: TlsOptions,
    /// The proxy to connect through. Default [`Proxy::FromEnv`]: `wss_proxy` /
    /// `https_proxy` / `all_proxy` for `wss://`, `ws_proxy` / `http_proxy` / `all_proxy`
    /// for `ws://`, except for hosts `no_proxy` lists and loopback hosts. Unused by
    /// [`WebSocketStream::with_stream`](crate::WebSocketStream::with_stream).
    #[cfg(feature = "proxy")]
    pub proxy: Proxy,
    /// Bound on the whole opening handshake: DNS, TCP, proxy, TLS, the HTTP upgrade and
    /// any redirects. When it expires `opened` fails with a WebSocketError whose source
    /// is [`ConnectError::Timeout`](crate::ConnectError::Timeout). Default `None`: as in
    /// the browser, only the [`signal`](Self::signal) bounds it (e.g.
    /// `AbortSignal::timeout`, which fails `opened` with the signal's reason instead).
    pub handshake_timeout: Option<Duration>,
    /// Keepalive: send a Ping every `ping_interval` while the connection is open.
    /// Default `None` (no pings, as in the browser).
    pub ping_interval: Option<Duration>,
    /// With [`ping_interval`](Self::ping_interval): when nothing at all (Pong or any
    /// other frame) arrives within this time after a Ping, the peer is considered gone
    /// and the connection closes uncleanly (1006; the WebSocketError's source says the
    /// peer stopped answering). Not enforced while the application leaves the readable
    /// full (nothing is read from the socket then). Default [`DEFAULT_PING_TIMEOUT`]
    /// (20 s).
    pub ping_timeout: Duration,
    /// TCP keepalive (`SO_KEEPALIVE`) on the client's TCP socket (to the server or the
    /// proxy), with this idle time before the first probe; probe interval and count are
    /// the operating system's. Default `None` (off).
    pub tcp_keepalive: Option<Duration>,
    /// How many redirects (`301`, `302`, `303`, `307`, `308` with a `Location`) of the
    /// opening handshake to follow. Default 0: as in the browser, a redirect fails the
    /// connection (a [`ConnectError::Handshake`](crate::ConnectError::Handshake) with
    /// the status). A redirect from `wss://` to `ws://` is never followed;
    /// `Authorization`, `Cookie` and `Proxy-Authorization` headers are not sent to
    /// another origin; redirects are not followed over a stream given to
    /// [`WebSocketStream::with_stream`](crate::WebSocketStream::with_stream).
    pub max_redirects: usize,
    /// permessage-deflate (RFC 7692). `Some` (the default) offers
    /// `permessage-deflate; client_max_window_bits`, as browsers do; the server decides,
    /// and `extensions` on `opened` reports what was negotiated. Messages below the
    /// config's threshold (1 KiB) are sent uncompressed; inflation is capped at
    /// `max_message_size` while inflating. `None` offers nothing. Without the `deflate`
    /// feature nothing is offered whatever this says.
    pub compression: Option<DeflateConfig>,
    /// Which codes [`WebSocketStream::close`](crate::WebSocketStream::close) accepts.
    /// Default [`CloseCodes::Browser`] (1000 or 3000–4999, as the web-platform tests
    /// require); [`CloseCodes::Protocol`] allows every code RFC 6455 §7.4 allows on the
    /// wire (1001 going away, 1008 policy violation, 1011 internal error, …).
    pub close_codes: CloseCodes,
    /// Which HTTP version carries the opening handshake. Default
    /// [`HttpVersionPreference::Auto`]: a `wss://` connection offers HTTP/2 and uses
    /// WebSockets over HTTP/2 (RFC 8441) when the server supports them, sharing one
    /// HTTP/2 connection per origin, and HTTP/1.1 otherwise; `ws://` uses HTTP/1.1, as
    /// browsers do. (Feature `http2`.)
    #[cfg(feature = "http2")]
    pub http_version: HttpVersionPreference,
}

/// The HTTP version of a client's opening handshake: the field
/// [`http_version`](WebSocketStreamOptions::http_version) of [`WebSocketStreamOptions`].
/// (Feature `http2`.)
///
/// Over HTTP/2 a WebSocket is one stream of an HTTP/2 connection, opened with an extended
/// `CONNECT` request (RFC 8441 §4) that the server allows with its
/// `SETTINGS_ENABLE_CONNECT_PROTOCOL` setting (RFC 8441 §3); the WebSocket frames are
/// unchanged. WebSockets to the same origin (scheme, host, port, TLS options and proxy)
/// made on the same tokio runtime share one HTTP/2 connection, as in browsers. That
/// connection's socket I/O runs on one more task, spawned on the current runtime and
/// shared by its WebSockets (multiplexing needs it driven whichever WebSocket is read or
/// written); over HTTP/1.1 each WebSocket's own connection task does its socket I/O. The
/// HTTP/2 connection closes 30 seconds after its last WebSocket has closed. See the
/// manual's chapter on HTTP/2 ([`manual::http2`](crate::manual::http2)).
/// [`WebSocketOpenInfo::http_version`](crate::WebSocketOpenInfo::http_version) tells which
/// version a connection uses. A stream given to
/// [`WebSocketStream::with_stream`](crate::WebSocketStream::with_stream) carries HTTP/1.1,
/// unless the preference is [`Http2Only`](Self::Http2Only): then an HTTP/2 connection of
/// its own, not pooled, for that one WebSocket.
#[cfg(feature = "http2")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpVersionPreference {
    /// HTTP/2 when the server supports WebSockets over it, else HTTP/1.1, without the
    /// application noticing: a `wss://` connection offers ALPN `h2` and `http/1.1`. If the
    /// server picks `http/1.1` the handshake continues on that connection. If it picks
    /// `h2` but does not allow extended `CONNECT` (no `SETTINGS_ENABLE_CONNECT_PROTOCOL`
    /// in its first SETTINGS, RFC 8441 §3), or answers the `CONNECT` with
    /// `RST_STREAM(HTTP_1_1_REQUIRED)`, `RST_STREAM(REFUSED_STREAM)`, `405 Method Not
    /// Allowed` or `501 Not Implemented` (how servers say they do not do this), the
    /// handshake is made again over a new connection offering ALPN `http/1.1` only, and
    /// (except after `REFUSED_STREAM`, which may be momentary) the origin is remembered
    /// for the life of the process as one without WebSockets over HTTP/2, so later
    /// connections go to HTTP/1.1 directly; a server that picks `http/1.1` is remembered
    /// the same way. `ws://` uses HTTP/1.1 (browsers never use unencrypted HTTP/2).
    ///
    /// With a rustls configuration of your own
    /// ([`TlsOptions::with_client_config`](crate::TlsOptions::with_client_config)) its
    /// ALPN list is used as it is: HTTP/2 is tried only if the list offers `h2` and the
    /// server picks it; a fallback connection uses a copy of the configuration whose
    /// ALPN list is `http/1.1` alone.
    #[default]
    Auto,
    /// HTTP/1.1 only, as without the `http2` feature: `wss://` offers ALPN `http/1.1`
    /// (or what a configuration of your own offers).
    Http1Only,
    /// HTTP/2 only: `wss://` offers ALPN `h2` and `http/1.1` and fails the connection
    /// (a [`ConnectError::Http2`](crate::ConnectError::Http2)) unless the server picks
    /// `h2` and allows extended `CONNECT`; `ws://` speaks HTTP/2 without TLS from the
    /// first byte ("prior knowledge", RFC 9113 §3.3), for servers known to accept it.
    Http2Only,
}

impl Default for WebSocketStreamOptions {
    fn default() -> Self {
        Self {
            protocols: Vec::new(),
            signal: None,
            headers: Vec::new(),
            max_message_size: wsstream_proto::config::DEFAULT_MAX_MESSAGE_SIZE,
            close_timeout: DEFAULT_CLOSE_TIMEOUT,
            send_buffer_size: wsstream_proto::config::DEFAULT_SEND_BUFFER,
            #[cfg(feature = "tls")]
            tls: TlsOptions::default(),
            #[cfg(feature = "proxy")]
            proxy: Proxy::FromEnv,
            handshake_timeout: None,
            ping_interval: None,
            ping_timeout: DEFAULT_PING_TIMEOUT,
            tcp_keepalive: None,
            max_redirects: 0,
            compression: Some(DeflateConfig::default()),
            close_codes: CloseCodes::Browser,
            #[cfg(feature = "http2")]
            http_version: HttpVersionPreference::Auto,
        }
    }
}

/// Builder-style setters, one per field (the struct is `#[non_exhaustive]`, so new
/// options can be added without breaking code that sets the ones it knows):
/// `WebSocketStreamOptions::default().protocols(…)`. Assigning a field of a value works as well.
impl WebSocketStreamOptions {
    /// Sets [`protocols`](Self::protocols).
    #[must_use]
    pub fn protocols(mut self, protocols: Vec<String>) -> Self {
        self.protocols = protocols;
        self
    }

    /// Sets [`signal`](Self::signal).
    #[must_use]
    pub fn signal(mut self, signal: Option<AbortSignal>) -> Self {
        self.signal = signal;
        self
    }

    /// Sets [`headers`](Self::headers).
    #[must_use]
    pub fn headers(mut self, headers: Vec<(String, String)>) -> Self {
        self.headers = headers;
        self
    }

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

    /// Sets [`tls`](Self::tls).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// Sets [`proxy`](Self::proxy).
    #[cfg(feature = "proxy")]
    #[must_use]
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.proxy = proxy;
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

    /// Sets [`tcp_keepalive`](Self::tcp_keepalive).
    #[must_use]
    pub fn tcp_keepalive(mut self, tcp_keepalive: Option<Duration>) -> Self {
        self.tcp_keepalive = tcp_keepalive;
        self
    }

    /// Sets [`max_redirects`](Self::max_redirects).
    #[must_use]
    pub fn max_redirects(mut self, max_redirects: usize) -> Self {
        self.max_redirects = max_redirects;
        self
    }

    /// Sets [`compression`](Self::compression).
    #[must_use]
    pub fn compression(mut self, compression: Option<DeflateConfig>) -> Self {
        self.compression = compression;
        self
    }

    /// Sets [`close_codes`](Self::close_codes).
    #[must_use]
    pub fn close_codes(mut self, close_codes: CloseCodes) -> Self {
        self.close_codes = close_codes;
        self
    }

    /// Sets [`http_version`](Self::http_version).
    #[cfg(feature = "http2")]
    #[must_use]
    pub fn http_version(mut self, http_version: HttpVersionPreference) -> Self {
        self.http_version = http_version;
        self
    }
}

impl WebSocketStreamOptions {
    pub(crate) fn proto_config(
        &self,
        deflate: Option<(DeflateParams, DeflateConfig)>,
    ) -> wsstream_proto::Config {
        engine_config(self.max_message_size, self.send_buffer_size, deflate)
    }
}

/// The engine's configuration for a connection of either role: the message limit applies
/// to frames too, the send buffer is at least one byte, and `deflate` is what the opening
/// handshake negotiated. The one mapping from the options of both roles to the engine.
pub(crate) fn engine_config(
    max_message_size: usize,
    send_buffer_size: usize,
    deflate: Option<(DeflateParams, DeflateConfig)>,
) -> wsstream_proto::Config {
    wsstream_proto::Config::default()
        .deflate(deflate)
        .max_message_size(max_message_size)
        .max_frame_size(max_message_size)
        .send_buffer(send_buffer_size.max(1))
}
