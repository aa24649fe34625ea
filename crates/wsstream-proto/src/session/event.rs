//! What a [`Connection`](crate::Connection) reports upward.

use bytes::Bytes;

use crate::close::CloseFrame;
use crate::error::ProtocolError;
use crate::message::Message;

/// An event produced by [`Connection::poll_event`](crate::Connection::poll_event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The peer's Close frame. If we had not sent one, the reply is already queued
    /// (echoing the peer's code, RFC 6455 §5.5.1).
    Close(CloseFrame),
    /// We failed the connection because the peer broke the protocol. A Close frame with
    /// [`ProtocolError::close_code`] is queued; flush it and close the transport.
    Failed(ProtocolError),
    /// A complete message.
    Message(Message),
    /// A ping arrived; the pong is already queued.
    Ping(Bytes),
    /// A pong arrived.
    Pong(Bytes),
}
