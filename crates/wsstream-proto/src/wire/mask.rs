//! Payload masking (RFC 6455 §5.3): `payload[i] ^= key[i % 4]`.
//!
//! The fast path XORs eight bytes at a time with the key repeated into a `u64` (the
//! compiler turns the loop into SIMD); the key is rotated by the running offset so a
//! payload can be masked in pieces. [`mask_bytewise`] is the reference and the baseline of
//! the micro-benchmark.

/// Masks (or unmasks: the operation is its own inverse) `buf` in place. `offset` is the
/// position of `buf[0]` within the frame payload, so consecutive pieces of one payload can
/// be masked separately.
#[inline]
pub fn mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut raw = [0u8; 8];
        raw.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(raw) ^ word).to_ne_bytes());
    }
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Payloads up to this size are masked word by word as they are copied.
const SMALL: usize = 64;

/// Copies `src` to the end of `dst` masked with `key` (starting at payload offset 0): the
/// copy into the send buffer and the masking fused for small payloads (four bytes at a
/// time); larger ones are copied with `memcpy` and masked in place, which measured faster
/// than masking while copying and than copying in cache-sized blocks (`--bench mask`).
#[inline]
pub fn mask_into(dst: &mut bytes::BytesMut, src: &[u8], key: [u8; 4]) {
    dst.reserve(src.len());
    if src.len() <= SMALL {
        let word = u32::from_ne_bytes(key);
        let mut chunks = src.chunks_exact(4);
        for c in &mut chunks {
            let masked = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
            dst.extend_from_slice(&masked.to_ne_bytes());
        }
        for (i, byte) in chunks.remainder().iter().enumerate() {
            dst.extend_from_slice(&[byte ^ key[i]]);
        }
        return;
    }
    let start = dst.len();
    dst.extend_from_slice(src);
    mask(&mut dst[start..], key, 0);
}

/// The byte-at-a-time reference implementation.
pub fn mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(i + offset) & 3];
    }
}

fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc_6455_section_5_7_masked_hello() {
        let mut payload = *b"Hello";
        mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    proptest! {
        #[test]
        fn fast_mask_matches_bytewise_in_pieces(data in proptest::collection::vec(any::<u8>(), 0..300), key: [u8; 4], cut in 0usize..300) {
            let mut fast = data.clone();
            let cut = cut.min(fast.len());
            let (a, b) = fast.split_at_mut(cut);
            mask(a, key, 0);
            mask(b, key, cut);
            let mut slow = data.clone();
            mask_bytewise(&mut slow, key, 0);
            prop_assert_eq!(&fast, &slow);
            mask(&mut fast, key, 0);
            prop_assert_eq!(fast, data);
        }

        /// Both paths of `mask_into` (word by word up to 64 bytes, copy then mask beyond),
        /// appended after existing bytes.
        #[test]
        fn mask_into_matches_bytewise(len in prop_oneof![0usize..=70, 60usize..=4200], seed: u8, key: [u8; 4], prefix in 0usize..9) {
            let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect();
            let mut out = bytes::BytesMut::from(&vec![0xEE; prefix][..]);
            mask_into(&mut out, &data, key);
            let mut expected = data.clone();
            mask_bytewise(&mut expected, key, 0);
            prop_assert_eq!(&out[..prefix], &vec![0xEE; prefix][..]);
            prop_assert_eq!(&out[prefix..], &expected[..]);
        }
    }
}
