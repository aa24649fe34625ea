//! The messages `bench` sends: a header with the connection id, the sequence number and
//! the send time, padded to the requested size, and the check of each echo.
//!
//! Binary messages start with the 20-byte header itself (little-endian `u32` connection
//! id, `u64` sequence number, `u64` send time in nanoseconds since the start of the run);
//! text messages start with those 20 bytes in unpadded base64url (27 characters). The rest
//! is padding: the same pseudo-random printable ASCII in every message (a fixed seed), so
//! an echo can be checked byte for byte without keeping a copy of what was sent.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use wsstream::Message;

/// Length of the binary header.
const HEADER: usize = 20;
/// Length of the header of a text message (base64url of [`HEADER`] bytes, no padding).
const TEXT_HEADER: usize = 27;

/// What a message carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The connection that sent it (0-based).
    pub(crate) conn: u32,
    /// Its sequence number on that connection (0-based).
    pub(crate) seq: u64,
    /// When it was sent: nanoseconds since the start of the run (monotonic clock).
    pub(crate) sent_ns: u64,
}

impl Stamp {
    fn to_bytes(self) -> [u8; HEADER] {
        let mut out = [0u8; HEADER];
        out[..4].copy_from_slice(&self.conn.to_le_bytes());
        out[4..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..].copy_from_slice(&self.sent_ns.to_le_bytes());
        out
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; HEADER] = bytes.try_into().ok()?;
        let (conn, rest) = bytes.split_at(4);
        let (seq, sent_ns) = rest.split_at(8);
        Some(Self {
            conn: u32::from_le_bytes(conn.try_into().ok()?),
            seq: u64::from_le_bytes(seq.try_into().ok()?),
            sent_ns: u64::from_le_bytes(sent_ns.try_into().ok()?),
        })
    }
}

/// The message factory and checker of one run.
#[derive(Debug)]
pub(crate) struct Payload {
    binary: bool,
    /// `size` bytes of printable ASCII; a message is its header, then `pad[header..]`.
    pad: String,
}

impl Payload {
    /// The smallest message size: the header.
    pub(crate) fn min_size(binary: bool) -> usize {
        if binary { HEADER } else { TEXT_HEADER }
    }

    /// Messages of `size` bytes, binary or text.
    pub(crate) fn new(size: usize, binary: bool) -> Result<Self, String> {
        let min = Self::min_size(binary);
        if size < min {
            let kind = if binary { "binary" } else { "text" };
            return Err(format!(
                "--size {size} is too small: each {kind} message carries a {min}-byte header \
                 (connection, sequence number, send time)"
            ));
        }
        Ok(Self {
            binary,
            pad: padding(size),
        })
    }

    /// The message size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.pad.len()
    }

    fn header_len(&self) -> usize {
        Self::min_size(self.binary)
    }

    /// The message carrying `stamp`.
    pub(crate) fn message(&self, stamp: Stamp) -> Message {
        let header = stamp.to_bytes();
        let rest = &self.pad[self.header_len()..];
        if self.binary {
            let mut bytes = Vec::with_capacity(self.pad.len());
            bytes.extend_from_slice(&header);
            bytes.extend_from_slice(rest.as_bytes());
            Message::from(bytes)
        } else {
            let mut encoded = [0u8; TEXT_HEADER];
            let n = URL_SAFE_NO_PAD
                .encode_slice(header, &mut encoded)
                .unwrap_or_default();
            let mut text = String::with_capacity(self.pad.len());
            // base64url is ASCII.
            text.extend(encoded[..n].iter().map(|&b| char::from(b)));
            text.push_str(rest);
            Message::from(text)
        }
    }

    /// The stamp of an echo, if it is exactly a message of this run: the same type, size,
    /// a readable header and the same padding.
    pub(crate) fn check(&self, message: &Message) -> Option<Stamp> {
        if message.is_binary() != self.binary || message.len() != self.pad.len() {
            return None;
        }
        let bytes = message.as_bytes();
        let (header, rest) = bytes.split_at(self.header_len());
        if rest != &self.pad.as_bytes()[self.header_len()..] {
            return None;
        }
        if self.binary {
            return Stamp::from_bytes(header);
        }
        let mut decoded = [0u8; HEADER + 4];
        let n = URL_SAFE_NO_PAD.decode_slice(header, &mut decoded).ok()?;
        Stamp::from_bytes(&decoded[..n])
    }
}

/// `size` pseudo-random characters of the base64url alphabet, from a fixed seed
/// (xorshift64*), so every run sends the same bytes.
fn padding(size: usize) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..size)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
            char::from(ALPHABET[usize::try_from(r >> 58).unwrap_or(0)])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        conn: 7,
        seq: 123_456_789_012,
        sent_ns: u64::MAX - 5,
    };

    #[test]
    fn binary_round_trip() {
        let payload = Payload::new(64, true).unwrap();
        let message = payload.message(STAMP);
        assert!(message.is_binary());
        assert_eq!(message.len(), 64);
        assert_eq!(payload.check(&message), Some(STAMP));
    }

    #[test]
    fn text_round_trip() {
        let payload = Payload::new(32, false).unwrap();
        let message = payload.message(STAMP);
        assert!(message.is_text());
        assert_eq!(message.len(), 32);
        assert_eq!(payload.check(&message), Some(STAMP));
        // Exactly the header.
        let payload = Payload::new(TEXT_HEADER, false).unwrap();
        assert_eq!(payload.check(&payload.message(STAMP)), Some(STAMP));
    }

    #[test]
    fn too_small_is_refused() {
        assert!(Payload::new(19, true).is_err());
        assert!(Payload::new(20, true).is_ok());
        assert!(Payload::new(26, false).is_err());
    }

    #[test]
    fn a_different_message_does_not_check() {
        let payload = Payload::new(40, false).unwrap();
        let good = payload.message(STAMP);
        // Wrong type, wrong size, altered padding, altered header.
        assert_eq!(
            payload.check(&Message::from(good.as_bytes().to_vec())),
            None
        );
        assert_eq!(payload.check(&Message::from("short")), None);
        let mut text = good.as_text().unwrap().to_owned();
        text.replace_range(39..40, if text.ends_with('A') { "B" } else { "A" });
        assert_eq!(payload.check(&Message::from(text)), None);
        let mut text = good.as_text().unwrap().to_owned();
        text.replace_range(0..1, "!");
        assert_eq!(payload.check(&Message::from(text)), None);
    }

    #[test]
    fn padding_is_fixed_and_printable() {
        assert_eq!(padding(100), padding(100));
        assert!(
            padding(1000)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
    }
}
