//! Frame encoding into the transmit buffer, with masking fused into the copy.

use bytes::BytesMut;

use crate::wire::{FrameHeader, OpCode, mask};

/// Number of masking keys drawn from the OS CSPRNG at once (4 KiB per draw).
const KEYS_PER_DRAW: usize = 1024;

/// A per-thread pool of random bytes: one `getrandom` call per 1024 masks, shared by every
/// connection on the thread, so no connection carries a pool of its own.
struct KeyPool {
    pool: [u8; KEYS_PER_DRAW * 4],
    next: usize,
}

thread_local! {
    static KEYS: std::cell::RefCell<KeyPool> = const {
        std::cell::RefCell::new(KeyPool { pool: [0; KEYS_PER_DRAW * 4], next: KEYS_PER_DRAW })
    };
}

/// A source of masking keys: RFC 6455 §5.3 requires each frame's key to be freshly and
/// unpredictably chosen, so keys come from the OS CSPRNG, drawn in batches into a
/// per-thread pool (a key is never used twice; keys are never disclosed before use).
#[derive(Debug, Default, Clone, Copy)]
pub struct MaskSource;

impl MaskSource {
    /// A key source.
    pub const fn new() -> Self {
        Self
    }

    /// The next key.
    pub fn next_key(&mut self) -> [u8; 4] {
        KEYS.with(|keys| {
            let mut keys = keys.borrow_mut();
            if keys.next == KEYS_PER_DRAW {
                if getrandom::fill(&mut keys.pool).is_err() {
                    // getrandom fails only on a platform without any entropy source. The
                    // previous (random, never-disclosed) pool is then reused rotated by
                    // one byte: still unknown to the peer, though no longer fresh.
                    keys.pool.rotate_left(1);
                }
                keys.next = 0;
            }
            let at = keys.next * 4;
            keys.next += 1;
            [
                keys.pool[at],
                keys.pool[at + 1],
                keys.pool[at + 2],
                keys.pool[at + 3],
            ]
        })
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
