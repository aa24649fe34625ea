//! [`WebSocketStream`]: the promise-shaped handle (`url`, `opened`, `closed`, `close`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::conn::{Handle, OpenState, Shared};
use crate::error::{ConnectionError, DomException, PingError, validate_close_info};
use crate::options::WebSocketStreamOptions;
use crate::promise::Wait;
use crate::streams::{WebSocketReadable, WebSocketWritable};
use crate::transport::AsyncIo;

/// What `opened` resolves with: the two streams and what the handshake negotiated.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WebSocketOpenInfo {
    /// The incoming messages.
    pub readable: WebSocketReadable,
    /// The outgoing messages.
    pub writable: WebSocketWritable,
    /// The negotiated extensions (`Sec-WebSocket-Extensions`), `""` if none.
    pub extensions: String,
    /// The negotiated subprotocol, `""` if none.
    pub protocol: String,
    /// The `101` response head as it was sent; parsed by [`response`](Self::response) on
    /// demand, so an open connection keeps a few hundred bytes for it, not a header map.
    head: bytes::Bytes,
}

impl WebSocketOpenInfo {
    /// The response of the opening handshake, status and headers (beyond the browser API):
    /// the one a client received, or the one a server sent. `101 Switching Protocols` over
    /// HTTP/1.1; `200` over HTTP/2 (see [`http_version`](Self::http_version)).
    /// Built from the response head the connection keeps, on each call.
    ///
    /// ```
    /// # async fn demo(info: wsstream::WebSocketOpenInfo) {
    /// let response = info.response();
    /// assert_eq!(response.status(), 101);
    /// if let Some(server) = response.headers().get("server") {
    ///     println!("served by {server:?}");
    /// }
    /// # }
    /// ```
    pub fn response(&self) -> http::Response<()> {
        crate::handshake::response_head(&self.head)
    }

    /// The HTTP version the WebSocket runs over: `HTTP/1.1` for an upgraded connection
    /// (RFC 6455 §4), `HTTP/2.0` for an extended CONNECT stream of a shared HTTP/2
    /// connection (RFC 8441, feature `http2`).
    pub fn http_version(&self) -> http::Version {
        if crate::handshake::is_h2_head(&self.head) {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        }
    }
}

/// A close code and reason: the argument of [`WebSocketStream::close`] and the value
/// `closed` resolves with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebSocketCloseInfo {
    /// The close code. As an argument: `None` sends no code (or 1000 with a reason). As a
    /// result: always `Some` (1005 when the peer's Close frame had no code).
    pub close_code: Option<u16>,
    /// The close reason (at most 123 bytes of UTF-8 as an argument).
    pub reason: String,
}

/// The browser's `WebSocketStream`, on tokio. Cheap to clone; clones are the same
/// connection.
///
/// Construction validates the URL and options synchronously and returns at once; a
/// background task connects. [`opened`](Self::opened) and [`closed`](Self::closed) are
/// shared futures that settle whether or not anyone reads or writes.
#[derive(Clone)]
pub struct WebSocketStream {
    handle: Handle,
}

impl std::fmt::Debug for WebSocketStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocketStream")
            .field("url", &self.url())
            .finish()
    }
}

impl WebSocketStream {
    /// `new WebSocketStream(url, options)`: parses `url` (http/https map to ws/wss),
    /// validates the subprotocols, then connects in the background.
    ///
    /// Fails with a `SyntaxError` for a bad URL, scheme, fragment or protocol list; with
    /// an `InvalidStateError` when called outside a tokio runtime. A signal that is already
    /// aborted makes `opened` and `closed` fail with its reason and nothing is sent (not
    /// even a DNS query).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use wsstream::{DomExceptionName, WebSocketStream, WebSocketStreamOptions};
    ///
    /// // Invalid arguments fail here, synchronously; network problems never do.
    /// let error = WebSocketStream::new("ftp://127.0.0.1/", WebSocketStreamOptions::default())
    ///     .unwrap_err();
    /// assert_eq!(error.name(), DomExceptionName::SyntaxError);
    ///
    /// let mut options = WebSocketStreamOptions::default();
    /// options.protocols = vec!["chat".into()];
    /// let wss = WebSocketStream::new("http://127.0.0.1:9/chat", options)?;
    /// assert_eq!(wss.url(), "ws://127.0.0.1:9/chat"); // http → ws
    /// # Ok(()) }
    /// ```
    pub fn new(url: &str, options: WebSocketStreamOptions) -> Result<Self, DomException> {
        Self::start(url, options, None)
    }

    /// Like [`new`](Self::new), with the URL and the extra request headers taken from an
    /// `http::Request<()>` (a `GET` with an absolute `ws`, `wss`, `http` or `https` URI),
    /// for code that already builds its requests with the `http` crate. The request's
    /// headers are added to [`headers`](WebSocketStreamOptions::headers); a
    /// `Sec-WebSocket-Protocol` header becomes [`protocols`](WebSocketStreamOptions::protocols)
    /// (its comma-separated list, in order); the other headers the handshake sets itself
    /// (`Host`, `Upgrade`, `Connection`, the other `Sec-WebSocket-*`) fail the connection
    /// as they do in `headers`.
    ///
    /// Fails with a `SyntaxError` for another method, a relative URI, a header value that
    /// is not UTF-8, and everything [`new`](Self::new) refuses.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use wsstream::{WebSocketStream, WebSocketStreamOptions};
    /// let request = wsstream::http::Request::get("wss://example.com/feed")
    ///     .header("authorization", "Bearer token")
    ///     .header("sec-websocket-protocol", "v2.feed, v1.feed")
    ///     .body(())?;
    /// let wss = WebSocketStream::from_request(request, WebSocketStreamOptions::default())?;
    /// let info = wss.opened().await?;
    /// println!("{}", info.protocol);
    /// # Ok(()) }
    /// ```
    pub fn from_request(
        request: http::Request<()>,
        mut options: WebSocketStreamOptions,
    ) -> Result<Self, DomException> {
        if request.method() != http::Method::GET {
            return Err(DomException::syntax(format!(
                "a WebSocket handshake is a GET, not a {}",
                request.method()
            )));
        }
        let uri = request.uri();
        if uri.scheme().is_none() || uri.authority().is_none() {
            return Err(DomException::syntax(format!(
                "the request's URI {uri} is not absolute"
            )));
        }
        let url = uri.to_string();
        for (name, value) in request.headers() {
            let value = value.to_str().map_err(|_| {
                DomException::syntax(format!("the value of header {name} is not UTF-8"))
            })?;
            if name == http::header::SEC_WEBSOCKET_PROTOCOL {
                options.protocols.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned),
                );
            } else {
                options
                    .headers
                    .push((name.as_str().to_owned(), value.to_owned()));
            }
        }
        Self::new(&url, options)
    }

    /// Like [`new`](Self::new), but runs the opening handshake over `stream`, an already
    /// connected byte stream (a Unix socket, an in-memory pipe, a tunnel), instead of
    /// connecting to the URL's host. The URL still provides the `Host` header, the
    /// resource and the scheme (`wss://` runs TLS over `stream`). No redirect is followed.
    /// The handshake is HTTP/1.1's, unless the options ask for
    /// `HttpVersionPreference::Http2Only` (feature `http2`): then `stream` carries an HTTP/2
    /// connection of its own for this one WebSocket (RFC 8441; prior knowledge for `ws://`).
    pub fn with_stream(
        url: &str,
        options: WebSocketStreamOptions,
        stream: impl AsyncIo,
    ) -> Result<Self, DomException> {
        Self::start(url, options, Some(Box::new(stream)))
    }

    fn start(
        url: &str,
        options: WebSocketStreamOptions,
        io: Option<Box<dyn AsyncIo>>,
    ) -> Result<Self, DomException> {
        let url = crate::url::parse_url(url)?;
        crate::url::validate_protocols(&options.protocols)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            DomException::invalid_state(
                "WebSocketStream::new must be called within a tokio runtime",
            )
        })?;
        let shared = Shared::connecting(url.to_string(), options.close_codes);
        let stream = Self {
            handle: Handle::new(shared.clone()),
        };
        if let Some(reason) = options.signal.as_ref().and_then(crate::AbortSignal::reason) {
            shared.core().set_closed_before_open();
            shared
                .opened
                .settle(Err(ConnectionError::Aborted(reason.clone())));
            shared.closed.settle(Err(ConnectionError::Aborted(reason)));
            return Ok(stream);
        }
        runtime.spawn(crate::client::run(shared, url, options, io));
        Ok(stream)
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self {
            handle: Handle::new(shared),
        }
    }

    /// The URL, serialised after parsing (`http`/`https` already mapped to `ws`/`wss`);
    /// it never changes.
    pub fn url(&self) -> &str {
        self.handle.url()
    }

    /// `opened`: resolves with the streams, protocol and extensions once the handshake
    /// succeeds; fails with a WebSocketError without code (its `source()` says why) or the
    /// abort reason.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/echo", listener.local_addr()?);
    /// # tokio::spawn(async move {
    /// #     let (tcp, _) = listener.accept().await.unwrap();
    /// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
    /// #     let info = wss.opened().await.unwrap();
    /// #     let mut reader = info.readable.get_reader().unwrap();
    /// #     let mut writer = info.writable.get_writer().unwrap();
    /// #     while let Ok(Some(message)) = reader.read().await {
    /// #         if writer.write(message).await.is_err() { break; }
    /// #     }
    /// # });
    /// use wsstream::{WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions};
    ///
    /// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    /// let info = wss.opened().await?;
    /// assert_eq!(info.response().status(), 101);
    /// let WebSocketOpenInfo { readable, writable, protocol, extensions, .. } = info;
    /// println!("subprotocol {protocol:?}, extensions {extensions:?}");
    /// # let _ = (readable, writable);
    /// # Ok(()) }
    /// ```
    pub fn opened(&self) -> Opened {
        Opened {
            wait: Wait {
                promise: self.handle.opened.clone(),
            },
            shared: self.handle.shared().clone(),
        }
    }

    /// `closed`: resolves with the close code and reason of a clean close; fails with a
    /// WebSocketError (code 1006 when no Close frame arrived) or the abort reason.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/echo", listener.local_addr()?);
    /// # tokio::spawn(async move {
    /// #     let (tcp, _) = listener.accept().await.unwrap();
    /// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
    /// #     let info = wss.opened().await.unwrap();
    /// #     let mut reader = info.readable.get_reader().unwrap();
    /// #     let mut writer = info.writable.get_writer().unwrap();
    /// #     while let Ok(Some(message)) = reader.read().await {
    /// #         if writer.write(message).await.is_err() { break; }
    /// #     }
    /// # });
    /// use wsstream::{WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};
    ///
    /// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    /// // Any task can wait for the end, whether or not anyone reads or writes.
    /// let closed = tokio::spawn(wss.closed());
    ///
    /// wss.opened().await?;
    /// wss.close(WebSocketCloseInfo { close_code: Some(4000), reason: "done".into() })?;
    ///
    /// match closed.await? {
    ///     Ok(WebSocketCloseInfo { close_code, reason }) => {
    ///         assert_eq!(close_code, Some(4000)); // as the peer echoed it
    ///         println!("clean close: {close_code:?} {reason:?}");
    ///     }
    ///     Err(e) => println!("unclean close {:?}: {e}", e.close_code()),
    /// }
    /// # Ok(()) }
    /// ```
    pub fn closed(&self) -> Closed {
        Closed {
            wait: Wait {
                promise: self.handle.closed.clone(),
            },
            shared: self.handle.shared().clone(),
        }
    }

    /// `close(closeInfo)`: validates the code, then the reason (at most 123 bytes of
    /// UTF-8, else `SyntaxError`), then starts the closing handshake — or, during the
    /// opening handshake, fails the connection. The outcome is observed through
    /// [`closed`](Self::closed).
    ///
    /// Which codes are accepted (else `InvalidAccessError`): on a client stream, the
    /// browser's rule, 1000 or 3000–4999 (what the web-platform tests check), unless its
    /// options chose [`CloseCodes::Protocol`](crate::CloseCodes::Protocol); on a server
    /// stream, every code RFC 6455 §7.4 allows on the wire: 1000–1003, 1007–1014 (1001
    /// going away, 1008 policy violation, 1011 internal error, 1012 service restart, 1013
    /// try again later, …) and 3000–4999. Without a code, a non-empty reason sends 1000.
    ///
    /// Nothing written is lost: every write accepted before `close()` is sent first, its
    /// future resolves, and the Close frame follows it (as Chromium does; a peer that
    /// answers makes the close clean). Writes after `close()` fail with
    /// `InvalidStateError`. The close timeout bounds the whole: sending what is queued
    /// and the closing handshake.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/echo", listener.local_addr()?);
    /// # tokio::spawn(async move {
    /// #     let (tcp, _) = listener.accept().await.unwrap();
    /// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
    /// #     let info = wss.opened().await.unwrap();
    /// #     let mut reader = info.readable.get_reader().unwrap();
    /// #     let mut writer = info.writable.get_writer().unwrap();
    /// #     while let Ok(Some(message)) = reader.read().await {
    /// #         if writer.write(message).await.is_err() { break; }
    /// #     }
    /// # });
    /// use wsstream::{DomExceptionName, WebSocketCloseInfo, WebSocketStream, WebSocketStreamOptions};
    ///
    /// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    /// let info = wss.opened().await?;
    /// let mut writer = info.writable.get_writer()?;
    ///
    /// // A client may not send 1001 (the browser's rule): validated before anything happens.
    /// let invalid = WebSocketCloseInfo { close_code: Some(1001), reason: String::new() };
    /// assert_eq!(wss.close(invalid).unwrap_err().name(), DomExceptionName::InvalidAccessError);
    ///
    /// let write = writer.write("sent before the Close frame");
    /// wss.close(WebSocketCloseInfo { close_code: Some(1000), reason: "bye".into() })?;
    /// write.await?; // accepted before close(): sent, not dropped
    /// assert!(writer.write("too late").await.is_err());
    /// assert_eq!(wss.closed().await?.close_code, Some(1000));
    /// # Ok(()) }
    /// ```
    pub fn close(&self, info: WebSocketCloseInfo) -> Result<(), DomException> {
        let code = validate_close_info(&info, self.handle.close_codes())?;
        self.handle.close(code, &info.reason);
        Ok(())
    }

    /// Sends a Ping (beyond the browser API) and resolves with the round-trip time when
    /// the matching Pong arrives. A Pong answers its Ping and every earlier one (a peer may
    /// answer only the most recent Ping, RFC 6455 §5.5.3); unsolicited Pongs are ignored.
    /// Fails with [`PingError::NotOpen`] if the connection is not open (or is closing),
    /// with [`PingError::Closed`] if it closes first.
    ///
    /// The Pong is read with the messages: while the application leaves a received
    /// message unread (receive backpressure), a Pong behind it waits too.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let url = format!("ws://{}/echo", listener.local_addr()?);
    /// # tokio::spawn(async move {
    /// #     let (tcp, _) = listener.accept().await.unwrap();
    /// #     let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
    /// #     let info = wss.opened().await.unwrap();
    /// #     let mut reader = info.readable.get_reader().unwrap();
    /// #     let mut writer = info.writable.get_writer().unwrap();
    /// #     while let Ok(Some(message)) = reader.read().await {
    /// #         if writer.write(message).await.is_err() { break; }
    /// #     }
    /// # });
    /// use wsstream::{PingError, WebSocketStream, WebSocketStreamOptions};
    ///
    /// let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
    /// // Not open yet: no Ping is sent.
    /// assert_eq!(wss.ping().await, Err(PingError::NotOpen));
    ///
    /// wss.opened().await?;
    /// let rtt = wss.ping().await?; // the peer answers by itself, nobody needs to read
    /// println!("round trip: {rtt:?}");
    /// # Ok(()) }
    /// ```
    pub fn ping(&self) -> Ping {
        let promise = Arc::new(crate::promise::Promise::new());
        if let Err(e) = self.handle.core().ping(Some(promise.clone())) {
            promise.settle(Err(e));
        }
        Ping {
            wait: Wait { promise },
        }
    }
}

/// The future of [`WebSocketStream::opened`]. Cloneable; every clone settles the same way.
pub struct Opened {
    wait: Wait<Result<OpenState, ConnectionError>>,
    shared: Arc<Shared>,
}

impl Clone for Opened {
    fn clone(&self) -> Self {
        Self {
            wait: Wait {
                promise: self.wait.promise.clone(),
            },
            shared: self.shared.clone(),
        }
    }
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened").finish_non_exhaustive()
    }
}

impl Future for Opened {
    type Output = Result<WebSocketOpenInfo, ConnectionError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match Pin::new(&mut this.wait).poll(cx) {
            Poll::Ready(Ok(state)) => Poll::Ready(Ok(WebSocketOpenInfo {
                readable: WebSocketReadable::new(Handle::new(this.shared.clone())),
                writable: WebSocketWritable::new(Handle::new(this.shared.clone())),
                extensions: state.extensions,
                protocol: state.protocol,
                head: state.head,
            })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The future of [`WebSocketStream::closed`]. Cloneable; every clone settles the same way.
pub struct Closed {
    wait: Wait<Result<WebSocketCloseInfo, ConnectionError>>,
    shared: Arc<Shared>,
}

impl Clone for Closed {
    fn clone(&self) -> Self {
        Self {
            wait: Wait {
                promise: self.wait.promise.clone(),
            },
            shared: self.shared.clone(),
        }
    }
}

impl std::fmt::Debug for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

impl Future for Closed {
    type Output = Result<WebSocketCloseInfo, ConnectionError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.wait).poll(cx);
        if poll.is_pending() {
            this.shared.awaiting_closed();
        }
        poll
    }
}

/// The future of [`WebSocketStream::ping`]: the round-trip time of one Ping.
pub struct Ping {
    wait: Wait<Result<std::time::Duration, PingError>>,
}

impl std::fmt::Debug for Ping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ping").finish_non_exhaustive()
    }
}

impl Future for Ping {
    type Output = Result<std::time::Duration, PingError>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().wait).poll(cx)
    }
}
