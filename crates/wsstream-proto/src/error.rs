//! Errors: peer faults (each with the close code it causes) apart from caller faults.

use crate::close::CloseCode;

/// A violation of RFC 6455 by the peer. The engine fails the connection with
/// [`ProtocolError::close_code`] when it sees one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// An opcode reserved by RFC 6455 §5.2 (0x3–0x7, 0xB–0xF).
    ReservedOpcode(u8),
    /// RSV1–RSV3 set without a negotiated extension that defines them (§5.2).
    ReservedBits(u8),
    /// A frame from the client was not masked (§5.1, server role).
    UnmaskedFrame,
    /// A frame from the server was masked (§5.1, client role).
    MaskedFrame,
    /// A control frame with FIN clear (§5.5).
    FragmentedControlFrame,
    /// A control frame payload above 125 bytes (§5.5).
    ControlFrameTooLong(u64),
    /// A 64-bit payload length with the most significant bit set (§5.2).
    InvalidLength,
    /// A continuation frame without a message in progress (§5.4).
    UnexpectedContinuation,
    /// A new data frame while a fragmented message was in progress (§5.4).
    ExpectedContinuation,
    /// A Close frame with a one-byte body (§5.5.1).
    InvalidCloseFrame,
    /// A Close frame with a reserved or unassigned status code (§7.4).
    InvalidCloseCode(u16),
    /// Invalid UTF-8 in a text message or close reason (§8.1): close code 1007.
    InvalidUtf8,
    /// A frame larger than the configured frame limit: close code 1009.
    FrameTooLarge {
        /// Declared payload length.
        size: u64,
        /// The limit in force.
        limit: usize,
    },
    /// A message larger than the configured message limit: close code 1009.
    MessageTooLarge {
        /// Size the message would reach. For a compressed message this is a lower bound
        /// (the limit plus one): inflation stops at the first byte over the limit.
        size: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The payload of a compressed message does not inflate (RFC 7692 §7.2.2): close code
    /// 1007, as for any payload inconsistent with its message type.
    InvalidCompressedData,
}

impl ProtocolError {
    /// The close code sent to the peer when failing the connection for this reason.
    pub const fn close_code(&self) -> CloseCode {
        match self {
            Self::InvalidUtf8 | Self::InvalidCompressedData => CloseCode::INVALID_PAYLOAD,
            Self::FrameTooLarge { .. } | Self::MessageTooLarge { .. } => CloseCode::MESSAGE_TOO_BIG,
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            Self::ReservedBits(bits) => {
                write!(
                    f,
                    "reserved bits set ({bits:#05b}) where no extension allows them"
                )
            }
            Self::UnmaskedFrame => f.write_str("client frame is not masked"),
            Self::MaskedFrame => f.write_str("server frame is masked"),
            Self::FragmentedControlFrame => f.write_str("fragmented control frame"),
            Self::ControlFrameTooLong(len) => write!(f, "control frame of {len} bytes (max 125)"),
            Self::InvalidLength => f.write_str("64-bit payload length with the top bit set"),
            Self::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            Self::ExpectedContinuation => f.write_str("new data frame inside a fragmented message"),
            Self::InvalidCloseFrame => f.write_str("close frame body of one byte"),
            Self::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            Self::InvalidUtf8 => f.write_str("invalid UTF-8 in a text message or close reason"),
            Self::FrameTooLarge { size, limit } => {
                write!(
                    f,
                    "frame of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
            Self::MessageTooLarge { size, limit } => {
                write!(
                    f,
                    "message of {size} bytes exceeds the limit of {limit} bytes"
                )
            }
            Self::InvalidCompressedData => f.write_str("compressed payload does not inflate"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A misuse of the API by the caller (not the peer's fault).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiMisuse {
    /// Data was sent after the closing handshake started.
    SendAfterClose,
    /// A message is still being transmitted; wait for [`Connection::wants_data`].
    ///
    /// [`Connection::wants_data`]: crate::Connection::wants_data
    MessageInProgress,
    /// A close code that must not appear on the wire (RFC 6455 §7.4).
    InvalidCloseCode(u16),
    /// A close reason longer than 123 bytes.
    CloseReasonTooLong(usize),
    /// A ping payload longer than 125 bytes.
    PingTooLong(usize),
}

impl std::fmt::Display for ApiMisuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SendAfterClose => f.write_str("cannot send after the closing handshake started"),
            Self::MessageInProgress => f.write_str("a message is still being transmitted"),
            Self::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            Self::CloseReasonTooLong(len) => write!(f, "close reason of {len} bytes (max 123)"),
            Self::PingTooLong(len) => write!(f, "ping payload of {len} bytes (max 125)"),
        }
    }
}

impl std::error::Error for ApiMisuse {}
