//! # wsstream: the browser's WebSocketStream API, natively in Rust
//!
//! ```no_run
//! use wsstream::{WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream, WebSocketStreamOptions};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let wss = WebSocketStream::new("ws://127.0.0.1:8080/echo", WebSocketStreamOptions::default())?;
//! let WebSocketOpenInfo { readable, writable, .. } = wss.opened().await?;
//! let mut reader = readable.get_reader()?;
//! let mut writer = writable.get_writer()?;
//! writer.write("ping").await?;
//! if let Some(message) = reader.read().await? {
//!     println!("received {message:?}");
//! }
//! wss.close(WebSocketCloseInfo { close_code: Some(1000), reason: "bye".into() })?;
//! let WebSocketCloseInfo { close_code, reason } = wss.closed().await?;
//! println!("closed with {close_code:?} {reason:?}");
//! # Ok(()) }
//! ```
//!
//! The behaviour follows the WHATWG WebSocketStream proposal and its web-platform tests:
//! `opened` and `closed` are shared futures that settle without anyone reading; reading
//! stops the socket reads when the application stops reading (receive backpressure); a
//! write completes once the message is in the connection's bounded send buffer (send
//! backpressure); `close()` validates like the browser. Where Rust adds something (the
//! real cause of a failure through `source()`, limits, the server side), it is documented
//! on the item.
//!
//! ## How it works
//!
//! The task that needs the connection to move makes it move, in its own task, as the
//! other Rust WebSocket libraries do: a [`WebSocketReader`] decodes what is buffered and
//! reads the socket itself when it needs more (and only then: that is the receive
//! backpressure), and a waiting read is woken by the socket directly; a
//! [`WebSocketWriter`] frames its message into the send buffer and writes the socket
//! itself. No message crosses from one task to another on the way, which is what makes
//! the multi-threaded runtime of `#[tokio::main]` as fast as a single thread.
//!
//! Each open connection also has a small task of its own for what no application task
//! is there to do: the timers (the close timeout, keepalive pings), answering pings and
//! completing the closing handshake while nobody reads, so `opened` and `closed` settle
//! whether or not anyone reads or writes. It is not woken on the hot paths.
//!
//! ```text
//!  in:  socket → read buffer → engine (unmask, reassemble, inflate, UTF-8) → one-message queue → read()
//!  out: write() → engine (deflate, fragment, mask) → send buffer (64 KiB) → socket
//! ```
//!
//! ## Deliberate choices
//!
//! * **`close()` loses nothing.** Writes accepted before [`WebSocketStream::close`] (or
//!   [`WebSocketReadable::cancel`]) are sent first, their futures resolve, then the Close
//!   frame follows, and the close is clean when the peer answers, as in Chromium (the
//!   proposal's text would drop them). Writes after it fail with `InvalidStateError`.
//!   [`WebSocketWriter::abort`] follows the streams standard: the write being sent
//!   completes, writes still queued are rejected with the abort reason.
//! * **The application's turn.** When a read hands out the last queued message and more
//!   bytes came with it (read from the socket together), what they hold (the peer's Close,
//!   a protocol violation) takes effect on the application's next move (a read, a write, a
//!   close, awaiting `closed`), or after 50–100 ms without one. A reply written in answer
//!   to a message therefore goes out before a Close or a failure that came with the
//!   message, and the Close is still answered when the application does nothing at all.
//!   The same holds for bytes that came with the opening handshake's response.
//! * **Unsent data makes a close unclean** (the web-platform tests' rule): writes still
//!   pending when the peer's Close arrives are rejected with `InvalidStateError` and
//!   `closed` fails with a `WebSocketError` carrying the peer's code; a write refused
//!   because the peer's Close had already arrived counts the same way, so the outcome
//!   does not depend on which came first by a few microseconds.
//! * **The readable ends with the connection**: closed, or errored with the very error of
//!   `closed`, in the same step that settles `closed` (the closing handshake done and
//!   TCP closed), never when the Close frame is merely read. A reader that sees the end
//!   finds `closed` already settled.
//! * A readable that errors (unclean close) still yields the messages it had already
//!   received before the error: nothing received is lost while the application reads.
//! * A message that arrives after our own `close()` is still delivered while the readable
//!   is open (as Chromium does; the proposal discards it), up to 16 MiB.
//! * Dropping every handle starts a closing handshake without status code and ends the
//!   connection task.
#![forbid(unsafe_code)]

mod abort;
mod client;
mod conn;
mod driver;
mod error;
mod handshake;
mod keepalive;
pub mod manual;
mod options;
mod promise;
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
pub use handshake::HandshakeRejection;
/// The `http` crate this crate's signatures use (`http::Response`, `http::HeaderMap`, …).
pub use http;
pub use options::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, DEFAULT_USER_AGENT, WebSocketStreamOptions,
};
pub use proxy::{Proxy, ProxyError, ProxyErrorKind};
pub use redirect::RedirectError;
/// The rustls version this crate is built with, for [`TlsOptions`] and
/// [`server::TlsAcceptor`] (`rustls::ClientConfig`, `rustls::pki_types::CertificateDer`, …).
pub use rustls;
pub use stream::{Closed, Opened, Ping, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream};
pub use streams::{
    FlushFuture, ReadFuture, WebSocketReadable, WebSocketReader, WebSocketWritable,
    WebSocketWriter, WriteFuture,
};
pub use transport::AsyncIo;
pub use transport::tls::{Roots, TlsOptions};
pub use wsstream_proto::ext::deflate::{DeflateConfig, DeflateNegotiationError, DeflateParams};
/// Why a handshake response was refused or a request could not be built
/// ([`ConnectError::Handshake`]).
pub use wsstream_proto::handshake::HandshakeError;
pub use wsstream_proto::{Message, Utf8Bytes};
