//! Close codes and the Close frame body (RFC 6455 §5.5.1, §7.4).

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ProtocolError;
use crate::message::Utf8Bytes;

/// Longest close reason that fits a control frame: 125 bytes minus the 2-byte code.
pub const MAX_REASON_LEN: usize = 123;

/// A WebSocket close status code (RFC 6455 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(pub u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: Self = Self(1000);
    /// 1001: the endpoint is going away.
    pub const GOING_AWAY: Self = Self(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: Self = Self(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: Self = Self(1003);
    /// 1005: no status code was present (never sent on the wire).
    pub const NO_STATUS: Self = Self(1005);
    /// 1006: closed abnormally, without a Close frame (never sent on the wire).
    pub const ABNORMAL: Self = Self(1006);
    /// 1007: data inconsistent with the message type (invalid UTF-8 in a text message).
    pub const INVALID_PAYLOAD: Self = Self(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: Self = Self(1008);
    /// 1009: message too big.
    pub const MESSAGE_TOO_BIG: Self = Self(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: Self = Self(1010);
    /// 1011: unexpected condition on the server.
    pub const INTERNAL_ERROR: Self = Self(1011);
    /// 1015: TLS handshake failure (never sent on the wire).
    pub const TLS_HANDSHAKE: Self = Self(1015);

    /// Whether this code may appear in a Close frame on the wire (RFC 6455 §7.4.1, §7.4.2):
    /// 1000–1003, 1007–1014 (1012–1014 registered with IANA), and 3000–4999. 1004–1006
    /// and 1015 are reserved and MUST NOT be sent; everything else below 3000 is unassigned.
    pub const fn is_valid_on_wire(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Whether an application (the browser API's `close()`) may send this code: 1000 or
    /// 3000–4999 (WHATWG WebSockets, "validate close code and reason").
    pub const fn is_allowed_for_application(self) -> bool {
        matches!(self.0, 1000 | 3000..=4999)
    }
}

impl From<u16> for CloseCode {
    fn from(code: u16) -> Self {
        Self(code)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> Self {
        code.0
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The body of a Close frame: an optional status code and a UTF-8 reason.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct CloseFrame {
    /// The status code; `None` for a Close frame without body (reported as 1005).
    pub code: Option<CloseCode>,
    /// The reason, empty when absent. Never longer than [`MAX_REASON_LEN`] bytes.
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// Parses a received Close frame body (RFC 6455 §5.5.1): empty, or a 2-byte code
    /// followed by a UTF-8 reason.
    pub fn parse(payload: &[u8]) -> Result<Self, ProtocolError> {
        match payload {
            [] => Ok(Self::default()),
            // §5.5.1: if there is a body, its first two bytes MUST be a status code.
            [_] => Err(ProtocolError::InvalidCloseFrame),
            [hi, lo, reason @ ..] => {
                let code = CloseCode(u16::from_be_bytes([*hi, *lo]));
                // §7.4: reserved and unassigned codes are a protocol error.
                if !code.is_valid_on_wire() {
                    return Err(ProtocolError::InvalidCloseCode(code.0));
                }
                // §5.5.1 / §8.1: the reason is UTF-8; invalid UTF-8 fails with 1007.
                let reason = Utf8Bytes::try_from(Bytes::copy_from_slice(reason))
                    .map_err(|_| ProtocolError::InvalidUtf8)?;
                Ok(Self {
                    code: Some(code),
                    reason,
                })
            }
        }
    }

    /// The code reported to the application: the received one, or 1005 when absent
    /// (RFC 6455 §7.1.5).
    pub fn reported_code(&self) -> CloseCode {
        self.code.unwrap_or(CloseCode::NO_STATUS)
    }

    /// Appends the body (code then reason) to `out`; nothing when there is no code.
    pub(crate) fn emit(&self, out: &mut BytesMut) {
        if let Some(code) = self.code {
            out.put_u16(code.0);
            out.extend_from_slice(self.reason.as_bytes());
        }
    }

    /// Length of the encoded body.
    pub(crate) fn encoded_len(&self) -> usize {
        if self.code.is_some() {
            2 + self.reason.len()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_validity_follows_rfc_6455_section_7_4() {
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(CloseCode(ok).is_valid_on_wire(), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!CloseCode(bad).is_valid_on_wire(), "{bad}");
        }
    }

    #[test]
    fn application_codes_are_1000_and_3000_to_4999() {
        assert!(CloseCode(1000).is_allowed_for_application());
        assert!(CloseCode(3000).is_allowed_for_application());
        assert!(CloseCode(4999).is_allowed_for_application());
        for bad in [999, 1001, 2999, 5000] {
            assert!(!CloseCode(bad).is_allowed_for_application());
        }
    }

    #[test]
    fn close_body_of_one_byte_is_a_protocol_error() {
        assert_eq!(
            CloseFrame::parse(&[3]),
            Err(ProtocolError::InvalidCloseFrame)
        );
    }

    #[test]
    fn close_body_with_reserved_code_is_a_protocol_error() {
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xED]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
    }

    #[test]
    fn close_reason_must_be_utf8() {
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xE8, 0xFF]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn close_body_round_trips() {
        let frame = CloseFrame::parse(b"\x0f\xa0robot").unwrap();
        assert_eq!(frame.code, Some(CloseCode(4000)));
        assert_eq!(&*frame.reason, "robot");
        let mut out = BytesMut::new();
        frame.emit(&mut out);
        assert_eq!(&out[..], b"\x0f\xa0robot");
        assert_eq!(frame.encoded_len(), 7);
        assert_eq!(
            CloseFrame::parse(b"").unwrap().reported_code(),
            CloseCode(1005)
        );
    }
}
