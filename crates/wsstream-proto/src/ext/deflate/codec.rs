//! The per-message DEFLATE codec of RFC 7692 §7.2 over flate2 (zlib-rs backend): raw
//! DEFLATE, sync flush, the `00 00 ff ff` tail removed on the way out and put back on the
//! way in, and an output cap enforced while inflating.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::{MAX_WINDOW_BITS, MIN_WINDOW_BITS};
use crate::error::ProtocolError;

/// The octets a sync flush ends with (an empty stored block's LEN and NLEN): removed from a
/// compressed message by the sender (RFC 7692 §7.2.1), appended by the receiver (§7.2.2).
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Smallest window zlib-rs can compress a raw stream with.
const ZLIB_MIN_WINDOW_BITS: u8 = 9;

/// The window every decompressor runs with, whatever the peer's agreed maximum. A larger
/// window inflates everything a smaller one does (RFC 7692 §7.1.2 only bounds the sender),
/// zlib-rs allocates the full 32 KiB window whatever the bits (so it costs no memory), and
/// flate2 resets a decompressor in place only at 15 bits (other sizes are re-allocated, on
/// every message without context takeover). It also accepts a zlib-based peer that rounded
/// a window of 8 bits up to 9.
const INFLATE_WINDOW_BITS: u8 = MAX_WINDOW_BITS;

/// First output allocation of a compressed message, grown by doubling up to the limit.
const MIN_OUTPUT: usize = 4096;

/// The sending half: compresses whole messages (RFC 7692 §7.2.1).
///
/// The DEFLATE state is allocated on the first [`compress`](Self::compress) call and kept;
/// without context takeover it is reset after every message.
pub struct Compressor {
    state: Option<Compress>,
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor")
            .field("allocated", &self.state.is_some())
            .field("level", &self.level)
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Compressor {
    /// A compressor for messages whose LZ77 window may not exceed `window_bits` (8 to 15),
    /// at DEFLATE `level` (0 to 9, clamped), resetting its context after every message when
    /// `no_context_takeover`. Allocates nothing yet.
    pub fn new(window_bits: u8, no_context_takeover: bool, level: u32) -> Self {
        Self {
            state: None,
            level: level.min(9),
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
        }
    }

    /// Whether this compressor can compress at all: zlib cannot honour a window of 8 bits
    /// (it would silently use 9), so with 8 every message is sent uncompressed.
    pub fn is_enabled(&self) -> bool {
        self.window_bits >= ZLIB_MIN_WINDOW_BITS
    }

    /// Whether the DEFLATE state has been allocated.
    pub fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Frees the DEFLATE state; the next message allocates a fresh one. Always allowed
    /// between messages: a fresh stream never refers to the old window, so the peer's
    /// decompressor (with or without context takeover) is not affected; only the next
    /// message compresses less well.
    pub fn release(&mut self) {
        self.state = None;
    }

    /// Compresses one whole message and appends the result to `out`: raw DEFLATE with a
    /// sync flush, minus the trailing `00 00 ff ff` (RFC 7692 §7.2.1). An empty message
    /// becomes the single octet `0x00` (§7.2.3.6).
    ///
    /// Returns `false`, with `out` unchanged, when the message must be sent uncompressed
    /// instead: the compressor is disabled ([`is_enabled`](Self::is_enabled)), or zlib
    /// failed (the state is then reset, which a receiver with context takeover tolerates:
    /// a fresh stream never refers to the old window).
    pub fn compress(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if !self.is_enabled() {
            return false;
        }
        // RFC 7692 §7.1.2: our LZ77 window MUST NOT exceed the agreed maximum.
        let (level, bits) = (self.level, self.window_bits);
        let state = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, bits)
        });
        let start = out.len();
        out.reserve(payload.len() / 2 + 64);
        let mut consumed = 0;
        let ok = loop {
            if out.capacity() - out.len() < 64 {
                out.reserve((out.len() - start).max(1024));
            }
            let (before_in, before_out) = (state.total_in(), out.len());
            let rest = payload.get(consumed..).unwrap_or_default();
            if state.compress_vec(rest, out, FlushCompress::Sync).is_err() {
                break false;
            }
            let taken = usize::try_from(state.total_in() - before_in).unwrap_or(usize::MAX);
            consumed = consumed.saturating_add(taken);
            // zlib: the flush is complete once all input is taken and output space is left.
            if consumed >= payload.len() && out.len() < out.capacity() {
                break true;
            }
            if taken == 0 && out.len() == before_out {
                // No progress with input and room: never expected from zlib; give up.
                break false;
            }
        };
        if ok && out.len() == start {
            // Nothing new since the last flush (an empty message): zlib refuses a second
            // flush in a row. The empty stored block's first octet stands for it (§7.2.3.6).
            out.push(0x00);
            true
        } else if ok && out.len() - start >= DEFLATE_TAIL.len() && out.ends_with(&DEFLATE_TAIL) {
            // §7.2.1: a sync flush ends with an empty stored block; its last 4 octets go.
            out.truncate(out.len() - DEFLATE_TAIL.len());
            if self.no_context_takeover {
                // RFC 7692 §7.1.1: no context takeover, so each message starts afresh. The
                // state is reset, not freed: re-allocating it per message costs more than
                // compressing a small message (see `release` for idle connections).
                state.reset();
            }
            true
        } else {
            out.truncate(start);
            state.reset();
            false
        }
    }
}

/// Why inflating failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InflateError {
    /// The output would exceed the limit (a decompression bomb, or simply a big message).
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The data is not valid DEFLATE (or refers back beyond the window).
    Invalid,
}

impl From<InflateError> for ProtocolError {
    fn from(e: InflateError) -> Self {
        match e {
            InflateError::TooLarge { limit } => Self::MessageTooLarge {
                size: limit as u64 + 1,
                limit,
            },
            InflateError::Invalid => Self::InvalidCompressedData,
        }
    }
}

/// The receiving half: inflates the payloads of compressed messages (RFC 7692 §7.2.2) with
/// the output capped while inflating.
///
/// Feed each piece of a message's payload to [`inflate`](Self::inflate) as it arrives, then
/// call [`finish`](Self::finish) once at the end of the message.
pub struct Decompressor {
    state: Option<Decompress>,
    window_bits: u8,
    no_context_takeover: bool,
    /// A block with BFINAL set ended the DEFLATE stream and nothing has been inflated since.
    restarted: bool,
}

impl std::fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decompressor")
            .field("allocated", &self.state.is_some())
            .field("window_bits", &self.window_bits)
            .field("no_context_takeover", &self.no_context_takeover)
            .finish()
    }
}

impl Decompressor {
    /// A decompressor for a peer whose window is at most `window_bits` (8 to 15), resetting
    /// its context after every message when `no_context_takeover`. Allocates nothing yet.
    ///
    /// It inflates with a 15-bit window in every case (see the [module docs](super)).
    pub fn new(window_bits: u8, no_context_takeover: bool) -> Self {
        Self {
            state: None,
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
            restarted: false,
        }
    }

    /// Whether the DEFLATE state has been allocated.
    pub fn is_allocated(&self) -> bool {
        self.state.is_some()
    }

    /// Inflates the next piece of the current message's payload, appending to `out` (which
    /// holds this message's output so far, and nothing else). `out` never grows beyond
    /// `limit` bytes: one more byte of output fails with [`InflateError::TooLarge`]. Each
    /// newly inflated run of bytes is passed to `check` as soon as it is produced (for
    /// fail-fast UTF-8 validation); its error stops inflation and is returned.
    pub fn inflate<E: From<InflateError>>(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        check: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if input.is_empty() {
            return Ok(());
        }
        self.run(input, out, limit, check)
    }

    /// Ends the current message: inflates the `00 00 ff ff` tail (RFC 7692 §7.2.2), then
    /// resets the context if the peer does not take it over (§7.1.1). `out` and `check` as
    /// for [`inflate`](Self::inflate).
    ///
    /// A message whose payload was empty is an empty message: nothing is inflated (a
    /// conforming peer sends `0x00`, §7.2.3.6, but an empty payload is accepted too).
    pub fn finish<E: From<InflateError>>(
        &mut self,
        payload_was_empty: bool,
        out: &mut Vec<u8>,
        limit: usize,
        check: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        // After a BFINAL block that ended the payload, the tail would open a stored block
        // that never ends; the restarted stream is already at a block boundary.
        let result = if payload_was_empty || self.restarted {
            Ok(())
        } else {
            self.run(&DEFLATE_TAIL, out, limit, check)
        };
        if self.no_context_takeover || result.is_err() {
            // RFC 7692 §7.1.1: the peer starts every message afresh.
            self.reset();
        }
        result
    }

    /// Frees the DEFLATE state if the peer does not take its context over (the state is
    /// then empty between messages anyway) and returns whether it did. With context
    /// takeover the window must be kept: the peer's next message may refer to it. Call only
    /// between messages.
    pub fn release(&mut self) -> bool {
        if self.no_context_takeover {
            self.state = None;
            self.restarted = false;
        }
        self.state.is_none()
    }

    /// Drops the context (the next message starts with an empty window).
    pub fn reset(&mut self) {
        if let Some(state) = self.state.as_mut() {
            state.reset(false);
        }
        self.restarted = false;
    }

    fn run<E: From<InflateError>>(
        &mut self,
        mut input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
        mut check: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let bits = INFLATE_WINDOW_BITS;
        let state = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, bits));
        // Whether zlib may hold output it could not write (the last call filled `out`).
        let mut pending = false;
        while !input.is_empty() || pending {
            if out.len() == out.capacity() && out.len() < limit {
                // Grow by doubling, never past the limit: nothing beyond it is allocated
                // for the peer's data, however well it compresses.
                let target = (out.capacity() * 2).max(MIN_OUTPUT).min(limit);
                out.reserve_exact(target - out.len());
            }
            let (in_before, out_before, len_before) =
                (state.total_in(), state.total_out(), out.len());
            let status = if out.len() < out.capacity() {
                state.decompress_vec(input, out, FlushDecompress::Sync)
            } else {
                // At the limit: probe for one more byte without growing `out`.
                state.decompress(input, &mut [0u8; 1], FlushDecompress::Sync)
            }
            .map_err(|_| InflateError::Invalid)?;
            let produced = state.total_out() - out_before;
            if produced > 0 && out.len() == len_before {
                return Err(InflateError::TooLarge { limit }.into());
            }
            let consumed = usize::try_from(state.total_in() - in_before).unwrap_or(usize::MAX);
            input = input.get(consumed..).unwrap_or_default();
            if consumed > 0 || produced > 0 {
                self.restarted = false;
            }
            if out.len() > len_before {
                check(&out[len_before..])?;
            }
            pending = out.len() == out.capacity();
            match status {
                Status::StreamEnd => {
                    // A block with BFINAL set (RFC 7692 §7.2.3.4). More blocks may follow
                    // in the same message (§7.2.1) and the window lives on: restart the
                    // stream with this message's output as its dictionary.
                    state.reset(false);
                    let history = &out[out.len().saturating_sub(1 << bits)..];
                    if !history.is_empty() && state.set_dictionary(history).is_err() {
                        return Err(InflateError::Invalid.into());
                    }
                    self.restarted = true;
                    pending = false;
                }
                Status::Ok | Status::BufError if consumed == 0 && produced == 0 => {
                    if input.is_empty() {
                        // Nothing was pending after all.
                        break;
                    }
                    // Input and room for output, yet no progress: zlib wants something
                    // it will never get.
                    return Err(InflateError::Invalid.into());
                }
                Status::Ok | Status::BufError => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inflate_all(
        d: &mut Decompressor,
        payload: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, InflateError> {
        let mut out = Vec::new();
        d.inflate(payload, &mut out, limit, |_| Ok::<(), InflateError>(()))?;
        d.finish(payload.is_empty(), &mut out, limit, |_| {
            Ok::<(), InflateError>(())
        })?;
        Ok(out)
    }

    #[test]
    fn hello_is_the_rfc_bytes() {
        let mut c = Compressor::new(15, false, 6);
        let mut out = Vec::new();
        assert!(c.compress(b"Hello", &mut out));
        assert_eq!(out, [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
        out.clear();
        assert!(c.compress(b"Hello", &mut out));
        assert_eq!(out, [0xf2, 0x00, 0x11, 0x00, 0x00]);
    }

    #[test]
    fn empty_message_is_one_zero_octet() {
        let mut c = Compressor::new(15, false, 6);
        let mut out = Vec::new();
        assert!(c.compress(b"", &mut out));
        assert_eq!(out, [0x00]);
        let mut d = Decompressor::new(15, false);
        assert_eq!(inflate_all(&mut d, &out, 10).unwrap(), b"");
        assert_eq!(inflate_all(&mut d, &[], 10).unwrap(), b"");
    }

    #[test]
    fn window_of_8_never_compresses() {
        let mut c = Compressor::new(8, false, 6);
        assert!(!c.is_enabled());
        let mut out = Vec::new();
        assert!(!c.compress(b"Hello Hello Hello", &mut out));
        assert!(out.is_empty() && !c.is_allocated());
    }

    #[test]
    fn output_is_capped_at_the_limit() {
        let mut c = Compressor::new(15, false, 9);
        let mut payload = Vec::new();
        assert!(c.compress(&vec![b'a'; 100_000], &mut payload));
        assert!(payload.len() < 200);
        for limit in [0, 1, 4095, 4096, 99_999] {
            let mut d = Decompressor::new(15, false);
            let mut out = Vec::new();
            let r = d.inflate(&payload, &mut out, limit, |_| Ok::<(), InflateError>(()));
            let r = r.and_then(|()| d.finish(false, &mut out, limit, |_| Ok(())));
            assert_eq!(r, Err(InflateError::TooLarge { limit }), "limit {limit}");
            assert!(
                out.capacity() <= limit,
                "capacity {} over {limit}",
                out.capacity()
            );
        }
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate_all(&mut d, &payload, 100_000).unwrap().len(),
            100_000
        );
    }

    #[test]
    fn garbage_is_invalid() {
        let mut d = Decompressor::new(15, false);
        assert_eq!(
            inflate_all(&mut d, &[0xff, 0xff, 0xff], 100),
            Err(InflateError::Invalid)
        );
    }
}
