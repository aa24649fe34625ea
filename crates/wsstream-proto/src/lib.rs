//! # wsstream-proto: a sans-io RFC 6455 engine
//!
//! This crate is the WebSocket protocol and nothing else: handshake bytes for both roles,
//! the frame codec, masking, fragmentation, UTF-8 validation, message limits, the
//! closing handshake and permessage-deflate (RFC 7692, negotiated with [`ext::deflate`] and
//! switched on through [`Config::deflate`]). It performs **no I/O**, owns **no clock** and spawns nothing. A
//! runtime (the `wsstream` crate uses tokio) moves bytes between a socket and a
//! [`Connection`]:
//!
//! ```text
//!  socket bytes ──► Connection::poll_event(&mut input) ──► Event (Message, Close, Pong, Failed)
//!  user message ──► Connection::send(...)               ──► Connection::take_transmit() ──► socket
//! ```
//!
//! ## The contract of [`Connection`]
//!
//! * **Inputs**: [`Connection::poll_event`] consumes bytes from the caller's input buffer and
//!   returns at most one event per call (so the caller controls how many messages it
//!   buffers: that is receive backpressure). [`Connection::send`] starts an outbound message,
//!   [`Connection::close`] starts the closing handshake, [`Connection::ping`] sends a ping.
//! * **Outputs**: [`Connection::take_transmit`] hands out the encoded bytes to write;
//!   [`Connection::poll_event`] yields events. Control frames (pong, close) never wait for
//!   data credit: they are framed at once, behind the data frames already in the transmit
//!   buffer (at most the buffer's cap plus one frame) and ahead of every later data frame.
//! * **Backpressure as data**: [`Connection::wants_data`] reports whether the transmit buffer
//!   has room for more data frames; the runtime turns that into a pending future.
//! * Payloads are zero-copy: a frame that arrived whole in the input buffer is split off the
//!   buffer, never copied (a compressed message is inflated into a buffer of its own).
//!
//! Every rule of RFC 6455 that the engine enforces cites its section at the place it is
//! implemented. Peer violations fail the connection with the close code of
//! [`ProtocolError::close_code`].
#![forbid(unsafe_code)]

pub mod close;
pub mod codec;
pub mod config;
pub mod error;
pub mod ext;
pub mod handshake;
pub mod message;
pub mod role;
pub mod session;
pub mod wire;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use error::{ApiMisuse, ProtocolError};
pub use message::{Message, Utf8Bytes};
pub use role::Role;
pub use session::{Connection, Event, State};
