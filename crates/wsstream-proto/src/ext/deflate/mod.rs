//! permessage-deflate (RFC 7692): negotiation, and the per-message compressor and
//! decompressor the [`Connection`](crate::Connection) runs.
//!
//! # Negotiation
//!
//! [`DeflateConfig`] is what one side is willing to do. A client sends
//! [`DeflateConfig::client_offer`] in `Sec-WebSocket-Extensions` and checks the server's
//! answer with [`DeflateConfig::accept_response`]; a server picks among the client's offers
//! with [`DeflateConfig::negotiate`]. Both produce the agreed [`DeflateParams`], which the
//! runtime passes to the engine with the config in [`Config::deflate`](crate::Config::deflate).
//!
//! # On the wire (RFC 7692 §6, §7.2)
//!
//! * A compressed message has RSV1 set on its first frame, never on continuation or control
//!   frames (§6; anything else fails the connection with 1002).
//! * Outbound, a message of at least [`DeflateConfig::threshold`] bytes is compressed as a
//!   raw DEFLATE stream with a sync flush, its trailing `00 00 ff ff` removed (§7.2.1), and
//!   fragmented like any other message; shorter messages go out uncompressed (RSV1 clear),
//!   which §6 allows at any time.
//! * Inbound, the payload of a compressed message is inflated as it arrives, with
//!   `00 00 ff ff` appended at the end of the message (§7.2.2). The output is capped at
//!   [`Config::max_message_size`](crate::Config::max_message_size) *while* inflating: one
//!   byte over the limit fails the connection with 1009 and nothing beyond the limit is
//!   ever allocated (decompression bombs). Text is validated as UTF-8 on the inflated bytes,
//!   failing fast with 1007. Data that does not inflate fails with 1007 as well.
//! * Without context takeover on a side (§7.1.1), that side's compressor is reset after
//!   every message, and so is the matching decompressor on the other side.
//!
//! # Window bits
//!
//! Our compressor uses exactly the window agreed for our side. The decompressor always
//! inflates with 15 bits: a larger window inflates everything a smaller one does (RFC 7692
//! §7.1.2 bounds only the sender), and with zlib-rs it costs nothing more (see below).
//!
//! RFC 7692 allows windows from 8 to 15 bits, but zlib, and zlib-rs after it, cannot produce
//! a raw DEFLATE stream with a 256-byte window (deflate silently uses 512 bytes, the reason
//! Autobahn and others treat 8 specially). We accept 8 in every negotiation and honour it:
//!
//! * a peer limited to 8 bits is inflated like any other (with 15 bits, which also accepts
//!   a zlib-based peer that rounded 8 up to 9);
//! * a **compressor** limited to 8 bits is never used: every message of ours then goes out
//!   uncompressed (RSV1 clear, allowed at any time by §6), which never exceeds the agreed
//!   window. (Older Autobahn releases answered `client_max_window_bits=8` in cases 13.3 and
//!   13.5; 25.10.1 answers 9.)
//!
//! A [`DeflateConfig`] itself asks only for 9 to 15 ([`DeflateConfig::validate`]).
//!
//! # Memory
//!
//! Measured with a counting allocator (`cargo bench -p wsstream-proto --bench deflate`,
//! flate2 1.1 on zlib-rs 0.6): a compressor holds 380 KB with a 15-bit window, 265 KB with
//! 12 bits and 251 KB with 9 bits (zlib-rs allocates a fixed 128 KiB hash table and 112 KiB
//! of block buffers at flate2's memLevel 8, plus four bytes per window byte); a
//! decompressor holds 47.5 KB whatever the window (a full 32 KiB window plus its state).
//!
//! So the engine allocates lazily and lets the runtime free what an idle connection does not
//! need: the compressor is created on the first message that is compressed and the
//! decompressor on the first compressed message received, so a connection that only sends
//! messages below the threshold never holds a compressor;
//! [`Connection::release_deflate_memory`](crate::Connection::release_deflate_memory) frees
//! the compressor of an idle connection, and its decompressor too when the peer does not
//! take its context over. Between messages without context takeover the state is reset,
//! not freed: allocating it again for every message costs more than compressing a 1 KiB
//! message.

#[cfg(feature = "deflate")]
mod codec;
#[cfg(not(feature = "deflate"))]
mod codec_off;
mod negotiation;

#[cfg(feature = "deflate")]
pub use codec::{Compressor, DEFLATE_TAIL, Decompressor, InflateError};
#[cfg(not(feature = "deflate"))]
pub(crate) use codec_off::{Compressor, Decompressor};
pub use negotiation::DeflateNegotiationError;

use crate::config::ConfigError;

/// The extension token, `permessage-deflate` (RFC 7692 §7).
pub const EXTENSION_NAME: &str = "permessage-deflate";

/// Smallest `*_max_window_bits` value RFC 7692 allows (§7.1.2). See the module docs for how
/// 8 is handled.
pub const MIN_WINDOW_BITS: u8 = 8;

/// Largest `*_max_window_bits` value (§7.1.2), also the window used when none is negotiated.
pub const MAX_WINDOW_BITS: u8 = 15;

/// Default [`DeflateConfig::compression_level`]: 1, zlib's fastest level. On JSON-like text
/// it keeps most of the ratio of level 6 at several times the speed (see the `deflate`
/// bench), the right trade for a library that aims at throughput; raise it for slow links.
pub const DEFAULT_COMPRESSION_LEVEL: u32 = 1;

/// Default [`DeflateConfig::threshold`]: messages below 1 KiB are sent uncompressed, as
/// Node's `ws` does. Small messages gain little, cost a DEFLATE call each, and a connection
/// that only sends small messages never allocates a compressor.
pub const DEFAULT_THRESHOLD: usize = 1024;

/// What one side is willing to do with permessage-deflate: the client's offer, or the
/// server's acceptance policy.
///
/// The window fields are base-2 logarithms of the LZ77 window (RFC 7692 §7.1.2): 9 to 15
/// here ([`validate`](Self::validate)); the protocol value 8 is accepted from a peer (see the
/// [module docs](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// The client resets its compressor after every message (§7.1.1.2). A client offers
    /// `client_no_context_takeover` and honours it whatever the server answers; a server
    /// requires it in its response. Default `false`.
    pub client_no_context_takeover: bool,
    /// The server resets its compressor after every message (§7.1.1.1). A client asks for it
    /// (and fails the handshake if the server does not agree); a server always applies it.
    /// Default `false`.
    pub server_no_context_takeover: bool,
    /// Client: `None` offers `client_max_window_bits` without a value (the server may pick
    /// any window for us), `Some(n)` offers `client_max_window_bits=n` and our compressor
    /// never uses more. Server: `None` accepts whatever the client uses, `Some(n)` asks a
    /// client that offered the parameter to stay within `n` bits (a client that did not
    /// offer it is still accepted, with 15). Default `None`.
    pub client_max_window_bits: Option<u8>,
    /// Client: `Some(n)` asks the server to compress with at most `n` bits (and fails the
    /// handshake if it does not agree); `None` does not ask. Server: the largest window our
    /// compressor uses (`None`: 15), lowered further if the client asks. Default `None`.
    pub server_max_window_bits: Option<u8>,
    /// DEFLATE level, 0 (stored, no compression) to 9 (best). Default
    /// [`DEFAULT_COMPRESSION_LEVEL`].
    pub compression_level: u32,
    /// Messages shorter than this many bytes are sent uncompressed. Default
    /// [`DEFAULT_THRESHOLD`]; 0 compresses every message, including empty ones.
    pub threshold: usize,
}

impl Default for DeflateConfig {
    /// Browser-like: offer `permessage-deflate; client_max_window_bits` (context takeover on
    /// both sides, the server picks the windows); as a server, accept any valid offer.
    fn default() -> Self {
        Self {
            client_no_context_takeover: false,
            server_no_context_takeover: false,
            client_max_window_bits: None,
            server_max_window_bits: None,
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            threshold: DEFAULT_THRESHOLD,
        }
    }
}

/// Builder-style setters, one per field (the struct is `#[non_exhaustive]`, so new
/// options can be added without breaking code that sets the ones it knows):
/// `DeflateConfig::default().client_no_context_takeover(…)`. Assigning a field of a value works as well.
impl DeflateConfig {
    /// Sets [`client_no_context_takeover`](Self::client_no_context_takeover).
    #[must_use]
    pub fn client_no_context_takeover(mut self, client_no_context_takeover: bool) -> Self {
        self.client_no_context_takeover = client_no_context_takeover;
        self
    }

    /// Sets [`server_no_context_takeover`](Self::server_no_context_takeover).
    #[must_use]
    pub fn server_no_context_takeover(mut self, server_no_context_takeover: bool) -> Self {
        self.server_no_context_takeover = server_no_context_takeover;
        self
    }

    /// Sets [`client_max_window_bits`](Self::client_max_window_bits).
    #[must_use]
    pub fn client_max_window_bits(mut self, client_max_window_bits: Option<u8>) -> Self {
        self.client_max_window_bits = client_max_window_bits;
        self
    }

    /// Sets [`server_max_window_bits`](Self::server_max_window_bits).
    #[must_use]
    pub fn server_max_window_bits(mut self, server_max_window_bits: Option<u8>) -> Self {
        self.server_max_window_bits = server_max_window_bits;
        self
    }

    /// Sets [`compression_level`](Self::compression_level).
    #[must_use]
    pub fn compression_level(mut self, compression_level: u32) -> Self {
        self.compression_level = compression_level;
        self
    }

    /// Sets [`threshold`](Self::threshold).
    #[must_use]
    pub fn threshold(mut self, threshold: usize) -> Self {
        self.threshold = threshold;
        self
    }
}

impl DeflateConfig {
    /// Checks the window sizes (9 to 15) and the compression level (0 to 9).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let window_ok = |bits: Option<u8>| bits.is_none_or(|b| (9..=MAX_WINDOW_BITS).contains(&b));
        if !window_ok(self.client_max_window_bits) || !window_ok(self.server_max_window_bits) {
            return Err(ConfigError::new(
                "deflate window bits must be between 9 and 15",
            ));
        }
        if self.compression_level > 9 {
            return Err(ConfigError::new(
                "deflate compression level must be between 0 and 9",
            ));
        }
        Ok(())
    }
}

/// The parameters agreed in the opening handshake (RFC 7692 §7.1), from the point of view
/// of the wire: which side resets its context, and each side's largest window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor after every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compressor after every message.
    pub client_no_context_takeover: bool,
    /// The server compresses with at most this many window bits (8 to 15).
    pub server_max_window_bits: u8,
    /// The client compresses with at most this many window bits (8 to 15).
    pub client_max_window_bits: u8,
}

impl Default for DeflateParams {
    /// Plain `permessage-deflate`: context takeover and 15-bit windows on both sides.
    fn default() -> Self {
        Self {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
        }
    }
}

impl DeflateParams {
    /// The agreed parameters as one `Sec-WebSocket-Extensions` element, in a canonical form:
    /// `permessage-deflate`, then each `*_no_context_takeover` that applies, then each window
    /// below 15, e.g. `permessage-deflate; server_no_context_takeover; client_max_window_bits=10`.
    /// This is what the `extensions` attribute reports.
    pub fn to_header_value(&self) -> String {
        let mut out = String::from(EXTENSION_NAME);
        if self.server_no_context_takeover {
            out.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            out.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < MAX_WINDOW_BITS {
            out.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < MAX_WINDOW_BITS {
            out.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        out
    }

    /// Checks that both windows are between 8 and 15.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ok = |b: u8| (MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&b);
        if ok(self.server_max_window_bits) && ok(self.client_max_window_bits) {
            Ok(())
        } else {
            Err(ConfigError::new(
                "negotiated deflate window bits must be between 8 and 15",
            ))
        }
    }
}
