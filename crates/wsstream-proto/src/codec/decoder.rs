//! Per-frame rules applied to a parsed header, before any payload byte is looked at.

use crate::error::ProtocolError;
use crate::role::Role;
use crate::wire::{FrameHeader, OpCode};

/// What the decoder needs to know to judge a header.
#[derive(Clone, Copy, Debug)]
pub struct HeaderRules {
    /// Our role: decides which masking is a violation.
    pub role: Role,
    /// RSV bits claimed by negotiated extensions (RSV1 = 0b100 for permessage-deflate).
    pub rsv_allowed: u8,
    /// Largest frame payload accepted.
    pub max_frame_size: usize,
    /// Whether a fragmented data message is being reassembled.
    pub in_message: bool,
}

/// Validates a header against RFC 6455 §5: reserved opcodes and bits, masking by role,
/// control frame rules, continuation ordering and the frame size limit. Returns the opcode.
pub fn validate_header(header: &FrameHeader, rules: &HeaderRules) -> Result<OpCode, ProtocolError> {
    // §5.2: reserved opcodes MUST fail the connection.
    let op = header
        .op()
        .ok_or(ProtocolError::ReservedOpcode(header.opcode))?;
    // §5.2: RSV bits MUST be 0 unless an extension defines them. Extensions use them on
    // the first frame of a data message only (RFC 7692 §6), never on control frames or
    // continuations.
    let rsv_ok = match op {
        OpCode::Text | OpCode::Binary => header.rsv & !rules.rsv_allowed == 0,
        _ => header.rsv == 0,
    };
    if !rsv_ok {
        return Err(ProtocolError::ReservedBits(header.rsv));
    }
    // §5.1: a server MUST fail on an unmasked frame; a client MUST fail on a masked one.
    match (rules.role, header.mask.is_some()) {
        (Role::Server, false) => return Err(ProtocolError::UnmaskedFrame),
        (Role::Client, true) => return Err(ProtocolError::MaskedFrame),
        _ => {}
    }
    if op.is_control() {
        // §5.5: control frames MUST NOT be fragmented and carry at most 125 bytes.
        if !header.fin {
            return Err(ProtocolError::FragmentedControlFrame);
        }
        if header.payload_len > 125 {
            return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
        }
    } else {
        // §5.4: continuation frames only inside a fragmented message, new data frames
        // only outside one.
        match (op, rules.in_message) {
            (OpCode::Continuation, false) => return Err(ProtocolError::UnexpectedContinuation),
            (OpCode::Text | OpCode::Binary, true) => {
                return Err(ProtocolError::ExpectedContinuation);
            }
            _ => {}
        }
        if header.payload_len > rules.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                limit: rules.max_frame_size,
            });
        }
    }
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(b0: u8, masked: bool, len: u64) -> FrameHeader {
        FrameHeader {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 7,
            opcode: b0 & 0xF,
            mask: masked.then_some([1, 2, 3, 4]),
            payload_len: len,
        }
    }

    fn rules(role: Role) -> HeaderRules {
        HeaderRules {
            role,
            rsv_allowed: 0,
            max_frame_size: 1000,
            in_message: false,
        }
    }

    #[test]
    fn reserved_opcodes_fail() {
        for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
            assert_eq!(
                validate_header(&header(0x80 | op, false, 0), &rules(Role::Client)),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
    }

    #[test]
    fn rsv_bits_fail_unless_claimed_and_never_on_control_frames() {
        let h = header(0xC1, false, 1);
        assert_eq!(
            validate_header(&h, &rules(Role::Client)),
            Err(ProtocolError::ReservedBits(4))
        );
        let claimed = HeaderRules {
            rsv_allowed: 0b100,
            ..rules(Role::Client)
        };
        assert_eq!(validate_header(&h, &claimed), Ok(OpCode::Text));
        assert!(validate_header(&header(0xC9, false, 0), &claimed).is_err());
        assert!(validate_header(&header(0xA1, false, 0), &claimed).is_err());
    }

    #[test]
    fn masking_is_checked_by_role() {
        assert_eq!(
            validate_header(&header(0x81, true, 0), &rules(Role::Client)),
            Err(ProtocolError::MaskedFrame)
        );
        assert_eq!(
            validate_header(&header(0x81, false, 0), &rules(Role::Server)),
            Err(ProtocolError::UnmaskedFrame)
        );
        assert!(validate_header(&header(0x81, true, 0), &rules(Role::Server)).is_ok());
    }

    #[test]
    fn control_frames_are_short_and_final() {
        assert_eq!(
            validate_header(&header(0x09, false, 0), &rules(Role::Client)),
            Err(ProtocolError::FragmentedControlFrame)
        );
        assert_eq!(
            validate_header(&header(0x89, false, 126), &rules(Role::Client)),
            Err(ProtocolError::ControlFrameTooLong(126))
        );
        assert!(validate_header(&header(0x89, false, 125), &rules(Role::Client)).is_ok());
    }

    #[test]
    fn continuation_ordering() {
        assert_eq!(
            validate_header(&header(0x80, false, 0), &rules(Role::Client)),
            Err(ProtocolError::UnexpectedContinuation)
        );
        let inside = HeaderRules {
            in_message: true,
            ..rules(Role::Client)
        };
        assert_eq!(
            validate_header(&header(0x82, false, 0), &inside),
            Err(ProtocolError::ExpectedContinuation)
        );
        assert!(validate_header(&header(0x80, false, 0), &inside).is_ok());
        assert!(
            validate_header(&header(0x89, false, 0), &inside).is_ok(),
            "control frames interleave"
        );
    }

    #[test]
    fn frame_limit_applies_before_the_payload() {
        assert_eq!(
            validate_header(&header(0x82, false, 1001), &rules(Role::Client)),
            Err(ProtocolError::FrameTooLarge {
                size: 1001,
                limit: 1000
            })
        );
    }
}
