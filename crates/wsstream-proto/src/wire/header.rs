//! Frame header parse and emit (RFC 6455 §5.2).

use super::opcode::OpCode;

/// The longest header: 2 bytes, 8 bytes of extended length, 4 bytes of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// A parsed frame header. The payload is not part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    /// FIN: last frame of a message.
    pub fin: bool,
    /// RSV1..RSV3 as the three low bits (RSV1 = 0b100).
    pub rsv: u8,
    /// The raw 4-bit opcode (may be reserved; the decoder rejects those).
    pub opcode: u8,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// Payload length.
    pub payload_len: u64,
}

/// Outcome of [`FrameHeader::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderParse {
    /// A complete header and its length in bytes.
    Complete(FrameHeader, usize),
    /// At least this many more bytes are needed.
    Incomplete(usize),
    /// A 64-bit length with the most significant bit set (RFC 6455 §5.2: it MUST be 0).
    InvalidLength,
}

impl FrameHeader {
    /// Parses a header from the start of `buf`, reading at most [`MAX_HEADER_LEN`] bytes.
    ///
    /// Non-minimal length encodings (e.g. a 16-bit length below 126) are accepted: RFC
    /// 6455 §5.2 says the minimal number of bytes MUST be used by the sender but gives the
    /// receiver no rule, and every major implementation accepts them.
    pub fn parse(buf: &[u8]) -> HeaderParse {
        let [b0, b1, rest @ ..] = buf else {
            return HeaderParse::Incomplete(2 - buf.len());
        };
        let masked = b1 & 0x80 != 0;
        let len7 = b1 & 0x7F;
        let ext_len = match len7 {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let mask_len = if masked { 4 } else { 0 };
        let needed = ext_len + mask_len;
        if rest.len() < needed {
            return HeaderParse::Incomplete(needed - rest.len());
        }
        let payload_len = match ext_len {
            2 => u64::from(u16::from_be_bytes([rest[0], rest[1]])),
            8 => {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&rest[..8]);
                let len = u64::from_be_bytes(raw);
                if len >> 63 != 0 {
                    return HeaderParse::InvalidLength;
                }
                len
            }
            _ => u64::from(len7),
        };
        let mask = masked.then(|| {
            let mut key = [0u8; 4];
            key.copy_from_slice(&rest[ext_len..ext_len + 4]);
            key
        });
        HeaderParse::Complete(
            Self {
                fin: b0 & 0x80 != 0,
                rsv: (b0 >> 4) & 0x7,
                opcode: b0 & 0x0F,
                mask,
                payload_len,
            },
            2 + needed,
        )
    }

    /// Encoded length of this header.
    pub const fn len(&self) -> usize {
        let ext = if self.payload_len < 126 {
            0
        } else if self.payload_len <= 0xFFFF {
            2
        } else {
            8
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Headers are never empty; present for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Emits the header with the minimal length encoding (RFC 6455 §5.2) into a fixed
    /// array; returns the array and the number of bytes used.
    pub fn emit(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0u8; MAX_HEADER_LEN];
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | (self.opcode & 0x0F);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut at = 2;
        if self.payload_len < 126 {
            out[1] = mask_bit | self.payload_len as u8;
        } else if self.payload_len <= 0xFFFF {
            out[1] = mask_bit | 126;
            out[2..4].copy_from_slice(&(self.payload_len as u16).to_be_bytes());
            at = 4;
        } else {
            out[1] = mask_bit | 127;
            out[2..10].copy_from_slice(&self.payload_len.to_be_bytes());
            at = 10;
        }
        if let Some(key) = self.mask {
            out[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        (out, at)
    }

    /// The opcode, if it is not reserved.
    pub const fn op(&self) -> Option<OpCode> {
        OpCode::from_u8(self.opcode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn incomplete_headers_ask_for_the_missing_bytes() {
        assert_eq!(FrameHeader::parse(&[]), HeaderParse::Incomplete(2));
        assert_eq!(FrameHeader::parse(&[0x81]), HeaderParse::Incomplete(1));
        assert_eq!(
            FrameHeader::parse(&[0x82, 0xFE, 0]),
            HeaderParse::Incomplete(5)
        );
        assert_eq!(
            FrameHeader::parse(&[0x82, 0x7F]),
            HeaderParse::Incomplete(8)
        );
    }

    #[test]
    fn top_bit_of_64_bit_length_is_rejected() {
        let buf = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&buf), HeaderParse::InvalidLength);
        let max = [0x82, 0x7F, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];
        assert!(
            matches!(FrameHeader::parse(&max), HeaderParse::Complete(h, 10) if h.payload_len == i64::MAX as u64)
        );
    }

    #[test]
    fn non_minimal_lengths_are_accepted() {
        let buf = [0x82, 0x7E, 0x00, 0x05];
        assert!(
            matches!(FrameHeader::parse(&buf), HeaderParse::Complete(h, 4) if h.payload_len == 5)
        );
    }

    proptest! {
        #[test]
        fn header_emit_parse_round_trip(fin: bool, rsv in 0u8..8, opcode in 0u8..16, mask: Option<[u8; 4]>, len in prop_oneof![0u64..130, 120u64..70000, 65530u64..(1u64 << 63)]) {
            let header = FrameHeader { fin, rsv, opcode, mask, payload_len: len };
            let (bytes, n) = header.emit();
            prop_assert_eq!(n, header.len());
            prop_assert_eq!(FrameHeader::parse(&bytes[..n]), HeaderParse::Complete(header, n));
            for short in 0..n {
                prop_assert!(matches!(FrameHeader::parse(&bytes[..short]), HeaderParse::Incomplete(_)), "prefix {} parsed", short);
            }
        }
    }
}
