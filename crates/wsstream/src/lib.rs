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
//! ## Deliberate choices
//!
//! * A readable that errors (unclean close) still yields the messages it had already
//!   received before the error: nothing received is lost while the application reads.
//! * `close()` while a write is in progress rejects that write with `InvalidStateError`
//!   (no data frame may follow a Close frame) and makes the close unclean (spec G4).
//! * Dropping every handle starts a closing handshake without status code and ends the
//!   connection task.
#![forbid(unsafe_code)]

mod abort;
mod client;
mod conn;
mod driver;
mod error;
mod keepalive;
mod options;
mod promise;
mod proxy;
mod redirect;
pub mod server;
mod stream;
mod streams;
mod transport;
mod url;

pub use abort::{AbortController, AbortSignal};
pub use client::ConnectError;
pub use error::{
    AbortReason, CancelReason, ClosedError, ConnectionError, DomException, DomExceptionName,
    OpenError, StreamError, TypeError, WebSocketError,
};
pub use options::{
    DEFAULT_CLOSE_TIMEOUT, DEFAULT_PING_TIMEOUT, DEFAULT_USER_AGENT, WebSocketStreamOptions,
};
pub use proxy::{Proxy, ProxyError, ProxyErrorKind};
pub use redirect::RedirectError;
/// The rustls version this crate is built with, for [`TlsOptions`] and
/// [`server::TlsAcceptor`] (`rustls::ClientConfig`, `rustls::pki_types::CertificateDer`, …).
pub use rustls;
pub use stream::{Closed, Opened, WebSocketCloseInfo, WebSocketOpenInfo, WebSocketStream};
pub use streams::{
    FlushFuture, ReadFuture, WebSocketReadable, WebSocketReader, WebSocketWritable,
    WebSocketWriter, WriteFuture,
};
pub use transport::AsyncIo;
pub use transport::tls::{Roots, TlsOptions};
pub use wsstream_proto::ext::deflate::{DeflateConfig, DeflateNegotiationError, DeflateParams};
pub use wsstream_proto::{Message, Utf8Bytes};
