//! Which end of the connection this engine plays.

/// The side of a WebSocket connection (RFC 6455 §5.1: the client masks, the server does not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// The side that opened the connection: masks every frame it sends and rejects masked frames.
    Client,
    /// The side that accepted the connection: never masks and rejects unmasked frames.
    Server,
}

impl Role {
    /// Whether frames sent by this role carry a masking key (RFC 6455 §5.3).
    pub const fn masks_outgoing(self) -> bool {
        matches!(self, Self::Client)
    }

    /// Whether frames received by this role must be masked (RFC 6455 §5.1).
    pub const fn expects_masked_incoming(self) -> bool {
        matches!(self, Self::Server)
    }
}
