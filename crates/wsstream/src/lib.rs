//! # wsstream: the browser's WebSocketStream API, natively in Rust
//!
//! A WebSocket client and server for tokio with the API of the browser's
//! [`WebSocketStream`]: construct it from a URL, await [`opened`](WebSocketStream::opened)
//! for a readable stream of incoming messages and a writable stream for outgoing ones,
//! await [`closed`](WebSocketStream::closed) for the close code and reason, and call
//! [`close`](WebSocketStream::close) with a code and a reason. Backpressure is real in
//! both directions, `close()` loses nothing that was written, and every failure carries
//! its cause. Underneath is `wsstream-proto`, a sans-io RFC 6455 engine.
//!
//! This page is the short tour. The [`manual`] has a chapter on each topic:
//! [backpressure](manual::backpressure), [closing](manual::closing),
//! [errors](manual::errors), [the server side](manual::server), [TLS](manual::tls),
//! [proxies](manual::proxies), [compression](manual::compression) and
//! [the browser API next to the Rust one](manual::browser).
//!
//! ## Quick start
//!
//! ```
//! use wsstream::{WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions};
//!
//! # async fn echo_server() -> Result<String, Box<dyn std::error::Error>> {
//! #     let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! #     let url = format!("ws://{}/echo", listener.local_addr()?);
//! #     tokio::spawn(async move {
//! #         let (tcp, _) = listener.accept().await.unwrap();
//! #         let wss = wsstream::server::accept(tcp, Default::default()).await.unwrap();
//! #         let info = wss.opened().await.unwrap();
//! #         let mut reader = info.readable.get_reader().unwrap();
//! #         let mut writer = info.writable.get_writer().unwrap();
//! #         while let Ok(Some(message)) = reader.read().await {
//! #             if writer.write(message).await.is_err() { break; }
//! #         }
//! #     });
//! #     Ok(url)
//! # }
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     # let url = echo_server().await?;
//!     // e.g. "wss://example.com/echo"; an invalid URL is an Err right here.
//!     let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
//!
//!     // The opening handshake: DNS, TCP, (proxy,) (TLS,) the HTTP upgrade.
//!     let WebSocketOpenInfo { readable, writable, protocol, .. } = wss.opened().await?;
//!     let mut reader = readable.get_reader()?;
//!     let mut writer = writable.get_writer()?;
//!
//!     writer.write("hello").await?; // &str / String: a text message; bytes: binary
//!     if let Some(message) = reader.read().await? {
//!         println!("received {message:?} (subprotocol {protocol:?})");
//!     }
//!
//!     wss.close(WebSocketCloseInfo { close_code: Some(1000), reason: "bye".into() })?;
//!     let WebSocketCloseInfo { close_code, reason } = wss.closed().await?;
//!     println!("closed with {close_code:?} {reason:?}");
//!     Ok(())
//! }
//! ```
//!
//! [`WebSocketStream::new`] validates the URL (`http`/`https` are mapped to `ws`/`wss`)
//! and the options at once and connects in the background. Options are a
//! [`WebSocketStreamOptions`]: start from `default()` and set what you need
//! (`protocols`, an abort `signal`, extra `headers`, limits, timeouts, keepalive pings,
//! TLS, proxy, compression). [`WebSocketStream::from_request`] takes the URL and headers
//! from an `http::Request<()>`, and [`WebSocketStream::with_stream`] runs over a byte
//! stream you already have (a Unix socket, an in-memory pipe, a tunnel).
//!
//! ## Reading and writing
//!
//! One chunk of each stream is one whole WebSocket [`Message`]: text
//! ([`Utf8Bytes`], validated UTF-8) or binary. Lock the [`WebSocketReadable`] to a
//! [`WebSocketReader`] and call [`read`](WebSocketReader::read): `Ok(Some(message))`,
//! `Ok(None)` once the connection closed cleanly (after every message received), or the
//! stream's error. The reader is also a `futures_core::Stream`. Lock the
//! [`WebSocketWritable`] to a [`WebSocketWriter`] and call
//! [`write`](WebSocketWriter::write); the writer is also a `futures_sink::Sink<Message>`
//! (`feed` many messages, then flush, for one socket write). Reads are cancel-safe, and a
//! write happens whether or not its future is polled.
//!
//! There is no I/O task in between: the task that reads reads the socket, the task that
//! writes writes it, and a small task per connection keeps the timers and answers pings
//! while nobody reads. [`opened`](WebSocketStream::opened) and
//! [`closed`](WebSocketStream::closed) are shared futures that any number of tasks can
//! await; they settle whether or not anyone reads or writes.
//!
//! ## Backpressure in one picture
//!
//! ```text
//!  receive:  app ◄── read() ◄── [ queue: 1 message ] ◄── engine ◄── read buffer ◄── socket
//!                                       full: the socket is not read; TCP flow control
//!                                       stops the peer once the kernel's buffer is full
//!
//!  send:     app ──► write() ──► engine ──► [ send buffer: 64 KiB ] ──► socket
//!                                       full: write() waits; it completes once its
//!                                       message is in the buffer, not when it arrived
//! ```
//!
//! An application that stops reading stops the socket reads, so a fast peer cannot fill
//! its memory (beyond one message of at most
//! [`max_message_size`](WebSocketStreamOptions::max_message_size) and the read buffer);
//! a peer that stops reading stalls the writer once
//! [`send_buffer_size`](WebSocketStreamOptions::send_buffer_size) bytes are waiting. The
//! details, with the measured figures, are in [`manual::backpressure`].
//!
//! ## Errors, and how to tell causes apart
//!
//! The values are the browser's: [`DomException`] for invalid arguments (a bad URL, an
//! invalid close code), [`WebSocketError`] (with [`close_code`](WebSocketError::close_code)
//! and [`reason`](WebSocketError::reason)) for a failed or unclean connection,
//! [`TypeError`] for a locked stream. `opened` and `closed` fail with a
//! [`ConnectionError`] (a WebSocketError, or the abort signal's reason); reads and writes
//! with a [`StreamError`]. What the browser hides, Rust adds: the WebSocketError's
//! [`source()`](std::error::Error::source) is the cause. For a failed handshake it is a
//! [`ConnectError`]: [`Io`](ConnectError::Io) (DNS, TCP), [`Tls`](ConnectError::Tls)
//! (a certificate refused), [`Rejected`](ConnectError::Rejected) (a non-101 status, with
//! the [`HandshakeRejection`]'s status, headers and body), [`Proxy`](ConnectError::Proxy),
//! [`Timeout`](ConnectError::Timeout), … After the connection opened, an unclean close
//! has code 1006 when no Close frame arrived, and its source says whether the transport
//! failed, the peer violated the protocol, or the closing handshake timed out.
//!
//! ```
//! # use wsstream::{ConnectError, WebSocketStream, WebSocketStreamOptions};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("ws://{}/", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     let (tcp, _) = listener.accept().await.unwrap();
//! #     let upgrade = wsstream::server::read_request(tcp).await.unwrap();
//! #     upgrade.reject(401, "Unauthorized", "").await.unwrap();
//! # });
//! let wss = WebSocketStream::new(&url, WebSocketStreamOptions::default())?;
//! let error = wss.opened().await.unwrap_err();
//! let cause = std::error::Error::source(&error).and_then(|s| s.downcast_ref::<ConnectError>());
//! match cause {
//!     Some(ConnectError::Rejected(rejection)) => assert_eq!(rejection.status(), 401),
//!     Some(ConnectError::Tls(_)) => { /* certificate problem */ }
//!     other => panic!("unexpected: {other:?}"),
//! }
//! # Ok(()) }
//! ```
//!
//! The complete table of causes is in [`manual::errors`].
//!
//! ## Closing
//!
//! [`close`](WebSocketStream::close) validates like the browser (on a client, code 1000
//! or 3000–4999; a reason of at most 123 bytes of UTF-8), then starts the closing
//! handshake. **It loses nothing**: every write accepted before it is sent first, its
//! future resolves, and the Close frame follows; writes after it fail with an
//! `InvalidStateError`. [`closed`](WebSocketStream::closed) resolves with the code and
//! reason of the Close frame *received* when the close was clean (both Close frames
//! exchanged, nothing left unsent, TCP closed), and fails with one WebSocketError,
//! shared with the readable and the writable, otherwise. The readable ends in the same
//! step. A message that crosses our Close frame is still delivered. Dropping every handle
//! starts a closing handshake without a status code. See [`manual::closing`].
//!
//! ## The server side
//!
//! A server-role connection is the same [`WebSocketStream`]. [`server::accept`] upgrades
//! a `TcpStream` (or any [`AsyncIo`]); [`server::read_request`] lets you look at the
//! path, subprotocols and headers first, then accept or reject with any status;
//! [`server::accept_tls`] adds TLS. Inside an HTTP server, [`server::HttpUpgrade`] works
//! on `http` types, and two cargo features, off by default, wrap it: `hyper`
//! (`server::hyper::HyperUpgrade`, for a hyper 1.x service) and `axum`
//! (`server::axum::WebSocketUpgrade`, an axum 0.8 extractor). See [`manual::server`].
//!
//! ## TLS, proxies, compression
//!
//! * **TLS**: `wss://` uses rustls with the aws-lc-rs provider (post-quantum
//!   X25519MLKEM768 key exchange first, as browsers offer; *ring* with a feature), verifying the server's
//!   certificate with the operating system's verifier and trust store by default
//!   ([`Roots::Platform`]); Mozilla's roots compiled in ([`Roots`], feature
//!   `webpki-roots`), a private CA, client certificates or a whole `rustls::ClientConfig`
//!   through [`TlsOptions`]. Verification cannot be turned off. See [`manual::tls`].
//! * **Proxies**: by default the environment's (`wss_proxy`, `https_proxy`, `ws_proxy`,
//!   `http_proxy`, `all_proxy`, `no_proxy`; loopback is never proxied), or an explicit
//!   HTTP, HTTPS, SOCKS5 or SOCKS5h [`Proxy`]. See [`manual::proxies`].
//! * **Compression**: permessage-deflate (RFC 7692) is offered and accepted by default, as
//!   browsers do; messages of 1 KiB or more are compressed at level 1. Its memory is
//!   allocated only once a message is compressed (or a compressed one arrives), then kept
//!   for the connection: about 380 KB for the compressor and 47.5 KB for the
//!   decompressor with the default 15-bit window, against about 2.4 KiB for an idle
//!   connection without it. Set [`compression`](WebSocketStreamOptions::compression) to
//!   `None` for many mostly idle connections, or lower the window (251 KB at 9 bits)
//!   with a [`DeflateConfig`]. See [`manual::compression`].
//!
//! ## From JavaScript
//!
//! | JavaScript | Rust |
//! |---|---|
//! | `new WebSocketStream(url, { protocols, signal })` | [`WebSocketStream::new`]`(url, options)?` with a [`WebSocketStreamOptions`] |
//! | `await wss.opened` | `wss.opened().await?` → [`WebSocketOpenInfo`] |
//! | `await wss.closed` | `wss.closed().await?` → [`WebSocketCloseInfo`] |
//! | `wss.close({ closeCode, reason })` | `wss.close(WebSocketCloseInfo { close_code, reason })?` |
//! | `readable.getReader()`, `await reader.read()` | [`get_reader`](WebSocketReadable::get_reader)`()?`, `reader.read().await?` → `Option<Message>` |
//! | `writable.getWriter()`, `await writer.write(chunk)` | [`get_writer`](WebSocketWritable::get_writer)`()?`, `writer.write(message).await?` |
//! | `writer.close()`, `writer.abort(reason)`, `readable.cancel(reason)` | [`WebSocketWriter::close`], [`WebSocketWriter::abort`], [`WebSocketReadable::cancel`] with a [`CancelReason`] |
//! | `WebSocketError`, `error.closeCode`, `error.reason` | [`WebSocketError`], [`close_code()`](WebSocketError::close_code), [`reason()`](WebSocketError::reason) |
//! | `DOMException` | [`DomException`] |
//! | `AbortController`, `AbortSignal.timeout(ms)` | [`AbortController`], [`AbortSignal::timeout`] |
//!
//! The full table, and the few places where wsstream deliberately differs from the
//! proposal's text to avoid losing data (as Chromium does), are in [`manual::browser`].
//!
//! ## Cargo features
//!
//! Everything a browser does is on by default; each part compiles out:
//!
//! * `rustls-aws-lc-rs` (default): `wss://` and TLS servers on rustls with aws-lc-rs,
//!   post-quantum hybrid key exchange first. `rustls-ring`: the same with *ring*.
//!   `tls` alone: rustls with the provider your program installs. Without any of them,
//!   `wss://` fails to connect with [`ConnectError::Tls`] and the TLS types are absent.
//! * `proxy` (default): HTTP CONNECT, HTTPS and SOCKS5 proxies, explicit or from the
//!   environment. Without it every connection is direct and the `proxy` option is absent.
//! * `deflate` (default): permessage-deflate. Without it compression is never offered or
//!   accepted (the options stay, and have no effect) and flate2 is not built.
//! * `tracing` (default): one `tracing` span per connection and events for the
//!   handshake, the close (code, reason, clean, cause), protocol violations and
//!   keepalive timeouts. Free when no subscriber listens.
//! * `webpki-roots`: [`Roots`] gains `WebPki`, Mozilla's root certificates compiled in.
//! * `hyper`: `server::hyper`, upgrades in a hyper 1.x server.
//! * `axum` (implies `hyper`): `server::axum`, the `WebSocketUpgrade` extractor for
//!   axum 0.8.
//! * `http2`: WebSockets over HTTP/2 (RFC 8441, extended `CONNECT`). A `wss://` client
//!   offers ALPN `h2` and `http/1.1`, uses HTTP/2 when the server allows WebSockets over
//!   it (one HTTP/2 connection per origin, shared by its WebSockets, driven by a task of
//!   its own) and falls back to HTTP/1.1 otherwise; the `http_version` option
//!   (`HttpVersionPreference`) chooses, and
//!   [`WebSocketOpenInfo::http_version`] tells which version a connection uses.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod abort;
mod client;
mod conn;
mod driver;
mod error;
#[cfg(feature = "http2")]
mod h2_client;
mod handshake;
mod keepalive;
pub mod manual;
mod options;
mod promise;
#[cfg(feature = "proxy")]
mod proxy;
mod redirect;
pub mod server;
mod stream;
mod streams;
mod trace;
mod transport;
mod url;

pub use abort::{AbortController, AbortSignal};
pub use client::ConnectError;
pub use error::{
    AbortReason, CancelReason, CloseCodes, ClosedError, ConnectionError, DomException,
    DomExceptionName, OpenError, PingError, StreamError, TypeError, WebSocketError,
};
#[cfg(feature = "http2")]
pub use h2_client::{Http2Error, Http2ErrorKind};
pub use handshake::HandshakeRejection;
/// The `http` crate this crate's signatures use (`http::Response`, `http::HeaderMap`, …).
pub use http;
#[cfg(feature = "http2")]
pub use options::HttpVersionPreference;
pub use options::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, DEFAULT_USER_AGENT, WebSocketStreamOptions,
};
#[cfg(feature = "proxy")]
pub use proxy::{Proxy, ProxyError, ProxyErrorKind};
pub use redirect::RedirectError;
/// The rustls version this crate is built with, for [`TlsOptions`] and
/// [`server::TlsAcceptor`] (`rustls::ClientConfig`, `rustls::pki_types::CertificateDer`, …).
#[cfg(feature = "tls")]
pub use rustls;
pub use stream::{Closed, Opened, Ping, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream};
pub use streams::{
    FlushFuture, ReadFuture, WebSocketReadable, WebSocketReader, WebSocketWritable,
    WebSocketWriter, WriteFuture,
};
pub use transport::AsyncIo;
#[cfg(feature = "tls")]
pub use transport::tls::{Roots, TlsOptions};
pub use wsstream_proto::ext::deflate::{DeflateConfig, DeflateNegotiationError, DeflateParams};
/// Why a handshake response was refused or a request could not be built
/// ([`ConnectError::Handshake`]).
pub use wsstream_proto::handshake::HandshakeError;
pub use wsstream_proto::{Message, Utf8Bytes};
