//! Handshake failures seen by the client role, and caller mistakes in handshake input.

use std::fmt;

/// Why a client handshake could not be built or why the server's response was refused.
///
/// Variants up to [`HandshakeError::DuplicateExtension`] are faults of the peer's response
/// (RFC 6455 §4.1: the client MUST _Fail the WebSocket Connection_); the others are faults of
/// the caller's input or of the local random source.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The head grew past [`MAX_HEAD_SIZE`](super::MAX_HEAD_SIZE) bytes without ending.
    HeadTooLarge,
    /// The head has more than [`MAX_HEADERS`](super::MAX_HEADERS) header lines.
    TooManyHeaders,
    /// The head is not valid HTTP/1.1.
    Malformed(String),
    /// The status code is not 101 (RFC 6455 §4.1, §4.2.2).
    Status {
        /// The status code received.
        status: u16,
        /// The reason phrase received (may be empty).
        reason: String,
    },
    /// The `Upgrade` header is missing or does not contain the `websocket` token.
    MissingUpgrade,
    /// The `Connection` header is missing or does not contain the `upgrade` token.
    MissingConnectionUpgrade,
    /// The `Sec-WebSocket-Accept` header is missing.
    MissingAccept,
    /// The `Sec-WebSocket-Accept` header does not match the key (or is repeated).
    AcceptMismatch,
    /// Subprotocols were offered but the response selected none (missing or empty header).
    ProtocolMissing,
    /// The response selected a subprotocol that was not offered, several subprotocols, or
    /// one although none was offered. Carries the value received.
    ProtocolNotOffered(String),
    /// The response uses an extension that was not offered. Carries its name.
    ExtensionNotOffered(String),
    /// The response names the same extension twice. Carries its name.
    DuplicateExtension(String),
    /// A `Sec-WebSocket-Extensions` value does not follow the RFC 6455 §9.1 grammar (in the
    /// response, or in the caller's offer).
    InvalidExtensions(String),
    /// An extra request header the handshake sets itself (`Host`, `Upgrade`, `Connection`,
    /// `Sec-WebSocket-*`). Carries the name as given.
    ForbiddenHeader(String),
    /// An extra header whose name is not a token or whose value contains CR, LF or another
    /// control character. Carries the name as given.
    InvalidHeader(String),
    /// A subprotocol that is not a token (RFC 6455 §4.1 requirement 10), or a repeated one.
    InvalidProtocol(String),
    /// The host or resource of a [`ClientRequest`](super::ClientRequest) cannot be written
    /// into a request line or `Host` header.
    InvalidRequest(String),
    /// A `Sec-WebSocket-Key` supplied by the caller is not base64 of 16 bytes.
    InvalidKey,
    /// The operating system's random source failed while generating the key.
    Random(getrandom::Error),
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeadTooLarge => write!(
                f,
                "handshake head larger than {} bytes",
                super::MAX_HEAD_SIZE
            ),
            Self::TooManyHeaders => write!(
                f,
                "handshake head has more than {} headers",
                super::MAX_HEADERS
            ),
            Self::Malformed(why) => write!(f, "malformed handshake head: {why}"),
            Self::Status { status, reason } => {
                write!(
                    f,
                    "handshake answered with status {status} {reason}, not 101"
                )
            }
            Self::MissingUpgrade => f.write_str("response lacks `Upgrade: websocket`"),
            Self::MissingConnectionUpgrade => f.write_str("response lacks `Connection: Upgrade`"),
            Self::MissingAccept => f.write_str("response lacks Sec-WebSocket-Accept"),
            Self::AcceptMismatch => {
                f.write_str("Sec-WebSocket-Accept does not match Sec-WebSocket-Key")
            }
            Self::ProtocolMissing => {
                f.write_str("subprotocols were requested but the response selected none")
            }
            Self::ProtocolNotOffered(p) => {
                write!(
                    f,
                    "response selected subprotocol {p:?}, which was not offered"
                )
            }
            Self::ExtensionNotOffered(e) => {
                write!(f, "response uses extension {e:?}, which was not offered")
            }
            Self::DuplicateExtension(e) => {
                write!(f, "response names extension {e:?} more than once")
            }
            Self::InvalidExtensions(why) => {
                write!(f, "invalid Sec-WebSocket-Extensions value: {why}")
            }
            Self::ForbiddenHeader(name) => {
                write!(
                    f,
                    "header {name:?} is set by the handshake and cannot be overridden"
                )
            }
            Self::InvalidHeader(name) => write!(f, "invalid header {name:?}"),
            Self::InvalidProtocol(p) => write!(f, "invalid or repeated subprotocol {p:?}"),
            Self::InvalidRequest(why) => write!(f, "invalid handshake request: {why}"),
            Self::InvalidKey => f.write_str("Sec-WebSocket-Key is not base64 of 16 bytes"),
            Self::Random(err) => write!(f, "random source failed: {err}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn check<T: std::error::Error + Send + Sync + 'static>() {}
        check::<HandshakeError>();
        let boxed: Box<dyn std::error::Error + Send + Sync> =
            Box::new(HandshakeError::HeadTooLarge);
        assert!(boxed.to_string().contains("16384"));
    }
}
