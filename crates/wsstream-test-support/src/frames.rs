//! A frame-builder DSL for scripted peers: raw RFC 6455 frame bytes, well-formed or not.
//!
//! Nothing here depends on the engine's types, so any crate (the engine's own tests, the
//! runtime's tests, fuzz seeds) can build exactly the bytes a peer would put on the wire,
//! including the ones a correct peer never sends: reserved opcodes and bits, lying or
//! non-minimal lengths, a 64-bit length with the top bit set, fragmented control frames.
//!
//! ```
//! use wsstream_test_support::frames::{Frame, parse_frames};
//!
//! // RFC 6455 §5.7: a single-frame masked text message.
//! let bytes = Frame::text("Hello").masked([0x37, 0xfa, 0x21, 0x3d]).encode();
//! assert_eq!(bytes, [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]);
//!
//! // Parsing unmasks, so assertions see the payload.
//! let frames = parse_frames(&bytes);
//! assert_eq!(frames[0].payload, b"Hello");
//! ```
//!
//! Building never validates: the DSL writes whatever it is told to. [`parse_frames`] is the
//! other direction, for asserting what an endpoint under test sent.

/// Opcode values (RFC 6455 §5.2, §11.8).
pub mod opcode {
    /// 0x0: continuation frame.
    pub const CONTINUATION: u8 = 0x0;
    /// 0x1: text frame.
    pub const TEXT: u8 = 0x1;
    /// 0x2: binary frame.
    pub const BINARY: u8 = 0x2;
    /// 0x8: connection close.
    pub const CLOSE: u8 = 0x8;
    /// 0x9: ping.
    pub const PING: u8 = 0x9;
    /// 0xA: pong.
    pub const PONG: u8 = 0xA;
    /// Every opcode RFC 6455 reserves (0x3–0x7, 0xB–0xF).
    pub const RESERVED: [u8; 10] = [0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF];
}

/// How the header writes the payload length (RFC 6455 §5.2).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LengthForm {
    /// The minimal encoding a correct sender uses: 7 bits up to 125, then 16 bits up to
    /// 65535, then 64 bits.
    #[default]
    Minimal,
    /// Always the 16-bit extended form (length field 126), even for short payloads. The
    /// declared length is truncated to its low 16 bits if it does not fit.
    Extended16,
    /// Always the 64-bit extended form (length field 127), even for short payloads.
    Extended64,
}

/// One frame to encode. Built with the constructors ([`Frame::text`], [`Frame::close`], …)
/// and adjusted with the chainable setters; [`Frame::encode`] produces the bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    declared_len: Option<u64>,
    length_form: LengthForm,
    payload: Vec<u8>,
}

impl Frame {
    /// A final frame with any opcode (including reserved ones) and payload; the low four
    /// bits of `opcode` are used.
    pub fn raw_opcode(opcode: u8, payload: impl AsRef<[u8]>) -> Self {
        Self {
            fin: true,
            rsv: 0,
            opcode: opcode & 0x0F,
            mask: None,
            declared_len: None,
            length_form: LengthForm::Minimal,
            payload: payload.as_ref().to_vec(),
        }
    }

    /// A text frame (opcode 0x1). The payload is taken as bytes, so invalid UTF-8 can be
    /// sent on purpose.
    pub fn text(payload: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::TEXT, payload)
    }

    /// A binary frame (opcode 0x2).
    pub fn binary(payload: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::BINARY, payload)
    }

    /// A continuation frame (opcode 0x0), final unless [`fin(false)`](Self::fin) is set.
    pub fn continuation(payload: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::CONTINUATION, payload)
    }

    /// A ping (opcode 0x9).
    pub fn ping(payload: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::PING, payload)
    }

    /// A pong (opcode 0xA).
    pub fn pong(payload: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::PONG, payload)
    }

    /// A Close frame (opcode 0x8) whose body is the big-endian `code` (when given) followed
    /// by the bytes of `reason`. With `None` the reason bytes alone form the body, so
    /// `Frame::close(None, "")` is the empty Close frame and `Frame::close(None, "x")` the
    /// invalid one-byte body.
    pub fn close(code: Option<u16>, reason: impl AsRef<[u8]>) -> Self {
        let reason = reason.as_ref();
        let mut body = Vec::with_capacity(2 + reason.len());
        if let Some(code) = code {
            body.extend_from_slice(&code.to_be_bytes());
        }
        body.extend_from_slice(reason);
        Self::raw_opcode(opcode::CLOSE, body)
    }

    /// A Close frame with exactly `body` as its payload.
    pub fn close_raw(body: impl AsRef<[u8]>) -> Self {
        Self::raw_opcode(opcode::CLOSE, body)
    }

    /// Sets the FIN bit (default: set).
    #[must_use]
    pub fn fin(mut self, fin: bool) -> Self {
        self.fin = fin;
        self
    }

    /// Sets RSV1..RSV3 from the three low bits of `bits` (RSV1 = `0b100`).
    #[must_use]
    pub fn rsv(mut self, bits: u8) -> Self {
        self.rsv = bits & 0b111;
        self
    }

    /// Sets the MASK bit and masks the payload with `key` (as a client must, §5.3).
    #[must_use]
    pub fn masked(mut self, key: [u8; 4]) -> Self {
        self.mask = Some(key);
        self
    }

    /// Clears the MASK bit (the default).
    #[must_use]
    pub fn unmasked(mut self) -> Self {
        self.mask = None;
        self
    }

    /// Masks the payload when `key` is `Some`: convenient when the peer's role is a parameter.
    #[must_use]
    pub fn mask_opt(mut self, key: Option<[u8; 4]>) -> Self {
        self.mask = key;
        self
    }

    /// Declares `len` in the header instead of the real payload length. The payload written
    /// is unchanged, so a larger value leaves the frame incomplete (the header of a frame
    /// whose payload has not arrived) and a smaller one makes the rest of the payload look
    /// like the next frame.
    #[must_use]
    pub fn len_override(mut self, len: u64) -> Self {
        self.declared_len = Some(len);
        self
    }

    /// Chooses how the length is encoded (default: [`LengthForm::Minimal`]).
    #[must_use]
    pub fn length_form(mut self, form: LengthForm) -> Self {
        self.length_form = form;
        self
    }

    /// Shorthand for [`length_form(LengthForm::Extended16)`](Self::length_form).
    #[must_use]
    pub fn len16(self) -> Self {
        self.length_form(LengthForm::Extended16)
    }

    /// Shorthand for [`length_form(LengthForm::Extended64)`](Self::length_form).
    #[must_use]
    pub fn len64(self) -> Self {
        self.length_form(LengthForm::Extended64)
    }

    /// The payload (unmasked).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The length the header declares.
    pub fn declared_len(&self) -> u64 {
        self.declared_len.unwrap_or(self.payload.len() as u64)
    }

    /// Encodes the header into `out` and returns its length, without the payload.
    pub fn encode_header_into(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        let len = self.declared_len();
        out.push((u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let form = match self.length_form {
            LengthForm::Minimal if len < 126 => None,
            LengthForm::Minimal if len <= 0xFFFF => Some(LengthForm::Extended16),
            LengthForm::Minimal => Some(LengthForm::Extended64),
            other => Some(other),
        };
        match form {
            None => out.push(mask_bit | len as u8),
            Some(LengthForm::Extended16) => {
                out.push(mask_bit | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            Some(_) => {
                out.push(mask_bit | 127);
                out.extend_from_slice(&len.to_be_bytes());
            }
        }
        if let Some(key) = self.mask {
            out.extend_from_slice(&key);
        }
        out.len() - start
    }

    /// Appends the encoded frame (header, then the payload masked if a key was set) to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.encode_header_into(out);
        let start = out.len();
        out.extend_from_slice(&self.payload);
        if let Some(key) = self.mask {
            apply_mask(&mut out[start..], key);
        }
    }

    /// The encoded frame.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(14 + self.payload.len());
        self.encode_into(&mut out);
        out
    }
}

/// Encodes several frames back to back.
pub fn encode_all<'a>(frames: impl IntoIterator<Item = &'a Frame>) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in frames {
        frame.encode_into(&mut out);
    }
    out
}

/// XORs `buf` with `key` (RFC 6455 §5.3), starting at payload offset 0. Its own inverse.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[i % 4];
    }
}

/// A frame read back from bytes by [`parse_frames`], its payload already unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFrame {
    /// The FIN bit.
    pub fin: bool,
    /// RSV1..RSV3 as the three low bits (RSV1 = `0b100`).
    pub rsv: u8,
    /// The raw 4-bit opcode.
    pub opcode: u8,
    /// The masking key, if the MASK bit was set.
    pub mask: Option<[u8; 4]>,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
    /// Length of the header in bytes (2 to 14), to check the length encoding chosen.
    pub header_len: usize,
}

impl ParsedFrame {
    /// Whether this is a Close frame.
    pub fn is_close(&self) -> bool {
        self.opcode == opcode::CLOSE
    }

    /// The status code of a Close frame body, if it has one (two bytes or more).
    pub fn close_code(&self) -> Option<u16> {
        match self.payload.as_slice() {
            [hi, lo, ..] if self.is_close() => Some(u16::from_be_bytes([*hi, *lo])),
            _ => None,
        }
    }

    /// The reason bytes of a Close frame body (empty when there is none).
    pub fn close_reason(&self) -> &[u8] {
        match self.payload.as_slice() {
            [_, _, reason @ ..] if self.is_close() => reason,
            _ => &[],
        }
    }

    /// The payload as UTF-8, if it is valid.
    pub fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.payload).ok()
    }
}

/// Why [`try_parse_frames`] could not read the bytes as whole frames (a declared length too
/// large for this platform counts as truncated: those bytes can never all be present).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameParseError {
    /// The bytes end inside a frame that starts at this offset.
    Truncated {
        /// Offset of the incomplete frame.
        at: usize,
    },
}

impl std::fmt::Display for FrameParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Truncated { at } => write!(f, "bytes end inside the frame at offset {at}"),
        }
    }
}

impl std::error::Error for FrameParseError {}

/// Reads one frame from the start of `bytes`: the frame and the number of bytes it took, or
/// `None` when `bytes` does not hold a whole frame.
pub fn parse_frame(bytes: &[u8]) -> Option<(ParsedFrame, usize)> {
    let [b0, b1, rest @ ..] = bytes else {
        return None;
    };
    let (len, ext) = match b1 & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?])),
            2,
        ),
        127 => {
            let raw: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            (u64::from_be_bytes(raw), 8)
        }
        short => (u64::from(short), 0),
    };
    let mask = if b1 & 0x80 != 0 {
        let key: [u8; 4] = rest.get(ext..ext + 4)?.try_into().ok()?;
        Some(key)
    } else {
        None
    };
    let header_len = 2 + ext + if mask.is_some() { 4 } else { 0 };
    let len = usize::try_from(len).ok()?;
    let end = header_len.checked_add(len)?;
    let mut payload = bytes.get(header_len..end)?.to_vec();
    if let Some(key) = mask {
        apply_mask(&mut payload, key);
    }
    let frame = ParsedFrame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 0b111,
        opcode: b0 & 0x0F,
        mask,
        payload,
        header_len,
    };
    Some((frame, end))
}

/// Reads `bytes` as a sequence of whole frames.
pub fn try_parse_frames(bytes: &[u8]) -> Result<Vec<ParsedFrame>, FrameParseError> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match parse_frame(&bytes[at..]) {
            Some((frame, used)) => {
                frames.push(frame);
                at += used;
            }
            None => return Err(FrameParseError::Truncated { at }),
        }
    }
    Ok(frames)
}

/// Reads `bytes` (what an endpoint under test sent) as a sequence of whole frames, with
/// payloads unmasked.
///
/// # Panics
///
/// When the bytes end inside a frame: this is an assertion helper, and a truncated frame
/// from the endpoint under test is a test failure. Use [`try_parse_frames`] to handle it.
pub fn parse_frames(bytes: &[u8]) -> Vec<ParsedFrame> {
    match try_parse_frames(bytes) {
        Ok(frames) => frames,
        Err(e) => panic!(
            "parse_frames: {e} ({} bytes: {:02x?})",
            bytes.len(),
            preview(bytes)
        ),
    }
}

fn preview(bytes: &[u8]) -> &[u8] {
    &bytes[..bytes.len().min(32)]
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

    #[test]
    fn rfc_6455_section_5_7_examples() {
        assert_eq!(
            Frame::text("Hello").encode(),
            [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            Frame::text("Hello").masked(RFC_KEY).encode(),
            [
                0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        assert_eq!(
            encode_all(&[Frame::text("Hel").fin(false), Frame::continuation("lo")]),
            [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f]
        );
        assert_eq!(
            Frame::ping("Hello").encode(),
            [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
        assert_eq!(
            Frame::pong("Hello").masked(RFC_KEY).encode(),
            [
                0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58
            ]
        );
        assert_eq!(
            Frame::binary([0u8; 256]).encode()[..4],
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(
            Frame::binary(vec![0u8; 65536]).encode()[..10],
            [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn minimal_length_edges() {
        for (len, header) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let bytes = Frame::binary(vec![7u8; len]).encode();
            assert_eq!(bytes.len(), header + len, "{len}");
            let (frame, used) = parse_frame(&bytes).unwrap();
            assert_eq!(
                (frame.header_len, used, frame.payload.len()),
                (header, bytes.len(), len)
            );
        }
    }

    #[test]
    fn forced_length_forms() {
        assert_eq!(
            Frame::binary("abc").len16().encode(),
            [0x82, 126, 0, 3, b'a', b'b', b'c']
        );
        assert_eq!(
            Frame::binary("a").len64().encode(),
            [0x82, 127, 0, 0, 0, 0, 0, 0, 0, 1, b'a']
        );
        let top = Frame::binary("").len64().len_override(1 << 63).encode();
        assert_eq!(top, [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]);
        // A minimal form follows the declared length, not the payload.
        assert_eq!(
            Frame::binary("").len_override(1001).encode(),
            [0x82, 126, 0x03, 0xE9]
        );
        assert_eq!(
            Frame::binary("xy").len_override(1).encode(),
            [0x82, 1, b'x', b'y']
        );
    }

    #[test]
    fn bits_and_opcodes() {
        assert_eq!(Frame::text("").fin(false).rsv(0b100).encode(), [0x41, 0]);
        assert_eq!(Frame::text("").rsv(0b111).encode(), [0xF1, 0]);
        assert_eq!(Frame::raw_opcode(0x3, "").encode(), [0x83, 0]);
        assert_eq!(
            Frame::raw_opcode(0xF3, "").encode(),
            [0x83, 0],
            "high bits dropped"
        );
        assert_eq!(
            Frame::close(Some(1000), "bye").encode(),
            [0x88, 5, 0x03, 0xE8, b'b', b'y', b'e']
        );
        assert_eq!(Frame::close(None, "").encode(), [0x88, 0]);
        assert_eq!(Frame::close(None, "x").encode(), [0x88, 1, b'x']);
        assert_eq!(Frame::close_raw([3]).encode(), [0x88, 1, 3]);
        assert_eq!(Frame::ping("a").mask_opt(None).encode(), [0x89, 1, b'a']);
        assert_eq!(
            Frame::ping("a").masked([1, 1, 1, 1]).unmasked().encode(),
            [0x89, 1, b'a']
        );
    }

    #[test]
    fn parse_unmasks_and_reads_close_bodies() {
        let bytes = encode_all(&[
            Frame::close(Some(4000), "robot").masked([9, 8, 7, 6]),
            Frame::ping([1, 2, 3]).masked([0xff; 4]),
            Frame::text("é").fin(false).rsv(0b010),
        ]);
        let frames = parse_frames(&bytes);
        assert_eq!(frames.len(), 3);
        assert!(frames[0].is_close());
        assert_eq!(frames[0].mask, Some([9, 8, 7, 6]));
        assert_eq!(frames[0].close_code(), Some(4000));
        assert_eq!(frames[0].close_reason(), b"robot");
        assert_eq!(
            (frames[1].opcode, frames[1].payload.as_slice()),
            (opcode::PING, &[1u8, 2, 3][..])
        );
        assert_eq!(frames[1].close_code(), None);
        assert!(!frames[2].fin);
        assert_eq!((frames[2].rsv, frames[2].text()), (0b010, Some("é")));
    }

    #[test]
    fn truncated_input_is_reported() {
        let bytes = Frame::binary([1u8; 300]).masked([1, 2, 3, 4]).encode();
        for cut in 1..bytes.len() {
            assert!(parse_frame(&bytes[..cut]).is_none(), "{cut}");
        }
        let mut two = Frame::ping("").encode();
        two.extend_from_slice(&bytes[..5]);
        assert_eq!(
            try_parse_frames(&two),
            Err(FrameParseError::Truncated { at: 2 })
        );
        assert!(try_parse_frames(&[]).unwrap().is_empty());
        let huge = Frame::binary("").len64().len_override(u64::MAX).encode();
        assert!(parse_frame(&huge).is_none());
    }

    #[test]
    #[should_panic(expected = "parse_frames")]
    fn parse_frames_panics_on_truncation() {
        let _ = parse_frames(&[0x81, 5, b'H']);
    }
}
